//! [`RoomHost`]: the registered parties, the rooms that are live, and the events that run
//! their hooks.
//!
//! A live room is a [`RoomCell`]: its instance (absent while hibernating) and its sockets. Every
//! hook runs inside one event on the room's object (`ObjectRef::submit`), holding the cell's
//! locks for the duration of the hook only; the event's output is delivered by the submit
//! callback, which the runtime calls once the event's writes are durable and in event order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use cairn_runtime::{ObjectRef, Runtime};
use cairn_storage::{Clock, ObjectStorage};
use tokio::sync::{Notify, oneshot};

use crate::alarms::Retries;
use crate::context::{Context, Outgoing};
use crate::outbound::{self, Outbound};
use crate::sockets::{MAX_SOCKETS_PER_ROOM, Socket, SocketTable, check_tags};
use crate::stats::Stats;
use crate::{ConnectRequest, Connection, Frame, Message, Refuse, Room, RoomError, RoomInfo, RoomStats};

/// Makes a room instance for a room of a party.
pub(crate) type Factory = Arc<dyn Fn(&RoomInfo) -> Box<dyn Room> + Send + Sync>;

/// (party, room).
type RoomKey = (Arc<str>, Arc<str>);

/// Settings of a [`RoomHost`].
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// A room whose sockets are all hibernatable drops its instance after this long without
    /// an event. Default: 10 s (as Durable Objects).
    pub hibernate_after: Duration,
    /// Most due alarms fired per party in one scheduler pass. Default: 256.
    pub alarm_batch: usize,
    /// Most payload bytes waiting to be sent to one socket. A client that stops reading is
    /// dropped (reported closed with code 1008) when its queue would grow past this, instead
    /// of holding the server's memory. Default: 16 MiB.
    pub max_queued_bytes: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig { hibernate_after: Duration::from_secs(10), alarm_batch: 256, max_queued_bytes: 16 * 1024 * 1024 }
    }
}

/// Registers parties, then builds a [`RoomHost`].
pub struct RoomHostBuilder {
    runtime: Runtime,
    parties: HashMap<String, Factory>,
    config: HostConfig,
}

impl std::fmt::Debug for RoomHostBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomHostBuilder").field("parties", &self.parties.keys().collect::<Vec<_>>()).finish()
    }
}

impl RoomHostBuilder {
    /// Registers room type `R` as party `party`; each room gets `R::default()`.
    #[must_use]
    pub fn room<R: Room + Default>(self, party: &str) -> Self {
        self.room_with(party, |_| R::default())
    }

    /// Registers party `party` with a factory that makes each room's instance.
    #[must_use]
    pub fn room_with<R: Room, F>(mut self, party: &str, factory: F) -> Self
    where
        F: Fn(&RoomInfo) -> R + Send + Sync + 'static,
    {
        let factory: Factory = Arc::new(move |info| Box::new(factory(info)));
        self.parties.insert(party.to_owned(), factory);
        self
    }

    /// Replaces the settings.
    #[must_use]
    pub fn config(mut self, config: HostConfig) -> Self {
        self.config = config;
        self
    }

    /// The parties registered so far.
    pub fn parties(&self) -> impl Iterator<Item = &str> {
        self.parties.keys().map(String::as_str)
    }

    /// Builds the host. Background work (hibernation, alarms) starts with
    /// [`RoomHost::spawn_background`].
    ///
    /// # Errors
    /// [`RoomError::Storage`] if a party name is not a valid namespace (ASCII letters, digits,
    /// `_`, `-`, `.`; at most 64 bytes) or starts with the reserved `_cairn`.
    pub fn build(self) -> Result<RoomHost, RoomError> {
        for party in self.parties.keys() {
            cairn_storage::layout::validate_namespace(party)?;
            if party.starts_with("_cairn") {
                return Err(RoomError::Storage(cairn_storage::Error::InvalidName {
                    what: "party",
                    name: party.clone(),
                    reason: "names starting with _cairn are reserved",
                }));
            }
        }
        let clock = Arc::clone(&self.runtime.config().clock);
        Ok(RoomHost {
            inner: Arc::new(HostInner {
                runtime: self.runtime,
                parties: self.parties,
                rooms: Mutex::new(HashMap::new()),
                config: self.config,
                stats: Stats::default(),
                clock,
                retries: Mutex::new(Retries::default()),
                alarm_wake: Notify::new(),
            }),
        })
    }
}

