//! Cairn's runtime: shard threads that own objects, run their events one at a time, and make
//! their commits durable together (group commit) before releasing results (output gate).
//!
//! # Threading model
//! - N shard threads (default: the number of cores). An object is pinned to the shard
//!   `hash(namespace, name) % N`; that thread owns its SQLite connection and runs its events
//!   one at a time (the input gate). Storage calls inside an event are plain synchronous calls.
//! - Other threads reach an object through an [`ObjectRef`]: a bounded channel to the shard
//!   and a oneshot reply.
//! - One durability thread (`syncer.rs`) makes each round of commits durable and then runs the
//!   replies. With [`Durability::Os`] replies are released right after the commit.
//! - Idle objects are closed once a shard holds more than its share of
//!   [`RuntimeConfig::max_open_objects`]; the next event reopens them.
//!
//! # Example
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let rt = cairn_runtime::Runtime::builder(dir.path()).shards(2).open()?;
//! let room = rt.object("rooms", "lobby")?;
//! let n: i64 = room.run_blocking(|s| {
//!     let n = s.update("visits", 0i64, |n| n + 1)?;
//!     Ok::<_, cairn_runtime::Error>(n)
//! })?;
//! assert_eq!(n, 1);
//! rt.close();
//! # Ok(()) }
//! ```

mod backup;
mod catalog;
mod config;
mod error;
mod handle;
mod history;
mod log;
pub mod registry;
mod shard;
mod stats;
mod syncer;
mod watch;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use cairn_storage::layout;
use tokio::sync::mpsc;

pub use backup::{
    CopiedObject, LogPosition, SegmentFile, count_whole_records, log_segment_path, parse_segment_file_name,
    record_timestamps, records_until, whole_records_len,
};
pub use config::{Durability, HistoryConfig, RuntimeBuilder, RuntimeConfig};
pub use error::{Error, Result};
pub use handle::{ObjectRef, panic_message};
pub use stats::{ROUND_SIZE_BOUNDS, RuntimeStats};

use crate::catalog::Catalog;
use crate::shard::{Command, Shard};
use crate::stats::Stats;
use crate::syncer::{Durable, SyncerHandle};

/// An object as the catalog knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's name.
    pub name: String,
    /// When it was first written, ms since the epoch.
    pub created_ms: i64,
    /// Bytes of its database and WAL files now.
    pub size_bytes: u64,
    /// When its files were last modified (a commit or a checkpoint), ms since the epoch.
    pub last_write_ms: i64,
}

/// A running set of shards over one data directory. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<RuntimeConfig>,
    shards: Vec<mpsc::Sender<Command>>,
    /// Shard and syncer threads, taken by `close`.
    threads: Mutex<Option<Threads>>,
    stats: Arc<Stats>,
    /// A catalog connection for queries from outside the shards.
    catalog: Mutex<Catalog>,
    /// A history connection for work outside the shards (compaction), when history is kept.
    history: Option<Mutex<history::History>>,
    /// Commit subscribers.
    watchers: Arc<watch::Watchers>,
    /// Durable ends of the commit logs (shared with the shards and the syncer).
    durable: Arc<Durable>,
    /// Compaction keeps segments with records newer than this (ms; `i64::MAX`: no pin).
    history_pin: AtomicI64,
}

struct Threads {
    shards: Vec<JoinHandle<()>>,
    syncer: JoinHandle<()>,
    syncer_tx: std::sync::mpsc::Sender<syncer::Round>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("data_dir", &self.inner.config.data_dir).finish()
    }
}

impl Runtime {
    /// A builder with the defaults of [`RuntimeConfig::new`].
    pub fn builder(data_dir: impl Into<std::path::PathBuf>) -> RuntimeBuilder {
        RuntimeBuilder { config: RuntimeConfig::new(data_dir) }
    }

