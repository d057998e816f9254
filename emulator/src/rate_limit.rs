//! Rate limiting in fixed 60-second windows of the injected clock, and the headers and 429 it produces.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};

use super::config::RetryAfterForm;
use super::routes::json_bytes;

/// The limit advertised when none is enforced: the only figure ever observed (API reference §4).
pub(super) const ADVERTISED_LIMIT: u32 = 180;

/// What the `X-RateLimit-*` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RateInfo {
    pub(super) limit: u32,
    pub(super) remaining: u32,
    /// Unix seconds of the end of the current window.
    pub(super) reset: i64,
}

/// Counts requests per window. Invariant: `count` is the number of requests seen in the window that
/// starts at `window_start` (unix seconds, a multiple of 60).
#[derive(Debug, Default)]
pub(super) struct RateLimiter {
    window_start: i64,
    count: u32,
    /// For [`RetryAfterForm::Alternate`]: whether the next 429 uses a unix time.
    next_is_unix: bool,
}

impl RateLimiter {
    /// Counts one request; the flag is true when it exceeds `limit`.
    pub(super) fn hit(&mut self, now: DateTime<Utc>, limit: Option<u32>) -> (RateInfo, bool) {
        let window_start = now.timestamp().div_euclid(60) * 60;
        if window_start != self.window_start {
            self.window_start = window_start;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        let advertised = limit.unwrap_or(ADVERTISED_LIMIT);
        let info = RateInfo {
            limit: advertised,
            // Unlimited: advertise the headers but never count down, so a client's pacing
            // (which waits in real time) is not driven by a clock a test holds still.
            remaining: if limit.is_some() {
                advertised.saturating_sub(self.count)
            } else {
                advertised
            },
            reset: window_start + 60,
        };
        (info, limit.is_some_and(|n| self.count > n))
    }

    /// The `Retry-After` value of a 429 that may be retried at `at`, in the configured form.
    pub(super) fn retry_after(
        &mut self,
        form: RetryAfterForm,
        now: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> String {
        let unix = match form {
            RetryAfterForm::Seconds => false,
            RetryAfterForm::UnixTime => true,
            RetryAfterForm::Alternate => {
                let unix = self.next_is_unix;
                self.next_is_unix = !unix;
                unix
            }
        };
        if unix {
            at.timestamp().to_string()
        } else {
            // Whole seconds, rounded up, never 0: "retry now" would invite a hot loop.
            let millis = (at - now).num_milliseconds();
            (millis.saturating_add(999) / 1000).max(1).to_string()
        }
    }
}

/// Sets the three `X-RateLimit-*` headers.
pub(super) fn apply_headers(response: &mut Response, info: RateInfo) {
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", i64::from(info.limit)),
        ("x-ratelimit-remaining", i64::from(info.remaining)),
        ("x-ratelimit-reset", info.reset),
    ] {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}

/// The documented 429 (API reference §6.2) with its `Retry-After`. The caller adds the `X-RateLimit-*`
/// headers, with nothing remaining.
pub(super) fn too_many_requests(retry_after: &str) -> Response {
    let mut response = json_bytes(
        StatusCode::TOO_MANY_REQUESTS,
        br#"{"detail":"Rate limit exceeded","error":false}"#.to_vec(),
    );
    if let Ok(value) = HeaderValue::from_str(retry_after) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_fixed_minutes() {
        let at = |s| DateTime::from_timestamp(s, 0).expect("valid");
        let mut limiter = RateLimiter::default();
        assert_eq!(
            limiter.hit(at(120), Some(2)),
            (
                RateInfo {
                    limit: 2,
                    remaining: 1,
                    reset: 180
                },
                false
            )
        );
        assert!(!limiter.hit(at(179), Some(2)).1);
        assert_eq!(
            limiter.hit(at(179), Some(2)),
            (
                RateInfo {
                    limit: 2,
                    remaining: 0,
                    reset: 180
                },
                true
            )
        );
        assert_eq!(
            limiter.hit(at(180), Some(2)),
            (
                RateInfo {
                    limit: 2,
                    remaining: 1,
                    reset: 240
                },
                false
            )
        );
        assert_eq!(limiter.hit(at(181), None).0.limit, ADVERTISED_LIMIT);
    }

    #[test]
    fn retry_after_forms() {
        let now = DateTime::from_timestamp(1_000, 500_000_000).expect("valid");
        let at = DateTime::from_timestamp(1_020, 0).expect("valid");
        let mut limiter = RateLimiter::default();
        assert_eq!(limiter.retry_after(RetryAfterForm::Seconds, now, at), "20");
        assert_eq!(limiter.retry_after(RetryAfterForm::UnixTime, now, at), "1020");
        assert_eq!(limiter.retry_after(RetryAfterForm::Alternate, now, at), "20");
        assert_eq!(limiter.retry_after(RetryAfterForm::Alternate, now, at), "1020");
        assert_eq!(limiter.retry_after(RetryAfterForm::Alternate, now, at), "20");
        assert_eq!(limiter.retry_after(RetryAfterForm::Seconds, now, now), "1");
    }
}
