//! Campaign rules (DESIGN.md "Campaigns"): who is held out, what an offer adds to a purchase, how
//! the per-member limit and the budget cut an award, and the measured effect of a campaign
//! against its holdout group (Wald and Welch 95 % intervals). Pure: the service passes the
//! campaign, the purchase and the members' outcomes in.

use super::earning::{EarnRate, Multiplier, earn};
use super::segment::SegmentId;
use super::{CampaignId, Invalid, MemberId, Money, Overflow, Points};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// The share of the audience held out, in hundredths of a percent (12.5 % → 1250), 0 to 50 %.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value", into = "serde_json::Value")]
pub struct HoldoutShare(u32);

impl HoldoutShare {
    pub const MAX_HUNDREDTHS: u32 = 5000;
    pub const DEFAULT: HoldoutShare = HoldoutShare(1000);

    pub fn hundredths(self) -> u32 {
        self.0
    }

    /// Parses decimal text (`"10"`, `"12.5"`, `"0.25"`) exactly: at most two decimals.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let bad = || {
            Invalid::new(format!(
                "holdout_percent must be a number from 0 to 50 with at most 2 decimals, got {s}"
            ))
        };
        let h = super::parse_fixed(s, 3, 2).ok_or_else(bad)?;
        if h > Self::MAX_HUNDREDTHS {
            return Err(Invalid::new(format!(
                "holdout_percent must be at most 50, got {s}"
            )));
        }
        Ok(HoldoutShare(h))
    }
}

impl TryFrom<serde_json::Value> for HoldoutShare {
    type Error = Invalid;
    fn try_from(v: serde_json::Value) -> Result<Self, Invalid> {
        match v {
            // As for multipliers: the shortest text of the parsed number is the literal.
            serde_json::Value::Number(n) => HoldoutShare::parse(&n.to_string()),
            other => Err(Invalid::new(format!(
                "holdout_percent must be a number, got {other}"
            ))),
        }
    }
}

impl From<HoldoutShare> for serde_json::Value {
    fn from(h: HoldoutShare) -> Self {
        if h.0.is_multiple_of(100) {
            serde_json::Value::from(h.0 / 100)
        } else {
            serde_json::Value::from(f64::from(h.0) / 100.0)
        }
    }
}

/// Which side of the experiment a member of the audience is on.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Treatment,
    Holdout,
}

/// The SHA-256 rule: holdout iff the first 8 bytes of SHA-256("<campaign>:<member>"), big-endian,
/// modulo 10,000 fall below the share in hundredths. The same ids always give the same group.
pub fn group_of(campaign: &CampaignId, member: &MemberId, holdout: HoldoutShare) -> Group {
    let digest = Sha256::digest(format!("{campaign}:{member}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    if u64::from_be_bytes(first) % 10_000 < u64::from(holdout.0) {
        Group::Holdout
    } else {
        Group::Treatment
    }
}

/// What a treatment member gets on a qualifying purchase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Offer {
    /// Extra points = the purchase's points × (multiplier − 1), on the listed categories' lines
    /// only when `categories` is given.
    Multiplier {
        #[serde(with = "multiplier_number")]
        #[schema(value_type = f64, example = 2.0)]
        multiplier: Multiplier,
        #[schema(nullable = false)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        categories: Option<Vec<String>>,
    },
    /// A fixed bonus on a purchase of at least `min_spend`.
    Bonus {
        points: Points,
        #[schema(nullable = false)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_spend: Option<Money>,
    },
}

/// Offers show their multiplier as a JSON number (`2.0`), parsed exactly from its text.
mod multiplier_number {
    use super::Multiplier;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &Multiplier, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(f64::from(m.thousandths()) / 1000.0)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Multiplier, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        if !v.is_number() {
            return Err(serde::de::Error::custom("multiplier must be a number"));
        }
        Multiplier::try_from(v).map_err(|e| serde::de::Error::custom(e.0))
    }
}

/// An offer as a request states it: the multiplier any JSON number, so that one with more than
/// three decimals or out of range is refused by the rule (422 naming `offer.multiplier`) rather
/// than by the parser. [`OfferInput::decide`] makes it an [`Offer`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OfferInput {
    /// Extra points = the purchase's points × (multiplier − 1), on the listed categories' lines
    /// only when `categories` is given. More than 1, at most 10, at most 3 decimals.
    Multiplier {
        #[schema(value_type = f64, example = 2.0)]
        multiplier: serde_json::Number,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        categories: Option<Vec<String>>,
    },
    /// A fixed bonus on a purchase of at least `min_spend`.
    Bonus {
        points: Points,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_spend: Option<Money>,
    },
}

