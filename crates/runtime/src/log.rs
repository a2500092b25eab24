//! The shard commit log: the change records of every commit, appended by the shard and made
//! durable with one `fdatasync` per round, whatever the number of objects in the round.
//!
//! Object files are written without fsync; their WAL frames go to the log instead (see
//! `cairn_storage::changes`). A commit is durable once its record is. After a crash (power
//! loss included), [`recover`] replays the records that the objects' own files lost, then the
//! old segments are deleted.
//!
//! # Format
//! Segment files `log/shard-{shard}-{segment:016x}.log`, a sequence of records:
//! `magic u32 | body_len u32 | body | crc32(body) u32` (little-endian), with body
//! `ns_len u16 | ns | name_len u16 | name | seq u64 | timestamp_ms i64 | frames` (compact WAL
//! frames, see `cairn_storage::changes`; records written before timestamps existed have another
//! magic and no timestamp). Record `seq 0` holds the creation of the object file. Reading stops
//! at the first record that is torn (short, bad magic or bad checksum): nothing after it in
//! that segment was acknowledged. Segment numbers grow across restarts (the runtime starts
//! after the highest number in `log/` and `history/`), so a segment's name is unique for good.
//!
//! # Truncation
//! A segment leaves `log/` once every commit in it is durable in the object files: on rotation
//! the shard syncs the file system (objects closed since were checkpointed with a sync when
//! they closed). With history on, it then moves to `history/` (see `history.rs`), which keeps
//! it for the retention window; otherwise it is deleted.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_storage::changes::{apply_frames, decode_frames};
use cairn_storage::{ObjectStorage, OpenOptions, Synchronous, layout};

use crate::{Error, Result};

/// Records with a commit timestamp.
const MAGIC: u32 = 0xCA1_4C07;
/// Records from before timestamps (read as timestamp 0).
const MAGIC_V1: u32 = 0xCA1_4C06;
/// The file is extended (`fallocate`) this much at a time, ahead of the records, so that the
/// per-round `fdatasync` does not have to commit a new file size every time. (Writing zeros
/// instead made fsyncs a little faster but cost the shard thread a 4 MiB copy every few
/// thousand commits, which measured worse.)
const PREALLOCATE_BYTES: u64 = 4 * 1024 * 1024;

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

pub(crate) fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("log")
}

/// The file name of a segment.
pub(crate) fn segment_name(shard: usize, segment: u64) -> String {
    format!("shard-{shard}-{segment:016x}.log")
}

/// The shard and segment number in a segment's file name.
pub(crate) fn parse_segment_name(name: &str) -> Option<(usize, u64)> {
    let rest = name.strip_prefix("shard-")?.strip_suffix(".log")?;
    let (shard, seg) = rest.split_once('-')?;
    Some((shard.parse().ok()?, u64::from_str_radix(seg, 16).ok()?))
}

/// Where one record sits in its segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordRef {
    /// The object's commit sequence number.
    pub(crate) seq: u64,
    /// When it committed (ms since the epoch; 0 for records older than timestamps).
    pub(crate) ts: i64,
    /// Byte offset of the record in its segment.
    pub(crate) offset: u64,
    /// Bytes of the whole record (header, body, checksum).
    pub(crate) len: u64,
}

/// Records per object, by namespace then name.
pub(crate) type RecordIndex = HashMap<String, HashMap<String, Vec<RecordRef>>>;

/// A segment that left `log/`: its path and what it holds.
pub(crate) struct SealedSegment {
    pub(crate) path: PathBuf,
    pub(crate) records: RecordIndex,
}

/// One shard's open log segment.
pub(crate) struct CommitLog {
    dir: PathBuf,
    shard: usize,
    segment: u64,
    file: Arc<File>,
    path: PathBuf,
    len: u64,
    /// Bytes of the file already written with zeros (or records).
    allocated: u64,
    /// Records of the round being filled, written in one `write` at the end of the round.
    buf: Vec<u8>,
    /// With history on: where each object's records are in this segment.
    index: Option<RecordIndex>,
    /// The segment is rotated once it is larger than this.
    segment_bytes: u64,
}

