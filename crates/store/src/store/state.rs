//! The data behind a store's lock and every write rule, after TinyBase's `store/index.ts`.
//!
//! Invariants:
//! - No empty row or table is ever held: removing a row's last cell removes the row, and a
//!   table's last row the table.
//! - Every number held is finite; with a schema, every cell and value conforms to it.
//! - Every change goes through [`State::put_cell`], [`State::remove_cell`], [`State::put_value`]
//!   or [`State::remove_value`], which record the first old and the latest new content of each
//!   cell and value in the transaction's log, so the log yields the net changes (and undoes a
//!   transaction whose closure panicked).

use std::collections::BTreeMap;

use super::listeners::{CellDiff, Committed, Origin, TablesDiff, ValuesDiff};
use crate::cell::Cell;
use crate::content::{Changes, Content, Id, Row, RowChanges, Table, TableChanges, Tables, Values};
use crate::error::Error;
use crate::schema::{TablesSchema, ValuesSchema, check_tables_schema, check_values_schema};

type OldNew = (Option<Cell>, Option<Cell>);

/// The first old and the latest new content of everything a transaction touched.
#[derive(Default)]
struct Log {
    cells: BTreeMap<Id, BTreeMap<Id, BTreeMap<Id, OldNew>>>,
    values: BTreeMap<Id, OldNew>,
}

#[derive(Default)]
pub(crate) struct State {
    tables: Tables,
    values: Values,
    tables_schema: Option<TablesSchema>,
    values_schema: Option<ValuesSchema>,
    log: Log,
}

fn log_change(slot: &mut BTreeMap<Id, OldNew>, id: &str, old: Option<Cell>, new: Option<Cell>) {
    match slot.get_mut(id) {
        Some(entry) => entry.1 = new,
        None => {
            slot.insert(id.to_owned(), (old, new));
        }
    }
}

impl State {
    // --- Reads.

    pub(crate) fn tables(&self) -> &Tables {
        &self.tables
    }

    pub(crate) fn values(&self) -> &Values {
        &self.values
    }

    pub(crate) fn table(&self, table_id: &str) -> Option<&Table> {
        self.tables.get(table_id)
    }

    pub(crate) fn row(&self, table_id: &str, row_id: &str) -> Option<&Row> {
        self.tables.get(table_id)?.get(row_id)
    }

    pub(crate) fn cell(&self, table_id: &str, row_id: &str, cell_id: &str) -> Option<&Cell> {
        self.row(table_id, row_id)?.get(cell_id)
    }

    pub(crate) fn content(&self) -> Content {
        Content { tables: self.tables.clone(), values: self.values.clone() }
    }

    pub(crate) fn tables_schema(&self) -> Option<&TablesSchema> {
        self.tables_schema.as_ref()
    }

    pub(crate) fn values_schema(&self) -> Option<&ValuesSchema> {
        self.values_schema.as_ref()
    }

    // --- The four primitive changes, the only places the data changes.

    fn put_cell(&mut self, table_id: &str, row_id: &str, cell_id: &str, cell: Cell) {
        let row = self.tables.entry(table_id.to_owned()).or_default().entry(row_id.to_owned()).or_default();
        let old = row.insert(cell_id.to_owned(), cell.clone());
        if old.as_ref() != Some(&cell) {
            let rows = self.log.cells.entry(table_id.to_owned()).or_default();
            log_change(rows.entry(row_id.to_owned()).or_default(), cell_id, old, Some(cell));
        }
    }

    fn remove_cell(&mut self, table_id: &str, row_id: &str, cell_id: &str) {
        let Some(table) = self.tables.get_mut(table_id) else { return };
        let Some(row) = table.get_mut(row_id) else { return };
        let Some(old) = row.remove(cell_id) else { return };
        if row.is_empty() {
            table.remove(row_id);
            if table.is_empty() {
                self.tables.remove(table_id);
            }
        }
        let rows = self.log.cells.entry(table_id.to_owned()).or_default();
        log_change(rows.entry(row_id.to_owned()).or_default(), cell_id, Some(old), None);
    }

    fn put_value(&mut self, value_id: &str, value: Cell) {
        let old = self.values.insert(value_id.to_owned(), value.clone());
        if old.as_ref() != Some(&value) {
            log_change(&mut self.log.values, value_id, old, Some(value));
        }
    }

    fn remove_value(&mut self, value_id: &str) {
        if let Some(old) = self.values.remove(value_id) {
            log_change(&mut self.log.values, value_id, Some(old), None);
        }
    }

    // --- Commit and rollback.

