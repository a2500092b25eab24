//! A read cache of durable entries, so that a `get` of a recently used key is answered without
//! an event on the namespace's object (no hop to its shard thread).
//!
//! Invariants:
//! - The cache only holds states that are durable: writes are inserted after their event
//!   returned (the runtime releases results once durable), and a read's result is inserted after
//!   its event returned (the output gate held it until everything it saw was durable).
//! - Every cached state carries the object's commit sequence number it reflects (a write: its
//!   own commit; a read: the last commit it could see). A state replaces a cached one only if it
//!   is newer, so writes and reads finishing out of order never leave an older state behind.
//! - Expiry is checked on every hit against the current time, as the object itself would.
//! - Memory is bounded: values over `MAX_CACHED_VALUE` are not cached (the key is marked changed
//!   at that version instead, so older states stay refused), and once the total passes the
//!   budget, arbitrary entries of the namespace being written are dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::Entry;

/// Values larger than this are read from the object every time.
pub(crate) const MAX_CACHED_VALUE: usize = 1024 * 1024;

/// Per-entry bookkeeping counted against the budget besides key and value.
const OVERHEAD: usize = 96;

struct Cached {
    version: u64,
    state: Known,
}

/// A key's state as of a version.
enum Known {
    /// Present with this entry.
    Present(Arc<Entry>),
    /// Absent (or expired).
    Absent,
    /// Changed at this version, in a way not worth caching (a large value, a bulk write): reads
    /// go to the object, and older states are still refused.
    Unknown,
}

/// What a caller knows about a key after an event.
pub(crate) enum State {
    /// Present with this entry.
    Present(Entry),
    /// Absent.
    Absent,
    /// Changed; not worth caching.
    Changed,
}

impl Cached {
    fn size(&self, key: &str) -> usize {
        OVERHEAD
            + key.len()
            + match &self.state {
                Known::Present(e) => e.value.len(),
                _ => 0,
            }
    }
}

/// One namespace's cached keys.
#[derive(Default)]
struct Keys {
    map: HashMap<String, Cached>,
    /// The highest version of any entry dropped to stay in budget: states older than this are
    /// refused, since the dropped entry may have been the newer state of their key.
    floor: u64,
}

type Namespace = Mutex<Keys>;

/// The read cache of every namespace.
pub(crate) struct Cache {
    namespaces: RwLock<HashMap<String, Arc<Namespace>>>,
    bytes: AtomicUsize,
    budget: usize,
}

/// What the cache knows about a key.
pub(crate) enum Lookup {
    /// The key's durable state: present (and not expired) or absent.
    Hit(Option<Entry>),
    /// Not cached.
    Miss,
}

impl Cache {
    pub(crate) fn new(budget: usize) -> Cache {
        Cache { namespaces: RwLock::new(HashMap::new()), bytes: AtomicUsize::new(0), budget }
    }

    fn namespace(&self, ns: &str) -> Option<Arc<Namespace>> {
        self.namespaces.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(ns).cloned()
    }

    fn namespace_or_insert(&self, ns: &str) -> Arc<Namespace> {
        if let Some(n) = self.namespace(ns) {
            return n;
        }
        let mut all = self.namespaces.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(all.entry(ns.to_owned()).or_default())
    }

    /// The cached state of `key`, with entries expired at `now_secs` reported absent.
    pub(crate) fn get(&self, ns: &str, key: &str, now_secs: i64) -> Lookup {
        if self.budget == 0 {
            return Lookup::Miss;
        }
        let Some(namespace) = self.namespace(ns) else { return Lookup::Miss };
        let keys = namespace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match keys.map.get(key).map(|c| &c.state) {
            None | Some(Known::Unknown) => Lookup::Miss,
            Some(Known::Present(e)) if e.expiration.is_none_or(|x| x > now_secs) => Lookup::Hit(Some(Entry::clone(e))),
            Some(_) => Lookup::Hit(None),
        }
    }

