//! The watchdog: one look at every org of a deployment at once.
//!
//! - [`health`]: from a listing of the checkpoints, which orgs are stale and why;
//! - [`notice`]: the message that names them, for the person paged;
//! - [`dispatch`]: each org's daily verification and compaction, spread over a window;
//! - [`run`]: one watch, remembering in the checkpoint store what it sent and started.
//!
//! It depends on the ports alone ([`crate::ports::CheckpointIndex`], [`crate::ports::Notifier`],
//! [`crate::ports::Dispatcher`]); the Lambda and the CLI wire the adapters.

pub mod dispatch;
pub mod health;
pub mod notice;
pub mod run;

pub use dispatch::VerifyWindow;
pub use health::{Health, OrgHealth, Why};
pub use run::{watch, WatchConfig, WatchReport};

#[cfg(test)]
mod tests;
