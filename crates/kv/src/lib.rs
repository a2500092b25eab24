//! Cairn's KV namespaces: the semantics of Workers KV (keys, values up to 25 MiB, metadata,
//! expiration, cursor-paged listing, bulk operations) built on Cairn objects.
//!
//! Each namespace is one object of the runtime namespace [`DATA_NAMESPACE`], named by the
//! namespace's id; its entries live in that object's SQL table `kv_entries`, so they inherit the
//! runtime's durability (a write returns once it is durable), group commit and the commit log.
//! The list of namespaces is a [`Registry`] in a system object. Unlike Workers KV, which is
//! eventually consistent, a namespace reads its own writes at once.
//!
//! Expired entries are invisible as soon as they expire. They are deleted in the background:
//! a put with an expiration moves the namespace object's alarm to the earliest expiry, and
//! [`KvService::purge_expired`] (called by the server when the alarm is due) deletes a bounded
//! number of expired entries and sets the alarm to the next expiry.
//!
//! # Layout
//! - `limits.rs`: [`KvLimits`] and the checks that run before any write.
//! - `error.rs`: [`Error`], with Workers KV's messages.
//! - `lib.rs`: [`KvService`], the operations.
//!
//! # Example
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use cairn_kv::{KvLimits, KvService, PutOptions};
//! let dir = tempfile::tempdir()?;
//! let limits = KvLimits::default();
//! let rt = cairn_runtime::Runtime::builder(dir.path())
//!     .namespace_limits(cairn_kv::DATA_NAMESPACE, limits.object_limits())
//!     .open()?;
//! let kv = KvService::new(rt.clone(), limits)?;
//! let ns = kv.create_namespace("sessions").await?;
//! kv.put(&ns.id, "user:1", b"ada".to_vec(), PutOptions::default()).await?;
//! let entry = kv.get(&ns.id, "user:1").await?.expect("present");
//! assert_eq!(entry.text(), "ada");
//! # rt.close();
//! # Ok(()) }
//! ```

mod cache;
mod error;
mod limits;

use base64::Engine as _;
use cairn_runtime::registry::{Registry, Resource};
use cairn_runtime::{ObjectRef, Runtime};
use cairn_storage::{ObjectStorage, SqlValue, prefix_successor};

use crate::cache::{Cache, Lookup, MAX_CACHED_VALUE, State};

pub use error::{Error, ErrorKind, Result};
pub use limits::KvLimits;

/// The runtime namespace whose objects hold KV namespaces (one object per namespace id).
pub const DATA_NAMESPACE: &str = "_cairn_kv";

/// Expired entries deleted per purge step, so one step stays a short event.
const PURGE_BATCH: i64 = 1000;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS kv_entries(
        key BLOB PRIMARY KEY, value BLOB NOT NULL, expiration INTEGER, metadata TEXT);
    CREATE INDEX IF NOT EXISTS kv_entries_by_expiration ON kv_entries(expiration)
        WHERE expiration IS NOT NULL";

/// A KV namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    /// Its id (32 hex digits).
    pub id: String,
    /// Its title, unique among namespaces.
    pub title: String,
    /// When it was created, ms since the epoch.
    pub created_ms: i64,
}

impl From<Resource> for Namespace {
    fn from(r: Resource) -> Self {
        Namespace { id: r.id, title: r.name, created_ms: r.created_ms }
    }
}

/// A stored entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The value's bytes.
    pub value: Vec<u8>,
    /// When it expires, seconds since the epoch.
    pub expiration: Option<i64>,
    /// Its metadata.
    pub metadata: Option<serde_json::Value>,
}

impl Entry {
    /// The value as text (Workers KV's default `get` type); invalid UTF-8 is replaced.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.value)
    }

    /// The value parsed as JSON (`get(key, "json")`).
    ///
    /// # Errors
    /// [`Error::NonJsonValue`] if it is not JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.value).map_err(|_| Error::NonJsonValue)
    }
}

