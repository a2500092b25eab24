//! Hibernation (spec §6): idle instances are dropped while their sockets stay open with their
//! tags, attachments and the auto-response; the next event starts the room again. Plus the
//! limits of spec §6 with their exact messages.

use std::sync::atomic::Ordering;
use std::time::Duration;

use cairn_rooms::{
    AutoResponse, Connected, HostConfig, MAX_ATTACHMENT_BYTES, MAX_AUTO_RESPONSE_BYTES, MAX_SOCKETS_PER_ROOM,
    MAX_TAG_CHARS, MAX_TAGS, Message, RoomError,
};
use tokio::sync::mpsc::error::TryRecvError;

use crate::support::{Env, NOW, assert_quiet, recv_text};

fn ten_seconds() -> HostConfig {
    HostConfig { hibernate_after: Duration::from_secs(10), ..HostConfig::default() }
}

fn env() -> Env {
    Env::with_config(ten_seconds())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_room_hibernates_after_hibernate_after_and_not_before() {
    let env = env();
    let (_a, mut rx_a) = env.join("r", "a", "").await;
    let (_b, mut rx_b) = env.join("r", "b", "").await;
    env.clock.advance(9_999);
    assert_eq!(env.hibernate("r").await, 0);
    let stats = env.host.stats();
    assert_eq!((stats.active_rooms, stats.hibernated_rooms, stats.hibernations), (1, 0, 0));
    env.clock.advance(1);
    assert_eq!(env.hibernate("r").await, 1);
    let stats = env.host.stats();
    assert_eq!((stats.active_rooms, stats.hibernated_rooms, stats.hibernations), (0, 1, 1));
    assert_eq!(stats.sockets, 2);
    // The sockets stay open.
    assert!(matches!(rx_a.try_recv(), Err(TryRecvError::Empty)));
    assert!(matches!(rx_b.try_recv(), Err(TryRecvError::Empty)));
    // A hibernating room is not hibernated again.
    env.clock.advance(60_000);
    assert_eq!(env.hibernate("r").await, 0);
    assert_eq!(env.host.stats().hibernations, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_resets_the_idle_time() {
    let env = env();
    let (a, mut rx) = env.join("r", "a", "").await;
    env.clock.advance(9_000);
    assert_eq!(Env::ask(&a, &mut rx, "echo:x").await, "x");
    env.clock.advance(9_000);
    assert_eq!(env.hibernate("r").await, 0);
    env.clock.advance(1_000);
    assert_eq!(env.hibernate("r").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_message_wakes_the_room_with_on_start_then_on_message() {
    let env = env();
    env.obj("r").put("counter", &7i64).await.unwrap();
    let (a, mut rx) = env.join("r", "a", "").await;
    assert_eq!(Env::ask(&a, &mut rx, "seen").await, "1");
    env.clock.advance(10_000);
    assert_eq!(env.hibernate("r").await, 1);
    env.take_log();
    assert_eq!(Env::ask(&a, &mut rx, "seen").await, "1");
    assert_eq!(env.take_log(), ["start:7", "message:a:seen"]);
    let stats = env.host.stats();
    assert_eq!((stats.starts, stats.wakeups), (2, 1));
    assert_eq!((stats.active_rooms, stats.hibernated_rooms), (1, 0));
    assert_eq!(env.shared.instances.load(Ordering::SeqCst), 2);
    // Awake again, the room hibernates again after another idle period.
    env.clock.advance(10_000);
    assert_eq!(env.hibernate("r").await, 1);
    assert_eq!(env.host.stats().hibernations, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hibernating_rooms_storage_is_closed_and_reopened_by_the_next_event() {
    let env = env();
    env.obj("r").put("counter", &7i64).await.unwrap();
    let (a, mut rx) = env.join("r", "a", "").await;
    let (_b, _rx_b) = env.join("quiet", "b", "").await; // a room that never writes
    assert_eq!(env.rt.stats().open_objects, 2);
    env.clock.advance(10_000);
    env.settle("quiet").await;
    assert_eq!(env.hibernate("r").await, 2);
    // The runtime has one shard, whose commands run in order: an event on a third object runs
    // after the two closes the hibernation asked for.
    env.settle("barrier").await;
    assert_eq!(env.rt.stats().open_objects, 1, "only the barrier's object is open");
    // The room that never wrote left no file behind; the other's data is intact.
    assert!(!cairn_storage::layout::object_path(env.dir.path(), "p", "quiet").exists());
    assert!(cairn_storage::layout::object_path(env.dir.path(), "p", "r").exists());
    assert_eq!(Env::ask(&a, &mut rx, "seen").await, "1");
    assert_eq!(env.take_log().iter().rfind(|l| l.starts_with("start:")).unwrap(), "start:7");
    assert_eq!(env.rt.stats().open_objects, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_connection_wakes_a_hibernating_room() {
    let env = env();
    let (a, mut rx_a) = env.join("r", "a", "").await;
    env.clock.advance(10_000);
    assert_eq!(env.hibernate("r").await, 1);
    env.take_log();
    let (_b, _rx_b) = env.join("r", "b", "").await;
    assert_eq!(env.take_log(), ["start:none", "before_connect:b", "connect:b"]);
    assert_eq!(env.host.stats().wakeups, 1);
    assert_eq!(Env::ask(&a, &mut rx_a, "conns").await, "b,a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_and_attachments_survive_hibernation() {
    let env = env();
    let (a, mut rx_a) = env.join("r", "a", "tags=x,y").await;
    let (b, mut rx_b) = env.join("r", "b", "tags=y").await;
    assert_eq!(Env::ask(&a, &mut rx_a, "attach:100").await, "attach:ok");
    env.clock.advance(10_000);
    assert_eq!(env.hibernate("r").await, 1);
    assert_eq!(Env::ask(&a, &mut rx_a, "tags").await, "x,y");
    assert_eq!(Env::ask(&a, &mut rx_a, "getattach").await, "attachment:100");
    assert_eq!(Env::ask(&b, &mut rx_b, "getattach").await, "attachment:none");
    assert_eq!(Env::ask(&b, &mut rx_b, "tagged:y").await, "a,b");
    assert_eq!(Env::ask(&b, &mut rx_b, "tagged:x").await, "a");
    assert_eq!(env.host.stats().wakeups, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_hibernatable_socket_keeps_the_instance() {
    let env = env();
    let (a, mut rx_a) = env.join("r", "a", "hib=0").await;
    let (_b, _rx_b) = env.join("r", "b", "").await;
    env.clock.advance(60_000);
    assert_eq!(env.hibernate("r").await, 0);
    let stats = env.host.stats();
    assert_eq!((stats.active_rooms, stats.hibernated_rooms, stats.hibernations), (1, 0, 0));
    assert_eq!(Env::ask(&a, &mut rx_a, "seen").await, "1");
    assert_eq!(env.host.stats().starts, 1);
    // Once it is gone, the room may hibernate.
    a.closed(1000, String::new(), true).await;
    env.settle("r").await;
    env.clock.advance(10_000);
    assert_eq!(env.hibernate("r").await, 1);
    assert_eq!(env.host.stats().hibernated_rooms, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_without_sockets_is_dropped_and_forgotten() {
    let env = env();
    let res = env.host.request("p", "r", crate::support::http_request("GET", "/", "")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(env.host.stats().active_rooms, 1);
    env.clock.advance(10_000);
    assert_eq!(env.hibernate("r").await, 1);
    let stats = env.host.stats();
    assert_eq!((stats.active_rooms, stats.hibernated_rooms, stats.sockets), (0, 0, 0));
    // And comes back on demand.
    env.host.request("p", "r", crate::support::http_request("GET", "/", "")).await.unwrap();
    assert_eq!(env.host.stats().starts, 2);
    assert_eq!(env.host.stats().wakeups, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auto_response_answers_without_waking_the_room() {
    let env = env();
    let (a, mut rx_a) = env.join("r", "a", "").await;
    let (b, mut rx_b) = env.join("r", "b", "").await;
    assert_eq!(Env::ask(&a, &mut rx_a, "auto:ping:pong").await, "ok");
    env.clock.advance(10_000);
    assert_eq!(env.hibernate("r").await, 1);
    env.take_log();
    env.clock.advance(1_234);
    let ping_at = NOW + 11_234;
    a.message(Message::Text("ping".to_owned())).await;
    assert_eq!(recv_text(&mut rx_a).await, "pong");
    env.settle("r").await;
    assert_quiet(&mut rx_b);
    // No on_start, no on_message: still hibernating.
    assert_eq!(env.take_log(), Vec::<String>::new());
    let stats = env.host.stats();
    assert_eq!((stats.auto_responses, stats.wakeups, stats.hibernated_rooms), (1, 0, 1));
    assert_eq!(env.shared.instances.load(Ordering::SeqCst), 1);
    // Only an exact text match is answered: anything else wakes the room.
    b.message(Message::Binary(bytes::Bytes::from_static(b"ping"))).await;
    assert_eq!(crate::support::recv(&mut rx_b).await, cairn_rooms::Frame::binary(&b"ping"[..]));
    assert_eq!(env.take_log(), ["start:none", "binary:b:4"]);
    assert_eq!(Env::ask(&b, &mut rx_b, "ping ").await, "unknown command \"ping \"");
    // The timestamp is per socket.
    assert_eq!(Env::ask(&a, &mut rx_a, "autots").await, format!("autots:{ping_at}"));
    assert_eq!(Env::ask(&b, &mut rx_b, "autots").await, "autots:none");
    // Cleared, "ping" reaches the room.
    assert_eq!(Env::ask(&a, &mut rx_a, "autoclear").await, "ok");
    assert_eq!(Env::ask(&a, &mut rx_a, "ping").await, "unknown command \"ping\"");
    assert_eq!(env.host.stats().auto_responses, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_newest_first_and_tagged_ones_in_acceptance_order() {
    let env = env();
    let (a, mut rx_a) = env.join("r", "a", "tags=x").await;
    let (b, _rx_b) = env.join("r", "b", "tags=x,y").await;
    let (_c, _rx_c) = env.join("r", "c", "tags=y,x").await;
    assert_eq!(Env::ask(&a, &mut rx_a, "conns").await, "c,b,a");
    assert_eq!(Env::ask(&a, &mut rx_a, "tagged:x").await, "a,b,c");
    assert_eq!(Env::ask(&a, &mut rx_a, "tagged:y").await, "b,c");
    assert_eq!(Env::ask(&a, &mut rx_a, "tagged:zzz").await, "");
    // After hibernation the orders are the same.
    env.clock.advance(10_000);
    assert_eq!(env.hibernate("r").await, 1);
    assert_eq!(Env::ask(&a, &mut rx_a, "conns").await, "c,b,a");
    assert_eq!(Env::ask(&a, &mut rx_a, "tagged:x").await, "a,b,c");
    b.closed(1000, String::new(), true).await;
    assert_eq!(Env::ask(&a, &mut rx_a, "conns").await, "c,a");
    assert_eq!(Env::ask(&a, &mut rx_a, "tagged:y").await, "c");
}

#[test]
fn the_limits_are_those_of_the_spec() {
    assert_eq!(MAX_TAGS, 10);
    assert_eq!(MAX_TAG_CHARS, 256);
    assert_eq!(MAX_ATTACHMENT_BYTES, 16_384);
    assert_eq!(MAX_AUTO_RESPONSE_BYTES, 2048);
    assert_eq!(MAX_SOCKETS_PER_ROOM, 32_768);
}

fn tag_list(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("t{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_distinct_tags_are_accepted_and_an_eleventh_element_is_not_even_a_duplicate() {
    let env = env();
    let ten = tag_list(10).join(",");
    let (a, mut rx) = env.join("r", "a", &format!("tags={ten}")).await;
    assert_eq!(Env::ask(&a, &mut rx, "tags").await, ten);
    let before = env.host.stats().sockets;
    for extra in ["t10", "t0", "t9"] {
        let err = env.connect("r", "b", &format!("tags={ten},{extra}")).await.unwrap_err();
        assert!(matches!(err, RoomError::TooManyTags { max: 10 }), "{err:?}");
        assert_eq!(err.code(), "rooms.too_many_tags");
        assert_eq!(err.to_string(), "a Hibernatable WebSocket cannot have more than 10 tags");
    }
    assert_eq!(env.host.stats().sockets, before);
    // Eleven elements with a duplicate among the first ten: ten distinct tags, accepted.
    let (c, mut rx_c) = env.join("r", "c", &format!("tags=t0,t0,{}", tag_list(10)[1..].join(","))).await;
    assert_eq!(Env::ask(&c, &mut rx_c, "tags").await, ten);
    // Duplicates are dropped.
    let (d, mut rx_d) = env.join("r", "d", "tags=u,v,u,v").await;
    assert_eq!(Env::ask(&d, &mut rx_d, "tags").await, "u,v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_may_have_256_characters_and_no_more() {
    let env = env();
    let t256 = "a".repeat(256);
    let (a, mut rx) = env.join("r", "a", &format!("tags={t256}")).await;
    assert_eq!(Env::ask(&a, &mut rx, "tags").await, t256);
    // Characters, not bytes: 256 two-byte characters are fine.
    let e256 = "%C3%A9".repeat(256);
    let (b, mut rx_b) = env.join("r", "b", &format!("tags={e256}")).await;
    assert_eq!(Env::ask(&b, &mut rx_b, "tags").await, "é".repeat(256));
    let t257 = "a".repeat(257);
    let err = env.connect("r", "c", &format!("tags=ok,{t257}")).await.unwrap_err();
    assert!(matches!(err, RoomError::TagTooLong { max: 256, .. }), "{err:?}");
    assert_eq!(err.code(), "rooms.tag_too_long");
    assert_eq!(err.to_string(), format!("\"{t257}\" is longer than the max tag length (256 characters)."));
    assert_eq!(env.host.stats().sockets, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attachment_may_have_16384_bytes_and_no_more() {
    let env = env();
    let (a, mut rx) = env.join("r", "a", "").await;
    assert_eq!(Env::ask(&a, &mut rx, "attach:16384").await, "attach:ok");
    let reply = Env::ask(&a, &mut rx, "attach:16385").await;
    let (code, message) = reply.strip_prefix("attach:err:").and_then(|r| r.split_once(':')).expect(&reply);
    assert_eq!(code, "rooms.attachment_too_large");
    assert!(message.starts_with("A WebSocket 'attachment' cannot be larger than 16384 bytes."), "{message}");
    assert!(message.ends_with("'attachment' was 16385 bytes."), "{message}");
    // The refused attachment did not replace the one before.
    assert_eq!(Env::ask(&a, &mut rx, "getattach").await, "attachment:16384");
    assert_eq!(Env::ask(&a, &mut rx, "attach:0").await, "attach:ok");
    assert_eq!(Env::ask(&a, &mut rx, "getattach").await, "attachment:0");
}

#[test]
fn an_auto_response_may_have_2048_bytes_and_no_more() {
    let max = "x".repeat(2048);
    let pair = AutoResponse::new(max.clone(), max.clone()).unwrap();
    assert_eq!((pair.request.len(), pair.response.len()), (2048, 2048));
    let err = AutoResponse::new("x".repeat(2049), "pong").unwrap_err();
    assert!(matches!(err, RoomError::AutoResponseTooLarge { what: "Request", size: 2049, max: 2048 }), "{err:?}");
    assert_eq!(err.code(), "rooms.auto_response_too_large");
    assert_eq!(err.to_string(), "Request cannot be larger than 2048 bytes. A request of size 2049 was provided.");
    let err = AutoResponse::new("ping", "é".repeat(1025)).unwrap_err();
    assert_eq!(err.to_string(), "Response cannot be larger than 2048 bytes. A response of size 2050 was provided.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_large_auto_response_fails_the_hook() {
    let env = env();
    let (a, mut rx) = env.join("r", "a", "").await;
    let big = "x".repeat(2049);
    a.message(Message::Text(format!("auto:{big}:pong"))).await;
    env.settle("r").await;
    assert_quiet(&mut rx);
    assert_eq!(env.host.stats().handler_errors, 1);
    // Nothing was set.
    a.message(Message::Text(big)).await;
    assert!(recv_text(&mut rx).await.starts_with("unknown command"));
    assert_eq!(env.host.stats().auto_responses, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_to_a_hibernating_room_leaves_it_hibernating_sockets_intact() {
    let env = env();
    let (a, mut rx) = env.join("r", "a", "tags=keep").await;
    env.clock.advance(10_000);
    assert_eq!(env.hibernate("r").await, 1);
    match env.connect("r", "b", "token=bad").await.unwrap() {
        Connected::Refused(r) => assert_eq!(r.status, 401),
        Connected::Accepted(..) => panic!("must be refused"),
    }
    assert_eq!(Env::ask(&a, &mut rx, "tags").await, "keep");
    assert_eq!(env.host.stats().sockets, 1);
}
