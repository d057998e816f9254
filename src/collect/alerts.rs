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
//! A failed delivery never fails the run: the objects stay queued for the next run. The
//! outbox is bounded ([`crate::checkpoint_model::MAX_ALERTS_PENDING`]).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::commit::Durable;
use super::{CollectError, LeasedRun, Poller, RunReport};
use crate::alert::{self, Rules};
use crate::checkpoint_model::Checkpoint;
use crate::clock::Clock;
use crate::event::encode;
use crate::event::key::ObjectKey;
use crate::ports::{AlertSink, AuditLog, Checkpoints, Sink, StoreError};
use crate::types::Org;

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
    /// Alerts not delivered: still queued after a failed send, or let go (an object gone
    /// from the output).
    pub failed: u64,
    /// The destination refused (or could not be reached): no more tries in this run.
    pub destination_failed: bool,
}

/// Sends the alerts of `cp`'s outbox, oldest object first, each object leaving the outbox
/// in a save once its alerts are sent (so progress survives a crash or a timeout, and the
/// saves renew the lease). Stops at `deadline` (on `clock`), leaving the rest for the next
/// run, and at a failed send, which moves that object to the back of the outbox: one
/// object the destination keeps refusing cannot hold up the others.
pub async fn deliver<K: Checkpoints, S: Sink + ?Sized>(
    d: &Durable<'_, K, S>,
    cp: &mut Checkpoint,
    org: &Org,
    alerting: Alerting<'_>,
    deadline: Option<DateTime<Utc>>,
    clock: &dyn Clock,
) -> Result<Delivered, StoreError> {
    let mut done = Delivered::default();
    // Each object is tried once per delivery.
    for _ in 0..cp.alerts_pending.len() {
        let Some(pending) = cp.alerts_pending.first().cloned() else {
            break;
        };
        if deadline.is_some_and(|dl| clock.now() >= dl) {
            break;
        }
        let key = pending.key.clone();
        let records = match d.sink.get(&key).await {
            Ok(bytes) => encode::decode(&bytes).map_err(|e| format!("it is not readable gzip NDJSON ({e})")),
            Err(e) => match d.sink.exists(&key).await {
                Ok(false) => Err(format!("it is gone from the output ({e})")),
                _ => {
                    tracing::warn!(%org, %key, error = %e,
                        "could not read a stored object to send its alerts; they are sent on a later run");
                    cp.save_changed(d.store, d.lease, |c| to_back(c, &key)).await?;
                    done.destination_failed = true;
                    break;
                }
            },
        };
        let records = match records {
            Ok(r) => r,
            Err(why) => {
                // No retry can help, and it must not hold up the others.
                tracing::error!(%org, %key, alerts = pending.alerts, %why,
                    "a stored object whose records raised alerts cannot be read: its alerts are not sent. \
                     Run `verify` over its day (its events are then reported, and --repair writes them again)");
                cp.save_changed(d.store, d.lease, |c| c.alerts_pending.retain(|p| p.key != key))
                    .await?;
                done.failed += u64::from(pending.alerts);
                continue;
            }
        };
        let alerts = alert::raise(alerting.rules, org.as_str(), &key.0, records);
        // Reading the object took a while: renew the lease before the send.
        d.store.heartbeat(d.lease).await?;
        if let Err(e) = alerting.out.send(&alerts).await {
            tracing::warn!(%org, %key, alerts = alerts.len(), error = %e,
                "could not deliver alerts; they stay queued in the checkpoint and are sent on a later run");
            cp.save_changed(d.store, d.lease, |c| to_back(c, &key)).await?;
            done.destination_failed = true;
            break;
        }
        for a in &alerts {
            let action = a.record.get("action").and_then(Value::as_str).unwrap_or_default();
            tracing::info!(%org, alert_id = %a.alert_id, rule = %a.rule.id, severity = a.severity.as_str(),
                event_id = %a.event_id, action, "alert raised");
        }
        done.sent += alerts.len() as u64;
        cp.save_changed(d.store, d.lease, |c| c.alerts_pending.retain(|p| p.key != key))
            .await?;
    }
    if done.destination_failed {
        done.failed += cp.alerts_pending.iter().map(|p| u64::from(p.alerts)).sum::<u64>();
    }
    Ok(done)
}

impl<A, K, S> Poller<'_, A, K, S>
where
    A: AuditLog + ?Sized,
    K: Checkpoints,
    S: Sink + ?Sized,
{
    /// Sends the outbox's alerts until the run's deadline, unless the destination already
    /// failed in this run (then the count of those waiting is brought up to date: a later
    /// run sends them).
    pub(super) async fn deliver_alerts(
        &self,
        run: &LeasedRun<'_, K>,
        cp: &mut Checkpoint,
        report: &mut RunReport,
    ) -> Result<(), CollectError> {
        let Some(alerting) = self.alerts else {
            return Ok(());
        };
        if report.alerts_down {
            let waiting: u64 = cp.alerts_pending.iter().map(|p| u64::from(p.alerts)).sum();
            report.alerts_failed = report.alerts_failed.max(waiting);
            return Ok(());
        }
        if cp.alerts_pending.is_empty() {
            return Ok(());
        }
        let durable = self.durable(run.keeper.lease());
        let done = deliver(&durable, cp, &run.cfg.org, alerting, run.deadline, self.clock).await?;
        report.alerts_raised += done.sent;
        report.alerts_failed += done.failed;
        report.alerts_down |= done.destination_failed;
        Ok(())
    }
}

/// Moves the outbox entry of `key` to the back.
fn to_back(c: &mut Checkpoint, key: &ObjectKey) {
    if let Some(i) = c.alerts_pending.iter().position(|p| &p.key == key) {
        let p = c.alerts_pending.remove(i);
        c.alerts_pending.push(p);
    }
}
