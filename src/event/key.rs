//! Object keys: `org=<org>/dt=<YYYY-MM-DD>/<first event time>-<hash>.json.gz`.
//!
//! The date is the events' own UTC date; the name is derived from the ids of the events
//! the object holds, never from the clock, so a retried write of the same events lands on
//! the same key (and `If-None-Match` / no-clobber make it a no-op).

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::types::{EventId, Org};

/// A key relative to the sink's root (bucket prefix or output folder).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectKey(pub String);

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The partition folder of an org and date.
pub fn partition(org: &Org, date: NaiveDate) -> String {
    format!("org={}/dt={}", org, date.format("%Y-%m-%d"))
}

/// Where items that are not readable events go: outside every `org=/dt=` partition (query
/// engines skip keys that start with `_`), named by the item's content, so the same item
/// read again lands on the same key.
pub fn quarantine_key(org: &Org, item: &serde_json::Value) -> ObjectKey {
    let hash = hex::encode(&Sha256::digest(item.to_string().as_bytes())[..10]);
    ObjectKey(format!("{QUARANTINE}/org={org}/{hash}.json.gz"))
}

/// The top folder of the quarantine.
pub const QUARANTINE: &str = "_quarantine";

/// Where in key order the objects of `org` whose first event is at or after `t` (a whole
/// second) begin: their keys sort after this string, the keys of earlier ones before it.
pub fn position(org: &Org, t: DateTime<Utc>) -> String {
    format!(
        "{}/{}",
        partition(org, t.date_naive()),
        t.format("%Y%m%dT%H%M%SZ")
    )
}

/// The key of an object holding `ids` (any order), whose earliest event is at `first`.
pub fn object_key(org: &Org, date: NaiveDate, first: DateTime<Utc>, ids: &[EventId]) -> ObjectKey {
    let mut sorted: Vec<&str> = ids.iter().map(|i| i.0.as_str()).collect();
    sorted.sort_unstable();
    let mut h = Sha256::new();
    for id in sorted {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    let hash = hex::encode(&h.finalize()[..10]);
    ObjectKey(format!(
        "{}/{}-{}.json.gz",
        partition(org, date),
        first.format("%Y%m%dT%H%M%SZ"),
        hash
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layout_and_order_independence() {
        let org = Org::new("acme").unwrap();
        let t = DateTime::parse_from_rfc3339("2026-11-25T23:59:59Z")
            .unwrap()
            .with_timezone(&Utc);
        let ids = vec![EventId("b".into()), EventId("a".into())];
        let rev = vec![EventId("a".into()), EventId("b".into())];
        let k = object_key(&org, t.date_naive(), t, &ids);
        assert_eq!(k, object_key(&org, t.date_naive(), t, &rev));
        assert!(k.0.starts_with("org=acme/dt=2026-11-25/20261125T235959Z-"), "{k}");
        assert!(k.0.ends_with(".json.gz"));
        assert_ne!(k, object_key(&org, t.date_naive(), t, &ids[..1]));
    }
}
