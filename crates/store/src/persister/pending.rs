//! What an auto-saving persister has yet to write: the net changes of the store's transactions
//! since its last save or load, merged as each transaction commits (see the invariants in
//! `mod.rs`).
//!
//! Each touched cell and value is kept with its content when the pending changes began and its
//! content now, and each touched row and table with whether it exists now, so that the changes
//! handed to a back end are exactly [`Changes::between`] the store as it was then and as it is
//! now, without either copy: a cell changed and changed back is no change, a row or table that
//! no longer exists is deleted (`None`, so a back end also deletes what it holds there and the
//! store never had), and a row deleted then set again lists its new cells plus its old ones as
//! deleted (a back end that upserts cells keeps none of the old row's cells).
//!
//! Merging runs on the writer's thread under the store's lock, for every transaction, so it is
//! kept cheap: hash maps (a sorted map of many rows costs several cache misses per lookup),
//! each id allocated once. Sorting into [`Changes`] happens when a save takes them.

use std::collections::{BTreeMap, HashMap};

use crate::cell::Cell;
use crate::content::{Changes, Id, RowChanges, TableChanges, ValuesChanges};
use crate::store::{CellDiff, Committed};

/// A cell's or value's content when the pending changes began, and now; `None` is absent.
#[derive(Debug)]
struct Span {
    first: Option<Cell>,
    now: Option<Cell>,
}

impl Span {
    fn changed(&self) -> bool {
        self.first != self.now
    }
}

type Spans = HashMap<Id, Span>;

#[derive(Debug, Default)]
struct PendingRow {
    exists: bool,
    cells: Spans,
}

#[derive(Debug, Default)]
struct PendingTable {
    exists: bool,
    rows: HashMap<Id, PendingRow>,
}

/// The merged net changes of the transactions committed since the last save or load.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    tables: HashMap<Id, PendingTable>,
    values: Spans,
}

/// Runs `f` on the entry for `id`, inserted if absent (the id is copied only then).
fn with_slot<T: Default>(map: &mut HashMap<Id, T>, id: &str, f: impl FnOnce(&mut T)) {
    match map.get_mut(id) {
        Some(entry) => f(entry),
        None => {
            let mut entry = T::default();
            f(&mut entry);
            map.insert(id.to_owned(), entry);
        }
    }
}

/// Later wins: the first content stays, the latest replaces `now`.
fn record(spans: &mut Spans, id: &str, diff: &CellDiff) {
    match spans.get_mut(id) {
        Some(span) => span.now.clone_from(&diff.new),
        None => {
            spans.insert(id.to_owned(), Span { first: diff.old.clone(), now: diff.new.clone() });
        }
    }
}

fn net(spans: Spans) -> BTreeMap<Id, Option<Cell>> {
    spans.into_iter().filter(|(_, span)| span.changed()).map(|(id, span)| (id, span.now)).collect()
}

impl Pending {
    /// Adds a committed transaction's changes. Its `changes` say which of the rows and tables it
    /// touched still exist.
    pub(crate) fn merge(&mut self, committed: &Committed) {
        for (table_id, rows) in &committed.tables {
            let now = committed.changes.tables.get(table_id).and_then(Option::as_ref);
            with_slot(&mut self.tables, table_id, |table| {
                table.exists = now.is_some();
                for (row_id, cells) in rows {
                    with_slot(&mut table.rows, row_id, |row| {
                        row.exists = now.is_some_and(|rows| matches!(rows.get(row_id), Some(Some(_))));
                        for (cell_id, diff) in cells {
                            record(&mut row.cells, cell_id, diff);
                        }
                    });
                }
            });
        }
        for (value_id, diff) in &committed.values {
            record(&mut self.values, value_id, diff);
        }
    }

    /// Forgets everything: the storage now holds the store as it is.
    pub(crate) fn clear(&mut self) {
        *self = Pending::default();
    }

    /// Whether anything differs from when the pending changes began.
    pub(crate) fn has_changes(&self) -> bool {
        self.values.values().any(Span::changed)
            || self.tables.values().flat_map(|t| t.rows.values()).any(|row| row.cells.values().any(Span::changed))
    }

    /// The net changes, sorted: what [`Changes::between`] the store when they began and now
    /// gives.
    pub(crate) fn into_changes(self) -> Changes {
        let mut tables = BTreeMap::new();
        for (table_id, table) in self.tables {
            let mut rows = TableChanges::new();
            for (row_id, row) in table.rows {
                let cells: RowChanges = net(row.cells);
                if !cells.is_empty() {
                    rows.insert(row_id, row.exists.then_some(cells));
                }
            }
            if !rows.is_empty() {
                tables.insert(table_id, table.exists.then_some(rows));
            }
        }
        let values: ValuesChanges = net(self.values);
        Changes { tables, values }
    }
}

#[cfg(test)]
mod tests;