/// Options of a put.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// Absolute expiry, seconds since the epoch (at least `min_ttl_secs` ahead).
    pub expiration: Option<f64>,
    /// Time to live in seconds (at least `min_ttl_secs`); wins over `expiration`.
    pub expiration_ttl: Option<f64>,
    /// Metadata (JSON, at most `max_metadata_bytes` serialized).
    pub metadata: Option<serde_json::Value>,
}

/// One pair of a bulk write.
#[derive(Clone, Debug)]
pub struct BulkPut {
    /// The key.
    pub key: String,
    /// The value's bytes.
    pub value: Vec<u8>,
    /// Expiry and metadata.
    pub options: PutOptions,
}

/// Options of a list.
#[derive(Clone, Debug, Default)]
pub struct ListKeys {
    /// Only keys starting with this (matched literally, byte for byte).
    pub prefix: Option<String>,
    /// Most keys to return; `None`, 0 or less mean the maximum.
    pub limit: Option<i64>,
    /// Where the previous page ended ([`KeyList::cursor`]).
    pub cursor: Option<String>,
}

/// One key of a list.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyInfo {
    /// The key.
    pub name: String,
    /// When it expires, seconds since the epoch.
    pub expiration: Option<i64>,
    /// Its metadata.
    pub metadata: Option<serde_json::Value>,
}

/// A page of keys.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyList {
    /// Keys in UTF-8 byte order.
    pub keys: Vec<KeyInfo>,
    /// Whether this is the last page.
    pub list_complete: bool,
    /// Where to continue; present only when `list_complete` is false.
    pub cursor: Option<String>,
}

/// KV namespaces over a runtime.
pub struct KvService {
    runtime: Runtime,
    registry: Registry,
    limits: KvLimits,
    /// Durable entries read or written recently, served without an event.
    cache: Cache,
}

