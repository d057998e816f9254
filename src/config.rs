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
    pub const DEFAULT_PAGE_SIZE: u32 = 100;
    pub const DEFAULT_BATCH_EVENTS: usize = 5000;
    pub const DEFAULT_READ_EVENTS: usize = 16_000;
    /// With [`Self::DEFAULT_BATCH_BYTES`], one page (16 MiB at most) and its parse, the
    /// events held stay far below the 128 MB of the smallest Lambda (docs/benchmarks.md).
    pub const DEFAULT_READ_BYTES: usize = 16 << 20;
    pub const DEFAULT_BATCH_BYTES: usize = 8 << 20;
    /// Docker Hub's API.
    pub const DEFAULT_HUB_URL: &'static str = "https://hub.docker.com";

    pub fn new(org: Org) -> Self {
        PollConfig {
            org,
            lookback: Self::DEFAULT_LOOKBACK,
            lag: Self::DEFAULT_LAG,
            overlap: Self::DEFAULT_OVERLAP,
            max_duration: None,
            page_size: Self::DEFAULT_PAGE_SIZE,
            batch_events: Self::DEFAULT_BATCH_EVENTS,
            read_events: Self::DEFAULT_READ_EVENTS,
            read_bytes: Self::DEFAULT_READ_BYTES,
            batch_bytes: Self::DEFAULT_BATCH_BYTES,
        }
    }

    /// Checks the values make sense together. The error names the settings by
    /// [`Setting`]; each shell words them for its own surface (a flag, a variable).
    pub fn validate(&self) -> Result<(), ConfigError> {
        use Setting::*;
        if self.lookback <= Duration::zero() {
            return Err(ConfigError::NotPositive(Lookback));
        }
        for (d, s) in [(self.lag, Lag), (self.overlap, Overlap)] {
            if d < Duration::zero() {
                return Err(ConfigError::Negative(s));
            }
        }
        let ten_years = Duration::days(3650);
        for (d, s) in [
            (self.lookback, Lookback),
            (self.lag, Lag),
            (self.overlap, Overlap),
        ] {
            if d > ten_years {
                return Err(ConfigError::TooLong(s));
            }
        }
        if self.lag >= self.lookback {
            return Err(ConfigError::LagNotBelowLookback);
        }
        if !(1..=1000).contains(&self.page_size) {
            return Err(ConfigError::PageSize);
        }
        if self.batch_events == 0 {
            return Err(ConfigError::NotPositive(BatchEvents));
        }
        if self.batch_bytes == 0 {
            return Err(ConfigError::NotPositive(BatchBytes));
        }
        if self.read_bytes < 1 << 20 {
            return Err(ConfigError::ReadBytesBelowOneMiB);
        }
        if self.read_events < self.page_size as usize * 2 {
            return Err(ConfigError::ReadEventsBelowTwoPages(self.page_size * 2));
        }
        Ok(())
    }
}

/// A setting of [`PollConfig`], as the errors name it: each shell says it its own way
/// ([`Setting::flag`] for the CLI; the Lambda names its variable or input field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Lookback,
    Lag,
    Overlap,
    PageSize,
    BatchEvents,
    BatchBytes,
    ReadEvents,
    ReadBytes,
}

impl Setting {
    /// The CLI flag that sets it.
    pub fn flag(self) -> &'static str {
        match self {
            Setting::Lookback => "--lookback",
            Setting::Lag => "--lag",
            Setting::Overlap => "--overlap",
            Setting::PageSize => "--page-size",
            Setting::BatchEvents => "--batch-events",
            Setting::BatchBytes => "--batch-bytes",
            Setting::ReadEvents => "--max-read-events",
            Setting::ReadBytes => "--max-read-bytes",
        }
    }
}

/// Values of a [`PollConfig`] that do not make sense (together).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{} must be more than zero", .0.flag())]
    NotPositive(Setting),
    #[error("{} cannot be negative", .0.flag())]
    Negative(Setting),
    #[error("{} must be under ten years", .0.flag())]
    TooLong(Setting),
    #[error("--lag must be shorter than --lookback, or nothing would ever be collected")]
    LagNotBelowLookback,
    #[error("--page-size must be between 1 and 1000")]
    PageSize,
    #[error("--max-read-bytes must be at least 1 MiB")]
    ReadBytesBelowOneMiB,
    #[error("--max-read-events must hold at least two pages ({0} events)")]
    ReadEventsBelowTwoPages(u32),
}

