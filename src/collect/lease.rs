//! Keeping an org's lease while a run (or `verify --repair`, or `checkpoint rebuild`) works
//! under it: every save or heartbeat renews the lease, and work that waits long between
//! them (rate limits, retries, reading many objects) is raced against a heartbeat timer so
//! the lease does not lapse. A lost lease ends the work with `Conflict`.

use std::future::Future;

use tokio::time::Instant;

use crate::ports::{Checkpoints, StoreError};

/// The lease a piece of work holds, and when it was last renewed (by a save or a
/// heartbeat), in real time: stores expire leases in real time.
pub struct LeaseKeeper<'a, K: Checkpoints> {
    store: &'a K,
    lease: &'a K::Lease,
    /// How often the store wants it renewed; `None`: its leases cannot lapse.
    every: Option<std::time::Duration>,
    last: Instant,
}

impl<'a, K: Checkpoints> LeaseKeeper<'a, K> {
    /// Keeps `lease`, just taken (or renewed) from `store`.
    pub fn new(store: &'a K, lease: &'a K::Lease) -> Self {
        LeaseKeeper {
            store,
            lease,
            every: store.heartbeat_every(),
            last: Instant::now(),
        }
    }

    /// The lease kept, for the saves and commits made under it.
    pub fn lease(&self) -> &'a K::Lease {
        self.lease
    }

    /// Notes that a save (or a heartbeat made elsewhere) just renewed the lease.
    pub fn renewed(&mut self) {
        self.last = Instant::now();
    }

    /// Runs `work`, renewing the lease whenever a renewal is due while it waits. A lost
    /// lease ends the work (`Conflict`), whatever it was doing.
    pub async fn during<T>(&mut self, work: impl Future<Output = T>) -> Result<T, StoreError> {
        let Some(every) = self.every else {
            return Ok(work.await);
        };
        tokio::pin!(work);
        loop {
            tokio::select! {
                biased;
                out = &mut work => return Ok(out),
                _ = tokio::time::sleep_until(self.last + every) => {
                    self.store.heartbeat(self.lease).await?;
                    self.renewed();
                }
            }
        }
    }
}
