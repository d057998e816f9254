//! The commit protocol: no loss and no duplicates, whatever crashes or stalls where.
//!
//! 1. record the intent (object keys and the ids they hold) in the checkpoint;
//! 2. write the objects (a key that exists already holds the same events);
//! 3. advance the watermark and `seen`, clearing the intent.
//!
//! Each checkpoint write is conditional on the version (and, in stores that have one, the
//! lease), so a run that lost its lease cannot move anything.
//!
//! A run that finds an intent left by another run **rolls it forward**: objects that exist
//! are kept, missing ones are made again from a fresh read of their events under the same
//! keys, and the intent is completed. It never writes an intent's events under other keys,
//! because the run that recorded it may only be paused (a sleeping laptop, a stalled
//! network) and its upload may land later, after any timeout and whatever the clocks say:
//! under the same key, `If-None-Match` lets only one copy land.

use chrono::Duration;

use super::batch::{Batch, Object, RemadeObjects};
use crate::alert::Rules;
use crate::checkpoint_model::{Checkpoint, Intent, PendingObject};
use crate::event::record::Provenance;
use crate::ports::{Checkpoints, PutOutcome, Sink, StoreError};
use crate::types::Org;

/// Where a run's state and objects go: the checkpoint store with the lease this run
/// holds, and the sink.
pub struct Durable<'a, K: Checkpoints, S: ?Sized> {
    pub store: &'a K,
    pub lease: &'a K::Lease,
    pub sink: &'a S,
}

/// What one commit did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub events: u64,
    pub objects_created: u64,
    pub objects_existing: u64,
}

/// What was done with an earlier run's unfinished commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Every object was there: the commit was completed.
    Completed { objects: usize },
    /// Missing objects were made again under their keys, then the commit was completed.
    /// `lost`: recorded events that Docker Hub no longer served, so could not be written.
    RolledForward {
        present: usize,
        rewritten: usize,
        lost: u64,
    },
}

impl Checkpoint {
    /// Saves a changed copy of `cp` and only then takes it, so `cp` always is what the
    /// store holds: a failed save leaves neither a watermark nor an intent that was never
    /// stored.
    pub(crate) async fn save_changed<K: Checkpoints>(
        &mut self,
        store: &K,
        lease: &K::Lease,
        change: impl FnOnce(&mut Checkpoint),
    ) -> Result<(), StoreError> {
        let mut next = self.clone();
        change(&mut next);
        store.save(lease, &mut next).await?;
        *self = next;
        Ok(())
    }
}

/// Commits `batch`: afterwards its events are stored and the watermark is at
/// `batch.covered_to`. With `rules`, the intent counts each object's alerts, so completing
/// it (here or in a roll-forward) puts the objects that raise alerts in the outbox once.
pub async fn commit<K: Checkpoints, S: Sink + ?Sized>(
    d: &Durable<'_, K, S>,
    cp: &mut Checkpoint,
    org: &Org,
    batch: Batch,
    overlap: Duration,
    prov: &Provenance,
    rules: Option<&Rules>,
) -> Result<Committed, StoreError> {
    let to = batch.covered_to;
    if batch.is_empty() {
        // Nothing read (a failure on the first window) moves nothing.
        if to > batch.from && cp.watermark.is_none_or(|w| w < to) {
            cp.save_changed(d.store, d.lease, |c| c.advance(to, overlap))
                .await?;
        }
        return Ok(Committed::default());
    }
    let objects = batch.into_objects(org, prov, rules);
    let intent = Intent {
        run_id: prov.run_id.clone(),
        watermark: to,
        objects: objects.iter().map(|o| o.meta.clone()).collect(),
    };
    cp.save_changed(d.store, d.lease, |c| c.pending = Some(intent.clone()))
        .await?;
    let done = put_all(d, objects).await?;
    cp.save_changed(d.store, d.lease, |c| c.complete(&intent, overlap))
        .await?;
    Ok(done)
}

/// Writes the objects, each on a freshly renewed lease (the save before renewed it for the
/// first). A key that exists already holds the same events.
async fn put_all<K: Checkpoints, S: Sink + ?Sized>(
    d: &Durable<'_, K, S>,
    objects: Vec<Object>,
) -> Result<Committed, StoreError> {
    let mut done = Committed::default();
    for (i, o) in objects.into_iter().enumerate() {
        if i > 0 {
            d.store.heartbeat(d.lease).await?;
        }
        match d.sink.put(&o.meta.key, o.body).await? {
            PutOutcome::Created => done.objects_created += 1,
            PutOutcome::AlreadyExisted => done.objects_existing += 1,
        }
        done.events += o.events as u64;
        tracing::debug!(key = %o.meta.key, events = o.events, "object stored");
    }
    Ok(done)
}

/// The objects of an intent, split by whether the sink holds them.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentObjects {
    pub present: Vec<PendingObject>,
    /// Not stored (yet: the run that recorded the intent may still upload them).
    pub missing: Vec<PendingObject>,
}

/// The objects of `intent` that are stored, and those that are not (yet).
pub async fn stored_vs_intent<K: Checkpoints, S: Sink + ?Sized>(
    d: &Durable<'_, K, S>,
    intent: &Intent,
) -> Result<IntentObjects, StoreError> {
    let (mut present, mut missing) = (Vec::new(), Vec::new());
    for o in &intent.objects {
        if d.sink.exists(&o.key).await? {
            present.push(o.clone());
        } else {
            missing.push(o.clone());
        }
    }
    Ok(IntentObjects { present, missing })
}

/// Completes an earlier run's `intent`: writes the `remade` objects (made from a fresh read,
/// under their recorded keys), then records every stored event and the intent's watermark.
/// With nothing missing, `remade` is empty and this only completes it.
pub async fn roll_forward<K: Checkpoints, S: Sink + ?Sized>(
    d: &Durable<'_, K, S>,
    cp: &mut Checkpoint,
    intent: &Intent,
    present: Vec<PendingObject>,
    remade: RemadeObjects,
    overlap: Duration,
) -> Result<(Recovery, Committed), StoreError> {
    let rewritten = remade.objects.len();
    let lost = remade.lost;
    // What is stored now: the objects found, and the events of those written again (not the
    // lost ones: should Docker Hub serve them again, a later read stores them).
    let mut stored = present.clone();
    stored.extend(remade.objects.iter().map(|o| o.meta.clone()));
    let done = put_all(d, remade.objects).await?;
    let completed = Intent {
        objects: stored,
        ..intent.clone()
    };
    cp.save_changed(d.store, d.lease, |c| c.complete(&completed, overlap))
        .await?;
    let outcome = if rewritten == 0 && lost == 0 {
        Recovery::Completed {
            objects: present.len(),
        }
    } else {
        Recovery::RolledForward {
            present: present.len(),
            rewritten,
            lost,
        }
    };
    if lost > 0 {
        tracing::warn!(
            run = %intent.run_id, lost,
            "an interrupted commit held events that Docker Hub no longer serves; they could not be written"
        );
    }
    tracing::info!(run = %intent.run_id, ?outcome, "finished an earlier run's interrupted commit");
    Ok((outcome, done))
}
