//! The SQLite back end ([`SqliteStorage`]): TinyBase's SQLite persisters, in JSON or tabular
//! mode (see `database.rs` and `tabular.rs` for the layouts), on rusqlite.
//!
//! Invariants:
//! - The connection is used by one blocking task at a time (`spawn_blocking`, behind a mutex),
//!   never on the async threads.
//! - Each load is one read transaction and each save one write transaction (`BEGIN IMMEDIATE`),
//!   so another connection sees a save entirely or not at all; a failed save is rolled back.
//! - Auto-load polls `PRAGMA data_version`, which changes when another connection commits and
//!   not when this one does, so this persister's own saves are not taken for changes. The
//!   version is read at the start of each load: a commit after that shows at the next poll.
//! - Every statement, including the polls, goes through `on_sql_command` first.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, params_from_iter};

use super::database::{
    DatabaseConfig, DatabaseMode, Dialect, JsonConfig, SINGLE_ROW_ID, escape_id, parse_stored_json, plan_json_save,
    render,
};
use super::tabular::{DbSchema, Op, TabularConfig, row_from_columns};
use super::{Persist, Persister, Write, whole_content_only};
use crate::cell::{Cell, whole};
use crate::content::{Changes, Content, Table};
use crate::error::Error;

/// A persister of a store to SQLite.
pub type SqlitePersister = Persister<SqliteStorage>;

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SQLITE: Dialect = Dialect {
    column_type: "",
    placeholder: |n| format!("?{n}"),
    json_array_elements: |p| format!("SELECT value FROM json_each({p})"),
};

/// A SQLite database holding a store, in JSON or tabular mode.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cairn_store::{DatabaseConfig, Persister, PersisterOptions, SqliteStorage, Store, TabularConfig};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("pets.db");
/// let store = Store::new();
/// store.set_row("pets", "fido", [("species", "dog")]);
/// let config = DatabaseConfig::tabular(TabularConfig::new().table("pets", "pets"));
/// let persister = Persister::new(&store, SqliteStorage::open(&path, config)?, PersisterOptions::new())?;
/// persister.save().await?;
///
/// let db = rusqlite::Connection::open(&path)?;
/// let species: String = db.query_row(r#"SELECT species FROM pets WHERE _id = 'fido'"#, [], |r| r.get(0))?;
/// assert_eq!(species, "dog");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SqliteStorage {
    connection: Arc<Mutex<Connection>>,
    config: Arc<DatabaseConfig>,
    /// `PRAGMA data_version` as of the last load or poll.
    data_version: Arc<Mutex<Option<i64>>>,
}

impl SqliteStorage {
    /// Opens (or creates) the database at `path`, waiting up to 5 s for other connections'
    /// locks.
    pub fn open(path: impl AsRef<Path>, config: DatabaseConfig) -> Result<Self, Error> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        Self::new(connection, config)
    }

    /// Uses this connection. Refuses a tabular mapping that cannot work.
    pub fn new(connection: Connection, config: DatabaseConfig) -> Result<Self, Error> {
        config.check()?;
        Ok(SqliteStorage {
            connection: Arc::new(Mutex::new(connection)),
            config: Arc::new(config),
            data_version: Arc::new(Mutex::new(None)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Session<'_>) -> Result<R, Error> + Send + 'static,
    ) -> Result<R, Error> {
        let (connection, config) = (self.connection.clone(), self.config.clone());
        tokio::task::spawn_blocking(move || {
            let connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            let session = Session { connection: &connection, hook: config.sql_hook() };
            if !connection.is_autocommit() {
                // A transaction left open by a task that panicked.
                session.exec("ROLLBACK", &[])?;
            }
            f(&session)
        })
        .await?
    }
}

/// A row read from a table: (column name, content) pairs, `None` for `NULL`.
type Columns = Vec<(String, Option<Cell>)>;

/// The connection plus the `on_sql_command` hook: every statement goes through here.
struct Session<'a> {
    connection: &'a Connection,
    hook: Option<&'a super::OnSqlCommand>,
}

fn to_sql(cell: &Cell) -> SqlValue {
    match cell {
        Cell::Null => SqlValue::Null,
        Cell::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Cell::Number(n) => whole(*n).map_or(SqlValue::Real(*n), SqlValue::Integer),
        Cell::String(s) => SqlValue::Text(s.clone()),
    }
}

/// A column's content as a cell; `None` for `NULL`.
fn from_sql(table: &str, column: &str, value: ValueRef<'_>) -> Result<Option<Cell>, Error> {
    let unsupported = |found| Error::UnsupportedSqlValue { table: table.to_owned(), column: column.to_owned(), found };
    match value {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(i) => Ok(Some(Cell::from(i))),
        ValueRef::Real(r) if r.is_finite() => Ok(Some(Cell::Number(r))),
        ValueRef::Real(_) => Err(unsupported("an infinite number")),
        ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Some(Cell::String(text.to_owned()))),
            Err(_) => Err(unsupported("text that is not UTF-8")),
        },
        ValueRef::Blob(_) => Err(unsupported("a blob")),
    }
}

