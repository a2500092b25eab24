//! Clients for KV namespaces and SQL databases through the Cloudflare-compatible API
//! (`/client/v4`). Results are returned as the JSON the API gives (`result` of the envelope).

use reqwest::Method;
use serde::Deserialize;

use crate::{Client, Error, encode_segment};

/// The account id put in paths; Cairn ignores it.
const ACCOUNT: &str = "cairn";

/// An error envelope: `{"success": false, "errors": [...]}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorEnvelope {
    pub(crate) errors: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorItem {
    pub(crate) code: i64,
    pub(crate) message: String,
    pub(crate) cairn_code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    result: serde_json::Value,
    #[serde(default)]
    result_info: Option<serde_json::Value>,
}

impl Client {
    /// KV namespaces.
    pub fn kv(&self) -> KvClient {
        KvClient { client: self.clone() }
    }

    /// SQL databases.
    pub fn sql(&self) -> SqlClient {
        SqlClient { client: self.clone() }
    }

    async fn envelope(&self, method: Method, path: &str, body: Option<serde_json::Value>) -> Result<Envelope, Error> {
        let path = format!("/client/v4/accounts/{ACCOUNT}{path}");
        match body {
            Some(b) => self.json(method, &path, Some(&b)).await,
            None => self.json(method, &path, None::<&()>).await,
        }
    }
}

/// KV namespaces through `/client/v4/accounts/{account}/storage/kv/namespaces`.
#[derive(Clone, Debug)]
pub struct KvClient {
    client: Client,
}

/// Options of [`KvClient::put`].
#[derive(Clone, Debug, Default)]
pub struct KvPut {
    /// Seconds to live (at least 60).
    pub expiration_ttl: Option<u64>,
    /// Absolute expiry, seconds since the epoch.
    pub expiration: Option<u64>,
    /// Metadata (JSON, at most 1024 bytes serialized).
    pub metadata: Option<serde_json::Value>,
}

impl KvClient {
    fn ns(id: &str) -> String {
        format!("/storage/kv/namespaces/{}", encode_segment(id))
    }

