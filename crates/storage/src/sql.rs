//! `exec`: user SQL on the object's private database (spec sections 3.2 to 3.5).

use std::sync::Arc;

use fallible_iterator::FallibleIterator;
use rusqlite::{Batch, StatementStatus};

use crate::sql_value::{Cursor, SqlValue};
use crate::{Error, ObjectStorage, Result};

impl ObjectStorage {
    /// Runs SQL with positional parameters (`?`, `?NNN`) and returns a cursor over the rows of
    /// the last statement.
    ///
    /// Several statements separated by `;` run in order; only the last may have parameters.
    /// Every statement runs to completion before this returns (the cursor holds the rows in
    /// memory, bounded by `max_sql_result_bytes`). Writes join the event's transaction.
    ///
    /// # Errors
    /// [`Error::SqlTooLong`], [`Error::SqlTooManyParams`], [`Error::SqlValueTooLarge`] before
    /// anything runs; [`Error::SqlNoStatement`], [`Error::SqlParamsNotLast`],
    /// [`Error::SqlWrongParameterCount`], [`Error::SqlTransactionStatement`],
    /// [`Error::SqlNotAuthorized`], [`Error::Sql`] from SQLite; [`Error::Critical`] if a critical
    /// error rolled back the event.
    pub fn exec(&mut self, sql: &str, params: &[SqlValue]) -> Result<Cursor> {
        self.check_exec_limits(sql, params)?;
        if self.single_statement_sql.contains(sql) {
            return self.run_cached(sql, params);
        }
        let mut cursors = self.run_statements(sql, params, false)?;
        let single = cursors.len() == 1;
        let last = cursors.pop().ok_or(Error::SqlNoStatement)?;
        if single {
            if self.single_statement_sql.len() >= 256 {
                self.single_statement_sql.clear();
            }
            self.single_statement_sql.insert(sql.into());
        }
        Ok(last)
    }

