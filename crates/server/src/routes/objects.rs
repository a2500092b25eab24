//! Objects over HTTP: `/v1/namespaces/{ns}/objects/{name}/...`. Each request is one event on
//! the object: it runs alone, commits atomically, and its response is sent only after its
//! writes are durable.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_api_types as api;
use cairn_runtime::Error as RtError;
use cairn_storage::{Error as StError, ListOptions, Value};
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::{Access, AppState};
use crate::wire::{from_wire, sql_json, sql_param, to_wire};

/// Unwraps a JSON body, turning axum's rejection into the API's error shape.
pub(crate) fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    match body {
        Ok(Json(v)) => Ok(v),
        Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "http.unsupported_media_type",
            "expected a JSON body (Content-Type: application/json)",
        )),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(too_large()),
        Err(e) => Err(ApiError::bad_request("http.invalid_json", e.body_text())),
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "http.body_too_large",
        "the request body is larger than max_body_bytes",
    )
}

fn bytes_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::bad_request("http.invalid_body", e.body_text())
        }
    })
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| ApiError::bad_request("http.invalid_query", e.body_text()))
}

type ObjectPath = Path<(String, String)>;
type KeyPath = Path<(String, String, String)>;

fn ok() -> Json<api::Ok> {
    Json(api::Ok { ok: true })
}

/// `GET .../kv/{key}`: the value as stored: JSON as `application/json`, bytes as
/// `application/octet-stream`.
pub(crate) async fn get_key(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((ns, name, key)): KeyPath,
) -> Result<Response, ApiError> {
    let obj = s.object(&headers, &ns, &name, Access::Read)?;
    let k = key.clone();
    let value = obj.run(move |st| Ok::<_, RtError>(st.get_value(&k)?)).await?;
    match value {
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "kv.not_found", format!("no value under key {key:?}"))),
        Some(Value::Json(v)) => Ok(Json(v).into_response()),
        Some(Value::Bytes(b)) => Ok(([(header::CONTENT_TYPE, "application/octet-stream")], b).into_response()),
    }
}

/// `PUT .../kv/{key}`: stores the body: `application/json` as a JSON value,
/// `application/octet-stream` as bytes.
pub(crate) async fn put_key(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((ns, name, key)): KeyPath,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<api::Ok>, ApiError> {
    let obj = s.object(&headers, &ns, &name, Access::Write)?;
    let body = bytes_body(body)?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let value = match essence.as_str() {
        "application/json" => Value::Json(
            serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request("http.invalid_json", format!("the body is not valid JSON: {e}")))?,
        ),
        "application/octet-stream" => Value::Bytes(body.to_vec()),
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "http.unsupported_media_type",
                format!("values are sent as application/json or application/octet-stream, not {content_type:?}"),
            ));
        }
    };
    obj.run(move |st| Ok::<_, RtError>(st.put_value(&key, &value)?)).await?;
    Ok(ok())
}

/// `DELETE .../kv/{key}`: `{"existed": bool}`.
pub(crate) async fn delete_key(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((ns, name, key)): KeyPath,
) -> Result<Json<api::Deleted>, ApiError> {
    let obj = s.object(&headers, &ns, &name, Access::Write)?;
    let existed = obj.run(move |st| Ok::<_, RtError>(st.delete(&key)?)).await?;
    Ok(Json(api::Deleted { existed: Some(existed), deleted: None }))
}

/// Query of `GET .../kv`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    prefix: Option<String>,
    start: Option<String>,
    start_after: Option<String>,
    end: Option<String>,
    #[serde(default)]
    reverse: bool,
    limit: Option<u64>,
}

fn entries(list: Vec<(String, Value)>) -> Json<api::Entries> {
    Json(api::Entries { entries: list.into_iter().map(|(key, v)| api::Entry { key, value: to_wire(v) }).collect() })
}

