//! The Cairn object persister, remote: a store in an object of a Cairn server (started in this
//! process on a loopback port), over its HTTP API, in the layout of the `tinybase` room kind.

use std::net::SocketAddr;

use cairn_client::{Client, ListOptions, ObjectClient};
use cairn_server::{Config, Token};
use cairn_store::{CairnPersister, CairnStorage, Cell, Persister, Store};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{content, eventually, eventually_async, options};

type Errors = std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>;

const TOKEN: &str = "store-test-token-0123456789";

/// A server on a loopback port over a temporary directory.
struct Server {
    addr: SocketAddr,
    client: Client,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        shards: 1,
        tokens: vec![Token { token: TOKEN.into(), namespaces: None, read_only: false }],
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let runtime = cairn_server::open_runtime(&config).unwrap();
    let task =
        tokio::spawn(async move { cairn_server::serve(listener, &config, runtime, std::future::pending()).await });
    let client = Client::new(&format!("http://{addr}"), Some(TOKEN.into())).unwrap();
    Server { addr, client, task, _dir: dir }
}

fn persister(store: &Store, object: &ObjectClient) -> (CairnPersister, Errors) {
    let (options, errors) = options();
    (Persister::new(store, CairnStorage::remote(object.clone()), options).unwrap(), errors)
}

async fn entries(object: &ObjectClient) -> Vec<(String, serde_json::Value)> {
    object.list(&ListOptions::default()).await.unwrap().into_iter().map(|e| (e.key, e.value.value)).collect()
}

/// `GET path` on its own connection: (status, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {TOKEN}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

