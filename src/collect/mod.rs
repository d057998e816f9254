//! The poller: one run for one org. It knows windows, dedupe, batching, deadlines and the
//! commit protocol, and reaches the world only through [`crate::ports`].
//!
//! - [`window`]: which range a run reads and how request spans adapt;
//! - [`fetch`]: reading a window as one consistent multiset;
//! - [`batch`]: dedupe and turning events into objects;
//! - [`commit`]: the commit protocol and crash recovery.

pub mod batch;
pub mod commit;
pub mod fetch;
pub mod window;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use self::batch::Batch;
use self::commit::{Committed, Durable, Recovery};
use self::fetch::{Fetcher, Read};
use crate::checkpoint::{Checkpoint, LastRun};
use crate::clock::Clock;
use crate::config::PollConfig;
use crate::event::record::Provenance;
use crate::ports::{AuditLog, Checkpoints, HubError, Sink, StoreError};
use crate::types::{RunId, Window};

/// How often a long run renews its lease between saves (leases last a minute).
const HEARTBEAT_EVERY: Duration = Duration::seconds(20);

/// Why a run failed. Whatever it committed before stays committed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CollectError {
    /// Whether running again later, unchanged, could succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            CollectError::Hub(e) => e.is_transient(),
            CollectError::Store(StoreError::Conflict(_)) => false,
            CollectError::Store(StoreError::Io(_)) => true,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunReport {
    pub org: String,
    pub run_id: RunId,
    /// False when another run held the lease and this one did nothing.
    pub leased: bool,
    pub window: Option<Window>,
    pub events_written: u64,
    pub duplicates_dropped: u64,
    pub objects_written: u64,
    /// Objects found already written (a retried commit).
    pub objects_existing: u64,
    pub pages_requested: u64,
    pub watermark: Option<DateTime<Utc>>,
    /// True when the window was read to its end (false: deadline or error).
    pub caught_up: bool,
    pub recovered: Option<String>,
    /// Why the run stopped before its end without failing (deadline, rate limit).
    pub stopped_early: Option<String>,
}

/// A failed run: the error, and what it did before failing (committed and kept).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct RunFailed {
    pub report: RunReport,
    pub error: CollectError,
}

/// The poller, generic over the ports.
pub struct Poller<'a, A: ?Sized, K, S: ?Sized> {
    pub api: &'a A,
    pub checkpoints: &'a K,
    pub sink: &'a S,
    pub clock: &'a dyn Clock,
}

