//! Object operations: put, head, get (with ranges and conditions), delete, copy.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use cairn_storage::{ObjectStorage, SqlValue};

use crate::checksum::to_hex;
use crate::store::{BlobStore, BodyStream, StagedBody};
use crate::{BucketService, ChecksumAlgorithm, Conditions, Error, Evaluation, HttpMetadata, Object, Result};

/// How many times a read retries when the body it was about to open was replaced meanwhile.
const READ_RETRIES: usize = 3;

/// Columns of `r2_objects` read into an [`Object`], in [`object_from_row`]'s order.
pub(crate) const OBJECT_COLUMNS: &str =
    "key, version, size, etag, uploaded_ms, http_metadata, custom_metadata, checksums, part_count, storage_class, blob";

/// Options of a put.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// HTTP metadata to store.
    pub http_metadata: HttpMetadata,
    /// Custom metadata to store (checked against `max_metadata_bytes` before anything else).
    pub custom_metadata: BTreeMap<String, String>,
    /// Write only if these hold for the current object (R2's `onlyIf`).
    pub only_if: Option<Conditions>,
    /// Storage class (`Standard` by default).
    pub storage_class: Option<String>,
    /// Digests the body must have (R2's `md5`/`sha256`/..., S3's `Content-MD5` and
    /// `x-amz-checksum-*`); each is checked and, except MD5, stored in `checksums`.
    pub checksums: Vec<(ChecksumAlgorithm, Vec<u8>)>,
}

/// A byte range to read, as R2 takes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeSpec {
    /// First byte (from 0).
    pub offset: Option<u64>,
    /// How many bytes (clamped at the end of the object).
    pub length: Option<u64>,
    /// The last `suffix` bytes (incompatible with the other two).
    pub suffix: Option<u64>,
}

impl RangeSpec {
    /// Parses an HTTP `Range` header with one range (`bytes=a-b`, `bytes=a-`, `bytes=-n`).
    /// Anything else (several ranges, another unit, garbage) is `None`: the whole object.
    pub fn from_header(value: &str) -> Option<RangeSpec> {
        let spec = value.trim().strip_prefix("bytes=")?;
        if spec.contains(',') {
            return None;
        }
        let (start, end) = spec.split_once('-')?;
        let (start, end) = (start.trim(), end.trim());
        if start.is_empty() {
            return Some(RangeSpec { suffix: Some(end.parse().ok()?), ..Default::default() });
        }
        let offset: u64 = start.parse().ok()?;
        if end.is_empty() {
            return Some(RangeSpec { offset: Some(offset), ..Default::default() });
        }
        let last: u64 = end.parse().ok()?;
        if last < offset {
            return None;
        }
        Some(RangeSpec { offset: Some(offset), length: Some(last - offset + 1), suffix: None })
    }

    /// The bytes this selects of an object of `size` bytes (spec §9.4).
    ///
    /// # Errors
    /// [`Error::InvalidRange`] when it selects nothing.
    pub fn resolve(&self, size: u64) -> Result<ByteRange> {
        let bad = Err(Error::InvalidRange { size });
        if let Some(suffix) = self.suffix {
            if suffix == 0 {
                return bad;
            }
            let length = suffix.min(size);
            if length == 0 {
                return bad;
            }
            return Ok(ByteRange { offset: size - length, length });
        }
        let offset = self.offset.unwrap_or(0);
        if offset > size {
            return bad;
        }
        let length = self.length.map_or(size - offset, |l| l.min(size - offset));
        if length == 0 {
            return bad;
        }
        Ok(ByteRange { offset, length })
    }
}

/// The bytes of an object served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub offset: u64,
    /// Number of bytes.
    pub length: u64,
}

/// Options of a get.
#[derive(Clone, Debug, Default)]
pub struct GetOptions {
    /// Return the body only if these hold.
    pub only_if: Option<Conditions>,
    /// Only these bytes.
    pub range: Option<RangeSpec>,
}

/// What a get found.
#[derive(Debug)]
pub enum GetOutcome {
    /// The conditions held: the object and its body.
    Body(ObjectBody),
    /// A condition failed: the object without a body, and which conditions held.
    ConditionFailed(Object, Evaluation),
}

impl GetOutcome {
    /// The body, if the conditions held.
    pub fn into_body(self) -> Option<BodyStream> {
        match self {
            GetOutcome::Body(b) => Some(b.body),
            GetOutcome::ConditionFailed(..) => None,
        }
    }