    /// Every namespace (`[{"id", "title", ...}]`).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn namespaces(&self) -> Result<Vec<serde_json::Value>, Error> {
        let mut all = Vec::new();
        for page in 1..=10_000u32 {
            let e = self
                .client
                .envelope(Method::GET, &format!("/storage/kv/namespaces?per_page=1000&page={page}"), None)
                .await?;
            let items = e.result.as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                break;
            }
            all.extend(items);
        }
        Ok(all)
    }

    /// The id of the namespace with this id or title.
    ///
    /// # Errors
    /// [`Error`]; `kv.namespace_not_found` if none matches.
    pub async fn resolve(&self, id_or_title: &str) -> Result<String, Error> {
        let all = self.namespaces().await?;
        all.iter()
            .find(|n| n["id"] == id_or_title)
            .or_else(|| all.iter().find(|n| n["title"] == id_or_title))
            .and_then(|n| n["id"].as_str().map(str::to_owned))
            .ok_or_else(|| Error::Api {
                status: 404,
                code: "kv.namespace_not_found".into(),
                message: format!("no namespace has the id or title {id_or_title:?}"),
            })
    }

    /// Creates a namespace.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn create_namespace(&self, title: &str) -> Result<serde_json::Value, Error> {
        let e = self
            .client
            .envelope(Method::POST, "/storage/kv/namespaces", Some(serde_json::json!({ "title": title })))
            .await?;
        Ok(e.result)
    }

    /// Renames a namespace.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn rename_namespace(&self, id: &str, title: &str) -> Result<serde_json::Value, Error> {
        let e = self.client.envelope(Method::PUT, &Self::ns(id), Some(serde_json::json!({ "title": title }))).await?;
        Ok(e.result)
    }

    /// Deletes a namespace.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn delete_namespace(&self, id: &str) -> Result<(), Error> {
        self.client.envelope(Method::DELETE, &Self::ns(id), None).await.map(drop)
    }

    /// A value's bytes; `None` if the key is missing or expired.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let path = format!("/client/v4/accounts/{ACCOUNT}{}/values/{}", Self::ns(ns), encode_segment(key));
        let url = format!("{}{path}", self.client.base);
        match self.client.send(Method::GET, &path, None).await {
            Ok(res) => Ok(Some(res.bytes().await.map_err(|source| Error::Transport { url, source })?.to_vec())),
            Err(Error::Api { code, .. }) if code == "kv.key_not_found" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A key's metadata (`null` if none); `None` if the key is missing.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn metadata(&self, ns: &str, key: &str) -> Result<Option<serde_json::Value>, Error> {
        match self
            .client
            .envelope(Method::GET, &format!("{}/metadata/{}", Self::ns(ns), encode_segment(key)), None)
            .await
        {
            Ok(e) => Ok(Some(e.result)),
            Err(Error::Api { code, .. }) if code == "kv.key_not_found" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores a value (durable when this returns).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn put(&self, ns: &str, key: &str, value: Vec<u8>, options: &KvPut) -> Result<(), Error> {
        let mut query = Vec::new();
        if let Some(t) = options.expiration_ttl {
            query.push(format!("expiration_ttl={t}"));
        }
        if let Some(t) = options.expiration {
            query.push(format!("expiration={t}"));
        }
        let path =
            format!("/client/v4/accounts/{ACCOUNT}{}/values/{}?{}", Self::ns(ns), encode_segment(key), query.join("&"));
        match &options.metadata {
            None => self.client.send(Method::PUT, &path, Some(("application/octet-stream", value))).await.map(drop),
            Some(metadata) => {
                // A boundary derived from the value's digest cannot plausibly occur in it.
                let boundary = format!("cairn-{}", md5_hex(&value));
                let mut body = Vec::with_capacity(value.len() + 512);
                body.extend_from_slice(
                    format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"value\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(&value);
                body.extend_from_slice(
                    format!(
                        "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\
                         Content-Type: application/json\r\n\r\n{metadata}\r\n--{boundary}--\r\n"
                    )
                    .as_bytes(),
                );
                let content_type = format!("multipart/form-data; boundary={boundary}");
                self.client.send_typed(Method::PUT, &path, &content_type, body).await.map(drop)
            }
        }
    }

    /// Deletes a key.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn delete(&self, ns: &str, key: &str) -> Result<(), Error> {
        self.client
            .envelope(Method::DELETE, &format!("{}/values/{}", Self::ns(ns), encode_segment(key)), None)
            .await
            .map(drop)
    }

    /// One page of keys: `(keys, cursor)`; the cursor is empty on the last page.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list(
        &self,
        ns: &str,
        prefix: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<(Vec<serde_json::Value>, String), Error> {
        let mut query = Vec::new();
        if let Some(p) = prefix {
            query.push(format!("prefix={}", encode_segment(p)));
        }
        if let Some(l) = limit {
            query.push(format!("limit={l}"));
        }
        if let Some(c) = cursor {
            query.push(format!("cursor={}", encode_segment(c)));
        }
        let e = self.client.envelope(Method::GET, &format!("{}/keys?{}", Self::ns(ns), query.join("&")), None).await?;
        let cursor = e.result_info.as_ref().and_then(|i| i["cursor"].as_str()).map(str::to_owned).unwrap_or_default();
        Ok((e.result.as_array().cloned().unwrap_or_default(), cursor))
    }

    /// Writes many pairs atomically (`[{"key", "value", "base64"?, "expiration_ttl"?, ...}]`).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn bulk_put(&self, ns: &str, pairs: serde_json::Value) -> Result<serde_json::Value, Error> {
        Ok(self.client.envelope(Method::PUT, &format!("{}/bulk", Self::ns(ns)), Some(pairs)).await?.result)
    }

    /// Reads up to 100 keys at once, values as text (`{"key": "text" | null}`; bytes that are
    /// not UTF-8 come back with U+FFFD in their place: read those with [`KvClient::get`]).
    ///
    /// # Errors
    /// [`Error`]; `kv.bulk_too_large` when the values together pass the server's limit.
    pub async fn bulk_get(
        &self,
        ns: &str,
        keys: &[String],
    ) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
        let body = serde_json::json!({ "keys": keys, "type": "text" });
        let e = self.client.envelope(Method::POST, &format!("{}/bulk/get", Self::ns(ns)), Some(body)).await?;
        Ok(e.result["values"].as_object().cloned().unwrap_or_default())
    }

    /// Deletes many keys atomically.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn bulk_delete(&self, ns: &str, keys: Vec<String>) -> Result<serde_json::Value, Error> {
        let body = serde_json::Value::from(keys);
        Ok(self.client.envelope(Method::POST, &format!("{}/bulk/delete", Self::ns(ns)), Some(body)).await?.result)
    }
}

