//! The alarm scheduler: finds due alarms in the node's alarm index (no object is opened to look)
//! and runs [`crate::Room::on_alarm`] with the rules of spec §5.
//!
//! - Never early: the event re-reads the object's alarms and the clock; an object the index
//!   shows as due whose alarms are later has its index entry corrected
//!   (`request_alarm_reindex`) and is left alone.
//! - The alarm that fires reads as unset inside the handler (it is deleted in the event before
//!   the hook runs); if the hook succeeds that deletion commits, with whatever alarm the hook
//!   set. If the hook fails, the event rolls back, so the alarm is still there, and it is
//!   retried after 2 s, 4 s, ... 64 s, each plus up to 25 % jitter, with the original
//!   `scheduled_time`; after the 6th retry fails it is deleted (abandoned).
//! - Retry state is kept in memory: after a restart an overdue alarm fires at once, counting
//!   from 0 again.
//! - Several alarms of one object that are due fire one after the other, the object's own
//!   alarm first, then named ones by time.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::host::lock;
use crate::{AlarmInfo, RoomError, RoomHost};

/// Counted retries before an alarm is abandoned.
pub const MAX_ALARM_RETRIES: u32 = 6;
/// First retry delay.
const RETRY_START_MS: i64 = 2_000;

/// The delay before retry number `retry_count + 1`, given a uniform `random` in `[0, 1)`:
/// `2 s << retry_count`, plus up to 25 % of that as jitter.
pub fn backoff_delay_ms(retry_count: u32, random: f64) -> i64 {
    let base = RETRY_START_MS << retry_count.min(9);
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let jitter = ((base / 4) as f64 * random.clamp(0.0, 1.0)).floor() as i64;
    base + jitter.min(base / 4)
}

/// A failed alarm waiting for its retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmRetry {
    /// The alarm's name (`None`: the object's alarm).
    pub name: Option<String>,
    /// Its original time.
    pub scheduled_time: i64,
    /// Failures so far.
    pub retry_count: u32,
    /// Not retried before this time.
    pub not_before: i64,
}

/// Retries by (party, room).
#[derive(Debug, Default)]
pub(crate) struct Retries {
    pub(crate) by_room: HashMap<(String, String), AlarmRetry>,
}

/// What an alarm event did.
enum Fired {
    /// Nothing was due after all (the index was early).
    NotDue,
    /// The hook ran and succeeded.
    Ran,
}

fn random_unit() -> f64 {
    // 53 random bits from a v4 uuid: enough for jitter, without another dependency.
    let bits = uuid::Uuid::new_v4().as_u128() as u64 >> 11;
    #[allow(clippy::cast_precision_loss)]
    let r = bits as f64 / (1u64 << 53) as f64;
    r
}

