//! Single entries: keys, values, metadata, expiration and the expiry boundary (spec 7.2 to 7.5).

use cairn_kv::{Entry, ErrorKind, ListKeys, PutOptions};
use serde_json::json;

use crate::{Env, T0_SECS, expect_err};

fn ttl(secs: f64) -> PutOptions {
    PutOptions { expiration_ttl: Some(secs), ..PutOptions::default() }
}

fn at(secs: f64) -> PutOptions {
    PutOptions { expiration: Some(secs), ..PutOptions::default() }
}

#[tokio::test]
async fn keys_are_validated_on_get_put_and_delete() {
    let env = Env::new();
    let ns = env.namespace("keys").await;
    let long = "k".repeat(513);
    let cases: [(&str, &str, &str); 4] = [
        ("", "kv.invalid_key", "Key name cannot be empty."),
        (".", "kv.invalid_key", "\".\" is not allowed as a key name."),
        ("..", "kv.invalid_key", "\"..\" is not allowed as a key name."),
        (&long, "kv.key_too_long", "UTF-8 encoded length of 513 exceeds key length limit of 512."),
    ];
    for (key, code, message) in cases {
        expect_err(env.kv.get(&ns, key).await, code, message);
        expect_err(env.kv.put(&ns, key, b"v".to_vec(), PutOptions::default()).await, code, message);
        expect_err(env.kv.delete(&ns, key).await, code, message);
    }
    let e = expect_err(
        env.kv.get(&ns, &"é".repeat(257)).await,
        "kv.key_too_long",
        "UTF-8 encoded length of 514 exceeds key length limit of 512.",
    );
    assert_eq!(e.kind(), ErrorKind::KeyTooLong);
    assert!(env.kv.list(&ns, ListKeys::default()).await.unwrap().keys.is_empty());

    // The longest key, keys with dots, and case-sensitive keys are fine.
    let longest = "k".repeat(512);
    for key in [longest.as_str(), "...", ".a", "Key", "key", "a/b?c=d&e", "\u{1F600}"] {
        env.put(&ns, key, key).await;
    }
    for key in [longest.as_str(), "...", ".a", "Key", "key", "a/b?c=d&e", "\u{1F600}"] {
        assert_eq!(env.get_text(&ns, key).await.as_deref(), Some(key));
    }
    assert_eq!(env.get_text(&ns, "KEY").await, None);
}

#[tokio::test]
async fn values_round_trip_and_the_size_limit_is_checked_before_writing() {
    let env = Env::small();
    let ns = env.namespace("values").await;
    let bytes: Vec<u8> = (0..=255).collect();
    env.kv.put(&ns, "bin", bytes.clone(), PutOptions::default()).await.unwrap();
    env.kv.put(&ns, "empty", Vec::new(), PutOptions::default()).await.unwrap();
    env.kv.put(&ns, "max", vec![7; 1024], PutOptions::default()).await.unwrap();
    let got = env.kv.get(&ns, "bin").await.unwrap().unwrap();
    assert_eq!(got, Entry { value: bytes, expiration: None, metadata: None });
    assert_eq!(env.kv.get(&ns, "empty").await.unwrap().unwrap().value, b"");
    assert_eq!(env.kv.get(&ns, "max").await.unwrap().unwrap().value, vec![7; 1024]);
    assert_eq!(env.kv.get(&ns, "missing").await.unwrap(), None);

    let e = expect_err(
        env.kv.put(&ns, "big", vec![0; 1025], PutOptions::default()).await,
        "kv.value_too_large",
        "Value length of 1025 exceeds limit of 1024.",
    );
    assert_eq!(e.kind(), ErrorKind::TooLarge);
    // Refused before anything was written, including over an existing key.
    expect_err(
        env.kv.put(&ns, "max", vec![0; 1025], PutOptions::default()).await,
        "kv.value_too_large",
        "Value length of 1025 exceeds limit of 1024.",
    );
    assert_eq!(env.kv.get(&ns, "big").await.unwrap(), None);
    assert_eq!(env.kv.get(&ns, "max").await.unwrap().unwrap().value, vec![7; 1024]);
    assert_eq!(env.stored_rows(&ns).await, 3);
    // A missing namespace is reported after the value check.
    expect_err(
        env.kv.put("0123456789abcdef0123456789abcdef", "k", vec![0; 1025], PutOptions::default()).await,
        "kv.value_too_large",
        "Value length of 1025 exceeds limit of 1024.",
    );
}

