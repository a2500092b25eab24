//! The KV service's error type. Messages follow Workers KV's wording where it has one.

/// Errors of KV namespaces.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No namespace has this id.
    #[error("namespace not found: {id}")]
    NamespaceNotFound {
        /// The id asked for.
        id: String,
    },
    /// Another namespace has this title.
    #[error("a namespace with this account ID and title already exists: {title:?}")]
    TitleExists {
        /// The title asked for.
        title: String,
    },
    /// The title is empty or too long.
    #[error("invalid namespace title: {reason}")]
    InvalidTitle {
        /// What is wrong.
        reason: String,
    },
    /// An empty key.
    #[error("Key name cannot be empty.")]
    KeyEmpty,
    /// The key `.` or `..`.
    #[error("\"{key}\" is not allowed as a key name.")]
    KeyDots {
        /// The key.
        key: &'static str,
    },
    /// A key (or list prefix) longer than the limit.
    #[error("UTF-8 encoded length of {len} exceeds key length limit of {max}.")]
    KeyTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The key does not exist (or has expired).
    #[error("key not found")]
    KeyNotFound,
    /// A value over the limit.
    #[error("Value length of {len} exceeds limit of {max}.")]
    ValueTooLarge {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Metadata over the limit once serialized as JSON.
    #[error("Metadata length of {len} exceeds limit of {max}.")]
    MetadataTooLarge {
        /// Its serialized length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Metadata that is not JSON.
    #[error("metadata must be valid JSON: {reason}")]
    InvalidMetadata {
        /// The parser's complaint.
        reason: String,
    },
    /// A bad `expiration_ttl`.
    #[error("Invalid expiration_ttl of {value}. {reason}")]
    InvalidExpirationTtl {
        /// The value given.
        value: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A bad `expiration`.
    #[error("Invalid expiration of {value}. {reason}")]
    InvalidExpiration {
        /// The value given.
        value: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A list `limit` over the maximum.
    #[error("Invalid key_count_limit of {value}. Please specify an integer less than {max}.")]
    InvalidListLimit {
        /// The limit asked for.
        value: i64,
        /// The maximum.
        max: usize,
    },
    /// A list cursor this service did not produce.
    #[error("invalid list cursor")]
    InvalidCursor,
    /// Too many keys (or pairs) in one bulk request.
    #[error("{}", too_many_keys_message(op, *max))]
    TooManyKeys {
        /// `request`, `write` or `delete`.
        op: &'static str,
        /// Keys given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A bulk get of no keys.
    #[error("You must request a minimum of 1 key")]
    NoKeys,
    /// A bulk get `type` other than `text` or `json`.
    #[error("\"{value}\" is not a valid type. Use \"json\" or \"text\"")]
    InvalidBulkType {
        /// The type asked for.
        value: String,
    },
    /// A bulk get as JSON of a value that is not JSON.
    #[error("At least one of the requested keys corresponds to a non-json value")]
    NonJsonValue,
    /// A bulk get whose values add up to more than the limit.
    #[error("Total size of request exceeds the limit of {max_mb}MB")]
    BulkTooLarge {
        /// The limit in MB, as Workers KV words it.
        max_mb: String,
    },
    /// A bulk write item whose value is not valid base64.
    #[error("the value of key {key:?} is not valid base64")]
    InvalidBase64 {
        /// The key.
        key: String,
    },
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] cairn_runtime::Error),
}

/// Workers KV's wording for each bulk operation (the count given is in the error's fields).
fn too_many_keys_message(op: &str, max: usize) -> String {
    match op {
        "request" => format!("You can request a maximum of {max} keys"),
        "delete" => format!("You can delete maximum of {max} keys per request"),
        _ => format!("You can write a maximum of {max} keys per request"),
    }
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
            R::NameTaken { name } => Error::TitleExists { title: name },
            R::NotFound { id } => Error::NamespaceNotFound { id },
            R::Runtime(e) => Error::Runtime(e),
        }
    }
}

impl Error {
    /// A stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NamespaceNotFound { .. } => "kv.namespace_not_found",
            Error::TitleExists { .. } => "kv.namespace_exists",
            Error::InvalidTitle { .. } => "kv.invalid_title",
            Error::KeyEmpty | Error::KeyDots { .. } => "kv.invalid_key",
            Error::KeyTooLong { .. } => "kv.key_too_long",
            Error::KeyNotFound => "kv.key_not_found",
            Error::ValueTooLarge { .. } => "kv.value_too_large",
            Error::MetadataTooLarge { .. } => "kv.metadata_too_large",
            Error::InvalidMetadata { .. } => "kv.invalid_metadata",
            Error::InvalidExpirationTtl { .. } => "kv.invalid_expiration_ttl",
            Error::InvalidExpiration { .. } => "kv.invalid_expiration",
            Error::InvalidListLimit { .. } => "kv.invalid_limit",
            Error::InvalidCursor => "kv.invalid_cursor",
            Error::TooManyKeys { .. } => "kv.too_many_keys",
            Error::NoKeys => "kv.no_keys",
            Error::InvalidBulkType { .. } => "kv.invalid_type",
            Error::NonJsonValue => "kv.non_json_value",
            Error::BulkTooLarge { .. } => "kv.bulk_too_large",
            Error::InvalidBase64 { .. } => "kv.invalid_base64",
            Error::Runtime(e) => e.code(),
        }
    }

    /// What kind of failure this is, for protocol layers to pick a status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NamespaceNotFound { .. } | Error::KeyNotFound => ErrorKind::NotFound,
            Error::KeyTooLong { .. } => ErrorKind::KeyTooLong,
            Error::ValueTooLarge { .. } | Error::MetadataTooLarge { .. } | Error::BulkTooLarge { .. } => {
                ErrorKind::TooLarge
            }
            Error::Runtime(e) if e.is_user_error() => ErrorKind::Invalid,
            Error::Runtime(_) => ErrorKind::Internal,
            _ => ErrorKind::Invalid,
        }
    }
}

/// Broad classes of [`Error`], so a protocol layer maps them to statuses in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input (HTTP 400).
    Invalid,
    /// A namespace or key that does not exist (404).
    NotFound,
    /// A key over the length limit (414, as Workers KV answers).
    KeyTooLong,
    /// A value, metadata or request over a size limit (413).
    TooLarge,
    /// The server failed (500).
    Internal,
}

/// Result alias of the KV service.
pub type Result<T, E = Error> = std::result::Result<T, E>;
