//! The S3 listener: `cairn-s3`'s service behind axum's connection handling.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
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
    let service = cairn_s3::service(std::sync::Arc::clone(state.buckets()), &s3_config)?;
    let handler = tower::service_fn(move |req: Request| {
        let service = service.clone();
        async move { Ok::<_, Infallible>(call(&service, req).await) }
    });
    Ok(axum::Router::new().fallback_service(handler))
}

async fn call(service: &S3Service, req: Request) -> Response {
    let req = req.map(cairn_s3::s3s::Body::http_body_unsync);
    match service.call(req).await {
        Ok(resp) => resp.map(Body::new),
        Err(e) => {
            tracing::error!(error = ?e, "the S3 service failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}
