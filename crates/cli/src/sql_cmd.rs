//! `cairn sql ...`: SQL databases on a running server, through its D1-compatible API, and
//! wrangler-style migrations. Databases may be named by uuid or by name.

use std::path::PathBuf;

use cairn_client::{Client, Error};
use cairn_sqldb::migrations;
use clap::Subcommand;

use crate::remote::{ExitCode, Output, invalid};

#[derive(Subcommand)]
pub(crate) enum SqlCommand {
    /// Create a database.
    Create { name: String },
    /// List databases.
    List,
    /// Show a database's size and table count.
    Info { database: String },
    /// Delete a database and everything in it.
    Delete { database: String },
    /// Run SQL (several statements may be separated by `;`); prints a table per statement,
    /// or the API's JSON with --json.
    Query {
        database: String,
        sql: String,
        /// A positional parameter, as JSON (repeat for ?1, ?2, ...).
        #[arg(long = "param")]
        params: Vec<String>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Print the database as SQL (schema and rows), or write it to --output; with `--format
    /// sqlite`, write the database as a SQLite file (to --output).
    Export {
        database: String,
        #[arg(long)]
        output: Option<PathBuf>,
        /// `sql`: a dump of statements (as `wrangler d1 export`); `sqlite`: the database file.
        #[arg(long, value_enum, default_value_t = Format::Sql)]
        format: Format,
        /// With `--format sqlite`: the state at this bookmark instead of now.
        #[arg(long)]
        bookmark: Option<String>,
    },
    /// Run a SQL file (for example a dump) as one atomic import. A SQLite file (recognized by
    /// its header) instead replaces the database's tables, as one commit; the answer's
    /// `previous_bookmark` undoes that.
    Import { database: String, file: PathBuf },
    /// Migrations in wrangler's convention (`migrations/NNNN_name.sql`, table `d1_migrations`).
    Migrations {
        #[command(subcommand)]
        command: MigrationsCommand,
    },
}

/// The formats of `sql export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// SQL statements.
    Sql,
    /// A SQLite database file.
    Sqlite,
}

#[derive(Subcommand)]
pub(crate) enum MigrationsCommand {
    /// Create the next migration file.
    Create {
        database: String,
        message: String,
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
    },
    /// List migrations with whether each is applied.
    List {
        database: String,
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
        #[arg(long, default_value = migrations::DEFAULT_TABLE)]
        table: String,
    },
    /// Apply the migrations not applied yet, in order; each is atomic with its bookkeeping
    /// row, and the first failure stops the run.
    Apply {
        database: String,
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
        #[arg(long, default_value = migrations::DEFAULT_TABLE)]
        table: String,
    },
}

/// Runs one command and returns the exit code.
pub(crate) fn run(url: &str, token: Option<String>, command: SqlCommand) -> ExitCode {
    crate::remote::run(url, token, |client| async move { execute(&client, command).await })
}

