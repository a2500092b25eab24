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

// ---- Named alarms (Cairn's addition: any number per object, beside the alarm) ----------------

#[test]
fn a_named_alarm_name_must_be_1_to_256_bytes() {
    let (_, mut obj) = clocked();
    let e = expect_code(obj.set_named_alarm("", NOW + 10), "storage.invalid_alarm_name");
    assert_eq!(e.to_string(), "alarm name must be 1 to 256 bytes, got 0 bytes");
    let long = "é".repeat(129);
    let e = expect_code(obj.set_named_alarm(&long, NOW + 10), "storage.invalid_alarm_name");
    assert_eq!(e.to_string(), "alarm name must be 1 to 256 bytes, got 258 bytes");
    assert!(!obj.has_pending_writes());
    assert_eq!(cairn_storage::MAX_ALARM_NAME_BYTES, 256);
    let max = "n".repeat(256);
    obj.commit_event(|s| s.set_named_alarm(&max, NOW + 10));
    assert_eq!(obj.get_named_alarm(&max).unwrap(), Some(NOW + 10));
}

#[test]
fn a_named_alarm_time_at_or_below_zero_is_rejected() {
    let (_, mut obj) = clocked();
    for t in [0, -1] {
        let e = expect_code(obj.set_named_alarm("n", t), "storage.invalid_alarm_time");
        assert_eq!(e.to_string(), "setAlarm() cannot be called with an alarm time <= 0");
    }
    assert_eq!(obj.named_alarms().unwrap(), Vec::new());
}

#[test]
fn named_alarms_are_listed_by_time_then_name_and_can_be_replaced_and_deleted() {
    let (_, mut obj) = clocked();
    assert_eq!(obj.named_alarms().unwrap(), Vec::new());
    assert_eq!(obj.get_named_alarm("a").unwrap(), None);
    obj.commit_event(|s| {
        s.set_named_alarm("c", NOW + 30)?;
        s.set_named_alarm("b", NOW + 10)?;
        s.set_named_alarm("a", NOW + 10)
    });
    let listed = obj.named_alarms().unwrap();
    assert_eq!(listed, [("a".to_owned(), NOW + 10), ("b".to_owned(), NOW + 10), ("c".to_owned(), NOW + 30)]);
    obj.commit_event(|s| s.set_named_alarm("a", NOW + 50));
    assert_eq!(obj.get_named_alarm("a").unwrap(), Some(NOW + 50));
    assert!(obj.commit_event(|s| s.delete_named_alarm("b")));
    assert!(!obj.delete_named_alarm("b").unwrap());
    assert!(!obj.has_pending_writes());
    let listed = obj.named_alarms().unwrap();
    assert_eq!(listed, [("c".to_owned(), NOW + 30), ("a".to_owned(), NOW + 50)]);
    // Named alarms and the alarm are independent.
    assert_eq!(obj.get_alarm().unwrap(), None);
}

#[test]
fn a_past_named_alarm_is_clamped_to_now_and_setting_it_again_writes_nothing() {
    let (clock, mut obj) = clocked();
    obj.commit_event(|s| s.set_named_alarm("n", 1));
    assert_eq!(obj.get_named_alarm("n").unwrap(), Some(NOW));
    obj.set_named_alarm("n", NOW).unwrap();
    assert!(!obj.has_pending_writes());
    clock.advance(100);
    obj.commit_event(|s| s.set_named_alarm("n", NOW + 5));
    assert_eq!(obj.get_named_alarm("n").unwrap(), Some(NOW + 100));
}

#[test]
fn the_next_alarm_is_the_earliest_of_the_alarm_and_the_named_alarms() {
    let (_, mut obj) = clocked();
    assert_eq!(obj.next_alarm(), None);
    obj.commit_event(|s| s.set_alarm(NOW + 100));
    assert_eq!(obj.next_alarm(), Some(NOW + 100));
    obj.set_named_alarm("soon", NOW + 40).unwrap();
    // The open event's change shows in next_alarm, not in the committed one.
    assert_eq!(obj.next_alarm(), Some(NOW + 40));
    assert_eq!(obj.committed_next_alarm(), Some(NOW + 100));
    assert_eq!(obj.pending_alarm_change(), Some(Some(NOW + 40)));
    let info = obj.commit().unwrap().unwrap();
    assert_eq!(info.alarm_change, Some(Some(NOW + 40)));
    assert_eq!(obj.committed_next_alarm(), Some(NOW + 40));
    obj.commit_event(|s| s.delete_named_alarm("soon"));
    assert_eq!(obj.next_alarm(), Some(NOW + 100));
    obj.commit_event(|s| s.delete_alarm());
    assert_eq!(obj.next_alarm(), None);
}

