//! `verify`, on local files or on S3 and DynamoDB.

use serde_json::json;

use super::args::VerifyArgs;
use super::poll::{credentials, hub_config, Wired};
use super::Failed;
use crate::clock::{Clock, SystemClock};
use crate::collect::verify::{DayReport, Progress, VerifyRange, VerifyReport};
use crate::config::PollConfig;
use crate::logging::LogFormat;
use crate::types::rfc3339;

/// Above this many Docker Hub requests, `verify` says what it will cost before it starts.
const SAY_COST_ABOVE: u64 = 300;

pub async fn verify(a: VerifyArgs, format: LogFormat) -> Result<(), Failed> {
    let now = SystemClock.now();
    let range = range_of(&a, now)?;
    if a.hub.page_size == 0 {
        return Err(Failed::usage("--page-size must be at least 1"));
    }
    let mut cfg = PollConfig::new(a.org.clone());
    cfg.page_size = a.hub.page_size;
    let mut hub = hub_config(a.hub.hub_url.clone(), &a.hub.http)?;
    // The rate limit is shared with the scheduled poller: leave it half.
    hub.leave_for_others = 0.5;
    let creds = credentials(a.hub.secret_id.as_deref()).await?;
    let wired = Wired::new(hub, creds, &a.store.stores()).await?;
    let deadline = a.max_duration.and_then(|d| now.checked_add_signed(d));
    let text = matches!(format, LogFormat::Text);
    let mut progress = |p: Progress<'_>| show_progress(&a.org, text, p);
    // A repair takes a compacted day off the compacted side first, and each compacted day
    // is compared with its raw objects (a local folder's, or the stack's view in AWS).
    let surface = a
        .store
        .stores()
        .compacted_side(a.repair)
        .await
        .map_err(Failed::usage)?;
    let checked = surface.as_deref().map(crate::compact::Checked);
    let mut service = wired.service(None);
    if let Some(c) = &checked {
        service = service.with_surface(c);
    }
    let outcome = service.verify(&cfg, &range, deadline, &mut progress).await;
    let report = match (outcome.report, outcome.failure) {
        (Some(report), None) => report,
        (_, Some(f)) => return Err(Failed::from(f.message)),
        (None, None) => return Err(Failed::from("verify answered nothing".to_string())),
    };
    if report.days == 0 && report.complete {
        return Err(Failed::usage(format!(
            "nothing to verify: the range starts at or after {}, where {}'s collection is final so far \
             (the start of its overlap); give an earlier --from or a longer --since",
            rfc3339(report.to),
            a.org
        )));
    }
    if text {
        say!("{}", summary_line(&report));
    } else {
        say!("{}", json!({ "summary": report, "ok": report.clean() }));
    }
    if report.clean() {
        Ok(())
    } else {
        Err(Failed::from(problem(&report)))
    }
}

/// The range the flags ask for: `--from` or `--since`, up to `--until`.
fn range_of(a: &VerifyArgs, now: chrono::DateTime<chrono::Utc>) -> Result<VerifyRange, Failed> {
    let from = match a.from {
        Some(f) => f,
        None => now.checked_sub_signed(a.since).ok_or_else(|| {
            Failed::usage(format!(
                "--since {} reaches before any date; give a shorter one",
                humantime::format_duration(a.since.to_std().unwrap_or_default())
            ))
        })?,
    };
    if let Some(until) = a.until {
        if until <= from {
            return Err(Failed::usage(format!(
                "--until {} is not after the start {}; give a later --until or an earlier --from/--since",
                rfc3339(until),
                rfc3339(from)
            )));
        }
    }
    Ok(VerifyRange {
        from,
        until: a.until,
        repair: a.repair,
    })
}

/// The plan (and its cost, when high, on stderr) and a line per day: a table, or JSON lines.
fn show_progress(org: &crate::types::Org, text: bool, p: Progress<'_>) {
    match p {
        Progress::Plan {
            from,
            to,
            days,
            estimated_requests,
        } => {
            if estimated_requests > SAY_COST_ABOVE {
                super::progress::above(|| {
                    eprintln!(
                        "note: verifying {days} days costs about {estimated_requests} Docker Hub requests, from the \
                         rate limit the poller also uses; verify leaves the poller half of it, so this can take a while \
                         (a shorter --since costs less)"
                    )
                });
            }
            if text {
                say!(
                    "verify {org}: {} to {} ({days} days, about {estimated_requests} Docker Hub requests)",
                    rfc3339(from),
                    rfc3339(to)
                );
                say!(
                    "{:<10} {:>11} {:>9} {:>8} {:>11} {:>11}",
                    "day",
                    "docker-hub",
                    "stored",
                    "missing",
                    "duplicated",
                    "unexpected"
                );
            }
        }
        Progress::Day(d) if text => day_lines(d),
        Progress::Day(d) => say!("{}", json!({ "day": d })),
    }
}

