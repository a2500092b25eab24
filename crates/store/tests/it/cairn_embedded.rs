//! The Cairn object persister, embedded: a store in an object of a runtime in this process, in
//! the layout of the `tinybase` room kind.

use cairn_runtime::{ObjectRef, Runtime};
use cairn_storage::{ListOptions, Value};
use cairn_store::{CairnPersister, CairnStorage, Cell, Persister, Store};
use serde_json::json;

use crate::{content, eventually, eventually_async, options};

type Errors = std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>;

const PETS: &str = r#"[{"pets":{"fido":{"legs":4,"species":"dog"},"felix":{"legs":4,"nice":null}}},{"open":true}]"#;

/// A runtime over a temporary directory (the directory lives as long as the runtime is used).
pub(crate) fn runtime() -> (tempfile::TempDir, Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::builder(dir.path()).shards(1).open().unwrap();
    (dir, runtime)
}

fn persister(store: &Store, object: &ObjectRef) -> (CairnPersister, Errors) {
    let (options, errors) = options();
    (Persister::new(store, CairnStorage::embedded(object.clone()), options).unwrap(), errors)
}

/// Every entry of the object, values as JSON text (`<bytes>` for raw bytes).
pub(crate) async fn entries(object: &ObjectRef) -> Vec<(String, String)> {
    let list = object.list(ListOptions::new()).await.unwrap();
    list.into_iter()
        .map(|(key, value)| match value {
            Value::Json(json) => (key, json.to_string()),
            Value::Bytes(_) => (key, "<bytes>".to_owned()),
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_and_load_round_trip_in_the_rooms_layout() {
    let (_dir, runtime) = runtime();
    let room = runtime.object("tinybase", "lobby").unwrap();
    let store = Store::new();
    store.set_json(PETS).unwrap();
    let (saver, errors) = persister(&store, &room);
    saver.save().await.unwrap();
    assert_eq!(
        entries(&room).await,
        pairs(&[
            ("hasStore", "1"),
            (r#"t"pets","felix","legs""#, "4"),
            (r#"t"pets","felix","nice""#, "null"),
            (r#"t"pets","fido","legs""#, "4"),
            (r#"t"pets","fido","species""#, r#""dog""#),
            ("vopen", "true"),
        ])
    );

    let copy = Store::new();
    let (loader, _) = persister(&copy, &runtime.object("tinybase", "lobby").unwrap());
    loader.load(None).await.unwrap();
    assert_eq!(copy.content(), store.content());
    assert!(errors.lock().unwrap().is_empty());

    // A storage prefix keeps stores apart in one object.
    let other = Store::new();
    other.set_value("n", 1);
    let prefixed =
        Persister::new(&other, CairnStorage::embedded(room.clone()).storage_prefix("b/"), options().0).unwrap();
    prefixed.save().await.unwrap();
    assert!(entries(&room).await.contains(&("b/vn".to_owned(), "1".to_owned())));
    assert!(entries(&room).await.contains(&("b/hasStore".to_owned(), "1".to_owned())));
    loader.load(None).await.unwrap();
    assert_eq!(copy.content(), store.content(), "unprefixed keys only; b/... is not a t or v key");
    saver.destroy().await;
    loader.destroy().await;
    prefixed.destroy().await;
    runtime.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_save_writes_each_change_as_one_commit() {
    let (_dir, runtime) = runtime();
    let room = runtime.object("tinybase", "auto").unwrap();
    room.put("unrelated", &json!("kept")).await.unwrap();
    let store = Store::new();
    store.set_json(PETS).unwrap();
    let (persister, errors) = persister(&store, &room);
    persister.start_auto_save().await.unwrap();
    let first = room.current_bookmark().await.unwrap().seq;

    store.set_cell("pets", "fido", "legs", 3);
    eventually_async("the cell change", || async {
        room.get_value(r#"t"pets","fido","legs""#).await.unwrap() == Some(Value::Json(json!(3)))
    })
    .await;
    assert_eq!(room.current_bookmark().await.unwrap().seq, first + 1, "one save, one commit");

    store.transaction(|tx| {
        tx.del_row("pets", "felix");
        tx.del_cell("pets", "fido", "species");
        tx.del_value("open");
        tx.set_value("closed", true);
    });
    eventually_async("the deletions", || async {
        entries(&room).await
            == pairs(&[
                ("hasStore", "1"),
                (r#"t"pets","fido","legs""#, "3"),
                ("unrelated", r#""kept""#),
                ("vclosed", "true"),
            ])
    })
    .await;
    store.del_table("pets");
    eventually_async("the table's deletion", || async {
        entries(&room).await == pairs(&[("hasStore", "1"), ("unrelated", r#""kept""#), ("vclosed", "true")])
    })
    .await;
    assert!(errors.lock().unwrap().is_empty());
    persister.destroy().await;
    runtime.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_load_follows_writes_through_another_handle_but_not_its_own_saves() {
    let (_dir, runtime) = runtime();
    let room = runtime.object("tinybase", "shared").unwrap();
    let store = Store::new();
    let (persister, errors) = persister(&store, &room);
    persister.start_auto_persisting(Some(content(PETS))).await.unwrap();
    assert_eq!(room.get_value("hasStore").await.unwrap(), Some(Value::Json(json!(1))), "the default was saved");

    let other = runtime.object("tinybase", "shared").unwrap();
    other.put(r#"t"pets","rex","legs""#, &3).await.unwrap();
    eventually("the other handle's put to load", || store.cell("pets", "rex", "legs") == Some(Cell::from(3))).await;
    other.delete(r#"t"pets","fido","species""#).await.unwrap();
    eventually("the deletion to load", || store.cell("pets", "fido", "species").is_none()).await;

    // Own saves load nothing: after one, a write of the other handle is exactly one load.
    store.set_value("open", false);
    eventually_async("the save", || async {
        other.get_value("vopen").await.unwrap() == Some(Value::Json(json!(false)))
    })
    .await;
    let loads = persister.stats().loads;
    other.put("vvisitors", &7).await.unwrap();
    eventually("the value to load", || store.value("visitors") == Some(Cell::from(7))).await;
    assert_eq!(persister.stats().loads, loads + 1);

    let saves = persister.stats().saves;
    persister.stop_auto_persisting().await.unwrap();
    assert_eq!(persister.stats().saves, saves, "loads are not written back");
    assert!(errors.lock().unwrap().is_empty(), "{:?}", errors.lock().unwrap());
    persister.destroy().await;
    runtime.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_keys_and_values_are_reported_and_leave_the_store_alone() {
    let (_dir, runtime) = runtime();
    let room = runtime.object("tinybase", "corrupt").unwrap();
    room.put("hasStore", &1).await.unwrap();
    let store = Store::new();
    store.set_json(PETS).unwrap();
    let (persister, errors) = persister(&store, &room);
    for (key, value, code) in [
        (r#"t"a","b""#, Value::Json(json!(1)), "store.invalid_stored_key"),
        (r#"t"a","b","c","d""#, Value::Json(json!(1)), "store.invalid_stored_key"),
        (r#"t"a",1,"c""#, Value::Json(json!(1)), "store.invalid_stored_key"),
        (r#"t"a","b","c""#, Value::Json(json!({"x": 1})), "store.invalid_stored_value"),
        ("vlist", Value::Json(json!([1, 2])), "store.invalid_stored_value"),
        ("vraw", Value::Bytes(vec![0, 1]), "store.invalid_stored_value"),
    ] {
        room.put_many(vec![(key.to_owned(), value)]).await.unwrap();
        let error = persister.load(None).await.unwrap_err();
        assert_eq!(error.code(), code, "{key}");
        assert_eq!(store.json(), content(PETS).to_json(), "{key}");
        room.delete(key).await.unwrap();
    }
    assert_eq!(errors.lock().unwrap().len(), 6, "each went to on_ignored_error");

    // Auto-load reports it too, and goes on once it is repaired.
    room.put(r#"t"pets","rex","legs""#, &3).await.unwrap();
    persister.start_auto_load(None).await.unwrap();
    assert_eq!(store.json(), r#"[{"pets":{"rex":{"legs":3}}},{}]"#);
    errors.lock().unwrap().clear();
    room.put(r#"t"x""#, &1).await.unwrap();
    eventually("the corrupt key to be reported", || !errors.lock().unwrap().is_empty()).await;
    assert_eq!(errors.lock().unwrap()[0], "store.invalid_stored_key");
    assert_eq!(store.json(), r#"[{"pets":{"rex":{"legs":3}}},{}]"#);
    room.run(|s| {
        s.delete(r#"t"x""#)?;
        Ok::<_, cairn_runtime::Error>(s.put(r#"t"pets","rex","legs""#, &4)?)
    })
    .await
    .unwrap();
    eventually("the repaired storage to load", || store.cell("pets", "rex", "legs") == Some(Cell::from(4))).await;
    persister.destroy().await;
    runtime.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_content_applies_until_the_storage_is_initialised() {
    let (_dir, runtime) = runtime();
    let room = runtime.object("tinybase", "empty").unwrap();
    let store = Store::new();
    let (persister, _) = persister(&store, &room);
    persister.load(Some(content(PETS))).await.unwrap();
    assert_eq!(store.content(), content(PETS));
    assert!(entries(&room).await.is_empty(), "loading writes nothing");

    // Cells without `hasStore` are not a store yet (as the room reads them).
    room.put(r#"t"pets","rex","legs""#, &3).await.unwrap();
    store.del_tables();
    persister.load(Some(content(PETS))).await.unwrap();
    assert_eq!(store.content(), content(PETS));

    room.put("hasStore", &1).await.unwrap();
    persister.load(Some(content(PETS))).await.unwrap();
    assert_eq!(store.json(), r#"[{"pets":{"rex":{"legs":3}}},{}]"#, "an initialised storage wins over the default");
    persister.destroy().await;
    runtime.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_too_large_for_the_object_is_reported_and_the_rest_is_saved() {
    let (_dir, runtime) = runtime();
    let room = runtime.object("tinybase", "large").unwrap();
    let store = Store::new();
    store.set_cell("pets", "fido", "legs", 4);
    store.set_cell("pets", "fido", "photo", "x".repeat(200 * 1024));
    store.set_cell("pets", &"long".repeat(600), "legs", 1);
    let (persister, errors) = persister(&store, &room);
    let error = persister.save().await.unwrap_err();
    assert_eq!(error.code(), "store.too_large");
    assert!(error.to_string().starts_with("2 cell(s) or value(s) were not written"), "{error}");
    assert_eq!(entries(&room).await, pairs(&[("hasStore", "1"), (r#"t"pets","fido","legs""#, "4")]));
    assert_eq!(*errors.lock().unwrap(), ["store.too_large"]);

    // Auto-save goes on; the next change is written, the large cells are reported again.
    persister.start_auto_save().await.unwrap();
    store.set_cell("pets", "fido", "legs", 3);
    eventually_async("the change", || async {
        room.get_value(r#"t"pets","fido","legs""#).await.unwrap() == Some(Value::Json(json!(3)))
    })
    .await;
    assert!(errors.lock().unwrap().iter().all(|code| *code == "store.too_large"));
    persister.destroy().await;
    runtime.close();
}
