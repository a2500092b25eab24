//! list (spec 9.6): limits, include, prefix, start-after, cursors and delimiters.

use std::collections::BTreeMap;

use cairn_bucket::{HttpMetadata, ListOptions, ObjectList, PutOptions, decode_cursor};
use futures_util::StreamExt as _;

use crate::{BUCKET, Env, body, expect_err};

/// Lists one page, checking that `truncated` is set iff a cursor is returned.
async fn page(env: &Env, options: ListOptions) -> ObjectList {
    let list = env.svc.list(BUCKET, options).await.expect("list");
    assert_eq!(list.truncated, list.cursor.is_some(), "truncated iff a cursor: {list:?}");
    list
}

/// The keys of a page's objects.
fn keys(list: &ObjectList) -> Vec<String> {
    list.objects.iter().map(|o| o.key.clone()).collect()
}

/// Objects and rolled-up prefixes in key order, prefixes marked with a trailing `*`.
fn entries(list: &ObjectList) -> Vec<String> {
    let mut all: Vec<String> =
        keys(list).into_iter().chain(list.delimited_prefixes.iter().map(|p| format!("{p}*"))).collect();
    all.sort_by(|a, b| a.trim_end_matches('*').cmp(b.trim_end_matches('*')));
    all
}

/// Puts every key (a few bytes each), many at a time.
async fn seed(env: &Env, keys: &[String]) {
    let puts = futures_util::stream::iter(keys.iter().cloned())
        .map(|k| async move { env.svc.put_bytes(BUCKET, &k, k.as_bytes().to_vec(), PutOptions::default()).await })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    for put in puts {
        put.expect("put").expect("no condition");
    }
}

