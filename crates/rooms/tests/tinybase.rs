//! The built-in `tinybase` room driven through the host API, speaking the TinyBase PartyKit
//! persister protocol as `createPartyKitPersister` does: HTTP GET/PUT of the whole store, `s`
//! frames of changes.
//!
//! Determinism: nothing sleeps. The room never answers a change, so a test knows the room has
//! handled every frame sent before once an HTTP request sent after them is answered: a room
//! runs its events in order and delivers their output in event order, so by then every
//! broadcast of those frames is in the sockets' channels. Timeouts only bound waits.

#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use cairn_rooms::Outbound;
use cairn_rooms::builtin::tinybase::{TinyBaseConfig, TinyBaseRoom};
use cairn_rooms::{ConnectRequest, Connected, Frame, Message, RoomHost, SocketHandle};
use cairn_runtime::Runtime;
use cairn_storage::{ListOptions, Value as Stored};
use common::{WAIT, hibernate, host_of, open_runtime};
use serde_json::{Value, json};

/// How long a test waits for a frame before it fails.
const PARTY: &str = "tinybase";
const ROOM: &str = "store-room";
const STORE: &str = "/parties/tinybase/store-room/store";
/// The deletion marker.
const DEL: &str = "\u{FFFC}";

fn host(rt: &Runtime, config: TinyBaseConfig) -> RoomHost {
    host_of(rt, PARTY, move || TinyBaseRoom::new(config.clone()))
}

/// An HTTP response, reduced to what the tests look at.
#[derive(Debug)]
struct Res {
    status: u16,
    body: String,
    headers: http::HeaderMap,
}

impl Res {
    /// The body as JSON (fails on an empty body).
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body {:?} is not JSON: {e}", self.body))
    }
}

async fn request(host: &RoomHost, method: &str, path: &str, body: impl Into<Bytes>) -> Res {
    let req = http::Request::builder().method(method).uri(path).body(body.into()).unwrap();
    let res = tokio::time::timeout(WAIT, host.request(PARTY, ROOM, req)).await.expect("no response in time").unwrap();
    Res {
        status: res.status().as_u16(),
        body: String::from_utf8(res.body().to_vec()).unwrap(),
        headers: res.headers().clone(),
    }
}

async fn get(host: &RoomHost) -> Res {
    request(host, "GET", STORE, "").await
}

async fn put(host: &RoomHost, body: &Value) -> u16 {
    let res = request(host, "PUT", STORE, body.to_string()).await;
    assert_eq!(res.body, "", "a PUT answers without a body");
    res.status
}

/// Every stored key of the room with its JSON value.
async fn stored(rt: &Runtime) -> Vec<(String, Value)> {
    let entries = rt.object(PARTY, ROOM).unwrap().list(ListOptions::default()).await.unwrap();
    entries
        .into_iter()
        .map(|(k, v)| match v {
            Stored::Json(j) => (k, j),
            Stored::Bytes(b) => panic!("{k} holds {} raw bytes", b.len()),
        })
        .collect()
}

/// Every stored key of the room, whatever its value.
async fn stored_keys(rt: &Runtime) -> Vec<String> {
    let entries = rt.object(PARTY, ROOM).unwrap().list(ListOptions::default()).await.unwrap();
    entries.into_iter().map(|(k, _)| k).collect()
}

fn keys(entries: &[(String, Value)]) -> Vec<&str> {
    entries.iter().map(|(k, _)| k.as_str()).collect()
}

fn assert_cors(res: &Res) {
    for name in ["access-control-allow-origin", "access-control-allow-methods", "access-control-allow-headers"] {
        assert_eq!(res.headers.get(name).map(|v| v.to_str().unwrap()), Some("*"), "{name} on {res:?}");
    }
}

/// A socket of the room, as a `PartySocket` under a persister.
struct Client {
    handle: SocketHandle,
    rx: Outbound,
}

