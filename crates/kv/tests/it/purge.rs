//! Background deletion of expired entries: the namespace object's alarm and purge steps.

use cairn_kv::{BulkPut, DATA_NAMESPACE, ListKeys, PutOptions};

use crate::{Env, T0_MS, T0_SECS};

fn with_ttl(key: &str, secs: f64) -> BulkPut {
    BulkPut {
        key: key.to_owned(),
        value: b"v".to_vec(),
        options: PutOptions { expiration_ttl: Some(secs), ..PutOptions::default() },
    }
}

#[tokio::test]
async fn purge_deletes_expired_entries_in_bounded_steps_and_moves_the_alarm() {
    let env = Env::new();
    let ns = env.namespace("purge").await;
    let idle = env.namespace("idle").await;
    env.put(&idle, "k", "v").await;
    let first = (T0_SECS + 60) * 1000;
    let second = (T0_SECS + 120) * 1000;
    let pairs: Vec<BulkPut> = (0..2500).map(|i| with_ttl(&format!("short:{i}"), 60.0)).collect();
    env.kv.put_many(&ns, pairs).await.unwrap();
    env.kv.put_many(&ns, vec![with_ttl("long", 120.0), crate::pair("forever", "v")]).await.unwrap();
    assert_eq!(env.stored_rows(&ns).await, 2502);
    assert_eq!(env.alarm(&ns).await, Some(first));
    assert_eq!(env.alarm(&idle).await, None);

    // Nothing is due yet.
    assert!(env.rt.due_alarms_in(DATA_NAMESPACE, T0_MS, 10).unwrap().is_empty());
    assert!(env.rt.due_alarms_in(DATA_NAMESPACE, first - 1, 10).unwrap().is_empty());
    assert_eq!(env.rt.due_alarms_in(DATA_NAMESPACE, first, 10).unwrap(), vec![(ns.clone(), first)]);
    assert_eq!(env.kv.purge_due(10).await.unwrap(), 0);
    assert_eq!(env.stored_rows(&ns).await, 2502);

    env.clock.set(first);
    let mut steps = Vec::new();
    for _ in 0..10 {
        let deleted = env.kv.purge_due(10).await.unwrap();
        if deleted == 0 {
            break;
        }
        steps.push((deleted, env.stored_rows(&ns).await, env.alarm(&ns).await));
    }
    // Each step deletes at most 1000 entries; while some are still due the alarm stays due.
    assert_eq!(steps, [(1000, 1502, Some(first)), (1000, 502, Some(first)), (500, 2, Some(second))]);
    assert!(env.rt.due_alarms_in(DATA_NAMESPACE, first, 10).unwrap().is_empty());
    assert_eq!(env.rt.due_alarms_in(DATA_NAMESPACE, second, 10).unwrap(), vec![(ns.clone(), second)]);
    assert_eq!(env.names(&ns, ListKeys::default()).await, ["forever", "long"]);

    env.clock.set(second);
    assert_eq!(env.kv.purge_due(10).await.unwrap(), 1);
    assert_eq!(env.stored_rows(&ns).await, 1);
    assert_eq!(env.alarm(&ns).await, None);
    assert!(env.rt.due_alarms_in(DATA_NAMESPACE, i64::MAX, 10).unwrap().is_empty());
    assert_eq!(env.kv.purge_due(10).await.unwrap(), 0);
    assert_eq!(env.names(&ns, ListKeys::default()).await, ["forever"]);
    assert_eq!(env.stored_rows(&idle).await, 1);
}

#[tokio::test]
async fn the_alarm_follows_the_earliest_expiry_and_an_early_purge_is_harmless() {
    let mut env = Env::new();
    let ns = env.namespace("alarm").await;
    let at = |secs: i64| (T0_SECS + secs) * 1000;
    env.kv.put_many(&ns, vec![with_ttl("a", 600.0)]).await.unwrap();
    assert_eq!(env.alarm(&ns).await, Some(at(600)));
    // An earlier expiry moves the alarm earlier; a later one leaves it.
    env.kv.put_many(&ns, vec![with_ttl("b", 120.0)]).await.unwrap();
    assert_eq!(env.alarm(&ns).await, Some(at(120)));
    env.kv.put_many(&ns, vec![with_ttl("c", 900.0)]).await.unwrap();
    assert_eq!(env.alarm(&ns).await, Some(at(120)));

    // "b" loses its expiry; the alarm still fires at its old time and finds nothing to delete.
    env.put(&ns, "b", "kept").await;
    assert_eq!(env.alarm(&ns).await, Some(at(120)));
    // Purging before anything expired deletes nothing and sets the alarm to the next expiry.
    assert_eq!(env.kv.purge_expired(&ns).await.unwrap(), 0);
    assert_eq!(env.alarm(&ns).await, Some(at(600)));

    // The alarm index is durable: after a restart the namespace is still found when due.
    env.restart();
    env.clock.set(at(600));
    assert_eq!(env.rt.due_alarms_in(DATA_NAMESPACE, at(600), 10).unwrap(), vec![(ns.clone(), at(600))]);
    assert_eq!(env.kv.purge_due(10).await.unwrap(), 1);
    assert_eq!(env.alarm(&ns).await, Some(at(900)));
    assert_eq!(env.names(&ns, ListKeys::default()).await, ["b", "c"]);
    assert_eq!(env.get_text(&ns, "b").await.as_deref(), Some("kept"));
}

#[tokio::test]
async fn deleting_a_namespace_clears_its_alarm() {
    let env = Env::new();
    let ns = env.namespace("gone").await;
    env.kv.put_many(&ns, vec![with_ttl("a", 60.0)]).await.unwrap();
    let due = (T0_SECS + 60) * 1000;
    assert_eq!(env.rt.due_alarms_in(DATA_NAMESPACE, due, 10).unwrap().len(), 1);
    env.kv.delete_namespace(&ns).await.unwrap();
    assert_eq!(env.alarm(&ns).await, None);
    assert!(env.rt.due_alarms_in(DATA_NAMESPACE, i64::MAX, 10).unwrap().is_empty());
    env.clock.set(due);
    assert_eq!(env.kv.purge_due(10).await.unwrap(), 0);
    // Purging a namespace without a table (deleted) is harmless.
    assert_eq!(env.kv.purge_expired(&ns).await.unwrap(), 0);
    assert_eq!(env.alarm(&ns).await, None);
}