impl std::fmt::Debug for KvService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvService").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl KvService {
    /// The service over `runtime`. The runtime should give [`DATA_NAMESPACE`] the object limits
    /// of [`KvLimits::object_limits`], or values over the default SQL value limit are refused.
    ///
    /// # Errors
    /// The runtime's.
    pub fn new(runtime: Runtime, limits: KvLimits) -> Result<KvService> {
        let registry = Registry::new(&runtime, "kv-namespaces")?;
        let cache = Cache::new(limits.read_cache_bytes);
        Ok(KvService { runtime, registry, limits, cache })
    }

    /// The limits in force.
    pub fn limits(&self) -> &KvLimits {
        &self.limits
    }

    fn now_ms(&self) -> i64 {
        self.runtime.config().clock.now_ms()
    }

    /// Creates a namespace.
    ///
    /// # Errors
    /// [`Error::InvalidTitle`], [`Error::TitleExists`]; the runtime's.
    pub async fn create_namespace(&self, title: &str) -> Result<Namespace> {
        self.limits.check_title(title)?;
        if self.registry.find_by_name(title).await?.is_some() {
            return Err(Error::TitleExists { title: title.to_owned() });
        }
        let resource = self.registry.create(title, self.now_ms()).await?;
        // The table is created right away so that reads of an empty namespace need no write.
        let object = self.data_object(&resource.id)?;
        let created = object.run(|s| s.exec_script(SCHEMA).map(drop).map_err(Error::from)).await;
        if let Err(e) = created {
            let _ = self.registry.remove(&resource.id).await;
            return Err(e);
        }
        Ok(resource.into())
    }

    /// Every namespace, oldest first.
    ///
    /// # Errors
    /// The runtime's.
    pub async fn list_namespaces(&self) -> Result<Vec<Namespace>> {
        Ok(self.registry.list().await?.into_iter().map(Namespace::from).collect())
    }

    /// The namespace with this id.
    ///
    /// # Errors
    /// [`Error::NamespaceNotFound`]; the runtime's.
    pub async fn namespace(&self, id: &str) -> Result<Namespace> {
        self.registry.get(id).await?.map(Namespace::from).ok_or_else(|| Error::NamespaceNotFound { id: id.to_owned() })
    }

    /// Renames a namespace.
    ///
    /// # Errors
    /// [`Error::NamespaceNotFound`], [`Error::InvalidTitle`], [`Error::TitleExists`].
    pub async fn rename_namespace(&self, id: &str, title: &str) -> Result<Namespace> {
        self.limits.check_title(title)?;
        Ok(self.registry.rename(id, title).await?.into())
    }

    /// Deletes a namespace and every entry in it.
    ///
    /// # Errors
    /// [`Error::NamespaceNotFound`]; the runtime's.
    pub async fn delete_namespace(&self, id: &str) -> Result<()> {
        self.registry.remove(id).await?;
        self.cache.drop_namespace(id);
        // The object is emptied (its file stays, empty, until objects can be removed).
        self.data_object(id)?.delete_all().await?;
        Ok(())
    }

    fn data_object(&self, id: &str) -> Result<ObjectRef> {
        Ok(self.runtime.object(DATA_NAMESPACE, id)?)
    }

    async fn object(&self, id: &str) -> Result<ObjectRef> {
        self.namespace(id).await?;
        self.data_object(id)
    }

    /// Reads an entry; `None` if it is missing or expired.
    ///
    /// # Errors
    /// Key errors, [`Error::NamespaceNotFound`]; the runtime's.
    pub async fn get(&self, ns: &str, key: &str) -> Result<Option<Entry>> {
        self.limits.check_key(key)?;
        let object = self.object(ns).await?;
        if let Lookup::Hit(entry) = self.cache.get(ns, key, self.now_ms().div_euclid(1000)) {
            return Ok(entry);
        }
        let k = key.to_owned();
        // The state read reflects every commit up to the object's last one.
        let (entry, version) = object.run(move |s| Ok::<_, Error>((read_entry(s, &k)?, s.committed_seq()))).await?;
        let state = match &entry {
            Some(e) if e.value.len() <= MAX_CACHED_VALUE => State::Present(e.clone()),
            Some(_) => State::Changed,
            None => State::Absent,
        };
        self.cache.put(ns, key, version, state);
        Ok(entry)
    }

    /// Stores a value (replacing value, expiry and metadata together).
    ///
    /// # Errors
    /// Key, value, metadata and expiration errors (checked before anything is written),
    /// [`Error::NamespaceNotFound`]; the runtime's.
    pub async fn put(&self, ns: &str, key: &str, value: Vec<u8>, options: PutOptions) -> Result<()> {
        let pair = BulkPut { key: key.to_owned(), value, options };
        let (expiration, metadata_text) = self.check_put(&pair)?;
        let object = self.object(ns).await?;
        let BulkPut { key: owned_key, value, options } = pair;
        // A value the cache keeps is copied for it; a larger one only marks the key changed.
        let cached = (value.len() <= MAX_CACHED_VALUE).then(|| Entry {
            value: value.clone(),
            expiration,
            metadata: options.metadata.clone(),
        });
        let version = object.run(move |s| write_rows(s, vec![(owned_key, value, expiration, metadata_text)])).await?;
        self.cache.put(ns, key, version, cached.map_or(State::Changed, State::Present));
        Ok(())
    }

    /// Checks one pair, returning its absolute expiry and serialized metadata.
    fn check_put(&self, pair: &BulkPut) -> Result<(Option<i64>, Option<String>)> {
        self.limits.check_key(&pair.key)?;
        if pair.value.len() > self.limits.max_value_bytes {
            return Err(Error::ValueTooLarge { len: pair.value.len(), max: self.limits.max_value_bytes });
        }
        let expiration =
            self.limits.resolve_expiration(pair.options.expiration, pair.options.expiration_ttl, self.now_ms())?;
        let metadata = pair.options.metadata.as_ref().map(|m| self.limits.check_metadata(m)).transpose()?;
        Ok((expiration, metadata))
    }

    /// Stores many pairs atomically: every pair is checked first, then all are written in one
    /// event (all or none).
    ///
    /// # Errors
    /// [`Error::TooManyKeys`], the first invalid pair's error; [`Error::NamespaceNotFound`].
    pub async fn put_many(&self, ns: &str, pairs: Vec<BulkPut>) -> Result<usize> {
        if pairs.len() > self.limits.max_bulk_write_keys {
            return Err(Error::TooManyKeys { op: "write", len: pairs.len(), max: self.limits.max_bulk_write_keys });
        }
        let mut rows = Vec::with_capacity(pairs.len());
        for pair in pairs {
            let (expiration, metadata) = self.check_put(&pair)?;
            rows.push((pair.key, pair.value, expiration, metadata));
        }
        let n = rows.len();
        let keys: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let object = self.object(ns).await?;
        let version = object.run(move |s| write_rows(s, rows)).await?;
        for k in &keys {
            self.cache.put(ns, k, version, State::Changed);
        }
        Ok(n)
    }

    /// Deletes a key (a missing key is not an error).
    ///
    /// # Errors
    /// Key errors, [`Error::NamespaceNotFound`]; the runtime's.
    pub async fn delete(&self, ns: &str, key: &str) -> Result<()> {
        self.delete_many(ns, vec![key.to_owned()]).await.map(drop)
    }

    /// Deletes many keys atomically; returns how many were given.
    ///
    /// # Errors
    /// [`Error::TooManyKeys`], key errors, [`Error::NamespaceNotFound`]; the runtime's.
    pub async fn delete_many(&self, ns: &str, keys: Vec<String>) -> Result<usize> {
        if keys.len() > self.limits.max_bulk_write_keys {
            return Err(Error::TooManyKeys { op: "delete", len: keys.len(), max: self.limits.max_bulk_write_keys });
        }
        for k in &keys {
            self.limits.check_key(k)?;
        }
        let n = keys.len();
        let object = self.object(ns).await?;
        let (keys, version) = object
            .run(move |s| {
                for k in &keys {
                    s.exec("DELETE FROM kv_entries WHERE key = ?1", &[SqlValue::Blob(k.as_bytes().to_vec())])?;
                }
                Ok::<_, Error>((keys, next_version(s)))
            })
            .await?;
        for k in &keys {
            self.cache.put(ns, k, version, State::Absent);
        }
        Ok(n)
    }

    /// Reads many keys in one event: an answer for every requested key, in request order
    /// (`None` for a missing or expired one).
    ///
    /// # Errors
    /// [`Error::NoKeys`], [`Error::TooManyKeys`], key errors, [`Error::BulkTooLarge`] if the
    /// values add up to more than `max_bulk_get_bytes`; [`Error::NamespaceNotFound`].
    pub async fn get_many(&self, ns: &str, keys: Vec<String>) -> Result<Vec<(String, Option<Entry>)>> {
        if keys.is_empty() {
            return Err(Error::NoKeys);
        }
        if keys.len() > self.limits.max_bulk_get_keys {
            return Err(Error::TooManyKeys { op: "request", len: keys.len(), max: self.limits.max_bulk_get_keys });
        }
        for k in &keys {
            self.limits.check_key(k)?;
        }
        let max = self.limits.max_bulk_get_bytes;
        let object = self.object(ns).await?;
        object
            .run(move |s| {
                let mut out = Vec::with_capacity(keys.len());
                let mut total = 0usize;
                for k in keys {
                    let entry = read_entry(s, &k)?;
                    total += entry.as_ref().map_or(0, |e| e.value.len());
                    if total > max {
                        return Err(Error::BulkTooLarge { max_mb: show_mb(max) });
                    }
                    out.push((k, entry));
                }
                Ok(out)
            })
            .await
    }

    /// Lists keys in UTF-8 byte order, a page at a time. The cursor is the last key returned,
    /// so keys written after it between pages show up on later pages.
    ///
    /// # Errors
    /// [`Error::InvalidListLimit`], [`Error::KeyTooLong`] for a long prefix,
    /// [`Error::InvalidCursor`]; [`Error::NamespaceNotFound`].
    pub async fn list(&self, ns: &str, options: ListKeys) -> Result<KeyList> {
        let limit = self.limits.list_limit(options.limit)?;
        let prefix = options.prefix.unwrap_or_default();
        if prefix.len() > self.limits.max_key_bytes {
            return Err(Error::KeyTooLong { len: prefix.len(), max: self.limits.max_key_bytes });
        }
        let after = match options.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(base64::engine::general_purpose::STANDARD.decode(c).map_err(|_| Error::InvalidCursor)?),
        };
        let object = self.object(ns).await?;
        let now_ms = self.now_ms();
        object
            .run(move |s| {
                // `list` keeps entries whose expiry is not yet past: expiration * 1000 >= now.
                let min_expiration = now_ms.div_euclid(1000) + i64::from(now_ms.rem_euclid(1000) != 0);
                let lower = match after {
                    Some(a) if a.as_slice() >= prefix.as_bytes() => (a, ">"),
                    _ => (prefix.as_bytes().to_vec(), ">="),
                };
                let upper = prefix_successor(prefix.as_bytes());
                let sql = format!(
                    "SELECT key, expiration, metadata FROM kv_entries
                     WHERE key {} ?1 AND (?2 IS NULL OR key < ?2)
                       AND (expiration IS NULL OR expiration >= ?3)
                     ORDER BY key LIMIT ?4",
                    lower.1
                );
                let params = [
                    SqlValue::Blob(lower.0),
                    upper.map_or(SqlValue::Null, SqlValue::Blob),
                    SqlValue::Integer(min_expiration),
                    SqlValue::Integer(i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1)),
                ];
                let mut keys = Vec::with_capacity(limit.min(1024));
                let mut more = false;
                for row in s.exec(&sql, &params)?.raw() {
                    if keys.len() == limit {
                        more = true;
                        break;
                    }
                    let mut values = row.into_iter();
                    let name = match values.next() {
                        Some(SqlValue::Blob(b)) => String::from_utf8_lossy(&b).into_owned(),
                        Some(SqlValue::Text(t)) => t,
                        _ => continue,
                    };
                    let expiration = values.next().and_then(|v| v.as_i64());
                    let metadata = parse_metadata(values.next());
                    keys.push(KeyInfo { name, expiration, metadata });
                }
                let cursor = if more {
                    keys.last().map(|k| base64::engine::general_purpose::STANDARD.encode(k.name.as_bytes()))
                } else {
                    None
                };
                Ok(KeyList { keys, list_complete: !more, cursor })
            })
            .await
    }

    /// Runs [`KvService::purge_expired`] for every namespace whose alarm is due (at most
    /// `limit` of them) and returns how many entries were deleted. The server calls this
    /// periodically; it opens only namespaces that have something expiring.
    ///
    /// # Errors
    /// The runtime's.
    pub async fn purge_due(&self, limit: usize) -> Result<u64> {
        let due = self.runtime.due_alarms_in(DATA_NAMESPACE, self.now_ms(), limit)?;
        let mut deleted = 0;
        for (ns, _) in due {
            deleted += self.purge_expired(&ns).await?;
        }
        Ok(deleted)
    }

    /// Deletes up to a bounded number of expired entries of namespace `ns` and sets its alarm
    /// to the next expiry (or removes it). Returns how many entries were deleted. Called when
    /// the namespace object's alarm is due; harmless at any other time.
    ///
    /// # Errors
    /// The runtime's.
    pub async fn purge_expired(&self, ns: &str) -> Result<u64> {
        let object = self.data_object(ns)?;
        let now_secs = self.now_ms().div_euclid(1000);
        object
            .run(move |s| {
                if !has_table(s)? {
                    s.delete_alarm()?;
                    return Ok(0);
                }
                let deleted = s
                    .exec(
                        "DELETE FROM kv_entries WHERE rowid IN (SELECT rowid FROM kv_entries
                           WHERE expiration IS NOT NULL AND expiration <= ?1 LIMIT ?2)",
                        &[SqlValue::Integer(now_secs), SqlValue::Integer(PURGE_BATCH)],
                    )?
                    .rows_written();
                let next = s
                    .exec("SELECT min(expiration) FROM kv_entries WHERE expiration IS NOT NULL", &[])?
                    .raw()
                    .next()
                    .and_then(|r| r.into_iter().next())
                    .and_then(|v| v.as_i64());
                match next {
                    Some(t) => s.set_alarm(t.saturating_mul(1000))?,
                    None => s.delete_alarm()?,
                }
                Ok(deleted)
            })
            .await
    }
}

