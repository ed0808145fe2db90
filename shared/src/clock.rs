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
#[derive(Default)]
pub struct TestClock {
    // Offset from real time in milliseconds; `None` is real time.
    offset_ms: RwLock<Option<i64>>,
}

impl TestClock {
    pub fn set(&self, instant: DateTime<Utc>) {
        let offset = (instant - Utc::now()).num_milliseconds();
        *self.offset_ms.write().unwrap_or_else(|e| e.into_inner()) = Some(offset);
    }
    pub fn reset(&self) {
        *self.offset_ms.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
    pub fn is_set(&self) -> bool {
        self.offset_ms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        let offset = *self.offset_ms.read().unwrap_or_else(|e| e.into_inner());
        Utc::now() + chrono::Duration::milliseconds(offset.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_clock_jumps_then_advances() {
        let c = TestClock::default();
        let target: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
        c.set(target);
        let a = c.now();
        assert!((a - target).num_seconds().abs() < 2);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(c.now() > a, "advances in real time");
        c.reset();
        assert!((c.now() - Utc::now()).num_seconds().abs() < 2);
    }
}
