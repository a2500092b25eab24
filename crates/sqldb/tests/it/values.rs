//! JSON parameters and results as D1 converts them (spec 8.1, 8.2).

use cairn_sqldb::{ErrorKind, Statement, json_to_sql, sql_to_json};
use cairn_storage::SqlValue;
use serde_json::json;

use crate::{Env, expect_err, text};

#[test]
fn json_parameters_become_sql_values() {
    assert_eq!(json_to_sql(&json!(null)).unwrap(), SqlValue::Null);
    assert_eq!(json_to_sql(&json!(true)).unwrap(), SqlValue::Integer(1));
    assert_eq!(json_to_sql(&json!(false)).unwrap(), SqlValue::Integer(0));
    assert_eq!(json_to_sql(&json!(42)).unwrap(), SqlValue::Integer(42));
    assert_eq!(json_to_sql(&json!(-9_007_199_254_740_993_i64)).unwrap(), SqlValue::Integer(-9_007_199_254_740_993));
    assert_eq!(json_to_sql(&json!(0.1)).unwrap(), SqlValue::Real(0.1));
    assert_eq!(json_to_sql(&json!(1.0)).unwrap(), SqlValue::Real(1.0));
    assert_eq!(json_to_sql(&json!(u64::MAX)).unwrap(), SqlValue::Real(u64::MAX as f64));
    assert_eq!(json_to_sql(&json!("text")).unwrap(), text("text"));
    assert_eq!(json_to_sql(&json!([0, 1, 255])).unwrap(), SqlValue::Blob(vec![0, 1, 255]));
    assert_eq!(json_to_sql(&json!([])).unwrap(), SqlValue::Blob(Vec::new()));

    // As the D1 binding words it: JavaScript's `typeof` and `String(value)`.
    let refused = [
        (json!({"a": 1}), "D1_TYPE_ERROR: Type 'object' not supported for value '[object Object]'"),
        (json!({}), "D1_TYPE_ERROR: Type 'object' not supported for value '[object Object]'"),
        (json!([256]), "D1_TYPE_ERROR: Type 'object' not supported for value '256'"),
        (json!([-1]), "D1_TYPE_ERROR: Type 'object' not supported for value '-1'"),
        (json!([1.5]), "D1_TYPE_ERROR: Type 'object' not supported for value '1.5'"),
        (json!([1.0]), "D1_TYPE_ERROR: Type 'object' not supported for value '1'"),
        (json!(["a", "b"]), "D1_TYPE_ERROR: Type 'object' not supported for value 'a,b'"),
        (json!([1, null, [2, 3], true]), "D1_TYPE_ERROR: Type 'object' not supported for value '1,,2,3,true'"),
        (json!([{"a": 1}]), "D1_TYPE_ERROR: Type 'object' not supported for value '[object Object]'"),
    ];
    for (value, message) in refused {
        let e = expect_err(json_to_sql(&value), "sql.unsupported_type", message);
        assert_eq!(e.kind(), ErrorKind::Invalid);
    }
}

#[test]
fn sql_values_become_json_with_blobs_as_byte_arrays() {
    assert_eq!(sql_to_json(&SqlValue::Null), json!(null));
    assert_eq!(sql_to_json(&SqlValue::Integer(i64::MIN)), json!(i64::MIN));
    assert_eq!(sql_to_json(&SqlValue::Real(0.1)), json!(0.1));
    assert_eq!(sql_to_json(&SqlValue::Real(1.0)), json!(1.0));
    assert_eq!(sql_to_json(&SqlValue::Real(f64::NAN)), json!(null));
    assert_eq!(sql_to_json(&text("a\"b\n")), json!("a\"b\n"));
    assert_eq!(sql_to_json(&SqlValue::Blob(vec![0, 127, 255])), json!([0, 127, 255]));
    assert_eq!(sql_to_json(&SqlValue::Blob(Vec::new())), json!([]));
}

#[tokio::test]
async fn converted_parameters_round_trip_through_a_table() {
    let env = Env::new();
    let db = env.database("values").await;
    env.run(&db, "CREATE TABLE v(id INTEGER PRIMARY KEY, x)").await;
    let inputs = [json!(true), json!(false), json!(null), json!(7), json!(0.5), json!("s"), json!([104, 105])];
    for (i, value) in inputs.iter().enumerate() {
        let params = vec![SqlValue::Integer(i as i64), json_to_sql(value).unwrap()];
        env.sql.query(&db, vec![Statement::new("INSERT INTO v VALUES (?, ?)").bind(params)]).await.unwrap();
    }
    let r = env.run(&db, "SELECT x, typeof(x) AS t FROM v ORDER BY id").await.remove(0);
    let objects = r.rows_as_objects();
    let got: Vec<(serde_json::Value, serde_json::Value)> =
        objects.iter().map(|o| (o["x"].clone(), o["t"].clone())).collect();
    assert_eq!(
        got,
        [
            (json!(1), json!("integer")),
            (json!(0), json!("integer")),
            (json!(null), json!("null")),
            (json!(7), json!("integer")),
            (json!(0.5), json!("real")),
            (json!("s"), json!("text")),
            (json!([104, 105]), json!("blob")),
        ]
    );
    // With duplicate column names, the later one wins in the object form.
    let r = env.run(&db, "SELECT 1 AS a, 2 AS a").await.remove(0);
    assert_eq!(r.columns, ["a", "a"]);
    assert_eq!(serde_json::Value::Object(r.rows_as_objects().remove(0)), json!({"a": 2}));
}
