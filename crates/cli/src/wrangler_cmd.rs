//! `cairn import wrangler [DIR]`: the local state of Cloudflare's tools (Wrangler and Miniflare
//! 3, `.wrangler/state/v3/`) into a running server.
//!
//! Miniflare keeps each resource in the SQLite file of a Durable Object, named by the object's
//! id: `durableObjectNamespaceIdFromName(uniqueKey, name)`, 16 bytes of HMAC-SHA256 of the name
//! keyed with SHA-256(uniqueKey), then 16 bytes of HMAC of those, in hex. So a resource's name is
//! not in its file name, but a candidate name can be checked against it:
//!
//! - `d1/miniflare-D1DatabaseObject/{id}.sqlite`: a D1 database, the user's tables as they are
//!   (named after the wrangler `database_id`, which nothing on disk records: `--d1 NAME=ID`, the
//!   project's wrangler config, or the file's id as the name);
//! - `kv/miniflare-KVNamespaceObject/{id}.sqlite`, table `_mf_entries(key, blob_id, expiration
//!   (ms), metadata (JSON))`, values in `kv/{namespace id}/blobs/{blob_id}`;
//! - `r2/miniflare-R2BucketObject/{id}.sqlite`, tables `_mf_objects(key, blob_id, size, etag,
//!   uploaded, checksums, http_metadata, custom_metadata)` and, for multipart objects (a null
//!   `blob_id`), `_mf_multipart_parts(object_key, part_number, blob_id)`; bodies in
//!   `r2/{bucket}/blobs/{blob_id}`;
//! - `do/{script}-{Class}/{object id}.sqlite`: a Durable Object's storage, its SQL tables plus
//!   `_cf_KV(key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID` holding V8-serialized values.
//!
//! Decision 0008 records the sources of this layout and what is left out.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use cairn_client::{Client, Error, PutObject};
use rusqlite::{Connection, OptionalExtension as _};
use serde_json::{Value, json};

use crate::remote::{ExitCode, Output, invalid};

/// Largest KV key of an object, in bytes (the storage default).
const MAX_OBJECT_KEY_BYTES: usize = 2048;
/// Largest KV value of an object, in bytes, serialized (the storage default).
const MAX_OBJECT_VALUE_BYTES: usize = 128 * 1024;

const D1_KEY: &str = "miniflare-D1DatabaseObject";
const KV_KEY: &str = "miniflare-KVNamespaceObject";
const R2_KEY: &str = "miniflare-R2BucketObject";

/// `cairn import ...`.
#[derive(clap::Subcommand)]
pub(crate) enum ImportCommand {
    /// Import Wrangler's local state (`.wrangler/state/v3`: D1 databases, KV namespaces, R2
    /// buckets, Durable Objects). Stop `wrangler dev` first. Existing databases are replaced,
    /// namespaces and buckets added to; prints what was created, and what was left out.
    Wrangler(WranglerArgs),
}

/// Runs one command and returns the exit code.
pub(crate) fn run(url: &str, token: Option<String>, command: ImportCommand) -> ExitCode {
    crate::remote::run(url, token, |client| async move {
        match command {
            ImportCommand::Wrangler(args) => import(&client, args).await,
        }
    })
}

/// Options of `cairn import wrangler`.
#[derive(clap::Args, Debug)]
pub(crate) struct WranglerArgs {
    /// Wrangler's state directory.
    #[arg(default_value = ".wrangler/state/v3")]
    dir: PathBuf,
    /// Name the D1 database of wrangler `database_id` ID (or of the file FILE, a path or its
    /// id) NAME; repeat for each. Unnamed databases are named by the wrangler config found
    /// next to `.wrangler`, or else by their file's id.
    #[arg(long = "d1", value_name = "NAME=ID_OR_FILE")]
    d1: Vec<String>,
    /// Title the KV namespace of wrangler id ID TITLE (default: its binding in the wrangler
    /// config, or its id).
    #[arg(long = "kv", value_name = "TITLE=ID")]
    kv: Vec<String>,
    /// The wrangler config (`wrangler.toml`, `wrangler.json` or `wrangler.jsonc`) naming
    /// databases and namespaces. Default: the one in the folder holding `.wrangler`.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// `durableObjectNamespaceIdFromName` of Miniflare: the hex id of the object named `name` in the
/// namespace of `unique_key`.
pub(crate) fn object_id(unique_key: &str, name: &str) -> String {
    use sha2::Digest as _;
    let key = sha2::Sha256::digest(unique_key.as_bytes());
    let name_mac = hmac_sha256(&key, name.as_bytes());
    let mac = hmac_sha256(&key, &name_mac[..16]);
    name_mac[..16].iter().chain(&mac[..16]).map(|b| format!("{b:02x}")).collect()
}

/// HMAC-SHA256 (RFC 2104) with a key of at most 64 bytes.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    let mut block = [0u8; 64];
    block[..key.len().min(64)].copy_from_slice(&key[..key.len().min(64)]);
    let mut inner = sha2::Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = sha2::Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Decodes a value of V8's serialization format (what `workerd` stores for a Durable Object's
/// KV API) into JSON: strings, numbers, booleans, null, plain objects and arrays. Anything else
/// (dates, maps, sets, binary data, shared references, `undefined` at the top) is refused with
/// its reason.
pub(crate) fn v8_to_json(bytes: &[u8]) -> Result<Value, String> {
    let mut r = V8Reader { bytes, pos: 0 };
    if r.peek() == Some(0xFF) {
        r.pos += 1;
        r.varint()?;
    }
    match r.value(0)? {
        Some(v) => Ok(v),
        None => Err("the value is undefined".to_owned()),
    }
}

struct V8Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl V8Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn byte(&mut self) -> Result<u8, String> {
        let b = self.peek().ok_or("the value ends early")?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err("a number is too long".to_owned())
    }

