//! The watchdog against a real AWS emulator (moto, over HTTP): every org's checkpoint read
//! from DynamoDB in one Scan, its message published to an SNS topic and read back from a
//! queue subscribed to it, what it sent remembered in the table.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use common::aws::*;
use dockerhub_audit::checkpoint::dynamodb::DynamoCheckpoints;
use dockerhub_audit::checkpoint_model::LastRun;
use dockerhub_audit::clock::ManualClock;
use dockerhub_audit::notify::sns::SnsNotifier;
use dockerhub_audit::ports::{CheckpointIndex, Checkpoints};
use dockerhub_audit::types::{Org, RunId};
use dockerhub_audit::watch::{watch, WatchConfig};
use serde_json::{json, Value};

fn org(s: &str) -> Org {
    Org::new(s).unwrap()
}

fn run(at: DateTime<Utc>, error: Option<&str>, failures: u32) -> LastRun {
    LastRun {
        run_id: RunId(format!("run-{}", at.timestamp())),
        started_at: at - Duration::seconds(20),
        finished_at: at,
        events_written: 3,
        caught_up: error.is_none(),
        error: error.map(str::to_string),
        failures,
    }
}

/// Stores `o`'s checkpoint as a run under the lease would (a run whose clock reads `clock`),
/// and gives the lease back unless `keep`.
async fn put(store: &DynamoCheckpoints, o: &str, watermark: DateTime<Utc>, last: LastRun, keep: bool) {
    let (lease, mut cp) = store
        .acquire(&org(o), &RunId(format!("holder-{o}")))
        .await
        .unwrap()
        .unwrap();
    cp.watermark = Some(watermark);
    cp.last_run = Some(last);
    if keep {
        store.save(&lease, &mut cp).await.unwrap();
    } else {
        // A run's last save gives the lease up in the same write.
        store.save_and_release(lease, &mut cp).await.unwrap();
    }
}

