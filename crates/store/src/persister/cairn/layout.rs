//! TinyBase's room layout in an object's KV storage (see `cairn.rs`): the keys, the decoding of a
//! listing into content, and the planning of writes. Free of any object, so that both flavours
//! share it.

use std::collections::BTreeMap;

use cairn_storage::Limits;

use crate::cell::Cell;
use crate::content::{Changes, Content};
use crate::error::Error;

/// The key (after the prefix) whose truthy value marks the storage as initialised.
pub(super) const HAS_STORE: &str = "hasStore";

/// A listed entry: its key and its value, `None` for raw bytes.
pub(super) type Listed = (String, Option<serde_json::Value>);

/// The JSON of an array of ids without its brackets: `"pets","fido"`.
fn ids_json(ids: &[&str]) -> String {
    let mut out = String::new();
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::Value::from(*id).to_string());
    }
    out
}

/// The key of a cell: `t"pets","fido","legs"`.
pub(super) fn cell_key(prefix: &str, table: &str, row: &str, cell: &str) -> String {
    format!("{prefix}t{}", ids_json(&[table, row, cell]))
}

/// The prefix of a row's cell keys: `t"pets","fido"` (the closing quote keeps `fidoX` out).
pub(super) fn row_prefix(prefix: &str, table: &str, row: &str) -> String {
    format!("{prefix}t{}", ids_json(&[table, row]))
}

/// The prefix of a table's cell keys: `t"pets"`.
pub(super) fn table_prefix(prefix: &str, table: &str) -> String {
    format!("{prefix}t{}", ids_json(&[table]))
}

/// The key of a value: `vopen`.
pub(super) fn value_key(prefix: &str, value: &str) -> String {
    format!("{prefix}v{value}")
}

/// JavaScript's truthiness, as the room reads `hasStore`.
fn truthy(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => false,
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        serde_json::Value::String(s) => !s.is_empty(),
        serde_json::Value::Array(_) | serde_json::Value::Object(_) => true,
    }
}

/// The cell a stored value holds.
fn cell(key: &str, value: Option<serde_json::Value>) -> Result<Cell, Error> {
    let invalid = |found| Error::InvalidStoredValue { key: key.to_owned(), found };
    match value {
        None => Err(invalid("raw bytes")),
        Some(value) => Cell::from_json_value(&value).ok_or_else(|| invalid("a JSON array or object")),
    }
}

/// The three ids of a cell key's rest (`"pets","fido","legs"`).
fn cell_ids(key: &str, rest: &str) -> Result<[String; 3], Error> {
    let invalid = || Error::InvalidStoredKey { key: key.to_owned() };
    let ids: Vec<serde_json::Value> = serde_json::from_str(&format!("[{rest}]")).map_err(|_| invalid())?;
    match <[serde_json::Value; 3]>::try_from(ids) {
        Ok([serde_json::Value::String(t), serde_json::Value::String(r), serde_json::Value::String(c)]) => Ok([t, r, c]),
        _ => Err(invalid()),
    }
}

/// The content of every entry under `prefix`, or `None` if the storage is not initialised (no
/// truthy `hasStore`). Keys other than `t`, `v` and `hasStore` are ignored; a `t` key that is
/// not three ids, or a cell or value that is no cell, is an error.
pub(super) fn decode(prefix: &str, entries: Vec<Listed>) -> Result<Option<Content>, Error> {
    let mut content = Content::default();
    let mut initialised = false;
    for (key, value) in entries {
        let Some(rest) = key.strip_prefix(prefix) else { continue };
        if rest == HAS_STORE {
            initialised = value.as_ref().is_none_or(truthy);
        } else if let Some(ids) = rest.strip_prefix('t') {
            let [table, row, cell_id] = cell_ids(&key, ids)?;
            let cell = cell(&key, value)?;
            content.tables.entry(table).or_default().entry(row).or_default().insert(cell_id, cell);
        } else if let Some(id) = rest.strip_prefix('v') {
            let value = cell(&key, value)?;
            content.values.insert(id.to_owned(), value);
        }
    }
    Ok(initialised.then_some(content))
}

