//! [`Store`]: tables of rows of cells plus key-values, with schemas, transactions and listeners.
//!
//! Invariants (beyond those of the data, in `state.rs`):
//! - A `Store` is a handle: clones share one store. Its data sits behind one `RwLock`; every
//!   write is a transaction that holds the write lock until it commits, so a transaction is
//!   atomic for other threads and listeners see committed data only.
//! - Listeners run after the lock is released (see `listeners.rs`), so they may read the store
//!   and write to it. The crate's hooks (persisters) run just before it is released, so they
//!   see every transaction in commit order.
//! - Calling a `Store` method from inside [`Store::transaction`]'s closure on the same store would
//!   deadlock; it panics instead, naming the mistake. Use the [`Transaction`] given to the closure.
//! - If the closure panics, the transaction's changes are undone and no listener is called.

mod listeners;
mod state;
mod transaction;

use std::cell::RefCell;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

pub use listeners::{CellDiff, ListenerId, MAX_LISTENER_DEPTH, RowDiff, TableDiff, TablesDiff, ValueDiff, ValuesDiff};
pub(crate) use listeners::{Committed, Origin};
pub use transaction::Transaction;

use listeners::{Listener, Registry};
use state::State;
use transaction::row_of;

use crate::cell::Cell;
use crate::content::{Changes, Content, Id, Row, Table, Tables, Values};
use crate::error::Error;
use crate::schema::{TablesSchema, ValuesSchema};

/// A reactive in-memory store: TinyBase's `Store` for Rust.
///
/// Tables of rows of cells, plus values; typed cells ([`Cell`]); optional schemas with defaults;
/// transactions; listeners called once per transaction with what changed. Invalid writes are
/// ignored, as TinyBase ignores them: a number that is not finite, a cell the schema does not
/// have or of the wrong type (replaced by its default if there is one), an empty row.
///
/// A `Store` is a cheap handle (`Clone`, `Send`, `Sync`); clones share the same store.
///
/// ```
/// use cairn_store::{Cell, Store};
/// use std::sync::{Arc, Mutex};
///
/// let store = Store::new();
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = seen.clone();
/// store.add_cell_listener(Some("pets"), None, None, move |_store, _table, row, cell, diff| {
///     log.lock().unwrap().push(format!("{row}.{cell}: {:?} -> {:?}", diff.old, diff.new));
/// });
///
/// store.transaction(|tx| {
///     tx.set_row("pets", "fido", [("species", Cell::from("dog")), ("legs", Cell::from(4))]);
///     tx.set_cell("pets", "fido", "legs", 3);
/// });
/// assert_eq!(store.cell("pets", "fido", "legs"), Some(Cell::Number(3.0)));
/// assert_eq!(store.json(), r#"[{"pets":{"fido":{"legs":3,"species":"dog"}}},{}]"#);
/// // One call per changed cell, once per transaction, with the net change.
/// assert_eq!(*seen.lock().unwrap(), [
///     r#"fido.legs: None -> Some(Number(3.0))"#,
///     r#"fido.species: None -> Some(String("dog"))"#,
/// ]);
/// ```
#[derive(Clone, Default)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: RwLock<State>,
    listeners: Mutex<Registry>,
}

const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Store>();
};

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

thread_local! {
    /// The stores whose lock this thread holds (by address), to refuse re-entry.
    static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks a store's lock as held by this thread while it lives.
struct Held(usize);

impl Held {
    fn enter(store: &Store) -> Held {
        let addr = Arc::as_ptr(&store.inner) as usize;
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            assert!(
                !held.contains(&addr),
                "a Store method was called inside Store::transaction on the same store: \
                 use the Transaction given to the closure"
            );
            held.push(addr);
        });
        Held(addr)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(i) = held.iter().rposition(|a| *a == self.0) {
                held.remove(i);
            }
        });
    }
}

