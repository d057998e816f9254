//! What the emulator serves and how unfriendly it is.

use std::fmt;

use chrono::Duration;

use super::faults::Fault;

/// The form of `Retry-After` on a 429. Docker's docs say seconds, but a unix timestamp was observed in
/// 2025 (API reference §4), so a client must cope with both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfterForm {
    /// Delta-seconds: `Retry-After: 1`.
    Seconds,
    /// A unix timestamp: `Retry-After: 1746136938`.
    UnixTime,
    /// Seconds on the first 429, a unix timestamp on the next, and so on.
    Alternate,
}

/// Configuration of one emulated namespace.
///
/// Every generated event depends only on `seed` and the clock's time when the emulator is created.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// The namespace whose audit log is served.
    pub org: String,
    /// Identifier accepted by the token exchange (a username: password or PAT). The org name is accepted
    /// too (organization access token).
    pub username: String,
    /// The only secret the token exchange accepts.
    pub secret: String,
    /// How many base events to generate (twins come on top).
    pub events: usize,
    /// Base events are spread uniformly over `[now - days, now - 2 minutes)`.
    pub days: u32,
    pub seed: u64,
    /// `page_size` is capped at this, silently (a cap of 0 acts as 1).
    pub page_cap: u32,
    /// Lifetime of issued tokens: JWT `exp` = issue time + ttl.
    pub token_ttl: Duration,
    /// `None` = unlimited, yet the `X-RateLimit-*` headers are still sent (with a limit of 180).
    pub rate_limit_per_minute: Option<u32>,
    /// Form of `Retry-After` on 429s.
    pub retry_after: RetryAfterForm,
    /// Whether an event at exactly `from` is served. Exclusive by default: the unfriendly choice.
    pub from_inclusive: bool,
    /// Whether an event at exactly `to` is served.
    pub to_inclusive: bool,
    /// `false`: `2026-11-25T21:26:00Z`; `true`: `2026-11-25T21:26:00.123456Z`.
    pub fractional_timestamps: bool,
    /// Fraction of base events that get 1-3 identical copies (same JSON, same timestamp).
    pub twin_fraction: f64,
    /// Fraction of base events that become visible only a delay after their timestamp.
    pub late_fraction: f64,
    /// Upper bound of that delay (uniform in `[1 s, late_max]`).
    pub late_max: Duration,
    /// Live events generated as the clock advances, stamped with their scheduled time.
    pub trickle_per_minute: u32,
    /// Probability that a list request gets a random fault from `fault_kinds`.
    pub fault_rate: f64,
    pub fault_kinds: Vec<Fault>,
    /// This many times, a list request with `page >= 2` first makes a new event visible whose timestamp
    /// lies inside the requested window: a late event landing while a client pages.
    pub insert_while_paging: u32,
    /// Delay of the [`Fault::Slow`] fault.
    pub slow: std::time::Duration,
    /// Events with the same timestamp come in an order that depends on the page asked for,
    /// as SQL `LIMIT/OFFSET` over equal sort keys may: pages of a crowded second overlap and
    /// miss, and two reads give the same wrong multiset.
    pub unstable_ties: bool,
    /// Each request's page size is cut by up to this many events (depending on the page
    /// and the window), with the offset computed from the cut size: pages of one query
    /// disagree about where they start.
    pub page_size_varies: u32,
    /// Every served event carries a `padding` field of this many characters (the same for
    /// the same event, and hardly compressible): a Hub whose pages are megabytes (100 events
    /// of 100 KB make a 10 MB page). 0: none.
    pub event_padding: usize,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            org: "acme".into(),
            username: "acme".into(),
            secret: "dckr_oat_emulator".into(),
            events: 2000,
            days: 90,
            seed: 1,
            page_cap: 100,
            token_ttl: Duration::minutes(10),
            rate_limit_per_minute: None,
            retry_after: RetryAfterForm::Alternate,
            from_inclusive: false,
            to_inclusive: true,
            fractional_timestamps: false,
            twin_fraction: 0.02,
            late_fraction: 0.0,
            late_max: Duration::minutes(10),
            trickle_per_minute: 0,
            fault_rate: 0.0,
            fault_kinds: Fault::random_kinds(),
            insert_while_paging: 0,
            slow: std::time::Duration::from_secs(3),
            unstable_ties: false,
            page_size_varies: 0,
            event_padding: 0,
        }
    }
}

/// Hand-written so that the secret never reaches a log.
impl fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("org", &self.org)
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .field("events", &self.events)
            .field("days", &self.days)
            .field("seed", &self.seed)
            .field("page_cap", &self.page_cap)
            .field("token_ttl", &self.token_ttl)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("retry_after", &self.retry_after)
            .field("from_inclusive", &self.from_inclusive)
            .field("to_inclusive", &self.to_inclusive)
            .field("fractional_timestamps", &self.fractional_timestamps)
            .field("twin_fraction", &self.twin_fraction)
            .field("late_fraction", &self.late_fraction)
            .field("late_max", &self.late_max)
            .field("trickle_per_minute", &self.trickle_per_minute)
            .field("fault_rate", &self.fault_rate)
            .field("fault_kinds", &self.fault_kinds)
            .field("insert_while_paging", &self.insert_while_paging)
            .field("slow", &self.slow)
            .field("unstable_ties", &self.unstable_ties)
            .field("page_size_varies", &self.page_size_varies)
            .field("event_padding", &self.event_padding)
            .finish()
    }
}
