//! Deterministic event generation: the seeded generators (fastrand's, one per stream or item), the
//! action catalogue, and realistic events.
//!
//! Invariant: an event depends only on the seed, its stream and its index, so changing one knob (say
//! `late_fraction`) never changes the content of other events.

use chrono::{DateTime, Duration, Utc};
use fastrand::Rng;
use serde_json::{json, Map, Value};

use super::config::EmulatorConfig;

/// Streams of the generator: each use of randomness gets its own, so they cannot disturb one another.
pub(super) const STREAM_BASE: u64 = 0x6261_7365_0000_0001;
pub(super) const STREAM_TRICKLE: u64 = 0x7472_6963_6b6c_6502;
pub(super) const STREAM_INSERT: u64 = 0x696e_7365_7274_0003;
pub(super) const STREAM_FAULTS: u64 = 0x6661_756c_7473_0004;
pub(super) const STREAM_TIES: u64 = 0x7469_6573_0000_0005;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The generator of one stream.
pub(super) fn stream_rng(seed: u64, stream: u64) -> Rng {
    Rng::with_seed(seed ^ stream)
}

/// A generator for item `index` of a stream, independent of the draws made for other items.
pub(super) fn item_rng(seed: u64, stream: u64, index: u64) -> Rng {
    Rng::with_seed(seed ^ stream ^ index.wrapping_mul(GOLDEN)).fork()
}

/// One item of a non-empty slice.
fn pick<'a, T>(r: &mut Rng, items: &'a [T]) -> &'a T {
    &items[r.usize(..items.len())]
}

/// One event as generated: the served JSON plus what the server needs to filter it.
pub(super) struct Generated {
    pub(super) event: Value,
    pub(super) timestamp: DateTime<Utc>,
    pub(super) visible_at: DateTime<Utc>,
}

/// The base events of `cfg`, in generation order: each followed by its twins.
///
/// Timestamps are uniform in `[now - days, now - 2 min)` at the configured precision. A late event (and
/// its twins) becomes visible `1 s ..= late_max` after its timestamp; the others are visible at once.
pub(super) fn base_events(cfg: &EmulatorConfig, now: DateTime<Utc>) -> Vec<Generated> {
    let hi = now - Duration::minutes(2);
    let lo = horizon(cfg, now);
    let fallback = truncate(hi - Duration::seconds(1), cfg.fractional_timestamps);
    let late_max_secs = cfg.late_max.num_seconds().max(1) as u64;
    let mut out = Vec::with_capacity(cfg.events);
    for i in 0..cfg.events as u64 {
        let mut r = item_rng(cfg.seed, STREAM_BASE, i);
        let timestamp =
            uniform_stamp(&mut r, nanos(lo), nanos(hi), cfg.fractional_timestamps).unwrap_or(fallback);
        let twins = if r.f64() < cfg.twin_fraction {
            1 + r.u64(..3)
        } else {
            0
        };
        let visible_at = if r.f64() < cfg.late_fraction {
            timestamp + Duration::seconds(1 + r.u64(..late_max_secs) as i64)
        } else {
            timestamp
        };
        let event = event_at(
            &mut r,
            &cfg.org,
            &format_timestamp(timestamp, cfg.fractional_timestamps),
        );
        for _ in 0..twins {
            out.push(Generated {
                event: event.clone(),
                timestamp,
                visible_at,
            });
        }
        out.push(Generated {
            event,
            timestamp,
            visible_at,
        });
    }
    out
}

