//! Named alarms: what Durable Objects lack. Besides its one alarm (`_cairn_meta`), an object
//! may hold any number of alarms identified by name, in the reserved table `_cairn_alarms`.
//!
//! The table is created by the first named alarm an object sets, inside that event's
//! transaction, so objects that never use one carry no extra page. Like the alarm, named alarms
//! are ordinary writes: they commit or roll back with the event (and with savepoints).
//!
//! The runtime sees one time per object, its *next alarm* ([`ObjectStorage::next_alarm`]): the
//! earliest of the alarm and every named alarm. That is what the node's alarm index holds, so a
//! scheduler finds an object whichever of its alarms is due.

use rusqlite::{Connection, OptionalExtension, params};

use crate::{Error, ObjectStorage, Result};

/// Longest name of a named alarm, in bytes.
pub const MAX_ALARM_NAME_BYTES: usize = 256;

/// What the object knows of its named alarms without reading the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NamedAlarms {
    /// Whether `_cairn_alarms` exists.
    pub(crate) table: bool,
    /// The earliest named alarm.
    pub(crate) earliest: Option<i64>,
}

pub(crate) fn table_exists(c: &Connection) -> rusqlite::Result<bool> {
    c.prepare_cached("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = '_cairn_alarms'")?
        .query_row([], |_| Ok(()))
        .optional()
        .map(|r| r.is_some())
}

fn earliest(c: &Connection) -> rusqlite::Result<Option<i64>> {
    c.prepare_cached("SELECT min(time_ms) FROM _cairn_alarms")?.query_row([], |r| r.get(0))
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_ALARM_NAME_BYTES {
        return Err(Error::InvalidAlarmName { len: name.len(), max: MAX_ALARM_NAME_BYTES });
    }
    Ok(())
}

impl ObjectStorage {
    pub(crate) fn read_named_alarms(&mut self) -> Result<NamedAlarms> {
        let r = self.internal(|c| {
            if !table_exists(c)? {
                return Ok(NamedAlarms::default());
            }
            Ok(NamedAlarms { table: true, earliest: earliest(c)? })
        });
        r.map_err(|e| self.fail(e, "read the named alarms"))
    }

    /// The object's next alarm: the earliest of its alarm and its named alarms, including the
    /// open event's changes.
    pub fn next_alarm(&self) -> Option<i64> {
        min_opt(self.alarm_now(), self.named.earliest)
    }

    /// [`ObjectStorage::next_alarm`] as committed.
    pub fn committed_next_alarm(&self) -> Option<i64> {
        min_opt(self.committed_alarm(), self.committed_named.earliest)
    }

    /// Asks the runtime to write this object's committed next alarm to the node's alarm index
    /// after the event, even if the event commits nothing: for a scheduler that found the
    /// index earlier than the object (an alarm moved later whose index update was lost in a
    /// crash), so that it does not keep finding the object due.
    pub fn request_alarm_reindex(&mut self) {
        self.reindex_alarm = true;
    }

    /// Takes the flag set by [`ObjectStorage::request_alarm_reindex`].
    pub fn take_alarm_reindex(&mut self) -> bool {
        std::mem::take(&mut self.reindex_alarm)
    }

    /// The time of the named alarm `name`, if set.
    ///
    /// # Errors
    /// [`Error::Critical`] after a critical error.
    pub fn get_named_alarm(&mut self, name: &str) -> Result<Option<i64>> {
        self.check_usable()?;
        if !self.named.table {
            return Ok(None);
        }
        let r = self.internal(|c| {
            c.prepare_cached("SELECT time_ms FROM _cairn_alarms WHERE name = ?1")?
                .query_row([name], |r| r.get(0))
                .optional()
        });
        r.map_err(|e| self.fail(e, "read a named alarm"))
    }

    /// Every named alarm, earliest first (ties by name).
    ///
    /// # Errors
    /// [`Error::Critical`] after a critical error.
    pub fn named_alarms(&mut self) -> Result<Vec<(String, i64)>> {
        self.check_usable()?;
        if !self.named.table {
            return Ok(Vec::new());
        }
        let r = self.internal(|c| {
            c.prepare_cached("SELECT name, time_ms FROM _cairn_alarms ORDER BY time_ms, name")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        });
        r.map_err(|e| self.fail(e, "list the named alarms"))
    }

    /// Sets the named alarm `name`, replacing its earlier time. As with the alarm, a time in
    /// the past is clamped to now and setting the same time again is a no-op.
    ///
    /// # Errors
    /// [`Error::InvalidAlarmName`] for an empty name or one over [`MAX_ALARM_NAME_BYTES`];
    /// [`Error::InvalidAlarmTime`] if `time_ms <= 0`.
    pub fn set_named_alarm(&mut self, name: &str, time_ms: i64) -> Result<()> {
        self.check_usable()?;
        check_name(name)?;
        if time_ms <= 0 {
            return Err(Error::InvalidAlarmTime { time_ms });
        }
        let t = time_ms.max(self.clock().now_ms());
        if self.get_named_alarm(name)? == Some(t) {
            return Ok(());
        }
        self.begin_write()?;
        let create = !self.named.table;
        let r = self.internal(|c| {
            if create {
                c.execute_batch(
                    "CREATE TABLE IF NOT EXISTS _cairn_alarms(name TEXT PRIMARY KEY, time_ms INTEGER NOT NULL) WITHOUT ROWID",
                )?;
            }
            c.prepare_cached("INSERT OR REPLACE INTO _cairn_alarms(name, time_ms) VALUES (?1, ?2)")?
                .execute(params![name, t])?;
            earliest(c)
        });
        let earliest = r.map_err(|e| self.fail(e, "write a named alarm"))?;
        self.named = NamedAlarms { table: true, earliest };
        Ok(())
    }

    /// Deletes the named alarm `name`; whether it was set.
    ///
    /// # Errors
    /// [`Error::Critical`] after a critical error.
    pub fn delete_named_alarm(&mut self, name: &str) -> Result<bool> {
        if self.get_named_alarm(name)?.is_none() {
            return Ok(false);
        }
        self.begin_write()?;
        let r = self.internal(|c| {
            c.prepare_cached("DELETE FROM _cairn_alarms WHERE name = ?1")?.execute([name])?;
            earliest(c)
        });
        let earliest = r.map_err(|e| self.fail(e, "delete a named alarm"))?;
        self.named.earliest = earliest;
        Ok(true)
    }
}
