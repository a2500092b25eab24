//! Where object files live, and which names are acceptable.

use std::collections::HashSet;
use std::path::{Component, Path};

use cairn_storage::layout::{
    MAX_NAMESPACE_BYTES, MAX_OBJECT_NAME_BYTES, namespace_dir, object_hash, object_path, validate_namespace,
    validate_object_name,
};
use cairn_storage::{ObjectStorage, OpenOptions};

use crate::expect_code;

fn tricky_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "a",
        "A",
        "b",
        "a/b",
        "a%2Fb",
        "a%2fb",
        "a_b",
        "a-b",
        "a.b",
        "a b",
        "..",
        ".",
        "../x",
        "..%2Fx",
        "/",
        "//",
        "\\",
        "x\\..\\y",
        "~",
        "\u{E9}",
        "e\u{301}",
        "%C3%A9",
        "\u{1F600}",
        "con",
        "CON",
        "nul",
        "a\u{7F}",
        ".db",
        "a.db",
        "a.db.db",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for n in [149, 150, 151, 200, 1024] {
        names.push("n".repeat(n));
    }
    names.push(format!("{}x", "n".repeat(199)));
    names.push("/".repeat(50)); // 150 bytes once encoded
    names.push("/".repeat(51));
    names.push("\u{1F600}".repeat(256)); // 1024 bytes
    names
}

#[test]
fn object_path_is_deterministic() {
    let data = Path::new("/data");
    for name in tricky_names() {
        assert_eq!(object_path(data, "ns", &name), object_path(data, "ns", &name));
        assert_eq!(object_hash("ns", &name), object_hash("ns", &name));
    }
    assert_eq!(object_path(data, "ns", "room"), object_path(Path::new("/data"), "ns", "room"));
}

#[test]
fn distinct_names_get_distinct_paths() {
    let data = Path::new("/data");
    let names = tricky_names();
    let paths: HashSet<_> = names.iter().map(|n| object_path(data, "ns", n)).collect();
    assert_eq!(paths.len(), names.len());
}

#[test]
fn the_same_name_in_two_namespaces_gets_two_paths() {
    let data = Path::new("/data");
    assert_ne!(object_path(data, "a", "room"), object_path(data, "b", "room"));
    assert_ne!(object_hash("a", "bc"), object_hash("ab", "c"));
}

#[test]
fn object_paths_stay_inside_their_namespace_directory() {
    let data = Path::new("/data");
    let ns_dir = namespace_dir(data, "ns");
    assert_eq!(ns_dir, Path::new("/data/objects/ns"));
    for name in tricky_names() {
        let p = object_path(data, "ns", &name);
        let rest = p.strip_prefix(&ns_dir).unwrap_or_else(|_| panic!("{name:?} -> {p:?}"));
        let parts: Vec<_> = rest.components().collect();
        assert_eq!(parts.len(), 2, "{name:?} -> {p:?}");
        assert!(parts.iter().all(|c| matches!(c, Component::Normal(_))), "{name:?} -> {p:?}");
        let shard = parts[0].as_os_str().to_str().unwrap();
        assert!(shard.len() == 2 && shard.bytes().all(|b| b.is_ascii_hexdigit()), "{p:?}");
        let file = parts[1].as_os_str().to_str().unwrap();
        assert!(file.ends_with(".db") && file.len() <= 154, "{p:?}");
        assert!(file.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-%~.".contains(&b)), "{p:?}");
    }
}

#[test]
fn short_plain_names_are_readable_in_the_file_name() {
    let p = object_path(Path::new("/data"), "ns", "room-1_A");
    assert_eq!(p.file_name().unwrap(), "room-1_A.db");
    let p = object_path(Path::new("/data"), "ns", "a/b");
    assert_eq!(p.file_name().unwrap(), "a%2Fb.db");
}

#[test]
fn an_object_opens_at_its_path_creating_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = object_path(dir.path(), "ns", "../../escape");
    let options = OpenOptions { identity: Some(("ns".into(), "../../escape".into())), ..OpenOptions::default() };
    let mut obj = ObjectStorage::open(&path, &options).unwrap();
    assert_eq!(obj.path(), path);
    obj.event(|s| s.put("k", &1)).unwrap();
    drop(obj);
    assert!(path.is_file());
    assert!(path.starts_with(dir.path().join("objects").join("ns")));
    let mut obj = ObjectStorage::open(&path, &options).unwrap();
    assert_eq!(obj.get::<i64>("k").unwrap(), Some(1));
}

#[test]
fn valid_namespaces_are_accepted() {
    for ns in ["rooms", "a", "A.b-c_d", "0", "x.", &"n".repeat(MAX_NAMESPACE_BYTES)] {
        validate_namespace(ns).unwrap_or_else(|e| panic!("{ns:?}: {e}"));
    }
}

#[test]
fn invalid_namespaces_are_rejected() {
    for ns in
        ["", ".", "..", ".hidden", "a/b", "a\\b", "a b", "\u{E9}", "a\0", "a:b", &"n".repeat(MAX_NAMESPACE_BYTES + 1)]
    {
        let e = expect_code(validate_namespace(ns), "storage.invalid_name");
        assert!(e.to_string().starts_with("invalid namespace name"), "{e}");
        assert!(e.is_user_error());
    }
}

#[test]
fn valid_object_names_are_accepted() {
    for name in ["a", "..", ".", "a/b", " ", "\u{1F600}", &"n".repeat(MAX_OBJECT_NAME_BYTES), &"\u{E9}".repeat(512)] {
        validate_object_name(name).unwrap_or_else(|e| panic!("{name:?}: {e}"));
    }
}

#[test]
fn invalid_object_names_are_rejected() {
    for name in ["", "a\0b", "\0", &"n".repeat(MAX_OBJECT_NAME_BYTES + 1), &"\u{E9}".repeat(513)] {
        let e = expect_code(validate_object_name(name), "storage.invalid_name");
        assert!(e.to_string().starts_with("invalid object name"), "{e}");
    }
}

#[test]
fn a_long_invalid_name_is_truncated_in_the_error() {
    let name = "n".repeat(5000);
    let e = validate_object_name(&name).unwrap_err();
    assert!(e.to_string().len() < 300, "{}", e.to_string().len());
}
