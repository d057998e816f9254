//! Checkpoints in DynamoDB: one item per org (partition key `org`), with a lease.
//!
//! Item: `org`, `version` (N), `lease_owner` (S), `lease_until` (N, unix ms), `watermark`
//! (S, for people and alarms), and the checkpoint itself as gzip JSON in `body` (B).
//!
//! DynamoDB items are limited to 400 KB, and the ids remembered inside the overlap grow
//! with bursts. So a body over [`INLINE_MAX`] is split into chunk items `<org>#chunk#<i>`
//! (an org name cannot contain `#`), written in **one transaction** with the main item, so
//! a reader never sees parts of two versions. A transaction carries at most 4 MB, which
//! bounds the checkpoint at about 2.8 MB of gzip (some 100,000 ids inside one overlap);
//! beyond that the save fails loudly and the README says to shorten `--overlap`.
//!
//! Every write is conditional on the version and on `lease_owner` being this run, so a
//! run whose lease was taken over can never move anything.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, KeysAndAttributes, Put, ReturnValue, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use flate2::{read::GzDecoder, write::GzEncoder, Compression};

use std::sync::Arc;

use crate::aws::error_text;
use crate::checkpoint_model::{Checkpoint, WatchMemory};
use crate::clock::{Clock, SystemClock};
use crate::ports::{CheckpointIndex, Checkpoints, LeaseHold, OrgState, StoreError};
use crate::types::{rfc3339, Org, RunId};

/// Bodies up to this size stay in the main item. Below 400 KB even when a store counts
/// binary attributes by their base64 form (moto does; DynamoDB counts raw bytes).
pub const INLINE_MAX: usize = 280_000;
/// Size of one chunk item's body.
pub const CHUNK: usize = 280_000;
/// At most this many chunks (with the main item, under the 4 MB transaction limit).
pub const MAX_CHUNKS: usize = 10;

/// What to do about a checkpoint that cannot be read.
const RECOVER: &str =
    "delete its item (and any `<org>#chunk#<i>` items): the next run rebuilds the checkpoint from the \
     stored objects and stores nothing twice (a point-in-time restore of the table works too)";

#[derive(Clone)]
pub struct DynamoCheckpoints {
    client: Client,
    table: String,
    lease_ttl: Duration,
    /// Lease times come from this clock; runs on different machines may disagree by minutes,
    /// which costs at most an early takeover, never a duplicate (see `collect::commit`).
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DynamoCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoCheckpoints")
            .field("table", &self.table)
            .field("lease_ttl", &self.lease_ttl)
            .finish()
    }
}

/// This run's hold on an org. The lease expires by itself `lease_ttl` after the last
/// acquire, heartbeat or save.
#[derive(Debug)]
pub struct DynamoLease {
    org: Org,
    owner: RunId,
    /// How many chunk items the stored version has, so a save can delete the extra ones.
    chunks: AtomicU32,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn chunk_key(org: &Org, i: usize) -> String {
    format!("{org}#chunk#{i}")
}

impl DynamoCheckpoints {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoCheckpoints {
            client,
            table: table.into(),
            lease_ttl: Duration::from_secs(60),
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads lease times from `clock` instead of the system's.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How long a lease lasts without a heartbeat (default one minute).
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    fn until(&self) -> AttributeValue {
        n(self.clock.now().timestamp_millis() + self.lease_ttl.as_millis() as i64)
    }

    fn io<E: std::error::Error + 'static>(&self, what: &str, e: &E) -> StoreError {
        StoreError::Io(format!(
            "DynamoDB {what} on table {:?} failed ({}); check the table name, the region and the \
             dynamodb:GetItem, PutItem, UpdateItem, DeleteItem and BatchGetItem permissions (transactions need \
             those of the writes they contain)",
            self.table,
            error_text(e)
        ))
    }

    fn taken_over(&self, org: &Org) -> StoreError {
        StoreError::Conflict(format!(
            "the checkpoint of {org} in table {:?} was changed by another run (its lease expired and was taken over); \
             this run stops without writing more",
            self.table
        ))
    }

