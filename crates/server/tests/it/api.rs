//! Every object endpoint, its happy path and its errors.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{OBJ, TOKEN, server, server_with};

#[tokio::test]
async fn values_come_back_as_they_were_stored() {
    let s = server();
    let r = s.json("PUT", &format!("{OBJ}/kv/user:1"), json!({"name": "ada", "tags": [1, 2]})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let r =
        s.send("PUT", &format!("{OBJ}/kv/raw"), Some("application/octet-stream"), vec![0, 159, 255], Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = s.get(&format!("{OBJ}/kv/user:1")).await;
    assert_eq!((r.status, r.content_type.as_str()), (StatusCode::OK, "application/json"));
    assert_eq!(r.json(), json!({"name": "ada", "tags": [1, 2]}));
    let r = s.get(&format!("{OBJ}/kv/raw")).await;
    assert_eq!(r.content_type, "application/octet-stream");
    assert_eq!(r.body, vec![0, 159, 255]);
    // Keys may contain slashes and anything percent-encoded.
    let r = s.json("PUT", &format!("{OBJ}/kv/a/b%20c"), json!(1)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(s.get(&format!("{OBJ}/kv/a/b%20c")).await.json(), json!(1));
}

#[tokio::test]
async fn missing_keys_and_deletes() {
    let s = server();
    let r = s.get(&format!("{OBJ}/kv/nothing")).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::NOT_FOUND, "kv.not_found"));
    s.json("PUT", &format!("{OBJ}/kv/k"), json!("v")).await;
    let r = s.send("DELETE", &format!("{OBJ}/kv/k"), None, vec![], Some(TOKEN)).await;
    assert_eq!(r.json(), json!({"existed": true}));
    let r = s.send("DELETE", &format!("{OBJ}/kv/k"), None, vec![], Some(TOKEN)).await;
    assert_eq!(r.json(), json!({"existed": false}));
}

#[tokio::test]
async fn list_takes_every_option() {
    let s = server();
    let entries: Vec<_> = ["a", "b", "c", "d", "x1"].iter().map(|k| json!({"key": k, "value": k})).collect();
    assert_eq!(s.json("POST", &format!("{OBJ}/batch/put"), json!({"entries": entries})).await.status, StatusCode::OK);
    let keys = |r: serde_json::Value| -> Vec<String> {
        r["entries"].as_array().expect("entries").iter().map(|e| e["key"].as_str().expect("key").to_owned()).collect()
    };
    assert_eq!(keys(s.get(&format!("{OBJ}/kv")).await.json()), ["a", "b", "c", "d", "x1"]);
    assert_eq!(keys(s.get(&format!("{OBJ}/kv?prefix=x")).await.json()), ["x1"]);
    assert_eq!(keys(s.get(&format!("{OBJ}/kv?start=b&end=d")).await.json()), ["b", "c"]);
    assert_eq!(keys(s.get(&format!("{OBJ}/kv?start_after=b&limit=2")).await.json()), ["c", "d"]);
    assert_eq!(keys(s.get(&format!("{OBJ}/kv?reverse=true&limit=2")).await.json()), ["x1", "d"]);
    let r = s.get(&format!("{OBJ}/kv?start=a&start_after=a")).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "storage.list_start_and_start_after"));
    let r = s.get(&format!("{OBJ}/kv?limit=0")).await;
    assert_eq!(r.code(), "storage.list_limit_not_positive");
    let r = s.get(&format!("{OBJ}/kv?limit=-1")).await;
    assert_eq!(r.code(), "http.invalid_query");
    let r = s.get(&format!("{OBJ}/kv?bogus=1")).await;
    assert_eq!(r.code(), "http.invalid_query");
}