impl RoomHost {
    /// Alarms waiting for a retry, by `(party, room)`.
    pub fn pending_retries(&self) -> Vec<((String, String), AlarmRetry)> {
        let retries = lock(&self.inner.retries);
        let mut v: Vec<_> = retries.by_room.iter().map(|(k, r)| (k.clone(), r.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// One pass of the scheduler at the clock's current time: runs every due alarm whose room
    /// is not waiting for a retry (at most [`crate::HostConfig::alarm_batch`] per party), and
    /// waits for them. Returns how many alarm hooks ran (successfully or not).
    ///
    /// # Errors
    /// [`RoomError::Runtime`] if the alarm index cannot be read.
    pub async fn run_due_alarms(&self) -> Result<usize, RoomError> {
        let now = self.inner.clock.now_ms();
        let mut due = Vec::new();
        for party in self.parties() {
            for (room, indexed) in self.inner.runtime.due_alarms_in(&party, now, self.inner.config.alarm_batch)? {
                // Skip a room whose earliest alarm is the one waiting for its retry; a room
                // with another alarm due (a newer one replaced it, or a named one) runs.
                let waiting = lock(&self.inner.retries)
                    .by_room
                    .get(&(party.clone(), room.clone()))
                    .is_some_and(|r| r.not_before > now && r.scheduled_time == indexed);
                if !waiting {
                    due.push((party.clone(), room));
                }
            }
        }
        let mut ran = 0;
        let mut runs = tokio::task::JoinSet::new();
        for (party, room) in due {
            let host = self.clone();
            runs.spawn(async move { host.fire_one(&party, &room).await });
        }
        while let Some(r) = runs.join_next().await {
            if matches!(r, Ok(true)) {
                ran += 1;
            }
        }
        Ok(ran)
    }

    /// The next time the scheduler has work: the earliest future indexed alarm of any party,
    /// or the earliest retry.
    ///
    /// # Errors
    /// [`RoomError::Runtime`] if the alarm index cannot be read.
    pub fn next_alarm_time(&self) -> Result<Option<i64>, RoomError> {
        let now = self.inner.clock.now_ms();
        let mut next: Option<i64> = None;
        for party in self.parties() {
            if let Some(t) = self.inner.runtime.earliest_alarm_in(&party, now)? {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        // Retries whose time has come are found through the index (their alarm is still
        // stored, so it is due); a past one that is not is stale and must not keep us awake.
        for r in lock(&self.inner.retries).by_room.values().filter(|r| r.not_before > now) {
            next = Some(next.map_or(r.not_before, |n| n.min(r.not_before)));
        }
        Ok(next)
    }

    /// The scheduler loop: fire what is due, sleep until the next alarm (at most a minute), or
    /// until an event moves an alarm.
    pub(crate) async fn run_alarm_scheduler(&self) {
        loop {
            let ran = match self.run_due_alarms().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(code = e.code(), "alarm scheduler: {e}");
                    0
                }
            };
            if ran > 0 {
                continue;
            }
            let now = self.inner.clock.now_ms();
            let wait_ms = match self.next_alarm_time() {
                Ok(Some(t)) => (t - now).clamp(1, 60_000),
                _ => 60_000,
            };
            let wait = Duration::from_millis(u64::try_from(wait_ms).unwrap_or(60_000));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.inner.alarm_wake.notified() => {}
            }
        }
    }

    /// Runs the earliest due alarm of one room. Returns whether a hook ran.
    async fn fire_one(&self, party: &str, room: &str) -> bool {
        let Ok(cell) = self.cell(party, room) else { return false };
        let key = (party.to_owned(), room.to_owned());
        let retry = lock(&self.inner.retries).by_room.get(&key).cloned();
        let stats = &self.inner.stats;
        let picked = std::sync::Arc::new(std::sync::Mutex::new(None::<AlarmInfo>));
        let seen = std::sync::Arc::clone(&picked);
        // Whether the alarm a retry waits for is still stored at the time that failed (a newer
        // alarm replaces it: then the retry is dropped, as in Durable Objects).
        let retry_alive = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let alive = std::sync::Arc::clone(&retry_alive);
        let result = self
            .call(cell, move |scope| {
                let storage = scope.storage();
                let now = storage.clock().now_ms();
                let is_retry_of =
                    |r: &AlarmRetry, name: &Option<String>, t: i64| r.name == *name && r.scheduled_time == t;
                let backing_off = |name: &Option<String>, t: i64| {
                    retry.as_ref().is_some_and(|r| r.not_before > now && is_retry_of(r, name, t))
                };
                let mut candidates: Vec<(Option<String>, i64)> =
                    storage.get_alarm()?.map(|t| (None, t)).into_iter().collect();
                candidates.extend(storage.named_alarms()?.into_iter().map(|(n, t)| (Some(n), t)));
                if let Some(r) = &retry {
                    alive.store(candidates.iter().any(|(n, t)| is_retry_of(r, n, *t)), Ordering::Relaxed);
                }
                let due = candidates.into_iter().find(|(n, t)| *t <= now && !backing_off(n, *t));
                let Some((name, time)) = due else {
                    storage.request_alarm_reindex();
                    return Ok(Fired::NotDue);
                };
                let (retry_count, scheduled_time) = match &retry {
                    Some(r) if is_retry_of(r, &name, time) => (r.retry_count, r.scheduled_time),
                    _ => (0, time),
                };
                match &name {
                    None => storage.delete_alarm()?,
                    Some(n) => {
                        storage.delete_named_alarm(n)?;
                    }
                }
                let info = AlarmInfo { name, scheduled_time, retry_count, is_retry: retry_count > 0 };
                *lock(&seen) = Some(info.clone());
                scope.run(|r, ctx| r.on_alarm(&info, ctx))?;
                Ok(Fired::Ran)
            })
            .await;
        let info = lock(&picked).take();
        if result.is_ok() && !retry_alive.load(Ordering::Relaxed) {
            // Superseded (or it just succeeded): no retry left for this room.
            lock(&self.inner.retries).by_room.remove(&key);
        }
        match (result, info) {
            (Ok(Fired::NotDue), _) => false,
            (Ok(Fired::Ran), info) => {
                stats.alarm_runs.fetch_add(1, Ordering::Relaxed);
                let mut retries = lock(&self.inner.retries);
                if let (Some(r), Some(info)) = (retries.by_room.get(&key), info)
                    && r.name == info.name
                    && r.scheduled_time == info.scheduled_time
                {
                    retries.by_room.remove(&key);
                }
                true
            }
            (Err(e), Some(info)) => {
                stats.alarm_runs.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(party, room, code = e.code(), retry = info.retry_count, "alarm handler failed: {e}");
                if info.retry_count >= MAX_ALARM_RETRIES {
                    stats.alarm_failures.fetch_add(1, Ordering::Relaxed);
                    lock(&self.inner.retries).by_room.remove(&key);
                    self.abandon(party, room, info).await;
                } else {
                    stats.alarm_retries.fetch_add(1, Ordering::Relaxed);
                    let now = self.inner.clock.now_ms();
                    let not_before = now + backoff_delay_ms(info.retry_count, random_unit());
                    let retry = AlarmRetry {
                        name: info.name,
                        scheduled_time: info.scheduled_time,
                        retry_count: info.retry_count + 1,
                        not_before,
                    };
                    lock(&self.inner.retries).by_room.insert(key, retry);
                }
                true
            }
            (Err(e), None) => {
                // Failed before a hook ran (the room could not be reached or read).
                tracing::warn!(party, room, code = e.code(), "alarm event failed: {e}");
                let now = self.inner.clock.now_ms();
                let retry = lock(&self.inner.retries).by_room.get(&key).cloned();
                let count = retry.as_ref().map_or(0, |r| r.retry_count);
                let next = AlarmRetry {
                    name: retry.as_ref().and_then(|r| r.name.clone()),
                    scheduled_time: retry.map_or(now, |r| r.scheduled_time),
                    retry_count: count,
                    not_before: now + backoff_delay_ms(count, random_unit()),
                };
                lock(&self.inner.retries).by_room.insert(key, next);
                false
            }
        }
    }

    /// Deletes an alarm whose retries are exhausted, if it is still the one that failed.
    async fn abandon(&self, party: &str, room: &str, info: AlarmInfo) {
        let Ok(cell) = self.cell(party, room) else { return };
        let result = self
            .call(cell, move |scope| {
                let storage = scope.storage();
                let now = storage.clock().now_ms();
                match &info.name {
                    None => {
                        if storage.get_alarm()?.is_some_and(|t| t <= now) {
                            storage.delete_alarm()?;
                        }
                    }
                    Some(n) => {
                        if storage.get_named_alarm(n)?.is_some_and(|t| t <= now) {
                            storage.delete_named_alarm(n)?;
                        }
                    }
                }
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(party, room, code = e.code(), "could not abandon a failed alarm: {e}");
        } else {
            tracing::warn!(party, room, "alarm abandoned after {MAX_ALARM_RETRIES} retries");
        }
    }
}
