//! Explicit transactions: `transaction` and `transaction_sync` (spec 2.1 and 2.2).

use cairn_storage::{Error, ListOptions};

use crate::{Obj, all_keys, expect_code, int, keys, seed, user_schema};

/// An application error, distinct from the storage's.
#[derive(Debug, PartialEq)]
enum AppError {
    Storage(String),
    Boom(u32),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Storage(e.code().to_owned())
    }
}

#[test]
fn a_transaction_that_returns_ok_commits_with_the_event() {
    let mut obj = Obj::new();
    let r = obj.transaction(|t| {
        t.put("a", &1)?;
        t.exec("CREATE TABLE t(x)", &[])?;
        assert_eq!(t.get::<i64>("a")?, Some(1));
        Ok::<_, Error>("returned")
    });
    assert_eq!(r.unwrap(), "returned");
    assert!(obj.has_pending_writes());
    obj.commit().unwrap();
    obj.reopen();
    assert_eq!(obj.get::<i64>("a").unwrap(), Some(1));
    assert_eq!(user_schema(&mut obj), ["t"]);
}

#[test]
fn a_transaction_that_returns_err_rolls_back_and_returns_the_same_error() {
    let mut obj = Obj::new();
    seed(&mut obj, &["keep"]);
    obj.put("before", &1).unwrap();
    let r: Result<(), AppError> = obj.transaction(|t| {
        t.put("inside", &2)?;
        t.delete("keep")?;
        t.exec("CREATE TABLE t(x)", &[])?;
        Err(AppError::Boom(7))
    });
    assert_eq!(r, Err(AppError::Boom(7)));
    // Only the transaction's writes are undone; the event's earlier write stays.
    assert_eq!(all_keys(&mut obj), ["before", "keep"]);
    assert!(user_schema(&mut obj).is_empty());
    obj.commit().unwrap();
    assert_eq!(all_keys(&mut obj), ["before", "keep"]);
}

#[test]
fn a_storage_error_inside_a_transaction_rolls_it_back() {
    let mut obj = Obj::new();
    let long = "k".repeat(3000);
    let r = obj.transaction(|t| {
        t.put("a", &1)?;
        t.put(&long, &2)?;
        Ok::<_, Error>(())
    });
    expect_code(r, "storage.key_too_large");
    obj.commit().unwrap();
    assert!(all_keys(&mut obj).is_empty());
}

#[test]
fn after_rollback_every_transaction_operation_fails() {
    let mut obj = Obj::new();
    seed(&mut obj, &["a"]);
    let r = obj.transaction(|t| {
        t.put("b", &2)?;
        t.rollback()?;
        t.rollback()?; // may be called again
        let e = expect_code(t.put("c", &3), "storage.transaction_rolled_back");
        assert_eq!(e.to_string(), "Cannot put() on rolled back transaction");
        let e = expect_code(t.get::<i64>("a"), "storage.transaction_rolled_back");
        assert_eq!(e.to_string(), "Cannot get() on rolled back transaction");
        let e = expect_code(t.delete("a"), "storage.transaction_rolled_back");
        assert_eq!(e.to_string(), "Cannot delete() on rolled back transaction");
        let e = expect_code(t.list(&ListOptions::new()), "storage.transaction_rolled_back");
        assert_eq!(e.to_string(), "Cannot list() on rolled back transaction");
        let e = expect_code(t.set_alarm(1), "storage.transaction_rolled_back");
        assert_eq!(e.to_string(), "Cannot setAlarm() on rolled back transaction");
        let e = expect_code(t.get_alarm(), "storage.transaction_rolled_back");
        assert_eq!(e.to_string(), "Cannot getAlarm() on rolled back transaction");
        let e = expect_code(t.delete_alarm(), "storage.transaction_rolled_back");
        assert_eq!(e.to_string(), "Cannot deleteAlarm() on rolled back transaction");
        expect_code(t.get_value("a"), "storage.transaction_rolled_back");
        expect_code(t.get_many(&["a"]), "storage.transaction_rolled_back");
        expect_code(t.put_many::<&str>(&[]), "storage.transaction_rolled_back");
        expect_code(t.delete_many(&["a"]), "storage.transaction_rolled_back");
        expect_code(t.exec("SELECT 1", &[]), "storage.transaction_rolled_back");
        expect_code(t.transaction(|_| Ok::<_, Error>(())), "storage.transaction_rolled_back");
        Ok::<_, Error>(())
    });
    r.unwrap();
    obj.commit().unwrap();
    assert_eq!(all_keys(&mut obj), ["a"]);
}

