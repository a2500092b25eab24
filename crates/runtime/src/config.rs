//! Runtime configuration and its builder.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_storage::{Clock, Limits, SystemClock};

/// When a commit counts as durable, and so when its event's result is released.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Results are released after the commit is on disk (fsync): acknowledged writes survive
    /// power loss. The default.
    #[default]
    Fsync,
    /// Results are released once the commit reached the operating system: acknowledged writes
    /// survive a crash of the process, not of the machine.
    Os,
}

/// Everything the runtime is configured with. Built by [`crate::Runtime::builder`].
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Directory holding `objects/` and `catalog.db`.
    pub data_dir: PathBuf,
    /// Number of shard threads. Default: the number of cores.
    pub shards: usize,
    /// See [`Durability`]. Default: `Fsync`.
    pub durability: Durability,
    /// Most objects kept open at once over all shards; idle ones beyond it are closed.
    /// Default 10,000.
    pub max_open_objects: usize,
    /// Limits for namespaces without their own. Default: [`Limits::default`].
    pub default_limits: Arc<Limits>,
    /// Per-namespace limits.
    pub namespace_limits: HashMap<String, Arc<Limits>>,
    /// Pending events per shard before senders wait. Default 1024.
    pub queue_capacity: usize,
    /// Most events a shard runs before it hands a round to the durability stage. Default 1024.
    pub max_round_events: usize,
    /// With more distinct files than this to make durable in one round, the durability stage
    /// syncs the whole file system once (`syncfs`) instead of each file. Default 4.
    pub syncfs_threshold: usize,
    /// How long an idle shard polls its queue before it parks. Default 200 µs; zero parks at
    /// once (saves CPU on an idle machine, costs latency and throughput).
    pub idle_spin: std::time::Duration,
    /// Source of time. Default: the system clock.
    pub clock: Arc<dyn Clock>,
    /// Point-in-time history. Default: on, 30 days.
    pub history: HistoryConfig,
    /// A shard's commit log segment is sealed (and, with history, kept in `history/`) once it
    /// is larger than this. Default 64 MiB.
    pub log_segment_bytes: u64,
}

/// What history keeps (see `history.rs`): every commit for a retention window, so objects can
/// be restored or forked at any bookmark in it. Needs [`Durability::Fsync`] (history is the
/// commit log, kept).
#[derive(Clone, Debug)]
pub struct HistoryConfig {
    /// Keep history. Default: on.
    pub enabled: bool,
    /// How far back bookmarks reach. Default: 30 days.
    pub retention: std::time::Duration,
    /// Per-namespace windows. History files hold many namespaces, so disk space follows the
    /// longest window; a namespace's bookmarks are refused beyond its own.
    pub namespace_retention: HashMap<String, std::time::Duration>,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            enabled: true,
            retention: std::time::Duration::from_secs(30 * 24 * 3600),
            namespace_retention: HashMap::new(),
        }
    }
}

impl HistoryConfig {
    /// The window of one namespace.
    pub fn retention_for(&self, ns: &str) -> std::time::Duration {
        self.namespace_retention.get(ns).copied().unwrap_or(self.retention)
    }

    /// The longest window of any namespace.
    pub fn longest_retention(&self) -> std::time::Duration {
        self.namespace_retention.values().copied().fold(self.retention, std::time::Duration::max)
    }
}

impl RuntimeConfig {
    /// Defaults for `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        RuntimeConfig {
            data_dir: data_dir.into(),
            shards: std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            durability: Durability::Fsync,
            max_open_objects: 10_000,
            default_limits: Arc::new(Limits::default()),
            namespace_limits: HashMap::new(),
            queue_capacity: 1024,
            max_round_events: 1024,
            syncfs_threshold: 4,
            idle_spin: std::time::Duration::from_micros(200),
            clock: Arc::new(SystemClock),
            history: HistoryConfig::default(),
            log_segment_bytes: 64 * 1024 * 1024,
        }
    }

    /// Whether history is kept: enabled, with the commit log it is made of.
    pub fn history_on(&self) -> bool {
        self.history.enabled && self.durability == Durability::Fsync
    }

    pub(crate) fn limits_for(&self, ns: &str) -> Arc<Limits> {
        self.namespace_limits.get(ns).map_or_else(|| Arc::clone(&self.default_limits), Arc::clone)
    }
}

/// Builds a [`crate::Runtime`].
#[derive(Debug)]
pub struct RuntimeBuilder {
    pub(crate) config: RuntimeConfig,
}

impl RuntimeBuilder {
    /// Number of shard threads (at least 1).
    pub fn shards(mut self, n: usize) -> Self {
        self.config.shards = n.max(1);
        self
    }
    /// Commit durability.
    pub fn durability(mut self, d: Durability) -> Self {
        self.config.durability = d;
        self
    }
    /// Budget of open objects over all shards (at least one per shard).
    pub fn max_open_objects(mut self, n: usize) -> Self {
        self.config.max_open_objects = n.max(1);
        self
    }
    /// Limits for namespaces without their own.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.default_limits = Arc::new(limits);
        self
    }
    /// Limits for one namespace.
    pub fn namespace_limits(mut self, ns: impl Into<String>, limits: Limits) -> Self {
        self.config.namespace_limits.insert(ns.into(), Arc::new(limits));
        self
    }
    /// Pending events per shard before senders wait.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.config.queue_capacity = n.max(1);
        self
    }
    /// Most events a shard runs before it hands a round to the durability stage.
    pub fn max_round_events(mut self, n: usize) -> Self {
        self.config.max_round_events = n.max(1);
        self
    }
    /// See [`RuntimeConfig::syncfs_threshold`].
    pub fn syncfs_threshold(mut self, n: usize) -> Self {
        self.config.syncfs_threshold = n;
        self
    }
    /// How long an idle shard polls its queue before parking.
    pub fn idle_spin(mut self, d: std::time::Duration) -> Self {
        self.config.idle_spin = d;
        self
    }
    /// Source of time (tests inject a [`cairn_storage::ManualClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.config.clock = clock;
        self
    }
    /// Point-in-time history (see [`HistoryConfig`]).
    pub fn history(mut self, history: HistoryConfig) -> Self {
        self.config.history = history;
        self
    }
    /// See [`RuntimeConfig::log_segment_bytes`] (at least 4 KiB).
    pub fn log_segment_bytes(mut self, bytes: u64) -> Self {
        self.config.log_segment_bytes = bytes.max(4096);
        self
    }
    /// Opens the data directory and starts the shard threads.
    ///
    /// # Errors
    /// [`crate::Error::Io`] or [`crate::Error::Catalog`] if the data directory cannot be used.
    pub fn open(self) -> crate::Result<crate::Runtime> {
        crate::Runtime::start(self.config)
    }
}
