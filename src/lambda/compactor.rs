//! The compactor function's logic: settings from the environment, one compaction of the
//! org its input names, its metrics and answer. `src/bin/compactor.rs` only wires clients.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::metrics::NAMESPACE;
use super::settings::{
    parse_orgs, view_from_env, ENV_BUCKET, ENV_KMS_KEY_ID, ENV_ORGS, ENV_PREFIX, ENV_TABLE,
};
use crate::compact::{compact, CompactConfig, CompactError, CompactReport};
use crate::config::parse_duration;
use crate::ports::{Checkpoints, Clock, Sink};
use crate::surface::CompactedDays;
use crate::types::Org;

pub const ENV_LATE_HORIZON: &str = "DOCKERHUB_AUDIT_LATE_HORIZON";
pub const ENV_COMPACTION_LATE: &str = "DOCKERHUB_AUDIT_COMPACTION_LATE";

/// How often, and how long apart, a compaction waits for a lease another run holds.
const BUSY_RETRIES: u32 = 6;
const BUSY_WAIT: Duration = Duration::seconds(10);

/// Read once per cold start.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactorSettings {
    /// The orgs the stack was deployed for; an input naming another is refused.
    pub orgs: BTreeSet<Org>,
    pub table: String,
    pub bucket: String,
    pub prefix: String,
    pub kms_key_id: Option<String>,
    /// (database, view).
    pub view: (String, String),
    pub late_horizon: Duration,
    pub late_after: Duration,
}

impl CompactorSettings {
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let required =
            |k: &str, what: &str| get(k).ok_or_else(|| format!("{k} is not set: set it to {what}"));
        let duration = |k: &str, default: Duration| match get(k) {
            None => Ok(default),
            Some(v) => parse_duration(&v).map_err(|e| format!("{k}: {e}")),
        };
        let orgs = parse_orgs(&required(
            ENV_ORGS,
            "the organizations of this stack, comma-separated",
        )?)?;
        let view = view_from_env(get).ok_or_else(|| {
            format!(
                "{} is not set: set it to the Glue database of the stack's view",
                super::settings::ENV_GLUE_DATABASE
            )
        })?;
        Ok(CompactorSettings {
            orgs,
            table: required(ENV_TABLE, "the DynamoDB checkpoint table's name")?,
            bucket: required(ENV_BUCKET, "the S3 bucket of the audit events")?,
            prefix: get(ENV_PREFIX).unwrap_or_else(|| super::Settings::DEFAULT_PREFIX.into()),
            kms_key_id: get(ENV_KMS_KEY_ID),
            view,
            late_horizon: duration(ENV_LATE_HORIZON, CompactConfig::DEFAULT_LATE_HORIZON)?,
            late_after: duration(ENV_COMPACTION_LATE, CompactConfig::DEFAULT_LATE_AFTER)?,
        })
    }
}

/// The compactor: generic over the ports, so it runs in tests without the runtime.
pub struct Compactor<K, S, C> {
    pub settings: CompactorSettings,
    pub checkpoints: K,
    pub sink: S,
    pub surface: C,
    pub clock: Arc<dyn Clock>,
}

