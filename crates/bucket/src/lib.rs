//! Cairn's buckets: the semantics of R2 (objects of any size with HTTP and custom metadata,
//! etags and checksums, conditional operations, ranges, delimited listing, multipart uploads),
//! stored in files plus a Cairn object per bucket.
//!
//! Each bucket is one object of the runtime namespace [`DATA_NAMESPACE`], named by the
//! bucket's id; its SQL tables `r2_objects`, `r2_uploads` and `r2_parts` hold the metadata, so
//! listing a million keys is an indexed, paged query, and every change inherits the runtime's
//! durability and group commit. Bodies up to [`BucketLimits::inline_bytes`] are stored in those
//! rows; larger ones in blob files (see `store.rs`) that are durable before the metadata naming
//! them commits. A write is acknowledged only once both are durable; a failed or abandoned
//! write leaves nothing visible. The list of buckets is a [`Registry`] in a system object.
//!
//! # Layout
//! - `limits.rs`: [`BucketLimits`], name, key and metadata checks.
//! - `checksum.rs`: [`ChecksumAlgorithm`] and the digests of bodies.
//! - `conditions.rs`: [`Conditions`] (`onlyIf`) with R2's precedence rules.
//! - `store.rs`: blob files, staging of request bodies, [`BodyStream`].
//! - `objects.rs`: put, head, get, delete, copy.
//! - `list.rs`: list with prefix, delimiter, cursor and start-after.
//! - `multipart.rs`: multipart uploads.
//!
//! # Example
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use cairn_bucket::{BucketLimits, BucketService, GetOptions, PutOptions};
//! let dir = tempfile::tempdir()?;
//! let rt = cairn_runtime::Runtime::builder(dir.path()).open()?;
//! let buckets = BucketService::new(rt.clone(), BucketLimits::default())?;
//! buckets.create_bucket("photos").await?;
//! let put = buckets.put_bytes("photos", "cat.jpg", b"meow".to_vec(), PutOptions::default()).await?;
//! assert_eq!(put.expect("no condition").etag, "4a4be40c96ac6314e91d93f38043a634");
//! let body = buckets.get("photos", "cat.jpg", GetOptions::default()).await?.expect("present");
//! assert_eq!(body.into_body().expect("passed").collect().await?, b"meow");
//! # rt.close();
//! # Ok(()) }
//! ```

mod checksum;
mod conditions;
mod error;
mod limits;
mod list;
mod multipart;
mod objects;
mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_runtime::registry::{Registry, Resource};
use cairn_runtime::{Durability, ObjectRef, Runtime};
use cairn_storage::{ObjectStorage, SqlValue};
use serde::{Deserialize, Serialize};

pub use checksum::{ChecksumAlgorithm, Digests, decode_hex, to_hex};
pub use conditions::{Conditions, EtagMatcher, Evaluation, parse_etag_list};
pub use error::{Error, Result};
pub use limits::{BucketLimits, check_bucket_name};
pub use list::{ListOptions, ObjectList, decode_cursor};
pub use multipart::{CompletedPart, MultipartOptions, MultipartUpload, PartInfo, PartList, UploadList, UploadedPart};
pub use objects::{ByteRange, CopyOptions, CopyOutcome, GetOptions, GetOutcome, ObjectBody, PutOptions, RangeSpec};
pub use store::{BodyStream, StageOptions, StagedBody};

use store::BlobStore;

/// The runtime namespace whose objects hold buckets' metadata (one object per bucket id).
pub const DATA_NAMESPACE: &str = "_cairn_r2";

/// Blob files live under `{data dir}/{BLOB_DIR}`.
pub const BLOB_DIR: &str = "buckets";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS r2_objects(
        key BLOB PRIMARY KEY NOT NULL, version TEXT NOT NULL, size INTEGER NOT NULL,
        etag TEXT NOT NULL, uploaded_ms INTEGER NOT NULL, http_metadata TEXT NOT NULL,
        custom_metadata TEXT NOT NULL, checksums TEXT NOT NULL, part_count INTEGER,
        storage_class TEXT NOT NULL, blob TEXT, inline BLOB);
    CREATE INDEX IF NOT EXISTS r2_objects_by_blob ON r2_objects(blob) WHERE blob IS NOT NULL;
    CREATE TABLE IF NOT EXISTS r2_uploads(
        upload_id TEXT PRIMARY KEY NOT NULL, key BLOB NOT NULL, state TEXT NOT NULL,
        created_ms INTEGER NOT NULL, http_metadata TEXT NOT NULL, custom_metadata TEXT NOT NULL,
        storage_class TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS r2_uploads_open ON r2_uploads(key, upload_id) WHERE state = 'open';
    CREATE TABLE IF NOT EXISTS r2_parts(
        upload_id TEXT NOT NULL, part_number INTEGER NOT NULL, etag TEXT NOT NULL,
        size INTEGER NOT NULL, md5 BLOB NOT NULL, checksums TEXT NOT NULL,
        uploaded_ms INTEGER NOT NULL, blob TEXT, inline BLOB,
        PRIMARY KEY(upload_id, part_number));
    CREATE INDEX IF NOT EXISTS r2_parts_by_blob ON r2_parts(blob) WHERE blob IS NOT NULL";

/// A bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// Its id (32 hex digits): the name of its metadata object and blob directory.
    pub id: String,
    /// Its name, unique among buckets.
    pub name: String,
    /// When it was created, ms since the epoch.
    pub created_ms: i64,
}

