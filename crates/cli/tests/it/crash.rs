//! Crash test through HTTP: `cairn serve` takes acknowledged PUTs across many objects and is
//! killed with SIGKILL at random moments; after a restart every acknowledged write is readable.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CYCLES: u64 = 4;
const WRITERS: usize = 8;
const OBJECTS: usize = 32;

/// Starts `cairn serve` on a free loopback port and returns it with its address, read from
/// the line it prints at start-up.
fn start(data: &std::path::Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env_remove("CAIRN_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cairn serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut reader = BufReader::new(stderr);
    let mut line = String::new();
    reader.read_line(&mut line).expect("start-up line");
    // Keep reading what the server prints, so it never writes to a closed pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, addr)
}

/// One HTTP/1.1 request on its own connection; the status, or `None` if the connection failed.
fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    Some((status, out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned()))
}

fn next_rand(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *state >> 33
}

#[test]
fn crash_test_acknowledged_http_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let acked: Arc<Mutex<Vec<(usize, u64, u64)>>> = Arc::default();
    let mut rng = 0xC0FFEE_u64;
    for cycle in 0..CYCLES {
        let (mut child, addr) = start(dir.path());
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (stop, acked) = (Arc::clone(&stop), Arc::clone(&acked));
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let o = (w + i as usize * WRITERS) % OBJECTS;
                        let path = format!("/v1/namespaces/crash/objects/o{o}/kv/c{cycle}-w{w}-{i}");
                        match request(addr, "PUT", &path, &i.to_string()) {
                            Some((200, _)) => acked.lock().expect("acks").push((o, cycle, w as u64 * 1_000_000 + i)),
                            _ => break,
                        }
                    }
                })
            })
            .collect();
        // Let some writes through, then kill the server mid-stream.
        let target = 30 + next_rand(&mut rng) % 300;
        let started = Instant::now();
        loop {
            let n = acked.lock().expect("acks").iter().filter(|a| a.1 == cycle).count() as u64;
            if n >= target {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "cycle {cycle}: only {n} acks in 120 s");
            std::thread::yield_now();
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().expect("writer");
        }
        // Restart and read every acknowledged write back.
        let (mut child, addr) = start(dir.path());
        for &(o, c, id) in acked.lock().expect("acks").iter() {
            let (w, i) = (id / 1_000_000, id % 1_000_000);
            let path = format!("/v1/namespaces/crash/objects/o{o}/kv/c{c}-w{w}-{i}");
            let got = request(addr, "GET", &path, "");
            assert_eq!(got, Some((200, i.to_string())), "cycle {cycle}: acknowledged write {path} lost");
        }
        child.kill().expect("stop the verifier");
        child.wait().expect("reap");
    }
}
