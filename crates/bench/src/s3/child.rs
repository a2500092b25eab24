//! The server under test: `cairn serve` as a child process of the benchmark, so that its
//! memory can be read from `/proc/{pid}/status` apart from the benchmark's own.
//!
//! It listens on loopback ports bound to 0 (the HTTP API and the S3 API), with the S3 access
//! key in its environment and every other `CAIRN_*` variable removed, so its configuration is
//! the default one (`fsync` durability). Its standard error is read line by line by a thread
//! for as long as it runs: the S3 address is taken from the `cairn s3 serving http://ADDR`
//! line, and the last lines are kept for error messages.

use std::collections::VecDeque;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::Context;

use super::sigv4::Credentials;

/// How long the server may take to print its S3 address.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the server may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// Lines of standard error kept for error messages.
const TAIL_LINES: usize = 40;

type Tail = Arc<Mutex<VecDeque<String>>>;

/// A running `cairn serve`. [`ChildServer::stop`] stops it with SIGTERM (a graceful shutdown);
/// dropping it without stopping it kills it (SIGKILL), which is what happens when the
/// benchmark fails part way.
pub(crate) struct ChildServer {
    child: Option<Child>,
    /// Its process id.
    pub(crate) pid: u32,
    /// Where its S3 API listens.
    pub(crate) s3_addr: SocketAddr,
    tail: Tail,
}

impl ChildServer {
    /// Starts `exe serve` with its data in `data_dir` and waits until it prints its S3 address.
    pub(crate) fn start(exe: &Path, data_dir: &Path, creds: &Credentials) -> anyhow::Result<ChildServer> {
        let mut cmd = Command::new(exe);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--s3-listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CAIRN_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("CAIRN_S3_ACCESS_KEY_ID", &creds.access_key_id)
            .env("CAIRN_S3_SECRET_ACCESS_KEY", &creds.secret_access_key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("start {} serve", exe.display()))?;
        let pid = child.id();
        let stderr = child.stderr.take().context("the server's standard error")?;
        let tail = Tail::default();
        let (tx, rx) = mpsc::channel();
        let drain_tail = Arc::clone(&tail);
        std::thread::Builder::new()
            .name("cairn-serve-stderr".into())
            .spawn(move || drain(stderr, &drain_tail, tx))
            .context("start the thread reading the server's standard error")?;
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(s3_addr) => Ok(ChildServer { child: Some(child), pid, s3_addr, tail }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                anyhow::bail!(
                    "{} serve did not print its S3 address (exit: {status:?}); its last lines:\n{}",
                    exe.display(),
                    tail_text(&tail)
                )
            }
        }
    }

    /// A `/proc/{pid}/status` field given in kB (`VmHWM`, `VmRSS`), in bytes.
    fn status_bytes(&self, field: &str) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .with_context(|| format!("read /proc/{}/status", self.pid))?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("{field} in /proc/{}/status", self.pid))?;
        Ok(kb * 1024)
    }

    /// The server's peak resident set size so far (`VmHWM`).
    pub(crate) fn peak_rss(&self) -> anyhow::Result<u64> {
        self.status_bytes("VmHWM")
    }

    /// The server's resident set size now (`VmRSS`).
    pub(crate) fn rss(&self) -> anyhow::Result<u64> {
        self.status_bytes("VmRSS")
    }

    /// Resets the peak resident set size to the current one (writes `5` to
    /// `/proc/{pid}/clear_refs`, Linux 4.0 and later); false if the kernel refused.
    pub(crate) fn reset_peak_rss(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").is_ok()
    }

    /// Stops the server with SIGTERM and waits for it to exit (it finishes the requests in
    /// flight and closes its storage); kills it if it takes longer than two minutes.
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let pid = self.pid.to_string();
        // The child has not been waited for, so its pid cannot have been reused yet.
        let term = Command::new("kill").args(["-TERM", &pid]).status();
        if !term.is_ok_and(|s| s.success()) {
            let _ = child.kill();
        }
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(STOP_TIMEOUT) {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => {
                anyhow::bail!(
                    "the server exited with {status} after SIGTERM; its last lines:\n{}",
                    tail_text(&self.tail)
                )
            }
            Ok(Err(e)) => Err(e).context("wait for the server to exit"),
            Err(_) => {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                anyhow::bail!("the server did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed it")
            }
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads the server's standard error until it closes: sends the S3 address once, keeps the
/// last lines in `tail`.
fn drain(stderr: ChildStderr, tail: &Mutex<VecDeque<String>>, tx: mpsc::Sender<SocketAddr>) {
    let mut tx = Some(tx);
    let mut reader = std::io::BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
        if let Some(addr) = s3_address(&line)
            && let Some(tx) = tx.take()
        {
            let _ = tx.send(addr);
        }
        if let Ok(mut t) = tail.lock() {
            if t.len() == TAIL_LINES {
                t.pop_front();
            }
            t.push_back(line);
        }
    }
}

fn tail_text(tail: &Mutex<VecDeque<String>>) -> String {
    tail.lock().map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n")).unwrap_or_default()
}

/// The address in `cairn s3 serving http://ADDR[ ...]`.
fn s3_address(line: &str) -> Option<SocketAddr> {
    let rest = line.split_once("cairn s3 serving http://")?.1;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::s3_address;

    #[test]
    fn finds_the_s3_address_in_the_serving_line() {
        assert_eq!(s3_address("cairn s3 serving http://127.0.0.1:40123"), Some("127.0.0.1:40123".parse().unwrap()));
        assert_eq!(
            s3_address("cairn s3 serving http://127.0.0.1:1 (no access keys: every request is refused; ...)"),
            Some("127.0.0.1:1".parse().unwrap())
        );
        assert_eq!(s3_address("cairn serving http://127.0.0.1:8787 with data in x"), None);
    }
}
