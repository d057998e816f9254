//! The whole pipeline in one process with the real adapters: the Docker Hub client over
//! real HTTP against the emulator, checkpoint files, the local output folder. The clock is
//! a manual one shared with the emulator, so every scenario is deterministic.

mod common;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use common::gate;
use common::*;
use dockerhub_audit::clock::{Clock, ManualClock};
use dockerhub_audit::collect::CollectError;
use dockerhub_audit::inspect;
use dockerhub_audit::ports::HubError;
use dockerhub_audit_emulator::Fault;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_of_many_pages_then_incremental_runs_store_each_event_once() {
    for (seed, cap, fractional) in [(11u64, 30u32, false), (12, 100, true)] {
        let clock = ManualClock::new(t0());
        let mut cfg = emulator_config(2500, 90, seed);
        cfg.page_cap = cap;
        cfg.twin_fraction = 0.05;
        cfg.fractional_timestamps = fractional;
        cfg.trickle_per_minute = 30;
        let (emu, hub) = start(cfg, Arc::new(clock.clone())).await;
        let dir = tempfile::tempdir().unwrap();
        let c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
        let mut pc = poll_config(90);
        pc.batch_events = 400;
        let r = run(&c, &clock, dir.path(), &pc).await.unwrap();
        assert!(r.caught_up);
        assert!(r.events_written >= 2500, "{}", r.events_written);
        assert_exact(&expected(&emu, t0() - pc.lag), dir.path());
        for _ in 0..3 {
            clock.advance(Duration::minutes(5));
            run(&c, &clock, dir.path(), &pc).await.unwrap();
        }
        let end = clock.now() - pc.lag;
        let want = expected(&emu, end);
        assert!(
            want.len() > 2500 + 300,
            "the trickle added events: {}",
            want.len()
        );
        assert_exact(&want, dir.path());
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_edges_same_second_crowds_and_midnight() {
    // Noon; the first window ends at 11:59:00 (lag 1m).
    let clock = ManualClock::new(t0());
    let mut cfg = emulator_config(0, 1, 13);
    cfg.page_cap = 10;
    let (emu, hub) = start(cfg, Arc::new(clock.clone())).await;
    let ev = |ts: &str, tag: &str| json!({"account": "acme", "action": "repo.tag.push", "timestamp": ts, "data": {"tag": tag}});
    let add = |ts: &str, tag: &str| emu.add_event(ev(ts, tag), at("2026-11-24T00:00:00Z"));
    add("2026-11-25T11:59:00Z", "exactly-at-the-end"); // not before the end: next run
    add("2026-11-25T11:58:59Z", "last-second-in");
    add("2026-11-25T11:58:59.999Z", "last-second-in-fraction");
    add("2026-11-24T23:59:59Z", "before-midnight");
    add("2026-11-25T00:00:00Z", "at-midnight");
    add("2026-11-24T12:00:00Z", "exactly-at-lookback-start");
    add("2026-11-24T11:59:59Z", "before-lookback");
    // 25 identical events in one second: more than two pages of the server's 10.
    for _ in 0..25 {
        add("2026-11-25T06:00:00Z", "crowd");
    }
    // 35 distinct ones in the next second.
    for i in 0..35 {
        add("2026-11-25T06:00:01Z", &format!("busy-{i}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    let pc = poll_config(1);
    run(&c, &clock, dir.path(), &pc).await.unwrap();
    let records = inspect::records(dir.path()).unwrap();
    let tags: Vec<String> = records
        .iter()
        .map(|r| r["data"]["tag"].as_str().unwrap().to_string())
        .collect();
    assert!(!tags.contains(&"exactly-at-the-end".to_string()));
    assert!(!tags.contains(&"before-lookback".to_string()));
    for t in [
        "last-second-in",
        "last-second-in-fraction",
        "before-midnight",
        "at-midnight",
        "exactly-at-lookback-start",
    ] {
        assert_eq!(tags.iter().filter(|x| *x == t).count(), 1, "{t}");
    }
    assert_eq!(tags.iter().filter(|x| *x == "crowd").count(), 25);
    assert_eq!(tags.iter().filter(|x| x.starts_with("busy-")).count(), 35);
    // Partitioned by the event's own date: the midnight pair lands in two objects.
    for path in inspect::objects(dir.path()).unwrap() {
        let dt = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_start_matches("dt=")
            .to_string();
        let body = std::fs::read(&path).unwrap();
        for r in dockerhub_audit::event::encode::decode(&body).unwrap() {
            assert!(
                r["timestamp"].as_str().unwrap().starts_with(&dt),
                "{} in dt={dt}",
                r["timestamp"]
            );
        }
    }
    assert!(
        dir.path().join("org=acme/dt=2026-11-24").is_dir()
            && dir.path().join("org=acme/dt=2026-11-25").is_dir()
    );

    // The next run takes the event at the old end exactly once; a wider overlap later
    // cannot reach past what is remembered, so it cannot double anything.
    clock.advance(Duration::minutes(5));
    run(&c, &clock, dir.path(), &pc).await.unwrap();
    let mut wide = pc.clone();
    wide.overlap = Duration::hours(3);
    clock.advance(Duration::minutes(5));
    run(&c, &clock, dir.path(), &wide).await.unwrap();
    let mut want = expected(&emu, clock.now() - pc.lag);
    want.retain(|e| !e.contains("before-lookback"));
    assert_exact(&want, dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_events_inside_the_overlap_are_caught() {
    let clock = ManualClock::new(t0());
    let mut cfg = emulator_config(400, 1, 14);
    cfg.late_fraction = 0.3;
    cfg.late_max = Duration::minutes(10);
    cfg.trickle_per_minute = 10;
    let (emu, hub) = start(cfg, Arc::new(clock.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    let pc = poll_config(1);
    for _ in 0..8 {
        run(&c, &clock, dir.path(), &pc).await.unwrap();
        clock.advance(Duration::minutes(5));
    }
    run(&c, &clock, dir.path(), &pc).await.unwrap();
    let want = expected(&emu, clock.now() - pc.lag);
    let late_ones = emu.all_events().len() - emu.visible_events_before(t0() + Duration::days(1)).len();
    assert_eq!(late_ones, 0, "every late event has become visible by now");
    assert_exact(&want, dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_faults_cost_retries_never_events() {
    let clock = ManualClock::new(t0());
    let mut cfg = emulator_config(1200, 30, 15);
    cfg.page_cap = 50;
    cfg.fault_rate = 0.3;
    cfg.fault_kinds = vec![
        Fault::ServerError(500),
        Fault::ServerError(503),
        Fault::TooManyRequests,
        Fault::Truncated,
        Fault::MalformedJson,
        Fault::WrongTypes,
        Fault::InvalidUtf8,
        Fault::ExpireToken,
    ];
    cfg.retry_after = dockerhub_audit_emulator::RetryAfterForm::Seconds;
    let (emu, hub) = start(cfg, Arc::new(clock.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    let pc = poll_config(30);
    // A run may still fail if one request draws faults six times in a row, or an expired
    // token twice (a second 401 on a fresh token is taken for bad credentials, as
    // hub_client.rs tests; nearly a third of seeds draw that): then the next run goes on
    // from the checkpoint, as in production.
    let mut runs = 0;
    loop {
        runs += 1;
        match run(&c, &clock, dir.path(), &pc).await {
            Ok(r) if r.caught_up => break,
            Ok(_) => {}
            Err(f) => assert!(
                f.error.is_transient() || matches!(f.error, CollectError::Hub(HubError::Auth(_))),
                "{}",
                f.error
            ),
        }
        assert!(runs < 10, "no progress");
        c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    }
    assert!(
        emu.stats().faults_served >= 8,
        "faults were served: {:?}",
        emu.stats()
    );
    assert_exact(&expected(&emu, t0() - pc.lag), dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_landing_while_paging_are_never_doubled() {
    let clock = ManualClock::new(t0());
    let mut cfg = emulator_config(800, 5, 16);
    cfg.page_cap = 20;
    cfg.insert_while_paging = 15;
    let (emu, hub) = start(cfg, Arc::new(clock.clone())).await;
    let originals = expected(&emu, t0());
    let dir = tempfile::tempdir().unwrap();
    let c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    run(&c, &clock, dir.path(), &poll_config(5)).await.unwrap();
    let stored = stored(dir.path());
    // Every original once; inserted ones at most once (those behind the reader and older
    // than the overlap are, by contract, late beyond what is caught).
    let all_now = expected(&emu, t0());
    assert!(
        all_now.len() > originals.len(),
        "events were inserted while paging"
    );
    let cmp_all = inspect::compare(&all_now, &stored);
    assert_eq!(
        cmp_all.extra, 0,
        "nothing stored that the API does not hold, nothing doubled"
    );
    let cmp_orig = inspect::compare(&originals, &stored);
    assert_eq!(
        cmp_orig.missing, 0,
        "every event present before the run is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_mid_backfill_is_replaced() {
    let clock = ManualClock::new(t0());
    let mut cfg = emulator_config(1500, 60, 17);
    cfg.page_cap = 25;
    let (emu, hub) = start(cfg, Arc::new(clock.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    // Halfway through, eleven minutes pass: the token's exp is behind.
    let watcher = {
        let (emu, clock) = (emu.clone(), clock.clone());
        tokio::spawn(async move {
            while emu.stats().list_requests < 30 {
                tokio::task::yield_now().await;
            }
            clock.advance(Duration::minutes(11));
        })
    };
    let mut pc = poll_config(60);
    pc.lag = Duration::minutes(12); // so the moved clock adds no new window
    run(&c, &clock, dir.path(), &pc).await.unwrap();
    watcher.await.unwrap();
    let s = emu.stats();
    assert_eq!(s.token_requests, 2, "{s:?}");
    assert!(s.list_requests > 30);
    assert_exact(&expected(&emu, t0() - pc.lag), dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_bounded_by_the_batch_not_the_backlog() {
    let clock = ManualClock::new(t0());
    let (emu, hub) = start(emulator_config(3000, 90, 18), Arc::new(clock.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    let mut pc = poll_config(90);
    pc.batch_events = 250;
    let r = run(&c, &clock, dir.path(), &pc).await.unwrap();
    // Each commit holds at most one batch (plus the window that filled it): the run made
    // at least backlog / batch commits, and no object exceeds a batch and a page.
    let objects = inspect::objects(dir.path()).unwrap();
    assert!(
        r.objects_written as usize == objects.len() && objects.len() >= 3000 / 350,
        "{}",
        objects.len()
    );
    for o in objects {
        let n = dockerhub_audit::event::encode::decode(&std::fs::read(&o).unwrap())
            .unwrap()
            .len();
        assert!(n <= 250 + 100, "{n} events in one object");
    }
    assert_exact(&expected(&emu, t0() - pc.lag), dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_that_keeps_answering_garbage_stops_the_run_loudly_and_moves_nothing() {
    let clock = ManualClock::new(t0());
    let (emu, hub) = start(emulator_config(200, 3, 19), Arc::new(clock.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    let pc = poll_config(3);
    for fault in [Fault::WrongTypes, Fault::InvalidUtf8, Fault::MalformedJson] {
        emu.push_faults(std::iter::repeat_n(fault.clone(), 6));
        let failed = run(&c, &clock, dir.path(), &pc).await.unwrap_err();
        let msg = failed.error.to_string();
        assert!(
            msg.contains("malformed response") && msg.contains("next run"),
            "{fault:?}: {msg}"
        );
        assert_eq!(failed.report.events_written, 0);
        assert!(
            stored(dir.path()).is_empty(),
            "{fault:?}: nothing stored from a bad page"
        );
        let cp = dockerhub_audit::checkpoint::file::FileCheckpoints::new(dir.path().join("_checkpoints"));
        use dockerhub_audit::ports::Checkpoints;
        let cp = cp.peek(&org()).await.unwrap().unwrap();
        assert_eq!(cp.watermark, None, "{fault:?}: the watermark did not move");
        assert!(cp.last_run.unwrap().error.unwrap().contains("malformed"));
    }
    run(&c, &clock, dir.path(), &pc).await.unwrap();
    assert_exact(&expected(&emu, t0() - pc.lag), dir.path());
}

/// On local files the lease is an OS lock, which a stalled run keeps: whatever step it
/// stalls at, a second run finds the org held and does nothing (or, before the stalled
/// run's acquire or after its release, works), and the stalled one then finishes. Every
/// event lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stalled_at_any_step_on_local_files_doubles_nothing() {
    use dockerhub_audit::checkpoint::file::FileCheckpoints;
    use dockerhub_audit::collect::Poller;
    use dockerhub_audit::sink::local::LocalSink;
    let mut steps = 0;
    for at in 0..100u32 {
        let base = ManualClock::new(t0());
        let mut ecfg = emulator_config(120, 1, 400 + u64::from(at));
        ecfg.page_cap = 20;
        let (emu, hub) = start(ecfg, Arc::new(base.clone())).await;
        let c = client(&hub.url(), Arc::new(base.clone()), SECRET);
        let dir = tempfile::tempdir().unwrap();
        let mut pc = poll_config(2);
        pc.batch_events = 40;
        // Windows of about 30 events: several commits, many steps to stall at.
        pc.read_events = 60;
        let gate = gate::Gate::new(at, at % 2 == 1);
        let a = gate::Gated {
            store: FileCheckpoints::new(dir.path().join("_checkpoints")),
            sink: LocalSink::new(dir.path()),
            gate: &gate,
        };
        let run_a = Poller {
            api: &c,
            checkpoints: &a,
            sink: &a,
            clock: &base,
            alerts: None,
            page_sizes: None,
            surface: None,
        };
        let reached = gate::stall_while(
            &gate,
            async {
                run_a.run(&pc, None).await.unwrap();
            },
            async {
                base.advance(Duration::minutes(12));
                // Between its acquire and its release the stalled run holds the OS lock, and
                // this run does nothing; before or after, this one works.
                run(&c, &base, dir.path(), &pc).await.unwrap();
            },
        )
        .await;
        base.advance(Duration::minutes(5));
        run(&c, &base, dir.path(), &pc).await.unwrap();
        assert_exact(&expected(&emu, base.now() - pc.lag), dir.path());
        hub.shutdown();
        if !reached {
            break;
        }
        steps += 1;
    }
    assert!(steps >= 10, "a run of three commits has more steps than {steps}");
}

/// One bad item does not stop an org: items that are not readable events are kept verbatim
/// in `_quarantine/`, counted once, and everything else is stored; later runs move on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_items_are_quarantined_and_the_rest_is_stored() {
    let clock = ManualClock::new(t0());
    let mut cfg = emulator_config(600, 10, 21);
    cfg.page_cap = 25;
    let (emu, hub) = start(cfg, Arc::new(clock.clone())).await;
    let bad = [
        json!({"account": "acme", "action": "repo.tag.push", "name": "acme/api"}),
        json!("not an object"),
        json!({"account": "acme", "action": 5, "timestamp": "2026-11-20T10:00:00Z"}),
        json!({"account": "acme", "action": "org.member.add", "timestamp": "yesterday"}),
    ];
    for (i, item) in bad.iter().enumerate() {
        // The first inside the overlap that later runs read again.
        let at = match i {
            0 => t0() - Duration::minutes(5),
            _ => t0() - Duration::days(i as i64) - Duration::minutes(7),
        };
        emu.add_unreadable(item.clone(), at, at);
    }
    let dir = tempfile::tempdir().unwrap();
    let c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    let pc = poll_config(11);
    let r = run(&c, &clock, dir.path(), &pc).await.unwrap();
    assert!(r.caught_up, "{r:?}");
    assert_eq!(r.events_quarantined, bad.len() as u64);
    assert_exact(&expected(&emu, clock.now() - pc.lag), dir.path());

    // Each item verbatim, with a reason, outside every partition the queries read.
    let quarantine = dir.path().join("_quarantine/org=acme");
    let mut kept: Vec<serde_json::Value> = std::fs::read_dir(&quarantine)
        .unwrap()
        .map(|e| {
            let body = std::fs::read(e.unwrap().path()).unwrap();
            let recs = dockerhub_audit::event::encode::decode(&body).unwrap();
            assert_eq!(recs.len(), 1);
            let (reason, item) = dockerhub_audit::collect::quarantine::read(&recs[0]).unwrap();
            assert!(!reason.is_empty());
            item
        })
        .collect();
    let mut want = bad.to_vec();
    kept.sort_by_key(|v| v.to_string());
    want.sort_by_key(|v| v.to_string());
    assert_eq!(kept, want);

    // Later runs read the overlap again: nothing counted twice, nothing stuck.
    for _ in 0..2 {
        clock.advance(Duration::minutes(5));
        let r = run(&c, &clock, dir.path(), &pc).await.unwrap();
        assert!(r.caught_up);
        assert_eq!(r.events_quarantined, 0);
    }
    let cp = dockerhub_audit::checkpoint::file::FileCheckpoints::new(dir.path().join("_checkpoints"));
    use dockerhub_audit::ports::Checkpoints;
    assert_eq!(
        cp.peek(&org()).await.unwrap().unwrap().quarantined,
        bad.len() as u64
    );
    assert_exact(&expected(&emu, clock.now() - pc.lag), dir.path());
}

/// A server that orders the events of one second differently on every page (SQL
/// `LIMIT/OFFSET` over equal keys) serves crowded seconds as pages that overlap and miss.
/// The client reads them exactly (one action at a time when the pages disagree), or fails
/// loudly; it never stores a wrong multiset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crowded_seconds_under_unstable_tie_order_are_exact_or_loud() {
    for (seed, twins) in [(31u64, false), (32, true)] {
        let clock = ManualClock::new(t0());
        let mut cfg = emulator_config(400, 2, seed);
        cfg.page_cap = 25;
        cfg.unstable_ties = true;
        let (emu, hub) = start(cfg, Arc::new(clock.clone())).await;
        // Three crowded seconds of distinct events (several actions), and one with twins.
        for (k, second) in [30i64, 95, 170].iter().enumerate() {
            let at = dockerhub_audit::types::rfc3339(t0() - Duration::minutes(*second));
            for i in 0..70 {
                let action = ["repo.tag.push", "org.member.add", "repo.create"][i % 3];
                let copy = if twins && k == 0 { i % 10 } else { i };
                emu.add_event(
                    json!({"account": "acme", "action": action, "actor": "bulk", "data": {"n": copy.to_string()}, "timestamp": at}),
                    t0() - Duration::hours(4),
                );
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
        let pc = poll_config(3);
        match run(&c, &clock, dir.path(), &pc).await {
            Ok(r) => {
                assert!(r.caught_up, "{r:?}");
                assert_exact(&expected(&emu, clock.now() - pc.lag), dir.path());
            }
            Err(f) => {
                assert!(
                    f.error.to_string().contains("could not be read exactly"),
                    "{}",
                    f.error
                );
                assert_no_wrong_event(&expected(&emu, clock.now() - pc.lag), dir.path());
            }
        }
        hub.shutdown();
    }
}

/// A server whose page size wanders from page to page (offsets following it): pages of one
/// query disagree about where each starts. Exact, or loud with nothing wrong stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_varying_size_give_exact_or_loud_results() {
    for (seed, varies, crowded) in [(41u64, 3u32, true), (42, 12, true), (43, 12, false)] {
        let clock = ManualClock::new(t0());
        let mut cfg = emulator_config(1500, 5, seed);
        cfg.page_cap = 30;
        cfg.page_size_varies = varies;
        let (emu, hub) = start(cfg, Arc::new(clock.clone())).await;
        let at = dockerhub_audit::types::rfc3339(t0() - Duration::hours(3));
        for i in 0..if crowded { 50 } else { 0 } {
            emu.add_event(
                json!({"account": "acme", "action": "repo.tag.push", "data": {"n": i.to_string()}, "timestamp": at}),
                t0() - Duration::hours(3),
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
        let pc = poll_config(6);
        match run(&c, &clock, dir.path(), &pc).await {
            Ok(r) => {
                assert!(r.caught_up, "{r:?}");
                assert_exact(&expected(&emu, clock.now() - pc.lag), dir.path());
            }
            // Every window that fits in a page is read exactly however the sizes wander (by
            // less than half); only a crowded second can be beyond settling.
            Err(f) if crowded => {
                assert!(
                    f.error.to_string().contains("could not be read exactly"),
                    "{}",
                    f.error
                );
                assert_no_wrong_event(&expected(&emu, clock.now() - pc.lag), dir.path());
            }
            Err(f) => panic!("windows that fit in a page must be read exactly: {}", f.error),
        }
        hub.shutdown();
    }
}

/// Docker Hub down for three hours (every list request a 503) while new events keep coming:
/// the runs in between fail loudly and move nothing; the first run after it catches the
/// whole backlog up within its deadline, inside the rate limit, each event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_hours_of_outage_one_run_catches_up_within_the_rate_limit() {
    let clock = ManualClock::new(t0());
    let mut cfg = emulator_config(800, 5, 61);
    cfg.trickle_per_minute = 12;
    cfg.rate_limit_per_minute = Some(180);
    let (emu, hub) = start(cfg, Arc::new(clock.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    let pc = poll_config(6);
    run(&c, &clock, dir.path(), &pc).await.unwrap();
    let before = dockerhub_audit::checkpoint::file::FileCheckpoints::new(dir.path().join("_checkpoints"));
    use dockerhub_audit::ports::Checkpoints;
    let watermark = before.peek(&org()).await.unwrap().unwrap().watermark;

    // Three hours of 503s, a run every 5 minutes, each failing without moving anything.
    emu.set_outage(Some(Fault::ServerError(503)));
    for _ in 0..36 {
        clock.advance(Duration::minutes(5));
        let failed = run(&c, &clock, dir.path(), &pc).await.unwrap_err();
        assert!(failed.error.is_transient(), "{}", failed.error);
        assert_eq!(before.peek(&org()).await.unwrap().unwrap().watermark, watermark);
    }
    emu.set_outage(None);
    // Back up: one run, a 4-minute deadline, catches up 3 hours (about 2,200 events).
    clock.advance(Duration::minutes(5));
    let throttled_before = emu.stats().throttled;
    let p = dockerhub_audit::collect::Poller {
        api: &c,
        checkpoints: &before,
        sink: &dockerhub_audit::sink::local::LocalSink::new(dir.path()),
        clock: &clock,
        alerts: None,
        page_sizes: None,
        surface: None,
    };
    let r = p
        .run(&pc, Some(clock.now() + Duration::minutes(4)))
        .await
        .unwrap();
    assert!(r.caught_up, "{r:?}");
    assert!(r.events_written > 2000, "{r:?}");
    assert_eq!(emu.stats().throttled, throttled_before, "no 429 on the way");
    assert_exact(&expected(&emu, clock.now() - pc.lag), dir.path());
}

/// An existing deployment upgrades in place: a checkpoint as the code of `4d72f06` (before
/// the service and the collect restructure) writes it, with a pending commit, an alert
/// outbox and a last error, is read by this code field for field, and written back the same.
/// (The model's file, `src/checkpoint_model.rs`, is unchanged since that commit.)
#[tokio::test]
async fn a_checkpoint_written_before_the_restructure_reads_back_unchanged() {
    use dockerhub_audit::checkpoint::file::FileCheckpoints;
    use dockerhub_audit::ports::Checkpoints;
    let fixture = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoint-4d72f06.json"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("_checkpoints")).unwrap();
    std::fs::write(dir.path().join("_checkpoints/acme.json"), &fixture).unwrap();
    let store = FileCheckpoints::new(dir.path().join("_checkpoints"));
    let cp = store
        .peek(&org())
        .await
        .unwrap()
        .expect("the old checkpoint is read");
    assert_eq!(cp.version, 41);
    assert_eq!(cp.seen.len(), 3);
    let intent = cp.pending.as_ref().expect("its pending commit");
    assert_eq!(intent.objects.len(), 2);
    assert_eq!(intent.objects[0].alerts, 1);
    assert_eq!(cp.alerts_pending.len(), 1);
    assert_eq!(cp.output.as_deref(), Some("s3://audit-bucket/dockerhub-audit"));
    assert!(cp
        .last_run
        .as_ref()
        .unwrap()
        .error
        .as_deref()
        .unwrap()
        .contains("HTTP 503"));
    let back = serde_json::to_value(&cp).unwrap();
    let old: serde_json::Value = serde_json::from_str(&fixture).unwrap();
    assert_eq!(back, old, "nothing of the old checkpoint is lost or renamed");
}
