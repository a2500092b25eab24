//! `cairn bench s3`: buckets through the S3 API of a `cairn serve` child process, beside raw
//! file I/O on the same file system.
//!
//! - The server (`crate::child`): the `cairn` binary started with `serve` on loopback ports bound
//!   to 0, default configuration (`fsync` durability), one access key; stopped with SIGTERM.
//! - The client (`client.rs`, `sigv4.rs`): hyper's HTTP/1.1 client connection, path-style
//!   requests signed with SigV4 (`UNSIGNED-PAYLOAD`), on a two-worker tokio runtime in this
//!   process. Bodies are generated from a cheap PRNG as they are sent, one 1 MiB chunk at a
//!   time; nothing holds a whole large body.
//! - The anchors: `std::fs` in this process, in the same work directory (so on the same file
//!   system), writing the same PRNG bytes in the same 1 MiB chunks.
//!
//! Figures, in order: 64 MiB PUTs against write + `sync_all` of a new file; 64 MiB GETs (warm)
//! against reading the file (warm); 4 KiB PUTs and GETs at concurrency 16 against a file per
//! object (write + `sync_all`, or read) by 16 threads; the server's peak resident memory while
//! it receives one 1 GiB object.

mod client;
mod sigv4;

use std::fs::File;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hyper::body::Bytes;
use md5::{Digest, Md5};

use crate::child::ChildServer;
use crate::load::{Driver, Run, load, runtime};
use crate::splitmix::SplitMix;
use crate::{Figure, round};
use client::{ReqBody, S3Conn};
use sigv4::{Credentials, hex};

/// Options of the S3 benchmark.
#[derive(Clone, Debug)]
pub struct S3BenchOptions {
    /// Where the server's data directory and the anchors' files go (removed afterwards).
    pub dir: PathBuf,
    /// The `cairn` binary to start as the server (`cairn bench s3` passes itself).
    pub server: PathBuf,
    /// 64 MiB objects put, then read three times each.
    pub large_objects: usize,
    /// Requests of each 4 KiB run at concurrency 16 (after a warm-up of a tenth as many).
    pub small_requests: usize,
    /// Size of the object uploaded for the memory figure, in MiB.
    pub memory_mib: u64,
}

/// Size of the large objects.
const LARGE_BYTES: u64 = 64 * MIB;
/// Size of the small objects.
const SMALL_BYTES: usize = 4096;
/// Connections of the small-object runs (threads for their anchor).
const CONCURRENCY: usize = 16;
/// Times each large object is read in the measured GETs.
const GET_ROUNDS: usize = 3;
/// Chunk of every generated body and of the anchors' reads and writes.
const CHUNK: usize = 1024 * 1024;
const MIB: u64 = 1024 * 1024;
/// The peak resident memory the issue allows the server while it receives a 1 GiB object.
const MEMORY_TARGET_BYTES: u64 = 100 * MIB;
const BUCKET: &str = "bench";

