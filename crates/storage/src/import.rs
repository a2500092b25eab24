//! Importing a SQLite database as an object: checking a file someone uploaded and turning it into
//! an image the runtime installs as one commit (`ObjectRef::import`).
//!
//! Any SQLite database is accepted whose schema user SQL could have created: its tables, indexes,
//! views and triggers become the object's. Cairn's own tables (`_cairn_kv`, `_cairn_meta`,
//! `_cairn_alarms`), present when the file is an export of an object, must have exactly the
//! shape the engine creates and hold valid rows; the missing ones are created. Everything is
//! checked before the object is touched, and the source file is only read.

use std::io::Read as _;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension as _};

use crate::authorizer::RESERVED_PREFIXES;
use crate::object::{FORMAT_VERSION, meta};
use crate::{Error, Limits, Result};

/// The engine's tables, as `sqlite_schema.sql` records them when the engine created them.
const ENGINE_TABLES: [(&str, &str); 3] = [
    ("_cairn_kv", "CREATE TABLE _cairn_kv(key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"),
    ("_cairn_meta", "CREATE TABLE _cairn_meta(key INTEGER PRIMARY KEY, value)"),
    ("_cairn_alarms", "CREATE TABLE _cairn_alarms(name TEXT PRIMARY KEY, time_ms INTEGER NOT NULL) WITHOUT ROWID"),
];

/// Virtual table modules user SQL may create (as the authorizer allows).
const MODULES: [&str; 4] = ["fts5", "fts5vocab", "rtree", "rtree_i32"];

/// Most columns of a table (the engine's `SQLITE_LIMIT_COLUMN`).
const MAX_COLUMNS: i64 = 100;

const PAGE_SIZE: i64 = 4096;

/// What [`prepare`] found in a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prepared {
    /// The user tables, in schema order.
    pub tables: Vec<String>,
    /// Entries of the KV table (0 for a plain SQLite file).
    pub kv_entries: u64,
    /// Size of the prepared image in bytes.
    pub bytes: u64,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidImport { reason: reason.into() }
}

fn is_reserved(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p))
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQLite failure while reading the file is the file's fault (it is malformed, or not a
/// database): an invalid import.
fn unreadable(e: &rusqlite::Error) -> Error {
    invalid(format!("the file cannot be read as a SQLite database: {}", crate::object::sqlite_message(e)))
}

/// `file:` URI of a path, every byte outside the unreserved set percent-encoded.
fn uri(path: &Path) -> String {
    let mut out = String::from("file:");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'-' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str("?immutable=1");
    out
}

/// Checks the SQLite database at `src` and writes it to `dest` (a new file) as an object image:
/// page size 4096, no auto-vacuum, the engine's tables present, Cairn's format version, no
/// object identity (the runtime stamps the target's). `src` is only read.
///
/// The checks: the SQLite header; `src` and the result no larger than
/// `limits.max_database_bytes`; `PRAGMA integrity_check`; no schema entry with a reserved name
/// (`_cairn_*`, `_cf_*`) other than the engine's own tables in their exact shape; virtual
/// tables only of the modules user SQL may create; at most 100 columns per table; no string or
/// blob longer than the object may read; the engine tables' rows well-formed (KV keys UTF-8
/// within the key limit, values tagged and JSON values valid, an integer alarm).
///
/// # Errors
/// [`Error::InvalidImport`] naming the first check that failed; [`Error::Io`] if `dest`
/// cannot be written. `dest` is removed on failure.
pub fn prepare(src: &Path, dest: &Path, limits: &Limits) -> Result<Prepared> {
    let r = prepare_inner(src, dest, limits);
    if r.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    for suffix in ["-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", dest.display()));
    }
    r
}