    /// The object's metadata.
    pub fn object(&self) -> &Object {
        match self {
            GetOutcome::Body(b) => &b.object,
            GetOutcome::ConditionFailed(o, _) => o,
        }
    }
}

/// An object with its body (or the requested range of it).
#[derive(Debug)]
pub struct ObjectBody {
    /// The object.
    pub object: Object,
    /// The bytes served: the whole object unless a range was asked for.
    pub range: ByteRange,
    /// Whether a range was asked for (and the answer is partial content).
    pub partial: bool,
    /// The bytes.
    pub body: BodyStream,
}

/// Options of a copy.
#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    /// Copy only if these hold for the source.
    pub source_if: Option<Conditions>,
    /// Write only if these hold for the destination.
    pub only_if: Option<Conditions>,
    /// New metadata; `None` copies the source's.
    pub replace_metadata: Option<(HttpMetadata, BTreeMap<String, String>)>,
}

/// What a copy did.
#[derive(Debug)]
pub enum CopyOutcome {
    /// The copy: the new object.
    Copied(Box<Object>),
    /// The source key does not exist.
    SourceMissing,
    /// A condition on the source failed (which ones held).
    SourceConditionFailed(Evaluation),
    /// A condition on the destination failed: nothing was written.
    DestinationConditionFailed,
}

/// A row about to be written to `r2_objects`.
pub(crate) struct NewObject {
    pub(crate) object: Object,
    pub(crate) inline: Option<Vec<u8>>,
}

/// Reads the current object of `key`.
pub(crate) fn read_object(s: &mut ObjectStorage, key: &str) -> Result<Option<Object>> {
    let sql = format!("SELECT {OBJECT_COLUMNS} FROM r2_objects WHERE key = ?1");
    let row = s.exec(&sql, &[SqlValue::Blob(key.as_bytes().to_vec())])?.raw().next();
    Ok(row.map(object_from_row))
}

pub(crate) fn object_from_row(row: Vec<SqlValue>) -> Object {
    let mut v = row.into_iter();
    let mut next = || v.next().unwrap_or(SqlValue::Null);
    let text = |v: SqlValue| match v {
        SqlValue::Text(t) => t,
        SqlValue::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    };
    let key = text(next());
    let version = text(next());
    let size = next().as_i64().unwrap_or(0).unsigned_abs();
    let etag = text(next());
    let uploaded_ms = next().as_i64().unwrap_or(0);
    let http_metadata = serde_json::from_str(&text(next())).unwrap_or_default();
    let custom_metadata = serde_json::from_str(&text(next())).unwrap_or_default();
    let checksums = serde_json::from_str(&text(next())).unwrap_or_default();
    let part_count = next().as_i64().and_then(|n| u32::try_from(n).ok());
    let storage_class = text(next());
    let blob = match next() {
        SqlValue::Text(t) => Some(t),
        _ => None,
    };
    Object {
        key,
        version,
        size,
        etag,
        uploaded_ms,
        http_metadata,
        custom_metadata,
        checksums,
        storage_class,
        part_count,
        blob,
    }
}

/// Writes `new` over the key's current object; returns the replaced object's blob, if any.
pub(crate) fn write_object(s: &mut ObjectStorage, new: NewObject) -> Result<Option<String>> {
    let NewObject { object: o, inline } = new;
    let old_blob = s
        .exec("SELECT blob FROM r2_objects WHERE key = ?1", &[SqlValue::Blob(o.key.as_bytes().to_vec())])?
        .raw()
        .next()
        .and_then(|r| r.into_iter().next())
        .and_then(|v| if let SqlValue::Text(t) = v { Some(t) } else { None });
    s.exec(
        "INSERT OR REPLACE INTO r2_objects(key, version, size, etag, uploaded_ms, http_metadata,
            custom_metadata, checksums, part_count, storage_class, blob, inline)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        &[
            SqlValue::Blob(o.key.into_bytes()),
            SqlValue::Text(o.version),
            SqlValue::Integer(i64::try_from(o.size).unwrap_or(i64::MAX)),
            SqlValue::Text(o.etag),
            SqlValue::Integer(o.uploaded_ms),
            json_column(&o.http_metadata),
            json_column(&o.custom_metadata),
            json_column(&o.checksums),
            o.part_count.map_or(SqlValue::Null, |n| SqlValue::Integer(i64::from(n))),
            SqlValue::Text(o.storage_class),
            o.blob.map_or(SqlValue::Null, SqlValue::Text),
            inline.map_or(SqlValue::Null, SqlValue::Blob),
        ],
    )?;
    Ok(old_blob)
}

