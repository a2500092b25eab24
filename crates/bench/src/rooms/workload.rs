//! The two active workloads of `cairn bench rooms`, the same for Cairn and the anchor: a
//! broadcast to one large room, and chat messages with durable history in several rooms.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures_util::StreamExt as _;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use super::client::{Kind, Ws, close, connect, connect_many, kind, next_text, quantile_us, send_text};

/// How long one broadcast round may take until every member has the message.
const ROUND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a chat run may take.
const CHAT_RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// Padding that brings a message text to about 100 bytes.
const PAD: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
/// Marks a broadcast round's text: `bcast {round} {unix ms} {PAD}`.
const BCAST: &str = r#""text":"bcast "#;

fn unix_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// The outcome of the broadcast workload.
#[derive(Clone, Debug)]
pub(crate) struct Broadcast {
    /// Timed rounds.
    pub(crate) rounds: usize,
    /// Rounds per second: one message sent, then every other member has it, then the next.
    pub(crate) rounds_per_sec: f64,
    /// Latency of each delivery (send to one member's receipt), median and 99th percentile.
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    /// Latency until the last member has the message, per round.
    pub(crate) last_p50_us: u64,
    pub(crate) last_p99_us: u64,
    /// Latency of the sender's ack (the message is durable).
    pub(crate) ack_p50_us: u64,
    /// Deliveries timed.
    pub(crate) deliveries: usize,
    /// Time to open the members' sockets.
    pub(crate) connect_secs: f64,
    /// Sockets that closed cleanly at the end.
    pub(crate) closed_clean: usize,
}

/// The round number of a broadcast frame.
fn round_of(text: &str) -> Option<u64> {
    let rest = text.split_once(BCAST)?.1;
    rest.split(' ').next()?.parse().ok()
}

/// Reads one member's socket until told to stop, reporting each broadcast round it receives.
async fn receiver(mut ws: Ws, tx: mpsc::UnboundedSender<(u64, Instant)>, mut stop: watch::Receiver<bool>) -> bool {
    loop {
        tokio::select! {
            _ = stop.changed() => return close(ws).await,
            frame = ws.next() => {
                let at = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        if kind(text.as_str()) == Kind::Message
                            && let Some(round) = round_of(text.as_str())
                        {
                            let _ = tx.send((round, at));
                        }
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return false,
                    Some(Ok(_)) => {}
                }
            }
        }
    }
}

