//! History: every commit of every object for a retention window, so that an object can be
//! read, restored or forked as it was at any bookmark (point-in-time recovery).
//!
//! History is the commit log kept instead of deleted, plus *bases*:
//! - A sealed log segment moves from `log/` to `history/segments/` (same file system, a
//!   rename) and its records are indexed in `history/index.db`: one row per (object, segment)
//!   with the position, sequence number and timestamp of each of the object's records there.
//!   The shard's open segment is indexed in memory by the log itself.
//! - A base is a copy of an object file at one commit (`history/bases/{uuid}.db`). An object's
//!   creation record (`seq 0`) is an implicit base (the empty file). Explicit bases are taken
//!   when history has nothing for an object's latest commit (data from before history, or a
//!   commit whose record was torn in a crash that its file survived), and by compaction.
//!
//! The state at commit `S` is the newest base at or before `S`, plus the frames of every record
//! after it up to `S`, applied in order (`materialize`). The records must be contiguous; a gap
//! is reported, never papered over.
//!
//! # Compaction
//! A segment whose newest record is older than the longest retention window is folded away:
//! for each object in it, a base at its last record there is built, older bases of the object
//! are deleted, then the segment and its index rows. So history holds, per object, one base at
//! the window's start plus the records since: its size is the data plus the window's changes.
//! Compaction takes the history lock exclusively; reading history takes it shared.
//!
//! # Crash safety
//! Files move first and are indexed after; on open, segments the index does not know are
//! indexed again from their records and rows whose file is gone are dropped. A base is written
//! and synced under a fresh name before its row exists.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use cairn_storage::Bookmark;
use cairn_storage::changes::apply_frames;
use rusqlite::{Connection, OptionalExtension, params};

use crate::log::{RecordIndex, RecordRef, SealedSegment, log_dir, parse_segment_name, read_records};
use crate::{Error, Result};

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

fn db(context: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |source| Error::Catalog { context, source }
}

/// Most bytes of frames applied in one pass while materializing (bounds memory).
const APPLY_BATCH_BYTES: usize = 32 * 1024 * 1024;

/// The `history/` directory of a data directory.
pub(crate) fn history_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("history")
}

/// The number for the next log segment: above every segment in `log/` and `history/`.
pub(crate) fn next_segment_number(data_dir: &Path) -> u64 {
    let mut max = 0;
    for dir in [log_dir(data_dir), history_dir(data_dir).join("segments")] {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten() {
            if let Some((_, n)) = e.file_name().to_str().and_then(parse_segment_name) {
                max = max.max(n);
            }
        }
    }
    max + 1
}

/// The records a shard has not sealed yet: its open segment.
pub(crate) struct OpenSegment<'a> {
    pub(crate) file: &'a File,
    pub(crate) records: &'a [RecordRef],
}

/// Where a record to apply is.
enum Source {
    Sealed(PathBuf),
    Open,
}

/// How to build one object's state at one commit.
pub(crate) struct Plan {
    /// The base file to start from, or `None` to start from nothing (the creation record).
    base: Option<PathBuf>,
    /// Records to apply, in order.
    records: Vec<(RecordRef, Source)>,
    /// The commit the result holds.
    pub(crate) seq: u64,
}

/// A connection to the history index, with the lock shared by every connection of a runtime.
pub(crate) struct History {
    dir: PathBuf,
    conn: Connection,
    lock: Arc<RwLock<()>>,
}

