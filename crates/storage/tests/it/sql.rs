//! The SQL API: exec, cursors, multi-statement rules, errors, database_size (spec 3.2 to 3.4).

use cairn_storage::{Error, SqlValue};

use crate::{Obj, expect_code, int, rows, user_schema};

fn with_table() -> Obj {
    let mut obj = Obj::new();
    obj.commit_event(|s| {
        s.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)", &[])?;
        Ok(())
    });
    obj
}

#[test]
fn exec_binds_parameters_and_returns_rows() {
    let mut obj = with_table();
    obj.commit_event(|s| {
        s.exec("INSERT INTO t VALUES (?, ?, ?, ?)", &[1.into(), "ada".into(), 1.5.into(), vec![0u8, 255].into()])?;
        s.exec("INSERT INTO t VALUES (?1, ?2, ?2, NULL)", &[2.into(), SqlValue::Null])?;
        Ok(())
    });
    let got = rows(&mut obj, "SELECT id, name, score, data FROM t ORDER BY id", &[]);
    assert_eq!(
        got,
        [
            vec![SqlValue::Integer(1), SqlValue::Text("ada".into()), SqlValue::Real(1.5), SqlValue::Blob(vec![0, 255])],
            vec![SqlValue::Integer(2), SqlValue::Null, SqlValue::Null, SqlValue::Null],
        ]
    );
    let got = rows(&mut obj, "SELECT name FROM t WHERE id = ?", &[1.into()]);
    assert_eq!(got, [vec![SqlValue::Text("ada".into())]]);
}

#[test]
fn sql_values_keep_their_types() {
    let mut obj = Obj::new();
    let params: Vec<SqlValue> = vec![
        i64::MAX.into(),
        i64::MIN.into(),
        (-0.25).into(),
        "\u{1F600}\0x".into(),
        Vec::<u8>::new().into(),
        SqlValue::Null,
        true.into(),
        None::<i64>.into(),
    ];
    let row = obj.exec("SELECT ?, ?, ?, ?, ?, ?, ?, ?", &params).unwrap().one().unwrap();
    assert_eq!(row.values(), params.as_slice());
    let types =
        obj.exec("SELECT typeof(?), typeof(?), typeof(?), typeof(?), typeof(?)", &params[1..6]).unwrap().one().unwrap();
    let types: Vec<&str> = types.values().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(types, ["integer", "real", "text", "blob", "null"]);
    assert_eq!(row.values()[0].as_i64(), Some(i64::MAX));
    assert_eq!(row.values()[2].as_f64(), Some(-0.25));
    assert_eq!(row.values()[4].as_blob(), Some(&[][..]));
    assert!(row.values()[5].is_null());
}

#[test]
fn column_names_keep_duplicates_and_row_get_returns_the_later_one() {
    let mut obj = Obj::new();
    let cursor = obj.exec("SELECT 1 AS a, 2 AS b, 3 AS a", &[]).unwrap();
    assert_eq!(cursor.column_names(), ["a", "b", "a"]);
    let row = cursor.one().unwrap();
    assert_eq!(row.columns(), ["a", "b", "a"]);
    assert_eq!(row.get("a"), Some(&SqlValue::Integer(3)));
    assert_eq!(row.get("b"), Some(&SqlValue::Integer(2)));
    assert_eq!(row.get("c"), None);
}

#[test]
fn a_join_with_a_shared_column_name_keeps_every_column_in_raw_and_the_later_in_objects() {
    let mut obj = Obj::new();
    obj.commit_event(|s| {
        s.exec("CREATE TABLE abc(a, b, c)", &[])?;
        s.exec("CREATE TABLE cde(c, d, e)", &[])?;
        s.exec("INSERT INTO abc VALUES (1, 2, 3)", &[])?;
        s.exec("INSERT INTO cde VALUES (4, 5, 6)", &[])?;
        Ok(())
    });
    let cursor = obj.exec("SELECT * FROM abc, cde", &[]).unwrap();
    assert_eq!(cursor.column_names(), ["a", "b", "c", "c", "d", "e"]);
    let row = cursor.one().unwrap();
    let object = row.to_json();
    assert_eq!(object.len(), 5);
    assert_eq!(object["c"], serde_json::json!(4));
    let raw: Vec<Vec<SqlValue>> = obj.exec("SELECT * FROM abc, cde", &[]).unwrap().raw().collect();
    assert_eq!(raw, [[1, 2, 3, 4, 5, 6].map(SqlValue::from).to_vec()]);
}

