//! Segments (DESIGN.md "Segments"): a member's lifecycle stage as of an instant, the RFM scores
//! against cut points (fixed, or the quintiles of the purchasing members), the value segment the
//! scores give, segment ids, and the mergeable distribution the nightly job computes quintiles
//! from. Pure: callers pass the member's activity, the rules and "now".

use super::Invalid;
use super::Tier;
pub use super::predict::score::ChurnRisk;
use super::spend::{MonthCounts, SpendBuckets};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use utoipa::ToSchema;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    Prospect,
    New,
    Active,
    Dormant,
    Churned,
    Reactivated,
}

impl Lifecycle {
    pub const ALL: [Lifecycle; 6] = [
        Lifecycle::Prospect,
        Lifecycle::New,
        Lifecycle::Active,
        Lifecycle::Dormant,
        Lifecycle::Churned,
        Lifecycle::Reactivated,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Prospect => "prospect",
            Lifecycle::New => "new",
            Lifecycle::Active => "active",
            Lifecycle::Dormant => "dormant",
            Lifecycle::Churned => "churned",
            Lifecycle::Reactivated => "reactivated",
        }
    }
    /// Members who buy now: new, active or reactivated.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Lifecycle::New | Lifecycle::Active | Lifecycle::Reactivated
        )
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ValueSegment {
    HighValue,
    Potential,
    AtRisk,
    Regular,
}

impl ValueSegment {
    pub const ALL: [ValueSegment; 4] = [
        ValueSegment::HighValue,
        ValueSegment::Potential,
        ValueSegment::AtRisk,
        ValueSegment::Regular,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ValueSegment::HighValue => "high_value",
            ValueSegment::Potential => "potential",
            ValueSegment::AtRisk => "at_risk",
            ValueSegment::Regular => "regular",
        }
    }
}

/// Scores 1–5 each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Rfm {
    pub r: u8,
    pub f: u8,
    pub m: u8,
}

/// A member's segments as stored on the member item (and shown in the member object).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Segments {
    pub lifecycle: Lifecycle,
    pub value: Option<ValueSegment>,
    pub rfm: Option<Rfm>,
    /// Predicted churn risk (from the fitted models; none before the first fit or without a
    /// purchase). Never in the member's own view: operators read it under `predictions`.
    #[serde(skip)]
    pub churn: Option<ChurnRisk>,
}

/// What the nightly job last counted a member in (for the daily entered/left flows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counted {
    pub lifecycle: Option<Lifecycle>,
    pub value: Option<ValueSegment>,
    pub tier: Option<Tier>,
    #[serde(default)]
    pub churn: Option<ChurnRisk>,
}

impl Counted {
    /// The segment ids this membership is in.
    pub fn ids(&self) -> Vec<SegmentId> {
        let mut out = Vec::new();
        out.extend(self.lifecycle.map(SegmentId::Lifecycle));
        out.extend(self.value.map(SegmentId::Value));
        out.extend(self.tier.map(SegmentId::Tier));
        out.extend(self.churn.map(SegmentId::Churn));
        out
    }
}

/// `lifecycle:dormant`, `value:high_value`, `tier:gold`, `churn:likely`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SegmentId {
    Lifecycle(Lifecycle),
    Value(ValueSegment),
    Tier(Tier),
    Churn(ChurnRisk),
}

impl SegmentId {
    /// Every segment, in the order the API lists them.
    pub fn all() -> Vec<SegmentId> {
        Lifecycle::ALL
            .into_iter()
            .map(SegmentId::Lifecycle)
            .chain(ValueSegment::ALL.into_iter().map(SegmentId::Value))
            .chain(Tier::ALL.into_iter().map(SegmentId::Tier))
            .chain(ChurnRisk::ALL.into_iter().map(SegmentId::Churn))
            .collect()
    }
    pub fn kind(self) -> &'static str {
        match self {
            SegmentId::Lifecycle(_) => "lifecycle",
            SegmentId::Value(_) => "value",
            SegmentId::Tier(_) => "tier",
            SegmentId::Churn(_) => "churn",
        }
    }
    /// The segment within its kind: `dormant` of `lifecycle:dormant`.
    pub fn name(self) -> &'static str {
        match self {
            SegmentId::Lifecycle(l) => l.as_str(),
            SegmentId::Value(v) => v.as_str(),
            SegmentId::Tier(t) => t.as_str(),
            SegmentId::Churn(c) => c.as_str(),
        }
    }
    pub fn parse(s: &str) -> Option<SegmentId> {
        SegmentId::all().into_iter().find(|id| id.to_string() == s)
    }
}

impl Serialize for SegmentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SegmentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SegmentId::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("no segment {s}")))
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.name())
    }
}

/// The compact stored forms of [`Segments`] (`a/h/545/l`: active, high value, RFM 5-4-5,
/// churn likely) and [`Counted`] (`a/h/g/l`: active, high value, gold, churn likely), one
/// letter a segment, `-` for none: the member item must stay under 1 KB. Items written before
/// the letters hold the names (`active/high_value/gold`) and no churn part; both read.
pub mod stored {
    use super::*;
    use serde::de::Error;
    use serde::{Deserializer, Serializer};

