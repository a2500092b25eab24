//! `cairn bucket ...`: buckets on a running server, through its `/v1/buckets` API. Transfers
//! stream (a file is never read whole into memory) and show a progress bar on a terminal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::transfer::progress;
use cairn_client::{Client, Error, PutObject};
use clap::Subcommand;
use futures_util::StreamExt as _;
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
    /// Download every object (under --prefix, which the paths leave out) into DIR, each key a
    /// relative path; files already identical (size and MD5) are left alone. Keys that cannot
    /// be paths (`..` or empty segments, a trailing `/`, a key that is also a folder) are
    /// listed as skipped.
    Export {
        bucket: String,
        dir: PathBuf,
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Upload every file under DIR as the key --prefix + its relative path (with `/`), with a
    /// Content-Type from its extension; objects already identical (size and MD5) are left
    /// alone. Creates the bucket if it does not exist.
    Import {
        dir: PathBuf,
        bucket: String,
        #[arg(long)]
        prefix: Option<String>,
    },
}

/// Runs one command and returns the exit code.
pub(crate) fn run(url: &str, token: Option<String>, command: BucketCommand) -> ExitCode {
    crate::remote::run(url, token, |client| async move { execute(&client, command).await })
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
        BucketCommand::Export { bucket, dir, prefix } => export(client, &bucket, &dir, prefix.as_deref()).await,
        BucketCommand::Import { dir, bucket, prefix } => import(client, &dir, &bucket, prefix.as_deref()).await,
        BucketCommand::Rm { bucket, keys } => {
            for k in &keys {
                buckets.delete_object(&bucket, k).await?;
            }
            Ok(Output::Json(serde_json::json!({ "deleted": keys })))
        }
    }
}

/// Every object under `prefix`, as the listing gives them (`key`, `size`, `etag`, ...).
async fn list_all(client: &Client, bucket: &str, prefix: Option<&str>) -> Result<Vec<serde_json::Value>, Error> {
    let mut objects = Vec::new();
    let mut cursor: Option<String> = None;
    // Bounded as `ls` is.
    for _ in 0..10_000_000 {
        let page = client.buckets().list_objects(bucket, prefix, None, cursor.as_deref()).await?;
        objects.extend(page.objects);
        match page.cursor {
            Some(c) if page.truncated && cursor.as_deref() != Some(c.as_str()) => cursor = Some(c),
            _ => break,
        }
    }
    Ok(objects)
}

/// Where key `rel` (relative to the exported prefix) goes under `dir`, if it can be a path.
fn key_path(dir: &Path, rel: &str) -> Option<PathBuf> {
    let segments: Vec<&str> = rel.split('/').collect();
    let bad = |s: &&str| s.is_empty() || *s == "." || *s == ".." || s.contains('\0') || s.ends_with(".cairn-partial");
    if segments.iter().any(bad) {
        return None;
    }
    Some(segments.iter().fold(dir.to_path_buf(), |p, s| p.join(s)))
}

/// Whether the file at `path` holds what an object of `size` bytes and `etag` does. A
/// multipart ETag (`...-N`) is not an MD5: such objects are downloaded again.
fn identical(path: &Path, size: u64, etag: &str) -> bool {
    let etag = etag.trim_matches('"');
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == size)
        && !etag.contains('-')
        && crate::transfer::md5_file(path).is_ok_and(|md5| md5 == etag)
}

async fn export(client: &Client, bucket: &str, dir: &Path, prefix: Option<&str>) -> Result<Output, Error> {
    let objects = list_all(client, bucket, prefix).await?;
    std::fs::create_dir_all(dir).map_err(|e| invalid(format!("cannot create {}: {e}", dir.display())))?;
    let total: u64 = objects.iter().filter_map(|o| o["size"].as_u64()).sum();
    let bar = progress(total, &format!("export {bucket}"));
    let (mut downloaded, mut unchanged, mut bytes) = (0u64, 0u64, 0u64);
    let mut skipped = Vec::new();
    for o in &objects {
        let (Some(key), size) = (o["key"].as_str(), o["size"].as_u64().unwrap_or(0)) else { continue };
        let rel = prefix.and_then(|p| key.strip_prefix(p)).unwrap_or(key);
        let Some(path) = key_path(dir, rel) else {
            skipped.push(serde_json::json!({ "key": key, "reason": "the key is not a relative file path" }));
            bar.inc(size);
            continue;
        };
        if identical(&path, size, o["etag"].as_str().unwrap_or_default()) {
            unchanged += 1;
            bar.inc(size);
            continue;
        }
        let ready = match path.parent() {
            Some(parent) => std::fs::create_dir_all(parent).map_err(|e| e.to_string()),
            None => Ok(()),
        }
        .and_then(|()| if path.is_dir() { Err("a folder has this name".to_owned()) } else { Ok(()) });
        if let Err(reason) = ready {
            skipped.push(serde_json::json!({ "key": key, "reason": reason }));
            bar.inc(size);
            continue;
        }
        // A key deleted since the listing is left out.
        let Some(res) = client.buckets().get(bucket, key).await? else { continue };
        bytes += crate::transfer::save(res, &path, &bar).await?;
        downloaded += 1;
    }
    bar.finish_and_clear();
    Ok(Output::Json(serde_json::json!({
        "downloaded": downloaded, "unchanged": unchanged, "bytes": bytes, "skipped": skipped,
    })))
}

