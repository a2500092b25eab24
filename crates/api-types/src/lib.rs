//! Wire types of Cairn's HTTP API, shared by the server and its clients.
//!
//! Depends on nothing internal. Every error response has the shape of [`ErrorBody`]: an HTTP
//! status, a stable machine code (`storage.key_too_large`, `http.unauthorized`...) and a human
//! message naming the limit and the value.

use serde::{Deserialize, Serialize};

/// A point in time as users write it, in ms since the epoch: RFC 3339
/// (`2026-11-21T12:00:00Z`, fractions and offsets allowed), ISO 8601 without an offset (taken
/// as UTC), or Unix seconds (all digits). `None` if it is none of these.
pub fn parse_time_ms(t: &str) -> Option<i64> {
    use time::format_description::well_known::{Iso8601, Rfc3339};
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<i64>().ok()?.checked_mul(1000);
    }
    let at = time::OffsetDateTime::parse(t, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(t, &Iso8601::DEFAULT))
        .or_else(|_| time::PrimitiveDateTime::parse(t, &Iso8601::DEFAULT).map(time::PrimitiveDateTime::assume_utc))
        .ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The body of every error response: `{"error": {"code": ..., "message": ...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A stable machine code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable code, `{area}.{what}`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// A value in a JSON body: JSON values travel as they are; bytes as base64.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireValue {
    /// The value: any JSON value, or the base64 of the bytes when `encoding` is `base64`.
    pub value: serde_json::Value,
    /// `json` (the default) or `base64` (raw bytes).
    #[serde(default, skip_serializing_if = "Encoding::is_json")]
    pub encoding: Encoding,
}

/// How a [`WireValue`] is encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// A JSON value.
    #[default]
    Json,
    /// Raw bytes, base64 (standard alphabet, padded).
    Base64,
}

impl Encoding {
    /// Whether this is the default JSON encoding.
    pub fn is_json(&self) -> bool {
        matches!(self, Encoding::Json)
    }
}

/// A key and its value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value.
    #[serde(flatten)]
    pub value: WireValue,
}

/// Response of list and batch get: entries in key order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entries {
    /// The entries.
    pub entries: Vec<Entry>,
}

/// Body of a batch get or batch delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keys {
    /// The keys.
    pub keys: Vec<String>,
}

/// Body of a batch put.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutEntries {
    /// The pairs, written atomically.
    pub entries: Vec<Entry>,
}

/// Response of a delete: whether the key existed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    /// For a single delete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existed: Option<bool>,
    /// For a batch delete: how many of the keys existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<u64>,
}

/// Body of `POST .../sql`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// The SQL text; several statements may be separated by `;`.
    pub sql: String,
    /// Positional parameters: `null`, numbers (integers stay integers), strings, or
    /// `{"base64": "..."}` for blobs.
    #[serde(default)]
    pub params: Vec<serde_json::Value>,
}

/// Response of `POST .../sql`: the rows of the last statement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SqlResponse {
    /// Column names, duplicates included.
    pub columns: Vec<String>,
    /// Rows as arrays in column order; blobs as `{"base64": "..."}`.
    pub rows: Vec<Vec<serde_json::Value>>,
    /// Rows read.
    pub rows_read: u64,
    /// Rows written.
    pub rows_written: u64,
}

/// A condition on a key's current value, checked before a transaction applies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Precondition {
    /// The key.
    pub key: String,
    /// The value the key must hold; `null` (or absent) means the key must not exist.
    #[serde(default)]
    pub equals: Option<WireValue>,
}

/// One write of a transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Operation {
    /// Store a value.
    Put {
        /// The key.
        key: String,
        /// The value.
        #[serde(flatten)]
        value: WireValue,
    },
    /// Delete a key.
    Delete {
        /// The key.
        key: String,
    },
}

/// Body of `POST .../transaction`: all operations apply, or none, and only if every
/// precondition holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionRequest {
    /// Conditions checked first.
    #[serde(default)]
    pub preconditions: Vec<Precondition>,
    /// Writes applied in order.
    #[serde(default)]
    pub operations: Vec<Operation>,
}

/// The alarm of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    /// Milliseconds since the Unix epoch, or `null` when no alarm is set.
    pub time_ms: Option<i64>,
}

/// A bookmark.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookmarkResponse {
    /// The bookmark string.
    pub bookmark: String,
}

/// `POST .../restore`: where to restore an object to (a bookmark, or its state at a time).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRequest {
    /// A bookmark of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bookmark: Option<String>,
    /// Or a time, ms since the epoch, within the retention window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<i64>,
    /// Restore when the object next starts instead of now.
    #[serde(default)]
    pub on_next_start: bool,
}

/// The answer to a restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreResponse {
    /// The object's bookmark after the restore (for `on_next_start`: the bookmark restored to).
    pub bookmark: String,
    /// The bookmark of the state before the restore: restoring it undoes the restore.
    pub previous_bookmark: String,
}

/// `POST .../fork`: a new object copied from this one at a bookmark, a time, or now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkRequest {
    /// The new object's namespace (default: the source's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The new object's name; it must not have been written.
    pub name: String,
    /// A bookmark of the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bookmark: Option<String>,
    /// Or a time, ms since the epoch, within the retention window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<i64>,
}

/// Acknowledgement of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ok {
    /// Always true.
    pub ok: bool,
}

/// One object of a namespace, from the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    /// The object's name.
    pub name: String,
    /// When it was first written, ms since the epoch.
    pub created_ms: i64,
    /// Bytes of its database and WAL files.
    pub size_bytes: u64,
    /// When its files were last modified, ms since the epoch.
    pub last_write_ms: i64,
}

/// A page of a namespace's objects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectList {
    /// Objects in name order.
    pub objects: Vec<ObjectInfo>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}