/// Hosts rooms: runs their hooks as events, keeps their sockets, hibernates idle instances
/// and fires their alarms. Cheap to clone.
#[derive(Clone)]
pub struct RoomHost {
    pub(crate) inner: Arc<HostInner>,
}

impl std::fmt::Debug for RoomHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomHost").field("parties", &self.inner.parties.keys().collect::<Vec<_>>()).finish()
    }
}

pub(crate) struct HostInner {
    pub(crate) runtime: Runtime,
    pub(crate) parties: HashMap<String, Factory>,
    rooms: Mutex<HashMap<RoomKey, Arc<RoomCell>>>,
    pub(crate) config: HostConfig,
    pub(crate) stats: Stats,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) retries: Mutex<Retries>,
    /// Woken when an event moves an alarm, so the scheduler recomputes its sleep.
    pub(crate) alarm_wake: Notify,
}

/// A live room: its instance (none while hibernating) and its sockets.
pub(crate) struct RoomCell {
    pub(crate) info: RoomInfo,
    object: ObjectRef,
    factory: Factory,
    instance: Mutex<Option<Box<dyn Room>>>,
    sockets: Mutex<SocketTable>,
    /// Events dispatched and not finished; a cell is only dropped from the map at 0.
    pending: AtomicUsize,
    /// Events run so far (numbering for broadcasts).
    events: AtomicU64,
    last_event_ms: AtomicI64,
    /// The object's storage was released since the last event ([`RoomHost::hibernate_idle`]).
    released: AtomicBool,
}

impl RoomCell {
    /// This cell with one more pending event counted, for an event about one of its sockets.
    ///
    /// Unlike [`RoomHost::cell`] this does not go through the room map: while the socket is
    /// in the cell, the cell stays in the map (`hibernate_idle` keeps cells with sockets); once
    /// the socket has left, the event finds it gone and does nothing, even on a detached cell.
    fn hold(self: &Arc<Self>) -> Arc<Self> {
        self.pending.fetch_add(1, Ordering::SeqCst);
        Arc::clone(self)
    }
}

/// Locks a mutex, recovering from poisoning (a panicking hook): the data is still consistent
/// because hooks only see it through `Context`, whose operations do not panic midway.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| {
        m.clear_poison();
        p.into_inner()
    })
}

/// What an event body gets: the storage, the room (started on first use) and the context.
pub(crate) struct Scope<'a> {
    storage: &'a mut ObjectStorage,
    cell: &'a RoomCell,
    instance: &'a mut Option<Box<dyn Room>>,
    sockets: &'a mut SocketTable,
    outbox: &'a mut Vec<Outgoing>,
    event: u64,
    stats: &'a Stats,
}

impl Scope<'_> {
    pub(crate) fn storage(&mut self) -> &mut ObjectStorage {
        self.storage
    }

    pub(crate) fn sockets(&mut self) -> &mut SocketTable {
        self.sockets
    }

    /// Runs `hook` on the room's instance, starting it first if it is not running.
    pub(crate) fn run<T>(
        &mut self,
        hook: impl FnOnce(&mut dyn Room, &mut Context<'_>) -> Result<T, RoomError>,
    ) -> Result<T, RoomError> {
        let mut ctx = Context {
            storage: self.storage,
            room: &self.cell.info,
            sockets: self.sockets,
            outbox: self.outbox,
            event: self.event,
        };
        if self.instance.is_none() {
            let mut room = (self.cell.factory)(&self.cell.info);
            room.on_start(&mut ctx)?;
            self.stats.starts.fetch_add(1, Ordering::Relaxed);
            if !ctx.sockets.is_empty() {
                self.stats.wakeups.fetch_add(1, Ordering::Relaxed);
            }
            *self.instance = Some(room);
        }
        match self.instance.as_mut() {
            Some(room) => hook(room.as_mut(), &mut ctx),
            None => Err(RoomError::msg("room instance missing")),
        }
    }
}

