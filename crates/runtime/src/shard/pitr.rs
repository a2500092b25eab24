//! Point-in-time operations on a shard's objects: bookmarks for a time, restores (now or at the
//! next open), images at a bookmark (for forks and exports), installing a fork, and imports.
//!
//! A restore is one ordinary commit: the object's state at the bookmark, rebuilt from history
//! into a new file, stamped with the next sequence number and swapped in; its log record holds
//! every page of the new file. So history stays a straight line (restoring never deletes newer
//! bookmarks, and the bookmark returned undoes the restore), and crash recovery and replication
//! replay it like any commit. The reply waits for the round's sync, like a write's.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use cairn_storage::image::{image_frames, stamp_image};
use cairn_storage::{Bookmark, ObjectStorage};

use super::{HistoryOp, HistoryReply, RoundCommits, Shard, key_of};
use crate::Error;
use crate::history::{History, OpenSegment};
use crate::log::CommitLog;
use crate::syncer::Round;

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

/// What an image swapped in over an object's file is to that object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Swap {
    /// Its own earlier state (a restore): the image keeps the identity it has.
    Restore,
    /// Its first state (a fork's target, or an import into an object never written): stamped
    /// with the object's identity, after an empty creation record.
    Create,
    /// A new state from elsewhere (an import): stamped with the object's identity.
    Replace,
}

/// Takes a base of an object that history cannot rebuild at its latest commit (data from
/// before history was on, or a commit whose log record was torn by a crash its file survived).
pub(super) fn ensure_history_base(
    history: &History,
    log: &CommitLog,
    ns: &str,
    name: &str,
    storage: &mut ObjectStorage,
) -> Result<(), Error> {
    let seq = storage.committed_seq();
    if seq == 0 {
        return Ok(());
    }
    let known = match log.records_of(ns, name).last() {
        Some(r) => Some(r.seq),
        None => history.last_known_seq(ns, name)?,
    };
    if known.is_some_and(|k| k >= seq) {
        return Ok(());
    }
    let ts = i64::try_from(storage.current_bookmark().timestamp_ms).unwrap_or(i64::MAX);
    history.add_base(ns, name, seq, ts, |path| storage.write_image(path).map_err(Error::from))
}

impl Shard {
    pub(super) fn handle_history(&mut self, ns: &Arc<str>, name: &Arc<str>, op: HistoryOp, round: &mut Round) {
        if !matches!(op, HistoryOp::RestoreOnNextStart { .. }) {
            self.apply_pending_restore(ns, name, round);
        }
        match op {
            HistoryOp::BookmarkForTime { time_ms, reply } => reply(self.bookmark_for_time(ns, name, time_ms)),
            HistoryOp::Restore { to, reply } => match self.restore(ns, name, to, round) {
                Ok(undo) => self.reply_when_durable(round, reply, undo),
                Err(e) => reply(Err(e)),
            },
            HistoryOp::RestoreOnNextStart { to, reply } => reply(self.restore_on_next_start(ns, name, to)),
            HistoryOp::Image { at, dest, reply } => reply(self.image(ns, name, at, &dest, round)),
            HistoryOp::Install { image, reply } => {
                // A fork's image is built by the runtime in history's temporary directory; any
                // other file is an import (`ObjectRef::import`).
                let fork = self.history.as_ref().is_some_and(|h| image.parent() == h.temp_path().parent());
                let installed =
                    if fork { self.install(ns, name, &image, round) } else { self.import(ns, name, &image, round) };
                match installed {
                    Ok(b) => self.reply_when_durable(round, reply, b),
                    Err(e) => {
                        let _ = std::fs::remove_file(&image);
                        reply(Err(e));
                    }
                }
            }
        }
    }

    fn reply_when_durable(&self, round: &mut Round, reply: HistoryReply, value: Bookmark) {
        round.replies.push(Box::new(move |err: Option<Error>| {
            reply(match err {
                None => Ok(value),
                Some(e) => Err(e),
            });
        }));
    }