async fn execute(client: &Client, command: SqlCommand) -> Result<Output, Error> {
    let sql = client.sql();
    Ok(match command {
        SqlCommand::Create { name } => Output::Json(sql.create(&name).await?),
        SqlCommand::List => Output::Json(sql.databases().await?.into()),
        SqlCommand::Info { database } => Output::Json(sql.info(&database).await?),
        SqlCommand::Delete { database } => {
            sql.delete(&database).await?;
            Output::Json(serde_json::json!({ "ok": true }))
        }
        SqlCommand::Query { database, sql: text, params, json } => {
            let params = params
                .iter()
                .map(|p| serde_json::from_str(p).map_err(|e| invalid(format!("parameter {p:?} is not JSON: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            let results = sql.query(&database, &text, params).await?;
            if json {
                Output::Json(results.into())
            } else {
                Output::Text(results.iter().map(|r| table(&r["results"])).collect::<Vec<_>>().join("\n"))
            }
        }
        SqlCommand::Export { database, output, format: Format::Sqlite, bookmark } => {
            let Some(path) = output else {
                return Err(invalid("--format sqlite writes a file: give --output FILE".to_owned()));
            };
            let res = client.export_database(&database, bookmark.as_deref()).await?;
            Output::Json(crate::object_cmd::export_response(res, &path, &format!("export {database}")).await?)
        }
        SqlCommand::Export { bookmark: Some(_), .. } => {
            return Err(invalid("--bookmark needs --format sqlite".to_owned()));
        }
        SqlCommand::Export { database, output, format: Format::Sql, bookmark: None } => {
            let dump = sql.export(&database).await?;
            match output {
                Some(path) => {
                    std::fs::write(&path, dump)
                        .map_err(|e| invalid(format!("cannot write {}: {e}", path.display())))?;
                    Output::Json(serde_json::json!({ "ok": true, "file": path }))
                }
                None => Output::Text(dump),
            }
        }
        SqlCommand::Import { database, file } => {
            if is_sqlite_file(&file) {
                let bar = crate::transfer::progress(0, &format!("import {database}"));
                let (body, len) = crate::transfer::file_body(&file, &bar).await?;
                bar.set_length(len);
                let out = client.import_database(&database, body, len).await;
                bar.finish_and_clear();
                return Ok(Output::Json(out?));
            }
            let bytes = std::fs::read(&file).map_err(|e| invalid(format!("cannot read {}: {e}", file.display())))?;
            Output::Json(sql.import(&database, bytes).await?)
        }
        SqlCommand::Migrations { command } => migrations_command(client, command).await?,
    })
}

async fn applied(client: &Client, database: &str, table: &str) -> Result<Vec<String>, Error> {
    let batch = vec![
        serde_json::json!({ "sql": migrations::create_table_sql(table) }),
        serde_json::json!({ "sql": format!("SELECT name FROM \"{}\" ORDER BY id", table.replace('"', "\"\"")) }),
    ];
    let results = client.sql().batch(database, batch).await?;
    let rows = results.last().and_then(|r| r["results"]["rows"].as_array().cloned()).unwrap_or_default();
    Ok(rows.iter().filter_map(|r| r[0].as_str().map(str::to_owned)).collect())
}

async fn migrations_command(client: &Client, command: MigrationsCommand) -> Result<Output, Error> {
    let failed = |e: cairn_sqldb::Error| invalid(e.to_string());
    match command {
        MigrationsCommand::Create { database: _, message, dir } => {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
            let path = migrations::create_file(&dir, &message, now_ms).map_err(failed)?;
            Ok(Output::Json(serde_json::json!({ "created": path })))
        }
        MigrationsCommand::List { database, dir, table: tracking } => {
            let done = applied(client, &database, &tracking).await?;
            let files = migrations::list_files(&dir).map_err(failed)?;
            let rows: Vec<serde_json::Value> = files
                .iter()
                .map(|f| serde_json::json!([f, if done.contains(f) { "applied" } else { "pending" }]))
                .collect();
            Ok(Output::Text(table(&serde_json::json!({ "columns": ["name", "status"], "rows": rows }))))
        }
        MigrationsCommand::Apply { database, dir, table: tracking } => {
            let done = applied(client, &database, &tracking).await?;
            let pending: Vec<String> =
                migrations::list_files(&dir).map_err(failed)?.into_iter().filter(|f| !done.contains(f)).collect();
            if pending.is_empty() {
                return Ok(Output::Text("✅ No migrations to apply!\n".to_owned()));
            }
            let mut rows = Vec::new();
            for name in pending {
                let text = std::fs::read_to_string(dir.join(&name))
                    .map_err(|e| invalid(format!("cannot read {}: {e}", dir.join(&name).display())))?;
                let batch: Vec<serde_json::Value> = migrations::apply_batch(&tracking, &name, &text)
                    .into_iter()
                    .map(|s| serde_json::json!({ "sql": s.sql }))
                    .collect();
                match client.sql().batch(&database, batch).await {
                    Ok(_) => rows.push(serde_json::json!([name, "✅"])),
                    Err(e) => {
                        rows.push(serde_json::json!([name, "❌"]));
                        eprint!("{}", table(&serde_json::json!({ "columns": ["name", "status"], "rows": rows })));
                        return Err(Error::Api {
                            status: 400,
                            code: e.code().unwrap_or("sql.migration").to_owned(),
                            message: format!(
                                "migration {name} failed and was rolled back; later ones were not run: {e}"
                            ),
                        });
                    }
                }
            }
            Ok(Output::Text(table(&serde_json::json!({ "columns": ["name", "status"], "rows": rows }))))
        }
    }
}

/// A text table of `{"columns": [...], "rows": [[...]]}`.
fn table(results: &serde_json::Value) -> String {
    let columns: Vec<String> = results["columns"]
        .as_array()
        .map(|c| c.iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = results["rows"]
        .as_array()
        .map(|rows| {
            rows.iter().map(|r| r.as_array().map(|r| r.iter().map(cell).collect()).unwrap_or_default()).collect()
        })
        .unwrap_or_default();
    if columns.is_empty() {
        return "(no rows)\n".to_owned();
    }
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for row in &rows {
        for (w, v) in widths.iter_mut().zip(row) {
            *w = (*w).max(v.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let parts: Vec<String> =
            cells.iter().zip(&widths).map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count()))).collect();
        format!("│ {} │\n", parts.join(" │ "))
    };
    let rule = |l: &str, m: &str, r: &str| -> String {
        let parts: Vec<String> = widths.iter().map(|w| "─".repeat(w + 2)).collect();
        format!("{l}{}{r}\n", parts.join(m))
    };
    let mut out = rule("┌", "┬", "┐");
    out.push_str(&line(&columns));
    out.push_str(&rule("├", "┼", "┤"));
    for row in &rows {
        out.push_str(&line(row));
    }
    out.push_str(&rule("└", "┴", "┘"));
    out
}

fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.replace('\n', "\\n"),
        serde_json::Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

/// Whether `path` starts with the SQLite file header.
fn is_sqlite_file(path: &std::path::Path) -> bool {
    use std::io::Read as _;
    let mut header = [0u8; 16];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header)).is_ok() && &header == b"SQLite format 3\0"
}
