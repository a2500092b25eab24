//! Cairn's server (the real router, as `cairn serve` runs it) started inside the benchmark
//! process on a loopback port bound to 0, on its own two-worker tokio runtime.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;

use crate::load::runtime;

/// A running in-process server.
pub(crate) struct Server {
    runtime: tokio::runtime::Runtime,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    stop: tokio::sync::oneshot::Sender<()>,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
}

impl Server {
    /// Starts a server keeping its data in `data_dir`, with `fsync` durability and otherwise
    /// the default configuration (no tokens: loopback only).
    pub(crate) fn start(data_dir: &Path) -> anyhow::Result<Server> {
        let config = cairn_server::Config {
            data_dir: data_dir.to_owned(),
            durability: cairn_runtime::Durability::Fsync,
            ..cairn_server::Config::default()
        };
        let runtime = runtime()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).context("bind")?;
        let addr = listener.local_addr().context("addr")?;
        let storage = cairn_server::open_runtime(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = runtime.spawn(async move {
            cairn_server::serve(listener, &config, storage, async {
                let _ = stop_rx.await;
            })
            .await
        });
        Ok(Server { runtime, task, stop, addr })
    }

    /// Stops the server and waits for it to close its storage.
    pub(crate) fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.runtime.block_on(self.task).context("server task")?.context("serve")
    }
}
