//! `cairn bench kv`: Cairn's Cloudflare-compatible KV and D1 API (`/client/v4`) under load,
//! beside Redis and Miniflare doing the same work, all started by this one invocation.
//!
//! - Cairn: the real server in this process (see `server.rs`), `fsync` durability, with one KV
//!   namespace and one D1 database created through the API.
//! - Redis (`redis.rs`): two `redis-server` children, AOF on with `appendfsync everysec` and
//!   with `appendfsync always`, spoken to in RESP (`resp.rs`).
//! - Miniflare (`miniflare.rs`, `miniflare.mjs`): a Worker whose KV namespace and D1 database
//!   are Miniflare's local simulators, persisted to disk.
//!
//! Every store keeps its files in the same work directory. Each figure runs a short warm-up
//! (a tenth of the requests), then the measured run, with the load generator of `load.rs`.
//! The requests themselves are in `workload.rs`.

mod miniflare;
mod redis;
mod resp;
mod workload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::Figure;
use crate::http_conn::{self, HttpConn};
use crate::load::{Driver, Run, load, runtime};
use crate::server::Server;
use miniflare::Miniflare;
use redis::{RedisKv, RedisServer};
use workload::{Api, BATCH_ROWS, CREATE_TABLE, GET_KEYS, HttpKv, JSON, Op, statement_json};

/// Options of the KV benchmark.
#[derive(Clone, Debug)]
pub struct KvBenchOptions {
    /// Where every store keeps its files (removed afterwards).
    pub dir: PathBuf,
    /// Requests in each run at concurrency 32; lists run a tenth as many, and the batch insert
    /// a thousandth as many batches (at least 5).
    pub requests: usize,
    /// The `redis-server` binary.
    pub redis_server: PathBuf,
    /// The `node` binary.
    pub node: PathBuf,
    /// The npm prefix Miniflare is installed in (`npm install --prefix DIR miniflare`).
    pub miniflare_prefix: PathBuf,
}

const CONCURRENCY: usize = 32;

/// A measured run, with the requests the HTTP client had to send again on a new connection.
#[derive(Clone, Copy, Debug)]
struct Measured {
    run: Run,
    resent: u64,
}

/// Runs a tenth of `per_conn` requests (at least 2 a connection) untimed, then the measured
/// run.
async fn measure<D: Driver>(warm_up: D, measured: D, concurrency: usize, per_conn: usize) -> anyhow::Result<Measured> {
    load(Arc::new(warm_up), concurrency, (per_conn / 10).max(2)).await?;
    let resent = http_conn::resent();
    let run = load(Arc::new(measured), concurrency, per_conn).await?;
    Ok(Measured { run, resent: http_conn::resent() - resent })
}

/// `measure` of `op` over HTTP; warm-up PUTs write the key range `w` and warm-up batches rows
/// above those measured.
async fn measure_http(
    addr: SocketAddr,
    api: &Api,
    op: Op,
    concurrency: usize,
    per_conn: usize,
) -> anyhow::Result<Measured> {
    let warm_op = match op {
        Op::Put { .. } => Op::Put { range: 'w' },
        Op::Batch { .. } => Op::Batch { first_batch: 1000 },
        other => other,
    };
    let warm_up = HttpKv { addr, api: api.clone(), op: warm_op };
    let system = if let Api::Cairn { .. } = api { "Cairn" } else { "Miniflare" };
    measure(warm_up, HttpKv { addr, api: api.clone(), op }, concurrency, per_conn)
        .await
        .with_context(|| format!("{system}: {op:?} at concurrency {concurrency}"))
}

async fn measure_redis(addr: SocketAddr, op: Op, per_conn: usize) -> anyhow::Result<Measured> {
    let warm_op = if let Op::Put { .. } = op { Op::Put { range: 'w' } } else { op };
    measure(RedisKv { addr, op: warm_op }, RedisKv { addr, op }, CONCURRENCY, per_conn)
        .await
        .with_context(|| format!("Redis: {op:?}"))
}

/// A figure with both sides' latencies; `shape` is the run's concurrency and requests per
/// connection.
fn figure(
    name: &str,
    cairn: Measured,
    anchor: &str,
    anchor_run: Measured,
    target: Option<f64>,
    shape: (usize, usize),
) -> Figure {
    let (concurrency, per_conn) = shape;
    let mut f = Figure::new(name, cairn.run.ops_per_sec, anchor, anchor_run.run.ops_per_sec, target);
    f.extra.insert("p50_us".into(), cairn.run.p50_us.into());
    f.extra.insert("p99_us".into(), cairn.run.p99_us.into());
    f.extra.insert("anchor_p50_us".into(), anchor_run.run.p50_us.into());
    f.extra.insert("anchor_p99_us".into(), anchor_run.run.p99_us.into());
    f.extra.insert("concurrency".into(), concurrency.into());
    f.extra.insert("requests".into(), (concurrency * per_conn).into());
    f.extra.insert("resent".into(), cairn.resent.into());
    f.extra.insert("anchor_resent".into(), anchor_run.resent.into());
    f
}

