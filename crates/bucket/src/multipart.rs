//! Multipart uploads with R2's rules (spec §9.7): create, upload part, complete, abort, and
//! S3's list parts and list uploads.
//!
//! Parts are staged bodies like any other (inline when small, else a blob file each). Complete
//! checks the parts, assembles them into one body (reusing a lone part's file, else copying the
//! files in order into a new one, in the kernel where it can), then in one event re-checks that
//! the upload and its parts are unchanged, writes the object and retires the upload. An upload
//! keeps its row after it completes or is aborted, so that late calls get R2's answers.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use base64::Engine as _;
use cairn_storage::{ObjectStorage, SqlValue};
use md5::Digest as _;

use crate::checksum::to_hex;
use crate::objects::{NewObject, read_object, write_object};
use crate::store::{PartSource, StagedBody};
use crate::{BucketService, ChecksumAlgorithm, Conditions, Error, HttpMetadata, Object, Result};

/// Options of a new multipart upload.
#[derive(Clone, Debug, Default)]
pub struct MultipartOptions {
    /// HTTP metadata of the object to be.
    pub http_metadata: HttpMetadata,
    /// Custom metadata of the object to be.
    pub custom_metadata: BTreeMap<String, String>,
    /// Storage class (`Standard` by default).
    pub storage_class: Option<String>,
}

/// An upload in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipartUpload {
    /// The key it will write.
    pub key: String,
    /// Its id: base64url of 128 random bytes.
    pub upload_id: String,
    /// When it was created, ms since the epoch.
    pub created_ms: i64,
    /// Its storage class.
    pub storage_class: String,
}

/// A part as uploaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedPart {
    /// Its number.
    pub part_number: u32,
    /// Its etag (hex MD5 of the part).
    pub etag: String,
    /// Its size.
    pub size: u64,
    /// Checksums given with it, by algorithm, hex.
    pub checksums: BTreeMap<String, String>,
}

/// A part named in a completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedPart {
    /// Its number.
    pub part_number: u32,
    /// The etag its upload returned (quotes are ignored).
    pub etag: String,
}

/// One uploaded part, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartInfo {
    /// The part.
    pub part: UploadedPart,
    /// When it was uploaded, ms since the epoch.
    pub uploaded_ms: i64,
}

/// A page of parts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartList {
    /// Parts by number.
    pub parts: Vec<PartInfo>,
    /// Whether there are more.
    pub truncated: bool,
    /// The part number to continue after.
    pub next_marker: Option<u32>,
}

/// A page of uploads in progress.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadList {
    /// Uploads by key, then upload id.
    pub uploads: Vec<MultipartUpload>,
    /// Whether there are more.
    pub truncated: bool,
    /// Where to continue: (key, upload id).
    pub next_marker: Option<(String, String)>,
}

/// The stored state of an upload.
struct UploadRow {
    key: String,
    state: String,
    http_metadata: HttpMetadata,
    custom_metadata: BTreeMap<String, String>,
    storage_class: String,
}

/// A stored part, as complete needs it.
#[derive(Clone, PartialEq, Eq)]
struct PartRow {
    number: u32,
    etag: String,
    size: u64,
    md5: Vec<u8>,
    blob: Option<String>,
}

fn read_upload(s: &mut ObjectStorage, upload_id: &str) -> Result<Option<UploadRow>> {
    let row = s
        .exec(
            "SELECT key, state, http_metadata, custom_metadata, storage_class FROM r2_uploads WHERE upload_id = ?1",
            &[SqlValue::Text(upload_id.to_owned())],
        )?
        .raw()
        .next();
    Ok(row.map(|r| {
        let mut v = r.into_iter();
        let mut text = || match v.next() {
            Some(SqlValue::Text(t)) => t,
            Some(SqlValue::Blob(b)) => String::from_utf8_lossy(&b).into_owned(),
            _ => String::new(),
        };
        let key = text();
        let state = text();
        let http_metadata = serde_json::from_str(&text()).unwrap_or_default();
        let custom_metadata = serde_json::from_str(&text()).unwrap_or_default();
        UploadRow { key, state, http_metadata, custom_metadata, storage_class: text() }
    }))
}

