//! Metrics as CloudWatch Embedded Metric Format: one JSON line on stdout per invocation,
//! which CloudWatch turns into metrics (no API call, no extra latency).
//!
//! CloudWatch bills every metric (name + dimensions) for each hour it is sent in, so the line
//! is built for cost: a metric is published only when it is not zero, per org and for the
//! deployment (without dimension) alike, so a healthy deployment sends none of them. The
//! exceptions: the watchdog's `StaleOrgs` and `OldestWatermarkAge` on every watch (its alarm
//! treats silence as failure), and, with per-org alarms, each org's `WatermarkAge` on every
//! run. Every count is also a plain field of the line, for Logs Insights (`EventsWritten`,
//! `ApiRequests`, `AlertsRaised` are fields alone: no alarm needs them as metrics).

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
    /// Whether the org's `WatermarkAge` is published (per-org alarms are on).
    pub org_watermark: bool,
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
pub const PER_ORG: [&str; 7] = [
    "WatermarkAge",
    "RunsFailed",
    "ThrottledRequests",
    "EventsQuarantined",
    "EventsMissing",
    "EventsDuplicated",
    "AlertsFailed",
];
/// Metrics published without dimensions (each only when not zero): totals over every org
/// of the deployment, each with an alarm.
pub const DEPLOYMENT: [&str; 5] = [
    "ThrottledRequests",
    "RunsFailed",
    "EventsQuarantined",
    "EventsMissing",
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
            "WatermarkAge" => m.org_watermark && m.watermark_age_seconds.is_some(),
            "RunsFailed" => m.runs_failed > 0,
            "ThrottledRequests" => m.throttled_requests > 0,
            "EventsQuarantined" => m.events_quarantined > 0,
            "EventsMissing" => m.events_missing > 0,
            "EventsDuplicated" => m.events_duplicated > 0,
            "AlertsFailed" => m.alerts_failed > 0,
            _ => false,
        })
        .collect();
    let deployment: Vec<&str> = DEPLOYMENT
        .into_iter()
        .filter(|name| match *name {
            "ThrottledRequests" => m.throttled_requests > 0,
            "RunsFailed" => m.runs_failed > 0,
            "EventsQuarantined" => m.events_quarantined > 0,
            "EventsMissing" => m.events_missing > 0,
            "AlertsFailed" => m.alerts_on && m.alerts_failed > 0,
            _ => false,
        })
        .collect();
    let mut directives = Vec::new();
    if !deployment.is_empty() {
        directives.push(json!({
            "Namespace": NAMESPACE,
            "Dimensions": [[]],
            "Metrics": declare(&deployment),
        }));
    }
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

/// The watchdog's EMF document, timestamped `at`: `StaleOrgs` and `OldestWatermarkAge`
/// without dimension. `None` (the checkpoints could not be read): no value, so the alarm,
/// which treats missing data as breaching, fires.
pub fn watch_emf(at: DateTime<Utc>, report: Option<&crate::watch::WatchReport>) -> Value {
    let mut doc = Map::new();
    let mut metrics = Vec::new();
    if let Some(r) = report {
        metrics.push(json!({"Name": "StaleOrgs", "Unit": "Count"}));
        doc.insert("StaleOrgs".into(), json!(r.stale.len()));
        if let Some(age) = r.oldest_watermark_age {
            metrics.push(json!({"Name": "OldestWatermarkAge", "Unit": "Seconds"}));
            doc.insert("OldestWatermarkAge".into(), json!(age));
        }
        doc.insert("Orgs".into(), json!(r.orgs));
        doc.insert("JobsStarted".into(), json!(r.started.len()));
        doc.insert("WatchErrors".into(), json!(r.errors.len()));
    }
    let directives: Vec<Value> = if metrics.is_empty() {
        Vec::new()
    } else {
        vec![json!({"Namespace": NAMESPACE, "Dimensions": [[]], "Metrics": metrics})]
    };
    doc.insert(
        "_aws".into(),
        json!({"Timestamp": at.timestamp_millis(), "CloudWatchMetrics": directives}),
    );
    doc.insert("mode".into(), json!("watch"));
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
    fn a_healthy_run_publishes_no_metric_unless_per_org_alarms_want_its_age() {
        let m = RunMetrics {
            events_written: 3,
            api_requests: 2,
            watermark_age_seconds: Some(61.5),
            alerts_on: true,
            alerts_raised: 1,
            ..Default::default()
        };
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let doc = emf(Some("acme"), at, &m);
        assert!(declared(&doc, &json!([["org"]])).is_empty(), "{doc}");
        assert!(declared(&doc, &json!([[]])).is_empty(), "{doc}");
        assert_eq!(doc["org"], "acme");
        assert_eq!(doc["EventsWritten"], 3, "every count stays a field of the line");
        assert_eq!(doc["ApiRequests"], 2);
        assert_eq!(doc["DuplicatesDropped"], 0);
        assert_eq!(doc["WatermarkAge"], 61.5);
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
        // With per-org alarms: the org's age, on every run.
        let with = RunMetrics {
            org_watermark: true,
            ..m
        };
        let doc = emf(Some("acme"), at, &with);
        assert_eq!(declared(&doc, &json!([["org"]])), ["WatermarkAge"]);
        for d in doc["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(d["Namespace"], NAMESPACE);
            for metric in d["Metrics"].as_array().unwrap() {
                let name = metric["Name"].as_str().unwrap();
                assert!(doc[name].is_number(), "{name} declared but not set");
                assert_ne!(metric["Unit"], "None");
            }
        }
    }

    #[test]
    fn the_watch_publishes_its_two_metrics_or_none_when_it_knows_nothing() {
        let report = crate::watch::WatchReport {
            orgs: 3,
            oldest_watermark_age: Some(120.0),
            ..Default::default()
        };
        let doc = watch_emf(Utc::now(), Some(&report));
        assert_eq!(declared(&doc, &json!([[]])), ["StaleOrgs", "OldestWatermarkAge"]);
        assert_eq!(
            (doc["StaleOrgs"].clone(), doc["OldestWatermarkAge"].clone()),
            (json!(0), json!(120.0))
        );
        let unknown = watch_emf(Utc::now(), None);
        assert!(declared(&unknown, &json!([[]])).is_empty());
        assert!(unknown.get("StaleOrgs").is_none());
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
        assert_eq!(
            declared(&doc, &json!([[]])),
            ["ThrottledRequests", "RunsFailed"],
            "alerts off: AlertsFailed is not a metric"
        );
        // An input without a valid org publishes the totals only.
        let doc = emf(None, Utc::now(), &m);
        assert!(declared(&doc, &json!([["org"]])).is_empty());
        assert_eq!(doc["RunsFailed"], 1);
        assert_eq!(doc["org"], "-");
    }
}