    fn take(&mut self, len: u64) -> Result<&[u8], String> {
        let len = usize::try_from(len).map_err(|_| "a length is too large")?;
        let end = self.pos.checked_add(len).filter(|e| *e <= self.bytes.len()).ok_or("the value ends early")?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next tag, past padding.
    fn tag(&mut self) -> Result<u8, String> {
        loop {
            match self.byte()? {
                0 => {}
                b'?' => {
                    self.varint()?;
                }
                t => return Ok(t),
            }
        }
    }

    /// A value; `None` for `undefined` (and an array's hole).
    fn value(&mut self, depth: usize) -> Result<Option<Value>, String> {
        if depth > 64 {
            return Err("the value is nested too deeply".to_owned());
        }
        let tag = self.tag()?;
        Ok(Some(match tag {
            b'_' | b'-' => return Ok(None),
            b'0' => Value::Null,
            b'T' => Value::Bool(true),
            b'F' => Value::Bool(false),
            b'I' => {
                let n = self.varint()?;
                // ZigZag.
                let v = i64::try_from(n >> 1).unwrap_or(0) ^ -i64::try_from(n & 1).unwrap_or(0);
                Value::from(v)
            }
            b'U' => Value::from(self.varint()?),
            b'N' => {
                let raw: [u8; 8] = self.take(8)?.try_into().map_err(|_| "a number ends early")?;
                let f = f64::from_le_bytes(raw);
                serde_json::Number::from_f64(f).map(Value::Number).ok_or("the number is not finite")?
            }
            b'"' | b'S' | b'c' => Value::String(self.string_body(tag)?),
            b'o' => Value::Object(self.properties(depth, b'{')?),
            b'A' => {
                let len = self.varint()?;
                if len > self.bytes.len() as u64 {
                    return Err("an array is longer than the value".to_owned());
                }
                let mut items = Vec::new();
                for _ in 0..len {
                    items.push(self.value(depth + 1)?.unwrap_or(Value::Null));
                }
                let extra = self.properties(depth, b'$')?;
                // Property count and length.
                self.varint()?;
                self.varint()?;
                if !extra.is_empty() {
                    return Err("an array has named properties".to_owned());
                }
                Value::Array(items)
            }
            b'a' => {
                let len = self.varint()?;
                if len > self.bytes.len() as u64 {
                    return Err("a sparse array is longer than the value".to_owned());
                }
                let props = self.properties(depth, b'@')?;
                // Property count and length.
                self.varint()?;
                self.varint()?;
                let mut items = vec![Value::Null; usize::try_from(len).unwrap_or(0)];
                for (k, v) in props {
                    let i: usize = k.parse().map_err(|_| "an array has named properties")?;
                    *items.get_mut(i).ok_or("an array index is out of range")? = v;
                }
                Value::Array(items)
            }
            b'D' => return Err("a Date (not JSON)".to_owned()),
            b'^' => return Err("a shared or circular reference".to_owned()),
            b';' | b'\'' => return Err("a Map or Set (not JSON)".to_owned()),
            b'B' | b'V' | b'\\' => return Err("binary data or a host object (not JSON)".to_owned()),
            other => return Err(format!("a value of V8 tag {:?}", char::from(other))),
        }))
    }

    fn string_body(&mut self, tag: u8) -> Result<String, String> {
        let len = self.varint()?;
        let raw = self.take(len)?;
        match tag {
            b'"' => Ok(raw.iter().map(|b| char::from(*b)).collect()),
            b'S' => String::from_utf8(raw.to_vec()).map_err(|_| "a string is not UTF-8".to_owned()),
            _ => {
                let units: Vec<u16> = raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
                String::from_utf16(&units).map_err(|_| "a string is not valid UTF-16".to_owned())
            }
        }
    }

    /// Key/value pairs up to `end` (then the property count, read here for objects).
    fn properties(&mut self, depth: usize, end: u8) -> Result<serde_json::Map<String, Value>, String> {
        let mut map = serde_json::Map::new();
        loop {
            let tag = self.tag()?;
            if tag == end {
                if end == b'{' {
                    self.varint()?;
                }
                return Ok(map);
            }
            let key = match tag {
                b'"' | b'S' | b'c' => self.string_body(tag)?,
                b'I' | b'U' | b'N' => {
                    self.pos -= 1;
                    match self.value(depth + 1)? {
                        Some(Value::Number(n)) => n.to_string(),
                        _ => return Err("a property name is not a string or number".to_owned()),
                    }
                }
                _ => return Err("a property name is not a string or number".to_owned()),
            };
            if let Some(v) = self.value(depth + 1)? {
                map.insert(key, v);
            }
        }
    }
}

/// A private copy of a SQLite file and its WAL, opened read-write, so that reading it never
/// touches Wrangler's files.
struct Copy {
    conn: Connection,
    dir: tempfile::TempDir,
}

fn copy_database(path: &Path) -> Result<Copy, Error> {
    let dir = tempfile::tempdir().map_err(|e| invalid(format!("cannot create a temporary folder: {e}")))?;
    let dest = dir.path().join("db.sqlite");
    std::fs::copy(path, &dest).map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    if wal.exists() {
        std::fs::copy(&wal, dir.path().join("db.sqlite-wal"))
            .map_err(|e| invalid(format!("cannot read {}: {e}", wal.display())))?;
    }
    let conn = Connection::open(&dest).map_err(|e| sqlite_error(path, &e))?;
    Ok(Copy { conn, dir })
}

fn sqlite_error(path: &Path, e: &rusqlite::Error) -> Error {
    invalid(format!("{}: {e}", path.display()))
}

impl Copy {
    /// Removes Miniflare's and workerd's own tables (`_cf_*`, `_mf_*`) and writes the rest to a
    /// new compact file, returned.
    fn user_tables_file(&self, path: &Path) -> Result<PathBuf, Error> {
        let err = |e: rusqlite::Error| sqlite_error(path, &e);
        let internal: Vec<(String, String)> = self
            .conn
            .prepare(
                "SELECT type, name FROM sqlite_schema
                 WHERE (name LIKE '\\_cf\\_%' ESCAPE '\\' OR name LIKE '\\_mf\\_%' ESCAPE '\\')
                   AND type IN ('table', 'view', 'trigger')",
            )
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(err)?;
        for (kind, name) in internal {
            let sql = format!("DROP {} IF EXISTS \"{}\"", kind.to_ascii_uppercase(), name.replace('"', "\"\""));
            self.conn.execute_batch(&sql).map_err(err)?;
        }
        let out = self.dir.path().join("import.sqlite");
        self.conn.execute("VACUUM INTO ?1", [out.to_string_lossy()]).map_err(err)?;
        Ok(out)
    }
}

fn sqlite_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                // `metadata.sqlite` is workerd's own index of the namespace (its alarms).
                .filter(|p| p.extension().is_some_and(|e| e == "sqlite") && p.is_file())
                .filter(|p| p.file_stem().is_some_and(|s| s != "metadata"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Subfolders of `dir` other than `skip`, by name.
fn subdirs(dir: &Path, skip: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter(|n| n != skip)
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Names and ids the project's wrangler config gives.
#[derive(Debug, Default)]
struct ProjectNames {
    /// D1 `database_id` (and `preview_database_id`) → `database_name`.
    d1: HashMap<String, String>,
    /// KV `id` (and `preview_id`, or the binding when no id is given) → binding.
    kv: HashMap<String, String>,
}

/// Reads `d1_databases` and `kv_namespaces` of a wrangler config (TOML or JSON with comments),
/// at the top and in each `env`.
fn read_config(path: &Path) -> Result<ProjectNames, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    let config: Value = if path.extension().is_some_and(|e| e == "toml") {
        let t: toml::Value = toml::from_str(&text).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        serde_json::to_value(t).map_err(|e| invalid(format!("{}: {e}", path.display())))?
    } else {
        serde_json::from_str(&strip_jsonc(&text)).map_err(|e| invalid(format!("{}: {e}", path.display())))?
    };
    let mut names = ProjectNames::default();
    let mut scopes = vec![&config];
    if let Some(envs) = config["env"].as_object() {
        scopes.extend(envs.values());
    }
    for scope in scopes {
        for db in scope["d1_databases"].as_array().into_iter().flatten() {
            let Some(name) = db["database_name"].as_str() else { continue };
            for field in ["database_id", "preview_database_id"] {
                if let Some(id) = db[field].as_str() {
                    names.d1.insert(id.to_owned(), name.to_owned());
                }
            }
        }
        for ns in scope["kv_namespaces"].as_array().into_iter().flatten() {
            let Some(binding) = ns["binding"].as_str() else { continue };
            names.kv.insert(binding.to_owned(), binding.to_owned());
            for field in ["id", "preview_id"] {
                if let Some(id) = ns[field].as_str() {
                    names.kv.insert(id.to_owned(), binding.to_owned());
                }
            }
        }
    }
    Ok(names)
}

/// JSON with comments and trailing commas (`wrangler.jsonc`) as JSON.
fn strip_jsonc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut last = ' ';
                for n in chars.by_ref() {
                    if last == '*' && n == '/' {
                        break;
                    }
                    last = n;
                }
            }
            _ => out.push(c),
        }
    }
    // Trailing commas: a comma followed only by whitespace before `}` or `]`.
    let mut cleaned = String::with_capacity(out.len());
    let bytes: Vec<char> = out.chars().collect();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            if c == '\\' && i + 1 < bytes.len() {
                cleaned.push(c);
                cleaned.push(bytes[i + 1]);
                i += 2;
                continue;
            }
            if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if c == ',' {
            let next = bytes[i + 1..].iter().find(|n| !n.is_whitespace());
            if matches!(next, Some('}' | ']')) {
                i += 1;
                continue;
            }
        }
        cleaned.push(c);
        i += 1;
    }
    cleaned
}

