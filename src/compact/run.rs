//! One compaction of one org: which days are closed, and each closed day written again as
//! one Parquet object, checked against its raw objects, then published.
//!
//! Invariants: the raw trail is only read; a day is published only when its compacted object
//! holds exactly its raw events (every column of every row read back); a day that cannot be
//! compacted stays on the raw side, named in the report, and the others go on.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use serde::Serialize;

use super::parquet;
use super::row::Row;
use crate::checkpoint_model::Checkpoint;
use crate::collect::lease::LeaseKeeper;
use crate::event::encode;
use crate::ports::{Checkpoints, Clock, Sink, StoreError};
use crate::surface::CompactedDays;
use crate::types::{Org, RunId};

/// How compaction decides and bounds its work; defaults declared once, here.
#[derive(Debug, Clone)]
pub struct CompactConfig {
    pub org: Org,
    /// How long after a day ends it may still change: a day is closed only after this.
    pub late_horizon: Duration,
    /// A closed day not compacted this long after it closed is late (the alarm's count).
    pub late_after: Duration,
    /// The most raw bytes (uncompressed) one day may hold to be compacted in one object.
    pub max_day_bytes: u64,
    /// Compacted days this recent are compared with their raw objects again on every run.
    pub recheck: Duration,
}

impl CompactConfig {
    pub const DEFAULT_LATE_HORIZON: Duration = Duration::days(1);
    pub const DEFAULT_LATE_AFTER: Duration = Duration::days(3);
    // Its rows take about twice its bytes in memory: within the compactor function's 512 MB.
    pub const DEFAULT_MAX_DAY_BYTES: u64 = 128 * 1024 * 1024;
    /// Each compacted day is compared again on the runs of its first days (it is compacted
    /// about two days after it ends), where a repair or a stray write would show; every day,
    /// with `compact --recheck 400d` or `verify`. Each day of it costs ~300 S3 GETs a run.
    pub const DEFAULT_RECHECK: Duration = Duration::days(3);

    pub fn new(org: Org) -> Self {
        CompactConfig {
            org,
            late_horizon: Self::DEFAULT_LATE_HORIZON,
            late_after: Self::DEFAULT_LATE_AFTER,
            max_day_bytes: Self::DEFAULT_MAX_DAY_BYTES,
            recheck: Self::DEFAULT_RECHECK,
        }
    }
}

/// A day written as one compacted object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayCompacted {
    pub day: NaiveDate,
    pub events: u64,
    pub raw_objects: u64,
    pub raw_bytes: u64,
    pub bytes: u64,
    pub object: String,
}

/// A day that could not be compacted, and why (it stays on the raw side).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayFailed {
    pub day: NaiveDate,
    pub error: String,
}

/// What one compaction of an org did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompactReport {
    pub org: String,
    pub compacted: Vec<DayCompacted>,
    pub failed: Vec<DayFailed>,
    /// Compacted days that no longer held exactly their raw events: reopened and compacted again.
    pub disagreeing: Vec<NaiveDate>,
    /// Days already compacted (before this run).
    pub already: u64,
    /// Days not closed yet (young, or past the collection's settled point).
    pub open: u64,
    /// Days closed by time but outside what a verify found complete: they wait for one.
    pub unverified: u64,
    /// Closed days still raw longer than `late_after` after they closed (what the alarm counts).
    pub late: u64,
    /// False when the deadline stopped the run before the last day.
    pub complete: bool,
}

impl CompactReport {
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Why a compaction could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error("{0}")]
    Nothing(String),
    /// Another run holds the org's lease: try again later.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn start_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

/// Whether `day`, if still raw at `now`, has waited past `late_after` since it closed.
fn late(cfg: &CompactConfig, day: NaiveDate, now: DateTime<Utc>) -> bool {
    start_of(day) + Duration::days(1) + cfg.late_horizon + cfg.late_after <= now
}

