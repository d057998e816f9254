//! What the poller keeps per org between runs.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::event::key::{position, ObjectKey};
use crate::types::{EventId, Org, RunId};

/// The durable state of one org.
///
/// Invariants:
/// - every event with a timestamp before `watermark` that the API served when it was read
///   is stored;
/// - `seen` holds the id of every stored event with a timestamp at or after `seen_from`
///   (and `seen_from <= watermark`), so a re-read of `[seen_from, …)` can drop what is
///   already stored;
/// - `recent` (when known) names every object stored whose key sorts at or after
///   `seen_from`'s position (for this tool's keys: whose first event is at or after it): a run that finds another such object in the output knows this checkpoint
///   is older than the output (restored from a backup, or another store's) and rebuilds it;
/// - `pending`, when set, names objects that may or may not have been written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub org: Org,
    /// Bumped by every save; saves are conditional on it.
    pub version: u64,
    pub watermark: Option<DateTime<Utc>>,
    pub seen_from: Option<DateTime<Utc>>,
    #[serde(default)]
    pub seen: BTreeMap<EventId, DateTime<Utc>>,
    #[serde(default)]
    pub pending: Option<Intent>,
    #[serde(default)]
    pub last_run: Option<LastRun>,
    /// The output this checkpoint describes ([`crate::ports::Sink::identity`]); set by the
    /// first run, and any other output is refused.
    #[serde(default)]
    pub output: Option<String>,
    /// How many unreadable items runs have put in the output's quarantine, in all.
    #[serde(default)]
    pub quarantined: u64,
    /// The objects stored whose keys sort at or after `seen_from`'s position (this tool's:
    /// those whose first event is at or after it). `None` in a checkpoint written before
    /// this was kept (rebuilt on its next run).
    #[serde(default)]
    pub recent: Option<BTreeSet<ObjectKey>>,
    /// Stored objects holding records that alert rules matched, whose alerts are not
    /// delivered yet (the outbox): filled when a commit completes, emptied as deliveries
    /// succeed, so an alert is raised once per stored event and retried until delivered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts_pending: Vec<PendingAlerts>,
    /// The time a verify found complete: nothing missing once repaired, no duplicate, every
    /// object readable. Contiguous clean verifies extend it. Compaction takes only days
    /// inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Verified>,
}

/// A span of time verified clean, `[from, to)`, and when that was last found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

impl Verified {
    /// Whether the whole UTC day `day` lies inside the span.
    pub fn covers_day(&self, day: chrono::NaiveDate) -> bool {
        let start = day.and_time(chrono::NaiveTime::MIN).and_utc();
        self.from <= start && start + chrono::Duration::days(1) <= self.to
    }

    /// The span after a clean verify of `[from, to)` at `at`: joined with this one when they
    /// meet or overlap, else the newer of the two (a gap was never verified clean).
    pub fn extended(
        old: Option<Verified>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Verified {
        let new = Verified { from, to, at };
        match old {
            Some(o) if from <= o.to && to >= o.from => Verified {
                from: o.from.min(from),
                to: o.to.max(to),
                at,
            },
            Some(o) if o.to > to => Verified { at, ..o },
            _ => new,
        }
    }
}

/// The most objects the alert outbox keeps while delivery fails: past it the oldest are let
/// go (each logged at error level with its key; the records stay in the output), so a long
/// outage cannot grow the checkpoint without bound.
pub const MAX_ALERTS_PENDING: usize = 5_000;

/// An object whose records raise alerts not yet delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAlerts {
    pub key: ObjectKey,
    /// How many alerts its records raised when it was committed.
    pub alerts: u32,
}

/// A commit in flight: the objects about to be written and the watermark they complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub run_id: RunId,
    pub watermark: DateTime<Utc>,
    pub objects: Vec<PendingObject>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingObject {
    pub key: ObjectKey,
    /// The ids (with timestamps) the object holds.
    pub events: Vec<(EventId, DateTime<Utc>)>,
    /// How many alerts its records raise (0 without alert rules).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub alerts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What the last run that got the lease did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    pub run_id: RunId,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub events_written: u64,
    pub caught_up: bool,
    pub error: Option<String>,
    /// How many runs in a row, this one included, ended with an error (0 when it did not).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: u32,
}

/// What the watchdog remembers between its runs, in the checkpoint store beside the orgs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchMemory {
    /// Bumped by every save; saves are conditional on it (two watchdogs cannot both
    /// remember). Not part of the stored body.
    #[serde(skip)]
    pub version: u64,
    /// The stale orgs the last notification named, each with its reason's kind; empty when
    /// the last one said all are well (or none was sent).
    #[serde(default)]
    pub stale: BTreeMap<Org, String>,
    #[serde(default)]
    pub notified_at: Option<DateTime<Utc>>,
    /// The slot of each org's last verification and compaction dispatched.
    #[serde(default)]
    pub verify_dispatched: BTreeMap<Org, DateTime<Utc>>,
    #[serde(default)]
    pub compact_dispatched: BTreeMap<Org, DateTime<Utc>>,
}

