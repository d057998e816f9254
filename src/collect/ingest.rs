//! The run's range read window by window (each complete, from one consistent read),
//! deduplicated against the checkpoint into batches, and each batch committed as it fills.
//! Progress is durable after each commit, so a run stopped by its deadline, a rate limit or
//! a failure keeps what it read completely.

use chrono::{DateTime, Utc};

use super::batch::Batch;
use super::commit::{self, Committed};
use super::reader::Reader;
use super::{quarantine, CollectError, LeasedRun, Poller, RunReport};
use crate::checkpoint_model::Checkpoint;
use crate::event::record::Provenance;
use crate::event::HubEvent;
use crate::ports::{AuditLog, Checkpoints, HubError, Sink, StoreError};
use crate::types::Window;

/// The next window of a range, as the run reads it.
pub(super) enum NextWindow {
    /// Every readable event of `window`, from one consistent read (the unreadable items
    /// served with them are quarantined already).
    Read { window: Window, events: Vec<HubEvent> },
    /// Docker Hub failed, or the run's time was up: the run stops reading.
    HubFailed(HubError),
}

impl<A, K, S> Poller<'_, A, K, S>
where
    A: AuditLog + ?Sized,
    K: Checkpoints,
    S: Sink + ?Sized,
{
    /// Reads `window` to its end (or until Docker Hub fails or the time is up), committing
    /// each batch as it fills and what was read at the end, then delivers the alerts
    /// waiting.
    pub(super) async fn read_and_commit(
        &self,
        run: &mut LeasedRun<'_, K>,
        reader: &mut Reader<'_, A>,
        window: Window,
        cp: &mut Checkpoint,
        report: &mut RunReport,
    ) -> Result<(), CollectError> {
        let cfg = run.cfg;
        let org = &cfg.org;
        reader.start(window);
        let mut cursor = window.from;
        let mut batch = Batch::new(cursor);
        let mut failure: Option<HubError> = None;
        while cursor < window.to {
            let (w, events) = match self
                .next_window(run, reader, cursor, window.to, cp, report)
                .await?
            {
                NextWindow::Read { window, events } => (window, events),
                NextWindow::HubFailed(e) => {
                    failure = Some(e);
                    break;
                }
            };
            batch.add_window(org, w, events, cp);
            cursor = w.to;
            if batch.len() >= cfg.batch_events || batch.bytes() >= cfg.batch_bytes {
                let full = std::mem::replace(&mut batch, Batch::new(cursor));
                self.commit_batch(run, cp, full, report).await?;
                run.keeper.renewed();
            }
        }
        report.pages_requested = reader.fetcher.requests;
        // What was read completely is committed even when the run stops on an error; the
        // alerts waiting (an earlier run's too) are sent, until the deadline.
        self.commit_batch(run, cp, batch, report).await?;
        match failure {
            None => {
                report.caught_up = cursor >= window.to;
                Ok(())
            }
            Some(HubError::OutOfTime(msg)) => {
                report.stopped_early = Some(msg);
                Ok(())
            }
            Some(e) => Err(e.into()),
        }
    }

    /// Reads the next complete window from `cursor` (up to `end`), keeping the lease while
    /// it waits, and quarantines the unreadable items it served. A Hub failure is an answer
    /// (the run stops reading); a store's is an error.
    pub(super) async fn next_window(
        &self,
        run: &mut LeasedRun<'_, K>,
        reader: &mut Reader<'_, A>,
        cursor: DateTime<Utc>,
        end: DateTime<Utc>,
        cp: &mut Checkpoint,
        report: &mut RunReport,
    ) -> Result<NextWindow, StoreError> {
        let (w, page) = match run.keeper.during(reader.next(cursor, end)).await? {
            Ok(read) => read,
            Err(e) => return Ok(NextWindow::HubFailed(e)),
        };
        if !page.unreadable.is_empty() {
            let prov = Provenance {
                ingested_at: self.clock.now(),
                window: w,
                run_id: report.run_id.clone(),
            };
            let new = quarantine::keep(self.sink, &run.cfg.org, page.unreadable, &prov).await?;
            report.events_quarantined += new;
            // Counted in the checkpoint for `status`; stored by the next save.
            cp.quarantined += new;
        }
        Ok(NextWindow::Read {
            window: w,
            events: page.events,
        })
    }

    /// Commits `batch` (see [`commit::commit`]), counts it in the report, then delivers the
    /// alerts waiting.
    async fn commit_batch(
        &self,
        run: &LeasedRun<'_, K>,
        cp: &mut Checkpoint,
        batch: Batch,
        report: &mut RunReport,
    ) -> Result<(), CollectError> {
        let cfg = run.cfg;
        let prov = Provenance {
            ingested_at: self.clock.now(),
            window: Window::new(batch.from, batch.covered_to),
            run_id: report.run_id.clone(),
        };
        report.duplicates_dropped += batch.duplicates;
        let durable = self.durable(run.keeper.lease());
        let Committed {
            events,
            objects_created,
            objects_existing,
        } = commit::commit(
            &durable,
            cp,
            &cfg.org,
            batch,
            cfg.overlap,
            &prov,
            self.alerts.map(|a| a.rules),
        )
        .await?;
        report.events_written += events;
        crate::progress::written(report.events_written);
        report.objects_written += objects_created;
        report.objects_existing += objects_existing;
        if events > 0 {
            let watermark = cp.watermark.map(crate::types::rfc3339).unwrap_or_default();
            tracing::info!(org = %cfg.org, events, %watermark, "committed");
        }
        self.deliver_alerts(run, cp, report).await
    }
}