#[tokio::test]
async fn batches_are_atomic() {
    let s = server();
    let big = "x".repeat(200 * 1024);
    let r = s
        .json(
            "POST",
            &format!("{OBJ}/batch/put"),
            json!({"entries": [{"key": "ok", "value": 1}, {"key": "big", "value": big}]}),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "storage.value_too_large"));
    assert_eq!(s.get(&format!("{OBJ}/kv/ok")).await.status, StatusCode::NOT_FOUND, "nothing written");
    let r = s
        .json(
            "POST",
            &format!("{OBJ}/batch/put"),
            json!({"entries": [{"key": "b", "value": "AAE=", "encoding": "base64"}, {"key": "a", "value": 1}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = s.json("POST", &format!("{OBJ}/batch/get"), json!({"keys": ["b", "zz", "a"]})).await;
    assert_eq!(
        r.json(),
        json!({"entries": [{"key": "a", "value": 1}, {"key": "b", "value": "AAE=", "encoding": "base64"}]})
    );
    let r = s.json("POST", &format!("{OBJ}/batch/delete"), json!({"keys": ["a", "b", "c"]})).await;
    assert_eq!(r.json(), json!({"deleted": 2}));
    let keys: Vec<String> = (0..129).map(|i| format!("k{i}")).collect();
    let r = s.json("POST", &format!("{OBJ}/batch/get"), json!({"keys": keys})).await;
    assert_eq!(r.code(), "storage.too_many_keys");
    let r = s
        .json(
            "POST",
            &format!("{OBJ}/batch/put"),
            json!({"entries": [{"key": "b", "value": "!!", "encoding": "base64"}]}),
        )
        .await;
    assert_eq!(r.code(), "http.invalid_base64");
}

#[tokio::test]
async fn sql_runs_with_parameters_and_reports_counts() {
    let s = server();
    let r = s.json("POST", &format!("{OBJ}/sql"), json!({"sql": "CREATE TABLE t(a, b, c); INSERT INTO t VALUES (?, ?, ?)", "params": [1, "two", {"base64": "AQI="}]})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    assert_eq!(r.json()["rows_written"], 1);
    let r = s.json("POST", &format!("{OBJ}/sql"), json!({"sql": "SELECT a, b, c, 1.5 AS d FROM t"})).await;
    assert_eq!(r.json()["columns"], json!(["a", "b", "c", "d"]));
    assert_eq!(r.json()["rows"], json!([[1, "two", {"base64": "AQI="}, 1.5]]));
    let r = s.json("POST", &format!("{OBJ}/sql"), json!({"sql": "SELEC bunk"})).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "sql.error"));
    let r = s.json("POST", &format!("{OBJ}/sql"), json!({"sql": "SELECT * FROM _cairn_kv"})).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::FORBIDDEN, "sql.not_authorized"));
    let r = s.json("POST", &format!("{OBJ}/sql"), json!({"sql": "BEGIN"})).await;
    assert_eq!(r.code(), "sql.transaction_statement");
    let r = s.json("POST", &format!("{OBJ}/sql"), json!({"sql": "SELECT ?", "params": [[1]]})).await;
    assert_eq!(r.code(), "sql.invalid_parameter");
    let params: Vec<i64> = (0..101).collect();
    let r = s.json("POST", &format!("{OBJ}/sql"), json!({"sql": "SELECT 1", "params": params})).await;
    assert_eq!(r.code(), "sql.too_many_parameters");
}

#[tokio::test]
async fn transactions_apply_all_or_nothing_under_preconditions() {
    let s = server();
    s.json("PUT", &format!("{OBJ}/kv/balance"), json!(10)).await;
    let body = json!({
        "preconditions": [{"key": "balance", "equals": {"value": 10}}, {"key": "lock"}],
        "operations": [{"op": "put", "key": "balance", "value": 7}, {"op": "put", "key": "log", "value": "-3"}, {"op": "delete", "key": "tmp"}]
    });
    assert_eq!(s.json("POST", &format!("{OBJ}/transaction"), body.clone()).await.status, StatusCode::OK);
    assert_eq!(s.get(&format!("{OBJ}/kv/balance")).await.json(), json!(7));
    // The same request again: the precondition no longer holds, nothing is written.
    let r = s.json("POST", &format!("{OBJ}/transaction"), body).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::CONFLICT, "transaction.precondition_failed"));
    assert_eq!(s.get(&format!("{OBJ}/kv/balance")).await.json(), json!(7));
    let r =
        s.json("POST", &format!("{OBJ}/transaction"), json!({"operations": [{"op": "frobnicate", "key": "x"}]})).await;
    assert_eq!(r.code(), "http.invalid_json");
}

