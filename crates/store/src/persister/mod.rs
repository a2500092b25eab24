//! Persisters: load a [`Store`] from storage and save it there, explicitly or automatically.
//!
//! A [`Persister`] is generic over a small storage trait, [`Persist`] (read the content, write
//! it, tell whether someone else changed it), so a back end is little more than those three
//! methods; back ends that are told of changes also give a signal ([`Persist::change_signal`])
//! and listen only while auto-loading ([`Persist::set_watching`]). Back ends here: a JSON file
//! (`file.rs`), SQLite (`sqlite.rs`), PostgreSQL (`postgres.rs`, feature `postgres`) and a
//! Cairn object (`cairn.rs`, feature `cairn`); database back ends share their modes and the
//! tabular mapping (`database.rs`, `tabular.rs`).
//!
//! Invariants:
//! - Each persister owns one tokio task that runs all of its loads and saves, one at a time:
//!   loading never overlaps saving, and saves never overlap each other.
//! - Auto-save: every transaction that changes the store marks it dirty and wakes the task. Any
//!   number of transactions committed while a save runs are written by one following save.
//! - A pending auto-save runs before the storage is polled for changes, so local changes are
//!   written before anything is loaded over them.
//! - A load applies what it read in one transaction made on the persister's behalf; the same
//!   persister's auto-save ignores that transaction, so a load is never written back (other
//!   persisters of the store do save it). Loaded numbers 0 and 1 become booleans where the
//!   store's schema declares a boolean (SQL has no boolean type).
//! - An auto-save passes the back end the changes since the content it last loaded or saved
//!   ([`Changes::between`]), so a tabular database writes only what changed; when that content
//!   is unknown (the first save, after a failure or after loading empty storage) and for every
//!   explicit [`Persister::save`], the whole content is written (`changes` is `None`). "The
//!   content last loaded" is the store's content right after the load was applied (schema
//!   defaults included), so what the store rejected of a load is not deleted by the next
//!   auto-save. The cost: a persister keeps one copy of the store, and each auto-save diffs
//!   the whole store against it.
//! - A failed load leaves the store as it was. Every failure of a load, a save or a poll is
//!   passed to the `on_ignored_error` handler (and logged); explicit `load` and `save` also
//!   return it.
//!
//! A race that remains, as in TinyBase: a change made while a load is reading storage is
//! overwritten by what the load applies.

mod actor;
#[cfg(feature = "cairn")]
pub(crate) mod cairn;
pub(crate) mod database;
pub(crate) mod file;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod sqlite;
pub(crate) mod tabular;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::cell::Cell;
use crate::content::{Changes, Content};
use crate::error::Error;
use crate::store::{ListenerId, Origin, Store};

/// A handler of the errors a persister would otherwise ignore: failed loads and saves, corrupt
/// stored data (TinyBase's `onIgnoredError`). It runs on the persister's task and must not
/// block or panic.
pub type OnIgnoredError = Arc<dyn Fn(&Error) + Send + Sync>;

/// A hook called with the text and parameters of each SQL statement a database persister runs
/// (TinyBase's `onSqlCommand`), before running it. Parameters are given as cells: ids and JSON
/// as strings, booleans as they are (SQLite receives them as 1 and 0; PostgreSQL receives a
/// cell bound for a text column as its JSON).
pub type OnSqlCommand = Arc<dyn Fn(&str, &[Cell]) + Send + Sync>;

/// A storage back end: where a [`Persister`] reads and writes a store's content.
///
/// A persister calls these methods from its task, one at a time, never concurrently.
pub trait Persist: Send + Sync + 'static {
    /// Reads the stored content, or `None` if the storage is empty (nothing was ever saved).
    /// Data that is not store content is an error: the store is then left as it is.
    fn get_content(&self) -> impl Future<Output = Result<Option<Content>, Error>> + Send;

    /// Writes `content`. `changes`, when given, is exactly what differs from the content this
    /// back end last read or wrote, so a back end may write only those; `None` means write all.
    fn set_content(
        &self,
        content: &Content,
        changes: Option<&Changes>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// For auto-load, called every poll interval: whether someone else may have changed the
    /// stored content since this back end last read or wrote it. Its own writes must not count.
    /// The default, for a back end that cannot tell, is `false`.
    fn has_changed(&self) -> impl Future<Output = Result<bool, Error>> + Send {
        async { Ok(false) }
    }

    /// For back ends that are told of changes (a database's notifications): notified, auto-load
    /// loads at once instead of waiting for the next poll. The default is none. Called once, when
    /// the persister starts; a back end notifies it only for changes made by others (or when it
    /// knows it missed some), never for its own writes.
    fn change_signal(&self) -> Option<Arc<Notify>> {
        None
    }

    /// Called with `true` when auto-load starts, before its first load, and with `false` when it
    /// stops: a back end that is told of changes listens for them only meanwhile (TinyBase's
    /// `addPersisterListener` and `delPersisterListener`). A failure is reported and auto-load
    /// goes on (polling still runs). The default does nothing.
    fn set_watching(&self, watching: bool) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = watching;
        async { Ok(()) }
    }
}

