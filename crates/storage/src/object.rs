//! One object's storage: an ordered KV table, a private SQL database and an alarm, in one
//! SQLite file, changed atomically together.
//!
//! # Transactions
//!
//! An *event* is the unit of atomicity. The first write of an event opens the implicit
//! transaction (`BEGIN IMMEDIATE`); [`ObjectStorage::commit`] ends it, stamping the next commit
//! sequence number and timestamp into the metadata table in the same transaction. Reads
//! before the first write run in autocommit mode and see the last committed state; reads after
//! it see the event's own writes. Explicit transactions are savepoints nested inside the
//! implicit one.
//!
//! Durability is not decided here: with [`Synchronous::Normal`] a commit reaches the
//! operating system but not the disk, and the runtime makes a whole round of commits durable
//! at once (group commit). [`Synchronous::Full`] makes every commit durable on its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use crate::authorizer::{self, AuthState, Denial};
use crate::clock::{Clock, SystemClock};
use crate::list::ListOptions;
use crate::value::Value;
use crate::{Bookmark, Error, Limits, Result};

/// Version of the object file layout, kept in `PRAGMA user_version`.
pub const FORMAT_VERSION: i64 = 1;

const PAGE_SIZE: u64 = 4096;

/// Metadata rows of `_cairn_meta`.
pub(crate) mod meta {
    pub(crate) const ALARM_MS: i64 = 1;
    pub(crate) const COMMIT_SEQ: i64 = 2;
    pub(crate) const COMMIT_TS_MS: i64 = 3;
    pub(crate) const NAMESPACE: i64 = 4;
    pub(crate) const NAME: i64 = 5;
}

/// How a commit reaches the disk. See the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every commit is fsynced by SQLite before it returns.
    #[default]
    Full,
    /// Commits are written to the OS; the caller fsyncs the WAL file (group commit).
    /// Checkpoints still sync, so the file is never corrupted by power loss.
    Normal,
    /// Nothing is synced, not even checkpoints: survives a process crash, not power loss.
    Off,
}

/// How to open an object file.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Limits enforced on this object.
    pub limits: Arc<Limits>,
    /// Source of time for alarms and commit timestamps.
    pub clock: Arc<dyn Clock>,
    /// Commit durability; see [`Synchronous`].
    pub synchronous: Synchronous,
    /// Namespace and name recorded in the file when it is created, so that the catalog can be
    /// rebuilt from the files alone.
    pub identity: Option<(String, String)>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            limits: Arc::new(Limits::default()),
            clock: Arc::new(SystemClock),
            synchronous: Synchronous::Full,
            identity: None,
        }
    }
}

/// What one commit changed, reported to the runtime (and later to change feeds and backup).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    /// The commit's sequence number; strictly increasing per object, never reused, not reset
    /// by `delete_all`.
    pub seq: u64,
    /// When the commit happened, in milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// `Some(new alarm)` if the commit changed the alarm (`Some(None)`: deleted).
    pub alarm_change: Option<Option<i64>>,
}

/// An open object: its SQLite connection and transaction state.
///
/// Not `Sync`: an object is used by one thread at a time (its shard).
pub struct ObjectStorage {
    conn: Connection,
    auth: Arc<AuthState>,
    pub(crate) limits: Arc<Limits>,
    clock: Arc<dyn Clock>,
    path: PathBuf,
    /// The engine has issued `BEGIN` for the current event.
    in_event_txn: bool,
    /// Depth of explicit transactions (savepoints) currently open.
    pub(crate) depth: u32,
    /// The open event has written something, so its commit gets a sequence number.
    dirty: bool,
    /// Set after a critical error; every later operation fails until the object is reopened.
    broken: Option<String>,
    /// Last committed sequence number.
    seq: u64,
    /// Timestamp of the last commit.
    seq_ts_ms: i64,
    /// Alarm as committed, and as changed by the open event.
    committed_alarm: Option<i64>,
    alarm: Option<i64>,
    /// Set by [`ObjectStorage::request_alarm_reindex`], taken by the runtime after the event.
    pub(crate) reindex_alarm: bool,
    /// Named alarms (`alarms.rs`), as committed and as changed by the open event.
    pub(crate) named: crate::alarms::NamedAlarms,
    pub(crate) committed_named: crate::alarms::NamedAlarms,
    /// SQL texts known to hold exactly one statement, which `exec` runs through SQLite's
    /// prepared-statement cache. Bounded; cleared when full.
    pub(crate) single_statement_sql: std::collections::HashSet<Box<str>>,
    /// WAL frame count after the last commit, kept by the WAL hook.
    pub(crate) frames: Arc<crate::changes::FrameCounter>,
    /// Whether commits' frames are captured for the commit log.
    pub(crate) capture: bool,
    /// WAL frames already returned by `take_changes`.
    pub(crate) captured_frames: u32,
    /// Read handle on the WAL file, for change capture.
    pub(crate) wal_file: Option<std::fs::File>,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage").field("path", &self.path).field("seq", &self.seq).finish()
    }
}

