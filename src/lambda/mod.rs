//! The Lambda's logic (feature "lambda"): settings from the environment and the input,
//! the handler, metrics. The binary in `src/bin/lambda.rs` only wires clients and runs it.

#[cfg(feature = "compact")]
pub mod compactor;
pub mod dispatch;
pub mod handler;
pub mod metrics;
pub mod rules;
pub mod settings;

pub use handler::{App, RetryableError};
pub use settings::Settings;
