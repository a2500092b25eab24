//! The persister's own rules, on an in-memory back end the tests control: saves and loads that
//! can be held open or fail, changes made "by someone else", writing changes or only whole
//! content. Also shows how small a back end is.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cairn_store::{Cell, Changes, Content, Error, Persist, Persister, PersisterOptions, Store};
use tokio::sync::Semaphore;

use crate::{content, eventually, options};

/// Storage in memory. While `hold` is set, a save waits for a permit of `release` after it has
/// started (and counted itself in `started`); loads likewise with `hold_loads`, `release_loads`
/// and `loads_started`. It writes changes alone unless `whole_only` is set.
struct Shared {
    stored: Mutex<Option<Content>>,
    /// Each save, in order: `None` for whole content, else the changes.
    saves: Mutex<Vec<Option<Changes>>>,
    started: AtomicUsize,
    hold: AtomicBool,
    release: Semaphore,
    loads_started: AtomicUsize,
    hold_loads: AtomicBool,
    release_loads: Semaphore,
    changed_by_others: AtomicBool,
    fail_loads: AtomicBool,
    fail_saves: AtomicBool,
    whole_only: AtomicBool,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            stored: Mutex::default(),
            saves: Mutex::default(),
            started: AtomicUsize::default(),
            hold: AtomicBool::default(),
            release: Semaphore::new(0),
            loads_started: AtomicUsize::default(),
            hold_loads: AtomicBool::default(),
            release_loads: Semaphore::new(0),
            changed_by_others: AtomicBool::default(),
            fail_loads: AtomicBool::default(),
            fail_saves: AtomicBool::default(),
            whole_only: AtomicBool::default(),
        }
    }
}

#[derive(Clone, Default)]
struct Memory(Arc<Shared>);

impl Memory {
    fn stored(&self) -> Option<Content> {
        self.0.stored.lock().unwrap().clone()
    }

    /// Someone else writes the storage.
    fn write_as_someone_else(&self, content: Content) {
        *self.0.stored.lock().unwrap() = Some(content);
        self.0.changed_by_others.store(true, Ordering::SeqCst);
    }

    fn saves(&self) -> Vec<Option<Changes>> {
        self.0.saves.lock().unwrap().clone()
    }

    /// What every save does first: count itself, wait while held, fail if told to.
    async fn start_save(&self) -> Result<(), Error> {
        self.0.started.fetch_add(1, Ordering::SeqCst);
        if self.0.hold.load(Ordering::SeqCst) {
            self.0.release.acquire().await.unwrap().forget();
        }
        if self.0.fail_saves.load(Ordering::SeqCst) {
            return Err(Error::Backend("the disk is full".into()));
        }
        Ok(())
    }
}

impl Persist for Memory {
    async fn get_content(&self) -> Result<Option<Content>, Error> {
        self.0.loads_started.fetch_add(1, Ordering::SeqCst);
        if self.0.hold_loads.load(Ordering::SeqCst) {
            self.0.release_loads.acquire().await.unwrap().forget();
        }
        if self.0.fail_loads.load(Ordering::SeqCst) {
            return Err(Error::Backend("the disk is on fire".into()));
        }
        Ok(self.stored())
    }

    async fn set_content(&self, content: &Content) -> Result<(), Error> {
        self.start_save().await?;
        *self.0.stored.lock().unwrap() = Some(content.clone());
        self.0.saves.lock().unwrap().push(None);
        Ok(())
    }

    fn writes_changes(&self) -> bool {
        !self.0.whole_only.load(Ordering::SeqCst)
    }

    async fn set_changes(&self, changes: &Changes) -> Result<(), Error> {
        self.start_save().await?;
        self.0.stored.lock().unwrap().get_or_insert_default().apply_changes(changes);
        self.0.saves.lock().unwrap().push(Some(changes.clone()));
        Ok(())
    }

    async fn has_changed(&self) -> Result<bool, Error> {
        Ok(self.0.changed_by_others.swap(false, Ordering::SeqCst))
    }
}

