//! The Lambda's configuration: environment variables (set by the template) and the
//! per-invocation input from EventBridge Scheduler.

use std::collections::BTreeSet;

use chrono::Duration;
use serde::Deserialize;

use crate::config::{parse_duration, HumanDuration, PollConfig, Setting};
use crate::types::Org;

/// Read once per cold start.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The orgs the stack was deployed for: the function acts for these alone (an input
    /// naming another is refused before anything is read, written or cached).
    pub orgs: BTreeSet<Org>,
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
    /// The Glue view whose compacted days a repair reopens: (database, view); `None`
    /// without compaction.
    pub view: Option<(String, String)>,
    /// Where the Docker Hub credentials are: a secret per org, or one for all.
    pub secrets: SecretsFrom,
    /// Whether each run publishes its org's `WatermarkAge` (for per-org alarms).
    pub org_metrics: bool,
    /// The watchdog's settings.
    pub watch: WatchSettings,
}

/// Where the Docker Hub credentials of an org are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsFrom {
    /// A secret per org, its name from the pattern (`{org}` replaced).
    PerOrg { pattern: String },
    /// One secret holding `{"<org>": {"username": …, "token": …}, …}`.
    Shared { secret_id: String },
}

/// The watch mode's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchSettings {
    /// Data older than this is stale (`WatermarkAgeAlarmMinutes`).
    pub stale_after: Duration,
    /// The SNS topic its messages go to; `None`: none are sent.
    pub alarm_topic: Option<String>,
    /// The compactor function the daily compactions go to; `None`: no jobs are started.
    pub compactor: Option<String>,
    /// How far back each dispatched verification reaches.
    pub verify_range: String,
    pub window: crate::watch::VerifyWindow,
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

pub const ENV_ORGS: &str = "DOCKERHUB_AUDIT_ORGS";
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
pub const ENV_GLUE_DATABASE: &str = "DOCKERHUB_AUDIT_GLUE_DATABASE";
pub const ENV_VIEW: &str = "DOCKERHUB_AUDIT_VIEW";
pub const ENV_SECRET_MODE: &str = "DOCKERHUB_AUDIT_SECRET_MODE";
pub const ENV_SHARED_SECRET: &str = "DOCKERHUB_AUDIT_SHARED_SECRET";
pub const ENV_ORG_METRICS: &str = "DOCKERHUB_AUDIT_ORG_METRICS";
pub const ENV_STALE_AFTER: &str = "DOCKERHUB_AUDIT_STALE_AFTER";
pub const ENV_ALARM_TOPIC: &str = "DOCKERHUB_AUDIT_ALARM_TOPIC";
pub const ENV_COMPACTOR: &str = "DOCKERHUB_AUDIT_COMPACTOR";
pub const ENV_VERIFY_RANGE: &str = "DOCKERHUB_AUDIT_VERIFY_RANGE";
pub const ENV_VERIFY_START: &str = "DOCKERHUB_AUDIT_VERIFY_START";
pub const ENV_VERIFY_SPREAD: &str = "DOCKERHUB_AUDIT_VERIFY_SPREAD";

/// The allow-list of `DOCKERHUB_AUDIT_ORGS`: comma-separated org names, each checked.
pub fn parse_orgs(value: &str) -> Result<BTreeSet<Org>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| Org::new(o).map_err(|e| format!("{ENV_ORGS}: {e}")))
        .collect()
}

/// The view the template creates, when only the database is given.
pub use crate::surface::DEFAULT_VIEW;

/// The Glue view from the environment: both names, or neither (no compaction).
pub fn view_from_env(get: impl Fn(&str) -> Option<String>) -> Option<(String, String)> {
    let get = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let database = get(ENV_GLUE_DATABASE)?;
    Some((
        database,
        get(ENV_VIEW).unwrap_or_else(|| DEFAULT_VIEW.to_string()),
    ))
}

