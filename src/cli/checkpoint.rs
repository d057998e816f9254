//! `checkpoint rebuild`: an org's checkpoint made again from what its output holds.

use super::args::RebuildArgs;
use crate::clock::SystemClock;

pub async fn rebuild(a: RebuildArgs) -> Result<(), String> {
    let stores = a.store.stores();
    let checkpoints = stores.checkpoints().await?;
    let sink = stores.sink().await?;
    // No Docker Hub here: the rebuild reads the output only.
    let done = crate::collect::rebuild::rebuild_leased(
        &checkpoints,
        sink.as_ref(),
        &SystemClock,
        &a.org,
        a.overlap.0,
    )
    .await
    .map_err(|e| e.to_string())?;
    match done {
        None => Err(format!(
            "another run holds the lease of {}; run this again when it has finished",
            a.org
        )),
        Some(None) => {
            say!(
                "{}: the output holds no objects of it; nothing to rebuild (the first poll reads back --lookback)",
                a.org
            );
            Ok(())
        }
        Some(Some(done)) => {
            say!("{}: {done}", a.org);
            Ok(())
        }
    }
}
