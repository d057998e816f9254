//! The poller's invariants, against fast in-process fakes of the ports. The same
//! scenarios run end to end against the real adapters and the emulator in `tests/`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::*;
use crate::clock::ManualClock;
use crate::event::encode;
use crate::event::key::ObjectKey;
use crate::types::Org;

use crate::testkit::fakes::*;

// ---------- scenarios ----------

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn cfg() -> PollConfig {
    let mut c = PollConfig::new(Org::new("acme").unwrap());
    c.lookback = Duration::days(3);
    c
}

async fn run(
    hub: &FakeHub,
    cps: &MemCheckpoints,
    sink: &MemSink,
    clock: &ManualClock,
    c: &PollConfig,
) -> Result<RunReport, RunFailed> {
    let p = Poller {
        api: hub,
        checkpoints: cps,
        sink,
        clock,
        alerts: None,
        page_sizes: None,
        surface: None,
    };
    p.run(c, None).await
}

fn assert_exact(hub: &FakeHub, sink: &MemSink, before: DateTime<Utc>) {
    let want = hub.visible_before(before);
    let got = sink.stored();
    assert_eq!(
        got.len(),
        want.len(),
        "stored {} events, the API holds {}",
        got.len(),
        want.len()
    );
    assert!(got == want, "stored multiset differs from the API's");
    let mut ids = sink.ids();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "an event_id appears twice");
}

#[tokio::test]
async fn backfill_reads_everything_once_whatever_the_order_and_cap() {
    for (order, cap) in [
        (Order::NewestFirst, 100),
        (Order::OldestFirst, 37),
        (Order::Shuffled, 10),
    ] {
        let clock = ManualClock::new(t0());
        let hub = FakeHub::new(clock.clone(), cap, order);
        hub.generate(7, 1500, t0() - Duration::days(3), t0() - Duration::minutes(2));
        let (cps, sink) = (MemCheckpoints::default(), MemSink::default());
        let mut c = cfg();
        c.batch_events = 200;
        let r = run(&hub, &cps, &sink, &clock, &c).await.unwrap();
        assert!(r.caught_up);
        assert_eq!(r.events_written, 1500);
        assert!(
            r.objects_written >= 4,
            "batches of 200 over 3 days: {}",
            r.objects_written
        );
        assert_exact(&hub, &sink, t0() - c.lag);
        // A second run re-reads the overlap and stores nothing new.
        clock.advance(Duration::minutes(5));
        let r2 = run(&hub, &cps, &sink, &clock, &c).await.unwrap();
        assert_eq!(r2.events_written, 0);
        assert_exact(&hub, &sink, t0() + Duration::minutes(4));
    }
}

#[tokio::test]
async fn a_dense_second_larger_than_a_page_is_read_whole() {
    let clock = ManualClock::new(t0());
    let hub = FakeHub::new(clock.clone(), 10, Order::NewestFirst);
    let second = t0() - Duration::minutes(30);
    for i in 0..45 {
        hub.add(
            json!({"action": "repo.tag.push", "timestamp": ts(second), "data": {"i": (i % 20).to_string()}}),
            second,
        );
    }
    hub.generate(3, 100, t0() - Duration::hours(2), t0() - Duration::minutes(2));
    let (cps, sink) = (MemCheckpoints::default(), MemSink::default());
    run(&hub, &cps, &sink, &clock, &cfg()).await.unwrap();
    assert_exact(&hub, &sink, t0() - cfg().lag);
}

