//! D1's REST API: `/accounts/{account_id}/d1/database/...`.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use cairn_sqldb::{
    Database, DatabaseInfo, Meta, QueryResult, Statement, json_to_sql, migrations::iso_date, sql_to_json,
};
use cairn_storage::DumpOptions;
use serde::Deserialize;

use super::{CfError, authorize, body_bytes, envelope, origin, page_bounds, paged, parse_json, visible};
use crate::state::{Access, AppState};

fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, CfError> {
    super::path(p, 7400)
}

/// A 32-hex-digit id as a UUID (`8-4-4-4-12`).
fn dashed(id: &str) -> String {
    if id.len() != 32 || !id.is_ascii() {
        return id.to_owned();
    }
    format!("{}-{}-{}-{}-{}", &id[..8], &id[8..12], &id[12..16], &id[16..20], &id[20..])
}

fn database_json(db: &Database) -> serde_json::Value {
    serde_json::json!({
        "uuid": dashed(&db.uuid),
        "name": db.name,
        "created_at": iso_date(db.created_ms),
        "version": "production",
        "jurisdiction": null,
        "read_replication": {"mode": "disabled"},
    })
}

fn info_json(info: &DatabaseInfo) -> serde_json::Value {
    let mut o = database_json(&info.database);
    o["num_tables"] = info.num_tables.into();
    o["file_size"] = info.file_size.into();
    o
}

/// Authorizes access to database `id` (which must exist).
async fn database(state: &AppState, headers: &HeaderMap, id: &str, access: Access) -> Result<Database, CfError> {
    state.token(headers)?;
    let db = state.inner.sql.database(id).await?;
    authorize(state, headers, Some((&db.uuid, &db.name)), access)?;
    Ok(db)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    name: Option<String>,
    page: Option<u64>,
    per_page: Option<u64>,
}

