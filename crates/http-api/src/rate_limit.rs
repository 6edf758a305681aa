//! Request rates per API key: a token bucket per key and class (sends, and
//! every other request), refilled at the key's rate and holding
//! `burst_secs` of it. Held in this process: with several servers, each
//! enforces the limits on what it serves (documented).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use maveraa_domain::{ApiKeyId, KeyRateLimits};

/// The server's default rates; a key's own override them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Requests per second per key, sends aside; 0 is no limit.
    pub requests_per_sec: u32,
    /// Sends per second per key; 0 is no limit.
    pub sends_per_sec: u32,
    /// How many seconds of its rate a key may spend at once.
    pub burst_secs: u32,
}

impl Default for RateLimitSettings {
    /// No limits (the server's configuration sets its own).
    fn default() -> Self {
        Self {
            requests_per_sec: 0,
            sends_per_sec: 0,
            burst_secs: 1,
        }
    }
}

/// Which bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Class {
    /// Any request but a send.
    Requests,
    /// `POST /api/public/inbox/send` and the retries.
    Sends,
}

/// What a request's draw left, for the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    /// The bucket's size.
    pub(crate) limit: u32,
    /// Whole tokens left after this request.
    pub(crate) remaining: u32,
    /// Seconds until the bucket is full again.
    pub(crate) reset_secs: u64,
    /// Whether the request may go on.
    pub(crate) allowed: bool,
    /// When refused: seconds until one token is back.
    pub(crate) retry_after_secs: u64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Every key's buckets in this process.
#[derive(Debug, Default)]
pub struct RateLimiter {
    settings: RateLimitSettings,
    buckets: Mutex<HashMap<(ApiKeyId, Class), Bucket>>,
}

impl RateLimiter {
    /// A limiter with these defaults.
    pub fn new(settings: RateLimitSettings) -> Self {
        Self {
            settings,
            buckets: Mutex::default(),
        }
    }

    /// Draws one request of `class` for `key`; `None` when its rate is
    /// unlimited.
    pub(crate) fn take(&self, key: ApiKeyId, own: KeyRateLimits, class: Class) -> Option<Decision> {
        let rate = match class {
            Class::Requests => own
                .requests_per_sec
                .unwrap_or(self.settings.requests_per_sec),
            Class::Sends => own.sends_per_sec.unwrap_or(self.settings.sends_per_sec),
        };
        if rate == 0 {
            return None;
        }
        let rate_f = f64::from(rate);
        let capacity = rate_f * f64::from(self.settings.burst_secs.max(1));
        let now = Instant::now();
        // A poisoned lock only means a panic elsewhere: the buckets hold.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry((key, class)).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * rate_f;
        bucket.tokens = (bucket.tokens + refill).min(capacity);
        bucket.at = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        let secs = |tokens: f64| (tokens / rate_f).ceil().max(0.0) as u64;
        Some(Decision {
            limit: capacity as u32,
            remaining: bucket.tokens.floor() as u32,
            reset_secs: secs(capacity - bucket.tokens),
            allowed,
            retry_after_secs: if allowed {
                0
            } else {
                secs(1.0 - bucket.tokens).max(1)
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_spent_then_refused_and_each_class_and_key_counts_apart() {
        let limiter = RateLimiter::new(RateLimitSettings {
            requests_per_sec: 2,
            sends_per_sec: 1,
            burst_secs: 2,
        });
        let (a, b) = (ApiKeyId::new(), ApiKeyId::new());
        let none = KeyRateLimits::default();
        let draws: Vec<bool> = (0..5)
            .filter_map(|_| limiter.take(a, none, Class::Requests))
            .map(|d| d.allowed)
            .collect();
        assert_eq!(
            draws,
            [true, true, true, true, false],
            "a bucket of 2 s at 2/s"
        );
        let refused = limiter.take(a, none, Class::Requests).expect("limited");
        assert_eq!(
            (refused.limit, refused.remaining, refused.retry_after_secs),
            (4, 0, 1)
        );
        assert!(
            limiter
                .take(a, none, Class::Sends)
                .is_some_and(|d| d.allowed)
        );
        assert!(
            limiter
                .take(b, none, Class::Requests)
                .is_some_and(|d| d.allowed)
        );
        // A key's own rate wins; 0 is no limit.
        let unlimited = KeyRateLimits {
            requests_per_sec: Some(0),
            sends_per_sec: None,
        };
        assert_eq!(limiter.take(a, unlimited, Class::Requests), None);
        let own = KeyRateLimits {
            requests_per_sec: Some(50),
            sends_per_sec: None,
        };
        let d = limiter.take(b, own, Class::Requests).expect("limited");
        assert_eq!(d.limit, 100);
    }
}
