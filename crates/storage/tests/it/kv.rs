//! The KV API: get, put, delete and their batch forms, values, update, delete_all (spec 1.2 to 1.6).

use cairn_storage::{Error, ListOptions, Value};
use serde_json::json;

use crate::{Obj, all_keys, expect_code, int, j, keys, seed, user_schema};

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Player {
    name: String,
    score: i64,
    tags: Vec<String>,
    nickname: Option<String>,
    ratio: f64,
}

#[test]
fn get_of_a_missing_key_returns_none() {
    let mut obj = Obj::new();
    assert_eq!(obj.get::<i64>("nope").unwrap(), None);
    assert_eq!(obj.get_value("nope").unwrap(), None);
}

#[test]
fn a_serde_struct_round_trips_exactly() {
    let mut obj = Obj::new();
    let p = Player {
        name: "Ada \u{1F600} \"quoted\" \\ back".into(),
        score: -42,
        tags: vec!["x".into(), String::new()],
        nickname: None,
        ratio: 0.1,
    };
    obj.commit_event(|s| s.put("player", &p));
    assert_eq!(obj.get::<Player>("player").unwrap(), Some(p));
}

#[test]
fn json_values_round_trip_exactly() {
    let mut obj = Obj::new();
    let values = [
        json!(null),
        json!(true),
        json!(0),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(1.5e300),
        json!(""),
        json!("line\nbreak\u{0}nul \u{FFFF}"),
        json!([1, "two", [3], {"four": 4}]),
        json!({"nested": {"deep": [null, false]}, "": "empty key"}),
    ];
    obj.commit_event(|s| {
        for (i, v) in values.iter().enumerate() {
            s.put(&format!("k{i}"), v)?;
        }
        Ok(())
    });
    for (i, v) in values.iter().enumerate() {
        let key = format!("k{i}");
        assert_eq!(obj.get::<serde_json::Value>(&key).unwrap().as_ref(), Some(v), "{key}");
        assert_eq!(obj.get_value(&key).unwrap(), Some(j(v.clone())), "{key}");
    }
}

#[test]
fn raw_bytes_round_trip_exactly() {
    let mut obj = Obj::new();
    let bytes: Vec<u8> = (0..=255).chain([0xFF, 0x00, 0xC3]).collect();
    obj.commit_event(|s| {
        s.put_bytes("bin", &bytes)?;
        s.put_bytes("empty", &[])?;
        s.put_value("via-value", &Value::Bytes(vec![b'j', b'{']))
    });
    assert_eq!(obj.get_value("bin").unwrap(), Some(Value::Bytes(bytes.clone())));
    assert_eq!(obj.get_value("empty").unwrap(), Some(Value::Bytes(Vec::new())));
    // A byte value that starts like a JSON tag stays bytes.
    assert_eq!(obj.get_value("via-value").unwrap(), Some(Value::Bytes(vec![b'j', b'{'])));
    // Bytes deserialize as a byte sequence.
    assert_eq!(obj.get::<Vec<u8>>("bin").unwrap(), Some(bytes.clone()));
    assert_eq!(Value::Bytes(bytes.clone()).into_bytes(), bytes);
}

#[test]
fn put_value_stores_json_and_bytes_as_given() {
    let mut obj = Obj::new();
    obj.commit_event(|s| {
        s.put_value("json", &j(json!({"a": [1, 2]})))?;
        s.put_value("bytes", &Value::from(vec![1u8, 2, 3]))
    });
    assert_eq!(obj.get_value("json").unwrap(), Some(j(json!({"a": [1, 2]}))));
    assert_eq!(obj.get_value("bytes").unwrap(), Some(Value::Bytes(vec![1, 2, 3])));
}

#[test]
fn get_with_the_wrong_type_is_a_serialization_error() {
    let mut obj = Obj::new();
    obj.commit_event(|s| s.put("k", "text"));
    expect_code(obj.get::<i64>("k"), "storage.serialization");
    expect_code(Value::Json(json!("x")).to_serde::<u8>("k"), "storage.serialization");
}