/// `NAME=VALUE` pairs of a repeated option.
fn pairs(option: &str, values: &[String]) -> Result<Vec<(String, String)>, Error> {
    values
        .iter()
        .map(|v| {
            v.split_once('=')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                .ok_or_else(|| invalid(format!("--{option} {v:?}: expected NAME=VALUE")))
        })
        .collect()
}

/// A namespace name for a Durable Object class folder: its characters outside
/// `[A-Za-z0-9_.-]` replaced, at most 64 bytes, not starting with `.` or `_cairn`.
fn namespace_for(folder: &str) -> String {
    let mut ns: String = folder
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '_' })
        .take(64)
        .collect();
    if ns.starts_with('.') || ns.starts_with("_cairn") || ns.is_empty() {
        ns = format!("do-{ns}").chars().take(64).collect();
    }
    ns
}

/// Uploads a file as an object's or database's new state.
async fn upload_import(
    path: &Path,
    send: impl AsyncFnOnce(reqwest::Body, u64) -> Result<Value, Error>,
) -> Result<Value, Error> {
    let bar = indicatif::ProgressBar::hidden();
    let (body, len) = crate::transfer::file_body(path, &bar).await?;
    send(body, len).await
}

/// Runs the import and prints what it did, one JSON object: `d1`, `kv`, `r2` and
/// `durable_objects` lists, and `not_imported`.
pub(crate) async fn import(client: &Client, args: WranglerArgs) -> Result<Output, Error> {
    let dir = &args.dir;
    if !dir.is_dir() {
        return Err(invalid(format!(
            "{} is not a folder (Wrangler keeps its state in .wrangler/state/v3)",
            dir.display()
        )));
    }
    let config = args.config.clone().or_else(|| {
        // `.wrangler/state/v3` → the project folder.
        let project = dir.ends_with(".wrangler/state/v3").then(|| dir.ancestors().nth(3)).flatten()?;
        ["wrangler.toml", "wrangler.jsonc", "wrangler.json"].iter().map(|n| project.join(n)).find(|p| p.is_file())
    });
    let names = match &config {
        Some(path) => read_config(path)?,
        None => ProjectNames::default(),
    };
    let mut not_imported: Vec<Value> = Vec::new();
    let d1 = import_d1(client, dir, &args, &names).await?;
    let kv = import_kv(client, dir, &args, &names, &mut not_imported).await?;
    let r2 = import_r2(client, dir, &mut not_imported).await?;
    let durable_objects = import_durable_objects(client, dir, &mut not_imported).await?;
    for other in subdirs(dir, "") {
        if !["d1", "kv", "r2", "do"].contains(&other.as_str()) {
            not_imported
                .push(json!({ "path": dir.join(&other), "reason": "not a D1, KV, R2 or Durable Object store" }));
        }
    }
    Ok(Output::Json(json!({
        "config": config,
        "d1": d1,
        "kv": kv,
        "r2": r2,
        "durable_objects": durable_objects,
        "not_imported": not_imported,
    })))
}

