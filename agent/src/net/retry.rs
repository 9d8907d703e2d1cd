//! The one retry policy of every HTTP exchange: which failures are worth another try, and how
//! long to wait before it.
//!
//! Waits are exponential with full jitter (uniform in `[0, min(cap, base * 2^n)]`), so that a
//! rack of machines that lost the same server at the same moment does not come back in
//! lockstep. A `Retry-After` (seconds or an HTTP-date) is a floor: the jittered wait is added
//! to it, never replaced by something shorter.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

/// A `Retry-After` longer than this is clamped: a server asking for an hour is broken, and an
/// install that sleeps an hour looks hung.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Tries in all (the first one included) before giving up.
    pub tries: u32,
    /// Upper bound of the first wait; doubles each retry up to `cap`.
    pub base: Duration,
    pub cap: Duration,
    /// Exact waits instead of the jittered schedule (a webhook's `retries`, as curtin takes
    /// them); their length sets the number of retries.
    pub fixed: Option<Vec<Duration>>,
}

impl Policy {
    /// Image downloads: eight tries without a new byte, waits up to 10 s.
    pub fn download() -> Self {
        Policy {
            tries: 8,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
            fixed: None,
        }
    }

    /// Configs (a metadata service that is briefly unreachable at boot): five tries, waits of
    /// up to 1, 2, 4 and 8 s. `$DEPLOYER_FETCH_BACKOFF_MS` sets the first bound, for tests.
    pub fn config() -> Self {
        let base = std::env::var("DEPLOYER_FETCH_BACKOFF_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_secs(1));
        Policy {
            tries: 5,
            base,
            cap: base * 8,
            fixed: None,
        }
    }

    /// The given waits, one retry after each.
    pub fn fixed(waits: Vec<Duration>) -> Self {
        Policy {
            tries: waits.len() as u32 + 1,
            base: Duration::ZERO,
            cap: Duration::ZERO,
            fixed: Some(waits),
        }
    }

    /// A single try.
    pub fn once() -> Self {
        Policy::fixed(Vec::new())
    }

    /// The wait before retry `n` (1 for the first retry), at least `retry_after`.
    pub fn delay(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = match &self.fixed {
            Some(w) => w
                .get(n.saturating_sub(1) as usize)
                .copied()
                .unwrap_or_default(),
            None => {
                let ceiling = self
                    .base
                    .saturating_mul(1 << n.saturating_sub(1).min(20))
                    .min(self.cap);
                ceiling.mul_f64(fastrand::f64())
            }
        };
        match retry_after {
            Some(r) => r.min(MAX_RETRY_AFTER) + backoff,
            None => backoff,
        }
    }
}

/// Counts the tries of one exchange against a policy.
#[derive(Debug)]
pub struct Backoff {
    policy: Policy,
    tries: u32,
}

impl Backoff {
    pub fn new(policy: Policy) -> Self {
        Backoff { policy, tries: 0 }
    }

    /// One more try failed: the wait before the next, or None when the policy is spent.
    pub fn failed(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        self.tries += 1;
        (self.tries < self.policy.tries).then(|| self.policy.delay(self.tries, retry_after))
    }

    /// Progress was made: the next failure starts the count again.
    pub fn reset(&mut self) {
        self.tries = 0;
    }

    /// Tries that failed in a row so far.
    pub fn tries(&self) -> u32 {
        self.tries
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

/// Statuses that another try may cure: 408, 429 and every 5xx. Any other 4xx will not change.
pub fn retryable(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// A response's `Retry-After`, as delta-seconds or an HTTP-date (a date in the past is zero).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn full_jitter_stays_under_the_doubling_ceiling() {
        let p = Policy::download();
        for n in 1..12 {
            let ceiling = (p.base * (1 << (n - 1))).min(p.cap);
            let waits: Vec<_> = (0..200).map(|_| p.delay(n, None)).collect();
            assert!(waits.iter().all(|w| *w <= ceiling), "retry {n}");
            // Spread over the range, not a fixed step: a fleet does not retry in lockstep.
            let lo = waits.iter().min().unwrap();
            let hi = waits.iter().max().unwrap();
            assert!(*hi - *lo > ceiling / 2, "retry {n}: {lo:?}..{hi:?}");
        }
    }

    #[test]
    fn retry_after_is_a_floor() {
        let p = Policy::download();
        for _ in 0..100 {
            let w = p.delay(3, Some(Duration::from_secs(2)));
            assert!(
                w >= Duration::from_secs(2) && w <= Duration::from_millis(2800),
                "{w:?}"
            );
        }
        let w = p.delay(1, Some(Duration::from_secs(86_400)));
        assert!(w <= MAX_RETRY_AFTER + p.base);
    }

    #[test]
    fn fixed_waits_and_counting() {
        let mut b = Backoff::new(Policy::fixed(vec![
            Duration::from_secs(1),
            Duration::from_secs(3),
        ]));
        assert_eq!(b.failed(None), Some(Duration::from_secs(1)));
        assert_eq!(b.failed(None), Some(Duration::from_secs(3)));
        assert_eq!(b.failed(None), None);
        b.reset();
        assert_eq!(b.failed(None), Some(Duration::from_secs(1)));
        assert_eq!(Backoff::new(Policy::once()).failed(None), None);
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(27) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn which_statuses_retry() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 401, 403, 404, 410, 416] {
            assert!(!retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}