#[test]
fn put_overwrites_the_previous_value() {
    let mut obj = Obj::new();
    obj.commit_event(|s| s.put("k", &1));
    obj.commit_event(|s| s.put("k", &json!({"v": 2})));
    assert_eq!(obj.get_value("k").unwrap(), Some(j(json!({"v": 2}))));
    obj.commit_event(|s| s.put_bytes("k", b"raw"));
    assert_eq!(obj.get_value("k").unwrap(), Some(Value::Bytes(b"raw".to_vec())));
}

#[test]
fn reads_see_the_open_events_writes_before_commit() {
    let mut obj = Obj::new();
    obj.put("k", &1).unwrap();
    assert_eq!(obj.get::<i64>("k").unwrap(), Some(1));
    obj.delete("k").unwrap();
    assert_eq!(obj.get::<i64>("k").unwrap(), None);
    obj.put("k", &2).unwrap();
    obj.commit().unwrap();
    assert_eq!(obj.get::<i64>("k").unwrap(), Some(2));
}

#[test]
fn the_empty_string_is_a_valid_key() {
    let mut obj = Obj::new();
    obj.commit_event(|s| {
        s.put("a", &1)?;
        s.put("", &0)
    });
    assert_eq!(obj.get::<i64>("").unwrap(), Some(0));
    assert_eq!(all_keys(&mut obj), ["", "a"]);
    assert!(obj.commit_event(|s| s.delete("")));
    assert_eq!(obj.get::<i64>("").unwrap(), None);
}

#[test]
fn keys_with_nul_and_unicode_round_trip() {
    let mut obj = Obj::new();
    let ks = ["a\0b", "a\0", "\u{1F600}", "e\u{301}", "\u{E9}", "\u{FFFF}"];
    seed(&mut obj, &ks);
    for (i, k) in ks.iter().enumerate() {
        assert_eq!(obj.get::<usize>(k).unwrap(), Some(i), "{k:?}");
    }
    assert_eq!(all_keys(&mut obj).len(), ks.len());
}

#[test]
fn delete_returns_whether_the_key_existed() {
    let mut obj = Obj::new();
    seed(&mut obj, &["a"]);
    assert!(obj.commit_event(|s| s.delete("a")));
    assert!(!obj.commit_event(|s| s.delete("a")));
    assert!(!obj.commit_event(|s| s.delete("never")));
}

#[test]
fn delete_many_returns_how_many_keys_existed() {
    let mut obj = Obj::new();
    seed(&mut obj, &["a", "b", "c"]);
    let n = obj.commit_event(|s| s.delete_many(&["a", "a", "c", "zz", ""]));
    assert_eq!(n, 2);
    assert_eq!(all_keys(&mut obj), ["b"]);
    assert_eq!(obj.commit_event(|s| s.delete_many::<&str>(&[])), 0);
    assert_eq!(obj.commit_event(|s| s.delete_many(&["a", "c"])), 0);
}

#[test]
fn get_many_returns_only_present_keys_sorted_and_deduplicated() {
    let mut obj = Obj::new();
    seed(&mut obj, &["b", "a", "\u{1F600}", "\u{FFFF}", ""]);
    let got = obj.get_many(&["\u{1F600}", "b", "missing", "a", "b", "\u{FFFF}", "", "a"]).unwrap();
    // Byte order: "\u{FFFF}" (EF BF BF) sorts before the emoji (F0 9F 98 80).
    assert_eq!(keys(&got), ["", "a", "b", "\u{FFFF}", "\u{1F600}"]);
    assert_eq!(got[1].1, j(json!(1)));
    assert!(obj.get_many::<&str>(&[]).unwrap().is_empty());
    assert!(obj.get_many(&["x", "y"]).unwrap().is_empty());
}

#[test]
fn put_many_writes_every_pair_atomically_and_the_last_duplicate_wins() {
    let mut obj = Obj::new();
    obj.commit_event(|s| s.put_many(&[("a", j(json!(1))), ("b", Value::Bytes(vec![2])), ("a", j(json!(3)))]));
    assert_eq!(obj.get_value("a").unwrap(), Some(j(json!(3))));
    assert_eq!(obj.get_value("b").unwrap(), Some(Value::Bytes(vec![2])));
    obj.commit_event(|s| s.put_many::<&str>(&[]));
    assert_eq!(all_keys(&mut obj), ["a", "b"]);
}

