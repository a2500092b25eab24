//! Counters of the room host, for metrics.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) connections: AtomicU64,
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) auto_responses: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) starts: AtomicU64,
    pub(crate) wakeups: AtomicU64,
    pub(crate) hibernations: AtomicU64,
    pub(crate) handler_errors: AtomicU64,
    pub(crate) alarm_runs: AtomicU64,
    pub(crate) alarm_retries: AtomicU64,
    pub(crate) alarm_failures: AtomicU64,
}

/// A snapshot of the room host's gauges and counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoomStats {
    /// Rooms whose instance is in memory.
    pub active_rooms: u64,
    /// Rooms with open sockets and no instance (hibernating).
    pub hibernated_rooms: u64,
    /// Open sockets.
    pub sockets: u64,
    /// Sockets accepted since start.
    pub connections: u64,
    /// Messages received from sockets.
    pub messages_in: u64,
    /// Frames sent to sockets (a broadcast counts once per recipient).
    pub messages_out: u64,
    /// Messages answered by the auto-response without waking a room.
    pub auto_responses: u64,
    /// HTTP requests to rooms.
    pub requests: u64,
    /// Instances started (`on_start` succeeded).
    pub starts: u64,
    /// Starts of rooms that had open sockets: wake-ups from hibernation.
    pub wakeups: u64,
    /// Instances dropped for idleness.
    pub hibernations: u64,
    /// Hooks that failed (their events rolled back).
    pub handler_errors: u64,
    /// Alarm hooks run.
    pub alarm_runs: u64,
    /// Alarm failures scheduled for a retry.
    pub alarm_retries: u64,
    /// Alarms abandoned after their last retry failed.
    pub alarm_failures: u64,
}

impl Stats {
    pub(crate) fn snapshot(&self, active: usize, hibernated: usize, sockets: usize) -> RoomStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RoomStats {
            active_rooms: active as u64,
            hibernated_rooms: hibernated as u64,
            sockets: sockets as u64,
            connections: g(&self.connections),
            messages_in: g(&self.messages_in),
            messages_out: g(&self.messages_out),
            auto_responses: g(&self.auto_responses),
            requests: g(&self.requests),
            starts: g(&self.starts),
            wakeups: g(&self.wakeups),
            hibernations: g(&self.hibernations),
            handler_errors: g(&self.handler_errors),
            alarm_runs: g(&self.alarm_runs),
            alarm_retries: g(&self.alarm_retries),
            alarm_failures: g(&self.alarm_failures),
        }
    }
}