impl<K: Checkpoints, S: Sink, C: CompactedDays> Compactor<K, S, C> {
    /// One invocation: `{"org": "acme"}`. The answer says what was compacted; a failure
    /// is in the answer and the metrics (`CompactionFailed`), never retried by Lambda (the
    /// next day's run picks the day up again).
    pub async fn handle(&self, input: Value, deadline: DateTime<Utc>) -> Value {
        let started = self.clock.now();
        let org = match input.get("org").and_then(Value::as_str).map(Org::new) {
            Some(Ok(org)) if self.settings.orgs.contains(&org) => org,
            Some(Ok(org)) => {
                let deployed: Vec<String> = self.settings.orgs.iter().map(|o| o.to_string()).collect();
                return refuse(format!(
                    "{org} is not an org this stack was deployed for ({}): nothing was read or written",
                    deployed.join(", ")
                ));
            }
            Some(Err(e)) => return refuse(format!("the input's org is not valid: {e}")),
            None => return refuse("the input names no org: give {\"org\": \"<org>\"}".to_string()),
        };
        let mut cfg = CompactConfig::new(org.clone());
        cfg.late_horizon = self.settings.late_horizon;
        cfg.late_after = self.settings.late_after;
        // Leave a minute to publish what is written and answer.
        let stop = deadline - Duration::seconds(60).min((deadline - started) / 3);
        // A poll holds the lease for seconds: wait for it a few times before giving up.
        let run = || {
            compact(
                &self.sink,
                &self.surface,
                &self.checkpoints,
                self.clock.as_ref(),
                &cfg,
                Some(stop),
            )
        };
        let mut result = run().await;
        for _ in 0..BUSY_RETRIES {
            if !matches!(result, Err(CompactError::Busy(_))) || self.clock.now() + BUSY_WAIT * 2 >= stop {
                break;
            }
            tokio::time::sleep(BUSY_WAIT.to_std().unwrap_or_default()).await;
            result = run().await;
        }
        let ms = (self.clock.now() - started).num_milliseconds() as f64;
        match result {
            Ok(report) => {
                println!("{}", emf(&org, self.clock.now(), Some(&report), ms));
                if report.ok() {
                    tracing::info!(
                        compacted = report.compacted.len(),
                        late = report.late,
                        "compaction finished"
                    );
                } else {
                    tracing::error!(
                        failed = report.failed.len(),
                        "days could not be compacted; they stay on the raw side"
                    );
                }
                let mut v = serde_json::to_value(&report).unwrap_or_else(|_| json!({}));
                v["ok"] = json!(report.ok());
                v
            }
            Err(e) => {
                println!("{}", emf(&org, self.clock.now(), None, ms));
                let message = crate::types::clip(&e.to_string(), 1000);
                tracing::error!(error = %message, "compaction failed");
                json!({"ok": false, "org": org.to_string(), "error": message, "retry_helps": match e {
                    CompactError::Store(ref s) => s.is_transient(),
                    CompactError::Busy(_) => true,
                    CompactError::Nothing(_) => false,
                }})
            }
        }
    }
}

fn refuse(error: String) -> Value {
    tracing::error!(%error, "input refused");
    json!({"ok": false, "error": error})
}

/// The metrics of one compaction (EMF, no dimension: the alarm is deployment-wide; the org
/// is a field for Logs Insights). `report` is `None` when the run failed as a whole. Each
/// metric is sent only when it is not zero (CloudWatch bills a metric for every hour it is
/// sent in): a healthy compaction sends none, and every count stays a field of the line.
pub fn emf(org: &Org, at: DateTime<Utc>, report: Option<&CompactReport>, ms: f64) -> Value {
    let (compacted, failed, late, disagreeing, events) = match report {
        Some(r) => (
            r.compacted.len() as u64,
            // A compacted day found to differ from its raw objects is a failure too (it is
            // compacted again, but something changed the trail or the object).
            (r.failed.len() + r.disagreeing.len()) as u64,
            r.late,
            r.disagreeing.len() as u64,
            r.compacted.iter().map(|d| d.events).sum::<u64>(),
        ),
        None => (0, 1, 0, 0, 0),
    };
    let metrics: Vec<Value> = [
        ("CompactionFailed", failed),
        ("DaysAwaitingCompaction", late),
        ("CompactedDaysDisagreeing", disagreeing),
    ]
    .into_iter()
    .filter(|(_, v)| *v > 0)
    .map(|(name, _)| json!({"Name": name, "Unit": "Count"}))
    .collect();
    let directives: Vec<Value> = if metrics.is_empty() {
        Vec::new()
    } else {
        vec![json!({"Namespace": NAMESPACE, "Dimensions": [[]], "Metrics": metrics})]
    };
    json!({
        "_aws": {
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": directives,
        },
        "org": org.to_string(),
        "CompactionFailed": failed,
        "DaysCompacted": compacted,
        "DaysAwaitingCompaction": late,
        "CompactedDaysDisagreeing": disagreeing,
        "EventsCompacted": events,
        "CompactionDuration": ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthy_compaction_sends_no_metric_and_a_failure_or_a_late_day_does() {
        let org = Org::new("acme").unwrap();
        let report = CompactReport {
            org: "acme".into(),
            compacted: Vec::new(),
            failed: Vec::new(),
            disagreeing: Vec::new(),
            already: 3,
            open: 1,
            unverified: 0,
            late: 0,
            complete: true,
        };
        let declared = |doc: &Value| crate::lambda::metrics::declared(doc, &json!([[]]));
        let healthy = emf(&org, Utc::now(), Some(&report), 5.0);
        assert!(declared(&healthy).is_empty(), "{healthy}");
        assert_eq!(
            (
                healthy["DaysCompacted"].clone(),
                healthy["CompactionFailed"].clone()
            ),
            (json!(0), json!(0))
        );
        let late = emf(&org, Utc::now(), Some(&CompactReport { late: 2, ..report }), 5.0);
        assert_eq!(declared(&late), ["DaysAwaitingCompaction"]);
        assert_eq!(declared(&emf(&org, Utc::now(), None, 5.0)), ["CompactionFailed"]);
    }
}