/// One write of a save.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Write {
    Put(String, serde_json::Value),
    Delete(String),
    /// Every key starting with this.
    DeletePrefix(String),
}

/// A save: its writes (deletions first, then puts) and what does not fit the limits.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub(super) writes: Vec<Write>,
    /// (key, which limit it exceeds) of each cell or value left out.
    pub(super) refused: Vec<(String, String)>,
}

/// Builds a plan, keeping deletions ahead of puts.
struct Planner<'a> {
    limits: &'a Limits,
    deletes: Vec<Write>,
    puts: Vec<Write>,
    refused: Vec<(String, String)>,
}

impl<'a> Planner<'a> {
    fn new(limits: &'a Limits) -> Self {
        Planner { limits, deletes: Vec::new(), puts: Vec::new(), refused: Vec::new() }
    }

    fn put(&mut self, key: String, cell: &Cell) {
        let value = cell.to_json_value();
        let len = value.to_string().len();
        if key.len() > self.limits.max_key_bytes {
            let reason = format!("its key is {} bytes, over the limit of {}", key.len(), self.limits.max_key_bytes);
            self.refused.push((key, reason));
        } else if len > self.limits.max_value_bytes {
            let reason = format!("its JSON is {len} bytes, over the limit of {}", self.limits.max_value_bytes);
            self.refused.push((key, reason));
        } else {
            self.puts.push(Write::Put(key, value));
        }
    }

    /// A key longer than the limit cannot have been stored: nothing to delete.
    fn delete(&mut self, key: String, prefix: bool) {
        if key.len() <= self.limits.max_key_bytes {
            self.deletes.push(if prefix { Write::DeletePrefix(key) } else { Write::Delete(key) });
        }
    }

    fn finish(mut self) -> Plan {
        self.deletes.append(&mut self.puts);
        Plan { writes: self.deletes, refused: self.refused }
    }
}

/// Plans writing `changes`: a deleted table or row deletes its keys by prefix.
pub(super) fn plan_changes(prefix: &str, changes: &Changes, limits: &Limits) -> Plan {
    let mut plan = Planner::new(limits);
    for (table_id, table) in &changes.tables {
        let Some(rows) = table else {
            plan.delete(table_prefix(prefix, table_id), true);
            continue;
        };
        for (row_id, row) in rows {
            let Some(cells) = row else {
                plan.delete(row_prefix(prefix, table_id, row_id), true);
                continue;
            };
            for (cell_id, cell) in cells {
                let key = cell_key(prefix, table_id, row_id, cell_id);
                match cell {
                    Some(cell) => plan.put(key, cell),
                    None => plan.delete(key, false),
                }
            }
        }
    }
    for (value_id, value) in &changes.values {
        let key = value_key(prefix, value_id);
        match value {
            Some(value) => plan.put(key, value),
            None => plan.delete(key, false),
        }
    }
    plan.finish()
}

/// Plans writing the whole `content` over `existing` (every entry under `prefix`): the `t` and
/// `v` keys it does not hold are deleted, and only cells and values that differ are put.
pub(super) fn plan_whole(prefix: &str, content: &Content, existing: Vec<Listed>, limits: &Limits) -> Plan {
    let mut plan = Planner::new(limits);
    let mut wanted: BTreeMap<String, &Cell> = BTreeMap::new();
    for (table_id, rows) in &content.tables {
        for (row_id, cells) in rows {
            for (cell_id, cell) in cells {
                wanted.insert(cell_key(prefix, table_id, row_id, cell_id), cell);
            }
        }
    }
    for (value_id, value) in &content.values {
        wanted.insert(value_key(prefix, value_id), value);
    }
    let mut stored: BTreeMap<String, Option<serde_json::Value>> = BTreeMap::new();
    for (key, value) in existing {
        let ours = key.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('t') || rest.starts_with('v'));
        if !ours {
            continue;
        }
        if !wanted.contains_key(&key) {
            plan.delete(key.clone(), false);
        }
        stored.insert(key, value);
    }
    for (key, cell) in wanted {
        if stored.get(&key).is_none_or(|value| value.as_ref() != Some(&cell.to_json_value())) {
            plan.put(key, cell);
        }
    }
    plan.finish()
}

