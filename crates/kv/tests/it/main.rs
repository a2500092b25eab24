//! Integration tests of `cairn-kv` against section 7 (Workers KV) of `cloudflare-semantics.md`,
//! on a real runtime with an injected clock.
//!
//! Run with `cargo nextest run -p cairn-kv`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bulk;
mod cache;
mod entries;
mod list;
mod namespaces;
mod purge;

use std::sync::Arc;

use cairn_kv::{BulkPut, KvLimits, KvService, ListKeys, PutOptions};
use cairn_runtime::Runtime;
use cairn_storage::{ManualClock, SqlValue};

/// The tests' start time: not on a whole second, so second rounding shows.
pub(crate) const T0_MS: i64 = 1_700_000_000_250;

/// `T0_MS` in whole seconds (rounded down), as the service counts expirations.
pub(crate) const T0_SECS: i64 = T0_MS / 1000;

/// A runtime on a temporary directory with a manual clock, and the KV service over it.
pub(crate) struct Env {
    pub(crate) clock: ManualClock,
    pub(crate) rt: Runtime,
    pub(crate) kv: KvService,
    limits: KvLimits,
    dir: tempfile::TempDir,
}

impl Env {
    /// Default limits.
    pub(crate) fn new() -> Env {
        Env::with_limits(KvLimits::default())
    }

    /// Workers KV's limits under test: values and bulk reads of at most 1024 bytes.
    pub(crate) fn small() -> Env {
        Env::with_limits(small_limits())
    }

    pub(crate) fn with_limits(limits: KvLimits) -> Env {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let clock = ManualClock::new(T0_MS);
        let (rt, kv) = open(dir.path(), &clock, &limits);
        Env { clock, rt, kv, limits, dir }
    }

    /// Closes the runtime and opens a new one (and a new service) on the same directory.
    pub(crate) fn restart(&mut self) {
        self.rt.close();
        let (rt, kv) = open(self.dir.path(), &self.clock, &self.limits);
        self.rt = rt;
        self.kv = kv;
    }

    /// Creates a namespace and returns its id.
    pub(crate) async fn namespace(&self, title: &str) -> String {
        self.kv.create_namespace(title).await.expect("create a namespace").id
    }

    /// Puts a value without options.
    pub(crate) async fn put(&self, ns: &str, key: &str, value: &str) {
        self.kv.put(ns, key, value.as_bytes().to_vec(), PutOptions::default()).await.expect("put");
    }

    /// The value of a key as text, `None` if missing or expired.
    pub(crate) async fn get_text(&self, ns: &str, key: &str) -> Option<String> {
        self.kv.get(ns, key).await.expect("get").map(|e| String::from_utf8(e.value).expect("UTF-8 value"))
    }

    /// The names of one list page.
    pub(crate) async fn names(&self, ns: &str, options: ListKeys) -> Vec<String> {
        self.kv.list(ns, options).await.expect("list").keys.into_iter().map(|k| k.name).collect()
    }

    /// Rows physically present in the namespace's table, expired or not.
    pub(crate) async fn stored_rows(&self, ns: &str) -> i64 {
        let object = self.rt.object(cairn_kv::DATA_NAMESPACE, ns).expect("object");
        let cursor = object.exec("SELECT count(*) FROM kv_entries", Vec::new()).await.expect("count");
        cursor.raw().next().and_then(|r| r.into_iter().next()).and_then(|v: SqlValue| v.as_i64()).expect("a count")
    }

    /// The alarm of the namespace's object.
    pub(crate) async fn alarm(&self, ns: &str) -> Option<i64> {
        self.rt.object(cairn_kv::DATA_NAMESPACE, ns).expect("object").get_alarm().await.expect("get_alarm")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Before the temporary directory goes.
        self.rt.close();
    }
}

fn open(dir: &std::path::Path, clock: &ManualClock, limits: &KvLimits) -> (Runtime, KvService) {
    let rt = Runtime::builder(dir)
        .shards(1)
        .clock(Arc::new(clock.clone()))
        .namespace_limits(cairn_kv::DATA_NAMESPACE, limits.object_limits())
        .open()
        .expect("open the runtime");
    let kv = KvService::new(rt.clone(), limits.clone()).expect("KV service");
    (rt, kv)
}

/// Workers KV's limits as miniflare's tests set them: values and bulk reads up to 1024 bytes.
pub(crate) fn small_limits() -> KvLimits {
    KvLimits { max_value_bytes: 1024, max_bulk_get_bytes: 1024, ..KvLimits::default() }
}

/// A bulk pair without options.
pub(crate) fn pair(key: &str, value: &str) -> BulkPut {
    BulkPut { key: key.to_owned(), value: value.as_bytes().to_vec(), options: PutOptions::default() }
}

/// List options with a prefix.
pub(crate) fn prefixed(prefix: &str) -> ListKeys {
    ListKeys { prefix: Some(prefix.to_owned()), ..ListKeys::default() }
}

/// Asserts that `r` failed with this exact message and code, and returns the error.
#[track_caller]
pub(crate) fn expect_err<T: std::fmt::Debug>(r: cairn_kv::Result<T>, code: &str, message: &str) -> cairn_kv::Error {
    match r {
        Ok(v) => panic!("expected {code} ({message}), got Ok({v:?})"),
        Err(e) => {
            assert_eq!((e.code(), e.to_string().as_str()), (code, message));
            e
        }
    }
}
