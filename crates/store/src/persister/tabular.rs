//! Tabular mode for database back ends: store tables mapped to SQL tables, one row per store
//! row, one column per cell, as TinyBase's tabular database persisters map them. The mapping
//! ([`TabularConfig`]) and the planning of loads and saves live here, free of any database, so
//! every SQL back end (SQLite, PostgreSQL) shares them; a back end reads the columns of
//! the managed tables, runs the planned [`Op`]s (rendered by `database.rs`) and reads rows.
//!
//! Rules (TinyBase's):
//! - Only mapped tables are loaded or saved: `load` maps SQL tables to store tables, `save`
//!   maps store tables to SQL tables; each has a row id column (default `_id`).
//! - Values are kept in one row (id `_`) of their own table (default `tinybase_values`), one
//!   column per value, and are loaded and saved only if [`ValuesMapping`] says so (TinyBase's
//!   default: neither).
//! - A save creates a missing table (row id column as primary key) and adds missing columns
//!   (`ALTER TABLE ... ADD COLUMN`). A whole save upserts every row and deletes the others; with
//!   changes, it upserts the changed cells of changed rows and deletes deleted rows (all rows of
//!   a deleted table). A whole save may also drop columns no row uses and a table with no rows
//!   (`delete_empty_columns`, `delete_empty_table`; always for the values table).
//! - SQL `NULL` is an absent cell: a deleted cell is saved as `NULL`, and a `NULL` column loads
//!   as no cell (so null cells do not survive a tabular round trip). A row with no cells left,
//!   or with a `NULL` id, is not loaded.
//! - A cell whose id is the row id column's name is not saved.
//! - Empty storage (for default content) is: no mapped table holds a row and there is no values
//!   row.

use std::collections::{BTreeMap, BTreeSet};

use super::database::{DEFAULT_ROW_ID_COLUMN, SINGLE_ROW_ID, id_from_cell};
use crate::cell::Cell;
use crate::content::{Changes, Content, Id, Row, RowChanges, Table, TableChanges};
use crate::error::Error;

/// Where a SQL table's rows load: TinyBase's `DpcTabularLoad` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLoad {
    /// The store table the rows go to.
    pub table_id: Id,
    /// The column holding row ids (default `_id`).
    pub row_id_column: String,
}

impl TableLoad {
    /// Into store table `table_id`, row ids from `_id`.
    pub fn new(table_id: impl Into<Id>) -> Self {
        TableLoad { table_id: table_id.into(), row_id_column: DEFAULT_ROW_ID_COLUMN.to_owned() }
    }

    /// Row ids from this column.
    pub fn row_id_column(mut self, column: impl Into<String>) -> Self {
        self.row_id_column = column.into();
        self
    }
}

/// Where a store table saves: TinyBase's `DpcTabularSave` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSave {
    /// The SQL table.
    pub table_name: String,
    /// The column holding row ids (default `_id`).
    pub row_id_column: String,
    /// Whether a whole save drops columns no row uses (default no).
    pub delete_empty_columns: bool,
    /// Whether a whole save drops the table when the store table is empty (default no: its rows
    /// are deleted).
    pub delete_empty_table: bool,
}

impl TableSave {
    /// Into SQL table `table_name`, row ids in `_id`.
    pub fn new(table_name: impl Into<String>) -> Self {
        TableSave {
            table_name: table_name.into(),
            row_id_column: DEFAULT_ROW_ID_COLUMN.to_owned(),
            delete_empty_columns: false,
            delete_empty_table: false,
        }
    }

    /// Row ids in this column.
    pub fn row_id_column(mut self, column: impl Into<String>) -> Self {
        self.row_id_column = column.into();
        self
    }

    /// Drop columns no row uses on a whole save.
    pub fn delete_empty_columns(mut self, delete: bool) -> Self {
        self.delete_empty_columns = delete;
        self
    }

    /// Drop the table when the store table is empty, on a whole save.
    pub fn delete_empty_table(mut self, delete: bool) -> Self {
        self.delete_empty_table = delete;
        self
    }
}

/// Whether and where values load and save: TinyBase's `DpcTabularValues`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuesMapping {
    /// Load values (default no).
    pub load: bool,
    /// Save values (default no).
    pub save: bool,
    /// The table (default `tinybase_values`).
    pub table_name: String,
}