impl OfferInput {
    /// The offer, or the field (relative to `offer`) that a rule refuses.
    pub fn decide(&self, currency: super::Currency) -> Result<Offer, (&'static str, Invalid)> {
        let offer = match self {
            OfferInput::Multiplier {
                multiplier,
                categories,
            } => Offer::Multiplier {
                multiplier: Multiplier::try_from(serde_json::Value::Number(multiplier.clone()))
                    .map_err(|_| {
                        (
                            "multiplier",
                            Invalid::new(
                                "multiplier must be more than 1 and at most 10, with at most 3 decimals",
                            ),
                        )
                    })?,
                categories: categories.clone(),
            },
            OfferInput::Bonus { points, min_spend } => Offer::Bonus {
                points: *points,
                min_spend: *min_spend,
            },
        };
        offer.check(currency)?;
        Ok(offer)
    }
}

impl Offer {
    /// The rules serde cannot say. Returns the offending field (relative to `offer`).
    pub fn check(&self, currency: super::Currency) -> Result<(), (&'static str, Invalid)> {
        match self {
            Offer::Multiplier {
                multiplier,
                categories,
            } => {
                if multiplier.thousandths() <= Multiplier::ONE.thousandths()
                    || multiplier.thousandths() > 10_000
                {
                    return Err((
                        "multiplier",
                        Invalid::new(
                            "multiplier must be more than 1 and at most 10, with at most 3 decimals",
                        ),
                    ));
                }
                if let Some(cs) = categories {
                    if cs.is_empty() || cs.len() > 20 {
                        return Err((
                            "categories",
                            Invalid::new("categories, when given, must list 1 to 20 categories"),
                        ));
                    }
                    if cs.iter().any(|c| c.trim().is_empty() || c.len() > 64) {
                        return Err((
                            "categories",
                            Invalid::new("each category must be 1 to 64 characters"),
                        ));
                    }
                }
            }
            Offer::Bonus { points, min_spend } => {
                if !(1..=1_000_000).contains(&points.0) {
                    return Err((
                        "points",
                        Invalid::new("a bonus must be between 1 and 1000000 points"),
                    ));
                }
                if let Some(m) = min_spend {
                    if m.currency != currency {
                        return Err((
                            "min_spend",
                            Invalid::new(format!("min_spend must be in {currency}")),
                        ));
                    }
                    if !(0..=super::money::MAX_AMOUNT_MINOR).contains(&m.value) {
                        return Err((
                            "min_spend",
                            Invalid::new("min_spend must be between 0 and 10^12 minor units"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The purchase as an offer sees it.
pub struct PurchaseFacts<'a> {
    pub amount: i64,
    /// Each line's category and amount.
    pub lines: &'a [(Option<&'a str>, i64)],
    /// The points the purchase earned.
    pub points: Points,
    pub rate: EarnRate,
    pub tier_multiplier: Multiplier,
}

/// The points an offer adds to a purchase, before the limit and the budget.
pub fn offered(offer: &Offer, p: &PurchaseFacts) -> Result<Points, Overflow> {
    match offer {
        Offer::Multiplier {
            multiplier,
            categories,
        } => {
            let base = match categories {
                None => p.points,
                Some(cs) => {
                    let eligible: i64 = p
                        .lines
                        .iter()
                        .filter(|(c, _)| c.is_some_and(|c| cs.iter().any(|x| x == c)))
                        .map(|(_, a)| *a)
                        .sum();
                    if eligible <= 0 {
                        return Ok(Points::ZERO);
                    }
                    earn(eligible, p.rate, p.tier_multiplier)?
                }
            };
            let extra = i128::from(base.0)
                * i128::from(multiplier.thousandths() - Multiplier::ONE.thousandths())
                / 1000;
            i64::try_from(extra).map(Points).map_err(|_| Overflow)
        }
        Offer::Bonus { points, min_spend } => {
            Ok(if min_spend.is_none_or(|m| p.amount >= m.value) {
                *points
            } else {
                Points::ZERO
            })
        }
    }
}

/// The award after the member's limit and what is left of the budget: the last award is cut to
/// what remains, and nothing is awarded once either is used up.
pub fn cut(
    offered: Points,
    awards_so_far: u32,
    per_member_limit: Option<u32>,
    budget_left: Points,
) -> Points {
    if offered.0 <= 0 || budget_left.0 <= 0 || per_member_limit.is_some_and(|l| awards_so_far >= l)
    {
        return Points::ZERO;
    }
    Points(offered.0.min(budget_left.0))
}

/// Whether a purchase at `at` falls in the campaign's window (`ended_at`: ended early).
pub fn in_window(
    at: DateTime<Utc>,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
) -> bool {
    starts_at <= at && at < ends_at && ended_at.is_none_or(|e| at < e)
}

/// What a purchase does in one campaign the member is assigned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlayDecision {
    /// Outside the campaign's window: nothing changes.
    OutOfWindow,
    /// The budget slices read may not hold the award: read every slice and decide again.
    Short,
    /// Counted on the assignment; `points` awarded (a treatment member's offer after the
    /// member's limit and the budget; zero for the holdout).
    Counted { points: Points },
}

/// A purchase at `at` in campaign `c`, for a member whose assignment is `a`: `room` is what is
/// left in the budget slices read, `complete` whether those were all of them.
pub fn play(
    c: &Campaign,
    a: &Assignment,
    p: &PurchaseFacts,
    at: DateTime<Utc>,
    room: i64,
    complete: bool,
) -> Result<PlayDecision, Overflow> {
    if !in_window(at, c.starts_at, c.ends_at, c.ended_at) {
        return Ok(PlayDecision::OutOfWindow);
    }
    if a.group != Group::Treatment {
        return Ok(PlayDecision::Counted {
            points: Points::ZERO,
        });
    }
    let offered = offered(&c.offer, p)?;
    let budget = if complete {
        Points(room)
    } else {
        Points(offered.0.max(0))
    };
    let points = cut(offered, a.awards, c.per_member_limit, budget);
    if !complete && points.0 > room {
        return Ok(PlayDecision::Short);
    }
    Ok(PlayDecision::Counted { points })
}

impl Assignment {
    /// A purchase in the window counted: its spend, and an award when there is one.
    pub fn count(&mut self, amount: i64, points: Points) -> Result<(), Overflow> {
        self.purchases += 1;
        self.spend = self.spend.saturating_add(amount);
        if points.0 > 0 {
            self.awards += 1;
            self.points = self.points.checked_add(points)?;
        }
        Ok(())
    }
}

impl Campaign {
    /// Launched at `now` with an audience of `size`: running, its budget split into slices of
    /// about `per_slice` points (at most `max_slices`).
    pub fn launched(
        &mut self,
        size: AudienceSize,
        now: DateTime<Utc>,
        per_slice: i64,
        max_slices: u32,
    ) {
        self.status = CampaignStatus::Running;
        self.audience_size = Some(size);
        self.launched_at = Some(now);
        self.updated_at = now;
        self.slices = super::slices::count(self.budget_points.0, per_slice, max_slices);
    }
}

/// One audience member's outcome, kept on their assignment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemberOutcome {
    pub group: Group,
    /// Purchases in the window not fully refunded.
    pub purchases: u32,
    /// Net spend in the window, minor units.
    pub spend: i64,
    /// Points awarded, net of reversals.
    pub points: i64,
}

/// A group's totals. Sums are exact integers; only the statistics use floating point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupTally {
    pub members: u64,
    pub converted: u64,
    pub spend: i128,
    pub spend_squares: i128,
    pub points: i64,
}

impl GroupTally {
    pub fn add(&mut self, o: &MemberOutcome) {
        self.members += 1;
        self.converted += u64::from(o.purchases > 0);
        self.spend += i128::from(o.spend);
        self.spend_squares += i128::from(o.spend) * i128::from(o.spend);
        self.points += o.points;
    }
    pub fn conversion_rate(&self) -> Option<f64> {
        (self.members > 0).then(|| self.converted as f64 / self.members as f64)
    }
    pub fn mean_spend(&self) -> Option<f64> {
        (self.members > 0).then(|| self.spend as f64 / self.members as f64)
    }
    /// The sample variance of spend per member, from exact sums: (nΣx² − (Σx)²) / (n(n − 1)).
    pub fn spend_variance(&self) -> Option<f64> {
        let n = i128::from(self.members);
        (n >= 2).then(|| {
            let num = n * self.spend_squares - self.spend * self.spend;
            num as f64 / (n * (n - 1)) as f64
        })
    }
}

pub fn tally<'a>(
    outcomes: impl IntoIterator<Item = &'a MemberOutcome>,
) -> (GroupTally, GroupTally) {
    let (mut t, mut h) = (GroupTally::default(), GroupTally::default());
    for o in outcomes {
        match o.group {
            Group::Treatment => t.add(o),
            Group::Holdout => h.add(o),
        }
    }
    (t, h)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Effective,
    Ineffective,
    Inconclusive,
}

/// The z value of a two-sided 95 % interval.
pub const Z95: f64 = 1.96;

/// Treatment minus holdout, with the intervals DESIGN.md names. `None` where a group is too small
/// for the statistic (no member for a rate, fewer than two for a variance).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Effect {
    pub conversion_uplift: Option<f64>,
    pub conversion_ci95: Option<(f64, f64)>,
    pub spend_uplift: Option<f64>,
    pub spend_ci95: Option<(f64, f64)>,
    /// Uplift in spend per member × treatment members.
    pub incremental_spend: Option<f64>,
    pub verdict: Verdict,
}

pub fn effect(t: &GroupTally, h: &GroupTally) -> Effect {
    let rates = t.conversion_rate().zip(h.conversion_rate());
    let conversion_uplift = rates.map(|(p1, p0)| p1 - p0);
    // Wald: p₁ − p₀ ± z·√(p₁q₁/n₁ + p₀q₀/n₀).
    let conversion_ci95 = rates.map(|(p1, p0)| {
        let se = (p1 * (1.0 - p1) / t.members as f64 + p0 * (1.0 - p0) / h.members as f64).sqrt();
        (p1 - p0 - Z95 * se, p1 - p0 + Z95 * se)
    });
    let spend_uplift = t.mean_spend().zip(h.mean_spend()).map(|(a, b)| a - b);
    // Welch: mean difference ± z·√(s₁²/n₁ + s₀²/n₀), sample variances.
    let spend_ci95 = spend_uplift
        .zip(t.spend_variance().zip(h.spend_variance()))
        .map(|(d, (v1, v0))| {
            let se = (v1 / t.members as f64 + v0 / h.members as f64).sqrt();
            (d - Z95 * se, d + Z95 * se)
        });
    let verdict = match conversion_ci95 {
        Some((lo, _)) if lo > 0.0 => Verdict::Effective,
        Some((_, hi)) if hi < 0.0 => Verdict::Ineffective,
        _ => Verdict::Inconclusive,
    };
    Effect {
        conversion_uplift,
        conversion_ci95,
        spend_uplift,
        spend_ci95,
        incremental_spend: spend_uplift.map(|d| d * t.members as f64),
        verdict,
    }
}

/// Rates and their bounds are shown to 4 decimals.
pub fn rate4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Money statistics are shown in whole minor units, half away from zero.
pub fn minor(x: f64) -> i64 {
    x.round() as i64
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Draft,
    /// A launch is writing the audience; a launch call resumes it.
    Launching,
    Running,
    Ended,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AudienceSize {
    pub treatment: u64,
    pub holdout: u64,
}

/// The stored campaign.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Campaign {
    pub id: CampaignId,
    pub name: String,
    pub audience: Vec<SegmentId>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub offer: Offer,
    pub per_member_limit: Option<u32>,
    pub budget_points: Points,
    pub holdout_percent: HoldoutShare,
    pub status: CampaignStatus,
    pub audience_size: Option<AudienceSize>,
    /// Every point awarded so far (refund reversals do not return points to the budget): the
    /// sum of the budget's slices, filled in when the campaign is shown, never stored counting.
    pub awarded: Points,
    /// How many slices the budget was split into at launch (`domain::slices`; 0 before).
    #[serde(default)]
    pub slices: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub launched_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// The campaigns that hold a place: launched, not ended, and not long past their window (late
/// receipts of the window still count until `purchase_max_age_days` after it).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunningCampaigns {
    pub running: Vec<RunningEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunningEntry {
    pub id: CampaignId,
    pub ends_at: DateTime<Utc>,
}

/// One audience member of one campaign: their group and their outcome in the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub member_id: MemberId,
    pub group: Group,
    /// The launch told the member (and the webhooks) with a `campaign.joined` event, in the
    /// same commit: a resumed launch announces only the rest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub announced: bool,
    /// Purchases in the window not fully refunded.
    pub purchases: u32,
    /// Net spend in the window, minor units of the program currency.
    pub spend: i64,
    pub awards: u32,
    /// Points awarded, net of reversals.
    pub points: Points,
}

/// A purchase's part in a campaign, kept on the purchase so a refund can find it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CampaignCredit {
    pub campaign_id: CampaignId,
    pub points: Points,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Currency;

