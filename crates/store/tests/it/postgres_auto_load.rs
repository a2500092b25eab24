//! Auto-load from PostgreSQL: changes other connections commit load through `LISTEN`/`NOTIFY`
//! (the default) or through polling; the persister's own saves are not taken for changes; a
//! change committed while a save waits merges with it.

use std::time::Duration;

use cairn_store::{
    Cell, ChangeDetection, DatabaseConfig, Persister, PersisterOptions, PostgresPersister, Store, TableLoad, TableSave,
    TabularConfig,
};

use crate::postgres_support::{Statements, TestDb};
use crate::{POLL, eventually, eventually_async};

type Errors = std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>;

/// Store table `pets` <-> SQL table `animals`, row ids in `name`.
fn mapping() -> TabularConfig {
    TabularConfig::new()
        .load_table("animals", TableLoad::new("pets").row_id_column("name"))
        .save_table("pets", TableSave::new("animals").row_id_column("name"))
}

/// A persister in `detection` mode. In notify mode it polls once an hour: only notifications
/// can make it load in a test.
async fn persister(db: &TestDb, store: &Store, detection: ChangeDetection) -> (PostgresPersister, Statements, Errors) {
    let (storage, statements) = db.storage(DatabaseConfig::tabular(mapping())).await;
    let storage = storage.change_detection(detection);
    let errors: Errors = Errors::default();
    let log = errors.clone();
    let poll = match detection {
        ChangeDetection::Notify => Duration::from_secs(3600),
        ChangeDetection::Poll => POLL,
    };
    let options =
        PersisterOptions::new().poll_interval(poll).on_ignored_error(move |e| log.lock().unwrap().push(e.code()));
    (Persister::new(store, storage, options).unwrap(), statements, errors)
}

const PETS: &str = r#"[{"pets":{"fido":{"species":"dog","legs":4}}},{}]"#;

