//! The runtime's error type.

/// Errors returned by the runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The storage engine refused or failed the operation.
    #[error(transparent)]
    Storage(#[from] cairn_storage::Error),
    /// The runtime is shutting down and takes no new events.
    #[error("the runtime is shutting down")]
    ShuttingDown,
    /// The event's code panicked; its writes were rolled back.
    #[error("the event panicked and its writes were rolled back: {message}")]
    EventPanicked {
        /// The panic message, if it was a string.
        message: String,
    },
    /// Making commits durable failed. The runtime refuses further writes (it is poisoned):
    /// after a failed fsync the state of the disk is unknown, so restart the process.
    #[error("durability failure ({context}): {message}; the runtime refuses writes until restarted")]
    Durability {
        /// What failed.
        context: &'static str,
        /// The I/O error.
        message: String,
    },
    /// An I/O failure outside the storage engine (data directory, catalog).
    #[error("I/O failure while trying to {context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The commit log could not be replayed: a gap between an object's file and its log, or a
    /// replay that does not end where the log does. The data directory needs attention.
    #[error("recovery from the commit log failed: {message}")]
    Recovery {
        /// What is inconsistent.
        message: String,
    },
    /// History cannot produce the requested commit: older than what it keeps, or missing.
    #[error("no history for commit {seq} of object {object}: {reason}")]
    HistoryUnavailable {
        /// `namespace/name`.
        object: String,
        /// The commit asked for.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// A bookmark or time that cannot be used for this object (ahead of its latest commit, or
    /// outside the retention window).
    #[error("{message}")]
    InvalidBookmark {
        /// What is wrong, naming the value and the limit.
        message: String,
    },
    /// Point-in-time recovery needs history, which is off (or durability is `os`).
    #[error(
        "point-in-time recovery is not available: history is off (it needs history enabled and durability = fsync)"
    )]
    HistoryDisabled,
    /// A fork's target already exists.
    #[error("object {object} already exists; a fork needs a new object")]
    ObjectExists {
        /// `namespace/name`.
        object: String,
    },
    /// The node catalog failed.
    #[error("catalog failure while trying to {context}: {source}")]
    Catalog {
        /// What was being done.
        context: &'static str,
        /// The error.
        #[source]
        source: rusqlite::Error,
    },
}

impl Error {
    /// A stable machine code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Storage(e) => e.code(),
            Error::ShuttingDown => "runtime.shutting_down",
            Error::EventPanicked { .. } => "runtime.event_panicked",
            Error::Durability { .. } => "runtime.durability_failure",
            Error::Io { .. } => "runtime.io",
            Error::Catalog { .. } => "runtime.catalog",
            Error::Recovery { .. } => "runtime.recovery_failed",
            Error::HistoryUnavailable { .. } => "runtime.history_unavailable",
            Error::InvalidBookmark { .. } => "runtime.invalid_bookmark",
            Error::HistoryDisabled => "runtime.history_disabled",
            Error::ObjectExists { .. } => "runtime.object_exists",
        }
    }

    /// Whether the caller's input caused the error (HTTP 4xx rather than 5xx).
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Storage(e) => e.is_user_error(),
            Error::HistoryUnavailable { .. }
            | Error::InvalidBookmark { .. }
            | Error::HistoryDisabled
            | Error::ObjectExists { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn durability(context: &'static str, e: &std::io::Error) -> Error {
        Error::Durability { context, message: e.to_string() }
    }

    /// A copy of the error for delivering one failure to several waiters.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Durability { context, message } => Error::Durability { context, message: message.clone() },
            Error::ShuttingDown => Error::ShuttingDown,
            other => Error::Durability { context: "commit", message: other.to_string() },
        }
    }
}

/// Result alias for runtime operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