impl Client {
    async fn connect(host: &RoomHost, id: &str) -> Client {
        let req = ConnectRequest {
            id: id.to_owned(),
            uri: format!("/parties/{PARTY}/{ROOM}?_pk={id}").parse().unwrap(),
            headers: Default::default(),
        };
        match host.connect(PARTY, ROOM, req).await.unwrap() {
            Connected::Accepted(handle, rx) => Client { handle, rx },
            Connected::Refused(r) => panic!("refused: {r:?}"),
        }
    }

    async fn send(&self, text: &str) {
        self.handle.message(Message::Text(text.to_owned())).await;
    }

    /// Sends `s` + the JSON of `changes` (no prefix).
    async fn change(&self, changes: &Value) {
        self.send(&format!("s{changes}")).await;
    }

    async fn recv_text(&mut self) -> String {
        let frame =
            tokio::time::timeout(WAIT, self.rx.recv()).await.expect("no frame in time").expect("socket channel closed");
        match frame {
            Frame::Text(b) => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Receives a frame `s{json}` and returns the JSON.
    async fn recv_change(&mut self) -> Value {
        let text = self.recv_text().await;
        let json = text.strip_prefix('s').unwrap_or_else(|| panic!("not a change frame: {text:?}"));
        serde_json::from_str(json).unwrap()
    }

    /// Fails if a frame is waiting. Call after a barrier (an answered request).
    fn assert_quiet(&mut self) {
        if let Ok(frame) = self.rx.try_recv() {
            panic!("unexpected frame {frame:?}");
        }
    }
}

/// The room's store as the spec's example session leaves it.
fn pets() -> Value {
    json!([
        {"pets": {"fido": {"species": "dog", "legs": 4}, "felix": {"species": "cat", "legs": 4}}},
        {"open": true}
    ])
}

#[tokio::test]
async fn get_is_empty_until_a_put_initialises_the_room_once() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, TinyBaseConfig::default());

    let res = get(&host).await;
    assert_eq!((res.status, res.body.as_str()), (200, ""));
    assert_cors(&res);
    assert!(stored(&rt).await.is_empty(), "a GET writes nothing");

    let res = request(&host, "PUT", STORE, pets().to_string()).await;
    assert_eq!((res.status, res.body.as_str()), (201, ""));
    assert_cors(&res);
    let res = get(&host).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), pets());
    assert_eq!(res.headers.get("content-type").unwrap(), "text/plain;charset=UTF-8");

    // A second PUT changes nothing, whatever it holds.
    let res = request(&host, "PUT", STORE, json!([{"pets": {"rex": {"species": "dog"}}}, {}]).to_string()).await;
    assert_eq!((res.status, res.body.as_str()), (205, ""));
    assert_cors(&res);
    assert_eq!(put(&host, &json!([{}, {}])).await, 205);
    assert_eq!(get(&host).await.json(), pets());

    // Any method other than PUT loads, so a CORS preflight is answered as a GET.
    let res = request(&host, "OPTIONS", STORE, "").await;
    assert_eq!(res.status, 200);
    assert_cors(&res);
    assert_eq!(res.json(), pets());
    assert_eq!(request(&host, "POST", STORE, "ignored").await.json(), pets());
    assert_eq!(host.stats().handler_errors, 0);
}

