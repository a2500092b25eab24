//! What the export and import commands share: progress bars, downloads written under a
//! temporary name and renamed once complete, streamed uploads, file digests.

use std::path::Path;

use cairn_client::Error;
use futures_util::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::AsyncWriteExt as _;

use crate::remote::invalid;

/// A progress bar for `len` bytes, drawn only when stderr is a terminal.
pub(crate) fn progress(len: u64, what: &str) -> ProgressBar {
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

/// A progress bar counting items rather than bytes.
pub(crate) fn progress_items(len: u64, what: &str) -> ProgressBar {
    let bar = progress(len, what);
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar
}

fn write_error(path: &Path, e: &std::io::Error) -> Error {
    invalid(format!("cannot write {}: {e}", path.display()))
}

/// Streams a response's body into `path`, through `{path}.cairn-partial` (synced, then renamed:
/// an interrupted download leaves no partial file under the real name), or to standard output
/// for `-`. Counts the bytes into `bar`; returns their number.
pub(crate) async fn save(res: reqwest::Response, path: &Path, bar: &ProgressBar) -> Result<u64, Error> {
    let url = res.url().to_string();
    let mut body = res.bytes_stream();
    let mut written = 0u64;
    if path == Path::new("-") {
        let mut stdout = tokio::io::stdout();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|source| Error::Transport { url: url.clone(), source })?;
            stdout.write_all(&chunk).await.map_err(|e| write_error(path, &e))?;
            written += chunk.len() as u64;
        }
        stdout.flush().await.map_err(|e| write_error(path, &e))?;
        return Ok(written);
    }
    let tmp = std::path::PathBuf::from(format!("{}.cairn-partial", path.display()));
    let mut out = tokio::fs::File::create(&tmp).await.map_err(|e| write_error(&tmp, &e))?;
    let copied = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|source| Error::Transport { url: url.clone(), source })?;
            out.write_all(&chunk).await.map_err(|e| write_error(&tmp, &e))?;
            bar.inc(chunk.len() as u64);
            written += chunk.len() as u64;
        }
        out.sync_all().await.map_err(|e| write_error(&tmp, &e))?;
        tokio::fs::rename(&tmp, path).await.map_err(|e| write_error(path, &e))
    }
    .await;
    if copied.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    copied.map(|()| written)
}

/// A file as a streamed request body and its length; the bytes sent are counted into `bar`.
/// Warns when a SQLite WAL file lies beside it: its commits are not in the file sent.
pub(crate) async fn file_body(path: &Path, bar: &ProgressBar) -> Result<(reqwest::Body, u64), Error> {
    let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        eprintln!(
            "warning: {} has commits that are not in {} yet; close the programs using it (or run \
             `PRAGMA wal_checkpoint(TRUNCATE)`) first",
            wal.display(),
            path.display()
        );
    }
    let f = tokio::fs::File::open(path).await.map_err(|e| invalid(format!("cannot open {}: {e}", path.display())))?;
    let len = f.metadata().await.map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?.len();
    let counted = bar.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024).inspect(move |chunk| {
        if let Ok(c) = chunk {
            counted.inc(c.len() as u64);
        }
    });
    Ok((reqwest::Body::wrap_stream(stream), len))
}

/// The MD5 of a file, in hex (what a bucket's ETag is for an object put in one piece).
pub(crate) fn md5_file(path: &Path) -> std::io::Result<String> {
    use md5::Digest as _;
    use std::io::Read as _;
    let mut f = std::fs::File::open(path)?;
    let mut hasher = md5::Md5::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `bytes` to `path` through a temporary name (or to standard output for `-`).
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    if path == Path::new("-") {
        let mut stdout = std::io::stdout().lock();
        return stdout.write_all(bytes).and_then(|()| stdout.flush()).map_err(|e| write_error(path, &e));
    }
    let tmp = std::path::PathBuf::from(format!("{}.cairn-partial", path.display()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(write_error(path, &e));
    }
    Ok(())
}
