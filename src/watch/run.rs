//! One watch: every org's health, the notification when the set of stale orgs changed, the
//! daily jobs that are due; and what was sent and started, remembered in the checkpoint store.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::dispatch::{self, VerifyWindow, COMPACT_AFTER};
use super::health::Health;
use super::notice;
use crate::checkpoint_model::WatchMemory;
use crate::ports::{CheckpointIndex, Dispatcher, Job, Notifier, StoreError};
use crate::types::Org;

/// Makes an org's job of one kind.
type JobOf = fn(Org) -> Job;

/// What a watch needs to know of the deployment.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// The orgs collected: one without a checkpoint is stale (it never ran).
    pub deployed: BTreeSet<Org>,
    /// Data older than this is stale.
    pub stale_after: Duration,
    /// The name messages give the deployment (the stack's).
    pub name: String,
    /// Where daily verifications are spread; `None`: no jobs are started.
    pub window: Option<VerifyWindow>,
    /// No job is started after this (the invocation's own deadline, less a margin).
    pub deadline: Option<std::time::Instant>,
}

impl WatchConfig {
    /// The stale age the template's default alarm uses.
    pub const DEFAULT_STALE_AFTER: Duration = Duration::minutes(30);
}

/// An org named stale is named recovered only once its data is this much younger than the
/// stale age (at most half of it): an org whose age hovers at the threshold, as runs come
/// and go, is not announced stale and well again on every watch.
const RECOVERY_MARGIN: Duration = Duration::minutes(5);

/// The reasons that ask for someone to act: an org already named for another reason (it was
/// catching up, say) is named again when its reason becomes one of these.
const ACTING: [&str; 4] = ["failing", "lease_stuck", "no_recent_run", "never_ran"];

/// A stale org as the answer lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaleOrg {
    pub org: Org,
    pub why: super::Why,
    pub watermark: Option<DateTime<Utc>>,
}

/// What a watch found and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WatchReport {
    pub orgs: usize,
    pub stale: Vec<StaleOrg>,
    /// Seconds; `None` when no deployed org has a watermark yet.
    pub oldest_watermark_age: Option<f64>,
    /// The subject of the message sent, if one was.
    pub notified: Option<String>,
    pub started: Vec<Job>,
    /// What went wrong (a message that could not be sent, a job that could not be started):
    /// each is tried again by the next watch.
    pub errors: Vec<String>,
}