impl Plan {
    /// The error reporting what was left out, if anything was.
    pub(super) fn refusal(&self) -> Option<Error> {
        let (key, reason) = self.refused.first()?;
        Some(Error::TooLarge { key: key.clone(), reason: reason.clone(), count: self.refused.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(json: &str) -> Content {
        Content::from_json(json).unwrap()
    }

    #[test]
    fn keys_are_the_rooms() {
        assert_eq!(cell_key("", "pets", "fido", "legs"), r#"t"pets","fido","legs""#);
        assert_eq!(row_prefix("p/", "pets", "fi\"do"), r#"p/t"pets","fi\"do""#);
        assert_eq!(table_prefix("", "pets"), r#"t"pets""#);
        assert_eq!(value_key("", "open"), "vopen");
    }

    #[test]
    fn a_listing_decodes_only_once_initialised() {
        let entries = |has: bool| {
            let mut e: Vec<Listed> = vec![
                (r#"t"pets","fido","legs""#.into(), Some(4.into())),
                ("vopen".into(), Some(true.into())),
                ("other".into(), None),
            ];
            if has {
                e.push(("hasStore".into(), Some(1.into())));
            }
            e
        };
        assert_eq!(decode("", entries(false)).unwrap(), None);
        assert_eq!(
            decode("", entries(true)).unwrap(),
            Some(content(r#"[{"pets":{"fido":{"legs":4}}},{"open":true}]"#))
        );
    }

    #[test]
    fn corrupt_keys_and_values_are_errors() {
        let code = |key: &str, value: Option<serde_json::Value>| {
            decode("", vec![("hasStore".into(), Some(1.into())), (key.into(), value)]).unwrap_err().code()
        };
        assert_eq!(code(r#"t"a","b""#, Some(1.into())), "store.invalid_stored_key");
        assert_eq!(code(r#"t"a","b",3"#, Some(1.into())), "store.invalid_stored_key");
        assert_eq!(code("tnot json", Some(1.into())), "store.invalid_stored_key");
        assert_eq!(code(r#"t"a","b","c""#, Some(serde_json::json!({"x": 1}))), "store.invalid_stored_value");
        assert_eq!(code("vx", None), "store.invalid_stored_value");
    }

    #[test]
    fn changes_delete_by_prefix_first_and_refuse_what_is_too_large() {
        let limits = Limits { max_value_bytes: 10, ..Limits::default() };
        let changes = Changes::from_json(
            &r#"[{"pets":{"fido":{"legs":3,"tail":"D"},"rex":"D"},"old":"D"},{"open":true,"big":"0123456789"},1]"#
                .replace(r#""D""#, &format!("\"{}\"", crate::content::DELETED)),
        )
        .unwrap();
        let plan = plan_changes("", &changes, &limits);
        assert_eq!(
            plan.writes,
            [
                Write::DeletePrefix(r#"t"old""#.into()),
                Write::Delete(r#"t"pets","fido","tail""#.into()),
                Write::DeletePrefix(r#"t"pets","rex""#.into()),
                Write::Put(r#"t"pets","fido","legs""#.into(), 3.into()),
                Write::Put("vopen".into(), true.into()),
            ]
        );
        assert_eq!(plan.refusal().unwrap().code(), "store.too_large");
        assert_eq!(plan.refused[0].0, "vbig");
    }

    #[test]
    fn a_whole_save_writes_only_the_difference() {
        let existing: Vec<Listed> = vec![
            ("hasStore".into(), Some(1.into())),
            (r#"t"pets","fido","legs""#.into(), Some(4.into())),
            (r#"t"pets","rex","legs""#.into(), Some(3.into())),
            ("vopen".into(), Some(false.into())),
            ("unrelated".into(), Some(1.into())),
        ];
        let plan =
            plan_whole("", &content(r#"[{"pets":{"fido":{"legs":4}}},{"open":true}]"#), existing, &Limits::default());
        assert_eq!(
            plan.writes,
            [Write::Delete(r#"t"pets","rex","legs""#.into()), Write::Put("vopen".into(), true.into())]
        );
        assert!(plan.refusal().is_none());
    }
}
