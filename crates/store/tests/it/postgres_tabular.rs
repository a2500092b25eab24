//! The PostgreSQL persister in tabular mode: store tables mapped to SQL tables.

use cairn_store::{
    Cell, DatabaseConfig, Persister, PostgresPersister, PostgresStorage, Store, TableLoad, TableSave, TabularConfig,
    ValuesMapping,
};

use crate::postgres_support::{Statements, TestDb, drain};
use crate::{content, eventually_async, options};

type Errors = std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>;

/// Store table `pets` <-> SQL table `animals` with row ids in `name`; values in `settings`.
fn mapping() -> TabularConfig {
    TabularConfig::new()
        .load_table("animals", TableLoad::new("pets").row_id_column("name"))
        .save_table("pets", TableSave::new("animals").row_id_column("name"))
        .table("species", "species")
        .values(ValuesMapping::new("settings"))
}

async fn persister(db: &TestDb, store: &Store, config: TabularConfig) -> (PostgresPersister, Statements, Errors) {
    let (storage, statements) = db.storage(DatabaseConfig::tabular(config)).await;
    let (options, errors) = options();
    (Persister::new(store, storage, options).unwrap(), statements, errors)
}

const PETS: &str = r#"[{
    "pets":{"fido":{"species":"dog","legs":4,"weight":12.5},"felix":{"species":"cat","legs":4}},
    "species":{"dog":{"sound":"woof"}},
    "secrets":{"s1":{"code":"1234"}}
},{"open":true,"employees":3}]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapped_tables_save_to_and_load_from_their_sql_tables() {
    let db = TestDb::new().await;
    let store = Store::new();
    store.set_json(PETS).unwrap();
    let (saver, statements, errors) = persister(&db, &store, mapping()).await;
    saver.save().await.unwrap();

    assert_eq!(
        db.dump("animals", "name").await,
        [r#"felix: legs=4,species="cat""#, r#"fido: legs=4,species="dog",weight=12.5"#],
        "cells are stored as their JSON in text columns, as TinyBase stores them"
    );
    assert_eq!(db.columns("animals").await, ["name", "legs", "species", "weight"]);
    assert_eq!(db.dump("species", "_id").await, [r#"dog: sound="woof""#]);
    assert_eq!(db.dump("settings", "_id").await, ["_: employees=3,open=true"]);
    assert!(db.columns("secrets").await.is_empty(), "unmapped tables are not saved");
    assert!(db.columns("tinybase_values").await.is_empty());
    let log = statements.lock().unwrap().clone();
    assert!(
        log.iter().any(|(sql, _)| sql
            == r#"CREATE TABLE "animals"("name" text PRIMARY KEY,"legs" text,"species" text,"weight" text)"#),
        "{log:#?}"
    );
    assert!(
        log.iter().any(|(sql, params)| sql.starts_with(r#"INSERT INTO "animals"("name","legs","species","weight")"#)
            && *params == [Cell::from("fido"), Cell::from(4), Cell::from("dog"), Cell::from(12.5)])
    );

    // Another store with the same mapping reads it back: types survive (no schema needed).
    let copy = Store::new();
    let (loader, _, _) = persister(&db, &copy, mapping()).await;
    loader.load(None).await.unwrap();
    let mut expected = store.content();
    expected.tables.remove("secrets");
    assert_eq!(copy.content(), expected);
    assert!(errors.lock().unwrap().is_empty());
    saver.destroy().await;
    loader.destroy().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_in_plain_sql_and_typed_columns_load() {
    let db = TestDb::new().await;
    db.other
        .batch_execute(
            r#"CREATE TABLE pets(_id text PRIMARY KEY, species text, legs integer, weight double precision, sold boolean, tags jsonb, born date);
               INSERT INTO pets VALUES('fido', 'dog', 4, 12.5, true, '"good"', '2020-01-02'), ('rex', '"3"', NULL, NULL, NULL, '7', NULL);"#,
        )
        .await
        .unwrap();
    let store = Store::new();
    let (persister, _, errors) = persister(&db, &store, TabularConfig::new().table("pets", "pets")).await;
    persister.load(None).await.unwrap();
    assert_eq!(
        store.json(),
        r#"[{"pets":{"fido":{"born":"2020-01-02","legs":4,"sold":true,"species":"dog","tags":"good","weight":12.5},"rex":{"species":"3","tags":7}}},{}]"#
    );
    // Saving into the typed columns sends each cell as the column's type reads it.
    store.set_row(
        "pets",
        "felix",
        [("species", Cell::from("cat")), ("legs", Cell::from(3)), ("sold", Cell::from(false))],
    );
    persister.save().await.unwrap();
    let row = db.other.query_one("SELECT species, legs, sold FROM pets WHERE _id = 'felix'", &[]).await.unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i32>(1), row.get::<_, bool>(2)),
        ("\"cat\"".to_owned(), 3, false)
    );
    assert!(errors.lock().unwrap().is_empty());
    persister.destroy().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_save_writes_only_what_changed_with_upserts_deletes_and_new_columns() {
    let db = TestDb::new().await;
    let store = Store::new();
    store.set_json(PETS).unwrap();
    let (persister, statements, errors) = persister(&db, &store, mapping()).await;
    persister.start_auto_save().await.unwrap();
    let wait = async |what: &str, table: &str, id: &str, rows: &[&str]| {
        eventually_async(what, || async { db.dump(table, id).await == rows }).await;
    };

    statements.lock().unwrap().clear();
    store.set_cell("pets", "fido", "legs", 3);
    wait(
        "the cell change",
        "animals",
        "name",
        &[r#"felix: legs=4,species="cat""#, r#"fido: legs=3,species="dog",weight=12.5"#],
    )
    .await;
    assert_eq!(
        drain(&statements, |sql| sql.starts_with("INSERT") || sql.starts_with("DELETE")),
        [(
            r#"INSERT INTO "animals"("name","legs")VALUES($1,$2)ON CONFLICT("name")DO UPDATE SET "legs"=excluded."legs""#
                .to_owned(),
            vec![Cell::from("fido"), Cell::from(3)]
        )],
        "one upsert of the one changed cell"
    );

    store.set_cell("pets", "rex", "color", "grey");
    wait(
        "the new column",
        "animals",
        "name",
        &[r#"felix: legs=4,species="cat""#, r#"fido: legs=3,species="dog",weight=12.5"#, r#"rex: color="grey""#],
    )
    .await;
    assert_eq!(db.columns("animals").await, ["name", "legs", "species", "weight", "color"]);
    assert!(
        statements.lock().unwrap().iter().any(|(sql, _)| sql == r#"ALTER TABLE "animals" ADD COLUMN "color" text"#)
    );

    store.del_cell("pets", "fido", "weight");
    store.del_row("pets", "felix");
    wait("the deletions", "animals", "name", &[r#"fido: legs=3,species="dog""#, r#"rex: color="grey""#]).await;
    assert_eq!(
        drain(&statements, |sql| sql.starts_with("DELETE")),
        [(r#"DELETE FROM "animals" WHERE "name"=$1"#.to_owned(), vec![Cell::from("felix")])]
    );

    store.del_table("pets");
    wait("the table's deletion", "animals", "name", &[]).await;
    assert!(statements.lock().unwrap().iter().any(|(sql, _)| sql == r#"DELETE FROM "animals""#));
    assert!(!db.columns("animals").await.is_empty(), "the SQL table stays (delete_empty_table is off)");

    store.del_value("employees");
    wait("the value's deletion", "settings", "_id", &["_: open=true"]).await;
    store.set_cell("secrets", "s2", "code", "5678");
    persister.stop_auto_save().await.unwrap();
    assert!(db.columns("secrets").await.is_empty());
    assert!(errors.lock().unwrap().is_empty());
    persister.destroy().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_save_replaces_rows_and_may_drop_empty_columns_and_tables() {
    let db = TestDb::new().await;
    db.other
        .batch_execute(
            r#"CREATE TABLE pets(_id text PRIMARY KEY, species text, old_column text);
               INSERT INTO pets VALUES('ghost', 'ghost', '1'), ('fido', 'wolf', NULL);
               CREATE TABLE species(_id text PRIMARY KEY, sound text);
               INSERT INTO species VALUES('cat', 'meow');"#,
        )
        .await
        .unwrap();
    let store = Store::new();
    store.set_row("pets", "fido", [("species", "dog")]);
    let config = TabularConfig::new()
        .save_table("pets", TableSave::new("pets").delete_empty_columns(true))
        .save_table("species", TableSave::new("species").delete_empty_table(true));
    let (persister, _, _) = persister(&db, &store, config).await;
    persister.save().await.unwrap();
    assert_eq!(db.dump("pets", "_id").await, [r#"fido: species="dog""#], "rows not in the store are deleted");
    assert_eq!(db.columns("pets").await, ["_id", "species"], "the unused column is dropped");
    assert!(db.columns("species").await.is_empty(), "the empty store table's SQL table is dropped");
    persister.destroy().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_no_cell_can_hold_is_reported_and_leaves_the_store_alone() {
    let db = TestDb::new().await;
    db.other
        .batch_execute(
            r#"CREATE TABLE pets(_id text PRIMARY KEY, photo bytea); INSERT INTO pets VALUES('fido', '\x89504e47');"#,
        )
        .await
        .unwrap();
    let store = Store::new();
    store.set_cell("pets", "felix", "species", "cat");
    let (persister, _, errors) = persister(&db, &store, TabularConfig::new().table("pets", "pets")).await;
    let error = persister.load(None).await.unwrap_err();
    assert_eq!(error.code(), "store.unsupported_sql_value");
    assert_eq!(error.to_string(), r#"column "photo" of table "pets" holds bytes, which no cell can hold"#);
    db.other.batch_execute(r#"ALTER TABLE pets DROP COLUMN photo; ALTER TABLE pets ADD COLUMN tags jsonb; INSERT INTO pets VALUES('rex', '[1,2]')"#).await.unwrap();
    assert_eq!(persister.load(None).await.unwrap_err().code(), "store.unsupported_sql_value");
    assert_eq!(store.json(), r#"[{"pets":{"felix":{"species":"cat"}}},{}]"#);
    assert_eq!(*errors.lock().unwrap(), ["store.unsupported_sql_value", "store.unsupported_sql_value"]);
    persister.destroy().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_content_applies_when_no_mapped_table_has_rows() {
    let db = TestDb::new().await;
    db.other.batch_execute("CREATE TABLE animals(name text PRIMARY KEY, species text)").await.unwrap();
    let store = Store::new();
    let (persister, _, _) = persister(&db, &store, mapping()).await;
    let default = r#"[{"pets":{"fido":{"species":"dog"}}},{"open":true}]"#;
    persister.load(Some(content(default))).await.unwrap();
    assert_eq!(store.json(), default);
    db.other.batch_execute(r#"INSERT INTO animals VALUES('rex', '"wolf"')"#).await.unwrap();
    persister.load(Some(content(default))).await.unwrap();
    assert_eq!(store.json(), r#"[{"pets":{"rex":{"species":"wolf"}}},{}]"#, "stored rows win over the default");
    persister.destroy().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_that_uses_the_values_table_for_a_store_table_is_refused() {
    let config = TabularConfig::new().table("pets", "tinybase_values").values(ValuesMapping::default());
    let url = crate::postgres_support::url();
    let error = PostgresStorage::connect(&url, DatabaseConfig::tabular(config)).await.unwrap_err();
    assert_eq!(error.code(), "store.values_table_mapped");
}
