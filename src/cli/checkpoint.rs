//! `checkpoint rebuild`: an org's checkpoint made again from what its output holds.

use super::args::RebuildArgs;
use crate::clock::SystemClock;
use crate::collect::rebuild::LeasedRebuild;
use crate::service::{NoDockerHub, Service};

pub async fn rebuild(a: RebuildArgs) -> Result<(), String> {
    let stores = a.store.stores();
    let checkpoints = stores.checkpoints().await?;
    let sink = stores.sink().await?;
    // No Docker Hub here: the rebuild reads the output only.
    let service = Service::new(&NoDockerHub, &checkpoints, sink.as_ref(), &SystemClock);
    match service
        .rebuild(&a.org, a.overlap.0)
        .await
        .map_err(|f| f.message)?
    {
        LeasedRebuild::LeaseHeld => Err(format!(
            "another run holds the lease of {}; run this again when it has finished",
            a.org
        )),
        LeasedRebuild::NothingStored => {
            say!(
                "{}: the output holds no objects of it; nothing to rebuild (the first poll reads back --lookback)",
                a.org
            );
            Ok(())
        }
        LeasedRebuild::Rebuilt(done) => {
            say!("{}: {done}", a.org);
            Ok(())
        }
    }
}
