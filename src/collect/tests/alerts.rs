//! Alerts under the commit protocol, on the in-process fakes: raised for exactly the
//! events a commit stores first, whatever crashes where; a failed delivery blocks nothing
//! and is sent by the next run.

use super::*;
use crate::alert::{alert_id, Alert, Rules};
use crate::ports::{AlertError, AlertSink};

/// Records every alert delivered; fails while `down` is set, and always for the alerts of
/// the object `refuse` names.
#[derive(Default)]
struct MemAlerts {
    sent: Mutex<Vec<String>>,
    down: Mutex<bool>,
    refuse: Mutex<Option<String>>,
}

#[async_trait]
impl AlertSink for MemAlerts {
    async fn send(&self, alerts: &[Alert]) -> Result<(), AlertError> {
        if *self.down.lock().unwrap() {
            return Err(AlertError("the bus is down".into()));
        }
        let refused = self.refuse.lock().unwrap().clone();
        if alerts.iter().any(|a| Some(&a.object) == refused.as_ref()) {
            return Err(AlertError("this entry is refused".into()));
        }
        self.sent
            .lock()
            .unwrap()
            .extend(alerts.iter().map(|a| a.alert_id.clone()));
        Ok(())
    }
}

impl MemAlerts {
    fn sorted(&self) -> Vec<String> {
        let mut v = self.sent.lock().unwrap().clone();
        v.sort();
        v
    }
}

/// The alert ids the stored records should raise, sorted (a multiset: one per rule and event).
fn expected_alerts(sink: &MemSink, rules: &Rules) -> Vec<String> {
    let mut out = Vec::new();
    for body in sink.objects.lock().unwrap().values() {
        for r in encode::decode(body).unwrap() {
            let id = r["event_id"].as_str().unwrap().to_string();
            out.extend(rules.matching(&r).map(|rule| alert_id(&rule.id, &id)));
        }
    }
    out.sort();
    out
}

async fn run_alerting(
    hub: &FakeHub,
    cps: &MemCheckpoints,
    sink: &MemSink,
    clock: &ManualClock,
    c: &PollConfig,
    rules: &Rules,
    out: &MemAlerts,
) -> Result<RunReport, RunFailed> {
    let p = Poller {
        api: hub,
        checkpoints: cps,
        sink,
        clock,
        alerts: Some(Alerting { rules, out }),
        page_sizes: None,
        surface: None,
    };
    p.run(c, None).await
}

#[tokio::test]
async fn a_failed_delivery_blocks_nothing_and_the_next_run_sends_it_once() {
    let q = queued(7).await;
    let r = &q.first;
    assert_exact(&q.hub, &q.sink, q.clock.now() - q.c.lag);
    let want = expected_alerts(&q.sink, &q.rules);
    assert!(want.len() > 40, "the fixture raises alerts: {}", want.len());
    assert_eq!(r.alerts_raised, 0);
    assert_eq!(
        r.alerts_failed,
        want.len() as u64,
        "every undelivered alert is counted"
    );
    assert!(q.out.sorted().is_empty());
    let queued = q.pending().await;
    assert!(!queued.is_empty(), "kept in the checkpoint's outbox");

    q.clock.advance(Duration::minutes(5));
    let r = q.run().await.unwrap();
    assert_eq!((r.alerts_raised, r.alerts_failed), (want.len() as u64, 0));
    assert_eq!(q.out.sorted(), want, "each alert once");
    // Re-runs read the overlap again: they raise nothing.
    for _ in 0..2 {
        q.clock.advance(Duration::minutes(5));
        let r = q.run().await.unwrap();
        assert_eq!((r.alerts_raised, r.alerts_failed), (0, 0));
    }
    assert_eq!(q.out.sorted(), want);
    assert!(q.pending().await.is_empty());
}

