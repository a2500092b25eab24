//! Integration tests of `cairn-store`: the store (reads, writes, transactions, listeners,
//! schemas, JSON) and its persisters (a JSON file, SQLite in JSON and tabular mode, and a
//! controllable in-memory back end for the persister's own rules).
//!
//! Determinism: nothing sleeps to wait. Tests that wait for a background load or save poll a
//! condition every few milliseconds until a deadline ([`eventually`]); auto-load intervals are
//! set short in the tests. Run with `cargo nextest run -p cairn-store`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod content;
mod file;
mod memory;
mod schema;
mod sqlite_json;
mod sqlite_tabular;
mod store;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_store::{Content, PersisterOptions};

/// How long a test waits for a condition before it fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// The auto-load poll interval in tests.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// Waits until `condition` holds, checking every few milliseconds; fails after [`DEADLINE`].
pub(crate) async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Content from TinyBase's JSON.
pub(crate) fn content(json: &str) -> Content {
    Content::from_json(json).unwrap()
}

/// Persister options with the test poll interval and a handler that records error codes.
pub(crate) fn options() -> (PersisterOptions, Arc<Mutex<Vec<&'static str>>>) {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let log = errors.clone();
    let options =
        PersisterOptions::new().poll_interval(POLL).on_ignored_error(move |e| log.lock().unwrap().push(e.code()));
    (options, errors)
}
