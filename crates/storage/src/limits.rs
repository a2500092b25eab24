//! Configurable limits, with the defaults documented in DESIGN.md section 5.

/// Limits applied to one object's storage. Every limit is checked before anything is written.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest KV key, in UTF-8 bytes. Default 2048.
    pub max_key_bytes: usize,
    /// Largest serialized KV value, in bytes. Default 131072 (128 KiB).
    pub max_value_bytes: usize,
    /// Most keys (or pairs) in one batch get, put or delete. Default 128.
    pub max_batch_keys: usize,
    /// Most bound parameters in one SQL statement. Default 100.
    pub max_sql_params: usize,
    /// Longest SQL text, in bytes. Default 100000.
    pub max_sql_statement_bytes: usize,
    /// Largest string, blob or row in SQL, in bytes. Default 2000000 (2 MB).
    pub max_sql_value_bytes: usize,
    /// Largest database file, in bytes. Default 10 GB (10^10 bytes).
    pub max_database_bytes: u64,
    /// Largest materialized SQL result, in bytes. Default 64 MiB.
    pub max_sql_result_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: 2048,
            max_value_bytes: 128 * 1024,
            max_batch_keys: 128,
            max_sql_params: 100,
            max_sql_statement_bytes: 100_000,
            max_sql_value_bytes: 2_000_000,
            max_database_bytes: 10_000_000_000,
            max_sql_result_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Limits {
    pub(crate) fn check_key(&self, key: &str) -> crate::Result<()> {
        if key.len() > self.max_key_bytes {
            return Err(crate::Error::KeyTooLarge { len: key.len(), max: self.max_key_bytes });
        }
        Ok(())
    }

    pub(crate) fn check_batch(&self, len: usize) -> crate::Result<()> {
        if len > self.max_batch_keys {
            return Err(crate::Error::TooManyKeys { len, max: self.max_batch_keys });
        }
        Ok(())
    }
}
