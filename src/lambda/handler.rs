//! One invocation: plain async code over the ports, testable without the Lambda runtime.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::metrics::{age_seconds, emf, RunMetrics};
use super::settings::{Input, Settings};
use crate::alert::Rules;
use crate::clock::Clock;
use crate::collect::server_memory::ServerMemory;
use crate::collect::verify::{Progress, VerifyRange, VerifyReport};
use crate::collect::Alerting;
use crate::config::PollConfig;
use crate::hub::{HubClient, HubConfig};
use crate::ports::{
    AlertSink, AuditLog, CheckpointIndex, Checkpoints, CredentialSource, Dispatcher, Notifier, Sink,
};
use crate::service::{Outcome, RunSummary, Service};
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

/// What a Docker Hub client is for: the org's polls (kept across a warm Lambda's runs, with
/// its token), or a verification (its own, leaving half the rate limit to the poller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Poll,
    Verify,
}

/// What builds the Docker Hub port of an org (the HTTP client, with its credentials from
/// Secrets Manager, in production; an in-process fake in the unit tests).
pub type HubFactory<A> = Box<dyn Fn(&Org, Purpose) -> Result<Arc<A>, String> + Send + Sync>;

/// What builds the credential source of an org (from its own secret, or its entry in the
/// shared one).
pub type CredentialsFactory = Box<dyn Fn(&Org) -> Arc<dyn CredentialSource> + Send + Sync>;

/// The production [`HubFactory`]: a [`HubClient`] per org, its credentials from the org's
/// secret, against the settings' Hub URL.
pub fn hub_clients(
    settings: &Settings,
    clock: Arc<dyn Clock>,
    credentials: CredentialsFactory,
) -> HubFactory<HubClient> {
    let base = HubConfig {
        base_url: settings.hub_url.clone(),
        ..HubConfig::default()
    };
    Box::new(move |org: &Org, purpose: Purpose| {
        let creds = credentials(org);
        let cfg = match purpose {
            Purpose::Poll => base.clone(),
            // The rate limit is shared with the org's poller: leave it half.
            Purpose::Verify => HubConfig {
                leave_for_others: 0.5,
                ..base.clone()
            },
        };
        Ok(Arc::new(HubClient::new(cfg, creds, clock.clone())?))
    })
}

/// An org's Hub port and what its runs learned of the server's page size.
type OrgHub<A> = (Arc<A>, Arc<ServerMemory>);

/// Built once per cold start; reused by every invocation of a warm Lambda.
pub struct App<A, K, S> {
    pub settings: Settings,
    pub checkpoints: K,
    pub sink: S,
    pub clock: Arc<dyn Clock>,
    hubs: HubFactory<A>,
    /// One Hub port per org, so its token and the secret cache survive between runs, and
    /// what the org's runs learned of the server's page size.
    clients: Mutex<HashMap<Org, OrgHub<A>>>,
    /// Alert rules and where their alerts go; `None`: no alerts.
    alerts: Option<(Rules, Box<dyn AlertSink>)>,
    /// The query surface a repair takes a compacted day off first; `None`: no compaction.
    surface: Option<Box<dyn crate::surface::QuerySurface>>,
    /// Where the watch mode's messages go and how it starts jobs; `None`: it sends and
    /// starts nothing (it still measures).
    notifier: Option<Box<dyn Notifier>>,
    dispatcher: Option<Box<dyn Dispatcher>>,
}

impl<A: AuditLog, K: Checkpoints + CheckpointIndex, S: Sink> App<A, K, S> {
    pub fn new(
        settings: Settings,
        checkpoints: K,
        sink: S,
        clock: Arc<dyn Clock>,
        hubs: HubFactory<A>,
    ) -> Self {
        App {
            settings,
            checkpoints,
            sink,
            clock,
            hubs,
            clients: Mutex::new(HashMap::new()),
            alerts: None,
            surface: None,
            notifier: None,
            dispatcher: None,
        }
    }