fn has_table(s: &mut ObjectStorage) -> Result<bool> {
    let rows = s.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kv_entries'", &[])?.raw().count();
    Ok(rows > 0)
}

/// Reads one entry, treating `expiration <= now` as missing (as Workers KV's `get` does).
fn read_entry(s: &mut ObjectStorage, key: &str) -> Result<Option<Entry>> {
    let now_secs = s.clock().now_ms().div_euclid(1000);
    let row = s
        .exec(
            "SELECT value, expiration, metadata FROM kv_entries WHERE key = ?1",
            &[SqlValue::Blob(key.as_bytes().to_vec())],
        )?
        .raw()
        .next();
    let Some(row) = row else { return Ok(None) };
    let mut values = row.into_iter();
    let value = match values.next() {
        Some(SqlValue::Blob(b)) => b,
        Some(SqlValue::Text(t)) => t.into_bytes(),
        _ => Vec::new(),
    };
    let expiration = values.next().and_then(|v| v.as_i64());
    if expiration.is_some_and(|e| e <= now_secs) {
        return Ok(None);
    }
    Ok(Some(Entry { value, expiration, metadata: parse_metadata(values.next()) }))
}

fn parse_metadata(v: Option<SqlValue>) -> Option<serde_json::Value> {
    match v {
        Some(SqlValue::Text(t)) => serde_json::from_str(&t).ok(),
        _ => None,
    }
}

