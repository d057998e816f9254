//! Test support shared by the unit tests and the integration tests (feature "testkit",
//! which only the tests turn on: `Cargo.toml`'s dev-dependency on this crate itself), so no
//! test includes another's file by path.
//!
//! - [`fakes`]: fast in-process fakes of the ports;
//! - [`gate`]: a failpoint that stops a run at its n-th store or sink operation.

pub mod fakes;
pub mod gate;
