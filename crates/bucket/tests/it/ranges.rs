//! Ranges of get (spec 9.4): offset, length, suffix, clamping, unsatisfiable ranges, and the
//! `Range` header.

use cairn_bucket::{ByteRange, GetOptions, RangeSpec};

use crate::{BUCKET, Env, body, expect_err};

/// An inline body, a file body, and a file body read in several chunks (over 1 MiB).
const RANGE_SIZES: [usize; 3] = [10, 100, 2 * 1024 * 1024 + 37];

fn spec(offset: Option<u64>, length: Option<u64>, suffix: Option<u64>) -> RangeSpec {
    RangeSpec { offset, length, suffix }
}

async fn read_range(env: &Env, key: &str, range: RangeSpec) -> cairn_bucket::Result<(ByteRange, Vec<u8>)> {
    let options = GetOptions { range: Some(range), ..Default::default() };
    let outcome = env.svc.get(BUCKET, key, options).await?.expect("the object exists");
    let cairn_bucket::GetOutcome::Body(b) = outcome else { panic!("no condition was given") };
    assert!(b.partial);
    assert_eq!(b.object.size, env.svc.head(BUCKET, key).await?.expect("exists").size);
    let range = b.range;
    Ok((range, b.body.collect().await.expect("read the body")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_select_the_bytes_r2_selects() {
    let env = Env::new().await;
    for (i, size) in RANGE_SIZES.into_iter().enumerate() {
        let key = format!("r{size}");
        let bytes = body(size, i as u8);
        env.put(&key, &bytes).await;
        let n = size as u64;
        let cases = [
            // offset alone reads to the end; length alone starts at 0.
            (spec(Some(3), None, None), 3, n - 3),
            (spec(None, Some(4), None), 0, 4),
            (spec(Some(2), Some(5), None), 2, 5),
            (spec(Some(0), None, None), 0, n),
            (spec(Some(n - 1), None, None), n - 1, 1),
            // A length past the end is clamped.
            (spec(Some(n - 2), Some(10), None), n - 2, 2),
            (spec(None, Some(n + 1000), None), 0, n),
            // The last bytes; a suffix over the size is the whole object.
            (spec(None, None, Some(3)), n - 3, 3),
            (spec(None, None, Some(n)), 0, n),
            (spec(None, None, Some(n + 5)), 0, n),
            (spec(None, None, None), 0, n),
        ];
        for (range, offset, length) in cases {
            let (served, read) = read_range(&env, &key, range).await.unwrap();
            assert_eq!(served, ByteRange { offset, length }, "{range:?} of {size}");
            let (start, end) = (offset as usize, (offset + length) as usize);
            assert!(read == bytes[start..end], "{range:?} of {size}: wrong bytes");
        }
        if size > 1024 * 1024 {
            // Across the 1 MiB chunks a file is read in.
            let range = spec(Some(1024 * 1024 - 3), Some(1024 * 1024 + 10), None);
            let (served, read) = read_range(&env, &key, range).await.unwrap();
            assert_eq!(served, ByteRange { offset: 1024 * 1024 - 3, length: 1024 * 1024 + 10 });
            assert!(read == bytes[1024 * 1024 - 3..2 * 1024 * 1024 + 7]);
        }
        // Unsatisfiable: offset past the end, nothing left, a zero length, a zero suffix.
        for range in [
            spec(Some(n + 1), None, None),
            spec(Some(n), None, None),
            spec(Some(n), Some(1), None),
            spec(None, Some(0), None),
            spec(Some(2), Some(0), None),
            spec(None, None, Some(0)),
        ] {
            let err = expect_err(
                read_range(&env, &key, range).await,
                Some(10039),
                "bucket.invalid_range",
                "The requested range is not satisfiable",
            );
            assert!(matches!(err, cairn_bucket::Error::InvalidRange { size: s } if s == n), "{err:?}");
        }
    }
    env.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_range_of_an_empty_object_is_satisfiable() {
    let env = Env::new().await;
    env.put("empty", b"").await;
    for range in [spec(Some(0), None, None), spec(None, Some(5), None), spec(None, None, Some(1))] {
        expect_err(read_range(&env, "empty", range).await, Some(10039), "bucket.invalid_range", "");
    }
    let (_, served, bytes) = env.read(BUCKET, "empty", GetOptions::default()).await.unwrap().unwrap();
    assert_eq!((served, bytes), (ByteRange { offset: 0, length: 0 }, Vec::new()));
    env.close();
}

#[test]
fn range_headers_parse_one_range() {
    let h = RangeSpec::from_header;
    assert_eq!(h("bytes=0-4"), Some(spec(Some(0), Some(5), None)));
    assert_eq!(h("bytes=2-2"), Some(spec(Some(2), Some(1), None)));
    assert_eq!(h("bytes=5-"), Some(spec(Some(5), None, None)));
    assert_eq!(h("bytes=-3"), Some(spec(None, None, Some(3))));
    assert_eq!(h("bytes=0-999"), Some(spec(Some(0), Some(1000), None)));
    assert_eq!(h(" bytes=1-2 "), Some(spec(Some(1), Some(2), None)));
    // Several ranges, another unit, or garbage: the whole object.
    for whole in [
        "bytes=0-1,3-4",
        "bytes=0-1, 3-4",
        "items=0-1",
        "bytes=x-",
        "bytes=5-2",
        "garbage",
        "",
        "bytes=",
        "bytes=-",
        "bytes=1-2-3",
        "0-4",
    ] {
        assert_eq!(h(whole), None, "{whole:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_headers_are_honoured() {
    let env = Env::new().await;
    for (i, size) in [10usize, 100].into_iter().enumerate() {
        let key = format!("h{size}");
        let bytes = body(size, i as u8);
        env.put(&key, &bytes).await;
        let n = size as u64;
        for (header, offset, length) in
            [("bytes=0-4", 0, 5), ("bytes=3-", 3, n - 3), ("bytes=-4", n - 4, 4), ("bytes=2-100000", 2, n - 2)]
        {
            let range = RangeSpec::from_header(header).unwrap();
            let (served, read) = read_range(&env, &key, range).await.unwrap();
            assert_eq!(served, ByteRange { offset, length }, "{header}");
            assert!(read == bytes[offset as usize..(offset + length) as usize], "{header}");
        }
        // An unparsable header reads the whole object.
        let options = GetOptions { range: RangeSpec::from_header("bytes=0-1,5-6"), ..Default::default() };
        let (_, served, read) = env.read(BUCKET, &key, options).await.unwrap().unwrap();
        assert_eq!((served, read), (ByteRange { offset: 0, length: n }, bytes));
    }
    env.close();
}
