//! One row of a compacted day, from one raw record: the Glue table's columns, with
//! `timestamp` as microseconds since the epoch (UTC).
//!
//! Values are what the raw table shows for them: a string as it is, null or absent as null,
//! anything else (a number, a nested object) as its JSON text, which is what the JSON SerDe
//! and DuckDB's `read_json` give for a string column.

use serde_json::Value;

use crate::event::parse_timestamp;

/// The four provenance fields of `collector`, in the table's order.
pub const COLLECTOR_FIELDS: [&str; 4] = ["ingested_at", "window_from", "window_to", "run_id"];

/// The plain string columns before `collector`, in the table's order.
pub const LEADING: [&str; 5] = ["account", "action", "action_description", "actor", "category"];

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Row {
    /// account, action, action_description, actor, category.
    pub leading: [Option<String>; 5],
    pub collector: Option<[Option<String>; 4]>,
    pub data: Option<Vec<(String, Option<String>)>>,
    pub event_id: String,
    pub name: Option<String>,
    /// Microseconds since the epoch, UTC.
    pub timestamp: i64,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    }
}

impl Row {
    /// The row of one raw record; an error says why the record is not one this tool wrote.
    pub fn from_record(line: &[u8]) -> Result<Row, String> {
        let v: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON ({e})"))?;
        let o = v.as_object().ok_or("not a JSON object")?;
        let event_id = o
            .get("event_id")
            .and_then(Value::as_str)
            .ok_or("no event_id")?
            .to_string();
        let ts = o.get("timestamp").and_then(Value::as_str).ok_or("no timestamp")?;
        let timestamp = parse_timestamp(ts)
            .map_err(|_| format!("the timestamp {:?} is not RFC 3339", crate::types::clip(ts, 40)))?
            .timestamp_micros();
        let collector = match o.get("collector") {
            Some(Value::Object(c)) => Some(COLLECTOR_FIELDS.map(|f| text(c.get(f)))),
            _ => None,
        };
        let data = match o.get("data") {
            Some(Value::Object(m)) => Some(m.iter().map(|(k, v)| (k.clone(), text(Some(v)))).collect()),
            _ => None,
        };
        Ok(Row {
            leading: LEADING.map(|f| text(o.get(f))),
            collector,
            data,
            event_id,
            name: text(o.get("name")),
            timestamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_becomes_the_tables_columns() {
        let line = br#"{"account":"acme","action":"repo.tag.push","actor":"jdoe","category":"repo","collector":{"ingested_at":"2026-01-01T00:00:01Z","run_id":"r1","window_from":"a","window_to":"b"},"data":{"tag":"v1","n":5,"o":{"x":1},"z":null},"event_id":"abc","name":"acme/web","org":"acme","timestamp":"2026-01-01T00:00:00.123456Z","extra":1}"#;
        let r = Row::from_record(line).unwrap();
        assert_eq!(r.leading[0].as_deref(), Some("acme"));
        assert_eq!(r.leading[2], None, "action_description is absent");
        assert_eq!(r.collector.as_ref().unwrap()[3].as_deref(), Some("r1"));
        let data = r.data.unwrap();
        assert!(data.contains(&("n".to_string(), Some("5".to_string()))));
        assert!(data.contains(&("o".to_string(), Some(r#"{"x":1}"#.to_string()))));
        assert!(data.contains(&("z".to_string(), None)));
        assert_eq!(r.timestamp % 1_000_000, 123_456);
    }

    #[test]
    fn a_record_without_id_or_time_is_refused() {
        assert!(Row::from_record(br#"{"timestamp":"2026-01-01T00:00:00Z"}"#).is_err());
        assert!(Row::from_record(br#"{"event_id":"a","timestamp":"yesterday"}"#).is_err());
        assert!(Row::from_record(b"[1]").is_err());
        assert!(Row::from_record(b"{oops").is_err());
    }
}
