//! The `tinybase` room kind: the server side of TinyBase's PartyKit persister protocol, as
//! `TinyBasePartyKitServer` (package `tinybase`, `persisters/persister-partykit-server`)
//! speaks it, so that an unchanged `createPartyKitPersister` saves to and loads from the room.
//! Checked against tinybase 10.0.1 (`tests/rooms/tinybase.test.mjs` runs that client).
//!
//! # HTTP: the whole store
//! A request whose path ends with [`TinyBaseConfig::store_path`] (default `/store`, so
//! `/parties/{party}/{room}/store`):
//! - `PUT` with the client's content `[tables, values]`: `400` unless the body is JSON of that
//!   shape (see below); `413` over [`TinyBaseConfig::max_body_bytes`]; `205` (nothing written)
//!   if the room is initialised already; otherwise every cell and value that fits the storage
//!   limits is written and `201` answered. The room becomes initialised (the `hasStore` key) if
//!   something was written or the content was completely empty; otherwise (every item refused)
//!   it stays uninitialised and the answer is `205`. A PUT never overwrites existing data.
//! - any other method (the client sends `GET`; a browser's `OPTIONS` preflight is answered the
//!   same way): `200` with the body `[tables, values]` if the room is initialised, else `200`
//!   with an empty body.
//!
//! Any other path gets `404`. Bodies other than the GET's are empty. Every response carries
//! [`TinyBaseConfig::response_headers`] (by default the three CORS headers, each `*`).
//!
//! # WebSocket: changes
//! Text frames `{message_prefix}s{json}` where the JSON is `[tables, values, 1]` with only the
//! changed items; the string U+FFFC in place of a table, row, cell or value deletes it. A valid
//! change to an initialised room is applied to storage, and the part of it that was accepted is
//! broadcast in the same format to every other socket (never back to the sender; nothing if
//! nothing was accepted). Everything else is ignored without an answer, as the original does:
//! binary frames, frames without the prefix or with another type character, JSON that does not
//! parse or has the wrong shape, and changes sent while the room is uninitialised. The room
//! sends nothing on connect.
//!
//! Shape (both directions): `tables` is an object of objects (tables) of objects (rows) whose
//! entries are cells; `values` is an object of values. A cell or value may be any JSON value
//! (TinyBase clients send objects and arrays as U+FFFD-prefixed strings); in a change, a
//! deletion marker may stand for a table, row, cell or value.
//!
//! # Storage layout
//! Every key begins with [`TinyBaseConfig::storage_prefix`] (default empty):
//! - `hasStore` → `1`: the room is initialised.
//! - `t` + the JSON of `[tableId,rowId,cellId]` without its brackets, e.g.
//!   `t"pets","fido","legs"` → the cell, as a JSON value.
//! - `v` + the value id, e.g. `vopen` → the value, as a JSON value.
//!
//! One key per cell: empty rows and tables do not persist. Deleting a table or row deletes every
//! key starting with `t"tableId"` or `t"tableId","rowId"` (the closing quote keeps table `pets`
//! from matching `petsX`, and JSON escaping keeps ids from faking it); deleting a cell or value
//! deletes its key. Loading lists every key under the prefix: a `t` key whose rest is not three
//! JSON strings, a `v` key holding raw bytes, and any other key are skipped.
//!
//! # Invariants
//! - The instance holds only its configuration: everything else is read from storage in the
//!   event that needs it, so hibernation and restarts lose nothing, and a failed event (whose
//!   writes roll back) leaves nothing stale behind.
//! - Writes are serialized because every hook runs as one event on the room's object; a PUT or
//!   a change is applied in one event, so it is stored whole or not at all.
//! - Every key and value written fits the storage limits: a cell or value whose key or JSON
//!   exceeds them is refused as a rejecting `canSetCell` / `canSetValue` hook refuses it, left
//!   out of storage and out of the broadcast, while the rest of the change goes on. A deletion
//!   whose key is too long for storage cannot match a stored key: it is accepted without a
//!   storage call.
//! - Network input never panics the room: JSON is parsed by `serde_json` (its recursion limit
//!   bounds nesting), and frame and body sizes are bounded by the server's message limit and
//!   [`TinyBaseConfig::max_body_bytes`].

