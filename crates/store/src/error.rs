//! The crate's error type. Store writes never fail (invalid writes are ignored, as in TinyBase);
//! errors come from schemas that are refused, JSON that is not store content, and persisters.

use std::path::PathBuf;

use crate::cell::CellType;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of stores and persisters. Each has a stable machine code, [`Error::code`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A schema's default is not of its cell's type.
    #[error("the default of {path} in the schema is not a {expected}")]
    SchemaDefaultType {
        /// `table.cell`, or the value id.
        path: String,
        /// The declared type.
        expected: CellType,
    },
    /// A schema's default is null but the cell does not allow null.
    #[error("the default of {path} in the schema is null but {path} does not allow null")]
    SchemaNullDefault {
        /// `table.cell`, or the value id.
        path: String,
    },
    /// A table of a tables schema has no cells.
    #[error("table {table:?} of the schema has no cells")]
    SchemaEmptyTable {
        /// The table id.
        table: String,
    },
    /// Text that is not store content (or changes) in TinyBase's JSON shape: invalid JSON, another
    /// shape, or a cell that is an array or an object.
    #[error("not store content in TinyBase's JSON shape: {0}")]
    InvalidJson(#[from] serde_json::Error),
    /// A file operation failed.
    #[error("cannot {operation} {path}: {source}")]
    Io {
        /// What was being done: `read`, `write`, `rename`...
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite refused or failed a statement.
    #[error("SQLite failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A database column holds something no cell can hold (a blob, an infinite number, text that
    /// is not UTF-8).
    #[error("column {column:?} of table {table:?} holds {found}, which no cell can hold")]
    UnsupportedSqlValue {
        /// The SQL table.
        table: String,
        /// The column.
        column: String,
        /// What it holds.
        found: &'static str,
    },
    /// A tabular mapping uses the values table for a store table.
    #[error("table {table:?} holds the store's values and cannot also hold a store table")]
    ValuesTableMapped {
        /// The SQL table name.
        table: String,
    },
    /// The persister was destroyed (or its task ended).
    #[error("the persister was destroyed")]
    Destroyed,
    /// A persister was created outside a tokio runtime.
    #[error("a persister must be created inside a tokio runtime")]
    NoRuntime,
    /// A blocking storage task panicked or was cancelled.
    #[error("a blocking storage task failed: {0}")]
    TaskFailed(#[from] tokio::task::JoinError),
    /// A custom storage back end failed.
    #[error("storage back end failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// PostgreSQL refused or failed a statement, or the connection failed.
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL failed: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// A Cairn object (embedded, through the runtime) refused or failed an event.
    #[cfg(feature = "cairn")]
    #[error("the Cairn runtime failed: {0}")]
    CairnRuntime(#[from] cairn_runtime::Error),
    /// A Cairn server (remote) refused a request, or could not be reached.
    #[cfg(feature = "cairn")]
    #[error("the Cairn server failed: {0}")]
    CairnRemote(#[from] cairn_client::Error),
    /// A key under the store's prefix in a Cairn object that is not in TinyBase's room layout:
    /// a `t` key whose rest is not three JSON strings.
    #[error("stored key {key:?} is not a cell key: after `t` it must be three JSON strings")]
    InvalidStoredKey {
        /// The key.
        key: String,
    },
    /// A stored cell or value that no cell can hold (raw bytes, a JSON array or object).
    #[error("stored key {key:?} holds {found}, which no cell can hold")]
    InvalidStoredValue {
        /// The key.
        key: String,
        /// What it holds.
        found: &'static str,
    },
    /// Cells or values too large for the storage's limits (the key or the value) were not
    /// written; the rest of the save was, and what was stored under their keys stays.
    #[error("{count} cell(s) or value(s) were not written, being too large for the storage (first: {key:?}: {reason})")]
    TooLarge {
        /// The key of the first one.
        key: String,
        /// Which limit the first one exceeds.
        reason: String,
        /// How many were not written.
        count: usize,
    },
}

impl Error {
    /// A stable machine code, `store.{what}`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::SchemaDefaultType { .. } => "store.schema_default_type",
            Error::SchemaNullDefault { .. } => "store.schema_null_default",
            Error::SchemaEmptyTable { .. } => "store.schema_empty_table",
            Error::InvalidJson(_) => "store.invalid_json",
            Error::Io { .. } => "store.io",
            Error::Sqlite(_) => "store.sqlite",
            Error::UnsupportedSqlValue { .. } => "store.unsupported_sql_value",
            Error::ValuesTableMapped { .. } => "store.values_table_mapped",
            Error::Destroyed => "store.destroyed",
            Error::NoRuntime => "store.no_runtime",
            Error::TaskFailed(_) => "store.task_failed",
            Error::Backend(_) => "store.backend",
            #[cfg(feature = "postgres")]
            Error::Postgres(_) => "store.postgres",
            #[cfg(feature = "cairn")]
            Error::CairnRuntime(_) => "store.cairn_runtime",
            #[cfg(feature = "cairn")]
            Error::CairnRemote(_) => "store.cairn_remote",
            Error::InvalidStoredKey { .. } => "store.invalid_stored_key",
            Error::InvalidStoredValue { .. } => "store.invalid_stored_value",
            Error::TooLarge { .. } => "store.too_large",
        }
    }

    pub(crate) fn io(operation: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io { operation, path: path.into(), source }
    }
}
