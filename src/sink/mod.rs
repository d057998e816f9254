//! Where the objects go.

pub mod local;
#[cfg(feature = "aws")]
pub mod s3;
