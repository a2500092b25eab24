//! `cairn object ...`: the CLI as a client of a running server. Prints JSON on stdout; the exit
//! code says what happened (see [`ExitCode`]).

use base64::Engine as _;
use cairn_client::{Client, Error, ListOptions, Stored};
use clap::Subcommand;

use crate::remote::{ExitCode, Output};

#[derive(Subcommand)]
pub(crate) enum ObjectCommand {
    /// Print a value: JSON as is, bytes as {"base64": ...}.
    Get { ns: String, name: String, key: String },
    /// Store a value: JSON text (or `-` for standard input), or bytes with --bytes.
    Put {
        ns: String,
        name: String,
        key: String,
        value: String,
        /// Store VALUE (or standard input) as raw bytes instead of JSON.
        #[arg(long)]
        bytes: bool,
    },
    /// Delete a key; prints {"existed": bool}.
    Delete { ns: String, name: String, key: String },
    /// List entries.
    List {
        ns: String,
        name: String,
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long)]
        start: Option<String>,
        #[arg(long)]
        start_after: Option<String>,
        #[arg(long)]
        end: Option<String>,
        #[arg(long)]
        reverse: bool,
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Run SQL; each PARAM is a JSON value.
    Sql { ns: String, name: String, sql: String, params: Vec<String> },
    /// Print the current bookmark, or with --at the bookmark of the state at a time.
    Bookmark {
        ns: String,
        name: String,
        /// A time: RFC 3339 (2026-11-21T12:00:00Z) or Unix seconds.
        #[arg(long)]
        at: Option<String>,
    },
    /// Restore the object's storage to a bookmark or a time; prints the bookmark that undoes it.
    Restore {
        ns: String,
        name: String,
        #[arg(long, conflicts_with = "at", required_unless_present = "at")]
        bookmark: Option<String>,
        /// A time: RFC 3339 (2026-11-21T12:00:00Z) or Unix seconds.
        #[arg(long)]
        at: Option<String>,
        /// Restore when the object next starts instead of now.
        #[arg(long)]
        on_next_start: bool,
    },
    /// Download the object's storage (KV entries, SQL tables, alarm) as a SQLite file, now or at
    /// a bookmark; FILE `-` writes to standard output. Prints the bookmark of what was written.
    Export {
        ns: String,
        name: String,
        file: std::path::PathBuf,
        #[arg(long)]
        bookmark: Option<String>,
    },
    /// Replace the object's storage with a SQLite file, as one commit: a file from `export`, or
    /// any SQLite database, whose tables become the object's SQL tables. Prints the new
    /// bookmark and `previous_bookmark`, which undoes the import (`restore --bookmark`).
    Import { ns: String, name: String, file: std::path::PathBuf },
    /// Create object NEW_NAME as a copy of this one (now, at a bookmark or at a time).
    Fork {
        ns: String,
        name: String,
        new_name: String,
        /// The new object's namespace (default: the same).
        #[arg(long)]
        namespace: Option<String>,
        #[arg(long, conflicts_with = "at")]
        bookmark: Option<String>,
        /// A time: RFC 3339 (2026-11-21T12:00:00Z) or Unix seconds.
        #[arg(long)]
        at: Option<String>,
    },
}

/// `--at` as ms since the epoch.
fn parse_at(at: Option<&str>) -> Result<Option<i64>, Error> {
    at.map(|t| {
        cairn_client::api::parse_time_ms(t).ok_or_else(|| {
            crate::remote::invalid(format!(
                "--at {t:?} is not a time: use RFC 3339 (2026-11-21T12:00:00Z) or Unix seconds"
            ))
        })
    })
    .transpose()
}

/// Runs one command and returns the exit code; messages go to stderr, results to stdout.
pub(crate) fn run(url: &str, token: Option<String>, command: ObjectCommand) -> ExitCode {
    crate::remote::run(url, token, |client| async move { execute(&client, command).await })
}