impl CommitLog {
    /// Starts segment number `segment` (recovery has removed the old ones). With `index`, the
    /// log remembers where each object's records are (for history).
    pub(crate) fn create(data_dir: &Path, shard: usize, segment: u64, index: bool, segment_bytes: u64) -> Result<Self> {
        let dir = log_dir(data_dir);
        std::fs::create_dir_all(&dir).map_err(io("create the log directory"))?;
        let (file, path) = open_segment(&dir, shard, segment)?;
        Ok(CommitLog {
            dir,
            shard,
            segment,
            file: Arc::new(file),
            path,
            len: 0,
            allocated: 0,
            buf: Vec::new(),
            index: index.then(HashMap::new),
            segment_bytes,
        })
    }

    /// The open segment's file, for reading back records the index points at (flushed ones).
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Where the records of one object are in the open segment (flushed or not).
    pub(crate) fn records_of(&self, ns: &str, name: &str) -> &[RecordRef] {
        self.index.as_ref().and_then(|i| i.get(ns)).and_then(|m| m.get(name)).map_or(&[], Vec::as_slice)
    }

    /// Adds a record for one commit to the round's buffer.
    pub(crate) fn append(&mut self, ns: &str, name: &str, seq: u64, ts: i64, frames: &[u8]) {
        let body_len = 2 + ns.len() + 2 + name.len() + 16 + frames.len();
        let offset = self.len + self.buf.len() as u64;
        if let Some(index) = self.index.as_mut() {
            let names = match index.get_mut(ns) {
                Some(m) => m,
                None => index.entry(ns.to_owned()).or_default(),
            };
            let refs = match names.get_mut(name) {
                Some(v) => v,
                None => names.entry(name.to_owned()).or_default(),
            };
            refs.push(RecordRef { seq, ts, offset, len: 12 + body_len as u64 });
        }
        self.buf.reserve(12 + body_len);
        self.buf.extend_from_slice(&MAGIC.to_le_bytes());
        self.buf.extend_from_slice(&u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes());
        let start = self.buf.len();
        for s in [ns, name] {
            self.buf.extend_from_slice(&u16::try_from(s.len()).unwrap_or(u16::MAX).to_le_bytes());
            self.buf.extend_from_slice(s.as_bytes());
        }
        self.buf.extend_from_slice(&seq.to_le_bytes());
        self.buf.extend_from_slice(&ts.to_le_bytes());
        self.buf.extend_from_slice(frames);
        let crc = crc32fast::hash(&self.buf[start..]);
        self.buf.extend_from_slice(&crc.to_le_bytes());
    }

    /// Writes the round's records to the segment and returns the file to fsync, or `None` if
    /// the round wrote nothing.
    pub(crate) fn flush(&mut self) -> Result<Option<Arc<File>>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let end = self.len + self.buf.len() as u64;
        while self.allocated < end {
            rustix::fs::fallocate(&*self.file, rustix::fs::FallocateFlags::empty(), self.allocated, PREALLOCATE_BYTES)
                .map_err(|e| Error::durability("extend the commit log", &e.into()))?;
            self.allocated += PREALLOCATE_BYTES;
        }
        self.file.write_all_at(&self.buf, self.len).map_err(|e| Error::durability("append to the commit log", &e))?;
        self.len = end;
        self.buf.clear();
        Ok(Some(Arc::clone(&self.file)))
    }

    /// The open segment's number and how many bytes of records it holds (flushed ones).
    pub(crate) fn position(&self) -> (u64, u64) {
        (self.segment, self.len)
    }

    /// Whether the segment is due for rotation.
    pub(crate) fn is_full(&self) -> bool {
        self.len >= self.segment_bytes
    }

    /// Starts the next segment. The caller has made every commit of the old segment durable
    /// in the object files first. Without an index the old segment is deleted; with one it is
    /// returned (cut to its records) for history to keep.
    pub(crate) fn rotate(&mut self) -> Result<Option<SealedSegment>> {
        let (file, path) = open_segment(&self.dir, self.shard, self.segment + 1)?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io("sync the log directory"))?;
        let old_path = std::mem::replace(&mut self.path, path);
        let old_file = std::mem::replace(&mut self.file, Arc::new(file));
        let old_len = self.len;
        self.segment += 1;
        self.len = 0;
        self.allocated = 0;
        match self.index.as_mut() {
            None => {
                std::fs::remove_file(&old_path).map_err(io("remove an old log segment"))?;
                Ok(None)
            }
            Some(index) => {
                old_file.set_len(old_len).map_err(io("cut a sealed log segment"))?;
                old_file.sync_all().map_err(io("sync a sealed log segment"))?;
                Ok(Some(SealedSegment { path: old_path, records: std::mem::take(index) }))
            }
        }
    }
}

