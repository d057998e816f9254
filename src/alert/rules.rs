//! Alert rules as data: parsing, checking and matching.
//!
//! A rules file is TOML (the default set is `rules/default.toml`, built in). Everything in
//! it is checked when it is loaded, so a typo is an error at start, never a rule that
//! silently matches nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The built-in rules.
pub const DEFAULT_RULES: &str = include_str!("../../rules/default.toml");

/// A rules file that cannot be used; the message names the file, the rule and what to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RulesError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One pattern or several (any of them may match).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A pattern as written: text, or a TOML boolean or number (`enabled = true` means the
/// text `true`, as events carry it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Bool(bool),
    Int(i64),
    Float(f64),
}

impl Scalar {
    fn text(self) -> String {
        match self {
            Scalar::Text(s) => s,
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
        }
    }
}

/// A clause: field name → patterns. It holds when every field matches one of its patterns.
type RawClause = BTreeMap<String, OneOrMany<Scalar>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    include_defaults: bool,
    #[serde(default)]
    disable: Vec<String>,
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    title: String,
    severity: Severity,
    action: OneOrMany<String>,
    why: String,
    when: Option<OneOrMany<RawClause>>,
    unless: Option<OneOrMany<RawClause>>,
}

/// Where a condition looks in an event.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    /// A top-level string field of the event.
    Top(&'static str),
    /// A key of the event's `data` object.
    Data(String),
}

const TOP_FIELDS: [&str; 5] = ["actor", "name", "account", "action", "action_description"];

impl Field {
    fn parse(name: &str) -> Option<Field> {
        if let Some(key) = name.strip_prefix("data.") {
            return (!key.is_empty()).then(|| Field::Data(key.to_string()));
        }
        TOP_FIELDS.iter().find(|f| **f == name).map(|f| Field::Top(f))
    }

    fn value<'e>(&self, event: &'e Map<String, Value>) -> Option<std::borrow::Cow<'e, str>> {
        let v = match self {
            Field::Top(name) => event.get(*name)?,
            Field::Data(key) => event.get("data")?.as_object()?.get(key)?,
        };
        match v {
            Value::String(s) => Some(s.as_str().into()),
            Value::Number(n) => Some(n.to_string().into()),
            Value::Bool(b) => Some(b.to_string().into()),
            _ => None,
        }
    }
}

/// A glob: `*` any run of characters, `?` one; ASCII case does not matter. Kept ready to
/// match (rules are checked against every event a commit stores): exact text compares
/// without allocating, a glob keeps its characters.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    Glob(Vec<char>),
}

impl Pattern {
    fn new(p: &str) -> Self {
        let p = p.to_ascii_lowercase();
        if p.contains(['*', '?']) {
            Pattern::Glob(p.chars().collect())
        } else {
            Pattern::Exact(p)
        }
    }

    fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Exact(p) => text.eq_ignore_ascii_case(p),
            Pattern::Glob(p) => {
                let t: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
                glob(p, &t)
            }
        }
    }
}

/// Iterative wildcard match with one backtrack point: linear in practice, never recursive.
/// A `*` in the pattern is always a wildcard (also where the text has a `*`).
fn glob(p: &[char], t: &[char]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[derive(Debug, Clone, PartialEq)]
struct Clause(Vec<(Field, Vec<Pattern>)>);

impl Clause {
    fn holds(&self, event: &Map<String, Value>) -> bool {
        self.0.iter().all(|(field, patterns)| {
            field
                .value(event)
                .is_some_and(|v| patterns.iter().any(|p| p.matches(&v)))
        })
    }
}

/// One checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub why: String,
    action: Vec<Pattern>,
    when: Vec<Clause>,
    unless: Vec<Clause>,
}

impl Rule {
    /// Whether `event` (the Hub's fields, or a stored record) is one this rule alerts on.
    pub fn matches(&self, event: &Map<String, Value>) -> bool {
        let Some(action) = event.get("action").and_then(Value::as_str) else {
            return false;
        };
        self.action.iter().any(|p| p.matches(action))
            && (self.when.is_empty() || self.when.iter().any(|c| c.holds(event)))
            && !self.unless.iter().any(|c| c.holds(event))
    }
}

