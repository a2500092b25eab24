//! Namespaces: create, list, rename, delete, title uniqueness, the registry across restarts.

use cairn_kv::ErrorKind;

use crate::{Env, T0_MS, expect_err};

#[tokio::test]
async fn namespaces_are_created_listed_renamed_and_deleted() {
    let env = Env::new();
    assert!(env.kv.list_namespaces().await.unwrap().is_empty());

    let a = env.kv.create_namespace("sessions").await.unwrap();
    env.clock.advance(5);
    let b = env.kv.create_namespace("cache").await.unwrap();
    assert_eq!((a.title.as_str(), a.created_ms), ("sessions", T0_MS));
    assert_eq!((b.title.as_str(), b.created_ms), ("cache", T0_MS + 5));
    assert_eq!(a.id.len(), 32);
    assert!(a.id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{}", a.id);
    assert_ne!(a.id, b.id);
    // Oldest first.
    assert_eq!(env.kv.list_namespaces().await.unwrap(), vec![a.clone(), b.clone()]);
    assert_eq!(env.kv.namespace(&b.id).await.unwrap(), b);

    let renamed = env.kv.rename_namespace(&a.id, "sessions-v2").await.unwrap();
    assert_eq!(
        (renamed.id.as_str(), renamed.title.as_str(), renamed.created_ms),
        (a.id.as_str(), "sessions-v2", T0_MS)
    );
    assert_eq!(env.kv.namespace(&a.id).await.unwrap().title, "sessions-v2");
    // Renaming to its own title is a no-op.
    assert_eq!(env.kv.rename_namespace(&a.id, "sessions-v2").await.unwrap(), renamed);

    env.put(&a.id, "k", "v").await;
    env.kv.delete_namespace(&a.id).await.unwrap();
    assert_eq!(env.kv.list_namespaces().await.unwrap(), vec![b.clone()]);
    let missing = format!("namespace not found: {}", a.id);
    let e = expect_err(env.kv.namespace(&a.id).await, "kv.namespace_not_found", &missing);
    assert_eq!(e.kind(), ErrorKind::NotFound);
    expect_err(env.kv.get(&a.id, "k").await, "kv.namespace_not_found", &missing);
    expect_err(env.kv.put(&a.id, "k", b"v".to_vec(), Default::default()).await, "kv.namespace_not_found", &missing);
    expect_err(env.kv.list(&a.id, Default::default()).await, "kv.namespace_not_found", &missing);
    expect_err(env.kv.delete_namespace(&a.id).await, "kv.namespace_not_found", &missing);
    expect_err(env.kv.rename_namespace(&a.id, "x").await, "kv.namespace_not_found", &missing);
    // The deleted namespace's data is gone from its object too.
    let object = env.rt.object(cairn_kv::DATA_NAMESPACE, &a.id).unwrap();
    let tables = object.exec("SELECT count(*) FROM sqlite_master WHERE name = 'kv_entries'", Vec::new()).await.unwrap();
    assert_eq!(tables.raw().next().unwrap()[0].as_i64(), Some(0));
}

#[tokio::test]
async fn titles_are_unique_and_reusable_after_delete() {
    let env = Env::new();
    let a = env.kv.create_namespace("cache").await.unwrap();
    let b = env.kv.create_namespace("other").await.unwrap();
    let taken = "a namespace with this account ID and title already exists: \"cache\"";
    expect_err(env.kv.create_namespace("cache").await, "kv.namespace_exists", taken);
    expect_err(env.kv.rename_namespace(&b.id, "cache").await, "kv.namespace_exists", taken);
    assert_eq!(env.kv.namespace(&b.id).await.unwrap().title, "other");
    // Titles are case-sensitive.
    let upper = env.kv.create_namespace("Cache").await.unwrap();

    expect_err(env.kv.create_namespace("").await, "kv.invalid_title", "invalid namespace title: the title is empty");
    expect_err(env.kv.create_namespace("  ").await, "kv.invalid_title", "invalid namespace title: the title is empty");
    expect_err(
        env.kv.create_namespace(&"t".repeat(513)).await,
        "kv.invalid_title",
        "invalid namespace title: the title is 513 bytes long, over the limit of 512",
    );
    env.kv.create_namespace(&"t".repeat(512)).await.unwrap();

    // A renamed-away title is free again.
    env.kv.rename_namespace(&b.id, "renamed").await.unwrap();
    let c = env.kv.create_namespace("other").await.unwrap();
    assert_ne!(c.id, b.id);

    // A deleted namespace's title is free again, and the new namespace starts empty.
    env.put(&a.id, "k", "old").await;
    env.kv.delete_namespace(&a.id).await.unwrap();
    let again = env.kv.create_namespace("cache").await.unwrap();
    assert_ne!(again.id, a.id);
    assert_eq!(env.get_text(&again.id, "k").await, None);
    assert!(env.kv.list(&again.id, Default::default()).await.unwrap().keys.is_empty());
    assert_eq!(env.kv.namespace(&upper.id).await.unwrap().title, "Cache");
}

#[tokio::test]
async fn the_registry_and_entries_survive_a_restart() {
    let mut env = Env::new();
    let a = env.kv.create_namespace("first").await.unwrap();
    env.clock.advance(1);
    let b = env.kv.create_namespace("second").await.unwrap();
    env.clock.advance(1);
    let c = env.kv.create_namespace("third").await.unwrap();
    env.kv.rename_namespace(&b.id, "second-renamed").await.unwrap();
    env.kv.delete_namespace(&c.id).await.unwrap();
    env.put(&a.id, "k", "value").await;
    let before = env.kv.list_namespaces().await.unwrap();

    env.restart();

    let after = env.kv.list_namespaces().await.unwrap();
    assert_eq!(after, before);
    assert_eq!(after.iter().map(|n| n.title.as_str()).collect::<Vec<_>>(), ["first", "second-renamed"]);
    assert_eq!(env.get_text(&a.id, "k").await.as_deref(), Some("value"));
    // Uniqueness still holds, and the deleted title is still free.
    expect_err(
        env.kv.create_namespace("first").await,
        "kv.namespace_exists",
        "a namespace with this account ID and title already exists: \"first\"",
    );
    env.kv.create_namespace("third").await.unwrap();
    env.kv.create_namespace("second").await.unwrap();
}