impl Settings {
    /// How long before the Lambda's deadline a run stops starting requests.
    pub const DEFAULT_SAFETY_MARGIN: Duration = Duration::seconds(20);
    /// The secret of org `acme` is `dockerhub-audit/acme`.
    pub const DEFAULT_SECRET_PATTERN: &'static str = "dockerhub-audit/{org}";
    pub const DEFAULT_PREFIX: &'static str = "dockerhub-audit";
    /// What a dispatched verification covers: every day twice, once complete.
    pub const DEFAULT_VERIFY_RANGE: &'static str = "2d";

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
            None => url::Url::parse(PollConfig::DEFAULT_HUB_URL).expect("static URL"),
            Some(v) => url::Url::parse(&v).map_err(|e| format!("{ENV_HUB_URL}: {v:?} is not a URL ({e})"))?,
        };
        crate::hub::trust::check_hub_url(&hub_url).map_err(|e| format!("{ENV_HUB_URL}: {e}"))?;
        let batch_events = match get(ENV_BATCH_EVENTS) {
            None => PollConfig::DEFAULT_BATCH_EVENTS,
            Some(v) => v
                .parse()
                .map_err(|_| format!("{ENV_BATCH_EVENTS}: {v:?} is not a whole number"))?,
        };
        let secret_pattern = get(ENV_SECRET_PATTERN).unwrap_or_else(|| Self::DEFAULT_SECRET_PATTERN.into());
        let secrets = match get(ENV_SECRET_MODE).as_deref() {
            None | Some("per-org") => {
                // A prefix that is a folder of its own: with none, an org's name could be any
                // secret of the account.
                let folder = secret_pattern
                    .split_once("{org}")
                    .is_some_and(|(before, _)| before.len() > 1 && before.ends_with('/'));
                if !folder {
                    return Err(format!(
                        "{ENV_SECRET_PATTERN} must be a non-empty prefix ending in / followed by {{org}} (e.g. \
                         dockerhub-audit/{{org}}), so the function reads only its own secrets"
                    ));
                }
                SecretsFrom::PerOrg {
                    pattern: secret_pattern.clone(),
                }
            }
            Some("shared") => SecretsFrom::Shared {
                secret_id: required(
                    ENV_SHARED_SECRET,
                    "the name of the secret holding every org's token",
                )?,
            },
            Some(other) => {
                return Err(format!(
                    "{ENV_SECRET_MODE}: {other:?} is neither per-org nor shared"
                ))
            }
        };
        let org_metrics = match get(ENV_ORG_METRICS).as_deref() {
            None | Some("none") => false,
            Some("watermark") => true,
            Some(other) => {
                return Err(format!(
                    "{ENV_ORG_METRICS}: {other:?} is neither watermark nor none"
                ))
            }
        };
        let verify_range = get(ENV_VERIFY_RANGE).unwrap_or_else(|| Self::DEFAULT_VERIFY_RANGE.into());
        verify_span(&verify_range).map_err(|e| format!("{ENV_VERIFY_RANGE}: {e}"))?;
        let window = crate::watch::VerifyWindow::parse(
            get(ENV_VERIFY_START)
                .as_deref()
                .unwrap_or(crate::watch::VerifyWindow::DEFAULT_START),
            &get(ENV_VERIFY_SPREAD)
                .unwrap_or_else(|| HumanDuration(crate::watch::VerifyWindow::DEFAULT_SPREAD).to_string()),
        )
        .map_err(|e| format!("{ENV_VERIFY_START} / {ENV_VERIFY_SPREAD}: {e}"))?;
        let watch = WatchSettings {
            stale_after: duration(ENV_STALE_AFTER, crate::watch::WatchConfig::DEFAULT_STALE_AFTER)?,
            alarm_topic: get(ENV_ALARM_TOPIC),
            compactor: get(ENV_COMPACTOR),
            verify_range,
            window,
        };
        let orgs = parse_orgs(&required(
            ENV_ORGS,
            "the organizations this function collects, comma-separated",
        )?)?;
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
            orgs,
            alert_bus: get(ENV_ALERT_BUS),
            alert_rules,
            view: view_from_env(get),
            table: required(ENV_TABLE, "the DynamoDB checkpoint table's name")?,
            bucket: required(ENV_BUCKET, "the S3 bucket for the audit events")?,
            prefix: get(ENV_PREFIX).unwrap_or_else(|| Self::DEFAULT_PREFIX.into()),
            secret_pattern,
            kms_key_id: get(ENV_KMS_KEY_ID),
            hub_url,
            lookback: duration(ENV_LOOKBACK, PollConfig::DEFAULT_LOOKBACK)?,
            lag: duration(ENV_LAG, PollConfig::DEFAULT_LAG)?,
            overlap: duration(ENV_OVERLAP, PollConfig::DEFAULT_OVERLAP)?,
            safety_margin: duration(ENV_SAFETY_MARGIN, Self::DEFAULT_SAFETY_MARGIN)?,
            batch_events,
            secrets,
            org_metrics,
            watch,
        })
    }

    /// The secret holding `org`'s credentials.
    pub fn secret_id(&self, org: &Org) -> String {
        match &self.secrets {
            SecretsFrom::PerOrg { pattern } => pattern.replace("{org}", org.as_str()),
            SecretsFrom::Shared { secret_id } => secret_id.clone(),
        }
    }
}

