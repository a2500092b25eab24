//! The bucket service's error type. Messages follow R2's wording (spec §9.2) where it has one,
//! and every variant carries R2's numeric code and a stable Cairn code.

/// Errors of buckets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No bucket has this name.
    #[error("The specified bucket does not exist: {name:?}")]
    BucketNotFound {
        /// The name asked for.
        name: String,
    },
    /// A bucket with this name exists already.
    #[error("A bucket named {name:?} already exists")]
    BucketExists {
        /// The name asked for.
        name: String,
    },
    /// The bucket still holds objects.
    #[error("The bucket you tried to delete is not empty: {name:?} holds {objects} object(s)")]
    BucketNotEmpty {
        /// The bucket.
        name: String,
        /// How many objects it holds (at least).
        objects: u64,
    },
    /// A bucket name that breaks the naming rules.
    #[error("The specified bucket name is not valid: {name:?} ({reason})")]
    InvalidBucketName {
        /// The name given.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// An object key longer than the limit.
    #[error("The specified object name is not valid. (key of {len} bytes exceeds the limit of {max})")]
    KeyTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A body over the object size limit.
    #[error("Your proposed upload exceeds the maximum allowed object size. ({len} bytes > {max})")]
    EntityTooLarge {
        /// The size (or the size received so far).
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A multipart part (not the last) under the minimum part size.
    #[error(
        "Your proposed upload is smaller than the minimum allowed object size. \
         (part {part_number} has {len} bytes, the minimum is {min})"
    )]
    EntityTooSmall {
        /// The part.
        part_number: u32,
        /// Its size.
        len: u64,
        /// The minimum.
        min: u64,
    },
    /// Custom metadata over the limit.
    #[error("Your metadata headers exceed the maximum allowed metadata size. ({len} > {max})")]
    MetadataTooLarge {
        /// Its size as R2 counts it.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Metadata that cannot be stored (for example a name that is not a valid header name).
    #[error("Metadata missing or invalid: {reason}")]
    InvalidMetadata {
        /// What is wrong.
        reason: String,
    },
    /// A list limit outside 1..=max.
    #[error("MaxKeys params must be positive integer <= {max}. (got {value})")]
    InvalidMaxKeys {
        /// The value given.
        value: i64,
        /// The maximum.
        max: usize,
    },
    /// An `include` value of list that is not `httpMetadata` or `customMetadata`.
    #[error("Unsupported include value {value}")]
    InvalidInclude {
        /// The value given.
        value: String,
    },
    /// An unknown, completed or aborted multipart upload (R2 10024).
    #[error("The specified multipart upload does not exist. (upload id {upload_id:?})")]
    NoSuchUpload {
        /// The upload id.
        upload_id: String,
    },
    /// A part that was never uploaded, or whose etag is not the latest one (R2 10025).
    #[error("One or more of the specified parts could not be found. (part {part_number})")]
    InvalidPart {
        /// The first offending part number.
        part_number: u32,
    },
    /// Parts of unequal sizes or a last part larger than the others (R2 10048).
    #[error("There was a problem with the multipart upload. ({reason})")]
    InvalidPartSizes {
        /// What is wrong.
        reason: String,
    },
    /// Parts not listed in ascending order (S3's rule).
    #[error("The list of parts was not in ascending order. Parts must be ordered by part number.")]
    InvalidPartOrder,
    /// A part number outside 1..=10000.
    #[error("Part number must be between 1 and {max} (inclusive). Actual value was: {value}")]
    InvalidPartNumber {
        /// The value given.
        value: i64,
        /// The largest part number.
        max: u32,
    },
    /// The same part number listed twice in a completion.
    #[error("We encountered an internal error. Please try again. (part {part_number} is listed twice)")]
    DuplicatePart {
        /// The part number.
        part_number: u32,
    },
    /// An upload id that was never created, or one created for another key (R2 10001).
    #[error("We encountered an internal error. Please try again. (unknown upload id {upload_id:?})")]
    UnknownUpload {
        /// The upload id.
        upload_id: String,
    },
    /// A body whose digest is not the one given (R2 10037).
    #[error(
        "The {alg} checksum you specified did not match what we received.\n\
         You provided a {alg} checksum with value: {expected}\nActual {alg} was: {actual}"
    )]
    BadDigest {
        /// The algorithm's name (`MD5`, `SHA-256`, `CRC32`, ...).
        alg: &'static str,
        /// The digest given, hex.
        expected: String,
        /// The digest of the body, hex.
        actual: String,
    },
    /// A digest given in the wrong shape (wrong length, not hex or base64).
    #[error("{alg} is {expected_len} hex characters, not {len}")]
    InvalidDigest {
        /// The algorithm's name.
        alg: &'static str,
        /// The number of hex characters the digest needs.
        expected_len: usize,
        /// What was given.
        len: usize,
    },
    /// A range that selects no byte of the object (R2 10039).
    #[error("The requested range is not satisfiable (object size {size})")]
    InvalidRange {
        /// The object's size.
        size: u64,
    },
    /// An `If-Match`/`If-None-Match` header that is not a list of etags.
    #[error("Invalid ETag in {header} header: {value:?}")]
    InvalidEtagHeader {
        /// The header.
        header: &'static str,
        /// Its value.
        value: String,
    },
    /// The body ended before its declared length, or ran past it.
    #[error(
        "You did not provide the number of bytes specified by the Content-Length HTTP header ({expected} declared, {received} received)"
    )]
    IncompleteBody {
        /// The declared length.
        expected: u64,
        /// What arrived.
        received: u64,
    },
    /// The body stream failed (the client went away).
    #[error("reading the request body failed: {reason}")]
    BodyRead {
        /// The stream's error.
        reason: String,
    },
    /// A file of the blob store failed.
    #[error("We encountered an internal error. Please try again. (blob store: {0})")]
    Io(#[from] std::io::Error),
    /// The runtime failed.
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
            R::NameTaken { name } => Error::BucketExists { name },
            R::NotFound { id } => Error::BucketNotFound { name: id },
            R::Runtime(e) => Error::Runtime(e),
        }
    }
}

