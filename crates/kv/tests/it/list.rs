//! Listing: prefixes, byte order, limits and cursors (spec 7.6).

use std::collections::BTreeSet;

use cairn_kv::{BulkPut, KeyInfo, ListKeys, PutOptions};
use serde_json::json;

use crate::{Env, T0_SECS, expect_err, pair, prefixed};

/// Stores each key with its own name as value, in one bulk write.
async fn seed(env: &Env, ns: &str, keys: &[String]) {
    let pairs: Vec<BulkPut> = keys.iter().map(|k| pair(k, k)).collect();
    assert_eq!(env.kv.put_many(ns, pairs).await.unwrap(), keys.len());
}

fn strings(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

#[tokio::test]
async fn a_prefix_is_matched_literally() {
    let env = Env::new();
    let ns = env.namespace("prefix").await;
    seed(&env, &ns, &strings(&["a%b", "a%", "a_b", "axb", "a\\b", "a\\", "ab", "A%b", "b%", "a", "a%%"])).await;
    assert_eq!(env.names(&ns, prefixed("a%")).await, ["a%", "a%%", "a%b"]);
    assert_eq!(env.names(&ns, prefixed("a_")).await, ["a_b"]);
    assert_eq!(env.names(&ns, prefixed("a\\")).await, ["a\\", "a\\b"]);
    assert_eq!(env.names(&ns, prefixed("%")).await, Vec::<String>::new());
    assert_eq!(env.names(&ns, prefixed("_")).await, Vec::<String>::new());
    // Case-sensitive, and a prefix equal to a key includes that key.
    assert_eq!(env.names(&ns, prefixed("A")).await, ["A%b"]);
    assert_eq!(env.names(&ns, prefixed("ab")).await, ["ab"]);
    assert_eq!(env.names(&ns, prefixed("")).await.len(), 11);
    assert_eq!(env.names(&ns, prefixed("zz")).await, Vec::<String>::new());
}

#[tokio::test]
async fn keys_come_in_utf8_byte_order() {
    let env = Env::new();
    let ns = env.namespace("order").await;
    // UTF-16 order would put the emoji (a surrogate pair, 0xD83D...) before U+FF61; UTF-8 byte
    // order puts it after (0xF0 > 0xEF).
    let keys = ["\u{1F600}", "\u{FF61}", "é", "日本", "a", "Z", ", ", "!", "~", "\u{7F}", "aa", "a!", "A"];
    seed(&env, &ns, &strings(&keys)).await;
    let expected = ["!", ", ", "A", "Z", "a", "a!", "aa", "~", "\u{7F}", "é", "日本", "\u{FF61}", "\u{1F600}"];
    assert_eq!(env.names(&ns, ListKeys::default()).await, expected);
    let mut by_bytes = strings(&keys);
    by_bytes.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(by_bytes, expected);

    // Multi-byte prefixes are matched byte for byte.
    seed(&env, &ns, &strings(&["日本語", "日曜"])).await;
    assert_eq!(env.names(&ns, prefixed("日本")).await, ["日本", "日本語"]);
    // U+66DC (曜) sorts before U+672C (本).
    assert_eq!(env.names(&ns, prefixed("日")).await, ["日曜", "日本", "日本語"]);
}

#[tokio::test]
async fn list_reports_expiration_in_seconds_and_metadata() {
    let env = Env::new();
    let ns = env.namespace("info").await;
    let options = PutOptions { expiration_ttl: Some(3600.0), expiration: None, metadata: Some(json!({"m": [1]})) };
    env.kv.put(&ns, "a", b"1".to_vec(), options).await.unwrap();
    env.put(&ns, "b", "2").await;
    let page = env.kv.list(&ns, ListKeys::default()).await.unwrap();
    assert_eq!(
        page.keys,
        [
            KeyInfo { name: "a".into(), expiration: Some(T0_SECS + 3600), metadata: Some(json!({"m": [1]})) },
            KeyInfo { name: "b".into(), expiration: None, metadata: None },
        ]
    );
    assert!(page.list_complete);
    assert_eq!(page.cursor, None);
    // An empty namespace lists nothing, completely.
    let empty = env.namespace("empty").await;
    let page = env.kv.list(&empty, ListKeys::default()).await.unwrap();
    assert!(page.keys.is_empty() && page.list_complete && page.cursor.is_none());
}

#[tokio::test]
async fn limits_default_to_1000_and_over_1000_is_refused() {
    let env = Env::new();
    let ns = env.namespace("limits").await;
    let keys: Vec<String> = (0..1005).map(|i| format!("key{i:04}")).collect();
    seed(&env, &ns, &keys).await;
    for limit in [None, Some(0), Some(-1), Some(i64::MIN), Some(1000)] {
        let page = env.kv.list(&ns, ListKeys { limit, ..ListKeys::default() }).await.unwrap();
        assert_eq!(page.keys.len(), 1000, "limit {limit:?}");
        assert!(!page.list_complete);
        assert_eq!(page.keys.last().unwrap().name, "key0999");
    }
    let page = env.kv.list(&ns, ListKeys { limit: Some(7), ..ListKeys::default() }).await.unwrap();
    assert_eq!(page.keys.len(), 7);
    for limit in [1001, i64::MAX] {
        let message = format!("Invalid key_count_limit of {limit}. Please specify an integer less than 1000.");
        expect_err(
            env.kv.list(&ns, ListKeys { limit: Some(limit), ..ListKeys::default() }).await,
            "kv.invalid_limit",
            &message,
        );
    }
    // A prefix is limited like a key; a cursor must be one the service gave.
    expect_err(
        env.kv.list(&ns, prefixed(&"p".repeat(513))).await,
        "kv.key_too_long",
        "UTF-8 encoded length of 513 exceeds key length limit of 512.",
    );
    assert!(env.kv.list(&ns, prefixed(&"p".repeat(512))).await.unwrap().keys.is_empty());
    expect_err(
        env.kv.list(&ns, ListKeys { cursor: Some("not base64!".into()), ..ListKeys::default() }).await,
        "kv.invalid_cursor",
        "invalid list cursor",
    );
}

#[tokio::test]
async fn cursor_paging_over_2500_keys_returns_each_key_once() {
    let env = Env::new();
    let ns = env.namespace("paging").await;
    // Numbers without padding, so that name order is not insertion order.
    let keys: Vec<String> = (0..2500).map(|i| format!("item:{i}")).collect();
    seed(&env, &ns, &keys).await;
    env.put(&ns, "other", "x").await;

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = None;
    for _ in 0..10 {
        let page = env.kv.list(&ns, ListKeys { prefix: Some("item:".into()), limit: None, cursor }).await.unwrap();
        sizes.push(page.keys.len());
        seen.extend(page.keys.into_iter().map(|k| k.name));
        assert_eq!(page.cursor.is_some(), !page.list_complete);
        if page.list_complete {
            cursor = None;
            break;
        }
        cursor = page.cursor;
    }
    assert!(cursor.is_none(), "paging did not finish in 10 pages");
    assert_eq!(sizes, [1000, 1000, 500]);
    let expected: Vec<String> = keys.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
    assert_eq!(seen, expected);

    // Exactly `limit` keys left: the page is complete and has no cursor.
    let page = env.kv.list(&ns, ListKeys { prefix: Some("item:".into()), limit: Some(500), cursor: None }).await;
    let first = page.unwrap();
    let next = ListKeys { prefix: Some("item:".into()), limit: Some(1000), cursor: first.cursor.clone() };
    let rest = env.kv.list(&ns, next).await.unwrap();
    assert_eq!(rest.keys.len(), 1000);
    assert!(!rest.list_complete);
    let last = ListKeys { prefix: Some("item:".into()), limit: Some(1000), cursor: rest.cursor };
    let last = env.kv.list(&ns, last).await.unwrap();
    assert_eq!(last.keys.len(), 1000);
    assert!(last.list_complete);
    assert_eq!(last.cursor, None);
}

#[tokio::test]
async fn keys_inserted_after_the_cursor_show_up_and_ones_before_do_not() {
    let env = Env::new();
    let ns = env.namespace("live").await;
    seed(&env, &ns, &strings(&["b", "d", "f", "h"])).await;
    let first = env.kv.list(&ns, ListKeys { limit: Some(2), ..ListKeys::default() }).await.unwrap();
    assert_eq!(first.keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["b", "d"]);
    assert!(!first.list_complete);

    // Between pages: one key before the cursor, one after, one deleted after.
    env.put(&ns, "a", "x").await;
    env.put(&ns, "c", "x").await;
    env.put(&ns, "e", "x").await;
    env.kv.delete(&ns, "f").await.unwrap();

    // The next page may use another limit.
    let second = env.kv.list(&ns, ListKeys { limit: Some(1), cursor: first.cursor, prefix: None }).await.unwrap();
    assert_eq!(second.keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["e"]);
    assert!(!second.list_complete);
    let third = env.kv.list(&ns, ListKeys { limit: Some(10), cursor: second.cursor, prefix: None }).await.unwrap();
    assert_eq!(third.keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["h"]);
    assert!(third.list_complete);

    // A cursor from another prefix (before this one) starts at the prefix.
    let before = env.kv.list(&ns, ListKeys { limit: Some(1), ..ListKeys::default() }).await.unwrap();
    assert_eq!(before.keys[0].name, "a");
    let other = ListKeys { prefix: Some("e".into()), limit: None, cursor: before.cursor };
    assert_eq!(env.names(&ns, other).await, ["e"]);
}
