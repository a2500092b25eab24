//! Events, durability modes, eviction, alarms index and shutdown.

use std::sync::Arc;

use cairn_runtime::{Durability, Error, Runtime};
use cairn_storage::{ListOptions, ManualClock, Value};

fn runtime(dir: &std::path::Path) -> Runtime {
    Runtime::builder(dir).shards(2).open().expect("open runtime")
}

#[test]
fn an_event_commits_its_writes_and_returns_its_value() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let obj = rt.object("counters", "a")?;
    let v = obj.run_blocking(|s| {
        s.put("x", &1)?;
        s.exec("CREATE TABLE t(v INTEGER)", &[])?;
        s.exec("INSERT INTO t VALUES (?)", &[7.into()])?;
        Ok::<_, Error>(42)
    })?;
    assert_eq!(v, 42);
    let (x, n) = obj.run_blocking(|s| {
        let x: Option<i64> = s.get("x")?;
        let n = s.exec("SELECT v FROM t", &[])?.one()?.get("v").and_then(|v| v.as_i64());
        Ok::<_, Error>((x, n))
    })?;
    assert_eq!((x, n), (Some(1), Some(7)));
    Ok(())
}

#[test]
fn an_event_that_fails_rolls_back_every_write() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let obj = rt.object("ns", "o")?;
    let r: Result<(), Error> = obj.run_blocking(|s| {
        s.put("a", &1)?;
        s.set_alarm(i64::MAX / 2)?;
        s.put("b", &"x".repeat(200 * 1024))?;
        Ok(())
    });
    assert_eq!(r.expect_err("value too large").code(), "storage.value_too_large");
    let (a, alarm) = obj.run_blocking(|s| Ok::<_, Error>((s.get::<i64>("a")?, s.get_alarm()?)))?;
    assert_eq!((a, alarm), (None, None));
    Ok(())
}

#[test]
fn a_panicking_event_is_rolled_back_and_the_shard_survives() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let obj = rt.object("ns", "o")?;
    let r: Result<(), Error> = obj.run_blocking(|s| {
        s.put("a", &1)?;
        panic!("boom");
    });
    assert_eq!(r.expect_err("panicked").code(), "runtime.event_panicked");
    assert_eq!(obj.run_blocking(|s| Ok::<_, Error>(s.get::<i64>("a")?))?, None);
    Ok(())
}

#[test]
fn events_on_one_object_run_one_at_a_time() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let obj = rt.object("ns", "counter")?;
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let obj = obj.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    obj.run_blocking(|s| Ok::<_, Error>(s.update("n", 0i64, |n| n + 1)?)).expect("increment");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    assert_eq!(obj.run_blocking(|s| Ok::<_, Error>(s.get::<i64>("n")?))?, Some(400));
    Ok(())
}

#[test]
fn concurrent_durable_writes_share_sync_rounds() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = Runtime::builder(dir.path()).shards(2).durability(Durability::Fsync).open()?;
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let obj = rt.object("ns", &format!("o{i}")).expect("object");
            std::thread::spawn(move || {
                for j in 0..20 {
                    obj.run_blocking(move |s| Ok::<_, Error>(s.put(&format!("k{j}"), &j)?)).expect("put");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    let stats = rt.stats();
    assert_eq!(stats.commits, 16 * 20);
    assert!(stats.sync_rounds >= 1 && stats.sync_rounds <= stats.commits, "{stats:?}");
    assert!(stats.fdatasync_calls + stats.syncfs_calls >= 1, "{stats:?}");
    Ok(())
}

#[test]
fn os_durability_commits_without_fsync() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = Runtime::builder(dir.path()).shards(1).durability(Durability::Os).open()?;
    let obj = rt.object("ns", "o")?;
    for i in 0..10 {
        obj.run_blocking(move |s| Ok::<_, Error>(s.put("k", &i)?))?;
    }
    let stats = rt.stats();
    assert_eq!(stats.commits, 10);
    assert_eq!(stats.fdatasync_calls + stats.syncfs_calls, 0);
    Ok(())
}

#[test]
fn idle_objects_are_evicted_and_reopen_transparently() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = Runtime::builder(dir.path()).shards(1).max_open_objects(3).open()?;
    for i in 0..20 {
        rt.object("ns", &format!("o{i}"))?.run_blocking(move |s| Ok::<_, Error>(s.put("v", &i)?))?;
    }
    // The shard evicts after releasing a batch's results; one more event on it (the only
    // shard) runs after that eviction.
    rt.object("ns", "o19")?.run_blocking(|_| Ok::<_, Error>(()))?;
    let stats = rt.stats();
    assert!(stats.open_objects <= 3, "{stats:?}");
    assert!(stats.evictions >= 17, "{stats:?}");
    for i in 0..20 {
        let v = rt.object("ns", &format!("o{i}"))?.run_blocking(|s| Ok::<_, Error>(s.get::<i64>("v")?))?;
        assert_eq!(v, Some(i));
    }
    assert_eq!(rt.object_count("ns")?, 20);
    Ok(())
}

#[test]
fn objects_that_were_never_written_leave_no_file() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = Runtime::builder(dir.path()).shards(1).max_open_objects(1).open()?;
    let ghost = rt.object("ns", "ghost")?;
    assert_eq!(ghost.get_value("nothing").await_blocking()?, None);
    rt.object("ns", "real")?.run_blocking(|s| Ok::<_, Error>(s.put("k", &1)?))?;
    rt.close();
    let path = cairn_storage::layout::object_path(dir.path(), "ns", "ghost");
    assert!(!path.exists(), "{path:?} should not exist");
    assert!(cairn_storage::layout::object_path(dir.path(), "ns", "real").exists());
    Ok(())
}