#[test]
fn column_names_are_empty_for_statements_without_columns() {
    let mut obj = with_table();
    let c = obj.exec("INSERT INTO t(name) VALUES ('x')", &[]).unwrap();
    assert!(c.column_names().is_empty());
    assert_eq!(c.count(), 0);
    let c = obj.exec("CREATE TABLE u(x)", &[]).unwrap();
    assert!(c.column_names().is_empty());
    let c = obj.exec("SELECT * FROM t WHERE 0", &[]).unwrap();
    assert_eq!(c.column_names(), ["id", "name", "score", "data"]);
    assert!(c.to_vec().is_empty());
}

#[test]
fn one_returns_exactly_one_row() {
    let mut obj = Obj::new();
    let row = obj.exec("SELECT 42 AS answer", &[]).unwrap().one().unwrap();
    assert_eq!(row.get("answer"), Some(&SqlValue::Integer(42)));
    assert_eq!(row.into_values(), [SqlValue::Integer(42)]);
}

#[test]
fn one_with_no_rows_is_an_error() {
    let mut obj = Obj::new();
    let e = expect_code(obj.exec("SELECT 1 WHERE 0", &[]).unwrap().one(), "sql.no_results");
    assert_eq!(e.to_string(), "Expected exactly one result from SQL query, but got no results.");
}

#[test]
fn one_with_several_rows_is_an_error() {
    let mut obj = Obj::new();
    let e = expect_code(obj.exec("SELECT 1 UNION ALL SELECT 2", &[]).unwrap().one(), "sql.multiple_results");
    assert_eq!(e.to_string(), "Expected exactly one result from SQL query, but got multiple results.");
}

#[test]
fn rows_written_counts_inserted_updated_and_deleted_rows() {
    let mut obj = with_table();
    let c = obj.exec("INSERT INTO t(name) VALUES ('a'), ('b'), ('c')", &[]).unwrap();
    assert_eq!(c.rows_written(), 3);
    let c = obj.exec("UPDATE t SET score = 1 WHERE name != 'a'", &[]).unwrap();
    assert_eq!(c.rows_written(), 2);
    let c = obj.exec("DELETE FROM t WHERE name = 'c'", &[]).unwrap();
    assert_eq!(c.rows_written(), 1);
    let c = obj.exec("SELECT * FROM t", &[]).unwrap();
    assert_eq!(c.rows_written(), 0);
    assert!(c.rows_read() >= 2);
    let c = obj.exec("INSERT INTO t(name) VALUES ('d') RETURNING id", &[]).unwrap();
    assert_eq!(c.rows_written(), 1);
    assert_eq!(c.count(), 1);
}

#[test]
fn multiple_statements_return_the_rows_of_the_last() {
    let mut obj = Obj::new();
    let c = obj.exec("SELECT 1; SELECT 2", &[]).unwrap();
    assert_eq!(c.column_names(), ["2"]);
    assert_eq!(c.raw().collect::<Vec<_>>(), [vec![SqlValue::Integer(2)]]);
    let c = obj.exec("SELECT 1; CREATE TABLE x(a); ", &[]).unwrap();
    assert!(c.column_names().is_empty());
}

#[test]
fn a_statement_may_use_a_table_created_earlier_in_the_same_call() {
    let mut obj = Obj::new();
    let c = obj
        .exec("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2); INSERT INTO t SELECT x + 10 FROM t; SELECT sum(x) FROM t", &[])
        .unwrap();
    assert_eq!(c.raw().collect::<Vec<_>>(), [vec![SqlValue::Integer(26)]]);
    let c = obj.exec("CREATE TABLE u(y); INSERT INTO u VALUES (?)", &["p".into()]).unwrap();
    assert_eq!(c.rows_written(), 1);
    obj.commit().unwrap();
    assert_eq!(rows(&mut obj, "SELECT y FROM u", &[]), [vec![SqlValue::Text("p".into())]]);
}

#[test]
fn only_the_last_statement_may_have_parameters() {
    let mut obj = Obj::new();
    obj.commit_event(|s| s.exec("CREATE TABLE t(x)", &[]).map(drop));
    let e = expect_code(obj.exec("INSERT INTO t VALUES (?); SELECT 1", &[1.into()]), "sql.params_not_last");
    assert_eq!(
        e.to_string(),
        "When executing multiple SQL statements in a single call, only the last statement can have parameters."
    );
    expect_code(obj.exec("INSERT INTO t VALUES (?); SELECT ?", &[1.into(), 2.into()]), "sql.params_not_last");
    obj.commit().unwrap();
    assert_eq!(int(&mut obj, "SELECT count(*) FROM t"), 0);
}

