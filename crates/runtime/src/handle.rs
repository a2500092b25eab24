//! [`ObjectRef`]: the async handle through which other threads run events on an object.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use cairn_storage::{Bookmark, Cursor, ListOptions, ObjectStorage, SqlValue, Value};
use tokio::sync::{mpsc, oneshot};

use crate::shard::{Command, HistoryOp, HistoryReply, Job, JobOutcome};
use crate::{Error, Result};

/// A handle to one object. Cheap to clone; sending an event never blocks a thread (the shard
/// queue is bounded and `run` waits asynchronously for room in it).
///
/// Each method is one event: it runs on the object's shard, alone, in its own transaction, and
/// its result is returned only once its writes are durable (the output gate).
#[derive(Clone, Debug)]
pub struct ObjectRef {
    pub(crate) ns: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) shard: mpsc::Sender<Command>,
    pub(crate) watchers: Arc<crate::watch::Watchers>,
}

/// The completion of a job; named so that `tx.send(..)` reads as in a channel.
struct Done<C>(C);

impl<C> Done<C> {
    fn send<T>(self, value: T)
    where
        C: FnOnce(T),
    {
        (self.0)(value);
    }
}

/// The message of a panic payload (a `&str` or `String`), for errors that report a panic.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".to_owned())
}

fn make_job<R, E, F>(f: F, tx: oneshot::Sender<Result<R, E>>) -> Job
where
    F: FnOnce(&mut ObjectStorage) -> Result<R, E> + Send + 'static,
    R: Send + 'static,
    E: From<Error> + Send + 'static,
{
    make_callback_job(f, move |r| {
        let _ = tx.send(r);
    })
}

fn make_callback_job<R, E, F, C>(f: F, done: C) -> Job
where
    F: FnOnce(&mut ObjectStorage) -> Result<R, E> + Send + 'static,
    R: Send + 'static,
    E: From<Error> + Send + 'static,
    C: FnOnce(Result<R, E>) + Send + 'static,
{
    let tx = Done(done);
    Box::new(move |storage: Result<&mut ObjectStorage, Error>| {
        let storage = match storage {
            Ok(s) => s,
            Err(e) => {
                return JobOutcome {
                    commit: false,
                    reply: Box::new(move |_| {
                        tx.send(Err(E::from(e)));
                    }),
                };
            }
        };
        match catch_unwind(AssertUnwindSafe(|| f(storage))) {
            Ok(Ok(v)) => JobOutcome {
                commit: true,
                reply: Box::new(move |err| {
                    tx.send(match err {
                        None => Ok(v),
                        Some(e) => Err(E::from(e)),
                    });
                }),
            },
            Ok(Err(e)) => JobOutcome {
                commit: false,
                reply: Box::new(move |_| {
                    tx.send(Err(e));
                }),
            },
            Err(p) => {
                let message = panic_message(p.as_ref());
                JobOutcome {
                    commit: false,
                    reply: Box::new(move |_| {
                        tx.send(Err(E::from(Error::EventPanicked { message })));
                    }),
                }
            }
        }
    })
}

