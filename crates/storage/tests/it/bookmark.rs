//! Commit sequence numbers and bookmarks (spec 4). Cairn's bookmark is a commit sequence
//! number and timestamp; unlike workerd's ersatz counter, reading it does not write and
//! `delete_all` does not reset it.

use cairn_storage::{Bookmark, ListOptions, ManualClock};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

use crate::{Obj, rows};

#[test]
fn each_writing_event_commits_the_next_sequence_number() {
    let mut obj = Obj::new();
    assert_eq!(obj.committed_seq(), 0);
    for expected in 1..=5 {
        obj.put("k", &expected).unwrap();
        obj.exec("CREATE TABLE IF NOT EXISTS t(x)", &[]).unwrap();
        let info = obj.commit().unwrap().expect("a writing event commits");
        assert_eq!(info.seq, expected);
        assert_eq!(obj.committed_seq(), expected);
    }
}

#[test]
fn a_read_only_event_does_not_commit() {
    let mut obj = Obj::new();
    obj.commit_event(|s| {
        s.put("a", &1)?;
        s.exec("CREATE TABLE t(x)", &[]).map(drop)
    });
    let before = obj.current_bookmark();
    obj.get::<i64>("a").unwrap();
    obj.get_many(&["a", "b"]).unwrap();
    obj.list(&ListOptions::new()).unwrap();
    obj.get_alarm().unwrap();
    rows(&mut obj, "SELECT * FROM t", &[]);
    obj.database_size().unwrap();
    assert_eq!(obj.commit().unwrap(), None);
    assert_eq!(obj.committed_seq(), 1);
    assert_eq!(obj.current_bookmark(), before);
}

#[test]
fn an_event_whose_transactions_only_read_does_not_commit() {
    let mut obj = Obj::new();
    obj.commit_event(|s| s.put("a", &1));
    obj.transaction(|t| t.get::<i64>("a")).unwrap();
    obj.transaction_sync(|s| s.list(&ListOptions::new())).unwrap();
    assert!(!obj.has_pending_writes());
    assert_eq!(obj.current_bookmark().seq, 1);
    assert_eq!(obj.commit().unwrap(), None);
    assert_eq!(obj.committed_seq(), 1);
}

#[test]
fn the_sequence_number_persists_across_reopen() {
    let mut obj = Obj::new();
    for i in 0..3 {
        obj.commit_event(|s| s.put("k", &i));
    }
    let bookmark = obj.current_bookmark();
    obj.reopen();
    assert_eq!(obj.committed_seq(), 3);
    assert_eq!(obj.current_bookmark(), bookmark);
    obj.put("k", &9).unwrap();
    assert_eq!(obj.commit().unwrap().unwrap().seq, 4);
}

#[test]
fn delete_all_does_not_reset_the_sequence_number() {
    let mut obj = Obj::new();
    obj.commit_event(|s| s.put("a", &1));
    obj.commit_event(|s| s.put("b", &2));
    let before = obj.current_bookmark();
    obj.delete_all().unwrap();
    assert_eq!(obj.commit().unwrap().unwrap().seq, 3);
    assert!(obj.current_bookmark() > before);
    obj.reopen();
    assert_eq!(obj.committed_seq(), 3);
}

#[test]
fn bookmark_strings_sort_in_commit_order() {
    let clock = ManualClock::new(1_000);
    let mut obj = Obj::with_clock(&clock);
    let mut taken = vec![obj.current_bookmark().to_string()];
    for i in 0..20_i64 {
        // The clock jumps around; commit order still decides.
        clock.set(1_000 + (i * 7919) % 13 * 1_000_000);
        obj.commit_event(|s| s.put("k", &i));
        taken.push(obj.current_bookmark().to_string());
    }
    let mut sorted = taken.clone();
    sorted.sort();
    assert_eq!(sorted, taken);
    sorted.dedup();
    assert_eq!(sorted.len(), taken.len(), "bookmarks strictly increase");
}