fn prepare_inner(src: &Path, dest: &Path, limits: &Limits) -> Result<Prepared> {
    let io = |context: &'static str| move |source| Error::Io { context, source };
    let mut header = [0u8; 16];
    let mut file = std::fs::File::open(src).map_err(io("open a file to import"))?;
    let len = file.metadata().map_err(io("read the size of a file to import"))?.len();
    if file.read_exact(&mut header).is_err() || &header != b"SQLite format 3\0" {
        return Err(invalid("the file is not a SQLite database (it does not start with the SQLite header)"));
    }
    drop(file);
    check_size(len, limits)?;

    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(uri(src), flags).map_err(|e| unreadable(&e))?;
    // Nothing in the file may run code while it is read: no views or triggers with side effects.
    conn.execute_batch("PRAGMA trusted_schema = OFF").map_err(|e| unreadable(&e))?;
    check_integrity(&conn)?;
    let tables = check_schema(&conn)?;
    check_lengths(&conn, &tables, limits)?;
    check_engine_rows(&conn, limits)?;
    let kv_entries = count_kv(&conn)?;

    if dest.exists() {
        return Err(Error::Io {
            context: "create an import image",
            source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, dest.display().to_string()),
        });
    }
    conn.execute("VACUUM INTO ?1", [dest.to_string_lossy()]).map_err(|e| unreadable(&e))?;
    drop(conn);
    normalize(dest)?;
    let bytes = std::fs::metadata(dest).map_err(io("read the size of an import image"))?.len();
    check_size(bytes, limits)?;
    Ok(Prepared { tables, kv_entries, bytes })
}

fn check_size(len: u64, limits: &Limits) -> Result<()> {
    if len > limits.max_database_bytes {
        return Err(invalid(format!(
            "the database is {len} bytes, larger than the object's limit of {} bytes",
            limits.max_database_bytes
        )));
    }
    Ok(())
}

fn check_integrity(conn: &Connection) -> Result<()> {
    let mut stmt = conn.prepare("PRAGMA integrity_check(5)").map_err(|e| unreadable(&e))?;
    let problems: Vec<String> =
        stmt.query_map([], |r| r.get::<_, String>(0)).and_then(|rows| rows.collect()).map_err(|e| unreadable(&e))?;
    if problems.len() != 1 || problems[0] != "ok" {
        return Err(invalid(format!("the file fails SQLite's integrity check: {}", problems.join("; "))));
    }
    Ok(())
}

/// Checks every schema entry; returns the user tables.
fn check_schema(conn: &Connection) -> Result<Vec<String>> {
    let entries: Vec<(String, String, String, Option<String>)> = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY rowid")
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect())
        .map_err(|e| unreadable(&e))?;
    let mut tables = Vec::new();
    for (kind, name, table, sql) in entries {
        let sql = sql.unwrap_or_default();
        if is_reserved(&name) || is_reserved(&table) {
            let engine = ENGINE_TABLES.iter().find(|(n, _)| *n == name);
            match engine {
                Some((_, expected)) if kind == "table" && sql == *expected => continue,
                Some(_) => {
                    return Err(invalid(format!(
                        "the file's {kind} {name} is not the table Cairn creates under that name \
                         (expected `{}`)",
                        engine.map_or("", |(_, s)| s)
                    )));
                }
                None => {
                    return Err(invalid(format!(
                        "the file has a {kind} named {name:?}{}; names starting with _cairn_ or _cf_ are \
                         reserved (for a Durable Object or D1 file of Wrangler's, use `cairn import wrangler`)",
                        if name == table { String::new() } else { format!(" on {table:?}") },
                    )));
                }
            }
        }
        if kind != "table" || name.starts_with("sqlite_") {
            continue;
        }
        let head: String = sql.chars().take(40).collect::<String>().to_ascii_uppercase();
        if head.starts_with("CREATE VIRTUAL TABLE") {
            let module = sql
                .split_whitespace()
                .skip_while(|w| !w.eq_ignore_ascii_case("USING"))
                .nth(1)
                .map(|m| m.split('(').next().unwrap_or_default().trim_matches('"').to_ascii_lowercase())
                .unwrap_or_default();
            if !MODULES.contains(&module.as_str()) {
                return Err(invalid(format!(
                    "virtual table {name:?} uses the module {module:?}; objects allow only {}",
                    MODULES.join(", ")
                )));
            }
        } else {
            let columns: i64 = conn
                .query_row("SELECT count(*) FROM pragma_table_info(?1)", [&name], |r| r.get(0))
                .map_err(|e| unreadable(&e))?;
            if columns > MAX_COLUMNS {
                return Err(invalid(format!(
                    "table {name:?} has {columns} columns; objects allow at most {MAX_COLUMNS}"
                )));
            }
        }
        tables.push(name);
    }
    Ok(tables)
}

