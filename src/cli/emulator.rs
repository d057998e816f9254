//! `emulator`: the Docker Hub stand-in as a server, until interrupted.

use std::sync::Arc;

use super::args::EmulatorArgs;
use crate::clock::SystemClock;
use crate::emulator::{Emulator, EmulatorConfig, Fault};

pub fn config(a: &EmulatorArgs) -> Result<EmulatorConfig, String> {
    let mut cfg = EmulatorConfig {
        org: a.org.clone(),
        username: a.org.clone(),
        secret: a.secret.clone(),
        events: a.events,
        days: a.days,
        seed: a.seed,
        page_cap: a.page_cap.max(1),
        token_ttl: a.token_ttl,
        rate_limit_per_minute: a.rate_limit,
        fractional_timestamps: a.fractional_timestamps,
        twin_fraction: a.twin_fraction,
        late_fraction: a.late_fraction,
        trickle_per_minute: a.trickle_per_minute,
        fault_rate: a.fault_rate,
        insert_while_paging: a.insert_while_paging,
        ..EmulatorConfig::default()
    };
    if !a.faults.is_empty() {
        cfg.fault_kinds = a
            .faults
            .iter()
            .map(|f| {
                f.parse::<Fault>()
                    .map_err(|_| format!("unknown fault kind {f:?}; see --help"))
            })
            .collect::<Result<_, _>>()?;
    }
    Ok(cfg)
}

pub async fn serve(a: EmulatorArgs) -> Result<(), String> {
    let cfg = config(&a)?;
    let emulator = Emulator::new(cfg, Arc::new(SystemClock));
    let running = emulator.start(a.port).await.map_err(|e| {
        format!(
            "cannot listen on 127.0.0.1:{}: {e}; choose another --port",
            a.port
        )
    })?;
    println!(
        "Docker Hub emulator for organization {:?} at {}",
        a.org,
        running.url()
    );
    println!(
        "Try it: DOCKERHUB_USERNAME={} DOCKERHUB_TOKEN=<the --secret value> dockerhub-audit poll --org {} --hub-url {}",
        a.org,
        a.org,
        running.url()
    );
    println!("Ctrl-C stops it.");
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    let s = emulator.stats();
    println!(
        "served {} list requests, {} token requests, {} throttled, {} faults",
        s.list_requests, s.token_requests, s.throttled, s.faults_served
    );
    running.shutdown();
    Ok(())
}