fn day_lines(d: &DayReport) {
    let mut notes = Vec::new();
    if d.past_retention {
        notes.push("past Docker Hub's retention: stored, no longer served".to_string());
    } else if d.unexpected > 0 {
        notes.push(format!("{} stored event(s) no longer served", d.unexpected));
    }
    if d.repaired > 0 {
        notes.push(format!("{} repaired", d.repaired));
    }
    if d.unreadable_served > 0 {
        notes.push(format!(
            "{} unreadable item(s) served (kept in _quarantine/ by the poller)",
            d.unreadable_served
        ));
    }
    say!(
        "{:<10} {:>11} {:>9} {:>8} {:>11} {:>11}{}",
        d.day.to_string(),
        d.at_docker_hub,
        d.stored,
        d.missing,
        d.duplicated,
        d.unexpected,
        if notes.is_empty() {
            String::new()
        } else {
            format!("  {}", notes.join("; "))
        }
    );
    for dup in &d.duplicates {
        let keys: Vec<&str> = dup.keys.iter().map(|k| k.0.as_str()).collect();
        say!("  {} event(s) stored in each of: {}", dup.events, keys.join(", "));
    }
    for key in &d.unreadable_objects {
        say!("  cannot read {key} (damaged, or not written by this tool)");
    }
    if let Some(c) = d.compacted.as_ref().filter(|c| !c.agrees()) {
        match &c.unreadable {
            Some(why) => say!("  the compacted object cannot be read: {why}"),
            None => say!(
                "  the compacted object differs from the raw objects: {} raw event(s) not in it, {} row(s) not raw",
                c.missing,
                c.extra
            ),
        }
    }
}

fn summary_line(r: &VerifyReport) -> String {
    let mut s = format!(
        "summary {}: {} days from {} to {}: {} at Docker Hub, {} stored, {} missing, {} duplicated, {} unexpected",
        r.org,
        r.days,
        rfc3339(r.from),
        rfc3339(r.to),
        r.at_docker_hub,
        r.stored,
        r.missing,
        r.duplicated,
        r.unexpected
    );
    if r.days_past_retention > 0 {
        s += &format!(" ({} day(s) past Docker Hub's retention)", r.days_past_retention);
    }
    if r.repaired > 0 {
        s += &format!(", {} repaired", r.repaired);
    }
    if r.unreadable_objects > 0 {
        s += &format!(", {} unreadable object(s)", r.unreadable_objects);
    }
    if r.compacted_days_disagreeing > 0 {
        s += &format!(
            ", {} compacted day(s) differ from their raw objects",
            r.compacted_days_disagreeing
        );
    }
    s += &format!("; {} Docker Hub requests", r.requests);
    s += if r.clean() { "; OK" } else { "; NOT OK" };
    s
}

/// What is wrong, and what to do.
fn problem(r: &VerifyReport) -> String {
    let mut parts = Vec::new();
    if !r.complete {
        parts.push(format!(
            "the verify stopped at {} ({}); run it again for the rest",
            rfc3339(r.to),
            r.stopped_early.as_deref().unwrap_or("stopped")
        ));
    }
    let unrepaired = r.missing - r.repaired.min(r.missing);
    if unrepaired > 0 {
        let how = match &r.repair_skipped {
            Some(why) => format!("not repaired: {why}"),
            None => "run verify again with --repair to write them".to_string(),
        };
        parts.push(format!("{unrepaired} event(s) missing; {how}"));
    }
    if r.duplicated > 0 {
        parts.push(format!(
            "{} event(s) stored more than once (the objects are listed above; the deduplicated view in Athena \
             hides the copies)",
            r.duplicated
        ));
    }
    if r.compacted_days_disagreeing > 0 {
        parts.push(format!(
            "{} compacted day(s) differ from their raw objects (listed above; queries read the compacted object): \
             run compact, which takes such a day off the compacted side and compacts it again",
            r.compacted_days_disagreeing
        ));
    }
    if r.unreadable_objects > 0 {
        parts.push(format!(
            "{} stored object(s) cannot be read (listed above): move them out of the output (or restore them from \
             a version), then verify --repair writes their events",
            r.unreadable_objects
        ));
    }
    parts.join("; ")
}