/// The files under a folder.
struct Tree {
    /// (key relative to the folder, with `/`; path), sorted by key.
    files: Vec<(String, PathBuf)>,
    /// Files and folders whose names are not UTF-8 (left out).
    not_utf8: Vec<PathBuf>,
}

/// The files under `dir`. Symbolic links to files are followed, to folders not.
fn walk(dir: &Path) -> Result<Tree, Error> {
    let mut files = Vec::new();
    let mut not_utf8 = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((folder, rel)) = pending.pop() {
        let entries =
            std::fs::read_dir(&folder).map_err(|e| invalid(format!("cannot read {}: {e}", folder.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| invalid(format!("cannot read {}: {e}", folder.display())))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                not_utf8.push(path);
                continue;
            };
            let key = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            let kind = entry.file_type().map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
            if kind.is_dir() {
                pending.push((path, key));
            } else if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) && !name.ends_with(".cairn-partial") {
                files.push((key, path));
            }
        }
    }
    files.sort();
    Ok(Tree { files, not_utf8 })
}

/// A Content-Type for a file name, from its extension.
fn content_type(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "wasm" => "application/wasm",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "sqlite" | "sqlite3" | "db" => "application/vnd.sqlite3",
        _ => return None,
    })
}

async fn import(client: &Client, dir: &Path, bucket: &str, prefix: Option<&str>) -> Result<Output, Error> {
    let Tree { files, not_utf8 } = walk(dir)?;
    let mut created = false;
    let remote = match list_all(client, bucket, prefix).await {
        Ok(objects) => objects,
        Err(Error::Api { code, .. }) if code == "bucket.not_found" => {
            client.buckets().create(bucket).await?;
            created = true;
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let remote: HashMap<String, (u64, String)> = remote
        .iter()
        .filter_map(|o| {
            let key = o["key"].as_str()?.to_owned();
            Some((key, (o["size"].as_u64()?, o["etag"].as_str().unwrap_or_default().to_owned())))
        })
        .collect();
    let sizes: Vec<u64> = files.iter().map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len())).collect();
    let bar = progress(sizes.iter().sum(), &format!("import {bucket}"));
    let (mut uploaded, mut unchanged, mut bytes) = (0u64, 0u64, 0u64);
    for ((rel, path), size) in files.iter().zip(sizes) {
        let key = format!("{}{rel}", prefix.unwrap_or_default());
        if let Some((remote_size, etag)) = remote.get(&key)
            && *remote_size == size
            && identical(path, size, etag)
        {
            unchanged += 1;
            bar.inc(size);
            continue;
        }
        let (body, len) = crate::transfer::file_body(path, &bar).await?;
        let object = PutObject { body, len, content_type: content_type(path).map(str::to_owned) };
        client.buckets().put(bucket, &key, object).await?;
        uploaded += 1;
        bytes += len;
    }
    bar.finish_and_clear();
    let skipped: Vec<serde_json::Value> =
        not_utf8.iter().map(|p| serde_json::json!({ "file": p, "reason": "the file name is not UTF-8" })).collect();
    Ok(Output::Json(serde_json::json!({
        "bucket": bucket, "created": created, "uploaded": uploaded, "unchanged": unchanged, "bytes": bytes,
        "skipped": skipped,
    })))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn keys_become_paths_only_when_they_stay_inside_the_folder() {
        let dir = Path::new("/out");
        assert_eq!(super::key_path(dir, "a/b.txt"), Some(Path::new("/out/a/b.txt").to_path_buf()));
        for bad in ["", "a/", "/a", "a//b", "../a", "a/./b", "a/.."] {
            assert_eq!(super::key_path(dir, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn content_types_follow_extensions() {
        assert_eq!(super::content_type(Path::new("a/b.PNG")), Some("image/png"));
        assert_eq!(super::content_type(Path::new("notes")), None);
    }
}