impl History {
    /// Opens (creating) `history/` and its index. Call [`History::reconcile`] once at start.
    pub(crate) fn open(data_dir: &Path, lock: Arc<RwLock<()>>) -> Result<Self> {
        let dir = history_dir(data_dir);
        for sub in ["segments", "bases", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(io("create the history directory"))?;
        }
        let conn = Connection::open(dir.join("index.db")).map_err(db("open the history index"))?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(db("configure the history index"))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS segments(
                 file TEXT PRIMARY KEY, max_ts INTEGER NOT NULL, bytes INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS runs(
                 namespace TEXT NOT NULL, name TEXT NOT NULL, file TEXT NOT NULL,
                 first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
                 first_ts INTEGER NOT NULL, last_ts INTEGER NOT NULL, refs BLOB NOT NULL,
                 PRIMARY KEY(namespace, name, file)) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS runs_by_file ON runs(file);
             CREATE INDEX IF NOT EXISTS runs_by_last ON runs(namespace, name, last_seq);
             CREATE TABLE IF NOT EXISTS bases(
                 namespace TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL,
                 ts INTEGER NOT NULL, file TEXT NOT NULL,
                 PRIMARY KEY(namespace, name, seq)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS pending_restores(
                 namespace TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL,
                 PRIMARY KEY(namespace, name)) WITHOUT ROWID;",
        )
        .map_err(db("initialize the history index"))?;
        Ok(History { dir, conn, lock })
    }

    /// Makes the index agree with the files: indexes segments it does not know (moved just
    /// before a crash), drops rows of segments and bases whose file is gone, deletes base
    /// files without a row and leftovers in `tmp/`.
    pub(crate) fn reconcile(&self) -> Result<()> {
        let _guard = self.lock.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let known: std::collections::HashSet<String> = self
            .conn
            .prepare("SELECT file FROM segments")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(db("read the history index"))?;
        let seg_dir = self.dir.join("segments");
        let mut present = std::collections::HashSet::new();
        for e in std::fs::read_dir(&seg_dir).map_err(io("list history segments"))?.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_owned) else { continue };
            if parse_segment_name(&name).is_none() {
                continue;
            }
            present.insert(name.clone());
            if !known.contains(&name) {
                let bytes = std::fs::read(e.path()).map_err(io("read a history segment"))?;
                let mut index = RecordIndex::new();
                for rec in read_records(&bytes) {
                    let r = RecordRef { seq: rec.seq, ts: rec.ts, offset: rec.offset, len: rec.len };
                    index.entry(rec.ns).or_default().entry(rec.name).or_default().push(r);
                }
                self.index_segment(&name, &index, bytes.len() as u64)?;
            }
        }
        for gone in known.difference(&present) {
            self.drop_segment_rows(gone)?;
        }
        let bases: Vec<String> = self
            .conn
            .prepare("SELECT file FROM bases")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(db("read the history index"))?;
        let bases: std::collections::HashSet<String> = bases.into_iter().collect();
        for e in std::fs::read_dir(self.dir.join("bases")).map_err(io("list history bases"))?.flatten() {
            if let Some(name) = e.file_name().to_str()
                && !bases.contains(name)
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
        for b in &bases {
            if !self.dir.join("bases").join(b).exists() {
                self.conn.execute("DELETE FROM bases WHERE file = ?1", [b]).map_err(db("drop a lost base"))?;
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.dir.join("tmp")) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(())
    }

    /// A fresh path under `history/tmp/` for building an image.
    pub(crate) fn temp_path(&self) -> PathBuf {
        self.dir.join("tmp").join(format!("{}.db", uuid::Uuid::new_v4()))
    }

    /// Keeps a sealed segment: moves it into `history/segments/` and indexes its records. A
    /// segment without records is deleted.
    pub(crate) fn archive(&self, seg: &SealedSegment) -> Result<()> {
        // Moving a segment in needs no lock: readers only use segments the index names.
        let name =
            seg.path.file_name().and_then(|n| n.to_str()).map(str::to_owned).ok_or(Error::Io {
                context: "name a sealed segment",
                source: std::io::ErrorKind::InvalidInput.into(),
            })?;
        if seg.records.is_empty() {
            return std::fs::remove_file(&seg.path).map_err(io("remove an empty log segment"));
        }
        let dest = self.dir.join("segments").join(&name);
        std::fs::rename(&seg.path, &dest).map_err(io("move a segment into history"))?;
        for d in [self.dir.join("segments"), seg.path.parent().map(Path::to_path_buf).unwrap_or_default()] {
            File::open(d).and_then(|f| f.sync_all()).map_err(io("sync a history directory"))?;
        }
        let bytes = std::fs::metadata(&dest).map_err(io("read a history segment's size"))?.len();
        self.index_segment(&name, &seg.records, bytes)
    }

    fn index_segment(&self, file: &str, records: &RecordIndex, bytes: u64) -> Result<()> {
        let max_ts = records.values().flat_map(|m| m.values()).flatten().map(|r| r.ts).max().unwrap_or(0);
        let tx = self.conn.unchecked_transaction().map_err(db("index a history segment"))?;
        tx.execute(
            "INSERT OR REPLACE INTO segments(file, max_ts, bytes) VALUES (?1, ?2, ?3)",
            params![file, max_ts, i64::try_from(bytes).unwrap_or(i64::MAX)],
        )
        .map_err(db("index a history segment"))?;
        {
            let mut insert = tx
                .prepare(
                    "INSERT OR REPLACE INTO runs(namespace, name, file, first_seq, last_seq, first_ts, last_ts, refs)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(db("index a history segment"))?;
            for (ns, names) in records {
                for (name, refs) in names {
                    let (Some(first), Some(last)) = (refs.first(), refs.last()) else { continue };
                    insert
                        .execute(params![
                            ns,
                            name,
                            file,
                            seq_sql(first.seq),
                            seq_sql(last.seq),
                            first.ts,
                            last.ts,
                            encode_refs(refs)
                        ])
                        .map_err(db("index a history segment"))?;
                }
            }
        }
        tx.commit().map_err(db("index a history segment"))
    }

    fn drop_segment_rows(&self, file: &str) -> Result<()> {
        self.conn.execute("DELETE FROM runs WHERE file = ?1", [file]).map_err(db("drop a history segment"))?;
        self.conn.execute("DELETE FROM segments WHERE file = ?1", [file]).map_err(db("drop a history segment"))?;
        Ok(())
    }

    /// The newest commit history knows for an object (sealed records and bases; the caller
    /// checks its open segment first).
    pub(crate) fn last_known_seq(&self, ns: &str, name: &str) -> Result<Option<u64>> {
        self.conn
            .prepare_cached(
                "SELECT max(s) FROM (
                    SELECT max(last_seq) AS s FROM runs WHERE namespace = ?1 AND name = ?2
                    UNION ALL SELECT max(seq) FROM bases WHERE namespace = ?1 AND name = ?2)",
            )
            .and_then(|mut s| s.query_row(params![ns, name], |r| r.get::<_, Option<i64>>(0)))
            .map(|v| v.map(seq_from_sql))
            .map_err(db("read the history index"))
    }

    /// Records a base: `write` writes the image at `seq` to the path it is given.
    pub(crate) fn add_base(
        &self,
        ns: &str,
        name: &str,
        seq: u64,
        ts: i64,
        write: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        let file = format!("{}.db", uuid::Uuid::new_v4());
        let path = self.dir.join("bases").join(&file);
        write(&path)?;
        File::open(self.dir.join("bases")).and_then(|d| d.sync_all()).map_err(io("sync the bases directory"))?;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO bases(namespace, name, seq, ts, file) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![ns, name, seq_sql(seq), ts, file],
            )
            .map_err(db("record a history base"))?;
        Ok(())
    }