#[tokio::test]
async fn stored_keys_are_those_of_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, TinyBaseConfig::default());
    assert_eq!(put(&host, &json!([{}, {}])).await, 201, "empty content initialises the room");
    let a = Client::connect(&host, "a").await;
    a.change(&json!([{"pets": {"fido": {"species": "dog", "legs": 4}}}, {}, 1])).await;
    a.change(&json!([{"pets": {"felix": {"species": "cat", "legs": 4}}}, {"open": true}, 1])).await;
    let res = get(&host).await;
    assert_eq!(
        res.body,
        r#"[{"pets":{"felix":{"legs":4,"species":"cat"},"fido":{"legs":4,"species":"dog"}}},{"open":true}]"#
    );
    assert_eq!(
        stored(&rt).await,
        vec![
            ("hasStore".to_owned(), json!(1)),
            (r#"t"pets","felix","legs""#.to_owned(), json!(4)),
            (r#"t"pets","felix","species""#.to_owned(), json!("cat")),
            (r#"t"pets","fido","legs""#.to_owned(), json!(4)),
            (r#"t"pets","fido","species""#.to_owned(), json!("dog")),
            ("vopen".to_owned(), json!(true)),
        ]
    );
}

#[tokio::test]
async fn put_refuses_what_is_not_content() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, TinyBaseConfig::default());
    let bad: &[&str] = &[
        "",
        "not json",
        "[1]",
        "{}",
        "null",
        "[{},{}",
        "[{},{},1]",                       // changes, not content
        "[{}]",                            // too short
        "[[],{}]",                         // tables not an object
        "[{},[]]",                         // values not an object
        "[{},null]",                       // values not an object
        r#"[{"t":1},{}]"#,                 // a table that is not an object
        r#"[{"t":[]},{}]"#,                // a table that is an array
        r#"[{"t":{"r":5}},{}]"#,           // a row that is not an object
        r#"[{"t":{"r":["a"]}},{}]"#,       // a row that is an array
        r#"[{"t":{"r":null}},{}]"#,        // a row that is null
        r#"[{"t":{"r":{"c":1e999}}},{}]"#, // a cell that is not finite
        r#"[{},{"v":-1e999}]"#,            // a value that is not finite
        "[{\"t\":\"\u{FFFC}\"},{}]",       // a PUT cannot delete: the marker is not a table
        "[{\"t\":{\"r\":\"\u{FFFC}\"}},{}]",
    ];
    for body in bad {
        let res = request(&host, "PUT", STORE, body.to_string()).await;
        assert_eq!((res.status, res.body.as_str()), (400, ""), "PUT {body:?}");
        assert_cors(&res);
    }
    let res = request(&host, "PUT", STORE, Bytes::from_static(b"[{\"t\":{\"r\":{\"c\":\"\xff\"}}},{}")).await;
    assert_eq!(res.status, 400);
    assert_eq!(get(&host).await.body, "", "still uninitialised");
    assert!(stored(&rt).await.is_empty());

    // Every JSON value is a valid cell or value, objects and arrays included, and in a PUT the
    // deletion marker is just a string. A leading BOM is dropped, as `Request.text()` does.
    let content = json!([
        {"t": {"r": {"o": {"a": [1, {"b": null}]}, "l": [1, "x"], "n": null, "f": 1.5, "s": DEL, "b": false}}},
        {"v": DEL, "w": {"deep": {"er": 1}}}
    ]);
    let res = request(&host, "PUT", STORE, format!("\u{feff}{content}")).await;
    assert_eq!(res.status, 201);
    assert_eq!(get(&host).await.json(), content);
    assert_eq!(host.stats().handler_errors, 0);
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, TinyBaseConfig::default());
    for (method, path) in [
        ("GET", "/parties/tinybase/store-room"),
        ("GET", "/parties/tinybase/store-room/other"),
        ("PUT", "/parties/tinybase/store-room/store/x"),
        ("GET", "/parties/tinybase/store-room/storex"),
    ] {
        let res = request(&host, method, path, pets().to_string()).await;
        assert_eq!((res.status, res.body.as_str()), (404, ""), "{method} {path}");
        assert_cors(&res);
    }
    assert!(stored(&rt).await.is_empty());
    // The path only has to end with the store path, as the original matches it.
    assert_eq!(
        request(&host, "PUT", "/parties/tinybase/store-room/deeper/store", pets().to_string()).await.status,
        201
    );
    assert_eq!(get(&host).await.json(), pets());
}