/// Watches the deployment at `now`. Only a failure to read the checkpoints is an error:
/// then nothing is known, and nothing is sent or started.
///
/// A message is sent only when the set of stale orgs differs from the one the last message
/// named, and remembered only once sent; a repeat watch with the same set sends nothing.
pub async fn watch(
    index: &dyn CheckpointIndex,
    notifier: Option<&dyn Notifier>,
    dispatcher: Option<&dyn Dispatcher>,
    cfg: &WatchConfig,
    now: DateTime<Utc>,
) -> Result<WatchReport, StoreError> {
    let states = index.list().await?;
    let health = Health::assess(Some(&cfg.deployed), states, now, cfg.stale_after);
    let mut memory = index.memory().await?;
    let before = memory.clone();
    let mut report = WatchReport {
        orgs: cfg.deployed.len(),
        stale: health
            .stale()
            .map(|o| StaleOrg {
                org: o.org.clone(),
                why: o.stale.clone().expect("stale"),
                watermark: o.watermark,
            })
            .collect(),
        oldest_watermark_age: health.oldest_age().map(|a| a.num_milliseconds() as f64 / 1000.0),
        ..WatchReport::default()
    };

    let now_stale: BTreeMap<Org, String> = report
        .stale
        .iter()
        .map(|s| (s.org.clone(), s.why.kind().to_string()))
        .collect();
    // An org no longer deployed is neither stale nor "collected again": it is forgotten.
    memory.stale.retain(|org, _| cfg.deployed.contains(org));
    let margin = RECOVERY_MARGIN.min(cfg.stale_after / 2);
    let settling = |org: &Org| {
        health
            .orgs
            .iter()
            .find(|o| &o.org == org)
            .and_then(|o| o.age)
            .is_none_or(|age| age > cfg.stale_after - margin)
    };
    let mut named = now_stale.clone();
    for (org, kind) in &memory.stale {
        if !named.contains_key(org) && settling(org) {
            named.insert(org.clone(), kind.clone());
        }
    }
    let worse = named.iter().any(|(org, kind)| {
        memory
            .stale
            .get(org)
            .is_some_and(|old| old != kind && ACTING.contains(&kind.as_str()))
    });
    let changed = named.keys().ne(memory.stale.keys()) || worse;
    let newly: Vec<Org> = named
        .keys()
        .filter(|o| !memory.stale.contains_key(*o))
        .cloned()
        .collect();
    let recovered: Vec<Org> = memory
        .stale
        .keys()
        .filter(|o| !named.contains_key(*o))
        .cloned()
        .collect();
    let message = match () {
        _ if !changed => None,
        _ if named.is_empty() => Some(notice::all_well(&health, &cfg.name, &recovered)),
        // Only orgs still settling are left: nothing to say until they are well below.
        _ if now_stale.is_empty() => None,
        _ => Some(notice::stale(&health, &cfg.name, &newly, &recovered)),
    };
    match (message, notifier) {
        (Some(message), Some(n)) => match n.notify(&message.subject, &message.body).await {
            Ok(()) => {
                tracing::info!(subject = %message.subject, "watch: notified");
                report.notified = Some(message.subject);
                memory.stale = named;
                memory.notified_at = Some(now);
                // Remembered at once: whatever happens to the rest of this watch, the next one
                // does not send it again.
                if let Err(e) = index.remember(&mut memory).await {
                    tracing::warn!(error = %e, "watch: could not remember the message sent");
                    report
                        .errors
                        .push(format!("could not remember the message sent: {e}"));
                    memory = index.memory().await?;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "watch: the message could not be sent; the next watch tries again");
                report.errors.push(format!("the message could not be sent: {e}"));
            }
        },
        // Nothing to send, or nowhere to send it: the reasons and the set are kept up to date.
        _ => memory.stale = named,
    }
    let before = if report.notified.is_some() {
        memory.clone()
    } else {
        before
    };

    if let (Some(window), Some(d)) = (&cfg.window, dispatcher) {
        let jobs: [(&str, Duration, JobOf); 2] = [
            ("verify", Duration::zero(), |org| Job::Verify { org }),
            ("compact", COMPACT_AFTER, |org| Job::Compact { org }),
        ];
        let WatchMemory {
            verify_dispatched,
            compact_dispatched,
            ..
        } = &mut memory;
        for ((kind, after, job_of), done) in jobs.into_iter().zip([verify_dispatched, compact_dispatched]) {
            done.retain(|org, _| cfg.deployed.contains(org));
            let (due, fresh) = dispatch::due(window, cfg.deployed.iter(), done, now, after);
            done.extend(fresh);
            for (org, slot) in due {
                if cfg.deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                    tracing::warn!(%org, job = kind, "watch: out of time; the next watch starts it");
                    break;
                }
                let job = job_of(org.clone());
                match d.start(&job).await {
                    Ok(()) => {
                        tracing::info!(%org, job = kind, slot = %slot, "watch: started");
                        done.insert(org, slot);
                        report.started.push(job);
                    }
                    Err(e) => {
                        tracing::error!(%org, job = kind, error = %e, "watch: could not start; the next watch tries again");
                        report
                            .errors
                            .push(format!("could not start the {kind} of {org}: {e}"));
                    }
                }
            }
        }
    }

    if memory != before {
        if let Err(e) = index.remember(&mut memory).await {
            // Another watchdog saved first (it sent or started the same), or the store failed:
            // the next watch decides again from what is stored.
            tracing::warn!(error = %e, "watch: could not remember what was sent and started");
            report
                .errors
                .push(format!("could not remember what was sent and started: {e}"));
        }
    }
    Ok(report)
}
