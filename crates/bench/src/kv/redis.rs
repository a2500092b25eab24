//! The Redis anchor: a `redis-server` child process on a free loopback port with its own
//! directory, AOF on (`appendonly yes`) with the given `appendfsync`, snapshots off
//! (`--save ''`), and a driver sending `GET`/`SET` one at a time per connection.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::resp::{Reply, RespConn};
use super::workload::{Op, VALUE_BYTES, get_key, key, value};
use crate::load::Driver;

/// A running `redis-server`, killed when dropped.
pub(crate) struct RedisServer {
    child: Child,
    pub(crate) addr: SocketAddr,
    /// `redis_version` from `INFO`.
    pub(crate) version: String,
}

/// A port that was free a moment ago.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(listener.local_addr()?.port())
}

impl RedisServer {
    /// Starts `binary` with its files in `dir` and waits until it answers.
    pub(crate) async fn start(binary: &Path, dir: &Path, appendfsync: &str) -> anyhow::Result<RedisServer> {
        std::fs::create_dir_all(dir).context("create the redis directory")?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.join("redis.log")).context("create the redis log")?;
        let child = Command::new(binary)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--daemonize", "no"])
            .args(["--appendonly", "yes", "--appendfsync", appendfsync])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("start {} (see scripts/bench-kv.sh)", binary.display()))?;
        let mut server = RedisServer { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), version: String::new() };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut conn = loop {
            if let Ok(mut c) = RespConn::open(server.addr).await
                && c.command(&[b"PING"]).await.is_ok_and(|r| r == Reply::Simple("PONG".into()))
            {
                break c;
            }
            if Instant::now() >= deadline {
                let status = server.child.try_wait().ok().flatten();
                anyhow::bail!("redis-server did not answer on {} within 20 s (exit: {status:?})", server.addr);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let info = |reply: Reply| match reply {
            Reply::Bulk(Some(text)) => String::from_utf8_lossy(&text).into_owned(),
            _ => String::new(),
        };
        let persistence = info(conn.command(&[b"INFO", b"persistence"]).await?);
        anyhow::ensure!(persistence.contains("aof_enabled:1"), "redis started without its AOF: {persistence}");
        let server_info = info(conn.command(&[b"INFO", b"server"]).await?);
        server.version =
            server_info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("unknown").trim().to_owned();
        Ok(server)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET`s of the stored keys or `SET`s of new keys, as `Op::Get` and `Op::Put`.
pub(crate) struct RedisKv {
    pub(crate) addr: SocketAddr,
    pub(crate) op: Op,
}

impl Driver for RedisKv {
    type Conn = RespConn;

    async fn connect(&self) -> anyhow::Result<RespConn> {
        RespConn::open(self.addr).await
    }

    async fn request(&self, conn: &mut RespConn, n: usize) -> anyhow::Result<()> {
        match self.op {
            Op::Get => {
                let v = conn.get(get_key(n).as_bytes()).await?;
                anyhow::ensure!(v.is_some_and(|v| v.len() == VALUE_BYTES), "GET {} missed", get_key(n));
            }
            Op::Put { range } => conn.set(key(range, n).as_bytes(), &value(n)).await?,
            other => anyhow::bail!("redis does not run {other:?}"),
        }
        Ok(())
    }
}
