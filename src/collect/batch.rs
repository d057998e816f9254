//! A batch: the new events of consecutive complete windows, ready to become objects.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};

use crate::alert::Rules;
use crate::checkpoint_model::{Checkpoint, PendingObject};
use crate::event::id::assign_ids;
use crate::event::key::{object_key, ObjectKey};
use crate::event::{encode, record, HubEvent};
use crate::types::{EventId, Org, Window};

/// Events of the windows `[from, covered_to)`, minus those already stored.
///
/// Invariant: every event the API served for those windows is either in `events` or has
/// its id in the checkpoint's `seen` (a duplicate).
pub struct Batch {
    pub from: DateTime<Utc>,
    pub covered_to: DateTime<Utc>,
    events: Vec<(EventId, HubEvent)>,
    ids: HashSet<EventId>,
    /// The bytes of `events`' texts.
    bytes: usize,
    pub duplicates: u64,
}

/// One object to write: where, what it holds, its bytes.
pub struct Object {
    pub meta: PendingObject,
    pub body: Vec<u8>,
    pub events: usize,
}

impl Batch {
    pub fn new(from: DateTime<Utc>) -> Self {
        Batch {
            from,
            covered_to: from,
            events: Vec::new(),
            ids: HashSet::new(),
            bytes: 0,
            duplicates: 0,
        }
    }

    /// A batch of events already read and given ids (what `verify --repair` found
    /// missing), covering `[from, to)`.
    pub fn of(from: DateTime<Utc>, to: DateTime<Utc>, events: Vec<(EventId, HubEvent)>) -> Self {
        Batch {
            from,
            covered_to: to,
            ids: events.iter().map(|(id, _)| id.clone()).collect(),
            bytes: events.iter().map(|(_, e)| e.size()).sum(),
            events,
            duplicates: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The bytes its events take (their texts): with [`Self::len`], what decides when it
    /// is committed.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds a complete window. `events` must be every event of `w` from one consistent
    /// read (so ordinals of identical events are right), and `w` must start where the
    /// batch ends.
    pub fn add_window(&mut self, org: &Org, w: Window, events: Vec<HubEvent>, cp: &Checkpoint) {
        debug_assert_eq!(w.from, self.covered_to, "windows must be contiguous");
        for (id, e) in assign_ids(org, events) {
            if cp.seen.contains_key(&id) || self.ids.contains(&id) {
                self.duplicates += 1;
            } else {
                self.ids.insert(id.clone());
                self.bytes += e.size();
                self.events.push((id, e));
            }
        }
        self.covered_to = w.to;
    }

    /// Turns the batch into objects, one per UTC date of the events, records sorted by
    /// (timestamp, id) so the same events always give the same bytes. With `rules`, each
    /// object counts the alerts its records raise.
    pub fn into_objects(self, org: &Org, prov: &record::Provenance, rules: Option<&Rules>) -> Vec<Object> {
        let mut by_day: BTreeMap<NaiveDate, Vec<(EventId, HubEvent)>> = BTreeMap::new();
        for (id, e) in self.events {
            by_day
                .entry(e.timestamp().date_naive())
                .or_default()
                .push((id, e));
        }
        by_day
            .into_iter()
            .map(|(day, events)| {
                let ids: Vec<EventId> = events.iter().map(|(id, _)| id.clone()).collect();
                let first = events
                    .iter()
                    .map(|(_, e)| e.timestamp())
                    .min()
                    .unwrap_or_default();
                object(org, object_key(org, day, first, &ids), events, prov, rules)
            })
            .collect()
    }
}

/// The objects of an interrupted commit, made again from a fresh read of their events.
pub struct RemadeObjects {
    pub objects: Vec<Object>,
    /// Recorded events the fresh read no longer served (expired from Docker Hub).
    pub lost: u64,
}

impl RemadeObjects {
    /// Nothing to make again: every object of the commit is stored.
    pub fn none() -> Self {
        RemadeObjects {
            objects: Vec::new(),
            lost: 0,
        }
    }
}

/// Makes `missing` objects again, each under its **recorded key** and holding exactly the
/// recorded events that `read` (a fresh read of their time range, with ids) still holds.
/// The same key means a late upload of the original and this one cannot both land
/// (`If-None-Match`), and the same events mean they hold the same trail.
pub fn remake_objects(
    org: &Org,
    missing: &[PendingObject],
    read: Vec<(EventId, HubEvent)>,
    prov: &record::Provenance,
    rules: Option<&Rules>,
) -> RemadeObjects {
    let mut by_id: HashMap<EventId, HubEvent> = read.into_iter().collect();
    let mut lost = 0;
    let objects = missing
        .iter()
        .filter_map(|o| {
            let events: Vec<(EventId, HubEvent)> = o
                .events
                .iter()
                .filter_map(|(id, _)| match by_id.remove(id) {
                    Some(e) => Some((id.clone(), e)),
                    None => {
                        lost += 1;
                        None
                    }
                })
                .collect();
            (!events.is_empty()).then(|| object(org, o.key.clone(), events, prov, rules))
        })
        .collect();
    RemadeObjects { objects, lost }
}

/// One object under `key`: records sorted by (timestamp, id), so the same events always
/// give the same bytes.
fn object(
    org: &Org,
    key: ObjectKey,
    mut events: Vec<(EventId, HubEvent)>,
    prov: &record::Provenance,
    rules: Option<&Rules>,
) -> Object {
    events.sort_by(|a, b| (a.1.timestamp(), &a.0).cmp(&(b.1.timestamp(), &b.0)));
    // Rules see the Hub's fields, as the stored record keeps them.
    let alerts = rules.map_or(0, |rules| {
        events
            .iter()
            .map(|(_, e)| rules.matching(&e.fields()).count() as u32)
            .sum()
    });
    let collector = record::collector_json(prov);
    let mut w = encode::Writer::default();
    for (id, e) in &events {
        w.line(|buf| record::write(buf, org, id, e, &collector));
    }
    Object {
        body: w.finish(),
        events: events.len(),
        meta: PendingObject {
            key,
            events: events.into_iter().map(|(id, e)| (id, e.timestamp())).collect(),
            alerts,
        },
    }
}
