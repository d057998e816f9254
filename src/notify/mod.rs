//! Alert destinations, each an [`crate::ports::AlertSink`] for one outside system:
//! an EventBridge bus ([`eventbridge`]) and JSON lines on a file or stdout ([`lines`]).

#[cfg(feature = "aws")]
pub mod eventbridge;
pub mod lines;
