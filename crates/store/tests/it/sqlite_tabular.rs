//! The SQLite persister in tabular mode: store tables mapped to SQL tables.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use cairn_store::{
    Cell, DatabaseConfig, Persister, SqlitePersister, SqliteStorage, Store, TableLoad, TableSave, TabularConfig,
    ValuesMapping,
};
use rusqlite::Connection;

use crate::{content, eventually, options};

type Statements = Arc<Mutex<Vec<(String, Vec<Cell>)>>>;

/// Store table `pets` <-> SQL table `animals` with row ids in `name`; values in `settings`.
fn mapping() -> TabularConfig {
    TabularConfig::new()
        .load_table("animals", TableLoad::new("pets").row_id_column("name"))
        .save_table("pets", TableSave::new("animals").row_id_column("name"))
        .table("species", "species")
        .values(ValuesMapping::new("settings"))
}

fn persister(
    store: &Store,
    path: &Path,
    config: TabularConfig,
) -> (SqlitePersister, Statements, Arc<Mutex<Vec<&'static str>>>) {
    let statements: Statements = Arc::default();
    let log = statements.clone();
    let config = DatabaseConfig::tabular(config)
        .on_sql_command(move |sql, params| log.lock().unwrap().push((sql.to_owned(), params.to_vec())));
    let (options, errors) = options();
    (Persister::new(store, SqliteStorage::open(path, config).unwrap(), options).unwrap(), statements, errors)
}

fn other_writer(path: &Path) -> Connection {
    let db = Connection::open(path).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    db
}