    fn c(s: &str) -> CampaignId {
        CampaignId::parse(s).unwrap()
    }
    fn m(s: &str) -> MemberId {
        MemberId::parse(s).unwrap()
    }
    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }
    fn mult(s: &str) -> Multiplier {
        Multiplier::parse(s).unwrap()
    }

    #[test]
    fn holdout_share_parse_table() {
        for (s, want) in [
            ("0", Some(0)),
            ("10", Some(1000)),
            ("12.5", Some(1250)),
            ("0.01", Some(1)),
            ("50", Some(5000)),
            ("50.0", Some(5000)),
            ("50.01", None),
            ("51", None),
            ("-1", None),
            ("1.234", None),
            ("1.", None),
            (".5", None),
            ("", None),
        ] {
            assert_eq!(HoldoutShare::parse(s).ok().map(|h| h.0), want, "{s}");
        }
        let v: serde_json::Value = serde_json::from_str("12.5").unwrap();
        assert_eq!(HoldoutShare::try_from(v).unwrap().0, 1250);
        assert!(HoldoutShare::try_from(serde_json::json!("10")).is_err());
        assert_eq!(
            serde_json::Value::from(HoldoutShare(1250)),
            serde_json::json!(12.5)
        );
        assert_eq!(
            serde_json::Value::from(HoldoutShare(2000)),
            serde_json::json!(20)
        );
    }

    #[test]
    fn the_group_is_the_sha256_rule_and_never_changes() {
        // The rule's number for this pair, taken straight from the digest; the shares either
        // side of it decide the group.
        let d = Sha256::digest(b"spring:ada");
        let n = u64::from_be_bytes(d[..8].try_into().unwrap()) % 10_000;
        let just_above = HoldoutShare(n as u32 + 1);
        let at = HoldoutShare(n as u32);
        assert_eq!(
            group_of(&c("spring"), &m("ada"), just_above),
            Group::Holdout
        );
        assert_eq!(group_of(&c("spring"), &m("ada"), at), Group::Treatment);
        assert_eq!(
            group_of(&c("spring"), &m("ada"), HoldoutShare(0)),
            Group::Treatment
        );
        // Over many members the share is close to the one asked for.
        let held = (0..10_000)
            .filter(|i| {
                group_of(&c("spring"), &m(&format!("m{i}")), HoldoutShare(2000)) == Group::Holdout
            })
            .count();
        assert!(
            (1_850..=2_150).contains(&held),
            "{held} of 10000 held out at 20 %"
        );
    }

    #[test]
    fn offers_table() {
        let rate = EarnRate {
            points: 1,
            per_minor_units: 100,
        };
        let lines = [(Some("drinks"), 1_000), (Some("food"), 2_050), (None, 500)];
        let facts = PurchaseFacts {
            amount: 3_550,
            lines: &lines,
            points: Points(35),
            rate,
            tier_multiplier: Multiplier::ONE,
        };
        let usd = |v| Money::new(v, Currency::parse("USD").unwrap());
        for (offer, want) in [
            // 35 × (2 − 1) = 35
            (
                Offer::Multiplier {
                    multiplier: mult("2"),
                    categories: None,
                },
                35,
            ),
            // 35 × 0.5 = 17.5 → 17
            (
                Offer::Multiplier {
                    multiplier: mult("1.5"),
                    categories: None,
                },
                17,
            ),
            // drinks lines: 1000 minor → 10 points × 2 = 20
            (
                Offer::Multiplier {
                    multiplier: mult("3"),
                    categories: Some(vec!["drinks".into()]),
                },
                20,
            ),
            // drinks + food: 3050 minor → 30 points × 1 = 30
            (
                Offer::Multiplier {
                    multiplier: mult("2"),
                    categories: Some(vec!["drinks".into(), "food".into()]),
                },
                30,
            ),
            (
                Offer::Multiplier {
                    multiplier: mult("2"),
                    categories: Some(vec!["toys".into()]),
                },
                0,
            ),
            (
                Offer::Bonus {
                    points: Points(50),
                    min_spend: None,
                },
                50,
            ),
            (
                Offer::Bonus {
                    points: Points(50),
                    min_spend: Some(usd(3_550)),
                },
                50,
            ),
            (
                Offer::Bonus {
                    points: Points(50),
                    min_spend: Some(usd(3_551)),
                },
                0,
            ),
        ] {
            assert_eq!(offered(&offer, &facts).unwrap(), Points(want), "{offer:?}");
        }
        // A purchase without lines has no category to match.
        let bare = PurchaseFacts {
            lines: &[],
            ..facts
        };
        let drinks = Offer::Multiplier {
            multiplier: mult("2"),
            categories: Some(vec!["drinks".into()]),
        };
        assert_eq!(offered(&drinks, &bare).unwrap(), Points::ZERO);
    }

    #[test]
    fn a_purchase_plays_a_campaign_by_window_group_limit_and_budget() {
        let rate = EarnRate {
            points: 1,
            per_minor_units: 100,
        };
        let facts = PurchaseFacts {
            amount: 3_000,
            lines: &[],
            points: Points(30),
            rate,
            tier_multiplier: Multiplier::ONE,
        };
        let campaign = Campaign {
            id: c("double"),
            name: "Double".into(),
            audience: vec![],
            starts_at: t("2027-01-01T00:00:00Z"),
            ends_at: t("2027-02-01T00:00:00Z"),
            offer: Offer::Bonus {
                points: Points(100),
                min_spend: None,
            },
            per_member_limit: Some(2),
            budget_points: Points(1_000),
            holdout_percent: HoldoutShare(1000),
            status: CampaignStatus::Running,
            audience_size: None,
            awarded: Points::ZERO,
            slices: 4,
            created_at: t("2026-12-01T00:00:00Z"),
            updated_at: t("2026-12-01T00:00:00Z"),
            launched_at: None,
            ended_at: Some(t("2027-01-20T00:00:00Z")),
        };
        let a = |group, awards| Assignment {
            member_id: m("ada"),
            group,
            announced: true,
            purchases: 0,
            spend: 0,
            awards,
            points: Points::ZERO,
        };
        use PlayDecision::*;
        let counted = |p| Counted { points: Points(p) };
        let (inside, ended) = (t("2027-01-10T00:00:00Z"), t("2027-01-20T00:00:00Z"));
        for (at, group, awards, room, complete, want) in [
            (inside, Group::Treatment, 0, 500, false, counted(100)),
            // Ended early: the window closes at `ended_at`.
            (ended, Group::Treatment, 0, 500, false, OutOfWindow),
            (
                t("2026-12-31T23:59:59Z"),
                Group::Treatment,
                0,
                500,
                true,
                OutOfWindow,
            ),
            (inside, Group::Holdout, 0, 0, false, counted(0)),
            (inside, Group::Treatment, 2, 500, false, counted(0)),
            // The slices read hold 60 of the 100: read them all before cutting the award.
            (inside, Group::Treatment, 0, 60, false, Short),
            (inside, Group::Treatment, 0, 60, true, counted(60)),
            (inside, Group::Treatment, 0, 0, true, counted(0)),
        ] {
            let got = play(&campaign, &a(group, awards), &facts, at, room, complete).unwrap();
            assert_eq!(got, want, "{at} {group:?} {awards} {room} {complete}");
        }
        let mut launched = campaign.clone();
        let size = AudienceSize {
            treatment: 90,
            holdout: 10,
        };
        launched.launched(size, inside, 300, 8);
        assert_eq!(launched.status, CampaignStatus::Running);
        assert_eq!(launched.audience_size, Some(size));
        assert_eq!(
            (launched.launched_at, launched.updated_at),
            (Some(inside), inside)
        );
        // 1,000 points at 300 a slice: 3 slices.
        assert_eq!(launched.slices, 3);
        let mut counted_in = a(Group::Treatment, 0);
        counted_in.count(3_000, Points(100)).unwrap();
        counted_in.count(1_000, Points::ZERO).unwrap();
        assert_eq!(
            (
                counted_in.purchases,
                counted_in.spend,
                counted_in.awards,
                counted_in.points
            ),
            (2, 4_000, 1, Points(100))
        );
    }

    #[test]
    fn offer_checks_table() {
        let usd = Currency::parse("USD").unwrap();
        let eur = Currency::parse("EUR").unwrap();
        let bad = |o: Offer, cur| o.check(cur).err().map(|(f, _)| f);
        let mx = |s: &str| Offer::Multiplier {
            multiplier: mult(s),
            categories: None,
        };
        assert_eq!(bad(mx("1"), usd), Some("multiplier"));
        assert_eq!(bad(mx("0.5"), usd), Some("multiplier"));
        assert_eq!(bad(mx("1.001"), usd), None);
        assert_eq!(bad(mx("10"), usd), None);
        assert_eq!(bad(mx("10.001"), usd), Some("multiplier"));
        let cats = |cs: Vec<&str>| Offer::Multiplier {
            multiplier: mult("2"),
            categories: Some(cs.into_iter().map(String::from).collect()),
        };
        assert_eq!(bad(cats(vec![]), usd), Some("categories"));
        assert_eq!(bad(cats(vec![" "]), usd), Some("categories"));
        assert_eq!(bad(cats(vec!["drinks"]), usd), None);
        let bonus = |p, min: Option<Money>| Offer::Bonus {
            points: Points(p),
            min_spend: min,
        };
        assert_eq!(bad(bonus(0, None), usd), Some("points"));
        assert_eq!(bad(bonus(1, None), usd), None);
        assert_eq!(bad(bonus(1_000_000, None), usd), None);
        assert_eq!(bad(bonus(1_000_001, None), usd), Some("points"));
        assert_eq!(
            bad(bonus(5, Some(Money::new(100, eur))), usd),
            Some("min_spend")
        );
        assert_eq!(
            bad(bonus(5, Some(Money::new(-1, usd))), usd),
            Some("min_spend")
        );
        assert_eq!(bad(bonus(5, Some(Money::new(0, usd))), usd), None);
    }

    #[test]
    fn offers_read_and_write_their_json() {
        let o: Offer = serde_json::from_value(
            serde_json::json!({"kind": "multiplier", "multiplier": 2.0, "categories": ["drinks"]}),
        )
        .unwrap();
        assert_eq!(
            o,
            Offer::Multiplier {
                multiplier: mult("2"),
                categories: Some(vec!["drinks".into()])
            }
        );
        assert_eq!(
            serde_json::to_value(&o).unwrap(),
            serde_json::json!({"kind": "multiplier", "multiplier": 2.0, "categories": ["drinks"]})
        );
        for bad in [
            serde_json::json!({"kind": "multiplier", "multiplier": "2"}),
            serde_json::json!({"kind": "multiplier", "multiplier": 2, "extra": 1}),
            serde_json::json!({"kind": "cashback", "points": 5}),
            serde_json::json!({"kind": "bonus"}),
        ] {
            assert!(
                serde_json::from_value::<Offer>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn cut_table() {
        for (offered, so_far, limit, left, want) in [
            (50, 0, None, 1_000, 50),
            (50, 0, Some(1), 1_000, 50),
            (50, 1, Some(1), 1_000, 0),
            (50, 2, Some(3), 1_000, 50),
            (50, 0, None, 30, 30),
            (50, 0, None, 50, 50),
            (50, 0, None, 0, 0),
            (50, 0, None, -5, 0),
            (0, 0, None, 1_000, 0),
        ] {
            assert_eq!(
                cut(Points(offered), so_far, limit, Points(left)),
                Points(want),
                "{offered} {so_far} {limit:?} {left}"
            );
        }
    }

    #[test]
    fn window_table() {
        let (s, e) = (t("2027-01-01T00:00:00Z"), t("2027-02-01T00:00:00Z"));
        for (at, ended, want) in [
            ("2026-12-31T23:59:59Z", None, false),
            ("2027-01-01T00:00:00Z", None, true),
            ("2027-01-31T23:59:59Z", None, true),
            ("2027-02-01T00:00:00Z", None, false),
            ("2027-01-10T00:00:00Z", Some("2027-01-10T00:00:00Z"), false),
            ("2027-01-09T23:59:59Z", Some("2027-01-10T00:00:00Z"), true),
        ] {
            assert_eq!(in_window(t(at), s, e, ended.map(t)), want, "{at} {ended:?}");
        }
    }

    fn o(group: Group, purchases: u32, spend: i64) -> MemberOutcome {
        MemberOutcome {
            group,
            purchases,
            spend,
            points: 0,
        }
    }

    #[test]
    fn effect_matches_numbers_computed_by_hand() {
        use Group::*;
        // Treatment: 4 members, spends 0, 10, 20, 30 (3 converted). Holdout: 2 members, spends
        // 0 and 10 (1 converted).
        let outcomes = [
            o(Treatment, 0, 0),
            o(Treatment, 1, 10),
            o(Treatment, 2, 20),
            o(Treatment, 1, 30),
            o(Holdout, 0, 0),
            o(Holdout, 1, 10),
        ];
        let (tr, ho) = tally(&outcomes);
        assert_eq!((tr.members, tr.converted, tr.spend), (4, 3, 60));
        assert_eq!((ho.members, ho.converted, ho.spend), (2, 1, 10));
        // p1 = 0.75, p0 = 0.5; se = √(0.75·0.25/4 + 0.5·0.5/2) = √(0.046875 + 0.125) = √0.171875
        // = 0.414578…; ± 1.96 × 0.414578 = ± 0.812573 around 0.25.
        let e = effect(&tr, &ho);
        assert!((e.conversion_uplift.unwrap() - 0.25).abs() < 1e-12);
        let (lo, hi) = e.conversion_ci95.unwrap();
        assert!((lo - (0.25 - 0.812_573)).abs() < 1e-6, "{lo}");
        assert!((hi - (0.25 + 0.812_573)).abs() < 1e-6, "{hi}");
        // Means 15 and 5: uplift 10. s₁² = (0²+10²+20²+30² − 4·15²)/3 = (1400 − 900)/3 = 166.667;
        // s₀² = (0 + 100 − 2·25)/1 = 50. se = √(166.667/4 + 50/2) = √66.6667 = 8.164966;
        // ± 1.96 × 8.164966 = ± 16.003333.
        assert!((e.spend_uplift.unwrap() - 10.0).abs() < 1e-12);
        let (lo, hi) = e.spend_ci95.unwrap();
        assert!((lo - (10.0 - 16.003_333)).abs() < 1e-5, "{lo}");
        assert!((hi - (10.0 + 16.003_333)).abs() < 1e-5, "{hi}");
        assert_eq!(e.incremental_spend, Some(40.0));
        assert_eq!(e.verdict, Verdict::Inconclusive);
    }

    #[test]
    fn verdicts_at_the_interval_boundaries() {
        use Group::*;
        let group = |g, n: u32, converted: u32| {
            (0..n)
                .map(move |i| o(g, u32::from(i < converted), 0))
                .collect::<Vec<_>>()
        };
        // All treatment converted, no holdout: the interval is [1, 1].
        let all: Vec<_> = group(Treatment, 10, 10)
            .into_iter()
            .chain(group(Holdout, 10, 0))
            .collect();
        let (t1, h1) = tally(&all);
        assert_eq!(effect(&t1, &h1).verdict, Verdict::Effective);
        let none: Vec<_> = group(Treatment, 10, 0)
            .into_iter()
            .chain(group(Holdout, 10, 10))
            .collect();
        let (t2, h2) = tally(&none);
        assert_eq!(effect(&t2, &h2).verdict, Verdict::Ineffective);
        let same: Vec<_> = group(Treatment, 10, 5)
            .into_iter()
            .chain(group(Holdout, 10, 5))
            .collect();
        let (t3, h3) = tally(&same);
        assert_eq!(effect(&t3, &h3).verdict, Verdict::Inconclusive);
        // No holdout at all: no interval, no verdict but inconclusive.
        let (t4, h4) = tally(&group(Treatment, 10, 10));
        let e = effect(&t4, &h4);
        assert_eq!((e.conversion_ci95, e.spend_ci95), (None, None));
        assert_eq!(e.verdict, Verdict::Inconclusive);
        // One holdout member: a rate, but no variance.
        let one: Vec<_> = group(Treatment, 3, 1)
            .into_iter()
            .chain(group(Holdout, 1, 0))
            .collect();
        let (t5, h5) = tally(&one);
        let e = effect(&t5, &h5);
        assert!(e.conversion_ci95.is_some() && e.spend_ci95.is_none());
    }

    #[test]
    fn rounding_for_display() {
        assert_eq!(rate4(0.123_449), 0.1234);
        assert_eq!(rate4(0.123_45), 0.1235);
        assert_eq!(rate4(-0.000_04), -0.0);
        assert_eq!(minor(2.5), 3);
        assert_eq!(minor(-2.5), -3);
        assert_eq!(minor(1199.49), 1199);
    }
}