/// Why `day` is not closed yet, if it is not: `Err(true)` when only a verify is missing.
fn closed(cp: &Checkpoint, day: NaiveDate, now: DateTime<Utc>, horizon: Duration) -> Result<(), bool> {
    let to = start_of(day) + Duration::days(1);
    let settled = match (cp.watermark, cp.seen_from) {
        (Some(w), Some(f)) => w.min(f),
        (Some(w), None) => w,
        _ => return Err(false),
    };
    if to + horizon > now || to > settled {
        return Err(false);
    }
    // A commit in flight may still add to the day.
    let prefix = format!("org={}/dt={}/", cp.org, day.format("%Y-%m-%d"));
    if cp
        .pending
        .as_ref()
        .is_some_and(|p| p.objects.iter().any(|o| o.key.0.starts_with(&prefix)))
    {
        return Err(false);
    }
    match cp.verified {
        Some(v) if v.covers_day(day) => Ok(()),
        _ => Err(true),
    }
}

/// Compacts `cfg.org`'s closed days that are not compacted yet, and compares the recent
/// compacted days with their raw objects again. Stops starting days after `deadline`.
pub async fn compact<S, C, K>(
    sink: &S,
    surface: &C,
    checkpoints: &K,
    clock: &dyn Clock,
    cfg: &CompactConfig,
    deadline: Option<DateTime<Utc>>,
) -> Result<CompactReport, CompactError>
where
    S: Sink + ?Sized,
    C: CompactedDays + ?Sized,
    K: Checkpoints,
{
    let org = &cfg.org;
    if checkpoints.peek(org).await?.is_none() {
        return Err(CompactError::Nothing(format!(
            "there is no checkpoint of {org}: nothing was collected yet (or give the checkpoint store that goes with this output)"
        )));
    }
    // Under the org's lease, as a repair writes: a repair cannot add to a day between its
    // reading and its publication, and two compactions of one org cannot interleave.
    let run_id = RunId::generate(clock.now());
    let Some((lease, cp)) = checkpoints.acquire(org, &run_id).await? else {
        return Err(CompactError::Busy(format!(
            "another run holds the lease of {org} (a poll, a repair or a compaction): run compact again when it has finished"
        )));
    };
    let mut keeper = LeaseKeeper::new(checkpoints, &lease);
    let fence = Fence {
        checkpoints,
        lease: &lease,
    };
    let result = keeper
        .during(compact_leased(sink, surface, &fence, &cp, clock, cfg, deadline))
        .await
        .and_then(|r| r);
    if let Err(e) = checkpoints.release(lease).await {
        tracing::warn!(error = %e, "could not release the lease; it expires by itself");
    }
    Ok(result?)
}

/// Proof, renewed just before each write, that the lease is still ours: a compaction that
/// paused past its lease stops before it writes or publishes.
struct Fence<'a, K: Checkpoints> {
    checkpoints: &'a K,
    lease: &'a K::Lease,
}

impl<K: Checkpoints> Fence<'_, K> {
    async fn check(&self) -> Result<(), StoreError> {
        self.checkpoints.heartbeat(self.lease).await
    }
}