#[test]
fn empty_sql_has_no_statement() {
    let mut obj = Obj::new();
    for sql in ["", ";", "  ", " ; ; ", "-- just a comment", "/* block */"] {
        let e = expect_code(obj.exec(sql, &[]), "sql.no_statement");
        assert_eq!(e.to_string(), "SQL code did not contain a statement.");
    }
}

#[test]
fn a_wrong_parameter_count_is_rejected() {
    let mut obj = Obj::new();
    expect_code(obj.exec("SELECT ?", &[]), "sql.wrong_parameter_count");
    expect_code(obj.exec("SELECT ?, ?", &[1.into()]), "sql.wrong_parameter_count");
    expect_code(obj.exec("SELECT ?", &[1.into(), 2.into()]), "sql.wrong_parameter_count");
    expect_code(obj.exec("SELECT 1", &[1.into()]), "sql.wrong_parameter_count");
    expect_code(obj.exec("SELECT ?2", &[1.into()]), "sql.wrong_parameter_count");
    assert_eq!(
        obj.exec("SELECT ?2, ?1", &[1.into(), 2.into()]).unwrap().one().unwrap().values(),
        [2, 1].map(SqlValue::from)
    );
}

#[test]
fn a_wrong_parameter_count_writes_nothing() {
    let mut obj = Obj::new();
    obj.commit_event(|s| s.exec("CREATE TABLE t(x)", &[]).map(drop));
    expect_code(obj.exec("INSERT INTO t VALUES (1)", &[1.into()]), "sql.wrong_parameter_count");
    expect_code(obj.exec("INSERT INTO t VALUES (? + ?)", &[1.into()]), "sql.wrong_parameter_count");
    obj.commit().unwrap();
    assert_eq!(int(&mut obj, "SELECT count(*) FROM t"), 0);
}

#[test]
fn a_syntax_error_names_the_token_and_offset() {
    let mut obj = Obj::new();
    let e = expect_code(obj.exec("bunk", &[]), "sql.error");
    assert_eq!(e.to_string(), "near \"bunk\": syntax error at offset 0: SQLITE_ERROR");
    let e = expect_code(obj.exec("SELECT ;", &[]), "sql.error");
    assert!(e.to_string().contains("syntax error at offset 7"), "{e}");
    let e = expect_code(obj.exec("SELECT 1 FROM bunk bunk bunk", &[]), "sql.error");
    assert!(e.to_string().contains("syntax error"), "{e}");
    assert!(e.is_user_error());
}

#[test]
fn sqlite_errors_are_sql_errors_with_sqlites_message() {
    let mut obj = Obj::new();
    obj.commit_event(|s| {
        s.exec("CREATE TABLE c(checked_col TEXT CHECK (checked_col IN ('A','B')), u UNIQUE)", &[])?;
        s.exec("CREATE TABLE strict_t(i INTEGER) STRICT", &[])?;
        Ok(())
    });
    let e = expect_code(obj.exec("SELECT * FROM misspelled_table_name", &[]), "sql.error");
    assert!(e.to_string().contains("no such table: misspelled_table_name"), "{e}");
    let e = expect_code(obj.exec("INSERT INTO c VALUES ('C', 1)", &[]), "sql.error");
    assert!(e.to_string().contains("CHECK constraint failed: checked_col IN ('A','B')"), "{e}");
    assert!(e.to_string().ends_with("SQLITE_CONSTRAINT"), "{e}");
    let e = expect_code(obj.exec("INSERT INTO strict_t VALUES ('x')", &[]), "sql.error");
    assert!(e.to_string().contains("SQLITE_CONSTRAINT"), "{e}");
    let e = expect_code(obj.exec("SELECT 1 UNION SELECT 1, 2", &[]), "sql.error");
    assert!(e.is_user_error() && !e.requires_reset());
}