#[tokio::test]
async fn a_crash_at_any_store_or_sink_operation_raises_each_alert_and_no_other() {
    let rules = Rules::defaults();
    let mut crashes_seen = 0;
    let mut repeats = 0;
    for k in 0..200u32 {
        let clock = ManualClock::new(t0());
        let hub = FakeHub::new(clock.clone(), 25, Order::NewestFirst);
        hub.generate(
            u64::from(k) + 300,
            300,
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
        let out = MemAlerts::default();
        let mut c = cfg();
        c.batch_events = 30;
        c.read_events = 120;
        let crashed = run_alerting(&hub, &cps, &sink, &clock, &c, &rules, &out)
            .await
            .is_err();
        *cps.held.lock().unwrap() = false;
        *crash.0.lock().unwrap() = None;
        for _ in 0..2 {
            clock.advance(Duration::minutes(5));
            run_alerting(&hub, &cps, &sink, &clock, &c, &rules, &out)
                .await
                .unwrap();
        }
        assert_exact(&hub, &sink, clock.now() - c.lag);
        let want = expected_alerts(&sink, &rules);
        let got = out.sorted();
        let mut distinct = got.clone();
        distinct.dedup();
        assert_eq!(
            distinct, want,
            "crash point {k}: not one alert per stored matching event"
        );
        // At least once: only a crash between a delivery and its save sends some again.
        repeats += got.len() - distinct.len();
        if !crashed {
            break;
        }
        crashes_seen += 1;
    }
    assert!(crashes_seen > 20, "{crashes_seen} crash points");
    assert!(
        repeats < crashes_seen * 20,
        "{repeats} repeats in {crashes_seen} crashes"
    );
}

#[tokio::test]
async fn without_rules_nothing_is_queued() {
    let clock = ManualClock::new(t0());
    let hub = FakeHub::new(clock.clone(), 25, Order::NewestFirst);
    hub.generate(9, 100, t0() - Duration::days(1), t0() - Duration::minutes(2));
    let (cps, sink) = (MemCheckpoints::default(), MemSink::default());
    let r = run(&hub, &cps, &sink, &clock, &cfg()).await.unwrap();
    assert_eq!((r.alerts_raised, r.alerts_failed), (0, 0));
    assert!(cps
        .peek(&cfg().org)
        .await
        .unwrap()
        .unwrap()
        .alerts_pending
        .is_empty());
}

/// What [`queued`] leaves: the fakes, and the report of the run that queued the alerts.
struct Queued {
    clock: ManualClock,
    hub: FakeHub,
    cps: MemCheckpoints,
    sink: MemSink,
    out: MemAlerts,
    c: PollConfig,
    rules: Rules,
    first: RunReport,
}

impl Queued {
    /// The checkpoint's outbox.
    async fn pending(&self) -> Vec<crate::checkpoint_model::PendingAlerts> {
        self.cps.peek(&self.c.org).await.unwrap().unwrap().alerts_pending
    }

    /// One more run, alerts on.
    async fn run(&self) -> Result<RunReport, RunFailed> {
        run_alerting(
            &self.hub,
            &self.cps,
            &self.sink,
            &self.clock,
            &self.c,
            &self.rules,
            &self.out,
        )
        .await
    }
}

/// Runs with the destination down, so every object with alerts is queued (several of
/// them), then brings the destination back up.
async fn queued(seed: u64) -> Queued {
    let rules = Rules::defaults();
    let clock = ManualClock::new(t0());
    let hub = FakeHub::new(clock.clone(), 25, Order::NewestFirst);
    // A fifth of the fake's events are `oidc.connection.create`, which a default rule matches.
    hub.generate(seed, 400, t0() - Duration::days(2), t0() - Duration::minutes(2));
    let (cps, sink, out) = (
        MemCheckpoints::default(),
        MemSink::default(),
        MemAlerts::default(),
    );
    let mut c = cfg();
    c.batch_events = 50;
    // Windows of about 60 events: a commit each, so several objects wait.
    c.read_events = 120;
    *out.down.lock().unwrap() = true;
    let first = run_alerting(&hub, &cps, &sink, &clock, &c, &rules, &out)
        .await
        .unwrap();
    *out.down.lock().unwrap() = false;
    assert!(cps.peek(&c.org).await.unwrap().unwrap().alerts_pending.len() > 3);
    Queued {
        clock,
        hub,
        cps,
        sink,
        out,
        c,
        rules,
        first,
    }
}

#[tokio::test]
async fn an_object_the_destination_refuses_holds_up_no_other() {
    let q = queued(11).await;
    let pending = q.pending().await;
    let poison = pending[0].key.clone();
    *q.out.refuse.lock().unwrap() = Some(poison.0.clone());
    // The first run stops at the refusal (the destination may be down for all) and moves
    // that object to the back; the next sends every other one.
    let mut last = None;
    for _ in 0..3 {
        q.clock.advance(Duration::minutes(5));
        last = Some(q.run().await.unwrap());
    }
    assert_eq!(
        last.unwrap().alerts_failed,
        u64::from(pending[0].alerts),
        "only the refused object waits"
    );
    let left = q.pending().await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].key, poison);
    let want: Vec<String> = expected_alerts(&q.sink, &q.rules);
    let sent = q.out.sorted();
    assert_eq!(
        sent.len() as u64 + u64::from(pending[0].alerts),
        want.len() as u64
    );
    // Once accepted, it goes too.
    *q.out.refuse.lock().unwrap() = None;
    q.clock.advance(Duration::minutes(5));
    q.run().await.unwrap();
    assert_eq!(q.out.sorted(), want);
}

#[tokio::test]
async fn an_object_gone_from_the_output_is_let_go_and_the_rest_is_sent() {
    let q = queued(12).await;
    let pending = q.pending().await;
    let gone = pending[1].key.clone();
    let body = q.sink.objects.lock().unwrap().remove(&gone).unwrap();
    let lost: Vec<String> = {
        let mut v = Vec::new();
        for r in encode::decode(&body).unwrap() {
            let id = r["event_id"].as_str().unwrap().to_string();
            v.extend(q.rules.matching(&r).map(|rule| alert_id(&rule.id, &id)));
        }
        v
    };
    q.clock.advance(Duration::minutes(5));
    let r = q.run().await.unwrap();
    assert_eq!(
        r.alerts_failed,
        lost.len() as u64,
        "counted, and said in an error line"
    );
    assert!(q.pending().await.is_empty());
    // Everything else was sent (the removed object's events are read again later by
    // verify; here only the alerts matter).
    let mut want = expected_alerts(&q.sink, &q.rules);
    want.retain(|a| !lost.contains(a));
    let mut sent = q.out.sorted();
    sent.retain(|a| !lost.contains(a));
    assert_eq!(sent, want);
}

#[tokio::test]
async fn delivery_stops_at_the_deadline_and_the_next_run_goes_on() {
    let q = queued(13).await;
    let before = q.pending().await;
    q.clock.advance(Duration::minutes(5));
    let p = Poller {
        api: &q.hub,
        checkpoints: &q.cps,
        sink: &q.sink,
        clock: &q.clock,
        alerts: Some(Alerting {
            rules: &q.rules,
            out: &q.out,
        }),
        page_sizes: None,
        surface: None,
    };
    let r = p.run(&q.c, Some(q.clock.now())).await.unwrap();
    assert_eq!(r.alerts_raised, 0, "nothing is sent past the deadline");
    assert_eq!(q.pending().await, before);
    q.clock.advance(Duration::minutes(5));
    q.run().await.unwrap();
    assert_eq!(q.out.sorted(), expected_alerts(&q.sink, &q.rules));
}
