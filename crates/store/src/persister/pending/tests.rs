//! The pending changes against [`Changes::between`]: a few cases by hand, then random
//! transaction sequences (fixed seed, bounded) in which every "save" must take exactly
//! `Changes::between(store at the previous save or load, store now)`, and applying what it
//! took to the old content must give the new.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use super::Pending;
use crate::cell::Cell;
use crate::content::{Changes, Content, Row, Table, TableChanges};
use crate::schema::TablesSchema;
use crate::store::{Origin, Store, Transaction};

/// A store whose every transaction not made by `origin` merges into the returned pending.
fn watched() -> (Store, Arc<Mutex<Pending>>, Origin) {
    let store = Store::new();
    let pending = Arc::new(Mutex::new(Pending::default()));
    let origin = Origin::new();
    let merged = pending.clone();
    store.add_hook(move |committed| {
        if committed.origin != Some(origin) {
            merged.lock().unwrap().merge(committed);
        }
    });
    (store, pending, origin)
}

fn take(pending: &Mutex<Pending>) -> Changes {
    std::mem::take(&mut *pending.lock().unwrap()).into_changes()
}

fn content(json: &str) -> Content {
    Content::from_json(json).unwrap()
}

fn json(changes: &Changes) -> String {
    changes.to_json().replace(crate::content::DELETED, "D")
}

