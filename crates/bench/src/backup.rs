//! `cairn bench backup`: what continuous backup and point-in-time history cost.
//!
//! Four figures, each against an anchor measured in the same run:
//! 1. **Write throughput with backup on**, against the same load with backup off: `objects`
//!    clients, each writing one durable put per event to its own object for `seconds`.
//! 2. **Backup lag** p50/p99 during that load with backup on: for every record shipped, the
//!    time from its commit to the end of the upload that carried it (what the shipper records
//!    in `TargetStatus::recent_lags_ms`), against the configured pass interval.
//! 3. **Restore speed** in MB/s (`cairn_backup::restore` from the backup just made, checksums,
//!    fsync of every file and the replay included), against a plain copy of the same files
//!    (read, write, fsync each).
//! 4. **History overhead** after a day-like workload (the same keys updated every hour for 24
//!    hours of an injected clock), against the same workload with history off: the bytes on
//!    disk of each data directory, and the bytes the application wrote.
//!
//! The target is a local directory, so the figures are Cairn's own cost and not a network's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_backup::{Backup, BackupConfig, LagHistogram, Target, TargetConfig, TargetStatus};
use cairn_runtime::{Durability, Error as RtError, HistoryConfig, Runtime};

use crate::{Figure, load::runtime, per_sec, rt_err};

/// Options of the backup benchmark.
#[derive(Clone, Debug)]
pub struct BackupBenchOptions {
    /// Where to put the files (the file system under test).
    pub dir: PathBuf,
    /// Where the backup targets go; default a directory inside `dir` (the same disk as the
    /// data, the worst case: the backup's writes compete with the commit log's).
    pub target_dir: Option<PathBuf>,
    /// Concurrent writers (one object each) in the throughput runs.
    pub objects: usize,
    /// Length of each throughput run.
    pub seconds: u64,
    /// Throughput runs of each kind (off and on alternate); the best of each is reported.
    pub reps: usize,
    /// The backup's pass interval.
    pub interval: Duration,
    /// Bytes of each value written.
    pub value_bytes: usize,
    /// Day-like workload: objects, keys per object, and updates of each key per hour.
    pub day_objects: usize,
    /// Keys per object in the day-like workload.
    pub day_keys: usize,
    /// Updates of each key per simulated hour.
    pub day_updates_per_hour: usize,
}

impl Default for BackupBenchOptions {
    fn default() -> Self {
        BackupBenchOptions {
            dir: PathBuf::from("./cairn-bench"),
            target_dir: None,
            objects: 64,
            seconds: 10,
            reps: 2,
            interval: Duration::from_secs(1),
            value_bytes: 200,
            day_objects: 100,
            day_keys: 100,
            day_updates_per_hour: 2,
        }
    }
}

/// Keys each throughput writer cycles through (updates of the same keys, as applications do).
const KEYS_PER_WRITER: usize = 100;
/// Most writes of one writer in one throughput run (a bound on the loop besides its time).
const MAX_WRITES_PER_WRITER: usize = 10_000_000;
/// How long the backup may take to catch up after a run, or to take its first snapshot.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(300);

fn value(i: usize, round: usize, bytes: usize) -> Vec<u8> {
    let mut v = format!("{round:010}:{i:010}:").into_bytes();
    // Bytes that change with the round, as real updates do (not one repeated byte).
    let mut x = (round as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64;
    while v.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(b'a' + (x % 26) as u8);
    }
    v.truncate(bytes);
    v
}

fn runtime_at(dir: &Path, history: bool) -> anyhow::Result<Runtime> {
    Runtime::builder(dir)
        .shards(2)
        .durability(Durability::Fsync)
        .history(HistoryConfig { enabled: history, ..HistoryConfig::default() })
        .open()
        .map_err(rt_err)
}

/// Every file's length under `dir`, summed (the bytes the data takes, before block rounding).
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Bytes under each top-level entry of `dir` (`log`, `history`, `objects`, ...).
fn dir_breakdown(dir: &Path) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let bytes = if p.is_dir() { dir_bytes(&p) } else { e.metadata().map_or(0, |m| m.len()) };
            out.insert(e.file_name().to_string_lossy().into_owned(), bytes.into());
        }
    }
    out
}

