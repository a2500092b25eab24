//! Integration tests of `cairn-sqldb` against section 8 (D1) of `cloudflare-semantics.md`, on a
//! real runtime with an injected clock.
//!
//! Run with `cargo nextest run -p cairn-sqldb`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod databases;
mod dump;
mod migrations;
mod query;
mod values;

use std::sync::Arc;

use cairn_runtime::Runtime;
use cairn_sqldb::{QueryResult, SqlService, Statement};
use cairn_storage::{ManualClock, SqlValue};

/// The tests' start time, ms since the epoch (2023-11-14T22:13:20.250Z).
pub(crate) const T0_MS: i64 = 1_700_000_000_250;

/// A runtime on a temporary directory with a manual clock, and the SQL service over it.
pub(crate) struct Env {
    pub(crate) clock: ManualClock,
    pub(crate) rt: Runtime,
    pub(crate) sql: SqlService,
    dir: tempfile::TempDir,
}

impl Env {
    pub(crate) fn new() -> Env {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let clock = ManualClock::new(T0_MS);
        let (rt, sql) = open(dir.path(), &clock);
        Env { clock, rt, sql, dir }
    }

    /// Closes the runtime and opens a new one (and a new service) on the same directory.
    pub(crate) fn restart(&mut self) {
        self.rt.close();
        let (rt, sql) = open(self.dir.path(), &self.clock);
        self.rt = rt;
        self.sql = sql;
    }

    /// Creates a database and returns its uuid.
    pub(crate) async fn database(&self, name: &str) -> String {
        self.sql.create_database(name).await.expect("create a database").uuid
    }

    /// Runs one SQL text without parameters and returns the results of its statements.
    pub(crate) async fn run(&self, db: &str, sql: &str) -> Vec<QueryResult> {
        self.sql.query(db, vec![Statement::new(sql)]).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The rows of one query (the last statement of `sql`).
    pub(crate) async fn rows(&self, db: &str, sql: &str) -> Vec<Vec<SqlValue>> {
        self.run(db, sql).await.pop().expect("a result").rows
    }

    /// A query that returns one integer.
    pub(crate) async fn int(&self, db: &str, sql: &str) -> i64 {
        let rows = self.rows(db, sql).await;
        rows.first().and_then(|r| r.first()).and_then(SqlValue::as_i64).unwrap_or_else(|| panic!("{sql}: {rows:?}"))
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Before the temporary directory goes.
        self.rt.close();
    }
}

fn open(dir: &std::path::Path, clock: &ManualClock) -> (Runtime, SqlService) {
    let rt = Runtime::builder(dir).shards(1).clock(Arc::new(clock.clone())).open().expect("open the runtime");
    let sql = SqlService::new(rt.clone()).expect("SQL service");
    (rt, sql)
}

/// Text, as a SQL value.
pub(crate) fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_owned())
}

/// Asserts that `r` failed with this exact message and code, and returns the error.
#[track_caller]
pub(crate) fn expect_err<T: std::fmt::Debug>(
    r: cairn_sqldb::Result<T>,
    code: &str,
    message: &str,
) -> cairn_sqldb::Error {
    match r {
        Ok(v) => panic!("expected {code} ({message}), got Ok({v:?})"),
        Err(e) => {
            assert_eq!((e.code(), e.to_string().as_str()), (code, message));
            e
        }
    }
}