    /// A segment kind's stored letters.
    trait Lettered: Copy + Sized + 'static {
        const ALL: &'static [Self];
        fn name(self) -> &'static str;
        fn letter(self) -> char {
            self.name().chars().next().unwrap_or('-')
        }
    }
    macro_rules! lettered {
        ($($t:ty),*) => {$(
            impl Lettered for $t {
                const ALL: &'static [Self] = &<$t>::ALL;
                fn name(self) -> &'static str {
                    self.as_str()
                }
            }
        )*};
    }
    lettered!(Lifecycle, ValueSegment, Tier, ChurnRisk);

    #[test]
    fn each_letter_names_one_segment_of_its_kind() {
        fn unique<T: Lettered>() -> bool {
            let letters: std::collections::BTreeSet<char> =
                T::ALL.iter().map(|v| v.letter()).collect();
            letters.len() == T::ALL.len() && !letters.contains(&'-')
        }
        assert!(unique::<Lifecycle>() && unique::<ValueSegment>());
        assert!(unique::<Tier>() && unique::<ChurnRisk>());
    }

    fn letter<T: Lettered>(v: Option<T>) -> char {
        v.map_or('-', T::letter)
    }
    fn parse<T: Lettered>(s: &str) -> Result<Option<T>, String> {
        if s == "-" {
            return Ok(None);
        }
        T::ALL
            .iter()
            .find(|v| s == v.name() || (s.len() == 1 && s.starts_with(v.letter())))
            .copied()
            .map(Some)
            .ok_or_else(|| format!("no segment {s}"))
    }
    /// Three parts (written before churn risks) or four.
    fn parts(s: &str) -> Result<[&str; 4], String> {
        let v: Vec<&str> = s.split('/').collect();
        match v[..] {
            [a, b, c] => Ok([a, b, c, "-"]),
            [a, b, c, d] => Ok([a, b, c, d]),
            _ => Err(format!("{s}: expected three or four parts")),
        }
    }

    pub mod segments {
        use super::*;
        pub fn serialize<S: Serializer>(v: &Option<Segments>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                None => s.serialize_none(),
                Some(x) => s.serialize_str(&format!(
                    "{}/{}/{}/{}",
                    x.lifecycle.letter(),
                    letter(x.value),
                    x.rfm
                        .map_or("-".into(), |r| format!("{}{}{}", r.r, r.f, r.m)),
                    letter(x.churn),
                )),
            }
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Segments>, D::Error> {
            let Some(text) = Option::<String>::deserialize(d)? else {
                return Ok(None);
            };
            let [l, v, r, c] = parts(&text).map_err(D::Error::custom)?;
            let rfm = match r {
                "-" => None,
                digits => {
                    let d: Vec<u8> = digits
                        .bytes()
                        .filter(|b| (b'1'..=b'5').contains(b))
                        .map(|b| b - b'0')
                        .collect();
                    match d[..] {
                        [r, f, m] if digits.len() == 3 => Some(Rfm { r, f, m }),
                        _ => return Err(D::Error::custom(format!("rfm {digits}"))),
                    }
                }
            };
            Ok(Some(Segments {
                lifecycle: parse(l)
                    .map_err(D::Error::custom)?
                    .ok_or_else(|| D::Error::custom("no lifecycle"))?,
                value: parse(v).map_err(D::Error::custom)?,
                rfm,
                churn: parse(c).map_err(D::Error::custom)?,
            }))
        }
    }

    pub mod counted {
        use super::*;
        pub fn serialize<S: Serializer>(v: &Option<Counted>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                None => s.serialize_none(),
                Some(c) => s.serialize_str(&format!(
                    "{}/{}/{}/{}",
                    letter(c.lifecycle),
                    letter(c.value),
                    letter(c.tier),
                    letter(c.churn),
                )),
            }
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Counted>, D::Error> {
            let Some(text) = Option::<String>::deserialize(d)? else {
                return Ok(None);
            };
            let [l, v, t, c] = parts(&text).map_err(D::Error::custom)?;
            Ok(Some(Counted {
                lifecycle: parse(l).map_err(D::Error::custom)?,
                value: parse(v).map_err(D::Error::custom)?,
                tier: parse(t).map_err(D::Error::custom)?,
                churn: parse(c).map_err(D::Error::custom)?,
            }))
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRules {
    pub new_days: u32,
    pub dormant_after_days: u32,
    pub churned_after_days: u32,
    pub reactivated_days: u32,
}

/// Four cut points per score. `r` in days, descending (fewer days since the last purchase is
/// better); `f` (purchases) and `m` (minor units) ascending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CutPoints {
    pub r: [i64; 4],
    pub f: [i64; 4],
    pub m: [i64; 4],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RfmRules {
    pub min_members_for_quantiles: u64,
    pub fixed: CutPoints,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentRules {
    pub lifecycle: LifecycleRules,
    pub rfm: RfmRules,
}

/// Whole days from `from` to `to` (0 when `to` is earlier: a till clock slightly ahead).
pub fn days_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_days().max(0)
}

/// The member's purchasing activity the rules read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Activity {
    pub first_purchase_at: Option<DateTime<Utc>>,
    pub last_purchase_at: Option<DateTime<Utc>>,
    pub reactivated_at: Option<DateTime<Utc>>,
    /// Purchases (not fully refunded) in the qualifying window.
    pub purchases_in_window: i64,
    /// Net spend in the qualifying window, minor units.
    pub spend_in_window: i64,
}

impl Activity {
    pub fn of(
        first_purchase_at: Option<DateTime<Utc>>,
        last_purchase_at: Option<DateTime<Utc>>,
        reactivated_at: Option<DateTime<Utc>>,
        purchases: &MonthCounts,
        spend: &SpendBuckets,
        today: NaiveDate,
        window_months: u32,
    ) -> Activity {
        Activity {
            first_purchase_at,
            last_purchase_at,
            reactivated_at,
            purchases_in_window: purchases.qualifying(today, window_months),
            spend_in_window: spend.qualifying(today, window_months),
        }
    }
}

/// The stage as of `now`; the first that matches wins (DESIGN.md): prospect, new, reactivated,
/// active, dormant, churned. "Within N days" means fewer than N whole days have passed, so with
/// `dormant_after_days` 90 a member is active on day 89 and dormant from day 90.
pub fn lifecycle(a: &Activity, rules: &LifecycleRules, now: DateTime<Utc>) -> Lifecycle {
    let Some(last) = a.last_purchase_at else {
        return Lifecycle::Prospect;
    };
    let within = |at: DateTime<Utc>, days: u32| days_between(at, now) < i64::from(days);
    if within(a.first_purchase_at.unwrap_or(last), rules.new_days) {
        return Lifecycle::New;
    }
    if a.reactivated_at
        .is_some_and(|r| within(r, rules.reactivated_days))
    {
        return Lifecycle::Reactivated;
    }
    if within(last, rules.dormant_after_days) {
        Lifecycle::Active
    } else if within(last, rules.churned_after_days) {
        Lifecycle::Dormant
    } else {
        Lifecycle::Churned
    }
}

/// Whether a purchase by a member in this stage reactivates them.
pub fn reactivates(before: Lifecycle) -> bool {
    matches!(before, Lifecycle::Dormant | Lifecycle::Churned)
}

/// 1 + the number of cut points `days` is at or under.
pub fn score_recency(days: i64, cuts: &[i64; 4]) -> u8 {
    1 + cuts.iter().filter(|c| days <= **c).count() as u8
}

/// 1 + the number of cut points `value` reaches.
pub fn score_at_least(value: i64, cuts: &[i64; 4]) -> u8 {
    1 + cuts.iter().filter(|c| value >= **c).count() as u8
}

/// The RFM scores, or `None` for a member with no purchase in the window.
pub fn rfm(a: &Activity, cuts: &CutPoints, now: DateTime<Utc>) -> Option<Rfm> {
    let last = a.last_purchase_at?;
    if a.purchases_in_window <= 0 {
        return None;
    }
    Some(Rfm {
        r: score_recency(days_between(last, now), &cuts.r),
        f: score_at_least(a.purchases_in_window, &cuts.f),
        m: score_at_least(a.spend_in_window, &cuts.m),
    })
}

pub fn value_segment(s: Rfm) -> ValueSegment {
    if s.r >= 4 && s.f >= 4 && s.m >= 4 {
        ValueSegment::HighValue
    } else if s.r >= 4 {
        ValueSegment::Potential
    } else if s.r <= 2 && (s.f >= 4 || s.m >= 4) {
        ValueSegment::AtRisk
    } else {
        ValueSegment::Regular
    }
}

pub fn segments(
    a: &Activity,
    rules: &SegmentRules,
    cuts: &CutPoints,
    now: DateTime<Utc>,
) -> Segments {
    let scores = rfm(a, cuts, now);
    Segments {
        lifecycle: lifecycle(a, &rules.lifecycle, now),
        value: scores.map(value_segment),
        rfm: scores,
        churn: None,
    }
}

/// Net spend kept to two significant digits in the distribution, so a part's summary stays
/// small (a few hundred buckets per decade at most) and merging parts stays exact.
pub fn spend_bucket(v: i64) -> i64 {
    let v = v.max(0);
    if v < 100 {
        return v;
    }
    let digits = v.ilog10();
    let step = 10i64.pow(digits - 1);
    v / step * step
}

/// The R, F and M values of the purchasing members, as counts per value: parts of a run merge
/// by adding counts, so any split of the members gives the same quintiles.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distribution {
    pub r: BTreeMap<i64, u64>,
    pub f: BTreeMap<i64, u64>,
    pub m: BTreeMap<i64, u64>,
}