/// What an event hands to its completion besides its value.
struct Done<T> {
    value: T,
    outbox: Vec<Outgoing>,
    alarm_moved: bool,
}

/// The result of [`RoomHost::connect`].
#[derive(Debug)]
pub enum Connected {
    /// The room accepted the socket: carry frames between it and the handle, and send what
    /// arrives on the receiver (its first frames may be what `on_connect` sent).
    Accepted(SocketHandle, Outbound),
    /// The room refused it: answer with this instead of upgrading.
    Refused(Refuse),
}

/// The host's side of one accepted socket, for the transport that carries its frames.
#[derive(Debug)]
pub struct SocketHandle {
    host: RoomHost,
    cell: Arc<RoomCell>,
    id: Arc<str>,
}

impl std::fmt::Debug for RoomCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomCell").field("info", &self.info).finish()
    }
}

impl RoomHost {
    /// A builder over `runtime`.
    pub fn builder(runtime: Runtime) -> RoomHostBuilder {
        RoomHostBuilder { runtime, parties: HashMap::new(), config: HostConfig::default() }
    }

    /// Whether `party` is registered.
    pub fn has_party(&self, party: &str) -> bool {
        self.inner.parties.contains_key(party)
    }

    /// The registered parties, sorted.
    pub fn parties(&self) -> Vec<String> {
        let mut p: Vec<String> = self.inner.parties.keys().cloned().collect();
        p.sort();
        p
    }

    /// The runtime the rooms live on.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// Counters and gauges.
    pub fn stats(&self) -> RoomStats {
        let rooms = lock(&self.inner.rooms);
        let (mut active, mut hibernated, mut sockets) = (0, 0, 0);
        for cell in rooms.values() {
            let n = lock(&cell.sockets).len();
            sockets += n;
            // A busy instance (its lock held by an event) is active.
            let running = cell.instance.try_lock().map_or(true, |i| i.is_some());
            if running {
                active += 1;
            } else if n > 0 {
                hibernated += 1;
            }
        }
        self.inner.stats.snapshot(active, hibernated, sockets)
    }

    /// The cell of a room, made if needed, with one more pending event counted.
    pub(crate) fn cell(&self, party: &str, room: &str) -> Result<Arc<RoomCell>, RoomError> {
        let factory = self
            .inner
            .parties
            .get(party)
            .ok_or_else(|| RoomError::UnknownParty { party: party.chars().take(80).collect() })?;
        let mut rooms = lock(&self.inner.rooms);
        let key = (Arc::<str>::from(party), Arc::<str>::from(room));
        let cell = match rooms.get(&key) {
            Some(cell) => Arc::clone(cell),
            None => {
                let object = self.inner.runtime.object(party, room)?;
                let cell = Arc::new(RoomCell {
                    info: RoomInfo { party: party.to_owned(), name: room.to_owned() },
                    object,
                    factory: Arc::clone(factory),
                    instance: Mutex::new(None),
                    sockets: Mutex::new(SocketTable::default()),
                    pending: AtomicUsize::new(0),
                    events: AtomicU64::new(0),
                    last_event_ms: AtomicI64::new(self.inner.clock.now_ms()),
                    released: AtomicBool::new(false),
                });
                rooms.insert(key, Arc::clone(&cell));
                cell
            }
        };
        cell.pending.fetch_add(1, Ordering::SeqCst);
        Ok(cell)
    }

