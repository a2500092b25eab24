//! Shared state of the HTTP handlers, and request authorization.

use std::collections::HashSet;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use cairn_runtime::{ObjectRef, Runtime};

use crate::config::{Config, Token};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// What every handler sees. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The storage runtime.
    pub(crate) runtime: Runtime,
    /// Bearer tokens; empty means no authentication (only allowed on loopback).
    pub(crate) tokens: Vec<Token>,
    /// Namespaces declared in the configuration.
    pub(crate) namespaces: HashSet<String>,
    /// Whether undeclared namespaces may be used.
    pub(crate) auto_create_namespaces: bool,
    /// Request and runtime metrics.
    pub(crate) metrics: Metrics,
    /// KV namespaces (`/client/v4/.../storage/kv`).
    pub(crate) kv: Arc<cairn_kv::KvService>,
    /// SQL databases (`/client/v4/.../d1`).
    pub(crate) sql: Arc<cairn_sqldb::SqlService>,
    /// Staged D1 exports and imports, reached through unguessable URLs.
    pub(crate) transfers: crate::routes::cloudflare::transfers::Transfers,
    /// Buckets (served over S3 by `cairn-s3`).
    pub(crate) buckets: Arc<cairn_bucket::BucketService>,
    /// Largest request body under `/client/v4`.
    pub(crate) cloudflare_max_body_bytes: usize,
    /// Rooms (`/parties/{party}/{room}`).
    pub(crate) rooms: cairn_rooms::RoomHost,
    /// Parties that need no token.
    pub(crate) public_parties: HashSet<String>,
    /// Room settings.
    pub(crate) rooms_config: crate::config::RoomsConfig,
    /// Parties with their own largest message (`[parties.NAME] max_message_bytes`).
    pub(crate) party_max_message_bytes: std::collections::HashMap<String, usize>,
    /// Largest request body of the main API.
    pub(crate) max_body_bytes: usize,
    /// The continuous backup, once started by the server.
    pub(crate) backup: std::sync::OnceLock<Arc<cairn_backup::Backup>>,
}

/// What a request wants to do, for authorization.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

impl AppState {
    /// State over a running runtime.
    ///
    /// # Panics
    /// Never: the services only fail to start for an invalid system namespace name, which is a
    /// constant.
    pub fn new(runtime: Runtime, config: &Config) -> AppState {
        AppState::with_rooms(runtime, config, Vec::new()).expect("the configured parties were validated")
    }

    /// State over a running runtime, with an application's parties added to the configured
    /// ones.
    ///
    /// # Errors
    /// A party that cannot be registered (its name, or its options).
    pub(crate) fn with_rooms(
        runtime: Runtime,
        config: &Config,
        parties: Vec<crate::rooms::Registrar>,
    ) -> Result<AppState, String> {
        let rooms = crate::rooms::build_host(runtime.clone(), config, parties)?;
        let kv = cairn_kv::KvService::new(runtime.clone(), config.kv.clone()).expect("the KV registry name is valid");
        let sql = cairn_sqldb::SqlService::new(runtime.clone()).expect("the SQL registry name is valid");
        let buckets = cairn_bucket::BucketService::new(runtime.clone(), config.buckets.clone())
            .expect("the bucket registry name is valid and the blob directory can be created");
        Ok(AppState {
            inner: Arc::new(Inner {
                rooms,
                public_parties: config.parties.iter().filter(|(_, p)| p.public).map(|(n, _)| n.clone()).collect(),
                rooms_config: config.rooms.clone(),
                party_max_message_bytes: config
                    .parties
                    .iter()
                    .filter_map(|(n, p)| p.max_message_bytes.map(|m| (n.clone(), m)))
                    .collect(),
                max_body_bytes: config.max_body_bytes,
                kv: Arc::new(kv),
                sql: Arc::new(sql),
                buckets: Arc::new(buckets),
                transfers: crate::routes::cloudflare::transfers::Transfers::new(config.data_dir.join("transfers")),
                cloudflare_max_body_bytes: config.cloudflare_max_body_bytes,
                runtime,
                tokens: config.tokens.clone(),
                namespaces: config.namespaces.iter().cloned().collect(),
                auto_create_namespaces: config.auto_create_namespaces,
                metrics: Metrics::new(),
                backup: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The room host.
    pub fn rooms(&self) -> &cairn_rooms::RoomHost {
        &self.inner.rooms
    }

    /// The bucket service.
    pub fn buckets(&self) -> &Arc<cairn_bucket::BucketService> {
        &self.inner.buckets
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// Checks the bearer token of a request that touches nothing namespaced (metrics).
    pub(crate) fn authorize_any(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        self.token(headers).map(drop)
    }

    /// The request's token, if tokens are configured.
    pub(crate) fn token(&self, headers: &HeaderMap) -> Result<Option<&Token>, ApiError> {
        if self.inner.tokens.is_empty() {
            return Ok(None);
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "http.unauthorized",
                    "missing bearer token (Authorization: Bearer <token>)",
                )
            })?;
        self.inner
            .tokens
            .iter()
            .find(|t| constant_time_eq(t.token.as_bytes(), given.as_bytes()))
            .map(Some)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "http.unauthorized", "unknown bearer token"))
    }

    /// Checks the token for `access` to namespace `ns`, then that the namespace exists.
    pub(crate) fn authorize(&self, headers: &HeaderMap, ns: &str, access: Access) -> Result<(), ApiError> {
        let token = self.token(headers)?;
        if ns.starts_with("_cairn") {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "namespace.reserved",
                format!("namespace {ns:?} is reserved: names starting with _cairn hold Cairn's own objects"),
            ));
        }
        if let Some(token) = token {
            if !token.allows_namespace(ns) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "http.forbidden",
                    format!("this token may not use namespace {ns:?}"),
                ));
            }
            if token.read_only && access == Access::Write {
                return Err(ApiError::new(StatusCode::FORBIDDEN, "http.forbidden", "this token may only read"));
            }
        }
        if !self.inner.auto_create_namespaces && !self.inner.namespaces.contains(ns) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "namespace.not_found",
                format!("namespace {ns:?} is not declared and namespaces are not created on first use"),
            ));
        }
        Ok(())
    }

    /// Authorizes and returns a handle to an object.
    pub(crate) fn object(
        &self,
        headers: &HeaderMap,
        ns: &str,
        name: &str,
        access: Access,
    ) -> Result<ObjectRef, ApiError> {
        self.authorize(headers, ns, access)?;
        Ok(self.inner.runtime.object(ns, name)?)
    }
}

/// Compares secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
