//! A shard: one thread that owns a set of objects and runs their events one at a time.
//!
//! Every object is pinned to one shard by a hash of its namespace and name, so its SQLite
//! connection is only ever used by this thread: no `Mutex<Connection>`, no channel hop for
//! storage calls made by an event. The shard runs events in batches: each event commits on its
//! own (without fsync), and the batch's commits go to the durability stage as one [`Round`].
//! The shard goes on with the next batch while the round is synced.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use cairn_storage::{Bookmark, ObjectStorage, OpenOptions, Synchronous, layout};
use tokio::sync::mpsc;

use crate::Error;
use crate::catalog::Catalog;
use crate::config::{Durability, RuntimeConfig};
use crate::history::History;
use crate::log::CommitLog;
use crate::stats::Stats;
use crate::syncer::{INLINE_ROUND_EVENTS, Reply, Round, SyncerHandle, complete, sync_round_files};

mod pitr;
use pitr::ensure_history_base;

/// An event's work, type-erased: runs on the shard with the object's storage (or the error
/// that prevented opening it) and says whether to commit and how to reply.
pub(crate) type Job = Box<dyn FnOnce(Result<&mut ObjectStorage, Error>) -> JobOutcome + Send>;

/// What an event asks for once its code has run.
pub(crate) struct JobOutcome {
    /// Commit the event's writes (`true`) or roll them back.
    pub(crate) commit: bool,
    /// Delivers the event's result; called with `Some(error)` if the commit failed.
    pub(crate) reply: Reply,
}

/// Messages to a shard.
pub(crate) enum Command {
    /// Run an event on an object.
    Event { ns: Arc<str>, name: Arc<str>, job: Job },
    /// A history operation on an object (point-in-time recovery).
    History { ns: Arc<str>, name: Arc<str>, op: HistoryOp },
    /// Close an object (its next event reopens it, applying a pending restore); the reply, if
    /// asked for, once it is closed.
    Close { ns: Arc<str>, name: Arc<str>, reply: Option<tokio::sync::oneshot::Sender<()>> },
    /// Copy objects' files for a backup snapshot, between rounds and after this shard's log
    /// is durable.
    CopyObjects {
        objects: Vec<(String, String)>,
        dest: PathBuf,
        reply: tokio::sync::oneshot::Sender<crate::Result<Vec<crate::backup::CopiedObject>>>,
    },
    /// Stop taking commands, finish the queued ones, close every object and exit.
    Shutdown,
}

/// Delivers a history operation's result (on the shard or the durability thread).
pub(crate) type HistoryReply = Box<dyn FnOnce(Result<Bookmark, Error>) + Send>;

/// History operations, run on the object's shard.
pub(crate) enum HistoryOp {
    /// The newest commit at or before a time, as a bookmark.
    BookmarkForTime { time_ms: i64, reply: HistoryReply },
    /// Restore the object to a bookmark now; the reply (once durable) is the bookmark that
    /// undoes it.
    Restore { to: Bookmark, reply: HistoryReply },
    /// Restore the object to a bookmark the next time it is opened; replies with the bookmark
    /// of its state now.
    RestoreOnNextStart { to: Bookmark, reply: HistoryReply },
    /// Write the object's state at a bookmark (or now) to a new file; replies with the
    /// bookmark of what was written.
    Image { at: Option<Bookmark>, dest: PathBuf, reply: HistoryReply },
    /// Create the object from an image (a fork's target); replies once durable.
    Install { image: PathBuf, reply: HistoryReply },
}

/// An open object.
struct Slot {
    storage: ObjectStorage,
    ns: Arc<str>,
    name: Arc<str>,
    /// The frames that created the object file in this open, logged with its first commit
    /// (an object that is never written leaves no trace).
    pending_creation: Option<Vec<u8>>,
    /// The object's WAL file, kept open to fsync it when a round commits this object alone.
    wal: Arc<File>,
    /// The object's directory, until it has been fsynced once after the WAL file was created
    /// (SQLite creates the WAL anew on every open; its directory entry must be durable before
    /// a commit that only the WAL holds is acknowledged).
    dir: Option<Arc<File>>,
    /// Tick of the last use, the key of this slot in the LRU index.
    last_used: u64,
    /// Id of the last round in which this object committed.
    last_write_round: u64,
}

