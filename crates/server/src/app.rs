//! [`Server`]: the whole server as an application runs it, with its own room types.
//!
//! ```no_run
//! # use cairn_rooms::{Room, Context, Connection, Message, RoomError, Frame};
//! #[derive(Default)]
//! struct Echo;
//! impl Room for Echo {
//!     fn on_message(&mut self, conn: &Connection, m: Message, ctx: &mut Context<'_>) -> Result<(), RoomError> {
//!         ctx.send(conn, Frame::from(m));
//!         Ok(())
//!     }
//! }
//! # fn main() -> anyhow::Result<()> {
//! let config = cairn_server::Config::load(None, |k| std::env::var(k).ok(), &Default::default())?;
//! cairn_server::Server::builder().config(config).room::<Echo>("echo").run()
//! # }
//! ```

use anyhow::Context as _;
use cairn_rooms::{Room, RoomHostBuilder, RoomInfo};

use crate::config::Config;
use crate::rooms::Registrar;
use crate::state::AppState;

/// Writes a line to stderr, ignoring a closed stderr (the server must not stop for that).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// The Cairn server: `cairn serve`, or an application's own binary with its own rooms.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// A builder with the default configuration.
    pub fn builder() -> ServerBuilder {
        ServerBuilder { config: Config::default(), parties: Vec::new() }
    }
}

/// Configures a [`Server`]: its [`Config`] and the room types it hosts.
pub struct ServerBuilder {
    config: Config,
    parties: Vec<Registrar>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder").field("config", &self.config).field("parties", &self.parties.len()).finish()
    }
}

impl ServerBuilder {
    /// Uses `config` (see [`Config::load`]).
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Hosts room type `R` as party `party` (`/parties/{party}/{room}`); each room gets
    /// `R::default()`. Replaces a configured built-in party of the same name.
    #[must_use]
    pub fn room<R: Room + Default>(mut self, party: &str) -> Self {
        let party = party.to_owned();
        self.parties.push(Box::new(move |b: RoomHostBuilder| b.room::<R>(&party)));
        self
    }

    /// Hosts party `party` with a factory that makes each room's instance.
    #[must_use]
    pub fn room_with<R, F>(mut self, party: &str, factory: F) -> Self
    where
        R: Room,
        F: Fn(&RoomInfo) -> R + Send + Sync + 'static,
    {
        let party = party.to_owned();
        self.parties.push(Box::new(move |b: RoomHostBuilder| b.room_with(&party, factory)));
        self
    }

    /// Serves on `listener` (and the S3 API on `s3_listener`) until `shutdown` resolves, over
    /// the data directory of the configuration.
    ///
    /// # Errors
    /// The data directory cannot be opened, a party cannot be registered, or a listener fails.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        s3_listener: Option<tokio::net::TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let config = self.config;
        let runtime = crate::open_runtime(&config).context("open the data directory")?;
        let state = match AppState::with_rooms(runtime.clone(), &config, self.parties) {
            Ok(state) => state,
            Err(e) => {
                runtime.close();
                anyhow::bail!("register the parties: {e}");
            }
        };
        crate::serve_state(state, listener, s3_listener, &config, shutdown).await.context("serve")
    }

    /// Runs the server as `cairn serve` does: binds the configured addresses, says where it
    /// listens and where its data lives, and serves until SIGINT or SIGTERM. Blocks; starts its
    /// own tokio runtime.
    ///
    /// # Errors
    /// As [`ServerBuilder::serve`], plus an address that cannot be bound.
    pub fn run(self) -> anyhow::Result<()> {
        let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start tokio")?;
        tokio.block_on(self.run_async())
    }

    async fn run_async(self) -> anyhow::Result<()> {
        let config = &self.config;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listen on {}", config.listen))?;
        let addr = listener.local_addr().context("read the listening address")?;
        say!(
            "cairn serving http://{addr} with data in {} ({} durability{})",
            config.data_dir.display(),
            match config.durability {
                cairn_runtime::Durability::Fsync => "fsync",
                cairn_runtime::Durability::Os => "os",
            },
            if config.tokens.is_empty() { ", no authentication: loopback only" } else { "" }
        );
        let s3_listener = if config.s3_enabled {
            let s3_addr = config.s3_listen.unwrap_or(crate::DEFAULT_S3_LISTEN);
            let l = match tokio::net::TcpListener::bind(s3_addr).await {
                Ok(l) => Some(l),
                // The default port may be taken (another server, tests): serve the rest.
                Err(e) if config.s3_listen.is_none() => {
                    say!("cairn: not serving the S3 API: cannot listen on {s3_addr}: {e} (choose --s3-listen)");
                    None
                }
                Err(e) => return Err(e).with_context(|| format!("listen on {s3_addr} for the S3 API")),
            };
            if let Some(l) = &l {
                let addr = l.local_addr().context("read the S3 listening address")?;
                say!(
                    "cairn s3 serving http://{addr}{}",
                    if config.s3_keys.is_empty() {
                        " (no access keys: every request is refused; set CAIRN_S3_ACCESS_KEY_ID and \
                         CAIRN_S3_SECRET_ACCESS_KEY or [[s3_keys]])"
                    } else {
                        ""
                    }
                );
            }
            l
        } else {
            None
        };
        self.serve(listener, s3_listener, shutdown_signal()).await?;
        say!("cairn stopped");
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
