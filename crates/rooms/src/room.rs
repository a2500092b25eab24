//! The [`Room`] trait and the values its hooks receive.

use std::sync::Arc;

use bytes::Bytes;

use crate::{Context, RoomError};

/// Which room an instance serves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoomInfo {
    /// The party (room type), also the namespace of the room's object.
    pub party: String,
    /// The room's name, also the name of its object.
    pub name: String,
}

/// A message received from a socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text frame (valid UTF-8: the transport refuses anything else with close code 1007).
    Text(String),
    /// A binary frame.
    Binary(Bytes),
}

/// A frame sent to a socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A text frame. The bytes are valid UTF-8 (the constructors guarantee it).
    Text(Bytes),
    /// A binary frame.
    Binary(Bytes),
    /// A close frame; the socket is closed after it.
    Close {
        /// The close code (1000 for a normal close).
        code: u16,
        /// The reason, at most 123 bytes on the wire (longer ones are cut at a char boundary).
        reason: String,
    },
}

impl Frame {
    /// A text frame.
    pub fn text(s: impl Into<String>) -> Frame {
        Frame::Text(Bytes::from(s.into()))
    }

    /// A binary frame.
    pub fn binary(b: impl Into<Bytes>) -> Frame {
        Frame::Binary(b.into())
    }

    /// The text of a text frame.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Frame::Text(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// Bytes in the frame's payload.
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(b) | Frame::Binary(b) => b.len(),
            Frame::Close { reason, .. } => reason.len() + 2,
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Message> for Frame {
    fn from(m: Message) -> Frame {
        match m {
            Message::Text(s) => Frame::text(s),
            Message::Binary(b) => Frame::Binary(b),
        }
    }
}

/// A socket of the room, as hooks see it. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Connection {
    pub(crate) id: Arc<str>,
}

impl Connection {
    /// The connection's id: the client's `_pk` query parameter (what `partysocket` sends), or
    /// a random id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A WebSocket upgrade request, for [`Room::on_before_connect`].
#[derive(Clone, Debug)]
pub struct ConnectRequest {
    /// The connection id it will have.
    pub id: String,
    /// The request's URI (path and query).
    pub uri: http::Uri,
    /// The request's headers.
    pub headers: http::HeaderMap,
}

impl ConnectRequest {
    /// The value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_param(self.uri.query()?, name)
    }
}

/// Finds `name` in a query string and percent-decodes its value (`+` as space).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                let hex = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How a room accepts a socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accept {
    /// Tags to find it by ([`Context::connections_tagged`]): at most [`crate::MAX_TAGS`]
    /// distinct, each at most [`crate::MAX_TAG_CHARS`] characters.
    pub tags: Vec<String>,
    /// Whether the room may hibernate while this socket is open (Durable Objects'
    /// `acceptWebSocket`). A room with a non-hibernatable socket keeps its instance.
    pub hibernatable: bool,
}

impl Default for Accept {
    fn default() -> Self {
        Accept { tags: Vec::new(), hibernatable: true }
    }
}

/// How a room refuses a socket: the HTTP response the client gets instead of the upgrade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refuse {
    /// The HTTP status (4xx or 5xx).
    pub status: u16,
    /// The response body.
    pub body: String,
}

/// What an alarm hook is told (Durable Objects' `alarmInfo`, plus the alarm's name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmInfo {
    /// `None` for the object's alarm, the name for a named alarm.
    pub name: Option<String>,
    /// The time the alarm was set for, ms since the epoch (the original time on retries).
    pub scheduled_time: i64,
    /// How many times this alarm has failed before (0 on the first run).
    pub retry_count: u32,
    /// `retry_count > 0`.
    pub is_retry: bool,
}

/// Application code for one room type. Every hook runs as one event on the room's object
/// (see the crate documentation); a hook that returns `Err` has its writes rolled back, its
/// messages dropped and the instance discarded.
///
/// Instances are made by the factory the party was registered with, and dropped when the room
/// hibernates or is evicted: keep in memory only what [`Room::on_start`] can rebuild from
/// storage.
#[allow(unused_variables)]
pub trait Room: Send + 'static {
    /// Runs once per instance, before any other hook: load state from storage here.
    ///
    /// # Errors
    /// Any; the event that woke the room then fails too.
    fn on_start(&mut self, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        Ok(())
    }

    /// Decides whether a WebSocket may connect (auth), and with which tags. The default
    /// accepts every socket as hibernatable, without tags.
    ///
    /// # Errors
    /// Any; the client gets a 500.
    fn on_before_connect(
        &mut self,
        req: &ConnectRequest,
        ctx: &mut Context<'_>,
    ) -> Result<Result<Accept, Refuse>, RoomError> {
        Ok(Ok(Accept::default()))
    }

    /// A socket was accepted. Messages sent here reach it after the upgrade.
    ///
    /// # Errors
    /// Any; the socket is then closed with 1011.
    fn on_connect(&mut self, conn: &Connection, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        Ok(())
    }

    /// A socket sent a message.
    ///
    /// # Errors
    /// Any; the event is rolled back and the instance discarded, the socket stays open.
    fn on_message(&mut self, conn: &Connection, message: Message, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        Ok(())
    }

    /// A socket closed: `code` and `reason` from its close frame, or 1006 and "WebSocket
    /// disconnected without sending Close frame." when it went away without one.
    ///
    /// # Errors
    /// Any; the event is rolled back.
    fn on_close(
        &mut self,
        conn: &Connection,
        code: u16,
        reason: &str,
        was_clean: bool,
        ctx: &mut Context<'_>,
    ) -> Result<(), RoomError> {
        Ok(())
    }

    /// A socket failed (a protocol error); `on_close` follows.
    ///
    /// # Errors
    /// Any; the event is rolled back.
    fn on_error(&mut self, conn: &Connection, error: &str, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        Ok(())
    }

    /// An HTTP request to `/parties/{party}/{room}` (any method, any sub-path). The default
    /// answers 404.
    ///
    /// # Errors
    /// Any; the client gets a 500.
    fn on_request(
        &mut self,
        req: http::Request<Bytes>,
        ctx: &mut Context<'_>,
    ) -> Result<http::Response<Bytes>, RoomError> {
        let mut res = http::Response::new(Bytes::from_static(b"Not Found"));
        *res.status_mut() = http::StatusCode::NOT_FOUND;
        Ok(res)
    }

    /// An alarm is due. Inside, the alarm that fired reads as unset; setting it again keeps
    /// the new time. Returning `Err` retries it with backoff (2 s doubling, up to 6 retries).
    ///
    /// # Errors
    /// Any; the alarm is retried.
    fn on_alarm(&mut self, alarm: &AlarmInfo, ctx: &mut Context<'_>) -> Result<(), RoomError> {
        Ok(())
    }
}
