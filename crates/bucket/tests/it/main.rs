//! Integration tests of `cairn-bucket` against section 9 (R2) of `cloudflare-semantics.md`, on a
//! real runtime (one shard, a manual clock) in a temporary directory.
//!
//! Bodies come in two sizes throughout: [`TINY`] is kept inline in the bucket's database,
//! [`BIG`] goes to a blob file (the limits under test inline at most 16 bytes).
//!
//! Run with `cargo nextest run -p cairn-bucket`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod buckets;
mod conditions;
mod copy;
mod durability;
mod keys;
mod list;
mod multipart;
mod objects;
mod ranges;
mod streaming;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_bucket::{
    BucketLimits, BucketService, ByteRange, Error, GetOptions, GetOutcome, Object, PutOptions, Result, to_hex,
};
use cairn_runtime::{Durability, Runtime};
use cairn_storage::ManualClock;
use md5::Digest as _;

/// The tests' start time: not on a whole second, so second rounding shows.
pub(crate) const T0_MS: i64 = 1_700_000_000_250;

/// The bucket most tests use.
pub(crate) const BUCKET: &str = "test-bucket";

/// A body kept inline (at most `inline_bytes`).
pub(crate) const TINY: usize = 5;
/// A body stored in a blob file.
pub(crate) const BIG: usize = 100;
/// Both kinds of body.
pub(crate) const SIZES: [usize; 2] = [TINY, BIG];

/// The limits under test: parts of at least 50 bytes, bodies over 16 bytes in files.
pub(crate) fn small_limits() -> BucketLimits {
    BucketLimits { min_part_bytes: 50, inline_bytes: 16, ..BucketLimits::default() }
}

/// A runtime on a temporary directory (its `data` subdirectory) with a manual clock, and the
/// bucket service over it.
pub(crate) struct Env {
    pub(crate) clock: ManualClock,
    pub(crate) rt: Runtime,
    pub(crate) svc: BucketService,
    limits: BucketLimits,
    durability: Durability,
    dir: tempfile::TempDir,
}

impl Env {
    /// The small limits, with [`BUCKET`] created.
    pub(crate) async fn new() -> Env {
        Env::with_limits(small_limits()).await
    }

    /// These limits, with [`BUCKET`] created.
    pub(crate) async fn with_limits(limits: BucketLimits) -> Env {
        let env = Env::bare(limits, Durability::Fsync);
        env.svc.create_bucket(BUCKET).await.expect("create the test bucket");
        env
    }

    /// Commits acknowledged once they reached the OS (for tests that write thousands of keys).
    pub(crate) async fn fast() -> Env {
        let env = Env::bare(small_limits(), Durability::Os);
        env.svc.create_bucket(BUCKET).await.expect("create the test bucket");
        env
    }

    /// No bucket yet.
    pub(crate) fn bare(limits: BucketLimits, durability: Durability) -> Env {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let clock = ManualClock::new(T0_MS);
        let (rt, svc) = open(&dir.path().join("data"), &clock, &limits, durability);
        Env { clock, rt, svc, limits, durability, dir }
    }

    /// Closes the runtime and opens a new one (and a new service) on the same directory.
    pub(crate) fn restart(&mut self) {
        self.rt.close();
        let (rt, svc) = open(&self.data_dir(), &self.clock, &self.limits, self.durability);
        self.rt = rt;
        self.svc = svc;
    }

    /// Closes the runtime (also done on drop, so that a failing test closes it too).
    pub(crate) fn close(self) {
        self.rt.close();
    }

    /// The temporary directory (the data directory is `data` under it).
    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The runtime's data directory.
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Where blob files live: `{data}/buckets`.
    pub(crate) fn blob_root(&self) -> PathBuf {
        self.data_dir().join(cairn_bucket::BLOB_DIR)
    }

    /// The id of a bucket.
    pub(crate) async fn bucket_id(&self, name: &str) -> String {
        self.svc.bucket(name).await.expect("the bucket exists").id
    }

    /// `{data}/buckets/{id}` of a bucket.
    pub(crate) async fn bucket_dir(&self, name: &str) -> PathBuf {
        self.blob_root().join(self.bucket_id(name).await)
    }

    /// Every file under a bucket's blob directory.
    pub(crate) async fn blob_files(&self, name: &str) -> Vec<PathBuf> {
        files_under(&self.bucket_dir(name).await)
    }

