//! The Cairn object back end ([`CairnStorage`]): a store kept in a Cairn object's KV storage,
//! either in this process ([`CairnStorage::embedded`], through `cairn_runtime::ObjectRef`) or on
//! a Cairn server ([`CairnStorage::remote`], through `cairn_client`).
//!
//! Layout: that of Cairn's `tinybase` room kind and of TinyBase's PartyKit server
//! (`tinybase-partykit-protocol.md`, "Room storage layout"), so a store persisted to the object
//! `tinybase/{room}` is what TinyBase clients of that room load, and the other way round. Every
//! key begins with the storage prefix (default empty):
//! - `hasStore` → `1`: the storage is initialised. Without it, the storage is empty (a load
//!   applies the default content), whatever else it holds.
//! - `t` + the JSON of `[tableId,rowId,cellId]` without its brackets (`t"pets","fido","legs"`)
//!   → the cell, as a JSON value; `v` + the value id (`vopen`) → the value.
//! - One key per cell: empty rows and tables do not persist. Deleting a row or table deletes the
//!   keys starting with `t"table","row"` or `t"table"`; other keys are ignored by loads and left
//!   alone by saves.
//! - A `t` key that is not three JSON strings, or a cell or value that is not a string, number,
//!   boolean or null (raw bytes, an array, an object), is corrupt: the load fails (reported
//!   through `on_ignored_error`) and the store is left as it is.
//!
//! Invariants:
//! - Saves are incremental with the persister's changes (a whole save lists the storage and
//!   writes only the difference) and always write `hasStore`. Embedded, a save is one
//!   `ObjectRef::run` event: one atomic commit. Remote, it is one `transaction` request per
//!   [`Limits::max_batch_keys`] − 1 operations (default 127), applied in order, each one atomic
//!   commit: a save larger than that can be seen half done by another reader, and a row or
//!   table deletion lists its keys before deleting them.
//! - Cairn's limits hold: a cell or value whose key or JSON exceeds them (default 2048 bytes and
//!   128 KiB) is not written (what was stored under its key stays), the rest of the save is,
//!   and the save reports [`Error::TooLarge`]. Embedded, the object's own limits apply; remote,
//!   those given with [`CairnStorage::limits`].
//! - The storage knows the commit its last load or save left it at (`known`, a commit sequence
//!   number). A save is exactly one commit (embedded) or as many as its transactions (remote),
//!   so the storage tells its own commits from others': if the object was at another commit
//!   than `known` before an incremental save, or other commits landed during a remote save,
//!   someone else wrote, and the change signal is notified.
//! - Auto-load: while it runs, a watcher follows the object's commits (embedded:
//!   `ObjectRef::subscribe`; remote: the long poll `GET .../changes`) and notifies the change
//!   signal for a commit newer than `known`. It compares under the same lock as loads and saves,
//!   so a commit of the storage's own save is never taken for someone else's. A remote watcher
//!   whose poll fails logs the error and polls again after [`CairnStorage::retry_delay`].

mod embedded;
mod layout;
mod remote;

use std::fmt;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use cairn_client::ObjectClient;
use cairn_runtime::ObjectRef;
use cairn_storage::{Bookmark, Limits};
use tokio::sync::{Mutex, Notify, watch};
use tokio::task::JoinHandle;

use super::{Persist, Persister, Write};
use crate::content::{Changes, Content};
use crate::error::Error;

/// A persister of a store to a Cairn object.
pub type CairnPersister = Persister<CairnStorage>;

/// Where the object is.
#[derive(Clone, Debug)]
enum Backend {
    Embedded(ObjectRef),
    Remote(ObjectClient),
}

/// What loads, saves and the watcher share.
#[derive(Debug, Default)]
struct State {
    /// The commit the storage's last load or save left it at, if known.
    known: Option<u64>,
}

