//! The example room through the room host: refusal, welcome, broadcast, HTTP, named alarm.

use std::sync::Arc;
use std::time::Duration;

use cairn_rooms::Outbound;
use cairn_rooms::{ConnectRequest, Connected, Message, RoomHost, SocketHandle};
use counter_room::{Counter, Update};

async fn join(host: &RoomHost, name: &str) -> Connected {
    let uri = format!("/parties/counter/r?name={name}").parse().expect("uri");
    host.connect("counter", "r", ConnectRequest { id: name.to_owned(), uri, headers: Default::default() })
        .await
        .expect("connect")
}

async fn next(rx: &mut Outbound) -> Update {
    let frame = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("a frame in time").expect("open");
    serde_json::from_str(frame.as_text().expect("text")).expect("an update")
}

fn accepted(c: Connected) -> (SocketHandle, Outbound) {
    match c {
        Connected::Accepted(h, rx) => (h, rx),
        Connected::Refused(r) => panic!("refused: {r:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_room_counts_greets_answers_http_and_resets_on_its_alarm() {
    let dir = tempfile::tempdir().expect("tempdir");
    // An hour boundary plus a minute: the named alarm is due within the next hour.
    let clock = cairn_storage::ManualClock::new(1_800_000_000_000 + 60_000);
    let rt = cairn_runtime::Runtime::builder(dir.path()).shards(1).clock(Arc::new(clock.clone())).open().expect("rt");
    let host = RoomHost::builder(rt.clone()).room::<Counter>("counter").build().expect("host");

    let uri = "/parties/counter/r".parse().expect("uri");
    let refused = host
        .connect("counter", "r", ConnectRequest { id: "x".into(), uri, headers: Default::default() })
        .await
        .expect("connect");
    assert!(matches!(refused, Connected::Refused(r) if r.status == 403));

    let (ann, mut ann_rx) = accepted(join(&host, "ann").await);
    assert_eq!(next(&mut ann_rx).await, Update::Welcome { count: 0, here: vec!["ann".into()] });
    let (bob, mut bob_rx) = accepted(join(&host, "bob").await);
    assert_eq!(next(&mut bob_rx).await, Update::Welcome { count: 0, here: vec!["ann".into(), "bob".into()] });

    ann.message(Message::Text("inc".into())).await;
    assert_eq!(next(&mut bob_rx).await, Update::Count { count: 1, by: "ann".into() });
    assert_eq!(next(&mut ann_rx).await, Update::Count { count: 1, by: "ann".into() });

    let res = host
        .request(
            "counter",
            "r",
            cairn_rooms::http::Request::get("/parties/counter/r").body(Default::default()).expect("req"),
        )
        .await
        .expect("request");
    let body: serde_json::Value = serde_json::from_slice(res.body()).expect("json");
    assert_eq!(body, serde_json::json!({"count": 1, "connections": 2}));

    bob.message(Message::Text("reset-later".into())).await;
    bob.message(Message::Text("inc".into())).await;
    assert_eq!(next(&mut ann_rx).await, Update::Count { count: 2, by: "bob".into() });
    assert_eq!(host.run_due_alarms().await.expect("alarms"), 0, "not due before the hour");
    clock.advance(3_600_000);
    assert_eq!(host.run_due_alarms().await.expect("alarms"), 1);
    assert_eq!(next(&mut ann_rx).await, Update::Count { count: 0, by: "alarm".into() });
    assert_eq!(rt.object("counter", "r").expect("obj").get::<i64>("count").await.expect("get"), Some(0));
    rt.close();
}
