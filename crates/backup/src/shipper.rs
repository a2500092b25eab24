//! The continuous backup: one task per target that ships what the runtime made durable.
//!
//! A pass: read the durable log positions (`captured_at`), upload new or changed bucket
//! blobs, upload the new whole records of every log segment as chunks, then rewrite
//! `state.json`. Every write acknowledged before `captured_at` is at the target once the pass
//! ends (its record was durable, hence readable, when the positions were read; its blob, if any,
//! was sealed before it committed). Passes never open objects. The first pass, and one every
//! `snapshot_interval`, also takes a snapshot (see [`cairn_runtime::Runtime::copy_objects`]), after
//! which snapshots and chunks no longer needed for the retention window are deleted.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cairn_runtime::Runtime;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::format::{self, BackupState, SnapshotFile, SnapshotManifest};
use crate::target::{Target, TargetConfig};
use crate::{Error, Result};

/// Backup settings.
#[derive(Clone, Debug)]
pub struct BackupConfig {
    /// Where backups go; each target gets a full, independent backup.
    pub targets: Vec<TargetConfig>,
    /// Time between passes (the bound on the backup's lag, plus upload time).
    pub interval: Duration,
    /// Time between snapshots.
    pub snapshot_interval: Duration,
    /// How far back a restore may go; older snapshots, chunks and deleted blobs are removed.
    pub retention: Duration,
    /// Directories under the data directory whose files are immutable once committed (bucket
    /// bodies), shipped as they are.
    pub blob_dirs: Vec<String>,
    /// Largest chunk uploaded at once.
    pub chunk_bytes: usize,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            targets: Vec::new(),
            interval: Duration::from_secs(1),
            snapshot_interval: Duration::from_secs(24 * 3600),
            retention: Duration::from_secs(30 * 24 * 3600),
            blob_dirs: vec!["buckets".to_owned()],
            chunk_bytes: 16 << 20,
        }
    }
}

/// How one target is doing.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TargetStatus {
    /// The target as configured.
    pub target: String,
    /// When the last successful pass ended (ms), if any.
    pub last_success_ms: Option<i64>,
    /// Every write acknowledged before this time (ms) is at the target.
    pub captured_at_ms: Option<i64>,
    /// The last failure, cleared by a successful pass.
    pub last_error: Option<String>,
    /// Passes that succeeded since the start.
    pub passes: u64,
    /// Bytes uploaded since the start.
    pub bytes_shipped: u64,
    /// Commit records uploaded since the start.
    pub records_shipped: u64,
    /// The newest snapshot: its id, when it completed, objects in it.
    pub snapshot: Option<SnapshotSummary>,
    /// Lags (ms) from a record's commit to the end of the upload that carried it, for the
    /// most recent records (at most 10,000): p50/p99 come from here.
    #[serde(skip)]
    pub recent_lags_ms: Vec<i64>,
    /// The same lags for every record since the start.
    #[serde(skip)]
    pub lag_histogram: crate::LagHistogram,
}

/// A snapshot, briefly.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// Its id.
    pub id: u64,
    /// When it completed (ms).
    pub completed_at_ms: i64,
    /// Objects copied.
    pub objects: u64,
}

impl TargetStatus {
    /// The lag percentile `p` (0-100) over the recent records, in ms.
    pub fn lag_percentile_ms(&self, p: f64) -> Option<i64> {
        let mut v = self.recent_lags_ms.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let rank = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        v.get(rank.min(v.len() - 1)).copied()
    }
}

const RECENT_LAGS: usize = 10_000;

/// The running backup: one task per target. Dropping it stops the tasks without a last pass;
/// [`Backup::shutdown`] runs one first.
pub struct Backup {
    statuses: Vec<Arc<Mutex<TargetStatus>>>,
    /// Per target, the `captured_at` of its last successful pass.
    captured: Vec<watch::Receiver<i64>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Backup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backup").field("targets", &self.statuses.len()).finish()
    }
}

