//! A complete custom room for Cairn: a counter shared by everyone in a room.
//!
//! - `on_start` loads the count from storage (the instance may have hibernated since).
//! - `on_before_connect` refuses clients without a `name` query parameter (403), and tags each
//!   socket with its name so `connections_tagged` finds a user's sockets.
//! - `on_connect` sends the count and who is here; the socket's name is kept in its attachment
//!   so it survives hibernation.
//! - Text messages `"inc"` / `"dec"` change the count (one durable write each) and broadcast the
//!   new value to everyone once it is durable; `"ping"` is answered by the host's auto-response
//!   without waking the room.
//! - `GET /parties/counter/{room}` returns the count as JSON; `POST .../reset` resets it.
//! - A named alarm `"reset"` set by `"reset-later"` resets the count at the next whole hour.

use cairn_rooms::{
    Accept, AlarmInfo, AutoResponse, ConnectRequest, Connection, Context, Frame, Message, Refuse, Room, RoomError,
};
use serde::{Deserialize, Serialize};

/// One hour in milliseconds.
const HOUR_MS: i64 = 3_600_000;

/// What the room sends to its sockets.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Update {
    /// The current count and who is connected (sent on connect).
    Welcome {
        /// The count.
        count: i64,
        /// Names of the connected users.
        here: Vec<String>,
    },
    /// The count changed.
    Count {
        /// The new count.
        count: i64,
        /// Who changed it.
        by: String,
    },
}

/// The counter room.
#[derive(Debug, Default)]
pub struct Counter {
    count: i64,
}

impl Counter {
    fn set(&mut self, count: i64, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        ctx.storage().put("count", &count)?;
        self.count = count;
        Ok(())
    }

    fn announce(&self, by: &str, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        let text =
            serde_json::to_string(&Update::Count { count: self.count, by: by.to_owned() }).map_err(RoomError::msg)?;
        ctx.broadcast(Frame::text(text), &[]);
        Ok(())
    }
}

impl Room for Counter {
    fn on_start(&mut self, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        self.count = ctx.storage().get("count")?.unwrap_or(0);
        if ctx.auto_response().is_none() {
            ctx.set_auto_response(Some(AutoResponse::new("ping", "pong")?));
        }
        Ok(())
    }

    fn on_before_connect(
        &mut self,
        req: &ConnectRequest,
        _ctx: &mut Context<'_>,
    ) -> Result<Result<Accept, Refuse>, RoomError> {
        match req.query_param("name").filter(|n| !n.is_empty() && n.chars().count() <= 64) {
            Some(name) => Ok(Ok(Accept { tags: vec![format!("user:{name}")], hibernatable: true })),
            None => {
                Ok(Err(Refuse { status: 403, body: "a name (?name=...) of 1 to 64 characters is required".into() }))
            }
        }
    }

    fn on_connect(&mut self, conn: &Connection, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        let name = ctx.tags(conn).first().and_then(|t| t.strip_prefix("user:")).unwrap_or_default().to_owned();
        ctx.set_attachment_json(conn, &name)?;
        let mut here = Vec::new();
        for c in ctx.connections() {
            if let Some(n) = ctx.attachment_json::<String>(&c)? {
                here.push(n);
            }
        }
        here.sort();
        let text = serde_json::to_string(&Update::Welcome { count: self.count, here }).map_err(RoomError::msg)?;
        ctx.send(conn, Frame::text(text));
        Ok(())
    }

    fn on_message(&mut self, conn: &Connection, message: Message, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        let by: String = ctx.attachment_json(conn)?.unwrap_or_default();
        match message {
            Message::Text(t) if t == "inc" => self.set(self.count + 1, ctx)?,
            Message::Text(t) if t == "dec" => self.set(self.count - 1, ctx)?,
            Message::Text(t) if t == "reset-later" => {
                let next_hour = (ctx.now_ms() / HOUR_MS + 1) * HOUR_MS;
                ctx.storage().set_named_alarm("reset", next_hour)?;
                return Ok(());
            }
            _ => {
                ctx.send(conn, Frame::text(r#"{"type":"error","message":"send inc, dec or reset-later"}"#));
                return Ok(());
            }
        }
        self.announce(&by, ctx)
    }

    fn on_request(
        &mut self,
        req: cairn_rooms::http::Request<cairn_rooms::Bytes>,
        ctx: &mut Context<'_>,
    ) -> Result<cairn_rooms::http::Response<cairn_rooms::Bytes>, RoomError> {
        if req.method() == cairn_rooms::http::Method::POST && req.uri().path().ends_with("/reset") {
            self.set(0, ctx)?;
            self.announce("http", ctx)?;
        }
        let body = serde_json::json!({ "count": self.count, "connections": ctx.connection_count() }).to_string();
        cairn_rooms::http::Response::builder()
            .header("content-type", "application/json")
            .body(cairn_rooms::Bytes::from(body))
            .map_err(RoomError::msg)
    }

    fn on_alarm(&mut self, alarm: &AlarmInfo, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        if alarm.name.as_deref() == Some("reset") {
            self.set(0, ctx)?;
            self.announce("alarm", ctx)?;
        }
        Ok(())
    }
}
