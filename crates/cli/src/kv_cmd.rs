//! `cairn kv ...`: KV namespaces on a running server, through its Cloudflare-compatible API.
//! Namespaces may be named by id or by title.

use cairn_client::{Client, Error, KvPut};
use clap::Subcommand;

use crate::remote::{ExitCode, Output, invalid, read_value};

#[derive(Subcommand)]
pub(crate) enum KvCommand {
    /// Manage namespaces.
    Namespace {
        #[command(subcommand)]
        command: NamespaceCommand,
    },
    /// Print a value's bytes (or its metadata as JSON with --metadata).
    Get {
        namespace: String,
        key: String,
        /// Print the key's metadata instead of its value.
        #[arg(long)]
        metadata: bool,
    },
    /// Store a value: VALUE as text, or `-` to read standard input.
    Put {
        namespace: String,
        key: String,
        value: String,
        /// Seconds to live (at least 60).
        #[arg(long)]
        ttl: Option<u64>,
        /// Absolute expiry, seconds since the epoch.
        #[arg(long)]
        expiration: Option<u64>,
        /// Metadata, as JSON.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// Delete a key.
    Delete { namespace: String, key: String },
    /// List keys (every page, or one page with --limit/--cursor); prints JSON lines.
    List {
        namespace: String,
        #[arg(long)]
        prefix: Option<String>,
        /// Most keys (one page).
        #[arg(long)]
        limit: Option<u32>,
        /// Continue after this cursor (one page).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Write pairs from a JSON file (`[{"key", "value", "base64"?, "expiration_ttl"?, ...}]`,
    /// `-` for standard input), atomically.
    BulkPut { namespace: String, file: String },
    /// Delete the keys listed in a JSON file (`["key", ...]`, `-` for standard input).
    BulkDelete { namespace: String, file: String },
    /// Write every key (under --prefix) with its value, expiration and metadata to FILE (or
    /// standard output) as Cloudflare's bulk JSON, which `wrangler kv bulk put` and `import`
    /// read: values as text, or base64 when they are not UTF-8.
    Export {
        namespace: String,
        file: Option<std::path::PathBuf>,
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Write the pairs of a bulk JSON file (`-` for standard input) in requests of at most
    /// 10,000 pairs and 100 MB, each atomic. Pairs that have expired (or expire within 60 s,
    /// which KV refuses) are skipped and counted.
    Import { namespace: String, file: String },
}

/// Most pairs in one bulk write (Workers KV's limit).
const BULK_PAIRS: usize = 10_000;
/// Largest body of one bulk write (Workers KV's limit is 100 MB).
const BULK_BYTES: usize = 100_000_000;

/// What [`put_in_chunks`] did.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// Pairs written.
    pub(crate) written: u64,
    /// Bulk requests made.
    pub(crate) requests: u64,
    /// Pairs skipped because they have expired or expire within 60 s.
    pub(crate) expired: u64,
}

/// Writes bulk items (`{"key", "value", "base64"?, "expiration"?, "expiration_ttl"?,
/// "metadata"?}`) in atomic requests of at most [`BULK_PAIRS`] pairs and [`BULK_BYTES`] bytes.
pub(crate) async fn put_in_chunks(
    kv: &cairn_client::KvClient,
    ns: &str,
    items: Vec<serde_json::Value>,
    bar: &indicatif::ProgressBar,
) -> Result<Written, Error> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut done = Written::default();
    let mut batch: Vec<serde_json::Value> = Vec::new();
    let mut batch_bytes = 2;
    for (i, item) in items.into_iter().enumerate() {
        if !(item["key"].is_string() && item["value"].is_string()) {
            return Err(invalid(format!("pair {i} needs a \"key\" and a \"value\", both strings: {item}")));
        }
        if item["expiration"].as_u64().is_some_and(|e| e < now + 60) {
            done.expired += 1;
            bar.inc(1);
            continue;
        }
        let size = item.to_string().len() + 1;
        if !batch.is_empty() && (batch.len() >= BULK_PAIRS || batch_bytes + size > BULK_BYTES) {
            flush(kv, ns, &mut batch, &mut done, bar).await?;
            batch_bytes = 2;
        }
        batch.push(item);
        batch_bytes += size;
    }
    flush(kv, ns, &mut batch, &mut done, bar).await?;
    Ok(done)
}

async fn flush(
    kv: &cairn_client::KvClient,
    ns: &str,
    batch: &mut Vec<serde_json::Value>,
    done: &mut Written,
    bar: &indicatif::ProgressBar,
) -> Result<(), Error> {
    if batch.is_empty() {
        return Ok(());
    }
    let n = batch.len() as u64;
    kv.bulk_put(ns, serde_json::Value::Array(std::mem::take(batch))).await?;
    done.written += n;
    done.requests += 1;
    bar.inc(n);
    Ok(())
}

/// Every pair under `prefix` as bulk JSON items. Values come 100 keys at a time as text; a
/// value that is not UTF-8 (its text holds U+FFFD), or a batch the server will not return at
/// once, is read key by key as bytes. Keys deleted while the export runs are left out.
async fn export_items(
    kv: &cairn_client::KvClient,
    ns: &str,
    prefix: Option<&str>,
) -> Result<Vec<serde_json::Value>, Error> {
    use base64::Engine as _;
    let mut keys: Vec<serde_json::Value> = Vec::new();
    let mut cursor: Option<String> = None;
    // Bounded: a namespace of 10^9 keys has 10^6 pages of 1,000.
    for _ in 0..1_000_000 {
        let (page, next) = kv.list(ns, prefix, None, cursor.as_deref()).await?;
        keys.extend(page);
        if next.is_empty() {
            break;
        }
        cursor = Some(next);
    }
    let bar = crate::transfer::progress_items(keys.len() as u64, "export");
    let mut items = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(100) {
        let names: Vec<String> = chunk.iter().filter_map(|k| k["name"].as_str().map(str::to_owned)).collect();
        let texts = kv.bulk_get(ns, &names).await.ok();
        for (entry, name) in chunk.iter().zip(&names) {
            let bytes = match texts.as_ref().and_then(|t| t.get(name)) {
                Some(serde_json::Value::String(t)) if !t.contains('\u{FFFD}') => Some(t.clone().into_bytes()),
                Some(serde_json::Value::Null) => None,
                _ => kv.get(ns, name).await?,
            };
            let Some(bytes) = bytes else { continue };
            let mut item = serde_json::json!({ "key": name });
            match String::from_utf8(bytes) {
                Ok(text) => item["value"] = text.into(),
                Err(e) => {
                    item["value"] = base64::engine::general_purpose::STANDARD.encode(e.into_bytes()).into();
                    item["base64"] = true.into();
                }
            }
            for field in ["expiration", "metadata"] {
                if let Some(v) = entry.get(field).filter(|v| !v.is_null()) {
                    item[field] = v.clone();
                }
            }
            items.push(item);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(items)
}

/// Bulk JSON as a file: one pair per line.
fn bulk_json(items: &[serde_json::Value]) -> String {
    let lines: Vec<String> = items.iter().map(serde_json::Value::to_string).collect();
    if lines.is_empty() { "[]\n".to_owned() } else { format!("[\n{}\n]\n", lines.join(",\n")) }
}

#[derive(Subcommand)]
pub(crate) enum NamespaceCommand {
    /// List namespaces.
    List,
    /// Create a namespace.
    Create { title: String },
    /// Rename a namespace.
    Rename { namespace: String, title: String },
    /// Delete a namespace and everything in it.
    Delete { namespace: String },
}

/// Runs one command and returns the exit code.
pub(crate) fn run(url: &str, token: Option<String>, command: KvCommand) -> ExitCode {
    crate::remote::run(url, token, |client| async move { execute(&client, command).await })
}

fn read_json(file: &str) -> Result<serde_json::Value, Error> {
    let bytes = if file == "-" {
        read_value("-").map_err(invalid)?
    } else {
        std::fs::read(file).map_err(|e| invalid(format!("cannot read {file}: {e}")))?
    };
    serde_json::from_slice(&bytes).map_err(|e| invalid(format!("{file} is not JSON: {e}")))
}

async fn execute(client: &Client, command: KvCommand) -> Result<Output, Error> {
    let kv = client.kv();
    Ok(match command {
        KvCommand::Namespace { command } => Output::Json(match command {
            NamespaceCommand::List => kv.namespaces().await?.into(),
            NamespaceCommand::Create { title } => kv.create_namespace(&title).await?,
            NamespaceCommand::Rename { namespace, title } => {
                kv.rename_namespace(&kv.resolve(&namespace).await?, &title).await?
            }
            NamespaceCommand::Delete { namespace } => {
                kv.delete_namespace(&kv.resolve(&namespace).await?).await?;
                serde_json::json!({ "ok": true })
            }
        }),
        KvCommand::Get { namespace, key, metadata } => {
            let ns = kv.resolve(&namespace).await?;
            if metadata {
                match kv.metadata(&ns, &key).await? {
                    Some(m) => Output::Json(m),
                    None => Output::NotFound,
                }
            } else {
                match kv.get(&ns, &key).await? {
                    Some(v) => Output::Bytes(v),
                    None => Output::NotFound,
                }
            }
        }
        KvCommand::Put { namespace, key, value, ttl, expiration, metadata } => {
            let ns = kv.resolve(&namespace).await?;
            let metadata = metadata
                .map(|m| serde_json::from_str(&m).map_err(|e| invalid(format!("--metadata is not JSON: {e}"))))
                .transpose()?;
            let value = read_value(&value).map_err(invalid)?;
            kv.put(&ns, &key, value, &KvPut { expiration_ttl: ttl, expiration, metadata }).await?;
            Output::Json(serde_json::json!({ "ok": true }))
        }
        KvCommand::Delete { namespace, key } => {
            kv.delete(&kv.resolve(&namespace).await?, &key).await?;
            Output::Json(serde_json::json!({ "ok": true }))
        }
        KvCommand::List { namespace, prefix, limit, cursor } => {
            let ns = kv.resolve(&namespace).await?;
            let one_page = limit.is_some() || cursor.is_some();
            let mut lines = String::new();
            let mut cursor = cursor;
            // Bounded: a namespace of 10^9 keys has 10^6 pages of 1,000.
            for _ in 0..1_000_000 {
                let (keys, next) = kv.list(&ns, prefix.as_deref(), limit, cursor.as_deref()).await?;
                for k in keys {
                    lines.push_str(&k.to_string());
                    lines.push('\n');
                }
                if one_page {
                    if !next.is_empty() {
                        lines.push_str(&serde_json::json!({ "cursor": next }).to_string());
                        lines.push('\n');
                    }
                    break;
                }
                if next.is_empty() {
                    break;
                }
                cursor = Some(next);
            }
            Output::Text(lines)
        }
        KvCommand::BulkPut { namespace, file } => {
            let pairs = read_json(&file)?;
            Output::Json(kv.bulk_put(&kv.resolve(&namespace).await?, pairs).await?)
        }
        KvCommand::BulkDelete { namespace, file } => {
            let keys: Vec<String> = serde_json::from_value(read_json(&file)?)
                .map_err(|e| invalid(format!("{file} must be a JSON array of keys: {e}")))?;
            Output::Json(kv.bulk_delete(&kv.resolve(&namespace).await?, keys).await?)
        }
        KvCommand::Export { namespace, file, prefix } => {
            let ns = kv.resolve(&namespace).await?;
            let items = export_items(&kv, &ns, prefix.as_deref()).await?;
            let text = bulk_json(&items);
            match file.filter(|f| f != std::path::Path::new("-")) {
                Some(path) => {
                    crate::transfer::write_file(&path, text.as_bytes())?;
                    Output::Json(serde_json::json!({ "file": path, "pairs": items.len() }))
                }
                None => Output::Text(text),
            }
        }
        KvCommand::Import { namespace, file } => {
            let items = match read_json(&file)? {
                serde_json::Value::Array(items) => items,
                _ => return Err(invalid(format!("{file} must be a JSON array of pairs"))),
            };
            let ns = kv.resolve(&namespace).await?;
            let bar = crate::transfer::progress_items(items.len() as u64, "import");
            let done = put_in_chunks(&kv, &ns, items, &bar).await;
            bar.finish_and_clear();
            let done = done?;
            Output::Json(serde_json::json!({
                "written": done.written, "requests": done.requests, "skipped_expired": done.expired,
            }))
        }
    })
}