impl<'a, A, K, S> Poller<'a, A, K, S>
where
    A: AuditLog + ?Sized,
    K: Checkpoints,
    S: Sink + ?Sized,
{
    /// One run for `cfg.org`. `deadline` (on the injected clock) bounds when new requests
    /// may start; commits in progress finish.
    ///
    /// Invariant kept whatever fails: the checkpoint never claims an event that is not
    /// stored, and a stored event is never stored again.
    pub async fn run(
        &self,
        cfg: &PollConfig,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<RunReport, RunFailed> {
        let started = self.clock.now();
        let run_id = RunId::generate(started);
        let org = &cfg.org;
        let mut report = RunReport {
            org: org.to_string(),
            run_id: run_id.clone(),
            leased: false,
            window: None,
            events_written: 0,
            duplicates_dropped: 0,
            objects_written: 0,
            objects_existing: 0,
            pages_requested: 0,
            watermark: None,
            caught_up: false,
            recovered: None,
            stopped_early: None,
        };
        let (lease, mut cp) = match self.checkpoints.acquire(org, &run_id).await {
            Ok(Some(held)) => held,
            Ok(None) => {
                tracing::info!(%org, "another run holds this org's lease; nothing to do");
                return Ok(report);
            }
            Err(e) => {
                return Err(RunFailed {
                    report,
                    error: e.into(),
                })
            }
        };
        report.leased = true;
        let result = self.run_leased(cfg, deadline, &lease, &mut cp, &mut report).await;
        report.watermark = cp.watermark;

        // Record how the run went, unless the checkpoint is no longer ours to write.
        let conflict = matches!(result, Err(CollectError::Store(StoreError::Conflict(_))));
        if !conflict {
            cp.last_run = Some(LastRun {
                run_id: run_id.clone(),
                started_at: started,
                finished_at: self.clock.now(),
                events_written: report.events_written,
                caught_up: report.caught_up,
                error: result.as_ref().err().map(|e| e.to_string()),
            });
            if let Err(e) = self.checkpoints.save(&lease, &mut cp).await {
                tracing::warn!(error = %e, "could not record the run summary in the checkpoint");
            }
        }
        if let Err(e) = self.checkpoints.release(lease).await {
            tracing::warn!(error = %e, "could not release the lease; it expires by itself");
        }
        match result {
            Ok(()) => Ok(report),
            Err(error) => Err(RunFailed { report, error }),
        }
    }

    async fn run_leased(
        &self,
        cfg: &PollConfig,
        deadline: Option<DateTime<Utc>>,
        lease: &K::Lease,
        cp: &mut Checkpoint,
        report: &mut RunReport,
    ) -> Result<(), CollectError> {
        let org = &cfg.org;
        let durable = Durable {
            store: self.checkpoints,
            lease,
            sink: self.sink,
        };
        if let Some(r) = commit::recover(&durable, cp, cfg.overlap).await? {
            report.recovered = Some(match r {
                Recovery::Completed { objects } => format!("completed an interrupted commit of {objects} object(s)"),
                Recovery::Discarded { present, missing } => format!(
                    "found an interrupted commit with {missing} object(s) missing ({present} present); their events are read again"
                ),
            });
        }
        let window = window::plan(cp, cfg, self.clock.now());
        report.window = Some(window);
        if window.is_empty() {
            report.caught_up = true;
            return Ok(());
        }
        tracing::info!(%org, %window, "reading");

        let mut fetcher = Fetcher::new(self.api, org, cfg.page_size);
        let mut span = window::initial_span(window);
        let mut cursor = window.from;
        let mut batch = Batch::new(cursor);
        let mut failure: Option<HubError> = None;
        let mut last_heartbeat = self.clock.now();
        while cursor < window.to {
            if self.clock.now() - last_heartbeat >= HEARTBEAT_EVERY {
                self.checkpoints.heartbeat(lease).await?;
                last_heartbeat = self.clock.now();
            }
            // Absolute for every request of this window, so retries and pages share it.
            let request_deadline = match deadline {
                None => None,
                Some(d) => match (d - self.clock.now()).to_std() {
                    Ok(b) if !b.is_zero() => Some(std::time::Instant::now() + b),
                    _ => {
                        report.stopped_early = Some("the run's time was up".into());
                        break;
                    }
                },
            };
            let w = Window::new(cursor, (cursor + span).min(window.to));
            let read = match fetcher.read(w, request_deadline).await {
                Ok(Read::TooMany) if w.len() > Duration::seconds(1) => {
                    span = window::shrink(w.len());
                    continue;
                }
                Ok(Read::TooMany) => fetcher.read_dense(w, request_deadline).await,
                Ok(Read::Complete(events)) => Ok(events),
                Err(e) => Err(e),
            };
            let events = match read {
                Ok(events) => events,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let page = fetcher.known_page_size().unwrap_or(cfg.page_size);
            span = window::grow(span, events.len(), page);
            batch.add_window(org, w, events, cp);
            cursor = w.to;
            if batch.len() >= cfg.batch_events {
                let full = std::mem::replace(&mut batch, Batch::new(cursor));
                self.commit(cp, lease, cfg, full, report).await?;
            }
        }
        report.pages_requested = fetcher.requests;
        // What was read completely is committed even when the run stops on an error.
        self.commit(cp, lease, cfg, batch, report).await?;
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

    async fn commit(
        &self,
        cp: &mut Checkpoint,
        lease: &K::Lease,
        cfg: &PollConfig,
        batch: Batch,
        report: &mut RunReport,
    ) -> Result<(), CollectError> {
        let prov = Provenance {
            ingested_at: self.clock.now(),
            window: Window::new(batch.from, batch.covered_to),
            run_id: report.run_id.clone(),
        };
        report.duplicates_dropped += batch.duplicates;
        let durable = Durable {
            store: self.checkpoints,
            lease,
            sink: self.sink,
        };
        let Committed {
            events,
            objects_created,
            objects_existing,
        } = commit::commit(&durable, cp, &cfg.org, batch, cfg.overlap, &prov).await?;
        report.events_written += events;
        report.objects_written += objects_created;
        report.objects_existing += objects_existing;
        if events > 0 {
            let watermark = cp.watermark.map(crate::types::rfc3339).unwrap_or_default();
            tracing::info!(org = %cfg.org, events, %watermark, "committed");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
