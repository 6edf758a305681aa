//! Time as a port, so use cases can be tested with a fixed clock.

use chrono::{DateTime, SubsecRound, Utc};

/// Tells the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant, truncated to microseconds (what storage keeps).
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        // Storage keeps microseconds: truncate here so a value read back
        // equals the value written.
        Utc::now().trunc_subsecs(6)
    }
}