#[tokio::test]
async fn changes_are_stored_and_sent_to_everyone_but_the_sender() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, TinyBaseConfig::default());
    let mut a = Client::connect(&host, "a").await;
    let mut b = Client::connect(&host, "b").await;
    let mut c = Client::connect(&host, "c").await;
    assert_eq!(put(&host, &pets()).await, 201);

    // Exactly the frames the real server sends (U+FFFD-prefixed strings for arrays).
    let set = format!("s{}", r#"[{"pets":{"fido":{"species":"dog","tags":"\uFFFD[\"a\",\"b\"]"}}},{},1]"#);
    a.send(&set).await;
    let expected = format!(
        "s{}",
        serde_json::to_string(&json!([{"pets": {"fido": {"species": "dog", "tags": "\u{FFFD}[\"a\",\"b\"]"}}}, {}, 1]))
            .unwrap()
    );
    assert_eq!(b.recv_text().await, expected);
    assert_eq!(c.recv_text().await, expected);
    b.change(&json!([{}, {"open": false, "count": 2}, 1])).await;
    assert_eq!(a.recv_change().await, json!([{}, {"count": 2, "open": false}, 1]));
    assert_eq!(c.recv_change().await, json!([{}, {"count": 2, "open": false}, 1]));

    let res = get(&host).await;
    a.assert_quiet();
    b.assert_quiet();
    c.assert_quiet();
    assert_eq!(
        res.json(),
        json!([
            {"pets": {
                "fido": {"species": "dog", "legs": 4, "tags": "\u{FFFD}[\"a\",\"b\"]"},
                "felix": {"species": "cat", "legs": 4}
            }},
            {"open": false, "count": 2}
        ])
    );

    // A change that accepts nothing (empty tables and rows) is not sent.
    a.change(&json!([{"pets": {"fido": {}}, "empty": {}}, {}, 1])).await;
    get(&host).await;
    b.assert_quiet();
    c.assert_quiet();
    assert_eq!(host.stats().handler_errors, 0);
}

#[tokio::test]
async fn deletions_at_every_level() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, TinyBaseConfig::default());
    let a = Client::connect(&host, "a").await;
    let mut b = Client::connect(&host, "b").await;
    let content = json!([
        {
            "pets": {
                "fido": {"species": "dog", "legs": 4},
                "fido2": {"species": "dog"},
                "rex": {"species": "dog", "legs": 3},
                "felix": {"species": "cat"}
            },
            "petsX": {"tom": {"species": "cat"}},
            "pets\"": {"odd": {"x": 1}},
            "toys": {"ball": {"color": "red", "size": 2}}
        },
        {"open": true, "openX": 1}
    ]);
    assert_eq!(put(&host, &content).await, 201);

    // A cell.
    a.change(&json!([{"pets": {"fido": {"species": DEL}}}, {}, 1])).await;
    assert_eq!(b.recv_text().await, "s[{\"pets\":{\"fido\":{\"species\":\"\u{FFFC}\"}}},{},1]");
    // A row: `fido2` stays.
    a.change(&json!([{"pets": {"fido": DEL}}, {}, 1])).await;
    assert_eq!(b.recv_change().await, json!([{"pets": {"fido": DEL}}, {}, 1]));
    // A value: `openX` stays.
    a.change(&json!([{}, {"open": DEL}, 1])).await;
    assert_eq!(b.recv_change().await, json!([{}, {"open": DEL}, 1]));
    let res = get(&host).await;
    assert_eq!(
        res.json(),
        json!([
            {
                "pets": {
                    "fido2": {"species": "dog"},
                    "rex": {"species": "dog", "legs": 3},
                    "felix": {"species": "cat"}
                },
                "petsX": {"tom": {"species": "cat"}},
                "pets\"": {"odd": {"x": 1}},
                "toys": {"ball": {"color": "red", "size": 2}}
            },
            {"openX": 1}
        ])
    );

    // A table, with a set and deletes of other tables in the same change: `petsX` and
    // `pets"` stay.
    a.change(&json!([{"pets": DEL, "toys": {"ball": {"size": DEL, "color": "blue"}}, "gone": DEL}, {"nope": DEL}, 1]))
        .await;
    assert_eq!(
        b.recv_change().await,
        json!([{"pets": DEL, "toys": {"ball": {"size": DEL, "color": "blue"}}, "gone": DEL}, {"nope": DEL}, 1])
    );
    let res = get(&host).await;
    assert_eq!(
        res.json(),
        json!([
            {"petsX": {"tom": {"species": "cat"}}, "pets\"": {"odd": {"x": 1}}, "toys": {"ball": {"color": "blue"}}},
            {"openX": 1}
        ])
    );
    // In key order: `X` (0x58) sorts before `\` (0x5C).
    assert_eq!(
        keys(&stored(&rt).await),
        vec![
            "hasStore",
            r#"t"petsX","tom","species""#,
            r#"t"pets\"","odd","x""#,
            r#"t"toys","ball","color""#,
            "vopenX"
        ]
    );
    assert_eq!(host.stats().handler_errors, 0);
}

