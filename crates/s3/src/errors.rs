//! The one place where bucket errors become S3 errors (code, status, message).

use cairn_bucket::Error;
use s3s::{S3Error, S3ErrorCode};

/// The S3 error for a bucket error; the message keeps the limit and the value.
pub(crate) fn to_s3(e: Error) -> S3Error {
    use S3ErrorCode as C;
    let code = match &e {
        Error::BucketNotFound { .. } => C::NoSuchBucket,
        Error::BucketExists { .. } => C::BucketAlreadyOwnedByYou,
        Error::BucketNotEmpty { .. } => C::BucketNotEmpty,
        Error::InvalidBucketName { .. } => C::InvalidBucketName,
        Error::KeyTooLong { .. } => C::KeyTooLongError,
        Error::EntityTooLarge { .. } => C::EntityTooLarge,
        Error::EntityTooSmall { .. } => C::EntityTooSmall,
        Error::MetadataTooLarge { .. } => C::MetadataTooLarge,
        Error::InvalidMetadata { .. } | Error::InvalidInclude { .. } | Error::InvalidEtagHeader { .. } => {
            C::InvalidArgument
        }
        Error::InvalidMaxKeys { .. } | Error::InvalidPartNumber { .. } => C::InvalidArgument,
        Error::NoSuchUpload { .. } | Error::UnknownUpload { .. } => C::NoSuchUpload,
        Error::InvalidPart { .. } | Error::InvalidPartSizes { .. } | Error::DuplicatePart { .. } => C::InvalidPart,
        Error::InvalidPartOrder => C::InvalidPartOrder,
        Error::BadDigest { .. } => C::BadDigest,
        Error::InvalidDigest { .. } => C::InvalidDigest,
        Error::InvalidRange { .. } => C::InvalidRange,
        Error::IncompleteBody { .. } | Error::BodyRead { .. } => C::IncompleteBody,
        Error::Runtime(r) if r.is_user_error() => C::InvalidRequest,
        _ => C::InternalError,
    };
    if code == C::InternalError {
        tracing::error!(error = %e, code = e.code(), "S3 request failed");
    }
    let mut err = S3Error::with_message(code, e.to_string());
    err.set_source(Box::new(e));
    err
}
