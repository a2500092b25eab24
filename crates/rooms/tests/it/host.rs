//! The host: hooks and their order, refusal and acceptance, sends and the output gate, failing
//! and panicking hooks, HTTP requests, unknown parties, names and connection ids.

use bytes::Bytes;
use cairn_rooms::{Connected, Frame, Message, Refuse, RoomError, RoomHost};

use crate::support::{Env, accepted, assert_quiet, connect_request, drain, http_request, recv, recv_text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_start_runs_once_before_the_first_event_and_reads_storage() {
    let env = Env::new();
    env.obj("r").put("counter", &41i64).await.unwrap();
    let (a, mut rx) = env.join("r", "a", "").await;
    assert_eq!(Env::ask(&a, &mut rx, "echo:one").await, "one");
    let (_b, _rx_b) = env.join("r", "b", "").await;
    assert_eq!(Env::ask(&a, &mut rx, "echo:two").await, "two");
    assert_eq!(
        env.log(),
        [
            "start:41",
            "before_connect:a",
            "connect:a",
            "message:a:echo:one",
            "before_connect:b",
            "connect:b",
            "message:a:echo:two"
        ]
    );
    assert_eq!(env.shared.instances.load(std::sync::atomic::Ordering::SeqCst), 1);
    let stats = env.host.stats();
    assert_eq!(stats.starts, 1);
    assert_eq!(stats.active_rooms, 1);
    assert_eq!(stats.sockets, 2);
    assert_eq!(stats.connections, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_room_gets_its_own_instance() {
    let env = Env::new();
    env.obj("r2").put("counter", &2i64).await.unwrap();
    let (_a, _rx_a) = env.join("r1", "a", "").await;
    let (_b, _rx_b) = env.join("r2", "b", "").await;
    let log = env.log();
    assert!(log.contains(&"start:none".to_owned()), "{log:?}");
    assert!(log.contains(&"start:2".to_owned()), "{log:?}");
    assert_eq!(env.host.stats().active_rooms, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_connect_can_refuse_with_a_status_and_body() {
    let env = Env::new();
    match env.connect("r", "a", "token=wrong").await.unwrap() {
        Connected::Refused(refuse) => {
            assert_eq!(refuse, Refuse { status: 401, body: "bad token".to_owned() });
        }
        Connected::Accepted(..) => panic!("a wrong token must be refused"),
    }
    // Refused: no socket, no on_connect.
    assert_eq!(env.log(), ["start:none", "before_connect:a"]);
    assert_eq!(env.host.stats().sockets, 0);
    assert_eq!(env.host.stats().connections, 0);
    let (a, mut rx) = env.join("r", "a", "token=secret&tags=red,blue").await;
    assert_eq!(Env::ask(&a, &mut rx, "tags").await, "red,blue");
    assert_eq!(Env::ask(&a, &mut rx, "count").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_before_connect_is_an_error_and_adds_no_socket() {
    let env = Env::new();
    let err = env.connect("r", "a", "failbefore").await.unwrap_err();
    assert_eq!(err.code(), "rooms.handler_error");
    assert_eq!(err.to_string(), "told to fail before connecting");
    assert_eq!(env.host.stats().sockets, 0);
    let (a, mut rx) = env.join("r", "b", "").await;
    assert_eq!(Env::ask(&a, &mut rx, "conns").await, "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_connect_frames_arrive_first_and_in_order() {
    let env = Env::new();
    env.obj("r").put("history", &["h1", "h2", "h3"]).await.unwrap();
    let (a, mut rx) = accepted(env.connect("r", "a", "").await);
    for expected in ["h1", "h2", "h3", "welcome:a"] {
        assert_eq!(recv_text(&mut rx).await, expected);
    }
    assert_eq!(a.id(), "a");
    env.settle("r").await;
    assert_quiet(&mut rx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_reaches_the_others_but_not_the_excepted() {
    let env = Env::new();
    let (a, mut rx_a) = env.join("r", "a", "").await;
    let (_b, mut rx_b) = env.join("r", "b", "").await;
    let (_c, mut rx_c) = env.join("r", "c", "").await;
    let (_d, mut rx_d) = env.join("other", "d", "").await;
    assert_eq!(Env::ask(&a, &mut rx_a, "bcast:hello").await, "sent");
    assert_eq!(recv_text(&mut rx_b).await, "hello");
    assert_eq!(recv_text(&mut rx_c).await, "hello");
    env.settle("r").await;
    env.settle("other").await;
    assert_quiet(&mut rx_a);
    assert_quiet(&mut rx_b);
    assert_quiet(&mut rx_c);
    // Another room hears nothing.
    assert_quiet(&mut rx_d);
    // Without exceptions, the sender gets it too.
    a.message(Message::Text("bcastall:all".to_owned())).await;
    for rx in [&mut rx_a, &mut rx_b, &mut rx_c] {
        assert_eq!(recv_text(rx).await, "all");
    }
    // Counted once the delivery is complete.
    env.settle("r").await;
    // Four welcomes, the first broadcast's two frames and `sent`, then three.
    assert_eq!(env.host.stats().messages_out, 4 + 3 + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_accepted_after_a_broadcast_event_never_gets_that_broadcast() {
    let env = Env::new();
    let (a, mut rx_a) = env.join("r", "a", "").await;
    // Queue the broadcast and the connect back to back: the connect's event runs after the
    // broadcast's, possibly before the broadcast's output leaves.
    a.message(Message::Text("bcastall:before-b".to_owned())).await;
    let (_b, mut rx_b) = env.join("r", "b", "").await;
    assert_eq!(recv_text(&mut rx_a).await, "before-b");
    a.message(Message::Text("bcastall:after-b".to_owned())).await;
    assert_eq!(recv_text(&mut rx_a).await, "after-b");
    assert_eq!(recv_text(&mut rx_b).await, "after-b");
    env.settle("r").await;
    assert_quiet(&mut rx_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_leaves_only_once_the_events_write_is_readable() {
    let env = Env::new();
    let (a, mut rx) = env.join("r", "a", "").await;
    let obj = env.obj("r");
    for i in 0..20 {
        a.message(Message::Text(format!("put:k{i}=v{i}"))).await;
    }
    for i in 0..20 {
        // In event order, and each one's write already visible to any reader.
        assert_eq!(recv_text(&mut rx).await, format!("stored:k{i}"));
        assert_eq!(obj.get::<String>(format!("k{i}")).await.unwrap().as_deref(), Some(format!("v{i}").as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_hook_sends_nothing_rolls_back_and_restarts_the_instance() {
    let env = Env::new();
    let (a, mut rx_a) = env.join("r", "a", "").await;
    let (_b, mut rx_b) = env.join("r", "b", "").await;
    assert_eq!(Env::ask(&a, &mut rx_a, "seen").await, "1");
    a.message(Message::Text("fail".to_owned())).await;
    env.settle("r").await;
    assert_quiet(&mut rx_a);
    assert_quiet(&mut rx_b);
    let obj = env.obj("r");
    assert_eq!(obj.get::<String>("failed").await.unwrap(), None);
    assert_eq!(obj.get_alarm().await.unwrap(), None);
    assert_eq!(env.host.stats().handler_errors, 1);
    // The sockets stay; the next event starts a new instance (on_start, then the event).
    env.take_log();
    assert_eq!(Env::ask(&a, &mut rx_a, "seen").await, "1");
    assert_eq!(env.take_log(), ["start:none", "message:a:seen"]);
    assert_eq!(env.shared.instances.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(Env::ask(&a, &mut rx_a, "count").await, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_on_start_fails_the_event_and_is_retried_by_the_next() {
    let env = Env::new();
    env.shared.fail_start.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = env.connect("r", "a", "").await.unwrap_err();
    assert_eq!(err.to_string(), "told to fail on start");
    assert_eq!(env.host.stats().sockets, 0);
    assert_eq!(env.host.stats().starts, 0);
    env.shared.fail_start.store(false, std::sync::atomic::Ordering::SeqCst);
    let (a, mut rx) = env.join("r", "a", "").await;
    assert_eq!(Env::ask(&a, &mut rx, "whoami").await, "a");
    assert_eq!(env.host.stats().starts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_on_connect_is_an_error_rolls_back_and_leaves_no_socket() {
    let env = Env::new();
    let (a, mut rx_a) = env.join("r", "a", "").await;
    env.obj("r").put("fail_connect", &true).await.unwrap();
    let err = env.connect("r", "b", "").await.unwrap_err();
    assert_eq!(err.to_string(), "told to fail on connect");
    assert_eq!(env.obj("r").get::<bool>("connect_failed").await.unwrap(), None);
    assert_eq!(env.host.stats().sockets, 1);
    assert_eq!(Env::ask(&a, &mut rx_a, "conns").await, "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_hook_does_not_poison_the_room() {
    let env = Env::new();
    let (a, mut rx_a) = env.join("r", "a", "").await;
    let (b, mut rx_b) = env.join("r", "b", "").await;
    a.message(Message::Text("panic".to_owned())).await;
    env.settle("r").await;
    assert_quiet(&mut rx_a);
    assert_eq!(env.obj("r").get::<String>("panicked").await.unwrap(), None);
    // The room goes on: a new instance serves both sockets, with their state intact.
    env.take_log();
    assert_eq!(Env::ask(&b, &mut rx_b, "seen").await, "1");
    assert_eq!(env.take_log(), ["start:none", "message:b:seen"]);
    assert_eq!(Env::ask(&a, &mut rx_a, "conns").await, "b,a");
    assert_eq!(Env::ask(&a, &mut rx_a, "put:x=1").await, "stored:x");
    let (_c, _rx_c) = env.join("r", "c", "").await;
    assert_eq!(env.host.stats().sockets, 3);
    assert_eq!(env.host.request("p", "r", http_request("GET", "/", "")).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_hook_counts_as_a_handler_error() {
    let env = Env::new();
    let (a, mut rx) = env.join("r", "a", "").await;
    a.message(Message::Text("panic".to_owned())).await;
    env.settle("r").await;
    assert_quiet(&mut rx);
    // RoomStats::handler_errors: "Hooks that failed (their events rolled back)".
    assert_eq!(env.host.stats().handler_errors, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_on_connect_leaves_no_socket_behind() {
    let env = Env::new();
    let (a, mut rx_a) = env.join("r", "a", "").await;
    env.obj("r").put("panic_connect", &true).await.unwrap();
    let err = env.connect("r", "b", "").await.unwrap_err();
    assert_eq!(err.code(), "runtime.event_panicked");
    env.obj("r").delete("panic_connect").await.unwrap();
    // As with an on_connect that returns Err: the socket was never accepted.
    assert_eq!(Env::ask(&a, &mut rx_a, "conns").await, "a");
    assert_eq!(env.host.stats().sockets, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_in_a_failed_hook_is_dropped_with_its_other_output() {
    let env = Env::new();
    let (a, mut rx_a) = env.join("r", "a", "").await;
    let (b, mut rx_b) = env.join("r", "b", "").await;
    a.message(Message::Text("closefail".to_owned())).await;
    env.settle("r").await;
    // The hook failed, so its output (the close included) is dropped: `a` is still open...
    assert_quiet(&mut rx_a);
    // ...and still a member of the room: it gets broadcasts and is listed.
    assert_eq!(Env::ask(&b, &mut rx_b, "conns").await, "b,a");
    b.message(Message::Text("bcast:still-here".to_owned())).await;
    assert_eq!(recv_text(&mut rx_a).await, "still-here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_can_close_a_socket() {
    let env = Env::new();
    let (a, mut rx_a) = env.join("r", "a", "").await;
    let (b, mut rx_b) = env.join("r", "b", "").await;
    a.message(Message::Text("close:4001:go away".to_owned())).await;
    assert_eq!(recv(&mut rx_a).await, Frame::Close { code: 4001, reason: "go away".to_owned() });
    assert_eq!(Env::ask(&b, &mut rx_b, "conns").await, "b");
    // The transport then reports the close: no on_close for a socket the room closed itself.
    env.take_log();
    a.closed(4001, "go away".to_owned(), true).await;
    env.settle("r").await;
    assert_eq!(env.take_log(), Vec::<String>::new());
    assert_eq!(env.host.stats().sockets, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_socket_runs_on_close_and_leaves_the_room() {
    let env = Env::new();
    let (a, _rx_a) = env.join("r", "a", "").await;
    let (b, mut rx_b) = env.join("r", "b", "").await;
    let (c, _rx_c) = env.join("r", "c", "").await;
    env.take_log();
    a.closed(1000, "bye".to_owned(), true).await;
    c.closed(1006, "WebSocket disconnected without sending Close frame.".to_owned(), false).await;
    assert_eq!(Env::ask(&b, &mut rx_b, "conns").await, "b");
    assert_eq!(
        env.take_log(),
        [
            "close:a:1000:bye:true",
            "close:c:1006:WebSocket disconnected without sending Close frame.:false",
            "message:b:conns"
        ]
    );
    b.message(Message::Text("bcast:x".to_owned())).await;
    assert_eq!(recv_text(&mut rx_b).await, "sent");
    assert_eq!(env.host.stats().sockets, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_error_runs_on_error() {
    let env = Env::new();
    let (a, mut rx) = env.join("r", "a", "").await;
    env.take_log();
    a.error("invalid frame".to_owned()).await;
    assert_eq!(Env::ask(&a, &mut rx, "count").await, "1");
    assert_eq!(env.take_log(), ["error:a:invalid frame", "message:a:count"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_messages_reach_on_message() {
    let env = Env::new();
    let (a, mut rx) = env.join("r", "a", "").await;
    a.message(Message::Binary(Bytes::from_static(&[0, 159, 146, 150]))).await;
    assert_eq!(recv(&mut rx).await, Frame::binary(Bytes::from_static(&[0, 159, 146, 150])));
    assert!(env.log().contains(&"binary:a:4".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_request_hook_answers_404() {
    let env = Env::new();
    let res = env.host.request("plain", "r", http_request("GET", "/parties/plain/r", "")).await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.body().as_ref(), b"Not Found");
    // The default room also accepts sockets, hibernatable and untagged.
    let (_a, mut rx) = accepted(env.connect_in("plain", "r", "a", "").await);
    env.settle_in("plain", "r").await;
    assert_quiet(&mut rx);
    assert_eq!(env.host.stats().requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_hook_answers_with_its_response_once_its_writes_are_durable() {
    let env = Env::new();
    let res = env.host.request("p", "r", http_request("POST", "/parties/p/r/sub", "hi")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.body().as_ref(), b"room=r method=POST path=/parties/p/r/sub body=hi");

    env.shared.set_request_hook(|req, ctx| {
        let n = ctx.storage().update("hits", 0i64, |n| n + 1)?;
        let mut res = http::Response::new(Bytes::from(format!("hit {n} {}", req.uri().path())));
        *res.status_mut() = http::StatusCode::CREATED;
        res.headers_mut().insert("x-room", http::HeaderValue::from_static("yes"));
        Ok(res)
    });
    for n in 1..=3 {
        let res = env.host.request("p", "r", http_request("PUT", "/x", "")).await.unwrap();
        assert_eq!(res.status(), 201);
        assert_eq!(res.headers()["x-room"], "yes");
        assert_eq!(res.body().as_ref(), format!("hit {n} /x").as_bytes());
        assert_eq!(env.obj("r").get::<i64>("hits").await.unwrap(), Some(n));
    }
    // A failing request hook: an error, its writes rolled back.
    env.shared.set_request_hook(|_, ctx| {
        ctx.storage().put("hits", &100i64)?;
        Err(RoomError::msg("no"))
    });
    let err = env.host.request("p", "r", http_request("GET", "/", "")).await.unwrap_err();
    assert_eq!(err.code(), "rooms.handler_error");
    assert_eq!(env.obj("r").get::<i64>("hits").await.unwrap(), Some(3));
    // The failure discarded the instance: the next request starts a new one.
    *env.shared.request.lock().unwrap() = None;
    assert_eq!(env.log().iter().filter(|l| l.starts_with("start")).count(), 1);
    env.host.request("p", "r", http_request("GET", "/", "")).await.unwrap();
    assert_eq!(env.log().iter().filter(|l| l.starts_with("start")).count(), 2);
    assert_eq!(env.host.stats().requests, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_party_is_an_error() {
    let env = Env::new();
    let err = env.connect_in("nope", "r", "a", "").await.unwrap_err();
    assert!(matches!(err, RoomError::UnknownParty { ref party } if party == "nope"), "{err:?}");
    assert_eq!(err.code(), "rooms.unknown_party");
    assert!(err.is_client_error());
    let err = env.host.request("nope", "r", http_request("GET", "/", "")).await.unwrap_err();
    assert_eq!(err.code(), "rooms.unknown_party");
    assert!(!env.host.has_party("nope"));
    assert!(env.host.has_party("p"));
    assert_eq!(env.host.parties(), ["chat", "p", "plain"]);
    assert_eq!(env.host.stats().active_rooms, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_room_name_is_an_error_not_a_panic() {
    let env = Env::new();
    let long = "x".repeat(1025);
    for name in ["", "a\0b", long.as_str()] {
        let req = cairn_rooms::ConnectRequest {
            id: "a".to_owned(),
            uri: "/parties/p/x".parse().unwrap(),
            headers: http::HeaderMap::new(),
        };
        let err = env.host.connect("p", name, req).await.unwrap_err();
        assert_eq!(err.code(), "storage.invalid_name", "{name:?}: {err}");
        assert!(err.is_client_error());
        let err = env.host.request("p", name, http_request("GET", "/", "")).await.unwrap_err();
        assert_eq!(err.code(), "storage.invalid_name");
    }
    // The host is fine afterwards.
    let (a, mut rx) = env.join("r", "a", "").await;
    assert_eq!(Env::ask(&a, &mut rx, "whoami").await, "a");
    assert_eq!(env.host.stats().active_rooms, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_or_reserved_party_names_are_refused_at_build() {
    let dir = tempfile::tempdir().unwrap();
    let rt = cairn_runtime::Runtime::builder(dir.path()).shards(1).open().unwrap();
    for party in ["has space", "_cairn_x", ""] {
        let r = RoomHost::builder(rt.clone()).room_with(party, |_| crate::support::PlainRoom).build();
        assert!(r.is_err(), "{party:?} was accepted");
    }
    let host = RoomHost::builder(rt.clone()).room::<DefaultRoom>("ok-party.v1").build().unwrap();
    assert_eq!(host.parties(), ["ok-party.v1"]);
    rt.close();
}

#[derive(Default)]
struct DefaultRoom;

impl cairn_rooms::Room for DefaultRoom {}

#[test]
fn query_params_are_found_and_percent_decoded() {
    let req = connect_request("p", "r", "abc%20d", "x=1+2&empty=&flag&enc=%E2%9C%93%2F");
    assert_eq!(req.query_param("_pk").as_deref(), Some("abc d"));
    assert_eq!(req.query_param("x").as_deref(), Some("1 2"));
    assert_eq!(req.query_param("empty").as_deref(), Some(""));
    assert_eq!(req.query_param("flag").as_deref(), Some(""));
    assert_eq!(req.query_param("enc").as_deref(), Some("✓/"));
    assert_eq!(req.query_param("missing"), None);
    let bare = cairn_rooms::ConnectRequest {
        id: "x".to_owned(),
        uri: "/parties/p/r".parse().unwrap(),
        headers: http::HeaderMap::new(),
    };
    assert_eq!(bare.query_param("_pk"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_id_is_the_one_requested() {
    let env = Env::new();
    let (a, mut rx) = env.join("r", "client-7", "").await;
    assert_eq!(a.id(), "client-7");
    assert_eq!(Env::ask(&a, &mut rx, "whoami").await, "client-7");
    assert_eq!(env.log()[1], "before_connect:client-7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_with_the_same_id_replaces_the_old_socket() {
    let env = Env::new();
    let (old, mut rx_old) = env.join("r", "a", "tags=old").await;
    let (b, mut rx_b) = env.join("r", "b", "").await;
    let (new, mut rx_new) = env.join("r", "a", "tags=new").await;
    assert_eq!(
        recv(&mut rx_old).await,
        Frame::Close { code: 1000, reason: "replaced by a newer connection".to_owned() }
    );
    assert_eq!(Env::ask(&b, &mut rx_b, "conns").await, "a,b");
    assert_eq!(Env::ask(&new, &mut rx_new, "tags").await, "new");
    assert_eq!(env.host.stats().sockets, 2);
    // The old socket's close is reported later: it must not close the new one.
    env.take_log();
    old.closed(1000, "replaced".to_owned(), true).await;
    env.settle("r").await;
    assert_eq!(env.take_log(), Vec::<String>::new());
    b.message(Message::Text("bcast:to-a".to_owned())).await;
    assert_eq!(recv_text(&mut rx_new).await, "to-a");
    env.settle("r").await;
    assert!(drain(&mut rx_old).is_empty());
    assert_eq!(env.host.stats().sockets, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_stops_reading_overflows_its_queue_and_nothing_else_is_held() {
    let config = cairn_rooms::HostConfig { max_queued_bytes: 1_000, ..cairn_rooms::HostConfig::default() };
    let env = Env::with_config(config);
    let (slow, rx_slow) = env.join("r", "slow", "").await;
    let (a, mut rx_a) = env.join("r", "a", "").await;
    let payload = "x".repeat(100);
    // Ten broadcasts of 100 bytes fit in the slow socket's 1,000-byte queue (its welcome was
    // taken); the eleventh does not.
    for _ in 0..10 {
        assert_eq!(Env::ask(&a, &mut rx_a, &format!("bcast:{payload}")).await, "sent");
    }
    assert_eq!(rx_slow.queued_bytes(), 1_000);
    assert_eq!(Env::ask(&a, &mut rx_a, &format!("bcast:{payload}")).await, "sent");
    rx_slow.overflowed().await;
    assert_eq!(rx_slow.queued_bytes(), 1_000, "nothing more is queued once it overflowed");
    assert!(rx_slow.overflow_reason().contains("1000 bytes"), "{}", rx_slow.overflow_reason());
    // The transport gives up on it and reports it closed; the room hears `on_close`.
    env.take_log();
    slow.closed(cairn_rooms::OVERFLOW_CLOSE_CODE, rx_slow.overflow_reason(), false).await;
    assert_eq!(Env::ask(&a, &mut rx_a, "conns").await, "a");
    let log = env.take_log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[0].starts_with("close:slow:1008:send queue over 1000 bytes"), "{log:?}");
    // The sender was never slowed down or dropped.
    assert_eq!(Env::ask(&a, &mut rx_a, "echo:still here").await, "still here");
}
