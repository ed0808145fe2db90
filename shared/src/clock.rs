//! "Now", injectable. Lambda uses the system clock; `loyalty-local` uses a test clock that app
//! developers can set to any instant, after which it advances in real time.

use chrono::{DateTime, Utc};
use std::sync::RwLock;

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A settable clock: `set(t)` makes `now()` read `t` at once and then move forward with real time.
/// It keeps the instant set and a monotonic mark of when, so it reads exactly `t` plus the time
/// elapsed since (never a rounding of an offset, which read 1 ms early).
#[derive(Default)]
pub struct TestClock {
    set_at: RwLock<Option<(DateTime<Utc>, std::time::Instant)>>,
}

impl TestClock {
    pub fn set(&self, instant: DateTime<Utc>) {
        *self.set_at.write().unwrap_or_else(|e| e.into_inner()) =
            Some((instant, std::time::Instant::now()));
    }
    pub fn reset(&self) {
        *self.set_at.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
    pub fn is_set(&self) -> bool {
        self.set_at
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        match *self.set_at.read().unwrap_or_else(|e| e.into_inner()) {
            Some((instant, mark)) => {
                instant
                    + chrono::Duration::from_std(mark.elapsed()).unwrap_or(chrono::Duration::zero())
            }
            None => Utc::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_clock_reads_the_instant_set_not_a_millisecond_before() {
        let c = TestClock::default();
        for t in [
            "2030-01-01T00:00:00Z",
            "2027-02-28T23:59:59.999999999Z",
            "2026-11-30T23:58:00.000500Z",
        ] {
            let target: DateTime<Utc> = t.parse().unwrap();
            for _ in 0..1000 {
                c.set(target);
                assert!(c.now() >= target, "{t}");
            }
        }
    }

    #[test]
    fn test_clock_jumps_then_advances() {
        let c = TestClock::default();
        let target: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
        c.set(target);
        let a = c.now();
        assert!(a >= target, "never reads before the instant set: {a}");
        assert!((a - target).num_seconds() < 2);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(c.now() > a, "advances in real time");
        c.reset();
        assert!((c.now() - Utc::now()).num_seconds().abs() < 2);
    }
}
