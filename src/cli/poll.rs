//! `poll` and `status`, on local files or on the Lambda's S3 bucket and DynamoDB table.

use std::sync::Arc;

use chrono::Utc;

use super::args::{HttpArgs, PollArgs, StatusArgs};
use super::stores::{AnyCheckpoints, Stores};
use crate::alert::Rules;
use crate::clock::{Clock, SystemClock};
use crate::collect::Alerting;
use crate::config::PollConfig;
use crate::credentials::env::StaticCredentials;
use crate::credentials::secrets_manager::SecretsManagerCredentials;
use crate::hub::{HubClient, HubConfig};
use crate::logging::LogFormat;
use crate::notify::lines::{JsonLines, LinesTo};
use crate::ports::{Checkpoints, CredentialSource, Sink};
use crate::service::{RunSummary, Service};
use crate::types::{rfc3339, Org};

pub fn hub_config(url: url::Url, http: &HttpArgs) -> Result<HubConfig, String> {
    let std = |d: chrono::Duration, flag: &str| d.to_std().map_err(|_| format!("{flag} cannot be negative"));
    Ok(HubConfig {
        base_url: url,
        request_timeout: std(http.request_timeout.0, "--request-timeout")?,
        retry_base: std(http.retry_base.0, "--retry-base")?,
        max_attempts: http.max_attempts.max(1),
        ..HubConfig::default()
    })
}

/// The adapters a command wires into the poller: the Hub client, the chosen stores, the
/// system clock.
pub struct Wired {
    pub clock: Arc<dyn Clock>,
    pub client: HubClient,
    pub checkpoints: AnyCheckpoints,
    pub sink: Box<dyn Sink>,
}

impl Wired {
    pub async fn new(
        hub: HubConfig,
        creds: Arc<dyn CredentialSource>,
        stores: &Stores,
    ) -> Result<Self, String> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Ok(Wired {
            client: HubClient::new(hub, creds, clock.clone())?,
            checkpoints: stores.checkpoints().await?,
            sink: stores.sink().await?,
            clock,
        })
    }

    /// The service over these adapters.
    pub fn service<'a>(
        &'a self,
        alerts: Option<Alerting<'a>>,
    ) -> Service<'a, HubClient, AnyCheckpoints, dyn Sink> {
        Service::new(
            &self.client,
            &self.checkpoints,
            self.sink.as_ref(),
            self.clock.as_ref(),
        )
        .with_alerts(alerts)
    }
}

/// Reads `--rules`: a TOML file, or `default` for the built-in set. Any problem is an
/// error before anything runs, never a silent "no alerts".
pub fn load_rules(path: &std::path::Path) -> Result<Rules, String> {
    if path.as_os_str() == "default" && !path.exists() {
        return Ok(Rules::defaults());
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the rules file {} ({e}); give a TOML rules file, or `default`",
            path.display()
        )
    })?;
    Rules::parse(&text, &format!("the rules file {}", path.display())).map_err(|e| e.to_string())
}

/// Wires the Hub client and the chosen stores into the service and polls once. A failed
/// run is an `Err` with the message the CLI prints (what it committed first, if anything).
pub async fn run_once(
    cfg: &PollConfig,
    hub: HubConfig,
    creds: Arc<dyn CredentialSource>,
    stores: &Stores,
    alerts: Option<Alerting<'_>>,
) -> Result<RunSummary, String> {
    cfg.validate().map_err(|e| e.to_string())?;
    let wired = Wired::new(hub, creds, stores).await?;
    let deadline = cfg
        .max_duration
        .and_then(|d| wired.clock.now().checked_add_signed(d));
    let summary = RunSummary::from(wired.service(alerts).poll(cfg, deadline).await);
    match &summary.error {
        None => Ok(summary),
        Some(error) => {
            let r = &summary.report;
            Err(if r.events_written > 0 {
                format!(
                    "{error} ({} events written and committed before the failure; watermark {})",
                    r.events_written,
                    r.watermark.map(rfc3339).unwrap_or_else(|| "unset".into())
                )
            } else {
                error.clone()
            })
        }
    }
}