/// The oldest time base events may have: `now - days`.
pub(super) fn horizon(cfg: &EmulatorConfig, now: DateTime<Utc>) -> DateTime<Utc> {
    now.checked_sub_signed(Duration::days(i64::from(cfg.days)))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Live events: one every `60 s / per_minute`, counted from the emulator's creation.
///
/// Invariant: event `k` is stamped `start + k * period` whatever the pattern of requests that caught
/// it up, so trickled events are as deterministic as base events.
pub(super) struct Trickle {
    start: DateTime<Utc>,
    period: Duration,
    next: u64,
}

impl Trickle {
    pub(super) fn new(start: DateTime<Utc>, per_minute: u32) -> Option<Self> {
        let period_us = 60_000_000 / i64::from(per_minute.max(1));
        (per_minute > 0).then(|| Trickle {
            start,
            period: Duration::microseconds(period_us.max(1)),
            next: 1,
        })
    }

    /// The events scheduled in `(last catch-up, now]`, visible from `now`.
    pub(super) fn catch_up(&mut self, cfg: &EmulatorConfig, now: DateTime<Utc>) -> Vec<Generated> {
        let mut out = Vec::new();
        loop {
            let Some(at) = i32::try_from(self.next)
                .ok()
                .and_then(|k| self.period.checked_mul(k))
                .and_then(|offset| self.start.checked_add_signed(offset))
            else {
                return out;
            };
            if at > now {
                return out;
            }
            let mut r = item_rng(cfg.seed, STREAM_TRICKLE, self.next);
            let timestamp = truncate(at, cfg.fractional_timestamps);
            let event = event_at(
                &mut r,
                &cfg.org,
                &format_timestamp(timestamp, cfg.fractional_timestamps),
            );
            out.push(Generated {
                event,
                timestamp,
                visible_at: now,
            });
            self.next += 1;
        }
    }
}

/// A timestamp uniform in `[lo, hi)` (nanoseconds since the epoch) at the configured precision, or
/// `None` if no such timestamp exists.
pub(super) fn uniform_stamp(r: &mut Rng, lo: i128, hi: i128, fractional: bool) -> Option<DateTime<Utc>> {
    let unit: i128 = if fractional { 1_000 } else { 1_000_000_000 };
    let (lo_u, hi_u) = (ceil_div(lo, unit), ceil_div(hi, unit));
    let span = u64::try_from(hi_u - lo_u).ok().filter(|&s| s > 0)?;
    from_nanos((lo_u + i128::from(r.u64(..span))) * unit)
}

/// Nanoseconds since the epoch, for any representable time.
pub(super) fn nanos(t: DateTime<Utc>) -> i128 {
    i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos())
}

fn from_nanos(ns: i128) -> Option<DateTime<Utc>> {
    let secs = i64::try_from(ns.div_euclid(1_000_000_000)).ok()?;
    DateTime::from_timestamp(secs, ns.rem_euclid(1_000_000_000) as u32)
}

fn ceil_div(a: i128, b: i128) -> i128 {
    -((-a).div_euclid(b))
}

/// Drops what the configured precision cannot show: microseconds or whole seconds.
pub(super) fn truncate(t: DateTime<Utc>, fractional: bool) -> DateTime<Utc> {
    let unit = if fractional { 1_000 } else { 1_000_000_000 };
    let sub = t.timestamp_subsec_nanos();
    t - Duration::nanoseconds(i64::from(sub % unit))
}

/// RFC 3339 in UTC with `Z`: whole seconds, or exactly six fractional digits.
pub(super) fn format_timestamp(t: DateTime<Utc>, fractional: bool) -> String {
    if fractional {
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }
}

/// Parses an RFC 3339 date-time, with or without fractional seconds, with any offset.
pub(super) fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc))
}

/// Actions the generator emits, with relative weights: pushes dominate, as in a real organization.
const WEIGHTED_ACTIONS: &[(&str, u64)] = &[
    ("repo.tag.push", 40),
    ("repo.tag.delete", 3),
    ("repo.create", 4),
    ("repo.delete", 2),
    ("repo.change_privacy", 2),
    ("repo.update", 2),
    ("repo.category.updated", 1),
    ("repo.immutable.tags.updated", 1),
    ("org.member.add", 3),
    ("org.member.remove", 2),
    ("org.member.invite.send", 3),
    ("org.member.role.change", 1),
    ("org.team.create", 1),
    ("org.team.update", 1),
    ("org.team.delete", 1),
    ("org.team.member.add", 3),
    ("org.team.member.remove", 2),
    ("org.access_token.create", 2),
    ("org.access_token.update", 1),
    ("org.access_token.delete", 1),
    ("org.registry_access.enabled", 1),
    ("org.registry_access.disabled", 1),
    ("org.registry_access.registry_added", 1),
    ("org.registry_access.registry_updated", 1),
    ("org.registry_access.registry_removed", 1),
    ("org.settings.update", 2),
    ("org.domain.create", 1),
    ("org.domain.verify", 1),
    ("org.domain.delete", 1),
    ("billing.plan.upgrade", 1),
    ("billing.plan.downgrade", 1),
    ("billing.plan.seat_add", 1),
    ("billing.plan.seat_remove", 1),
    ("billing.plan.cycle_change", 1),
    ("enterprise.sso.connection.create", 1),
    ("enterprise.sso.connection.update", 1),
    ("enterprise.sso.connection.delete", 1),
    ("enterprise.sso.connection.enforcement_toggle", 1),
    ("enterprise.sso.connection.scim_toggle", 1),
    ("oidc.connection.create", 1),
    ("oidc.connection.update", 1),
    ("oidc.connection.delete", 1),
    ("offload.lease.start", 2),
    ("offload.lease.end", 2),
];

