//! Cloudflare's REST API v4 for Workers KV and D1, under `/client/v4`, so that Cloudflare's
//! clients (the `cloudflare` SDKs, scripts written against the REST API) work unchanged with a
//! `base_url` pointing at Cairn.
//!
//! Every answer is Cloudflare's envelope: `{"success", "errors", "messages", "result"}` (plus
//! `result_info` for lists); errors carry Cloudflare's numeric code where one is known, and
//! Cairn's stable code as `cairn_code`. The account id in paths is accepted and ignored: a
//! Cairn server is one account. Requests authenticate with the server's bearer tokens; a token
//! limited to a list of namespaces reaches the KV namespaces and databases whose id or name is
//! in that list (and cannot create new ones).

pub(crate) mod d1;
pub(crate) mod kv;
pub(crate) mod transfers;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;

use crate::error::ApiError;
use crate::state::{Access, AppState};

/// The `/client/v4` router (to be nested).
pub(crate) fn router(state: &AppState) -> Router<AppState> {
    let ns = "/accounts/{account_id}/storage/kv/namespaces";
    let db = "/accounts/{account_id}/d1/database";
    Router::new()
        .route(ns, get(kv::list_namespaces).post(kv::create_namespace))
        .route(
            &format!("{ns}/{{namespace_id}}"),
            get(kv::get_namespace).put(kv::rename_namespace).delete(kv::delete_namespace),
        )
        .route(&format!("{ns}/{{namespace_id}}/keys"), get(kv::list_keys))
        .route(
            &format!("{ns}/{{namespace_id}}/values/{{*key}}"),
            get(kv::get_value).put(kv::put_value).delete(kv::delete_value),
        )
        .route(&format!("{ns}/{{namespace_id}}/metadata/{{*key}}"), get(kv::get_metadata))
        .route(&format!("{ns}/{{namespace_id}}/bulk"), put(kv::bulk_put).delete(kv::bulk_delete))
        .route(&format!("{ns}/{{namespace_id}}/bulk/delete"), post(kv::bulk_delete))
        .route(&format!("{ns}/{{namespace_id}}/bulk/get"), post(kv::bulk_get))
        .route(db, get(d1::list_databases).post(d1::create_database))
        .route(
            &format!("{db}/{{database_id}}"),
            get(d1::get_database).put(d1::update_database).patch(d1::update_database).delete(d1::delete_database),
        )
        .route(&format!("{db}/{{database_id}}/query"), post(d1::query))
        .route(&format!("{db}/{{database_id}}/raw"), post(d1::raw))
        .route(&format!("{db}/{{database_id}}/export"), post(d1::export))
        .route(&format!("{db}/{{database_id}}/import"), post(d1::import))
        .route(&format!("{db}/{{database_id}}/time_travel/bookmark"), get(d1::time_travel_bookmark))
        .route(&format!("{db}/{{database_id}}/time_travel/restore"), post(d1::time_travel_restore))
        .route("/_cairn/transfers/{token}", get(transfers::download).put(transfers::upload))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.inner.cloudflare_max_body_bytes))
}

async fn not_found() -> CfError {
    CfError::new(StatusCode::NOT_FOUND, 7003, "http.not_found", "No route for that URI")
}

async fn method_not_allowed() -> CfError {
    CfError::new(StatusCode::METHOD_NOT_ALLOWED, 10405, "http.method_not_allowed", "Method not allowed for this route")
}

/// An error in Cloudflare's envelope.
#[derive(Debug)]
pub(crate) struct CfError {
    status: StatusCode,
    code: u32,
    cairn_code: String,
    message: String,
}

impl CfError {
    pub(crate) fn new(status: StatusCode, code: u32, cairn_code: &str, message: impl Into<String>) -> CfError {
        CfError { status, code, cairn_code: cairn_code.to_owned(), message: message.into() }
    }