impl Session<'_> {
    fn announce(&self, sql: &str, params: &[Cell]) {
        if let Some(hook) = self.hook {
            hook(sql, params);
        }
    }

    fn exec(&self, sql: &str, params: &[Cell]) -> Result<usize, Error> {
        self.announce(sql, params);
        let mut statement = self.connection.prepare_cached(sql)?;
        Ok(statement.execute(params_from_iter(params.iter().map(to_sql)))?)
    }

    /// Runs a query; each row as (column name, cell) pairs.
    fn query(&self, table: &str, sql: &str, params: &[Cell]) -> Result<Vec<Columns>, Error> {
        self.announce(sql, params);
        // Not cached: `SELECT *` is expanded when prepared, and columns may have been added since.
        let mut statement = self.connection.prepare(sql)?;
        let names: Vec<String> = statement.column_names().map(str::to_owned).collect();
        let mut rows = statement.query(params_from_iter(params.iter().map(to_sql)))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut columns = Vec::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                columns.push((name.clone(), from_sql(table, name, row.get_ref(i)?)?));
            }
            out.push(columns);
        }
        Ok(out)
    }

    fn data_version(&self) -> Result<i64, Error> {
        let sql = "PRAGMA data_version";
        self.announce(sql, &[]);
        Ok(self.connection.query_row(sql, [], |row| row.get(0))?)
    }

    /// The columns of those of `tables` that exist.
    fn schema(&self, tables: &[String]) -> Result<DbSchema, Error> {
        let mut schema = DbSchema::new();
        for table in tables {
            let rows = self.query(table, "SELECT name FROM pragma_table_info(?1)", &[Cell::from(table)])?;
            let columns: BTreeSet<String> = rows
                .into_iter()
                .flatten()
                .filter_map(|(_, name)| name.and_then(|n| n.as_str().map(str::to_owned)))
                .collect();
            if !columns.is_empty() {
                schema.insert(table.clone(), columns);
            }
        }
        Ok(schema)
    }

    /// Runs `f` in a transaction opened by `begin`; commits if it succeeds, else rolls back.
    fn transaction<R>(&self, begin: &str, f: impl FnOnce(&Self) -> Result<R, Error>) -> Result<R, Error> {
        self.exec(begin, &[])?;
        match f(self) {
            Ok(result) => {
                self.exec("COMMIT", &[])?;
                Ok(result)
            }
            Err(error) => {
                let _ = self.exec("ROLLBACK", &[]);
                Err(error)
            }
        }
    }

    fn run_ops(&self, ops: &[Op]) -> Result<(), Error> {
        for op in ops {
            let (sql, params) = render(op, &SQLITE);
            self.exec(&sql, &params)?;
        }
        Ok(())
    }

    fn load_json(&self, config: &JsonConfig) -> Result<Option<Content>, Error> {
        let schema = self.schema(std::slice::from_ref(&config.table_name))?;
        let has = |column: &String| schema.get(&config.table_name).is_some_and(|c| c.contains(column));
        if !has(&config.id_column) || !has(&config.store_column) {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {} FROM {} WHERE {}=?1",
            escape_id(&config.store_column),
            escape_id(&config.table_name),
            escape_id(&config.id_column)
        );
        let rows = self.query(&config.table_name, &sql, &[Cell::from(SINGLE_ROW_ID)])?;
        match rows.into_iter().flatten().next().and_then(|(_, cell)| cell) {
            None => Ok(None),
            Some(Cell::String(json)) => parse_stored_json(&json),
            Some(_) => Err(Error::UnsupportedSqlValue {
                table: config.table_name.clone(),
                column: config.store_column.clone(),
                found: "a number, which is not store JSON",
            }),
        }
    }

    fn load_tabular(&self, config: &TabularConfig) -> Result<Option<Content>, Error> {
        let tables: Vec<String> = config.managed_tables().into_iter().collect();
        let schema = self.schema(&tables)?;
        let mut read = Vec::new();
        for source in config.load_sources(&schema) {
            let sql = format!("SELECT * FROM {}", escape_id(&source.table));
            let rows = self.query(&source.table, &sql, &[])?;
            let table: Table =
                rows.into_iter().filter_map(|columns| row_from_columns(&source.id_column, columns)).collect();
            read.push((source, table));
        }
        Ok(config.assemble(read))
    }
}

