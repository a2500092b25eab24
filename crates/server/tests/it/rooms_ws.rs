//! Room WebSockets over loopback: a client that stops reading is dropped once its send queue
//! passes `[rooms] max_queued_bytes`, and a party's own `max_message_bytes` applies to it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cairn_server::{Config, PartyConfig};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

type ServerTask = tokio::task::JoinHandle<std::io::Result<()>>;

async fn start(
    config: impl FnOnce(&mut Config),
) -> (tempfile::TempDir, SocketAddr, tokio::sync::oneshot::Sender<()>, ServerTask) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Config {
        data_dir: dir.path().to_path_buf(),
        shards: 2,
        durability: cairn_runtime::Durability::Os,
        ..Config::default()
    };
    config(&mut c);
    c.validate().expect("a valid configuration");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runtime = cairn_server::open_runtime(&c).expect("runtime");
    let server = tokio::spawn(async move {
        cairn_server::serve(listener, &c, runtime, async {
            let _ = stop_rx.await;
        })
        .await
    });
    (dir, addr, stop_tx, server)
}

/// Opens a TCP connection (with a small receive buffer if asked) and upgrades it by hand.
async fn upgrade(addr: SocketAddr, path: &str, recv_buffer: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(n) = recv_buffer {
        socket.set_recv_buffer_size(n).expect("SO_RCVBUF");
    }
    let mut stream = socket.connect(addr).await.expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nhost: test\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.expect("send the upgrade");
    // Read the response head byte by byte, so no frame after it is consumed here.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 8192, "response head too long");
        let mut b = [0u8; 1];
        stream.read_exact(&mut b).await.expect("read the upgrade response");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream
}

/// A chat client, its history frame read.
async fn client(addr: SocketAddr, path: &str) -> WebSocketStream<TcpStream> {
    let mut ws = WebSocketStream::from_raw_socket(upgrade(addr, path, None).await, Role::Client, None).await;
    let history = next_text(&mut ws).await;
    assert!(history.contains("\"history\""), "{history}");
    ws
}

/// `cairn_room_sockets` from `/metrics`.
async fn open_sockets(addr: SocketAddr) -> u64 {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"GET /metrics HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n").await.expect("send");
    let mut out = String::new();
    stream.read_to_string(&mut out).await.expect("read");
    out.lines()
        .find_map(|l| l.strip_prefix("cairn_room_sockets "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no cairn_room_sockets in {out}"))
}

/// Reads the next text frame, skipping others, within a deadline.
async fn next_text(ws: &mut WebSocketStream<TcpStream>) -> String {
    let deadline = Duration::from_secs(10);
    loop {
        match tokio::time::timeout(deadline, ws.next()).await.expect("a frame in time") {
            Some(Ok(Message::Text(t))) => return t.as_str().to_owned(),
            Some(Ok(_)) => {}
            other => panic!("socket ended: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_the_others_carry_on() {
    let (_dir, addr, stop, server) = start(|c| {
        c.rooms.max_queued_bytes = 64 * 1024;
        c.rooms.max_message_bytes = 64 * 1024;
    })
    .await;
    // The slow client never reads after the upgrade; its receive buffer is small.
    let _slow = upgrade(addr, "/parties/chat/busy?_pk=slow", Some(4096)).await;
    let mut fast = client(addr, "/parties/chat/busy?_pk=fast").await;
    assert_eq!(open_sockets(addr).await, 2);
    let text = "y".repeat(15 * 1024);
    let message = serde_json::json!({ "type": "message", "text": text }).to_string();
    // Each message is broadcast to the slow client. The kernel's buffers take some MiB before
    // the queue starts to grow; then 64 KiB more overflow it. Bounded: 2,000 messages (30 MiB).
    let started = Instant::now();
    let mut dropped = false;
    for i in 0..2_000 {
        fast.send(Message::text(message.clone())).await.expect("send");
        let ack = next_text(&mut fast).await;
        assert!(ack.contains("\"ack\""), "message {i}: {ack}");
        if i % 25 == 24 && open_sockets(addr).await == 1 {
            dropped = true;
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "still not dropped after {i} messages");
    }
    assert!(dropped, "the slow client was never dropped");
    // The fast client still works.
    fast.send(Message::text(serde_json::json!({ "type": "message", "text": "after" }).to_string()))
        .await
        .expect("send");
    assert!(next_text(&mut fast).await.contains("\"ack\""));
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_can_have_its_own_message_size_limit() {
    let (_dir, addr, stop, server) = start(|c| {
        let mut small = PartyConfig::of_kind("chat");
        small.max_message_bytes = Some(1024);
        c.parties.insert("small".to_owned(), small);
    })
    .await;
    // 2 KiB passes the default limit of 1 MiB...
    let mut ws = client(addr, "/parties/chat/r?_pk=a").await;
    let big = serde_json::json!({ "type": "message", "text": "z".repeat(2048) }).to_string();
    ws.send(Message::text(big.clone())).await.expect("send");
    assert!(next_text(&mut ws).await.contains("\"ack\""));
    // ...and closes a socket of the party limited to 1 KiB with 1009.
    let mut ws = client(addr, "/parties/small/r?_pk=a").await;
    ws.send(Message::text(big)).await.expect("send");
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        assert!(Instant::now() < deadline, "no close frame");
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a frame in time") {
            Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(code, 1009);
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
}

#[test]
fn message_limits_are_checked_when_the_configuration_loads() {
    let mut c = Config::default();
    c.rooms.max_message_bytes = 0;
    assert!(c.validate().unwrap_err().to_string().contains("[rooms] max_message_bytes is 0"));
    let mut c = Config::default();
    let mut p = PartyConfig::of_kind("chat");
    p.max_message_bytes = Some(1 << 30);
    c.parties.insert("huge".to_owned(), p);
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("[parties.huge] max_message_bytes is 1073741824"), "{e}");
    let mut c = Config::default();
    c.rooms.max_queued_bytes = 1024;
    assert!(c.validate().unwrap_err().to_string().contains("max_queued_bytes (1024)"));
}