#[tokio::test]
async fn many_rows_are_deleted_with_their_table() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, TinyBaseConfig::default());
    let a = Client::connect(&host, "a").await;
    let rows: serde_json::Map<String, Value> =
        (0..700).map(|i| (format!("r{i}"), json!({"a": i, "b": "x", "c": true}))).collect();
    assert_eq!(put(&host, &json!([{"big": rows, "small": {"r": {"c": 1}}}, {}])).await, 201);
    assert_eq!(stored(&rt).await.len(), 2102);
    a.change(&json!([{"big": DEL}, {}, 1])).await;
    assert_eq!(keys(&stored(&rt).await), vec!["hasStore", r#"t"small","r","c""#]);
}

#[tokio::test]
async fn frames_that_are_not_changes_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, TinyBaseConfig::default());
    let a = Client::connect(&host, "a").await;
    let mut b = Client::connect(&host, "b").await;
    assert_eq!(put(&host, &pets()).await, 201);
    let before = stored(&rt).await;

    let bad: &[&str] = &[
        "",
        "s",
        "x[{},{},1]",                // unknown type
        "S[{},{\"open\":false},1]",  // types are case-sensitive
        " s[{},{\"open\":false},1]", // nothing before the type without a prefix
        "s[{},{\"open\":false},1",   // truncated JSON
        "snot json",
        "s{}",
        "s[{},{\"open\":false}]",              // content, not changes
        "s[{},{\"open\":false},2]",            // the third element must be 1
        "s[{},{\"open\":false},\"\u{FFFC}\"]", // the marker is not 1
        "s[{},{\"open\":false},1,1]",
        "s[[],{\"open\":false},1]",
        "s[{\"pets\":1},{},1]",
        "s[{\"pets\":{\"fido\":[]}},{},1]",
        "s[{\"pets\":{\"fido\":{\"legs\":1e999}}},{},1]",
        "s[\"\u{FFFC}\",{},1]", // the marker cannot stand for all tables
        "s[{},\"\u{FFFC}\",1]",
        "s[{\"pets\":{\"fido\":{\"legs\":5}}},{\"open\":false},1]\u{1}",
    ];
    for frame in bad {
        a.send(frame).await;
    }
    a.handle.message(Message::Binary(Bytes::from(b"s[{},{\"open\":false},1]".to_vec()))).await;
    let deep = format!("s[{{\"t\":{{\"r\":{{\"c\":{}1{}}}}}}},{{}},1]", "[".repeat(10_000), "]".repeat(10_000));
    a.send(&deep).await;
    assert_eq!(get(&host).await.json(), pets());
    b.assert_quiet();
    assert_eq!(stored(&rt).await, before);
    assert_eq!(host.stats().handler_errors, 0);
}

#[tokio::test]
async fn changes_to_an_uninitialised_room_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, TinyBaseConfig::default());
    let a = Client::connect(&host, "a").await;
    let mut b = Client::connect(&host, "b").await;
    a.change(&json!([{"pets": {"fido": {"legs": 4}}}, {"open": true}, 1])).await;
    assert_eq!(get(&host).await.body, "");
    b.assert_quiet();
    assert!(stored(&rt).await.is_empty());

    // Once initialised, the same change goes through.
    assert_eq!(put(&host, &json!([{}, {}])).await, 201);
    a.change(&json!([{"pets": {"fido": {"legs": 4}}}, {"open": true}, 1])).await;
    assert_eq!(b.recv_change().await, json!([{"pets": {"fido": {"legs": 4}}}, {"open": true}, 1]));
}