/// One throughput run: the writes per second, and the backup's status if it was on.
struct LoadRun {
    writes_per_sec: f64,
    status: Option<TargetStatus>,
    /// The lag of every record shipped during the run and until the backup caught up.
    lags: LagHistogram,
    target: Option<PathBuf>,
}

fn throughput_run(
    opts: &BackupBenchOptions,
    root: &Path,
    targets: &Path,
    name: &str,
    backup_on: bool,
) -> anyhow::Result<LoadRun> {
    let data = root.join(format!("{name}-data"));
    let target_dir = targets.join(format!("{name}-target"));
    let tokio = runtime()?;
    let rt = runtime_at(&data, true)?;
    // Every object exists with its keys before the clock starts, so the first snapshot holds
    // data and no run measures object creation.
    tokio.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for o in 0..opts.objects {
            let obj = rt.object("bench", &format!("writer-{o}")).map_err(rt_err)?;
            let bytes = opts.value_bytes;
            tasks.spawn(async move {
                obj.run(move |st| {
                    for k in 0..KEYS_PER_WRITER {
                        st.put_bytes(&format!("key:{k:04}"), &value(k, 0, bytes))?;
                    }
                    Ok::<_, RtError>(())
                })
                .await
                .map_err(rt_err)
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.context("prefill task")??;
        }
        anyhow::Ok(())
    })?;
    let backup = if backup_on {
        let config = BackupConfig {
            targets: vec![TargetConfig::from_url(target_dir.display().to_string())],
            interval: opts.interval,
            ..BackupConfig::default()
        };
        let backup = Arc::new(tokio.block_on(async { Backup::start(rt.clone(), config) }).context("start the backup")?);
        // The first pass takes the first snapshot; the run measures the steady state after it.
        let now = rt.config().clock.now_ms();
        tokio
            .block_on(async { tokio::time::timeout(CATCH_UP_TIMEOUT, backup.caught_up(now)).await })
            .context("the backup's first pass did not finish")?;
        Some(backup)
    } else {
        None
    };

    let run_for = Duration::from_secs(opts.seconds);
    // Lags from the first snapshot's pass are not the steady state's.
    let lags_before = backup.as_ref().and_then(|b| b.status().into_iter().next()).map(|s| s.lag_histogram);
    let writes = tokio.block_on(async {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for o in 0..opts.objects {
            let obj = rt.object("bench", &format!("writer-{o}")).map_err(rt_err)?;
            let bytes = opts.value_bytes;
            tasks.spawn(async move {
                let mut n = 0usize;
                while started.elapsed() < run_for && n < MAX_WRITES_PER_WRITER {
                    let (k, v) = (n % KEYS_PER_WRITER, value(n % KEYS_PER_WRITER, n + 1, bytes));
                    obj.run(move |st| Ok::<_, RtError>(st.put_bytes(&format!("key:{k:04}"), &v)?))
                        .await
                        .map_err(rt_err)?;
                    n += 1;
                }
                anyhow::Ok(n)
            });
        }
        let mut total = 0usize;
        while let Some(r) = tasks.join_next().await {
            total += r.context("writer task")??;
        }
        anyhow::Ok((total, started.elapsed()))
    })?;
    let writes_per_sec = per_sec(writes.0, writes.1);

    let status = match backup {
        Some(backup) => {
            let now = rt.config().clock.now_ms();
            tokio
                .block_on(async { tokio::time::timeout(CATCH_UP_TIMEOUT, backup.caught_up(now)).await })
                .context("the backup did not catch up after the run")?;
            let status = backup.status().into_iter().next();
            tokio.block_on(backup.shutdown());
            status
        }
        None => None,
    };
    rt.close();
    let lags = match (&status, lags_before) {
        (Some(s), Some(before)) => s.lag_histogram.since(&before),
        _ => LagHistogram::default(),
    };
    Ok(LoadRun { writes_per_sec, status, lags, target: backup_on.then_some(target_dir) })
}

/// Copies every file under `from` to `to`, syncing each: the anchor of the restore figure.
fn plain_copy(from: &Path, to: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let src = from.join(&rel);
        std::fs::create_dir_all(to.join(&rel)).context("create a copy directory")?;
        for e in std::fs::read_dir(&src).context("read a backup directory")?.flatten() {
            let rel = rel.join(e.file_name());
            if e.file_type().context("file type")?.is_dir() {
                stack.push(rel);
            } else {
                let bytes = std::fs::read(from.join(&rel)).context("read a backup file")?;
                std::fs::write(to.join(&rel), &bytes).context("write a copy")?;
                std::fs::File::open(to.join(&rel)).and_then(|f| f.sync_all()).context("sync a copy")?;
                total += bytes.len() as u64;
            }
        }
    }
    Ok(total)
}

