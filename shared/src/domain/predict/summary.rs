//! A member's purchase days as the models read them (first day, last day, repeat days and their
//! net spend), kept up to date by each purchase and refund from what the member item holds. The
//! member item must stay under 1 KB and every purchase writes it, so it cannot list every
//! purchase day: it keeps the last few with their counts, which places every purchase made in
//! order and every refund of a recent purchase exactly. A late purchase or an older refund it
//! cannot place is counted as best it can and marks the summary `stale`, for the nightly run to
//! recount from the member's history. Days are in the program's time zone.

use super::bgnbd;
use super::spend::Spend;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// How many of the latest purchase days the summary keeps with their counts.
pub const RECENT_DAYS: usize = 4;

/// One kept purchase day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Day {
    #[serde(rename = "d")]
    pub day: NaiveDate,
    /// Purchases that day not fully refunded.
    #[serde(rename = "n")]
    pub purchases: u32,
    /// Their net amount, minor units.
    #[serde(rename = "v")]
    pub net: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseDays {
    #[serde(rename = "f")]
    pub first: NaiveDate,
    /// The last day with a purchase not fully refunded (the first day when there is none after).
    #[serde(rename = "l")]
    pub last: NaiveDate,
    /// Days after the first with a purchase not fully refunded: the models' x.
    #[serde(rename = "x")]
    pub repeat_days: u32,
    /// The net amount of those days, minor units.
    #[serde(rename = "s")]
    pub repeat_spend: i64,
    /// The latest purchase days, oldest first, at most [`RECENT_DAYS`].
    #[serde(rename = "r", default)]
    pub recent: Vec<Day>,
    /// Something happened the kept days could not place: the counts may be off until the
    /// nightly run recounts them from the member's history.
    #[serde(rename = "st", default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

impl PurchaseDays {
    /// The summary of a member's first purchase.
    pub fn first_purchase(day: NaiveDate, amount: i64) -> Self {
        PurchaseDays {
            first: day,
            last: day,
            repeat_days: 0,
            repeat_spend: 0,
            recent: vec![Day {
                day,
                purchases: 1,
                net: amount,
            }],
            stale: false,
        }
    }

    /// After a purchase of `amount` (minor units) on `day`.
    pub fn purchased(summary: Option<&Self>, day: NaiveDate, amount: i64) -> Self {
        let Some(s) = summary else {
            return Self::first_purchase(day, amount);
        };
        let mut s = s.clone();
        if let Some(kept) = s.recent.iter_mut().find(|d| d.day == day) {
            // A day the summary keeps: its count and amount change; it counts as a repeat day
            // again if refunds had emptied it.
            kept.purchases += 1;
            kept.net += amount;
            if day > s.first {
                if kept.purchases == 1 {
                    s.repeat_days += 1;
                }
                s.repeat_spend += amount;
                s.last = s.last.max(day);
            }
            return s;
        }
        if day == s.first {
            // Another purchase on the first day, no longer kept: nothing the models read.
            return s;
        }
        if day < s.first {
            // A late purchase before the first: the old first day becomes a repeat day, with
            // its amount if it is kept.
            match s.recent.iter().find(|d| d.day == s.first).copied() {
                Some(old) => {
                    if old.purchases > 0 {
                        s.repeat_days += 1;
                        s.last = s.last.max(old.day);
                    }
                    s.repeat_spend += old.net;
                }
                None => {
                    s.repeat_days += 1;
                    s.stale = true;
                }
            }
            s.first = day;
            if s.repeat_days == 0 {
                s.last = day;
            }
            s.keep(Day {
                day,
                purchases: 1,
                net: amount,
            });
            return s;
        }
        // A day after the first the summary does not keep. Every day from the oldest kept one
        // on is kept (all of them while the first day still is), so such a day is new; one
        // older than the kept days may already have purchases.
        let all_kept_from = s.recent.first().map(|d| d.day);
        let known = all_kept_from.is_some_and(|from| from == s.first || day > from);
        s.repeat_days += 1;
        s.repeat_spend += amount;
        s.last = s.last.max(day);
        if known {
            s.keep(Day {
                day,
                purchases: 1,
                net: amount,
            });
        } else {
            s.stale = true;
        }
        s
    }

    /// After a refund of `amount` (minor units) of a purchase made on `day`; `emptied` when it
    /// fully refunds that purchase.
    pub fn refunded(&self, day: NaiveDate, amount: i64, emptied: bool) -> Self {
        let mut s = self.clone();
        if day > s.first {
            s.repeat_spend -= amount;
        }
        let Some(at) = s.recent.iter().position(|d| d.day == day) else {
            // An old purchase: its day may or may not still have others.
            s.stale |= emptied && day > s.first;
            return s;
        };
        let kept = &mut s.recent[at];
        kept.net -= amount;
        if !emptied {
            return s;
        }
        kept.purchases = kept.purchases.saturating_sub(1);
        if kept.purchases > 0 || day == s.first {
            return s;
        }
        // The day has no purchase left: it is no longer a repeat day.
        s.repeat_days = s.repeat_days.saturating_sub(1);
        if day == s.last {
            let first = s.first;
            match s.recent[..at]
                .iter()
                .rev()
                .find(|d| d.purchases > 0 && d.day > first)
            {
                Some(before) => s.last = before.day,
                None => {
                    s.last = first;
                    // A repeat day older than the kept ones may still have purchases (none can
                    // while the first day is still kept: nothing older was dropped).
                    let all_kept = s.recent.first().is_some_and(|d| d.day == first);
                    s.stale |= s.repeat_days > 0 && !all_kept;
                }
            }
        }
        s
    }

    /// Keeps `day` in day order, dropping the oldest beyond [`RECENT_DAYS`].
    fn keep(&mut self, day: Day) {
        let at = self.recent.partition_point(|d| d.day < day.day);
        self.recent.insert(at, day);
        if self.recent.len() > RECENT_DAYS {
            self.recent.remove(0);
        }
    }

    /// What BG/NBD reads, observed on `today`: weeks from the first purchase day.
    pub fn for_bgnbd(&self, today: NaiveDate) -> bgnbd::Summary {
        let weeks = |to: NaiveDate| (to - self.first).num_days().max(0) as f64 / 7.0;
        bgnbd::Summary {
            x: self.repeat_days,
            t_x: weeks(self.last),
            age: weeks(today.max(self.last)),
        }
    }

    /// What Gamma-Gamma reads: repeat days and their mean amount in major units (`minor_units`
    /// to the major one: 100 for dollars, 1 for yen). None without a repeat day or with a net
    /// that is not positive (the model is for positive amounts).
    pub fn for_spend(&self, minor_units: u32) -> Option<Spend> {
        (self.repeat_days > 0 && self.repeat_spend > 0).then(|| Spend {
            x: self.repeat_days,
            mean: self.repeat_spend as f64 / f64::from(minor_units) / f64::from(self.repeat_days),
        })
    }
}

impl PurchaseDays {
    /// The summary of a whole history, from nothing: each purchase's day, amount and what has
    /// been refunded of it (minor units). None without a purchase. What the nightly run writes
    /// for a member whose summary is stale or missing.
    pub fn recount(history: impl IntoIterator<Item = (NaiveDate, i64, i64)>) -> Option<Self> {
        let history: Vec<_> = history.into_iter().collect();
        let first = history.iter().map(|h| h.0).min()?;
        let mut days: std::collections::BTreeMap<NaiveDate, Day> = Default::default();
        for &(day, amount, refunded) in &history {
            let d = days.entry(day).or_insert(Day {
                day,
                purchases: 0,
                net: 0,
            });
            d.net += amount - refunded;
            d.purchases += u32::from(refunded < amount);
        }
        let open: Vec<Day> = days
            .values()
            .filter(|d| d.day == first || d.purchases > 0)
            .copied()
            .collect();
        let repeat: Vec<&Day> = open.iter().filter(|d| d.day > first).collect();
        Some(PurchaseDays {
            first,
            last: repeat.last().map_or(first, |d| d.day),
            repeat_days: repeat.len() as u32,
            repeat_spend: days.values().filter(|d| d.day > first).map(|d| d.net).sum(),
            recent: open[open.len().saturating_sub(RECENT_DAYS)..].to_vec(),
            stale: false,
        })
    }
}

/// The stored form on the member item, where every byte counts: one list of integers, `[first,
/// last, x, spend, (day, purchases, net)...]`, the first day as days since 1970-01-01, the last
/// as days after it, each kept day as days from the last (small), `x` stored as `-(x + 1)` when
/// stale. About 60 bytes full.
pub mod stored {
    use super::*;
    use serde::de::Error;
    use serde::{Deserializer, Serializer};

    const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();

    pub fn serialize<S: Serializer>(v: &Option<PurchaseDays>, s: S) -> Result<S::Ok, S::Error> {
        let Some(p) = v else {
            return s.serialize_none();
        };
        let from = |d: NaiveDate| (d - p.first).num_days();
        let x = i64::from(p.repeat_days);
        let mut out = vec![
            (p.first - EPOCH).num_days(),
            from(p.last),
            if p.stale { -x - 1 } else { x },
            p.repeat_spend,
        ];
        for d in &p.recent {
            out.extend([(d.day - p.last).num_days(), i64::from(d.purchases), d.net]);
        }
        s.collect_seq(out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PurchaseDays>, D::Error> {
        let Some(v) = Option::<Vec<i64>>::deserialize(d)? else {
            return Ok(None);
        };
        let bad = || D::Error::custom(format!("purchase days {v:?}"));
        let day = |base: NaiveDate, n: i64| {
            base.checked_add_signed(chrono::Duration::try_days(n).ok_or_else(bad)?)
                .ok_or_else(bad)
        };
        let [first, last, x, spend, rest @ ..] = &v[..] else {
            return Err(bad());
        };
        if rest.len() % 3 != 0 || rest.len() / 3 > RECENT_DAYS {
            return Err(bad());
        }
        let first = day(EPOCH, *first)?;
        let last = day(first, *last)?;
        let recent = rest
            .chunks(3)
            .map(|c| {
                Ok(Day {
                    day: day(last, c[0])?,
                    purchases: u32::try_from(c[1]).map_err(|_| bad())?,
                    net: c[2],
                })
            })
            .collect::<Result<Vec<_>, D::Error>>()?;
        let stale = *x < 0;
        Ok(Some(PurchaseDays {
            first,
            last,
            repeat_days: u32::try_from(if stale { -x - 1 } else { *x }).map_err(|_| bad())?,
            repeat_spend: *spend,
            recent,
            stale,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn buys(list: Purchases) -> PurchaseDays {
        let mut s: Option<PurchaseDays> = None;
        for (day, amount) in list {
            s = Some(PurchaseDays::purchased(s.as_ref(), d(day), *amount));
        }
        s.unwrap()
    }

    /// Purchases as (day, amount, minor units).
    type Purchases<'a> = &'a [(&'a str, i64)];

    /// Purchases in order: one row per case, worked by hand.
    #[test]
    fn purchases_in_order_count_distinct_days_after_the_first() {
        let cases: &[(Purchases, u32, i64, &str)] = &[
            // purchases, repeat days, repeat spend, last day
            (&[("2027-01-01", 1000)], 0, 0, "2027-01-01"),
            (
                &[("2027-01-01", 1000), ("2027-01-01", 500)],
                0,
                0,
                "2027-01-01",
            ),
            (
                &[("2027-01-01", 1000), ("2027-01-02", 500)],
                1,
                500,
                "2027-01-02",
            ),
            (
                &[
                    ("2027-01-01", 1000),
                    ("2027-01-02", 500),
                    ("2027-01-02", 250),
                ],
                1,
                750,
                "2027-01-02",
            ),
            (
                &[
                    ("2027-01-01", 1000),
                    ("2027-01-05", 100),
                    ("2027-02-01", 200),
                    ("2027-03-01", 300),
                    ("2027-04-01", 400),
                    ("2027-05-01", 500),
                ],
                5,
                1500,
                "2027-05-01",
            ),
        ];
        for (list, x, spend, last) in cases {
            let s = buys(list);
            assert_eq!(
                (s.repeat_days, s.repeat_spend, s.last, s.stale),
                (*x, *spend, d(last), false),
                "{list:?}"
            );
            assert!(s.recent.len() <= RECENT_DAYS);
        }
    }

    #[test]
    fn a_refund_that_empties_the_last_day_moves_last_back_to_the_day_before() {
        let s = buys(&[
            ("2027-01-01", 1000),
            ("2027-01-10", 500),
            ("2027-01-20", 300),
        ]);
        let r = s.refunded(d("2027-01-20"), 300, true);
        assert_eq!(
            (r.repeat_days, r.repeat_spend, r.last, r.stale),
            (1, 500, d("2027-01-10"), false)
        );
        // Both repeat days emptied: back to a one-time buyer.
        let r = r.refunded(d("2027-01-10"), 500, true);
        assert_eq!(
            (r.repeat_days, r.repeat_spend, r.last, r.stale),
            (0, 0, d("2027-01-01"), false)
        );
    }

    #[test]
    fn a_partial_refund_or_one_of_two_purchases_that_day_keeps_the_day() {
        let s = buys(&[
            ("2027-01-01", 1000),
            ("2027-01-10", 500),
            ("2027-01-10", 200),
        ]);
        let partial = s.refunded(d("2027-01-10"), 100, false);
        assert_eq!((partial.repeat_days, partial.repeat_spend), (1, 600));
        let one_of_two = s.refunded(d("2027-01-10"), 200, true);
        assert_eq!(
            (
                one_of_two.repeat_days,
                one_of_two.repeat_spend,
                one_of_two.last
            ),
            (1, 500, d("2027-01-10"))
        );
        // A purchase on a day emptied by refunds counts it again.
        let emptied =
            buys(&[("2027-01-01", 1000), ("2027-01-10", 500)]).refunded(d("2027-01-10"), 500, true);
        let again = PurchaseDays::purchased(Some(&emptied), d("2027-01-10"), 80);
        assert_eq!(
            (again.repeat_days, again.repeat_spend, again.last),
            (1, 80, d("2027-01-10"))
        );
    }

    #[test]
    fn refunds_on_the_first_day_change_no_repeat_count() {
        let s = buys(&[("2027-01-01", 1000), ("2027-01-10", 500)]);
        let r = s.refunded(d("2027-01-01"), 1000, true);
        assert_eq!(
            (r.repeat_days, r.repeat_spend, r.first, r.stale),
            (1, 500, d("2027-01-01"), false)
        );
    }

    /// What the kept days cannot place is counted as best it can and marked for the recount.
    #[test]
    fn what_the_kept_days_cannot_place_marks_the_summary_stale() {
        let many = buys(&[
            ("2027-01-01", 1000),
            ("2027-02-01", 100),
            ("2027-03-01", 100),
            ("2027-04-01", 100),
            ("2027-05-01", 100),
            ("2027-06-01", 100),
        ]);
        assert!(!many.stale);
        // A refund emptying a day no longer kept.
        let r = many.refunded(d("2027-02-01"), 100, true);
        assert!(r.stale);
        assert_eq!(r.repeat_spend, 400);
        // A partial refund of it is exact: the day keeps its purchase.
        assert!(!many.refunded(d("2027-02-01"), 50, false).stale);
        // A late purchase between kept-out days, and one before the first day.
        let late = PurchaseDays::purchased(Some(&many), d("2027-01-15"), 70);
        assert!(late.stale);
        assert_eq!((late.repeat_days, late.repeat_spend), (6, 570));
        let earlier = PurchaseDays::purchased(Some(&many), d("2026-12-24"), 70);
        assert!(earlier.stale);
        assert_eq!((earlier.first, earlier.repeat_days), (d("2026-12-24"), 6));
    }

    /// The models' inputs, by hand: first 2027-01-01, last 2027-01-29 (28 days = 4 weeks),
    /// observed 2027-03-01 (59 days = 8.43 weeks); two repeat days of $5.00 and $3.00 average
    /// $4.00.
    #[test]
    fn the_models_inputs_are_weeks_from_the_first_day_and_the_mean_in_major_units() {
        let s = buys(&[
            ("2027-01-01", 1000),
            ("2027-01-15", 500),
            ("2027-01-29", 300),
        ]);
        let b = s.for_bgnbd(d("2027-03-01"));
        assert_eq!((b.x, b.t_x), (2, 4.0));
        assert!((b.age - 59.0 / 7.0).abs() < 1e-12);
        assert_eq!(s.for_spend(100), Some(Spend { x: 2, mean: 4.0 }));
        assert_eq!(buys(&[("2027-01-01", 1000)]).for_spend(100), None);
    }

    /// Any sequence of purchases (in order, late, on the same days) and refunds (partial or
    /// full, of any purchase): a summary not marked stale equals a count of the whole history
    /// by hand, so does `recount`, and summaries carried on from a recount stay equal; the kept
    /// days never exceed their bound.
    #[test]
    fn a_summary_not_marked_stale_equals_a_recount_of_the_history() {
        use proptest::prelude::*;
        #[derive(Debug, Clone)]
        enum Op {
            Buy { day: i64, amount: i64 },
            Refund { pick: usize, percent: i64 },
        }
        let op = prop_oneof![
            3 => (0i64..60, 1i64..5_000).prop_map(|(day, amount)| Op::Buy { day, amount }),
            1 => (0usize..100, 1i64..=100).prop_map(|(pick, percent)| Op::Refund { pick, percent }),
        ];
        let start = d("2027-01-01");
        proptest!(ProptestConfig::with_cases(2_000), |(ops in proptest::collection::vec(op, 1..40))| {
            // The history: (day, amount, refunded so far).
            let mut history: Vec<(NaiveDate, i64, i64)> = Vec::new();
            let mut s: Option<PurchaseDays> = None;
            for op in ops {
                match op {
                    Op::Buy { day, amount } => {
                        let day = start + chrono::Duration::days(day);
                        s = Some(PurchaseDays::purchased(s.as_ref(), day, amount));
                        history.push((day, amount, 0));
                    }
                    Op::Refund { pick, percent } => {
                        let open: Vec<usize> =
                            (0..history.len()).filter(|&i| history[i].2 < history[i].1).collect();
                        let (Some(summary), false) = (s.as_ref(), open.is_empty()) else { continue };
                        let i = open[pick % open.len()];
                        let left = history[i].1 - history[i].2;
                        let amount = (left * percent / 100).max(1);
                        history[i].2 += amount;
                        let emptied = history[i].2 == history[i].1;
                        s = Some(summary.refunded(history[i].0, amount, emptied));
                    }
                }
                prop_assert!(s.as_ref().unwrap().recent.len() <= RECENT_DAYS);
                // As the nightly run does: a stale summary is recounted from the history, and
                // later purchases and refunds go on from the recount.
                if s.as_ref().unwrap().stale {
                    s = PurchaseDays::recount(history.iter().copied());
                }
                let summary = s.as_ref().unwrap();
                let first = history.iter().map(|h| h.0).min().unwrap();
                let open_days: std::collections::BTreeSet<NaiveDate> = history
                    .iter()
                    .filter(|h| h.0 > first && h.2 < h.1)
                    .map(|h| h.0)
                    .collect();
                let spend: i64 = history.iter().filter(|h| h.0 > first).map(|h| h.1 - h.2).sum();
                let last = open_days.iter().next_back().copied().unwrap_or(first);
                prop_assert_eq!(
                    (summary.first, summary.last, summary.repeat_days, summary.repeat_spend),
                    (first, last, open_days.len() as u32, spend),
                    "history {:?}", history
                );
            }
        });
    }

    /// Full (four kept days), the stored form stays short (about 60 of the member item's
    /// 1,024 bytes), and reads back, stale or not.
    #[test]
    fn the_stored_form_is_short_and_reads_back() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct On {
            #[serde(with = "stored")]
            ps: Option<PurchaseDays>,
        }
        let s = buys(&[
            ("2027-01-01", 1000),
            ("2027-01-15", 500),
            ("2027-02-15", 123456),
            ("2027-03-15", 500),
            ("2027-04-15", 500),
        ]);
        let v = serde_json::to_value(On {
            ps: Some(s.clone()),
        })
        .unwrap();
        assert_eq!(
            v["ps"],
            serde_json::json!([
                20819, 104, 4, 124956, -90, 1, 500, -59, 1, 123456, -31, 1, 500, 0, 1, 500
            ])
        );
        // Its DynamoDB size (61 bytes) is measured with the member item's (`table::item_size`).
        let text = v["ps"].to_string();
        assert!(text.len() <= 80, "{} characters: {text}", text.len());
        let stale = PurchaseDays { stale: true, ..s };
        for ps in [None, Some(stale)] {
            let on = On { ps };
            let back: On = serde_json::from_value(serde_json::to_value(&on).unwrap()).unwrap();
            assert_eq!(back, on);
        }
        for bad in [
            serde_json::json!([1, 2, 3]),
            serde_json::json!([1, 0, 0, 0, 5, 1]),
        ] {
            assert!(serde_json::from_value::<On>(serde_json::json!({ "ps": bad })).is_err());
        }
    }

    /// The recount of a history, by hand: refunds net, a fully refunded day is not a repeat
    /// day, the first day is kept while it is among the last four.
    #[test]
    fn a_recount_counts_open_days_after_the_first_and_their_net() {
        let h = [
            (d("2027-01-01"), 1000, 1000),
            (d("2027-01-05"), 500, 100),
            (d("2027-01-09"), 300, 300),
            (d("2027-01-09"), 200, 0),
            (d("2027-01-12"), 700, 700),
        ];
        let s = PurchaseDays::recount(h).unwrap();
        assert_eq!(
            (s.first, s.last, s.repeat_days, s.repeat_spend, s.stale),
            (d("2027-01-01"), d("2027-01-09"), 2, 600, false)
        );
        assert_eq!(
            s.recent,
            vec![
                Day {
                    day: d("2027-01-01"),
                    purchases: 0,
                    net: 0
                },
                Day {
                    day: d("2027-01-05"),
                    purchases: 1,
                    net: 400
                },
                Day {
                    day: d("2027-01-09"),
                    purchases: 1,
                    net: 200
                },
            ]
        );
        assert_eq!(PurchaseDays::recount([]), None);
    }
}