#[tokio::test]
async fn events_landing_while_paging_are_neither_doubled_nor_lost() {
    let clock = ManualClock::new(t0());
    // Cap unknown and smaller than asked: the client must read on to an empty page.
    let hub = FakeHub::new(clock.clone(), 30, Order::NewestFirst);
    // A busy last quarter of an hour, so the windows hold several pages and the events that
    // land while they are paged fall inside the next run's overlap.
    hub.generate(11, 600, t0() - Duration::minutes(14), t0() - Duration::minutes(2));
    *hub.insert_while_paging.lock().unwrap() = (0..20)
        .map(|i| json!({"action": "repo.tag.push", "actor": "late", "data": {"n": i.to_string()}, "timestamp": ""}))
        .collect();
    let (cps, sink) = (MemCheckpoints::default(), MemSink::default());
    let mut c = cfg();
    c.lookback = Duration::minutes(20);
    run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    let landed = 20 - hub.insert_while_paging.lock().unwrap().len();
    assert!(landed > 0, "the drill must land events while paging");
    // The first run holds every original event and no event twice; the ones that landed
    // behind the reader come with the next run, once each.
    let originals =
        |v: Vec<String>| -> Vec<String> { v.into_iter().filter(|c| !c.contains("\"late\"")).collect() };
    assert_eq!(originals(sink.stored()), originals(hub.visible_before(t0())));
    clock.advance(Duration::minutes(5));
    run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    assert_exact(&hub, &sink, clock.now() - c.lag);
    let landed = 20 - hub.insert_while_paging.lock().unwrap().len();
    let late = sink.stored().iter().filter(|e| e.contains("\"late\"")).count();
    assert_eq!(
        late, landed,
        "every event that landed while paging is stored once"
    );
}

#[tokio::test]
async fn late_events_inside_the_overlap_are_caught() {
    let clock = ManualClock::new(t0());
    let hub = FakeHub::new(clock.clone(), 100, Order::NewestFirst);
    hub.generate(5, 50, t0() - Duration::hours(1), t0() - Duration::minutes(2));
    // Happened 5 minutes ago, visible only 12 minutes after it happened.
    let happened = t0() - Duration::minutes(5);
    hub.add(
        json!({"action": "org.member.add", "timestamp": ts(happened)}),
        happened + Duration::minutes(12),
    );
    let (cps, sink) = (MemCheckpoints::default(), MemSink::default());
    let c = cfg();
    run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    assert_eq!(sink.stored().len(), 50);
    for _ in 0..4 {
        clock.advance(Duration::minutes(5));
        run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    }
    assert_exact(&hub, &sink, clock.now() - c.lag);
    assert_eq!(sink.stored().len(), 51);
}

#[tokio::test]
async fn twins_that_arrive_later_are_kept_as_extra_copies() {
    let clock = ManualClock::new(t0());
    let hub = FakeHub::new(clock.clone(), 100, Order::Shuffled);
    let at = t0() - Duration::minutes(10);
    let e = json!({"action": "repo.tag.push", "timestamp": ts(at), "actor": "ci"});
    hub.add(e.clone(), at);
    hub.add(e.clone(), at);
    let (cps, sink) = (MemCheckpoints::default(), MemSink::default());
    run(&hub, &cps, &sink, &clock, &cfg()).await.unwrap();
    assert_eq!(sink.stored().len(), 2);
    hub.add(e, t0() + Duration::minutes(1));
    clock.advance(Duration::minutes(5));
    let r = run(&hub, &cps, &sink, &clock, &cfg()).await.unwrap();
    assert_eq!(r.events_written, 1);
    assert_eq!(r.duplicates_dropped, 2);
    assert_exact(&hub, &sink, clock.now() - cfg().lag);
}

#[tokio::test]
async fn a_crash_at_any_store_or_sink_operation_loses_and_doubles_nothing() {
    let mut crashes_seen = 0;
    for k in 0..200u32 {
        let clock = ManualClock::new(t0());
        let hub = FakeHub::new(clock.clone(), 25, Order::NewestFirst);
        hub.generate(
            u64::from(k) + 100,
            400,
            t0() - Duration::days(2),
            t0() - Duration::minutes(2),
        );
        let crash = Crash::after(k);
        let cps = MemCheckpoints {
            crash: crash.clone(),
            ..Default::default()
        };
        let sink = MemSink {
            crash: crash.clone(),
            ..Default::default()
        };
        let mut c = cfg();
        c.batch_events = 30;
        // Windows of about 60 events: a commit each, many crash points.
        c.read_events = 120;
        let crashed = run(&hub, &cps, &sink, &clock, &c).await.is_err();
        // The process is gone: its lease with it. Then clean runs.
        *cps.held.lock().unwrap() = false;
        *crash.0.lock().unwrap() = None;
        for _ in 0..2 {
            clock.advance(Duration::minutes(5));
            run(&hub, &cps, &sink, &clock, &c).await.unwrap();
        }
        assert_exact(&hub, &sink, clock.now() - c.lag);
        if !crashed {
            break; // k is past the last operation of a whole run: every point was tried.
        }
        crashes_seen += 1;
    }
    assert!(
        crashes_seen > 20,
        "a run of 7 batches has more crash points than {crashes_seen}"
    );
}