/// SQL databases through `/client/v4/accounts/{account}/d1/database`.
#[derive(Clone, Debug)]
pub struct SqlClient {
    client: Client,
}

impl SqlClient {
    fn db(id: &str) -> String {
        format!("/d1/database/{}", encode_segment(id))
    }

    /// Every database.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn databases(&self) -> Result<Vec<serde_json::Value>, Error> {
        let mut all = Vec::new();
        for page in 1..=10_000u32 {
            let e = self.client.envelope(Method::GET, &format!("/d1/database?per_page=1000&page={page}"), None).await?;
            let items = e.result.as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                break;
            }
            all.extend(items);
        }
        Ok(all)
    }

    /// Creates a database.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn create(&self, name: &str) -> Result<serde_json::Value, Error> {
        Ok(self.client.envelope(Method::POST, "/d1/database", Some(serde_json::json!({ "name": name }))).await?.result)
    }

    /// A database (by uuid or name) with its size and table count.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn info(&self, db: &str) -> Result<serde_json::Value, Error> {
        Ok(self.client.envelope(Method::GET, &Self::db(db), None).await?.result)
    }

    /// Deletes a database.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn delete(&self, db: &str) -> Result<(), Error> {
        self.client.envelope(Method::DELETE, &Self::db(db), None).await.map(drop)
    }

    /// Runs SQL with positional parameters; one result per statement, rows as arrays
    /// (`[{"results": {"columns", "rows"}, "meta"}]`).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn query(
        &self,
        db: &str,
        sql: &str,
        params: Vec<serde_json::Value>,
    ) -> Result<Vec<serde_json::Value>, Error> {
        let body = serde_json::json!({ "sql": sql, "params": params });
        let e = self.client.envelope(Method::POST, &format!("{}/raw", Self::db(db)), Some(body)).await?;
        Ok(e.result.as_array().cloned().unwrap_or_default())
    }

    /// Runs statements as one atomic batch (`[{"sql", "params"}]`); rows as arrays.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn batch(&self, db: &str, batch: Vec<serde_json::Value>) -> Result<Vec<serde_json::Value>, Error> {
        let body = serde_json::json!({ "batch": batch });
        let e = self.client.envelope(Method::POST, &format!("{}/raw", Self::db(db)), Some(body)).await?;
        Ok(e.result.as_array().cloned().unwrap_or_default())
    }

    /// The database as SQL text.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn export(&self, db: &str) -> Result<String, Error> {
        let e = self
            .client
            .envelope(
                Method::POST,
                &format!("{}/export", Self::db(db)),
                Some(serde_json::json!({"output_format": "polling"})),
            )
            .await?;
        let url = e.result["result"]["signed_url"].as_str().unwrap_or_default().to_owned();
        let res =
            self.client.http.get(&url).send().await.map_err(|source| Error::Transport { url: url.clone(), source })?;
        if !res.status().is_success() {
            return Err(Error::Api { status: res.status().as_u16(), code: "sql.export_failed".into(), message: url });
        }
        res.text().await.map_err(|source| Error::Transport { url, source })
    }

    /// Runs a SQL file (for example a dump) as one atomic import: uploads it, then ingests it.
    /// Returns the import's result (`num_queries`, `meta`).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn import(&self, db: &str, sql: Vec<u8>) -> Result<serde_json::Value, Error> {
        let etag = md5_hex(&sql);
        let path = format!("{}/import", Self::db(db));
        let init = self
            .client
            .envelope(Method::POST, &path, Some(serde_json::json!({"action": "init", "etag": etag})))
            .await?;
        let url = init.result["upload_url"].as_str().unwrap_or_default().to_owned();
        let filename = init.result["filename"].as_str().unwrap_or_default().to_owned();
        let res = self
            .client
            .http
            .put(&url)
            .body(sql)
            .send()
            .await
            .map_err(|source| Error::Transport { url: url.clone(), source })?;
        if !res.status().is_success() {
            let status = res.status().as_u16();
            return Err(Error::Api {
                status,
                code: "sql.upload_failed".into(),
                message: res.text().await.unwrap_or_default(),
            });
        }
        let done = self
            .client
            .envelope(
                Method::POST,
                &path,
                Some(serde_json::json!({"action": "ingest", "etag": etag, "filename": filename})),
            )
            .await?;
        Ok(done.result["result"].clone())
    }
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest as _;
    md5::Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