impl Default for ValuesMapping {
    fn default() -> Self {
        ValuesMapping { load: false, save: false, table_name: "tinybase_values".to_owned() }
    }
}

impl ValuesMapping {
    /// Values loaded from and saved to `table_name`.
    pub fn new(table_name: impl Into<String>) -> Self {
        ValuesMapping { load: true, save: true, table_name: table_name.into() }
    }
}

/// The mapping of tabular mode: TinyBase's `DpcTabular`.
///
/// ```
/// use cairn_store::{TableLoad, TableSave, TabularConfig, ValuesMapping};
/// let config = TabularConfig::new()
///     // Store table `pets` <-> SQL table `pets`, row ids in `_id`.
///     .table("pets", "pets")
///     // SQL table `animal_species` loads into store table `species`, ids from `name`...
///     .load_table("animal_species", TableLoad::new("species").row_id_column("name"))
///     // ...and store table `species` saves back there.
///     .save_table("species", TableSave::new("animal_species").row_id_column("name"))
///     // Values in `tinybase_values`, both ways.
///     .values(ValuesMapping::new("tinybase_values"));
/// # let _ = config;
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TabularConfig {
    /// SQL table name to where its rows load.
    pub load: BTreeMap<String, TableLoad>,
    /// Store table id to where it saves.
    pub save: BTreeMap<Id, TableSave>,
    /// The values.
    pub values: ValuesMapping,
}

impl TabularConfig {
    /// No table mapped; values neither loaded nor saved.
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps store table `table_id` to SQL table `table_name` both ways, row ids in `_id`.
    pub fn table(self, table_id: impl Into<Id>, table_name: impl Into<String>) -> Self {
        let (table_id, table_name) = (table_id.into(), table_name.into());
        self.load_table(table_name.clone(), TableLoad::new(table_id.clone()))
            .save_table(table_id, TableSave::new(table_name))
    }

    /// Loads SQL table `table_name` as `load` says.
    pub fn load_table(mut self, table_name: impl Into<String>, load: TableLoad) -> Self {
        self.load.insert(table_name.into(), load);
        self
    }

    /// Saves store table `table_id` as `save` says.
    pub fn save_table(mut self, table_id: impl Into<Id>, save: TableSave) -> Self {
        self.save.insert(table_id.into(), save);
        self
    }

    /// Loads and saves values as `values` says.
    pub fn values(mut self, values: ValuesMapping) -> Self {
        self.values = values;
        self
    }

    /// Refuses a mapping that uses the values table for a store table (TinyBase ignores such an
    /// entry silently).
    pub(crate) fn check(&self) -> Result<(), Error> {
        let values = &self.values.table_name;
        let clash = self.load.keys().find(|name| *name == values);
        let clash = clash.or_else(|| self.save.values().map(|s| &s.table_name).find(|name| *name == values));
        match clash {
            Some(table) => Err(Error::ValuesTableMapped { table: table.clone() }),
            None => Ok(()),
        }
    }

    /// Every SQL table this mapping reads or writes.
    pub(crate) fn managed_tables(&self) -> BTreeSet<String> {
        let mut tables: BTreeSet<String> = self.load.keys().cloned().collect();
        tables.extend(self.save.values().map(|s| s.table_name.clone()));
        if self.values.load || self.values.save {
            tables.insert(self.values.table_name.clone());
        }
        tables
    }
}

/// The columns of the managed tables that exist: table name to column names.
pub(crate) type DbSchema = BTreeMap<String, BTreeSet<String>>;

/// One step of a save, rendered to SQL by `database.rs`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    CreateTable {
        table: String,
        id_column: String,
        columns: Vec<String>,
    },
    AddColumn {
        table: String,
        column: String,
    },
    /// For a table that existed without its row id column, which an upsert needs unique.
    AddIdIndex {
        table: String,
        id_column: String,
    },
    DropColumn {
        table: String,
        column: String,
    },
    DropTable {
        table: String,
    },
    DeleteAll {
        table: String,
    },
    DeleteRow {
        table: String,
        id_column: String,
        id: Id,
    },
    DeleteRowsNotIn {
        table: String,
        id_column: String,
        keep: Vec<Id>,
    },
    Upsert {
        table: String,
        id_column: String,
        id: Id,
        cells: Vec<(String, Option<Cell>)>,
    },
}

