//! The checkpoint stores: each implements [`crate::ports::Checkpoints`] for one outside
//! system. The checkpoint itself, the poller's data, is [`crate::checkpoint_model`].

#[cfg(feature = "aws")]
pub mod dynamodb;
pub mod file;
