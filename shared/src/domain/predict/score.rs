//! A member's scores from the fitted models and their purchase summary: the numbers an operator
//! sees and the churn risk segments are cut from. Pure: the caller passes the day and the
//! program's horizon.

use super::bgnbd;
use super::spend;
use super::summary::PurchaseDays;
use chrono::NaiveDate;

/// Where `churn_probability` is cut into the three risk groups (the program's rules carry
/// them; these are the defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChurnThresholds {
    /// At or above: `likely`.
    pub likely: f64,
    /// At or above (and below `likely`): `possible`; below: `unlikely`.
    pub possible: f64,
}

impl Default for ChurnThresholds {
    fn default() -> Self {
        ChurnThresholds {
            likely: 0.7,
            possible: 0.4,
        }
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ChurnRisk {
    Likely,
    Possible,
    Unlikely,
}

impl ChurnRisk {
    pub const ALL: [ChurnRisk; 3] = [ChurnRisk::Likely, ChurnRisk::Possible, ChurnRisk::Unlikely];
    pub fn as_str(self) -> &'static str {
        match self {
            ChurnRisk::Likely => "likely",
            ChurnRisk::Possible => "possible",
            ChurnRisk::Unlikely => "unlikely",
        }
    }
}

impl ChurnThresholds {
    pub fn risk(&self, churn_probability: f64) -> ChurnRisk {
        if churn_probability >= self.likely {
            ChurnRisk::Likely
        } else if churn_probability >= self.possible {
            ChurnRisk::Possible
        } else {
            ChurnRisk::Unlikely
        }
    }
}

/// One member's scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub p_alive: f64,
    /// Expected purchases in the next horizon.
    pub expected_purchases: f64,
    /// P(no purchase in the next horizon).
    pub churn_probability: f64,
    /// Gamma-Gamma's expected amount of the next purchase, minor units; None without a spend fit.
    pub expected_spend_per_purchase: Option<i64>,
    /// Expected purchases in the next 365 days × the expected amount, minor units, rounded half
    /// away from zero, undiscounted; None without a spend fit.
    pub clv: Option<i64>,
    pub churn_risk: ChurnRisk,
}

/// The parameters the last nightly fit left in force: kept on the segment state every purchase
/// reads, so a purchase re-scores its member without another read.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fitted {
    pub frequency: bgnbd::Params,
    pub spend: Option<spend::Params>,
    pub fitted_at: chrono::DateTime<chrono::Utc>,
}

/// What the scores need besides the member.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    pub frequency: bgnbd::Params,
    pub spend: Option<spend::Params>,
    pub horizon_days: u32,
    pub thresholds: ChurnThresholds,
    /// Minor units in the major one (100 for dollars): the spend model is fitted in major units.
    pub minor_units: u32,
}

impl Model {
    /// The model of `fitted` under the program's horizon and thresholds.
    pub fn of(
        fitted: &Fitted,
        horizon_days: u32,
        thresholds: ChurnThresholds,
        minor_units: u32,
    ) -> Self {
        Model {
            frequency: fitted.frequency,
            spend: fitted.spend,
            horizon_days,
            thresholds,
            minor_units,
        }
    }

    /// The member's scores on `today`.
    pub fn score(&self, member: &PurchaseDays, today: NaiveDate) -> Scores {
        let s = member.for_bgnbd(today);
        let horizon = f64::from(self.horizon_days) / 7.0;
        let churn_probability = self.frequency.churn_probability(&s, horizon);
        let minor = f64::from(self.minor_units);
        let per_purchase = self
            .spend
            .map(|p| p.expected_spend(member.for_spend(self.minor_units).as_ref()) * minor);
        let year = self.frequency.expected_purchases(&s, 365.0 / 7.0);
        Scores {
            p_alive: self.frequency.p_alive(&s),
            expected_purchases: self.frequency.expected_purchases(&s, horizon),
            churn_probability,
            expected_spend_per_purchase: per_purchase.map(|v| v.round() as i64),
            clv: per_purchase.map(|v| (year * v).round() as i64),
            churn_risk: self.thresholds.risk(churn_probability),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn churn_risk_cuts_at_each_threshold_inclusive_from_below() {
        let t = ChurnThresholds::default();
        for (p, want) in [
            (0.0, ChurnRisk::Unlikely),
            (0.3999, ChurnRisk::Unlikely),
            (0.4, ChurnRisk::Possible),
            (0.6999, ChurnRisk::Possible),
            (0.7, ChurnRisk::Likely),
            (1.0, ChurnRisk::Likely),
        ] {
            assert_eq!(t.risk(p), want, "{p}");
        }
    }

    /// CDNOW customer 1 (first purchase 1997-01-01; repeat days 1997-01-18 $29.73 and
    /// 1997-08-02 $14.96; observed 1997-09-30) under the papers' parameters and a 39-week
    /// (273-day) horizon, each number from the equations by hand or by `lifetimes`:
    /// P(alive) 0.72658 and churn 0.44537 (the hand values of `bgnbd`'s tests), 39 weeks
    /// 1.226028 expected purchases (lifetimes), the next purchase
    /// (15.44 + 2 × 22.345) × 6.25 / (6.25 × 2 + 3.74 − 1) = $24.66 (2,466 cents, by hand), and
    /// CLV = E[purchases in 365/7 weeks] × 2,465.96 cents (below). The hand values use the published
    /// summary's t_x = 30.43 and T = 38.86; from days it is 213/7 = 30.4286 and 272/7 = 38.8571,
    /// so they agree to 2e-4, not closer.
    #[test]
    fn scores_of_cdnow_customer_one_match_the_equations() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let mut m = PurchaseDays::first_purchase(d("1997-01-01"), 2933);
        m = PurchaseDays::purchased(Some(&m), d("1997-01-18"), 2973);
        m = PurchaseDays::purchased(Some(&m), d("1997-08-02"), 1496);
        let model = Model {
            frequency: bgnbd::Params {
                r: 0.243,
                alpha: 4.414,
                a: 0.793,
                b: 2.426,
            },
            spend: Some(spend::Params {
                p: 6.25,
                q: 3.74,
                gamma: 15.44,
            }),
            horizon_days: 273,
            thresholds: ChurnThresholds::default(),
            minor_units: 100,
        };
        let s = model.score(&m, d("1997-09-30"));
        assert!((s.p_alive - 0.72658).abs() < 2e-4, "{s:?}");
        assert!((s.churn_probability - 0.44537).abs() < 2e-4, "{s:?}");
        assert!((s.expected_purchases - 1.226028).abs() < 2e-4, "{s:?}");
        assert_eq!(s.churn_risk, ChurnRisk::Possible);
        // (15.44 + 44.69) × 6.25 / 15.24 = 24.6596 dollars.
        assert_eq!(s.expected_spend_per_purchase, Some(2466));
        // lifetimes: 1.5623326 expected purchases in 365/7 weeks for x = 2, t_x = 213/7,
        // T = 272/7; × 2,465.96 cents = 3,852.65, rounded 3,853.
        assert_eq!(s.clv, Some(3853));
        // No spend fit: no amounts.
        let none = Model {
            spend: None,
            ..model
        }
        .score(&m, d("1997-09-30"));
        assert_eq!((none.expected_spend_per_purchase, none.clv), (None, None));
    }
}