impl Checkpoint {
    pub fn new(org: Org) -> Self {
        Checkpoint {
            org,
            version: 0,
            watermark: None,
            seen_from: None,
            seen: BTreeMap::new(),
            pending: None,
            last_run: None,
            output: None,
            quarantined: 0,
            recent: Some(BTreeSet::new()),
            alerts_pending: Vec::new(),
            verified: None,
        }
    }

    /// Whether this checkpoint knows `key` as stored (or about to be, in its pending commit).
    pub fn knows(&self, key: &ObjectKey) -> bool {
        self.recent.as_ref().is_some_and(|r| r.contains(key))
            || self
                .pending
                .as_ref()
                .is_some_and(|p| p.objects.iter().any(|o| &o.key == key))
    }

    /// Records that these objects are stored: their ids join `seen`.
    pub fn record_stored(&mut self, objects: &[PendingObject]) {
        for o in objects {
            let from = self.seen_from.map(|f| position(&self.org, f));
            if let Some(recent) = self.recent.as_mut() {
                // By key, as the check against the output lists them.
                if from.as_ref().is_none_or(|f| o.key.0 >= *f) {
                    recent.insert(o.key.clone());
                }
            }
            for (id, ts) in &o.events {
                if self.seen_from.is_none_or(|f| *ts >= f) {
                    self.seen.insert(id.clone(), *ts);
                }
            }
        }
    }

    /// Completes `intent` (all its objects are stored): ids join `seen`, objects whose
    /// records raise alerts join the outbox, the watermark moves forward (never back), and
    /// ids older than `watermark - overlap` are let go.
    pub fn complete(&mut self, intent: &Intent, overlap: Duration) {
        self.record_stored(&intent.objects);
        for o in intent.objects.iter().filter(|o| o.alerts > 0) {
            if !self.alerts_pending.iter().any(|p| p.key == o.key) {
                self.alerts_pending.push(PendingAlerts {
                    key: o.key.clone(),
                    alerts: o.alerts,
                });
            }
        }
        let over = self.alerts_pending.len().saturating_sub(MAX_ALERTS_PENDING);
        for p in self.alerts_pending.drain(..over) {
            tracing::error!(org = %self.org, key = %p.key, alerts = p.alerts,
                "alerts undelivered for too long are let go (the outbox is full); the records are in the output");
        }
        self.advance(intent.watermark, overlap);
        self.pending = None;
    }

    /// Moves the watermark forward to `to` (never back) and prunes `seen`.
    pub fn advance(&mut self, to: DateTime<Utc>, overlap: Duration) {
        let w = self.watermark.map_or(to, |w| w.max(to));
        self.watermark = Some(w);
        // On a whole second, as windows start on whole seconds: a sub-second overlap must
        // not let go of ids in a second the next run reads again.
        let keep_from = crate::types::floor_second(w.checked_sub_signed(overlap).unwrap_or(w));
        let from = self.seen_from.map_or(keep_from, |f| f.max(keep_from));
        self.seen_from = Some(from);
        self.seen.retain(|_, ts| *ts >= from);
        if let Some(recent) = self.recent.as_mut() {
            let from = position(&self.org, from);
            recent.retain(|key| key.0 >= from);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn complete_advances_and_prunes() {
        let mut cp = Checkpoint::new(Org::new("acme").unwrap());
        cp.seen_from = Some(t(0));
        let intent = Intent {
            run_id: RunId("r".into()),
            watermark: t(1000),
            objects: vec![PendingObject {
                key: ObjectKey("k".into()),
                events: vec![(EventId("old".into()), t(100)), (EventId("new".into()), t(950))],
                alerts: 2,
            }],
        };
        cp.pending = Some(intent.clone());
        cp.complete(&intent, Duration::seconds(100));
        assert_eq!(cp.watermark, Some(t(1000)));
        assert_eq!(cp.seen_from, Some(t(900)));
        assert!(cp.seen.contains_key(&EventId("new".into())));
        assert!(!cp.seen.contains_key(&EventId("old".into())));
        assert!(cp.pending.is_none());
        assert_eq!(
            cp.alerts_pending,
            [PendingAlerts {
                key: ObjectKey("k".into()),
                alerts: 2
            }]
        );
        // Completing it again (a roll-forward after a crash) queues nothing twice.
        cp.complete(&intent, Duration::seconds(100));
        assert_eq!(cp.alerts_pending.len(), 1);
        // A sub-second overlap keeps whole seconds (windows start on whole seconds).
        let mut sub = Checkpoint::new(Org::new("acme").unwrap());
        sub.advance(t(1000), Duration::milliseconds(1500));
        assert_eq!(sub.seen_from, Some(t(998)));
        // Never backwards.
        cp.advance(t(500), Duration::seconds(100));
        assert_eq!(cp.watermark, Some(t(1000)));
        assert_eq!(cp.seen_from, Some(t(900)));
    }
}