/// The open upload `upload_id` of `key`, with R2's errors: a never-created id or another key
/// is `unknown` (10001 for complete and abort); a finished upload is `NoSuchUpload` (10024).
fn open_upload(s: &mut ObjectStorage, key: &str, upload_id: &str, unknown_is_10024: bool) -> Result<UploadRow> {
    let unknown = || {
        if unknown_is_10024 {
            Error::NoSuchUpload { upload_id: upload_id.to_owned() }
        } else {
            Error::UnknownUpload { upload_id: upload_id.to_owned() }
        }
    };
    let upload = read_upload(s, upload_id)?.ok_or_else(unknown)?;
    if upload.key != key {
        return Err(unknown());
    }
    if upload.state != "open" {
        return Err(Error::NoSuchUpload { upload_id: upload_id.to_owned() });
    }
    Ok(upload)
}

fn read_parts(s: &mut ObjectStorage, upload_id: &str) -> Result<BTreeMap<u32, PartRow>> {
    let rows = s
        .exec(
            "SELECT part_number, etag, size, md5, blob FROM r2_parts WHERE upload_id = ?1 ORDER BY part_number",
            &[SqlValue::Text(upload_id.to_owned())],
        )?
        .raw();
    let mut out = BTreeMap::new();
    for r in rows {
        let mut v = r.into_iter();
        let number = v.next().and_then(|n| n.as_i64()).and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
        let etag = v.next().and_then(|e| e.as_str().map(str::to_owned)).unwrap_or_default();
        let size = v.next().and_then(|n| n.as_i64()).unwrap_or(0).unsigned_abs();
        let md5 = v.next().and_then(|m| m.as_blob().map(<[u8]>::to_vec)).unwrap_or_default();
        let blob = v.next().and_then(|b| b.as_str().map(str::to_owned));
        out.insert(number, PartRow { number, etag, size, md5, blob });
    }
    Ok(out)
}

fn read_part_inline(s: &mut ObjectStorage, upload_id: &str, number: u32) -> Result<Vec<u8>> {
    let row = s
        .exec(
            "SELECT inline FROM r2_parts WHERE upload_id = ?1 AND part_number = ?2",
            &[SqlValue::Text(upload_id.to_owned()), SqlValue::Integer(i64::from(number))],
        )?
        .raw()
        .next();
    Ok(match row.and_then(|r| r.into_iter().next()) {
        Some(SqlValue::Blob(b)) => b,
        _ => Vec::new(),
    })
}

fn unquote(etag: &str) -> &str {
    etag.trim().trim_start_matches("W/").trim_matches('"')
}

