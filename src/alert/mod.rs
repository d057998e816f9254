//! Alerts on risky changes: the rules ([`rules`]) and the alert a matching stored record
//! raises. Delivery is a port ([`crate::ports::AlertSink`]); when alerts are raised is the
//! commit protocol's business ([`crate::collect::alerts`]).

pub mod rules;

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use rules::{Rule, Rules, RulesError, Severity};

/// The rule an alert comes from, as the alert carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub why: String,
}

/// One alert: a stored record that a rule matched.
///
/// `alert_id` is the same every time the same rule matches the same event, so a consumer
/// drops repeats (delivery is at least once).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub alert_id: String,
    pub org: String,
    pub event_id: String,
    pub severity: Severity,
    pub rule: RuleRef,
    /// The object the record is stored in.
    pub object: String,
    /// The record as stored.
    pub record: Map<String, Value>,
}

/// The deterministic id of the alert `rule_id` raises for `event_id`.
pub fn alert_id(rule_id: &str, event_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"dockerhub-audit alert\n");
    h.update(rule_id.as_bytes());
    h.update(b"\n");
    h.update(event_id.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// The alerts the records of the object `object` raise under `rules`, in record order,
/// then rules order.
pub fn raise(rules: &Rules, org: &str, object: &str, records: Vec<Map<String, Value>>) -> Vec<Alert> {
    let mut out = Vec::new();
    for record in records {
        let matched: Vec<&Rule> = rules.matching(&record).collect();
        if matched.is_empty() {
            continue;
        }
        let event_id = record
            .get("event_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let alert = |r: &Rule, record: Map<String, Value>| Alert {
            alert_id: alert_id(&r.id, &event_id),
            org: org.to_string(),
            event_id: event_id.clone(),
            severity: r.severity,
            rule: RuleRef {
                id: r.id.clone(),
                title: r.title.clone(),
                severity: r.severity,
                why: r.why.clone(),
            },
            object: object.to_string(),
            record,
        };
        for r in matched {
            out.push(alert(r, record.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_deterministic_and_per_rule() {
        assert_eq!(alert_id("a", "e1"), alert_id("a", "e1"));
        assert_ne!(alert_id("a", "e1"), alert_id("b", "e1"));
        assert_ne!(alert_id("a", "e1"), alert_id("a", "e2"));
        assert_eq!(alert_id("a", "e1").len(), 32);
    }

    #[test]
    fn raises_one_alert_per_matching_rule() {
        let rules = Rules::defaults();
        let rec = |id: &str, action: &str| {
            json!({"event_id": id, "action": action, "data": {}})
                .as_object()
                .unwrap()
                .clone()
        };
        let alerts = raise(
            &rules,
            "acme",
            "k",
            vec![
                rec("e1", "repo.tag.push"),
                rec("e2", "oidc.connection.create"),
                rec("e3", "org.domain.delete"),
            ],
        );
        let got: Vec<(&str, &str)> = alerts
            .iter()
            .map(|a| (a.event_id.as_str(), a.rule.id.as_str()))
            .collect();
        assert_eq!(got, [("e2", "oidc-connection-changed"), ("e3", "domain-deleted")]);
        assert_eq!(alerts[0].alert_id, alert_id("oidc-connection-changed", "e2"));
        assert_eq!(alerts[1].record["action"], "org.domain.delete");
    }
}