/// `GET .../kv?prefix=&start=&start_after=&end=&reverse=&limit=`.
pub(crate) async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((ns, name)): ObjectPath,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<api::Entries>, ApiError> {
    let obj = s.object(&headers, &ns, &name, Access::Read)?;
    let q = query(q)?;
    let options = ListOptions {
        start: q.start,
        start_after: q.start_after,
        end: q.end,
        prefix: q.prefix,
        reverse: q.reverse,
        limit: q.limit,
    };
    let list = obj.run(move |st| Ok::<_, RtError>(st.list(&options)?)).await?;
    Ok(entries(list))
}

/// `POST .../batch/get`: the keys that exist, sorted.
pub(crate) async fn batch_get(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((ns, name)): ObjectPath,
    body: Result<Json<api::Keys>, JsonRejection>,
) -> Result<Json<api::Entries>, ApiError> {
    let obj = s.object(&headers, &ns, &name, Access::Read)?;
    let keys = json_body(body)?.keys;
    let list = obj.run(move |st| Ok::<_, RtError>(st.get_many(&keys)?)).await?;
    Ok(entries(list))
}

/// `POST .../batch/put`: all pairs or none.
pub(crate) async fn batch_put(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((ns, name)): ObjectPath,
    body: Result<Json<api::PutEntries>, JsonRejection>,
) -> Result<Json<api::Ok>, ApiError> {
    let obj = s.object(&headers, &ns, &name, Access::Write)?;
    let pairs = json_body(body)?
        .entries
        .into_iter()
        .map(|e| Ok((e.key, from_wire(e.value)?)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    obj.run(move |st| Ok::<_, RtError>(st.put_many(&pairs)?)).await?;
    Ok(ok())
}

/// `POST .../batch/delete`: `{"deleted": n}`.
pub(crate) async fn batch_delete(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((ns, name)): ObjectPath,
    body: Result<Json<api::Keys>, JsonRejection>,
) -> Result<Json<api::Deleted>, ApiError> {
    let obj = s.object(&headers, &ns, &name, Access::Write)?;
    let keys = json_body(body)?.keys;
    let n = obj.run(move |st| Ok::<_, RtError>(st.delete_many(&keys)?)).await?;
    Ok(Json(api::Deleted { existed: None, deleted: Some(n as u64) }))
}

/// `POST .../sql`: runs SQL with parameters; the rows of the last statement.
pub(crate) async fn sql(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((ns, name)): ObjectPath,
    body: Result<Json<api::SqlRequest>, JsonRejection>,
) -> Result<Json<api::SqlResponse>, ApiError> {
    let obj = s.object(&headers, &ns, &name, Access::Write)?;
    let req = json_body(body)?;
    let params = req.params.into_iter().enumerate().map(|(i, p)| sql_param(i + 1, p)).collect::<Result<Vec<_>, _>>()?;
    let sql = req.sql;
    let cursor = obj.run(move |st| Ok::<_, RtError>(st.exec(&sql, &params)?)).await?;
    let columns = cursor.column_names().to_vec();
    let (rows_read, rows_written) = (cursor.rows_read(), cursor.rows_written());
    let rows = cursor.raw().map(|r| r.into_iter().map(sql_json).collect()).collect();
    Ok(Json(api::SqlResponse { columns, rows, rows_read, rows_written }))
}

/// `POST .../transaction`: checks every precondition, then applies every operation, in one
/// event: all or nothing. A failed precondition answers 409.
pub(crate) async fn transaction(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((ns, name)): ObjectPath,
    body: Result<Json<api::TransactionRequest>, JsonRejection>,
) -> Result<Json<api::Ok>, ApiError> {
    let obj = s.object(&headers, &ns, &name, Access::Write)?;
    let req = json_body(body)?;
    let mut preconditions = Vec::with_capacity(req.preconditions.len());
    for p in req.preconditions {
        preconditions.push((p.key, p.equals.map(from_wire).transpose()?));
    }
    let mut operations = Vec::with_capacity(req.operations.len());
    for op in req.operations {
        operations.push(match op {
            api::Operation::Put { key, value } => (key, Some(from_wire(value)?)),
            api::Operation::Delete { key } => (key, None),
        });
    }
    obj.run(move |st| {
        let max = st.limits().max_batch_keys;
        let count = preconditions.len().max(operations.len());
        if count > max {
            return Err(ApiError::from(StError::TooManyKeys { len: count, max }));
        }
        for (key, expected) in &preconditions {
            let current = st.get_value(key)?;
            if &current != expected {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "transaction.precondition_failed",
                    format!("the value of key {key:?} is not the expected one; nothing was written"),
                ));
            }
        }
        for (key, value) in &operations {
            match value {
                Some(v) => st.put_value(key, v)?,
                None => {
                    st.delete(key)?;
                }
            }
        }
        Ok(())
    })
    .await?;
    Ok(ok())
}