fn open_segment(dir: &Path, shard: usize, segment: u64) -> Result<(File, PathBuf)> {
    let path = dir.join(segment_name(shard, segment));
    // Readable too: history reads records back from the open segment.
    let file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .map_err(io("create a log segment"))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io("sync the log directory"))?;
    Ok((file, path))
}

/// One decoded record.
pub(crate) struct Record {
    pub(crate) ns: String,
    pub(crate) name: String,
    pub(crate) seq: u64,
    pub(crate) ts: i64,
    pub(crate) frames: Vec<u8>,
    /// Where it was in the bytes it was read from.
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// Decodes the valid prefix of a segment (or of a slice holding whole records).
pub(crate) fn read_records(bytes: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let u32_at = |b: &[u8], p: usize| b.get(p..p + 4).and_then(|s| s.try_into().ok()).map(u32::from_le_bytes);
    while let (Some(magic), Some(len)) = (u32_at(bytes, pos), u32_at(bytes, pos + 4)) {
        let len = len as usize;
        let Some(body) = bytes.get(pos + 8..pos + 8 + len) else { break };
        let Some(crc) = u32_at(bytes, pos + 8 + len) else { break };
        if (magic != MAGIC && magic != MAGIC_V1) || crc32fast::hash(body) != crc {
            break;
        }
        let Some(mut rec) = decode_body(body, magic == MAGIC) else { break };
        rec.offset = pos as u64;
        rec.len = 12 + len as u64;
        out.push(rec);
        pos += 12 + len;
    }
    out
}

fn decode_body(body: &[u8], with_ts: bool) -> Option<Record> {
    let mut p = 0usize;
    let mut string = || -> Option<String> {
        let n = u16::from_le_bytes(body.get(p..p + 2)?.try_into().ok()?) as usize;
        let s = std::str::from_utf8(body.get(p + 2..p + 2 + n)?).ok()?.to_owned();
        p += 2 + n;
        Some(s)
    };
    let ns = string()?;
    let name = string()?;
    let seq = u64::from_le_bytes(body.get(p..p + 8)?.try_into().ok()?);
    p += 8;
    let mut ts = 0;
    if with_ts {
        ts = i64::from_le_bytes(body.get(p..p + 8)?.try_into().ok()?);
        p += 8;
    }
    let frames = body.get(p..)?.to_vec();
    decode_frames(&frames)?;
    Some(Record { ns, name, seq, ts, frames, offset: 0, len: 0 })
}

/// A commit's sequence number and frames.
type LoggedCommit = (u64, Vec<u8>);

/// What recovery did.
#[derive(Debug, Default)]
pub(crate) struct Recovery {
    pub(crate) segments: usize,
    pub(crate) records: usize,
    pub(crate) objects_repaired: usize,
    /// Objects the replay wrote to, with their alarm afterwards (for the catalog: an object
    /// created, or an alarm set, by a replayed commit may be missing from it, as after a
    /// restore from a backup).
    pub(crate) replayed: Vec<(String, String, Option<i64>)>,
}

/// Replays the commit log into the object files, then hands every segment to `history` to
/// keep (cut to its readable records), or deletes it without history.
///
/// For each object with records: if its database file has no header (its creation never
/// reached the disk), the file is rebuilt from the `seq 0` record on; otherwise SQLite opens it
/// (recovering whatever of its WAL survived), which gives its last commit `S`, and the frames of
/// the records after `S` are applied to the checkpointed file in order.
pub(crate) fn recover(data_dir: &Path, history: Option<&crate::history::History>) -> Result<Recovery> {
    let dir = log_dir(data_dir);
    let mut report = Recovery::default();
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(report) };
    let mut segments: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    let mut by_object: BTreeMap<(String, String), Vec<LoggedCommit>> = BTreeMap::new();
    let mut sealed = Vec::with_capacity(segments.len());
    for seg in &segments {
        let bytes = std::fs::read(seg).map_err(io("read a log segment"))?;
        let mut index = RecordIndex::new();
        let mut end = 0;
        for rec in read_records(&bytes) {
            report.records += 1;
            end = rec.offset + rec.len;
            let r = RecordRef { seq: rec.seq, ts: rec.ts, offset: rec.offset, len: rec.len };
            index.entry(rec.ns.clone()).or_default().entry(rec.name.clone()).or_default().push(r);
            by_object.entry((rec.ns, rec.name)).or_default().push((rec.seq, rec.frames));
        }
        sealed.push((seg.clone(), index, end));
    }
    report.segments = segments.len();
    for ((ns, name), mut records) in by_object {
        records.sort_by_key(|(seq, _)| *seq);
        if let Some(alarm) = replay_object(data_dir, &ns, &name, &records)? {
            report.objects_repaired += 1;
            report.replayed.push((ns, name, alarm));
        }
    }
    for (path, records, end) in sealed {
        match history {
            Some(h) => {
                let f = std::fs::OpenOptions::new().write(true).open(&path).map_err(io("open a replayed segment"))?;
                f.set_len(end).and_then(|()| f.sync_all()).map_err(io("cut a replayed segment"))?;
                h.archive(&SealedSegment { path, records })?;
            }
            None => std::fs::remove_file(&path).map_err(io("remove a replayed log segment"))?,
        }
    }
    if !segments.is_empty() {
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io("sync the log directory"))?;
    }
    Ok(report)
}

