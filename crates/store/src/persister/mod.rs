//! Persisters: load a [`Store`] from storage and save it there, explicitly or automatically.
//!
//! A [`Persister`] is generic over a small storage trait, [`Persist`] (read the content, write
//! it, tell whether someone else changed it), so a back end is little more than those three
//! methods; back ends that can write changes alone say so ([`Persist::writes_changes`]) and
//! write them ([`Persist::set_changes`]); back ends that are told of changes also give a signal
//! ([`Persist::change_signal`]) and listen only while auto-loading ([`Persist::set_watching`]).
//! Back ends here: a JSON file (`file.rs`), SQLite (`sqlite.rs`), PostgreSQL (`postgres.rs`,
//! feature `postgres`) and a Cairn object (`cairn.rs`, feature `cairn`); database back ends
//! share their modes and the tabular mapping (`database.rs`, `tabular.rs`).
//!
//! Invariants:
//! - Each persister owns one tokio task that runs all of its loads and saves, one at a time:
//!   loading never overlaps saving, and saves never overlap each other.
//! - Auto-save: while it runs, every transaction that changes the store, except the persister's
//!   own loads, merges its net changes into the persister's pending changes (`pending.rs`),
//!   marks it dirty and wakes the task. The merge runs as the transaction commits, under the
//!   store's write lock (the store's hook), so the pending changes follow the commit order; it
//!   costs the writer what the transaction changed (about a microsecond per cell), not the
//!   store's size. A save takes them (swaps them with none); any number of transactions
//!   committed while a save runs are written by one following save. Nothing is merged while
//!   auto-save is off, and it starts again with a whole save.
//! - A pending auto-save runs before the storage is polled for changes, so local changes are
//!   written before anything is loaded over them.
//! - A load applies what it read in one transaction made on the persister's behalf; the same
//!   persister's auto-save ignores that transaction, so a load is never written back (other
//!   persisters of the store do save it). That transaction also drops the pending changes: the
//!   storage now holds what the store holds, and what was pending is overwritten. Loaded numbers
//!   0 and 1 become booleans where the store's schema declares a boolean (SQL has no boolean
//!   type).
//! - An auto-save writes the pending changes: exactly [`Changes::between`] the store's content
//!   at the previous save or load and its content now (`pending.rs` keeps each touched cell's
//!   first and latest content, and whether each touched row and table still exists), without
//!   keeping a copy of the store or diffing it. A back end that writes changes
//!   ([`Persist::writes_changes`]: tabular databases, Cairn objects) gets only those, and the
//!   store is not copied; any other (a JSON file, JSON mode) gets the whole content, copied
//!   under the store's lock together with the swap of the pending changes, so the two agree.
//!   A save with no net change writes nothing. The whole content is written
//!   ([`Persist::set_content`]) when what the storage holds is unknown: the first save (auto-save
//!   starts with one), after a failed save, after loading empty storage (or a load whose
//!   listeners panicked); and for every explicit [`Persister::save`]. Such a save takes the
//!   pending changes under the same lock as its copy of the content.
//! - "The store at the last load" is its content right after the load's transaction (schema
//!   defaults included), and the pending changes hold only what later transactions changed:
//!   cells the store rejected of a load are never in them, so the next auto-save does not
//!   delete them (unless their row or table is deleted), and defaults a load added are saved
//!   only once they change.
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
mod pending;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod sqlite;
pub(crate) mod tabular;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::cell::Cell;
use crate::content::{Changes, Content};
use crate::error::Error;
use crate::store::{ListenerId, Origin, Store};
use pending::Pending;

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
/// A persister calls these methods from its task, one at a time, never concurrently. A back end
/// that writes only whole content needs [`Persist::get_content`] and [`Persist::set_content`];
/// one that can write changes alone (a database table per store table, a key per cell) also
/// returns `true` from [`Persist::writes_changes`] and implements [`Persist::set_changes`], and
/// then its auto-saves cost what changed instead of a copy of the whole store.
pub trait Persist: Send + Sync + 'static {
    /// Reads the stored content, or `None` if the storage is empty (nothing was ever saved).
    /// Data that is not store content is an error: the store is then left as it is.
    fn get_content(&self) -> impl Future<Output = Result<Option<Content>, Error>> + Send;

    /// Writes the whole `content`, replacing what is stored. Every save of a back end whose
    /// [`Persist::writes_changes`] is `false` comes here; for the others, explicit saves and
    /// auto-saves that cannot know what is stored (the first, one after a failed save or after
    /// loading empty storage) do.
    fn set_content(&self, content: &Content) -> impl Future<Output = Result<(), Error>> + Send;

    /// Whether this back end writes saves of changes alone ([`Persist::set_changes`]), so that
    /// an auto-save never copies the store. The default, `false`: every save passes the whole
    /// content to [`Persist::set_content`].
    fn writes_changes(&self) -> bool {
        false
    }

    /// Writes only `changes`: exactly what differs between the store when this back end last
    /// read or wrote it and the store now ([`Changes::between`] them), never empty. `None`
    /// deletes (a table or row: everything stored under it, including what the store never
    /// held); a row's `Some` lists only its changed cells. Called only if
    /// [`Persist::writes_changes`] is `true`; the default fails.
    fn set_changes(&self, changes: &Changes) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = changes;
        async { Err(whole_content_only()) }
    }

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

/// What [`Persist::set_changes`] fails with in a back end (or mode) that writes only whole
/// content.
pub(crate) fn whole_content_only() -> Error {
    Error::Backend("this back end writes only whole content".into())
}

/// One save, as the back ends here take it: [`Persist::set_content`] or [`Persist::set_changes`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Write<'a> {
    Whole(&'a Content),
    Changes(&'a Changes),
}

impl<'a> Write<'a> {
    /// The content or the changes, as the planners take them.
    pub(crate) fn parts(self) -> (Option<&'a Content>, Option<&'a Changes>) {
        match self {
            Write::Whole(content) => (Some(content), None),
            Write::Changes(changes) => (None, Some(changes)),
        }
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
/// What the handle, the task and the store's hook share.
pub(crate) struct Shared {
    pub(crate) auto_save: AtomicBool,
    pub(crate) auto_load: AtomicBool,
    /// Set by a transaction while auto-saving; cleared by the save that writes it.
    pub(crate) dirty: AtomicBool,
    /// What auto-save has yet to write; locked after the store's lock, never before.
    pending: Mutex<Pending>,
    pub(crate) wake: Notify,
    pub(crate) loads: AtomicU64,
    pub(crate) saves: AtomicU64,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the pending changes, leaving none.
    fn take_pending(&self) -> Pending {
        std::mem::take(&mut *self.pending())
    }
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
            store.add_hook(move |committed| {
                if committed.origin != Some(origin) && shared.auto_save.load(Ordering::SeqCst) {
                    shared.pending().merge(committed);
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
            synced: false,
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
