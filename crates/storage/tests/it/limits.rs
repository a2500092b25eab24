//! KV and SQL limits, with their defaults and when configured (spec 1.2, 3.5; DESIGN section 5).

use std::sync::Arc;

use cairn_storage::{Limits, ListOptions, OpenOptions, SqlValue, Value};

use crate::{Obj, all_keys, expect_code, int};

fn small_limits() -> Limits {
    Limits { max_key_bytes: 10, max_value_bytes: 20, max_batch_keys: 2, ..Limits::default() }
}

#[test]
fn the_default_limits_are_the_documented_ones() {
    let l = Limits::default();
    assert_eq!(l.max_key_bytes, 2048);
    assert_eq!(l.max_value_bytes, 131_072);
    assert_eq!(l.max_batch_keys, 128);
    assert_eq!(l.max_sql_params, 100);
    assert_eq!(l.max_sql_statement_bytes, 100_000);
    assert_eq!(l.max_sql_value_bytes, 2_000_000);
    let parsed: Limits = serde_json::from_str(r#"{"max_key_bytes": 5}"#).unwrap();
    assert_eq!(parsed, Limits { max_key_bytes: 5, ..Limits::default() });
    assert!(serde_json::from_str::<Limits>(r#"{"max_keys": 5}"#).is_err());
}

#[test]
fn a_key_of_2048_bytes_is_accepted() {
    let mut obj = Obj::new();
    let key = "k".repeat(2048);
    obj.commit_event(|s| s.put(&key, &1));
    assert_eq!(obj.get::<i64>(&key).unwrap(), Some(1));
    assert!(obj.commit_event(|s| s.delete(&key)));
}

#[test]
fn a_key_over_2048_bytes_is_rejected_everywhere() {
    let mut obj = Obj::new();
    let key = "k".repeat(2049);
    let e = expect_code(obj.put(&key, &1), "storage.key_too_large");
    assert_eq!(e.to_string(), "Keys cannot be larger than 2048 bytes. A key of size 2049 was provided.");
    expect_code(obj.put_bytes(&key, b"x"), "storage.key_too_large");
    expect_code(obj.put_value(&key, &Value::Bytes(vec![])), "storage.key_too_large");
    expect_code(obj.get::<i64>(&key), "storage.key_too_large");
    expect_code(obj.get_value(&key), "storage.key_too_large");
    expect_code(obj.get_many(&[key.as_str()]), "storage.key_too_large");
    expect_code(obj.delete(&key), "storage.key_too_large");
    expect_code(obj.delete_many(&[key.as_str()]), "storage.key_too_large");
    expect_code(obj.update(&key, 0, |n: i64| n + 1), "storage.key_too_large");
    assert!(!obj.has_pending_writes());
}

#[test]
fn the_key_limit_counts_utf8_bytes_not_characters() {
    let mut obj = Obj::new();
    let key = "\u{E9}".repeat(1024); // 2048 bytes
    obj.commit_event(|s| s.put(&key, &1));
    let longer = format!("{key}a");
    let e = expect_code(obj.put(&longer, &1), "storage.key_too_large");
    assert!(e.to_string().ends_with("A key of size 2049 was provided."), "{e}");
    let emoji = "\u{1F600}".repeat(513); // 2052 bytes, 513 characters
    expect_code(obj.put(&emoji, &1), "storage.key_too_large");
}

#[test]
fn a_value_of_131072_bytes_is_accepted() {
    let mut obj = Obj::new();
    obj.commit_event(|s| {
        s.put_bytes("bytes", &vec![7; 131_072])?;
        // A JSON string's serialized size includes its two quotes.
        s.put("json", &"x".repeat(131_070))
    });
    assert_eq!(obj.get_value("bytes").unwrap(), Some(Value::Bytes(vec![7; 131_072])));
    assert_eq!(obj.get::<String>("json").unwrap().map(|s| s.len()), Some(131_070));
}

#[test]
fn a_value_over_131072_bytes_is_rejected() {
    let mut obj = Obj::new();
    let e = expect_code(obj.put_bytes("k", &vec![0; 131_073]), "storage.value_too_large");
    assert_eq!(e.to_string(), "Values cannot be larger than 131072 bytes. A value of size 131073 was provided.");
    let e = expect_code(obj.put("k", &"x".repeat(131_071)), "storage.value_too_large");
    assert!(e.to_string().ends_with("A value of size 131073 was provided."), "{e}");
    expect_code(obj.put_value("k", &Value::Bytes(vec![0; 200_000])), "storage.value_too_large");
    expect_code(obj.update("k", String::new(), |_| "y".repeat(131_071)), "storage.value_too_large");
    assert!(!obj.has_pending_writes());
    assert_eq!(obj.get_value("k").unwrap(), None);
}

#[test]
fn a_batch_of_128_keys_is_accepted() {
    let mut obj = Obj::new();
    let keys: Vec<String> = (0..128).map(|i| format!("k{i:03}")).collect();
    let entries: Vec<(String, Value)> = keys.iter().map(|k| (k.clone(), Value::Json(k.as_str().into()))).collect();
    obj.commit_event(|s| s.put_many(&entries));
    assert_eq!(obj.get_many(&keys).unwrap().len(), 128);
    assert_eq!(obj.commit_event(|s| s.delete_many(&keys)), 128);
}

#[test]
fn a_batch_of_more_than_128_keys_is_rejected() {
    let mut obj = Obj::new();
    let keys: Vec<String> = (0..129).map(|i| format!("k{i:03}")).collect();
    let entries: Vec<(String, Value)> = keys.iter().map(|k| (k.clone(), Value::Json(1.into()))).collect();
    let e = expect_code(obj.put_many(&entries), "storage.too_many_keys");
    assert_eq!(e.to_string(), "Maximum number of key value pairs is 128. 129 pairs were provided.");
    expect_code(obj.get_many(&keys), "storage.too_many_keys");
    expect_code(obj.delete_many(&keys), "storage.too_many_keys");
    assert!(!obj.has_pending_writes());
    assert!(all_keys(&mut obj).is_empty());
}

#[test]
fn list_is_not_limited_to_128_keys() {
    let mut obj = Obj::new();
    for chunk in 0..3 {
        let entries: Vec<(String, Value)> =
            (0..100).map(|i| (format!("k{chunk}-{i:03}"), Value::Json(i.into()))).collect();
        obj.commit_event(|s| s.put_many(&entries));
    }
    assert_eq!(obj.list(&ListOptions::new()).unwrap().len(), 300);
}

#[test]
fn configured_limits_replace_the_defaults() {
    let mut obj = Obj::with_limits(small_limits());
    assert_eq!(obj.limits().max_key_bytes, 10);
    obj.commit_event(|s| s.put("0123456789", &"x".repeat(18)));
    let e = expect_code(obj.put("0123456789a", &1), "storage.key_too_large");
    assert_eq!(e.to_string(), "Keys cannot be larger than 10 bytes. A key of size 11 was provided.");
    let e = expect_code(obj.put("k", &"x".repeat(19)), "storage.value_too_large");
    assert_eq!(e.to_string(), "Values cannot be larger than 20 bytes. A value of size 21 was provided.");
    let e = expect_code(obj.delete_many(&["a", "b", "c"]), "storage.too_many_keys");
    assert_eq!(e.to_string(), "Maximum number of key value pairs is 2. 3 pairs were provided.");
    obj.commit_event(|s| s.delete_many(&["a", "b"]).map(drop));
}

#[test]
fn more_than_100_sql_parameters_are_rejected_before_running() {
    let mut obj = Obj::new();
    obj.commit_event(|s| s.exec("CREATE TABLE t(x)", &[]).map(drop));
    let params: Vec<SqlValue> = (0..101).map(SqlValue::from).collect();
    expect_code(obj.exec("INSERT INTO t VALUES (1)", &params), "sql.too_many_parameters");
    let sql = format!("SELECT {}", vec!["?"; 101].join(", "));
    expect_code(obj.exec(&sql, &params), "sql.too_many_parameters");
    assert!(!obj.has_pending_writes());
    let sql = format!("SELECT {}", vec!["?"; 100].join(", "));
    let row = obj.exec(&sql, &params[..100]).unwrap().one().unwrap();
    assert_eq!(row.values().len(), 100);
}

#[test]
fn a_statement_over_100000_bytes_is_rejected() {
    let mut obj = Obj::new();
    let pad = |n: usize| format!("SELECT 1 /*{}*/", "x".repeat(n - 13));
    let ok = pad(100_000);
    assert_eq!(ok.len(), 100_000);
    assert_eq!(int(&mut obj, &ok), 1);
    let too_long = pad(100_001);
    expect_code(obj.exec(&too_long, &[]), "sql.statement_too_long");
}

#[test]
fn a_sql_value_over_2_mb_is_rejected() {
    let mut obj = Obj::new();
    let text = "x".repeat(2_000_000);
    let row = obj.exec("SELECT length(?)", &[text.as_str().into()]).unwrap().one().unwrap();
    assert_eq!(row.values()[0], SqlValue::Integer(2_000_000));
    let text = "x".repeat(2_000_001);
    expect_code(obj.exec("SELECT length(?)", &[text.into()]), "sql.value_too_large");
    expect_code(obj.exec("SELECT length(?)", &[vec![0u8; 3_000_000].into()]), "sql.value_too_large");
    let e = expect_code(obj.exec("SELECT zeroblob(2000001)", &[]), "sql.error");
    assert!(e.to_string().contains("too big"), "{e}");
    assert!(!obj.is_broken());
}

#[test]
fn a_compound_select_of_more_than_five_terms_is_rejected() {
    let mut obj = Obj::new();
    let five = ["SELECT 1"; 5].join(" UNION ALL ");
    assert_eq!(obj.exec(&five, &[]).unwrap().count(), 5);
    let six = ["SELECT 1"; 6].join(" UNION ALL ");
    let e = expect_code(obj.exec(&six, &[]), "sql.error");
    assert!(e.to_string().contains("too many terms in compound SELECT"), "{e}");
}

#[test]
fn configured_sql_limits_replace_the_defaults() {
    let limits =
        Limits { max_sql_params: 2, max_sql_statement_bytes: 50, max_sql_value_bytes: 1000, ..Limits::default() };
    // The engine's own statements are longer and take more parameters than that.
    let mut obj = Obj::with_limits(limits);
    obj.exec("SELECT ?, ?", &[1.into(), 2.into()]).unwrap();
    expect_code(obj.exec("SELECT ?, ?, ?", &[1.into(), 2.into(), 3.into()]), "sql.too_many_parameters");
    expect_code(obj.exec(&format!("SELECT '{}'", "x".repeat(50)), &[]), "sql.statement_too_long");
    obj.exec("SELECT ?", &["x".repeat(1000).into()]).unwrap();
    expect_code(obj.exec("SELECT ?", &["x".repeat(1001).into()]), "sql.value_too_large");
}

#[test]
fn small_configured_sql_limits_do_not_break_the_engine() {
    let limits = Limits { max_sql_params: 1, max_sql_statement_bytes: 20, ..Limits::default() };
    let options = OpenOptions {
        limits: Arc::new(limits),
        identity: Some(("ns".into(), "name".into())),
        ..OpenOptions::default()
    };
    let mut obj = Obj::with_options(options);
    obj.commit_event(|s| {
        s.put("a", &1)?;
        s.put_many(&[("b", Value::Json(2.into())), ("c", Value::Json(3.into()))])?;
        s.exec("CREATE TABLE t(x)", &[])?;
        s.set_alarm(i64::MAX / 2)
    });
    assert_eq!(obj.list(&ListOptions::new().start("b").end("c").reverse(true).limit(5)).unwrap().len(), 1);
    obj.commit_event(|s| s.delete_all());
    obj.reopen();
    assert!(all_keys(&mut obj).is_empty());
}

#[test]
fn a_result_over_the_configured_size_is_rejected() {
    let mut obj = Obj::with_limits(Limits { max_sql_result_bytes: 10_000, ..Limits::default() });
    obj.exec("SELECT zeroblob(5000)", &[]).unwrap();
    let sql =
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT zeroblob(5000) FROM n";
    expect_code(obj.exec(sql, &[]), "sql.result_too_large");
    assert!(!obj.is_broken());
}

#[test]
fn a_full_database_reports_database_full() {
    let mut obj = Obj::with_limits(Limits { max_database_bytes: 64 * 4096, ..Limits::default() });
    obj.commit_event(|s| s.exec("CREATE TABLE t(x)", &[]).map(drop));
    let mut err = None;
    for i in 0..200 {
        match obj.exec("INSERT INTO t VALUES (randomblob(3000))", &[]) {
            Ok(_) => {
                obj.commit().unwrap();
            }
            Err(e) => {
                err = Some((i, e));
                break;
            }
        }
    }
    let (i, e) = err.expect("the database fills up");
    assert!(i > 10, "filled after {i} rows");
    assert_eq!(e.code(), "storage.database_full", "{e}");
    assert!(e.is_user_error());
    assert_eq!(obj.is_broken(), e.requires_reset(), "a broken object must be reported as needing a reset");
    assert!(obj.database_size().map_or(true, |s| s <= 64 * 4096));
}