#[tokio::test]
async fn hub_errors_commit_what_was_read_and_fail_loudly() {
    let clock = ManualClock::new(t0());
    let hub = FakeHub::new(clock.clone(), 20, Order::NewestFirst);
    hub.generate(9, 300, t0() - Duration::days(2), t0() - Duration::minutes(2));
    let (cps, sink) = (MemCheckpoints::default(), MemSink::default());
    let mut c = cfg();
    // Windows of about 100 events, so the first ones stand before the failure.
    c.read_events = 200;
    // Let some requests through, then fail every one.
    *hub.fail_from.lock().unwrap() = Some(25);
    let failed = run(&hub, &cps, &sink, &clock, &c).await.unwrap_err();
    assert!(failed.error.is_transient());
    let written = failed.report.events_written;
    assert!(
        written > 0 && written < 300,
        "what was read before the failure is committed: {written}"
    );
    let cp = cps.peek(&c.org).await.unwrap().unwrap();
    assert!(cp.last_run.unwrap().error.unwrap().contains("down"));
    assert_eq!(sink.stored().len() as u64, written);
    // The next run completes; nothing lost, nothing doubled.
    *hub.fail_from.lock().unwrap() = None;
    let r = run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    assert_eq!(r.events_written + written, 300);
    assert_exact(&hub, &sink, t0() - c.lag);
}

#[tokio::test]
async fn a_deadline_stops_early_with_everything_committed() {
    let clock = ManualClock::new(t0());
    let hub = FakeHub::new(clock.clone(), 50, Order::NewestFirst);
    hub.generate(13, 500, t0() - Duration::days(3), t0() - Duration::minutes(2));
    let (cps, sink) = (MemCheckpoints::default(), MemSink::default());
    let c = cfg();
    let p = Poller {
        api: &hub,
        checkpoints: &cps,
        sink: &sink,
        clock: &clock,
        alerts: None,
        page_sizes: None,
        surface: None,
    };
    // Already past the deadline: reads nothing, commits nothing, fails nothing.
    let r = p.run(&c, Some(t0() - Duration::seconds(1))).await.unwrap();
    assert!(!r.caught_up);
    assert!(r.stopped_early.is_some());
    assert_eq!(r.events_written, 0);
    let r = p.run(&c, Some(t0() + Duration::minutes(1))).await.unwrap();
    assert!(r.caught_up);
    assert_exact(&hub, &sink, t0() - c.lag);
}

#[tokio::test]
async fn a_second_poller_on_the_same_org_does_nothing() {
    let clock = ManualClock::new(t0());
    let hub = FakeHub::new(clock.clone(), 100, Order::NewestFirst);
    let (cps, sink) = (MemCheckpoints::default(), MemSink::default());
    *cps.held.lock().unwrap() = true;
    let r = run(&hub, &cps, &sink, &clock, &cfg()).await.unwrap();
    assert!(!r.leased);
    assert_eq!(*hub.requests.lock().unwrap(), 0);
}

#[tokio::test]
async fn an_incremental_run_costs_few_requests() {
    let clock = ManualClock::new(t0());
    let hub = FakeHub::new(clock.clone(), 100, Order::NewestFirst);
    hub.generate(21, 2000, t0() - Duration::days(3), t0() - Duration::minutes(2));
    let (cps, sink) = (MemCheckpoints::default(), MemSink::default());
    let c = cfg();
    let backfill = run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    clock.advance(Duration::minutes(5));
    *hub.requests.lock().unwrap() = 0;
    let inc = run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    let n = *hub.requests.lock().unwrap();
    assert!(
        n <= 2,
        "an incremental run over 20 quiet minutes took {n} requests"
    );
    assert!(
        backfill.pages_requested < 2000 / 100 * 4,
        "backfill took {} requests",
        backfill.pages_requested
    );
    assert_eq!(inc.pages_requested, n);
}

