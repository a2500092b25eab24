//! Cairn's S3 API: the S3 protocol over Cairn buckets, so that existing S3 tools (boto3, the
//! AWS CLI, rclone) work against Cairn unchanged.
//!
//! The protocol (routing, SigV4 header and presigned-URL authentication, `aws-chunked`
//! streaming bodies with signed or unsigned trailers, XML bodies and errors) is the `s3s`
//! crate's; this crate implements its [`s3s::S3`] trait on [`cairn_bucket::BucketService`],
//! which holds R2's semantics. See `docs/decisions/0005-s3-protocol-via-s3s.md`.
//!
//! # Layout
//! - `lib.rs`: [`S3Config`], [`service`], and the operations.
//! - `convert.rs`: wire types to and from the bucket service's types; checksum headers.
//! - `errors.rs`: bucket errors to S3 errors.

mod convert;
mod errors;

/// The S3 protocol crate, for serving [`service`]'s requests and responses.
pub use s3s;

use std::sync::Arc;

use cairn_bucket::{
    BucketService, ChecksumAlgorithm, CompletedPart as BucketPart, CopyOptions, CopyOutcome, GetOptions, GetOutcome,
    ListOptions, MultipartOptions, Object as BucketObject, PutOptions, RangeSpec, StageOptions,
};
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use crate::convert::{
    ChecksumRequest, conditions, custom_metadata, encode_base64, etag, from_ms, http_metadata, read_conditions,
};
use crate::errors::to_s3;

/// How the S3 listener is set up.
#[derive(Clone, Debug, Default)]
pub struct S3Config {
    /// Access key id → secret key. Requests must be signed with one of them.
    pub keys: Vec<(String, String)>,
    /// Base domains for virtual-host-style requests (`{bucket}.{domain}`); path-style
    /// requests work on any host.
    pub domains: Vec<String>,
}

/// The S3 service over `buckets`, ready to serve HTTP requests.
///
/// # Errors
/// A base domain that is not a valid domain name.
pub fn service(buckets: Arc<BucketService>, config: &S3Config) -> Result<s3s::service::S3Service, String> {
    let mut builder = s3s::service::S3ServiceBuilder::new(CairnS3 { buckets });
    builder.set_auth(Keys(config.keys.iter().cloned().collect()));
    if let Some(bad) = config.domains.iter().find(|d| d.is_empty() || d.contains(':') || d.starts_with('.')) {
        return Err(format!("invalid S3 base domain {bad:?}: give a host name such as s3.example.com"));
    }
    builder.set_host(Domains(config.domains.iter().map(|d| d.to_ascii_lowercase()).collect()));
    Ok(builder.build())
}

/// Virtual-host-style addressing: `{bucket}.{domain}[:port]` names a bucket; any other host
/// (an IP address, the domain itself, `localhost`) is path-style.
struct Domains(Vec<String>);

impl s3s::host::S3Host for Domains {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<s3s::host::VirtualHost<'a>> {
        // `name:port`; an IPv6 literal (`[::1]:8788`) is never a bucket's host.
        let name = match host.rsplit_once(':') {
            _ if host.starts_with('[') => host,
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        let name = name.to_ascii_lowercase();
        for domain in &self.0 {
            if let Some(bucket) = name.strip_suffix(domain.as_str()).and_then(|b| b.strip_suffix('.'))
                && !bucket.is_empty()
            {
                return Ok(s3s::host::VirtualHost::new(domain.as_str()).with_bucket(bucket.to_owned()));
            }
        }
        Ok(s3s::host::VirtualHost::new(name))
    }
}

/// The access keys requests are signed with.
struct Keys(std::collections::HashMap<String, String>);

#[async_trait::async_trait]
impl s3s::auth::S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<s3s::auth::SecretKey> {
        match self.0.get(access_key) {
            Some(secret) => Ok(secret.clone().into()),
            None => Err(S3Error::with_message(
                S3ErrorCode::InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records.",
            )),
        }
    }
}

/// The S3 operations on Cairn buckets.
struct CairnS3 {
    buckets: Arc<BucketService>,
}

