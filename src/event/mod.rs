//! The audit event as Docker Hub sends it, and everything derived from it without I/O:
//! the canonical form and `event_id` ([`id`]), the stored record ([`record`]),
//! NDJSON+gzip encoding ([`encode`]) and object keys ([`key`]).

pub mod encode;
pub mod id;
pub mod key;
pub mod record;
pub mod tree;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use tree::Node;

/// One audit event exactly as Docker Hub served it, with its parsed timestamp.
///
/// Kept as text, not as a map: one allocation per event instead of one per key and value,
/// and the id and the record are written from it with copies of slices.
///
/// Invariant: `text` is the compact JSON of every field the Hub sent, unchanged, with the
/// keys of every object sorted bytewise (what serde_json writes for the fields read into a
/// `Map`); `text[stamp]` is the top-level `timestamp` value, a JSON string; `timestamp` is
/// its parsed value; `slots[i]` is where in `text` the field named
/// [`record::ADDED_SORTED`]`[i]` would go (the start of the entry after it, or the closing
/// brace); `collides` says whether the Hub sent a field under one of those names.
#[derive(Clone, PartialEq)]
pub struct HubEvent {
    /// UTF-8 by construction (written from parsed strings); bytes, so nothing checks it again.
    text: Box<[u8]>,
    stamp: (usize, usize),
    slots: [usize; 4],
    collides: bool,
    timestamp: DateTime<Utc>,
    action: Option<Box<str>>,
}

impl std::fmt::Debug for HubEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("HubEvent")
            .field(&String::from_utf8_lossy(&self.text))
            .finish()
    }
}

/// Why an event from the wire cannot be stored as it is.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EventError {
    #[error("an audit log entry is not a JSON object")]
    NotAnObject,
    #[error("an audit log entry has no timestamp")]
    MissingTimestamp,
    #[error("an audit log entry has a timestamp that is not a date-time string: {0}")]
    BadTimestamp(String),
    #[error("an audit log entry has an `action` that is not a string")]
    BadAction,
}

impl HubEvent {
    /// The bytes its text takes: what holding it costs, about.
    pub fn size(&self) -> usize {
        self.text.len()
    }

    /// Checks the two fields the collector relies on (`timestamp`, `action`) and keeps the
    /// rest verbatim, unknown fields included.
    pub fn from_wire(value: Value) -> Result<Self, EventError> {
        Self::check(value).map_err(|(e, _)| e)
    }

    /// [`HubEvent::from_wire`], giving the item back when it is not a readable event.
    pub fn check(value: Value) -> Result<Self, (EventError, Value)> {
        let text = value.to_string();
        match Node::parse(text.as_bytes()) {
            Ok(node) => Self::from_node(node).map_err(|(e, _)| (e, value)),
            // serde_json reads back what it wrote, but for nesting deeper than its limit
            // (128), which no page can hold; kept as an error rather than a panic.
            Err(_) => Err((EventError::NotAnObject, value)),
        }
    }

    /// [`HubEvent::check`] of an item of a parsed page, giving the item back when it is
    /// not a readable event (for the quarantine, without a copy).
    pub fn from_node(mut node: Node<'_>) -> Result<Self, (EventError, Node<'_>)> {
        if !matches!(node, Node::Object(_)) {
            return Err((EventError::NotAnObject, node));
        }
        node.sort();
        let timestamp = match node.get("timestamp") {
            None | Some(Node::Null) => Err(EventError::MissingTimestamp),
            Some(Node::String(s)) => parse_timestamp(s),
            Some(other) => Err(EventError::BadTimestamp(truncate(&other.to_text(), 64))),
        };
        let action = match node.get("action") {
            None | Some(Node::Null) => Ok(None),
            Some(Node::String(s)) => Ok(Some(Box::from(s.as_ref()))),
            Some(_) => Err(EventError::BadAction),
        };
        let (timestamp, action) = match (timestamp, action) {
            (Ok(t), Ok(a)) => (t, a),
            (Err(e), _) | (_, Err(e)) => return Err((e, node)),
        };
        let Node::Object(entries) = &node else {
            unreachable!("checked above")
        };
        let mut out = Vec::with_capacity(512);
        let mut stamp = (0, 0);
        let mut slots = [usize::MAX; 4];
        let mut collides = false;
        out.push(b'{');
        for (i, (k, v)) in entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            for (slot, name) in slots.iter_mut().zip(record::ADDED_SORTED) {
                if *slot == usize::MAX && name.as_bytes() <= k.as_bytes() {
                    *slot = out.len();
                    collides |= name == k.as_ref();
                }
            }
            tree::write_str(&mut out, k);
            out.push(b':');
            let start = out.len();
            v.write(&mut out);
            if k == "timestamp" {
                stamp = (start, out.len());
            }
        }
        for slot in slots.iter_mut().filter(|s| **s == usize::MAX) {
            *slot = out.len();
        }
        out.push(b'}');
        Ok(HubEvent {
            text: out.into_boxed_slice(),
            stamp,
            slots,
            collides,
            timestamp,
            action,
        })
    }

    pub fn timestamp(&self) -> DateTime<Utc> {
        self.timestamp
    }
    /// The Hub's fields, parsed again from the kept text (off the hot path: alert rules,
    /// the rare record whose field names collide with ours). Through [`Node`], not
    /// `serde_json::from_slice`: with serde_json's `raw_value` (which another crate may turn
    /// on) a `Value` refuses an object keyed `$serde_json::private::RawValue`, and the Hub
    /// may send any key.
    pub fn fields(&self) -> Map<String, Value> {
        match Node::parse(&self.text).map(|n| n.to_value()) {
            Ok(Value::Object(m)) => m,
            // The text was written from a parsed object: it reads back as one.
            _ => unreachable!("the kept text of an event is a JSON object"),
        }
    }
    /// The fields as compact JSON, keys sorted at every level.
    pub fn text(&self) -> &[u8] {
        &self.text
    }
    /// The text around the `timestamp` value: before it and after it.
    pub fn around_timestamp(&self) -> (&[u8], &[u8]) {
        (&self.text[..self.stamp.0], &self.text[self.stamp.1..])
    }
    /// Whether two events have the same fields but for how `timestamp` is written.
    pub fn same_but_timestamp(&self, other: &HubEvent) -> bool {
        self.around_timestamp() == other.around_timestamp()
    }
    /// Where the fields the collector adds go in [`HubEvent::text`] (see the invariant), or
    /// `None` when the Hub sent a field under one of their names.
    pub fn slots(&self) -> Option<&[usize; 4]> {
        (!self.collides).then_some(&self.slots)
    }
    pub fn action(&self) -> Option<&str> {
        self.action.as_deref()
    }
    /// The part of `action` before the first dot (`repo.tag.push` → `repo`); `unknown` when
    /// the Hub sent no action.
    pub fn category(&self) -> &str {
        match self.action() {
            Some(a) if !a.is_empty() => a.split('.').next().unwrap_or(a),
            _ => "unknown",
        }
    }
}

