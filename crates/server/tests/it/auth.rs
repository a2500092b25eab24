//! Authentication and authorization: every route but health refuses requests without a valid
//! token; tokens are scoped to namespaces and may be read-only.

use axum::http::StatusCode;
use cairn_server::Token;
use serde_json::json;

use crate::support::{OBJ, TOKEN, server, server_with};

/// Every route (method, path, body) except `/healthz`.
fn routes() -> Vec<(&'static str, String, serde_json::Value)> {
    vec![
        ("GET", "/metrics".into(), json!(null)),
        ("GET", "/openapi.json".into(), json!(null)),
        ("GET", "/v1/namespaces/rooms/objects".into(), json!(null)),
        ("GET", format!("{OBJ}/kv"), json!(null)),
        ("GET", format!("{OBJ}/kv/k"), json!(null)),
        ("PUT", format!("{OBJ}/kv/k"), json!(1)),
        ("DELETE", format!("{OBJ}/kv/k"), json!(null)),
        ("POST", format!("{OBJ}/batch/get"), json!({"keys": ["k"]})),
        ("POST", format!("{OBJ}/batch/put"), json!({"entries": [{"key": "k", "value": 1}]})),
        ("POST", format!("{OBJ}/batch/delete"), json!({"keys": ["k"]})),
        ("POST", format!("{OBJ}/sql"), json!({"sql": "SELECT 1"})),
        ("POST", format!("{OBJ}/transaction"), json!({"operations": []})),
        ("GET", format!("{OBJ}/alarm"), json!(null)),
        ("PUT", format!("{OBJ}/alarm"), json!({"time_ms": 1})),
        ("DELETE", format!("{OBJ}/alarm"), json!(null)),
        ("POST", format!("{OBJ}/delete-all"), json!(null)),
        ("GET", format!("{OBJ}/bookmark"), json!(null)),
        ("GET", "/parties/chat/lobby".into(), json!(null)),
        ("POST", "/parties/chat/lobby/some/path".into(), json!({})),
    ]
}

#[tokio::test]
async fn every_route_but_health_refuses_a_missing_or_wrong_token() {
    let s = server();
    assert_eq!(routes().len() + 1, 20, "one entry per documented route");
    for (method, uri, body) in routes() {
        for token in [None, Some("wrong-token-0123456789")] {
            let r = s.send(method, &uri, Some("application/json"), body.to_string().into_bytes(), token).await;
            assert_eq!(
                (r.status, r.code().as_str()),
                (StatusCode::UNAUTHORIZED, "http.unauthorized"),
                "{method} {uri} {token:?}"
            );
        }
        let r = s.send(method, &uri, Some("application/json"), body.to_string().into_bytes(), Some(TOKEN)).await;
        assert_ne!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri} with the right token");
    }
    let r = s.send("GET", "/healthz", None, vec![], None).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn tokens_are_scoped_to_namespaces_and_may_be_read_only() {
    let s = server_with(|c| {
        c.tokens.push(Token {
            token: "rooms-only-0123456789".into(),
            namespaces: Some(vec!["rooms".into()]),
            read_only: false,
        });
        c.tokens.push(Token { token: "reader-0123456789abc".into(), namespaces: None, read_only: true });
    });
    let put = |t: &'static str, ns: &'static str| {
        let uri = format!("/v1/namespaces/{ns}/objects/o/kv/k");
        (t, uri)
    };
    let (t, uri) = put("rooms-only-0123456789", "rooms");
    assert_eq!(s.send("PUT", &uri, Some("application/json"), b"1".to_vec(), Some(t)).await.status, StatusCode::OK);
    let (t, uri) = put("rooms-only-0123456789", "other");
    let r = s.send("PUT", &uri, Some("application/json"), b"1".to_vec(), Some(t)).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::FORBIDDEN, "http.forbidden"));
    let (t, uri) = put("reader-0123456789abc", "rooms");
    let r = s.send("PUT", &uri, Some("application/json"), b"1".to_vec(), Some(t)).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::FORBIDDEN, "http.forbidden"));
    let r = s.send("GET", &uri, None, vec![], Some(t)).await;
    assert_eq!(r.status, StatusCode::OK);
    // SQL can write, so a read-only token may not run it.
    let r = s
        .send(
            "POST",
            "/v1/namespaces/rooms/objects/o/sql",
            Some("application/json"),
            br#"{"sql":"SELECT 1"}"#.to_vec(),
            Some(t),
        )
        .await;
    assert_eq!(r.code(), "http.forbidden");
}

#[tokio::test]
async fn undeclared_namespaces_can_be_refused() {
    let s = server_with(|c| {
        c.auto_create_namespaces = false;
        c.namespaces = vec!["rooms".into()];
    });
    let r = s.send("PUT", "/v1/namespaces/rooms/objects/o/kv/k", Some("application/json"), b"1".to_vec(), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = s.send("PUT", "/v1/namespaces/other/objects/o/kv/k", Some("application/json"), b"1".to_vec(), None).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::NOT_FOUND, "namespace.not_found"));
}
