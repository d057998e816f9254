//! Reading back what the output holds of an org, object by object: the ids and times of
//! the events each object holds (for `verify`, and to rebuild a checkpoint).

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

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
    let bad = |what: String| unreadable(key, what);
    // Line by line, reading only the two fields: memory is one record, however large the
    // object's events are.
    let mut out = Vec::new();
    for (i, line) in encode::lines(&bytes).enumerate() {
        let line = line.map_err(|e| bad(e.to_string()))?;
        let fields = serde_json::from_slice::<IdAndTime<'_>>(&line).ok();
        let ts = fields
            .as_ref()
            .and_then(|f| crate::event::parse_timestamp(&f.timestamp).ok());
        match (fields, ts) {
            (Some(f), Some(ts)) => out.push((EventId(f.event_id.into_owned()), ts)),
            _ => {
                return Err(bad(format!(
                    "record {} has no event_id or no RFC 3339 timestamp",
                    i + 1
                )))
            }
        }
    }
    Ok(out)
}

/// A stored object that cannot be read back: what was wrong, and what to do.
fn unreadable(key: &ObjectKey, what: String) -> StoreError {
    StoreError::Invalid(format!(
        "the stored object {key} cannot be read ({what}): it was damaged or not written by this tool; \
         move it out of the output (its events are then reported missing, and verify --repair writes them again)"
    ))
}

/// Adds the records of the stored object `key` (its `bytes`) to `categories`, by their
/// `category` field (`unknown` without one): for the picture of a trail.
pub fn count_categories(
    key: &ObjectKey,
    bytes: &[u8],
    categories: &mut std::collections::BTreeMap<String, u64>,
) -> Result<(), StoreError> {
    #[derive(Deserialize)]
    struct Category<'a> {
        #[serde(borrow)]
        category: Option<Cow<'a, str>>,
    }
    for line in encode::lines(bytes) {
        let line = line.map_err(|e| unreadable(key, e.to_string()))?;
        let c = serde_json::from_slice::<Category<'_>>(&line)
            .ok()
            .and_then(|c| c.category)
            .unwrap_or(Cow::Borrowed("unknown"));
        *categories.entry(c.into_owned()).or_insert(0) += 1;
    }
    Ok(())
}

/// The two fields of a record that reading it back needs (every other is skipped).
#[derive(Deserialize)]
struct IdAndTime<'a> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
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
