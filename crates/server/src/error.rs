//! `ApiError`: the one place where errors become HTTP responses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_api_types::{ErrorBody, ErrorDetail};

/// An error as the API reports it: a status, a stable code and a message.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine code.
    pub code: String,
    /// Message for people.
    pub message: String,
}

impl ApiError {
    /// An error with the given parts.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError { status, code: code.to_owned(), message: message.into() }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message } };
        (self.status, axum::Json(body)).into_response()
    }
}

/// Status for a storage error: limits and bad input are the caller's (4xx); an object that had
/// to be reset is a conflict the caller may retry; engine failures are 5xx.
fn storage_status(e: &cairn_storage::Error) -> StatusCode {
    use cairn_storage::Error as E;
    match e {
        E::KeyTooLarge { .. } | E::ValueTooLarge { .. } | E::TooManyKeys { .. } | E::SqlValueTooLarge { .. } => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        E::SqlTooLong { .. } | E::SqlResultTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        E::SqlNotAuthorized { .. } => StatusCode::FORBIDDEN,
        E::DatabaseFull { .. } => StatusCode::INSUFFICIENT_STORAGE,
        E::ConstraintAtCommit { .. } => StatusCode::CONFLICT,
        e if e.is_user_error() => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<cairn_runtime::Error> for ApiError {
    fn from(e: cairn_runtime::Error) -> ApiError {
        use cairn_runtime::Error as E;
        let status = match &e {
            E::Storage(s) => storage_status(s),
            E::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            E::InvalidBookmark { .. } | E::HistoryUnavailable { .. } => StatusCode::BAD_REQUEST,
            E::HistoryDisabled => StatusCode::NOT_IMPLEMENTED,
            E::ObjectExists { .. } => StatusCode::CONFLICT,
            E::EventPanicked { .. } | E::Durability { .. } | E::Io { .. } | E::Catalog { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(code = e.code(), "request failed: {e:#}");
        }
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<cairn_storage::Error> for ApiError {
    fn from(e: cairn_storage::Error) -> ApiError {
        ApiError::from(cairn_runtime::Error::from(e))
    }
}