pub(crate) struct Shard {
    index: usize,
    config: Arc<RuntimeConfig>,
    objects: HashMap<Box<str>, Slot>,
    /// Least recently used first.
    lru: BTreeMap<u64, Box<str>>,
    tick: u64,
    budget: usize,
    catalog: Catalog,
    /// The commit log, with [`Durability::Fsync`].
    log: Option<CommitLog>,
    /// History, when kept (see `history.rs`).
    history: Option<History>,
    /// Restores waiting for their object's next open.
    pending_restores: HashMap<Box<str>, Bookmark>,
    /// Commit subscribers (see `watch.rs`).
    watchers: Arc<crate::watch::Watchers>,
    syncer: SyncerHandle,
    stats: Arc<Stats>,
    /// Id of the round being filled.
    round_id: u64,
    /// What the round being filled committed, to choose how to make it durable.
    round_commits: RoundCommits,
}

/// The objects a round committed.
#[derive(Default)]
enum RoundCommits {
    /// Nothing yet.
    #[default]
    None,
    /// One object that existed before the round (its WAL file): syncing that file alone makes
    /// the round durable.
    One(Box<str>, Arc<File>),
    /// Several objects, or a new one: the commit log makes the round durable.
    Many,
}

/// The shard an object lives on, of `shards`.
pub(crate) fn shard_of(ns: &str, name: &str, shards: usize) -> usize {
    usize::try_from(layout::object_hash(ns, name) % shards.max(1) as u64).unwrap_or(0)
}

fn key_of(ns: &str, name: &str) -> Box<str> {
    format!("{ns}\0{name}").into_boxed_str()
}