/// Sends one request and returns its JSON body, failing on any status but 200.
async fn call(conn: &mut HttpConn, method: &str, path: &str, body: &[u8]) -> anyhow::Result<serde_json::Value> {
    let reply = conn.send(method, path, JSON, body).await?;
    let text = String::from_utf8_lossy(&reply.body);
    anyhow::ensure!(reply.status == 200, "{method} {path} answered {}: {text}", reply.status);
    serde_json::from_str(&text).with_context(|| format!("{method} {path} answered {text}"))
}

/// Runs one statement and returns its first row (`null` if none), from either API.
async fn first_row(
    conn: &mut HttpConn,
    api: &Api,
    sql: &str,
    params: &[serde_json::Value],
) -> anyhow::Result<serde_json::Value> {
    let body = call(conn, "POST", &api.query_path(), &statement_json(sql, params)).await?;
    Ok(match api {
        Api::Cairn { .. } => body["result"][0]["results"][0].clone(),
        Api::Worker => body,
    })
}

/// Creates the KV namespace, the D1 database and its table through Cairn's API.
async fn setup_cairn(addr: SocketAddr) -> anyhow::Result<Api> {
    let mut conn = HttpConn::open(addr).await?;
    let ns = call(&mut conn, "POST", "/client/v4/accounts/a/storage/kv/namespaces", br#"{"title":"bench"}"#).await?;
    let db = call(&mut conn, "POST", "/client/v4/accounts/a/d1/database", br#"{"name":"bench"}"#).await?;
    let api = Api::Cairn {
        namespace: ns["result"]["id"].as_str().context("namespace id")?.to_owned(),
        database: db["result"]["uuid"].as_str().context("database uuid")?.to_owned(),
    };
    first_row(&mut conn, &api, CREATE_TABLE, &[]).await?;
    Ok(api)
}

/// Checks, untimed, that a list returns the 1,000 stored keys.
async fn check_list(addr: SocketAddr, api: &Api) -> anyhow::Result<()> {
    let mut conn = HttpConn::open(addr).await?;
    let body = call(&mut conn, "GET", &api.list_path(), b"").await?;
    let keys = match api {
        Api::Cairn { .. } => &body["result"],
        Api::Worker => &body["keys"],
    };
    let n = keys.as_array().map_or(0, Vec::len);
    anyhow::ensure!(n == GET_KEYS, "{api:?} listed {n} keys, not {GET_KEYS}");
    Ok(())
}

/// Checks, untimed, that the table holds `rows` rows and that a point select finds its row.
async fn check_rows(addr: SocketAddr, api: &Api, rows: usize) -> anyhow::Result<()> {
    let mut conn = HttpConn::open(addr).await?;
    let count = first_row(&mut conn, api, "SELECT count(*) AS n FROM t WHERE id < ?", &[rows.into()]).await?;
    anyhow::ensure!(count["n"] == rows, "{api:?} holds {} rows, not {rows}", count["n"]);
    let row = first_row(&mut conn, api, "SELECT * FROM t WHERE id = ?", &[7.into()]).await?;
    anyhow::ensure!(row["id"] == 7 && row["name"] == "item 7", "{api:?} answered {row} for row 7");
    Ok(())
}

/// Runs every KV and SQL figure, calling `report` as each one is ready.
///
/// # Errors
/// Any failure of Cairn, of an anchor (including one that cannot be started), or of the load.
pub fn kv(opts: &KvBenchOptions, mut report: impl FnMut(&Figure)) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opts.dir).context("create the benchmark directory")?;
    let work = tempfile::tempdir_in(&opts.dir).context("create a work directory")?;
    let root = work.path();
    let server = Server::start(&root.join("cairn"))?;
    let load_rt = runtime()?;
    let per_conn = (opts.requests / CONCURRENCY).max(10);
    let list_per_conn = (per_conn / 10).max(2);
    let list_c1 = (opts.requests / 10).max(20);
    let batches = (opts.requests / 1000).max(5);
    load_rt.block_on(async {
        let redis = RedisServer::start(&opts.redis_server, &root.join("redis-everysec"), "everysec").await?;
        let redis_always = RedisServer::start(&opts.redis_server, &root.join("redis-always"), "always").await?;
        let mf = Miniflare::start(&opts.node, &opts.miniflare_prefix, &root.join("miniflare"))?;
        let cairn = (server.addr, setup_cairn(server.addr).await?);
        let worker = (mf.addr, Api::Worker);
        first_row(&mut HttpConn::open(mf.addr).await?, &Api::Worker, CREATE_TABLE, &[]).await?;
        let redis_name =
            |fsync: &str, cmd: &str| format!("Redis {} {cmd} (appendonly yes, appendfsync {fsync})", redis.version);
        let mf_name = |what: &str| format!("Miniflare ({}) {what} via a Worker", mf.version);
        let shape = (CONCURRENCY, per_conn);

        // The keys read by the GETs and listed by the lists, stored by one client.
        let preload = Op::Put { range: 'g' };
        for (addr, api) in [&cairn, &worker] {
            load(Arc::new(HttpKv { addr: *addr, api: api.clone(), op: preload }), 1, GET_KEYS).await?;
        }
        load(Arc::new(RedisKv { addr: redis.addr, op: preload }), 1, GET_KEYS).await?;

        // KV get and durable put of 1 KiB values at concurrency 32.
        let get = measure_http(cairn.0, &cairn.1, Op::Get, CONCURRENCY, per_conn).await?;
        let redis_get = measure_redis(redis.addr, Op::Get, per_conn).await?;
        let mf_get = measure_http(worker.0, &worker.1, Op::Get, CONCURRENCY, per_conn).await?;
        let name = "kv_get_1k_c32";
        report(&figure(name, get, &redis_name("everysec", "GET"), redis_get, Some(0.5), shape));
        report(&figure(name, get, &mf_name("KV get"), mf_get, Some(10.0), shape));

        let put_op = Op::Put { range: 'p' };
        let put = measure_http(cairn.0, &cairn.1, put_op, CONCURRENCY, per_conn).await?;
        let redis_put_always = measure_redis(redis_always.addr, put_op, per_conn).await?;
        let redis_put = measure_redis(redis.addr, put_op, per_conn).await?;
        let mf_put = measure_http(worker.0, &worker.1, put_op, CONCURRENCY, per_conn).await?;
        let name = "kv_durable_put_1k_c32";
        report(&figure(name, put, &redis_name("always", "SET"), redis_put_always, Some(0.5), shape));
        report(&figure(name, put, &redis_name("everysec", "SET"), redis_put, None, shape));
        report(&figure(name, put, &mf_name("KV put"), mf_put, Some(10.0), shape));

        // KV list of the 1,000 stored keys, by one client and by 32.
        check_list(cairn.0, &cairn.1).await?;
        check_list(worker.0, &worker.1).await?;
        for (concurrency, per_conn) in [(1, list_c1), (CONCURRENCY, list_per_conn)] {
            let list = measure_http(cairn.0, &cairn.1, Op::List, concurrency, per_conn).await?;
            let mf_list = measure_http(worker.0, &worker.1, Op::List, concurrency, per_conn).await?;
            let name = format!("kv_list_1000_keys_c{concurrency}");
            report(&figure(&name, list, &mf_name("KV list({limit: 1000})"), mf_list, None, (concurrency, per_conn)));
        }

        // D1: batches of 1,000 inserts by one client (figures in rows per second), then point
        // selects over the rows inserted, at concurrency 32.
        let batch = measure_http(cairn.0, &cairn.1, Op::Batch { first_batch: 0 }, 1, batches).await?;
        let mf_batch = measure_http(worker.0, &worker.1, Op::Batch { first_batch: 0 }, 1, batches).await?;
        let rows = batches * BATCH_ROWS;
        check_rows(cairn.0, &cairn.1, rows).await?;
        check_rows(worker.0, &worker.1, rows).await?;
        let per_row =
            |m: Measured| Measured { run: Run { ops_per_sec: m.run.ops_per_sec * BATCH_ROWS as f64, ..m.run }, ..m };
        let mut f = figure(
            "d1_batch_insert_1000_rows_c1",
            per_row(batch),
            &mf_name("D1 batch() of 1,000 prepared INSERTs"),
            per_row(mf_batch),
            None,
            (1, batches),
        );
        f.extra.insert("rows_per_request".into(), BATCH_ROWS.into());
        report(&f);

        let select = measure_http(cairn.0, &cairn.1, Op::Select { rows }, CONCURRENCY, per_conn).await?;
        let mf_select = measure_http(worker.0, &worker.1, Op::Select { rows }, CONCURRENCY, per_conn).await?;
        let anchor = mf_name("D1 prepare().bind().first()");
        report(&figure("d1_select_by_primary_key_c32", select, &anchor, mf_select, None, shape));
        anyhow::Ok(())
    })?;
    server.stop()
}
