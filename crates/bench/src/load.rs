//! The load generator shared by the HTTP and KV benchmarks: `concurrency` connections, opened
//! before the clock starts, each sending its requests one after another (no pipelining), every
//! request timed as the generator sees it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

/// What the generator sends: how to open a connection and how to send request `n` on it.
pub(crate) trait Driver: Send + Sync + 'static {
    /// One client connection.
    type Conn: Send + 'static;
    /// Opens a connection.
    fn connect(&self) -> impl Future<Output = anyhow::Result<Self::Conn>> + Send;
    /// Sends request number `n` (unique within a run) and checks its answer.
    fn request(&self, conn: &mut Self::Conn, n: usize) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The outcome of one run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Run {
    /// Requests per second over the whole run.
    pub(crate) ops_per_sec: f64,
    /// Median latency, microseconds.
    pub(crate) p50_us: u64,
    /// 99th percentile latency, microseconds.
    pub(crate) p99_us: u64,
}

/// Sends `per_conn` requests on each of `concurrency` connections; request numbers are
/// `c * per_conn + i` for connection `c` and its `i`-th request.
pub(crate) async fn load<D: Driver>(driver: Arc<D>, concurrency: usize, per_conn: usize) -> anyhow::Result<Run> {
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        conns.push(driver.connect().await?);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (c, mut conn) in conns.into_iter().enumerate() {
        let driver = Arc::clone(&driver);
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(per_conn);
            for i in 0..per_conn {
                let n = c * per_conn + i;
                let t = Instant::now();
                driver.request(&mut conn, n).await.with_context(|| format!("request {n}"))?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut all: Vec<Duration> = Vec::with_capacity(concurrency * per_conn);
    while let Some(r) = tasks.join_next().await {
        all.extend(r.context("load task")??);
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).map_or(0, |d| d.as_micros() as u64)
    };
    Ok(Run { ops_per_sec: all.len() as f64 / elapsed.as_secs_f64().max(1e-9), p50_us: pct(0.5), p99_us: pct(0.99) })
}

/// A tokio runtime with two workers, as each side of a benchmark gets.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("tokio")
}