async fn import_d1(
    client: &Client,
    dir: &Path,
    args: &WranglerArgs,
    names: &ProjectNames,
) -> Result<Vec<Value>, Error> {
    // File id → database name: from --d1, then from the config.
    let mut wanted: HashMap<String, String> = HashMap::new();
    for (id, name) in &names.d1 {
        wanted.insert(object_id(D1_KEY, id), name.clone());
    }
    for (name, target) in pairs("d1", &args.d1)? {
        let path = Path::new(&target);
        let file_id = if target.ends_with(".sqlite") || path.is_file() {
            stem(path)
        } else if target.len() == 64 && target.chars().all(|c| c.is_ascii_hexdigit()) {
            target.to_ascii_lowercase()
        } else {
            object_id(D1_KEY, &target)
        };
        wanted.insert(file_id, name);
    }
    let existing: Vec<String> =
        client.sql().databases().await?.iter().filter_map(|d| d["name"].as_str().map(str::to_owned)).collect();
    let mut done = Vec::new();
    for path in sqlite_files(&dir.join("d1").join(D1_KEY)) {
        let id = stem(&path);
        let name = wanted.get(&id).cloned().unwrap_or_else(|| id.clone());
        let copy = copy_database(&path)?;
        let file = copy.user_tables_file(&path)?;
        let created = !existing.contains(&name);
        if created {
            client.sql().create(&name).await?;
        }
        let result = upload_import(&file, async |body, len| client.import_database(&name, body, len).await).await?;
        eprintln!("D1 database {name:?}{} from {}", if created { " created" } else { " replaced" }, path.display());
        done.push(json!({
            "file": path, "database": name, "created": created, "named": wanted.contains_key(&id),
            "tables": result["tables"], "previous_bookmark": result["previous_bookmark"],
        }));
    }
    Ok(done)
}

