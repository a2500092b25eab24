//! Conversions between wire values (JSON bodies) and storage values.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cairn_api_types::{Encoding, WireValue};
use cairn_storage::{SqlValue, Value};

use crate::error::ApiError;

/// A storage value as it travels in JSON: JSON as is, bytes as base64.
pub(crate) fn to_wire(v: Value) -> WireValue {
    match v {
        Value::Json(value) => WireValue { value, encoding: Encoding::Json },
        Value::Bytes(b) => {
            WireValue { value: serde_json::Value::String(STANDARD.encode(b)), encoding: Encoding::Base64 }
        }
    }
}

/// A wire value as stored.
pub(crate) fn from_wire(w: WireValue) -> Result<Value, ApiError> {
    match w.encoding {
        Encoding::Json => Ok(Value::Json(w.value)),
        Encoding::Base64 => {
            let serde_json::Value::String(s) = w.value else {
                return Err(ApiError::bad_request("http.invalid_base64", "a base64 value must be a string"));
            };
            STANDARD
                .decode(s.as_bytes())
                .map(Value::Bytes)
                .map_err(|e| ApiError::bad_request("http.invalid_base64", format!("invalid base64 value: {e}")))
        }
    }
}

/// A JSON parameter as a SQL value: `null`, booleans (1/0), integers, other numbers (REAL),
/// strings, and `{"base64": "..."}` for blobs.
pub(crate) fn sql_param(index: usize, v: serde_json::Value) -> Result<SqlValue, ApiError> {
    use serde_json::Value as J;
    let bad = |what: &str| {
        ApiError::bad_request(
            "sql.invalid_parameter",
            format!(
                "parameter {index} is {what}; expected null, a boolean, a number, a string or {{\"base64\": \"...\"}}"
            ),
        )
    };
    Ok(match v {
        J::Null => SqlValue::Null,
        J::Bool(b) => SqlValue::Integer(i64::from(b)),
        J::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().ok_or_else(|| bad("a number out of range"))?),
        },
        J::String(s) => SqlValue::Text(s),
        J::Object(mut m) if m.len() == 1 && m.contains_key("base64") => match m.remove("base64") {
            Some(J::String(s)) => SqlValue::Blob(STANDARD.decode(s.as_bytes()).map_err(|_| bad("invalid base64"))?),
            _ => return Err(bad("a base64 object whose value is not a string")),
        },
        J::Object(_) => return Err(bad("an object")),
        J::Array(_) => return Err(bad("an array")),
    })
}

/// A SQL result value as JSON (blobs as `{"base64": "..."}`; non-finite reals as `null`).
pub(crate) fn sql_json(v: SqlValue) -> serde_json::Value {
    match v {
        SqlValue::Null => serde_json::Value::Null,
        SqlValue::Integer(i) => i.into(),
        SqlValue::Real(r) => serde_json::Number::from_f64(r).map_or(serde_json::Value::Null, serde_json::Value::Number),
        SqlValue::Text(s) => s.into(),
        SqlValue::Blob(b) => serde_json::json!({ "base64": STANDARD.encode(b) }),
    }
}

/// Most bytes of a refused upload read before answering.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Reads (and drops) what is left of a request body that was refused before it was read (up
/// to 64 MiB), so that a client still sending it gets the error response rather than a reset
/// connection.
pub(crate) async fn drain_body(mut body: axum::body::Body) {
    use http_body_util::BodyExt as _;
    let mut read = 0;
    while let Some(Ok(frame)) = body.frame().await {
        read += frame.data_ref().map_or(0, axum::body::Bytes::len);
        if read > DRAIN_LIMIT {
            break;
        }
    }
}
