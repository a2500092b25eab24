//! Multipart uploads (spec 9.7), with one deliberate deviation: a part's etag is the hex MD5 of
//! the part rather than random.

use std::collections::BTreeMap;

use base64::Engine as _;
use cairn_bucket::{
    BucketLimits, CompletedPart, Conditions, Error, EtagMatcher, GetOptions, HttpMetadata, MultipartOptions,
    MultipartUpload, UploadedPart,
};

use crate::{BIG, BUCKET, Env, T0_MS, body, expect_err, is_hex32, md5_bin, md5_hex};

const NO_SUCH_UPLOAD: &str = "The specified multipart upload does not exist.";
const INTERNAL: &str = "We encountered an internal error. Please try again.";
const BAD_UPLOAD: &str = "There was a problem with the multipart upload.";
const TOO_SMALL: &str = "Your proposed upload is smaller than the minimum allowed object size.";
const NO_PART: &str = "One or more of the specified parts could not be found.";

async fn create(env: &Env, key: &str) -> MultipartUpload {
    env.svc.create_multipart(BUCKET, key, MultipartOptions::default()).await.expect("create an upload")
}

async fn upload(env: &Env, key: &str, upload_id: &str, n: i64, bytes: &[u8]) -> cairn_bucket::Result<UploadedPart> {
    let staged = env.svc.stage_bytes(BUCKET, bytes.to_vec(), &[]).await?;
    env.svc.upload_part(BUCKET, key, upload_id, n, staged, Vec::new()).await
}

fn completed(part: &UploadedPart) -> CompletedPart {
    CompletedPart { part_number: part.part_number, etag: part.etag.clone() }
}

/// R2's multipart etag of parts (in part order).
fn multipart_etag(parts: &[&[u8]]) -> String {
    let md5s: Vec<u8> = parts.iter().flat_map(|p| md5_bin(p)).collect();
    format!("{}-{}", md5_hex(&md5s), parts.len())
}

