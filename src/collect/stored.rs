//! Reading back what the output holds of an org, object by object: the ids and times of
//! the events each object holds (for `verify`, and to rebuild a checkpoint).

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use crate::event::encode;
use crate::event::key::ObjectKey;
use crate::ports::{Sink, StoreError};
use crate::types::{EventId, Org};

/// A stored object's key, and its events (id, time) in the order of its records.
pub type Stored = (ObjectKey, Vec<(EventId, DateTime<Utc>)>);

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

/// Every object of `org`'s partition of `day`, with its events (id, time).
pub async fn of_day<S: Sink + ?Sized>(
    sink: &S,
    org: &Org,
    day: NaiveDate,
) -> Result<Vec<Stored>, StoreError> {
    let mut out = Vec::new();
    for o in sink.list_day(org, day).await? {
        let events = events_of(sink, &o.key).await?;
        out.push((o.key, events));
    }
    Ok(out)
}
