//! The `yjs` room kind: a Yjs document shared over the sync and awareness protocol of
//! `y-protocols`, as the `y-websocket` server (and `y-partykit`) speak it, so that an unchanged
//! `y-websocket` `WebsocketProvider` (or `y-partykit`'s `YPartyKitProvider`) can use the room.
//! The document is a [`yrs`] document; it is stored incrementally in the room's storage.
//!
//! # Protocol
//! Binary frames of lib0-encoded messages: a varuint message type, then its payload.
//! - `0` sync, followed by a varuint sub-type and a length-prefixed payload: `0` step 1 (a state
//!   vector), `1` step 2 (an update), `2` update.
//! - `1` awareness: a length-prefixed awareness update (`[n, (client, clock, state JSON)*n]`).
//! - `2` auth and `3` query awareness.
//!
//! What the room does:
//! - On connect it sends sync step 1 (its state vector) and, if any client has an awareness
//!   state, an awareness update with all of them: two frames, as `y-websocket`'s server does.
//! - Step 1 from a client is answered, to that client only, with step 2: the part of the
//!   document the client lacks (`encode_state_as_update_v1` of the client's state vector, which
//!   includes updates still waiting for missing dependencies).
//! - Step 2 or update from a client is applied to the document. If it changed the document, the
//!   change (the transaction's own update, as Yjs emits it in its `update` event) is stored and
//!   sent as a sync `update` to every other socket. An update that changes nothing is neither
//!   stored nor sent.
//! - Awareness from a client is applied with the Yjs rules (a newer clock wins; a `null` state
//!   at the same clock removes). The states that changed (added, renewed, updated or removed) are
//!   sent, as the room now holds them, to every socket including the sender, as `y-websocket`'s
//!   server does. A client id first announced by a socket belongs to it.
//! - Query awareness is answered, to that client only, with every current state.
//! - When a socket closes (or the room closes it), the client ids that belong to it are removed (a `null` state at their
//!   current clock, as `removeAwarenessStates` in `y-protocols`) and the removal is sent to the
//!   remaining sockets.
//! - A frame may hold several messages back to back (`y-websocket` sends one per frame; `yrs`
//!   peers may batch); they are handled in order. Auth messages and unknown message types are
//!   ignored with the rest of their frame (their length cannot be known), as `y-websocket`'s
//!   server ignores them.
//! - Text frames are ignored: `y-websocket` never sends them, and `y-partykit` clients use them
//!   for application messages that this room does not handle, so closing the socket would break
//!   those clients.
//! - A binary frame that does not decode (a truncated or malformed message, an unknown sync
//!   sub-type, a client id over 2^53 - 1, an awareness state that is not JSON) or an update that
//!   `yrs` refuses is dropped whole (nothing of it is applied) and the socket is closed with 1007
//!   ("invalid frame payload data"): such a client cannot be kept in sync, and a reconnect
//!   resynchronizes it from scratch. The hook returns `Ok`, so the room keeps its instance,
//!   awareness included. `yrs` is called under `catch_unwind` for network input (its decoders
//!   `debug_assert` on client ids); if it panics while applying, the document is reloaded from
//!   storage, which never holds an unapplied update.
//!
//! # Storage layout
//! Values are raw bytes, each at most the storage's value limit (128 KiB by default):
//! - `s:{chunk:06}`: the snapshot, `encode_state_as_update_v1` of the whole document as of the
//!   last compaction, cut into chunks (`s:000000`, `s:000001`, ...). Absent before the first
//!   compaction.
//! - `u:{seq:020}:{chunk:06}`: the updates stored since the snapshot, in the order they were
//!   applied, each cut into chunks. A stored update is the transaction's update (what changed),
//!   or, if the document is left with updates waiting for missing dependencies, the update as
//!   received, so that replaying the stored updates restores those waiting parts too (the
//!   transaction's update holds only what was integrated).
//!
//! Storing an update costs one put per chunk (usually one). [`YjsRoom::on_start`] reads the
//! snapshot, then the updates in key order (in pages), and applies them to a fresh document in
//! one transaction. A stored value that does not decode is logged and skipped rather than
//! failing every event of the room: clients send what the room lacks in their step 2, so they
//! restore it.
//!
//! # Compaction
//! When storing an update would leave more than [`YjsConfig::compact_after_updates`] updates or
//! more than [`YjsConfig::compact_after_bytes`] bytes of updates since the snapshot, the room
//! instead writes a new snapshot of the whole document (which includes that update) and deletes
//! every stored update and the old snapshot's surplus chunks, in the same event: events are
//! atomic, so storage holds either the old snapshot and its updates or the new snapshot. A
//! compaction writes the whole document, so a large document with a low threshold writes a lot;
//! raise `compact_after_bytes` for such rooms.
//!
//! # Awareness across hibernation
//! Awareness is not stored: it is ephemeral, and storing it would make every cursor move a
//! durable write that holds back its broadcast. The instance, with its in-memory awareness, is
//! dropped when the room hibernates while sockets stay open, so each socket's attachment (kept
//! by the host with the socket) holds what that socket contributed: the client ids that belong
//! to it, with their clocks and states. [`YjsRoom::on_start`] rebuilds the awareness and the
//! ownership from the attachments of the open sockets. Format: byte `1` then an awareness update
//! (lib0, as on the wire); if that exceeds [`crate::MAX_ATTACHMENT_BYTES`], byte `2`, a varuint
//! count and `(client, clock)` varuint pairs: the ids and clocks only. Such a client's state is
//! then unknown after a restart until the client renews it (`y-protocols` clients do every 15 s),
//! but its removal on close still reaches the other clients with the right clock.