fn new_persister(store: &Store) -> (Persister<Memory>, Memory, Arc<Mutex<Vec<&'static str>>>) {
    let memory = Memory::default();
    let (options, errors) = options();
    (Persister::new(store, memory.clone(), options).unwrap(), memory, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_during_a_save_are_written_by_one_following_save_of_only_those() {
    let store = Store::new();
    let (persister, memory, errors) = new_persister(&store);
    store.set_row("pets", "fido", [("legs", 4)]);
    persister.start_auto_save().await.unwrap();
    assert_eq!(memory.saves(), [None], "auto-save starts with a whole save");

    memory.0.hold.store(true, Ordering::SeqCst);
    store.set_cell("pets", "fido", "legs", 3);
    eventually("the second save to start", || memory.0.started.load(Ordering::SeqCst) == 2).await;
    // While it is held open:
    store.set_cell("pets", "felix", "legs", 4);
    store.del_cell("pets", "fido", "legs");
    store.set_value("open", true);
    memory.0.hold.store(false, Ordering::SeqCst);
    memory.0.release.add_permits(1);

    eventually("the store to be saved", || memory.stored() == Some(store.content())).await;
    persister.stop_auto_save().await.unwrap();
    let saves = memory.saves();
    assert_eq!(saves.len(), 3, "three changes during the save made one more save: {saves:?}");
    assert_eq!(saves[1].as_ref().unwrap().to_json(), r#"[{"pets":{"fido":{"legs":3}}},{},1]"#);
    let last = saves[2].as_ref().unwrap().to_json().replace(cairn_store::DELETED, "D");
    assert_eq!(last, r#"[{"pets":{"felix":{"legs":4},"fido":"D"}},{"open":true},1]"#);
    assert_eq!(persister.stats().saves, 3);
    assert!(errors.lock().unwrap().is_empty());

    store.set_value("open", false);
    persister.save().await.unwrap();
    assert_eq!(memory.saves().last(), Some(&None), "an explicit save writes everything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_and_tables_deleted_and_set_again_between_saves_are_saved_as_their_difference() {
    let store = Store::new();
    let (persister, memory, errors) = new_persister(&store);
    store.set_row("pets", "fido", [("legs", Cell::from(4)), ("species", Cell::from("dog"))]);
    store.set_row("pets", "rex", [("legs", 4)]);
    store.set_row("toys", "ball", [("n", 1)]);
    store.set_row("toys", "kite", [("n", 2)]);
    persister.start_auto_save().await.unwrap();

    memory.0.hold.store(true, Ordering::SeqCst);
    store.set_value("open", true);
    eventually("the second save to start", || memory.0.started.load(Ordering::SeqCst) == 2).await;
    // While it is held open: a row goes and comes back with fewer cells, a table goes and comes
    // back with one row.
    store.del_row("pets", "fido");
    store.set_row("pets", "fido", [("legs", 3)]);
    store.del_table("toys");
    store.set_cell("toys", "kite", "n", 5);
    memory.0.hold.store(false, Ordering::SeqCst);
    memory.0.release.add_permits(1);

    eventually("the store to be saved", || memory.stored() == Some(store.content())).await;
    persister.stop_auto_save().await.unwrap();
    let saves = memory.saves();
    assert_eq!(saves.len(), 3, "{saves:?}");
    let last = saves[2].as_ref().unwrap().to_json().replace(cairn_store::DELETED, "D");
    assert_eq!(last, r#"[{"pets":{"fido":{"legs":3,"species":"D"}},"toys":{"ball":"D","kite":{"n":5}}},{},1]"#);
    assert!(errors.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_end_of_whole_content_gets_it_for_each_save_that_changes_something() {
    let store = Store::new();
    let (persister, memory, errors) = new_persister(&store);
    memory.0.whole_only.store(true, Ordering::SeqCst);
    store.set_value("open", true);
    persister.start_auto_save().await.unwrap();

    memory.0.hold.store(true, Ordering::SeqCst);
    store.set_value("employees", 3);
    eventually("the second save to start", || memory.0.started.load(Ordering::SeqCst) == 2).await;
    // While it is held open: a change and its undoing, no net change.
    store.set_value("open", false);
    store.set_value("open", true);
    memory.0.hold.store(false, Ordering::SeqCst);
    memory.0.release.add_permits(1);
    eventually("the second save", || persister.stats().saves == 2).await;
    persister.stop_auto_save().await.unwrap();

    assert_eq!(memory.saves(), [None, None], "whole content each time, and no save of no change");
    assert_eq!(memory.stored(), Some(store.content()));
    assert!(errors.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_save_makes_the_next_one_whole() {
    let store = Store::new();
    let (persister, memory, errors) = new_persister(&store);
    persister.start_auto_save().await.unwrap();
    memory.0.fail_saves.store(true, Ordering::SeqCst);
    store.set_value("a", 1);
    eventually("the save to fail", || !errors.lock().unwrap().is_empty()).await;
    assert_eq!(*errors.lock().unwrap(), ["store.backend"]);

    memory.0.fail_saves.store(false, Ordering::SeqCst);
    store.set_value("b", 2);
    eventually("the store to be saved", || memory.stored() == Some(store.content())).await;
    store.set_value("c", 3);
    eventually("the store to be saved", || memory.stored() == Some(store.content())).await;
    persister.stop_auto_save().await.unwrap();
    let saves = memory.saves();
    assert_eq!(saves.len(), 3, "{saves:?}");
    assert_eq!(saves[1], None, "the save after the failure is whole");
    assert_eq!(saves[2].as_ref().unwrap().to_json(), r#"[{},{"c":3},1]"#, "the next one writes changes again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_a_load_overwrites_is_not_saved_after_it() {
    let store = Store::new();
    let (persister, memory, errors) = new_persister(&store);
    persister.start_auto_save().await.unwrap();
    let stored = r#"[{"pets":{"fido":{"legs":4}}},{}]"#;
    memory.write_as_someone_else(content(stored));
    memory.0.hold_loads.store(true, Ordering::SeqCst);
    let change_during_the_load = async {
        eventually("the load to start", || memory.0.loads_started.load(Ordering::SeqCst) == 1).await;
        // Made while the load reads the storage: the load overwrites it (the race TinyBase has).
        store.set_cell("pets", "fido", "legs", 3);
        store.set_value("open", true);
        memory.0.hold_loads.store(false, Ordering::SeqCst);
        memory.0.release_loads.add_permits(1);
    };
    let (loaded, ()) = tokio::join!(persister.load(None), change_during_the_load);
    loaded.unwrap();
    persister.stop_auto_save().await.unwrap();

    assert_eq!(store.json(), stored);
    assert_eq!(memory.saves(), [None], "nothing was saved after the load");
    assert_eq!(memory.stored(), Some(store.content()));
    assert!(errors.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_store_rejected_or_defaulted_of_a_load_is_not_saved_by_the_next_auto_save() {
    let store = Store::new();
    let schema = r#"{"pets":{"legs":{"type":"number","default":4},"name":{"type":"string"}}}"#;
    store.set_tables_schema(serde_json::from_str(schema).unwrap()).unwrap();
    let (persister, memory, errors) = new_persister(&store);
    persister.start_auto_save().await.unwrap();
    // `color` and `toys` are not in the schema; `legs` gets its default.
    memory.write_as_someone_else(content(
        r#"[{"pets":{"fido":{"color":"brown","name":"Fido"}},"toys":{"ball":{"n":1}}},{}]"#,
    ));
    persister.load(None).await.unwrap();
    assert_eq!(store.json(), r#"[{"pets":{"fido":{"legs":4,"name":"Fido"}}},{}]"#);

    store.set_cell("pets", "fido", "name", "Rex");
    let expected = content(r#"[{"pets":{"fido":{"color":"brown","name":"Rex"}},"toys":{"ball":{"n":1}}},{}]"#);
    eventually("the change to be saved", || memory.stored() == Some(expected.clone())).await;
    persister.stop_auto_save().await.unwrap();
    let saves = memory.saves();
    assert_eq!(saves.last().unwrap().as_ref().unwrap().to_json(), r#"[{"pets":{"fido":{"name":"Rex"}}},{},1]"#);
    assert!(errors.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_load_applies_is_not_written_back() {
    let store = Store::new();
    let schema =
        serde_json::from_str(r#"{"pets":{"legs":{"type":"number","default":4},"sold":{"type":"boolean"}}}"#).unwrap();
    store.set_tables_schema(schema).unwrap();
    let (persister, memory, errors) = new_persister(&store);
    memory.write_as_someone_else(content(r#"[{"pets":{"fido":{"sold":1}}},{}]"#));
    persister.start_auto_persisting(None).await.unwrap();
    // Loaded with the schema applied (0/1 as booleans, defaults added), then saved once by
    // start_auto_save.
    assert_eq!(store.json(), r#"[{"pets":{"fido":{"legs":4,"sold":true}}},{}]"#);
    assert_eq!(persister.stats().saves, 1);

    memory.write_as_someone_else(content(r#"[{"pets":{"rex":{"sold":0}}},{}]"#));
    eventually("the change to be loaded", || store.has_row("pets", "rex")).await;
    // Stopping auto-save would run a pending save: there is none.
    persister.stop_auto_persisting().await.unwrap();
    assert_eq!(persister.stats().saves, 1, "the load was not written back");
    assert_eq!(memory.stored(), Some(content(r#"[{"pets":{"rex":{"sold":0}}},{}]"#)));
    assert!(persister.stats().loads >= 2);
    assert!(errors.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_by_one_persister_is_saved_by_another() {
    let store = Store::new();
    let (from, source, _) = new_persister(&store);
    let (to, target, _) = new_persister(&store);
    to.start_auto_save().await.unwrap();
    source.write_as_someone_else(content(r#"[{"pets":{"fido":{"legs":4}}},{}]"#));
    from.load(None).await.unwrap();
    eventually("the other persister to save the load", || target.stored() == Some(store.content())).await;
    assert_eq!(from.stats().saves, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_load_leaves_the_store_and_is_reported() {
    let store = Store::new();
    store.set_value("open", true);
    let (persister, memory, errors) = new_persister(&store);
    memory.0.fail_loads.store(true, Ordering::SeqCst);
    let error = persister.load(Some(content(r#"[{},{"open":false}]"#))).await.unwrap_err();
    assert_eq!(error.code(), "store.backend");
    assert_eq!(error.to_string(), "storage back end failed: the disk is on fire");
    assert_eq!(store.value("open"), Some(Cell::Bool(true)));
    assert_eq!(*errors.lock().unwrap(), ["store.backend"]);

    // start_auto_load reports it too, and keeps polling.
    persister.start_auto_load(None).await.unwrap();
    assert!(persister.is_auto_loading());
    assert_eq!(errors.lock().unwrap().len(), 2);
    memory.0.fail_loads.store(false, Ordering::SeqCst);
    memory.write_as_someone_else(content(r#"[{},{"open":false}]"#));
    eventually("the next change to load", || store.value("open") == Some(Cell::Bool(false))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_content_applies_only_to_empty_storage() {
    let store = Store::new();
    let (persister, memory, _) = new_persister(&store);
    persister.load(Some(content(r#"[{},{"open":true}]"#))).await.unwrap();
    assert_eq!(store.value("open"), Some(Cell::Bool(true)));
    assert_eq!(memory.stored(), None, "loading does not save");
    memory.write_as_someone_else(content(r#"[{},{"employees":3}]"#));
    persister.load(Some(content(r#"[{},{"open":true}]"#))).await.unwrap();
    assert_eq!(store.json(), r#"[{},{"employees":3}]"#);
    persister.load(None).await.unwrap();
    assert_eq!(persister.stats().loads, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroyed_persister_stops_and_refuses_work() {
    let store = Store::new();
    let (persister, memory, _) = new_persister(&store);
    persister.start_auto_persisting(None).await.unwrap();
    assert!(persister.is_auto_loading() && persister.is_auto_saving());
    persister.destroy().await;
    assert!(!persister.is_auto_loading() && !persister.is_auto_saving());
    assert_eq!(persister.save().await.unwrap_err().code(), "store.destroyed");
    assert_eq!(persister.start_auto_save().await.unwrap_err().code(), "store.destroyed");
    let saves = memory.saves().len();
    store.set_value("open", true);
    persister.destroy().await; // twice is fine
    assert_eq!(memory.saves().len(), saves, "no save after destroy");
}

#[test]
fn a_persister_needs_a_tokio_runtime() {
    let error = Persister::new(&Store::new(), Memory::default(), PersisterOptions::new()).unwrap_err();
    assert_eq!(error.code(), "store.no_runtime");
}

/// A back end that is told of changes (as a database's notifications tell): it records the
/// framework's calls, and the test plays the other writer and the notification.
#[derive(Clone, Default)]
struct Pushed {
    calls: Arc<Mutex<Vec<&'static str>>>,
    stored: Arc<Mutex<Option<Content>>>,
    signal: Arc<tokio::sync::Notify>,
}

impl Persist for Pushed {
    async fn get_content(&self) -> Result<Option<Content>, Error> {
        self.calls.lock().unwrap().push("load");
        Ok(self.stored.lock().unwrap().clone())
    }

    async fn set_content(&self, content: &Content) -> Result<(), Error> {
        self.calls.lock().unwrap().push("save");
        *self.stored.lock().unwrap() = Some(content.clone());
        Ok(())
    }

    fn change_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.signal.clone())
    }

    async fn set_watching(&self, watching: bool) -> Result<(), Error> {
        self.calls.lock().unwrap().push(if watching { "watch" } else { "unwatch" });
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_end_watches_only_while_auto_loading_and_its_signal_loads_at_once() {
    let storage = Pushed::default();
    let store = Store::new();
    // No poll would come in time: only the signal can load.
    let options = PersisterOptions::new().poll_interval(std::time::Duration::from_secs(3600));
    let persister = Persister::new(&store, storage.clone(), options).unwrap();
    persister.load(None).await.unwrap();
    assert_eq!(*storage.calls.lock().unwrap(), ["load"], "an explicit load does not watch");

    persister.start_auto_load(None).await.unwrap();
    assert_eq!(*storage.calls.lock().unwrap(), ["load", "watch", "load"], "watching starts before the first load");
    *storage.stored.lock().unwrap() = Some(content(r#"[{},{"n":1}]"#));
    storage.signal.notify_one();
    eventually("the signalled change to load", || store.value("n") == Some(Cell::from(1))).await;

    persister.stop_auto_load().await.unwrap();
    persister.start_auto_load(None).await.unwrap();
    persister.destroy().await;
    assert_eq!(
        *storage.calls.lock().unwrap(),
        ["load", "watch", "load", "load", "unwatch", "watch", "load", "unwatch"]
    );
}
