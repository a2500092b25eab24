//! What a continuous backup needs from the runtime, without waking idle objects.
//!
//! A backup is a snapshot of the object files plus every commit record after it. The runtime
//! provides the three pieces:
//! - [`Runtime::log_positions`]: how far each shard's commit log is durable, so a backup ships
//!   only acknowledged-or-about-to-be records that will survive a crash;
//! - [`Runtime::segment_files`]: the log segments on disk (the open ones in `log/`, the sealed
//!   ones kept as history), which a backup reads directly;
//! - [`Runtime::copy_objects`]: byte copies of object files, each taken by its shard between
//!   events after the shard's log is durable. Copies need not agree with each other: each file
//!   carries its last commit's sequence number, and recovery applies only the records after
//!   it, so snapshot + the log from the snapshot's start rebuilds every object.
//!
//! [`Runtime::pin_history`] keeps compaction from deleting segments a backup has not shipped.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use cairn_storage::layout;

use crate::shard::{Command, shard_of};
use crate::{Error, Result, Runtime, history, log};

/// How far one shard's commit log is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogPosition {
    /// The shard.
    pub shard: usize,
    /// Its open segment's number.
    pub segment: u64,
    /// Bytes of that segment that are durable.
    pub offset: u64,
}

/// A commit-log segment file on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFile {
    /// Its file name (`shard-{n}-{segment:016x}.log`), the same in `log/` and in history.
    pub file_name: String,
    /// The shard that wrote it.
    pub shard: usize,
    /// Its number.
    pub segment: u64,
    /// Where it is now.
    pub path: PathBuf,
    /// How many of its bytes may be read: the durable end for a shard's open segment, the
    /// file's length otherwise (a backup still reads only whole records from it).
    pub readable: u64,
}

/// One object file copied by [`Runtime::copy_objects`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopiedObject {
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The copied files, relative to the destination (the database, and its WAL if it had one).
    pub files: Vec<PathBuf>,
}

/// Decodes a buffer that must hold whole commit records and nothing else; returns how many,
/// or `None` if any byte is not part of a valid record (bad checksum, torn, trailing bytes).
pub fn count_whole_records(bytes: &[u8]) -> Option<usize> {
    let records = log::read_records(bytes);
    let end = records.last().map_or(0, |r| r.offset + r.len);
    (end == bytes.len() as u64).then_some(records.len())
}

/// The longest prefix of `bytes` made of whole valid records, in bytes.
pub fn whole_records_len(bytes: &[u8]) -> usize {
    log::read_records(bytes).last().map_or(0, |r| usize::try_from(r.offset + r.len).unwrap_or(0))
}

/// The commit timestamps (ms) of the whole records in `bytes`.
pub fn record_timestamps(bytes: &[u8]) -> Vec<i64> {
    log::read_records(bytes).into_iter().map(|r| r.ts).collect()
}

/// Keeps the records of `bytes` (whole records) that committed at or before `until_ms`. An
/// object's records stop at its first one after `until_ms`: `stopped` collects those objects
/// across calls, so later segments drop their records too (sequence numbers stay contiguous).
pub fn records_until(
    bytes: &[u8],
    until_ms: i64,
    stopped: &mut std::collections::HashSet<(String, String)>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for rec in log::read_records(bytes) {
        let key = (rec.ns, rec.name);
        if stopped.contains(&key) {
            continue;
        }
        if rec.ts > until_ms {
            stopped.insert(key);
            continue;
        }
        let (start, end) = (rec.offset as usize, (rec.offset + rec.len) as usize);
        out.extend_from_slice(bytes.get(start..end).unwrap_or_default());
    }
    out
}

/// Where log segments go for recovery to replay them: `{data}/log/{file_name}`.
pub fn log_segment_path(data_dir: &Path, file_name: &str) -> PathBuf {
    log::log_dir(data_dir).join(file_name)
}

/// Parses a segment file name into `(shard, segment)`.
pub fn parse_segment_file_name(name: &str) -> Option<(usize, u64)> {
    log::parse_segment_name(name)
}

impl Runtime {
    /// How far each shard's commit log is durable, for shards that have written since the
    /// runtime started. Empty with [`crate::Durability::Os`] (there is no log).
    pub fn log_positions(&self) -> Vec<LogPosition> {
        self.inner
            .durable
            .log_positions()
            .into_iter()
            .map(|(shard, segment, offset)| LogPosition { shard, segment, offset })
            .collect()
    }

