//! The server's configuration: defaults < TOML file < `CAIRN_*` environment < command-line flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cairn_runtime::Durability;
use cairn_storage::Limits;
use serde::Deserialize;

/// Everything `cairn serve` is configured with. Every field has a default.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the data lives. Default `./cairn-data`.
    pub data_dir: PathBuf,
    /// Address to listen on. Default `127.0.0.1:8787`.
    pub listen: SocketAddr,
    /// `fsync` (default: acknowledged writes survive power loss) or `os`.
    pub durability: Durability,
    /// Shard threads; 0 means one per core.
    pub shards: usize,
    /// Most objects open at once. Default 10,000.
    pub max_open_objects: usize,
    /// Largest request body, in bytes; larger bodies are refused before they are read.
    /// Default 20 MiB.
    pub max_body_bytes: usize,
    /// Whether namespaces not declared in `namespaces` may be used (created on first use).
    /// Default true.
    pub auto_create_namespaces: bool,
    /// Namespaces declared up front (always usable).
    pub namespaces: Vec<String>,
    /// Limits for namespaces without their own.
    pub limits: Limits,
    /// Per-namespace limits.
    pub namespace_limits: BTreeMap<String, Limits>,
    /// Bearer tokens. With none, the server only listens on loopback.
    pub tokens: Vec<Token>,
    /// Limits of KV namespaces (`[kv]` in the file).
    pub kv: cairn_kv::KvLimits,
    /// Largest request body under `/client/v4` (KV values up to 25 MiB, bulk writes, D1
    /// imports), in bytes. Default 100 MiB.
    pub cloudflare_max_body_bytes: usize,
    /// Whether the S3 API is served.
    pub s3_enabled: bool,
    /// Address of the S3 API; `None` means [`DEFAULT_S3_LISTEN`], given up with a warning when
    /// that port is taken (an address set explicitly must be bound).
    pub s3_listen: Option<SocketAddr>,
    /// Base domains of virtual-host-style S3 requests (`{bucket}.{domain}`).
    pub s3_domains: Vec<String>,
    /// Access keys of the S3 API (plus `CAIRN_S3_ACCESS_KEY_ID` / `CAIRN_S3_SECRET_ACCESS_KEY`).
    pub s3_keys: Vec<S3Key>,
    /// Limits of buckets (`[buckets]`).
    pub buckets: cairn_bucket::BucketLimits,
    /// Room settings (`[rooms]`).
    pub rooms: RoomsConfig,
    /// Point-in-time history (`[history]`).
    pub history: HistorySettings,
    /// Continuous backup (`[backup]`, `[[backup.targets]]`).
    pub backup: BackupSettings,
    /// Built-in parties served under `/parties/{party}/{room}` (`[parties.NAME]`). Default:
    /// `chat` (kind `chat`), `yjs` (kind `yjs`) and `tinybase` (kind `tinybase`). Setting the
    /// table replaces the default.
    pub parties: BTreeMap<String, PartyConfig>,
}

/// Settings of every room (`[rooms]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsConfig {
    /// A room whose sockets all hibernate drops its instance after this many milliseconds
    /// without an event. Default 10,000.
    pub hibernate_after_ms: u64,
    /// Largest WebSocket message, in bytes; larger ones close the socket with 1009. Default
    /// 1 MiB (as Durable Objects).
    pub max_message_bytes: usize,
    /// Most bytes waiting to be sent to one socket; a client that stops reading is dropped
    /// (its room hears a close with code 1008) when its queue would grow past this. Default
    /// 16 MiB.
    pub max_queued_bytes: usize,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        RoomsConfig { hibernate_after_ms: 10_000, max_message_bytes: 1024 * 1024, max_queued_bytes: 16 * 1024 * 1024 }
    }
}

/// Point-in-time history (`[history]`): every commit kept for a window, for bookmarks,
/// restores, forks and D1 Time Travel. Needs `durability = "fsync"`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistorySettings {
    /// Keep history. Default true.
    pub enabled: bool,
    /// How far back bookmarks reach, in days. Default 30 (as D1 Time Travel).
    pub retention_days: u32,
    /// Per-namespace windows in days (`[history.namespace_retention_days]`, `ns = days`).
    pub namespace_retention_days: BTreeMap<String, u32>,
    /// How often history older than the window is folded away, in seconds. Default 3600.
    pub compact_every_secs: u64,
}

