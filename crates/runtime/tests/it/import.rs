//! `ObjectRef::import`: a prepared SQLite file becomes an object's state as one commit, which
//! survives restarts, keeps history a straight line and indexes the imported alarm.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_runtime::{Durability, Error, Runtime};
use cairn_storage::{Limits, ManualClock, SqlValue};

const START_MS: i64 = 1_800_000_000_000;
const ALARM_MS: i64 = START_MS + 60_000;

fn runtime(dir: &Path, clock: &Arc<ManualClock>) -> Runtime {
    Runtime::builder(dir)
        .shards(2)
        .clock(Arc::clone(clock) as Arc<dyn cairn_storage::Clock>)
        .namespace_limits("tiny", Limits { max_database_bytes: 64 * 1024, ..Limits::default() })
        .open()
        .expect("open runtime")
}

/// `src`'s state now, as an image ready for `import` (exported, then checked and converted).
async fn prepared(rt: &Runtime, dir: &Path, ns: &str, name: &str) -> PathBuf {
    let src = rt.object(ns, name).expect("object");
    let exported = dir.join(format!("{name}.export"));
    src.image(None, exported.clone()).await.expect("image");
    let image = dir.join(format!("{name}.import"));
    cairn_storage::import::prepare(&exported, &image, &Limits::default()).expect("prepare");
    image
}

async fn text(rt: &Runtime, name: &str) -> Option<String> {
    rt.object("ns", name).expect("object").get::<String>("k").await.expect("get")
}

async fn rows(rt: &Runtime, name: &str) -> i64 {
    let cursor = rt.object("ns", name).expect("object").exec("SELECT count(*) FROM t", vec![]).await.expect("sql");
    cursor.raw().next().and_then(|r| r.into_iter().next()).and_then(|v| v.as_i64()).unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_is_one_commit_that_survives_restarts_and_its_undo_bookmark_restores() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = tempfile::tempdir_in(dir.path()).expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_MS));
    let undo = {
        let rt = runtime(dir.path(), &clock);
        let src = rt.object("ns", "src")?;
        src.put("k", "from src").await?;
        src.exec("CREATE TABLE t(x)", vec![]).await?;
        src.exec("INSERT INTO t VALUES (?1), (?1)", vec![SqlValue::Integer(7)]).await?;
        src.set_alarm(ALARM_MS).await?;
        let dst = rt.object("ns", "dst")?;
        dst.put("k", "mine").await?;
        let before = dst.current_bookmark().await?;

        let image = prepared(&rt, files.path(), "ns", "src").await;
        let undo = dst.import(image.clone()).await?;
        assert_eq!(undo, before, "the bookmark returned is the state replaced");
        assert!(!image.exists(), "the image was moved into place");
        assert_eq!(dst.current_bookmark().await?.seq, before.seq + 1, "one commit");
        assert_eq!(text(&rt, "dst").await.as_deref(), Some("from src"));
        assert_eq!(rows(&rt, "dst").await, 2);
        assert_eq!(dst.get_alarm().await?, Some(ALARM_MS));
        let due: Vec<String> = rt.due_alarms(ALARM_MS, 10)?.into_iter().map(|(_, name, _)| name).collect();
        assert!(due.contains(&"dst".to_owned()), "the imported alarm is indexed: {due:?}");
        // Dropped without `close`: the import's log record is replayed at the next start.
        drop(rt);
        undo
    };
    let rt = runtime(dir.path(), &clock);
    assert_eq!(text(&rt, "dst").await.as_deref(), Some("from src"));
    assert_eq!(rows(&rt, "dst").await, 2);
    rt.object("ns", "dst")?.restore(undo).await?;
    assert_eq!(text(&rt, "dst").await.as_deref(), Some("mine"));
    rt.close();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_creates_an_object_that_was_never_written() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = tempfile::tempdir_in(dir.path()).expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_MS));
    let rt = runtime(dir.path(), &clock);
    rt.object("ns", "src")?.put("k", "v").await?;
    let image = prepared(&rt, files.path(), "ns", "src").await;
    let undo = rt.object("ns", "new")?.import(image).await?;
    assert_eq!(undo.seq, 0, "nothing to undo");
    assert_eq!(text(&rt, "new").await.as_deref(), Some("v"));
    let listed: Vec<String> = rt.list_objects("ns", "", 10)?.into_iter().map(|o| o.name).collect();
    assert!(listed.contains(&"new".to_owned()), "{listed:?}");
    rt.close();
    let rt = runtime(dir.path(), &clock);
    assert_eq!(text(&rt, "new").await.as_deref(), Some("v"));
    rt.close();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_are_refused_over_the_size_limit_and_without_the_commit_log() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = tempfile::tempdir_in(dir.path()).expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_MS));
    let rt = runtime(dir.path(), &clock);
    let src = rt.object("ns", "big")?;
    src.exec("CREATE TABLE t(x)", vec![]).await?;
    src.exec("INSERT INTO t VALUES (randomblob(100000))", vec![]).await?;
    let image = prepared(&rt, files.path(), "ns", "big").await;
    let err = rt.object("tiny", "o")?.import(image.clone()).await.expect_err("too large");
    assert_eq!(err.code(), "storage.invalid_import", "{err}");
    assert!(!image.exists(), "a refused image is removed");
    rt.close();

    let rt = Runtime::builder(dir.path().join("os")).durability(Durability::Os).open()?;
    rt.object("ns", "src")?.put("k", "v").await?;
    let image = prepared(&rt, files.path(), "ns", "src").await;
    let err = rt.object("ns", "dst")?.import(image).await.expect_err("no commit log");
    assert!(matches!(err, Error::HistoryDisabled), "{err}");
    rt.close();
    Ok(())
}