/// Calls `f` on each chunk of the `len` bytes of `SplitMix(seed)`, as a generated body cuts
/// them.
fn each_chunk(seed: u64, len: u64, mut f: impl FnMut(&[u8]) -> std::io::Result<()>) -> std::io::Result<()> {
    let mut rng = SplitMix(seed);
    let mut buf = vec![0u8; CHUNK];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
        rng.fill(&mut buf[..n]);
        f(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Hex MD5 of the `len` bytes of `SplitMix(seed)`: the ETag S3 gives them.
fn generated_md5(seed: u64, len: u64) -> String {
    let mut h = Md5::new();
    let _ = each_chunk(seed, len, |c| {
        h.update(c);
        Ok(())
    });
    hex(&h.finalize())
}

fn large_seed(i: usize) -> u64 {
    0x6c61_7267_6500_0000 + i as u64
}

fn large_key(i: usize) -> String {
    format!("large-{i:03}")
}

/// Small object `n`: `n` as 8 little-endian bytes, then PRNG bytes.
fn small_value(n: usize) -> Bytes {
    let mut v = vec![0u8; SMALL_BYTES];
    SplitMix(0x736d_616c_6c00_0000 ^ n as u64).fill(&mut v);
    v[..8].copy_from_slice(&(n as u64).to_le_bytes());
    Bytes::from(v)
}

/// Key `n` of a range of small objects (`w` warm-up, `s` measured); also the anchor's file
/// name.
fn small_key(range: char, n: usize) -> String {
    format!("small-{range}{n:08}")
}

/// Which stored small object GET number `n` reads: scattered over the `stored` objects.
fn small_target(n: usize, stored: usize) -> usize {
    (n * 7919) % stored
}

/// The anchor's write: a new file, the PRNG bytes in 1 MiB `write_all`s, then `sync_all`.
/// Returns how long the writes took (the rest of the time is `sync_all`).
fn raw_write(path: &Path, seed: u64, len: u64) -> std::io::Result<Duration> {
    let t = Instant::now();
    let mut file = File::create_new(path)?;
    each_chunk(seed, len, |c| file.write_all(c))?;
    let written = t.elapsed();
    file.sync_all()?;
    Ok(written)
}

/// The anchor's read: the whole file in 1 MiB `read`s; returns its length.
fn raw_read(path: &Path) -> std::io::Result<u64> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(total),
            n => total += n as u64,
        }
    }
}

/// The floor of any server on this machine: `LARGE_BYTES` sent over a loopback TCP
/// connection in 1 MiB writes and read in 1 MiB reads (two threads, no HTTP, no file), `n`
/// times; returns each transfer's time.
fn loopback_tcp(n: usize) -> anyhow::Result<Vec<Duration>> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind")?;
    let addr = listener.local_addr().context("addr")?;
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut conn, _) = listener.accept()?;
        let buf = vec![7u8; CHUNK];
        for _ in 0..n {
            for _ in 0..LARGE_BYTES / CHUNK as u64 {
                conn.write_all(&buf)?;
            }
        }
        Ok(())
    });
    let mut conn = std::net::TcpStream::connect(addr).context("connect")?;
    let mut buf = vec![0u8; CHUNK];
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let mut left = LARGE_BYTES;
        while left > 0 {
            let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
            match conn.read(&mut buf[..want]).context("loopback read")? {
                0 => anyhow::bail!("loopback connection closed early"),
                got => left -= got as u64,
            }
        }
        times.push(t.elapsed());
    }
    sender.join().map_err(|_| anyhow::anyhow!("loopback sender panicked"))?.context("loopback write")?;
    Ok(times)
}

fn mib_per_sec(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64().max(1e-9)
}

fn millis(ds: &[Duration]) -> serde_json::Value {
    ds.iter().map(|d| round(d.as_secs_f64() * 1000.0)).collect::<Vec<_>>().into()
}

/// A figure of large transfers: objects per second over all of them, with MiB/s, each
/// transfer's time, and the fastest transfer of each side with their ratio (steadier than the
/// totals when one side's times are bimodal, as the anchor's writes are on the project's
/// machine: see BENCHMARKS.md).
fn large_figure(name: &str, anchor: &str, cairn: &[Duration], anchor_times: &[Duration]) -> Figure {
    let (c, a): (Duration, Duration) = (cairn.iter().sum(), anchor_times.iter().sum());
    let fastest = |ds: &[Duration]| ds.iter().min().copied().unwrap_or_default();
    let mut f =
        Figure::new(name, crate::per_sec(cairn.len(), c), anchor, crate::per_sec(anchor_times.len(), a), Some(0.7));
    f.extra.insert("mib_per_sec".into(), round(mib_per_sec(LARGE_BYTES * cairn.len() as u64, c)).into());
    f.extra.insert("anchor_mib_per_sec".into(), round(mib_per_sec(LARGE_BYTES * anchor_times.len() as u64, a)).into());
    f.extra.insert("fastest_mib_per_sec".into(), round(mib_per_sec(LARGE_BYTES, fastest(cairn))).into());
    f.extra.insert("anchor_fastest_mib_per_sec".into(), round(mib_per_sec(LARGE_BYTES, fastest(anchor_times))).into());
    let fastest_ratio = fastest(anchor_times).as_secs_f64() / fastest(cairn).as_secs_f64().max(1e-9);
    f.extra.insert("fastest_ratio".into(), ((fastest_ratio * 1000.0).round() / 1000.0).into());
    f.extra.insert("object_bytes".into(), LARGE_BYTES.into());
    f.extra.insert("transfers".into(), cairn.len().into());
    f.extra.insert("ms".into(), millis(cairn));
    f.extra.insert("anchor_ms".into(), millis(anchor_times));
    f
}

