//! `list` options and their compilation into a key range (spec section 1.5).

use crate::{Error, Result};

/// Options for [`crate::ObjectStorage::list`], with the Durable Objects rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ListOptions {
    /// First key to return (inclusive).
    pub start: Option<String>,
    /// Return keys strictly after this one. Exclusive with `start`.
    pub start_after: Option<String>,
    /// Stop before this key (exclusive).
    pub end: Option<String>,
    /// Only keys that begin with this prefix; empty means no restriction.
    pub prefix: Option<String>,
    /// Descending order; the limit then counts from the end.
    pub reverse: bool,
    /// Most entries to return; must be positive.
    pub limit: Option<u64>,
}

impl ListOptions {
    /// Options that list every key.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `prefix`.
    pub fn prefix(mut self, p: impl Into<String>) -> Self {
        self.prefix = Some(p.into());
        self
    }
    /// Sets `start`.
    pub fn start(mut self, s: impl Into<String>) -> Self {
        self.start = Some(s.into());
        self
    }
    /// Sets `start_after`.
    pub fn start_after(mut self, s: impl Into<String>) -> Self {
        self.start_after = Some(s.into());
        self
    }
    /// Sets `end`.
    pub fn end(mut self, e: impl Into<String>) -> Self {
        self.end = Some(e.into());
        self
    }
    /// Sets `limit`.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }
    /// Sets `reverse`.
    pub fn reverse(mut self, r: bool) -> Self {
        self.reverse = r;
        self
    }

    /// Compiles the options into a byte range, or `None` if the range is empty.
    pub(crate) fn compile(&self) -> Result<Option<KeyRange>> {
        if self.start.is_some() && self.start_after.is_some() {
            return Err(Error::ListStartAndStartAfter);
        }
        if self.limit == Some(0) {
            return Err(Error::ListLimitNotPositive);
        }
        let mut start: Vec<u8> = match (&self.start, &self.start_after) {
            (Some(s), _) => s.as_bytes().to_vec(),
            (_, Some(s)) => {
                let mut k = s.as_bytes().to_vec();
                k.push(0);
                k
            }
            _ => Vec::new(),
        };
        let mut end: Option<Vec<u8>> = self.end.as_ref().map(|e| e.as_bytes().to_vec());
        if let Some(prefix) = self.prefix.as_deref().filter(|p| !p.is_empty()) {
            let prefix = prefix.as_bytes();
            if start.as_slice() < prefix {
                start = prefix.to_vec();
            }
            let prefix_end = prefix_successor(prefix);
            if let Some(pe) = &prefix_end
                && start.as_slice() >= pe.as_slice()
            {
                return Ok(None);
            }
            match &end {
                Some(e) if e.as_slice() <= prefix => return Ok(None),
                Some(e) if e.starts_with(prefix) => {}
                _ => end = prefix_end,
            }
        }
        if let Some(e) = &end
            && e.as_slice() <= start.as_slice()
        {
            return Ok(None);
        }
        Ok(Some(KeyRange { start, end, reverse: self.reverse, limit: self.limit }))
    }
}

/// A compiled, non-empty list range over UTF-8 key bytes.
#[derive(Debug)]
pub(crate) struct KeyRange {
    pub(crate) start: Vec<u8>,
    pub(crate) end: Option<Vec<u8>>,
    pub(crate) reverse: bool,
    pub(crate) limit: Option<u64>,
}

/// The smallest byte string greater than every string starting with `prefix`, or `None` if
/// there is none (the prefix is empty or all 0xFF bytes, which UTF-8 never produces).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xFF {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::prefix_successor;

    #[test]
    fn successor_of_prefixes() {
        assert_eq!(prefix_successor(b""), None);
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[b'a', 0xFF]), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(&[0xFF, 0xFF]), None);
    }
}
