//! What a run tells a person watching it: how far the read has come, what it has written,
//! what it has asked, and any wait Docker Hub imposes. Each is one `tracing` event on
//! [`TARGET`], so the core and the adapters stay free of any display: the CLI's progress
//! line (`cli/progress.rs`) reads these events, and nothing else does (the log lines leave
//! the target out; the Lambda has no subscriber that wants them, so they cost a filter check).
//!
//! The fields are the interface: `kind` says which, and each kind carries the fields its
//! function below names.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The one target of progress events.
pub const TARGET: &str = "dockerhub_audit::progress";

/// The range a run (or a verification) is to cover: `from` and `to` in seconds since the
/// epoch.
pub fn span(from: DateTime<Utc>, to: DateTime<Utc>) {
    tracing::trace!(target: TARGET, kind = "span", from = from.timestamp(), to = to.timestamp());
}

/// The read has everything before `at` (seconds since the epoch); `requests` made so far.
pub fn reached(at: DateTime<Utc>, requests: u64) {
    tracing::trace!(target: TARGET, kind = "reached", at = at.timestamp(), requests);
}

/// `events` written so far by the run (committed).
pub fn written(events: u64) {
    tracing::trace!(target: TARGET, kind = "written", events);
}

/// Docker Hub asked to wait (or a failure is being waited out) for `wait`, because `why`.
pub fn waiting(wait: Duration, why: &str) {
    tracing::trace!(target: TARGET, kind = "waiting", wait_ms = wait.as_millis() as u64, why);
}