/// What a load reads: a SQL table, its row id column, and where its rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoadSource {
    pub(crate) table: String,
    pub(crate) id_column: String,
    /// The store table, or `None` for the values table.
    pub(crate) table_id: Option<Id>,
}

impl TabularConfig {
    /// The tables a load reads, those that exist with their row id column.
    pub(crate) fn load_sources(&self, schema: &DbSchema) -> Vec<LoadSource> {
        let exists = |table: &str, id_column: &str| schema.get(table).is_some_and(|c| c.contains(id_column));
        let mut sources: Vec<LoadSource> = self
            .load
            .iter()
            .filter(|(name, load)| exists(name, &load.row_id_column))
            .map(|(name, load)| LoadSource {
                table: name.clone(),
                id_column: load.row_id_column.clone(),
                table_id: Some(load.table_id.clone()),
            })
            .collect();
        if self.values.load && exists(&self.values.table_name, DEFAULT_ROW_ID_COLUMN) {
            sources.push(LoadSource {
                table: self.values.table_name.clone(),
                id_column: DEFAULT_ROW_ID_COLUMN.to_owned(),
                table_id: None,
            });
        }
        sources
    }

    /// The content of what a load read (each source's rows), or `None` if it is all empty.
    pub(crate) fn assemble(&self, read: Vec<(LoadSource, Table)>) -> Option<Content> {
        let mut content = Content::default();
        let mut has_values = false;
        for (source, rows) in read {
            match source.table_id {
                Some(table_id) if !rows.is_empty() => content.tables.entry(table_id).or_default().extend(rows),
                Some(_) => {}
                None => {
                    if let Some(values) = rows.into_iter().find_map(|(id, row)| (id == SINGLE_ROW_ID).then_some(row)) {
                        has_values = true;
                        content.values = values;
                    }
                }
            }
        }
        (!content.tables.is_empty() || has_values).then_some(content)
    }

    /// Plans a save: of `changes` when given, else of the whole `content`.
    pub(crate) fn plan_save(
        &self,
        schema: &mut DbSchema,
        content: Option<&Content>,
        changes: Option<&Changes>,
    ) -> Vec<Op> {
        let mut ops = Vec::new();
        let empty = Content::default();
        let content = content.unwrap_or(&empty);
        for (table_id, save) in &self.save {
            let (rows, partial) = match changes {
                Some(changes) => match changes.tables.get(table_id) {
                    Some(table) => (table.clone(), true),
                    None => continue,
                },
                None => (content.tables.get(table_id).map(table_as_changes), false),
            };
            let rows = rows.map(|rows| without_cell(rows, &save.row_id_column));
            let (table, id) = (&save.table_name, &save.row_id_column);
            plan_table(&mut ops, schema, table, id, rows, save.delete_empty_columns, save.delete_empty_table, partial);
        }
        if self.values.save {
            let (values, partial): (RowChanges, bool) = match changes {
                Some(changes) if changes.values.is_empty() => return ops,
                Some(changes) => (changes.values.clone(), true),
                None => (content.values.iter().map(|(id, v)| (id.clone(), Some(v.clone()))).collect(), false),
            };
            let values =
                without_cell(BTreeMap::from([(SINGLE_ROW_ID.to_owned(), Some(values))]), DEFAULT_ROW_ID_COLUMN);
            plan_table(
                &mut ops,
                schema,
                &self.values.table_name,
                DEFAULT_ROW_ID_COLUMN,
                Some(values),
                true,
                true,
                partial,
            );
        }
        ops
    }
}

fn table_as_changes(table: &Table) -> TableChanges {
    table
        .iter()
        .map(|(row_id, row)| (row_id.clone(), Some(row.iter().map(|(id, c)| (id.clone(), Some(c.clone()))).collect())))
        .collect()
}

/// Leaves out cells named like the row id column.
fn without_cell(mut rows: TableChanges, cell_id: &str) -> TableChanges {
    for row in rows.values_mut().flatten() {
        row.remove(cell_id);
    }
    rows
}