const PETS: &str = r#"[{"pets":{"fido":{"legs":4,"species":"dog"}}},{"open":true}]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_and_load_round_trip_and_tinybase_clients_of_the_room_see_the_store() {
    let server = server().await;
    let room = server.client.object("tinybase", "lobby");
    let store = Store::new();
    store.set_json(PETS).unwrap();
    let (saver, errors) = persister(&store, &room);
    saver.save().await.unwrap();
    assert_eq!(
        entries(&room).await,
        [
            ("hasStore".to_owned(), json!(1)),
            (r#"t"pets","fido","legs""#.to_owned(), json!(4)),
            (r#"t"pets","fido","species""#.to_owned(), json!("dog")),
            ("vopen".to_owned(), json!(true)),
        ]
    );

    let copy = Store::new();
    let (loader, _) = persister(&copy, &room);
    loader.load(None).await.unwrap();
    assert_eq!(copy.content(), store.content());

    // The `tinybase` room of the same name serves it to TinyBase's PartyKit persister.
    let (status, body) = get(server.addr, "/parties/tinybase/lobby/store").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::from_str::<serde_json::Value>(PETS).unwrap()
    );
    assert!(errors.lock().unwrap().is_empty());
    saver.destroy().await;
    loader.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_larger_than_a_batch_is_split_into_transactions() {
    let server = server().await;
    let room = server.client.object("tinybase", "big");
    let store = Store::new();
    store.transaction(|tx| {
        for i in 0..300 {
            tx.set_cell("numbers", &format!("n{i:03}"), "value", i);
        }
    });
    let (saver, errors) = persister(&store, &room);
    let before: u64 =
        room.bookmark().await.unwrap().split('-').nth(1).map(|s| u64::from_str_radix(s, 16).unwrap()).unwrap();
    saver.save().await.unwrap();
    let after: u64 =
        room.bookmark().await.unwrap().split('-').nth(1).map(|s| u64::from_str_radix(s, 16).unwrap()).unwrap();
    assert_eq!(after - before, 3, "300 puts in transactions of at most 127 (plus hasStore)");
    assert_eq!(entries(&room).await.len(), 301);
    let copy = Store::new();
    let loader = Persister::new(&copy, CairnStorage::remote(room.clone()), options().0).unwrap();
    loader.load(None).await.unwrap();
    assert_eq!(copy.content(), store.content());

    // A whole save writes only the difference.
    store.set_cell("numbers", "n000", "value", -1);
    saver.save().await.unwrap();
    let last: u64 =
        room.bookmark().await.unwrap().split('-').nth(1).map(|s| u64::from_str_radix(s, 16).unwrap()).unwrap();
    assert_eq!(last - after, 1);
    assert!(errors.lock().unwrap().is_empty());
    saver.destroy().await;
    loader.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_load_follows_other_clients_through_the_changes_long_poll() {
    let server = server().await;
    let room = server.client.object("tinybase", "shared");
    let store = Store::new();
    let (persister, errors) = persister(&store, &room);
    persister.start_auto_persisting(Some(content(PETS))).await.unwrap();
    assert_eq!(
        room.get("hasStore").await.unwrap(),
        Some(cairn_client::Stored::Json(json!(1))),
        "the default was saved"
    );

    // Another client of the server writes cells, in one transaction and one by one.
    let other =
        Client::new(&format!("http://{}", server.addr), Some(TOKEN.into())).unwrap().object("tinybase", "shared");
    other.put_json(r#"t"pets","rex","legs""#, &json!(3)).await.unwrap();
    eventually("the other client's put to load", || store.cell("pets", "rex", "legs") == Some(Cell::from(3))).await;
    other.delete(r#"t"pets","fido","species""#).await.unwrap();
    eventually("the deletion to load", || store.cell("pets", "fido", "species").is_none()).await;

    // Own saves load nothing: after one, a write of another client is exactly one load.
    store.set_value("open", false);
    eventually_async("the save", || async {
        other.get("vopen").await.unwrap() == Some(cairn_client::Stored::Json(json!(false)))
    })
    .await;
    let loads = persister.stats().loads;
    other.put_json("vvisitors", &json!(7)).await.unwrap();
    eventually("the value to load", || store.value("visitors") == Some(Cell::from(7))).await;
    assert_eq!(persister.stats().loads, loads + 1);

    // Corrupt data from another client is reported; the store stays as it was.
    let before = store.content();
    other.put_json(r#"t"a","b""#, &json!(1)).await.unwrap();
    eventually("the corrupt key to be reported", || !errors.lock().unwrap().is_empty()).await;
    assert_eq!(errors.lock().unwrap()[0], "store.invalid_stored_key");
    assert_eq!(store.content(), before);
    persister.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_default_content_and_corrupt_values() {
    let server = server().await;
    let room = server.client.object("tinybase", "empty");
    let store = Store::new();
    let (persister, errors) = persister(&store, &room);
    persister.load(Some(content(PETS))).await.unwrap();
    assert_eq!(store.content(), content(PETS));
    assert!(entries(&room).await.is_empty(), "loading writes nothing");

    room.put_json("hasStore", &json!(1)).await.unwrap();
    room.put_json(r#"t"pets","fido","tags""#, &json!(["a"])).await.unwrap();
    let error = persister.load(Some(content(PETS))).await.unwrap_err();
    assert_eq!(error.code(), "store.invalid_stored_value");
    room.put_bytes(r#"t"pets","fido","tags""#, vec![1, 2]).await.unwrap();
    assert_eq!(persister.load(None).await.unwrap_err().code(), "store.invalid_stored_value");
    assert_eq!(store.content(), content(PETS));
    assert_eq!(*errors.lock().unwrap(), ["store.invalid_stored_value", "store.invalid_stored_value"]);

    // Too large for the server's limits: reported, not sent; the rest is saved.
    room.delete(r#"t"pets","fido","tags""#).await.unwrap();
    store.set_cell("pets", "fido", "photo", "x".repeat(200 * 1024));
    assert_eq!(persister.save().await.unwrap_err().code(), "store.too_large");
    assert_eq!(room.get(r#"t"pets","fido","legs""#).await.unwrap(), Some(cairn_client::Stored::Json(json!(4))));
    assert_eq!(room.get(r#"t"pets","fido","photo""#).await.unwrap(), None);
    persister.destroy().await;
}
