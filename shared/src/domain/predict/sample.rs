//! The nightly fit's sample: which members it reads (at most `sample_size`, the same ones each
//! night: those whose id hashes lowest) and the four numbers it keeps of each. Parts of a run
//! each keep their own lowest, the finishing step merges them and fits. Pure.

use super::summary::PurchaseDays;
use super::{FitError, bgnbd, spend};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BinaryHeap;

/// A member's place in the sample order: 48 bits of SHA-256 of the id (fits a JSON integer).
pub fn sample_key(member_id: &str) -> u64 {
    let hex = crate::domain::digest::sha256_hex(&[b"fit-sample", member_id.as_bytes()]);
    u64::from_str_radix(&hex[..12], 16).unwrap_or(u64::MAX)
}

/// One sampled member, in days and minor units, stored as `[key, x, t_x, age, spend]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "[i64; 5]", try_from = "[i64; 5]")]
pub struct Row {
    pub key: u64,
    /// Repeat purchase days.
    pub x: u32,
    /// Days from the first purchase day to the last.
    pub t_x: u32,
    /// Days from the first purchase day to the observation day.
    pub age: u32,
    /// Net spend of the repeat days, minor units.
    pub spend: i64,
}

impl From<Row> for [i64; 5] {
    fn from(r: Row) -> Self {
        [
            r.key as i64,
            i64::from(r.x),
            i64::from(r.t_x),
            i64::from(r.age),
            r.spend,
        ]
    }
}

impl TryFrom<[i64; 5]> for Row {
    type Error = String;
    fn try_from([key, x, t_x, age, spend]: [i64; 5]) -> Result<Self, String> {
        let n = |v: i64| u32::try_from(v).map_err(|_| format!("sample row value {v}"));
        Ok(Row {
            key: u64::try_from(key).map_err(|_| format!("sample key {key}"))?,
            x: n(x)?,
            t_x: n(t_x)?,
            age: n(age)?,
            spend,
        })
    }
}

/// The most repeat buyers the spend model is fitted to (the lowest keys of the sample).
pub const SPEND_SAMPLE: usize = 20_000;

/// Rows a part keeps in one stored chunk (≈ 25 bytes each: well under an item's 400 KB).
pub const CHUNK_ROWS: usize = 8_000;

/// One stored chunk of a part's sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub rows: Vec<Row>,
    pub expires_at: i64,
}

/// What the last fit read, for the next night's parts: rows with a key at or above `below`
/// cannot be among the lowest `sample_size` (a quarter's headroom for growth), so the parts
/// keep only those below it; none while every purchasing member is in the sample.
pub fn next_bound(rows: &[Row], sample_size: usize) -> Option<u64> {
    (rows.len() >= sample_size && sample_size > 0).then(|| {
        rows[sample_size - 1]
            .key
            .saturating_add(rows[sample_size - 1].key / 4)
    })
}

impl Row {
    /// The member's row observed on `today`.
    pub fn of(key: u64, s: &PurchaseDays, today: NaiveDate) -> Row {
        let days = |to: NaiveDate| u32::try_from((to - s.first).num_days().max(0)).unwrap_or(0);
        Row {
            key,
            x: s.repeat_days,
            t_x: days(s.last),
            age: days(today.max(s.last)),
            spend: s.repeat_spend,
        }
    }

    fn frequency(&self) -> bgnbd::Summary {
        bgnbd::Summary {
            x: self.x,
            t_x: f64::from(self.t_x) / 7.0,
            age: f64::from(self.age) / 7.0,
        }
    }

    fn spend(&self, minor_units: u32) -> Option<spend::Spend> {
        (self.x > 0 && self.spend > 0).then(|| spend::Spend {
            x: self.x,
            mean: self.spend as f64 / f64::from(minor_units) / f64::from(self.x),
        })
    }
}

/// The rows with the lowest keys seen, at most `cap` of them.
#[derive(Debug, Clone)]
pub struct Lowest {
    cap: usize,
    heap: BinaryHeap<Row>,
}

impl Lowest {
    pub fn new(cap: usize) -> Self {
        Lowest {
            cap,
            heap: BinaryHeap::new(),
        }
    }

    pub fn offer(&mut self, row: Row) {
        if self.heap.len() < self.cap {
            self.heap.push(row);
        } else if self.heap.peek().is_some_and(|top| row.key < top.key) {
            self.heap.pop();
            self.heap.push(row);
        }
    }

    /// The rows, lowest key first.
    pub fn into_rows(self) -> Vec<Row> {
        self.heap.into_sorted_vec()
    }
}

/// A part's sampling: the lowest keys below the last fit's bound.
#[derive(Debug, Clone)]
pub struct Sampler {
    below: Option<u64>,
    lowest: Lowest,
}

impl Sampler {
    pub fn new(sample_size: usize, below: Option<u64>) -> Self {
        Sampler {
            below,
            lowest: Lowest::new(sample_size),
        }
    }

    /// Offers a purchasing member observed on `today`.
    pub fn offer(&mut self, member_id: &str, s: &PurchaseDays, today: NaiveDate) {
        let key = sample_key(member_id);
        if self.below.is_none_or(|b| key < b) {
            self.lowest.offer(Row::of(key, s, today));
        }
    }

    /// The kept rows in chunks of [`CHUNK_ROWS`], lowest key first.
    pub fn into_chunks(self, expires_at: i64) -> Vec<Chunk> {
        self.lowest
            .into_rows()
            .chunks(CHUNK_ROWS)
            .map(|rows| Chunk {
                rows: rows.to_vec(),
                expires_at,
            })
            .collect()
    }
}

