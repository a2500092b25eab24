//! `/v1/buckets`: buckets over Cairn's own HTTP API (bearer tokens, JSON errors), used by the
//! `cairn bucket` commands. Bodies stream both ways; S3 clients use the S3 listener instead.
//!
//! - `GET /v1/buckets`; `PUT|DELETE /v1/buckets/{bucket}`
//! - `GET /v1/buckets/{bucket}/objects?prefix=&delimiter=&cursor=&start_after=&limit=`
//! - `PUT|GET|HEAD|DELETE /v1/buckets/{bucket}/objects/{*key}`: `Content-Type` and the other
//!   standard headers are the object's HTTP metadata, `x-cairn-meta-{name}` its custom metadata;
//!   `Content-MD5`, `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`
//!   and `Range` work as in S3.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use base64::Engine as _;
use cairn_bucket::{
    ChecksumAlgorithm, Conditions, GetOptions, GetOutcome, HttpMetadata, ListOptions, Object, PutOptions, RangeSpec,
    StageOptions,
};
use futures_util::TryStreamExt as _;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::state::{Access, AppState};

/// Custom metadata travels in headers with this prefix.
const META_PREFIX: &str = "x-cairn-meta-";

/// The bucket routes, without a body size limit (objects are streamed).
pub(crate) fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/v1/buckets", get(list_buckets))
        .route("/v1/buckets/{bucket}", put(create_bucket).delete(delete_bucket))
        .route("/v1/buckets/{bucket}/objects", get(list_objects))
        .route("/v1/buckets/{bucket}/objects/{*key}", get(get_object).put(put_object).delete(delete_object))
        .layer(DefaultBodyLimit::disable())
}

impl From<cairn_bucket::Error> for ApiError {
    fn from(e: cairn_bucket::Error) -> ApiError {
        use cairn_bucket::Error as E;
        let status = match &e {
            E::BucketNotFound { .. } => StatusCode::NOT_FOUND,
            E::BucketExists { .. } | E::BucketNotEmpty { .. } => StatusCode::CONFLICT,
            E::EntityTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            E::InvalidRange { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            E::NoSuchUpload { .. } => StatusCode::NOT_FOUND,
            e if e.is_user_error() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(code = e.code(), "bucket request failed: {e}");
        }
        ApiError::new(status, e.code(), e.to_string())
    }
}

/// A token may use buckets unless it is scoped to other namespaces: a scoped token may use the
/// buckets its list names, and only an unscoped one may list or create buckets.
fn authorize(state: &AppState, headers: &HeaderMap, bucket: Option<&str>, access: Access) -> Result<(), ApiError> {
    let Some(token) = state.token(headers)? else { return Ok(()) };
    if token.read_only && access == Access::Write {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "http.forbidden", "this token may only read"));
    }
    let allowed = match bucket {
        Some(b) => token.allows_namespace(b),
        None => token.namespaces.is_none(),
    };
    if !allowed {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "http.forbidden", "this token may not use this bucket"));
    }
    Ok(())
}

async fn list_buckets(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&state, &headers, None, Access::Read)?;
    let buckets = state.buckets().list_buckets().await?;
    let list: Vec<_> = buckets.into_iter().map(|b| json!({"name": b.name, "created_ms": b.created_ms})).collect();
    Ok(Json(json!({ "buckets": list })).into_response())
}

async fn create_bucket(
    State(state): State<AppState>,
    Path(bucket): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, None, Access::Write)?;
    let b = state.buckets().create_bucket(&bucket).await?;
    Ok((StatusCode::CREATED, Json(json!({"name": b.name, "created_ms": b.created_ms}))).into_response())
}

async fn delete_bucket(
    State(state): State<AppState>,
    Path(bucket): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Some(&bucket), Access::Write)?;
    state.buckets().delete_bucket(&bucket).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    prefix: Option<String>,
    delimiter: Option<String>,
    cursor: Option<String>,
    start_after: Option<String>,
    limit: Option<i64>,
}

