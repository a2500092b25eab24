//! Explicit transactions: savepoints nested inside the event's implicit transaction.

use crate::list::ListOptions;
use crate::sql_value::{Cursor, SqlValue};
use crate::value::Value;
use crate::{Error, ObjectStorage, Result};

/// An explicit transaction, handed to the closure of [`ObjectStorage::transaction`].
///
/// After [`Transaction::rollback`] every operation fails with
/// [`Error::TransactionRolledBack`]. Returning `Err` from the closure rolls back too.
#[derive(Debug)]
pub struct Transaction<'a> {
    storage: &'a mut ObjectStorage,
    savepoint: String,
    rolled_back: bool,
}

impl ObjectStorage {
    /// Runs `f` in an explicit transaction (a savepoint; nesting is allowed). Writes made in it
    /// commit with the event if `f` returns `Ok` and did not roll back; if `f` returns `Err`,
    /// they are undone and the same error is returned. The object is not reset by a user error.
    ///
    /// # Errors
    /// The error of `f`; [`Error::Critical`] if a critical error happened inside.
    pub fn transaction<R, E, F>(&mut self, f: F) -> Result<R, E>
    where
        E: From<Error>,
        F: FnOnce(&mut Transaction<'_>) -> Result<R, E>,
    {
        let depth = self.depth + 1;
        let savepoint = format!("_cairn_savepoint_{depth}");
        self.savepoint(&savepoint)?;
        self.depth = depth;
        let mut txn = Transaction { storage: self, savepoint, rolled_back: false };
        let result = f(&mut txn);
        let Transaction { savepoint, rolled_back, .. } = txn;
        self.depth = depth - 1;
        finish(self, &savepoint, result, rolled_back)
    }

    /// Runs `f` in a savepoint with direct access to the storage; `Err` rolls back.
    ///
    /// # Errors
    /// The error of `f`; "Cannot commit transaction due to an earlier SQL critical error"
    /// ([`Error::Critical`]) if `f` returned `Ok` after a critical error.
    pub fn transaction_sync<R, E, F>(&mut self, f: F) -> Result<R, E>
    where
        E: From<Error>,
        F: FnOnce(&mut ObjectStorage) -> Result<R, E>,
    {
        let depth = self.depth + 1;
        let savepoint = format!("_cairn_sync_savepoint_{depth}");
        self.savepoint(&savepoint)?;
        self.depth = depth;
        let result = f(self);
        self.depth = depth - 1;
        finish(self, &savepoint, result, false)
    }
}

fn finish<R, E: From<Error>>(
    s: &mut ObjectStorage,
    savepoint: &str,
    result: Result<R, E>,
    rolled_back: bool,
) -> Result<R, E> {
    if s.is_broken() {
        // SQLite already rolled back the whole event; nothing to release.
        return match result {
            Ok(_) => Err(Error::Critical {
                message: "Cannot commit transaction due to an earlier SQL critical error".to_owned(),
            }
            .into()),
            Err(e) => Err(e),
        };
    }
    match result {
        Ok(r) => {
            s.release(savepoint)?;
            let _ = rolled_back;
            Ok(r)
        }
        Err(e) => {
            s.rollback_to(savepoint)?;
            s.release(savepoint)?;
            Err(e)
        }
    }
}

impl Transaction<'_> {
    fn live(&mut self, op: &'static str) -> Result<&mut ObjectStorage> {
        if self.rolled_back {
            return Err(Error::TransactionRolledBack { op });
        }
        Ok(self.storage)
    }

    /// Undoes every write of this transaction; later operations on it fail. May be called
    /// more than once.
    ///
    /// # Errors
    /// [`Error::Critical`] if the savepoint cannot be rolled back.
    pub fn rollback(&mut self) -> Result<()> {
        if !self.rolled_back {
            self.storage.rollback_to(&self.savepoint)?;
            self.rolled_back = true;
        }
        Ok(())
    }

