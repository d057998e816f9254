//! The query surface: which days of the trail queries read from the compacted objects, and
//! which from the raw ones. A day comes from exactly one side at every moment.
//!
//! The raw trail is the record: every query over the surface returns what the raw objects
//! hold. A day joins the compacted side only once its compacted object is written and
//! checked against the raw day ([`CompactedDays::publish`]), and leaves it before anything
//! is added to its raw objects ([`QuerySurface::reopen`]). Each of those is one atomic step
//! (a rename of a file, one Glue `UpdateTable`), so no query sees a day twice or not at all.

#[cfg(feature = "aws")]
pub mod glue;
pub mod local;
pub mod view;

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use crate::ports::StoreError;
use crate::types::{EventId, Org};

/// The view the template creates (and the CLI and the functions use by default).
pub const DEFAULT_VIEW: &str = "events";

/// The days each org has on the compacted side.
pub type DayMap = BTreeMap<String, BTreeSet<NaiveDate>>;

/// What a writer of the raw trail needs: take a day off the compacted side before adding to
/// its raw objects (a repair of a day already compacted).
#[async_trait]
pub trait QuerySurface: Send + Sync {
    /// Puts `org`'s `day` back on the raw side; `true` when it was compacted. Idempotent.
    /// Invariant: when this returns, no query reads the day's compacted object.
    async fn reopen(&self, org: &Org, day: NaiveDate) -> Result<bool, StoreError>;

    /// The events (id, time) of `day`'s compacted object when the day is on the compacted
    /// side, for a verify to compare with the raw day; `None` when it is not, or when this
    /// surface cannot read compacted objects (the collector function carries no Parquet
    /// reader: the compactor checks its days itself).
    async fn compacted_events(
        &self,
        _org: &Org,
        _day: NaiveDate,
    ) -> Result<Option<Vec<(EventId, DateTime<Utc>)>>, StoreError> {
        Ok(None)
    }
}

/// What the compactor needs: the compacted objects and the flip.
#[async_trait]
pub trait CompactedDays: QuerySurface {
    /// The days of `org` on the compacted side.
    async fn days(&self, org: &Org) -> Result<BTreeSet<NaiveDate>, StoreError>;
    /// Stores the compacted object of a day that is on the raw side (no query reads it yet);
    /// replaces an earlier one. Its key or path, for reports.
    async fn put(&self, org: &Org, day: NaiveDate, body: Vec<u8>) -> Result<String, StoreError>;
    /// The compacted object of `day` as stored (published or not).
    async fn get(&self, org: &Org, day: NaiveDate) -> Result<Vec<u8>, StoreError>;
    /// Moves `day` to the compacted side, in one atomic step, once its object is stored.
    async fn publish(&self, org: &Org, day: NaiveDate) -> Result<(), StoreError>;
}

/// Where a day's compacted object lives, relative to the output (or the bucket's prefix).
pub fn compacted_key(org: &Org, day: NaiveDate) -> String {
    format!("compacted/org={org}/dt={}/events.parquet", day.format("%Y-%m-%d"))
}

/// A surface that never compacts (outputs without compaction): nothing to reopen.
pub struct NoCompaction;

#[async_trait]
impl QuerySurface for NoCompaction {
    async fn reopen(&self, _org: &Org, _day: NaiveDate) -> Result<bool, StoreError> {
        Ok(false)
    }
}