#[tokio::test]
async fn the_message_prefix_frames_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let config = TinyBaseConfig { message_prefix: "tb:".to_owned(), ..TinyBaseConfig::default() };
    let host = host(&rt, config);
    let a = Client::connect(&host, "a").await;
    let mut b = Client::connect(&host, "b").await;
    assert_eq!(put(&host, &pets()).await, 201);

    // Without the prefix (or with only the prefix) a frame is ignored.
    a.change(&json!([{}, {"open": false}, 1])).await;
    a.send("tb:").await;
    a.send("tb").await;
    get(&host).await;
    b.assert_quiet();
    a.send(&format!("tb:s{}", json!([{}, {"open": false}, 1]))).await;
    assert_eq!(b.recv_text().await, r#"tb:s[{},{"open":false},1]"#);
    assert_eq!(get(&host).await.json(), json!([pets()[0], {"open": false}]));
}

#[tokio::test]
async fn the_storage_prefix_begins_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let config = TinyBaseConfig {
        storage_prefix: "app1/".to_owned(),
        store_path: "/tb".to_owned(),
        ..TinyBaseConfig::default()
    };
    let host = host(&rt, config);
    let object = rt.object(PARTY, ROOM).unwrap();
    // Keys outside the prefix, or not of the layout, are not content.
    object.put("vstray", &1).await.unwrap();
    object.put("app1/x", &1).await.unwrap();
    object.put(r#"app1/t"too","few""#, &1).await.unwrap();
    object.put(r#"app1/t1,2,3"#, &1).await.unwrap();
    object.put_bytes(r#"app1/t"raw","r","c""#, vec![1, 2]).await.unwrap();

    assert_eq!(request(&host, "GET", "/parties/tinybase/store-room/tb", "").await.body, "");
    assert_eq!(request(&host, "GET", STORE, "").await.status, 404);
    let res = request(&host, "PUT", "/parties/tinybase/store-room/tb", pets().to_string()).await;
    assert_eq!(res.status, 201);
    let a = Client::connect(&host, "a").await;
    a.change(&json!([{"pets": {"rex": {"legs": 3}}}, {"open": DEL}, 1])).await;
    let res = request(&host, "GET", "/parties/tinybase/store-room/tb", "").await;
    assert_eq!(
        res.json(),
        json!([{"pets": {
            "fido": {"species": "dog", "legs": 4},
            "felix": {"species": "cat", "legs": 4},
            "rex": {"legs": 3}
        }}, {}])
    );
    assert_eq!(
        stored_keys(&rt).await,
        [
            "app1/hasStore",
            r#"app1/t"pets","felix","legs""#,
            r#"app1/t"pets","felix","species""#,
            r#"app1/t"pets","fido","legs""#,
            r#"app1/t"pets","fido","species""#,
            r#"app1/t"pets","rex","legs""#,
            r#"app1/t"raw","r","c""#,
            r#"app1/t"too","few""#,
            "app1/t1,2,3",
            "app1/x",
            "vstray",
        ]
    );
}

#[tokio::test]
async fn ids_are_escaped_as_javascript_escapes_them() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, TinyBaseConfig::default());
    let a = Client::connect(&host, "a").await;
    assert_eq!(put(&host, &json!([{}, {}])).await, 201);
    let ids = ["a\"b", "back\\slash", "\u{1}\u{1f}\u{7f}", "tab\tnl\n", "é✓🎉", "\u{2028}", "\u{8}\u{c}\r"];
    let tables = json!({
        (ids[0]): {(ids[1]): {(ids[2]): 1}},
        (ids[3]): {(ids[4]): {(ids[5]): 2}},
        "t": {"r": {(ids[6]): 3}}
    });
    let values = json!({(ids[0]): 4});
    a.change(&json!([tables, values, 1])).await;
    // As `JSON.stringify([...]).slice(1, -1)` in Node writes them.
    let mut expected = [
        "hasStore",
        "t\"a\\\"b\",\"back\\\\slash\",\"\\u0001\\u001f\u{7f}\"",
        "t\"t\",\"r\",\"\\b\\f\\r\"",
        "t\"tab\\tnl\\n\",\"é✓🎉\",\"\u{2028}\"",
        "va\"b",
    ];
    expected.sort_unstable();
    assert_eq!(keys(&stored(&rt).await), expected);
    assert_eq!(get(&host).await.json(), json!([tables, values]));
    // Deleting row `back\slash` of table `a"b` by prefix.
    a.change(&json!([{(ids[0]): {(ids[1]): DEL}}, {}, 1])).await;
    assert_eq!(
        get(&host).await.json(),
        json!([{(ids[3]): {(ids[4]): {(ids[5]): 2}}, "t": {"r": {(ids[6]): 3}}}, {(ids[0]): 4}])
    );
}

