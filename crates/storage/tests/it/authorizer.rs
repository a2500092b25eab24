//! What user SQL may and may not do (spec 3.5). Cairn reserves `_cairn_` as well as `_cf_`.

use cairn_storage::{Error, ListOptions, SqlValue};

use crate::{Obj, all_keys, expect_code, int, rows, user_schema};

fn with_table() -> Obj {
    let mut obj = Obj::new();
    obj.commit_event(|s| {
        s.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, x)", &[])?;
        s.exec("INSERT INTO t(x) VALUES (1), (2)", &[])?;
        s.put("kv", &"secret")
    });
    obj
}

fn denied(obj: &mut Obj, sql: &str) -> Error {
    match obj.exec(sql, &[]) {
        Ok(_) => panic!("{sql}: expected to be refused"),
        Err(e) => {
            assert_eq!(e.code(), "sql.not_authorized", "{sql}: {e}");
            e
        }
    }
}

fn allowed(obj: &mut Obj, sql: &str) -> Vec<Vec<SqlValue>> {
    rows(obj, sql, &[])
}

const RESERVED: [&str; 6] = ["_cairn_x", "_CAIRN_x", "_Cairn_kv2", "_cf_x", "_CF_KV", "_cF_Meta"];

#[test]
fn creating_a_table_with_a_reserved_prefix_is_not_authorized() {
    let mut obj = Obj::new();
    for name in RESERVED {
        let e = denied(&mut obj, &format!("CREATE TABLE {name}(x)"));
        assert!(e.to_string().contains("not authorized"), "{e}");
        denied(&mut obj, &format!("CREATE TABLE IF NOT EXISTS \"{name}\"(x)"));
    }
    assert!(user_schema(&mut obj).is_empty());
}

