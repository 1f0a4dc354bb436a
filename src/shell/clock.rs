//! The one clock.
//!
//! Owns every read of the wall clock in caseclerk. Everything else asks a [`Clock`] for "now", so a
//! whole 15-working-day review can be replayed in a test (or by `caseclerk tick --now`) at any
//! instant. Clippy's `disallowed-methods` (see `clippy.toml`) bans `Utc::now` and
//! `SystemTime::now` everywhere except here.
//!
//! Must not: sleep, schedule, or know anything about working days (that is `calendar`).

use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};

/// A source of the current instant.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock stopped at one instant: `caseclerk tick --now` and tests.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// A clock a test moves by hand: a whole review replayed instant by instant.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(t: DateTime<Utc>) -> ManualClock {
        ManualClock(Mutex::new(t))
    }

    /// Move the clock to `t` (forwards or back).
    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().expect("not poisoned") = t;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("not poisoned")
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_always_answers_its_instant() {
        let t = DateTime::parse_from_rfc3339("2026-12-22T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = FixedClock(t);
        assert_eq!(clock.now(), t);
        assert_eq!(clock.now(), t);
    }

    #[test]
    fn a_manual_clock_answers_where_it_was_set() {
        let t = DateTime::parse_from_rfc3339("2026-12-22T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = ManualClock::new(t);
        assert_eq!(clock.now(), t);
        clock.set(t + chrono::Duration::days(3));
        assert_eq!(clock.now(), t + chrono::Duration::days(3));
    }

    #[test]
    fn the_system_clock_moves_forward() {
        let a = SystemClock.now();
        let b = SystemClock.now();
        assert!(b >= a);
    }
}