/// 64 MiB PUTs of new keys, one after another, each beside the anchor's write of a new file
/// (which side goes first alternates). Returns the figure and each object's MD5.
async fn large_puts(conn: &mut S3Conn, raw: &Path, objects: usize) -> anyhow::Result<(Figure, Vec<String>)> {
    // Untimed: the ETag each object must get.
    let md5s: Vec<String> = (0..objects).map(|i| generated_md5(large_seed(i), LARGE_BYTES)).collect();
    let (mut cairn, mut anchor, mut anchor_writes) = (Vec::new(), Vec::new(), Vec::new());
    for (i, md5) in md5s.iter().enumerate() {
        let anchor_first = i % 2 == 0;
        for anchor_turn in [anchor_first, !anchor_first] {
            let t = Instant::now();
            if anchor_turn {
                let written = raw_write(&raw.join(large_key(i)), large_seed(i), LARGE_BYTES).context("raw write")?;
                anchor.push(t.elapsed());
                anchor_writes.push(written);
            } else {
                let etag = conn.put(BUCKET, &large_key(i), ReqBody::generated(large_seed(i), LARGE_BYTES)).await?;
                cairn.push(t.elapsed());
                anyhow::ensure!(etag == *md5, "PUT {} answered ETag {etag}, not the body's MD5 {md5}", large_key(i));
            }
        }
    }
    let mut f =
        large_figure("put_64mib_object", "std::fs write of a new file in 1 MiB chunks + sync_all", &cairn, &anchor);
    // Where the anchor's time goes: the writes into the page cache, then `sync_all`.
    let syncs: Vec<Duration> = anchor.iter().zip(&anchor_writes).map(|(all, w)| all.saturating_sub(*w)).collect();
    f.extra.insert("anchor_write_ms".into(), millis(&anchor_writes));
    f.extra.insert("anchor_sync_ms".into(), millis(&syncs));
    Ok((f, md5s))
}

/// 64 MiB GETs, each beside the anchor's read of the same bytes from its file. Every object
/// and file is read once first, untimed (so both sides read from the page cache), and that
/// read checks the body: its length, its MD5 against the ETag and against the bytes put.
async fn large_gets(conn: &mut S3Conn, raw: &Path, md5s: &[String]) -> anyhow::Result<Figure> {
    for (i, md5) in md5s.iter().enumerate() {
        let key = large_key(i);
        anyhow::ensure!(raw_read(&raw.join(&key)).context("raw read")? == LARGE_BYTES, "short raw file {key}");
        let mut h = Md5::new();
        let got = conn.get(BUCKET, &key, |d| h.update(d)).await?;
        let body_md5 = hex(&h.finalize());
        anyhow::ensure!(
            got.length == LARGE_BYTES && got.etag == *md5 && body_md5 == *md5,
            "GET {key}: {} bytes, ETag {}, body MD5 {body_md5}; expected {LARGE_BYTES} bytes with MD5 {md5}",
            got.length,
            got.etag
        );
    }
    let (mut cairn, mut anchor) = (Vec::new(), Vec::new());
    for round in 0..GET_ROUNDS {
        for (i, md5) in md5s.iter().enumerate() {
            let key = large_key(i);
            let anchor_first = (round + i) % 2 == 0;
            for anchor_turn in [anchor_first, !anchor_first] {
                let t = Instant::now();
                if anchor_turn {
                    let n = raw_read(&raw.join(&key)).context("raw read")?;
                    anchor.push(t.elapsed());
                    anyhow::ensure!(n == LARGE_BYTES, "short raw file {key}");
                } else {
                    let got = conn.get(BUCKET, &key, |_| {}).await?;
                    cairn.push(t.elapsed());
                    anyhow::ensure!(
                        got.length == LARGE_BYTES && got.etag == *md5,
                        "GET {key}: {} bytes, ETag {}",
                        got.length,
                        got.etag
                    );
                }
            }
        }
    }
    let mut f = large_figure(
        "get_64mib_object_warm",
        "std::fs read of the file in 1 MiB chunks (page cache, warm)",
        &cairn,
        &anchor,
    );
    let floor = loopback_tcp(md5s.len())?;
    let floor_total: Duration = floor.iter().sum();
    f.extra.insert(
        "loopback_tcp_mib_per_sec".into(),
        round(mib_per_sec(LARGE_BYTES * floor.len() as u64, floor_total)).into(),
    );
    Ok(f)
}