#[tokio::test]
async fn metadata_round_trips_and_its_size_is_limited() {
    let env = Env::new();
    let ns = env.namespace("meta").await;
    let metadata = json!({"owner": "ada", "tags": ["a", "b"], "n": 1.5, "nested": {"ok": true, "none": null}});
    let options = PutOptions { metadata: Some(metadata.clone()), ..PutOptions::default() };
    env.kv.put(&ns, "k", b"v".to_vec(), options).await.unwrap();
    let got = env.kv.get(&ns, "k").await.unwrap().unwrap();
    assert_eq!(got.metadata, Some(metadata.clone()));
    let listed = env.kv.list(&ns, ListKeys::default()).await.unwrap();
    assert_eq!(listed.keys[0].metadata, Some(metadata));

    // A JSON string of 1022 characters serializes to exactly 1024 bytes; 1023 to 1025.
    let fits = PutOptions { metadata: Some(json!("x".repeat(1022))), ..PutOptions::default() };
    env.kv.put(&ns, "fits", b"v".to_vec(), fits).await.unwrap();
    let over = PutOptions { metadata: Some(json!("x".repeat(1023))), ..PutOptions::default() };
    let e = expect_err(
        env.kv.put(&ns, "over", b"v".to_vec(), over).await,
        "kv.metadata_too_large",
        "Metadata length of 1025 exceeds limit of 1024.",
    );
    assert_eq!(e.kind(), ErrorKind::TooLarge);
    assert_eq!(env.kv.get(&ns, "over").await.unwrap(), None);
    // Multi-byte characters count in UTF-8 bytes: 511 × "é" is 1022 bytes plus quotes.
    let utf8 = PutOptions { metadata: Some(json!("é".repeat(512))), ..PutOptions::default() };
    expect_err(
        env.kv.put(&ns, "over", b"v".to_vec(), utf8).await,
        "kv.metadata_too_large",
        "Metadata length of 1026 exceeds limit of 1024.",
    );
    // Scalar metadata round-trips too.
    for (i, m) in [json!(null), json!(0), json!("s"), json!([1, 2]), json!(false)].into_iter().enumerate() {
        let key = format!("scalar{i}");
        let options = PutOptions { metadata: Some(m.clone()), ..PutOptions::default() };
        env.kv.put(&ns, &key, b"v".to_vec(), options).await.unwrap();
        assert_eq!(env.kv.get(&ns, &key).await.unwrap().unwrap().metadata, Some(m));
    }
}

#[tokio::test]
async fn expiration_ttl_is_validated() {
    let env = Env::new();
    let ns = env.namespace("ttl").await;
    let put = |key: &'static str, options: PutOptions| env.kv.put(&ns, key, b"v".to_vec(), options);
    let code = "kv.invalid_expiration_ttl";
    expect_err(put("a", ttl(59.0)).await, code, "Invalid expiration_ttl of 59. Expiration TTL must be at least 60.");
    expect_err(put("a", ttl(59.9)).await, code, "Invalid expiration_ttl of 59.9. Expiration TTL must be at least 60.");
    expect_err(put("a", ttl(0.0)).await, code, "Invalid expiration_ttl of 0. Please specify integer greater than 0.");
    expect_err(put("a", ttl(-5.0)).await, code, "Invalid expiration_ttl of -5. Please specify integer greater than 0.");
    expect_err(put("a", ttl(0.5)).await, code, "Invalid expiration_ttl of 0.5. Please specify integer greater than 0.");
    expect_err(
        put("a", ttl(f64::NAN)).await,
        code,
        "Invalid expiration_ttl of 0. Please specify integer greater than 0.",
    );
    // The TTL is checked first and wins over an (invalid) expiration.
    expect_err(
        put("a", PutOptions { expiration: Some(1.0), expiration_ttl: Some(30.0), metadata: None }).await,
        code,
        "Invalid expiration_ttl of 30. Expiration TTL must be at least 60.",
    );
    assert_eq!(env.stored_rows(&ns).await, 0);

    put("sixty", ttl(60.0)).await.unwrap();
    put("fraction", ttl(60.9)).await.unwrap();
    put("both", PutOptions { expiration: Some(1.0), expiration_ttl: Some(120.0), metadata: None }).await.unwrap();
    assert_eq!(env.kv.get(&ns, "sixty").await.unwrap().unwrap().expiration, Some(T0_SECS + 60));
    assert_eq!(env.kv.get(&ns, "fraction").await.unwrap().unwrap().expiration, Some(T0_SECS + 60));
    assert_eq!(env.kv.get(&ns, "both").await.unwrap().unwrap().expiration, Some(T0_SECS + 120));
}

#[tokio::test]
async fn absolute_expiration_is_validated() {
    let env = Env::new();
    let ns = env.namespace("exp").await;
    let put = |key: &'static str, options: PutOptions| env.kv.put(&ns, key, b"v".to_vec(), options);
    let code = "kv.invalid_expiration";
    let past = "Please specify integer greater than the current number of seconds since the UNIX epoch.";
    let soon = "Expiration times must be at least 60 seconds in the future.";
    let now = T0_SECS as f64;
    expect_err(put("a", at(f64::NAN)).await, code, &format!("Invalid expiration of 0. {past}"));
    expect_err(put("a", at(0.0)).await, code, &format!("Invalid expiration of 0. {past}"));
    expect_err(put("a", at(now)).await, code, &format!("Invalid expiration of {T0_SECS}. {past}"));
    expect_err(put("a", at(now - 1.0)).await, code, &format!("Invalid expiration of {}. {past}", T0_SECS - 1));
    expect_err(put("a", at(now + 1.0)).await, code, &format!("Invalid expiration of {}. {soon}", T0_SECS + 1));
    expect_err(put("a", at(now + 59.0)).await, code, &format!("Invalid expiration of {}. {soon}", T0_SECS + 59));
    expect_err(put("a", at(now + 59.5)).await, code, &format!("Invalid expiration of {}.5. {soon}", T0_SECS + 59));
    assert_eq!(env.stored_rows(&ns).await, 0);

    put("sixty", at(now + 60.0)).await.unwrap();
    put("fraction", at(now + 90.7)).await.unwrap();
    assert_eq!(env.kv.get(&ns, "sixty").await.unwrap().unwrap().expiration, Some(T0_SECS + 60));
    assert_eq!(env.kv.get(&ns, "fraction").await.unwrap().unwrap().expiration, Some(T0_SECS + 90));
}

