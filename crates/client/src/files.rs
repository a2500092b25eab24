//! Objects and SQL databases as SQLite files (`GET .../export`, `PUT .../import`), streamed
//! both ways.

use reqwest::Method;

use crate::{Client, Error, ObjectClient, encode_segment};

impl Client {
    async fn download(&self, path: &str) -> Result<reqwest::Response, Error> {
        let (req, url) = self.request(Method::GET, path);
        let res = req.send().await.map_err(|source| Error::Transport { url: url.clone(), source })?;
        Client::check(res, url).await
    }

    async fn upload(&self, path: &str, body: reqwest::Body, len: u64) -> Result<serde_json::Value, Error> {
        let (req, url) = self.request(Method::PUT, path);
        let req = req
            .header(reqwest::header::CONTENT_TYPE, "application/vnd.sqlite3")
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body);
        let res = req.send().await.map_err(|source| Error::Transport { url: url.clone(), source })?;
        let res = Client::check(res, url.clone()).await?;
        res.json().await.map_err(|source| Error::Transport { url, source })
    }

    /// Downloads a SQL database (by uuid or name) as a SQLite file, now or at `bookmark`: the
    /// response's body streams, and its `x-cairn-bookmark` header names the state written.
    ///
    /// # Errors
    /// [`Error`]; 404 `sql.database_not_found`.
    pub async fn export_database(&self, db: &str, bookmark: Option<&str>) -> Result<reqwest::Response, Error> {
        self.download(&with_bookmark(format!("/v1/databases/{}/export", encode_segment(db)), bookmark)).await
    }

    /// Replaces a SQL database's tables with a SQLite file (`len` bytes): `{"bookmark",
    /// "previous_bookmark", "tables", "kv_entries", "bytes"}`.
    ///
    /// # Errors
    /// [`Error`]; 400 `storage.invalid_import` for a file that is not fit.
    pub async fn import_database(&self, db: &str, body: reqwest::Body, len: u64) -> Result<serde_json::Value, Error> {
        self.upload(&format!("/v1/databases/{}/import", encode_segment(db)), body, len).await
    }
}

fn with_bookmark(path: String, bookmark: Option<&str>) -> String {
    match bookmark {
        Some(b) => format!("{path}?bookmark={}", encode_segment(b)),
        None => path,
    }
}

impl ObjectClient {
    /// Downloads the object's storage as a SQLite file (Cairn's object format), now or at
    /// `bookmark`: the response's body streams, and its `x-cairn-bookmark` header names the
    /// state written.
    ///
    /// # Errors
    /// [`Error`]; `runtime.invalid_bookmark`.
    pub async fn export(&self, bookmark: Option<&str>) -> Result<reqwest::Response, Error> {
        self.client.download(&with_bookmark(self.path("/export"), bookmark)).await
    }

    /// Replaces the object's storage with a SQLite file (`len` bytes), as one commit:
    /// `{"bookmark", "previous_bookmark", "tables", "kv_entries", "bytes"}`; restoring
    /// `previous_bookmark` undoes it.
    ///
    /// # Errors
    /// [`Error`]; 400 `storage.invalid_import` for a file that is not fit.
    pub async fn import(&self, body: reqwest::Body, len: u64) -> Result<serde_json::Value, Error> {
        self.client.upload(&self.path("/import"), body, len).await
    }
}
