//! One invocation: plain async code over the ports, testable without the Lambda runtime.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::metrics::{emf, RunMetrics};
use super::settings::{Input, Settings};
use crate::alert::Rules;
use crate::clock::Clock;
use crate::collect::verify::{Progress, VerifyError, VerifyRange, VerifyReport};
use crate::collect::{Alerting, Poller, RunReport};
use crate::hub::{ApiStats, HubClient, HubConfig};
use crate::ports::{AlertSink, Checkpoints, CredentialSource, Sink};
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
    /// Alert rules and where their alerts go; `None`: no alerts.
    alerts: Option<(Rules, Box<dyn AlertSink>)>,
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
            alerts: None,
        }
    }

    /// Raises alerts under `rules`, delivered to `out`.
    pub fn with_alerts(mut self, rules: Rules, out: Box<dyn AlertSink>) -> Self {
        self.alerts = Some((rules, out));
        self
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

    /// A Docker Hub client for a verification (daily: its token is not worth keeping).
    fn verify_client(&self, org: &Org) -> Result<Arc<HubClient>, String> {
        let creds = (self.credentials)(&self.settings.secret_id(org));
        let hub = HubConfig {
            leave_for_others: 0.5,
            ..self.hub.clone()
        };
        Ok(Arc::new(HubClient::new(hub, creds, self.clock.clone())?))
    }

    /// Runs the poller for the input's org until caught up or `deadline` minus the safety
    /// margin, prints its EMF line, and answers a JSON summary.
    pub async fn handle(&self, input: Value, deadline: DateTime<Utc>) -> Result<Value, RetryableError> {
        let (answer, metrics) = self.handle_measured(input, deadline).await;
        println!("{metrics}");
        answer
    }

    /// [`Self::handle`] without the printing: the answer, and the invocation's EMF document.
    /// Whatever happens (a refused input, a lease held by another run, a failure) there is
    /// exactly one document, so an org whose runs stop reporting is one whose runs stopped.
    pub async fn handle_measured(
        &self,
        input: Value,
        deadline: DateTime<Utc>,
    ) -> (Result<Value, RetryableError>, Value) {
        let started = self.clock.now();
        // Only an org the stack was deployed for gets a metric of its own or a look at its
        // checkpoint: an input naming another touches nothing.
        let named = input
            .get("org")
            .and_then(Value::as_str)
            .and_then(|o| Org::new(o).ok())
            .filter(|o| self.settings.orgs.contains(o));
        let mut metrics = RunMetrics::default();
        let answer = self.invoke(input, deadline, &mut metrics).await;
        // Here, not in `invoke`: refused inputs and held leases publish metrics too.
        metrics.alerts_on = self.alerts.is_some();
        let finished = self.clock.now();
        metrics.run_duration_ms = (finished - started).num_milliseconds() as f64;
        // Only failures a retry does not fix: a passing Docker Hub or AWS hiccup returns a
        // retryable error, which Lambda retries and FunctionErrorsAlarm watches.
        let failed = matches!(&answer, Ok(v) if v["ok"] == json!(false));
        metrics.runs_failed = u64::from(failed);
        if metrics.watermark_age_seconds.is_none() {
            // A refused input or a held lease: the age of what is stored is still known.
            if let Some(org) = &named {
                if let Ok(Some(cp)) = self.checkpoints.peek(org).await {
                    metrics.watermark_age_seconds = cp.watermark.map(|w| age_seconds(finished, w));
                }
            }
        }
        let doc = emf(named.as_ref().map(Org::as_str), finished, &metrics);
        (answer, doc)
    }

    async fn invoke(
        &self,
        input: Value,
        deadline: DateTime<Utc>,
        metrics: &mut RunMetrics,
    ) -> Result<Value, RetryableError> {
        let started = self.clock.now();
        let input: Input = match serde_json::from_value(input) {
            Ok(i) => i,
            Err(e) => {
                return Ok(refuse(format!(
                    "the input is not {{\"org\": \"<org>\", …}} ({e})"
                )))
            }
        };
        let cfg = match input.poll_config(&self.settings) {
            Ok(c) => c,
            Err(e) => return Ok(refuse(e)),
        };
        let verify = match input.verify_range() {
            Ok(v) => v,
            Err(e) => return Ok(refuse(e)),
        };
        let client = match verify {
            // Its own client, leaving half of Docker Hub's rate limit to the org's poller.
            Some(_) => self.verify_client(&cfg.org),
            None => self.client(&cfg.org).await,
        };
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "could not build the Docker Hub client");
                return Err(RetryableError(e));
            }
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
            alerts: self.alerts.as_ref().map(|(rules, out)| Alerting {
                rules,
                out: out.as_ref(),
            }),
        };
        // A margin longer than a third of the time left (a short timeout) would stop every
        // run before it starts.
        let margin = self.settings.safety_margin.min((deadline - started) / 3);
        if let Some(back) = verify {
            let range = VerifyRange {
                from: started.checked_sub_signed(back).unwrap_or(started),
                until: None,
                repair: input.repair,
            };
            let result = poller
                .verify(&cfg, &range, Some(deadline - margin), &mut log_day)
                .await;
            metrics.api_requests =
                ApiStats::get(&stats.requests) + ApiStats::get(&stats.token_requests) - before.0;
            metrics.throttled_requests = ApiStats::get(&stats.throttled) - before.1;
            return verified(result, metrics);
        }
        let result = poller.run(&cfg, Some(deadline - margin)).await;
        let finished = self.clock.now();
        let (report, error) = match result {
            Ok(r) => (r, None),
            Err(f) => (f.report, Some(f.error)),
        };
        *metrics = RunMetrics {
            events_written: report.events_written,
            duplicates_dropped: report.duplicates_dropped,
            objects_written: report.objects_written,
            api_requests: ApiStats::get(&stats.requests) + ApiStats::get(&stats.token_requests) - before.0,
            throttled_requests: ApiStats::get(&stats.throttled) - before.1,
            events_quarantined: report.events_quarantined,
            watermark_age_seconds: report.watermark.map(|w| age_seconds(finished, w)),
            alerts_raised: report.alerts_raised,
            alerts_failed: report.alerts_failed,
            ..RunMetrics::default()
        };
        let mut summary = summary(&report, metrics);
        match error {
            None => {
                tracing::info!(
                    events = report.events_written,
                    caught_up = report.caught_up,
                    leased = report.leased,
                    "run finished"
                );
                Ok(summary)
            }
            Some(e) if e.is_transient() => {
                tracing::warn!(error = %e, "run failed; a retry may help");
                Err(RetryableError(crate::types::clip(
                    &e.to_string(),
                    crate::types::MAX_ERROR_CHARS,
                )))
            }
            Some(e) => {
                tracing::error!(error = %e, "run failed; a retry will not help until the cause is fixed");
                summary["ok"] = json!(false);
                summary["error"] = json!(crate::types::clip(&e.to_string(), crate::types::MAX_ERROR_CHARS));
                Ok(summary)
            }
        }
    }
}