impl BucketService {
    /// Starts a multipart upload of `key`.
    ///
    /// # Errors
    /// [`Error::KeyTooLong`], [`Error::MetadataTooLarge`], [`Error::BucketNotFound`]; the
    /// runtime's.
    pub async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        options: MultipartOptions,
    ) -> Result<MultipartUpload> {
        self.limits.check_key(key)?;
        self.limits.check_custom_metadata(&options.custom_metadata)?;
        let (_, object) = self.open(bucket).await?;
        let mut random = [0u8; 128];
        getrandom::fill(&mut random).map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        let upload = MultipartUpload {
            key: key.to_owned(),
            upload_id: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random),
            created_ms: self.now_ms(),
            storage_class: options.storage_class.unwrap_or_else(|| "Standard".to_owned()),
        };
        let u = upload.clone();
        let http = serde_json::to_string(&options.http_metadata).unwrap_or_else(|_| "{}".into());
        let custom = serde_json::to_string(&options.custom_metadata).unwrap_or_else(|_| "{}".into());
        object
            .run(move |s| {
                s.exec(
                    "INSERT INTO r2_uploads(upload_id, key, state, created_ms, http_metadata, custom_metadata, storage_class)
                     VALUES (?1, ?2, 'open', ?3, ?4, ?5, ?6)",
                    &[
                        SqlValue::Text(u.upload_id),
                        SqlValue::Blob(u.key.into_bytes()),
                        SqlValue::Integer(u.created_ms),
                        SqlValue::Text(http),
                        SqlValue::Text(custom),
                        SqlValue::Text(u.storage_class),
                    ],
                )?;
                Ok::<_, Error>(())
            })
            .await?;
        Ok(upload)
    }

    /// Stores a staged body as part `part_number` of an upload, replacing an earlier upload
    /// of the same number.
    ///
    /// # Errors
    /// [`Error::InvalidPartNumber`], [`Error::BadDigest`], [`Error::NoSuchUpload`] (unknown,
    /// finished, or another key's upload); the runtime's.
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i64,
        mut body: StagedBody,
        checksums: Vec<(ChecksumAlgorithm, Vec<u8>)>,
    ) -> Result<UploadedPart> {
        let number = self.limits.check_part_number(part_number)?;
        self.limits.check_key(key)?;
        let mut sums = BTreeMap::new();
        for (alg, expected) in &checksums {
            body.verify(*alg, expected)?;
            sums.insert(alg.key().to_owned(), to_hex(expected));
        }
        let (b, object) = self.open(bucket).await?;
        let md5 = body.digests.md5();
        let part = UploadedPart { part_number: number, etag: to_hex(&md5), size: body.size, checksums: sums };
        let (inline, blob) = body.take();
        let (p, k, id, blob_id) = (part.clone(), key.to_owned(), upload_id.to_owned(), blob.clone());
        let now = self.now_ms();
        let result = object
            .run(move |s| {
                open_upload(s, &k, &id, true)?;
                let old = s
                    .exec(
                        "DELETE FROM r2_parts WHERE upload_id = ?1 AND part_number = ?2 RETURNING blob",
                        &[SqlValue::Text(id.clone()), SqlValue::Integer(i64::from(p.part_number))],
                    )?
                    .raw()
                    .next()
                    .and_then(|r| r.into_iter().next())
                    .and_then(|v| v.as_str().map(str::to_owned));
                s.exec(
                    "INSERT INTO r2_parts(upload_id, part_number, etag, size, md5, checksums, uploaded_ms, blob, inline)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    &[
                        SqlValue::Text(id),
                        SqlValue::Integer(i64::from(p.part_number)),
                        SqlValue::Text(p.etag),
                        SqlValue::Integer(i64::try_from(p.size).unwrap_or(i64::MAX)),
                        SqlValue::Blob(md5.to_vec()),
                        SqlValue::Text(serde_json::to_string(&p.checksums).unwrap_or_else(|_| "{}".into())),
                        SqlValue::Integer(now),
                        blob_id.map_or(SqlValue::Null, SqlValue::Text),
                        inline.map_or(SqlValue::Null, SqlValue::Blob),
                    ],
                )?;
                Ok::<_, Error>(old)
            })
            .await;
        match result {
            Ok(old) => {
                self.remove_blobs(&b.id, old.into_iter().collect());
                Ok(part)
            }
            Err(e) => {
                if e.is_user_error() {
                    body.restore(None, blob);
                }
                Err(e)
            }
        }
    }

    /// Completes an upload from the listed parts. Returns `None` (and leaves the upload open)
    /// when `only_if` does not hold for the key's current object.
    ///
    /// # Errors
    /// [`Error::UnknownUpload`] (never created, or another key's), [`Error::NoSuchUpload`]
    /// (completed or aborted), [`Error::DuplicatePart`], [`Error::InvalidPart`],
    /// [`Error::EntityTooSmall`], [`Error::InvalidPartSizes`], [`Error::EntityTooLarge`]; the
    /// runtime's.
    pub async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
        only_if: Option<Conditions>,
    ) -> Result<Option<Object>> {
        self.limits.check_key(key)?;
        let (b, object) = self.open(bucket).await?;
        let (k, id) = (key.to_owned(), upload_id.to_owned());
        let limits = self.limits.clone();
        let listed = parts.clone();
        // Check everything first, and gather what assembling needs.
        let (upload, chosen, sources, total) = object
            .run(move |s| {
                let upload = open_upload(s, &k, &id, false)?;
                let stored = read_parts(s, &id)?;
                let mut seen = HashSet::new();
                if let Some(dup) = listed.iter().find(|p| !seen.insert(p.part_number)) {
                    return Err(Error::DuplicatePart { part_number: dup.part_number });
                }
                let mut chosen = Vec::with_capacity(listed.len());
                for p in &listed {
                    match stored.get(&p.part_number) {
                        Some(row) if row.etag == unquote(&p.etag) => chosen.push(row.clone()),
                        _ => return Err(Error::InvalidPart { part_number: p.part_number }),
                    }
                }
                check_sizes(&chosen, limits.min_part_bytes)?;
                chosen.sort_by_key(|p| p.number);
                let total: u64 = chosen.iter().map(|p| p.size).sum();
                if total > limits.max_object_bytes {
                    return Err(Error::EntityTooLarge { len: total, max: limits.max_object_bytes });
                }
                let mut sources = Vec::with_capacity(chosen.len());
                for p in &chosen {
                    sources.push(match &p.blob {
                        Some(blob) => PartSource::Blob(blob.clone()),
                        None => PartSource::Inline(read_part_inline(s, &id, p.number)?),
                    });
                }
                Ok::<_, Error>((upload, chosen, sources, total))
            })
            .await?;
        // Assemble the body.
        let (inline, blob, new_blob) = match sources.as_slice() {
            [PartSource::Blob(only)] => (None, Some(only.clone()), false),
            _ if total <= self.limits.inline_bytes as u64
                && sources.iter().all(|s| matches!(s, PartSource::Inline(_))) =>
            {
                let mut bytes = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
                for s in &sources {
                    if let PartSource::Inline(b) = s {
                        bytes.extend_from_slice(b);
                    }
                }
                (Some(bytes), None, false)
            }
            _ => {
                let (store, bid) = (Arc::clone(&self.store), b.id.clone());
                let blob = tokio::task::spawn_blocking(move || store.concatenate(&bid, &sources))
                    .await
                    .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))??;
                (None, Some(blob), true)
            }
        };
        let mut md5s = md5::Md5::new();
        for p in &chosen {
            md5s.update(&p.md5);
        }
        let new = Object {
            key: key.to_owned(),
            version: crate::random_hex(),
            size: total,
            etag: format!("{}-{}", to_hex(&md5s.finalize()), chosen.len()),
            uploaded_ms: self.now_ms(),
            http_metadata: upload.http_metadata,
            custom_metadata: upload.custom_metadata,
            checksums: BTreeMap::new(),
            storage_class: upload.storage_class,
            part_count: Some(u32::try_from(chosen.len()).unwrap_or(u32::MAX)),
            blob: blob.clone(),
        };
        let id = upload_id.to_owned();
        let result = object
            .run(move |s| {
                // Nothing may have changed since the checks.
                open_upload(s, &new.key, &id, false)?;
                let stored = read_parts(s, &id)?;
                for p in &chosen {
                    if stored.get(&p.number) != Some(p) {
                        return Err(Error::InvalidPart { part_number: p.number });
                    }
                }
                if let Some(c) = &only_if {
                    let current = read_object(s, &new.key)?;
                    if !c.evaluate(current.as_ref().map(|o| (o.etag.as_str(), o.uploaded_ms))).passed() {
                        return Ok(None);
                    }
                }
                let mut retired: Vec<String> = s
                    .exec("DELETE FROM r2_parts WHERE upload_id = ?1 RETURNING blob", &[SqlValue::Text(id.clone())])?
                    .raw()
                    .filter_map(|r| r.into_iter().next().and_then(|v| v.as_str().map(str::to_owned)))
                    .filter(|blob| new.blob.as_deref() != Some(blob.as_str()))
                    .collect();
                s.exec("UPDATE r2_uploads SET state = 'completed' WHERE upload_id = ?1", &[SqlValue::Text(id)])?;
                retired.extend(write_object(s, NewObject { object: new.clone(), inline })?);
                Ok::<_, Error>(Some((new, retired)))
            })
            .await;
        match result {
            Ok(Some((new, retired))) => {
                self.remove_blobs(&b.id, retired);
                Ok(Some(new))
            }
            Ok(None) => {
                if new_blob {
                    self.remove_blobs(&b.id, blob.into_iter().collect());
                }
                Ok(None)
            }
            Err(e) => {
                if new_blob && e.is_user_error() {
                    self.remove_blobs(&b.id, blob.into_iter().collect());
                }
                Err(e)
            }
        }
    }

    /// Aborts an upload, removing its parts. Aborting a finished upload does nothing.
    ///
    /// # Errors
    /// [`Error::UnknownUpload`] (never created, or another key's); the runtime's.
    pub async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        self.limits.check_key(key)?;
        let (b, object) = self.open(bucket).await?;
        let (k, id) = (key.to_owned(), upload_id.to_owned());
        let blobs = object
            .run(move |s| {
                match open_upload(s, &k, &id, false) {
                    Ok(_) => {}
                    Err(Error::NoSuchUpload { .. }) => return Ok(Vec::new()),
                    Err(e) => return Err(e),
                }
                let blobs: Vec<String> = s
                    .exec("DELETE FROM r2_parts WHERE upload_id = ?1 RETURNING blob", &[SqlValue::Text(id.clone())])?
                    .raw()
                    .filter_map(|r| r.into_iter().next().and_then(|v| v.as_str().map(str::to_owned)))
                    .collect();
                s.exec("UPDATE r2_uploads SET state = 'aborted' WHERE upload_id = ?1", &[SqlValue::Text(id)])?;
                Ok::<_, Error>(blobs)
            })
            .await?;
        self.remove_blobs(&b.id, blobs);
        Ok(())
    }

    /// The parts of an open upload after `marker`, at most `max` of them.
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`]; the runtime's.
    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        marker: Option<u32>,
        max: usize,
    ) -> Result<PartList> {
        self.limits.check_key(key)?;
        let (_, object) = self.open(bucket).await?;
        let (k, id) = (key.to_owned(), upload_id.to_owned());
        object
            .run(move |s| {
                open_upload(s, &k, &id, true)?;
                let rows: Vec<Vec<SqlValue>> = s
                    .exec(
                        "SELECT part_number, etag, size, checksums, uploaded_ms FROM r2_parts
                         WHERE upload_id = ?1 AND part_number > ?2 ORDER BY part_number LIMIT ?3",
                        &[
                            SqlValue::Text(id),
                            SqlValue::Integer(i64::from(marker.unwrap_or(0))),
                            SqlValue::Integer(i64::try_from(max).unwrap_or(i64::MAX).saturating_add(1)),
                        ],
                    )?
                    .raw()
                    .collect();
                let truncated = rows.len() > max;
                let parts: Vec<PartInfo> = rows
                    .into_iter()
                    .take(max)
                    .map(|r| {
                        let mut v = r.into_iter();
                        let part_number =
                            v.next().and_then(|n| n.as_i64()).and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
                        let etag = v.next().and_then(|e| e.as_str().map(str::to_owned)).unwrap_or_default();
                        let size = v.next().and_then(|n| n.as_i64()).unwrap_or(0).unsigned_abs();
                        let checksums = v
                            .next()
                            .and_then(|c| c.as_str().and_then(|t| serde_json::from_str(t).ok()))
                            .unwrap_or_default();
                        let uploaded_ms = v.next().and_then(|n| n.as_i64()).unwrap_or(0);
                        PartInfo { part: UploadedPart { part_number, etag, size, checksums }, uploaded_ms }
                    })
                    .collect();
                let next_marker = if truncated { parts.last().map(|p| p.part.part_number) } else { None };
                Ok::<_, Error>(PartList { parts, truncated, next_marker })
            })
            .await
    }

    /// Open uploads whose key starts with `prefix`, after (`key`, `upload id`) `marker`.
    ///
    /// # Errors
    /// [`Error::BucketNotFound`]; the runtime's.
    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        marker: Option<(String, String)>,
        max: usize,
    ) -> Result<UploadList> {
        let (_, object) = self.open(bucket).await?;
        let prefix = prefix.as_bytes().to_vec();
        object
            .run(move |s| {
                let upper = cairn_storage::prefix_successor(&prefix);
                let (mk, mu) = marker.unwrap_or_default();
                let rows: Vec<Vec<SqlValue>> = s
                    .exec(
                        "SELECT key, upload_id, created_ms, storage_class FROM r2_uploads
                         WHERE state = 'open' AND key >= ?1 AND (?2 IS NULL OR key < ?2)
                           AND (key > ?3 OR (key = ?3 AND upload_id > ?4))
                         ORDER BY key, upload_id LIMIT ?5",
                        &[
                            SqlValue::Blob(prefix),
                            upper.map_or(SqlValue::Null, SqlValue::Blob),
                            SqlValue::Blob(mk.into_bytes()),
                            SqlValue::Text(mu),
                            SqlValue::Integer(i64::try_from(max).unwrap_or(i64::MAX).saturating_add(1)),
                        ],
                    )?
                    .raw()
                    .collect();
                let truncated = rows.len() > max;
                let uploads: Vec<MultipartUpload> = rows
                    .into_iter()
                    .take(max)
                    .map(|r| {
                        let mut v = r.into_iter();
                        let key = match v.next() {
                            Some(SqlValue::Blob(b)) => String::from_utf8_lossy(&b).into_owned(),
                            _ => String::new(),
                        };
                        let upload_id = v.next().and_then(|u| u.as_str().map(str::to_owned)).unwrap_or_default();
                        let created_ms = v.next().and_then(|n| n.as_i64()).unwrap_or(0);
                        let storage_class = v.next().and_then(|c| c.as_str().map(str::to_owned)).unwrap_or_default();
                        MultipartUpload { key, upload_id, created_ms, storage_class }
                    })
                    .collect();
                let next_marker =
                    if truncated { uploads.last().map(|u| (u.key.clone(), u.upload_id.clone())) } else { None };
                Ok::<_, Error>(UploadList { uploads, truncated, next_marker })
            })
            .await
    }
}

/// R2's size rules: in the order given, every part but the last is at least `min`; by part
/// number, every part but the last has the same size and the last is not larger.
fn check_sizes(parts: &[PartRow], min: u64) -> Result<()> {
    if let Some((_, init)) = parts.split_last()
        && let Some(small) = init.iter().find(|p| p.size < min)
    {
        return Err(Error::EntityTooSmall { part_number: small.number, len: small.size, min });
    }
    let mut sorted: Vec<&PartRow> = parts.iter().collect();
    sorted.sort_by_key(|p| p.number);
    if let Some((last, init)) = sorted.split_last()
        && let Some(first) = init.first()
    {
        {
            let size = first.size;
            if size < min {
                return Err(Error::InvalidPartSizes {
                    reason: format!("part {} has {size} bytes, under the minimum part size {min}", first.number),
                });
            }
            if let Some(odd) = init.iter().find(|p| p.size != size) {
                return Err(Error::InvalidPartSizes {
                    reason: format!(
                        "part {} has {} bytes, part {} has {size}: all parts but the last must have the same size",
                        odd.number, odd.size, first.number
                    ),
                });
            }
            if last.size > size {
                return Err(Error::InvalidPartSizes {
                    reason: format!(
                        "the last part ({}) has {} bytes, more than the others ({size})",
                        last.number, last.size
                    ),
                });
            }
        }
    }
    Ok(())
}