/// How far back a verification reaches, from its text: longer than 0s, at most 400d.
fn verify_span(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d <= Duration::zero() || d > Duration::days(400) {
        return Err(format!(
            "{text:?} must be longer than 0s and at most 400d (Docker Hub keeps about three months)"
        ));
    }
    Ok(d)
}

/// The invocation's input: `{"org": "acme"}`, optionally with a longer `lookback` for a
/// manual backfill; or a verification, `{"org": "acme", "verify": "2d"}` (with
/// `"repair": true` to write what is missing). An input may only make a run reach further,
/// never skip data: `lag` and `overlap` are the stack's, and refused here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub org: String,
    pub lookback: Option<String>,
    /// Refused (named, so the error says why rather than "unknown field").
    pub lag: Option<String>,
    /// Refused, as `lag`.
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
            Some(v) => verify_span(v)
                .map(Some)
                .map_err(|e| format!("input field \"verify\": {e}")),
        }
    }

    /// The org the input names, if the stack was deployed for it. The error says which
    /// orgs are, so a typo is found at once.
    pub fn org(&self, s: &Settings) -> Result<Org, String> {
        let org = Org::new(self.org.clone()).map_err(|e| e.to_string())?;
        if !s.orgs.contains(&org) {
            let listed: Vec<&str> = s.orgs.iter().map(Org::as_str).collect();
            return Err(format!(
                "{org} is not one of the organizations this stack collects ({}); nothing was read or written. \
                 To collect it, add it to the stack's Organizations parameter and deploy again",
                listed.join(", ")
            ));
        }
        Ok(org)
    }

    /// The run's config: settings, then the input's overrides, which may only reach
    /// further back. Errors say what is wrong.
    pub fn poll_config(&self, s: &Settings) -> Result<PollConfig, String> {
        let org = self.org(s)?;
        for (name, given) in [("lag", &self.lag), ("overlap", &self.overlap)] {
            if given.is_some() {
                return Err(format!(
                    "input field {name:?} is not accepted: it could make a run skip events for good. It is the \
                     stack's setting; an input may give a longer \"lookback\", or \"verify\" and \"repair\""
                ));
            }
        }
        let mut c = PollConfig::new(org);
        c.lookback = s.lookback;
        c.lag = s.lag;
        c.overlap = s.overlap;
        c.batch_events = s.batch_events;
        if let Some(v) = &self.lookback {
            let asked = parse_duration(v).map_err(|e| format!("input field \"lookback\": {e}"))?;
            if asked < s.lookback {
                return Err(format!(
                    "input field \"lookback\" ({v}) is shorter than the stack's ({}): a first run would skip the \
                     events between; an input may only reach further back",
                    HumanDuration(s.lookback)
                ));
            }
            c.lookback = asked;
        }
        c.validate().map_err(|e| e.describe(setting_name))?;
        Ok(c)
    }
}

