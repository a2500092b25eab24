//! Buckets over Cairn's HTTP API (`/v1/buckets`), with streamed bodies both ways.

use reqwest::{Method, StatusCode};
use serde::Deserialize;

use crate::{Client, Error, encode_segment};

/// The bucket endpoints of a server.
#[derive(Clone, Debug)]
pub struct BucketClient {
    client: Client,
}

/// A page of a bucket listing.
#[derive(Clone, Debug, Deserialize)]
pub struct ObjectPage {
    /// Objects as JSON (`key`, `size`, `etag`, `uploaded_ms`, metadata).
    pub objects: Vec<serde_json::Value>,
    /// Rolled-up prefixes.
    pub delimited_prefixes: Vec<String>,
    /// Whether there is more.
    pub truncated: bool,
    /// Where to continue.
    pub cursor: Option<String>,
}

/// A body to upload.
#[derive(Debug)]
pub struct PutObject {
    /// The bytes, possibly streamed.
    pub body: reqwest::Body,
    /// Their number, sent as `Content-Length`.
    pub len: u64,
    /// `Content-Type`, if known.
    pub content_type: Option<String>,
}

/// A key as a path: its segments encoded, its slashes kept.
fn key_path(key: &str) -> String {
    key.split('/').map(encode_segment).collect::<Vec<_>>().join("/")
}

impl Client {
    /// The bucket endpoints.
    pub fn buckets(&self) -> BucketClient {
        BucketClient { client: self.clone() }
    }
}

impl BucketClient {
    /// Every bucket: `{"buckets": [{"name", "created_ms"}]}`.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list(&self) -> Result<serde_json::Value, Error> {
        self.client.json(Method::GET, "/v1/buckets", None::<&()>).await
    }

    /// Creates a bucket.
    ///
    /// # Errors
    /// [`Error`] (409 `bucket.exists`, 400 `bucket.invalid_name`).
    pub async fn create(&self, name: &str) -> Result<serde_json::Value, Error> {
        self.client.json(Method::PUT, &format!("/v1/buckets/{}", encode_segment(name)), None::<&()>).await
    }

    /// Deletes an empty bucket.
    ///
    /// # Errors
    /// [`Error`] (409 `bucket.not_empty`, 404 `bucket.not_found`).
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        self.client.send(Method::DELETE, &format!("/v1/buckets/{}", encode_segment(name)), None).await.map(drop)
    }

    /// One page of a bucket's objects.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: Option<&str>,
        delimiter: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<ObjectPage, Error> {
        let mut path = format!("/v1/buckets/{}/objects?", encode_segment(bucket));
        for (name, value) in [("prefix", prefix), ("delimiter", delimiter), ("cursor", cursor)] {
            if let Some(v) = value {
                path.push_str(&format!("{name}={}&", encode_segment(v)));
            }
        }
        self.client.json(Method::GET, &path, None::<&()>).await
    }

    /// Stores an object; returns its metadata as JSON.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn put(&self, bucket: &str, key: &str, object: PutObject) -> Result<serde_json::Value, Error> {
        self.put_with_headers(bucket, key, object, &[]).await
    }

    /// [`BucketClient::put`] with more headers: the object's other HTTP metadata
    /// (`Content-Language`, `Content-Disposition`, `Content-Encoding`, `Cache-Control`,
    /// `Expires`) and its custom metadata as `x-cairn-meta-{name}`.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn put_with_headers(
        &self,
        bucket: &str,
        key: &str,
        object: PutObject,
        headers: &[(String, String)],
    ) -> Result<serde_json::Value, Error> {
        let path = format!("/v1/buckets/{}/objects/{}", encode_segment(bucket), key_path(key));
        let (mut req, url) = self.client.request(Method::PUT, &path);
        req = req.header(reqwest::header::CONTENT_LENGTH, object.len).body(object.body);
        if let Some(t) = object.content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, t);
        }
        for (name, value) in headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let res = req.send().await.map_err(|source| Error::Transport { url: url.clone(), source })?;
        let res = Client::check(res, url.clone()).await?;
        res.json().await.map_err(|source| Error::Transport { url, source })
    }

    /// Reads an object: `None` if it does not exist, else the response, whose body streams
    /// (`Content-Length` gives its size).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Option<reqwest::Response>, Error> {
        let path = format!("/v1/buckets/{}/objects/{}", encode_segment(bucket), key_path(key));
        let (req, url) = self.client.request(Method::GET, &path);
        let res = req.send().await.map_err(|source| Error::Transport { url: url.clone(), source })?;
        if res.status() == StatusCode::NOT_FOUND {
            let checked = Client::check(res, url).await;
            return match checked {
                Err(Error::Api { code, .. }) if code == "bucket.key_not_found" => Ok(None),
                Err(e) => Err(e),
                Ok(r) => Ok(Some(r)),
            };
        }
        Client::check(res, url).await.map(Some)
    }

    /// Deletes an object (a missing key is not an error).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), Error> {
        let path = format!("/v1/buckets/{}/objects/{}", encode_segment(bucket), key_path(key));
        self.client.send(Method::DELETE, &path, None).await.map(drop)
    }
}
