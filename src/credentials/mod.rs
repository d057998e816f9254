//! Where the Docker Hub credentials come from.

pub mod env;
#[cfg(feature = "aws")]
pub mod secrets_manager;
