//! A typed client for Cairn's HTTP API. The CLI's object commands and the end-to-end tests use
//! it; anything that speaks HTTP can do the same (see the OpenAPI document at `/openapi.json`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), cairn_client::Error> {
//! let client = cairn_client::Client::new("http://127.0.0.1:8787", None)?;
//! let lobby = client.object("rooms", "lobby");
//! lobby.put_json("greeting", &serde_json::json!("hello")).await?;
//! assert_eq!(lobby.get("greeting").await?, Some(cairn_client::Stored::Json(serde_json::json!("hello"))));
//! # Ok(()) }
//! ```

mod buckets;
mod cloudflare;
mod files;

pub use cairn_api_types as api;
use reqwest::{Method, StatusCode};

pub use buckets::{BucketClient, ObjectPage, PutObject};
pub use cloudflare::{KvClient, KvPut, SqlClient};

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error.
    #[error("{status}: {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable machine code.
        code: String,
        /// Message.
        message: String,
    },
    /// The server could not be reached, or the answer could not be read.
    #[error("request to {url} failed: {source}")]
    Transport {
        /// The URL.
        url: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// The base URL is not usable.
    #[error("invalid server URL {0:?}")]
    InvalidUrl(String),
}

impl Error {
    /// The API error code, if the server answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A value as stored.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored {
    /// A JSON value.
    Json(serde_json::Value),
    /// Raw bytes.
    Bytes(Vec<u8>),
}

/// A connection to one Cairn server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    /// A client for the server at `base_url` (for example `http://127.0.0.1:8787`), sending
    /// `token` as a bearer token if given.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] if the URL is not `http://` or `https://`.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Client, Error> {
        let base = base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::InvalidUrl(base_url.to_owned()));
        }
        Ok(Client { http: reqwest::Client::new(), base, token })
    }

    /// A handle to one object.
    pub fn object(&self, ns: &str, name: &str) -> ObjectClient {
        ObjectClient {
            client: self.clone(),
            prefix: format!("/v1/namespaces/{}/objects/{}", encode_segment(ns), encode_segment(name)),
        }
    }

    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<reqwest::Response, Error> {
        self.send_with(method, path, body).await
    }

    /// [`Client::send`] with a content type built at run time.
    pub(crate) async fn send_typed(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, Error> {
        self.send_with(method, path, Some((content_type, body))).await
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<reqwest::Response, Error> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some((content_type, bytes)) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, content_type).body(bytes);
        }
        let res = req.send().await.map_err(|source| Error::Transport { url: url.clone(), source })?;
        Self::check(res, url).await
    }

    /// A request builder for `path` with the token set.
    pub(crate) fn request(&self, method: Method, path: &str) -> (reqwest::RequestBuilder, String) {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        (req, url)
    }

    /// The response if it is a success, else its error.
    pub(crate) async fn check(res: reqwest::Response, url: String) -> Result<reqwest::Response, Error> {
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status().as_u16();
        let text = res.text().await.map_err(|source| Error::Transport { url, source })?;
        if let Ok(body) = serde_json::from_str::<api::ErrorBody>(&text) {
            return Err(Error::Api { status, code: body.error.code, message: body.error.message });
        }
        // The Cloudflare-compatible API answers in Cloudflare's envelope.
        if let Ok(envelope) = serde_json::from_str::<cloudflare::ErrorEnvelope>(&text)
            && let Some(first) = envelope.errors.into_iter().next()
        {
            let code = first.cairn_code.unwrap_or_else(|| format!("cloudflare.{}", first.code));
            return Err(Error::Api { status, code, message: first.message });
        }
        Err(Error::Api { status, code: "http.unexpected".to_owned(), message: text })
    }

    pub(crate) async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl serde::Serialize>,
    ) -> Result<T, Error> {
        let body = body.map(|b| ("application/json", serde_json::to_vec(b).unwrap_or_default()));
        let url = format!("{}{path}", self.base);
        let res = self.send(method, path, body).await?;
        res.json().await.map_err(|source| Error::Transport { url, source })
    }

    /// `GET /healthz`.
    ///
    /// # Errors
    /// [`Error`] if the server is not healthy or not reachable.
    pub async fn health(&self) -> Result<(), Error> {
        self.send(Method::GET, "/healthz", None).await.map(drop)
    }

    /// Objects of a namespace that have been written, one page.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list_objects(
        &self,
        ns: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<api::ObjectList, Error> {
        let mut path = format!("/v1/namespaces/{}/objects?", encode_segment(ns));
        if let Some(c) = cursor {
            path.push_str(&format!("cursor={}&", encode_segment(c)));
        }
        if let Some(l) = limit {
            path.push_str(&format!("limit={l}"));
        }
        self.json(Method::GET, &path, None::<&()>).await
    }
}

/// One object's endpoints.
#[derive(Clone, Debug)]
pub struct ObjectClient {
    client: Client,
    prefix: String,
}

/// Options of [`ObjectClient::list`], as in the storage API.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// Keys starting with this.
    pub prefix: Option<String>,
    /// First key (inclusive).
    pub start: Option<String>,
    /// Keys strictly after this one.
    pub start_after: Option<String>,
    /// Stop before this key.
    pub end: Option<String>,
    /// Descending order.
    pub reverse: bool,
    /// Most entries.
    pub limit: Option<u64>,
}

