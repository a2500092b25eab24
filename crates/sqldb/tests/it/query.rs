//! Queries: parameters, several statements per text, `meta`, atomic batches, forbidden SQL
//! (spec 8.1 to 8.3).

use cairn_sqldb::{ErrorKind, Statement};
use cairn_storage::SqlValue;

use crate::{Env, expect_err, text};

fn int(i: i64) -> SqlValue {
    SqlValue::Integer(i)
}

#[tokio::test]
async fn positional_and_numbered_parameters_bind() {
    let env = Env::new();
    let db = env.database("params").await;
    let r = env
        .sql
        .query(
            &db,
            vec![Statement::new("SELECT ?3 AS c, ?1 AS a, ?2 AS b, ?1 AS a2").bind(vec![
                int(1),
                text("two"),
                SqlValue::Real(3.5),
            ])],
        )
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].columns, ["c", "a", "b", "a2"]);
    assert_eq!(r[0].rows, vec![vec![SqlValue::Real(3.5), int(1), text("two"), int(1)]]);

    let r = env
        .sql
        .query(
            &db,
            vec![Statement::new("SELECT ?, ?, typeof(?)").bind(vec![SqlValue::Null, int(-7), vec![1u8].into()])],
        )
        .await
        .unwrap();
    assert_eq!(r[0].rows, vec![vec![SqlValue::Null, int(-7), text("blob")]]);

    expect_err(
        env.sql.query(&db, vec![Statement::new("SELECT ?").bind(vec![int(1), int(2)])]).await,
        "sql.wrong_parameter_count",
        "Wrong number of parameter bindings for SQL query. Expected 1, got 2.",
    );
    expect_err(
        env.sql.query(&db, vec![Statement::new("SELECT ?1, ?2").bind(vec![int(1)])]).await,
        "sql.wrong_parameter_count",
        "Wrong number of parameter bindings for SQL query. Expected 2, got 1.",
    );
    expect_err(
        env.sql.query(&db, vec![Statement::new("SELECT 1").bind(vec![int(1)])]).await,
        "sql.wrong_parameter_count",
        "Wrong number of parameter bindings for SQL query. Expected 0, got 1.",
    );
}

#[tokio::test]
async fn each_statement_of_a_text_gives_its_own_result() {
    let env = Env::new();
    let db = env.database("multi").await;
    let r = env
        .run(&db, "CREATE TABLE t(a INTEGER); INSERT INTO t VALUES (1), (2);\n SELECT a FROM t ORDER BY a; SELECT count(*) AS n FROM t")
        .await;
    assert_eq!(r.len(), 4);
    assert!(r[0].rows.is_empty() && r[0].columns.is_empty());
    assert_eq!((r[1].meta.changes, r[1].meta.rows_written), (2, 2));
    assert_eq!(r[2].columns, ["a"]);
    assert_eq!(r[2].rows, vec![vec![int(1)], vec![int(2)]]);
    assert_eq!((r[3].columns.clone(), r[3].rows.clone()), (vec!["n".to_owned()], vec![vec![int(2)]]));

    // Several statements in a batch: one result per statement of every text, in order.
    let r = env
        .sql
        .query(
            &db,
            vec![
                Statement::new("SELECT 'x'; SELECT 'y'"),
                Statement::new("SELECT ?1 + 1").bind(vec![int(41)]),
                Statement::new("SELECT 1; -- a trailing comment"),
            ],
        )
        .await
        .unwrap();
    let values: Vec<Vec<Vec<SqlValue>>> = r.into_iter().map(|r| r.rows).collect();
    assert_eq!(values, [vec![vec![text("x")]], vec![vec![text("y")]], vec![vec![int(42)]], vec![vec![int(1)]]]);
}

#[tokio::test]
async fn only_the_last_statement_of_a_text_may_take_parameters() {
    let env = Env::new();
    let db = env.database("params-last").await;
    env.run(&db, "CREATE TABLE t(a)").await;
    let message =
        "When executing multiple SQL statements in a single call, only the last statement can have parameters.";
    expect_err(
        env.sql.query(&db, vec![Statement::new("INSERT INTO t VALUES (?); SELECT 1").bind(vec![int(5)])]).await,
        "sql.params_not_last",
        message,
    );
    expect_err(
        env.sql
            .query(&db, vec![Statement::new("INSERT INTO t VALUES (?); INSERT INTO t VALUES (?)").bind(vec![int(5)])])
            .await,
        "sql.params_not_last",
        message,
    );
    assert_eq!(env.int(&db, "SELECT count(*) FROM t").await, 0);

    let r = env
        .sql
        .query(
            &db,
            vec![Statement::new("INSERT INTO t VALUES (1); INSERT INTO t VALUES (?) RETURNING a").bind(vec![int(5)])],
        )
        .await
        .unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].rows, vec![vec![int(5)]]);
    assert_eq!(env.rows(&db, "SELECT a FROM t ORDER BY a").await, vec![vec![int(1)], vec![int(5)]]);
}