async fn compact_leased<S, C, K>(
    sink: &S,
    surface: &C,
    fence: &Fence<'_, K>,
    cp: &Checkpoint,
    clock: &dyn Clock,
    cfg: &CompactConfig,
    deadline: Option<DateTime<Utc>>,
) -> Result<CompactReport, StoreError>
where
    S: Sink + ?Sized,
    C: CompactedDays + ?Sized,
    K: Checkpoints,
{
    let org = &cfg.org;
    let now = clock.now();
    let raw_days = sink.days(org).await?;
    let mut compacted: BTreeSet<NaiveDate> = surface.days(org).await?;
    let mut report = CompactReport {
        org: org.to_string(),
        compacted: Vec::new(),
        failed: Vec::new(),
        disagreeing: Vec::new(),
        already: compacted.len() as u64,
        open: 0,
        unverified: 0,
        late: 0,
        complete: true,
    };
    // Recent compacted days against their raw objects: a repair that could not take its day
    // off the surface first (or anything else) shows here, and the day is compacted again.
    let recheck_from = (now - cfg.recheck).date_naive();
    for &day in compacted.clone().iter().filter(|d| **d >= recheck_from) {
        if deadline.is_some_and(|d| clock.now() >= d) {
            report.complete = false;
            return Ok(report);
        }
        if !agrees(sink, surface, org, day).await? {
            tracing::error!(%org, %day, "a compacted day differs from its raw objects (or its object is gone): reopened, compacted again");
            fence.check().await?;
            surface.reopen(org, day).await?;
            compacted.remove(&day);
            report.already -= 1;
            report.disagreeing.push(day);
        }
    }
    for day in raw_days {
        if compacted.contains(&day) {
            continue;
        }
        match closed(cp, day, now, cfg.late_horizon) {
            Ok(()) => {}
            Err(only_verify) => {
                if only_verify {
                    report.unverified += 1;
                    if cp.verified.is_some_and(|v| start_of(day) >= v.from) && late(cfg, day, now) {
                        report.late += 1;
                    }
                } else {
                    report.open += 1;
                }
                continue;
            }
        }
        if deadline.is_some_and(|d| clock.now() >= d) {
            report.complete = false;
            continue;
        }
        match compact_day(sink, surface, fence, cfg, day).await {
            Ok(done) => {
                tracing::info!(%org, %day, events = done.events, raw_objects = done.raw_objects, bytes = done.bytes, "compacted a day");
                report.compacted.push(done);
            }
            Err(DayError::Store(e)) if e.is_transient() || matches!(e, StoreError::Conflict(_)) => {
                return Err(e)
            }
            Err(e) => {
                let error = e.to_string();
                tracing::error!(%org, %day, %error, "a day could not be compacted; it stays on the raw side");
                if late(cfg, day, now) {
                    report.late += 1;
                }
                report.failed.push(DayFailed { day, error });
            }
        }
    }
    Ok(report)
}

#[derive(Debug, thiserror::Error)]
enum DayError {
    #[error("{0}")]
    Bad(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The raw events of `day` as (id, time) with how many copies of each.
type Multiset = HashMap<(String, i64), u64>;

/// Reads every raw object of `day` into rows; an object that cannot be read stops the day.
async fn raw_rows<S: Sink + ?Sized>(
    sink: &S,
    org: &Org,
    day: NaiveDate,
    max_bytes: u64,
) -> Result<(Vec<Row>, u64, u64), DayError> {
    let mut rows = Vec::new();
    let (mut objects, mut stored, mut read) = (0, 0u64, 0u64);
    for o in sink.list_day(org, day).await? {
        let bytes = sink.get(&o.key).await?;
        objects += 1;
        stored += bytes.len() as u64;
        for (i, line) in encode::lines(&bytes).enumerate() {
            let line = line.map_err(|e| {
                DayError::Bad(format!(
                    "the raw object {} cannot be read ({e}): the day is not compacted; run verify, which names \
                     damaged objects and repairs their events once they are moved out",
                    o.key
                ))
            })?;
            read += line.len() as u64;
            if read > max_bytes {
                return Err(DayError::Bad(format!(
                    "the day holds more than {max_bytes} bytes of events: too large to compact into one object \
                     here; it stays on the raw side (give the compactor more memory and a larger limit)"
                )));
            }
            let row = Row::from_record(&line).map_err(|why| {
                DayError::Bad(format!(
                    "record {} of the raw object {} is not a record this tool wrote ({why}): the day is not compacted; \
                     move the object out of the output and run verify --repair",
                    i + 1,
                    o.key
                ))
            })?;
            rows.push(row);
        }
    }
    Ok((rows, objects, stored))
}

fn multiset<'a>(it: impl Iterator<Item = (&'a str, i64)>) -> Multiset {
    let mut m = Multiset::new();
    for (id, ts) in it {
        *m.entry((id.to_string(), ts)).or_default() += 1;
    }
    m
}

