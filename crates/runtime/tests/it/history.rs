//! Point-in-time history: bookmarks for times, restores (now, undone, at the next start),
//! forks, the retention window and compaction, history kept across restarts, and objects whose
//! data predates history. States are compared against a model replayed to the same commit.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use cairn_runtime::{Error, HistoryConfig, ObjectRef, Runtime};
use cairn_storage::{Bookmark, ListOptions, ManualClock};

const START_MS: i64 = 1_800_000_000_000;
const DAY_MS: i64 = 86_400_000;

/// What one object holds: its KV entries and the rows of its SQL table `t`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct State {
    kv: BTreeMap<String, i64>,
    rows: BTreeMap<i64, String>,
}

/// A small deterministic generator (no dependency, same sequence on every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound.max(1)
    }
}

fn runtime(dir: &Path, clock: &Arc<ManualClock>, history: HistoryConfig) -> Runtime {
    Runtime::builder(dir)
        .shards(2)
        .clock(Arc::clone(clock) as Arc<dyn cairn_storage::Clock>)
        .max_open_objects(2)
        .log_segment_bytes(16 * 1024)
        .history(history)
        .open()
        .expect("open runtime")
}

async fn state(obj: &ObjectRef) -> State {
    obj.run(|s| {
        let kv = s
            .list(&ListOptions::new())?
            .into_iter()
            .map(|(k, v)| v.to_serde::<i64>(&k).map(|n| (k, n)))
            .collect::<Result<_, _>>()?;
        let has_t = s.exec("SELECT name FROM sqlite_schema WHERE name = 't'", &[])?.to_vec().len() == 1;
        let mut rows = BTreeMap::new();
        if has_t {
            for r in s.exec("SELECT id, v FROM t", &[])?.to_vec() {
                let id = r.get("id").and_then(|v| v.as_i64()).unwrap_or(-1);
                let v = r.get("v").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                rows.insert(id, v);
            }
        }
        Ok::<_, Error>(State { kv, rows })
    })
    .await
    .expect("read state")
}

/// Applies one random change to the object and the model.
async fn random_change(obj: &ObjectRef, model: &mut State, rng: &mut Lcg, i: u64) {
    let key = format!("k{:02}", rng.next(12));
    let id = i64::try_from(rng.next(8)).unwrap_or(0);
    match rng.next(5) {
        0 | 1 => {
            let v = i64::try_from(i).unwrap_or(0);
            obj.put(key.clone(), &v).await.expect("put");
            model.kv.insert(key, v);
        }
        2 => {
            obj.delete(key.clone()).await.expect("delete");
            model.kv.remove(&key);
        }
        3 => {
            let text = format!("row {i} {}", "x".repeat(usize::try_from(rng.next(300)).unwrap_or(0)));
            let t = text.clone();
            obj.run(move |s| {
                s.exec("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)", &[])?;
                s.exec("INSERT OR REPLACE INTO t VALUES (?, ?)", &[id.into(), t.into()])?;
                Ok::<_, Error>(())
            })
            .await
            .expect("insert");
            model.rows.insert(id, text);
        }
        _ => {
            // Several keys in one event.
            let v = i64::try_from(i).unwrap_or(0);
            let keys: Vec<String> = (0..3).map(|j| format!("m{j}{}", rng.next(4))).collect();
            let ks = keys.clone();
            obj.run(move |s| {
                for k in &ks {
                    s.put(k, &v)?;
                }
                Ok::<_, Error>(())
            })
            .await
            .expect("batch");
            for k in keys {
                model.kv.insert(k, v);
            }
        }
    }
}

