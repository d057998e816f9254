//! The poller: one run for one org. It knows windows, dedupe, batching, deadlines and the
//! commit protocol, and reaches the world only through [`crate::ports`].
//!
//! - [`window`]: which range a run reads and how request spans adapt;
//! - [`fetch`]: reading a window as one consistent multiset;
//! - [`reader`]: a range as a sequence of complete windows, within the deadline;
//! - [`batch`]: dedupe and turning events into objects;
//! - [`commit`]: the commit protocol and rolling an interrupted commit forward;
//! - [`alerts`]: alerts on the events a commit stores first, delivered from an outbox;
//! - [`rebuild`]: a checkpoint rebuilt from the stored objects when it does not know them;
//! - [`verify`]: the stored events compared with Docker Hub's, day by day, and repaired.

pub mod alerts;
pub mod batch;
pub mod commit;
pub mod fetch;
pub mod quarantine;
pub mod reader;
pub mod rebuild;
pub mod stored;
pub mod verify;
pub mod window;

use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

pub use self::alerts::Alerting;
use self::batch::{Batch, Rebuilt};
use self::commit::{Committed, Durable, Recovery};
use self::fetch::ReadLimits;
use self::reader::Reader;
use crate::checkpoint::{Checkpoint, Intent, LastRun};
use crate::clock::Clock;
use crate::config::PollConfig;
use crate::event::id::assign_ids;
use crate::event::record::Provenance;
use crate::ports::{AuditLog, Checkpoints, HubError, Sink, StoreError};
use crate::types::{floor_second, RunId, Window};

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
            CollectError::Store(e) => e.is_transient(),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunReport {
    pub org: String,
    pub run_id: RunId,
    /// False when another run held the lease (this one did nothing) or took it over (this
    /// one stopped, keeping what it had committed, and the other continues).
    pub leased: bool,
    pub window: Option<Window>,
    pub events_written: u64,
    pub duplicates_dropped: u64,
    pub objects_written: u64,
    /// Objects found already written (a retried commit).
    pub objects_existing: u64,
    /// Items served that are not readable events, newly kept in the quarantine.
    pub events_quarantined: u64,
    pub pages_requested: u64,
    /// The watermark as stored when the run ended.
    pub watermark: Option<DateTime<Utc>>,
    /// True when the window was read to its end (false: deadline or error).
    pub caught_up: bool,
    pub recovered: Option<String>,
    /// Set when the checkpoint did not know what the output holds (deleted, restored from
    /// an older backup, another store's) and was rebuilt from the stored objects.
    pub rebuilt: Option<String>,
    /// Why the run stopped before its end without failing (deadline, rate limit, takeover).
    pub stopped_early: Option<String>,
    /// Alerts delivered by this run.
    pub alerts_raised: u64,
    /// Alerts this run could not deliver (kept in the checkpoint, sent by a later run).
    pub alerts_failed: u64,
    /// Whether the alert destination failed in this run (no more tries until the next).
    #[serde(skip)]
    pub alerts_down: bool,
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
    /// Alert rules and their destination; `None`: no alerts.
    pub alerts: Option<Alerting<'a>>,
}

/// When the lease was last renewed (by a save or a heartbeat), in real time: stores
/// expire leases in real time.
struct Beat {
    every: Option<std::time::Duration>,
    last: tokio::time::Instant,
}

impl Beat {
    fn new<K: Checkpoints>(store: &K) -> Self {
        Beat {
            every: store.heartbeat_every(),
            last: tokio::time::Instant::now(),
        }
    }
    fn renewed(&mut self) {
        self.last = tokio::time::Instant::now();
    }
}

