//! The `cairn` binary. Parses arguments and dispatches; the work lives in library crates.

use std::path::PathBuf;

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
    /// Run a benchmark and print one JSON object per figure.
    Bench {
        #[command(subcommand)]
        which: Bench,
    },
}

#[derive(Subcommand)]
enum Bench {
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
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Bench { which: Bench::Storage { dir, scale, objects, open } } => {
            let opts = cairn_bench::StorageBenchOptions {
                dir: dir.clone(),
                scale,
                memory_objects: objects,
                memory_open: open,
            };
            cairn_bench::storage(&opts, |figure| {
                #[allow(clippy::print_stdout)]
                {
                    println!("{}", serde_json::to_string(figure).unwrap_or_default());
                }
            })?;
            // The work directory inside `dir` is removed; remove `dir` too if it is now empty.
            let _ = std::fs::remove_dir(&dir);
        }
    }
    Ok(())
}
