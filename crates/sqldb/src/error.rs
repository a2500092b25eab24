//! The SQL database service's error type. Messages follow D1's wording where it has one.

/// Errors of SQL databases.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No database has this uuid or name.
    #[error("The database {id} could not be found")]
    DatabaseNotFound {
        /// The uuid or name asked for.
        id: String,
    },
    /// Another database has this name.
    #[error("A database with the name {name:?} already exists")]
    NameExists {
        /// The name asked for.
        name: String,
    },
    /// An empty or overlong name.
    #[error("invalid database name {name:?}: it must be 1 to 256 bytes and not blank")]
    InvalidName {
        /// The name (truncated).
        name: String,
    },
    /// No statement to run.
    #[error("No SQL statements detected.")]
    NoStatements,
    /// A parameter of a type D1 cannot bind.
    #[error("D1_TYPE_ERROR: Type '{kind}' not supported for value '{value}'")]
    UnsupportedType {
        /// Its JavaScript type (`object` for objects and arrays).
        kind: &'static str,
        /// The value, as JavaScript's `String(value)` shows it.
        value: String,
    },
    /// A migration file could not be read or named.
    #[error("migration error: {message}")]
    Migration {
        /// What went wrong.
        message: String,
    },
    /// A string that is not a bookmark.
    #[error("{message}")]
    InvalidBookmark {
        /// What is wrong.
        message: String,
    },
    /// The runtime (or the SQL engine) refused or failed.
    #[error(transparent)]
    Runtime(#[from] cairn_runtime::Error),
}

impl From<cairn_storage::Error> for Error {
    fn from(e: cairn_storage::Error) -> Self {
        Error::Runtime(cairn_runtime::Error::Storage(e))
    }
}

impl From<cairn_runtime::registry::RegistryError> for Error {
    fn from(e: cairn_runtime::registry::RegistryError) -> Self {
        use cairn_runtime::registry::RegistryError as R;
        match e {
            R::NameTaken { name } => Error::NameExists { name },
            R::NotFound { id } => Error::DatabaseNotFound { id },
            R::Runtime(e) => Error::Runtime(e),
        }
    }
}

impl Error {
    /// A stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::DatabaseNotFound { .. } => "sql.database_not_found",
            Error::NameExists { .. } => "sql.database_exists",
            Error::InvalidName { .. } => "sql.invalid_name",
            Error::NoStatements => "sql.no_statement",
            Error::UnsupportedType { .. } => "sql.unsupported_type",
            Error::Migration { .. } => "sql.migration",
            Error::InvalidBookmark { .. } => "sql.invalid_bookmark",
            Error::Runtime(e) => e.code(),
        }
    }

    /// What kind of failure this is, for protocol layers to pick a status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::DatabaseNotFound { .. } => ErrorKind::NotFound,
            Error::Runtime(e) if e.is_user_error() => ErrorKind::Invalid,
            Error::Runtime(_) => ErrorKind::Internal,
            _ => ErrorKind::Invalid,
        }
    }
}

/// Broad classes of [`Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input, including SQL errors (HTTP 400).
    Invalid,
    /// A database that does not exist (404).
    NotFound,
    /// The server failed (500).
    Internal,
}

/// Result alias of the SQL database service.
pub type Result<T, E = Error> = std::result::Result<T, E>;
