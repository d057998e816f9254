//! The Lambda's configuration: environment variables (set by the template) and the
//! per-invocation input from EventBridge Scheduler.

use chrono::Duration;
use serde::Deserialize;

use crate::config::{parse_duration, PollConfig};
use crate::types::Org;

/// Read once per cold start.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub table: String,
    pub bucket: String,
    pub prefix: String,
    /// Secret name per org; `{org}` is replaced by the org name.
    pub secret_pattern: String,
    pub kms_key_id: Option<String>,
    pub hub_url: url::Url,
    pub lookback: Duration,
    pub lag: Duration,
    pub overlap: Duration,
    /// Stop starting requests this long before the Lambda's deadline.
    pub safety_margin: Duration,
    pub batch_events: usize,
    /// The EventBridge bus (name or ARN) alerts go to; `None`: no alerts.
    pub alert_bus: Option<String>,
    /// Where the alert rules come from (when alerts are on).
    pub alert_rules: RulesFrom,
}

/// The source of the Lambda's alert rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesFrom {
    BuiltIn,
    /// The rules file's text, from an environment variable.
    Inline(String),
    /// An S3 object (bucket, key).
    S3 {
        bucket: String,
        key: String,
    },
}

pub const ENV_TABLE: &str = "DOCKERHUB_AUDIT_TABLE";
pub const ENV_BUCKET: &str = "DOCKERHUB_AUDIT_BUCKET";
pub const ENV_PREFIX: &str = "DOCKERHUB_AUDIT_PREFIX";
pub const ENV_SECRET_PATTERN: &str = "DOCKERHUB_AUDIT_SECRET_PATTERN";
pub const ENV_KMS_KEY_ID: &str = "DOCKERHUB_AUDIT_KMS_KEY_ID";
pub const ENV_HUB_URL: &str = "DOCKERHUB_AUDIT_HUB_URL";
pub const ENV_LOOKBACK: &str = "DOCKERHUB_AUDIT_LOOKBACK";
pub const ENV_LAG: &str = "DOCKERHUB_AUDIT_LAG";
pub const ENV_OVERLAP: &str = "DOCKERHUB_AUDIT_OVERLAP";
pub const ENV_SAFETY_MARGIN: &str = "DOCKERHUB_AUDIT_SAFETY_MARGIN";
pub const ENV_BATCH_EVENTS: &str = "DOCKERHUB_AUDIT_BATCH_EVENTS";
pub const ENV_ALERT_BUS: &str = "DOCKERHUB_AUDIT_ALERT_BUS";
pub const ENV_ALERT_RULES: &str = "DOCKERHUB_AUDIT_ALERT_RULES";
pub const ENV_ALERT_RULES_S3: &str = "DOCKERHUB_AUDIT_ALERT_RULES_S3";

