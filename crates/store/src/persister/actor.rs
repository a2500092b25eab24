//! The persister's task: runs every load and save of one persister, one at a time (see the
//! invariants in `mod.rs`).

use std::future::pending;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at};

use super::{Command, Persist, PersisterOptions, Shared};
use crate::content::Content;
use crate::error::Error;
use crate::schema::conform_booleans;
use crate::store::{Origin, Store};

/// The persister's task.
pub(super) struct Actor<P: Persist> {
    pub(super) store: Store,
    pub(super) storage: Arc<P>,
    pub(super) shared: Arc<Shared>,
    pub(super) origin: Origin,
    pub(super) options: PersisterOptions,
    pub(super) commands: mpsc::Receiver<Command>,
    /// Whether the storage holds the store as it was when the pending changes began (the last
    /// save or load), so that writing those changes brings it up to date. If not, the next save
    /// writes the whole content.
    pub(super) synced: bool,
    /// The auto-load timer, while auto-loading.
    pub(super) poll: Option<Interval>,
}

async fn tick(poll: &mut Option<Interval>) {
    match poll {
        Some(interval) => {
            interval.tick().await;
        }
        None => pending().await,
    }
}

async fn signalled(signal: Option<&Notify>) {
    match signal {
        Some(signal) => signal.notified().await,
        None => pending().await,
    }
}

impl<P: Persist> Actor<P> {
    pub(super) async fn run(mut self) {
        let signal = self.storage.change_signal();
        loop {
            if self.shared.auto_save.load(Ordering::SeqCst) && self.shared.dirty.swap(false, Ordering::SeqCst) {
                let _ = self.save(false).await;
                continue;
            }
            let auto_save = self.shared.auto_save.load(Ordering::SeqCst);
            let auto_load = self.poll.is_some();
            tokio::select! {
                biased;
                command = self.commands.recv() => {
                    let Some(command) = command else { break };
                    if !self.handle(command).await {
                        break;
                    }
                }
                () = self.shared.wake.notified(), if auto_save => {}
                () = tick(&mut self.poll), if auto_load => self.poll_storage().await,
                () = signalled(signal.as_deref()), if auto_load => {
                    let _ = self.load(None).await;
                }
            }
        }
        self.stop_watching().await;
        self.shared.auto_save.store(false, Ordering::SeqCst);
        self.shared.auto_load.store(false, Ordering::SeqCst);
    }

    /// Ends auto-load's polling and the back end's listening, if auto-load runs.
    async fn stop_watching(&mut self) {
        if self.poll.take().is_some()
            && let Err(error) = self.storage.set_watching(false).await
        {
            self.report("stop watching for changes", &error);
        }
    }

    /// Runs a command; `false` when the persister is destroyed.
    async fn handle(&mut self, command: Command) -> bool {
        match command {
            Command::Load { default, reply } => {
                let _ = reply.send(self.load(default).await);
            }
            Command::Save { reply } => {
                let _ = reply.send(self.save(true).await);
            }
            Command::StartAutoLoad { default, reply } => {
                // Listening starts before the load: a change after it is in the load or signalled.
                if self.poll.is_none()
                    && let Err(error) = self.storage.set_watching(true).await
                {
                    self.report("watch for changes", &error);
                }
                let _ = self.load(default).await;
                if self.poll.is_none() {
                    let period = self.options.poll_interval;
                    let mut interval = interval_at(Instant::now() + period, period);
                    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
                    self.poll = Some(interval);
                }
                self.shared.auto_load.store(true, Ordering::SeqCst);
                let _ = reply.send(());
            }
            Command::StopAutoLoad { reply } => {
                self.stop_watching().await;
                self.shared.auto_load.store(false, Ordering::SeqCst);
                let _ = reply.send(());
            }
            Command::StartAutoSave { reply } => {
                if !self.shared.auto_save.swap(true, Ordering::SeqCst) {
                    self.shared.dirty.store(false, Ordering::SeqCst);
                    let _ = self.save(true).await;
                }
                let _ = reply.send(());
            }
            Command::StopAutoSave { reply } => {
                if self.shared.auto_save.swap(false, Ordering::SeqCst)
                    && self.shared.dirty.swap(false, Ordering::SeqCst)
                {
                    let _ = self.save(false).await;
                }
                let _ = reply.send(());
            }
            Command::Destroy { reply } => {
                self.stop_watching().await;
                self.shared.auto_load.store(false, Ordering::SeqCst);
                self.shared.auto_save.store(false, Ordering::SeqCst);
                let _ = reply.send(());
                return false;
            }
        }
        true
    }

    fn report(&self, operation: &str, error: &Error) {
        tracing::warn!(operation, code = error.code(), %error, "store persister failed; the error is ignored");
        if let Some(handler) = &self.options.on_ignored_error {
            handler(error);
        }
    }

    async fn load(&mut self, default: Option<Content>) -> Result<(), Error> {
        match self.storage.get_content().await {
            Ok(Some(content)) => {
                self.synced = self.apply(content);
            }
            Ok(None) => {
                if let Some(default) = default {
                    self.apply(default);
                }
                self.synced = false;
            }
            Err(error) => {
                self.report("load", &error);
                return Err(error);
            }
        }
        self.shared.loads.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Sets loaded content on the persister's behalf and drops the pending changes in the same
    /// transaction (no other transaction commits in between). `false` if a store listener
    /// panicked: the content is applied all the same and the persister goes on, with what the
    /// storage holds taken as unknown.
    fn apply(&self, mut content: Content) -> bool {
        let applied = catch_unwind(AssertUnwindSafe(|| {
            self.store.transaction_with_origin(self.origin, |tx| {
                let state = tx.state();
                conform_booleans(&mut content, state.tables_schema(), state.values_schema());
                tx.set_content(content);
                self.shared.pending().clear();
            });
        }));
        if applied.is_err() {
            tracing::error!("a store listener panicked while a persister applied what it loaded");
        }
        applied.is_ok()
    }

    /// Saves the pending changes or, if `whole` or what the storage holds is unknown, the whole
    /// content (see the invariants in `mod.rs`).
    async fn save(&mut self, whole: bool) -> Result<(), Error> {
        let whole = whole || !self.synced;
        let written = if !whole && self.storage.writes_changes() {
            let changes = self.shared.take_pending().into_changes();
            if changes.is_empty() {
                return Ok(());
            }
            self.storage.set_changes(&changes).await
        } else {
            // The copy and the pending changes it holds are taken together (and the changes
            // dropped after the store's lock).
            let mut taken = None;
            let content = self.store.content_if(|| {
                let pending = taken.insert(self.shared.take_pending());
                whole || pending.has_changes()
            });
            drop(taken);
            let Some(content) = content else { return Ok(()) };
            self.storage.set_content(&content).await
        };
        match written {
            Ok(()) => {
                self.synced = true;
                self.shared.saves.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            Err(error) => {
                self.synced = false;
                self.report("save", &error);
                Err(error)
            }
        }
    }

    async fn poll_storage(&mut self) {
        match self.storage.has_changed().await {
            Ok(true) => {
                let _ = self.load(None).await;
            }
            Ok(false) => {}
            Err(error) => self.report("check for changes", &error),
        }
    }
}
