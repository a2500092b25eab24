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
    })
}
