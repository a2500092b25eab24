//! Conversions between S3's wire types (s3s DTOs) and the bucket service's types.

use std::collections::BTreeMap;

use base64::Engine as _;
use cairn_bucket::{ChecksumAlgorithm, Conditions, EtagMatcher, HttpMetadata, Object};
use s3s::dto::{ETag, ETagCondition, Timestamp};
use s3s::{S3Error, S3ErrorCode, S3Result};

/// Milliseconds since the epoch of an S3 timestamp.
pub(crate) fn to_ms(t: &Timestamp) -> i64 {
    let t: time::OffsetDateTime = t.clone().into();
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// An S3 timestamp of milliseconds since the epoch.
pub(crate) fn from_ms(ms: i64) -> Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

/// The quoted-etag form S3 sends.
pub(crate) fn etag(object: &Object) -> ETag {
    ETag::Strong(object.etag.clone())
}

fn matcher(c: &ETagCondition) -> EtagMatcher {
    match c {
        ETagCondition::Any => EtagMatcher::Wildcard,
        ETagCondition::ETag(ETag::Strong(v)) => EtagMatcher::Strong(v.clone()),
        ETagCondition::ETag(ETag::Weak(v)) => EtagMatcher::Weak(v.clone()),
    }
}

/// Conditions from S3's `If-*` (or `x-amz-copy-source-if-*`) headers; `None` when none is set.
///
/// `If-Unmodified-Since` holds when the object was not modified *after* the date (RFC 9110),
/// so an upload in the same second passes; R2's rule is strict, hence the extra second.
pub(crate) fn conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> Option<Conditions> {
    let c = Conditions {
        etag_matches: if_match.map(|m| vec![matcher(m)]),
        etag_does_not_match: if_none_match.map(|m| vec![matcher(m)]),
        uploaded_after: if_modified_since.map(to_ms),
        uploaded_before: if_unmodified_since.map(|t| to_ms(t).saturating_add(1000)),
        seconds_granularity: true,
    };
    (!c.is_empty()).then_some(c)
}

/// [`conditions`] of a read, taking `If-Match` and `If-None-Match` from the raw headers so
/// that lists of etags (`"a", "b"`) work.
pub(crate) fn read_conditions(
    headers: &http::HeaderMap,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<Option<Conditions>> {
    let list = |name: &'static str| -> S3Result<Option<Vec<EtagMatcher>>> {
        let Some(v) = headers.get(name) else { return Ok(None) };
        let v = v
            .to_str()
            .map_err(|_| S3Error::with_message(S3ErrorCode::InvalidArgument, format!("{name} is not text")))?;
        cairn_bucket::parse_etag_list(name, v)
            .map(Some)
            .map_err(|e| S3Error::with_message(S3ErrorCode::InvalidArgument, e.to_string()))
    };
    let mut c = conditions(None, None, if_modified_since, if_unmodified_since).unwrap_or_default();
    c.etag_matches = list("if-match")?;
    c.etag_does_not_match = list("if-none-match")?;
    c.seconds_granularity = true;
    Ok((!c.is_empty()).then_some(c))
}

/// The HTTP metadata sent with a write.
pub(crate) fn http_metadata(
    content_type: Option<String>,
    content_language: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    cache_control: Option<String>,
    expires: Option<&Timestamp>,
) -> HttpMetadata {
    HttpMetadata {
        content_type,
        content_language,
        content_disposition,
        // `aws-chunked` describes the transfer, not the object (S3 drops it too).
        content_encoding: content_encoding
            .map(|e| e.split(',').map(str::trim).filter(|p| *p != "aws-chunked").collect::<Vec<_>>().join(","))
            .filter(|e| !e.is_empty()),
        cache_control,
        cache_expiry: expires.map(to_ms),
    }
}

/// Custom metadata (`x-amz-meta-*`), names lowercased as S3 stores them.
pub(crate) fn custom_metadata(metadata: Option<s3s::dto::Metadata>) -> BTreeMap<String, String> {
    metadata.unwrap_or_default().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect()
}

/// The S3 header name of a checksum algorithm.
fn header_name(alg: ChecksumAlgorithm) -> Option<&'static str> {
    Some(match alg {
        ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
        ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
        ChecksumAlgorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
        ChecksumAlgorithm::Sha1 => "x-amz-checksum-sha1",
        ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
        _ => return None,
    })
}