    /// Like [`ObjectStorage::exec`], but returns one cursor per statement of the text, in
    /// order (what D1's HTTP API reports for `;`-separated statements). Each cursor also knows
    /// the database's size and `last_insert_rowid()` right after its statement
    /// ([`Cursor::size_after`], [`Cursor::last_insert_rowid`]).
    ///
    /// # Errors
    /// As [`ObjectStorage::exec`].
    pub fn exec_all(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<Cursor>> {
        self.check_exec_limits(sql, params)?;
        let cursors = self.run_statements(sql, params, true)?;
        if cursors.is_empty() {
            return Err(Error::SqlNoStatement);
        }
        Ok(cursors)
    }

    /// The rowid of the last row inserted through this connection (SQLite's
    /// `last_insert_rowid()`), 0 if none.
    pub fn last_insert_rowid(&self) -> i64 {
        self.conn().last_insert_rowid()
    }

    /// Rows changed through this connection since it was opened (SQLite's `total_changes()`).
    pub fn total_changes(&self) -> u64 {
        self.conn().total_changes()
    }

    fn check_exec_limits(&self, sql: &str, params: &[SqlValue]) -> Result<()> {
        self.check_usable()?;
        self.forget_denial();
        let limits = &self.limits;
        if sql.len() > limits.max_sql_statement_bytes {
            return Err(Error::SqlTooLong { len: sql.len(), max: limits.max_sql_statement_bytes });
        }
        if params.len() > limits.max_sql_params {
            return Err(Error::SqlTooManyParams { len: params.len(), max: limits.max_sql_params });
        }
        for (i, p) in params.iter().enumerate() {
            let len = match p {
                SqlValue::Text(s) => s.len(),
                SqlValue::Blob(b) => b.len(),
                _ => 0,
            };
            if len > limits.max_sql_value_bytes {
                return Err(Error::SqlValueTooLarge { index: i + 1, len, max: limits.max_sql_value_bytes });
            }
        }
        Ok(())
    }

    /// Runs every statement of `sql`, opening the event's write transaction only when a
    /// statement writes, and returns their cursors.
    fn run_statements(&mut self, sql: &str, params: &[SqlValue], measure: bool) -> Result<Vec<Cursor>> {
        let may_write = self.in_event_txn();
        match self.run_batch(sql, params, may_write, measure)? {
            Outcome::NeedsWrite => {
                self.begin_write()?;
                match self.run_batch(sql, params, true, measure)? {
                    Outcome::Done(c) => Ok(c),
                    Outcome::NeedsWrite => Err(Error::SqlNoStatement),
                }
            }
            Outcome::Done(c) => Ok(c),
        }
    }

    /// Runs the statements of `sql` one by one. With `may_write == false`, stops with
    /// [`Outcome::NeedsWrite`] at the first statement that writes (the statements
    /// before it only read, so running the text again from the start is harmless).
    fn run_batch(&mut self, sql: &str, params: &[SqlValue], may_write: bool, measure: bool) -> Result<Outcome> {
        let max = self.limits.max_sql_result_bytes;
        let mut out = Vec::new();
        let mut consumed_params = false;
        let mut failure = None;
        let mut wrote = false;
        {
            let conn = self.conn();
            let mut batch = Batch::new(conn, sql);
            // The authorizer checks user statements as they are prepared, one at a time, so
            // that a statement may depend on the schema changes of those before it.
            loop {
                let mut stmt = match batch.next() {
                    Ok(Some(s)) => s,
                    Ok(None) => break,
                    Err(e) => {
                        failure = Some(StatementError::Sqlite(e));
                        break;
                    }
                };
                let wanted = stmt.parameter_count();
                if wanted > 0 {
                    // Only the last statement may take parameters: make sure nothing follows.
                    if !matches!(batch.next(), Ok(None)) {
                        return Err(Error::SqlParamsNotLast);
                    }
                    if wanted != params.len() {
                        return Err(Error::SqlWrongParameterCount { expected: wanted, got: params.len() });
                    }
                } else if !params.is_empty() {
                    // If the text is this statement alone, it is the last one and takes no
                    // parameters: refuse before running it.
                    let alone = conn.prepare(sql).is_ok();
                    self.forget_denial();
                    if alone {
                        return Err(Error::SqlWrongParameterCount { expected: 0, got: params.len() });
                    }
                }
                if !stmt.readonly() {
                    if !may_write {
                        return Ok(Outcome::NeedsWrite);
                    }
                    wrote = true;
                }
                let renaming = self.take_alter();
                if renaming && let Err(e) = self.internal(|c| c.execute_batch("SAVEPOINT _cairn_alter")) {
                    failure = Some(StatementError::Sqlite(e));
                    break;
                }
                let before = conn.total_changes();
                let bound = if wanted > 0 { params } else { &[] };
                let result = run_statement(&mut stmt, bound, max);
                if renaming {
                    // The savepoint is undone if the statement failed or gave something a
                    // reserved name; a failure to undo it is a failure of the statement.
                    let violated = result.is_ok() && self.reserved_name_in_schema().unwrap_or(true);
                    let end = if result.is_err() || violated {
                        "ROLLBACK TO _cairn_alter; RELEASE _cairn_alter"
                    } else {
                        "RELEASE _cairn_alter"
                    };
                    if let Err(e) = self.internal(|c| c.execute_batch(end)) {
                        failure = Some(StatementError::Sqlite(e));
                        break;
                    }
                    if violated {
                        return Err(Error::SqlNotAuthorized { message: "not authorized".to_owned() });
                    }
                }
                match result {
                    Ok(mut c) => {
                        c.rows_written = conn.total_changes().saturating_sub(before);
                        if measure {
                            c.last_insert_rowid = conn.last_insert_rowid();
                            c.size_after = self.db_size_bytes();
                        }
                        out.push(c);
                        consumed_params = wanted > 0;
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
                if wanted > 0 {
                    break;
                }
            }
        }
        if wrote {
            self.mark_dirty();
        }
        match failure {
            Some(StatementError::Sqlite(e)) => return Err(self.user_sql_error(e)),
            Some(StatementError::TooLarge) => return Err(Error::SqlResultTooLarge { max }),
            None => {}
        }
        if !params.is_empty() && !consumed_params && !out.is_empty() {
            return Err(Error::SqlWrongParameterCount { expected: 0, got: params.len() });
        }
        Ok(Outcome::Done(out))
    }

    /// Runs a statement known to be alone in its text through the prepared-statement cache.
    fn run_cached(&mut self, sql: &str, params: &[SqlValue]) -> Result<Cursor> {
        let max = self.limits.max_sql_result_bytes;
        let mut failure = None;
        let mut needs_write = false;
        let mut wrote = false;
        let mut out = None;
        {
            let conn = self.conn();
            match conn.prepare_cached(sql) {
                Err(e) => failure = Some(StatementError::Sqlite(e)),
                Ok(mut stmt) => {
                    let wanted = stmt.parameter_count();
                    if wanted != params.len() {
                        return Err(Error::SqlWrongParameterCount { expected: wanted, got: params.len() });
                    }
                    let writes = !stmt.readonly();
                    if writes && !self.in_event_txn() {
                        needs_write = true;
                    } else {
                        wrote = writes;
                        let before = conn.total_changes();
                        match run_statement(&mut stmt, params, max) {
                            Ok(mut c) => {
                                c.rows_written = conn.total_changes().saturating_sub(before);
                                out = Some(c);
                            }
                            Err(e) => failure = Some(e),
                        }
                    }
                }
            }
        }
        if needs_write {
            self.begin_write()?;
            return self.run_cached(sql, params);
        }
        if wrote {
            self.mark_dirty();
        }
        match failure {
            Some(StatementError::Sqlite(e)) => Err(self.user_sql_error(e)),
            Some(StatementError::TooLarge) => Err(Error::SqlResultTooLarge { max }),
            None => out.ok_or(Error::SqlNoStatement),
        }
    }
}

enum Outcome {
    Done(Vec<Cursor>),
    NeedsWrite,
}

enum StatementError {
    Sqlite(rusqlite::Error),
    TooLarge,
}

fn run_statement(
    stmt: &mut rusqlite::Statement<'_>,
    params: &[SqlValue],
    max_bytes: usize,
) -> Result<Cursor, StatementError> {
    let columns: Arc<[String]> = stmt.column_names().map(str::to_owned).collect();
    let ncol = columns.len();
    let mut rows_out = Vec::new();
    let mut size = 0usize;
    {
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter())).map_err(StatementError::Sqlite)?;
        while let Some(row) = rows.next().map_err(StatementError::Sqlite)? {
            let mut values = Vec::with_capacity(ncol);
            for i in 0..ncol {
                let v = SqlValue::from_ref(row.get_ref(i).map_err(StatementError::Sqlite)?);
                size += v.size();
                values.push(v);
            }
            if size > max_bytes {
                return Err(StatementError::TooLarge);
            }
            rows_out.push(values);
        }
    }
    let scanned = u64::try_from(stmt.get_status(StatementStatus::FullscanStep)).unwrap_or(0);
    let returned = rows_out.len() as u64;
    Ok(Cursor {
        columns,
        rows: rows_out.into_iter(),
        rows_read: returned.max(scanned),
        rows_written: 0,
        last_insert_rowid: 0,
        size_after: None,
    })
}