#[tokio::test]
async fn get_hides_an_entry_at_its_expiry_while_list_shows_it_until_just_after() {
    let env = Env::new();
    let ns = env.namespace("boundary").await;
    env.kv.put(&ns, "k", b"v".to_vec(), ttl(60.0)).await.unwrap();
    env.put(&ns, "forever", "v").await;
    let expiry_ms = (T0_SECS + 60) * 1000;

    env.clock.set(expiry_ms - 1);
    assert_eq!(env.get_text(&ns, "k").await.as_deref(), Some("v"));
    assert_eq!(env.names(&ns, ListKeys::default()).await, ["forever", "k"]);

    // At exactly the expiry: `get` treats `expiration * 1000 <= now` as expired, `list` keeps
    // `expiration * 1000 >= now`.
    env.clock.set(expiry_ms);
    assert_eq!(env.kv.get(&ns, "k").await.unwrap(), None);
    assert_eq!(env.kv.get_many(&ns, vec!["k".into()]).await.unwrap(), vec![("k".to_owned(), None)]);
    let page = env.kv.list(&ns, ListKeys::default()).await.unwrap();
    assert_eq!(page.keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["forever", "k"]);
    assert_eq!(page.keys[1].expiration, Some(T0_SECS + 60));

    env.clock.set(expiry_ms + 1);
    assert_eq!(env.kv.get(&ns, "k").await.unwrap(), None);
    assert_eq!(env.names(&ns, ListKeys::default()).await, ["forever"]);
    assert_eq!(env.get_text(&ns, "forever").await.as_deref(), Some("v"));
    // Hidden, not yet deleted.
    assert_eq!(env.stored_rows(&ns).await, 2);

    // A put over an expired entry brings the key back with the new value only.
    env.put(&ns, "k", "new").await;
    assert_eq!(
        env.kv.get(&ns, "k").await.unwrap(),
        Some(Entry { value: b"new".to_vec(), expiration: None, metadata: None })
    );
}

#[tokio::test]
async fn an_overwrite_replaces_value_expiration_and_metadata_together() {
    let env = Env::new();
    let ns = env.namespace("overwrite").await;
    let full = PutOptions { expiration_ttl: Some(600.0), expiration: None, metadata: Some(json!({"v": 1})) };
    env.kv.put(&ns, "k", b"one".to_vec(), full).await.unwrap();
    assert_eq!(
        env.kv.get(&ns, "k").await.unwrap(),
        Some(Entry { value: b"one".to_vec(), expiration: Some(T0_SECS + 600), metadata: Some(json!({"v": 1})) })
    );

    env.put(&ns, "k", "two").await;
    assert_eq!(
        env.kv.get(&ns, "k").await.unwrap(),
        Some(Entry { value: b"two".to_vec(), expiration: None, metadata: None })
    );
    let listed = env.kv.list(&ns, ListKeys::default()).await.unwrap();
    assert_eq!((listed.keys[0].expiration, listed.keys[0].metadata.clone()), (None, None));
    // The old expiry no longer hides the new value.
    env.clock.set((T0_SECS + 601) * 1000);
    assert_eq!(env.get_text(&ns, "k").await.as_deref(), Some("two"));

    let now_secs = (T0_SECS + 601) as f64;
    let later = PutOptions { expiration: Some(now_secs + 100.0), expiration_ttl: None, metadata: Some(json!([3])) };
    env.kv.put(&ns, "k", b"three".to_vec(), later).await.unwrap();
    assert_eq!(
        env.kv.get(&ns, "k").await.unwrap(),
        Some(Entry { value: b"three".to_vec(), expiration: Some(T0_SECS + 701), metadata: Some(json!([3])) })
    );
    assert_eq!(env.stored_rows(&ns).await, 1);
}

#[tokio::test]
async fn delete_removes_a_key_and_a_missing_key_is_no_error() {
    let env = Env::new();
    let ns = env.namespace("delete").await;
    env.put(&ns, "a", "1").await;
    env.put(&ns, "b", "2").await;
    env.kv.delete(&ns, "a").await.unwrap();
    env.kv.delete(&ns, "a").await.unwrap();
    env.kv.delete(&ns, "never").await.unwrap();
    assert_eq!(env.kv.get(&ns, "a").await.unwrap(), None);
    assert_eq!(env.names(&ns, ListKeys::default()).await, ["b"]);
    assert_eq!(env.stored_rows(&ns).await, 1);
}