/// A table's rows as `id: col=value,...` lines, `NULL`s left out.
fn dump(path: &Path, table: &str, id_column: &str) -> Vec<String> {
    let db = other_writer(path);
    let Ok(mut statement) = db.prepare(&format!(r#"SELECT * FROM "{table}" ORDER BY "{id_column}""#)) else {
        return Vec::new();
    };
    let names: Vec<String> = statement.column_names().map(str::to_owned).collect();
    let rows = statement
        .query_map([], |row| {
            let mut id = String::new();
            let mut cells = BTreeMap::new();
            for (i, name) in names.iter().enumerate() {
                let value = match row.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => continue,
                    rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                    rusqlite::types::ValueRef::Real(r) => format!("{r:?}"),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    rusqlite::types::ValueRef::Blob(_) => "<blob>".to_owned(),
                };
                if name == id_column {
                    id = value;
                } else {
                    cells.insert(name.clone(), value);
                }
            }
            let cells: Vec<String> = cells.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
            Ok(format!("{id}: {}", cells.join(",")))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

fn columns(path: &Path, table: &str) -> Vec<String> {
    let db = other_writer(path);
    let mut statement = db.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid").unwrap();
    statement.query_map([table], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

const PETS: &str = r#"[{
    "pets":{"fido":{"species":"dog","legs":4,"weight":12.5},"felix":{"species":"cat","legs":4}},
    "species":{"dog":{"sound":"woof"}},
    "secrets":{"s1":{"code":"1234"}}
},{"open":true,"employees":3}]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapped_tables_save_to_and_load_from_their_sql_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pets.db");
    let store = Store::new();
    store.set_json(PETS).unwrap();
    let (saver, statements, errors) = persister(&store, &path, mapping());
    saver.save().await.unwrap();

    assert_eq!(dump(&path, "animals", "name"), ["felix: legs=4,species=cat", "fido: legs=4,species=dog,weight=12.5"]);
    assert_eq!(columns(&path, "animals"), ["name", "legs", "species", "weight"]);
    assert_eq!(dump(&path, "species", "_id"), ["dog: sound=woof"]);
    assert_eq!(dump(&path, "settings", "_id"), ["_: employees=3,open=1"]);
    assert!(columns(&path, "secrets").is_empty(), "unmapped tables are not saved");
    assert!(columns(&path, "tinybase_values").is_empty());
    let sql: Vec<String> = statements.lock().unwrap().iter().map(|(s, _)| s.clone()).collect();
    assert!(
        sql.contains(&r#"CREATE TABLE "animals"("name" PRIMARY KEY,"legs","species","weight")"#.to_owned()),
        "{sql:#?}"
    );

    // Another store with the same mapping (and a schema, so 1 reads as a boolean).
    let copy = Store::new();
    copy.set_values_schema(
        serde_json::from_str(r#"{"open":{"type":"boolean"},"employees":{"type":"number"}}"#).unwrap(),
    )
    .unwrap();
    let (loader, _, _) = persister(&copy, &path, mapping());
    loader.load(None).await.unwrap();
    let mut expected = store.content();
    expected.tables.remove("secrets");
    assert_eq!(copy.content(), expected);
    assert!(errors.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_changes_writes_only_what_changed_with_upserts_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("changes.db");
    let store = Store::new();
    store.set_json(PETS).unwrap();
    let (persister, statements, errors) = persister(&store, &path, mapping());
    persister.start_auto_save().await.unwrap();
    let wait = |what: &'static str, table: &'static str, id: &'static str, rows: &'static [&'static str]| {
        let path = path.clone();
        async move { eventually(what, || dump(&path, table, id) == rows).await }
    };

    statements.lock().unwrap().clear();
    store.set_cell("pets", "fido", "legs", 3);
    wait("the cell change", "animals", "name", &["felix: legs=4,species=cat", "fido: legs=3,species=dog,weight=12.5"])
        .await;
    let writes: Vec<(String, Vec<Cell>)> = statements
        .lock()
        .unwrap()
        .drain(..)
        .filter(|(sql, _)| sql.starts_with("INSERT") || sql.starts_with("DELETE"))
        .collect();
    assert_eq!(
        writes,
        [(
            r#"INSERT INTO "animals"("name","legs")VALUES(?1,?2)ON CONFLICT("name")DO UPDATE SET "legs"=excluded."legs""#
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
        &["felix: legs=4,species=cat", "fido: legs=3,species=dog,weight=12.5", "rex: color=grey"],
    )
    .await;
    assert_eq!(columns(&path, "animals"), ["name", "legs", "species", "weight", "color"]);
    assert!(statements.lock().unwrap().iter().any(|(sql, _)| sql == r#"ALTER TABLE "animals" ADD COLUMN "color""#));

    store.del_cell("pets", "fido", "weight");
    store.del_row("pets", "felix");
    wait("the deletions", "animals", "name", &["fido: legs=3,species=dog", "rex: color=grey"]).await;
    let deletes: Vec<(String, Vec<Cell>)> =
        statements.lock().unwrap().drain(..).filter(|(sql, _)| sql.starts_with("DELETE")).collect();
    assert_eq!(deletes, [(r#"DELETE FROM "animals" WHERE "name"=?1"#.to_owned(), vec![Cell::from("felix")])]);

    store.del_table("pets");
    wait("the table's deletion", "animals", "name", &[]).await;
    assert!(statements.lock().unwrap().iter().any(|(sql, _)| sql == r#"DELETE FROM "animals""#));
    assert!(!columns(&path, "animals").is_empty(), "the SQL table stays (delete_empty_table is off)");

    store.del_value("employees");
    wait("the value's deletion", "settings", "_id", &["_: open=1"]).await;
    store.set_cell("secrets", "s2", "code", "5678");
    persister.stop_auto_save().await.unwrap();
    assert!(columns(&path, "secrets").is_empty());
    assert!(errors.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_save_replaces_rows_and_may_drop_empty_columns_and_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("whole.db");
    let db = other_writer(&path);
    db.execute_batch(
        r#"CREATE TABLE pets(_id PRIMARY KEY, species, old_column);
           INSERT INTO pets VALUES('ghost', 'ghost', 1), ('fido', 'wolf', NULL);
           CREATE TABLE species(_id PRIMARY KEY, sound);
           INSERT INTO species VALUES('cat', 'meow');"#,
    )
    .unwrap();
    let store = Store::new();
    store.set_row("pets", "fido", [("species", "dog")]);
    let config = TabularConfig::new()
        .save_table("pets", TableSave::new("pets").delete_empty_columns(true))
        .save_table("species", TableSave::new("species").delete_empty_table(true));
    let (persister, _, _) = persister(&store, &path, config);
    persister.save().await.unwrap();
    assert_eq!(dump(&path, "pets", "_id"), ["fido: species=dog"], "rows not in the store are deleted");
    assert_eq!(columns(&path, "pets"), ["_id", "species"], "the unused column is dropped");
    assert!(columns(&path, "species").is_empty(), "the empty store table's SQL table is dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_load_follows_rows_written_by_another_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let store = Store::new();
    let schema =
        serde_json::from_str(r#"{"pets":{"species":{"type":"string"},"sold":{"type":"boolean","default":false}}}"#)
            .unwrap();
    store.set_tables_schema(schema).unwrap();
    let (persister, _, errors) = persister(&store, &path, TabularConfig::new().table("pets", "pets"));
    persister.start_auto_persisting(Some(content(r#"[{"pets":{"fido":{"species":"dog"}}},{}]"#))).await.unwrap();
    assert_eq!(dump(&path, "pets", "_id"), ["fido: sold=0,species=dog"], "the default was loaded, then saved");

    let db = other_writer(&path);
    db.execute(r#"INSERT INTO pets(_id, species, sold) VALUES('felix', 'cat', 1)"#, []).unwrap();
    eventually("the inserted row to load", || store.has_row("pets", "felix")).await;
    assert_eq!(store.cell("pets", "felix", "sold"), Some(Cell::Bool(true)), "1 is a boolean where the schema says so");
    db.execute(r#"UPDATE pets SET species = 'wolf' WHERE _id = 'fido'"#, []).unwrap();
    eventually("the update to load", || store.cell("pets", "fido", "species") == Some(Cell::from("wolf"))).await;
    db.execute(r#"DELETE FROM pets WHERE _id = 'felix'"#, []).unwrap();
    eventually("the deletion to load", || !store.has_row("pets", "felix")).await;
    db.execute(r#"INSERT INTO pets(_id, species) VALUES(7, 'parrot')"#, []).unwrap();
    eventually("a numeric row id to load as text", || store.has_row("pets", "7")).await;

    let saves = persister.stats().saves;
    persister.stop_auto_persisting().await.unwrap();
    assert_eq!(persister.stats().saves, saves, "loads are not written back");
    assert!(errors.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_no_cell_can_hold_is_reported_and_leaves_the_store_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob.db");
    other_writer(&path)
        .execute_batch(r#"CREATE TABLE pets(_id PRIMARY KEY, photo); INSERT INTO pets VALUES('fido', x'89504e47');"#)
        .unwrap();
    let store = Store::new();
    store.set_cell("pets", "felix", "species", "cat");
    let (persister, _, errors) = persister(&store, &path, TabularConfig::new().table("pets", "pets"));
    let error = persister.load(None).await.unwrap_err();
    assert_eq!(error.code(), "store.unsupported_sql_value");
    assert_eq!(error.to_string(), r#"column "photo" of table "pets" holds a blob, which no cell can hold"#);
    assert_eq!(store.json(), r#"[{"pets":{"felix":{"species":"cat"}}},{}]"#);
    assert_eq!(*errors.lock().unwrap(), ["store.unsupported_sql_value"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_content_applies_when_no_mapped_table_has_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    other_writer(&path).execute_batch("CREATE TABLE animals(name PRIMARY KEY, species)").unwrap();
    let store = Store::new();
    let (persister, _, _) = persister(&store, &path, mapping());
    persister.load(Some(content(r#"[{"pets":{"fido":{"species":"dog"}}},{"open":true}]"#))).await.unwrap();
    assert_eq!(store.json(), r#"[{"pets":{"fido":{"species":"dog"}}},{"open":true}]"#);
}

#[test]
fn a_mapping_that_uses_the_values_table_for_a_store_table_is_refused() {
    let config = TabularConfig::new().table("pets", "tinybase_values").values(ValuesMapping::default());
    let error = SqliteStorage::new(Connection::open_in_memory().unwrap(), DatabaseConfig::tabular(config)).unwrap_err();
    assert_eq!(error.code(), "store.values_table_mapped");
}
