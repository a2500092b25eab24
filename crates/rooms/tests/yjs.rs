//! The built-in `yjs` room driven through the host API, with `yrs` documents as clients that
//! speak the protocol as `y-websocket` does.
//!
//! Determinism: nothing sleeps. A client knows the room has handled everything it sent before
//! once the reply to its own sync step 1 (a step 2, which the room sends to nobody else) has
//! arrived: a room handles its events in order and delivers their output in event order.
//! Timeouts only bound waits.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use cairn_rooms::Outbound;
use cairn_rooms::builtin::yjs::{YjsConfig, YjsRoom};
use cairn_rooms::{ConnectRequest, Connected, Frame, Message, RoomHost, SocketHandle};
use cairn_runtime::Runtime;
use cairn_storage::{ListOptions, Value};
use common::{WAIT, hibernate, host_of, open_runtime};
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{AwarenessUpdate, Message as YMessage, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ClientID, Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};

/// How long a test waits for a frame before it fails.
const PARTY: &str = "yjs";
const ROOM: &str = "doc";
const MAX_VALUE: usize = 128 * 1024;

fn host(rt: &Runtime, config: YjsConfig) -> RoomHost {
    host_of(rt, PARTY, move || YjsRoom::new(config.clone()))
}

/// Every stored key and value of the room.
async fn stored(rt: &Runtime) -> Vec<(String, Vec<u8>)> {
    let entries = rt.object(PARTY, ROOM).unwrap().list(ListOptions::default()).await.unwrap();
    entries
        .into_iter()
        .map(|(k, v)| match v {
            Value::Bytes(b) => (k, b),
            Value::Json(j) => panic!("{k} holds JSON {j}"),
        })
        .collect()
}

/// Number of stored updates (distinct `u:{seq}`) and snapshot chunks; checks every value's size.
async fn layout(rt: &Runtime) -> (usize, usize) {
    let entries = stored(rt).await;
    let mut seqs = std::collections::BTreeSet::new();
    let mut snapshot = 0;
    for (key, value) in &entries {
        assert!(value.len() <= MAX_VALUE, "{key} holds {} bytes", value.len());
        if let Some(rest) = key.strip_prefix("u:") {
            seqs.insert(rest.split(':').next().unwrap().to_owned());
        } else if key.starts_with("s:") {
            snapshot += 1;
        } else {
            panic!("unexpected key {key}");
        }
    }
    (seqs.len(), snapshot)
}

fn sync_msg(message: SyncMessage) -> Vec<u8> {
    YMessage::Sync(message).encode_v1()
}

fn awareness_msg(entries: &[(u64, u32, &str)]) -> Vec<u8> {
    let clients = entries
        .iter()
        .map(|&(id, clock, json)| (ClientID::new(id), AwarenessUpdateEntry { clock, json: Arc::from(json) }))
        .collect();
    YMessage::Awareness(AwarenessUpdate { clients }).encode_v1()
}

/// A `y-websocket`-like client: a document, the awareness states it has seen, its socket.
struct Client {
    doc: Doc,
    /// Last awareness entry seen per client id: `(clock, state JSON)`; `"null"` once removed.
    awareness: HashMap<u64, (u32, String)>,
    /// Awareness updates received, in order.
    awareness_frames: Vec<HashMap<u64, (u32, String)>>,
    handle: Option<SocketHandle>,
    rx: Outbound,
    /// The close frame the room sent, if any.
    closed: Option<(u16, String)>,
}

impl Client {
    /// Connects and synchronizes as `y-websocket` does on open: sends step 1, answers the
    /// room's step 1 with step 2, and waits for the room's step 2.
    async fn connect(host: &RoomHost, id: &str) -> Client {
        Client::connect_with(host, id, Doc::new()).await
    }

    async fn connect_with(host: &RoomHost, id: &str, doc: Doc) -> Client {
        let mut client = Client::connect_raw(host, id, doc).await;
        // The room speaks first: its step 1 is the first frame.
        let first = client.recv().await;
        match first {
            Frame::Binary(b) => match YMessage::decode_v1(&b).unwrap() {
                YMessage::Sync(SyncMessage::SyncStep1(sv)) => client.answer_step1(&sv).await,
                other => panic!("first frame is {other:?}"),
            },
            other => panic!("first frame is {other:?}"),
        }
        client.sync().await;
        client
    }

