//! SQL dumps of an object's user tables, and running SQL scripts (dumps, migrations) statement by
//! statement.
//!
//! A dump holds the user's schema and rows only: the engine's own tables (`_cairn_*`), the
//! reserved `_cf_*` names and SQLite's internal tables are left out, so a dump imported into
//! another object gives the same user-visible database. Rows are written as `INSERT` statements
//! whose literals round-trip exactly (integers, reals in shortest round-trip form, text, blobs
//! as `X'..'`).

use std::fmt::Write as _;

use crate::sql_value::SqlValue;
use crate::{Error, ObjectStorage, Result};

/// What [`ObjectStorage::dump_sql`] writes.
#[derive(Clone, Debug, Default)]
pub struct DumpOptions {
    /// Leave out `CREATE` statements.
    pub no_schema: bool,
    /// Leave out rows.
    pub no_data: bool,
    /// Only these tables (and their indexes and triggers); all user tables when empty.
    pub tables: Vec<String>,
}

/// A schema entry as `sqlite_schema` describes it.
struct SchemaEntry {
    kind: String,
    name: String,
    table: String,
    sql: String,
}

fn is_user_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !(lower.starts_with("_cairn_") || lower.starts_with("_cf_") || lower.starts_with("sqlite_"))
}

impl ObjectStorage {
    /// Writes the user tables as SQL text: `PRAGMA defer_foreign_keys=TRUE;`, each table's
    /// `CREATE TABLE`, its rows as `INSERT`s, then indexes, triggers and views.
    ///
    /// # Errors
    /// [`Error::Internal`] if SQLite fails to read; [`Error::Critical`] after a critical error.
    pub fn dump_sql(&mut self, options: &DumpOptions) -> Result<String> {
        self.check_usable()?;
        let entries = self
            .internal(|c| {
                let mut stmt = c.prepare(
                    "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY rowid",
                )?;
                let rows = stmt.query_map([], |r| {
                    Ok(SchemaEntry { kind: r.get(0)?, name: r.get(1)?, table: r.get(2)?, sql: r.get(3)? })
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(Error::internal("read the schema"))?;
        let wanted = |table: &str| options.tables.is_empty() || options.tables.iter().any(|t| t == table);
        let entries: Vec<SchemaEntry> = entries
            .into_iter()
            .filter(|e| is_user_name(&e.name) && is_user_name(&e.table) && wanted(&e.table))
            .collect();
        let mut out = String::from("PRAGMA defer_foreign_keys=TRUE;\n");
        for table in entries.iter().filter(|e| e.kind == "table") {
            if !options.no_schema {
                out.push_str(&table.sql);
                out.push_str(";\n");
            }
            let is_virtual = table.sql.get(..20).is_some_and(|s| s.eq_ignore_ascii_case("CREATE VIRTUAL TABLE"));
            if !options.no_data && !is_virtual {
                self.dump_rows(&table.name, &mut out)?;
            }
        }
        if !options.no_schema {
            for kind in ["index", "trigger", "view"] {
                for e in entries.iter().filter(|e| e.kind == kind) {
                    out.push_str(&e.sql);
                    out.push_str(";\n");
                }
            }
        }
        Ok(out)
    }

    fn dump_rows(&self, table: &str, out: &mut String) -> Result<()> {
        let quoted = quote_identifier(table);
        self.internal(|c| {
            let mut stmt = c.prepare(&format!("SELECT * FROM {quoted}"))?;
            let columns: Vec<String> = stmt.column_names().map(quote_identifier).collect();
            let prefix = format!("INSERT INTO {quoted} ({}) VALUES(", columns.join(","));
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                out.push_str(&prefix);
                for i in 0..columns.len() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_literal(out, &SqlValue::from_ref(row.get_ref(i)?));
                }
                out.push_str(");\n");
            }
            Ok(())
        })
        .map_err(Error::internal("read rows for a dump"))
    }

    /// Runs a SQL script (a dump, a migration) one statement at a time through
    /// [`ObjectStorage::exec`], so every statement obeys the authorizer and the SQL limits,
    /// while the script as a whole may be longer than one statement's limit. Transaction
    /// statements that dumps carry (`BEGIN TRANSACTION;`, `COMMIT;`, `PRAGMA foreign_keys=OFF;`)
    /// are skipped: the script runs inside the caller's event and is atomic with it.
    /// Returns the number of statements run.
    ///
    /// # Errors
    /// The first statement's error, as [`ObjectStorage::exec`] reports it.
    pub fn exec_script(&mut self, script: &str) -> Result<usize> {
        let mut count = 0;
        for statement in split_statements(script) {
            let normalized: String =
                statement.split_whitespace().collect::<Vec<_>>().join(" ").trim_end_matches(';').to_ascii_uppercase();
            if matches!(
                normalized.as_str(),
                "BEGIN TRANSACTION" | "BEGIN" | "COMMIT" | "END" | "END TRANSACTION" | "PRAGMA FOREIGN_KEYS=OFF"
            ) {
                continue;
            }
            self.exec(statement, &[])?;
            count += 1;
        }
        Ok(count)
    }
}

/// `"name"` with inner quotes doubled.
pub(crate) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn push_literal(out: &mut String, value: &SqlValue) {
    match value {
        SqlValue::Null => out.push_str("NULL"),
        SqlValue::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        SqlValue::Real(f) => {
            if f.is_infinite() {
                out.push_str(if *f > 0.0 { "9e999" } else { "-9e999" });
            } else if f.fract() == 0.0 && f.abs() < 1e15 {
                // Keep the value a REAL: `1.0`, not `1`.
                let _ = write!(out, "{f:.1}");
            } else {
                let _ = write!(out, "{f:?}");
            }
        }
        SqlValue::Text(s) if s.contains('\0') => {
            out.push_str("CAST(X'");
            push_hex(out, s.as_bytes());
            out.push_str("' AS TEXT)");
        }
        SqlValue::Text(s) => {
            out.push('\'');
            out.push_str(&s.replace('\'', "''"));
            out.push('\'');
        }
        SqlValue::Blob(b) => {
            out.push_str("X'");
            push_hex(out, b);
            out.push('\'');
        }
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02X}");
    }
}

/// Splits SQL text into statements at `;` outside string literals, quoted identifiers and
/// comments. A `CREATE TRIGGER` statement ends only at a `;` that follows its `END`. Each
/// statement keeps its text; empty ones (and ones that are only comments) are dropped.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut last_word_end = false; // the last token before `;` was END
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == quote {
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                last_word_end = false;
            }
            b'[' => {
                while i < bytes.len() && bytes[i] != b']' {
                    i += 1;
                }
                i += 1;
                last_word_end = false;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b';' => {
                let text = &sql[start..i];
                if !is_trigger(text) || last_word_end {
                    push_statement(&mut out, &sql[start..=i]);
                    start = i + 1;
                }
                i += 1;
                last_word_end = false;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' => {
                let word_start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                last_word_end = sql[word_start..i].eq_ignore_ascii_case("end");
            }
            c => {
                if !c.is_ascii_whitespace() {
                    last_word_end = false;
                }
                i += 1;
            }
        }
    }
    if start < sql.len() {
        push_statement(&mut out, &sql[start..]);
    }
    out
}

