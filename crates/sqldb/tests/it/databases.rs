//! Databases: create, list, look up, info, delete, name uniqueness.

use cairn_sqldb::{ErrorKind, Statement};

use crate::{Env, T0_MS, expect_err};

/// `0123abcd...` as `0123abcd-....-....-....-............`.
fn dashed(uuid: &str) -> String {
    format!("{}-{}-{}-{}-{}", &uuid[..8], &uuid[8..12], &uuid[12..16], &uuid[16..20], &uuid[20..])
}

#[tokio::test]
async fn databases_are_created_listed_inspected_and_deleted() {
    let env = Env::new();
    assert!(env.sql.list_databases().await.unwrap().is_empty());
    let shop = env.sql.create_database("shop").await.unwrap();
    env.clock.advance(10);
    let blog = env.sql.create_database("blog").await.unwrap();
    assert_eq!((shop.name.as_str(), shop.created_ms), ("shop", T0_MS));
    assert_eq!((blog.name.as_str(), blog.created_ms), ("blog", T0_MS + 10));
    assert_eq!(shop.uuid.len(), 32);
    assert!(shop.uuid.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{}", shop.uuid);
    assert_eq!(env.sql.list_databases().await.unwrap(), vec![shop.clone(), blog.clone()]);

    let info = env.sql.info(&shop.uuid).await.unwrap();
    assert_eq!((info.database.clone(), info.num_tables), (shop.clone(), 0));
    env.run(
        &shop.uuid,
        "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT); CREATE TABLE orders(id INTEGER PRIMARY KEY AUTOINCREMENT);
         CREATE INDEX items_by_name ON items(name); CREATE VIEW names AS SELECT name FROM items",
    )
    .await;
    let info = env.sql.info("shop").await.unwrap();
    // Indexes, views and SQLite's own `sqlite_sequence` are not tables of the user.
    assert_eq!(info.num_tables, 2);
    assert!(info.file_size > 0);
    let size = env.run(&shop.uuid, "SELECT 1").await[0].meta.size_after;
    assert_eq!(info.file_size, size);
    assert_eq!(env.sql.info(&blog.uuid).await.unwrap().num_tables, 0);

    env.sql.delete_database(&shop.uuid).await.unwrap();
    assert_eq!(env.sql.list_databases().await.unwrap(), vec![blog.clone()]);
    let gone = format!("The database {} could not be found", shop.uuid);
    let e = expect_err(env.sql.database(&shop.uuid).await, "sql.database_not_found", &gone);
    assert_eq!(e.kind(), ErrorKind::NotFound);
    expect_err(env.sql.info(&shop.uuid).await, "sql.database_not_found", &gone);
    expect_err(env.sql.query(&shop.uuid, vec![Statement::new("SELECT 1")]).await, "sql.database_not_found", &gone);
    expect_err(env.sql.delete_database(&shop.uuid).await, "sql.database_not_found", &gone);
    expect_err(env.sql.info("shop").await, "sql.database_not_found", "The database shop could not be found");
    // Its tables went with it.
    let object = env.rt.object(cairn_sqldb::DATA_NAMESPACE, &shop.uuid).unwrap();
    let left = object.exec("SELECT count(*) FROM sqlite_master WHERE name IN ('items', 'orders')", Vec::new()).await;
    assert_eq!(left.unwrap().raw().next().unwrap()[0].as_i64(), Some(0));
}

#[tokio::test]
async fn names_are_unique_and_free_again_after_delete() {
    let env = Env::new();
    let first = env.sql.create_database("app").await.unwrap();
    expect_err(
        env.sql.create_database("app").await,
        "sql.database_exists",
        "A database with the name \"app\" already exists",
    );
    // Names are case-sensitive.
    env.sql.create_database("App").await.unwrap();
    for name in ["", "   "] {
        let message = format!("invalid database name {name:?}: it must be 1 to 256 bytes and not blank");
        expect_err(env.sql.create_database(name).await, "sql.invalid_name", &message);
    }
    env.sql.create_database(&"n".repeat(256)).await.unwrap();
    let long = "n".repeat(257);
    let message = format!("invalid database name {:?}: it must be 1 to 256 bytes and not blank", "n".repeat(80));
    expect_err(env.sql.create_database(&long).await, "sql.invalid_name", &message);

    env.run(&first.uuid, "CREATE TABLE t(a); INSERT INTO t VALUES (1)").await;
    env.sql.delete_database("app").await.unwrap();
    let again = env.sql.create_database("app").await.unwrap();
    assert_ne!(again.uuid, first.uuid);
    assert_eq!(env.sql.info("app").await.unwrap().num_tables, 0);
    expect_err(
        env.sql.query("app", vec![Statement::new("SELECT * FROM t")]).await,
        "sql.error",
        "no such table: t: SQLITE_ERROR",
    );
}

#[tokio::test]
async fn a_database_is_found_by_uuid_with_or_without_dashes_or_by_name() {
    let env = Env::new();
    let db = env.sql.create_database("lookup").await.unwrap();
    let other = env.sql.create_database("other").await.unwrap();
    assert_eq!(env.sql.database(&db.uuid).await.unwrap(), db);
    assert_eq!(env.sql.database(&dashed(&db.uuid)).await.unwrap(), db);
    assert_eq!(env.sql.database(&dashed(&db.uuid).to_ascii_uppercase()).await.unwrap(), db);
    assert_eq!(env.sql.database("lookup").await.unwrap(), db);
    assert_eq!(env.sql.database("other").await.unwrap(), other);
    expect_err(env.sql.database("LOOKUP").await, "sql.database_not_found", "The database LOOKUP could not be found");
    let unknown = "00000000-0000-0000-0000-000000000000";
    expect_err(
        env.sql.database(unknown).await,
        "sql.database_not_found",
        "The database 00000000-0000-0000-0000-000000000000 could not be found",
    );
    // Every entry point takes the same forms.
    env.run(&dashed(&db.uuid), "CREATE TABLE t(a)").await;
    assert_eq!(env.sql.info("lookup").await.unwrap().num_tables, 1);
    assert_eq!(env.sql.info(&other.uuid).await.unwrap().num_tables, 0);
}

#[tokio::test]
async fn databases_and_their_tables_survive_a_restart() {
    let mut env = Env::new();
    let db = env.sql.create_database("durable").await.unwrap();
    env.clock.advance(1);
    let gone = env.sql.create_database("gone").await.unwrap();
    env.run(&db.uuid, "CREATE TABLE t(a TEXT); INSERT INTO t VALUES ('kept')").await;
    env.sql.delete_database(&gone.uuid).await.unwrap();

    env.restart();

    assert_eq!(env.sql.list_databases().await.unwrap(), vec![db.clone()]);
    assert_eq!(env.rows("durable", "SELECT a FROM t").await, vec![vec![crate::text("kept")]]);
    expect_err(
        env.sql.create_database("durable").await,
        "sql.database_exists",
        "A database with the name \"durable\" already exists",
    );
    env.sql.create_database("gone").await.unwrap();
}
