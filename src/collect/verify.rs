//! `verify`: what the output holds of an org compared with what Docker Hub serves, day by
//! day, as multisets of event ids; with `repair`, what is missing is written through the
//! commit path under the org's lease (see [`super::repair`]), so a repair racing the poller
//! cannot double anything.
//!
//! One day is held in memory at a time (its ids, and with `repair` its missing events), so
//! a year costs no more memory than its busiest day. Docker Hub is read first, then the
//! output: an event the poller stores in between is found stored, not missing.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

use super::reader::Reader;
use super::server_memory::ServerMemory;
use super::{stored, Poller};
use crate::config::PollConfig;
use crate::event::id::assign_ids;
use crate::event::key::ObjectKey;
use crate::ports::{AuditLog, Checkpoints, HubError, Sink, StoreError};
use crate::types::{EventId, Org, RunId, Window};

/// What to verify.
#[derive(Debug, Clone)]
pub struct VerifyRange {
    pub from: DateTime<Utc>,
    /// Up to where the collection is final at most: the start of the checkpoint's overlap
    /// (`seen_from`; later events may still be stored by the next poll).
    pub until: Option<DateTime<Utc>>,
    /// Write what is missing.
    pub repair: bool,
}

/// Events stored under the same id in more than one copy, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Duplicate {
    pub events: u64,
    pub keys: Vec<ObjectKey>,
}

/// One day's comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayReport {
    pub day: NaiveDate,
    /// The part of the day verified, `[from, to)`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Events Docker Hub serves for it.
    pub at_docker_hub: u64,
    /// Events stored, every copy counted.
    pub stored: u64,
    /// Served, not stored.
    pub missing: u64,
    /// Copies beyond the first of an event stored more than once.
    pub duplicated: u64,
    /// Stored, no longer served.
    pub unexpected: u64,
    /// Docker Hub serves nothing for this day nor any earlier one of the range, and it
    /// is over 30 days old: its stored events are past Docker Hub's retention.
    pub past_retention: bool,
    /// Missing events written by this verify (`--repair`).
    pub repaired: u64,
    pub duplicates: Vec<Duplicate>,
    /// Items Docker Hub served that are not readable events (the poller quarantines them).
    pub unreadable_served: u64,
    /// Stored objects that cannot be read (damaged, or not written by this tool): their
    /// events count as missing, and the day is not repaired while they are there.
    pub unreadable_objects: Vec<ObjectKey>,
    /// The day's compacted object compared with its raw objects, when the day is compacted
    /// (and this verify can read compacted objects).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compacted: Option<CompactedCheck>,
}

/// A compacted day against its raw objects, over the part of the day verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompactedCheck {
    /// Rows of the compacted object.
    pub events: u64,
    /// Raw events (every copy) the compacted object does not hold.
    pub missing: u64,
    /// Rows of the compacted object no raw object holds.
    pub extra: u64,
    /// The compacted object could not be read (the message says why).
    pub unreadable: Option<String>,
}

impl CompactedCheck {
    pub fn agrees(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.unreadable.is_none()
    }
}

/// What a verify did, in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub org: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub days: u64,
    pub at_docker_hub: u64,
    pub stored: u64,
    pub missing: u64,
    pub duplicated: u64,
    pub unexpected: u64,
    /// Days whose stored events are past Docker Hub's retention.
    pub days_past_retention: u64,
    pub repaired: u64,
    /// Stored objects that could not be read.
    pub unreadable_objects: u64,
    /// Compacted days whose compacted object does not hold exactly their raw events.
    pub compacted_days_disagreeing: u64,
    /// Docker Hub requests, before the verify started (estimated) and in fact.
    pub estimated_requests: u64,
    pub requests: u64,
    /// False when time ran out (or Docker Hub failed) before the last day: what is
    /// reported covers `[from, to)` only.
    pub complete: bool,
    pub stopped_early: Option<String>,
    /// Why missing events were not (or would not be) repaired, for the first such day.
    pub repair_skipped: Option<String>,
}

