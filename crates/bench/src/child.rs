//! The server under test as a child process: `cairn serve`, so that its memory can be read from
//! `/proc/{pid}/status` apart from the benchmark's own. Used by `cairn bench s3` and `cairn
//! bench rooms`.
//!
//! It listens on loopback ports bound to 0 (the HTTP API and the S3 API), with every `CAIRN_*`
//! variable of the benchmark's environment removed and only the ones the benchmark passes set,
//! so its configuration is the default one plus those. Its standard error is read line by line
//! by a thread for as long as it runs: the addresses are taken from the `cairn serving
//! http://ADDR` and `cairn s3 serving http://ADDR` lines, and the last lines are kept for error
//! messages.

use std::collections::VecDeque;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::Context;

/// How long the server may take to print its addresses.
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
    /// Where its HTTP API listens.
    pub(crate) http_addr: SocketAddr,
    /// Where its S3 API listens.
    pub(crate) s3_addr: SocketAddr,
    tail: Tail,
}

impl ChildServer {
    /// Starts `exe serve` with its data in `data_dir` and the variables `env` (`CAIRN_*`
    /// settings) and waits until it prints both addresses.
    pub(crate) fn start(exe: &Path, data_dir: &Path, env: &[(&str, &str)]) -> anyhow::Result<ChildServer> {
        let mut cmd = Command::new(exe);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--s3-listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CAIRN_") {
                cmd.env_remove(name);
            }
        }
        for (name, value) in env {
            cmd.env(name, value);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
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
            Ok((http_addr, s3_addr)) => Ok(ChildServer { child: Some(child), pid, http_addr, s3_addr, tail }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                anyhow::bail!(
                    "{} serve did not print its addresses (exit: {status:?}); its last lines:\n{}",
                    exe.display(),
                    tail_text(&tail)
                )
            }
        }
    }

    /// A `/proc/{pid}/status` field given in kB (`VmHWM`, `VmRSS`), in bytes.
    fn status_bytes(&self, field: &str) -> anyhow::Result<u64> {
        proc_status_bytes(self.pid, field)
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

/// A `/proc/{pid}/status` field given in kB (`VmHWM`, `VmRSS`) of any process, in bytes.
pub(crate) fn proc_status_bytes(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("read /proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("{field} in /proc/{pid}/status"))?;
    Ok(kb * 1024)
}

/// CPU time (user and system) a process has used so far, in milliseconds: `utime` and `stime`
/// of `/proc/{pid}/stat`, in clock ticks of 10 ms (Linux's `USER_HZ` is 100).
pub(crate) fn proc_cpu_ms(pid: &str) -> anyhow::Result<u64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest =
        stat.rsplit_once(") ").map(|(_, r)| r).with_context(|| format!("/proc/{pid}/stat without a command name"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    // `utime` and `stime` are fields 14 and 15, the 12th and 13th after the command name.
    let (user, system) = ticks(11).zip(ticks(12)).with_context(|| format!("utime and stime in /proc/{pid}/stat"))?;
    Ok((user + system) * 10)
}

/// Reads the server's standard error until it closes: sends both addresses once the second
/// is known, keeps the last lines in `tail`.
fn drain(stderr: ChildStderr, tail: &Mutex<VecDeque<String>>, tx: mpsc::Sender<(SocketAddr, SocketAddr)>) {
    let mut tx = Some(tx);
    let (mut http, mut s3) = (None, None);
    let mut reader = std::io::BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
        // `cairn s3 serving` contains no `cairn serving`, so each line matches one of them.
        http = http.or_else(|| address_after(&line, "cairn serving http://"));
        s3 = s3.or_else(|| address_after(&line, "cairn s3 serving http://"));
        if let (Some(h), Some(s)) = (http, s3)
            && let Some(tx) = tx.take()
        {
            let _ = tx.send((h, s));
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

/// The address in `{marker}ADDR[ ...]`.
fn address_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = line.split_once(marker)?.1;
    rest.split_whitespace().next()?.parse().ok()
}

/// The version of npm package `package` installed under the prefix `prefix` ("unknown" if it
/// cannot be read): anchors report what they ran.
pub(crate) fn package_version(prefix: &Path, package: &str) -> String {
    let file = prefix.join("node_modules").join(package).join("package.json");
    std::fs::read(file)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::address_after;

    const S3: &str = "cairn s3 serving http://";
    const HTTP: &str = "cairn serving http://";

    #[test]
    fn reads_its_own_cpu_time() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(50) {
            std::hint::black_box(0);
        }
        assert!(super::proc_cpu_ms("self").unwrap() >= 10);
    }

    #[test]
    fn finds_the_addresses_in_the_serving_lines() {
        assert_eq!(
            address_after("cairn s3 serving http://127.0.0.1:40123", S3),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(
            address_after("cairn s3 serving http://127.0.0.1:1 (no access keys: every request is refused; ...)", S3),
            Some("127.0.0.1:1".parse().unwrap())
        );
        assert_eq!(address_after("cairn serving http://127.0.0.1:8787 with data in x", S3), None);
        assert_eq!(
            address_after("cairn serving http://127.0.0.1:8787 with data in x (fsync durability)", HTTP),
            Some("127.0.0.1:8787".parse().unwrap())
        );
        assert_eq!(address_after("cairn s3 serving http://127.0.0.1:40123", HTTP), None);
    }
}
