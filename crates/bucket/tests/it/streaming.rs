//! Staging request bodies from streams: lengths, failures and size limits. A failed stage
//! leaves no file behind.

use std::convert::Infallible;

use bytes::Bytes;
use cairn_bucket::{BucketLimits, ChecksumAlgorithm, PutOptions, StageOptions, to_hex};
use sha2::Digest as _;

use crate::{BIG, BUCKET, Env, TINY, body, expect_err, md5_bin, md5_hex, small_limits};

/// A stream of `bytes` in chunks of `chunk` bytes.
fn chunks(bytes: &[u8], chunk: usize) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Unpin + Send {
    let parts: Vec<Result<Bytes, Infallible>> = bytes.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures_util::stream::iter(parts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_many_chunks_is_staged_hashed_and_stored() {
    let env = Env::new().await;
    for (len, chunk, files) in [(1400usize, 7usize, 1usize), (16, 1, 1), (3 * 1024 * 1024 + 11, 64 * 1024 + 3, 2)] {
        let bytes = body(len, 3);
        for expected_len in [Some(len as u64), None] {
            let options = StageOptions { algorithms: vec![ChecksumAlgorithm::Sha256], expected_len };
            let staged = env.svc.stage(BUCKET, chunks(&bytes, chunk), options).await.unwrap();
            assert_eq!(staged.size(), len as u64);
            assert_eq!(staged.digests().get(ChecksumAlgorithm::Md5), Some(md5_bin(&bytes).as_slice()));
            let sha = sha2::Sha256::digest(&bytes).to_vec();
            assert_eq!(staged.digests().get(ChecksumAlgorithm::Sha256), Some(sha.as_slice()));
            let key = format!("k{len}");
            let options =
                PutOptions { checksums: vec![(ChecksumAlgorithm::Sha256, sha.clone())], ..Default::default() };
            let o = env.svc.put(BUCKET, &key, staged, options).await.unwrap().unwrap();
            assert_eq!((o.size, o.etag.as_str()), (len as u64, md5_hex(&bytes).as_str()));
            assert_eq!(o.checksums.get("sha256"), Some(&to_hex(&sha)));
            assert!(env.get_bytes(&key).await.unwrap() == bytes);
        }
        // Bodies over 16 bytes are files; the overwritten one's is gone.
        env.await_blob_files(BUCKET, files).await;
    }
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_body_dropped_unused_leaves_no_file() {
    let env = Env::new().await;
    let staged = env.svc.stage(BUCKET, chunks(&body(BIG, 1), 10), StageOptions::default()).await.unwrap();
    env.await_blob_files(BUCKET, 1).await;
    drop(staged);
    env.await_blob_files(BUCKET, 0).await;
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_the_wrong_length_is_incomplete() {
    let env = Env::new().await;
    // (bytes sent, bytes declared): short and long, inline and file.
    for (sent, declared) in [(TINY, 10u64), (10, 5), (BIG, 200), (200, 150), (BIG, 10), (0, 1)] {
        let options = StageOptions { expected_len: Some(declared), ..Default::default() };
        let err = expect_err(
            env.svc.stage(BUCKET, chunks(&body(sent, 0), 7), options).await,
            None,
            "bucket.incomplete_body",
            "You did not provide the number of bytes specified by the Content-Length HTTP header",
        );
        match err {
            cairn_bucket::Error::IncompleteBody { expected, received } => {
                assert_eq!(expected, declared);
                if (sent as u64) < declared {
                    assert_eq!(received, sent as u64);
                } else {
                    // Stopped at the first chunk past the declared length.
                    assert!(received > declared && received <= declared + 7, "{received}");
                }
            }
            other => panic!("{other:?}"),
        }
    }
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_failing_midway_is_a_body_read_error() {
    let env = Env::new().await;
    // The failure comes before and after the body outgrew the inline size.
    for ok_chunks in [1usize, 2, 10] {
        let mut items: Vec<Result<Bytes, String>> =
            (0..ok_chunks).map(|i| Ok(Bytes::from(body(12, i as u8)))).collect();
        items.push(Err("the client went away".to_owned()));
        items.push(Ok(Bytes::from(body(12, 0))));
        let options = StageOptions { expected_len: Some(1000), ..Default::default() };
        let err = expect_err(
            env.svc.stage(BUCKET, futures_util::stream::iter(items), options).await,
            None,
            "bucket.body_read",
            "",
        );
        assert_eq!(err.to_string(), "reading the request body failed: the client went away");
    }
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_maximum_object_size_are_refused() {
    let env = Env::with_limits(BucketLimits { max_object_bytes: 1000, ..small_limits() }).await;
    let too_large = "Your proposed upload exceeds the maximum allowed object size.";
    // Declared too large: refused before reading.
    let options = StageOptions { expected_len: Some(1001), ..Default::default() };
    let err = expect_err(
        env.svc.stage(BUCKET, chunks(&body(1001, 0), 100), options).await,
        Some(100100),
        "bucket.entity_too_large",
        too_large,
    );
    assert!(matches!(err, cairn_bucket::Error::EntityTooLarge { len: 1001, max: 1000 }), "{err:?}");
    // Undeclared: refused as it arrives.
    let err = expect_err(
        env.svc.stage(BUCKET, chunks(&body(5000, 0), 100), StageOptions::default()).await,
        Some(100100),
        "bucket.entity_too_large",
        too_large,
    );
    assert!(matches!(err, cairn_bucket::Error::EntityTooLarge { len: 1100, max: 1000 }), "{err:?}");
    // put_bytes and parts go through the same check.
    let put = env.svc.put_bytes(BUCKET, "k", body(1001, 0), PutOptions::default()).await;
    expect_err(put, Some(100100), "bucket.entity_too_large", too_large);
    assert_eq!(env.svc.head(BUCKET, "k").await.unwrap(), None);
    // Exactly the maximum is fine.
    env.put("k", &body(1000, 1)).await;
    assert_eq!(env.get_bytes("k").await.unwrap(), body(1000, 1));
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_failing_before_its_body_outgrew_the_inline_size_leaves_no_file() {
    let env = Env::with_limits(BucketLimits { max_object_bytes: 1000, ..small_limits() }).await;
    for _ in 0..10 {
        let short = StageOptions { expected_len: Some(10), ..Default::default() };
        env.svc.stage(BUCKET, chunks(&body(TINY, 0), 2), short).await.unwrap_err();
        let long = StageOptions { expected_len: Some(5), ..Default::default() };
        env.svc.stage(BUCKET, chunks(&body(10, 0), 7), long).await.unwrap_err();
        let items = vec![Ok(Bytes::from(body(12, 0))), Err("gone".to_owned())];
        env.svc.stage(BUCKET, futures_util::stream::iter(items), StageOptions::default()).await.unwrap_err();
        let declared = StageOptions { expected_len: Some(5000), ..Default::default() };
        env.svc.stage(BUCKET, chunks(&body(5000, 0), 100), declared).await.unwrap_err();
    }
    env.await_blob_files(BUCKET, 0).await;
    env.close();
}

/// Stages that fail once their body is being written to a file: each must leave no file.
/// Repeated, as the leftover comes from a race with the writer thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_failing_while_writing_a_file_leaves_no_file() {
    let env = Env::with_limits(BucketLimits { max_object_bytes: 1000, ..small_limits() }).await;
    for round in 0..50 {
        // Shorter than declared.
        let short = StageOptions { expected_len: Some(200), ..Default::default() };
        let err = env.svc.stage(BUCKET, chunks(&body(BIG, 0), 7), short).await.unwrap_err();
        assert_eq!(err.code(), "bucket.incomplete_body");
        env.await_blob_files(BUCKET, 0).await;
        // Longer than declared.
        let long = StageOptions { expected_len: Some(150), ..Default::default() };
        let err = env.svc.stage(BUCKET, chunks(&body(200, 0), 7), long).await.unwrap_err();
        assert_eq!(err.code(), "bucket.incomplete_body");
        env.await_blob_files(BUCKET, 0).await;
        // The stream fails.
        let items = vec![Ok(Bytes::from(body(20, 0))), Ok(Bytes::from(body(20, 1))), Err("gone".to_owned())];
        let err = env.svc.stage(BUCKET, futures_util::stream::iter(items), StageOptions::default()).await.unwrap_err();
        assert_eq!(err.code(), "bucket.body_read");
        env.await_blob_files(BUCKET, 0).await;
        // Too large, found as it arrives.
        let err = env.svc.stage(BUCKET, chunks(&body(5000, 0), 100), StageOptions::default()).await.unwrap_err();
        assert_eq!(err.code(), "bucket.entity_too_large", "round {round}");
        env.await_blob_files(BUCKET, 0).await;
    }
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_upload_over_the_maximum_is_refused() {
    let env = Env::with_limits(BucketLimits { max_object_bytes: 150, ..small_limits() }).await;
    let u = env.svc.create_multipart(BUCKET, "k", Default::default()).await.unwrap();
    let mut parts = Vec::new();
    for n in 1..=3u8 {
        let staged = env.svc.stage_bytes(BUCKET, body(60, n), &[]).await.unwrap();
        let p = env.svc.upload_part(BUCKET, "k", &u.upload_id, i64::from(n), staged, Vec::new()).await.unwrap();
        parts.push(cairn_bucket::CompletedPart { part_number: p.part_number, etag: p.etag });
    }
    let done = env.svc.complete_multipart(BUCKET, "k", &u.upload_id, parts.clone(), None).await;
    expect_err(
        done,
        Some(100100),
        "bucket.entity_too_large",
        "Your proposed upload exceeds the maximum allowed object size.",
    );
    assert_eq!(env.svc.head(BUCKET, "k").await.unwrap(), None);
    // Two of them fit.
    parts.pop();
    let o = env.svc.complete_multipart(BUCKET, "k", &u.upload_id, parts, None).await.unwrap().unwrap();
    assert_eq!(o.size, 120);
    env.close();
}
