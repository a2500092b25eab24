//! The SQLite persister in JSON mode: the whole store in one row.

use std::path::Path;
use std::sync::{Arc, Mutex};

use cairn_store::{Cell, DatabaseConfig, DatabaseMode, JsonConfig, Persister, SqlitePersister, SqliteStorage, Store};
use rusqlite::Connection;

use crate::{content, eventually, options};

const PETS: &str = r#"[{"pets":{"fido":{"legs":4,"species":"dog"}}},{"open":true}]"#;

type Statements = Arc<Mutex<Vec<(String, Vec<Cell>)>>>;

fn persister(store: &Store, path: &Path, config: DatabaseConfig) -> (SqlitePersister, Arc<Mutex<Vec<&'static str>>>) {
    let (options, errors) = options();
    (Persister::new(store, SqliteStorage::open(path, config).unwrap(), options).unwrap(), errors)
}

fn other_writer(path: &Path) -> Connection {
    let db = Connection::open(path).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    db
}

fn stored(path: &Path) -> Option<String> {
    other_writer(path).query_row(r#"SELECT store FROM tinybase WHERE _id = '_'"#, [], |r| r.get(0)).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_and_load_round_trip_one_row_of_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pets.db");
    let store = Store::new();
    store.set_json(PETS).unwrap();
    let statements: Statements = Arc::default();
    let log = statements.clone();
    let config = DatabaseConfig::json()
        .on_sql_command(move |sql, params| log.lock().unwrap().push((sql.to_owned(), params.to_vec())));
    let (saver, errors) = persister(&store, &path, config);
    saver.save().await.unwrap();
    assert_eq!(stored(&path).as_deref(), Some(PETS));

    let statements = statements.lock().unwrap().clone();
    let sql: Vec<&str> = statements.iter().map(|(sql, _)| sql.as_str()).collect();
    assert_eq!(sql.first(), Some(&"BEGIN IMMEDIATE"));
    assert_eq!(sql.last(), Some(&"COMMIT"));
    assert!(sql.contains(&r#"CREATE TABLE "tinybase"("_id" PRIMARY KEY,"store")"#), "{sql:?}");
    let upsert = statements.iter().find(|(sql, _)| sql.starts_with("INSERT")).unwrap();
    assert_eq!(
        upsert.0,
        r#"INSERT INTO "tinybase"("_id","store")VALUES(?1,?2)ON CONFLICT("_id")DO UPDATE SET "store"=excluded."store""#
    );
    assert_eq!(upsert.1, [Cell::from("_"), Cell::from(PETS)]);

    let copy = Store::new();
    let (loader, _) = persister(&copy, &path, DatabaseConfig::json());
    loader.load(None).await.unwrap();
    assert_eq!(copy.content(), store.content());
    assert!(errors.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_and_column_names_are_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("custom.db");
    let store = Store::new();
    store.set_json(PETS).unwrap();
    let mode = JsonConfig { table_name: "my store".into(), id_column: "key".into(), store_column: "json".into() };
    let (persister, _) = persister(&store, &path, DatabaseConfig::new(DatabaseMode::Json(mode)));
    persister.save().await.unwrap();
    let json: String =
        other_writer(&path).query_row(r#"SELECT json FROM "my store" WHERE key = '_'"#, [], |r| r.get(0)).unwrap();
    assert_eq!(json, PETS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_content_applies_to_an_empty_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    let store = Store::new();
    let (persister, _) = persister(&store, &path, DatabaseConfig::json());
    persister.load(Some(content(PETS))).await.unwrap();
    assert_eq!(store.json(), PETS);
    assert_eq!(stored(&path), None, "loading writes nothing");
    // A table without the row is empty too.
    other_writer(&path).execute_batch(r#"CREATE TABLE tinybase(_id PRIMARY KEY, store)"#).unwrap();
    store.del_tables();
    persister.load(Some(content(PETS))).await.unwrap();
    assert_eq!(store.json(), PETS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_row_is_reported_and_leaves_the_store_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.db");
    other_writer(&path).execute_batch(r#"CREATE TABLE tinybase(_id PRIMARY KEY, store)"#).unwrap();
    let store = Store::new();
    store.set_json(PETS).unwrap();
    let (persister, errors) = persister(&store, &path, DatabaseConfig::json());
    for (bad, code) in [
        ("'[{\"pets\":'", "store.invalid_json"),
        ("'{\"pets\":{}}'", "store.invalid_json"),
        ("'[{\"pets\":{\"fido\":{\"legs\":{}}}},{}]'", "store.invalid_json"),
        ("42", "store.unsupported_sql_value"),
        ("x'00ff'", "store.unsupported_sql_value"),
    ] {
        other_writer(&path).execute_batch(&format!("REPLACE INTO tinybase VALUES('_', {bad})")).unwrap();
        let error = persister.load(None).await.unwrap_err();
        assert_eq!(error.code(), code, "{bad}");
        assert_eq!(store.json(), PETS);
    }
    assert_eq!(errors.lock().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_load_follows_another_connection_and_auto_save_writes_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let store = Store::new();
    let (persister, errors) = persister(&store, &path, DatabaseConfig::json());
    persister.start_auto_persisting(Some(content(PETS))).await.unwrap();
    assert_eq!(stored(&path).as_deref(), Some(PETS), "the default was loaded, then saved");
    let saves = persister.stats().saves;

    other_writer(&path)
        .execute("UPDATE tinybase SET store = ?1 WHERE _id = '_'", [r#"[{"pets":{"felix":{"species":"cat"}}},{}]"#])
        .unwrap();
    eventually("the other connection's write to load", || store.has_row("pets", "felix")).await;
    assert!(!store.has_value("open"));

    store.set_cell("pets", "felix", "legs", 4);
    eventually("the change to be saved", || {
        stored(&path).as_deref() == Some(r#"[{"pets":{"felix":{"legs":4,"species":"cat"}}},{}]"#)
    })
    .await;
    persister.stop_auto_persisting().await.unwrap();
    assert_eq!(persister.stats().saves, saves + 1, "the load was not written back; the change was");
    assert!(errors.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_saves_are_not_taken_for_changes_but_other_commits_are() {
    use cairn_store::Persist;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("own.db");
    let store = Store::new();
    let (persister, _) = persister(&store, &path, DatabaseConfig::json());
    persister.load(None).await.unwrap();
    for i in 0..5 {
        store.set_value("n", i);
        persister.save().await.unwrap();
        assert!(!persister.storage().has_changed().await.unwrap(), "save {i}");
    }
    other_writer(&path).execute("UPDATE tinybase SET store = '[{},{}]'", []).unwrap();
    assert!(persister.storage().has_changed().await.unwrap());
    assert!(!persister.storage().has_changed().await.unwrap(), "a change is reported once");
}
