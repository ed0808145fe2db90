//! The backtest: what the model of one night predicted for its sampled members over the next
//! `horizon_days`, against what those members did, beside a naive baseline (each member's past
//! rate carried forward). Pure: the caller hands it both nights' samples and the model.

use super::bgnbd;
use super::sample::Row;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::ToSchema;

/// How one predictor did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Scorecard {
    /// Σ predicted repeat purchase days over the horizon.
    pub predicted_purchases: f64,
    /// Mean absolute error of the per-member prediction.
    pub mean_absolute_error: f64,
    /// The area under the ROC curve of the predicted P(no purchase) for "made no purchase"
    /// (0.5 is chance); null when everyone, or no one, bought.
    pub auc: Option<f64>,
    /// Predicted P(no purchase) in ten bins of width 0.1, with the share that made none.
    pub calibration: Vec<CalibrationBin>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CalibrationBin {
    /// The bin `[from, to)` (the last includes 1).
    pub from: f64,
    pub to: f64,
    pub members: u64,
    /// Mean predicted P(no purchase) of its members (null when empty).
    pub predicted: Option<f64>,
    /// Share of its members who made no purchase (null when empty).
    pub observed: Option<f64>,
}

/// A night's predictions checked `horizon_days` later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Backtest {
    /// The night whose model and sample are checked.
    pub snapshot_day: NaiveDate,
    /// The night that checked them (`snapshot_day` + `horizon_days`).
    pub checked_on: NaiveDate,
    pub horizon_days: u32,
    /// Sampled members found in both nights' samples, and those of the first no longer in the
    /// second (erased, or moved out of the sample as the membership grew).
    pub members: u64,
    pub unmatched: u64,
    /// Repeat purchase days they actually made in the horizon, and how many made none.
    pub actual_purchases: u64,
    pub without_purchase: u64,
    pub model: Scorecard,
    pub baseline: Scorecard,
}

/// One member's outcome under both predictors.
struct Outcome {
    actual: f64,
    none: bool,
    model: (f64, f64),
    baseline: (f64, f64),
}

/// Checks the model `params` of the night `then_day` (whose sample was `then`) against `now`,
/// the sample `horizon_days` later: a member's actual purchases are the repeat days they added.
pub fn backtest(
    params: &bgnbd::Params,
    then: &[Row],
    now: &[Row],
    then_day: NaiveDate,
    horizon_days: u32,
) -> Backtest {
    let later: HashMap<u64, &Row> = now.iter().map(|r| (r.key, r)).collect();
    let h = f64::from(horizon_days) / 7.0;
    let mut outcomes = Vec::new();
    let mut unmatched = 0;
    for r in then {
        let Some(l) = later.get(&r.key) else {
            unmatched += 1;
            continue;
        };
        let s = bgnbd::Summary {
            x: r.x,
            t_x: f64::from(r.t_x) / 7.0,
            age: f64::from(r.age) / 7.0,
        };
        let actual = f64::from(l.x.saturating_sub(r.x));
        let rate = if s.age > 0.0 {
            f64::from(r.x) / s.age
        } else {
            0.0
        };
        outcomes.push(Outcome {
            actual,
            none: actual == 0.0,
            model: (
                params.expected_purchases(&s, h),
                params.churn_probability(&s, h),
            ),
            baseline: (rate * h, (-rate * h).exp()),
        });
    }
    let card = |pick: fn(&Outcome) -> (f64, f64)| scorecard(&outcomes, pick);
    Backtest {
        snapshot_day: then_day,
        checked_on: then_day + chrono::Duration::days(i64::from(horizon_days)),
        horizon_days,
        members: outcomes.len() as u64,
        unmatched,
        actual_purchases: outcomes.iter().map(|o| o.actual as u64).sum(),
        without_purchase: outcomes.iter().filter(|o| o.none).count() as u64,
        model: card(|o| o.model),
        baseline: card(|o| o.baseline),
    }
}

fn scorecard(outcomes: &[Outcome], pick: fn(&Outcome) -> (f64, f64)) -> Scorecard {
    let n = outcomes.len().max(1) as f64;
    let mut bins: Vec<(u64, f64, u64)> = vec![(0, 0.0, 0); 10];
    for o in outcomes {
        let p = pick(o).1;
        let b = ((p * 10.0).floor() as usize).min(9);
        bins[b].0 += 1;
        bins[b].1 += p;
        bins[b].2 += u64::from(o.none);
    }
    let scored: Vec<(f64, bool)> = outcomes.iter().map(|o| (pick(o).1, o.none)).collect();
    Scorecard {
        predicted_purchases: outcomes.iter().map(|o| pick(o).0).sum(),
        mean_absolute_error: outcomes
            .iter()
            .map(|o| (pick(o).0 - o.actual).abs())
            .sum::<f64>()
            / n,
        auc: auc(&scored),
        calibration: bins
            .into_iter()
            .enumerate()
            .map(|(k, (members, sum, none))| CalibrationBin {
                from: k as f64 / 10.0,
                to: (k + 1) as f64 / 10.0,
                members,
                predicted: (members > 0).then(|| sum / members as f64),
                observed: (members > 0).then(|| none as f64 / members as f64),
            })
            .collect(),
    }
}

