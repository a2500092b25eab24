//! `cairn bench rooms`: rooms over WebSockets (issue 5), Cairn's built-in `chat` party against
//! the same chat room written as a PartyKit-style server (`partyserver`, with hibernation) on
//! Miniflare/workerd, in one run.
//!
//! - Cairn (`crate::child`): the `cairn` binary started as `cairn serve` on loopback ports bound
//!   to 0, `fsync` durability, rooms hibernating after `--hibernate-after-ms` without events
//!   (`CAIRN_ROOMS_HIBERNATE_AFTER_MS`), otherwise the default configuration (which serves the
//!   `chat` party). A separate process, so that its memory is its own.
//! - The anchor (`miniflare.rs`, `miniflare.mjs`, `chat-worker.js`): the same protocol and
//!   storage layout as `crates/rooms/src/builtin/chat.rs`, as a `partyserver` `Server` with
//!   `static options = { hibernate: true }`, SQLite-backed Durable Objects persisted on disk,
//!   on Miniflare (its `workerd` process is the one measured).
//! - The clients (`client.rs`, `workload.rs`): tokio-tungstenite on a two-worker tokio runtime in
//!   this process, to `/parties/chat/{room}?_pk={id}` on both.
//!
//! Each system runs the same phases, Cairn first, each on a fresh server:
//! 1. **Connect and memory.** `sockets` sockets across `rooms` rooms (socket `i` in room
//!    `i % rooms`), opened in two waves of half each, at most 64 handshakes at a time; a socket
//!    counts once the room's history frame arrived. After each wave the benchmark polls until
//!    every room has hibernated (Cairn: `/metrics` shows no active room and every room
//!    hibernated; workerd: no room database open in its `/proc/{pid}/fd`, which happens when
//!    it evicts an idle object and hibernates its WebSockets), then reads the server's resident
//!    set size. All sockets stay open until both waves are measured.
//! 2. **Broadcast.** `broadcast_members` sockets in one room; one sends, every other member
//!    receives, `broadcast_rounds` rounds one after another after 10 untimed ones.
//! 3. **Chat.** `chat_rooms` rooms of `chat_clients` sockets each, every client sending
//!    messages one after another (each once the previous is acknowledged, which both systems
//!    do once it is durable), `messages` in all after an untimed warm-up of a tenth as many;
//!    each room's history is then read back and checked.
//!
//! Every wait is bounded: connects (30 s per attempt, 3 attempts), frames (30 s), rounds (60 s),
//! chat runs (600 s), hibernation (120 s plus the configured delay), closes (10 s).

mod client;
mod miniflare;
mod workload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::Figure;
use crate::child::{ChildServer, proc_cpu_ms, proc_status_bytes};
use crate::http_conn::HttpConn;
use crate::load::runtime;
use client::{IdleSockets, connect_many, quantile_us};
use miniflare::Miniflare;
use workload::{Broadcast, Chat};

/// Handshakes in flight at once while opening sockets.
const CONNECT_CONCURRENCY: usize = 64;
/// Untimed broadcast rounds before the timed ones.
const BROADCAST_WARMUP: usize = 10;
/// The target for the memory of a hibernated socket.
const TARGET_BYTES_PER_SOCKET: u64 = 4096;
/// How long rooms may take to hibernate beyond the configured delay (workerd's is a fixed 10 s).
const HIBERNATION_TIMEOUT: Duration = Duration::from_secs(120);
/// How long Cairn may take to run the close hooks of closed sockets.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Options of the rooms benchmark.
#[derive(Clone, Debug)]
pub struct RoomsBenchOptions {
    /// Where the server's data directory and the anchor's files go (removed afterwards).
    pub dir: PathBuf,
    /// The `cairn` binary to start as the server (`cairn bench rooms` passes itself).
    pub server: PathBuf,
    /// The node binary that runs Miniflare.
    pub node: PathBuf,
    /// The npm prefix holding miniflare, partyserver and esbuild (scripts/bench-rooms.sh).
    pub npm_prefix: PathBuf,
    /// Sockets held open at once for the connect and memory figures.
    pub sockets: usize,
    /// Rooms they are spread over.
    pub rooms: usize,
    /// Members of the broadcast room.
    pub broadcast_members: usize,
    /// Timed broadcast rounds.
    pub broadcast_rounds: usize,
    /// Rooms of the chat workload.
    pub chat_rooms: usize,
    /// Clients in each chat room.
    pub chat_clients: usize,
    /// Chat messages sent in the timed run, in all.
    pub messages: usize,
    /// Cairn's hibernation delay (`CAIRN_ROOMS_HIBERNATE_AFTER_MS`); workerd's is 10 s.
    pub hibernate_after_ms: u64,
}