impl VerifyReport {
    /// Every day verified, nothing missing (once repaired), nothing doubled, every object
    /// readable.
    pub fn clean(&self) -> bool {
        self.complete
            && self.missing == self.repaired
            && self.duplicated == 0
            && self.unreadable_objects == 0
            && self.compacted_days_disagreeing == 0
    }

    /// The report of a verify of `org` from `from` that has verified nothing yet.
    fn starting(org: &Org, from: DateTime<Utc>, estimated_requests: u64) -> Self {
        VerifyReport {
            org: org.to_string(),
            from,
            to: from,
            days: 0,
            at_docker_hub: 0,
            stored: 0,
            missing: 0,
            duplicated: 0,
            unexpected: 0,
            days_past_retention: 0,
            repaired: 0,
            unreadable_objects: 0,
            compacted_days_disagreeing: 0,
            estimated_requests,
            requests: 0,
            complete: true,
            stopped_early: None,
            repair_skipped: None,
        }
    }

    /// The verify stops before its last day, for `why`.
    fn stop(&mut self, why: String) {
        self.complete = false;
        self.stopped_early = Some(why);
    }

    fn add(&mut self, d: &DayReport) {
        self.days += 1;
        self.to = d.to;
        self.at_docker_hub += d.at_docker_hub;
        self.stored += d.stored;
        self.missing += d.missing;
        self.duplicated += d.duplicated;
        self.unexpected += d.unexpected;
        self.days_past_retention += u64::from(d.past_retention);
        self.repaired += d.repaired;
        self.unreadable_objects += d.unreadable_objects.len() as u64;
        self.compacted_days_disagreeing += u64::from(d.compacted.as_ref().is_some_and(|c| !c.agrees()));
    }
}

/// What a verify tells its caller as it goes.
pub enum Progress<'r> {
    /// Before the first request: the range and what it should cost.
    Plan {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        days: u64,
        estimated_requests: u64,
    },
    Day(&'r DayReport),
}

/// Why a verify could not be done at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Nothing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hub(#[from] HubError),
}

/// Bytes a stored event takes, gzipped, for the cost estimate (measured on the emulator's
/// events: 81; Docker Hub's carry more fields, so the estimate errs high).
const STORED_BYTES_PER_EVENT: u64 = 80;

/// Docker Hub requests a day of `events` costs: one window per request, and a window is
/// halved until it fits a page, so it holds a quarter to a half of one (measured: 109,500
/// events over a year in 4,279 requests with pages of 100).
fn day_cost(events: u64, page_size: u32) -> u64 {
    1 + events.div_ceil(u64::from(page_size / 4).max(1))
}