    /// The log segments on disk a backup may read, oldest first per shard: sealed segments in
    /// history, rotated segments not yet moved there, and each shard's open segment up to its
    /// durable end (left out when nothing in it is durable yet).
    ///
    /// # Errors
    /// Reading the directories.
    pub fn segment_files(&self) -> Result<Vec<SegmentFile>> {
        let data_dir = &self.inner.config.data_dir;
        let positions = self.log_positions();
        let mut out = Vec::new();
        let dirs = [(history::history_dir(data_dir).join("segments"), true), (log::log_dir(data_dir), false)];
        for (dir, sealed) in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries {
                let entry = entry.map_err(|source| Error::Io { context: "list log segments", source })?;
                let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else { continue };
                let Some((shard, segment)) = log::parse_segment_name(&file_name) else { continue };
                let Ok(meta) = entry.metadata() else { continue };
                let readable = if sealed {
                    meta.len()
                } else {
                    match positions.iter().find(|p| p.shard == shard) {
                        Some(p) if segment < p.segment => meta.len(),
                        Some(p) if segment == p.segment => p.offset.min(meta.len()),
                        _ => continue,
                    }
                };
                out.push(SegmentFile { file_name, shard, segment, path: entry.path(), readable });
            }
        }
        out.sort_by_key(|f| (f.shard, f.segment));
        out.dedup_by(|later, earlier| later.file_name == earlier.file_name);
        Ok(out)
    }

    /// Keeps history compaction from deleting segments with records newer than `after_ms`
    /// (what a backup has not shipped yet); `None` lifts the pin.
    pub fn pin_history(&self, after_ms: Option<i64>) {
        self.inner.history_pin.store(after_ms.unwrap_or(i64::MAX), Ordering::SeqCst);
    }

    /// Copies the files of every object written so far into `dest` (same relative paths as in
    /// the data directory), `batch` objects per shard command so shards keep serving events in
    /// between. Each shard makes its log durable before copying (a copy never holds a commit
    /// that could be lost) and copies between events (a copy is one commit's state). Idle
    /// objects are copied from their files without being opened. `progress` is called with
    /// the number of objects copied so far.
    ///
    /// # Errors
    /// I/O errors, or [`Error::ShuttingDown`].
    pub async fn copy_objects(
        &self,
        dest: &Path,
        batch: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<CopiedObject>> {
        let shards = self.inner.shards.len();
        let mut after: Option<(String, String)> = None;
        let mut copied = Vec::new();
        loop {
            let page = {
                let catalog = self.inner.catalog.lock().map_err(|_| Error::ShuttingDown)?;
                catalog.objects_after(after.as_ref(), batch.max(1))?
            };
            let Some(last) = page.last().cloned() else { break };
            after = Some(last);
            let mut per_shard: Vec<Vec<(String, String)>> = vec![Vec::new(); shards];
            for (ns, name) in page {
                if let Some(v) = per_shard.get_mut(shard_of(&ns, &name, shards)) {
                    v.push((ns, name));
                }
            }
            for (shard, objects) in per_shard.into_iter().enumerate() {
                if objects.is_empty() {
                    continue;
                }
                let (reply, rx) = tokio::sync::oneshot::channel();
                let sender = self.inner.shards.get(shard).ok_or(Error::ShuttingDown)?;
                sender
                    .send(Command::CopyObjects { objects, dest: dest.to_path_buf(), reply })
                    .await
                    .map_err(|_| Error::ShuttingDown)?;
                copied.extend(rx.await.map_err(|_| Error::ShuttingDown)??);
                progress(copied.len());
            }
        }
        Ok(copied)
    }

    /// Writes a consistent copy of the catalog (objects and alarms) to `dest`.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn copy_catalog(&self, dest: &Path) -> Result<()> {
        let _ = std::fs::remove_file(dest);
        let catalog = self.inner.catalog.lock().map_err(|_| Error::ShuttingDown)?;
        catalog.vacuum_into(dest)
    }
}

/// Copies one object's files (called by its shard, between events, with its log durable).
/// The object may be open (its database and WAL are quiescent between events) or closed.
pub(crate) fn copy_object_files(data_dir: &Path, ns: &str, name: &str, dest: &Path) -> Result<CopiedObject> {
    let path = layout::object_path(data_dir, ns, name);
    let rel = path.strip_prefix(data_dir).map(Path::to_path_buf).unwrap_or_else(|_| path.clone());
    let mut files = Vec::new();
    for suffix in ["", "-wal"] {
        let from = PathBuf::from(format!("{}{suffix}", path.display()));
        let rel_file = PathBuf::from(format!("{}{suffix}", rel.display()));
        if !from.exists() {
            continue;
        }
        let to = dest.join(&rel_file);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|source| Error::Io { context: "create a copy's directory", source })?;
        }
        std::fs::copy(&from, &to).map_err(|source| Error::Io { context: "copy an object file", source })?;
        files.push(rel_file);
    }
    Ok(CopiedObject { namespace: ns.to_owned(), name: name.to_owned(), files })
}
