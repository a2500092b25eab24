//! The Miniflare anchor: `node miniflare.mjs` as a child process, running a Worker whose KV
//! namespace and D1 database are Miniflare's local simulators, persisted to a directory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::child::package_version;

const RUNNER: &str = include_str!("miniflare.mjs");

/// A running Miniflare, stopped when dropped (its standard input is closed; it disposes of
/// its workerd process and exits).
pub(crate) struct Miniflare {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Receives the URL, then disconnects when Miniflare's stdout closes (it has exited).
    stdout_lines: Receiver<String>,
    pub(crate) addr: SocketAddr,
    /// Versions of the `miniflare` and `workerd` packages.
    pub(crate) version: String,
}

impl Miniflare {
    /// Starts Miniflare from the npm prefix `prefix` with `node`, persisting under `dir`.
    pub(crate) fn start(node: &Path, prefix: &Path, dir: &Path) -> anyhow::Result<Miniflare> {
        let prefix = std::fs::canonicalize(prefix)
            .with_context(|| format!("no Miniflare in {} (see scripts/bench-kv.sh)", prefix.display()))?;
        std::fs::create_dir_all(dir).context("create the Miniflare directory")?;
        let runner = dir.join("miniflare.mjs");
        std::fs::write(&runner, RUNNER).context("write the Miniflare runner")?;
        let mut child = Command::new(node)
            .arg(&runner)
            .env("MINIFLARE_PREFIX", &prefix)
            .env("PERSIST_DIR", dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("start {}", node.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("Miniflare's stdout")?;
        let version = format!(
            "miniflare {}, workerd {}",
            package_version(&prefix, "miniflare"),
            package_version(&prefix, "workerd")
        );
        let (tx, stdout_lines) = std::sync::mpsc::channel();
        // Miniflare's own messages go to stderr as they come; the URL line comes here.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap_or_default();
                match line.strip_prefix("MINIFLARE_URL ") {
                    Some(url) => {
                        let _ = tx.send(url.trim().to_owned());
                    }
                    None => eprintln!("{line}"),
                }
            }
        });
        // From here on, dropping `mf` stops the child.
        let mut mf = Miniflare { child, stdin, stdout_lines, addr: SocketAddr::from(([127, 0, 0, 1], 0)), version };
        let url =
            mf.stdout_lines.recv_timeout(Duration::from_secs(60)).context("Miniflare did not start within 60 s")?;
        let authority = url.strip_prefix("http://").and_then(|u| u.split('/').next()).unwrap_or_default();
        mf.addr = authority.parse().with_context(|| format!("Miniflare printed {url:?}, not its URL"))?;
        Ok(mf)
    }
}

impl Drop for Miniflare {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // Its stdout closes when it exits (the channel then disconnects); give it 10 s.
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Err(RecvTimeoutError::Disconnected) = self.stdout_lines.recv_timeout(left) {
                break;
            }
        }
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
