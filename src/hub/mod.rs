//! The Docker Hub adapter: implements [`crate::ports::AuditLog`] over HTTP.
//!
//! - [`auth`]: the bearer token's lifetime;
//! - [`retry`]: `Retry-After`, rate-limit pacing, backoff;
//! - [`trust`]: where the token may go, what of an answer may be shown;
//! - [`wire`]: response bodies;
//! - [`client`]: requests, timeouts, the retry loop, the 401-once rule.

pub mod auth;
pub mod client;
pub mod retry;
pub mod trust;
pub mod wire;

pub use client::{ApiStats, HubClient, HubConfig};
