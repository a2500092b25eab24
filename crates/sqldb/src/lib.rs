//! Cairn's SQL databases: the semantics of D1 (queries with positional parameters, atomic
//! batches, result `meta`, SQL dumps, wrangler-style migrations) built on Cairn objects.
//!
//! Each database is one object of the runtime namespace [`DATA_NAMESPACE`], named by the
//! database's uuid, and its tables are that object's SQL tables. Every rule of the object SQL
//! API applies (the authorizer, the reserved `_cf_` and `_cairn_` names, the SQL limits of
//! DESIGN.md section 5), and every query is one event: atomic, and answered only once durable.
//! The list of databases is a [`Registry`] in a system object.
//!
//! # Layout
//! - `lib.rs`: [`SqlService`], databases and queries.
//! - `migrations.rs`: the wrangler migration conventions (file names, order, bookkeeping).
//! - `error.rs`: [`Error`].
//!
//! # Example
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use cairn_sqldb::{SqlService, Statement};
//! let dir = tempfile::tempdir()?;
//! let rt = cairn_runtime::Runtime::builder(dir.path()).open()?;
//! let sql = SqlService::new(rt.clone())?;
//! let db = sql.create_database("shop").await?;
//! let results = sql
//!     .query(&db.uuid, vec![
//!         Statement::new("CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT)"),
//!         Statement::new("INSERT INTO items(name) VALUES (?1)").bind(vec!["pen".into()]),
//!         Statement::new("SELECT * FROM items"),
//!     ])
//!     .await?;
//! assert_eq!(results[2].rows.len(), 1);
//! assert_eq!(results[1].meta.last_row_id, 1);
//! # rt.close();
//! # Ok(()) }
//! ```

mod error;
pub mod migrations;

use std::time::Instant;

use cairn_runtime::registry::{Registry, Resource};
use cairn_runtime::{ObjectRef, Runtime};
use cairn_storage::{DumpOptions, ObjectStorage, SqlValue};

pub use error::{Error, ErrorKind, Result};

/// The runtime namespace whose objects hold SQL databases (one object per database uuid).
pub const DATA_NAMESPACE: &str = "_cairn_d1";

/// Longest database name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// A SQL database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Database {
    /// Its id (32 hex digits; shown with dashes as a UUID by the HTTP API).
    pub uuid: String,
    /// Its name, unique among databases.
    pub name: String,
    /// When it was created, ms since the epoch.
    pub created_ms: i64,
}

impl From<Resource> for Database {
    fn from(r: Resource) -> Self {
        Database { uuid: r.id, name: r.name, created_ms: r.created_ms }
    }
}

/// A database with its current size and table count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseInfo {
    /// The database.
    pub database: Database,
    /// User tables.
    pub num_tables: u64,
    /// Bytes used by the database.
    pub file_size: u64,
}

/// One SQL text with its positional parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    /// The SQL (one statement, or several separated by `;`; only the last may take
    /// parameters).
    pub sql: String,
    /// Values for `?` and `?NNN`.
    pub params: Vec<SqlValue>,
}

impl Statement {
    /// A statement without parameters.
    pub fn new(sql: impl Into<String>) -> Statement {
        Statement { sql: sql.into(), params: Vec::new() }
    }

    /// The statement with these parameters.
    #[must_use]
    pub fn bind(mut self, params: Vec<SqlValue>) -> Statement {
        self.params = params;
        self
    }
}

/// What a statement did, as D1's `meta` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    /// Milliseconds spent running the statement.
    pub duration_ms: f64,
    /// Rows changed (SQLite's `total_changes()` delta).
    pub changes: u64,
    /// `last_insert_rowid()` after the statement.
    pub last_row_id: i64,
    /// Whether the statement changed the database.
    pub changed_db: bool,
    /// Bytes used by the database after the statement.
    pub size_after: u64,
    /// Rows read.
    pub rows_read: u64,
    /// Rows written.
    pub rows_written: u64,
}

