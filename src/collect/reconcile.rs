//! Reconciling the checkpoint with the output it describes, before a run reads anything.
//!
//! An output and its checkpoint belong together: the checkpoint records the output's
//! identity on its first run, and refuses any other ([`claim_output`]).
//!
//! A checkpoint deleted, restored from an older backup, or new (another checkpoint store
//! pointed at the same output) does not remember the ids the output already holds, so a
//! run would store re-read events a second time. Every run therefore first asks the output
//! whether it holds objects this checkpoint does not know (one listing: the objects whose
//! first event is at or after `seen_from`, which the checkpoint names in `recent`:
//! [`behind_output`]), and if so rebuilds what it must remember from the stored objects (the
//! watermark and the ids inside the overlap: [`super::rebuild`]).
//!
//! Why rebuild rather than refuse: the output is the truth the ids are about, the rebuild
//! reads only the newest day or two, and a scheduled collector that refuses stops
//! collecting until someone acts, while Docker Hub's retention runs.

use super::rebuild::rebuild_checkpoint;
use super::Poller;
use crate::checkpoint_model::Checkpoint;
use crate::config::PollConfig;
use crate::event::key::position;
use crate::ports::{AuditLog, Checkpoints, Sink, StoreError};
use crate::types::{floor_second, Org};

/// Records `output` in `cp` (stored by the next save), or refuses when `cp` describes
/// another output.
pub fn claim_output(org: &Org, cp: &mut Checkpoint, output: String) -> Result<(), StoreError> {
    match cp.output.as_deref() {
        Some(recorded) if recorded != output => Err(StoreError::Invalid(format!(
            "the checkpoint of {org} describes the output {recorded}, but this run writes to {output}: \
             an output and its checkpoint belong together (the checkpoint remembers what that output \
             holds). Give the checkpoint store that goes with this output, or a new one for a new output"
        ))),
        _ => {
            cp.output = Some(output);
            Ok(())
        }
    }
}

/// Compares `cp` with what the output holds of its org: why it is behind the output, or
/// `None` when it describes it.
pub async fn behind_output<S: Sink + ?Sized>(
    sink: &S,
    cp: &Checkpoint,
) -> Result<Option<String>, StoreError> {
    let org = &cp.org;
    let Some(w) = cp.watermark else {
        let any = sink.list_after(org, &format!("org={org}/"), 1).await?;
        return Ok(any.first().map(|o| {
            format!(
                "there is no checkpoint of {org}, but the output already holds its objects ({} among them)",
                o.key
            )
        }));
    };
    let Some(recent) = &cp.recent else {
        // Written by a version that did not name its objects: what it remembers cannot be
        // checked against the output, so it is rebuilt once (reading a day or two).
        return Ok(Some(format!(
            "the checkpoint of {org} was written by an older version, which did not record its objects"
        )));
    };
    let from = floor_second(cp.seen_from.unwrap_or(w).min(w));
    // One more than it knows: a full listing then holds at least one unknown object.
    let known = recent.len() + cp.pending.as_ref().map_or(0, |p| p.objects.len());
    let listed = sink.list_after(org, &position(org, from), known + 1).await?;
    Ok(listed.iter().find(|o| !cp.knows(&o.key)).map(|o| {
        format!(
            "the output holds {}, which the checkpoint of {org} does not know (a checkpoint restored from an \
             older backup, or another checkpoint store writing to this output)",
            o.key
        )
    }))
}

impl<A, K, S> Poller<'_, A, K, S>
where
    A: AuditLog + ?Sized,
    K: Checkpoints,
    S: Sink + ?Sized,
{
    /// Makes sure `cp` knows what the output holds of its org: a checkpoint behind the
    /// output is rebuilt from the stored objects and saved. Says what it rebuilt, if it did.
    pub(super) async fn reconcile(
        &self,
        cfg: &PollConfig,
        lease: &K::Lease,
        cp: &mut Checkpoint,
    ) -> Result<Option<String>, StoreError> {
        let org = &cfg.org;
        let Some(why) = behind_output(self.sink, cp).await? else {
            return Ok(None);
        };
        tracing::warn!(%org, %why, "the checkpoint does not know what the output holds; rebuilding it from the stored objects");
        let mut next = cp.clone();
        let Some(done) = rebuild_checkpoint(self.sink, &mut next, cfg.overlap).await? else {
            // Nothing stored after all (the objects went meanwhile): nothing to remember.
            next.recent.get_or_insert_with(Default::default);
            cp.save_changed(self.checkpoints, lease, |c| *c = next).await?;
            return Ok(None);
        };
        cp.save_changed(self.checkpoints, lease, |c| *c = next).await?;
        tracing::warn!(%org, "{done}");
        Ok(Some(format!("{why}; {done}")))
    }
}