impl Store {
    /// An empty store without schemas.
    pub fn new() -> Store {
        Store::default()
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        let _held = Held::enter(self);
        let state = self.inner.state.read().unwrap_or_else(PoisonError::into_inner);
        f(&state)
    }

    /// Runs `f` as one transaction: its writes are applied together, and listeners are called
    /// once, after it commits, with the net changes. If `f` panics its writes are undone.
    ///
    /// ```
    /// # use cairn_store::Store;
    /// let store = Store::new();
    /// let legs = store.transaction(|tx| {
    ///     tx.set_cell("pets", "fido", "legs", 4);
    ///     tx.cell("pets", "fido", "legs")
    /// });
    /// assert_eq!(legs, Some(4.into()));
    /// ```
    pub fn transaction<R>(&self, f: impl FnOnce(&mut Transaction<'_>) -> R) -> R {
        self.run_transaction(None, f)
    }

    /// A transaction made on behalf of `origin` (a persister applying a load).
    pub(crate) fn transaction_with_origin<R>(&self, origin: Origin, f: impl FnOnce(&mut Transaction<'_>) -> R) -> R {
        self.run_transaction(Some(origin), f)
    }

    fn run_transaction<R>(&self, origin: Option<Origin>, f: impl FnOnce(&mut Transaction<'_>) -> R) -> R {
        let (result, committed) = {
            let held = Held::enter(self);
            let mut state = self.inner.state.write().unwrap_or_else(PoisonError::into_inner);
            match catch_unwind(AssertUnwindSafe(|| f(&mut Transaction::new(&mut state)))) {
                Ok(result) => {
                    let committed = state.commit(origin);
                    // Hooks see the commit before any other transaction can start.
                    let listeners = committed.as_ref().map(|committed| {
                        let listeners = self.inner.listeners.lock().unwrap_or_else(PoisonError::into_inner).snapshot();
                        for hook in Registry::hooks(&listeners) {
                            hook(committed);
                        }
                        listeners
                    });
                    (result, committed.zip(listeners))
                }
                Err(panic) => {
                    state.rollback();
                    drop(state);
                    drop(held);
                    resume_unwind(panic);
                }
            }
        };
        if let Some((committed, listeners)) = committed {
            listeners::dispatch(self, listeners, &committed);
        }
        result
    }

    // --- Reads.

    /// Everything: tables and values.
    pub fn content(&self) -> Content {
        self.read(State::content)
    }

    /// Runs `f` under the store's lock, then, if it returns `true`, copies the content under
    /// the same lock: no transaction commits between the two.
    pub(crate) fn content_if(&self, f: impl FnOnce() -> bool) -> Option<Content> {
        self.read(|state| f().then(|| state.content()))
    }

    /// The content in TinyBase's JSON shape, `[tables, values]`.
    pub fn json(&self) -> String {
        self.content().to_json()
    }

    /// All tables.
    pub fn tables(&self) -> Tables {
        self.read(|s| s.tables().clone())
    }

    /// The ids of the tables, sorted.
    pub fn table_ids(&self) -> Vec<Id> {
        self.read(|s| s.tables().keys().cloned().collect())
    }

    /// A table (empty if absent).
    pub fn table(&self, table_id: &str) -> Table {
        self.read(|s| s.table(table_id).cloned().unwrap_or_default())
    }

    /// The number of rows of a table.
    pub fn row_count(&self, table_id: &str) -> usize {
        self.read(|s| s.table(table_id).map_or(0, |t| t.len()))
    }

    /// The ids of a table's rows, sorted.
    pub fn row_ids(&self, table_id: &str) -> Vec<Id> {
        self.read(|s| s.table(table_id).map(|t| t.keys().cloned().collect()).unwrap_or_default())
    }

    /// A row (empty if absent).
    pub fn row(&self, table_id: &str, row_id: &str) -> Row {
        self.read(|s| s.row(table_id, row_id).cloned().unwrap_or_default())
    }

    /// The ids of a row's cells, sorted.
    pub fn cell_ids(&self, table_id: &str, row_id: &str) -> Vec<Id> {
        self.read(|s| s.row(table_id, row_id).map(|r| r.keys().cloned().collect()).unwrap_or_default())
    }

    /// A cell, if present.
    pub fn cell(&self, table_id: &str, row_id: &str, cell_id: &str) -> Option<Cell> {
        self.read(|s| s.cell(table_id, row_id, cell_id).cloned())
    }

    /// All values.
    pub fn values(&self) -> Values {
        self.read(|s| s.values().clone())
    }

    /// The ids of the values, sorted.
    pub fn value_ids(&self) -> Vec<Id> {
        self.read(|s| s.values().keys().cloned().collect())
    }

    /// A value, if present.
    pub fn value(&self, value_id: &str) -> Option<Cell> {
        self.read(|s| s.values().get(value_id).cloned())
    }

    /// Whether there is any table.
    pub fn has_tables(&self) -> bool {
        self.read(|s| !s.tables().is_empty())
    }

    /// Whether the table exists (has a row).
    pub fn has_table(&self, table_id: &str) -> bool {
        self.read(|s| s.table(table_id).is_some())
    }

    /// Whether the row exists (has a cell).
    pub fn has_row(&self, table_id: &str, row_id: &str) -> bool {
        self.read(|s| s.row(table_id, row_id).is_some())
    }

    /// Whether the cell exists.
    pub fn has_cell(&self, table_id: &str, row_id: &str, cell_id: &str) -> bool {
        self.read(|s| s.cell(table_id, row_id, cell_id).is_some())
    }

    /// Whether there is any value.
    pub fn has_values(&self) -> bool {
        self.read(|s| !s.values().is_empty())
    }

    /// Whether the value exists.
    pub fn has_value(&self, value_id: &str) -> bool {
        self.read(|s| s.values().contains_key(value_id))
    }

    /// The tables schema, if one is set.
    pub fn tables_schema(&self) -> Option<TablesSchema> {
        self.read(|s| s.tables_schema().cloned())
    }

    /// The values schema, if one is set.
    pub fn values_schema(&self) -> Option<ValuesSchema> {
        self.read(|s| s.values_schema().cloned())
    }

    // --- Writes: each is one transaction.

    /// Replaces everything. Empty tables (values) delete all tables (values); otherwise the
    /// tables (values) are replaced as by [`Store::set_tables`] ([`Store::set_values`]).
    pub fn set_content(&self, content: Content) {
        self.transaction(|tx| tx.set_content(content));
    }

    /// Parses TinyBase's JSON shape `[tables, values]` and sets it as [`Store::set_content`]
    /// does. On an error the store is untouched.
    pub fn set_json(&self, json: &str) -> Result<(), Error> {
        let content = Content::from_json(json)?;
        self.set_content(content);
        Ok(())
    }

    /// Replaces all tables. Ignored if nothing valid is left of `tables`.
    pub fn set_tables(&self, tables: Tables) {
        self.transaction(|tx| tx.set_tables(tables));
    }

    /// Replaces a table. Ignored if nothing valid is left of `table`.
    pub fn set_table(&self, table_id: &str, table: Table) {
        self.transaction(|tx| tx.set_table(table_id, table));
    }

    /// Replaces a row, with the schema's defaults added. Ignored if no valid cell is left.
    pub fn set_row<K: Into<Id>, V: Into<Cell>>(
        &self,
        table_id: &str,
        row_id: &str,
        cells: impl IntoIterator<Item = (K, V)>,
    ) {
        let row = row_of(cells);
        self.transaction(|tx| tx.state().set_row(table_id, row_id, row));
    }

    /// Sets some cells of a row, leaving the others (a new row gets the schema's defaults).
    pub fn set_partial_row<K: Into<Id>, V: Into<Cell>>(
        &self,
        table_id: &str,
        row_id: &str,
        cells: impl IntoIterator<Item = (K, V)>,
    ) {
        let row = row_of(cells);
        self.transaction(|tx| tx.state().set_partial_row(table_id, row_id, row));
    }

    /// Sets a cell (a new row gets the schema's defaults). An invalid cell is replaced by its
    /// default if the schema has one, else ignored.
    pub fn set_cell(&self, table_id: &str, row_id: &str, cell_id: &str, cell: impl Into<Cell>) {
        let cell = cell.into();
        self.transaction(|tx| tx.set_cell(table_id, row_id, cell_id, cell));
    }

    /// Replaces all values, with the schema's defaults added. Ignored if none is valid.
    pub fn set_values<K: Into<Id>, V: Into<Cell>>(&self, values: impl IntoIterator<Item = (K, V)>) {
        let values = row_of(values);
        self.transaction(|tx| tx.state().set_values(values));
    }

    /// Sets some values, leaving the others.
    pub fn set_partial_values<K: Into<Id>, V: Into<Cell>>(&self, values: impl IntoIterator<Item = (K, V)>) {
        let values = row_of(values);
        self.transaction(|tx| tx.state().set_partial_values(values));
    }

    /// Sets a value. An invalid value is replaced by its default if the schema has one.
    pub fn set_value(&self, value_id: &str, value: impl Into<Cell>) {
        let value = value.into();
        self.transaction(|tx| tx.set_value(value_id, value));
    }

    /// Deletes all tables.
    pub fn del_tables(&self) {
        self.transaction(|tx| tx.del_tables());
    }

    /// Deletes a table.
    pub fn del_table(&self, table_id: &str) {
        self.transaction(|tx| tx.del_table(table_id));
    }

    /// Deletes a row.
    pub fn del_row(&self, table_id: &str, row_id: &str) {
        self.transaction(|tx| tx.del_row(table_id, row_id));
    }

    /// Deletes a cell; the row goes with its last cell, the table with its last row. A cell
    /// with a default in the schema is reset to the default instead.
    pub fn del_cell(&self, table_id: &str, row_id: &str, cell_id: &str) {
        self.transaction(|tx| tx.del_cell(table_id, row_id, cell_id));
    }

    /// Deletes a cell even if it has a default, which deletes its whole row (TinyBase's
    /// `delCell` with `forceDel`).
    pub fn force_del_cell(&self, table_id: &str, row_id: &str, cell_id: &str) {
        self.transaction(|tx| tx.force_del_cell(table_id, row_id, cell_id));
    }

    /// Deletes all values (those with a default are reset to it).
    pub fn del_values(&self) {
        self.transaction(|tx| tx.del_values());
    }

    /// Deletes a value (reset to its default if it has one).
    pub fn del_value(&self, value_id: &str) {
        self.transaction(|tx| tx.del_value(value_id));
    }

    /// Applies changes in TinyBase's shape: `None` deletes, anything else is set (and
    /// validated).
    pub fn apply_changes(&self, changes: Changes) {
        self.transaction(|tx| tx.apply_changes(changes));
    }

    /// Sets the tables schema and re-validates the tables in one transaction. An empty schema
    /// removes it. An invalid schema is refused and nothing changes.
    pub fn set_tables_schema(&self, schema: TablesSchema) -> Result<(), Error> {
        self.transaction(|tx| tx.set_tables_schema(schema))
    }

    /// Sets the values schema and re-validates the values (adding defaults) in one transaction.
    /// An empty schema removes it. An invalid schema is refused and nothing changes.
    pub fn set_values_schema(&self, schema: ValuesSchema) -> Result<(), Error> {
        self.transaction(|tx| tx.set_values_schema(schema))
    }

    /// Removes the tables schema (the data stays as it is).
    pub fn del_tables_schema(&self) {
        self.transaction(|tx| tx.state().del_tables_schema());
    }

    /// Removes the values schema (the data stays as it is).
    pub fn del_values_schema(&self) {
        self.transaction(|tx| tx.state().del_values_schema());
    }

    // --- Listeners.

    fn add_listener(&self, listener: Listener) -> ListenerId {
        self.inner.listeners.lock().unwrap_or_else(PoisonError::into_inner).add(listener)
    }

    /// Removes a listener; `false` if it was not registered. A listener removed while a
    /// transaction's listeners run may still be called for that transaction.
    pub fn del_listener(&self, id: ListenerId) -> bool {
        self.inner.listeners.lock().unwrap_or_else(PoisonError::into_inner).remove(id)
    }

    /// Calls `f` after each transaction that changed any cell, with every changed cell.
    pub fn add_tables_listener(&self, f: impl Fn(&Store, &TablesDiff) + Send + Sync + 'static) -> ListenerId {
        self.add_listener(Listener::Tables(Arc::new(f)))
    }

    /// Calls `f` after each transaction that changed the table (`None`: any table; then once per
    /// changed table) with the table id and its changed cells.
    pub fn add_table_listener(
        &self,
        table_id: Option<&str>,
        f: impl Fn(&Store, &str, &TableDiff) + Send + Sync + 'static,
    ) -> ListenerId {
        self.add_listener(Listener::Table(table_id.map(str::to_owned), Arc::new(f)))
    }

    /// Calls `f` after each transaction that changed the row (`None` ids are wildcards; then
    /// once per changed row) with the ids and the row's changed cells.
    pub fn add_row_listener(
        &self,
        table_id: Option<&str>,
        row_id: Option<&str>,
        f: impl Fn(&Store, &str, &str, &RowDiff) + Send + Sync + 'static,
    ) -> ListenerId {
        self.add_listener(Listener::Row(table_id.map(str::to_owned), row_id.map(str::to_owned), Arc::new(f)))
    }

    /// Calls `f` after each transaction that changed the cell (`None` ids are wildcards; then
    /// once per changed cell) with the ids and the cell's old and new content.
    pub fn add_cell_listener(
        &self,
        table_id: Option<&str>,
        row_id: Option<&str>,
        cell_id: Option<&str>,
        f: impl Fn(&Store, &str, &str, &str, &CellDiff) + Send + Sync + 'static,
    ) -> ListenerId {
        let (t, r, c) = (table_id.map(str::to_owned), row_id.map(str::to_owned), cell_id.map(str::to_owned));
        self.add_listener(Listener::Cell(t, r, c, Arc::new(f)))
    }

    /// Calls `f` after each transaction that changed any value, with every changed value.
    pub fn add_values_listener(&self, f: impl Fn(&Store, &ValuesDiff) + Send + Sync + 'static) -> ListenerId {
        self.add_listener(Listener::Values(Arc::new(f)))
    }

    /// Calls `f` after each transaction that changed the value (`None`: any value; then once per
    /// changed value) with its id and old and new content.
    pub fn add_value_listener(
        &self,
        value_id: Option<&str>,
        f: impl Fn(&Store, &str, &ValueDiff) + Send + Sync + 'static,
    ) -> ListenerId {
        self.add_listener(Listener::Value(value_id.map(str::to_owned), Arc::new(f)))
    }

    /// Calls `f` after each transaction that changed anything, with the net changes in
    /// TinyBase's shape (TinyBase's `addDidFinishTransactionListener` with
    /// `getTransactionChanges`).
    pub fn add_transaction_listener(&self, f: impl Fn(&Store, &Changes) + Send + Sync + 'static) -> ListenerId {
        self.add_listener(Listener::Transaction(Arc::new(f)))
    }

    /// The crate's hook: told of every transaction that changed anything, whatever the listener
    /// depth, as it commits, under the store's write lock (see `listeners.rs`).
    pub(crate) fn add_hook(&self, f: impl Fn(&Committed) + Send + Sync + 'static) -> ListenerId {
        self.add_listener(Listener::Hook(Arc::new(f)))
    }
}