#[test]
fn a_row_deleted_then_set_again_lists_its_old_cells_as_deleted() {
    let (store, pending, _) = watched();
    store.set_content(content(r#"[{"pets":{"fido":{"legs":4,"species":"dog"},"rex":{"legs":4}}},{}]"#));
    let old = store.content();
    take(&pending);
    store.del_row("pets", "fido");
    store.set_row("pets", "fido", [("legs", 3)]);
    let changes = take(&pending);
    assert_eq!(json(&changes), r#"[{"pets":{"fido":{"legs":3,"species":"D"}}},{},1]"#);
    assert_eq!(changes, Changes::between(&old, &store.content()));
}

#[test]
fn a_table_deleted_then_set_again_deletes_the_rows_that_are_gone() {
    let (store, pending, _) = watched();
    store.set_content(content(r#"[{"pets":{"fido":{"legs":4},"rex":{"legs":4}}},{}]"#));
    let old = store.content();
    take(&pending);
    store.del_table("pets");
    store.set_cell("pets", "felix", "legs", 4);
    store.set_cell("pets", "rex", "legs", 3);
    let changes = take(&pending);
    assert_eq!(json(&changes), r#"[{"pets":{"felix":{"legs":4},"fido":"D","rex":{"legs":3}}},{},1]"#);
    assert_eq!(changes, Changes::between(&old, &store.content()));
}

#[test]
fn a_deleted_table_is_deleted_whole_and_what_changed_back_is_no_change() {
    let (store, pending, _) = watched();
    store.set_content(content(r#"[{"pets":{"fido":{"legs":4}},"toys":{"ball":{"n":1}}},{"open":true}]"#));
    take(&pending);
    store.del_table("pets");
    store.set_cell("toys", "ball", "n", 2);
    store.set_cell("toys", "ball", "n", 1);
    store.set_row("toys", "kite", [("n", 1)]);
    store.del_row("toys", "kite");
    store.set_value("open", false);
    store.set_value("open", true);
    assert!(pending.lock().unwrap().has_changes());
    assert_eq!(json(&take(&pending)), r#"[{"pets":"D"},{},1]"#);

    store.set_value("open", false);
    store.set_value("open", true);
    assert!(!pending.lock().unwrap().has_changes());
    assert!(take(&pending).is_empty());
}

/// A cheap deterministic random stream (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick(&mut self, ids: &[&str]) -> String {
        ids[self.below(ids.len())].to_owned()
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn table_id(&mut self) -> String {
        self.pick(&["t0", "t1", "t2"])
    }

    fn row_id(&mut self) -> String {
        self.pick(&["r0", "r1", "r2", "r3"])
    }

    fn cell_id(&mut self) -> String {
        self.pick(&["c0", "c1", "c2"])
    }

    fn value_id(&mut self) -> String {
        self.pick(&["v0", "v1", "v2"])
    }

    /// Few distinct cells, so that writes often set what is already there.
    fn cell(&mut self) -> Cell {
        match self.below(7) {
            0 => Cell::from(0),
            1 => Cell::from(1),
            2 => Cell::from("a"),
            3 => Cell::from("b"),
            4 => Cell::from(true),
            5 => Cell::from(false),
            _ => Cell::Null,
        }
    }

    fn row(&mut self) -> Row {
        (0..1 + self.below(3)).map(|_| (self.cell_id(), self.cell())).collect()
    }

    fn table(&mut self) -> Table {
        (0..1 + self.below(3)).map(|_| (self.row_id(), self.row())).collect()
    }

    fn content(&mut self) -> Content {
        let mut content = Content::default();
        for _ in 0..self.below(3) {
            content.tables.insert(self.table_id(), self.table());
        }
        for _ in 0..self.below(3) {
            content.values.insert(self.value_id(), self.cell());
        }
        content
    }

    fn changes(&mut self) -> Changes {
        let mut changes = Changes::default();
        for _ in 0..1 + self.below(3) {
            let table = (!self.chance(20)).then(|| {
                let mut rows = TableChanges::new();
                for _ in 0..1 + self.below(2) {
                    let row = (!self.chance(25)).then(|| {
                        (0..1 + self.below(2))
                            .map(|_| (self.cell_id(), (!self.chance(30)).then(|| self.cell())))
                            .collect()
                    });
                    rows.insert(self.row_id(), row);
                }
                rows
            });
            changes.tables.insert(self.table_id(), table);
        }
        changes
    }

    /// A schema over two of the three tables (the third goes), with a default.
    fn schema(&mut self) -> TablesSchema {
        let schema = if self.chance(50) {
            r#"{"t0":{"c0":{"type":"number","default":0},"c1":{"type":"string"}},"t1":{"c2":{"type":"boolean"}}}"#
        } else {
            r#"{"t1":{"c0":{"type":"string","default":"a"},"c2":{"type":"number"}},"t2":{"c1":{"type":"boolean"}}}"#
        };
        serde_json::from_str(schema).unwrap()
    }

    /// One random write.
    fn write(&mut self, tx: &mut Transaction<'_>) {
        let (t, r, c) = (self.table_id(), self.row_id(), self.cell_id());
        match self.below(17) {
            0 | 1 => tx.set_cell(&t, &r, &c, self.cell()),
            2 => tx.set_row(&t, &r, self.row()),
            3 => tx.set_partial_row(&t, &r, self.row()),
            4 => tx.set_table(&t, self.table()),
            5 => tx.del_cell(&t, &r, &c),
            6 => tx.force_del_cell(&t, &r, &c),
            7 => tx.del_row(&t, &r),
            8 => tx.del_table(&t),
            9 => tx.del_tables(),
            10 => tx.set_value(&self.value_id(), self.cell()),
            11 => tx.del_value(&self.value_id()),
            12 => tx.set_values(self.content().values),
            13 => tx.del_values(),
            14 => tx.set_content(self.content()),
            15 => tx.apply_changes(self.changes()),
            _ => {
                let schema = if self.chance(30) { TablesSchema::new() } else { self.schema() };
                tx.set_tables_schema(schema).unwrap();
            }
        }
    }
}

#[test]
fn what_accumulates_is_what_changed_between_saves_over_random_transactions() {
    let mut rng = Rng(0xCA1_4E57);
    let (mut saves, mut loads) = (0, 0);
    for sequence in 0..300 {
        let (store, pending, origin) = watched();
        store.set_content(rng.content());
        let mut old = store.content();
        take(&pending);
        for step in 0..40 {
            let roll = rng.below(100);
            if roll < 65 {
                store.transaction(|tx| {
                    for _ in 0..1 + rng.below(3) {
                        rng.write(tx);
                    }
                });
            } else if roll < 90 {
                let has_changes = pending.lock().unwrap().has_changes();
                let changes = take(&pending);
                let now = store.content();
                assert_eq!(has_changes, !changes.is_empty(), "sequence {sequence}, step {step}");
                assert_eq!(changes, Changes::between(&old, &now), "sequence {sequence}, step {step}");
                let mut applied = old.clone();
                applied.apply_changes(&changes);
                assert_eq!(applied, now, "sequence {sequence}, step {step}");
                old = now;
                saves += 1;
            } else {
                // A load, as the persister applies it: the pending changes go in the same transaction.
                let loaded = rng.content();
                store.transaction_with_origin(origin, |tx| {
                    tx.set_content(loaded);
                    pending.lock().unwrap().clear();
                });
                old = store.content();
                loads += 1;
            }
        }
    }
    assert!(saves > 2_000 && loads > 500, "saves {saves}, loads {loads}");
}
