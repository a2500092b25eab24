//! AWS Signature Version 4 in its header form (`Authorization: AWS4-HMAC-SHA256 ...`), as AWS
//! documents it for S3 ("Signature Calculations for the Authorization Header"): region
//! `us-east-1`, service `s3`. The benchmark sends every payload unsigned
//! (`x-amz-content-sha256: UNSIGNED-PAYLOAD`), so a body never has to be hashed before it is
//! sent.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The `x-amz-content-sha256` value of a request whose payload is not signed.
pub(crate) const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const REGION: &str = "us-east-1";
const SERVICE: &str = "s3";

/// An access key and its secret.
#[derive(Clone, Debug)]
pub(crate) struct Credentials {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
}

/// One request to sign.
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    /// The URI path as sent (already percent-encoded where needed).
    pub(crate) path: &'a str,
    /// The canonical query string (empty for none).
    pub(crate) query: &'a str,
    /// The signed headers: lowercase names, sorted by name; they must include `host`,
    /// `x-amz-content-sha256` and `x-amz-date`.
    pub(crate) headers: &'a [(&'a str, &'a str)],
    /// The `x-amz-content-sha256` value.
    pub(crate) payload_hash: &'a str,
    /// The `x-amz-date` value (`YYYYMMDDTHHMMSSZ`).
    pub(crate) amz_date: &'a str,
}

impl Credentials {
    /// The `Authorization` header of `req`.
    ///
    /// # Errors
    /// Never in practice (HMAC takes keys of any length); kept as a `Result` rather than a
    /// panic.
    pub(crate) fn authorization(&self, req: &Request<'_>) -> anyhow::Result<String> {
        let signed_headers = req.headers.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(";");
        let mut canonical = format!("{}\n{}\n{}\n", req.method, req.path, req.query);
        for (name, value) in req.headers {
            canonical.push_str(name);
            canonical.push(':');
            canonical.push_str(value.trim());
            canonical.push('\n');
        }
        canonical.push('\n');
        canonical.push_str(&signed_headers);
        canonical.push('\n');
        canonical.push_str(req.payload_hash);

        let date = req.amz_date.get(..8).context("x-amz-date too short")?;
        let scope = format!("{date}/{REGION}/{SERVICE}/aws4_request");
        let string_to_sign =
            format!("AWS4-HMAC-SHA256\n{}\n{scope}\n{}", req.amz_date, hex(&Sha256::digest(canonical.as_bytes())));
        let k_date = hmac(format!("AWS4{}", self.secret_access_key).as_bytes(), date.as_bytes())?;
        let k_region = hmac(&k_date, REGION.as_bytes())?;
        let k_service = hmac(&k_region, SERVICE.as_bytes())?;
        let k_signing = hmac(&k_service, b"aws4_request")?;
        let signature = hex(&hmac(&k_signing, string_to_sign.as_bytes())?);
        Ok(format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.access_key_id
        ))
    }
}

fn hmac(key: &[u8], data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|e| anyhow::anyhow!("HMAC key: {e}"))?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// `t` as an `x-amz-date` (`YYYYMMDDTHHMMSSZ`, UTC).
pub(crate) fn amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::{Credentials, Request, amz_date};

    /// AWS's "Example: GET Object" of the header-based SigV4 documentation (the same vector
    /// `s3s` tests its verifier with).
    #[test]
    fn signs_aws_documented_get_object_example() {
        let creds = Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        };
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let auth = creds
            .authorization(&Request {
                method: "GET",
                path: "/test.txt",
                query: "",
                headers: &[
                    ("host", "examplebucket.s3.amazonaws.com"),
                    ("range", "bytes=0-9"),
                    ("x-amz-content-sha256", empty),
                    ("x-amz-date", "20130524T000000Z"),
                ],
                payload_hash: empty,
                amz_date: "20130524T000000Z",
            })
            .unwrap();
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn formats_utc_dates() {
        let at = |secs| amz_date(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "19700101T000000Z");
        assert_eq!(at(1_369_353_600), "20130524T000000Z");
        assert_eq!(at(951_782_400), "20000229T000000Z");
        assert_eq!(at(4_102_444_799), "20991231T235959Z");
    }
}
