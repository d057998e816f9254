//! Metrics as CloudWatch Embedded Metric Format: one JSON line on stdout per run, which
//! CloudWatch turns into metrics with the dimension `org` (no API call, no extra latency).

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

pub const NAMESPACE: &str = "DockerHubAudit";

/// What one run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunMetrics {
    pub events_written: u64,
    pub duplicates_dropped: u64,
    pub objects_written: u64,
    pub api_requests: u64,
    pub throttled_requests: u64,
    /// Seconds between the watermark and the end of the run; absent before the first commit.
    pub watermark_age_seconds: Option<f64>,
    pub run_duration_ms: f64,
    /// 1 when the run failed (alarm on it), else 0.
    pub runs_failed: u64,
}

/// The EMF document for one run of `org`, timestamped `at`.
pub fn emf(org: &str, at: DateTime<Utc>, m: &RunMetrics) -> Value {
    let mut metrics = vec![
        ("EventsWritten", "Count", json!(m.events_written)),
        ("DuplicatesDropped", "Count", json!(m.duplicates_dropped)),
        ("ObjectsWritten", "Count", json!(m.objects_written)),
        ("ApiRequests", "Count", json!(m.api_requests)),
        ("ThrottledRequests", "Count", json!(m.throttled_requests)),
        ("RunDuration", "Milliseconds", json!(m.run_duration_ms)),
        ("RunsFailed", "Count", json!(m.runs_failed)),
    ];
    if let Some(age) = m.watermark_age_seconds {
        metrics.push(("WatermarkAge", "Seconds", json!(age)));
    }
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["org"]],
                "Metrics": metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    doc.insert("org".into(), json!(org));
    for (name, _, value) in metrics {
        doc.insert(name.into(), value);
    }
    Value::Object(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_has_every_declared_metric_as_a_member() {
        let m = RunMetrics {
            events_written: 3,
            watermark_age_seconds: Some(61.5),
            ..Default::default()
        };
        let doc = emf("acme", DateTime::from_timestamp(1_700_000_000, 0).unwrap(), &m);
        let decl = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(decl["Namespace"], NAMESPACE);
        assert_eq!(decl["Dimensions"], json!([["org"]]));
        assert_eq!(doc["org"], "acme");
        for metric in decl["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(doc[name].is_number(), "{name} declared but not set");
        }
        assert_eq!(doc["EventsWritten"], 3);
        assert_eq!(doc["WatermarkAge"], 61.5);
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
    }
}
