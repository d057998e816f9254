//! `demo`: the whole pipeline offline. Starts the emulator in-process with three months of
//! events, a live trickle and a few faults, polls it several times (a backfill, then
//! incremental runs), and proves the output holds every event exactly once.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dockerhub_audit_emulator::{Emulator, EmulatorConfig, Fault};

use super::args::DemoArgs;
use super::poll::{run_once, summary};
use super::stores::Stores;
use crate::alert::{alert_id, Rules};
use crate::clock::SystemClock;
use crate::collect::Alerting;
use crate::config::PollConfig;
use crate::credentials::env::StaticCredentials;
use crate::event::{id::canonical, HubEvent};
use crate::hub::HubConfig;
use crate::inspect;
use crate::notify::lines::{JsonLines, LinesTo};
use crate::ports::Secret;
use crate::types::{rfc3339, Org};

const MARKER: &str = ".dockerhub-audit-demo";

pub async fn demo(a: DemoArgs) -> Result<(), String> {
    prepare(&a.dir)?;
    let org = Org::new("acme").map_err(|e| e.to_string())?;
    let (emulator, secret) = emulator(&org, a.events);
    let running = emulator
        .start(0)
        .await
        .map_err(|e| format!("cannot start the emulator: {e}"))?;
    say!(
        "Docker Hub emulator at {} with {} events over 90 days, a live trickle and 3% faults",
        running.url(),
        a.events
    );
    // The built-in alert rules, alerts as JSON lines beside the data.
    let rules = Rules::defaults();
    let alerts_file = a.dir.join("alerts.ndjson");
    let hub = HubConfig {
        base_url: url::Url::parse(&running.url()).map_err(|e| e.to_string())?,
        retry_base: Duration::from_millis(100),
        ..HubConfig::default()
    };
    let creds = Arc::new(StaticCredentials::new(org.to_string(), secret));
    let watermark = poll_three_times(&org, &a.dir, hub.clone(), creds.clone(), &rules, &alerts_file).await?;
    let compacted = verify_and_compact(&org, &a.dir, hub, creds).await?;
    let faults = emulator.stats();
    let proof = prove(&emulator, watermark, &a.dir, &rules, &alerts_file)?;
    running.shutdown();
    say!();
    say!(
        "Verified against the emulator up to {}: {} events expected, {} stored, {} missing, {} duplicated \
         (the emulator injected {} faults on the way: each cost a retry, none an event)",
        rfc3339(watermark),
        proof.events.expected,
        proof.events.stored,
        proof.events.missing,
        proof.events.extra,
        faults.faults_served + faults.throttled
    );
    say!(
        "Alerts ({} built-in rules): {} raised into {}, {} expected from the stored records, {} missing, {} repeated",
        rules.len(),
        proof.alerts.stored,
        alerts_file.display(),
        proof.alerts.expected,
        proof.alerts.missing,
        proof.alerts.extra
    );
    say!("Events per category:");
    for (category, n) in inspect::categories(&proof.records) {
        say!("  {category:<12} {n}");
    }
    let objects = inspect::objects(&a.dir).map_err(|e| e.to_string())?.len();
    let dir = a.dir.display();
    say!("The data: {objects} objects under {dir}/org=acme/dt=YYYY-MM-DD/ (gzip NDJSON)");
    say!(
        "Compacted: {compacted} closed days (verified complete, over a day old) into one Parquet object each under \
         {dir}/compacted/; queries read them in place of the raw objects, which stay as they are"
    );
    say!("Look at it:  zcat {dir}/org=acme/dt=*/*.json.gz | head -n 2");
    say!(
        "Query it:    duckdb -c \"SET VARIABLE output = '{dir}'\" -c \".read infra/duckdb/events.sql\" \
         -c \"SELECT category, count(*) FROM events GROUP BY 1\""
    );
    say!("Its state:   dockerhub-audit status --org acme --output {dir}");
    if !proof.events.exact() {
        return Err("the output does not match the emulator exactly; please report this".into());
    }
    if !proof.alerts.exact() {
        return Err("the alerts raised do not match the stored records exactly; please report this".into());
    }
    // The last picture: the trail's last 30 days as `status` draws them.
    let stores = local_stores(&a.dir);
    let cp = match stores.checkpoints().await {
        Ok(c) => crate::ports::Checkpoints::peek(&c, &org).await.ok().flatten(),
        Err(_) => None,
    };
    let to = watermark.date_naive();
    say!();
    if let Err(e) = super::poll::activity(
        &stores,
        &org,
        to - chrono::Duration::days(29),
        to,
        cp.as_ref().and_then(|c| c.verified.as_ref()),
    )
    .await
    {
        say!("activity:     cannot read the demo's output back: {e}");
    }
    Ok(())
}

