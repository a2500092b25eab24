//! Objects and SQL databases as SQLite files: `GET .../export`, `PUT .../import`.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{OBJ, TOKEN, TestServer, server, server_with};

const COPY: &str = "/v1/namespaces/rooms/objects/lobby-copy";

async fn put_file(s: &TestServer, uri: &str, file: Vec<u8>) -> crate::support::Reply {
    s.send("PUT", uri, Some("application/vnd.sqlite3"), file, Some(TOKEN)).await
}

async fn rows(s: &TestServer, obj: &str, sql: &str) -> serde_json::Value {
    let r = s.json("POST", &format!("{obj}/sql"), json!({"sql": sql})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    r.json()["rows"].clone()
}

/// A SQLite file made by `build` on a fresh connection (page size 1024, unlike objects).
fn sqlite_file(build: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("plain.sqlite");
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch("PRAGMA page_size = 1024").expect("page size");
    conn.execute_batch(build).expect("build");
    drop(conn);
    std::fs::read(&path).expect("read")
}

#[tokio::test]
async fn an_object_exported_as_a_sqlite_file_imports_with_its_kv_sql_and_alarm() {
    let s = server();
    s.json("PUT", &format!("{OBJ}/kv/user:1"), json!({"name": "ada"})).await;
    s.send("PUT", &format!("{OBJ}/kv/raw"), Some("application/octet-stream"), vec![0, 159, 255], Some(TOKEN)).await;
    rows(&s, OBJ, "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT); CREATE INDEX t_x ON t(x); INSERT INTO t(x) VALUES ('a'), ('b')").await;
    s.json("PUT", &format!("{OBJ}/alarm"), json!({"time_ms": 4_102_444_800_000_i64})).await;
    let first = s.get(&format!("{OBJ}/bookmark")).await.json()["bookmark"].as_str().expect("bookmark").to_owned();

    let r = s.get(&format!("{OBJ}/export")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "application/vnd.sqlite3");
    assert!(r.body.starts_with(b"SQLite format 3\0"));
    let file = r.body;

    // Into an object that does not exist yet: nothing to undo.
    let r = put_file(&s, &format!("{COPY}/import"), file.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json()["previous_bookmark"], json!(null));
    assert_eq!(r.json()["tables"], json!(["t"]));
    assert_eq!(r.json()["kv_entries"], json!(2));
    assert_eq!(s.get(&format!("{COPY}/kv/user:1")).await.json(), json!({"name": "ada"}));
    assert_eq!(s.get(&format!("{COPY}/kv/raw")).await.body, vec![0, 159, 255]);
    assert_eq!(rows(&s, COPY, "SELECT x FROM t ORDER BY id").await, json!([["a"], ["b"]]));
    assert_eq!(s.get(&format!("{COPY}/alarm")).await.json(), json!({"time_ms": 4_102_444_800_000_i64}));
    // The copy is an ordinary object: it takes writes, and its index came along.
    rows(&s, COPY, "INSERT INTO t(x) VALUES ('c')").await;
    assert_eq!(rows(&s, COPY, "SELECT count(*) FROM sqlite_master WHERE name = 't_x'").await, json!([[1]]));

    // A past state of the source, over the copy: the answer's previous bookmark undoes it.
    rows(&s, OBJ, "DELETE FROM t").await;
    let r = s.get(&format!("{OBJ}/export?bookmark={first}")).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = put_file(&s, &format!("{COPY}/import"), r.body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let previous = r.json()["previous_bookmark"].as_str().expect("previous").to_owned();
    assert_eq!(rows(&s, COPY, "SELECT x FROM t ORDER BY id").await, json!([["a"], ["b"]]));
    let r = s.json("POST", &format!("{COPY}/restore"), json!({"bookmark": previous})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(rows(&s, COPY, "SELECT x FROM t ORDER BY id").await, json!([["a"], ["b"], ["c"]]));

    // Importing the same file twice gives the same state.
    let r = put_file(&s, &format!("{COPY}/import"), file).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(rows(&s, COPY, "SELECT x FROM t ORDER BY id").await, json!([["a"], ["b"]]));
}

#[tokio::test]
async fn a_plain_sqlite_file_becomes_the_objects_sql_tables() {
    let s = server();
    let file = sqlite_file(
        "CREATE TABLE items(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, price REAL, photo BLOB);
         CREATE TABLE log(item INTEGER);
         CREATE TRIGGER logged AFTER INSERT ON items BEGIN INSERT INTO log VALUES (new.id); END;
         CREATE VIEW cheap AS SELECT name FROM items WHERE price < 2;
         CREATE VIRTUAL TABLE search USING fts5(body);
         INSERT INTO search VALUES ('hello world');
         INSERT INTO items(name, price, photo) VALUES ('pen', 1.5, x'00ff'), ('ink', 3.25, NULL);",
    );
    let r = put_file(&s, &format!("{OBJ}/import"), file).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let tables = r.json()["tables"].clone();
    assert!(tables.as_array().expect("tables").iter().any(|t| t == "items"), "{tables}");
    assert_eq!(r.json()["kv_entries"], json!(0));
    assert_eq!(rows(&s, OBJ, "SELECT name FROM cheap").await, json!([["pen"]]));
    assert_eq!(rows(&s, OBJ, "SELECT body FROM search WHERE search MATCH 'hello'").await, json!([["hello world"]]));
    rows(&s, OBJ, "INSERT INTO items(name) VALUES ('cap')").await;
    assert_eq!(rows(&s, OBJ, "SELECT item FROM log ORDER BY item").await, json!([[1], [2], [3]]));
    // KV and alarms work on the imported object.
    assert_eq!(s.json("PUT", &format!("{OBJ}/kv/k"), json!(1)).await.status, StatusCode::OK);
    assert_eq!(s.get(&format!("{OBJ}/kv/k")).await.json(), json!(1));
}

#[tokio::test]
async fn files_that_are_not_fit_for_an_object_are_refused_and_change_nothing() {
    let s = server_with(|c| {
        c.tokens.push(cairn_server::Token { token: TOKEN.into(), namespaces: None, read_only: false });
        c.namespace_limits.insert(
            "tiny".into(),
            cairn_storage::Limits { max_database_bytes: 64 * 1024, ..cairn_storage::Limits::default() },
        );
    });
    s.json("PUT", &format!("{OBJ}/kv/kept"), json!("yes")).await;
    let refused = |file: Vec<u8>, why: &'static str| {
        let s = &s;
        async move {
            let r = put_file(s, &format!("{OBJ}/import"), file).await;
            assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "storage.invalid_import"), "{why}");
            r.json()["error"]["message"].as_str().unwrap_or_default().to_owned()
        }
    };
    refused(b"not a database at all".to_vec(), "not SQLite").await;
    let m = refused(sqlite_file("CREATE TABLE _cf_KV(key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID"), "_cf_KV").await;
    assert!(m.contains("cairn import wrangler"), "{m}");
    refused(sqlite_file("CREATE TABLE _cairn_kv(key, value)"), "engine table in another shape").await;
    refused(sqlite_file("CREATE TABLE t(x); CREATE INDEX _cairn_x ON t(x)"), "reserved index name").await;
    let wide: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    refused(sqlite_file(&format!("CREATE TABLE wide({})", wide.join(", "))), "101 columns").await;
    refused(sqlite_file("CREATE VIRTUAL TABLE old USING fts4(body)"), "fts4").await;
    refused(
        sqlite_file(
            "CREATE TABLE _cairn_kv(key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
             INSERT INTO _cairn_kv VALUES (CAST('k' AS BLOB), x'7a00')",
        ),
        "an untagged KV value",
    )
    .await;
    // A damaged page: the header is intact, the integrity check is not.
    let mut damaged = sqlite_file(
        "CREATE TABLE t(x TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
         INSERT INTO t SELECT printf('%0100d', i) FROM n",
    );
    for b in &mut damaged[2048..2100] {
        *b = 0xA5;
    }
    refused(damaged, "damaged").await;
    assert_eq!(s.get(&format!("{OBJ}/kv/kept")).await.json(), json!("yes"), "nothing was changed");

    // Larger than the namespace's object size limit.
    let big = sqlite_file("CREATE TABLE t(x BLOB); INSERT INTO t VALUES (randomblob(100000))");
    let r = put_file(&s, "/v1/namespaces/tiny/objects/o/import", big).await;
    assert!(r.status == StatusCode::PAYLOAD_TOO_LARGE || r.code() == "storage.invalid_import", "{}", r.json());
}

#[tokio::test]
async fn a_sql_database_exports_and_imports_as_a_sqlite_file() {
    let s = server();
    let db = |name: &str| {
        let name = name.to_owned();
        let s = &s;
        async move {
            let r = s.json("POST", "/client/v4/accounts/a/d1/database", json!({"name": name})).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.json());
        }
    };
    db("shop").await;
    db("copy").await;
    let raw = |db: &'static str, sql: &'static str| {
        let s = &s;
        async move {
            let r = s.json("POST", &format!("/client/v4/accounts/a/d1/database/{db}/raw"), json!({"sql": sql})).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.json());
            r.json()["result"][0]["results"]["rows"].clone()
        }
    };
    raw("shop", "CREATE TABLE items(name TEXT); INSERT INTO items VALUES ('pen'), ('ink')").await;
    let r = s.get("/v1/databases/shop/export").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = put_file(&s, "/v1/databases/copy/import", r.body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(raw("copy", "SELECT name FROM items ORDER BY name").await, json!([["ink"], ["pen"]]));
    assert_eq!(s.get("/v1/databases/nope/export").await.status, StatusCode::NOT_FOUND);
}
