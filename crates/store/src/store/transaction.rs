//! [`Transaction`]: the store as seen from inside [`Store::transaction`], with every read and
//! write of [`Store`]. Writes made through it are one transaction: listeners are told once, when
//! the closure returns.

use super::state::State;
use crate::cell::Cell;
use crate::content::{Changes, Content, Id, Row, Table, Tables, Values};
use crate::error::Error;
use crate::schema::{TablesSchema, ValuesSchema};

#[cfg(doc)]
use super::Store;

/// The store inside [`Store::transaction`]. Each method does what the [`Store`] method of the
/// same name does; the store's lock is held for the whole transaction, so other threads neither
/// see its changes before it commits nor write in the middle of it.
pub struct Transaction<'a> {
    state: &'a mut State,
}

/// Collects cells given as pairs.
pub(crate) fn row_of<K: Into<Id>, V: Into<Cell>>(cells: impl IntoIterator<Item = (K, V)>) -> Row {
    cells.into_iter().map(|(k, v)| (k.into(), v.into())).collect()
}

impl<'a> Transaction<'a> {
    pub(crate) fn new(state: &'a mut State) -> Self {
        Transaction { state }
    }

    pub(crate) fn state(&mut self) -> &mut State {
        self.state
    }

    /// See [`Store::content`].
    pub fn content(&self) -> Content {
        self.state.content()
    }

    /// See [`Store::tables`].
    pub fn tables(&self) -> Tables {
        self.state.tables().clone()
    }

    /// See [`Store::table_ids`].
    pub fn table_ids(&self) -> Vec<Id> {
        self.state.tables().keys().cloned().collect()
    }

    /// See [`Store::table`].
    pub fn table(&self, table_id: &str) -> Table {
        self.state.table(table_id).cloned().unwrap_or_default()
    }

    /// See [`Store::row_ids`].
    pub fn row_ids(&self, table_id: &str) -> Vec<Id> {
        self.state.table(table_id).map(|t| t.keys().cloned().collect()).unwrap_or_default()
    }

    /// See [`Store::row`].
    pub fn row(&self, table_id: &str, row_id: &str) -> Row {
        self.state.row(table_id, row_id).cloned().unwrap_or_default()
    }

    /// See [`Store::cell`].
    pub fn cell(&self, table_id: &str, row_id: &str, cell_id: &str) -> Option<Cell> {
        self.state.cell(table_id, row_id, cell_id).cloned()
    }

    /// See [`Store::values`].
    pub fn values(&self) -> Values {
        self.state.values().clone()
    }

    /// See [`Store::value`].
    pub fn value(&self, value_id: &str) -> Option<Cell> {
        self.state.values().get(value_id).cloned()
    }

    /// See [`Store::has_table`].
    pub fn has_table(&self, table_id: &str) -> bool {
        self.state.table(table_id).is_some()
    }

    /// See [`Store::has_row`].
    pub fn has_row(&self, table_id: &str, row_id: &str) -> bool {
        self.state.row(table_id, row_id).is_some()
    }

    /// See [`Store::has_cell`].
    pub fn has_cell(&self, table_id: &str, row_id: &str, cell_id: &str) -> bool {
        self.state.cell(table_id, row_id, cell_id).is_some()
    }

    /// See [`Store::has_value`].
    pub fn has_value(&self, value_id: &str) -> bool {
        self.state.values().contains_key(value_id)
    }

    /// See [`Store::set_content`].
    pub fn set_content(&mut self, content: Content) {
        self.state.set_content(content);
    }

    /// See [`Store::set_tables`].
    pub fn set_tables(&mut self, tables: Tables) {
        self.state.set_tables(tables);
    }

    /// See [`Store::set_table`].
    pub fn set_table(&mut self, table_id: &str, table: Table) {
        self.state.set_table(table_id, table);
    }

    /// See [`Store::set_row`].
    pub fn set_row<K: Into<Id>, V: Into<Cell>>(
        &mut self,
        table_id: &str,
        row_id: &str,
        cells: impl IntoIterator<Item = (K, V)>,
    ) {
        self.state.set_row(table_id, row_id, row_of(cells));
    }

    /// See [`Store::set_partial_row`].
    pub fn set_partial_row<K: Into<Id>, V: Into<Cell>>(
        &mut self,
        table_id: &str,
        row_id: &str,
        cells: impl IntoIterator<Item = (K, V)>,
    ) {
        self.state.set_partial_row(table_id, row_id, row_of(cells));
    }

    /// See [`Store::set_cell`].
    pub fn set_cell(&mut self, table_id: &str, row_id: &str, cell_id: &str, cell: impl Into<Cell>) {
        self.state.set_cell(table_id, row_id, cell_id, cell.into());
    }

    /// See [`Store::set_values`].
    pub fn set_values<K: Into<Id>, V: Into<Cell>>(&mut self, values: impl IntoIterator<Item = (K, V)>) {
        self.state.set_values(row_of(values));
    }

    /// See [`Store::set_partial_values`].
    pub fn set_partial_values<K: Into<Id>, V: Into<Cell>>(&mut self, values: impl IntoIterator<Item = (K, V)>) {
        self.state.set_partial_values(row_of(values));
    }

    /// See [`Store::set_value`].
    pub fn set_value(&mut self, value_id: &str, value: impl Into<Cell>) {
        self.state.set_value(value_id, value.into());
    }

    /// See [`Store::del_tables`].
    pub fn del_tables(&mut self) {
        self.state.del_tables();
    }

    /// See [`Store::del_table`].
    pub fn del_table(&mut self, table_id: &str) {
        self.state.del_table(table_id);
    }

    /// See [`Store::del_row`].
    pub fn del_row(&mut self, table_id: &str, row_id: &str) {
        self.state.del_row(table_id, row_id);
    }

    /// See [`Store::del_cell`].
    pub fn del_cell(&mut self, table_id: &str, row_id: &str, cell_id: &str) {
        self.state.del_cell(table_id, row_id, cell_id, false);
    }

    /// See [`Store::force_del_cell`].
    pub fn force_del_cell(&mut self, table_id: &str, row_id: &str, cell_id: &str) {
        self.state.del_cell(table_id, row_id, cell_id, true);
    }

    /// See [`Store::del_values`].
    pub fn del_values(&mut self) {
        self.state.del_values();
    }

    /// See [`Store::del_value`].
    pub fn del_value(&mut self, value_id: &str) {
        self.state.del_value(value_id);
    }

    /// See [`Store::apply_changes`].
    pub fn apply_changes(&mut self, changes: Changes) {
        self.state.apply_changes(changes);
    }

    /// See [`Store::set_tables_schema`].
    pub fn set_tables_schema(&mut self, schema: TablesSchema) -> Result<(), Error> {
        self.state.set_tables_schema(schema)
    }

    /// See [`Store::set_values_schema`].
    pub fn set_values_schema(&mut self, schema: ValuesSchema) -> Result<(), Error> {
        self.state.set_values_schema(schema)
    }
}