fn object_json(o: &Object) -> serde_json::Value {
    json!({
        "key": o.key,
        "size": o.size,
        "etag": o.etag,
        "version": o.version,
        "uploaded_ms": o.uploaded_ms,
        "http_metadata": o.http_metadata,
        "custom_metadata": o.custom_metadata,
        "checksums": o.checksums,
    })
}

async fn list_objects(
    State(state): State<AppState>,
    Path(bucket): Path<String>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Some(&bucket), Access::Read)?;
    let options = ListOptions {
        prefix: q.prefix,
        delimiter: q.delimiter,
        cursor: q.cursor,
        start_after: q.start_after,
        limit: q.limit,
        ..Default::default()
    };
    let page = state.buckets().list(&bucket, options).await?;
    Ok(Json(json!({
        "objects": page.objects.iter().map(object_json).collect::<Vec<_>>(),
        "delimited_prefixes": page.delimited_prefixes,
        "truncated": page.truncated,
        "cursor": page.cursor,
    }))
    .into_response())
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn http_date(headers: &HeaderMap, name: header::HeaderName) -> Result<Option<i64>, ApiError> {
    let Some(v) = header_str(headers, name.clone()) else { return Ok(None) };
    let t = httpdate::parse_http_date(&v)
        .map_err(|_| ApiError::bad_request("http.invalid_header", format!("{name}: not an HTTP date: {v:?}")))?;
    let ms = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Ok(Some(ms))
}

fn conditions(headers: &HeaderMap) -> Result<Option<Conditions>, ApiError> {
    let c = Conditions::from_headers(
        header_str(headers, header::IF_MATCH).as_deref(),
        header_str(headers, header::IF_NONE_MATCH).as_deref(),
        http_date(headers, header::IF_MODIFIED_SINCE)?,
        http_date(headers, header::IF_UNMODIFIED_SINCE)?,
    )?;
    Ok((!c.is_empty()).then_some(c))
}

async fn put_object(
    State(state): State<AppState>,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let checked = check_put(&state, &bucket, &key, &headers).await;
    let (custom, checksums, only_if) = match checked {
        Ok(c) => c,
        Err(e) => {
            crate::wire::drain_body(body).await;
            return Err(e);
        }
    };
    let buckets = state.buckets();
    let expected_len = header_str(&headers, header::CONTENT_LENGTH).and_then(|v| v.parse().ok());
    let stream = body.into_data_stream().map_err(|e| e.to_string());
    let staged = buckets.stage(&bucket, stream, StageOptions { algorithms: Vec::new(), expected_len }).await?;
    let options = PutOptions {
        http_metadata: HttpMetadata {
            content_type: header_str(&headers, header::CONTENT_TYPE),
            content_language: header_str(&headers, header::CONTENT_LANGUAGE),
            content_disposition: header_str(&headers, header::CONTENT_DISPOSITION),
            content_encoding: header_str(&headers, header::CONTENT_ENCODING),
            cache_control: header_str(&headers, header::CACHE_CONTROL),
            cache_expiry: http_date(&headers, header::EXPIRES)?,
        },
        custom_metadata: custom,
        only_if,
        storage_class: None,
        checksums,
    };
    match buckets.put(&bucket, &key, staged, options).await? {
        Some(o) => Ok(Json(object_json(&o)).into_response()),
        None => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "bucket.precondition_failed",
            "At least one of the pre-conditions you specified did not hold.",
        )),
    }
}

type PutChecks = (BTreeMap<String, String>, Vec<(ChecksumAlgorithm, Vec<u8>)>, Option<Conditions>);

