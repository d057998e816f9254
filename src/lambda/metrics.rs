//! Metrics as CloudWatch Embedded Metric Format: one JSON line on stdout per invocation,
//! which CloudWatch turns into metrics (no API call, no extra latency).
//!
//! CloudWatch bills every metric (name + dimensions) that is sent in an hour, so the line is
//! built for cost: per org, only `WatermarkAge` is published on every run (its alarm treats
//! silence as failure); `RunsFailed`, `ThrottledRequests`, `EventsQuarantined` and a
//! verification's `EventsMissing` / `EventsDuplicated`, `AlertsRaised` and `AlertsFailed` are published per org only when they
//! are not zero, so a healthy org costs one metric. The deployment-wide totals carry no
//! dimension. Every count is also a plain field of the line, for Logs Insights.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

pub const NAMESPACE: &str = "DockerHubAudit";

/// What one invocation measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunMetrics {
    pub events_written: u64,
    pub duplicates_dropped: u64,
    pub objects_written: u64,
    pub api_requests: u64,
    pub throttled_requests: u64,
    /// Items Docker Hub served that are not readable events, newly quarantined.
    pub events_quarantined: u64,
    /// Seconds between the watermark and the end of the run; absent before the first commit.
    pub watermark_age_seconds: Option<f64>,
    pub run_duration_ms: f64,
    /// 1 when the invocation failed in a way a retry does not fix (alarm on it), else 0.
    pub runs_failed: u64,
    /// A verification: events Docker Hub serves that were not stored (before any repair),
    /// extra stored copies, and events written by the repair.
    pub events_missing: u64,
    pub events_duplicated: u64,
    pub events_repaired: u64,
    /// Alerts delivered, and alerts that could not be (kept, retried by the next run).
    pub alerts_raised: u64,
    pub alerts_failed: u64,
    /// Whether alerts are on: without them their totals are not published (each metric
    /// costs money every hour it is sent).
    pub alerts_on: bool,
}

/// Seconds from `watermark` to `now`: what `WatermarkAge` publishes.
pub fn age_seconds(now: DateTime<Utc>, watermark: DateTime<Utc>) -> f64 {
    (now - watermark).num_milliseconds() as f64 / 1000.0
}

impl RunMetrics {
    /// A poll's metrics, from the summary both shells share, with the watermark's age at
    /// `now`.
    pub fn of(s: &crate::service::RunSummary, now: DateTime<Utc>) -> Self {
        let r = &s.report;
        RunMetrics {
            events_written: r.events_written,
            duplicates_dropped: r.duplicates_dropped,
            objects_written: r.objects_written,
            api_requests: s.api_requests,
            throttled_requests: s.throttled_requests,
            events_quarantined: r.events_quarantined,
            watermark_age_seconds: r.watermark.map(|w| age_seconds(now, w)),
            alerts_raised: r.alerts_raised,
            alerts_failed: r.alerts_failed,
            ..RunMetrics::default()
        }
    }
}

/// Metrics published with the dimension `org` (each only when present in the line).
pub const PER_ORG: [&str; 8] = [
    "WatermarkAge",
    "RunsFailed",
    "ThrottledRequests",
    "EventsQuarantined",
    "EventsMissing",
    "EventsDuplicated",
    "AlertsRaised",
    "AlertsFailed",
];
/// Metrics published without dimensions: totals over every org of the deployment.
pub const DEPLOYMENT: [&str; 8] = [
    "EventsWritten",
    "ApiRequests",
    "ThrottledRequests",
    "RunsFailed",
    "EventsQuarantined",
    "EventsMissing",
    "AlertsRaised",
    "AlertsFailed",
];