#[test]
fn put_many_with_one_oversized_key_writes_nothing() {
    let mut obj = Obj::new();
    seed(&mut obj, &["a"]);
    let long = "k".repeat(2049);
    let r = obj.put_many(&[("a", j(json!("changed"))), ("new", j(json!(1))), (long.as_str(), j(json!(2)))]);
    expect_code(r, "storage.key_too_large");
    assert!(!obj.has_pending_writes());
    assert_eq!(obj.commit().unwrap(), None);
    assert_eq!(obj.get::<usize>("a").unwrap(), Some(0));
    assert_eq!(all_keys(&mut obj), ["a"]);
}

#[test]
fn put_many_with_one_oversized_value_writes_nothing() {
    let mut obj = Obj::new();
    let r = obj.put_many(&[("a", j(json!(1))), ("b", Value::Bytes(vec![0; 131_073])), ("c", j(json!(3)))]);
    expect_code(r, "storage.value_too_large");
    obj.commit().unwrap();
    assert!(all_keys(&mut obj).is_empty());
}

#[test]
fn delete_many_with_one_oversized_key_deletes_nothing() {
    let mut obj = Obj::new();
    seed(&mut obj, &["a", "b"]);
    let long = "k".repeat(2049);
    expect_code(obj.delete_many(&["a", long.as_str(), "b"]), "storage.key_too_large");
    obj.commit().unwrap();
    assert_eq!(all_keys(&mut obj), ["a", "b"]);
}

#[test]
fn update_reads_modifies_and_writes_the_value() {
    let mut obj = Obj::new();
    let first = obj.commit_event(|s| s.update("counter", 10_i64, |n| n + 1));
    assert_eq!(first, 11);
    let second = obj.commit_event(|s| s.update("counter", 10_i64, |n| n * 2));
    assert_eq!(second, 22);
    assert_eq!(obj.get::<i64>("counter").unwrap(), Some(22));
    let list = obj.commit_event(|s| {
        s.update("list", Vec::<String>::new(), |mut v| {
            v.push("x".into());
            v
        })
    });
    assert_eq!(list, ["x"]);
}

#[test]
fn update_of_a_value_of_another_type_fails_without_writing() {
    let mut obj = Obj::new();
    obj.commit_event(|s| s.put("k", "text"));
    expect_code(obj.update("k", 0_i64, |n| n + 1), "storage.serialization");
    assert_eq!(obj.commit().unwrap(), None);
    assert_eq!(obj.get::<String>("k").unwrap().as_deref(), Some("text"));
}

#[test]
fn delete_all_clears_kv_sql_and_alarm() {
    let mut obj = Obj::new();
    obj.commit_event(|s| {
        s.put("a", &1)?;
        s.put_bytes("b", b"x")?;
        s.exec("CREATE TABLE t(x INTEGER PRIMARY KEY, y TEXT)", &[])?;
        s.exec("CREATE INDEX t_y ON t(y)", &[])?;
        s.exec("CREATE VIEW v AS SELECT y FROM t", &[])?;
        s.exec("CREATE TRIGGER trg AFTER INSERT ON t BEGIN SELECT 1; END", &[])?;
        s.exec("CREATE TABLE counter(n INTEGER PRIMARY KEY AUTOINCREMENT)", &[])?;
        s.exec("INSERT INTO counter DEFAULT VALUES", &[])?;
        s.exec("INSERT INTO t(y) VALUES ('hello')", &[])?;
        s.set_alarm(i64::MAX / 2)
    });
    assert_eq!(user_schema(&mut obj), ["counter", "t", "t_y", "trg", "v"]);
    obj.commit_event(|s| s.delete_all());
    assert!(all_keys(&mut obj).is_empty());
    assert!(user_schema(&mut obj).is_empty());
    assert_eq!(obj.get_alarm().unwrap(), None);
    // The engine's own storage still works, and names can be reused.
    obj.commit_event(|s| {
        s.exec("CREATE TABLE t(z)", &[])?;
        s.put("c", &3)
    });
    assert_eq!(all_keys(&mut obj), ["c"]);
    obj.reopen();
    assert_eq!(obj.get_alarm().unwrap(), None);
    assert_eq!(all_keys(&mut obj), ["c"]);
}