    /// Connects without reading anything.
    async fn connect_raw(host: &RoomHost, id: &str, doc: Doc) -> Client {
        let req = ConnectRequest {
            id: id.to_owned(),
            uri: format!("/parties/{PARTY}/{ROOM}?_pk={id}").parse().unwrap(),
            headers: Default::default(),
        };
        match host.connect(PARTY, ROOM, req).await.unwrap() {
            Connected::Accepted(handle, rx) => Client {
                doc,
                awareness: HashMap::new(),
                awareness_frames: Vec::new(),
                handle: Some(handle),
                rx,
                closed: None,
            },
            Connected::Refused(r) => panic!("refused: {r:?}"),
        }
    }

    async fn send(&self, bytes: Vec<u8>) {
        self.handle.as_ref().unwrap().message(Message::Binary(bytes.into())).await;
    }

    async fn recv(&mut self) -> Frame {
        tokio::time::timeout(WAIT, self.rx.recv()).await.expect("no frame in time").expect("socket channel closed")
    }

    async fn answer_step1(&mut self, sv: &StateVector) {
        let update = self.doc.transact().encode_state_as_update_v1(sv);
        self.send(sync_msg(SyncMessage::SyncStep2(update))).await;
    }

    /// Handles one frame from the room; returns what it was.
    async fn handle(&mut self, frame: Frame) -> Vec<&'static str> {
        let bytes = match frame {
            Frame::Binary(b) => b,
            Frame::Close { code, reason } => {
                self.closed = Some((code, reason));
                return vec!["close"];
            }
            Frame::Text(t) => panic!("the room sent text {t:?}"),
        };
        let message = YMessage::decode_v1(&bytes).unwrap();
        match message {
            YMessage::Sync(SyncMessage::SyncStep1(sv)) => {
                self.answer_step1(&sv).await;
                vec!["step1"]
            }
            YMessage::Sync(SyncMessage::SyncStep2(u)) => {
                self.doc.transact_mut().apply_update(Update::decode_v1(&u).unwrap()).unwrap();
                vec!["step2"]
            }
            YMessage::Sync(SyncMessage::Update(u)) => {
                self.doc.transact_mut().apply_update(Update::decode_v1(&u).unwrap()).unwrap();
                vec!["update"]
            }
            YMessage::Awareness(update) => {
                let frame: HashMap<u64, (u32, String)> =
                    update.clients.iter().map(|(id, e)| (id.get(), (e.clock, e.json.to_string()))).collect();
                self.awareness.extend(frame.clone());
                self.awareness_frames.push(frame);
                vec!["awareness"]
            }
            other => panic!("unexpected message {other:?}"),
        }
    }

    /// Sends step 1 and handles frames until the room's step 2 answers it: afterwards the
    /// client holds the whole document, and has seen the output of everything before.
    async fn sync(&mut self) {
        let sv = self.doc.transact().state_vector();
        self.send(sync_msg(SyncMessage::SyncStep1(sv))).await;
        loop {
            let frame = self.recv().await;
            let kinds = self.handle(frame).await;
            assert!(!kinds.contains(&"close"), "closed while syncing: {:?}", self.closed);
            if kinds.contains(&"step2") {
                return;
            }
        }
    }

    /// Handles frames until a sync update arrives.
    async fn wait_update(&mut self) {
        loop {
            let frame = self.recv().await;
            if self.handle(frame).await.contains(&"update") {
                return;
            }
        }
    }

    /// Handles frames until an awareness update arrives; returns it.
    async fn wait_awareness(&mut self) -> HashMap<u64, (u32, String)> {
        loop {
            let frame = self.recv().await;
            if self.handle(frame).await.contains(&"awareness") {
                return self.awareness_frames.last().cloned().unwrap();
            }
        }
    }

    /// Handles frames until the room closes the socket; returns the close code.
    async fn wait_close(&mut self) -> u16 {
        loop {
            let frame = self.recv().await;
            if self.handle(frame).await.contains(&"close") {
                return self.closed.as_ref().unwrap().0;
            }
        }
    }

    /// Appends to text `t` locally and sends the update; returns it.
    async fn push(&mut self, s: &str) -> Vec<u8> {
        let update = {
            let text = self.doc.get_or_insert_text("t");
            let mut txn = self.doc.transact_mut();
            text.push(&mut txn, s);
            txn.encode_update_v1()
        };
        self.send(sync_msg(SyncMessage::Update(update.clone()))).await;
        update
    }

    fn text(&self) -> String {
        let text = self.doc.get_or_insert_text("t");
        text.get_string(&self.doc.transact())
    }

    async fn close(&mut self) {
        if let Some(h) = self.handle.take() {
            h.closed(1000, String::new(), true).await;
        }
    }
}