fn push_statement<'a>(out: &mut Vec<&'a str>, text: &'a str) {
    if has_code(text) {
        out.push(text.trim());
    }
}

/// Whether text holds anything but whitespace, comments and `;`.
fn has_code(text: &str) -> bool {
    !code_start(text).is_empty()
}

/// The text from its first token that is not whitespace, a comment or `;`.
fn code_start(text: &str) -> &str {
    let mut rest = text.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, after)| after).trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, after)| after).trim_start();
        } else if let Some(r) = rest.strip_prefix(';') {
            rest = r.trim_start();
        } else {
            return rest;
        }
    }
}

fn is_trigger(text: &str) -> bool {
    let mut words = code_start(text).split_whitespace().map(str::to_ascii_uppercase);
    if words.next().as_deref() != Some("CREATE") {
        return false;
    }
    match words.next().as_deref() {
        Some("TRIGGER") => true,
        Some("TEMP" | "TEMPORARY") => words.next().as_deref() == Some("TRIGGER"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::split_statements;

    #[test]
    fn splits_outside_literals_comments_and_triggers() {
        let sql = "CREATE TABLE t(a TEXT); -- a comment; with a semicolon\n\
                   INSERT INTO t VALUES('x;y'), (\"q;\");\n\
                   /* block; */ CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 'end;'; END;\n\
                   SELECT 1";
        let parts = split_statements(sql);
        assert_eq!(parts.len(), 4, "{parts:?}");
        assert_eq!(parts[0], "CREATE TABLE t(a TEXT);");
        assert!(parts[1].ends_with("(\"q;\");"), "{}", parts[1]);
        assert!(parts[2].contains("CREATE TRIGGER") && parts[2].ends_with("END;"), "{}", parts[2]);
        assert_eq!(parts[3], "SELECT 1");
    }

    #[test]
    fn drops_empty_and_comment_only_statements() {
        assert!(split_statements("  ; -- nothing\n ;").is_empty());
        assert_eq!(split_statements("SELECT 1;;"), vec!["SELECT 1;"]);
    }
}
