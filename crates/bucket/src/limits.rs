//! Limits of buckets (spec §9.1) and the checks that run before anything is written.

use std::collections::BTreeMap;

use crate::{Error, Result};

/// Limits of buckets. The defaults are R2's.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BucketLimits {
    /// Longest object key, in UTF-8 bytes (1024).
    pub max_key_bytes: usize,
    /// Largest object (5 GiB − 5 MiB).
    pub max_object_bytes: u64,
    /// Largest custom metadata, counted as R2 counts it (2048).
    pub max_metadata_bytes: usize,
    /// Smallest multipart part other than the last (5 MiB).
    pub min_part_bytes: u64,
    /// Largest part number (10000).
    pub max_part_number: u32,
    /// Most keys a list returns (1000).
    pub max_list_keys: usize,
    /// Bodies up to this size are kept in the bucket's SQLite database instead of a file, so a
    /// small write costs one group-committed transaction and no file of its own (64 KiB).
    pub inline_bytes: usize,
}

impl Default for BucketLimits {
    fn default() -> Self {
        BucketLimits {
            max_key_bytes: 1024,
            max_object_bytes: 5 * 1024 * 1024 * 1024 - 5 * 1024 * 1024,
            max_metadata_bytes: 2048,
            min_part_bytes: 5 * 1024 * 1024,
            max_part_number: 10_000,
            max_list_keys: 1000,
            inline_bytes: 64 * 1024,
        }
    }
}

impl BucketLimits {
    /// Checks an object key (any UTF-8 up to `max_key_bytes`, the empty key included).
    ///
    /// # Errors
    /// [`Error::KeyTooLong`].
    pub fn check_key(&self, key: &str) -> Result<()> {
        if key.len() > self.max_key_bytes {
            return Err(Error::KeyTooLong { len: key.len(), max: self.max_key_bytes });
        }
        Ok(())
    }

    /// Checks custom metadata against `max_metadata_bytes`, counting as R2 does: each name and
    /// value counts its UTF-16 length, doubled when it holds a code unit of 256 or more.
    ///
    /// # Errors
    /// [`Error::MetadataTooLarge`].
    pub fn check_custom_metadata(&self, metadata: &BTreeMap<String, String>) -> Result<()> {
        let len: usize = metadata.iter().map(|(k, v)| serialised_len(k) + serialised_len(v)).sum();
        if len > self.max_metadata_bytes {
            return Err(Error::MetadataTooLarge { len, max: self.max_metadata_bytes });
        }
        Ok(())
    }

    /// The effective page size of a list: `None` means the maximum; with metadata included,
    /// at most 100 (R2 returns fewer entries when it includes metadata).
    ///
    /// # Errors
    /// [`Error::InvalidMaxKeys`] outside `1..=max_list_keys`.
    pub fn list_limit(&self, limit: Option<i64>, with_metadata: bool) -> Result<usize> {
        let limit = match limit {
            None => self.max_list_keys,
            Some(v) if v < 1 || usize::try_from(v).map_or(true, |v| v > self.max_list_keys) => {
                return Err(Error::InvalidMaxKeys { value: v, max: self.max_list_keys });
            }
            Some(v) => usize::try_from(v).unwrap_or(self.max_list_keys),
        };
        Ok(if with_metadata { limit.min(100) } else { limit })
    }

    /// Checks a part number.
    ///
    /// # Errors
    /// [`Error::InvalidPartNumber`] outside `1..=max_part_number`.
    pub fn check_part_number(&self, n: i64) -> Result<u32> {
        match u32::try_from(n) {
            Ok(v) if (1..=self.max_part_number).contains(&v) => Ok(v),
            _ => Err(Error::InvalidPartNumber { value: n, max: self.max_part_number }),
        }
    }
}

/// R2's count of a metadata string (spec §9.3).
fn serialised_len(s: &str) -> usize {
    let units = s.encode_utf16().count();
    if s.encode_utf16().any(|u| u >= 256) { units * 2 } else { units }
}

/// Checks a bucket name: 3 to 63 characters of lowercase letters, digits, hyphens and dots,
/// starting and ending with a letter or digit, without `..` and not shaped like an IP address
/// (the S3 rules, which include R2's).
///
/// # Errors
/// [`Error::InvalidBucketName`].
pub fn check_bucket_name(name: &str) -> Result<()> {
    let bad = |reason| Err(Error::InvalidBucketName { name: name.to_owned(), reason });
    if !(3..=63).contains(&name.len()) {
        return bad("a bucket name has 3 to 63 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.') {
        return bad("a bucket name has only lowercase letters, digits, hyphens and dots");
    }
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !edge_ok(name.as_bytes().first()) || !edge_ok(name.as_bytes().last()) {
        return bad("a bucket name starts and ends with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return bad("a bucket name has no adjacent dots, nor a dot next to a hyphen");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("a bucket name is not an IP address");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_counted_as_r2_counts_it() {
        let limits = BucketLimits::default();
        let one = |k: &str, v: String| BTreeMap::from([(k.to_owned(), v)]);
        assert!(limits.check_custom_metadata(&one("key", "x".repeat(2045))).is_ok());
        assert!(limits.check_custom_metadata(&one("key", "x".repeat(2046))).is_err());
        // Each 🙂 is two UTF-16 units, doubled because they are >= 256: 4 per emoji.
        assert!(limits.check_custom_metadata(&one("key", "🙂".repeat(511))).is_ok());
        assert!(limits.check_custom_metadata(&one("key1", "🙂".repeat(511))).is_ok());
        let err = limits.check_custom_metadata(&one("key12", "🙂".repeat(511))).unwrap_err();
        assert!(matches!(err, Error::MetadataTooLarge { len: 2049, max: 2048 }), "{err}");
    }

    #[test]
    fn list_limits() {
        let limits = BucketLimits::default();
        assert_eq!(limits.list_limit(None, false).unwrap(), 1000);
        assert_eq!(limits.list_limit(Some(5), false).unwrap(), 5);
        assert_eq!(limits.list_limit(None, true).unwrap(), 100);
        for bad in [0, -1, 1001] {
            let err = limits.list_limit(Some(bad), false).unwrap_err();
            assert!(err.to_string().starts_with("MaxKeys params must be positive integer <= 1000."), "{err}");
        }
    }

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket", "a.b.c", "0123456789", &"a".repeat(63)] {
            check_bucket_name(ok).unwrap();
        }
        for bad in ["ab", "Abc", "-abc", "abc-", "a..b", "a.-b", "192.168.1.1", "a_b", &"a".repeat(64), "ab c"] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn part_numbers() {
        let limits = BucketLimits::default();
        assert_eq!(limits.check_part_number(1).unwrap(), 1);
        assert_eq!(limits.check_part_number(10_000).unwrap(), 10_000);
        let err = limits.check_part_number(10_001).unwrap_err();
        assert_eq!(err.to_string(), "Part number must be between 1 and 10000 (inclusive). Actual value was: 10001");
        assert!(limits.check_part_number(0).is_err());
    }
}
