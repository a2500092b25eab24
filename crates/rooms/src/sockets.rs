//! A room's sockets as the host keeps them: ids, tags, attachments, the channel to the
//! transport, and the room's auto-response. All of it outlives the room's instance
//! (hibernation) and none of it is stored: a restart of the server closes every socket.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::RoomError;
use crate::outbound::Outlet;

/// Most distinct tags per socket (spec §6).
pub const MAX_TAGS: usize = 10;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 256;
/// Largest attachment, in bytes.
pub const MAX_ATTACHMENT_BYTES: usize = 16 * 1024;
/// Largest auto-response request or response, in bytes.
pub const MAX_AUTO_RESPONSE_BYTES: usize = 2048;
/// Most sockets open in one room.
pub const MAX_SOCKETS_PER_ROOM: usize = 32 * 1024;

/// A request/response pair the host answers without waking the room: a text message equal to
/// `request` gets `response` back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoResponse {
    /// The exact text message to answer.
    pub request: String,
    /// The text sent back.
    pub response: String,
}

impl AutoResponse {
    /// A pair, checked against [`MAX_AUTO_RESPONSE_BYTES`].
    ///
    /// # Errors
    /// [`RoomError::AutoResponseTooLarge`].
    pub fn new(request: impl Into<String>, response: impl Into<String>) -> Result<AutoResponse, RoomError> {
        let (request, response) = (request.into(), response.into());
        for (what, s) in [("Request", &request), ("Response", &response)] {
            if s.len() > MAX_AUTO_RESPONSE_BYTES {
                return Err(RoomError::AutoResponseTooLarge { what, size: s.len(), max: MAX_AUTO_RESPONSE_BYTES });
            }
        }
        Ok(AutoResponse { request, response })
    }
}

/// One open socket.
#[derive(Debug)]
pub(crate) struct Socket {
    pub(crate) id: Arc<str>,
    pub(crate) tags: Box<[Box<str>]>,
    pub(crate) attachment: Option<Box<[u8]>>,
    pub(crate) hibernatable: bool,
    /// The room event that accepted it.
    pub(crate) joined: u64,
    pub(crate) tx: Outlet,
    /// When the auto-response last answered this socket, ms since the epoch.
    pub(crate) auto_response_at: Option<i64>,
}

/// The sockets of one room, in acceptance order.
///
/// Sockets join and leave inside events; if the event fails, its joins and leaves are undone
/// ([`SocketTable::begin_event`], [`SocketTable::undo_event`]) with the rest of the event.
#[derive(Debug, Default)]
pub(crate) struct SocketTable {
    by_order: BTreeMap<u64, Socket>,
    by_id: HashMap<Arc<str>, u64>,
    next: u64,
    pub(crate) auto_response: Option<AutoResponse>,
    /// Joins and leaves of the current event, newest last.
    undo: Vec<Undo>,
}

#[derive(Debug)]
enum Undo {
    Inserted(u64),
    Removed(u64, Socket),
}

/// Checks tags with the rules of spec §6 and removes duplicates (keeping the first).
///
/// # Errors
/// [`RoomError::TooManyTags`], [`RoomError::TagTooLong`].
pub(crate) fn check_tags(tags: &[String]) -> Result<Box<[Box<str>]>, RoomError> {
    let mut distinct: Vec<Box<str>> = Vec::new();
    for tag in tags {
        // The count is checked before each element, so an 11th element fails even when it
        // repeats an earlier one (as in workerd).
        if distinct.len() >= MAX_TAGS {
            return Err(RoomError::TooManyTags { max: MAX_TAGS });
        }
        if tag.chars().count() > MAX_TAG_CHARS {
            return Err(RoomError::TagTooLong { tag: tag.chars().take(300).collect(), max: MAX_TAG_CHARS });
        }
        if !distinct.iter().any(|t| **t == **tag) {
            distinct.push(tag.as_str().into());
        }
    }
    Ok(distinct.into_boxed_slice())
}

impl SocketTable {
    pub(crate) fn len(&self) -> usize {
        self.by_order.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_order.is_empty()
    }

    /// Starts recording joins and leaves for [`SocketTable::undo_event`].
    pub(crate) fn begin_event(&mut self) {
        self.undo.clear();
    }

    /// Undoes the joins and leaves since [`SocketTable::begin_event`] (the event failed).
    pub(crate) fn undo_event(&mut self) {
        while let Some(step) = self.undo.pop() {
            match step {
                Undo::Inserted(order) => {
                    if let Some(s) = self.by_order.remove(&order) {
                        self.by_id.remove(&s.id);
                    }
                }
                Undo::Removed(order, socket) => {
                    self.by_id.insert(Arc::clone(&socket.id), order);
                    self.by_order.insert(order, socket);
                }
            }
        }
    }

    /// Adds a socket. The caller has checked the id is free and the room is not full.
    pub(crate) fn insert(&mut self, socket: Socket) {
        let order = self.next;
        self.next += 1;
        self.by_id.insert(Arc::clone(&socket.id), order);
        self.by_order.insert(order, socket);
        self.undo.push(Undo::Inserted(order));
    }

    /// Removes a socket that has closed, for good: a failure of the current event does not
    /// bring it back.
    pub(crate) fn forget(&mut self, id: &str) {
        if let Some(order) = self.by_id.remove(id) {
            self.by_order.remove(&order);
        }
    }

    /// Removes a socket; the returned copy of its channel is what to send a close frame on.
    pub(crate) fn remove(&mut self, id: &str) -> Option<Outlet> {
        let order = self.by_id.remove(id)?;
        let socket = self.by_order.remove(&order)?;
        let tx = socket.tx.clone();
        self.undo.push(Undo::Removed(order, socket));
        Some(tx)
    }

    /// Whether the socket `id` (this very one, not a newer socket that took over its id) is
    /// in the room.
    pub(crate) fn holds(&self, id: &Arc<str>) -> bool {
        self.get(id).is_some_and(|s| Arc::ptr_eq(&s.id, id))
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Socket> {
        self.by_id.get(id).and_then(|o| self.by_order.get(o))
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Socket> {
        let order = *self.by_id.get(id)?;
        self.by_order.get_mut(&order)
    }

    /// Whether every socket may hibernate.
    pub(crate) fn all_hibernatable(&self) -> bool {
        self.by_order.values().all(|s| s.hibernatable)
    }

    /// Sockets, most recently accepted first (as Durable Objects' `getWebSockets()`).
    pub(crate) fn newest_first(&self) -> impl Iterator<Item = &Socket> {
        self.by_order.values().rev()
    }

    /// Sockets carrying `tag`, in acceptance order.
    pub(crate) fn tagged<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a Socket> + 'a {
        self.by_order.values().filter(move |s| s.tags.iter().any(|t| &**t == tag))
    }

    /// Removes every socket.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Socket> + '_ {
        self.by_id.clear();
        self.undo.clear();
        std::mem::take(&mut self.by_order).into_values()
    }

    /// Every socket in acceptance order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Socket> {
        self.by_order.values()
    }
}
