//! The alarm API (spec 5.1); delivery is the runtime's job, not the storage engine's.

use cairn_storage::{Error, ManualClock};

use crate::{Obj, expect_code};

const NOW: i64 = 1_700_000_000_000;

fn clocked() -> (ManualClock, Obj) {
    let clock = ManualClock::new(NOW);
    let obj = Obj::with_clock(&clock);
    (clock, obj)
}

#[test]
fn a_new_object_has_no_alarm() {
    let (_, obj) = clocked();
    assert_eq!(obj.get_alarm().unwrap(), None);
}

#[test]
fn an_alarm_time_at_or_below_zero_is_rejected() {
    let (_, mut obj) = clocked();
    for t in [0, -1, i64::MIN] {
        let e = expect_code(obj.set_alarm(t), "storage.invalid_alarm_time");
        assert_eq!(e.to_string(), "setAlarm() cannot be called with an alarm time <= 0");
    }
    assert!(!obj.has_pending_writes());
    assert_eq!(obj.get_alarm().unwrap(), None);
}

#[test]
fn a_future_alarm_is_stored_as_given() {
    let (_, mut obj) = clocked();
    obj.commit_event(|s| s.set_alarm(NOW + 60_000));
    assert_eq!(obj.get_alarm().unwrap(), Some(NOW + 60_000));
}

#[test]
fn an_alarm_in_the_past_is_clamped_to_now() {
    let (clock, mut obj) = clocked();
    obj.commit_event(|s| s.set_alarm(1));
    assert_eq!(obj.get_alarm().unwrap(), Some(NOW));
    clock.advance(500);
    obj.commit_event(|s| s.set_alarm(NOW + 499));
    assert_eq!(obj.get_alarm().unwrap(), Some(NOW + 500));
}

#[test]
fn setting_the_same_alarm_again_writes_nothing() {
    let (_, mut obj) = clocked();
    obj.commit_event(|s| s.set_alarm(NOW + 10));
    let seq = obj.committed_seq();
    obj.set_alarm(NOW + 10).unwrap();
    assert!(!obj.has_pending_writes());
    assert_eq!(obj.commit().unwrap(), None);
    assert_eq!(obj.committed_seq(), seq);
}

#[test]
fn a_past_alarm_clamped_to_the_current_alarm_writes_nothing() {
    let (_, mut obj) = clocked();
    obj.commit_event(|s| s.set_alarm(NOW));
    obj.set_alarm(NOW - 1000).unwrap();
    assert!(!obj.has_pending_writes());
}

#[test]
fn a_new_alarm_replaces_the_old_one() {
    let (_, mut obj) = clocked();
    obj.commit_event(|s| s.set_alarm(NOW + 10));
    obj.commit_event(|s| s.set_alarm(NOW + 5));
    assert_eq!(obj.get_alarm().unwrap(), Some(NOW + 5));
    obj.commit_event(|s| s.set_alarm(NOW + 50));
    assert_eq!(obj.get_alarm().unwrap(), Some(NOW + 50));
}

#[test]
fn delete_alarm_removes_the_alarm() {
    let (_, mut obj) = clocked();
    obj.commit_event(|s| s.set_alarm(NOW + 10));
    obj.commit_event(|s| s.delete_alarm());
    assert_eq!(obj.get_alarm().unwrap(), None);
    obj.reopen();
    assert_eq!(obj.get_alarm().unwrap(), None);
}

#[test]
fn delete_alarm_without_an_alarm_writes_nothing() {
    let (_, mut obj) = clocked();
    obj.delete_alarm().unwrap();
    assert!(!obj.has_pending_writes());
    assert_eq!(obj.commit().unwrap(), None);
}

#[test]
fn get_alarm_sees_the_open_events_change() {
    let (_, mut obj) = clocked();
    obj.commit_event(|s| s.set_alarm(NOW + 10));
    obj.set_alarm(NOW + 20).unwrap();
    assert_eq!(obj.get_alarm().unwrap(), Some(NOW + 20));
    obj.delete_alarm().unwrap();
    assert_eq!(obj.get_alarm().unwrap(), None);
    obj.rollback();
    assert_eq!(obj.get_alarm().unwrap(), Some(NOW + 10));
}

#[test]
fn an_alarm_change_is_atomic_with_kv_writes() {
    let (_, mut obj) = clocked();
    let r: Result<(), Error> = obj.event(|s| {
        s.put("a", &1)?;
        s.set_alarm(NOW + 10)?;
        Err(Error::SqlNoStatement)
    });
    assert!(r.is_err());
    assert_eq!(obj.get_alarm().unwrap(), None);
    assert_eq!(obj.get::<i64>("a").unwrap(), None);
    obj.commit_event(|s| {
        s.put("a", &1)?;
        s.set_alarm(NOW + 10)
    });
    obj.reopen();
    assert_eq!(obj.get_alarm().unwrap(), Some(NOW + 10));
    assert_eq!(obj.get::<i64>("a").unwrap(), Some(1));
}

#[test]
fn the_alarm_survives_reopening_the_object() {
    let (clock, mut obj) = clocked();
    obj.commit_event(|s| s.set_alarm(NOW + 123));
    // A later clock does not change a stored alarm, even one now in the past.
    clock.advance(1_000_000);
    obj.reopen();
    assert_eq!(obj.get_alarm().unwrap(), Some(NOW + 123));
}

#[test]
fn delete_all_deletes_the_alarm() {
    let (_, mut obj) = clocked();
    obj.commit_event(|s| s.set_alarm(NOW + 10));
    obj.delete_all().unwrap();
    assert_eq!(obj.get_alarm().unwrap(), None);
    let info = obj.commit().unwrap().unwrap();
    assert_eq!(info.alarm_change, Some(None));
    obj.reopen();
    assert_eq!(obj.get_alarm().unwrap(), None);
}

#[test]
fn an_alarm_set_after_delete_all_in_the_same_event_is_kept() {
    let (_, mut obj) = clocked();
    obj.commit_event(|s| s.set_alarm(NOW + 10));
    obj.commit_event(|s| {
        s.delete_all()?;
        s.set_alarm(NOW + 20)
    });
    obj.reopen();
    assert_eq!(obj.get_alarm().unwrap(), Some(NOW + 20));
}
