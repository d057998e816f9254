//! The audit event as Docker Hub sends it, and everything derived from it without I/O:
//! the canonical form and `event_id` ([`id`]), the stored record ([`record`]),
//! NDJSON+gzip encoding ([`encode`]) and object keys ([`key`]).

pub mod encode;
pub mod id;
pub mod key;
pub mod record;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// One audit event exactly as Docker Hub served it, with its parsed timestamp.
///
/// Invariant: `fields` holds every field the Hub sent, unchanged; `timestamp` is the parsed
/// value of `fields["timestamp"]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HubEvent {
    fields: Map<String, Value>,
    timestamp: DateTime<Utc>,
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
    /// Checks the two fields the collector relies on (`timestamp`, `action`) and keeps the
    /// rest verbatim, unknown fields included.
    pub fn from_wire(value: Value) -> Result<Self, EventError> {
        Self::check(value).map_err(|(e, _)| e)
    }

    /// [`HubEvent::from_wire`], giving the item back when it is not a readable event (for
    /// the quarantine, without a copy).
    pub fn check(value: Value) -> Result<Self, (EventError, Value)> {
        let Value::Object(fields) = value else {
            return Err((EventError::NotAnObject, value));
        };
        let timestamp = match fields.get("timestamp") {
            None | Some(Value::Null) => Err(EventError::MissingTimestamp),
            Some(Value::String(s)) => parse_timestamp(s),
            Some(other) => Err(EventError::BadTimestamp(truncate(&other.to_string(), 64))),
        };
        let action = match fields.get("action") {
            None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
            Some(_) => Err(EventError::BadAction),
        };
        match (timestamp, action) {
            (Ok(timestamp), Ok(())) => Ok(HubEvent { fields, timestamp }),
            (Err(e), _) | (_, Err(e)) => Err((e, Value::Object(fields))),
        }
    }

    pub fn timestamp(&self) -> DateTime<Utc> {
        self.timestamp
    }
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }
    pub fn action(&self) -> Option<&str> {
        self.fields.get("action").and_then(Value::as_str)
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
}
