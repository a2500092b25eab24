//! [`Context`]: what a room hook may do besides computing.

use std::sync::Arc;

use cairn_storage::ObjectStorage;

use crate::sockets::{AutoResponse, MAX_ATTACHMENT_BYTES, SocketTable};
use crate::{Connection, Frame, RoomError, RoomInfo};

/// A frame leaving the room, held until the event's writes are durable.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// To one socket.
    To(Arc<str>, Frame),
    /// To every socket that joined no later than event `.2`, except some. (A socket that joins
    /// while an earlier event waits for durability must not get that event's broadcast after
    /// the history it was sent on connect.)
    Broadcast(Frame, Vec<Arc<str>>, u64),
    /// Close one socket (it is removed from the room at once).
    Close(crate::outbound::Outlet, u16, String),
}

/// What a hook gets besides its arguments: the room's storage, its sockets, and ways to send.
///
/// Sends are buffered and leave only once the event's writes are durable (the output gate);
/// if the hook fails, they are dropped.
pub struct Context<'a> {
    pub(crate) storage: &'a mut ObjectStorage,
    pub(crate) room: &'a RoomInfo,
    pub(crate) sockets: &'a mut SocketTable,
    pub(crate) outbox: &'a mut Vec<Outgoing>,
    /// The number of this event in the room (for [`Outgoing::Broadcast`]).
    pub(crate) event: u64,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("room", self.room).field("sockets", &self.sockets.len()).finish()
    }
}

impl Context<'_> {
    /// The room's storage: the core's synchronous API (KV, SQL, alarms, named alarms).
    pub fn storage(&mut self) -> &mut ObjectStorage {
        self.storage
    }

    /// Which room this is.
    pub fn room(&self) -> &RoomInfo {
        self.room
    }

    /// The current time (the runtime's clock), ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.storage.clock().now_ms()
    }

    /// Open sockets, most recently accepted first.
    pub fn connections(&self) -> Vec<Connection> {
        self.sockets.newest_first().map(|s| Connection { id: Arc::clone(&s.id) }).collect()
    }

    /// Open sockets carrying `tag`, in acceptance order.
    pub fn connections_tagged(&self, tag: &str) -> Vec<Connection> {
        self.sockets.tagged(tag).map(|s| Connection { id: Arc::clone(&s.id) }).collect()
    }

    /// The open socket with id `id`.
    pub fn connection(&self, id: &str) -> Option<Connection> {
        self.sockets.get(id).map(|s| Connection { id: Arc::clone(&s.id) })
    }

    /// Number of open sockets.
    pub fn connection_count(&self) -> usize {
        self.sockets.len()
    }

    /// The tags of a socket (empty if it closed).
    pub fn tags(&self, conn: &Connection) -> Vec<String> {
        self.sockets.get(&conn.id).map(|s| s.tags.iter().map(|t| t.to_string()).collect()).unwrap_or_default()
    }

    /// The attachment of a socket, if any.
    pub fn attachment(&self, conn: &Connection) -> Option<&[u8]> {
        self.sockets.get(&conn.id).and_then(|s| s.attachment.as_deref())
    }

    /// Attaches bytes to a socket (or removes them with `None`). Kept in memory with the
    /// socket, across hibernation; not stored, and not undone if the event fails.
    ///
    /// # Errors
    /// [`RoomError::AttachmentTooLarge`] over [`MAX_ATTACHMENT_BYTES`];
    /// [`RoomError::UnknownConnection`] if the socket closed.
    pub fn set_attachment(&mut self, conn: &Connection, value: Option<Vec<u8>>) -> Result<(), RoomError> {
        if let Some(v) = &value
            && v.len() > MAX_ATTACHMENT_BYTES
        {
            return Err(RoomError::AttachmentTooLarge { size: v.len(), max: MAX_ATTACHMENT_BYTES });
        }
        let socket =
            self.sockets.get_mut(&conn.id).ok_or_else(|| RoomError::UnknownConnection { id: conn.id.to_string() })?;
        socket.attachment = value.map(Vec::into_boxed_slice);
        Ok(())
    }

    /// The attachment of a socket read as JSON (`None` if there is none).
    ///
    /// # Errors
    /// [`RoomError::Handler`] if it is not JSON of type `T`.
    pub fn attachment_json<T: serde::de::DeserializeOwned>(&self, conn: &Connection) -> Result<Option<T>, RoomError> {
        self.attachment(conn)
            .map(serde_json::from_slice)
            .transpose()
            .map_err(|e| RoomError::msg(format!("attachment is not the expected JSON: {e}")))
    }

    /// Attaches a value serialized as JSON; see [`Context::set_attachment`].
    ///
    /// # Errors
    /// As [`Context::set_attachment`].
    pub fn set_attachment_json<T: serde::Serialize>(&mut self, conn: &Connection, value: &T) -> Result<(), RoomError> {
        let bytes =
            serde_json::to_vec(value).map_err(|e| RoomError::msg(format!("attachment not serializable: {e}")))?;
        self.set_attachment(conn, Some(bytes))
    }

    /// Sends a frame to one socket (dropped if it has closed by the time the event is durable).
    pub fn send(&mut self, conn: &Connection, frame: Frame) {
        self.outbox.push(Outgoing::To(Arc::clone(&conn.id), frame));
    }

    /// Sends a frame to every socket of the room except those in `except`.
    pub fn broadcast(&mut self, frame: Frame, except: &[&Connection]) {
        let except = except.iter().map(|c| Arc::clone(&c.id)).collect();
        self.outbox.push(Outgoing::Broadcast(frame, except, self.event));
    }

    /// Closes a socket with `code` and `reason`. It leaves the room at once (no `on_close`
    /// follows); the close frame leaves with the event's other output. If the hook then fails,
    /// the socket stays, as the rest of the event is undone.
    pub fn close(&mut self, conn: &Connection, code: u16, reason: &str) {
        if let Some(tx) = self.sockets.remove(&conn.id) {
            self.outbox.push(Outgoing::Close(tx, code, reason.to_owned()));
        }
    }

    /// Sets the auto-response (or clears it with `None`): a text message equal to its request
    /// is answered by the host with its response, without waking the room.
    pub fn set_auto_response(&mut self, pair: Option<AutoResponse>) {
        self.sockets.auto_response = pair;
    }

    /// The auto-response, if set.
    pub fn auto_response(&self) -> Option<&AutoResponse> {
        self.sockets.auto_response.as_ref()
    }

    /// When the auto-response last answered a socket, ms since the epoch.
    pub fn auto_response_timestamp(&self, conn: &Connection) -> Option<i64> {
        self.sockets.get(&conn.id).and_then(|s| s.auto_response_at)
    }
}
