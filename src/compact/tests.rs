//! Compaction over in-process fakes of the sink and checkpoints and a local surface in a
//! temporary folder: which days are closed, and bad input that stops one day alone.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Map, Value};

use super::{compact, CompactConfig};
use crate::checkpoint_model::{Checkpoint, Intent, PendingObject, Verified};
use crate::clock::ManualClock;
use crate::event::encode;
use crate::event::key::ObjectKey;
use crate::ports::Sink;
use crate::surface::local::LocalSurface;
use crate::surface::CompactedDays;
use crate::testkit::fakes::{MemCheckpoints, MemSink};
use crate::types::{Org, RunId};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn record(id: &str, ts: &str) -> Map<String, Value> {
    json!({"account": "acme", "action": "repo.tag.push", "actor": "jdoe", "category": "repo",
           "data": {"tag": "v1"}, "event_id": id, "name": "acme/web", "org": "acme", "timestamp": ts})
    .as_object()
    .unwrap()
    .clone()
}

/// Days 2026-11-01..=03, two objects each; the checkpoint settled and verified through the
/// 10th; now is the 12th.
async fn history() -> (MemSink, MemCheckpoints, ManualClock) {
    let sink = MemSink::default();
    for d in 1..=3 {
        for part in 0..2 {
            let recs: Vec<_> = (0..5)
                .map(|i| {
                    record(
                        &format!("{d}-{part}-{i}"),
                        &format!("2026-11-0{d}T1{part}:00:0{i}Z"),
                    )
                })
                .collect();
            let key = ObjectKey(format!(
                "org=acme/dt=2026-11-0{d}/2026110{d}T1{part}0000Z-{part}.json.gz"
            ));
            sink.put(&key, encode::encode(&recs)).await.unwrap();
        }
    }
    let checkpoints = MemCheckpoints::default();
    let mut cp = Checkpoint::new(Org::new("acme").unwrap());
    cp.watermark = Some(t("2026-11-10T00:00:00Z"));
    cp.seen_from = Some(t("2026-11-10T00:00:00Z"));
    cp.verified = Some(Verified {
        from: t("2026-10-25T00:00:00Z"),
        to: t("2026-11-10T00:00:00Z"),
        at: t("2026-11-10T00:00:00Z"),
    });
    checkpoints.items.lock().unwrap().insert("acme".into(), cp);
    (sink, checkpoints, ManualClock::new(t("2026-11-12T00:00:00Z")))
}

fn cfg() -> CompactConfig {
    CompactConfig::new(Org::new("acme").unwrap())
}

#[tokio::test]
async fn a_damaged_raw_object_stops_its_day_alone_and_nothing_of_it_is_published() {
    let (sink, checkpoints, clock) = history().await;
    let bad = ObjectKey("org=acme/dt=2026-11-02/20261102T120000Z-x.json.gz".into());
    sink.put(&bad, b"\x1f\x8b not really gzip".to_vec())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let surface = LocalSurface::new(dir.path());
    let r = compact(&sink, &surface, &checkpoints, &clock, &cfg(), None)
        .await
        .unwrap();
    assert!(!r.ok());
    assert_eq!(r.failed.len(), 1, "{r:?}");
    assert_eq!(r.failed[0].day, day("2026-11-02"));
    assert!(r.failed[0].error.contains(&bad.0), "{}", r.failed[0].error);
    let done: Vec<NaiveDate> = r.compacted.iter().map(|d| d.day).collect();
    assert_eq!(done, vec![day("2026-11-01"), day("2026-11-03")]);
    assert!(r.compacted.iter().all(|d| d.events == 10 && d.raw_objects == 2));
    let org = Org::new("acme").unwrap();
    assert_eq!(
        surface.days(&org).await.unwrap().into_iter().collect::<Vec<_>>(),
        done,
        "the damaged day stays on the raw side"
    );
    // The raw trail is as it was: 7 objects, the damaged one included.
    assert_eq!(sink.objects.lock().unwrap().len(), 7);
}

