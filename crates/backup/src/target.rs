//! Backup targets: a local directory or an S3-compatible store, both through `object_store`.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Where a backup goes, as written in the configuration.
///
/// `url` is a directory (`/var/backups/cairn` or `file:///var/backups/cairn`) or
/// `s3://bucket/optional/prefix`. For S3, settings not given here come from the usual
/// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
/// `AWS_ALLOW_HTTP`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The directory or `s3://bucket/prefix`.
    pub url: String,
    /// S3 endpoint for stores other than AWS (`http://127.0.0.1:9000`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// S3 region (default `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// S3 access key id.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// S3 secret access key.
    #[serde(default)]
    pub secret_access_key: Option<String>,
}

impl TargetConfig {
    /// A target from its URL alone (other settings from the environment).
    pub fn from_url(url: impl Into<String>) -> Self {
        TargetConfig { url: url.into(), ..TargetConfig::default() }
    }
}

/// An opened target: a store and the prefix the backup lives under.
#[derive(Clone)]
pub struct Target {
    name: String,
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// For a directory target: the directory, and the files written since the last
    /// [`Target::sync`] (`object_store`'s local store writes files without syncing them).
    local_dir: Option<std::path::PathBuf>,
    unsynced: Arc<std::sync::Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("name", &self.name).finish()
    }
}

impl Target {
    /// Opens a target (creating a local directory if needed).
    ///
    /// # Errors
    /// [`Error::InvalidTarget`] for a URL that is neither a path nor `s3://bucket/...`.
    pub fn open(config: &TargetConfig) -> Result<Target> {
        let url = config.url.trim();
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::InvalidTarget(format!("`{url}` names no bucket (expected s3://bucket/prefix)")));
            }
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(endpoint) = &config.endpoint {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_virtual_hosted_style_request(false);
            }
            builder = builder.with_region(
                config
                    .region
                    .clone()
                    .unwrap_or_else(|| std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned())),
            );
            if let Some(key) = &config.access_key_id {
                builder = builder.with_access_key_id(key);
            }
            if let Some(secret) = &config.secret_access_key {
                builder = builder.with_secret_access_key(secret);
            }
            let store = builder.build().map_err(|e| Error::InvalidTarget(format!("`{url}`: {e}")))?;
            return Ok(Target {
                name: url.to_owned(),
                store: Arc::new(store),
                prefix: prefix.trim_matches('/').to_owned(),
                local_dir: None,
                unsynced: Arc::default(),
            });
        }
        let dir = url.strip_prefix("file://").unwrap_or(url);
        if dir.is_empty() || url.contains("://") && !url.starts_with("file://") {
            return Err(Error::InvalidTarget(format!("`{url}` is neither a directory nor s3://bucket/prefix")));
        }
        std::fs::create_dir_all(dir).map_err(Error::io(format!("create the backup directory {dir}")))?;
        let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| Error::InvalidTarget(format!("`{url}`: {e}")))?;
        Ok(Target {
            name: url.to_owned(),
            store: Arc::new(store),
            prefix: String::new(),
            local_dir: Some(std::path::PathBuf::from(dir)),
            unsynced: Arc::default(),
        })
    }

    /// The target as configured (for status and logs).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn path(&self, key: &str) -> StorePath {
        if self.prefix.is_empty() { StorePath::from(key) } else { StorePath::from(format!("{}/{key}", self.prefix)) }
    }

    fn key_of(&self, path: &StorePath) -> String {
        let s = path.as_ref();
        if self.prefix.is_empty() {
            s.to_owned()
        } else {
            s.strip_prefix(&self.prefix).map_or(s, |r| r.trim_start_matches('/')).to_owned()
        }
    }

    pub(crate) async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.store
            .put(&self.path(key), PutPayload::from(bytes))
            .await
            .map_err(Error::target(format!("upload {key}")))?;
        if self.local_dir.is_some() {
            self.unsynced.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(self.path(key).to_string());
        }
        Ok(())
    }

    /// Makes every upload so far durable. An S3-compatible store acknowledges an upload once
    /// it is durable; in a directory, each file written since the last call and each of their
    /// directories is synced (not the whole file system: it is often the data directory's).
    pub(crate) async fn sync(&self) -> Result<()> {
        let Some(dir) = self.local_dir.clone() else { return Ok(()) };
        let keys = std::mem::take(&mut *self.unsynced.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        if keys.is_empty() {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || {
            let mut dirs = std::collections::BTreeSet::new();
            for key in keys {
                let path = dir.join(&key);
                std::fs::File::open(&path)?.sync_all()?;
                let mut parent = path.parent();
                // Every directory from the file up to the target (new ones may have appeared).
                while let Some(p) = parent.filter(|p| p.starts_with(&dir)) {
                    dirs.insert(p.to_path_buf());
                    parent = p.parent();
                }
            }
            for d in dirs {
                std::fs::File::open(&d)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::io(format!("sync {}", self.name))(std::io::Error::other(e)))?
        .map_err(Error::io(format!("sync {}", self.name)))
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        match self.store.get(&self.path(key)).await {
            Ok(r) => r.bytes().await.map(Some).map_err(Error::target(format!("download {key}"))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::target(format!("download {key}"))(e)),
        }
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::target(format!("delete {key}"))(e)),
        }
    }

    /// Every key under `prefix` with its size and modification time (ms), in no set order.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<(String, u64, i64)>> {
        let path = self.path(prefix.trim_end_matches('/'));
        let mut stream = self.store.list(Some(&path));
        let mut out = Vec::new();
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(Error::target(format!("list {prefix}")))?;
            out.push((self.key_of(&meta.location), meta.size, meta.last_modified.timestamp_millis()));
        }
        Ok(out)
    }
}
