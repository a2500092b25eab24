//! Conditional operations (`onlyIf`, and S3's `If-*` headers) with R2's rules (spec §9.5).

use crate::{Error, Result};

/// One entry of an etag list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EtagMatcher {
    /// `*`.
    Wildcard,
    /// A strong etag (its value, without quotes).
    Strong(String),
    /// A weak etag (`W/"..."`; its value, without quotes).
    Weak(String),
}

/// Conditions on the current object of a key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conditions {
    /// `If-Match`: passes if one of these is the object's etag (strong comparison) or `*`.
    pub etag_matches: Option<Vec<EtagMatcher>>,
    /// `If-None-Match`: passes if none of these is the object's etag (weak comparison) nor `*`.
    pub etag_does_not_match: Option<Vec<EtagMatcher>>,
    /// `If-Unmodified-Since`: passes if the object was uploaded before this (ms since the epoch).
    pub uploaded_before: Option<i64>,
    /// `If-Modified-Since`: passes if the object was uploaded after this (ms since the epoch).
    pub uploaded_after: Option<i64>,
    /// Compare upload times in whole seconds (always the case for HTTP headers).
    pub seconds_granularity: bool,
}

/// The outcome of each of the four conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evaluation {
    /// `If-Match` held.
    pub if_match: bool,
    /// `If-None-Match` held.
    pub if_none_match: bool,
    /// `If-Modified-Since` held.
    pub if_modified_since: bool,
    /// `If-Unmodified-Since` held.
    pub if_unmodified_since: bool,
}

impl Evaluation {
    /// Whether every condition held.
    pub fn passed(&self) -> bool {
        self.if_match && self.if_none_match && self.if_modified_since && self.if_unmodified_since
    }

    /// Whether the failure is "not modified" (HTTP 304) rather than "precondition failed"
    /// (412): `If-Match` and `If-Unmodified-Since` held, but one of the others did not.
    pub fn not_modified(&self) -> bool {
        self.if_match && self.if_unmodified_since && !self.passed()
    }
}

impl Conditions {
    /// Whether no condition is set.
    pub fn is_empty(&self) -> bool {
        self.etag_matches.is_none()
            && self.etag_does_not_match.is_none()
            && self.uploaded_before.is_none()
            && self.uploaded_after.is_none()
    }

    /// Conditions from HTTP headers (`If-Match`, `If-None-Match` as raw values; the dates already
    /// parsed to ms since the epoch). Upload times are then compared in whole seconds.
    ///
    /// # Errors
    /// [`Error::InvalidEtagHeader`] for an etag list that does not parse.
    pub fn from_headers(
        if_match: Option<&str>,
        if_none_match: Option<&str>,
        if_modified_since: Option<i64>,
        if_unmodified_since: Option<i64>,
    ) -> Result<Conditions> {
        Ok(Conditions {
            etag_matches: if_match.map(|v| parse_etag_list("if-match", v)).transpose()?,
            etag_does_not_match: if_none_match.map(|v| parse_etag_list("if-none-match", v)).transpose()?,
            uploaded_after: if_modified_since,
            uploaded_before: if_unmodified_since,
            seconds_granularity: true,
        })
    }

    /// Evaluates the conditions against the current object (`None` if the key is missing):
    /// against a missing object they pass iff neither `etag_matches` nor `uploaded_after` is
    /// set.
    pub fn evaluate(&self, object: Option<(&str, i64)>) -> Evaluation {
        let Some((etag, uploaded_ms)) = object else {
            return Evaluation {
                if_match: self.etag_matches.is_none(),
                if_none_match: true,
                if_modified_since: self.uploaded_after.is_none(),
                if_unmodified_since: true,
            };
        };
        let t = if self.seconds_granularity { uploaded_ms.div_euclid(1000) * 1000 } else { uploaded_ms };
        let if_match = self.etag_matches.as_ref().is_none_or(|list| {
            list.iter().any(|m| match m {
                EtagMatcher::Wildcard => true,
                EtagMatcher::Strong(v) => v == etag,
                EtagMatcher::Weak(_) => false,
            })
        });
        let if_none_match = self.etag_does_not_match.as_ref().is_none_or(|list| {
            !list.iter().any(|m| match m {
                EtagMatcher::Wildcard => true,
                EtagMatcher::Strong(v) | EtagMatcher::Weak(v) => v == etag,
            })
        });
        let truncate = |ms: i64| if self.seconds_granularity { ms.div_euclid(1000) * 1000 } else { ms };
        let if_modified_since = self.uploaded_after.is_none_or(|after| truncate(after) < t)
            || (self.etag_does_not_match.is_some() && if_none_match);
        let if_unmodified_since =
            self.uploaded_before.is_none_or(|before| t < truncate(before)) || (self.etag_matches.is_some() && if_match);
        Evaluation { if_match, if_none_match, if_modified_since, if_unmodified_since }
    }
}

