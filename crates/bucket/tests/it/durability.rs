//! Restarts: what was acknowledged is read back byte for byte; the orphan sweep removes only
//! unreferenced files.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use cairn_bucket::{CompletedPart, HttpMetadata, ListOptions, PutOptions};

use crate::{BUCKET, Env, body, files_under};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_survive_a_restart() {
    let mut env = Env::new().await;
    env.svc.create_bucket("second").await.unwrap();
    let sizes = [0usize, 1, 5, 16, 17, 100, 3 * 1024 * 1024 + 3];
    let mut stored = Vec::new();
    for (i, size) in sizes.into_iter().enumerate() {
        let key = format!("obj/{size}");
        let options = PutOptions {
            http_metadata: HttpMetadata { content_type: Some(format!("type/{i}")), ..Default::default() },
            custom_metadata: BTreeMap::from([("i".to_owned(), i.to_string())]),
            ..Default::default()
        };
        let o = env.put_with(&key, &body(size, i as u8), options).await.unwrap();
        stored.push((BUCKET, key, o, body(size, i as u8)));
    }
    let o = env.svc.put_bytes("second", "there", body(40, 9), PutOptions::default()).await.unwrap().unwrap();
    stored.push(("second", "there".to_owned(), o, body(40, 9)));
    // A multipart object and an upload left open.
    let upload = env.svc.create_multipart(BUCKET, "mp", Default::default()).await.unwrap();
    let mut parts = Vec::new();
    for n in 1..=3u8 {
        let staged = env.svc.stage_bytes(BUCKET, body(60, n), &[]).await.unwrap();
        let p = env.svc.upload_part(BUCKET, "mp", &upload.upload_id, i64::from(n), staged, Vec::new()).await.unwrap();
        parts.push(CompletedPart { part_number: p.part_number, etag: p.etag });
    }
    let o = env.svc.complete_multipart(BUCKET, "mp", &upload.upload_id, parts, None).await.unwrap().unwrap();
    stored.push((BUCKET, "mp".to_owned(), o, [body(60, 1), body(60, 2), body(60, 3)].concat()));
    let open = env.svc.create_multipart(BUCKET, "open", Default::default()).await.unwrap();
    let staged = env.svc.stage_bytes(BUCKET, body(70, 4), &[]).await.unwrap();
    let part = env.svc.upload_part(BUCKET, "open", &open.upload_id, 1, staged, Vec::new()).await.unwrap();
    let listed_before = env.svc.list(BUCKET, ListOptions::default()).await.unwrap();
    let buckets_before = env.svc.list_buckets().await.unwrap();

    env.restart();

    assert_eq!(env.svc.list_buckets().await.unwrap(), buckets_before);
    for (bucket, key, object, bytes) in &stored {
        assert_eq!(env.svc.head(bucket, key).await.unwrap().as_ref(), Some(object), "{key}");
        let (read_object, _, read) = env.read(bucket, key, Default::default()).await.unwrap().unwrap();
        assert_eq!(&read_object, object);
        assert!(read == *bytes, "{key}: the body differs after the restart");
    }
    assert_eq!(env.svc.list(BUCKET, ListOptions::default()).await.unwrap(), listed_before);
    // The open upload carries on.
    let parts = env.svc.list_parts(BUCKET, "open", &open.upload_id, None, 10).await.unwrap();
    assert_eq!(parts.parts.iter().map(|p| p.part.clone()).collect::<Vec<_>>(), std::slice::from_ref(&part));
    let done = env
        .svc
        .complete_multipart(
            BUCKET,
            "open",
            &open.upload_id,
            vec![CompletedPart { part_number: 1, etag: part.etag }],
            None,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.size, 70);
    assert_eq!(env.get_bytes("open").await.unwrap(), body(70, 4));
    env.close();
}

