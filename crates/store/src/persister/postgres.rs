//! The PostgreSQL back end ([`PostgresStorage`]): TinyBase's PostgreSQL persisters, in JSON or
//! tabular mode (the layouts of `database.rs` and `tabular.rs`), on `tokio-postgres` without TLS.
//!
//! Layout in the database: every column the persister creates is `text`, and a cell is stored as
//! its JSON (`"dog"`, `4`, `true`), as TinyBase's PostgreSQL persisters store it; the JSON mode's
//! store column holds the JSON text of the store, itself stored as a JSON string. Row ids are
//! stored as they are. Reading is lenient, so that plain SQL writers can be read: a `text` (or
//! other string-typed) column whose content is not the JSON of a string, number, boolean or null
//! loads as that string (`dog` loads as `"dog"`; `4` loads as the number 4); columns of other
//! types load as PostgreSQL turns them into JSON (numbers, booleans, JSON scalars, dates as
//! strings); `bytea`, JSON arrays and objects, and non-finite numbers are errors. Parameters are
//! sent in text form, so a mapped table created by someone else with typed columns (`integer`,
//! `boolean`, `jsonb`...) takes the cells that fit its types.
//!
//! Invariants:
//! - One connection per storage, used by one operation at a time (behind an async mutex); it is
//!   opened again if it broke, at the next operation.
//! - Each load is one `REPEATABLE READ READ ONLY` transaction, so the mapped tables are read as of
//!   one snapshot; each save is one transaction, so another connection sees a save entirely or
//!   not at all, and a failed save is rolled back. A save that fails because a concurrent writer
//!   created the same table or column, or on a serialization failure, is retried (at most
//!   [`SAVE_ATTEMPTS`] times, with the plan made again from the schema it then reads).
//! - Every statement, including the listening, the triggers and the polls, goes through
//!   `on_sql_command` first.
//! - Auto-load, [`ChangeDetection::Notify`] (the default, PostgreSQL 14 or later): while
//!   auto-loading, every existing mapped table has a statement trigger, `cairn_store_notify`,
//!   that calls `pg_notify` on a channel derived from the table's schema and name ([`channel`];
//!   created idempotently: `CREATE OR REPLACE`, under an advisory lock), and the connection
//!   `LISTEN`s on those channels. Notifications from the persister's own connection (its own
//!   saves) are ignored by backend process id; any other notifies [`Persist::change_signal`].
//!   A save that creates a mapped table adds its trigger in the same transaction. Each poll
//!   checks that the connection is alive and that every existing mapped table has its trigger
//!   (a catalog query); reconnecting or adding a missing trigger counts as a change, since
//!   notifications may have been missed.
//! - Auto-load, [`ChangeDetection::Poll`]: each poll compares a fingerprint of the mapped tables
//!   (their columns and the md5 of their rows) with the one taken in the last load or save, in
//!   the same snapshot as what they read or wrote. Saves then run in `REPEATABLE READ` and also
//!   take the fingerprint before writing: if it is not the one last seen, someone else changed
//!   the tables, and the next poll loads. Only `SELECT` is needed, at the cost of reading the
//!   mapped tables at every poll.

mod session;

use std::fmt;
use std::sync::Arc;

use tokio::sync::{Mutex, Notify};
use tokio_postgres::Config;

use self::session::{Session, channel, decode, retriable};
use super::database::{DatabaseConfig, DatabaseMode, JsonConfig, SINGLE_ROW_ID, escape_id, plan_json_save};
use super::tabular::{LoadSource, Op, TabularConfig};
use super::{Persist, Persister, Write, whole_content_only};
use crate::content::{Changes, Content};
use crate::error::Error;

/// A persister of a store to PostgreSQL.
pub type PostgresPersister = Persister<PostgresStorage>;

/// How many times a save is tried when it fails for a reason a retry cures.
const SAVE_ATTEMPTS: usize = 3;

/// The name of the trigger function and of the trigger on each mapped table.
const TRIGGER: &str = "cairn_store_notify";

/// How auto-load learns that someone else changed the mapped tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChangeDetection {
    /// `LISTEN`/`NOTIFY`, through a trigger on each mapped table (created while auto-loading):
    /// changes load as soon as they commit. Needs the right to create functions and triggers.
    #[default]
    Notify,
    /// A fingerprint of the mapped tables, compared every poll interval: needs only `SELECT`, and
    /// reads the mapped tables at every poll.
    Poll,
}