/// Runs `work` while renewing the lease whenever a renewal is due, so work that waits long
/// (rate limits, retries, reading many objects) does not let the lease lapse. A lost lease
/// ends the work.
async fn renewing<K: Checkpoints, T>(
    store: &K,
    lease: &K::Lease,
    beat: &mut Beat,
    work: impl Future<Output = T>,
) -> Result<T, StoreError> {
    let Some(every) = beat.every else {
        return Ok(work.await);
    };
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return Ok(out),
            _ = tokio::time::sleep_until(beat.last + every) => {
                store.heartbeat(lease).await?;
                beat.renewed();
            }
        }
    }
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
    /// Invariant kept whatever fails, stalls or runs at the same time: the checkpoint never
    /// claims an event that is not stored, and a stored event is never stored again.
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
            events_quarantined: 0,
            pages_requested: 0,
            watermark: None,
            caught_up: false,
            recovered: None,
            rebuilt: None,
            stopped_early: None,
            alerts_raised: 0,
            alerts_failed: 0,
            alerts_down: false,
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
        let mut beat = Beat::new(self.checkpoints);
        let result = self
            .run_leased(cfg, deadline, &lease, &mut beat, &mut cp, &mut report)
            .await;
        // `cp` is always what the store holds: its watermark was saved.
        report.watermark = cp.watermark;

        if let Err(CollectError::Store(StoreError::Conflict(msg))) = &result {
            // Another run took the org over (this one was paused or slow past its lease).
            // It continues from the stored checkpoint; this one writes nothing more.
            tracing::warn!(%org, reason = %msg, "another run took over this org; stopping");
            report.leased = false;
            report.stopped_early = Some(format!("another run took over the org ({msg})"));
            return Ok(report);
        }
        let summary = LastRun {
            run_id: run_id.clone(),
            started_at: started,
            finished_at: self.clock.now(),
            events_written: report.events_written,
            caught_up: report.caught_up,
            error: result
                .as_ref()
                .err()
                .map(|e| crate::types::clip(&e.to_string(), crate::types::MAX_ERROR_CHARS)),
        };
        if let Err(e) = cp
            .save_changed(self.checkpoints, &lease, |c| c.last_run = Some(summary))
            .await
        {
            tracing::warn!(error = %e, "could not record the run summary in the checkpoint");
        }
        if let Err(e) = self.checkpoints.release(lease).await {
            tracing::warn!(error = %e, "could not release the lease; it expires by itself");
        }
        match result {
            Ok(()) => Ok(report),
            Err(error) => Err(RunFailed { report, error }),
        }
    }

    /// Runs `work` while renewing the lease whenever a renewal is due (see [`renewing`]).
    async fn keep_alive<T>(
        &self,
        lease: &K::Lease,
        beat: &mut Beat,
        work: impl Future<Output = T>,
    ) -> Result<T, StoreError> {
        renewing(self.checkpoints, lease, beat, work).await
    }

    /// Reads the next complete window from `cursor` (up to `end`), renewing the lease while
    /// it waits, and quarantines the unreadable items it served. The inner error is the
    /// Hub's (the run stops reading); the outer one the stores'.
    #[allow(clippy::too_many_arguments)]
    async fn next_window(
        &self,
        reader: &mut Reader<'_, A>,
        lease: &K::Lease,
        beat: &mut Beat,
        org: &crate::types::Org,
        cursor: DateTime<Utc>,
        end: DateTime<Utc>,
        cp: &mut Checkpoint,
        report: &mut RunReport,
    ) -> Result<Result<(Window, Vec<crate::event::HubEvent>), HubError>, StoreError> {
        let (w, page) = match self.keep_alive(lease, beat, reader.next(cursor, end)).await? {
            Ok(read) => read,
            Err(e) => return Ok(Err(e)),
        };
        if !page.unreadable.is_empty() {
            let prov = Provenance {
                ingested_at: self.clock.now(),
                window: w,
                run_id: report.run_id.clone(),
            };
            let new = quarantine::keep(self.sink, org, page.unreadable, &prov).await?;
            report.events_quarantined += new;
            // Counted in the checkpoint for `status`; stored by the next save.
            cp.quarantined += new;
        }
        Ok(Ok((w, page.events)))
    }

    async fn run_leased(
        &self,
        cfg: &PollConfig,
        deadline: Option<DateTime<Utc>>,
        lease: &K::Lease,
        beat: &mut Beat,
        cp: &mut Checkpoint,
        report: &mut RunReport,
    ) -> Result<(), CollectError> {
        let org = &cfg.org;
        let output = self.sink.identity().await?;
        match cp.output.as_deref() {
            Some(recorded) if recorded != output => {
                return Err(StoreError::Invalid(format!(
                    "the checkpoint of {org} describes the output {recorded}, but this run writes to {output}: \
                     an output and its checkpoint belong together (the checkpoint remembers what that output \
                     holds). Give the checkpoint store that goes with this output, or a new one for a new output"
                ))
                .into())
            }
            // Recorded by the next save.
            _ => cp.output = Some(output),
        }
        let durable = Durable {
            store: self.checkpoints,
            lease,
            sink: self.sink,
        };
        let mut reader = Reader::new(
            self.api,
            org,
            cfg.page_size,
            ReadLimits {
                events: cfg.read_events,
                bytes: cfg.read_bytes,
            },
            deadline,
            self.clock,
        );
        if let Some(intent) = cp.pending.clone() {
            let finished = self
                .recover(cfg, &durable, &mut reader, beat, cp, &intent, report)
                .await;
            report.pages_requested = reader.fetcher.requests;
            match finished? {
                Some(stop) => {
                    report.stopped_early = Some(stop);
                    return Ok(());
                }
                None => beat.renewed(),
            }
        }
        if let Some(done) = self
            .keep_alive(lease, beat, self.reconcile(cfg, lease, cp))
            .await??
        {
            report.rebuilt = Some(done);
        }
        // Its saves renewed the lease.
        beat.renewed();
        let window = window::plan(cp, cfg, self.clock.now());
        report.window = Some(window);
        if window.is_empty() {
            report.caught_up = true;
            return Ok(());
        }
        tracing::info!(%org, %window, "reading");

        reader.start(window);
        let mut cursor = window.from;
        let mut batch = Batch::new(cursor);
        let mut failure: Option<HubError> = None;
        while cursor < window.to {
            let (w, events) = match self
                .next_window(&mut reader, lease, beat, org, cursor, window.to, cp, report)
                .await?
            {
                Ok(read) => read,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            batch.add_window(org, w, events, cp);
            cursor = w.to;
            if batch.len() >= cfg.batch_events || batch.bytes() >= cfg.batch_bytes {
                let full = std::mem::replace(&mut batch, Batch::new(cursor));
                self.commit(cp, lease, cfg, full, report, deadline).await?;
                beat.renewed();
            }
        }
        report.pages_requested = reader.fetcher.requests;
        // What was read completely is committed even when the run stops on an error; the
        // alerts waiting (an earlier run's too) are sent, until the deadline.
        self.commit(cp, lease, cfg, batch, report, deadline).await?;
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

    /// Makes sure `cp` knows what the output holds of its org (see [`rebuild`]): a
    /// checkpoint older than the output is rebuilt from the stored objects and saved. Says
    /// what it rebuilt, if it did.
    async fn reconcile(
        &self,
        cfg: &PollConfig,
        lease: &K::Lease,
        cp: &mut Checkpoint,
    ) -> Result<Option<String>, StoreError> {
        let org = &cfg.org;
        let Some(why) = rebuild::check(self.sink, cp).await? else {
            return Ok(None);
        };
        tracing::warn!(%org, %why, "the checkpoint does not know what the output holds; rebuilding it from the stored objects");
        let mut next = cp.clone();
        let Some(done) = rebuild::rebuild(self.sink, &mut next, cfg.overlap).await? else {
            // Nothing stored after all (the objects went meanwhile): nothing to remember.
            next.recent.get_or_insert_with(Default::default);
            cp.save_changed(self.checkpoints, lease, |c| *c = next).await?;
            return Ok(None);
        };
        cp.save_changed(self.checkpoints, lease, |c| *c = next).await?;
        tracing::warn!(%org, "{done}");
        Ok(Some(format!("{why}; {done}")))
    }

    /// Rolls an earlier run's interrupted commit forward: objects missing from the sink are
    /// made again, under their recorded keys, from a fresh read of their time range. Returns
    /// why it stopped before finishing (the run's time was up), or `None` when done.
    #[allow(clippy::too_many_arguments)]
    async fn recover(
        &self,
        cfg: &PollConfig,
        durable: &Durable<'_, K, S>,
        reader: &mut Reader<'_, A>,
        beat: &mut Beat,
        cp: &mut Checkpoint,
        intent: &Intent,
        report: &mut RunReport,
    ) -> Result<Option<String>, CollectError> {
        let org = &cfg.org;
        let (present, missing) = commit::check(durable, intent).await?;
        let rebuilt = if missing.is_empty() {
            Rebuilt {
                objects: Vec::new(),
                lost: 0,
            }
        } else {
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
                ))
                .into());
            };
            // Whole seconds, as every window: the ordinals of identical events come out the same.
            let range = Window::new(floor_second(first), floor_second(last) + Duration::seconds(1));
            tracing::info!(%org, run = %intent.run_id, objects = missing.len(), %range,
                "an earlier run's commit is missing objects; reading their events again");
            let mut read = Vec::new();
            reader.start(range);
            let mut cursor = range.from;
            while cursor < range.to {
                match self
                    .next_window(reader, durable.lease, beat, org, cursor, range.to, cp, report)
                    .await?
                {
                    Ok((w, events)) => {
                        read.extend(assign_ids(org, events));
                        cursor = w.to;
                    }
                    Err(HubError::OutOfTime(msg)) => return Ok(Some(msg)),
                    Err(e) => return Err(e.into()),
                }
            }
            let prov = Provenance {
                ingested_at: self.clock.now(),
                window: range,
                run_id: report.run_id.clone(),
            };
            batch::rebuild(org, &missing, read, &prov, self.alerts.map(|a| a.rules))
        };
        let (outcome, done) =
            commit::roll_forward(durable, cp, intent, present, rebuilt, cfg.overlap).await?;
        report.events_written += done.events;
        report.objects_written += done.objects_created;
        report.objects_existing += done.objects_existing;
        report.recovered = Some(match outcome {
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
        });
        Ok(None)
    }

    async fn commit(
        &self,
        cp: &mut Checkpoint,
        lease: &K::Lease,
        cfg: &PollConfig,
        batch: Batch,
        report: &mut RunReport,
        deadline: Option<DateTime<Utc>>,
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
        report.objects_written += objects_created;
        report.objects_existing += objects_existing;
        if events > 0 {
            let watermark = cp.watermark.map(crate::types::rfc3339).unwrap_or_default();
            tracing::info!(org = %cfg.org, events, %watermark, "committed");
        }
        self.deliver_alerts(cp, lease, cfg, report, deadline).await
    }

    /// Sends the outbox's alerts until `deadline`, unless the destination already failed in
    /// this run (then the count of those waiting is brought up to date: a later run sends
    /// them).
    async fn deliver_alerts(
        &self,
        cp: &mut Checkpoint,
        lease: &K::Lease,
        cfg: &PollConfig,
        report: &mut RunReport,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<(), CollectError> {
        let Some(alerting) = self.alerts else {
            return Ok(());
        };
        if report.alerts_down {
            let waiting: u64 = cp.alerts_pending.iter().map(|p| u64::from(p.alerts)).sum();
            report.alerts_failed = report.alerts_failed.max(waiting);
            return Ok(());
        }
        if cp.alerts_pending.is_empty() {
            return Ok(());
        }
        let durable = Durable {
            store: self.checkpoints,
            lease,
            sink: self.sink,
        };
        let done = alerts::deliver(&durable, cp, &cfg.org, alerting, deadline, self.clock).await?;
        report.alerts_raised += done.sent;
        report.alerts_failed += done.failed;
        report.alerts_down |= done.destination_failed;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