#[test]
fn a_rolled_back_event_undoes_the_named_alarms_it_set() {
    let (_, mut obj) = clocked();
    // The first named alarm also creates the table: both roll back.
    let r: Result<(), Error> = obj.event(|s| {
        s.set_named_alarm("n", NOW + 10)?;
        assert_eq!(s.get_named_alarm("n")?, Some(NOW + 10));
        Err(Error::SqlNoStatement)
    });
    assert!(r.is_err());
    assert_eq!(obj.get_named_alarm("n").unwrap(), None);
    assert_eq!(obj.named_alarms().unwrap(), Vec::new());
    assert_eq!(obj.next_alarm(), None);
    obj.reopen();
    assert_eq!(obj.named_alarms().unwrap(), Vec::new());
    // With the table in place, a rolled-back change and a rolled-back delete.
    obj.commit_event(|s| s.set_named_alarm("n", NOW + 10));
    let r: Result<(), Error> = obj.event(|s| {
        s.set_named_alarm("n", NOW + 99)?;
        s.set_named_alarm("m", NOW + 1)?;
        Err(Error::SqlNoStatement)
    });
    assert!(r.is_err());
    assert_eq!(obj.named_alarms().unwrap(), [("n".to_owned(), NOW + 10)]);
    assert_eq!(obj.next_alarm(), Some(NOW + 10));
    obj.delete_named_alarm("n").unwrap();
    obj.rollback();
    assert_eq!(obj.get_named_alarm("n").unwrap(), Some(NOW + 10));
    assert_eq!(obj.next_alarm(), Some(NOW + 10));
}

#[test]
fn named_alarms_survive_reopening_the_object() {
    let (_, mut obj) = clocked();
    obj.commit_event(|s| {
        s.set_named_alarm("x", NOW + 7)?;
        s.set_named_alarm("y", NOW + 3)
    });
    obj.reopen();
    assert_eq!(obj.named_alarms().unwrap(), [("y".to_owned(), NOW + 3), ("x".to_owned(), NOW + 7)]);
    assert_eq!(obj.next_alarm(), Some(NOW + 3));
    assert_eq!(obj.committed_next_alarm(), Some(NOW + 3));
}

#[test]
fn delete_all_clears_the_named_alarms() {
    let (_, mut obj) = clocked();
    obj.commit_event(|s| {
        s.set_named_alarm("x", NOW + 7)?;
        s.set_alarm(NOW + 9)
    });
    obj.delete_all().unwrap();
    assert_eq!(obj.named_alarms().unwrap(), Vec::new());
    assert_eq!(obj.next_alarm(), None);
    let info = obj.commit().unwrap().unwrap();
    assert_eq!(info.alarm_change, Some(None));
    obj.reopen();
    assert_eq!(obj.named_alarms().unwrap(), Vec::new());
    assert_eq!(obj.next_alarm(), None);
    // And they can be set again afterwards.
    obj.commit_event(|s| s.set_named_alarm("x", NOW + 1));
    assert_eq!(obj.named_alarms().unwrap(), [("x".to_owned(), NOW + 1)]);
}

#[test]
fn the_named_alarm_table_is_reserved() {
    let (_, mut obj) = clocked();
    obj.commit_event(|s| s.set_named_alarm("x", NOW + 7));
    let r = obj.exec("SELECT * FROM _cairn_alarms", &[]);
    assert!(r.is_err(), "user SQL read the named alarm table");
    let r = obj.exec("DELETE FROM _cairn_alarms", &[]);
    assert!(r.is_err(), "user SQL wrote the named alarm table");
    obj.rollback();
    assert_eq!(obj.named_alarms().unwrap(), [("x".to_owned(), NOW + 7)]);
}
