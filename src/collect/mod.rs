//! The poller: one run for one org. It knows windows, dedupe, batching, deadlines and the
//! commit protocol, and reaches the world only through [`crate::ports`].
//!
//! One concern per file, in the order a run meets them:
//!
//! - here: [`Poller`] and [`Poller::run`], one run from taking the lease to releasing it;
//! - [`lease`]: keeping the lease alive while work waits ([`lease::LeaseKeeper`]);
//! - [`recover`]: rolling forward a commit an earlier run left pending;
//! - [`reconcile`]: the checkpoint checked against the output it describes, and rebuilt
//!   when it is behind;
//! - [`rebuild`]: a checkpoint rebuilt from the stored objects (also `checkpoint rebuild`);
//! - [`window`]: which range a run reads and how request spans adapt;
//! - [`ingest`]: the run's range read window by window, deduplicated into batches, each
//!   committed;
//! - [`reader`]: a range as a sequence of complete windows, within the deadline;
//! - [`fetch`]: reading one window as one consistent multiset;
//! - [`page_size`]: what a run believes of the server's page size;
//! - [`batch`]: dedupe and turning events into objects;
//! - [`commit`]: the commit protocol and rolling an interrupted commit forward;
//! - [`alerts`]: alerts on the events a commit stores first, delivered from an outbox;
//! - [`quarantine`]: items served that are not readable events;
//! - [`stored`]: reading back what the output holds;
//! - [`verify`]: the stored events compared with Docker Hub's, day by day;
//! - [`repair`]: what verify found missing, written under the lease (`verify --repair`).

pub mod alerts;
pub mod batch;
pub mod commit;
pub mod fetch;
pub mod ingest;
pub mod lease;
pub mod page_size;
pub mod quarantine;
pub mod reader;
pub mod rebuild;
pub mod reconcile;
pub mod recover;
pub mod repair;
pub mod server_memory;
pub mod stored;
pub mod verify;
pub mod window;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use self::alerts::Alerting;
use self::commit::Durable;
use self::lease::LeaseKeeper;
use self::reader::Reader;
use self::server_memory::ServerMemory;
use crate::checkpoint_model::{Checkpoint, LastRun};
use crate::clock::Clock;
use crate::config::PollConfig;
use crate::ports::{AuditLog, Checkpoints, HubError, Sink, StoreError};
use crate::types::{RunId, Window};

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
    /// What the process remembers of the server's page size across runs (a warm Lambda
    /// keeps one per org); `None`: this run learns it alone.
    pub page_sizes: Option<&'a ServerMemory>,
    /// The query surface a repair takes a compacted day off before writing into it (and
    /// verify reads compacted days from); `None`: nothing is compacted.
    pub surface: Option<&'a dyn crate::surface::QuerySurface>,
}

impl RunReport {
    /// The report of a run that has done nothing yet.
    fn new(org: &crate::types::Org, run_id: RunId) -> Self {
        RunReport {
            org: org.to_string(),
            run_id,
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
        }
    }
}

/// What the steps of one leased run share: its settings, its deadline, and the lease it
/// keeps.
struct LeasedRun<'r, K: Checkpoints> {
    cfg: &'r PollConfig,
    /// On the injected clock: when new requests may no longer start.
    deadline: Option<DateTime<Utc>>,
    keeper: LeaseKeeper<'r, K>,
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
        let mut report = RunReport::new(org, run_id.clone());
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
        let mut run = LeasedRun {
            cfg,
            deadline,
            keeper: LeaseKeeper::new(self.checkpoints, &lease),
        };
        let result = self.run_leased(&mut run, &mut cp, &mut report).await;
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
        self.finish(lease, &mut cp, started, &report, &result).await;
        match result {
            Ok(()) => Ok(report),
            Err(error) => Err(RunFailed { report, error }),
        }
    }

    /// Records the run's summary in the checkpoint (for `status` and the watchdog) and gives
    /// the lease up, in one write where the store can; a failure to is only logged: what the
    /// run committed stands, and a lease not given up expires by itself.
    async fn finish(
        &self,
        lease: K::Lease,
        cp: &mut Checkpoint,
        started: DateTime<Utc>,
        report: &RunReport,
        result: &Result<(), CollectError>,
    ) {
        let summary = LastRun {
            run_id: report.run_id.clone(),
            started_at: started,
            finished_at: self.clock.now(),
            events_written: report.events_written,
            caught_up: report.caught_up,
            error: result
                .as_ref()
                .err()
                .map(|e| crate::types::clip(&e.to_string(), crate::types::MAX_ERROR_CHARS)),
            failures: match result {
                Ok(()) => 0,
                Err(_) => cp.last_run.as_ref().map_or(0, |r| r.failures).saturating_add(1),
            },
        };
        let mut next = cp.clone();
        next.last_run = Some(summary);
        match self.checkpoints.save_and_release(lease, &mut next).await {
            Ok(()) => *cp = next,
            Err(e) => tracing::warn!(error = %e,
                "could not record the run summary in the checkpoint or release the lease; it expires by itself"),
        }
    }

    /// The run under the lease: the output claimed, an earlier run's pending commit
    /// finished, the checkpoint reconciled with the output, then the run's range read and
    /// committed.
    async fn run_leased(
        &self,
        run: &mut LeasedRun<'_, K>,
        cp: &mut Checkpoint,
        report: &mut RunReport,
    ) -> Result<(), CollectError> {
        let output = self.sink.identity().await?;
        reconcile::claim_output(&run.cfg.org, cp, output)?;
        let fresh = ServerMemory::default();
        let memory = self.page_sizes.unwrap_or(&fresh);
        let mut reader = Reader::for_run(self.api, run.cfg, memory, run.deadline, self.clock);
        if let Some(intent) = cp.pending.clone() {
            let finished = self.recover(run, &mut reader, cp, &intent, report).await;
            report.pages_requested = reader.fetcher.requests;
            match finished? {
                Some(stop) => {
                    report.stopped_early = Some(stop);
                    return Ok(());
                }
                None => run.keeper.renewed(),
            }
        }
        if let Some(done) = run
            .keeper
            .during(self.reconcile(run.cfg, run.keeper.lease(), cp))
            .await??
        {
            report.rebuilt = Some(done);
        }
        // Its saves renewed the lease.
        run.keeper.renewed();
        let window = window::plan(cp, run.cfg, self.clock.now());
        report.window = Some(window);
        if window.is_empty() {
            report.caught_up = true;
            return Ok(());
        }
        tracing::info!(org = %run.cfg.org, %window, "reading");
        crate::progress::span(window.from, window.to);
        self.read_and_commit(run, &mut reader, window, cp, report).await
    }

    /// Where a commit under `lease` goes.
    fn durable<'d>(&'d self, lease: &'d K::Lease) -> Durable<'d, K, S> {
        Durable {
            store: self.checkpoints,
            lease,
            sink: self.sink,
        }
    }
}

#[cfg(test)]
mod tests;