/// The server under test: Cairn's child process or Miniflare's workerd.
enum Target<'a> {
    Cairn(&'a ChildServer),
    Anchor(&'a Miniflare),
}

/// What a server reports about its rooms, read without waking any.
#[derive(Clone, Debug, Default)]
struct State {
    /// Cairn's `/metrics`, `cairn_` names without the prefix.
    metrics: std::collections::BTreeMap<String, f64>,
    /// workerd: room databases open (rooms in memory).
    open_room_databases: Option<usize>,
    /// workerd: room instances started in the isolate (`onStart` calls).
    starts: Option<u64>,
}

impl State {
    fn metric(&self, name: &str) -> u64 {
        self.metrics.get(name).copied().unwrap_or(0.0) as u64
    }
}

async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut conn = HttpConn::open(addr).await?;
    let reply = conn.send("GET", path, "text/plain", b"").await.with_context(|| format!("GET {path}"))?;
    anyhow::ensure!(reply.status == 200, "GET {path}: status {}", reply.status);
    String::from_utf8(reply.body).with_context(|| format!("GET {path}: not UTF-8"))
}

/// `name value` lines of a Prometheus text exposition, for names starting with `cairn_`.
fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            let name = name.strip_prefix("cairn_")?;
            (!name.contains('{')).then(|| Some((name.to_owned(), value.trim().parse().ok()?)))?
        })
        .collect()
}

