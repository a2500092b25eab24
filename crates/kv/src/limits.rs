//! The limits of KV namespaces (DESIGN.md section 5; Workers KV's defaults) and the checks that
//! run before anything is written.

use crate::{Error, Result};

/// Limits of every KV namespace.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KvLimits {
    /// Longest key, in UTF-8 bytes. Default 512.
    pub max_key_bytes: usize,
    /// Largest value, in bytes. Default 25 MiB (26214400).
    pub max_value_bytes: usize,
    /// Largest metadata, serialized as JSON, in bytes. Default 1024.
    pub max_metadata_bytes: usize,
    /// Shortest `expiration_ttl`, and how far in the future an `expiration` must be, in
    /// seconds. Default 60.
    pub min_ttl_secs: i64,
    /// Most keys one list page returns. Default 1000.
    pub max_list_keys: usize,
    /// Most keys in one bulk get. Default 100.
    pub max_bulk_get_keys: usize,
    /// Most pairs (or keys) in one bulk write (or delete). Default 10,000.
    pub max_bulk_write_keys: usize,
    /// Largest total of the values of one bulk get, in bytes. Default 25 MiB.
    pub max_bulk_get_bytes: usize,
    /// Longest namespace title, in bytes. Default 512.
    pub max_title_bytes: usize,
    /// Memory for the read cache of durable entries, in bytes (0 turns it off). Default 64 MiB.
    pub read_cache_bytes: usize,
}

impl Default for KvLimits {
    fn default() -> Self {
        KvLimits {
            max_key_bytes: 512,
            max_value_bytes: 25 * 1024 * 1024,
            max_metadata_bytes: 1024,
            min_ttl_secs: 60,
            max_list_keys: 1000,
            max_bulk_get_keys: 100,
            max_bulk_write_keys: 10_000,
            max_bulk_get_bytes: 25 * 1024 * 1024,
            max_title_bytes: 512,
            read_cache_bytes: 64 * 1024 * 1024,
        }
    }
}

impl KvLimits {
    /// The storage limits of the objects that hold namespaces: values up to this service's
    /// limit pass through SQL parameters, so the SQL value limit is raised to match.
    pub fn object_limits(&self) -> cairn_storage::Limits {
        let mut limits = cairn_storage::Limits::default();
        limits.max_sql_value_bytes = self.max_value_bytes.max(limits.max_sql_value_bytes);
        limits.max_sql_result_bytes = (self.max_bulk_get_bytes + self.max_value_bytes).max(limits.max_sql_result_bytes);
        limits
    }

    /// Checks a key: not empty, not `.` or `..`, at most `max_key_bytes`.
    ///
    /// # Errors
    /// [`Error::KeyEmpty`], [`Error::KeyDots`], [`Error::KeyTooLong`].
    pub fn check_key(&self, key: &str) -> Result<()> {
        match key {
            "" => Err(Error::KeyEmpty),
            "." => Err(Error::KeyDots { key: "." }),
            ".." => Err(Error::KeyDots { key: ".." }),
            k if k.len() > self.max_key_bytes => Err(Error::KeyTooLong { len: k.len(), max: self.max_key_bytes }),
            _ => Ok(()),
        }
    }

    /// Checks a namespace title.
    ///
    /// # Errors
    /// [`Error::InvalidTitle`].
    pub fn check_title(&self, title: &str) -> Result<()> {
        if title.trim().is_empty() {
            return Err(Error::InvalidTitle { reason: "the title is empty".to_owned() });
        }
        if title.len() > self.max_title_bytes {
            return Err(Error::InvalidTitle {
                reason: format!("the title is {} bytes long, over the limit of {}", title.len(), self.max_title_bytes),
            });
        }
        Ok(())
    }

    /// Checks metadata and returns it serialized.
    ///
    /// # Errors
    /// [`Error::MetadataTooLarge`].
    pub fn check_metadata(&self, metadata: &serde_json::Value) -> Result<String> {
        let text = metadata.to_string();
        if text.len() > self.max_metadata_bytes {
            return Err(Error::MetadataTooLarge { len: text.len(), max: self.max_metadata_bytes });
        }
        Ok(text)
    }

    /// The absolute expiry (seconds since the epoch) of a put, from `expiration_ttl` (which
    /// wins when both are given, as in Workers KV) or `expiration`.
    ///
    /// # Errors
    /// [`Error::InvalidExpirationTtl`], [`Error::InvalidExpiration`].
    pub fn resolve_expiration(&self, expiration: Option<f64>, ttl: Option<f64>, now_ms: i64) -> Result<Option<i64>> {
        let now_secs = now_ms.div_euclid(1000);
        if let Some(ttl) = ttl {
            let value = show_number(ttl);
            if ttl.is_nan() || ttl.trunc() <= 0.0 {
                return Err(Error::InvalidExpirationTtl { value, reason: "Please specify integer greater than 0." });
            }
            let ttl = ttl.trunc().min(1e15) as i64;
            if ttl < self.min_ttl_secs {
                return Err(Error::InvalidExpirationTtl { value, reason: "Expiration TTL must be at least 60." });
            }
            return Ok(Some(now_secs + ttl));
        }
        if let Some(exp) = expiration {
            let value = show_number(exp);
            if exp.is_nan() || exp.trunc() <= now_secs as f64 {
                return Err(Error::InvalidExpiration {
                    value,
                    reason: "Please specify integer greater than the current number of seconds since the UNIX epoch.",
                });
            }
            let exp = exp.trunc().min(1e15) as i64;
            if exp < now_secs + self.min_ttl_secs {
                return Err(Error::InvalidExpiration {
                    value,
                    reason: "Expiration times must be at least 60 seconds in the future.",
                });
            }
            return Ok(Some(exp));
        }
        Ok(None)
    }