/// The Mann-Whitney form of the AUC: the chance a member who made no purchase scores above one
/// who did, ties counting half (ranks averaged over ties).
pub fn auc(scored: &[(f64, bool)]) -> Option<f64> {
    let positives = scored.iter().filter(|s| s.1).count() as f64;
    let negatives = scored.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    let mut order: Vec<&(f64, bool)> = scored.iter().collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && order[j + 1].0 == order[i].0 {
            j += 1;
        }
        // Ranks i+1 ..= j+1, averaged.
        let rank = (i + j + 2) as f64 / 2.0;
        rank_sum += rank * order[i..=j].iter().filter(|s| s.1).count() as f64;
        i = j + 1;
    }
    Some((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worked by hand: scores 0.9 (none), 0.8 (bought), 0.8 (none), 0.3 (bought). Pairs (none,
    /// bought): (0.9, 0.8) 1, (0.9, 0.3) 1, (0.8, 0.8) ½, (0.8, 0.3) 1: 3.5 of 4 = 0.875.
    #[test]
    fn auc_counts_pairs_ordered_right_and_ties_as_half() {
        let s = [(0.9, true), (0.8, false), (0.8, true), (0.3, false)];
        assert_eq!(auc(&s), Some(0.875));
        assert_eq!(auc(&[(0.1, true), (0.9, false)]), Some(0.0));
        assert_eq!(auc(&[(0.5, true), (0.5, false)]), Some(0.5));
        assert_eq!(auc(&[(0.5, true)]), None);
    }

    fn row(key: u64, x: u32, t_x: u32, age: u32) -> Row {
        Row {
            key,
            x,
            t_x,
            age,
            spend: 0,
        }
    }

    /// Three members 90 days on: one added two repeat days, one none, one gone from the
    /// sample. The baseline carries x / T forward: member 1 bought 4 times in 28 weeks, so
    /// 4/28 × 90/7 = 1.8367 expected; member 2 once in 14 weeks: 0.9184.
    #[test]
    fn outcomes_are_the_repeat_days_added_and_the_baseline_the_past_rate() {
        let p = bgnbd::Params {
            r: 0.243,
            alpha: 4.414,
            a: 0.793,
            b: 2.426,
        };
        let day: NaiveDate = "2027-06-01".parse().unwrap();
        let then = [row(1, 4, 150, 196), row(2, 1, 20, 98), row(3, 0, 0, 10)];
        let now = [row(1, 6, 280, 286), row(2, 1, 20, 188)];
        let b = backtest(&p, &then, &now, day, 90);
        assert_eq!((b.members, b.unmatched), (2, 1));
        assert_eq!((b.actual_purchases, b.without_purchase), (2, 1));
        assert_eq!(b.checked_on, "2027-08-30".parse().unwrap());
        let base = 4.0 / 28.0 * 90.0 / 7.0 + 1.0 / 14.0 * 90.0 / 7.0;
        assert!((b.baseline.predicted_purchases - base).abs() < 1e-12);
        let mae = ((4.0 / 28.0 * 90.0 / 7.0 - 2.0_f64).abs() + 1.0 / 14.0 * 90.0 / 7.0) / 2.0;
        assert!((b.baseline.mean_absolute_error - mae).abs() < 1e-12);
        // Member 2 made none and its P(no purchase) under the baseline, e^(−0.9184) = 0.399,
        // is above member 1's e^(−1.8367) = 0.159: the baseline orders them right.
        assert_eq!(b.baseline.auc, Some(1.0));
        let bins: Vec<u64> = b.baseline.calibration.iter().map(|c| c.members).collect();
        assert_eq!(bins, vec![0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(b.baseline.calibration[3].observed, Some(1.0));
        assert_eq!(
            b.model.calibration.iter().map(|c| c.members).sum::<u64>(),
            2
        );
        let expected: f64 = then[..2]
            .iter()
            .map(|r| {
                let s = bgnbd::Summary {
                    x: r.x,
                    t_x: f64::from(r.t_x) / 7.0,
                    age: f64::from(r.age) / 7.0,
                };
                p.expected_purchases(&s, 90.0 / 7.0)
            })
            .sum();
        assert!((b.model.predicted_purchases - expected).abs() < 1e-12);
    }
}