impl Backup {
    /// Opens every target and starts shipping. Call from inside a tokio runtime.
    ///
    /// # Errors
    /// [`Error::InvalidTarget`] for a target that cannot be opened; the runtime must keep
    /// history (the log is what a backup ships).
    pub fn start(runtime: Runtime, config: BackupConfig) -> Result<Backup> {
        if !runtime.config().history_on() {
            return Err(Error::InvalidTarget(
                "continuous backup ships the commit log, which needs history on ([history] enabled = true)".to_owned(),
            ));
        }
        let (stop, _) = watch::channel(false);
        let mut statuses = Vec::new();
        let mut tasks = Vec::new();
        let mut captured = Vec::new();
        for (i, tc) in config.targets.iter().enumerate() {
            let target = Target::open(tc)?;
            let status =
                Arc::new(Mutex::new(TargetStatus { target: target.name().to_owned(), ..TargetStatus::default() }));
            let staging = runtime.config().data_dir.join("backup").join(format!("staging-{i}"));
            let shipper = Shipper {
                runtime: runtime.clone(),
                target,
                config: config.clone(),
                status: Arc::clone(&status),
                state: BackupState::default(),
                blobs: HashMap::new(),
                snapshots: Vec::new(),
                staging,
                loaded: false,
                captured: watch::channel(0).0,
            };
            captured.push(shipper.captured.subscribe());
            tasks.push(tokio::spawn(shipper.run(stop.subscribe())));
            statuses.push(status);
        }
        Ok(Backup { statuses, captured, stop, tasks: Mutex::new(tasks) })
    }

    /// Each target's status.
    pub fn status(&self) -> Vec<TargetStatus> {
        self.statuses.iter().filter_map(|s| s.lock().ok().map(|s| s.clone())).collect()
    }

    /// Waits until every target holds every write acknowledged before `time_ms` (its last
    /// successful pass captured the log at or after it). Returns at once without targets.
    pub async fn caught_up(&self, time_ms: i64) {
        for rx in &self.captured {
            let mut rx = rx.clone();
            let _ = rx.wait_for(|t| *t >= time_ms).await;
        }
    }

    /// Runs a last pass on every target and stops.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks = self.tasks.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for Backup {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.lock() {
            for t in tasks.iter() {
                t.abort();
            }
        }
    }
}

struct Shipper {
    runtime: Runtime,
    target: Target,
    config: BackupConfig,
    status: Arc<Mutex<TargetStatus>>,
    state: BackupState,
    /// Blobs at the target: path → (size, local modification time in ms when shipped).
    blobs: HashMap<String, (u64, i64)>,
    /// Finished snapshots at the target, oldest first.
    snapshots: Vec<SnapshotManifest>,
    staging: PathBuf,
    loaded: bool,
    captured: watch::Sender<i64>,
}

