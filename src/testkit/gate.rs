//! A failpoint for drills, compiled only into the tests: it stops one run at its `at`-th
//! checkpoint or sink operation (before the operation acts, or after it acted and before it
//! answers) until the test lets it go, as a laptop that sleeps or a stalled network would.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::checkpoint_model::Checkpoint;
use crate::event::key::ObjectKey;
use crate::ports::{Checkpoints, Listed, PutOutcome, Sink, StoreError};
use crate::types::{Org, RunId};
use async_trait::async_trait;

pub struct Gate {
    at: u32,
    after: bool,
    seen: AtomicU32,
    pub reached: tokio::sync::Notify,
    pub go: tokio::sync::Notify,
}

impl Gate {
    pub fn new(at: u32, after: bool) -> Self {
        Gate {
            at,
            after,
            seen: AtomicU32::new(0),
            reached: tokio::sync::Notify::new(),
            go: tokio::sync::Notify::new(),
        }
    }

    async fn pass(&self, after: bool) {
        if after != self.after {
            return;
        }
        if self.seen.fetch_add(1, Ordering::SeqCst) == self.at {
            self.reached.notify_one();
            self.go.notified().await;
        }
    }
}

/// A run's checkpoint store and sink, through the gate.
pub struct Gated<'a, K, S> {
    pub store: K,
    pub sink: S,
    pub gate: &'a Gate,
}

macro_rules! gated {
    ($self:ident, $op:expr) => {{
        $self.gate.pass(false).await;
        let out = $op;
        $self.gate.pass(true).await;
        out
    }};
}

#[async_trait]
impl<K: Checkpoints, S: Sink> Checkpoints for Gated<'_, K, S> {
    type Lease = K::Lease;
    async fn acquire(&self, org: &Org, owner: &RunId) -> Result<Option<(K::Lease, Checkpoint)>, StoreError> {
        gated!(self, self.store.acquire(org, owner).await)
    }
    async fn save(&self, lease: &K::Lease, cp: &mut Checkpoint) -> Result<(), StoreError> {
        gated!(self, self.store.save(lease, cp).await)
    }
    fn heartbeat_every(&self) -> Option<std::time::Duration> {
        self.store.heartbeat_every()
    }
    async fn heartbeat(&self, lease: &K::Lease) -> Result<(), StoreError> {
        gated!(self, self.store.heartbeat(lease).await)
    }
    async fn release(&self, lease: K::Lease) -> Result<(), StoreError> {
        gated!(self, self.store.release(lease).await)
    }
    async fn peek(&self, org: &Org) -> Result<Option<Checkpoint>, StoreError> {
        self.store.peek(org).await
    }
}

#[async_trait]
impl<K: Checkpoints, S: Sink> Sink for Gated<'_, K, S> {
    async fn put(&self, key: &ObjectKey, body: Vec<u8>) -> Result<PutOutcome, StoreError> {
        gated!(self, self.sink.put(key, body).await)
    }
    async fn exists(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        gated!(self, self.sink.exists(key).await)
    }
    async fn identity(&self) -> Result<String, StoreError> {
        self.sink.identity().await
    }
    async fn days(&self, org: &Org) -> Result<Vec<chrono::NaiveDate>, StoreError> {
        self.sink.days(org).await
    }
    async fn list_day(&self, org: &Org, day: chrono::NaiveDate) -> Result<Vec<Listed>, StoreError> {
        self.sink.list_day(org, day).await
    }
    async fn list_after(&self, org: &Org, after: &str, limit: usize) -> Result<Vec<Listed>, StoreError> {
        self.sink.list_after(org, after, limit).await
    }
    async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>, StoreError> {
        self.sink.get(key).await
    }
}

/// Runs `first` until the gate stops it, then `meanwhile`, then lets `first` go on, and
/// waits for it. False when `first` ended without reaching the gate.
pub async fn stall_while<F, M>(gate: &Gate, first: F, meanwhile: M) -> bool
where
    F: std::future::Future<Output = ()>,
    M: std::future::Future<Output = ()>,
{
    let done = std::sync::atomic::AtomicBool::new(false);
    let first = async {
        first.await;
        done.store(true, Ordering::SeqCst);
    };
    let drive = async {
        tokio::select! {
            _ = gate.reached.notified() => {}
            _ = async { while !done.load(Ordering::SeqCst) { tokio::task::yield_now().await } } => return false,
        }
        meanwhile.await;
        gate.go.notify_one();
        true
    };
    tokio::join!(first, drive).1
}
