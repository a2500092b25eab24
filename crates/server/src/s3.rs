//! The S3 listener: `cairn-s3`'s service behind axum's connection handling.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_s3::s3s::service::S3Service;

use crate::config::Config;
use crate::state::AppState;

/// The router of the S3 API: every request goes to the S3 service, which authenticates it.
pub(crate) fn router(state: &AppState, config: &Config) -> Result<axum::Router, String> {
    let s3_config = cairn_s3::S3Config {
        keys: config.s3_keys.iter().map(|k| (k.access_key_id.clone(), k.secret_access_key.clone())).collect(),
        domains: config.s3_domains.clone(),
    };
    let service = cairn_s3::service(Arc::clone(state.buckets()), &s3_config)?;
    let handler = tower::service_fn(move |req: Request| {
        let service = service.clone();
        async move { Ok::<_, Infallible>(call(&service, req).await) }
    });
    Ok(axum::Router::new().fallback_service(handler))
}

/// A request body the S3 service reads, while this module keeps a handle to it.
struct SharedBody(Arc<Mutex<Option<Body>>>);

impl http_body::Body for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let mut guard = match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        match guard.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }
    fn is_end_stream(&self) -> bool {
        self.0.lock().map_or(true, |g| g.as_ref().is_none_or(http_body::Body::is_end_stream))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.lock().ok().and_then(|g| g.as_ref().map(http_body::Body::size_hint)).unwrap_or_default()
    }
}

async fn call(service: &S3Service, req: Request) -> Response {
    let is_head = req.method() == Method::HEAD;
    let (parts, body) = req.into_parts();
    let shared = Arc::new(Mutex::new(Some(body)));
    let req = Request::from_parts(parts, cairn_s3::s3s::Body::http_body_unsync(SharedBody(Arc::clone(&shared))));
    let mut response = match service.call(req).await {
        Ok(resp) => resp.map(Body::new),
        Err(e) => {
            tracing::error!(error = ?e, "the S3 service failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    };
    if response.status().is_client_error() || response.status().is_server_error() {
        // A request refused before its body was read (a bad key, a bad signature): read the
        // rest, so that a client still sending it gets this answer rather than a reset.
        let rest = shared.lock().map_or(None, |mut g| g.take());
        if let Some(body) = rest {
            crate::wire::drain_body(body).await;
        }
    }
    // S3 answers a ranged HEAD with 206, which the protocol crate leaves at 200.
    if is_head && response.status() == StatusCode::OK && response.headers().contains_key(header::CONTENT_RANGE) {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    response
}