#[tokio::test]
async fn alarm_bookmark_delete_all_and_catalog() {
    let s = server();
    let r = s.json("PUT", &format!("{OBJ}/alarm"), json!({"time_ms": 4_102_444_800_000i64})).await;
    assert_eq!(r.json(), json!({"time_ms": 4_102_444_800_000i64}));
    assert_eq!(s.get(&format!("{OBJ}/alarm")).await.json(), json!({"time_ms": 4_102_444_800_000i64}));
    let r = s.json("PUT", &format!("{OBJ}/alarm"), json!({"time_ms": 0})).await;
    assert_eq!(r.code(), "storage.invalid_alarm_time");
    let b1 = s.get(&format!("{OBJ}/bookmark")).await.json()["bookmark"].as_str().expect("bookmark").to_owned();
    s.json("PUT", &format!("{OBJ}/kv/k"), json!(1)).await;
    let b2 = s.get(&format!("{OBJ}/bookmark")).await.json()["bookmark"].as_str().expect("bookmark").to_owned();
    assert!(b1 < b2);
    assert_eq!(s.send("DELETE", &format!("{OBJ}/alarm"), None, vec![], Some(TOKEN)).await.status, StatusCode::OK);
    assert_eq!(s.get(&format!("{OBJ}/alarm")).await.json(), json!({"time_ms": null}));
    assert_eq!(s.send("POST", &format!("{OBJ}/delete-all"), None, vec![], Some(TOKEN)).await.status, StatusCode::OK);
    assert_eq!(s.get(&format!("{OBJ}/kv/k")).await.status, StatusCode::NOT_FOUND);
    for i in 0..5 {
        s.json("PUT", &format!("/v1/namespaces/rooms/objects/r{i}/kv/k"), json!(i)).await;
    }
    let page = s.get("/v1/namespaces/rooms/objects?limit=4").await.json();
    let names: Vec<&str> =
        page["objects"].as_array().expect("objects").iter().map(|o| o["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["lobby", "r0", "r1", "r2"]);
    let cursor = page["cursor"].as_str().expect("cursor");
    let page = s.get(&format!("/v1/namespaces/rooms/objects?limit=4&cursor={cursor}")).await.json();
    assert_eq!(page["objects"].as_array().expect("objects").len(), 2);
    assert!(page.get("cursor").is_none());
    assert_eq!(s.get("/v1/namespaces/rooms/objects?limit=5000").await.code(), "http.invalid_query");
    let first = &s.get("/v1/namespaces/rooms/objects?limit=1").await.json()["objects"][0];
    assert!(first["size_bytes"].as_u64().unwrap_or(0) > 0, "{first}");
    assert!(
        first["last_write_ms"].as_i64().unwrap_or(0) >= first["created_ms"].as_i64().unwrap_or(i64::MAX) - 1000,
        "{first}"
    );
}

#[tokio::test]
async fn malformed_requests_get_4xx_with_a_code() {
    let s = server();
    let cases = [
        (
            "PUT",
            format!("{OBJ}/kv/k"),
            Some("text/plain"),
            b"x".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "http.unsupported_media_type",
        ),
        (
            "PUT",
            format!("{OBJ}/kv/k"),
            None,
            b"x".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "http.unsupported_media_type",
        ),
        (
            "PUT",
            format!("{OBJ}/kv/k"),
            Some("application/json"),
            b"{nope".to_vec(),
            StatusCode::BAD_REQUEST,
            "http.invalid_json",
        ),
        (
            "POST",
            format!("{OBJ}/sql"),
            None,
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "http.unsupported_media_type",
        ),
        (
            "POST",
            format!("{OBJ}/sql"),
            Some("application/json"),
            b"[1,2]".to_vec(),
            StatusCode::BAD_REQUEST,
            "http.invalid_json",
        ),
        (
            "POST",
            format!("{OBJ}/sql"),
            Some("application/json"),
            br#"{"sql":"SELECT 1","extra":1}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "http.invalid_json",
        ),
        ("GET", "/nope".to_owned(), None, vec![], StatusCode::NOT_FOUND, "http.not_found"),
        ("DELETE", format!("{OBJ}/sql"), None, vec![], StatusCode::METHOD_NOT_ALLOWED, "http.method_not_allowed"),
        (
            "GET",
            "/v1/namespaces/bad%2Fns/objects/x/kv/k".to_owned(),
            None,
            vec![],
            StatusCode::BAD_REQUEST,
            "storage.invalid_name",
        ),
        (
            "GET",
            format!("{OBJ}/kv/{}", "k".repeat(2049)),
            None,
            vec![],
            StatusCode::PAYLOAD_TOO_LARGE,
            "storage.key_too_large",
        ),
    ];
    for (method, uri, ct, body, status, code) in cases {
        let r = s.send(method, &uri, ct, body, Some(TOKEN)).await;
        assert_eq!((r.status, r.code().as_str()), (status, code), "{method} {uri}");
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_before_they_are_read() {
    let s = server_with(|c| {
        c.max_body_bytes = 1024;
    });
    let r = s.send("PUT", &format!("{OBJ}/kv/k"), Some("application/octet-stream"), vec![0; 4096], None).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "http.body_too_large"));
    let r = s.send("POST", &format!("{OBJ}/sql"), Some("application/json"), vec![b' '; 4096], None).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "http.body_too_large"));
}

