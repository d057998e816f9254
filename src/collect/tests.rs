//! The poller's invariants, against fast in-process fakes of the ports. The same
//! scenarios run end to end against the real adapters and the emulator in `tests/`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{json, Value};

use super::*;
use crate::clock::ManualClock;
use crate::event::id::canonical;
use crate::event::key::ObjectKey;
use crate::event::{encode, HubEvent};
use crate::ports::{Listed, PageQuery, PutOutcome};
use crate::types::Org;

// ---------- a fake Hub with the unfriendly choices switchable ----------

#[derive(Clone, Copy, PartialEq, Debug)]
enum Order {
    NewestFirst,
    OldestFirst,
    Shuffled,
}

/// An event held by the fake: (event, timestamp, visible from).
/// An event, its time and when it became visible, in microseconds: the fake compares
/// them for every event of every page, and chrono's comparisons are slow unoptimized.
type Held = (Value, i64, i64);

struct FakeHub {
    clock: ManualClock,
    events: Mutex<Vec<Held>>,
    cap: u32,
    order: Order,
    from_inclusive: bool,
    to_inclusive: bool,
    /// Events inserted (visible at once, timestamp inside the query) on page >= 2 requests.
    insert_while_paging: Mutex<Vec<Value>>,
    /// Insert them in the query's last second (the padding after a dense second) rather
    /// than its middle.
    insert_at_end: bool,
    /// The request number (1-based) from which every request fails.
    fail_from: Mutex<Option<u64>>,
    requests: Mutex<u64>,
}

fn ts(t: DateTime<Utc>) -> String {
    crate::types::rfc3339(t)
}

impl FakeHub {
    fn new(clock: ManualClock, cap: u32, order: Order) -> Self {
        FakeHub {
            clock,
            events: Mutex::new(Vec::new()),
            cap,
            order,
            from_inclusive: false,
            to_inclusive: true,
            insert_while_paging: Mutex::new(Vec::new()),
            insert_at_end: false,
            fail_from: Mutex::new(None),
            requests: Mutex::new(0),
        }
    }

    fn add(&self, e: Value, visible_at: DateTime<Utc>) {
        let t = HubEvent::from_wire(e.clone()).unwrap().timestamp();
        self.events
            .lock()
            .unwrap()
            .push((e, t.timestamp_micros(), visible_at.timestamp_micros()));
    }

    /// `n` events spread over `[from, to)`, with some identical copies in the same second.
    fn generate(&self, seed: u64, n: usize, from: DateTime<Utc>, to: DateTime<Utc>) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let span = (to - from).num_seconds().max(1) as u64;
        let actions = [
            "repo.tag.push",
            "repo.create",
            "org.member.add",
            "billing.plan.upgrade",
            "oidc.connection.create",
        ];
        let mut made = 0;
        while made < n {
            let t = from + Duration::seconds(rng.u64(..span) as i64);
            let e = json!({
                "account": "acme",
                "action": actions[rng.usize(..actions.len())],
                "actor": format!("user{}", rng.u64(..5)),
                "name": format!("acme/repo{}", rng.u64(..3)),
                "data": {"tag": format!("v{}", rng.u64(..4))},
                "timestamp": ts(t),
            });
            let copies = if rng.u64(..20) == 0 { 3 } else { 1 };
            for _ in 0..copies.min(n - made) {
                self.add(e.clone(), t);
                made += 1;
            }
        }
    }

    fn visible_before(&self, before: DateTime<Utc>) -> Vec<String> {
        let (now, before) = (self.clock.now().timestamp_micros(), before.timestamp_micros());
        let mut v: Vec<String> = self
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t, vis)| *t < before && *vis <= now)
            .map(|(e, _, _)| canonical(&HubEvent::from_wire(e.clone()).unwrap()))
            .collect();
        v.sort();
        v
    }
}