use std::collections::{BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use cairn_storage::ListOptions;
use serde::{Deserialize, Serialize};
use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::protocol::{
    MSG_AWARENESS, MSG_QUERY_AWARENESS, MSG_SYNC, MSG_SYNC_STEP_1, MSG_SYNC_STEP_2, MSG_SYNC_UPDATE,
};
use yrs::sync::{Awareness, AwarenessUpdate, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ClientID, Doc, ReadTxn, StateVector, Transact, Update};

use crate::{Connection, Context, Frame, MAX_ATTACHMENT_BYTES, Message, Room, RoomError};

/// Settings of a `yjs` party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct YjsConfig {
    /// Compact (write a snapshot, delete the stored updates) when the updates stored since the
    /// last snapshot would exceed this many bytes. Default 1 MiB.
    pub compact_after_bytes: u64,
    /// Compact when more than this many updates would be stored since the last snapshot
    /// (0: snapshot on every update). Default 500.
    pub compact_after_updates: u64,
}

impl Default for YjsConfig {
    fn default() -> Self {
        YjsConfig { compact_after_bytes: 1024 * 1024, compact_after_updates: 500 }
    }
}

/// Close code for a frame that does not decode as the Yjs protocol ("invalid frame payload
/// data").
const CLOSE_INVALID: u16 = 1007;
/// Prefix of the snapshot's chunks.
const SNAPSHOT_PREFIX: &str = "s:";
/// Prefix of the stored updates' chunks.
const UPDATE_PREFIX: &str = "u:";
/// Largest chunk, whatever the storage allows.
const MAX_CHUNK_BYTES: usize = 128 * 1024;
/// Stored updates read per `list` call when loading.
const LOAD_PAGE: u64 = 256;
/// Largest client id Yjs uses (53 bits, a JavaScript safe integer). `yrs` asserts it in debug
/// builds, so larger ids from the network are refused before they reach it.
const MAX_CLIENT_ID: u64 = (1 << 53) - 1;
/// Attachment format: an awareness update of the socket's clients.
const ATTACHMENT_STATES: u8 = 1;
/// Attachment format: the socket's client ids and clocks only.
const ATTACHMENT_IDS: u8 = 2;