#[tokio::test]
async fn sql_with_only_comments_is_refused() {
    let env = Env::new();
    let db = env.database("comments").await;
    env.run(&db, "CREATE TABLE t(a)").await;
    for sql in
        ["", "   ", "-- nothing here", "  -- indented\n-- two lines\n", "/* block */", " ; ; ", "-- a\n;\n/* b */;"]
    {
        let e = expect_err(
            env.sql.query(&db, vec![Statement::new(sql)]).await,
            "sql.no_statement",
            "No SQL statements detected.",
        );
        assert_eq!(e.kind(), ErrorKind::Invalid);
    }
    expect_err(env.sql.query(&db, Vec::new()).await, "sql.no_statement", "No SQL statements detected.");
    // A comment-only statement in a batch fails the whole batch.
    expect_err(
        env.sql.query(&db, vec![Statement::new("INSERT INTO t VALUES (1)"), Statement::new("-- nothing")]).await,
        "sql.no_statement",
        "No SQL statements detected.",
    );
    assert_eq!(env.int(&db, "SELECT count(*) FROM t").await, 0);
    // Comments around a statement are fine.
    assert_eq!(env.rows(&db, "-- leading\nSELECT 7 /* inline */ -- trailing").await, vec![vec![int(7)]]);
}

#[tokio::test]
async fn meta_reports_what_each_statement_did() {
    let env = Env::new();
    let db = env.database("meta").await;
    let create = env.run(&db, "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT)").await.remove(0);
    assert!(create.meta.changed_db);
    assert_eq!((create.meta.changes, create.meta.rows_written), (0, 0));

    for (i, name) in ["ada", "bob", "cy"].into_iter().enumerate() {
        let r = env
            .sql
            .query(&db, vec![Statement::new("INSERT INTO users(name) VALUES (?)").bind(vec![text(name)])])
            .await
            .unwrap()
            .remove(0);
        assert_eq!((r.meta.changes, r.meta.rows_written, r.meta.last_row_id), (1, 1, i as i64 + 1));
        assert_eq!(r.meta.rows_read, 1, "an INSERT with bound values reads 1 row, as in D1");
        assert!(r.meta.changed_db);
        assert!(r.rows.is_empty());
    }

    let select = env.run(&db, "SELECT * FROM users").await.remove(0);
    assert_eq!(select.rows.len(), 3);
    assert_eq!((select.meta.rows_read, select.meta.rows_written, select.meta.changes), (3, 0, 0));
    assert!(!select.meta.changed_db);
    assert!(select.meta.size_after > 0);
    assert!(select.meta.duration_ms >= 0.0);

    let returning = env.run(&db, "INSERT INTO users(name) VALUES ('dan') RETURNING *").await.remove(0);
    assert_eq!(returning.columns, ["id", "name"]);
    assert_eq!(returning.rows, vec![vec![int(4), text("dan")]]);
    assert_eq!((returning.meta.rows_written, returning.meta.changes, returning.meta.last_row_id), (1, 1, 4));
    assert_eq!(returning.meta.rows_read, 2, "INSERT ... RETURNING reads 2 rows, as in D1");
    assert!(returning.meta.changed_db);

    let update = env.run(&db, "UPDATE users SET name = upper(name) WHERE id > 1").await.remove(0);
    assert_eq!((update.meta.changes, update.meta.rows_written, update.meta.last_row_id), (3, 3, 4));
    assert!(update.meta.changed_db);
    let none = env.run(&db, "DELETE FROM users WHERE id > 100").await.remove(0);
    assert_eq!((none.meta.changes, none.meta.rows_written), (0, 0));
    assert!(!none.meta.changed_db);

    // `size_after` is the database's size, as `info` reports it.
    let size = env.run(&db, "SELECT 1").await[0].meta.size_after;
    assert_eq!(env.sql.info(&db).await.unwrap().file_size, size);
    assert_eq!(env.rows(&db, "SELECT name FROM users WHERE id = 2").await, vec![vec![text("BOB")]]);

    // Each statement of a text is measured on its own.
    let parts = env.run(&db, "INSERT INTO users(name) VALUES ('eve'); SELECT count(*) FROM users").await;
    assert_eq!(parts.len(), 2);
    assert!(parts[0].meta.changed_db);
    assert_eq!(parts[0].meta.last_row_id, 5);
    assert!(!parts[1].meta.changed_db, "a SELECT after an INSERT changed nothing");
    assert_eq!(parts[1].meta.last_row_id, 5);
    assert_eq!(parts[1].meta.size_after, parts[0].meta.size_after);
}

