//! The JSON file back end ([`FileStorage`]): TinyBase's `FilePersister`. The file holds the
//! store's JSON, `[tables, values]`.
//!
//! Invariants:
//! - A save writes a temporary file beside the target, syncs it, and renames it over the target
//!   (then syncs the directory), so a reader sees the old file or the new one, never half of one.
//! - A missing file, or one holding only whitespace or `null`, is empty storage; anything else
//!   that is not store JSON is an error (and the store is left alone).
//!
//! Auto-load polls the file's metadata (length, modification time and, on Unix, inode) every
//! poll interval rather than using the `notify` crate: it needs no extra
//! dependency or watcher thread, works on every file system (network mounts and containers
//! included, where inotify is missing or its watches run out), and copes with writers that
//! replace the file by renaming (which would orphan a watch on the file itself). The cost is a
//! delay of up to one interval and a `stat` per interval. The stamp of each read and write is
//! remembered, so this persister's own saves are not taken for changes: a save records the stamp
//! of its temporary file, which the rename carries over to the target (the change time is left
//! out: a rename updates it). A writer that rewrites the
//! file in place with the same length within the file system's timestamp granularity would go
//! unnoticed.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use super::database::parse_stored_json;
use super::{Persist, Persister};
use crate::content::Content;
use crate::error::Error;

/// A persister of a store to a JSON file.
pub type FilePersister = Persister<FileStorage>;

/// What identifies a version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: u64,
}

impl Stamp {
    fn of(metadata: &fs::Metadata) -> Stamp {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Stamp {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            #[cfg(unix)]
            inode: metadata.ino(),
        }
    }
}

/// What this back end last saw of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Nothing,
    Absent,
    Present(Stamp),
}

/// A JSON file holding a store.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cairn_store::{FileStorage, Persister, PersisterOptions, Store};
/// let dir = tempfile::tempdir()?;
/// let store = Store::new();
/// let persister = Persister::new(&store, FileStorage::new(dir.path().join("s.json")), PersisterOptions::new())?;
/// store.set_value("open", true);
/// persister.save().await?;
/// assert_eq!(std::fs::read_to_string(dir.path().join("s.json"))?, r#"[{},{"open":true}]"#);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FileStorage {
    path: PathBuf,
    seen: Arc<Mutex<Seen>>,
}

impl FileStorage {
    /// The file at `path` (which need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStorage { path: path.into(), seen: Arc::new(Mutex::new(Seen::Nothing)) }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The metadata of the file, `None` if it does not exist.
fn stat(path: &Path) -> Result<Option<fs::Metadata>, Error> {
    match fs::metadata(path) {
        Ok(metadata) => Ok(Some(metadata)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("inspect", path)(e)),
    }
}

fn seen_now(path: &Path) -> Result<Seen, Error> {
    Ok(stat(path)?.map_or(Seen::Absent, |m| Seen::Present(Stamp::of(&m))))
}

fn read(path: &Path, seen: &Mutex<Seen>) -> Result<Option<Content>, Error> {
    // The stamp is taken before reading: a change after it shows at the next poll.
    let stamp = seen_now(path)?;
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io("read", path)(e)),
    };
    *seen.lock().unwrap_or_else(PoisonError::into_inner) = stamp;
    parse_stored_json(&text)
}

/// A name for the temporary file, unique within this process.
fn temporary_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

fn write(path: &Path, json: &str, seen: &Mutex<Seen>) -> Result<(), Error> {
    let temporary = temporary_path(path);
    let result = (|| {
        let mut file = fs::File::create(&temporary).map_err(Error::io("create", &temporary))?;
        file.write_all(json.as_bytes()).map_err(Error::io("write", &temporary))?;
        file.sync_all().map_err(Error::io("sync", &temporary))?;
        let stamp = Stamp::of(&file.metadata().map_err(Error::io("inspect", &temporary))?);
        fs::rename(&temporary, path).map_err(Error::io("rename into place", path))?;
        Ok(stamp)
    })();
    let stamp = match result {
        Ok(stamp) => stamp,
        Err(e) => {
            let _ = fs::remove_file(&temporary);
            return Err(e);
        }
    };
    *seen.lock().unwrap_or_else(PoisonError::into_inner) = Seen::Present(stamp);
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io("sync the directory of", path))?;
    }
    Ok(())
}

impl Persist for FileStorage {
    async fn get_content(&self) -> Result<Option<Content>, Error> {
        let (path, seen) = (self.path.clone(), self.seen.clone());
        tokio::task::spawn_blocking(move || read(&path, &seen)).await?
    }

    async fn set_content(&self, content: &Content) -> Result<(), Error> {
        let json = content.to_json();
        let (path, seen) = (self.path.clone(), self.seen.clone());
        tokio::task::spawn_blocking(move || write(&path, &json, &seen)).await?
    }

    async fn has_changed(&self) -> Result<bool, Error> {
        let (path, seen) = (self.path.clone(), self.seen.clone());
        tokio::task::spawn_blocking(move || {
            let now = seen_now(&path)?;
            let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
            let changed = *seen != Seen::Nothing && *seen != now;
            *seen = now;
            Ok(changed)
        })
        .await?
    }
}
