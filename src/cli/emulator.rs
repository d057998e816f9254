//! `emulator`: the Docker Hub stand-in as a server, until interrupted.

use std::sync::Arc;

use dockerhub_audit_emulator::{start_many, Emulator, EmulatorConfig, Fault};

use super::args::EmulatorArgs;
use crate::clock::SystemClock;

/// The configuration of the `index`-th org of `a.org`.
pub fn config(a: &EmulatorArgs, index: usize) -> Result<EmulatorConfig, String> {
    let org = a
        .org
        .get(index)
        .ok_or_else(|| format!("no org number {index} in --org"))?;
    let mut cfg = EmulatorConfig {
        org: org.clone(),
        username: org.clone(),
        secret: a.secret.clone(),
        events: a.events,
        days: a.days,
        seed: a.seed.wrapping_add(index as u64),
        page_cap: a.page_cap.max(1),
        token_ttl: a.token_ttl,
        rate_limit_per_minute: a.rate_limit,
        fractional_timestamps: a.fractional_timestamps,
        twin_fraction: a.twin_fraction,
        late_fraction: a.late_fraction,
        trickle_per_minute: a.trickle_per_minute,
        fault_rate: a.fault_rate,
        insert_while_paging: a.insert_while_paging,
        unstable_ties: a.unstable_ties,
        page_size_varies: a.page_size_varies,
        event_padding: a.event_padding,
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
    let clock = Arc::new(SystemClock);
    let emulators = (0..a.org.len())
        .map(|i| config(&a, i).map(|cfg| Emulator::new(cfg, clock.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    if a.burst_events > 0 {
        use chrono::DurationRound;
        let now = crate::clock::Clock::now(&SystemClock);
        let minute =
            now.duration_trunc(chrono::Duration::minutes(1)).unwrap_or(now) - chrono::Duration::minutes(3);
        for emu in &emulators {
            emu.add_identical_burst(minute, a.burst_events, chrono::Duration::minutes(1));
        }
    }
    if let Some(twice) = a.org.iter().enumerate().find(|(i, o)| a.org[..*i].contains(o)) {
        return Err(format!("--org names {} twice; name each org once", twice.1));
    }
    let running = start_many(emulators.clone(), a.port).await.map_err(|e| {
        format!(
            "cannot listen on 127.0.0.1:{}: {e}; choose another --port",
            a.port
        )
    })?;
    let orgs = a.org.join(", ");
    say!("Docker Hub emulator for {orgs} at {}", running.url());
    let first = &a.org[0];
    say!(
        "Try it: DOCKERHUB_USERNAME={first} DOCKERHUB_TOKEN=<the --secret value> dockerhub-audit poll --org {first} --hub-url {}",
        running.url()
    );
    say!("Ctrl-C stops it.");
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    for (org, emulator) in a.org.iter().zip(&emulators) {
        let s = emulator.stats();
        say!(
            "{org}: served {} list requests, {} token requests, {} throttled, {} faults",
            s.list_requests,
            s.token_requests,
            s.throttled,
            s.faults_served
        );
    }
    running.shutdown();
    Ok(())
}
