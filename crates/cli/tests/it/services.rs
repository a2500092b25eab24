//! `cairn kv ...` and `cairn sql ...` against a server: output and exit codes.

use crate::{TOKEN, run_cairn, server};

#[test]
fn kv_commands_store_list_and_report_errors_with_exit_codes() {
    let s = server();
    let t = Some(TOKEN);
    let kv = |args: &[&str]| run_cairn(&s, "kv", args, t, None);
    let (code, out) = kv(&["namespace", "create", "sessions"]);
    assert_eq!(code, 0, "{out}");
    let created: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(created["title"], "sessions");
    let id = created["id"].as_str().expect("id").to_owned();
    // A namespace may be named by title or by id.
    assert_eq!(kv(&["put", "sessions", "user:1", "hello", "--metadata", r#"{"role":"admin"}"#]).0, 0);
    assert_eq!(kv(&["get", &id, "user:1"]), (0, "hello".into()));
    assert_eq!(kv(&["get", "sessions", "user:1", "--metadata"]), (0, r#"{"role":"admin"}"#.into()));
    assert_eq!(kv(&["get", "sessions", "missing"]).0, 3, "a missing key exits 3");
    assert_eq!(kv(&["get", "nope", "k"]).0, 3, "a missing namespace exits 3");
    assert_eq!(kv(&["put", "sessions", "k", "v", "--ttl", "30"]).0, 4, "a refused TTL exits 4");
    assert_eq!(kv(&["put", "sessions", "k", "v", "--metadata", "{"]).0, 4, "bad JSON exits 4");
    for i in 0..5 {
        assert_eq!(kv(&["put", "sessions", &format!("page:{i}"), "x"]).0, 0);
    }
    let (code, out) = kv(&["list", "sessions", "--prefix", "page:"]);
    assert_eq!(code, 0);
    let names: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("JSON line")["name"].as_str().unwrap_or("").to_owned()
        })
        .collect();
    assert_eq!(names, ["page:0", "page:1", "page:2", "page:3", "page:4"]);
    // One page with a cursor line at the end.
    let (_, out) = kv(&["list", "sessions", "--prefix", "page:", "--limit", "2"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.lines().last().unwrap_or("").contains("cursor"), "{out}");
    assert_eq!(kv(&["delete", "sessions", "user:1"]).0, 0);
    assert_eq!(kv(&["get", "sessions", "user:1"]).0, 3);
    assert_eq!(kv(&["namespace", "rename", "sessions", "sessions-2"]).0, 0);
    assert_eq!(kv(&["namespace", "delete", "sessions-2"]).0, 0);
    assert_eq!(kv(&["namespace", "list"]), (0, "[]".into()));
    assert_eq!(run_cairn(&s, "kv", &["namespace", "list"], None, None).0, 4, "no token exits 4");
}

#[test]
fn sql_commands_query_export_import_and_apply_migrations() {
    let s = server();
    let t = Some(TOKEN);
    let dir = tempfile::tempdir().expect("tempdir");
    let sql = |args: &[&str]| run_cairn(&s, "sql", args, t, Some(dir.path()));
    assert_eq!(sql(&["create", "shop"]).0, 0);
    assert_eq!(
        sql(&[
            "query",
            "shop",
            "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO items(name) VALUES ('pen'), ('ink')"
        ])
        .0,
        0
    );
    let (code, out) = sql(&["query", "shop", "SELECT name FROM items WHERE id = ?", "--param", "2"]);
    assert_eq!(code, 0);
    assert!(out.contains("│ name │") && out.contains("│ ink  │"), "{out}");
    let (code, out) = sql(&["query", "shop", "SELECT count(*) AS n FROM items", "--json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(json[0]["results"]["rows"], serde_json::json!([[2]]));
    assert_eq!(sql(&["query", "shop", "SELEC 1"]).0, 4, "a syntax error exits 4");
    assert_eq!(sql(&["query", "nope", "SELECT 1"]).0, 3, "a missing database exits 3");

    // Export, then import into a second database.
    assert_eq!(sql(&["export", "shop", "--output", "dump.sql"]).0, 0);
    let dump = std::fs::read_to_string(dir.path().join("dump.sql")).expect("dump");
    assert!(dump.contains("CREATE TABLE items") && dump.contains("'ink'"), "{dump}");
    assert_eq!(sql(&["create", "copy"]).0, 0);
    assert_eq!(sql(&["import", "copy", "dump.sql"]).0, 0);
    let (_, out) = sql(&["query", "copy", "SELECT group_concat(name) AS names FROM items", "--json"]);
    assert!(out.contains("pen,ink"), "{out}");

    // Migrations: numbered files, applied in order, a failure stops the run and is rolled back.
    let (code, out) = sql(&["migrations", "create", "shop", "create users"]);
    assert_eq!(code, 0, "{out}");
    let migrations = dir.path().join("migrations");
    let append = |file: &str, text: &str| {
        let path = migrations.join(file);
        let mut body = std::fs::read_to_string(&path).expect("read");
        body.push_str(text);
        std::fs::write(&path, body).expect("write");
    };
    append("0001_create_users.sql", "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT);\n");
    assert_eq!(sql(&["migrations", "create", "shop", "broken"]).0, 0);
    append("0002_broken.sql", "CREATE TABLE half(x);\nINSERT INTO missing VALUES (1);\n");
    assert_eq!(sql(&["migrations", "create", "shop", "later"]).0, 0);
    append("0003_later.sql", "CREATE TABLE later(x);\n");
    assert_eq!(sql(&["migrations", "apply", "shop"]).0, 4, "the failed migration exits 4");
    let (_, out) = sql(&["migrations", "list", "shop"]);
    assert!(out.contains("0001_create_users.sql │ applied"), "{out}");
    assert!(out.contains("0002_broken.sql       │ pending"), "{out}");
    assert!(out.contains("0003_later.sql        │ pending"), "{out}");
    let (_, out) =
        sql(&["query", "shop", "SELECT name FROM sqlite_master WHERE name IN ('users', 'half', 'later')", "--json"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).expect("JSON")[0]["results"]["rows"],
        serde_json::json!([["users"]])
    );
    // Fix the broken one: the run continues from it.
    std::fs::write(migrations.join("0002_broken.sql"), "CREATE TABLE half(x);\n").expect("write");
    assert_eq!(sql(&["migrations", "apply", "shop"]).0, 0);
    assert_eq!(sql(&["migrations", "apply", "shop"]), (0, "✅ No migrations to apply!".into()));
    let (_, out) = sql(&["query", "shop", "SELECT name FROM d1_migrations ORDER BY id", "--json"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).expect("JSON")[0]["results"]["rows"],
        serde_json::json!([["0001_create_users.sql"], ["0002_broken.sql"], ["0003_later.sql"]])
    );
    assert_eq!(sql(&["delete", "copy"]).0, 0);
    assert_eq!(sql(&["info", "copy"]).0, 3);
}

#[test]
fn bucket_commands_stream_files_in_and_out_and_report_errors_with_exit_codes() {
    let s = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Some(TOKEN);
    let bucket = |args: &[&str]| run_cairn(&s, "bucket", args, t, Some(dir.path()));
    assert_eq!(bucket(&["create", "photos"]).0, 0);
    assert_eq!(bucket(&["create", "photos"]).0, 4, "an existing bucket exits 4");
    assert_eq!(bucket(&["create", "Bad_Name"]).0, 4, "an invalid name exits 4");
    // A body above the inline size goes through a blob file both ways.
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("in.bin"), &body).expect("write");
    let (code, out) = bucket(&["put", "photos", "2026/a b.bin", "in.bin", "--content-type", "image/png"]);
    assert_eq!(code, 0, "{out}");
    let put: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(put["size"], 300_000);
    assert_eq!(put["http_metadata"]["content_type"], "image/png");
    assert_eq!(bucket(&["get", "photos", "2026/a b.bin", "out.bin"]).0, 0);
    assert_eq!(std::fs::read(dir.path().join("out.bin")).expect("read"), body);
    assert_eq!(bucket(&["put", "photos", "top.txt", "in.bin"]).0, 0);
    let (code, out) = bucket(&["ls", "photos", "--delimiter", "/"]);
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0]["prefix"], "2026/");
    assert_eq!(lines[1]["key"], "top.txt");
    assert_eq!(bucket(&["get", "photos", "missing", "x.bin"]).0, 3, "a missing key exits 3");
    assert!(!dir.path().join("x.bin").exists(), "nothing is written for a missing key");
    assert_eq!(bucket(&["delete", "photos"]).0, 4, "a bucket with objects is not deleted");
    assert_eq!(bucket(&["rm", "photos", "2026/a b.bin", "top.txt"]).0, 0);
    assert_eq!(bucket(&["delete", "photos"]).0, 0);
    assert_eq!(bucket(&["put", "photos", "k", "in.bin"]).0, 3, "a missing bucket exits 3");
}