/// Matches object files to the folders named by their resources: the folder whose name (a
/// namespace id, a bucket name) gives the file's id.
fn match_folders(store: &Path, key: &str) -> Vec<(PathBuf, Option<String>)> {
    let folders = subdirs(store, key);
    sqlite_files(&store.join(key))
        .into_iter()
        .map(|file| {
            let id = stem(&file);
            let folder = folders.iter().find(|f| object_id(key, f) == id).cloned();
            (file, folder)
        })
        .collect()
}

async fn import_kv(
    client: &Client,
    dir: &Path,
    args: &WranglerArgs,
    names: &ProjectNames,
    not_imported: &mut Vec<Value>,
) -> Result<Vec<Value>, Error> {
    let titles: HashMap<String, String> = pairs("kv", &args.kv)?.into_iter().map(|(t, id)| (id, t)).collect();
    let store = dir.join("kv");
    let kv = client.kv();
    let mut done = Vec::new();
    for (path, folder) in match_folders(&store, KV_KEY) {
        let copy = copy_database(&path)?;
        let rows: Vec<(String, String, Option<i64>, Option<String>)> = copy
            .conn
            .prepare("SELECT key, blob_id, expiration, metadata FROM _mf_entries ORDER BY key")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect())
            .map_err(|e| sqlite_error(&path, &e))?;
        let Some(ns_id) = folder.or_else(|| {
            // No folder gives this file's id: the one holding its first blob.
            let (_, blob, _, _) = rows.first()?;
            subdirs(&store, KV_KEY).into_iter().find(|f| store.join(f).join("blobs").join(blob).is_file())
        }) else {
            if !rows.is_empty() {
                not_imported
                    .push(json!({ "path": path, "reason": "no kv/<namespace id>/blobs folder holds its values" }));
            }
            continue;
        };
        let blobs = store.join(&ns_id).join("blobs");
        let mut items = Vec::with_capacity(rows.len());
        for (key, blob, expiration, metadata) in rows {
            let value = match std::fs::read(blobs.join(&blob)) {
                Ok(v) => v,
                Err(e) => {
                    not_imported
                        .push(json!({ "path": path, "key": key, "reason": format!("its value blob {blob}: {e}") }));
                    continue;
                }
            };
            let mut item = match String::from_utf8(value) {
                Ok(text) => json!({ "key": key, "value": text }),
                Err(e) => json!({
                    "key": key, "value": base64::engine::general_purpose::STANDARD.encode(e.into_bytes()), "base64": true,
                }),
            };
            if let Some(ms) = expiration {
                item["expiration"] = (ms / 1000).into();
            }
            if let Some(m) = metadata.and_then(|m| serde_json::from_str::<Value>(&m).ok()) {
                item["metadata"] = m;
            }
            items.push(item);
        }
        let title = titles.get(&ns_id).or_else(|| names.kv.get(&ns_id)).cloned().unwrap_or_else(|| ns_id.clone());
        let (id, created) = match kv.resolve(&title).await {
            Ok(id) => (id, false),
            Err(Error::Api { status: 404, .. }) => {
                let ns = kv.create_namespace(&title).await?;
                (ns["id"].as_str().unwrap_or_default().to_owned(), true)
            }
            Err(e) => return Err(e),
        };
        let bar = crate::transfer::progress_items(items.len() as u64, &format!("KV {title}"));
        let written = crate::kv_cmd::put_in_chunks(&kv, &id, items, &bar).await;
        bar.finish_and_clear();
        let written = written?;
        eprintln!("KV namespace {title:?}{}: {} pairs", if created { " created" } else { "" }, written.written);
        done.push(json!({
            "file": path, "wrangler_id": ns_id, "title": title, "id": id, "created": created,
            "written": written.written, "skipped_expired": written.expired,
        }));
    }
    Ok(done)
}