/// Plans saving one SQL table (TinyBase's `saveTable`). `rows` is `None` for a store table that
/// is absent (whole save) or was deleted (changes); `partial` for a save of changes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_table(
    ops: &mut Vec<Op>,
    schema: &mut DbSchema,
    table: &str,
    id_column: &str,
    rows: Option<TableChanges>,
    delete_empty_columns: bool,
    delete_empty_table: bool,
    partial: bool,
) {
    let setting: BTreeSet<String> =
        rows.iter().flatten().filter_map(|(_, row)| row.as_ref()).flat_map(|row| row.keys().cloned()).collect();
    let exists = schema.contains_key(table);

    if !partial && delete_empty_table && setting.is_empty() && exists {
        ops.push(Op::DropTable { table: table.to_owned() });
        schema.remove(table);
        return;
    }

    if !setting.is_empty() {
        match schema.get_mut(table) {
            None => {
                ops.push(Op::CreateTable {
                    table: table.to_owned(),
                    id_column: id_column.to_owned(),
                    columns: setting.iter().cloned().collect(),
                });
                let mut columns = setting.clone();
                columns.insert(id_column.to_owned());
                schema.insert(table.to_owned(), columns);
            }
            Some(columns) => {
                if columns.insert(id_column.to_owned()) {
                    ops.push(Op::AddColumn { table: table.to_owned(), column: id_column.to_owned() });
                    ops.push(Op::AddIdIndex { table: table.to_owned(), id_column: id_column.to_owned() });
                }
                for column in &setting {
                    if columns.insert(column.clone()) {
                        ops.push(Op::AddColumn { table: table.to_owned(), column: column.clone() });
                    }
                }
            }
        }
    }

    if !partial
        && delete_empty_columns
        && let Some(columns) = schema.get_mut(table)
    {
        let unused: Vec<String> =
            columns.iter().filter(|c| *c != id_column && !setting.contains(*c)).cloned().collect();
        for column in unused {
            columns.remove(&column);
            ops.push(Op::DropColumn { table: table.to_owned(), column });
        }
    }

    let exists = schema.contains_key(table);
    let id_column = id_column.to_owned();
    if partial {
        let Some(rows) = rows else {
            if exists {
                ops.push(Op::DeleteAll { table: table.to_owned() });
            }
            return;
        };
        for (id, row) in rows {
            match row {
                None if exists => ops.push(Op::DeleteRow { table: table.to_owned(), id_column: id_column.clone(), id }),
                None => {}
                Some(cells) if cells.is_empty() => {}
                Some(cells) => ops.push(Op::Upsert {
                    table: table.to_owned(),
                    id_column: id_column.clone(),
                    id,
                    cells: cells.into_iter().collect(),
                }),
            }
        }
    } else if !setting.is_empty() {
        let columns: Vec<String> =
            schema.get(table).into_iter().flatten().filter(|c| **c != id_column).cloned().collect();
        let rows: Vec<(Id, Row)> = rows
            .into_iter()
            .flatten()
            .filter_map(|(id, row)| Some((id, row?.into_iter().filter_map(|(c, v)| Some((c, v?))).collect())))
            .collect();
        let keep = rows.iter().map(|(id, _)| id.clone()).collect();
        for (id, row) in rows {
            let cells = columns.iter().map(|c| (c.clone(), row.get(c).cloned())).collect();
            ops.push(Op::Upsert { table: table.to_owned(), id_column: id_column.clone(), id, cells });
        }
        ops.push(Op::DeleteRowsNotIn { table: table.to_owned(), id_column, keep });
    } else if exists {
        ops.push(Op::DeleteAll { table: table.to_owned() });
    }
}

/// A row read from a table: its id (from `id_column`) and its non-`NULL` cells; `None` for a
/// row without an id or without cells.
pub(crate) fn row_from_columns(id_column: &str, columns: Vec<(String, Option<Cell>)>) -> Option<(Id, Row)> {
    let mut id = None;
    let mut row = Row::new();
    for (column, cell) in columns {
        if column == id_column {
            id = cell.and_then(id_from_cell);
        } else if let Some(cell) = cell {
            row.insert(column, cell);
        }
    }
    Some((id?, row)).filter(|(_, row)| !row.is_empty())
}

#[cfg(test)]
mod tests;