/// The small-object requests: PUTs of new keys, or GETs of the stored ones.
#[derive(Clone, Copy, Debug)]
enum SmallOp {
    Put { range: char },
    Get { stored: usize },
}

struct Small {
    addr: SocketAddr,
    creds: Arc<Credentials>,
    op: SmallOp,
}

impl Driver for Small {
    type Conn = S3Conn;

    async fn connect(&self) -> anyhow::Result<S3Conn> {
        S3Conn::open(self.addr, Arc::clone(&self.creds)).await
    }

    async fn request(&self, conn: &mut S3Conn, n: usize) -> anyhow::Result<()> {
        match self.op {
            SmallOp::Put { range } => {
                let etag = conn.put(BUCKET, &small_key(range, n), ReqBody::Bytes(Some(small_value(n)))).await?;
                anyhow::ensure!(etag.len() == 32, "PUT {} answered ETag {etag:?}", small_key(range, n));
            }
            SmallOp::Get { stored } => {
                let k = small_target(n, stored);
                let (mut head, mut filled) = ([0u8; 8], 0);
                let got = conn
                    .get(BUCKET, &small_key('s', k), |d| {
                        let take = (8 - filled).min(d.len());
                        head[filled..filled + take].copy_from_slice(&d[..take]);
                        filled += take;
                    })
                    .await?;
                anyhow::ensure!(
                    got.length == SMALL_BYTES as u64 && u64::from_le_bytes(head) == k as u64,
                    "GET {} answered {} bytes starting with {head:?}",
                    small_key('s', k),
                    got.length
                );
            }
        }
        Ok(())
    }
}

/// The anchor of a small-object run: `CONCURRENCY` threads, thread `c` doing `op(c * per_thread
/// + i)` for `i < per_thread`; returns operations per second.
fn raw_small(per_thread: usize, op: impl Fn(usize) -> std::io::Result<()> + Sync) -> anyhow::Result<f64> {
    let op = &op;
    let t = Instant::now();
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..CONCURRENCY)
            .map(|c| s.spawn(move || (0..per_thread).try_for_each(|i| op(c * per_thread + i))))
            .collect();
        for th in threads {
            th.join().map_err(|_| anyhow::anyhow!("anchor thread panicked"))?.context("anchor file I/O")?;
        }
        anyhow::Ok(())
    })?;
    Ok(crate::per_sec(CONCURRENCY * per_thread, t.elapsed()))
}

fn small_figure(name: &str, cairn: Run, anchor: &str, anchor_ops: f64, per_conn: usize) -> Figure {
    let mut f = Figure::new(name, cairn.ops_per_sec, anchor, anchor_ops, None);
    f.extra.insert("p50_us".into(), cairn.p50_us.into());
    f.extra.insert("p99_us".into(), cairn.p99_us.into());
    f.extra.insert("concurrency".into(), CONCURRENCY.into());
    f.extra.insert("requests".into(), (CONCURRENCY * per_conn).into());
    f.extra.insert("object_bytes".into(), SMALL_BYTES.into());
    f
}