/// Primary SQLite result codes that leave the connection's transaction in doubt.
fn is_critical(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    matches!(
        e.sqlite_error_code(),
        Some(
            C::DiskFull
                | C::SystemIoFailure
                | C::OutOfMemory
                | C::OperationInterrupted
                | C::DatabaseCorrupt
                | C::NotADatabase
        )
    )
}

fn primary_code_name(code: i32) -> &'static str {
    match code & 0xff {
        1 => "SQLITE_ERROR",
        2 => "SQLITE_INTERNAL",
        3 => "SQLITE_PERM",
        4 => "SQLITE_ABORT",
        5 => "SQLITE_BUSY",
        6 => "SQLITE_LOCKED",
        7 => "SQLITE_NOMEM",
        8 => "SQLITE_READONLY",
        9 => "SQLITE_INTERRUPT",
        10 => "SQLITE_IOERR",
        11 => "SQLITE_CORRUPT",
        13 => "SQLITE_FULL",
        14 => "SQLITE_CANTOPEN",
        17 => "SQLITE_SCHEMA",
        18 => "SQLITE_TOOBIG",
        19 => "SQLITE_CONSTRAINT",
        20 => "SQLITE_MISMATCH",
        21 => "SQLITE_MISUSE",
        23 => "SQLITE_AUTH",
        25 => "SQLITE_RANGE",
        26 => "SQLITE_NOTADB",
        _ => "SQLITE_ERROR",
    }
}

/// Formats a SQLite error as `{message}[ at offset {n}]: SQLITE_{CODE}`.
pub(crate) fn sqlite_message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let m = msg.clone().unwrap_or_else(|| f.to_string());
            format!("{m}: {}", primary_code_name(f.extended_code))
        }
        rusqlite::Error::SqlInputError { error, msg, offset, .. } => {
            format!("{msg} at offset {offset}: {}", primary_code_name(error.extended_code))
        }
        other => other.to_string(),
    }
}

