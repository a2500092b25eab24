//! The node catalog (`catalog.db`): which objects exist, and the durable index of alarms.
//!
//! Each shard has its own connection (SQLite in WAL mode lets them take turns writing; catalog
//! writes are rare: object creation and alarm changes). The index lets a scheduler find due
//! alarms without opening every object. Its invariant: for every object whose committed alarm
//! is `t`, the index holds a time `<= t` for it. An alarm that moves earlier is written to the
//! index and synced *before* the object commits; one that moves later or is deleted is written
//! after (a stale earlier entry only causes a spurious wake-up, and the object's own value wins).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, params};

use crate::{Error, Result};

/// One shard's connection to the catalog.
pub(crate) struct Catalog {
    conn: Connection,
    /// The catalog's WAL file, kept open to fsync it. SQLite keeps the WAL file while any
    /// connection is open, and the runtime holds catalog connections for its whole life.
    wal: std::sync::Arc<std::fs::File>,
}

fn catalog_err(context: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |source| Error::Catalog { context, source }
}

impl Catalog {
    pub(crate) fn open(data_dir: &Path) -> Result<Self> {
        let conn = Connection::open(data_dir.join("catalog.db")).map_err(catalog_err("open the catalog"))?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(catalog_err("configure the catalog"))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS objects(
                 namespace TEXT NOT NULL, name TEXT NOT NULL, created_ms INTEGER NOT NULL,
                 PRIMARY KEY(namespace, name)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS alarms(
                 namespace TEXT NOT NULL, name TEXT NOT NULL, time_ms INTEGER NOT NULL,
                 PRIMARY KEY(namespace, name)) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS alarms_by_time ON alarms(time_ms);
             CREATE INDEX IF NOT EXISTS alarms_by_namespace_time ON alarms(namespace, time_ms);",
        )
        .map_err(catalog_err("initialize the catalog"))?;
        let wal_path = data_dir.join("catalog.db-wal");
        let wal =
            std::fs::File::open(&wal_path).map_err(|source| Error::Io { context: "open the catalog WAL", source })?;
        Ok(Catalog { conn, wal: std::sync::Arc::new(wal) })
    }