/// A metadata column's JSON text.
fn json_column<T: serde::Serialize>(value: &T) -> SqlValue {
    SqlValue::Text(serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned()))
}

fn read_inline(s: &mut ObjectStorage, key: &str) -> Result<Vec<u8>> {
    let row = s
        .exec("SELECT inline FROM r2_objects WHERE key = ?1", &[SqlValue::Blob(key.as_bytes().to_vec())])?
        .raw()
        .next();
    Ok(match row.and_then(|r| r.into_iter().next()) {
        Some(SqlValue::Blob(b)) => b,
        _ => Vec::new(),
    })
}

impl BucketService {
    /// Stores a staged body under `key`. Returns `None` (and writes nothing) when `only_if`
    /// does not hold.
    ///
    /// # Errors
    /// [`Error::KeyTooLong`], [`Error::MetadataTooLarge`], [`Error::BadDigest`] (all checked
    /// before anything is written), [`Error::BucketNotFound`]; the runtime's.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        mut body: StagedBody,
        options: PutOptions,
    ) -> Result<Option<Object>> {
        self.limits.check_key(key)?;
        self.limits.check_custom_metadata(&options.custom_metadata)?;
        let mut checksums = BTreeMap::new();
        checksums.insert("md5".to_owned(), to_hex(&body.digests.md5()));
        for (alg, expected) in &options.checksums {
            body.verify(*alg, expected)?;
            checksums.insert(alg.key().to_owned(), to_hex(expected));
        }
        let (b, object) = self.open(bucket).await?;
        if b.id != body.bucket_id {
            return Err(Error::InvalidMetadata { reason: "the body was staged for another bucket".into() });
        }
        let (inline, blob) = body.take();
        let new = Object {
            key: key.to_owned(),
            version: crate::random_hex(),
            size: body.size,
            etag: to_hex(&body.digests.md5()),
            uploaded_ms: self.now_ms(),
            http_metadata: options.http_metadata,
            custom_metadata: options.custom_metadata,
            checksums,
            storage_class: options.storage_class.unwrap_or_else(|| "Standard".to_owned()),
            part_count: None,
            blob: blob.clone(),
        };
        let only_if = options.only_if;
        let result = object
            .run(move |s| {
                if let Some(c) = &only_if {
                    let current = read_object(s, &new.key)?;
                    if !c.evaluate(current.as_ref().map(|o| (o.etag.as_str(), o.uploaded_ms))).passed() {
                        return Ok(Err((new, inline)));
                    }
                }
                let old = write_object(s, NewObject { object: new.clone(), inline })?;
                Ok::<_, Error>(Ok((new, old)))
            })
            .await;
        match result {
            Ok(Ok((new, old))) => {
                self.remove_blobs(&b.id, old.into_iter().collect());
                Ok(Some(new))
            }
            Ok(Err((_, inline))) => {
                body.restore(inline, blob);
                Ok(None)
            }
            Err(e) => {
                // A rolled-back event wrote nothing: the body is removed with `body`. A failed
                // durability step may have committed: its blob is kept (the sweep removes it if
                // it is unreferenced after all).
                if e.is_user_error() || matches!(e, Error::Runtime(cairn_runtime::Error::ShuttingDown)) {
                    body.restore(None, blob);
                }
                Err(e)
            }
        }
    }

    /// Stores bytes under `key` (stages and puts them).
    ///
    /// # Errors
    /// As [`BucketService::stage`] and [`BucketService::put`].
    pub async fn put_bytes(
        &self,
        bucket: &str,
        key: &str,
        bytes: Vec<u8>,
        options: PutOptions,
    ) -> Result<Option<Object>> {
        self.limits.check_key(key)?;
        self.limits.check_custom_metadata(&options.custom_metadata)?;
        let algorithms: Vec<ChecksumAlgorithm> = options.checksums.iter().map(|c| c.0).collect();
        let body = self.stage_bytes(bucket, bytes, &algorithms).await?;
        self.put(bucket, key, body, options).await
    }

    /// The object's metadata, `None` if the key is missing.
    ///
    /// # Errors
    /// [`Error::KeyTooLong`], [`Error::BucketNotFound`]; the runtime's.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<Option<Object>> {
        self.limits.check_key(key)?;
        let (_, object) = self.open(bucket).await?;
        let k = key.to_owned();
        object.run(move |s| read_object(s, &k)).await
    }

    /// Reads an object: `None` if the key is missing; the metadata without a body if a
    /// condition fails; otherwise the body (or the requested range).
    ///
    /// # Errors
    /// [`Error::KeyTooLong`], [`Error::InvalidRange`], [`Error::BucketNotFound`]; the runtime's.
    pub async fn get(&self, bucket: &str, key: &str, options: GetOptions) -> Result<Option<GetOutcome>> {
        self.limits.check_key(key)?;
        let (b, object) = self.open(bucket).await?;
        for _ in 0..READ_RETRIES {
            let k = key.to_owned();
            let found = object
                .run(move |s| {
                    let Some(o) = read_object(s, &k)? else { return Ok::<_, Error>(None) };
                    let inline = if o.blob.is_none() { Some(read_inline(s, &k)?) } else { None };
                    Ok(Some((o, inline)))
                })
                .await?;
            let Some((found, inline)) = found else { return Ok(None) };
            if let Some(c) = &options.only_if {
                let eval = c.evaluate(Some((found.etag.as_str(), found.uploaded_ms)));
                if !eval.passed() {
                    return Ok(Some(GetOutcome::ConditionFailed(found, eval)));
                }
            }
            let (range, partial) = match &options.range {
                Some(spec) => (spec.resolve(found.size)?, true),
                None => (ByteRange { offset: 0, length: found.size }, false),
            };
            let body = match (inline, &found.blob) {
                (Some(bytes), _) => {
                    let bytes = Bytes::from(bytes);
                    let start = usize::try_from(range.offset).unwrap_or(0).min(bytes.len());
                    let end = usize::try_from(range.offset + range.length).unwrap_or(0).min(bytes.len());
                    BodyStream::once(bytes.slice(start..end))
                }
                (None, Some(blob)) => {
                    let (store, id, blob) = (Arc::clone(&self.store), b.id.clone(), blob.clone());
                    let opened = tokio::task::spawn_blocking(move || store.open(&id, &blob))
                        .await
                        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
                    match opened {
                        Ok(file) => BodyStream::file(file, range.offset, range.length),
                        // Replaced and removed between the metadata read and the open: read again.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(Error::Io(e)),
                    }
                }
                (None, None) => BodyStream::once(Bytes::new()),
            };
            return Ok(Some(GetOutcome::Body(ObjectBody { object: found, range, partial, body })));
        }
        Err(Error::Io(std::io::Error::other("the object kept changing while it was being opened")))
    }

    /// Deletes keys (missing keys are skipped); every key is checked first, so one bad key
    /// fails the call. Returns the keys that existed.
    ///
    /// # Errors
    /// [`Error::KeyTooLong`], [`Error::BucketNotFound`]; the runtime's.
    pub async fn delete(&self, bucket: &str, keys: Vec<String>) -> Result<Vec<String>> {
        for k in &keys {
            self.limits.check_key(k)?;
        }
        let (b, object) = self.open(bucket).await?;
        let (deleted, blobs) = object
            .run(move |s| {
                let mut deleted = Vec::new();
                let mut blobs = Vec::new();
                for k in keys {
                    let row = s
                        .exec(
                            "DELETE FROM r2_objects WHERE key = ?1 RETURNING blob",
                            &[SqlValue::Blob(k.as_bytes().to_vec())],
                        )?
                        .raw()
                        .next();
                    if let Some(row) = row {
                        if let Some(SqlValue::Text(blob)) = row.into_iter().next() {
                            blobs.push(blob);
                        }
                        deleted.push(k);
                    }
                }
                Ok::<_, Error>((deleted, blobs))
            })
            .await?;
        self.remove_blobs(&b.id, blobs);
        Ok(deleted)
    }

    /// Copies an object (within a bucket or across buckets) without copying its body: blob
    /// files are immutable, so the copy links the same file.
    ///
    /// # Errors
    /// Key and metadata errors, [`Error::BucketNotFound`]; the runtime's.
    pub async fn copy(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        options: CopyOptions,
    ) -> Result<CopyOutcome> {
        self.limits.check_key(src_key)?;
        self.limits.check_key(dst_key)?;
        if let Some((_, custom)) = &options.replace_metadata {
            self.limits.check_custom_metadata(custom)?;
        }
        let (src_b, src_obj) = self.open(src_bucket).await?;
        let (dst_b, dst_obj) = self.open(dst_bucket).await?;
        for _ in 0..READ_RETRIES {
            let k = src_key.to_owned();
            let found = src_obj
                .run(move |s| {
                    let Some(o) = read_object(s, &k)? else { return Ok::<_, Error>(None) };
                    let inline = if o.blob.is_none() { Some(read_inline(s, &k)?) } else { None };
                    Ok(Some((o, inline)))
                })
                .await?;
            let Some((source, inline)) = found else { return Ok(CopyOutcome::SourceMissing) };
            if let Some(c) = &options.source_if {
                let eval = c.evaluate(Some((source.etag.as_str(), source.uploaded_ms)));
                if !eval.passed() {
                    return Ok(CopyOutcome::SourceConditionFailed(eval));
                }
            }
            let blob = match &source.blob {
                Some(src_blob) => {
                    let (store, from, to, src_blob) =
                        (Arc::clone(&self.store), src_b.id.clone(), dst_b.id.clone(), src_blob.clone());
                    let linked = tokio::task::spawn_blocking(move || store.link(&from, &src_blob, &to))
                        .await
                        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
                    match linked {
                        Ok(id) => Some(id),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(Error::Io(e)),
                    }
                }
                None => None,
            };
            let (http_metadata, custom_metadata) = match &options.replace_metadata {
                Some((h, c)) => (h.clone(), c.clone()),
                None => (source.http_metadata.clone(), source.custom_metadata.clone()),
            };
            let new = Object {
                key: dst_key.to_owned(),
                version: crate::random_hex(),
                uploaded_ms: self.now_ms(),
                http_metadata,
                custom_metadata,
                blob: blob.clone(),
                ..source
            };
            let only_if = options.only_if.clone();
            let result = dst_obj
                .run(move |s| {
                    if let Some(c) = &only_if {
                        let current = read_object(s, &new.key)?;
                        if !c.evaluate(current.as_ref().map(|o| (o.etag.as_str(), o.uploaded_ms))).passed() {
                            return Ok(None);
                        }
                    }
                    let old = write_object(s, NewObject { object: new.clone(), inline })?;
                    Ok::<_, Error>(Some((new, old)))
                })
                .await;
            return match result {
                Ok(Some((new, old))) => {
                    self.remove_blobs(&dst_b.id, old.into_iter().collect());
                    Ok(CopyOutcome::Copied(Box::new(new)))
                }
                Ok(None) => {
                    self.remove_blobs(&dst_b.id, blob.into_iter().collect());
                    Ok(CopyOutcome::DestinationConditionFailed)
                }
                Err(e) => {
                    if e.is_user_error() {
                        self.remove_blobs(&dst_b.id, blob.into_iter().collect());
                    }
                    Err(e)
                }
            };
        }
        Err(Error::Io(std::io::Error::other("the source kept changing while it was being copied")))
    }

    /// Removes blob files whose metadata is gone (durably), off the async threads.
    pub(crate) fn remove_blobs(&self, bucket_id: &str, blobs: Vec<String>) {
        if blobs.is_empty() {
            return;
        }
        let store: Arc<BlobStore> = Arc::clone(&self.store);
        let id = bucket_id.to_owned();
        tokio::task::spawn_blocking(move || store.remove(&id, &blobs));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_r2() {
        let r = |offset, length, suffix| RangeSpec { offset, length, suffix };
        assert_eq!(r(None, None, None).resolve(10).unwrap(), ByteRange { offset: 0, length: 10 });
        assert_eq!(r(Some(3), None, None).resolve(10).unwrap(), ByteRange { offset: 3, length: 7 });
        assert_eq!(r(None, Some(4), None).resolve(10).unwrap(), ByteRange { offset: 0, length: 4 });
        assert_eq!(r(Some(8), Some(5), None).resolve(10).unwrap(), ByteRange { offset: 8, length: 2 });
        assert_eq!(r(None, None, Some(3)).resolve(10).unwrap(), ByteRange { offset: 7, length: 3 });
        assert_eq!(r(None, None, Some(30)).resolve(10).unwrap(), ByteRange { offset: 0, length: 10 });
        for bad in [r(Some(11), None, None), r(Some(10), None, None), r(None, Some(0), None), r(None, None, Some(0))] {
            assert!(matches!(bad.resolve(10), Err(Error::InvalidRange { size: 10 })), "{bad:?}");
        }
    }

    #[test]
    fn range_headers() {
        let h = RangeSpec::from_header;
        assert_eq!(h("bytes=0-4"), Some(RangeSpec { offset: Some(0), length: Some(5), suffix: None }));
        assert_eq!(h("bytes=5-"), Some(RangeSpec { offset: Some(5), ..Default::default() }));
        assert_eq!(h("bytes=-3"), Some(RangeSpec { suffix: Some(3), ..Default::default() }));
        for whole in ["bytes=0-1,3-4", "items=0-1", "bytes=x-", "bytes=5-2", "garbage"] {
            assert_eq!(h(whole), None, "{whole}");
        }
    }
}