/// No value longer than the object's `SQLITE_LIMIT_LENGTH` (as `object.rs` configures it): such
/// a row could be stored but never read.
fn check_lengths(conn: &Connection, tables: &[String], limits: &Limits) -> Result<()> {
    let max = limits.max_sql_value_bytes.max(limits.max_value_bytes + limits.max_key_bytes + 64);
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    for table in tables {
        let virtual_table: bool = conn
            .query_row("SELECT sql LIKE 'CREATE VIRTUAL%' FROM sqlite_schema WHERE name = ?1", [table], |r| r.get(0))
            .map_err(|e| unreadable(&e))?;
        if virtual_table {
            continue; // Its rows live in its shadow tables, which are checked as tables.
        }
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info(?1)")
            .and_then(|mut s| s.query_map([table], |r| r.get(0))?.collect())
            .map_err(|e| unreadable(&e))?;
        if columns.is_empty() {
            continue;
        }
        let maxima: Vec<String> = columns.iter().map(|c| format!("max(octet_length({}))", quote(c))).collect();
        let sql = format!("SELECT {} FROM {}", maxima.join(", "), quote(table));
        let longest: Vec<Option<i64>> =
            conn.query_row(&sql, [], |r| (0..columns.len()).map(|i| r.get(i)).collect()).map_err(|e| unreadable(&e))?;
        for (column, len) in columns.iter().zip(longest) {
            if len.is_some_and(|l| l > max) {
                return Err(invalid(format!(
                    "column {column:?} of table {table:?} holds a value of {} bytes; objects read values of \
                     at most {max} bytes",
                    len.unwrap_or_default()
                )));
            }
        }
    }
    Ok(())
}

fn table_exists(conn: &Connection, name: &str) -> Result<bool> {
    conn.query_row("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1", [name], |_| Ok(()))
        .optional()
        .map(|r| r.is_some())
        .map_err(|e| unreadable(&e))
}

