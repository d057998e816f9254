//! One invocation: plain async code over the ports, testable without the Lambda runtime.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::metrics::{emf, RunMetrics};
use super::settings::{Input, Settings};
use crate::clock::Clock;
use crate::collect::{Poller, RunReport};
use crate::hub::{ApiStats, HubClient, HubConfig};
use crate::ports::{Checkpoints, CredentialSource, Sink};
use crate::types::Org;

/// An error worth a retry by Lambda (the run was cut short by something that may pass).
/// Everything else is answered with `"ok": false` and a `RunsFailed` metric instead, since
/// retrying a bad token or a bad input only repeats the failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RetryableError(pub String);

impl From<RetryableError> for lambda_runtime::Diagnostic {
    fn from(e: RetryableError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "DockerHubAudit.Retryable".into(),
            error_message: e.0,
        }
    }
}

/// What builds the credential source of an org (Secrets Manager in production).
pub type CredentialsFactory = Box<dyn Fn(&str) -> Arc<dyn CredentialSource> + Send + Sync>;

/// Built once per cold start; reused by every invocation of a warm Lambda.
pub struct App<K, S> {
    pub settings: Settings,
    pub checkpoints: K,
    pub sink: S,
    pub clock: Arc<dyn Clock>,
    pub hub: HubConfig,
    credentials: CredentialsFactory,
    /// One Hub client per org, so its token and the secret cache survive between runs.
    clients: Mutex<HashMap<Org, Arc<HubClient>>>,
}

impl<K: Checkpoints, S: Sink> App<K, S> {
    pub fn new(
        settings: Settings,
        checkpoints: K,
        sink: S,
        clock: Arc<dyn Clock>,
        credentials: CredentialsFactory,
    ) -> Self {
        let hub = HubConfig {
            base_url: settings.hub_url.clone(),
            ..HubConfig::default()
        };
        App {
            settings,
            checkpoints,
            sink,
            clock,
            hub,
            credentials,
            clients: Mutex::new(HashMap::new()),
        }
    }

    async fn client(&self, org: &Org) -> Result<Arc<HubClient>, String> {
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(org) {
            return Ok(c.clone());
        }
        let creds = (self.credentials)(&self.settings.secret_id(org));
        let c = Arc::new(HubClient::new(self.hub.clone(), creds, self.clock.clone())?);
        clients.insert(org.clone(), c.clone());
        Ok(c)
    }

    /// Runs the poller for the input's org until caught up or `deadline` minus the safety
    /// margin, prints one EMF line, and answers a JSON summary.
    pub async fn handle(&self, input: Value, deadline: DateTime<Utc>) -> Result<Value, RetryableError> {
        let started = self.clock.now();
        let input: Input = match serde_json::from_value(input) {
            Ok(i) => i,
            Err(e) => return Ok(self.refuse(format!("the input is not {{\"org\": \"<org>\", …}} ({e})"))),
        };
        let cfg = match input.poll_config(&self.settings) {
            Ok(c) => c,
            Err(e) => return Ok(self.refuse(e)),
        };
        let client = match self.client(&cfg.org).await {
            Ok(c) => c,
            Err(e) => return Err(RetryableError(e)),
        };
        let stats = client.stats();
        let before = (
            ApiStats::get(&stats.requests) + ApiStats::get(&stats.token_requests),
            ApiStats::get(&stats.throttled),
        );
        let poller = Poller {
            api: client.as_ref(),
            checkpoints: &self.checkpoints,
            sink: &self.sink,
            clock: self.clock.as_ref(),
        };
        // A margin longer than a third of the time left (a short timeout) would stop every
        // run before it starts.
        let margin = self.settings.safety_margin.min((deadline - started) / 3);
        let result = poller.run(&cfg, Some(deadline - margin)).await;
        let finished = self.clock.now();
        let (report, error) = match result {
            Ok(r) => (r, None),
            Err(f) => (f.report, Some(f.error)),
        };
        let metrics = RunMetrics {
            events_written: report.events_written,
            duplicates_dropped: report.duplicates_dropped,
            objects_written: report.objects_written,
            api_requests: ApiStats::get(&stats.requests) + ApiStats::get(&stats.token_requests) - before.0,
            throttled_requests: ApiStats::get(&stats.throttled) - before.1,
            watermark_age_seconds: report
                .watermark
                .map(|w| (finished - w).num_milliseconds() as f64 / 1000.0),
            run_duration_ms: (finished - started).num_milliseconds() as f64,
            runs_failed: u64::from(error.is_some()),
        };
        if report.leased || error.is_some() {
            println!("{}", emf(cfg.org.as_str(), finished, &metrics));
        }
        let mut summary = summary(&report, &metrics);
        match error {
            None => {
                tracing::info!(
                    events = report.events_written,
                    caught_up = report.caught_up,
                    "run finished"
                );
                Ok(summary)
            }
            Some(e) if e.is_transient() => {
                tracing::warn!(error = %e, "run failed; a retry may help");
                Err(RetryableError(e.to_string()))
            }
            Some(e) => {
                tracing::error!(error = %e, "run failed; a retry will not help until the cause is fixed");
                summary["ok"] = json!(false);
                summary["error"] = json!(e.to_string());
                Ok(summary)
            }
        }
    }

    fn refuse(&self, error: String) -> Value {
        tracing::error!(%error, "invalid input");
        json!({"ok": false, "error": error})
    }
}

/// The run report as the CLI's `--log-format json` prints it, with the request counts.
fn summary(r: &RunReport, m: &RunMetrics) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_else(|_| json!({}));
    v["ok"] = json!(true);
    v["api_requests"] = json!(m.api_requests);
    v["throttled_requests"] = json!(m.throttled_requests);
    v
}
