//! The stored record: the Hub's event verbatim plus what the collector adds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::tree::write_str;
use super::HubEvent;
use crate::types::{rfc3339, EventId, Org, RunId, Window};

/// Field names the collector adds at the top level of every record.
pub const ADDED_FIELDS: [&str; 4] = ["event_id", "org", "category", "collector"];

/// [`ADDED_FIELDS`] in key order, the order they take in a record.
pub const ADDED_SORTED: [&str; 4] = ["category", "collector", "event_id", "org"];

/// Where and when a record was collected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub ingested_at: DateTime<Utc>,
    pub window: Window,
    pub run_id: RunId,
}

/// The `collector` object of every record written with `prov`, as JSON: the same for a
/// whole object, so written once.
pub fn collector_json(prov: &Provenance) -> Vec<u8> {
    let mut c = Map::new();
    c.insert("ingested_at".into(), Value::String(rfc3339(prov.ingested_at)));
    c.insert("window_from".into(), Value::String(rfc3339(prov.window.from)));
    c.insert("window_to".into(), Value::String(rfc3339(prov.window.to)));
    c.insert("run_id".into(), Value::String(prov.run_id.0.clone()));
    serde_json::to_vec(&c).expect("a JSON map serializes")
}

/// Appends the record of `event` to `out` as compact JSON: byte for byte what serializing
/// [`build`]'s map gives (keys in order). `collector` is [`collector_json`] of the
/// provenance. The event's own text is copied in slices, with our fields put in their
/// places between them.
pub fn write(out: &mut Vec<u8>, org: &Org, id: &EventId, event: &HubEvent, collector: &[u8]) {
    let Some(slots) = event.slots() else {
        // A Hub field under one of our names (rare): renamed in a copy that has the other
        // three of ours.
        let rec = fields_of(org, id, event);
        return write_map(out, rec.iter(), &[("collector", Added::Raw(collector))]);
    };
    // Sorted, as the map orders its keys (bytewise): the order of ADDED_SORTED.
    let added: [(&str, Added); 4] = [
        ("category", Added::Str(event.category())),
        ("collector", Added::Raw(collector)),
        ("event_id", Added::Str(&id.0)),
        ("org", Added::Str(org.as_str())),
    ];
    let text = event.text();
    let mut any = false;
    let mut sep = |out: &mut Vec<u8>| {
        if std::mem::replace(&mut any, true) {
            out.push(b',');
        }
    };
    out.push(b'{');
    let mut last = 1;
    for (&slot, (name, value)) in slots.iter().zip(&added) {
        // The entries between the last slot and this one, without the comma after them.
        let between = &text[last..slot];
        let between = between.strip_suffix(b",").unwrap_or(between);
        if !between.is_empty() {
            sep(out);
            out.extend_from_slice(between);
        }
        sep(out);
        put_key(out, name);
        value.write(out);
        last = slot;
    }
    let rest = &text[last..text.len() - 1];
    if !rest.is_empty() {
        sep(out);
        out.extend_from_slice(rest);
    }
    out.push(b'}');
}

/// Writes a record's map (in key order, without `collector`) with `added` (in key order)
/// merged in at their places: the fallback of [`write`].
fn write_map<'f>(
    out: &mut Vec<u8>,
    fields: impl Iterator<Item = (&'f String, &'f Value)>,
    added: &[(&str, Added)],
) {
    let mut pending = added.iter().peekable();
    out.push(b'{');
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
    };
    for (k, v) in fields {
        while let Some((name, value)) = pending.next_if(|(name, _)| name.as_bytes() < k.as_bytes()) {
            sep(out);
            put_key(out, name);
            value.write(out);
        }
        sep(out);
        put_key(out, k);
        serde_json::to_writer(&mut *out, v).expect("writing to memory");
    }
    for (name, value) in pending {
        sep(out);
        put_key(out, name);
        value.write(out);
    }
    out.push(b'}');
}

enum Added<'a> {
    Str(&'a str),
    Raw(&'a [u8]),
}

impl Added<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Added::Str(s) => write_str(out, s),
            Added::Raw(b) => out.extend_from_slice(b),
        }
    }
}