impl Target<'_> {
    fn addr(&self) -> SocketAddr {
        match self {
            Target::Cairn(s) => s.http_addr,
            Target::Anchor(m) => m.addr,
        }
    }

    /// The serving process's resident set size.
    fn rss(&self) -> anyhow::Result<u64> {
        match self {
            Target::Cairn(s) => s.rss(),
            Target::Anchor(m) => proc_status_bytes(m.workerd_pid, "VmRSS"),
        }
    }

    /// CPU time of the serving process and of this one (the clients), in milliseconds.
    fn cpu_ms(&self) -> anyhow::Result<Cpu> {
        let server = match self {
            Target::Cairn(s) => s.pid,
            Target::Anchor(m) => m.workerd_pid,
        };
        Ok(Cpu { server: proc_cpu_ms(&server.to_string())?, client: proc_cpu_ms("self")? })
    }

    async fn state(&self) -> anyhow::Result<State> {
        match self {
            Target::Cairn(s) => {
                Ok(State { metrics: parse_metrics(&http_get(s.http_addr, "/metrics").await?), ..State::default() })
            }
            Target::Anchor(m) => {
                let stats: serde_json::Value = serde_json::from_str(&http_get(m.addr, "/stats").await?)?;
                Ok(State {
                    open_room_databases: Some(m.open_room_databases()?),
                    starts: stats["starts"].as_u64(),
                    ..State::default()
                })
            }
        }
    }

    /// Whether `rooms` rooms have hibernated and none is in memory. For Cairn that includes
    /// the rooms' objects, which a hibernation releases shortly after (as workerd closes an
    /// evicted object's database): one object stays open, the bucket registry
    /// (`_cairn_sys/buckets`) the server opens at start.
    fn all_hibernated(&self, state: &State, rooms: usize) -> bool {
        match self {
            Target::Cairn(_) => {
                state.metric("rooms_active") == 0
                    && state.metric("rooms_hibernated") == rooms as u64
                    && state.metric("open_objects") <= 1
            }
            Target::Anchor(_) => state.open_room_databases == Some(0),
        }
    }

    /// Polls until every room has hibernated; returns how long that took.
    async fn wait_hibernated(&self, rooms: usize, delay: Duration) -> anyhow::Result<(Duration, State)> {
        let started = Instant::now();
        let deadline = started + delay + HIBERNATION_TIMEOUT;
        let period = match self {
            Target::Cairn(_) => Duration::from_millis(100),
            // Listing 10,000 descriptors takes a while: poll less often.
            Target::Anchor(_) => Duration::from_millis(500),
        };
        loop {
            let state = self.state().await?;
            if self.all_hibernated(&state, rooms) {
                return Ok((started.elapsed(), state));
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the rooms did not all hibernate within {:?}: {state:?}",
                delay + HIBERNATION_TIMEOUT
            );
            tokio::time::sleep(period).await;
        }
    }

    /// Waits until Cairn has run the close hooks of every closed socket (its `/metrics` count
    /// no socket). The anchor's close answer comes after its hook ran, so it has nothing to
    /// wait for.
    async fn settle(&self) -> anyhow::Result<()> {
        if let Target::Cairn(_) = self {
            let deadline = Instant::now() + SETTLE_TIMEOUT;
            loop {
                let state = self.state().await?;
                if state.metric("room_sockets") == 0 {
                    return Ok(());
                }
                anyhow::ensure!(Instant::now() < deadline, "sockets still open after {SETTLE_TIMEOUT:?}: {state:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}

/// CPU time, in milliseconds, of the server and of the clients (this process).
#[derive(Clone, Copy, Debug, Default)]
struct Cpu {
    server: u64,
    client: u64,
}

impl Cpu {
    fn since(self, before: Cpu) -> Cpu {
        Cpu { server: self.server.saturating_sub(before.server), client: self.client.saturating_sub(before.client) }
    }
}

/// The connect and memory phase of one system.
#[derive(Clone, Debug)]
struct Held {
    connect_secs: f64,
    connect_p50_us: u64,
    connect_p99_us: u64,
    retries: u64,
    rss_before: u64,
    rss_after_first_wave: u64,
    rss_after: u64,
    first_wave: usize,
    hibernation_wait_secs: [f64; 2],
    state_after: State,
    closed_clean: usize,
}

impl Held {
    fn per_socket(&self, sockets: usize) -> u64 {
        self.rss_after.saturating_sub(self.rss_before) / sockets.max(1) as u64
    }

    /// The second wave's sockets only: rooms already existed.
    fn per_socket_second_wave(&self, sockets: usize) -> u64 {
        self.rss_after.saturating_sub(self.rss_after_first_wave) / (sockets - self.first_wave).max(1) as u64
    }
}

async fn hold(target: &Target<'_>, opts: &RoomsBenchOptions) -> anyhow::Result<Held> {
    let addr = target.addr();
    let delay = match target {
        Target::Cairn(_) => Duration::from_millis(opts.hibernate_after_ms),
        Target::Anchor(_) => Duration::from_secs(10),
    };
    // A request first, so that the baseline includes a warm server (workerd loads the Worker).
    target.state().await?;
    let rss_before = target.rss()?;
    let first_wave = opts.sockets / 2;
    let mut idle = IdleSockets::new();
    let (mut connect_secs, mut latencies, mut retries) = (0.0, Vec::new(), 0);
    let mut rss_after_first_wave = 0;
    let mut waits = [0.0; 2];
    let mut state_after = State::default();
    for (wave, range) in [(0, 0..first_wave), (1, first_wave..opts.sockets)] {
        let specs = range.map(|i| (format!("idle-{}", i % opts.rooms), format!("s{i}"))).collect();
        let opened = connect_many(addr, specs, CONNECT_CONCURRENCY).await?;
        connect_secs += opened.elapsed.as_secs_f64();
        latencies.extend(opened.latencies);
        retries += opened.retries;
        for ws in opened.sockets {
            idle.hold(ws);
        }
        let (waited, state) = target.wait_hibernated(opts.rooms, delay).await?;
        waits[wave] = waited.as_secs_f64();
        if wave == 0 {
            rss_after_first_wave = target.rss()?;
        } else {
            state_after = state;
        }
    }
    let rss_after = target.rss()?;
    anyhow::ensure!(idle.len() == opts.sockets, "{} sockets held, expected {}", idle.len(), opts.sockets);
    let closed_early = idle.closed_early.load(std::sync::atomic::Ordering::Relaxed);
    let frames = idle.frames.load(std::sync::atomic::Ordering::Relaxed);
    anyhow::ensure!(closed_early == 0, "{closed_early} idle sockets were closed by the server");
    anyhow::ensure!(frames == 0, "idle sockets received {frames} frames");
    if let Target::Cairn(_) = target {
        let open = state_after.metric("room_sockets");
        anyhow::ensure!(open == opts.sockets as u64, "Cairn counts {open} open sockets, expected {}", opts.sockets);
    }
    let closed_clean = idle.close_all().await?;
    target.settle().await?;
    latencies.sort_unstable();
    Ok(Held {
        connect_secs,
        connect_p50_us: quantile_us(&latencies, 0.5),
        connect_p99_us: quantile_us(&latencies, 0.99),
        retries,
        rss_before,
        rss_after_first_wave,
        rss_after,
        first_wave,
        hibernation_wait_secs: waits,
        state_after,
        closed_clean,
    })
}

/// Everything measured on one system.
struct Measured {
    held: Held,
    broadcast: Broadcast,
    chat: Chat,
    /// Cairn: its `fdatasync` calls and commits during the chat phase (warm-up included).
    chat_fdatasync_calls: Option<u64>,
    chat_commits: Option<u64>,
    /// Instance starts over the whole run (first starts and wake-ups).
    starts: u64,
    /// CPU time of each phase: connect and memory (hibernation waits included), broadcast
    /// (connects and warm-up included), chat (warm-up and history checks included).
    cpu: [Cpu; 3],
}

async fn measure(target: &Target<'_>, opts: &RoomsBenchOptions) -> anyhow::Result<Measured> {
    let cpu0 = target.cpu_ms()?;
    let held = hold(target, opts).await.context("connect and memory")?;
    let cpu1 = target.cpu_ms()?;
    let addr = target.addr();
    let broadcast =
        workload::broadcast(addr, opts.broadcast_members, opts.broadcast_rounds, BROADCAST_WARMUP, CONNECT_CONCURRENCY)
            .await
            .context("broadcast")?;
    target.settle().await?;
    let cpu2 = target.cpu_ms()?;
    let before = target.state().await?;
    let chat = workload::chat(addr, opts.chat_rooms, opts.chat_clients, opts.messages, CONNECT_CONCURRENCY)
        .await
        .context("chat")?;
    target.settle().await?;
    let cpu3 = target.cpu_ms()?;
    let after = target.state().await?;
    let (fdatasync, commits) = match target {
        Target::Cairn(_) => (
            Some(after.metric("fdatasync_calls").saturating_sub(before.metric("fdatasync_calls"))),
            Some(after.metric("commits").saturating_sub(before.metric("commits"))),
        ),
        Target::Anchor(_) => (None, None),
    };
    let starts = match target {
        Target::Cairn(_) => after.metric("room_starts"),
        Target::Anchor(_) => after.starts.unwrap_or(0),
    };
    let cpu = [cpu1.since(cpu0), cpu2.since(cpu1), cpu3.since(cpu2)];
    Ok(Measured { held, broadcast, chat, chat_fdatasync_calls: fdatasync, chat_commits: commits, starts, cpu })
}

/// The soft limit on open files of this process (inherited by the servers it starts).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.strip_prefix("Max open files")?.split_whitespace().next()?.parse().ok()
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { (a / b * 1000.0).round() / 1000.0 } else { 0.0 }
}

/// CPU time of a phase, server and clients, on both systems.
fn cpu_extra(e: &mut serde_json::Map<String, serde_json::Value>, cairn: Cpu, anchor: Cpu) {
    e.insert("server_cpu_ms".into(), cairn.server.into());
    e.insert("client_cpu_ms".into(), cairn.client.into());
    e.insert("anchor_server_cpu_ms".into(), anchor.server.into());
    e.insert("anchor_client_cpu_ms".into(), anchor.client.into());
}

fn figures(opts: &RoomsBenchOptions, anchor_name: &str, c: &Measured, a: &Measured) -> Vec<Figure> {
    let mut out = Vec::new();
    let n = opts.sockets;

    let per_sec = |h: &Held| n as f64 / h.connect_secs.max(1e-9);
    let mut f = Figure::new(
        &format!("connect_{n}_sockets_{}_rooms", opts.rooms),
        per_sec(&c.held),
        anchor_name,
        per_sec(&a.held),
        None,
    );
    let e = &mut f.extra;
    e.insert("ms".into(), crate::round(c.held.connect_secs * 1000.0).into());
    e.insert("anchor_ms".into(), crate::round(a.held.connect_secs * 1000.0).into());
    e.insert("connect_p50_us".into(), c.held.connect_p50_us.into());
    e.insert("connect_p99_us".into(), c.held.connect_p99_us.into());
    e.insert("anchor_connect_p50_us".into(), a.held.connect_p50_us.into());
    e.insert("anchor_connect_p99_us".into(), a.held.connect_p99_us.into());
    e.insert("retries".into(), c.held.retries.into());
    e.insert("anchor_retries".into(), a.held.retries.into());
    e.insert("handshakes_in_flight".into(), CONNECT_CONCURRENCY.into());
    cpu_extra(e, c.cpu[0], a.cpu[0]);
    out.push(f);

    let (cb, ab) = (&c.broadcast, &a.broadcast);
    let mut f = Figure::new(
        &format!("broadcast_{}_members", opts.broadcast_members),
        cb.rounds_per_sec,
        anchor_name,
        ab.rounds_per_sec,
        None,
    );
    let e = &mut f.extra;
    e.insert("rounds".into(), cb.rounds.into());
    e.insert("deliveries".into(), cb.deliveries.into());
    e.insert("p50_us".into(), cb.p50_us.into());
    e.insert("p99_us".into(), cb.p99_us.into());
    e.insert("anchor_p50_us".into(), ab.p50_us.into());
    e.insert("anchor_p99_us".into(), ab.p99_us.into());
    e.insert("p50_ratio_anchor_over_cairn".into(), ratio(ab.p50_us as f64, cb.p50_us as f64).into());
    e.insert("p99_ratio_anchor_over_cairn".into(), ratio(ab.p99_us as f64, cb.p99_us as f64).into());
    e.insert("last_member_p50_us".into(), cb.last_p50_us.into());
    e.insert("last_member_p99_us".into(), cb.last_p99_us.into());
    e.insert("anchor_last_member_p50_us".into(), ab.last_p50_us.into());
    e.insert("anchor_last_member_p99_us".into(), ab.last_p99_us.into());
    e.insert("ack_p50_us".into(), cb.ack_p50_us.into());
    e.insert("anchor_ack_p50_us".into(), ab.ack_p50_us.into());
    e.insert("connect_members_ms".into(), crate::round(cb.connect_secs * 1000.0).into());
    e.insert("anchor_connect_members_ms".into(), crate::round(ab.connect_secs * 1000.0).into());
    e.insert("closed_clean".into(), cb.closed_clean.into());
    e.insert("anchor_closed_clean".into(), ab.closed_clean.into());
    cpu_extra(e, c.cpu[1], a.cpu[1]);
    out.push(f);

    let (cm, am) = (c.held.per_socket(n), a.held.per_socket(n));
    let per_mib = |b: u64| (1u64 << 20) as f64 / b.max(1) as f64;
    let mut f = Figure::new("memory_per_hibernated_socket", per_mib(cm), anchor_name, per_mib(am), None);
    let e = &mut f.extra;
    e.insert("bytes_per_socket".into(), cm.into());
    e.insert("anchor_bytes_per_socket".into(), am.into());
    e.insert("target_bytes_per_socket".into(), TARGET_BYTES_PER_SOCKET.into());
    e.insert("under_target".into(), (cm < TARGET_BYTES_PER_SOCKET).into());
    e.insert("second_wave_bytes_per_socket".into(), c.held.per_socket_second_wave(n).into());
    e.insert("anchor_second_wave_bytes_per_socket".into(), a.held.per_socket_second_wave(n).into());
    e.insert("sockets".into(), n.into());
    e.insert("rooms".into(), opts.rooms.into());
    e.insert("rss_bytes_before".into(), c.held.rss_before.into());
    e.insert("rss_bytes_after_first_wave".into(), c.held.rss_after_first_wave.into());
    e.insert("rss_bytes_after".into(), c.held.rss_after.into());
    e.insert("anchor_rss_bytes_before".into(), a.held.rss_before.into());
    e.insert("anchor_rss_bytes_after_first_wave".into(), a.held.rss_after_first_wave.into());
    e.insert("anchor_rss_bytes_after".into(), a.held.rss_after.into());
    let waits = |h: &Held| h.hibernation_wait_secs.map(|s| (s * 1000.0).round() as u64).to_vec();
    e.insert("hibernation_wait_ms_per_wave".into(), waits(&c.held).into());
    e.insert("anchor_hibernation_wait_ms_per_wave".into(), waits(&a.held).into());
    let s = &c.held.state_after;
    e.insert("rooms_hibernated".into(), s.metric("rooms_hibernated").into());
    e.insert("rooms_active".into(), s.metric("rooms_active").into());
    e.insert("open_objects".into(), s.metric("open_objects").into());
    e.insert("room_wakeups".into(), s.metric("room_wakeups").into());
    e.insert("room_hibernations".into(), s.metric("room_hibernations").into());
    e.insert("anchor_open_room_databases".into(), a.held.state_after.open_room_databases.unwrap_or(0).into());
    e.insert("anchor_room_starts".into(), a.held.state_after.starts.unwrap_or(0).into());
    e.insert("closed_clean".into(), c.held.closed_clean.into());
    e.insert("anchor_closed_clean".into(), a.held.closed_clean.into());
    out.push(f);

    let (cc, ac) = (&c.chat, &a.chat);
    let mut f = Figure::new(
        &format!("chat_durable_messages_{}_rooms_{}_clients", opts.chat_rooms, opts.chat_clients),
        cc.acked_per_sec,
        anchor_name,
        ac.acked_per_sec,
        None,
    );
    let e = &mut f.extra;
    e.insert("messages".into(), cc.messages.into());
    e.insert("per_client".into(), cc.per_client.into());
    e.insert("warmup_per_client".into(), cc.warmup_per_client.into());
    e.insert("ack_p50_us".into(), cc.ack_p50_us.into());
    e.insert("ack_p99_us".into(), cc.ack_p99_us.into());
    e.insert("anchor_ack_p50_us".into(), ac.ack_p50_us.into());
    e.insert("anchor_ack_p99_us".into(), ac.ack_p99_us.into());
    e.insert("delivered_per_sec".into(), crate::round(cc.delivered_per_sec).into());
    e.insert("anchor_delivered_per_sec".into(), crate::round(ac.delivered_per_sec).into());
    e.insert("delivered_ratio".into(), ratio(cc.delivered_per_sec, ac.delivered_per_sec).into());
    e.insert("deliveries".into(), cc.deliveries.into());
    e.insert("acks_ms".into(), crate::round(cc.acks_secs * 1000.0).into());
    e.insert("anchor_acks_ms".into(), crate::round(ac.acks_secs * 1000.0).into());
    e.insert("deliveries_ms".into(), crate::round(cc.deliveries_secs * 1000.0).into());
    e.insert("anchor_deliveries_ms".into(), crate::round(ac.deliveries_secs * 1000.0).into());
    e.insert("closed_clean".into(), cc.closed_clean.into());
    e.insert("anchor_closed_clean".into(), ac.closed_clean.into());
    e.insert("histories_checked".into(), cc.histories_checked.into());
    e.insert("anchor_histories_checked".into(), ac.histories_checked.into());
    if let Some(v) = c.chat_fdatasync_calls {
        e.insert("fdatasync_calls".into(), v.into());
    }
    if let Some(v) = c.chat_commits {
        e.insert("commits".into(), v.into());
    }
    e.insert("room_starts_whole_run".into(), c.starts.into());
    e.insert("anchor_room_starts_whole_run".into(), a.starts.into());
    cpu_extra(e, c.cpu[2], a.cpu[2]);
    out.push(f);
    out
}

/// Runs every rooms figure, calling `report` as each one is ready (all at the end: each needs
/// both systems).
///
/// # Errors
/// Any failure of either server (including one that does not start or stop cleanly), of a
/// socket, a timeout, or a check.
pub fn rooms(opts: &RoomsBenchOptions, mut report: impl FnMut(&Figure)) -> anyhow::Result<()> {
    anyhow::ensure!(opts.rooms >= 1 && opts.sockets >= 2 * opts.rooms, "at least two sockets per room");
    let busiest = opts.sockets.max(opts.broadcast_members).max(opts.chat_rooms * opts.chat_clients);
    // The server holds every socket plus a few files per open room object.
    let needed = (busiest + 3 * (opts.rooms + opts.chat_rooms + 1) + 512) as u64;
    if let Some(limit) = open_files_limit() {
        anyhow::ensure!(
            limit >= needed,
            "the open-file limit is {limit}, this run needs about {needed}: raise it with `ulimit -n $(ulimit -Hn)` \
             (scripts/bench-rooms.sh does)"
        );
    }
    std::fs::create_dir_all(&opts.dir).context("create the benchmark directory")?;
    let work = tempfile::tempdir_in(&opts.dir).context("create a work directory")?;
    let rt = runtime()?;

    let hibernate = opts.hibernate_after_ms.to_string();
    let server = ChildServer::start(
        &opts.server,
        &work.path().join("cairn"),
        &[("CAIRN_DURABILITY", "fsync"), ("CAIRN_ROOMS_HIBERNATE_AFTER_MS", hibernate.as_str())],
    )?;
    let cairn = rt.block_on(measure(&Target::Cairn(&server), opts));
    let stopped = server.stop();
    let cairn = cairn.context("Cairn")?;
    stopped?;

    let mf = Miniflare::start(&opts.node, &opts.npm_prefix, &work.path().join("miniflare"))?;
    let anchor_name = format!("partyserver Server (hibernate: true) on Miniflare ({})", mf.version);
    let anchor = rt.block_on(measure(&Target::Anchor(&mf), opts));
    drop(mf);
    let anchor = anchor.context("the anchor")?;

    for f in figures(opts, &anchor_name, &cairn, &anchor) {
        report(&f);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_metrics;

    #[test]
    fn reads_gauges_from_the_exposition() {
        let text = "# HELP cairn_rooms_active Rooms\n# TYPE cairn_rooms_active gauge\ncairn_rooms_active 3\n\
                    cairn_http_requests_total{route=\"/x\"} 5\ncairn_room_sockets 10000\nother 1\n";
        let m = parse_metrics(text);
        assert_eq!(m.get("rooms_active"), Some(&3.0));
        assert_eq!(m.get("room_sockets"), Some(&10000.0));
        assert_eq!(m.len(), 2);
    }
}
