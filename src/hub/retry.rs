//! How long to wait: `Retry-After` in either form, `X-RateLimit-*` pacing, and exponential
//! backoff with full jitter.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Values at or above this are unix times (2001-09-09), below it delta-seconds: a delay of
/// more than 31 years is not a delay anyone means.
const UNIX_TIME_THRESHOLD: u64 = 1_000_000_000;

/// Reads a `Retry-After` value: delta-seconds (`"30"`, `"1.5"`), a unix time
/// (`"1746136938"`, as Docker Hub has been seen to send), or an HTTP date. A time in the
/// past means "now". `None` when it is none of these.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(n) = v.parse::<u64>() {
        return Some(if n >= UNIX_TIME_THRESHOLD {
            until_unix(n, now)
        } else {
            Duration::from_secs(n)
        });
    }
    if let Ok(f) = v.parse::<f64>() {
        return (f.is_finite() && f >= 0.0 && f < UNIX_TIME_THRESHOLD as f64)
            .then(|| Duration::from_secs_f64(f));
    }
    DateTime::parse_from_rfc2822(v)
        .ok()
        .map(|t| (t.with_timezone(&Utc) - now).to_std().unwrap_or(Duration::ZERO))
}

/// Reads `X-RateLimit-Reset` (documented as a unix time; delta-seconds tolerated too).
pub fn parse_reset(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let n = value.trim().parse::<u64>().ok()?;
    Some(if n >= UNIX_TIME_THRESHOLD {
        until_unix(n, now)
    } else {
        Duration::from_secs(n)
    })
}

fn until_unix(t: u64, now: DateTime<Utc>) -> Duration {
    // Clamped, not cast: a hostile 2^63 must read as "far away", never wrap to "now".
    let t = i64::try_from(t).unwrap_or(i64::MAX);
    let ms = t.saturating_mul(1000).saturating_sub(now.timestamp_millis());
    Duration::from_millis(ms.max(0) as u64)
}

/// How long to pause before the next request given the rate-limit headers of the last
/// answer: nothing while plenty is left; when few are left, spread them over the time to
/// the reset; when none are left, wait for the reset. `keep` requests of each window are
/// left for others (the poller, when `verify` reads).
pub fn pacing(remaining: u64, limit: Option<u64>, to_reset: Duration, keep: u64) -> Duration {
    let remaining = remaining.saturating_sub(keep);
    let low_water = limit.map_or(5, |l| (l.saturating_sub(keep) / 20).max(2));
    if remaining == 0 {
        to_reset
    } else if remaining <= low_water {
        to_reset.div_f64(remaining as f64 + 1.0)
    } else {
        Duration::ZERO
    }
}

/// Exponential backoff with full jitter: uniform in `[0, min(cap, base * 2^attempt)]`,
/// never below `base / 2` so a retry storm cannot form.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, jitter: &mut Jitter) -> Duration {
    let exp = base
        .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
        .min(cap);
    let floor = (base / 2).min(exp);
    floor + (exp - floor).mul_f64(jitter.next_unit())
}

/// How long to wait after the `attempt`-th 429 in a row: what the server asked
/// (`Retry-After`, or the reset time), but never less than the backoff for that attempt. A
/// unix time already in the past (a clock ahead of Docker Hub's, or a reset that just
/// passed) reads as "now", and must not fire every retry at once.
pub fn throttle_wait(
    asked: Option<Duration>,
    attempt: u32,
    base: Duration,
    cap: Duration,
    jitter: &mut Jitter,
) -> Duration {
    let floor = backoff(attempt, base, cap, jitter);
    asked.map_or(floor, |a| a.max(floor))
}

/// The generator of jitter (not for anything secret).
#[derive(Debug, Clone)]
pub struct Jitter(fastrand::Rng);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Jitter(fastrand::Rng::with_seed(seed))
    }
    /// Seeded from fastrand's per-thread generator (itself seeded from the clock and the
    /// thread), so clients started together do not retry in step.
    pub fn from_time() -> Self {
        Jitter(fastrand::Rng::new())
    }
    /// Uniform in `[0, 1)`.
    pub fn next_unit(&mut self) -> f64 {
        self.0.f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_746_136_900, 0).unwrap()
    }

    #[test]
    fn a_retry_after_in_the_past_still_backs_off() {
        let now = DateTime::from_timestamp(1_746_136_938, 0).unwrap();
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(60);
        let mut j = Jitter::new(7);
        // Docker Hub's unix time, read on a clock a minute ahead: "now".
        let past = parse_retry_after("1746136878", now);
        assert_eq!(past, Some(Duration::ZERO));
        let waits: Vec<Duration> = (0..6)
            .map(|a| throttle_wait(past, a, base, cap, &mut j))
            .collect();
        assert!(waits.iter().all(|w| *w >= base / 2), "{waits:?}");
        let total: Duration = waits.iter().sum();
        assert!(
            total >= Duration::from_secs(15),
            "six 429s in a row wait, in all: {total:?}"
        );
        // What the server asks is kept when it is longer.
        assert_eq!(
            throttle_wait(Some(Duration::from_secs(40)), 0, base, cap, &mut j),
            Duration::from_secs(40)
        );
    }

    #[test]
    fn retry_after_both_forms() {
        assert_eq!(parse_retry_after("30", now()), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after(" 0 ", now()), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("1.5", now()), Some(Duration::from_millis(1500)));
        // The form seen from Docker Hub in 2025: a unix time equal to X-RateLimit-Reset.
        assert_eq!(
            parse_retry_after("1746136938", now()),
            Some(Duration::from_secs(38))
        );
        // A unix time already past means now, not a 55-year wait.
        assert_eq!(parse_retry_after("1746136000", now()), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Thu, 01 May 2025 22:02:18 GMT", now()),
            Some(Duration::from_secs(38))
        );
        for bad in ["", "soon", "-5", "NaN", "inf"] {
            assert_eq!(parse_retry_after(bad, now()), None, "{bad:?}");
        }
    }

    #[test]
    fn reset_and_pacing() {
        assert_eq!(parse_reset("1746136960", now()), Some(Duration::from_secs(60)));
        assert_eq!(parse_reset("12", now()), Some(Duration::from_secs(12)));
        assert_eq!(parse_reset("x", now()), None);
        let r = Duration::from_secs(30);
        assert_eq!(pacing(100, Some(180), r, 0), Duration::ZERO);
        assert_eq!(pacing(0, Some(180), r, 0), r);
        assert_eq!(pacing(2, Some(180), r, 0), Duration::from_secs(10));
        // Half kept for others: it waits for the reset where the poller would go on.
        assert_eq!(pacing(90, Some(180), r, 90), r);
        assert_eq!(pacing(92, Some(180), r, 90), Duration::from_secs(10));
        assert_eq!(pacing(100, Some(180), r, 0), Duration::ZERO);
        // Hostile headers cannot overflow or divide by zero.
        assert!(pacing(u64::from(u32::MAX), Some(u64::MAX), r, 0) < Duration::from_millis(1));
        assert!(pacing(u64::MAX, Some(u64::MAX), r, u64::MAX / 2) < Duration::from_millis(1));
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let mut j = Jitter::new(7);
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(5);
        let mut seen = std::collections::BTreeSet::new();
        for attempt in 0..30 {
            let d = backoff(attempt, base, cap, &mut j);
            assert!(d >= Duration::from_millis(50) && d <= cap, "{d:?}");
            assert!(d <= base * 2u32.pow(attempt.min(10)), "{attempt}: {d:?}");
            seen.insert(d);
        }
        assert!(seen.len() > 20, "jitter should vary the waits");
    }
}
