//! Reads, writes, transactions and listeners.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use cairn_store::{Cell, CellDiff, Changes, MAX_LISTENER_DEPTH, Store};

type Log = Arc<Mutex<Vec<String>>>;

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

fn pets() -> Store {
    let store = Store::new();
    store.set_row("pets", "fido", [("species", Cell::from("dog")), ("legs", Cell::from(4))]);
    store.set_row("pets", "felix", [("species", "cat")]);
    store.set_value("open", true);
    store
}

#[test]
fn reads_see_what_writes_set() {
    let store = pets();
    assert_eq!(store.table_ids(), ["pets"]);
    assert_eq!(store.row_ids("pets"), ["felix", "fido"]);
    assert_eq!(store.row_count("pets"), 2);
    assert_eq!(store.cell_ids("pets", "fido"), ["legs", "species"]);
    assert_eq!(store.cell("pets", "fido", "legs"), Some(Cell::Number(4.0)));
    assert_eq!(store.row("pets", "felix")["species"], Cell::from("cat"));
    assert_eq!(store.value("open"), Some(Cell::Bool(true)));
    assert_eq!(store.value_ids(), ["open"]);
    assert!(store.has_tables() && store.has_table("pets") && store.has_row("pets", "fido"));
    assert!(store.has_cell("pets", "fido", "legs") && !store.has_cell("pets", "fido", "tail"));
    assert!(store.has_values() && store.has_value("open") && !store.has_value("closed"));
    assert!(store.table("nothing").is_empty() && store.row("pets", "nobody").is_empty());

    store.set_partial_row("pets", "fido", [("color", "brown")]);
    assert_eq!(store.cell_ids("pets", "fido"), ["color", "legs", "species"]);
    store.set_row("pets", "fido", [("species", "wolf")]);
    assert_eq!(store.cell_ids("pets", "fido"), ["species"]);
    store.set_partial_values([("employees", 3)]);
    assert_eq!(store.value_ids(), ["employees", "open"]);
    store.set_values([("employees", 4)]);
    assert_eq!(store.value_ids(), ["employees"]);
    store.del_value("employees");
    assert!(!store.has_values());
}

#[test]
fn empty_rows_and_tables_are_removed_and_invalid_writes_ignored() {
    let store = pets();
    store.del_cell("pets", "felix", "species");
    assert!(!store.has_row("pets", "felix"), "a row goes with its last cell");
    store.del_row("pets", "fido");
    assert!(!store.has_table("pets"), "a table goes with its last row");

    store.set_cell("pets", "rex", "legs", f64::NAN);
    store.set_cell("pets", "rex", "legs", f64::INFINITY);
    store.set_row("pets", "rex", Vec::<(String, Cell)>::new());
    store.set_table("pets", Default::default());
    store.set_value("ratio", f64::NAN);
    assert!(!store.has_tables(), "no number that is not finite, no empty row or table");
    assert!(!store.has_value("ratio"));

    store.set_row("pets", "rex", [("legs", Cell::from(f64::NAN)), ("name", Cell::from("Rex"))]);
    assert_eq!(store.cell_ids("pets", "rex"), ["name"], "invalid cells of a row are left out");
    store.set_cell("pets", "rex", "owner", Cell::Null);
    assert_eq!(store.cell("pets", "rex", "owner"), Some(Cell::Null), "null is a cell without a schema");
}