/// Who acts: owners and admins.
const ADMINS: &[&str] = &["jdoe", "asmith", "mgarcia", "kchen", "priya-ops", "lwilson"];
/// Who is acted upon: members (and invitees).
const MEMBERS: &[&str] = &[
    "tnguyen", "rpatel", "ebrown", "okim", "sjohnson", "dlee", "mrossi", "afischer", "yamada-k", "cdubois",
];
/// Organization access token labels: they appear as actors too (activity-logs manual).
const TOKENS: &[&str] = &["ci-token", "release-bot", "gha-publish", "terraform-ro"];
const REPOS: &[&str] = &[
    "api",
    "web",
    "worker",
    "base-images",
    "docs",
    "gateway",
    "billing-svc",
    "ml-runner",
];
const TEAMS: &[&str] = &["owners", "developers", "ops", "qa", "security"];
const REGISTRIES: &[&str] = &["ghcr.io", "quay.io", "registry.gitlab.com", "public.ecr.aws"];
const SETTINGS: &[(&str, &str, &str)] = &[
    ("default_repo_visibility", "public", "private"),
    ("restrict_image_pulls", "false", "true"),
    ("member_invites", "owners", "editors"),
];
const PLANS: &[(&str, &str)] = &[("team", "business"), ("business", "team")];

/// What one event draws, all of it up front and in this order: the number of draws does not
/// depend on the action, so changing what an action shows never shifts the other events.
struct Draws {
    repo: String,
    member: &'static str,
    admin: &'static str,
    token: &'static str,
    team: &'static str,
    registry: &'static str,
    setting: (&'static str, &'static str, &'static str),
    plan: (&'static str, &'static str),
    tag: String,
    digest: String,
    seats: String,
    lease: String,
    privacy: &'static str,
    roll: u64,
}

impl Draws {
    fn new(r: &mut Rng, org: &str) -> Self {
        let repo = format!("{org}/{}", pick(r, REPOS));
        let member = *pick(r, MEMBERS);
        let admin = *pick(r, ADMINS);
        let token = *pick(r, TOKENS);
        let team = *pick(r, TEAMS);
        let registry = *pick(r, REGISTRIES);
        let setting = *pick(r, SETTINGS);
        let plan = *pick(r, PLANS);
        let tag = match r.u64(..10) {
            0 => "latest".to_string(),
            _ => format!("v{}.{}.{}", r.u64(..4), r.u64(..20), r.u64(..30)),
        };
        let digest = format!(
            "sha256:{:016x}{:016x}{:016x}{:016x}",
            r.u64(..),
            r.u64(..),
            r.u64(..),
            r.u64(..)
        );
        let seats = (5 + r.u64(..100)).to_string();
        let lease = format!("{:016x}", r.u64(..));
        let privacy = if r.bool() { "private" } else { "public" };
        let roll = r.u64(..100);
        Draws {
            repo,
            member,
            admin,
            token,
            team,
            registry,
            setting,
            plan,
            tag,
            digest,
            seats,
            lease,
            privacy,
            roll,
        }
    }
}

/// An event's `name`, its `data` and its `action_description`.
type Details = (String, Vec<(&'static str, String)>, String);

/// One realistic event at `timestamp` (already formatted).
pub(super) fn event_at(r: &mut Rng, org: &str, timestamp: &str) -> Value {
    let action = pick_action(r);
    // Draw everything up front: the number of draws does not depend on the action.
    let d = Draws::new(r, org);
    let actor = if d.roll < 2 {
        "dockersupport"
    } else if d.roll < 8 || (action.starts_with("repo.tag.") && d.roll < 50) {
        d.token
    } else {
        d.admin
    };
    let (name, data, description) = repo_details(action, &d)
        .or_else(|| member_details(action, org, &d))
        .or_else(|| org_settings_details(action, org, &d))
        .or_else(|| billing_details(action, org, &d))
        .or_else(|| connection_details(action, org, &d))
        .unwrap_or_else(|| offload_details(action, org, &d));
    let data: Map<String, Value> = data
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v)))
        .collect();
    json!({
        "account": org,
        "action": action,
        "name": name,
        "actor": actor,
        "data": data,
        "timestamp": timestamp,
        "action_description": description,
    })
}