impl Shard {
    pub(crate) fn new(
        index: usize,
        config: Arc<RuntimeConfig>,
        syncer: SyncerHandle,
        stats: Arc<Stats>,
        first_segment: u64,
        history_lock: &Arc<std::sync::RwLock<()>>,
        watchers: Arc<crate::watch::Watchers>,
    ) -> crate::Result<Self> {
        let budget = (config.max_open_objects / config.shards).max(1);
        let catalog = Catalog::open(&config.data_dir)?;
        let history =
            if config.history_on() { Some(History::open(&config.data_dir, Arc::clone(history_lock))?) } else { None };
        let log = match config.durability {
            Durability::Fsync => {
                let bytes = config.log_segment_bytes;
                Some(CommitLog::create(&config.data_dir, index, first_segment, history.is_some(), bytes)?)
            }
            Durability::Os => None,
        };
        let mut pending_restores = HashMap::new();
        if let Some(h) = &history {
            for (ns, name, to) in h.pending_restores()? {
                if shard_of(&ns, &name, config.shards) == index {
                    pending_restores.insert(key_of(&ns, &name), to);
                }
            }
        }
        Ok(Shard {
            log,
            history,
            pending_restores,
            watchers,
            index,
            config,
            objects: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
            budget,
            catalog,
            syncer,
            stats,
            round_id: 1,
            round_commits: RoundCommits::None,
        })
    }

    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut stopping = false;
        loop {
            let first = if stopping { rx.try_recv().ok() } else { self.next_command(&mut rx) };
            let Some(first) = first else { break };
            let mut round = Round { shard: self.index, id: self.round_id, files: Vec::new(), replies: Vec::new() };
            let mut next = Some(first);
            let mut n = 0;
            let mut copy = None;
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Event { ns, name, job } => self.handle_event(ns, name, job, &mut round),
                    Command::History { ns, name, op } => self.handle_history(&ns, &name, op, &mut round),
                    Command::Close { ns, name, reply } => {
                        self.close(&key_of(&ns, &name));
                        if let Some(reply) = reply {
                            let _ = reply.send(());
                        }
                    }
                    Command::Shutdown => {
                        stopping = true;
                        rx.close();
                    }
                    Command::CopyObjects { objects, dest, reply } => {
                        // Ends the round: the copy comes after its commits are durable.
                        copy = Some((objects, dest, reply));
                        break;
                    }
                }
                n += 1;
                if n < self.config.max_round_events {
                    next = rx.try_recv().ok();
                }
            }
            self.submit(round);
            if let Some((objects, dest, reply)) = copy {
                let _ = reply.send(self.copy_objects(&objects, &dest));
            }
            self.evict_over_budget();
            self.rotate_log_if_full();
        }
        let keys: Vec<Box<str>> = self.objects.keys().cloned().collect();
        for k in keys {
            self.close(&k);
        }
    }

    /// Waits for the next command. Before parking, polls the queue for a short while: a
    /// client answered a moment ago usually sends its next event within tens of microseconds,
    /// and catching it here saves a thread wake-up (which costs about as much on a VM).
    fn next_command(&self, rx: &mut mpsc::Receiver<Command>) -> Option<Command> {
        let spin = self.config.idle_spin;
        if !spin.is_zero() {
            let start = std::time::Instant::now();
            loop {
                match rx.try_recv() {
                    Ok(cmd) => return Some(cmd),
                    Err(mpsc::error::TryRecvError::Disconnected) => return None,
                    Err(mpsc::error::TryRecvError::Empty) => {}
                }
                if start.elapsed() >= spin {
                    break;
                }
                std::hint::spin_loop();
            }
        }
        rx.blocking_recv()
    }

    fn submit(&mut self, mut round: Round) {
        let commits = std::mem::take(&mut self.round_commits);
        if let Some(log) = self.log.as_mut() {
            // A round that committed one existing object is made durable by syncing that
            // object's WAL: a single-event round then costs one fsync of a file SQLite keeps
            // allocated, as in plain SQLite. Its records are still written to the log (not
            // synced), so that the log stays contiguous: the next synced round's fdatasync
            // makes them durable too, and until then the WAL holds them.
            let log_synced = !matches!(commits, RoundCommits::One(..));
            let flushed = match commits {
                RoundCommits::One(key, wal) => {
                    round.files.extend(self.objects.get_mut(&key).and_then(|slot| slot.dir.take()));
                    log.flush().map(|_| Some(wal))
                }
                RoundCommits::None | RoundCommits::Many => log.flush(),
            };
            let (segment, end) = log.position();
            // Only a round that syncs the log makes its records durable (what a backup ships).
            if log_synced
                && let Ok(Some(_)) = &flushed
                && let Some(mut ends) = self.syncer.durable.log_ends.get(self.index).and_then(|e| e.lock().ok())
            {
                ends.written(round.id, segment, end);
            }
            match flushed {
                Ok(Some(file)) => round.files.push(file),
                Ok(None) => {}
                Err(e) => {
                    // The round's records did not reach the log: nothing in it is durable.
                    self.syncer.durable.poisoned.store(true, Ordering::SeqCst);
                    for reply in round.replies.drain(..) {
                        reply(Some(e.duplicate()));
                    }
                    return;
                }
            }
        }
        if round.files.is_empty() && round.replies.is_empty() {
            return;
        }
        self.round_id += 1;
        let nothing_in_flight = self.durable_round() + 1 >= round.id;
        if nothing_in_flight && round.replies.len() <= INLINE_ROUND_EVENTS {
            let files = round.files.clone();
            let result = sync_round_files(files, &self.syncer.durable, self.config.syncfs_threshold, &self.stats);
            self.stats.record_round(round.replies.len());
            complete(round, result.as_ref().err(), &self.syncer.durable);
            return;
        }
        if let Err(std::sync::mpsc::SendError(round)) = self.syncer.tx.send(round) {
            for reply in round.replies {
                reply(Some(Error::ShuttingDown));
            }
        }
    }

    fn durable_round(&self) -> u64 {
        self.syncer.durable.rounds.get(self.index).map_or(0, |r| r.load(Ordering::SeqCst))
    }

    fn open_slot(&mut self, ns: &Arc<str>, name: &Arc<str>) -> Result<Box<str>, Error> {
        let key = key_of(ns, name);
        self.tick += 1;
        if let Some(slot) = self.objects.get_mut(&key) {
            self.lru.remove(&slot.last_used);
            slot.last_used = self.tick;
            self.lru.insert(self.tick, key.clone());
            return Ok(key);
        }
        let path = layout::object_path(&self.config.data_dir, ns, name);
        let options = OpenOptions {
            limits: self.config.limits_for(ns),
            clock: Arc::clone(&self.config.clock),
            synchronous: match self.config.durability {
                Durability::Fsync => Synchronous::Normal,
                Durability::Os => Synchronous::Off,
            },
            identity: Some((ns.to_string(), name.to_string())),
        };
        let mut storage = ObjectStorage::open(&path, &options)?;
        let wal_path = format!("{}-wal", path.display());
        let wal = File::open(&wal_path).map_err(|source| Error::Io { context: "open an object's WAL file", source })?;
        let dir = path
            .parent()
            .map(File::open)
            .transpose()
            .map_err(|source| Error::Io { context: "open an object's directory", source })?
            .ok_or(Error::Io { context: "open an object's directory", source: std::io::ErrorKind::NotFound.into() })?;
        let mut pending_creation = None;
        if self.log.is_some() {
            storage.enable_change_capture();
            let frames = storage.take_changes()?;
            if !frames.is_empty() {
                pending_creation = Some(frames);
            }
        }
        if let (Some(h), Some(log)) = (&self.history, &self.log)
            && let Err(e) = ensure_history_base(h, log, ns, name, &mut storage)
        {
            tracing::warn!(error = %e, object = %format!("{ns}/{name}"), "failed to keep a history base");
        }
        self.stats.objects_opened.fetch_add(1, Ordering::Relaxed);
        self.stats.open_objects.fetch_add(1, Ordering::Relaxed);
        let slot = Slot {
            storage,
            ns: Arc::clone(ns),
            name: Arc::clone(name),
            pending_creation,
            wal: Arc::new(wal),
            dir: Some(Arc::new(dir)),
            last_used: self.tick,
            last_write_round: 0,
        };
        self.objects.insert(key.clone(), slot);
        self.lru.insert(self.tick, key.clone());
        Ok(key)
    }

    fn handle_event(&mut self, ns: Arc<str>, name: Arc<str>, job: Job, round: &mut Round) {
        self.stats.events.fetch_add(1, Ordering::Relaxed);
        self.apply_pending_restore(&ns, &name, round);
        let key = match self.open_slot(&ns, &name) {
            Ok(k) => k,
            Err(e) => {
                let outcome = job(Err(e));
                (outcome.reply)(None);
                return;
            }
        };
        let fsync = self.config.durability == Durability::Fsync;
        let durable_round = self.durable_round();
        let poisoned = self.syncer.durable.poisoned.load(Ordering::SeqCst);
        let Some(slot) = self.objects.get_mut(&key) else { return };
        let outcome = job(Ok(&mut slot.storage));
        if slot.storage.take_alarm_reindex() {
            // Runs before this event commits: an alarm it moves earlier is indexed again by
            // the commit path below; one it moves later is indexed after the commit.
            let next = slot.storage.committed_next_alarm();
            if let Err(e) = self.catalog.set_alarm(&slot.ns, &slot.name, next, false) {
                tracing::warn!(error = %e, "failed to reindex an alarm");
            }
        }
        let reply = outcome.reply;
        let mut reset = false;
        if outcome.commit && slot.storage.has_pending_writes() {
            if poisoned {
                slot.storage.rollback();
                reply(Some(Error::Durability { context: "commit", message: "an earlier sync failed".to_owned() }));
                return;
            }
            if let Err(e) = index_earlier_alarm(&self.catalog, slot, fsync) {
                slot.storage.rollback();
                reply(Some(e));
                return;
            }
            match slot.storage.commit() {
                Ok(Some(info)) => {
                    self.stats.commits.fetch_add(1, Ordering::Relaxed);
                    let mut catalog_touched = false;
                    if info.seq == 1 {
                        // First commit of a new object: it now exists.
                        let now = self.config.clock.now_ms();
                        if let Err(e) = self.catalog.register_object(&slot.ns, &slot.name, now) {
                            tracing::warn!(error = %e, "failed to register an object in the catalog");
                        }
                        catalog_touched = true;
                    }
                    if let Some(change) = info.alarm_change {
                        let indexed = self.catalog.indexed_alarm(&slot.ns, &slot.name).ok().flatten();
                        if change.is_none() || indexed.is_some_and(|i| change.is_some_and(|t| t > i)) {
                            // Moved later or deleted: the index follows after the commit.
                            if let Err(e) = self.catalog.set_alarm(&slot.ns, &slot.name, change, false) {
                                tracing::warn!(error = %e, "failed to update the alarm index");
                            }
                            catalog_touched = true;
                        }
                    }
                    slot.last_write_round = round.id;
                    // With history, the log must hold every acknowledged commit: always sync it.
                    let created = slot.pending_creation.is_some() || self.history.is_some();
                    self.round_commits = match std::mem::take(&mut self.round_commits) {
                        RoundCommits::None if !created => RoundCommits::One(key.clone(), Arc::clone(&slot.wal)),
                        RoundCommits::One(k, wal) if k == key && !created => RoundCommits::One(k, wal),
                        _ => RoundCommits::Many,
                    };
                    if let Some(log) = self.log.as_mut()
                        && let Err(e) = log_commit(log, slot, info.seq, info.timestamp_ms)
                    {
                        self.syncer.durable.poisoned.store(true, Ordering::SeqCst);
                        reply(Some(e));
                        return;
                    }
                    let committed =
                        Bookmark { seq: info.seq, timestamp_ms: u64::try_from(info.timestamp_ms).unwrap_or(0) };
                    let notify = self.watchers.sender(&key);
                    if fsync {
                        if catalog_touched {
                            round.files.push(Arc::clone(self.catalog.wal()));
                        }
                        round.replies.push(reply);
                        if let Some(tx) = notify {
                            round.replies.push(Box::new(move |err| {
                                if err.is_none() {
                                    crate::watch::publish(&tx, committed);
                                }
                            }));
                        }
                    } else {
                        reply(None);
                        if let Some(tx) = notify {
                            crate::watch::publish(&tx, committed);
                        }
                    }
                    return;
                }
                Ok(None) => {}
                Err(e) => {
                    reset = e.requires_reset();
                    reply(Some(Error::Storage(e)));
                    if reset || slot.storage.is_broken() {
                        self.close(&key);
                    }
                    return;
                }
            }
        } else {
            slot.storage.rollback();
        }
        // Nothing to commit. The result may still reveal writes that are not durable yet
        // (made by earlier events on this object): then it waits for their round.
        if fsync && slot.last_write_round > durable_round {
            round.replies.push(reply);
        } else {
            reply(None);
        }
        if reset || slot.storage.is_broken() {
            self.close(&key);
        }
    }

    /// Starts a new log segment once the current one is full. Every commit in the old segment
    /// is made durable in the object files first: one `syncfs` writes back the open objects'
    /// WALs and the directory entries of new files (closed objects were synced on close).
    fn rotate_log_if_full(&mut self) {
        let Some(log) = self.log.as_mut() else { return };
        if !log.is_full() {
            return;
        }
        let synced = File::open(&self.config.data_dir).and_then(|d| rustix::fs::syncfs(&d).map_err(Into::into));
        if let Err(e) = synced {
            tracing::error!(error = %e, "failed to sync the data directory before rotating the commit log");
            self.syncer.durable.poisoned.store(true, Ordering::SeqCst);
            return;
        }
        let (segment, end) = log.position();
        let rotated = log.rotate();
        if rotated.is_ok()
            && let Some(mut ends) = self.syncer.durable.log_ends.get(self.index).and_then(|e| e.lock().ok())
        {
            ends.sealed(segment, end);
        }
        match rotated {
            Ok(Some(sealed)) => {
                if let Some(h) = &self.history
                    && let Err(e) = h.archive(&sealed)
                {
                    tracing::error!(error = %e, "failed to move a log segment into history");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "failed to rotate the commit log"),
        }
    }

    /// Copies objects' files (see `backup.rs`). One `syncfs` first makes every commit this
    /// shard has written durable, so no copy holds a commit a crash could still lose.
    fn copy_objects(
        &mut self,
        objects: &[(String, String)],
        dest: &Path,
    ) -> crate::Result<Vec<crate::backup::CopiedObject>> {
        let dir = File::open(&self.config.data_dir)
            .map_err(|source| Error::Io { context: "open the data directory", source })?;
        rustix::fs::syncfs(&dir).map_err(|e| Error::durability("syncfs before a backup copy", &e.into()))?;
        objects
            .iter()
            .map(|(ns, name)| crate::backup::copy_object_files(&self.config.data_dir, ns, name, dest))
            .collect()
    }

    fn evict_over_budget(&mut self) {
        while self.objects.len() > self.budget {
            let Some((_, key)) = self.lru.pop_first() else { break };
            self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            self.close(&key);
        }
    }

    /// Closes an object. SQLite checkpoints the WAL into the database file on close, syncing
    /// both, so nothing committed depends on a later fsync of the WAL. An object that was never
    /// written is removed: an object exists once it has been written.
    fn close(&mut self, key: &str) {
        let Some(slot) = self.objects.remove(key) else { return };
        self.lru.remove(&slot.last_used);
        self.stats.open_objects.fetch_sub(1, Ordering::Relaxed);
        let never_written = slot.storage.committed_seq() == 0;
        let path = slot.storage.path().to_path_buf();
        if never_written {
            // Its files go: no need to checkpoint and sync them first (two fsyncs on this
            // thread, which made hibernating rooms that were only visited slow to release).
            slot.storage.discard();
        } else {
            drop(slot);
        }
        if never_written {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

/// Appends a commit's change record (preceded, for a new object, by its creation record) to
/// the log, then checkpoints the object's WAL if it has grown large.
fn log_commit(log: &mut CommitLog, slot: &mut Slot, seq: u64, ts: i64) -> Result<(), Error> {
    if let Some(creation) = slot.pending_creation.take() {
        log.append(&slot.ns, &slot.name, 0, ts, &creation);
    }
    let frames = slot.storage.take_changes()?;
    log.append(&slot.ns, &slot.name, seq, ts, &frames);
    slot.storage.checkpoint_if_needed(cairn_storage::changes::WAL_CHECKPOINT_FRAMES)?;
    Ok(())
}

/// Writes an alarm that moves earlier (or appears) to the node's alarm index before the
/// object commits, so that the index never holds a time later than the object's alarm.
fn index_earlier_alarm(catalog: &Catalog, slot: &Slot, durable: bool) -> Result<(), Error> {
    let Some(Some(t)) = slot.storage.pending_alarm_change() else { return Ok(()) };
    let indexed = catalog.indexed_alarm(&slot.ns, &slot.name)?;
    if indexed.is_none_or(|i| t < i) {
        catalog.set_alarm(&slot.ns, &slot.name, Some(t), durable)?;
    }
    Ok(())
}