    /// Waits (bounded) until a bucket's blob directory holds exactly `n` files, then checks that
    /// it stays so once the blocking pool has settled (background removals and writers).
    pub(crate) async fn await_blob_files(&self, name: &str, n: usize) {
        let dir = self.bucket_dir(name).await;
        eventually(&format!("{} holds {n} file(s)", dir.display()), || files_under(&dir).len() == n).await;
        settle().await;
        let files = files_under(&dir);
        assert_eq!(files.len(), n, "files under {}: {files:?}", dir.display());
    }

    /// Puts bytes into [`BUCKET`] without options.
    pub(crate) async fn put(&self, key: &str, bytes: &[u8]) -> Object {
        self.put_with(key, bytes, PutOptions::default()).await.expect("no condition was given")
    }

    /// Puts bytes into [`BUCKET`].
    pub(crate) async fn put_with(&self, key: &str, bytes: &[u8], options: PutOptions) -> Option<Object> {
        self.svc.put_bytes(BUCKET, key, bytes.to_vec(), options).await.expect("put")
    }

    /// The whole body of a key of [`BUCKET`], `None` if missing.
    pub(crate) async fn get_bytes(&self, key: &str) -> Option<Vec<u8>> {
        self.read(BUCKET, key, GetOptions::default()).await.expect("get").map(|(_, _, body)| body)
    }

    /// Reads a key: `None` if missing, else the object, the range served and the bytes.
    /// Panics if a condition failed.
    pub(crate) async fn read(
        &self,
        bucket: &str,
        key: &str,
        options: GetOptions,
    ) -> Result<Option<(Object, ByteRange, Vec<u8>)>> {
        let Some(outcome) = self.svc.get(bucket, key, options).await? else { return Ok(None) };
        match outcome {
            GetOutcome::Body(b) => {
                let bytes = b.body.collect().await.expect("read the body");
                Ok(Some((b.object, b.range, bytes)))
            }
            GetOutcome::ConditionFailed(o, e) => panic!("condition failed for {:?}: {e:?}", o.key),
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Before the temporary directory goes.
        self.rt.close();
    }
}

fn open(dir: &Path, clock: &ManualClock, limits: &BucketLimits, durability: Durability) -> (Runtime, BucketService) {
    let rt = Runtime::builder(dir)
        .shards(1)
        .durability(durability)
        .idle_spin(Duration::ZERO)
        .clock(Arc::new(clock.clone()))
        .open()
        .expect("open the runtime");
    let svc = BucketService::new(rt.clone(), limits.clone()).expect("bucket service");
    (rt, svc)
}

/// `len` deterministic bytes, different for each `seed`.
pub(crate) fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8)).collect()
}

/// Lowercase hex MD5.
pub(crate) fn md5_hex(bytes: &[u8]) -> String {
    to_hex(&md5::Md5::digest(bytes))
}

/// Binary MD5.
pub(crate) fn md5_bin(bytes: &[u8]) -> Vec<u8> {
    md5::Md5::digest(bytes).to_vec()
}

/// Every file under `dir`, recursively (none if it does not exist).
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Awaits a condition that background work (blob removal on the blocking pool) makes true,
/// giving the blocking pool a turn between checks; fails after 10 s.
pub(crate) async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if cond() {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::task::spawn_blocking(std::thread::yield_now).await.expect("a blocking task");
    }
}

/// Gives the blocking pool a number of turns, so that work it had queued has run.
pub(crate) async fn settle() {
    for _ in 0..64 {
        tokio::task::spawn_blocking(std::thread::yield_now).await.expect("a blocking task");
    }
}

/// Asserts that `r` failed with R2 code `r2` (or none), Cairn code `code`, and a message that
/// starts with `message`; returns the error.
#[track_caller]
pub(crate) fn expect_err<T: std::fmt::Debug>(r: Result<T>, r2: Option<u32>, code: &str, message: &str) -> Error {
    match r {
        Ok(v) => panic!("expected {code} ({message}), got Ok({v:?})"),
        Err(e) => {
            let text = e.to_string();
            assert_eq!((e.r2_code(), e.code()), (r2, code), "{text}");
            assert!(text.starts_with(message), "{text:?} does not start with {message:?}");
            e
        }
    }
}

/// 32 lowercase hex digits.
pub(crate) fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
