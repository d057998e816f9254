//! The watchdog over the local checkpoint store, with a recording notifier and dispatcher.
//! (The same over DynamoDB and SNS on moto: tests/aws.rs.)

use std::collections::BTreeSet;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::checkpoint::file::FileCheckpoints;
use crate::checkpoint_model::{Checkpoint, LastRun};
use crate::ports::{
    AlertError, CheckpointIndex, Checkpoints, Dispatcher, Job, LeaseHold, Notifier, OrgState,
};
use crate::types::{Org, RunId};

#[derive(Default)]
struct Inbox(Mutex<Vec<(String, String)>>, Mutex<bool>);

#[async_trait]
impl Notifier for Inbox {
    async fn notify(&self, subject: &str, message: &str) -> Result<(), AlertError> {
        if *self.1.lock().unwrap() {
            return Err(AlertError("the topic is down".into()));
        }
        self.0.lock().unwrap().push((subject.into(), message.into()));
        Ok(())
    }
}

#[derive(Default)]
struct Started(Mutex<Vec<Job>>);

#[async_trait]
impl Dispatcher for Started {
    async fn start(&self, job: &Job) -> Result<(), String> {
        self.0.lock().unwrap().push(job.clone());
        Ok(())
    }
}

/// The watch of deployment `dha` over `deployed`, stale after 30 minutes.
fn config(deployed: BTreeSet<Org>, window: Option<VerifyWindow>) -> WatchConfig {
    WatchConfig {
        deployed,
        stale_after: Duration::minutes(30),
        name: "dha".into(),
        window,
        deadline: None,
    }
}