impl ObjectRef {
    /// The object's namespace.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn event(&self, job: Job) -> Command {
        Command::Event { ns: Arc::clone(&self.ns), name: Arc::clone(&self.name), job }
    }

    /// Runs `f` as one event on the object's shard, with synchronous access to its storage.
    /// If `f` returns `Ok`, its writes commit and the result is returned once they are
    /// durable; if it returns `Err` (or panics), its writes are rolled back.
    ///
    /// # Errors
    /// The error of `f`; [`Error::ShuttingDown`]; [`Error::Durability`] if the commit could
    /// not be made durable; [`Error::EventPanicked`].
    pub async fn run<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&mut ObjectStorage) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.shard.send(self.event(make_job(f, tx))).await.map_err(|_| E::from(Error::ShuttingDown))?;
        rx.await.unwrap_or_else(|_| Err(E::from(Error::ShuttingDown)))
    }

    /// Like [`ObjectRef::run`], but instead of waiting for the result, hands it to `done` once
    /// the event's writes are durable (or have failed). Returns when the event is queued.
    ///
    /// `done` runs on a runtime thread (the shard's or the durability stage's) and must be
    /// quick: it should only hand the result on (for example, push messages to channels).
    /// The callbacks of the events of one object run in the order the events ran, which a
    /// set of separately awaited [`ObjectRef::run`] futures does not promise.
    ///
    /// # Errors
    /// [`Error::ShuttingDown`] if the event could not be queued (then `done` is not called).
    pub async fn submit<R, E, F, C>(&self, f: F, done: C) -> Result<()>
    where
        F: FnOnce(&mut ObjectStorage) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<Error> + Send + 'static,
        C: FnOnce(Result<R, E>) + Send + 'static,
    {
        self.shard.send(self.event(make_callback_job(f, done))).await.map_err(|_| Error::ShuttingDown)
    }

    /// [`ObjectRef::run`] for threads that are not async. Must not be called from inside an
    /// async runtime.
    ///
    /// # Errors
    /// As [`ObjectRef::run`].
    pub fn run_blocking<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&mut ObjectStorage) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.shard.blocking_send(self.event(make_job(f, tx))).map_err(|_| E::from(Error::ShuttingDown))?;
        rx.blocking_recv().unwrap_or_else(|_| Err(E::from(Error::ShuttingDown)))
    }

    /// Reads a key into `T`.
    ///
    /// # Errors
    /// See [`ObjectStorage::get`].
    pub async fn get<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        key: impl Into<String>,
    ) -> Result<Option<T>> {
        let key = key.into();
        self.run(move |s| Ok(s.get::<T>(&key)?)).await
    }

    /// Reads a key as a [`Value`].
    ///
    /// # Errors
    /// See [`ObjectStorage::get_value`].
    pub async fn get_value(&self, key: impl Into<String>) -> Result<Option<Value>> {
        let key = key.into();
        self.run(move |s| Ok(s.get_value(&key)?)).await
    }

    /// Reads several keys; only present keys, sorted.
    ///
    /// # Errors
    /// See [`ObjectStorage::get_many`].
    pub async fn get_many(&self, keys: Vec<String>) -> Result<Vec<(String, Value)>> {
        self.run(move |s| Ok(s.get_many(&keys)?)).await
    }

    /// Stores a serde value.
    ///
    /// # Errors
    /// See [`ObjectStorage::put`].
    pub async fn put<T: serde::Serialize + ?Sized>(&self, key: impl Into<String>, value: &T) -> Result<()> {
        let key = key.into();
        let value = Value::from_serde(&key, value)?;
        self.run(move |s| Ok(s.put_value(&key, &value)?)).await
    }

    /// Stores raw bytes.
    ///
    /// # Errors
    /// See [`ObjectStorage::put_bytes`].
    pub async fn put_bytes(&self, key: impl Into<String>, bytes: Vec<u8>) -> Result<()> {
        let key = key.into();
        self.run(move |s| Ok(s.put_bytes(&key, &bytes)?)).await
    }

    /// Stores several pairs atomically.
    ///
    /// # Errors
    /// See [`ObjectStorage::put_many`].
    pub async fn put_many(&self, entries: Vec<(String, Value)>) -> Result<()> {
        self.run(move |s| Ok(s.put_many(&entries)?)).await
    }

    /// Deletes a key; whether it existed.
    ///
    /// # Errors
    /// See [`ObjectStorage::delete`].
    pub async fn delete(&self, key: impl Into<String>) -> Result<bool> {
        let key = key.into();
        self.run(move |s| Ok(s.delete(&key)?)).await
    }

    /// Deletes several keys atomically; how many existed.
    ///
    /// # Errors
    /// See [`ObjectStorage::delete_many`].
    pub async fn delete_many(&self, keys: Vec<String>) -> Result<usize> {
        self.run(move |s| Ok(s.delete_many(&keys)?)).await
    }

    /// Lists entries.
    ///
    /// # Errors
    /// See [`ObjectStorage::list`].
    pub async fn list(&self, options: ListOptions) -> Result<Vec<(String, Value)>> {
        self.run(move |s| Ok(s.list(&options)?)).await
    }

    /// Deletes all of the object's data and its alarm.
    ///
    /// # Errors
    /// See [`ObjectStorage::delete_all`].
    pub async fn delete_all(&self) -> Result<()> {
        self.run(|s| Ok(s.delete_all()?)).await
    }

    /// Runs SQL; see [`ObjectStorage::exec`].
    ///
    /// # Errors
    /// See [`ObjectStorage::exec`].
    pub async fn exec(&self, sql: impl Into<String>, params: Vec<SqlValue>) -> Result<Cursor> {
        let sql = sql.into();
        self.run(move |s| Ok(s.exec(&sql, &params)?)).await
    }

    /// The alarm, if set.
    ///
    /// # Errors
    /// See [`ObjectStorage::get_alarm`].
    pub async fn get_alarm(&self) -> Result<Option<i64>> {
        self.run(|s| Ok(s.get_alarm()?)).await
    }

    /// Sets the alarm (milliseconds since the epoch).
    ///
    /// # Errors
    /// See [`ObjectStorage::set_alarm`].
    pub async fn set_alarm(&self, time_ms: i64) -> Result<()> {
        self.run(move |s| Ok(s.set_alarm(time_ms)?)).await
    }

    /// Deletes the alarm.
    ///
    /// # Errors
    /// See [`ObjectStorage::delete_alarm`].
    pub async fn delete_alarm(&self) -> Result<()> {
        self.run(|s| Ok(s.delete_alarm()?)).await
    }

    /// A bookmark of the object's state at `time_ms` (ms since the epoch), which must be
    /// within the namespace's retention window: the newest commit at or before that time,
    /// with `time_ms` as its timestamp (so the same time always gives the same bookmark). A
    /// time before the object's first commit gives the bookmark of the empty object; a time
    /// at or after its latest commit gives [`ObjectRef::current_bookmark`].
    ///
    /// # Errors
    /// [`Error::InvalidBookmark`] outside the window; [`Error::HistoryUnavailable`];
    /// [`Error::HistoryDisabled`].
    pub async fn bookmark_for_time(&self, time_ms: i64) -> Result<Bookmark> {
        self.history_op(|reply| HistoryOp::BookmarkForTime { time_ms, reply }).await
    }

    /// Restores the object's storage (KV, SQL and alarm) to `to`, now, as one commit. Newer
    /// history is kept: the returned bookmark (the state just before) undoes the restore.
    ///
    /// # Errors
    /// [`Error::InvalidBookmark`] for a bookmark ahead of the object or outside the window;
    /// [`Error::HistoryUnavailable`]; [`Error::HistoryDisabled`].
    pub async fn restore(&self, to: Bookmark) -> Result<Bookmark> {
        self.history_op(|reply| HistoryOp::Restore { to, reply }).await
    }

    /// Arranges for the object to be restored to `to` the next time it starts (its first
    /// event after [`ObjectRef::abort`], eviction or a restart of the node) and returns the
    /// bookmark of its state now, which undoes the restore.
    ///
    /// # Errors
    /// As [`ObjectRef::restore`].
    pub async fn restore_on_next_start(&self, to: Bookmark) -> Result<Bookmark> {
        self.history_op(|reply| HistoryOp::RestoreOnNextStart { to, reply }).await
    }

    /// Closes the object's storage; its next event opens it again (applying a pending
    /// restore). Committed writes are kept.
    ///
    /// # Errors
    /// [`Error::ShuttingDown`].
    pub async fn abort(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let cmd = Command::Close { ns: Arc::clone(&self.ns), name: Arc::clone(&self.name), reply: Some(tx) };
        self.shard.send(cmd).await.map_err(|_| Error::ShuttingDown)?;
        rx.await.map_err(|_| Error::ShuttingDown)
    }

    /// Asks the shard to close the object's storage (its connection, caches and WAL) after the
    /// commands already queued, without waiting: for an object that is idle and should hold no
    /// memory, such as a hibernating room. Its next event opens it again; committed writes are
    /// kept, and an object that was never written is removed as on eviction. Returns `false`
    /// if the shard's queue is full or the runtime is shutting down: the object then stays open
    /// until the open-object budget evicts it.
    pub fn release(&self) -> bool {
        let cmd = Command::Close { ns: Arc::clone(&self.ns), name: Arc::clone(&self.name), reply: None };
        self.shard.try_send(cmd).is_ok()
    }

    /// Writes the object's storage as it was at `at` (or as it is now) to `dest`, a new
    /// SQLite file of Cairn's object format. Returns the bookmark of what was written.
    ///
    /// # Errors
    /// As [`ObjectRef::restore`], and I/O errors writing `dest`.
    pub async fn image(&self, at: Option<Bookmark>, dest: std::path::PathBuf) -> Result<Bookmark> {
        self.history_op(|reply| HistoryOp::Image { at, dest, reply }).await
    }

    /// Creates this (never written) object from an image written by [`ObjectRef::image`]; the
    /// image file is moved.
    pub(crate) async fn install(&self, image: std::path::PathBuf) -> Result<Bookmark> {
        self.history_op(|reply| HistoryOp::Install { image, reply }).await
    }

    /// Replaces the object's storage (KV, SQL tables, alarm) with `image`, as one commit,
    /// creating the object if it was never written. `image` must be a file written by
    /// [`cairn_storage::import::prepare`] (which checks an uploaded SQLite file), on the data
    /// directory's file system. The file is consumed: moved into place, or removed if the
    /// import fails. Returns the bookmark of the state it replaced, which undoes the import
    /// (the bookmark of the empty object, sequence 0, for an object that did not exist).
    ///
    /// Needs the commit log (durability `fsync`); history may be off.
    ///
    /// # Errors
    /// [`cairn_storage::Error::InvalidImport`] if the image is larger than the namespace's size
    /// limit or not an object image; [`Error::HistoryDisabled`] without the commit log;
    /// I/O errors moving the file.
    pub async fn import(&self, image: std::path::PathBuf) -> Result<Bookmark> {
        // Images the runtime builds itself live in `history/tmp/`; the shard tells a fork's
        // image from an import by that (see `shard/pitr.rs`).
        self.history_op(|reply| HistoryOp::Install { image, reply }).await
    }

    async fn history_op(&self, op: impl FnOnce(HistoryReply) -> HistoryOp) -> Result<Bookmark> {
        let (tx, rx) = oneshot::channel();
        let op = op(Box::new(move |r| {
            let _ = tx.send(r);
        }));
        let cmd = Command::History { ns: Arc::clone(&self.ns), name: Arc::clone(&self.name), op };
        self.shard.send(cmd).await.map_err(|_| Error::ShuttingDown)?;
        rx.await.unwrap_or(Err(Error::ShuttingDown))
    }

    /// Subscribes to the object's commits: the receiver holds the bookmark of its newest
    /// durable commit and changes after each later one (restores included). Notifications
    /// coalesce: a slow reader sees the newest commit, not each one.
    ///
    /// # Errors
    /// [`Error::ShuttingDown`].
    pub async fn subscribe(&self) -> Result<tokio::sync::watch::Receiver<Bookmark>> {
        let key = format!("{}\0{}", self.ns, self.name).into_boxed_str();
        // Subscribe first, then read the current bookmark as an event: a commit between the
        // two is either in the bookmark or notified.
        let rx = self.watchers.subscribe(key.clone(), Bookmark { seq: 0, timestamp_ms: 0 });
        let current = self.current_bookmark().await?;
        if let Some(tx) = self.watchers.sender(&key) {
            crate::watch::publish(&tx, current);
        }
        Ok(rx)
    }

    /// A bookmark covering every write made so far.
    ///
    /// # Errors
    /// [`Error::ShuttingDown`].
    pub async fn current_bookmark(&self) -> Result<Bookmark> {
        self.run(|s| Ok(s.current_bookmark())).await
    }

    /// Resolves once every write issued before the call is durable.
    ///
    /// # Errors
    /// [`Error::Durability`] if a commit could not be made durable.
    pub async fn sync(&self) -> Result<()> {
        self.run(|_| Ok(())).await
    }
}
