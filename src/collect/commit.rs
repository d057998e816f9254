//! The commit protocol: no loss and no duplicates, whatever crashes where.
//!
//! 1. record the intent (object keys and the ids they hold) in the checkpoint;
//! 2. write the objects (a key that exists already holds the same events);
//! 3. advance the watermark and `seen`, clearing the intent.
//!
//! Each checkpoint write is conditional on the version (and, in stores that have one, the
//! lease), so a run that lost its lease cannot move anything. A run that finds an intent
//! left by a crash completes it if every object exists, and otherwise keeps the ids of the
//! objects that do exist (they are stored) and leaves the watermark where it was, so the
//! rest is read again.

use chrono::Duration;

use super::batch::Batch;
use crate::checkpoint::{Checkpoint, Intent};
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

/// What was found of an earlier run's unfinished commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Every object was there: the commit was completed.
    Completed { objects: usize },
    /// Some objects were missing: their events will be read again.
    Discarded { present: usize, missing: usize },
}

/// Commits `batch`: afterwards its events are stored and the watermark is at
/// `batch.covered_to`.
pub async fn commit<K: Checkpoints, S: Sink + ?Sized>(
    d: &Durable<'_, K, S>,
    cp: &mut Checkpoint,
    org: &Org,
    batch: Batch,
    overlap: Duration,
    prov: &Provenance,
) -> Result<Committed, StoreError> {
    let to = batch.covered_to;
    if batch.is_empty() {
        // Nothing read (a failure on the first window) moves nothing.
        if to > batch.from && cp.watermark.is_none_or(|w| w < to) {
            cp.advance(to, overlap);
            d.store.save(d.lease, cp).await?;
        }
        return Ok(Committed::default());
    }
    let objects = batch.into_objects(org, prov);
    let intent = Intent {
        run_id: prov.run_id.clone(),
        watermark: to,
        objects: objects.iter().map(|o| o.meta.clone()).collect(),
    };
    cp.pending = Some(intent.clone());
    d.store.save(d.lease, cp).await?;

    let mut done = Committed::default();
    for (i, o) in objects.into_iter().enumerate() {
        // Each upload starts on a freshly renewed lease (the intent's save renewed it for the
        // first); the sink gives up on an upload well within a lease's life, so an object of
        // a stalled run cannot land after another run took over and read its events again.
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
    cp.complete(&intent, overlap);
    d.store.save(d.lease, cp).await?;
    Ok(done)
}

/// Finishes or discards an intent left by a run that stopped mid-commit.
pub async fn recover<K: Checkpoints, S: Sink + ?Sized>(
    d: &Durable<'_, K, S>,
    cp: &mut Checkpoint,
    overlap: Duration,
) -> Result<Option<Recovery>, StoreError> {
    let Some(intent) = cp.pending.clone() else {
        return Ok(None);
    };
    let mut present = Vec::new();
    for o in &intent.objects {
        if d.sink.exists(&o.key).await? {
            present.push(o.clone());
        }
    }
    let missing = intent.objects.len() - present.len();
    let outcome = if missing == 0 {
        cp.complete(&intent, overlap);
        Recovery::Completed {
            objects: present.len(),
        }
    } else {
        cp.record_stored(&present);
        cp.pending = None;
        Recovery::Discarded {
            present: present.len(),
            missing,
        }
    };
    d.store.save(d.lease, cp).await?;
    tracing::info!(run = %intent.run_id, ?outcome, "finished an earlier run's interrupted commit");
    Ok(Some(outcome))
}
