use super::*;

/// One compact frame of an all-zero page 1, marked as a commit of a one-page database.
fn frame() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&1u32.to_be_bytes());
    f.extend_from_slice(&1u32.to_be_bytes());
    f.extend_from_slice(&0u16.to_be_bytes());
    f.extend_from_slice(&0u16.to_be_bytes());
    f
}

fn segment_bytes(dir: &Path) -> Vec<u8> {
    let seg = std::fs::read_dir(log_dir(dir)).expect("log dir").next().expect("a segment").expect("entry").path();
    std::fs::read(seg).expect("read segment")
}

#[test]
fn records_round_trip_and_reading_stops_at_the_extension() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = CommitLog::create(dir.path(), 0, 1, false, 64 << 20).expect("create");
    for seq in 1..=3 {
        log.append("ns", "obj", seq, 0, &frame());
    }
    log.flush().expect("flush");
    let bytes = segment_bytes(dir.path());
    assert!(bytes.len() as u64 >= PREALLOCATE_BYTES, "the segment is extended ahead of the records");
    let recs = read_records(&bytes);
    assert_eq!(recs.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(recs.iter().all(|r| r.ns == "ns" && r.name == "obj"));
}

#[test]
fn a_torn_or_corrupt_record_ends_the_readable_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = CommitLog::create(dir.path(), 0, 1, false, 64 << 20).expect("create");
    for seq in 1..=3 {
        log.append("ns", "obj", seq, 0, &frame());
    }
    log.flush().expect("flush");
    let mut bytes = segment_bytes(dir.path());
    let record = 12 + 2 + 2 + 2 + 3 + 16 + frame().len();
    // Flip a byte inside the second record's body: its checksum no longer holds.
    bytes[record + 20] ^= 0xff;
    assert_eq!(read_records(&bytes).len(), 1);
    // Cut the file inside the first record: nothing is readable.
    assert_eq!(read_records(&bytes[..record - 1]).len(), 0);
}

#[test]
fn a_gap_between_the_file_and_the_log_stops_recovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    // An object whose file holds commit 1.
    let path = layout::object_path(dir.path(), "ns", "obj");
    let mut obj = ObjectStorage::open(&path, &OpenOptions::default()).expect("open");
    obj.event(|s| s.put("k", &1)).expect("commit 1");
    drop(obj);
    // A log that continues at commit 3.
    let mut log = CommitLog::create(dir.path(), 0, 1, false, 64 << 20).expect("create");
    log.append("ns", "obj", 3, 0, &frame());
    log.flush().expect("flush");
    drop(log);
    let err = recover(dir.path(), None).expect_err("gap");
    assert_eq!(err.code(), "runtime.recovery_failed");
}

#[test]
fn records_already_in_the_file_are_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = layout::object_path(dir.path(), "ns", "obj");
    let mut obj = ObjectStorage::open(&path, &OpenOptions::default()).expect("open");
    obj.event(|s| s.put("k", &1)).expect("commit 1");
    obj.event(|s| s.put("k", &2)).expect("commit 2");
    drop(obj);
    // Records for commits the file already holds (their frames would be wrong if applied).
    let mut log = CommitLog::create(dir.path(), 0, 1, false, 64 << 20).expect("create");
    log.append("ns", "obj", 1, 0, &frame());
    log.append("ns", "obj", 2, 0, &frame());
    log.flush().expect("flush");
    drop(log);
    let report = recover(dir.path(), None).expect("recover");
    assert_eq!((report.records, report.objects_repaired), (2, 0));
    let mut obj = ObjectStorage::open(&path, &OpenOptions::default()).expect("reopen");
    assert_eq!(obj.get::<i64>("k").expect("get"), Some(2));
    assert!(std::fs::read_dir(log_dir(dir.path())).expect("log dir").next().is_none(), "segments are removed");
}
