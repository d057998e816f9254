//! A checkpoint rebuilt from the output (deleted, restored from an older backup, another
//! store on the same output) and `verify` / `--repair`, on the in-process fakes.

use super::*;
use crate::collect::verify::{Progress, VerifyRange, VerifyReport};

fn fixture(seed: u64, n: usize) -> (ManualClock, FakeHub, MemCheckpoints, MemSink, PollConfig) {
    let clock = ManualClock::new(t0());
    let hub = FakeHub::new(clock.clone(), 25, Order::NewestFirst);
    hub.generate(seed, n, t0() - Duration::days(3), t0() - Duration::minutes(2));
    let mut c = cfg();
    c.batch_events = 80;
    (clock, hub, MemCheckpoints::default(), MemSink::default(), c)
}

/// More events over the next `minutes`, and runs every 5 minutes until then.
async fn go_on(
    hub: &FakeHub,
    cps: &MemCheckpoints,
    sink: &MemSink,
    clock: &ManualClock,
    c: &PollConfig,
    seed: u64,
    minutes: i64,
) -> Vec<RunReport> {
    let start = clock.now();
    hub.generate(
        seed,
        minutes as usize * 3,
        start - Duration::minutes(1),
        start + Duration::minutes(minutes),
    );
    let mut out = Vec::new();
    while clock.now() < start + Duration::minutes(minutes) {
        clock.advance(Duration::minutes(5));
        out.push(run(hub, cps, sink, clock, c).await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_deleted_checkpoint_is_rebuilt_and_nothing_is_stored_twice() {
    let (clock, hub, cps, sink, c) = fixture(31, 600);
    run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    go_on(&hub, &cps, &sink, &clock, &c, 32, 20).await;
    cps.items.lock().unwrap().clear();
    let reports = go_on(&hub, &cps, &sink, &clock, &c, 33, 20).await;
    let rebuilt = reports[0]
        .rebuilt
        .as_deref()
        .expect("the first run after the loss rebuilds");
    assert!(rebuilt.contains("no checkpoint"), "{rebuilt}");
    assert!(reports[1..].iter().all(|r| r.rebuilt.is_none()));
    assert_exact(&hub, &sink, clock.now() - c.lag);
}

/// Three hours older, so that reading again from the backup's own `seen_from` would take
/// several batches (each commit letting go of ids the next batch still needs).
#[tokio::test]
async fn an_older_checkpoint_restored_from_a_backup_is_rebuilt() {
    let (clock, hub, cps, sink, c) = fixture(41, 600);
    run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    let backup = cps.items.lock().unwrap().clone();
    go_on(&hub, &cps, &sink, &clock, &c, 42, 180).await;
    *cps.items.lock().unwrap() = backup;
    let reports = go_on(&hub, &cps, &sink, &clock, &c, 43, 10).await;
    assert!(reports[0].rebuilt.is_some());
    assert_exact(&hub, &sink, clock.now() - c.lag);
}

/// A quiet org: after the backup only a late event was stored, inside the overlap and
/// before the backup's watermark, so nothing newer than the watermark shows the
/// checkpoint is older; the objects it knows (`recent`) do.
#[tokio::test]
async fn an_older_checkpoint_is_caught_by_a_late_event_alone() {
    let (clock, hub, cps, sink, c) = fixture(51, 200);
    run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    let backup = cps.items.lock().unwrap().clone();
    let w = backup["acme"].watermark.unwrap();
    let late = json!({"account": "acme", "action": "repo.delete", "actor": "late", "name": "acme/x",
        "timestamp": ts(w - Duration::minutes(5))});
    hub.add(late, clock.now());
    clock.advance(Duration::minutes(5));
    let r = run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    assert_eq!(r.events_written, 1);
    *cps.items.lock().unwrap() = backup;
    clock.advance(Duration::minutes(5));
    let r = run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    assert!(r.rebuilt.is_some(), "{r:?}");
    assert_eq!(r.events_written, 0);
    assert_exact(&hub, &sink, clock.now() - c.lag);
}

#[tokio::test]
async fn two_checkpoint_stores_on_one_output_double_nothing() {
    let (clock, hub, cps, sink, c) = fixture(61, 600);
    let other = MemCheckpoints::default();
    run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    for (i, store) in [&other, &cps, &other, &cps].into_iter().enumerate() {
        go_on(&hub, store, &sink, &clock, &c, 62 + i as u64, 10).await;
    }
    assert_exact(&hub, &sink, clock.now() - c.lag);
}

#[tokio::test]
async fn a_checkpoint_from_before_recent_was_kept_is_rebuilt_once() {
    let (clock, hub, cps, sink, c) = fixture(71, 300);
    run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    cps.items.lock().unwrap().get_mut("acme").unwrap().recent = None;
    let reports = go_on(&hub, &cps, &sink, &clock, &c, 72, 15).await;
    assert!(
        reports[0].rebuilt.as_deref().unwrap().contains("older version"),
        "{reports:?}"
    );
    assert!(reports[1..].iter().all(|r| r.rebuilt.is_none()), "{reports:?}");
    assert_exact(&hub, &sink, clock.now() - c.lag);
}

async fn verify(
    hub: &FakeHub,
    cps: &MemCheckpoints,
    sink: &MemSink,
    clock: &ManualClock,
    c: &PollConfig,
    repair: bool,
) -> (VerifyReport, Vec<crate::collect::verify::DayReport>) {
    let p = Poller {
        api: hub,
        checkpoints: cps,
        sink,
        clock,
        alerts: None,
        page_sizes: None,
        surface: None,
    };
    let range = VerifyRange {
        from: t0() - Duration::days(4),
        until: None,
        repair,
    };
    let mut days = Vec::new();
    let r = p
        .verify(c, &range, None, &mut |p| {
            if let Progress::Day(d) = p {
                days.push(d.clone())
            }
        })
        .await
        .unwrap();
    (r, days)
}

/// The events (ids) of one stored object.
fn ids_of(sink: &MemSink, key: &ObjectKey) -> Vec<String> {
    let body = sink.objects.lock().unwrap()[key].clone();
    encode::decode(&body)
        .unwrap()
        .iter()
        .map(|r| r["event_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn verify_finds_a_lost_object_repairs_it_and_reports_a_copied_one() {
    let (clock, hub, cps, sink, c) = fixture(81, 900);
    run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    go_on(&hub, &cps, &sink, &clock, &c, 82, 10).await;

    let (clean, days) = verify(&hub, &cps, &sink, &clock, &c, false).await;
    assert!(clean.clean(), "{clean:?}");
    assert_eq!(clean.missing + clean.duplicated + clean.unexpected, 0);
    // Up to where the collection is final: the start of the overlap.
    let settled = cps.items.lock().unwrap()["acme"].seen_from.unwrap();
    assert_eq!(clean.to, settled);
    assert_eq!(clean.at_docker_hub as usize, hub.visible_before(settled).len());
    assert_eq!(clean.stored, clean.at_docker_hub);
    assert_eq!(days.len(), 5, "the range's 4 days back and today");

    // Lose one object.
    let lost = sink.objects.lock().unwrap().keys().nth(3).unwrap().clone();
    let lost_ids = ids_of(&sink, &lost);
    let body = sink.objects.lock().unwrap().remove(&lost).unwrap();
    let (found, days) = verify(&hub, &cps, &sink, &clock, &c, false).await;
    assert!(!found.clean());
    assert_eq!(found.missing, lost_ids.len() as u64);
    let day = &lost.0["org=acme/dt=".len()..][..10];
    for d in &days {
        let want = if d.day.to_string() == day {
            lost_ids.len() as u64
        } else {
            0
        };
        assert_eq!(d.missing, want, "{d:?}");
    }
    // Nothing was written without --repair.
    assert!(!sink.objects.lock().unwrap().contains_key(&lost));

    let (repaired, _) = verify(&hub, &cps, &sink, &clock, &c, true).await;
    assert_eq!(repaired.missing, lost_ids.len() as u64);
    assert_eq!(repaired.repaired, lost_ids.len() as u64);
    assert!(repaired.clean());
    // The same events under the same key: the same object again.
    assert_eq!(
        sink.objects.lock().unwrap().get(&lost).map(|b| ids_of_body(b)),
        Some(ids_of_body(&body))
    );
    let (after, _) = verify(&hub, &cps, &sink, &clock, &c, false).await;
    assert!(after.clean() && after.missing == 0, "{after:?}");
    // The poller goes on without storing the repaired events again.
    go_on(&hub, &cps, &sink, &clock, &c, 83, 10).await;
    assert_exact(&hub, &sink, clock.now() - c.lag);

    // A copy under another name: duplicated, with both keys.
    let copied = sink.objects.lock().unwrap().keys().nth(5).unwrap().clone();
    let copy = ObjectKey(copied.0.replace(".json.gz", "-copy.json.gz"));
    let bytes = sink.objects.lock().unwrap()[&copied].clone();
    sink.objects.lock().unwrap().insert(copy.clone(), bytes);
    let (dup, days) = verify(&hub, &cps, &sink, &clock, &c, true).await;
    let n = ids_of(&sink, &copied).len() as u64;
    assert_eq!((dup.duplicated, dup.missing, dup.repaired), (n, 0, 0));
    assert!(!dup.clean());
    let groups: Vec<_> = days.iter().flat_map(|d| d.duplicates.clone()).collect();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0].events, n);
    let mut keys = vec![copied, copy];
    keys.sort();
    assert_eq!(groups[0].keys, keys);
}

fn ids_of_body(body: &[u8]) -> Vec<String> {
    encode::decode(body)
        .unwrap()
        .iter()
        .map(|r| r["event_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn verify_leaves_repair_to_later_while_a_poll_holds_the_lease() {
    let (clock, hub, cps, sink, c) = fixture(91, 300);
    run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    let lost = sink.objects.lock().unwrap().keys().next().unwrap().clone();
    sink.objects.lock().unwrap().remove(&lost);
    *cps.held.lock().unwrap() = true;
    let (r, _) = verify(&hub, &cps, &sink, &clock, &c, true).await;
    assert!(r.missing > 0 && r.repaired == 0 && !r.clean());
    assert!(r.repair_skipped.as_deref().unwrap().contains("lease"));
    assert!(!sink.objects.lock().unwrap().contains_key(&lost));
}

#[tokio::test]
async fn days_docker_hub_no_longer_serves_are_past_its_retention_not_errors() {
    let (clock, hub, cps, sink, c) = fixture(101, 400);
    run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    // Forty days on, Docker Hub has dropped the oldest day and a half.
    clock.advance(Duration::days(40));
    let cut = (t0() - Duration::days(2)).timestamp_micros();
    hub.events.lock().unwrap().retain(|(_, t, _)| *t >= cut);
    let (r, days) = verify(&hub, &cps, &sink, &clock, &c, true).await;
    assert!(r.clean(), "{r:?}");
    assert!(r.unexpected > 0 && r.repaired == 0);
    assert_eq!(r.days_past_retention, 1, "{days:?}");
    let gone = days.iter().find(|d| d.past_retention).unwrap();
    assert_eq!((gone.at_docker_hub, gone.unexpected), (0, gone.stored));
    // The half day after it: no longer served, yet not past retention (later events are).
    assert!(r.unexpected > gone.unexpected);
}

/// A repair interrupted at any store or sink operation is finished by the next run (or
/// the next repair), and the trail ends exact.
#[tokio::test]
async fn a_repair_crashing_anywhere_loses_and_doubles_nothing() {
    let mut crashes = 0;
    for k in 0..60u32 {
        let (clock, hub, cps, sink, c) = fixture(111, 300);
        run(&hub, &cps, &sink, &clock, &c).await.unwrap();
        let lost: Vec<ObjectKey> = sink.objects.lock().unwrap().keys().step_by(2).cloned().collect();
        for key in &lost {
            sink.objects.lock().unwrap().remove(key);
        }
        let crash = Crash::after(k);
        let (cps_c, sink_c) = (
            MemCheckpoints {
                crash: crash.clone(),
                ..cps.clone()
            },
            MemSink {
                crash: crash.clone(),
                ..sink.clone()
            },
        );
        let p = Poller {
            api: &hub,
            checkpoints: &cps_c,
            sink: &sink_c,
            clock: &clock,
            alerts: None,
            page_sizes: None,
            surface: None,
        };
        let range = VerifyRange {
            from: t0() - Duration::days(4),
            until: None,
            repair: true,
        };
        let crashed = p.verify(&c, &range, None, &mut |_| {}).await.is_err();
        *cps.held.lock().unwrap() = false;
        // Past the overlap, so the lost objects of its last minutes are final, and verified.
        clock.advance(Duration::minutes(20));
        run(&hub, &cps, &sink, &clock, &c).await.unwrap();
        verify(&hub, &cps, &sink, &clock, &c, true).await;
        let (after, _) = verify(&hub, &cps, &sink, &clock, &c, false).await;
        assert!(after.clean() && after.missing == 0, "crash at {k}: {after:?}");
        assert_exact(&hub, &sink, clock.now() - c.lag);
        if !crashed {
            break;
        }
        crashes += 1;
    }
    assert!(crashes > 10, "{crashes}");
}

/// Docker Hub serving an event with a changed field: the stored one is no longer served
/// and the served one is not stored. The day is reported, not repaired (writing it would
/// store the same event twice).
#[tokio::test]
async fn a_day_whose_events_changed_at_docker_hub_is_reported_not_repaired() {
    let (clock, hub, cps, sink, c) = fixture(121, 300);
    run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    let stored_before = sink.objects.lock().unwrap().clone();
    {
        let mut events = hub.events.lock().unwrap();
        let (e, _, _) = &mut events[10];
        e["actor"] = json!("renamed-by-docker-hub");
    }
    let (r, days) = verify(&hub, &cps, &sink, &clock, &c, true).await;
    assert_eq!((r.missing, r.unexpected, r.repaired), (1, 1, 0), "{r:?}");
    assert!(!r.clean());
    assert!(
        r.repair_skipped.as_deref().unwrap().contains("changed fields"),
        "{r:?}"
    );
    assert_eq!(days.iter().filter(|d| d.missing > 0).count(), 1);
    assert_eq!(*sink.objects.lock().unwrap(), stored_before, "nothing written");
}

/// A damaged object (or one not written by this tool): verify names it and counts its
/// events missing without repairing over it. A checkpoint that must be rebuilt beside it
/// is not: the run fails naming the object (its ids cannot be remembered, so going on would
/// store its events twice), and goes on once the object is mended.
#[tokio::test]
async fn a_damaged_object_is_named_and_never_repaired_or_rebuilt_over() {
    let (clock, hub, cps, sink, c) = fixture(131, 400);
    run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    let keys: Vec<ObjectKey> = sink.objects.lock().unwrap().keys().cloned().collect();
    let (damaged, newest) = (keys[2].clone(), keys.last().unwrap().clone());
    let n = ids_of(&sink, &damaged).len() as u64;
    let good = sink.objects.lock().unwrap()[&damaged].clone();
    sink.objects
        .lock()
        .unwrap()
        .insert(damaged.clone(), b"not gzip".to_vec());

    let (r, days) = verify(&hub, &cps, &sink, &clock, &c, true).await;
    assert_eq!((r.missing, r.repaired, r.unreadable_objects), (n, 0, 1), "{r:?}");
    assert!(!r.clean());
    assert!(
        r.repair_skipped.as_deref().unwrap().contains("cannot be read"),
        "{r:?}"
    );
    let named: Vec<ObjectKey> = days.iter().flat_map(|d| d.unreadable_objects.clone()).collect();
    assert_eq!(named, std::slice::from_ref(&damaged));
    sink.objects.lock().unwrap().insert(damaged, good);

    // The newest object damaged, and the checkpoint lost.
    let newest_good = sink.objects.lock().unwrap()[&newest].clone();
    sink.objects
        .lock()
        .unwrap()
        .insert(newest.clone(), b"{}".to_vec());
    cps.items.lock().unwrap().clear();
    clock.advance(Duration::minutes(5));
    let failed = run(&hub, &cps, &sink, &clock, &c).await.unwrap_err();
    let msg = failed.error.to_string();
    assert!(msg.contains(&newest.0) && msg.contains("move it out"), "{msg}");
    assert!(!failed.error.is_transient());
    *cps.held.lock().unwrap() = false;
    sink.objects.lock().unwrap().insert(newest, newest_good);
    let reports = go_on(&hub, &cps, &sink, &clock, &c, 132, 15).await;
    assert!(reports[0].rebuilt.is_some());
    assert_exact(&hub, &sink, clock.now() - c.lag);
}

/// An object not named by this tool (a compaction job's `part-0000.json.gz`, say) in the
/// newest partition: one rebuild learns it, later runs do not rebuild again for it, and
/// nothing is stored twice.
#[tokio::test]
async fn an_object_named_by_another_tool_costs_one_rebuild_not_one_per_run() {
    let (clock, hub, cps, sink, c) = fixture(141, 300);
    run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    let newest = sink.objects.lock().unwrap().keys().last().unwrap().clone();
    let renamed = ObjectKey(format!(
        "{}/part-0000.json.gz",
        newest.0.rsplit_once('/').unwrap().0
    ));
    let body = sink.objects.lock().unwrap().remove(&newest).unwrap();
    sink.objects.lock().unwrap().insert(renamed, body);
    let reports = go_on(&hub, &cps, &sink, &clock, &c, 142, 30).await;
    assert!(reports[0].rebuilt.is_some(), "{reports:?}");
    assert!(reports[1..].iter().all(|r| r.rebuilt.is_none()), "{reports:?}");
    assert_exact(&hub, &sink, clock.now() - c.lag);
}
