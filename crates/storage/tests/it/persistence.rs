//! Everything committed survives closing and reopening the file; unreadable files are refused.

use std::sync::Arc;

use cairn_storage::{FORMAT_VERSION, ListOptions, ObjectStorage, OpenOptions, SqlValue, Synchronous, Value};
use serde_json::json;

use crate::{Obj, all_keys, expect_code, int, j, rows, user_schema};

#[test]
fn committed_kv_sql_and_alarm_survive_reopen() {
    let mut obj = Obj::new();
    obj.commit_event(|s| {
        s.put("json", &json!({"a": [1, 2, {"b": null}]}))?;
        s.put_bytes("bytes", &[0, 1, 254, 255])?;
        s.put("", &"empty key")?;
        s.exec("CREATE TABLE t(x INTEGER PRIMARY KEY, y)", &[])?;
        s.exec("CREATE INDEX ty ON t(y)", &[])?;
        s.exec("INSERT INTO t VALUES (1, 'one'), (2, x'00ff')", &[])?;
        s.set_alarm(i64::MAX / 2)
    });
    let before = obj.list(&ListOptions::new()).unwrap();
    let size = obj.database_size().unwrap();
    obj.reopen();
    assert_eq!(obj.list(&ListOptions::new()).unwrap(), before);
    assert_eq!(obj.get_value("json").unwrap(), Some(j(json!({"a": [1, 2, {"b": null}]}))));
    assert_eq!(obj.get_value("bytes").unwrap(), Some(Value::Bytes(vec![0, 1, 254, 255])));
    assert_eq!(
        rows(&mut obj, "SELECT y FROM t ORDER BY x", &[]),
        [vec![SqlValue::Text("one".into())], vec![SqlValue::Blob(vec![0, 255])]]
    );
    assert_eq!(user_schema(&mut obj), ["t", "ty"]);
    assert_eq!(obj.get_alarm().unwrap(), Some(i64::MAX / 2));
    assert_eq!(obj.committed_seq(), 1);
    assert_eq!(obj.database_size().unwrap(), size);
}

#[test]
fn many_events_survive_reopen_in_order() {
    let mut obj = Obj::new();
    for i in 0..20 {
        obj.commit_event(|s| {
            s.put(&format!("k{i:02}"), &i)?;
            if i % 3 == 0 {
                s.delete(&format!("k{:02}", i / 2))?;
            }
            Ok(())
        });
    }
    let expected = all_keys(&mut obj);
    obj.reopen();
    assert_eq!(all_keys(&mut obj), expected);
    assert_eq!(obj.committed_seq(), 20);
}

#[test]
fn two_objects_in_one_directory_are_independent() {
    let dir = tempfile::tempdir().unwrap();
    let options = OpenOptions::default();
    let mut a = ObjectStorage::open(&dir.path().join("a.db"), &options).unwrap();
    let mut b = ObjectStorage::open(&dir.path().join("b.db"), &options).unwrap();
    a.event(|s| s.put("k", &"a")).unwrap();
    b.event(|s| s.put("k", &"b")).unwrap();
    b.event(|s| s.exec("CREATE TABLE only_b(x)", &[]).map(drop)).unwrap();
    assert_eq!(a.get::<String>("k").unwrap().as_deref(), Some("a"));
    assert_eq!(b.get::<String>("k").unwrap().as_deref(), Some("b"));
    assert_eq!(a.committed_seq(), 1);
    assert_eq!(b.committed_seq(), 2);
    expect_code(a.exec("SELECT * FROM only_b", &[]), "sql.error");
}

#[test]
fn synchronous_normal_objects_persist_committed_events() {
    let mut obj = Obj::with_options(OpenOptions { synchronous: Synchronous::Normal, ..OpenOptions::default() });
    obj.commit_event(|s| s.put("a", &1));
    obj.reopen();
    assert_eq!(obj.get::<i64>("a").unwrap(), Some(1));
}

#[test]
fn reopening_with_other_limits_applies_the_new_limits() {
    let mut obj = Obj::new();
    obj.commit_event(|s| s.put("a-long-key", &1));
    obj.options.limits = Arc::new(cairn_storage::Limits { max_key_bytes: 4, ..Default::default() });
    obj.reopen();
    expect_code(obj.get::<i64>("a-long-key"), "storage.key_too_large");
    // Stored data is still listed.
    assert_eq!(all_keys(&mut obj), ["a-long-key"]);
}

#[test]
fn a_file_from_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!("PRAGMA user_version = {}", FORMAT_VERSION + 1)).unwrap();
    }
    let e = expect_code(ObjectStorage::open(&path, &OpenOptions::default()), "storage.unsupported_format");
    assert!(!e.is_user_error());
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0x5A; 8192]).unwrap();
    let e = ObjectStorage::open(&path, &OpenOptions::default()).unwrap_err();
    assert!(!e.is_user_error(), "{e}");
}

#[test]
fn a_value_with_an_unknown_tag_is_reported_as_corrupt() {
    let mut obj = Obj::new();
    obj.commit_event(|s| s.put("k", &1));
    obj.while_closed(|path| {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute("UPDATE _cairn_kv SET value = x'7a00' WHERE key = CAST('k' AS BLOB)", []).unwrap();
    });
    expect_code(obj.get_value("k"), "storage.corrupt_value");
    expect_code(obj.get::<i64>("k"), "storage.corrupt_value");
    expect_code(obj.list(&ListOptions::new()), "storage.corrupt_value");
}

#[test]
fn a_reopened_object_can_keep_writing() {
    let mut obj = Obj::new();
    obj.commit_event(|s| s.exec("CREATE TABLE t(x)", &[]).map(drop));
    for i in 0..3 {
        obj.reopen();
        obj.commit_event(|s| {
            s.exec("INSERT INTO t VALUES (?)", &[i.into()])?;
            s.put(&format!("k{i}"), &i)
        });
    }
    obj.reopen();
    assert_eq!(int(&mut obj, "SELECT count(*) FROM t"), 3);
    assert_eq!(all_keys(&mut obj), ["k0", "k1", "k2"]);
    assert_eq!(obj.committed_seq(), 4);
}