async fn complete(
    env: &Env,
    key: &str,
    upload_id: &str,
    parts: Vec<CompletedPart>,
) -> cairn_bucket::Result<Option<cairn_bucket::Object>> {
    env.svc.complete_multipart(BUCKET, key, upload_id, parts, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_id_is_base64url_of_128_random_bytes() {
    let env = Env::new().await;
    let a = create(&env, "k").await;
    let b = create(&env, "k").await;
    assert_ne!(a.upload_id, b.upload_id);
    for u in [&a, &b] {
        assert_eq!(u.upload_id.len(), 171);
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&u.upload_id).unwrap();
        assert_eq!(bytes.len(), 128);
        assert_eq!((u.key.as_str(), u.created_ms, u.storage_class.as_str()), ("k", T0_MS, "Standard"));
    }
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_numbers_run_from_1_to_10000() {
    let env = Env::new().await;
    let u = create(&env, "k").await;
    for n in [0, -1, 10_001, i64::MAX] {
        let err = expect_err(upload(&env, "k", &u.upload_id, n, b"x").await, None, "bucket.invalid_part_number", "");
        assert_eq!(
            err.to_string(),
            format!("Part number must be between 1 and 10000 (inclusive). Actual value was: {n}")
        );
    }
    for n in [1, 10_000] {
        let bytes = body(60, n as u8);
        let part = upload(&env, "k", &u.upload_id, n, &bytes).await.unwrap();
        assert_eq!(part.part_number, n as u32);
        // The deliberate deviation: the hex MD5 of the part.
        assert_eq!(part.etag, md5_hex(&bytes));
        assert_eq!(part.size, 60);
    }
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reuploaded_part_replaces_the_earlier_one() {
    let env = Env::new().await;
    for size in [5usize, 60] {
        let key = format!("k{size}");
        let u = create(&env, &key).await;
        let old = upload(&env, &key, &u.upload_id, 1, &body(size, 1)).await.unwrap();
        let new = upload(&env, &key, &u.upload_id, 1, &body(size, 2)).await.unwrap();
        assert_ne!(old.etag, new.etag);
        let listed = env.svc.list_parts(BUCKET, &key, &u.upload_id, None, 10).await.unwrap();
        assert_eq!(listed.parts.iter().map(|p| p.part.clone()).collect::<Vec<_>>(), std::slice::from_ref(&new));
        let err = expect_err(
            complete(&env, &key, &u.upload_id, vec![completed(&old)]).await,
            Some(10025),
            "bucket.invalid_part",
            NO_PART,
        );
        assert!(matches!(err, Error::InvalidPart { part_number: 1 }), "{err:?}");
        // The failure left the upload open.
        let object = complete(&env, &key, &u.upload_id, vec![completed(&new)]).await.unwrap().unwrap();
        assert_eq!(env.get_bytes(&key).await.unwrap(), body(size, 2));
        assert_eq!(object.etag, multipart_etag(&[&body(size, 2)]));
    }
    // The replaced part's file is gone; only the object's remains.
    env.await_blob_files(BUCKET, 1).await;
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_must_be_the_latest_of_this_upload() {
    let env = Env::new().await;
    let a = create(&env, "k").await;
    let b = create(&env, "k").await;
    let a1 = upload(&env, "k", &a.upload_id, 1, &body(60, 1)).await.unwrap();
    let b1 = upload(&env, "k", &b.upload_id, 1, &body(60, 2)).await.unwrap();
    let b2 = upload(&env, "k", &b.upload_id, 2, &body(60, 3)).await.unwrap();
    // Another upload's part, a number never uploaded here, an etag that is not the part's.
    for parts in [
        vec![completed(&b1)],
        vec![completed(&a1), completed(&b2)],
        vec![CompletedPart { part_number: 1, etag: "0".repeat(32) }],
    ] {
        expect_err(complete(&env, "k", &a.upload_id, parts).await, Some(10025), "bucket.invalid_part", NO_PART);
    }
    // Quoted etags are accepted.
    let quoted = CompletedPart { part_number: 1, etag: format!("\"{}\"", a1.etag) };
    let object = complete(&env, "k", &a.upload_id, vec![quoted]).await.unwrap().unwrap();
    assert_eq!(object.etag, multipart_etag(&[&body(60, 1)]));
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploading_to_an_unknown_or_finished_upload_fails() {
    let env = Env::new().await;
    let never = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 128]);
    let aborted = create(&env, "k").await;
    env.svc.abort_multipart(BUCKET, "k", &aborted.upload_id).await.unwrap();
    let done = create(&env, "k").await;
    let p = upload(&env, "k", &done.upload_id, 1, b"last").await.unwrap();
    complete(&env, "k", &done.upload_id, vec![completed(&p)]).await.unwrap().unwrap();
    let open = create(&env, "k").await;
    for size in [5usize, 60] {
        for (key, id) in [
            ("k", never.as_str()),
            ("k", "bad"),
            ("k", aborted.upload_id.as_str()),
            ("k", done.upload_id.as_str()),
            ("other-key", open.upload_id.as_str()),
        ] {
            let err = expect_err(
                upload(&env, key, id, 1, &body(size, 0)).await,
                Some(10024),
                "bucket.no_such_upload",
                NO_SUCH_UPLOAD,
            );
            assert!(matches!(err, Error::NoSuchUpload { .. }));
            expect_err(env.svc.list_parts(BUCKET, key, id, None, 10).await, Some(10024), "bucket.no_such_upload", "");
        }
    }
    // The refused parts left no file: only the completed object's... which is inline.
    env.await_blob_files(BUCKET, 0).await;
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_assembles_the_parts_with_r2s_etag() {
    let env = Env::new().await;
    let http = HttpMetadata { content_type: Some("video/mp4".into()), cache_expiry: Some(5), ..Default::default() };
    let custom = BTreeMap::from([("a".to_owned(), "b".to_owned())]);
    let options =
        MultipartOptions { http_metadata: http.clone(), custom_metadata: custom.clone(), storage_class: None };
    let u = env.svc.create_multipart(BUCKET, "video", options).await.unwrap();
    let bodies = [body(60, 1), body(60, 2), body(10, 3)];
    let mut parts = Vec::new();
    for (i, b) in bodies.iter().enumerate() {
        parts.push(completed(&upload(&env, "video", &u.upload_id, i as i64 + 1, b).await.unwrap()));
    }
    // In progress: invisible.
    assert_eq!(env.svc.head(BUCKET, "video").await.unwrap(), None);
    assert!(env.svc.get(BUCKET, "video", GetOptions::default()).await.unwrap().is_none());
    assert_eq!(env.svc.list(BUCKET, Default::default()).await.unwrap().objects, []);

    env.clock.advance(42);
    let object = complete(&env, "video", &u.upload_id, parts).await.unwrap().unwrap();
    let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
    assert_eq!(object.etag, multipart_etag(&refs));
    assert_eq!(object.http_etag(), format!("\"{}\"", multipart_etag(&refs)));
    assert_eq!(object.size, 130);
    assert_eq!(object.part_count, Some(3));
    assert_eq!(object.checksums, BTreeMap::new());
    assert_eq!((object.http_metadata.clone(), object.custom_metadata.clone()), (http, custom));
    assert_eq!((object.uploaded_ms, object.storage_class.as_str()), (T0_MS + 42, "Standard"));
    assert!(is_hex32(&object.version));
    assert_eq!(env.svc.head(BUCKET, "video").await.unwrap().unwrap(), object);
    assert_eq!(env.get_bytes("video").await.unwrap(), bodies.concat());
    // Parts are gone with the upload; the object has one file.
    env.await_blob_files(BUCKET, 1).await;
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_without_parts_is_an_empty_object() {
    let env = Env::new().await;
    let options = MultipartOptions { storage_class: Some("InfrequentAccess".into()), ..Default::default() };
    let u = env.svc.create_multipart(BUCKET, "empty", options).await.unwrap();
    assert_eq!(u.storage_class, "InfrequentAccess");
    let object = complete(&env, "empty", &u.upload_id, Vec::new()).await.unwrap().unwrap();
    assert_eq!((object.size, object.etag.as_str()), (0, "d41d8cd98f00b204e9800998ecf8427e-0"));
    assert_eq!(object.storage_class, "InfrequentAccess");
    assert_eq!(object.part_count, Some(0));
    assert_eq!(env.get_bytes("empty").await.unwrap(), Vec::<u8>::new());
    env.close();
}

/// Uploads parts of these (number, size) and completes with them listed in that order.
async fn complete_sized(
    env: &Env,
    key: &str,
    parts: &[(i64, usize)],
) -> cairn_bucket::Result<Option<cairn_bucket::Object>> {
    let u = create(env, key).await;
    let mut listed = Vec::new();
    for &(n, size) in parts {
        listed.push(completed(&upload(env, key, &u.upload_id, n, &body(size, n as u8)).await.unwrap()));
    }
    complete(env, key, &u.upload_id, listed).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_sizes_follow_r2s_rules() {
    let env = Env::new().await;
    // A part other than the last (in argument order) under the minimum: 10011.
    for parts in [&[(1, 10), (2, 60)][..], &[(1, 60), (2, 49), (3, 10)], &[(2, 10), (1, 60)]] {
        let err = expect_err(complete_sized(&env, "k", parts).await, Some(10011), "bucket.entity_too_small", TOO_SMALL);
        assert!(matches!(err, Error::EntityTooSmall { min: 50, .. }), "{err:?}");
    }
    // By part number, parts but the last of unequal sizes, or a last part larger: 10048.
    for parts in
        [&[(1, 60), (2, 70), (3, 10)][..], &[(1, 60), (2, 70)], &[(1, 50), (2, 51)], &[(1, 70), (3, 60), (2, 60)]]
    {
        expect_err(complete_sized(&env, "k", parts).await, Some(10048), "bucket.invalid_part_sizes", BAD_UPLOAD);
    }
    // Allowed: equal parts and a smaller or equal last one, gaps, any argument order, one part
    // of any size, parts exactly the minimum.
    for (i, parts) in [
        &[(1, 60), (2, 60), (3, 60)][..],
        &[(1, 60), (2, 60), (3, 1)],
        &[(1, 50), (2, 50)],
        &[(1, 60), (3, 60), (7, 10)],
        &[(2, 60), (1, 60), (3, 20)],
        &[(1, 3)],
        &[(9, 500)],
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("ok{i}");
        let object = complete_sized(&env, &key, parts).await.unwrap().unwrap();
        let mut sorted = parts.to_vec();
        sorted.sort();
        let bodies: Vec<Vec<u8>> = sorted.iter().map(|&(n, size)| body(size, n as u8)).collect();
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        assert_eq!(object.etag, multipart_etag(&refs), "{parts:?}");
        assert_eq!(env.get_bytes(&key).await.unwrap(), bodies.concat(), "{parts:?}");
    }
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_part_found_in_part_number_order_is_a_bad_upload() {
    let env = Env::new().await;
    // In argument order only part 2 precedes the last and it is large enough; by part number,
    // part 1 (10 bytes) is not last: miniflare throws BadUpload (10048) in that pass.
    expect_err(
        complete_sized(&env, "k", &[(2, 60), (1, 10)]).await,
        Some(10048),
        "bucket.invalid_part_sizes",
        BAD_UPLOAD,
    );
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_listed_twice_is_an_internal_error() {
    let env = Env::new().await;
    let u = create(&env, "k").await;
    let p1 = upload(&env, "k", &u.upload_id, 1, &body(60, 1)).await.unwrap();
    let p2 = upload(&env, "k", &u.upload_id, 2, &body(60, 2)).await.unwrap();
    let err = expect_err(
        complete(&env, "k", &u.upload_id, vec![completed(&p1), completed(&p2), completed(&p1)]).await,
        Some(10001),
        "bucket.duplicate_part",
        INTERNAL,
    );
    assert!(matches!(err, Error::DuplicatePart { part_number: 1 }), "{err:?}");
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_a_finished_unknown_or_foreign_upload_fails() {
    let env = Env::new().await;
    let u = create(&env, "k").await;
    let p = upload(&env, "k", &u.upload_id, 1, &body(60, 1)).await.unwrap();
    // Never created, or another key's: 10001.
    let never = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([9u8; 128]);
    for (key, id) in [("k", never.as_str()), ("other", u.upload_id.as_str())] {
        let err = expect_err(complete(&env, key, id, Vec::new()).await, Some(10001), "bucket.unknown_upload", INTERNAL);
        assert!(matches!(err, Error::UnknownUpload { .. }), "{err:?}");
    }
    complete(&env, "k", &u.upload_id, vec![completed(&p)]).await.unwrap().unwrap();
    // Completed: 10024, and the object stays.
    for parts in [vec![completed(&p)], Vec::new()] {
        expect_err(
            complete(&env, "k", &u.upload_id, parts).await,
            Some(10024),
            "bucket.no_such_upload",
            NO_SUCH_UPLOAD,
        );
    }
    assert_eq!(env.get_bytes("k").await.unwrap(), body(60, 1));
    // Aborted: 10024.
    let a = create(&env, "k2").await;
    env.svc.abort_multipart(BUCKET, "k2", &a.upload_id).await.unwrap();
    expect_err(
        complete(&env, "k2", &a.upload_id, Vec::new()).await,
        Some(10024),
        "bucket.no_such_upload",
        NO_SUCH_UPLOAD,
    );
    assert_eq!(env.svc.head(BUCKET, "k2").await.unwrap(), None);
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_is_idempotent_and_removes_the_parts() {
    let env = Env::new().await;
    let u = create(&env, "k").await;
    upload(&env, "k", &u.upload_id, 1, &body(60, 1)).await.unwrap();
    upload(&env, "k", &u.upload_id, 2, &body(5, 2)).await.unwrap();
    env.await_blob_files(BUCKET, 1).await;
    env.svc.abort_multipart(BUCKET, "k", &u.upload_id).await.unwrap();
    env.svc.abort_multipart(BUCKET, "k", &u.upload_id).await.unwrap();
    env.await_blob_files(BUCKET, 0).await;
    expect_err(env.svc.list_parts(BUCKET, "k", &u.upload_id, None, 10).await, Some(10024), "bucket.no_such_upload", "");
    assert_eq!(env.svc.head(BUCKET, "k").await.unwrap(), None);

    // After complete: a no-op, the object stays readable.
    let done = create(&env, "k").await;
    let p = upload(&env, "k", &done.upload_id, 1, &body(60, 3)).await.unwrap();
    complete(&env, "k", &done.upload_id, vec![completed(&p)]).await.unwrap().unwrap();
    env.svc.abort_multipart(BUCKET, "k", &done.upload_id).await.unwrap();
    assert_eq!(env.get_bytes("k").await.unwrap(), body(60, 3));
    env.await_blob_files(BUCKET, 1).await;

    // Unknown, or another key's: 10001.
    let open = create(&env, "open").await;
    for (key, id) in [("k", "never-created"), ("not-open", open.upload_id.as_str())] {
        let err =
            expect_err(env.svc.abort_multipart(BUCKET, key, id).await, Some(10001), "bucket.unknown_upload", INTERNAL);
        assert!(matches!(err, Error::UnknownUpload { .. }));
    }
    // The other key's upload is still open.
    assert_eq!(env.svc.list_uploads(BUCKET, "open", None, 10).await.unwrap().uploads, [open]);
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_and_uploads_are_listed_in_pages() {
    let env = Env::new().await;
    let u = create(&env, "k").await;
    let mut uploaded = Vec::new();
    for n in 1..=5 {
        env.clock.advance(1);
        let size = if n % 2 == 0 { 5 } else { 60 };
        uploaded.push(upload(&env, "k", &u.upload_id, n, &body(size, n as u8)).await.unwrap());
    }
    let mut marker = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let list = env.svc.list_parts(BUCKET, "k", &u.upload_id, marker, 2).await.unwrap();
        pages += 1;
        assert!(list.parts.len() <= 2);
        for p in &list.parts {
            assert_eq!(p.uploaded_ms, T0_MS + i64::from(p.part.part_number));
        }
        seen.extend(list.parts.iter().map(|p| p.part.clone()));
        assert_eq!(list.truncated, list.next_marker.is_some());
        match list.next_marker {
            Some(m) => {
                assert_eq!(Some(m), seen.last().map(|p| p.part_number));
                marker = Some(m);
            }
            None => break,
        }
    }
    assert_eq!((seen, pages), (uploaded, 3));

    // Uploads: open ones only, by key then id, under a prefix.
    let mut open = vec![u.clone()];
    for key in ["k", "k/a", "k/b", "l"] {
        open.push(create(&env, key).await);
    }
    let finished = create(&env, "k/c").await;
    env.svc.abort_multipart(BUCKET, "k/c", &finished.upload_id).await.unwrap();
    open.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
    let under_k: Vec<MultipartUpload> = open.iter().filter(|u| u.key.starts_with('k')).cloned().collect();
    assert_eq!(under_k.len(), 4);
    let mut marker = None;
    let mut seen = Vec::new();
    loop {
        let list = env.svc.list_uploads(BUCKET, "k", marker, 3).await.unwrap();
        seen.extend(list.uploads);
        assert_eq!(list.truncated, list.next_marker.is_some());
        marker = list.next_marker;
        if marker.is_none() {
            break;
        }
    }
    assert_eq!(seen, under_k);
    assert_eq!(env.svc.list_uploads(BUCKET, "", None, 100).await.unwrap().uploads, open);
    env.close();
}

/// Completes parts of these sizes (numbered from 1) and checks the object byte for byte.
async fn assemble(env: &Env, key: &str, sizes: &[usize]) {
    let u = create(env, key).await;
    let mut parts = Vec::new();
    let mut bodies = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let b = body(size, (i * 17) as u8);
        parts.push(completed(&upload(env, key, &u.upload_id, i as i64 + 1, &b).await.unwrap()));
        bodies.push(b);
    }
    let object = complete(env, key, &u.upload_id, parts).await.unwrap().unwrap();
    let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
    assert_eq!(object.etag, multipart_etag(&refs), "{sizes:?}");
    assert_eq!(object.size, sizes.iter().sum::<usize>() as u64);
    let read = env.get_bytes(key).await.unwrap();
    assert!(read == bodies.concat(), "{sizes:?}: the body is not the parts' concatenation");
    // Ranges across part boundaries.
    let total = bodies.concat();
    if total.len() > 4 {
        let range = cairn_bucket::RangeSpec { offset: Some(1), length: Some(total.len() as u64 - 2), suffix: None };
        let options = GetOptions { range: Some(range), ..Default::default() };
        let (_, _, bytes) = env.read(BUCKET, key, options).await.unwrap().unwrap();
        assert!(bytes == total[1..total.len() - 1], "{sizes:?}: wrong range");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_is_the_concatenation_of_inline_file_and_mixed_parts() {
    // Parts of at least 4 bytes, so that inline parts (<= 16 bytes) can precede others.
    let env = Env::with_limits(BucketLimits { min_part_bytes: 4, inline_bytes: 16, ..Default::default() }).await;
    // Inline parts: inline result (13 bytes), or a file (24 bytes).
    assemble(&env, "inline-small", &[5, 5, 3]).await;
    env.await_blob_files(crate::BUCKET, 0).await;
    assemble(&env, "inline-large", &[8, 8, 8]).await;
    env.await_blob_files(crate::BUCKET, 1).await;
    // File parts, a lone file part, a lone inline part, and mixes.
    assemble(&env, "files", &[100, 100, 100]).await;
    assemble(&env, "lone-file", &[100]).await;
    assemble(&env, "lone-inline", &[7]).await;
    assemble(&env, "file-then-inline", &[100, 100, 4]).await;
    assemble(&env, "large-file", &[1024 * 1024 + 5, 1024 * 1024 + 5, 77]).await;
    // inline-large, files, lone-file, file-then-inline, large-file.
    env.await_blob_files(crate::BUCKET, 5).await;
    env.close();

    let env = Env::new().await;
    assemble(&env, "mixed", &[60, 60, 10]).await;
    assemble(&env, "files", &[60, 60, 60]).await;
    env.await_blob_files(crate::BUCKET, 2).await;
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_whose_condition_fails_leaves_the_upload_open() {
    let env = Env::new().await;
    // Files of the objects completed so far, and of the parts to complete.
    for (objects, file_parts, key, sizes) in
        [(0, 2, "mixed", &[60usize, 60, 10][..]), (1, 1, "lone", &[60][..]), (2, 0, "tiny", &[5][..])]
    {
        let u = create(&env, key).await;
        let mut parts = Vec::new();
        let mut bodies = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            let b = body(size, i as u8);
            parts.push(completed(&upload(&env, key, &u.upload_id, i as i64 + 1, &b).await.unwrap()));
            bodies.push(b);
        }
        env.await_blob_files(BUCKET, objects + file_parts).await;
        let files = env.blob_files(BUCKET).await;
        // etagMatches against a missing object fails.
        let only_if = Conditions { etag_matches: Some(vec![EtagMatcher::Wildcard]), ..Default::default() };
        let done = env.svc.complete_multipart(BUCKET, key, &u.upload_id, parts.clone(), Some(only_if)).await.unwrap();
        assert_eq!(done, None);
        assert_eq!(env.svc.head(BUCKET, key).await.unwrap(), None);
        let listed = env.svc.list_parts(BUCKET, key, &u.upload_id, None, 100).await.unwrap();
        assert_eq!(listed.parts.len(), sizes.len());
        // Any assembled file was removed; the parts' files stay.
        env.await_blob_files(BUCKET, files.len()).await;
        assert_eq!(env.blob_files(BUCKET).await, files);

        // A condition that holds completes.
        let only_if = Conditions { etag_does_not_match: Some(vec![EtagMatcher::Wildcard]), ..Default::default() };
        let object =
            env.svc.complete_multipart(BUCKET, key, &u.upload_id, parts, Some(only_if)).await.unwrap().unwrap();
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        assert_eq!(object.etag, multipart_etag(&refs));
        assert_eq!(env.get_bytes(key).await.unwrap(), bodies.concat());
    }
    env.await_blob_files(BUCKET, 2).await;
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_checksums_are_verified_and_kept() {
    let env = Env::new().await;
    let u = create(&env, "k").await;
    for (n, size) in [(1i64, 60usize), (2, 5)] {
        let bytes = body(size, n as u8);
        let alg = cairn_bucket::ChecksumAlgorithm::Sha256;
        // Wrong: BadDigest, and the part is not stored.
        let staged = env.svc.stage_bytes(BUCKET, bytes.clone(), &[alg]).await.unwrap();
        let err = expect_err(
            env.svc.upload_part(BUCKET, "k", &u.upload_id, n, staged, vec![(alg, vec![0; 32])]).await,
            Some(10037),
            "bucket.bad_digest",
            "The SHA-256 checksum you specified did not match what we received.\n",
        );
        assert!(matches!(err, Error::BadDigest { alg: "SHA-256", .. }));
        assert_eq!(env.svc.list_parts(BUCKET, "k", &u.upload_id, None, 10).await.unwrap().parts.len(), n as usize - 1);
        // Right: stored with the part.
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(&bytes).to_vec();
        let staged = env.svc.stage_bytes(BUCKET, bytes.clone(), &[alg]).await.unwrap();
        let part =
            env.svc.upload_part(BUCKET, "k", &u.upload_id, n, staged, vec![(alg, digest.clone())]).await.unwrap();
        assert_eq!(part.checksums, BTreeMap::from([("sha256".to_owned(), cairn_bucket::to_hex(&digest))]));
        let listed = env.svc.list_parts(BUCKET, "k", &u.upload_id, None, 10).await.unwrap();
        assert_eq!(listed.parts.last().unwrap().part, part);
    }
    env.await_blob_files(BUCKET, 1).await;
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_retires_unlisted_parts_and_the_replaced_object() {
    let env = Env::new().await;
    env.put("k", &body(BIG, 9)).await;
    let u = create(&env, "k").await;
    let mut parts = Vec::new();
    for n in 1..=4 {
        parts.push(completed(&upload(&env, "k", &u.upload_id, n, &body(60, n as u8)).await.unwrap()));
    }
    // The old object's file and four parts' files.
    env.await_blob_files(BUCKET, 5).await;
    parts.truncate(2);
    let object = complete(&env, "k", &u.upload_id, parts).await.unwrap().unwrap();
    assert_eq!(object.etag, multipart_etag(&[&body(60, 1), &body(60, 2)]));
    assert_eq!(env.get_bytes("k").await.unwrap(), [body(60, 1), body(60, 2)].concat());
    env.await_blob_files(BUCKET, 1).await;
    // Copies keep the multipart etag and part count.
    let copy = match env.svc.copy(BUCKET, "k", BUCKET, "copy", Default::default()).await.unwrap() {
        cairn_bucket::CopyOutcome::Copied(o) => *o,
        other => panic!("{other:?}"),
    };
    assert_eq!((copy.etag, copy.part_count, copy.checksums), (object.etag, Some(2), BTreeMap::new()));
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_checked_before_etags() {
    let env = Env::new().await;
    let u = create(&env, "k").await;
    let p1 = upload(&env, "k", &u.upload_id, 1, &body(60, 1)).await.unwrap();
    // miniflare checks every part number for duplicates first (InternalError, 10001), then
    // looks the parts up (InvalidPart, 10025).
    let unknown = CompletedPart { part_number: 2, etag: "0".repeat(32) };
    let parts = vec![unknown, completed(&p1), completed(&p1)];
    expect_err(complete(&env, "k", &u.upload_id, parts).await, Some(10001), "bucket.duplicate_part", INTERNAL);
    env.close();
}
