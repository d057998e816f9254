//! The ports: the small traits the poller needs. Adapters implement them; the poller
//! knows nothing else of the outside world.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use crate::checkpoint_model::Checkpoint;
use crate::event::key::ObjectKey;
use crate::event::HubEvent;
use crate::types::{Org, RunId};

pub use crate::clock::Clock;

/// One page request of the audit-log list endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// 1-based.
    pub page: u32,
    pub page_size: u32,
    /// Only events with this `action` (the API's exact-match filter).
    pub action: Option<String>,
}

/// An item of a page that is not a readable event (not an object, no usable timestamp, a
/// non-string action). It is kept verbatim in the output's quarantine, never dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
    pub item: serde_json::Value,
    pub reason: String,
}

/// One page as Docker Hub served it (or the contents of a window read from pages).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    pub events: Vec<HubEvent>,
    pub unreadable: Vec<Unreadable>,
}

impl Page {
    /// Items served, readable or not (what counts against the page size).
    pub fn len(&self) -> usize {
        self.events.len() + self.unreadable.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// About the bytes its items take in memory (an unreadable item's JSON text, which is
    /// what it came as).
    pub fn bytes(&self) -> usize {
        self.events.iter().map(HubEvent::size).sum::<usize>()
            + self
                .unreadable
                .iter()
                .map(|u| u.item.to_string().len())
                .sum::<usize>()
    }
    pub fn extend(&mut self, other: Page) {
        self.events.extend(other.events);
        self.unreadable.extend(other.unreadable);
    }
}

/// What went wrong talking to Docker Hub, after the adapter's own retries.
/// Every message says what happened and what to do; none carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// Credentials rejected (bad token, wrong identifier): retrying will not help.
    #[error("{0}")]
    Auth(String),
    /// The credentials work but may not read this org's audit log.
    #[error("{0}")]
    Forbidden(String),
    /// The Hub kept failing (5xx, timeouts, malformed answers) until the retries ran out.
    #[error("{0}")]
    Unavailable(String),
    /// The run's time budget ran out while waiting (rate limit or backoff).
    #[error("{0}")]
    OutOfTime(String),
    /// Any other refusal (4xx) that a retry will not fix.
    #[error("{0}")]
    Rejected(String),
}

impl HubError {
    /// Whether a later run could succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self, HubError::Unavailable(_) | HubError::OutOfTime(_))
    }
}

/// The Docker Hub audit log as the poller sees it: one page at a time.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// One page of `org`'s events for the query, as the API served it (any order, any
    /// count up to the server's page size), unreadable items set apart. `budget` bounds the
    /// time spent including retries and rate-limit waits.
    async fn page(&self, org: &Org, query: PageQuery, budget: Option<Duration>) -> Result<Page, HubError>;

    /// The requests this adapter has made so far (a run's are the difference between two
    /// readings); zero where it does not count.
    fn request_stats(&self) -> RequestStats {
        RequestStats::default()
    }
}

/// Requests made to Docker Hub: all of them (token exchanges included), those answered 429,
/// and those sent again after a failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestStats {
    pub requests: u64,
    pub throttled: u64,
    pub retries: u64,
}

impl RequestStats {
    /// What was made between `before` and `self`.
    pub fn since(self, before: RequestStats) -> RequestStats {
        RequestStats {
            requests: self.requests.saturating_sub(before.requests),
            throttled: self.throttled.saturating_sub(before.throttled),
            retries: self.retries.saturating_sub(before.retries),
        }
    }
}

/// A failure of a checkpoint store or a sink.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another run changed the checkpoint (version or lease no longer ours): stop writing.
    #[error("{0}")]
    Conflict(String),
    /// The store could not be reached or answered an error that may pass.
    #[error("{0}")]
    Io(String),
    /// What is stored cannot be used as it is (corrupt, too large, written for another
    /// output): a retry will not help; the message says what to do.
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// Whether a later run could succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Io(_))
    }
}

/// Per-org checkpoints with a lease.
#[async_trait]
pub trait Checkpoints: Send + Sync {
    /// Proof of holding an org's lease; dropping it without `release` must not hold the org
    /// for longer than the store's lease expiry.
    type Lease: Send + Sync;

    /// Takes `org`'s lease for `owner` and reads its checkpoint (a fresh one on first use).
    /// `Ok(None)` when another live run holds the lease.
    async fn acquire(
        &self,
        org: &Org,
        owner: &RunId,
    ) -> Result<Option<(Self::Lease, Checkpoint)>, StoreError>;

    /// Replaces the stored checkpoint if its version is still `cp.version` and the lease is
    /// still ours; on success `cp.version` is the new version. Otherwise `Conflict`.
    async fn save(&self, lease: &Self::Lease, cp: &mut Checkpoint) -> Result<(), StoreError>;

    /// Extends the lease while a run works between saves; `Conflict` if it was lost.
    /// Stores whose lease cannot lapse (an OS lock) need not do anything.
    async fn heartbeat(&self, _lease: &Self::Lease) -> Result<(), StoreError> {
        Ok(())
    }

    /// How often a run must renew its lease (with a save or a heartbeat) to keep it;
    /// `None` for stores whose lease cannot lapse while the holder lives (an OS lock).
    fn heartbeat_every(&self) -> Option<Duration> {
        None
    }

