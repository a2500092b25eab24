//! Conditional get and put (`onlyIf`, spec 9.5), evaluated against objects uploaded at a known
//! time of the manual clock.

use cairn_bucket::{Conditions, EtagMatcher, Evaluation, GetOptions, GetOutcome, Object, PutOptions};

use crate::{BUCKET, Env, SIZES, T0_MS, body, expect_err};

/// `T0_MS` truncated to the second.
const T0_SECOND_MS: i64 = T0_MS / 1000 * 1000;

fn strong(e: &str) -> Option<Vec<EtagMatcher>> {
    Some(vec![EtagMatcher::Strong(e.to_owned())])
}

fn weak(e: &str) -> Option<Vec<EtagMatcher>> {
    Some(vec![EtagMatcher::Weak(e.to_owned())])
}

fn wildcard() -> Option<Vec<EtagMatcher>> {
    Some(vec![EtagMatcher::Wildcard])
}

fn eval(if_match: bool, if_none_match: bool, if_modified_since: bool, if_unmodified_since: bool) -> Evaluation {
    Evaluation { if_match, if_none_match, if_modified_since, if_unmodified_since }
}

const PASSED: Evaluation =
    Evaluation { if_match: true, if_none_match: true, if_modified_since: true, if_unmodified_since: true };

