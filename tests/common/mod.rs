//! Shared by the end-to-end tests: the emulator over real HTTP on 127.0.0.1, the real
//! adapters, and multiset comparison of what landed against what the emulator holds.
#![allow(dead_code)] // each test binary uses its own part

/// moto and ministack through the real SDK clients.
pub mod aws;
/// A fault proxy between the SDK and the AWS emulator.
pub mod proxy;
/// The failpoint of the drills (it lives with the crate's test support).
#[allow(unused_imports)]
pub use dockerhub_audit::testkit::gate;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dockerhub_audit::checkpoint::file::FileCheckpoints;
use dockerhub_audit::clock::{Clock, ManualClock};
use dockerhub_audit::collect::server_memory::ServerMemory;
use dockerhub_audit::collect::{Poller, RunFailed, RunReport};
use dockerhub_audit::config::PollConfig;
use dockerhub_audit::credentials::env::StaticCredentials;
use dockerhub_audit::event::{id::canonical, HubEvent};
use dockerhub_audit::hub::{HubClient, HubConfig};
use dockerhub_audit::inspect;
use dockerhub_audit::ports::Secret;
use dockerhub_audit::sink::local::LocalSink;
use dockerhub_audit::types::Org;
use dockerhub_audit_emulator::{Emulator, EmulatorConfig, RunningEmulator};

pub const SECRET: &str = "dckr_oat_test_secret_value";

pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub fn org() -> Org {
    Org::new("acme").unwrap()
}

pub fn emulator_config(events: usize, days: u32, seed: u64) -> EmulatorConfig {
    EmulatorConfig {
        org: "acme".into(),
        username: "acme".into(),
        secret: SECRET.into(),
        events,
        days,
        seed,
        // Exact counts in tests; the scenarios that want twins turn them on.
        twin_fraction: 0.0,
        ..EmulatorConfig::default()
    }
}

/// The emulator's clock is its own trait; the product's clocks implement it too.
pub async fn start(
    cfg: EmulatorConfig,
    clock: Arc<dyn dockerhub_audit_emulator::Clock>,
) -> (Emulator, RunningEmulator) {
    let emu = Emulator::new(cfg, clock);
    let running = emu.start(0).await.expect("emulator starts");
    (emu, running)
}

/// A Hub client for tests: real HTTP, fast retries.
pub fn client(url: &str, clock: Arc<dyn Clock>, secret: &str) -> HubClient {
    let cfg = HubConfig {
        base_url: url::Url::parse(url).unwrap(),
        retry_base: Duration::from_millis(5),
        retry_cap: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
        ..HubConfig::default()
    };
    let creds = Arc::new(StaticCredentials::new("acme", Secret::new(secret)));
    HubClient::new(cfg, creds, clock).unwrap()
}

pub fn poll_config(lookback_days: i64) -> PollConfig {
    let mut c = PollConfig::new(org());
    c.lookback = chrono::Duration::days(lookback_days);
    c
}

/// One run of the poller with the real adapters: Hub client over HTTP, checkpoint file,
/// local output folder.
pub async fn run(
    client: &HubClient,
    clock: &ManualClock,
    dir: &Path,
    cfg: &PollConfig,
) -> Result<RunReport, RunFailed> {
    run_warm(client, &ServerMemory::default(), clock, dir, cfg).await
}

/// [`run`] in a warm process: `memory` keeps what earlier runs learned of the server's
/// page size, as a warm Lambda keeps it per org.
pub async fn run_warm(
    client: &HubClient,
    memory: &ServerMemory,
    clock: &ManualClock,
    dir: &Path,
    cfg: &PollConfig,
) -> Result<RunReport, RunFailed> {
    let checkpoints = FileCheckpoints::new(dir.join("_checkpoints"));
    let sink = LocalSink::new(dir);
    let poller = Poller {
        api: client,
        checkpoints: &checkpoints,
        sink: &sink,
        clock,
        alerts: None,
        page_sizes: Some(memory),
        surface: None,
    };
    poller.run(cfg, None).await
}

/// Canonical forms of the emulator's events visible now with a timestamp before `before`
/// (items that are not readable events belong in the quarantine, not here).
pub fn expected(emu: &Emulator, before: DateTime<Utc>) -> Vec<String> {
    emu.visible_events_before(before)
        .into_iter()
        .filter_map(|v| HubEvent::from_wire(v).ok())
        .map(|e| canonical(&e))
        .collect()
}

/// Canonical forms of every stored record's Hub fields.
pub fn stored(dir: &Path) -> Vec<String> {
    inspect::records(dir)
        .unwrap()
        .iter()
        .map(|r| inspect::hub_canonical(r).expect("a stored record is a valid event"))
        .collect()
}

/// Every event expected is stored exactly as many times as expected, nothing else, and no
/// event_id repeats.
pub fn assert_exact(expected: &[String], dir: &Path) {
    let stored = stored(dir);
    let cmp = inspect::compare(expected, &stored);
    assert!(cmp.exact(), "output differs from the emulator: {cmp:?}");
    assert_no_id_twice(dir);
}

/// No `event_id` is stored twice.
pub fn assert_no_id_twice(dir: &Path) {
    let mut ids: Vec<String> = inspect::records(dir)
        .unwrap()
        .iter()
        .map(|r| r["event_id"].as_str().unwrap().to_string())
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "an event_id is stored twice");
}

/// What is stored is part of what was expected (a multiset), with no event_id twice: a run
/// that stopped loudly left nothing wrong behind.
pub fn assert_no_wrong_event(expected: &[String], dir: &Path) {
    let mut left: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for e in expected {
        *left.entry(e.as_str()).or_default() += 1;
    }
    for s in stored(dir) {
        let n = left
            .get_mut(s.as_str())
            .unwrap_or_else(|| panic!("stored an event the API does not hold: {s}"));
        assert!(*n > 0, "stored more copies than the API holds: {s}");
        *n -= 1;
    }
    assert_no_id_twice(dir);
}
