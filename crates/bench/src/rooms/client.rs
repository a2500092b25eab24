//! The WebSocket clients of `cairn bench rooms`, in the benchmark process: tokio-tungstenite's
//! client over a loopback TCP connection (`TCP_NODELAY`), speaking the `chat` protocol of
//! `crates/rooms/src/builtin/chat.rs` to `/parties/chat/{room}?_pk={id}`, which both Cairn and
//! the partyserver anchor route the same way.
//!
//! Frames are told apart by their `"type"` member, found as a substring: JSON keys may come in
//! any order, and a `"` inside a message text is escaped, so `"type":"ack"` only matches the
//! member itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};

/// One client socket.
pub(crate) type Ws = WebSocketStream<TcpStream>;

/// How long one connection attempt may take: TCP connect, upgrade, and the history frame.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts per socket before the phase fails.
const CONNECT_ATTEMPTS: usize = 3;
/// How long a closing socket waits for the server's close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client waits for any one frame it expects.
pub(crate) const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// What a frame from the chat room is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `{"type":"history","messages":[...]}`, the first frame of a socket.
    History,
    /// `{"type":"message","message":{...}}`, another socket's message.
    Message,
    /// `{"type":"ack","id","seq"}`, this socket's message is stored.
    Ack,
    /// `{"type":"error",...}`.
    Error,
    /// Anything else.
    Other,
}

/// The kind of a text frame.
pub(crate) fn kind(text: &str) -> Kind {
    if text.contains(r#""type":"message""#) {
        Kind::Message
    } else if text.contains(r#""type":"ack""#) {
        Kind::Ack
    } else if text.contains(r#""type":"history""#) {
        Kind::History
    } else if text.contains(r#""type":"error""#) {
        Kind::Error
    } else {
        Kind::Other
    }
}

/// Small buffers, as the server uses: the client holds as many sockets as the server.
fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4 * 1024).write_buffer_size(0)
}

/// The next text frame, skipping control frames; an error if the socket closes or nothing comes
/// within [`FRAME_TIMEOUT`].
pub(crate) async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        let frame = tokio::time::timeout(FRAME_TIMEOUT, ws.next())
            .await
            .map_err(|_| anyhow::anyhow!("no frame within {FRAME_TIMEOUT:?}"))?;
        match frame {
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(Message::Close(frame))) => anyhow::bail!("the server closed the socket: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e).context("read a frame"),
            None => anyhow::bail!("the connection ended"),
        }
    }
}

/// Sends a text frame.
pub(crate) async fn send_text(ws: &mut Ws, text: String) -> anyhow::Result<()> {
    ws.send(Message::text(text)).await.context("send a frame")
}

/// Opens one socket to room `room` as connection `id` and reads its first frame, which must be
/// the room's history (so the room has run `on_connect`). Returns the socket and that frame.
pub(crate) async fn connect(addr: SocketAddr, room: &str, id: &str) -> anyhow::Result<(Ws, String)> {
    let attempt = async {
        let tcp = TcpStream::connect(addr).await.context("TCP connect")?;
        tcp.set_nodelay(true).context("TCP_NODELAY")?;
        let url = format!("ws://{addr}/parties/chat/{room}?_pk={id}");
        let (mut ws, _response) =
            tokio_tungstenite::client_async_with_config(url, tcp, Some(config())).await.context("WebSocket upgrade")?;
        let history = next_text(&mut ws).await.context("the history frame")?;
        anyhow::ensure!(kind(&history) == Kind::History, "the first frame is not the history: {history:.200}");
        anyhow::Ok((ws, history))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| anyhow::anyhow!("took over {CONNECT_TIMEOUT:?}"))?
}

/// Sockets opened by [`connect_many`].
pub(crate) struct Opened {
    /// The sockets, in the order asked for.
    pub(crate) sockets: Vec<Ws>,
    /// From the first connect to the last history frame.
    pub(crate) elapsed: Duration,
    /// Each socket's time to open (the successful attempt), sorted.
    pub(crate) latencies: Vec<Duration>,
    /// Attempts that failed and were made again.
    pub(crate) retries: u64,
}

