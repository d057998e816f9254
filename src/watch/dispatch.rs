//! Each org's daily verification and compaction, started by the watchdog rather than by a
//! schedule of their own: one schedule per org is what lets a stack hold hundreds of orgs
//! under CloudFormation's 500 resources. Each org has a fixed slot in a daily window (from a
//! hash of its name), so many orgs' verifications do not start in the same minute.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use sha2::{Digest, Sha256};

use crate::config::parse_duration;
use crate::types::Org;

/// A compaction is started this long after the org's verification slot: the verify has
/// finished (a run lasts minutes), so the days it found complete can be compacted.
pub const COMPACT_AFTER: Duration = Duration::hours(1);

/// At most this many jobs of each kind per watch; the rest stay due for the next watch
/// (after a long outage of the watchdog, no burst of every org at once).
pub const MAX_JOBS_PER_WATCH: usize = 25;

/// The daily window the verifications are spread over: `[start, start + spread)` UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyWindow {
    pub start: NaiveTime,
    pub spread: Duration,
}

impl VerifyWindow {
    pub const DEFAULT_START: &'static str = "04:00";
    pub const DEFAULT_SPREAD: Duration = Duration::hours(4);

    /// From `HH:MM` and a duration (`4h`) of at least a minute and at most a day.
    pub fn parse(start: &str, spread: &str) -> Result<Self, String> {
        let start = NaiveTime::parse_from_str(start.trim(), "%H:%M")
            .map_err(|_| format!("{start:?} is not a time of day HH:MM (UTC), e.g. 04:00"))?;
        let spread = parse_duration(spread)?;
        if spread < Duration::minutes(1) || spread > Duration::days(1) {
            return Err(format!(
                "a verification window of {} is not between 1m and 24h",
                super::notice::age_text(spread)
            ));
        }
        Ok(VerifyWindow { start, spread })
    }

    /// The org's offset into the window (the same on every run and machine).
    pub fn offset(&self, org: &Org) -> Duration {
        let h = Sha256::digest(org.as_str().as_bytes());
        let n = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
        let span = self.spread.num_seconds().max(1) as u64;
        Duration::seconds((n % span) as i64)
    }

    /// The latest of the org's daily slots (shifted by `after`) at or before `now`.
    pub fn latest_slot(&self, org: &Org, now: DateTime<Utc>, after: Duration) -> DateTime<Utc> {
        let shift = self.offset(org) + after;
        let today = now.date_naive().and_time(self.start).and_utc() + shift;
        // A shift past a day (a long window plus `after`) moves the slot to the next day.
        let mut slot = today;
        while slot > now {
            slot -= Duration::days(1);
        }
        while slot + Duration::days(1) <= now {
            slot += Duration::days(1);
        }
        slot
    }
}

/// An org and one of its slots.
pub type Slot = (Org, DateTime<Utc>);

/// The orgs whose job is due at `now`: their latest slot (shifted by `after`) is later than
/// the one last started (`done`). An org not in `done` is not due: its first slot is the
/// next one (a new deployment does not start every org at once); it is entered in `fresh`.
/// Oldest slot first, at most [`MAX_JOBS_PER_WATCH`].
pub fn due<'o>(
    window: &VerifyWindow,
    orgs: impl Iterator<Item = &'o Org>,
    done: &BTreeMap<Org, DateTime<Utc>>,
    now: DateTime<Utc>,
    after: Duration,
) -> (Vec<Slot>, Vec<Slot>) {
    let mut due = Vec::new();
    let mut fresh = Vec::new();
    for org in orgs {
        let slot = window.latest_slot(org, now, after);
        match done.get(org) {
            None => fresh.push((org.clone(), slot)),
            Some(last) if *last < slot => due.push((org.clone(), slot)),
            Some(_) => {}
        }
    }
    due.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    due.truncate(MAX_JOBS_PER_WATCH);
    (due, fresh)
}
