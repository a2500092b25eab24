//! Export and import as users run them: objects and databases to SQLite files and back, SQL
//! dumps, KV namespaces as bulk JSON, buckets as folders, and Wrangler's local state.

use std::path::Path;

use serde_json::{Value, json};

use crate::{Server, TOKEN, run_cairn, server};

fn json_out((code, out): (i32, String)) -> Value {
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn cli<'a>(s: &'a Server, command: &'a str, dir: &'a Path) -> impl Fn(&[&str]) -> (i32, String) + 'a {
    move |args: &[&str]| run_cairn(s, command, args, Some(TOKEN), Some(dir))
}

#[test]
fn objects_and_databases_round_trip_through_sqlite_files() {
    let s = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let object = cli(&s, "object", dir.path());
    let sql = cli(&s, "sql", dir.path());
    assert_eq!(object(&["put", "rooms", "lobby", "topic", r#""hello""#]).0, 0);
    assert_eq!(object(&["sql", "rooms", "lobby", "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2)"]).0, 0);
    let first = json_out(object(&["bookmark", "rooms", "lobby"]))["bookmark"].as_str().expect("bookmark").to_owned();
    assert_eq!(object(&["put", "rooms", "lobby", "topic", r#""changed""#]).0, 0);

    let out = json_out(object(&["export", "rooms", "lobby", "lobby.sqlite", "--bookmark", &first]));
    assert_eq!(out["bookmark"], json!(first));
    assert!(std::fs::read(dir.path().join("lobby.sqlite")).expect("file").starts_with(b"SQLite format 3\0"));
    let out = json_out(object(&["import", "rooms", "copy", "lobby.sqlite"]));
    assert_eq!(out["previous_bookmark"], Value::Null);
    assert_eq!(object(&["get", "rooms", "copy", "topic"]), (0, r#""hello""#.into()));
    let out = json_out(object(&["sql", "rooms", "copy", "SELECT sum(x) FROM t"]));
    assert_eq!(out["rows"], json!([[3]]));
    // Importing over it again answers with the bookmark that undoes it.
    assert_eq!(object(&["put", "rooms", "copy", "topic", r#""mine""#]).0, 0);
    let out = json_out(object(&["import", "rooms", "copy", "lobby.sqlite"]));
    let undo = out["previous_bookmark"].as_str().expect("previous").to_owned();
    assert_eq!(object(&["restore", "rooms", "copy", "--bookmark", &undo]).0, 0);
    assert_eq!(object(&["get", "rooms", "copy", "topic"]), (0, r#""mine""#.into()));
    std::fs::write(dir.path().join("junk.sqlite"), b"junk").expect("write");
    assert_eq!(object(&["import", "rooms", "copy", "junk.sqlite"]).0, 4, "refused");

    // A database: SQL dump and SQLite file, each into a fresh database.
    assert_eq!(sql(&["create", "shop"]).0, 0);
    let schema = "CREATE TABLE items(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, price REAL, photo BLOB);
        CREATE INDEX items_by_name ON items(name);
        CREATE TABLE audit(item INTEGER, at TEXT);
        CREATE TRIGGER audited AFTER INSERT ON items BEGIN INSERT INTO audit VALUES (new.id, 'x'); END;
        CREATE VIEW priced AS SELECT name, price FROM items WHERE price IS NOT NULL;
        INSERT INTO items(name, price, photo) VALUES ('it''s', 0.1, x'00ff10'), ('new
line', NULL, NULL), ('big', 1e300, x'')";
    assert_eq!(sql(&["query", "shop", schema]).0, 0);
    let check = |db: &str| {
        let q = |text: &str| json_out(sql(&["query", db, text, "--json"]))[0]["results"]["rows"].clone();
        assert_eq!(
            q("SELECT id, name, price, hex(photo) FROM items ORDER BY id"),
            json!([[1, "it's", 0.1, "00FF10"], [2, "new\nline", null, ""], [3, "big", 1e300, ""]]),
            "{db}"
        );
        assert_eq!(q("SELECT count(*) FROM audit"), json!([[3]]), "{db}");
        assert_eq!(q("SELECT name FROM priced ORDER BY name"), json!([["big"], ["it's"]]), "{db}");
        assert_eq!(q("SELECT count(*) FROM sqlite_master WHERE name = 'items_by_name'"), json!([[1]]), "{db}");
        // The trigger came along too.
        assert_eq!(sql(&["query", db, "INSERT INTO items(name) VALUES ('more')"]).0, 0);
        assert_eq!(q("SELECT count(*) FROM audit"), json!([[4]]), "{db}");
    };
    assert_eq!(sql(&["export", "shop", "--output", "shop.sql"]).0, 0);
    let out = json_out(sql(&["export", "shop", "--format", "sqlite", "--output", "shop.sqlite"]));
    assert!(out["bookmark"].is_string(), "{out}");
    assert_eq!(sql(&["export", "shop", "--format", "sqlite"]).0, 4, "a SQLite export needs --output");
    for (db, file) in [("from-dump", "shop.sql"), ("from-file", "shop.sqlite")] {
        assert_eq!(sql(&["create", db]).0, 0);
        assert_eq!(sql(&["import", db, file]).0, 0, "{file}");
        check(db);
    }
}

#[test]
fn a_kv_namespace_round_trips_through_bulk_json_in_chunks() {
    let s = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let kv = cli(&s, "kv", dir.path());
    assert_eq!(kv(&["namespace", "create", "source"]).0, 0);
    assert_eq!(kv(&["namespace", "create", "target"]).0, 0);
    // 10,050 pairs: more than one bulk request holds.
    let mut pairs: Vec<Value> =
        (0..10_050).map(|i| json!({"key": format!("k:{i:05}"), "value": format!("v{i}")})).collect();
    pairs.push(json!({"key": "bin", "value": "AP8Q", "base64": true}));
    pairs.push(json!({"key": "meta", "value": "m", "metadata": {"role": "admin"}, "expiration": 4_102_444_800_u64}));
    pairs.push(json!({"key": "utf8", "value": "héllo \u{FFFD} ✓"}));
    std::fs::write(dir.path().join("in.json"), serde_json::to_vec(&pairs).expect("JSON")).expect("write");
    let out = json_out(kv(&["import", "source", "in.json"]));
    assert_eq!(out["written"], json!(10_053));
    assert_eq!(out["requests"], json!(2));

    let out = json_out(kv(&["export", "source", "out.json"]));
    assert_eq!(out["pairs"], json!(10_053));
    let exported: Vec<Value> =
        serde_json::from_slice(&std::fs::read(dir.path().join("out.json")).expect("read")).expect("bulk JSON");
    let find = |key: &str| exported.iter().find(|p| p["key"] == key).cloned().unwrap_or(Value::Null);
    assert_eq!(find("bin"), json!({"key": "bin", "value": "AP8Q", "base64": true}));
    assert_eq!(find("utf8"), json!({"key": "utf8", "value": "héllo \u{FFFD} ✓"}));
    assert_eq!(
        find("meta"),
        json!({"key": "meta", "value": "m", "metadata": {"role": "admin"}, "expiration": 4_102_444_800_u64})
    );
    assert_eq!(find("k:00007"), json!({"key": "k:00007", "value": "v7"}));

    // Into another namespace: the same export, byte for byte.
    json_out(kv(&["import", "target", "out.json"]));
    let (code, again) = kv(&["export", "target"]);
    assert_eq!(code, 0);
    assert_eq!(again.trim(), std::fs::read_to_string(dir.path().join("out.json")).expect("read").trim());
    let (code, value) = kv(&["get", "target", "bin"]);
    assert_eq!(code, 0);
    assert!(!value.is_empty());

    // Pairs that have already expired are skipped, not refused.
    std::fs::write(dir.path().join("old.json"), r#"[{"key": "gone", "value": "x", "expiration": 1000}]"#)
        .expect("write");
    let out = json_out(kv(&["import", "target", "old.json"]));
    assert_eq!((out["written"].clone(), out["skipped_expired"].clone()), (json!(0), json!(1)));
    std::fs::write(dir.path().join("bad.json"), r#"[{"key": "k"}]"#).expect("write");
    assert_eq!(kv(&["import", "target", "bad.json"]).0, 4);
}

/// The headers of a bucket object as the server answers a GET.
fn object_headers(s: &Server, bucket: &str, key: &str) -> reqwest::header::HeaderMap {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        let client = cairn_client::Client::new(&s.url, Some(TOKEN.into())).expect("client");
        client.buckets().get(bucket, key).await.expect("get").expect("exists").headers().clone()
    })
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn a_bucket_round_trips_through_a_folder_and_skips_identical_files() {
    let s = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = cli(&s, "bucket", dir.path());
    let src = dir.path().join("site");
    let binary: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    write(&src.join("index.html"), b"<h1>hi</h1>");
    write(&src.join("img/logo.png"), &binary);
    write(&src.join("img/deep/er/data.bin"), &[0, 1, 2, 255]);
    write(&src.join("empty.txt"), b"");

    let out = json_out(bucket(&["import", "site", "assets", "--prefix", "v1/"]));
    assert_eq!((out["created"].clone(), out["uploaded"].clone()), (json!(true), json!(4)), "{out}");
    let listing = bucket(&["ls", "assets"]).1;
    assert!(listing.contains(r#""key":"v1/img/deep/er/data.bin""#), "{listing}");
    assert_eq!(object_headers(&s, "assets", "v1/img/logo.png")["content-type"], "image/png");
    // Again: nothing changed, nothing sent.
    let out = json_out(bucket(&["import", "site", "assets", "--prefix", "v1/"]));
    assert_eq!((out["uploaded"].clone(), out["unchanged"].clone()), (json!(0), json!(4)), "{out}");

    let out = json_out(bucket(&["export", "assets", "copy", "--prefix", "v1/"]));
    assert_eq!(out["downloaded"], json!(4), "{out}");
    let copy = dir.path().join("copy");
    assert_eq!(std::fs::read(copy.join("img/logo.png")).expect("png"), binary);
    assert_eq!(std::fs::read(copy.join("img/deep/er/data.bin")).expect("bin"), vec![0, 1, 2, 255]);
    assert_eq!(std::fs::read(copy.join("empty.txt")).expect("empty"), Vec::<u8>::new());
    let out = json_out(bucket(&["export", "assets", "copy", "--prefix", "v1/"]));
    assert_eq!((out["downloaded"].clone(), out["unchanged"].clone()), (json!(0), json!(4)), "{out}");

    // Keys that cannot be paths are reported.
    std::fs::write(dir.path().join("x"), b"x").expect("write");
    assert_eq!(bucket(&["put", "assets", "v1/a//b", "x"]).0, 0);
    assert_eq!(bucket(&["put", "assets", "v1/folder/", "x"]).0, 0);
    let out = json_out(bucket(&["export", "assets", "copy", "--prefix", "v1/"]));
    let skipped: Vec<&str> =
        out["skipped"].as_array().expect("skipped").iter().filter_map(|k| k["key"].as_str()).collect();
    assert_eq!(skipped, ["v1/a//b", "v1/folder/"], "{out}");
}

/// A Miniflare object file's name: `durableObjectNamespaceIdFromName(uniqueKey, name)`, computed
/// with Node's crypto from Miniflare's own function.
const D1_FILE: &str = "d40739581ad8687826b6e79b8b40f556d0ca70da698c407f56aef3732486a9f2"; // db-id-1
const KV_FILE: &str = "71d455f3a96bd01da5b82e52d26a44c158d7068052cd8113390c308e4af7da67"; // kv-id-1
const R2_FILE: &str = "299a2f66a79fcedbb151ae222146d757e2bb35086217b5b783f6c3b2f53e05d7"; // assets

fn sqlite(path: &Path, sql: &str) -> rusqlite::Connection {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch("PRAGMA journal_mode = WAL").expect("wal");
    conn.execute_batch(sql).expect("fixture");
    conn
}

/// `.wrangler/state/v3` as Miniflare 3 leaves it (see decision 0008), with a wrangler.toml.
fn wrangler_project(root: &Path) {
    write(
        &root.join("wrangler.toml"),
        br#"name = "my-worker"
[[d1_databases]]
binding = "DB"
database_name = "shop"
database_id = "db-id-1"
[[kv_namespaces]]
binding = "CACHE"
id = "kv-id-1"
"#,
    );
    let state = root.join(".wrangler/state/v3");
    // D1: the user's tables, beside workerd's own.
    let d1 = sqlite(
        &state.join(format!("d1/miniflare-D1DatabaseObject/{D1_FILE}.sqlite")),
        "CREATE TABLE _cf_KV(key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
         CREATE TABLE d1_migrations(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT);
         INSERT INTO d1_migrations(name) VALUES ('0001_init.sql');
         CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO items VALUES (1, 'pen'), (2, 'ink');",
    );
    drop(d1);
    // KV: entries in `_mf_entries`, values in blobs named by id.
    let kv = sqlite(
        &state.join(format!("kv/miniflare-KVNamespaceObject/{KV_FILE}.sqlite")),
        "CREATE TABLE _mf_entries(key TEXT PRIMARY KEY, blob_id TEXT NOT NULL, expiration INTEGER, metadata TEXT);",
    );
    let blobs = state.join("kv/kv-id-1/blobs");
    for (key, blob, value, expiration, metadata) in [
        ("greeting", "b1", b"hello".to_vec(), None, Some(r#"{"lang":"en"}"#)),
        ("binary", "b2", vec![0, 255, 7], Some(4_102_444_800_000_i64), None),
        ("stale", "b3", b"old".to_vec(), Some(1_000_i64), None),
    ] {
        write(&blobs.join(blob), &value);
        kv.execute("INSERT INTO _mf_entries VALUES (?1, ?2, ?3, ?4)", (key, blob, expiration, metadata))
            .expect("entry");
    }
    drop(kv);
    // R2: one object in one blob, one in two multipart parts.
    let r2 = sqlite(
        &state.join(format!("r2/miniflare-R2BucketObject/{R2_FILE}.sqlite")),
        "CREATE TABLE _mf_objects(key TEXT PRIMARY KEY, blob_id TEXT, version TEXT NOT NULL, size INTEGER NOT NULL,
           etag TEXT NOT NULL, uploaded INTEGER NOT NULL, checksums TEXT NOT NULL, http_metadata TEXT NOT NULL,
           custom_metadata TEXT NOT NULL);
         CREATE TABLE _mf_multipart_uploads(upload_id TEXT PRIMARY KEY, key TEXT NOT NULL, http_metadata TEXT NOT NULL,
           custom_metadata TEXT NOT NULL, state TINYINT DEFAULT 0 NOT NULL);
         CREATE TABLE _mf_multipart_parts(upload_id TEXT NOT NULL, part_number INTEGER NOT NULL, blob_id TEXT NOT NULL,
           size INTEGER NOT NULL, etag TEXT NOT NULL, checksum_md5 TEXT NOT NULL, object_key TEXT,
           PRIMARY KEY (upload_id, part_number));",
    );
    let bodies = state.join("r2/assets/blobs");
    write(&bodies.join("o1"), b"body { color: red }");
    write(&bodies.join("p1"), b"first part, ");
    write(&bodies.join("p2"), b"second part");
    r2.execute_batch(
        r#"INSERT INTO _mf_objects VALUES ('css/site.css', 'o1', 'v1', 19, 'e1', 1, '{}',
             '{"contentType":"text/css","cacheControl":"max-age=60"}', '{"owner":"ada"}');
           INSERT INTO _mf_objects VALUES ('big.txt', NULL, 'v2', 23, 'e2-2', 2, '{}', '{}', '{}');
           INSERT INTO _mf_multipart_uploads VALUES ('u1', 'big.txt', '{}', '{}', 1);
           INSERT INTO _mf_multipart_parts VALUES ('u1', 2, 'p2', 11, 'x', 'x', 'big.txt');
           INSERT INTO _mf_multipart_parts VALUES ('u1', 1, 'p1', 12, 'x', 'x', 'big.txt');"#,
    )
    .expect("objects");
    drop(r2);
    // A Durable Object: its SQL table and V8-serialized KV values.
    let object = sqlite(
        &state.join("do/my-worker-Counter/0f0e0d0c0b0a09080706050403020100ffeeddccbbaa99887766554433221100.sqlite"),
        "CREATE TABLE _cf_KV(key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
         CREATE TABLE visits(at INTEGER);
         INSERT INTO visits VALUES (1), (2);",
    );
    let mut date = vec![0xFF, 0x0F, b'D'];
    date.extend_from_slice(&0f64.to_le_bytes());
    for (key, value) in [
        ("count", vec![0xFF, 0x0F, b'I', 84]),
        ("name", vec![0xFF, 0x0F, b'"', 3, b'a', b'd', b'a']),
        ("user", vec![0xFF, 0x0F, b'o', b'"', 2, b'i', b'd', b'I', 2, b'{', 1]),
        ("when", date),
    ] {
        object.execute("INSERT INTO _cf_KV VALUES (?1, ?2)", (key, value)).expect("kv");
    }
}

#[test]
fn wranglers_local_state_imports_into_a_running_server() {
    let s = server();
    let root = tempfile::tempdir().expect("tempdir");
    wrangler_project(root.path());
    let out = json_out(run_cairn(&s, "import", &["wrangler"], Some(TOKEN), Some(root.path())));

    // D1, named from wrangler.toml; workerd's `_cf_KV` left out, the migrations table kept.
    assert_eq!(out["d1"][0]["database"], json!("shop"), "{out}");
    let sql = cli(&s, "sql", root.path());
    let rows = |db: &str, q: &str| json_out(sql(&["query", db, q, "--json"]))[0]["results"]["rows"].clone();
    assert_eq!(rows("shop", "SELECT name FROM items ORDER BY id"), json!([["pen"], ["ink"]]));
    assert_eq!(rows("shop", "SELECT name FROM d1_migrations"), json!([["0001_init.sql"]]));
    let tables = out["d1"][0]["tables"].to_string();
    assert!(!tables.contains("_cf_"), "{tables}");

    // KV, titled by its binding; the expired entry skipped.
    assert_eq!(out["kv"][0]["title"], json!("CACHE"), "{out}");
    assert_eq!(out["kv"][0]["skipped_expired"], json!(1), "{out}");
    let kv = cli(&s, "kv", root.path());
    assert_eq!(kv(&["get", "CACHE", "greeting"]), (0, "hello".into()));
    assert_eq!(kv(&["get", "CACHE", "greeting", "--metadata"]), (0, r#"{"lang":"en"}"#.into()));
    assert_eq!(kv(&["get", "CACHE", "stale"]).0, 3);
    let exported = json_out(kv(&["export", "CACHE", "cache.json"]));
    assert_eq!(exported["pairs"], json!(2));
    let pairs: Value =
        serde_json::from_slice(&std::fs::read(root.path().join("cache.json")).expect("read")).expect("JSON");
    assert_eq!(pairs[0], json!({"key": "binary", "value": "AP8H", "base64": true, "expiration": 4_102_444_800_u64}));

    // R2, with its HTTP and custom metadata; the multipart object's parts in order.
    assert_eq!(out["r2"][0]["objects"], json!(2), "{out}");
    let bucket = cli(&s, "bucket", root.path());
    assert_eq!(bucket(&["get", "assets", "big.txt", "-"]), (0, "first part, second part".into()));
    let headers = object_headers(&s, "assets", "css/site.css");
    assert_eq!(headers["content-type"], "text/css");
    assert_eq!(headers["cache-control"], "max-age=60");
    assert_eq!(headers["x-cairn-meta-owner"], "ada");

    // The Durable Object: SQL tables, and the KV values that are JSON; the Date reported.
    let ns = "my-worker-Counter";
    let name = "0f0e0d0c0b0a09080706050403020100ffeeddccbbaa99887766554433221100";
    assert_eq!(out["durable_objects"][0]["kv_entries"], json!(3), "{out}");
    let object = cli(&s, "object", root.path());
    assert_eq!(object(&["get", ns, name, "count"]), (0, "42".into()));
    assert_eq!(object(&["get", ns, name, "user"]), (0, r#"{"id":1}"#.into()));
    assert_eq!(object(&["get", ns, name, "when"]).0, 3);
    assert_eq!(json_out(object(&["sql", ns, name, "SELECT count(*) FROM visits"]))["rows"], json!([[2]]));
    let not_imported = out["not_imported"].to_string();
    assert!(not_imported.contains("when") && not_imported.contains("Date"), "{not_imported}");

    // Running it again replaces the database and adds to the rest, without duplicates.
    let again = json_out(run_cairn(&s, "import", &["wrangler"], Some(TOKEN), Some(root.path())));
    assert_eq!(again["d1"][0]["created"], json!(false), "{again}");
    assert_eq!(rows("shop", "SELECT count(*) FROM items"), json!([[2]]));
}
