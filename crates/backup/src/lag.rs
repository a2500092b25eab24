//! A histogram of backup lags over every record shipped, with three significant digits: exact
//! below one second, within 0.1% above. Sparse, so it costs only the buckets that were hit.

use std::collections::BTreeMap;

/// Counts of lags (ms) by bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LagHistogram {
    buckets: BTreeMap<u32, u64>,
    count: u64,
}

/// Values below this are their own bucket.
const EXACT_BELOW: u64 = 1000;
/// Buckets per decade above [`EXACT_BELOW`] (mantissas 100..=999).
const PER_DECADE: u64 = 900;

fn bucket_of(ms: u64) -> u32 {
    if ms < EXACT_BELOW {
        return ms as u32;
    }
    let mut scale = 1u64;
    let mut m = ms;
    let mut decade = 0u64;
    while m >= 1000 {
        m /= 10;
        scale *= 10;
        decade += 1;
    }
    debug_assert!(scale > 1);
    u32::try_from(EXACT_BELOW + (decade - 1) * PER_DECADE + (m - 100)).unwrap_or(u32::MAX)
}

/// The largest value in `bucket` (a lag is never reported smaller than it was).
fn upper_bound(bucket: u32) -> u64 {
    let b = u64::from(bucket);
    if b < EXACT_BELOW {
        return b;
    }
    let decade = (b - EXACT_BELOW) / PER_DECADE + 1;
    let m = (b - EXACT_BELOW) % PER_DECADE + 100;
    let scale = 10u64.saturating_pow(u32::try_from(decade).unwrap_or(u32::MAX));
    (m + 1).saturating_mul(scale) - 1
}

impl LagHistogram {
    /// Counts one lag (negative lags, from a clock step, count as 0).
    pub fn record(&mut self, ms: i64) {
        *self.buckets.entry(bucket_of(u64::try_from(ms).unwrap_or(0))).or_default() += 1;
        self.count += 1;
    }

    /// Lags counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The lag at percentile `p` (0-100): the upper bound of its bucket.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((p.clamp(0.0, 100.0) / 100.0) * (self.count - 1) as f64).round() as u64;
        let mut seen = 0;
        for (b, n) in &self.buckets {
            seen += n;
            if seen > rank {
                return Some(upper_bound(*b));
            }
        }
        self.buckets.keys().next_back().map(|b| upper_bound(*b))
    }

    /// The largest lag counted (its bucket's upper bound).
    pub fn max(&self) -> Option<u64> {
        self.buckets.keys().next_back().map(|b| upper_bound(*b))
    }

    /// What was counted after `earlier` (a copy of this histogram taken before).
    pub fn since(&self, earlier: &LagHistogram) -> LagHistogram {
        let mut out = LagHistogram::default();
        for (b, n) in &self.buckets {
            let d = n.saturating_sub(earlier.buckets.get(b).copied().unwrap_or(0));
            if d > 0 {
                out.buckets.insert(*b, d);
                out.count += d;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_keep_three_digits_and_bound_from_above() {
        for ms in [0u64, 1, 999, 1000, 1001, 1234, 9999, 10_000, 123_456, 86_400_000] {
            let b = bucket_of(ms);
            let up = upper_bound(b);
            assert!(up >= ms, "{ms}: upper bound {up}");
            assert!((up - ms) as f64 <= ms as f64 / 100.0 + 0.5, "{ms}: bound {up} too loose");
            if b > 0 {
                assert!(upper_bound(b - 1) < ms, "{ms}: the bucket below also holds it");
            }
        }
    }

    #[test]
    fn percentiles_and_differences() {
        let mut h = LagHistogram::default();
        for ms in 1..=100 {
            h.record(ms);
        }
        assert_eq!((h.count(), h.percentile(50.0), h.percentile(99.0), h.max()), (100, Some(51), Some(99), Some(100)));
        let before = h.clone();
        h.record(5_000);
        h.record(-3);
        let d = h.since(&before);
        // 5,000 falls in the bucket 5,000-5,009, reported by its upper bound.
        assert_eq!((d.count(), d.percentile(0.0), d.percentile(100.0)), (2, Some(0), Some(5_009)));
        assert_eq!(LagHistogram::default().percentile(50.0), None);
    }
}