/// One line that says what the run did.
pub fn summary(ran: &RunSummary) -> String {
    let r = &ran.report;
    if !r.leased {
        return match &r.stopped_early {
            // Taken over mid-run: what it committed stays, the other run goes on.
            Some(why) => format!(
                "{}: {} events written, then {why}; the other run continues",
                r.org, r.events_written
            ),
            None => format!(
                "{}: another poller holds this organization's lease; nothing done",
                r.org
            ),
        };
    }
    let state = match (&r.stopped_early, r.caught_up) {
        (Some(why), _) => format!("stopped early: {why}"),
        (None, true) => "caught up".into(),
        (None, false) => "not caught up".into(),
    };
    let rebuilt = match &r.rebuilt {
        Some(why) => format!("; {why}"),
        None => String::new(),
    };
    let quarantined = match r.events_quarantined {
        0 => String::new(),
        n => format!(", {n} unreadable items quarantined (see _quarantine/)"),
    };
    let alerts = match (r.alerts_raised, r.alerts_failed) {
        (0, 0) => String::new(),
        (n, 0) => format!(", {n} alerts raised"),
        (n, f) => format!(", {n} alerts raised and {f} not delivered (kept; the next run sends them)"),
    };
    format!(
        "{}: {} events written in {} objects, {} duplicates dropped{quarantined}{alerts}, {} API requests ({} throttled, {} retried); watermark {}; {}{rebuilt}",
        r.org,
        r.events_written,
        r.objects_written,
        r.duplicates_dropped,
        ran.api_requests,
        ran.throttled_requests,
        ran.retries,
        r.watermark.map(rfc3339).unwrap_or_else(|| "unset".into()),
        state
    )
}

/// Docker Hub credentials: from a Secrets Manager secret, or from the environment.
pub async fn credentials(secret_id: Option<&str>) -> Result<Arc<dyn CredentialSource>, String> {
    Ok(match secret_id {
        Some(id) => {
            let sdk = crate::aws::load().await;
            Arc::new(SecretsManagerCredentials::new(
                crate::aws::secrets_client(&sdk),
                id,
            ))
        }
        None => Arc::new(StaticCredentials::from_env().map_err(|e| e.0)?),
    })
}

/// How a `poll` that did not fail ended, for the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Caught up; or another run holds the org, or took it over, and goes on.
    Done,
    /// Stopped before catching up with nothing wrong (its time ran out, or Docker Hub asked
    /// to wait longer than a run waits): everything read is committed; run again later.
    StoppedEarly,
}

impl Finished {
    pub fn of(r: &crate::collect::RunReport) -> Self {
        if r.leased && (r.stopped_early.is_some() || !r.caught_up) {
            Finished::StoppedEarly
        } else {
            Finished::Done
        }
    }
}

/// `poll`, with the rules `--rules` gave (already loaded and checked).
pub async fn poll(a: PollArgs, rules: Option<Rules>, format: LogFormat) -> Result<Finished, String> {
    let mut cfg = PollConfig::new(a.org.clone());
    cfg.lookback = a.lookback.0;
    cfg.lag = a.lag.0;
    cfg.overlap = a.overlap.0;
    cfg.max_duration = a.max_duration;
    cfg.batch_events = a.batch_events;
    cfg.read_events = a.max_read_events;
    cfg.read_bytes = a.max_read_bytes.0;
    cfg.batch_bytes = a.batch_bytes.0;
    cfg.page_size = a.hub.page_size;
    let to_stdout = a.alerts_out == "-";
    let lines = JsonLines::new(if to_stdout {
        LinesTo::Stdout
    } else {
        LinesTo::File(a.alerts_out.clone().into())
    });
    let alerting = rules.as_ref().map(|rules| Alerting { rules, out: &lines });
    let creds = credentials(a.hub.secret_id.as_deref()).await?;
    let ran = run_once(
        &cfg,
        hub_config(a.hub.hub_url.clone(), &a.hub.http)?,
        creds,
        &a.store.stores(),
        alerting,
    )
    .await?;
    let line = match format {
        LogFormat::Text => summary(&ran),
        // The same summary the Lambda answers.
        LogFormat::Json => serde_json::to_string(&ran).map_err(|e| e.to_string())?,
    };
    if alerting.is_some() && to_stdout {
        // Alerts own stdout: the summary goes with the logs.
        super::progress::above(|| eprintln!("{line}"));
    } else {
        say!("{line}");
    }
    Ok(Finished::of(&ran.report))
}

