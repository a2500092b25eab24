//! Objects and SQL databases as SQLite files:
//!
//! - `GET /v1/namespaces/{ns}/objects/{name}/export[?bookmark=B|?time_ms=T]` streams the object's
//!   state (now, or at a bookmark or time in its history) as a SQLite file of Cairn's object
//!   format (`application/vnd.sqlite3`); `x-cairn-bookmark` names the state written.
//! - `PUT /v1/namespaces/{ns}/objects/{name}/import` takes a SQLite file (streamed to disk, at
//!   most the object's size limit), checks it (`cairn_storage::import::prepare`) and makes it
//!   the object's state as one commit; the answer's `previous_bookmark` undoes it.
//! - `GET|PUT /v1/databases/{database}/export|import`: the same for a SQL database (D1), named by
//!   uuid or name.
//!
//! Files pass through `{data_dir}/transfers/` (same file system as the objects, so an import is
//! moved into place, not copied); leftovers of an interrupted transfer are removed after an hour.

use std::path::PathBuf;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use cairn_runtime::ObjectRef;
use cairn_storage::{Bookmark, Limits};
use futures_util::StreamExt as _;
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::error::ApiError;
use crate::state::{Access, AppState};

/// The routes, without a body size limit (uploads stream to disk, bounded by the object's size
/// limit).
pub(crate) fn router() -> axum::Router<AppState> {
    let object = "/v1/namespaces/{ns}/objects/{name}";
    axum::Router::new()
        .route(&format!("{object}/export"), get(export_object))
        .route(&format!("{object}/import"), put(import_object))
        .route("/v1/databases/{database}/export", get(export_database))
        .route("/v1/databases/{database}/import", put(import_database))
        .layer(DefaultBodyLimit::disable())
}

/// How long a transfer file may be left behind by an interrupted request.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Query of the export routes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    /// A bookmark of the state to export.
    bookmark: Option<String>,
    /// A time (ms since the epoch) of the state to export.
    time_ms: Option<i64>,
}

/// Removes its files when dropped, whatever happened to the request.
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn io_error(context: &str, e: &std::io::Error) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "runtime.io", format!("{context}: {e}"))
}

/// The transfer directory, created if needed, with files older than [`STALE_AFTER`] removed.
async fn transfer_dir(s: &AppState) -> Result<PathBuf, ApiError> {
    let dir = s.inner.runtime.config().data_dir.join("transfers");
    tokio::fs::create_dir_all(&dir).await.map_err(|e| io_error("create the transfer directory", &e))?;
    if let Ok(mut entries) = tokio::fs::read_dir(&dir).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name();
            let ours = name.to_str().is_some_and(|n| n.starts_with("export-") || n.starts_with("import-"));
            let stale = entry
                .metadata()
                .await
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_AFTER);
            if ours && stale {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
    }
    Ok(dir)
}

fn parse_bookmark(b: &str) -> Result<Bookmark, ApiError> {
    b.parse().map_err(|e: cairn_storage::InvalidBookmark| {
        ApiError::new(StatusCode::BAD_REQUEST, "runtime.invalid_bookmark", e.to_string())
    })
}

/// The limits of objects of `ns`.
fn limits_of(s: &AppState, ns: &str) -> Limits {
    let config = s.inner.runtime.config();
    config.namespace_limits.get(ns).unwrap_or(&config.default_limits).as_ref().clone()
}

/// A file name for `Content-Disposition`: the name's safe characters.
fn file_name(name: &str) -> String {
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    let safe = safe.trim_matches('.').chars().take(100).collect::<String>();
    if safe.is_empty() { "object".to_owned() } else { safe }
}

/// Writes `obj`'s state (at `q`'s bookmark or time, or now) to a file and streams it.
async fn export(s: &AppState, obj: &ObjectRef, q: ExportQuery, name: &str) -> Result<Response, ApiError> {
    let at = match (q.bookmark.as_deref(), q.time_ms) {
        (Some(b), _) => Some(parse_bookmark(b)?),
        (None, Some(t)) => Some(obj.bookmark_for_time(t).await?),
        (None, None) => None,
    };
    let path = transfer_dir(s).await?.join(format!("export-{}.db", uuid::Uuid::new_v4().simple()));
    let guard = TempFiles(vec![path.clone()]);
    let bookmark = obj.image(at, path.clone()).await?;
    let file = tokio::fs::File::open(&path).await.map_err(|e| io_error("open an export", &e))?;
    let len = file.metadata().await.map_err(|e| io_error("read an export's size", &e))?.len();
    // The open file is all the stream needs: its name goes now.
    drop(guard);
    let body = futures_util::stream::unfold(file, |mut file| async move {
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/vnd.sqlite3"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}.sqlite\"", file_name(name))) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&bookmark.to_string()) {
        headers.insert("x-cairn-bookmark", v);
    }
    Ok((headers, Body::from_stream(body)).into_response())
}