#[tokio::test]
async fn two_clients_converge() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, YjsConfig::default());
    let mut a = Client::connect(&host, "a").await;
    let mut b = Client::connect(&host, "b").await;

    a.push("hello").await;
    b.wait_update().await;
    assert_eq!(b.text(), "hello");

    // Concurrent edits: each sends before seeing the other's.
    a.push(" from a").await;
    b.push(" from b").await;
    a.wait_update().await;
    b.wait_update().await;
    assert_eq!(a.text(), b.text());
    assert!(a.text().contains(" from a") && a.text().contains(" from b"), "{}", a.text());

    // The sender does not get its own update back: after a's sync, nothing else is queued.
    a.sync().await;
    assert!(a.rx.try_recv().is_err());
    assert_eq!(host.stats().handler_errors, 0);
}

#[tokio::test]
async fn late_joiner_gets_the_full_document() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, YjsConfig::default());
    let mut a = Client::connect(&host, "a").await;
    for i in 0..20 {
        a.push(&format!("line {i}\n")).await;
    }
    a.sync().await;
    let c = Client::connect(&host, "c").await;
    assert_eq!(c.text(), a.text());
    assert!(c.text().starts_with("line 0\nline 1\n"));
}

#[tokio::test]
async fn offline_edits_reach_the_room_through_step2() {
    // A client that edited before connecting sends its edits as step 2, answering the
    // room's step 1; the room stores them and passes them on.
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, YjsConfig::default());
    let mut b = Client::connect(&host, "b").await;
    let offline = Doc::new();
    {
        let text = offline.get_or_insert_text("t");
        text.push(&mut offline.transact_mut(), "written offline");
    }
    let a = Client::connect_with(&host, "a", offline).await;
    b.wait_update().await;
    assert_eq!(b.text(), "written offline");
    assert_eq!(a.text(), "written offline");
    let (updates, _) = layout(&rt).await;
    assert_eq!(updates, 1);
}

#[tokio::test]
async fn document_survives_a_runtime_restart() {
    let dir = tempfile::tempdir().unwrap();
    let expected;
    {
        let rt = open_runtime(dir.path());
        let host = host(&rt, YjsConfig::default());
        let mut a = Client::connect(&host, "a").await;
        a.push("durable ").await;
        a.push("text").await;
        a.sync().await;
        expected = a.text();
        a.close().await;
        drop(host);
        rt.close();
    }
    let rt = open_runtime(dir.path());
    let host = host(&rt, YjsConfig::default());
    let c = Client::connect(&host, "c").await;
    assert_eq!(c.text(), expected);
    assert_eq!(expected, "durable text");
}

#[tokio::test]
async fn document_survives_hibernation() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, YjsConfig::default());
    let mut a = Client::connect(&host, "a").await;
    a.push("before ").await;
    a.sync().await;
    hibernate(&host).await;
    assert_eq!(host.stats().hibernated_rooms, 1);

    // The next event starts a new instance from storage.
    let mut b = Client::connect(&host, "b").await;
    assert_eq!(b.text(), "before ");
    a.push("after").await;
    b.wait_update().await;
    assert_eq!(b.text(), "before after");
    let stats = host.stats();
    assert_eq!(stats.starts, 2);
    assert_eq!(stats.wakeups, 1);

    // And an update can be the event that wakes it.
    b.sync().await;
    hibernate(&host).await;
    b.push("!").await;
    a.wait_update().await;
    assert_eq!(a.text(), "before after!");
    assert_eq!(host.stats().starts, 3);
}

