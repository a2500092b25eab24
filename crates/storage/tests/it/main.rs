//! Conformance suite for `cairn-storage`, following sections 1 to 5 of
//! `cloudflare-semantics.md`, plus a model-based property test.
//!
//! Run with `cargo test -p cairn-storage --test it`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alarm;
mod authorizer;
mod bookmark;
mod events;
mod kv;
mod layout;
mod limits;
mod list;
mod model;
mod persistence;
mod sql;
mod transactions;

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_storage::{Limits, ListOptions, ManualClock, ObjectStorage, OpenOptions, SqlValue, Value};

/// An object file in its own temporary directory, open (and reopenable) with fixed options.
pub(crate) struct Obj {
    _dir: tempfile::TempDir,
    pub(crate) path: PathBuf,
    pub(crate) options: OpenOptions,
    storage: Option<ObjectStorage>,
}

impl Obj {
    /// A new object with default options.
    pub(crate) fn new() -> Self {
        Self::with_options(OpenOptions::default())
    }

    /// A new object with the given limits.
    pub(crate) fn with_limits(limits: Limits) -> Self {
        Self::with_options(OpenOptions { limits: Arc::new(limits), ..OpenOptions::default() })
    }

    /// A new object reading the given manual clock.
    pub(crate) fn with_clock(clock: &ManualClock) -> Self {
        Self::with_options(OpenOptions { clock: Arc::new(clock.clone()), ..OpenOptions::default() })
    }

    /// A new object with the given options.
    pub(crate) fn with_options(options: OpenOptions) -> Self {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let path = dir.path().join("object.db");
        let storage = ObjectStorage::open(&path, &options).expect("open the object");
        Obj { _dir: dir, path, options, storage: Some(storage) }
    }

    /// Closes the object (dropping any uncommitted event) and opens its file again.
    pub(crate) fn reopen(&mut self) {
        self.while_closed(|_| {});
    }

    /// Closes the object, runs `f` on its file, and opens it again.
    pub(crate) fn while_closed(&mut self, f: impl FnOnce(&Path)) {
        drop(self.storage.take());
        f(&self.path);
        self.storage = Some(ObjectStorage::open(&self.path, &self.options).expect("reopen the object"));
    }

    /// Runs `f` as one event and expects it to succeed.
    pub(crate) fn commit_event<R>(&mut self, f: impl FnOnce(&mut ObjectStorage) -> cairn_storage::Result<R>) -> R {
        self.event(f).expect("event succeeds")
    }
}

impl Deref for Obj {
    type Target = ObjectStorage;
    fn deref(&self) -> &ObjectStorage {
        self.storage.as_ref().expect("object is open")
    }
}

impl DerefMut for Obj {
    fn deref_mut(&mut self) -> &mut ObjectStorage {
        self.storage.as_mut().expect("object is open")
    }
}

/// A JSON value.
pub(crate) fn j(v: serde_json::Value) -> Value {
    Value::Json(v)
}

/// The keys of a list or get_many result.
pub(crate) fn keys(entries: &[(String, Value)]) -> Vec<String> {
    entries.iter().map(|(k, _)| k.clone()).collect()
}

/// Every key of the object, in order.
pub(crate) fn all_keys(s: &mut ObjectStorage) -> Vec<String> {
    keys(&s.list(&ListOptions::new()).expect("list"))
}

/// Stores `key -> index` for each key, in one committed event.
pub(crate) fn seed(obj: &mut Obj, ks: &[&str]) {
    obj.commit_event(|s| {
        for (i, k) in ks.iter().enumerate() {
            s.put(k, &i)?;
        }
        Ok(())
    });
}

/// Runs a query and returns its rows as arrays.
pub(crate) fn rows(s: &mut ObjectStorage, sql: &str, params: &[SqlValue]) -> Vec<Vec<SqlValue>> {
    s.exec(sql, params).unwrap_or_else(|e| panic!("{sql}: {e}")).raw().collect()
}

/// Runs a query that returns one integer.
pub(crate) fn int(s: &mut ObjectStorage, sql: &str) -> i64 {
    let row = s.exec(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).one().expect("one row");
    row.values()[0].as_i64().expect("an integer")
}

/// Names of the user tables, views and indexes (not the engine's, not SQLite's).
pub(crate) fn user_schema(s: &mut ObjectStorage) -> Vec<String> {
    rows(
        s,
        "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite%' AND name NOT LIKE '\\_cairn\\_%' ESCAPE '\\' ORDER BY name",
        &[],
    )
    .into_iter()
    .map(|r| r[0].as_str().expect("a name").to_owned())
    .collect()
}

/// Asserts that `r` is an error with code `code`, and returns the error.
#[track_caller]
pub(crate) fn expect_code<T: std::fmt::Debug>(r: cairn_storage::Result<T>, code: &str) -> cairn_storage::Error {
    match r {
        Ok(v) => panic!("expected error {code}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code(), code, "unexpected error: {e}");
            e
        }
    }
}