#[test]
fn names_that_only_resemble_the_reserved_prefixes_are_allowed() {
    let mut obj = Obj::new();
    for name in ["_cairn", "cairn_x", "x_cairn_", "_cf", "cf_x", "__cf_x", "_cairnx"] {
        obj.exec(&format!("CREATE TABLE \"{name}\"(x)"), &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    obj.commit().unwrap();
    assert_eq!(user_schema(&mut obj).len(), 7);
}

#[test]
fn reading_an_engine_table_is_not_authorized() {
    let mut obj = with_table();
    let e = denied(&mut obj, "SELECT * FROM _cairn_kv");
    assert!(e.to_string().contains("_cairn_kv"), "{e}");
    assert!(e.to_string().ends_with("SQLITE_AUTH"), "{e}");
    denied(&mut obj, "SELECT value FROM _CAIRN_META");
    denied(&mut obj, "SELECT count(*) FROM main._cairn_kv");
    denied(&mut obj, "SELECT x FROM t WHERE x IN (SELECT key FROM _cairn_kv)");
    denied(&mut obj, "WITH c AS (SELECT * FROM _cairn_meta) SELECT * FROM c");
}

#[test]
fn writing_an_engine_table_is_not_authorized() {
    let mut obj = with_table();
    denied(&mut obj, "INSERT INTO _cairn_kv VALUES (x'6b', x'6a31')");
    denied(&mut obj, "UPDATE _cairn_meta SET value = 99");
    denied(&mut obj, "DELETE FROM _cairn_kv");
    denied(&mut obj, "REPLACE INTO _cairn_meta VALUES (2, 0)");
    obj.commit().unwrap();
    assert_eq!(all_keys(&mut obj), ["kv"]);
    assert_eq!(obj.get::<String>("kv").unwrap().as_deref(), Some("secret"));
}

#[test]
fn dropping_or_altering_an_engine_table_is_not_authorized() {
    let mut obj = with_table();
    denied(&mut obj, "DROP TABLE _cairn_kv");
    denied(&mut obj, "DROP TABLE IF EXISTS _cairn_meta");
    denied(&mut obj, "ALTER TABLE _cairn_kv RENAME TO stolen");
    denied(&mut obj, "ALTER TABLE _cairn_kv ADD COLUMN extra");
    obj.commit().unwrap();
    assert_eq!(obj.get::<String>("kv").unwrap().as_deref(), Some("secret"));
}

#[test]
fn altering_a_user_table_is_allowed() {
    let mut obj = with_table();
    obj.commit_event(|s| {
        s.exec("ALTER TABLE t RENAME TO renamed", &[])?;
        s.exec("ALTER TABLE renamed ADD COLUMN y DEFAULT 5", &[])?;
        s.exec("ALTER TABLE renamed RENAME COLUMN x TO z", &[])?;
        s.exec("ALTER TABLE renamed DROP COLUMN y", &[])?;
        Ok(())
    });
    assert_eq!(user_schema(&mut obj), ["renamed"]);
    let columns: Vec<String> =
        allowed(&mut obj, "PRAGMA table_info(renamed)").iter().map(|r| r[1].as_str().unwrap().to_owned()).collect();
    assert_eq!(columns, ["id", "z"]);
    assert_eq!(int(&mut obj, "SELECT sum(z) FROM renamed"), 3);
}

#[test]
fn renaming_a_table_to_a_reserved_name_is_not_authorized() {
    let mut obj = with_table();
    for name in ["_cairn_t", "_CF_t"] {
        denied(&mut obj, &format!("ALTER TABLE t RENAME TO {name}"));
    }
    obj.commit().unwrap();
    assert_eq!(user_schema(&mut obj), ["t"]);
}

#[test]
fn reserved_index_view_and_trigger_names_are_not_authorized() {
    let mut obj = with_table();
    denied(&mut obj, "CREATE INDEX _cairn_idx ON t(x)");
    denied(&mut obj, "CREATE INDEX _cf_idx ON t(x)");
    denied(&mut obj, "CREATE INDEX kv_idx ON _cairn_kv(value)");
    denied(&mut obj, "CREATE VIEW _cf_view AS SELECT 1");
    denied(&mut obj, "CREATE TRIGGER _cairn_trg AFTER INSERT ON t BEGIN SELECT 1; END");
    denied(&mut obj, "CREATE TRIGGER kv_trg AFTER INSERT ON _cairn_kv BEGIN SELECT 1; END");
    obj.commit().unwrap();
    assert_eq!(user_schema(&mut obj), ["t"]);
}

#[test]
fn a_view_or_trigger_cannot_reach_an_engine_table() {
    let mut obj = with_table();
    // Whichever step is refused, the engine table is neither read nor written.
    let view =
        obj.exec("CREATE VIEW leak AS SELECT * FROM _cairn_kv", &[]).and_then(|_| obj.exec("SELECT * FROM leak", &[]));
    assert_eq!(view.map(drop).unwrap_err().code(), "sql.not_authorized");
    let trigger = obj
        .exec("CREATE TRIGGER sneak AFTER INSERT ON t BEGIN DELETE FROM _cairn_kv; END", &[])
        .and_then(|_| obj.exec("INSERT INTO t(x) VALUES (3)", &[]));
    assert_eq!(trigger.map(drop).unwrap_err().code(), "sql.not_authorized");
    obj.commit().unwrap();
    assert_eq!(all_keys(&mut obj), ["kv"]);
}

#[test]
fn transaction_statements_are_refused_with_their_own_error() {
    let mut obj = with_table();
    for sql in [
        "BEGIN",
        "BEGIN IMMEDIATE TRANSACTION",
        "COMMIT",
        "END",
        "ROLLBACK",
        "SAVEPOINT sp",
        "RELEASE sp",
        "ROLLBACK TO sp",
    ] {
        let e = expect_code(obj.exec(sql, &[]), "sql.transaction_statement");
        assert!(e.to_string().starts_with("To execute a transaction, please use the storage transaction()"), "{e}");
    }
    // Also inside a batch, and the statements before it in the batch have run.
    expect_code(
        obj.exec("INSERT INTO t(x) VALUES (3); COMMIT; INSERT INTO t(x) VALUES (4)", &[]),
        "sql.transaction_statement",
    );
    assert_eq!(int(&mut obj, "SELECT count(*) FROM t"), 3);
    obj.rollback();
    assert_eq!(int(&mut obj, "SELECT count(*) FROM t"), 2);
}

#[test]
fn a_refused_transaction_statement_does_not_change_the_next_error() {
    let mut obj = with_table();
    expect_code(obj.exec("SELECT ?; BEGIN", &[1.into()]), "sql.params_not_last");
    expect_code(obj.exec("bunk", &[]), "sql.error");
    expect_code(obj.exec("SELECT * FROM _cairn_kv", &[]), "sql.not_authorized");
}

#[test]
fn attach_and_detach_are_not_authorized() {
    let mut obj = Obj::new();
    let other = obj.path.with_file_name("other.db");
    denied(&mut obj, &format!("ATTACH DATABASE '{}' AS other", other.display()));
    denied(&mut obj, "ATTACH ':memory:' AS mem");
    denied(&mut obj, "DETACH DATABASE other");
    assert!(!other.exists());
}

#[test]
fn temporary_tables_views_and_triggers_are_not_authorized() {
    let mut obj = with_table();
    denied(&mut obj, "CREATE TEMP TABLE tmp(x)");
    denied(&mut obj, "CREATE TEMPORARY TABLE tmp AS SELECT 1");
    denied(&mut obj, "CREATE TEMP VIEW tv AS SELECT 1");
    denied(&mut obj, "CREATE TEMP TRIGGER tt AFTER INSERT ON t BEGIN SELECT 1; END");
    denied(&mut obj, "CREATE TABLE temp.tmp(x)");
}

#[test]
fn engine_introspection_functions_are_not_authorized() {
    let mut obj = Obj::new();
    let e = denied(&mut obj, "SELECT sqlite_version()");
    assert!(e.to_string().contains("sqlite_version"), "{e}");
    denied(&mut obj, "SELECT sqlite_source_id()");
    denied(&mut obj, "SELECT SQLITE_COMPILEOPTION_USED('ENABLE_FTS5')");
    denied(&mut obj, "SELECT load_extension('x')");
}

#[test]
fn ordinary_functions_are_allowed() {
    let mut obj = Obj::new();
    let got = allowed(
        &mut obj,
        "SELECT abs(-1), lower('A'), json_extract('{\"a\":2}', '$.a'), date('2020-01-02'), max(1, 3), hex(randomblob(0))",
    );
    assert_eq!(got[0][0], SqlValue::Integer(1));
    assert_eq!(got[0][2], SqlValue::Integer(2));
    assert_eq!(got[0][3], SqlValue::Text("2020-01-02".into()));
    allowed(&mut obj, "SELECT sum(value) OVER () FROM json_each('[1,2,3]')");
}

#[test]
fn pragmas_outside_the_allow_list_are_not_authorized() {
    let mut obj = Obj::new();
    for sql in [
        "PRAGMA page_size = 8192",
        "PRAGMA max_page_count",
        "PRAGMA max_page_count = 10",
        "PRAGMA hard_heap_limit = 1",
        "PRAGMA data_version = 5",
        "PRAGMA journal_mode = DELETE",
        "PRAGMA synchronous = OFF",
        "PRAGMA writable_schema = ON",
        "PRAGMA user_version = 7",
        "PRAGMA foreign_keys = maybe",
        "PRAGMA table_info(_cairn_kv)",
        "PRAGMA table_xinfo('_CF_KV')",
        "PRAGMA index_list(_cairn_meta)",
    ] {
        denied(&mut obj, sql);
    }
    assert_eq!(obj.commit().unwrap(), None);
}

#[test]
fn pragmas_on_the_allow_list_are_allowed() {
    let mut obj = with_table();
    for sql in [
        "PRAGMA foreign_keys = ON",
        "PRAGMA foreign_keys = 'off'",
        "PRAGMA foreign_keys = TRUE",
        "PRAGMA foreign_keys",
        "PRAGMA case_sensitive_like = 1",
        "PRAGMA recursive_triggers = no",
        "PRAGMA page_size",
        "PRAGMA data_version",
        "PRAGMA table_list",
        "PRAGMA index_list(t)",
        "PRAGMA foreign_key_check",
        "PRAGMA quick_check",
        "PRAGMA optimize",
    ] {
        obj.exec(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    assert_eq!(allowed(&mut obj, "PRAGMA page_size"), [vec![SqlValue::Integer(4096)]]);
    let info = allowed(&mut obj, "PRAGMA table_info(t)");
    let columns: Vec<&str> = info.iter().map(|r| r[1].as_str().unwrap()).collect();
    assert_eq!(columns, ["id", "x"]);
    allowed(&mut obj, "ANALYZE");
    allowed(&mut obj, "ANALYZE t");
    // Statistics never describe the engine's tables.
    let stats = allowed(&mut obj, "SELECT DISTINCT tbl FROM sqlite_stat1");
    assert!(stats.iter().all(|r| r[0].as_str() == Some("t")), "{stats:?}");
}

#[test]
fn fts5_virtual_tables_are_allowed() {
    let mut obj = Obj::new();
    obj.commit_event(|s| {
        s.exec("CREATE VIRTUAL TABLE docs USING fts5(title, body)", &[])?;
        s.exec("INSERT INTO docs VALUES ('one', 'hello world'), ('two', 'goodbye moon')", &[])?;
        Ok(())
    });
    let got = allowed(
        &mut obj,
        "SELECT title, highlight(docs, 1, '[', ']') FROM docs WHERE docs MATCH 'hello' ORDER BY bm25(docs)",
    );
    assert_eq!(got, [vec![SqlValue::Text("one".into()), SqlValue::Text("[hello] world".into())]]);
    obj.commit_event(|s| s.exec("CREATE VIRTUAL TABLE v USING FTS5VOCAB(docs, 'row')", &[]).map(drop));
    assert!(int(&mut obj, "SELECT count(*) FROM v") >= 4);
    obj.commit_event(|s| s.exec("CREATE VIRTUAL TABLE r USING rtree(id, x0, x1)", &[]).map(drop));
}

#[test]
fn other_virtual_table_modules_are_not_authorized() {
    let mut obj = Obj::new();
    denied(&mut obj, "CREATE VIRTUAL TABLE f USING fts4(body)");
    denied(&mut obj, "CREATE VIRTUAL TABLE s USING dbstat");
    denied(&mut obj, "CREATE VIRTUAL TABLE n USING no_such_module(x)");
    denied(&mut obj, "CREATE VIRTUAL TABLE _cairn_docs USING fts5(body)");
    obj.commit().unwrap();
    assert!(user_schema(&mut obj).is_empty());
}

#[test]
fn sqlite_master_is_readable_and_shows_engine_tables() {
    let mut obj = with_table();
    let names: Vec<String> = allowed(&mut obj, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .into_iter()
        .map(|r| r[0].as_str().unwrap().to_owned())
        .collect();
    assert!(names.contains(&"_cairn_kv".to_owned()), "{names:?}");
    assert!(names.contains(&"t".to_owned()), "{names:?}");
    assert!(!allowed(&mut obj, "SELECT * FROM sqlite_schema").is_empty());
    assert!(!allowed(&mut obj, "PRAGMA table_list").is_empty());
}

#[test]
fn a_refused_statement_leaves_the_object_usable() {
    let mut obj = with_table();
    obj.put("a", &1).unwrap();
    denied(&mut obj, "DROP TABLE _cairn_kv");
    obj.put("b", &2).unwrap();
    obj.commit().unwrap();
    assert_eq!(obj.list(&ListOptions::new().prefix("")).unwrap().len(), 3);
}