impl From<Resource> for Bucket {
    fn from(r: Resource) -> Self {
        Bucket { id: r.id, name: r.name, created_ms: r.created_ms }
    }
}

/// The standard HTTP metadata of an object (R2's `httpMetadata`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpMetadata {
    /// `Content-Type`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `Content-Language`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// `Content-Disposition`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    /// `Content-Encoding`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// `Cache-Control`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// `Expires`, ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_expiry: Option<i64>,
}

/// An object's metadata (R2's `R2Object`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    /// Its key.
    pub key: String,
    /// 32 random hex digits, new on every write.
    pub version: String,
    /// Its size in bytes.
    pub size: u64,
    /// Lowercase hex MD5 of the body; for a multipart object, the MD5 of the parts' MD5s
    /// followed by `-{number of parts}`.
    pub etag: String,
    /// When it was written, ms since the epoch.
    pub uploaded_ms: i64,
    /// HTTP metadata.
    pub http_metadata: HttpMetadata,
    /// Custom metadata.
    pub custom_metadata: BTreeMap<String, String>,
    /// Checksums by algorithm (`md5`, `sha256`, ...), lowercase hex.
    pub checksums: BTreeMap<String, String>,
    /// `Standard` unless set otherwise.
    pub storage_class: String,
    /// For a multipart object, how many parts it was made of.
    pub part_count: Option<u32>,
    pub(crate) blob: Option<String>,
}

impl Object {
    /// The etag quoted, as HTTP sends it.
    pub fn http_etag(&self) -> String {
        format!("\"{}\"", self.etag)
    }

    /// The stored checksum of `alg`, if any.
    pub fn checksum(&self, alg: ChecksumAlgorithm) -> Option<Vec<u8>> {
        self.checksums.get(alg.key()).and_then(|h| decode_hex(h))
    }
}

/// Buckets over a runtime.
pub struct BucketService {
    runtime: Runtime,
    registry: Registry,
    limits: BucketLimits,
    store: Arc<BlobStore>,
    /// When the service started: blob files older than this cannot belong to a write in flight.
    started: std::time::SystemTime,
}