/// The messages on the queue: (subject, message).
async fn messages(cfg: &aws_config::SdkConfig, queue: &str) -> Vec<(String, String)> {
    drain(cfg, queue)
        .await
        .into_iter()
        .map(|envelope: Value| {
            (
                envelope["Subject"].as_str().unwrap_or_default().to_string(),
                envelope["Message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_names_exactly_the_stale_orgs_once_per_change() {
    let cfg = sdk(&moto()).await;
    let table = unique("watch");
    create_table(&cfg, &table).await;
    let now = Utc::now();
    let clock = ManualClock::new(now);
    let store = DynamoCheckpoints::new(aws_sdk_dynamodb::Client::new(&cfg), &table)
        .with_clock(Arc::new(clock.clone()));
    // A run whose clock is a day ahead took the lease of `stuck` and died holding it.
    let ahead = DynamoCheckpoints::new(aws_sdk_dynamodb::Client::new(&cfg), &table)
        .with_clock(Arc::new(ManualClock::new(now + Duration::days(1))));

    put(
        &store,
        "fresh",
        now - Duration::minutes(2),
        run(now - Duration::minutes(1), None, 0),
        false,
    )
    .await;
    put(
        &store,
        "stale",
        now - Duration::hours(2),
        run(now - Duration::hours(2), None, 0),
        false,
    )
    .await;
    put(
        &store,
        "failing",
        now - Duration::minutes(50),
        run(
            now - Duration::minutes(1),
            Some("Docker Hub refused the credentials (401): put a valid token in the secret"),
            4,
        ),
        false,
    )
    .await;
    put(
        &ahead,
        "stuck",
        now - Duration::hours(3),
        run(now - Duration::hours(3), None, 0),
        true,
    )
    .await;
    put(
        &store,
        "retired",
        now - Duration::days(5),
        run(now - Duration::days(5), None, 0),
        false,
    )
    .await;
    // A checkpoint big enough to be split into chunk items: listed once, as its org.
    let (lease, mut cp) = store
        .acquire(&org("chunky"), &RunId("c".into()))
        .await
        .unwrap()
        .unwrap();
    cp.watermark = Some(now - Duration::minutes(4));
    cp.last_run = Some(run(now - Duration::minutes(3), None, 0));
    for i in 0..30_000u128 {
        let id = format!(
            "{:032x}",
            i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
        );
        cp.seen.insert(dockerhub_audit::types::EventId(id), now);
    }
    store.save(&lease, &mut cp).await.unwrap();
    store.release(lease).await.unwrap();
    let items = aws_sdk_dynamodb::Client::new(&cfg)
        .scan()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let chunks = items
        .items()
        .iter()
        .filter(|i| i["org"].as_s().is_ok_and(|k| k.starts_with("chunky#chunk#")))
        .count();
    assert!(chunks >= 1, "the big checkpoint is split into chunk items");

    // Released by the save itself: no lease recorded, and another run takes it at once.
    let item = aws_sdk_dynamodb::Client::new(&cfg)
        .get_item()
        .table_name(&table)
        .key("org", aws_sdk_dynamodb::types::AttributeValue::S("fresh".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(
        !item.contains_key("lease_owner") && item.contains_key("last_run"),
        "{item:?}"
    );
    let (lease, cp) = store
        .acquire(&org("fresh"), &RunId("next".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cp.watermark, Some(now - Duration::minutes(2)));
    store.release(lease).await.unwrap();

    let listed: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.org.to_string())
        .collect();
    assert_eq!(
        listed,
        ["chunky", "failing", "fresh", "retired", "stale", "stuck"]
    );

    let (topic, queue) = topic_to_queue(&cfg).await;
    let sns = SnsNotifier::new(&cfg, &topic).unwrap();
    let deployed: BTreeSet<Org> = ["chunky", "fresh", "stale", "never", "failing", "stuck"]
        .into_iter()
        .map(org)
        .collect();
    let wcfg = WatchConfig {
        deployed,
        stale_after: Duration::minutes(30),
        name: "dha-test".into(),
        window: None,
        deadline: None,
    };
    let report = watch(&store, Some(&sns), None, &wcfg, now).await.unwrap();
    let named: Vec<(&str, &str)> = report
        .stale
        .iter()
        .map(|s| (s.org.as_str(), s.why.kind()))
        .collect();
    assert_eq!(
        named,
        [
            ("failing", "failing"),
            ("never", "never_ran"),
            ("stale", "no_recent_run"),
            ("stuck", "lease_stuck")
        ]
    );
    assert_eq!(report.oldest_watermark_age, Some(3.0 * 3600.0));
    assert!(report.errors.is_empty(), "{report:?}");
    let doc = dockerhub_audit::lambda::metrics::watch_emf(now, Some(&report));
    assert_eq!(
        (doc["StaleOrgs"].clone(), doc["OldestWatermarkAge"].clone()),
        (json!(4), json!(10800.0))
    );

    let got = messages(&cfg, &queue).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let (subject, body) = &got[0];
    assert_eq!(subject, "dha-test: 4 stale orgs: failing, never, stale, stuck");
    for line in [
        "failing: its last 4 runs failed: Docker Hub refused the credentials (401)",
        "never: never ran",
        "stale: no run has finished since",
        "stuck: its lease is stuck: held by holder-stuck",
        "collect-never",
    ] {
        assert!(body.contains(line), "{line:?} not in:\n{body}");
    }
    for quiet in ["fresh", "retired", "chunky"] {
        assert!(!body.contains(&format!("{quiet}:")), "{quiet} named:\n{body}");
    }

    // A repeat watch: the same set, no message.
    let again = watch(&store, Some(&sns), None, &wcfg, now + Duration::minutes(10))
        .await
        .unwrap();
    assert_eq!(again.stale.len(), 4);
    assert_eq!(again.notified, None);
    assert!(messages(&cfg, &queue).await.is_empty());

    // `failing` recovers: one message naming the three left and the one collected again.
    let later = now + Duration::minutes(11);
    put(&store, "failing", later, run(later, None, 0), false).await;
    let changed = watch(&store, Some(&sns), None, &wcfg, later).await.unwrap();
    assert_eq!(changed.stale.len(), 3);
    let got = messages(&cfg, &queue).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "dha-test: 3 stale orgs: never, stale, stuck");
    assert!(
        got[0]
            .1
            .contains("Collected again since the last message: failing."),
        "{}",
        got[0].1
    );
    // The memory is in the table, beside the orgs, and is no org.
    let memory = store.memory().await.unwrap();
    assert_eq!(
        memory.stale.keys().map(Org::as_str).collect::<Vec<_>>(),
        ["never", "stale", "stuck"]
    );
    assert_eq!(store.list().await.unwrap().len(), 6);
}

/// The watch's cost over many orgs, for docs/aws.md's cost table: `cargo test --features
/// integration --test watch -- --ignored --nocapture` with moto running. Prints the items'
/// sizes, the Scan's pages, and the CPU and wall time of a watch (medians of 9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: run it by name with --ignored"]
async fn measure_a_watch_of_240_orgs() {
    let cfg = sdk(&moto()).await;
    let table = unique("watch-cost");
    create_table(&cfg, &table).await;
    let now = Utc::now();
    let store = DynamoCheckpoints::new(aws_sdk_dynamodb::Client::new(&cfg), &table);
    let orgs: BTreeSet<Org> = (0..240).map(|i| org(&format!("org-{i:03}"))).collect();
    for o in &orgs {
        let (lease, mut cp) = store.acquire(o, &RunId("seed".into())).await.unwrap().unwrap();
        cp.watermark = Some(now - Duration::minutes(3));
        cp.last_run = Some(run(now - Duration::minutes(2), None, 0));
        // An org of 2,000 events a day holds ~21 ids in a 15-minute overlap.
        for i in 0..21u128 {
            let id = format!(
                "{:064x}",
                (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
            );
            cp.seen.insert(dockerhub_audit::types::EventId(id), now);
        }
        store.save_and_release(lease, &mut cp).await.unwrap();
    }
    let raw = aws_sdk_dynamodb::Client::new(&cfg)
        .scan()
        .table_name(&table)
        .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
        .send()
        .await
        .unwrap();
    let bytes: usize = raw
        .items()
        .iter()
        .map(|i| {
            i.iter()
                .map(|(k, v)| {
                    k.len()
                        + match v {
                            aws_sdk_dynamodb::types::AttributeValue::S(s) => s.len(),
                            aws_sdk_dynamodb::types::AttributeValue::N(n) => n.len(),
                            aws_sdk_dynamodb::types::AttributeValue::B(b) => b.as_ref().len(),
                            _ => 8,
                        }
                })
                .sum::<usize>()
        })
        .sum();
    println!(
        "{} items, {} bytes each on average (DynamoDB's item size: names and values); one Scan page: {}",
        raw.items().len(),
        bytes / raw.items().len().max(1),
        raw.last_evaluated_key().is_none()
    );
    let wcfg = WatchConfig {
        deployed: orgs,
        stale_after: Duration::minutes(30),
        name: "cost".into(),
        window: None,
        deadline: None,
    };
    fn cpu_ms() -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks * 10.0
    }
    // CPU in ticks of 10 ms: measured over many watches.
    let mut wall = Vec::new();
    let c = cpu_ms();
    for _ in 0..25 {
        let w = std::time::Instant::now();
        let r = watch(&store, None, None, &wcfg, now).await.unwrap();
        wall.push(w.elapsed().as_secs_f64() * 1000.0);
        assert_eq!((r.orgs, r.stale.len()), (240, 0));
    }
    let cpu = (cpu_ms() - c) / 25.0;
    wall.sort_by(f64::total_cmp);
    println!(
        "a watch of 240 orgs: median {:.0} ms wall, {:.1} ms CPU of this process per watch (moto's own CPU not counted)",
        wall[12], cpu
    );
}
