//! One connection of the PostgreSQL back end ([`Session`]): statements through the
//! `on_sql_command` hook, parameters in text form ([`Param`]), the schema of the managed tables,
//! the notify triggers, and the decoding of what a load read.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use bytes::BytesMut;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{AsyncMessage, Client, Config, Connection, NoTls, Socket, Statement};

use super::super::OnSqlCommand;
use super::super::database::{Dialect, escape_id, parse_stored_json, render};
use super::super::tabular::{DbSchema, Op, row_from_columns};
use super::{Read, TRIGGER};
use crate::cell::{Cell, whole};
use crate::content::{Content, Table};
use crate::error::Error;

/// Prepared statements kept per connection; the cache is emptied when it is full.
const MAX_CACHED_STATEMENTS: usize = 256;

const POSTGRES: Dialect = Dialect {
    column_type: " text",
    placeholder: |n| format!("${n}"),
    json_array_elements: |p| format!("SELECT jsonb_array_elements_text({p}::jsonb)"),
};

/// One connection.
pub(super) struct Session {
    pub(super) client: Client,
    /// This connection's backend process id: notifications it caused are the storage's own.
    pid: i32,
    /// `current_schema()`: where unqualified tables are created.
    pub(super) schema: String,
    /// Drives the connection and hands notifications on; aborted with the session.
    driver: JoinHandle<()>,
    statements: HashMap<String, Statement>,
    hook: Option<OnSqlCommand>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A statement parameter: a cell, sent in text form. Cells go to string and JSON columns as
/// their JSON; `raw` parameters (row ids, JSON arrays of ids), and cells for other types, as they
/// are (`4`, `true`, the string itself). Null is SQL `NULL`.
pub(super) struct Param<'a> {
    pub(super) cell: &'a Cell,
    pub(super) raw: bool,
}

impl fmt::Debug for Param<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.cell.fmt(f)
    }
}

/// Whether a column of this type holds cells as JSON text.
fn holds_json(ty: &Type) -> bool {
    [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME, Type::UNKNOWN, Type::JSON, Type::JSONB].contains(ty)
}

/// A number as PostgreSQL reads it: whole numbers without a fraction.
fn number_text(n: f64) -> String {
    whole(n).map_or_else(|| n.to_string(), |i| i.to_string())
}

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let text = match self.cell {
            Cell::Null => return Ok(IsNull::Yes),
            cell if !self.raw && holds_json(ty) => serde_json::to_string(cell)?,
            Cell::String(s) => s.clone(),
            Cell::Number(n) => number_text(*n),
            Cell::Bool(b) => b.to_string(),
        };
        out.extend_from_slice(text.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// How a column's content reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A string type: cells as JSON text, or plain strings.
    Text,
    /// `bytea`: no cell.
    Bytes,
    /// Anything else: as PostgreSQL writes it in JSON.
    Other,
}

/// The managed tables that exist: columns, their kinds, schemas and triggers.
#[derive(Debug, Default)]
pub(super) struct PgSchema {
    pub(super) columns: DbSchema,
    kinds: BTreeMap<(String, String), Kind>,
    /// Table to (its schema, whether it has the trigger).
    pub(super) tables: BTreeMap<String, (String, bool)>,
}

impl PgSchema {
    fn kind(&self, table: &str, column: &str) -> Kind {
        self.kinds.get(&(table.to_owned(), column.to_owned())).copied().unwrap_or(Kind::Other)
    }

    /// The columns and kinds, as text: part of poll mode's fingerprint.
    fn describe(&self) -> String {
        let kinds: Vec<String> = self.kinds.iter().map(|((t, c), k)| format!("{t}.{c}:{k:?}")).collect();
        kinds.join(",")
    }
}