#[tokio::test]
async fn compaction_by_update_count() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let config = YjsConfig { compact_after_updates: 4, compact_after_bytes: u64::MAX };
    let host = host(&rt, config.clone());
    let mut a = Client::connect(&host, "a").await;
    for i in 0..4 {
        a.push(&format!("{i} ")).await;
    }
    a.sync().await;
    assert_eq!(layout(&rt).await, (4, 0), "four updates, no snapshot yet");
    // The fifth would exceed the limit: a snapshot replaces them all.
    a.push("4 ").await;
    a.sync().await;
    assert_eq!(layout(&rt).await, (0, 1));
    for i in 5..12 {
        a.push(&format!("{i} ")).await;
    }
    a.sync().await;
    // 5..8 stored, the 9th compacted, 10 and 11 stored.
    assert_eq!(layout(&rt).await, (2, 1));
    let expected = a.text();
    assert_eq!(expected, "0 1 2 3 4 5 6 7 8 9 10 11 ");

    a.close().await;
    drop(host);
    rt.close();
    let rt = open_runtime(dir.path());
    let host = self::host(&rt, config);
    let c = Client::connect(&host, "c").await;
    assert_eq!(c.text(), expected);
}

#[tokio::test]
async fn compaction_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, YjsConfig { compact_after_bytes: 10 * 1024, compact_after_updates: 1000 });
    let mut a = Client::connect(&host, "a").await;
    let mut sizes = 0;
    for i in 0..3 {
        sizes += a.push(&format!("{i}").repeat(3000)).await.len();
    }
    a.sync().await;
    assert!(sizes <= 10 * 1024, "{sizes}");
    assert_eq!(layout(&rt).await, (3, 0));
    a.push(&"x".repeat(3000)).await;
    a.sync().await;
    assert_eq!(layout(&rt).await, (0, 1));
    hibernate(&host).await;
    let c = Client::connect(&host, "c").await;
    assert_eq!(c.text(), a.text());
    assert_eq!(c.text().len(), 12_000);
}

/// About `len` bytes of text that does not repeat.
fn big_text(len: usize, seed: u64) -> String {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            char::from(b'a' + ((x >> 33) % 26) as u8)
        })
        .collect()
}

/// A multi-MiB document, written as one update and as many, survives a restart.
async fn round_trip_big_document(config: YjsConfig, expect_snapshot: bool) {
    let dir = tempfile::tempdir().unwrap();
    let expected;
    {
        let rt = open_runtime(dir.path());
        let host = host(&rt, config.clone());
        let mut a = Client::connect(&host, "a").await;
        let mut b = Client::connect(&host, "b").await;
        a.push(&big_text(5 * 1024 * 1024, 1)).await;
        for i in 0..8 {
            a.push(&big_text(64 * 1024, i + 2)).await;
        }
        a.sync().await;
        b.sync().await;
        assert_eq!(b.text(), a.text());
        expected = a.text();
        let (updates, snapshot) = layout(&rt).await;
        if expect_snapshot {
            assert!(snapshot >= 40, "{snapshot} snapshot chunks");
        } else {
            assert_eq!(snapshot, 0);
            assert_eq!(updates, 9);
        }
        drop((a, b));
        drop(host);
        rt.close();
    }
    let rt = open_runtime(dir.path());
    let host = host(&rt, config);
    let c = Client::connect(&host, "c").await;
    assert_eq!(c.text().len(), expected.len());
    assert!(c.text() == expected);
    layout(&rt).await;
}

#[tokio::test]
async fn multi_mib_document_round_trips_through_snapshots() {
    round_trip_big_document(YjsConfig::default(), true).await;
}

#[tokio::test]
async fn multi_mib_document_round_trips_through_chunked_updates() {
    round_trip_big_document(YjsConfig { compact_after_bytes: u64::MAX, ..YjsConfig::default() }, false).await;
}

#[tokio::test]
async fn update_waiting_for_its_dependency_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // An author makes two edits; the second depends on the first.
    let author = Doc::with_client_id(7);
    let text = author.get_or_insert_text("t");
    let first = {
        let mut txn = author.transact_mut();
        text.push(&mut txn, "first ");
        txn.encode_update_v1()
    };
    let second = {
        let mut txn = author.transact_mut();
        text.push(&mut txn, "second");
        txn.encode_update_v1()
    };
    {
        let rt = open_runtime(dir.path());
        let host = host(&rt, YjsConfig::default());
        let mut a = Client::connect(&host, "a").await;
        let mut b = Client::connect(&host, "b").await;
        a.send(sync_msg(SyncMessage::Update(second))).await;
        a.sync().await;
        // Nothing integrated, so nothing passed on; but it is stored.
        b.sync().await;
        assert_eq!(b.text(), "");
        assert_eq!(layout(&rt).await, (1, 0));
        drop((a, b));
        drop(host);
        rt.close();
    }
    let rt = open_runtime(dir.path());
    let host = host(&rt, YjsConfig::default());
    let a = Client::connect(&host, "a").await;
    let mut b = Client::connect(&host, "b").await;
    a.send(sync_msg(SyncMessage::Update(first))).await;
    b.wait_update().await;
    assert_eq!(b.text(), "first second");
    drop(a);
    let c = Client::connect(&host, "c").await;
    assert_eq!(c.text(), "first second");
}