/// A checked set of rules, in file order (defaults first when included).
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    /// The built-in set.
    pub fn defaults() -> Rules {
        Rules::parse(DEFAULT_RULES, "the built-in rules").expect("the built-in rules are checked by a test")
    }

    /// Parses and checks a rules file. `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Rules, RulesError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            RulesError(format!(
                "{source} is not a valid rules file: {}. Fix it, or compare with the built-in rules/default.toml",
                e.to_string().trim_end()
            ))
        })?;
        let mut rules = if raw.include_defaults {
            Rules::defaults().rules
        } else {
            Vec::new()
        };
        for id in &raw.disable {
            if !raw.include_defaults {
                return Err(RulesError(format!(
                    "{source}: `disable` turns off default rules, but the file does not set `include_defaults = true`"
                )));
            }
            let before = rules.len();
            rules.retain(|r| &r.id != id);
            if rules.len() == before {
                return Err(RulesError(format!(
                    "{source}: `disable` names {id:?}, which is not a default rule (see rules/default.toml for their ids)"
                )));
            }
        }
        let mut ids = BTreeSet::new();
        for r in raw.rule {
            let rule = check(r).map_err(|e| RulesError(format!("{source}: {e}")))?;
            if !ids.insert(rule.id.clone()) {
                return Err(RulesError(format!(
                    "{source}: two rules have the id {:?}; ids must be unique (alert ids are made from them)",
                    rule.id
                )));
            }
            // A rule of the file replaces a default one of the same id.
            rules.retain(|d| d.id != rule.id);
            rules.push(rule);
        }
        if rules.is_empty() {
            return Err(RulesError(format!(
                "{source} holds no rules: no alert could ever be raised. Add [[rule]] tables, or set include_defaults = true"
            )));
        }
        Ok(Rules { rules })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules `event` matches, in rules order.
    pub fn matching<'r>(&'r self, event: &'r Map<String, Value>) -> impl Iterator<Item = &'r Rule> + 'r {
        self.rules.iter().filter(move |r| r.matches(event))
    }

    /// Whether any rule matches `event`.
    pub fn any(&self, event: &Map<String, Value>) -> bool {
        self.rules.iter().any(|r| r.matches(event))
    }
}

fn check(r: RawRule) -> Result<Rule, String> {
    let id_ok = !r.id.is_empty()
        && r.id.len() <= 64
        && r.id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !id_ok {
        return Err(format!(
            "the rule id {:?} must be 1 to 64 of a-z, 0-9, '-' and '_'",
            r.id
        ));
    }
    let id = r.id;
    if r.title.trim().is_empty() || r.why.trim().is_empty() {
        return Err(format!("rule {id:?} needs a non-empty `title` and `why`"));
    }
    // Every alert carries them: keep alerts well inside EventBridge's entry size.
    if r.title.len() > 200 || r.why.len() > 2000 {
        return Err(format!(
            "rule {id:?}: `title` may hold 200 bytes and `why` 2,000; say more in a link or your runbook"
        ));
    }
    let action = patterns(&id, "action", r.action.into_vec())?;
    let clauses = |what: &str, c: Option<OneOrMany<RawClause>>| -> Result<Vec<Clause>, String> {
        let clauses = c.map(OneOrMany::into_vec).unwrap_or_default();
        clauses
            .into_iter()
            .map(|raw| {
                if raw.is_empty() {
                    return Err(format!("rule {id:?} has an empty `{what}` clause"));
                }
                raw.into_iter()
                    .map(|(name, pats)| {
                        let field = Field::parse(&name).ok_or_else(|| {
                            format!(
                                "rule {id:?} names an unknown field {name:?} in `{what}`; fields are {}, and data.<key>",
                                TOP_FIELDS.join(", ")
                            )
                        })?;
                        let pats = pats.into_vec().into_iter().map(Scalar::text).collect();
                        Ok((field, patterns(&id, &name, pats)?))
                    })
                    .collect::<Result<Vec<_>, String>>()
                    .map(Clause)
            })
            .collect()
    };
    let when = clauses("when", r.when)?;
    let unless = clauses("unless", r.unless)?;
    Ok(Rule {
        id,
        title: r.title,
        severity: r.severity,
        why: r.why,
        action,
        when,
        unless,
    })
}

