//! Alarms (spec §5.2) as the host delivers them, with a manual clock: `run_due_alarms` after
//! each move of the clock stands in for the scheduler loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use cairn_rooms::{AlarmRetry, HostConfig, MAX_ALARM_RETRIES, Message, RoomError, backoff_delay_ms};

use crate::support::{Env, NOW, http_request, recv_text, run_alarms};

/// The log line of an object alarm run (see `TestRoom::on_alarm`), with nothing set.
fn alarm_line(scheduled: i64, retry: u32) -> String {
    format!("alarm:-:{scheduled}:{retry}:{}:get=none:named=-", retry > 0)
}

/// The alarm lines of the log, emptying it.
fn alarm_lines(env: &Env) -> Vec<String> {
    env.take_log().into_iter().filter(|l| l.starts_with("alarm:")).collect()
}

fn fail_always(env: &Env) {
    env.shared.set_alarm_hook(|_, _| Err(RoomError::msg("alarm failed")));
}

/// Fails the first `n` runs, then succeeds.
fn fail_first(env: &Env, n: u32) -> Arc<AtomicU32> {
    let runs = Arc::new(AtomicU32::new(0));
    let r = Arc::clone(&runs);
    env.shared.set_alarm_hook(move |_, _| {
        if r.fetch_add(1, Ordering::SeqCst) < n { Err(RoomError::msg("alarm failed")) } else { Ok(()) }
    });
    runs
}