/// `GET .../d1/database?name&page&per_page`.
pub(crate) async fn list_databases(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, CfError> {
    authorize(&s, &headers, None, Access::Read)?;
    let q = super::query(q)?;
    let all: Vec<serde_json::Value> = s
        .inner
        .sql
        .list_databases()
        .await?
        .into_iter()
        .filter(|d| q.name.as_deref().is_none_or(|n| d.name.contains(n)))
        .filter(|d| visible(&s, &headers, &d.uuid, &d.name))
        .map(|d| database_json(&d))
        .collect();
    let (page, per_page) = page_bounds(q.page, q.per_page, 1000, 10_000);
    Ok(paged(all, page, per_page))
}

#[derive(Debug, Deserialize)]
struct CreateBody {
    name: String,
    #[allow(dead_code)]
    primary_location_hint: Option<String>,
    #[allow(dead_code)]
    jurisdiction: Option<String>,
    read_replication: Option<ReadReplication>,
}

#[derive(Debug, Deserialize)]
struct ReadReplication {
    mode: String,
}

fn check_replication(r: Option<&ReadReplication>) -> Result<(), CfError> {
    match r.map(|r| r.mode.as_str()) {
        None | Some("disabled") => Ok(()),
        Some(mode) => Err(CfError::bad_request(
            7400,
            "sql.read_replication_unsupported",
            format!(
                "read replication mode {mode:?} is not supported: a Cairn database has one primary (use \"disabled\")"
            ),
        )),
    }
}

/// `POST .../d1/database` with `{"name"}`.
pub(crate) async fn create_database(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, CfError> {
    authorize(&s, &headers, None, Access::Write)?;
    let body: CreateBody = parse_json(&body_bytes(body)?)?;
    check_replication(body.read_replication.as_ref())?;
    let db = s.inner.sql.create_database(&body.name).await?;
    Ok(envelope(info_json(&DatabaseInfo { database: db, num_tables: 0, file_size: 0 })))
}

/// `GET .../d1/database/{database_id}`: with size and table count.
pub(crate) async fn get_database(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, CfError> {
    let (_, id) = path(p)?;
    let db = database(&s, &headers, &id, Access::Read).await?;
    Ok(envelope(info_json(&s.inner.sql.info(&db.uuid).await?)))
}

#[derive(Debug, Default, Deserialize)]
struct UpdateBody {
    read_replication: Option<ReadReplication>,
}

/// `PUT` or `PATCH .../d1/database/{database_id}`: only `read_replication: disabled` is
/// accepted (Cairn has no read replicas).
pub(crate) async fn update_database(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, CfError> {
    let (_, id) = path(p)?;
    let db = database(&s, &headers, &id, Access::Write).await?;
    let body = body_bytes(body)?;
    let body: UpdateBody = if body.is_empty() { UpdateBody::default() } else { parse_json(&body)? };
    check_replication(body.read_replication.as_ref())?;
    Ok(envelope(info_json(&s.inner.sql.info(&db.uuid).await?)))
}

/// `DELETE .../d1/database/{database_id}`.
pub(crate) async fn delete_database(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, CfError> {
    let (_, id) = path(p)?;
    let db = database(&s, &headers, &id, Access::Write).await?;
    s.inner.sql.delete_database(&db.uuid).await?;
    Ok(envelope(serde_json::Value::Null))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryItem {
    sql: String,
    #[serde(default)]
    params: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    sql: Option<String>,
    #[serde(default)]
    params: Vec<serde_json::Value>,
    batch: Option<Vec<QueryItem>>,
}

fn statements(body: &[u8]) -> Result<Vec<Statement>, CfError> {
    let body: QueryBody = parse_json(body)?;
    let items = match (body.sql, body.batch) {
        (Some(sql), None) => vec![QueryItem { sql, params: body.params }],
        (None, Some(batch)) => batch,
        _ => {
            return Err(CfError::bad_request(
                7400,
                "sql.invalid_body",
                "give either \"sql\" (with optional \"params\") or \"batch\": [{\"sql\", \"params\"}]",
            ));
        }
    };
    items
        .into_iter()
        .map(|item| {
            let params = item.params.iter().map(json_to_sql).collect::<Result<Vec<_>, _>>()?;
            Ok(Statement::new(item.sql).bind(params))
        })
        .collect()
}

fn meta_json(meta: &Meta) -> serde_json::Value {
    serde_json::json!({
        "served_by": "cairn",
        "served_by_region": "local",
        "served_by_primary": true,
        "duration": meta.duration_ms,
        "timings": {"sql_duration_ms": meta.duration_ms},
        "changes": meta.changes,
        "last_row_id": meta.last_row_id,
        "changed_db": meta.changed_db,
        "size_after": meta.size_after,
        "rows_read": meta.rows_read,
        "rows_written": meta.rows_written,
    })
}

async fn run_query(
    s: &AppState,
    headers: &HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<QueryResult>, CfError> {
    let (_, id) = path(p)?;
    let db = database(s, headers, &id, Access::Write).await?;
    let statements = statements(&body_bytes(body)?)?;
    Ok(s.inner.sql.query(&db.uuid, statements).await?)
}

/// `POST .../{database_id}/query` with `{"sql", "params"}` or `{"batch": [...]}`: one result
/// per statement, rows as objects. A batch is atomic.
pub(crate) async fn query(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, CfError> {
    let results = run_query(&s, &headers, p, body).await?;
    let out: Vec<serde_json::Value> = results
        .iter()
        .map(|r| serde_json::json!({"results": r.rows_as_objects(), "success": true, "meta": meta_json(&r.meta)}))
        .collect();
    Ok(envelope(out))
}

/// `POST .../{database_id}/raw`: as `query`, with rows as arrays and the column names.
pub(crate) async fn raw(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, CfError> {
    let results = run_query(&s, &headers, p, body).await?;
    let out: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let rows: Vec<Vec<serde_json::Value>> =
                r.rows.iter().map(|row| row.iter().map(sql_to_json).collect()).collect();
            serde_json::json!({
                "results": {"columns": r.columns, "rows": rows},
                "success": true,
                "meta": meta_json(&r.meta),
            })
        })
        .collect();
    Ok(envelope(out))
}

#[derive(Debug, Default, Deserialize)]
struct ExportBody {
    output_format: Option<String>,
    #[allow(dead_code)]
    current_bookmark: Option<String>,
    #[serde(default)]
    dump_options: DumpOptionsBody,
}

#[derive(Debug, Default, Deserialize)]
struct DumpOptionsBody {
    #[serde(default)]
    no_data: bool,
    #[serde(default)]
    no_schema: bool,
    #[serde(default)]
    tables: Vec<String>,
}

/// `POST .../{database_id}/export` with `{"output_format": "polling", "dump_options"?}`: the
/// dump is made at once (it is one read event), so the first answer is already `complete`,
/// with a URL to download the SQL from.
pub(crate) async fn export(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, CfError> {
    let (_, id) = path(p)?;
    let db = database(&s, &headers, &id, Access::Read).await?;
    let body = body_bytes(body)?;
    let body: ExportBody = if body.is_empty() { ExportBody::default() } else { parse_json(&body)? };
    if let Some(f) = body.output_format.as_deref()
        && f != "polling"
    {
        return Err(CfError::bad_request(
            7400,
            "sql.invalid_output_format",
            format!("output_format {f:?} is not supported: use \"polling\""),
        ));
    }
    let options = DumpOptions {
        no_data: body.dump_options.no_data,
        no_schema: body.dump_options.no_schema,
        tables: body.dump_options.tables,
    };
    let text = s.inner.sql.export(&db.uuid, options).await?;
    let bookmark = s.inner.sql.current_bookmark(&db.uuid).await?;
    let token = s.inner.transfers.stage_export(text).await?;
    Ok(envelope(serde_json::json!({
        "success": true,
        "type": "export",
        "at_bookmark": bookmark,
        "status": "complete",
        "messages": [format!("Generated {}.sql", db.name)],
        "error": null,
        "result": {
            "filename": format!("{}-{}.sql", db.name, bookmark),
            "signed_url": format!("{}/client/v4/_cairn/transfers/{token}", origin(&headers)),
        },
    })))
}

#[derive(Debug, Deserialize)]
struct ImportBody {
    action: String,
    etag: Option<String>,
    filename: Option<String>,
    #[allow(dead_code)]
    current_bookmark: Option<String>,
}

/// `POST .../{database_id}/import`: `init` opens an upload URL for a file with the given MD5,
/// `ingest` runs the uploaded SQL as one atomic event, `poll` answers with the last import.
pub(crate) async fn import(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, CfError> {
    let (_, id) = path(p)?;
    let db = database(&s, &headers, &id, Access::Write).await?;
    let body: ImportBody = parse_json(&body_bytes(body)?)?;
    let missing = |field: &str| {
        CfError::bad_request(7400, "sql.invalid_body", format!("the {:?} action needs {field:?}", body.action))
    };
    match body.action.as_str() {
        "init" => {
            let etag = body.etag.as_deref().ok_or_else(|| missing("etag"))?;
            let token = s.inner.transfers.begin_upload(&db.uuid, etag);
            Ok(envelope(serde_json::json!({
                "success": true,
                "upload_url": format!("{}/client/v4/_cairn/transfers/{token}", origin(&headers)),
                "filename": token,
            })))
        }
        "ingest" => {
            let etag = body.etag.as_deref().ok_or_else(|| missing("etag"))?;
            let filename = body.filename.as_deref().ok_or_else(|| missing("filename"))?;
            let text = s.inner.transfers.take_upload(filename, &db.uuid, etag).await?;
            let summary = s.inner.sql.import(&db.uuid, text).await?;
            let bookmark = s.inner.sql.current_bookmark(&db.uuid).await?;
            let answer = serde_json::json!({
                "success": true,
                "type": "import",
                "at_bookmark": bookmark,
                "status": "complete",
                "messages": [format!("Imported {} statements", summary.num_queries)],
                "error": null,
                "result": {
                    "num_queries": summary.num_queries,
                    "final_bookmark": bookmark,
                    "meta": {
                        "served_by": "cairn",
                        "duration": summary.duration_ms,
                        "changes": summary.rows_written,
                        "rows_read": 0,
                        "rows_written": summary.rows_written,
                        "size_after": summary.size_after,
                        "changed_db": summary.rows_written > 0,
                    },
                },
            });
            s.inner.transfers.finish_import(&db.uuid, answer.clone());
            Ok(envelope(answer))
        }
        "poll" => match s.inner.transfers.last_import(&db.uuid) {
            Some(answer) => Ok(envelope(answer)),
            None => Err(CfError::new(
                StatusCode::NOT_FOUND,
                7404,
                "sql.no_import",
                "no import has run on this database since the server started",
            )),
        },
        other => Err(CfError::bad_request(
            7400,
            "sql.invalid_action",
            format!("unknown import action {other:?}: use \"init\", \"ingest\" or \"poll\""),
        )),
    }
}

/// The query of the Time Travel endpoints.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TimeTravelQuery {
    bookmark: Option<String>,
    timestamp: Option<String>,
}

/// A Time Travel timestamp: RFC 3339 (`2026-11-21T12:00:00Z`), as Cloudflare's API takes, or
/// Unix seconds, as `wrangler d1 time-travel` accepts; in ms since the epoch.
fn parse_timestamp(t: &str) -> Result<i64, CfError> {
    let bad = || {
        CfError::bad_request(
            7400,
            "sql.invalid_timestamp",
            format!("invalid timestamp {t:?}: expected an RFC 3339 time such as 2026-11-21T12:00:00Z, or Unix seconds"),
        )
    };
    cairn_api_types::parse_time_ms(t).ok_or_else(bad)
}

/// `GET .../{database_id}/time_travel/bookmark[?timestamp=T]`: the bookmark of the database's
/// state at `T`, or its current bookmark.
pub(crate) async fn time_travel_bookmark(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<TimeTravelQuery>, QueryRejection>,
) -> Result<Response, CfError> {
    let (_, id) = path(p)?;
    let q = q.map(|Query(q)| q).map_err(|e| CfError::bad_request(7400, "sql.invalid_query", e.body_text()))?;
    let db = database(&s, &headers, &id, Access::Read).await?;
    let time_ms = q.timestamp.as_deref().map(parse_timestamp).transpose()?;
    let bookmark = s.inner.sql.bookmark_at(&db.uuid, time_ms).await?;
    Ok(envelope(serde_json::json!({ "bookmark": bookmark })))
}

/// `POST .../{database_id}/time_travel/restore?bookmark=B` (or `?timestamp=T`): restores the
/// database; the answer carries the new bookmark and the previous one, which undoes it.
pub(crate) async fn time_travel_restore(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<TimeTravelQuery>, QueryRejection>,
) -> Result<Response, CfError> {
    let (_, id) = path(p)?;
    let q = q.map(|Query(q)| q).map_err(|e| CfError::bad_request(7400, "sql.invalid_query", e.body_text()))?;
    let db = database(&s, &headers, &id, Access::Write).await?;
    let target = match (q.bookmark, q.timestamp.as_deref()) {
        (Some(b), _) => cairn_sqldb::RestoreTarget::Bookmark(b),
        (None, Some(t)) => cairn_sqldb::RestoreTarget::Time(parse_timestamp(t)?),
        (None, None) => {
            return Err(CfError::bad_request(
                7400,
                "sql.invalid_query",
                "a restore needs a bookmark or a timestamp query parameter".to_owned(),
            ));
        }
    };
    let (bookmark, previous) = s.inner.sql.restore(&db.uuid, target).await?;
    Ok(envelope(serde_json::json!({
        "bookmark": bookmark,
        "previous_bookmark": previous,
        "message": "Database restored successfully",
    })))
}
