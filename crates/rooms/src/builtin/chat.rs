//! The `chat` room kind: seed 000's pattern. Each message is stored under its own key, a new
//! socket gets the recent history, and a message is broadcast to the other sockets once it is
//! durable.
//!
//! Protocol (text frames of JSON):
//! - client → room: `{"type":"message","text":"...","user":"..."}` (`user` optional), or any
//!   text that is not such an object, taken whole as the text.
//! - room → new socket: `{"type":"history","messages":[...]}`, oldest first, at most
//!   [`ChatConfig::history`] messages.
//! - room → others: `{"type":"message","message":{"id","seq","user","text","ts","from"}}`.
//! - room → sender: `{"type":"ack","id":"...","seq":n}` once the message is durable.
//! - room → sender on bad input: `{"type":"error","code":"...","message":"..."}`.
//!
//! Storage: `msg:{seq:020}` → the message; at most [`ChatConfig::max_messages`] are kept
//! (the oldest is deleted as a new one arrives).

use cairn_storage::ListOptions;
use serde::{Deserialize, Serialize};

use crate::{Connection, Context, Frame, Message, Room, RoomError};

/// Settings of a `chat` party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Messages sent to a new socket. Default 100.
    pub history: usize,
    /// Messages kept in storage (0: all). Default 10,000.
    pub max_messages: u64,
    /// Longest message text, in bytes. Default 16 KiB.
    pub max_text_bytes: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig { history: 100, max_messages: 10_000, max_text_bytes: 16 * 1024 }
    }
}

/// A stored chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `{room}:{seq}`-free id: the sequence number as a string.
    pub id: String,
    /// Position in the room, from 1.
    pub seq: u64,
    /// Who wrote it, as the client said (may be empty).
    pub user: String,
    /// The text.
    pub text: String,
    /// When the room received it, ms since the epoch.
    pub ts: i64,
    /// The connection id it came from.
    pub from: String,
}

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: String,
    #[serde(default)]
    user: Option<String>,
}

const PREFIX: &str = "msg:";
const MAX_USER_BYTES: usize = 256;

fn key(seq: u64) -> String {
    format!("{PREFIX}{seq:020}")
}

/// A `chat` room.
#[derive(Debug, Default)]
pub struct ChatRoom {
    config: ChatConfig,
    /// The last sequence number used (loaded by `on_start`).
    last_seq: u64,
}

impl ChatRoom {
    /// A room with these settings.
    pub fn new(config: ChatConfig) -> ChatRoom {
        ChatRoom { config, last_seq: 0 }
    }
}

fn error_frame(code: &str, message: &str) -> Frame {
    Frame::text(serde_json::json!({"type": "error", "code": code, "message": message}).to_string())
}

impl Room for ChatRoom {
    fn on_start(&mut self, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        let last = ctx.storage().list(&ListOptions {
            prefix: Some(PREFIX.to_owned()),
            reverse: true,
            limit: Some(1),
            ..ListOptions::default()
        })?;
        self.last_seq =
            last.first().and_then(|(k, _)| k.strip_prefix(PREFIX)).and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok(())
    }

    fn on_connect(&mut self, conn: &Connection, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        let mut messages: Vec<serde_json::Value> = Vec::new();
        if self.config.history > 0 {
            let recent = ctx.storage().list(&ListOptions {
                prefix: Some(PREFIX.to_owned()),
                reverse: true,
                limit: Some(self.config.history as u64),
                ..ListOptions::default()
            })?;
            for (key, value) in recent.into_iter().rev() {
                messages.push(value.to_serde(&key)?);
            }
        }
        let history = serde_json::json!({"type": "history", "messages": messages});
        ctx.send(conn, Frame::text(history.to_string()));
        Ok(())
    }

    fn on_message(&mut self, conn: &Connection, message: Message, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        let Message::Text(raw) = message else {
            ctx.send(conn, error_frame("chat.binary_message", "chat messages are text frames"));
            return Ok(());
        };
        let (text, user) = match serde_json::from_str::<Incoming>(&raw) {
            Ok(m) if m.kind.as_deref().is_none_or(|k| k == "message") => (m.text, m.user.unwrap_or_default()),
            _ => (raw, String::new()),
        };
        if text.len() > self.config.max_text_bytes {
            let msg =
                format!("message text is {} bytes, over the limit of {} bytes", text.len(), self.config.max_text_bytes);
            ctx.send(conn, error_frame("chat.message_too_large", &msg));
            return Ok(());
        }
        if user.len() > MAX_USER_BYTES {
            let msg = format!("user is {} bytes, over the limit of {MAX_USER_BYTES} bytes", user.len());
            ctx.send(conn, error_frame("chat.user_too_large", &msg));
            return Ok(());
        }
        let seq = self.last_seq + 1;
        let stored = ChatMessage { id: seq.to_string(), seq, user, text, ts: ctx.now_ms(), from: conn.id().to_owned() };
        ctx.storage().put(&key(seq), &stored)?;
        if self.config.max_messages > 0 && seq > self.config.max_messages {
            ctx.storage().delete(&key(seq - self.config.max_messages))?;
        }
        self.last_seq = seq;
        let out = serde_json::json!({"type": "message", "message": stored});
        ctx.broadcast(Frame::text(out.to_string()), &[conn]);
        ctx.send(conn, Frame::text(serde_json::json!({"type": "ack", "id": stored.id, "seq": seq}).to_string()));
        Ok(())
    }
}
