//! Buckets: create, list, get, delete, names, and the blob directory of each.

use cairn_bucket::{GetOptions, ListOptions, MultipartOptions};
use cairn_runtime::Durability;

use crate::{BIG, BUCKET, Env, T0_MS, TINY, body, expect_err, is_hex32, small_limits};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_are_created_listed_found_and_deleted() {
    let env = Env::bare(small_limits(), Durability::Fsync);
    assert_eq!(env.svc.list_buckets().await.unwrap(), []);
    let gamma = env.svc.create_bucket("gamma.x").await.unwrap();
    env.clock.advance(5);
    let alpha = env.svc.create_bucket("alpha").await.unwrap();
    let beta = env.svc.create_bucket("beta-1").await.unwrap();
    assert_eq!((alpha.name.as_str(), alpha.created_ms), ("alpha", T0_MS + 5));
    assert_eq!((gamma.name.as_str(), gamma.created_ms), ("gamma.x", T0_MS));
    for b in [&alpha, &beta, &gamma] {
        assert!(is_hex32(&b.id), "{b:?}");
    }
    assert!(alpha.id != beta.id && beta.id != gamma.id && alpha.id != gamma.id);

    // Listed by name, whatever the creation order.
    let listed = env.svc.list_buckets().await.unwrap();
    assert_eq!(listed, [alpha.clone(), beta.clone(), gamma.clone()]);
    assert_eq!(env.svc.bucket("beta-1").await.unwrap(), beta);

    env.svc.delete_bucket("beta-1").await.unwrap();
    assert_eq!(env.svc.list_buckets().await.unwrap(), [alpha, gamma]);
    expect_err(env.svc.bucket("beta-1").await, None, "bucket.not_found", "The specified bucket does not exist");
    expect_err(env.svc.delete_bucket("beta-1").await, None, "bucket.not_found", "The specified bucket does not exist");
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_name_is_unique() {
    let env = Env::new().await;
    let first = env.svc.bucket(BUCKET).await.unwrap();
    let err = expect_err(env.svc.create_bucket(BUCKET).await, None, "bucket.exists", "A bucket named");
    assert_eq!(err.to_string(), format!("A bucket named {BUCKET:?} already exists"));
    // The existing bucket is untouched.
    assert_eq!(env.svc.list_buckets().await.unwrap(), [first]);
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_bucket_names_are_refused() {
    let env = Env::bare(small_limits(), Durability::Fsync);
    let long = "a".repeat(64);
    for bad in ["", "ab", "Abc", "-abc", "abc-", ".abc", "abc.", "a..b", "a.-b", "a-.b", "192.168.1.1", "a_b", "ab c"]
        .into_iter()
        .chain([long.as_str(), "é-bucket", "../x", "a/b"])
    {
        expect_err(
            env.svc.create_bucket(bad).await,
            None,
            "bucket.invalid_name",
            &format!("The specified bucket name is not valid: {bad:?}"),
        );
    }
    assert_eq!(env.svc.list_buckets().await.unwrap(), []);
    for good in ["abc", "a-b.c", "0123456789", &"a".repeat(63)] {
        env.svc.create_bucket(good).await.unwrap();
    }
    assert_eq!(env.svc.list_buckets().await.unwrap().len(), 4);
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_with_objects_is_not_deleted() {
    let env = Env::new().await;
    for (key, size) in [("tiny", TINY), ("big", BIG)] {
        env.put(key, &body(size, 1)).await;
        let err = expect_err(
            env.svc.delete_bucket(BUCKET).await,
            None,
            "bucket.not_empty",
            "The bucket you tried to delete is not empty",
        );
        assert!(matches!(err, cairn_bucket::Error::BucketNotEmpty { objects: 1, .. }), "{err:?}");
        // Nothing was lost.
        assert_eq!(env.get_bytes(key).await.unwrap(), body(size, 1));
        assert_eq!(env.svc.delete(BUCKET, vec![key.to_owned()]).await.unwrap(), [key]);
    }
    env.svc.delete_bucket(BUCKET).await.unwrap();
    assert_eq!(env.svc.list_buckets().await.unwrap(), []);
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_bucket_removes_its_blob_directory() {
    let env = Env::new().await;
    let dir = env.bucket_dir(BUCKET).await;
    env.put("big", &body(BIG, 2)).await;
    env.await_blob_files(BUCKET, 1).await;
    env.svc.delete(BUCKET, vec!["big".into()]).await.unwrap();
    env.await_blob_files(BUCKET, 0).await;
    // An unfinished upload does not keep a bucket alive: it is aborted with the bucket.
    let upload = env.svc.create_multipart(BUCKET, "mp", MultipartOptions::default()).await.unwrap();
    let part = env.svc.stage_bytes(BUCKET, body(60, 3), &[]).await.unwrap();
    env.svc.upload_part(BUCKET, "mp", &upload.upload_id, 1, part, Vec::new()).await.unwrap();
    env.await_blob_files(BUCKET, 1).await;
    assert!(dir.is_dir());

    env.svc.delete_bucket(BUCKET).await.unwrap();
    assert!(!dir.exists(), "{} is left", dir.display());

    // A new bucket of the same name starts empty, in a directory of its own.
    let again = env.svc.create_bucket(BUCKET).await.unwrap();
    assert_ne!(env.blob_root().join(&again.id), dir);
    assert_eq!(env.svc.head(BUCKET, "big").await.unwrap(), None);
    assert_eq!(env.svc.list(BUCKET, ListOptions::default()).await.unwrap().objects, []);
    assert_eq!(env.svc.list_uploads(BUCKET, "", None, 10).await.unwrap().uploads, []);
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_on_a_missing_bucket_fail() {
    let env = Env::new().await;
    let missing = "no-such-bucket";
    let not_found = "The specified bucket does not exist";
    expect_err(
        env.svc.put_bytes(missing, "k", b"v".to_vec(), Default::default()).await,
        None,
        "bucket.not_found",
        not_found,
    );
    expect_err(env.svc.head(missing, "k").await, None, "bucket.not_found", not_found);
    expect_err(env.svc.get(missing, "k", GetOptions::default()).await, None, "bucket.not_found", not_found);
    expect_err(env.svc.delete(missing, vec!["k".into()]).await, None, "bucket.not_found", not_found);
    expect_err(env.svc.list(missing, ListOptions::default()).await, None, "bucket.not_found", not_found);
    expect_err(
        env.svc.create_multipart(missing, "k", MultipartOptions::default()).await,
        None,
        "bucket.not_found",
        not_found,
    );
    expect_err(env.svc.stage_bytes(missing, vec![1; BIG], &[]).await, None, "bucket.not_found", not_found);
    env.close();
}