#[test]
fn backoff_delays_double_from_two_seconds_with_up_to_a_quarter_of_jitter() {
    assert_eq!(MAX_ALARM_RETRIES, 6);
    let bases = [2_000, 4_000, 8_000, 16_000, 32_000, 64_000];
    for (k, base) in bases.into_iter().enumerate() {
        let k = u32::try_from(k).unwrap();
        assert_eq!(backoff_delay_ms(k, 0.0), base);
        assert_eq!(backoff_delay_ms(k, 0.5), base + base / 8);
        assert_eq!(backoff_delay_ms(k, 0.999_999), base + base / 4 - 1);
        assert!(backoff_delay_ms(k, 1.0) <= base + base / 4);
    }
    // floor(): jitter is whole milliseconds.
    assert_eq!(backoff_delay_ms(0, 0.001), 2_000);
    assert_eq!(backoff_delay_ms(0, 0.002), 2_001);
    // Out-of-range randomness stays in range.
    assert_eq!(backoff_delay_ms(0, -5.0), 2_000);
    assert_eq!(backoff_delay_ms(0, 7.0), 2_500);
    let nan = backoff_delay_ms(0, f64::NAN);
    assert!((2_000..=2_500).contains(&nan), "{nan}");
    // Capped at 2 s << 9 = 1024 s (for uncounted retries).
    assert_eq!(backoff_delay_ms(9, 0.0), 1_024_000);
    assert_eq!(backoff_delay_ms(10, 0.0), 1_024_000);
    assert_eq!(backoff_delay_ms(u32::MAX, 0.0), 1_024_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_never_fires_early_and_fires_once() {
    let env = Env::new();
    let t = NOW + 1_000;
    env.obj("r").set_alarm(t).await.unwrap();
    assert_eq!(env.host.next_alarm_time().unwrap(), Some(t));
    assert_eq!(run_alarms(&env.host).await, 0);
    env.clock.advance(999);
    assert_eq!(run_alarms(&env.host).await, 0);
    // Nothing ran, not even on_start.
    assert_eq!(env.log(), Vec::<String>::new());
    env.clock.advance(1);
    assert_eq!(run_alarms(&env.host).await, 1);
    assert_eq!(env.take_log(), ["start:none".to_owned(), alarm_line(t, 0)]);
    assert_eq!(run_alarms(&env.host).await, 0);
    env.clock.advance(100_000);
    assert_eq!(run_alarms(&env.host).await, 0);
    assert_eq!(env.obj("r").get_alarm().await.unwrap(), None);
    assert_eq!(env.host.next_alarm_time().unwrap(), None);
    let stats = env.host.stats();
    assert_eq!((stats.alarm_runs, stats.alarm_retries, stats.alarm_failures), (1, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_run_reports_the_time_the_alarm_was_set_for() {
    let env = Env::new();
    let t = NOW + 1_000;
    env.obj("r").set_alarm(t).await.unwrap();
    env.clock.advance(60_000);
    assert_eq!(run_alarms(&env.host).await, 1);
    assert_eq!(alarm_lines(&env), [alarm_line(t, 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_set_in_the_handler_is_kept_and_fires_even_if_already_past() {
    let env = Env::new();
    let runs = Arc::new(AtomicU32::new(0));
    let r = Arc::clone(&runs);
    env.shared.set_alarm_hook(move |_, ctx| {
        let now = ctx.now_ms();
        match r.fetch_add(1, Ordering::SeqCst) {
            // In the past: clamped to now, so due at once.
            0 => ctx.storage().set_alarm(now - 5_000)?,
            1 => ctx.storage().set_alarm(now + 30_000)?,
            _ => {}
        }
        Ok(())
    });
    let t = NOW + 1_000;
    env.obj("r").set_alarm(t).await.unwrap();
    env.clock.set(t);
    assert_eq!(run_alarms(&env.host).await, 1);
    assert_eq!(env.obj("r").get_alarm().await.unwrap(), Some(t));
    // Due again at the same instant.
    assert_eq!(run_alarms(&env.host).await, 1);
    assert_eq!(env.obj("r").get_alarm().await.unwrap(), Some(t + 30_000));
    assert_eq!(env.host.next_alarm_time().unwrap(), Some(t + 30_000));
    env.clock.advance(29_999);
    assert_eq!(run_alarms(&env.host).await, 0);
    env.clock.advance(1);
    assert_eq!(run_alarms(&env.host).await, 1);
    assert_eq!(run_alarms(&env.host).await, 0);
    assert_eq!(alarm_lines(&env), [alarm_line(t, 0), alarm_line(t, 0), alarm_line(t + 30_000, 0)]);
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(env.obj("r").get_alarm().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_then_delete_inside_the_handler_means_no_further_run() {
    let env = Env::new();
    env.shared.set_alarm_hook(|_, ctx| {
        let later = ctx.now_ms() + 5_000;
        ctx.storage().set_alarm(later)?;
        ctx.storage().delete_alarm()?;
        // deleteAlarm() inside the handler only cancels what the handler set.
        assert_eq!(ctx.storage().get_alarm()?, None);
        Ok(())
    });
    env.obj("r").set_alarm(NOW + 10).await.unwrap();
    env.clock.advance(10);
    assert_eq!(run_alarms(&env.host).await, 1);
    assert_eq!(env.obj("r").get_alarm().await.unwrap(), None);
    env.clock.advance(60_000);
    assert_eq!(run_alarms(&env.host).await, 0);
    assert_eq!(alarm_lines(&env).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handler_is_retried_with_backoff_then_abandoned() {
    let env = Env::new();
    fail_always(&env);
    let t = NOW + 1_000;
    env.obj("r").set_alarm(t).await.unwrap();
    env.clock.set(t);
    let mut now = t;
    for k in 0..=MAX_ALARM_RETRIES {
        assert_eq!(run_alarms(&env.host).await, 1, "run {k}");
        // The original scheduled time, the retry count, and the alarm reads as unset inside.
        assert_eq!(alarm_lines(&env), [alarm_line(t, k)]);
        if k == MAX_ALARM_RETRIES {
            break;
        }
        let retries = env.host.pending_retries();
        assert_eq!(retries.len(), 1, "{retries:?}");
        let (key, retry) = &retries[0];
        assert_eq!(key, &("p".to_owned(), "r".to_owned()));
        let AlarmRetry { name, scheduled_time, retry_count, not_before } = retry.clone();
        assert_eq!((name, scheduled_time, retry_count), (None, t, k + 1));
        let base = 2_000i64 << k;
        let delay = not_before - now;
        assert!((base..=base + base / 4).contains(&delay), "retry {k}: delay {delay} for base {base}");
        assert_eq!(env.host.next_alarm_time().unwrap(), Some(not_before));
        // The failed run rolled back: the alarm is still set.
        assert_eq!(env.obj("r").get_alarm().await.unwrap(), Some(t));
        // Not before its time.
        env.clock.set(not_before - 1);
        assert_eq!(run_alarms(&env.host).await, 0, "retry {k} ran early");
        env.clock.set(not_before);
        now = not_before;
    }
    // The 6th retry failed: abandoned and cleared.
    assert_eq!(env.host.pending_retries(), Vec::new());
    assert_eq!(env.obj("r").get_alarm().await.unwrap(), None);
    assert_eq!(env.host.next_alarm_time().unwrap(), None);
    let stats = env.host.stats();
    assert_eq!((stats.alarm_runs, stats.alarm_retries, stats.alarm_failures), (7, 6, 1));
    assert_eq!(stats.handler_errors, 7);
    env.clock.advance(1_000_000);
    assert_eq!(run_alarms(&env.host).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_that_succeeds_ends_the_retries() {
    let env = Env::new();
    let runs = fail_first(&env, 2);
    let t = NOW + 1_000;
    env.obj("r").set_alarm(t).await.unwrap();
    env.clock.set(t);
    for k in 0..3 {
        assert_eq!(run_alarms(&env.host).await, 1);
        if k < 2 {
            let not_before = env.host.pending_retries()[0].1.not_before;
            env.clock.set(not_before);
        }
    }
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(alarm_lines(&env), [alarm_line(t, 0), alarm_line(t, 1), alarm_line(t, 2)]);
    assert_eq!(env.host.pending_retries(), Vec::new());
    assert_eq!(env.obj("r").get_alarm().await.unwrap(), None);
    let stats = env.host.stats();
    assert_eq!((stats.alarm_runs, stats.alarm_retries, stats.alarm_failures), (3, 2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_set_by_a_failing_handler_is_rolled_back() {
    let env = Env::new();
    let runs = Arc::new(AtomicU32::new(0));
    let r = Arc::clone(&runs);
    env.shared.set_alarm_hook(move |_, ctx| {
        if r.fetch_add(1, Ordering::SeqCst) == 0 {
            let later = ctx.now_ms() + 500_000;
            ctx.storage().set_alarm(later)?;
            ctx.storage().put("alarm-wrote", &true)?;
            return Err(RoomError::msg("alarm failed"));
        }
        Ok(())
    });
    let t = NOW + 1_000;
    env.obj("r").set_alarm(t).await.unwrap();
    env.clock.set(t);
    assert_eq!(run_alarms(&env.host).await, 1);
    assert_eq!(env.obj("r").get_alarm().await.unwrap(), Some(t));
    assert_eq!(env.obj("r").get::<bool>("alarm-wrote").await.unwrap(), None);
    let not_before = env.host.pending_retries()[0].1.not_before;
    env.clock.set(not_before);
    assert_eq!(run_alarms(&env.host).await, 1);
    assert_eq!(alarm_lines(&env), [alarm_line(t, 0), alarm_line(t, 1)]);
    assert_eq!(env.obj("r").get_alarm().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_alarm_set_after_a_failure_replaces_the_retry() {
    let env = Env::new();
    fail_first(&env, 1);
    let t1 = NOW + 1_000;
    env.obj("r").set_alarm(t1).await.unwrap();
    env.clock.set(t1);
    assert_eq!(run_alarms(&env.host).await, 1);
    let not_before = env.host.pending_retries()[0].1.not_before;
    // Another event sets a new, later alarm while the failed one waits for its retry.
    let t2 = NOW + 100_000;
    env.obj("r").set_alarm(t2).await.unwrap();
    env.clock.set(not_before + 1);
    assert_eq!(run_alarms(&env.host).await, 0);
    env.clock.set(t2);
    assert_eq!(run_alarms(&env.host).await, 1);
    // The new alarm is a first run for its own time, not retry 1 of the old one.
    assert_eq!(alarm_lines(&env), [alarm_line(t1, 0), alarm_line(t2, 0)]);
    assert_eq!(env.host.pending_retries(), Vec::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_retry_does_not_keep_the_scheduler_busy() {
    let env = Env::new();
    fail_first(&env, 1);
    let t1 = NOW + 1_000;
    env.obj("r").set_alarm(t1).await.unwrap();
    env.clock.set(t1);
    assert_eq!(run_alarms(&env.host).await, 1);
    let not_before = env.host.pending_retries()[0].1.not_before;
    let t2 = NOW + 100_000;
    env.obj("r").set_alarm(t2).await.unwrap();
    env.clock.set(not_before + 1);
    assert_eq!(run_alarms(&env.host).await, 0);
    // Nothing is due until t2: the scheduler must not be told to wake at a time already past
    // (its loop would spin every millisecond until t2).
    let next = env.host.next_alarm_time().unwrap();
    assert_eq!(next, Some(t2), "next alarm time {next:?} with now = {}", not_before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_alarm_earlier_than_the_retry_fires_at_its_own_time() {
    let env = Env::new();
    fail_first(&env, 1);
    let t1 = NOW + 1_000;
    env.obj("r").set_alarm(t1).await.unwrap();
    env.clock.set(t1);
    assert_eq!(run_alarms(&env.host).await, 1);
    let not_before = env.host.pending_retries()[0].1.not_before;
    assert!(not_before >= t1 + 2_000);
    // setAlarm replaces the alarm, retry included: the new time is what counts.
    let t2 = t1 + 500;
    env.obj("r").set_alarm(t2).await.unwrap();
    env.clock.set(t2);
    assert_eq!(run_alarms(&env.host).await, 1, "the new alarm waited for the old one's retry");
    assert_eq!(alarm_lines(&env), [alarm_line(t1, 0), alarm_line(t2, 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_alarms_fire_with_their_name_after_the_object_alarm() {
    let env = Env::new();
    env.shared.set_request_hook(|_, ctx| {
        let now = ctx.now_ms();
        ctx.storage().set_named_alarm("m", now + 200)?;
        ctx.storage().set_named_alarm("n", now + 100)?;
        ctx.storage().set_alarm(now + 300)?;
        let listed = ctx.storage().named_alarms()?;
        let body = listed.iter().map(|(n, t)| format!("{n}@{}", t - now)).collect::<Vec<_>>().join(",");
        Ok(http::Response::new(Bytes::from(body)))
    });
    let res = env.host.request("p", "r", http_request("POST", "/", "")).await.unwrap();
    assert_eq!(res.body().as_ref(), b"n@100,m@200");
    // The index holds the earliest of them.
    assert_eq!(env.host.next_alarm_time().unwrap(), Some(NOW + 100));
    env.clock.set(NOW + 100);
    assert_eq!(run_alarms(&env.host).await, 1);
    assert_eq!(alarm_lines(&env), [format!("alarm:n:{}:0:false:get={}:named=none", NOW + 100, NOW + 300)]);
    assert_eq!(env.host.next_alarm_time().unwrap(), Some(NOW + 200));
    // All due at once: the object's alarm first, then the named ones by time.
    env.clock.set(NOW + 1_000);
    env.host.request("p", "r", http_request("POST", "/", "")).await.unwrap();
    env.take_log();
    env.clock.set(NOW + 2_000);
    let mut ran = 0;
    for _ in 0..10 {
        match run_alarms(&env.host).await {
            0 => break,
            n => ran += n,
        }
    }
    assert_eq!(ran, 3);
    let now = NOW + 1_000;
    assert_eq!(
        alarm_lines(&env),
        [
            format!("alarm:-:{}:0:false:get=none:named=-", now + 300),
            format!("alarm:n:{}:0:false:get=none:named=none", now + 100),
            format!("alarm:m:{}:0:false:get=none:named=none", now + 200),
        ]
    );
    // Before that, the object alarm and "m" from the first request were replaced by the second.
    let left = env.obj("r").run(|s| Ok::<_, cairn_runtime::Error>(s.named_alarms()?)).await.unwrap();
    assert_eq!(left, Vec::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_named_alarm_is_retried_under_its_name() {
    let env = Env::new();
    fail_first(&env, 1);
    let (a, mut rx) = env.join("r", "a", "").await;
    let t = NOW + 50;
    assert_eq!(Env::ask(&a, &mut rx, &format!("named:tick:{t}")).await, "ok");
    env.clock.set(t);
    assert_eq!(run_alarms(&env.host).await, 1);
    let retry = env.host.pending_retries()[0].1.clone();
    assert_eq!((retry.name.as_deref(), retry.scheduled_time, retry.retry_count), (Some("tick"), t, 1));
    let still = env.obj("r").run(|s| Ok::<_, cairn_runtime::Error>(s.get_named_alarm("tick")?)).await.unwrap();
    assert_eq!(still, Some(t));
    env.clock.set(retry.not_before);
    assert_eq!(run_alarms(&env.host).await, 1);
    assert_eq!(
        alarm_lines(&env),
        [format!("alarm:tick:{t}:0:false:get=none:named=none"), format!("alarm:tick:{t}:1:true:get=none:named=none"),]
    );
    let gone = env.obj("r").run(|s| Ok::<_, cairn_runtime::Error>(s.get_named_alarm("tick")?)).await.unwrap();
    assert_eq!(gone, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_can_reach_the_rooms_sockets_and_wakes_a_hibernating_room() {
    let env = Env::new();
    env.shared.set_alarm_hook(|info, ctx| {
        ctx.broadcast(cairn_rooms::Frame::text(format!("tick@{}", info.scheduled_time)), &[]);
        Ok(())
    });
    let (a, mut rx) = env.join("r", "a", "").await;
    assert_eq!(Env::ask(&a, &mut rx, &format!("alarm:{}", NOW + 20_000)).await, "ok");
    env.clock.advance(10_000);
    assert_eq!(env.hibernate("r").await, 1);
    env.clock.advance(10_000);
    assert_eq!(run_alarms(&env.host).await, 1);
    assert_eq!(recv_text(&mut rx).await, format!("tick@{}", NOW + 20_000));
    let stats = env.host.stats();
    assert_eq!((stats.wakeups, stats.active_rooms, stats.hibernated_rooms), (1, 1, 0));
    a.message(Message::Text("count".to_owned())).await;
    assert_eq!(recv_text(&mut rx).await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_survive_a_restart_and_are_found_without_opening_every_object() {
    let mut env = Env::new();
    for i in 0..8 {
        env.obj(&format!("quiet-{i}")).put("x", &i).await.unwrap();
    }
    env.obj("later").set_alarm(NOW + 1_000_000).await.unwrap();
    let t = NOW + 1_000;
    env.obj("due").set_alarm(t).await.unwrap();
    env.restart();
    env.clock.set(NOW + 5_000);
    assert_eq!(env.rt.stats().objects_opened, 0);
    assert_eq!(env.host.next_alarm_time().unwrap(), Some(NOW + 1_000_000));
    assert_eq!(env.rt.stats().objects_opened, 0);
    // Overdue: fires on the first pass.
    assert_eq!(run_alarms(&env.host).await, 1);
    assert_eq!(alarm_lines(&env), [alarm_line(t, 0)]);
    assert_eq!(env.rt.stats().objects_opened, 1);
    assert_eq!(env.obj("due").get_alarm().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_alarm_survives_a_restart() {
    let mut env = Env::new();
    env.obj("r").run(|s| Ok::<_, cairn_runtime::Error>(s.set_named_alarm("daily", NOW + 1_000)?)).await.unwrap();
    env.restart();
    env.clock.set(NOW + 2_000);
    assert_eq!(run_alarms(&env.host).await, 1);
    assert_eq!(alarm_lines(&env), [format!("alarm:daily:{}:0:false:get=none:named=none", NOW + 1_000)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_failed_alarm_fires_at_once_counting_from_zero() {
    let mut env = Env::new();
    fail_first(&env, 1);
    let t = NOW + 1_000;
    env.obj("r").set_alarm(t).await.unwrap();
    env.clock.set(t);
    assert_eq!(run_alarms(&env.host).await, 1);
    assert_eq!(env.host.pending_retries().len(), 1);
    env.restart();
    assert_eq!(env.host.pending_retries(), Vec::new());
    // Retry state is in memory: the overdue alarm fires at once, as a first run.
    assert_eq!(run_alarms(&env.host).await, 1);
    assert_eq!(alarm_lines(&env), [alarm_line(t, 0), alarm_line(t, 0)]);
    assert_eq!(env.obj("r").get_alarm().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarm_batch_limits_the_rooms_fired_per_pass() {
    let env = Env::with_config(HostConfig { alarm_batch: 2, ..HostConfig::default() });
    for i in 0..5 {
        env.obj(&format!("r{i}")).set_alarm(NOW + 10 + i).await.unwrap();
    }
    env.clock.set(NOW + 100);
    let mut passes = Vec::new();
    for _ in 0..5 {
        passes.push(run_alarms(&env.host).await);
    }
    assert_eq!(passes, [2, 2, 1, 0, 0]);
    assert_eq!(alarm_lines(&env).len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_of_an_unregistered_party_are_left_alone() {
    let env = Env::new();
    env.obj_in("elsewhere", "x").set_alarm(NOW + 1).await.unwrap();
    env.obj("r").set_alarm(NOW + 1).await.unwrap();
    env.clock.set(NOW + 10);
    assert_eq!(run_alarms(&env.host).await, 1);
    assert_eq!(env.obj_in("elsewhere", "x").get_alarm().await.unwrap(), Some(NOW + 1));
}