impl Distribution {
    pub fn add(&mut self, days: i64, purchases: i64, spend: i64) {
        *self.r.entry(days).or_default() += 1;
        *self.f.entry(purchases).or_default() += 1;
        *self.m.entry(spend_bucket(spend)).or_default() += 1;
    }
    pub fn merge(&mut self, other: &Distribution) {
        for (mine, theirs) in [
            (&mut self.r, &other.r),
            (&mut self.f, &other.f),
            (&mut self.m, &other.m),
        ] {
            for (k, n) in theirs {
                *mine.entry(*k).or_default() += n;
            }
        }
    }
    pub fn members(&self) -> u64 {
        self.f.values().sum()
    }

    /// The quintile cut points, or the fixed ones below `min_members`. Cut point k (1..=4) is
    /// the value at 0-based rank ⌊k·n/5⌋ in ascending order (for R, in descending order of
    /// days), so the bottom fifth reaches none and the top fifth all four.
    pub fn cut_points(&self, rules: &RfmRules) -> CutPoints {
        let n = self.members();
        if n < rules.min_members_for_quantiles || n == 0 {
            return rules.fixed;
        }
        let at = |map: &BTreeMap<i64, u64>, rank: u64, descending: bool| -> i64 {
            let rank = if descending { n - 1 - rank } else { rank };
            let mut seen = 0;
            for (v, c) in map {
                seen += c;
                if seen > rank {
                    return *v;
                }
            }
            *map.keys().next_back().unwrap_or(&0)
        };
        let cuts = |map, descending| [1u64, 2, 3, 4].map(|k| at(map, k * n / 5, descending));
        CutPoints {
            r: cuts(&self.r, true),
            f: cuts(&self.f, false),
            m: cuts(&self.m, false),
        }
    }
}