impl ObjectClient {
    fn path(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// Reads a key; `None` if it is absent.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn get(&self, key: &str) -> Result<Option<Stored>, Error> {
        let path = self.path(&format!("/kv/{}", encode_segment(key)));
        let url = format!("{}{path}", self.client.base);
        let res = match self.client.send(Method::GET, &path, None).await {
            Ok(r) => r,
            Err(Error::Api { code, .. }) if code == "kv.not_found" => return Ok(None),
            Err(e) => return Err(e),
        };
        let is_json = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let bytes = res.bytes().await.map_err(|source| Error::Transport { url, source })?;
        if is_json {
            let v = serde_json::from_slice(&bytes).map_err(|e| Error::Api {
                status: 200,
                code: "http.unexpected".into(),
                message: e.to_string(),
            })?;
            Ok(Some(Stored::Json(v)))
        } else {
            Ok(Some(Stored::Bytes(bytes.to_vec())))
        }
    }

    /// Stores a JSON value.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn put_json(&self, key: &str, value: &serde_json::Value) -> Result<(), Error> {
        let body = serde_json::to_vec(value).unwrap_or_default();
        self.client
            .send(Method::PUT, &self.path(&format!("/kv/{}", encode_segment(key))), Some(("application/json", body)))
            .await
            .map(drop)
    }

    /// Stores raw bytes.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), Error> {
        let path = self.path(&format!("/kv/{}", encode_segment(key)));
        self.client.send(Method::PUT, &path, Some(("application/octet-stream", bytes))).await.map(drop)
    }

    /// Deletes a key; whether it existed.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn delete(&self, key: &str) -> Result<bool, Error> {
        let d: api::Deleted =
            self.client.json(Method::DELETE, &self.path(&format!("/kv/{}", encode_segment(key))), None::<&()>).await?;
        Ok(d.existed.unwrap_or(false))
    }

    /// Lists entries.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list(&self, o: &ListOptions) -> Result<Vec<api::Entry>, Error> {
        let mut q = Vec::new();
        for (k, v) in [("prefix", &o.prefix), ("start", &o.start), ("start_after", &o.start_after), ("end", &o.end)] {
            if let Some(v) = v {
                q.push(format!("{k}={}", encode_segment(v)));
            }
        }
        if o.reverse {
            q.push("reverse=true".to_owned());
        }
        if let Some(l) = o.limit {
            q.push(format!("limit={l}"));
        }
        let path = self.path(&format!("/kv?{}", q.join("&")));
        let e: api::Entries = self.client.json(Method::GET, &path, None::<&()>).await?;
        Ok(e.entries)
    }

    /// Runs SQL.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn sql(&self, sql: &str, params: Vec<serde_json::Value>) -> Result<api::SqlResponse, Error> {
        let body = api::SqlRequest { sql: sql.to_owned(), params };
        self.client.json(Method::POST, &self.path("/sql"), Some(&body)).await
    }

    /// Applies a transaction.
    ///
    /// # Errors
    /// [`Error`]; `transaction.precondition_failed` if a precondition did not hold.
    pub async fn transaction(&self, req: &api::TransactionRequest) -> Result<(), Error> {
        let _: api::Ok = self.client.json(Method::POST, &self.path("/transaction"), Some(req)).await?;
        Ok(())
    }

    /// The current bookmark.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn bookmark(&self) -> Result<String, Error> {
        let b: api::BookmarkResponse = self.client.json(Method::GET, &self.path("/bookmark"), None::<&()>).await?;
        Ok(b.bookmark)
    }

    /// The bookmark of the object's state at `time_ms` (ms since the epoch).
    ///
    /// # Errors
    /// [`Error`]; `runtime.invalid_bookmark` outside the retention window.
    pub async fn bookmark_at(&self, time_ms: i64) -> Result<String, Error> {
        let path = self.path(&format!("/bookmark?time_ms={time_ms}"));
        let b: api::BookmarkResponse = self.client.json(Method::GET, &path, None::<&()>).await?;
        Ok(b.bookmark)
    }

    /// Restores the object to a bookmark or a time (see [`api::RestoreRequest`]).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn restore(&self, req: &api::RestoreRequest) -> Result<api::RestoreResponse, Error> {
        self.client.json(Method::POST, &self.path("/restore"), Some(req)).await
    }

    /// Creates a new object from this one (see [`api::ForkRequest`]); returns its first bookmark.
    ///
    /// # Errors
    /// [`Error`]; `runtime.object_exists` if the target was written.
    pub async fn fork(&self, req: &api::ForkRequest) -> Result<String, Error> {
        let b: api::BookmarkResponse = self.client.json(Method::POST, &self.path("/fork"), Some(req)).await?;
        Ok(b.bookmark)
    }

    /// Waits for a commit newer than `after` (`GET .../changes`, a long poll): the bookmark of
    /// the object's newest durable commit, as soon as it is newer than `after` (at once without
    /// `after`), or the same bookmark once `timeout` passes (at most 60 s, the server's limit;
    /// whole milliseconds).
    ///
    /// # Errors
    /// [`Error`]; `runtime.invalid_bookmark` if `after` is not a bookmark.
    pub async fn changes(&self, after: Option<&str>, timeout: std::time::Duration) -> Result<String, Error> {
        let timeout_ms = timeout.as_millis().min(60_000);
        let mut path = self.path(&format!("/changes?timeout_ms={timeout_ms}"));
        if let Some(after) = after {
            path.push_str(&format!("&after={}", encode_segment(after)));
        }
        let b: api::BookmarkResponse = self.client.json(Method::GET, &path, None::<&()>).await?;
        Ok(b.bookmark)
    }

    /// Returns the HTTP status code an [`Error`] would carry, for callers mapping to exit codes.
    pub fn status_of(e: &Error) -> Option<StatusCode> {
        match e {
            Error::Api { status, .. } => StatusCode::from_u16(*status).ok(),
            _ => None,
        }
    }
}
