//! One core for both shells. The CLI and the Lambda turn their input into a
//! [`PollConfig`], call a [`Service`], and render its typed [`Outcome`]: the report, the
//! Docker Hub requests the run made, and, when it failed, why and whether running again
//! later can help. Neither shell assembles a run, counts requests or classifies errors of
//! its own.
//!
//! - [`summary`]: the one summary of a poll that both shells print or answer.
//!
//! `poll` and `verify` read Docker Hub; `rebuild` reads only the output (over
//! [`NoDockerHub`]).

pub mod summary;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::collect::rebuild::{rebuild_under_lease, LeasedRebuild};
use crate::collect::server_memory::ServerMemory;
use crate::collect::verify::{Progress, VerifyError, VerifyRange, VerifyReport};
use crate::collect::{Alerting, Poller, RunReport};
use crate::config::PollConfig;
use crate::ports::{AuditLog, Checkpoints, RequestStats, Sink};
use crate::types::{clip, MAX_ERROR_CHARS};

pub use summary::RunSummary;

/// What a run answers, whatever it was.
#[derive(Debug)]
pub struct Outcome<R> {
    /// What it did (for a poll, also when it failed: what it committed stays committed).
    pub report: R,
    /// The Docker Hub requests of this run alone.
    pub requests: RequestStats,
    /// Why it failed; `None` when it did not.
    pub failure: Option<Failure>,
}

/// A failed run, in words, and whether the same run later, unchanged, could succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What happened and what to do, bounded to [`MAX_ERROR_CHARS`].
    pub message: String,
    /// A passing cause (Docker Hub or AWS down, out of time): the next run may succeed.
    pub retry_helps: bool,
}

impl Failure {
    fn new(message: impl std::fmt::Display, retry_helps: bool) -> Self {
        Failure {
            message: clip(&message.to_string(), MAX_ERROR_CHARS),
            retry_helps,
        }
    }
}

/// The Hub port of a service whose commands read only the output (`checkpoint rebuild`):
/// asked for a page, it refuses, saying so.
pub struct NoDockerHub;

#[async_trait::async_trait]
impl AuditLog for NoDockerHub {
    async fn page(
        &self,
        _org: &crate::types::Org,
        _query: crate::ports::PageQuery,
        _budget: Option<std::time::Duration>,
    ) -> Result<crate::ports::Page, crate::ports::HubError> {
        Err(crate::ports::HubError::Rejected(
            "this command reads only the output, not Docker Hub".into(),
        ))
    }
}

/// A run assembled from its parts: the ports and the clock, with alerts or without.
pub struct Service<'a, A: ?Sized, K, S: ?Sized> {
    poller: Poller<'a, A, K, S>,
}

impl<'a, A, K, S> Service<'a, A, K, S>
where
    A: AuditLog + ?Sized,
    K: Checkpoints,
    S: Sink + ?Sized,
{
    pub fn new(api: &'a A, checkpoints: &'a K, sink: &'a S, clock: &'a dyn Clock) -> Self {
        Service {
            poller: Poller {
                api,
                checkpoints,
                sink,
                clock,
                alerts: None,
                page_sizes: None,
                surface: None,
            },
        }
    }

    /// Starts each run from what `memory` holds of the server's page size, and keeps what it
    /// learns there (a warm Lambda keeps one per org).
    pub fn with_page_memory(mut self, memory: &'a ServerMemory) -> Self {
        self.poller.page_sizes = Some(memory);
        self
    }

    /// Takes compacted days off `surface` before a repair writes into them, and checks them
    /// in a verify.
    pub fn with_surface(mut self, surface: &'a dyn crate::surface::QuerySurface) -> Self {
        self.poller.surface = Some(surface);
        self
    }

    /// Raises alerts under `alerting`'s rules, delivered to its destination.
    pub fn with_alerts(mut self, alerting: Option<Alerting<'a>>) -> Self {
        self.poller.alerts = alerting;
        self
    }

    /// One poll of `cfg.org`; `deadline` bounds when new requests may start.
    pub async fn poll(&self, cfg: &PollConfig, deadline: Option<DateTime<Utc>>) -> Outcome<RunReport> {
        let before = self.poller.api.request_stats();
        let result = self.poller.run(cfg, deadline).await;
        let requests = self.poller.api.request_stats().since(before);
        match result {
            Ok(report) => Outcome {
                report,
                requests,
                failure: None,
            },
            Err(f) => Outcome {
                failure: Some(Failure::new(&f.error, f.error.is_transient())),
                report: f.report,
                requests,
            },
        }
    }

    /// `org`'s checkpoint rebuilt from what the output holds (under its lease, whether or
    /// not it looks stale), remembering `overlap` of ids. No Docker Hub request.
    pub async fn rebuild(
        &self,
        org: &crate::types::Org,
        overlap: chrono::Duration,
    ) -> Result<LeasedRebuild, Failure> {
        let p = &self.poller;
        rebuild_under_lease(p.checkpoints, p.sink, p.clock, org, overlap)
            .await
            .map_err(|e| Failure::new(&e, e.is_transient()))
    }

    /// A verification of `range` against Docker Hub (and a repair, if it asks for one).
    pub async fn verify(
        &self,
        cfg: &PollConfig,
        range: &VerifyRange,
        deadline: Option<DateTime<Utc>>,
        progress: &mut (dyn FnMut(Progress<'_>) + Send),
    ) -> Outcome<Option<VerifyReport>> {
        let before = self.poller.api.request_stats();
        let result = self.poller.verify(cfg, range, deadline, progress).await;
        let requests = self.poller.api.request_stats().since(before);
        match result {
            Ok(report) => Outcome {
                report: Some(report),
                requests,
                failure: None,
            },
            Err(e) => {
                let transient = match &e {
                    VerifyError::Store(s) => s.is_transient(),
                    VerifyError::Hub(h) => h.is_transient(),
                    VerifyError::Nothing(_) => false,
                };
                Outcome {
                    report: None,
                    requests,
                    failure: Some(Failure::new(&e, transient)),
                }
            }
        }
    }
}
