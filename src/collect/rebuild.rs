//! A checkpoint rebuilt from what the output holds: the watermark and the ids inside the
//! overlap, read back from the stored objects. A run does it when the checkpoint is behind
//! its output (see [`super::reconcile`]); `checkpoint rebuild` does it on demand, under the
//! org's lease ([`rebuild_under_lease`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};

use super::lease::LeaseKeeper;
use super::stored;
use crate::checkpoint_model::Checkpoint;
use crate::clock::Clock;
use crate::event::key::position;
use crate::ports::{Checkpoints, Sink, StoreError};
use crate::types::{floor_second, Org, RunId};

/// What [`rebuild_checkpoint`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuiltCheckpoint {
    pub watermark_before: Option<DateTime<Utc>>,
    pub watermark: DateTime<Utc>,
    /// Objects read, and the ids remembered from them.
    pub objects_read: u64,
    pub ids: u64,
}

impl std::fmt::Display for RebuiltCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let before = self
            .watermark_before
            .map(crate::types::rfc3339)
            .unwrap_or_else(|| "none".into());
        write!(
            f,
            "rebuilt the checkpoint from {} stored object(s): watermark {} (was {before}), {} id(s) remembered",
            self.objects_read,
            crate::types::rfc3339(self.watermark),
            self.ids
        )
    }
}

/// Rebuilds in `cp` what a run must remember from what the output holds of its org: the
/// watermark moves to the latest stored event (never back), `seen_from` to
/// `watermark - overlap`, and `seen` and `recent` hold every stored object and id from
/// there on. `None` (and `cp` unchanged) when the output holds nothing of the org. The pending commit, if any, is kept: it is
/// rolled forward under its own keys.
///
/// Sound because objects are written in time order and a checkpoint only records an
/// event once it is stored: every event before the latest stored one was stored.
pub async fn rebuild_checkpoint<S: Sink + ?Sized>(
    sink: &S,
    cp: &mut Checkpoint,
    overlap: Duration,
) -> Result<Option<RebuiltCheckpoint>, StoreError> {
    let org = cp.org.clone();
    let days = sink.days(&org).await?;
    // The newest partition holding events gives the latest stored event (an object holds
    // the events of its own date); it is read once, and kept for what follows.
    let (mut read, mut earlier, mut latest) = (Vec::new(), days.as_slice(), None);
    while let Some((day, before)) = earlier.split_last() {
        read = stored::of_day(sink, &org, *day).await?;
        earlier = before;
        latest = read
            .iter()
            .flat_map(|(_, events)| events.iter().map(|(_, t)| *t))
            .max();
        if latest.is_some() {
            break;
        }
    }
    let Some(latest) = latest else {
        return Ok(None);
    };
    let before = cp.watermark;
    let watermark = before.map_or(floor_second(latest), |w| w.max(floor_second(latest)));
    // From `watermark - overlap`, not from an older `seen_from`: a run reads from here, and
    // its commits keep only ids from `watermark - overlap` on, so a window starting earlier
    // would be read against ids already let go. Everything before is stored.
    let from = floor_second(watermark.checked_sub_signed(overlap).unwrap_or(watermark));
    // An object that cannot be read fails the rebuild, naming it: its ids cannot be
    // remembered, so going on would store its events a second time.
    for day in earlier.iter().filter(|d| **d >= from.date_naive()) {
        read.extend(stored::of_day(sink, &org, *day).await?);
    }
    let objects_read = read.len() as u64;
    let mut seen: BTreeMap<_, _> = std::mem::take(&mut cp.seen)
        .into_iter()
        .filter(|(_, t)| *t >= from)
        .collect();
    let mut recent = BTreeSet::new();
    for (key, events) in read {
        // By key, as `reconcile::behind_output` lists them: an object named otherwise than by its first event
        // (not by this tool) is known too, and not rebuilt for again.
        if key.0 >= position(&org, from) {
            recent.insert(key);
        }
        seen.extend(events.into_iter().filter(|(_, t)| *t >= from));
    }
    let ids = seen.len() as u64;
    cp.watermark = Some(watermark);
    cp.seen_from = Some(from);
    cp.seen = seen;
    cp.recent = Some(recent);
    Ok(Some(RebuiltCheckpoint {
        watermark_before: before,
        watermark,
        objects_read,
        ids,
    }))
}

/// What `checkpoint rebuild` did.
#[derive(Debug, Clone, PartialEq)]
pub enum LeasedRebuild {
    /// Another run holds the org's lease: nothing was done.
    LeaseHeld,
    /// The output holds nothing of the org: the checkpoint is as it was.
    NothingStored,
    /// The checkpoint was rebuilt and saved.
    Rebuilt(RebuiltCheckpoint),
}

/// `checkpoint rebuild`: takes the org's lease and rebuilds its checkpoint from what the
/// output holds, whether or not it looks stale.
pub async fn rebuild_under_lease<K: Checkpoints, S: Sink + ?Sized>(
    checkpoints: &K,
    sink: &S,
    clock: &dyn Clock,
    org: &Org,
    overlap: Duration,
) -> Result<LeasedRebuild, StoreError> {
    let run_id = RunId::generate(clock.now());
    let Some((lease, mut cp)) = checkpoints.acquire(org, &run_id).await? else {
        return Ok(LeasedRebuild::LeaseHeld);
    };
    let result = async {
        let output = sink.identity().await?;
        if let Some(recorded) = cp.output.as_deref().filter(|o| *o != output) {
            return Err(StoreError::Invalid(format!(
                "the checkpoint of {org} describes the output {recorded}, not {output}: give the checkpoint store \
                 that goes with this output, or a new one"
            )));
        }
        let mut next = cp.clone();
        next.output = Some(output);
        let mut keeper = LeaseKeeper::new(checkpoints, &lease);
        let done = keeper.during(rebuild_checkpoint(sink, &mut next, overlap)).await??;
        match done {
            Some(done) => {
                cp.save_changed(checkpoints, &lease, |c| *c = next).await?;
                Ok(LeasedRebuild::Rebuilt(done))
            }
            None => Ok(LeasedRebuild::NothingStored),
        }
    }
    .await
    .map_err(|e| match e {
        StoreError::Conflict(why) => StoreError::Conflict(format!(
            "another run took the lease of {org} meanwhile ({why}); run checkpoint rebuild again, or leave it to \
             the next poll, which rebuilds it too"
        )),
        e => e,
    });
    if let Err(e) = checkpoints.release(lease).await {
        tracing::warn!(error = %e, "could not release the lease; it expires by itself");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_their_first_event() {
        let org = Org::new("acme").unwrap();
        let t = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .to_utc();
        let k = crate::event::key::object_key(&org, t.date_naive(), t, &[crate::types::EventId("a".into())]);
        assert!(k.0.as_str() > position(&org, t).as_str());
        assert!(k.0.as_str() < position(&org, t + Duration::seconds(1)).as_str());
    }
}