impl Default for HistorySettings {
    fn default() -> Self {
        HistorySettings {
            enabled: true,
            retention_days: 30,
            namespace_retention_days: BTreeMap::new(),
            compact_every_secs: 3600,
        }
    }
}

impl HistorySettings {
    /// The runtime's form.
    pub fn runtime_config(&self) -> cairn_runtime::HistoryConfig {
        let days = |d: u32| std::time::Duration::from_secs(u64::from(d) * 86_400);
        cairn_runtime::HistoryConfig {
            enabled: self.enabled,
            retention: days(self.retention_days),
            namespace_retention: self.namespace_retention_days.iter().map(|(ns, d)| (ns.clone(), days(*d))).collect(),
        }
    }
}

/// Continuous backup (`[backup]` with `[[backup.targets]]`): snapshots and the commit log
/// shipped to every target (a directory or `s3://bucket/prefix`). Needs history on.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupSettings {
    /// Where backups go. Default none (no backup).
    pub targets: Vec<cairn_backup::TargetConfig>,
    /// Time between shipping passes, in milliseconds. Default 1,000.
    pub interval_ms: u64,
    /// Time between snapshots, in seconds. Default 86,400 (daily).
    pub snapshot_interval_secs: u64,
    /// How far back a restore from the backup may go, in days. Default 30.
    pub retention_days: u32,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings { targets: Vec::new(), interval_ms: 1000, snapshot_interval_secs: 86_400, retention_days: 30 }
    }
}

impl BackupSettings {
    /// The backup crate's form.
    pub fn backup_config(&self) -> cairn_backup::BackupConfig {
        cairn_backup::BackupConfig {
            targets: self.targets.clone(),
            interval: std::time::Duration::from_millis(self.interval_ms.max(1)),
            snapshot_interval: std::time::Duration::from_secs(self.snapshot_interval_secs.max(1)),
            retention: std::time::Duration::from_secs(u64::from(self.retention_days) * 86_400),
            blob_dirs: vec![cairn_bucket::BLOB_DIR.to_owned()],
            ..cairn_backup::BackupConfig::default()
        }
    }
}

/// The largest WebSocket message any party may allow (a message is held whole in memory).
pub(crate) const MAX_WEBSOCKET_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// One built-in party (`[parties.NAME]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyConfig {
    /// `chat`, `yjs` or `tinybase`.
    pub kind: String,
    /// Whether clients may connect without a token when tokens are configured. Default false:
    /// with tokens configured, a client sends one (`Authorization: Bearer` or `?token=`) that
    /// may write the party's namespace.
    #[serde(default)]
    pub public: bool,
    /// Largest WebSocket message for this party, in bytes, instead of
    /// `[rooms] max_message_bytes`.
    #[serde(default)]
    pub max_message_bytes: Option<usize>,
    /// Settings of the kind (`[parties.NAME.options]`); see the kind's documentation.
    #[serde(default)]
    pub options: toml::Table,
}

impl PartyConfig {
    /// A party of `kind` with default options.
    pub fn of_kind(kind: &str) -> PartyConfig {
        PartyConfig { kind: kind.to_owned(), public: false, max_message_bytes: None, options: toml::Table::new() }
    }
}

/// The parties served when the configuration names none.
pub fn default_parties() -> BTreeMap<String, PartyConfig> {
    [("chat", "chat"), ("yjs", "yjs"), ("tinybase", "tinybase")]
        .into_iter()
        .map(|(n, k)| (n.to_owned(), PartyConfig::of_kind(k)))
        .collect()
}

/// Where the S3 API listens unless configured otherwise.
pub const DEFAULT_S3_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8788);

/// One S3 access key.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Key {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

