//! Which orgs are stale, and why: from the checkpoints alone, so an org whose runs stopped
//! (a schedule deleted or disabled, runs that crash) is found as surely as one whose runs fail.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::checkpoint_model::LastRun;
use crate::ports::{LeaseHold, OrgState};
use crate::types::Org;

/// A lease set to expire further ahead than this was not set by a live run: runs renew it a
/// minute at a time, and the CLI's `--lease-ttl` takes at most an hour. A writer's clock far
/// ahead, or a run that never ends.
pub const LEASE_HORIZON: Duration = Duration::minutes(65);

/// No run finished for this long: the org's runs stopped (the schedule fires every 5
/// minutes, a run lasts at most 4).
pub const RUN_GAP: Duration = Duration::minutes(15);

/// Why an org is stale (see `why` for the order in which they are told apart).
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
    /// Runs finish, without an error, but none stored anything yet.
    NeverCollected,
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
            Why::NeverCollected => "never_collected",
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

/// Why a stale org is stale: a stuck lease first (no run can get past it); then, when a
/// run finished lately, what that run says (it failed; it stored nothing yet; it did not
/// catch up); when none did, a lease held by a long run elsewhere, or else runs that stopped.
fn why(st: &OrgState, now: DateTime<Utc>) -> Why {
    let held = st.lease.as_ref().filter(|l| l.until > now);
    if let Some(l) = held.filter(|l| l.until > now + LEASE_HORIZON) {
        return Why::LeaseHeld {
            owner: l.owner.clone(),
            until: l.until,
            stuck: true,
        };
    }
    match st.last_run.as_ref() {
        Some(r) if r.finished_at + RUN_GAP >= now => match &r.error {
            Some(e) => Why::Failing {
                failures: r.failures.max(1),
                error: e.clone(),
            },
            None if st.watermark.is_none() => Why::NeverCollected,
            None if !r.caught_up => Why::CatchingUp,
            None => Why::Behind,
        },
        last => match held {
            Some(l) => Why::LeaseHeld {
                owner: l.owner.clone(),
                until: l.until,
                stuck: false,
            },
            None => Why::NoRecentRun {
                last: last.map(|r| r.finished_at),
            },
        },
    }
}
