//! [`RoomError`]: what can go wrong in a room, each with a stable code.

/// An error of a room hook or of the host.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    /// No party of that name is registered.
    #[error("no party named {party:?} is served here")]
    UnknownParty {
        /// The party asked for.
        party: String,
    },
    /// A socket asked for more than [`crate::MAX_TAGS`] tags.
    #[error("a Hibernatable WebSocket cannot have more than {max} tags")]
    TooManyTags {
        /// The limit.
        max: usize,
    },
    /// A tag over [`crate::MAX_TAG_CHARS`] characters.
    #[error("\"{tag}\" is longer than the max tag length ({max} characters).")]
    TagTooLong {
        /// The tag (cut to 300 characters).
        tag: String,
        /// The limit.
        max: usize,
    },
    /// An attachment over [`crate::MAX_ATTACHMENT_BYTES`].
    #[error("A WebSocket 'attachment' cannot be larger than {max} bytes.'attachment' was {size} bytes.")]
    AttachmentTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// An auto-response request or response over [`crate::MAX_AUTO_RESPONSE_BYTES`].
    #[error("{what} cannot be larger than {max} bytes. A {lower} of size {size} was provided.", lower = what.to_lowercase())]
    AutoResponseTooLarge {
        /// `Request` or `Response`.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The room already holds [`crate::MAX_SOCKETS_PER_ROOM`] sockets.
    #[error("only {max} websockets can be accepted on a single room")]
    TooManySockets {
        /// The limit.
        max: usize,
    },
    /// A hook named a connection the room does not have (it closed).
    #[error("connection {id:?} is not open in this room")]
    UnknownConnection {
        /// Its id.
        id: String,
    },
    /// A storage call failed.
    #[error(transparent)]
    Storage(#[from] cairn_storage::Error),
    /// The runtime failed (shutting down, durability).
    #[error(transparent)]
    Runtime(#[from] cairn_runtime::Error),
    /// Application code failed.
    #[error("{message}")]
    Handler {
        /// What the application said.
        message: String,
    },
}

impl RoomError {
    /// An application error with `message`.
    pub fn msg(message: impl std::fmt::Display) -> RoomError {
        RoomError::Handler { message: message.to_string() }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            RoomError::UnknownParty { .. } => "rooms.unknown_party",
            RoomError::TooManyTags { .. } => "rooms.too_many_tags",
            RoomError::TagTooLong { .. } => "rooms.tag_too_long",
            RoomError::AttachmentTooLarge { .. } => "rooms.attachment_too_large",
            RoomError::AutoResponseTooLarge { .. } => "rooms.auto_response_too_large",
            RoomError::TooManySockets { .. } => "rooms.too_many_sockets",
            RoomError::UnknownConnection { .. } => "rooms.unknown_connection",
            RoomError::Storage(e) => e.code(),
            RoomError::Runtime(e) => e.code(),
            RoomError::Handler { .. } => "rooms.handler_error",
        }
    }

    /// Whether the caller's input caused it (a 4xx), rather than the server or the room's code.
    pub fn is_client_error(&self) -> bool {
        match self {
            RoomError::UnknownParty { .. } | RoomError::TooManySockets { .. } => true,
            RoomError::Storage(e) => matches!(e, cairn_storage::Error::InvalidName { .. }),
            RoomError::Runtime(cairn_runtime::Error::Storage(e)) => {
                matches!(e, cairn_storage::Error::InvalidName { .. })
            }
            _ => false,
        }
    }
}