/// What a night's fit found, kept per day: the analytics read the newest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub fitted_at: chrono::DateTime<chrono::Utc>,
    /// The observation day (the run's program date).
    pub as_of: NaiveDate,
    /// Members with a purchase summary in the run, and those the fit read.
    pub purchasing_members: u64,
    pub members_in_fit: u64,
    pub frequency: bgnbd::Params,
    pub standard_errors: Option<bgnbd::Params>,
    pub log_likelihood: f64,
    pub spend: Option<spend::Params>,
    /// Repeat buyers with a positive mean the spend model read.
    pub spend_members: u64,
    /// Wall-clock time of both fits, milliseconds.
    pub fit_ms: u64,
    /// Chunks of this night's sample kept for the backtest `horizon_days` on.
    #[serde(default)]
    pub snapshot_chunks: u32,
    /// The newest backtest as of this night (carried from night to night).
    #[serde(default)]
    pub backtest: Option<super::backtest::Backtest>,
}

/// One chunk of a night's merged sample, kept until the night that backtests it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub rows: Vec<Row>,
    pub expires_at: i64,
}

impl Report {
    /// The parameters it puts in force.
    pub fn fitted(&self) -> super::score::Fitted {
        super::score::Fitted {
            frequency: self.frequency,
            spend: self.spend,
            fitted_at: self.fitted_at,
        }
    }
}

/// Both models fitted to one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub frequency: bgnbd::Fit,
    /// None when too few repeat buyers with a positive mean (the scores then have no money).
    pub spend: Option<spend::Fit>,
}

/// Fits BG/NBD to every row and Gamma-Gamma to the repeat buyers with a positive mean
/// (`minor_units` to the major unit: the spend model is fitted in major units).
pub fn fit(rows: &[Row], minor_units: u32) -> Result<Fitted, FitError> {
    let summaries: Vec<bgnbd::Summary> = rows.iter().map(Row::frequency).collect();
    let frequency = bgnbd::fit(&summaries)?;
    // Gamma-Gamma's likelihood is a sum over members (amounts do not group): its first
    // SPEND_SAMPLE repeat buyers by key bound its cost.
    let spends: Vec<spend::Spend> = rows
        .iter()
        .filter_map(|r| r.spend(minor_units))
        .take(SPEND_SAMPLE)
        .collect();
    Ok(Fitted {
        frequency,
        spend: spend::fit(&spends).ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: u64) -> Row {
        Row {
            key,
            x: 0,
            t_x: 0,
            age: 1,
            spend: 0,
        }
    }

    #[test]
    fn lowest_keeps_the_cap_lowest_keys_whatever_the_order() {
        let keys = [50, 3, 99, 7, 1, 42, 8, 2];
        let mut l = Lowest::new(3);
        for k in keys {
            l.offer(row(k));
        }
        let kept: Vec<u64> = l.into_rows().iter().map(|r| r.key).collect();
        assert_eq!(kept, vec![1, 2, 3]);
        // Split over two parts and merged: the same three.
        let (mut a, mut b) = (Lowest::new(3), Lowest::new(3));
        for (i, k) in keys.into_iter().enumerate() {
            if i % 2 == 0 { &mut a } else { &mut b }.offer(row(k));
        }
        let mut merged = Lowest::new(3);
        for r in a.into_rows().into_iter().chain(b.into_rows()) {
            merged.offer(r);
        }
        assert_eq!(
            merged.into_rows().iter().map(|r| r.key).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn a_row_is_stored_as_five_integers_and_the_bound_leaves_headroom() {
        let r = Row {
            key: 123,
            x: 4,
            t_x: 30,
            age: 99,
            spend: 2500,
        };
        let v = serde_json::to_value(r).unwrap();
        assert_eq!(v, serde_json::json!([123, 4, 30, 99, 2500]));
        assert_eq!(serde_json::from_value::<Row>(v).unwrap(), r);
        assert!(serde_json::from_value::<Row>(serde_json::json!([1, -1, 0, 0, 0])).is_err());
        let rows: Vec<Row> = [100, 200, 400].into_iter().map(row).collect();
        assert_eq!(next_bound(&rows, 2), Some(250));
        assert_eq!(next_bound(&rows, 4), None);
    }

    #[test]
    fn the_sample_key_is_stable_and_spread() {
        assert_eq!(sample_key("m-1"), sample_key("m-1"));
        assert_ne!(sample_key("m-1"), sample_key("m-2"));
        assert!(sample_key("m-1") < 1 << 48);
        let below_half = (0..1000)
            .filter(|i| sample_key(&format!("m-{i}")) < 1 << 47)
            .count();
        assert!((430..570).contains(&below_half), "{below_half}");
    }

    /// First day 2027-01-01, last 2027-01-29, observed 2027-03-01: t_x 28 days (4 weeks), age
    /// 59 days; two repeat days of $5.00 and $3.00 average $4.00.
    #[test]
    fn a_row_is_days_and_minor_units_and_reads_as_weeks_and_major_units() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let mut s = PurchaseDays::first_purchase(d("2027-01-01"), 1000);
        s = PurchaseDays::purchased(Some(&s), d("2027-01-15"), 500);
        s = PurchaseDays::purchased(Some(&s), d("2027-01-29"), 300);
        let r = Row::of(9, &s, d("2027-03-01"));
        assert_eq!((r.x, r.t_x, r.age, r.spend), (2, 28, 59, 800));
        let f = r.frequency();
        assert_eq!((f.x, f.t_x), (2, 4.0));
        assert!((f.age - 59.0 / 7.0).abs() < 1e-12);
        assert_eq!(r.spend(100), Some(spend::Spend { x: 2, mean: 4.0 }));
        // Observed before the last day (a purchase dated ahead): age is never below t_x.
        assert_eq!(Row::of(9, &s, d("2027-01-20")).age, 28);
    }
}