/// Names one run of the job (its parts and its flows): letters, digits, `-`, `_`, `.`, `:`, up
/// to 80 characters (a Step Functions execution name fits).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    pub fn parse(s: &str) -> Result<RunId, Invalid> {
        let ok = !s.is_empty()
            && s.len() <= 80
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if ok {
            Ok(RunId(s.to_owned()))
        } else {
            Err(Invalid::new(
                "a run id is 1 to 80 letters, digits, '-', '_', '.' or ':'",
            ))
        }
    }
    pub fn new_random() -> RunId {
        RunId(uuid::Uuid::now_v7().to_string())
    }
}

impl TryFrom<String> for RunId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        RunId::parse(&s).map_err(|e| e.0)
    }
}
impl From<RunId> for String {
    fn from(r: RunId) -> String {
        r.0
    }
}
impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a member's segments are judged against: the RFM cut points in force and, once fitted,
/// the prediction model.
#[derive(Clone, Debug, PartialEq)]
pub struct Standing {
    pub cuts: CutPoints,
    pub model: Option<super::predict::score::Model>,
}

/// The cut points in force: written by each run's finishing step, read by every purchase and
/// refund in the same batch as the member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentState {
    pub cutpoints: CutPoints,
    /// Whether they are quintiles (else the program's fixed cut points).
    pub quantiles: bool,
    pub computed_at: DateTime<Utc>,
    /// The prediction models in force (none before the first fit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fitted: Option<super::predict::score::Fitted>,
    /// The sample key the next run's parts keep rows below ([`super::predict::sample::next_bound`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_below: Option<u64>,
}

/// Program totals one run saw; cumulative sums, so flows over a period are differences.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub members: u64,
    pub active_members: u64,
    pub points_outstanding: i64,
    /// Σ lifetime earned (net of refunds) and redeemed, erased members included.
    pub lifetime_earned: i64,
    pub lifetime_redeemed: i64,
    /// Members with a purchase in the last 90 days, and those with two or more.
    pub purchasers_90d: u64,
    pub repeaters_90d: u64,
    /// Σ pending points, and Σ points expired ever (erased members included).
    #[serde(default)]
    pub points_pending: i64,
    #[serde(default)]
    pub lifetime_expired: i64,
    /// Members with a purchase summary (the population the predictions sample), and the
    /// members the run's model scored, with Σ CLV (minor units) of those likely to churn.
    #[serde(default)]
    pub purchasing: u64,
    #[serde(default)]
    pub scored: u64,
    #[serde(default)]
    pub clv_at_risk: i64,
}

/// What a part of a run saw: everything but the flows, which are their own records.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub examined: u64,
    pub changed: u64,
    pub failed: u64,
    pub sizes: BTreeMap<SegmentId, u64>,
    pub distribution: Distribution,
    pub totals: Totals,
    /// Enrolment month (`YYYY-MM`) → `[members, retained₀, retained₁, …]`.
    pub cohorts: BTreeMap<String, Vec<u64>>,
    /// Enrolment month → referred and organic members and their repeat buyers
    /// ([`RepeatCohort`]).
    #[serde(default)]
    pub referral_cohorts: BTreeMap<String, RepeatCohort>,
}

