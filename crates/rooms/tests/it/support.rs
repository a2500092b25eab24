//! The test rooms and the environment the tests drive them in.
//!
//! [`TestRoom`] (party `p`) records every hook call into [`Shared::log`] and obeys text
//! commands sent to it (see [`TestRoom::command`]); how it accepts a socket is read from the
//! connect URI's query (see [`TestRoom::on_before_connect`]). [`PlainRoom`] (party `plain`)
//! keeps every default of the trait. Party `chat` is the built-in chat room.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cairn_rooms::Outbound;
use cairn_rooms::builtin::chat::{ChatConfig, ChatRoom};
use cairn_rooms::{
    Accept, AlarmInfo, AutoResponse, ConnectRequest, Connected, Connection, Context, Frame, HostConfig, Message,
    Refuse, Room, RoomError, RoomHost, SocketHandle,
};
use cairn_runtime::{ObjectRef, Runtime};
use cairn_storage::ManualClock;
use tokio::sync::mpsc::error::TryRecvError;

/// The time every test starts at (ms since the epoch).
pub(crate) const NOW: i64 = 1_700_000_000_000;

/// How long a test waits for anything before it fails.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// An alarm hook installed by a test.
pub(crate) type AlarmFn = Box<dyn FnMut(&AlarmInfo, &mut Context<'_>) -> Result<(), RoomError> + Send>;
/// A request hook installed by a test.
pub(crate) type RequestFn =
    Box<dyn FnMut(http::Request<Bytes>, &mut Context<'_>) -> Result<http::Response<Bytes>, RoomError> + Send>;

/// What the test and every [`TestRoom`] instance share.
#[derive(Default)]
pub(crate) struct Shared {
    /// Hook calls, in order.
    pub(crate) log: Mutex<Vec<String>>,
    /// Instances the factory made.
    pub(crate) instances: AtomicUsize,
    /// Whether `on_start` fails.
    pub(crate) fail_start: AtomicBool,
    /// Run by `on_alarm` after it logs (none: succeed).
    pub(crate) alarm: Mutex<Option<AlarmFn>>,
    /// Run by `on_request` after it logs (none: answer 200 describing the request).
    pub(crate) request: Mutex<Option<RequestFn>>,
}

impl Shared {
    pub(crate) fn push(&self, entry: String) {
        self.log.lock().unwrap().push(entry);
    }

    pub(crate) fn set_alarm_hook(
        &self,
        f: impl FnMut(&AlarmInfo, &mut Context<'_>) -> Result<(), RoomError> + Send + 'static,
    ) {
        *self.alarm.lock().unwrap() = Some(Box::new(f));
    }

    pub(crate) fn set_request_hook(
        &self,
        f: impl FnMut(http::Request<Bytes>, &mut Context<'_>) -> Result<http::Response<Bytes>, RoomError> + Send + 'static,
    ) {
        *self.request.lock().unwrap() = Some(Box::new(f));
    }
}

/// A room that records its hooks and obeys commands.
pub(crate) struct TestRoom {
    shared: Arc<Shared>,
    /// Messages this instance has seen (to tell instances apart).
    seen: u64,
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

fn ids(conns: &[Connection]) -> String {
    conns.iter().map(Connection::id).collect::<Vec<_>>().join(",")
}

impl TestRoom {
    /// Runs the command `text` for `conn`:
    /// - `echo:X` sends X back; `whoami` sends the connection id; `seen` sends how many messages
    ///   this instance has seen.
    /// - `bcast:X` broadcasts X to the others, then sends `sent` to the sender; `bcastall:X`
    ///   broadcasts to everyone.
    /// - `put:K=V` stores V under K and sends `stored:K`.
    /// - `fail` stores `failed`, sends and broadcasts `nope`, sets an alarm, then fails;
    ///   `panic` stores `panicked` and panics; `closefail` closes the sender and fails.
    /// - `close:CODE:REASON` closes the sender.
    /// - `tags`, `conns`, `tagged:T`, `count` send the sender's tags, the connections (newest
    ///   first), the connections tagged T (acceptance order), the number of connections.
    /// - `attach:N` attaches N bytes and sends `attach:ok` or `attach:err:{code}:{message}`;
    ///   `getattach` sends `attachment:{len}` or `attachment:none`.
    /// - `auto:REQ:RESP` sets the auto-response, `autoclear` clears it, `autots` sends the
    ///   sender's auto-response timestamp.
    /// - `named:NAME:T` sets a named alarm, `alarm:T` the alarm (both send `ok`).
    fn command(&mut self, conn: &Connection, text: &str, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        let (cmd, arg) = text.split_once(':').unwrap_or((text, ""));
        match cmd {
            "echo" => ctx.send(conn, Frame::text(arg)),
            "whoami" => ctx.send(conn, Frame::text(conn.id())),
            "seen" => ctx.send(conn, Frame::text(self.seen.to_string())),
            "bcast" => {
                ctx.broadcast(Frame::text(arg), &[conn]);
                ctx.send(conn, Frame::text("sent"));
            }
            "bcastall" => ctx.broadcast(Frame::text(arg), &[]),
            "put" => {
                let (k, v) = arg.split_once('=').unwrap_or((arg, ""));
                ctx.storage().put(k, v)?;
                ctx.send(conn, Frame::text(format!("stored:{k}")));
            }
            "fail" => {
                ctx.storage().put("failed", "yes")?;
                let now = ctx.now_ms();
                ctx.storage().set_alarm(now + 1_000)?;
                ctx.send(conn, Frame::text("nope"));
                ctx.broadcast(Frame::text("nope"), &[]);
                return Err(RoomError::msg("told to fail"));
            }
            "panic" => {
                ctx.storage().put("panicked", "yes")?;
                ctx.send(conn, Frame::text("nope"));
                panic!("told to panic");
            }
            "closefail" => {
                ctx.close(conn, 4000, "closed by a failing hook");
                return Err(RoomError::msg("told to fail after closing"));
            }
            "close" => {
                let (code, reason) = arg.split_once(':').unwrap_or((arg, ""));
                ctx.close(conn, code.parse().unwrap_or(1000), reason);
            }
            "tags" => {
                let tags = ctx.tags(conn).join(",");
                ctx.send(conn, Frame::text(tags));
            }
            "conns" => {
                let list = ids(&ctx.connections());
                ctx.send(conn, Frame::text(list));
            }
            "tagged" => {
                let list = ids(&ctx.connections_tagged(arg));
                ctx.send(conn, Frame::text(list));
            }
            "count" => {
                let n = ctx.connection_count();
                ctx.send(conn, Frame::text(n.to_string()));
            }
            "attach" => {
                let n: usize = arg.parse().unwrap_or(0);
                let reply = match ctx.set_attachment(conn, Some(vec![b'a'; n])) {
                    Ok(()) => "attach:ok".to_owned(),
                    Err(e) => format!("attach:err:{}:{e}", e.code()),
                };
                ctx.send(conn, Frame::text(reply));
            }
            "getattach" => {
                let reply = format!("attachment:{}", opt(ctx.attachment(conn).map(<[u8]>::len)));
                ctx.send(conn, Frame::text(reply));
            }
            "auto" => {
                let (req, res) = arg.split_once(':').unwrap_or((arg, ""));
                ctx.set_auto_response(Some(AutoResponse::new(req, res)?));
                ctx.send(conn, Frame::text("ok"));
            }
            "autoclear" => {
                ctx.set_auto_response(None);
                ctx.send(conn, Frame::text("ok"));
            }
            "autots" => {
                let ts = opt(ctx.auto_response_timestamp(conn));
                ctx.send(conn, Frame::text(format!("autots:{ts}")));
            }
            "named" => {
                let (name, t) = arg.split_once(':').unwrap_or((arg, "0"));
                ctx.storage().set_named_alarm(name, t.parse().unwrap_or(0))?;
                ctx.send(conn, Frame::text("ok"));
            }
            "alarm" => {
                ctx.storage().set_alarm(arg.parse().unwrap_or(0))?;
                ctx.send(conn, Frame::text("ok"));
            }
            _ => ctx.send(conn, Frame::text(format!("unknown command {text:?}"))),
        }
        Ok(())
    }
}

impl Room for TestRoom {
    /// Logs `start:{counter}` with the stored `counter` (proof that storage is readable).
    fn on_start(&mut self, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        let counter: Option<i64> = ctx.storage().get("counter")?;
        self.shared.push(format!("start:{}", opt(counter)));
        if self.shared.fail_start.load(Ordering::SeqCst) {
            return Err(RoomError::msg("told to fail on start"));
        }
        Ok(())
    }

    /// Reads the query: `token` other than `secret` refuses with 401 `bad token`;
    /// `tags=a,b` gives tags; `hib=0` makes the socket non-hibernatable; `failbefore` fails.
    fn on_before_connect(
        &mut self,
        req: &ConnectRequest,
        _ctx: &mut Context<'_>,
    ) -> Result<Result<Accept, Refuse>, RoomError> {
        self.shared.push(format!("before_connect:{}", req.id));
        if req.query_param("failbefore").is_some() {
            return Err(RoomError::msg("told to fail before connecting"));
        }
        if let Some(token) = req.query_param("token")
            && token != "secret"
        {
            return Ok(Err(Refuse { status: 401, body: "bad token".to_owned() }));
        }
        let tags =
            req.query_param("tags").map(|t| t.split(',').map(str::to_owned).collect::<Vec<_>>()).unwrap_or_default();
        let hibernatable = req.query_param("hib").is_none_or(|h| h != "0");
        Ok(Ok(Accept { tags, hibernatable }))
    }

    /// Sends each string of the stored `history` list, then `welcome:{id}`. Fails if the
    /// stored `fail_connect` is set, panics if `panic_connect` is.
    fn on_connect(&mut self, conn: &Connection, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        self.shared.push(format!("connect:{}", conn.id()));
        let history: Vec<String> = ctx.storage().get("history")?.unwrap_or_default();
        for h in history {
            ctx.send(conn, Frame::text(h));
        }
        ctx.send(conn, Frame::text(format!("welcome:{}", conn.id())));
        if ctx.storage().get::<bool>("fail_connect")?.unwrap_or(false) {
            ctx.storage().put("connect_failed", &true)?;
            return Err(RoomError::msg("told to fail on connect"));
        }
        if ctx.storage().get::<bool>("panic_connect")?.unwrap_or(false) {
            panic!("told to panic on connect");
        }
        Ok(())
    }

    fn on_message(&mut self, conn: &Connection, message: Message, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        self.seen += 1;
        match message {
            Message::Text(text) => {
                self.shared.push(format!("message:{}:{text}", conn.id()));
                self.command(conn, &text, ctx)
            }
            Message::Binary(b) => {
                self.shared.push(format!("binary:{}:{}", conn.id(), b.len()));
                ctx.send(conn, Frame::Binary(b));
                Ok(())
            }
        }
    }

    fn on_close(
        &mut self,
        conn: &Connection,
        code: u16,
        reason: &str,
        was_clean: bool,
        _ctx: &mut Context<'_>,
    ) -> Result<(), RoomError> {
        self.shared.push(format!("close:{}:{code}:{reason}:{was_clean}", conn.id()));
        Ok(())
    }

    fn on_error(&mut self, conn: &Connection, error: &str, _ctx: &mut Context<'_>) -> Result<(), RoomError> {
        self.shared.push(format!("error:{}:{error}", conn.id()));
        Ok(())
    }

    fn on_request(
        &mut self,
        req: http::Request<Bytes>,
        ctx: &mut Context<'_>,
    ) -> Result<http::Response<Bytes>, RoomError> {
        self.shared.push(format!("request:{}:{}", req.method(), req.uri().path()));
        let mut hook = self.shared.request.lock().unwrap();
        if let Some(f) = hook.as_mut() {
            return f(req, ctx);
        }
        let body = format!(
            "room={} method={} path={} body={}",
            ctx.room().name,
            req.method(),
            req.uri().path(),
            String::from_utf8_lossy(req.body())
        );
        Ok(http::Response::new(Bytes::from(body)))
    }

    /// Logs `alarm:{name}:{scheduled}:{retry}:{is_retry}:get={alarm}:named={named alarm}` with
    /// what `get_alarm` (and, for a named alarm, `get_named_alarm`) read, then runs the hook.
    fn on_alarm(&mut self, alarm: &AlarmInfo, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        let get = ctx.storage().get_alarm()?;
        let named = match &alarm.name {
            Some(n) => opt(ctx.storage().get_named_alarm(n)?),
            None => "-".to_owned(),
        };
        self.shared.push(format!(
            "alarm:{}:{}:{}:{}:get={}:named={named}",
            alarm.name.as_deref().unwrap_or("-"),
            alarm.scheduled_time,
            alarm.retry_count,
            alarm.is_retry,
            opt(get)
        ));
        let mut hook = self.shared.alarm.lock().unwrap();
        match hook.as_mut() {
            Some(f) => f(alarm, ctx),
            None => Ok(()),
        }
    }
}

/// A room with every default of the trait.
pub(crate) struct PlainRoom;

impl Room for PlainRoom {}

/// A running host over a runtime in a temporary directory, with a manual clock.
pub(crate) struct Env {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) clock: ManualClock,
    pub(crate) rt: Runtime,
    pub(crate) host: RoomHost,
    pub(crate) shared: Arc<Shared>,
    config: HostConfig,
    chat: ChatConfig,
}

/// The chat settings of [`Env::new`]: small, to reach the limits quickly.
pub(crate) fn small_chat() -> ChatConfig {
    ChatConfig { history: 3, max_messages: 5, max_text_bytes: 64 }
}

impl Env {
    /// An environment with the default host settings.
    pub(crate) fn new() -> Env {
        Env::open(HostConfig::default(), small_chat())
    }

    /// An environment with these host settings.
    pub(crate) fn with_config(config: HostConfig) -> Env {
        Env::open(config, small_chat())
    }

    /// An environment with these host and chat settings.
    pub(crate) fn open(config: HostConfig, chat: ChatConfig) -> Env {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let clock = ManualClock::new(NOW);
        let rt = open_runtime(&dir, &clock);
        let shared = Arc::new(Shared::default());
        let host = build_host(&rt, &shared, &config, &chat);
        Env { dir, clock, rt, host, shared, config, chat }
    }

    /// Closes the runtime (the host with it) and opens both again over the same directory,
    /// with the same clock and shared state.
    pub(crate) fn restart(&mut self) {
        self.rt.close();
        self.rt = open_runtime(&self.dir, &self.clock);
        self.host = build_host(&self.rt, &self.shared, &self.config, &self.chat);
    }

    /// The object behind room `room` of party `p`.
    pub(crate) fn obj(&self, room: &str) -> ObjectRef {
        self.obj_in("p", room)
    }

    /// The object behind room `room` of `party`.
    pub(crate) fn obj_in(&self, party: &str, room: &str) -> ObjectRef {
        self.rt.object(party, room).expect("a valid object name")
    }

    /// Waits until every event queued so far on room `room` of `party` has finished and
    /// delivered its output: an empty event on the same object runs after them, and its reply
    /// comes after theirs.
    pub(crate) async fn settle_in(&self, party: &str, room: &str) {
        let obj = self.obj_in(party, room);
        tokio::time::timeout(WAIT, obj.run(|_| Ok::<_, cairn_runtime::Error>(())))
            .await
            .expect("the room settles in time")
            .expect("an empty event succeeds");
    }

    /// [`Env::settle_in`] for party `p`.
    pub(crate) async fn settle(&self, room: &str) {
        self.settle_in("p", room).await;
    }

    /// Lets room `room` of party `p` settle (see [`Env::settle`]), then runs
    /// [`RoomHost::hibernate_idle`]. Without the settling, a frame the test has already
    /// received may belong to an event still counted as pending (delivery comes first), and
    /// the room would not be idle yet.
    pub(crate) async fn hibernate(&self, room: &str) -> usize {
        self.settle(room).await;
        self.host.hibernate_idle()
    }

    /// The log so far.
    pub(crate) fn log(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }

    /// The log so far, emptied.
    pub(crate) fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.shared.log.lock().unwrap())
    }

    /// Asks room `room` of `party` to accept a socket with id `id`; `query` is appended to the
    /// URI's query after `_pk={id}`.
    pub(crate) async fn connect_in(
        &self,
        party: &str,
        room: &str,
        id: &str,
        query: &str,
    ) -> Result<Connected, RoomError> {
        let req = connect_request(party, room, id, query);
        tokio::time::timeout(WAIT, self.host.connect(party, room, req)).await.expect("connect answers in time")
    }

    /// [`Env::connect_in`] for party `p`.
    pub(crate) async fn connect(&self, room: &str, id: &str, query: &str) -> Result<Connected, RoomError> {
        self.connect_in("p", room, id, query).await
    }

    /// Connects to party `p`, expecting acceptance and the `welcome:{id}` frame first.
    pub(crate) async fn join(&self, room: &str, id: &str, query: &str) -> (SocketHandle, Outbound) {
        let (handle, mut rx) = accepted(self.connect(room, id, query).await);
        assert_eq!(recv_text(&mut rx).await, format!("welcome:{id}"));
        (handle, rx)
    }

    /// Sends a text message from `handle` and returns the first frame that comes back.
    pub(crate) async fn ask(handle: &SocketHandle, rx: &mut Outbound, text: &str) -> String {
        handle.message(Message::Text(text.to_owned())).await;
        recv_text(rx).await
    }
}

fn open_runtime(dir: &tempfile::TempDir, clock: &ManualClock) -> Runtime {
    Runtime::builder(dir.path()).shards(1).clock(Arc::new(clock.clone())).open().expect("open the runtime")
}

fn build_host(rt: &Runtime, shared: &Arc<Shared>, config: &HostConfig, chat: &ChatConfig) -> RoomHost {
    let s = Arc::clone(shared);
    let chat = chat.clone();
    RoomHost::builder(rt.clone())
        .room_with("p", move |_info| {
            s.instances.fetch_add(1, Ordering::SeqCst);
            TestRoom { shared: Arc::clone(&s), seen: 0 }
        })
        .room_with("plain", |_| PlainRoom)
        .room_with("chat", move |_| ChatRoom::new(chat.clone()))
        .config(config.clone())
        .build()
        .expect("build the host")
}

/// A connect request for socket `id` of room `room`, `query` appended after `_pk={id}`.
pub(crate) fn connect_request(party: &str, room: &str, id: &str, query: &str) -> ConnectRequest {
    let sep = if query.is_empty() { "" } else { "&" };
    let uri = format!("/parties/{party}/{room}?_pk={id}{sep}{query}");
    ConnectRequest { id: id.to_owned(), uri: uri.parse().expect("a valid URI"), headers: http::HeaderMap::new() }
}

/// The handle and receiver of an accepted connection; panics otherwise.
#[track_caller]
pub(crate) fn accepted(r: Result<Connected, RoomError>) -> (SocketHandle, Outbound) {
    match r {
        Ok(Connected::Accepted(handle, rx)) => (handle, rx),
        Ok(Connected::Refused(refuse)) => panic!("expected acceptance, got a refusal: {refuse:?}"),
        Err(e) => panic!("expected acceptance, got an error: {e} ({})", e.code()),
    }
}

/// The next frame, waiting at most [`WAIT`].
pub(crate) async fn recv(rx: &mut Outbound) -> Frame {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("a frame arrives in time").expect("the socket's channel is open")
}

/// The next frame, which must be a text frame.
pub(crate) async fn recv_text(rx: &mut Outbound) -> String {
    let frame = recv(rx).await;
    frame.as_text().unwrap_or_else(|| panic!("expected a text frame, got {frame:?}")).to_owned()
}

/// Asserts that no frame is waiting (call after [`Env::settle`]).
#[track_caller]
pub(crate) fn assert_quiet(rx: &mut Outbound) {
    match rx.try_recv() {
        Err(TryRecvError::Empty) => {}
        other => panic!("expected no frame, got {other:?}"),
    }
}

/// Every frame waiting now (call after [`Env::settle`]).
pub(crate) fn drain(rx: &mut Outbound) -> Vec<Frame> {
    let mut v = Vec::new();
    while let Ok(f) = rx.try_recv() {
        v.push(f);
    }
    v
}

/// An HTTP request with `method`, `path` and `body`.
pub(crate) fn http_request(method: &str, path: &str, body: &str) -> http::Request<Bytes> {
    http::Request::builder().method(method).uri(path).body(Bytes::from(body.to_owned())).expect("a valid request")
}

/// Runs due alarms, failing if it takes more than [`WAIT`]; returns how many hooks ran.
pub(crate) async fn run_alarms(host: &RoomHost) -> usize {
    tokio::time::timeout(WAIT, host.run_due_alarms())
        .await
        .expect("alarms run in time")
        .expect("the alarm index is readable")
}