/// A verify of the whole history (which records it as complete), then a compaction of the
/// closed days; how many were compacted.
async fn verify_and_compact(
    org: &Org,
    dir: &Path,
    hub: HubConfig,
    creds: Arc<StaticCredentials>,
) -> Result<usize, String> {
    let stores = local_stores(dir);
    let wired = super::poll::Wired::new(hub, creds, &stores).await?;
    let surface = stores
        .local_surface()
        .ok_or("the demo writes to a local folder")?;
    let checked = crate::compact::Checked(&surface);
    let cfg = PollConfig::new(org.clone());
    let now = crate::clock::Clock::now(&SystemClock);
    let range = crate::collect::verify::VerifyRange {
        from: now - chrono::Duration::days(91),
        until: None,
        repair: true,
    };
    let outcome = wired
        .service(None)
        .with_surface(&checked)
        .verify(&cfg, &range, None, &mut |_| {})
        .await;
    let report = match (outcome.report, outcome.failure) {
        (Some(r), None) => r,
        (_, Some(f)) => return Err(f.message),
        (None, None) => return Err("verify answered nothing".into()),
    };
    say!(
        "verify: {} days, {} events at Docker Hub, {} stored, {} missing, {} duplicated",
        report.days,
        report.at_docker_hub,
        report.stored,
        report.missing,
        report.duplicated
    );
    let compact = crate::compact::CompactConfig::new(org.clone());
    let r = crate::compact::compact(
        wired.sink.as_ref(),
        &surface,
        &wired.checkpoints,
        &SystemClock,
        &compact,
        None,
    )
    .await
    .map_err(|e| e.to_string())?;
    if !r.ok() {
        return Err(format!(
            "{} day(s) could not be compacted: {:?}",
            r.failed.len(),
            r.failed
        ));
    }
    Ok(r.compacted.len())
}

/// The demo's folder, for output and checkpoints.
fn local_stores(dir: &Path) -> Stores {
    Stores {
        output: dir.to_string_lossy().into_owned(),
        checkpoint: None,
        kms_key_id: None,
        lease_ttl: Duration::from_secs(60),
        glue_database: None,
    }
}

/// The demo's emulator: three months of events, a live trickle, 3% faults; and its secret.
fn emulator(org: &Org, events: usize) -> (Emulator, Secret) {
    let cfg = EmulatorConfig {
        org: org.to_string(),
        username: org.to_string(),
        events,
        days: 90,
        seed: 2026,
        twin_fraction: 0.02,
        trickle_per_minute: 600,
        fault_rate: 0.03,
        fault_kinds: vec![
            Fault::ServerError(503),
            Fault::TooManyRequests,
            Fault::Truncated,
            Fault::MalformedJson,
        ],
        ..EmulatorConfig::default()
    };
    let secret = Secret::new(cfg.secret.clone());
    (Emulator::new(cfg, Arc::new(SystemClock)), secret)
}

/// A backfill, then two incremental runs a few seconds apart, each summarised; the last
/// watermark.
async fn poll_three_times(
    org: &Org,
    dir: &Path,
    hub: HubConfig,
    creds: Arc<StaticCredentials>,
    rules: &Rules,
    alerts_file: &Path,
) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let stores = local_stores(dir);
    let mut cfg = PollConfig::new(org.clone());
    // The demo waits seconds, not minutes, between runs.
    cfg.lag = chrono::Duration::seconds(2);
    let lines = JsonLines::new(LinesTo::File(alerts_file.to_path_buf()));
    let alerting = Alerting { rules, out: &lines };
    let mut watermark = None;
    for (i, what) in ["backfill of 90 days", "incremental", "incremental"]
        .iter()
        .enumerate()
    {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        let ran = run_once(&cfg, hub.clone(), creds.clone(), &stores, Some(alerting)).await?;
        say!("run {} ({what}): {}", i + 1, summary(&ran));
        watermark = ran.report.watermark;
    }
    Ok(watermark.ok_or("the demo's runs set no watermark")?)
}

/// What the demo proves: the stored events against the emulator's, the alerts against the
/// stored records.
struct Proof {
    events: inspect::Comparison,
    alerts: inspect::Comparison,
    records: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// The emulator's events before the watermark against what was stored; one alert per
/// (rule, stored record) the rules match, none twice, against what was raised.
fn prove(
    emulator: &Emulator,
    watermark: chrono::DateTime<chrono::Utc>,
    output: &Path,
    rules: &Rules,
    alerts_file: &Path,
) -> Result<Proof, String> {
    let expected: Vec<String> = emulator
        .visible_events_before(watermark)
        .into_iter()
        .filter_map(|v| HubEvent::from_wire(v).ok())
        .map(|e| canonical(&e))
        .collect();
    let records =
        inspect::records(output).map_err(|e| format!("cannot read back {}: {e}", output.display()))?;
    let stored: Vec<String> = records.iter().filter_map(inspect::hub_canonical).collect();
    let want_alerts: Vec<String> = records
        .iter()
        .flat_map(|r| {
            let id = r.get("event_id").and_then(|v| v.as_str()).unwrap_or_default();
            rules.matching(r).map(move |rule| alert_id(&rule.id, id))
        })
        .collect();
    let got_alerts: Vec<String> = std::fs::read_to_string(alerts_file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["alert_id"].as_str().map(str::to_string))
        .collect();
    Ok(Proof {
        events: inspect::compare(&expected, &stored),
        alerts: inspect::compare(&want_alerts, &got_alerts),
        records,
    })
}

/// Makes `dir` an empty demo folder: creates it, or wipes an earlier demo there, but never
/// touches a folder that holds anything else.
fn prepare(dir: &Path) -> Result<(), String> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|e| e.to_string())?
            .next()
            .is_none();
        if !empty && !dir.join(MARKER).exists() {
            return Err(format!(
                "{} exists and is not an earlier demo's folder; choose another with --dir",
                dir.display()
            ));
        }
        std::fs::remove_dir_all(dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::write(dir.join(MARKER), b"made by dockerhub-audit demo\n").map_err(|e| e.to_string())?;
    Ok(())
}
