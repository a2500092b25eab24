//! Export (SQL dump) and import.

use cairn_sqldb::Statement;
use cairn_storage::{DumpOptions, SqlValue};

use crate::{Env, expect_err, text};

const SCHEMA: &str = "
    CREATE TABLE kinds(id INTEGER PRIMARY KEY, i INTEGER, r REAL, t TEXT, b BLOB, any_value);
    CREATE TABLE \"odd \"\"name\"\"\"(\"a b\" TEXT, c INTEGER NOT NULL DEFAULT 3);
    CREATE TABLE parent(id INTEGER PRIMARY KEY);
    CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id));
    CREATE INDEX kinds_by_t ON kinds(t);
    CREATE VIEW texts AS SELECT id, t FROM kinds WHERE t IS NOT NULL;
    CREATE TRIGGER kinds_touch AFTER INSERT ON kinds BEGIN UPDATE kinds SET i = coalesce(i, 0) WHERE id = new.id; END;
";

/// Queries whose results must match between the original and the imported database.
const CHECKS: [&str; 6] = [
    "SELECT id, i, r, t, b, any_value, typeof(i), typeof(r), typeof(t), typeof(b), typeof(any_value) FROM kinds ORDER BY id",
    "SELECT \"a b\", c FROM \"odd \"\"name\"\"\" ORDER BY rowid",
    "SELECT * FROM child ORDER BY id",
    "SELECT * FROM texts ORDER BY id",
    "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE '\\_cairn\\_%' ESCAPE '\\' ORDER BY type, name",
    "SELECT count(*) FROM kinds WHERE t = 'it''s'",
];

async fn fill(env: &Env, db: &str) {
    env.run(db, SCHEMA).await;
    let rows: Vec<Vec<SqlValue>> = vec![
        vec![SqlValue::Null, SqlValue::Null, SqlValue::Null, SqlValue::Null, SqlValue::Null],
        vec![2.into(), SqlValue::Real(0.1), text("it's"), SqlValue::Blob(vec![0, 1, 2, 255]), SqlValue::Real(1.0)],
        vec![
            i64::MIN.into(),
            SqlValue::Real(1.0),
            text("line one\nline two\r\n\t\"quoted\" -- not a comment; /* nor this */"),
            SqlValue::Blob(Vec::new()),
            text("1"),
        ],
        vec![
            i64::MAX.into(),
            SqlValue::Real(-2.5e-300),
            text("nul\0inside, é 日本 \u{1F600}"),
            SqlValue::Blob(b"';DROP TABLE kinds;--".to_vec()),
            SqlValue::Integer(10),
        ],
        vec![
            0.into(),
            SqlValue::Real(1e300),
            text(""),
            SqlValue::Blob(vec![0; 3]),
            SqlValue::Real(123_456_789_012_345_680.0),
        ],
        vec![(-1).into(), SqlValue::Real(-0.0), text("NULL"), SqlValue::Null, SqlValue::Real(0.30000000000000004)],
    ];
    for params in rows {
        let statement = Statement::new("INSERT INTO kinds(i, r, t, b, any_value) VALUES (?, ?, ?, ?, ?)").bind(params);
        env.sql.query(db, vec![statement]).await.unwrap();
    }
    env.run(
        db,
        "INSERT INTO \"odd \"\"name\"\"\" VALUES ('x', 1), (NULL, 2); INSERT INTO \"odd \"\"name\"\"\"(\"a b\") VALUES ('y');
         INSERT INTO parent VALUES (1), (2); INSERT INTO child VALUES (10, 1), (11, 2), (12, NULL)",
    )
    .await;
}

async fn results(env: &Env, db: &str) -> Vec<Vec<Vec<SqlValue>>> {
    let mut out = Vec::new();
    for sql in CHECKS {
        out.push(env.rows(db, sql).await);
    }
    out
}

