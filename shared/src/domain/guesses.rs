//! How many unknown referral codes a caller may try (issue 30: 1,581 guesses a second found
//! codes by brute force). A generic cell rate algorithm over one instant per caller, the
//! *theoretical arrival time*: each unknown code pushes it `3600 / per_hour` seconds on; a code
//! is refused while one more push would put it more than an hour ahead. So a caller may spend
//! `per_hour` unknown codes at once and then one every `3600 / per_hour` seconds, and a caller
//! who has waited an hour has their whole allowance back. The record is that instant and the
//! instant of the last unknown code, so it is a single versioned write.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

const PERIOD: Duration = Duration::hours(1);

/// What a caller has spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spent {
    /// The theoretical arrival time: `now` plus what is spent and not yet earned back.
    pub tat: DateTime<Utc>,
    /// When the last unknown code was counted. A reader whose clock reads earlier (it took
    /// "now" before the writer did, or runs on a machine behind) is judged at this instant:
    /// else it would see the writer's spending as more than an hour ahead and refuse a code
    /// the allowance still has.
    pub at: DateTime<Utc>,
}

/// The caller may try a code now: what their record becomes if the code turns out unknown.
/// Refused: the whole seconds to wait (what `Retry-After` says, at least 1).
pub fn allow(spent: Option<Spent>, now: DateTime<Utc>, per_hour: u32) -> Result<Spent, u32> {
    let now = spent.map_or(now, |s| now.max(s.at));
    let per_hour = per_hour.max(1);
    let step = PERIOD / i32::try_from(per_hour).unwrap_or(i32::MAX);
    let next = spent.map(|s| s.tat).filter(|t| *t > now).unwrap_or(now) + step;
    let ahead = next - now;
    if ahead <= PERIOD {
        return Ok(Spent { tat: next, at: now });
    }
    let wait = ahead - PERIOD;
    // Rounded up: a client that waits exactly what it was told is let in.
    let secs = (wait.num_milliseconds() + 999) / 1000;
    Err(u32::try_from(secs.max(1)).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + Duration::seconds(secs)
    }

    /// Spends `n` unknown codes at `now`, each on the record the last one left.
    fn spend(mut spent: Option<Spent>, now: DateTime<Utc>, per_hour: u32, n: u32) -> Option<Spent> {
        for i in 0..n {
            let next = allow(spent, now, per_hour);
            spent = Some(next.unwrap_or_else(|w| panic!("code {i} refused, wait {w}")));
        }
        spent
    }

    fn tat(spent: Option<Spent>) -> Option<DateTime<Utc>> {
        spent.map(|s| s.tat)
    }

    #[test]
    fn a_caller_with_no_record_may_spend_exactly_per_hour_codes_at_once() {
        // 10 an hour: each code is 360 s; the 10th puts the record 3,600 s ahead (allowed),
        // the 11th would put it 3,960 s ahead: 360 s to wait.
        let full = spend(None, at(0), 10, 10);
        assert_eq!(tat(full), Some(at(3600)));
        assert_eq!(allow(full, at(0), 10), Err(360));
    }

    #[test]
    fn one_code_comes_back_every_hour_over_per_hour() {
        let full = spend(None, at(0), 10, 10);
        // 1 ms short of a step: still refused, told to wait the rest rounded up to 1 s.
        assert_eq!(
            allow(full, at(359) + Duration::milliseconds(999), 10),
            Err(1)
        );
        // At exactly one step: one code, and the next is refused for a whole step again.
        let one = allow(full, at(360), 10).expect("a step later one code is allowed");
        assert_eq!(
            one,
            Spent {
                tat: at(3960),
                at: at(360)
            }
        );
        assert_eq!(allow(Some(one), at(360), 10), Err(360));
    }

    #[test]
    fn a_record_in_the_past_is_a_caller_with_nothing_spent() {
        let stale = Some(Spent {
            tat: at(-5000),
            at: at(-5360),
        });
        assert_eq!(allow(stale, at(0), 10), allow(None, at(0), 10));
        assert_eq!(tat(spend(stale, at(0), 10, 10)), Some(at(3600)));
    }

    #[test]
    fn after_an_hour_of_silence_the_whole_allowance_is_back() {
        let full = spend(None, at(0), 4, 4);
        assert_eq!(tat(spend(full, at(3600), 4, 4)), Some(at(7200)));
    }

    #[test]
    fn a_reader_whose_clock_is_behind_the_last_writer_is_judged_at_the_writers_instant() {
        // Two codes spent by a writer at 0.005 s; a reader that took "now" at 0.001 s would see
        // the third code 3,600.004 s ahead and refuse it: judged at 0.005 s it is allowed.
        let w = at(0) + Duration::milliseconds(5);
        let two = spend(None, w, 3, 2);
        let third = allow(two, at(0) + Duration::milliseconds(1), 3).expect("the third code");
        assert_eq!(
            third,
            Spent {
                tat: w + Duration::hours(1),
                at: w
            }
        );
        assert_eq!(allow(Some(third), at(0), 3), Err(1200));
    }

    #[test]
    fn the_boundaries_of_per_hour() {
        // 1 an hour: one code, then an hour's wait.
        let one = spend(None, at(0), 1, 1);
        assert_eq!(allow(one, at(0), 1), Err(3600));
        // 0 is read as 1, never as "unlimited" or a division by zero.
        assert_eq!(allow(one, at(0), 0), Err(3600));
        // 3,600 an hour: one a second, the wait a whole second when refused.
        let full = spend(None, at(0), 3600, 3600);
        assert_eq!(allow(full, at(0), 3600), Err(1));
        assert!(allow(full, at(1), 3600).is_ok());
        // 1,000 an hour: steps of 3.6 s; a refusal's 3.6 s is said as 4.
        let full = spend(None, at(0), 1000, 1000);
        assert_eq!(allow(full, at(0), 1000), Err(4));
    }
}
