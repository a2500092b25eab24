//! Health, metrics, the OpenAPI document and the object catalog.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_api_types as api;
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::{Access, AppState};

/// The OpenAPI document, kept in the repository and checked against the router by the tests.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// `GET /healthz`: no authentication.
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /metrics`: Prometheus text exposition.
pub(crate) async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    s.authorize_any(&headers)?;
    let text = s.inner.metrics.render(s.runtime().stats(), &s.rooms().stats());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text))
}

/// `GET /openapi.json`.
pub(crate) async fn openapi(State(s): State<AppState>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    s.authorize_any(&headers)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], OPENAPI))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CatalogQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/namespaces/{ns}/objects?cursor=&limit=`: the objects that have been written, in
/// name order, from the catalog (no object is opened). `limit` is 1 to 1000, default 100.
pub(crate) async fn list_objects(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(ns): Path<String>,
    q: Result<Query<CatalogQuery>, QueryRejection>,
) -> Result<Json<api::ObjectList>, ApiError> {
    s.authorize(&headers, &ns, Access::Read)?;
    let q = q.map(|Query(q)| q).map_err(|e| ApiError::bad_request("http.invalid_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("http.invalid_query", format!("limit must be 1 to 1000, not {limit}")));
    }
    let after = match q.cursor {
        Some(c) => URL_SAFE_NO_PAD
            .decode(c.as_bytes())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| ApiError::bad_request("http.invalid_query", "invalid cursor"))?,
        None => String::new(),
    };
    let runtime = s.runtime().clone();
    let ns2 = ns.clone();
    let mut rows = tokio::task::spawn_blocking(move || runtime.list_objects(&ns2, &after, limit + 1))
        .await
        .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "http.internal", e.to_string()))??;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let cursor = if more { rows.last().map(|o| URL_SAFE_NO_PAD.encode(o.name.as_bytes())) } else { None };
    let objects = rows
        .into_iter()
        .map(|o| api::ObjectInfo {
            name: o.name,
            created_ms: o.created_ms,
            size_bytes: o.size_bytes,
            last_write_ms: o.last_write_ms,
        })
        .collect();
    Ok(Json(api::ObjectList { objects, cursor }))
}