/// Replays one object's records; returns `None` if there was nothing to apply, or the
/// object's alarm after the replay.
fn replay_object(data_dir: &Path, ns: &str, name: &str, records: &[LoggedCommit]) -> Result<Option<Option<i64>>> {
    let path = layout::object_path(data_dir, ns, name);
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    let header_ok = std::fs::metadata(&path).is_ok_and(|m| m.len() >= 4096);
    let has_creation = records.first().is_some_and(|(seq, _)| *seq == 0);
    let options = OpenOptions { synchronous: Synchronous::Normal, ..OpenOptions::default() };
    let base_seq = if !header_ok && has_creation && !wal_has_frames(&wal) {
        // The file's creation never reached the disk: rebuild it from the creation record.
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&wal);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("create an object directory"))?;
        }
        None
    } else {
        // SQLite recovers the surviving WAL prefix and checkpoints it on open; closing syncs.
        let storage = ObjectStorage::open(&path, &options)?;
        let seq = storage.committed_seq();
        drop(storage);
        Some(seq)
    };
    let mut frames = Vec::new();
    let mut expected = base_seq.map_or(0, |s| s + 1);
    for (seq, f) in records {
        if base_seq.is_some_and(|b| *seq <= b) {
            continue;
        }
        if *seq != expected {
            return Err(Error::Recovery {
                message: format!(
                    "object {ns}/{name}: the log continues at commit {seq} but the file holds commit {}",
                    expected.saturating_sub(1)
                ),
            });
        }
        frames.extend_from_slice(f);
        expected += 1;
    }
    if frames.is_empty() {
        return Ok(None);
    }
    let _ = std::fs::remove_file(&wal);
    apply_frames(&path, &frames)?;
    if let Some(parent) = path.parent() {
        File::open(parent).and_then(|d| d.sync_all()).map_err(io("sync an object directory"))?;
    }
    // Check that the result opens and holds the last logged commit.
    let storage = ObjectStorage::open(&path, &options)?;
    let got = storage.committed_seq();
    if got != expected - 1 {
        return Err(Error::Recovery {
            message: format!("object {ns}/{name}: replay ended at commit {got}, expected {}", expected - 1),
        });
    }
    Ok(Some(storage.get_alarm()?))
}

fn wal_has_frames(wal: &Path) -> bool {
    std::fs::metadata(wal).is_ok_and(|m| m.len() > cairn_storage::changes::WAL_HEADER_BYTES)
}

#[cfg(test)]
mod tests;