fn org(s: &str) -> Org {
    Org::new(s).unwrap()
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-10T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn last(at: DateTime<Utc>, error: Option<&str>, failures: u32) -> LastRun {
    LastRun {
        run_id: RunId("r".into()),
        started_at: at - Duration::seconds(5),
        finished_at: at,
        events_written: 0,
        caught_up: error.is_none(),
        error: error.map(str::to_string),
        failures,
    }
}

/// Writes a checkpoint for `o` whose data is `minutes` old at [`t0`], with its last run.
async fn aged(store: &FileCheckpoints, o: &str, minutes: i64, run: LastRun) {
    put(store, o, Some(t0() - Duration::minutes(minutes)), Some(run)).await;
}

/// Writes a checkpoint for `o` as a run would.
async fn put(store: &FileCheckpoints, o: &str, watermark: Option<DateTime<Utc>>, run: Option<LastRun>) {
    let (lease, mut cp) = store.acquire(&org(o), &RunId("w".into())).await.unwrap().unwrap();
    cp.watermark = watermark;
    cp.last_run = run;
    store.save(&lease, &mut cp).await.unwrap();
    store.release(lease).await.unwrap();
}

#[test]
fn each_kind_of_stale_org_is_found_with_its_reason() {
    let now = t0();
    let st = |o: &str, w: Option<i64>, run: Option<LastRun>, lease: Option<(i64, &str)>| OrgState {
        org: org(o),
        watermark: w.map(|m| now - Duration::minutes(m)),
        last_run: run,
        lease: lease.map(|(ahead, owner)| LeaseHold {
            owner: owner.into(),
            until: now + Duration::minutes(ahead),
        }),
    };
    let deployed: BTreeSet<Org> = [
        "fresh", "stale", "never", "failing", "stuck", "gone", "backfill", "held",
    ]
    .into_iter()
    .map(org)
    .collect();
    let states = vec![
        st(
            "fresh",
            Some(3),
            Some(last(now - Duration::minutes(2), None, 0)),
            None,
        ),
        st(
            "stale",
            Some(90),
            Some(last(now - Duration::minutes(80), None, 0)),
            None,
        ),
        st(
            "failing",
            Some(45),
            Some(last(now - Duration::minutes(3), Some("401: token refused"), 9)),
            None,
        ),
        st(
            "stuck",
            Some(300),
            Some(last(now - Duration::hours(5), None, 0)),
            Some((24 * 60, "run-x")),
        ),
        st(
            "held",
            Some(60),
            Some(last(now - Duration::hours(1), None, 0)),
            Some((1, "cli-backfill")),
        ),
        st(
            "backfill",
            Some(80 * 24 * 60),
            Some(LastRun {
                caught_up: false,
                ..last(now, None, 0)
            }),
            None,
        ),
        // An expired lease is no reason.
        st("gone", Some(31), None, Some((-5, "dead"))),
        st("retired", Some(10_000), None, None),
    ];
    let h = Health::assess(Some(&deployed), states, now, Duration::minutes(30));
    let kinds: Vec<(&str, &str)> = h
        .stale()
        .map(|o| (o.org.as_str(), o.stale.as_ref().unwrap().kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("backfill", "catching_up"),
            ("failing", "failing"),
            ("gone", "no_recent_run"),
            ("held", "lease_held"),
            ("never", "never_ran"),
            ("stale", "no_recent_run"),
            ("stuck", "lease_stuck"),
        ]
    );
    let retired = h.orgs.iter().find(|o| o.org.as_str() == "retired").unwrap();
    assert!(
        !retired.deployed && retired.stale.is_none(),
        "an org no longer deployed is never stale"
    );
    assert_eq!(
        h.oldest_age(),
        Some(Duration::minutes(80 * 24 * 60)),
        "deployed orgs only"
    );
    let failing = h.stale().find(|o| o.org.as_str() == "failing").unwrap();
    let text = notice::describe(failing.stale.as_ref().unwrap(), now);
    assert_eq!(text, "its last 9 runs failed: 401: token refused");
}

#[tokio::test]
async fn one_message_per_change_none_on_a_repeat_and_one_when_all_are_well() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileCheckpoints::new(dir.path());
    let now = t0();
    aged(&store, "acme", 2, last(now, None, 0)).await;
    aged(&store, "example", 120, last(now - Duration::hours(2), None, 0)).await;
    let cfg = config(
        ["acme", "example", "newcomer"].into_iter().map(org).collect(),
        None,
    );
    let inbox = Inbox::default();
    let r = watch(&store, Some(&inbox), None, &cfg, now).await.unwrap();
    let names: Vec<&str> = r.stale.iter().map(|s| s.org.as_str()).collect();
    assert_eq!(names, ["example", "newcomer"]);
    assert_eq!(r.oldest_watermark_age, Some(7200.0));
    {
        let sent = inbox.0.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, "dha: 2 stale orgs: example, newcomer");
        assert!(sent[0].1.contains("newcomer: never ran"), "{}", sent[0].1);
        assert!(sent[0].1.contains("collect-newcomer"), "{}", sent[0].1);
        assert!(
            sent[0].1.contains("example: no run has finished since"),
            "{}",
            sent[0].1
        );
    }
    // The same set a minute later (a reason may change): nothing is sent.
    let again = watch(&store, Some(&inbox), None, &cfg, now + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!((again.stale.len(), again.notified.clone()), (2, None));
    assert_eq!(inbox.0.lock().unwrap().len(), 1);
    // The topic is down when the set changes: nothing remembered, sent by the next watch.
    put(&store, "example", Some(now), Some(last(now, None, 0))).await;
    *inbox.1.lock().unwrap() = true;
    let failed = watch(&store, Some(&inbox), None, &cfg, now + Duration::minutes(2))
        .await
        .unwrap();
    assert_eq!(failed.errors.len(), 1, "{failed:?}");
    *inbox.1.lock().unwrap() = false;
    let sent = watch(&store, Some(&inbox), None, &cfg, now + Duration::minutes(3))
        .await
        .unwrap();
    assert_eq!(sent.notified.as_deref(), Some("dha: 1 stale org: newcomer"));
    assert!(inbox.0.lock().unwrap()[1]
        .1
        .contains("Collected again since the last message: example."));
    // All well: one message saying so, then silence.
    put(&store, "newcomer", Some(now), Some(last(now, None, 0))).await;
    let well = watch(&store, Some(&inbox), None, &cfg, now + Duration::minutes(4))
        .await
        .unwrap();
    assert_eq!(
        well.notified.as_deref(),
        Some("dha: all orgs are collected again")
    );
    let quiet = watch(&store, Some(&inbox), None, &cfg, now + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(quiet.notified, None);
    assert_eq!(inbox.0.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn daily_jobs_start_once_per_slot_spread_over_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileCheckpoints::new(dir.path());
    let orgs: BTreeSet<Org> = (0..40).map(|i| org(&format!("org-{i:02}"))).collect();
    let window = VerifyWindow::parse("04:00", "4h").unwrap();
    let cfg = config(orgs.clone(), Some(window));
    let started = Started::default();
    let day = DateTime::parse_from_rfc3339("2026-03-10T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    // The first watch starts nothing (no burst on a new deployment): every org's next slot
    // is its first.
    let first = watch(&store, None, Some(&started), &cfg, day).await.unwrap();
    assert!(first.started.is_empty());
    // Every 10 minutes over two days: each org verified once a day, compacted once a day, an
    // hour after its verification slot; never more than a few starts in one watch.
    let mut most = 0;
    let mut t = day;
    while t < day + Duration::days(2) {
        t += Duration::minutes(10);
        let r = watch(&store, None, Some(&started), &cfg, t).await.unwrap();
        most = most.max(r.started.len());
    }
    let jobs = started.0.lock().unwrap();
    for o in &orgs {
        let verifies = jobs
            .iter()
            .filter(|j| **j == Job::Verify { org: o.clone() })
            .count();
        let compacts = jobs
            .iter()
            .filter(|j| **j == Job::Compact { org: o.clone() })
            .count();
        assert_eq!((verifies, compacts), (2, 2), "{o}");
        let slot = window.latest_slot(o, day + Duration::days(1), Duration::zero());
        let offset = slot - (day + Duration::hours(4));
        assert!(
            offset >= Duration::zero() && offset < Duration::hours(4),
            "{o}: {slot}"
        );
    }
    assert!(
        most <= 12,
        "40 orgs over 4 hours in 10-minute watches: at most {most} in one"
    );
}

#[test]
fn a_window_is_parsed_or_refused_with_the_reason() {
    assert!(VerifyWindow::parse("4h", "4h").is_err());
    assert!(VerifyWindow::parse("04:00", "2d")
        .unwrap_err()
        .contains("not between 1m and 24h"));
    assert!(VerifyWindow::parse("25:00", "4h").unwrap_err().contains("HH:MM"));
    let w = VerifyWindow::parse("23:30", "2h").unwrap();
    let now = DateTime::parse_from_rfc3339("2026-03-10T00:10:00Z")
        .unwrap()
        .with_timezone(&Utc);
    for o in ["a", "b", "c", "d"] {
        let slot = w.latest_slot(&org(o), now, Duration::zero());
        assert!(slot <= now && slot > now - Duration::days(1), "{o}: {slot}");
    }
    let _ = Checkpoint::new(org("a"));
}

#[tokio::test]
async fn no_flapping_at_the_threshold_a_worse_reason_is_said_and_a_removed_org_is_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileCheckpoints::new(dir.path());
    let now = t0();
    let backfilling = LastRun {
        caught_up: false,
        ..last(now, None, 0)
    };
    aged(&store, "acme", 40, backfilling).await;
    aged(&store, "example", 35, last(now, None, 0)).await;
    let mut cfg = config(["acme", "example"].into_iter().map(org).collect(), None);
    let inbox = Inbox::default();
    let r = watch(&store, Some(&inbox), None, &cfg, now).await.unwrap();
    assert_eq!(r.notified.as_deref(), Some("dha: 2 stale orgs: acme, example"));
    // example's data is 27 minutes old: under the threshold, not yet well under it. Counted
    // fresh (the metric says the truth), announced as nothing.
    aged(&store, "example", 26, last(now, None, 0)).await;
    let r = watch(&store, Some(&inbox), None, &cfg, now + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!((r.stale.len(), r.notified.clone()), (1, None));
    // acme's runs now fail: a reason that asks for someone, said again.
    aged(&store, "acme", 40, last(now, Some("403: no Audit Log Read"), 2)).await;
    let r = watch(&store, Some(&inbox), None, &cfg, now + Duration::minutes(2))
        .await
        .unwrap();
    assert_eq!(r.notified.as_deref(), Some("dha: 1 stale org: acme"));
    assert!(inbox.0.lock().unwrap()[1]
        .1
        .contains("acme: its last 2 runs failed: 403"));
    // The same reason again: nothing.
    let r = watch(&store, Some(&inbox), None, &cfg, now + Duration::minutes(3))
        .await
        .unwrap();
    assert_eq!(r.notified, None);
    // example well under the threshold: collected again, said with acme still stale.
    put(&store, "example", Some(now), Some(last(now, None, 0))).await;
    let r = watch(&store, Some(&inbox), None, &cfg, now + Duration::minutes(4))
        .await
        .unwrap();
    assert_eq!(r.notified.as_deref(), Some("dha: 1 stale org: acme"));
    assert!(inbox.0.lock().unwrap()[2]
        .1
        .contains("Collected again since the last message: example."));
    // acme is removed from the deployment: forgotten, not "collected again", and all is well.
    cfg.deployed = ["example"].into_iter().map(org).collect();
    let r = watch(&store, Some(&inbox), None, &cfg, now + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(r.notified, None, "acme was not collected again: it was removed");
    assert!(store.memory().await.unwrap().stale.is_empty());
    assert_eq!(inbox.0.lock().unwrap().len(), 3);
}

#[test]
fn a_run_that_crashed_before_recording_anything_is_a_run_that_stopped() {
    let now = t0();
    // A first run took the lease and died: an item with an expired lease and nothing else.
    let crashed = OrgState {
        org: org("acme"),
        watermark: None,
        last_run: None,
        lease: Some(LeaseHold {
            owner: "dead".into(),
            until: now - Duration::minutes(1),
        }),
    };
    let deployed: BTreeSet<Org> = [org("acme")].into();
    let h = Health::assess(Some(&deployed), vec![crashed], now, Duration::minutes(30));
    assert_eq!(
        h.stale().next().unwrap().stale,
        Some(Why::NoRecentRun { last: None })
    );
}