    /// Takes the transaction's log: the net changes, or `None` if nothing changed.
    pub(crate) fn commit(&mut self, origin: Option<Origin>) -> Option<Committed> {
        let log = std::mem::take(&mut self.log);
        let mut tables = TablesDiff::new();
        for (table_id, rows) in log.cells {
            let mut table = BTreeMap::new();
            for (row_id, cells) in rows {
                let row: BTreeMap<Id, CellDiff> = cells
                    .into_iter()
                    .filter(|(_, (old, new))| old != new)
                    .map(|(cell_id, (old, new))| (cell_id, CellDiff { old, new }))
                    .collect();
                if !row.is_empty() {
                    table.insert(row_id, row);
                }
            }
            if !table.is_empty() {
                tables.insert(table_id, table);
            }
        }
        let values: ValuesDiff = log
            .values
            .into_iter()
            .filter(|(_, (old, new))| old != new)
            .map(|(value_id, (old, new))| (value_id, CellDiff { old, new }))
            .collect();
        if tables.is_empty() && values.is_empty() {
            return None;
        }
        let changes = self.changes_of(&tables, &values);
        Some(Committed { tables, values, changes, origin })
    }

    /// TinyBase's `getTransactionChanges`: a table or row that no longer exists is `None`.
    fn changes_of(&self, tables: &TablesDiff, values: &ValuesDiff) -> Changes {
        let mut changes = Changes::default();
        for (table_id, rows) in tables {
            let table = self.tables.get(table_id).map(|table| {
                rows.iter()
                    .map(|(row_id, cells)| {
                        let row = table.contains_key(row_id).then(|| -> RowChanges {
                            cells.iter().map(|(cell_id, diff)| (cell_id.clone(), diff.new.clone())).collect()
                        });
                        (row_id.clone(), row)
                    })
                    .collect::<TableChanges>()
            });
            changes.tables.insert(table_id.clone(), table);
        }
        changes.values = values.iter().map(|(id, diff)| (id.clone(), diff.new.clone())).collect();
        changes
    }

    /// Undoes everything the transaction's log recorded.
    pub(crate) fn rollback(&mut self) {
        let log = std::mem::take(&mut self.log);
        for (table_id, rows) in log.cells {
            for (row_id, cells) in rows {
                for (cell_id, (old, _)) in cells {
                    match old {
                        Some(cell) => {
                            let table = self.tables.entry(table_id.clone()).or_default();
                            table.entry(row_id.clone()).or_default().insert(cell_id, cell);
                        }
                        None => self.remove_cell(&table_id, &row_id, &cell_id),
                    }
                }
            }
        }
        for (value_id, (old, _)) in log.values {
            match old {
                Some(value) => {
                    self.values.insert(value_id, value);
                }
                None => {
                    self.values.remove(&value_id);
                }
            }
        }
        self.log = Log::default();
    }

    // --- Validation.

    fn validated_cell(&self, table_id: &str, cell_id: &str, cell: Cell) -> Option<Cell> {
        match &self.tables_schema {
            None => cell.is_valid().then_some(cell),
            Some(schema) => schema.get(table_id)?.get(cell_id)?.conform(cell),
        }
    }

    fn validated_value(&self, value_id: &str, value: Cell) -> Option<Cell> {
        match &self.values_schema {
            None => value.is_valid().then_some(value),
            Some(schema) => schema.get(value_id)?.conform(value),
        }
    }

    fn row_defaults(&self, table_id: &str) -> impl Iterator<Item = (&Id, &Cell)> {
        let cells = self.tables_schema.as_ref().and_then(|schema| schema.get(table_id));
        cells.into_iter().flatten().filter_map(|(id, s)| s.default.as_ref().map(|d| (id, d)))
    }

    fn validated_row(&self, table_id: &str, mut row: Row, with_defaults: bool) -> Option<Row> {
        if with_defaults {
            for (cell_id, default) in self.row_defaults(table_id) {
                row.entry(cell_id.clone()).or_insert_with(|| default.clone());
            }
        }
        let row: Row = row
            .into_iter()
            .filter_map(|(cell_id, cell)| self.validated_cell(table_id, &cell_id, cell).map(|cell| (cell_id, cell)))
            .collect();
        (!row.is_empty()).then_some(row)
    }

    fn validated_table(&self, table_id: &str, table: Table) -> Option<Table> {
        if self.tables_schema.as_ref().is_some_and(|schema| !schema.contains_key(table_id)) {
            return None;
        }
        let table: Table = table
            .into_iter()
            .filter_map(|(row_id, row)| self.validated_row(table_id, row, true).map(|row| (row_id, row)))
            .collect();
        (!table.is_empty()).then_some(table)
    }

