//! Delivering alerts from the checkpoint's outbox.
//!
//! When alerts are raised is fixed by the commit protocol: a commit's intent counts the
//! alerts of each object it writes, and completing the intent (by this run, or by a later
//! one rolling it forward) moves those objects into `Checkpoint::alerts_pending` in the same
//! conditional save that advances the watermark. So an event raises alerts only in the
//! commit that stores it first: never for a duplicate dropped by the dedupe, an event read
//! again in the overlap, or an object written again after a crash.
//!
//! Delivery reads each queued object back from the sink, matches its records against the
//! rules and sends the alerts; an object leaves the outbox in a save after its alerts were
//! sent. A crash between the two sends them again (at least once; `alert_id` is stable).
//! A failed delivery never fails the run: the objects stay queued for the next run.

use serde_json::Value;

use super::commit::Durable;
use crate::alert::{self, Rules};
use crate::checkpoint::Checkpoint;
use crate::event::encode;
use crate::ports::{AlertSink, Checkpoints, Sink, StoreError};
use crate::types::Org;

/// The most objects the outbox keeps while delivery fails: beyond it the oldest are let go
/// (logged at error level with their keys), so a long outage cannot grow the checkpoint
/// without bound.
pub const MAX_PENDING: usize = 5_000;

/// Alert rules and where their alerts go.
#[derive(Clone, Copy)]
pub struct Alerting<'a> {
    pub rules: &'a Rules,
    pub out: &'a dyn AlertSink,
}

/// What one delivery did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub sent: u64,
    /// Alerts still queued because delivery failed (or dropped past [`MAX_PENDING`]).
    pub failed: u64,
}

/// Sends the alerts of every object in `cp`'s outbox, removing each object once its alerts
/// are sent. Stops at the first failure, leaving the rest queued.
pub async fn deliver<K: Checkpoints, S: Sink + ?Sized>(
    d: &Durable<'_, K, S>,
    cp: &mut Checkpoint,
    org: &Org,
    alerting: Alerting<'_>,
) -> Result<Delivered, StoreError> {
    let mut done = Delivered::default();
    let mut delivered = Vec::new();
    let mut failed = false;
    for (i, pending) in cp.alerts_pending.clone().into_iter().enumerate() {
        // A long outbox takes a while to send: the lease is renewed as the commit's puts do.
        if i > 0 {
            d.store.heartbeat(d.lease).await?;
        }
        let records = match d.sink.get(&pending.key).await {
            Ok(bytes) => encode::decode(&bytes).map_err(|e| e.to_string()),
            Err(StoreError::Io(e)) => {
                tracing::warn!(%org, key = %pending.key, error = %e,
                    "could not read a stored object to send its alerts; they are sent on the next run");
                failed = true;
                break;
            }
            Err(e) => Err(e.to_string()),
        };
        let records = match records {
            Ok(r) => r,
            Err(e) => {
                // Gone or unreadable: no retry can help, and it must not block the others.
                tracing::error!(%org, key = %pending.key, alerts = pending.alerts, error = %e,
                    "a stored object whose records raised alerts cannot be read; its alerts are not sent. \
                     Check the object (run `verify`), and the records in the output for what the rules match");
                done.failed += u64::from(pending.alerts);
                delivered.push(pending.key);
                continue;
            }
        };
        let alerts = alert::raise(alerting.rules, org.as_str(), &pending.key.0, records);
        if let Err(e) = alerting.out.send(&alerts).await {
            tracing::warn!(%org, key = %pending.key, alerts = alerts.len(), error = %e,
                "could not deliver alerts; they stay queued in the checkpoint and are sent on the next run");
            failed = true;
            break;
        }
        for a in &alerts {
            let action = a.record.get("action").and_then(Value::as_str).unwrap_or_default();
            tracing::info!(%org, alert_id = %a.alert_id, rule = %a.rule.id, severity = a.severity.as_str(),
                event_id = %a.event_id, action, "alert raised");
        }
        done.sent += alerts.len() as u64;
        delivered.push(pending.key);
    }
    let full = cp.alerts_pending.len().saturating_sub(delivered.len()) > MAX_PENDING;
    if !delivered.is_empty() || full {
        let mut dropped = 0;
        cp.save_changed(d.store, d.lease, |c| {
            c.alerts_pending.retain(|p| !delivered.contains(&p.key));
            let over = c.alerts_pending.len().saturating_sub(MAX_PENDING);
            for p in c.alerts_pending.drain(..over) {
                tracing::error!(%org, key = %p.key, alerts = p.alerts,
                    "alerts undelivered for too long are let go (the outbox is full); the records are in the output");
                dropped += u64::from(p.alerts);
            }
        })
        .await?;
        done.failed += dropped;
    }
    if failed {
        done.failed += cp.alerts_pending.iter().map(|p| u64::from(p.alerts)).sum::<u64>();
    }
    Ok(done)
}
