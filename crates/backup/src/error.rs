//! Errors of backup and restore.

/// What went wrong in a backup or a restore. Every variant names what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A target that cannot be used as written.
    #[error("backup.invalid_target: {0}")]
    InvalidTarget(String),
    /// The target refused or failed a request.
    #[error("backup.target_failed: {context}: {source}")]
    Target {
        /// What the backup was doing.
        context: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// Local file trouble.
    #[error("backup.io: {context}: {source}")]
    Io {
        /// What the backup was doing.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The runtime failed (copying objects, opening the restored directory).
    #[error(transparent)]
    Runtime(#[from] cairn_runtime::Error),
    /// What the target holds is not a usable backup: a checksum mismatch, a torn chunk, a
    /// missing file, or no snapshot old enough.
    #[error("backup.corrupt: {0}")]
    Corrupt(String),
    /// Restoring into a directory that already holds data.
    #[error("backup.not_empty: the directory {0} already holds data; restore into an empty or new directory")]
    NotEmpty(String),
}

impl Error {
    /// The stable error code (the part before the colon in the message).
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidTarget(_) => "backup.invalid_target",
            Error::Target { .. } => "backup.target_failed",
            Error::Io { .. } => "backup.io",
            Error::Runtime(e) => e.code(),
            Error::Corrupt(_) => "backup.corrupt",
            Error::NotEmpty(_) => "backup.not_empty",
        }
    }

    pub(crate) fn target(context: impl Into<String>) -> impl FnOnce(object_store::Error) -> Error {
        let context = context.into();
        move |source| Error::Target { context, source }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