impl Settings {
    /// Reads the settings through `get` (the process environment in production). Errors
    /// name the variable and say what it should hold.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let required =
            |k: &str, what: &str| get(k).ok_or_else(|| format!("{k} is not set: set it to {what}"));
        let duration = |k: &str, default: Duration| match get(k) {
            None => Ok(default),
            Some(v) => parse_duration(&v).map_err(|e| format!("{k}: {e}")),
        };
        let hub_url = match get(ENV_HUB_URL) {
            None => url::Url::parse("https://hub.docker.com").expect("static URL"),
            Some(v) => url::Url::parse(&v).map_err(|e| format!("{ENV_HUB_URL}: {v:?} is not a URL ({e})"))?,
        };
        let batch_events = match get(ENV_BATCH_EVENTS) {
            None => 5000,
            Some(v) => v
                .parse()
                .map_err(|_| format!("{ENV_BATCH_EVENTS}: {v:?} is not a whole number"))?,
        };
        let secret_pattern = get(ENV_SECRET_PATTERN).unwrap_or_else(|| "dockerhub-audit/{org}".into());
        if !secret_pattern.contains("{org}") {
            return Err(format!(
                "{ENV_SECRET_PATTERN} must contain {{org}} (e.g. dockerhub-audit/{{org}})"
            ));
        }
        let alert_rules = match (get(ENV_ALERT_RULES), get(ENV_ALERT_RULES_S3)) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "{ENV_ALERT_RULES} and {ENV_ALERT_RULES_S3} are both set: give the rules one way"
                ))
            }
            (Some(text), None) => RulesFrom::Inline(text),
            (None, Some(uri)) => {
                let (bucket, key) = uri
                    .strip_prefix("s3://")
                    .and_then(|rest| rest.split_once('/'))
                    .filter(|(b, k)| !b.is_empty() && !k.is_empty())
                    .ok_or_else(|| {
                        format!("{ENV_ALERT_RULES_S3}: {uri:?} is not s3://bucket/key of a rules file")
                    })?;
                RulesFrom::S3 {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                }
            }
            (None, None) => RulesFrom::BuiltIn,
        };
        Ok(Settings {
            alert_bus: get(ENV_ALERT_BUS),
            alert_rules,
            table: required(ENV_TABLE, "the DynamoDB checkpoint table's name")?,
            bucket: required(ENV_BUCKET, "the S3 bucket for the audit events")?,
            prefix: get(ENV_PREFIX).unwrap_or_else(|| "dockerhub-audit".into()),
            secret_pattern,
            kms_key_id: get(ENV_KMS_KEY_ID),
            hub_url,
            lookback: duration(ENV_LOOKBACK, PollConfig::DEFAULT_LOOKBACK)?,
            lag: duration(ENV_LAG, PollConfig::DEFAULT_LAG)?,
            overlap: duration(ENV_OVERLAP, PollConfig::DEFAULT_OVERLAP)?,
            safety_margin: duration(ENV_SAFETY_MARGIN, Duration::seconds(20))?,
            batch_events,
        })
    }

    pub fn secret_id(&self, org: &Org) -> String {
        self.secret_pattern.replace("{org}", org.as_str())
    }
}

/// The invocation's input: `{"org": "acme"}`, optionally with per-run overrides; or a
/// verification, `{"org": "acme", "verify": "2d"}` (with `"repair": true` to write what is
/// missing).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub org: String,
    pub lookback: Option<String>,
    pub lag: Option<String>,
    pub overlap: Option<String>,
    /// Verify this far back from now instead of collecting.
    pub verify: Option<String>,
    #[serde(default)]
    pub repair: bool,
}

impl Input {
    /// How far back to verify, when the input asks for a verification.
    pub fn verify_range(&self) -> Result<Option<Duration>, String> {
        match &self.verify {
            None if self.repair => {
                Err("input field \"repair\" goes with \"verify\" (e.g. \"verify\": \"2d\")".into())
            }
            None => Ok(None),
            Some(v) => {
                let d = parse_duration(v).map_err(|e| format!("input field \"verify\": {e}"))?;
                if d <= Duration::zero() || d > Duration::days(400) {
                    return Err(
                        "input field \"verify\" must be longer than 0s and at most 400d (Docker Hub keeps about three months)"
                            .into(),
                    );
                }
                Ok(Some(d))
            }
        }
    }

