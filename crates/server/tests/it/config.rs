//! Configuration layers and validation.

use std::collections::HashMap;

use cairn_runtime::Durability;
use cairn_server::{Config, Overrides};

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    move |k| map.get(k).cloned()
}

#[test]
fn defaults_then_file_then_environment_then_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cairn.toml");
    std::fs::write(
        &file,
        r#"
data_dir = "/from/file"
listen = "127.0.0.1:9000"
durability = "os"
max_open_objects = 5
cloudflare_max_body_bytes = 2000000
[limits]
max_value_bytes = 1000
[namespace_limits.tiny]
max_key_bytes = 10
[kv]
max_value_bytes = 1048576
min_ttl_secs = 30
"#,
    )
    .expect("write config");
    let c = Config::load(None, env(&[]), &Overrides::default()).expect("defaults");
    assert_eq!(c, Config::default());
    assert_eq!(c.listen.to_string(), "127.0.0.1:8787");
    let c = Config::load(Some(&file), env(&[]), &Overrides::default()).expect("file");
    assert_eq!((c.data_dir.to_str(), c.durability, c.max_open_objects), (Some("/from/file"), Durability::Os, 5));
    assert_eq!(c.limits.max_value_bytes, 1000);
    assert_eq!(c.limits.max_key_bytes, 2048, "unset limits keep their defaults");
    assert_eq!(c.namespace_limits["tiny"].max_key_bytes, 10);
    assert_eq!((c.kv.max_value_bytes, c.kv.min_ttl_secs, c.kv.max_key_bytes), (1_048_576, 30, 512));
    assert_eq!(c.cloudflare_max_body_bytes, 2_000_000);
    let c = Config::load(
        Some(&file),
        env(&[("CAIRN_DATA_DIR", "/from/env"), ("CAIRN_DURABILITY", "fsync")]),
        &Overrides::default(),
    )
    .expect("env");
    assert_eq!((c.data_dir.to_str(), c.durability), (Some("/from/env"), Durability::Fsync));
    let flags = Overrides {
        data_dir: Some("/from/flag".into()),
        listen: Some("127.0.0.1:1".parse().expect("addr")),
        ..Overrides::default()
    };
    let c = Config::load(Some(&file), env(&[("CAIRN_DATA_DIR", "/from/env")]), &flags).expect("flags");
    assert_eq!((c.data_dir.to_str(), c.listen.port()), (Some("/from/flag"), 1));
}

#[test]
fn listening_beyond_loopback_needs_a_token() {
    let flags = Overrides { listen: Some("0.0.0.0:8787".parse().expect("addr")), ..Overrides::default() };
    let err = Config::load(None, env(&[]), &flags).expect_err("no token");
    assert!(err.to_string().contains("without authentication"), "{err}");
    let c = Config::load(None, env(&[("CAIRN_TOKEN", "a-long-enough-token-123")]), &flags).expect("with a token");
    assert_eq!(c.tokens.len(), 1);
    let err = Config::load(None, env(&[("CAIRN_TOKEN", "short")]), &flags).expect_err("short token");
    assert!(err.to_string().contains("at least 16"), "{err}");
}

#[test]
fn bad_settings_are_reported_with_their_source() {
    let err = Config::load(None, env(&[("CAIRN_DURABILITY", "maybe")]), &Overrides::default()).expect_err("bad env");
    assert!(err.to_string().contains("CAIRN_DURABILITY"), "{err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "listen = 12\nunknown_setting = true\n").expect("write");
    let err = Config::load(Some(&file), env(&[]), &Overrides::default()).expect_err("bad file");
    assert!(err.to_string().contains("bad.toml"), "{err}");
    let err =
        Config::load(Some(&dir.path().join("missing.toml")), env(&[]), &Overrides::default()).expect_err("missing");
    assert!(err.to_string().contains("missing.toml"), "{err}");
}
