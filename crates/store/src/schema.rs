//! Schemas: which tables, cells and values a store accepts, of which type, with which defaults.
//! The JSON shape is TinyBase's: `{"pets":{"species":{"type":"string"},"sold":{"type":"boolean",
//! "default":false}}}` for tables, `{"open":{"type":"boolean","default":true}}` for values.
//!
//! How a store applies them (as TinyBase does):
//! - With a tables schema, only its tables and cells are kept; a cell of the wrong type (or null
//!   where null is not allowed) is replaced by its default if it has one, else ignored.
//! - A row that is created gets every defaulted cell; deleting a defaulted cell resets it to its
//!   default.
//! - A write left with nothing valid (an empty row, table or set of values) is ignored.
//! - Setting a schema re-validates the data already in the store, in one transaction.
//!
//! Unlike TinyBase, which ignores an invalid schema, [`crate::Store::set_tables_schema`] and
//! [`crate::Store::set_values_schema`] refuse one with an error: a table without cells, a
//! default not of its cell's type, a null default where null is not allowed.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::cell::{Cell, CellType};
use crate::content::{Content, Id};
use crate::error::Error;

/// What a cell (or a value) of a schema accepts: TinyBase's `CellSchema`.
///
/// ```
/// use cairn_store::{CellSchema, CellType};
/// let sold = CellSchema::new(CellType::Boolean).with_default(false);
/// assert_eq!(serde_json::to_string(&sold).unwrap(), r#"{"type":"boolean","default":false}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CellSchema {
    /// The type of the cell.
    #[serde(rename = "type")]
    pub cell_type: CellType,
    /// The default: the cell is always present when there is one.
    #[serde(default, deserialize_with = "some_cell", skip_serializing_if = "Option::is_none")]
    pub default: Option<Cell>,
    /// Whether the cell may be null.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_null: bool,
}

/// What a value of a values schema accepts: the same as a cell.
pub type ValueSchema = CellSchema;
/// A tables schema: table id to cell id to cell schema.
pub type TablesSchema = BTreeMap<Id, BTreeMap<Id, CellSchema>>;
/// A values schema: value id to value schema.
pub type ValuesSchema = BTreeMap<Id, ValueSchema>;

fn is_false(b: &bool) -> bool {
    !*b
}

/// `"default": null` is a null default, not an absent one.
fn some_cell<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Cell>, D::Error> {
    Cell::deserialize(deserializer).map(Some)
}

impl CellSchema {
    /// A cell of this type, without a default, not nullable.
    pub fn new(cell_type: CellType) -> Self {
        CellSchema { cell_type, default: None, allow_null: false }
    }

    /// With this default.
    pub fn with_default(mut self, default: impl Into<Cell>) -> Self {
        self.default = Some(default.into());
        self
    }

    /// Allowing null.
    pub fn nullable(mut self) -> Self {
        self.allow_null = true;
        self
    }

    /// The cell as this schema accepts it: itself if valid, else the default (if any).
    pub(crate) fn conform(&self, cell: Cell) -> Option<Cell> {
        match cell {
            Cell::Null if self.allow_null => Some(Cell::Null),
            cell if cell.cell_type() == Some(self.cell_type) => Some(cell),
            _ => self.default.clone(),
        }
    }

    fn check(&self, path: String) -> Result<(), Error> {
        match &self.default {
            Some(Cell::Null) if !self.allow_null => Err(Error::SchemaNullDefault { path }),
            Some(Cell::Null) | None => Ok(()),
            Some(default) if default.cell_type() == Some(self.cell_type) => Ok(()),
            Some(_) => Err(Error::SchemaDefaultType { path, expected: self.cell_type }),
        }
    }
}

/// Checks a tables schema: no table without cells, every default of its cell's type, a null
/// default only where null is allowed.
pub(crate) fn check_tables_schema(schema: &TablesSchema) -> Result<(), Error> {
    for (table_id, cells) in schema {
        if cells.is_empty() {
            return Err(Error::SchemaEmptyTable { table: table_id.clone() });
        }
        for (cell_id, cell) in cells {
            cell.check(format!("{table_id}.{cell_id}"))?;
        }
    }
    Ok(())
}

/// Checks a values schema as [`check_tables_schema`] checks cells.
pub(crate) fn check_values_schema(schema: &ValuesSchema) -> Result<(), Error> {
    schema.iter().try_for_each(|(value_id, value)| value.check(value_id.clone()))
}

/// Turns the numbers 0 and 1 into booleans where the schemas declare a boolean. SQL databases
/// have no boolean type (SQLite stores `true` as 1, as TinyBase's SQLite persisters do), so a
/// persister conforms what it loads before applying it.
pub(crate) fn conform_booleans(content: &mut Content, tables: Option<&TablesSchema>, values: Option<&ValuesSchema>) {
    fn conform(cell: &mut Cell, schema: Option<&CellSchema>) {
        if schema.is_some_and(|s| s.cell_type == CellType::Boolean)
            && let Cell::Number(n) = *cell
            && (n == 0.0 || n == 1.0)
        {
            *cell = Cell::Bool(n == 1.0);
        }
    }
    if let Some(schema) = tables {
        for (table_id, table) in &mut content.tables {
            let Some(cells) = schema.get(table_id) else { continue };
            for row in table.values_mut() {
                for (cell_id, cell) in row.iter_mut() {
                    conform(cell, cells.get(cell_id));
                }
            }
        }
    }
    if let Some(schema) = values {
        for (value_id, value) in &mut content.values {
            conform(value, schema.get(value_id));
        }
    }
}