/// The algorithm of an `x-amz-checksum-*` header, or of an `x-amz-checksum-algorithm` /
/// `x-amz-sdk-checksum-algorithm` value.
pub(crate) fn algorithm_named(name: &str) -> Option<ChecksumAlgorithm> {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("x-amz-checksum-").unwrap_or(&name);
    ChecksumAlgorithm::from_key(name).filter(|a| header_name(*a).is_some())
}

fn decode_base64(alg: ChecksumAlgorithm, value: &str) -> S3Result<Vec<u8>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(value.trim()).map_err(|_| {
        S3Error::with_message(S3ErrorCode::InvalidDigest, format!("the {} value is not base64", alg.display_name()))
    })?;
    if bytes.len() != alg.digest_len() {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidDigest,
            format!("a {} checksum has {} bytes, not {}", alg.display_name(), alg.digest_len(), bytes.len()),
        ));
    }
    Ok(bytes)
}

/// Base64 of a digest, as S3 sends checksums.
pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The checksums a write must be checked against: those sent as headers, and the algorithms
/// whose values come after the body (trailers) or that the client asked to be computed.
#[derive(Default)]
pub(crate) struct ChecksumRequest {
    /// (algorithm, expected digest) known before the body.
    pub(crate) expected: Vec<(ChecksumAlgorithm, Vec<u8>)>,
    /// Every algorithm to compute while receiving the body.
    pub(crate) compute: Vec<ChecksumAlgorithm>,
}

impl ChecksumRequest {
    /// Reads `Content-MD5`, the `x-amz-checksum-*` values, `x-amz-sdk-checksum-algorithm` and
    /// the algorithms announced in `x-amz-trailer`.
    pub(crate) fn new(
        content_md5: Option<&str>,
        values: [(ChecksumAlgorithm, Option<&str>); 5],
        algorithm: Option<&str>,
        headers: &http::HeaderMap,
    ) -> S3Result<ChecksumRequest> {
        let mut req = ChecksumRequest::default();
        if let Some(md5) = content_md5 {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(md5.trim())
                .ok()
                .filter(|b| b.len() == 16)
                .ok_or_else(|| {
                    S3Error::with_message(S3ErrorCode::InvalidDigest, "The Content-MD5 you specified was invalid.")
                })?;
            req.expected.push((ChecksumAlgorithm::Md5, bytes));
        }
        for (alg, value) in values {
            if let Some(v) = value {
                req.expected.push((alg, decode_base64(alg, v)?));
                req.compute.push(alg);
            }
        }
        if let Some(a) = algorithm.and_then(algorithm_named) {
            req.compute.push(a);
        }
        for trailer in headers.get_all("x-amz-trailer") {
            for name in trailer.to_str().unwrap_or_default().split(',') {
                if let Some(a) = algorithm_named(name) {
                    req.compute.push(a);
                }
            }
        }
        req.compute.sort();
        req.compute.dedup();
        Ok(req)
    }

    /// Adds the checksums that arrived as trailers after the body.
    pub(crate) fn add_trailers(&mut self, trailers: Option<&http::HeaderMap>) -> S3Result<()> {
        let Some(trailers) = trailers else { return Ok(()) };
        for (name, value) in trailers {
            if let Some(alg) = algorithm_named(name.as_str())
                && name.as_str().starts_with("x-amz-checksum-")
            {
                let v = value.to_str().map_err(|_| S3Error::new(S3ErrorCode::InvalidDigest))?;
                self.expected.push((alg, decode_base64(alg, v)?));
            }
        }
        Ok(())
    }

    /// The base64 values the client sent, to echo in the response: CRC32, CRC32C, CRC64NVME,
    /// SHA-1, SHA-256 (S3's order of the `x-amz-checksum-*` fields).
    pub(crate) fn echoes(&self) -> [Option<String>; 5] {
        let echo = |alg| self.expected.iter().find(|(a, _)| *a == alg).map(|(_, v)| encode_base64(v));
        [
            echo(ChecksumAlgorithm::Crc32),
            echo(ChecksumAlgorithm::Crc32c),
            echo(ChecksumAlgorithm::Crc64Nvme),
            echo(ChecksumAlgorithm::Sha1),
            echo(ChecksumAlgorithm::Sha256),
        ]
    }
}