#[tokio::test]
async fn items_over_the_storage_limits_are_refused_alone() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, TinyBaseConfig::default());
    let a = Client::connect(&host, "a").await;
    let mut b = Client::connect(&host, "b").await;
    let big = "x".repeat(128 * 1024); // its JSON (with quotes) is over 128 KiB
    let fits = "y".repeat(128 * 1024 - 2);
    let long_id = "k".repeat(2048);

    // A PUT whose every item is refused leaves the room uninitialised.
    assert_eq!(put(&host, &json!([{"t": {"r": {"c": big}}}, {(long_id.clone()): 1}])).await, 205);
    assert_eq!(get(&host).await.body, "");
    assert!(stored(&rt).await.is_empty());
    // One that keeps something initialises it, without the refused items.
    assert_eq!(put(&host, &json!([{"t": {"r": {"c": big, "ok": 1}}}, {(long_id.clone()): 1}])).await, 201);
    assert_eq!(get(&host).await.json(), json!([{"t": {"r": {"ok": 1}}}, {}]));

    // In a change, the refused items are neither stored nor sent; the rest is.
    a.change(&json!([
        {
            "t": {"r": {"big": big, "fits": fits}},
            (long_id.clone()): {"r": {"c": 1}},
            "u": {(long_id.clone()): {"c": 1}}
        },
        {"v": big, "w": 2, (long_id.clone()): 3},
        1
    ]))
    .await;
    assert_eq!(b.recv_change().await, json!([{"t": {"r": {"fits": fits}}}, {"w": 2}, 1]));
    // Nothing fits: nothing is sent.
    a.change(&json!([{"t": {"r": {"big": big}}}, {"v": big}, 1])).await;
    // Deletions whose keys cannot exist are accepted without a storage call.
    a.change(&json!([{(long_id.clone()): DEL, "u": {(long_id.clone()): DEL}}, {(long_id.clone()): DEL}, 1])).await;
    assert_eq!(
        b.recv_change().await,
        json!([{(long_id.clone()): DEL, "u": {(long_id.clone()): DEL}}, {(long_id.clone()): DEL}, 1])
    );
    assert_eq!(get(&host).await.json(), json!([{"t": {"r": {"ok": 1, "fits": fits}}}, {"w": 2}]));
    b.assert_quiet();
    for (key, value) in stored(&rt).await {
        assert!(key.len() <= 2048, "{key}");
        assert!(value.to_string().len() <= 128 * 1024, "{key}");
    }
    assert_eq!(host.stats().handler_errors, 0);
}

#[tokio::test]
async fn a_put_over_the_body_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let host = host(&rt, TinyBaseConfig { max_body_bytes: 64, ..TinyBaseConfig::default() });
    let body = json!([{"t": {"r": {"c": "z".repeat(64)}}}, {}]).to_string();
    let res = request(&host, "PUT", STORE, body).await;
    assert_eq!((res.status, res.body.as_str()), (413, ""));
    assert_cors(&res);
    assert_eq!(get(&host).await.body, "");
    assert_eq!(put(&host, &json!([{"t": {"r": {"c": 1}}}, {}])).await, 201);
}

