//! Change capture: the exact page images each commit wrote, read back from the object's WAL.
//!
//! SQLite appends every page a transaction changed to the WAL as a *frame*: a 24-byte header
//! (page number, database size in pages for the commit frame, salts, checksums) followed by the
//! page. The frames appended by one commit, applied in order to the database as it was before
//! that commit, reproduce the state after it exactly: schema changes included, no SQL is
//! replayed. The runtime writes them to its commit log (one fsync per round for any number of
//! objects); recovery, backup and replication are built on the same records.
//!
//! Records are *compact*: the unallocated gap in the middle of a b-tree page (between the cell
//! pointer array and the cell content area, which SQLite never reads) is left out, so a small
//! commit logs a few hundred bytes per page instead of 4 KiB. Replay writes zeros there.
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

/// Encodes raw WAL frames as compact frames:
/// `page u32 | commit_size u32 | head_len u16 | tail_len u16 | head | tail` (big-endian), where
/// the page is `head`, then zeros, then `tail`.
pub(crate) fn compact(raw: &[u8], out: &mut Vec<u8>) {
    for frame in raw.chunks_exact(FRAME_BYTES) {
        let pgno = frame_page_number(frame);
        let page = &frame[FRAME_HEADER_BYTES..];
        let (head, tail) = page_gap(pgno, page).unwrap_or((PAGE_BYTES, PAGE_BYTES));
        out.extend_from_slice(&pgno.to_be_bytes());
        out.extend_from_slice(&frame_commit_size(frame).to_be_bytes());
        out.extend_from_slice(&u16::try_from(head).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(&u16::try_from(PAGE_BYTES - tail).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(&page[..head]);
        out.extend_from_slice(&page[tail..]);
    }
}

/// The unallocated gap `[start, end)` of a b-tree page, if the page is one.
fn page_gap(pgno: u32, page: &[u8]) -> Option<(usize, usize)> {
    let h = if pgno == 1 { 100 } else { 0 };
    let header = match *page.get(h)? {
        2 | 5 => 12,
        10 | 13 => 8,
        _ => return None,
    };
    let be16 = |at: usize| page.get(at..at + 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
    let cells = be16(h + 3)?;
    let content = match be16(h + 5)? {
        0 => 65536,
        c => c,
    };
    let start = h + header + 2 * cells;
    (start <= content && content <= PAGE_BYTES).then_some((start, content))
}

/// One decoded compact frame.
#[derive(Debug)]
pub struct CompactFrame<'a> {
    /// Page number (1-based).
    pub page_number: u32,
    /// Database size in pages after the commit, for a commit's last frame; otherwise 0.
    pub commit_size: u32,
    head: &'a [u8],
    tail: &'a [u8],
}

impl CompactFrame<'_> {
    /// The full page.
    pub fn page(&self) -> Vec<u8> {
        let mut p = vec![0u8; PAGE_BYTES];
        p[..self.head.len()].copy_from_slice(self.head);
        p[PAGE_BYTES - self.tail.len()..].copy_from_slice(self.tail);
        p
    }
}

/// Decodes a sequence of compact frames; `None` if it is malformed.
pub fn decode_frames(mut bytes: &[u8]) -> Option<Vec<CompactFrame<'_>>> {
    let be32 = |b: &[u8], at: usize| b.get(at..at + 4).map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]));
    let be16 = |b: &[u8], at: usize| b.get(at..at + 2).map(|x| usize::from(u16::from_be_bytes([x[0], x[1]])));
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let page_number = be32(bytes, 0)?;
        let commit_size = be32(bytes, 4)?;
        let head = be16(bytes, 8)?;
        let tail = be16(bytes, 10)?;
        if page_number == 0 || head + tail > PAGE_BYTES {
            return None;
        }
        let body = bytes.get(12..12 + head + tail)?;
        let (h, t) = body.split_at(head);
        out.push(CompactFrame { page_number, commit_size, head: h, tail: t });
        bytes = bytes.get(12 + head + tail..)?;
    }
    Some(out)
}

/// Applies captured (compact) frames, in order, to a database file that holds the state before
/// them. Truncates the file to the size of the last commit and syncs it.
///
/// # Errors
/// [`Error::Io`] on a failed write, or [`Error::CorruptValue`] if `frames` is malformed.
pub fn apply_frames(db: &Path, frames: &[u8]) -> Result<()> {
    let decoded = decode_frames(frames)
        .ok_or_else(|| Error::CorruptValue { key: db.display().to_string(), reason: "malformed change record" })?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(db)
        .map_err(|source| Error::Io { context: "open a database file for recovery", source })?;
    let mut size = 0u32;
    for frame in decoded {
        let offset = u64::from(frame.page_number - 1) * PAGE_BYTES as u64;
        file.write_all_at(&frame.page(), offset)
            .map_err(|source| Error::Io { context: "write a recovered page", source })?;
        if frame.commit_size != 0 {
            size = frame.commit_size;
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

    /// The WAL frames written since the last call (or since capture was enabled), as compact
    /// frames (see [`decode_frames`]): whole frames of whole commits, in order. Empty if capture is off or nothing was committed.
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
        let mut raw = vec![0u8; (now - from) as usize * FRAME_BYTES];
        let offset = WAL_HEADER_BYTES + u64::from(from) * FRAME_BYTES as u64;
        wal.read_exact_at(&mut raw, offset)
            .map_err(|source| Error::Io { context: "read committed WAL frames", source })?;
        self.captured_frames = now;
        let mut out = Vec::with_capacity(raw.len() / 2);
        compact(&raw, &mut out);
        Ok(out)
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

    /// Checkpoints the WAL into the database file and restarts it, if it holds at least
    /// `min_frames` frames and no transaction is open. With capture on, call
    /// [`ObjectStorage::take_changes`] first: frames are not readable after this.
    ///
    /// # Errors
    /// [`Error::Internal`] if the checkpoint fails.
    pub fn checkpoint_if_needed(&mut self, min_frames: u32) -> Result<bool> {
        if self.in_event_txn() || self.wal_frames() < min_frames {
            return Ok(false);
        }
        // RESTART, not TRUNCATE: the WAL keeps its size, so later commits overwrite allocated
        // blocks and an fsync of the WAL does not have to commit a new file size.
        let r = self.internal(|c| c.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0)));
        r.map_err(|e| self.fail(e, "checkpoint the WAL"))?;
        self.frames.frames.store(0, Ordering::SeqCst);
        self.captured_frames = 0;
        Ok(true)
    }
}