    /// Checks a list `limit`: 0 or less means the default (the maximum).
    ///
    /// # Errors
    /// [`Error::InvalidListLimit`].
    pub fn list_limit(&self, limit: Option<i64>) -> Result<usize> {
        match limit {
            None => Ok(self.max_list_keys),
            Some(n) if n <= 0 => Ok(self.max_list_keys),
            Some(n) if usize::try_from(n).map_or(true, |n| n > self.max_list_keys) => {
                Err(Error::InvalidListLimit { value: n, max: self.max_list_keys })
            }
            Some(n) => Ok(usize::try_from(n).unwrap_or(self.max_list_keys)),
        }
    }
}

/// A number as JavaScript would print it (`30`, not `30.0`; `NaN` as `0`, as Workers KV does).
fn show_number(n: f64) -> String {
    if n.is_nan() {
        "0".to_owned()
    } else if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let l = KvLimits::default();
        assert_eq!(l.check_key("").unwrap_err().to_string(), "Key name cannot be empty.");
        assert_eq!(l.check_key(".").unwrap_err().to_string(), "\".\" is not allowed as a key name.");
        assert_eq!(l.check_key("..").unwrap_err().to_string(), "\"..\" is not allowed as a key name.");
        let long = "é".repeat(257);
        assert_eq!(
            l.check_key(&long).unwrap_err().to_string(),
            "UTF-8 encoded length of 514 exceeds key length limit of 512."
        );
        assert!(l.check_key(&"a".repeat(512)).is_ok());
        assert!(l.check_key("...").is_ok());
    }

    #[test]
    fn expiration_rules() {
        let l = KvLimits::default();
        let now = 1_000_000_000_000; // ms
        let now_s = now / 1000;
        assert_eq!(
            l.resolve_expiration(None, Some(30.0), now).unwrap_err().to_string(),
            "Invalid expiration_ttl of 30. Expiration TTL must be at least 60."
        );
        assert_eq!(
            l.resolve_expiration(None, Some(0.0), now).unwrap_err().to_string(),
            "Invalid expiration_ttl of 0. Please specify integer greater than 0."
        );
        assert_eq!(
            l.resolve_expiration(None, Some(f64::NAN), now).unwrap_err().to_string(),
            "Invalid expiration_ttl of 0. Please specify integer greater than 0."
        );
        assert_eq!(l.resolve_expiration(None, Some(60.9), now).unwrap(), Some(now_s + 60));
        // The TTL wins over an (invalid) expiration.
        assert_eq!(l.resolve_expiration(Some(1.0), Some(60.0), now).unwrap(), Some(now_s + 60));
        assert!(
            l.resolve_expiration(Some(now_s as f64), None, now)
                .unwrap_err()
                .to_string()
                .contains("Please specify integer greater than the current number of seconds")
        );
        assert!(
            l.resolve_expiration(Some((now_s + 59) as f64), None, now)
                .unwrap_err()
                .to_string()
                .ends_with("Expiration times must be at least 60 seconds in the future.")
        );
        assert_eq!(l.resolve_expiration(Some((now_s + 60) as f64), None, now).unwrap(), Some(now_s + 60));
        assert_eq!(l.resolve_expiration(None, None, now).unwrap(), None);
    }

    #[test]
    fn list_limits() {
        let l = KvLimits::default();
        assert_eq!(l.list_limit(None).unwrap(), 1000);
        assert_eq!(l.list_limit(Some(0)).unwrap(), 1000);
        assert_eq!(l.list_limit(Some(-5)).unwrap(), 1000);
        assert_eq!(l.list_limit(Some(1000)).unwrap(), 1000);
        assert_eq!(l.list_limit(Some(7)).unwrap(), 7);
        assert_eq!(
            l.list_limit(Some(1001)).unwrap_err().to_string(),
            "Invalid key_count_limit of 1001. Please specify an integer less than 1000."
        );
    }

    #[test]
    fn metadata() {
        let l = KvLimits::default();
        assert!(l.check_metadata(&serde_json::json!({"a": "x".repeat(1000)})).is_ok());
        assert_eq!(
            l.check_metadata(&serde_json::json!("x".repeat(1023))).unwrap_err().to_string(),
            "Metadata length of 1025 exceeds limit of 1024."
        );
    }
}
