//! The requests of the KV and SQL figures, the same for every system: keys, values, request
//! bodies, and the HTTP driver that sends them to Cairn's Cloudflare API or to the Miniflare
//! Worker.

use std::net::SocketAddr;

use crate::http_conn::{HttpConn, Reply};
use crate::load::Driver;

/// Size of every KV value.
pub(crate) const VALUE_BYTES: usize = 1024;
/// Keys stored before the GETs (and listed by the lists).
pub(crate) const GET_KEYS: usize = 1000;
/// Rows in one batch insert.
pub(crate) const BATCH_ROWS: usize = 1000;

pub(crate) const CREATE_TABLE: &str =
    "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL)";
const INSERT: &str = "INSERT INTO t(id, name, qty) VALUES (?, ?, ?)";
const SELECT: &str = "SELECT * FROM t WHERE id = ?";

/// Key `n` of a key range (`g` for the keys read, `p` for the keys written).
pub(crate) fn key(range: char, n: usize) -> String {
    format!("{range}{n:08}")
}

/// The key read by GET number `n`: the stored keys, visited in a scattered order.
pub(crate) fn get_key(n: usize) -> String {
    key('g', (n * 7919) % GET_KEYS)
}

/// Value `n`: distinct for every `n`, `VALUE_BYTES` long.
pub(crate) fn value(n: usize) -> Vec<u8> {
    let mut v = format!("{n:016}").into_bytes();
    v.resize(VALUE_BYTES, b'v');
    v
}

/// One statement with its parameters, as D1's REST API and the Worker take it.
pub(crate) fn statement_json(sql: &str, params: &[serde_json::Value]) -> Vec<u8> {
    serde_json::json!({"sql": sql, "params": params}).to_string().into_bytes()
}

fn select_json(id: usize) -> Vec<u8> {
    statement_json(SELECT, &[id.into()])
}

/// A batch of `BATCH_ROWS` inserts, one statement each, ids from `first_id`.
fn batch_json(first_id: usize) -> Vec<u8> {
    let batch: Vec<serde_json::Value> = (first_id..first_id + BATCH_ROWS)
        .map(|id| serde_json::json!({"sql": INSERT, "params": [id, format!("item {id}"), id % 97]}))
        .collect();
    serde_json::json!({ "batch": batch }).to_string().into_bytes()
}

/// What one run sends; request `n` of the run picks its key or row from `n`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    /// GET of a stored key.
    Get,
    /// PUT of a new value under key `n` of the range.
    Put { range: char },
    /// List of the first 1,000 keys.
    List,
    /// SELECT of one row by primary key, among `rows` rows.
    Select { rows: usize },
    /// Insert of `BATCH_ROWS` rows, ids from `(first_batch + n) * BATCH_ROWS`.
    Batch { first_batch: usize },
}

/// The HTTP API that a run talks to.
#[derive(Clone, Debug)]
pub(crate) enum Api {
    /// Cairn's `/client/v4`, with the ids of the KV namespace and the D1 database.
    Cairn { namespace: String, database: String },
    /// The Worker run by Miniflare (see `miniflare.mjs`).
    Worker,
}

impl Api {
    pub(crate) fn value_path(&self, key: &str) -> String {
        match self {
            Api::Cairn { namespace, .. } => {
                format!("/client/v4/accounts/a/storage/kv/namespaces/{namespace}/values/{key}")
            }
            Api::Worker => format!("/k/{key}"),
        }
    }

    pub(crate) fn list_path(&self) -> String {
        match self {
            Api::Cairn { namespace, .. } => {
                format!("/client/v4/accounts/a/storage/kv/namespaces/{namespace}/keys?limit=1000")
            }
            Api::Worker => "/list".to_owned(),
        }
    }

    pub(crate) fn query_path(&self) -> String {
        match self {
            Api::Cairn { database, .. } => format!("/client/v4/accounts/a/d1/database/{database}/query"),
            Api::Worker => "/d1/query".to_owned(),
        }
    }

    fn batch_path(&self) -> String {
        match self {
            Api::Cairn { .. } => self.query_path(),
            Api::Worker => "/d1/batch".to_owned(),
        }
    }
}

pub(crate) const JSON: &str = "application/json";
pub(crate) const OCTETS: &str = "application/octet-stream";

/// Sends `op`'s requests to `api` over HTTP.
pub(crate) struct HttpKv {
    pub(crate) addr: SocketAddr,
    pub(crate) api: Api,
    pub(crate) op: Op,
}

impl HttpKv {
    /// Sends request `n` and returns the reply, whatever its status.
    pub(crate) async fn send(&self, conn: &mut HttpConn, n: usize) -> anyhow::Result<Reply> {
        let api = &self.api;
        match self.op {
            Op::Get => conn.send("GET", &api.value_path(&get_key(n)), OCTETS, b"").await,
            Op::Put { range } => conn.send("PUT", &api.value_path(&key(range, n)), OCTETS, &value(n)).await,
            Op::List => conn.send("GET", &api.list_path(), JSON, b"").await,
            Op::Select { rows } => conn.send("POST", &api.query_path(), JSON, &select_json((n * 7919) % rows)).await,
            Op::Batch { first_batch } => {
                conn.send("POST", &api.batch_path(), JSON, &batch_json((first_batch + n) * BATCH_ROWS)).await
            }
        }
    }
}

impl Driver for HttpKv {
    type Conn = HttpConn;

    async fn connect(&self) -> anyhow::Result<HttpConn> {
        HttpConn::open(self.addr).await
    }

    async fn request(&self, conn: &mut HttpConn, n: usize) -> anyhow::Result<()> {
        let reply = self.send(conn, n).await?;
        anyhow::ensure!(
            reply.status == 200,
            "{:?} answered {}: {}",
            self.op,
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        if let Op::Get = self.op {
            anyhow::ensure!(reply.body.len() == VALUE_BYTES, "GET returned {} bytes", reply.body.len());
        }
        Ok(())
    }
}
