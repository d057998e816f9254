//! The canonical form of an event and its `event_id`.
//!
//! Docker Hub gives events no id, so the id is derived from the event itself: the same
//! event always gets the same id, on any machine, in any run. Identical events (same
//! canonical form, hence the same timestamp) are told apart by their ordinal among the
//! copies the API holds for that second.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::HubEvent;
use crate::types::{rfc3339, EventId, Org};

/// The canonical form: compact JSON with keys sorted at every level, and the timestamp
/// written in one normal form, so that a change in the Hub's formatting of the same instant
/// (`…35Z` vs `…35.000Z` vs `+00:00`) does not change the id.
pub fn canonical(event: &HubEvent) -> String {
    let mut out = Vec::new();
    write_canonical(&mut out, event);
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// Appends the canonical form to `out`: the event's sorted text with `timestamp` in its
/// normal form.
pub fn write_canonical(out: &mut Vec<u8>, event: &HubEvent) {
    for piece in pieces(event, &stamp_json(event)) {
        out.extend_from_slice(piece);
    }
}

/// The normal form of the event's `timestamp`, as a JSON string.
fn stamp_json(event: &HubEvent) -> String {
    format!("\"{}\"", rfc3339(event.timestamp()))
}

/// The canonical form in three slices, so that it is hashed without being copied.
fn pieces<'e>(event: &'e HubEvent, stamp: &'e str) -> [&'e [u8]; 3] {
    let (before, after) = event.around_timestamp();
    [before, stamp.as_bytes(), after]
}

/// `event_id` = the first 128 bits of SHA-256 over org, canonical form and ordinal.
pub fn event_id(org: &Org, canonical: &str, ordinal: u32) -> EventId {
    let mut h = Sha256::new();
    h.update(org.as_str().as_bytes());
    h.update([0]);
    h.update(canonical.as_bytes());
    h.update([0]);
    h.update(ordinal.to_be_bytes());
    EventId(hex::encode(&h.finalize()[..16]))
}

/// Gives each event its id. `events` must hold every copy the API served of each second
/// it covers, so that ordinals count the copies of identical events.
pub fn assign_ids(org: &Org, events: Vec<HubEvent>) -> Vec<(EventId, HubEvent)> {
    // The hash state after org and canonical form is shared by the ordinals; the id of
    // ordinal 0 names the form (128 bits) for counting its copies.
    let mut ordinals: HashMap<[u8; 16], u32> = HashMap::with_capacity(events.len());
    let mut prefix = Sha256::new();
    prefix.update(org.as_str().as_bytes());
    prefix.update([0]);
    events
        .into_iter()
        .map(|e| {
            let mut h = prefix.clone();
            for piece in pieces(&e, &stamp_json(&e)) {
                h.update(piece);
            }
            h.update([0]);
            let first = id_bytes(h.clone(), 0);
            let n = ordinals.entry(first).or_insert(0);
            let id = if *n == 0 { first } else { id_bytes(h, *n) };
            *n += 1;
            (EventId(hex::encode(id)), e)
        })
        .collect()
}

fn id_bytes(mut h: Sha256, ordinal: u32) -> [u8; 16] {
    h.update(ordinal.to_be_bytes());
    let mut id = [0; 16];
    id.copy_from_slice(&h.finalize()[..16]);
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn ev(v: Value) -> HubEvent {
        HubEvent::from_wire(v).unwrap()
    }

    #[test]
    fn canonical_form_sorts_keys_and_normalises_time() {
        let a = ev(json!({"b": 1, "a": {"y": 1, "x": 2}, "timestamp": "2021-02-19T01:34:35Z"}));
        let b = ev(json!({"timestamp": "2021-02-19T01:34:35.000+00:00", "a": {"x": 2, "y": 1}, "b": 1}));
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(
            canonical(&a),
            r#"{"a":{"x":2,"y":1},"b":1,"timestamp":"2021-02-19T01:34:35Z"}"#
        );
    }

    #[test]
    fn ids_are_stable_and_distinct_by_ordinal() {
        let org = Org::new("acme").unwrap();
        let e = json!({"action": "repo.tag.push", "timestamp": "2021-02-19T01:34:35Z", "actor": "x"});
        let ids = assign_ids(&org, vec![ev(e.clone()), ev(e.clone()), ev(e.clone())]);
        let ids: Vec<_> = ids.into_iter().map(|(i, _)| i).collect();
        assert_eq!(ids.len(), 3);
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[1], ids[2]);
        // Same input, same ids: across runs and machines.
        let again: Vec<_> = assign_ids(&org, vec![ev(e.clone()), ev(e.clone())])
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(&ids[..2], &again[..]);
        assert_eq!(ids[0], event_id(&org, &canonical(&ev(e)), 0));
        assert_eq!(ids[0].0.len(), 32);
        // Another org, another id.
        let other = assign_ids(
            &Org::new("other").unwrap(),
            vec![ev(
                json!({"timestamp": "2021-02-19T01:34:35Z", "action": "repo.tag.push", "actor": "x"}),
            )],
        );
        assert_ne!(other[0].0, ids[0]);
    }

    #[test]
    fn any_field_change_changes_the_id() {
        let org = Org::new("acme").unwrap();
        let a = assign_ids(
            &org,
            vec![ev(
                json!({"timestamp": "2021-02-19T01:34:35Z", "data": {"tag": "1"}}),
            )],
        );
        let b = assign_ids(
            &org,
            vec![ev(
                json!({"timestamp": "2021-02-19T01:34:35Z", "data": {"tag": "2"}}),
            )],
        );
        assert_ne!(a[0].0, b[0].0);
    }
}

#[cfg(test)]
mod property {
    use super::*;
    use serde_json::Value;

    proptest::proptest! {
        #![proptest_config(crate::event::tree::strategies::config(12))]
        /// The canonical form is, for any event, the fields as a map with `timestamp` in
        /// its normal form, written by serde_json (keys sorted at every level).
        #[test]
        fn canonical_form_is_the_sorted_map(event in crate::event::tree::strategies::event()) {
            let e = HubEvent::from_wire(event.clone()).unwrap();
            let Value::Object(mut m) = event else { unreachable!() };
            m.insert("timestamp".into(), Value::String(rfc3339(e.timestamp())));
            proptest::prop_assert_eq!(canonical(&e), serde_json::to_string(&m).unwrap());
        }
    }
}

#[cfg(test)]
mod pinned {
    use super::*;
    use serde_json::json;

    /// The derivation is part of the stored data's contract: changing it would make every
    /// re-read event look new. This value must never change.
    #[test]
    fn event_id_is_pinned() {
        let org = Org::new("acme").unwrap();
        let e = HubEvent::from_wire(json!({
            "account": "acme", "action": "repo.tag.push", "name": "acme/api", "actor": "alice",
            "data": {"digest": "sha256:00", "tag": "v1"}, "timestamp": "2021-02-19T01:34:35Z",
            "action_description": "pushed the tag v1"
        }))
        .unwrap();
        assert_eq!(
            event_id(&org, &canonical(&e), 0).0,
            "67b758338369b39fe44c39ef69e73924"
        );
    }
}