/// The days of `[from, to)`, each as the part of it inside the range.
fn days_of(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(NaiveDate, Window)> {
    let mut out = Vec::new();
    let mut day = from.date_naive();
    while let Some(start) = day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()) {
        if start.max(from) >= to {
            break;
        }
        let end = start + Duration::days(1);
        out.push((day, Window::new(start.max(from), end.min(to))));
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    out
}

impl<A, K, S> Poller<'_, A, K, S>
where
    A: AuditLog + ?Sized,
    K: Checkpoints,
    S: Sink + ?Sized,
{
    /// Verifies `cfg.org` over `range`, up to where its collection is final (`seen_from`:
    /// later events may still be stored by the poller's overlap), calling `progress` with
    /// the plan and then each day as it is done.
    ///
    /// Invariant: it only ever writes events Docker Hub served and the output does not
    /// hold, checked again under the org's lease and written through the commit protocol;
    /// without `repair` it writes nothing. The lease is held only while a day is repaired,
    /// so a long verify does not hold the poller up.
    pub async fn verify(
        &self,
        cfg: &PollConfig,
        range: &VerifyRange,
        deadline: Option<DateTime<Utc>>,
        progress: &mut (dyn FnMut(Progress<'_>) + Send),
    ) -> Result<VerifyReport, VerifyError> {
        let org = &cfg.org;
        let run_id = RunId::generate(self.clock.now());
        let (from, to) = self.verify_scope(org, range).await?;
        let days = days_of(from, to);
        let estimated = self.estimate_requests(org, &days, cfg.page_size).await?;
        progress(Progress::Plan {
            from,
            to,
            days: days.len() as u64,
            estimated_requests: estimated,
        });
        if !days.is_empty() {
            crate::progress::span(from, to);
        }
        let mut report = VerifyReport::starting(org, from, estimated);
        let fresh = ServerMemory::default();
        let memory = self.page_sizes.unwrap_or(&fresh);
        let mut reader = Reader::for_run(self.api, cfg, memory, deadline, self.clock);
        // A verification checks what the poller assumed: it trusts no split of identical
        // events, however old and however steady the server has looked.
        reader.fetcher.check_every_split();
        let old = self
            .clock
            .now()
            .checked_sub_signed(Duration::days(30))
            .unwrap_or(from);
        let mut served_yet = false;
        for (day, w) in days {
            let read = hub_ids(&mut reader, org, w).await;
            report.requests = reader.fetcher.requests;
            let (hub, unreadable) = match read {
                Ok(r) => r,
                Err(HubError::OutOfTime(msg)) => {
                    report.stop(msg);
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let mut d = self
                .compare_day(org, day, w, hub, unreadable, range.repair)
                .await?;
            served_yet |= d.report.at_docker_hub > 0;
            d.report.past_retention = !served_yet && d.report.stored > 0 && w.to <= old;
            let out_of_time = if d.report.missing > 0 {
                self.repair_missing(cfg, &mut reader, &mut d, w, &run_id, &mut report)
                    .await?
            } else {
                None
            };
            report.add(&d.report);
            progress(Progress::Day(&d.report));
            if let Some(msg) = out_of_time {
                report.stop(msg);
                break;
            }
        }
        if report.clean() && report.days > 0 {
            self.record_verified(org, &run_id, report.from, report.to).await;
        }
        Ok(report)
    }

    /// Records `[from, to)` as verified clean in the checkpoint (what compaction waits for).
    /// Best effort: when the lease is busy or the save fails, the next clean verify records
    /// it, and nothing else depends on it.
    async fn record_verified(&self, org: &Org, run_id: &RunId, from: DateTime<Utc>, to: DateTime<Utc>) {
        let now = self.clock.now();
        let result = async {
            let Some((lease, mut cp)) = self.checkpoints.acquire(org, run_id).await? else {
                return Ok(false);
            };
            cp.verified = Some(crate::checkpoint_model::Verified::extended(
                cp.verified,
                from,
                to,
                now,
            ));
            let saved = self.checkpoints.save(&lease, &mut cp).await;
            if let Err(e) = self.checkpoints.release(lease).await {
                tracing::warn!(error = %e, "could not release the lease; it expires by itself");
            }
            saved.map(|()| true)
        }
        .await;
        match result {
            Ok(true) => tracing::debug!(%org, %from, %to, "recorded as verified"),
            Ok(false) => {
                tracing::info!(%org, "a poll held the lease: the verified span is recorded by the next verify")
            }
            Err(e) => {
                tracing::warn!(%org, error = %e, "could not record the verified span; the next verify does")
            }
        }
    }

    /// The range a verify covers, `[from, to)`: `range` up to where the collection is final
    /// (`seen_from`), once the checkpoint shows something was collected into this output.
    async fn verify_scope(
        &self,
        org: &Org,
        range: &VerifyRange,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), VerifyError> {
        let Some(cp) = self.checkpoints.peek(org).await? else {
            return Err(VerifyError::Nothing(format!(
                "there is no checkpoint of {org}: nothing was collected yet (or give the --checkpoint that goes \
                 with this output; `checkpoint rebuild` makes one from the output)"
            )));
        };
        let Some(watermark) = cp.watermark else {
            return Err(VerifyError::Nothing(format!(
                "the checkpoint of {org} has no watermark: nothing was collected yet"
            )));
        };
        if let Some(recorded) = cp.output.as_deref() {
            let output = self.sink.identity().await?;
            if recorded != output {
                return Err(VerifyError::Nothing(format!(
                    "the checkpoint of {org} describes the output {recorded}, not {output}: give the checkpoint \
                     store that goes with this output"
                )));
            }
        }
        let settled = cp.seen_from.map_or(watermark, |f| f.min(watermark));
        let to = range.until.map_or(settled, |u| u.min(settled));
        let from = crate::types::floor_second(range.from.min(to));
        Ok((from, to))
    }

    /// The Docker Hub requests verifying `days` should cost, from the bytes stored for each.
    async fn estimate_requests(
        &self,
        org: &Org,
        days: &[(NaiveDate, Window)],
        page_size: u32,
    ) -> Result<u64, StoreError> {
        // Listed only where there are partitions: a range reaching back years costs one
        // listing per stored day, not per calendar day. Each day is listed again when it is
        // compared: keeping a year's listings would undo the one-day memory bound.
        let stored_days: std::collections::BTreeSet<NaiveDate> =
            self.sink.days(org).await?.into_iter().collect();
        let mut estimated = 0;
        for (day, _) in days {
            let bytes: u64 = if stored_days.contains(day) {
                self.sink.list_day(org, *day).await?.iter().map(|o| o.size).sum()
            } else {
                0
            };
            estimated += day_cost(bytes / STORED_BYTES_PER_EVENT, page_size);
        }
        Ok(estimated)
    }

    /// Compares one day: `hub` (the ids of the events as served) with what the output
    /// holds.
    async fn compare_day(
        &self,
        org: &crate::types::Org,
        day: NaiveDate,
        w: Window,
        mut hub: HashSet<EventId>,
        unreadable: u64,
        keep_missing: bool,
    ) -> Result<Day, StoreError> {
        let mut keys: Vec<ObjectKey> = Vec::new();
        let mut copies: HashMap<EventId, Vec<u32>> = HashMap::new();
        let mut stored_n = 0;
        let mut unreadable_objects = Vec::new();
        for o in self.sink.list_day(org, day).await? {
            let idx = keys.len() as u32;
            let mut here = false;
            let events = match stored::events_of(self.sink, &o.key).await {
                Ok(events) => events,
                Err(StoreError::Invalid(why)) => {
                    tracing::warn!(%org, %day, key = %o.key, "{why}");
                    unreadable_objects.push(o.key);
                    continue;
                }
                Err(e) => return Err(e),
            };
            for (id, ts) in events {
                if w.contains(ts) {
                    copies.entry(id).or_default().push(idx);
                    stored_n += 1;
                    here = true;
                }
            }
            if here {
                keys.push(o.key);
            }
        }
        let at_docker_hub = hub.len() as u64;
        let mut duplicated = 0;
        let mut unexpected = 0;
        let mut groups: BTreeMap<Vec<u32>, u64> = BTreeMap::new();
        for (id, at) in &copies {
            if !hub.remove(id) {
                unexpected += 1;
            }
            if at.len() > 1 {
                duplicated += at.len() as u64 - 1;
                *groups.entry(at.clone()).or_default() += 1;
            }
        }
        let compacted = self.check_compacted(org, day, w, &copies).await?;
        // What is left of `hub` is what the output does not hold.
        let missing = hub.len() as u64;
        let duplicates = groups
            .into_iter()
            .map(|(at, events)| Duplicate {
                events,
                keys: at.iter().map(|i| keys[*i as usize].clone()).collect(),
            })
            .collect();
        let missing_ids = keep_missing.then_some(hub);
        Ok(Day {
            report: DayReport {
                day,
                from: w.from,
                to: w.to,
                at_docker_hub,
                stored: stored_n,
                missing,
                duplicated,
                unexpected,
                past_retention: false,
                repaired: 0,
                duplicates,
                unreadable_served: unreadable,
                unreadable_objects,
                compacted,
            },
            missing_ids,
        })
    }
}

impl<A, K, S> Poller<'_, A, K, S>
where
    A: AuditLog + ?Sized,
    K: Checkpoints,
    S: Sink + ?Sized,
{
    /// When `day` is compacted, its compacted object against `raw` (each id with its raw
    /// copies), over `w`.
    async fn check_compacted(
        &self,
        org: &Org,
        day: NaiveDate,
        w: Window,
        raw: &HashMap<EventId, Vec<u32>>,
    ) -> Result<Option<CompactedCheck>, StoreError> {
        let Some(surface) = self.surface else {
            return Ok(None);
        };
        let rows = match surface.compacted_events(org, day).await {
            Ok(Some(rows)) => rows,
            Ok(None) => return Ok(None),
            Err(StoreError::Invalid(why)) => {
                return Ok(Some(CompactedCheck {
                    events: 0,
                    missing: 0,
                    extra: 0,
                    unreadable: Some(why),
                }))
            }
            Err(e) => return Err(e),
        };
        let mut left: HashMap<&EventId, usize> = raw.iter().map(|(id, at)| (id, at.len())).collect();
        let (mut events, mut extra) = (0, 0);
        for (id, ts) in &rows {
            if !w.contains(*ts) {
                continue;
            }
            events += 1;
            match left.get_mut(id) {
                Some(n) if *n > 0 => *n -= 1,
                _ => extra += 1,
            }
        }
        let missing = left.values().map(|n| *n as u64).sum();
        let check = CompactedCheck {
            events,
            missing,
            extra,
            unreadable: None,
        };
        if !check.agrees() {
            tracing::error!(%org, %day, missing, extra, "the compacted day differs from its raw objects: the compactor compacts it again");
        }
        Ok(Some(check))
    }
}

/// One day compared, as the verify goes.
pub(super) struct Day {
    pub(super) report: DayReport,
    /// Served, not stored: kept when repairing.
    pub(super) missing_ids: Option<HashSet<EventId>>,
}

/// The ids of every event Docker Hub serves for `w` (given per complete window, as the
/// poller gives them: ordinals of identical events never straddle a window, so any cut
/// gives the same ids), and how many unreadable items it served with them. Only ids are
/// kept: a day of large events costs their ids, not their bytes.
async fn hub_ids<A: AuditLog + ?Sized>(
    reader: &mut Reader<'_, A>,
    org: &crate::types::Org,
    w: Window,
) -> Result<(HashSet<EventId>, u64), HubError> {
    let mut ids = HashSet::new();
    let mut unreadable = 0;
    reader.start(w);
    let mut cursor = w.from;
    while cursor < w.to {
        let (got, page) = reader.next(cursor, w.to).await?;
        unreadable += page.unreadable.len() as u64;
        ids.extend(assign_ids(org, page.events).into_iter().map(|(id, _)| id));
        cursor = got.to;
    }
    Ok((ids, unreadable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_cover_the_range_exactly() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let d = days_of(t("2026-11-25T10:00:00Z"), t("2026-11-27T03:00:00Z"));
        assert_eq!(d.len(), 3);
        assert_eq!(
            d[0].1,
            Window::new(t("2026-11-25T10:00:00Z"), t("2026-11-26T00:00:00Z"))
        );
        assert_eq!(
            d[1].1,
            Window::new(t("2026-11-26T00:00:00Z"), t("2026-11-27T00:00:00Z"))
        );
        assert_eq!(
            d[2].1,
            Window::new(t("2026-11-27T00:00:00Z"), t("2026-11-27T03:00:00Z"))
        );
        assert!(days_of(t("2026-11-25T10:00:00Z"), t("2026-11-25T10:00:00Z")).is_empty());
        assert_eq!(day_cost(0, 100), 1);
        assert_eq!(day_cost(120, 100), 6);
    }
}