    fn validated_values(&self, mut values: Values, with_defaults: bool) -> Option<Values> {
        if with_defaults && let Some(schema) = &self.values_schema {
            for (value_id, s) in schema {
                if let Some(default) = &s.default {
                    values.entry(value_id.clone()).or_insert_with(|| default.clone());
                }
            }
        }
        let values: Values = values
            .into_iter()
            .filter_map(|(value_id, value)| self.validated_value(&value_id, value).map(|value| (value_id, value)))
            .collect();
        (!values.is_empty()).then_some(values)
    }

    // --- Writes of valid data.

    fn set_valid_table(&mut self, table_id: &str, table: Table) {
        let stale: Vec<Id> = self.table(table_id).into_iter().flatten().map(|(id, _)| id.clone()).collect();
        let stale: Vec<Id> = stale.into_iter().filter(|id| !table.contains_key(id)).collect();
        for (row_id, row) in table {
            self.set_valid_row(table_id, &row_id, row);
        }
        for row_id in stale {
            self.del_valid_row(table_id, &row_id);
        }
    }

    fn set_valid_row(&mut self, table_id: &str, row_id: &str, row: Row) {
        let stale: Vec<Id> = self
            .row(table_id, row_id)
            .into_iter()
            .flatten()
            .map(|(id, _)| id.clone())
            .filter(|id| !row.contains_key(id))
            .collect();
        for (cell_id, cell) in row {
            self.put_cell(table_id, row_id, &cell_id, cell);
        }
        for cell_id in stale {
            self.remove_cell(table_id, row_id, &cell_id);
        }
    }

    fn del_valid_row(&mut self, table_id: &str, row_id: &str) {
        let cells: Vec<Id> = self.row(table_id, row_id).into_iter().flatten().map(|(id, _)| id.clone()).collect();
        for cell_id in cells {
            self.remove_cell(table_id, row_id, &cell_id);
        }
    }

    fn del_valid_table(&mut self, table_id: &str) {
        let rows: Vec<Id> = self.table(table_id).into_iter().flatten().map(|(id, _)| id.clone()).collect();
        for row_id in rows {
            self.del_valid_row(table_id, &row_id);
        }
    }

    /// Sets a valid cell; a row that does not exist yet is created with its defaults.
    fn set_cell_into_default_row(&mut self, table_id: &str, row_id: &str, cell_id: &str, cell: Cell) {
        if self.row(table_id, row_id).is_some() {
            self.put_cell(table_id, row_id, cell_id, cell);
        } else {
            let mut row: Row = self.row_defaults(table_id).map(|(id, d)| (id.clone(), d.clone())).collect();
            row.insert(cell_id.to_owned(), cell);
            self.set_valid_row(table_id, row_id, row);
        }
    }

    fn del_valid_value(&mut self, value_id: &str) {
        let default = self.values_schema.as_ref().and_then(|s| s.get(value_id)).and_then(|s| s.default.clone());
        match default {
            Some(default) => self.put_value(value_id, default),
            None => self.remove_value(value_id),
        }
    }

    // --- The store's writes.

    pub(crate) fn set_tables(&mut self, tables: Tables) {
        let tables: Tables = tables
            .into_iter()
            .filter_map(|(table_id, table)| self.validated_table(&table_id, table).map(|table| (table_id, table)))
            .collect();
        if tables.is_empty() {
            return;
        }
        let stale: Vec<Id> = self.tables.keys().filter(|id| !tables.contains_key(*id)).cloned().collect();
        for (table_id, table) in tables {
            self.set_valid_table(&table_id, table);
        }
        for table_id in stale {
            self.del_valid_table(&table_id);
        }
    }

    pub(crate) fn set_table(&mut self, table_id: &str, table: Table) {
        if let Some(table) = self.validated_table(table_id, table) {
            self.set_valid_table(table_id, table);
        }
    }

    pub(crate) fn set_row(&mut self, table_id: &str, row_id: &str, row: Row) {
        if let Some(row) = self.validated_row(table_id, row, true) {
            self.set_valid_row(table_id, row_id, row);
        }
    }

    pub(crate) fn set_partial_row(&mut self, table_id: &str, row_id: &str, row: Row) {
        if let Some(row) = self.validated_row(table_id, row, false) {
            for (cell_id, cell) in row {
                self.set_cell_into_default_row(table_id, row_id, &cell_id, cell);
            }
        }
    }

    pub(crate) fn set_cell(&mut self, table_id: &str, row_id: &str, cell_id: &str, cell: Cell) {
        if let Some(cell) = self.validated_cell(table_id, cell_id, cell) {
            self.set_cell_into_default_row(table_id, row_id, cell_id, cell);
        }
    }