fn snapshot_key(chunk: usize) -> String {
    format!("{SNAPSHOT_PREFIX}{chunk:06}")
}

fn update_key(seq: u64, chunk: usize) -> String {
    format!("{UPDATE_PREFIX}{seq:020}:{chunk:06}")
}

/// `(seq, chunk)` of an update chunk's key.
fn parse_update_key(key: &str) -> Option<(u64, usize)> {
    let (seq, chunk) = key.strip_prefix(UPDATE_PREFIX)?.split_once(':')?;
    Some((seq.parse().ok()?, chunk.parse().ok()?))
}

/// What is stored besides the snapshot. Invariant: matches the `u:` and `s:` keys in storage
/// as of the current event.
#[derive(Debug, Default)]
struct StoredLog {
    /// `(seq, chunks)` of each stored update, in order.
    updates: Vec<(u64, usize)>,
    /// Bytes of the stored updates.
    bytes: u64,
    /// The next update's sequence number.
    next_seq: u64,
    /// Chunks of the stored snapshot.
    snapshot_chunks: usize,
}

/// A `yjs` room: see the module documentation.
#[derive(Debug)]
pub struct YjsRoom {
    config: YjsConfig,
    /// The shared document. Invariant: holds exactly what storage holds (every update applied
    /// to it was stored in the same event, and a failed event discards the instance).
    doc: Doc,
    /// The clients' awareness states. Its own document and client id are unused: the room
    /// never sets a local state.
    awareness: Awareness,
    /// Client ids that belong to each socket (by connection id), mirrored in the sockets'
    /// attachments.
    owners: HashMap<String, BTreeSet<u64>>,
    log: StoredLog,
}

impl Default for YjsRoom {
    fn default() -> Self {
        YjsRoom::new(YjsConfig::default())
    }
}

impl YjsRoom {
    /// A room with these settings.
    pub fn new(config: YjsConfig) -> YjsRoom {
        YjsRoom {
            config,
            doc: Doc::new(),
            awareness: Awareness::new(Doc::new()),
            owners: HashMap::new(),
            log: StoredLog::default(),
        }
    }
}

/// A decoded incoming message.
enum Incoming {
    Step1(StateVector),
    /// Step 2 or update: the decoded update and its encoding as received.
    Update(Update, Vec<u8>),
    Awareness(AwarenessUpdate),
    QueryAwareness,
}

/// Runs `f`, turning a panic into `None`. Used around `yrs` on network input only.
fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}

fn read_client<R: Read>(r: &mut R) -> Result<ClientID, &'static str> {
    let client: u64 = r.read_var().map_err(|_| "truncated client id")?;
    if client > MAX_CLIENT_ID {
        return Err("client id over 2^53 - 1");
    }
    Ok(ClientID::new(client))
}

/// Decodes a state vector (`[n, (client, clock)*n]`), checking client ids.
fn decode_state_vector(buf: &[u8]) -> Result<StateVector, &'static str> {
    let mut c = Cursor::new(buf);
    let n: u64 = c.read_var().map_err(|_| "truncated state vector")?;
    let mut sv = StateVector::default();
    for _ in 0..n {
        // Each entry takes at least two bytes, so a lying count ends at the buffer's end.
        let client = read_client(&mut c)?;
        let clock: u32 = c.read_var().map_err(|_| "truncated state vector")?;
        sv.set_max(client, clock);
    }
    Ok(sv)
}

/// Decodes an awareness update, checking client ids and that each state is JSON (`y-protocols`
/// clients `JSON.parse` what they receive, so a bad state must not be relayed).
fn decode_awareness(buf: &[u8]) -> Result<AwarenessUpdate, &'static str> {
    let mut c = Cursor::new(buf);
    let n: u64 = c.read_var().map_err(|_| "truncated awareness update")?;
    let mut clients = HashMap::new();
    for _ in 0..n {
        let client = read_client(&mut c)?;
        let clock: u32 = c.read_var().map_err(|_| "truncated awareness update")?;
        let json = c.read_string().map_err(|_| "truncated awareness update")?;
        if serde_json::from_str::<serde::de::IgnoredAny>(json).is_err() {
            return Err("awareness state is not JSON");
        }
        clients.insert(client, AwarenessUpdateEntry { clock, json: Arc::from(json) });
    }
    Ok(AwarenessUpdate { clients })
}