#[tokio::test]
async fn health_and_metrics() {
    let s = server();
    let r = s.send("GET", "/healthz", None, vec![], None).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"status": "ok"})));
    s.json("PUT", &format!("{OBJ}/kv/k"), json!(1)).await;
    let r = s.get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    let text = String::from_utf8(r.body).expect("utf-8");
    assert!(text.contains("cairn_http_requests_total{route=\"/v1/namespaces/{ns}/objects/{name}/kv/{*key}\",method=\"PUT\",status=\"200\"} 1"), "{text}");
    assert!(text.contains("cairn_commits "), "{text}");
    assert!(text.contains("cairn_http_request_duration_seconds_bucket"), "{text}");
    // Group-commit batch sizes: the one durable PUT was released by a round of one reply.
    assert!(text.contains("# TYPE cairn_group_commit_size histogram"), "{text}");
    assert!(text.contains("cairn_group_commit_size_bucket{le=\"1.0\"} 1"), "{text}");
    assert!(text.contains("cairn_group_commit_size_bucket{le=\"+Inf\"} 1"), "{text}");
    assert!(text.contains("cairn_group_commit_size_sum 1"), "{text}");
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_routes() {
    let s = server();
    let doc: serde_json::Value = serde_json::from_str(cairn_server::OPENAPI).expect("valid JSON");
    assert_eq!(s.get("/openapi.json").await.json(), doc);
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    // Probe every documented route: it must exist (not the 404/405 fallbacks).
    for (method, path) in &documented {
        let uri = path
            .replace("{ns}", "rooms")
            .replace("{name}", "lobby")
            .replace("{key}", "k")
            .replace("{party}", "chat")
            .replace("{room}", "lobby")
            .replace("{path}", "p");
        let r = s.send(method, &uri, Some("application/json"), b"{}".to_vec(), Some(TOKEN)).await;
        let code = if r.body.is_empty() || !r.content_type.starts_with("application/json") {
            String::new()
        } else {
            r.json()["error"]["code"].as_str().unwrap_or("").to_owned()
        };
        assert!(
            code != "http.not_found" && code != "http.method_not_allowed",
            "{method} {path} is documented but not served"
        );
    }
    assert_eq!(documented.len(), 35, "update this test when routes change: {documented:?}");
}