/// A PostgreSQL database holding a store, in JSON or tabular mode.
///
/// ```no_run
/// # async fn demo() -> Result<(), cairn_store::Error> {
/// use cairn_store::{DatabaseConfig, Persister, PersisterOptions, PostgresStorage, Store, TabularConfig};
/// let store = Store::new();
/// let config = DatabaseConfig::tabular(TabularConfig::new().table("pets", "pets"));
/// let storage = PostgresStorage::connect("postgresql://app:secret@127.0.0.1/app", config).await?;
/// let persister = Persister::new(&store, storage, PersisterOptions::new())?;
/// // Load, then save every change and load every change other connections commit.
/// persister.start_auto_persisting(None).await?;
/// store.set_cell("pets", "fido", "species", "dog");
/// # Ok(()) }
/// ```
pub struct PostgresStorage {
    /// Where to connect, again after a failure.
    pg: Config,
    config: Arc<DatabaseConfig>,
    detection: ChangeDetection,
    /// Notified for changes made by other connections (notify mode).
    signal: Arc<Notify>,
    state: Mutex<State>,
}

impl fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("config", &self.config)
            .field("detection", &self.detection)
            .finish_non_exhaustive()
    }
}

/// What operations share, behind the mutex.
struct State {
    /// The connection, `None` until opened or after it broke.
    session: Option<Session>,
    /// Whether auto-load runs (listening, in notify mode).
    watching: bool,
    /// Poll mode: the fingerprint of the mapped tables as of the last load or save.
    synced: Synced,
}

/// What poll mode knows of the mapped tables.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Synced {
    /// Nothing was read or written yet.
    Unknown,
    /// The fingerprint as of the last load, save or poll.
    Known(String),
    /// Someone else changed the tables before the last save: the next poll loads.
    Stale,
}

/// What a load read, decoded after its transaction ends.
enum Read {
    Json { config: JsonConfig, rows: Vec<String> },
    Tabular { config: TabularConfig, tables: Vec<(LoadSource, Vec<String>)> },
}

impl PostgresStorage {
    /// Connects to the database at `url` (`postgresql://user:password@host:port/database`, or
    /// libpq's `key=value` form), without TLS. Refuses a tabular mapping that cannot work.
    ///
    /// # Errors
    /// [`Error::Postgres`] if the URL does not parse or the connection fails;
    /// [`Error::ValuesTableMapped`].
    pub async fn connect(url: &str, config: DatabaseConfig) -> Result<Self, Error> {
        Self::connect_with(url.parse()?, config).await
    }

    /// Connects as `pg` says, without TLS (see [`PostgresStorage::connect`]).
    ///
    /// # Errors
    /// As [`PostgresStorage::connect`].
    pub async fn connect_with(pg: Config, config: DatabaseConfig) -> Result<Self, Error> {
        config.check()?;
        let storage = PostgresStorage {
            pg,
            config: Arc::new(config),
            detection: ChangeDetection::default(),
            signal: Arc::new(Notify::new()),
            state: Mutex::new(State { session: None, watching: false, synced: Synced::Unknown }),
        };
        {
            let mut state = storage.state.lock().await;
            storage.session(&mut state).await?;
        }
        Ok(storage)
    }

    /// Uses `detection` for auto-load (default [`ChangeDetection::Notify`]). Set it before the
    /// storage is given to a persister.
    pub fn change_detection(mut self, detection: ChangeDetection) -> Self {
        self.detection = detection;
        self
    }

    /// How auto-load learns of changes.
    pub fn detection(&self) -> ChangeDetection {
        self.detection
    }

    /// The configuration.
    pub fn config(&self) -> &DatabaseConfig {
        &self.config
    }

    fn managed_tables(&self) -> Vec<String> {
        self.config.managed_tables()
    }

    fn notifying(&self) -> bool {
        self.detection == ChangeDetection::Notify
    }

