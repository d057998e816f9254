//! The injected clock: the poller reads time only through [`Clock`].

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to: for deterministic tests.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock(Arc::new(Mutex::new(at)))
    }
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

/// Another clock, off by a fixed amount: what a machine with a wrong clock reads. For drills
/// of clock skew between runs.
#[derive(Debug, Clone)]
pub struct Skewed<C> {
    pub inner: C,
    pub by: Duration,
}

impl<C: Clock> Clock for Skewed<C> {
    fn now(&self) -> DateTime<Utc> {
        self.inner.now() + self.by
    }
}

/// The emulator (its own crate) reads time through its own trait: the same clock drives both
/// the poller and the emulator in a test.
#[cfg(feature = "emulator")]
mod emulator_clock {
    use super::*;

    impl dockerhub_audit_emulator::Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            Clock::now(self)
        }
    }

    impl dockerhub_audit_emulator::Clock for SystemClock {
        fn now(&self) -> DateTime<Utc> {
            Clock::now(self)
        }
    }
}
