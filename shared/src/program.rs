//! Program rules (DESIGN.md "Program rules"): a JSON document where every key may be omitted.
//! Parsed and validated once at start-up; an invalid document stops start-up with a message that
//! names the key.

use crate::domain::earning::{EarnRate, Multiplier};
use crate::domain::lots::Expiry;
use crate::domain::referral::{Milestone, OnFraud, ReferralRules};
use crate::domain::segment::{CutPoints, LifecycleRules, RfmRules, SegmentRules};
use crate::domain::tier::{TierRule, TierTable};
use crate::domain::{Currency, Points, RewardId, TimeZoneName};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("program configuration is not valid: {0}")]
    Invalid(String),
    #[error("cannot read program file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub currency: Currency,
    pub timezone: chrono_tz::Tz,
    pub earn: EarnRate,
    pub tiers: TierTable,
    pub qualifying_window_months: u32,
    pub tier_validity_months: u32,
    pub birthday: BirthdayRules,
    pub purchase_max_age_days: u32,
    pub purchase_max_future_seconds: u32,
    pub voucher_validity_days: u32,
    pub idempotency_retention_hours: u32,
    /// The most points (either way) a support operator may adjust in one request.
    pub support_adjustment_limit: u32,
    /// What 100 points are worth when redeemed, in minor units of `currency`: the money value
    /// the console shows beside points outstanding (a liability figure, not a rate of earning).
    pub point_value_per_100: u32,
    /// Whose national numbering a phone typed without `+` follows (ISO 3166-1 alpha-2); none:
    /// phones must be international.
    pub default_country: Option<crate::domain::Country>,
    pub segments: SegmentRules,
    pub points: PointsRules,
    pub referral: ReferralRules,
    pub predictions: PredictionRules,
}

/// The prediction models' rules (DESIGN.md "Predictions").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PredictionRules {
    /// The most members the nightly fit reads (a fixed sample by a hash of the id beyond).
    pub sample_size: u32,
    /// The horizon of `expected_purchases` and `churn_probability`, days.
    pub horizon_days: u32,
    pub churn: crate::domain::predict::score::ChurnThresholds,
}

/// When purchase points become spendable and when points expire (DESIGN.md "Points lots").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointsRules {
    pub pending_days: u32,
    pub expiry: Expiry,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BirthdayRules {
    pub min_days_on_file: u32,
    pub catch_up_days: u32,
    pub reward_id: Option<RewardId>,
}

impl Default for Program {
    fn default() -> Self {
        Program::from_json("{}").expect("defaults are valid")
    }
}

