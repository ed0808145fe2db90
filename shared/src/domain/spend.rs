//! Qualifying spend in monthly buckets (so the member item stays O(1) however long its history)
//! and the cumulative pro-rata reversal of points on refunds.

use super::{Overflow, Points};
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A calendar month as a single ordinal (year × 12 + month − 1), so windows are subtraction.
pub fn month_index(d: NaiveDate) -> i32 {
    d.year() * 12 + d.month0() as i32
}

fn month_key(idx: i32) -> String {
    format!("{:04}-{:02}", idx.div_euclid(12), idx.rem_euclid(12) + 1)
}

fn parse_month_key(k: &str) -> Option<i32> {
    let (y, m) = k.split_once('-')?;
    let (y, m): (i32, i32) = (y.parse().ok()?, m.parse().ok()?);
    (1..=12).contains(&m).then_some(y * 12 + m - 1)
}

/// Net purchase amounts (minor units) by calendar month, `"YYYY-MM"` → amount. Stored densely as
/// `[first month, amount₀, amount₁, …]` like [`MonthCounts`] (the member item must stay under
/// 1 KB); the older `{"YYYY-MM": amount}` form still reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpendBuckets(BTreeMap<String, i64>);

impl Serialize for SpendBuckets {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let months: BTreeMap<i32, i64> = self
            .0
            .iter()
            .filter(|(_, v)| **v != 0)
            .filter_map(|(k, v)| parse_month_key(k).map(|m| (m, *v)))
            .collect();
        let (Some(first), Some(last)) = (months.keys().next(), months.keys().next_back()) else {
            return Vec::<i64>::new().serialize(s);
        };
        let mut dense = vec![i64::from(*first)];
        dense.extend((*first..=*last).map(|m| months.get(&m).copied().unwrap_or(0)));
        dense.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SpendBuckets {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Dense(Vec<i64>),
            Map(BTreeMap<String, i64>),
        }
        let out = match Stored::deserialize(d)? {
            Stored::Map(m) => m,
            Stored::Dense(dense) => {
                let mut out = BTreeMap::new();
                if let Some((first, amounts)) = dense.split_first() {
                    let first = i32::try_from(*first).map_err(serde::de::Error::custom)?;
                    for (i, v) in amounts.iter().enumerate() {
                        if *v != 0 {
                            out.insert(month_key(first + i as i32), *v);
                        }
                    }
                }
                out
            }
        };
        Ok(SpendBuckets(
            out.into_iter().filter(|(_, v)| *v != 0).collect(),
        ))
    }
}

impl SpendBuckets {
    /// Adds `delta` (negative for refunds) to the month of `date`, then drops months that can no
    /// longer count: anything older than `keep_months` before `today`'s month.
    pub fn add(
        &mut self,
        date: NaiveDate,
        delta: i64,
        today: NaiveDate,
        keep_months: u32,
    ) -> Result<(), Overflow> {
        let key = month_key(month_index(date));
        let slot = self.0.entry(key.clone()).or_insert(0);
        *slot = slot.checked_add(delta).ok_or(Overflow)?;
        // A month refunded to nothing holds nothing: stored and read forms stay equal.
        if *slot == 0 {
            self.0.remove(&key);
        }
        self.prune(today, keep_months);
        Ok(())
    }

    pub fn prune(&mut self, today: NaiveDate, keep_months: u32) {
        let oldest = month_index(today) - keep_months as i32 + 1;
        self.0
            .retain(|k, _| parse_month_key(k).is_some_and(|i| i >= oldest));
    }