    /// Records that `key` is in `state` as of commit `version`, unless a newer state is cached.
    pub(crate) fn put(&self, ns: &str, key: &str, version: u64, state: State) {
        if self.budget == 0 {
            return;
        }
        let namespace = self.namespace_or_insert(ns);
        let mut guard = namespace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let keys = &mut *guard;
        if version < keys.floor || keys.map.get(key).is_some_and(|c| c.version > version) {
            return;
        }
        let map = &mut keys.map;
        let state = match state {
            State::Present(e) if e.value.len() <= MAX_CACHED_VALUE => Known::Present(Arc::new(e)),
            State::Present(_) | State::Changed => Known::Unknown,
            State::Absent => Known::Absent,
        };
        let cached = Cached { version, state };
        self.bytes.fetch_add(cached.size(key), Ordering::Relaxed);
        if let Some(old) = map.insert(key.to_owned(), cached) {
            self.bytes.fetch_sub(old.size(key), Ordering::Relaxed);
        }
        // Over budget: drop arbitrary other entries of this namespace (HashMap order), keeping
        // the one just written.
        while self.bytes.load(Ordering::Relaxed) > self.budget {
            let Some(victim) = map.keys().find(|k| k.as_str() != key).cloned() else { break };
            if let Some(old) = map.remove(&victim) {
                self.bytes.fetch_sub(old.size(&victim), Ordering::Relaxed);
                keys.floor = keys.floor.max(old.version);
            }
        }
    }

    /// Forgets a namespace (deleted).
    pub(crate) fn drop_namespace(&self, ns: &str) {
        let removed = self.namespaces.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(ns);
        if let Some(namespace) = removed {
            let keys = namespace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let total: usize = keys.map.iter().map(|(k, c)| c.size(k)).sum();
            self.bytes.fetch_sub(total, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: &str, expiration: Option<i64>) -> Entry {
        Entry { value: v.as_bytes().to_vec(), expiration, metadata: None }
    }

    fn hit(l: Lookup) -> Option<Option<Vec<u8>>> {
        match l {
            Lookup::Hit(e) => Some(e.map(|e| e.value)),
            Lookup::Miss => None,
        }
    }

    #[test]
    fn newer_states_win_whatever_the_order_they_arrive_in() {
        let c = Cache::new(1 << 20);
        assert!(hit(c.get("n", "k", 0)).is_none());
        c.put("n", "k", 5, State::Present(entry("five", None)));
        c.put("n", "k", 4, State::Present(entry("four", None)));
        assert_eq!(hit(c.get("n", "k", 0)), Some(Some(b"five".to_vec())));
        c.put("n", "k", 6, State::Absent);
        assert_eq!(hit(c.get("n", "k", 0)), Some(None));
        c.put("n", "k", 7, State::Changed);
        assert!(hit(c.get("n", "k", 0)).is_none(), "a change not cached is a miss");
        c.put("n", "k", 6, State::Present(entry("six", None)));
        assert!(hit(c.get("n", "k", 0)).is_none(), "and still refuses older states");
        c.drop_namespace("n");
        assert!(hit(c.get("n", "k", 0)).is_none());
        assert_eq!(c.bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn expired_entries_are_absent_and_the_budget_holds() {
        let c = Cache::new(1000);
        c.put("n", "e", 1, State::Present(entry("x", Some(10))));
        assert_eq!(hit(c.get("n", "e", 9)), Some(Some(b"x".to_vec())));
        assert_eq!(hit(c.get("n", "e", 10)), Some(None));
        for i in 0..100 {
            c.put("n", &format!("k{i}"), 1, State::Present(entry("0123456789", None)));
        }
        assert!(c.bytes.load(Ordering::Relaxed) <= 1000);
        assert!(hit(c.get("n", "k99", 0)).is_some(), "the last write is kept");
        let big = "x".repeat(MAX_CACHED_VALUE + 1);
        c.put("n", "k99", 2, State::Present(entry(&big, None)));
        assert!(hit(c.get("n", "k99", 0)).is_none(), "a value too large to cache is not served stale");
    }
}