/// The channel a mapped table notifies: `cairn_store_`, up to 24 characters of the table's name
/// (lowercase ASCII letters and digits, anything else as `_`), and a 64-bit FNV-1a hash of
/// `schema.table` in hex. At most 53 bytes, within PostgreSQL's identifier limit of 63, and
/// made of characters that need no quoting.
pub(super) fn channel(schema: &str, table: &str) -> String {
    let readable: String =
        table.chars().take(24).map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in schema.bytes().chain(std::iter::once(b'.')).chain(table.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("cairn_store_{readable}_{hash:016x}")
}

/// Drives a connection: runs its I/O and signals notifications from other backends.
async fn drive(mut connection: Connection<Socket, NoTlsStream>, own: Arc<AtomicI32>, signal: Arc<Notify>) {
    loop {
        match poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(note))) => {
                if note.process_id() != own.load(Ordering::SeqCst) {
                    signal.notify_one();
                }
            }
            Some(Ok(AsyncMessage::Notice(notice))) => tracing::debug!(%notice, "PostgreSQL notice"),
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                tracing::warn!(%error, "the PostgreSQL connection of a store persister failed");
                return;
            }
            None => return,
        }
    }
}

/// Whether trying again may succeed: a concurrent writer made the same table, column or trigger
/// first, or the transaction could not be serialized.
pub(super) fn retriable(error: &Error) -> bool {
    let Error::Postgres(error) = error else { return false };
    let Some(code) = error.code() else { return false };
    [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::DUPLICATE_TABLE,
        SqlState::DUPLICATE_COLUMN,
        SqlState::DUPLICATE_OBJECT,
        SqlState::UNIQUE_VIOLATION,
    ]
    .contains(code)
}

impl Session {
    /// Connects; notifications from other backends will notify `signal`.
    pub(super) async fn open(pg: &Config, hook: Option<OnSqlCommand>, signal: Arc<Notify>) -> Result<Session, Error> {
        let (client, connection) = pg.connect(NoTls).await?;
        let own = Arc::new(AtomicI32::new(0));
        let driver = tokio::spawn(drive(connection, own.clone(), signal));
        let mut session = Session { client, pid: 0, schema: String::new(), driver, statements: HashMap::new(), hook };
        let rows = session.query("SELECT pg_backend_pid(),coalesce(current_schema(),'')", &[]).await?;
        if let Some(row) = rows.first() {
            session.pid = row.try_get(0)?;
            session.schema = row.try_get(1)?;
        }
        own.store(session.pid, Ordering::SeqCst);
        Ok(session)
    }

    fn announce(&self, sql: &str, params: &[Cell]) {
        if let Some(hook) = &self.hook {
            hook(sql, params);
        }
    }

    /// Runs statements without parameters (the simple query protocol).
    pub(super) async fn batch(&mut self, sql: &str) -> Result<(), Error> {
        self.announce(sql, &[]);
        Ok(self.client.batch_execute(sql).await?)
    }