    /// The run's config: settings, then the input's overrides. Errors say what is wrong.
    pub fn poll_config(&self, s: &Settings) -> Result<PollConfig, String> {
        let org = Org::new(self.org.clone()).map_err(|e| e.to_string())?;
        let mut c = PollConfig::new(org);
        c.lookback = s.lookback;
        c.lag = s.lag;
        c.overlap = s.overlap;
        c.batch_events = s.batch_events;
        let over = |v: &Option<String>, name: &str, into: &mut Duration| -> Result<(), String> {
            if let Some(v) = v {
                *into = parse_duration(v).map_err(|e| format!("input field {name:?}: {e}"))?;
            }
            Ok(())
        };
        over(&self.lookback, "lookback", &mut c.lookback)?;
        over(&self.lag, "lag", &mut c.lag)?;
        over(&self.overlap, "overlap", &mut c.overlap)?;
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn settings_from_env() {
        let s = Settings::from_env(env(&[(ENV_TABLE, "t"), (ENV_BUCKET, "b"), (ENV_LAG, "2m")])).unwrap();
        assert_eq!(s.lag, Duration::minutes(2));
        assert_eq!(s.secret_id(&Org::new("acme").unwrap()), "dockerhub-audit/acme");
        assert_eq!(s.prefix, "dockerhub-audit");
        let e = Settings::from_env(env(&[(ENV_BUCKET, "b")])).unwrap_err();
        assert!(e.contains(ENV_TABLE), "{e}");
        let e = Settings::from_env(env(&[(ENV_TABLE, "t"), (ENV_BUCKET, "b"), (ENV_OVERLAP, "soon")]))
            .unwrap_err();
        assert!(e.contains(ENV_OVERLAP), "{e}");
        let e = Settings::from_env(env(&[
            (ENV_TABLE, "t"),
            (ENV_BUCKET, "b"),
            (ENV_SECRET_PATTERN, "fixed"),
        ]))
        .unwrap_err();
        assert!(e.contains("{org}"), "{e}");
        assert_eq!(s.alert_bus, None);
        assert_eq!(s.alert_rules, RulesFrom::BuiltIn);
        let with = |pairs: &[(&str, &str)]| {
            let mut all = vec![(ENV_TABLE, "t"), (ENV_BUCKET, "b")];
            all.extend_from_slice(pairs);
            Settings::from_env(env(&all))
        };
        let s = with(&[
            (ENV_ALERT_BUS, "bus"),
            (ENV_ALERT_RULES_S3, "s3://cfg/rules/a.toml"),
        ])
        .unwrap();
        assert_eq!(s.alert_bus.as_deref(), Some("bus"));
        assert_eq!(
            s.alert_rules,
            RulesFrom::S3 {
                bucket: "cfg".into(),
                key: "rules/a.toml".into()
            }
        );
        assert!(with(&[(ENV_ALERT_RULES_S3, "cfg/rules.toml")])
            .unwrap_err()
            .contains("s3://bucket/key"));
        assert!(with(&[(ENV_ALERT_RULES_S3, "s3://b/k"), (ENV_ALERT_RULES, "x")])
            .unwrap_err()
            .contains("both"));
    }

    #[test]
    fn input_and_overrides() {
        let s = Settings::from_env(env(&[(ENV_TABLE, "t"), (ENV_BUCKET, "b")])).unwrap();
        let i: Input = serde_json::from_str(r#"{"org": "acme", "lookback": "30d"}"#).unwrap();
        let c = i.poll_config(&s).unwrap();
        assert_eq!(c.lookback, Duration::days(30));
        assert_eq!(c.overlap, Duration::minutes(15));
        assert!(serde_json::from_str::<Input>(r#"{"org": "acme", "lookbak": "30d"}"#).is_err());
        let bad: Input = serde_json::from_str(r#"{"org": "Not An Org"}"#).unwrap();
        assert!(bad.poll_config(&s).is_err());
        let v: Input = serde_json::from_str(r#"{"org": "acme", "verify": "2d", "repair": true}"#).unwrap();
        assert_eq!(v.verify_range(), Ok(Some(Duration::days(2))));
        assert!(v.repair);
        assert_eq!(i.verify_range(), Ok(None));
        for bad in [
            r#"{"org": "acme", "verify": "soon"}"#,
            r#"{"org": "acme", "repair": true}"#,
            r#"{"org": "acme", "verify": "0s"}"#,
        ] {
            let b: Input = serde_json::from_str(bad).unwrap();
            assert!(b.verify_range().is_err(), "{bad}");
        }
    }
}