/// One enrolment month's members who applied a referral code and the others (organic), and
/// how many of each bought at least twice in the enrolment month and the two after (≈ 90 days).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepeatCohort {
    pub referred: u64,
    pub referred_repeat: u64,
    pub organic: u64,
    pub organic_repeat: u64,
}

impl RepeatCohort {
    pub fn merge(&mut self, o: &RepeatCohort) {
        self.referred += o.referred;
        self.referred_repeat += o.referred_repeat;
        self.organic += o.organic;
        self.organic_repeat += o.organic_repeat;
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SegmentPart {
    pub part: u32,
    pub parts: u32,
    /// How many chunks of the predictions' sample the part stored.
    #[serde(default)]
    pub sample_chunks: u32,
    pub now: DateTime<Utc>,
    pub tally: Tally,
    pub expires_at: i64,
}

/// One member's move in one run, written in the same commit as the member.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SegmentFlow {
    #[serde(with = "crate::domain::segment::stored::counted")]
    pub from: Option<Counted>,
    #[serde(with = "crate::domain::segment::stored::counted")]
    pub to: Option<Counted>,
    pub expires_at: i64,
}

/// One row per day a run finished: the last run's sizes, all runs' flows added up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentDay {
    pub date: NaiveDate,
    pub as_of: DateTime<Utc>,
    pub runs: Vec<RunId>,
    pub examined: u64,
    pub changed: u64,
    pub failed: u64,
    pub sizes: BTreeMap<SegmentId, u64>,
    pub entered: BTreeMap<SegmentId, u64>,
    pub left: BTreeMap<SegmentId, u64>,
    pub totals: Totals,
    pub cohorts: BTreeMap<String, Vec<u64>>,
    #[serde(default)]
    pub referral_cohorts: BTreeMap<String, RepeatCohort>,
    pub cutpoints: CutPoints,
}

/// Parts of a run add up.
impl Totals {
    pub fn merge(&mut self, o: &Totals) {
        self.members += o.members;
        self.active_members += o.active_members;
        self.points_outstanding += o.points_outstanding;
        self.lifetime_earned += o.lifetime_earned;
        self.lifetime_redeemed += o.lifetime_redeemed;
        self.purchasers_90d += o.purchasers_90d;
        self.repeaters_90d += o.repeaters_90d;
        self.points_pending += o.points_pending;
        self.lifetime_expired += o.lifetime_expired;
        self.purchasing += o.purchasing;
        self.scored += o.scored;
        self.clv_at_risk += o.clv_at_risk;
    }
}

impl Tally {
    pub fn merge(&mut self, o: &Tally) {
        self.examined += o.examined;
        self.changed += o.changed;
        self.failed += o.failed;
        add_counts(&mut self.sizes, &o.sizes);
        self.distribution.merge(&o.distribution);
        self.totals.merge(&o.totals);
        for (month, c) in &o.referral_cohorts {
            self.referral_cohorts
                .entry(month.clone())
                .or_default()
                .merge(c);
        }
        for (month, row) in &o.cohorts {
            let mine = self.cohorts.entry(month.clone()).or_default();
            if mine.len() < row.len() {
                mine.resize(row.len(), 0);
            }
            for (a, b) in mine.iter_mut().zip(row) {
                *a += b;
            }
        }
    }
}

/// The members one run moved into and out of each segment, counted from its flows. Only the
/// segments that differ count: a member whose value segment moved stayed in its stage and tier.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Moves {
    pub entered: BTreeMap<SegmentId, u64>,
    pub left: BTreeMap<SegmentId, u64>,
}

impl Moves {
    pub fn of(flows: &[SegmentFlow]) -> Self {
        let mut m = Moves::default();
        for flow in flows {
            let (from, to) = (
                flow.from.unwrap_or_default().ids(),
                flow.to.unwrap_or_default().ids(),
            );
            for id in from.iter().filter(|id| !to.contains(id)) {
                *m.left.entry(*id).or_insert(0) += 1;
            }
            for id in to.iter().filter(|id| !from.contains(id)) {
                *m.entered.entry(*id).or_insert(0) += 1;
            }
        }
        m
    }
}

fn add_counts(into: &mut BTreeMap<SegmentId, u64>, from: &BTreeMap<SegmentId, u64>) {
    for (k, n) in from {
        *into.entry(*k).or_default() += n;
    }
}