/// `GET .../alarm`.
pub(crate) async fn get_alarm(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((ns, name)): ObjectPath,
) -> Result<Json<api::Alarm>, ApiError> {
    let obj = s.object(&headers, &ns, &name, Access::Read)?;
    let time_ms = obj.run(|st| Ok::<_, RtError>(st.get_alarm()?)).await?;
    Ok(Json(api::Alarm { time_ms }))
}

/// `PUT .../alarm` with `{"time_ms": t}`; a time in the past is clamped to now.
pub(crate) async fn set_alarm(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((ns, name)): ObjectPath,
    body: Result<Json<api::Alarm>, JsonRejection>,
) -> Result<Json<api::Alarm>, ApiError> {
    let obj = s.object(&headers, &ns, &name, Access::Write)?;
    let Some(t) = json_body(body)?.time_ms else {
        return Err(ApiError::bad_request("http.invalid_json", "time_ms is required; use DELETE to remove the alarm"));
    };
    let time_ms = obj
        .run(move |st| {
            st.set_alarm(t)?;
            Ok::<_, RtError>(st.get_alarm()?)
        })
        .await?;
    Ok(Json(api::Alarm { time_ms }))
}

/// `DELETE .../alarm`.
pub(crate) async fn delete_alarm(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((ns, name)): ObjectPath,
) -> Result<Json<api::Ok>, ApiError> {
    let obj = s.object(&headers, &ns, &name, Access::Write)?;
    obj.run(|st| Ok::<_, RtError>(st.delete_alarm()?)).await?;
    Ok(ok())
}

/// `POST .../delete-all`: every KV entry, SQL table and the alarm.
pub(crate) async fn delete_all(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((ns, name)): ObjectPath,
) -> Result<Json<api::Ok>, ApiError> {
    let obj = s.object(&headers, &ns, &name, Access::Write)?;
    obj.run(|st| Ok::<_, RtError>(st.delete_all()?)).await?;
    Ok(ok())
}

#[derive(Debug, Deserialize)]
pub(crate) struct BookmarkQuery {
    time_ms: Option<i64>,
}

/// `GET .../bookmark[?time_ms=T]`: the current bookmark, or the bookmark of the state at `T`.
pub(crate) async fn bookmark(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((ns, name)): ObjectPath,
    q: Result<Query<BookmarkQuery>, QueryRejection>,
) -> Result<Json<api::BookmarkResponse>, ApiError> {
    let obj = s.object(&headers, &ns, &name, Access::Read)?;
    let q = query(q)?;
    let b = match q.time_ms {
        Some(t) => obj.bookmark_for_time(t).await?,
        None => obj.current_bookmark().await?,
    };
    Ok(Json(api::BookmarkResponse { bookmark: b.to_string() }))
}

/// A bookmark string from a request.
fn parse_bookmark(b: &str) -> Result<cairn_storage::Bookmark, ApiError> {
    b.parse().map_err(|e: cairn_storage::InvalidBookmark| {
        ApiError::new(StatusCode::BAD_REQUEST, "runtime.invalid_bookmark", e.to_string())
    })
}

/// A bookmark from a request: a bookmark string or a time (none: `None`).
async fn target(
    obj: &cairn_runtime::ObjectRef,
    bookmark: Option<&str>,
    time_ms: Option<i64>,
) -> Result<Option<cairn_storage::Bookmark>, ApiError> {
    match (bookmark, time_ms) {
        (Some(b), _) => parse_bookmark(b).map(Some),
        (None, Some(t)) => Ok(Some(obj.bookmark_for_time(t).await?)),
        (None, None) => Ok(None),
    }
}