fn strings(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_page_through_every_key_once_in_order() {
    let env = Env::fast().await;
    let n: usize = 2500;
    // Written in a scrambled order.
    let all: Vec<String> = (0..n).map(|i| format!("k{:05}", (i * 7919) % n)).collect();
    seed(&env, &all).await;
    let mut sorted = all.clone();
    sorted.sort();

    // The default limit is 1000.
    for limit in [None, Some(333), Some(1000)] {
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut pages = Vec::new();
        loop {
            let list = page(&env, ListOptions { limit, cursor: cursor.clone(), ..Default::default() }).await;
            pages.push(list.objects.len());
            seen.extend(keys(&list));
            match list.cursor {
                Some(c) => {
                    assert_eq!(decode_cursor(&c).as_deref(), seen.last().map(String::as_str));
                    cursor = Some(c);
                }
                None => break,
            }
        }
        assert_eq!(seen, sorted, "limit {limit:?}");
        let per_page = limit.unwrap_or(1000) as usize;
        assert!(pages.iter().rev().skip(1).all(|&p| p == per_page), "{pages:?}");
        assert_eq!(pages.len(), n.div_ceil(per_page));
    }
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_outside_1_to_1000_are_refused() {
    let env = Env::new().await;
    seed(&env, &strings(&["a", "b", "c"])).await;
    for bad in [0, -1, 1001, i64::MIN, i64::MAX] {
        let err = expect_err(
            env.svc.list(BUCKET, ListOptions { limit: Some(bad), ..Default::default() }).await,
            Some(10022),
            "bucket.invalid_max_keys",
            "MaxKeys params must be positive integer <= 1000.",
        );
        assert!(matches!(err, cairn_bucket::Error::InvalidMaxKeys { value, max: 1000 } if value == bad), "{err:?}");
    }
    assert_eq!(keys(&page(&env, ListOptions { limit: Some(1000), ..Default::default() }).await), ["a", "b", "c"]);
    let one = page(&env, ListOptions { limit: Some(1), ..Default::default() }).await;
    assert_eq!((keys(&one), one.truncated), (strings(&["a"]), true));
    let three = page(&env, ListOptions { limit: Some(3), ..Default::default() }).await;
    assert_eq!((keys(&three), three.truncated), (strings(&["a", "b", "c"]), false));
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_comes_only_when_included_and_then_at_most_100_entries() {
    let owned = Env::fast().await;
    let env = &owned;
    let http = HttpMetadata { content_type: Some("text/x".into()), ..Default::default() };
    let custom = BTreeMap::from([("k".to_owned(), "v".to_owned())]);
    let puts = futures_util::stream::iter(0..120)
        .map(|i| {
            let options =
                PutOptions { http_metadata: http.clone(), custom_metadata: custom.clone(), ..Default::default() };
            let bytes = body(if i % 2 == 0 { 5 } else { 100 }, i as u8);
            async move { env.svc.put_bytes(BUCKET, &format!("o{i:03}"), bytes, options).await }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    assert!(puts.into_iter().all(|p| p.unwrap().is_some()));

    let plain = page(env, ListOptions::default()).await;
    assert_eq!((plain.objects.len(), plain.truncated), (120, false));
    for o in &plain.objects {
        assert_eq!((&o.http_metadata, o.custom_metadata.len()), (&HttpMetadata::default(), 0), "{}", o.key);
        assert!(o.size == 5 || o.size == 100);
        assert_eq!(o.etag, env.svc.head(BUCKET, &o.key).await.unwrap().unwrap().etag);
    }
    for (include_http, include_custom) in [(true, false), (false, true), (true, true)] {
        let options = |limit| ListOptions {
            limit,
            include_http_metadata: include_http,
            include_custom_metadata: include_custom,
            ..Default::default()
        };
        let list = page(env, options(None)).await;
        assert_eq!((list.objects.len(), list.truncated), (100, true));
        for o in &list.objects {
            let expected_http = if include_http { http.clone() } else { HttpMetadata::default() };
            assert_eq!(o.http_metadata, expected_http);
            assert_eq!(o.custom_metadata, if include_custom { custom.clone() } else { BTreeMap::new() });
        }
        assert_eq!(page(env, options(Some(500))).await.objects.len(), 100);
        assert_eq!(page(env, options(Some(50))).await.objects.len(), 50);
        // The rest comes on the next page.
        let rest = page(env, ListOptions { cursor: list.cursor.clone(), ..options(None) }).await;
        assert_eq!((rest.objects.len(), rest.truncated), (20, false));
        assert_eq!(rest.objects[0].key, "o100");
    }
    owned.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_and_start_after_select_keys() {
    let env = Env::new().await;
    seed(&env, &strings(&["a", "a/x", "ab", "abc", "abd", "b", "ba", "é", "z"])).await;
    let prefixed = |p: &str| ListOptions { prefix: Some(p.to_owned()), ..Default::default() };
    assert_eq!(keys(&page(&env, prefixed("ab")).await), ["ab", "abc", "abd"]);
    assert_eq!(keys(&page(&env, prefixed("a")).await), ["a", "a/x", "ab", "abc", "abd"]);
    assert_eq!(keys(&page(&env, prefixed("")).await).len(), 9);
    assert_eq!(keys(&page(&env, prefixed("é")).await), ["é"]);
    let none = page(&env, prefixed("zzz")).await;
    assert_eq!((none.objects.len(), none.truncated), (0, false));

    let after = |s: &str| ListOptions { start_after: Some(s.to_owned()), ..Default::default() };
    // Exclusive, whether the key exists or not; in UTF-8 byte order ("z" < "é").
    assert_eq!(keys(&page(&env, after("ab")).await), ["abc", "abd", "b", "ba", "z", "é"]);
    assert_eq!(keys(&page(&env, after("aa")).await), ["ab", "abc", "abd", "b", "ba", "z", "é"]);
    assert_eq!(keys(&page(&env, after("z")).await), ["é"]);
    assert_eq!(keys(&page(&env, after("é")).await), Vec::<String>::new());
    assert_eq!(keys(&page(&env, after("")).await).len(), 9);
    // With a prefix: before the prefix, inside it, after it.
    let both =
        |p: &str, s: &str| ListOptions { prefix: Some(p.into()), start_after: Some(s.into()), ..Default::default() };
    assert_eq!(keys(&page(&env, both("ab", "a")).await), ["ab", "abc", "abd"]);
    assert_eq!(keys(&page(&env, both("ab", "abc")).await), ["abd"]);
    assert_eq!(keys(&page(&env, both("ab", "b")).await), Vec::<String>::new());
    // Paging inside a prefix.
    let first = page(&env, ListOptions { limit: Some(2), ..prefixed("a") }).await;
    assert_eq!((keys(&first), first.truncated), (strings(&["a", "a/x"]), true));
    let second = page(&env, ListOptions { limit: Some(2), cursor: first.cursor, ..prefixed("a") }).await;
    assert_eq!((keys(&second), second.truncated), (strings(&["ab", "abc"]), true));
    let third = page(&env, ListOptions { limit: Some(2), cursor: second.cursor, ..prefixed("a") }).await;
    assert_eq!((keys(&third), third.truncated), (strings(&["abd"]), false));
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_later_of_cursor_and_start_after_wins() {
    let env = Env::new().await;
    let all: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    seed(&env, &all).await;
    let first = page(&env, ListOptions { limit: Some(3), ..Default::default() }).await;
    assert_eq!(keys(&first), ["k0", "k1", "k2"]);
    let cursor = first.cursor.clone();
    // start_after before the cursor: the cursor wins.
    let list =
        page(&env, ListOptions { cursor: cursor.clone(), start_after: Some("k0".into()), ..Default::default() }).await;
    assert_eq!(keys(&list), ["k3", "k4", "k5", "k6", "k7", "k8", "k9"]);
    // start_after past the cursor: start_after wins.
    let list =
        page(&env, ListOptions { cursor: cursor.clone(), start_after: Some("k6".into()), ..Default::default() }).await;
    assert_eq!(keys(&list), ["k7", "k8", "k9"]);
    // An invalid cursor gives an empty page, not an error.
    for bad in ["bad", "%%%", "a"] {
        let list = page(&env, ListOptions { cursor: Some(bad.into()), ..Default::default() }).await;
        assert_eq!(list, ObjectList::default(), "{bad:?}");
    }
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_written_after_the_cursor_appear_on_later_pages() {
    let env = Env::new().await;
    seed(&env, &strings(&["c", "e", "g"])).await;
    let first = page(&env, ListOptions { limit: Some(2), ..Default::default() }).await;
    assert_eq!(keys(&first), ["c", "e"]);
    // One key before the cursor's position, two after.
    seed(&env, &strings(&["a", "f", "h"])).await;
    env.svc.delete(BUCKET, vec!["g".into()]).await.unwrap();
    let second = page(&env, ListOptions { limit: Some(2), cursor: first.cursor, ..Default::default() }).await;
    assert_eq!((keys(&second), second.truncated), (strings(&["f", "h"]), false));
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delimiters_roll_keys_up_into_prefixes_that_count_towards_the_limit() {
    let env = Env::new().await;
    seed(&env, &strings(&["a/1", "a/2", "a/3/x", "b", "c/1", "c/2/x", "c/2/y", "d", "e/", "f//g"])).await;
    let delimited = |limit: Option<i64>, cursor: Option<String>| ListOptions {
        limit,
        cursor,
        delimiter: Some("/".into()),
        ..Default::default()
    };
    let all = page(&env, delimited(None, None)).await;
    assert_eq!(keys(&all), ["b", "d"]);
    assert_eq!(all.delimited_prefixes, ["a/", "c/", "e/", "f/"]);
    assert!(!all.truncated);

    // Paged by 1, 2 and 3 entries: every entry exactly once, in order.
    let expected = strings(&["a/*", "b", "c/*", "d", "e/*", "f/*"]);
    for limit in 1..=4 {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let list = page(&env, delimited(Some(limit), cursor)).await;
            let got = entries(&list);
            assert!(got.len() <= limit as usize);
            assert!(!got.is_empty());
            seen.extend(got);
            cursor = list.cursor;
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(seen, expected, "limit {limit}");
    }
    // A page ending on a prefix resumes after the last key under it.
    let first = page(&env, delimited(Some(1), None)).await;
    assert_eq!(decode_cursor(first.cursor.as_deref().unwrap()).as_deref(), Some("a/3/x"));

    // With a prefix, only the remainder after it is searched for the delimiter.
    let list =
        page(&env, ListOptions { prefix: Some("c/".into()), delimiter: Some("/".into()), ..Default::default() }).await;
    assert_eq!((keys(&list), list.delimited_prefixes.clone()), (strings(&["c/1"]), strings(&["c/2/"])));
    // A longer delimiter, and the empty delimiter (none).
    let list = page(&env, ListOptions { delimiter: Some("/x".into()), ..Default::default() }).await;
    assert_eq!(list.delimited_prefixes, ["a/3/x", "c/2/x"]);
    assert_eq!(keys(&list), ["a/1", "a/2", "b", "c/1", "c/2/y", "d", "e/", "f//g"]);
    let list = page(&env, ListOptions { delimiter: Some(String::new()), ..Default::default() }).await;
    assert_eq!((keys(&list).len(), list.delimited_prefixes.len()), (10, 0));
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_only_stored_objects() {
    let env = Env::new().await;
    seed(&env, &strings(&["done"])).await;
    let upload = env.svc.create_multipart(BUCKET, "pending", Default::default()).await.unwrap();
    let staged = env.svc.stage_bytes(BUCKET, body(60, 1), &[]).await.unwrap();
    env.svc.upload_part(BUCKET, "pending", &upload.upload_id, 1, staged, Vec::new()).await.unwrap();
    let list = page(&env, ListOptions::default()).await;
    assert_eq!(keys(&list), ["done"]);
    let o = &list.objects[0];
    assert_eq!((o.size, o.etag.as_str()), (4, crate::md5_hex(b"done").as_str()));
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delimited_pages_span_many_rows() {
    let env = Env::fast().await;
    // 300 prefixes of three keys each, interleaved with 300 objects.
    let mut all = Vec::new();
    for i in 0..300 {
        all.push(format!("{i:03}/a"));
        all.push(format!("{i:03}/b/c"));
        all.push(format!("{i:03}/d"));
        all.push(format!("{i:03}~"));
    }
    seed(&env, &all).await;
    let mut expected = Vec::new();
    for i in 0..300 {
        expected.push(format!("{i:03}/*"));
        expected.push(format!("{i:03}~"));
    }
    for limit in [None, Some(250), Some(7)] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let options = ListOptions { limit, cursor, delimiter: Some("/".into()), ..Default::default() };
            let list = page(&env, options).await;
            let got = entries(&list);
            assert_eq!(got.len(), limit.map_or(600, |l| l as usize).min(600 - seen.len()));
            seen.extend(got);
            cursor = list.cursor;
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(seen, expected, "limit {limit:?}");
    }
    env.close();
}
