//! What database back ends share: their configuration ([`DatabaseConfig`]: JSON or tabular mode,
//! the `on_sql_command` hook) and the SQL they run, rendered from the operations `tabular.rs`
//! plans, in a dialect (SQLite and PostgreSQL differ only in placeholders, column type and how
//! a JSON array of ids is unnested).
//!
//! Layout in the database, as TinyBase's database persisters lay it out:
//! - JSON mode: one table (default `tinybase`) with a row id column (default `_id`) and a
//!   content column (default `store`); the row whose id is `_` holds the whole store as JSON,
//!   `[tables, values]`.
//! - Tabular mode: see `tabular.rs`.
//!
//! Identifiers are always quoted (`"name"`, with `"` doubled), so any table or column name is
//! safe; every value is a bound parameter.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::OnSqlCommand;
use super::tabular::{DbSchema, Op, TabularConfig, plan_table};
use crate::cell::Cell;
use crate::content::{Content, Id, TableChanges};
use crate::error::Error;

/// The id of the one row holding the whole store (JSON mode) or the values (tabular mode).
pub(crate) const SINGLE_ROW_ID: &str = "_";
/// The default name of the row id column.
pub(crate) const DEFAULT_ROW_ID_COLUMN: &str = "_id";

/// Where JSON mode keeps the store: TinyBase's `storeTableName`, `storeIdColumnName` and
/// `storeColumnName`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonConfig {
    /// The table (default `tinybase`).
    pub table_name: String,
    /// Its row id column (default `_id`).
    pub id_column: String,
    /// Its column holding the JSON (default `store`).
    pub store_column: String,
}

impl Default for JsonConfig {
    fn default() -> Self {
        JsonConfig {
            table_name: "tinybase".to_owned(),
            id_column: DEFAULT_ROW_ID_COLUMN.to_owned(),
            store_column: "store".to_owned(),
        }
    }
}

impl JsonConfig {
    /// The defaults, in table `table_name`.
    pub fn new(table_name: impl Into<String>) -> Self {
        JsonConfig { table_name: table_name.into(), ..JsonConfig::default() }
    }
}

/// How a database back end lays the store out.
#[derive(Debug, Clone, PartialEq)]
pub enum DatabaseMode {
    /// The whole store as JSON in one row.
    Json(JsonConfig),
    /// Store tables mapped to SQL tables, one column per cell.
    Tabular(TabularConfig),
}

/// The configuration of a database back end: its mode and the `on_sql_command` hook.
///
/// ```
/// use cairn_store::{DatabaseConfig, TabularConfig};
/// let statements = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
/// let log = statements.clone();
/// let config = DatabaseConfig::tabular(TabularConfig::new().table("pets", "pets"))
///     .on_sql_command(move |sql, _params| log.lock().unwrap().push(sql.to_owned()));
/// ```
#[derive(Clone)]
pub struct DatabaseConfig {
    mode: DatabaseMode,
    on_sql_command: Option<OnSqlCommand>,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("mode", &self.mode)
            .field("on_sql_command", &self.on_sql_command.is_some())
            .finish()
    }
}

impl DatabaseConfig {
    /// A configuration of this mode.
    pub fn new(mode: DatabaseMode) -> Self {
        DatabaseConfig { mode, on_sql_command: None }
    }

    /// JSON mode in table `tinybase` (TinyBase's default).
    pub fn json() -> Self {
        Self::new(DatabaseMode::Json(JsonConfig::default()))
    }

    /// Tabular mode with this mapping.
    pub fn tabular(config: TabularConfig) -> Self {
        Self::new(DatabaseMode::Tabular(config))
    }

    /// Calls `f` with each SQL statement and its parameters, before running it.
    pub fn on_sql_command(mut self, f: impl Fn(&str, &[Cell]) + Send + Sync + 'static) -> Self {
        self.on_sql_command = Some(Arc::new(f));
        self
    }

    /// The mode.
    pub fn mode(&self) -> &DatabaseMode {
        &self.mode
    }

    pub(crate) fn sql_hook(&self) -> Option<&OnSqlCommand> {
        self.on_sql_command.as_ref()
    }

    /// Refuses a mapping that cannot work.
    pub(crate) fn check(&self) -> Result<(), Error> {
        match &self.mode {
            DatabaseMode::Json(_) => Ok(()),
            DatabaseMode::Tabular(config) => config.check(),
        }
    }

    /// The tables this configuration reads or writes.
    pub(crate) fn managed_tables(&self) -> Vec<String> {
        match &self.mode {
            DatabaseMode::Json(config) => vec![config.table_name.clone()],
            DatabaseMode::Tabular(config) => config.managed_tables().into_iter().collect(),
        }
    }
}