use std::collections::BTreeMap;

use bytes::Bytes;
use cairn_storage::{ListOptions, Value as Stored};
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Connection, Context, Frame, Message, Room, RoomError};

/// Settings of a `tinybase` party. The first three must match the clients' persister
/// configuration (`storePath`, `messagePrefix`) or the original server's (`storagePrefix`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TinyBaseConfig {
    /// The HTTP endpoint: requests whose path ends with it. Default `/store`.
    pub store_path: String,
    /// What every WebSocket frame starts with, before its type character. Default empty.
    pub message_prefix: String,
    /// What every storage key starts with. Default empty. At most [`MAX_STORAGE_PREFIX_BYTES`].
    pub storage_prefix: String,
    /// Headers of every HTTP response; `None` (the default) means the three CORS headers
    /// `Access-Control-Allow-Origin`, `-Methods` and `-Headers`, each `*`. Set, it replaces
    /// them entirely.
    pub response_headers: Option<BTreeMap<String, String>>,
    /// Largest PUT body, in bytes; larger ones are answered `413`. Default 16 MiB (the server's
    /// own body limit applies first).
    pub max_body_bytes: usize,
}

impl Default for TinyBaseConfig {
    fn default() -> Self {
        TinyBaseConfig {
            store_path: "/store".to_owned(),
            message_prefix: String::new(),
            storage_prefix: String::new(),
            response_headers: None,
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Longest [`TinyBaseConfig::storage_prefix`], in bytes: half the default key limit, so that
/// keys keep room for ids.
pub const MAX_STORAGE_PREFIX_BYTES: usize = 1024;

impl TinyBaseConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// What is wrong, as text: a storage prefix over [`MAX_STORAGE_PREFIX_BYTES`], or a response
    /// header that is not a valid HTTP header name or value.
    pub fn check(&self) -> Result<(), String> {
        if self.storage_prefix.len() > MAX_STORAGE_PREFIX_BYTES {
            return Err(format!(
                "storage_prefix is {} bytes, over the limit of {MAX_STORAGE_PREFIX_BYTES}",
                self.storage_prefix.len()
            ));
        }
        for (name, value) in self.response_headers.iter().flatten() {
            header_pair(name, value)?;
        }
        Ok(())
    }
}

/// The deletion marker of the protocol: JSON cannot carry `undefined`.
const DELETED: &str = "\u{FFFC}";
/// The key (after the storage prefix) that marks an initialised room.
const HAS_STORE: &str = "hasStore";
/// The only message type: "set changes".
const SET_CHANGES: char = 's';
/// Keys read per `list` call when loading or deleting by prefix.
const PAGE: u64 = 256;
/// The content type of the GET body, as the original's `new Response(string)` sets it.
const TEXT_PLAIN: &str = "text/plain;charset=UTF-8";

fn header_pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("{name:?} is not a valid header name"))?;
    let v = HeaderValue::from_str(value).map_err(|_| format!("the value of header {name:?} is not valid"))?;
    Ok((n, v))
}

/// A `tinybase` room: see the module documentation.
#[derive(Debug)]
pub struct TinyBaseRoom {
    config: TinyBaseConfig,
    /// [`TinyBaseConfig::response_headers`], parsed once.
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Default for TinyBaseRoom {
    fn default() -> Self {
        TinyBaseRoom::new(TinyBaseConfig::default())
    }
}

impl TinyBaseRoom {
    /// A room with these settings. Response headers that [`TinyBaseConfig::check`] would
    /// refuse are left out (with a warning).
    pub fn new(config: TinyBaseConfig) -> TinyBaseRoom {
        let headers = match &config.response_headers {
            None => ["Origin", "Methods", "Headers"]
                .iter()
                .filter_map(|s| header_pair(&format!("Access-Control-Allow-{s}"), "*").ok())
                .collect(),
            Some(map) => map
                .iter()
                .filter_map(|(name, value)| {
                    header_pair(name, value)
                        .map_err(|error| tracing::warn!(error, "tinybase response header left out"))
                        .ok()
                })
                .collect(),
        };
        TinyBaseRoom { config, headers }
    }