impl Error {
    /// A stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BucketNotFound { .. } => "bucket.not_found",
            Error::BucketExists { .. } => "bucket.exists",
            Error::BucketNotEmpty { .. } => "bucket.not_empty",
            Error::InvalidBucketName { .. } => "bucket.invalid_name",
            Error::KeyTooLong { .. } => "bucket.invalid_key",
            Error::EntityTooLarge { .. } => "bucket.entity_too_large",
            Error::EntityTooSmall { .. } => "bucket.entity_too_small",
            Error::MetadataTooLarge { .. } => "bucket.metadata_too_large",
            Error::InvalidMetadata { .. } => "bucket.invalid_metadata",
            Error::InvalidMaxKeys { .. } => "bucket.invalid_max_keys",
            Error::InvalidInclude { .. } => "bucket.invalid_include",
            Error::NoSuchUpload { .. } => "bucket.no_such_upload",
            Error::InvalidPart { .. } => "bucket.invalid_part",
            Error::InvalidPartSizes { .. } => "bucket.invalid_part_sizes",
            Error::InvalidPartOrder => "bucket.invalid_part_order",
            Error::InvalidPartNumber { .. } => "bucket.invalid_part_number",
            Error::DuplicatePart { .. } => "bucket.duplicate_part",
            Error::UnknownUpload { .. } => "bucket.unknown_upload",
            Error::BadDigest { .. } => "bucket.bad_digest",
            Error::InvalidDigest { .. } => "bucket.invalid_digest",
            Error::InvalidRange { .. } => "bucket.invalid_range",
            Error::InvalidEtagHeader { .. } => "bucket.invalid_etag",
            Error::IncompleteBody { .. } => "bucket.incomplete_body",
            Error::BodyRead { .. } => "bucket.body_read",
            Error::Io(_) => "bucket.io",
            Error::Runtime(e) => e.code(),
        }
    }

    /// R2's numeric error code (spec §9.2), where R2 has one.
    pub fn r2_code(&self) -> Option<u32> {
        Some(match self {
            Error::KeyTooLong { .. } => 10020,
            Error::EntityTooLarge { .. } => 100100,
            Error::EntityTooSmall { .. } => 10011,
            Error::MetadataTooLarge { .. } => 10012,
            Error::InvalidMetadata { .. } => 10029,
            Error::InvalidMaxKeys { .. } => 10022,
            Error::NoSuchUpload { .. } => 10024,
            Error::InvalidPart { .. } => 10025,
            Error::InvalidPartSizes { .. } => 10048,
            Error::BadDigest { .. } => 10037,
            Error::InvalidRange { .. } => 10039,
            Error::DuplicatePart { .. } | Error::UnknownUpload { .. } | Error::Io(_) | Error::Runtime(_) => 10001,
            _ => return None,
        })
    }

    /// Whether the caller is at fault (as opposed to the server).
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Io(_) => false,
            Error::Runtime(e) => e.is_user_error(),
            _ => true,
        }
    }
}

/// Result alias of the bucket service.
pub type Result<T, E = Error> = std::result::Result<T, E>;
