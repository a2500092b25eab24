//! Workers KV's REST API: `/accounts/{account_id}/storage/kv/namespaces/...`.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use cairn_kv::{BulkPut, Entry, ListKeys, Namespace, PutOptions};
use serde::Deserialize;

use super::{
    CfError, authorize, body_bytes, envelope, envelope_with_info, page_bounds, paged, parse_json, query, visible,
};
use crate::state::{Access, AppState};

fn namespace_json(ns: &Namespace) -> serde_json::Value {
    serde_json::json!({"id": ns.id, "title": ns.title, "supports_url_encoding": true})
}

fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, CfError> {
    super::path(p, 10026)
}

/// Authorizes access to namespace `id` (which must exist).
async fn namespace(state: &AppState, headers: &HeaderMap, id: &str, access: Access) -> Result<Namespace, CfError> {
    // The token is checked before the namespace is looked up, so that an unauthenticated
    // caller cannot probe which namespaces exist.
    state.token(headers)?;
    let ns = state.inner.kv.namespace(id).await?;
    authorize(state, headers, Some((&ns.id, &ns.title)), access)?;
    Ok(ns)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListNamespacesQuery {
    page: Option<u64>,
    per_page: Option<u64>,
    order: Option<String>,
    direction: Option<String>,
}

/// `GET .../namespaces`.
pub(crate) async fn list_namespaces(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<ListNamespacesQuery>, QueryRejection>,
) -> Result<Response, CfError> {
    authorize(&s, &headers, None, Access::Read)?;
    let q = query(q)?;
    let mut all: Vec<Namespace> =
        s.inner.kv.list_namespaces().await?.into_iter().filter(|n| visible(&s, &headers, &n.id, &n.title)).collect();
    match q.order.as_deref() {
        None | Some("id") => all.sort_by(|a, b| a.id.cmp(&b.id)),
        Some("title") => all.sort_by(|a, b| a.title.cmp(&b.title)),
        Some(other) => {
            return Err(CfError::bad_request(
                10026,
                "kv.invalid_order",
                format!("invalid order {other:?}: use \"id\" or \"title\""),
            ));
        }
    }
    match q.direction.as_deref() {
        None | Some("asc") => {}
        Some("desc") => all.reverse(),
        Some(other) => {
            return Err(CfError::bad_request(
                10026,
                "kv.invalid_direction",
                format!("invalid direction {other:?}: use \"asc\" or \"desc\""),
            ));
        }
    }
    let (page, per_page) = page_bounds(q.page, q.per_page, 20, 1000);
    Ok(paged(all.iter().map(namespace_json).collect(), page, per_page))
}

#[derive(Debug, Deserialize)]
struct TitleBody {
    title: String,
}

/// `POST .../namespaces` with `{"title"}`.
pub(crate) async fn create_namespace(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, CfError> {
    authorize(&s, &headers, None, Access::Write)?;
    let body: TitleBody = parse_json(&body_bytes(body)?)?;
    let ns = s.inner.kv.create_namespace(&body.title).await?;
    Ok(envelope(namespace_json(&ns)))
}

/// `GET .../namespaces/{namespace_id}`.
pub(crate) async fn get_namespace(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, CfError> {
    let (_, id) = path(p)?;
    let ns = namespace(&s, &headers, &id, Access::Read).await?;
    Ok(envelope(namespace_json(&ns)))
}

/// `PUT .../namespaces/{namespace_id}` with `{"title"}`: renames.
pub(crate) async fn rename_namespace(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, CfError> {
    let (_, id) = path(p)?;
    namespace(&s, &headers, &id, Access::Write).await?;
    let body: TitleBody = parse_json(&body_bytes(body)?)?;
    let ns = s.inner.kv.rename_namespace(&id, &body.title).await?;
    Ok(envelope(namespace_json(&ns)))
}

/// `DELETE .../namespaces/{namespace_id}`.
pub(crate) async fn delete_namespace(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, CfError> {
    let (_, id) = path(p)?;
    namespace(&s, &headers, &id, Access::Write).await?;
    s.inner.kv.delete_namespace(&id).await?;
    Ok(envelope(serde_json::json!({})))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListKeysQuery {
    prefix: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET .../namespaces/{namespace_id}/keys?prefix&limit&cursor`.
pub(crate) async fn list_keys(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<ListKeysQuery>, QueryRejection>,
) -> Result<Response, CfError> {
    let (_, id) = path(p)?;
    namespace(&s, &headers, &id, Access::Read).await?;
    let q = query(q)?;
    let limit = match q.limit.as_deref() {
        None | Some("") => None,
        Some(l) => Some(parse_number(l).map(|n| n.trunc().clamp(-1e15, 1e15) as i64).ok_or_else(|| {
            CfError::bad_request(10028, "kv.invalid_limit", format!("Invalid key_count_limit of {l}."))
        })?),
    };
    let page = s.inner.kv.list(&id, ListKeys { prefix: q.prefix, limit, cursor: q.cursor }).await?;
    let keys: Vec<serde_json::Value> = page
        .keys
        .iter()
        .map(|k| {
            let mut o = serde_json::json!({"name": k.name});
            if let Some(e) = k.expiration {
                o["expiration"] = e.into();
            }
            if let Some(m) = &k.metadata {
                o["metadata"] = m.clone();
            }
            o
        })
        .collect();
    let info = serde_json::json!({"count": keys.len(), "cursor": page.cursor.unwrap_or_default()});
    Ok(envelope_with_info(keys, info))
}

/// A number from a query string (`60`, `60.0`); `None` if it is not one.
fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok()
}

/// `GET .../values/{key}`: the value's bytes (not an envelope), with an `expiration` header
/// when the key expires.
pub(crate) async fn get_value(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Response, CfError> {
    let (_, id, key) = path(p)?;
    namespace(&s, &headers, &id, Access::Read).await?;
    let entry = s.inner.kv.get(&id, &key).await?.ok_or(cairn_kv::Error::KeyNotFound)?;
    let mut response =
        ([(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))], Bytes::from(entry.value))
            .into_response();
    if let Some(e) = entry.expiration
        && let Ok(v) = HeaderValue::from_str(&e.to_string())
    {
        response.headers_mut().insert("expiration", v);
    }
    Ok(response)
}

/// `GET .../metadata/{key}`: the key's metadata (`null` if none).
pub(crate) async fn get_metadata(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Response, CfError> {
    let (_, id, key) = path(p)?;
    namespace(&s, &headers, &id, Access::Read).await?;
    let entry = s.inner.kv.get(&id, &key).await?.ok_or(cairn_kv::Error::KeyNotFound)?;
    Ok(envelope(entry.metadata))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PutQuery {
    expiration: Option<String>,
    expiration_ttl: Option<String>,
}

/// `PUT .../values/{key}?expiration&expiration_ttl`: the body is either `multipart/form-data`
/// with a `value` part and an optional `metadata` part (what Cloudflare's SDKs send), or the
/// raw value.
pub(crate) async fn put_value(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String, String)>, PathRejection>,
    q: Result<Query<PutQuery>, QueryRejection>,
    request: Request,
) -> Result<Response, CfError> {
    let (_, id, key) = path(p)?;
    namespace(&s, &headers, &id, Access::Write).await?;
    let q = query(q)?;
    let number = |v: Option<String>| v.filter(|v| !v.is_empty()).map(|v| parse_number(&v).unwrap_or(f64::NAN));
    let mut options =
        PutOptions { expiration: number(q.expiration), expiration_ttl: number(q.expiration_ttl), metadata: None };
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"));
    let value = if is_multipart {
        let (value, metadata) = read_form(request, &s).await?;
        options.metadata = metadata;
        value
    } else {
        body_bytes(Bytes::from_request(request, &s).await)?
    };
    s.inner.kv.put(&id, &key, Vec::from(value), options).await?;
    Ok(envelope(serde_json::json!({})))
}

/// Reads the `value` and `metadata` parts of a form.
async fn read_form(request: Request, state: &AppState) -> Result<(Bytes, Option<serde_json::Value>), CfError> {
    let form_error = |e: String| CfError::bad_request(10026, "http.invalid_form", format!("malformed form data: {e}"));
    let mut form = Multipart::from_request(request, state).await.map_err(|e| form_error(e.body_text()))?;
    let (mut value, mut metadata) = (None, None);
    while let Some(field) = form.next_field().await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            CfError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                10024,
                "http.body_too_large",
                "the request body is larger than cloudflare_max_body_bytes",
            )
        } else {
            form_error(e.body_text())
        }
    })? {
        let name = field.name().unwrap_or_default().to_owned();
        let is_json = field.content_type().is_some_and(|ct| ct.starts_with("application/json"));
        let bytes = field.bytes().await.map_err(|e| form_error(e.body_text()))?;
        match name.as_str() {
            "value" => value = Some(bytes),
            "metadata" => metadata = parse_metadata_part(&bytes, is_json)?,
            _ => {}
        }
    }
    let value = value.ok_or_else(|| form_error("the form has no \"value\" part".to_owned()))?;
    Ok((value, metadata))
}

/// Metadata sent as a form part: JSON when it parses (or is declared) as JSON, otherwise the
/// text itself as a JSON string (SDKs send scalar metadata as bare text); empty means none.
fn parse_metadata_part(bytes: &[u8], declared_json: bool) -> Result<Option<serde_json::Value>, CfError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(Some(v)),
        Err(e) if declared_json => Err(cairn_kv::Error::InvalidMetadata { reason: e.to_string() }.into()),
        Err(_) => Ok(Some(serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))),
    }
}

/// `DELETE .../values/{key}`.
pub(crate) async fn delete_value(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Response, CfError> {
    let (_, id, key) = path(p)?;
    namespace(&s, &headers, &id, Access::Write).await?;
    s.inner.kv.delete(&id, &key).await?;
    Ok(envelope(serde_json::json!({})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkItem {
    key: String,
    value: String,
    #[serde(default)]
    base64: bool,
    expiration: Option<f64>,
    expiration_ttl: Option<f64>,
    metadata: Option<serde_json::Value>,
}

/// `PUT .../bulk` with `[{"key", "value", "base64"?, "expiration"?, "expiration_ttl"?,
/// "metadata"?}]`: all pairs are checked, then written atomically.
pub(crate) async fn bulk_put(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, CfError> {
    let (_, id) = path(p)?;
    namespace(&s, &headers, &id, Access::Write).await?;
    let items: Vec<BulkItem> = parse_json(&body_bytes(body)?)?;
    let mut pairs = Vec::with_capacity(items.len());
    for item in items {
        let value = if item.base64 {
            base64::engine::general_purpose::STANDARD
                .decode(item.value.as_bytes())
                .map_err(|_| cairn_kv::Error::InvalidBase64 { key: item.key.clone() })?
        } else {
            item.value.into_bytes()
        };
        let options =
            PutOptions { expiration: item.expiration, expiration_ttl: item.expiration_ttl, metadata: item.metadata };
        pairs.push(BulkPut { key: item.key, value, options });
    }
    let n = s.inner.kv.put_many(&id, pairs).await?;
    Ok(envelope(serde_json::json!({"successful_key_count": n, "unsuccessful_keys": []})))
}

/// `POST .../bulk/delete` (and the older `DELETE .../bulk`) with `["key", ...]`.
pub(crate) async fn bulk_delete(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, CfError> {
    let (_, id) = path(p)?;
    namespace(&s, &headers, &id, Access::Write).await?;
    let keys: Vec<String> = parse_json(&body_bytes(body)?)?;
    let n = s.inner.kv.delete_many(&id, keys).await?;
    Ok(envelope(serde_json::json!({"successful_key_count": n, "unsuccessful_keys": []})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkGetBody {
    keys: Vec<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "withMetadata", alias = "with_metadata", default)]
    with_metadata: bool,
}

/// `POST .../bulk/get` with `{"keys", "type"?, "withMetadata"?}`: a value (or `null`) for every
/// requested key.
pub(crate) async fn bulk_get(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, CfError> {
    let (_, id) = path(p)?;
    namespace(&s, &headers, &id, Access::Read).await?;
    let body: BulkGetBody = parse_json(&body_bytes(body)?)?;
    let as_json = match body.kind.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => return Err(cairn_kv::Error::InvalidBulkType { value: other.to_owned() }.into()),
    };
    let entries = s.inner.kv.get_many(&id, body.keys).await?;
    let mut values = serde_json::Map::new();
    for (key, entry) in entries {
        let v = match entry {
            None => serde_json::Value::Null,
            Some(Entry { value, expiration, metadata }) => {
                let value = if as_json {
                    serde_json::from_slice(&value).map_err(|_| cairn_kv::Error::NonJsonValue)?
                } else {
                    serde_json::Value::String(String::from_utf8_lossy(&value).into_owned())
                };
                if body.with_metadata {
                    let mut o = serde_json::json!({"value": value, "metadata": metadata});
                    if let Some(e) = expiration {
                        o["expiration"] = e.into();
                    }
                    o
                } else {
                    value
                }
            }
        };
        values.insert(key, v);
    }
    Ok(envelope(serde_json::json!({"values": values})))
}
