//! The durability stage: makes a whole round of commits durable at once, then releases the
//! results of the events in it (the output gate).
//!
//! Shards hand over [`Round`]s: the files their commits touched and the replies waiting for
//! them. The syncer takes every round queued since its last pass, makes all their files
//! durable together, and only then runs the replies. While it syncs, shards keep executing and
//! queue the next rounds, so the number of fsyncs does not grow with the number of commits.
//!
//! A shard with nothing in flight whose round holds few events syncs it itself
//! ([`INLINE_ROUND_EVENTS`]): at low load that saves two thread wake-ups per event, and at
//! high load rounds are large and go through this stage, which overlaps syncing with execution.
//!
//! How files are made durable: with few distinct files, `fdatasync` each (plus its directory
//! where a file was just created); with more than `syncfs_threshold`, one `syncfs` of the data
//! file system, which writes back and flushes everything in one device flush. See
//! `docs/decisions/0002-group-commit.md` for the measurements behind this.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::Error;
use crate::stats::Stats;

/// Rounds with at most this many events are synced by their shard when it has no round in
/// flight.
pub(crate) const INLINE_ROUND_EVENTS: usize = 2;

/// A reply waiting for durability: called with `None` once the round is durable, or with the
/// error that made it fail.
pub(crate) type Reply = Box<dyn FnOnce(Option<Error>) + Send>;

/// The commits of one shard's batch of events.
pub(crate) struct Round {
    pub(crate) shard: usize,
    pub(crate) id: u64,
    /// Files whose data must be durable (WAL files, directories of new files).
    pub(crate) files: Vec<Arc<File>>,
    pub(crate) replies: Vec<Reply>,
}

/// State shared between the syncer and the shards.
pub(crate) struct Durable {
    /// Per shard, the id of the last round made durable.
    pub(crate) rounds: Vec<AtomicU64>,
    /// Set after a failed sync: the runtime refuses writes from then on.
    pub(crate) poisoned: AtomicBool,
    /// Per shard, where its commit log is durable up to (what a backup may ship).
    pub(crate) log_ends: Vec<Mutex<LogEnds>>,
}

impl Durable {
    pub(crate) fn new(shards: usize) -> Self {
        Durable {
            rounds: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            poisoned: AtomicBool::new(false),
            log_ends: (0..shards).map(|_| Mutex::new(LogEnds::default())).collect(),
        }
    }

    /// The durable end of each shard's commit log: `(shard, segment, bytes)`, for shards
    /// whose log has been written since the start.
    pub(crate) fn log_positions(&self) -> Vec<(usize, u64, u64)> {
        let mut out = Vec::new();
        for (shard, ends) in self.log_ends.iter().enumerate() {
            if let Some((segment, end)) = ends.lock().ok().and_then(|e| e.durable) {
                out.push((shard, segment, end));
            }
        }
        out
    }
}

/// Ends of one shard's commit log written by rounds not yet durable, and the durable end.
#[derive(Default)]
pub(crate) struct LogEnds {
    /// `(round id, segment, end offset)` in round order.
    pending: VecDeque<(u64, u64, u64)>,
    durable: Option<(u64, u64)>,
}

impl LogEnds {
    /// Notes that round `round` leaves the log ending at `end` in `segment`.
    pub(crate) fn written(&mut self, round: u64, segment: u64, end: u64) {
        self.pending.push_back((round, segment, end));
    }

    /// Notes that a segment was sealed (after a `syncfs`): all of it is durable.
    pub(crate) fn sealed(&mut self, segment: u64, end: u64) {
        self.pending.retain(|(_, s, _)| *s > segment);
        if self.durable.is_none_or(|(s, _)| s <= segment) {
            self.durable = Some((segment, end));
        }
    }

    fn completed(&mut self, round: u64) {
        while let Some(&(id, segment, end)) = self.pending.front() {
            if id > round {
                break;
            }
            self.pending.pop_front();
            if self.durable.is_none_or(|d| d <= (segment, end)) {
                self.durable = Some((segment, end));
            }
        }
    }
}

pub(crate) fn run(rx: Receiver<Round>, durable: Arc<Durable>, syncfs_threshold: usize, stats: Arc<Stats>) {
    let mut batch: Vec<Round> = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let mut files: Vec<Arc<File>> = batch.iter().flat_map(|r| r.files.iter().cloned()).collect();
        files.sort_by_key(|f| Arc::as_ptr(f) as usize);
        files.dedup_by(|a, b| Arc::ptr_eq(a, b));
        let files = batch.iter().flat_map(|r| r.files.iter().cloned()).collect();
        let result = sync_round_files(files, &durable, syncfs_threshold, &stats);
        stats.record_round(batch.iter().map(|r| r.replies.len()).sum());
        for round in batch.drain(..) {
            complete(round, result.as_ref().err(), &durable);
        }
    }
}

/// Makes `files` durable (deduplicated), or fails if the runtime is poisoned; a failure
/// poisons it.
pub(crate) fn sync_round_files(
    mut files: Vec<Arc<File>>,
    durable: &Durable,
    syncfs_threshold: usize,
    stats: &Stats,
) -> Result<(), Error> {
    files.sort_by_key(|f| Arc::as_ptr(f) as usize);
    files.dedup_by(|a, b| Arc::ptr_eq(a, b));
    let result = if durable.poisoned.load(Ordering::SeqCst) {
        Err(Error::Durability { context: "commit", message: "an earlier sync failed".to_owned() })
    } else {
        sync_files(&files, syncfs_threshold, stats)
    };
    if result.is_err() {
        durable.poisoned.store(true, Ordering::SeqCst);
    }
    stats.sync_rounds.fetch_add(1, Ordering::Relaxed);
    result
}

/// Marks a round durable (or failed) and releases its replies.
pub(crate) fn complete(round: Round, error: Option<&Error>, durable: &Durable) {
    if let Some(slot) = durable.rounds.get(round.shard) {
        slot.fetch_max(round.id, Ordering::SeqCst);
    }
    if error.is_none()
        && let Some(mut ends) = durable.log_ends.get(round.shard).and_then(|e| e.lock().ok())
    {
        ends.completed(round.id);
    }
    for reply in round.replies {
        reply(error.map(Error::duplicate));
    }
}

fn sync_files(files: &[Arc<File>], syncfs_threshold: usize, stats: &Stats) -> Result<(), Error> {
    if files.is_empty() {
        return Ok(());
    }
    stats.synced_files.fetch_add(files.len() as u64, Ordering::Relaxed);
    if files.len() > syncfs_threshold
        && let Some(first) = files.first()
    {
        stats.syncfs_calls.fetch_add(1, Ordering::Relaxed);
        return rustix::fs::syncfs(first.as_ref()).map_err(|e| Error::durability("syncfs", &e.into()));
    }
    for f in files {
        stats.fdatasync_calls.fetch_add(1, Ordering::Relaxed);
        f.sync_data().map_err(|e| Error::durability("fdatasync", &e))?;
    }
    Ok(())
}

/// A handle for shards to submit rounds.
#[derive(Clone)]
pub(crate) struct SyncerHandle {
    pub(crate) tx: Sender<Round>,
    pub(crate) durable: Arc<Durable>,
}