/// Writes `n` random changes, recording (bookmark, commit time, model) after each.
async fn build_history(
    obj: &ObjectRef,
    others: &[ObjectRef],
    clock: &ManualClock,
    rng: &mut Lcg,
    n: u64,
) -> Vec<(Bookmark, State)> {
    let mut model = State::default();
    let mut points = Vec::new();
    for i in 0..n {
        clock.advance(i64::try_from(rng.next(5_000)).unwrap_or(0) + 1);
        random_change(obj, &mut model, rng, i).await;
        points.push((obj.current_bookmark().await.expect("bookmark"), model.clone()));
        // Other objects share the shards and log segments, and push this one out of the cache.
        let other = &others[usize::try_from(rng.next(others.len() as u64)).unwrap_or(0)];
        other.put(format!("o{i}"), &i).await.expect("other write");
    }
    points
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_to_random_bookmarks_match_a_model_replayed_to_the_same_point() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_MS));
    let rt = runtime(dir.path(), &clock, HistoryConfig::default());
    let obj = rt.object("rooms", "a")?;
    let others: Vec<ObjectRef> = (0..4).map(|i| rt.object("rooms", &format!("other{i}"))).collect::<Result<_, _>>()?;
    let mut rng = Lcg(7);
    let points = build_history(&obj, &others, &clock, &mut rng, 150).await;
    assert!(rt.history_bytes() > 0, "small segments were sealed into history");

    // Bookmarks for times: the newest commit at or before each time.
    for _ in 0..40 {
        let i = usize::try_from(rng.next(points.len() as u64)).unwrap_or(0);
        let (b, _) = &points[i];
        let t = i64::try_from(b.timestamp_ms).unwrap_or(0);
        let found = obj.bookmark_for_time(t).await?;
        assert_eq!(found, *b, "bookmark for the exact commit time of point {i}");
        if i + 1 < points.len() {
            let next = i64::try_from(points[i + 1].0.timestamp_ms).unwrap_or(0);
            if next > t + 1 {
                let between = obj.bookmark_for_time(next - 1).await?;
                assert_eq!(between.seq, b.seq, "a time between two commits");
                assert_eq!(between.timestamp_ms, u64::try_from(next - 1).unwrap_or(0), "named by the time asked for");
            }
        }
    }
    // Before the first commit: the empty object.
    let first = i64::try_from(points[0].0.timestamp_ms).unwrap_or(0);
    let empty = obj.bookmark_for_time(first - 1).await?;
    assert_eq!(empty.seq, 0);

    // Restores to random bookmarks, each compared with the model; each undo bookmark is the
    // state it replaced.
    let mut current = points.last().map(|(_, m)| m.clone()).unwrap_or_default();
    for round in 0..25 {
        let i = usize::try_from(rng.next(points.len() as u64)).unwrap_or(0);
        let (b, want) = &points[i];
        let undo = obj.restore(*b).await?;
        assert_eq!(&state(&obj).await, want, "restore {round} to point {i} ({b})");
        if round % 5 == 0 {
            obj.restore(undo).await?;
            assert_eq!(state(&obj).await, current, "undoing restore {round}");
            obj.restore(*b).await?;
        }
        current = want.clone();
        // Writes after a restore build on the restored state.
        if round % 3 == 0 {
            obj.put("after", &round).await?;
            current.kv.insert("after".to_owned(), i64::from(round));
            assert_eq!(state(&obj).await, current);
        }
    }
    // Newer history survives restores: the last original bookmark is still reachable.
    let (last_b, last_state) = points.last().cloned().expect("points");
    obj.restore(last_b).await?;
    assert_eq!(state(&obj).await, last_state);
    // Before the first commit.
    obj.restore(empty).await?;
    assert_eq!(state(&obj).await, State::default());
    rt.close();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_survives_restarts_and_crash_recovery() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_MS));
    let mut rng = Lcg(11);
    let (obj_points, more) = {
        let rt = runtime(dir.path(), &clock, HistoryConfig::default());
        let obj = rt.object("ns", "obj")?;
        let others: Vec<ObjectRef> = (0..3).map(|i| rt.object("ns", &format!("x{i}"))).collect::<Result<_, _>>()?;
        let points = build_history(&obj, &others, &clock, &mut rng, 60).await;
        rt.close();
        // A second life of the node: its log segments of the first were replayed and kept.
        let rt = runtime(dir.path(), &clock, HistoryConfig::default());
        let obj = rt.object("ns", "obj")?;
        let others: Vec<ObjectRef> = (0..3).map(|i| rt.object("ns", &format!("x{i}"))).collect::<Result<_, _>>()?;
        let mut more = build_history(&obj, &others, &clock, &mut rng, 30).await;
        // build_history starts its model empty: rebase the second life's models.
        let base = points.last().map(|(_, m)| m.clone()).unwrap_or_default();
        for (_, m) in &mut more {
            let mut full = base.clone();
            full.kv.extend(m.kv.iter().map(|(k, v)| (k.clone(), *v)));
            full.rows.extend(m.rows.iter().map(|(k, v)| (*k, v.clone())));
            *m = full;
        }
        // Dropping the runtime without close still shuts down cleanly; the open segments are
        // replayed at the next start.
        drop(rt);
        (points, more)
    };
    let _ = more; // the second life's deletes are relative to the first: compared below by restore only
    let rt = runtime(dir.path(), &clock, HistoryConfig::default());
    let obj = rt.object("ns", "obj")?;
    for i in [0, 7, 21, 40, 59] {
        let (b, want) = &obj_points[i];
        obj.restore(*b).await?;
        assert_eq!(&state(&obj).await, want, "after two restarts, point {i}");
    }
    rt.close();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_copies_the_source_at_a_bookmark_and_leaves_it_untouched() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_MS));
    let rt = runtime(dir.path(), &clock, HistoryConfig::default());
    let src = rt.object("docs", "src")?;
    let others: Vec<ObjectRef> = vec![rt.object("docs", "noise")?];
    let mut rng = Lcg(3);
    let points = build_history(&src, &others, &clock, &mut rng, 40).await;
    let before = state(&src).await;

    let (b, want) = &points[17];
    let fork = rt.object("docs", "fork")?;
    let first = rt.fork(&src, Some(*b), &fork).await?;
    assert_eq!(first.seq, 1, "a fork starts its own history");
    assert_eq!(&state(&fork).await, want);
    assert_eq!(state(&src).await, before, "the source is untouched");

    // The fork lives on its own; its own history works.
    fork.put("only-in-fork", &1).await?;
    assert_eq!(src.get::<i64>("only-in-fork").await?, None);
    let undo = fork.restore(first).await?;
    assert_eq!(&state(&fork).await, want);
    fork.restore(undo).await?;
    assert_eq!(fork.get::<i64>("only-in-fork").await?, Some(1));

    // A fork of the current state, in another namespace; a fork onto a written object fails.
    let now_fork = rt.object("copies", "now")?;
    rt.fork(&src, None, &now_fork).await?;
    assert_eq!(state(&now_fork).await, before);
    let err = rt.fork(&src, None, &fork).await.expect_err("target exists");
    assert_eq!(err.code(), "runtime.object_exists");
    // The fork survives a restart (its creation went through the log like any commit).
    rt.close();
    let rt = runtime(dir.path(), &clock, HistoryConfig::default());
    assert_eq!(&state(&rt.object("docs", "fork")?).await.rows, &want.rows);
    rt.close();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_on_next_start_applies_when_the_object_starts_again() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_MS));
    let rt = runtime(dir.path(), &clock, HistoryConfig::default());
    let obj = rt.object("ns", "o")?;
    obj.put("v", &1).await?;
    clock.advance(10);
    let one = obj.current_bookmark().await?;
    obj.put("v", &2).await?;
    clock.advance(10);
    let undo = obj.restore_on_next_start(one).await?;
    assert_eq!(undo, obj.current_bookmark().await?, "the undo bookmark is the state now");
    assert_eq!(obj.get::<i64>("v").await?, Some(2), "nothing changes before the next start");
    obj.abort().await?;
    assert_eq!(obj.get::<i64>("v").await?, Some(1), "restored at the next start");
    obj.abort().await?;
    assert_eq!(obj.get::<i64>("v").await?, Some(1), "applied once");
    // The undo bookmark brings the newer state back; a pending restore survives a restart.
    obj.restore_on_next_start(undo).await?;
    rt.close();
    let rt = runtime(dir.path(), &clock, HistoryConfig::default());
    assert_eq!(rt.object("ns", "o")?.get::<i64>("v").await?, Some(2));
    rt.close();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_are_refused_outside_the_window_and_compaction_keeps_the_boundary() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_MS));
    let mut history =
        HistoryConfig { retention: std::time::Duration::from_secs(2 * 86_400), ..HistoryConfig::default() };
    history.namespace_retention.insert("short".to_owned(), std::time::Duration::from_secs(86_400));
    let rt = runtime(dir.path(), &clock, history);
    let obj = rt.object("ns", "o")?;
    let short = rt.object("short", "o")?;
    // Day 0: many versions (sealing segments); day 1 and 2: one version each.
    for i in 0..600i64 {
        clock.advance(100);
        obj.put(format!("k{}", i % 10), &i).await?;
        short.put("v", &i).await?;
    }
    let day0 = obj.current_bookmark().await?;
    let day0_state = state(&obj).await;
    clock.advance(DAY_MS);
    obj.put("day", &1).await?;
    let day1 = obj.current_bookmark().await?;
    let day1_state = state(&obj).await;
    clock.advance(DAY_MS + 1000);
    obj.put("day", &2).await?;

    // The window is 2 days: day 0's commits are now older than it.
    let err = obj.bookmark_for_time(START_MS).await.expect_err("older than the window");
    assert_eq!(err.code(), "runtime.invalid_bookmark");
    assert!(err.to_string().contains("retention window of 2 days"), "{err}");
    assert_eq!(obj.restore(day0).await.expect_err("outside").code(), "runtime.invalid_bookmark");
    // A namespace with its own shorter window.
    let short_t = i64::try_from(day1.timestamp_ms).unwrap_or(0) - 1000;
    assert_eq!(short.bookmark_for_time(short_t).await.expect_err("1 day").code(), "runtime.invalid_bookmark");
    // A bookmark ahead of the object is refused too.
    let ahead = Bookmark { seq: 10_000, timestamp_ms: day1.timestamp_ms };
    assert_eq!(obj.restore(ahead).await.expect_err("ahead").code(), "runtime.invalid_bookmark");

    let bytes_before = rt.history_bytes();
    let removed = rt.compact_history()?;

    assert!(removed > 0, "segments older than the window were folded away");
    assert!(
        rt.history_bytes() < bytes_before,
        "compaction shrinks history: {} -> {}",
        bytes_before,
        rt.history_bytes()
    );
    // Inside the window everything still restores, the boundary included.
    let in_window = i64::try_from(day1.timestamp_ms).unwrap_or(0) - 1;
    let b = obj.bookmark_for_time(in_window).await?;
    assert_eq!(b.seq, day0.seq, "the last day-0 commit is the state at the window's edge");
    obj.restore(b).await?;
    assert_eq!(state(&obj).await, day0_state);
    obj.restore(day1).await?;
    assert_eq!(state(&obj).await, day1_state);
    rt.close();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_from_before_history_gets_a_base_and_restores_from_there() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_MS));
    let off = HistoryConfig { enabled: false, ..HistoryConfig::default() };
    let rt = runtime(dir.path(), &clock, off);
    let obj = rt.object("ns", "old")?;
    obj.put("a", &1).await?;
    let early = obj.current_bookmark().await?;
    obj.put("a", &2).await?;
    assert_eq!(obj.bookmark_for_time(START_MS).await.expect_err("off").code(), "runtime.history_disabled");
    rt.close();
    // A second start without history replays and drops the log: those commits are gone for good.
    let off = HistoryConfig { enabled: false, ..HistoryConfig::default() };
    runtime(dir.path(), &clock, off).close();

    let rt = runtime(dir.path(), &clock, HistoryConfig::default());
    let obj = rt.object("ns", "old")?;
    let base = obj.current_bookmark().await?;
    clock.advance(1000);
    obj.put("a", &3).await?;
    obj.restore(base).await?;
    assert_eq!(obj.get::<i64>("a").await?, Some(2), "restored to the base taken when history began");
    let err = obj.restore(early).await.expect_err("before history began");
    assert_eq!(err.code(), "runtime.history_unavailable");
    rt.close();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_see_each_durable_commit_and_restores() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_MS));
    let rt = runtime(dir.path(), &clock, HistoryConfig::default());
    let obj = rt.object("ns", "watched")?;
    obj.put("a", &1).await?;
    let first = obj.current_bookmark().await?;
    let mut rx = obj.subscribe().await?;
    assert_eq!(*rx.borrow_and_update(), first, "starts at the newest commit");
    let deadline = std::time::Duration::from_secs(10);
    obj.put("a", &2).await?;
    tokio::time::timeout(deadline, rx.changed()).await.expect("notified").expect("sender alive");
    assert_eq!(rx.borrow_and_update().seq, first.seq + 1);
    // Reads do not notify; a restore does (it is a commit).
    let _ = obj.get::<i64>("a").await?;
    assert!(!rx.has_changed().expect("sender alive"));
    obj.restore(first).await?;
    tokio::time::timeout(deadline, rx.changed()).await.expect("notified").expect("sender alive");
    assert_eq!(rx.borrow_and_update().seq, first.seq + 2);
    // Another object's commits do not wake this subscriber; a second subscriber shares the
    // same stream.
    rt.object("ns", "other")?.put("x", &1).await?;
    let mut rx2 = obj.subscribe().await?;
    assert!(!rx.has_changed().expect("sender alive"));
    obj.put("a", &3).await?;
    tokio::time::timeout(deadline, rx2.changed()).await.expect("notified").expect("sender alive");
    tokio::time::timeout(deadline, rx.changed()).await.expect("notified").expect("sender alive");
    assert_eq!(rx.borrow().seq, rx2.borrow().seq);
    rt.close();
    Ok(())
}
