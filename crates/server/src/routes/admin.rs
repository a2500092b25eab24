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
    let mut text = s.inner.metrics.render(s.runtime().stats(), &s.rooms().stats());
    if let Some(backup) = s.inner.backup.get() {
        backup_metrics(&mut text, &backup.status(), s.runtime().config().clock.now_ms());
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text))
}

/// Each target's status with its lag now (ms since the newest write it is known to hold) and
/// the p50/p99 of recent records' lag from commit to upload.
fn backup_json(statuses: &[cairn_backup::TargetStatus], now: i64) -> serde_json::Value {
    let targets: Vec<serde_json::Value> = statuses
        .iter()
        .map(|t| {
            let mut v = serde_json::to_value(t).unwrap_or_default();
            if let Some(obj) = v.as_object_mut() {
                obj.insert("lag_ms".into(), t.captured_at_ms.map(|c| now.saturating_sub(c)).into());
                obj.insert("record_lag_p50_ms".into(), t.lag_percentile_ms(50.0).into());
                obj.insert("record_lag_p99_ms".into(), t.lag_percentile_ms(99.0).into());
            }
            v
        })
        .collect();
    serde_json::json!({ "enabled": !statuses.is_empty(), "targets": targets })
}

/// Adds the backup gauges to a text exposition (before its `# EOF`).
fn backup_metrics(text: &mut String, statuses: &[cairn_backup::TargetStatus], now: i64) {
    use std::fmt::Write as _;
    let mut out = String::new();
    let label = |t: &cairn_backup::TargetStatus| t.target.replace('\\', "\\\\").replace('"', "\\\"");
    let _ =
        writeln!(out, "# HELP cairn_backup_lag_seconds Seconds since the newest write the target is known to hold.");
    let _ = writeln!(out, "# TYPE cairn_backup_lag_seconds gauge");
    for t in statuses {
        if let Some(c) = t.captured_at_ms {
            let _ = writeln!(
                out,
                "cairn_backup_lag_seconds{{target=\"{}\"}} {}",
                label(t),
                now.saturating_sub(c) as f64 / 1000.0
            );
        }
    }
    let _ = writeln!(out, "# HELP cairn_backup_last_success_timestamp_seconds When the last successful pass ended.");
    let _ = writeln!(out, "# TYPE cairn_backup_last_success_timestamp_seconds gauge");
    for t in statuses {
        if let Some(s) = t.last_success_ms {
            let _ = writeln!(
                out,
                "cairn_backup_last_success_timestamp_seconds{{target=\"{}\"}} {}",
                label(t),
                s as f64 / 1000.0
            );
        }
    }
    let _ = writeln!(out, "# HELP cairn_backup_failing Whether the last pass failed.");
    let _ = writeln!(out, "# TYPE cairn_backup_failing gauge");
    for t in statuses {
        let _ = writeln!(out, "cairn_backup_failing{{target=\"{}\"}} {}", label(t), u8::from(t.last_error.is_some()));
    }
    let _ = writeln!(out, "# HELP cairn_backup_shipped_bytes Bytes uploaded since the start.");
    let _ = writeln!(out, "# TYPE cairn_backup_shipped_bytes gauge");
    for t in statuses {
        let _ = writeln!(out, "cairn_backup_shipped_bytes{{target=\"{}\"}} {}", label(t), t.bytes_shipped);
    }
    match text.rfind("# EOF") {
        Some(at) => text.insert_str(at, &out),
        None => text.push_str(&out),
    }
}

/// `GET /v1/backup`: each backup target's lag, last success and last error.
pub(crate) async fn backup_status(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    s.authorize_any(&headers)?;
    let statuses = s.inner.backup.get().map(|b| b.status()).unwrap_or_default();
    Ok(Json(backup_json(&statuses, s.runtime().config().clock.now_ms())))
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
