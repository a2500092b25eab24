//! Bulk writes, reads and deletes (spec 7.3 bulk get, 7.5).

use cairn_kv::{BulkPut, Entry, ErrorKind, KvLimits, ListKeys, PutOptions};
use serde_json::json;

use crate::{Env, T0_SECS, expect_err, pair};

#[tokio::test]
async fn a_bulk_put_writes_every_pair_with_its_options() {
    let env = Env::new();
    let ns = env.namespace("bulk").await;
    let pairs = vec![
        pair("a", "1"),
        BulkPut {
            key: "b".into(),
            value: b"2".to_vec(),
            options: PutOptions { expiration_ttl: Some(60.0), expiration: None, metadata: Some(json!({"x": 1})) },
        },
        pair("c", "3"),
        // A later pair for the same key wins.
        pair("a", "1b"),
    ];
    assert_eq!(env.kv.put_many(&ns, pairs).await.unwrap(), 4);
    assert_eq!(env.get_text(&ns, "a").await.as_deref(), Some("1b"));
    assert_eq!(
        env.kv.get(&ns, "b").await.unwrap(),
        Some(Entry { value: b"2".to_vec(), expiration: Some(T0_SECS + 60), metadata: Some(json!({"x": 1})) })
    );
    assert_eq!(env.names(&ns, ListKeys::default()).await, ["a", "b", "c"]);
    assert_eq!(env.kv.put_many(&ns, Vec::new()).await.unwrap(), 0);
}

#[tokio::test]
async fn a_bulk_put_with_one_invalid_pair_writes_nothing() {
    let env = Env::small();
    let ns = env.namespace("atomic").await;
    env.put(&ns, "existing", "old").await;
    let with = |bad: BulkPut| vec![pair("a", "1"), pair("existing", "new"), bad, pair("z", "26")];
    let cases = [
        (pair("", "v"), "kv.invalid_key", "Key name cannot be empty.".to_owned()),
        (pair("..", "v"), "kv.invalid_key", "\"..\" is not allowed as a key name.".to_owned()),
        (
            pair(&"k".repeat(513), "v"),
            "kv.key_too_long",
            "UTF-8 encoded length of 513 exceeds key length limit of 512.".to_owned(),
        ),
        (
            BulkPut { key: "big".into(), value: vec![0; 1025], options: PutOptions::default() },
            "kv.value_too_large",
            "Value length of 1025 exceeds limit of 1024.".to_owned(),
        ),
        (
            BulkPut {
                key: "meta".into(),
                value: Vec::new(),
                options: PutOptions { metadata: Some(json!("x".repeat(1023))), ..PutOptions::default() },
            },
            "kv.metadata_too_large",
            "Metadata length of 1025 exceeds limit of 1024.".to_owned(),
        ),
        (
            BulkPut {
                key: "ttl".into(),
                value: Vec::new(),
                options: PutOptions { expiration_ttl: Some(59.0), ..PutOptions::default() },
            },
            "kv.invalid_expiration_ttl",
            "Invalid expiration_ttl of 59. Expiration TTL must be at least 60.".to_owned(),
        ),
        (
            BulkPut {
                key: "exp".into(),
                value: Vec::new(),
                options: PutOptions { expiration: Some((T0_SECS + 59) as f64), ..PutOptions::default() },
            },
            "kv.invalid_expiration",
            format!(
                "Invalid expiration of {}. Expiration times must be at least 60 seconds in the future.",
                T0_SECS + 59
            ),
        ),
    ];
    for (bad, code, message) in cases {
        expect_err(env.kv.put_many(&ns, with(bad)).await, code, &message);
        assert_eq!(env.names(&ns, ListKeys::default()).await, ["existing"]);
        assert_eq!(env.get_text(&ns, "existing").await.as_deref(), Some("old"));
    }
    assert_eq!(env.stored_rows(&ns).await, 1);
    assert_eq!(env.alarm(&ns).await, None);
}

#[tokio::test]
async fn bulk_writes_and_deletes_are_limited_in_count() {
    let env = Env::new();
    let ns = env.namespace("count").await;
    let pairs: Vec<BulkPut> = (0..10_001).map(|i| pair(&format!("k{i}"), "v")).collect();
    let e = expect_err(
        env.kv.put_many(&ns, pairs).await,
        "kv.too_many_keys",
        "You can write a maximum of 10000 keys per request",
    );
    assert_eq!(e.kind(), ErrorKind::Invalid);
    let keys: Vec<String> = (0..10_001).map(|i| format!("k{i}")).collect();
    expect_err(
        env.kv.delete_many(&ns, keys).await,
        "kv.too_many_keys",
        "You can delete maximum of 10000 keys per request",
    );
    assert_eq!(env.stored_rows(&ns).await, 0);

    // With a small limit, the limit itself is allowed.
    let small = Env::with_limits(KvLimits { max_bulk_write_keys: 3, ..KvLimits::default() });
    let ns = small.namespace("small").await;
    let four: Vec<BulkPut> = ["a", "b", "c", "d"].iter().map(|k| pair(k, "v")).collect();
    expect_err(
        small.kv.put_many(&ns, four.clone()).await,
        "kv.too_many_keys",
        "You can write a maximum of 3 keys per request",
    );
    assert_eq!(small.stored_rows(&ns).await, 0);
    assert_eq!(small.kv.put_many(&ns, four[..3].to_vec()).await.unwrap(), 3);
    let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|k| (*k).to_owned()).collect();
    expect_err(
        small.kv.delete_many(&ns, names.clone()).await,
        "kv.too_many_keys",
        "You can delete maximum of 3 keys per request",
    );
    assert_eq!(small.stored_rows(&ns).await, 3);
    assert_eq!(small.kv.delete_many(&ns, names[1..].to_vec()).await.unwrap(), 3);
    assert_eq!(small.names(&ns, ListKeys::default()).await, ["a"]);
}