/// The EMF document of one invocation, timestamped `at`. `org` is `None` when the input
/// named no valid org: then nothing is published per org.
pub fn emf(org: Option<&str>, at: DateTime<Utc>, m: &RunMetrics) -> Value {
    let fields: Vec<(&str, &str, Option<Value>)> = vec![
        ("EventsWritten", "Count", Some(json!(m.events_written))),
        ("DuplicatesDropped", "Count", Some(json!(m.duplicates_dropped))),
        ("ObjectsWritten", "Count", Some(json!(m.objects_written))),
        ("ApiRequests", "Count", Some(json!(m.api_requests))),
        ("ThrottledRequests", "Count", Some(json!(m.throttled_requests))),
        ("RunDuration", "Milliseconds", Some(json!(m.run_duration_ms))),
        ("RunsFailed", "Count", Some(json!(m.runs_failed))),
        ("EventsQuarantined", "Count", Some(json!(m.events_quarantined))),
        ("EventsMissing", "Count", Some(json!(m.events_missing))),
        ("EventsDuplicated", "Count", Some(json!(m.events_duplicated))),
        ("EventsRepaired", "Count", Some(json!(m.events_repaired))),
        ("AlertsRaised", "Count", Some(json!(m.alerts_raised))),
        ("AlertsFailed", "Count", Some(json!(m.alerts_failed))),
        (
            "WatermarkAge",
            "Seconds",
            m.watermark_age_seconds.map(|a| json!(a)),
        ),
    ];
    let unit = |name: &str| fields.iter().find(|f| f.0 == name).map(|f| f.1).unwrap_or("None");
    let declare = |names: &[&str]| -> Vec<Value> {
        names
            .iter()
            .map(|n| json!({"Name": n, "Unit": unit(n)}))
            .collect()
    };
    let per_org: Vec<&str> = PER_ORG
        .into_iter()
        .filter(|name| match *name {
            "WatermarkAge" => m.watermark_age_seconds.is_some(),
            "RunsFailed" => m.runs_failed > 0,
            "ThrottledRequests" => m.throttled_requests > 0,
            "EventsQuarantined" => m.events_quarantined > 0,
            "EventsMissing" => m.events_missing > 0,
            "EventsDuplicated" => m.events_duplicated > 0,
            "AlertsRaised" => m.alerts_raised > 0,
            "AlertsFailed" => m.alerts_failed > 0,
            _ => false,
        })
        .collect();
    let deployment: Vec<&str> = DEPLOYMENT
        .into_iter()
        .filter(|name| m.alerts_on || !name.starts_with("Alerts"))
        .collect();
    let mut directives = vec![json!({
        "Namespace": NAMESPACE,
        "Dimensions": [[]],
        "Metrics": declare(&deployment),
    })];
    if org.is_some() && !per_org.is_empty() {
        directives.push(json!({
            "Namespace": NAMESPACE,
            "Dimensions": [["org"]],
            "Metrics": declare(&per_org),
        }));
    }
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({"Timestamp": at.timestamp_millis(), "CloudWatchMetrics": directives}),
    );
    doc.insert("org".into(), json!(org.unwrap_or("-")));
    for (name, _, value) in fields {
        if let Some(v) = value {
            doc.insert(name.into(), v);
        }
    }
    Value::Object(doc)
}

/// The metric names an EMF document declares with exactly these dimension sets (e.g.
/// `[["org"]]` or `[[]]`): what CloudWatch will publish that way. For checks and tests.
pub fn declared(doc: &Value, dimensions: &Value) -> Vec<String> {
    let directives = doc["_aws"]["CloudWatchMetrics"].as_array();
    directives
        .into_iter()
        .flatten()
        .filter(|d| &d["Dimensions"] == dimensions)
        .flat_map(|d| d["Metrics"].as_array().into_iter().flatten())
        .filter_map(|m| m["Name"].as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthy_run_publishes_one_metric_per_org() {
        let m = RunMetrics {
            events_written: 3,
            watermark_age_seconds: Some(61.5),
            alerts_on: true,
            ..Default::default()
        };
        let off = emf(None, Utc::now(), &RunMetrics::default());
        assert!(!declared(&off, &json!([[]]))
            .iter()
            .any(|n| n.starts_with("Alerts")));
        let doc = emf(
            Some("acme"),
            DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            &m,
        );
        assert_eq!(declared(&doc, &json!([["org"]])), ["WatermarkAge"]);
        assert_eq!(declared(&doc, &json!([[]])), DEPLOYMENT);
        for d in doc["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(d["Namespace"], NAMESPACE);
            for metric in d["Metrics"].as_array().unwrap() {
                let name = metric["Name"].as_str().unwrap();
                assert!(doc[name].is_number(), "{name} declared but not set");
                assert_ne!(metric["Unit"], "None");
            }
        }
        assert_eq!(doc["org"], "acme");
        assert_eq!(doc["EventsWritten"], 3);
        assert_eq!(
            doc["DuplicatesDropped"], 0,
            "every count stays a field of the line"
        );
        assert_eq!(doc["WatermarkAge"], 61.5);
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
    }

    #[test]
    fn failures_and_throttling_are_published_per_org_only_when_they_happen() {
        let m = RunMetrics {
            runs_failed: 1,
            throttled_requests: 4,
            alerts_failed: 2,
            ..Default::default()
        };
        let doc = emf(Some("acme"), Utc::now(), &m);
        assert_eq!(
            declared(&doc, &json!([["org"]])),
            ["RunsFailed", "ThrottledRequests", "AlertsFailed"]
        );
        assert_eq!(doc["AlertsFailed"], 2);
        assert!(doc.get("WatermarkAge").is_none(), "no watermark, no value");
        // An input without a valid org publishes the totals only.
        let doc = emf(None, Utc::now(), &m);
        assert!(declared(&doc, &json!([["org"]])).is_empty());
        assert_eq!(doc["RunsFailed"], 1);
        assert_eq!(doc["org"], "-");
    }
}
