//! What the watchdog says, in words a person paged at night can act on: each stale org, why,
//! its last error, last run and watermark, and what to do. `status --all` says the same.

use chrono::{DateTime, Duration, Utc};

use super::health::{Health, OrgHealth, Why};
use crate::types::{rfc3339, Org};

/// SNS takes a subject of at most 100 characters.
const SUBJECT_MAX: usize = 100;

/// A message for the alarm topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub subject: String,
    pub body: String,
}

/// `2h 3m` (whole minutes; seconds under a minute).
pub fn age_text(d: Duration) -> String {
    let secs = d.num_seconds().max(0) as u64;
    let rounded = if secs >= 60 { secs - secs % 60 } else { secs };
    humantime::format_duration(std::time::Duration::from_secs(rounded)).to_string()
}

fn when(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ({} ago)", rfc3339(at), age_text(now - at))
}

/// One line: why the org is stale.
pub fn describe(why: &Why, now: DateTime<Utc>) -> String {
    match why {
        Why::NeverRan => "never ran: there is no checkpoint of it".into(),
        Why::LeaseHeld {
            owner,
            until,
            stuck: true,
        } => format!(
            "its lease is stuck: held by {owner} until {}, further ahead than any live run sets it",
            rfc3339(*until)
        ),
        Why::LeaseHeld { owner, until, .. } => {
            format!("its lease is held by {owner} until {}", rfc3339(*until))
        }
        Why::NeverCollected => "its runs finish but none has stored anything yet".into(),
        Why::Failing { failures, error } => {
            let runs = if *failures == 1 {
                "its last run".to_string()
            } else {
                format!("its last {failures} runs")
            };
            format!("{runs} failed: {error}")
        }
        Why::NoRecentRun { last: Some(t) } => format!("no run has finished since {}", when(*t, now)),
        Why::NoRecentRun { last: None } => "no run has recorded a finish".into(),
        Why::CatchingUp => "its runs are still catching up".into(),
        Why::Behind => "its data is behind, for no reason the checkpoint shows".into(),
    }
}

/// What to do about it.
pub fn advice(why: &Why, org: &Org) -> String {
    match why {
        Why::NeverRan | Why::NoRecentRun { .. } => format!(
            "check that the schedule collect-{org} exists and is enabled; runs that crash or time out record \
             nothing, so also read the function's log and the dead-letter queue. Invoking the function with \
             {{\"org\": \"{org}\"}} shows a run's answer"
        ),
        Why::LeaseHeld { stuck: true, .. } => {
            "if no run of that owner is alive, remove lease_owner and lease_until from \
             the org's item in the checkpoint table (a clock far ahead set it); the next run continues"
                .into()
        }
        Why::LeaseHeld { .. } => {
            "a long run elsewhere (a backfill from the CLI, say) holds it and no run finished lately: \
             wait for it, or stop it; a lease of a run that died expires by itself (within a minute \
             for the function's runs)"
                .into()
        }
        Why::Failing { .. } => "the error says what to do (usually: a valid \
             token with Audit Log Read in the org's secret); the next good run continues from the watermark, \
             nothing is lost"
            .into(),
        Why::NeverCollected | Why::CatchingUp => {
            "wait: each run stores what it read (a first backfill of 90 days takes a few runs)".into()
        }
        Why::Behind => format!("read the function's log for {org}"),
    }
}

/// The lines about one stale org.
fn org_lines(o: &OrgHealth, now: DateTime<Utc>, out: &mut String) {
    let Some(why) = &o.stale else { return };
    out.push_str(&format!("{}: {}\n", o.org, describe(why, now)));
    let watermark = o
        .watermark
        .map(|w| when(w, now))
        .unwrap_or_else(|| "none yet".into());
    out.push_str(&format!("  watermark:  {watermark}\n"));
    match &o.last_run {
        Some(r) => {
            out.push_str(&format!(
                "  last run:   {} finished {}, {} events written, {}\n",
                r.run_id,
                when(r.finished_at, now),
                r.events_written,
                if r.caught_up { "caught up" } else { "not caught up" }
            ));
            if let Some(e) = &r.error {
                out.push_str(&format!("  last error: {e}\n"));
            }
        }
        None => out.push_str("  last run:   none recorded\n"),
    }
    out.push_str(&format!("  what to do: {}\n\n", advice(why, &o.org)));
}

/// SNS takes printable ASCII alone in a subject, under [`SUBJECT_MAX`] characters.
fn clip_subject(s: String) -> String {
    let s: String = s
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .collect();
    if s.len() < SUBJECT_MAX {
        return s;
    }
    format!("{}...", &s[..SUBJECT_MAX - 4])
}

/// The message when the set of stale orgs changed to a non-empty one. `newly` and
/// `recovered`: the orgs that joined and left it since the last message.
pub fn stale(health: &Health, deployment: &str, newly: &[Org], recovered: &[Org]) -> Notice {
    let now = health.at;
    let stale: Vec<&OrgHealth> = health.stale().collect();
    let names: Vec<&str> = stale.iter().map(|o| o.org.as_str()).collect();
    let subject = clip_subject(format!(
        "{deployment}: {} stale org{}: {}",
        stale.len(),
        if stale.len() == 1 { "" } else { "s" },
        names.join(", ")
    ));
    let mut body = format!(
        "{} of the {} organizations this deployment collects {} data older than {} (checked at {}).\n\n",
        stale.len(),
        health.deployed().count(),
        if stale.len() == 1 { "has" } else { "have" },
        age_text(health.stale_after),
        rfc3339(now)
    );
    for o in &stale {
        org_lines(o, now, &mut body);
    }
    let list = |orgs: &[Org]| orgs.iter().map(Org::as_str).collect::<Vec<_>>().join(", ");
    if !newly.is_empty() {
        body.push_str(&format!("Stale since the last message: {}.\n", list(newly)));
    }
    if !recovered.is_empty() {
        body.push_str(&format!(
            "Collected again since the last message: {}.\n",
            list(recovered)
        ));
    }
    body.push_str(
        "No other message follows while this set of orgs stays the same; one follows when it changes or all are well. \
         `dockerhub-audit status --all --checkpoint dynamodb://<TableName>` shows every org's state.\n",
    );
    Notice { subject, body }
}

/// The message when every org is well again.
pub fn all_well(health: &Health, deployment: &str, recovered: &[Org]) -> Notice {
    let names: Vec<&str> = recovered.iter().map(Org::as_str).collect();
    Notice {
        subject: clip_subject(format!("{deployment}: all orgs are collected again")),
        body: format!(
            "All {} organizations this deployment collects have data younger than {} (checked at {}). Collected \
             again: {}.\n",
            health.deployed().count(),
            age_text(health.stale_after),
            rfc3339(health.at),
            names.join(", ")
        ),
    }
}