/// Options shared by all persisters.
#[derive(Clone)]
pub struct PersisterOptions {
    poll_interval: Duration,
    on_ignored_error: Option<OnIgnoredError>,
}

impl Default for PersisterOptions {
    /// Polls every second (TinyBase's `autoLoadIntervalSeconds`), no error handler.
    fn default() -> Self {
        PersisterOptions { poll_interval: Duration::from_secs(1), on_ignored_error: None }
    }
}

impl fmt::Debug for PersisterOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersisterOptions")
            .field("poll_interval", &self.poll_interval)
            .field("on_ignored_error", &self.on_ignored_error.is_some())
            .finish()
    }
}

impl PersisterOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// How often auto-load asks the storage whether it changed (at least a millisecond).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The handler of errors that would otherwise be ignored.
    pub fn on_ignored_error(mut self, f: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.on_ignored_error = Some(Arc::new(f));
        self
    }
}

/// How many loads and saves a persister completed (TinyBase's `getStats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PersisterStats {
    /// Successful loads (including loads of empty storage).
    pub loads: u64,
    /// Successful saves.
    pub saves: u64,
}

#[derive(Default)]
/// What the handle and the task share.
pub(crate) struct Shared {
    pub(crate) auto_save: AtomicBool,
    pub(crate) auto_load: AtomicBool,
    /// Set by a transaction while auto-saving; cleared by the save that writes it.
    pub(crate) dirty: AtomicBool,
    pub(crate) wake: Notify,
    pub(crate) loads: AtomicU64,
    pub(crate) saves: AtomicU64,
}

/// What the handle asks of the task.
pub(crate) enum Command {
    Load { default: Option<Content>, reply: oneshot::Sender<Result<(), Error>> },
    Save { reply: oneshot::Sender<Result<(), Error>> },
    StartAutoLoad { default: Option<Content>, reply: oneshot::Sender<()> },
    StopAutoLoad { reply: oneshot::Sender<()> },
    StartAutoSave { reply: oneshot::Sender<()> },
    StopAutoSave { reply: oneshot::Sender<()> },
    Destroy { reply: oneshot::Sender<()> },
}

/// Loads a store from a storage back end and saves it there: TinyBase's `Persister`.
///
/// Create it inside a tokio runtime; it spawns the task that does its work. Dropping it stops
/// that task after the operation in progress; [`Persister::destroy`] also waits for it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cairn_store::{Cell, DatabaseConfig, Persister, PersisterOptions, SqliteStorage, Store};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::new();
/// let storage = SqliteStorage::open(dir.path().join("pets.db"), DatabaseConfig::json())?;
/// let persister = Persister::new(&store, storage, PersisterOptions::default())?;
///
/// // Load (the default applies: the database is empty), then save every change.
/// let default = cairn_store::Content::from_json(r#"[{"pets":{"fido":{"species":"dog"}}},{}]"#)?;
/// persister.start_auto_persisting(Some(default)).await?;
/// store.set_cell("pets", "felix", "species", "cat");
///
/// // Another store reads what was saved.
/// let copy = Store::new();
/// let storage = SqliteStorage::open(dir.path().join("pets.db"), DatabaseConfig::json())?;
/// let reader = Persister::new(&copy, storage, PersisterOptions::default())?;
/// persister.stop_auto_persisting().await?; // waits for the pending save
/// reader.load(None).await?;
/// assert_eq!(copy.cell("pets", "felix", "species"), Some(Cell::from("cat")));
/// persister.destroy().await;
/// # Ok(()) }
/// ```
pub struct Persister<P: Persist> {
    store: Store,
    storage: Arc<P>,
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    hook: ListenerId,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl<P: Persist> fmt::Debug for Persister<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Persister")
            .field("auto_load", &self.is_auto_loading())
            .field("auto_save", &self.is_auto_saving())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<P: Persist> Persister<P> {
    /// A persister of `store` to `storage`. Fails outside a tokio runtime.
    pub fn new(store: &Store, storage: P, options: PersisterOptions) -> Result<Self, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let shared = Arc::new(Shared::default());
        let origin = Origin::new();
        let hook = {
            let shared = shared.clone();
            store.add_hook(move |by| {
                if by != Some(origin) && shared.auto_save.load(Ordering::SeqCst) {
                    shared.dirty.store(true, Ordering::SeqCst);
                    shared.wake.notify_one();
                }
            })
        };
        let storage = Arc::new(storage);
        let (commands, receiver) = mpsc::channel(8);
        let actor = actor::Actor {
            store: store.clone(),
            storage: storage.clone(),
            shared: shared.clone(),
            origin,
            options,
            commands: receiver,
            last: None,
            poll: None,
        };
        let task = runtime.spawn(actor.run());
        Ok(Persister { store: store.clone(), storage, shared, commands, hook, task: Mutex::new(Some(task)) })
    }