/// The details of a `repo.*` action.
fn repo_details(action: &str, d: &Draws) -> Option<Details> {
    let (repo, tag, privacy) = (&d.repo, &d.tag, d.privacy);
    Some(match action {
        "repo.tag.push" => (
            repo.clone(),
            vec![("digest", d.digest.clone()), ("tag", tag.clone())],
            format!(
                "pushed the tag {tag} with the digest {} to the repository {repo}",
                &d.digest[..20]
            ),
        ),
        "repo.tag.delete" => (
            repo.clone(),
            vec![("tag", tag.clone())],
            format!("deleted the tag {tag} from the repository {repo}"),
        ),
        "repo.create" => (
            repo.clone(),
            vec![("visibility", privacy.into())],
            format!("created the {privacy} repository {repo}"),
        ),
        "repo.delete" => (repo.clone(), vec![], format!("deleted the repository {repo}")),
        "repo.change_privacy" => (
            repo.clone(),
            vec![("privacy", privacy.into())],
            format!("changed the repository {repo} to {privacy}"),
        ),
        "repo.update" => (
            repo.clone(),
            vec![("field", "description".into())],
            format!("updated the description of the repository {repo}"),
        ),
        "repo.category.updated" => (
            repo.clone(),
            vec![("categories", "developer-tools,web-servers".into())],
            format!("updated the categories of the repository {repo}"),
        ),
        "repo.immutable.tags.updated" => (
            repo.clone(),
            vec![("immutable_tags", "true".into()), ("rules", "^v.*".into())],
            format!("enabled tag immutability for the repository {repo}"),
        ),
        _ => return None,
    })
}

/// The details of an action on the organization's members and teams.
fn member_details(action: &str, org: &str, d: &Draws) -> Option<Details> {
    let (member, team) = (d.member, d.team);
    Some(match action {
        "org.member.add" => (
            member.into(),
            vec![("role", "member".into())],
            format!("added {member} to the organization {org}"),
        ),
        "org.member.remove" => (
            member.into(),
            vec![],
            format!("removed {member} from the organization {org}"),
        ),
        "org.member.invite.send" => (
            member.into(),
            vec![("invitee", member.into()), ("role", "member".into())],
            format!("invited {member} to the organization {org}"),
        ),
        "org.member.role.change" => {
            // From the draws already made: the stream of draws stays the same.
            let to = if d.roll.is_multiple_of(3) {
                "owner"
            } else {
                "editor"
            };
            (
                member.into(),
                vec![("from", "member".into()), ("to", to.into())],
                format!("changed the role of {member} from member to {to}"),
            )
        }
        "org.team.create" | "org.team.update" | "org.team.delete" => {
            let verb = &action["org.team.".len()..];
            (
                org.into(),
                vec![("team", team.into())],
                format!("{verb}d the team {team}"),
            )
        }
        "org.team.member.add" => (
            member.into(),
            vec![("team", team.into())],
            format!("added {member} to the team {team}"),
        ),
        "org.team.member.remove" => (
            member.into(),
            vec![("team", team.into())],
            format!("removed {member} from the team {team}"),
        ),
        _ => return None,
    })
}

