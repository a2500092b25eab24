//! Events: the implicit transaction that groups every write until `commit` (spec 1.7 and 3.6).

use cairn_storage::{Error, ManualClock};

use crate::{Obj, all_keys, int, user_schema};

#[test]
fn an_event_that_returns_ok_commits_kv_sql_and_alarm_together() {
    let mut obj = Obj::new();
    let r = obj.event(|s| {
        s.put("a", &1)?;
        s.exec("CREATE TABLE t(x)", &[])?;
        s.exec("INSERT INTO t VALUES (1)", &[])?;
        s.set_alarm(i64::MAX / 2)?;
        Ok::<_, Error>(42)
    });
    assert_eq!(r.unwrap(), 42);
    assert!(!obj.has_pending_writes());
    obj.reopen();
    assert_eq!(obj.get::<i64>("a").unwrap(), Some(1));
    assert_eq!(int(&mut obj, "SELECT count(*) FROM t"), 1);
    assert_eq!(obj.get_alarm().unwrap(), Some(i64::MAX / 2));
}

#[test]
fn an_event_that_returns_err_rolls_back_everything_it_wrote() {
    let mut obj = Obj::new();
    obj.commit_event(|s| {
        s.put("kept", &0)?;
        s.set_alarm(i64::MAX / 3)
    });
    let seq = obj.committed_seq();
    let r: Result<(), Error> = obj.event(|s| {
        s.put("a", &1)?;
        s.delete("kept")?;
        s.exec("CREATE TABLE t(x)", &[])?;
        s.set_alarm(i64::MAX / 2)?;
        s.transaction(|t| t.put("b", &2))?;
        Err(Error::ListLimitNotPositive)
    });
    assert_eq!(r.unwrap_err().code(), "storage.list_limit_not_positive");
    assert!(!obj.has_pending_writes());
    assert_eq!(all_keys(&mut obj), ["kept"]);
    assert!(user_schema(&mut obj).is_empty());
    assert_eq!(obj.get_alarm().unwrap(), Some(i64::MAX / 3));
    assert_eq!(obj.committed_seq(), seq);
    obj.reopen();
    assert_eq!(all_keys(&mut obj), ["kept"]);
    assert_eq!(obj.get_alarm().unwrap(), Some(i64::MAX / 3));
}

#[test]
fn a_storage_error_returned_from_an_event_rolls_it_back() {
    let mut obj = Obj::new();
    let r = obj.event(|s| {
        s.put("a", &1)?;
        s.exec("bunk", &[])?;
        Ok::<_, Error>(())
    });
    assert_eq!(r.unwrap_err().code(), "sql.error");
    assert!(all_keys(&mut obj).is_empty());
}

#[test]
fn commit_and_rollback_end_an_event_made_of_direct_calls() {
    let mut obj = Obj::new();
    obj.put("a", &1).unwrap();
    assert!(obj.has_pending_writes());
    let info = obj.commit().unwrap().expect("a writing event commits");
    assert_eq!(info.seq, 1);
    assert!(!obj.has_pending_writes());
    obj.put("b", &2).unwrap();
    obj.rollback();
    assert!(!obj.has_pending_writes());
    assert_eq!(all_keys(&mut obj), ["a"]);
    assert_eq!(obj.commit().unwrap(), None);
    assert_eq!(obj.committed_seq(), 1);
}

#[test]
fn rollback_without_an_open_event_is_harmless() {
    let mut obj = Obj::new();
    obj.rollback();
    obj.rollback();
    obj.commit_event(|s| s.put("a", &1));
    obj.rollback();
    assert_eq!(all_keys(&mut obj), ["a"]);
}

#[test]
fn uncommitted_writes_are_lost_when_the_object_is_closed() {
    let mut obj = Obj::new();
    obj.commit_event(|s| s.put("committed", &1));
    obj.put("pending", &2).unwrap();
    obj.exec("CREATE TABLE pending_t(x)", &[]).unwrap();
    obj.set_alarm(i64::MAX / 2).unwrap();
    obj.reopen();
    assert_eq!(all_keys(&mut obj), ["committed"]);
    assert!(user_schema(&mut obj).is_empty());
    assert_eq!(obj.get_alarm().unwrap(), None);
    assert_eq!(obj.committed_seq(), 1);
}

#[test]
fn commit_info_reports_sequence_timestamp_and_alarm_change() {
    let clock = ManualClock::new(1_000);
    let mut obj = Obj::with_clock(&clock);
    obj.put("a", &1).unwrap();
    let info = obj.commit().unwrap().unwrap();
    assert_eq!((info.seq, info.timestamp_ms, info.alarm_change), (1, 1_000, None));
    clock.set(2_000);
    obj.set_alarm(5_000).unwrap();
    let info = obj.commit().unwrap().unwrap();
    assert_eq!((info.seq, info.timestamp_ms, info.alarm_change), (2, 2_000, Some(Some(5_000))));
    obj.delete_alarm().unwrap();
    let info = obj.commit().unwrap().unwrap();
    assert_eq!(info.alarm_change, Some(None));
    // Setting and deleting within one event is no change.
    obj.set_alarm(9_000).unwrap();
    obj.delete_alarm().unwrap();
    let info = obj.commit().unwrap().unwrap();
    assert_eq!(info.alarm_change, None);
}

#[test]
fn commit_timestamps_never_go_backwards() {
    let clock = ManualClock::new(10_000);
    let mut obj = Obj::with_clock(&clock);
    obj.put("a", &1).unwrap();
    let first = obj.commit().unwrap().unwrap();
    clock.set(5_000);
    obj.put("a", &2).unwrap();
    let second = obj.commit().unwrap().unwrap();
    assert_eq!(second.seq, first.seq + 1);
    assert!(second.timestamp_ms >= first.timestamp_ms);
}