    async fn statement(&mut self, sql: &str) -> Result<Statement, Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        if self.statements.len() >= MAX_CACHED_STATEMENTS {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Runs a statement with parameters, the first `raw` of them raw (see [`Param`]).
    async fn execute(&mut self, sql: &str, params: &[Cell], raw: usize) -> Result<u64, Error> {
        self.announce(sql, params);
        let statement = self.statement(sql).await?;
        let params: Vec<Param<'_>> = params.iter().enumerate().map(|(i, cell)| Param { cell, raw: i < raw }).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        Ok(self.client.execute(&statement, &refs).await?)
    }

    /// Runs a query whose parameters are all raw.
    async fn query(&mut self, sql: &str, params: &[Cell]) -> Result<Vec<tokio_postgres::Row>, Error> {
        self.announce(sql, params);
        let statement = self.statement(sql).await?;
        let params: Vec<Param<'_>> = params.iter().map(|cell| Param { cell, raw: true }).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        Ok(self.client.query(&statement, &refs).await?)
    }

    /// Runs `f` between `begin` and `COMMIT`; rolls back if it fails.
    pub(super) async fn transaction<R>(
        &mut self,
        begin: &str,
        f: impl AsyncFnOnce(&mut Session) -> Result<R, Error>,
    ) -> Result<R, Error> {
        self.batch(begin).await?;
        match f(self).await {
            Ok(result) => {
                self.batch("COMMIT").await?;
                Ok(result)
            }
            Err(error) => {
                if !self.client.is_closed() {
                    let _ = self.batch("ROLLBACK").await;
                }
                // A failed statement may have left a cached one stale.
                self.statements.clear();
                Err(error)
            }
        }
    }

    /// The columns of those of `tables` that exist, with their kinds, schemas and triggers.
    pub(super) async fn schema(&mut self, tables: &[String]) -> Result<PgSchema, Error> {
        let names = Cell::String(serde_json::Value::from(tables).to_string());
        let sql = "SELECT t.name,a.attname::text,\
            CASE WHEN y.typcategory='S' THEN 't' WHEN y.typname='bytea' THEN 'b' ELSE 'o' END,\
            n.nspname::text,\
            EXISTS(SELECT 1 FROM pg_trigger g WHERE g.tgrelid=c.oid AND g.tgname='cairn_store_notify') \
            FROM jsonb_array_elements_text($1::jsonb)AS t(name) \
            JOIN pg_class c ON c.oid=to_regclass(quote_ident(t.name)) \
            JOIN pg_namespace n ON n.oid=c.relnamespace \
            JOIN pg_attribute a ON a.attrelid=c.oid AND a.attnum>0 AND NOT a.attisdropped \
            JOIN pg_type y ON y.oid=a.atttypid";
        let mut schema = PgSchema::default();
        for row in self.query(sql, &[names]).await? {
            let (table, column): (String, String) = (row.try_get(0)?, row.try_get(1)?);
            let kind = match row.try_get::<_, String>(2)?.as_str() {
                "t" => Kind::Text,
                "b" => Kind::Bytes,
                _ => Kind::Other,
            };
            schema.tables.insert(table.clone(), (row.try_get(3)?, row.try_get(4)?));
            schema.columns.entry(table.clone()).or_default().insert(column.clone());
            schema.kinds.insert((table, column), kind);
        }
        Ok(schema)
    }

    /// Every row of `table` (those whose `id_column` is `id`, if given) as a JSON object's text.
    pub(super) async fn rows(&mut self, table: &str, id: Option<(&str, &str)>) -> Result<Vec<String>, Error> {
        let mut sql = format!("SELECT row_to_json(t)::text FROM {} t", escape_id(table));
        let mut params = Vec::new();
        if let Some((column, id)) = id {
            sql.push_str(&format!(" WHERE t.{}=$1", escape_id(column)));
            params.push(Cell::from(id));
        }
        let rows = self.query(&sql, &params).await?;
        rows.iter().map(|row| Ok(row.try_get::<_, String>(0)?)).collect()
    }

    /// Poll mode's fingerprint of the managed tables: their columns and their rows' md5.
    pub(super) async fn fingerprint(&mut self, schema: &PgSchema) -> Result<String, Error> {
        let sums: Vec<String> = schema
            .columns
            .keys()
            .map(|table| {
                format!(
                    "(SELECT md5(coalesce(string_agg(t::text,chr(10)ORDER BY t::text),''))FROM {} t)",
                    escape_id(table)
                )
            })
            .collect();
        let mut fingerprint = schema.describe();
        if !sums.is_empty() {
            let sql = format!("SELECT concat_ws(',',{})", sums.join(","));
            let rows = self.query(&sql, &[]).await?;
            if let Some(row) = rows.first() {
                fingerprint.push('|');
                fingerprint.push_str(&row.try_get::<_, String>(0)?);
            }
        }
        Ok(fingerprint)
    }

    /// Runs the planned operations.
    pub(super) async fn run_ops(&mut self, ops: &[Op]) -> Result<(), Error> {
        for op in ops {
            let (sql, params) = render(op, &POSTGRES);
            // Row ids and lists of ids are raw; an upsert's cells follow its id.
            let raw = match op {
                Op::Upsert { .. } => 1,
                _ => params.len(),
            };
            if params.is_empty() {
                self.batch(&sql).await?;
            } else {
                self.execute(&sql, &params, raw).await?;
            }
        }
        Ok(())
    }

    /// Creates (or replaces) the trigger function and the trigger of each of `tables` (table,
    /// schema), each notifying the table's channel.
    pub(super) async fn add_triggers(&mut self, tables: &[(String, String)]) -> Result<(), Error> {
        if tables.is_empty() {
            return Ok(());
        }
        // Concurrent `CREATE OR REPLACE FUNCTION`s of one function can fail: take turns.
        self.batch("SELECT pg_advisory_xact_lock(hashtext('cairn_store_notify'))").await?;
        self.batch(&format!(
            "CREATE OR REPLACE FUNCTION {}()RETURNS trigger LANGUAGE plpgsql AS \
             $cairn$BEGIN PERFORM pg_notify(TG_ARGV[0],TG_TABLE_NAME);RETURN NULL;END$cairn$",
            escape_id(TRIGGER)
        ))
        .await?;
        for (table, schema) in tables {
            // A channel needs no quoting in a literal (see `channel`).
            self.batch(&format!(
                "CREATE OR REPLACE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {} \
                 FOR EACH STATEMENT EXECUTE FUNCTION {trigger}('{}')",
                escape_id(table),
                channel(schema, table),
                trigger = escape_id(TRIGGER),
            ))
            .await?;
        }
        Ok(())
    }
}

/// A column's content as a cell; `None` for `NULL`. Ids are read as they are.
pub(super) fn from_json(
    table: &str,
    column: &str,
    value: serde_json::Value,
    kind: Kind,
    id: bool,
) -> Result<Option<Cell>, Error> {
    let unsupported = |found| Error::UnsupportedSqlValue { table: table.to_owned(), column: column.to_owned(), found };
    match (value, kind) {
        (serde_json::Value::Null, _) => Ok(None),
        (_, Kind::Bytes) => Err(unsupported("bytes")),
        (serde_json::Value::String(text), Kind::Text) if !id => {
            let decoded = serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| Cell::from_json_value(&v));
            Ok(Some(decoded.unwrap_or(Cell::String(text))))
        }
        (value, _) => match Cell::from_json_value(&value) {
            Some(cell) if cell.is_valid() => Ok(Some(cell)),
            Some(_) => Err(unsupported("a number that is not finite")),
            None => Err(unsupported("a JSON array or object")),
        },
    }
}