/// One log line per verified day, and one per group of duplicated events with their keys.
fn log_day(p: Progress<'_>) {
    match p {
        Progress::Plan {
            from,
            to,
            days,
            estimated_requests,
        } => tracing::info!(from = %from, to = %to, days, estimated_requests, "verifying"),
        Progress::Day(d) => {
            tracing::info!(
                day = %d.day,
                at_docker_hub = d.at_docker_hub,
                stored = d.stored,
                missing = d.missing,
                duplicated = d.duplicated,
                unexpected = d.unexpected,
                past_retention = d.past_retention,
                repaired = d.repaired,
                "verified a day"
            );
            for dup in &d.duplicates {
                let keys: Vec<&str> = dup.keys.iter().map(|k| k.0.as_str()).collect();
                tracing::warn!(day = %d.day, events = dup.events, keys = ?keys, "events stored more than once");
            }
            for key in &d.unreadable_objects {
                tracing::error!(day = %d.day, key = %key, "a stored object cannot be read: move it out of the bucket (or restore a version), then verify with repair");
            }
        }
    }
}

/// The answer and metrics of a verification. Finding something missing is not a failed
/// run (`EventsMissing` says it); not being able to verify is.
fn verified(
    result: Result<VerifyReport, VerifyError>,
    metrics: &mut RunMetrics,
) -> Result<Value, RetryableError> {
    match result {
        Ok(r) => {
            metrics.events_missing = r.missing;
            metrics.events_duplicated = r.duplicated;
            metrics.events_repaired = r.repaired;
            let mut v = serde_json::to_value(&r).unwrap_or_else(|_| json!({}));
            v["ok"] = json!(true);
            v["clean"] = json!(r.clean());
            v["api_requests"] = json!(metrics.api_requests);
            if !r.clean() && r.complete {
                tracing::error!(
                    missing = r.missing,
                    repaired = r.repaired,
                    duplicated = r.duplicated,
                    repair_skipped = r.repair_skipped.as_deref().unwrap_or(""),
                    "verify: the stored trail differs from Docker Hub's"
                );
            } else if r.clean() && r.missing > 0 {
                tracing::warn!(
                    missing = r.missing,
                    "verify: events were missing and are repaired"
                );
            }
            if !r.complete {
                // Out of time: a retry would run out of time the same way.
                let why = r.stopped_early.as_deref().unwrap_or("stopped");
                let error = format!(
                    "verify stopped at {} ({why}), before the end of its range: shorten VerifyRange or raise the \
                     function's timeout",
                    r.to
                );
                tracing::error!(%error, "verify did not finish");
                v["ok"] = json!(false);
                v["error"] = json!(error);
            }
            Ok(v)
        }
        Err(e) => {
            let transient = match &e {
                VerifyError::Store(s) => s.is_transient(),
                VerifyError::Hub(h) => h.is_transient(),
                VerifyError::Nothing(_) => false,
            };
            if transient {
                tracing::warn!(error = %e, "verify failed; a retry may help");
                Err(RetryableError(crate::types::clip(
                    &e.to_string(),
                    crate::types::MAX_ERROR_CHARS,
                )))
            } else {
                tracing::error!(error = %e, "verify failed; a retry will not help until the cause is fixed");
                Ok(
                    json!({"ok": false, "error": crate::types::clip(&e.to_string(), crate::types::MAX_ERROR_CHARS)}),
                )
            }
        }
    }
}

