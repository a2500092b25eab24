//! The JSON file persister.

use std::path::Path;

use cairn_store::{Cell, FilePersister, FileStorage, Persister, Store};

use crate::{content, eventually, options};

const PETS: &str = r#"[{"pets":{"fido":{"legs":4,"species":"dog"}}},{"open":true}]"#;

fn persister(store: &Store, path: &Path) -> (FilePersister, std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>) {
    let (options, errors) = options();
    (Persister::new(store, FileStorage::new(path), options).unwrap(), errors)
}

/// Replaces the file the way careful writers do: a temporary file renamed over it.
fn replace(path: &Path, json: &str) {
    let temporary = path.with_extension("other-writer");
    std::fs::write(&temporary, json).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_and_load_round_trip_tinybases_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pets.json");
    let store = Store::new();
    store.set_json(PETS).unwrap();
    let (saver, errors) = persister(&store, &path);
    saver.save().await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), PETS);
    assert_eq!(files_in(dir.path()), ["pets.json"], "no temporary file is left");

    let copy = Store::new();
    let (loader, _) = persister(&copy, &path);
    loader.load(None).await.unwrap();
    assert_eq!(copy.content(), store.content());
    // A file written by TinyBase itself (insertion order, not sorted) loads the same.
    std::fs::write(&path, r#"[{"pets":{"fido":{"species":"dog","legs":4}}},{"open":true}]"#).unwrap();
    loader.load(None).await.unwrap();
    assert_eq!(copy.content(), store.content());
    assert!(errors.lock().unwrap().is_empty());
    assert_eq!(saver.storage().path(), path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_content_applies_when_the_file_is_missing_or_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.json");
    let store = Store::new();
    let (persister, errors) = persister(&store, &path);
    persister.load(Some(content(PETS))).await.unwrap();
    assert_eq!(store.json(), PETS);
    assert!(!path.exists(), "loading does not create the file");

    std::fs::write(&path, "  \n").unwrap();
    store.del_tables();
    persister.load(Some(content(PETS))).await.unwrap();
    assert_eq!(store.json(), PETS);
    assert!(errors.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_file_is_reported_and_leaves_the_store_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    let store = Store::new();
    store.set_json(PETS).unwrap();
    let (persister, errors) = persister(&store, &path);
    for (i, bad) in [
        r#"[{"pets":{"fido":"#,
        r#"{"pets":{}}"#,
        r#"[{"pets":{"fido":{"legs":[4]}}},{}]"#,
        r#"[{"pets":{"fido":{"legs":4}}}]"#,
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(&path, bad).unwrap();
        let error = persister.load(Some(content("[{},{}]"))).await.unwrap_err();
        assert_eq!(error.code(), "store.invalid_json", "{bad}");
        assert_eq!(store.json(), PETS, "{bad}");
        assert_eq!(errors.lock().unwrap().len(), i + 1);
    }
    assert!(errors.lock().unwrap().iter().all(|code| *code == "store.invalid_json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_save_follows_the_store_even_while_it_changes_during_saves() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auto.json");
    let store = Store::new();
    let (persister, errors) = persister(&store, &path);
    persister.start_auto_save().await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "[{},{}]");

    // Another thread writes as fast as it can while saves run.
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..300 {
                store.set_cell("counters", &format!("r{}", i % 7), "n", i);
                if i % 50 == 0 {
                    store.del_row("counters", "r3");
                }
            }
        })
    };
    writer.join().unwrap();
    let expected = store.json();
    eventually("the file to hold the last content", || std::fs::read_to_string(&path).unwrap() == expected).await;
    persister.stop_auto_save().await.unwrap(); // after the save in progress, if any
    assert!(persister.stats().saves >= 2);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    assert!(errors.lock().unwrap().is_empty());
    assert_eq!(files_in(dir.path()), ["auto.json"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_load_follows_another_writer_and_does_not_write_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.json");
    std::fs::write(&path, PETS).unwrap();
    let store = Store::new();
    let (persister, errors) = persister(&store, &path);
    persister.start_auto_persisting(None).await.unwrap();
    assert_eq!(store.json(), PETS);
    let saves = persister.stats().saves;

    replace(&path, r#"[{"pets":{"felix":{"species":"cat"}}},{"open":false}]"#);
    eventually("a renamed-in file to load", || store.has_row("pets", "felix")).await;
    assert!(!store.has_row("pets", "fido"));

    std::fs::write(&path, r#"[{"pets":{"rex":{"species":"wolf","legs":4}}},{}]"#).unwrap();
    eventually("a file rewritten in place to load", || store.has_row("pets", "rex")).await;
    assert_eq!(store.value("open"), None);

    // A corrupt write is reported; the store keeps what it had until a good write comes.
    std::fs::write(&path, "[{").unwrap();
    eventually("the corrupt file to be reported", || !errors.lock().unwrap().is_empty()).await;
    assert!(store.has_row("pets", "rex"));
    replace(&path, PETS);
    eventually("the repaired file to load", || store.has_row("pets", "fido")).await;

    persister.stop_auto_persisting().await.unwrap();
    assert_eq!(persister.stats().saves, saves, "loads are not written back");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), PETS);

    // And the store's own changes go to the file while auto-saving.
    persister.start_auto_save().await.unwrap();
    store.set_cell("pets", "fido", "legs", 3);
    eventually("the change to be saved", || std::fs::read_to_string(&path).unwrap().contains(r#""legs":3"#)).await;
    assert_eq!(store.cell("pets", "fido", "legs"), Some(Cell::from(3)));
    persister.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_saves_are_not_taken_for_changes_but_other_writes_are() {
    use cairn_store::Persist;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("own.json");
    let store = Store::new();
    let (persister, _) = persister(&store, &path);
    for i in 0..5 {
        store.set_value("n", i);
        persister.save().await.unwrap();
        assert!(!persister.storage().has_changed().await.unwrap(), "save {i}");
    }
    replace(&path, r#"[{},{"n":"someone else"}]"#);
    assert!(persister.storage().has_changed().await.unwrap());
    assert!(!persister.storage().has_changed().await.unwrap(), "a change is reported once");
}