impl ObjectStorage {
    /// Opens (creating if needed) the object file at `path`.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Internal`] if the file cannot be opened or initialized,
    /// [`Error::UnsupportedFormat`] if it was written by a newer format.
    pub fn open(path: &Path, options: &OpenOptions) -> Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|source| Error::Io { context: "create the object directory", source })?;
        }
        let mut conn = Connection::open(path).map_err(Error::internal("open the object file"))?;
        let limits = Arc::clone(&options.limits);
        configure(&conn, &limits, options.synchronous)?;
        let auth = Arc::new(AuthState::default());
        authorizer::install(&mut conn, Arc::clone(&auth)).map_err(Error::internal("install the SQL authorizer"))?;
        let frames = Arc::new(crate::changes::FrameCounter::default());
        crate::changes::install_hook(&mut conn, Arc::clone(&frames))
            .map_err(Error::internal("install the WAL hook"))?;
        let mut storage = ObjectStorage {
            conn,
            auth,
            limits,
            clock: Arc::clone(&options.clock),
            path: path.to_path_buf(),
            in_event_txn: false,
            depth: 0,
            dirty: false,
            broken: None,
            seq: 0,
            seq_ts_ms: 0,
            committed_alarm: None,
            alarm: None,
            reindex_alarm: false,
            named: crate::alarms::NamedAlarms::default(),
            committed_named: crate::alarms::NamedAlarms::default(),
            single_statement_sql: std::collections::HashSet::new(),
            frames,
            capture: false,
            captured_frames: 0,
            wal_file: None,
        };
        // Fold whatever a previous process left in the WAL into the database file, so that
        // frame counting (and change capture) starts from an empty WAL.
        storage
            .internal(|c| c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)))
            .map_err(Error::internal("checkpoint the WAL on open"))?;
        storage.init_schema(options.identity.as_ref())?;
        Ok(storage)
    }

    fn init_schema(&mut self, identity: Option<&(String, String)>) -> Result<()> {
        let path = self.path.display().to_string();
        self.internal(|conn| {
            let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if version > FORMAT_VERSION {
                return Ok(Err(Error::UnsupportedFormat { path, found: version, supported: FORMAT_VERSION }));
            }
            if version < FORMAT_VERSION {
                conn.execute_batch(&format!(
                    "BEGIN IMMEDIATE;
                     CREATE TABLE IF NOT EXISTS _cairn_kv(key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
                     CREATE TABLE IF NOT EXISTS _cairn_meta(key INTEGER PRIMARY KEY, value);
                     INSERT OR IGNORE INTO _cairn_meta(key, value) VALUES ({}, 0), ({}, 0);
                     PRAGMA user_version = {FORMAT_VERSION};
                     COMMIT;",
                    meta::COMMIT_SEQ,
                    meta::COMMIT_TS_MS
                ))?;
            }
            if let Some((ns, name)) = identity {
                conn.execute(
                    "INSERT OR IGNORE INTO _cairn_meta(key, value) VALUES (?1, ?2), (?3, ?4)",
                    params![meta::NAMESPACE, ns, meta::NAME, name],
                )?;
            }
            Ok(Ok(()))
        })
        .map_err(Error::internal("initialize the object file"))??;
        self.reload_meta()
    }

    fn reload_meta(&mut self) -> Result<()> {
        let (seq, ts, alarm) = self
            .internal(|conn| {
                let get = |k: i64| -> rusqlite::Result<Option<i64>> {
                    conn.prepare_cached("SELECT value FROM _cairn_meta WHERE key = ?1")?
                        .query_row([k], |r| r.get::<_, Option<i64>>(0))
                        .optional()
                        .map(Option::flatten)
                };
                Ok((get(meta::COMMIT_SEQ)?, get(meta::COMMIT_TS_MS)?, get(meta::ALARM_MS)?))
            })
            .map_err(Error::internal("read object metadata"))?;
        self.seq = u64::try_from(seq.unwrap_or(0)).unwrap_or(0);
        self.seq_ts_ms = ts.unwrap_or(0);
        self.committed_alarm = alarm;
        self.alarm = alarm;
        self.named = self.read_named_alarms()?;
        self.committed_named = self.named;
        Ok(())
    }

    /// Runs engine statements with the authorizer off.
    pub(crate) fn internal<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        self.auth.set_internal(true);
        let r = f(&self.conn);
        self.auth.set_internal(false);
        r
    }

    /// The path of the object file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The limits this object enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The clock this object reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Closes the object without SQLite's checkpoint on close, which would copy the WAL into
    /// the file and sync both: for an object whose files are removed right after because it
    /// was never written (nothing in them was ever acknowledged).
    pub fn discard(self) {
        // If the setting fails, closing just checkpoints as usual.
        let _ = self.conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true);
    }

    /// The last committed sequence number (0 for a new object).
    pub fn committed_seq(&self) -> u64 {
        self.seq
    }

    /// Whether the open event has uncommitted writes.
    pub fn has_pending_writes(&self) -> bool {
        self.dirty
    }

    /// The alarm change the open event would commit: `Some(new)` if it differs from the
    /// committed alarm (`Some(None)`: deleted). The runtime records an earlier alarm in the
    /// node's alarm index before the commit, so that an alarm is never lost.
    ///
    /// "The alarm" here is the object's next wake-up: the earliest of its alarm and its named
    /// alarms ([`ObjectStorage::next_alarm`]).
    pub fn pending_alarm_change(&self) -> Option<Option<i64>> {
        let next = self.next_alarm();
        (next != self.committed_next_alarm()).then_some(next)
    }

    /// The alarm including the open event's change, without the usability check.
    pub(crate) fn alarm_now(&self) -> Option<i64> {
        self.alarm
    }

    /// The alarm as committed (ignoring the open event).
    pub fn committed_alarm(&self) -> Option<i64> {
        self.committed_alarm
    }

    /// Whether a critical error has broken this instance (it must be reopened).
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    pub(crate) fn check_usable(&self) -> Result<()> {
        match &self.broken {
            Some(message) => Err(Error::Critical { message: message.clone() }),
            None => Ok(()),
        }
    }

    /// Opens the event's write transaction if it is not open yet, and marks the event dirty.
    pub(crate) fn begin_write(&mut self) -> Result<()> {
        self.open_event_txn()?;
        self.dirty = true;
        Ok(())
    }

    /// Opens the event's transaction without marking the event as having written (explicit
    /// transactions open it; only writes make the event commit with a sequence number).
    pub(crate) fn open_event_txn(&mut self) -> Result<()> {
        self.check_usable()?;
        if !self.in_event_txn {
            self.internal(|c| c.execute_batch("BEGIN IMMEDIATE")).map_err(|e| self.fail(e, "begin a transaction"))?;
            self.in_event_txn = true;
        }
        Ok(())
    }

    /// Marks the open event as having written (user SQL that changed something).
    pub(crate) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Turns an error of an engine statement into an [`Error`], breaking the instance if the
    /// error is critical or SQLite rolled back the event's transaction on its own.
    pub(crate) fn fail(&mut self, e: rusqlite::Error, context: &'static str) -> Error {
        if is_critical(&e) || (self.in_event_txn && self.conn.is_autocommit()) {
            return self.break_instance(&e);
        }
        Error::Internal { context, source: e }
    }

    /// Turns an error of a user SQL statement into an [`Error`].
    pub(crate) fn user_sql_error(&mut self, e: rusqlite::Error) -> Error {
        let denial = self.auth.take_denial();
        if denial == Some(Denial::TransactionControl) {
            return Error::SqlTransactionStatement;
        }
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            let err = self.break_instance(&e);
            if self.db_size_bytes().is_some_and(|s| s + 2 * PAGE_SIZE >= self.limits.max_database_bytes) {
                return Error::DatabaseFull { max: self.limits.max_database_bytes };
            }
            return err;
        }
        if is_critical(&e) || (self.in_event_txn && self.conn.is_autocommit()) {
            return self.break_instance(&e);
        }
        let message = sqlite_message(&e);
        // A refused function is a plain SQLITE_ERROR ("not authorized to use function: ...").
        if denial == Some(Denial::NotAuthorized)
            || e.sqlite_error_code() == Some(rusqlite::ErrorCode::AuthorizationForStatementDenied)
        {
            let message = match &e {
                rusqlite::Error::SqliteFailure(_, Some(m)) | rusqlite::Error::SqlInputError { msg: m, .. } => m.clone(),
                _ => "not authorized".to_owned(),
            };
            return Error::SqlNotAuthorized { message };
        }
        Error::Sql { message, source: e }
    }

    /// Forgets why an earlier statement was refused; called before new user SQL is prepared,
    /// so that a refusal whose error was not reported cannot relabel a later error.
    pub(crate) fn forget_denial(&self) {
        let _ = self.auth.take_denial();
        let _ = self.auth.take_alter();
    }

    /// Whether the statement just prepared alters a table (see `AuthState::take_alter`).
    pub(crate) fn take_alter(&self) -> bool {
        self.auth.take_alter()
    }

    /// Whether user SQL has given a schema object a reserved name.
    pub(crate) fn reserved_name_in_schema(&self) -> rusqlite::Result<bool> {
        self.internal(|c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_schema
                   WHERE (name LIKE '\\_cairn\\_%' ESCAPE '\\' OR name LIKE '\\_cf\\_%' ESCAPE '\\')
                     AND name NOT IN ('_cairn_kv', '_cairn_meta')
                     AND name NOT LIKE 'sqlite_autoindex\\_\\_cairn\\_%' ESCAPE '\\')",
                [],
                |r| r.get(0),
            )
        })
    }

    fn break_instance(&mut self, e: &rusqlite::Error) -> Error {
        let message = sqlite_message(e);
        if !self.conn.is_autocommit() {
            let _ = self.internal(|c| c.execute_batch("ROLLBACK"));
        }
        self.in_event_txn = false;
        self.dirty = false;
        self.alarm = self.committed_alarm;
        self.broken = Some(message.clone());
        Error::Critical { message }
    }

    pub(crate) fn db_size_bytes(&self) -> Option<u64> {
        self.internal(|c| {
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            let free: i64 = c.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
            Ok(u64::try_from(pages - free).unwrap_or(0) * PAGE_SIZE)
        })
        .ok()
    }

    /// Bytes used by the database: `(page_count - freelist_count) * page_size`.
    ///
    /// # Errors
    /// [`Error::Critical`] after a critical error.
    pub fn database_size(&self) -> Result<u64> {
        self.check_usable()?;
        self.db_size_bytes().ok_or(Error::Critical { message: "cannot read the database size".to_owned() })
    }

    /// Commits the open event, if it wrote anything, and returns what the commit changed.
    ///
    /// With [`Synchronous::Normal`] the commit is not yet durable when this returns.
    ///
    /// # Errors
    /// [`Error::ConstraintAtCommit`] if deferred constraints fail (the event is rolled back and
    /// the instance must be reopened); [`Error::Critical`] after a critical error.
    pub fn commit(&mut self) -> Result<Option<CommitInfo>> {
        if let Some(message) = &self.broken {
            return Err(Error::Critical { message: message.clone() });
        }
        debug_assert_eq!(self.depth, 0, "commit with an explicit transaction open");
        if !self.in_event_txn {
            return Ok(None);
        }
        if !self.dirty {
            // The event only read (inside an explicit transaction): end it without a commit.
            let r = self.internal(|c| c.execute_batch("COMMIT"));
            r.map_err(|e| self.fail(e, "end a read-only transaction"))?;
            self.in_event_txn = false;
            return Ok(None);
        }
        let seq = self.seq + 1;
        let ts = self.clock.now_ms().max(self.seq_ts_ms);
        let r = self.internal(|c| {
            // One statement for both rows (they exist from the file's creation).
            c.prepare_cached(
                "UPDATE _cairn_meta SET value = CASE key WHEN ?1 THEN ?2 ELSE ?4 END WHERE key IN (?1, ?3)",
            )?
            .execute(params![meta::COMMIT_SEQ, seq as i64, meta::COMMIT_TS_MS, ts])?;
            c.prepare_cached("COMMIT")?.execute([])?;
            Ok(())
        });
        if let Err(e) = r {
            if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) {
                let message = sqlite_message(&e);
                let _ = self.break_instance(&e);
                self.broken = Some(message.clone());
                return Err(Error::ConstraintAtCommit { message });
            }
            return Err(self.fail(e, "commit"));
        }
        self.in_event_txn = false;
        self.dirty = false;
        self.seq = seq;
        self.seq_ts_ms = ts;
        let alarm_change = self.pending_alarm_change();
        self.committed_alarm = self.alarm;
        self.committed_named = self.named;
        if !self.capture {
            // With capture on, the runtime checkpoints after reading the commit's frames.
            self.checkpoint_if_needed(crate::changes::WAL_CHECKPOINT_FRAMES)?;
        }
        Ok(Some(CommitInfo { seq, timestamp_ms: ts, alarm_change }))
    }

    /// Rolls back the open event's writes, if any.
    pub fn rollback(&mut self) {
        if self.in_event_txn && !self.conn.is_autocommit() {
            let _ = self.internal(|c| c.execute_batch("ROLLBACK"));
        }
        self.in_event_txn = false;
        self.dirty = false;
        self.depth = 0;
        self.alarm = self.committed_alarm;
        self.named = self.committed_named;
    }

    /// Runs `f` as one event: commits if it returns `Ok`, rolls back if it returns `Err`.
    /// This is the standalone form of what the runtime does around every event.
    ///
    /// # Errors
    /// The error of `f`, or of the commit.
    pub fn event<R, E: From<Error>>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, E>) -> Result<R, E> {
        match f(self) {
            Ok(r) => {
                self.commit()?;
                Ok(r)
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    // ---- KV ---------------------------------------------------------------------------------

    fn read_raw(&mut self, key: &str) -> Result<Option<Vec<u8>>> {
        self.check_usable()?;
        self.limits.check_key(key)?;
        let r = self.internal(|c| {
            c.prepare_cached("SELECT value FROM _cairn_kv WHERE key = ?1")?
                .query_row([key.as_bytes()], |r| r.get::<_, Vec<u8>>(0))
                .optional()
        });
        r.map_err(|e| self.fail(e, "read a key"))
    }

    /// Reads a key and deserializes its value into `T`; `None` if the key is absent.
    ///
    /// # Errors
    /// [`Error::KeyTooLarge`], [`Error::Serde`] if the value does not fit `T`.
    pub fn get<T: serde::de::DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>> {
        match self.read_raw(key)? {
            Some(raw) => Value::decode_serde(key, &raw).map(Some),
            None => Ok(None),
        }
    }

    /// Reads a key as a [`Value`] (JSON or bytes, as it was stored).
    ///
    /// # Errors
    /// [`Error::KeyTooLarge`], [`Error::CorruptValue`].
    pub fn get_value(&mut self, key: &str) -> Result<Option<Value>> {
        self.read_raw(key)?.map(|raw| Value::decode(key, raw)).transpose()
    }

    /// Reads several keys; returns only the keys present, sorted by key bytes, each once.
    ///
    /// # Errors
    /// [`Error::TooManyKeys`], [`Error::KeyTooLarge`].
    pub fn get_many<S: AsRef<str>>(&mut self, keys: &[S]) -> Result<Vec<(String, Value)>> {
        self.check_usable()?;
        self.limits.check_batch(keys.len())?;
        for k in keys {
            self.limits.check_key(k.as_ref())?;
        }
        let mut sorted: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        sorted.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        sorted.dedup();
        let mut out = Vec::with_capacity(sorted.len());
        for k in sorted {
            if let Some(raw) = self.read_raw(k)? {
                out.push((k.to_owned(), Value::decode(k, raw)?));
            }
        }
        Ok(out)
    }

    fn check_value(&self, encoded: &[u8]) -> Result<()> {
        let len = Value::payload_len(encoded);
        if len > self.limits.max_value_bytes {
            return Err(Error::ValueTooLarge { len, max: self.limits.max_value_bytes });
        }
        Ok(())
    }

    fn write_raw(&mut self, key: &str, encoded: &[u8]) -> Result<()> {
        let r = self.internal(|c| {
            c.prepare_cached(
                "INSERT INTO _cairn_kv(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key.as_bytes(), encoded])
        });
        r.map(drop).map_err(|e| self.fail(e, "write a key"))
    }

    /// Stores any serde value under `key`.
    ///
    /// # Errors
    /// [`Error::KeyTooLarge`], [`Error::ValueTooLarge`], [`Error::Serde`]; nothing is written.
    pub fn put<T: serde::Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<()> {
        self.check_usable()?;
        self.limits.check_key(key)?;
        let encoded = Value::encode_serde(key, value)?;
        self.check_value(&encoded)?;
        self.begin_write()?;
        self.write_raw(key, &encoded)
    }

    /// Stores raw bytes under `key`.
    ///
    /// # Errors
    /// [`Error::KeyTooLarge`], [`Error::ValueTooLarge`]; nothing is written.
    pub fn put_bytes(&mut self, key: &str, bytes: &[u8]) -> Result<()> {
        self.check_usable()?;
        self.limits.check_key(key)?;
        let mut encoded = Vec::with_capacity(bytes.len() + 1);
        encoded.push(b'b');
        encoded.extend_from_slice(bytes);
        self.check_value(&encoded)?;
        self.begin_write()?;
        self.write_raw(key, &encoded)
    }

    /// Stores a [`Value`] under `key`.
    ///
    /// # Errors
    /// As [`ObjectStorage::put`].
    pub fn put_value(&mut self, key: &str, value: &Value) -> Result<()> {
        self.put_many(&[(key, value.clone())])
    }

    /// Stores several pairs atomically. Every pair is checked before anything is written.
    ///
    /// # Errors
    /// [`Error::TooManyKeys`], [`Error::KeyTooLarge`], [`Error::ValueTooLarge`].
    pub fn put_many<S: AsRef<str>>(&mut self, entries: &[(S, Value)]) -> Result<()> {
        self.check_usable()?;
        self.limits.check_batch(entries.len())?;
        let mut encoded = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            self.limits.check_key(k.as_ref())?;
            let e = v.encode();
            self.check_value(&e)?;
            encoded.push((k.as_ref(), e));
        }
        if encoded.is_empty() {
            return Ok(());
        }
        self.begin_write()?;
        for (k, e) in encoded {
            self.write_raw(k, &e)?;
        }
        Ok(())
    }

    /// Deletes a key; returns whether it existed.
    ///
    /// # Errors
    /// [`Error::KeyTooLarge`].
    pub fn delete(&mut self, key: &str) -> Result<bool> {
        self.check_usable()?;
        self.limits.check_key(key)?;
        self.begin_write()?;
        let r = self.internal(|c| c.prepare_cached("DELETE FROM _cairn_kv WHERE key = ?1")?.execute([key.as_bytes()]));
        r.map(|n| n > 0).map_err(|e| self.fail(e, "delete a key"))
    }

    /// Deletes several keys atomically; returns how many existed.
    ///
    /// # Errors
    /// [`Error::TooManyKeys`], [`Error::KeyTooLarge`]; nothing is deleted.
    pub fn delete_many<S: AsRef<str>>(&mut self, keys: &[S]) -> Result<usize> {
        self.check_usable()?;
        self.limits.check_batch(keys.len())?;
        for k in keys {
            self.limits.check_key(k.as_ref())?;
        }
        let mut unique: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        unique.sort_unstable();
        unique.dedup();
        let mut n = 0;
        for k in unique {
            n += usize::from(self.delete(k)?);
        }
        Ok(n)
    }

    /// Lists entries in key order (or reverse), following the Durable Objects option rules.
    ///
    /// # Errors
    /// [`Error::ListStartAndStartAfter`], [`Error::ListLimitNotPositive`].
    pub fn list(&mut self, options: &ListOptions) -> Result<Vec<(String, Value)>> {
        self.check_usable()?;
        let Some(range) = options.compile()? else { return Ok(Vec::new()) };
        let limit = range.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let sql = match (range.end.is_some(), range.reverse) {
            (false, false) => "SELECT key, value FROM _cairn_kv WHERE key >= ?1 ORDER BY key LIMIT ?3",
            (false, true) => "SELECT key, value FROM _cairn_kv WHERE key >= ?1 ORDER BY key DESC LIMIT ?3",
            (true, false) => "SELECT key, value FROM _cairn_kv WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT ?3",
            (true, true) => "SELECT key, value FROM _cairn_kv WHERE key >= ?1 AND key < ?2 ORDER BY key DESC LIMIT ?3",
        };
        let r = self.internal(|c| {
            let mut st = c.prepare_cached(sql)?;
            let end: &[u8] = range.end.as_deref().unwrap_or_default();
            let rows = st.query_map(params![range.start, end, limit], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        });
        let rows = r.map_err(|e| self.fail(e, "list keys"))?;
        rows.into_iter()
            .map(|(k, v)| {
                let key = String::from_utf8(k)
                    .map_err(|_| Error::CorruptValue { key: String::new(), reason: "key is not UTF-8" })?;
                let value = Value::decode(&key, v)?;
                Ok((key, value))
            })
            .collect()
    }

    /// Read-modify-write: reads `key` (or `default` if absent), applies `f`, stores and
    /// returns the result.
    ///
    /// # Errors
    /// As [`ObjectStorage::get`] and [`ObjectStorage::put`].
    pub fn update<T, F>(&mut self, key: &str, default: T, f: F) -> Result<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
        F: FnOnce(T) -> T,
    {
        let current = self.get::<T>(key)?.unwrap_or(default);
        let next = f(current);
        self.put(key, &next)?;
        Ok(next)
    }

    /// Deletes everything: every KV entry, every SQL table, index, view and trigger, and the
    /// alarm. The commit sequence continues (history is not reset).
    ///
    /// # Errors
    /// [`Error::DeleteAllInTransaction`] inside an explicit transaction.
    pub fn delete_all(&mut self) -> Result<()> {
        self.check_usable()?;
        if self.depth > 0 {
            return Err(Error::DeleteAllInTransaction);
        }
        self.begin_write()?;
        let r = self.internal(|c| {
            let objects: Vec<(String, String)> = c
                .prepare(
                    "SELECT type, name FROM sqlite_schema
                     WHERE name NOT LIKE 'sqlite_%' AND name NOT LIKE '\\_cairn\\_%' ESCAPE '\\'
                       AND type IN ('table', 'view')",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let fk: i64 = c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
            c.execute_batch("PRAGMA defer_foreign_keys = ON")?;
            for (ty, name) in objects {
                let quoted = name.replace('"', "\"\"");
                let sql = if ty == "view" {
                    format!("DROP VIEW IF EXISTS \"{quoted}\"")
                } else {
                    format!("DROP TABLE IF EXISTS \"{quoted}\"")
                };
                if let Err(e) = c.execute_batch(&sql) {
                    // A virtual table's shadow tables disappear with it.
                    if !matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::Unknown)) {
                        return Err(e);
                    }
                }
            }
            let _ = fk;
            c.execute_batch("DELETE FROM _cairn_kv")?;
            if crate::alarms::table_exists(c)? {
                c.execute_batch("DELETE FROM _cairn_alarms")?;
            }
            c.prepare_cached("INSERT OR REPLACE INTO _cairn_meta(key, value) VALUES (?1, NULL)")?
                .execute([meta::ALARM_MS])?;
            Ok(())
        });
        r.map_err(|e| self.fail(e, "delete all data"))?;
        self.alarm = None;
        self.named.earliest = None;
        Ok(())
    }

    // ---- Alarm ------------------------------------------------------------------------------

    /// The alarm time in milliseconds since the epoch, if one is set.
    ///
    /// # Errors
    /// [`Error::Critical`] after a critical error.
    pub fn get_alarm(&self) -> Result<Option<i64>> {
        self.check_usable()?;
        Ok(self.alarm)
    }

    /// Sets the alarm. A time in the past is clamped to now; setting the current time again is
    /// a no-op.
    ///
    /// # Errors
    /// [`Error::InvalidAlarmTime`] if `time_ms <= 0`.
    pub fn set_alarm(&mut self, time_ms: i64) -> Result<()> {
        self.check_usable()?;
        if time_ms <= 0 {
            return Err(Error::InvalidAlarmTime { time_ms });
        }
        let t = time_ms.max(self.clock.now_ms());
        if self.alarm == Some(t) {
            return Ok(());
        }
        self.write_alarm(Some(t))
    }

    /// Deletes the alarm; a no-op if none is set.
    ///
    /// # Errors
    /// [`Error::Critical`] after a critical error.
    pub fn delete_alarm(&mut self) -> Result<()> {
        self.check_usable()?;
        if self.alarm.is_none() {
            return Ok(());
        }
        self.write_alarm(None)
    }

    fn write_alarm(&mut self, t: Option<i64>) -> Result<()> {
        self.begin_write()?;
        let r = self.internal(|c| {
            c.prepare_cached("INSERT OR REPLACE INTO _cairn_meta(key, value) VALUES (?1, ?2)")?
                .execute(params![meta::ALARM_MS, t])
        });
        r.map_err(|e| self.fail(e, "write the alarm"))?;
        self.alarm = t;
        Ok(())
    }

    // ---- Bookmarks --------------------------------------------------------------------------

    /// A bookmark covering every write so far, including the open event's writes (which will
    /// commit under the next sequence number).
    pub fn current_bookmark(&self) -> Bookmark {
        if self.dirty {
            Bookmark { seq: self.seq + 1, timestamp_ms: u64::try_from(self.clock.now_ms()).unwrap_or(0) }
        } else {
            Bookmark { seq: self.seq, timestamp_ms: u64::try_from(self.seq_ts_ms).unwrap_or(0) }
        }
    }

    // ---- Savepoints (used by transactions) ----------------------------------------------------

    pub(crate) fn savepoint(&mut self, name: &str) -> Result<()> {
        self.open_event_txn()?;
        let sql = format!("SAVEPOINT {name}");
        let r = self.internal(|c| c.execute_batch(&sql));
        r.map_err(|e| self.fail(e, "open a savepoint"))
    }

    pub(crate) fn release(&mut self, name: &str) -> Result<()> {
        let sql = format!("RELEASE {name}");
        let r = self.internal(|c| c.execute_batch(&sql));
        r.map_err(|e| self.fail(e, "release a savepoint"))
    }

    pub(crate) fn rollback_to(&mut self, name: &str) -> Result<()> {
        let sql = format!("ROLLBACK TO {name}");
        let r = self.internal(|c| c.execute_batch(&sql));
        r.map_err(|e| self.fail(e, "roll back a savepoint"))?;
        // The alarm may have changed inside the savepoint; reread it.
        let alarm = self
            .internal(|c| {
                c.prepare_cached("SELECT value FROM _cairn_meta WHERE key = ?1")?
                    .query_row([meta::ALARM_MS], |r| r.get::<_, Option<i64>>(0))
                    .optional()
                    .map(Option::flatten)
            })
            .map_err(|e| self.fail(e, "read the alarm"))?;
        self.alarm = alarm;
        self.named = self.read_named_alarms()?;
        Ok(())
    }

    pub(crate) fn in_event_txn(&self) -> bool {
        self.in_event_txn
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

fn configure(conn: &Connection, limits: &Limits, sync: Synchronous) -> Result<()> {
    use rusqlite::config::DbConfig;
    use rusqlite::limits::Limit;
    let synchronous = match sync {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
        Synchronous::Off => "OFF",
    };
    let max_pages = (limits.max_database_bytes / PAGE_SIZE).max(16);
    conn.execute_batch(&format!(
        "PRAGMA locking_mode = EXCLUSIVE;
         PRAGMA page_size = {PAGE_SIZE};
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {synchronous};
         PRAGMA cache_size = -2000;
         PRAGMA max_page_count = {max_pages};"
    ))
    .map_err(Error::internal("configure the object file"))?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true).map_err(Error::internal("enable defensive mode"))?;
    let as_i32 = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
    let settings = [
        (
            Limit::SQLITE_LIMIT_LENGTH,
            as_i32(limits.max_sql_value_bytes.max(limits.max_value_bytes + limits.max_key_bytes + 64)),
        ),
        // `exec` enforces the configured SQL length and parameter limits itself; SQLite's own
        // limits must also leave room for the engine's statements.
        (Limit::SQLITE_LIMIT_SQL_LENGTH, as_i32(limits.max_sql_statement_bytes.max(100_000))),
        (Limit::SQLITE_LIMIT_COLUMN, 100),
        (Limit::SQLITE_LIMIT_EXPR_DEPTH, 100),
        (Limit::SQLITE_LIMIT_COMPOUND_SELECT, 5),
        (Limit::SQLITE_LIMIT_VDBE_OP, 25_000),
        (Limit::SQLITE_LIMIT_FUNCTION_ARG, 32),
        (Limit::SQLITE_LIMIT_ATTACHED, 0),
        (Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 50),
        (Limit::SQLITE_LIMIT_VARIABLE_NUMBER, as_i32(limits.max_sql_params.max(100))),
        (Limit::SQLITE_LIMIT_TRIGGER_DEPTH, 10),
    ];
    for (limit, value) in settings {
        conn.set_limit(limit, value).map_err(Error::internal("set a SQLite limit"))?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}
