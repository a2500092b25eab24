//! The SQL authorizer: what user SQL may and may not do (spec section 3.5).
//!
//! The authorizer runs when SQLite prepares a statement (and when it re-prepares one after a
//! schema change). Cairn's own statements run with [`AuthMode::Internal`]; everything else is
//! checked. When a statement is refused, the reason is kept in [`Denials`] so that the engine
//! can return a precise error instead of SQLite's bare "not authorized".

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

/// Table-name prefixes reserved for the engine, compared case-insensitively. `_cf_` is
/// reserved too so that applications moving between Cairn and Durable Objects see one rule.
pub(crate) const RESERVED_PREFIXES: [&str; 2] = ["_cairn_", "_cf_"];

/// Why the last statement was refused, when it needs a special error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Denial {
    /// `BEGIN`, `COMMIT`, `SAVEPOINT`...
    TransactionControl,
    /// Anything else the authorizer refused. SQLite reports some of these (functions) as
    /// plain `SQLITE_ERROR`, so the engine needs this to return [`crate::Error::SqlNotAuthorized`].
    NotAuthorized,
}

/// Shared state between the engine and its authorizer callback.
#[derive(Default)]
pub(crate) struct AuthState {
    /// True while the engine runs its own statements.
    internal: AtomicBool,
    /// Set by the callback when it refuses a statement for a reason that has its own error.
    last_denial: Mutex<Option<Denial>>,
    /// Set when a user statement being prepared alters a table. `ALTER TABLE ... RENAME TO`
    /// does not show the new name to the authorizer, so the engine checks the schema after
    /// running such a statement.
    saw_alter: AtomicBool,
}

impl AuthState {
    pub(crate) fn set_internal(&self, on: bool) {
        self.internal.store(on, Ordering::Relaxed);
    }

    pub(crate) fn take_alter(&self) -> bool {
        self.saw_alter.swap(false, Ordering::Relaxed)
    }

    pub(crate) fn take_denial(&self) -> Option<Denial> {
        self.last_denial.lock().map(|mut d| d.take()).unwrap_or(None)
    }

    /// Records why a statement was refused; the first reason of a statement wins.
    fn deny(&self, why: Denial) -> Authorization {
        if let Ok(mut d) = self.last_denial.lock() {
            d.get_or_insert(why);
        }
        Authorization::Deny
    }
}