    pub(crate) fn bad_request(code: u32, cairn_code: &str, message: impl Into<String>) -> CfError {
        CfError::new(StatusCode::BAD_REQUEST, code, cairn_code, message)
    }
}

impl IntoResponse for CfError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = %self.cairn_code, "request failed: {}", self.message);
        }
        let body = serde_json::json!({
            "success": false,
            "errors": [{"code": self.code, "message": self.message, "cairn_code": self.cairn_code}],
            "messages": [],
            "result": null,
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        // Cloudflare's SDKs retry 409 and 5xx; a refusal that will not change must not be.
        if self.status.is_client_error() {
            response.headers_mut().insert("x-should-retry", HeaderValue::from_static("false"));
        }
        response
    }
}

impl From<ApiError> for CfError {
    fn from(e: ApiError) -> CfError {
        let code = match e.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => 10000,
            StatusCode::NOT_FOUND => 7003,
            StatusCode::PAYLOAD_TOO_LARGE => 10024,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => 10026,
            s if s.is_server_error() => 10001,
            _ => 10026,
        };
        CfError { status: e.status, code, cairn_code: e.code, message: e.message }
    }
}

impl From<cairn_runtime::Error> for CfError {
    fn from(e: cairn_runtime::Error) -> CfError {
        CfError::from(ApiError::from(e))
    }
}

impl From<cairn_kv::Error> for CfError {
    fn from(e: cairn_kv::Error) -> CfError {
        use cairn_kv::{Error as E, ErrorKind as K};
        if let E::Runtime(r) = e {
            return CfError::from(r);
        }
        let status = match e.kind() {
            K::NotFound => StatusCode::NOT_FOUND,
            K::KeyTooLong => StatusCode::URI_TOO_LONG,
            K::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            K::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let code = match &e {
            E::KeyNotFound => 10009,
            E::NamespaceNotFound { .. } => 10013,
            E::TitleExists { .. } => 10014,
            E::InvalidTitle { .. } => 10019,
            E::KeyEmpty | E::KeyDots { .. } | E::KeyTooLong { .. } => 10020,
            E::ValueTooLarge { .. } | E::MetadataTooLarge { .. } | E::BulkTooLarge { .. } => 10024,
            E::InvalidListLimit { .. } => 10028,
            E::InvalidExpiration { .. } | E::InvalidExpirationTtl { .. } => 10033,
            E::InvalidMetadata { .. } => 10032,
            _ => 10026,
        };
        let message = match &e {
            // Cloudflare words these as `operation: 'reason'`.
            E::KeyNotFound => "get: 'key not found'".to_owned(),
            E::NamespaceNotFound { .. } => "namespace not found".to_owned(),
            other => other.to_string(),
        };
        CfError::new(status, code, e.code(), message)
    }
}

impl From<cairn_sqldb::Error> for CfError {
    fn from(e: cairn_sqldb::Error) -> CfError {
        use cairn_sqldb::{Error as E, ErrorKind as K};
        let status = match e.kind() {
            K::NotFound => StatusCode::NOT_FOUND,
            K::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let code = match &e {
            E::DatabaseNotFound { .. } => 7404,
            E::NameExists { .. } => 7502,
            E::InvalidName { .. } => 7400,
            _ if status.is_server_error() => 7000,
            _ => 7500,
        };
        CfError::new(status, code, e.code(), e.to_string())
    }
}

/// A success envelope around `result`.
pub(crate) fn envelope(result: impl Serialize) -> Response {
    axum::Json(serde_json::json!({"success": true, "errors": [], "messages": [], "result": result})).into_response()
}

/// A success envelope with `result_info`.
pub(crate) fn envelope_with_info(result: impl Serialize, info: serde_json::Value) -> Response {
    axum::Json(serde_json::json!({
        "success": true, "errors": [], "messages": [], "result": result, "result_info": info,
    }))
    .into_response()
}

/// Checks the bearer token for `access` to a KV namespace or database known by `id` and
/// `name`; `None` means an operation on the collection (listing, creating).
pub(crate) fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    resource: Option<(&str, &str)>,
    access: Access,
) -> Result<(), CfError> {
    let Some(token) = state.token(headers)? else { return Ok(()) };
    if token.read_only && access == Access::Write {
        return Err(CfError::new(StatusCode::FORBIDDEN, 10000, "http.forbidden", "this token may only read"));
    }
    let allowed = match (resource, &token.namespaces) {
        (_, None) => true,
        (_, Some(list)) if list.iter().any(|n| n == "*") => true,
        (Some((id, name)), Some(list)) => list.iter().any(|n| n == id || n == name),
        // A scoped token sees only its own resources in lists; it may not create.
        (None, Some(_)) => access == Access::Read,
    };
    if !allowed {
        return Err(CfError::new(
            StatusCode::FORBIDDEN,
            10000,
            "http.forbidden",
            "this token may not use this resource",
        ));
    }
    Ok(())
}

/// Whether a scoped token may see a resource in a list.
pub(crate) fn visible(state: &AppState, headers: &HeaderMap, id: &str, name: &str) -> bool {
    match state.token(headers) {
        Ok(Some(token)) => token.allows_namespace(id) || token.allows_namespace(name),
        Ok(None) => true,
        Err(_) => false,
    }
}

/// Page parameters of Cloudflare's paginated lists: 1-based `page`, `per_page` items.
pub(crate) fn page_bounds(page: Option<u64>, per_page: Option<u64>, default: u64, max: u64) -> (u64, u64) {
    let page = page.unwrap_or(1).max(1);
    let per_page = per_page.unwrap_or(default).clamp(1, max);
    (page, per_page)
}

/// One page of `items` with Cloudflare's `result_info`.
pub(crate) fn paged<T: Serialize>(items: Vec<T>, page: u64, per_page: u64) -> Response {
    let total = items.len() as u64;
    let start = usize::try_from((page - 1).saturating_mul(per_page)).unwrap_or(usize::MAX);
    let slice: Vec<T> = items.into_iter().skip(start).take(usize::try_from(per_page).unwrap_or(usize::MAX)).collect();
    let info = serde_json::json!({
        "page": page, "per_page": per_page, "count": slice.len(), "total_count": total,
        "total_pages": total.div_ceil(per_page),
    });
    envelope_with_info(slice, info)
}

/// The request's `scheme://host` for URLs the client must call back (exports, uploads).
pub(crate) fn origin(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
    let scheme = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).unwrap_or("http");
    format!("{scheme}://{host}")
}