#[test]
fn listeners_are_called_once_per_transaction_with_the_net_change() {
    let store = pets();
    let calls = log();
    let c = calls.clone();
    store.add_cell_listener(None, None, None, move |_, t, r, cell, diff| {
        c.lock().unwrap().push(format!("cell {t}/{r}/{cell} {:?}->{:?}", diff.old, diff.new));
    });
    let c = calls.clone();
    store.add_row_listener(None, None, move |_, t, r, cells| {
        c.lock().unwrap().push(format!("row {t}/{r} {}", cells.len()))
    });
    let c = calls.clone();
    store.add_table_listener(Some("pets"), move |_, t, rows| {
        c.lock().unwrap().push(format!("table {t} {}", rows.len()))
    });
    let c = calls.clone();
    store.add_tables_listener(move |_, tables| c.lock().unwrap().push(format!("tables {}", tables.len())));
    let c = calls.clone();
    store.add_value_listener(None, move |_, v, diff| {
        c.lock().unwrap().push(format!("value {v} {:?}->{:?}", diff.old, diff.new))
    });
    let c = calls.clone();
    store.add_values_listener(move |_, values| c.lock().unwrap().push(format!("values {}", values.len())));

    store.transaction(|tx| {
        tx.set_cell("pets", "fido", "legs", 5);
        tx.set_cell("pets", "fido", "legs", 3);
        tx.set_cell("pets", "felix", "legs", 4);
        tx.set_cell("pets", "felix", "species", "lion");
        tx.set_cell("pets", "felix", "species", "cat"); // changed back: no change
        tx.set_value("open", false);
        tx.del_value("open");
        tx.set_value("open", false);
    });
    assert_eq!(
        take(&calls),
        [
            "cell pets/felix/legs None->Some(Number(4.0))",
            "row pets/felix 1",
            "cell pets/fido/legs Some(Number(4.0))->Some(Number(3.0))",
            "row pets/fido 1",
            "table pets 2",
            "tables 1",
            "value open Some(Bool(true))->Some(Bool(false))",
            "values 1",
        ]
    );

    store.transaction(|tx| {
        tx.set_cell("pets", "fido", "legs", 9);
        tx.set_cell("pets", "fido", "legs", 3);
    });
    assert!(take(&calls).is_empty(), "a transaction with no net change calls no listener");
    store.set_cell("pets", "fido", "legs", 3);
    assert!(take(&calls).is_empty(), "writing the same content is no change");
}

#[test]
fn listener_ids_filter_and_wildcards_match_any() {
    let store = pets();
    let calls = log();
    let c = calls.clone();
    store.add_cell_listener(Some("pets"), Some("fido"), None, move |_, _, r, cell, _| {
        c.lock().unwrap().push(format!("{r}.{cell}"))
    });
    let c = calls.clone();
    store.add_cell_listener(None, None, Some("species"), move |_, _, r, cell, _| {
        c.lock().unwrap().push(format!("any {r}.{cell}"))
    });
    let c = calls.clone();
    let id = store
        .add_row_listener(Some("pets"), Some("felix"), move |_, _, r, _| c.lock().unwrap().push(format!("row {r}")));

    store.set_row("pets", "fido", [("species", "wolf")]);
    store.set_cell("pets", "felix", "legs", 4);
    store.set_cell("zoo", "leo", "species", "lion");
    assert_eq!(take(&calls), ["fido.legs", "fido.species", "any fido.species", "row felix", "any leo.species"]);

    assert!(store.del_listener(id));
    assert!(!store.del_listener(id));
    store.set_cell("pets", "felix", "legs", 3);
    assert!(take(&calls).is_empty());
}

#[test]
fn deletions_reach_listeners_as_none_and_changes_as_tinybase_shapes() {
    let store = pets();
    let changes: Arc<Mutex<Vec<Changes>>> = Arc::new(Mutex::new(Vec::new()));
    let c = changes.clone();
    store.add_transaction_listener(move |_, ch| c.lock().unwrap().push(ch.clone()));
    let diffs = Arc::new(Mutex::new(Vec::new()));
    let d = diffs.clone();
    store.add_cell_listener(None, None, Some("species"), move |_, _, r, _, diff| {
        d.lock().unwrap().push((r.to_owned(), diff.clone()))
    });

    store.del_row("pets", "felix");
    store.del_table("pets");
    store.del_cell("pets", "nobody", "species"); // nothing to delete: no transaction listener call
    let changes = std::mem::take(&mut *changes.lock().unwrap());
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0].to_json(), r#"[{"pets":{"felix":"DEL"}},{},1]"#.replace("DEL", cairn_store::DELETED));
    assert_eq!(changes[1].to_json(), r#"[{"pets":"DEL"},{},1]"#.replace("DEL", cairn_store::DELETED));
    assert_eq!(
        *diffs.lock().unwrap(),
        [
            ("felix".to_owned(), CellDiff { old: Some("cat".into()), new: None }),
            ("fido".to_owned(), CellDiff { old: Some("dog".into()), new: None }),
        ]
    );
}

