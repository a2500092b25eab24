//! put, head, get and delete (spec 9.3): object fields, metadata, checksums, keys, overwrites.

use std::collections::BTreeMap;

use cairn_bucket::{
    ByteRange, ChecksumAlgorithm, Error, GetOptions, HttpMetadata, MultipartOptions, PutOptions, to_hex,
};
use sha1::Digest as _;

use crate::{BIG, BUCKET, Env, SIZES, T0_MS, TINY, body, expect_err, is_hex32, md5_bin, md5_hex};

fn http_metadata() -> HttpMetadata {
    HttpMetadata {
        content_type: Some("text/plain; charset=utf-8".into()),
        content_language: Some("en-GB".into()),
        content_disposition: Some("attachment; filename=\"a.txt\"".into()),
        content_encoding: Some("gzip".into()),
        cache_control: Some("max-age=60".into()),
        cache_expiry: Some(1_800_000_000_000),
    }
}

fn custom_metadata() -> BTreeMap<String, String> {
    BTreeMap::from([("owner".into(), "ada".into()), ("emoji".into(), "🙂".into()), ("empty".into(), String::new())])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_head_get_delete_round_trip() {
    let env = Env::new().await;
    for size in SIZES {
        let key = format!("dir/object-{size}");
        let bytes = body(size, 7);
        let options =
            PutOptions { http_metadata: http_metadata(), custom_metadata: custom_metadata(), ..Default::default() };
        let put = env.put_with(&key, &bytes, options).await.unwrap();
        assert_eq!(put.key, key);
        assert_eq!(put.size, size as u64);
        assert_eq!(put.etag, md5_hex(&bytes));
        assert_eq!(put.http_etag(), format!("\"{}\"", md5_hex(&bytes)));
        assert!(is_hex32(&put.version), "{}", put.version);
        assert_eq!(put.uploaded_ms, T0_MS);
        assert_eq!(put.http_metadata, http_metadata());
        assert_eq!(put.custom_metadata, custom_metadata());
        assert_eq!(put.checksums, BTreeMap::from([("md5".to_owned(), md5_hex(&bytes))]));
        assert_eq!(put.checksum(ChecksumAlgorithm::Md5), Some(md5_bin(&bytes)));
        assert_eq!(put.storage_class, "Standard");
        assert_eq!(put.part_count, None);

        assert_eq!(env.svc.head(BUCKET, &key).await.unwrap().as_ref(), Some(&put));
        let (object, range, read) = env.read(BUCKET, &key, GetOptions::default()).await.unwrap().unwrap();
        assert_eq!(object, put);
        assert_eq!(range, ByteRange { offset: 0, length: size as u64 });
        assert_eq!(read, bytes);
        let outcome = env.svc.get(BUCKET, &key, GetOptions::default()).await.unwrap().unwrap();
        let cairn_bucket::GetOutcome::Body(b) = outcome else { panic!("no condition was given") };
        assert!(!b.partial);

        assert_eq!(env.svc.delete(BUCKET, vec![key.clone()]).await.unwrap(), std::slice::from_ref(&key));
        assert_eq!(env.svc.head(BUCKET, &key).await.unwrap(), None);
        assert!(env.svc.get(BUCKET, &key, GetOptions::default()).await.unwrap().is_none());
        // Deleting a missing key is silently skipped.
        assert_eq!(env.svc.delete(BUCKET, vec![key.clone()]).await.unwrap(), Vec::<String>::new());
    }
    env.await_blob_files(BUCKET, 0).await;
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_put_gets_a_new_version() {
    let env = Env::new().await;
    for size in SIZES {
        let key = format!("k{size}");
        let bytes = body(size, 1);
        let first = env.put(&key, &bytes).await;
        env.clock.advance(1500);
        let second = env.put(&key, &bytes).await;
        assert_ne!(first.version, second.version);
        assert!(is_hex32(&second.version));
        assert_eq!(first.etag, second.etag);
        assert_eq!(second.uploaded_ms, first.uploaded_ms + 1500);
        assert_eq!(env.svc.head(BUCKET, &key).await.unwrap().unwrap(), second);
    }
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_body_and_an_empty_key_are_objects() {
    let env = Env::new().await;
    let empty = env.put("empty-body", b"").await;
    assert_eq!((empty.size, empty.etag.as_str()), (0, "d41d8cd98f00b204e9800998ecf8427e"));
    let (_, range, bytes) = env.read(BUCKET, "empty-body", GetOptions::default()).await.unwrap().unwrap();
    assert_eq!((range, bytes), (ByteRange { offset: 0, length: 0 }, Vec::new()));

    for size in SIZES {
        let bytes = body(size, 9);
        let put = env.put("", &bytes).await;
        assert_eq!(put.key, "");
        assert_eq!(env.svc.head(BUCKET, "").await.unwrap().unwrap(), put);
        assert_eq!(env.get_bytes("").await.unwrap(), bytes);
        let listed = env.svc.list(BUCKET, Default::default()).await.unwrap();
        assert_eq!(listed.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["", "empty-body"]);
    }
    assert_eq!(env.svc.delete(BUCKET, vec![String::new()]).await.unwrap(), [""]);
    assert_eq!(env.svc.head(BUCKET, "").await.unwrap(), None);
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_up_to_1024_bytes_are_valid() {
    let env = Env::new().await;
    let ascii = "k".repeat(1024);
    // 512 two-byte characters.
    let accented = "é".repeat(512);
    for (i, key) in [ascii.clone(), accented.clone()].into_iter().enumerate() {
        assert_eq!(key.len(), 1024);
        for size in SIZES {
            let bytes = body(size, i as u8);
            env.put(&key, &bytes).await;
            assert_eq!(env.get_bytes(&key).await.unwrap(), bytes);
            assert_eq!(env.svc.head(BUCKET, &key).await.unwrap().unwrap().key, key);
        }
    }

    let invalid = "The specified object name is not valid.";
    for key in [format!("{ascii}x"), format!("{accented}a"), "é".repeat(513)] {
        assert!(key.len() > 1024);
        let put = env.svc.put_bytes(BUCKET, &key, b"v".to_vec(), PutOptions::default()).await;
        let err = expect_err(put, Some(10020), "bucket.invalid_key", invalid);
        assert!(matches!(err, Error::KeyTooLong { max: 1024, .. }), "{err:?}");
        expect_err(env.svc.head(BUCKET, &key).await, Some(10020), "bucket.invalid_key", invalid);
        expect_err(env.svc.get(BUCKET, &key, GetOptions::default()).await, Some(10020), "bucket.invalid_key", invalid);
        let list = env.svc.list(BUCKET, cairn_bucket::ListOptions { prefix: Some(key.clone()), ..Default::default() });
        expect_err(list.await, Some(10020), "bucket.invalid_key", invalid);
        let mp = env.svc.create_multipart(BUCKET, &key, MultipartOptions::default()).await;
        expect_err(mp, Some(10020), "bucket.invalid_key", invalid);
        // One bad key fails the whole delete: nothing is deleted.
        let delete = env.svc.delete(BUCKET, vec![ascii.clone(), key.clone()]).await;
        expect_err(delete, Some(10020), "bucket.invalid_key", invalid);
        assert!(env.svc.head(BUCKET, &ascii).await.unwrap().is_some());
    }
    let deleted = env.svc.delete(BUCKET, vec![ascii.clone(), "missing".into(), accented.clone()]).await.unwrap();
    assert_eq!(deleted, [ascii, accented]);
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_metadata_is_counted_as_r2_counts_it() {
    let env = Env::new().await;
    let one = |k: &str, v: String| BTreeMap::from([(k.to_owned(), v)]);
    let accepted = [
        one("key", "x".repeat(2045)),
        // Each 🙂 is two UTF-16 units, counted twice as they are >= 256: 3 + 4 * 511 = 2047.
        one("key", "🙂".repeat(511)),
        one("key1", "🙂".repeat(511)),
        // é is U+00E9, under 256: counted once (though two bytes of UTF-8): 3 + 2045.
        one("key", format!("{}é", "x".repeat(2044))),
        // Two entries: 3 + 1000 + 4 + 1041 = 2048.
        BTreeMap::from([("key".to_owned(), "x".repeat(1000)), ("key2".to_owned(), "y".repeat(1041))]),
    ];
    let rejected = [
        (one("key", "x".repeat(2046)), 2049),
        (one("key12", "🙂".repeat(511)), 2049),
        // One UTF-16 unit >= 256 (ā is U+0101) doubles the whole string: 3 + 2 * 1023.
        (one("key", format!("{}ā", "x".repeat(1022))), 2049),
        (BTreeMap::from([("key".to_owned(), "x".repeat(1000)), ("key2".to_owned(), "y".repeat(1042))]), 2049),
    ];
    for size in SIZES {
        for (i, metadata) in accepted.iter().enumerate() {
            let key = format!("ok-{size}-{i}");
            let options = PutOptions { custom_metadata: metadata.clone(), ..Default::default() };
            let put = env.put_with(&key, &body(size, 0), options).await.unwrap();
            assert_eq!(&put.custom_metadata, metadata);
            assert_eq!(&env.svc.head(BUCKET, &key).await.unwrap().unwrap().custom_metadata, metadata);
        }
        for (i, (metadata, len)) in rejected.iter().enumerate() {
            let key = format!("too-much-{size}-{i}");
            let options = PutOptions { custom_metadata: metadata.clone(), ..Default::default() };
            let err = expect_err(
                env.svc.put_bytes(BUCKET, &key, body(size, 0), options).await,
                Some(10012),
                "bucket.metadata_too_large",
                "Your metadata headers exceed the maximum allowed metadata size.",
            );
            assert!(matches!(err, Error::MetadataTooLarge { len: l, max: 2048 } if l == *len), "{err:?}");
            assert_eq!(env.svc.head(BUCKET, &key).await.unwrap(), None);
            let mp = MultipartOptions { custom_metadata: metadata.clone(), ..Default::default() };
            let err = env.svc.create_multipart(BUCKET, &key, mp).await.unwrap_err();
            assert_eq!(err.r2_code(), Some(10012));
        }
    }
    // The staged bodies of refused puts left no file.
    env.await_blob_files(BUCKET, accepted.len()).await;
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksums_hold_md5_and_the_one_supplied_in_lowercase() {
    let env = Env::new().await;
    for size in SIZES {
        let bytes = body(size, 4);
        let digests: [(ChecksumAlgorithm, Vec<u8>); 5] = [
            (ChecksumAlgorithm::Md5, md5_bin(&bytes)),
            (ChecksumAlgorithm::Sha1, sha1::Sha1::digest(&bytes).to_vec()),
            (ChecksumAlgorithm::Sha256, sha2::Sha256::digest(&bytes).to_vec()),
            (ChecksumAlgorithm::Sha384, sha2::Sha384::digest(&bytes).to_vec()),
            (ChecksumAlgorithm::Sha512, sha2::Sha512::digest(&bytes).to_vec()),
        ];
        for (alg, digest) in digests {
            // Given in upper case, as a client may.
            let given = alg.parse_hex(&to_hex(&digest).to_uppercase()).unwrap();
            assert_eq!(given, digest);
            let key = format!("{}-{size}", alg.key());
            let options = PutOptions { checksums: vec![(alg, given)], ..Default::default() };
            let put = env.put_with(&key, &bytes, options).await.unwrap();
            let expected =
                BTreeMap::from([("md5".to_owned(), md5_hex(&bytes)), (alg.key().to_owned(), to_hex(&digest))]);
            assert_eq!(put.checksums, expected, "{alg:?}");
            assert_eq!(put.checksum(alg), Some(digest.clone()));
            assert_eq!(env.svc.head(BUCKET, &key).await.unwrap().unwrap().checksums, expected);
            assert_eq!(env.get_bytes(&key).await.unwrap(), bytes);
        }
    }
    let err = ChecksumAlgorithm::Md5.parse_hex("abc").unwrap_err();
    assert_eq!(err.to_string(), "MD5 is 32 hex characters, not 3");
    let err = ChecksumAlgorithm::Sha256.parse_hex(&"g".repeat(64)).unwrap_err();
    assert_eq!((err.code(), err.r2_code()), ("bucket.invalid_digest", None));
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_checksum_is_a_bad_digest_and_stores_nothing() {
    let env = Env::new().await;
    for size in SIZES {
        let bytes = body(size, 5);
        for (alg, actual) in [
            (ChecksumAlgorithm::Md5, md5_bin(&bytes)),
            (ChecksumAlgorithm::Sha256, sha2::Sha256::digest(&bytes).to_vec()),
        ] {
            let wrong = vec![0xab; alg.digest_len()];
            let key = format!("bad-{}-{size}", alg.key());
            let options = PutOptions { checksums: vec![(alg, wrong.clone())], ..Default::default() };
            let err = expect_err(
                env.svc.put_bytes(BUCKET, &key, bytes.clone(), options).await,
                Some(10037),
                "bucket.bad_digest",
                "",
            );
            let name = alg.display_name();
            assert_eq!(
                err.to_string(),
                format!(
                    "The {name} checksum you specified did not match what we received.\n\
                     You provided a {name} checksum with value: {}\nActual {name} was: {}",
                    to_hex(&wrong),
                    to_hex(&actual)
                )
            );
            assert_eq!(env.svc.head(BUCKET, &key).await.unwrap(), None);
        }
        env.await_blob_files(BUCKET, 0).await;

        // Over an existing object, the previous one stays.
        let key = format!("kept-{size}");
        let before = env.put(&key, &bytes).await;
        let options = PutOptions { checksums: vec![(ChecksumAlgorithm::Md5, vec![0; 16])], ..Default::default() };
        let err = env.svc.put_bytes(BUCKET, &key, body(size, 6), options).await.unwrap_err();
        assert_eq!(err.r2_code(), Some(10037));
        assert_eq!(env.svc.head(BUCKET, &key).await.unwrap().unwrap(), before);
        assert_eq!(env.get_bytes(&key).await.unwrap(), bytes);
        env.svc.delete(BUCKET, vec![key]).await.unwrap();
    }
    env.await_blob_files(BUCKET, 0).await;
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overwrite_replaces_the_object_and_removes_the_old_file() {
    let env = Env::new().await;
    let v1 = body(BIG, 1);
    let first = env.put("k", &v1).await;
    env.await_blob_files(BUCKET, 1).await;
    let file_of_v1 = env.blob_files(BUCKET).await;

    let v2 = body(BIG + 10, 2);
    let second = env.put("k", &v2).await;
    assert_ne!(first.version, second.version);
    assert_eq!(env.svc.head(BUCKET, "k").await.unwrap().unwrap(), second);
    assert_eq!(env.get_bytes("k").await.unwrap(), v2);
    env.await_blob_files(BUCKET, 1).await;
    assert_ne!(env.blob_files(BUCKET).await, file_of_v1, "the old body's file is gone");

    // A small body replaces the file with an inline body.
    let v3 = body(TINY, 3);
    env.put("k", &v3).await;
    assert_eq!(env.get_bytes("k").await.unwrap(), v3);
    env.await_blob_files(BUCKET, 0).await;

    // And back to a file.
    let v4 = body(BIG, 4);
    env.put("k", &v4).await;
    assert_eq!(env.get_bytes("k").await.unwrap(), v4);
    env.await_blob_files(BUCKET, 1).await;

    env.svc.delete(BUCKET, vec!["k".into()]).await.unwrap();
    env.await_blob_files(BUCKET, 0).await;
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overwritten_multipart_object_leaves_no_file() {
    let env = Env::new().await;
    let upload = env.svc.create_multipart(BUCKET, "mp", MultipartOptions::default()).await.unwrap();
    let mut parts = Vec::new();
    for n in 1..=2u8 {
        let staged = env.svc.stage_bytes(BUCKET, body(60, n), &[]).await.unwrap();
        let part =
            env.svc.upload_part(BUCKET, "mp", &upload.upload_id, i64::from(n), staged, Vec::new()).await.unwrap();
        parts.push(cairn_bucket::CompletedPart { part_number: part.part_number, etag: part.etag });
    }
    env.svc.complete_multipart(BUCKET, "mp", &upload.upload_id, parts, None).await.unwrap().unwrap();
    env.await_blob_files(BUCKET, 1).await;
    env.put("mp", &body(TINY, 0)).await;
    env.await_blob_files(BUCKET, 0).await;
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_overwrites_leave_one_object_and_one_file() {
    let env = Env::new().await;
    let bodies: Vec<Vec<u8>> = (0..20).map(|i| body(BIG + i, i as u8)).collect();
    let puts = bodies.iter().map(|b| env.svc.put_bytes(BUCKET, "hot", b.clone(), PutOptions::default()));
    let results = futures_util::future::join_all(puts).await;
    assert!(results.into_iter().all(|r| r.unwrap().is_some()));
    let head = env.svc.head(BUCKET, "hot").await.unwrap().unwrap();
    let read = env.get_bytes("hot").await.unwrap();
    assert!(bodies.contains(&read));
    assert_eq!((head.etag, head.size), (md5_hex(&read), read.len() as u64));
    env.await_blob_files(BUCKET, 1).await;
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_being_read_is_not_cut_short_by_an_overwrite() {
    let env = Env::new().await;
    let old = body(3 * 1024 * 1024 + 1, 1);
    env.put("k", &old).await;
    let outcome = env.svc.get(BUCKET, "k", GetOptions::default()).await.unwrap().unwrap();
    let cairn_bucket::GetOutcome::Body(reading) = outcome else { panic!("no condition was given") };
    // Replaced, and the old file removed, while the body is being read.
    env.put("k", &body(BIG, 2)).await;
    env.await_blob_files(BUCKET, 1).await;
    env.svc.delete(BUCKET, vec!["k".into()]).await.unwrap();
    env.await_blob_files(BUCKET, 0).await;
    assert!(reading.body.collect().await.unwrap() == old);
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_class_defaults_to_standard_and_can_be_set() {
    let env = Env::new().await;
    let options = PutOptions { storage_class: Some("InfrequentAccess".into()), ..Default::default() };
    let o = env.put_with("ia", b"x", options).await.unwrap();
    assert_eq!(o.storage_class, "InfrequentAccess");
    assert_eq!(env.svc.head(BUCKET, "ia").await.unwrap().unwrap().storage_class, "InfrequentAccess");
    assert_eq!(env.put("std", b"x").await.storage_class, "Standard");
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_staged_for_another_bucket_is_refused() {
    let env = Env::new().await;
    env.svc.create_bucket("other").await.unwrap();
    for size in SIZES {
        let staged = env.svc.stage_bytes("other", body(size, 1), &[]).await.unwrap();
        let err = env.svc.put(BUCKET, "k", staged, PutOptions::default()).await.unwrap_err();
        assert_eq!((err.code(), err.r2_code()), ("bucket.invalid_metadata", Some(10029)));
        assert_eq!(env.svc.head(BUCKET, "k").await.unwrap(), None);
        assert_eq!(env.svc.head("other", "k").await.unwrap(), None);
    }
    env.await_blob_files("other", 0).await;
    env.await_blob_files(BUCKET, 0).await;
    env.close();
}