/// A Cairn object holding a store in TinyBase's room layout.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cairn_store::{CairnStorage, Persister, PersisterOptions, Store};
///
/// let dir = tempfile::tempdir()?;
/// let runtime = cairn_runtime::Runtime::builder(dir.path()).shards(1).open()?;
/// let room = runtime.object("tinybase", "lobby")?;
///
/// let store = Store::new();
/// store.set_cell("pets", "fido", "legs", 4);
/// let persister = Persister::new(&store, CairnStorage::embedded(room.clone()), PersisterOptions::new())?;
/// persister.save().await?;
/// assert_eq!(room.get::<i64>(r#"t"pets","fido","legs""#).await?, Some(4));
/// assert_eq!(room.get::<i64>("hasStore").await?, Some(1));
/// persister.destroy().await;
/// runtime.close();
/// # Ok(()) }
/// ```
pub struct CairnStorage {
    backend: Backend,
    prefix: String,
    /// Remote: the server's limits.
    limits: Limits,
    /// Remote: the longest wait of one long poll.
    changes_timeout: Duration,
    /// Remote: the wait after a failed long poll.
    retry_delay: Duration,
    /// Notified for commits made by others.
    signal: Arc<Notify>,
    state: Arc<Mutex<State>>,
    /// The watcher, while auto-loading.
    watcher: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for CairnStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CairnStorage")
            .field("backend", &self.backend)
            .field("prefix", &self.prefix)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Drop for CairnStorage {
    fn drop(&mut self) {
        self.stop_watcher();
    }
}

impl CairnStorage {
    fn new(backend: Backend) -> Self {
        CairnStorage {
            backend,
            prefix: String::new(),
            limits: Limits::default(),
            changes_timeout: Duration::from_secs(30),
            retry_delay: Duration::from_secs(1),
            signal: Arc::new(Notify::new()),
            state: Arc::default(),
            watcher: std::sync::Mutex::new(None),
        }
    }

    /// The object behind `object`, in this process. Its namespace's limits apply.
    pub fn embedded(object: ObjectRef) -> Self {
        Self::new(Backend::Embedded(object))
    }

    /// The object behind `object`, on a Cairn server (its token needs write access).
    pub fn remote(object: ObjectClient) -> Self {
        Self::new(Backend::Remote(object))
    }

    /// Begins every key with `prefix` (TinyBase's `storagePrefix`; default empty).
    pub fn storage_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Remote: the server's limits on keys, values and operations per transaction (default:
    /// Cairn's defaults, 2048 bytes, 128 KiB and 128).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Remote: how long one long poll for changes waits (default 30 s; at most 60 s).
    pub fn changes_timeout(mut self, timeout: Duration) -> Self {
        self.changes_timeout = timeout;
        self
    }

    /// Remote: how long the watcher waits after a failed long poll (default 1 s).
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// The storage prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn stop_watcher(&self) {
        let watcher = self.watcher.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(watcher) = watcher {
            watcher.abort();
        }
    }

    async fn load(&self) -> Result<Option<Content>, Error> {
        let mut state = self.state.lock().await;
        let entries = match &self.backend {
            Backend::Embedded(object) => {
                let (seq, entries) = embedded::load(object, &self.prefix).await?;
                state.known = Some(seq);
                entries
            }
            Backend::Remote(object) => {
                let before = remote::bookmark(object).await?;
                let entries = remote::list(object, &self.prefix).await?;
                let after = remote::bookmark(object).await?;
                // Recorded even if the content is bad: it is reported once, not at every commit.
                state.known = Some(before.seq);
                if after.seq != before.seq {
                    // Which of those commits the listing saw is unknown: load again.
                    self.signal.notify_one();
                }
                entries
            }
        };
        drop(state);
        layout::decode(&self.prefix, entries)
    }

    async fn save(&self, write: Write<'_>) -> Result<(), Error> {
        let mut state = self.state.lock().await;
        let (before, ours, plan) = match &self.backend {
            Backend::Embedded(object) => {
                let (content, changes) = write.parts();
                let (content, changes) = (content.cloned(), changes.cloned());
                // On failure the event rolled back: `known` still holds.
                let (before, plan) = embedded::save(object, &self.prefix, content, changes).await?;
                (before, 1, plan)
            }
            Backend::Remote(object) => match self.save_remote(object, write).await {
                Ok(saved) => saved,
                Err(error) => {
                    // Part of it may be written: what the object holds is unknown.
                    state.known = None;
                    return Err(error);
                }
            },
        };
        let after = before + ours;
        let others = match &self.backend {
            Backend::Embedded(_) => false,
            // Compare the commits that landed with the transactions sent.
            Backend::Remote(object) => match remote::bookmark(object).await {
                Ok(now) => now.seq != after,
                Err(error) => {
                    state.known = None;
                    return Err(error);
                }
            },
        };
        // A whole save replaced everything; changes were written over what was `known`.
        let stale = matches!(write, Write::Changes(_)) && state.known != Some(before);
        state.known = Some(after);
        if others || stale {
            self.signal.notify_one();
        }
        drop(state);
        plan.refusal().map_or(Ok(()), Err)
    }