    fn start(config: RuntimeConfig) -> Result<Runtime> {
        std::fs::create_dir_all(config.data_dir.join("objects"))
            .map_err(|source| Error::Io { context: "create the data directory", source })?;
        let history_lock = Arc::new(std::sync::RwLock::new(()));
        let history = if config.history_on() {
            let h = history::History::open(&config.data_dir, Arc::clone(&history_lock))?;
            h.reconcile()?;
            Some(h)
        } else {
            None
        };
        let recovery = log::recover(&config.data_dir, history.as_ref())?;
        let first_segment = history::next_segment_number(&config.data_dir);
        if recovery.segments > 0 {
            tracing::info!(
                segments = recovery.segments,
                records = recovery.records,
                objects_repaired = recovery.objects_repaired,
                "replayed the commit log"
            );
        }
        let config = Arc::new(config);
        let stats = Arc::new(Stats::default());
        let catalog = Catalog::open(&config.data_dir)?;
        for (ns, name, alarm) in &recovery.replayed {
            catalog.register_object(ns, name, config.clock.now_ms())?;
            catalog.set_alarm(ns, name, *alarm, false)?;
        }
        if !recovery.replayed.is_empty() {
            catalog.wal().sync_data().map_err(|e| Error::durability("sync the catalog after recovery", &e))?;
        }
        let durable = Arc::new(Durable::new(config.shards));
        let (syncer_tx, syncer_rx) = std::sync::mpsc::channel();
        let syncer = {
            let durable = Arc::clone(&durable);
            let stats = Arc::clone(&stats);
            let threshold = config.syncfs_threshold;
            std::thread::Builder::new()
                .name("cairn-syncer".to_owned())
                .spawn(move || syncer::run(syncer_rx, durable, threshold, stats))
                .map_err(|source| Error::Io { context: "start the durability thread", source })?
        };
        let handle = SyncerHandle { tx: syncer_tx.clone(), durable: Arc::clone(&durable) };
        let watchers = Arc::new(watch::Watchers::default());
        let mut senders = Vec::with_capacity(config.shards);
        let mut threads = Vec::with_capacity(config.shards);
        for i in 0..config.shards {
            let (tx, rx) = mpsc::channel(config.queue_capacity);
            let shard = Shard::new(
                i,
                Arc::clone(&config),
                handle.clone(),
                Arc::clone(&stats),
                first_segment,
                &history_lock,
                Arc::clone(&watchers),
            )?;
            let t = std::thread::Builder::new()
                .name(format!("cairn-shard-{i}"))
                .spawn(move || shard.run(rx))
                .map_err(|source| Error::Io { context: "start a shard thread", source })?;
            senders.push(tx);
            threads.push(t);
        }
        drop(handle);
        Ok(Runtime {
            inner: Arc::new(Inner {
                config,
                shards: senders,
                threads: Mutex::new(Some(Threads { shards: threads, syncer, syncer_tx })),
                stats,
                catalog: Mutex::new(catalog),
                history: history.map(Mutex::new),
                watchers,
                durable,
                history_pin: AtomicI64::new(i64::MAX),
            }),
        })
    }

