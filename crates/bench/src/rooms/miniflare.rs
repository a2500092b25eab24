//! The anchor's server: `node miniflare.mjs` as a child process, which bundles the chat Worker
//! (`chat-worker.js`, a `partyserver` Server with hibernation) with esbuild and runs it on
//! Miniflare. Miniflare starts one `workerd` process, a child of node: it runs the Worker and its
//! Durable Objects, serves the WebSockets, and is the process whose memory is measured.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::child::package_version;

const RUNNER: &str = include_str!("miniflare.mjs");
const WORKER: &str = include_str!("chat-worker.js");

/// How long bundling and starting may take.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A running Miniflare, stopped when dropped (its standard input is closed; it disposes of its
/// workerd process and exits; both are killed if that takes over 10 s).
pub(crate) struct Miniflare {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Receives the URL, then disconnects when node's stdout closes (it has exited).
    stdout_lines: Receiver<String>,
    /// Where the Worker listens (workerd's own socket).
    pub(crate) addr: SocketAddr,
    /// The workerd process.
    pub(crate) workerd_pid: u32,
    /// Where the Durable Objects' SQLite files are.
    pub(crate) do_dir: PathBuf,
    /// Versions of the npm packages that matter.
    pub(crate) version: String,
}

/// The parent pid and command name of a process, from `/proc/{pid}/stat`.
fn parent_and_name(pid: u32) -> Option<(u32, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
    let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
    Some((ppid, name.to_owned()))
}

/// The `workerd` child of process `parent`.
fn find_workerd(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.filter_map(Result::ok).find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let (ppid, name) = parent_and_name(pid)?;
        (ppid == parent && name.starts_with("workerd")).then_some(pid)
    })
}

impl Miniflare {
    /// Starts Miniflare from the npm prefix `prefix` with `node`; its files go under `dir`.
    pub(crate) fn start(node: &Path, prefix: &Path, dir: &Path) -> anyhow::Result<Miniflare> {
        let prefix = std::fs::canonicalize(prefix).with_context(|| {
            format!("no npm packages in {} (install them with scripts/bench-rooms.sh)", prefix.display())
        })?;
        for package in ["miniflare", "partyserver", "esbuild"] {
            anyhow::ensure!(
                prefix.join("node_modules").join(package).join("package.json").is_file(),
                "{package} is not installed in {} (install it with scripts/bench-rooms.sh)",
                prefix.display()
            );
        }
        std::fs::create_dir_all(dir).context("create the Miniflare directory")?;
        let dir = std::fs::canonicalize(dir).context("the Miniflare directory")?;
        let runner = dir.join("miniflare.mjs");
        std::fs::write(&runner, RUNNER).context("write the Miniflare runner")?;
        let worker = dir.join("chat-worker.js");
        std::fs::write(&worker, WORKER).context("write the anchor's Worker")?;
        let mut child = Command::new(node)
            .arg(&runner)
            .env("NPM_PREFIX", &prefix)
            .env("WORKER_SOURCE", &worker)
            .env("PERSIST_DIR", &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("start {}", node.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("Miniflare's stdout")?;
        let version = format!(
            "partyserver {}, miniflare {}, workerd {}",
            package_version(&prefix, "partyserver"),
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
        let mut mf = Miniflare {
            child,
            stdin,
            stdout_lines,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            workerd_pid: 0,
            do_dir: dir.join("do"),
            version,
        };
        let url = mf
            .stdout_lines
            .recv_timeout(START_TIMEOUT)
            .with_context(|| format!("Miniflare did not start within {START_TIMEOUT:?}"))?;
        let authority = url.strip_prefix("http://").and_then(|u| u.split('/').next()).unwrap_or_default();
        mf.addr = authority.parse().with_context(|| format!("Miniflare printed {url:?}, not its URL"))?;
        // workerd serves the URL Miniflare printed, so it is running by now.
        mf.workerd_pid = find_workerd(mf.child.id())
            .with_context(|| format!("no workerd process under node (pid {})", mf.child.id()))?;
        Ok(mf)
    }

    /// Durable Object databases workerd has open now: one per room whose instance is in memory
    /// (workerd closes an object's database when it evicts the object, hibernating its
    /// WebSockets).
    pub(crate) fn open_room_databases(&self) -> anyhow::Result<usize> {
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.workerd_pid))
            .with_context(|| format!("list /proc/{}/fd", self.workerd_pid))?;
        let mut open = 0;
        for fd in fds.filter_map(Result::ok) {
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            let is_room = target.starts_with(&self.do_dir)
                && target.extension().is_some_and(|e| e == "sqlite")
                && target.file_name().is_some_and(|n| n != "metadata.sqlite");
            if is_room {
                open += 1;
            }
        }
        Ok(open)
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
            // workerd first, while it is still node's child (so its pid is still ours).
            if self.workerd_pid != 0
                && parent_and_name(self.workerd_pid).is_some_and(|(ppid, _)| ppid == self.child.id())
            {
                let _ = Command::new("kill").args(["-KILL", &self.workerd_pid.to_string()]).status();
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::parent_and_name;

    #[test]
    fn reads_its_own_parent() {
        let (ppid, name) = parent_and_name(std::process::id()).unwrap();
        assert!(ppid > 0);
        assert!(!name.is_empty());
    }
}