/// Decodes every message of a binary frame. `Err` if any does not decode: the frame is then
/// refused whole.
fn decode_frame(data: &[u8]) -> Result<Vec<Incoming>, &'static str> {
    let mut c = Cursor::new(data);
    let mut out = Vec::new();
    while c.has_content() {
        let kind: u64 = c.read_var().map_err(|_| "bad message type")?;
        match kind {
            k if k == u64::from(MSG_SYNC) => {
                let sub: u64 = c.read_var().map_err(|_| "truncated sync message")?;
                let payload = c.read_buf().map_err(|_| "truncated sync message")?;
                match sub {
                    s if s == u64::from(MSG_SYNC_STEP_1) => out.push(Incoming::Step1(decode_state_vector(payload)?)),
                    s if s == u64::from(MSG_SYNC_STEP_2) || s == u64::from(MSG_SYNC_UPDATE) => {
                        let update = guarded(|| Update::decode_v1(payload))
                            .ok_or("update does not decode")?
                            .map_err(|_| "update does not decode")?;
                        out.push(Incoming::Update(update, payload.to_vec()));
                    }
                    _ => return Err("unknown sync message type"),
                }
            }
            k if k == u64::from(MSG_AWARENESS) => {
                let payload = c.read_buf().map_err(|_| "truncated awareness message")?;
                out.push(Incoming::Awareness(decode_awareness(payload)?));
            }
            k if k == u64::from(MSG_QUERY_AWARENESS) => out.push(Incoming::QueryAwareness),
            // Auth (2) and unknown types: ignored, with the rest of the frame.
            _ => break,
        }
    }
    Ok(out)
}

/// One client of a socket's attachment: `(client, clock, state)`; `state` is `None` in the
/// ids-only format.
type AttachedClient = (ClientID, u32, Option<Arc<str>>);

/// Decodes an attachment (format in the module docs).
fn decode_attachment(bytes: &[u8]) -> Result<Vec<AttachedClient>, &'static str> {
    match bytes.split_first() {
        Some((&ATTACHMENT_STATES, rest)) => {
            let update = decode_awareness(rest)?;
            Ok(update.clients.into_iter().map(|(id, e)| (id, e.clock, Some(e.json))).collect())
        }
        Some((&ATTACHMENT_IDS, rest)) => {
            let mut c = Cursor::new(rest);
            let n: u64 = c.read_var().map_err(|_| "truncated attachment")?;
            let mut out = Vec::new();
            for _ in 0..n {
                let client = read_client(&mut c)?;
                let clock: u32 = c.read_var().map_err(|_| "truncated attachment")?;
                out.push((client, clock, None));
            }
            Ok(out)
        }
        _ => Err("unknown attachment format"),
    }
}

fn sync_frame(message: SyncMessage) -> Frame {
    Frame::binary(yrs::sync::Message::Sync(message).encode_v1())
}

fn awareness_frame(update: AwarenessUpdate) -> Frame {
    Frame::binary(yrs::sync::Message::Awareness(update).encode_v1())
}

/// The largest chunk the room's storage takes.
fn chunk_bytes(ctx: &mut Context<'_>) -> usize {
    ctx.storage().limits().max_value_bytes.clamp(1, MAX_CHUNK_BYTES)
}

/// Deletes keys in batches the storage accepts.
fn delete_keys(ctx: &mut Context<'_>, keys: &[String]) -> Result<(), RoomError> {
    let batch = ctx.storage().limits().max_batch_keys.max(1);
    for part in keys.chunks(batch) {
        ctx.storage().delete_many(part)?;
    }
    Ok(())
}

