//! The server side of a WebSocket upgrade (RFC 6455 §4.2) and the closing handshake.
//!
//! Cairn accepts upgrades itself rather than through axum's extractor because closing well
//! needs the raw connection: when a client is refused for a message that is too big, part of
//! that message is still unread in the kernel's buffer. Closing a TCP socket with unread data
//! makes the kernel send a reset, and a reset that overtakes our close frame makes the client
//! report 1006 instead of the 1009 we sent. So after the close frame, [`linger`] shuts our
//! side down and reads (and discards) whatever the client still sends until it closes too.

use std::time::Duration;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use sha1::{Digest as _, Sha1};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::error::ApiError;

/// An accepted WebSocket connection.
pub(crate) type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// How long a closing socket waits for the client to close its side.
const LINGER: Duration = Duration::from_secs(5);
/// The most a closing socket reads and throws away while it waits.
const LINGER_BYTES: usize = 64 << 20;

/// A checked upgrade request, not yet answered.
pub(crate) struct Upgrade {
    on_upgrade: OnUpgrade,
    accept: HeaderValue,
}

fn bad_upgrade(message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "rooms.bad_upgrade", format!("bad WebSocket upgrade: {message}"))
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

impl Upgrade {
    /// Checks an HTTP/1.1 upgrade request as RFC 6455 §4.2.1 asks.
    pub(crate) fn check(parts: &mut Parts) -> Result<Self, ApiError> {
        if parts.method != Method::GET {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "rooms.bad_upgrade",
                "bad WebSocket upgrade: the request must be a GET",
            ));
        }
        if !header_has_token(&parts.headers, header::CONNECTION, "upgrade") {
            return Err(bad_upgrade("the Connection header must contain `upgrade`"));
        }
        if !header_has_token(&parts.headers, header::UPGRADE, "websocket") {
            return Err(bad_upgrade("the Upgrade header must be `websocket`"));
        }
        if parts.headers.get(header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v.as_bytes() != b"13") {
            return Err(bad_upgrade("Sec-WebSocket-Version must be 13"));
        }
        let key =
            parts.headers.get(header::SEC_WEBSOCKET_KEY).ok_or_else(|| bad_upgrade("Sec-WebSocket-Key is missing"))?;
        let accept = accept_key(key.as_bytes());
        let on_upgrade =
            parts.extensions.remove::<OnUpgrade>().ok_or_else(|| bad_upgrade("the connection cannot be upgraded"))?;
        Ok(Self { on_upgrade, accept })
    }

    /// Answers 101 and hands the connection to `serve` once the client has it.
    pub(crate) fn respond<F, Fut>(self, config: WebSocketConfig, serve: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config));
                    // A task of its own: this one's state (the upgrade, the config) would
                    // otherwise stay reserved for the life of the connection.
                    let serving = serve(socket.await);
                    tokio::spawn(serving);
                }
                Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
            }
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, self.accept);
        response
    }
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455 §4.2.2).
fn accept_key(key: &[u8]) -> HeaderValue {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let encoded = base64::engine::general_purpose::STANDARD.encode(sha1.finalize());
    HeaderValue::try_from(encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Ends a connection after our close frame went out (or the client's close was answered):
/// half-closes our side, then reads and discards until the client closes, for at most
/// [`LINGER`] and [`LINGER_BYTES`], so the kernel never resets a connection with unread data.
pub(crate) async fn linger(mut socket: Socket) {
    let io = socket.get_mut();
    if io.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut total = 0usize;
        while total < LINGER_BYTES {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        // The worked example of RFC 6455 §1.3.
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
