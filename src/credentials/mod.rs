//! Where the Docker Hub credentials come from.

pub mod env;