#[tokio::test]
async fn an_exported_database_imports_into_an_identical_one() {
    let env = Env::new();
    let source = env.database("source").await;
    fill(&env, &source).await;
    let dump = env.sql.export(&source, DumpOptions::default()).await.unwrap();
    assert!(dump.starts_with("PRAGMA defer_foreign_keys=TRUE;\n"), "{dump}");
    assert!(!dump.contains("_cairn_"), "{dump}");

    let copy = env.database("copy").await;
    let summary = env.sql.import(&copy, dump.clone()).await.unwrap();
    // 1 pragma + 4 tables + 6 + 3 + 2 + 3 rows + index, view, trigger.
    assert_eq!(summary.num_queries, 1 + 4 + 6 + 3 + 2 + 3 + 3);
    assert_eq!(summary.rows_written, 6 + 3 + 2 + 3);
    assert!(summary.size_after > 0);

    let expected = results(&env, &source).await;
    assert_eq!(results(&env, &copy).await, expected);
    // Spot checks of the values that are easy to get wrong.
    let kinds = &expected[0];
    assert_eq!(kinds[1][2], SqlValue::Real(0.1));
    assert_eq!(kinds[1][5], SqlValue::Real(1.0));
    assert_eq!(kinds[1][10], text("real"));
    assert_eq!(kinds[2][5], text("1"));
    assert_eq!(kinds[0][1], SqlValue::Integer(0), "the trigger ran on the original insert");
    assert_eq!(kinds[3][3], text("nul\0inside, é 日本 \u{1F600}"));
    assert_eq!(kinds[2][4], SqlValue::Blob(Vec::new()));
    assert_eq!(expected[1], [vec![text("x"), 1.into()], vec![SqlValue::Null, 2.into()], vec![text("y"), 3.into()]]);
    // Exporting the copy gives the same text.
    assert_eq!(env.sql.export(&copy, DumpOptions::default()).await.unwrap(), dump);
    // The copy's schema behaves: the trigger and the defaults work there too.
    env.run(&copy, "INSERT INTO kinds(id) VALUES (100); INSERT INTO \"odd \"\"name\"\"\"(\"a b\") VALUES ('z')").await;
    assert_eq!(env.rows(&copy, "SELECT i FROM kinds WHERE id = 100").await, vec![vec![SqlValue::Integer(0)]]);
}

#[tokio::test]
async fn export_options_select_schema_data_and_tables() {
    let env = Env::new();
    let db = env.database("options").await;
    fill(&env, &db).await;

    let schema = env.sql.export(&db, DumpOptions { no_data: true, ..DumpOptions::default() }).await.unwrap();
    assert!(schema.contains("CREATE TABLE kinds") && schema.contains("CREATE TRIGGER kinds_touch"), "{schema}");
    assert!(!schema.contains("INSERT INTO"), "{schema}");

    let data = env.sql.export(&db, DumpOptions { no_schema: true, ..DumpOptions::default() }).await.unwrap();
    assert!(!data.contains("CREATE "), "{data}");
    assert_eq!(data.matches("INSERT INTO").count(), 6 + 3 + 2 + 3);

    let only = DumpOptions { tables: vec!["parent".into(), "child".into()], ..DumpOptions::default() };
    let part = env.sql.export(&db, only).await.unwrap();
    assert!(part.contains("CREATE TABLE parent") && part.contains("CREATE TABLE child"), "{part}");
    assert!(!part.contains("kinds"), "{part}");
    let copy = env.database("partial").await;
    env.sql.import(&copy, part).await.unwrap();
    assert_eq!(env.sql.info(&copy).await.unwrap().num_tables, 2);
    assert_eq!(
        env.rows(&copy, "SELECT * FROM child ORDER BY id").await,
        env.rows(&db, "SELECT * FROM child ORDER BY id").await
    );

    // Schema first, then the data into it.
    let copy = env.database("two-steps").await;
    env.sql.import(&copy, schema).await.unwrap();
    env.sql.import(&copy, data).await.unwrap();
    assert_eq!(results(&env, &copy).await, results(&env, &db).await);
}

#[tokio::test]
async fn an_import_that_fails_midway_changes_nothing() {
    let env = Env::new();
    let db = env.database("import").await;
    env.run(&db, "CREATE TABLE t(a INTEGER); INSERT INTO t VALUES (1)").await;
    let before = env.sql.export(&db, DumpOptions::default()).await.unwrap();

    let script = "CREATE TABLE added(x);\nINSERT INTO added VALUES (1);\nINSERT INTO t VALUES (2);\nDELETE FROM t WHERE a = 1;\n\
                  INSERT INTO nope VALUES (3);\nINSERT INTO t VALUES (4);\n";
    expect_err(env.sql.import(&db, script.to_owned()).await, "sql.error", "no such table: nope: SQLITE_ERROR");
    assert_eq!(env.sql.export(&db, DumpOptions::default()).await.unwrap(), before);
    assert_eq!(env.sql.info(&db).await.unwrap().num_tables, 1);
    assert_eq!(env.rows(&db, "SELECT a FROM t").await, vec![vec![SqlValue::Integer(1)]]);

    // Forbidden statements fail an import the same way.
    let e = env.sql.import(&db, "INSERT INTO t VALUES (5); CREATE TABLE _cf_x(a);".to_owned()).await.unwrap_err();
    assert_eq!(e.code(), "sql.not_authorized", "{e}");
    assert_eq!(env.rows(&db, "SELECT a FROM t").await, vec![vec![SqlValue::Integer(1)]]);

    // A dump's transaction statements are skipped: the import is atomic by itself.
    let summary = env
        .sql
        .import(&db, "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nINSERT INTO t VALUES (6);\nCOMMIT;\n".to_owned())
        .await
        .unwrap();
    assert_eq!((summary.num_queries, summary.rows_written), (1, 1));
    assert_eq!(
        env.rows(&db, "SELECT a FROM t ORDER BY a").await,
        vec![vec![SqlValue::Integer(1)], vec![SqlValue::Integer(6)]]
    );
}