/// The result of one statement.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    /// Column names, duplicates included.
    pub columns: Vec<String>,
    /// Rows, values in column order.
    pub rows: Vec<Vec<SqlValue>>,
    /// What the statement did.
    pub meta: Meta,
}

impl QueryResult {
    /// The rows as JSON objects (`{column: value}`; a later duplicate column wins, as in D1).
    pub fn rows_as_objects(&self) -> Vec<serde_json::Map<String, serde_json::Value>> {
        self.rows.iter().map(|row| self.columns.iter().cloned().zip(row.iter().map(sql_to_json)).collect()).collect()
    }
}

/// A SQL value as D1 returns it in JSON: blobs become arrays of byte numbers.
pub fn sql_to_json(v: &SqlValue) -> serde_json::Value {
    match v {
        SqlValue::Null => serde_json::Value::Null,
        SqlValue::Integer(i) => (*i).into(),
        SqlValue::Real(f) => {
            serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
        SqlValue::Text(s) => s.clone().into(),
        SqlValue::Blob(b) => b.iter().map(|x| serde_json::Value::from(*x)).collect(),
    }
}

/// A JSON parameter as D1 binds it: booleans become 1 or 0, arrays of bytes become blobs.
///
/// # Errors
/// [`Error::UnsupportedType`] for objects and arrays that are not bytes.
pub fn json_to_sql(v: &serde_json::Value) -> Result<SqlValue> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => SqlValue::Null,
        J::Bool(b) => SqlValue::Integer(i64::from(*b)),
        J::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        },
        J::String(s) => SqlValue::Text(s.clone()),
        J::Array(items) => {
            let bytes: Option<Vec<u8>> = items.iter().map(|x| x.as_u64().and_then(|b| u8::try_from(b).ok())).collect();
            SqlValue::Blob(bytes.ok_or_else(|| Error::UnsupportedType { kind: "object", value: js_string(v) })?)
        }
        J::Object(_) => return Err(Error::UnsupportedType { kind: "object", value: js_string(v) }),
    })
}

/// A JSON value as JavaScript's `String(value)` shows it (for D1's type error).
fn js_string(v: &serde_json::Value) -> String {
    use serde_json::Value as J;
    match v {
        J::Null => "null".to_owned(),
        J::Bool(b) => b.to_string(),
        J::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e21 && n.as_i64().is_none() && n.as_u64().is_none() => {
                format!("{f:.0}")
            }
            _ => n.to_string(),
        },
        J::String(s) => s.clone(),
        // `[1, null, [2, 3]]` → `1,,2,3`.
        J::Array(items) => {
            items.iter().map(|x| if x.is_null() { String::new() } else { js_string(x) }).collect::<Vec<_>>().join(",")
        }
        J::Object(_) => "[object Object]".to_owned(),
    }
}

/// The result of an import.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportSummary {
    /// Statements run.
    pub num_queries: usize,
    /// Milliseconds spent.
    pub duration_ms: f64,
    /// Rows written.
    pub rows_written: u64,
    /// Bytes used by the database afterwards.
    pub size_after: u64,
}

/// Where a Time Travel restore goes.
#[derive(Clone, Debug)]
pub enum RestoreTarget {
    /// A bookmark string.
    Bookmark(String),
    /// A time, ms since the epoch.
    Time(i64),
}

/// SQL databases over a runtime.
#[derive(Debug)]
pub struct SqlService {
    runtime: Runtime,
    registry: Registry,
}

impl SqlService {
    /// The service over `runtime`.
    ///
    /// # Errors
    /// The runtime's.
    pub fn new(runtime: Runtime) -> Result<SqlService> {
        let registry = Registry::new(&runtime, "sql-databases")?;
        Ok(SqlService { runtime, registry })
    }

    /// Creates an empty database.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::NameExists`]; the runtime's.
    pub async fn create_database(&self, name: &str) -> Result<Database> {
        if name.trim().is_empty() || name.len() > MAX_NAME_BYTES {
            return Err(Error::InvalidName { name: name.chars().take(80).collect() });
        }
        if self.registry.find_by_name(name).await?.is_some() {
            return Err(Error::NameExists { name: name.to_owned() });
        }
        Ok(self.registry.create(name, self.runtime.config().clock.now_ms()).await?.into())
    }