fn refuse(error: String) -> Value {
    // The input's own text may be in it: bounded like any error that leaves the function.
    let error = crate::types::clip(&error, crate::types::MAX_ERROR_CHARS);
    tracing::error!(%error, "invalid input");
    json!({"ok": false, "error": error})
}

fn age_seconds(now: DateTime<Utc>, watermark: DateTime<Utc>) -> f64 {
    (now - watermark).num_milliseconds() as f64 / 1000.0
}

/// The run report as the CLI's `--log-format json` prints it, with the request counts.
fn summary(r: &RunReport, m: &RunMetrics) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_else(|_| json!({}));
    v["ok"] = json!(true);
    v["api_requests"] = json!(m.api_requests);
    v["throttled_requests"] = json!(m.throttled_requests);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::file::FileCheckpoints;
    use crate::clock::ManualClock;
    use crate::credentials::env::StaticCredentials;
    use crate::ports::Secret;
    use crate::sink::local::LocalSink;
    use crate::types::RunId;

    fn app(dir: &std::path::Path, clock: &ManualClock) -> App<FileCheckpoints, LocalSink> {
        app_counting(dir, clock, Arc::default())
    }

    /// The app, counting the credential sources it builds in `secrets`.
    fn app_counting(
        dir: &std::path::Path,
        clock: &ManualClock,
        secrets: Arc<std::sync::atomic::AtomicUsize>,
    ) -> App<FileCheckpoints, LocalSink> {
        let get = |k: &str| match k {
            "DOCKERHUB_AUDIT_TABLE" | "DOCKERHUB_AUDIT_BUCKET" => Some("unused".to_string()),
            "DOCKERHUB_AUDIT_ORGS" => Some("acme".to_string()),
            // Nothing listens there: these tests never reach Docker Hub.
            "DOCKERHUB_AUDIT_HUB_URL" => Some("http://127.0.0.1:9".to_string()),
            _ => None,
        };
        App::new(
            Settings::from_env(get).unwrap(),
            FileCheckpoints::new(dir.join("_checkpoints")),
            LocalSink::new(dir),
            Arc::new(clock.clone()),
            Box::new(move |_: &str| -> Arc<dyn CredentialSource> {
                secrets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Arc::new(StaticCredentials::new("acme", Secret::new("unused")))
            }),
        )
    }

    fn per_org(doc: &Value) -> Vec<String> {
        crate::lambda::metrics::declared(doc, &json!([["org"]]))
    }

    #[tokio::test]
    async fn a_held_lease_still_reports_the_age_of_the_stored_data() {
        let dir = tempfile::tempdir().unwrap();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = ManualClock::new(now);
        let app = app(dir.path(), &clock);
        let org = Org::new("acme").unwrap();
        // Another run holds the lease, over a checkpoint whose data is 7 minutes old.
        let (lease, mut cp) = app
            .checkpoints
            .acquire(&org, &RunId("other".into()))
            .await
            .unwrap()
            .unwrap();
        cp.watermark = Some(now - chrono::Duration::minutes(7));
        app.checkpoints.save(&lease, &mut cp).await.unwrap();

        let (answer, doc) = app
            .handle_measured(json!({"org": "acme"}), now + chrono::Duration::minutes(4))
            .await;
        let answer = answer.unwrap();
        assert_eq!(answer["leased"], false);
        assert_eq!(answer["ok"], true);
        assert_eq!(doc["org"], "acme");
        assert_eq!(doc["RunsFailed"], 0);
        assert_eq!(doc["WatermarkAge"], 420.0);
        assert_eq!(per_org(&doc), ["WatermarkAge"]);
        app.checkpoints.release(lease).await.unwrap();
    }

    #[tokio::test]
    async fn refused_inputs_are_reported_as_failed_runs() {
        let dir = tempfile::tempdir().unwrap();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = ManualClock::new(now);
        let app = app(dir.path(), &clock);
        let deadline = now + chrono::Duration::minutes(4);

        let (answer, doc) = app
            .handle_measured(json!({"org": "acme", "lag": "soon"}), deadline)
            .await;
        assert_eq!(answer.unwrap()["ok"], false);
        assert_eq!(doc["org"], "acme");
        assert_eq!(doc["RunsFailed"], 1);
        assert_eq!(per_org(&doc), ["RunsFailed"], "no checkpoint yet, so no age");

        for input in [
            json!({"org": "Not An Org"}),
            json!(["acme"]),
            json!({"organization": "acme"}),
        ] {
            let (answer, doc) = app.handle_measured(input.clone(), deadline).await;
            assert_eq!(answer.unwrap()["ok"], false, "{input}");
            assert_eq!(doc["org"], "-", "{input}");
            assert_eq!(doc["RunsFailed"], 1, "{input}");
            assert!(per_org(&doc).is_empty(), "{input}");
        }
    }

    #[tokio::test]
    async fn an_org_the_stack_was_not_deployed_for_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = ManualClock::new(now);
        let secrets = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let app = app_counting(dir.path(), &clock, secrets.clone());
        let deadline = now + chrono::Duration::minutes(4);
        for input in [
            json!({"org": "acmecorp"}),
            json!({"org": "prod-database-password"}),
            json!({"org": "other", "verify": "2d", "repair": true}),
        ] {
            let (answer, doc) = app.handle_measured(input.clone(), deadline).await;
            let answer = answer.unwrap();
            assert_eq!(answer["ok"], false, "{input}");
            let error = answer["error"].as_str().unwrap();
            assert!(
                error.contains("not one of the organizations this stack collects (acme)"),
                "{error}"
            );
            assert_eq!(doc["org"], "-", "no metric of its own: {input}");
            assert!(per_org(&doc).is_empty(), "{input}");
        }
        assert_eq!(
            secrets.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "no secret was read"
        );
        assert!(app.clients.lock().await.is_empty(), "no client was cached");
        let written: Vec<_> = walk(dir.path());
        assert!(written.is_empty(), "nothing was written: {written:?}");
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
    }
}