    pub(crate) fn set_values(&mut self, values: Values) {
        let Some(values) = self.validated_values(values, true) else { return };
        let stale: Vec<Id> = self.values.keys().filter(|id| !values.contains_key(*id)).cloned().collect();
        for (value_id, value) in values {
            self.put_value(&value_id, value);
        }
        for value_id in stale {
            self.del_valid_value(&value_id);
        }
    }

    pub(crate) fn set_partial_values(&mut self, values: Values) {
        if let Some(values) = self.validated_values(values, false) {
            for (value_id, value) in values {
                self.put_value(&value_id, value);
            }
        }
    }

    pub(crate) fn set_value(&mut self, value_id: &str, value: Cell) {
        if let Some(value) = self.validated_value(value_id, value) {
            self.put_value(value_id, value);
        }
    }

    pub(crate) fn del_tables(&mut self) {
        let tables: Vec<Id> = self.tables.keys().cloned().collect();
        for table_id in tables {
            self.del_valid_table(&table_id);
        }
    }

    pub(crate) fn del_table(&mut self, table_id: &str) {
        self.del_valid_table(table_id);
    }

    pub(crate) fn del_row(&mut self, table_id: &str, row_id: &str) {
        self.del_valid_row(table_id, row_id);
    }

    /// Deletes a cell. A defaulted cell is reset to its default unless `force`, in which case
    /// its whole row goes (the row would be invalid without it).
    pub(crate) fn del_cell(&mut self, table_id: &str, row_id: &str, cell_id: &str, force: bool) {
        if self.cell(table_id, row_id, cell_id).is_none() {
            return;
        }
        let schema = self.tables_schema.as_ref().and_then(|s| s.get(table_id)?.get(cell_id));
        match schema.and_then(|s| s.default.clone()) {
            Some(default) if !force => self.put_cell(table_id, row_id, cell_id, default),
            Some(_) => self.del_valid_row(table_id, row_id),
            None => self.remove_cell(table_id, row_id, cell_id),
        }
    }

    pub(crate) fn del_values(&mut self) {
        let values: Vec<Id> = self.values.keys().cloned().collect();
        for value_id in values {
            self.del_valid_value(&value_id);
        }
    }

    pub(crate) fn del_value(&mut self, value_id: &str) {
        if self.values.contains_key(value_id) {
            self.del_valid_value(value_id);
        }
    }

    /// TinyBase's `setContent`: empty tables (values) delete them all, others replace them.
    pub(crate) fn set_content(&mut self, content: Content) {
        if content.tables.is_empty() {
            self.del_tables();
        } else {
            self.set_tables(content.tables);
        }
        if content.values.is_empty() {
            self.del_values();
        } else {
            self.set_values(content.values);
        }
    }

    /// TinyBase's `applyChanges`: `None` deletes (a cell is deleted even if it has a default).
    pub(crate) fn apply_changes(&mut self, changes: Changes) {
        for (table_id, table) in changes.tables {
            let Some(rows) = table else {
                self.del_table(&table_id);
                continue;
            };
            for (row_id, row) in rows {
                let Some(cells) = row else {
                    self.del_row(&table_id, &row_id);
                    continue;
                };
                for (cell_id, cell) in cells {
                    match cell {
                        Some(cell) => self.set_cell(&table_id, &row_id, &cell_id, cell),
                        None => self.del_cell(&table_id, &row_id, &cell_id, true),
                    }
                }
            }
        }
        for (value_id, value) in changes.values {
            match value {
                Some(value) => self.set_value(&value_id, value),
                None => self.del_value(&value_id),
            }
        }
    }

    /// Sets the tables schema (an empty one removes it) and re-validates the tables.
    pub(crate) fn set_tables_schema(&mut self, schema: TablesSchema) -> Result<(), Error> {
        check_tables_schema(&schema)?;
        self.tables_schema = (!schema.is_empty()).then_some(schema);
        if !self.tables.is_empty() {
            let tables = self.tables.clone();
            self.del_tables();
            self.set_tables(tables);
        }
        Ok(())
    }

    /// Sets the values schema (an empty one removes it), re-validates the values and adds the
    /// defaults.
    pub(crate) fn set_values_schema(&mut self, schema: ValuesSchema) -> Result<(), Error> {
        check_values_schema(&schema)?;
        let values = self.values.clone();
        self.values_schema = None;
        self.del_values();
        self.values_schema = (!schema.is_empty()).then_some(schema);
        self.set_values(values);
        Ok(())
    }

    pub(crate) fn del_tables_schema(&mut self) {
        self.tables_schema = None;
    }

    pub(crate) fn del_values_schema(&mut self) {
        self.values_schema = None;
    }
}
