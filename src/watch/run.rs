//! One watch: every org's health, the notification when the set of stale orgs changed, the
//! daily jobs that are due; and what was sent and started, remembered in the checkpoint store.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::dispatch::{self, VerifyWindow, COMPACT_AFTER};
use super::health::Health;
use super::notice;
use crate::ports::{CheckpointIndex, Dispatcher, Job, Notifier, StoreError};
use crate::types::Org;

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
}

impl WatchConfig {
    /// The stale age the template's default alarm uses.
    pub const DEFAULT_STALE_AFTER: Duration = Duration::minutes(30);
}

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
    let changed = now_stale.keys().ne(memory.stale.keys());
    if changed {
        let newly: Vec<Org> = now_stale
            .keys()
            .filter(|o| !memory.stale.contains_key(*o))
            .cloned()
            .collect();
        let recovered: Vec<Org> = memory
            .stale
            .keys()
            .filter(|o| !now_stale.contains_key(*o))
            .cloned()
            .collect();
        let message = if now_stale.is_empty() {
            notice::all_well(&health, &cfg.name, &recovered)
        } else {
            notice::stale(&health, &cfg.name, &newly, &recovered)
        };
        match notifier {
            None => {
                memory.stale = now_stale;
            }
            Some(n) => match n.notify(&message.subject, &message.body).await {
                Ok(()) => {
                    tracing::info!(subject = %message.subject, "watch: notified");
                    report.notified = Some(message.subject);
                    memory.stale = now_stale;
                    memory.notified_at = Some(now);
                }
                Err(e) => {
                    tracing::error!(error = %e, "watch: the message could not be sent; the next watch tries again");
                    report.errors.push(format!("the message could not be sent: {e}"));
                }
            },
        }
    } else {
        // The same orgs: their reasons are kept up to date, nothing is sent.
        memory.stale = now_stale;
    }

    if let (Some(window), Some(d)) = (&cfg.window, dispatcher) {
        let deployed = || cfg.deployed.iter();
        for (kind, after) in [("verify", Duration::zero()), ("compact", COMPACT_AFTER)] {
            let done = match kind {
                "verify" => &mut memory.verify_dispatched,
                _ => &mut memory.compact_dispatched,
            };
            done.retain(|org, _| cfg.deployed.contains(org));
            let (due, fresh) = dispatch::due(window, deployed(), done, now, after);
            done.extend(fresh);
            for (org, slot) in due {
                let job = match kind {
                    "verify" => Job::Verify { org: org.clone() },
                    _ => Job::Compact { org: org.clone() },
                };
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
