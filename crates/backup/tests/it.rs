//! Backup to a directory, then restore: every acknowledged write before the backup's captured
//! time comes back, and a restore to a time stops each object there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::time::Duration;

use cairn_backup::{Backup, BackupConfig, Target, TargetConfig, restore};
use cairn_runtime::Runtime;
use cairn_storage::Clock as _;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn config(target: &std::path::Path) -> BackupConfig {
    BackupConfig {
        targets: vec![TargetConfig::from_url(target.display().to_string())],
        interval: Duration::from_millis(20),
        ..BackupConfig::default()
    }
}

async fn put(rt: &Runtime, object: &str, key: &str, value: i64) {
    rt.object("app", object).unwrap().put(key, &value).await.unwrap();
}

async fn get(rt: &Runtime, object: &str, key: &str) -> Option<i64> {
    rt.object("app", object).unwrap().get(key).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_directory_holds_every_backed_up_write() {
    let dir = tempfile::tempdir().unwrap();
    let (data, target, restored) = (dir.path().join("data"), dir.path().join("target"), dir.path().join("restored"));
    // Small segments, so that the backup crosses rotations into history.
    let rt = Runtime::builder(&data).shards(2).log_segment_bytes(64 * 1024).open().unwrap();
    // Data from before the backup starts: the first snapshot carries it.
    for i in 0..20 {
        put(&rt, &format!("o{i}"), "before", i).await;
    }
    let backup = Backup::start(rt.clone(), config(&target)).unwrap();
    for round in 0..30 {
        for i in 0..20 {
            put(&rt, &format!("o{i}"), &format!("k{round}"), round * 100 + i).await;
        }
    }
    let acked = now_ms();
    backup.caught_up(acked).await;
    let status = backup.status();
    assert_eq!(status.len(), 1);
    assert!(status[0].records_shipped > 0, "{status:?}");
    assert!(status[0].snapshot.is_some());
    // The node dies: no last pass, no clean close of the backup.
    drop(backup);
    rt.close();

    let target = Target::open(&TargetConfig::from_url(target.display().to_string())).unwrap();
    let mut steps = Vec::new();
    let report = restore(&target, &restored, None, &mut |step, _, _| steps.push(step.to_owned())).await.unwrap();
    assert!(report.records > 0 && report.snapshot_objects == 20, "{report:?}");
    assert!(steps.iter().any(|s| s == "replay"));
    let back = Runtime::builder(&restored).shards(3).open().unwrap();
    for i in 0..20 {
        let o = format!("o{i}");
        assert_eq!(get(&back, &o, "before").await, Some(i));
        for round in 0..30 {
            assert_eq!(get(&back, &o, &format!("k{round}")).await, Some(round * 100 + i), "{o} k{round}");
        }
    }
    // The catalog knows every object.
    assert_eq!(back.object_count("app").unwrap(), 20);
    back.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_to_a_time_stops_each_object_there() {
    let dir = tempfile::tempdir().unwrap();
    let (data, target, restored) = (dir.path().join("data"), dir.path().join("target"), dir.path().join("restored"));
    let clock = cairn_storage::ManualClock::new(now_ms() + 3_600_000);
    let rt = Runtime::builder(&data).clock(std::sync::Arc::new(clock.clone())).open().unwrap();
    put(&rt, "a", "v", 1).await;
    let backup = Backup::start(rt.clone(), config(&target)).unwrap();
    // The first pass (and its snapshot) happens before the writes the cut is about.
    backup.caught_up(clock.now_ms()).await;
    put(&rt, "a", "v", 2).await;
    put(&rt, "b", "v", 2).await;
    let cut = clock.now_ms();
    clock.advance(1_000);
    put(&rt, "a", "v", 3).await;
    put(&rt, "c", "v", 3).await;
    backup.caught_up(clock.now_ms()).await;
    backup.shutdown().await;
    rt.close();

    let target = Target::open(&TargetConfig::from_url(target.display().to_string())).unwrap();
    restore(&target, &restored, Some(cut), &mut |_, _, _| {}).await.unwrap();
    let back = Runtime::builder(&restored).open().unwrap();
    assert_eq!(get(&back, "a", "v").await, Some(2));
    assert_eq!(get(&back, "b", "v").await, Some(2));
    assert_eq!(get(&back, "c", "v").await, None);
    back.close();

    // Restoring into a directory with data is refused.
    let err = restore(&target, &restored, None, &mut |_, _, _| {}).await.unwrap_err();
    assert_eq!(err.code(), "backup.not_empty");
}