#[async_trait]
impl AuditLog for FakeHub {
    async fn page(
        &self,
        _org: &Org,
        q: PageQuery,
        _budget: Option<StdDuration>,
    ) -> Result<crate::ports::Page, HubError> {
        let n = {
            let mut r = self.requests.lock().unwrap();
            *r += 1;
            *r
        };
        if self.fail_from.lock().unwrap().is_some_and(|from| n >= from) {
            return Err(HubError::Unavailable("Docker Hub is down".into()));
        }
        // At the end: only while a dense second (a padded 3-second query) is paged.
        let targeted = !self.insert_at_end || q.to - q.from <= Duration::seconds(3);
        if q.page >= 2 && targeted {
            if let Some(mut e) = self.insert_while_paging.lock().unwrap().pop() {
                let at = if self.insert_at_end {
                    q.to - Duration::seconds(1)
                } else {
                    q.from + (q.to - q.from) / 2
                };
                e["timestamp"] = json!(ts(crate::types::floor_second(at)));
                self.add(e, self.clock.now());
            }
        }
        let now = self.clock.now().timestamp_micros();
        let (from, to) = (q.from.timestamp_micros(), q.to.timestamp_micros());
        // Positions and times only: the served events alone are cloned (the crash drills
        // ask for thousands of pages).
        let events = self.events.lock().unwrap();
        let mut matching: Vec<(usize, i64)> = events
            .iter()
            .enumerate()
            .filter(|(_, (_, t, vis))| {
                *vis <= now
                    && (if self.from_inclusive {
                        *t >= from
                    } else {
                        *t > from
                    })
                    && (if self.to_inclusive { *t <= to } else { *t < to })
            })
            .filter(|(_, (e, _, _))| q.action.as_ref().is_none_or(|a| e["action"].as_str() == Some(a)))
            .map(|(i, (_, t, _))| (i, *t))
            .collect();
        match self.order {
            Order::NewestFirst => matching.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0))),
            Order::OldestFirst => matching.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0))),
            // A stable but arbitrary order: by a hash of the position.
            Order::Shuffled => matching.sort_by_key(|(i, _)| fastrand::Rng::with_seed(*i as u64).u64(..)),
        }
        let size = q.page_size.min(self.cap) as usize;
        let skip = (q.page as usize - 1) * size;
        let served: Vec<Value> = matching
            .into_iter()
            .skip(skip)
            .take(size)
            .map(|(i, _)| events[i].0.clone())
            .collect();
        drop(events);
        // The same parser as the real client's, so unreadable items are set apart the same way.
        let body = serde_json::to_vec(&json!({ "logs": served })).unwrap();
        Ok(crate::hub::wire::parse_page(&body).expect("the fake serves a valid body"))
    }
}

// ---------- fake stores that can "crash" after a number of operations ----------

/// Every store and sink operation spends one; when none are left, every operation fails,
/// as if the process had died right after the last one that succeeded.
#[derive(Clone, Default)]
struct Crash(Arc<Mutex<Option<u32>>>);

impl Crash {
    fn after(n: u32) -> Self {
        Crash(Arc::new(Mutex::new(Some(n))))
    }
    fn spend(&self) -> Result<(), StoreError> {
        let mut left = self.0.lock().unwrap();
        match left.as_mut() {
            None => Ok(()),
            Some(0) => Err(StoreError::Io("crashed".into())),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
        }
    }
}

#[derive(Clone, Default)]
struct MemCheckpoints {
    items: Arc<Mutex<HashMap<String, Checkpoint>>>,
    held: Arc<Mutex<bool>>,
    crash: Crash,
}