/// `status`: one org in detail, or (`--all`) every org's health. `Ok(false)`: an org is
/// stale.
pub async fn status(a: StatusArgs) -> Result<bool, String> {
    let stores = a.store.stores();
    let store = stores.checkpoints().await?;
    let Some(org) = a.org.clone() else {
        return status_all(&a, &store).await;
    };
    let Some(cp) = store.peek(&org).await.map_err(|e| e.to_string())? else {
        say!(
            "{}: no checkpoint in {} yet; the first poll reads back --lookback",
            org,
            stores.checkpoint_location()?
        );
        return Ok(true);
    };
    let now = Utc::now();
    say!("org:          {}", cp.org);
    match cp.watermark {
        Some(w) => {
            // Whole seconds: "34s ago", not "34s 572ms 914us ago".
            let age = std::time::Duration::from_secs((now - w).num_seconds().max(0) as u64);
            say!(
                "watermark:    {} ({} ago)",
                rfc3339(w),
                humantime::format_duration(age)
            );
        }
        None => say!("watermark:    none yet"),
    }
    say!(
        "remembered:   {} event ids since {}",
        cp.seen.len(),
        cp.seen_from.map(rfc3339).unwrap_or_else(|| "-".into())
    );
    match &cp.pending {
        None => say!("pending:      none"),
        Some(i) => say!(
            "pending:      a commit of {} object(s) by run {} (the next poll finishes it)",
            i.objects.len(),
            i.run_id
        ),
    }
    say!(
        "output:       {}",
        cp.output.as_deref().unwrap_or("not recorded yet")
    );
    if !cp.alerts_pending.is_empty() {
        let waiting: u64 = cp.alerts_pending.iter().map(|p| u64::from(p.alerts)).sum();
        say!(
            "alerts:       {waiting} not delivered yet, from {} object(s) (the next poll with --rules sends them)",
            cp.alerts_pending.len()
        );
    }
    say!(
        "quarantined:  {} unreadable item(s){}",
        cp.quarantined,
        if cp.quarantined > 0 {
            " (under _quarantine/ in the output)"
        } else {
            ""
        }
    );
    match &cp.last_run {
        None => say!("last run:     none recorded"),
        Some(r) => {
            say!(
                "last run:     {} at {} ({} events written, {})",
                r.run_id,
                rfc3339(r.finished_at),
                r.events_written,
                if r.caught_up { "caught up" } else { "not caught up" }
            );
            if let Some(e) = &r.error {
                say!("last error:   {e}");
            }
        }
    }
    say!("version:      {}", cp.version);
    if a.days > 0 {
        let to = now.date_naive();
        let from = to - chrono::Duration::days(i64::from(a.days) - 1);
        say!();
        // The checkpoint above stands on its own: an output this shell cannot read costs
        // the picture, not the status.
        if let Some(other) = other_output(cp.output.as_deref(), &stores) {
            say!(
                "activity:     this checkpoint belongs to the output {other}, not {}; give that as --output",
                stores.output
            );
        } else if let Err(e) = activity(&stores, &cp.org, from, to, cp.verified.as_ref()).await {
            say!("activity:     cannot read the output ({e}); `--days 0` leaves this out");
        }
    }
    Ok(true)
}

