//! `verify --repair`: the events a verify found missing from a day, read again from Docker
//! Hub and written under the org's lease through the commit protocol, keeping only those
//! the output still does not hold once the lease is taken. A day whose stored objects
//! cannot all be read, or that holds events Docker Hub no longer serves as stored, is not
//! repaired (writing then could store events twice).

use std::collections::HashSet;

use chrono::NaiveDate;

use super::batch::Batch;
use super::commit;
use super::lease::LeaseKeeper;
use super::reader::Reader;
use super::verify::{Day, DayReport, VerifyError, VerifyReport};
use super::{stored, Poller};
use crate::checkpoint_model::Checkpoint;
use crate::config::PollConfig;
use crate::event::id::assign_ids;
use crate::event::record::Provenance;
use crate::event::HubEvent;
use crate::ports::{AuditLog, Checkpoints, HubError, Sink, StoreError};
use crate::types::{EventId, Org, RunId, Window};

/// What became of a day's missing events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// Written: how many, and how many a poll stored meanwhile (not missing after all).
    Written { events: u64, stored_meanwhile: u64 },
    /// Not written, and why (the lease is held, a commit is pending, the day holds
    /// unreadable objects or events Docker Hub no longer serves as stored).
    Skipped(String),
}

impl<A, K, S> Poller<'_, A, K, S>
where
    A: AuditLog + ?Sized,
    K: Checkpoints,
    S: Sink + ?Sized,
{
    /// For a day `d` with missing events: why they cannot be repaired, or (with `--repair`)
    /// the day read again for them and repaired; `d` and `report` say what became of them.
    /// Returns why the verify stops (its time was up while reading), if it does.
    pub(super) async fn repair_missing(
        &self,
        cfg: &PollConfig,
        reader: &mut Reader<'_, A>,
        d: &mut Day,
        w: Window,
        run_id: &RunId,
        report: &mut VerifyReport,
    ) -> Result<Option<String>, VerifyError> {
        let (org, day) = (&cfg.org, d.report.day);
        let outcome = match (repair_blocked(&d.report), d.missing_ids.take()) {
            (Some(why), _) => Repair::Skipped(why),
            (None, Some(ids)) => {
                // The day again, keeping only the missing events: what verify holds stays
                // ids, however large the day's events are.
                let read = hub_events(reader, org, w, &ids).await;
                // Counted whether or not the read finished.
                report.requests = reader.fetcher.requests;
                let missing = match read {
                    Ok(missing) => missing,
                    Err(HubError::OutOfTime(msg)) => return Ok(Some(msg)),
                    Err(e) => return Err(e.into()),
                };
                self.repair_day(cfg, day, w, missing, run_id).await?
            }
            (None, None) => return Ok(None),
        };
        match outcome {
            Repair::Written {
                events,
                stored_meanwhile,
            } => {
                d.report.repaired = events;
                // Stored by a poll between the comparison and the lease: not missing.
                d.report.missing -= stored_meanwhile;
                d.report.stored += stored_meanwhile;
            }
            Repair::Skipped(why) => {
                tracing::warn!(%org, %day, reason = %why, "missing events not repaired");
                report.repair_skipped.get_or_insert(why);
            }
        }
        Ok(None)
    }

    /// Writes the `missing` events of `day` under the org's lease: those the output still
    /// does not hold, through the commit protocol. `Skipped(why)` when the repair must wait
    /// (the lease is held, a commit is pending, the lease was taken over meanwhile).
    pub(super) async fn repair_day(
        &self,
        cfg: &PollConfig,
        day: NaiveDate,
        w: Window,
        missing: Vec<(EventId, HubEvent)>,
        run_id: &RunId,
    ) -> Result<Repair, StoreError> {
        let org = &cfg.org;
        let Some((lease, mut cp)) = self.checkpoints.acquire(org, run_id).await? else {
            return Ok(Repair::Skipped(
                "a poll held the org's lease: run verify --repair again when it has finished".into(),
            ));
        };
        let mut keeper = LeaseKeeper::new(self.checkpoints, &lease);
        let work = async {
            if let Some(why) = must_wait(&cp) {
                return Ok(Repair::Skipped(why.into()));
            }
            let (still, stored_meanwhile) = self.still_missing(org, day, missing).await?;
            // Off the compacted side first: from here on queries read the day's raw
            // objects, which then gain the missing events.
            if let (false, Some(surface)) = (still.is_empty(), self.surface) {
                if surface.reopen(org, day).await? {
                    tracing::info!(%org, %day, "a compacted day was reopened for a repair; the compactor compacts it again");
                }
            }
            let events = self
                .commit_missing(cfg, &lease, &mut cp, w, still, run_id)
                .await?;
            tracing::info!(%org, %day, events, "repaired: missing events written");
            Ok(Repair::Written {
                events,
                stored_meanwhile,
            })
        };
        // Reading a busy day's objects again can take a while: the lease is kept meanwhile.
        let result = match keeper.during(work).await.and_then(|r| r) {
            // Taken over (it paused past its lease): what it committed stands; the rest waits.
            Err(StoreError::Conflict(why)) => Ok(Repair::Skipped(format!(
                "another run took the org's lease during the repair ({why}): run verify --repair again"
            ))),
            r => r,
        };
        if let Err(e) = self.checkpoints.release(lease).await {
            tracing::warn!(error = %e, "could not release the lease; it expires by itself");
        }
        result
    }

    /// Of `missing`, those the output still does not hold (read again under the lease), and
    /// how many it holds now.
    async fn still_missing(
        &self,
        org: &Org,
        day: NaiveDate,
        missing: Vec<(EventId, HubEvent)>,
    ) -> Result<(Vec<(EventId, HubEvent)>, u64), StoreError> {
        let mut stored = HashSet::new();
        for (_, events) in stored::of_day(self.sink, org, day).await? {
            stored.extend(events.into_iter().map(|(id, _)| id));
        }
        let found = missing.len();
        let still: Vec<_> = missing
            .into_iter()
            .filter(|(id, _)| !stored.contains(id))
            .collect();
        let stored_meanwhile = (found - still.len()) as u64;
        Ok((still, stored_meanwhile))
    }

    /// Commits `events` of `w`, in two parts split at `seen_from`, keeping the checkpoint's
    /// overlap as it is. Returns how many were written.
    async fn commit_missing(
        &self,
        cfg: &PollConfig,
        lease: &K::Lease,
        cp: &mut Checkpoint,
        w: Window,
        events: Vec<(EventId, HubEvent)>,
        run_id: &RunId,
    ) -> Result<u64, StoreError> {
        // The overlap that keeps `seen_from` where the poller put it (a repair must not
        // change which range the next poll reads again).
        let keep = match (cp.watermark, cp.seen_from) {
            (Some(wm), Some(f)) if f <= wm => wm - f,
            _ => cfg.overlap,
        };
        // Apart at `seen_from`, so an object holding remembered ids starts inside the
        // range the checkpoint names its objects from (`recent`).
        let split = cp.seen_from.unwrap_or(w.to).clamp(w.from, w.to);
        let (before, after): (Vec<_>, Vec<_>) = events.into_iter().partition(|(_, e)| e.timestamp() < split);
        let durable = self.durable(lease);
        let mut written = 0;
        for (part, events) in [
            (Window::new(w.from, split), before),
            (Window::new(split, w.to), after),
        ] {
            if events.is_empty() {
                continue;
            }
            let prov = Provenance {
                ingested_at: self.clock.now(),
                window: part,
                run_id: run_id.clone(),
            };
            let batch = Batch::of(part.from, part.to, events);
            written += commit::commit(&durable, cp, &cfg.org, batch, keep, &prov, None)
                .await?
                .events;
        }
        Ok(written)
    }
}

