//! Cairn's HTTP server: every object's storage over HTTP, with bearer-token auth, one error
//! shape, Prometheus metrics and graceful shutdown.
//!
//! # Layout
//! - `config.rs`: [`Config`], loaded from defaults, a TOML file, `CAIRN_*` variables and flags.
//! - `state.rs`: [`AppState`] (the runtime handle, the KV and SQL services, tokens, metrics)
//!   and authorization.
//! - `routes/`: the [`router`]; `objects.rs` for `/v1/namespaces/{ns}/objects/{name}/...`,
//!   `admin.rs` for health, metrics, the OpenAPI document and the catalog, `cloudflare/` for
//!   Cloudflare's REST API v4 (KV namespaces and D1) under `/client/v4`.
//! - `error.rs`: `ApiError`, the one place errors become responses.
//! - `wire.rs`: JSON and base64 conversions; `metrics.rs`: the Prometheus registry.
//!
//! Handlers run on tokio; each object request is one event sent to the object's shard
//! (`cairn_runtime::ObjectRef::run`), so no handler blocks a worker thread on SQLite.

mod app;
mod config;
mod error;
mod metrics;
mod rooms;
mod routes;
mod s3;
mod state;
mod wire;

use std::future::Future;

pub use app::{Server, ServerBuilder};
pub use config::{
    Config, ConfigError, DEFAULT_S3_LISTEN, Overrides, PartyConfig, RoomsConfig, S3Key, Token, default_parties,
};
pub use error::ApiError;
pub use routes::admin::OPENAPI;
pub use routes::router;
pub use state::AppState;

/// Opens the runtime for `config`.
///
/// # Errors
/// The runtime's, if the data directory cannot be used.
pub fn open_runtime(config: &Config) -> cairn_runtime::Result<cairn_runtime::Runtime> {
    let mut builder = cairn_runtime::Runtime::builder(&config.data_dir)
        .durability(config.durability)
        .max_open_objects(config.max_open_objects)
        .limits(config.limits.clone())
        .history(config.history.runtime_config());
    if config.shards > 0 {
        builder = builder.shards(config.shards);
    }
    builder = builder.namespace_limits(cairn_kv::DATA_NAMESPACE, config.kv.object_limits());
    for (ns, limits) in &config.namespace_limits {
        builder = builder.namespace_limits(ns.clone(), limits.clone());
    }
    builder.open()
}

/// Deletes expired KV entries in the background, a bounded step per namespace whose alarm is
/// due, once a second (expired entries are already invisible; this reclaims their space).
async fn purge_expired_kv(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match state.inner.kv.purge_due(100).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "purged expired KV entries"),
            Err(e) => tracing::warn!(code = e.code(), "purging expired KV entries failed: {e}"),
        }
    }
}

/// Folds history older than its window away, every `every` (the first pass right away).
async fn compact_history(runtime: cairn_runtime::Runtime, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every.max(std::time::Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let rt = runtime.clone();
        match tokio::task::spawn_blocking(move || rt.compact_history()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(segments = n, "folded history older than the retention window"),
            Ok(Err(e)) => tracing::warn!(code = e.code(), "compacting history failed: {e}"),
            Err(e) => tracing::warn!("compacting history panicked: {e}"),
        }
    }
}

/// Serves the API on `listener` until `shutdown` resolves; then stops accepting connections,
/// lets requests in flight finish (their writes are durable before their responses), and closes
/// the runtime (every object is checkpointed and closed).
///
/// # Errors
/// An I/O error of the listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: &Config,
    runtime: cairn_runtime::Runtime,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_all(listener, None, config, runtime, shutdown).await
}

/// [`serve`], plus the S3 API on `s3_listener` when given.
///
/// # Errors
/// An I/O error of a listener; an invalid S3 base domain.
pub async fn serve_all(
    listener: tokio::net::TcpListener,
    s3_listener: Option<tokio::net::TcpListener>,
    config: &Config,
    runtime: cairn_runtime::Runtime,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState::new(runtime.clone(), config);
    serve_state(state, listener, s3_listener, config, shutdown).await
}

/// Serves `state` on the listeners until `shutdown` resolves; see [`serve_all`].
pub(crate) async fn serve_state(
    state: AppState,
    listener: tokio::net::TcpListener,
    s3_listener: Option<tokio::net::TcpListener>,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let runtime = state.runtime().clone();
    if !config.backup.targets.is_empty() {
        let backup = cairn_backup::Backup::start(runtime.clone(), config.backup.backup_config())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        for t in &config.backup.targets {
            tracing::info!(target = %t.url, "backing up continuously");
        }
        let _ = state.inner.backup.set(std::sync::Arc::new(backup));
    }
    let backup_state = state.clone();
    let room_tasks = state.rooms().spawn_background();
    let rooms = state.rooms().clone();
    let janitor = tokio::spawn(purge_expired_kv(state.clone()));
    let sweeper = tokio::spawn(sweep_orphan_blobs(state.clone()));
    let compactor = tokio::spawn(compact_history(
        runtime.clone(),
        std::time::Duration::from_secs(config.history.compact_every_secs),
    ));
    // One shutdown signal for every listener.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let s3_server = match s3_listener {
        Some(l) => {
            let app = s3::router(&state, config).map_err(std::io::Error::other)?;
            let stop = stopped(stop_rx.clone());
            Some(tokio::spawn(async move { axum::serve(l, app).with_graceful_shutdown(stop).await }))
        }
        None => None,
    };
    let app = router(state, config.max_body_bytes);
    let mut result = axum::serve(listener, app).with_graceful_shutdown(stopped(stop_rx)).await;
    if let Some(s3) = s3_server {
        let s3_result = s3.await.unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        result = result.and(s3_result);
    }
    janitor.abort();
    sweeper.abort();
    compactor.abort();
    for task in room_tasks {
        task.abort();
    }
    // Upgraded WebSockets outlive the HTTP server's graceful shutdown: tell them to go.
    rooms.close_all(1001, "server shutting down");
    runtime.close();
    // A last pass ships the final commits.
    if let Some(backup) = backup_state.inner.backup.get() {
        backup.shutdown().await;
    }
    result
}

/// Removes blob files left unreferenced by a crash, once, in the background.
async fn sweep_orphan_blobs(state: AppState) {
    match state.inner.buckets.sweep_orphans().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "removed unreferenced blob files"),
        Err(e) => tracing::warn!(code = e.code(), "sweeping unreferenced blob files failed: {e}"),
    }
}
