//! Listing objects in key order, with prefix, delimiter, cursor and start-after (spec §9.6).

use base64::Engine as _;
use cairn_storage::{ObjectStorage, SqlValue, prefix_successor};

use crate::objects::{OBJECT_COLUMNS, object_from_row};
use crate::{BucketService, HttpMetadata, Object, Result};

/// Rows fetched per query while walking the keys.
const BATCH: usize = 256;

/// Options of a list.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// Most entries (objects plus delimited prefixes) to return; `None` is the maximum.
    pub limit: Option<i64>,
    /// Where the previous page ended ([`ObjectList::cursor`]).
    pub cursor: Option<String>,
    /// Only keys after this one.
    pub start_after: Option<String>,
    /// Roll keys up to their prefix through the first occurrence of this after `prefix`.
    pub delimiter: Option<String>,
    /// Return objects' HTTP metadata.
    pub include_http_metadata: bool,
    /// Return objects' custom metadata.
    pub include_custom_metadata: bool,
}

/// A page of a list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectList {
    /// Objects, in key order.
    pub objects: Vec<Object>,
    /// Rolled-up prefixes, in key order.
    pub delimited_prefixes: Vec<String>,
    /// Whether there is more (then `cursor` is set).
    pub truncated: bool,
    /// Where to continue.
    pub cursor: Option<String>,
}

/// Encodes a position (the last key a page covered) as a cursor.
pub(crate) fn encode_cursor(key: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// The position (the last key covered) a cursor stands for; `None` for a malformed cursor.
pub fn decode_cursor(cursor: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(cursor).ok()?;
    String::from_utf8(bytes).ok()
}

impl BucketService {
    /// Lists objects in key order (UTF-8 byte order). Rolled-up prefixes and objects both
    /// count towards the limit; keys written after the cursor's position between pages show
    /// up on later pages.
    ///
    /// # Errors
    /// [`crate::Error::InvalidMaxKeys`], [`crate::Error::KeyTooLong`] for a long prefix,
    /// [`crate::Error::BucketNotFound`]; the runtime's.
    pub async fn list(&self, bucket: &str, options: ListOptions) -> Result<ObjectList> {
        let with_metadata = options.include_http_metadata || options.include_custom_metadata;
        let limit = self.limits.list_limit(options.limit, with_metadata)?;
        let prefix = options.prefix.clone().unwrap_or_default();
        self.limits.check_key(&prefix)?;
        let (_, object) = self.open(bucket).await?;
        // An undecodable cursor gives an empty page, as R2 does.
        let cursor = match options.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => match base64::engine::general_purpose::STANDARD.decode(c) {
                Ok(k) => Some(k),
                Err(_) => return Ok(ObjectList::default()),
            },
        };
        let after = [cursor, options.start_after.clone().map(String::into_bytes)].into_iter().flatten().max();
        let delimiter = options.delimiter.clone().filter(|d| !d.is_empty());
        let mut page = object.run(move |s| walk(s, prefix.as_bytes(), after, delimiter.as_deref(), limit)).await?;
        for o in &mut page.objects {
            if !options.include_http_metadata {
                o.http_metadata = HttpMetadata::default();
            }
            if !options.include_custom_metadata {
                o.custom_metadata.clear();
            }
        }
        Ok(page)
    }
}

/// Walks keys under `prefix` after `after`, rolling up at `delimiter`, until `limit` entries.
fn walk(
    s: &mut ObjectStorage,
    prefix: &[u8],
    after: Option<Vec<u8>>,
    delimiter: Option<&str>,
    limit: usize,
) -> Result<ObjectList> {
    let upper = prefix_successor(prefix);
    // The position: keys strictly after it (or from the prefix on, inclusive).
    let mut position: Option<Vec<u8>> = after.filter(|a| a.as_slice() >= prefix);
    // A position that rolls up into a prefix (a cursor after a rolled-up prefix, or a marker
    // naming one) skips everything under that prefix, so it is not returned again.
    if let (Some(d), Some(p)) = (delimiter, &position)
        && let Some(i) = find(&p[prefix.len()..], d.as_bytes())
    {
        let rolled = p[..prefix.len() + i + d.len()].to_vec();
        if let Some(last) = last_key_under(s, &rolled)?
            && last > *p
        {
            position = Some(last);
        }
    }
    let mut out = ObjectList::default();
    let mut entries = 0usize;
    let sql = format!(
        "SELECT {OBJECT_COLUMNS} FROM r2_objects
         WHERE (?1 IS NULL AND key >= ?2 OR key > ?1) AND (?3 IS NULL OR key < ?3)
         ORDER BY key LIMIT {BATCH}"
    );
    'pages: while entries < limit {
        let params = [
            position.clone().map_or(SqlValue::Null, SqlValue::Blob),
            SqlValue::Blob(prefix.to_vec()),
            upper.clone().map_or(SqlValue::Null, SqlValue::Blob),
        ];
        let rows: Vec<Vec<SqlValue>> = s.exec(&sql, &params)?.raw().collect();
        if rows.is_empty() {
            return Ok(out);
        }
        for row in rows {
            let object = object_from_row(row);
            let key = object.key.as_bytes();
            if let Some(d) = delimiter
                && let Some(i) = find(&key[prefix.len()..], d.as_bytes())
            {
                let rolled = &key[..prefix.len() + i + d.len()];
                out.delimited_prefixes.push(String::from_utf8_lossy(rolled).into_owned());
                entries += 1;
                // Skip everything under the rolled-up prefix: resume after its last key.
                position = Some(last_key_under(s, rolled)?.unwrap_or_else(|| key.to_vec()));
                continue 'pages;
            }
            position = Some(key.to_vec());
            out.objects.push(object);
            entries += 1;
            if entries == limit {
                break;
            }
        }
    }
    // The page is full: is there anything after it?
    if let Some(p) = &position {
        let more = s
            .exec(
                "SELECT 1 FROM r2_objects WHERE key > ?1 AND (?2 IS NULL OR key < ?2) LIMIT 1",
                &[SqlValue::Blob(p.clone()), upper.map_or(SqlValue::Null, SqlValue::Blob)],
            )?
            .raw()
            .count()
            > 0;
        if more {
            out.truncated = true;
            out.cursor = Some(encode_cursor(p));
        }
    }
    Ok(out)
}

fn last_key_under(s: &mut ObjectStorage, prefix: &[u8]) -> Result<Option<Vec<u8>>> {
    let upper = prefix_successor(prefix);
    let row = s
        .exec(
            "SELECT max(key) FROM r2_objects WHERE key >= ?1 AND (?2 IS NULL OR key < ?2)",
            &[SqlValue::Blob(prefix.to_vec()), upper.map_or(SqlValue::Null, SqlValue::Blob)],
        )?
        .raw()
        .next();
    Ok(match row.and_then(|r| r.into_iter().next()) {
        Some(SqlValue::Blob(b)) => Some(b),
        _ => None,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
