//! Fast in-process fakes of the ports, for the poller's and the shells' unit tests: a
//! Docker Hub with the unfriendly choices switchable (order, page cap, bounds, events
//! landing while a client pages, an outage), and stores and a sink that can "crash" after a
//! number of operations.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{json, Value};

use crate::checkpoint_model::Checkpoint;
use crate::clock::{Clock, ManualClock};
use crate::event::id::canonical;
use crate::event::key::ObjectKey;
use crate::event::{encode, HubEvent};
use crate::ports::{AuditLog, Checkpoints, HubError, Listed, PageQuery, PutOutcome, Sink, StoreError};
use crate::types::{Org, RunId};

// ---------- a fake Hub with the unfriendly choices switchable ----------

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Order {
    NewestFirst,
    OldestFirst,
    Shuffled,
}

/// An event held by the fake: (event, timestamp, visible from).
/// An event, its time and when it became visible, in microseconds: the fake compares
/// them for every event of every page, and chrono's comparisons are slow unoptimized.
pub type Held = (Value, i64, i64);

pub struct FakeHub {
    pub clock: ManualClock,
    pub events: Mutex<Vec<Held>>,
    pub cap: u32,
    pub order: Order,
    pub from_inclusive: bool,
    pub to_inclusive: bool,
    /// Events inserted (visible at once, timestamp inside the query) on page >= 2 requests.
    pub insert_while_paging: Mutex<Vec<Value>>,
    /// Insert them in the query's last second (the padding after a dense second) rather
    /// than its middle.
    pub insert_at_end: bool,
    /// The request number (1-based) from which every request fails.
    pub fail_from: Mutex<Option<u64>>,
    pub requests: Mutex<u64>,
}

pub fn ts(t: DateTime<Utc>) -> String {
    crate::types::rfc3339(t)
}

impl FakeHub {
    pub fn new(clock: ManualClock, cap: u32, order: Order) -> Self {
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

    pub fn add(&self, e: Value, visible_at: DateTime<Utc>) {
        let t = HubEvent::from_wire(e.clone()).unwrap().timestamp();
        self.events
            .lock()
            .unwrap()
            .push((e, t.timestamp_micros(), visible_at.timestamp_micros()));
    }

    /// `n` events spread over `[from, to)`, with some identical copies in the same second.
    pub fn generate(&self, seed: u64, n: usize, from: DateTime<Utc>, to: DateTime<Utc>) {
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

    pub fn visible_before(&self, before: DateTime<Utc>) -> Vec<String> {
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
pub struct Crash(pub Arc<Mutex<Option<u32>>>);

impl Crash {
    pub fn after(n: u32) -> Self {
        Crash(Arc::new(Mutex::new(Some(n))))
    }
    pub fn spend(&self) -> Result<(), StoreError> {
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
pub struct MemCheckpoints {
    pub items: Arc<Mutex<HashMap<String, Checkpoint>>>,
    pub held: Arc<Mutex<bool>>,
    pub crash: Crash,
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
pub struct MemSink {
    pub objects: Arc<Mutex<BTreeMap<ObjectKey, Vec<u8>>>>,
    pub crash: Crash,
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
    pub fn listed(&self, keep: impl Fn(&str) -> bool) -> Vec<Listed> {
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
    pub fn stored(&self) -> Vec<String> {
        let mut out = Vec::new();
        for body in self.objects.lock().unwrap().values() {
            for r in encode::decode(body).unwrap() {
                out.push(crate::inspect::hub_canonical(&r).expect("a stored record is a valid event"));
            }
        }
        out.sort();
        out
    }
    pub fn ids(&self) -> Vec<String> {
        let mut out = Vec::new();
        for body in self.objects.lock().unwrap().values() {
            for r in encode::decode(body).unwrap() {
                out.push(r["event_id"].as_str().unwrap().to_string());
            }
        }
        out
    }
}
