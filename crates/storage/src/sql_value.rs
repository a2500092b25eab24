//! SQL values, rows and cursors.

use std::sync::Arc;

use rusqlite::types::{ToSqlOutput, ValueRef};

/// A SQLite value: a bound parameter or a result column.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum SqlValue {
    /// NULL.
    Null,
    /// A 64-bit integer.
    Integer(i64),
    /// A double.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl SqlValue {
    /// The integer, if this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            SqlValue::Integer(i) => Some(*i),
            _ => None,
        }
    }
    /// The number as a double, if this is an integer or a real.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            SqlValue::Integer(i) => Some(*i as f64),
            SqlValue::Real(r) => Some(*r),
            _ => None,
        }
    }
    /// The text, if this is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            SqlValue::Text(s) => Some(s),
            _ => None,
        }
    }
    /// The bytes, if this is a blob.
    pub fn as_blob(&self) -> Option<&[u8]> {
        match self {
            SqlValue::Blob(b) => Some(b),
            _ => None,
        }
    }
    /// Whether this is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, SqlValue::Null)
    }

    pub(crate) fn from_ref(v: ValueRef<'_>) -> SqlValue {
        match v {
            ValueRef::Null => SqlValue::Null,
            ValueRef::Integer(i) => SqlValue::Integer(i),
            ValueRef::Real(r) => SqlValue::Real(r),
            ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
        }
    }

    /// Approximate memory held by the value, for the result-size limit.
    pub(crate) fn size(&self) -> usize {
        match self {
            SqlValue::Text(s) => s.len() + 8,
            SqlValue::Blob(b) => b.len() + 8,
            _ => 8,
        }
    }
}

impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            SqlValue::Null => ValueRef::Null,
            SqlValue::Integer(i) => ValueRef::Integer(*i),
            SqlValue::Real(r) => ValueRef::Real(*r),
            SqlValue::Text(s) => ValueRef::Text(s.as_bytes()),
            SqlValue::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

macro_rules! from_impl {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for SqlValue {
            fn from(x: $t) -> Self { SqlValue::$v(x.into()) }
        }
    )*};
}
from_impl!(i64 => Integer, i32 => Integer, u32 => Integer, f64 => Real, String => Text, &str => Text, Vec<u8> => Blob);

impl From<bool> for SqlValue {
    fn from(b: bool) -> Self {
        SqlValue::Integer(i64::from(b))
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// One result row. Column names may repeat; [`Row::get`] returns the last column of a name,
/// as the object form of a Durable Objects row does.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<SqlValue>,
}

impl Row {
    /// The value of the last column named `name`.
    pub fn get(&self, name: &str) -> Option<&SqlValue> {
        self.columns.iter().rposition(|c| c == name).and_then(|i| self.values.get(i))
    }
    /// The values in column order, duplicates included.
    pub fn values(&self) -> &[SqlValue] {
        &self.values
    }
    /// The column names, duplicates included.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }
    /// The row as a JSON object (later duplicate columns win; blobs become arrays of bytes).
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        for (c, v) in self.columns.iter().zip(&self.values) {
            m.insert(c.clone(), serde_json::to_value(v).unwrap_or(serde_json::Value::Null));
        }
        m
    }
    /// The values, consuming the row.
    pub fn into_values(self) -> Vec<SqlValue> {
        self.values
    }
}

/// The result of [`crate::ObjectStorage::exec`]: the rows of the last statement, with its
/// column names and row counters. Iterating yields [`Row`]s; [`Cursor::raw`] yields arrays.
#[derive(Debug)]
pub struct Cursor {
    pub(crate) columns: Arc<[String]>,
    pub(crate) rows: std::vec::IntoIter<Vec<SqlValue>>,
    pub(crate) rows_read: u64,
    pub(crate) rows_written: u64,
    /// `last_insert_rowid()` after the statement (set by `exec_all`).
    pub(crate) last_insert_rowid: i64,
    /// Bytes used by the database after the statement (set by `exec_all`).
    pub(crate) size_after: Option<u64>,
}

impl Cursor {
    /// Column names of the result, duplicates included; empty for statements without columns.
    pub fn column_names(&self) -> &[String] {
        &self.columns
    }
    /// Rows read by the statements (result rows, or rows stepped through by a full scan,
    /// whichever is larger).
    pub fn rows_read(&self) -> u64 {
        self.rows_read
    }
    /// Rows inserted, updated or deleted by the statements (triggers included).
    pub fn rows_written(&self) -> u64 {
        self.rows_written
    }
    /// `last_insert_rowid()` right after the statement; 0 unless the cursor came from
    /// [`crate::ObjectStorage::exec_all`].
    pub fn last_insert_rowid(&self) -> i64 {
        self.last_insert_rowid
    }
    /// Bytes used by the database right after the statement; `None` unless the cursor came
    /// from [`crate::ObjectStorage::exec_all`].
    pub fn size_after(&self) -> Option<u64> {
        self.size_after
    }
    /// The remaining rows as arrays of values, in column order.
    pub fn raw(self) -> impl Iterator<Item = Vec<SqlValue>> {
        self.rows
    }
    /// The remaining rows.
    pub fn to_vec(self) -> Vec<Row> {
        self.collect()
    }
    /// Exactly one row.
    ///
    /// # Errors
    /// [`crate::Error::SqlNoResults`] or [`crate::Error::SqlMultipleResults`].
    pub fn one(mut self) -> crate::Result<Row> {
        let first = self.next().ok_or(crate::Error::SqlNoResults)?;
        if self.rows.next().is_some() {
            return Err(crate::Error::SqlMultipleResults);
        }
        Ok(first)
    }
}

impl Iterator for Cursor {
    type Item = Row;
    fn next(&mut self) -> Option<Row> {
        self.rows.next().map(|values| Row { columns: Arc::clone(&self.columns), values })
    }
}
