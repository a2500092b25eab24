//! The `cairn` binary. Parses arguments and dispatches; the work lives in library crates.

use std::path::PathBuf;

mod backup_cmd;
mod bucket_cmd;
mod kv_cmd;
mod object_cmd;
mod remote;
mod sql_cmd;
mod transfer;
mod wrangler_cmd;

use clap::{Parser, Subcommand};

/// Cairn: durable state for rooms, objects and apps.
#[derive(Parser)]
#[command(name = "cairn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API. Settings: defaults < --config file < CAIRN_* environment < flags.
    Serve {
        /// Data directory [env: CAIRN_DATA_DIR] (default ./cairn-data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address to listen on [env: CAIRN_LISTEN] (default 127.0.0.1:8787).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Address of the S3 API [env: CAIRN_S3_LISTEN] (default 127.0.0.1:8788).
        #[arg(long)]
        s3_listen: Option<std::net::SocketAddr>,
        /// TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Talk to a running server: get, put, delete, list, sql. Prints JSON; exit codes: 0 ok,
    /// 3 not found, 4 refused (4xx), 5 server error (5xx), 6 unreachable.
    Object {
        /// Server URL.
        #[arg(long, env = "CAIRN_URL", default_value = "http://127.0.0.1:8787", global = true)]
        url: String,
        /// Bearer token.
        #[arg(long, env = "CAIRN_TOKEN", hide_env_values = true, global = true)]
        token: Option<String>,
        #[command(subcommand)]
        command: object_cmd::ObjectCommand,
    },
    /// Buckets on a running server: create, list, delete, put, get, ls, rm. Transfers stream
    /// with a progress bar. Exit codes as for `object`.
    Bucket {
        /// Server URL.
        #[arg(long, env = "CAIRN_URL", default_value = "http://127.0.0.1:8787", global = true)]
        url: String,
        /// Bearer token.
        #[arg(long, env = "CAIRN_TOKEN", hide_env_values = true, global = true)]
        token: Option<String>,
        #[command(subcommand)]
        command: bucket_cmd::BucketCommand,
    },
    /// KV namespaces on a running server: namespace list|create|rename|delete, get, put,
    /// delete, list, bulk-put, bulk-delete. Exit codes as for `object`.
    Kv {
        /// Server URL.
        #[arg(long, env = "CAIRN_URL", default_value = "http://127.0.0.1:8787", global = true)]
        url: String,
        /// Bearer token.
        #[arg(long, env = "CAIRN_TOKEN", hide_env_values = true, global = true)]
        token: Option<String>,
        #[command(subcommand)]
        command: kv_cmd::KvCommand,
    },
    /// SQL databases on a running server: create, list, info, delete, query, export, import,
    /// migrations create|list|apply. Exit codes as for `object`.
    Sql {
        /// Server URL.
        #[arg(long, env = "CAIRN_URL", default_value = "http://127.0.0.1:8787", global = true)]
        url: String,
        /// Bearer token.
        #[arg(long, env = "CAIRN_TOKEN", hide_env_values = true, global = true)]
        token: Option<String>,
        #[command(subcommand)]
        command: sql_cmd::SqlCommand,
    },
    /// Import data from other tools into a running server: `wrangler` (the local state of
    /// Wrangler and Miniflare). Exit codes as for `object`.
    Import {
        /// Server URL.
        #[arg(long, env = "CAIRN_URL", default_value = "http://127.0.0.1:8787", global = true)]
        url: String,
        /// Bearer token.
        #[arg(long, env = "CAIRN_TOKEN", hide_env_values = true, global = true)]
        token: Option<String>,
        #[command(subcommand)]
        command: wrangler_cmd::ImportCommand,
    },
    /// Rebuild a data directory from a backup target (a directory or s3://bucket/prefix),
    /// checking every checksum, as of --at if given. Then `cairn serve --data-dir DIR`.
    Restore {
        /// The backup target.
        #[arg(long)]
        from: String,
        /// The directory to create (must be empty or absent).
        #[arg(long, default_value = "./cairn-data")]
        data_dir: PathBuf,
        /// Restore the state as of this time (RFC 3339, or Unix seconds).
        #[arg(long)]
        at: Option<String>,
        #[command(flatten)]
        s3: backup_cmd::TargetArgs,
    },
    /// Continuous backup: `status`.
    Backup {
        #[command(subcommand)]
        command: backup_cmd::BackupCommand,
    },
    /// Run a benchmark and print one JSON object per figure.
    Bench {
        #[command(subcommand)]
        which: Bench,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// The HTTP server under keep-alive load, beside a bare hyper server answering from memory.
    Http {
        /// Directory for the benchmark's files (removed afterwards).
        #[arg(long, default_value = "./cairn-bench")]
        dir: PathBuf,
        /// Requests per connection at concurrency 1 (divided by the concurrency above that).
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
    },
    /// The storage engine and runtime against raw rusqlite, on the same file system.
    Storage {
        /// Directory for the benchmark's files (removed afterwards).
        #[arg(long, default_value = "./cairn-bench")]
        dir: PathBuf,
        /// Scale of the iteration counts (1.0 is the documented run).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Objects to create for the memory figure.
        #[arg(long, default_value_t = 100_000)]
        objects: usize,
        /// Objects kept open for the memory figure.
        #[arg(long, default_value_t = 1_000)]
        open: usize,
        /// Run without point-in-time history (to measure what it costs).
        #[arg(long)]
        no_history: bool,
    },
    /// Cloudflare KV and D1 API (`/client/v4`) against Redis and Miniflare, which it starts
    /// (install them with scripts/bench-kv.sh).
    Kv {
        /// Directory for every store's files (removed afterwards).
        #[arg(long, default_value = "./cairn-bench")]
        dir: PathBuf,
        /// Requests per run at concurrency 32 (lists: a tenth; batches of 1,000 rows: a thousandth).
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        /// The redis-server binary.
        #[arg(long, default_value = "redis-server")]
        redis_server: PathBuf,
        /// The node binary.
        #[arg(long, default_value = "node")]
        node: PathBuf,
        /// The npm prefix Miniflare is installed in.
        #[arg(long, default_value = "target/bench-node")]
        miniflare_prefix: PathBuf,
    },
    /// Buckets over the S3 API of a `cairn serve` child process, against raw file I/O on the
    /// same file system: 64 MiB PUTs and GETs, 4 KiB PUTs and GETs at concurrency 16, and the
    /// server's peak memory while it receives a 1 GiB object.
    S3 {
        /// Directory for the server's data and the anchor's files (removed afterwards).
        #[arg(long, default_value = "./cairn-bench")]
        dir: PathBuf,
        /// 64 MiB objects to put (each is then read three times).
        #[arg(long, default_value_t = 8)]
        objects: usize,
        /// Requests of each 4 KiB run at concurrency 16.
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        /// Size of the object uploaded for the memory figure, in MiB.
        #[arg(long, default_value_t = 1024)]
        memory_mib: u64,
    },
    /// Rooms over WebSockets: the `chat` party of a `cairn serve` child process against the
    /// same chat room as a partyserver Server with hibernation on Miniflare/workerd (install it
    /// with scripts/bench-rooms.sh): sockets connected and held, broadcast latency in a large
    /// room, resident memory per hibernated socket, durable chat messages per second.
    Rooms {
        /// Directory for the server's data and the anchor's files (removed afterwards).
        #[arg(long, default_value = "./cairn-bench")]
        dir: PathBuf,
        /// The node binary that runs Miniflare.
        #[arg(long, default_value = "node")]
        node: PathBuf,
        /// The npm prefix miniflare, partyserver and esbuild are installed in.
        #[arg(long, default_value = "target/bench-node")]
        npm_prefix: PathBuf,
        /// Sockets held open at once for the connect and memory figures.
        #[arg(long, default_value_t = 10_000)]
        sockets: usize,
        /// Rooms those sockets are spread over.
        #[arg(long, default_value_t = 1_000)]
        rooms: usize,
        /// Members of the broadcast room.
        #[arg(long, default_value_t = 1_000)]
        broadcast_members: usize,
        /// Timed broadcast rounds (one message to every member each).
        #[arg(long, default_value_t = 200)]
        broadcast_rounds: usize,
        /// Rooms of the chat workload.
        #[arg(long, default_value_t = 10)]
        chat_rooms: usize,
        /// Clients in each chat room.
        #[arg(long, default_value_t = 10)]
        chat_clients: usize,
        /// Chat messages sent in the timed run, in all.
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        /// Cairn's room hibernation delay, in milliseconds: by default 10 s, workerd's fixed
        /// delay and Cairn's default.
        #[arg(long, default_value_t = 10_000)]
        hibernate_after_ms: u64,
    },
    /// cairn-store's auto-save per persister (JSON file, SQLite, Cairn object embedded and
    /// over HTTP, PostgreSQL with --postgres-url) against the same single-cell changes written
    /// straight to SQLite.
    Store {
        /// Directory for every file (removed afterwards).
        #[arg(long, default_value = "./cairn-bench")]
        dir: PathBuf,
        /// Rows in the store's one table.
        #[arg(long, default_value_t = 10_000)]
        rows: usize,
        /// Changes in the stream, made as fast as possible with auto-save on (the anchor's
        /// autocommit run makes the first 20,000 of them).
        #[arg(long, default_value_t = 1_000_000)]
        changes: usize,
        /// Changes made one at a time, each once the previous one is saved.
        #[arg(long, default_value_t = 500)]
        latency_changes: usize,
        /// A PostgreSQL server for the PostgreSQL persisters (skipped without one).
        #[arg(long)]
        postgres_url: Option<String>,
    },
    /// Continuous backup and history: write throughput with backup on against off, backup lag,
    /// restore speed against a plain copy, and history's bytes after a day of updates.
    Backup {
        /// Directory for every file (removed afterwards).
        #[arg(long, default_value = "./cairn-bench")]
        dir: PathBuf,
        /// Where the backup targets go (default: inside --dir, the same disk as the data).
        #[arg(long)]
        target_dir: Option<PathBuf>,
        /// Concurrent writers, one object each.
        #[arg(long, default_value_t = 64)]
        objects: usize,
        /// Seconds of each throughput run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Throughput runs of each kind (backup off and on, alternating).
        #[arg(long, default_value_t = 2)]
        reps: usize,
        /// The backup's pass interval, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Updates of each key per simulated hour in the day-like workload (100 objects of 100
        /// keys for 24 hours).
        #[arg(long, default_value_t = 2)]
        day_updates_per_hour: usize,
    },
}

/// Prints one benchmark figure as a line of JSON.
#[allow(clippy::print_stdout)]
fn print_figure<T: serde::Serialize>(figure: &T) {
    println!("{}", serde_json::to_string(figure).unwrap_or_default());
}

fn serve(
    data_dir: Option<PathBuf>,
    listen: Option<std::net::SocketAddr>,
    s3_listen: Option<std::net::SocketAddr>,
    file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let overrides = cairn_server::Overrides { data_dir, listen, s3_listen };
    let config = cairn_server::Config::load(file.as_deref(), |k| std::env::var(k).ok(), &overrides)?;
    cairn_server::Server::builder().config(config).run()
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { data_dir, listen, s3_listen, config } => serve(data_dir, listen, s3_listen, config)?,
        Command::Restore { from, data_dir, at, s3 } => backup_cmd::restore(&from, data_dir, at, &s3)?,
        Command::Backup { command } => backup_cmd::run(command)?,
        Command::Object { url, token, command } => {
            let code = object_cmd::run(&url, token, command);
            std::process::exit(code as i32);
        }
        Command::Bucket { url, token, command } => {
            let code = bucket_cmd::run(&url, token, command);
            std::process::exit(code as i32);
        }
        Command::Kv { url, token, command } => {
            let code = kv_cmd::run(&url, token, command);
            std::process::exit(code as i32);
        }
        Command::Import { url, token, command } => {
            let code = wrangler_cmd::run(&url, token, command);
            std::process::exit(code as i32);
        }
        Command::Sql { url, token, command } => {
            let code = sql_cmd::run(&url, token, command);
            std::process::exit(code as i32);
        }
        Command::Bench { which: Bench::Http { dir, requests } } => {
            cairn_bench::http(&cairn_bench::HttpBenchOptions { dir: dir.clone(), requests }, print_figure)?;
            let _ = std::fs::remove_dir(&dir);
        }
        Command::Bench { which: Bench::Storage { dir, scale, objects, open, no_history } } => {
            let opts = cairn_bench::StorageBenchOptions {
                dir: dir.clone(),
                scale,
                memory_objects: objects,
                memory_open: open,
                history: !no_history,
            };
            cairn_bench::storage(&opts, print_figure)?;
            // The work directory inside `dir` is removed; remove `dir` too if it is now empty.
            let _ = std::fs::remove_dir(&dir);
        }
        Command::Bench { which: Bench::Kv { dir, requests, redis_server, node, miniflare_prefix } } => {
            let opts = cairn_bench::KvBenchOptions { dir: dir.clone(), requests, redis_server, node, miniflare_prefix };
            cairn_bench::kv(&opts, print_figure)?;
            let _ = std::fs::remove_dir(&dir);
        }
        Command::Bench { which: Bench::S3 { dir, objects, requests, memory_mib } } => {
            use anyhow::Context as _;
            let opts = cairn_bench::S3BenchOptions {
                dir: dir.clone(),
                // The server under test is this binary, started as `cairn serve`.
                server: std::env::current_exe().context("find the cairn binary")?,
                large_objects: objects,
                small_requests: requests,
                memory_mib,
            };
            cairn_bench::s3(&opts, print_figure)?;
            let _ = std::fs::remove_dir(&dir);
        }
        Command::Bench {
            which: Bench::Backup { dir, target_dir, objects, seconds, reps, interval_ms, day_updates_per_hour },
        } => {
            let opts = cairn_bench::backup::BackupBenchOptions {
                dir: dir.clone(),
                target_dir,
                objects,
                seconds,
                reps,
                interval: std::time::Duration::from_millis(interval_ms),
                day_updates_per_hour,
                ..cairn_bench::backup::BackupBenchOptions::default()
            };
            cairn_bench::backup::backup(&opts, print_figure)?;
            let _ = std::fs::remove_dir(&dir);
        }
        Command::Bench {
            which:
                Bench::Rooms {
                    dir,
                    node,
                    npm_prefix,
                    sockets,
                    rooms,
                    broadcast_members,
                    broadcast_rounds,
                    chat_rooms,
                    chat_clients,
                    messages,
                    hibernate_after_ms,
                },
        } => {
            use anyhow::Context as _;
            let opts = cairn_bench::RoomsBenchOptions {
                dir: dir.clone(),
                // The server under test is this binary, started as `cairn serve`.
                server: std::env::current_exe().context("find the cairn binary")?,
                node,
                npm_prefix,
                sockets,
                rooms,
                broadcast_members,
                broadcast_rounds,
                chat_rooms,
                chat_clients,
                messages,
                hibernate_after_ms,
            };
            cairn_bench::rooms(&opts, print_figure)?;
            let _ = std::fs::remove_dir(&dir);
        }
        Command::Bench { which: Bench::Store { dir, rows, changes, latency_changes, postgres_url } } => {
            let opts = cairn_bench::store::StoreBenchOptions {
                dir: dir.clone(),
                rows,
                changes,
                latency_changes,
                postgres_url,
            };
            cairn_bench::store::store(&opts, print_figure)?;
            let _ = std::fs::remove_dir(&dir);
        }
    }
    Ok(())
}