/// Opens `members` sockets in the room `broadcast`; the first sends a timestamped message and
/// waits for its ack and for every other member to receive it, `warmup` untimed rounds and then
/// `rounds` timed ones.
pub(crate) async fn broadcast(
    addr: SocketAddr,
    members: usize,
    rounds: usize,
    warmup: usize,
    concurrency: usize,
) -> anyhow::Result<Broadcast> {
    anyhow::ensure!(members >= 2, "a broadcast needs at least two members");
    let specs = (0..members).map(|k| ("broadcast".to_owned(), format!("b{k}"))).collect();
    let opened = connect_many(addr, specs, concurrency).await.context("open the broadcast room's sockets")?;
    let connect_secs = opened.elapsed.as_secs_f64();
    let mut sockets = opened.sockets.into_iter();
    let mut sender = sockets.next().context("no sender")?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stop = watch::channel(false).0;
    let mut receivers = tokio::task::JoinSet::new();
    for ws in sockets {
        receivers.spawn(receiver(ws, tx.clone(), stop.subscribe()));
    }
    drop(tx);
    let others = members - 1;
    let mut deliveries = Vec::with_capacity(others * rounds);
    let (mut lasts, mut acks) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    let mut timed = Duration::ZERO;
    for round in 0..warmup + rounds {
        let r = round as u64;
        let text = format!(r#"{{"type":"message","text":"bcast {r} {} {PAD}","user":"broadcaster"}}"#, unix_ms());
        let t0 = Instant::now();
        let deadline = t0 + ROUND_TIMEOUT;
        send_text(&mut sender, text).await?;
        loop {
            let frame = next_text(&mut sender).await.with_context(|| format!("the ack of round {r}"))?;
            match kind(&frame) {
                Kind::Ack => break,
                Kind::Error => anyhow::bail!("round {r}: the room answered {frame:.300}"),
                _ => {}
            }
        }
        let ack = t0.elapsed();
        let (mut got, mut last) = (0, t0);
        while got < others {
            let (rr, at) = tokio::time::timeout_at(deadline.into(), rx.recv())
                .await
                .map_err(|_| anyhow::anyhow!("round {r}: {got} of {others} members had it after {ROUND_TIMEOUT:?}"))?
                .with_context(|| format!("round {r}: every member's socket ended"))?;
            // A receipt of an earlier round cannot come: each round waits for all of them.
            anyhow::ensure!(rr == r, "round {r}: a member received round {rr}");
            got += 1;
            last = last.max(at);
            if round >= warmup {
                deliveries.push(at.saturating_duration_since(t0));
            }
        }
        if round >= warmup {
            lasts.push(last.saturating_duration_since(t0));
            acks.push(ack);
            timed += t0.elapsed();
        }
    }
    let _ = stop.send(true);
    let mut closed_clean = usize::from(close(sender).await);
    while let Some(r) = receivers.join_next().await {
        closed_clean += usize::from(r.context("broadcast receiver")?);
    }
    deliveries.sort_unstable();
    lasts.sort_unstable();
    acks.sort_unstable();
    Ok(Broadcast {
        rounds,
        rounds_per_sec: rounds as f64 / timed.as_secs_f64().max(1e-9),
        p50_us: quantile_us(&deliveries, 0.5),
        p99_us: quantile_us(&deliveries, 0.99),
        last_p50_us: quantile_us(&lasts, 0.5),
        last_p99_us: quantile_us(&lasts, 0.99),
        ack_p50_us: quantile_us(&acks, 0.5),
        deliveries: deliveries.len(),
        connect_secs,
        closed_clean,
    })
}

/// The outcome of the chat workload.
#[derive(Clone, Debug)]
pub(crate) struct Chat {
    /// Messages sent in the timed run (all acknowledged).
    pub(crate) messages: usize,
    /// Messages per client in the timed run, and in the untimed warm-up before it.
    pub(crate) per_client: usize,
    pub(crate) warmup_per_client: usize,
    /// Acknowledged messages per second: the timed run's messages over the time until the last
    /// ack.
    pub(crate) acked_per_sec: f64,
    /// Deliveries (a message received by one other member) per second, until the last.
    pub(crate) delivered_per_sec: f64,
    pub(crate) deliveries: u64,
    /// Send to ack, per message.
    pub(crate) ack_p50_us: u64,
    pub(crate) ack_p99_us: u64,
    /// Seconds until the last ack, and until the last delivery.
    pub(crate) acks_secs: f64,
    pub(crate) deliveries_secs: f64,
    /// Rooms whose history was read back and matched.
    pub(crate) histories_checked: usize,
    /// Sockets that closed cleanly at the end.
    pub(crate) closed_clean: usize,
}

/// One client's part of a run.
struct ClientRun {
    acks: Vec<Duration>,
    acks_done: Instant,
    delivered_done: Instant,
    deliveries: u64,
}

/// A run for one client: send `n` messages, each once the previous one is acknowledged, then
/// wait until `expect` messages of the others have arrived.
struct RunCommand {
    n: usize,
    expect: u64,
    reply: oneshot::Sender<anyhow::Result<ClientRun>>,
}

async fn chat_run(ws: &mut Ws, me: &str, n: usize, expect: u64) -> anyhow::Result<ClientRun> {
    let mut acks = Vec::with_capacity(n);
    let mut deliveries = 0u64;
    for i in 0..n {
        let text = format!(r#"{{"type":"message","text":"chat {me} {i} {PAD}","user":"{me}"}}"#);
        let t = Instant::now();
        send_text(ws, text).await?;
        loop {
            let frame = next_text(ws).await.with_context(|| format!("{me}: the ack of message {i}"))?;
            match kind(&frame) {
                Kind::Ack => break,
                Kind::Message => deliveries += 1,
                Kind::Error => anyhow::bail!("{me}: the room answered {frame:.300}"),
                _ => {}
            }
        }
        acks.push(t.elapsed());
    }
    let acks_done = Instant::now();
    while deliveries < expect {
        let frame =
            next_text(ws).await.with_context(|| format!("{me}: {deliveries} of {expect} messages of the others"))?;
        if kind(&frame) == Kind::Message {
            deliveries += 1;
        }
    }
    anyhow::ensure!(deliveries == expect, "{me}: {deliveries} messages of the others, expected {expect}");
    Ok(ClientRun { acks, acks_done, delivered_done: Instant::now(), deliveries })
}

/// A chat client: runs what it is told, then closes its socket when the commands end.
async fn chat_client(mut ws: Ws, me: String, mut commands: mpsc::Receiver<RunCommand>) -> bool {
    while let Some(RunCommand { n, expect, reply }) = commands.recv().await {
        let _ = reply.send(chat_run(&mut ws, &me, n, expect).await);
    }
    close(ws).await
}

/// Reads a room's history through a new socket and checks it ends with message `total`.
async fn check_history(addr: SocketAddr, room: &str, total: usize, keep: usize) -> anyhow::Result<()> {
    let (ws, history) = connect(addr, room, &format!("check-{room}")).await?;
    close(ws).await;
    let v: serde_json::Value = serde_json::from_str(&history).context("the history frame is not JSON")?;
    let messages = v["messages"].as_array().context("no messages in the history frame")?;
    anyhow::ensure!(
        messages.len() == total.min(keep),
        "room {room}: the history holds {} messages, expected {}",
        messages.len(),
        total.min(keep)
    );
    let last = messages.last().and_then(|m| m["seq"].as_u64()).unwrap_or(0);
    anyhow::ensure!(last == total as u64, "room {room}: the last stored message is {last}, expected {total}");
    Ok(())
}

/// Opens `clients` sockets in each of `rooms` rooms; every client sends messages one after
/// another, each once the previous one is acknowledged (durable), and receives the others'
/// messages. An untimed warm-up run of a tenth as many, then the timed run of `messages` in
/// all. Then each room's history is read back through a new socket and checked.
pub(crate) async fn chat(
    addr: SocketAddr,
    rooms: usize,
    clients: usize,
    messages: usize,
    concurrency: usize,
) -> anyhow::Result<Chat> {
    anyhow::ensure!(rooms >= 1 && clients >= 2, "chat needs a room and at least two clients per room");
    let total_clients = rooms * clients;
    let per_client = (messages / total_clients).max(1);
    let warmup_per_client = (per_client / 10).max(1);
    let specs = (0..rooms)
        .flat_map(|r| (0..clients).map(move |k| (format!("chat-{r}"), format!("c{r}-{k}"))))
        .collect::<Vec<_>>();
    let ids: Vec<String> = specs.iter().map(|(_, id)| id.clone()).collect();
    let opened = connect_many(addr, specs, concurrency).await.context("open the chat sockets")?;
    let mut commands = Vec::with_capacity(total_clients);
    let mut tasks = tokio::task::JoinSet::new();
    for (ws, me) in opened.sockets.into_iter().zip(ids) {
        let (tx, rx) = mpsc::channel(1);
        commands.push(tx);
        tasks.spawn(chat_client(ws, me, rx));
    }
    let mut timed = None;
    for n in [warmup_per_client, per_client] {
        let expect = ((clients - 1) * n) as u64;
        let start = Instant::now();
        let mut replies = Vec::with_capacity(total_clients);
        for tx in &commands {
            let (reply, rx) = oneshot::channel();
            tx.send(RunCommand { n, expect, reply }).await.context("a chat client ended")?;
            replies.push(rx);
        }
        let mut runs = Vec::with_capacity(total_clients);
        for rx in replies {
            let run = tokio::time::timeout_at((start + CHAT_RUN_TIMEOUT).into(), rx)
                .await
                .map_err(|_| anyhow::anyhow!("the chat run took over {CHAT_RUN_TIMEOUT:?}"))?
                .context("a chat client ended")??;
            runs.push(run);
        }
        timed = Some((start, runs));
    }
    drop(commands);
    let mut closed_clean = 0;
    while let Some(r) = tasks.join_next().await {
        closed_clean += usize::from(r.context("chat client")?);
    }
    let (start, runs) = timed.context("no chat run")?;
    let acks_done = runs.iter().map(|r| r.acks_done).max().unwrap_or(start);
    let delivered_done = runs.iter().map(|r| r.delivered_done).max().unwrap_or(start);
    let deliveries: u64 = runs.iter().map(|r| r.deliveries).sum();
    let mut acks: Vec<Duration> = runs.into_iter().flat_map(|r| r.acks).collect();
    acks.sort_unstable();
    let acks_secs = acks_done.saturating_duration_since(start).as_secs_f64().max(1e-9);
    let deliveries_secs = delivered_done.saturating_duration_since(start).as_secs_f64().max(1e-9);
    let stored = clients * (warmup_per_client + per_client);
    for r in 0..rooms {
        check_history(addr, &format!("chat-{r}"), stored, 100).await?;
    }
    Ok(Chat {
        messages: acks.len(),
        per_client,
        warmup_per_client,
        acked_per_sec: acks.len() as f64 / acks_secs,
        delivered_per_sec: deliveries as f64 / deliveries_secs,
        deliveries,
        ack_p50_us: quantile_us(&acks, 0.5),
        ack_p99_us: quantile_us(&acks, 0.99),
        acks_secs,
        deliveries_secs,
        histories_checked: rooms,
        closed_clean,
    })
}

#[cfg(test)]
mod tests {
    use super::round_of;

    #[test]
    fn reads_the_round_of_a_broadcast() {
        let frame = r#"{"type":"message","message":{"id":"3","seq":3,"user":"b","text":"bcast 17 1795317134890 xx","ts":1,"from":"b0"}}"#;
        assert_eq!(round_of(frame), Some(17));
        assert_eq!(round_of(r#"{"type":"message","message":{"text":"chat c0 1 xx"}}"#), None);
    }
}