async fn follows_plain_sql_from_another_connection(detection: ChangeDetection) {
    let db = TestDb::new().await;
    let store = Store::new();
    store.set_json(PETS).unwrap();
    let (persister, _, errors) = persister(&db, &store, detection).await;
    // The table does not exist yet: auto-save's first save creates it (with its trigger).
    persister.start_auto_persisting(None).await.unwrap();
    assert_eq!(db.dump("animals", "name").await, [r#"fido: legs=4,species="dog""#]);

    db.other.execute(r#"INSERT INTO animals(name, species) VALUES('felix', '"cat"')"#, &[]).await.unwrap();
    eventually("the inserted row to load", || store.has_row("pets", "felix")).await;
    db.other.execute(r#"UPDATE animals SET species = 'wolf' WHERE name = 'fido'"#, &[]).await.unwrap();
    eventually("the update (a plain string) to load", || {
        store.cell("pets", "fido", "species") == Some(Cell::from("wolf"))
    })
    .await;
    db.other.execute(r#"DELETE FROM animals WHERE name = 'felix'"#, &[]).await.unwrap();
    eventually("the deletion to load", || !store.has_row("pets", "felix")).await;
    db.other
        .batch_execute(r#"BEGIN; TRUNCATE animals; INSERT INTO animals(name, legs) VALUES('solo', '1'); COMMIT"#)
        .await
        .unwrap();
    eventually("the truncation to load", || !store.has_row("pets", "fido")).await;
    assert_eq!(store.json(), r#"[{"pets":{"solo":{"legs":1}}},{}]"#);

    // The persister's own save loads nothing: after it, one change of another connection is one load.
    store.set_cell("pets", "rex", "legs", 3);
    eventually_async("the save", || async { db.dump("animals", "name").await == ["rex: legs=3", "solo: legs=1"] })
        .await;
    let loads = persister.stats().loads;
    db.other.execute(r#"INSERT INTO animals(name, legs) VALUES('tom', '4')"#, &[]).await.unwrap();
    eventually("the insert to load", || store.has_row("pets", "tom")).await;
    assert_eq!(persister.stats().loads, loads + 1, "one load, for the other connection's insert");
    assert_eq!(store.json(), r#"[{"pets":{"rex":{"legs":3},"solo":{"legs":1},"tom":{"legs":4}}},{}]"#);

    let saves = persister.stats().saves;
    persister.stop_auto_persisting().await.unwrap();
    assert_eq!(persister.stats().saves, saves, "loads are not written back");
    assert!(errors.lock().unwrap().is_empty(), "{:?}", errors.lock().unwrap());
    persister.destroy().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_load_what_other_connections_commit() {
    follows_plain_sql_from_another_connection(ChangeDetection::Notify).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_loads_what_other_connections_commit() {
    follows_plain_sql_from_another_connection(ChangeDetection::Poll).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_mode_installs_its_trigger_idempotently_and_listens_on_the_tables_channel() {
    let db = TestDb::new().await;
    db.other.batch_execute("CREATE TABLE animals(name text PRIMARY KEY, species text)").await.unwrap();
    let store = Store::new();
    let (first, statements, _) = persister(&db, &store, ChangeDetection::Notify).await;
    let copy = Store::new();
    let (second, _, _) = persister(&db, &copy, ChangeDetection::Notify).await;
    first.start_auto_load(None).await.unwrap();
    second.start_auto_load(None).await.unwrap();
    let triggers = db
        .other
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'animals'::regclass AND tgname = 'cairn_store_notify'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(triggers.get::<_, i64>(0), 1);
    let log = statements.lock().unwrap().clone();
    let listen = log.iter().find(|(sql, _)| sql.starts_with("LISTEN")).expect("a LISTEN").0.clone();
    assert!(listen.starts_with(r#"LISTEN "cairn_store_animals_"#), "{listen}");
    assert!(log.iter().any(|(sql, _)| sql.starts_with(r#"CREATE OR REPLACE TRIGGER "cairn_store_notify""#)));

    db.other.execute(r#"INSERT INTO animals VALUES('fido', 'dog')"#, &[]).await.unwrap();
    eventually("both persisters to load", || store.has_row("pets", "fido") && copy.has_row("pets", "fido")).await;

    // Stopping auto-load stops listening.
    first.stop_auto_load().await.unwrap();
    assert!(statements.lock().unwrap().iter().any(|(sql, _)| sql == "UNLISTEN *"));
    first.destroy().await;
    second.destroy().await;
    db.finish().await;
}

/// Another connection updates a row and holds its lock while the persister's save of the same
/// row waits; once it commits, the save goes on (only the changed cell is written) and the
/// other connection's cell loads: both changes end up in the table and in the store.
async fn a_change_committed_during_a_save_merges(detection: ChangeDetection) {
    let db = TestDb::new().await;
    let store = Store::new();
    store.set_json(PETS).unwrap();
    let (persister, statements, errors) = persister(&db, &store, detection).await;
    persister.start_auto_persisting(None).await.unwrap();
    assert!(errors.lock().unwrap().is_empty(), "{:?}", errors.lock().unwrap());

    let locker = db.connect().await;
    let locker_pid: i32 = locker.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    locker.batch_execute(r#"BEGIN; UPDATE animals SET legs = '5' WHERE name = 'fido'"#).await.unwrap();
    store.set_cell("pets", "fido", "species", "wolf");
    eventually_async("the save to wait for the row lock", || async {
        let row = db
            .other
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", &[&locker_pid])
            .await
            .unwrap();
        row.get::<_, i64>(0) > 0
    })
    .await;
    locker.batch_execute("COMMIT").await.unwrap();

    eventually_async("both changes in the table", || async {
        db.dump("animals", "name").await == [r#"fido: legs=5,species="wolf""#]
    })
    .await;
    eventually("both changes in the store", || {
        store.cell("pets", "fido", "legs") == Some(Cell::from(5))
            && store.cell("pets", "fido", "species") == Some(Cell::from("wolf"))
    })
    .await;
    assert!(errors.lock().unwrap().is_empty(), "a retried save reports nothing: {:?}", errors.lock().unwrap());
    if detection == ChangeDetection::Poll {
        // REPEATABLE READ: the waiting upsert failed to serialize, and the save was tried again.
        assert!(statements.lock().unwrap().iter().any(|(sql, _)| sql == "ROLLBACK"));
    }
    persister.destroy().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_committed_during_a_save_merges_with_notifications() {
    a_change_committed_during_a_save_merges(ChangeDetection::Notify).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_committed_during_a_save_merges_with_polling() {
    a_change_committed_during_a_save_merges(ChangeDetection::Poll).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_does_not_take_the_persisters_own_saves_for_changes() {
    let db = TestDb::new().await;
    let store = Store::new();
    store.set_json(PETS).unwrap();
    let (persister, statements, _) = persister(&db, &store, ChangeDetection::Poll).await;
    persister.start_auto_persisting(None).await.unwrap();
    let loads = persister.stats().loads;
    for legs in 5..8 {
        store.set_cell("pets", "fido", "legs", legs);
        let row = format!(r#"fido: legs={legs},species="dog""#);
        eventually_async("the save", || async { db.dump("animals", "name").await == [row.as_str()] }).await;
    }
    // Several polls after the last save.
    let polls =
        |s: &Statements| s.lock().unwrap().iter().filter(|(sql, _)| sql.starts_with("SELECT concat_ws")).count();
    let after = polls(&statements);
    eventually("six more polls", || polls(&statements) >= after + 6).await;
    assert_eq!(persister.stats().loads, loads, "no poll took a save for a change");
    persister.destroy().await;
    db.finish().await;
}
