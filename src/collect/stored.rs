//! Reading back what the output holds of an org, object by object: the ids and times of
//! the events each object holds (for `verify`, and to rebuild a checkpoint).

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use crate::event::encode;
use crate::event::key::ObjectKey;
use crate::ports::{Sink, StoreError};
use crate::types::{EventId, Org};

/// The events (id, time) of one stored object, in the order of its records.
pub async fn events_of<S: Sink + ?Sized>(
    sink: &S,
    key: &ObjectKey,
) -> Result<Vec<(EventId, DateTime<Utc>)>, StoreError> {
    let bytes = sink.get(key).await?;
    let bad = |what: String| {
        StoreError::Invalid(format!(
            "the stored object {key} cannot be read ({what}): it was damaged or not written by this tool; \
             move it out of the output (its events are then reported missing, and verify --repair writes them again)"
        ))
    };
    let records = encode::decode(&bytes).map_err(|e| bad(e.to_string()))?;
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let id = r.get("event_id").and_then(Value::as_str);
            let ts = r
                .get("timestamp")
                .and_then(Value::as_str)
                .and_then(|t| crate::event::parse_timestamp(t).ok());
            match (id, ts) {
                (Some(id), Some(ts)) => Ok((EventId(id.to_string()), ts)),
                _ => Err(bad(format!(
                    "record {} has no event_id or no RFC 3339 timestamp",
                    i + 1
                ))),
            }
        })
        .collect()
}

/// The latest event time stored for `org`, or `None` when the output holds nothing of it.
/// Reads the newest partition only (an object holds the events of its own date).
pub async fn latest<S: Sink + ?Sized>(sink: &S, org: &Org) -> Result<Option<DateTime<Utc>>, StoreError> {
    let days: Vec<NaiveDate> = sink.days(org).await?;
    for day in days.into_iter().rev() {
        let mut max = None;
        for o in sink.list_day(org, day).await? {
            let newest = events_of(sink, &o.key).await?.into_iter().map(|(_, t)| t).max();
            max = max.max(newest);
        }
        if max.is_some() {
            return Ok(max);
        }
    }
    Ok(None)
}