impl SegmentDay {
    /// The day's row with `run` folded in: the last run's sizes, totals and cohorts, every run's
    /// flows and changes added up. `None` when the row already has the run (a retried finish).
    pub fn with_run(
        existing: Option<&SegmentDay>,
        run: &RunId,
        date: NaiveDate,
        now: DateTime<Utc>,
        tally: &Tally,
        moves: &Moves,
        cutpoints: CutPoints,
    ) -> Option<SegmentDay> {
        let mut day = match existing {
            Some(d) if d.runs.contains(run) => return None,
            Some(d) => d.clone(),
            None => SegmentDay {
                date,
                as_of: now,
                runs: Vec::new(),
                examined: 0,
                changed: 0,
                failed: 0,
                sizes: BTreeMap::new(),
                entered: BTreeMap::new(),
                left: BTreeMap::new(),
                totals: Totals::default(),
                cohorts: BTreeMap::new(),
                referral_cohorts: BTreeMap::new(),
                cutpoints,
            },
        };
        day.runs.push(run.clone());
        day.as_of = now;
        day.examined = tally.examined;
        day.changed += tally.changed;
        day.failed = tally.failed;
        day.sizes = SegmentId::all()
            .into_iter()
            .map(|id| (id, tally.sizes.get(&id).copied().unwrap_or(0)))
            .collect();
        add_counts(&mut day.entered, &moves.entered);
        add_counts(&mut day.left, &moves.left);
        day.totals = tally.totals.clone();
        day.cohorts = tally.cohorts.clone();
        day.referral_cohorts = tally.referral_cohorts.clone();
        day.cutpoints = cutpoints;
        Some(day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn a_run_folds_into_its_days_row_once_with_flows_counted_only_where_segments_differ() {
        let c = |l, v, t| Counted {
            lifecycle: Some(l),
            value: v,
            tier: Some(t),
            churn: None,
        };
        let flow = |from, to| SegmentFlow {
            from,
            to,
            expires_at: 0,
        };
        let flows = [
            // Active → dormant, value and tier kept: one left, one entered.
            flow(
                Some(c(
                    Lifecycle::Active,
                    Some(ValueSegment::HighValue),
                    Tier::Gold,
                )),
                Some(c(
                    Lifecycle::Dormant,
                    Some(ValueSegment::HighValue),
                    Tier::Gold,
                )),
            ),
            // Enrolment: entered all three.
            flow(None, Some(c(Lifecycle::Prospect, None, Tier::Silver))),
            // Erasure: left both.
            flow(Some(c(Lifecycle::Dormant, None, Tier::Silver)), None),
        ];
        let m = Moves::of(&flows);
        let n = |pairs: &[(&str, u64)]| -> BTreeMap<SegmentId, u64> {
            pairs
                .iter()
                .map(|(k, v)| (SegmentId::parse(k).unwrap(), *v))
                .collect()
        };
        assert_eq!(
            m.left,
            n(&[
                ("lifecycle:active", 1),
                ("lifecycle:dormant", 1),
                ("tier:silver", 1)
            ])
        );
        assert_eq!(
            m.entered,
            n(&[
                ("lifecycle:dormant", 1),
                ("lifecycle:prospect", 1),
                ("tier:silver", 1)
            ])
        );
        let run = RunId::parse("run-1").unwrap();
        let date: NaiveDate = "2027-03-01".parse().unwrap();
        let at = t("2027-03-01T02:00:00Z");
        let tally = Tally {
            changed: 3,
            sizes: n(&[("lifecycle:dormant", 7)]),
            ..Tally::default()
        };
        let first = SegmentDay::with_run(None, &run, date, at, &tally, &m, FIXED).unwrap();
        assert_eq!(
            (
                first.changed,
                first.sizes[&SegmentId::parse("lifecycle:dormant").unwrap()],
                first.sizes[&SegmentId::parse("tier:gold").unwrap()]
            ),
            (3, 7, 0)
        );
        assert_eq!(
            SegmentDay::with_run(Some(&first), &run, date, at, &tally, &m, FIXED),
            None,
            "a retried finish adds nothing"
        );
        let again = RunId::parse("run-2").unwrap();
        let second =
            SegmentDay::with_run(Some(&first), &again, date, at, &tally, &m, FIXED).unwrap();
        assert_eq!(
            (
                second.changed,
                second.entered[&SegmentId::parse("lifecycle:dormant").unwrap()],
                second.sizes[&SegmentId::parse("lifecycle:dormant").unwrap()]
            ),
            (6, 2, 7)
        );
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const RULES: LifecycleRules = LifecycleRules {
        new_days: 30,
        dormant_after_days: 90,
        churned_after_days: 180,
        reactivated_days: 30,
    };

    const FIXED: CutPoints = CutPoints {
        r: [180, 90, 60, 30],
        f: [2, 3, 5, 8],
        m: [5000, 10000, 25000, 50000],
    };

    fn activity(first: Option<i64>, last: Option<i64>, react: Option<i64>) -> Activity {
        let now = t("2027-06-01T12:00:00Z");
        let ago = |d: i64| now - Duration::days(d);
        Activity {
            first_purchase_at: first.map(ago),
            last_purchase_at: last.map(ago),
            reactivated_at: react.map(ago),
            purchases_in_window: 1,
            spend_in_window: 100,
        }
    }

    #[test]
    fn lifecycle_table_at_every_boundary() {
        let now = t("2027-06-01T12:00:00Z");
        use Lifecycle::*;
        // (days since first purchase, since last, since reactivation) → stage
        for (first, last, react, want) in [
            (None, None, None, Prospect),
            (Some(0), Some(0), None, New),
            (Some(29), Some(29), None, New),
            (Some(30), Some(30), None, Active),
            (Some(31), Some(31), None, Active),
            (Some(400), Some(89), None, Active),
            (Some(400), Some(90), None, Dormant),
            (Some(400), Some(91), None, Dormant),
            (Some(400), Some(179), None, Dormant),
            (Some(400), Some(180), None, Churned),
            (Some(400), Some(181), None, Churned),
            // Reactivated for 30 days after the purchase that brought them back, then active.
            (Some(400), Some(0), Some(0), Reactivated),
            (Some(400), Some(29), Some(29), Reactivated),
            (Some(400), Some(30), Some(30), Active),
            (Some(400), Some(95), Some(95), Dormant),
            // New wins over reactivated (first match).
            (Some(10), Some(0), Some(0), New),
        ] {
            assert_eq!(
                lifecycle(&activity(first, last, react), &RULES, now),
                want,
                "first {first:?} last {last:?} reactivated {react:?}"
            );
        }
    }

    #[test]
    fn within_counts_whole_days() {
        let last = t("2027-01-01T23:59:00Z");
        let a = Activity {
            first_purchase_at: Some(last - Duration::days(500)),
            last_purchase_at: Some(last),
            ..activity(None, None, None)
        };
        // 89 days and 23 hours later: still active.
        let almost = last + Duration::days(89) + Duration::hours(23);
        assert_eq!(lifecycle(&a, &RULES, almost), Lifecycle::Active);
        assert_eq!(
            lifecycle(&a, &RULES, last + Duration::days(90)),
            Lifecycle::Dormant
        );
    }

    #[test]
    fn only_dormant_and_churned_members_are_reactivated() {
        for l in Lifecycle::ALL {
            assert_eq!(
                reactivates(l),
                matches!(l, Lifecycle::Dormant | Lifecycle::Churned),
                "{l:?}"
            );
        }
    }

    #[test]
    fn score_table_at_every_cut_point() {
        for (days, want) in [
            (0, 5),
            (30, 5),
            (31, 4),
            (60, 4),
            (61, 3),
            (90, 3),
            (91, 2),
            (180, 2),
            (181, 1),
        ] {
            assert_eq!(score_recency(days, &FIXED.r), want, "R {days} days");
        }
        for (f, want) in [
            (1, 1),
            (2, 2),
            (3, 3),
            (4, 3),
            (5, 4),
            (7, 4),
            (8, 5),
            (80, 5),
        ] {
            assert_eq!(score_at_least(f, &FIXED.f), want, "F {f}");
        }
        for (m, want) in [
            (0, 1),
            (4999, 1),
            (5000, 2),
            (9999, 2),
            (10000, 3),
            (25000, 4),
            (49999, 4),
            (50000, 5),
        ] {
            assert_eq!(score_at_least(m, &FIXED.m), want, "M {m}");
        }
    }

    #[test]
    fn value_segment_table() {
        use ValueSegment::*;
        let s = |r, f, m| Rfm { r, f, m };
        for (rfm, want) in [
            (s(4, 4, 4), HighValue),
            (s(5, 5, 5), HighValue),
            (s(4, 4, 3), Potential),
            (s(4, 1, 1), Potential),
            (s(5, 3, 5), Potential),
            (s(2, 4, 1), AtRisk),
            (s(1, 1, 4), AtRisk),
            (s(2, 3, 3), Regular),
            (s(3, 5, 5), Regular),
            (s(1, 1, 1), Regular),
        ] {
            assert_eq!(value_segment(rfm), want, "{rfm:?}");
        }
    }

    #[test]
    fn no_purchase_in_the_window_has_no_value_segment() {
        let now = t("2027-06-01T12:00:00Z");
        let mut a = activity(Some(400), Some(300), None);
        a.purchases_in_window = 0;
        a.spend_in_window = 0;
        let s = segments(
            &a,
            &SegmentRules {
                lifecycle: RULES,
                rfm: RfmRules {
                    min_members_for_quantiles: 100,
                    fixed: FIXED,
                },
            },
            &FIXED,
            now,
        );
        assert_eq!(
            (s.lifecycle, s.value, s.rfm),
            (Lifecycle::Churned, None, None)
        );
    }

    #[test]
    fn stored_forms_round_trip() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct S {
            #[serde(with = "stored::segments")]
            s: Option<Segments>,
            #[serde(with = "stored::counted")]
            c: Option<Counted>,
        }
        let samples = [
            S {
                s: Some(Segments {
                    lifecycle: Lifecycle::Reactivated,
                    value: Some(ValueSegment::HighValue),
                    rfm: Some(Rfm { r: 5, f: 4, m: 3 }),
                    churn: Some(ChurnRisk::Possible),
                }),
                c: Some(Counted {
                    lifecycle: Some(Lifecycle::Dormant),
                    value: None,
                    tier: Some(Tier::Diamond),
                    churn: Some(ChurnRisk::Unlikely),
                }),
            },
            S {
                s: Some(Segments {
                    lifecycle: Lifecycle::Prospect,
                    value: None,
                    rfm: None,
                    churn: None,
                }),
                c: Some(Counted::default()),
            },
            S { s: None, c: None },
        ];
        for x in samples {
            let text = serde_json::to_string(&x).unwrap();
            assert_eq!(serde_json::from_str::<S>(&text).unwrap(), x, "{text}");
        }
        let text = serde_json::to_string(&S {
            s: Some(Segments {
                lifecycle: Lifecycle::Active,
                value: Some(ValueSegment::AtRisk),
                rfm: Some(Rfm { r: 1, f: 4, m: 5 }),
                churn: Some(ChurnRisk::Likely),
            }),
            c: Some(Counted {
                tier: Some(Tier::Gold),
                ..Counted::default()
            }),
        })
        .unwrap();
        assert_eq!(text, r#"{"s":"a/a/145/l","c":"-/-/g/-"}"#);
        // Written before the letters and the churn part: the names, three parts.
        let old: S = serde_json::from_str(
            r#"{"s":"reactivated/high_value/555","c":"churned/at_risk/diamond"}"#,
        )
        .unwrap();
        assert_eq!(
            (
                old.s.unwrap().lifecycle,
                old.s.unwrap().value,
                old.s.unwrap().churn
            ),
            (Lifecycle::Reactivated, Some(ValueSegment::HighValue), None)
        );
        assert_eq!(
            old.c.unwrap(),
            Counted {
                lifecycle: Some(Lifecycle::Churned),
                value: Some(ValueSegment::AtRisk),
                tier: Some(Tier::Diamond),
                churn: None
            }
        );
        for bad in [
            r#"{"s":"active/-/6","c":null}"#,
            r#"{"s":"x/-/-","c":null}"#,
            r#"{"s":"active","c":null}"#,
            r#"{"s":"a/-/-/x","c":null}"#,
            r#"{"s":"a/-/-/-/-","c":null}"#,
        ] {
            assert!(serde_json::from_str::<S>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn segment_ids_round_trip_and_are_sixteen() {
        let all = SegmentId::all();
        assert_eq!(all.len(), 16);
        for id in all {
            assert_eq!(SegmentId::parse(&id.to_string()), Some(id));
        }
        assert_eq!(
            SegmentId::Value(ValueSegment::HighValue).to_string(),
            "value:high_value"
        );
        assert_eq!(SegmentId::parse("value:gold"), None);
        assert_eq!(SegmentId::parse("lifecycle:"), None);
    }

    #[test]
    fn spend_buckets_keep_two_significant_digits() {
        for (v, want) in [
            (-5, 0),
            (0, 0),
            (99, 99),
            (100, 100),
            (123, 120),
            (4999, 4900),
            (50000, 50000),
            (987_654, 980_000),
        ] {
            assert_eq!(spend_bucket(v), want, "{v}");
        }
    }

    #[test]
    fn quintiles_computed_by_hand() {
        let rules = RfmRules {
            min_members_for_quantiles: 5,
            fixed: FIXED,
        };
        let mut d = Distribution::default();
        // Ten members: days 10..=100, purchases 1..=10, spend 1000..=10000.
        for i in 1..=10i64 {
            d.add(i * 10, i, i * 1000);
        }
        // Ranks ⌊k·10/5⌋ = 2, 4, 6, 8 (0-based). Ascending F: 3, 5, 7, 9; M: 3000 … 9000.
        // Days descending (100, 90, …): 80, 60, 40, 20.
        assert_eq!(
            d.cut_points(&rules),
            CutPoints {
                r: [80, 60, 40, 20],
                f: [3, 5, 7, 9],
                m: [3000, 5000, 7000, 9000],
            }
        );
        // Below the minimum, the fixed cut points apply.
        let few = RfmRules {
            min_members_for_quantiles: 11,
            fixed: FIXED,
        };
        assert_eq!(d.cut_points(&few), FIXED);
    }

    #[test]
    fn any_split_of_the_members_merges_to_the_same_distribution() {
        let mut whole = Distribution::default();
        let mut parts = [
            Distribution::default(),
            Distribution::default(),
            Distribution::default(),
        ];
        for i in 0..300i64 {
            let (days, f, m) = (i * 7 % 365, i % 13 + 1, i * 1237 % 90_000);
            whole.add(days, f, m);
            parts[(i * 31 % 3) as usize].add(days, f, m);
        }
        let mut merged = Distribution::default();
        for p in &parts {
            merged.merge(p);
        }
        assert_eq!(merged, whole);
        let rules = RfmRules {
            min_members_for_quantiles: 100,
            fixed: FIXED,
        };
        assert_eq!(merged.cut_points(&rules), whole.cut_points(&rules));
    }
}