/// Installs the authorizer on `conn`.
pub(crate) fn install(conn: &mut rusqlite::Connection, state: Arc<AuthState>) -> rusqlite::Result<()> {
    conn.authorizer(Some(move |ctx: AuthContext<'_>| authorize(&state, ctx)))
}

fn is_reserved(name: &str) -> bool {
    RESERVED_PREFIXES
        .iter()
        .any(|p| name.len() >= p.len() && name.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes()))
}

fn main_or_temp(db: Option<&str>) -> bool {
    matches!(db, None | Some("main") | Some("temp"))
}

fn allow_if(ok: bool) -> Authorization {
    if ok { Authorization::Allow } else { Authorization::Deny }
}

fn authorize(state: &AuthState, ctx: AuthContext<'_>) -> Authorization {
    if state.internal.load(Ordering::Relaxed) {
        return Authorization::Allow;
    }
    match decide(state, ctx) {
        Authorization::Deny => state.deny(Denial::NotAuthorized),
        other => other,
    }
}

fn decide(state: &AuthState, ctx: AuthContext<'_>) -> Authorization {
    use AuthAction as A;
    // For ALTER TABLE, SQLite passes the schema in the action's first argument and the column
    // of DROP COLUMN in the database-name slot.
    let database = match ctx.action {
        A::AlterTable { database_name, .. } => Some(database_name),
        _ => ctx.database_name,
    };
    if !main_or_temp(database) {
        return Authorization::Deny;
    }
    // Nothing may be created or changed in the temp schema (`CREATE TABLE temp.t`).
    if database == Some("temp") && !matches!(ctx.action, A::Read { .. } | A::Update { .. }) {
        return Authorization::Deny;
    }
    match ctx.action {
        A::Transaction { .. } | A::Savepoint { .. } => state.deny(Denial::TransactionControl),
        A::Attach { .. } | A::Detach { .. } => Authorization::Deny,
        A::CreateTempIndex { .. }
        | A::CreateTempTable { .. }
        | A::CreateTempTrigger { .. }
        | A::CreateTempView { .. }
        | A::DropTempIndex { .. }
        | A::DropTempTable { .. }
        | A::DropTempTrigger { .. }
        | A::DropTempView { .. } => Authorization::Deny,
        A::CreateIndex { index_name, table_name } | A::DropIndex { index_name, table_name } => {
            allow_if(!is_reserved(index_name) && !is_reserved(table_name))
        }
        A::CreateTrigger { trigger_name, table_name } | A::DropTrigger { trigger_name, table_name } => {
            allow_if(!is_reserved(trigger_name) && !is_reserved(table_name))
        }
        A::CreateTable { table_name }
        | A::DropTable { table_name }
        | A::CreateView { view_name: table_name }
        | A::DropView { view_name: table_name }
        | A::Insert { table_name }
        | A::Delete { table_name } => allow_if(!is_reserved(table_name)),
        // `ANALYZE` and `PRAGMA optimize` analyze every table: skip the engine's silently
        // (their statistics would hold samples of their rows) instead of refusing.
        A::Analyze { table_name } if is_reserved(table_name) => Authorization::Ignore,
        A::Analyze { .. } => Authorization::Allow,
        A::Read { table_name, .. } | A::Update { table_name, .. } => allow_if(!is_reserved(table_name)),
        A::AlterTable { table_name, .. } => {
            state.saw_alter.store(true, Ordering::Relaxed);
            allow_if(!is_reserved(table_name))
        }
        A::Reindex { index_name } => allow_if(!is_reserved(index_name)),
        A::CreateVtable { table_name, module_name } | A::DropVtable { table_name, module_name } => {
            let module_ok =
                ["fts5", "fts5vocab", "rtree", "rtree_i32"].iter().any(|m| m.eq_ignore_ascii_case(module_name));
            allow_if(module_ok && !is_reserved(table_name))
        }
        A::Function { function_name } => allow_if(function_allowed(function_name)),
        A::Pragma { pragma_name, pragma_value } => allow_if(pragma_allowed(pragma_name, pragma_value)),
        A::Select | A::Recursive => Authorization::Allow,
        _ => Authorization::Deny,
    }
}

/// The internal functions SQLite's own `ALTER TABLE` code calls (they cannot be called from
/// user SQL directly).
const ALTER_TABLE_FUNCTIONS: [&str; 5] = [
    "sqlite_rename_column",
    "sqlite_rename_table",
    "sqlite_rename_test",
    "sqlite_drop_column",
    "sqlite_rename_quotefix",
];

/// Functions user SQL may not call: introspection of the engine and extension loading.
fn function_allowed(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if ALTER_TABLE_FUNCTIONS.contains(&lower.as_str()) {
        return true;
    }
    !(lower.starts_with("sqlite_")
        || lower == "load_extension"
        || lower == "fts3_tokenizer"
        || lower == "readfile"
        || lower == "writefile")
}

fn is_bool_literal(v: &str) -> bool {
    let v = v.trim_matches(|c| c == '\'' || c == '"');
    ["true", "false", "yes", "no", "on", "off", "1", "0"].iter().any(|b| b.eq_ignore_ascii_case(v))
}

/// The pragma allow-list of spec section 3.5.
fn pragma_allowed(name: &str, value: Option<&str>) -> bool {
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        "data_version" | "page_size" => value.is_none(),
        "case_sensitive_like"
        | "foreign_keys"
        | "defer_foreign_keys"
        | "ignore_check_constraints"
        | "legacy_alter_table"
        | "recursive_triggers"
        | "reverse_unordered_selects" => value.is_none_or(is_bool_literal),
        "foreign_key_check" | "quick_check" | "optimize" | "table_list" => {
            value.is_none_or(|v| !is_reserved(v.trim_matches(|c| c == '\'' || c == '"')))
        }
        "foreign_key_list" | "index_info" | "index_list" | "index_xinfo" | "table_info" | "table_xinfo" => {
            value.is_some_and(|v| !is_reserved(v.trim_matches(|c| c == '\'' || c == '"')))
        }
        _ => false,
    }
}
