//! Integration tests of `cairn-store`: the store (reads, writes, transactions, listeners,
//! schemas, JSON) and its persisters (a JSON file, SQLite and PostgreSQL in JSON and tabular
//! mode, Cairn objects embedded and over HTTP, and a controllable in-memory back end for the
//! persister's own rules).
//!
//! The PostgreSQL tests need a server: `bash tests/postgres/ensure.sh` starts one (installing
//! it if needed) and writes its URL where the tests find it; without one they fail.
//!
//! Determinism: nothing sleeps to wait. Tests that wait for a background load or save poll a
//! condition every few milliseconds until a deadline ([`eventually`]); auto-load intervals are
//! set short in the tests. Run with `cargo nextest run -p cairn-store`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "cairn")]
mod cairn_embedded;
#[cfg(feature = "cairn")]
mod cairn_remote;
mod content;
mod file;
mod memory;
#[cfg(feature = "postgres")]
mod postgres_auto_load;
#[cfg(feature = "postgres")]
mod postgres_json;
#[cfg(feature = "postgres")]
mod postgres_support;
#[cfg(feature = "postgres")]
mod postgres_tabular;
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

/// [`eventually`] for conditions that need to await (a query to a database or a server).
#[cfg(any(feature = "postgres", feature = "cairn"))]
pub(crate) async fn eventually_async<F: std::future::Future<Output = bool>>(
    what: &str,
    mut condition: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition().await {
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