/// Parses a JSON body leniently about its content type (the SDKs always send JSON), with
/// errors in the envelope.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, CfError> {
    serde_json::from_slice(body).map_err(|e| {
        CfError::bad_request(10026, "http.invalid_json", format!("malformed JSON in the request body: {e}"))
    })
}

/// Reads a body, turning axum's rejection into the envelope.
pub(crate) fn body_bytes(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<axum::body::Bytes, CfError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            CfError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                10024,
                "http.body_too_large",
                "the request body is larger than cloudflare_max_body_bytes",
            )
        } else {
            CfError::bad_request(10026, "http.invalid_body", e.body_text())
        }
    })
}

/// Extracts path parameters, with errors in the envelope under Cloudflare `code`.
pub(crate) fn path<T>(
    p: Result<axum::extract::Path<T>, axum::extract::rejection::PathRejection>,
    code: u32,
) -> Result<T, CfError> {
    p.map(|axum::extract::Path(v)| v).map_err(|e| CfError::bad_request(code, "http.invalid_path", e.body_text()))
}

/// Parses the query string, with errors in the envelope.
pub(crate) fn query<T>(
    q: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, CfError> {
    q.map(|axum::extract::Query(v)| v).map_err(|e| CfError::bad_request(10026, "http.invalid_query", e.body_text()))
}