#[test]
fn a_failed_statement_keeps_the_events_earlier_writes() {
    let mut obj = Obj::new();
    obj.commit_event(|s| s.exec("CREATE TABLE t(x UNIQUE)", &[]).map(drop));
    obj.exec("INSERT INTO t VALUES (1)", &[]).unwrap();
    obj.put("k", &1).unwrap();
    expect_code(obj.exec("INSERT INTO t VALUES (2), (1)", &[]), "sql.error");
    assert!(!obj.is_broken());
    obj.commit().unwrap();
    assert_eq!(rows(&mut obj, "SELECT x FROM t", &[]), [vec![SqlValue::Integer(1)]]);
    assert_eq!(obj.get::<i64>("k").unwrap(), Some(1));
}

#[test]
fn a_statement_error_in_a_batch_keeps_the_statements_before_it() {
    let mut obj = Obj::new();
    obj.commit_event(|s| s.exec("CREATE TABLE t(x)", &[]).map(drop));
    expect_code(obj.exec("INSERT INTO t VALUES (1); SELECT * FROM nope", &[]), "sql.error");
    obj.commit().unwrap();
    assert_eq!(int(&mut obj, "SELECT count(*) FROM t"), 1);
}

#[test]
fn a_read_only_query_does_not_open_a_write() {
    let mut obj = with_table();
    let seq = obj.committed_seq();
    rows(&mut obj, "SELECT * FROM t", &[]);
    rows(&mut obj, "SELECT 1; SELECT 2", &[]);
    rows(&mut obj, "PRAGMA table_info(t)", &[]);
    assert!(!obj.has_pending_writes());
    assert_eq!(obj.commit().unwrap(), None);
    assert_eq!(obj.committed_seq(), seq);
}

#[test]
fn sql_writes_join_the_event_and_roll_back_with_it() {
    let mut obj = with_table();
    obj.exec("INSERT INTO t(name) VALUES ('gone')", &[]).unwrap();
    obj.exec("CREATE TABLE u(x)", &[]).unwrap();
    assert!(obj.has_pending_writes());
    obj.rollback();
    assert_eq!(int(&mut obj, "SELECT count(*) FROM t"), 0);
    assert_eq!(user_schema(&mut obj), ["t"]);
}

#[test]
fn database_size_grows_by_a_page_per_table_and_shrinks_back_on_drop() {
    let mut obj = Obj::new();
    let base = obj.database_size().unwrap();
    assert!(base > 0 && base.is_multiple_of(4096), "{base}");
    obj.commit_event(|s| s.exec("CREATE TABLE t(x)", &[]).map(drop));
    assert_eq!(obj.database_size().unwrap(), base + 4096);
    obj.commit_event(|s| s.exec("CREATE INDEX tx ON t(x)", &[]).map(drop));
    assert_eq!(obj.database_size().unwrap(), base + 2 * 4096);
    obj.commit_event(|s| s.exec("DROP TABLE t", &[]).map(drop));
    assert_eq!(obj.database_size().unwrap(), base);
}

#[test]
fn database_size_reflects_the_open_event() {
    let mut obj = Obj::new();
    let base = obj.database_size().unwrap();
    obj.exec("CREATE TABLE t(x)", &[]).unwrap();
    assert_eq!(obj.database_size().unwrap(), base + 4096);
    obj.rollback();
    assert_eq!(obj.database_size().unwrap(), base);
}

#[test]
fn user_sql_sees_kv_writes_only_through_the_kv_api() {
    // KV data lives in a reserved table: user SQL cannot read it, but both share the event.
    let mut obj = Obj::new();
    let r: Result<(), Error> = obj.event(|s| {
        s.put("k", &1)?;
        s.exec("CREATE TABLE t(x)", &[])?;
        Err(Error::SqlNoStatement)
    });
    assert!(r.is_err());
    assert!(user_schema(&mut obj).is_empty());
    assert_eq!(obj.get::<i64>("k").unwrap(), None);
}

#[test]
fn sql_values_convert_from_rust_types() {
    assert_eq!(SqlValue::from(7_i32), SqlValue::Integer(7));
    assert_eq!(SqlValue::from(7_u32), SqlValue::Integer(7));
    assert_eq!(SqlValue::from(false), SqlValue::Integer(0));
    assert_eq!(SqlValue::from(String::from("s")), SqlValue::Text("s".into()));
    assert_eq!(SqlValue::from(Some("s")), SqlValue::Text("s".into()));
    assert_eq!(SqlValue::from(None::<String>), SqlValue::Null);
    assert_eq!(SqlValue::Integer(2).as_f64(), Some(2.0));
    assert_eq!(SqlValue::Text("x".into()).as_i64(), None);
}