    /// Every database, oldest first.
    ///
    /// # Errors
    /// The runtime's.
    pub async fn list_databases(&self) -> Result<Vec<Database>> {
        Ok(self.registry.list().await?.into_iter().map(Database::from).collect())
    }

    /// The database with this uuid (with or without dashes) or, failing that, this name.
    ///
    /// # Errors
    /// [`Error::DatabaseNotFound`]; the runtime's.
    pub async fn database(&self, id_or_name: &str) -> Result<Database> {
        let id = id_or_name.replace('-', "").to_ascii_lowercase();
        if let Some(r) = self.registry.get(&id).await? {
            return Ok(r.into());
        }
        if let Some(r) = self.registry.find_by_name(id_or_name).await? {
            return Ok(r.into());
        }
        Err(Error::DatabaseNotFound { id: id_or_name.to_owned() })
    }

    /// The database with its size and table count (one read-only event).
    ///
    /// # Errors
    /// [`Error::DatabaseNotFound`]; the runtime's.
    pub async fn info(&self, id_or_name: &str) -> Result<DatabaseInfo> {
        let (database, object) = self.object(id_or_name).await?;
        let (num_tables, file_size) = object
            .run(|s| {
                let tables = s
                    .exec(
                        "SELECT count(*) FROM sqlite_master WHERE type = 'table'
                           AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
                           AND name NOT LIKE '\\_cairn\\_%' ESCAPE '\\'
                           AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\'",
                        &[],
                    )?
                    .raw()
                    .next()
                    .and_then(|r| r.into_iter().next())
                    .and_then(|v| v.as_i64())
                    .unwrap_or(0);
                Ok::<_, Error>((u64::try_from(tables).unwrap_or(0), s.database_size()?))
            })
            .await?;
        Ok(DatabaseInfo { database, num_tables, file_size })
    }

    /// Deletes a database and everything in it.
    ///
    /// # Errors
    /// [`Error::DatabaseNotFound`]; the runtime's.
    pub async fn delete_database(&self, id_or_name: &str) -> Result<()> {
        let database = self.database(id_or_name).await?;
        self.registry.remove(&database.uuid).await?;
        // The object is emptied (its file stays, empty, until objects can be removed).
        self.runtime.object(DATA_NAMESPACE, &database.uuid)?.delete_all().await?;
        Ok(())
    }

    async fn object(&self, id_or_name: &str) -> Result<(Database, ObjectRef)> {
        let database = self.database(id_or_name).await?;
        let object = self.runtime.object(DATA_NAMESPACE, &database.uuid)?;
        Ok((database, object))
    }

    /// The database's current bookmark (its position in commit order, as text).
    ///
    /// # Errors
    /// [`Error::DatabaseNotFound`]; the runtime's.
    pub async fn current_bookmark(&self, id_or_name: &str) -> Result<String> {
        let (_, object) = self.object(id_or_name).await?;
        Ok(object.current_bookmark().await?.to_string())
    }

    /// Time Travel: the bookmark of the database's state at `time_ms` (ms since the epoch),
    /// or its current bookmark without a time.
    ///
    /// # Errors
    /// [`Error::DatabaseNotFound`]; the runtime's history errors (outside the retention
    /// window, history off).
    pub async fn bookmark_at(&self, id_or_name: &str, time_ms: Option<i64>) -> Result<String> {
        let (_, object) = self.object(id_or_name).await?;
        let b = match time_ms {
            Some(t) => object.bookmark_for_time(t).await?,
            None => object.current_bookmark().await?,
        };
        Ok(b.to_string())
    }