/// How the Lambda names a setting in an error: the variable that sets it (and the input
/// field, for the one an input may change).
fn setting_name(s: Setting) -> String {
    match s {
        Setting::Lookback => format!("{ENV_LOOKBACK} (or the input's \"lookback\")"),
        Setting::Lag => ENV_LAG.to_string(),
        Setting::Overlap => ENV_OVERLAP.to_string(),
        Setting::BatchEvents => ENV_BATCH_EVENTS.to_string(),
        // Not settable in the Lambda: its defaults.
        Setting::PageSize => "the page size".to_string(),
        Setting::BatchBytes => "the batch's byte bound".to_string(),
        Setting::ReadEvents => "the read's event bound".to_string(),
        Setting::ReadBytes => "the read's byte bound".to_string(),
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

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![(ENV_TABLE, "t"), (ENV_BUCKET, "b"), (ENV_ORGS, "acme, example")]
    }

    fn with(extra: &[(&'static str, &'static str)]) -> Result<Settings, String> {
        let mut all = base();
        all.extend_from_slice(extra);
        Settings::from_env(env(&all))
    }

    #[test]
    fn settings_from_env() {
        let s = with(&[(ENV_LAG, "2m")]).unwrap();
        assert_eq!(
            s.orgs.iter().map(Org::as_str).collect::<Vec<_>>(),
            ["acme", "example"]
        );
        assert_eq!(s.lag, Duration::minutes(2));
        assert_eq!(s.secret_id(&Org::new("acme").unwrap()), "dockerhub-audit/acme");
        assert_eq!(s.prefix, "dockerhub-audit");
        let e = Settings::from_env(env(&[(ENV_BUCKET, "b"), (ENV_ORGS, "acme")])).unwrap_err();
        assert!(e.contains(ENV_TABLE), "{e}");
        let e = with(&[(ENV_OVERLAP, "soon")]).unwrap_err();
        assert!(e.contains(ENV_OVERLAP), "{e}");
        // A pattern that could name any secret of the account is refused.
        for pattern in ["fixed", "{org}", "/{org}", "prefix{org}", "a/{org}x"] {
            let r = with(&[(ENV_SECRET_PATTERN, pattern)]);
            if pattern == "a/{org}x" {
                assert!(r.is_ok(), "{pattern}");
                continue;
            }
            let e = r.unwrap_err();
            assert!(e.contains("{org}") && e.contains("ending in /"), "{pattern}: {e}");
        }
        // No allow-list, or a bad name in it, fails the start.
        let e = Settings::from_env(env(&[(ENV_TABLE, "t"), (ENV_BUCKET, "b")])).unwrap_err();
        assert!(e.contains(ENV_ORGS), "{e}");
        let e = with(&[(ENV_ORGS, "acme,Not An Org")]).unwrap_err();
        assert!(e.contains(ENV_ORGS), "{e}");
        // A Hub URL the token must not travel to.
        let e = with(&[(ENV_HUB_URL, "http://hub.docker.com")]).unwrap_err();
        assert!(e.contains(ENV_HUB_URL) && e.contains("https"), "{e}");
        assert!(with(&[(ENV_HUB_URL, "http://127.0.0.1:8080")]).is_ok());
        assert_eq!(s.alert_bus, None);
        assert_eq!(s.alert_rules, RulesFrom::BuiltIn);
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
    fn secrets_watch_and_metrics_settings() {
        let s = with(&[]).unwrap();
        assert_eq!(
            s.secrets,
            SecretsFrom::PerOrg {
                pattern: "dockerhub-audit/{org}".into()
            }
        );
        assert!(!s.org_metrics, "per-org metrics are off by default");
        assert_eq!(s.watch.stale_after, Duration::minutes(30));
        assert_eq!(s.watch.verify_range, "2d");
        assert_eq!(
            (s.watch.alarm_topic.clone(), s.watch.compactor.clone()),
            (None, None)
        );
        let s = with(&[
            (ENV_SECRET_MODE, "shared"),
            (ENV_SHARED_SECRET, "dockerhub-audit-shared"),
            (ENV_ORG_METRICS, "watermark"),
            (ENV_STALE_AFTER, "45m"),
            (ENV_VERIFY_START, "22:30"),
            (ENV_VERIFY_SPREAD, "3h"),
        ])
        .unwrap();
        assert_eq!(s.secret_id(&Org::new("acme").unwrap()), "dockerhub-audit-shared");
        assert_eq!(
            s.secret_id(&Org::new("example").unwrap()),
            "dockerhub-audit-shared"
        );
        assert!(s.org_metrics);
        assert_eq!(s.watch.stale_after, Duration::minutes(45));
        assert_eq!(
            s.watch.window,
            crate::watch::VerifyWindow::parse("22:30", "3h").unwrap()
        );
        for (env, says) in [
            (vec![(ENV_SECRET_MODE, "shared")], ENV_SHARED_SECRET),
            (vec![(ENV_SECRET_MODE, "both")], "neither per-org nor shared"),
            (vec![(ENV_ORG_METRICS, "all")], ENV_ORG_METRICS),
            (vec![(ENV_VERIFY_SPREAD, "3d")], "not between 1m and 24h"),
            (vec![(ENV_VERIFY_RANGE, "0s")], ENV_VERIFY_RANGE),
        ] {
            let e = with(&env).unwrap_err();
            assert!(e.contains(says), "{env:?}: {e}");
        }
    }

    #[test]
    fn input_and_overrides() {
        let s = with(&[]).unwrap();
        let i: Input = serde_json::from_str(r#"{"org": "acme", "lookback": "120d"}"#).unwrap();
        let c = i.poll_config(&s).unwrap();
        assert_eq!(c.lookback, Duration::days(120));
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

    #[test]
    fn an_input_may_only_make_a_run_reach_further() {
        let s = with(&[]).unwrap();
        for (input, says) in [
            (
                r#"{"org": "acme", "overlap": "0s"}"#,
                "\"overlap\" is not accepted",
            ),
            (
                r#"{"org": "acme", "overlap": "1h"}"#,
                "\"overlap\" is not accepted",
            ),
            (r#"{"org": "acme", "lag": "0s"}"#, "\"lag\" is not accepted"),
            (
                r#"{"org": "acme", "lookback": "1d"}"#,
                "shorter than the stack's (90d)",
            ),
            (r#"{"org": "acme", "lookback": "-"}"#, "not a duration"),
        ] {
            let i: Input = serde_json::from_str(input).unwrap();
            let e = i.poll_config(&s).unwrap_err();
            assert!(e.contains(says), "{input}: {e}");
        }
        let same: Input = serde_json::from_str(r#"{"org": "acme", "lookback": "90d"}"#).unwrap();
        assert_eq!(same.poll_config(&s).unwrap().lookback, Duration::days(90));
    }

    #[test]
    fn only_the_deployed_orgs_are_served() {
        let s = with(&[]).unwrap();
        for ok in ["acme", "example"] {
            let i: Input = serde_json::from_value(serde_json::json!({"org": ok})).unwrap();
            assert_eq!(i.org(&s).unwrap().as_str(), ok);
        }
        for other in ["acme-corp", "acmecorp", "prod-secrets"] {
            let i: Input = serde_json::from_value(serde_json::json!({"org": other})).unwrap();
            let e = i.poll_config(&s).unwrap_err();
            assert!(
                e.contains("not one of the organizations") && e.contains("acme, example"),
                "{e}"
            );
        }
    }
}