#[async_trait]
impl Checkpoints for MemCheckpoints {
    type Lease = ();
    async fn acquire(&self, org: &Org, _owner: &RunId) -> Result<Option<((), Checkpoint)>, StoreError> {
        self.crash.spend()?;
        let mut held = self.held.lock().unwrap();
        if *held {
            return Ok(None);
        }
        *held = true;
        let cp = self.items.lock().unwrap().get(org.as_str()).cloned();
        Ok(Some(((), cp.unwrap_or_else(|| Checkpoint::new(org.clone())))))
    }
    async fn save(&self, _l: &(), cp: &mut Checkpoint) -> Result<(), StoreError> {
        self.crash.spend()?;
        let mut items = self.items.lock().unwrap();
        let current = items.get(cp.org.as_str()).map_or(0, |c| c.version);
        if current != cp.version {
            return Err(StoreError::Conflict("version".into()));
        }
        cp.version += 1;
        items.insert(cp.org.to_string(), cp.clone());
        Ok(())
    }
    async fn release(&self, _l: ()) -> Result<(), StoreError> {
        *self.held.lock().unwrap() = false;
        Ok(())
    }
    async fn peek(&self, org: &Org) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.items.lock().unwrap().get(org.as_str()).cloned())
    }
}

#[derive(Clone, Default)]
struct MemSink {
    objects: Arc<Mutex<BTreeMap<ObjectKey, Vec<u8>>>>,
    crash: Crash,
}

#[async_trait]
impl Sink for MemSink {
    async fn put(&self, key: &ObjectKey, body: Vec<u8>) -> Result<PutOutcome, StoreError> {
        self.crash.spend()?;
        let mut o = self.objects.lock().unwrap();
        if o.contains_key(key) {
            return Ok(PutOutcome::AlreadyExisted);
        }
        o.insert(key.clone(), body);
        Ok(PutOutcome::Created)
    }
    async fn exists(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        self.crash.spend()?;
        Ok(self.objects.lock().unwrap().contains_key(key))
    }
    async fn identity(&self) -> Result<String, StoreError> {
        Ok("mem".into())
    }
    async fn days(&self, org: &Org) -> Result<Vec<NaiveDate>, StoreError> {
        self.crash.spend()?;
        let head = format!("org={org}/dt=");
        let mut days: Vec<NaiveDate> = self
            .objects
            .lock()
            .unwrap()
            .keys()
            .filter_map(|k| NaiveDate::parse_from_str(k.0.strip_prefix(&head)?.get(..10)?, "%Y-%m-%d").ok())
            .collect();
        days.dedup();
        Ok(days)
    }
    async fn list_day(&self, org: &Org, day: NaiveDate) -> Result<Vec<Listed>, StoreError> {
        self.crash.spend()?;
        let head = format!("{}/", crate::event::key::partition(org, day));
        Ok(self.listed(|k| k.starts_with(&head)))
    }
    async fn list_after(&self, org: &Org, after: &str, limit: usize) -> Result<Vec<Listed>, StoreError> {
        self.crash.spend()?;
        let head = format!("org={org}/");
        let mut v = self.listed(|k| k.starts_with(&head) && k > after);
        v.truncate(limit);
        Ok(v)
    }
    async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>, StoreError> {
        self.crash.spend()?;
        self.objects
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::Io(format!("no object {key}")))
    }
}

impl MemSink {
    fn listed(&self, keep: impl Fn(&str) -> bool) -> Vec<Listed> {
        self.objects
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| keep(&k.0))
            .map(|(k, v)| Listed {
                key: k.clone(),
                size: v.len() as u64,
            })
            .collect()
    }

    /// Canonical forms of the Hub fields of every stored record, sorted (a multiset).
    fn stored(&self) -> Vec<String> {
        let mut out = Vec::new();
        for body in self.objects.lock().unwrap().values() {
            for r in encode::decode(body).unwrap() {
                out.push(crate::inspect::hub_canonical(&r).expect("a stored record is a valid event"));
            }
        }
        out.sort();
        out
    }
    fn ids(&self) -> Vec<String> {
        let mut out = Vec::new();
        for body in self.objects.lock().unwrap().values() {
            for r in encode::decode(body).unwrap() {
                out.push(r["event_id"].as_str().unwrap().to_string());
            }
        }
        out
    }
}

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
#[path = "../../tests/common/gate.rs"]
mod gate;
use gate::{Gate, Gated};

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