#[test]
fn listeners_may_read_and_write_the_store() {
    let store = pets();
    store.add_cell_listener(Some("pets"), None, Some("legs"), |store, t, r, _, diff| {
        // The listener runs after the commit: it sees the new content, and may write.
        assert_eq!(store.cell(t, r, "legs"), diff.new);
        store.set_cell(t, r, "checked", true);
    });
    let checked = log();
    let c = checked.clone();
    store.add_cell_listener(None, None, Some("checked"), move |_, _, r, _, _| c.lock().unwrap().push(r.to_owned()));

    store.set_cell("pets", "felix", "legs", 4);
    assert_eq!(store.cell("pets", "felix", "checked"), Some(Cell::Bool(true)));
    assert_eq!(take(&checked), ["felix"], "the listener's write is a transaction with listeners of its own");
}

#[test]
fn a_listener_that_keeps_writing_is_bounded() {
    let store = Store::new();
    store.add_value_listener(Some("counter"), |store, _, diff| {
        let n = diff.new.as_ref().and_then(Cell::as_f64).unwrap_or(0.0);
        store.set_value("counter", n + 1.0);
    });
    store.set_value("counter", 0);
    assert_eq!(store.value("counter"), Some(Cell::from(MAX_LISTENER_DEPTH)));
    store.set_value("counter", 100);
    assert_eq!(store.value("counter"), Some(Cell::from(100 + MAX_LISTENER_DEPTH)), "the depth is per call chain");
}

#[test]
fn a_transaction_returns_its_closures_result_and_a_panic_undoes_it() {
    let store = pets();
    let calls = log();
    let c = calls.clone();
    store.add_tables_listener(move |_, _| c.lock().unwrap().push("tables".to_owned()));

    let legs = store.transaction(|tx| {
        tx.set_cell("pets", "fido", "legs", 3);
        tx.cell("pets", "fido", "legs")
    });
    assert_eq!(legs, Some(Cell::from(3)));
    take(&calls);

    let before = store.content();
    let result = catch_unwind(AssertUnwindSafe(|| {
        store.transaction(|tx| {
            tx.del_table("pets");
            tx.set_row("zoo", "leo", [("species", "lion")]);
            tx.del_values();
            panic!("boom");
        })
    }));
    assert!(result.is_err());
    assert_eq!(store.content(), before, "the panicking transaction is undone");
    assert!(take(&calls).is_empty());
    store.set_cell("pets", "fido", "legs", 2);
    assert_eq!(take(&calls), ["tables"], "the store works after a panic");
}

#[test]
fn using_the_store_inside_its_own_transaction_panics_instead_of_deadlocking() {
    let store = pets();
    let inner = store.clone();
    let result = catch_unwind(AssertUnwindSafe(|| store.transaction(|_| inner.cell("pets", "fido", "legs"))));
    let panic = result.unwrap_err();
    let message =
        panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
    assert!(message.unwrap().contains("use the Transaction given to the closure"));
    assert_eq!(store.cell("pets", "fido", "legs"), Some(Cell::from(4)));

    // Another store may be used inside a transaction.
    let other = Store::new();
    store.transaction(|tx| other.set_value("legs", tx.cell("pets", "fido", "legs").unwrap()));
    assert_eq!(other.value("legs"), Some(Cell::from(4)));
}

#[test]
fn transactions_are_atomic_across_threads() {
    let store = Store::new();
    let updates = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let u = updates.clone();
    store.add_cell_listener(Some("counters"), Some("c"), Some("n"), move |_, _, _, _, _| {
        u.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    store.transaction(|tx| {
                        let n = tx.cell("counters", "c", "n").and_then(|c| c.as_f64()).unwrap_or(0.0);
                        tx.set_cell("counters", "c", "n", n + 1.0);
                    });
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(store.cell("counters", "c", "n"), Some(Cell::from(400)));
    assert_eq!(updates.load(std::sync::atomic::Ordering::SeqCst), 400);
}
