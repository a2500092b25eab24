//! The `cairn` binary as users run it: `cairn object ...` against a server on a loopback port.

mod crash;
mod services;
mod transfers;

use std::process::Command;

struct Server {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const TOKEN: &str = "cli-test-token-0123456789";

fn server() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = cairn_server::Config {
        data_dir: dir.path().to_path_buf(),
        shards: 1,
        tokens: vec![cairn_server::Token { token: TOKEN.into(), namespaces: None, read_only: false }],
        ..cairn_server::Config::default()
    };
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    std_listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}", std_listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("tokio");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            let runtime = cairn_server::open_runtime(&config).expect("runtime");
            cairn_server::serve(listener, &config, runtime, async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
    });
    Server { url, stop: Some(stop), thread: Some(thread), _dir: dir }
}

fn cairn(server: &Server, args: &[&str], token: Option<&str>) -> (i32, String) {
    run_cairn(server, "object", args, token, None)
}

/// Runs `cairn {command} --url ... {args}` in `dir` (if given): exit code and trimmed stdout.
fn run_cairn(
    server: &Server,
    command: &str,
    args: &[&str],
    token: Option<&str>,
    dir: Option<&std::path::Path>,
) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    cmd.args([command, "--url", &server.url]).args(args).env_remove("CAIRN_TOKEN").env_remove("CAIRN_URL");
    if let Some(t) = token {
        cmd.env("CAIRN_TOKEN", t);
    }
    let out = cmd.output().expect("run cairn");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn object_commands_print_json_and_exit_with_meaningful_codes() {
    let s = server();
    let t = Some(TOKEN);
    assert_eq!(cairn(&s, &["put", "rooms", "lobby", "greeting", r#"{"text":"hi"}"#], t), (0, r#"{"ok":true}"#.into()));
    assert_eq!(cairn(&s, &["get", "rooms", "lobby", "greeting"], t), (0, r#"{"text":"hi"}"#.into()));
    assert_eq!(cairn(&s, &["put", "rooms", "lobby", "raw", "abc", "--bytes"], t).0, 0);
    assert_eq!(cairn(&s, &["get", "rooms", "lobby", "raw"], t), (0, r#"{"base64":"YWJj"}"#.into()));
    assert_eq!(
        cairn(&s, &["list", "rooms", "lobby", "--prefix", "g"], t),
        (0, r#"[{"key":"greeting","value":{"text":"hi"}}]"#.into())
    );
    let (code, out) = cairn(&s, &["sql", "rooms", "lobby", "SELECT ? * 2 AS n", "21"], t);
    assert_eq!(code, 0);
    assert!(out.contains(r#""rows":[[42]]"#), "{out}");
    assert_eq!(cairn(&s, &["delete", "rooms", "lobby", "greeting"], t), (0, r#"{"existed":true}"#.into()));
    assert_eq!(cairn(&s, &["get", "rooms", "lobby", "greeting"], t).0, 3, "not found");
    assert_eq!(cairn(&s, &["sql", "rooms", "lobby", "SELEC"], t).0, 4, "refused");
    assert_eq!(cairn(&s, &["get", "rooms", "lobby", "raw"], None).0, 4, "no token");
    assert_eq!(cairn(&s, &["put", "rooms", "lobby", "k", "not json"], t).0, 4, "bad value");
    let dead = Server {
        url: "http://127.0.0.1:1".into(),
        stop: None,
        thread: None,
        _dir: tempfile::tempdir().expect("tempdir"),
    };
    assert_eq!(cairn(&dead, &["get", "rooms", "lobby", "raw"], t).0, 6, "unreachable");
}
