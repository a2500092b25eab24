//! The shapes of a store's data: [`Content`] (everything) and [`Changes`] (what a transaction, or
//! anything else, changed), with their JSON forms, which are TinyBase's.
//!
//! - Content is `[tables, values]`: `[{"pets":{"fido":{"species":"dog"}}},{"open":true}]`.
//! - Changes are `[changedTables, changedValues, 1]`. In Rust a deletion (TinyBase's
//!   `undefined`) is `None` at any level: a table, a row, a cell or a value. JSON has no
//!   `undefined`, and `null` is a cell since TinyBase v7, so the JSON form writes a deletion as
//!   the string `"\u{FFFC}"` ([`DELETED`]), as TinyBase's `jsonStringWithUndefined` does, and reads
//!   that string back as a deletion. A string cell whose text is exactly U+FFFC therefore cannot
//!   travel in changes, in TinyBase either.
//!
//! Ids are kept in `BTreeMap`s, so they are listed in sorted order (TinyBase lists them in
//! insertion order); the JSON shape is the same.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::cell::{Cell, Value};

/// The id of a table, row, cell or value.
pub type Id = String;
/// A row: cell id to cell.
pub type Row = BTreeMap<Id, Cell>;
/// A table: row id to row.
pub type Table = BTreeMap<Id, Row>;
/// All tables: table id to table.
pub type Tables = BTreeMap<Id, Table>;
/// The key-value part of a store: value id to value.
pub type Values = BTreeMap<Id, Value>;

/// The JSON text that stands for a deletion in changes: TinyBase's `UNDEFINED` marker, U+FFFC.
pub const DELETED: &str = "\u{FFFC}";

/// Everything a store holds: its tables and its values.
///
/// ```
/// use cairn_store::Content;
/// let json = r#"[{"pets":{"fido":{"legs":4,"species":"dog"}}},{"open":true}]"#;
/// let content = Content::from_json(json)?;
/// assert_eq!(content.tables["pets"]["fido"]["legs"], 4.into());
/// assert_eq!(content.to_json(), json);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Content {
    /// The tabular part.
    pub tables: Tables,
    /// The key-value part.
    pub values: Values,
}

impl Content {
    /// Content of these tables and values.
    pub fn new(tables: Tables, values: Values) -> Self {
        Content { tables, values }
    }

    /// Whether there are neither tables nor values.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.values.is_empty()
    }

    /// Parses TinyBase's JSON form, `[tables, values]`. Anything else is an error: another
    /// shape, or a cell or value that is an array or an object.
    pub fn from_json(json: &str) -> Result<Content, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// TinyBase's JSON form, `[tables, values]`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("string-keyed maps of scalars always serialize")
    }

    /// Applies `changes` as a back end that writes changes applies them: `None` deletes a
    /// table, a row, a cell or a value, anything else is set, and a row or table left without
    /// cells goes. No schema applies (that is [`Store::apply_changes`](crate::Store::apply_changes)).
    /// `old` with [`Changes::between`]`(old, new)` applied is `new`.
    ///
    /// ```
    /// use cairn_store::{Changes, Content};
    /// let mut content = Content::from_json(r#"[{"pets":{"fido":{"legs":4}}},{}]"#)?;
    /// content.apply_changes(&Changes::from_json(r#"[{"pets":{"fido":{"legs":3}}},{"open":true},1]"#)?);
    /// assert_eq!(content.to_json(), r#"[{"pets":{"fido":{"legs":3}}},{"open":true}]"#);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn apply_changes(&mut self, changes: &Changes) {
        for (table_id, table) in &changes.tables {
            let Some(rows) = table else {
                self.tables.remove(table_id);
                continue;
            };
            let table = self.tables.entry(table_id.clone()).or_default();
            for (row_id, row) in rows {
                let Some(cells) = row else {
                    table.remove(row_id);
                    continue;
                };
                let row = table.entry(row_id.clone()).or_default();
                apply_to_map(row, cells);
                if row.is_empty() {
                    table.remove(row_id);
                }
            }
            if table.is_empty() {
                self.tables.remove(table_id);
            }
        }
        apply_to_map(&mut self.values, &changes.values);
    }
}

fn apply_to_map(map: &mut BTreeMap<Id, Cell>, changes: &BTreeMap<Id, Option<Cell>>) {
    for (id, cell) in changes {
        match cell {
            Some(cell) => {
                map.insert(id.clone(), cell.clone());
            }
            None => {
                map.remove(id);
            }
        }
    }
}