    /// Applies `expression` to the lease attributes if this run still owns the lease;
    /// `Ok(false)` when it does not.
    async fn update_own_lease(&self, lease: &DynamoLease, expression: &str) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("org", s(lease.org.as_str()))
            .update_expression(expression)
            .condition_expression("lease_owner = :me")
            .expression_attribute_values(":me", s(lease.owner.0.clone()));
        if expression.contains(":until") {
            req = req.expression_attribute_values(":until", self.until());
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.io("UpdateItem (lease)", &e)),
        }
    }

    /// Whether the stored item is the very write `write_id`: one that was applied but whose
    /// answer was lost, so the SDK's retry failed its own condition. Such a save succeeded;
    /// it is not a takeover.
    async fn is_ours(&self, lease: &DynamoLease, write_id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("org", s(lease.org.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.io("GetItem", &e))?;
        let stored = out
            .item
            .as_ref()
            .and_then(|i| i.get("write_id"))
            .and_then(|v| v.as_s().ok());
        Ok(stored.is_some_and(|w| w == write_id))
    }

    /// Reads and decodes the checkpoint of an item already fetched.
    async fn decode(
        &self,
        org: &Org,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let Some(version) = item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
        else {
            return Ok(None);
        };
        let chunks = item
            .get("chunks")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        if chunks > MAX_CHUNKS {
            return Err(StoreError::Invalid(format!(
                "the checkpoint item of {org} claims {chunks} chunks (at most {MAX_CHUNKS}); it is corrupted: {RECOVER}"
            )));
        }
        let gz = if chunks == 0 {
            item.get("body")
                .and_then(|v| v.as_b().ok())
                .map(|b| b.as_ref().to_vec())
                .ok_or_else(|| {
                    StoreError::Invalid(format!(
                        "the checkpoint item of {org} has no body; it is corrupted: {RECOVER}"
                    ))
                })?
        } else {
            self.read_chunks(org, chunks, version).await?
        };
        let mut json = Vec::new();
        GzDecoder::new(&gz[..]).read_to_end(&mut json).map_err(|e| {
            StoreError::Invalid(format!(
                "the checkpoint of {org} in table {:?} is not valid gzip ({e}); {RECOVER}",
                self.table
            ))
        })?;
        let mut cp: Checkpoint = serde_json::from_slice(&json).map_err(|e| {
            StoreError::Invalid(format!(
                "the checkpoint of {org} in table {:?} is not valid ({e}); {RECOVER}",
                self.table
            ))
        })?;
        cp.version = version;
        Ok(Some(cp))
    }

    async fn read_chunks(&self, org: &Org, count: usize, version: u64) -> Result<Vec<u8>, StoreError> {
        let mut keys = KeysAndAttributes::builder().consistent_read(true);
        for i in 0..count {
            keys = keys.keys(HashMap::from([("org".to_string(), s(chunk_key(org, i)))]));
        }
        let keys = keys.build().map_err(|e| self.io("BatchGetItem", &e))?;
        let mut parts: HashMap<String, Vec<u8>> = HashMap::new();
        let mut request = HashMap::from([(self.table.clone(), keys)]);
        // Unprocessed keys are DynamoDB's throttling of a batch read: asked again after a
        // growing pause, and, if they stay, a transient failure (never corruption).
        let mut unprocessed = 0;
        for attempt in 0..10u32 {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20 << attempt.min(5))).await;
            }
            let out = self
                .client
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .map_err(|e| self.io("BatchGetItem", &e))?;
            for item in out
                .responses()
                .and_then(|r| r.get(&self.table))
                .into_iter()
                .flatten()
            {
                let key = item
                    .get("org")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                let v = item
                    .get("version")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                if v != Some(version) {
                    return Err(StoreError::Conflict(format!(
                        "chunk {key} of {org} belongs to another version"
                    )));
                }
                if let Some(b) = item.get("body").and_then(|v| v.as_b().ok()) {
                    parts.insert(key, b.as_ref().to_vec());
                }
            }
            match out.unprocessed_keys().filter(|u| !u.is_empty()) {
                Some(rest) => {
                    unprocessed = rest.get(&self.table).map_or(0, |k| k.keys().len());
                    request = rest.clone();
                }
                None => {
                    unprocessed = 0;
                    break;
                }
            }
        }
        if unprocessed > 0 {
            return Err(StoreError::Io(format!(
                "DynamoDB left {unprocessed} part(s) of the checkpoint of {org} unread after 10 tries (it is \
                 throttling the table); nothing was changed, and the next run reads it again. If this persists, \
                 check the table's capacity or throttling metrics"
            )));
        }
        let mut body = Vec::new();
        for i in 0..count {
            let part = parts.remove(&chunk_key(org, i)).ok_or_else(|| {
                StoreError::Invalid(format!(
                    "chunk {i} of the checkpoint of {org} is missing; {RECOVER}"
                ))
            })?;
            body.extend(part);
        }
        Ok(body)
    }
}