fn patterns(id: &str, field: &str, raw: Vec<String>) -> Result<Vec<Pattern>, String> {
    if raw.is_empty() || raw.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "rule {id:?}: `{field}` needs at least one non-empty pattern"
        ));
    }
    Ok(raw.iter().map(|p| Pattern::new(p)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn globs() {
        for (p, t, want) in [
            ("oidc.connection.*", "oidc.connection.create", true),
            ("oidc.connection.*", "oidc.connection", false),
            ("*team owners*", "added bob to the team owners", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "", true),
            ("", "", true),
            ("*a*b", "xaxxb", true),
            ("*a*b", "xaxxbc", false),
            ("Repo.*", "repo.create", true),
            // A `*` in the text is matched by the pattern's wildcard, not mistaken for it.
            ("*x", "*ax", true),
            ("a*", "a*b", true),
            ("*.corp.com", "*.corp.com", true),
            ("caf?", "café", true),
            ("caf?", "cafés", false),
        ] {
            assert_eq!(Pattern::new(p).matches(t), want, "{p} ~ {t}");
        }
    }

    #[test]
    fn the_defaults_load_and_match_what_they_say() {
        let rules = Rules::defaults();
        assert!(rules.len() >= 12);
        let hit = |e: Value| -> Vec<String> { rules.matching(&ev(e)).map(|r| r.id.clone()).collect() };
        assert_eq!(
            hit(json!({"action": "repo.change_privacy", "data": {"privacy": "public"}})),
            ["repo-made-public"]
        );
        assert!(hit(json!({"action": "repo.change_privacy", "data": {"privacy": "private"}})).is_empty());
        // An unknown key: loud, not silent.
        assert_eq!(
            hit(json!({"action": "repo.change_privacy", "data": {"visibility": "private"}})),
            ["repo-made-public"]
        );
        assert!(hit(json!({"action": "org.member.role.change", "data": {"to": "editor"}})).is_empty());
        assert_eq!(
            hit(json!({"action": "org.member.role.change", "data": {"to": "owner"}})),
            ["member-made-owner"]
        );
        assert_eq!(
            hit(
                json!({"action": "org.team.member.add", "action_description": "added bob to the team owners"})
            ),
            ["owners-team-member-added"]
        );
        assert!(hit(json!({"action": "org.team.member.add", "data": {"team": "qa"}})).is_empty());
        assert_eq!(
            hit(json!({"action": "org.settings.update", "data": {"setting": "restrict_image_pulls"}})),
            ["image-access-changed"]
        );
        assert_eq!(
            hit(json!({"action": "org.settings.update", "data": {"setting": "member_invites"}})),
            ["org-settings-changed"]
        );
        assert_eq!(
            hit(json!({"action": "oidc.connection.delete"})),
            ["oidc-connection-changed"]
        );
        assert!(hit(json!({"action": "repo.tag.push"})).is_empty());
        assert!(hit(json!({"no_action": 1})).is_empty());
    }

    #[test]
    fn a_file_replaces_or_extends_the_defaults() {
        let own = r#"
            [[rule]]
            id = "pushes-by-bots"
            title = "A bot pushed"
            severity = "low"
            action = "repo.tag.push"
            when = { actor = "*-bot" }
            why = "testing"
        "#;
        let r = Rules::parse(own, "rules.toml").unwrap();
        assert_eq!(r.len(), 1);
        let typed = "[[rule]]\nid = \"t\"\ntitle = \"t\"\nwhy = \"w\"\nseverity = \"low\"\naction = \"a\"\nwhen = { \"data.enabled\" = true, \"data.n\" = [1, 2.5] }";
        let t = Rules::parse(typed, "rules.toml").unwrap();
        assert!(t.any(&ev(
            json!({"action": "a", "data": {"enabled": "true", "n": "2.5"}})
        )));
        assert!(!t.any(&ev(
            json!({"action": "a", "data": {"enabled": "false", "n": "1"}})
        )));
        assert!(r.any(&ev(json!({"action": "repo.tag.push", "actor": "release-bot"}))));
        assert!(!r.any(&ev(json!({"action": "repo.tag.push", "actor": "alice"}))));
        let extended = format!("include_defaults = true\ndisable = [\"org-settings-changed\"]\n{own}");
        let r = Rules::parse(&extended, "rules.toml").unwrap();
        assert_eq!(r.len(), Rules::defaults().len());
        assert!(r.iter().all(|x| x.id != "org-settings-changed"));
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let rule = |body: &str| format!("[[rule]]\nid = \"x\"\ntitle = \"t\"\nwhy = \"w\"\n{body}");
        for (text, says) in [
            ("[[rule]\n".to_string(), "not a valid rules file"),
            (
                rule("severity = \"high\"\naction = \"a\"\nseverty = \"x\""),
                "unknown field `severty`",
            ),
            (rule("severity = \"urgent\"\naction = \"a\""), "urgent"),
            (rule("severity = \"high\""), "missing field `action`"),
            (
                rule("severity = \"high\"\naction = \"a\"\nwhen = { user = \"bob\" }"),
                "unknown field \"user\"",
            ),
            (
                rule("severity = \"high\"\naction = \"a\"\nwhen = { \"data.\" = \"bob\" }"),
                "unknown field \"data.\"",
            ),
            (
                rule("severity = \"high\"\naction = []"),
                "at least one non-empty pattern",
            ),
            (
                rule("severity = \"high\"\naction = \"a\"\nunless = {}"),
                "empty `unless`",
            ),
            (
                format!("{0}\n{0}", rule("severity = \"high\"\naction = \"a\"")),
                "two rules have the id",
            ),
            ("".to_string(), "holds no rules"),
            ("disable = [\"scim-off\"]".to_string(), "include_defaults"),
            (
                "include_defaults = true\ndisable = [\"nope\"]".to_string(),
                "not a default rule",
            ),
            (
                "[[rule]]\nid = \"Bad Id\"\ntitle = \"t\"\nwhy = \"w\"\nseverity = \"low\"\naction = \"a\""
                    .to_string(),
                "rule id",
            ),
        ] {
            let e = Rules::parse(&text, "rules.toml").unwrap_err().to_string();
            assert!(e.contains("rules.toml"), "{e}");
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }
}
