//! `/parties/{party}/{room}`: rooms in the PartyKit URL convention. A WebSocket upgrade joins
//! the room (what `partysocket` and `y-websocket` do); any other request is handed to the
//! room's HTTP hook, also under `/parties/{party}/{room}/{*path}`.
//!
//! Each socket is carried by one task that moves frames between the WebSocket and the room
//! host: incoming messages become room events (`SocketHandle::message`), and what the room
//! sends arrives on a channel once the event that sent it is durable.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_rooms::{
    ConnectRequest, Connected, Frame, Message, OVERFLOW_CLOSE_CODE, Outbound, RoomError, SocketHandle, query_param,
};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage, Utf8Bytes, protocol::CloseFrame};

use super::ws::{self, Socket, Upgrade};

use crate::error::ApiError;
use crate::state::{Access, AppState};

/// The reason given to a room when a client goes away without a close frame (as workerd).
const GONE_WITHOUT_CLOSE: &str = "WebSocket disconnected without sending Close frame.";

pub(crate) async fn room_root(
    State(state): State<AppState>,
    Path((party, room)): Path<(String, String)>,
    request: Request,
) -> Response {
    handle(state, party, room, request).await.unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn room_path(
    State(state): State<AppState>,
    Path((party, room, _rest)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    handle(state, party, room, request).await.unwrap_or_else(IntoResponse::into_response)
}

fn room_error(e: &RoomError) -> ApiError {
    let status = match e {
        RoomError::UnknownParty { .. } => StatusCode::NOT_FOUND,
        RoomError::TooManySockets { .. } => StatusCode::SERVICE_UNAVAILABLE,
        e if e.is_client_error() => StatusCode::BAD_REQUEST,
        RoomError::Runtime(cairn_runtime::Error::ShuttingDown) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.code(), e.to_string())
}

/// Checks that the party exists, the room name is valid and the client may use it.
fn admit(state: &AppState, party: &str, room: &str, request: &Request) -> Result<(), ApiError> {
    if !state.inner.rooms.has_party(party) {
        return Err(room_error(&RoomError::UnknownParty { party: party.to_owned() }));
    }
    cairn_storage::layout::validate_object_name(room)?;
    if state.inner.public_parties.contains(party) {
        return Ok(());
    }
    // Browsers cannot set headers on a WebSocket: a token may come as `?token=`.
    let mut headers = request.headers().clone();
    if !headers.contains_key(header::AUTHORIZATION)
        && let Some(token) = request.uri().query().and_then(|q| query_param(q, "token"))
        && let Ok(value) = format!("Bearer {token}").parse()
    {
        headers.insert(header::AUTHORIZATION, value);
    }
    state.authorize(&headers, party, Access::Write)
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

async fn handle(state: AppState, party: String, room: String, request: Request) -> Result<Response, ApiError> {
    admit(&state, &party, &room, &request)?;
    if is_upgrade(request.headers()) {
        return connect(state, party, room, request).await;
    }
    let (parts, body) = request.into_parts();
    let limit = state.inner.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "http.body_too_large",
            format!("request body is over the limit of {limit} bytes"),
        )
    })?;
    let req = axum::http::Request::from_parts(parts, bytes);
    let res = state.inner.rooms.request(&party, &room, req).await.map_err(|e| room_error(&e))?;
    let (parts, body) = res.into_parts();
    Ok(Response::from_parts(parts, Body::from(body)))
}

async fn connect(state: AppState, party: String, room: String, request: Request) -> Result<Response, ApiError> {
    let (mut parts, _body) = request.into_parts();
    let upgrade = Upgrade::check(&mut parts)?;
    let id = parts
        .uri
        .query()
        .and_then(|q| query_param(q, "_pk"))
        .filter(|id| !id.is_empty() && id.len() <= 256)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let req = ConnectRequest { id, uri: parts.uri.clone(), headers: parts.headers.clone() };
    match state.inner.rooms.connect(&party, &room, req).await.map_err(|e| room_error(&e))? {
        Connected::Refused(refuse) => {
            let status = StatusCode::from_u16(refuse.status).unwrap_or(StatusCode::FORBIDDEN);
            Ok((status, refuse.body).into_response())
        }
        Connected::Accepted(handle, rx) => {
            let max = state
                .inner
                .party_max_message_bytes
                .get(&party)
                .copied()
                .unwrap_or(state.inner.rooms_config.max_message_bytes);
            let config = WebSocketConfig::default()
                .max_message_size(Some(max))
                .max_frame_size(Some(max))
                // Small buffers: an idle socket should cost little memory. The read buffer is
                // allocated and zero-filled whole, so it stays resident for every idle socket;
                // a message larger than it is read in several calls (1 MiB in 1,024).
                .read_buffer_size(1024)
                .write_buffer_size(0);
            Ok(upgrade.respond(config, move |socket| carry(socket, handle, rx)))
        }
    }
}