async fn import_r2(client: &Client, dir: &Path, not_imported: &mut Vec<Value>) -> Result<Vec<Value>, Error> {
    let store = dir.join("r2");
    let mut done = Vec::new();
    for (path, folder) in match_folders(&store, R2_KEY) {
        let copy = copy_database(&path)?;
        type Row = (String, Option<String>, i64, String, String);
        let rows: Vec<Row> = copy
            .conn
            .prepare("SELECT key, blob_id, size, http_metadata, custom_metadata FROM _mf_objects ORDER BY key")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?.collect()
            })
            .map_err(|e| sqlite_error(&path, &e))?;
        let Some(bucket) = folder.or_else(|| {
            // No folder gives this file's id: the one holding its first blob.
            let blob = rows.iter().find_map(|r| r.1.clone())?;
            subdirs(&store, R2_KEY).into_iter().find(|f| store.join(f).join("blobs").join(&blob).is_file())
        }) else {
            if !rows.is_empty() {
                not_imported.push(json!({ "path": path, "reason": "no r2/<bucket>/blobs folder holds its bodies" }));
            }
            continue;
        };
        let created = match client.buckets().create(&bucket).await {
            Ok(_) => true,
            Err(Error::Api { code, .. }) if code == "bucket.exists" => false,
            Err(e) => return Err(e),
        };
        let blobs = store.join(&bucket).join("blobs");
        let total: i64 = rows.iter().map(|r| r.2).sum();
        let bar = crate::transfer::progress(u64::try_from(total).unwrap_or(0), &format!("R2 {bucket}"));
        let (mut objects, mut bytes) = (0u64, 0u64);
        for (key, blob, _, http, custom) in rows {
            let parts: Vec<String> = match blob {
                Some(b) => vec![b],
                None => copy
                    .conn
                    .prepare("SELECT blob_id FROM _mf_multipart_parts WHERE object_key = ?1 ORDER BY part_number")
                    .and_then(|mut s| s.query_map([&key], |r| r.get(0))?.collect())
                    .map_err(|e| sqlite_error(&path, &e))?,
            };
            let body_path = if parts.len() == 1 {
                blobs.join(&parts[0])
            } else {
                let joined = copy.dir.path().join("multipart");
                let mut out = std::fs::File::create(&joined).map_err(|e| invalid(format!("temporary file: {e}")))?;
                for p in &parts {
                    let mut part =
                        std::fs::File::open(blobs.join(p)).map_err(|e| invalid(format!("{key}: its part {p}: {e}")))?;
                    std::io::copy(&mut part, &mut out).map_err(|e| invalid(format!("temporary file: {e}")))?;
                }
                joined
            };
            if !body_path.is_file() {
                not_imported.push(json!({ "path": path, "key": key, "reason": "its body blob is missing" }));
                continue;
            }
            let (headers, content_type, dropped) = r2_headers(&http, &custom);
            for name in dropped {
                not_imported.push(
                    json!({ "bucket": bucket, "key": key, "metadata": name, "reason": "not an HTTP header name" }),
                );
            }
            let (body, len) = crate::transfer::file_body(&body_path, &bar).await?;
            let object = PutObject { body, len, content_type };
            client.buckets().put_with_headers(&bucket, &key, object, &headers).await?;
            objects += 1;
            bytes += len;
        }
        bar.finish_and_clear();
        eprintln!("R2 bucket {bucket:?}{}: {objects} objects", if created { " created" } else { "" });
        done.push(json!({ "file": path, "bucket": bucket, "created": created, "objects": objects, "bytes": bytes }));
    }
    Ok(done)
}