#[tokio::test]
async fn response_headers_replace_the_cors_headers() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open_runtime(dir.path());
    let headers = [("Access-Control-Allow-Origin".to_owned(), "https://app.example".to_owned())];
    let config = TinyBaseConfig { response_headers: Some(headers.into_iter().collect()), ..TinyBaseConfig::default() };
    let host = host(&rt, config);
    for res in [get(&host).await, request(&host, "GET", "/nope", "").await] {
        assert_eq!(res.headers.get("access-control-allow-origin").unwrap(), "https://app.example");
        assert!(res.headers.get("access-control-allow-methods").is_none());
    }
}

#[tokio::test]
async fn content_survives_hibernation_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let expected = json!([
        {"pets": {"fido": {"species": "dog", "legs": 4}, "felix": {"species": "cat", "legs": 4}, "rex": {"legs": 3}}},
        {"open": true}
    ]);
    {
        let rt = open_runtime(dir.path());
        let host = host(&rt, TinyBaseConfig::default());
        let a = Client::connect(&host, "a").await;
        let mut b = Client::connect(&host, "b").await;
        assert_eq!(put(&host, &pets()).await, 201);
        hibernate(&host).await;
        // A change can be the event that wakes the room.
        a.change(&json!([{"pets": {"rex": {"legs": 3}}}, {}, 1])).await;
        assert_eq!(b.recv_change().await, json!([{"pets": {"rex": {"legs": 3}}}, {}, 1]));
        hibernate(&host).await;
        assert_eq!(get(&host).await.json(), expected);
        // Still initialised after waking: a PUT is ignored.
        hibernate(&host).await;
        assert_eq!(put(&host, &json!([{}, {}])).await, 205);
        assert!(host.stats().starts >= 4, "{:?}", host.stats());
        drop((a, b));
        drop(host);
        rt.close();
    }
    let rt = open_runtime(dir.path());
    let host = host(&rt, TinyBaseConfig::default());
    assert_eq!(get(&host).await.json(), expected);
    assert_eq!(put(&host, &json!([{}, {}])).await, 205);
    let a = Client::connect(&host, "a").await;
    let mut b = Client::connect(&host, "b").await;
    a.change(&json!([{"pets": {"rex": DEL}}, {}, 1])).await;
    assert_eq!(b.recv_change().await, json!([{"pets": {"rex": DEL}}, {}, 1]));
}

#[test]
fn config_defaults_unknown_fields_and_checks() {
    let c: TinyBaseConfig = serde_json::from_str(r#"{"message_prefix": "x"}"#).unwrap();
    assert_eq!(c, TinyBaseConfig { message_prefix: "x".to_owned(), ..TinyBaseConfig::default() });
    let d = TinyBaseConfig::default();
    assert_eq!((d.store_path.as_str(), d.message_prefix.as_str(), d.storage_prefix.as_str()), ("/store", "", ""));
    assert_eq!(d.response_headers, None);
    assert!(serde_json::from_str::<TinyBaseConfig>(r#"{"storePath": "/x"}"#).is_err());
    assert!(d.check().is_ok());
    let bad_header = TinyBaseConfig {
        response_headers: Some([("bad name".to_owned(), "v".to_owned())].into_iter().collect()),
        ..TinyBaseConfig::default()
    };
    assert!(bad_header.check().is_err());
    let bad_value = TinyBaseConfig {
        response_headers: Some([("x-ok".to_owned(), "line\nbreak".to_owned())].into_iter().collect()),
        ..TinyBaseConfig::default()
    };
    assert!(bad_value.check().is_err());
    let long_prefix = TinyBaseConfig { storage_prefix: "p".repeat(1025), ..TinyBaseConfig::default() };
    assert!(long_prefix.check().is_err());
}