    async fn request<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.map_err(|_| Error::Destroyed)?;
        answer.await.map_err(|_| Error::Destroyed)
    }

    /// Loads the stored content into the store (replacing its content). If the storage is
    /// empty, `default` (if given) is set instead. On failure the store is left as it was.
    pub async fn load(&self, default: Option<Content>) -> Result<(), Error> {
        self.request(|reply| Command::Load { default, reply }).await?
    }

    /// Saves the whole content of the store.
    pub async fn save(&self) -> Result<(), Error> {
        self.request(|reply| Command::Save { reply }).await?
    }

    /// Loads (as [`Persister::load`]; a failure goes to `on_ignored_error` only), then loads
    /// again whenever the storage changes, as long as auto-load runs.
    pub async fn start_auto_load(&self, default: Option<Content>) -> Result<(), Error> {
        self.request(|reply| Command::StartAutoLoad { default, reply }).await
    }

    /// Stops auto-load; a load in progress finishes first.
    pub async fn stop_auto_load(&self) -> Result<(), Error> {
        self.request(|reply| Command::StopAutoLoad { reply }).await
    }

    /// Saves the whole content (a failure goes to `on_ignored_error` only), then saves after
    /// every transaction that changes the store, as long as auto-save runs.
    pub async fn start_auto_save(&self) -> Result<(), Error> {
        self.request(|reply| Command::StartAutoSave { reply }).await
    }

    /// Stops auto-save; a save in progress, and one pending, finish first.
    pub async fn stop_auto_save(&self) -> Result<(), Error> {
        self.request(|reply| Command::StopAutoSave { reply }).await
    }

    /// [`Persister::start_auto_load`], then [`Persister::start_auto_save`].
    pub async fn start_auto_persisting(&self, default: Option<Content>) -> Result<(), Error> {
        self.start_auto_load(default).await?;
        self.start_auto_save().await
    }

    /// Stops auto-load and auto-save.
    pub async fn stop_auto_persisting(&self) -> Result<(), Error> {
        self.stop_auto_load().await?;
        self.stop_auto_save().await
    }

    /// Stops auto-load and auto-save and ends the persister's task, waiting for it. Later calls
    /// fail with [`Error::Destroyed`].
    pub async fn destroy(&self) {
        self.store.del_listener(self.hook);
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Destroy { reply }).await.is_ok() {
            let _ = answer.await;
        }
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Whether auto-load runs.
    pub fn is_auto_loading(&self) -> bool {
        self.shared.auto_load.load(Ordering::SeqCst)
    }

    /// Whether auto-save runs.
    pub fn is_auto_saving(&self) -> bool {
        self.shared.auto_save.load(Ordering::SeqCst)
    }

    /// How many loads and saves completed.
    pub fn stats(&self) -> PersisterStats {
        PersisterStats {
            loads: self.shared.loads.load(Ordering::SeqCst),
            saves: self.shared.saves.load(Ordering::SeqCst),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The storage back end.
    pub fn storage(&self) -> &P {
        &self.storage
    }
}

impl<P: Persist> Drop for Persister<P> {
    fn drop(&mut self) {
        self.store.del_listener(self.hook);
    }
}
