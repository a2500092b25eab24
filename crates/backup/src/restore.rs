//! Rebuilding a data directory from a backup.
//!
//! Picks the newest snapshot that completed at or before the asked time (or the newest),
//! downloads its files (checking each SHA-256), writes the log chunks it needs into `log/` as
//! segments (checking each chunk is whole records with valid checksums and that the chunks of a
//! segment are contiguous; with a time, each object's records stop at its first one after it),
//! downloads the bucket blobs, then opens the directory with the runtime: recovery replays the
//! segments onto the snapshot's files exactly as after a crash.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::format::{self, BackupState};
use crate::shipper::list_snapshots;
use crate::target::Target;
use crate::{Error, Result};

/// What a restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// The snapshot used.
    pub snapshot_id: u64,
    /// Objects in the snapshot.
    pub snapshot_objects: u64,
    /// Log segments written for replay, and their records.
    pub segments: usize,
    /// Commit records replayed on top of the snapshot (after any time cut).
    pub records: usize,
    /// Bucket blobs downloaded.
    pub blobs: usize,
    /// Bytes downloaded.
    pub bytes: u64,
    /// From the backup's state: every write acknowledged before this time (ms) was backed up.
    pub captured_at_ms: Option<i64>,
}

/// Progress of a restore: a step name, bytes done, bytes to do (0 when unknown).
pub type Progress<'a> = &'a mut dyn FnMut(&str, u64, u64);