impl Serialize for Content {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(2)?;
        tuple.serialize_element(&self.tables)?;
        tuple.serialize_element(&self.values)?;
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(ContentVisitor)
    }
}

struct ContentVisitor;

impl<'de> Visitor<'de> for ContentVisitor {
    type Value = Content;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("store content: an array [tables, values]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content, A::Error> {
        let tables = seq.next_element::<Tables>()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let values = seq.next_element::<Values>()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(3, &self));
        }
        Ok(Content { tables, values })
    }
}

/// The changes of one row: cell id to its new cell, `None` if deleted.
pub type RowChanges = BTreeMap<Id, Option<Cell>>;
/// The changes of one table: row id to the row's changes, `None` if the row was deleted.
pub type TableChanges = BTreeMap<Id, Option<RowChanges>>;
/// The changes of the tables: table id to the table's changes, `None` if the table was deleted.
pub type TablesChanges = BTreeMap<Id, Option<TableChanges>>;
/// The changes of the values: value id to its new value, `None` if deleted.
pub type ValuesChanges = BTreeMap<Id, Option<Value>>;

/// Net changes, in TinyBase's `Changes` shape: only what differs, with new cells and values and
/// `None` for what was deleted (TinyBase's `undefined`), at any level: a table, a row, a cell or
/// a value.
///
/// The JSON form is `[changedTables, changedValues, 1]`. JSON has no `undefined`, and `null` is a
/// cell since TinyBase v7, so a deletion is written as the string `"\u{FFFC}"` ([`DELETED`]), as
/// TinyBase's `jsonStringWithUndefined` writes it, and that string reads back as a deletion (so
/// a string cell of exactly U+FFFC cannot travel in changes, in TinyBase either).
///
/// ```
/// use cairn_store::{Changes, Content};
/// let old = Content::from_json(r#"[{"pets":{"fido":{"legs":4},"felix":{"legs":4}}},{}]"#)?;
/// let new = Content::from_json(r#"[{"pets":{"fido":{"legs":3}}},{"open":true}]"#)?;
/// let changes = Changes::between(&old, &new);
/// // felix was deleted: JSON writes that as the string "\u{FFFC}".
/// let expected = r#"[{"pets":{"felix":"DEL","fido":{"legs":3}}},{"open":true},1]"#;
/// assert_eq!(changes.to_json(), expected.replace("DEL", cairn_store::DELETED));
/// assert_eq!(changes.tables["pets"].as_ref().unwrap()["felix"], None);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Changes {
    /// Changed tables.
    pub tables: TablesChanges,
    /// Changed values.
    pub values: ValuesChanges,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.values.is_empty()
    }

    /// What turns `old` into `new`.
    pub fn between(old: &Content, new: &Content) -> Changes {
        let mut tables = TablesChanges::new();
        for (table_id, new_table) in &new.tables {
            let rows = match old.tables.get(table_id) {
                Some(old_table) => table_changes(old_table, new_table),
                None => new_table.iter().map(|(id, row)| (id.clone(), Some(row_added(row)))).collect(),
            };
            if !rows.is_empty() {
                tables.insert(table_id.clone(), Some(rows));
            }
        }
        for table_id in old.tables.keys().filter(|id| !new.tables.contains_key(*id)) {
            tables.insert(table_id.clone(), None);
        }
        Changes { tables, values: map_changes(&old.values, &new.values) }
    }

    /// Parses the JSON form `[changedTables, changedValues, 1]` (the trailing `1` may be left
    /// out); `"\u{FFFC}"` reads as a deletion.
    pub fn from_json(json: &str) -> Result<Changes, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The JSON form `[changedTables, changedValues, 1]`, deletions written as `"\u{FFFC}"`.
    pub fn to_json(&self) -> String {
        self.to_json_value().to_string()
    }

    /// The JSON form as a `serde_json` value.
    pub fn to_json_value(&self) -> serde_json::Value {
        use serde_json::{Map, Value as Json};
        fn marked<T>(thing: Option<&T>, f: impl FnOnce(&T) -> Json) -> Json {
            thing.map_or_else(|| Json::String(DELETED.to_owned()), f)
        }
        let cells = |row: &RowChanges| -> Json {
            Json::Object(row.iter().map(|(id, c)| (id.clone(), marked(c.as_ref(), Cell::to_json_value))).collect())
        };
        let rows = |table: &TableChanges| -> Json {
            Json::Object(table.iter().map(|(id, r)| (id.clone(), marked(r.as_ref(), cells))).collect())
        };
        let tables: Map<String, Json> =
            self.tables.iter().map(|(id, t)| (id.clone(), marked(t.as_ref(), rows))).collect();
        let values: Map<String, Json> =
            self.values.iter().map(|(id, v)| (id.clone(), marked(v.as_ref(), Cell::to_json_value))).collect();
        Json::Array(vec![Json::Object(tables), Json::Object(values), Json::from(1)])
    }

    /// Reads the JSON form from a `serde_json` value.
    pub fn from_json_value(json: &serde_json::Value) -> Result<Changes, String> {
        use serde_json::Value as Json;
        fn object<'a>(json: &'a Json, what: &str) -> Result<&'a serde_json::Map<String, Json>, String> {
            json.as_object().ok_or_else(|| format!("{what} must be an object"))
        }
        fn is_deleted(json: &Json) -> bool {
            json.as_str() == Some(DELETED)
        }
        fn cell(json: &Json, what: &str) -> Result<Option<Cell>, String> {
            if is_deleted(json) {
                return Ok(None);
            }
            match Cell::from_json_value(json) {
                Some(cell) if cell.is_valid() => Ok(Some(cell)),
                _ => Err(format!("{what} must be a string, a number, a boolean, null or \"\\uFFFC\"")),
            }
        }
        let parts = json.as_array().ok_or("changes must be an array [changedTables, changedValues, 1]")?;
        let (tables_json, values_json) = match parts.as_slice() {
            [tables, values] => (tables, values),
            [tables, values, one] if one.as_f64() == Some(1.0) => (tables, values),
            _ => return Err("changes must be an array [changedTables, changedValues, 1]".to_owned()),
        };
        let mut tables = TablesChanges::new();
        for (table_id, table) in object(tables_json, "changed tables")? {
            let table = if is_deleted(table) {
                None
            } else {
                let mut rows = TableChanges::new();
                for (row_id, row) in object(table, &format!("table {table_id:?}"))? {
                    let row = if is_deleted(row) {
                        None
                    } else {
                        let mut cells = RowChanges::new();
                        for (cell_id, c) in object(row, &format!("row {row_id:?} of table {table_id:?}"))? {
                            cells.insert(cell_id.clone(), cell(c, &format!("cell {cell_id:?} of row {row_id:?}"))?);
                        }
                        Some(cells)
                    };
                    rows.insert(row_id.clone(), row);
                }
                Some(rows)
            };
            tables.insert(table_id.clone(), table);
        }
        let mut values = ValuesChanges::new();
        for (value_id, v) in object(values_json, "changed values")? {
            values.insert(value_id.clone(), cell(v, &format!("value {value_id:?}"))?);
        }
        Ok(Changes { tables, values })
    }
}