/// Drives a future to completion on a small current-thread executor.
trait AwaitBlocking: std::future::Future + Sized {
    fn await_blocking(self) -> Self::Output {
        tokio::runtime::Builder::new_current_thread().build().expect("tokio runtime").block_on(self)
    }
}
impl<F: std::future::Future> AwaitBlocking for F {}

#[test]
fn data_survives_a_clean_restart() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let rt = runtime(dir.path());
        let obj = rt.object("ns", "o")?;
        obj.put_many(vec![
            ("a".into(), Value::from(vec![1u8, 2])),
            ("b".into(), Value::Json(serde_json::json!({"x": 1}))),
        ])
        .await_blocking()?;
        obj.set_alarm(4_000_000_000_000).await_blocking()?;
        rt.close();
    }
    let rt = runtime(dir.path());
    let obj = rt.object("ns", "o")?;
    let all = obj.list(ListOptions::new()).await_blocking()?;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].1, Value::Bytes(vec![1, 2]));
    assert_eq!(obj.get_alarm().await_blocking()?, Some(4_000_000_000_000));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_api_runs_each_call_as_an_event() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let obj = rt.object("ns", "async")?;
    obj.put("greeting", "hello").await?;
    assert_eq!(obj.get::<String>("greeting").await?, Some("hello".to_owned()));
    assert!(obj.delete("greeting").await?);
    let c = obj.exec("SELECT 1 AS one", vec![]).await?;
    assert_eq!(c.column_names(), ["one"]);
    let b1 = obj.current_bookmark().await?;
    obj.put_bytes("k", vec![1]).await?;
    let b2 = obj.current_bookmark().await?;
    assert!(b1.to_string() < b2.to_string());
    obj.sync().await?;
    Ok(())
}

#[test]
fn alarms_are_indexed_so_due_ones_are_found_without_opening_objects() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000_000);
    let rt = Runtime::builder(dir.path()).shards(2).clock(Arc::new(clock.clone())).open()?;
    rt.object("ns", "early")?.run_blocking(|s| Ok::<_, Error>(s.set_alarm(1_000_500)?))?;
    rt.object("ns", "late")?.run_blocking(|s| Ok::<_, Error>(s.set_alarm(2_000_000)?))?;
    rt.object("ns", "gone")?.run_blocking(|s| Ok::<_, Error>(s.set_alarm(1_000_100)?))?;
    rt.object("ns", "gone")?.run_blocking(|s| Ok::<_, Error>(s.delete_alarm()?))?;
    // Moving an alarm later updates the index too.
    rt.object("ns", "moved")?.run_blocking(|s| Ok::<_, Error>(s.set_alarm(1_000_200)?))?;
    rt.object("ns", "moved")?.run_blocking(|s| Ok::<_, Error>(s.set_alarm(3_000_000)?))?;
    let due = rt.due_alarms(1_000_600, 10)?;
    let names: Vec<&str> = due.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(names, ["early"]);
    assert_eq!(rt.due_alarms(5_000_000, 10)?.len(), 3);
    rt.close();
    // The index is durable: a new runtime finds the same alarms.
    let rt = Runtime::builder(dir.path()).shards(3).open()?;
    assert_eq!(rt.due_alarms(5_000_000, 10)?.len(), 3);
    Ok(())
}

#[test]
fn invalid_names_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    assert_eq!(rt.object("", "x").expect_err("empty ns").code(), "storage.invalid_name");
    assert_eq!(rt.object("a/b", "x").expect_err("slash").code(), "storage.invalid_name");
    assert_eq!(rt.object("ns", "").expect_err("empty name").code(), "storage.invalid_name");
    assert!(rt.object("ns", "../../etc/passwd").is_ok());
}

#[test]
fn close_finishes_queued_events_and_then_refuses_new_ones() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = Runtime::builder(dir.path()).shards(1).open()?;
    let obj = rt.object("ns", "o")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let obj = obj.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let r = obj.run_blocking(move |s| Ok::<_, Error>(s.put(&format!("{t}-{i}"), &i)?));
                    tx.send(r.is_ok()).expect("send");
                }
            })
        })
        .collect();
    drop(tx);
    // Wait for some writes to be acknowledged, then close while the rest are in flight.
    let mut acked = 0;
    while acked < 10 {
        if rx.recv().expect("result") {
            acked += 1;
        }
    }
    rt.close();
    for w in writers {
        w.join().expect("writer");
    }
    acked += rx.iter().filter(|ok| *ok).count();
    let err = obj.run_blocking(|s| Ok::<_, Error>(s.put("late", &1)?)).expect_err("closed");
    assert_eq!(err.code(), "runtime.shutting_down");
    let rt = Runtime::builder(dir.path()).shards(1).open()?;
    let n = rt.object("ns", "o")?.run_blocking(|s| Ok::<_, Error>(s.list(&ListOptions::new())?.len()))?;
    assert_eq!(n, acked, "every acknowledged write is present, and only those");
    Ok(())
}

#[test]
fn limits_can_be_set_per_namespace() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let small = cairn_storage::Limits { max_value_bytes: 16, ..cairn_storage::Limits::default() };
    let rt = Runtime::builder(dir.path()).shards(1).namespace_limits("tiny", small).open()?;
    let big = "x".repeat(100);
    let err = rt
        .object("tiny", "o")?
        .run_blocking({
            let big = big.clone();
            move |s| Ok::<_, Error>(s.put("k", &big)?)
        })
        .expect_err("over the namespace's limit");
    assert_eq!(err.code(), "storage.value_too_large");
    rt.object("other", "o")?.run_blocking(move |s| Ok::<_, Error>(s.put("k", &big)?))?;
    Ok(())
}