    /// Spend dated in `today`'s month and the `window_months − 1` before it.
    pub fn qualifying(&self, today: NaiveDate, window_months: u32) -> i64 {
        let newest = month_index(today);
        let oldest = newest - window_months as i32 + 1;
        self.0
            .iter()
            .filter_map(|(k, v)| parse_month_key(k).map(|i| (i, *v)))
            .filter(|(i, _)| (oldest..=newest).contains(i))
            .fold(0i64, |acc, (_, v)| acc.saturating_add(v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Purchases per calendar month, stored densely as `[first month, n₀, n₁, …]` (a few bytes a
/// month) because the member item must stay under 1 KB. Months older than the kept span drop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MonthCounts(BTreeMap<i32, i64>);

impl MonthCounts {
    pub fn add(&mut self, date: NaiveDate, delta: i64, today: NaiveDate, keep_months: u32) {
        let slot = self.0.entry(month_index(date)).or_insert(0);
        *slot = (*slot + delta).max(0);
        let oldest = month_index(today) - keep_months as i32 + 1;
        self.0.retain(|m, n| *m >= oldest && *n > 0);
    }
    /// The count in `today`'s month and the `window_months − 1` before it.
    pub fn qualifying(&self, today: NaiveDate, window_months: u32) -> i64 {
        let newest = month_index(today);
        self.0
            .range(newest - window_months as i32 + 1..=newest)
            .map(|(_, n)| n)
            .sum()
    }
    /// The count in the month with this ordinal ([`month_index`]).
    pub fn in_month(&self, month: i32) -> i64 {
        self.0.get(&month).copied().unwrap_or(0)
    }
}

impl Serialize for MonthCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (Some(first), Some(last)) = (self.0.keys().next(), self.0.keys().next_back()) else {
            return Vec::<i64>::new().serialize(s);
        };
        let mut dense = vec![i64::from(*first)];
        dense.extend((*first..=*last).map(|m| self.in_month(m)));
        dense.serialize(s)
    }
}

impl<'de> Deserialize<'de> for MonthCounts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let dense = Vec::<i64>::deserialize(d)?;
        let mut out = BTreeMap::new();
        if let Some((first, counts)) = dense.split_first() {
            let first = i32::try_from(*first).map_err(serde::de::Error::custom)?;
            for (i, n) in counts.iter().enumerate() {
                if *n > 0 {
                    out.insert(first + i as i32, *n);
                }
            }
        }
        Ok(MonthCounts(out))
    }
}

/// The date a purchase's qualifying spend and upgrade are judged on: today, or the purchase's
/// own date when it is ahead of today (a till clock a few minutes fast may date a sale in the
/// next month; judging on today would not see the bucket it lands in).
pub fn spend_judged_on(today: NaiveDate, occurred_on: NaiveDate) -> NaiveDate {
    today.max(occurred_on)
}

/// Points reversed in total once `refunded_total` of a `purchase_amount` that earned
/// `points_earned` has been refunded: `floor(earned × refunded / amount)`.
pub fn cumulative_reversal(
    points_earned: Points,
    refunded_total: i64,
    purchase_amount: i64,
) -> Result<Points, Overflow> {
    if purchase_amount <= 0 {
        return Err(Overflow);
    }
    let v = i128::from(points_earned.0)
        .checked_mul(i128::from(refunded_total))
        .ok_or(Overflow)?
        .div_euclid(i128::from(purchase_amount));
    i64::try_from(v).map(Points).map_err(|_| Overflow)
}

/// The points one refund reverses: the growth of the cumulative reversal. Summed over any split of
/// a full refund it is exactly `points_earned`, never more, never less.
pub fn refund_reversal(
    points_earned: Points,
    refunded_before: i64,
    refund_amount: i64,
    purchase_amount: i64,
) -> Result<Points, Overflow> {
    let after = refunded_before.checked_add(refund_amount).ok_or(Overflow)?;
    cumulative_reversal(points_earned, after, purchase_amount)?.checked_sub(cumulative_reversal(
        points_earned,
        refunded_before,
        purchase_amount,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn spend_dated_in_the_next_month_is_seen_on_the_date_it_is_judged_on() {
        for (today, occurred, judged) in [
            ("2026-11-30", "2026-12-01", "2026-12-01"),
            ("2026-12-31", "2027-01-01", "2027-01-01"),
            ("2026-11-30", "2026-11-30", "2026-11-30"),
            ("2026-11-30", "2026-09-01", "2026-11-30"),
        ] {
            let on = spend_judged_on(d(today), d(occurred));
            assert_eq!(on, d(judged));
            let mut b = SpendBuckets::default();
            b.add(d(occurred), 500, on, 13).unwrap();
            assert_eq!(b.qualifying(on, 12), 500, "{today} {occurred}");
        }
    }

    #[test]
    fn spend_is_stored_densely_and_the_older_map_form_still_reads() {
        let mut b = SpendBuckets::default();
        b.add(d("2026-12-05"), 1500, d("2027-02-01"), 13).unwrap();
        b.add(d("2027-02-01"), 99_999_999, d("2027-02-01"), 13)
            .unwrap();
        let dense = serde_json::to_value(&b).unwrap();
        assert_eq!(
            dense,
            serde_json::json!([month_index(d("2026-12-01")), 1500, 0, 99_999_999])
        );
        assert_eq!(serde_json::from_value::<SpendBuckets>(dense).unwrap(), b);
        let old = serde_json::json!({"2026-12": 1500, "2027-01": 0, "2027-02": 99_999_999});
        assert_eq!(serde_json::from_value::<SpendBuckets>(old).unwrap(), b);
        // A month refunded to nothing is gone, as it reads back.
        b.add(d("2026-12-05"), -1500, d("2027-02-01"), 13).unwrap();
        assert_eq!(b.len(), 1);
        let empty = SpendBuckets::default();
        assert_eq!(serde_json::to_value(&empty).unwrap(), serde_json::json!([]));
        assert_eq!(
            serde_json::from_value::<SpendBuckets>(serde_json::json!([])).unwrap(),
            empty
        );
    }

    #[test]
    fn qualifying_window_table() {
        let today = d("2026-11-22");
        let mut b = SpendBuckets::default();
        for (date, amount) in [
            ("2026-11-01", 100),
            ("2026-10-31", 200),
            ("2025-12-01", 400), // 11 months before November: inside
            ("2025-11-30", 800), // 12 months before: outside the 12-month window
        ] {
            b.add(d(date), amount, today, 13).unwrap();
        }
        for (window, want) in [(1, 100), (2, 300), (12, 700), (13, 1500)] {
            assert_eq!(b.qualifying(today, window), want, "window {window}");
        }
        // A later month moves the window on: October 2027 still counts November 2026 only.
        assert_eq!(b.qualifying(d("2027-10-01"), 12), 100);
        assert_eq!(b.qualifying(d("2027-11-01"), 12), 0);
    }

    #[test]
    fn buckets_are_pruned_and_refunds_subtract() {
        let mut b = SpendBuckets::default();
        let mut day = d("2024-01-15");
        for _ in 0..40 {
            b.add(day, 1000, day, 13).unwrap();
            day = crate::domain::tier::add_months(day, 1);
        }
        assert_eq!(b.len(), 13, "member item stays O(1)");
        b.add(d("2027-04-10"), -300, d("2027-04-20"), 13).unwrap();
        assert_eq!(b.qualifying(d("2027-04-20"), 1), 700);
        assert_eq!(
            b.add(d("2027-04-10"), i64::MAX, d("2027-04-20"), 13),
            Err(Overflow)
        );
    }

    #[test]
    fn month_counts_are_dense_windowed_and_pruned() {
        let mut c = MonthCounts::default();
        let today = d("2027-03-10");
        for date in [
            "2027-03-01",
            "2027-03-09",
            "2027-01-31",
            "2026-04-01",
            "2026-03-31",
        ] {
            c.add(d(date), 1, today, 13);
        }
        assert_eq!(
            c.qualifying(today, 12),
            4,
            "March 2026 is outside 12 months"
        );
        assert_eq!(c.qualifying(today, 13), 5);
        assert_eq!(c.qualifying(today, 1), 2);
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!([
                month_index(d("2026-03-01")),
                1,
                1,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                1,
                0,
                2
            ])
        );
        let back: MonthCounts = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        // A full refund takes a purchase back out; never below zero.
        c.add(d("2027-01-31"), -1, today, 13);
        c.add(d("2027-01-31"), -1, today, 13);
        assert_eq!(c.qualifying(today, 3), 2);
        // A later month prunes what can no longer count.
        c.add(d("2027-04-01"), 1, d("2027-04-01"), 13);
        assert_eq!(c.in_month(month_index(d("2026-03-01"))), 0);
        assert_eq!(
            serde_json::to_value(MonthCounts::default()).unwrap(),
            serde_json::json!([])
        );
    }

    #[test]
    fn partial_refunds_never_over_or_under_reverse() {
        // Every split of a purchase into refunds reverses exactly what was earned in total.
        for (amount, earned) in [(1999, 29), (1000, 10), (7, 3), (100_001, 150_001)] {
            for parts in 1..=7i64 {
                let mut refunded = 0;
                let mut reversed = 0;
                let mut prev_cum = 0;
                for i in 0..parts {
                    let chunk = if i == parts - 1 {
                        amount - refunded
                    } else {
                        amount / parts
                    };
                    let r = refund_reversal(Points(earned), refunded, chunk, amount).unwrap();
                    assert!(r.0 >= 0);
                    refunded += chunk;
                    reversed += r.0;
                    let cum = cumulative_reversal(Points(earned), refunded, amount)
                        .unwrap()
                        .0;
                    assert!(cum >= prev_cum && cum <= earned);
                    prev_cum = cum;
                }
                assert_eq!(
                    reversed, earned,
                    "amount {amount} earned {earned} parts {parts}"
                );
            }
        }
    }

    #[test]
    fn reversal_table() {
        for (earned, before, refund, amount, want) in [
            (29, 0, 1999, 1999, 29),
            (29, 0, 1000, 1999, 14), // floor(14.507)
            (29, 1000, 999, 1999, 15),
            (19, 0, 1, 1999, 0),
            (0, 0, 500, 1000, 0),
        ] {
            assert_eq!(
                refund_reversal(Points(earned), before, refund, amount),
                Ok(Points(want))
            );
        }
    }
}