/// A successful response.
fn ok<T>(output: T) -> S3Result<S3Response<T>> {
    Ok(S3Response::new(output))
}

fn owner() -> Owner {
    Owner { display_name: Some("cairn".to_owned()), id: Some("cairn".to_owned()) }
}

/// Percent-encodes a key or prefix when the client asked for `encoding-type=url`.
fn encode(value: String, url: bool) -> String {
    if url { urlencoding::encode(&value).into_owned() } else { value }
}

/// The S3 listing entry of an object.
fn list_entry(o: BucketObject, url: bool) -> Object {
    Object {
        e_tag: Some(etag(&o)),
        last_modified: Some(from_ms(o.uploaded_ms)),
        size: Some(i64::try_from(o.size).unwrap_or(i64::MAX)),
        storage_class: Some(ObjectStorageClass::from(if o.storage_class == "Standard" {
            "STANDARD".to_owned()
        } else {
            o.storage_class.clone()
        })),
        key: Some(encode(o.key, url)),
        ..Default::default()
    }
}

/// Metadata headers of a read (GetObject, HeadObject).
struct ReadHeaders {
    content_type: Option<String>,
    content_language: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    cache_control: Option<String>,
    expires: Option<Timestamp>,
    metadata: Option<Metadata>,
    checksums: [Option<String>; 5],
}

fn read_headers(o: &BucketObject, with_checksums: bool) -> ReadHeaders {
    let h = &o.http_metadata;
    let sum = |alg| if with_checksums { o.checksum(alg).map(|d| encode_base64(&d)) } else { None };
    ReadHeaders {
        // What S3 answers for an object stored without a type.
        content_type: Some(h.content_type.clone().unwrap_or_else(|| "binary/octet-stream".to_owned())),
        content_language: h.content_language.clone(),
        content_disposition: h.content_disposition.clone(),
        content_encoding: h.content_encoding.clone(),
        cache_control: h.cache_control.clone(),
        expires: h.cache_expiry.map(from_ms),
        metadata: (!o.custom_metadata.is_empty()).then(|| o.custom_metadata.clone().into_iter().collect()),
        checksums: [
            sum(ChecksumAlgorithm::Crc32),
            sum(ChecksumAlgorithm::Crc32c),
            sum(ChecksumAlgorithm::Crc64Nvme),
            sum(ChecksumAlgorithm::Sha1),
            sum(ChecksumAlgorithm::Sha256),
        ],
    }
}

/// The error of a read whose conditions failed: 304 or 412.
fn condition_error(eval: cairn_bucket::Evaluation) -> S3Error {
    if eval.not_modified() {
        S3Error::new(S3ErrorCode::NotModified)
    } else {
        S3Error::with_message(
            S3ErrorCode::PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold",
        )
    }
}

/// The checksums a PutObject or UploadPart input announces (both have the same fields).
macro_rules! checksum_request {
    ($input:expr, $headers:expr) => {
        ChecksumRequest::new(
            $input.content_md5.as_deref(),
            [
                (ChecksumAlgorithm::Crc32, $input.checksum_crc32.as_deref()),
                (ChecksumAlgorithm::Crc32c, $input.checksum_crc32c.as_deref()),
                (ChecksumAlgorithm::Crc64Nvme, $input.checksum_crc64nvme.as_deref()),
                (ChecksumAlgorithm::Sha1, $input.checksum_sha1.as_deref()),
                (ChecksumAlgorithm::Sha256, $input.checksum_sha256.as_deref()),
            ],
            $input.checksum_algorithm.as_ref().map(ChecksumAlgorithm_::as_str),
            $headers,
        )
    };
}

/// R2's form of an HTTP range.
fn range_spec(r: Range) -> RangeSpec {
    match r {
        Range::Int { first, last } => {
            RangeSpec { offset: Some(first), length: last.map(|l| l.saturating_sub(first) + 1), suffix: None }
        }
        Range::Suffix { length } => RangeSpec { suffix: Some(length), ..Default::default() },
    }
}

fn checksum_mode_enabled(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case("ENABLED"))
}

