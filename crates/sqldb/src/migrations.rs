//! Migrations in wrangler's convention: a directory of `NNNN_name.sql` files, applied in
//! numeric order, each recorded in a tracking table (`d1_migrations` by default) in the same
//! atomic batch as its own statements, so a failed migration leaves nothing behind.

use std::path::{Path, PathBuf};

use crate::{Error, Result, Statement};

/// The default tracking table.
pub const DEFAULT_TABLE: &str = "d1_migrations";

/// A `"..."` identifier with inner quotes doubled.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the tracking table if it is missing.
pub fn create_table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {}(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, \
         applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL);",
        quote(table)
    )
}

/// Lists applied migrations (`id`, `name`, `applied_at`) in order.
pub fn applied_sql(table: &str) -> String {
    format!("SELECT * FROM {} ORDER BY id", quote(table))
}

/// The batch that applies migration `name` with text `sql`: the migration's statements, then
/// its bookkeeping row, as one atomic batch. A migration of comments only (as
/// [`create_file`] writes it) adds no statement, so it is just recorded, as wrangler does.
pub fn apply_batch(table: &str, name: &str, sql: &str) -> Vec<Statement> {
    let mut batch = vec![Statement::new(create_table_sql(table))];
    if !cairn_storage::split_statements(sql).is_empty() {
        batch.push(Statement::new(sql.to_owned()));
    }
    batch.push(Statement::new(format!("INSERT INTO {} (name) values ('{}');", quote(table), name.replace('\'', "''"))));
    batch
}

/// The leading integer of a path segment, if it starts with digits.
fn leading_number(segment: &str) -> Option<u64> {
    let digits: String = segment.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Orders migration names as wrangler does: by the leading integer of each path segment,
/// numerically; numbered before unnumbered; ties by plain string order.
pub fn compare_names(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (sa, sb): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
    for (x, y) in sa.iter().zip(&sb) {
        let ord = match (leading_number(x), leading_number(y)) {
            (Some(m), Some(n)) => m.cmp(&n),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.cmp(b)
}

/// The `.sql` files of a migrations directory, by name, in migration order.
///
/// # Errors
/// [`Error::Migration`] if the directory cannot be read (a missing directory is empty).
pub fn list_files(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::Migration { message: format!("cannot read {}: {e}", dir.display()) }),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::Migration { message: format!("cannot read {}: {e}", dir.display()) })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".sql") && entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort_by(|a, b| compare_names(a, b));
    Ok(names)
}

/// Creates the next migration file, `{NNNN}_{message}.sql` (spaces become `_`; NNNN is one
/// more than the largest number in use, from 0001), starting with wrangler's header comment.
///
/// # Errors
/// [`Error::Migration`] for a message with `/` or `\`, or if the file cannot be written.
pub fn create_file(dir: &Path, message: &str, now_ms: i64) -> Result<PathBuf> {
    if message.contains('/') || message.contains('\\') || message.trim().is_empty() {
        return Err(Error::Migration {
            message: format!("invalid migration name {message:?}: it must be non-empty, without '/' or '\\'"),
        });
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Migration { message: format!("cannot create {}: {e}", dir.display()) })?;
    let next = list_files(dir)?.iter().filter_map(|n| leading_number(n)).max().unwrap_or(0) + 1;
    let number = format!("{next:04}");
    let path = dir.join(format!("{number}_{}.sql", message.replace(' ', "_")));
    let header = format!("-- Migration number: {number} \t {}\n", iso_date(now_ms));
    std::fs::write(&path, header)
        .map_err(|e| Error::Migration { message: format!("cannot write {}: {e}", path.display()) })?;
    Ok(path)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a time in ms since the epoch (UTC).
pub fn iso_date(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_order() {
        let mut names = vec!["10_c.sql", "9_b.sql", "notes.sql", "0001_a.sql", "10_b.sql"];
        names.sort_by(|a, b| compare_names(a, b));
        assert_eq!(names, vec!["0001_a.sql", "9_b.sql", "10_b.sql", "10_c.sql", "notes.sql"]);
    }

    #[test]
    fn dates() {
        assert_eq!(iso_date(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_date(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
    }

    #[test]
    fn files_are_numbered_from_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = create_file(dir.path(), "create users", 0).expect("create");
        assert!(first.ends_with("0001_create_users.sql"));
        let text = std::fs::read_to_string(&first).expect("read");
        assert!(text.starts_with("-- Migration number: 0001 \t 1970-01-01T"));
        let second = create_file(dir.path(), "add index", 0).expect("create");
        assert!(second.ends_with("0002_add_index.sql"));
        assert!(create_file(dir.path(), "a/b", 0).is_err());
        assert_eq!(list_files(dir.path()).expect("list"), vec!["0001_create_users.sql", "0002_add_index.sql"]);
    }
}
