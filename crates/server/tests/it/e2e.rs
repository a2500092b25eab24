//! End to end over loopback: a real listener on port 0, raw HTTP/1.1 requests, graceful shutdown
//! with requests in flight.

use std::time::Duration;

use cairn_server::{Config, Token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TOKEN;

/// Sends one request on its own connection and returns (status, body).
async fn request(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    Ok((status, body))
}

type ServerTask = tokio::task::JoinHandle<std::io::Result<()>>;

/// Serves a data directory on a loopback port; the sender stops the server gracefully.
async fn start(
    dir: &tempfile::TempDir,
    shards: usize,
) -> (Config, std::net::SocketAddr, tokio::sync::oneshot::Sender<()>, ServerTask) {
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        shards,
        tokens: vec![Token { token: TOKEN.into(), namespaces: None, read_only: false }],
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runtime = cairn_server::open_runtime(&config).expect("runtime");
    let server = tokio::spawn({
        let config = config.clone();
        async move {
            cairn_server::serve(listener, &config, runtime, async {
                let _ = stop_rx.await;
            })
            .await
        }
    });
    (config, addr, stop_tx, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_loses_no_request_in_flight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, addr, stop_tx, server) = start(&dir, 2).await;
    // 40 writers, each with a few writes; shutdown is requested once the first acks arrive.
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut writers = Vec::new();
    for w in 0..40 {
        let ack_tx = ack_tx.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..5 {
                let path = format!("/v1/namespaces/e2e/objects/o{w}/kv/k{i}");
                match request(addr, "PUT", &path, &i.to_string()).await {
                    Ok((200, _)) => {
                        let _ = ack_tx.send((w, i));
                    }
                    // Refused connections and 503s after shutdown are fine; lost acks are not.
                    _ => break,
                }
            }
        }));
    }
    drop(ack_tx);
    let mut acked = Vec::new();
    while acked.len() < 10 {
        let next = tokio::time::timeout(Duration::from_secs(30), ack_rx.recv()).await.expect("acks within 30 s");
        acked.push(next.expect("writers running"));
    }
    stop_tx.send(()).expect("server running");
    for w in writers {
        w.await.expect("writer");
    }
    while let Some(a) = ack_rx.recv().await {
        acked.push(a);
    }
    server.await.expect("server task").expect("serve");
    // Every acknowledged write is there after a restart.
    let runtime = cairn_server::open_runtime(&config).expect("reopen");
    for (w, i) in acked {
        let v: Option<i64> = runtime
            .object("e2e", &format!("o{w}"))
            .expect("object")
            .run(move |s| Ok::<_, cairn_runtime::Error>(s.get(&format!("k{i}"))?))
            .await
            .expect("read");
        assert_eq!(v, Some(i64::from(i)), "object o{w} key k{i}");
    }
    runtime.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_socket_speaks_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_config, addr, stop_tx, server) = start(&dir, 1).await;
    let (status, _) = request(addr, "PUT", "/v1/namespaces/n/objects/o/kv/greeting", "\"hello\"").await.expect("put");
    assert_eq!(status, 200);
    let (status, body) = request(addr, "GET", "/v1/namespaces/n/objects/o/kv/greeting", "").await.expect("get");
    assert_eq!((status, body.as_str()), (200, "\"hello\""));
    let (status, body) = request(addr, "GET", "/nope", "").await.expect("404");
    assert_eq!(status, 404);
    assert!(body.contains("http.not_found"), "{body}");
    stop_tx.send(()).expect("stop");
    server.await.expect("server task").expect("serve");
}
