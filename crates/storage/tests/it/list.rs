//! `list()` option rules and key ordering (spec 1.2 and 1.5).

use cairn_storage::ListOptions;

use crate::{Obj, expect_code, keys, seed};

const KEYS: [&str; 9] = ["a", "aa", "ab", "abc", "abd", "b", "ba", "c", "d"];

fn seeded() -> Obj {
    let mut obj = Obj::new();
    seed(&mut obj, &KEYS);
    obj
}

fn list(obj: &mut Obj, options: ListOptions) -> Vec<String> {
    keys(&obj.list(&options).expect("list succeeds"))
}

#[test]
fn list_without_options_returns_every_key_in_ascending_order() {
    let mut obj = seeded();
    assert_eq!(list(&mut obj, ListOptions::new()), KEYS);
}

#[test]
fn list_of_an_empty_object_is_empty() {
    let mut obj = Obj::new();
    assert!(list(&mut obj, ListOptions::new()).is_empty());
    assert!(list(&mut obj, ListOptions::new().reverse(true).limit(3)).is_empty());
}

#[test]
fn list_start_is_inclusive_and_end_is_exclusive() {
    let mut obj = seeded();
    assert_eq!(list(&mut obj, ListOptions::new().start("ab").end("b")), ["ab", "abc", "abd"]);
    assert_eq!(list(&mut obj, ListOptions::new().start("abb")), ["abc", "abd", "b", "ba", "c", "d"]);
    assert_eq!(list(&mut obj, ListOptions::new().end("aa")), ["a"]);
}

#[test]
fn list_with_start_and_start_after_is_rejected() {
    let mut obj = seeded();
    let e =
        expect_code(obj.list(&ListOptions::new().start("a").start_after("b")), "storage.list_start_and_start_after");
    assert_eq!(e.to_string(), "list() cannot be called with both start and startAfter values.");
}

#[test]
fn list_with_a_zero_limit_is_rejected() {
    let mut obj = seeded();
    let e = expect_code(obj.list(&ListOptions::new().limit(0)), "storage.list_limit_not_positive");
    assert_eq!(e.to_string(), "List limit must be positive.");
    // The limit is checked even when the range is empty.
    expect_code(obj.list(&ListOptions::new().start("z").end("a").limit(0)), "storage.list_limit_not_positive");
}

#[test]
fn list_start_after_excludes_the_key_itself() {
    let mut obj = seeded();
    assert_eq!(list(&mut obj, ListOptions::new().start_after("ab")), ["abc", "abd", "b", "ba", "c", "d"]);
    assert_eq!(list(&mut obj, ListOptions::new().start_after("ab").end("b")), ["abc", "abd"]);
    assert_eq!(list(&mut obj, ListOptions::new().start_after("abz")), ["b", "ba", "c", "d"]);
    assert!(list(&mut obj, ListOptions::new().start_after("d")).is_empty());
}

#[test]
fn list_start_after_includes_the_key_followed_by_nul() {
    // startAfter k is an inclusive start at k + "\0".
    let mut obj = Obj::new();
    seed(&mut obj, &["a", "a\0", "a\0x", "a\u{1}", "b"]);
    assert_eq!(list(&mut obj, ListOptions::new().start_after("a")), ["a\0", "a\0x", "a\u{1}", "b"]);
}

#[test]
fn list_with_a_limit_returns_the_first_keys() {
    let mut obj = seeded();
    assert_eq!(list(&mut obj, ListOptions::new().limit(3)), ["a", "aa", "ab"]);
    assert_eq!(list(&mut obj, ListOptions::new().limit(1)), ["a"]);
    assert_eq!(list(&mut obj, ListOptions::new().limit(100)), KEYS);
    assert_eq!(list(&mut obj, ListOptions::new().limit(u64::MAX)), KEYS);
}

#[test]
fn list_reverse_returns_keys_in_descending_order() {
    let mut obj = seeded();
    let mut expected = KEYS.to_vec();
    expected.reverse();
    assert_eq!(list(&mut obj, ListOptions::new().reverse(true)), expected);
    assert_eq!(list(&mut obj, ListOptions::new().reverse(true).start("ab").end("b")), ["abd", "abc", "ab"]);
}

