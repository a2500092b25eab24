//! The PostgreSQL persister in JSON mode: the whole store in one row.

use cairn_store::{Cell, DatabaseConfig, DatabaseMode, JsonConfig, Persister, PostgresPersister, Store};

use crate::postgres_support::{Statements, TestDb};
use crate::{content, eventually, eventually_async, options};

const PETS: &str = r#"[{"pets":{"fido":{"legs":4,"species":"dog"}}},{"open":true}]"#;

type Errors = std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>;

async fn persister(db: &TestDb, store: &Store, config: DatabaseConfig) -> (PostgresPersister, Statements, Errors) {
    let (storage, statements) = db.storage(config).await;
    let (options, errors) = options();
    (Persister::new(store, storage, options).unwrap(), statements, errors)
}

/// The store column's text, as PostgreSQL holds it.
async fn stored(db: &TestDb) -> Option<String> {
    let row = db.other.query_opt(r#"SELECT store FROM tinybase WHERE _id = '_'"#, &[]).await.ok()??;
    row.get(0)
}

/// The JSON of the store, as the store column holds it: TinyBase writes it as a JSON string.
fn as_stored(json: &str) -> String {
    serde_json::Value::from(json).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_and_load_round_trip_the_whole_store_in_one_row() {
    let db = TestDb::new().await;
    let store = Store::new();
    store.set_json(PETS).unwrap();
    let (saver, statements, errors) = persister(&db, &store, DatabaseConfig::json()).await;
    saver.save().await.unwrap();
    assert_eq!(stored(&db).await, Some(as_stored(PETS)));
    assert_eq!(db.columns("tinybase").await, ["_id", "store"]);
    let sql: Vec<String> = statements.lock().unwrap().iter().map(|(s, _)| s.clone()).collect();
    assert!(sql.contains(&r#"CREATE TABLE "tinybase"("_id" text PRIMARY KEY,"store" text)"#.to_owned()), "{sql:#?}");
    assert!(
        statements.lock().unwrap().iter().any(|(sql, params)| sql.starts_with(r#"INSERT INTO "tinybase""#)
            && *params == [Cell::from("_"), Cell::from(PETS)]),
        "on_sql_command sees the upsert and its parameters"
    );

    let copy = Store::new();
    let (loader, _, _) = persister(&db, &copy, DatabaseConfig::json()).await;
    loader.load(None).await.unwrap();
    assert_eq!(copy.content(), store.content());

    // The JSON written as it is (not as a JSON string) by another writer loads too.
    db.other
        .execute(r#"UPDATE tinybase SET store = $1 WHERE _id = '_'"#, &[&r#"[{"pets":{"rex":{"legs":3}}},{}]"#])
        .await
        .unwrap();
    loader.load(None).await.unwrap();
    assert_eq!(copy.json(), r#"[{"pets":{"rex":{"legs":3}}},{}]"#);
    assert!(errors.lock().unwrap().is_empty());
    saver.destroy().await;
    loader.destroy().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_and_column_names_are_configurable() {
    let db = TestDb::new().await;
    let store = Store::new();
    store.set_json(PETS).unwrap();
    let mode = JsonConfig { table_name: "my store".into(), id_column: "key".into(), store_column: "json".into() };
    let (persister, _, _) = persister(&db, &store, DatabaseConfig::new(DatabaseMode::Json(mode))).await;
    persister.save().await.unwrap();
    let row = db.other.query_one(r#"SELECT json FROM "my store" WHERE key = '_'"#, &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), as_stored(PETS));
    persister.destroy().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_content_applies_to_an_empty_database() {
    let db = TestDb::new().await;
    let store = Store::new();
    let (persister, _, _) = persister(&db, &store, DatabaseConfig::json()).await;
    persister.load(Some(content(PETS))).await.unwrap();
    assert_eq!(store.json(), PETS);
    assert!(db.columns("tinybase").await.is_empty(), "loading writes nothing");
    // A table without the row is empty too.
    db.other.batch_execute(r#"CREATE TABLE tinybase(_id text PRIMARY KEY, store text)"#).await.unwrap();
    store.del_tables();
    persister.load(Some(content(PETS))).await.unwrap();
    assert_eq!(store.json(), PETS);
    // Stored content wins over the default.
    db.other.batch_execute(r#"INSERT INTO tinybase VALUES('_', '[{},{"n":1}]')"#).await.unwrap();
    persister.load(Some(content(PETS))).await.unwrap();
    assert_eq!(store.json(), r#"[{},{"n":1}]"#);
    persister.destroy().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_stored_data_is_reported_and_leaves_the_store_alone() {
    let db = TestDb::new().await;
    db.other.batch_execute(r#"CREATE TABLE tinybase(_id text PRIMARY KEY, store text)"#).await.unwrap();
    let store = Store::new();
    store.set_json(PETS).unwrap();
    let (persister, _, errors) = persister(&db, &store, DatabaseConfig::json()).await;
    for (bad, code) in [
        (r#"[{"pets":"#, "store.invalid_json"),
        (r#"{"pets":{}}"#, "store.invalid_json"),
        (r#"[{"pets":{"fido":{"legs":{}}}},{}]"#, "store.invalid_json"),
        ("not json at all", "store.invalid_json"),
        ("42", "store.unsupported_sql_value"),
    ] {
        db.other.execute("DELETE FROM tinybase", &[]).await.unwrap();
        db.other.execute("INSERT INTO tinybase VALUES('_', $1)", &[&bad]).await.unwrap();
        let error = persister.load(None).await.unwrap_err();
        assert_eq!(error.code(), code, "{bad}");
        assert_eq!(store.json(), PETS);
    }
    assert_eq!(errors.lock().unwrap().len(), 5, "each failure went to on_ignored_error");

    // Auto-load reports it too, and goes on.
    persister.start_auto_load(None).await.unwrap();
    errors.lock().unwrap().clear();
    db.other.execute("UPDATE tinybase SET store = 'garbage'", &[]).await.unwrap();
    eventually("the corrupt row to be reported", || !errors.lock().unwrap().is_empty()).await;
    assert_eq!(errors.lock().unwrap()[0], "store.invalid_json");
    assert_eq!(store.json(), PETS);
    db.other.execute(r#"UPDATE tinybase SET store = '[{},{"fixed":true}]'"#, &[]).await.unwrap();
    eventually("the repaired row to load", || store.has_value("fixed")).await;
    persister.destroy().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_load_follows_another_connection_and_auto_save_writes_changes() {
    let db = TestDb::new().await;
    let store = Store::new();
    let (persister, _, errors) = persister(&db, &store, DatabaseConfig::json()).await;
    persister.start_auto_persisting(Some(content(PETS))).await.unwrap();
    assert_eq!(stored(&db).await, Some(as_stored(PETS)), "the default was loaded, then saved");
    let saves = persister.stats().saves;

    db.other
        .execute("UPDATE tinybase SET store = $1 WHERE _id = '_'", &[&r#"[{"pets":{"felix":{"species":"cat"}}},{}]"#])
        .await
        .unwrap();
    eventually("the other connection's write to load", || store.has_row("pets", "felix")).await;
    assert!(!store.has_value("open"));

    store.set_cell("pets", "felix", "legs", 4);
    let expected = as_stored(r#"[{"pets":{"felix":{"legs":4,"species":"cat"}}},{}]"#);
    eventually_async("the change to be saved", || async { stored(&db).await.as_deref() == Some(expected.as_str()) })
        .await;
    persister.stop_auto_persisting().await.unwrap();
    assert_eq!(persister.stats().saves, saves + 1, "the load was not written back; the change was");
    assert!(errors.lock().unwrap().is_empty());
    persister.destroy().await;
    db.finish().await;
}
