//! Small types that say what they mean.

use std::fmt;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};

/// A Docker Hub organization (namespace) name.
///
/// Invariant: non-empty, at most 255 characters of `[a-z0-9_-]` (and not starting with `-`),
/// so it is safe in a URL path, an S3 key and a file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Org(String);

#[derive(Debug, thiserror::Error)]
#[error(
    "invalid organization name {0:?}: use the Docker Hub namespace, lowercase letters, digits, '-' or '_'"
)]
pub struct InvalidOrg(String);

impl Org {
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidOrg> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= 255
            && !name.starts_with('-')
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Org(name))
        } else {
            Err(InvalidOrg(name))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Org {
    type Error = InvalidOrg;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Org::new(s)
    }
}
impl From<Org> for String {
    fn from(o: Org) -> String {
        o.0
    }
}
impl std::str::FromStr for Org {
    type Err = InvalidOrg;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Org::new(s)
    }
}
impl fmt::Display for Org {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The stable identity of one stored event: 32 lowercase hex characters derived from the
/// org, the event's canonical form and its ordinal among identical events.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventId(pub String);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A half-open time window `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Window {
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        Window { from, to }
    }
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && t < self.to
    }
    pub fn is_empty(&self) -> bool {
        self.from >= self.to
    }
    pub fn len(&self) -> Duration {
        self.to - self.from
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", rfc3339(self.from), rfc3339(self.to))
    }
}

/// Rounds down to a whole second.
pub fn floor_second(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::seconds(1)).unwrap_or(t)
}

/// RFC 3339 in UTC with a `Z`, fractional seconds only when present.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A run's identity, for provenance and lease ownership (not a secret, not a key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunId(pub String);

impl RunId {
    /// A fresh id from the time, the process id and a counter; unique enough for provenance.
    pub fn generate(now: DateTime<Utc>) -> Self {
        use sha2::{Digest, Sha256};
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut h = Sha256::new();
        h.update(now.timestamp_nanos_opt().unwrap_or_default().to_le_bytes());
        h.update(std::process::id().to_le_bytes());
        h.update(n.to_le_bytes());
        RunId(hex::encode(&h.finalize()[..8]))
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// At most `max` characters of `s`, trimmed, with `…` where it was cut: for text that ends
/// up in a message, a log line or the checkpoint and must stay small whatever its source.
pub fn clip(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The most characters of an error that the checkpoint's last run or the Lambda's answer
/// keeps (the Hub's own text in it is clipped much shorter).
pub const MAX_ERROR_CHARS: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_names_are_checked() {
        assert!(Org::new("acme").is_ok());
        assert!(Org::new("acme-corp_2").is_ok());
        for bad in ["", "Acme", "../etc", "a/b", "-x", "a b", "a.b"] {
            assert!(Org::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn window_is_half_open() {
        let a = DateTime::from_timestamp(100, 0).unwrap();
        let b = DateTime::from_timestamp(200, 0).unwrap();
        let w = Window::new(a, b);
        assert!(w.contains(a));
        assert!(!w.contains(b));
        assert_eq!(w.len(), Duration::seconds(100));
    }
}