    /// Runs `body` as one event of the room of `cell` (whose pending count `cell()` raised),
    /// and hands its result to `done` once its writes are durable, after delivering its output.
    pub(crate) async fn dispatch<T, B, D>(&self, cell: Arc<RoomCell>, body: B, done: D)
    where
        T: Send + 'static,
        B: FnOnce(&mut Scope<'_>) -> Result<T, RoomError> + Send + 'static,
        D: FnOnce(Result<T, RoomError>) + Send + 'static,
    {
        let host = self.clone();
        let in_event = Arc::clone(&cell);
        let after = Arc::clone(&cell);
        let object = cell.object.clone();
        let run = move |storage: &mut ObjectStorage| -> Result<Done<T>, RoomError> {
            let cell = in_event;
            let event = cell.events.fetch_add(1, Ordering::SeqCst) + 1;
            cell.last_event_ms.store(host.inner.clock.now_ms(), Ordering::Relaxed);
            cell.released.store(false, Ordering::Relaxed);
            let mut instance = lock(&cell.instance);
            let mut sockets = lock(&cell.sockets);
            let mut outbox = Vec::new();
            let mut scope = Scope {
                storage,
                cell: &cell,
                instance: &mut instance,
                sockets: &mut sockets,
                outbox: &mut outbox,
                event,
                stats: &host.inner.stats,
            };
            scope.sockets.begin_event();
            // A panicking hook is caught here, not by the runtime, so that this event's
            // sockets and instance are cleaned up like those of a failed one.
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&mut scope))).unwrap_or_else(|p| {
                    Err(RoomError::Runtime(cairn_runtime::Error::EventPanicked {
                        message: cairn_runtime::panic_message(p.as_ref()),
                    }))
                });
            match result {
                Ok(value) => {
                    let alarm_moved = storage_alarm_moved(scope.storage);
                    Ok(Done { value, outbox, alarm_moved })
                }
                Err(e) => {
                    // The event rolls back: memory must not keep what storage will not.
                    sockets.undo_event();
                    *instance = None;
                    host.inner.stats.handler_errors.fetch_add(1, Ordering::Relaxed);
                    Err(e)
                }
            }
        };
        let host = self.clone();
        let finish = move |result: Result<Done<T>, RoomError>| {
            let result = result.map(|d| {
                host.deliver(&after, d.outbox);
                if d.alarm_moved {
                    host.inner.alarm_wake.notify_one();
                }
                d.value
            });
            after.pending.fetch_sub(1, Ordering::SeqCst);
            done(result);
        };
        if let Err(e) = object.submit(run, finish).await {
            // Not queued (shutting down): `finish` was dropped unrun.
            cell.pending.fetch_sub(1, Ordering::SeqCst);
            tracing::debug!(error = %e, room = ?cell.info, "room event not queued");
        }
    }

    /// Like [`RoomHost::dispatch`], waiting for the result.
    pub(crate) async fn call<T, B>(&self, cell: Arc<RoomCell>, body: B) -> Result<T, RoomError>
    where
        T: Send + 'static,
        B: FnOnce(&mut Scope<'_>) -> Result<T, RoomError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.dispatch(cell, body, move |r| {
            let _ = tx.send(r);
        })
        .await;
        rx.await.unwrap_or(Err(RoomError::Runtime(cairn_runtime::Error::ShuttingDown)))
    }

    /// Sends an event's output to the sockets it names (runs once the event is durable).
    fn deliver(&self, cell: &RoomCell, outbox: Vec<Outgoing>) {
        if outbox.is_empty() {
            return;
        }
        let sockets = lock(&cell.sockets);
        let mut sent = 0u64;
        for out in outbox {
            match out {
                Outgoing::To(id, frame) => {
                    if let Some(s) = sockets.get(&id)
                        && s.tx.send(frame)
                    {
                        sent += 1;
                    }
                }
                Outgoing::Broadcast(frame, except, event) => {
                    for s in sockets.iter() {
                        if s.joined <= event && !except.contains(&s.id) && s.tx.send(frame.clone()) {
                            sent += 1;
                        }
                    }
                }
                Outgoing::Close(tx, code, reason) => {
                    tx.send(Frame::Close { code, reason });
                }
            }
        }
        self.inner.stats.messages_out.fetch_add(sent, Ordering::Relaxed);
    }

    /// Asks room `room` of `party` to accept a WebSocket: starts the room if needed, runs
    /// `on_before_connect`, and if it accepts, adds the socket and runs `on_connect`, in one
    /// event. Returns once that event is durable.
    ///
    /// # Errors
    /// [`RoomError::UnknownParty`]; an invalid room name; [`RoomError::TooManySockets`]; tag
    /// errors; the hooks' errors.
    pub async fn connect(&self, party: &str, room: &str, req: ConnectRequest) -> Result<Connected, RoomError> {
        let cell = self.cell(party, room)?;
        let (tx, rx) = outbound::channel(self.inner.config.max_queued_bytes);
        let id: Arc<str> = Arc::from(req.id.as_str());
        let conn = Connection { id: Arc::clone(&id) };
        let decision = self
            .call(Arc::clone(&cell), move |scope| {
                let accept = match scope.run(|room, ctx| room.on_before_connect(&req, ctx))? {
                    Ok(accept) => accept,
                    Err(refuse) => return Ok(Err(refuse)),
                };
                let tags = check_tags(&accept.tags)?;
                let event = scope.event;
                let sockets = scope.sockets();
                if let Some(old) = sockets.remove(&conn.id) {
                    // The same client reconnected before its old socket was seen to close.
                    scope.outbox.push(Outgoing::Close(old, 1000, "replaced by a newer connection".to_owned()));
                }
                let sockets = scope.sockets();
                if sockets.len() >= MAX_SOCKETS_PER_ROOM {
                    return Err(RoomError::TooManySockets { max: MAX_SOCKETS_PER_ROOM });
                }
                sockets.insert(Socket {
                    id: Arc::clone(&conn.id),
                    tags,
                    attachment: None,
                    hibernatable: accept.hibernatable,
                    joined: event,
                    tx,
                    auto_response_at: None,
                });
                scope.run(|room, ctx| room.on_connect(&conn, ctx))?;
                Ok(Ok(()))
            })
            .await?;
        match decision {
            Ok(()) => {
                self.inner.stats.connections.fetch_add(1, Ordering::Relaxed);
                Ok(Connected::Accepted(SocketHandle { host: self.clone(), cell, id }, rx))
            }
            Err(refuse) => Ok(Connected::Refused(refuse)),
        }
    }

    /// Runs `on_request` for an HTTP request to room `room` of `party`; returns its response
    /// once the event's writes are durable.
    ///
    /// # Errors
    /// [`RoomError::UnknownParty`]; an invalid room name; the hook's error.
    pub async fn request(
        &self,
        party: &str,
        room: &str,
        req: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, RoomError> {
        let cell = self.cell(party, room)?;
        self.inner.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.call(cell, move |scope| scope.run(|room, ctx| room.on_request(req, ctx))).await
    }

    /// Drops the instances of rooms idle for [`HostConfig::hibernate_after`] whose sockets are
    /// all hibernatable, releasing their objects' storage ([`ObjectRef::release`]), and forgets
    /// rooms with neither instance nor sockets. Returns how many instances were dropped.
    pub fn hibernate_idle(&self) -> usize {
        let now = self.inner.clock.now_ms();
        let idle_ms = i64::try_from(self.inner.config.hibernate_after.as_millis()).unwrap_or(i64::MAX);
        let mut rooms = lock(&self.inner.rooms);
        let mut dropped = 0;
        rooms.retain(|_, cell| {
            if cell.pending.load(Ordering::SeqCst) > 0 {
                return true;
            }
            let sockets = lock(&cell.sockets);
            let Ok(mut instance) = cell.instance.try_lock() else { return true };
            let idle = now.saturating_sub(cell.last_event_ms.load(Ordering::Relaxed)) >= idle_ms;
            if instance.is_some() && idle && sockets.all_hibernatable() {
                *instance = None;
                dropped += 1;
            }
            // The storage of a hibernating room goes too (its SQLite connection and page cache
            // are most of its memory); the next event reopens it. A release the shard's full
            // queue refused is asked again at the next sweep.
            if instance.is_none() && !cell.released.load(Ordering::Relaxed) && cell.object.release() {
                cell.released.store(true, Ordering::Relaxed);
            }
            instance.is_some() || !sockets.is_empty()
        });
        self.inner.stats.hibernations.fetch_add(dropped as u64, Ordering::Relaxed);
        dropped
    }

    /// Sends every open socket a close frame with `code` and `reason` and forgets it (no
    /// `on_close` runs): for shutdown. Instances are dropped.
    pub fn close_all(&self, code: u16, reason: &str) {
        let mut rooms = lock(&self.inner.rooms);
        for cell in rooms.values() {
            let mut sockets = lock(&cell.sockets);
            for socket in sockets.drain() {
                socket.tx.send(Frame::Close { code, reason: reason.to_owned() });
            }
        }
        rooms.clear();
    }

    /// Starts the background tasks on the current tokio runtime: hibernation of idle rooms and
    /// the alarm scheduler. They stop when the returned handles are aborted.
    pub fn spawn_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let host = self.clone();
        let period = (self.inner.config.hibernate_after / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                host.hibernate_idle();
            }
        });
        let host = self.clone();
        let alarms = tokio::spawn(async move { host.run_alarm_scheduler().await });
        vec![sweeper, alarms]
    }
}