/// Gets `key` under `c`: `Ok(bytes)` if the body came, `Err(evaluation)` if a condition failed
/// (then the object without a body came, equal to `object`).
async fn get_if(env: &Env, key: &str, object: &Object, c: Conditions) -> Result<Vec<u8>, Evaluation> {
    let options = GetOptions { only_if: Some(c.clone()), ..Default::default() };
    let outcome = env.svc.get(BUCKET, key, options).await.unwrap().expect("the object exists");
    assert_eq!(outcome.object(), object);
    match outcome {
        GetOutcome::Body(b) => {
            assert_eq!(c.evaluate(Some((object.etag.as_str(), object.uploaded_ms))), PASSED);
            Ok(b.body.collect().await.unwrap())
        }
        GetOutcome::ConditionFailed(o, e) => {
            assert_eq!(&o, object);
            assert!(GetOutcome::ConditionFailed(o, e).into_body().is_none());
            Err(e)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_returns_the_object_without_a_body_when_a_condition_fails() {
    let env = Env::new().await;
    for size in SIZES {
        let key = format!("k{size}");
        let bytes = body(size, 3);
        let o = env.put(&key, &bytes).await;
        let e = o.etag.clone();
        let c =
            |etag_matches, etag_does_not_match| Conditions { etag_matches, etag_does_not_match, ..Default::default() };

        // If-Match: strong comparison; a weak etag never matches; `*` matches.
        assert_eq!(get_if(&env, &key, &o, c(strong(&e), None)).await, Ok(bytes.clone()));
        assert_eq!(get_if(&env, &key, &o, c(strong("nope"), None)).await, Err(eval(false, true, true, true)));
        assert_eq!(get_if(&env, &key, &o, c(weak(&e), None)).await, Err(eval(false, true, true, true)));
        assert_eq!(get_if(&env, &key, &o, c(wildcard(), None)).await, Ok(bytes.clone()));
        let list = Some(vec![EtagMatcher::Strong("x".into()), EtagMatcher::Strong(e.clone())]);
        assert_eq!(get_if(&env, &key, &o, c(list, None)).await, Ok(bytes.clone()));

        // If-None-Match: weak comparison, so weak and strong etags both count; `*` fails.
        let e_none = get_if(&env, &key, &o, c(None, strong(&e))).await.unwrap_err();
        // Not modified (304) rather than precondition failed (412).
        assert!(e_none.not_modified());
        assert_eq!(e_none, eval(true, false, true, true));
        assert_eq!(get_if(&env, &key, &o, c(None, weak(&e))).await, Err(eval(true, false, true, true)));
        assert_eq!(get_if(&env, &key, &o, c(None, wildcard())).await, Err(eval(true, false, true, true)));
        assert_eq!(get_if(&env, &key, &o, c(None, strong("other"))).await, Ok(bytes.clone()));
        assert_eq!(get_if(&env, &key, &o, c(None, weak("other"))).await, Ok(bytes.clone()));

        // Upload times, strictly.
        let dates = |after: Option<i64>, before: Option<i64>| Conditions {
            uploaded_after: after,
            uploaded_before: before,
            ..Default::default()
        };
        assert_eq!(get_if(&env, &key, &o, dates(Some(T0_MS - 1), None)).await, Ok(bytes.clone()));
        assert_eq!(get_if(&env, &key, &o, dates(Some(T0_MS), None)).await, Err(eval(true, true, false, true)));
        assert_eq!(get_if(&env, &key, &o, dates(None, Some(T0_MS + 1))).await, Ok(bytes.clone()));
        let failed = get_if(&env, &key, &o, dates(None, Some(T0_MS))).await.unwrap_err();
        assert_eq!(failed, eval(true, true, true, false));
        assert!(!failed.not_modified(), "If-Unmodified-Since failing is a 412");
        assert_eq!(get_if(&env, &key, &o, dates(Some(T0_MS - 1), Some(T0_MS + 1))).await, Ok(bytes.clone()));
    }
    // A get of a missing key is `None` whatever the condition.
    for c in [
        Conditions { etag_matches: strong("x"), ..Default::default() },
        Conditions { uploaded_after: Some(0), ..Default::default() },
        Conditions { etag_does_not_match: wildcard(), ..Default::default() },
    ] {
        let options = GetOptions { only_if: Some(c), ..Default::default() };
        assert!(env.svc.get(BUCKET, "missing", options).await.unwrap().is_none());
    }
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_results_take_precedence_over_dates() {
    let env = Env::new().await;
    let o = env.put("k", b"precedence").await;
    let e = o.etag.clone();
    let long_ago = T0_MS - 10_000_000;
    let far_ahead = T0_MS + 10_000_000;
    let bytes = Ok(b"precedence".to_vec());
    // If-Match holding wins over If-Unmodified-Since failing.
    let c = Conditions { etag_matches: strong(&e), uploaded_before: Some(long_ago), ..Default::default() };
    assert_eq!(get_if(&env, "k", &o, c).await, bytes);
    // If-None-Match holding wins over If-Modified-Since failing.
    let c = Conditions { etag_does_not_match: strong("other"), uploaded_after: Some(far_ahead), ..Default::default() };
    assert_eq!(get_if(&env, "k", &o, c).await, bytes);
    // But not the other way round: a failing etag condition fails whatever the dates.
    let c = Conditions { etag_matches: strong("other"), uploaded_before: Some(far_ahead), ..Default::default() };
    assert_eq!(get_if(&env, "k", &o, c).await, Err(eval(false, true, true, true)));
    let c = Conditions { etag_does_not_match: strong(&e), uploaded_after: Some(long_ago), ..Default::default() };
    assert_eq!(get_if(&env, "k", &o, c).await, Err(eval(true, false, true, true)));
    // If-Match failing makes If-Unmodified-Since fall back to the date, which fails too.
    let c = Conditions { etag_matches: strong("other"), uploaded_before: Some(long_ago), ..Default::default() };
    assert_eq!(get_if(&env, "k", &o, c).await, Err(eval(false, true, true, false)));
    // If-None-Match failing leaves If-Modified-Since to the date.
    let c = Conditions { etag_does_not_match: strong(&e), uploaded_after: Some(far_ahead), ..Default::default() };
    assert_eq!(get_if(&env, "k", &o, c).await, Err(eval(true, false, false, true)));
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seconds_granularity_truncates_upload_times() {
    let env = Env::new().await;
    // Uploaded at T0 = ...000.250 s.
    let o = env.put("k", b"seconds").await;
    assert_eq!(o.uploaded_ms, T0_MS);
    let ok = Ok(b"seconds".to_vec());
    let after = |ms: i64, seconds_granularity| Conditions {
        uploaded_after: Some(ms),
        seconds_granularity,
        ..Default::default()
    };
    // 150 ms into the same second: after it in milliseconds, not in seconds.
    assert_eq!(get_if(&env, "k", &o, after(T0_MS - 100, false)).await, ok);
    assert_eq!(get_if(&env, "k", &o, after(T0_MS - 100, true)).await, Err(eval(true, true, false, true)));
    assert_eq!(get_if(&env, "k", &o, after(T0_SECOND_MS - 1, true)).await, ok);
    assert_eq!(get_if(&env, "k", &o, after(T0_SECOND_MS, true)).await, Err(eval(true, true, false, true)));

    let before = |ms: i64, seconds_granularity| Conditions {
        uploaded_before: Some(ms),
        seconds_granularity,
        ..Default::default()
    };
    // The next second: before it either way.
    assert_eq!(get_if(&env, "k", &o, before(T0_SECOND_MS + 1000, true)).await, ok);
    assert_eq!(get_if(&env, "k", &o, before(T0_SECOND_MS + 1000, false)).await, ok);
    // Later in the same second: before it in milliseconds; in seconds miniflare truncates both
    // sides (`lastModified < maybeTruncate(uploadedBefore)`), so not before.
    assert_eq!(get_if(&env, "k", &o, before(T0_MS + 500, false)).await, ok);
    assert_eq!(get_if(&env, "k", &o, before(T0_MS + 500, true)).await, Err(eval(true, true, true, false)));

    // HTTP headers always compare in seconds.
    let headers = |ims: Option<i64>, ius: Option<i64>| Conditions::from_headers(None, None, ims, ius).unwrap();
    assert!(headers(None, None).seconds_granularity);
    assert_eq!(get_if(&env, "k", &o, headers(Some(T0_SECOND_MS), None)).await, Err(eval(true, true, false, true)));
    assert_eq!(get_if(&env, "k", &o, headers(Some(T0_SECOND_MS - 1000), None)).await, ok);
    assert_eq!(get_if(&env, "k", &o, headers(None, Some(T0_SECOND_MS + 1000))).await, ok);
    assert_eq!(get_if(&env, "k", &o, headers(None, Some(T0_SECOND_MS))).await, Err(eval(true, true, true, false)));

    // A later upload, one clock second on, is modified since the first one's second.
    env.clock.advance(1000);
    let o2 = env.put("k", b"seconds").await;
    assert_eq!(get_if(&env, "k", &o2, headers(Some(T0_SECOND_MS), None)).await, ok);
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_headers_parse_as_rfc_7232_lists() {
    let env = Env::new().await;
    let o = env.put("k", b"headers").await;
    let e = o.etag.clone();
    let ok = Ok(b"headers".to_vec());
    let h = |m: Option<&str>, n: Option<&str>| Conditions::from_headers(m, n, None, None).unwrap();
    let quoted = format!("\"{e}\"");
    assert_eq!(get_if(&env, "k", &o, h(Some(&quoted), None)).await, ok);
    assert_eq!(get_if(&env, "k", &o, h(Some(&format!("\"a\", {quoted}")), None)).await, ok);
    assert_eq!(get_if(&env, "k", &o, h(Some("*"), None)).await, ok);
    // A weak etag never satisfies If-Match.
    assert_eq!(get_if(&env, "k", &o, h(Some(&format!("W/{quoted}")), None)).await, Err(eval(false, true, true, true)));
    // If-None-Match compares weakly.
    assert_eq!(get_if(&env, "k", &o, h(None, Some(&format!("W/{quoted}")))).await, Err(eval(true, false, true, true)));
    assert_eq!(
        get_if(&env, "k", &o, h(None, Some(&format!("\"x\", {quoted}")))).await,
        Err(eval(true, false, true, true))
    );
    assert_eq!(get_if(&env, "k", &o, h(None, Some("\"x\", W/\"y\""))).await, ok);

    for bad in ["\"unclosed", "W/unquoted", "\"a\" \"b\"", "", "a,,b"] {
        for (m, n) in [(Some(bad), None), (None, Some(bad))] {
            let err = Conditions::from_headers(m, n, None, None);
            expect_err(err, None, "bucket.invalid_etag", "Invalid ETag in if-");
        }
    }
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_whose_condition_fails_writes_nothing() {
    let env = Env::new().await;
    for size in SIZES {
        let key = format!("k{size}");
        let first = env.put(&key, &body(size, 1)).await;
        let files = env.blob_files(BUCKET).await;
        let e = first.etag.clone();
        for c in [
            Conditions { etag_matches: strong("nope"), ..Default::default() },
            Conditions { etag_matches: weak(&e), ..Default::default() },
            Conditions { etag_does_not_match: strong(&e), ..Default::default() },
            Conditions { etag_does_not_match: wildcard(), ..Default::default() },
            Conditions { uploaded_after: Some(first.uploaded_ms), ..Default::default() },
            Conditions { uploaded_before: Some(first.uploaded_ms), ..Default::default() },
        ] {
            let options = PutOptions { only_if: Some(c.clone()), ..Default::default() };
            assert_eq!(env.put_with(&key, &body(size, 2), options).await, None, "{c:?}");
            assert_eq!(env.svc.head(BUCKET, &key).await.unwrap().unwrap(), first);
            assert_eq!(env.get_bytes(&key).await.unwrap(), body(size, 1));
        }
        // The refused bodies left no file.
        env.await_blob_files(BUCKET, files.len()).await;
        assert_eq!(env.blob_files(BUCKET).await, files);

        // A condition that holds writes.
        env.clock.advance(10);
        let options = PutOptions {
            only_if: Some(Conditions { etag_matches: strong(&e), ..Default::default() }),
            ..Default::default()
        };
        let second = env.put_with(&key, &body(size, 3), options).await.unwrap();
        assert_eq!(second.uploaded_ms, first.uploaded_ms + 10);
        assert_eq!(env.get_bytes(&key).await.unwrap(), body(size, 3));
        let options = PutOptions {
            only_if: Some(Conditions { uploaded_after: Some(first.uploaded_ms), ..Default::default() }),
            ..Default::default()
        };
        env.put_with(&key, &body(size, 4), options).await.unwrap();
        assert_eq!(env.get_bytes(&key).await.unwrap(), body(size, 4));
    }
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_on_a_missing_key_pass_unless_they_need_an_object() {
    let env = Env::new().await;
    for size in SIZES {
        // etagMatches or uploadedAfter need an object: the put returns `None`.
        for (i, c) in [
            Conditions { etag_matches: strong("x"), ..Default::default() },
            Conditions { etag_matches: wildcard(), ..Default::default() },
            Conditions { uploaded_after: Some(0), ..Default::default() },
            Conditions { etag_does_not_match: strong("x"), uploaded_after: Some(0), ..Default::default() },
        ]
        .into_iter()
        .enumerate()
        {
            let key = format!("refused-{size}-{i}");
            let options = PutOptions { only_if: Some(c), ..Default::default() };
            assert_eq!(env.put_with(&key, &body(size, 0), options).await, None);
            assert_eq!(env.svc.head(BUCKET, &key).await.unwrap(), None);
        }
        env.await_blob_files(BUCKET, 0).await;
        // The others pass.
        for (i, c) in [
            Conditions { etag_does_not_match: strong("x"), ..Default::default() },
            Conditions { uploaded_before: Some(0), ..Default::default() },
            Conditions { etag_does_not_match: wildcard(), uploaded_before: Some(0), ..Default::default() },
            Conditions::default(),
        ]
        .into_iter()
        .enumerate()
        {
            let key = format!("written-{size}-{i}");
            let options = PutOptions { only_if: Some(c), ..Default::default() };
            assert!(env.put_with(&key, &body(size, 0), options).await.is_some());
            assert_eq!(env.get_bytes(&key).await.unwrap(), body(size, 0));
        }
        // If-None-Match: * creates only: a second put is refused.
        let key = format!("create-only-{size}");
        let only_new = || PutOptions {
            only_if: Some(Conditions { etag_does_not_match: wildcard(), ..Default::default() }),
            ..Default::default()
        };
        let created = env.put_with(&key, &body(size, 5), only_new()).await.unwrap();
        assert_eq!(env.put_with(&key, &body(size, 6), only_new()).await, None);
        assert_eq!(env.svc.head(BUCKET, &key).await.unwrap().unwrap(), created);
        env.svc.delete(BUCKET, vec![key]).await.unwrap();
    }
    env.close();
}