fn row_added(row: &Row) -> RowChanges {
    row.iter().map(|(id, cell)| (id.clone(), Some(cell.clone()))).collect()
}

fn table_changes(old: &Table, new: &Table) -> TableChanges {
    let mut rows = TableChanges::new();
    for (row_id, new_row) in new {
        match old.get(row_id) {
            Some(old_row) => {
                let cells = map_changes(old_row, new_row);
                if !cells.is_empty() {
                    rows.insert(row_id.clone(), Some(cells));
                }
            }
            None => {
                rows.insert(row_id.clone(), Some(row_added(new_row)));
            }
        }
    }
    for row_id in old.keys().filter(|id| !new.contains_key(*id)) {
        rows.insert(row_id.clone(), None);
    }
    rows
}

fn map_changes(old: &BTreeMap<Id, Cell>, new: &BTreeMap<Id, Cell>) -> BTreeMap<Id, Option<Cell>> {
    let mut changes: BTreeMap<Id, Option<Cell>> = new
        .iter()
        .filter(|(id, cell)| old.get(*id) != Some(*cell))
        .map(|(id, cell)| (id.clone(), Some(cell.clone())))
        .collect();
    for id in old.keys().filter(|id| !new.contains_key(*id)) {
        changes.insert(id.clone(), None);
    }
    changes
}

impl Serialize for Changes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Changes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = serde_json::Value::deserialize(deserializer)?;
        Changes::from_json_value(&json).map_err(de::Error::custom)
    }
}