    /// Applies an object's pending restore before its first event after being closed.
    pub(super) fn apply_pending_restore(&mut self, ns: &Arc<str>, name: &Arc<str>, round: &mut Round) {
        if self.pending_restores.is_empty() {
            return;
        }
        let key = key_of(ns, name);
        if self.objects.contains_key(&key) {
            return;
        }
        let Some(to) = self.pending_restores.remove(&key) else { return };
        if let Err(e) = self.restore(ns, name, to, round) {
            tracing::error!(error = %e, object = %format!("{ns}/{name}"), "a pending restore failed; the object keeps its state");
        }
        if let Some(h) = &self.history
            && let Err(e) = h.clear_pending_restore(ns, name)
        {
            tracing::warn!(error = %e, "failed to clear a pending restore");
        }
    }

    fn history(&self) -> Result<&History, Error> {
        self.history.as_ref().ok_or(Error::HistoryDisabled)
    }

    /// The oldest time a bookmark of `ns` may have.
    fn retention_start(&self, ns: &str) -> i64 {
        let window = i64::try_from(self.config.history.retention_for(ns).as_millis()).unwrap_or(i64::MAX);
        self.config.clock.now_ms().saturating_sub(window)
    }

    fn check_in_window(&self, ns: &str, name: &str, time_ms: i64) -> Result<(), Error> {
        let start = self.retention_start(ns);
        if time_ms < start {
            let days = self.config.history.retention_for(ns).as_secs_f64() / 86_400.0;
            return Err(Error::InvalidBookmark {
                message: format!(
                    "time {time_ms} (ms since the epoch) of object {ns}/{name} is older than the retention window \
                     of {days} days (oldest allowed: {start})"
                ),
            });
        }
        Ok(())
    }

    /// Checks a bookmark against the object's latest commit and the window.
    fn check_bookmark(&self, ns: &str, name: &str, to: Bookmark, current: u64) -> Result<(), Error> {
        if to.seq > current {
            return Err(Error::InvalidBookmark {
                message: format!("bookmark {to} is ahead of object {ns}/{name}'s latest commit ({current})"),
            });
        }
        self.check_in_window(ns, name, i64::try_from(to.timestamp_ms).unwrap_or(i64::MAX))
    }

