//! Alert destinations, each an [`crate::ports::AlertSink`] for one outside system:
//! an EventBridge bus ([`eventbridge`]) and JSON lines on a file or stdout ([`lines`]); and the
//! watchdog's messages, a [`crate::ports::Notifier`], to an SNS topic ([`sns`]).

#[cfg(feature = "aws")]
pub mod eventbridge;
pub mod lines;
#[cfg(feature = "aws")]
pub mod sns;
