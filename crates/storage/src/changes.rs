//! Change capture: the exact page images each commit wrote, read back from the object's WAL.
//!
//! SQLite appends every page a transaction changed to the WAL as a *frame*: a 24-byte header
//! (page number, database size in pages for the commit frame, salts, checksums) followed by the
//! page. The frames appended by one commit, applied in order to the database as it was before
//! that commit, reproduce the state after it exactly: schema changes included, no SQL is
//! replayed. The runtime writes them to its commit log (one fsync per round for any number of
//! objects); recovery, backup and replication are built on the same records.
//!
//! A WAL hook counts frames after each commit. Installing it turns SQLite's automatic
//! checkpoints off, so the engine checkpoints itself ([`WAL_CHECKPOINT_FRAMES`]) and knows
//! exactly when the WAL restarts.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Error, ObjectStorage, Result};

/// Size of a WAL header.
pub const WAL_HEADER_BYTES: u64 = 32;
/// Size of a WAL frame header.
pub const FRAME_HEADER_BYTES: usize = 24;
/// Page size of every object file.
pub const PAGE_BYTES: usize = 4096;
/// Size of one frame: header and page.
pub const FRAME_BYTES: usize = FRAME_HEADER_BYTES + PAGE_BYTES;
/// The engine checkpoints the WAL into the database file once it holds this many frames.
pub const WAL_CHECKPOINT_FRAMES: u32 = 1000;

/// Frame bookkeeping shared with the WAL hook.
#[derive(Debug, Default)]
pub(crate) struct FrameCounter {
    /// Frames in the WAL after the last commit (reported by the hook).
    pub(crate) frames: AtomicU32,
}

pub(crate) fn install_hook(conn: &mut rusqlite::Connection, counter: Arc<FrameCounter>) -> rusqlite::Result<()> {
    conn.wal_hook(Some(move |_wal: &mut rusqlite::hooks::Wal, pages: i32| {
        counter.frames.store(u32::try_from(pages).unwrap_or(0), Ordering::SeqCst);
        Ok(())
    }))
}

/// Page number of a frame (big-endian, as SQLite writes it).
pub fn frame_page_number(frame: &[u8]) -> u32 {
    frame.get(0..4).and_then(|b| b.try_into().ok()).map_or(0, u32::from_be_bytes)
}

/// Database size in pages after the commit, for a commit frame; 0 for other frames.
pub fn frame_commit_size(frame: &[u8]) -> u32 {
    frame.get(4..8).and_then(|b| b.try_into().ok()).map_or(0, u32::from_be_bytes)
}

/// Applies captured frames, in order, to a database file that holds the state before them.
/// Truncates the file to the size of the last commit and syncs it.
///
/// # Errors
/// [`Error::Io`] on a failed write, or [`Error::CorruptValue`] if `frames` is not a whole
/// number of frames.
pub fn apply_frames(db: &Path, frames: &[u8]) -> Result<()> {
    if !frames.len().is_multiple_of(FRAME_BYTES) {
        return Err(Error::CorruptValue { key: db.display().to_string(), reason: "change record is not whole frames" });
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(db)
        .map_err(|source| Error::Io { context: "open a database file for recovery", source })?;
    let mut size = 0u32;
    for frame in frames.chunks_exact(FRAME_BYTES) {
        let pgno = frame_page_number(frame);
        if pgno == 0 {
            return Err(Error::CorruptValue { key: db.display().to_string(), reason: "frame with page number 0" });
        }
        let offset = u64::from(pgno - 1) * PAGE_BYTES as u64;
        file.write_all_at(&frame[FRAME_HEADER_BYTES..], offset)
            .map_err(|source| Error::Io { context: "write a recovered page", source })?;
        let commit = frame_commit_size(frame);
        if commit != 0 {
            size = commit;
        }
    }
    if size != 0 {
        file.set_len(u64::from(size) * PAGE_BYTES as u64)
            .map_err(|source| Error::Io { context: "truncate a recovered database", source })?;
    }
    file.sync_all().map_err(|source| Error::Io { context: "sync a recovered database", source })
}

impl ObjectStorage {
    /// Turns change capture on: from now on [`ObjectStorage::take_changes`] returns the frames
    /// of every commit, including those of the file's creation if it happened in this open.
    pub fn enable_change_capture(&mut self) {
        self.capture = true;
    }

    /// The WAL frames written since the last call (or since capture was enabled): whole frames
    /// of whole commits, in order. Empty if capture is off or nothing was committed.
    ///
    /// # Errors
    /// [`Error::Io`] if the WAL file cannot be read.
    pub fn take_changes(&mut self) -> Result<Vec<u8>> {
        if !self.capture {
            return Ok(Vec::new());
        }
        let now = self.frames.frames.load(Ordering::SeqCst);
        let from = self.captured_frames;
        if now <= from {
            self.captured_frames = now;
            return Ok(Vec::new());
        }
        let wal = self.wal_reader()?;
        let mut buf = vec![0u8; (now - from) as usize * FRAME_BYTES];
        let offset = WAL_HEADER_BYTES + u64::from(from) * FRAME_BYTES as u64;
        wal.read_exact_at(&mut buf, offset)
            .map_err(|source| Error::Io { context: "read committed WAL frames", source })?;
        self.captured_frames = now;
        Ok(buf)
    }

    fn wal_reader(&mut self) -> Result<&File> {
        if self.wal_file.is_none() {
            let path = format!("{}-wal", self.path().display());
            let f = File::open(&path).map_err(|source| Error::Io { context: "open the WAL file", source })?;
            self.wal_file = Some(f);
        }
        self.wal_file
            .as_ref()
            .ok_or(Error::Io { context: "open the WAL file", source: std::io::ErrorKind::NotFound.into() })
    }

    /// Frames in the WAL after the last commit.
    pub fn wal_frames(&self) -> u32 {
        self.frames.frames.load(Ordering::SeqCst)
    }

    /// Checkpoints the WAL into the database file and truncates it, if it holds at least
    /// `min_frames` frames and no transaction is open. With capture on, call
    /// [`ObjectStorage::take_changes`] first: frames are not readable after this.
    ///
    /// # Errors
    /// [`Error::Internal`] if the checkpoint fails.
    pub fn checkpoint_if_needed(&mut self, min_frames: u32) -> Result<bool> {
        if self.in_event_txn() || self.wal_frames() < min_frames {
            return Ok(false);
        }
        let r = self.internal(|c| c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)));
        r.map_err(|e| self.fail(e, "checkpoint the WAL"))?;
        self.frames.frames.store(0, Ordering::SeqCst);
        self.captured_frames = 0;
        Ok(true)
    }
}