    fn open_segment(&self, ns: &str, name: &str) -> Option<OpenSegment<'_>> {
        self.log.as_ref().map(|log| OpenSegment { file: log.file(), records: log.records_of(ns, name) })
    }

    /// Writes the round's buffered records so that history reads of the open segment see them;
    /// the file joins the round's sync.
    fn flush_log(&mut self, round: &mut Round) -> Result<(), Error> {
        if let Some(log) = self.log.as_mut()
            && let Some(file) = log.flush()?
        {
            round.files.push(file);
        }
        Ok(())
    }

    fn bookmark_for_time(&mut self, ns: &Arc<str>, name: &Arc<str>, time_ms: i64) -> Result<Bookmark, Error> {
        self.history()?;
        self.check_in_window(ns, name, time_ms)?;
        let key = self.open_slot(ns, name)?;
        let current = self.objects.get(&key).map(|s| s.storage.current_bookmark());
        if let Some(cur) = current
            && i64::try_from(cur.timestamp_ms).unwrap_or(i64::MAX) <= time_ms
        {
            return Ok(cur);
        }
        let history = self.history()?;
        if let Some(b) = history.commit_at(ns, name, time_ms, self.open_segment(ns, name).as_ref())? {
            // The bookmark carries the time asked for: it names the state at that time, which
            // stays restorable while that time is in the window (even if the commit is older).
            return Ok(Bookmark { seq: b.seq, timestamp_ms: u64::try_from(time_ms).unwrap_or(0) });
        }
        // Before the first commit: the empty object, if history goes back to its creation.
        history.plan(ns, name, 0, self.open_segment(ns, name).as_ref())?;
        Ok(Bookmark { seq: 0, timestamp_ms: u64::try_from(time_ms).unwrap_or(0) })
    }

    fn restore_on_next_start(&mut self, ns: &Arc<str>, name: &Arc<str>, to: Bookmark) -> Result<Bookmark, Error> {
        self.history()?;
        let key = self.open_slot(ns, name)?;
        let now = self
            .objects
            .get(&key)
            .map(|s| s.storage.current_bookmark())
            .unwrap_or(Bookmark { seq: 0, timestamp_ms: 0 });
        self.check_bookmark(ns, name, to, now.seq)?;
        self.history()?.set_pending_restore(ns, name, to)?;
        self.pending_restores.insert(key, to);
        Ok(now)
    }

    /// Builds the state at `at` into `dest` (checked against the object's latest commit).
    fn build_image(
        &mut self,
        ns: &Arc<str>,
        name: &Arc<str>,
        at: Bookmark,
        current: u64,
        dest: &Path,
        round: &mut Round,
    ) -> Result<(), Error> {
        self.check_bookmark(ns, name, at, current)?;
        self.flush_log(round)?;
        let open = self.open_segment(ns, name);
        self.history()?.rebuild(ns, name, at.seq, open.as_ref(), dest)
    }

    fn image(
        &mut self,
        ns: &Arc<str>,
        name: &Arc<str>,
        at: Option<Bookmark>,
        dest: &Path,
        round: &mut Round,
    ) -> Result<Bookmark, Error> {
        let key = self.open_slot(ns, name)?;
        let slot = self.objects.get_mut(&key).ok_or(Error::ShuttingDown)?;
        let current = slot.storage.current_bookmark();
        match at {
            None => {
                slot.storage.write_image(dest)?;
                Ok(current)
            }
            Some(at) if at.seq == current.seq => {
                slot.storage.write_image(dest)?;
                Ok(current)
            }
            Some(at) => {
                self.build_image(ns, name, at, current.seq, dest, round)?;
                Ok(at)
            }
        }
    }

    /// Restores an object to `to` now. Returns the bookmark of the state it replaced.
    fn restore(&mut self, ns: &Arc<str>, name: &Arc<str>, to: Bookmark, round: &mut Round) -> Result<Bookmark, Error> {
        self.history()?;
        let key = self.open_slot(ns, name)?;
        let slot = self.objects.get(&key).ok_or(Error::ShuttingDown)?;
        let undo = slot.storage.current_bookmark();
        let path = slot.storage.path().to_path_buf();
        self.check_bookmark(ns, name, to, undo.seq)?;
        if to.seq == undo.seq {
            return Ok(undo); // Already there.
        }
        let tmp = self.history()?.temp_path();
        let built = self.build_image(ns, name, to, undo.seq, &tmp, round);
        if let Err(e) = built {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        self.close(&key);
        let seq = undo.seq + 1;
        let ts = self.config.clock.now_ms().max(i64::try_from(undo.timestamp_ms).unwrap_or(0));
        self.swap_in(ns, name, &tmp, &path, seq, ts, Swap::Restore)?;
        self.after_install(ns, name, round, false)?;
        Ok(undo)
    }

    /// Replaces an object's state with an image made by `cairn_storage::import::prepare`, as its
    /// next commit (its first, with a creation record, if it was never written). Returns the
    /// bookmark of the state it replaced.
    fn import(&mut self, ns: &Arc<str>, name: &Arc<str>, image: &Path, round: &mut Round) -> Result<Bookmark, Error> {
        if self.log.is_none() {
            return Err(Error::HistoryDisabled);
        }
        let invalid = |reason: String| Error::Storage(cairn_storage::Error::InvalidImport { reason });
        let limit = self.config.limits_for(ns).max_database_bytes;
        let len = std::fs::metadata(image).map_err(io("read the size of an import image"))?.len();
        if len > limit {
            return Err(invalid(format!(
                "the database is {len} bytes, larger than the object's limit of {limit} bytes"
            )));
        }
        if len % 4096 != 0 || cairn_storage::image::image_commit(image).is_err() {
            return Err(invalid(
                "the file is not an object image (make it with cairn_storage::import::prepare)".into(),
            ));
        }
        let key = self.open_slot(ns, name)?;
        let slot = self.objects.get(&key).ok_or(Error::ShuttingDown)?;
        let undo = slot.storage.current_bookmark();
        let path = slot.storage.path().to_path_buf();
        let created = undo.seq == 0;
        self.close(&key);
        let seq = undo.seq + 1;
        let ts = self.config.clock.now_ms().max(i64::try_from(undo.timestamp_ms).unwrap_or(0));
        let swap = if created { Swap::Create } else { Swap::Replace };
        self.swap_in(ns, name, image, &path, seq, ts, swap)?;
        self.after_install(ns, name, round, created)?;
        Ok(undo)
    }

    /// Creates a new object from an image (a fork).
    fn install(&mut self, ns: &Arc<str>, name: &Arc<str>, image: &Path, round: &mut Round) -> Result<Bookmark, Error> {
        self.history()?;
        let key = self.open_slot(ns, name)?;
        let slot = self.objects.get(&key).ok_or(Error::ShuttingDown)?;
        if slot.storage.committed_seq() > 0 {
            return Err(Error::ObjectExists { object: format!("{ns}/{name}") });
        }
        let path = slot.storage.path().to_path_buf();
        self.close(&key); // Never written: its file is removed.
        let ts = self.config.clock.now_ms();
        self.swap_in(ns, name, image, &path, 1, ts, Swap::Create)?;
        self.after_install(ns, name, round, true)?;
        Ok(Bookmark { seq: 1, timestamp_ms: u64::try_from(ts).unwrap_or(0) })
    }

    /// Stamps `image` as commit `seq` of the object, logs it (every page; a new object also
    /// logs an empty creation record) and moves it over the object's file.
    #[allow(clippy::too_many_arguments)]
    fn swap_in(
        &mut self,
        ns: &str,
        name: &str,
        image: &Path,
        path: &Path,
        seq: u64,
        ts: i64,
        swap: Swap,
    ) -> Result<(), Error> {
        stamp_image(image, seq, ts, (swap != Swap::Restore).then_some((ns, name)))?;
        let frames = image_frames(image)?;
        // A stale WAL would be applied to the new file: none may survive the swap.
        for suffix in ["-wal", "-shm"] {
            match std::fs::remove_file(format!("{}{suffix}", path.display())) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::Io { context: "remove an object's WAL before a restore", source: e }),
            }
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("create an object directory"))?;
        }
        std::fs::rename(image, path).map_err(io("move a restored image into place"))?;
        if let Some(parent) = path.parent() {
            File::open(parent).and_then(|d| d.sync_all()).map_err(io("sync an object directory"))?;
        }
        let log = self.log.as_mut().ok_or(Error::HistoryDisabled)?;
        if swap == Swap::Create {
            log.append(ns, name, 0, ts, &[]);
        }
        log.append(ns, name, seq, ts, &frames);
        self.round_commits = RoundCommits::Many;
        Ok(())
    }

    /// Reopens a swapped-in object: its alarm goes back in the node's index, a new object is
    /// registered, and the round waits for the catalog too.
    fn after_install(&mut self, ns: &Arc<str>, name: &Arc<str>, round: &mut Round, created: bool) -> Result<(), Error> {
        let key = self.open_slot(ns, name)?;
        let round_id = round.id;
        let slot = self.objects.get_mut(&key).ok_or(Error::ShuttingDown)?;
        slot.last_write_round = round_id;
        let committed = slot.storage.current_bookmark();
        if let Some(tx) = self.watchers.sender(&key) {
            round.replies.push(Box::new(move |err| {
                if err.is_none() {
                    crate::watch::publish(&tx, committed);
                }
            }));
        }
        let slot = self.objects.get_mut(&key).ok_or(Error::ShuttingDown)?;
        let next = slot.storage.committed_next_alarm();
        self.catalog.set_alarm(ns, name, next, false)?;
        if created {
            self.catalog.register_object(ns, name, self.config.clock.now_ms())?;
        }
        round.files.push(Arc::clone(self.catalog.wal()));
        Ok(())
    }
}
