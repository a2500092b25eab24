//! Listeners: who is told what after a transaction commits.
//!
//! Invariants:
//! - Listeners run after the commit, on the committing thread, with no lock of the store held;
//!   the registry's lock is held only to copy the matching listeners out.
//! - Each listener is called at most once per transaction for each id it matches (a listener
//!   with a wildcard id is called once per matching table, row, cell or value), with the net
//!   change: the content before the transaction and after it. A cell changed and changed back
//!   within one transaction is no change.
//! - Order: cell, row, table and tables listeners, then value and values listeners, then
//!   transaction listeners; among listeners of one kind, registration order.
//! - A write made by a listener opens a new transaction, whose listeners run (depth-first) before
//!   the write returns. After [`MAX_LISTENER_DEPTH`] nested levels on one thread, the store stops
//!   calling listeners for deeper transactions and logs a warning; their writes are kept.
//! - The crate's own hooks (persisters, which never write) are not listeners: each is called with
//!   every committed transaction, whatever the depth, while the store's write lock is still
//!   held, so hooks see transactions in commit order and nothing commits in between. A hook must
//!   be quick, must not touch the store and must not panic.
//! - A listener that panics does so after the commit: the panic reaches the writer, and the
//!   transaction's remaining listeners are not called.

use std::cell::Cell as StdCell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Store;
use crate::cell::Cell;
use crate::content::{Changes, Id};

/// How deep listeners may nest on one thread: a listener's write whose transaction is this many
/// levels below the first one still commits, but its listeners are not called.
pub const MAX_LISTENER_DEPTH: u32 = 16;

/// What one cell (or value) was before a transaction and is after it; `None` is absent.
#[derive(Debug, Clone, PartialEq)]
pub struct CellDiff {
    /// Before the transaction.
    pub old: Option<Cell>,
    /// After the transaction.
    pub new: Option<Cell>,
}

/// What one value was and is: the same as a cell's.
pub type ValueDiff = CellDiff;
/// The changed cells of one row: cell id to diff.
pub type RowDiff = BTreeMap<Id, CellDiff>;
/// The changed rows of one table: row id to the row's changed cells.
pub type TableDiff = BTreeMap<Id, RowDiff>;
/// The changed tables: table id to the table's changed rows.
pub type TablesDiff = BTreeMap<Id, TableDiff>;
/// The changed values: value id to diff.
pub type ValuesDiff = BTreeMap<Id, ValueDiff>;

/// Identifies a listener, to remove it with [`Store::del_listener`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(u64);

/// Who made a transaction, when it was not the application: a persister applying what it
/// loaded, so that its own auto-save does not write it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin(u64);

