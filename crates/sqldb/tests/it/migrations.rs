//! Migrations in wrangler's convention (spec 8.4): file names, order, and applying them.

use std::path::Path;

use cairn_sqldb::migrations::{self, DEFAULT_TABLE};
use cairn_sqldb::{Error, Statement};
use cairn_storage::SqlValue;

use crate::{Env, T0_MS, expect_err, text};

fn write(dir: &Path, name: &str, sql: &str) {
    std::fs::write(dir.join(name), sql).expect("write a migration");
}

/// The names recorded in the tracking table, in id order, with their ids.
async fn applied(env: &Env, db: &str, table: &str) -> Vec<(i64, String)> {
    let results = env
        .sql
        .query(
            db,
            vec![Statement::new(migrations::create_table_sql(table)), Statement::new(migrations::applied_sql(table))],
        )
        .await
        .unwrap();
    let last = results.last().unwrap();
    assert_eq!(last.columns, ["id", "name", "applied_at"]);
    last.rows
        .iter()
        .map(|r| {
            assert!(r[2].as_str().is_some_and(|t| !t.is_empty()), "applied_at {:?}", r[2]);
            (r[0].as_i64().unwrap(), r[1].as_str().unwrap().to_owned())
        })
        .collect()
}

/// Applies the pending migrations of `dir` in order, as `wrangler d1 migrations apply` does:
/// stops at the first failure. Returns the names applied, and the failure if any.
async fn apply(env: &Env, db: &str, dir: &Path, table: &str) -> (Vec<String>, Option<(String, Error)>) {
    let done: Vec<String> = applied(env, db, table).await.into_iter().map(|(_, n)| n).collect();
    let mut names = Vec::new();
    for name in migrations::list_files(dir).unwrap().into_iter().filter(|n| !done.contains(n)) {
        let sql = std::fs::read_to_string(dir.join(&name)).unwrap();
        match env.sql.query(db, migrations::apply_batch(table, &name, &sql)).await {
            Ok(_) => names.push(name),
            Err(e) => return (names, Some((name, e))),
        }
    }
    (names, None)
}

