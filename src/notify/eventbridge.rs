//! Alerts to an EventBridge bus with `PutEvents`: `source` `dockerhub-audit`, a
//! `detail-type` per severity, and the alert (rule, org, record) as `detail`. A call holds
//! at most 10 entries and 256 KB (the API's limits); an entry EventBridge refuses fails the
//! delivery, so the whole object's alerts are sent again later (consumers drop repeats by
//! `alert_id`).

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use crate::alert::{Alert, Severity};
use crate::aws::error_text;
use crate::ports::{AlertError, AlertSink};

pub const SOURCE: &str = "dockerhub-audit";

/// The `detail-type` of alerts of `severity` (rules can route on it).
pub fn detail_type(severity: Severity) -> String {
    format!("Docker Hub audit alert ({})", severity.as_str())
}

/// A record this large is cut down to its id, action, actor and time rather than refused
/// (the whole record is in the output); with rules' titles and reasons bounded, an entry
/// stays well under EventBridge's 256 KB.
const MAX_DETAIL: usize = 100 * 1024;
/// The most bytes of entries in one call: under EventBridge's 256 KB, which counts the
/// source, detail-type and detail of each (and a few bytes of time).
const MAX_CALL: usize = 240 * 1024;

#[derive(Debug, Clone)]
pub struct EventBridgeAlerts {
    client: Client,
    /// A bus name or ARN.
    bus: String,
}

impl EventBridgeAlerts {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        EventBridgeAlerts {
            client,
            bus: bus.into(),
        }
    }
}

fn detail(a: &Alert) -> Result<String, AlertError> {
    let text = serde_json::to_string(a).map_err(|e| AlertError(e.to_string()))?;
    if text.len() <= MAX_DETAIL {
        return Ok(text);
    }
    let mut small = a.clone();
    small
        .record
        .retain(|k, _| ["event_id", "action", "actor", "timestamp", "account", "name"].contains(&k.as_str()));
    small
        .record
        .insert("truncated".into(), serde_json::Value::Bool(true));
    serde_json::to_string(&small).map_err(|e| AlertError(e.to_string()))
}

#[async_trait]
impl AlertSink for EventBridgeAlerts {
    async fn send(&self, alerts: &[Alert]) -> Result<(), AlertError> {
        // Calls of at most 10 entries and MAX_CALL bytes.
        let mut calls: Vec<Vec<PutEventsRequestEntry>> = vec![Vec::new()];
        let mut bytes = 0;
        for a in alerts {
            let detail = detail(a)?;
            let kind = detail_type(a.severity);
            let size = SOURCE.len() + kind.len() + detail.len() + 14;
            let current = calls.last().map_or(0, Vec::len);
            if current == 10 || (current > 0 && bytes + size > MAX_CALL) {
                calls.push(Vec::new());
                bytes = 0;
            }
            bytes += size;
            if let Some(call) = calls.last_mut() {
                call.push(
                    PutEventsRequestEntry::builder()
                        .source(SOURCE)
                        .detail_type(kind)
                        .detail(detail)
                        .event_bus_name(&self.bus)
                        .build(),
                );
            }
        }
        for entries in calls.into_iter().filter(|c| !c.is_empty()) {
            let n = entries.len();
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    AlertError(format!(
                        "EventBridge PutEvents to the bus {} failed ({}); check that the bus exists and the function may call events:PutEvents on it",
                        self.bus,
                        error_text(&e)
                    ))
                })?;
            if out.failed_entry_count() > 0 {
                let why = out
                    .entries()
                    .iter()
                    .filter_map(|e| e.error_message().or(e.error_code()))
                    .next()
                    .unwrap_or("no reason given")
                    .to_string();
                return Err(AlertError(format!(
                    "EventBridge refused {} of {n} alerts on the bus {} ({why})",
                    out.failed_entry_count(),
                    self.bus
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{alert_id, RuleRef};

    #[test]
    fn a_huge_record_is_cut_down_not_refused() {
        let mut record = serde_json::Map::new();
        record.insert("event_id".into(), "e".into());
        record.insert("action".into(), "repo.update".into());
        record.insert("data".into(), serde_json::json!({"blob": "x".repeat(300 * 1024)}));
        let a = Alert {
            alert_id: alert_id("r", "e"),
            org: "acme".into(),
            event_id: "e".into(),
            severity: Severity::High,
            rule: RuleRef {
                id: "r".into(),
                title: "t".into(),
                severity: Severity::High,
                why: "w".into(),
            },
            object: "k".into(),
            record,
        };
        let d = detail(&a).unwrap();
        assert!(d.len() < MAX_DETAIL, "{}", d.len());
        let v: serde_json::Value = serde_json::from_str(&d).unwrap();
        assert_eq!(v["record"]["truncated"], true);
        assert_eq!(v["record"]["action"], "repo.update");
    }
}
