//! Cairn's rooms: objects with code and WebSockets, in the manner of PartyKit rooms and
//! Durable Objects with WebSocket hibernation. No HTTP in here: the server carries frames
//! between real sockets and a [`RoomHost`].
//!
//! # The model
//! - A *party* is a room type, registered by name with a factory ([`RoomHostBuilder::room`]).
//!   A *room* is one instance of a party, named by the client (`/parties/{party}/{room}`); its
//!   storage is the Cairn object `{party}/{room}`.
//! - Every hook of a [`Room`] runs as one event on the room's object: on the object's shard
//!   thread, alone, inside the event's transaction, with synchronous storage
//!   ([`Context::storage`]). If a hook returns `Err` (or panics), its writes are rolled back,
//!   its messages are dropped and the instance is discarded (the next event starts a new one
//!   from storage), so memory never disagrees with what is stored.
//! - Output gate: what a hook sends ([`Context::send`], [`Context::broadcast`], closes) leaves
//!   only after the event's writes are durable, in event order.
//! - Hibernation: sockets are held by the host, not by the instance. A room whose sockets are
//!   all hibernatable drops its instance after [`HostConfig::hibernate_after`] without events;
//!   tags, attachments and the auto-response stay with the sockets, and the next event starts
//!   the room again (`on_start`, then the event).
//! - Alarms: the object's alarm (Durable Objects semantics, spec §5) plus named alarms; the
//!   host's scheduler (`alarms.rs`) fires them through [`Room::on_alarm`] with retries.
//!
//! # Layout
//! - `room.rs`: the [`Room`] trait and the values its hooks receive.
//! - `context.rs`: [`Context`], what a hook may do.
//! - `sockets.rs`: a room's sockets, tags, attachments and auto-response, and their limits.
//! - `host.rs`: [`RoomHost`]: parties, live rooms, events, hibernation.
//! - `outbound.rs`: [`Outbound`], the queue of frames to one socket, bounded in bytes.
//! - `alarms.rs`: the alarm scheduler and its retry rules.
//! - `builtin/`: the room kinds `cairn serve` offers without code: `chat`, `yjs` and
//!   `tinybase`.

mod alarms;
pub mod builtin;
mod context;
mod error;
mod host;
mod outbound;
mod room;
mod sockets;
mod stats;

pub use alarms::{AlarmRetry, MAX_ALARM_RETRIES, backoff_delay_ms};
pub use bytes::Bytes;
pub use context::Context;
pub use error::RoomError;
pub use host::{Connected, HostConfig, RoomHost, RoomHostBuilder, SocketHandle};
pub use http;
pub use outbound::{OVERFLOW_CLOSE_CODE, Outbound, TryRecvError};
pub use room::{Accept, AlarmInfo, ConnectRequest, Connection, Frame, Message, Refuse, Room, RoomInfo, query_param};
pub use sockets::{
    AutoResponse, MAX_ATTACHMENT_BYTES, MAX_AUTO_RESPONSE_BYTES, MAX_SOCKETS_PER_ROOM, MAX_TAG_CHARS, MAX_TAGS,
};
pub use stats::RoomStats;
