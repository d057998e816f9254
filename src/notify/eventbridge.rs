//! Alerts to an EventBridge bus with `PutEvents`: `source` `dockerhub-audit`, a
//! `detail-type` per severity, and the alert (rule, org, record) as `detail`. At most 10
//! entries per call (the API's limit); an entry EventBridge refuses fails the delivery, so
//! the whole object's alerts are sent again later (consumers drop repeats by `alert_id`).

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

/// EventBridge refuses an entry over 256 KB; a record this large is cut down to its id and
/// action rather than lost (the whole record is in the output).
const MAX_DETAIL: usize = 200 * 1024;

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
        for chunk in alerts.chunks(10) {
            let entries = chunk
                .iter()
                .map(|a| {
                    Ok(PutEventsRequestEntry::builder()
                        .source(SOURCE)
                        .detail_type(detail_type(a.severity))
                        .detail(detail(a)?)
                        .event_bus_name(&self.bus)
                        .build())
                })
                .collect::<Result<Vec<_>, AlertError>>()?;
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
                    "EventBridge refused {} of {} alerts on the bus {} ({why})",
                    out.failed_entry_count(),
                    chunk.len(),
                    self.bus
                )));
            }
        }
        Ok(())
    }
}