/// Parses an RFC 7232 etag list: `"a", W/"b"` or `*`. Unquoted etags are accepted as strong
/// ones, since S3 clients send them so.
///
/// # Errors
/// [`Error::InvalidEtagHeader`].
pub fn parse_etag_list(header: &'static str, value: &str) -> Result<Vec<EtagMatcher>> {
    let bad = || Error::InvalidEtagHeader { header, value: value.to_owned() };
    let mut out = Vec::new();
    for item in value.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(bad());
        }
        if item == "*" {
            out.push(EtagMatcher::Wildcard);
        } else if let Some(rest) = item.strip_prefix("W/") {
            let inner = rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')).ok_or_else(bad)?;
            out.push(EtagMatcher::Weak(inner.to_owned()));
        } else if let Some(rest) = item.strip_prefix('"') {
            let inner = rest.strip_suffix('"').ok_or_else(bad)?;
            if inner.contains('"') {
                return Err(bad());
            }
            out.push(EtagMatcher::Strong(inner.to_owned()));
        } else if item.contains('"') || item.contains(' ') {
            return Err(bad());
        } else {
            out.push(EtagMatcher::Strong(item.to_owned()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strong(e: &str) -> Option<Vec<EtagMatcher>> {
        Some(vec![EtagMatcher::Strong(e.to_owned())])
    }

    #[test]
    fn missing_object_passes_unless_match_or_modified_since() {
        assert!(Conditions::default().evaluate(None).passed());
        let c = Conditions { etag_does_not_match: strong("x"), uploaded_before: Some(5), ..Default::default() };
        assert!(c.evaluate(None).passed());
        assert!(!Conditions { etag_matches: strong("x"), ..Default::default() }.evaluate(None).passed());
        assert!(!Conditions { uploaded_after: Some(1), ..Default::default() }.evaluate(None).passed());
    }

    #[test]
    fn etag_rules() {
        let obj = Some(("abc", 10_000));
        assert!(Conditions { etag_matches: strong("abc"), ..Default::default() }.evaluate(obj).passed());
        let weak = Conditions { etag_matches: Some(vec![EtagMatcher::Weak("abc".into())]), ..Default::default() };
        assert!(!weak.evaluate(obj).passed(), "a weak etag never satisfies If-Match");
        let none_weak =
            Conditions { etag_does_not_match: Some(vec![EtagMatcher::Weak("abc".into())]), ..Default::default() };
        let e = none_weak.evaluate(obj);
        assert!(!e.passed() && e.not_modified(), "If-None-Match compares weakly");
        let star = Conditions { etag_does_not_match: Some(vec![EtagMatcher::Wildcard]), ..Default::default() };
        assert!(!star.evaluate(obj).passed());
        assert!(star.evaluate(None).passed());
    }

    #[test]
    fn date_rules_and_precedence() {
        let obj = Some(("abc", 10_500));
        let secs = |after: Option<i64>, before: Option<i64>| Conditions {
            uploaded_after: after,
            uploaded_before: before,
            seconds_granularity: true,
            ..Default::default()
        };
        // Uploaded at 10.5 s, truncated to 10 s: "after 10 s" is not strictly after.
        assert!(!secs(Some(10_000), None).evaluate(obj).passed());
        assert!(secs(Some(9_999), None).evaluate(obj).passed());
        assert!(!secs(None, Some(10_999)).evaluate(obj).passed());
        assert!(secs(None, Some(11_000)).evaluate(obj).passed());
        // If-Match true wins over If-Unmodified-Since false.
        let c = Conditions { etag_matches: strong("abc"), uploaded_before: Some(0), ..Default::default() };
        assert!(c.evaluate(obj).passed());
        // If-None-Match true wins over If-Modified-Since false.
        let c = Conditions { etag_does_not_match: strong("zzz"), uploaded_after: Some(99_000), ..Default::default() };
        assert!(c.evaluate(obj).passed());
        // If-Unmodified-Since failing is a 412, If-Modified-Since failing a 304.
        assert!(!secs(None, Some(0)).evaluate(obj).not_modified());
        assert!(secs(Some(99_000), None).evaluate(obj).not_modified());
    }

    #[test]
    fn etag_lists_parse() {
        let list = parse_etag_list("if-match", r#""a", W/"b", *, c"#).unwrap();
        assert_eq!(
            list,
            vec![
                EtagMatcher::Strong("a".into()),
                EtagMatcher::Weak("b".into()),
                EtagMatcher::Wildcard,
                EtagMatcher::Strong("c".into())
            ]
        );
        for bad in [r#""a"#, r#"W/b"#, r#""a" "b""#, "", "a,,b"] {
            assert!(parse_etag_list("if-match", bad).is_err(), "{bad}");
        }
    }
}