    /// The watch mode sends its messages to `notifier`.
    pub fn with_notifier(mut self, notifier: Box<dyn Notifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// The watch mode starts the daily jobs through `dispatcher`.
    pub fn with_dispatcher(mut self, dispatcher: Box<dyn Dispatcher>) -> Self {
        self.dispatcher = Some(dispatcher);
        self
    }

    /// Raises alerts under `rules`, delivered to `out`.
    pub fn with_alerts(mut self, rules: Rules, out: Box<dyn AlertSink>) -> Self {
        self.alerts = Some((rules, out));
        self
    }

    /// A repair takes a compacted day off `surface` before writing into it.
    pub fn with_surface(mut self, surface: Box<dyn crate::surface::QuerySurface>) -> Self {
        self.surface = Some(surface);
        self
    }

    /// The org's Hub port for `purpose`, with its page-size memory: a poll's are kept for
    /// the next run, a verification's are its own.
    async fn client(&self, org: &Org, purpose: Purpose) -> Result<OrgHub<A>, String> {
        if purpose == Purpose::Verify {
            return Ok(((self.hubs)(org, purpose)?, Arc::default()));
        }
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(org) {
            return Ok(c.clone());
        }
        let c = ((self.hubs)(org, purpose)?, Arc::default());
        clients.insert(org.clone(), c.clone());
        Ok(c)
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
        if input.get("watch").is_some() {
            return self.watch(input, started, deadline).await;
        }
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
        metrics.org_watermark = self.settings.org_metrics;
        let finished = self.clock.now();
        metrics.run_duration_ms = (finished - started).num_milliseconds() as f64;
        // Only failures a retry does not fix: a passing Docker Hub or AWS hiccup returns a
        // retryable error, which Lambda retries; one that persists leaves the org stale, and the
        // watchdog names it.
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

    /// The watch mode (`{"watch": true}`): every org's health from one listing of the
    /// checkpoints, a message when the set of stale orgs changed, the daily jobs that are
    /// due; answered with the report, measured with `StaleOrgs` and `OldestWatermarkAge`.
    async fn watch(
        &self,
        input: Value,
        started: DateTime<Utc>,
        deadline: DateTime<Utc>,
    ) -> (Result<Value, RetryableError>, Value) {
        if input != json!({"watch": true}) {
            let error = "the watch input is {\"watch\": true}, with nothing else".to_string();
            tracing::error!(%error, "invalid input");
            return (
                Ok(json!({"ok": false, "error": error})),
                super::metrics::watch_emf(started, None),
            );
        }
        let cfg = crate::watch::WatchConfig {
            deployed: self.settings.orgs.clone(),
            stale_after: self.settings.watch.stale_after,
            name: std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "dockerhub-audit".into()),
            window: self.dispatcher.as_ref().map(|_| self.settings.watch.window),
            // Jobs are started only while well inside the invocation's time.
            deadline: (deadline - started - self.settings.safety_margin.min((deadline - started) / 3))
                .to_std()
                .ok()
                .map(|left| std::time::Instant::now() + left),
        };
        let outcome = crate::watch::watch(
            &self.checkpoints,
            self.notifier.as_deref(),
            self.dispatcher.as_deref(),
            &cfg,
            started,
        )
        .await;
        let finished = self.clock.now();
        match outcome {
            Ok(report) => {
                let stale: Vec<&str> = report.stale.iter().map(|s| s.org.as_str()).collect();
                if stale.is_empty() {
                    tracing::info!(orgs = report.orgs, "watch: every org is collected");
                } else {
                    tracing::warn!(orgs = report.orgs, stale = ?stale, "watch: stale orgs");
                }
                let doc = super::metrics::watch_emf(finished, Some(&report));
                let mut v = serde_json::to_value(&report).unwrap_or_else(|_| json!({}));
                v["ok"] = json!(report.errors.is_empty());
                (Ok(v), doc)
            }
            Err(e) => {
                // Nothing is known: no metric value, so the alarm sees missing data.
                tracing::error!(error = %e, "watch: cannot read the checkpoints");
                let doc = super::metrics::watch_emf(finished, None);
                (
                    Err(RetryableError(format!("watch: cannot read the checkpoints: {e}"))),
                    doc,
                )
            }
        }
    }

    /// The input, the run's config, and how far back to verify if it asks for that; or
    /// why it is refused.
    fn read_input(&self, input: Value) -> Result<(Input, PollConfig, Option<chrono::Duration>), String> {
        let input: Input = serde_json::from_value(input)
            .map_err(|e| format!("the input is not {{\"org\": \"<org>\", …}} ({e})"))?;
        let cfg = input.poll_config(&self.settings)?;
        let verify = input.verify_range()?;
        Ok((input, cfg, verify))
    }

    async fn invoke(
        &self,
        input: Value,
        deadline: DateTime<Utc>,
        metrics: &mut RunMetrics,
    ) -> Result<Value, RetryableError> {
        let started = self.clock.now();
        let (input, cfg, verify) = match self.read_input(input) {
            Ok(read) => read,
            Err(e) => return Ok(refuse(e)),
        };
        let purpose = if verify.is_some() {
            Purpose::Verify
        } else {
            Purpose::Poll
        };
        let (client, memory) = match self.client(&cfg.org, purpose).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "could not build the Docker Hub client");
                return Err(RetryableError(e));
            }
        };
        let mut service = Service::new(
            client.as_ref(),
            &self.checkpoints,
            &self.sink,
            self.clock.as_ref(),
        )
        .with_page_memory(memory.as_ref())
        .with_alerts(self.alerts.as_ref().map(|(rules, out)| Alerting {
            rules,
            out: out.as_ref(),
        }));
        if let Some(surface) = &self.surface {
            service = service.with_surface(surface.as_ref());
        }
        // A margin longer than a third of the time left (a short timeout) would stop every
        // run before it starts.
        let margin = self.settings.safety_margin.min((deadline - started) / 3);
        if let Some(back) = verify {
            let range = VerifyRange {
                from: started.checked_sub_signed(back).unwrap_or(started),
                until: None,
                repair: input.repair,
            };
            let outcome = service
                .verify(&cfg, &range, Some(deadline - margin), &mut log_day)
                .await;
            metrics.api_requests = outcome.requests.requests;
            metrics.throttled_requests = outcome.requests.throttled;
            return verified(outcome, metrics);
        }
        let summary = RunSummary::from(service.poll(&cfg, Some(deadline - margin)).await);
        *metrics = RunMetrics::of(&summary, self.clock.now());
        let answer = serde_json::to_value(&summary).unwrap_or_else(|_| json!({"ok": summary.ok}));
        match (&summary.error, summary.retry_helps) {
            (None, _) => {
                let r = &summary.report;
                tracing::info!(
                    events = r.events_written,
                    caught_up = r.caught_up,
                    leased = r.leased,
                    "run finished"
                );
                Ok(answer)
            }
            (Some(e), Some(true)) => {
                tracing::warn!(error = %e, "run failed; a retry may help");
                Err(RetryableError(e.clone()))
            }
            (Some(e), _) => {
                tracing::error!(error = %e, "run failed; a retry will not help until the cause is fixed");
                Ok(answer)
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
    outcome: Outcome<Option<VerifyReport>>,
    metrics: &mut RunMetrics,
) -> Result<Value, RetryableError> {
    match (outcome.report, outcome.failure) {
        (Some(r), None) => {
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
        (_, Some(f)) if f.retry_helps => {
            tracing::warn!(error = %f.message, "verify failed; a retry may help");
            Err(RetryableError(f.message))
        }
        (_, Some(f)) => {
            tracing::error!(error = %f.message, "verify failed; a retry will not help until the cause is fixed");
            Ok(json!({"ok": false, "error": f.message}))
        }
        (None, None) => Ok(json!({"ok": false, "error": "verify answered nothing"})),
    }
}

fn refuse(error: String) -> Value {
    // The input's own text may be in it: bounded like any error that leaves the function.
    let error = crate::types::clip(&error, crate::types::MAX_ERROR_CHARS);
    tracing::error!(%error, "invalid input");
    json!({"ok": false, "error": error})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::file::FileCheckpoints;
    use crate::clock::ManualClock;
    use crate::sink::local::LocalSink;
    use crate::testkit::fakes::{FakeHub, Order};
    use crate::types::RunId;

    /// The handler over the in-process fake Hub (empty unless a test fills it).
    fn app(dir: &std::path::Path, clock: &ManualClock) -> App<FakeHub, FileCheckpoints, LocalSink> {
        app_with(
            dir,
            clock,
            Arc::new(FakeHub::new(clock.clone(), 100, Order::NewestFirst)),
            Arc::default(),
        )
    }

    /// The app over `hub`, counting in `built` the Hub ports it builds (in production each
    /// reads the org's secret).
    fn app_with(
        dir: &std::path::Path,
        clock: &ManualClock,
        hub: Arc<FakeHub>,
        built: Arc<std::sync::atomic::AtomicUsize>,
    ) -> App<FakeHub, FileCheckpoints, LocalSink> {
        let get = |k: &str| match k {
            "DOCKERHUB_AUDIT_TABLE" | "DOCKERHUB_AUDIT_BUCKET" => Some("unused".to_string()),
            "DOCKERHUB_AUDIT_ORGS" => Some("acme".to_string()),
            _ => None,
        };
        App::new(
            Settings::from_env(get).unwrap(),
            FileCheckpoints::new(dir.join("_checkpoints")),
            LocalSink::new(dir),
            Arc::new(clock.clone()),
            Box::new(move |_: &Org, _: Purpose| {
                built.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(hub.clone())
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
        assert!(
            per_org(&doc).is_empty(),
            "no per-org alarms: the age is a field, not a metric"
        );
        app.checkpoints.release(lease).await.unwrap();
    }

    #[tokio::test]
    async fn the_watch_input_measures_every_org_and_nothing_else_is_a_watch() {
        let dir = tempfile::tempdir().unwrap();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = ManualClock::new(now);
        let app = app(dir.path(), &clock);
        // acme (the one deployed org) never ran.
        let (answer, doc) = app
            .handle_measured(json!({"watch": true}), now + chrono::Duration::minutes(4))
            .await;
        let answer = answer.unwrap();
        assert_eq!(answer["ok"], true, "{answer}");
        assert_eq!(answer["stale"][0]["org"], "acme");
        assert_eq!(answer["stale"][0]["why"]["kind"], "never_ran");
        assert_eq!(doc["StaleOrgs"], 1);
        assert_eq!(doc["mode"], "watch");
        assert_eq!(
            crate::lambda::metrics::declared(&doc, &json!([[]])),
            ["StaleOrgs"]
        );
        // A watch input with anything else is refused, and measures nothing.
        let (answer, doc) = app
            .handle_measured(
                json!({"watch": true, "org": "acme"}),
                now + chrono::Duration::minutes(4),
            )
            .await;
        assert_eq!(answer.unwrap()["ok"], false);
        assert!(doc.get("StaleOrgs").is_none());
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
        let hub = Arc::new(FakeHub::new(clock.clone(), 100, Order::NewestFirst));
        let app = app_with(dir.path(), &clock, hub, secrets.clone());
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

    #[tokio::test]
    async fn a_poll_through_the_handler_answers_the_shared_summary() {
        let dir = tempfile::tempdir().unwrap();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = ManualClock::new(now);
        let hub = Arc::new(FakeHub::new(clock.clone(), 40, Order::Shuffled));
        hub.generate(
            7,
            300,
            now - chrono::Duration::days(3),
            now - chrono::Duration::hours(1),
        );
        let app = app_with(dir.path(), &clock, hub.clone(), Arc::default());
        let (answer, doc) = app
            .handle_measured(json!({"org": "acme"}), now + chrono::Duration::minutes(4))
            .await;
        let answer = answer.unwrap();
        assert_eq!(answer["ok"], true, "{answer}");
        assert_eq!(answer["events_written"], 300, "{answer}");
        assert_eq!(answer["caught_up"], true);
        // What landed: every event once.
        let stored: Vec<String> = crate::inspect::records(dir.path())
            .unwrap()
            .iter()
            .map(|r| crate::inspect::hub_canonical(r).unwrap())
            .collect();
        assert!(crate::inspect::compare(&hub.visible_before(now), &stored).exact());
        // The answer is the shared summary, field for field.
        let summary: Vec<&String> = answer.as_object().unwrap().keys().collect();
        for key in [
            "ok",
            "org",
            "run_id",
            "events_written",
            "api_requests",
            "throttled_requests",
            "retries",
        ] {
            assert!(summary.iter().any(|k| *k == key), "{key} missing: {summary:?}");
        }
        assert_eq!(doc["EventsWritten"], 300);
        assert_eq!(doc["org"], "acme");
    }
}