#[tokio::test]
async fn events_landing_next_to_a_dense_second_do_not_double_it() {
    let clock = ManualClock::new(t0());
    let mut hub = FakeHub::new(clock.clone(), 10, Order::NewestFirst);
    hub.insert_at_end = true;
    let second = t0() - Duration::minutes(30);
    for i in 0..35 {
        hub.add(
            json!({"action": "repo.tag.push", "timestamp": ts(second), "data": {"i": i.to_string()}}),
            second,
        );
    }
    // Each lands in the second after the dense one while its pages are read: newest first,
    // it shifts every page of the dense second by one.
    *hub.insert_while_paging.lock().unwrap() =
        (0..3).map(|i| json!({"action": "org.member.add", "actor": "late", "data": {"n": i.to_string()}, "timestamp": ""})).collect();
    let (cps, sink) = (MemCheckpoints::default(), MemSink::default());
    let mut c = cfg();
    c.lookback = Duration::hours(1);
    run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    let dense = sink
        .stored()
        .iter()
        .filter(|e| e.contains("repo.tag.push"))
        .count();
    assert_eq!(
        dense, 35,
        "the dense second is stored exactly, no shifted copy taken for a twin"
    );
    clock.advance(Duration::minutes(5));
    run(&hub, &cps, &sink, &clock, &c).await.unwrap();
    assert_exact(&hub, &sink, clock.now() - c.lag);
}

// ---------- two runs interleaved: pauses past the lease, skewed clocks ----------

/// A checkpoint store with a lease that lapses, as DynamoDB's: the holder's clock sets the
/// expiry, the next run's clock reads it.
/// An org's stored checkpoint, lease holder and lease expiry.
type Leased = (Checkpoint, Option<String>, DateTime<Utc>);

#[derive(Default)]
struct LeaseStore {
    items: Mutex<HashMap<String, Leased>>,
}

/// One run's view of the [`LeaseStore`], through its own (possibly wrong) clock.
struct LeaseView<'a> {
    store: &'a LeaseStore,
    clock: &'a dyn Clock,
    ttl: Duration,
}

#[async_trait]
impl Checkpoints for LeaseView<'_> {
    type Lease = String;
    async fn acquire(&self, org: &Org, owner: &RunId) -> Result<Option<(String, Checkpoint)>, StoreError> {
        let now = self.clock.now();
        let mut items = self.store.items.lock().unwrap();
        let item = items
            .entry(org.to_string())
            .or_insert_with(|| (Checkpoint::new(org.clone()), None, now));
        let free = item.1.as_ref().is_none_or(|o| o == &owner.0) || item.2 < now;
        if !free {
            return Ok(None);
        }
        item.1 = Some(owner.0.clone());
        item.2 = now + self.ttl;
        Ok(Some((owner.0.clone(), item.0.clone())))
    }
    async fn save(&self, lease: &String, cp: &mut Checkpoint) -> Result<(), StoreError> {
        let mut items = self.store.items.lock().unwrap();
        let item = items.get_mut(cp.org.as_str()).expect("acquired first");
        if item.1.as_ref() != Some(lease) || item.0.version != cp.version {
            return Err(StoreError::Conflict("taken over".into()));
        }
        cp.version += 1;
        item.0 = cp.clone();
        item.2 = self.clock.now() + self.ttl;
        Ok(())
    }
    async fn heartbeat(&self, lease: &String) -> Result<(), StoreError> {
        let mut items = self.store.items.lock().unwrap();
        for item in items.values_mut() {
            if item.1.as_ref() == Some(lease) {
                item.2 = self.clock.now() + self.ttl;
                return Ok(());
            }
        }
        Err(StoreError::Conflict("taken over".into()))
    }
    async fn release(&self, lease: String) -> Result<(), StoreError> {
        for item in self.store.items.lock().unwrap().values_mut() {
            if item.1.as_ref() == Some(&lease) {
                item.1 = None;
            }
        }
        Ok(())
    }
    async fn peek(&self, org: &Org) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self
            .store
            .items
            .lock()
            .unwrap()
            .get(org.as_str())
            .map(|i| i.0.clone()))
    }
}