/// Rebuilds `dest` (which must be empty or absent) from `target`, as of `at_ms` if given.
///
/// # Errors
/// [`Error::NotEmpty`], [`Error::Corrupt`] for a checksum mismatch, a torn or missing chunk or
/// no usable snapshot, target and I/O errors, and runtime errors from the replay.
pub async fn restore(
    target: &Target,
    dest: &Path,
    at_ms: Option<i64>,
    progress: Progress<'_>,
) -> Result<RestoreReport> {
    if std::fs::read_dir(dest).is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::NotEmpty(dest.display().to_string()));
    }
    let mut report = RestoreReport::default();
    let state: Option<BackupState> = match target.get(format::STATE_KEY).await? {
        Some(b) => serde_json::from_slice(&b).ok(),
        None => None,
    };
    report.captured_at_ms = state.as_ref().map(|s| s.captured_at_ms);
    let snapshots = list_snapshots(target).await?;
    let snapshot =
        snapshots.iter().rev().find(|s| at_ms.is_none_or(|t| s.completed_at_ms <= t)).ok_or_else(|| {
            match (at_ms, snapshots.first()) {
                (_, None) => Error::Corrupt(format!("{} holds no finished snapshot", target.name())),
                (Some(t), Some(first)) => Error::Corrupt(format!(
                    "no snapshot completed at or before {t} ms; the oldest completed at {} ms",
                    first.completed_at_ms
                )),
                (None, Some(_)) => Error::Corrupt("no usable snapshot".to_owned()),
            }
        })?;
    report.snapshot_id = snapshot.id;
    report.snapshot_objects = snapshot.objects;

    // 1. The snapshot's files.
    let total: u64 = snapshot.files.iter().map(|f| f.bytes).sum();
    let mut done = 0u64;
    let dir = format::snapshot_dir(snapshot.id);
    for f in &snapshot.files {
        let key = format!("{dir}/files/{}", f.path);
        let bytes = target.get(&key).await?.ok_or_else(|| Error::Corrupt(format!("{key} is missing")))?;
        if bytes.len() as u64 != f.bytes || format::sha256_hex(&bytes) != f.sha256 {
            return Err(Error::Corrupt(format!("{key} does not match its checksum in the manifest")));
        }
        if f.path.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(Error::Corrupt(format!("{key}: unsafe path")));
        }
        write_file(&dest.join(&f.path), &bytes)?;
        done += f.bytes;
        report.bytes += f.bytes;
        progress("snapshot", done, total);
    }

    // 2. The log chunks it needs, per segment file, in order.
    let mut chunks: BTreeMap<String, Vec<(u64, u64, String, u64)>> = BTreeMap::new();
    for (key, size, _) in target.list(format::SEGMENTS).await? {
        if let Some((file, start, end)) = format::parse_chunk_key(&key)
            && snapshot.needs(&file, end)
        {
            chunks.entry(file).or_default().push((start, end, key, size));
        }
    }
    // Segment numbers grow over time (across shards and restarts): replay order.
    let mut files: Vec<(u64, usize, String)> = chunks
        .keys()
        .filter_map(|f| cairn_runtime::parse_segment_file_name(f).map(|(shard, seg)| (seg, shard, f.clone())))
        .collect();
    files.sort();
    let total: u64 = chunks.values().flatten().map(|c| c.3).sum();
    let mut done = 0u64;
    let mut stopped = HashSet::new();
    for (_, _, file) in files {
        let Some(mut list) = chunks.remove(&file) else { continue };
        list.sort();
        let mut segment = Vec::new();
        let mut expected: Option<u64> = None;
        for (start, end, key, _) in list {
            if expected.is_some_and(|e| e != start) {
                return Err(Error::Corrupt(format!(
                    "segment {file}: chunks are not contiguous (a gap before byte {start})"
                )));
            }
            expected = Some(end);
            let bytes = target.get(&key).await?.ok_or_else(|| Error::Corrupt(format!("{key} is missing")))?;
            if bytes.len() as u64 != end - start || cairn_runtime::count_whole_records(&bytes).is_none() {
                return Err(Error::Corrupt(format!("{key} is torn or fails its record checksums")));
            }
            done += bytes.len() as u64;
            report.bytes += bytes.len() as u64;
            progress("log", done, total);
            segment.extend_from_slice(&bytes);
        }
        let segment = match at_ms {
            Some(t) => cairn_runtime::records_until(&segment, t, &mut stopped),
            None => segment,
        };
        let records = cairn_runtime::count_whole_records(&segment).unwrap_or(0);
        if records == 0 {
            continue;
        }
        report.records += records;
        report.segments += 1;
        write_file(&cairn_runtime::log_segment_path(dest, &file), &segment)?;
    }

    // 3. Bucket blobs (those deleted before the restore point are left out).
    let deleted = state.map(|s| s.deleted_blobs).unwrap_or_default();
    let blobs: Vec<(String, u64)> = target
        .list(format::BLOBS)
        .await?
        .into_iter()
        .filter_map(|(key, size, _)| {
            let path = key.strip_prefix(format::BLOBS)?.trim_start_matches('/').to_owned();
            let gone = deleted.get(&path).is_some_and(|t| at_ms.is_none_or(|a| *t <= a));
            (!gone).then_some((path, size))
        })
        .collect();
    let total: u64 = blobs.iter().map(|b| b.1).sum();
    let mut done = 0u64;
    for (path, _) in blobs {
        if path.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(Error::Corrupt(format!("blob {path}: unsafe path")));
        }
        let key = format!("{}/{path}", format::BLOBS);
        let bytes = target.get(&key).await?.ok_or_else(|| Error::Corrupt(format!("{key} is missing")))?;
        write_file(&dest.join(&path), &bytes)?;
        done += bytes.len() as u64;
        report.bytes += bytes.len() as u64;
        report.blobs += 1;
        progress("blobs", done, total);
    }

    // 4. Replay, as after a crash.
    progress("replay", 0, 0);
    let dest = dest.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let rt = cairn_runtime::Runtime::builder(dest).open()?;
        rt.close();
        Ok::<_, Error>(())
    })
    .await
    .map_err(|e| Error::Io { context: "replay the restored log".to_owned(), source: std::io::Error::other(e) })??;
    progress("replay", 1, 1);
    Ok(report)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io(format!("create {}", parent.display())))?;
    }
    std::fs::write(path, bytes).map_err(Error::io(format!("write {}", path.display())))?;
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(Error::io(format!("sync {}", path.display())))
}