/// Whether a save keeps the lease or gives it up (a run's last save).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    Keep,
    Release,
}

/// The condition of a save: the version read (none for a first save) and this run's lease.
struct Guard {
    expression: &'static str,
    values: HashMap<String, AttributeValue>,
}

impl Guard {
    fn for_save(lease: &DynamoLease, version: u64) -> Self {
        let expression = if version == 0 {
            "attribute_not_exists(version) AND lease_owner = :me"
        } else {
            "version = :v AND lease_owner = :me"
        };
        let mut values = HashMap::from([(":me".to_string(), s(lease.owner.0.clone()))]);
        if version != 0 {
            values.insert(":v".into(), n(version));
        }
        Guard { expression, values }
    }
}

/// The chunk items of a save: the gzip body they split, the version they belong to, and how
/// many the new and the stored versions have (the stored one's extra chunks are deleted).
struct Chunks<'b> {
    body: &'b [u8],
    version: u64,
    new: usize,
    old: usize,
}

/// Whether a conditional write was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    Applied,
    /// Its condition failed: another run's write, or this one's applied but unanswered
    /// (then the SDK's retry fails the condition).
    ConditionFailed,
}

impl DynamoCheckpoints {
    /// The main item of a save of `next`, lease included (the whole item is replaced, so its
    /// size is the new item's alone); without its body, which goes in it or in chunks.
    fn main_item(
        &self,
        lease: &DynamoLease,
        next: &Checkpoint,
        write_id: &str,
        chunks: usize,
        hold: Hold,
    ) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::from([
            ("org".to_string(), s(lease.org.as_str())),
            ("version".to_string(), n(next.version)),
            ("write_id".to_string(), s(write_id)),
            ("chunks".to_string(), n(chunks)),
            (
                "watermark".to_string(),
                s(next.watermark.map(rfc3339).unwrap_or_default()),
            ),
        ]);
        // The whole item is replaced: without these, the write gives the lease up.
        if hold == Hold::Keep {
            item.insert("lease_owner".to_string(), s(lease.owner.0.clone()));
            item.insert("lease_until".to_string(), self.until());
        }
        // Beside the body, small, for the watchdog's one Scan of every org.
        if let Some(json) = next.last_run.as_ref().and_then(|r| serde_json::to_string(r).ok()) {
            item.insert("last_run".to_string(), s(json));
        }
        item
    }

    /// Saves `cp` under `lease`, keeping the lease or giving it up in the same write.
    async fn write(&self, lease: &DynamoLease, cp: &mut Checkpoint, hold: Hold) -> Result<(), StoreError> {
        let org = &lease.org;
        let mut next = cp.clone();
        next.version += 1;
        let json = serde_json::to_vec(&next).map_err(|e| StoreError::Io(e.to_string()))?;
        let body = gzip(&json);
        let old_chunks = lease.chunks.load(Ordering::SeqCst) as usize;
        let new_chunks = if body.len() <= INLINE_MAX {
            0
        } else {
            body.len().div_ceil(CHUNK)
        };
        if new_chunks > MAX_CHUNKS {
            return Err(StoreError::Invalid(format!(
                "the checkpoint of {org} would be {} KB, more than DynamoDB can hold in one transaction: too many \
                 events inside one --overlap window ({} ids); shorten --overlap",
                body.len() / 1000,
                next.seen.len()
            )));
        }
        let guard = Guard::for_save(lease, cp.version);
        // Names this very write, so a write that was applied but unanswered can be told
        // from another one when the SDK's retry fails its condition.
        let write_id = RunId::generate(self.clock.now()).0;
        let mut item = self.main_item(lease, &next, &write_id, new_chunks, hold);
        if new_chunks == 0 {
            item.insert("body".into(), AttributeValue::B(Blob::new(body.clone())));
        }
        let written = if new_chunks == 0 && old_chunks == 0 {
            self.put_inline(item, guard).await?
        } else {
            let chunks = Chunks {
                body: &body,
                version: next.version,
                new: new_chunks,
                old: old_chunks,
            };
            self.put_chunked(org, item, guard, chunks).await?
        };
        if written == Written::ConditionFailed && !self.is_ours(lease, &write_id).await? {
            return Err(self.taken_over(org));
        }
        lease.chunks.store(new_chunks as u32, Ordering::SeqCst);
        cp.version = next.version;
        Ok(())
    }

    /// Writes a checkpoint held in its main item alone, replacing one that was too.
    async fn put_inline(
        &self,
        item: HashMap<String, AttributeValue>,
        guard: Guard,
    ) -> Result<Written, StoreError> {
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(guard.expression)
            .set_expression_attribute_values(Some(guard.values))
            .send()
            .await;
        match r {
            Ok(_) => Ok(Written::Applied),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(Written::ConditionFailed)
            }
            Err(e) => Err(self.io("PutItem", &e)),
        }
    }

    /// Writes the main item and the chunk items in one transaction, deleting the chunks the
    /// stored version had beyond the new one's, so a reader never sees parts of two versions.
    async fn put_chunked(
        &self,
        org: &Org,
        item: HashMap<String, AttributeValue>,
        guard: Guard,
        chunks: Chunks<'_>,
    ) -> Result<Written, StoreError> {
        let main = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(guard.expression)
            .set_expression_attribute_values(Some(guard.values))
            .build()
            .map_err(|e| self.io("TransactWriteItems", &e))?;
        let mut items = vec![TransactWriteItem::builder().put(main).build()];
        for (i, part) in chunks.body.chunks(CHUNK).enumerate().take(chunks.new) {
            let put = Put::builder()
                .table_name(&self.table)
                .item("org", s(chunk_key(org, i)))
                .item("version", n(chunks.version))
                .item("body", AttributeValue::B(Blob::new(part.to_vec())))
                .build()
                .map_err(|e| self.io("TransactWriteItems", &e))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        for i in chunks.new..chunks.old {
            let del = Delete::builder()
                .table_name(&self.table)
                .key("org", s(chunk_key(org, i)))
                .build()
                .map_err(|e| self.io("TransactWriteItems", &e))?;
            items.push(TransactWriteItem::builder().delete(del).build());
        }
        let r = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match r {
            Ok(_) => Ok(Written::Applied),
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_transaction_canceled_exception()
                        && format!("{s:?}").contains("ConditionalCheckFailed")
                }) =>
            {
                Ok(Written::ConditionFailed)
            }
            Err(e) => Err(self.io("TransactWriteItems", &e)),
        }
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(bytes).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