    /// Time Travel: restores the database to a bookmark (or to its state at a time). Returns
    /// the new bookmark (after the restore) and the previous one (which undoes it).
    ///
    /// # Errors
    /// [`Error::InvalidBookmark`] for a string that is not a bookmark; as
    /// [`SqlService::bookmark_at`].
    pub async fn restore(&self, id_or_name: &str, to: RestoreTarget) -> Result<(String, String)> {
        let (_, object) = self.object(id_or_name).await?;
        let target = match to {
            RestoreTarget::Bookmark(b) => {
                b.parse::<cairn_storage::Bookmark>().map_err(|e| Error::InvalidBookmark { message: e.to_string() })?
            }
            RestoreTarget::Time(t) => object.bookmark_for_time(t).await?,
        };
        let previous = object.restore(target).await?;
        let now = object.current_bookmark().await?;
        Ok((now.to_string(), previous.to_string()))
    }

    /// Runs statements as one atomic batch: one event, all committed or, if any fails, none.
    /// A text holding several `;`-separated statements gives one result per statement.
    ///
    /// # Errors
    /// [`Error::NoStatements`] for an empty batch or a text of comments only; the first
    /// failing statement's error (the whole batch is rolled back); [`Error::DatabaseNotFound`].
    pub async fn query(&self, id_or_name: &str, statements: Vec<Statement>) -> Result<Vec<QueryResult>> {
        if statements.is_empty() {
            return Err(Error::NoStatements);
        }
        let (_, object) = self.object(id_or_name).await?;
        object
            .run(move |s| {
                let mut results = Vec::new();
                for statement in &statements {
                    run_statement(s, statement, &mut results)?;
                }
                Ok(results)
            })
            .await
    }

    /// The database as SQL text (schema, then rows as `INSERT`s).
    ///
    /// # Errors
    /// [`Error::DatabaseNotFound`]; the runtime's.
    pub async fn export(&self, id_or_name: &str, options: DumpOptions) -> Result<String> {
        let (_, object) = self.object(id_or_name).await?;
        object.run(move |s| s.dump_sql(&options).map_err(Error::from)).await
    }

    /// Runs a SQL script (for example a dump) as one atomic event.
    ///
    /// # Errors
    /// The first failing statement's error (nothing is applied); [`Error::DatabaseNotFound`].
    pub async fn import(&self, id_or_name: &str, script: String) -> Result<ImportSummary> {
        let (_, object) = self.object(id_or_name).await?;
        object
            .run(move |s| {
                let started = Instant::now();
                let before = s.total_changes();
                let num_queries = s.exec_script(&script)?;
                Ok(ImportSummary {
                    num_queries,
                    duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                    rows_written: s.total_changes().saturating_sub(before),
                    size_after: s.database_size()?,
                })
            })
            .await
    }
}

fn run_statement(s: &mut ObjectStorage, statement: &Statement, out: &mut Vec<QueryResult>) -> Result<()> {
    let started = Instant::now();
    let mut size_before = s.database_size()?;
    let mut rowid_before = s.last_insert_rowid();
    // A text of whitespace and comments only holds no statement: D1 words that its own way.
    let cursors = s.exec_all(&statement.sql, &statement.params).map_err(|e| match e {
        cairn_storage::Error::SqlNoStatement => Error::NoStatements,
        e => Error::from(e),
    })?;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0 / cursors.len().max(1) as f64;
    for cursor in cursors {
        let columns = cursor.column_names().to_vec();
        // D1 counts a written row as read too (miniflare reports an INSERT as 1 read and 1
        // written, an INSERT ... RETURNING as 2 and 1, a SELECT of 3 rows as 3 and 0).
        let rows_written = cursor.rows_written();
        let rows_read = cursor.rows_read() + rows_written;
        let last_row_id = cursor.last_insert_rowid();
        let size_after = cursor.size_after().unwrap_or(size_before);
        // What D1 reports: the statement changed rows, inserted a row, or changed the size.
        let changed_db = rows_written != 0 || last_row_id != rowid_before || size_after != size_before;
        (size_before, rowid_before) = (size_after, last_row_id);
        let rows: Vec<Vec<SqlValue>> = cursor.raw().collect();
        out.push(QueryResult {
            columns,
            rows,
            meta: Meta {
                duration_ms,
                changes: rows_written,
                last_row_id,
                changed_db,
                size_after,
                rows_read,
                rows_written,
            },
        });
    }
    Ok(())
}