impl Origin {
    pub(crate) fn new() -> Origin {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Origin(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// What a committed transaction changed.
pub(crate) struct Committed {
    pub(crate) tables: TablesDiff,
    pub(crate) values: ValuesDiff,
    pub(crate) changes: Changes,
    pub(crate) origin: Option<Origin>,
}

type TablesFn = dyn Fn(&Store, &TablesDiff) + Send + Sync;
type TableFn = dyn Fn(&Store, &str, &TableDiff) + Send + Sync;
type RowFn = dyn Fn(&Store, &str, &str, &RowDiff) + Send + Sync;
type CellFn = dyn Fn(&Store, &str, &str, &str, &CellDiff) + Send + Sync;
type ValuesFn = dyn Fn(&Store, &ValuesDiff) + Send + Sync;
type ValueFn = dyn Fn(&Store, &str, &ValueDiff) + Send + Sync;
type TransactionFn = dyn Fn(&Store, &Changes) + Send + Sync;
pub(crate) type HookFn = dyn Fn(&Committed) + Send + Sync;

/// A registered listener; `None` ids are wildcards.
#[derive(Clone)]
pub(crate) enum Listener {
    Tables(Arc<TablesFn>),
    Table(Option<Id>, Arc<TableFn>),
    Row(Option<Id>, Option<Id>, Arc<RowFn>),
    Cell(Option<Id>, Option<Id>, Option<Id>, Arc<CellFn>),
    Values(Arc<ValuesFn>),
    Value(Option<Id>, Arc<ValueFn>),
    Transaction(Arc<TransactionFn>),
    /// The crate's own hook (persisters): told of every transaction as it commits, under the
    /// store's write lock (see [`Registry::hooks`]); never called by [`dispatch`].
    Hook(Arc<HookFn>),
}

#[derive(Default)]
pub(crate) struct Registry {
    next: u64,
    listeners: BTreeMap<u64, Listener>,
}

impl Registry {
    pub(crate) fn add(&mut self, listener: Listener) -> ListenerId {
        self.next += 1;
        self.listeners.insert(self.next, listener);
        ListenerId(self.next)
    }

    pub(crate) fn remove(&mut self, id: ListenerId) -> bool {
        self.listeners.remove(&id.0).is_some()
    }

    pub(crate) fn snapshot(&self) -> Vec<Listener> {
        self.listeners.values().cloned().collect()
    }

    /// The hooks, in registration order.
    pub(crate) fn hooks(listeners: &[Listener]) -> impl Iterator<Item = &HookFn> {
        listeners.iter().filter_map(|listener| match listener {
            Listener::Hook(hook) => Some(&**hook),
            _ => None,
        })
    }
}

thread_local! {
    /// How many transactions' listeners are running on this thread, nested.
    static DEPTH: StdCell<u32> = const { StdCell::new(0) };
}

/// Restores the depth when the listeners are done, even if one panics.
struct DepthGuard;

impl DepthGuard {
    fn enter() -> Option<DepthGuard> {
        let depth = DEPTH.with(StdCell::get);
        if depth >= MAX_LISTENER_DEPTH {
            return None;
        }
        DEPTH.with(|d| d.set(depth + 1));
        Some(DepthGuard)
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

fn matches(filter: &Option<Id>, id: &str) -> bool {
    filter.as_deref().is_none_or(|f| f == id)
}

/// Calls the listeners of a committed transaction. No lock of the store may be held.
pub(crate) fn dispatch(store: &Store, listeners: Vec<Listener>, committed: &Committed) {
    let Some(_depth) = DepthGuard::enter() else {
        tracing::warn!(
            max_depth = MAX_LISTENER_DEPTH,
            "store listeners nested too deeply (a listener keeps writing): this transaction's listeners are skipped"
        );
        return;
    };
    let tables = &committed.tables;
    for (table_id, rows) in tables {
        for (row_id, cells) in rows {
            for (cell_id, diff) in cells {
                for listener in &listeners {
                    if let Listener::Cell(t, r, c, f) = listener
                        && matches(t, table_id)
                        && matches(r, row_id)
                        && matches(c, cell_id)
                    {
                        f(store, table_id, row_id, cell_id, diff);
                    }
                }
            }
            for listener in &listeners {
                if let Listener::Row(t, r, f) = listener
                    && matches(t, table_id)
                    && matches(r, row_id)
                {
                    f(store, table_id, row_id, cells);
                }
            }
        }
        for listener in &listeners {
            if let Listener::Table(t, f) = listener
                && matches(t, table_id)
            {
                f(store, table_id, rows);
            }
        }
    }
    if !tables.is_empty() {
        for listener in &listeners {
            if let Listener::Tables(f) = listener {
                f(store, tables);
            }
        }
    }
    let values = &committed.values;
    for (value_id, diff) in values {
        for listener in &listeners {
            if let Listener::Value(v, f) = listener
                && matches(v, value_id)
            {
                f(store, value_id, diff);
            }
        }
    }
    if !values.is_empty() {
        for listener in &listeners {
            if let Listener::Values(f) = listener {
                f(store, values);
            }
        }
    }
    for listener in &listeners {
        if let Listener::Transaction(f) = listener {
            f(store, &committed.changes);
        }
    }
}