/// Parses an RFC 3339 date-time with or without fractional seconds, with `Z` or an offset.
pub fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, EventError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| EventError::BadTimestamp(truncate(s, 64)))
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_unknown_fields_and_parses_both_precisions() {
        let e = HubEvent::from_wire(json!({
            "action": "repo.tag.push", "timestamp": "2021-02-19T01:34:35Z", "new_field": [1, 2]
        }))
        .unwrap();
        assert_eq!(e.fields()["new_field"], json!([1, 2]));
        assert_eq!(e.category(), "repo");
        let f = HubEvent::from_wire(json!({"timestamp": "2021-02-19T01:34:35.123456+00:00"})).unwrap();
        assert_eq!(f.timestamp().timestamp_subsec_micros(), 123456);
        assert_eq!(f.category(), "unknown");
    }

    #[test]
    fn rejects_what_it_cannot_place() {
        assert_eq!(HubEvent::from_wire(json!([1])), Err(EventError::NotAnObject));
        assert_eq!(
            HubEvent::from_wire(json!({"action": "x"})),
            Err(EventError::MissingTimestamp)
        );
        assert!(matches!(
            HubEvent::from_wire(json!({"timestamp": 12})),
            Err(EventError::BadTimestamp(_))
        ));
        assert!(matches!(
            HubEvent::from_wire(json!({"timestamp": "yesterday"})),
            Err(EventError::BadTimestamp(_))
        ));
        assert_eq!(
            HubEvent::from_wire(json!({"timestamp": "2021-02-19T01:34:35Z", "action": 3})),
            Err(EventError::BadAction)
        );
    }

    #[test]
    fn same_but_timestamp_is_the_canonical_form() {
        let ev = |v| HubEvent::from_wire(v).unwrap();
        let a = ev(json!({"timestamp": "2021-02-19T01:34:35Z", "x": 1, "d": {"b": 1, "a": 2}}));
        let b = ev(json!({"d": {"a": 2, "b": 1}, "x": 1, "timestamp": "2021-02-19T01:34:35.000+00:00"}));
        assert!(a.same_but_timestamp(&b));
        assert_eq!(id::canonical(&a), id::canonical(&b));
        // Equal as JSON values, written (and so identified) differently: not the same event.
        let z = ev(json!({"timestamp": "2021-02-19T01:34:35Z", "x": 0.0}));
        let nz = ev(json!({"timestamp": "2021-02-19T01:34:35Z", "x": -0.0}));
        assert!(!z.same_but_timestamp(&nz));
        assert_ne!(id::canonical(&z), id::canonical(&nz));
    }

    /// serde_json's `raw_value` (on in builds where another crate enables it) gives this
    /// key a meaning when reading a `Value`; from the Hub it is just a key, kept as sent.
    #[test]
    fn a_key_serde_json_reserves_is_kept_as_any_other() {
        let body = br#"{"logs": [{"timestamp": "2021-02-19T01:34:35Z", "org": "x", "d": {"$serde_json::private::RawValue": 0}}]}"#;
        let page = crate::hub::wire::parse_page(body).unwrap();
        assert_eq!(page.events.len(), 1);
        let e = &page.events[0];
        assert_eq!(e.fields()["d"]["$serde_json::private::RawValue"], json!(0));
        let org = crate::types::Org::new("acme").unwrap();
        let mut out = Vec::new();
        record::write(&mut out, &org, &crate::types::EventId("ab".into()), e, b"{}");
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(r#""d":{"$serde_json::private::RawValue":0}"#),
            "{text}"
        );
        assert!(text.contains(r#""hub_org":"x""#), "{text}");
        // And it reads back (status, verify).
        let back = encode::decode(&encode::encode(&[e.fields()])).unwrap();
        assert_eq!(back, vec![e.fields()]);
    }
}
