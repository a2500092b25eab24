//! Stored values: serde values (kept as JSON) or raw bytes, with a one-byte type tag.
//!
//! On disk a value is `tag || payload`: tag `b'j'` means the payload is UTF-8 JSON, tag `b'b'`
//! means raw bytes. The tag lets the HTTP layer return a value as it was stored.

use crate::{Error, Result};

const TAG_JSON: u8 = b'j';
const TAG_BYTES: u8 = b'b';

/// A value as stored in an object's KV table.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A serde value, kept as JSON.
    Json(serde_json::Value),
    /// Raw bytes.
    Bytes(Vec<u8>),
}

impl Value {
    /// Builds a JSON value from anything serde can serialize.
    ///
    /// # Errors
    /// [`Error::Serde`] if serialization fails.
    pub fn from_serde<T: serde::Serialize + ?Sized>(key: &str, value: &T) -> Result<Self> {
        serde_json::to_value(value).map(Value::Json).map_err(|source| Error::Serde { key: key.to_owned(), source })
    }

    /// Deserializes a JSON value into `T`. Raw bytes deserialize as a byte sequence.
    ///
    /// # Errors
    /// [`Error::Serde`] if the value does not have the shape of `T`.
    pub fn to_serde<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T> {
        let result = match self {
            Value::Json(v) => T::deserialize(v),
            Value::Bytes(b) => T::deserialize(serde_json::Value::from(b.clone())),
        };
        result.map_err(|source| Error::Serde { key: key.to_owned(), source })
    }

    /// Returns the value's bytes: raw bytes as they are, JSON as its UTF-8 text.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Value::Bytes(b) => b,
            Value::Json(v) => v.to_string().into_bytes(),
        }
    }

    /// Encodes the value with its type tag, as stored on disk.
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Value::Json(v) => {
                let mut out = vec![TAG_JSON];
                // Writing a serde_json::Value into a Vec cannot fail.
                serde_json::to_writer(&mut out, v).expect("serializing a JSON value to memory");
                out
            }
            Value::Bytes(b) => {
                let mut out = Vec::with_capacity(b.len() + 1);
                out.push(TAG_BYTES);
                out.extend_from_slice(b);
                out
            }
        }
    }

    /// Encodes a serde value directly, without building a `serde_json::Value` first.
    pub(crate) fn encode_serde<T: serde::Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>> {
        let mut out = vec![TAG_JSON];
        serde_json::to_writer(&mut out, value).map_err(|source| Error::Serde { key: key.to_owned(), source })?;
        Ok(out)
    }

    /// Decodes a stored, tagged value.
    pub(crate) fn decode(key: &str, raw: Vec<u8>) -> Result<Self> {
        match raw.first() {
            Some(&TAG_BYTES) => {
                let mut raw = raw;
                raw.remove(0);
                Ok(Value::Bytes(raw))
            }
            Some(&TAG_JSON) => serde_json::from_slice(raw.get(1..).unwrap_or_default())
                .map(Value::Json)
                .map_err(|source| Error::Serde { key: key.to_owned(), source }),
            _ => Err(Error::CorruptValue { key: key.to_owned(), reason: "unknown type tag" }),
        }
    }

    /// Deserializes a stored, tagged value straight into `T`.
    pub(crate) fn decode_serde<T: serde::de::DeserializeOwned>(key: &str, raw: &[u8]) -> Result<T> {
        match raw.first() {
            Some(&TAG_JSON) => serde_json::from_slice(raw.get(1..).unwrap_or_default())
                .map_err(|source| Error::Serde { key: key.to_owned(), source }),
            Some(&TAG_BYTES) => Value::Bytes(raw.get(1..).unwrap_or_default().to_vec()).to_serde(key),
            _ => Err(Error::CorruptValue { key: key.to_owned(), reason: "unknown type tag" }),
        }
    }

    /// Size a value's payload counts against the value limit (the tag byte is not counted).
    pub(crate) fn payload_len(encoded: &[u8]) -> usize {
        encoded.len().saturating_sub(1)
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(b)
    }
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        Value::Json(v)
    }
}
