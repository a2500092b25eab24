//! The built-in chat room (`cairn_rooms::builtin::chat`), party `chat` with history 3, at
//! most 5 messages kept and 64-byte texts.

use bytes::Bytes;
use cairn_rooms::Outbound;
use cairn_rooms::builtin::chat::{ChatConfig, ChatMessage};
use cairn_rooms::{Frame, HostConfig, Message, SocketHandle};
use cairn_storage::ListOptions;
use serde_json::{Value, json};

use crate::support::{Env, NOW, accepted, assert_quiet, recv, recv_text};

async fn recv_json(rx: &mut Outbound) -> Value {
    let text = recv_text(rx).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Connects `id` to chat room `room`; returns the handle, the receiver and the history frame.
async fn join(env: &Env, room: &str, id: &str) -> (SocketHandle, Outbound, Value) {
    let (handle, mut rx) = accepted(env.connect_in("chat", room, id, "").await);
    let history = recv_json(&mut rx).await;
    assert_eq!(history["type"], "history", "{history}");
    (handle, rx, history)
}

fn texts(history: &Value) -> Vec<String> {
    history["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap().to_owned()).collect()
}

/// Sends `text` and returns the ack.
async fn say(handle: &SocketHandle, rx: &mut Outbound, text: &str) -> Value {
    handle.message(Message::Text(text.to_owned())).await;
    let ack = recv_json(rx).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ack
}

async fn stored_keys(env: &Env, room: &str) -> Vec<String> {
    let entries = env.obj_in("chat", room).list(ListOptions::new().prefix("msg:")).await.unwrap();
    entries.into_iter().map(|(k, _)| k).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_socket_gets_recent_history_oldest_first() {
    let env = Env::new();
    let (a, mut rx_a, history) = join(&env, "lobby", "a").await;
    assert_eq!(history, json!({"type": "history", "messages": []}));
    for i in 1..=5u64 {
        let ack = say(&a, &mut rx_a, &format!("m{i}")).await;
        assert_eq!(ack, json!({"type": "ack", "id": i.to_string(), "seq": i}));
    }
    let (_b, _rx_b, history) = join(&env, "lobby", "b").await;
    assert_eq!(texts(&history), ["m3", "m4", "m5"]);
    let seqs: Vec<u64> = history["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [3, 4, 5]);
    let first: ChatMessage = serde_json::from_value(history["messages"][0].clone()).unwrap();
    assert_eq!(
        first,
        ChatMessage {
            id: "3".to_owned(),
            seq: 3,
            user: String::new(),
            text: "m3".to_owned(),
            ts: NOW,
            from: "a".to_owned()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_broadcast_to_the_others_and_acked_to_the_sender() {
    let env = Env::new();
    let (a, mut rx_a, _) = join(&env, "lobby", "a").await;
    let (_b, mut rx_b, _) = join(&env, "lobby", "b").await;
    let (_c, mut rx_c, _) = join(&env, "lobby", "c").await;
    let (_d, mut rx_d, _) = join(&env, "elsewhere", "d").await;
    env.clock.advance(5);
    let ack = say(&a, &mut rx_a, r#"{"type":"message","text":"hi all","user":"ann"}"#).await;
    assert_eq!(ack, json!({"type": "ack", "id": "1", "seq": 1}));
    let expected = json!({"type": "message", "message": {
        "id": "1", "seq": 1, "user": "ann", "text": "hi all", "ts": NOW + 5, "from": "a"
    }});
    assert_eq!(recv_json(&mut rx_b).await, expected);
    assert_eq!(recv_json(&mut rx_c).await, expected);
    env.settle_in("chat", "lobby").await;
    env.settle_in("chat", "elsewhere").await;
    // The sender gets only its ack; another room nothing.
    assert_quiet(&mut rx_a);
    assert_quiet(&mut rx_d);
    // The message is stored by the time anyone hears of it.
    let stored: Option<ChatMessage> = env.obj_in("chat", "lobby").get("msg:00000000000000000001").await.unwrap();
    assert_eq!(stored.unwrap().text, "hi all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_that_is_not_a_message_object_is_taken_whole() {
    let env = Env::new();
    let (a, mut rx_a, _) = join(&env, "lobby", "a").await;
    let (_b, mut rx_b, _) = join(&env, "lobby", "b").await;
    for text in ["plain words", r#"{"type":"other","text":"x"}"#, r#"{"no":"text"}"#, "[1,2]"] {
        say(&a, &mut rx_a, text).await;
        let got = recv_json(&mut rx_b).await;
        assert_eq!(got["message"]["text"], text);
        assert_eq!(got["message"]["user"], "");
    }
    // A message object without a type is a message.
    say(&a, &mut rx_a, r#"{"text":"typed","user":"u"}"#).await;
    let got = recv_json(&mut rx_b).await;
    assert_eq!((got["message"]["text"].as_str(), got["message"]["user"].as_str()), (Some("typed"), Some("u")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_history_survives_a_runtime_restart() {
    let mut env = Env::new();
    let (a, mut rx_a, _) = join(&env, "lobby", "a").await;
    say(&a, &mut rx_a, "before-1").await;
    say(&a, &mut rx_a, "before-2").await;
    env.restart();
    let (c, mut rx_c, history) = join(&env, "lobby", "c").await;
    assert_eq!(texts(&history), ["before-1", "before-2"]);
    // Numbering continues where it stopped.
    let ack = say(&c, &mut rx_c, "after").await;
    assert_eq!(ack["seq"], 3);
    assert_eq!(stored_keys(&env, "lobby").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_max_messages_are_kept() {
    let env = Env::new();
    let (a, mut rx_a, _) = join(&env, "lobby", "a").await;
    for i in 1..=7 {
        say(&a, &mut rx_a, &format!("m{i}")).await;
    }
    let keys = stored_keys(&env, "lobby").await;
    let expected: Vec<String> = (3..=7).map(|i| format!("msg:{i:020}")).collect();
    assert_eq!(keys, expected);
    let (_b, _rx_b, history) = join(&env, "lobby", "b").await;
    assert_eq!(texts(&history), ["m5", "m6", "m7"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlimited_history_and_storage_when_configured() {
    let config = ChatConfig { history: 0, max_messages: 0, ..ChatConfig::default() };
    let env = Env::open(HostConfig::default(), config);
    let (a, mut rx_a, history) = join(&env, "lobby", "a").await;
    assert_eq!(texts(&history), Vec::<String>::new());
    for i in 1..=12 {
        say(&a, &mut rx_a, &format!("m{i}")).await;
    }
    assert_eq!(stored_keys(&env, "lobby").await.len(), 12);
    let (_b, _rx_b, history) = join(&env, "lobby", "b").await;
    assert_eq!(texts(&history), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_frame_gets_an_error_frame() {
    let env = Env::new();
    let (a, mut rx_a, _) = join(&env, "lobby", "a").await;
    let (_b, mut rx_b, _) = join(&env, "lobby", "b").await;
    a.message(Message::Binary(Bytes::from_static(b"\x00\x01"))).await;
    let err = recv_json(&mut rx_a).await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["code"], "chat.binary_message");
    assert!(err["message"].is_string());
    env.settle_in("chat", "lobby").await;
    assert_quiet(&mut rx_b);
    assert_eq!(stored_keys(&env, "lobby").await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_text_or_user_gets_an_error_frame() {
    let env = Env::new();
    let (a, mut rx_a, _) = join(&env, "lobby", "a").await;
    let (_b, mut rx_b, _) = join(&env, "lobby", "b").await;
    // 64 bytes is the limit here.
    say(&a, &mut rx_a, &"x".repeat(64)).await;
    assert_eq!(recv_json(&mut rx_b).await["message"]["text"].as_str().map(str::len), Some(64));
    a.message(Message::Text("x".repeat(65))).await;
    let err = recv_json(&mut rx_a).await;
    assert_eq!((err["type"].as_str(), err["code"].as_str()), (Some("error"), Some("chat.message_too_large")));
    // The limit applies to the text inside a message object too.
    let wrapped = json!({"type": "message", "text": "é".repeat(33)}).to_string();
    a.message(Message::Text(wrapped)).await;
    assert_eq!(recv_json(&mut rx_a).await["code"], "chat.message_too_large");
    let long_user = json!({"type": "message", "text": "hi", "user": "u".repeat(257)}).to_string();
    a.message(Message::Text(long_user)).await;
    assert_eq!(recv_json(&mut rx_a).await["code"], "chat.user_too_large");
    env.settle_in("chat", "lobby").await;
    assert_quiet(&mut rx_b);
    assert_eq!(stored_keys(&env, "lobby").await.len(), 1);
    // The room goes on.
    let ack = say(&a, &mut rx_a, "fine").await;
    assert_eq!(ack["seq"], 2);
    assert!(matches!(recv(&mut rx_b).await, Frame::Text(_)));
}