// The failpoint of the integration drills: it stops one store or sink operation of a run.
use crate::testkit::gate::{Gate, Gated};

/// Run A stops at its `at`-th operation (before or after it acts), long enough for its
/// lease to lapse on B's clock; B (clock skewed against A's) runs meanwhile, and more
/// events arrive; then A goes on. Returns whether A reached the gate at all.
async fn interleave(at: u32, after: bool, skew_a: Duration, skew_b: Duration) -> bool {
    let base = ManualClock::new(t0());
    let hub = FakeHub::new(base.clone(), 20, Order::NewestFirst);
    // Across midnight, so some commits write two objects (a heartbeat between the uploads).
    hub.generate(
        u64::from(at) + 500,
        240,
        t0() - Duration::hours(14),
        t0() - Duration::minutes(2),
    );
    let store = LeaseStore::default();
    let sink = MemSink::default();
    let ttl = Duration::minutes(1);
    let mut c = cfg();
    // Longer than the events go back, so whichever run comes first reaches them all.
    c.lookback = Duration::hours(15);
    c.batch_events = 20;
    c.read_events = 60;
    let clock_a = crate::clock::Skewed {
        inner: base.clone(),
        by: skew_a,
    };
    let clock_b = crate::clock::Skewed {
        inner: base.clone(),
        by: skew_b,
    };
    let gate = Gate::new(at, after);
    let a = Gated {
        store: LeaseView {
            store: &store,
            clock: &clock_a,
            ttl,
        },
        sink: sink.clone(),
        gate: &gate,
    };
    let run_a = Poller {
        api: &hub,
        checkpoints: &a,
        sink: &a,
        clock: &clock_a,
        alerts: None,
        page_sizes: None,
        surface: None,
    };
    let b = LeaseView {
        store: &store,
        clock: &clock_b,
        ttl,
    };
    let run_b = Poller {
        api: &hub,
        checkpoints: &b,
        sink: &sink,
        clock: &clock_b,
        alerts: None,
        page_sizes: None,
        surface: None,
    };

    let a_done = std::sync::atomic::AtomicBool::new(false);
    let first = async {
        let _ = run_a.run(&c, None).await;
        a_done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let drive = async {
        tokio::select! {
            _ = gate.reached.notified() => {}
            // A finished without reaching the gate: nothing to interleave.
            _ = async { while !a_done.load(std::sync::atomic::Ordering::SeqCst) { tokio::task::yield_now().await } } => return false,
        }
        // A is stalled. Time passes beyond its lease (and the skew); new events arrive; B runs.
        base.advance(Duration::minutes(12));
        hub.generate(
            u64::from(at) + 900,
            15,
            t0() + Duration::minutes(1),
            t0() + Duration::minutes(9),
        );
        let _ = run_b.run(&c, None).await;
        gate.go.notify_one();
        true
    };
    let (_, reached) = tokio::join!(first, drive);
    // Then ordinary runs on the true clock until everything is in.
    let c_store = LeaseView {
        store: &store,
        clock: &base,
        ttl,
    };
    for _ in 0..3 {
        base.advance(Duration::minutes(5));
        let p = Poller {
            api: &hub,
            checkpoints: &c_store,
            sink: &sink,
            clock: &base,
            alerts: None,
            page_sizes: None,
            surface: None,
        };
        p.run(&c, None).await.unwrap_or_else(|f| panic!("{}", f.error));
    }
    assert_exact(&hub, &sink, base.now() - c.lag);
    reached
}

#[tokio::test]
async fn a_run_stalled_past_its_lease_at_any_step_under_skewed_clocks_doubles_and_loses_nothing() {
    let minutes = Duration::minutes;
    let skews = [
        (minutes(0), minutes(0)),
        (minutes(-5), minutes(5)),
        (minutes(5), minutes(-5)),
    ];
    let mut interleavings = 0;
    for after in [false, true] {
        for at in 0..200u32 {
            let (skew_a, skew_b) = skews[at as usize % skews.len()];
            if !interleave(at, after, skew_a, skew_b).await {
                break; // past A's last operation: every step was tried
            }
            interleavings += 1;
        }
    }
    assert!(
        interleavings > 40,
        "a run of several commits has more steps than {interleavings}"
    );
}

// ---------- property: any events, any cuts and crashes, the API's multiset ----------

mod property {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    /// One event of a scenario: its second (from the start), action, payload, identical
    /// copies, and how long after its time it becomes visible.
    type Spec = (i64, usize, u8, u8, i64);

    /// One run of a scenario: minutes the clock moves first, and the store or sink operation
    /// after which it crashes (if any).
    type Step = (i64, Option<u32>);

    fn config() -> Config {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(48);
        Config {
            cases,
            rng_seed: RngSeed::Fixed(0x00c0_11ec_7001),
            failure_persistence: None,
            ..Config::default()
        }
    }

    fn scenario(events: Vec<Spec>, steps: Vec<Step>, order: Order, cap: u32) -> Result<(), TestCaseError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let clock = ManualClock::new(t0());
            let hub = FakeHub::new(clock.clone(), cap, order);
            let start = t0() - Duration::minutes(40);
            let actions = ["repo.tag.push", "org.member.add", "repo.create"];
            for (second, action, n, copies, late) in events {
                let at = start + Duration::seconds(second);
                let e = json!({"action": actions[action], "timestamp": ts(at), "data": {"n": n.to_string()}});
                for _ in 0..copies {
                    hub.add(e.clone(), at + Duration::seconds(late));
                }
            }
            let (cps, sink) = (MemCheckpoints::default(), MemSink::default());
            let mut c = cfg();
            c.lookback = Duration::hours(1);
            c.batch_events = 7;
            for (minutes, crash) in steps {
                clock.advance(Duration::minutes(minutes));
                let crash_point = Crash(Arc::new(Mutex::new(crash)));
                let (cps, sink) = (
                    MemCheckpoints {
                        crash: crash_point.clone(),
                        ..cps.clone()
                    },
                    MemSink {
                        crash: crash_point,
                        ..sink.clone()
                    },
                );
                let _ = run(&hub, &cps, &sink, &clock, &c).await;
                // A crashed process takes its lease with it.
                *cps.held.lock().unwrap() = false;
            }
            // Then clean runs until everything visible is in.
            for _ in 0..3 {
                clock.advance(Duration::minutes(5));
                run(&hub, &cps, &sink, &clock, &c)
                    .await
                    .map_err(|f| TestCaseError::fail(f.error.to_string()))?;
            }
            let want = hub.visible_before(clock.now() - c.lag);
            prop_assert_eq!(sink.stored(), want);
            let mut ids = sink.ids();
            let n = ids.len();
            ids.sort();
            ids.dedup();
            prop_assert_eq!(ids.len(), n, "an event_id twice");
            Ok(())
        })
    }

    fn order() -> impl Strategy<Value = Order> {
        prop_oneof![
            Just(Order::NewestFirst),
            Just(Order::OldestFirst),
            Just(Order::Shuffled)
        ]
    }

    proptest! {
        #![proptest_config(config())]

        /// Events in few seconds (crowded seconds, identical twins, late arrivals inside the
        /// overlap), read in any order through any page cap, by runs cut anywhere by crashes:
        /// the output is the API's multiset.
        #[test]
        fn any_events_any_cuts_and_crashes_give_the_apis_multiset(
            events in prop::collection::vec((0i64..2400, 0usize..3, 0u8..4, 1u8..4, prop_oneof![Just(0i64), 1i64..600]), 1..60),
            steps in prop::collection::vec((1i64..7, prop::option::of(0u32..40)), 1..5),
            order in order(),
            cap in 2u32..12,
        ) {
            scenario(events, steps, order, cap)?;
        }
    }
}

mod alerts;
mod rebuild_verify;
