//! The storage error type and its stable machine codes.

/// Errors returned by the storage engine.
///
/// Every variant has a stable machine code ([`Error::code`]) that callers and the HTTP layer
/// match on; the `Display` text is for humans and follows the wording of the Durable Objects
/// messages where one exists.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key is longer than the configured limit (UTF-8 bytes).
    #[error("Keys cannot be larger than {max} bytes. A key of size {len} was provided.")]
    KeyTooLarge {
        /// Size of the key that was given.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// A serialized value is longer than the configured limit.
    #[error("Values cannot be larger than {max} bytes. A value of size {len} was provided.")]
    ValueTooLarge {
        /// Serialized size of the value that was given.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// A batch names more keys than the configured limit.
    #[error("Maximum number of key value pairs is {max}. {len} pairs were provided.")]
    TooManyKeys {
        /// Number of keys or pairs that were given.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// `list` was given both `start` and `start_after`.
    #[error("list() cannot be called with both start and startAfter values.")]
    ListStartAndStartAfter,
    /// `list` was given a limit of zero.
    #[error("List limit must be positive.")]
    ListLimitNotPositive,
    /// A value could not be serialized or deserialized with serde.
    #[error("value for key {key:?} could not be (de)serialized: {source}")]
    Serde {
        /// The key whose value failed.
        key: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value has an unknown type tag or is not valid for the requested type.
    #[error("stored value for key {key:?} is corrupt or of another type: {reason}")]
    CorruptValue {
        /// The key whose value is unreadable.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The alarm time is not positive.
    #[error("setAlarm() cannot be called with an alarm time <= 0")]
    InvalidAlarmTime {
        /// The time that was given, in milliseconds since the epoch.
        time_ms: i64,
    },
    /// A named alarm's name is empty or longer than [`crate::MAX_ALARM_NAME_BYTES`].
    #[error("alarm name must be 1 to {max} bytes, got {len} bytes")]
    InvalidAlarmName {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `delete_all` was called inside an explicit transaction.
    #[error("Cannot call deleteAll() within a transaction")]
    DeleteAllInTransaction,
    /// An operation was attempted on a transaction after `rollback()`.
    #[error("Cannot {op} on rolled back transaction")]
    TransactionRolledBack {
        /// The operation, for example `put()`.
        op: &'static str,
    },
    /// Rolling back an outer transaction while a nested one is still open.
    #[error("Cannot roll back an outer transaction while a nested transaction is still running.")]
    NestedTransactionRunning,
    /// User SQL tried to control transactions directly.
    #[error(
        "To execute a transaction, please use the storage transaction() or transaction_sync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT statements. The API is safer because it will automatically roll back on errors, and because it interacts correctly with Cairn's automatic atomic write coalescing."
    )]
    SqlTransactionStatement,
    /// User SQL was refused by the authorizer (reserved tables, ATTACH, pragmas, functions...).
    #[error("{message}: SQLITE_AUTH")]
    SqlNotAuthorized {
        /// SQLite's message, for example `not authorized` or `access to _cairn_kv.key is prohibited`.
        message: String,
    },
    /// The number of bound parameters differs from the statement's.
    #[error("Wrong number of parameter bindings for SQL query. Expected {expected}, got {got}.")]
    SqlWrongParameterCount {
        /// Parameters the statement declares.
        expected: usize,
        /// Parameters that were given.
        got: usize,
    },
    /// Parameters were given to a multi-statement query whose non-last statement has parameters.
    #[error("When executing multiple SQL statements in a single call, only the last statement can have parameters.")]
    SqlParamsNotLast,
    /// The SQL text contained no statement.
    #[error("SQL code did not contain a statement.")]
    SqlNoStatement,
    /// The SQL text is longer than the configured limit.
    #[error("SQL statement too long: {len} bytes exceeds the limit of {max} bytes")]
    SqlTooLong {
        /// Length of the SQL text in bytes.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// More parameters than the configured limit.
    #[error("too many SQL variables: {len} exceeds the limit of {max}")]
    SqlTooManyParams {
        /// Number of parameters given.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// A string or blob parameter is longer than the configured limit.
    #[error("string or blob too big: parameter {index} is {len} bytes, the limit is {max}")]
    SqlValueTooLarge {
        /// 1-based parameter index.
        index: usize,
        /// Its size in bytes.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// A query's materialized result is larger than the configured limit.
    #[error(
        "SQL query result set is too large to fit in memory: more than {max} bytes. Add a LIMIT clause or page through the results."
    )]
    SqlResultTooLarge {
        /// The configured limit in bytes.
        max: usize,
    },
    /// `Cursor::one` found no row.
    #[error("Expected exactly one result from SQL query, but got no results.")]
    SqlNoResults,
    /// `Cursor::one` found more than one row.
    #[error("Expected exactly one result from SQL query, but got multiple results.")]
    SqlMultipleResults,
    /// The database would grow past its size limit.
    #[error("database or disk is full: SQLITE_FULL (the limit is {max} bytes)")]
    DatabaseFull {
        /// The configured limit in bytes.
        max: u64,
    },
    /// An error reported by SQLite for user SQL (syntax, constraint, type...).
    #[error("{message}")]
    Sql {
        /// SQLite's message, formatted as `{errmsg}[ at offset {n}]: SQLITE_{CODE}`.
        message: String,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// A critical SQLite error (disk full, I/O, out of memory, interrupt) rolled back the whole
    /// open event; every later operation on this object instance fails until it is reopened.
    #[error("Cannot use this object's storage after a critical SQL error; it is being reset: {message}")]
    Critical {
        /// The original error's message.
        message: String,
    },
    /// The event's transaction could not commit because constraints were violated (for example
    /// deferred foreign keys); it was rolled back and the object is reset.
    #[error(
        "Object was reset and rolled back to its last known good state because the application left the database in a state where constraints were violated: {message}"
    )]
    ConstraintAtCommit {
        /// SQLite's message.
        message: String,
    },
    /// The data file is not a Cairn object file or has a newer format.
    #[error("{path}: unsupported object file format version {found} (this build reads {supported})")]
    UnsupportedFormat {
        /// The file.
        path: String,
        /// Version found in the file.
        found: i64,
        /// Version this build understands.
        supported: i64,
    },
    /// A file offered for import is not a database an object can hold (see
    /// [`crate::import::prepare`]).
    #[error("cannot import this file: {reason}")]
    InvalidImport {
        /// The first check that failed.
        reason: String,
    },
    /// An object or namespace name is not acceptable.
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// `namespace` or `object`.
        what: &'static str,
        /// The name given (possibly truncated).
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An internal SQLite or I/O failure.
    #[error("storage failure while trying to {context}: {source}")]
    Internal {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// A file-system failure.
    #[error("I/O failure while trying to {context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The stable machine code of this error, such as `storage.key_too_large`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::KeyTooLarge { .. } => "storage.key_too_large",
            Error::ValueTooLarge { .. } => "storage.value_too_large",
            Error::TooManyKeys { .. } => "storage.too_many_keys",
            Error::ListStartAndStartAfter => "storage.list_start_and_start_after",
            Error::ListLimitNotPositive => "storage.list_limit_not_positive",
            Error::Serde { .. } => "storage.serialization",
            Error::CorruptValue { .. } => "storage.corrupt_value",
            Error::InvalidAlarmTime { .. } => "storage.invalid_alarm_time",
            Error::InvalidAlarmName { .. } => "storage.invalid_alarm_name",
            Error::DeleteAllInTransaction => "storage.delete_all_in_transaction",
            Error::TransactionRolledBack { .. } => "storage.transaction_rolled_back",
            Error::NestedTransactionRunning => "storage.nested_transaction_running",
            Error::SqlTransactionStatement => "sql.transaction_statement",
            Error::SqlNotAuthorized { .. } => "sql.not_authorized",
            Error::SqlWrongParameterCount { .. } => "sql.wrong_parameter_count",
            Error::SqlParamsNotLast => "sql.params_not_last",
            Error::SqlNoStatement => "sql.no_statement",
            Error::SqlTooLong { .. } => "sql.statement_too_long",
            Error::SqlTooManyParams { .. } => "sql.too_many_parameters",
            Error::SqlValueTooLarge { .. } => "sql.value_too_large",
            Error::SqlResultTooLarge { .. } => "sql.result_too_large",
            Error::SqlNoResults => "sql.no_results",
            Error::SqlMultipleResults => "sql.multiple_results",
            Error::DatabaseFull { .. } => "storage.database_full",
            Error::Sql { .. } => "sql.error",
            Error::Critical { .. } => "storage.critical_error",
            Error::ConstraintAtCommit { .. } => "storage.constraint_at_commit",
            Error::UnsupportedFormat { .. } => "storage.unsupported_format",
            Error::InvalidName { .. } => "storage.invalid_name",
            Error::InvalidImport { .. } => "storage.invalid_import",
            Error::Internal { .. } => "storage.internal",
            Error::Io { .. } => "storage.io",
        }
    }

    /// Whether the error is the caller's fault (bad input, a limit, a failed SQL statement)
    /// rather than a failure of the engine. The HTTP layer maps these to 4xx.
    pub fn is_user_error(&self) -> bool {
        !matches!(
            self,
            Error::Critical { .. } | Error::Internal { .. } | Error::Io { .. } | Error::UnsupportedFormat { .. }
        )
    }

    /// Whether the object instance must be closed and reopened before it is used again.
    pub fn requires_reset(&self) -> bool {
        // `DatabaseFull` rolls back the whole open event and breaks the instance, as a critical
        // error does.
        matches!(self, Error::Critical { .. } | Error::ConstraintAtCommit { .. } | Error::DatabaseFull { .. })
    }

    pub(crate) fn internal(context: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
        move |source| Error::Internal { context, source }
    }
}

/// Result alias for storage operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