/// Writes `day` as one compacted object, checks it, and publishes it.
async fn compact_day<S, C, K>(
    sink: &S,
    surface: &C,
    fence: &Fence<'_, K>,
    cfg: &CompactConfig,
    day: NaiveDate,
) -> Result<DayCompacted, DayError>
where
    S: Sink + ?Sized,
    C: CompactedDays + ?Sized,
    K: Checkpoints,
{
    let org = &cfg.org;
    let (mut rows, raw_objects, raw_bytes) = raw_rows(sink, org, day, cfg.max_day_bytes).await?;
    if let Some(r) = rows
        .iter()
        .find(|r| DateTime::from_timestamp_micros(r.timestamp).map(|t| t.date_naive()) != Some(day))
    {
        return Err(DayError::Bad(format!(
            "the event {} in the partition of {day} is of another day: the partition was written by hand; \
             the day is not compacted",
            r.event_id
        )));
    }
    let events = rows.len() as u64;
    let body = parquet::encode(&mut rows).map_err(DayError::Bad)?;
    // The object as it will be read, every column of every row, against the raw rows in
    // the order it was written (hashes, so a large day is not held twice).
    let want: Vec<u64> = rows.iter().map(parquet::hash).collect();
    drop(rows);
    let back = parquet::row_hashes(body.clone()).map_err(DayError::Bad)?;
    if back.len() as u64 != events || back != want {
        return Err(DayError::Bad(format!(
            "the compacted object of {day} did not read back as its raw events (a bug): the day is not compacted"
        )));
    }
    let bytes = body.len() as u64;
    fence.check().await?;
    let object = surface.put(org, day, body).await?;
    fence.check().await?;
    surface.publish(org, day).await?;
    Ok(DayCompacted {
        day,
        events,
        raw_objects,
        raw_bytes,
        bytes,
        object,
    })
}

/// Whether `day`'s compacted object holds exactly its raw events.
async fn agrees<S, C>(sink: &S, surface: &C, org: &Org, day: NaiveDate) -> Result<bool, StoreError>
where
    S: Sink + ?Sized,
    C: CompactedDays + ?Sized,
{
    let compacted = match surface.get(org, day).await {
        Ok(bytes) => match parquet::ids(bytes) {
            Ok(ids) => ids,
            Err(_) => return Ok(false),
        },
        // Gone (deleted, expired): the day must be read from its raw objects again.
        Err(StoreError::Invalid(_)) => return Ok(false),
        Err(e) => return Err(e),
    };
    let (rows, _, _) = match raw_rows(sink, org, day, u64::MAX).await {
        Ok(r) => r,
        Err(DayError::Store(e)) => return Err(e),
        // A damaged raw object: compaction stops on it and says so.
        Err(DayError::Bad(_)) => return Ok(false),
    };
    Ok(multiset(rows.iter().map(|r| (r.event_id.as_str(), r.timestamp)))
        == multiset(compacted.iter().map(|(i, t)| (i.as_str(), *t))))
}

/// A surface that also reads compacted objects for a verify (what the collector function
/// does without: it carries no Parquet reader).
pub struct Checked<'a, C: ?Sized>(pub &'a C);

#[async_trait::async_trait]
impl<C: CompactedDays + ?Sized> crate::surface::QuerySurface for Checked<'_, C> {
    async fn reopen(&self, org: &Org, day: NaiveDate) -> Result<bool, StoreError> {
        self.0.reopen(org, day).await
    }

    async fn compacted_events(
        &self,
        org: &Org,
        day: NaiveDate,
    ) -> Result<Option<Vec<(crate::types::EventId, DateTime<Utc>)>>, StoreError> {
        if !self.0.days(org).await?.contains(&day) {
            return Ok(None);
        }
        let rows = parquet::ids(self.0.get(org, day).await?).map_err(StoreError::Invalid)?;
        Ok(Some(
            rows.into_iter()
                .filter_map(|(id, t)| Some((crate::types::EventId(id), DateTime::from_timestamp_micros(t)?)))
                .collect(),
        ))
    }
}