#[test]
fn delete_all_drops_tables_linked_by_foreign_keys() {
    let mut obj = Obj::new();
    obj.commit_event(|s| {
        s.exec("PRAGMA foreign_keys = ON", &[])?;
        s.exec("CREATE TABLE parent(id INTEGER PRIMARY KEY)", &[])?;
        s.exec("CREATE TABLE child(id INTEGER PRIMARY KEY, p INTEGER REFERENCES parent(id))", &[])?;
        s.exec("INSERT INTO parent VALUES (1), (2)", &[])?;
        s.exec("INSERT INTO child VALUES (10, 1), (20, 2)", &[])?;
        Ok(())
    });
    obj.commit_event(|s| s.delete_all());
    assert!(user_schema(&mut obj).is_empty());
}

#[test]
fn delete_all_drops_fts5_tables_and_their_shadow_tables() {
    let mut obj = Obj::new();
    obj.commit_event(|s| {
        s.exec("CREATE VIRTUAL TABLE docs USING fts5(body)", &[])?;
        s.exec("INSERT INTO docs(body) VALUES ('hello world')", &[])?;
        Ok(())
    });
    assert!(user_schema(&mut obj).len() > 1);
    obj.commit_event(|s| s.delete_all());
    assert!(user_schema(&mut obj).is_empty());
}

#[test]
fn writes_after_delete_all_in_the_same_event_are_visible_and_commit() {
    let mut obj = Obj::new();
    seed(&mut obj, &["old1", "old2"]);
    obj.commit_event(|s| {
        s.delete_all()?;
        assert_eq!(s.get::<usize>("old1")?, None);
        s.put("new", &1)?;
        s.exec("CREATE TABLE fresh(x)", &[])?;
        s.set_alarm(i64::MAX / 2)?;
        assert_eq!(s.get::<i64>("new")?, Some(1));
        Ok(())
    });
    assert_eq!(all_keys(&mut obj), ["new"]);
    assert_eq!(user_schema(&mut obj), ["fresh"]);
    assert_eq!(obj.get_alarm().unwrap(), Some(i64::MAX / 2));
}

#[test]
fn delete_all_in_a_rolled_back_event_changes_nothing() {
    let mut obj = Obj::new();
    obj.commit_event(|s| {
        s.put("a", &1)?;
        s.exec("CREATE TABLE t(x)", &[])?;
        s.set_alarm(i64::MAX / 2)
    });
    let r: Result<(), Error> = obj.event(|s| {
        s.delete_all()?;
        assert_eq!(s.get_alarm()?, None);
        Err(Error::SqlNoStatement)
    });
    assert!(r.is_err());
    assert_eq!(all_keys(&mut obj), ["a"]);
    assert_eq!(user_schema(&mut obj), ["t"]);
    assert_eq!(obj.get_alarm().unwrap(), Some(i64::MAX / 2));
}

#[test]
fn delete_all_is_refused_inside_a_transaction() {
    let mut obj = Obj::new();
    seed(&mut obj, &["a"]);
    obj.transaction(|t| {
        let e = expect_code(t.delete_all(), "storage.delete_all_in_transaction");
        assert_eq!(e.to_string(), "Cannot call deleteAll() within a transaction");
        Ok::<_, Error>(())
    })
    .unwrap();
    obj.transaction_sync(|s| {
        expect_code(s.delete_all(), "storage.delete_all_in_transaction");
        Ok::<_, Error>(())
    })
    .unwrap();
    obj.commit().unwrap();
    assert_eq!(all_keys(&mut obj), ["a"]);
}

#[test]
fn delete_all_on_an_empty_object_succeeds() {
    let mut obj = Obj::new();
    obj.commit_event(|s| s.delete_all());
    assert!(all_keys(&mut obj).is_empty());
    assert_eq!(
        int(
            &mut obj,
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_cairn\\_%' ESCAPE '\\'"
        ),
        0
    );
}

#[test]
fn list_returns_values_as_stored() {
    let mut obj = Obj::new();
    obj.commit_event(|s| {
        s.put("j", &json!({"x": 1}))?;
        s.put_bytes("b", &[9, 8])
    });
    let got = obj.list(&ListOptions::new()).unwrap();
    assert_eq!(got, [("b".to_owned(), Value::Bytes(vec![9, 8])), ("j".to_owned(), j(json!({"x": 1})))]);
}