#[test]
fn a_bookmark_parses_back_from_its_string() {
    let clock = ManualClock::new(1_700_000_000_123);
    let mut obj = Obj::with_clock(&clock);
    obj.commit_event(|s| s.put("k", &1));
    let b = obj.current_bookmark();
    assert_eq!(b, Bookmark { seq: 1, timestamp_ms: 1_700_000_000_123 });
    let s = b.to_string();
    assert_eq!(s, "00000000-00000001-00000000-00000000000000000000018bcfe5687b");
    assert_eq!(s.parse::<Bookmark>().unwrap(), b);
}

#[test]
fn a_new_objects_bookmark_is_all_zeros() {
    let obj = Obj::new();
    assert_eq!(obj.current_bookmark().to_string(), "00000000-00000000-00000000-00000000000000000000000000000000");
}

#[test]
fn the_bookmark_covers_the_open_events_writes() {
    let clock = ManualClock::new(5_000);
    let mut obj = Obj::with_clock(&clock);
    obj.commit_event(|s| s.put("a", &1));
    let committed = obj.current_bookmark();
    assert_eq!(committed.seq, 1);
    obj.get::<i64>("a").unwrap();
    assert_eq!(obj.current_bookmark(), committed, "reads do not move the bookmark");
    obj.put("b", &2).unwrap();
    let open = obj.current_bookmark();
    assert_eq!(open.seq, 2);
    assert!(open > committed);
    let info = obj.commit().unwrap().unwrap();
    assert_eq!(info.seq, open.seq);
    assert_eq!(obj.current_bookmark().seq, 2);
}

#[test]
fn taking_a_bookmark_does_not_write() {
    let mut obj = Obj::new();
    obj.commit_event(|s| s.put("a", &1));
    let first = obj.current_bookmark();
    let second = obj.current_bookmark();
    assert_eq!(first, second);
    assert!(!obj.has_pending_writes());
    assert_eq!(obj.commit().unwrap(), None);
}

#[test]
fn a_rolled_back_event_does_not_use_up_a_sequence_number() {
    let mut obj = Obj::new();
    obj.commit_event(|s| s.put("a", &1));
    obj.put("b", &2).unwrap();
    assert_eq!(obj.current_bookmark().seq, 2);
    obj.rollback();
    assert_eq!(obj.current_bookmark().seq, 1);
    obj.put("c", &3).unwrap();
    assert_eq!(obj.commit().unwrap().unwrap().seq, 2);
}

#[test]
fn malformed_bookmarks_do_not_parse() {
    for s in [
        "",
        "xyz",
        "00000000-00000001-00000000",
        "00000000-00000001-00000000-0000000000000000000000000000000",
        "00000000-00000001-00000000-000000000000000000000000000000000",
        "0000000g-00000001-00000000-00000000000000000000000000000000",
        "00000000-00000001-00000000-00000000000000000000000000000000-",
        "+0000000-00000001-00000000-00000000000000000000000000000000",
        "00000000-00000001-00000000-ffffffffffffffffffffffffffffffff",
    ] {
        assert!(s.parse::<Bookmark>().is_err(), "{s:?} parsed");
    }
}

#[test]
fn a_sequence_number_above_32_bits_uses_the_high_group() {
    let b = Bookmark { seq: (7 << 32) | 9, timestamp_ms: 255 };
    let s = b.to_string();
    assert_eq!(s, "00000007-00000009-00000000-000000000000000000000000000000ff");
    assert_eq!(s.parse::<Bookmark>().unwrap(), b);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0xB00C),
        ..ProptestConfig::default()
    })]

    #[test]
    fn bookmark_string_order_matches_bookmark_order(
        a in (any::<u64>(), any::<u64>()), b in (any::<u64>(), any::<u64>()),
    ) {
        let a = Bookmark { seq: a.0, timestamp_ms: a.1 };
        let b = Bookmark { seq: b.0, timestamp_ms: b.1 };
        prop_assert_eq!(a.to_string().cmp(&b.to_string()), a.cmp(&b));
        prop_assert_eq!(a.to_string().parse::<Bookmark>().unwrap(), a);
    }
}