/// Decodes and applies a stored update; logs and skips one that fails (see the module docs).
fn apply_stored(txn: &mut yrs::TransactionMut<'_>, bytes: &[u8], what: &str, room: &crate::RoomInfo) {
    let result = match Update::decode_v1(bytes) {
        Ok(update) => txn.apply_update(update).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(error) = result {
        tracing::error!(party = %room.party, room = %room.name, what, %error, "stored yjs update skipped");
    }
}

/// Reads the snapshot and the stored updates into a fresh document.
fn load(ctx: &mut Context<'_>) -> Result<(Doc, StoredLog), RoomError> {
    let room = ctx.room().clone();
    let doc = Doc::new();
    let mut log = StoredLog::default();
    let mut txn = doc.transact_mut();

    let chunks = ctx.storage().list(&ListOptions::new().prefix(SNAPSHOT_PREFIX))?;
    log.snapshot_chunks = chunks.len();
    let mut snapshot = Vec::new();
    for (i, (key, value)) in chunks.into_iter().enumerate() {
        if key != snapshot_key(i) {
            tracing::error!(party = %room.party, room = %room.name, key, "yjs snapshot chunk out of sequence");
        }
        snapshot.extend_from_slice(&value.into_bytes());
    }
    if !snapshot.is_empty() {
        apply_stored(&mut txn, &snapshot, "snapshot", &room);
    }

    // Updates in key order, in pages; the chunks of one update are consecutive keys.
    let mut after: Option<String> = None;
    let mut current: Option<(u64, usize, Vec<u8>)> = None;
    loop {
        let mut options = ListOptions::new().prefix(UPDATE_PREFIX).limit(LOAD_PAGE);
        if let Some(key) = after.take() {
            options = options.start_after(key);
        }
        let page = ctx.storage().list(&options)?;
        let full = page.len() as u64 == LOAD_PAGE;
        for (key, value) in page {
            let Some((seq, chunk)) = parse_update_key(&key) else {
                tracing::error!(party = %room.party, room = %room.name, key, "unexpected key among yjs updates");
                after = Some(key);
                continue;
            };
            let bytes = value.into_bytes();
            log.bytes += bytes.len() as u64;
            match &mut current {
                Some((s, chunks, buf)) if *s == seq => {
                    if chunk != *chunks {
                        tracing::error!(party = %room.party, room = %room.name, key, "yjs update chunk out of sequence");
                    }
                    *chunks += 1;
                    buf.extend_from_slice(&bytes);
                }
                _ => {
                    if let Some((s, chunks, buf)) = current.take() {
                        apply_stored(&mut txn, &buf, "update", &room);
                        log.updates.push((s, chunks));
                    }
                    if chunk != 0 {
                        tracing::error!(party = %room.party, room = %room.name, key, "yjs update chunk out of sequence");
                    }
                    current = Some((seq, 1, bytes));
                }
            }
            after = Some(key);
        }
        if !full {
            break;
        }
    }
    if let Some((s, chunks, buf)) = current.take() {
        apply_stored(&mut txn, &buf, "update", &room);
        log.updates.push((s, chunks));
    }
    log.next_seq = log.updates.last().map_or(1, |(s, _)| s + 1);
    txn.commit();
    drop(txn);
    Ok((doc, log))
}

impl YjsRoom {
    /// Stores an update applied to the document, or compacts instead (see the module docs).
    fn store_update(&mut self, update: &[u8], ctx: &mut Context<'_>) -> Result<(), RoomError> {
        let count = self.log.updates.len() as u64 + 1;
        let bytes = self.log.bytes + update.len() as u64;
        if count > self.config.compact_after_updates || bytes > self.config.compact_after_bytes {
            // The snapshot includes this update: it is applied already.
            return self.compact(ctx);
        }
        let seq = self.log.next_seq;
        let size = chunk_bytes(ctx);
        let mut chunks = 0;
        for (i, chunk) in update.chunks(size).enumerate() {
            ctx.storage().put_bytes(&update_key(seq, i), chunk)?;
            chunks += 1;
        }
        self.log.updates.push((seq, chunks));
        self.log.bytes = bytes;
        self.log.next_seq = seq + 1;
        Ok(())
    }

    /// Replaces the snapshot with the whole document and deletes the stored updates.
    fn compact(&mut self, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        let state = self.doc.transact().encode_state_as_update_v1(&StateVector::default());
        let size = chunk_bytes(ctx);
        let mut chunks = 0;
        for (i, chunk) in state.chunks(size).enumerate() {
            ctx.storage().put_bytes(&snapshot_key(i), chunk)?;
            chunks += 1;
        }
        let mut stale: Vec<String> = (chunks..self.log.snapshot_chunks).map(snapshot_key).collect();
        for &(seq, n) in &self.log.updates {
            stale.extend((0..n).map(|i| update_key(seq, i)));
        }
        delete_keys(ctx, &stale)?;
        self.log.updates.clear();
        self.log.bytes = 0;
        self.log.snapshot_chunks = chunks;
        Ok(())
    }

    /// Applies a client's update; stores and broadcasts what changed. `Ok(false)` if `yrs`
    /// refused it (the document is then reloaded from storage).
    fn apply_update(
        &mut self,
        conn: &Connection,
        update: Update,
        raw: &[u8],
        ctx: &mut Context<'_>,
    ) -> Result<bool, RoomError> {
        let doc = &self.doc;
        let outcome = guarded(|| {
            let mut txn = doc.transact_mut();
            txn.apply_update(update)?;
            txn.commit();
            // As Yjs emits its `update` event: only if the transaction changed something.
            let changed = !txn.delete_set().is_empty() || txn.before_state() != txn.after_state();
            let diff = changed.then(|| txn.encode_update_v1());
            Ok::<_, yrs::error::UpdateError>((diff, txn.has_missing_updates()))
        });
        let (diff, waiting) = match outcome {
            Some(Ok(result)) => result,
            Some(Err(error)) => {
                tracing::debug!(room = ?ctx.room(), %error, "yjs update refused");
                self.reload(ctx)?;
                return Ok(false);
            }
            None => {
                tracing::warn!(room = ?ctx.room(), "yrs panicked applying an update; document reloaded");
                self.reload(ctx)?;
                return Ok(false);
            }
        };
        if waiting {
            // The transaction's update lacks what waits for missing dependencies.
            self.store_update(raw, ctx)?;
        } else if let Some(diff) = &diff {
            self.store_update(diff, ctx)?;
        }
        if let Some(diff) = diff {
            ctx.broadcast(sync_frame(SyncMessage::Update(diff)), &[conn]);
        }
        Ok(true)
    }

    /// Replaces the document with what storage holds (after `yrs` refused or panicked on an
    /// update, which may have left it half-changed).
    fn reload(&mut self, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        let (doc, log) = load(ctx)?;
        self.doc = doc;
        self.log = log;
        Ok(())
    }

    /// The current clock and state of a client.
    fn client_state(&self, id: u64) -> Option<(u32, Option<Arc<str>>)> {
        self.awareness.iter().find(|(c, _)| c.get() == id).map(|(_, s)| (s.clock, s.data))
    }

    /// Writes the awareness of the clients that belong to `conn` into its attachment.
    fn write_attachment(&self, conn: &Connection, ctx: &mut Context<'_>) {
        let ids = self.owners.get(conn.id()).cloned().unwrap_or_default();
        let known: Vec<(u64, u32, Option<Arc<str>>)> =
            ids.iter().filter_map(|&id| self.client_state(id).map(|(clock, data)| (id, clock, data))).collect();
        let value = if known.is_empty() {
            None
        } else {
            let clients = known
                .iter()
                .map(|(id, clock, data)| {
                    let json = data.clone().unwrap_or_else(|| Arc::from("null"));
                    (ClientID::new(*id), AwarenessUpdateEntry { clock: *clock, json })
                })
                .collect();
            let mut full = vec![ATTACHMENT_STATES];
            full.extend_from_slice(&AwarenessUpdate { clients }.encode_v1());
            if full.len() <= MAX_ATTACHMENT_BYTES {
                Some(full)
            } else {
                let mut ids_only = vec![ATTACHMENT_IDS];
                ids_only.write_var(known.len() as u64);
                for (id, clock, _) in &known {
                    ids_only.write_var(*id);
                    ids_only.write_var(*clock);
                }
                Some(ids_only)
            }
        };
        if let Err(error) = ctx.set_attachment(conn, value) {
            // The socket's awareness then does not survive hibernation; the room goes on.
            tracing::debug!(room = ?ctx.room(), %error, "yjs awareness attachment not kept");
        }
    }

    /// Rebuilds the awareness and its owners from the sockets' attachments.
    fn rebuild_awareness(&mut self, ctx: &mut Context<'_>) {
        for conn in ctx.connections() {
            let Some(bytes) = ctx.attachment(&conn) else { continue };
            let entries = match decode_attachment(bytes) {
                Ok(entries) => entries,
                Err(error) => {
                    tracing::warn!(room = ?ctx.room(), error, "yjs awareness attachment unreadable");
                    continue;
                }
            };
            let mut clients = HashMap::new();
            let owned = self.owners.entry(conn.id().to_owned()).or_default();
            for (id, clock, state) in entries {
                owned.insert(id.get());
                // An ids-only entry is applied as a `null` state: the client is known at its
                // clock, without a state.
                let json = state.unwrap_or_else(|| Arc::from("null"));
                clients.insert(id, AwarenessUpdateEntry { clock, json });
            }
            if let Err(error) = self.awareness.apply_update(AwarenessUpdate { clients }) {
                tracing::warn!(room = ?ctx.room(), %error, "yjs awareness not restored");
            }
        }
    }

    /// Removes the awareness clients that belong to a socket that is leaving, and tells the
    /// other sockets.
    fn remove_clients_of(&mut self, conn: &Connection, ctx: &mut Context<'_>) {
        // The socket's clients: from memory, and from its attachment in case the instance
        // started after the socket had left the room. Each at the newest clock known.
        let mut clocks: HashMap<u64, u32> = HashMap::new();
        for id in self.owners.remove(conn.id()).unwrap_or_default() {
            if let Some((clock, _)) = self.client_state(id) {
                clocks.insert(id, clock);
            }
        }
        if let Some(Ok(entries)) = ctx.attachment(conn).map(decode_attachment) {
            for (id, clock, _) in entries {
                let known = self.client_state(id.get()).map_or(clock, |(c, _)| c.max(clock));
                let entry = clocks.entry(id.get()).or_insert(known);
                *entry = (*entry).max(known);
            }
        }
        // A `null` state at the current clock removes a client (`removeAwarenessStates`).
        let clients: HashMap<ClientID, AwarenessUpdateEntry> = clocks
            .into_iter()
            .map(|(id, clock)| (ClientID::new(id), AwarenessUpdateEntry { clock, json: Arc::from("null") }))
            .collect();
        if clients.is_empty() {
            return;
        }
        let removal = AwarenessUpdate { clients };
        if let Err(error) = self.awareness.apply_update(removal.clone()) {
            tracing::debug!(room = ?ctx.room(), %error, "yjs awareness removal not applied");
        }
        ctx.broadcast(awareness_frame(removal), &[conn]);
    }

    /// Closes a socket that sent what the protocol does not allow (1007), removing its
    /// awareness clients first: no `on_close` follows a close by the room.
    fn refuse(&mut self, conn: &Connection, reason: &str, ctx: &mut Context<'_>) {
        tracing::debug!(room = ?ctx.room(), conn = conn.id(), reason, "yjs socket refused");
        self.remove_clients_of(conn, ctx);
        ctx.close(conn, CLOSE_INVALID, reason);
    }

    fn handle_awareness(&mut self, conn: &Connection, update: AwarenessUpdate, ctx: &mut Context<'_>) {
        let summary = match self.awareness.apply_update_summary(update) {
            Ok(Some(summary)) => summary,
            Ok(None) => return,
            Err(error) => {
                tracing::debug!(room = ?ctx.room(), %error, "yjs awareness update not applied");
                return;
            }
        };
        let owned = self.owners.entry(conn.id().to_owned()).or_default();
        owned.extend(summary.added.iter().map(ClientID::get));
        for id in &summary.removed {
            owned.remove(&id.get());
        }
        let changed = summary.all_changes();
        match self.awareness.update_with_clients(changed.iter().copied()) {
            Ok(out) => ctx.broadcast(awareness_frame(out), &[]),
            Err(error) => tracing::debug!(room = ?ctx.room(), %error, "yjs awareness not broadcast"),
        }
        // Rewrite the attachments of every socket owning a changed client (usually the sender).
        let touched: Vec<String> = self
            .owners
            .iter()
            .filter(|(id, ids)| *id == conn.id() || changed.iter().any(|c| ids.contains(&c.get())))
            .map(|(id, _)| id.clone())
            .collect();
        for id in touched {
            if let Some(socket) = ctx.connection(&id) {
                self.write_attachment(&socket, ctx);
            }
        }
    }
}

impl Room for YjsRoom {
    fn on_start(&mut self, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        self.reload(ctx)?;
        self.rebuild_awareness(ctx);
        Ok(())
    }

    fn on_connect(&mut self, conn: &Connection, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        if self.owners.contains_key(conn.id()) {
            // A socket with this id was replaced by this one without closing: its clients
            // carry over to it.
            self.write_attachment(conn, ctx);
        }
        let sv = self.doc.transact().state_vector();
        ctx.send(conn, sync_frame(SyncMessage::SyncStep1(sv)));
        match self.awareness.update() {
            Ok(update) if !update.clients.is_empty() => ctx.send(conn, awareness_frame(update)),
            Ok(_) => {}
            Err(error) => tracing::debug!(room = ?ctx.room(), %error, "yjs awareness not sent"),
        }
        Ok(())
    }

    fn on_message(&mut self, conn: &Connection, message: Message, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        let Message::Binary(data) = message else {
            return Ok(()); // text frames are ignored (module docs)
        };
        let messages = match decode_frame(&data) {
            Ok(messages) => messages,
            Err(reason) => {
                self.refuse(conn, reason, ctx);
                return Ok(());
            }
        };
        for message in messages {
            match message {
                Incoming::Step1(sv) => {
                    let update = self.doc.transact().encode_state_as_update_v1(&sv);
                    ctx.send(conn, sync_frame(SyncMessage::SyncStep2(update)));
                }
                Incoming::Update(update, raw) => {
                    if !self.apply_update(conn, update, &raw, ctx)? {
                        self.refuse(conn, "update refused", ctx);
                        return Ok(());
                    }
                }
                Incoming::Awareness(update) => self.handle_awareness(conn, update, ctx),
                Incoming::QueryAwareness => match self.awareness.update() {
                    Ok(update) => ctx.send(conn, awareness_frame(update)),
                    Err(error) => tracing::debug!(room = ?ctx.room(), %error, "yjs awareness not sent"),
                },
            }
        }
        Ok(())
    }

    fn on_close(
        &mut self,
        conn: &Connection,
        _code: u16,
        _reason: &str,
        _was_clean: bool,
        ctx: &mut Context<'_>,
    ) -> Result<(), RoomError> {
        self.remove_clients_of(conn, ctx);
        Ok(())
    }
}