#[tokio::test]
async fn restore_and_fork_over_http() {
    let s = server();
    s.json("PUT", &format!("{OBJ}/kv/k"), json!("one")).await;
    let one = s.get(&format!("{OBJ}/bookmark")).await.json()["bookmark"].as_str().expect("bookmark").to_owned();
    s.json("PUT", &format!("{OBJ}/kv/k"), json!("two")).await;

    // Restore now: the answer's previous_bookmark undoes it.
    let r = s.json("POST", &format!("{OBJ}/restore"), json!({"bookmark": one})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let previous = r.json()["previous_bookmark"].as_str().expect("previous").to_owned();
    assert!(r.json()["bookmark"].as_str().expect("new") > previous.as_str());
    assert_eq!(s.get(&format!("{OBJ}/kv/k")).await.json(), json!("one"));
    s.json("POST", &format!("{OBJ}/restore"), json!({"bookmark": previous})).await;
    assert_eq!(s.get(&format!("{OBJ}/kv/k")).await.json(), json!("two"));

    // A fork at the first bookmark, into another namespace; the source is untouched.
    let r = s.json("POST", &format!("{OBJ}/fork"), json!({"namespace": "copies", "name": "c1", "bookmark": one})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    assert_eq!(s.get("/v1/namespaces/copies/objects/c1/kv/k").await.json(), json!("one"));
    assert_eq!(s.get(&format!("{OBJ}/kv/k")).await.json(), json!("two"));
    let r = s.json("POST", &format!("{OBJ}/fork"), json!({"namespace": "copies", "name": "c1"})).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::CONFLICT, "runtime.object_exists"));

    // The bookmark of a time; errors name what is wrong.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_millis();
    let r = s.get(&format!("{OBJ}/bookmark?time_ms={now_ms}")).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = s.get(&format!("{OBJ}/bookmark?time_ms=1000")).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "runtime.invalid_bookmark"));
    let r = s.json("POST", &format!("{OBJ}/restore"), json!({"bookmark": "nope"})).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "runtime.invalid_bookmark"));
    let r = s.json("POST", &format!("{OBJ}/restore"), json!({})).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "http.invalid_body"));
    // At the next start: applied when the object is next opened.
    let r = s.json("POST", &format!("{OBJ}/restore"), json!({"bookmark": one, "on_next_start": true})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(s.get(&format!("{OBJ}/kv/k")).await.json(), json!("two"));
}

#[tokio::test]
async fn changes_long_poll_answers_on_the_next_commit() {
    let s = std::sync::Arc::new(server());
    s.json("PUT", &format!("{OBJ}/kv/k"), json!(1)).await;
    let now = s.get(&format!("{OBJ}/changes")).await.json()["bookmark"].as_str().expect("bookmark").to_owned();
    assert_eq!(now, s.get(&format!("{OBJ}/bookmark")).await.json()["bookmark"].as_str().expect("bookmark"));
    // Nothing newer: the wait ends at the timeout with the same bookmark.
    let r = s.get(&format!("{OBJ}/changes?after={now}&timeout_ms=50")).await;
    assert_eq!(r.json()["bookmark"].as_str(), Some(now.as_str()));
    // A commit while waiting ends the wait with the new bookmark.
    let waiter = {
        let s = std::sync::Arc::clone(&s);
        let now = now.clone();
        tokio::spawn(async move { s.get(&format!("{OBJ}/changes?after={now}&timeout_ms=20000")).await.json() })
    };
    s.json("PUT", &format!("{OBJ}/kv/k"), json!(2)).await;
    let got = tokio::time::timeout(std::time::Duration::from_secs(20), waiter).await.expect("answered").expect("task");
    assert!(got["bookmark"].as_str().expect("bookmark") > now.as_str(), "{got}");
    let r = s.get(&format!("{OBJ}/changes?timeout_ms=999999")).await;
    assert_eq!(r.code(), "http.invalid_query");
    let r = s.get(&format!("{OBJ}/changes?after=bad")).await;
    assert_eq!(r.code(), "runtime.invalid_bookmark");
}