/// Plans writing the whole store as JSON: TinyBase writes the one row and drops any other
/// column (and row) of the table.
pub(crate) fn plan_json_save(config: &JsonConfig, schema: &mut DbSchema, json: String) -> Vec<Op> {
    let row = BTreeMap::from([(config.store_column.clone(), Some(Cell::String(json)))]);
    let content: TableChanges = BTreeMap::from([(SINGLE_ROW_ID.to_owned(), Some(row))]);
    let mut ops = Vec::new();
    plan_table(&mut ops, schema, &config.table_name, &config.id_column, Some(content), true, true, false);
    ops
}

/// Parses stored JSON text: empty text and `null` are empty storage.
pub(crate) fn parse_stored_json(text: &str) -> Result<Option<Content>, Error> {
    let text = text.trim();
    if text.is_empty() || text == "null" {
        return Ok(None);
    }
    Ok(Some(Content::from_json(text)?))
}

/// An id read from a row id column: text as is, a number as JavaScript prints whole numbers.
pub(crate) fn id_from_cell(cell: Cell) -> Option<Id> {
    match cell {
        Cell::Null => None,
        Cell::String(s) => Some(s),
        Cell::Bool(b) => Some(b.to_string()),
        Cell::Number(n) => Some(crate::cell::whole(n).map_or_else(|| n.to_string(), |i| i.to_string())),
    }
}

/// How a database writes its SQL.
pub(crate) struct Dialect {
    /// The declared type of every column, with its leading space (`""` in SQLite: no affinity,
    /// so values keep their type).
    pub(crate) column_type: &'static str,
    /// The placeholder of the `n`th parameter (from 1).
    pub(crate) placeholder: fn(usize) -> String,
    /// A subquery yielding the elements of the JSON array of text bound to this placeholder.
    pub(crate) json_array_elements: fn(&str) -> String,
}

/// Quotes an identifier.
pub(crate) fn escape_id(id: &str) -> String {
    format!("\"{}\"", id.replace('"', "\"\""))
}

/// The SQL of one planned operation, with its parameters.
pub(crate) fn render(op: &Op, dialect: &Dialect) -> (String, Vec<Cell>) {
    let ty = dialect.column_type;
    let p = dialect.placeholder;
    match op {
        Op::CreateTable { table, id_column, columns } => {
            let mut sql = format!("CREATE TABLE {}({}{ty} PRIMARY KEY", escape_id(table), escape_id(id_column));
            for column in columns {
                sql.push_str(&format!(",{}{ty}", escape_id(column)));
            }
            sql.push(')');
            (sql, Vec::new())
        }
        Op::AddColumn { table, column } => {
            (format!("ALTER TABLE {} ADD COLUMN {}{ty}", escape_id(table), escape_id(column)), Vec::new())
        }
        Op::AddIdIndex { table, id_column } => {
            let index = escape_id(&format!("{table}_{id_column}_pk"));
            (format!("CREATE UNIQUE INDEX {index} ON {}({})", escape_id(table), escape_id(id_column)), Vec::new())
        }
        Op::DropColumn { table, column } => {
            (format!("ALTER TABLE {} DROP COLUMN {}", escape_id(table), escape_id(column)), Vec::new())
        }
        Op::DropTable { table } => (format!("DROP TABLE {}", escape_id(table)), Vec::new()),
        Op::DeleteAll { table } => (format!("DELETE FROM {}", escape_id(table)), Vec::new()),
        Op::DeleteRow { table, id_column, id } => (
            format!("DELETE FROM {} WHERE {}={}", escape_id(table), escape_id(id_column), p(1)),
            vec![Cell::String(id.clone())],
        ),
        Op::DeleteRowsNotIn { table, id_column, keep } => {
            let ids = serde_json::Value::from(keep.iter().map(String::as_str).collect::<Vec<_>>()).to_string();
            let sql = format!(
                "DELETE FROM {} WHERE {} NOT IN({})",
                escape_id(table),
                escape_id(id_column),
                (dialect.json_array_elements)(&p(1))
            );
            (sql, vec![Cell::String(ids)])
        }
        Op::Upsert { table, id_column, id, cells } => {
            let mut columns = escape_id(id_column);
            let mut placeholders = p(1);
            let mut updates = Vec::with_capacity(cells.len());
            let mut params = Vec::with_capacity(cells.len() + 1);
            params.push(Cell::String(id.clone()));
            for (i, (column, cell)) in cells.iter().enumerate() {
                let column = escape_id(column);
                columns.push(',');
                columns.push_str(&column);
                placeholders.push(',');
                placeholders.push_str(&p(i + 2));
                updates.push(format!("{column}=excluded.{column}"));
                params.push(cell.clone().unwrap_or(Cell::Null));
            }
            let action =
                if updates.is_empty() { "NOTHING".to_owned() } else { format!("UPDATE SET {}", updates.join(",")) };
            let sql = format!(
                "INSERT INTO {}({columns})VALUES({placeholders})ON CONFLICT({})DO {action}",
                escape_id(table),
                escape_id(id_column),
            );
            (sql, params)
        }
    }
}
