//! What the PostgreSQL tests share: the server (from `CAIRN_TEST_POSTGRES_URL`, or the URL that
//! `tests/postgres/ensure.sh` writes to `target/postgres/url`) and a fresh schema per test, so
//! that tests run in parallel without seeing each other's tables or notifications.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cairn_store::tokio_postgres::{Client, Config, NoTls};
use cairn_store::{Cell, DatabaseConfig, PostgresStorage};

/// The statements a persister ran, with their parameters.
pub(crate) type Statements = Arc<Mutex<Vec<(String, Vec<Cell>)>>>;

const HOW: &str = "run `bash tests/postgres/ensure.sh` from the workspace root: it installs PostgreSQL if needed, \
                   starts it and writes its URL to target/postgres/url (or set CAIRN_TEST_POSTGRES_URL)";

/// The test server's URL. Fails (never skips) when there is none.
pub(crate) fn url() -> String {
    if let Ok(url) = std::env::var("CAIRN_TEST_POSTGRES_URL")
        && !url.trim().is_empty()
    {
        return url.trim().to_owned();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("the workspace root");
    let file = root.join("target/postgres/url");
    match std::fs::read_to_string(&file) {
        Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
        _ => panic!(
            "no PostgreSQL for the tests: CAIRN_TEST_POSTGRES_URL is not set and {} is missing; {HOW}",
            file.display()
        ),
    }
}

async fn connect(config: &Config) -> Client {
    let (client, connection) =
        config.connect(NoTls).await.unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL ({e}); {HOW}"));
    tokio::spawn(connection);
    client
}

/// A schema of its own on the test server, and a client in it playing "another writer".
pub(crate) struct TestDb {
    /// Connection settings with the schema as `search_path`.
    pub(crate) config: Config,
    pub(crate) schema: String,
    /// Another writer, in the same schema.
    pub(crate) other: Client,
}

impl TestDb {
    pub(crate) async fn new() -> TestDb {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base: Config = url().parse().expect("a PostgreSQL URL");
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let schema = format!("store_test_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let admin = connect(&base).await;
        admin
            .batch_execute(&format!(r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE; CREATE SCHEMA "{schema}""#))
            .await
            .unwrap();
        let mut config = base;
        config.options(format!("-c search_path={schema}"));
        let other = connect(&config).await;
        TestDb { config, schema, other }
    }

    /// Another connection in the schema.
    pub(crate) async fn connect(&self) -> Client {
        connect(&self.config).await
    }

    /// A storage in the schema, with `config` and a hook that records statements.
    pub(crate) async fn storage(&self, config: DatabaseConfig) -> (PostgresStorage, Statements) {
        let statements: Statements = Arc::default();
        let log = statements.clone();
        let config =
            config.on_sql_command(move |sql, params| log.lock().unwrap().push((sql.to_owned(), params.to_vec())));
        (PostgresStorage::connect_with(self.config.clone(), config).await.unwrap(), statements)
    }

    /// A table's rows as `id: column=text,...` lines sorted by id, `NULL`s left out; each
    /// column as PostgreSQL holds it (text as it is, so a cell saved as JSON shows its quotes).
    pub(crate) async fn dump(&self, table: &str, id_column: &str) -> Vec<String> {
        let sql = format!(r#"SELECT row_to_json(t)::text FROM "{table}" t"#);
        let Ok(rows) = self.other.query(&sql, &[]).await else { return Vec::new() };
        let mut lines = Vec::new();
        for row in rows {
            let json: String = row.get(0);
            let object: BTreeMap<String, serde_json::Value> = serde_json::from_str(&json).unwrap();
            let mut id = String::new();
            let mut cells = Vec::new();
            for (column, value) in object {
                let text = match value {
                    serde_json::Value::Null => continue,
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                if column == id_column {
                    id = text;
                } else {
                    cells.push(format!("{column}={text}"));
                }
            }
            lines.push(format!("{id}: {}", cells.join(",")));
        }
        lines.sort();
        lines
    }

    /// A table's columns in order; empty if it does not exist.
    pub(crate) async fn columns(&self, table: &str) -> Vec<String> {
        let rows = self
            .other
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                &[&self.schema, &table],
            )
            .await
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }

    /// Drops the schema: the end of a test that passed.
    pub(crate) async fn finish(self) {
        self.other.batch_execute(&format!(r#"DROP SCHEMA "{}" CASCADE"#, self.schema)).await.unwrap();
    }
}

/// The SQL texts recorded, for which `keep` holds, removing them all from the log.
pub(crate) fn drain(statements: &Statements, keep: impl Fn(&str) -> bool) -> Vec<(String, Vec<Cell>)> {
    statements.lock().unwrap().drain(..).filter(|(sql, _)| keep(sql)).collect()
}