#[tokio::test]
async fn a_failing_statement_rolls_back_the_whole_batch() {
    let env = Env::new();
    let db = env.database("atomic").await;
    env.run(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)").await;
    env.run(&db, "INSERT INTO t VALUES (1, 'one')").await;

    let e = expect_err(
        env.sql
            .query(
                &db,
                vec![
                    Statement::new("INSERT INTO t VALUES (2, 'two')"),
                    Statement::new("UPDATE t SET v = 'changed'"),
                    Statement::new("INSERT INTO missing VALUES (1)"),
                    Statement::new("INSERT INTO t VALUES (3, 'three')"),
                ],
            )
            .await,
        "sql.error",
        "no such table: missing: SQLITE_ERROR",
    );
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert_eq!(env.rows(&db, "SELECT id, v FROM t").await, vec![vec![int(1), text("one")]]);

    // A constraint failure, and schema changes earlier in the batch.
    expect_err(
        env.sql
            .query(
                &db,
                vec![
                    Statement::new("CREATE TABLE extra(a)"),
                    Statement::new("INSERT INTO t VALUES (5, 'five')"),
                    Statement::new("INSERT INTO t VALUES (1, 'again')"),
                ],
            )
            .await,
        "sql.error",
        "UNIQUE constraint failed: t.id: SQLITE_CONSTRAINT",
    );
    assert_eq!(env.sql.info(&db).await.unwrap().num_tables, 1);
    assert_eq!(env.int(&db, "SELECT count(*) FROM t").await, 1);

    // A failure inside one multi-statement text.
    expect_err(
        env.sql
            .query(&db, vec![Statement::new(
                "INSERT INTO t VALUES (6, 'six'); INSERT INTO t VALUES (7, 'seven', 'extra'); INSERT INTO t VALUES (8, 'eight')",
            )])
            .await,
        "sql.error",
        "table t has 2 columns but 3 values were supplied: SQLITE_ERROR",
    );
    assert_eq!(env.int(&db, "SELECT count(*) FROM t").await, 1);

    // A batch that succeeds commits every statement.
    env.sql
        .query(
            &db,
            vec![
                Statement::new("INSERT INTO t VALUES (2, 'two')"),
                Statement::new("INSERT INTO t VALUES (3, 'three')"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(env.int(&db, "SELECT count(*) FROM t").await, 3);
}

#[tokio::test]
async fn attach_reserved_tables_and_transaction_statements_are_refused() {
    let env = Env::new();
    let db = env.database("forbidden").await;
    env.run(&db, "CREATE TABLE t(a)").await;
    let query =
        |sql: &'static str| env.sql.query(&db, vec![Statement::new("INSERT INTO t VALUES (1)"), Statement::new(sql)]);

    let e = query("ATTACH DATABASE 'other.db' AS other").await.unwrap_err();
    assert_eq!(e.code(), "sql.not_authorized", "{e}");
    assert_eq!(e.kind(), ErrorKind::Invalid);
    let e = query("CREATE TABLE _cf_secret(a)").await.unwrap_err();
    assert_eq!(e.code(), "sql.not_authorized", "{e}");
    let e = query("SELECT * FROM _cairn_kv").await.unwrap_err();
    assert_eq!(e.code(), "sql.not_authorized", "{e}");
    let e = query("ALTER TABLE t RENAME TO _cf_t").await.unwrap_err();
    assert_eq!(e.code(), "sql.not_authorized", "{e}");
    let transaction = "To execute a transaction, please use the storage transaction() or transaction_sync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT statements. The API is safer because it will automatically roll back on errors, and because it interacts correctly with Cairn's automatic atomic write coalescing.";
    for sql in ["BEGIN", "BEGIN TRANSACTION", "SAVEPOINT s", "COMMIT"] {
        let e =
            expect_err(env.sql.query(&db, vec![Statement::new(sql)]).await, "sql.transaction_statement", transaction);
        assert_eq!(e.kind(), ErrorKind::Invalid);
    }
    // Nothing of the refused batches was written.
    assert_eq!(env.int(&db, "SELECT count(*) FROM t").await, 0);
    assert_eq!(env.sql.info(&db).await.unwrap().num_tables, 1);
}