    fn response(&self, status: StatusCode, body: Option<String>) -> http::Response<Bytes> {
        let typed = body.is_some();
        let mut res = http::Response::new(body.map(Bytes::from).unwrap_or_default());
        *res.status_mut() = status;
        let headers = res.headers_mut();
        if typed {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
        }
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        res
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.config.storage_prefix)
    }

    /// Whether the room is initialised: `hasStore` holds a truthy value (as the original's `!!`).
    fn has_store(&self, ctx: &mut Context<'_>) -> Result<bool, RoomError> {
        let stored = ctx.storage().get_value(&self.key(HAS_STORE))?;
        Ok(match stored {
            None => false,
            Some(Stored::Bytes(_)) => true,
            Some(Stored::Json(v)) => truthy(&v),
        })
    }

    /// Answers a PUT: the first save of a client.
    fn put(&self, body: &[u8], ctx: &mut Context<'_>) -> Result<StatusCode, RoomError> {
        if body.len() > self.config.max_body_bytes {
            return Ok(StatusCode::PAYLOAD_TOO_LARGE);
        }
        // As `Request.text()`: UTF-8 with replacement characters, a leading BOM dropped.
        let text = String::from_utf8_lossy(body);
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let Some((tables, values)) = serde_json::from_str::<Value>(text).ok().and_then(|v| content(v, false)) else {
            return Ok(StatusCode::BAD_REQUEST);
        };
        if self.has_store(ctx)? {
            return Ok(StatusCode::RESET_CONTENT);
        }
        let accepted = self.save(&tables, &values, true, ctx)?;
        let empty = tables.is_empty() && values.is_empty();
        if !empty && accepted.is_empty() {
            // Everything refused: the room stays uninitialised.
            return Ok(StatusCode::RESET_CONTENT);
        }
        ctx.storage().put(&self.key(HAS_STORE), &1)?;
        Ok(StatusCode::CREATED)
    }

    /// Reads the whole content, `[tables, values]`, as JSON text.
    fn load(&self, ctx: &mut Context<'_>) -> Result<String, RoomError> {
        let prefix = &self.config.storage_prefix;
        let mut tables: Tables = BTreeMap::new();
        let mut values = Map::new();
        let mut after: Option<String> = None;
        loop {
            let mut options = ListOptions::new().prefix(prefix.as_str()).limit(PAGE);
            if let Some(key) = after.take() {
                options = options.start_after(key);
            }
            let page = ctx.storage().list(&options)?;
            let full = page.len() as u64 == PAGE;
            for (key, stored) in page {
                if let (Some(rest), Stored::Json(value)) = (key.strip_prefix(prefix.as_str()), stored) {
                    if let Some(ids) = rest.strip_prefix('t') {
                        if let Some([table, row, cell]) = cell_ids(ids) {
                            tables.entry(table).or_default().entry(row).or_default().insert(cell, value);
                        }
                    } else if let Some(id) = rest.strip_prefix('v') {
                        values.insert(id.to_owned(), value);
                    }
                }
                after = Some(key);
            }
            if !full {
                break;
            }
        }
        serde_json::to_string(&(tables, values)).map_err(|e| RoomError::msg(format!("tinybase content: {e}")))
    }