/// A row read as JSON (`row_to_json`), as (column, cell) pairs.
fn columns_of(
    table: &str,
    schema: &PgSchema,
    id_column: &str,
    json: &str,
) -> Result<Vec<(String, Option<Cell>)>, Error> {
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)?;
    object
        .into_iter()
        .map(|(column, value)| {
            let cell = from_json(table, &column, value, schema.kind(table, &column), column == id_column)?;
            Ok((column, cell))
        })
        .collect()
}

/// The content of what a load read.
pub(super) fn decode(schema: &PgSchema, read: Read) -> Result<Option<Content>, Error> {
    match read {
        Read::Json { config, rows } => {
            let Some(row) = rows.first() else { return Ok(None) };
            let columns = columns_of(&config.table_name, schema, &config.id_column, row)?;
            let stored = columns.into_iter().find(|(c, _)| *c == config.store_column).and_then(|(_, cell)| cell);
            match stored {
                None | Some(Cell::Null) => Ok(None),
                Some(Cell::String(json)) => parse_stored_json(&json),
                Some(_) => Err(Error::UnsupportedSqlValue {
                    table: config.table_name,
                    column: config.store_column,
                    found: "a number or a boolean, which is not store JSON",
                }),
            }
        }
        Read::Tabular { config, tables } => {
            let mut read = Vec::with_capacity(tables.len());
            for (source, rows) in tables {
                let mut table = Table::new();
                for row in &rows {
                    let columns = columns_of(&source.table, schema, &source.id_column, row)?;
                    if let Some((id, row)) = row_from_columns(&source.id_column, columns) {
                        table.insert(id, row);
                    }
                }
                read.push((source, table));
            }
            Ok(config.assemble(read))
        }
    }
}
