//! `cairn bucket ...`: buckets on a running server, through its `/v1/buckets` API. Transfers
//! stream (a file is never read whole into memory) and show a progress bar on a terminal.

use std::path::Path;

use cairn_client::{Client, Error, PutObject};
use clap::Subcommand;
use futures_util::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::AsyncWriteExt as _;

use crate::remote::{ExitCode, Output, invalid};

#[derive(Subcommand)]
pub(crate) enum BucketCommand {
    /// Create a bucket.
    Create { name: String },
    /// List buckets (JSON).
    List,
    /// Delete an empty bucket.
    Delete { name: String },
    /// Upload FILE (or `-` for standard input) as KEY.
    Put {
        bucket: String,
        key: String,
        file: String,
        /// Content-Type to store.
        #[arg(long)]
        content_type: Option<String>,
    },
    /// Download KEY to FILE (or standard output when FILE is `-` or left out).
    Get { bucket: String, key: String, file: Option<String> },
    /// List objects (every page; JSON lines), optionally under a prefix and rolled up at a
    /// delimiter.
    Ls {
        bucket: String,
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long)]
        delimiter: Option<String>,
    },
    /// Delete keys.
    Rm {
        bucket: String,
        #[arg(required = true)]
        keys: Vec<String>,
    },
}

/// Runs one command and returns the exit code.
pub(crate) fn run(url: &str, token: Option<String>, command: BucketCommand) -> ExitCode {
    crate::remote::run(url, token, |client| async move { execute(&client, command).await })
}

/// A progress bar for `len` bytes, drawn only when stderr is a terminal.
fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar
}

async fn put(
    client: &Client,
    bucket: &str,
    key: &str,
    file: &str,
    content_type: Option<String>,
) -> Result<Output, Error> {
    let object = if file == "-" {
        let mut bytes = Vec::new();
        let mut stdin = tokio::io::stdin();
        tokio::io::AsyncReadExt::read_to_end(&mut stdin, &mut bytes)
            .await
            .map_err(|e| invalid(format!("cannot read standard input: {e}")))?;
        let len = bytes.len() as u64;
        PutObject { body: bytes.into(), len, content_type }
    } else {
        let f = tokio::fs::File::open(file).await.map_err(|e| invalid(format!("cannot open {file}: {e}")))?;
        let len = f.metadata().await.map_err(|e| invalid(format!("cannot read {file}: {e}")))?.len();
        let bar = progress(len, &format!("put {key}"));
        let counted = bar.clone();
        let stream = tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024).inspect(move |chunk| {
            if let Ok(c) = chunk {
                counted.inc(c.len() as u64);
            }
        });
        let object = PutObject { body: reqwest::Body::wrap_stream(stream), len, content_type };
        let out = client.buckets().put(bucket, key, object).await;
        bar.finish_and_clear();
        return out.map(Output::Json);
    };
    client.buckets().put(bucket, key, object).await.map(Output::Json)
}

async fn get(client: &Client, bucket: &str, key: &str, file: Option<&str>) -> Result<Output, Error> {
    let Some(res) = client.buckets().get(bucket, key).await? else { return Ok(Output::NotFound) };
    let len = res.content_length().unwrap_or(0);
    let url = res.url().to_string();
    let mut body = res.bytes_stream();
    let to_stdout = matches!(file, None | Some("-"));
    let bar = progress(len, &format!("get {key}"));
    if to_stdout {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let write_err = |path: &str, e: std::io::Error| invalid(format!("cannot write {path}: {e}"));
    match file.filter(|f| *f != "-") {
        Some(path) => {
            // Written to a temporary name first, so an interrupted download leaves no partial file.
            let tmp = format!("{path}.cairn-partial");
            let mut out = tokio::fs::File::create(&tmp).await.map_err(|e| write_err(&tmp, e))?;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|source| Error::Transport { url: url.clone(), source })?;
                out.write_all(&chunk).await.map_err(|e| write_err(&tmp, e))?;
                bar.inc(chunk.len() as u64);
            }
            out.sync_all().await.map_err(|e| write_err(&tmp, e))?;
            tokio::fs::rename(&tmp, path).await.map_err(|e| write_err(path, e))?;
            bar.finish_and_clear();
            Ok(Output::Json(serde_json::json!({"key": key, "file": Path::new(path), "size": len})))
        }
        None => {
            let mut stdout = tokio::io::stdout();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|source| Error::Transport { url: url.clone(), source })?;
                stdout.write_all(&chunk).await.map_err(|e| write_err("standard output", e))?;
            }
            stdout.flush().await.map_err(|e| write_err("standard output", e))?;
            Ok(Output::Text(String::new()))
        }
    }
}

async fn ls(client: &Client, bucket: &str, prefix: Option<&str>, delimiter: Option<&str>) -> Result<Output, Error> {
    let mut lines = String::new();
    let mut cursor: Option<String> = None;
    // Bounded: each page advances the cursor; a server that repeated one would be a bug, so
    // stop after far more pages than any bucket needs.
    for _ in 0..10_000_000 {
        let page = client.buckets().list_objects(bucket, prefix, delimiter, cursor.as_deref()).await?;
        for p in &page.delimited_prefixes {
            lines.push_str(&serde_json::json!({ "prefix": p }).to_string());
            lines.push('\n');
        }
        for o in &page.objects {
            lines.push_str(&o.to_string());
            lines.push('\n');
        }
        match page.cursor {
            Some(c) if page.truncated && cursor.as_deref() != Some(c.as_str()) => cursor = Some(c),
            _ => break,
        }
    }
    Ok(Output::Text(lines))
}

async fn execute(client: &Client, command: BucketCommand) -> Result<Output, Error> {
    let buckets = client.buckets();
    match command {
        BucketCommand::Create { name } => buckets.create(&name).await.map(Output::Json),
        BucketCommand::List => buckets.list().await.map(Output::Json),
        BucketCommand::Delete { name } => {
            buckets.delete(&name).await?;
            Ok(Output::Json(serde_json::json!({ "deleted": name })))
        }
        BucketCommand::Put { bucket, key, file, content_type } => put(client, &bucket, &key, &file, content_type).await,
        BucketCommand::Get { bucket, key, file } => get(client, &bucket, &key, file.as_deref()).await,
        BucketCommand::Ls { bucket, prefix, delimiter } => {
            ls(client, &bucket, prefix.as_deref(), delimiter.as_deref()).await
        }
        BucketCommand::Rm { bucket, keys } => {
            for k in &keys {
                buckets.delete_object(&bucket, k).await?;
            }
            Ok(Output::Json(serde_json::json!({ "deleted": keys })))
        }
    }
}