type Row = (String, Vec<u8>, Option<i64>, Option<String>);

/// The commit sequence number the open event will commit with, if it writes (commits number
/// one more than the previous).
fn next_version(s: &ObjectStorage) -> u64 {
    s.committed_seq() + 1
}

/// Upserts rows and moves the alarm earlier if an expiry comes before it; returns the version
/// (commit sequence number) the event will commit as.
fn write_rows(s: &mut ObjectStorage, rows: Vec<Row>) -> Result<u64> {
    let mut earliest: Option<i64> = None;
    for (key, value, expiration, metadata) in rows {
        if let Some(e) = expiration {
            earliest = Some(earliest.map_or(e, |x| x.min(e)));
        }
        s.exec(
            "INSERT INTO kv_entries(key, value, expiration, metadata) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(key) DO UPDATE SET
               value = excluded.value, expiration = excluded.expiration, metadata = excluded.metadata",
            &[
                SqlValue::Blob(key.into_bytes()),
                SqlValue::Blob(value),
                expiration.map_or(SqlValue::Null, SqlValue::Integer),
                metadata.map_or(SqlValue::Null, SqlValue::Text),
            ],
        )?;
    }
    if let Some(e) = earliest {
        let at = e.saturating_mul(1000);
        if s.get_alarm()?.is_none_or(|current| current > at) {
            s.set_alarm(at)?;
        }
    }
    Ok(next_version(s))
}

/// A byte limit in MB as Workers KV prints it (`25`, `0.0009765625`).
fn show_mb(bytes: usize) -> String {
    let mb = bytes as f64 / (1024.0 * 1024.0);
    if mb.fract() == 0.0 { format!("{}", mb as u64) } else { format!("{mb}") }
}

#[cfg(test)]
mod tests {
    use super::show_mb;

    #[test]
    fn megabytes() {
        assert_eq!(show_mb(25 * 1024 * 1024), "25");
        assert_eq!(show_mb(1024), "0.0009765625");
    }
}