fn max_keys(value: Option<i32>, max: usize) -> S3Result<usize> {
    match value {
        None => Ok(max),
        Some(v) if v < 0 => Err(S3Error::with_message(S3ErrorCode::InvalidArgument, "max-keys must be >= 0")),
        Some(v) => Ok(usize::try_from(v).unwrap_or(max).min(max)),
    }
}

impl CairnS3 {
    /// Receives a write's body with the checksums it announced, verified (trailers included).
    async fn receive(
        &self,
        bucket: &str,
        body: Option<StreamingBlob>,
        mut sums: ChecksumRequest,
        trailers: Option<&s3s::TrailingHeaders>,
    ) -> S3Result<(cairn_bucket::StagedBody, ChecksumRequest)> {
        let options = StageOptions { algorithms: sums.compute.clone(), expected_len: None };
        let staged = match body {
            Some(b) => self.buckets.stage(bucket, b, options).await,
            None => {
                self.buckets.stage(bucket, futures_util::stream::empty::<Result<bytes::Bytes, String>>(), options).await
            }
        }
        .map_err(to_s3)?;
        sums.add_trailers(trailers.and_then(s3s::TrailingHeaders::take).as_ref())?;
        for (alg, expected) in &sums.expected {
            staged.verify(*alg, expected).map_err(to_s3)?;
        }
        Ok((staged, sums))
    }
}