#[tokio::test]
async fn a_record_that_is_not_the_tools_stops_its_day() {
    let (sink, checkpoints, clock) = history().await;
    let key = ObjectKey("org=acme/dt=2026-11-03/20261103T230000Z-y.json.gz".into());
    let mut other_day = record("z", "2026-11-04T00:00:01Z");
    other_day.insert("note".into(), json!("written by hand"));
    let mut no_id = record("w", "2026-11-03T23:00:00Z");
    no_id.remove("event_id");
    sink.put(&key, encode::encode(&[no_id])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let surface = LocalSurface::new(dir.path());
    let r = compact(&sink, &surface, &checkpoints, &clock, &cfg(), None)
        .await
        .unwrap();
    assert_eq!(r.failed.len(), 1);
    assert!(r.failed[0].error.contains("no event_id"), "{}", r.failed[0].error);

    let key = ObjectKey("org=acme/dt=2026-11-01/20261101T230000Z-z.json.gz".into());
    sink.put(&key, encode::encode(&[other_day])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let surface = LocalSurface::new(dir.path());
    let r = compact(&sink, &surface, &checkpoints, &clock, &cfg(), None)
        .await
        .unwrap();
    assert!(
        r.failed
            .iter()
            .any(|f| f.day == day("2026-11-01") && f.error.contains("of another day")),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_day_is_closed_only_past_its_horizon_settled_verified_and_with_nothing_pending() {
    let (sink, checkpoints, clock) = history().await;
    let set = |f: &dyn Fn(&mut Checkpoint)| {
        let mut items = checkpoints.items.lock().unwrap();
        f(items.get_mut("acme").unwrap());
    };
    let run = || async {
        let dir = tempfile::tempdir().unwrap();
        let surface = LocalSurface::new(dir.path());
        compact(&sink, &surface, &checkpoints, &clock, &cfg(), None)
            .await
            .unwrap()
    };
    // Verified only from the 2nd on: the 1st waits for a verify (not counted late: it lies
    // before the first verified day, history a verify has yet to cover).
    set(&|cp| cp.verified.as_mut().unwrap().from = t("2026-11-02T00:00:00Z"));
    let r = run().await;
    assert_eq!((r.compacted.len(), r.unverified, r.late), (2, 1, 0), "{r:?}");
    // Settled only into the 3rd: the 3rd is not closed.
    set(&|cp| {
        cp.verified = None;
        cp.seen_from = Some(t("2026-11-03T12:00:00Z"));
    });
    let r = run().await;
    assert_eq!((r.compacted.len(), r.open, r.unverified), (0, 1, 2), "{r:?}");
    set(&|cp| {
        cp.seen_from = Some(t("2026-11-10T00:00:00Z"));
        cp.verified = Some(Verified {
            from: t("2026-10-01T00:00:00Z"),
            to: t("2026-11-10T00:00:00Z"),
            at: t("2026-11-10T00:00:00Z"),
        });
        cp.pending = Some(Intent {
            run_id: RunId("r".into()),
            watermark: t("2026-11-10T00:00:00Z"),
            objects: vec![PendingObject {
                key: ObjectKey("org=acme/dt=2026-11-02/p.json.gz".into()),
                events: vec![],
                alerts: 0,
            }],
        });
    });
    let r = run().await;
    assert_eq!(
        r.compacted.iter().map(|d| d.day).collect::<Vec<_>>(),
        vec![day("2026-11-01"), day("2026-11-03")]
    );
    assert_eq!(r.open, 1, "a commit into the 2nd is pending");
    // Within the late horizon (a day after the day ends) nothing is closed.
    set(&|cp| cp.pending = None);
    clock.set(t("2026-11-04T12:00:00Z"));
    let r = run().await;
    assert_eq!(
        r.compacted.iter().map(|d| d.day).collect::<Vec<_>>(),
        vec![day("2026-11-01"), day("2026-11-02")]
    );
}

#[test]
fn the_verified_span_grows_with_contiguous_verifies_only() {
    let v = Verified::extended(
        None,
        t("2026-11-01T00:00:00Z"),
        t("2026-11-03T00:00:00Z"),
        t("2026-11-03T01:00:00Z"),
    );
    let v2 = Verified::extended(
        Some(v),
        t("2026-11-02T00:00:00Z"),
        t("2026-11-04T00:00:00Z"),
        t("2026-11-04T01:00:00Z"),
    );
    assert_eq!(
        (v2.from, v2.to),
        (t("2026-11-01T00:00:00Z"), t("2026-11-04T00:00:00Z"))
    );
    // A gap was never verified: the newer span alone.
    let v3 = Verified::extended(
        Some(v2),
        t("2026-11-06T00:00:00Z"),
        t("2026-11-08T00:00:00Z"),
        t("2026-11-08T01:00:00Z"),
    );
    assert_eq!(
        (v3.from, v3.to),
        (t("2026-11-06T00:00:00Z"), t("2026-11-08T00:00:00Z"))
    );
    // An older verify inside or before it changes nothing but the time.
    let v4 = Verified::extended(
        Some(v3),
        t("2026-10-01T00:00:00Z"),
        t("2026-10-02T00:00:00Z"),
        t("2026-11-09T00:00:00Z"),
    );
    assert_eq!((v4.from, v4.to), (v3.from, v3.to));
}

#[tokio::test]
async fn a_compaction_waits_for_the_lease_a_repair_or_poll_holds() {
    let (sink, checkpoints, clock) = history().await;
    *checkpoints.held.lock().unwrap() = true;
    let dir = tempfile::tempdir().unwrap();
    let surface = LocalSurface::new(dir.path());
    let e = compact(&sink, &surface, &checkpoints, &clock, &cfg(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, super::CompactError::Busy(_)), "{e}");
    assert!(surface.days(&Org::new("acme").unwrap()).await.unwrap().is_empty());
    *checkpoints.held.lock().unwrap() = false;
    let r = compact(&sink, &surface, &checkpoints, &clock, &cfg(), None)
        .await
        .unwrap();
    assert_eq!(r.compacted.len(), 3);
    assert!(!*checkpoints.held.lock().unwrap(), "the lease is given back");
}
