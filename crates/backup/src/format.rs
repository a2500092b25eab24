//! What a backup looks like at its target (format 1). Keys, under the target's prefix:
//!
//! ```text
//! state.json                                  the shipper's progress (BackupState)
//! snapshots/{id:016x}/manifest.json           a finished snapshot (written last)
//! snapshots/{id:016x}/files/{path}            its files: object databases (+ WAL), catalog.db
//! segments/{segment file}/{start:016x}-{end:016x}   bytes [start, end) of a log segment
//! blobs/{path under buckets/}                 bucket bodies (immutable once committed)
//! ```
//!
//! A segment chunk holds whole commit records only; each record carries its CRC-32, so a chunk
//! verifies itself. Snapshot files are listed in the manifest with their SHA-256.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The format written by this version.
pub const FORMAT: u32 = 1;

pub(crate) const STATE_KEY: &str = "state.json";
pub(crate) const SNAPSHOTS: &str = "snapshots";
pub(crate) const SEGMENTS: &str = "segments";
pub(crate) const BLOBS: &str = "blobs";

pub(crate) fn snapshot_dir(id: u64) -> String {
    format!("{SNAPSHOTS}/{id:016x}")
}

pub(crate) fn chunk_key(file: &str, start: u64, end: u64) -> String {
    format!("{SEGMENTS}/{file}/{start:016x}-{end:016x}")
}

/// Parses `segments/{file}/{start}-{end}` into `(file, start, end)`.
pub(crate) fn parse_chunk_key(key: &str) -> Option<(String, u64, u64)> {
    let rest = key.strip_prefix(SEGMENTS)?.strip_prefix('/')?;
    let (file, range) = rest.rsplit_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((file.to_owned(), u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?))
}

/// The shipper's progress, rewritten at the end of every successful pass.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupState {
    /// [`FORMAT`].
    pub format: u32,
    /// When the last successful pass read the log positions (ms): every write acknowledged
    /// before this time is in the backup.
    pub captured_at_ms: i64,
    /// When the last pass finished (ms).
    pub finished_at_ms: i64,
    /// Bytes shipped of each segment file, by file name.
    pub segments: BTreeMap<String, u64>,
    /// Blobs that disappeared locally, with when (ms); deleted from the target after the
    /// retention window.
    pub deleted_blobs: BTreeMap<String, i64>,
}

/// A finished snapshot.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotManifest {
    /// [`FORMAT`].
    pub format: u32,
    /// Its id (the time it started, in ms).
    pub id: u64,
    /// When copying started and finished (ms).
    pub started_at_ms: i64,
    /// When the last file was copied (ms): the snapshot holds no commit after this.
    pub completed_at_ms: i64,
    /// Segment files on disk when it started, with the offset from which their records are
    /// needed on top of it (a shard's durable end for its open segment).
    pub start_segments: BTreeMap<String, u64>,
    /// Every file, relative to the data directory.
    pub files: Vec<SnapshotFile>,
    /// Objects copied.
    pub objects: u64,
}

/// One file of a snapshot.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Path relative to the data directory, `/`-separated.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// SHA-256 of its content, hex.
    pub sha256: String,
}

impl SnapshotManifest {
    /// Whether the records of segment `file` in `[start, end)` are needed on top of this
    /// snapshot: segments on disk at its start from their recorded offset on; segments
    /// created later (a higher number than any its shard had at the start) entirely.
    pub fn needs(&self, file: &str, end: u64) -> bool {
        if let Some(&offset) = self.start_segments.get(file) {
            return end > offset;
        }
        let Some((shard, segment)) = cairn_runtime::parse_segment_file_name(file) else { return false };
        let newest_at_start = self
            .start_segments
            .keys()
            .filter_map(|f| cairn_runtime::parse_segment_file_name(f))
            .filter(|(s, _)| *s == shard)
            .map(|(_, n)| n)
            .max();
        newest_at_start.is_none_or(|n| segment > n)
    }
}

/// SHA-256 in hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_round_trip() {
        let key = chunk_key("shard-1-000000000000000a.log", 4096, 8192);
        assert_eq!(parse_chunk_key(&key), Some(("shard-1-000000000000000a.log".to_owned(), 4096, 8192)));
        assert_eq!(parse_chunk_key("segments/x"), None);
    }

    #[test]
    fn a_snapshot_needs_what_follows_its_start() {
        let mut m = SnapshotManifest::default();
        m.start_segments.insert("shard-0-0000000000000005.log".into(), 100);
        assert!(!m.needs("shard-0-0000000000000005.log", 100));
        assert!(m.needs("shard-0-0000000000000005.log", 101));
        assert!(!m.needs("shard-0-0000000000000004.log", 10));
        assert!(m.needs("shard-0-0000000000000006.log", 10));
        assert!(m.needs("shard-1-0000000000000001.log", 10));
    }
}