#[async_trait::async_trait]
impl S3 for CairnS3 {
    async fn list_buckets(&self, _req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        let buckets = self.buckets.list_buckets().await.map_err(to_s3)?;
        ok(ListBucketsOutput {
            buckets: Some(
                buckets
                    .into_iter()
                    .map(|b| Bucket {
                        name: Some(b.name),
                        creation_date: Some(from_ms(b.created_ms)),
                        ..Default::default()
                    })
                    .collect(),
            ),
            owner: Some(owner()),
            ..Default::default()
        })
    }

    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        let name = req.input.bucket;
        self.buckets.create_bucket(&name).await.map_err(to_s3)?;
        ok(CreateBucketOutput { location: Some(format!("/{name}")) })
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.buckets.bucket(&req.input.bucket).await.map_err(to_s3)?;
        ok(HeadBucketOutput::default())
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.buckets.bucket(&req.input.bucket).await.map_err(to_s3)?;
        ok(GetBucketLocationOutput::default())
    }

    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.buckets.delete_bucket(&req.input.bucket).await.map_err(to_s3)?;
        ok(DeleteBucketOutput::default())
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        // A refusal before the body is read leaves the body to the server, which drains it.
        let S3Request { input, headers, trailing_headers, .. } = req;
        let limits = self.buckets.limits();
        limits.check_key(&input.key).map_err(to_s3)?;
        let custom = custom_metadata(input.metadata);
        limits.check_custom_metadata(&custom).map_err(to_s3)?;
        if let Some(len) = input.content_length
            && len.unsigned_abs() > limits.max_object_bytes
        {
            let (len, max) = (len.unsigned_abs(), limits.max_object_bytes);
            return Err(to_s3(cairn_bucket::Error::EntityTooLarge { len, max }));
        }
        let sums = checksum_request!(input, &headers)?;
        let (staged, sums) = self.receive(&input.bucket, input.body, sums, trailing_headers.as_ref()).await?;
        let only_if = conditions(input.if_match.as_ref(), input.if_none_match.as_ref(), None, None);
        let options = PutOptions {
            http_metadata: http_metadata(
                input.content_type,
                input.content_language,
                input.content_disposition,
                input.content_encoding,
                input.cache_control,
                input.expires.as_ref(),
            ),
            custom_metadata: custom,
            only_if,
            storage_class: None,
            checksums: sums.expected.clone(),
        };
        match self.buckets.put(&input.bucket, &input.key, staged, options).await.map_err(to_s3)? {
            Some(o) => {
                let [checksum_crc32, checksum_crc32c, checksum_crc64nvme, checksum_sha1, checksum_sha256] =
                    sums.echoes();
                ok(PutObjectOutput {
                    e_tag: Some(etag(&o)),
                    size: Some(i64::try_from(o.size).unwrap_or(i64::MAX)),
                    checksum_crc32,
                    checksum_crc32c,
                    checksum_crc64nvme,
                    checksum_sha1,
                    checksum_sha256,
                    ..Default::default()
                })
            }
            None => Err(self.write_condition_error(&input.bucket, &input.key, input.if_match.is_some()).await),
        }
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let only_if =
            read_conditions(&req.headers, input.if_modified_since.as_ref(), input.if_unmodified_since.as_ref())?;
        let range = input.range.map(range_spec);
        let outcome = self
            .buckets
            .get(&input.bucket, &input.key, GetOptions { only_if, range })
            .await
            .map_err(to_s3)?
            .ok_or_else(|| S3Error::with_message(S3ErrorCode::NoSuchKey, "The specified key does not exist."))?;
        let body = match outcome {
            GetOutcome::Body(b) => b,
            GetOutcome::ConditionFailed(_, eval) => return Err(condition_error(eval)),
        };
        let o = &body.object;
        let whole = !body.partial;
        let h = read_headers(o, whole && checksum_mode_enabled(input.checksum_mode.as_ref()));
        let [crc32, crc32c, crc64nvme, sha1, sha256] = h.checksums;
        let content_range = body
            .partial
            .then(|| format!("bytes {}-{}/{}", body.range.offset, body.range.offset + body.range.length - 1, o.size));
        ok(GetObjectOutput {
            accept_ranges: Some("bytes".to_owned()),
            content_length: Some(i64::try_from(body.range.length).unwrap_or(i64::MAX)),
            content_range,
            e_tag: Some(etag(o)),
            last_modified: Some(from_ms(o.uploaded_ms)),
            parts_count: o.part_count.and_then(|n| i32::try_from(n).ok()),
            content_type: h.content_type,
            content_language: h.content_language,
            content_disposition: h.content_disposition,
            content_encoding: h.content_encoding,
            cache_control: h.cache_control,
            expires: h.expires,
            metadata: h.metadata,
            checksum_crc32: crc32,
            checksum_crc32c: crc32c,
            checksum_crc64nvme: crc64nvme,
            checksum_sha1: sha1,
            checksum_sha256: sha256,
            body: Some(StreamingBlob::wrap(body.body)),
            ..Default::default()
        })
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let only_if =
            read_conditions(&req.headers, input.if_modified_since.as_ref(), input.if_unmodified_since.as_ref())?;
        let o = self
            .buckets
            .head(&input.bucket, &input.key)
            .await
            .map_err(to_s3)?
            .ok_or_else(|| S3Error::with_message(S3ErrorCode::NoSuchKey, "The specified key does not exist."))?;
        if let Some(c) = only_if {
            let eval = c.evaluate(Some((o.etag.as_str(), o.uploaded_ms)));
            if !eval.passed() {
                return Err(condition_error(eval));
            }
        }
        let range = match input.range.map(range_spec) {
            Some(spec) => Some(spec.resolve(o.size).map_err(to_s3)?),
            None => None,
        };
        let h = read_headers(&o, range.is_none() && checksum_mode_enabled(input.checksum_mode.as_ref()));
        let [crc32, crc32c, crc64nvme, sha1, sha256] = h.checksums;
        let length = range.map_or(o.size, |r| r.length);
        let content_range = range.map(|r| format!("bytes {}-{}/{}", r.offset, r.offset + r.length - 1, o.size));
        let status = if range.is_some() { http::StatusCode::PARTIAL_CONTENT } else { http::StatusCode::OK };
        let output = HeadObjectOutput {
            accept_ranges: Some("bytes".to_owned()),
            content_length: Some(i64::try_from(length).unwrap_or(i64::MAX)),
            content_range,
            e_tag: Some(etag(&o)),
            last_modified: Some(from_ms(o.uploaded_ms)),
            parts_count: o.part_count.and_then(|n| i32::try_from(n).ok()),
            content_type: h.content_type,
            content_language: h.content_language,
            content_disposition: h.content_disposition,
            content_encoding: h.content_encoding,
            cache_control: h.cache_control,
            expires: h.expires,
            metadata: h.metadata,
            checksum_crc32: crc32,
            checksum_crc32c: crc32c,
            checksum_crc64nvme: crc64nvme,
            checksum_sha1: sha1,
            checksum_sha256: sha256,
            ..Default::default()
        };
        Ok(S3Response::with_status(output, status))
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        self.buckets.delete(&input.bucket, vec![input.key]).await.map_err(to_s3)?;
        ok(DeleteObjectOutput::default())
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        let quiet = input.delete.quiet.unwrap_or(false);
        let limits = self.buckets.limits();
        let mut errors = Vec::new();
        let mut keys = Vec::new();
        for id in input.delete.objects {
            match limits.check_key(&id.key) {
                Ok(()) => keys.push(id.key),
                Err(e) => errors.push(Error {
                    code: Some("KeyTooLongError".to_owned()),
                    message: Some(e.to_string()),
                    key: Some(id.key),
                    ..Default::default()
                }),
            }
        }
        self.buckets.delete(&input.bucket, keys.clone()).await.map_err(to_s3)?;
        // S3 reports every requested key as deleted, whether or not it existed.
        let deleted =
            (!quiet).then(|| keys.into_iter().map(|k| DeletedObject { key: Some(k), ..Default::default() }).collect());
        ok(DeleteObjectsOutput { deleted, errors: (!errors.is_empty()).then_some(errors), ..Default::default() })
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        let CopySource::Bucket { bucket: src_bucket, key: src_key, .. } = &input.copy_source else {
            return Err(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                "access point copy sources are not supported",
            ));
        };
        let replace = input.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if !replace && **src_bucket == *input.bucket && **src_key == *input.key {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
            ));
        }
        let replace_metadata = if replace {
            let custom = custom_metadata(input.metadata);
            Some((
                http_metadata(
                    input.content_type,
                    input.content_language,
                    input.content_disposition,
                    input.content_encoding,
                    input.cache_control,
                    input.expires.as_ref(),
                ),
                custom,
            ))
        } else {
            None
        };
        let options = CopyOptions {
            source_if: conditions(
                input.copy_source_if_match.as_ref(),
                input.copy_source_if_none_match.as_ref(),
                input.copy_source_if_modified_since.as_ref(),
                input.copy_source_if_unmodified_since.as_ref(),
            ),
            only_if: None,
            replace_metadata,
        };
        match self.buckets.copy(src_bucket, src_key, &input.bucket, &input.key, options).await.map_err(to_s3)? {
            CopyOutcome::Copied(o) => ok(CopyObjectOutput {
                copy_object_result: Some(CopyObjectResult {
                    e_tag: Some(etag(&o)),
                    last_modified: Some(from_ms(o.uploaded_ms)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            CopyOutcome::SourceMissing => {
                Err(S3Error::with_message(S3ErrorCode::NoSuchKey, "The specified key does not exist."))
            }
            CopyOutcome::SourceConditionFailed(_) | CopyOutcome::DestinationConditionFailed => {
                Err(S3Error::with_message(
                    S3ErrorCode::PreconditionFailed,
                    "At least one of the pre-conditions you specified did not hold",
                ))
            }
        }
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let url = input.encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL);
        let max = max_keys(input.max_keys, self.buckets.limits().max_list_keys)?;
        let page = if max == 0 {
            self.buckets.bucket(&input.bucket).await.map_err(to_s3)?;
            cairn_bucket::ObjectList::default()
        } else {
            let options = ListOptions {
                prefix: input.prefix.clone(),
                limit: Some(i64::try_from(max).unwrap_or(1000)),
                cursor: input.continuation_token.clone(),
                start_after: input.start_after.clone(),
                delimiter: input.delimiter.clone(),
                ..Default::default()
            };
            self.buckets.list(&input.bucket, options).await.map_err(to_s3)?
        };
        let key_count = page.objects.len() + page.delimited_prefixes.len();
        ok(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(encode(input.prefix.unwrap_or_default(), url)),
            delimiter: input.delimiter.map(|d| encode(d, url)),
            max_keys: Some(i32::try_from(max).unwrap_or(1000)),
            key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
            continuation_token: input.continuation_token,
            start_after: input.start_after.map(|s| encode(s, url)),
            is_truncated: Some(page.truncated),
            next_continuation_token: page.cursor,
            encoding_type: input.encoding_type,
            contents: Some(page.objects.into_iter().map(|o| list_entry(o, url)).collect()),
            common_prefixes: Some(
                page.delimited_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(encode(p, url)) }).collect(),
            ),
            ..Default::default()
        })
    }

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let url = input.encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL);
        let max = max_keys(input.max_keys, self.buckets.limits().max_list_keys)?;
        let page = if max == 0 {
            self.buckets.bucket(&input.bucket).await.map_err(to_s3)?;
            cairn_bucket::ObjectList::default()
        } else {
            let options = ListOptions {
                prefix: input.prefix.clone(),
                limit: Some(i64::try_from(max).unwrap_or(1000)),
                start_after: input.marker.clone().filter(|m| !m.is_empty()),
                delimiter: input.delimiter.clone(),
                ..Default::default()
            };
            self.buckets.list(&input.bucket, options).await.map_err(to_s3)?
        };
        // The next marker is the position the page ended at: the last key, or the last key
        // under the last rolled-up prefix (so that prefix is not returned again).
        // S3's NextMarker is the last entry returned, a key or a rolled-up prefix (a marker
        // that rolls up into a prefix skips everything under it).
        let last_key = page.objects.last().map(|o| o.key.clone());
        let last_prefix = page.delimited_prefixes.last().cloned();
        let next_marker = if page.truncated { last_key.max(last_prefix).map(|k| encode(k, url)) } else { None };
        ok(ListObjectsOutput {
            name: Some(input.bucket),
            // Version 1 sends the prefix as given, even with encoding-type=url.
            prefix: Some(input.prefix.unwrap_or_default()),
            delimiter: input.delimiter.map(|d| encode(d, url)),
            marker: Some(encode(input.marker.unwrap_or_default(), url)),
            max_keys: Some(i32::try_from(max).unwrap_or(1000)),
            is_truncated: Some(page.truncated),
            next_marker,
            encoding_type: input.encoding_type,
            contents: Some(page.objects.into_iter().map(|o| list_entry(o, url)).collect()),
            common_prefixes: Some(
                page.delimited_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(encode(p, url)) }).collect(),
            ),
            ..Default::default()
        })
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        let options = MultipartOptions {
            http_metadata: http_metadata(
                input.content_type,
                input.content_language,
                input.content_disposition,
                input.content_encoding,
                input.cache_control,
                input.expires.as_ref(),
            ),
            custom_metadata: custom_metadata(input.metadata),
            storage_class: None,
        };
        let upload = self.buckets.create_multipart(&input.bucket, &input.key, options).await.map_err(to_s3)?;
        ok(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(upload.key),
            upload_id: Some(upload.upload_id),
            checksum_algorithm: input.checksum_algorithm,
            checksum_type: input.checksum_type,
            ..Default::default()
        })
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        let S3Request { input, headers, trailing_headers, .. } = req;
        self.buckets.limits().check_part_number(i64::from(input.part_number)).map_err(to_s3)?;
        let sums = checksum_request!(input, &headers)?;
        let (staged, sums) = self.receive(&input.bucket, input.body, sums, trailing_headers.as_ref()).await?;
        let part = self
            .buckets
            .upload_part(
                &input.bucket,
                &input.key,
                &input.upload_id,
                i64::from(input.part_number),
                staged,
                sums.expected.clone(),
            )
            .await
            .map_err(to_s3)?;
        let [checksum_crc32, checksum_crc32c, checksum_crc64nvme, checksum_sha1, checksum_sha256] = sums.echoes();
        ok(UploadPartOutput {
            e_tag: Some(ETag::Strong(part.etag)),
            checksum_crc32,
            checksum_crc32c,
            checksum_crc64nvme,
            checksum_sha1,
            checksum_sha256,
            ..Default::default()
        })
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let listed = input.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
        let mut parts = Vec::with_capacity(listed.len());
        for p in listed {
            let (Some(n), Some(e)) = (p.part_number, p.e_tag) else {
                return Err(S3Error::with_message(
                    S3ErrorCode::MalformedXML,
                    "each Part needs a PartNumber and an ETag",
                ));
            };
            let number = self.buckets.limits().check_part_number(i64::from(n)).map_err(to_s3)?;
            if parts.last().is_some_and(|last: &BucketPart| last.part_number >= number) {
                return Err(to_s3(cairn_bucket::Error::InvalidPartOrder));
            }
            parts.push(BucketPart { part_number: number, etag: e.value().to_owned() });
        }
        let only_if = conditions(input.if_match.as_ref(), input.if_none_match.as_ref(), None, None);
        let done = self
            .buckets
            .complete_multipart(&input.bucket, &input.key, &input.upload_id, parts, only_if)
            .await
            .map_err(to_s3)?;
        match done {
            Some(o) => ok(CompleteMultipartUploadOutput {
                bucket: Some(input.bucket.clone()),
                key: Some(o.key.clone()),
                e_tag: Some(etag(&o)),
                location: Some(format!("/{}/{}", input.bucket, o.key)),
                ..Default::default()
            }),
            None => Err(self.write_condition_error(&input.bucket, &input.key, input.if_match.is_some()).await),
        }
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        self.buckets.abort_multipart(&input.bucket, &input.key, &input.upload_id).await.map_err(to_s3)?;
        ok(AbortMultipartUploadOutput::default())
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let max = max_keys(input.max_parts, 1000)?;
        let marker = input.part_number_marker.and_then(|m| u32::try_from(m).ok());
        let page =
            self.buckets.list_parts(&input.bucket, &input.key, &input.upload_id, marker, max).await.map_err(to_s3)?;
        ok(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(i32::try_from(max).unwrap_or(1000)),
            part_number_marker: input.part_number_marker,
            is_truncated: Some(page.truncated),
            next_part_number_marker: page.next_marker.and_then(|m| i32::try_from(m).ok()),
            owner: Some(owner()),
            storage_class: Some(StorageClass::from("STANDARD".to_owned())),
            parts: Some(
                page.parts
                    .into_iter()
                    .map(|p| Part {
                        part_number: i32::try_from(p.part.part_number).ok(),
                        e_tag: Some(ETag::Strong(p.part.etag)),
                        size: Some(i64::try_from(p.part.size).unwrap_or(i64::MAX)),
                        last_modified: Some(from_ms(p.uploaded_ms)),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        })
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let max = max_keys(input.max_uploads, 1000)?;
        let marker = input.key_marker.clone().map(|k| (k, input.upload_id_marker.clone().unwrap_or_default()));
        let page = self
            .buckets
            .list_uploads(&input.bucket, input.prefix.as_deref().unwrap_or(""), marker, max)
            .await
            .map_err(to_s3)?;
        let (next_key_marker, next_upload_id_marker) = page.next_marker.unzip();
        ok(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(i32::try_from(max).unwrap_or(1000)),
            is_truncated: Some(page.truncated),
            next_key_marker,
            next_upload_id_marker,
            uploads: Some(
                page.uploads
                    .into_iter()
                    .map(|u| MultipartUpload {
                        key: Some(u.key),
                        upload_id: Some(u.upload_id),
                        initiated: Some(from_ms(u.created_ms)),
                        storage_class: Some(StorageClass::from("STANDARD".to_owned())),
                        owner: Some(owner()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        })
    }
}

impl CairnS3 {
    /// The error of a conditional write that did not happen: S3 answers `If-Match` on a
    /// missing key with 404, every other failed condition with 412.
    async fn write_condition_error(&self, bucket: &str, key: &str, had_if_match: bool) -> S3Error {
        if had_if_match && matches!(self.buckets.head(bucket, key).await, Ok(None)) {
            return S3Error::with_message(S3ErrorCode::NoSuchKey, "The specified key does not exist.");
        }
        S3Error::with_message(
            S3ErrorCode::PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold",
        )
    }
}

/// `ChecksumAlgorithm` of s3s, named apart from the bucket crate's.
use s3s::dto::ChecksumAlgorithm as ChecksumAlgorithm_;