/// Receives a SQLite file, checks it and makes it `obj`'s state.
async fn import(s: &AppState, obj: &ObjectRef, body: Body) -> Result<Json<serde_json::Value>, ApiError> {
    let limits = limits_of(s, obj.namespace());
    let dir = transfer_dir(s).await?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let upload = dir.join(format!("import-{id}.upload"));
    let image = dir.join(format!("import-{id}.db"));
    let _guard = TempFiles(vec![upload.clone(), image.clone()]);
    let mut out = tokio::fs::File::create(&upload).await.map_err(|e| io_error("create an upload", &e))?;
    let mut stream = body.into_data_stream();
    let mut received: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("http.invalid_body", format!("reading the body: {e}")))?;
        received += chunk.len() as u64;
        if received > limits.max_database_bytes {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "http.body_too_large",
                format!("the file is larger than the object's size limit of {} bytes", limits.max_database_bytes),
            ));
        }
        out.write_all(&chunk).await.map_err(|e| io_error("write an upload", &e))?;
    }
    out.flush().await.map_err(|e| io_error("write an upload", &e))?;
    drop(out);
    let (src, dest) = (upload.clone(), image.clone());
    let prepared =
        tokio::task::spawn_blocking(move || cairn_storage::import::prepare(&src, &dest, &limits)).await.map_err(
            |e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "runtime.io", format!("import failed: {e}")),
        )??;
    let previous = obj.import(image).await?;
    let now = obj.current_bookmark().await?;
    Ok(Json(serde_json::json!({
        "bookmark": now.to_string(),
        "previous_bookmark": (previous.seq > 0).then(|| previous.to_string()),
        "tables": prepared.tables,
        "kv_entries": prepared.kv_entries,
        "bytes": prepared.bytes,
    })))
}

/// `GET .../objects/{name}/export`.
pub(crate) async fn export_object(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    q: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let obj = s.object(&headers, &ns, &name, Access::Read)?;
    let q = q.map(|Query(q)| q).map_err(|e| ApiError::bad_request("http.invalid_query", e.body_text()))?;
    export(&s, &obj, q, &name).await
}

/// `PUT .../objects/{name}/import`.
pub(crate) async fn import_object(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let obj = match s.object(&headers, &ns, &name, Access::Write) {
        Ok(o) => o,
        Err(e) => {
            crate::wire::drain_body(body).await;
            return Err(e);
        }
    };
    import(&s, &obj, body).await
}

/// Authorizes access to a SQL database and returns it with its object.
async fn database(
    s: &AppState,
    headers: &HeaderMap,
    id_or_name: &str,
    access: Access,
) -> Result<(cairn_sqldb::Database, ObjectRef), ApiError> {
    let token = s.token(headers)?;
    let db = s.inner.sql.database(id_or_name).await.map_err(|e| {
        let status = match e.kind() {
            cairn_sqldb::ErrorKind::NotFound => StatusCode::NOT_FOUND,
            cairn_sqldb::ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.code(), e.to_string())
    })?;
    if let Some(token) = token {
        if !(token.allows_namespace(&db.uuid) || token.allows_namespace(&db.name)) {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "http.forbidden", "this token may not use this database"));
        }
        if token.read_only && access == Access::Write {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "http.forbidden", "this token may only read"));
        }
    }
    let object = s.inner.runtime.object(cairn_sqldb::DATA_NAMESPACE, &db.uuid)?;
    Ok((db, object))
}

/// `GET /v1/databases/{database}/export`.
pub(crate) async fn export_database(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (db, object) = database(&s, &headers, &id, Access::Read).await?;
    let q = q.map(|Query(q)| q).map_err(|e| ApiError::bad_request("http.invalid_query", e.body_text()))?;
    export(&s, &object, q, &db.name).await
}

/// `PUT /v1/databases/{database}/import`.
pub(crate) async fn import_database(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (_, object) = match database(&s, &headers, &id, Access::Write).await {
        Ok(d) => d,
        Err(e) => {
            crate::wire::drain_body(body).await;
            return Err(e);
        }
    };
    import(&s, &object, body).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_names_keep_only_safe_characters() {
        assert_eq!(super::file_name("lobby"), "lobby");
        assert_eq!(super::file_name("a/b c"), "a_b_c");
        assert_eq!(super::file_name(".."), "object");
    }
}
