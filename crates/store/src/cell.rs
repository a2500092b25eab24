//! The scalars a store holds: [`Cell`] (the content of a cell, and of a value) and [`CellType`].
//!
//! Invariant: a store never holds a number that is not finite. TinyBase's rule is the same (a
//! `NaN` or infinite number has no type there, so it is never written), and JSON cannot carry
//! one anyway.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest integer an `f64` holds exactly (2^53); whole numbers up to it are written to JSON
/// without a fraction, as JavaScript writes them.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// The content of one cell, or of one value: TinyBase's `Cell` and `Value`.
///
/// Serialized to JSON as the bare scalar (`"dog"`, `4`, `true`, `null`); whole numbers are
/// written without a fraction (`4`, not `4.0`), as JavaScript writes them.
///
/// ```
/// use cairn_store::Cell;
/// assert_eq!(Cell::from("dog"), Cell::String("dog".into()));
/// assert_eq!(Cell::from(4), Cell::Number(4.0));
/// assert_eq!(serde_json::to_string(&Cell::from(4)).unwrap(), "4");
/// assert_eq!(serde_json::from_str::<Cell>("null").unwrap(), Cell::Null);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// `null` (TinyBase has it since v7; a schema must allow it with `allowNull`).
    Null,
    /// A boolean.
    Bool(bool),
    /// A number, always finite in a store: a write of `NaN` or an infinity is ignored.
    Number(f64),
    /// A string.
    String(String),
}

/// A value of the store's key-value part: the same scalars as a [`Cell`].
pub type Value = Cell;

/// The type of a cell or value in a schema: TinyBase's `'string' | 'number' | 'boolean'`.
/// Null is not a type of its own: a schema allows it with `allow_null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellType {
    /// A string.
    String,
    /// A finite number.
    Number,
    /// A boolean.
    Boolean,
}

impl fmt::Display for CellType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CellType::String => "string",
            CellType::Number => "number",
            CellType::Boolean => "boolean",
        })
    }
}

impl Cell {
    /// The cell's type, or `None` for [`Cell::Null`] and for a number that is not finite.
    pub fn cell_type(&self) -> Option<CellType> {
        match self {
            Cell::Null => None,
            Cell::Bool(_) => Some(CellType::Boolean),
            Cell::Number(n) if n.is_finite() => Some(CellType::Number),
            Cell::Number(_) => None,
            Cell::String(_) => Some(CellType::String),
        }
    }

    /// Whether a store can hold this cell: anything but a number that is not finite.
    pub fn is_valid(&self) -> bool {
        match self {
            Cell::Number(n) => n.is_finite(),
            _ => true,
        }
    }

    /// Whether this is [`Cell::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Cell::Null)
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Cell::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Cell::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The cell as a `serde_json` value (a number that is not finite becomes `null`).
    pub fn to_json_value(&self) -> serde_json::Value {
        match self {
            Cell::Null => serde_json::Value::Null,
            Cell::Bool(b) => serde_json::Value::Bool(*b),
            Cell::Number(n) => match whole(*n) {
                Some(i) => serde_json::Value::from(i),
                None => serde_json::Number::from_f64(*n).map_or(serde_json::Value::Null, serde_json::Value::Number),
            },
            Cell::String(s) => serde_json::Value::String(s.clone()),
        }
    }

    /// The cell a `serde_json` scalar stands for, or `None` for an array or an object.
    pub fn from_json_value(value: &serde_json::Value) -> Option<Cell> {
        match value {
            serde_json::Value::Null => Some(Cell::Null),
            serde_json::Value::Bool(b) => Some(Cell::Bool(*b)),
            serde_json::Value::Number(n) => n.as_f64().map(Cell::Number),
            serde_json::Value::String(s) => Some(Cell::String(s.clone())),
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => None,
        }
    }
}

/// `n` as an integer when it is whole and exactly representable, for JavaScript-like output.
pub(crate) fn whole(n: f64) -> Option<i64> {
    if n.fract() == 0.0 && n.abs() <= MAX_SAFE_INTEGER {
        // Exact: |n| <= 2^53 fits in an i64 and has no fraction.
        Some(n as i64)
    } else {
        None
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::String(s.to_owned())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::String(s)
    }
}

impl From<&String> for Cell {
    fn from(s: &String) -> Self {
        Cell::String(s.clone())
    }
}

impl From<bool> for Cell {
    fn from(b: bool) -> Self {
        Cell::Bool(b)
    }
}

impl From<f64> for Cell {
    fn from(n: f64) -> Self {
        Cell::Number(n)
    }
}

impl From<f32> for Cell {
    fn from(n: f32) -> Self {
        Cell::Number(f64::from(n))
    }
}

impl From<i32> for Cell {
    fn from(n: i32) -> Self {
        Cell::Number(f64::from(n))
    }
}

impl From<u32> for Cell {
    fn from(n: u32) -> Self {
        Cell::Number(f64::from(n))
    }
}

impl From<i64> for Cell {
    /// Integers beyond 2^53 lose precision, as they do in JavaScript.
    fn from(n: i64) -> Self {
        Cell::Number(n as f64)
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    /// `None` is [`Cell::Null`].
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Null, Into::into)
    }
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Null => serializer.serialize_unit(),
            Cell::Bool(b) => serializer.serialize_bool(*b),
            Cell::Number(n) => match whole(*n) {
                Some(i) => serializer.serialize_i64(i),
                None => serializer.serialize_f64(*n),
            },
            Cell::String(s) => serializer.serialize_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CellVisitor)
    }
}

struct CellVisitor;

impl<'de> Visitor<'de> for CellVisitor {
    type Value = Cell;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a cell: a string, a number, a boolean or null")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Cell, E> {
        Ok(Cell::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Cell, E> {
        Ok(Cell::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Cell, E> {
        Ok(Cell::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cell, E> {
        Ok(Cell::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cell, E> {
        Ok(Cell::Number(v as f64))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cell, E> {
        if v.is_finite() { Ok(Cell::Number(v)) } else { Err(E::custom("a cell's number must be finite")) }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cell, E> {
        Ok(Cell::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Cell, E> {
        Ok(Cell::String(v))
    }
}