    /// Gives the lease up.
    async fn release(&self, lease: Self::Lease) -> Result<(), StoreError>;

    /// [`Self::save`], then gives the lease up: in one write where the store can (a run's
    /// last save costs no separate release). The lease is given up even when the save fails
    /// (if the store is reachable; else it expires by itself).
    async fn save_and_release(&self, lease: Self::Lease, cp: &mut Checkpoint) -> Result<(), StoreError> {
        let saved = self.save(&lease, cp).await;
        let released = self.release(lease).await;
        saved.and(released)
    }

    /// Reads the checkpoint without taking the lease (for `status`).
    async fn peek(&self, org: &Org) -> Result<Option<Checkpoint>, StoreError>;
}

/// Whether a put stored the object or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    AlreadyExisted,
}

/// An object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: ObjectKey,
    pub size: u64,
}

/// Where objects go, and reading them back (to verify them, or to rebuild a checkpoint from
/// them). Objects are immutable: a key, once written, is never overwritten.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Stores `body` at `key` unless an object is already there (then `AlreadyExisted`;
    /// keys are derived from content, so it holds the same events).
    async fn put(&self, key: &ObjectKey, body: Vec<u8>) -> Result<PutOutcome, StoreError>;
    async fn exists(&self, key: &ObjectKey) -> Result<bool, StoreError>;
    /// A name for this output that stays the same while it holds the same objects:
    /// `s3://bucket/prefix`, or a local folder's own id (so a moved folder keeps it). A
    /// checkpoint records the output it describes, and no other output may use it.
    async fn identity(&self) -> Result<String, StoreError>;

    /// The dates of `org`'s partitions (`org=<org>/dt=<date>/`), ascending.
    async fn days(&self, org: &Org) -> Result<Vec<NaiveDate>, StoreError>;
    /// The objects of `org`'s partition of `day`, ascending by key.
    async fn list_day(&self, org: &Org, day: NaiveDate) -> Result<Vec<Listed>, StoreError>;
    /// `org`'s objects whose keys sort after `after` (a key below `org=<org>/`; later
    /// days sort after earlier ones), ascending, at most `limit` of them.
    async fn list_after(&self, org: &Org, after: &str, limit: usize) -> Result<Vec<Listed>, StoreError>;
    /// An object's bytes (an error when there is none under `key`).
    async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>, StoreError>;
}

/// A Docker Hub secret: never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What `POST /v2/auth/token` needs: the username (or, for an organization access token,
/// the org name) and the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub identifier: String,
    pub secret: Secret,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CredentialsError(pub String);

/// Where the Docker Hub credentials come from.
#[async_trait]
pub trait CredentialSource: Send + Sync {
    async fn get(&self) -> Result<Credentials, CredentialsError>;
    /// Forget any cached value, so the next `get` reads the source again (after a 401, so
    /// a rotated token is picked up).
    async fn invalidate(&self) {}
}

/// Alerts could not be delivered; the message says what happened and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AlertError(pub String);

/// Where alerts go (an EventBridge bus, a file of JSON lines).
#[async_trait]
pub trait AlertSink: Send + Sync {
    /// Delivers every alert of `alerts`, or fails: then the caller keeps them all and sends
    /// them again later (consumers drop repeats by `alert_id`).
    async fn send(&self, alerts: &[crate::alert::Alert]) -> Result<(), AlertError>;
}

/// One org as a listing of the whole checkpoint store shows it (for the watchdog and
/// `status --all`): what it takes to tell whether the org's collection is healthy.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgState {
    pub org: Org,
    pub watermark: Option<DateTime<Utc>>,
    pub last_run: Option<crate::checkpoint_model::LastRun>,
    /// The lease as recorded (it may have expired); `None` when none is, or the store's
    /// lease cannot be seen from outside (an OS lock).
    pub lease: Option<LeaseHold>,
}

/// A recorded lease: its holder and until when it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHold {
    pub owner: String,
    pub until: DateTime<Utc>,
}

/// Every org of a checkpoint store at once, and the watchdog's memory kept beside them.
#[async_trait]
pub trait CheckpointIndex: Send + Sync {
    /// Every org that has a checkpoint, in one paged read, ascending by org.
    async fn list(&self) -> Result<Vec<OrgState>, StoreError>;
    /// What the watchdog remembered (the default, version 0, when nothing yet).
    async fn memory(&self) -> Result<crate::checkpoint_model::WatchMemory, StoreError>;
    /// Stores `memory` if the stored one is still at `memory.version` (then bumps it);
    /// otherwise `Conflict`: another watchdog saved first.
    async fn remember(&self, memory: &mut crate::checkpoint_model::WatchMemory) -> Result<(), StoreError>;
}

/// Where the watchdog's messages go (the alarm topic).
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers one message; an error says what happened and what to do.
    async fn notify(&self, subject: &str, message: &str) -> Result<(), AlertError>;
}

/// A daily job the watchdog starts for an org.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Job {
    /// Verify (and repair) the org's recent trail.
    Verify { org: Org },
    /// Compact the org's closed days.
    Compact { org: Org },
}

/// Starts jobs without waiting for them (an asynchronous Lambda invocation).
#[async_trait]
pub trait Dispatcher: Send + Sync {
    async fn start(&self, job: &Job) -> Result<(), String>;
}
