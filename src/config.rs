//! One configuration for a poll, whoever builds it (CLI flags, environment, Lambda event).

use chrono::Duration;

use crate::types::Org;

/// What one run of the poller does for one org.
#[derive(Debug, Clone, PartialEq)]
pub struct PollConfig {
    pub org: Org,
    /// How far back the first run reaches (Docker Hub keeps about three months).
    pub lookback: Duration,
    /// Events younger than this are left for the next run, so they have time to appear.
    pub lag: Duration,
    /// How far behind the watermark each run reads again, to catch events that appear late.
    pub overlap: Duration,
    /// Stop starting new work after this long; everything written is committed.
    pub max_duration: Option<Duration>,
    /// Events asked for per page (the server may give fewer).
    pub page_size: u32,
    /// Events per commit: bounds memory whatever the backlog.
    pub batch_events: usize,
    /// The most events one read of a window holds before it stands (a dense second with
    /// more fails loudly): with `batch_events`, the bound on the events held in memory.
    pub read_events: usize,
    /// The most bytes of events one read holds: a window whose events are larger is cut
    /// smaller, as one with too many. Bounds memory when events are large (a Hub answering
    /// pages of megabytes), where `read_events` alone would not.
    pub read_bytes: usize,
    /// A batch is committed once its events take this many bytes (or `batch_events`).
    pub batch_bytes: usize,
}

impl PollConfig {
    pub const DEFAULT_LOOKBACK: Duration = Duration::days(90);
    pub const DEFAULT_LAG: Duration = Duration::minutes(1);
    pub const DEFAULT_OVERLAP: Duration = Duration::minutes(15);
    /// With [`Self::DEFAULT_BATCH_BYTES`], one page (16 MiB at most) and its parse, the
    /// events held stay far below the 128 MB of the smallest Lambda (README, "Figures").
    pub const DEFAULT_READ_BYTES: usize = 16 << 20;
    pub const DEFAULT_BATCH_BYTES: usize = 8 << 20;

    pub fn new(org: Org) -> Self {
        PollConfig {
            org,
            lookback: Self::DEFAULT_LOOKBACK,
            lag: Self::DEFAULT_LAG,
            overlap: Self::DEFAULT_OVERLAP,
            max_duration: None,
            page_size: 100,
            batch_events: 5000,
            read_events: 16_000,
            read_bytes: Self::DEFAULT_READ_BYTES,
            batch_bytes: Self::DEFAULT_BATCH_BYTES,
        }
    }

    /// Checks the values make sense together; the error says which and why.
    pub fn validate(&self) -> Result<(), String> {
        if self.lookback <= Duration::zero() {
            return Err("--lookback must be longer than zero".into());
        }
        if self.lag < Duration::zero() || self.overlap < Duration::zero() {
            return Err("--lag and --overlap cannot be negative".into());
        }
        let ten_years = Duration::days(3650);
        if self.lookback > ten_years || self.lag > ten_years || self.overlap > ten_years {
            return Err("--lookback, --lag and --overlap must be under ten years".into());
        }
        if self.lag >= self.lookback {
            return Err("--lag must be shorter than --lookback, or nothing would ever be collected".into());
        }
        if !(1..=1000).contains(&self.page_size) {
            return Err("the page size must be between 1 and 1000".into());
        }
        if self.batch_events == 0 || self.batch_bytes == 0 {
            return Err("the batch size must be at least 1 event and 1 byte".into());
        }
        if self.read_bytes < 1 << 20 {
            return Err("--max-read-bytes must be at least 1 MiB".into());
        }
        if self.read_events < self.page_size as usize * 2 {
            return Err(format!(
                "--max-read-events must hold at least two pages ({} events)",
                self.page_size * 2
            ));
        }
        Ok(())
    }
}

/// Parses a humantime duration (`90d`, `15m`, `2s`, `1h 30m`) into a chrono duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration ({e}); write it like 90d, 15m or 30s"))?;
    Duration::from_std(d).map_err(|_| format!("{s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_validation() {
        assert_eq!(parse_duration("90d").unwrap(), Duration::days(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::minutes(15));
        assert!(parse_duration("soon").unwrap_err().contains("90d"));
        let mut c = PollConfig::new(Org::new("acme").unwrap());
        assert!(c.validate().is_ok());
        c.lag = Duration::days(100);
        assert!(c.validate().is_err());
    }
}