#[async_trait]
impl Checkpoints for DynamoCheckpoints {
    type Lease = DynamoLease;

    async fn acquire(
        &self,
        org: &Org,
        owner: &RunId,
    ) -> Result<Option<(DynamoLease, Checkpoint)>, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("org", s(org.as_str()))
            .update_expression("SET lease_owner = :me, lease_until = :until")
            .condition_expression(
                "attribute_not_exists(lease_until) OR lease_until < :now OR lease_owner = :me",
            )
            .expression_attribute_values(":me", s(owner.0.clone()))
            .expression_attribute_values(":until", self.until())
            .expression_attribute_values(":now", n(self.clock.now().timestamp_millis()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let item = match out {
            Ok(o) => o.attributes.unwrap_or_default(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(self.io("UpdateItem (lease)", &e)),
        };
        let chunks = item
            .get("chunks")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let lease = DynamoLease {
            org: org.clone(),
            owner: owner.clone(),
            chunks: AtomicU32::new(chunks),
        };
        match self.decode(org, &item).await {
            Ok(cp) => Ok(Some((lease, cp.unwrap_or_else(|| Checkpoint::new(org.clone()))))),
            Err(e) => {
                // Unreadable: give the lease back rather than hold the org for a minute.
                let _ = self
                    .update_own_lease(&lease, "REMOVE lease_owner, lease_until")
                    .await;
                Err(e)
            }
        }
    }

    async fn save(&self, lease: &DynamoLease, cp: &mut Checkpoint) -> Result<(), StoreError> {
        self.write(lease, cp, Hold::Keep).await
    }

    async fn save_and_release(&self, lease: DynamoLease, cp: &mut Checkpoint) -> Result<(), StoreError> {
        let saved = self.write(&lease, cp, Hold::Release).await;
        if saved.is_err() {
            // Not written: the lease is still ours (or already taken over).
            let _ = self.release(lease).await;
        }
        saved
    }

    fn heartbeat_every(&self) -> Option<Duration> {
        Some(self.lease_ttl / 3)
    }

    async fn heartbeat(&self, lease: &DynamoLease) -> Result<(), StoreError> {
        if self.update_own_lease(lease, "SET lease_until = :until").await? {
            Ok(())
        } else {
            Err(self.taken_over(&lease.org))
        }
    }

    async fn release(&self, lease: DynamoLease) -> Result<(), StoreError> {
        // Not ours any more (taken over): nothing to give up.
        self.update_own_lease(&lease, "REMOVE lease_owner, lease_until")
            .await
            .map(|_| ())
    }

    async fn peek(&self, org: &Org) -> Result<Option<Checkpoint>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("org", s(org.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.io("GetItem", &e))?;
        match out.item {
            None => Ok(None),
            Some(item) => self.decode(org, &item).await,
        }
    }
}

/// The watchdog's memory: an item beside the orgs' (`#` is in no org's name).
const WATCH_KEY: &str = "#watch";

/// The attributes the watchdog reads of every org (never the body: a Scan of them stays
/// small however large the checkpoints grow), each through a placeholder, so that no
/// attribute name can collide with one of DynamoDB's reserved words.
const LISTED: [&str; 5] = ["org", "watermark", "lease_owner", "lease_until", "last_run"];

/// One org's listing from its item's small attributes.
fn org_state(item: &HashMap<String, AttributeValue>) -> Option<OrgState> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).filter(|v| !v.is_empty());
    let org = Org::new(text("org")?.as_str()).ok()?;
    let watermark = text("watermark")
        .and_then(|w| chrono::DateTime::parse_from_rfc3339(w).ok())
        .map(|w| w.with_timezone(&chrono::Utc));
    let last_run = text("last_run").and_then(|j| serde_json::from_str(j).ok());
    let until = item
        .get("lease_until")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(chrono::DateTime::from_timestamp_millis);
    let lease = match (text("lease_owner"), until) {
        (Some(owner), Some(until)) => Some(LeaseHold {
            owner: owner.clone(),
            until,
        }),
        _ => None,
    };
    Some(OrgState {
        org,
        watermark,
        last_run,
        lease,
    })
}

