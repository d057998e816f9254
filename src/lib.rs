//! dockerhub-audit: collects a Docker Hub organization's audit log, exactly once.
//!
//! Layers (dependencies point down; ARCHITECTURE.md draws them):
//! - entry points (`main.rs` and [`cli`], `bin/lambda.rs` and [`lambda`]) build a
//!   [`config::PollConfig`], wire adapters and call the [`service`];
//! - [`collect`] is the poller: windows, dedupe, batching, deadlines, the commit protocol;
//! - [`ports`] are the small traits the poller needs, and [`checkpoint_model`] the state it
//!   keeps per org between runs;
//! - adapters ([`hub`], [`checkpoint`], [`sink`], [`credentials`], [`notify`]) each implement one port
//!   for one outside system;
//! - [`event`] is the record: canonical form, `event_id`, encoding, object keys;
//! - [`alert`] is the alert rules and the alert a matching record raises;
//! - [`watch`] is the watchdog: every org's health from a listing of the checkpoints, the
//!   notification when the set of stale orgs changes, the dispatch of daily jobs.

#[cfg(feature = "cli")]
pub mod activity;
pub mod alert;
#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod aws_call;
pub mod checkpoint;
pub mod checkpoint_model;
pub mod clock;
pub mod collect;
#[cfg(feature = "compact")]
pub mod compact;
pub mod config;
pub mod credentials;
pub mod event;
pub mod hub;
pub mod inspect;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod logging;
pub mod notify;
pub mod ports;
pub mod progress;
pub mod service;
pub mod sink;
pub mod surface;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod types;
pub mod watch;

#[cfg(feature = "cli")]
pub mod cli;