impl std::fmt::Debug for BucketService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketService").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl BucketService {
    /// The service over `runtime`, with blob files under `{data dir}/buckets` (created on the
    /// first write).
    ///
    /// # Errors
    /// The runtime's.
    pub fn new(runtime: Runtime, limits: BucketLimits) -> Result<BucketService> {
        let root: PathBuf = runtime.config().data_dir.join(BLOB_DIR);
        let fsync = runtime.config().durability == Durability::Fsync;
        let registry = Registry::new(&runtime, "buckets")?;
        Ok(BucketService {
            runtime,
            registry,
            limits,
            store: Arc::new(BlobStore::new(root, fsync)),
            started: std::time::SystemTime::now(),
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> &BucketLimits {
        &self.limits
    }

    fn now_ms(&self) -> i64 {
        self.runtime.config().clock.now_ms()
    }

    /// Creates a bucket.
    ///
    /// # Errors
    /// [`Error::InvalidBucketName`], [`Error::BucketExists`]; the runtime's.
    pub async fn create_bucket(&self, name: &str) -> Result<Bucket> {
        check_bucket_name(name)?;
        if self.registry.find_by_name(name).await?.is_some() {
            return Err(Error::BucketExists { name: name.to_owned() });
        }
        let resource = self.registry.create(name, self.now_ms()).await?;
        let object = self.data_object(&resource.id)?;
        let created = object.run(|s| s.exec_script(SCHEMA).map(drop).map_err(Error::from)).await;
        if let Err(e) = created {
            let _ = self.registry.remove(&resource.id).await;
            return Err(e);
        }
        Ok(resource.into())
    }

    /// Every bucket, by name.
    ///
    /// # Errors
    /// The runtime's.
    pub async fn list_buckets(&self) -> Result<Vec<Bucket>> {
        let mut all: Vec<Bucket> = self.registry.list().await?.into_iter().map(Bucket::from).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// The bucket named `name`.
    ///
    /// # Errors
    /// [`Error::BucketNotFound`]; the runtime's.
    pub async fn bucket(&self, name: &str) -> Result<Bucket> {
        self.registry
            .find_by_name(name)
            .await?
            .map(Bucket::from)
            .ok_or_else(|| Error::BucketNotFound { name: name.to_owned() })
    }

    /// Deletes an empty bucket, aborting its unfinished multipart uploads.
    ///
    /// # Errors
    /// [`Error::BucketNotFound`], [`Error::BucketNotEmpty`]; the runtime's.
    pub async fn delete_bucket(&self, name: &str) -> Result<()> {
        let bucket = self.bucket(name).await?;
        let object = self.data_object(&bucket.id)?;
        let objects = object
            .run(|s| {
                let n = s.exec("SELECT count(*) FROM (SELECT 1 FROM r2_objects LIMIT 1)", &[])?.raw().next();
                Ok::<_, Error>(n.and_then(|r| r.first().and_then(SqlValue::as_i64)).unwrap_or(0))
            })
            .await?;
        if objects > 0 {
            return Err(Error::BucketNotEmpty { name: name.to_owned(), objects: objects.unsigned_abs() });
        }
        self.registry.remove(&bucket.id).await?;
        object.delete_all().await?;
        self.store.remove_bucket(&bucket.id)?;
        Ok(())
    }

    fn data_object(&self, id: &str) -> Result<ObjectRef> {
        Ok(self.runtime.object(DATA_NAMESPACE, id)?)
    }

    /// The bucket and its metadata object.
    async fn open(&self, name: &str) -> Result<(Bucket, ObjectRef)> {
        let bucket = self.bucket(name).await?;
        let object = self.data_object(&bucket.id)?;
        Ok((bucket, object))
    }

    /// Receives a request body for a later [`BucketService::put`] or
    /// [`BucketService::upload_part`] into `bucket`: small bodies stay in memory, larger ones
    /// are streamed to a durable file while MD5 and the asked-for checksums are computed.
    ///
    /// # Errors
    /// [`Error::BucketNotFound`], [`Error::EntityTooLarge`] (checked as the body arrives),
    /// [`Error::IncompleteBody`], [`Error::BodyRead`], [`Error::Io`].
    pub async fn stage<S, E>(&self, bucket: &str, body: S, options: StageOptions) -> Result<StagedBody>
    where
        S: futures_util::Stream<Item = std::result::Result<bytes::Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let bucket = self.bucket(bucket).await?;
        store::stage(
            Arc::clone(&self.store),
            &bucket.id,
            body,
            &options,
            self.limits.inline_bytes,
            self.limits.max_object_bytes,
        )
        .await
    }

    /// Stages bytes already in memory.
    ///
    /// # Errors
    /// As [`BucketService::stage`].
    pub async fn stage_bytes(
        &self,
        bucket: &str,
        bytes: Vec<u8>,
        algorithms: &[ChecksumAlgorithm],
    ) -> Result<StagedBody> {
        let len = bytes.len() as u64;
        let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(bytes::Bytes::from(bytes))]);
        let options = StageOptions { algorithms: algorithms.to_vec(), expected_len: Some(len) };
        self.stage(bucket, body, options).await
    }

    /// Removes blob files that no metadata references (left by a crash between writing a body
    /// and committing its metadata, or between a commit and the removal of replaced bodies).
    /// Only files older than this service are considered, so writes in flight are safe.
    /// Returns how many files were removed.
    ///
    /// # Errors
    /// The runtime's.
    pub async fn sweep_orphans(&self) -> Result<u64> {
        let mut removed = 0;
        for bucket in self.list_buckets().await? {
            let files = self.store.files_older_than(&bucket.id, self.started);
            let object = self.data_object(&bucket.id)?;
            for batch in files.chunks(500) {
                let batch = batch.to_vec();
                let store = Arc::clone(&self.store);
                let id = bucket.id.clone();
                let strays = object
                    .run(move |s| {
                        let mut strays = Vec::new();
                        for (name, path) in batch {
                            // A file is kept only where a row's blob id says it lives.
                            if !store.is_blob_path(&id, &name, &path) || !blob_referenced(s, &name)? {
                                strays.push(path);
                            }
                        }
                        Ok::<_, Error>(strays)
                    })
                    .await?;
                removed += strays.len() as u64;
                for path in &strays {
                    self.store.remove_path(path);
                }
            }
        }
        Ok(removed)
    }
}

fn blob_referenced(s: &mut ObjectStorage, blob: &str) -> Result<bool> {
    let rows = s
        .exec(
            "SELECT 1 FROM r2_objects WHERE blob = ?1 UNION ALL SELECT 1 FROM r2_parts WHERE blob = ?1 LIMIT 1",
            &[SqlValue::Text(blob.to_owned())],
        )?
        .raw()
        .count();
    Ok(rows > 0)
}

/// 32 random lowercase hex digits.
pub(crate) fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