/// 4 KiB PUTs of new keys, then GETs of them, at concurrency 16, each run after an untimed
/// warm-up of a tenth as many requests; the anchor does the same with a file per object.
async fn small_objects(
    addr: SocketAddr,
    creds: &Arc<Credentials>,
    raw: &Path,
    requests: usize,
    report: &mut dyn FnMut(&Figure),
) -> anyhow::Result<()> {
    let per_conn = (requests / CONCURRENCY).max(10);
    let warm = (per_conn / 10).max(2);
    let stored = per_conn * CONCURRENCY;
    let driver = |op| Arc::new(Small { addr, creds: Arc::clone(creds), op });
    let dir = raw.join("small");
    std::fs::create_dir_all(&dir).context("create the anchor's small-object directory")?;
    let raw_put = |range: char| {
        let dir = &dir;
        move |n: usize| {
            let mut file = File::create_new(dir.join(small_key(range, n)))?;
            file.write_all(&small_value(n))?;
            file.sync_all()
        }
    };
    let raw_get = |n: usize| {
        let k = small_target(n, stored);
        let v = std::fs::read(dir.join(small_key('s', k)))?;
        if v.len() != SMALL_BYTES || v.get(..8) != Some(&(k as u64).to_le_bytes()[..]) {
            return Err(std::io::Error::other(format!("file {} is not object {k}", small_key('s', k))));
        }
        Ok(())
    };

    load(driver(SmallOp::Put { range: 'w' }), CONCURRENCY, warm).await?;
    let put = load(driver(SmallOp::Put { range: 's' }), CONCURRENCY, per_conn).await?;
    raw_small(warm, raw_put('w'))?;
    let raw_puts = raw_small(per_conn, raw_put('s'))?;
    report(&small_figure(
        "put_4kib_c16",
        put,
        "16 threads, each writing a new file per object + sync_all",
        raw_puts,
        per_conn,
    ));

    // Untimed: a few whole objects against the bytes put and their MD5.
    let mut conn = S3Conn::open(addr, Arc::clone(creds)).await?;
    for k in [0, stored / 2, stored - 1] {
        let mut body = Vec::new();
        let got = conn.get(BUCKET, &small_key('s', k), |d| body.extend_from_slice(d)).await?;
        let want = small_value(k);
        anyhow::ensure!(body == want, "GET {} did not return the bytes put", small_key('s', k));
        anyhow::ensure!(got.etag == hex(&Md5::digest(&want)), "GET {}: ETag {}", small_key('s', k), got.etag);
    }

    let get_op = SmallOp::Get { stored };
    load(driver(get_op), CONCURRENCY, warm).await?;
    let get = load(driver(get_op), CONCURRENCY, per_conn).await?;
    raw_small(warm, raw_get)?;
    let raw_gets = raw_small(per_conn, raw_get)?;
    report(&small_figure("get_4kib_c16", get, "16 threads, each reading a file per object", raw_gets, per_conn));
    Ok(())
}