// The document as written. `deny_unknown_fields` makes a misspelt key fail start-up instead of
// silently keeping a default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Doc {
    currency: String,
    timezone: String,
    earn: EarnDoc,
    tiers: TiersDoc,
    qualifying_window_months: u32,
    tier_validity_months: u32,
    birthday: BirthdayDoc,
    purchase: PurchaseDoc,
    voucher_validity_days: u32,
    idempotency_retention_hours: u32,
    support_adjustment_limit: u32,
    point_value_per_100: u32,
    default_country: Option<String>,
    lifecycle: LifecycleDoc,
    rfm: RfmDoc,
    points: PointsDoc,
    referral: ReferralDoc,
    predictions: PredictionsDoc,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct PredictionsDoc {
    sample_size: u32,
    horizon_days: u32,
    churn: ChurnDoc,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ChurnDoc {
    likely: f64,
    possible: f64,
}
impl Default for PredictionsDoc {
    fn default() -> Self {
        PredictionsDoc {
            sample_size: 100_000,
            horizon_days: 90,
            churn: ChurnDoc::default(),
        }
    }
}
impl Default for ChurnDoc {
    fn default() -> Self {
        let t = crate::domain::predict::score::ChurnThresholds::default();
        ChurnDoc {
            likely: t.likely,
            possible: t.possible,
        }
    }
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ReferralDoc {
    enabled: bool,
    apply_within_days: u32,
    qualify_within_days: u32,
    min_spend: i64,
    referrer_points: i64,
    referee_points: i64,
    milestone: Option<MilestoneDoc>,
    monthly_cap: u32,
    total_cap: u32,
    on_fraud: OnFraud,
    velocity_per_hour: u32,
    unknown_codes_per_hour: u32,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MilestoneDoc {
    every: u32,
    points: i64,
}
impl Default for ReferralDoc {
    fn default() -> Self {
        ReferralDoc {
            enabled: true,
            apply_within_days: 30,
            qualify_within_days: 30,
            min_spend: 2000,
            referrer_points: 500,
            referee_points: 200,
            milestone: Some(MilestoneDoc {
                every: 3,
                points: 1000,
            }),
            monthly_cap: 10,
            total_cap: 100,
            on_fraud: OnFraud::Review,
            velocity_per_hour: 5,
            unknown_codes_per_hour: 20,
        }
    }
}
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct PointsDoc {
    pending_days: u32,
    expiry: ExpiryDoc,
}
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, tag = "policy", rename_all = "snake_case")]
enum ExpiryDoc {
    #[default]
    Never,
    Rolling {
        months: u32,
    },
    Inactivity {
        days: u32,
    },
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LifecycleDoc {
    new_days: u32,
    dormant_after_days: u32,
    churned_after_days: u32,
    reactivated_days: u32,
}
impl Default for LifecycleDoc {
    fn default() -> Self {
        LifecycleDoc {
            new_days: 30,
            dormant_after_days: 90,
            churned_after_days: 180,
            reactivated_days: 30,
        }
    }
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RfmDoc {
    min_members_for_quantiles: u64,
    fixed: FixedCutsDoc,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FixedCutsDoc {
    r_days: [i64; 4],
    f: [i64; 4],
    m: [i64; 4],
}
impl Default for RfmDoc {
    fn default() -> Self {
        RfmDoc {
            min_members_for_quantiles: 100,
            fixed: FixedCutsDoc::default(),
        }
    }
}
impl Default for FixedCutsDoc {
    fn default() -> Self {
        FixedCutsDoc {
            r_days: [180, 90, 60, 30],
            f: [2, 3, 5, 8],
            m: [5000, 10000, 25000, 50000],
        }
    }
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct EarnDoc {
    points: i64,
    per_minor_units: i64,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TiersDoc {
    silver: TierDoc,
    gold: TierDoc,
    diamond: TierDoc,
}
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct TierDoc {
    threshold: Option<i64>,
    multiplier: Option<Multiplier>,
    birthday_points: Option<i64>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct BirthdayDoc {
    min_days_on_file: u32,
    catch_up_days: u32,
    reward_id: Option<RewardId>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct PurchaseDoc {
    max_age_days: u32,
    max_future_seconds: u32,
}

impl Default for Doc {
    fn default() -> Self {
        Doc {
            currency: "USD".into(),
            timezone: "UTC".into(),
            earn: EarnDoc::default(),
            tiers: TiersDoc::default(),
            qualifying_window_months: 12,
            tier_validity_months: 12,
            birthday: BirthdayDoc::default(),
            purchase: PurchaseDoc::default(),
            voucher_validity_days: 90,
            idempotency_retention_hours: 24,
            support_adjustment_limit: 1000,
            point_value_per_100: 100,
            default_country: None,
            lifecycle: LifecycleDoc::default(),
            rfm: RfmDoc::default(),
            points: PointsDoc::default(),
            referral: ReferralDoc::default(),
            predictions: PredictionsDoc::default(),
        }
    }
}
impl Default for EarnDoc {
    fn default() -> Self {
        EarnDoc {
            points: 1,
            per_minor_units: 100,
        }
    }
}
impl Default for TiersDoc {
    fn default() -> Self {
        let t = |threshold| TierDoc {
            threshold: Some(threshold),
            multiplier: None,
            birthday_points: None,
        };
        TiersDoc {
            silver: t(0),
            gold: t(100_000),
            diamond: t(500_000),
        }
    }
}
impl Default for BirthdayDoc {
    fn default() -> Self {
        BirthdayDoc {
            min_days_on_file: 30,
            catch_up_days: 3,
            reward_id: None,
        }
    }
}
impl Default for PurchaseDoc {
    fn default() -> Self {
        PurchaseDoc {
            max_age_days: 90,
            max_future_seconds: 300,
        }
    }
}

fn invalid(msg: impl Into<String>) -> ProgramError {
    ProgramError::Invalid(msg.into())
}

fn referral_rules(d: &ReferralDoc) -> Result<ReferralRules, ProgramError> {
    // A referee's member item carries the qualifying deadline while it is open: bounded windows
    // keep a referred member's history short while it does (the item stays under 1 KB).
    for (key, v, range) in [
        (
            "referral.apply_within_days",
            i64::from(d.apply_within_days),
            0..=90,
        ),
        (
            "referral.qualify_within_days",
            i64::from(d.qualify_within_days),
            0..=90,
        ),
        (
            "referral.min_spend",
            d.min_spend,
            0..=crate::domain::money::MAX_AMOUNT_MINOR,
        ),
        ("referral.referrer_points", d.referrer_points, 0..=1_000_000),
        ("referral.referee_points", d.referee_points, 0..=1_000_000),
        ("referral.monthly_cap", i64::from(d.monthly_cap), 0..=10_000),
        ("referral.total_cap", i64::from(d.total_cap), 0..=1_000_000),
        (
            "referral.velocity_per_hour",
            i64::from(d.velocity_per_hour),
            1..=1000,
        ),
        (
            "referral.unknown_codes_per_hour",
            i64::from(d.unknown_codes_per_hour),
            1..=3600,
        ),
    ] {
        if !range.contains(&v) {
            return Err(invalid(format!(
                "{key} must be between {} and {}, got {v}",
                range.start(),
                range.end()
            )));
        }
    }
    let milestone = match &d.milestone {
        None => None,
        Some(m) if (2..=1000).contains(&m.every) && (1..=1_000_000).contains(&m.points) => {
            Some(Milestone {
                every: m.every,
                points: Points(m.points),
            })
        }
        Some(m) => {
            return Err(invalid(format!(
                "referral.milestone needs every between 2 and 1000 and points between 1 and \
                 1000000, got every {} and points {}",
                m.every, m.points
            )));
        }
    };
    Ok(ReferralRules {
        enabled: d.enabled,
        apply_within_days: d.apply_within_days,
        qualify_within_days: d.qualify_within_days,
        min_spend: d.min_spend,
        referrer_points: Points(d.referrer_points),
        referee_points: Points(d.referee_points),
        milestone,
        monthly_cap: d.monthly_cap,
        total_cap: d.total_cap,
        on_fraud: d.on_fraud,
        velocity_per_hour: d.velocity_per_hour,
        unknown_codes_per_hour: d.unknown_codes_per_hour,
    })
}

fn segment_rules(l: &LifecycleDoc, r: &RfmDoc) -> Result<SegmentRules, ProgramError> {
    for (key, v) in [
        ("lifecycle.new_days", l.new_days),
        ("lifecycle.dormant_after_days", l.dormant_after_days),
        ("lifecycle.churned_after_days", l.churned_after_days),
        ("lifecycle.reactivated_days", l.reactivated_days),
    ] {
        if !(1..=3650).contains(&v) {
            return Err(invalid(format!(
                "{key} must be between 1 and 3650, got {v}"
            )));
        }
    }
    if l.dormant_after_days >= l.churned_after_days {
        return Err(invalid(
            "lifecycle.dormant_after_days must be less than lifecycle.churned_after_days",
        ));
    }
    if !(1..=1_000_000).contains(&r.min_members_for_quantiles) {
        return Err(invalid(
            "rfm.min_members_for_quantiles must be between 1 and 1000000",
        ));
    }
    let f = &r.fixed;
    if !f.r_days.windows(2).all(|w| w[0] > w[1]) || f.r_days[3] < 0 {
        return Err(invalid(
            "rfm.fixed.r_days must decrease (e.g. [180, 90, 60, 30]) and be at least 0",
        ));
    }
    for (key, cuts) in [("rfm.fixed.f", f.f), ("rfm.fixed.m", f.m)] {
        if !cuts.windows(2).all(|w| w[0] < w[1]) || cuts[0] < 1 {
            return Err(invalid(format!(
                "{key} must increase and start at 1 or more"
            )));
        }
    }
    Ok(SegmentRules {
        lifecycle: LifecycleRules {
            new_days: l.new_days,
            dormant_after_days: l.dormant_after_days,
            churned_after_days: l.churned_after_days,
            reactivated_days: l.reactivated_days,
        },
        rfm: RfmRules {
            min_members_for_quantiles: r.min_members_for_quantiles,
            fixed: CutPoints {
                r: f.r_days,
                f: f.f,
                m: f.m,
            },
        },
    })
}

fn prediction_rules(d: &PredictionsDoc) -> Result<PredictionRules, ProgramError> {
    if !(1_000..=1_000_000).contains(&d.sample_size) {
        return Err(invalid(format!(
            "predictions.sample_size must be between 1000 and 1000000, got {}",
            d.sample_size
        )));
    }
    if !(7..=365).contains(&d.horizon_days) {
        return Err(invalid(format!(
            "predictions.horizon_days must be between 7 and 365, got {}",
            d.horizon_days
        )));
    }
    let c = &d.churn;
    if !(0.0 < c.possible && c.possible < c.likely && c.likely < 1.0) {
        return Err(invalid(format!(
            "predictions.churn needs 0 < possible < likely < 1, got possible {} and likely {}",
            c.possible, c.likely
        )));
    }
    Ok(PredictionRules {
        sample_size: d.sample_size,
        horizon_days: d.horizon_days,
        churn: crate::domain::predict::score::ChurnThresholds {
            likely: c.likely,
            possible: c.possible,
        },
    })
}

impl Program {
    pub fn from_json(text: &str) -> Result<Program, ProgramError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let doc: Doc = serde_path_to_error::deserialize(de)
            .map_err(|e| invalid(format!("at `{}`: {}", e.path(), e.inner())))?;
        Program::from_doc(doc)
    }

    /// Reads `LOYALTY_PROGRAM` (JSON text) or `LOYALTY_PROGRAM_FILE` (a path); defaults when
    /// neither is set.
    pub fn from_env() -> Result<Program, ProgramError> {
        if let Ok(text) = std::env::var("LOYALTY_PROGRAM") {
            return Program::from_json(&text);
        }
        if let Ok(path) = std::env::var("LOYALTY_PROGRAM_FILE") {
            return Program::from_file(&path);
        }
        Ok(Program::default())
    }

    pub fn from_file(path: &str) -> Result<Program, ProgramError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProgramError::Read {
            path: path.to_owned(),
            source,
        })?;
        if text.trim().is_empty() {
            return Err(invalid(format!(
                "program file {path} is empty (give a JSON object; {{}} for the defaults)"
            )));
        }
        Program::from_json(&text).map_err(|e| match e {
            ProgramError::Invalid(why) => invalid(format!("program file {path}: {why}")),
            other => other,
        })
    }

    fn from_doc(doc: Doc) -> Result<Program, ProgramError> {
        let currency =
            Currency::parse(&doc.currency).map_err(|e| invalid(format!("currency: {e}")))?;
        let timezone = TimeZoneName::parse(&doc.timezone)
            .map_err(|e| invalid(format!("timezone: {e}")))?
            .0;
        if doc.earn.points < 0 || doc.earn.points > 1_000_000 {
            return Err(invalid("earn.points must be between 0 and 1000000"));
        }
        if doc.earn.per_minor_units < 1 || doc.earn.per_minor_units > 1_000_000_000 {
            return Err(invalid(
                "earn.per_minor_units must be between 1 and 1000000000",
            ));
        }
        let defaults = [(0, 1000, 100), (100_000, 1500, 300), (500_000, 2000, 1000)];
        let mut rules = Vec::new();
        for ((name, d), (dt, dm, db)) in [
            ("silver", &doc.tiers.silver),
            ("gold", &doc.tiers.gold),
            ("diamond", &doc.tiers.diamond),
        ]
        .into_iter()
        .zip(defaults)
        {
            let rule = TierRule {
                threshold: d.threshold.unwrap_or(dt),
                multiplier: d
                    .multiplier
                    .unwrap_or(Multiplier::from_thousandths(dm).expect("default")),
                birthday_points: Points(d.birthday_points.unwrap_or(db)),
            };
            if rule.threshold < 0 || rule.threshold > crate::domain::money::MAX_AMOUNT_MINOR {
                return Err(invalid(format!(
                    "tiers.{name}.threshold must be between 0 and 10^12"
                )));
            }
            if !(0..=1_000_000).contains(&rule.birthday_points.0) {
                return Err(invalid(format!(
                    "tiers.{name}.birthday_points must be between 0 and 1000000"
                )));
            }
            rules.push(rule);
        }
        let tiers = TierTable {
            silver: rules[0],
            gold: rules[1],
            diamond: rules[2],
        };
        if tiers.silver.threshold != 0 {
            return Err(invalid(
                "tiers.silver.threshold must be 0: silver is every member's entry tier",
            ));
        }
        if !(tiers.silver.threshold < tiers.gold.threshold
            && tiers.gold.threshold < tiers.diamond.threshold)
        {
            return Err(invalid(
                "tier thresholds must increase: silver < gold < diamond",
            ));
        }
        for (key, v, range) in [
            (
                "qualifying_window_months",
                doc.qualifying_window_months,
                1..=12,
            ),
            ("tier_validity_months", doc.tier_validity_months, 1..=120),
            (
                "birthday.min_days_on_file",
                doc.birthday.min_days_on_file,
                0..=366,
            ),
            ("birthday.catch_up_days", doc.birthday.catch_up_days, 0..=31),
            ("purchase.max_age_days", doc.purchase.max_age_days, 1..=366),
            (
                "purchase.max_future_seconds",
                doc.purchase.max_future_seconds,
                0..=86_400,
            ),
            ("voucher_validity_days", doc.voucher_validity_days, 1..=3650),
            (
                "idempotency_retention_hours",
                doc.idempotency_retention_hours,
                1..=720,
            ),
            (
                "support_adjustment_limit",
                doc.support_adjustment_limit,
                0..=1_000_000_000,
            ),
            (
                "point_value_per_100",
                doc.point_value_per_100,
                0..=1_000_000,
            ),
        ] {
            if !range.contains(&v) {
                return Err(invalid(format!(
                    "{key} must be between {} and {}, got {v}",
                    range.start(),
                    range.end()
                )));
            }
        }
        let segments = segment_rules(&doc.lifecycle, &doc.rfm)?;
        let default_country = doc
            .default_country
            .as_deref()
            .map(|c| {
                crate::domain::Country::parse(c)
                    .map_err(|e| invalid(format!("default_country: {}", e.0)))
            })
            .transpose()?;
        let (expiry, key, value, range) = match doc.points.expiry {
            ExpiryDoc::Never => (Expiry::Never, "", 0, 0..=0),
            ExpiryDoc::Rolling { months } => (
                Expiry::Rolling { months },
                "points.expiry.months",
                months,
                1..=120,
            ),
            ExpiryDoc::Inactivity { days } => (
                Expiry::Inactivity { days },
                "points.expiry.days",
                days,
                1..=3650,
            ),
        };
        for (key, v, range) in [
            (key, value, range),
            ("points.pending_days", doc.points.pending_days, 0..=90),
        ] {
            if !range.contains(&v) {
                return Err(invalid(format!(
                    "{key} must be between {} and {}, got {v}",
                    range.start(),
                    range.end()
                )));
            }
        }
        let referral = referral_rules(&doc.referral)?;
        let predictions = prediction_rules(&doc.predictions)?;
        Ok(Program {
            referral,
            predictions,
            segments,
            points: PointsRules {
                pending_days: doc.points.pending_days,
                expiry,
            },
            currency,
            timezone,
            earn: EarnRate {
                points: doc.earn.points,
                per_minor_units: doc.earn.per_minor_units,
            },
            tiers,
            qualifying_window_months: doc.qualifying_window_months,
            tier_validity_months: doc.tier_validity_months,
            birthday: BirthdayRules {
                min_days_on_file: doc.birthday.min_days_on_file,
                catch_up_days: doc.birthday.catch_up_days,
                reward_id: doc.birthday.reward_id,
            },
            purchase_max_age_days: doc.purchase.max_age_days,
            purchase_max_future_seconds: doc.purchase.max_future_seconds,
            voucher_validity_days: doc.voucher_validity_days,
            idempotency_retention_hours: doc.idempotency_retention_hours,
            support_adjustment_limit: doc.support_adjustment_limit,
            point_value_per_100: doc.point_value_per_100,
            default_country,
        })
    }

    /// Months of monthly purchase counts kept: the retention report looks 12 months back from
    /// the current month, and RFM reads the qualifying window.
    pub fn purchase_months_kept(&self) -> u32 {
        self.spend_months_kept().max(13)
    }

    /// Months of spend buckets kept on a member: the window plus the month leaving it, and at
    /// least the 12 months custom segments' `spend_12m` adds up (and the month leaving them).
    pub fn spend_months_kept(&self) -> u32 {
        (self.qualifying_window_months + 1).max(13)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_program_file_that_is_empty_or_invalid_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("lots.json");
        std::fs::write(&empty, "\n").unwrap();
        let e = Program::from_file(empty.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("lots.json") && e.contains("empty"), "{e}");
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"currency": "XYZW"}"#).unwrap();
        let e = Program::from_file(bad.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.json") && e.contains("currency"), "{e}");
    }

    use super::*;
    use crate::domain::Tier;

    #[test]
    fn the_readme_program_example_is_every_default() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("## Program rules")
            .nth(1)
            .expect("README has a Program rules section");
        let json = section
            .split("```json")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("a json block");
        let p = Program::from_json(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p, Program::default());
        // And it names every key of the document (a default left out would go unexplained).
        let doc: serde_json::Value = serde_json::from_str(json).unwrap();
        for key in [
            "support_adjustment_limit",
            "point_value_per_100",
            "default_country",
            "referral",
            "points",
        ] {
            assert!(doc.get(key).is_some(), "README's example omits {key}");
        }
    }

    #[test]
    fn referral_rules_default_on_and_refuse_out_of_range_values() {
        let r = Program::default().referral;
        assert!(r.enabled);
        assert_eq!(
            (
                r.min_spend,
                r.referee_points.0,
                r.referrer_points.0,
                r.monthly_cap
            ),
            (2000, 200, 500, 10)
        );
        assert_eq!(r.milestone.map(|m| (m.every, m.points.0)), Some((3, 1000)));
        for (doc, key) in [
            (
                r#"{"referral": {"apply_within_days": 91}}"#,
                "referral.apply_within_days",
            ),
            (
                r#"{"referral": {"qualify_within_days": 91}}"#,
                "referral.qualify_within_days",
            ),
            (
                r#"{"referral": {"velocity_per_hour": 0}}"#,
                "referral.velocity_per_hour",
            ),
            (
                r#"{"referral": {"referee_points": -1}}"#,
                "referral.referee_points",
            ),
            (
                r#"{"referral": {"milestone": {"every": 1, "points": 5}}}"#,
                "referral.milestone",
            ),
            (
                r#"{"referral": {"on_fraud": "ignore"}}"#,
                "referral.on_fraud",
            ),
            (r#"{"referral": {"bonus": 1}}"#, "referral"),
        ] {
            let e = Program::from_json(doc).unwrap_err().to_string();
            assert!(e.contains(key), "{doc}: {e}");
        }
        let off = Program::from_json(r#"{"referral": {"enabled": false, "milestone": null}}"#)
            .unwrap()
            .referral;
        assert!(!off.enabled && off.milestone.is_none());
    }

    #[test]
    fn defaults_match_design() {
        let p = Program::default();
        assert_eq!(p.currency, Currency::USD);
        assert_eq!(p.timezone, chrono_tz::UTC);
        assert_eq!(
            p.earn,
            EarnRate {
                points: 1,
                per_minor_units: 100
            }
        );
        assert_eq!(p.tiers.rule(Tier::Gold).threshold, 100_000);
        assert_eq!(p.tiers.rule(Tier::Gold).multiplier.thousandths(), 1500);
        assert_eq!(p.tiers.rule(Tier::Diamond).birthday_points, Points(1000));
        assert_eq!(
            (p.birthday.min_days_on_file, p.birthday.catch_up_days),
            (30, 3)
        );
        assert_eq!(
            (p.purchase_max_age_days, p.purchase_max_future_seconds),
            (90, 300)
        );
        assert_eq!(
            (p.voucher_validity_days, p.idempotency_retention_hours),
            (90, 24)
        );
        let l = p.segments.lifecycle;
        assert_eq!(
            (
                l.new_days,
                l.dormant_after_days,
                l.churned_after_days,
                l.reactivated_days
            ),
            (30, 90, 180, 30)
        );
        assert_eq!(p.segments.rfm.min_members_for_quantiles, 100);
        assert_eq!(
            p.segments.rfm.fixed,
            CutPoints {
                r: [180, 90, 60, 30],
                f: [2, 3, 5, 8],
                m: [5000, 10000, 25000, 50000]
            }
        );
    }

    #[test]
    fn partial_documents_keep_other_defaults() {
        let p = Program::from_json(
            r#"{"birthday": {"min_days_on_file": 0}, "tiers": {"gold": {"multiplier": 1.25}}}"#,
        )
        .unwrap();
        assert_eq!(p.birthday.min_days_on_file, 0);
        assert_eq!(p.birthday.catch_up_days, 3);
        assert_eq!(p.tiers.gold.multiplier.thousandths(), 1250);
        assert_eq!(p.tiers.gold.threshold, 100_000);
    }

    #[test]
    fn points_rules_default_to_todays_behaviour_and_parse_each_policy() {
        let p = Program::default();
        assert_eq!(
            p.points,
            PointsRules {
                pending_days: 0,
                expiry: Expiry::Never
            }
        );
        let p = Program::from_json(
            r#"{"points": {"pending_days": 14, "expiry": {"policy": "rolling", "months": 12}}}"#,
        )
        .unwrap();
        assert_eq!(
            p.points,
            PointsRules {
                pending_days: 14,
                expiry: Expiry::Rolling { months: 12 }
            }
        );
        let p =
            Program::from_json(r#"{"points": {"expiry": {"policy": "inactivity", "days": 365}}}"#)
                .unwrap();
        assert_eq!(p.points.expiry, Expiry::Inactivity { days: 365 });
    }

    #[test]
    fn invalid_documents_name_the_problem() {
        for (doc, needle) in [
            (r#"{"curency": "USD"}"#, "curency"),
            (r#"{"currency": "usd"}"#, "currency"),
            (r#"{"timezone": "Mars/Base"}"#, "timezone"),
            (r#"{"earn": {"per_minor_units": 0}}"#, "per_minor_units"),
            (r#"{"tiers": {"gold": {"threshold": 600000}}}"#, "increase"),
            (
                r#"{"tiers": {"gold": {"multiplier": 1.0005}}}"#,
                "multiplier",
            ),
            (
                r#"{"qualifying_window_months": 0}"#,
                "qualifying_window_months",
            ),
            (r#"{"birthday": {"reward_id": "a#b"}}"#, "reward_id"),
            (
                r#"{"lifecycle": {"dormant_after_days": 200}}"#,
                "dormant_after_days",
            ),
            (r#"{"lifecycle": {"new_days": 0}}"#, "new_days"),
            (
                r#"{"rfm": {"fixed": {"r_days": [30, 60, 90, 180]}}}"#,
                "r_days",
            ),
            (r#"{"rfm": {"fixed": {"m": [5, 5, 6, 7]}}}"#, "rfm.fixed.m"),
            (r#"{"rfm": {"fixed": {"f": [1, 2]}}}"#, "rfm.fixed.f"),
            (r#"{"points": {"pending_days": 91}}"#, "points.pending_days"),
            (
                r#"{"points": {"expiry": {"policy": "rolling", "months": 0}}}"#,
                "points.expiry.months",
            ),
            (
                r#"{"points": {"expiry": {"policy": "inactivity", "days": 0}}}"#,
                "points.expiry.days",
            ),
            (
                r#"{"points": {"expiry": {"policy": "sometimes"}}}"#,
                "sometimes",
            ),
            (
                r#"{"predictions": {"sample_size": 999}}"#,
                "predictions.sample_size",
            ),
            (
                r#"{"predictions": {"horizon_days": 366}}"#,
                "predictions.horizon_days",
            ),
            (
                r#"{"predictions": {"churn": {"possible": 0.7, "likely": 0.7}}}"#,
                "predictions.churn",
            ),
            (
                r#"{"predictions": {"churn": {"likely": 1.0}}}"#,
                "predictions.churn",
            ),
            ("not json", "expected"),
        ] {
            let err = Program::from_json(doc).unwrap_err().to_string();
            assert!(err.contains(needle), "{doc}: {err}");
        }
    }
}