/// A bearer token and what it may do.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// The secret, sent as `Authorization: Bearer <token>`.
    pub token: String,
    /// Namespaces it may use; absent or `["*"]` means all.
    #[serde(default)]
    pub namespaces: Option<Vec<String>>,
    /// Whether it may only read.
    #[serde(default)]
    pub read_only: bool,
}

impl Token {
    /// Whether the token may use `ns`.
    pub fn allows_namespace(&self, ns: &str) -> bool {
        self.namespaces.as_ref().is_none_or(|list| list.iter().any(|n| n == "*" || n == ns))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./cairn-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            durability: Durability::Fsync,
            shards: 0,
            max_open_objects: 10_000,
            max_body_bytes: 20 * 1024 * 1024,
            cloudflare_max_body_bytes: 100 * 1024 * 1024,
            kv: cairn_kv::KvLimits::default(),
            auto_create_namespaces: true,
            namespaces: Vec::new(),
            limits: Limits::default(),
            namespace_limits: BTreeMap::new(),
            tokens: Vec::new(),
            s3_enabled: true,
            s3_listen: None,
            s3_domains: vec!["localhost".to_owned()],
            s3_keys: Vec::new(),
            buckets: cairn_bucket::BucketLimits::default(),
            rooms: RoomsConfig::default(),
            history: HistorySettings::default(),
            backup: BackupSettings::default(),
            parties: default_parties(),
        }
    }
}