/// The server's peak resident memory while it receives one object of `mib` MiB, streamed by
/// the client. The peak is reset just before the upload, so earlier phases do not count (their
/// peak is reported beside it).
async fn memory(conn: &mut S3Conn, server: &ChildServer, mib: u64) -> anyhow::Result<Figure> {
    let len = mib * MIB;
    let key = "memory-object";
    let earlier_peak = server.peak_rss()?;
    let reset = server.reset_peak_rss();
    let before = server.peak_rss()?;
    let t = Instant::now();
    let etag = conn.put(BUCKET, key, ReqBody::generated(0x6875_6765, len)).await?;
    let elapsed = t.elapsed();
    let after = server.peak_rss()?;
    let rss_after = server.rss()?;
    let head = conn.head(BUCKET, key).await?;
    anyhow::ensure!(
        head.length == len && head.etag == etag && etag.len() == 32,
        "HEAD {key}: {} bytes, ETag {} (PUT answered {etag})",
        head.length,
        head.etag
    );
    let mut f = Figure::new(
        &format!("server_peak_rss_put_{mib}mib"),
        mib_per_sec(len, elapsed),
        "none (MiB/s of the upload; the figure is the server's peak RSS)",
        0.0,
        None,
    );
    f.extra.insert("object_bytes".into(), len.into());
    f.extra.insert("peak_rss_bytes_before".into(), before.into());
    f.extra.insert("peak_rss_bytes_after".into(), after.into());
    f.extra.insert("peak_rss_growth_bytes".into(), after.saturating_sub(before).into());
    f.extra.insert("rss_bytes_after".into(), rss_after.into());
    f.extra.insert("target_peak_rss_bytes".into(), MEMORY_TARGET_BYTES.into());
    f.extra.insert("peak_rss_under_target".into(), (after < MEMORY_TARGET_BYTES).into());
    f.extra.insert("peak_was_reset".into(), reset.into());
    f.extra.insert("peak_rss_bytes_earlier_phases".into(), earlier_peak.into());
    Ok(f)
}

async fn run(
    opts: &S3BenchOptions,
    server: &ChildServer,
    creds: &Arc<Credentials>,
    raw: &Path,
    report: &mut dyn FnMut(&Figure),
) -> anyhow::Result<()> {
    let mut conn = S3Conn::open(server.s3_addr, Arc::clone(creds)).await?;
    conn.create_bucket(BUCKET).await?;
    let (put, md5s) = large_puts(&mut conn, raw, opts.large_objects).await?;
    report(&put);
    report(&large_gets(&mut conn, raw, &md5s).await?);
    small_objects(server.s3_addr, creds, raw, opts.small_requests, report).await?;
    report(&memory(&mut conn, server, opts.memory_mib).await?);
    Ok(())
}

/// Runs every S3 figure, calling `report` as each one is ready.
///
/// # Errors
/// Any failure of the server (including one that does not start or stop cleanly), of a
/// request or of a check, or of the anchors' file I/O.
pub fn s3(opts: &S3BenchOptions, mut report: impl FnMut(&Figure)) -> anyhow::Result<()> {
    anyhow::ensure!(opts.large_objects > 0, "at least one large object");
    std::fs::create_dir_all(&opts.dir).context("create the benchmark directory")?;
    let work = tempfile::tempdir_in(&opts.dir).context("create a work directory")?;
    let raw = work.path().join("raw");
    std::fs::create_dir_all(&raw).context("create the anchor's directory")?;
    let creds = Arc::new(Credentials {
        access_key_id: "cairn-bench".into(),
        secret_access_key: "cairn-bench-secret-access-key".into(),
    });
    let server = ChildServer::start(
        &opts.server,
        &work.path().join("cairn"),
        &[
            ("CAIRN_S3_ACCESS_KEY_ID", creds.access_key_id.as_str()),
            ("CAIRN_S3_SECRET_ACCESS_KEY", creds.secret_access_key.as_str()),
        ],
    )?;
    let rt = runtime()?;
    let outcome = rt.block_on(run(opts, &server, &creds, &raw, &mut report));
    let stopped = server.stop();
    outcome.and(stopped)
}

#[cfg(test)]
mod tests {
    use super::{CHUNK, SplitMix, each_chunk, generated_md5, small_value};

    #[test]
    fn generated_bytes_do_not_depend_on_who_generates_them() {
        let mut all = Vec::new();
        each_chunk(7, (CHUNK + 24) as u64, |c| {
            all.extend_from_slice(c);
            Ok(())
        })
        .unwrap();
        let mut again = vec![0u8; CHUNK];
        let mut rng = SplitMix(7);
        rng.fill(&mut again);
        let mut tail = vec![0u8; 24];
        rng.fill(&mut tail);
        again.extend_from_slice(&tail);
        assert_eq!(all, again);
        assert_ne!(generated_md5(7, 4096), generated_md5(8, 4096));
        assert_eq!(&small_value(42)[..8], &42u64.to_le_bytes());
    }
}