    /// Writes what it accepts of `tables` and `values` (content for a PUT, changes otherwise)
    /// and returns the accepted part. Deletions come first, then the writes, as in the
    /// original's transaction.
    fn save(
        &self,
        tables: &Map<String, Value>,
        values: &Map<String, Value>,
        initial: bool,
        ctx: &mut Context<'_>,
    ) -> Result<Accepted, RoomError> {
        let limits = ctx.storage().limits().clone();
        let fits_key = |key: &str| key.len() <= limits.max_key_bytes;
        let fits = |key: &str, value: &Value| {
            fits_key(key) && serde_json::to_vec(value).is_ok_and(|json| json.len() <= limits.max_value_bytes)
        };
        // A PUT cannot delete: there the marker is an ordinary string.
        let deletion = |thing: &Value| !initial && is_deleted(thing);

        let mut accepted = Accepted::default();
        let mut prefixes: Vec<String> = Vec::new();
        let mut deletes: Vec<String> = Vec::new();
        let mut puts: Vec<(String, &Value)> = Vec::new();
        for (table_id, table) in tables {
            if deletion(table) {
                prefixes.push(self.key(&format!("t{}", ids_json(&[table_id]))));
                accepted.tables.insert(table_id.clone(), deleted());
                continue;
            }
            let Value::Object(rows) = table else { continue };
            let mut accepted_rows = Map::new();
            for (row_id, row) in rows {
                if deletion(row) {
                    prefixes.push(self.key(&format!("t{}", ids_json(&[table_id, row_id]))));
                    accepted_rows.insert(row_id.clone(), deleted());
                    continue;
                }
                let Value::Object(cells) = row else { continue };
                let mut accepted_cells = Map::new();
                for (cell_id, cell) in cells {
                    let key = self.key(&format!("t{}", ids_json(&[table_id, row_id, cell_id])));
                    if deletion(cell) {
                        deletes.push(key);
                        accepted_cells.insert(cell_id.clone(), deleted());
                    } else if fits(&key, cell) {
                        puts.push((key, cell));
                        accepted_cells.insert(cell_id.clone(), cell.clone());
                    } else {
                        let room = ctx.room();
                        tracing::debug!(
                            ?room,
                            table_id,
                            row_id,
                            cell_id,
                            "tinybase cell over the storage limits refused"
                        );
                    }
                }
                if !accepted_cells.is_empty() {
                    accepted_rows.insert(row_id.clone(), Value::Object(accepted_cells));
                }
            }
            if !accepted_rows.is_empty() {
                accepted.tables.insert(table_id.clone(), Value::Object(accepted_rows));
            }
        }
        for (value_id, value) in values {
            let key = self.key(&format!("v{value_id}"));
            if deletion(value) {
                deletes.push(key);
                accepted.values.insert(value_id.clone(), deleted());
            } else if fits(&key, value) {
                puts.push((key, value));
                accepted.values.insert(value_id.clone(), value.clone());
            } else {
                tracing::debug!(room = ?ctx.room(), value_id, "tinybase value over the storage limits refused");
            }
        }

        // A key too long for storage cannot be stored: nothing to delete under it.
        for prefix in prefixes.iter().filter(|p| fits_key(p)) {
            delete_prefix(prefix, ctx)?;
        }
        deletes.retain(|key| fits_key(key));
        for batch in deletes.chunks(limits.max_batch_keys.max(1)) {
            ctx.storage().delete_many(batch)?;
        }
        for (key, value) in puts {
            ctx.storage().put(&key, value)?;
        }
        Ok(accepted)
    }
}

/// Loaded tables: table id → row id → cell id → cell.
type Tables = BTreeMap<String, BTreeMap<String, Map<String, Value>>>;

/// The part of a PUT or change the room accepted, nested as the protocol nests it.
#[derive(Debug, Default)]
struct Accepted {
    tables: Map<String, Value>,
    values: Map<String, Value>,
}

impl Accepted {
    fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.values.is_empty()
    }

    /// The change frame's JSON: `[tables, values, 1]`.
    fn into_changes(self) -> Value {
        Value::Array(vec![Value::Object(self.tables), Value::Object(self.values), Value::from(1)])
    }
}

fn deleted() -> Value {
    Value::String(DELETED.to_owned())
}

fn is_deleted(thing: &Value) -> bool {
    thing.as_str() == Some(DELETED)
}

/// JavaScript's truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The JSON of an array of ids without its brackets: `"pets","fido"`. The JSON of strings is
/// never empty and always bracketed, so this cannot fail.
fn ids_json(ids: &[&String]) -> String {
    let json = serde_json::to_string(ids).unwrap_or_default();
    json.strip_prefix('[').and_then(|j| j.strip_suffix(']')).unwrap_or_default().to_owned()
}

/// The three ids of a cell key's rest (`"pets","fido","legs"`), if it is three JSON strings.
fn cell_ids(ids: &str) -> Option<[String; 3]> {
    let list: Vec<Value> = serde_json::from_str(&format!("[{ids}]")).ok()?;
    let [Value::String(table), Value::String(row), Value::String(cell)] = <[Value; 3]>::try_from(list).ok()? else {
        return None;
    };
    Some([table, row, cell])
}

