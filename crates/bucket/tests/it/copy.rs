//! Copies within and across buckets.

use std::collections::BTreeMap;

use cairn_bucket::{Conditions, CopyOptions, CopyOutcome, EtagMatcher, HttpMetadata, Object, PutOptions};

use crate::{BUCKET, Env, SIZES, body, expect_err, is_hex32};

const OTHER: &str = "other-bucket";

fn metadata() -> PutOptions {
    PutOptions {
        http_metadata: HttpMetadata { content_type: Some("image/png".into()), ..Default::default() },
        custom_metadata: BTreeMap::from([("origin".to_owned(), "camera".to_owned())]),
        ..Default::default()
    }
}

fn copied(outcome: CopyOutcome) -> Object {
    match outcome {
        CopyOutcome::Copied(o) => *o,
        other => panic!("expected a copy, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_within_a_bucket_has_the_source_body_and_metadata() {
    let env = Env::new().await;
    for size in SIZES {
        let (src, dst) = (format!("src{size}"), format!("dst{size}"));
        let bytes = body(size, 3);
        let source = env.put_with(&src, &bytes, metadata()).await.unwrap();
        env.clock.advance(7);
        let copy = copied(env.svc.copy(BUCKET, &src, BUCKET, &dst, CopyOptions::default()).await.unwrap());
        assert_eq!(copy.key, dst);
        assert!(is_hex32(&copy.version));
        assert_ne!(copy.version, source.version);
        assert_eq!(copy.uploaded_ms, source.uploaded_ms + 7);
        assert_eq!((copy.size, &copy.etag, &copy.checksums), (source.size, &source.etag, &source.checksums));
        assert_eq!((&copy.http_metadata, &copy.custom_metadata), (&source.http_metadata, &source.custom_metadata));
        assert_eq!(env.svc.head(BUCKET, &dst).await.unwrap().unwrap(), copy);
        assert_eq!(env.get_bytes(&dst).await.unwrap(), bytes);

        // The copy outlives its source.
        env.svc.delete(BUCKET, vec![src.clone()]).await.unwrap();
        assert_eq!(env.get_bytes(&dst).await.unwrap(), bytes);
        // And a new source does not change it.
        env.put(&src, &body(size, 4)).await;
        assert_eq!(env.get_bytes(&dst).await.unwrap(), bytes);
    }
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_across_buckets_survives_the_source_bucket() {
    let env = Env::new().await;
    env.svc.create_bucket(OTHER).await.unwrap();
    for size in SIZES {
        let key = format!("k{size}");
        env.put_with(&key, &body(size, 5), metadata()).await.unwrap();
        let copy = copied(env.svc.copy(BUCKET, &key, OTHER, "copy", CopyOptions::default()).await.unwrap());
        assert_eq!(copy.custom_metadata, metadata().custom_metadata);
        let (_, _, read) = env.read(OTHER, "copy", Default::default()).await.unwrap().unwrap();
        assert_eq!(read, body(size, 5));
        env.svc.delete(BUCKET, vec![key.clone()]).await.unwrap();
    }
    // The last copy (a file) outlives the source bucket and its blob directory.
    env.svc.delete_bucket(BUCKET).await.unwrap();
    let (_, _, read) = env.read(OTHER, "copy", Default::default()).await.unwrap().unwrap();
    assert_eq!(read, body(SIZES[1], 5));
    env.await_blob_files(OTHER, 1).await;
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_can_replace_the_metadata() {
    let env = Env::new().await;
    for size in SIZES {
        let key = format!("k{size}");
        env.put_with(&key, &body(size, 6), metadata()).await.unwrap();
        let http = HttpMetadata { cache_control: Some("no-store".into()), ..Default::default() };
        let custom = BTreeMap::from([("new".to_owned(), "yes".to_owned())]);
        let options = CopyOptions { replace_metadata: Some((http.clone(), custom.clone())), ..Default::default() };
        let copy = copied(env.svc.copy(BUCKET, &key, BUCKET, &format!("{key}-copy"), options).await.unwrap());
        assert_eq!((copy.http_metadata, copy.custom_metadata), (http, custom));
        // The source keeps its own.
        let source = env.svc.head(BUCKET, &key).await.unwrap().unwrap();
        assert_eq!(source.custom_metadata, metadata().custom_metadata);
        // Too much metadata is refused.
        let options = CopyOptions {
            replace_metadata: Some((HttpMetadata::default(), BTreeMap::from([("key".into(), "x".repeat(2046))]))),
            ..Default::default()
        };
        expect_err(
            env.svc.copy(BUCKET, &key, BUCKET, "never", options).await,
            Some(10012),
            "bucket.metadata_too_large",
            "",
        );
        assert_eq!(env.svc.head(BUCKET, "never").await.unwrap(), None);
    }
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_conditions_and_missing_sources() {
    let env = Env::new().await;
    for size in SIZES {
        let (src, dst) = (format!("src{size}"), format!("dst{size}"));
        let source = env.put(&src, &body(size, 7)).await;
        let files = env.blob_files(BUCKET).await;

        // A source condition that fails: nothing is written.
        let strong = |e: &str| Some(vec![EtagMatcher::Strong(e.to_owned())]);
        let options = CopyOptions {
            source_if: Some(Conditions { etag_matches: strong("nope"), ..Default::default() }),
            ..Default::default()
        };
        match env.svc.copy(BUCKET, &src, BUCKET, &dst, options).await.unwrap() {
            CopyOutcome::SourceConditionFailed(e) => assert!(!e.if_match && e.if_none_match, "{e:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(env.svc.head(BUCKET, &dst).await.unwrap(), None);

        // A destination condition that fails: nothing is written, no file is left.
        let existing = env.put(&dst, b"old").await;
        let options = CopyOptions {
            source_if: Some(Conditions { etag_matches: strong(&source.etag), ..Default::default() }),
            only_if: Some(Conditions { etag_matches: strong("nope"), ..Default::default() }),
            ..Default::default()
        };
        assert!(matches!(
            env.svc.copy(BUCKET, &src, BUCKET, &dst, options).await.unwrap(),
            CopyOutcome::DestinationConditionFailed
        ));
        assert_eq!(env.svc.head(BUCKET, &dst).await.unwrap().unwrap(), existing);
        env.await_blob_files(BUCKET, files.len()).await;
        assert_eq!(env.blob_files(BUCKET).await, files);

        // Both hold: copied over the destination.
        let options = CopyOptions {
            source_if: Some(Conditions { etag_matches: strong(&source.etag), ..Default::default() }),
            only_if: Some(Conditions { etag_matches: strong(&existing.etag), ..Default::default() }),
            ..Default::default()
        };
        copied(env.svc.copy(BUCKET, &src, BUCKET, &dst, options).await.unwrap());
        assert_eq!(env.get_bytes(&dst).await.unwrap(), body(size, 7));

        // Onto itself: a new version, same body.
        let again = copied(env.svc.copy(BUCKET, &src, BUCKET, &src, CopyOptions::default()).await.unwrap());
        assert_ne!(again.version, source.version);
        assert_eq!(env.get_bytes(&src).await.unwrap(), body(size, 7));
    }
    assert!(matches!(
        env.svc.copy(BUCKET, "missing", BUCKET, "dst", CopyOptions::default()).await.unwrap(),
        CopyOutcome::SourceMissing
    ));
    assert_eq!(env.svc.head(BUCKET, "dst").await.unwrap(), None);
    expect_err(
        env.svc.copy(BUCKET, "src5", "no-such-bucket", "dst", CopyOptions::default()).await,
        None,
        "bucket.not_found",
        "",
    );
    expect_err(
        env.svc.copy(BUCKET, &"k".repeat(1025), BUCKET, "d", CopyOptions::default()).await,
        Some(10020),
        "bucket.invalid_key",
        "",
    );
    // src100 and dst100 (files), each with a file of its own.
    env.await_blob_files(BUCKET, 2).await;
    env.close();
}