#[test]
fn list_reverse_with_a_limit_returns_the_last_keys_descending() {
    let mut obj = seeded();
    assert_eq!(list(&mut obj, ListOptions::new().reverse(true).limit(3)), ["d", "c", "ba"]);
    assert_eq!(list(&mut obj, ListOptions::new().reverse(true).limit(2).end("b")), ["abd", "abc"]);
    assert_eq!(list(&mut obj, ListOptions::new().reverse(true).limit(2).prefix("a")), ["abd", "abc"]);
    assert_eq!(list(&mut obj, ListOptions::new().reverse(true).limit(2).start_after("ba")), ["d", "c"]);
}

#[test]
fn list_prefix_returns_only_keys_with_the_prefix() {
    let mut obj = seeded();
    assert_eq!(list(&mut obj, ListOptions::new().prefix("ab")), ["ab", "abc", "abd"]);
    assert_eq!(list(&mut obj, ListOptions::new().prefix("b")), ["b", "ba"]);
    assert!(list(&mut obj, ListOptions::new().prefix("abz")).is_empty());
    assert!(list(&mut obj, ListOptions::new().prefix("e")).is_empty());
}

#[test]
fn list_with_an_empty_prefix_is_not_restricted() {
    let mut obj = seeded();
    assert_eq!(list(&mut obj, ListOptions::new().prefix("")), KEYS);
    assert_eq!(list(&mut obj, ListOptions::new().prefix("").start("c")), ["c", "d"]);
}

#[test]
fn list_prefix_raises_a_start_below_the_prefix() {
    let mut obj = seeded();
    assert_eq!(list(&mut obj, ListOptions::new().prefix("ab").start("a")), ["ab", "abc", "abd"]);
    assert_eq!(list(&mut obj, ListOptions::new().prefix("ab").start("")), ["ab", "abc", "abd"]);
    assert_eq!(list(&mut obj, ListOptions::new().prefix("ab").start_after("aa")), ["ab", "abc", "abd"]);
}

#[test]
fn list_prefix_keeps_a_start_inside_the_prefix() {
    let mut obj = seeded();
    assert_eq!(list(&mut obj, ListOptions::new().prefix("ab").start("abc")), ["abc", "abd"]);
    assert_eq!(list(&mut obj, ListOptions::new().prefix("ab").start_after("abc")), ["abd"]);
}

#[test]
fn list_prefix_with_a_start_past_the_prefix_is_empty() {
    let mut obj = seeded();
    assert!(list(&mut obj, ListOptions::new().prefix("ab").start("ac")).is_empty());
    assert!(list(&mut obj, ListOptions::new().prefix("ab").start("b")).is_empty());
    assert!(list(&mut obj, ListOptions::new().prefix("a").start_after("b")).is_empty());
}

#[test]
fn list_prefix_keeps_an_end_inside_the_prefix() {
    let mut obj = seeded();
    assert_eq!(list(&mut obj, ListOptions::new().prefix("ab").end("abd")), ["ab", "abc"]);
    assert_eq!(list(&mut obj, ListOptions::new().prefix("a").end("ab")), ["a", "aa"]);
}

#[test]
fn list_prefix_replaces_an_end_past_the_prefix() {
    let mut obj = seeded();
    assert_eq!(list(&mut obj, ListOptions::new().prefix("ab").end("z")), ["ab", "abc", "abd"]);
    assert_eq!(list(&mut obj, ListOptions::new().prefix("ab").end("b")), ["ab", "abc", "abd"]);
}

#[test]
fn list_prefix_with_an_end_at_or_before_the_prefix_is_empty() {
    let mut obj = seeded();
    assert!(list(&mut obj, ListOptions::new().prefix("ab").end("ab")).is_empty());
    assert!(list(&mut obj, ListOptions::new().prefix("ab").end("aa")).is_empty());
    assert!(list(&mut obj, ListOptions::new().prefix("b").end("a")).is_empty());
}