    /// A remote save: (commit before, transactions sent, plan).
    async fn save_remote(&self, object: &ObjectClient, write: Write<'_>) -> Result<(u64, u64, layout::Plan), Error> {
        let before = remote::bookmark(object).await?.seq;
        let plan = match write {
            Write::Changes(changes) => layout::plan_changes(&self.prefix, changes, &self.limits),
            Write::Whole(content) => {
                let existing = remote::list(object, &self.prefix).await?;
                layout::plan_whole(&self.prefix, content, existing, &self.limits)
            }
        };
        let sent = remote::apply(object, &self.prefix, &plan, &self.limits).await?;
        Ok((before, sent, plan))
    }

    async fn watch(&self, watching: bool) -> Result<(), Error> {
        self.stop_watcher();
        if !watching {
            return Ok(());
        }
        let (state, signal) = (self.state.clone(), self.signal.clone());
        let task = match &self.backend {
            Backend::Embedded(object) => {
                // Subscribed before auto-load's first load: later commits are in it or notified.
                let commits = object.subscribe().await?;
                tokio::spawn(watch_embedded(commits, state, signal))
            }
            Backend::Remote(object) => {
                let watcher = RemoteWatcher {
                    object: object.clone(),
                    state,
                    signal,
                    timeout: self.changes_timeout,
                    retry_delay: self.retry_delay,
                };
                tokio::spawn(watcher.run())
            }
        };
        *self.watcher.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        Ok(())
    }
}

/// Notifies `signal` if `seq` is a commit newer than the storage's own last one.
async fn newer(state: &Mutex<State>, signal: &Notify, seq: u64) {
    if state.lock().await.known.is_some_and(|known| seq > known) {
        signal.notify_one();
    }
}

/// Follows an embedded object's durable commits until aborted or the runtime closes.
async fn watch_embedded(mut commits: watch::Receiver<Bookmark>, state: Arc<Mutex<State>>, signal: Arc<Notify>) {
    loop {
        let seq = commits.borrow_and_update().seq;
        newer(&state, &signal, seq).await;
        if commits.changed().await.is_err() {
            return;
        }
    }
}

/// Follows a remote object's commits by long polls, until aborted.
struct RemoteWatcher {
    object: ObjectClient,
    state: Arc<Mutex<State>>,
    signal: Arc<Notify>,
    timeout: Duration,
    retry_delay: Duration,
}

impl RemoteWatcher {
    async fn run(self) {
        let mut seen: Option<u64> = None;
        loop {
            // Wait for a commit past both the newest seen and the storage's own.
            let known = self.state.lock().await.known;
            let after = seen.max(known).map(|seq| Bookmark { seq, timestamp_ms: 0 }.to_string());
            let answer = match self.object.changes(after.as_deref(), self.timeout).await {
                Ok(answer) => remote::parse(&answer),
                Err(error) => Err(error.into()),
            };
            match answer {
                Ok(bookmark) => {
                    seen = Some(bookmark.seq);
                    newer(&self.state, &self.signal, bookmark.seq).await;
                }
                Err(error) => {
                    tracing::warn!(code = error.code(), %error, "polling a Cairn object for changes failed");
                    tokio::time::sleep(self.retry_delay).await;
                }
            }
        }
    }
}

impl Persist for CairnStorage {
    async fn get_content(&self) -> Result<Option<Content>, Error> {
        self.load().await
    }

    async fn set_content(&self, content: &Content) -> Result<(), Error> {
        self.save(Write::Whole(content)).await
    }

    fn writes_changes(&self) -> bool {
        true
    }

    async fn set_changes(&self, changes: &Changes) -> Result<(), Error> {
        self.save(Write::Changes(changes)).await
    }

    fn change_signal(&self) -> Option<Arc<Notify>> {
        Some(self.signal.clone())
    }

    async fn set_watching(&self, watching: bool) -> Result<(), Error> {
        self.watch(watching).await
    }
}
