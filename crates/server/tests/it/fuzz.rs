//! Malformed requests at every route: random methods, paths, headers and bodies. The server
//! must answer each with a status below 500, in the API's error shape when it is an error, and
//! stay healthy.

use axum::http::StatusCode;
use proptest::prelude::*;

use crate::support::{TOKEN, server};

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("rooms".to_owned()),
        Just("lobby".to_owned()),
        Just("%00".to_owned()),
        Just("%2F".to_owned()),
        Just("..".to_owned()),
        Just("_cairn_kv".to_owned()),
        "[a-z]{1,8}",
        // Characters a URI path segment may hold as they are (RFC 3986 pchar).
        "[A-Za-z0-9._~!$&'()*+,;=:@-]{0,12}",
        "k{2040,2060}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    let tail = prop_oneof![
        Just("kv".to_owned()),
        Just("batch/get".to_owned()),
        Just("batch/put".to_owned()),
        Just("batch/delete".to_owned()),
        Just("sql".to_owned()),
        Just("transaction".to_owned()),
        Just("alarm".to_owned()),
        Just("delete-all".to_owned()),
        Just("bookmark".to_owned()),
        segment().prop_map(|k| format!("kv/{k}")),
        segment(),
    ];
    let query = prop_oneof![
        Just(String::new()),
        Just("?limit=0".to_owned()),
        Just("?limit=-5&reverse=maybe".to_owned()),
        Just("?start=a&start_after=b".to_owned()),
        Just("?cursor=%%%".to_owned()),
        "\\?[a-z_]{1,8}=[a-z0-9%]{0,8}",
    ];
    prop_oneof![
        (segment(), segment(), tail, query.clone())
            .prop_map(|(ns, name, tail, q)| format!("/v1/namespaces/{ns}/objects/{name}/{tail}{q}")),
        (segment(), query).prop_map(|(ns, q)| format!("/v1/namespaces/{ns}/objects{q}")),
        Just("/metrics".to_owned()),
        Just("/openapi.json".to_owned()),
        segment().prop_map(|s| format!("/{s}")),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 0..512),
        Just(br#"{"sql":"SELECT 1"}"#.to_vec()),
        Just(br#"{"sql":"CREATE TABLE x(a); INSERT INTO x VALUES (?)","params":[{"base64":"!!"}]}"#.to_vec()),
        Just(br#"{"keys":[1,2,3]}"#.to_vec()),
        Just(br#"{"entries":[{"key":"a","value":"b","encoding":"base64"}]}"#.to_vec()),
        Just(
            br#"{"preconditions":[{"key":"a","equals":null}],"operations":[{"op":"put","key":"a","value":[1]}]}"#
                .to_vec()
        ),
        Just(br#"{"time_ms":-1}"#.to_vec()),
        Just(br#"{"time_ms":9223372036854775807}"#.to_vec()),
        "[ -~]{0,64}".prop_map(String::into_bytes),
    ]
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json")),
        Just(Some("application/octet-stream")),
        Just(Some("text/plain")),
        Just(Some("application/json; charset=utf-8")),
        Just(Some("multipart/form-data; boundary=x")),
    ]
}

fn token() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![4 => Just(Some(TOKEN)), 1 => Just(None), 1 => Just(Some("wrong-token-0123456789"))]
}

/// A documented route's method and path (filled with mostly valid names), or a random one.
fn request_line() -> impl Strategy<Value = (&'static str, String)> {
    let name = prop_oneof![4 => Just("lobby".to_owned()), 1 => segment()];
    let ns = prop_oneof![4 => Just("rooms".to_owned()), 1 => segment()];
    let known = prop_oneof![
        Just(("GET", "kv")),
        Just(("GET", "kv/KEY")),
        Just(("PUT", "kv/KEY")),
        Just(("DELETE", "kv/KEY")),
        Just(("POST", "batch/get")),
        Just(("POST", "batch/put")),
        Just(("POST", "batch/delete")),
        Just(("POST", "sql")),
        Just(("POST", "transaction")),
        Just(("GET", "alarm")),
        Just(("PUT", "alarm")),
        Just(("DELETE", "alarm")),
        Just(("POST", "delete-all")),
        Just(("GET", "bookmark")),
    ];
    let method = prop_oneof![Just("GET"), Just("PUT"), Just("POST"), Just("DELETE"), Just("PATCH"), Just("HEAD")];
    prop_oneof![
        3 => (known, ns, name, segment()).prop_map(|((m, tail), ns, name, key)| {
            (m, format!("/v1/namespaces/{ns}/objects/{name}/{}", tail.replace("KEY", &key)))
        }),
        1 => (method, path()),
    ]
}

#[test]
fn random_requests_never_get_a_5xx() {
    let s = server();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    let config = ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |((m, p) in request_line(), b in body(), ct in content_type(), t in token())| {
        let r = rt.block_on(s.send(m, &p, ct, b, t));
        prop_assert!(r.status.as_u16() < 500, "{m} {p} -> {} {:?}", r.status, String::from_utf8_lossy(&r.body));
        if r.status.is_client_error() && m != "HEAD" {
            let code = r.code();
            prop_assert!(code.contains('.'), "{m} {p} -> {}: no error code in {:?}", r.status, String::from_utf8_lossy(&r.body));
        }
    });
    let r = rt.block_on(s.send("GET", "/healthz", None, vec![], None));
    assert_eq!(r.status, StatusCode::OK);
}
