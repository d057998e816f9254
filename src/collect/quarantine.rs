//! Items Docker Hub served that are not readable events (not an object, no usable
//! timestamp, a non-string action): each is kept verbatim under `_quarantine/org=<org>/`,
//! which query engines skip, with the reason and where it came from. Counted and alarmed,
//! never a reason to stop collecting the rest.
//!
//! A quarantined item is named by its content, so reading it again (overlaps, retries)
//! finds it stored and does not count it twice. The price: identical unreadable items
//! collapse into one, since nothing else tells them apart.

use serde_json::{json, Map, Value};

use crate::event::encode;
use crate::event::key::quarantine_key;
use crate::event::record::Provenance;
use crate::ports::{PutOutcome, Sink, StoreError, Unreadable};
use crate::types::{rfc3339, Org};

/// Stores `items`; returns how many were not stored before.
pub async fn keep<S: Sink + ?Sized>(
    sink: &S,
    org: &Org,
    items: Vec<Unreadable>,
    prov: &Provenance,
) -> Result<u64, StoreError> {
    let mut new = 0;
    for u in items {
        let key = quarantine_key(org, &u.item);
        tracing::warn!(%org, reason = %u.reason, key = %key, "Docker Hub served an item that is not a readable event; quarantined");
        let mut record = Map::new();
        record.insert("org".into(), json!(org.as_str()));
        record.insert("reason".into(), json!(u.reason));
        record.insert("item".into(), u.item);
        record.insert(
            "collector".into(),
            json!({
                "ingested_at": rfc3339(prov.ingested_at),
                "window_from": rfc3339(prov.window.from),
                "window_to": rfc3339(prov.window.to),
                "run_id": prov.run_id.0,
            }),
        );
        if sink.put(&key, encode::encode(&[record])).await? == PutOutcome::Created {
            new += 1;
        }
    }
    Ok(new)
}

/// Reads a quarantined item back: (reason, item).
pub fn read(record: &Map<String, Value>) -> Option<(String, Value)> {
    Some((
        record.get("reason")?.as_str()?.to_string(),
        record.get("item")?.clone(),
    ))
}
