//! Whole-file images of an object: what history keeps as a *base* (a copy of an object file at
//! one commit), and how a restore or a fork turns such an image into a commit.
//!
//! An image is a checkpointed object file (no WAL). Its pages, written as one commit's frames
//! ([`image_frames`]), turn *any* earlier state of the same object into the image's state when
//! applied with [`crate::changes::apply_frames`] (every page is written and the file is cut to
//! the image's size). That is how a restore stays one ordinary record in the commit log:
//! replaying history never needs to know that a restore happened.

use std::io::Read;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::changes::{FRAME_BYTES, FRAME_HEADER_BYTES, PAGE_BYTES, compact};
use crate::object::meta;
use crate::{Error, Result};

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

/// Every page of the image at `path`, as the compact frames of one commit (the last frame
/// carries the page count as the commit's database size).
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::CorruptValue`] if its size is not a whole
/// number of pages.
pub fn image_frames(path: &Path) -> Result<Vec<u8>> {
    let mut file = std::fs::File::open(path).map_err(io("open an image"))?;
    let len = file.metadata().map_err(io("read an image's size"))?.len();
    if len == 0 || len % PAGE_BYTES as u64 != 0 {
        return Err(Error::CorruptValue { key: path.display().to_string(), reason: "an image is not whole pages" });
    }
    let pages = u32::try_from(len / PAGE_BYTES as u64)
        .map_err(|_| Error::CorruptValue { key: path.display().to_string(), reason: "an image is too large" })?;
    let mut frame = vec![0u8; FRAME_BYTES];
    let mut out = Vec::with_capacity(usize::try_from(len / 2).unwrap_or(0));
    for pgno in 1..=pages {
        frame[0..4].copy_from_slice(&pgno.to_be_bytes());
        let commit_size = if pgno == pages { pages } else { 0 };
        frame[4..8].copy_from_slice(&commit_size.to_be_bytes());
        file.read_exact(&mut frame[FRAME_HEADER_BYTES..]).map_err(io("read an image page"))?;
        compact(&frame, &mut out);
    }
    Ok(out)
}

/// The commit an image holds: its sequence number and timestamp.
///
/// # Errors
/// [`Error::Internal`] if the file is not an object file.
pub fn image_commit(path: &Path) -> Result<(u64, i64)> {
    // `immutable`: read the file alone, without creating `-wal` or `-shm` files next to it.
    let uri = format!("file:{}?immutable=1", path.display());
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(uri, flags).map_err(Error::internal("open an image"))?;
    let get = |k: i64| -> rusqlite::Result<Option<i64>> {
        conn.query_row("SELECT value FROM _cairn_meta WHERE key = ?1", [k], |r| r.get::<_, Option<i64>>(0))
            .optional()
            .map(Option::flatten)
    };
    let seq = get(meta::COMMIT_SEQ).map_err(Error::internal("read an image's commit"))?.unwrap_or(0);
    let ts = get(meta::COMMIT_TS_MS).map_err(Error::internal("read an image's commit"))?.unwrap_or(0);
    Ok((u64::try_from(seq).unwrap_or(0), ts))
}

/// Rewrites the commit stamp of the image at `path` (sequence number, timestamp and, for a
/// fork, the owning object's identity), checkpoints it so that the file alone holds the result,
/// and syncs it.
///
/// # Errors
/// [`Error::Io`] or an internal error if the file cannot be updated.
pub fn stamp_image(path: &Path, seq: u64, timestamp_ms: i64, identity: Option<(&str, &str)>) -> Result<()> {
    let conn = Connection::open(path).map_err(Error::internal("open an image"))?;
    let r = (|| -> rusqlite::Result<()> {
        conn.execute_batch("PRAGMA synchronous = FULL")?;
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        conn.execute(
            "INSERT OR REPLACE INTO _cairn_meta(key, value) VALUES (?1, ?2), (?3, ?4)",
            params![meta::COMMIT_SEQ, seq, meta::COMMIT_TS_MS, timestamp_ms],
        )?;
        if let Some((ns, name)) = identity {
            conn.execute(
                "INSERT OR REPLACE INTO _cairn_meta(key, value) VALUES (?1, ?2), (?3, ?4)",
                params![meta::NAMESPACE, ns, meta::NAME, name],
            )?;
        }
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    })();
    r.map_err(Error::internal("stamp an image"))?;
    conn.close().map_err(|(_, e)| e).map_err(Error::internal("close an image"))?;
    let _ = std::fs::remove_file(format!("{}-wal", path.display()));
    let _ = std::fs::remove_file(format!("{}-shm", path.display()));
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(io("sync an image"))
}

impl crate::ObjectStorage {
    /// Writes an image of the object's committed state to `dest` (a new file, synced): the WAL
    /// is checkpointed first, then the database's pages are copied byte for byte, so later
    /// commit frames apply to the copy exactly as they did to the original.
    ///
    /// # Errors
    /// [`Error::Critical`] inside an event or after a critical error; [`Error::Io`] on a failed copy.
    pub fn write_image(&mut self, dest: &Path) -> Result<()> {
        self.check_usable()?;
        if self.in_event_txn() {
            return Err(Error::Critical { message: "an image cannot be taken inside an event".to_owned() });
        }
        self.checkpoint_if_needed(0)?;
        let pages: i64 = self
            .internal(|c| c.query_row("PRAGMA page_count", [], |r| r.get(0)))
            .map_err(Error::internal("count an object's pages"))?;
        let len = u64::try_from(pages).unwrap_or(0) * PAGE_BYTES as u64;
        let mut src = std::fs::File::open(self.path()).map_err(io("open an object file for an image"))?;
        let mut out = std::fs::File::create(dest).map_err(io("create an image"))?;
        let copied = std::io::copy(&mut (&mut src).take(len), &mut out).map_err(io("copy an image"))?;
        if copied != len {
            return Err(Error::CorruptValue {
                key: self.path().display().to_string(),
                reason: "the file is shorter than its pages",
            });
        }
        out.sync_all().map_err(io("sync an image"))
    }
}