    /// The open connection, opened (again) if needed; opened again while listening, it listens
    /// again and signals a change, since notifications may have been missed meanwhile.
    async fn session<'s>(&self, state: &'s mut State) -> Result<&'s mut Session, Error> {
        if state.session.as_ref().is_some_and(|s| s.client.is_closed()) {
            state.session = None;
        }
        if state.session.is_none() {
            let mut session = Session::open(&self.pg, self.config.sql_hook().cloned(), self.signal.clone()).await?;
            if state.watching && self.notifying() {
                self.listen(&mut session).await?;
                self.signal.notify_one();
            }
            state.session = Some(session);
        }
        state.session.as_mut().ok_or(Error::Destroyed)
    }

    /// Notify mode: adds the missing triggers, then listens on every managed table's channel.
    async fn listen(&self, session: &mut Session) -> Result<(), Error> {
        let tables = self.managed_tables();
        self.add_missing_triggers(session, &tables).await?;
        let schema = session.schema(&tables).await?;
        for table in &tables {
            let owner = schema.tables.get(table).map_or(session.schema.as_str(), |(s, _)| s.as_str());
            let sql = format!("LISTEN {}", escape_id(&channel(owner, table)));
            session.batch(&sql).await?;
        }
        Ok(())
    }

    /// Adds the trigger of each existing managed table that lacks it; whether any did.
    async fn add_missing_triggers(&self, session: &mut Session, tables: &[String]) -> Result<bool, Error> {
        let tables = tables.to_vec();
        let mut added = false;
        for attempt in 1..=SAVE_ATTEMPTS {
            let result = session
                .transaction("BEGIN", async |db| {
                    let schema = db.schema(&tables).await?;
                    let missing: Vec<(String, String)> = schema
                        .tables
                        .iter()
                        .filter(|(_, (_, has))| !has)
                        .map(|(table, (owner, _))| (table.clone(), owner.clone()))
                        .collect();
                    db.add_triggers(&missing).await?;
                    Ok(!missing.is_empty())
                })
                .await;
            match result {
                Ok(any) => {
                    added = any;
                    break;
                }
                Err(error) if attempt < SAVE_ATTEMPTS && retriable(&error) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(added)
    }

    async fn load(&self) -> Result<Option<Content>, Error> {
        let tables = self.managed_tables();
        let poll = !self.notifying();
        let mut state = self.state.lock().await;
        let session = self.session(&mut state).await?;
        let config = self.config.clone();
        let read = session
            .transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", async |db| {
                let schema = db.schema(&tables).await?;
                let read = match config.mode() {
                    DatabaseMode::Json(json) => {
                        let has = |c: &String| schema.columns.get(&json.table_name).is_some_and(|s| s.contains(c));
                        let rows = if has(&json.id_column) && has(&json.store_column) {
                            db.rows(&json.table_name, Some((&json.id_column, SINGLE_ROW_ID))).await?
                        } else {
                            Vec::new()
                        };
                        Read::Json { config: json.clone(), rows }
                    }
                    DatabaseMode::Tabular(tabular) => {
                        let mut read = Vec::new();
                        for source in tabular.load_sources(&schema.columns) {
                            let rows = db.rows(&source.table, None).await?;
                            read.push((source, rows));
                        }
                        Read::Tabular { config: tabular.clone(), tables: read }
                    }
                };
                let fingerprint = if poll { Some(db.fingerprint(&schema).await?) } else { None };
                Ok((schema, read, fingerprint))
            })
            .await;
        let (schema, read, fingerprint) = match read {
            Ok(read) => read,
            Err(error) => {
                self.forget_broken(&mut state);
                return Err(error);
            }
        };
        // Recorded even if the content is bad: it is reported once, not at every poll.
        if let Some(fingerprint) = fingerprint {
            state.synced = Synced::Known(fingerprint);
        }
        drop(state);
        decode(&schema, read)
    }

    /// Writes a save in one transaction. JSON mode writes only whole content.
    async fn save(&self, write: Write<'_>) -> Result<(), Error> {
        let tables = self.managed_tables();
        let poll = !self.notifying();
        let json = match (self.config.mode(), write) {
            (DatabaseMode::Json(_), Write::Whole(content)) => Some(content.to_json()),
            (DatabaseMode::Json(_), Write::Changes(_)) => return Err(whole_content_only()),
            (DatabaseMode::Tabular(_), _) => None,
        };
        let (content, changes) = write.parts();
        let mut state = self.state.lock().await;
        let watching = state.watching && self.notifying();
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let session = match self.session(&mut state).await {
                Ok(session) => session,
                Err(error) => break Err(error),
            };
            let created_in = session.schema.clone();
            let config = self.config.clone();
            let json = json.clone();
            let begin = if poll { "BEGIN ISOLATION LEVEL REPEATABLE READ" } else { "BEGIN" };
            let result = session
                .transaction(begin, async |db| {
                    let mut schema = db.schema(&tables).await?;
                    let before = if poll { Some(db.fingerprint(&schema).await?) } else { None };
                    let ops = match (config.mode(), json) {
                        (DatabaseMode::Json(json_config), Some(json)) => {
                            plan_json_save(json_config, &mut schema.columns, json)
                        }
                        (DatabaseMode::Tabular(tabular), _) => tabular.plan_save(&mut schema.columns, content, changes),
                        (DatabaseMode::Json(_), None) => Vec::new(),
                    };
                    db.run_ops(&ops).await?;
                    if watching {
                        let created: Vec<(String, String)> = ops
                            .iter()
                            .filter_map(|op| match op {
                                Op::CreateTable { table, .. } => Some((table.clone(), created_in.clone())),
                                _ => None,
                            })
                            .collect();
                        db.add_triggers(&created).await?;
                    }
                    let after = match before {
                        Some(_) => {
                            let schema = db.schema(&tables).await?;
                            Some(db.fingerprint(&schema).await?)
                        }
                        None => None,
                    };
                    Ok((before, after))
                })
                .await;
            match result {
                Err(error) if attempt < SAVE_ATTEMPTS && retriable(&error) => {}
                result => break result,
            }
        };
        match result {
            Ok((Some(before), Some(after))) => {
                state.synced = if state.synced == Synced::Known(before) { Synced::Known(after) } else { Synced::Stale };
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(error) => {
                self.forget_broken(&mut state);
                Err(error)
            }
        }
    }

    /// Drops a connection that broke, so that the next operation opens a new one.
    fn forget_broken(&self, state: &mut State) {
        if state.session.as_ref().is_some_and(|s| s.client.is_closed()) {
            state.session = None;
        }
    }

    async fn poll(&self) -> Result<bool, Error> {
        let tables = self.managed_tables();
        let mut state = self.state.lock().await;
        if self.notifying() {
            if !state.watching {
                return Ok(false);
            }
            let had = state.session.as_ref().is_some_and(|s| !s.client.is_closed());
            let session = self.session(&mut state).await?;
            let added = self.add_missing_triggers(session, &tables).await;
            self.forget_broken(&mut state);
            // A new connection has signalled already.
            return Ok(added? && had);
        }
        let session = self.session(&mut state).await?;
        let fingerprint = session
            .transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", async |db| {
                let schema = db.schema(&tables).await?;
                db.fingerprint(&schema).await
            })
            .await;
        let fingerprint = match fingerprint {
            Ok(fingerprint) => fingerprint,
            Err(error) => {
                self.forget_broken(&mut state);
                return Err(error);
            }
        };
        let changed = match &state.synced {
            Synced::Unknown => false,
            Synced::Known(last) => *last != fingerprint,
            Synced::Stale => true,
        };
        state.synced = Synced::Known(fingerprint);
        Ok(changed)
    }

    async fn watch(&self, watching: bool) -> Result<(), Error> {
        let mut state = self.state.lock().await;
        if state.watching == watching {
            return Ok(());
        }
        state.watching = watching;
        if !self.notifying() {
            return Ok(());
        }
        let fresh = state.session.as_ref().is_none_or(|s| s.client.is_closed());
        let session = self.session(&mut state).await?;
        let result = match (watching, fresh) {
            // A new session listened already.
            (true, true) => Ok(()),
            (true, false) => self.listen(session).await,
            (false, _) => session.batch("UNLISTEN *").await,
        };
        self.forget_broken(&mut state);
        result
    }
}

impl Persist for PostgresStorage {
    async fn get_content(&self) -> Result<Option<Content>, Error> {
        self.load().await
    }

    async fn set_content(&self, content: &Content) -> Result<(), Error> {
        self.save(Write::Whole(content)).await
    }

    /// In tabular mode.
    fn writes_changes(&self) -> bool {
        matches!(self.config.mode(), DatabaseMode::Tabular(_))
    }

    async fn set_changes(&self, changes: &Changes) -> Result<(), Error> {
        self.save(Write::Changes(changes)).await
    }

    async fn has_changed(&self) -> Result<bool, Error> {
        self.poll().await
    }

    fn change_signal(&self) -> Option<Arc<Notify>> {
        self.notifying().then(|| self.signal.clone())
    }

    async fn set_watching(&self, watching: bool) -> Result<(), Error> {
        self.watch(watching).await
    }
}

#[cfg(test)]
mod tests;