/// Wall-clock time, for comparing with file modification times only; everything else uses
/// the runtime's clock, the one commit timestamps come from.
fn file_time_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Shipper {
    /// Now, by the runtime's clock (commit timestamps and acknowledgements use it too).
    fn now(&self) -> i64 {
        self.runtime.config().clock.now_ms()
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut failures = 0u32;
        loop {
            let result = self.pass().await;
            match &result {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(target = self.target.name(), error = %e, "backup pass failed");
                    if let Ok(mut s) = self.status.lock() {
                        s.last_error = Some(e.to_string());
                    }
                }
            }
            if *stop.borrow() {
                return;
            }
            // After failures, wait longer (up to 32 intervals) before trying again.
            let wait = self.config.interval * 2u32.saturating_pow(failures.min(5));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {
                    // One last pass, then stop.
                    if let Err(e) = self.pass().await {
                        tracing::warn!(target = self.target.name(), error = %e, "last backup pass failed");
                    }
                    return;
                }
            }
        }
    }

    /// Reads what the target already holds (after a restart of either side).
    async fn load(&mut self) -> Result<()> {
        if let Some(bytes) = self.target.get(format::STATE_KEY).await? {
            self.state = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Corrupt(format!("{} is not a backup state: {e}", format::STATE_KEY)))?;
        }
        self.snapshots = list_snapshots(&self.target).await?;
        for (key, size, modified) in self.target.list(format::BLOBS).await? {
            if let Some(path) = key.strip_prefix(format::BLOBS).map(|k| k.trim_start_matches('/').to_owned()) {
                self.blobs.insert(path, (size, modified));
            }
        }
        self.loaded = true;
        Ok(())
    }

    async fn pass(&mut self) -> Result<()> {
        if !self.loaded {
            self.load().await?;
        }
        let captured = self.now();
        let files = self.runtime.segment_files()?;
        if self.snapshots.is_empty() {
            // A first backup needs no record from before its snapshot.
            for f in &files {
                self.state.segments.insert(f.file_name.clone(), f.readable);
            }
            self.snapshot().await?;
            // Nothing older than it is needed: what it copied is durable in it.
            self.save_state(captured).await?;
        }
        self.ship_blobs().await?;
        self.ship_segments(&files).await?;
        self.save_state(captured).await?;
        // Compaction may drop only what has been shipped (with a margin for rounds durable
        // after their commit's timestamp).
        self.runtime.pin_history(Some(captured.saturating_sub(60_000)));
        let due = self
            .snapshots
            .last()
            .is_none_or(|s| self.now().saturating_sub(s.completed_at_ms) >= millis(self.config.snapshot_interval));
        if due {
            self.snapshot().await?;
        }
        self.compact().await?;
        Ok(())
    }

    async fn save_state(&mut self, captured: i64) -> Result<()> {
        self.state.format = format::FORMAT;
        self.state.captured_at_ms = captured;
        self.state.finished_at_ms = self.now();
        let bytes = serde_json::to_vec_pretty(&self.state).map_err(|e| Error::Corrupt(e.to_string()))?;
        // What the state names must be durable before the state is, and the state before it
        // is reported.
        self.target.sync().await?;
        self.target.put(format::STATE_KEY, Bytes::from(bytes)).await?;
        self.target.sync().await?;
        if let Ok(mut s) = self.status.lock() {
            s.last_success_ms = Some(self.state.finished_at_ms);
            s.captured_at_ms = Some(captured);
            s.last_error = None;
            s.passes += 1;
        }
        self.captured.send_replace(captured);
        Ok(())
    }

    fn shipped(&self, bytes: u64, lags: &[i64]) {
        if let Ok(mut s) = self.status.lock() {
            s.bytes_shipped += bytes;
            s.records_shipped += lags.len() as u64;
            s.recent_lags_ms.extend_from_slice(lags);
            for lag in lags {
                s.lag_histogram.record(*lag);
            }
            let n = s.recent_lags_ms.len();
            if n > RECENT_LAGS {
                s.recent_lags_ms.drain(..n - RECENT_LAGS);
            }
        }
    }

    async fn ship_segments(&mut self, files: &[cairn_runtime::SegmentFile]) -> Result<()> {
        for f in files {
            let mut shipped = self.state.segments.get(&f.file_name).copied().unwrap_or(0);
            while shipped < f.readable {
                let want = (f.readable - shipped).min(self.config.chunk_bytes as u64);
                let mut bytes = read_at(&f.path, shipped, want).await?;
                let mut whole = cairn_runtime::whole_records_len(&bytes);
                if whole == 0 && want < f.readable - shipped {
                    // One record larger than a chunk: read up to the end.
                    bytes = read_at(&f.path, shipped, f.readable - shipped).await?;
                    whole = cairn_runtime::whole_records_len(&bytes);
                }
                if whole == 0 {
                    break;
                }
                bytes.truncate(whole);
                let timestamps = record_timestamps(&bytes);
                let end = shipped + whole as u64;
                self.target.put(&format::chunk_key(&f.file_name, shipped, end), Bytes::from(bytes)).await?;
                let done = self.now();
                let lags: Vec<i64> = timestamps.iter().filter(|&&t| t > 0).map(|t| done.saturating_sub(*t)).collect();
                self.shipped(whole as u64, &lags);
                shipped = end;
                self.state.segments.insert(f.file_name.clone(), shipped);
            }
        }
        Ok(())
    }

    async fn ship_blobs(&mut self) -> Result<()> {
        let data_dir = self.runtime.config().data_dir.clone();
        let dirs = self.config.blob_dirs.clone();
        let local = tokio::task::spawn_blocking(move || scan_files(&data_dir, &dirs))
            .await
            .map_err(|e| Error::Io { context: "scan blob files".to_owned(), source: std::io::Error::other(e) })??;
        let now = self.now();
        let file_now = file_time_now_ms();
        for (path, (size, modified)) in &local {
            if self.blobs.get(path).is_some_and(|(s, m)| s == size && m >= modified) {
                continue;
            }
            let full = self.runtime.config().data_dir.join(path);
            let bytes = tokio::fs::read(&full).await.map_err(Error::io(format!("read {}", full.display())))?;
            let len = bytes.len() as u64;
            self.target.put(&format!("{}/{path}", format::BLOBS), Bytes::from(bytes)).await?;
            self.shipped(len, &[]);
            self.blobs.insert(path.clone(), (len, file_now.max(*modified)));
            self.state.deleted_blobs.remove(path);
        }
        for path in self.blobs.keys() {
            if !local.contains_key(path) {
                self.state.deleted_blobs.entry(path.clone()).or_insert(now);
            }
        }
        Ok(())
    }

    /// Copies every object and the catalog, uploads them, then the manifest.
    async fn snapshot(&mut self) -> Result<()> {
        let started = self.now();
        let id = u64::try_from(started).unwrap_or(0).max(self.snapshots.last().map_or(0, |s| s.id + 1));
        let start_segments: BTreeMap<String, u64> =
            self.runtime.segment_files()?.into_iter().map(|f| (f.file_name, f.readable)).collect();
        let dir = self.staging.join(format!("{id:016x}"));
        let _ = tokio::fs::remove_dir_all(&self.staging).await;
        tokio::fs::create_dir_all(&dir).await.map_err(Error::io("create the backup staging directory"))?;
        let copied = self.runtime.copy_objects(&dir, 64, |_| {}).await?;
        self.runtime.copy_catalog(&dir.join("catalog.db"))?;
        let completed = self.now();
        let mut paths: Vec<PathBuf> = copied.iter().flat_map(|c| c.files.iter().cloned()).collect();
        paths.push(PathBuf::from("catalog.db"));
        let mut files = Vec::with_capacity(paths.len());
        for rel in paths {
            let bytes = tokio::fs::read(dir.join(&rel)).await.map_err(Error::io(format!("read {}", rel.display())))?;
            let path = rel.to_string_lossy().replace('\\', "/");
            let file =
                SnapshotFile { path: path.clone(), bytes: bytes.len() as u64, sha256: format::sha256_hex(&bytes) };
            let len = bytes.len() as u64;
            self.target.put(&format!("{}/files/{path}", format::snapshot_dir(id)), Bytes::from(bytes)).await?;
            self.shipped(len, &[]);
            files.push(file);
        }
        let manifest = SnapshotManifest {
            format: format::FORMAT,
            id,
            started_at_ms: started,
            completed_at_ms: completed,
            start_segments,
            objects: copied.len() as u64,
            files,
        };
        let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Corrupt(e.to_string()))?;
        // The manifest marks the snapshot whole: its files go first.
        self.target.sync().await?;
        self.target.put(&format!("{}/manifest.json", format::snapshot_dir(id)), Bytes::from(bytes)).await?;
        let _ = tokio::fs::remove_dir_all(&self.staging).await;
        if let Ok(mut s) = self.status.lock() {
            s.snapshot = Some(SnapshotSummary { id, completed_at_ms: completed, objects: manifest.objects });
        }
        tracing::info!(target = self.target.name(), objects = manifest.objects, "backup snapshot taken");
        self.snapshots.push(manifest);
        Ok(())
    }

    /// Deletes snapshots older than the retention window except the newest of them (the base
    /// for restoring to the window's start), chunks no kept snapshot needs, and blobs deleted
    /// locally before the window.
    async fn compact(&mut self) -> Result<()> {
        let window_start = self.now().saturating_sub(millis(self.config.retention));
        let Some(keep_from) = self.snapshots.iter().rposition(|s| s.completed_at_ms <= window_start) else {
            return self.drop_deleted_blobs(window_start).await;
        };
        if keep_from == 0 {
            return self.drop_deleted_blobs(window_start).await;
        }
        let old: Vec<SnapshotManifest> = self.snapshots.drain(..keep_from).collect();
        let base = self.snapshots.first().cloned().unwrap_or_default();
        for chunk in self.target.list(format::SEGMENTS).await? {
            if let Some((file, _, end)) = format::parse_chunk_key(&chunk.0)
                && !base.needs(&file, end)
            {
                self.target.delete(&chunk.0).await?;
            }
        }
        let local: std::collections::HashSet<String> =
            self.runtime.segment_files()?.into_iter().map(|f| f.file_name).collect();
        self.state.segments.retain(|file, _| local.contains(file) || base.start_segments.contains_key(file));
        for s in old {
            // The manifest first: a snapshot without one is ignored by restores.
            let dir = format::snapshot_dir(s.id);
            self.target.delete(&format!("{dir}/manifest.json")).await?;
            for f in &s.files {
                self.target.delete(&format!("{dir}/files/{}", f.path)).await?;
            }
        }
        self.drop_deleted_blobs(window_start).await
    }

    async fn drop_deleted_blobs(&mut self, window_start: i64) -> Result<()> {
        let expired: Vec<String> =
            self.state.deleted_blobs.iter().filter(|(_, t)| **t < window_start).map(|(p, _)| p.clone()).collect();
        for path in expired {
            self.target.delete(&format!("{}/{path}", format::BLOBS)).await?;
            self.state.deleted_blobs.remove(&path);
            self.blobs.remove(&path);
        }
        Ok(())
    }
}

