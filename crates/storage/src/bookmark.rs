//! Bookmarks: sortable names for points in an object's commit history.

use std::fmt;

/// A point in an object's history: the commit sequence number and its timestamp.
///
/// Its string form has the Durable Objects shape, four groups of hex digits
/// (`8-8-8-32`), and plain string comparison orders bookmarks by commit sequence:
/// `{seq >> 32:08x}-{seq & 0xffffffff:08x}-00000000-{timestamp_ms:032x}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bookmark {
    /// The commit sequence number the bookmark covers (every commit up to and including it).
    pub seq: u64,
    /// Milliseconds since the epoch of that commit (or of the moment the bookmark was taken,
    /// for a commit still open).
    pub timestamp_ms: u64,
}

impl fmt::Display for Bookmark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}-{:08x}-00000000-{:032x}", self.seq >> 32, self.seq & 0xffff_ffff, self.timestamp_ms)
    }
}

/// A string that is not a bookmark.
#[derive(Debug, thiserror::Error)]
#[error("invalid bookmark {0:?}: expected four groups of 8-8-8-32 hex digits")]
pub struct InvalidBookmark(pub String);

impl std::str::FromStr for Bookmark {
    type Err = InvalidBookmark;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidBookmark(s.chars().take(80).collect());
        let parts: Vec<&str> = s.split('-').collect();
        let [hi, lo, zero, ts] = parts.as_slice() else { return Err(bad()) };
        let lens_ok = hi.len() == 8 && lo.len() == 8 && zero.len() == 8 && ts.len() == 32;
        if !lens_ok || !s.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
        let ts = u128::from_str_radix(ts, 16).map_err(|_| bad())?;
        Ok(Bookmark { seq: (hi << 32) | lo, timestamp_ms: u64::try_from(ts).map_err(|_| bad())? })
    }
}
