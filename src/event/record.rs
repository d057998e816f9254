//! The stored record: the Hub's event verbatim plus what the collector adds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::HubEvent;
use crate::types::{rfc3339, EventId, Org, RunId, Window};

/// Field names the collector adds at the top level of every record.
pub const ADDED_FIELDS: [&str; 4] = ["event_id", "org", "category", "collector"];

/// Where and when a record was collected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub ingested_at: DateTime<Utc>,
    pub window: Window,
    pub run_id: RunId,
}

/// Builds the record: every Hub field kept as sent, then `event_id`, `org`, `category` and
/// `collector` (provenance). Should the Hub ever send a field with one of those names, its
/// value is kept under `hub_<name>` rather than overwritten.
pub fn build(org: &Org, id: &EventId, event: &HubEvent, prov: &Provenance) -> Map<String, Value> {
    let mut rec = event.fields().clone();
    for name in ADDED_FIELDS {
        if let Some(v) = rec.remove(name) {
            rec.insert(format!("hub_{name}"), v);
        }
    }
    rec.insert("event_id".into(), Value::String(id.0.clone()));
    rec.insert("org".into(), Value::String(org.as_str().into()));
    rec.insert("category".into(), Value::String(event.category().into()));
    let mut c = Map::new();
    c.insert("ingested_at".into(), Value::String(rfc3339(prov.ingested_at)));
    c.insert("window_from".into(), Value::String(rfc3339(prov.window.from)));
    c.insert("window_to".into(), Value::String(rfc3339(prov.window.to)));
    c.insert("run_id".into(), Value::String(prov.run_id.0.clone()));
    rec.insert("collector".into(), Value::Object(c));
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
}
