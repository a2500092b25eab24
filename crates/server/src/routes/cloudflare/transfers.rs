//! Staged files of D1 exports and imports, reached through unguessable URLs as Cloudflare's
//! signed URLs are: `GET /client/v4/_cairn/transfers/{token}` downloads an export, `PUT` uploads
//! an import. The token (122 random bits) is the credential, as a presigned URL's signature is,
//! so these two routes take no bearer token. Files live in `{data_dir}/transfers/` and expire
//! after an hour.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use md5::Digest as _;

use super::{CfError, body_bytes, envelope};
use crate::state::AppState;

/// How long a staged file stays available.
const LIFETIME: Duration = Duration::from_secs(3600);

/// What a token stands for.
#[derive(Clone, Debug)]
enum Staged {
    /// An export ready to download.
    Export,
    /// An upload slot for an import into `database`, expecting content with MD5 `etag`.
    Upload { database: String, etag: String, received: bool },
}

/// Staged transfers.
#[derive(Debug)]
pub(crate) struct Transfers {
    dir: PathBuf,
    staged: Mutex<HashMap<String, (Staged, Instant)>>,
    /// The last finished import of each database (its polling answer).
    imports: Mutex<HashMap<String, serde_json::Value>>,
}

impl Transfers {
    pub(crate) fn new(dir: PathBuf) -> Transfers {
        Transfers { dir, staged: Mutex::new(HashMap::new()), imports: Mutex::new(HashMap::new()) }
    }

    fn path(&self, token: &str) -> PathBuf {
        self.dir.join(format!("{token}.sql"))
    }

    fn staged(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Staged, Instant)>> {
        self.staged.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets expired tokens and removes their files.
    fn expire(&self) {
        let expired: Vec<String> = {
            let mut staged = self.staged();
            let expired: Vec<String> =
                staged.iter().filter(|(_, (_, at))| at.elapsed() > LIFETIME).map(|(t, _)| t.clone()).collect();
            for t in &expired {
                staged.remove(t);
            }
            expired
        };
        for t in expired {
            let _ = std::fs::remove_file(self.path(&t));
        }
    }

    /// Stores an export and returns its token.
    pub(crate) async fn stage_export(&self, text: String) -> Result<String, CfError> {
        self.expire();
        let token = uuid::Uuid::new_v4().simple().to_string();
        tokio::fs::create_dir_all(&self.dir).await.map_err(io_error)?;
        tokio::fs::write(self.path(&token), text).await.map_err(io_error)?;
        self.staged().insert(token.clone(), (Staged::Export, Instant::now()));
        Ok(token)
    }

    /// Opens an upload slot for an import into `database` and returns its token.
    pub(crate) fn begin_upload(&self, database: &str, etag: &str) -> String {
        self.expire();
        let token = uuid::Uuid::new_v4().simple().to_string();
        let staged = Staged::Upload { database: database.to_owned(), etag: etag.to_owned(), received: false };
        self.staged().insert(token.clone(), (staged, Instant::now()));
        token
    }

    /// Takes an uploaded import: its text, once the upload for `database` with `etag` arrived.
    pub(crate) async fn take_upload(&self, token: &str, database: &str, etag: &str) -> Result<String, CfError> {
        let ok = matches!(
            self.staged().get(token),
            Some((Staged::Upload { database: d, etag: e, received: true }, _)) if d == database && e == etag
        );
        if !ok {
            return Err(CfError::bad_request(
                7400,
                "sql.import_not_uploaded",
                "no uploaded file matches this filename and etag (call init, upload to upload_url, then ingest)",
            ));
        }
        self.staged().remove(token);
        let path = self.path(token);
        let bytes = tokio::fs::read(&path).await.map_err(io_error)?;
        let _ = tokio::fs::remove_file(&path).await;
        String::from_utf8(bytes)
            .map_err(|_| CfError::bad_request(7400, "sql.import_not_utf8", "the uploaded SQL file is not UTF-8"))
    }

    pub(crate) fn finish_import(&self, database: &str, answer: serde_json::Value) {
        self.imports.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(database.to_owned(), answer);
    }

    pub(crate) fn last_import(&self, database: &str) -> Option<serde_json::Value> {
        self.imports.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(database).cloned()
    }
}

fn io_error(e: std::io::Error) -> CfError {
    CfError::new(StatusCode::INTERNAL_SERVER_ERROR, 10001, "runtime.io", format!("staging a transfer failed: {e}"))
}

fn unknown_token() -> CfError {
    CfError::new(StatusCode::NOT_FOUND, 7404, "http.transfer_not_found", "this transfer URL is unknown or has expired")
}

/// `GET /client/v4/_cairn/transfers/{token}`: downloads an export.
pub(crate) async fn download(
    State(s): State<AppState>,
    p: Result<Path<String>, PathRejection>,
) -> Result<Response, CfError> {
    let token = p.map(|Path(t)| t).map_err(|_| unknown_token())?;
    let transfers = &s.inner.transfers;
    transfers.expire();
    if !matches!(transfers.staged().get(&token), Some((Staged::Export, _))) {
        return Err(unknown_token());
    }
    let bytes = tokio::fs::read(transfers.path(&token)).await.map_err(|_| unknown_token())?;
    Ok(([(header::CONTENT_TYPE, "application/sql")], Bytes::from(bytes)).into_response())
}

/// `PUT /client/v4/_cairn/transfers/{token}`: uploads an import. Answers with the content's MD5
/// as `ETag`, and refuses content whose MD5 is not the `etag` given when the slot was opened.
pub(crate) async fn upload(
    State(s): State<AppState>,
    p: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, CfError> {
    let token = p.map(|Path(t)| t).map_err(|_| unknown_token())?;
    let transfers = &s.inner.transfers;
    let expected = match transfers.staged().get(&token) {
        Some((Staged::Upload { etag, .. }, _)) => etag.clone(),
        _ => return Err(unknown_token()),
    };
    let body = body_bytes(body)?;
    let digest: String = md5::Md5::digest(&body).iter().map(|b| format!("{b:02x}")).collect();
    if digest != expected.trim_matches('"') {
        return Err(CfError::bad_request(
            7400,
            "sql.import_bad_digest",
            format!("the uploaded file's MD5 is {digest}, not the etag {expected} given to init"),
        ));
    }
    tokio::fs::create_dir_all(&transfers.dir).await.map_err(io_error)?;
    tokio::fs::write(transfers.path(&token), &body).await.map_err(io_error)?;
    if let Some((Staged::Upload { received, .. }, _)) = transfers.staged().get_mut(&token) {
        *received = true;
    }
    let mut response = envelope(serde_json::json!({}));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{digest}\"")) {
        response.headers_mut().insert(header::ETAG, v);
    }
    Ok(response)
}