    /// A handle to object `name` in namespace `ns`. Objects exist implicitly: the first write
    /// creates the file.
    ///
    /// # Errors
    /// [`cairn_storage::Error::InvalidName`] for an unacceptable name.
    pub fn object(&self, ns: &str, name: &str) -> Result<ObjectRef> {
        layout::validate_namespace(ns)?;
        layout::validate_object_name(name)?;
        let shard = shard::shard_of(ns, name, self.inner.shards.len());
        let sender = self.inner.shards.get(shard).cloned().ok_or(Error::ShuttingDown)?;
        Ok(ObjectRef {
            ns: Arc::from(ns),
            name: Arc::from(name),
            shard: sender,
            watchers: Arc::clone(&self.inner.watchers),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// A snapshot of the runtime's counters.
    pub fn stats(&self) -> RuntimeStats {
        self.inner.stats.snapshot()
    }

    /// Objects whose alarm is due at or before `now_ms`, earliest first: `(namespace, name,
    /// indexed time)`. The index may hold an earlier time than the object (never a later one);
    /// the object's own alarm is authoritative.
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub fn due_alarms(&self, now_ms: i64, limit: usize) -> Result<Vec<(String, String, i64)>> {
        let catalog = self.inner.catalog.lock().map_err(|_| Error::ShuttingDown)?;
        catalog.due_alarms(now_ms, limit)
    }

    /// Objects of namespace `ns` whose alarm is due at or before `now_ms`, earliest first:
    /// `(name, indexed time)`, at most `limit`. See [`Runtime::due_alarms`].
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub fn due_alarms_in(&self, ns: &str, now_ms: i64, limit: usize) -> Result<Vec<(String, i64)>> {
        let catalog = self.inner.catalog.lock().map_err(|_| Error::ShuttingDown)?;
        catalog.due_alarms_in(ns, now_ms, limit)
    }

    /// The earliest alarm indexed for namespace `ns` later than `after_ms` (possibly earlier
    /// than the object's own, never later; see [`Runtime::due_alarms`]). Reads the catalog;
    /// opens no object.
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub fn earliest_alarm_in(&self, ns: &str, after_ms: i64) -> Result<Option<i64>> {
        let catalog = self.inner.catalog.lock().map_err(|_| Error::ShuttingDown)?;
        catalog.earliest_alarm_in(ns, after_ms)
    }

    /// The objects of a namespace that have been written, with names after `after`, in name
    /// order, at most `limit`. Reads the catalog; opens no object.
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub fn list_objects(&self, ns: &str, after: &str, limit: usize) -> Result<Vec<ObjectInfo>> {
        let rows = {
            let catalog = self.inner.catalog.lock().map_err(|_| Error::ShuttingDown)?;
            catalog.list_objects(ns, after, limit)?
        };
        Ok(rows
            .into_iter()
            .map(|(name, created_ms)| {
                // Size and last write come from the files' metadata (no object is opened).
                let db = layout::object_path(&self.inner.config.data_dir, ns, &name);
                let wal = std::path::PathBuf::from(format!("{}-wal", db.display()));
                let (mut size_bytes, mut last) = (0u64, std::time::UNIX_EPOCH);
                for m in [&db, &wal].into_iter().filter_map(|p| std::fs::metadata(p).ok()) {
                    size_bytes += m.len();
                    last = last.max(m.modified().unwrap_or(std::time::UNIX_EPOCH));
                }
                let last_write_ms = last
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                ObjectInfo { name, created_ms, size_bytes, last_write_ms }
            })
            .collect())
    }

    /// Number of objects that have been written in a namespace.
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub fn object_count(&self, ns: &str) -> Result<u64> {
        let catalog = self.inner.catalog.lock().map_err(|_| Error::ShuttingDown)?;
        catalog.object_count(ns)
    }

    /// Creates object `dst` as a copy of object `src` at bookmark `at` (or as it is now), leaving
    /// `src` untouched. Returns the bookmark of the new object's first commit. The fork starts
    /// its own history there.
    ///
    /// # Errors
    /// [`Error::ObjectExists`] if `dst` has been written; [`Error::InvalidBookmark`] or
    /// [`Error::HistoryUnavailable`] for a bookmark history cannot rebuild;
    /// [`Error::HistoryDisabled`] without history.
    pub async fn fork(
        &self,
        src: &ObjectRef,
        at: Option<cairn_storage::Bookmark>,
        dst: &ObjectRef,
    ) -> Result<cairn_storage::Bookmark> {
        let history = self.inner.history.as_ref().ok_or(Error::HistoryDisabled)?;
        let tmp = history.lock().map_err(|_| Error::ShuttingDown)?.temp_path();
        let built = src.image(at, tmp.clone()).await;
        if let Err(e) = built {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        dst.install(tmp).await
    }

    /// Folds history older than the longest retention window into bases and deletes it (see
    /// `history.rs`). Returns the number of log segments removed. Blocking: call it from a
    /// thread that may block (for example `spawn_blocking`), say once an hour.
    ///
    /// # Errors
    /// I/O or index failures; what was folded before the failure stays folded.
    pub fn compact_history(&self) -> Result<usize> {
        let Some(history) = &self.inner.history else { return Ok(0) };
        let window = i64::try_from(self.inner.config.history.longest_retention().as_millis()).unwrap_or(i64::MAX);
        let cutoff = self.inner.config.clock.now_ms().saturating_sub(window);
        // A backup that has not shipped newer records yet pins them.
        let cutoff = cutoff.min(self.inner.history_pin.load(Ordering::SeqCst));
        history.lock().map_err(|_| Error::ShuttingDown)?.compact(cutoff)
    }

    /// Bytes of history on disk (sealed log segments and bases), 0 without history.
    pub fn history_bytes(&self) -> u64 {
        self.inner.history.as_ref().and_then(|h| h.lock().ok()).map_or(0, |h| h.disk_bytes())
    }

    /// Stops taking events, finishes the queued ones, makes their commits durable, closes
    /// every object and joins the threads. Idempotent; also runs when the last handle drops.
    pub fn close(&self) {
        let threads = self.inner.threads.lock().ok().and_then(|mut t| t.take());
        if let Some(threads) = threads {
            shutdown(&self.inner.shards, threads);
        }
    }
}

/// Asks every shard to stop after its queued events, then joins the shards and the syncer.
/// Runs on a scoped thread of its own so that it may be called from inside an async runtime
/// (where blocking channel sends are not allowed); the caller blocks until it is done.
fn shutdown(shards: &[mpsc::Sender<Command>], threads: Threads) {
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for tx in shards {
                // A full queue waits here: shutdown comes after what is queued.
                let _ = tx.blocking_send(Command::Shutdown);
            }
            for t in threads.shards {
                let _ = t.join();
            }
            drop(threads.syncer_tx);
            let _ = threads.syncer.join();
        });
    });
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(threads) = self.threads.get_mut().ok().and_then(Option::take) {
            shutdown(&self.shards, threads);
        }
    }
}