#[tokio::test]
async fn awareness_is_relayed_queried_and_removed_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, YjsConfig::default());
    let mut a = Client::connect(&host, "a").await;
    let mut b = Client::connect(&host, "b").await;
    assert!(a.awareness.is_empty(), "no awareness frame while nobody has a state");

    a.send(awareness_msg(&[(1001, 1, r#"{"user":"a"}"#)])).await;
    // Everyone gets it, the sender included (as y-websocket's server does).
    assert_eq!(a.wait_awareness().await[&1001], (1, r#"{"user":"a"}"#.to_owned()));
    assert_eq!(b.wait_awareness().await[&1001], (1, r#"{"user":"a"}"#.to_owned()));

    // A stale clock changes nothing and is not relayed.
    b.send(awareness_msg(&[(1001, 1, r#"{"user":"forged"}"#)])).await;
    b.sync().await;
    assert_eq!(b.awareness_frames.len(), 1);

    // A late joiner gets every state on connect.
    let mut c = Client::connect(&host, "c").await;
    assert_eq!(c.awareness[&1001], (1, r#"{"user":"a"}"#.to_owned()));

    // Query awareness: answered to the asker only.
    b.send(vec![3]).await;
    assert_eq!(b.wait_awareness().await[&1001].0, 1);

    // A renewal with the same state is relayed (it keeps the state from timing out).
    a.send(awareness_msg(&[(1001, 2, r#"{"user":"a"}"#)])).await;
    assert_eq!(c.wait_awareness().await[&1001].0, 2);
    assert_eq!(b.wait_awareness().await[&1001].0, 2);

    a.close().await;
    let removed = b.wait_awareness().await;
    assert_eq!(removed[&1001], (2, "null".to_owned()));
    assert_eq!(c.wait_awareness().await[&1001], (2, "null".to_owned()));
    // The room forgot it: a new client gets no awareness frame.
    let d = Client::connect(&host, "d").await;
    assert!(d.awareness.is_empty());
    assert_eq!(host.stats().handler_errors, 0);
}

#[tokio::test]
async fn a_client_removing_its_own_state_is_relayed() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, YjsConfig::default());
    let mut a = Client::connect(&host, "a").await;
    let mut b = Client::connect(&host, "b").await;
    a.send(awareness_msg(&[(5, 1, "{}")])).await;
    b.wait_awareness().await;
    // y-websocket clients send a null state with a newer clock when they leave.
    a.send(awareness_msg(&[(5, 2, "null")])).await;
    assert_eq!(b.wait_awareness().await[&5], (2, "null".to_owned()));
    a.close().await;
    // Nothing left to remove: b's next frame is its own sync's answer.
    b.sync().await;
    assert_eq!(b.awareness_frames.len(), 2);
}

#[tokio::test]
async fn awareness_survives_hibernation() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, YjsConfig::default());
    let mut a = Client::connect(&host, "a").await;
    let mut b = Client::connect(&host, "b").await;
    a.send(awareness_msg(&[(1001, 3, r#"{"cursor":1}"#)])).await;
    b.wait_awareness().await;
    a.sync().await;
    hibernate(&host).await;

    // Rebuilt from the sockets' attachments by the new instance.
    let mut c = Client::connect(&host, "c").await;
    assert_eq!(c.awareness[&1001], (3, r#"{"cursor":1}"#.to_owned()));
    assert_eq!(host.stats().starts, 2);

    // Clocks carried over: an old clock is still refused, a newer one relayed.
    hibernate(&host).await;
    b.send(awareness_msg(&[(1001, 3, r#"{"cursor":"forged"}"#)])).await;
    b.sync().await;
    assert_eq!(b.awareness[&1001], (3, r#"{"cursor":1}"#.to_owned()));
    a.send(awareness_msg(&[(1001, 4, r#"{"cursor":2}"#)])).await;
    assert_eq!(c.wait_awareness().await[&1001], (4, r#"{"cursor":2}"#.to_owned()));

    // Ownership carried over too: a's close removes its client.
    hibernate(&host).await;
    b.sync().await; // wakes the room with a and b open
    a.close().await;
    assert_eq!(b.wait_awareness().await[&1001], (4, "null".to_owned()));
    assert_eq!(c.wait_awareness().await[&1001], (4, "null".to_owned()));
}

/// A close that wakes a hibernating room: the host starts the instance while the closing
/// socket is still in the room, so its awareness is rebuilt and then removed.
#[tokio::test]
async fn awareness_is_removed_when_a_close_wakes_the_room() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, YjsConfig::default());
    let mut a = Client::connect(&host, "a").await;
    let mut b = Client::connect(&host, "b").await;
    a.send(awareness_msg(&[(1001, 1, r#"{"user":"a"}"#)])).await;
    b.wait_awareness().await;
    a.sync().await;
    hibernate(&host).await;
    // The close is the first event after hibernation.
    a.close().await;
    assert_eq!(b.wait_awareness().await[&1001], (1, "null".to_owned()));
}

#[tokio::test]
async fn oversized_awareness_keeps_only_ids_across_hibernation() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, YjsConfig::default());
    let mut a = Client::connect(&host, "a").await;
    let mut b = Client::connect(&host, "b").await;
    let state = format!(r#"{{"blob":"{}"}}"#, "z".repeat(20 * 1024));
    a.send(awareness_msg(&[(1001, 1, &state)])).await;
    assert_eq!(b.wait_awareness().await[&1001].1, state);
    a.sync().await;
    hibernate(&host).await;

    // The state is gone from the room after the restart (over the attachment limit)...
    let mut c = Client::connect(&host, "c").await;
    assert!(!c.awareness.contains_key(&1001));
    // ...but the client's id and clock were kept, so its close still removes it everywhere.
    a.close().await;
    assert_eq!(b.wait_awareness().await[&1001], (1, "null".to_owned()));
    assert_eq!(c.wait_awareness().await[&1001], (1, "null".to_owned()));
}

#[tokio::test]
async fn several_messages_in_one_frame() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, YjsConfig::default());
    let mut a = Client::connect(&host, "a").await;
    let mut b = Client::connect(&host, "b").await;
    let update = {
        let text = a.doc.get_or_insert_text("t");
        let mut txn = a.doc.transact_mut();
        text.push(&mut txn, "batched");
        txn.encode_update_v1()
    };
    let mut frame = sync_msg(SyncMessage::Update(update));
    frame.extend(awareness_msg(&[(9, 1, "{}")]));
    frame.extend(sync_msg(SyncMessage::SyncStep1(a.doc.transact().state_vector())));
    a.send(frame).await;
    // a: its awareness back, then the step 2.
    a.wait_awareness().await;
    let next = a.recv().await;
    assert!(a.handle(next).await.contains(&"step2"));
    b.wait_update().await;
    assert_eq!(b.text(), "batched");
    b.wait_awareness().await;
}

#[tokio::test]
async fn malformed_frames_are_refused_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, YjsConfig::default());
    let mut writer = Client::connect(&host, "writer").await;
    writer.push("intact").await;
    writer.sync().await;

    let valid_update = {
        let doc = Doc::new();
        let text = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        text.push(&mut txn, "must not land");
        txn.encode_update_v1()
    };
    let mut update_then_garbage = sync_msg(SyncMessage::Update(valid_update));
    update_then_garbage.extend([0, 9]);
    let mut big_client_sv = vec![0, 0];
    let sv = {
        let mut v = vec![1];
        // varuint 2^60: over the 53-bit client id limit
        let mut n: u64 = 1 << 60;
        while n >= 0x80 {
            v.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        v.push(n as u8);
        v.push(1);
        v
    };
    big_client_sv.push(sv.len() as u8);
    big_client_sv.extend(&sv);
    let mut big_client_update = vec![0, 2];
    let mut u = vec![1, 1];
    u.extend(&sv[1..sv.len() - 1]);
    u.extend([0, 4, 0, 0]);
    big_client_update.push(u.len() as u8);
    big_client_update.extend(u);

    let refused: Vec<(&str, Vec<u8>)> = vec![
        ("sync without sub-type", vec![0]),
        ("unknown sync sub-type", vec![0, 9, 0]),
        ("truncated payload", vec![0, 2, 5, 1, 2]),
        ("update garbage", vec![0, 2, 3, 0xff, 0xff, 0xff]),
        ("update of random bytes", vec![0, 1, 8, 3, 200, 7, 1, 99, 250, 250, 1]),
        ("step 1 with a client id over 2^53", big_client_sv),
        ("update with a client id over 2^53", big_client_update),
        ("bad varint", vec![0xff; 12]),
        ("awareness state not JSON", awareness_msg(&[(3, 1, "{nope")])),
        ("awareness truncated", vec![1, 10, 1, 3]),
        ("a valid update followed by garbage", update_then_garbage),
    ];
    for (i, (what, frame)) in refused.into_iter().enumerate() {
        let mut bad = Client::connect(&host, &format!("bad{i}")).await;
        bad.send(frame).await;
        assert_eq!(bad.wait_close().await, 1007, "{what}");
    }

    // Ignored: the socket stays open and working.
    let mut lax = Client::connect(&host, "lax").await;
    for frame in [vec![], vec![2, 0], vec![2, 0, 5, 1, 2, 3], vec![7, 1, 2]] {
        lax.send(frame).await;
    }
    lax.handle.as_ref().unwrap().message(Message::Text("__YPS:custom".to_owned())).await;
    lax.sync().await;
    assert!(lax.closed.is_none());

    // The room is unharmed: the document is what the writer wrote, and it still works.
    let late = Client::connect(&host, "late").await;
    assert_eq!(late.text(), "intact");
    writer.push(" still").await;
    lax.wait_update().await;
    assert_eq!(lax.text(), "intact still");
    assert_eq!(host.stats().handler_errors, 0);
    assert_eq!(layout(&rt).await, (2, 0));
}

#[tokio::test]
async fn what_the_room_knows_is_not_stored_again() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, YjsConfig::default());
    let mut a = Client::connect(&host, "a").await;
    a.push("hello world").await;
    let delete = {
        let text = a.doc.get_or_insert_text("t");
        let mut txn = a.doc.transact_mut();
        text.remove_range(&mut txn, 0, 6);
        txn.encode_update_v1()
    };
    a.send(sync_msg(SyncMessage::Update(delete.clone()))).await;
    a.sync().await;
    assert_eq!(layout(&rt).await, (2, 0));

    // A replica holding the same state (its step 2 repeats the whole delete set) and a resent
    // update change nothing: nothing is stored, nothing is passed on.
    let replica = Doc::new();
    replica
        .transact_mut()
        .apply_update(Update::decode_v1(&a.doc.transact().encode_state_as_update_v1(&StateVector::default())).unwrap())
        .unwrap();
    let mut b = Client::connect_with(&host, "b", replica).await;
    assert_eq!(b.text(), "world");
    a.send(sync_msg(SyncMessage::Update(delete))).await;
    a.sync().await;
    b.sync().await;
    assert_eq!(layout(&rt).await, (2, 0));
    assert!(b.rx.try_recv().is_err());
}

#[tokio::test]
async fn a_socket_the_room_refuses_leaves_the_awareness() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, YjsConfig::default());
    let mut a = Client::connect(&host, "a").await;
    let mut b = Client::connect(&host, "b").await;
    a.send(awareness_msg(&[(42, 1, r#"{"user":"a"}"#)])).await;
    b.wait_awareness().await;
    a.send(vec![0, 9, 9]).await;
    assert_eq!(a.wait_close().await, 1007);
    assert_eq!(b.wait_awareness().await[&42], (1, "null".to_owned()));
    // The room goes on; a late joiner sees no state.
    let c = Client::connect(&host, "c").await;
    assert!(c.awareness.is_empty());
    assert_eq!(host.stats().handler_errors, 0);
}

#[test]
fn config_defaults_and_unknown_fields() {
    let c: YjsConfig = serde_json::from_str(r#"{"compact_after_bytes": 10}"#).unwrap();
    assert_eq!(c, YjsConfig { compact_after_bytes: 10, ..YjsConfig::default() });
    assert_eq!(YjsConfig::default().compact_after_updates, 500);
    assert_eq!(YjsConfig::default().compact_after_bytes, 1024 * 1024);
    assert!(serde_json::from_str::<YjsConfig>(r#"{"compact_after": 1}"#).is_err());
}