/// Moves frames between one socket and its room until either side closes it.
///
/// This future is the whole of an idle socket's task, so it is kept small (704 bytes, of which
/// the socket is 328; 2,000 before): it only waits, and each frame or close is handled by a
/// boxed future (`Box::pin`) that exists only while it runs, rather than by state reserved
/// inline for the life of the socket. It is an `async` block rather than an `async fn`, whose
/// future would hold its arguments twice (once as arguments, once as the locals they move to).
#[allow(clippy::manual_async_fn, reason = "an async fn's future would hold its arguments twice")]
fn carry(mut socket: Socket, handle: SocketHandle, mut rx: Outbound) -> impl Future<Output = ()> + Send {
    async move {
        // Completes if the client stops reading and its queue overflows: the connection is then
        // dropped at once (a close frame could not get through a full socket anyway).
        let overflowed = rx.overflowed();
        tokio::pin!(overflowed);
        let outcome = loop {
            let step = tokio::select! {
                () = &mut overflowed => Flow::Overflowed,
                incoming = socket.next() => Box::pin(receive(&mut socket, &handle, incoming)).await,
                out = rx.recv() => Box::pin(deliver(&mut socket, out, overflowed.as_mut())).await,
            };
            match step {
                Flow::Continue => {}
                Flow::Overflowed => {
                    Box::pin(handle.closed(OVERFLOW_CLOSE_CODE, rx.overflow_reason(), false)).await;
                    return;
                }
                Flow::Gone => return,
                Flow::Linger => {
                    Box::pin(ws::linger(socket)).await;
                    return;
                }
                Flow::Closed(outcome) => break outcome,
            }
        };
        let (code, reason, clean) = outcome.unwrap_or((1006, GONE_WITHOUT_CLOSE.to_owned(), false));
        Box::pin(handle.closed(code, reason, clean)).await;
        Box::pin(ws::linger(socket)).await;
    }
}

/// What [`carry`] does after one frame.
enum Flow {
    /// Wait for the next frame.
    Continue,
    /// The client stopped reading: drop the connection, tell the room.
    Overflowed,
    /// The room dropped the socket (replaced by a newer one with the same id): just end.
    Gone,
    /// The room closed the socket and its close frame went out: linger, then end.
    Linger,
    /// The connection ended: tell the room (code, reason, clean; none if it vanished).
    Closed(Option<(u16, String, bool)>),
}

/// Handles a frame from the client.
async fn receive(socket: &mut Socket, handle: &SocketHandle, incoming: Option<Result<WsMessage, WsError>>) -> Flow {
    match incoming {
        Some(Ok(WsMessage::Text(text))) => handle.message(Message::Text(text.as_str().to_owned())).await,
        Some(Ok(WsMessage::Binary(bytes))) => handle.message(Message::Binary(bytes)).await,
        Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {}
        Some(Ok(WsMessage::Close(frame))) => {
            let (code, reason) =
                frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.as_str().to_owned()));
            // Sends the close reply tungstenite queued.
            let _ = socket.flush().await;
            return Flow::Closed(Some((code, reason, true)));
        }
        Some(Err(e)) => {
            let (code, why) = protocol_close(&e);
            handle.error(e.to_string()).await;
            let _ = socket.send(close_message(code, why)).await;
            return Flow::Closed(Some((code, why.to_owned(), false)));
        }
        None => return Flow::Closed(None),
    }
    Flow::Continue
}

/// Sends a frame from the room, unless the queue overflows meanwhile.
async fn deliver(
    socket: &mut Socket,
    out: Option<Frame>,
    overflowed: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Flow {
    match out {
        Some(Frame::Close { code, reason }) => {
            // The room closed this socket (it has already left the room).
            let _ = socket.send(close_message(code, &reason)).await;
            Flow::Linger
        }
        Some(frame) => {
            let Some(message) = to_ws(frame) else { return Flow::Continue };
            tokio::select! {
                sent = socket.send(message) => if sent.is_err() { Flow::Closed(None) } else { Flow::Continue },
                () = overflowed => Flow::Overflowed,
            }
        }
        None => Flow::Gone,
    }
}

/// The close code for a failed read: 1007 for invalid UTF-8, 1009 for an oversized message,
/// 1002 otherwise.
fn protocol_close(e: &WsError) -> (u16, &'static str) {
    match e {
        WsError::Utf8(_) => (1007, "text frame is not valid UTF-8"),
        WsError::Capacity(_) => (1009, "message too big"),
        _ => (1002, "protocol error"),
    }
}

fn close_message(code: u16, reason: &str) -> WsMessage {
    // A close reason is at most 123 bytes on the wire.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = reason.get(..end).unwrap_or_default();
    WsMessage::Close(Some(CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::from(reason) }))
}

fn to_ws(frame: Frame) -> Option<WsMessage> {
    match frame {
        Frame::Text(bytes) => Utf8Bytes::try_from(bytes).ok().map(WsMessage::Text),
        Frame::Binary(bytes) => Some(WsMessage::Binary(bytes)),
        Frame::Close { code, reason } => Some(close_message(code, &reason)),
    }
}