/// `POST .../restore` with `{"bookmark"}` or `{"time_ms"}` (and `"on_next_start"`): restores
/// the object's storage; the answer's `previous_bookmark` undoes it.
pub(crate) async fn restore(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((ns, name)): ObjectPath,
    body: Result<Json<api::RestoreRequest>, JsonRejection>,
) -> Result<Json<api::RestoreResponse>, ApiError> {
    let obj = s.object(&headers, &ns, &name, Access::Write)?;
    let req = json_body(body)?;
    let to = target(&obj, req.bookmark.as_deref(), req.time_ms).await?.ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "http.invalid_body", "a restore needs \"bookmark\" or \"time_ms\"")
    })?;
    if req.on_next_start {
        let previous = obj.restore_on_next_start(to).await?;
        return Ok(Json(api::RestoreResponse { bookmark: to.to_string(), previous_bookmark: previous.to_string() }));
    }
    let previous = obj.restore(to).await?;
    let now = obj.current_bookmark().await?;
    Ok(Json(api::RestoreResponse { bookmark: now.to_string(), previous_bookmark: previous.to_string() }))
}

/// `POST .../fork` with `{"namespace"?, "name", "bookmark"? | "time_ms"?}`: a new object
/// copied from this one; the source is untouched.
pub(crate) async fn fork(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((ns, name)): ObjectPath,
    body: Result<Json<api::ForkRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<api::BookmarkResponse>), ApiError> {
    let src = s.object(&headers, &ns, &name, Access::Read)?;
    let req = json_body(body)?;
    let dst_ns = req.namespace.clone().unwrap_or_else(|| ns.clone());
    let dst = s.object(&headers, &dst_ns, &req.name, Access::Write)?;
    let at = target(&src, req.bookmark.as_deref(), req.time_ms).await?;
    let b = s.inner.runtime.fork(&src, at, &dst).await?;
    Ok((StatusCode::CREATED, Json(api::BookmarkResponse { bookmark: b.to_string() })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChangesQuery {
    /// A bookmark the caller has seen.
    after: Option<String>,
    /// How long to wait for a newer commit, in ms (at most 60,000). Default 30,000.
    timeout_ms: Option<u64>,
}

/// Longest wait of `GET .../changes`.
const MAX_CHANGES_WAIT_MS: u64 = 60_000;

/// `GET .../changes?after=BOOKMARK&timeout_ms=`: long poll. Answers with the bookmark of the
/// object's newest durable commit as soon as it is newer than `after` (at once without
/// `after`), or with the same bookmark when `timeout_ms` passes first.
pub(crate) async fn changes(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((ns, name)): ObjectPath,
    q: Result<Query<ChangesQuery>, QueryRejection>,
) -> Result<Json<api::BookmarkResponse>, ApiError> {
    let obj = s.object(&headers, &ns, &name, Access::Read)?;
    let q = query(q)?;
    let after = q.after.as_deref().map(parse_bookmark).transpose()?;
    let wait_ms = q.timeout_ms.unwrap_or(30_000);
    if wait_ms > MAX_CHANGES_WAIT_MS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "http.invalid_query",
            format!("timeout_ms {wait_ms} is above the limit of {MAX_CHANGES_WAIT_MS}"),
        ));
    }
    let mut rx = obj.subscribe().await?;
    let newer = |b: &cairn_storage::Bookmark| after.is_none_or(|a| b.seq > a.seq);
    let waited = tokio::time::timeout(std::time::Duration::from_millis(wait_ms), rx.wait_for(newer))
        .await
        .ok()
        .and_then(Result::ok)
        .map(|b| *b);
    // Timed out (or the runtime is closing): the newest commit as it is.
    let b = waited.unwrap_or_else(|| *rx.borrow());
    Ok(Json(api::BookmarkResponse { bookmark: b.to_string() }))
}