#[tokio::test]
async fn a_bulk_get_answers_every_key_in_request_order() {
    let env = Env::small();
    let ns = env.namespace("get").await;
    env.put(&ns, "a", "1").await;
    let options = PutOptions { expiration_ttl: Some(60.0), expiration: None, metadata: Some(json!("m")) };
    env.kv.put(&ns, "b", b"2".to_vec(), options).await.unwrap();
    env.put(&ns, "1", "index-like").await;

    let keys: Vec<String> = ["b", "missing", "a", "1", "a"].iter().map(|k| (*k).to_owned()).collect();
    let got = env.kv.get_many(&ns, keys).await.unwrap();
    let entry = |v: &str| Some(Entry { value: v.as_bytes().to_vec(), expiration: None, metadata: None });
    assert_eq!(
        got,
        vec![
            (
                "b".to_owned(),
                Some(Entry { value: b"2".to_vec(), expiration: Some(T0_SECS + 60), metadata: Some(json!("m")) })
            ),
            ("missing".to_owned(), None),
            ("a".to_owned(), entry("1")),
            ("1".to_owned(), entry("index-like")),
            ("a".to_owned(), entry("1")),
        ]
    );

    // Expired keys read as missing.
    env.clock.set((T0_SECS + 60) * 1000);
    let got = env.kv.get_many(&ns, vec!["b".into(), "a".into()]).await.unwrap();
    assert_eq!(got, vec![("b".to_owned(), None), ("a".to_owned(), entry("1"))]);
}

#[tokio::test]
async fn a_bulk_get_is_limited_in_keys_and_total_size() {
    let env = Env::small();
    let ns = env.namespace("get-limits").await;
    let e = expect_err(env.kv.get_many(&ns, Vec::new()).await, "kv.no_keys", "You must request a minimum of 1 key");
    assert_eq!(e.kind(), ErrorKind::Invalid);
    let keys: Vec<String> = (0..101).map(|i| format!("k{i}")).collect();
    expect_err(env.kv.get_many(&ns, keys.clone()).await, "kv.too_many_keys", "You can request a maximum of 100 keys");
    let got = env.kv.get_many(&ns, keys[..100].to_vec()).await.unwrap();
    assert_eq!(got.len(), 100);
    assert!(got.iter().all(|(_, e)| e.is_none()));
    expect_err(
        env.kv.get_many(&ns, vec!["ok".into(), String::new()]).await,
        "kv.invalid_key",
        "Key name cannot be empty.",
    );

    // Values add up: 600 + 424 = 1024 fits; 600 + 425 does not.
    env.kv.put(&ns, "x", vec![b'x'; 600], PutOptions::default()).await.unwrap();
    env.kv.put(&ns, "y", vec![b'y'; 424], PutOptions::default()).await.unwrap();
    env.kv.put(&ns, "z", vec![b'z'; 425], PutOptions::default()).await.unwrap();
    let fits = env.kv.get_many(&ns, vec!["x".into(), "y".into(), "missing".into()]).await.unwrap();
    assert_eq!(fits.iter().map(|(_, e)| e.as_ref().map_or(0, |e| e.value.len())).sum::<usize>(), 1024);
    let e = expect_err(
        env.kv.get_many(&ns, vec!["x".into(), "z".into()]).await,
        "kv.bulk_too_large",
        "Total size of request exceeds the limit of 0.0009765625MB",
    );
    assert_eq!(e.kind(), ErrorKind::TooLarge);
    // The same key twice counts twice.
    expect_err(
        env.kv.get_many(&ns, vec!["x".into(), "x".into()]).await,
        "kv.bulk_too_large",
        "Total size of request exceeds the limit of 0.0009765625MB",
    );
}

#[tokio::test]
async fn delete_many_removes_the_given_keys_and_ignores_missing_ones() {
    let env = Env::new();
    let ns = env.namespace("delete-many").await;
    let pairs: Vec<BulkPut> = ["a", "b", "c", "d", "e"].iter().map(|k| pair(k, k)).collect();
    env.kv.put_many(&ns, pairs).await.unwrap();
    let n = env.kv.delete_many(&ns, vec!["b".into(), "missing".into(), "d".into(), "b".into()]).await.unwrap();
    assert_eq!(n, 4);
    assert_eq!(env.names(&ns, ListKeys::default()).await, ["a", "c", "e"]);
    assert_eq!(env.stored_rows(&ns).await, 3);
    assert_eq!(env.kv.delete_many(&ns, Vec::new()).await.unwrap(), 0);
    // One invalid key refuses the whole request.
    expect_err(
        env.kv.delete_many(&ns, vec!["a".into(), ".".into()]).await,
        "kv.invalid_key",
        "\".\" is not allowed as a key name.",
    );
    assert_eq!(env.names(&ns, ListKeys::default()).await, ["a", "c", "e"]);
}