fn mb_per_sec(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

/// Runs the day-like workload on a fresh data directory; returns its bytes on disk after a
/// clean close, the breakdown, and the bytes the application wrote (keys and values).
fn day_run(opts: &BackupBenchOptions, dir: &Path, history: bool) -> anyhow::Result<(u64, u64, Duration)> {
    let start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let clock = cairn_storage::ManualClock::new(start_ms);
    let rt = Runtime::builder(dir)
        .shards(2)
        .durability(Durability::Fsync)
        .history(HistoryConfig { enabled: history, ..HistoryConfig::default() })
        .clock(Arc::new(clock.clone()))
        .open()
        .map_err(rt_err)?;
    let tokio = runtime()?;
    let started = Instant::now();
    let mut app_bytes = 0u64;
    for hour in 0..24 {
        let written = tokio.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for o in 0..opts.day_objects {
                let obj = rt.object("day", &format!("object-{o}")).map_err(rt_err)?;
                let (keys, per_hour, bytes) = (opts.day_keys, opts.day_updates_per_hour, opts.value_bytes);
                tasks.spawn(async move {
                    let mut written = 0u64;
                    for u in 0..per_hour {
                        for k in 0..keys {
                            let key = format!("key:{k:04}");
                            let v = value(k, hour * per_hour + u + o, bytes);
                            written += (key.len() + v.len()) as u64;
                            obj.run(move |st| Ok::<_, RtError>(st.put_bytes(&key, &v)?)).await.map_err(rt_err)?;
                        }
                    }
                    anyhow::Ok(written)
                });
            }
            let mut total = 0u64;
            while let Some(r) = tasks.join_next().await {
                total += r.context("day task")??;
            }
            anyhow::Ok(total)
        })?;
        app_bytes += written;
        clock.advance(3_600_000);
    }
    let elapsed = started.elapsed();
    rt.close();
    Ok((dir_bytes(dir), app_bytes, elapsed))
}