/// Everything about a put that can be refused before its body is read.
async fn check_put(state: &AppState, bucket: &str, key: &str, headers: &HeaderMap) -> Result<PutChecks, ApiError> {
    authorize(state, headers, Some(bucket), Access::Write)?;
    let buckets = state.buckets();
    buckets.bucket(bucket).await?;
    buckets.limits().check_key(key)?;
    let custom: BTreeMap<String, String> = headers
        .iter()
        .filter_map(|(name, value)| {
            let n = name.as_str().strip_prefix(META_PREFIX)?;
            Some((n.to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    buckets.limits().check_custom_metadata(&custom)?;
    let mut checksums = Vec::new();
    if let Some(md5) = header_str(headers, header::HeaderName::from_static("content-md5")) {
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(md5.trim()).ok().filter(|b| b.len() == 16).ok_or_else(
                || ApiError::bad_request("bucket.invalid_digest", "Content-MD5 is not the base64 of 16 bytes"),
            )?;
        checksums.push((ChecksumAlgorithm::Md5, bytes));
    }
    http_date(headers, header::EXPIRES)?;
    Ok((custom, checksums, conditions(headers)?))
}

/// Sets a header from a value that may not be a valid header value (then it is left out).
fn set(headers: &mut HeaderMap, name: header::HeaderName, value: Option<&str>) {
    if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(name, v);
    }
}

fn object_headers(o: &Object) -> HeaderMap {
    let mut h = HeaderMap::new();
    let m = &o.http_metadata;
    set(&mut h, header::ETAG, Some(&o.http_etag()));
    let modified = std::time::UNIX_EPOCH + std::time::Duration::from_millis(o.uploaded_ms.unsigned_abs());
    set(&mut h, header::LAST_MODIFIED, Some(&httpdate::fmt_http_date(modified)));
    set(&mut h, header::CONTENT_TYPE, m.content_type.as_deref());
    set(&mut h, header::CONTENT_LANGUAGE, m.content_language.as_deref());
    set(&mut h, header::CONTENT_DISPOSITION, m.content_disposition.as_deref());
    set(&mut h, header::CONTENT_ENCODING, m.content_encoding.as_deref());
    set(&mut h, header::CACHE_CONTROL, m.cache_control.as_deref());
    if let Some(ms) = m.cache_expiry {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.unsigned_abs());
        set(&mut h, header::EXPIRES, Some(&httpdate::fmt_http_date(t)));
    }
    for (k, v) in &o.custom_metadata {
        if let Ok(name) = header::HeaderName::from_bytes(format!("{META_PREFIX}{k}").as_bytes()) {
            set(&mut h, name, Some(v));
        }
    }
    set(&mut h, header::ACCEPT_RANGES, Some("bytes"));
    h
}

async fn get_object(
    State(state): State<AppState>,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Some(&bucket), Access::Read)?;
    let range = header_str(&headers, header::RANGE).and_then(|r| RangeSpec::from_header(&r));
    let options = GetOptions { only_if: conditions(&headers)?, range };
    let Some(outcome) = state.buckets().get(&bucket, &key, options).await? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "bucket.key_not_found", "The specified key does not exist."));
    };
    match outcome {
        GetOutcome::ConditionFailed(o, eval) => {
            let status = if eval.not_modified() { StatusCode::NOT_MODIFIED } else { StatusCode::PRECONDITION_FAILED };
            Ok((status, object_headers(&o)).into_response())
        }
        GetOutcome::Body(b) => {
            let mut h = object_headers(&b.object);
            set(&mut h, header::CONTENT_LENGTH, Some(&b.range.length.to_string()));
            let status = if b.partial {
                let last = b.range.offset + b.range.length - 1;
                set(&mut h, header::CONTENT_RANGE, Some(&format!("bytes {}-{last}/{}", b.range.offset, b.object.size)));
                StatusCode::PARTIAL_CONTENT
            } else {
                StatusCode::OK
            };
            Ok((status, h, Body::from_stream(b.body)).into_response())
        }
    }
}

async fn delete_object(
    State(state): State<AppState>,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Some(&bucket), Access::Write)?;
    state.buckets().delete(&bucket, vec![key]).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