/// Settings given on the command line; `None` leaves the lower layers' value.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--s3-listen`.
    pub s3_listen: Option<SocketAddr>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with its position.
        message: String,
    },
    /// An environment variable has a value that does not parse.
    #[error("invalid value {value:?} in {name}: {reason}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// The settings contradict each other.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Builds the configuration: defaults, then the file (if any), then the environment (read
    /// through `env`, so tests need not touch the process environment), then `overrides`.
    ///
    /// # Errors
    /// [`ConfigError`] if a layer cannot be read or the result is not usable.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError::Parse { path: path.display().to_string(), message: e.to_string() })?
            }
            None => Config::default(),
        };
        if let Some(v) = env("CAIRN_DATA_DIR") {
            config.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("CAIRN_LISTEN") {
            config.listen = v.parse().map_err(|_| ConfigError::Env {
                name: "CAIRN_LISTEN",
                value: v,
                reason: "expected an address such as 127.0.0.1:8787",
            })?;
        }
        if let Some(v) = env("CAIRN_DURABILITY") {
            config.durability = match v.as_str() {
                "fsync" => Durability::Fsync,
                "os" => Durability::Os,
                _ => {
                    return Err(ConfigError::Env {
                        name: "CAIRN_DURABILITY",
                        value: v,
                        reason: "expected fsync or os",
                    });
                }
            };
        }
        let number = |name: &'static str, reason: &'static str| -> Result<Option<usize>, ConfigError> {
            env(name).map(|v| v.parse().map_err(|_| ConfigError::Env { name, value: v, reason })).transpose()
        };
        if let Some(n) = number("CAIRN_SHARDS", "expected a number of threads")? {
            config.shards = n;
        }
        if let Some(n) = number("CAIRN_ROOMS_HIBERNATE_AFTER_MS", "expected a number of milliseconds")? {
            config.rooms.hibernate_after_ms = n as u64;
        }
        if let Some(n) = number("CAIRN_HISTORY_RETENTION_DAYS", "expected a number of days")? {
            config.history.retention_days = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(v) = env("CAIRN_BACKUP_TARGETS") {
            // Comma-separated; S3 settings come from the AWS_* environment.
            config.backup.targets.extend(
                v.split(',').map(str::trim).filter(|t| !t.is_empty()).map(cairn_backup::TargetConfig::from_url),
            );
        }
        if let Some(n) = number("CAIRN_BACKUP_INTERVAL_MS", "expected a number of milliseconds")? {
            config.backup.interval_ms = n as u64;
        }
        if let Some(v) = env("CAIRN_HISTORY") {
            config.history.enabled = match v.as_str() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => return Err(ConfigError::Env { name: "CAIRN_HISTORY", value: v, reason: "expected on or off" }),
            };
        }
        if let Some(n) = number("CAIRN_MAX_BODY_BYTES", "expected a number of bytes")? {
            config.max_body_bytes = n;
        }
        if let Some(v) = env("CAIRN_TOKEN") {
            config.tokens.push(Token { token: v, namespaces: None, read_only: false });
        }
        if let Some(v) = env("CAIRN_S3_LISTEN") {
            config.s3_listen = Some(v.parse().map_err(|_| ConfigError::Env {
                name: "CAIRN_S3_LISTEN",
                value: v,
                reason: "expected an address such as 127.0.0.1:8788",
            })?);
        }
        match (env("CAIRN_S3_ACCESS_KEY_ID"), env("CAIRN_S3_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret_access_key)) => {
                config.s3_keys.push(S3Key { access_key_id, secret_access_key });
            }
            (None, None) => {}
            (Some(v), None) | (None, Some(v)) => {
                return Err(ConfigError::Env {
                    name: "CAIRN_S3_ACCESS_KEY_ID",
                    value: if v.is_empty() { v } else { "(set)".to_owned() },
                    reason: "CAIRN_S3_ACCESS_KEY_ID and CAIRN_S3_SECRET_ACCESS_KEY go together",
                });
            }
        }
        if let Some(d) = &overrides.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(l) = overrides.listen {
            config.listen = l;
        }
        if let Some(l) = overrides.s3_listen {
            config.s3_listen = Some(l);
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the settings that cannot be checked field by field.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tokens.is_empty() && !self.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "refusing to listen on {} without authentication: configure a token ([[tokens]] in the \
                 config file, or CAIRN_TOKEN), or listen on a loopback address",
                self.listen
            )));
        }
        if let Some(t) = self.tokens.iter().find(|t| t.token.len() < 16) {
            return Err(ConfigError::Invalid(format!(
                "a token is {} characters long; tokens must have at least 16",
                t.token.len()
            )));
        }
        for ns in self.namespaces.iter().chain(self.namespace_limits.keys()) {
            cairn_storage::layout::validate_namespace(ns).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        if let Some(k) = self.s3_keys.iter().find(|k| k.access_key_id.is_empty() || k.secret_access_key.len() < 16) {
            return Err(ConfigError::Invalid(format!(
                "S3 access key {:?}: the id must not be empty and the secret needs at least 16 characters",
                k.access_key_id
            )));
        }
        for (name, party) in &self.parties {
            cairn_storage::layout::validate_namespace(name)
                .map_err(|e| ConfigError::Invalid(format!("party {name:?}: {e}")))?;
            crate::rooms::check_party(party).map_err(|e| ConfigError::Invalid(format!("party {name:?}: {e}")))?;
        }
        if self.max_body_bytes == 0 {
            return Err(ConfigError::Invalid("max_body_bytes must be positive".to_owned()));
        }
        let message_limits = std::iter::once(("[rooms] max_message_bytes".to_owned(), self.rooms.max_message_bytes))
            .chain(self.parties.iter().filter_map(|(name, p)| {
                p.max_message_bytes.map(|n| (format!("[parties.{name}] max_message_bytes"), n))
            }));
        for (what, n) in message_limits {
            if n == 0 || n > MAX_WEBSOCKET_MESSAGE_BYTES {
                return Err(ConfigError::Invalid(format!(
                    "{what} is {n}; it must be between 1 and {MAX_WEBSOCKET_MESSAGE_BYTES}"
                )));
            }
        }
        if self.rooms.max_queued_bytes < self.rooms.max_message_bytes {
            return Err(ConfigError::Invalid(format!(
                "[rooms] max_queued_bytes ({}) must be at least max_message_bytes ({})",
                self.rooms.max_queued_bytes, self.rooms.max_message_bytes
            )));
        }
        let history_kept = self.history.enabled && self.durability == Durability::Fsync;
        if !self.backup.targets.is_empty() && !history_kept {
            return Err(ConfigError::Invalid(
                "backup ships the commit log kept as history: it needs [history] enabled = true and durability = \"fsync\""
                    .to_owned(),
            ));
        }
        Ok(())
    }
}