fn put_key(out: &mut Vec<u8>, k: &str) {
    write_str(out, k);
    out.push(b':');
}

/// Builds the record: every Hub field kept as sent, then `event_id`, `org`, `category` and
/// `collector` (provenance). Should the Hub ever send a field with one of those names, its
/// value is kept under `hub_<name>` rather than overwritten.
pub fn build(org: &Org, id: &EventId, event: &HubEvent, prov: &Provenance) -> Map<String, Value> {
    let mut rec = fields_of(org, id, event);
    let c = serde_json::from_slice(&collector_json(prov)).expect("our own JSON");
    rec.insert("collector".into(), c);
    rec
}

/// The record but `collector`.
fn fields_of(org: &Org, id: &EventId, event: &HubEvent) -> Map<String, Value> {
    let mut rec = event.fields();
    for name in ADDED_FIELDS {
        if let Some(v) = rec.remove(name) {
            rec.insert(format!("hub_{name}"), v);
        }
    }
    rec.insert("event_id".into(), Value::String(id.0.clone()));
    rec.insert("org".into(), Value::String(org.as_str().into()));
    rec.insert("category".into(), Value::String(event.category().into()));
    rec
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_hub_fields_and_adds_ours() {
        let org = Org::new("acme").unwrap();
        let e = HubEvent::from_wire(json!({
            "account": "acme", "action": "org.member.add", "timestamp": "2026-01-02T03:04:05Z",
            "org": "sent-by-hub", "extra": {"k": "v"}
        }))
        .unwrap();
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let prov = Provenance {
            ingested_at: t,
            window: Window::new(t, t),
            run_id: RunId("r1".into()),
        };
        let r = build(&org, &EventId("ab".into()), &e, &prov);
        assert_eq!(r["account"], "acme");
        assert_eq!(r["extra"], json!({"k": "v"}));
        assert_eq!(r["org"], "acme");
        assert_eq!(r["hub_org"], "sent-by-hub");
        assert_eq!(r["category"], "org");
        assert_eq!(r["event_id"], "ab");
        assert_eq!(r["collector"]["run_id"], "r1");
    }

    #[test]
    fn write_gives_the_bytes_of_the_built_record() {
        let org = Org::new("acme").unwrap();
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let prov = Provenance {
            ingested_at: t,
            window: Window::new(t, t),
            run_id: RunId("r\"1".into()),
        };
        let collector = collector_json(&prov);
        for event in [
            json!({"action": "repo.tag.push", "timestamp": "2026-01-02T03:04:05Z", "a": 1, "zz": [1.5, "é\n"], "d": {"y": 1, "x": null}}),
            json!({"timestamp": "2026-01-02T03:04:05.25+00:00", "category": "x", "org": 3, "event_id": "e", "collector": {}, "hub_org": 1}),
            json!({"timestamp": "2026-01-02T03:04:05Z", "cat": 1, "colle": 2, "event": 3, "o": 4, "org_": 5, "\u{1}": 6}),
        ] {
            let e = HubEvent::from_wire(event).unwrap();
            let id = EventId("ab".into());
            let mut out = Vec::new();
            write(&mut out, &org, &id, &e, &collector);
            let want = serde_json::to_vec(&build(&org, &id, &e, &prov)).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(want).unwrap());
        }
    }

    proptest::proptest! {
        #![proptest_config(crate::event::tree::strategies::config(11))]
        /// The record spliced from the event's text is the record built as a map, for any
        /// event, our field names among its own or not.
        #[test]
        fn spliced_records_are_the_built_ones(event in crate::event::tree::strategies::event()) {
            let org = Org::new("acme").unwrap();
            let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
            let prov = Provenance { ingested_at: t, window: Window::new(t, t), run_id: RunId("r".into()) };
            let e = HubEvent::from_wire(event).unwrap();
            let id = EventId("0123".into());
            let mut out = b"earlier line\n".to_vec();
            write(&mut out, &org, &id, &e, &collector_json(&prov));
            let want = serde_json::to_vec(&build(&org, &id, &e, &prov)).unwrap();
            proptest::prop_assert_eq!(String::from_utf8_lossy(&out[13..]), String::from_utf8_lossy(&want));
        }
    }
}
