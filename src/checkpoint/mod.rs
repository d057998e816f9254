//! The checkpoint (what the poller has durably stored, per org) and its stores.

#[cfg(feature = "aws")]
pub mod dynamodb;
pub mod file;
mod model;

pub use model::{Checkpoint, Intent, LastRun, PendingObject};