fn count_kv(conn: &Connection) -> Result<u64> {
    if !table_exists(conn, "_cairn_kv")? {
        return Ok(0);
    }
    let n: i64 = conn.query_row("SELECT count(*) FROM _cairn_kv", [], |r| r.get(0)).map_err(|e| unreadable(&e))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The rows of the engine's tables must be ones the engine could have written.
fn check_engine_rows(conn: &Connection, limits: &Limits) -> Result<()> {
    let first = |sql: &str| -> Result<Option<String>> {
        conn.query_row(sql, [], |r| r.get::<_, Option<String>>(0))
            .optional()
            .map(Option::flatten)
            .map_err(|e| unreadable(&e))
    };
    if table_exists(conn, "_cairn_kv")? {
        let mut stmt = conn.prepare("SELECT key, length(value) FROM _cairn_kv").map_err(|e| unreadable(&e))?;
        let mut rows = stmt.query([]).map_err(|e| unreadable(&e))?;
        while let Some(row) = rows.next().map_err(|e| unreadable(&e))? {
            let key: Vec<u8> = match row.get_ref(0).map_err(|e| unreadable(&e))? {
                rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => b.to_vec(),
                _ => return Err(invalid("a key of _cairn_kv is not text")),
            };
            let key = String::from_utf8(key).map_err(|_| invalid("a key of _cairn_kv is not UTF-8"))?;
            limits.check_key(&key).map_err(|e| invalid(format!("key {key:?} of _cairn_kv: {e}")))?;
            let len: i64 = row.get(1).map_err(|e| unreadable(&e))?;
            if usize::try_from(len).unwrap_or(usize::MAX) > limits.max_value_bytes + 1 {
                return Err(invalid(format!(
                    "the value of key {key:?} of _cairn_kv is {len} bytes; the limit is {}",
                    limits.max_value_bytes
                )));
            }
        }
        let bad = first(
            "SELECT CAST(key AS TEXT) FROM _cairn_kv
             WHERE typeof(value) != 'blob' OR length(value) = 0
                OR NOT (substr(value, 1, 1) = x'6a' AND json_valid(CAST(substr(value, 2) AS TEXT))
                        OR substr(value, 1, 1) = x'62')
             LIMIT 1",
        )?;
        if let Some(key) = bad {
            return Err(invalid(format!(
                "the value of key {key:?} of _cairn_kv is not one Cairn writes (a `j` and JSON text, or a `b` \
                 and bytes)"
            )));
        }
    }
    if table_exists(conn, "_cairn_meta")? {
        let alarm = format!(
            "SELECT CAST(value AS TEXT) FROM _cairn_meta
             WHERE key = {} AND value IS NOT NULL AND (typeof(value) != 'integer' OR value <= 0)",
            meta::ALARM_MS
        );
        if let Some(v) = first(&alarm)? {
            return Err(invalid(format!("the alarm in _cairn_meta is {v:?}, not a time in milliseconds")));
        }
    }
    if table_exists(conn, "_cairn_alarms")? {
        let bad = first(
            "SELECT CAST(name AS TEXT) FROM _cairn_alarms
             WHERE typeof(name) != 'text' OR length(CAST(name AS BLOB)) NOT BETWEEN 1 AND 256
                OR typeof(time_ms) != 'integer' OR time_ms <= 0
             LIMIT 1",
        )?;
        if let Some(name) = bad {
            return Err(invalid(format!("the named alarm {name:?} in _cairn_alarms is not one Cairn writes")));
        }
    }
    Ok(())
}

/// Turns the copy at `dest` into an object image (see [`prepare`]).
fn normalize(dest: &Path) -> Result<()> {
    let conn = Connection::open(dest).map_err(Error::internal("open an import image"))?;
    let r = (|| -> rusqlite::Result<()> {
        conn.execute_batch("PRAGMA journal_mode = DELETE")?;
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let auto_vacuum: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
        if page_size != PAGE_SIZE || auto_vacuum != 0 {
            conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE}; PRAGMA auto_vacuum = NONE; VACUUM;"))?;
        }
        conn.execute_batch(&format!(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS {kv};
             CREATE TABLE IF NOT EXISTS {meta_table};
             INSERT OR IGNORE INTO _cairn_meta(key, value) VALUES ({seq}, 0), ({ts}, 0);
             DELETE FROM _cairn_meta WHERE key IN ({ns}, {name});
             PRAGMA user_version = {FORMAT_VERSION};
             COMMIT;
             PRAGMA journal_mode = WAL;",
            kv = ENGINE_TABLES[0].1.trim_start_matches("CREATE TABLE "),
            meta_table = ENGINE_TABLES[1].1.trim_start_matches("CREATE TABLE "),
            seq = meta::COMMIT_SEQ,
            ts = meta::COMMIT_TS_MS,
            ns = meta::NAMESPACE,
            name = meta::NAME,
        ))?;
        Ok(())
    })();
    r.map_err(Error::internal("turn an imported file into an object image"))?;
    conn.close().map_err(|(_, e)| e).map_err(Error::internal("close an import image"))
}