impl ConfigError {
    /// The error in words, each setting named by `name` (the Lambda's variables, say);
    /// `Display` names the CLI's flags.
    pub fn describe(&self, name: impl Fn(Setting) -> String) -> String {
        use Setting::*;
        match self {
            ConfigError::NotPositive(s) => format!("{} must be more than zero", name(*s)),
            ConfigError::Negative(s) => format!("{} cannot be negative", name(*s)),
            ConfigError::TooLong(s) => format!("{} must be under ten years", name(*s)),
            ConfigError::LagNotBelowLookback => format!(
                "{} must be shorter than {}, or nothing would ever be collected",
                name(Lag),
                name(Lookback)
            ),
            ConfigError::PageSize => format!("{} must be between 1 and 1000", name(PageSize)),
            ConfigError::ReadBytesBelowOneMiB => format!("{} must be at least 1 MiB", name(ReadBytes)),
            ConfigError::ReadEventsBelowTwoPages(n) => {
                format!("{} must hold at least two pages ({n} events)", name(ReadEvents))
            }
        }
    }
}

/// A duration as the settings write it (`90d`, `15m`), for clap's defaults and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// From a standard duration (a timeout's default, say); saturates far past any setting.
    pub fn from_std(d: std::time::Duration) -> Self {
        HumanDuration(Duration::from_std(d).unwrap_or(Duration::MAX))
    }
}

impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0.num_seconds();
        let ms = self.0.num_milliseconds();
        match s {
            _ if ms % 1000 != 0 => write!(f, "{ms}ms"),
            0 => write!(f, "0s"),
            _ if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            _ if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            _ if s % 60 == 0 => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

/// A size as the settings write it (`16MiB`, `512KiB`, or bytes), for clap's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanBytes(pub usize);

impl std::fmt::Display for HumanBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            n if n > 0 && n % (1 << 30) == 0 => write!(f, "{}GiB", n >> 30),
            n if n > 0 && n % (1 << 20) == 0 => write!(f, "{}MiB", n >> 20),
            n if n > 0 && n % (1 << 10) == 0 => write!(f, "{}KiB", n >> 10),
            n => write!(f, "{n}"),
        }
    }
}

impl std::str::FromStr for HumanBytes {
    type Err = String;
    /// `16MiB`, `512KiB`, `1GiB` or plain bytes.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
        let bad = || format!("{s:?} is not a size; write it like 16MiB, 512KiB or 1048576");
        let shift = match unit.trim() {
            "" | "B" => 0,
            "KiB" => 10,
            "MiB" => 20,
            "GiB" => 30,
            _ => return Err(bad()),
        };
        digits
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_mul(1 << shift))
            .map(HumanBytes)
            .ok_or_else(bad)
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(HumanDuration)
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
        let e = c.validate().unwrap_err();
        assert_eq!(e, ConfigError::LagNotBelowLookback);
        assert!(e.to_string().starts_with("--lag must be shorter than --lookback"));
        let env = e.describe(|s| format!("{s:?}").to_uppercase());
        assert!(env.starts_with("LAG must be shorter than LOOKBACK"), "{env}");
        for d in [
            Duration::days(90),
            Duration::minutes(15),
            Duration::seconds(20),
            Duration::milliseconds(500),
        ] {
            let shown = HumanDuration(d).to_string();
            assert_eq!(shown.parse::<HumanDuration>().unwrap().0, d, "{shown}");
        }
        assert_eq!(HumanDuration(Duration::days(90)).to_string(), "90d");
        for n in [
            PollConfig::DEFAULT_READ_BYTES,
            PollConfig::DEFAULT_BATCH_BYTES,
            512 << 10,
            1000,
        ] {
            let shown = HumanBytes(n).to_string();
            assert_eq!(shown.parse::<HumanBytes>().unwrap().0, n, "{shown}");
        }
        assert_eq!(HumanBytes(16 << 20).to_string(), "16MiB");
        assert!("16 MB".parse::<HumanBytes>().is_err());
    }
}
