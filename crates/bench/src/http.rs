//! `cairn bench http`: the server under a keep-alive load, beside a bare hyper server that
//! answers the same requests from memory (the floor: what HTTP alone costs on this machine).
//!
//! The load generator opens `concurrency` keep-alive connections and sends requests one after
//! another on each, timing every request. Both servers run in this process on loopback ports
//! bound to 0, on their own tokio runtimes (two worker threads each); the generator has its own.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde::Serialize;

use crate::http_conn::HttpConn;
use crate::load::{Driver, Run, runtime};
use crate::rss_bytes;
use crate::server::Server;

/// One HTTP figure: Cairn and the floor under the same load, with latencies.
#[derive(Clone, Debug, Serialize)]
pub struct HttpFigure {
    /// Name, rates, anchor and ratio, as for every figure.
    #[serde(flatten)]
    pub figure: crate::Figure,
    /// Cairn's median latency, microseconds.
    pub p50_us: u64,
    /// Cairn's 99th percentile latency, microseconds.
    pub p99_us: u64,
    /// The floor's median latency, microseconds.
    pub anchor_p50_us: u64,
    /// The floor's 99th percentile latency, microseconds.
    pub anchor_p99_us: u64,
    /// Resident memory of this process after the run (both servers and the generator).
    pub rss_bytes: u64,
}

/// Options of the HTTP benchmark.
#[derive(Clone, Debug)]
pub struct HttpBenchOptions {
    /// Where Cairn keeps its data.
    pub dir: std::path::PathBuf,
    /// Requests per connection at concurrency 1 (divided by the concurrency above that, with a
    /// floor of 200).
    pub requests: usize,
}

type Store = Arc<Mutex<HashMap<String, Bytes>>>;

/// The floor: a bare hyper server holding values in a map.
async fn floor_handle(store: Store, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let reply = |status: StatusCode, body: Bytes| {
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
        r
    };
    if method == hyper::Method::PUT {
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        if let Ok(mut m) = store.lock() {
            m.insert(path, body);
        }
        return Ok(reply(StatusCode::OK, Bytes::from_static(b"{\"ok\":true}")));
    }
    let value = store.lock().ok().and_then(|m| m.get(&path).cloned());
    Ok(match value {
        Some(v) => reply(StatusCode::OK, v),
        None => reply(
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"{\"error\":{\"code\":\"kv.not_found\",\"message\":\"\"}}"),
        ),
    })
}

async fn serve_floor(listener: tokio::net::TcpListener) {
    let store: Store = Arc::default();
    while let Ok((stream, _)) = listener.accept().await {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| floor_handle(Arc::clone(&store), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

#[derive(Clone, Copy)]
enum Workload {
    Get,
    Put,
}

fn value_json(i: usize) -> Vec<u8> {
    // A JSON string of 100 bytes in all.
    let mut s = format!("\"{i:08}");
    s.extend(std::iter::repeat_n('x', 100 - s.len() - 1));
    s.push('"');
    s.into_bytes()
}

fn path(object: usize, key: usize) -> String {
    format!("/v1/namespaces/bench/objects/o{object}/kv/k{key}")
}

/// GETs of key `k0` or PUTs of new keys, spread over `objects` objects.
struct ObjectKv {
    addr: SocketAddr,
    workload: Workload,
    objects: usize,
}

impl Driver for ObjectKv {
    type Conn = HttpConn;

    async fn connect(&self) -> anyhow::Result<HttpConn> {
        HttpConn::open(self.addr).await
    }

    async fn request(&self, conn: &mut HttpConn, n: usize) -> anyhow::Result<()> {
        let object = n % self.objects;
        let reply = match self.workload {
            Workload::Put => conn.send("PUT", &path(object, n), JSON, &value_json(n)).await?,
            Workload::Get => conn.send("GET", &path(object, 0), JSON, b"").await?,
        };
        anyhow::ensure!(reply.status == 200, "status {}", reply.status);
        Ok(())
    }
}

const JSON: &str = "application/json";

async fn load(
    addr: SocketAddr,
    workload: Workload,
    concurrency: usize,
    per_conn: usize,
    objects: usize,
) -> anyhow::Result<Run> {
    crate::load::load(Arc::new(ObjectKv { addr, workload, objects }), concurrency, per_conn).await
}

/// Stores key `k0` on every object, for the GETs.
async fn preload(addr: SocketAddr, objects: usize) -> anyhow::Result<()> {
    let mut conn = HttpConn::open(addr).await?;
    for o in 0..objects {
        anyhow::ensure!(conn.send("PUT", &path(o, 0), JSON, &value_json(o)).await?.status == 200, "preload");
    }
    Ok(())
}

/// Runs every HTTP figure, calling `report` as each one is ready.
///
/// # Errors
/// Any failure of either server or of the load.
pub fn http(opts: &HttpBenchOptions, mut report: impl FnMut(&HttpFigure)) -> anyhow::Result<Vec<HttpFigure>> {
    std::fs::create_dir_all(&opts.dir).context("create the benchmark directory")?;
    let work = tempfile::tempdir_in(&opts.dir).context("create a work directory")?;
    let server = Server::start(&work.path().join("cairn"))?;
    let cairn_addr = server.addr;
    // The floor.
    let floor_rt = runtime()?;
    let floor_listener = floor_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).context("bind")?;
    let floor_addr = floor_listener.local_addr().context("addr")?;
    floor_rt.spawn(serve_floor(floor_listener));

    let load_rt = runtime()?;
    let mut out = Vec::new();
    for objects in [1usize, 1000] {
        load_rt.block_on(preload(cairn_addr, objects))?;
        load_rt.block_on(preload(floor_addr, objects))?;
        for (workload, label, target_32) in [(Workload::Get, "get", Some(0.7)), (Workload::Put, "durable_put", None)] {
            for concurrency in [1usize, 32] {
                let per_conn = (opts.requests / concurrency).max(200);
                let cairn = load_rt.block_on(load(cairn_addr, workload, concurrency, per_conn, objects))?;
                let floor = load_rt.block_on(load(floor_addr, workload, concurrency, per_conn, objects))?;
                let target = match (workload, concurrency, objects) {
                    (Workload::Get, _, _) => target_32,
                    (Workload::Put, 32, 1000) => Some(0.5),
                    _ => None,
                };
                let f = HttpFigure {
                    figure: crate::Figure::new(
                        &format!("{label}_100b_{objects}_objects_c{concurrency}"),
                        cairn.ops_per_sec,
                        "bare hyper server answering from memory",
                        floor.ops_per_sec,
                        target,
                    ),
                    p50_us: cairn.p50_us,
                    p99_us: cairn.p99_us,
                    anchor_p50_us: floor.p50_us,
                    anchor_p99_us: floor.p99_us,
                    rss_bytes: rss_bytes().unwrap_or(0),
                };
                report(&f);
                out.push(f);
            }
        }
    }
    server.stop()?;
    Ok(out)
}
