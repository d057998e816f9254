//! Recovery of a pending commit: a run that finds an earlier run's intent in the checkpoint
//! finishes it before reading anything new. Objects the sink holds are kept; missing ones
//! are made again, under their recorded keys, from a fresh read of their time range, and
//! the intent is completed (see [`super::commit`] for why never under other keys).

use chrono::{DateTime, Duration, Utc};

use super::batch::{remake_objects, RemadeObjects};
use super::commit::{self, IntentObjects, Recovery};
use super::ingest::NextWindow;
use super::reader::Reader;
use super::{CollectError, LeasedRun, Poller, RunReport};
use crate::checkpoint_model::{Checkpoint, Intent, PendingObject};
use crate::event::id::assign_ids;
use crate::event::record::Provenance;
use crate::ports::{AuditLog, Checkpoints, HubError, Sink, StoreError};
use crate::types::{floor_second, Org, Window};

/// What reading a pending commit's missing objects again gave.
enum Reread {
    /// The objects made again from the fresh read.
    Remade(RemadeObjects),
    /// The run's time was up before the read was done (why): the intent stays pending.
    OutOfTime(String),
}

impl<A, K, S> Poller<'_, A, K, S>
where
    A: AuditLog + ?Sized,
    K: Checkpoints,
    S: Sink + ?Sized,
{
    /// Rolls an earlier run's interrupted commit forward: objects missing from the sink are
    /// made again, under their recorded keys, from a fresh read of their time range. Returns
    /// why it stopped before finishing (the run's time was up), or `None` when done.
    pub(super) async fn recover(
        &self,
        run: &mut LeasedRun<'_, K>,
        reader: &mut Reader<'_, A>,
        cp: &mut Checkpoint,
        intent: &Intent,
        report: &mut RunReport,
    ) -> Result<Option<String>, CollectError> {
        let durable = self.durable(run.keeper.lease());
        let IntentObjects { present, missing } = commit::stored_vs_intent(&durable, intent).await?;
        let remade = if missing.is_empty() {
            RemadeObjects::none()
        } else {
            match self
                .reread_missing(run, reader, cp, intent, &missing, report)
                .await?
            {
                Reread::Remade(remade) => remade,
                Reread::OutOfTime(msg) => return Ok(Some(msg)),
            }
        };
        let (outcome, done) =
            commit::roll_forward(&durable, cp, intent, present, remade, run.cfg.overlap).await?;
        report.events_written += done.events;
        report.objects_written += done.objects_created;
        report.objects_existing += done.objects_existing;
        report.recovered = Some(describe(outcome));
        Ok(None)
    }

    /// Reads the time range of the `missing` objects again and makes them again, each under
    /// its recorded key with the recorded events the read still holds.
    async fn reread_missing(
        &self,
        run: &mut LeasedRun<'_, K>,
        reader: &mut Reader<'_, A>,
        cp: &mut Checkpoint,
        intent: &Intent,
        missing: &[PendingObject],
        report: &mut RunReport,
    ) -> Result<Reread, CollectError> {
        let cfg = run.cfg;
        let org = &cfg.org;
        let range = reread_range(org, missing)?;
        tracing::info!(%org, run = %intent.run_id, objects = missing.len(), %range,
            "an earlier run's commit is missing objects; reading their events again");
        let mut read = Vec::new();
        reader.start(range);
        let mut cursor = range.from;
        while cursor < range.to {
            match self
                .next_window(run, reader, cursor, range.to, cp, report)
                .await?
            {
                NextWindow::Read { window, events } => {
                    read.extend(assign_ids(org, events));
                    cursor = window.to;
                }
                NextWindow::HubFailed(HubError::OutOfTime(msg)) => return Ok(Reread::OutOfTime(msg)),
                NextWindow::HubFailed(e) => return Err(e.into()),
            }
        }
        let prov = Provenance {
            ingested_at: self.clock.now(),
            window: range,
            run_id: report.run_id.clone(),
        };
        let rules = self.alerts.map(|a| a.rules);
        Ok(Reread::Remade(remake_objects(org, missing, read, &prov, rules)))
    }
}

/// The whole seconds the events of `missing` span (as every window: the ordinals of
/// identical events then come out the same).
fn reread_range(org: &Org, missing: &[PendingObject]) -> Result<Window, StoreError> {
    let (first, last) = missing
        .iter()
        .flat_map(|o| o.events.iter().map(|(_, t)| *t))
        .fold(
            (None, None),
            |(lo, hi): (Option<DateTime<Utc>>, Option<DateTime<Utc>>), t| {
                (Some(lo.map_or(t, |l| l.min(t))), Some(hi.map_or(t, |h| h.max(t))))
            },
        );
    let (Some(first), Some(last)) = (first, last) else {
        return Err(StoreError::Invalid(format!(
            "the pending commit of {org} names objects without events; the checkpoint is corrupted: delete it, \
             and the next run rebuilds it from the stored objects (storing nothing twice)"
        )));
    };
    Ok(Window::new(
        floor_second(first),
        floor_second(last) + Duration::seconds(1),
    ))
}

/// What the run report says of a recovery.
fn describe(outcome: Recovery) -> String {
    match outcome {
        Recovery::Completed { objects } => {
            format!("completed an interrupted commit of {objects} object(s)")
        }
        Recovery::RolledForward {
            present,
            rewritten,
            lost,
        } => {
            let lost = if lost > 0 {
                format!(", {lost} event(s) no longer served by Docker Hub could not be written")
            } else {
                String::new()
            };
            format!(
                "rolled an interrupted commit forward: {present} object(s) found, {rewritten} written again from a fresh read{lost}"
            )
        }
    }
}
