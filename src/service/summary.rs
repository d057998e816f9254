//! The summary of a poll: one type, serialized the same by the CLI (`--log-format json`)
//! and the Lambda (its answer), so the two cannot drift apart.

use serde::Serialize;

use super::Outcome;
use crate::collect::RunReport;

/// A poll as both shells report it: the run's report, its Docker Hub requests, and whether
/// it failed (`ok` is false for every failure; `retry_helps` says which kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    pub ok: bool,
    #[serde(flatten)]
    pub report: RunReport,
    /// Docker Hub requests of this run, token exchanges included.
    pub api_requests: u64,
    /// Of those, answered 429.
    pub throttled_requests: u64,
    /// Of those, sent again after a failure.
    pub retries: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// With `error`: whether the next run may succeed without anyone changing anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_helps: Option<bool>,
}

impl From<Outcome<RunReport>> for RunSummary {
    fn from(o: Outcome<RunReport>) -> Self {
        RunSummary {
            ok: o.failure.is_none(),
            report: o.report,
            api_requests: o.requests.requests,
            throttled_requests: o.requests.throttled,
            retries: o.requests.retries,
            retry_helps: o.failure.as_ref().map(|f| f.retry_helps),
            error: o.failure.map(|f| f.message),
        }
    }
}