/// Runs every backup figure, calling `report` as each one is ready.
///
/// # Errors
/// Any failure of Cairn, of the backup or of the anchor.
pub fn backup(opts: &BackupBenchOptions, mut report: impl FnMut(&Figure)) -> anyhow::Result<Vec<Figure>> {
    std::fs::create_dir_all(&opts.dir).context("create the benchmark directory")?;
    let work = tempfile::tempdir_in(&opts.dir).context("create a work directory")?;
    let root = work.path();
    let mut out = Vec::new();
    let mut emit = |f: Figure| {
        report(&f);
        out.push(f);
    };

    // 1 and 2. Throughput with backup off and on, alternating; lag from the best "on" run.
    let target_work = match &opts.target_dir {
        Some(d) => {
            std::fs::create_dir_all(d).context("create the target directory")?;
            Some(tempfile::tempdir_in(d).context("create a target work directory")?)
        }
        None => None,
    };
    let targets = target_work.as_ref().map_or(root, |t| t.path());
    let (mut off, mut on): (Vec<f64>, Vec<LoadRun>) = (Vec::new(), Vec::new());
    for rep in 0..opts.reps.max(1) {
        off.push(throughput_run(opts, root, targets, &format!("off-{rep}"), false)?.writes_per_sec);
        on.push(throughput_run(opts, root, targets, &format!("on-{rep}"), true)?);
    }
    let best_off = off.iter().copied().fold(0.0, f64::max);
    let best_on_index =
        on.iter().enumerate().max_by(|a, b| a.1.writes_per_sec.total_cmp(&b.1.writes_per_sec)).map_or(0, |(i, _)| i);
    let best_on = &on[best_on_index];
    let mut f = Figure::new(
        &format!("durable_put_{}_objects_backup_on", opts.objects),
        best_on.writes_per_sec,
        "the same load with backup off",
        best_off,
        Some(0.8),
    );
    f.extra.insert("runs_off_writes_per_sec".into(), off.iter().map(|x| crate::round(*x)).collect());
    f.extra.insert("runs_on_writes_per_sec".into(), on.iter().map(|r| crate::round(r.writes_per_sec)).collect());
    f.extra.insert("seconds_per_run".into(), opts.seconds.into());
    f.extra.insert("value_bytes".into(), opts.value_bytes.into());
    emit(f);

    let status = best_on.status.clone().context("the backup reported no status")?;
    let interval_ms = opts.interval.as_millis() as f64;
    let lags = &best_on.lags;
    let (p50, p99) = (lags.percentile(50.0), lags.percentile(99.0));
    // Lower is better: the ratio is interval / lag, so above 1.0 means a record reaches the
    // target in less than one interval.
    let mut f = Figure::new("backup_lag_p99_ms", p99.unwrap_or(0) as f64, "the pass interval (ms)", interval_ms, None);
    f.ratio = p99.map_or(0.0, |p| (interval_ms / (p.max(1) as f64) * 1000.0).round() / 1000.0);
    f.extra.insert("lag_p50_ms".into(), p50.into());
    f.extra.insert("lag_p99_ms".into(), p99.into());
    f.extra.insert("lag_max_ms".into(), lags.max().into());
    f.extra.insert("records_during_the_run".into(), lags.count().into());
    f.extra.insert("records_shipped".into(), status.records_shipped.into());
    f.extra.insert("bytes_shipped".into(), status.bytes_shipped.into());
    f.extra.insert("passes".into(), status.passes.into());
    f.extra.insert("ratio_is".into(), "interval / p99 lag (higher is better)".into());
    emit(f);

    // 3. Restore from the target of that run, against a plain copy of the same files.
    let target_dir = best_on.target.clone().context("the backup's target")?;
    let restored = root.join("restored");
    let tokio = runtime()?;
    let target = Target::open(&TargetConfig::from_url(target_dir.display().to_string())).context("open the target")?;
    let t = Instant::now();
    let restore_report = tokio
        .block_on(cairn_backup::restore(&target, &restored, None, &mut |_, _, _| {}))
        .context("restore the backup")?;
    let restore_time = t.elapsed();
    let t = Instant::now();
    let copied = plain_copy(&target_dir, &root.join("plain-copy"))?;
    let copy_time = t.elapsed();
    let mut f = Figure::new(
        "restore_mb_per_sec",
        mb_per_sec(restore_report.bytes, restore_time),
        "a plain copy of the target's files (read, write, fsync each), MB/s",
        mb_per_sec(copied, copy_time),
        None,
    );
    f.extra.insert("restored_bytes".into(), restore_report.bytes.into());
    f.extra.insert("restore_ms".into(), (restore_time.as_millis() as u64).into());
    f.extra.insert("records_replayed".into(), restore_report.records.into());
    f.extra.insert("snapshot_objects".into(), restore_report.snapshot_objects.into());
    f.extra.insert("copied_bytes".into(), copied.into());
    f.extra.insert("copy_ms".into(), (copy_time.as_millis() as u64).into());
    emit(f);

    // 4. History after a day of updates to the same keys, against the same day without it.
    let (with, app_bytes, with_time) = day_run(opts, &root.join("day-history"), true)?;
    let breakdown = dir_breakdown(&root.join("day-history"));
    let (without, _, without_time) = day_run(opts, &root.join("day-no-history"), false)?;
    let updates = 24 * opts.day_objects * opts.day_keys * opts.day_updates_per_hour;
    // Lower is better: the figure is bytes on disk, the ratio with / without history.
    let mut f =
        Figure::new("history_bytes_after_a_day", with as f64, "bytes on disk without history", without as f64, None);
    f.extra.insert("updates".into(), updates.into());
    f.extra.insert("application_bytes_written".into(), app_bytes.into());
    f.extra.insert(
        "history_bytes_per_application_byte".into(),
        ((with.saturating_sub(without) as f64 / app_bytes.max(1) as f64 * 1000.0).round() / 1000.0).into(),
    );
    f.extra.insert("breakdown_with_history".into(), breakdown.into());
    f.extra.insert("day_seconds_with_history".into(), crate::round(with_time.as_secs_f64()).into());
    f.extra.insert("day_seconds_without_history".into(), crate::round(without_time.as_secs_f64()).into());
    f.extra.insert("ratio_is".into(), "bytes with history / bytes without (lower is better)".into());
    emit(f);
    Ok(out)
}