impl SqliteStorage {
    /// Writes a save in one write transaction. JSON mode writes only whole content.
    async fn save(&self, write: Write<'_>) -> Result<(), Error> {
        let config = self.config.clone();
        let tables = config.managed_tables();
        match (config.mode(), write) {
            (DatabaseMode::Json(_), Write::Whole(content)) => {
                let json = content.to_json();
                self.run(move |db| {
                    db.transaction("BEGIN IMMEDIATE", |db| {
                        let DatabaseMode::Json(json_config) = config.mode() else { return Ok(()) };
                        let mut schema = db.schema(&tables)?;
                        db.run_ops(&plan_json_save(json_config, &mut schema, json))
                    })
                })
                .await
            }
            (DatabaseMode::Json(_), Write::Changes(_)) => Err(whole_content_only()),
            (DatabaseMode::Tabular(_), write) => {
                // Only what the plan needs crosses to the blocking task.
                let (content, changes) = write.parts();
                let (content, changes) = (content.cloned(), changes.cloned());
                self.run(move |db| {
                    db.transaction("BEGIN IMMEDIATE", |db| {
                        let DatabaseMode::Tabular(tabular) = config.mode() else { return Ok(()) };
                        let mut schema = db.schema(&tables)?;
                        db.run_ops(&tabular.plan_save(&mut schema, content.as_ref(), changes.as_ref()))
                    })
                })
                .await
            }
        }
    }
}

impl Persist for SqliteStorage {
    async fn get_content(&self) -> Result<Option<Content>, Error> {
        let (config, version) = (self.config.clone(), self.data_version.clone());
        self.run(move |db| {
            db.transaction("BEGIN", |db| {
                let data_version = db.data_version()?;
                let content = match config.mode() {
                    DatabaseMode::Json(json) => db.load_json(json),
                    DatabaseMode::Tabular(tabular) => db.load_tabular(tabular),
                };
                // Recorded even if the content is bad: it is reported once, not at every poll.
                *version.lock().unwrap_or_else(PoisonError::into_inner) = Some(data_version);
                content
            })
        })
        .await
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
        let version = self.data_version.clone();
        self.run(move |db| {
            let now = db.data_version()?;
            let mut last = version.lock().unwrap_or_else(PoisonError::into_inner);
            let changed = last.is_some_and(|last| last != now);
            *last = Some(now);
            Ok(changed)
        })
        .await
    }
}