#[test]
fn transaction_rollback_undoes_sql_writes() {
    let mut obj = Obj::new();
    obj.commit_event(|s| {
        s.exec("CREATE TABLE t(x)", &[])?;
        s.exec("INSERT INTO t VALUES (1)", &[])?;
        Ok(())
    });
    obj.transaction(|t| {
        t.exec("INSERT INTO t VALUES (2)", &[])?;
        t.exec("CREATE TABLE u(y)", &[])?;
        t.rollback()
    })
    .unwrap();
    obj.commit().unwrap();
    assert_eq!(int(&mut obj, "SELECT count(*) FROM t"), 1);
    assert_eq!(user_schema(&mut obj), ["t"]);
}

#[test]
fn a_transaction_lists_its_own_writes() {
    let mut obj = Obj::new();
    seed(&mut obj, &["a", "b"]);
    obj.transaction(|t| {
        t.put("c", &2)?;
        t.delete("a")?;
        assert_eq!(keys(&t.list(&ListOptions::new())?), ["b", "c"]);
        assert_eq!(keys(&t.get_many(&["a", "b", "c"])?), ["b", "c"]);
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn an_outer_rollback_undoes_inner_committed_work() {
    let mut obj = Obj::new();
    obj.commit_event(|s| s.put("n", &3));
    obj.transaction(|outer| {
        outer.put("n", &6)?;
        outer.transaction(|inner| {
            inner.put("n", &7)?;
            inner.put("inner", &true)?;
            Ok::<_, Error>(())
        })?;
        assert_eq!(outer.get::<i64>("n")?, Some(7));
        outer.rollback()
    })
    .unwrap();
    assert_eq!(obj.get::<i64>("n").unwrap(), Some(3));
    assert_eq!(obj.get::<bool>("inner").unwrap(), None);
}

#[test]
fn an_inner_error_rolls_back_only_the_inner_transaction() {
    let mut obj = Obj::new();
    let r = obj.transaction(|outer| {
        outer.put("outer", &1)?;
        let inner: Result<(), AppError> = outer.transaction(|inner| {
            inner.put("inner", &2)?;
            Err(AppError::Boom(1))
        });
        assert_eq!(inner, Err(AppError::Boom(1)));
        outer.put("after", &3)?;
        Ok::<_, AppError>(())
    });
    r.unwrap();
    obj.commit().unwrap();
    assert_eq!(all_keys(&mut obj), ["after", "outer"]);
}

#[test]
fn deeply_nested_transactions_commit_and_roll_back_independently() {
    let mut obj = Obj::new();
    obj.transaction(|t1| {
        t1.put("1", &1)?;
        t1.transaction(|t2| {
            t2.put("2", &2)?;
            t2.transaction(|t3| {
                t3.put("3", &3)?;
                t3.rollback()
            })?;
            t2.transaction(|t3| {
                t3.put("3b", &3)?;
                Ok::<_, Error>(())
            })
        })
    })
    .unwrap();
    obj.commit().unwrap();
    assert_eq!(all_keys(&mut obj), ["1", "2", "3b"]);
}

#[test]
fn transaction_sync_commits_on_ok_and_rolls_back_on_err() {
    let mut obj = Obj::new();
    let v = obj
        .transaction_sync(|s| {
            s.put("a", &1)?;
            s.exec("CREATE TABLE t(x)", &[])?;
            Ok::<_, Error>(5)
        })
        .unwrap();
    assert_eq!(v, 5);
    let r: Result<(), AppError> = obj.transaction_sync(|s| {
        s.put("b", &2)?;
        s.exec("INSERT INTO t VALUES (1)", &[])?;
        s.delete("a")?;
        Err(AppError::Boom(2))
    });
    assert_eq!(r, Err(AppError::Boom(2)));
    obj.commit().unwrap();
    assert_eq!(all_keys(&mut obj), ["a"]);
    assert_eq!(int(&mut obj, "SELECT count(*) FROM t"), 0);
}

#[test]
fn transaction_sync_nests_and_an_outer_error_undoes_the_inner_work() {
    let mut obj = Obj::new();
    let r: Result<(), AppError> = obj.transaction_sync(|s| {
        s.put("outer", &1)?;
        s.transaction_sync(|s| {
            s.put("inner", &2)?;
            Ok::<_, AppError>(())
        })?;
        s.transaction(|t| t.put("txn", &3))?;
        assert_eq!(keys(&s.list(&ListOptions::new())?), ["inner", "outer", "txn"]);
        Err(AppError::Boom(3))
    });
    assert_eq!(r, Err(AppError::Boom(3)));
    obj.commit().unwrap();
    assert!(all_keys(&mut obj).is_empty());
}

#[test]
fn an_alarm_set_in_a_rolled_back_transaction_is_undone() {
    let mut obj = Obj::new();
    let first = i64::MAX / 4;
    obj.commit_event(|s| s.set_alarm(first));
    obj.transaction(|t| {
        t.set_alarm(first + 1000)?;
        assert_eq!(t.get_alarm()?, Some(first + 1000));
        t.rollback()
    })
    .unwrap();
    assert_eq!(obj.get_alarm().unwrap(), Some(first));
    let r: Result<(), AppError> = obj.transaction_sync(|s| {
        s.delete_alarm()?;
        Err(AppError::Boom(4))
    });
    assert!(r.is_err());
    assert_eq!(obj.get_alarm().unwrap(), Some(first));
    let info = obj.commit().unwrap();
    assert_eq!(info.and_then(|i| i.alarm_change), None);
    obj.reopen();
    assert_eq!(obj.get_alarm().unwrap(), Some(first));
}

#[test]
fn an_alarm_first_set_in_a_rolled_back_transaction_leaves_no_alarm() {
    let mut obj = Obj::new();
    obj.transaction(|t| {
        t.set_alarm(i64::MAX / 4)?;
        t.rollback()
    })
    .unwrap();
    assert_eq!(obj.get_alarm().unwrap(), None);
    obj.commit().unwrap();
    obj.reopen();
    assert_eq!(obj.get_alarm().unwrap(), None);
}

#[test]
fn an_alarm_set_in_a_committed_transaction_is_kept() {
    let mut obj = Obj::new();
    obj.transaction(|t| t.set_alarm(i64::MAX / 4)).unwrap();
    let info = obj.commit().unwrap().unwrap();
    assert_eq!(info.alarm_change, Some(Some(i64::MAX / 4)));
    assert_eq!(obj.get_alarm().unwrap(), Some(i64::MAX / 4));
}

#[test]
fn a_rolled_back_event_undoes_its_committed_transactions() {
    let mut obj = Obj::new();
    let r: Result<(), Error> = obj.event(|s| {
        s.transaction(|t| t.put("a", &1))?;
        s.transaction_sync(|s| s.put("b", &2))?;
        Err(Error::SqlNoStatement)
    });
    assert!(r.is_err());
    assert!(all_keys(&mut obj).is_empty());
    assert!(!obj.has_pending_writes());
}