/// The output the checkpoint records, when `stores` surely names another (its picture would
/// be of the wrong trail). Reads, never writes: a local folder's id is only read.
fn other_output(recorded: Option<&str>, stores: &Stores) -> Option<String> {
    let recorded = recorded?;
    let given = stores.output.trim_end_matches('/');
    let same = if given.starts_with("s3://") {
        recorded.trim_end_matches('/') == given
    } else {
        let id = std::path::Path::new(given).join(crate::sink::local::OUTPUT_ID);
        std::fs::read_to_string(id).is_ok_and(|id| id.trim() == recorded)
    };
    (!same).then(|| recorded.to_string())
}

/// Prints the activity view of `org` over `from..=to` (see [`crate::activity`]).
pub async fn activity(
    stores: &Stores,
    org: &Org,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    verified: Option<&crate::checkpoint_model::Verified>,
) -> Result<(), String> {
    use crate::activity::{read, render, thousands};
    let sink = stores.sink().await?;
    let (days, objects) = read(sink.as_ref(), org, from, to, verified)
        .await
        .map_err(|e| e.to_string())?;
    let total: u64 = days.iter().map(|d| d.events).sum();
    say!(
        "activity:     {} events stored from {from} to {to}, read back from {objects} object(s); ✓ verified complete",
        thousands(total)
    );
    // The terminal's, else $COLUMNS, else 100; less the two columns of the indent.
    let width = console::Term::stdout()
        .size_checked()
        .map(|(_, w)| usize::from(w))
        .or_else(|| std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()))
        .unwrap_or(100);
    for line in render(&days, width.saturating_sub(2)) {
        say!("  {line}");
    }
    Ok(())
}

/// `status --all`: a line per org, then each stale org's reason and what to do, as the
/// watchdog's message says them.
async fn status_all(a: &StatusArgs, store: &AnyCheckpoints) -> Result<bool, String> {
    use crate::ports::CheckpointIndex;
    use crate::watch::notice::{advice, age_text, describe};
    let states = store.list().await.map_err(|e| e.to_string())?;
    let deployed: std::collections::BTreeSet<Org> = a.orgs.iter().cloned().collect();
    let health = crate::watch::Health::assess(
        (!deployed.is_empty()).then_some(&deployed),
        states,
        Utc::now(),
        a.stale_after.0,
    );
    if health.orgs.is_empty() {
        say!("no org has a checkpoint in this store yet");
        return Ok(true);
    }
    let width = health
        .orgs
        .iter()
        .map(|o| o.org.as_str().len())
        .max()
        .unwrap_or(3)
        .max(3);
    say!(
        "{:<width$}  {:<7}  {:<12}  {:<25}  last run",
        "org",
        "state",
        "data age",
        "watermark"
    );
    for o in &health.orgs {
        let state = match (&o.stale, o.deployed) {
            (_, false) => "other",
            (Some(_), true) => "STALE",
            (None, true) => "ok",
        };
        let last = match &o.last_run {
            Some(r) if r.error.is_some() => format!("{} failed", rfc3339(r.finished_at)),
            Some(r) => format!("{} ({} events)", rfc3339(r.finished_at), r.events_written),
            None => "-".into(),
        };
        say!(
            "{:<width$}  {:<7}  {:<12}  {:<25}  {last}",
            o.org.as_str(),
            state,
            o.age.map(age_text).unwrap_or_else(|| "-".into()),
            o.watermark.map(rfc3339).unwrap_or_else(|| "none".into()),
        );
    }
    let stale: Vec<_> = health.stale().collect();
    for o in &stale {
        let why = o.stale.as_ref().expect("stale");
        say!();
        say!("{}: {}", o.org, describe(why, health.at));
        say!("  what to do: {}", advice(why, &o.org));
    }
    say!();
    say!(
        "{} of {} org(s) stale (data older than {}){}",
        stale.len(),
        health.deployed().count(),
        age_text(a.stale_after.0),
        if health.orgs.iter().any(|o| !o.deployed) {
            "; \"other\": in the store but not in --orgs"
        } else {
            ""
        }
    );
    Ok(stale.is_empty())
}