#[async_trait]
impl CheckpointIndex for DynamoCheckpoints {
    async fn list(&self) -> Result<Vec<OrgState>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let mut scan = self.client.scan().table_name(&self.table).projection_expression(
                (0..LISTED.len())
                    .map(|i| format!("#a{i}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            for (i, name) in LISTED.iter().enumerate() {
                scan = scan.expression_attribute_names(format!("#a{i}"), *name);
            }
            let page = scan
                // Eventually consistent: half the read units; a watch a second behind a save
                // sees the next one five minutes later.
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.io("Scan", &e))?;
            // Chunk items (`<org>#chunk#<i>`) and the watchdog's own are not orgs.
            out.extend(page.items().iter().filter_map(org_state));
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.org.cmp(&b.org));
        Ok(out)
    }

    async fn memory(&self) -> Result<WatchMemory, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("org", s(WATCH_KEY))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.io("GetItem", &e))?;
        let Some(item) = out.item else {
            return Ok(WatchMemory::default());
        };
        let version = item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body = item
            .get("body")
            .and_then(|v| v.as_s().ok())
            .map_or("{}", |b| b.as_str());
        let memory: WatchMemory = serde_json::from_str(body).map_err(|e| {
            StoreError::Invalid(format!(
                "the watchdog's item {WATCH_KEY:?} in table {:?} is not valid ({e}); delete it: the watchdog starts afresh",
                self.table
            ))
        })?;
        Ok(WatchMemory { version, ..memory })
    }

    async fn remember(&self, memory: &mut WatchMemory) -> Result<(), StoreError> {
        let body = serde_json::to_string(&*memory).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let next = memory.version + 1;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("org", s(WATCH_KEY))
            .item("version", n(next))
            .item("body", s(body));
        put = if memory.version == 0 {
            put.condition_expression("attribute_not_exists(version)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", n(memory.version))
        };
        match put.send().await {
            Ok(_) => {
                memory.version = next;
                Ok(())
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict(
                    "another watchdog saved its memory first".to_string(),
                ))
            }
            Err(e) => Err(self.io("PutItem (watchdog)", &e)),
        }
    }
}

/// Splits `dynamodb://table` into the table name.
pub fn parse_dynamodb_url(url: &str) -> Result<String, String> {
    let table = url
        .strip_prefix("dynamodb://")
        .ok_or_else(|| format!("{url:?} is not a dynamodb:// URL; write dynamodb://table"))?
        .trim_matches('/');
    if table.is_empty() || table.contains('/') {
        return Err(format!("{url:?} does not name one table; write dynamodb://table"));
    }
    Ok(table.to_string())
}