/// The headers carrying an R2 object's HTTP metadata (Miniflare's `R2HTTPMetadata` JSON) and
/// custom metadata, its Content-Type, and the custom names that cannot be headers.
fn r2_headers(http: &str, custom: &str) -> (Vec<(String, String)>, Option<String>, Vec<String>) {
    let http: Value = serde_json::from_str(http).unwrap_or_default();
    let custom: BTreeMap<String, String> = serde_json::from_str(custom).unwrap_or_default();
    let mut headers = Vec::new();
    for (field, header) in [
        ("contentLanguage", "content-language"),
        ("contentDisposition", "content-disposition"),
        ("contentEncoding", "content-encoding"),
        ("cacheControl", "cache-control"),
    ] {
        if let Some(v) = http[field].as_str() {
            headers.push((header.to_owned(), v.to_owned()));
        }
    }
    let mut dropped = Vec::new();
    for (k, v) in custom {
        let name = format!("x-cairn-meta-{}", k.to_ascii_lowercase());
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
            && reqwest::header::HeaderValue::from_str(&v).is_ok()
        {
            headers.push((name, v));
        } else {
            dropped.push(k);
        }
    }
    (headers, http["contentType"].as_str().map(str::to_owned), dropped)
}

async fn import_durable_objects(
    client: &Client,
    dir: &Path,
    not_imported: &mut Vec<Value>,
) -> Result<Vec<Value>, Error> {
    let store = dir.join("do");
    let mut done = Vec::new();
    for folder in subdirs(&store, "") {
        let ns = namespace_for(&folder);
        for path in sqlite_files(&store.join(&folder)) {
            let name = stem(&path);
            let copy = copy_database(&path)?;
            let (entries, skipped) = durable_object_kv(&copy.conn, &path)?;
            for (key, reason) in &skipped {
                not_imported.push(json!({ "path": path, "key": key, "reason": reason }));
            }
            copy.conn
                .execute_batch("CREATE TABLE _cairn_kv(key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
                .map_err(|e| sqlite_error(&path, &e))?;
            for (key, value) in &entries {
                let mut tagged = b"j".to_vec();
                tagged.extend_from_slice(value.to_string().as_bytes());
                copy.conn
                    .execute("INSERT INTO _cairn_kv(key, value) VALUES (?1, ?2)", (key.as_bytes(), tagged))
                    .map_err(|e| sqlite_error(&path, &e))?;
            }
            let alarm_ms = durable_object_alarm(&copy.conn, &path)?;
            if let Some(ms) = alarm_ms {
                // The engine's alarm row (`_cairn_meta` key 1), in its table's exact shape.
                copy.conn
                    .execute_batch("CREATE TABLE _cairn_meta(key INTEGER PRIMARY KEY, value)")
                    .and_then(|()| copy.conn.execute("INSERT INTO _cairn_meta(key, value) VALUES (1, ?1)", [ms]))
                    .map_err(|e| sqlite_error(&path, &e))?;
            }
            let file = copy.user_tables_file(&path)?;
            let obj = client.object(&ns, &name);
            let result = upload_import(&file, async |body, len| obj.import(body, len).await).await?;
            eprintln!("Durable Object {ns}/{name}: {} KV entries, {} tables", entries.len(), result["tables"]);
            done.push(json!({
                "file": path, "namespace": ns, "object": name, "kv_entries": entries.len(),
                "tables": result["tables"], "alarm_ms": alarm_ms, "skipped_keys": skipped.len(),
            }));
        }
    }
    Ok(done)
}

/// A Durable Object's alarm: workerd keeps it in `_cf_METADATA` under key 1, in nanoseconds
/// since the epoch.
fn durable_object_alarm(conn: &Connection, path: &Path) -> Result<Option<i64>, Error> {
    let exists = conn
        .query_row("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = '_cf_METADATA'", [], |_| Ok(()))
        .optional()
        .map_err(|e| sqlite_error(path, &e))?
        .is_some();
    if !exists {
        return Ok(None);
    }
    let ns: Option<i64> = conn
        .query_row("SELECT value FROM _cf_METADATA WHERE key = 1 AND typeof(value) = 'integer'", [], |r| r.get(0))
        .optional()
        .map_err(|e| sqlite_error(path, &e))?;
    Ok(ns.map(|ns| ns / 1_000_000).filter(|ms| *ms > 0))
}

/// The Durable Object KV entries of `_cf_KV` that are JSON, and the keys left out with why.
type KvEntries = (Vec<(String, Value)>, Vec<(String, String)>);

fn durable_object_kv(conn: &Connection, path: &Path) -> Result<KvEntries, Error> {
    let exists = conn
        .query_row("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = '_cf_KV'", [], |_| Ok(()))
        .optional()
        .map_err(|e| sqlite_error(path, &e))?
        .is_some();
    if !exists {
        return Ok((Vec::new(), Vec::new()));
    }
    let rows: Vec<(String, Option<Vec<u8>>)> = conn
        .prepare("SELECT key, value FROM _cf_KV ORDER BY key")
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .map_err(|e| sqlite_error(path, &e))?;
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    for (key, value) in rows {
        if key.len() > MAX_OBJECT_KEY_BYTES {
            skipped.push((key, format!("the key is longer than {MAX_OBJECT_KEY_BYTES} bytes")));
            continue;
        }
        match v8_to_json(&value.unwrap_or_default()) {
            Ok(v) if v.to_string().len() < MAX_OBJECT_VALUE_BYTES => entries.push((key, v)),
            Ok(_) => skipped.push((key, format!("the value is larger than {MAX_OBJECT_VALUE_BYTES} bytes as JSON"))),
            Err(why) => skipped.push((key, format!("the value is {why}"))),
        }
    }
    Ok((entries, skipped))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn object_ids_are_miniflares() {
        // The file of the D1 database with id "xxxx" in Miniflare 3 (wrangler 3.2+), as Node's
        // crypto computes it with Miniflare's function; the same function names KV
        // namespaces' and R2 buckets' files.
        let id = super::object_id("miniflare-D1DatabaseObject", "xxxx");
        assert_eq!(id, "37a497df36b79f1a5a11839858b18e217f7022d2d72cb40b9de9e89363bc39bb");
        assert_ne!(id, super::object_id("miniflare-KVNamespaceObject", "xxxx"));
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        let mac = super::hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn v8_values_decode_to_json() {
        let v = |bytes: &[u8]| super::v8_to_json(bytes);
        assert_eq!(v(&[0xFF, 0x0F, b'"', 2, b'h', b'i']), Ok(json!("hi")));
        assert_eq!(v(&[0xFF, 0x0F, b'I', 84]), Ok(json!(42)));
        assert_eq!(v(&[0xFF, 0x0F, b'I', 3]), Ok(json!(-2)));
        assert_eq!(v(&[0xFF, 0x0F, b'T']), Ok(json!(true)));
        let mut n = vec![0xFF, 0x0F, b'N'];
        n.extend_from_slice(&1.5f64.to_le_bytes());
        assert_eq!(v(&n), Ok(json!(1.5)));
        // Two-byte string "é€" after a padding byte.
        assert_eq!(v(&[0xFF, 0x0F, 0, b'c', 4, 0xE9, 0x00, 0xAC, 0x20]), Ok(json!("é€")));
        // {"a": 1, "b": [true, null]}
        let obj = [0xFF, 0x0F, b'o', b'"', 1, b'a', b'I', 2, b'"', 1, b'b', b'A', 2, b'T', b'0', b'$', 0, 2, b'{', 2];
        assert_eq!(v(&obj), Ok(json!({"a": 1, "b": [true, null]})));
        assert!(v(&[0xFF, 0x0F, b'D', 0, 0, 0, 0, 0, 0, 0, 0]).is_err(), "dates are not JSON");
        assert!(v(&[0xFF, 0x0F, b'_']).is_err(), "undefined is not JSON");
        assert!(v(&[0xFF, 0x0F, b'"', 9, b'x']).is_err(), "truncated");
    }

    #[test]
    fn jsonc_loses_its_comments_and_trailing_commas() {
        let text = "{\n  // a comment\n  \"a\": \"x // y\", /* b */ \"b\": [1, 2,],\n}";
        let v: serde_json::Value = serde_json::from_str(&super::strip_jsonc(text)).expect("JSON");
        assert_eq!(v, json!({"a": "x // y", "b": [1, 2]}));
    }
}