#[test]
fn list_prefix_handles_multibyte_characters() {
    let mut obj = Obj::new();
    seed(&mut obj, &["e", "\u{E9}", "\u{E9}t\u{E9}", "\u{EA}", "f", "\u{10FFFF}", "\u{10FFFF}x"]);
    assert_eq!(list(&mut obj, ListOptions::new().prefix("\u{E9}")), ["\u{E9}", "\u{E9}t\u{E9}"]);
    assert_eq!(list(&mut obj, ListOptions::new().prefix("\u{10FFFF}")), ["\u{10FFFF}", "\u{10FFFF}x"]);
}

#[test]
fn list_with_end_at_or_before_start_is_empty_without_error() {
    let mut obj = seeded();
    assert!(list(&mut obj, ListOptions::new().start("b").end("b")).is_empty());
    assert!(list(&mut obj, ListOptions::new().start("c").end("b")).is_empty());
    assert!(list(&mut obj, ListOptions::new().start_after("b").end("b")).is_empty());
    assert!(list(&mut obj, ListOptions::new().start("c").end("b").reverse(true).limit(1)).is_empty());
    assert!(list(&mut obj, ListOptions::new().end("")).is_empty());
}

#[test]
fn list_orders_keys_by_utf8_bytes() {
    let mut obj = Obj::new();
    // UTF-16 order would put the emoji (a surrogate pair, D83D) before U+FFFF and U+FF61.
    let ks = ["\u{1F600}", "\u{FFFF}", "\u{FF61}", "z", "\u{E9}", "Z", "\u{7F}", "\u{80}", "a\u{10FFFF}", "a~"];
    seed(&mut obj, &ks);
    let got = list(&mut obj, ListOptions::new());
    assert_eq!(got, ["Z", "a~", "a\u{10FFFF}", "z", "\u{7F}", "\u{80}", "\u{E9}", "\u{FF61}", "\u{FFFF}", "\u{1F600}"]);
    let mut by_bytes = ks.map(str::to_owned).to_vec();
    by_bytes.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(got, by_bytes);
    assert_eq!(list(&mut obj, ListOptions::new().start("\u{FFFF}")), ["\u{FFFF}", "\u{1F600}"]);
    assert_eq!(list(&mut obj, ListOptions::new().end("\u{1F600}").reverse(true).limit(1)), ["\u{FFFF}"]);
}

#[test]
fn the_empty_key_is_the_first_key() {
    let mut obj = seeded();
    seed(&mut obj, &[""]);
    assert_eq!(list(&mut obj, ListOptions::new().limit(1)), [""]);
    assert_eq!(list(&mut obj, ListOptions::new().start("").limit(2)), ["", "a"]);
    assert_eq!(list(&mut obj, ListOptions::new().start_after("").limit(1)), ["a"]);
    assert_eq!(list(&mut obj, ListOptions::new().end("a")), [""]);
    assert_eq!(list(&mut obj, ListOptions::new().reverse(true)).last().map(String::as_str), Some(""));
}

#[test]
fn list_sees_the_open_events_writes_and_deletes() {
    let mut obj = seeded();
    obj.put("ab5", &0).unwrap();
    obj.delete("abc").unwrap();
    assert_eq!(list(&mut obj, ListOptions::new().prefix("ab")), ["ab", "ab5", "abd"]);
    obj.rollback();
    assert_eq!(list(&mut obj, ListOptions::new().prefix("ab")), ["ab", "abc", "abd"]);
}

#[test]
fn list_options_deserialize_from_camel_case_json() {
    let o: ListOptions = serde_json::from_value(serde_json::json!({
        "startAfter": "a", "end": "c", "reverse": true, "limit": 2
    }))
    .unwrap();
    assert_eq!(o, ListOptions::new().start_after("a").end("c").reverse(true).limit(2));
    let mut obj = seeded();
    assert_eq!(list(&mut obj, o), ["ba", "b"]);
}