/// Sets a file's modification time.
fn touch(path: &std::path::Path, when: SystemTime) {
    let file = std::fs::File::options().write(true).open(path).expect("open");
    file.set_modified(when).expect("set the modification time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_removes_only_unreferenced_old_files() {
    let mut env = Env::new().await;
    for (i, size) in [100usize, 200, 5].into_iter().enumerate() {
        env.put(&format!("k{i}"), &body(size, i as u8)).await;
    }
    let upload = env.svc.create_multipart(BUCKET, "mp", Default::default()).await.unwrap();
    let staged = env.svc.stage_bytes(BUCKET, body(60, 7), &[]).await.unwrap();
    env.svc.upload_part(BUCKET, "mp", &upload.upload_id, 1, staged, Vec::new()).await.unwrap();
    env.await_blob_files(BUCKET, 3).await;

    // A new service: every file so far predates it.
    env.restart();
    let dir = env.bucket_dir(BUCKET).await;
    let referenced = files_under(&dir);
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for f in &referenced {
        touch(f, hour_ago);
    }
    // A file left by a write that crashed before its commit, an hour ago.
    let stray = dir.join("ab").join(format!("ab{}", "0".repeat(30)));
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, b"orphan").unwrap();
    touch(&stray, hour_ago);
    // And one being written now (newer than the service): not touched.
    let fresh = dir.join("cd").join(format!("cd{}", "1".repeat(30)));
    std::fs::create_dir_all(fresh.parent().unwrap()).unwrap();
    std::fs::write(&fresh, b"in flight").unwrap();
    touch(&fresh, SystemTime::now() + Duration::from_secs(3600));

    assert_eq!(env.svc.sweep_orphans().await.unwrap(), 1);
    assert!(!stray.exists());
    assert!(fresh.exists());
    for f in &referenced {
        assert!(f.exists(), "{} was removed", f.display());
    }
    for (i, size) in [100usize, 200, 5].into_iter().enumerate() {
        assert_eq!(env.get_bytes(&format!("k{i}")).await.unwrap(), body(size, i as u8));
    }
    assert_eq!(env.svc.list_parts(BUCKET, "mp", &upload.upload_id, None, 10).await.unwrap().parts.len(), 1);
    assert_eq!(env.svc.sweep_orphans().await.unwrap(), 0);
    env.close();
}

/// Files the service never writes itself (a temporary file of an editor or a copy tool, a blob
/// moved to the wrong directory) but that sit in a bucket's blob directory unreferenced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_removes_strays_whatever_their_names() {
    let mut env = Env::new().await;
    env.put("k", &body(100, 1)).await;
    env.restart();
    let dir = env.bucket_dir(BUCKET).await;
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let misplaced = dir.join("ab").join(format!("cd{}", "2".repeat(30)));
    let temporary = dir.join("ab").join("upload.tmp");
    std::fs::create_dir_all(misplaced.parent().unwrap()).unwrap();
    for stray in [&misplaced, &temporary] {
        std::fs::write(stray, b"orphan").unwrap();
        touch(stray, hour_ago);
    }
    let removed = env.svc.sweep_orphans().await.unwrap();
    let left: Vec<_> = [&misplaced, &temporary].into_iter().filter(|f| f.exists()).collect();
    assert_eq!((removed, left), (2, Vec::<&std::path::PathBuf>::new()));
    assert_eq!(env.get_bytes("k").await.unwrap(), body(100, 1));
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_bucket_stays_deleted_after_a_restart() {
    let mut env = Env::new().await;
    env.put("k", &body(100, 1)).await;
    let dir = env.bucket_dir(BUCKET).await;
    env.svc.delete(BUCKET, vec!["k".into()]).await.unwrap();
    env.svc.delete_bucket(BUCKET).await.unwrap();
    env.restart();
    assert_eq!(env.svc.list_buckets().await.unwrap(), []);
    assert!(!dir.exists());
    env.svc.create_bucket(BUCKET).await.unwrap();
    assert_eq!(env.svc.head(BUCKET, "k").await.unwrap(), None);
    env.close();
}
