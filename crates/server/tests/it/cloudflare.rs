//! The Cloudflare-compatible API under `/client/v4`: authentication on every route, the error
//! envelope, and the parts the SDK suite does not reach (raw value bodies, reserved names).

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{TOKEN, server};

const NS: &str = "/client/v4/accounts/acc/storage/kv/namespaces";
const DB: &str = "/client/v4/accounts/acc/d1/database";

/// Every `/client/v4` route that needs a token (the transfer URLs are their own credential).
fn routes(ns: &str, db: &str) -> Vec<(&'static str, String, serde_json::Value)> {
    vec![
        ("GET", NS.to_owned(), json!(null)),
        ("POST", NS.to_owned(), json!({"title": "t"})),
        ("GET", format!("{NS}/{ns}"), json!(null)),
        ("PUT", format!("{NS}/{ns}"), json!({"title": "u"})),
        ("GET", format!("{NS}/{ns}/keys"), json!(null)),
        ("GET", format!("{NS}/{ns}/values/k"), json!(null)),
        ("PUT", format!("{NS}/{ns}/values/k"), json!("v")),
        ("DELETE", format!("{NS}/{ns}/values/k"), json!(null)),
        ("GET", format!("{NS}/{ns}/metadata/k"), json!(null)),
        ("PUT", format!("{NS}/{ns}/bulk"), json!([])),
        ("DELETE", format!("{NS}/{ns}/bulk"), json!([])),
        ("POST", format!("{NS}/{ns}/bulk/delete"), json!([])),
        ("POST", format!("{NS}/{ns}/bulk/get"), json!({"keys": ["k"]})),
        ("GET", DB.to_owned(), json!(null)),
        ("POST", DB.to_owned(), json!({"name": "d"})),
        ("GET", format!("{DB}/{db}"), json!(null)),
        ("PUT", format!("{DB}/{db}"), json!({})),
        ("PATCH", format!("{DB}/{db}"), json!({})),
        ("POST", format!("{DB}/{db}/query"), json!({"sql": "SELECT 1"})),
        ("POST", format!("{DB}/{db}/raw"), json!({"sql": "SELECT 1"})),
        ("POST", format!("{DB}/{db}/export"), json!({"output_format": "polling"})),
        ("POST", format!("{DB}/{db}/import"), json!({"action": "init", "etag": "x"})),
        // Deletions last: the routes above need the namespace and the database.
        ("DELETE", format!("{NS}/{ns}"), json!(null)),
        ("DELETE", format!("{DB}/{db}"), json!(null)),
    ]
}

#[tokio::test]
async fn every_cloudflare_route_refuses_a_missing_or_wrong_token_in_the_envelope() {
    let s = server();
    let ns = s.json("POST", NS, json!({"title": "auth"})).await.json()["result"]["id"].as_str().expect("id").to_owned();
    let db =
        s.json("POST", DB, json!({"name": "auth"})).await.json()["result"]["uuid"].as_str().expect("uuid").to_owned();
    for (method, uri, body) in routes(&ns, &db) {
        for token in [None, Some("wrong-token-0123456789")] {
            let r = s.send(method, &uri, Some("application/json"), body.to_string().into_bytes(), token).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri} {token:?}");
            let v = r.json();
            assert_eq!(v["success"], false, "{method} {uri}");
            assert_eq!(v["errors"][0]["code"], 10000, "{method} {uri}");
            assert_eq!(v["errors"][0]["cairn_code"], "http.unauthorized", "{method} {uri}");
        }
        let r = s.send(method, &uri, Some("application/json"), body.to_string().into_bytes(), Some(TOKEN)).await;
        assert_ne!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri} with the right token");
        let code = if r.body.is_empty() || !r.content_type.starts_with("application/json") {
            serde_json::Value::Null
        } else {
            r.json()["errors"][0]["cairn_code"].clone()
        };
        assert!(code != "http.not_found" && code != "http.method_not_allowed", "{method} {uri} is served: {code}");
    }
}

#[tokio::test]
async fn errors_use_cloudflare_envelope_and_codes() {
    let s = server();
    let r = s.get("/client/v4/no/such/route").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["errors"][0]["code"], 7003);
    let r = s.get(&format!("{NS}/0123456789abcdef0123456789abcdef")).await;
    assert_eq!((r.status, r.json()["errors"][0]["code"].clone()), (StatusCode::NOT_FOUND, json!(10013)));
    let r = s.send("POST", NS, Some("application/json"), b"{not json".to_vec(), Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = s.json("POST", NS, json!({"title": ""})).await;
    assert_eq!(
        (r.status, r.json()["errors"][0]["cairn_code"].clone()),
        (StatusCode::BAD_REQUEST, json!("kv.invalid_title"))
    );
}

#[tokio::test]
async fn a_raw_body_is_a_value_and_comes_back_byte_for_byte() {
    let s = server();
    let ns = s.json("POST", NS, json!({"title": "raw"})).await.json()["result"]["id"].as_str().expect("id").to_owned();
    let bytes: Vec<u8> = (0..=255u8).collect();
    let uri = format!("{NS}/{ns}/values/a%2Fb%20c?expiration_ttl=120");
    let r = s.send("PUT", &uri, Some("application/octet-stream"), bytes.clone(), Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", String::from_utf8_lossy(&r.body));
    let r = s.get(&format!("{NS}/{ns}/values/a%2Fb%20c")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, bytes);
    let keys = s.get(&format!("{NS}/{ns}/keys")).await.json();
    assert_eq!(keys["result"][0]["name"], "a/b c");
    assert!(keys["result"][0]["expiration"].as_i64().is_some_and(|e| e > 0));
    assert_eq!(keys["result_info"]["cursor"], "");
}

#[tokio::test]
async fn reserved_namespaces_are_refused_on_the_object_api() {
    let s = server();
    for ns in ["_cairn_kv", "_cairn_d1", "_cairn_sys"] {
        let r = s.json("PUT", &format!("/v1/namespaces/{ns}/objects/o/kv/k"), json!(1)).await;
        assert_eq!((r.status, r.code().as_str()), (StatusCode::FORBIDDEN, "namespace.reserved"), "{ns}");
        let r = s.get(&format!("/v1/namespaces/{ns}/objects")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{ns} catalog");
    }
}