/// Why the checkpoint, just taken with the lease, lets no repair be written now.
fn must_wait(cp: &Checkpoint) -> Option<&'static str> {
    if cp.watermark.is_none() {
        return Some("the checkpoint went away meanwhile: the next poll rebuilds it; verify again after it");
    }
    if cp.pending.is_some() {
        return Some("an interrupted commit is pending: the next poll finishes it; verify again after it");
    }
    None
}

/// Why a day's missing events must not be written, whatever `--repair` says.
fn repair_blocked(d: &DayReport) -> Option<String> {
    if let Some(bad) = d.unreadable_objects.first() {
        // Its events may be the missing ones: written again, they would be stored twice
        // once the object is mended.
        Some(format!(
            "{bad} cannot be read: move it out of the output (or restore it from a version), then repair"
        ))
    } else if d.unexpected > 0 {
        // Served events that are not stored, beside stored ones no longer served: Docker
        // Hub may have changed the events' fields (and so their ids). Writing them would
        // store the same events twice.
        Some(format!(
            "{} also holds {} stored event(s) Docker Hub no longer serves as stored (changed fields?); compare \
             them before repairing that day",
            d.day, d.unexpected
        ))
    } else {
        None
    }
}

/// The events of `w` whose ids are in `wanted`, read again, sorted by id.
async fn hub_events<A: AuditLog + ?Sized>(
    reader: &mut Reader<'_, A>,
    org: &Org,
    w: Window,
    wanted: &HashSet<EventId>,
) -> Result<Vec<(EventId, HubEvent)>, HubError> {
    let mut events = Vec::new();
    reader.start(w);
    let mut cursor = w.from;
    while cursor < w.to {
        let (got, page) = reader.next(cursor, w.to).await?;
        events.extend(
            assign_ids(org, page.events)
                .into_iter()
                .filter(|(id, _)| wanted.contains(id)),
        );
        cursor = got.to;
    }
    events.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(events)
}