/// The details of an action on the organization's tokens, registries, settings and domains.
fn org_settings_details(action: &str, org: &str, d: &Draws) -> Option<Details> {
    let (token, registry) = (d.token, d.registry);
    let (setting, old, new) = d.setting;
    Some(match action {
        "org.access_token.create" | "org.access_token.update" | "org.access_token.delete" => {
            let verb = &action["org.access_token.".len()..];
            (
                org.into(),
                vec![
                    ("token_label", token.into()),
                    ("scopes", "scope-activity-read,repo-pull".into()),
                ],
                format!("{verb}d the organization access token {token}"),
            )
        }
        "org.registry_access.enabled" | "org.registry_access.disabled" => {
            let state = &action["org.registry_access.".len()..];
            (org.into(), vec![], format!("{state} Registry Access Management"))
        }
        "org.registry_access.registry_added"
        | "org.registry_access.registry_updated"
        | "org.registry_access.registry_removed" => {
            let verb = &action["org.registry_access.registry_".len()..];
            (
                org.into(),
                vec![("registry", registry.into())],
                format!("{verb} the registry {registry} in Registry Access Management"),
            )
        }
        "org.settings.update" => (
            org.into(),
            vec![
                ("setting", setting.into()),
                ("old_value", old.into()),
                ("new_value", new.into()),
            ],
            format!("changed the organization setting {setting} from {old} to {new}"),
        ),
        "org.domain.create" | "org.domain.verify" | "org.domain.delete" => {
            let domain = format!("{org}.example.com");
            let verb = if action.ends_with("create") {
                "added"
            } else if action.ends_with("delete") {
                "removed"
            } else {
                "verified"
            };
            (
                org.into(),
                vec![("domain", domain.clone())],
                format!("{verb} the domain {domain}"),
            )
        }
        _ => return None,
    })
}

/// The details of a `billing.*` action.
fn billing_details(action: &str, org: &str, d: &Draws) -> Option<Details> {
    let (plan_from, plan_to) = d.plan;
    let seats = &d.seats;
    Some(match action {
        "billing.plan.upgrade" | "billing.plan.downgrade" => (
            org.into(),
            vec![("from_plan", plan_from.into()), ("to_plan", plan_to.into())],
            format!("changed the plan from {plan_from} to {plan_to}"),
        ),
        "billing.plan.seat_add" | "billing.plan.seat_remove" => {
            let verb = if action.ends_with("add") {
                "added"
            } else {
                "removed"
            };
            (
                org.into(),
                vec![("seats", seats.clone())],
                format!("{verb} {seats} seats"),
            )
        }
        "billing.plan.cycle_change" => (
            org.into(),
            vec![("from_cycle", "monthly".into()), ("to_cycle", "annual".into())],
            "changed the billing cycle from monthly to annual".into(),
        ),
        _ => return None,
    })
}

/// The details of an SSO or OIDC connection action.
fn connection_details(action: &str, org: &str, d: &Draws) -> Option<Details> {
    Some(match action {
        a if a.starts_with("enterprise.sso.connection.") => {
            let connection = format!("{org}-okta");
            let on = d.privacy == "private";
            let state = if on { "on" } else { "off" };
            let mut data = vec![
                ("connection_name", connection.clone()),
                ("connection_type", "SAML".to_string()),
            ];
            let description = match &a["enterprise.sso.connection.".len()..] {
                "enforcement_toggle" => {
                    data.push(("enabled", on.to_string()));
                    format!("turned SSO enforcement {state} on the connection {connection}")
                }
                "scim_toggle" => {
                    data.push(("enabled", on.to_string()));
                    format!("turned SCIM {state} on the SSO connection {connection}")
                }
                verb => format!("{verb}d the SSO connection {connection}"),
            };
            (org.into(), data, description)
        }
        a if a.starts_with("oidc.connection.") => {
            let verb = &a["oidc.connection.".len()..];
            (
                org.into(),
                vec![
                    ("connection_name", "github-actions".into()),
                    ("issuer", "https://token.actions.githubusercontent.com".into()),
                ],
                format!("{verb}d the OIDC connection github-actions"),
            )
        }
        _ => return None,
    })
}

/// The details of any other action: an Offload lease starting or ending.
fn offload_details(action: &str, org: &str, d: &Draws) -> Details {
    let lease = &d.lease;
    let phase = if action.ends_with("start") {
        "started"
    } else {
        "ended"
    };
    (
        org.into(),
        vec![("lease_id", lease.clone())],
        format!("{phase} the Offload lease {lease}"),
    )
}

