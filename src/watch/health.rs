//! Which orgs are stale, and why: from the checkpoints alone, so an org whose runs stopped
//! (a schedule deleted or disabled, runs that crash) is found as surely as one whose runs fail.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::checkpoint_model::LastRun;
use crate::ports::{LeaseHold, OrgState};
use crate::types::Org;

/// A lease set to expire further ahead than this was not set by a live run (runs renew a
/// minute at a time): a writer's clock far ahead, or a run that never ends.
pub const LEASE_HORIZON: Duration = Duration::minutes(5);

/// No run finished for this long: the org's runs stopped (the schedule fires every 5
/// minutes, a run lasts at most 4).
pub const RUN_GAP: Duration = Duration::minutes(15);

/// Why an org is stale. The first that applies, in this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Why {
    /// The store has no checkpoint of it: no run ever got as far as its lease.
    NeverRan,
    /// Another run holds its lease; `stuck` when it expires further ahead than any live
    /// run sets it.
    LeaseHeld {
        owner: String,
        until: DateTime<Utc>,
        stuck: bool,
    },
    /// Runs happened but none stored anything yet.
    NeverCollected { error: Option<String> },
    /// Its last runs failed, `failures` in a row.
    Failing { failures: u32, error: String },
    /// No run finished for [`RUN_GAP`]: the schedule is gone or disabled, or runs crash or
    /// time out before recording anything.
    NoRecentRun { last: Option<DateTime<Utc>> },
    /// Its runs work but have not caught up yet (a first backfill, a burst).
    CatchingUp,
    /// Its data is old for no reason the checkpoint shows.
    Behind,
}

impl Why {
    /// A short name, what the watchdog remembers.
    pub fn kind(&self) -> &'static str {
        match self {
            Why::NeverRan => "never_ran",
            Why::LeaseHeld { stuck: true, .. } => "lease_stuck",
            Why::LeaseHeld { .. } => "lease_held",
            Why::NeverCollected { .. } => "never_collected",
            Why::Failing { .. } => "failing",
            Why::NoRecentRun { .. } => "no_recent_run",
            Why::CatchingUp => "catching_up",
            Why::Behind => "behind",
        }
    }
}

/// One org's health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrgHealth {
    pub org: Org,
    /// Whether the deployment collects it (an org only in the store is reported, never
    /// counted stale).
    pub deployed: bool,
    pub watermark: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub age: Option<Duration>,
    #[serde(skip)]
    pub last_run: Option<LastRun>,
    #[serde(skip)]
    pub lease: Option<LeaseHold>,
    /// Why it is stale; `None` when it is not.
    pub stale: Option<Why>,
}

/// Every org's health at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub at: DateTime<Utc>,
    pub stale_after: Duration,
    /// Ascending by org: the deployed ones and any other the store holds.
    pub orgs: Vec<OrgHealth>,
}

impl Health {
    /// Assesses `states` at `now`. `deployed`: the orgs collected (those without a checkpoint
    /// are stale: they never ran); `None` takes every org of the store as deployed.
    ///
    /// An org is stale when it is deployed and its watermark is older than `stale_after`,
    /// or it has none.
    pub fn assess(
        deployed: Option<&BTreeSet<Org>>,
        states: Vec<OrgState>,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> Health {
        let mut orgs: Vec<OrgHealth> = Vec::new();
        let mut seen = BTreeSet::new();
        for st in states {
            seen.insert(st.org.clone());
            let is_deployed = deployed.is_none_or(|d| d.contains(&st.org));
            orgs.push(assess_one(
                is_deployed,
                Some(st.clone()),
                st.org,
                now,
                stale_after,
            ));
        }
        for org in deployed.into_iter().flatten() {
            if !seen.contains(org) {
                orgs.push(assess_one(true, None, org.clone(), now, stale_after));
            }
        }
        orgs.sort_by(|a, b| a.org.cmp(&b.org));
        Health {
            at: now,
            stale_after,
            orgs,
        }
    }

    /// The deployed orgs that are stale.
    pub fn stale(&self) -> impl Iterator<Item = &OrgHealth> {
        self.orgs.iter().filter(|o| o.deployed && o.stale.is_some())
    }

    /// The deployed orgs.
    pub fn deployed(&self) -> impl Iterator<Item = &OrgHealth> {
        self.orgs.iter().filter(|o| o.deployed)
    }

    /// The age of the oldest watermark of a deployed org (orgs without one are counted in
    /// the stale ones, not here).
    pub fn oldest_age(&self) -> Option<Duration> {
        self.deployed().filter_map(|o| o.age).max()
    }
}

fn assess_one(
    deployed: bool,
    state: Option<OrgState>,
    org: Org,
    now: DateTime<Utc>,
    stale_after: Duration,
) -> OrgHealth {
    let Some(st) = state else {
        return OrgHealth {
            org,
            deployed,
            watermark: None,
            age: None,
            last_run: None,
            lease: None,
            stale: deployed.then_some(Why::NeverRan),
        };
    };
    let age = st.watermark.map(|w| (now - w).max(Duration::zero()));
    let old = age.is_none_or(|a| a > stale_after);
    let stale = (deployed && old).then(|| why(&st, now));
    OrgHealth {
        org,
        deployed,
        watermark: st.watermark,
        age,
        last_run: st.last_run,
        lease: st.lease,
        stale,
    }
}

/// Why a stale org is stale (see [`Why`] for the order).
fn why(st: &OrgState, now: DateTime<Utc>) -> Why {
    if let Some(l) = st.lease.as_ref().filter(|l| l.until > now) {
        return Why::LeaseHeld {
            owner: l.owner.clone(),
            until: l.until,
            stuck: l.until > now + LEASE_HORIZON,
        };
    }
    let last = st.last_run.as_ref();
    if st.watermark.is_none() {
        return Why::NeverCollected {
            error: last.and_then(|r| r.error.clone()),
        };
    }
    match last {
        Some(r) if r.error.is_some() => Why::Failing {
            failures: r.failures.max(1),
            error: r.error.clone().unwrap_or_default(),
        },
        Some(r) if r.finished_at + RUN_GAP < now => Why::NoRecentRun {
            last: Some(r.finished_at),
        },
        None => Why::NoRecentRun { last: None },
        Some(r) if !r.caught_up => Why::CatchingUp,
        Some(_) => Why::Behind,
    }
}