/// Opens a socket for each `(room, id)`, at most `concurrency` at a time, each tried up to
/// [`CONNECT_ATTEMPTS`] times.
pub(crate) async fn connect_many(
    addr: SocketAddr,
    specs: Vec<(String, String)>,
    concurrency: usize,
) -> anyhow::Result<Opened> {
    let n = specs.len();
    let specs = Arc::new(specs);
    let next = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.clamp(1, n.max(1)) {
        let (specs, next, retries) = (Arc::clone(&specs), Arc::clone(&next), Arc::clone(&retries));
        workers.spawn(async move {
            let mut opened = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((room, id)) = specs.get(i) else { break };
                let mut attempt = 0;
                let (ws, took) = loop {
                    attempt += 1;
                    let t = Instant::now();
                    match connect(addr, room, id).await {
                        Ok((ws, _history)) => break (ws, t.elapsed()),
                        Err(e) if attempt >= CONNECT_ATTEMPTS => {
                            return Err(e.context(format!("connect {id} to room {room} ({attempt} attempts)")));
                        }
                        Err(_) => {
                            retries.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                };
                opened.push((i, ws, took));
            }
            anyhow::Ok(opened)
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(r) = workers.join_next().await {
        all.extend(r.context("connect worker")??);
    }
    let elapsed = started.elapsed();
    all.sort_by_key(|(i, _, _)| *i);
    let mut latencies: Vec<Duration> = all.iter().map(|(_, _, t)| *t).collect();
    latencies.sort_unstable();
    Ok(Opened {
        sockets: all.into_iter().map(|(_, ws, _)| ws).collect(),
        elapsed,
        latencies,
        retries: retries.load(Ordering::Relaxed),
    })
}

/// Closes a socket: sends a close frame (1000, normal closure: a frame without a code reaches
/// the room as 1005, which a Worker cannot send back, so partyserver would not answer it) and
/// reads until the server's close frame or the end of the connection, for at most
/// [`CLOSE_TIMEOUT`]. True if the server answered the close.
pub(crate) async fn close(mut ws: Ws) -> bool {
    let handshake = async {
        let normal = CloseFrame { code: CloseCode::Normal, reason: "done".into() };
        if ws.close(Some(normal)).await.is_err() {
            return false;
        }
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => {}
                // tungstenite reports the end of a completed handshake as an error.
                Some(Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed)) => return true,
                Some(Err(_)) | None => return false,
            }
        }
    };
    tokio::time::timeout(CLOSE_TIMEOUT, handshake).await.unwrap_or(false)
}

/// Idle sockets, each read by its own task until [`IdleSockets::close_all`]: a socket the
/// server closes, or a frame it sends, is counted.
pub(crate) struct IdleSockets {
    stop: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<bool>,
    /// Sockets the server closed (or whose connection failed) while they were idle.
    pub(crate) closed_early: Arc<AtomicU64>,
    /// Text frames received while idle.
    pub(crate) frames: Arc<AtomicU64>,
}

impl IdleSockets {
    pub(crate) fn new() -> IdleSockets {
        IdleSockets {
            stop: watch::channel(false).0,
            tasks: tokio::task::JoinSet::new(),
            closed_early: Arc::default(),
            frames: Arc::default(),
        }
    }

    /// Keeps `ws` open and read.
    pub(crate) fn hold(&mut self, mut ws: Ws) {
        let mut stop = self.stop.subscribe();
        let (closed_early, frames) = (Arc::clone(&self.closed_early), Arc::clone(&self.frames));
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => return close(ws).await,
                    frame = ws.next() => match frame {
                        Some(Ok(Message::Text(_))) => {
                            frames.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Ok(Message::Close(_)) | Err(_)) | None => {
                            closed_early.fetch_add(1, Ordering::Relaxed);
                            return false;
                        }
                        Some(Ok(_)) => {}
                    },
                }
            }
        });
    }

    /// How many sockets are held.
    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Closes every socket (each waits at most [`CLOSE_TIMEOUT`] for the server's answer) and
    /// returns how many closed cleanly.
    pub(crate) async fn close_all(mut self) -> anyhow::Result<usize> {
        let _ = self.stop.send(true);
        let mut clean = 0;
        while let Some(r) = self.tasks.join_next().await {
            if r.context("idle socket task")? {
                clean += 1;
            }
        }
        Ok(clean)
    }
}

/// The value at quantile `q` of sorted durations, in microseconds.
pub(crate) fn quantile_us(sorted: &[Duration], q: f64) -> u64 {
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::{Kind, kind};

    #[test]
    fn tells_frames_apart_whatever_the_key_order() {
        assert_eq!(kind(r#"{"type":"history","messages":[]}"#), Kind::History);
        assert_eq!(kind(r#"{"messages":[{"text":"a"}],"type":"history"}"#), Kind::History);
        assert_eq!(kind(r#"{"message":{"id":"1","text":"x"},"type":"message"}"#), Kind::Message);
        assert_eq!(kind(r#"{"id":"1","seq":1,"type":"ack"}"#), Kind::Ack);
        assert_eq!(kind(r#"{"type":"ack","id":"1","seq":1}"#), Kind::Ack);
        assert_eq!(kind(r#"{"type":"message","message":{"text":"\"type\":\"ack\""}}"#), Kind::Message);
        assert_eq!(kind(r#"{"code":"chat.x","message":"m","type":"error"}"#), Kind::Error);
        assert_eq!(kind("hello"), Kind::Other);
    }
}