/// Validates `[tables, values]` (content, `changes` false) or `[tables, values, 1]` (changes,
/// where the deletion marker may stand for any item) and returns its two maps.
fn content(v: Value, changes: bool) -> Option<(Map<String, Value>, Map<String, Value>)> {
    let Value::Array(items) = v else { return None };
    let (tables, values) = match (changes, <[Value; 2]>::try_from(items)) {
        (false, Ok([tables, values])) => (tables, values),
        (false, Err(_)) => return None,
        (true, Ok(_)) => return None,
        (true, Err(items)) => {
            let [tables, values, one] = <[Value; 3]>::try_from(items).ok()?;
            if one.as_f64() != Some(1.0) {
                return None;
            }
            (tables, values)
        }
    };
    if !things(&tables, 2, changes) || !things(&values, 0, changes) {
        return None;
    }
    match (tables, values) {
        (Value::Object(tables), Value::Object(values)) => Some((tables, values)),
        _ => None,
    }
}

/// Whether `things` is an object whose entries are `depth` more levels of objects, ending in
/// cells or values (any JSON value: numbers in JSON are finite); in changes, the deletion
/// marker may stand for an entry at any level.
fn things(things: &Value, depth: u8, changes: bool) -> bool {
    let Value::Object(map) = things else { return false };
    map.values().all(|thing| {
        if changes && is_deleted(thing) {
            true
        } else if depth > 0 {
            self::things(thing, depth - 1, changes)
        } else {
            true
        }
    })
}

/// Deletes every key starting with `prefix`, in pages and batches the storage accepts.
fn delete_prefix(prefix: &str, ctx: &mut Context<'_>) -> Result<(), RoomError> {
    let batch = u64::try_from(ctx.storage().limits().max_batch_keys.max(1)).unwrap_or(1).min(PAGE);
    let mut after: Option<String> = None;
    loop {
        let mut options = ListOptions::new().prefix(prefix).limit(batch);
        if let Some(key) = after.take() {
            options = options.start_after(key);
        }
        let keys: Vec<String> = ctx.storage().list(&options)?.into_iter().map(|(k, _)| k).collect();
        if keys.is_empty() {
            return Ok(());
        }
        ctx.storage().delete_many(&keys)?;
        if (keys.len() as u64) < batch {
            return Ok(());
        }
        after = keys.last().cloned();
    }
}

impl Room for TinyBaseRoom {
    fn on_message(&mut self, conn: &Connection, message: Message, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        let Message::Text(text) = message else {
            return Ok(()); // binary frames are not part of the protocol
        };
        let Some(payload) =
            text.strip_prefix(self.config.message_prefix.as_str()).and_then(|r| r.strip_prefix(SET_CHANGES))
        else {
            return Ok(());
        };
        let Some((tables, values)) = serde_json::from_str::<Value>(payload).ok().and_then(|v| content(v, true)) else {
            tracing::debug!(room = ?ctx.room(), conn = conn.id(), "tinybase frame ignored: not a valid change");
            return Ok(());
        };
        if !self.has_store(ctx)? {
            tracing::debug!(room = ?ctx.room(), conn = conn.id(), "tinybase change dropped: room not initialised");
            return Ok(());
        }
        let accepted = self.save(&tables, &values, false, ctx)?;
        if !accepted.is_empty() {
            let frame = format!("{}{SET_CHANGES}{}", self.config.message_prefix, accepted.into_changes());
            ctx.broadcast(Frame::text(frame), &[conn]);
        }
        Ok(())
    }

    fn on_request(
        &mut self,
        req: http::Request<Bytes>,
        ctx: &mut Context<'_>,
    ) -> Result<http::Response<Bytes>, RoomError> {
        if !req.uri().path().ends_with(self.config.store_path.as_str()) {
            return Ok(self.response(StatusCode::NOT_FOUND, None));
        }
        if req.method() == Method::PUT {
            let status = self.put(req.body(), ctx)?;
            return Ok(self.response(status, None));
        }
        let body = if self.has_store(ctx)? { self.load(ctx)? } else { String::new() };
        Ok(self.response(StatusCode::OK, Some(body)))
    }
}
