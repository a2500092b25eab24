//! Counters the runtime keeps, for metrics and benchmarks.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, updated with relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) events: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) sync_rounds: AtomicU64,
    pub(crate) synced_files: AtomicU64,
    pub(crate) fdatasync_calls: AtomicU64,
    pub(crate) syncfs_calls: AtomicU64,
    pub(crate) open_objects: AtomicU64,
    pub(crate) objects_opened: AtomicU64,
    pub(crate) evictions: AtomicU64,
    /// Durability rounds by how many replies they released: bucket `i` counts rounds of at most
    /// `ROUND_SIZE_BOUNDS[i]` replies (the last one, of any number above).
    pub(crate) round_sizes: [AtomicU64; ROUND_SIZE_BUCKETS],
    /// Replies released by all rounds.
    pub(crate) round_replies: AtomicU64,
}

/// Upper bounds of the round-size buckets (replies per durability round); a last bucket holds
/// larger rounds.
pub const ROUND_SIZE_BOUNDS: [u64; ROUND_SIZE_BUCKETS - 1] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
const ROUND_SIZE_BUCKETS: usize = 12;

/// A snapshot of the runtime's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RuntimeStats {
    /// Events run.
    pub events: u64,
    /// Commits that wrote something.
    pub commits: u64,
    /// Durability rounds (group commits).
    pub sync_rounds: u64,
    /// Files made durable, summed over rounds.
    pub synced_files: u64,
    /// `fdatasync` calls.
    pub fdatasync_calls: u64,
    /// `syncfs` calls.
    pub syncfs_calls: u64,
    /// Objects open now.
    pub open_objects: u64,
    /// Objects opened since start.
    pub objects_opened: u64,
    /// Objects closed to stay within the open-object budget.
    pub evictions: u64,
    /// Durability rounds by the number of replies (events) they released, per bucket of
    /// [`ROUND_SIZE_BOUNDS`] (not cumulative; the last bucket holds larger rounds).
    pub round_sizes: [u64; ROUND_SIZE_BUCKETS],
    /// Replies released by all durability rounds.
    pub round_replies: u64,
}

impl Stats {
    pub(crate) fn snapshot(&self) -> RuntimeStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RuntimeStats {
            events: g(&self.events),
            commits: g(&self.commits),
            sync_rounds: g(&self.sync_rounds),
            synced_files: g(&self.synced_files),
            fdatasync_calls: g(&self.fdatasync_calls),
            syncfs_calls: g(&self.syncfs_calls),
            open_objects: g(&self.open_objects),
            objects_opened: g(&self.objects_opened),
            evictions: g(&self.evictions),
            round_sizes: std::array::from_fn(|i| g(&self.round_sizes[i])),
            round_replies: g(&self.round_replies),
        }
    }

    /// Counts a durability round that released `replies` replies.
    pub(crate) fn record_round(&self, replies: usize) {
        let n = replies as u64;
        let bucket = ROUND_SIZE_BOUNDS.iter().position(|&b| n <= b).unwrap_or(ROUND_SIZE_BOUNDS.len());
        self.round_sizes[bucket].fetch_add(1, Ordering::Relaxed);
        self.round_replies.fetch_add(n, Ordering::Relaxed);
    }
}