async fn tables(env: &Env, db: &str) -> Vec<String> {
    env.rows(db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' AND name NOT LIKE '\\_cairn\\_%' ESCAPE '\\' ORDER BY name")
        .await
        .into_iter()
        .map(|r| r[0].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn create_file_numbers_after_the_largest_number_in_use() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("migrations");
    let first = migrations::create_file(&dir, "create users", T0_MS).unwrap();
    assert_eq!(first, dir.join("0001_create_users.sql"));
    assert_eq!(std::fs::read_to_string(&first).unwrap(), "-- Migration number: 0001 \t 2023-11-14T22:13:20.250Z\n");

    write(&dir, "0009_by_hand.sql", "SELECT 1;");
    write(&dir, "notes.sql", "");
    write(&dir, "0500_not_sql.txt", "");
    let next = migrations::create_file(&dir, "add  index", T0_MS + 1).unwrap();
    assert_eq!(next, dir.join("0010_add__index.sql"));
    assert!(
        std::fs::read_to_string(&next).unwrap().starts_with("-- Migration number: 0010 \t 2023-11-14T22:13:20.251Z")
    );

    write(&dir, "12345_big.sql", "");
    let big = migrations::create_file(&dir, "x", T0_MS).unwrap();
    assert_eq!(big, dir.join("12346_x.sql"));

    for name in ["a/b", "a\\b", "", "  "] {
        let message =
            format!("migration error: invalid migration name {name:?}: it must be non-empty, without '/' or '\\'");
        expect_err(migrations::create_file(&dir, name, T0_MS), "sql.migration", &message);
    }
    assert_eq!(migrations::list_files(&dir).unwrap().len(), 6);
}

#[test]
fn files_are_listed_in_numeric_order_with_unnumbered_ones_last() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    for name in ["10_c.sql", "9_b.sql", "notes.sql", "0001_a.sql", "10_b.sql", "README.md", "x.sql.bak", "another.sql"]
    {
        write(dir, name, "");
    }
    std::fs::create_dir(dir.join("11_dir.sql")).unwrap();
    assert_eq!(
        migrations::list_files(dir).unwrap(),
        ["0001_a.sql", "9_b.sql", "10_b.sql", "10_c.sql", "another.sql", "notes.sql"]
    );
    assert!(migrations::list_files(&dir.join("missing")).unwrap().is_empty());

    // Ties on the number fall back to plain order; path segments compare one by one.
    use std::cmp::Ordering::{Greater, Less};
    assert_eq!(migrations::compare_names("2_a.sql", "02_b.sql"), Greater);
    assert_eq!(migrations::compare_names("1_x/9_b.sql", "1_x/10_a.sql"), Less);
    assert_eq!(migrations::compare_names("2_x/1_a.sql", "10_x/1_a.sql"), Less);
}

#[tokio::test]
async fn migrations_apply_in_order_and_a_failing_one_is_rolled_back_alone() {
    let env = Env::new();
    let db = env.database("migrated").await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    write(
        dir,
        "0001_users.sql",
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO users(name) VALUES ('ada');\n",
    );
    write(
        dir,
        "0002_posts.sql",
        "-- Migration number: 0002\nCREATE TABLE posts(id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));\n\
         CREATE INDEX posts_by_user ON posts(user_id);",
    );
    write(
        dir,
        "0003_bad.sql",
        "CREATE TABLE partial(a);\nINSERT INTO partial VALUES (1);\nINSERT INTO nope VALUES (1);\n",
    );
    write(dir, "0004_email.sql", "ALTER TABLE users ADD COLUMN email TEXT;");
    write(dir, "10_it's.sql", "UPDATE users SET email = 'ada@example.com';");

    let (done, failure) = apply(&env, &db, dir, DEFAULT_TABLE).await;
    assert_eq!(done, ["0001_users.sql", "0002_posts.sql"]);
    let (name, e) = failure.expect("0003 fails");
    assert_eq!(
        (name.as_str(), e.code(), e.to_string().as_str()),
        ("0003_bad.sql", "sql.error", "no such table: nope: SQLITE_ERROR")
    );
    assert_eq!(
        applied(&env, &db, DEFAULT_TABLE).await,
        [(1, "0001_users.sql".to_owned()), (2, "0002_posts.sql".to_owned())]
    );
    // The failed migration left neither its table nor its bookkeeping row; later ones did not run.
    assert_eq!(tables(&env, &db).await, ["d1_migrations", "posts", "users"]);
    assert_eq!(env.rows(&db, "SELECT * FROM users").await, vec![vec![SqlValue::Integer(1), text("ada")]]);

    write(dir, "0003_bad.sql", "CREATE TABLE partial(a);\nINSERT INTO partial VALUES (1);\n");
    let (done, failure) = apply(&env, &db, dir, DEFAULT_TABLE).await;
    assert!(failure.is_none(), "{failure:?}");
    assert_eq!(done, ["0003_bad.sql", "0004_email.sql", "10_it's.sql"]);
    let names: Vec<(i64, String)> =
        ["0001_users.sql", "0002_posts.sql", "0003_bad.sql", "0004_email.sql", "10_it's.sql"]
            .iter()
            .enumerate()
            .map(|(i, n)| (i as i64 + 1, (*n).to_owned()))
            .collect();
    assert_eq!(applied(&env, &db, DEFAULT_TABLE).await, names);
    assert_eq!(
        env.rows(&db, "SELECT id, name, email FROM users").await,
        vec![vec![SqlValue::Integer(1), text("ada"), text("ada@example.com")]]
    );
    assert_eq!(env.int(&db, "SELECT count(*) FROM partial").await, 1);

    // Nothing left to apply.
    assert_eq!(apply(&env, &db, dir, DEFAULT_TABLE).await.0, Vec::<String>::new());
}

#[tokio::test]
async fn a_new_migration_file_with_only_its_header_applies() {
    let env = Env::new();
    let db = env.database("empty-migration").await;
    let root = tempfile::tempdir().unwrap();
    let path = migrations::create_file(root.path(), "nothing yet", T0_MS).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let (done, failure) = apply(&env, &db, root.path(), DEFAULT_TABLE).await;
    assert!(failure.is_none(), "{failure:?}");
    assert_eq!(done, std::slice::from_ref(&name));
    assert_eq!(applied(&env, &db, DEFAULT_TABLE).await, [(1, name)]);
}

#[tokio::test]
async fn a_custom_tracking_table_is_quoted() {
    let env = Env::new();
    let db = env.database("custom").await;
    let root = tempfile::tempdir().unwrap();
    write(root.path(), "0001_a.sql", "CREATE TABLE a(x);");
    let table = "my \"migrations\"";
    let (done, failure) = apply(&env, &db, root.path(), table).await;
    assert!(failure.is_none(), "{failure:?}");
    assert_eq!(done, ["0001_a.sql"]);
    assert_eq!(applied(&env, &db, table).await, [(1, "0001_a.sql".to_owned())]);
    assert_eq!(tables(&env, &db).await, ["a", "my \"migrations\""]);
    // The default table was never created.
    assert_eq!(env.int(&db, "SELECT count(*) FROM sqlite_master WHERE name = 'd1_migrations'").await, 0);
}
