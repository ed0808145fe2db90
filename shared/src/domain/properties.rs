//! Property tests: rules that must hold for any input, not only the table rows.

use super::Points;
use super::birthday::{Birthday, GiftDue, gift_due, month_days_celebrated_on};
use super::earning::{EarnRate, Multiplier, earn};
use super::spend::{SpendBuckets, month_index, refund_reversal};
use chrono::{Datelike, Duration, NaiveDate};
use proptest::prelude::*;

fn date() -> impl Strategy<Value = NaiveDate> {
    // 1990 … 2100, every day, month and year ends included.
    (0i64..40_000).prop_map(|d| NaiveDate::from_ymd_opt(1990, 1, 1).unwrap() + Duration::days(d))
}

proptest! {
    /// Earning is floor(amount × points / per × multiplier), never more, monotone in the amount,
    /// and additive within rounding: two purchases never earn more than their sum would.
    #[test]
    fn earning_is_exact_floor_and_monotone(
        a in 1i64..10_000_000_000, b in 1i64..10_000_000_000,
        pts in 1i64..100, per in 1i64..10_000, m in 0u32..=100_000,
    ) {
        let rate = EarnRate { points: pts, per_minor_units: per };
        let mult = Multiplier::from_thousandths(m).unwrap();
        let e = earn(a, rate, mult).unwrap().0 as i128;
        let exact_num = i128::from(a) * i128::from(pts) * i128::from(m);
        let den = i128::from(per) * 1000;
        prop_assert!(e * den <= exact_num && exact_num < (e + 1) * den);
        let bigger = earn(a + b, rate, mult).unwrap().0;
        prop_assert!(bigger as i128 >= e);
        prop_assert!(earn(a, rate, mult).unwrap().0 + earn(b, rate, mult).unwrap().0 <= bigger);
    }

    /// Any split of a full refund reverses exactly what was earned; any partial sequence never
    /// reverses more than the pro-rata share of what was refunded.
    #[test]
    fn refunds_in_any_split_reverse_exactly_the_points(
        amount in 1i64..1_000_000_000,
        earned in 0i64..10_000_000,
        cuts in proptest::collection::vec(1u32..1000, 0..12),
    ) {
        let mut parts: Vec<i64> = Vec::new();
        let mut left = amount;
        for c in cuts {
            let p = (left * i64::from(c) / 1000).min(left);
            if p > 0 { parts.push(p); left -= p; }
        }
        if left > 0 { parts.push(left); }
        let mut refunded = 0i64;
        let mut reversed = 0i64;
        for p in parts {
            reversed += refund_reversal(Points(earned), refunded, p, amount).unwrap().0;
            refunded += p;
            prop_assert!(i128::from(reversed) * i128::from(amount) <= i128::from(earned) * i128::from(refunded));
        }
        prop_assert_eq!(refunded, amount);
        prop_assert_eq!(reversed, earned);
    }

    /// Qualifying spend as of `today` is exactly the spend dated in today's month and the
    /// window − 1 months before it, across month and year ends.
    #[test]
    fn qualifying_spend_counts_exactly_the_window(
        today in date(),
        window in 1u32..=24,
        spends in proptest::collection::vec((0i64..800, 1i64..1_000_000), 0..30),
    ) {
        let mut b = SpendBuckets::default();
        let mut expected = 0i64;
        for (days_back, amount) in spends {
            let d = today - Duration::days(days_back);
            b.add(d, amount, today, window + 1).unwrap();
            let age = month_index(today) - month_index(d);
            if (0..window as i32).contains(&age) {
                expected += amount;
            }
        }
        prop_assert_eq!(b.qualifying(today, window), expected);
        prop_assert!(b.len() <= window as usize + 1, "old months are pruned");
    }

    /// A birthday is celebrated exactly once a year: on its date, or on 28 February for 29
    /// February in common years; the gift is due only within the catch-up window after it, and
    /// the day it is celebrated is among the partitions the job reads that day.
    #[test]
    fn the_birthday_calendar_gives_one_day_a_year(
        month in 1u32..=12, day in 1u32..=31, today in date(), catch_up in 0u32..10,
    ) {
        let Ok(b) = Birthday::parse(&format!("{month:02}-{day:02}")) else { return Ok(()); };
        let on = b.occurrence(today.year());
        prop_assert_eq!(on.year(), today.year());
        prop_assert!(month_days_celebrated_on(on).contains(&b.month_day()));
        let celebrations = (1..=366)
            .filter_map(|d| NaiveDate::from_yo_opt(today.year(), d))
            .filter(|d| month_days_celebrated_on(*d).contains(&b.month_day()))
            .count();
        prop_assert_eq!(celebrations, 1);
        let long_ago = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap();
        match gift_due(b, long_ago, today, catch_up, 0) {
            GiftDue::Due { on, .. } => {
                let age = (today - on).num_days();
                prop_assert!((0..=i64::from(catch_up)).contains(&age));
            }
            GiftDue::NotInWindow => {
                for y in [today.year(), today.year() - 1] {
                    let age = (today - b.occurrence(y)).num_days();
                    prop_assert!(!(0..=i64::from(catch_up)).contains(&age));
                }
            }
            GiftDue::TooRecentlySet => prop_assert!(false, "on file since 1900"),
        }
    }
}
