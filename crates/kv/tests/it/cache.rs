//! The read cache: reads served without an event never go back in time, and a cache that is
//! too small or turned off changes nothing a caller can see.

use std::sync::Arc;

use cairn_kv::{KvLimits, PutOptions};

use crate::Env;

async fn readers_never_see_older_values(env: Env) {
    let ns = Arc::new(env.namespace("cache").await);
    let env = Arc::new(env);
    let writer = {
        let (env, ns) = (Arc::clone(&env), Arc::clone(&ns));
        tokio::spawn(async move {
            let kv = &env.kv;
            for i in 1..=200u32 {
                kv.put(&ns, "counter", i.to_string().into_bytes(), PutOptions::default()).await.unwrap();
                // Read-your-writes: once a put returned, nothing older is served.
                let seen: u32 = kv.get(&ns, "counter").await.unwrap().unwrap().text().parse().unwrap();
                assert!(seen >= i, "wrote {i}, then read {seen}");
            }
        })
    };
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (env, ns) = (Arc::clone(&env), Arc::clone(&ns));
            tokio::spawn(async move {
                let kv = &env.kv;
                let mut last = 0u32;
                for _ in 0..400 {
                    if let Some(e) = kv.get(&ns, "counter").await.unwrap() {
                        let v: u32 = e.text().parse().unwrap();
                        assert!(v >= last, "read {v} after {last}");
                        last = v;
                    }
                }
            })
        })
        .collect();
    writer.await.unwrap();
    for r in readers {
        r.await.unwrap();
    }
    let kv = &env.kv;
    assert_eq!(kv.get(&ns, "counter").await.unwrap().unwrap().text(), "200");
    kv.delete(&ns, "counter").await.unwrap();
    assert!(kv.get(&ns, "counter").await.unwrap().is_none(), "a delete is seen at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_never_go_back_in_time() {
    readers_never_see_older_values(Env::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tiny_cache_evicts_without_serving_stale_values() {
    readers_never_see_older_values(Env::with_limits(KvLimits { read_cache_bytes: 200, ..KvLimits::default() })).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_cache_every_read_goes_to_the_object() {
    readers_never_see_older_values(Env::with_limits(KvLimits { read_cache_bytes: 0, ..KvLimits::default() })).await;
}