    /// How to build the object's state at commit `target`.
    ///
    /// # Errors
    /// [`Error::HistoryUnavailable`] if history does not reach back to `target` or has a gap.
    pub(crate) fn plan(&self, ns: &str, name: &str, target: u64, open: Option<&OpenSegment<'_>>) -> Result<Plan> {
        let base: Option<(u64, String)> = self
            .conn
            .prepare_cached(
                "SELECT seq, file FROM bases WHERE namespace = ?1 AND name = ?2 AND seq <= ?3
                 ORDER BY seq DESC LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row(params![ns, name, seq_sql(target)], |r| Ok((seq_from_sql(r.get(0)?), r.get(1)?))).optional()
            })
            .map_err(db("read the history index"))?;
        let after = base.as_ref().map(|(s, _)| *s);
        let mut records: Vec<(RecordRef, Source)> = Vec::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT file, refs FROM runs WHERE namespace = ?1 AND name = ?2
                       AND first_seq <= ?3 AND last_seq > ?4",
                )
                .map_err(db("read the history index"))?;
            let rows = stmt
                .query_map(params![ns, name, seq_sql(target), after.map_or(-1, seq_sql)], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
                })
                .map_err(db("read the history index"))?;
            for row in rows {
                let (file, refs) = row.map_err(db("read the history index"))?;
                let path = self.dir.join("segments").join(file);
                for r in decode_refs(&refs) {
                    if r.seq <= target && after.is_none_or(|a| r.seq > a) {
                        records.push((r, Source::Sealed(path.clone())));
                    }
                }
            }
        }
        if let Some(open) = open {
            for r in open.records {
                if r.seq <= target && after.is_none_or(|a| r.seq > a) {
                    records.push((*r, Source::Open));
                }
            }
        }
        records.sort_by_key(|(r, _)| r.seq);
        records.dedup_by_key(|(r, _)| r.seq);
        let mut expected = after.map_or(0, |a| a + 1);
        for (r, _) in &records {
            if r.seq != expected {
                return Err(unavailable(ns, name, target, format!("commit {expected} is missing from history")));
            }
            expected += 1;
        }
        if base.is_none() && records.is_empty() {
            return Err(unavailable(ns, name, target, "history holds nothing that old".to_owned()));
        }
        if expected != target + 1 {
            return Err(unavailable(
                ns,
                name,
                target,
                format!("history ends at commit {}", expected.saturating_sub(1)),
            ));
        }
        Ok(Plan { base: base.map(|(_, f)| self.dir.join("bases").join(f)), records, seq: target })
    }

    /// Builds the object's state at commit `target` into `dest` (a new file, synced). Holds the
    /// history lock shared from planning to the last read, so compaction cannot remove a
    /// segment the plan uses.
    pub(crate) fn rebuild(
        &self,
        ns: &str,
        name: &str,
        target: u64,
        open: Option<&OpenSegment<'_>>,
        dest: &Path,
    ) -> Result<()> {
        let _guard = self.lock.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let plan = self.plan(ns, name, target, open)?;
        self.materialize(&plan, dest, open.map(|o| o.file))
    }

    /// Builds the state a [`Plan`] describes into `dest`. The caller holds the history lock.
    fn materialize(&self, plan: &Plan, dest: &Path, open_file: Option<&File>) -> Result<()> {
        let _ = std::fs::remove_file(dest);
        match &plan.base {
            Some(base) => {
                std::fs::copy(base, dest).map_err(io("copy a history base"))?;
            }
            None => {
                File::create(dest).map_err(io("create an image"))?;
            }
        }
        let mut batch = Vec::new();
        let mut files: std::collections::HashMap<PathBuf, File> = std::collections::HashMap::new();
        for (r, source) in &plan.records {
            let mut bytes = vec![0u8; usize::try_from(r.len).unwrap_or(0)];
            let file = match source {
                Source::Open => {
                    open_file.ok_or(Error::Recovery { message: "the open segment is not available".into() })?
                }
                Source::Sealed(path) => {
                    if !files.contains_key(path) {
                        files.insert(path.clone(), File::open(path).map_err(io("open a history segment"))?);
                    }
                    files.get(path).ok_or(Error::Recovery { message: "a history segment vanished".into() })?
                }
            };
            file.read_exact_at(&mut bytes, r.offset).map_err(io("read a history record"))?;
            let rec = read_records(&bytes).into_iter().next().filter(|rec| rec.seq == r.seq).ok_or_else(|| {
                Error::Recovery { message: format!("history record of commit {} is unreadable", r.seq) }
            })?;
            batch.extend_from_slice(&rec.frames);
            if batch.len() >= APPLY_BATCH_BYTES {
                apply_frames(dest, &batch)?;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            apply_frames(dest, &batch)?;
        }
        let (seq, _) = cairn_storage::image::image_commit(dest)?;
        if seq != plan.seq {
            return Err(Error::Recovery {
                message: format!("rebuilding commit {} from history gave commit {seq}", plan.seq),
            });
        }
        Ok(())
    }

    /// The newest commit at or before `time_ms`, as a bookmark, from sealed records, bases and
    /// the open segment. `None` if history holds no commit that old.
    pub(crate) fn commit_at(
        &self,
        ns: &str,
        name: &str,
        time_ms: i64,
        open: Option<&OpenSegment<'_>>,
    ) -> Result<Option<Bookmark>> {
        let mut best: Option<(u64, i64)> = None;
        let mut consider = |seq: u64, ts: i64| {
            if ts <= time_ms && best.is_none_or(|(s, _)| seq > s) {
                best = Some((seq, ts));
            }
        };
        if let Some(open) = open {
            for r in open.records {
                consider(r.seq, r.ts);
            }
        }
        let rows: Vec<Vec<u8>> = self
            .conn
            .prepare_cached(
                "SELECT refs FROM runs WHERE namespace = ?1 AND name = ?2 AND first_ts <= ?3
                 ORDER BY last_seq DESC LIMIT 2",
            )
            .and_then(|mut s| s.query_map(params![ns, name, time_ms], |r| r.get(0))?.collect())
            .map_err(db("read the history index"))?;
        for refs in rows {
            for r in decode_refs(&refs) {
                consider(r.seq, r.ts);
            }
        }
        let base: Option<(i64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT seq, ts FROM bases WHERE namespace = ?1 AND name = ?2 AND ts <= ?3
                 ORDER BY seq DESC LIMIT 1",
            )
            .and_then(|mut s| s.query_row(params![ns, name, time_ms], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(db("read the history index"))?;
        if let Some((seq, ts)) = base {
            consider(seq_from_sql(seq), ts);
        }
        Ok(best.map(|(seq, ts)| Bookmark { seq, timestamp_ms: u64::try_from(ts).unwrap_or(0) }))
    }

    /// Arranges for an object to be restored to `to` when its shard next opens it.
    pub(crate) fn set_pending_restore(&self, ns: &str, name: &str, to: Bookmark) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO pending_restores(namespace, name, seq, ts) VALUES (?1, ?2, ?3, ?4)",
                params![ns, name, seq_sql(to.seq), i64::try_from(to.timestamp_ms).unwrap_or(i64::MAX)],
            )
            .map(drop)
            .map_err(db("record a pending restore"))
    }

    /// Every pending restore.
    pub(crate) fn pending_restores(&self) -> Result<Vec<(String, String, Bookmark)>> {
        self.conn
            .prepare("SELECT namespace, name, seq, ts FROM pending_restores")
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        Bookmark {
                            seq: seq_from_sql(r.get(2)?),
                            timestamp_ms: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                        },
                    ))
                })?
                .collect()
            })
            .map_err(db("read pending restores"))
    }

    /// Forgets an object's pending restore (done, or superseded).
    pub(crate) fn clear_pending_restore(&self, ns: &str, name: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM pending_restores WHERE namespace = ?1 AND name = ?2", params![ns, name])
            .map(drop)
            .map_err(db("clear a pending restore"))
    }

    /// Folds away every sealed segment whose newest record is older than `cutoff_ms` (see the
    /// module documentation). Returns how many segments were removed.
    pub(crate) fn compact(&self, cutoff_ms: i64) -> Result<usize> {
        let old: Vec<String> = self
            .conn
            .prepare("SELECT file FROM segments WHERE max_ts < ?1 ORDER BY max_ts")
            .and_then(|mut s| s.query_map([cutoff_ms], |r| r.get(0))?.collect())
            .map_err(db("read the history index"))?;
        let mut removed = 0;
        for file in old {
            let objects: Vec<(String, String, i64, i64)> = self
                .conn
                .prepare("SELECT namespace, name, last_seq, last_ts FROM runs WHERE file = ?1")
                .and_then(|mut s| s.query_map([&file], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect())
                .map_err(db("read the history index"))?;
            for (ns, name, last_seq, last_ts) in objects {
                let seq = seq_from_sql(last_seq);
                let has_base = {
                    let _guard = self.lock.read().unwrap_or_else(std::sync::PoisonError::into_inner);
                    self.plan(&ns, &name, seq, None)?.records.is_empty()
                };
                if !has_base {
                    self.add_base(&ns, &name, seq, last_ts, |path| self.rebuild(&ns, &name, seq, None, path))?;
                }
                self.drop_bases_before(&ns, &name, seq)?;
            }
            let _guard = self.lock.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            self.drop_segment_rows(&file)?;
            std::fs::remove_file(self.dir.join("segments").join(&file)).map_err(io("remove a history segment"))?;
            removed += 1;
        }
        Ok(removed)
    }

    fn drop_bases_before(&self, ns: &str, name: &str, seq: u64) -> Result<()> {
        let files: Vec<String> = self
            .conn
            .prepare("SELECT file FROM bases WHERE namespace = ?1 AND name = ?2 AND seq < ?3")
            .and_then(|mut s| s.query_map(params![ns, name, seq_sql(seq)], |r| r.get(0))?.collect())
            .map_err(db("read the history index"))?;
        let _guard = self.lock.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.conn
            .execute(
                "DELETE FROM bases WHERE namespace = ?1 AND name = ?2 AND seq < ?3",
                params![ns, name, seq_sql(seq)],
            )
            .map_err(db("drop old history bases"))?;
        for f in files {
            let _ = std::fs::remove_file(self.dir.join("bases").join(f));
        }
        Ok(())
    }

    /// Bytes history keeps on disk (segments and bases).
    pub(crate) fn disk_bytes(&self) -> u64 {
        ["segments", "bases"]
            .iter()
            .filter_map(|d| std::fs::read_dir(self.dir.join(d)).ok())
            .flat_map(|entries| entries.flatten())
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }
}

fn unavailable(ns: &str, name: &str, target: u64, why: String) -> Error {
    Error::HistoryUnavailable { object: format!("{ns}/{name}"), seq: target, reason: why }
}

fn seq_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn seq_from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `seq u64 | ts i64 | offset u64 | len u64` per record, little-endian.
fn encode_refs(refs: &[RecordRef]) -> Vec<u8> {
    let mut out = Vec::with_capacity(refs.len() * 32);
    for r in refs {
        out.extend_from_slice(&r.seq.to_le_bytes());
        out.extend_from_slice(&r.ts.to_le_bytes());
        out.extend_from_slice(&r.offset.to_le_bytes());
        out.extend_from_slice(&r.len.to_le_bytes());
    }
    out
}

fn decode_refs(bytes: &[u8]) -> impl Iterator<Item = RecordRef> + '_ {
    bytes.chunks_exact(32).map(|c| {
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&c[i * 8..i * 8 + 8]);
            b
        };
        RecordRef {
            seq: u64::from_le_bytes(word(0)),
            ts: i64::from_le_bytes(word(1)),
            offset: u64::from_le_bytes(word(2)),
            len: u64::from_le_bytes(word(3)),
        }
    })
}
