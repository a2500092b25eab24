//! Helpers: a router over a temporary data directory, and requests through `oneshot`.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cairn_server::{AppState, Config, Token, router};
use http_body_util::BodyExt;
use tower::ServiceExt;

pub(crate) struct TestServer {
    pub(crate) app: axum::Router,
    /// Closed when the test server drops, before its directory is removed.
    runtime: cairn_runtime::Runtime,
    _dir: tempfile::TempDir,
}

pub(crate) const TOKEN: &str = "test-token-0123456789";

pub(crate) fn server_with(config: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Config { data_dir: dir.path().to_path_buf(), shards: 2, ..Config::default() };
    config(&mut c);
    let runtime = cairn_server::open_runtime(&c).expect("runtime");
    let app = router(AppState::new(runtime.clone(), &c), c.max_body_bytes);
    TestServer { app, runtime, _dir: dir }
}

/// A server with one full-access token.
pub(crate) fn server() -> TestServer {
    server_with(|c| c.tokens.push(Token { token: TOKEN.into(), namespaces: None, read_only: false }))
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) content_type: String,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    /// The stable error code of an error reply.
    pub(crate) fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or("<no code>").to_owned()
    }
}

impl TestServer {
    pub(crate) async fn send(
        &self,
        method: &str,
        uri: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let res = self.app.clone().oneshot(req.body(Body::from(body)).expect("request")).await.expect("response");
        let status = res.status();
        let content_type = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let body = res.into_body().collect().await.expect("body").to_bytes().to_vec();
        Reply { status, content_type, body }
    }

    pub(crate) async fn get(&self, uri: &str) -> Reply {
        self.send("GET", uri, None, Vec::new(), Some(TOKEN)).await
    }

    pub(crate) async fn json(&self, method: &str, uri: &str, body: serde_json::Value) -> Reply {
        self.send(method, uri, Some("application/json"), body.to_string().into_bytes(), Some(TOKEN)).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.runtime.close();
    }
}

pub(crate) const OBJ: &str = "/v1/namespaces/rooms/objects/lobby";