/// Finished snapshots at a target, oldest first.
pub(crate) async fn list_snapshots(target: &Target) -> Result<Vec<SnapshotManifest>> {
    let mut out = Vec::new();
    for (key, _, _) in target.list(format::SNAPSHOTS).await? {
        if !key.ends_with("/manifest.json") {
            continue;
        }
        let Some(bytes) = target.get(&key).await? else { continue };
        let manifest: SnapshotManifest = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Corrupt(format!("{key} is not a snapshot manifest: {e}")))?;
        out.push(manifest);
    }
    out.sort_by_key(|m| m.id);
    Ok(out)
}

async fn read_at(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt as _;
        let file = std::fs::File::open(&path)?;
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        let mut done = 0;
        while done < buf.len() {
            let n = file.read_at(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        buf.truncate(done);
        Ok(buf)
    })
    .await
    .map_err(|e| Error::Io { context: "read a log segment".to_owned(), source: std::io::Error::other(e) })?
    .map_err(Error::io("read a log segment"))
}

fn record_timestamps(bytes: &[u8]) -> Vec<i64> {
    cairn_runtime::record_timestamps(bytes)
}

/// Files under `dirs` (relative to `data_dir`), by `/`-separated relative path, with size and
/// modification time (ms).
fn scan_files(data_dir: &Path, dirs: &[String]) -> Result<HashMap<String, (u64, i64)>> {
    let mut out = HashMap::new();
    let mut stack: Vec<PathBuf> = dirs.iter().map(|d| data_dir.join(d)).collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let entry = entry.map_err(Error::io(format!("list {}", dir.display())))?;
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                let path = entry.path();
                let Ok(rel) = path.strip_prefix(data_dir) else { continue };
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                out.insert(rel.to_string_lossy().replace('\\', "/"), (meta.len(), modified));
            }
        }
    }
    Ok(out)
}
