//! Commit notifications: an object's subscribers learn its newest durable commit.
//!
//! Shards look up subscribers only when some exist (one atomic load per commit otherwise). A
//! notification is sent when the commit's round is durable (with `fsync` durability), so a
//! subscriber never sees a commit that could still be lost. Notifications coalesce: a slow
//! subscriber sees the newest commit, not every one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use cairn_storage::Bookmark;
use tokio::sync::watch;

/// The subscribers of every object of a runtime.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    /// Number of objects with a sender (lets shards skip the lookup).
    count: AtomicUsize,
    senders: Mutex<HashMap<Box<str>, watch::Sender<Bookmark>>>,
}

impl Watchers {
    /// A receiver for object `key`, starting at `current`.
    pub(crate) fn subscribe(&self, key: Box<str>, current: Bookmark) -> watch::Receiver<Bookmark> {
        let mut senders = self.senders.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        senders.retain(|_, tx| tx.receiver_count() > 0);
        let rx = match senders.get(&key) {
            Some(tx) => {
                tx.send_if_modified(|b| {
                    let newer = current.seq > b.seq;
                    if newer {
                        *b = current;
                    }
                    newer
                });
                tx.subscribe()
            }
            None => {
                let (tx, rx) = watch::channel(current);
                senders.insert(key, tx);
                rx
            }
        };
        self.count.store(senders.len(), Ordering::Release);
        rx
    }

    /// The sender of object `key`, if anyone listens.
    pub(crate) fn sender(&self, key: &str) -> Option<watch::Sender<Bookmark>> {
        if self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let senders = self.senders.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        senders.get(key).filter(|tx| tx.receiver_count() > 0).cloned()
    }
}

/// Publishes a commit to a sender, never moving backwards.
pub(crate) fn publish(tx: &watch::Sender<Bookmark>, b: Bookmark) {
    tx.send_if_modified(|cur| {
        let newer = b.seq > cur.seq;
        if newer {
            *cur = b;
        }
        newer
    });
}