async fn execute(client: &Client, command: ObjectCommand) -> Result<Output, Error> {
    let invalid = crate::remote::invalid;
    Ok(Output::Json(match command {
        ObjectCommand::Get { ns, name, key } => match client.object(&ns, &name).get(&key).await? {
            None => return Ok(Output::NotFound),
            Some(Stored::Json(v)) => v,
            Some(Stored::Bytes(b)) => {
                serde_json::json!({ "base64": base64::engine::general_purpose::STANDARD.encode(b) })
            }
        },
        ObjectCommand::Put { ns, name, key, value, bytes } => {
            let raw = crate::remote::read_value(&value).map_err(invalid)?;
            let obj = client.object(&ns, &name);
            if bytes {
                obj.put_bytes(&key, raw).await?;
            } else {
                let v: serde_json::Value = serde_json::from_slice(&raw)
                    .map_err(|e| invalid(format!("VALUE is not JSON ({e}); use --bytes for raw bytes")))?;
                obj.put_json(&key, &v).await?;
            }
            serde_json::json!({ "ok": true })
        }
        ObjectCommand::Delete { ns, name, key } => {
            serde_json::json!({ "existed": client.object(&ns, &name).delete(&key).await? })
        }
        ObjectCommand::List { ns, name, prefix, start, start_after, end, reverse, limit } => {
            let entries = client
                .object(&ns, &name)
                .list(&ListOptions { prefix, start, start_after, end, reverse, limit })
                .await?;
            serde_json::to_value(entries).unwrap_or_default()
        }
        ObjectCommand::Sql { ns, name, sql, params } => {
            let params = params
                .iter()
                .map(|p| serde_json::from_str(p).map_err(|e| invalid(format!("parameter {p:?} is not JSON: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            serde_json::to_value(client.object(&ns, &name).sql(&sql, params).await?).unwrap_or_default()
        }
        ObjectCommand::Bookmark { ns, name, at } => {
            let obj = client.object(&ns, &name);
            let bookmark = match parse_at(at.as_deref())? {
                Some(t) => obj.bookmark_at(t).await?,
                None => obj.bookmark().await?,
            };
            serde_json::json!({ "bookmark": bookmark })
        }
        ObjectCommand::Restore { ns, name, bookmark, at, on_next_start } => {
            let req = cairn_client::api::RestoreRequest { bookmark, time_ms: parse_at(at.as_deref())?, on_next_start };
            serde_json::to_value(client.object(&ns, &name).restore(&req).await?).unwrap_or_default()
        }
        ObjectCommand::Export { ns, name, file, bookmark } => {
            let res = client.object(&ns, &name).export(bookmark.as_deref()).await?;
            let described = export_response(res, &file, &format!("export {ns}/{name}")).await?;
            if file == std::path::Path::new("-") {
                return Ok(Output::Text(String::new())); // Standard output holds the file.
            }
            described
        }
        ObjectCommand::Import { ns, name, file } => {
            let bar = crate::transfer::progress(0, &format!("import {ns}/{name}"));
            let (body, len) = crate::transfer::file_body(&file, &bar).await?;
            bar.set_length(len);
            let out = client.object(&ns, &name).import(body, len).await;
            bar.finish_and_clear();
            out?
        }
        ObjectCommand::Fork { ns, name, new_name, namespace, bookmark, at } => {
            let req = cairn_client::api::ForkRequest {
                namespace,
                name: new_name,
                bookmark,
                time_ms: parse_at(at.as_deref())?,
            };
            serde_json::json!({ "bookmark": client.object(&ns, &name).fork(&req).await? })
        }
    }))
}

/// Saves an export's body to `file` and describes it: `{"file", "bytes", "bookmark"}`.
pub(crate) async fn export_response(
    res: reqwest::Response,
    file: &std::path::Path,
    what: &str,
) -> Result<serde_json::Value, Error> {
    let bookmark = res.headers().get("x-cairn-bookmark").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bar = crate::transfer::progress(res.content_length().unwrap_or(0), what);
    let bytes = crate::transfer::save(res, file, &bar).await;
    bar.finish_and_clear();
    Ok(serde_json::json!({ "file": file, "bytes": bytes?, "bookmark": bookmark }))
}
