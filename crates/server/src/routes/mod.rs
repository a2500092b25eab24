//! The router: every route, the fallbacks, and the request middleware.

pub(crate) mod admin;
pub(crate) mod buckets;
pub(crate) mod cloudflare;
pub(crate) mod files;
pub(crate) mod objects;
pub(crate) mod parties;
pub(crate) mod ws;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};

use crate::error::ApiError;
use crate::state::AppState;

/// Builds the application: every route with its state and middleware. Tests drive it without a
/// socket (`tower::ServiceExt::oneshot`); `serve` puts it behind a listener.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let object = "/v1/namespaces/{ns}/objects/{name}";
    Router::new()
        .route("/healthz", get(admin::healthz))
        .route("/metrics", get(admin::metrics))
        .route("/openapi.json", get(admin::openapi))
        .route("/v1/backup", get(admin::backup_status))
        .route("/v1/namespaces/{ns}/objects", get(admin::list_objects))
        .route(&format!("{object}/kv"), get(objects::list))
        .route(
            &format!("{object}/kv/{{*key}}"),
            get(objects::get_key).put(objects::put_key).delete(objects::delete_key),
        )
        .route(&format!("{object}/batch/get"), post(objects::batch_get))
        .route(&format!("{object}/batch/put"), post(objects::batch_put))
        .route(&format!("{object}/batch/delete"), post(objects::batch_delete))
        .route(&format!("{object}/sql"), post(objects::sql))
        .route(&format!("{object}/transaction"), post(objects::transaction))
        .route(
            &format!("{object}/alarm"),
            get(objects::get_alarm).put(objects::set_alarm).delete(objects::delete_alarm),
        )
        .route(&format!("{object}/delete-all"), post(objects::delete_all))
        .route(&format!("{object}/bookmark"), get(objects::bookmark))
        .route(&format!("{object}/restore"), post(objects::restore))
        .route(&format!("{object}/fork"), post(objects::fork))
        .route(&format!("{object}/changes"), get(objects::changes))
        .route("/parties/{party}/{room}", any(parties::room_root))
        .route("/parties/{party}/{room}/{*path}", any(parties::room_path))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .merge(buckets::router())
        .merge(files::router())
        .nest("/client/v4", cloudflare::router(&state))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "http.not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "http.method_not_allowed", "this route does not accept that method")
}

/// Gives every request an id (echoed in `x-request-id`), a tracing span, and metrics.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!("request", id, method = %method, route = %route);
    let started = Instant::now();
    let mut response = {
        let _enter = span.enter();
        tracing::debug!(uri = %request.uri(), "request");
        next.run(request)
    }
    .await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    state.inner.metrics.record(&route, &method, status, elapsed.as_secs_f64());
    span.in_scope(|| tracing::info!(status, elapsed_us = elapsed.as_micros() as u64, "response"));
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}