    /// See [`ObjectStorage::get`].
    ///
    /// # Errors
    /// As there, plus [`Error::TransactionRolledBack`].
    pub fn get<T: serde::de::DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>> {
        self.live("get()")?.get(key)
    }
    /// See [`ObjectStorage::get_value`].
    ///
    /// # Errors
    /// As there, plus [`Error::TransactionRolledBack`].
    pub fn get_value(&mut self, key: &str) -> Result<Option<Value>> {
        self.live("get()")?.get_value(key)
    }
    /// See [`ObjectStorage::get_many`].
    ///
    /// # Errors
    /// As there, plus [`Error::TransactionRolledBack`].
    pub fn get_many<S: AsRef<str>>(&mut self, keys: &[S]) -> Result<Vec<(String, Value)>> {
        self.live("get()")?.get_many(keys)
    }
    /// See [`ObjectStorage::put`].
    ///
    /// # Errors
    /// As there, plus [`Error::TransactionRolledBack`].
    pub fn put<T: serde::Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<()> {
        self.live("put()")?.put(key, value)
    }
    /// See [`ObjectStorage::put_many`].
    ///
    /// # Errors
    /// As there, plus [`Error::TransactionRolledBack`].
    pub fn put_many<S: AsRef<str>>(&mut self, entries: &[(S, Value)]) -> Result<()> {
        self.live("put()")?.put_many(entries)
    }
    /// See [`ObjectStorage::delete`].
    ///
    /// # Errors
    /// As there, plus [`Error::TransactionRolledBack`].
    pub fn delete(&mut self, key: &str) -> Result<bool> {
        self.live("delete()")?.delete(key)
    }
    /// See [`ObjectStorage::delete_many`].
    ///
    /// # Errors
    /// As there, plus [`Error::TransactionRolledBack`].
    pub fn delete_many<S: AsRef<str>>(&mut self, keys: &[S]) -> Result<usize> {
        self.live("delete()")?.delete_many(keys)
    }
    /// See [`ObjectStorage::list`].
    ///
    /// # Errors
    /// As there, plus [`Error::TransactionRolledBack`].
    pub fn list(&mut self, options: &ListOptions) -> Result<Vec<(String, Value)>> {
        self.live("list()")?.list(options)
    }
    /// Always fails: `delete_all` cannot run inside a transaction.
    ///
    /// # Errors
    /// [`Error::DeleteAllInTransaction`].
    pub fn delete_all(&mut self) -> Result<()> {
        Err(Error::DeleteAllInTransaction)
    }
    /// See [`ObjectStorage::get_alarm`].
    ///
    /// # Errors
    /// As there, plus [`Error::TransactionRolledBack`].
    pub fn get_alarm(&mut self) -> Result<Option<i64>> {
        self.live("getAlarm()")?.get_alarm()
    }
    /// See [`ObjectStorage::set_alarm`].
    ///
    /// # Errors
    /// As there, plus [`Error::TransactionRolledBack`].
    pub fn set_alarm(&mut self, time_ms: i64) -> Result<()> {
        self.live("setAlarm()")?.set_alarm(time_ms)
    }
    /// See [`ObjectStorage::delete_alarm`].
    ///
    /// # Errors
    /// As there, plus [`Error::TransactionRolledBack`].
    pub fn delete_alarm(&mut self) -> Result<()> {
        self.live("deleteAlarm()")?.delete_alarm()
    }
    /// See [`ObjectStorage::exec`].
    ///
    /// # Errors
    /// As there, plus [`Error::TransactionRolledBack`].
    pub fn exec(&mut self, sql: &str, params: &[SqlValue]) -> Result<Cursor> {
        self.live("exec()")?.exec(sql, params)
    }
    /// A nested transaction; see [`ObjectStorage::transaction`].
    ///
    /// # Errors
    /// As there, plus [`Error::TransactionRolledBack`].
    pub fn transaction<R, E, F>(&mut self, f: F) -> Result<R, E>
    where
        E: From<Error>,
        F: FnOnce(&mut Transaction<'_>) -> Result<R, E>,
    {
        self.live("transaction()")?.transaction(f)
    }
}