fn pick_action(r: &mut Rng) -> &'static str {
    let total: u64 = WEIGHTED_ACTIONS.iter().map(|&(_, w)| w).sum();
    let mut roll = r.u64(..total);
    for &(action, weight) in WEIGHTED_ACTIONS {
        if roll < weight {
            return action;
        }
        roll -= weight;
    }
    WEIGHTED_ACTIONS[0].0
}

/// The `/actions` response: the current documented list (API reference §6.6), in its order.
pub(super) const ACTIONS_JSON: &str = r#"{"actions": {
  "billing": {"actions": [
    {"name": "plan.upgrade", "description": "Occurs when your organization’s billing plan is upgraded to a higher tier plan.", "label": "Plan Upgraded"},
    {"name": "plan.downgrade", "description": "Occurs when your organization’s billing plan is downgraded to a lower tier plan.", "label": "Plan Downgraded"},
    {"name": "plan.seat_add", "description": "Occurs when a seat is added to your organization’s billing plan.", "label": "Seat Added"},
    {"name": "plan.seat_remove", "description": "Occurs when a seat is removed from your organization’s billing plan.", "label": "Seat Removed"},
    {"name": "plan.cycle_change", "description": "Occurs when there is a change in the recurring interval that your organization is charged.", "label": "Billing Cycle Changed"},
    {"name": "plan.downgrade_cancel", "description": "Occurs when a scheduled plan downgrade for your organization is canceled.", "label": "Plan Downgrade Canceled"},
    {"name": "plan.seat_removal_cancel", "description": "Occurs when a scheduled seat removal for an organization’s billing plan is canceled.", "label": "Seat Removal Canceled"},
    {"name": "plan.upgrade.request", "description": "Occurs when a user in your organization requests a plan upgrade.", "label": "Plan Upgrade Requested"},
    {"name": "plan.downgrade.request", "description": "Occurs when a user in your organization requests a plan downgrade.", "label": "Plan Downgrade Requested"},
    {"name": "plan.seat_add.request", "description": "Occurs when a user in your organization requests an increase in the number of seats.", "label": "Seat Addition Requested"},
    {"name": "plan.seat_removal.request", "description": "Occurs when a user in your organization requests a decrease in the number of seats.", "label": "Seat Removal Requested"},
    {"name": "plan.cycle_change.request", "description": "Occurs when a user in your organization requests a change in the billing cycle.", "label": "Billing Cycle Change Requested"},
    {"name": "plan.downgrade_cancel.request", "description": "Occurs when a user in your organization requests a cancellation of a scheduled plan downgrade.", "label": "Plan Downgrade Cancellation Requested"},
    {"name": "plan.seat_removal_cancel.request", "description": "Occurs when a user in your organization requests a cancellation of a scheduled seat removal.", "label": "Seat Removal Cancellation Requested"},
    {"name": "plan.product_change", "description": "Occurs when there is a change in the product that your organization subscribes to.", "label": "Billing Product Changed"}
  ], "label": "Billing"},
  "enterprise": {"actions": [
    {"name": "setting.policy.create", "description": "Details of adding an admin settings policy", "label": "Policy created"},
    {"name": "setting.policy.update", "description": "Details of updating an admin settings policy", "label": "Policy updated"},
    {"name": "setting.policy.delete", "description": "Details of deleting an admin settings policy", "label": "Policy deleted"},
    {"name": "setting.policy.transfer", "description": "Details of transferring an admin settings policy to another owner", "label": "Policy transferred"},
    {"name": "sso.connection.create", "description": "Details of creating a new org/company SSO connection", "label": "Create SSO Connection"},
    {"name": "sso.connection.update", "description": "Details of updating an existing org/company SSO connection", "label": "Update SSO Connection"},
    {"name": "sso.connection.delete", "description": "Details of deleting an existing org/company SSO connection", "label": "Delete SSO Connection"},
    {"name": "sso.connection.enforcement_toggle", "description": "Details of toggling enforcement on an existing org/company SSO connection", "label": "Enforce SSO"},
    {"name": "sso.connection.scim_toggle", "description": "Details of toggling SCIM on an existing org/company SSO connection", "label": "Enforce SCIM"},
    {"name": "sso.connection.scim_token_refresh", "description": "Details of a SCIM token refresh on an existing org/company SSO connection", "label": "Refresh SCIM Token"},
    {"name": "sso.connection.connection_type_change", "description": "Details of a connection type change on an existing org/company SSO connection", "label": "Change SSO Connection Type"},
    {"name": "sso.connection.jit_toggle", "description": "Details of a JIT toggle on an existing org/company SSO connection", "label": "Toggle JIT provisioning"}
  ], "label": "Enterprise"},
  "offload": {"actions": [
    {"name": "lease.start", "description": "Details of the started Offload lease.", "label": "Offload lease start"},
    {"name": "lease.end", "description": "Details of the ended Offload lease.", "label": "Offload lease end"}
  ], "label": "Offload"},
  "oidc": {"actions": [
    {"name": "connection.create", "description": "Details of creating an OIDC connection.", "label": "OIDC connection created"},
    {"name": "connection.update", "description": "Details of updating an OIDC connection.", "label": "OIDC connection updated"},
    {"name": "connection.delete", "description": "Details of deleting an OIDC connection.", "label": "OIDC connection deleted"}
  ], "label": "OIDC"},
  "org": {"actions": [
    {"name": "create", "description": "Activities related to the creation of a new organization", "label": "Organization Created"},
    {"name": "member.add", "description": "Details of the member added to your organization", "label": "Organization Member Added"},
    {"name": "member.remove", "description": "Details about the member removed from your organization", "label": "Organization Member Removed"},
    {"name": "member.role.change", "description": "Details about the role changed for a member in your organization", "label": "Member Role Changed"},
    {"name": "member.invite.send", "description": "Details of the member invited to your organization", "label": "Org Member Invited"},
    {"name": "team.create", "description": "Activities related to the creation of a team", "label": "Organization Created"},
    {"name": "team.update", "description": "Activities related to the modification of a team", "label": "Organization Deleted"},
    {"name": "team.delete", "description": "Activities related to the deletion of a team", "label": "Organization Deleted"},
    {"name": "team.member.add", "description": "Details of the member added to your team", "label": "Team Member Added"},
    {"name": "team.member.remove", "description": "Details of the member removed from your team", "label": "Team Member Removed"},
    {"name": "domain.create", "description": "Details of the single sign-on domain added to your organization", "label": "Single Sign-On domain added"},
    {"name": "domain.verify", "description": "Details of the single sign-on domain verified for your organization", "label": "Single Sign-On domain verified"},
    {"name": "domain.delete", "description": "Details of the single sign-on domain removed from your organization", "label": "Single Sign-On domain deleted"},
    {"name": "domain.auto-provisioning.toggle", "description": "Details of toggling the Auto-Provisioning feature on a domain on or off", "label": "Organization Auto-Provisioning Toggled"},
    {"name": "settings.update", "description": "Details related to the organization setting that was updated", "label": "Organization Settings Updated"},
    {"name": "registry_access.enabled", "description": "Activities related to enabling Registry Access Management", "label": "Registry Access Management enabled"},
    {"name": "registry_access.disabled", "description": "Activities related to disabling Registry Access Management", "label": "Registry Access Management disabled"},
    {"name": "registry_access.registry_added", "description": "Activities related to the addition of a registry", "label": "Registry Access Management registry added"},
    {"name": "registry_access.registry_updated", "description": "Details related to the registry that was updated", "label": "Registry Access Management registry updated"},
    {"name": "registry_access.registry_removed", "description": "Activities related to the removal of a registry", "label": "Registry Access Management registry removed"},
    {"name": "access_token.create", "description": "Access token created in organization", "label": "Access token created"},
    {"name": "access_token.update", "description": "Access token updated in organization", "label": "Access token updated"},
    {"name": "access_token.delete", "description": "Access token deleted in organization", "label": "Access token deleted"},
    {"name": "customrole.create", "description": "A custom role was created", "label": "Custom role created"},
    {"name": "customrole.update", "description": "An existing custom role was updated", "label": "Custom role updated"},
    {"name": "customrole.delete", "description": "A custom role was deleted", "label": "Custom role deleted"},
    {"name": "securepolicyconfigure.create", "description": "A secure policy configuration was created", "label": "Secure Policy Configuration created"},
    {"name": "securepolicyconfigure.update", "description": "A secure policy configuration was updated", "label": "Secure Policy Configuration updated"},
    {"name": "securepolicyconfigure.delete", "description": "A secure policy configuration was deleted", "label": "Secure Policy Configuration deleted"},
    {"name": "securepolicyclient.create", "description": "A secure policy client was created", "label": "Secure Policy Client created"},
    {"name": "securepolicyclient.update", "description": "A secure policy client was updated", "label": "Secure Policy Client updated"},
    {"name": "securepolicyclient.delete", "description": "A secure policy client was deleted", "label": "Secure Policy Client deleted"},
    {"name": "securepolicyprofile.create", "description": "A secure policy profile was created", "label": "Secure Policy Profile created"},
    {"name": "securepolicyprofile.update", "description": "A secure policy profile was updated", "label": "Secure Policy Profile updated"},
    {"name": "securepolicyprofile.delete", "description": "A secure policy profile was deleted", "label": "Secure Policy Profile deleted"}
  ], "label": "Organization"},
  "repo": {"actions": [
    {"name": "create", "description": "Activities related to the creation of a new repository", "label": "Repository Created"},
    {"name": "update", "description": "Activities related to the modification of a repository", "label": "Repository Updated"},
    {"name": "delete", "description": "Activities related to the deletion of a repository", "label": "Repository Deleted"},
    {"name": "change_privacy", "description": "Details related to the privacy policies that were updated", "label": "Privacy Changed"},
    {"name": "category.updated", "description": "Details related to updating a repository categories", "label": "Categories updated"},
    {"name": "immutable.tags.updated", "description": "Details related to updating tag immutability of a repository", "label": "Tag immutability updated"},
    {"name": "tag.push", "description": "Activities related to the tags pushed", "label": "Tag Pushed"},
    {"name": "tag.delete", "description": "Activities related to the tags deleted", "label": "Tag Deleted"}
  ], "label": "Repository"}
}}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_lists_75_actions_and_every_generated_one() {
        let catalogue: Value = serde_json::from_str(ACTIONS_JSON).expect("catalogue is JSON");
        let groups = catalogue["actions"].as_object().expect("groups");
        let mut full = Vec::new();
        for (group, body) in groups {
            for a in body["actions"].as_array().expect("actions") {
                full.push(format!("{group}.{}", a["name"].as_str().expect("name")));
            }
        }
        assert_eq!(full.len(), 75);
        for (action, _) in WEIGHTED_ACTIONS {
            assert!(full.iter().any(|f| f == action), "{action} is not documented");
        }
    }

    #[test]
    fn uniform_stamp_honours_bounds_and_precision() {
        let t = parse_timestamp("2026-11-25T21:26:00.5Z").expect("valid");
        let mut r = stream_rng(7, STREAM_BASE);
        // [t, t + 1 s) holds exactly one whole second only if t is whole; here it holds none but t+0.5.
        assert_eq!(
            uniform_stamp(&mut r, nanos(t), nanos(t) + 400_000_000, false),
            None
        );
        let s = uniform_stamp(&mut r, nanos(t), nanos(t) + 600_000_000, false).expect("one second");
        assert_eq!(format_timestamp(s, false), "2026-11-25T21:26:01Z");
        for _ in 0..100 {
            let s = uniform_stamp(&mut r, nanos(t), nanos(t) + 3_000, true).expect("micros");
            assert!(s >= t && nanos(s) < nanos(t) + 3_000);
        }
    }

    #[test]
    fn events_look_like_the_documented_example() {
        let mut r = stream_rng(3, STREAM_BASE);
        let pushes: Vec<Value> = (0..200)
            .map(|_| event_at(&mut r, "acme", "2026-11-25T21:26:00Z"))
            .filter(|e| e["action"] == "repo.tag.push")
            .collect();
        assert!(pushes.len() > 40, "pushes are the most common action");
        let e = &pushes[0];
        assert!(e["name"].as_str().expect("name").starts_with("acme/"));
        let digest = e["data"]["digest"].as_str().expect("digest");
        assert_eq!(digest.len(), "sha256:".len() + 64);
        assert!(e["data"]["tag"].is_string());
        assert_eq!(e["account"], "acme");
    }
}