    /// Records a new object (made durable with the round that syncs the catalog's WAL).
    pub(crate) fn register_object(&self, ns: &str, name: &str, now_ms: i64) -> Result<()> {
        self.conn
            .prepare_cached("INSERT OR IGNORE INTO objects(namespace, name, created_ms) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![ns, name, now_ms]))
            .map(drop)
            .map_err(catalog_err("register an object"))
    }

    /// Every object after `after` in (namespace, name) order, at most `limit`.
    pub(crate) fn objects_after(
        &self,
        after: Option<&(String, String)>,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        let (ns, name) = after.map_or(("", ""), |(n, m)| (n.as_str(), m.as_str()));
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT namespace, name FROM objects WHERE (namespace, name) > (?1, ?2)
                 ORDER BY namespace, name LIMIT ?3",
            )
            .map_err(catalog_err("list objects"))?;
        stmt.query_map(params![ns, name, i64::try_from(limit).unwrap_or(i64::MAX)], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(Iterator::collect)
            .map_err(catalog_err("list objects"))
    }

    /// Writes a consistent copy of the catalog to `dest`.
    pub(crate) fn vacuum_into(&self, dest: &Path) -> Result<()> {
        let dest = dest
            .to_str()
            .ok_or(Error::Io { context: "name a catalog copy", source: std::io::ErrorKind::InvalidInput.into() })?;
        self.conn.execute("VACUUM INTO ?1", [dest]).map(drop).map_err(catalog_err("copy the catalog"))
    }

    /// The indexed alarm of an object.
    pub(crate) fn indexed_alarm(&self, ns: &str, name: &str) -> Result<Option<i64>> {
        use rusqlite::OptionalExtension;
        self.conn
            .prepare_cached("SELECT time_ms FROM alarms WHERE namespace = ?1 AND name = ?2")
            .and_then(|mut s| s.query_row(params![ns, name], |r| r.get(0)).optional())
            .map_err(catalog_err("read the alarm index"))
    }

    /// Sets (or with `None` removes) an object's index entry. With `durable`, the change is on
    /// disk when this returns.
    pub(crate) fn set_alarm(&self, ns: &str, name: &str, time_ms: Option<i64>, durable: bool) -> Result<()> {
        let r = match time_ms {
            Some(t) => self
                .conn
                .prepare_cached("INSERT OR REPLACE INTO alarms(namespace, name, time_ms) VALUES (?1, ?2, ?3)")
                .and_then(|mut s| s.execute(params![ns, name, t])),
            None => self
                .conn
                .prepare_cached("DELETE FROM alarms WHERE namespace = ?1 AND name = ?2")
                .and_then(|mut s| s.execute(params![ns, name])),
        };
        r.map_err(catalog_err("update the alarm index"))?;
        if durable {
            self.wal.sync_data().map_err(|e| Error::durability("sync the alarm index", &e))?;
        }
        Ok(())
    }

    /// Alarms due at or before `now_ms`, earliest first, at most `limit`.
    pub(crate) fn due_alarms(&self, now_ms: i64, limit: usize) -> Result<Vec<(String, String, i64)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut st = self
            .conn
            .prepare_cached("SELECT namespace, name, time_ms FROM alarms WHERE time_ms <= ?1 ORDER BY time_ms LIMIT ?2")
            .map_err(catalog_err("read due alarms"))?;
        let rows = st
            .query_map(params![now_ms, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(catalog_err("read due alarms"))?;
        rows.collect::<rusqlite::Result<_>>().map_err(catalog_err("read due alarms"))
    }

    /// Alarms of namespace `ns` due at or before `now_ms`, earliest first, at most `limit`:
    /// `(name, time_ms)`.
    pub(crate) fn due_alarms_in(&self, ns: &str, now_ms: i64, limit: usize) -> Result<Vec<(String, i64)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT name, time_ms FROM alarms WHERE namespace = ?1 AND time_ms <= ?2 ORDER BY time_ms LIMIT ?3",
            )
            .map_err(catalog_err("read due alarms"))?;
        let rows = st
            .query_map(params![ns, now_ms, limit], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(catalog_err("read due alarms"))?;
        rows.collect::<rusqlite::Result<_>>().map_err(catalog_err("read due alarms"))
    }

    /// The earliest indexed alarm of namespace `ns` after `after_ms`.
    pub(crate) fn earliest_alarm_in(&self, ns: &str, after_ms: i64) -> Result<Option<i64>> {
        self.conn
            .prepare_cached("SELECT min(time_ms) FROM alarms WHERE namespace = ?1 AND time_ms > ?2")
            .and_then(|mut st| st.query_row(params![ns, after_ms], |r| r.get(0)))
            .map_err(catalog_err("read the earliest alarm"))
    }

    /// Objects of a namespace with names after `after`, in name order, at most `limit`:
    /// `(name, created_ms)`.
    pub(crate) fn list_objects(&self, ns: &str, after: &str, limit: usize) -> Result<Vec<(String, i64)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT name, created_ms FROM objects WHERE namespace = ?1 AND name > ?2 ORDER BY name LIMIT ?3",
            )
            .map_err(catalog_err("list objects"))?;
        let rows = st
            .query_map(params![ns, after, limit], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(catalog_err("list objects"))?;
        rows.collect::<rusqlite::Result<_>>().map_err(catalog_err("list objects"))
    }

    /// Number of registered objects in a namespace.
    pub(crate) fn object_count(&self, ns: &str) -> Result<u64> {
        self.conn
            .query_row("SELECT count(*) FROM objects WHERE namespace = ?1", [ns], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(catalog_err("count objects"))
    }

    /// The catalog's WAL file, for the durability stage.
    pub(crate) fn wal(&self) -> &std::sync::Arc<std::fs::File> {
        &self.wal
    }
}