/// Whether the open event changes the object's next alarm.
fn storage_alarm_moved(storage: &ObjectStorage) -> bool {
    storage.pending_alarm_change().is_some()
}

impl SocketHandle {
    /// The socket's connection id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A message arrived. Answers the auto-response itself if the message is its request;
    /// otherwise queues `on_message` and returns (its output follows on the socket's channel).
    pub async fn message(&self, message: Message) {
        let stats = &self.host.inner.stats;
        stats.messages_in.fetch_add(1, Ordering::Relaxed);
        if let Message::Text(text) = &message {
            let mut sockets = lock(&self.cell.sockets);
            let now = self.host.inner.clock.now_ms();
            let reply = sockets.auto_response.as_ref().filter(|p| p.request == *text).map(|p| p.response.clone());
            if let Some(response) = reply
                && let Some(socket) = sockets.get_mut(&self.id)
            {
                socket.auto_response_at = Some(now);
                if socket.tx.send(Frame::text(response)) {
                    stats.auto_responses.fetch_add(1, Ordering::Relaxed);
                    stats.messages_out.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
        }
        let cell = self.cell.hold();
        let conn = Connection { id: Arc::clone(&self.id) };
        let room = self.cell.info.clone();
        self.host
            .dispatch(
                cell,
                move |scope| {
                    if !scope.sockets().holds(&conn.id) {
                        return Ok(()); // closed by the room meanwhile
                    }
                    scope.run(|r, ctx| r.on_message(&conn, message, ctx))
                },
                move |r| log_failure(&room, "on_message", r),
            )
            .await;
    }

    /// The socket failed (a protocol error); runs `on_error`. [`SocketHandle::closed`] should
    /// follow.
    pub async fn error(&self, error: String) {
        let cell = self.cell.hold();
        let conn = Connection { id: Arc::clone(&self.id) };
        let room = self.cell.info.clone();
        self.host
            .dispatch(
                cell,
                move |scope| {
                    if !scope.sockets().holds(&conn.id) {
                        return Ok(());
                    }
                    scope.run(|r, ctx| r.on_error(&conn, &error, ctx))
                },
                move |r| log_failure(&room, "on_error", r),
            )
            .await;
    }

    /// The socket closed: removes it from the room and runs `on_close`, unless the room closed
    /// it first. Returns once the event is queued.
    pub async fn closed(self, code: u16, reason: String, was_clean: bool) {
        let cell = self.cell.hold();
        let conn = Connection { id: Arc::clone(&self.id) };
        let room = self.cell.info.clone();
        self.host
            .dispatch(
                cell,
                move |scope| {
                    // Only this socket, not a newer one that took over its id.
                    let ours = scope.sockets().holds(&conn.id);
                    if !ours {
                        return Ok(());
                    }
                    // Start a hibernating room while the socket is still in it, so that
                    // `on_start` sees it (and, say, the state in its attachment) before `on_close`.
                    scope.run(|_, _| Ok(()))?;
                    // The socket is gone whatever the hook does: not undone if it fails.
                    scope.sockets().forget(&conn.id);
                    scope.run(|r, ctx| r.on_close(&conn, code, &reason, was_clean, ctx))
                },
                move |r| log_failure(&room, "on_close", r),
            )
            .await;
    }
}

fn log_failure(room: &RoomInfo, hook: &'static str, result: Result<(), RoomError>) {
    if let Err(e) = result {
        tracing::warn!(party = %room.party, room = %room.name, hook, code = e.code(), "room hook failed: {e}");
    }
}
