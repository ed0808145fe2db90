//! The member as stored (one item, O(1) in size) and the rules that read it: tier progress,
//! ledger entry kinds, and the activity fields that segmentation (high-value, dormant, churned)
//! will be computed from.

use super::lots::{Lots, Notified};
use super::predict::score::{Model, Scores};
use super::predict::summary::PurchaseDays;
use super::segment::{
    Activity, Counted, Lifecycle, SegmentRules, Segments, Standing, reactivates, segments,
};
use super::spend::{MonthCounts, SpendBuckets};
use super::tier::{Tier, TierTable};
use super::{Birthday, Email, MemberId, Phone, Points, TimeZoneName};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A profile field an update may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProfileField {
    Name,
    Email,
    Phone,
    Timezone,
    Birthday,
}

impl ProfileField {
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileField::Name => "name",
            ProfileField::Email => "email",
            ProfileField::Phone => "phone",
            ProfileField::Timezone => "timezone",
            ProfileField::Birthday => "birthday",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub id: MemberId,
    pub name: String,
    pub phone: Option<Phone>,
    /// As written (an address accepted by an earlier, looser rule still reads back).
    #[serde(default, deserialize_with = "super::ids::stored_email")]
    pub email: Option<Email>,
    pub birthday: Option<Birthday>,
    /// The member's local date when the birthday was set (anti-gaming rule for gifts).
    #[serde(
        rename = "bs",
        alias = "bday_set",
        alias = "birthday_set_on",
        default,
        with = "stored_day"
    )]
    pub birthday_set_on: Option<NaiveDate>,
    #[serde(rename = "tz", alias = "timezone")]
    pub timezone: Option<TimeZoneName>,
    /// Whole seconds (stored as epoch seconds).
    #[serde(
        rename = "en",
        alias = "enrolled",
        alias = "enrolled_at",
        with = "stored_time"
    )]
    pub enrolled_at: DateTime<Utc>,
    pub tier: Tier,
    #[serde(
        rename = "te",
        alias = "tier_exp",
        alias = "tier_expires_on",
        default,
        with = "stored_day"
    )]
    pub tier_expires_on: Option<NaiveDate>,
    #[serde(rename = "bal", alias = "balance")]
    pub balance: Points,
    #[serde(rename = "er", alias = "earned", alias = "lifetime_earned")]
    pub lifetime_earned: Points,
    #[serde(rename = "sp", alias = "spend")]
    pub spend: SpendBuckets,
    /// Stored as epoch seconds under short names (older items: RFC 3339 under the long ones).
    #[serde(
        rename = "lp",
        alias = "last_purchase_at",
        default,
        with = "stored_time::option"
    )]
    pub last_purchase_at: Option<DateTime<Utc>>,
    #[serde(rename = "la", alias = "last_activity_at", with = "stored_time")]
    pub last_activity_at: DateTime<Utc>,
    /// Activity the lifecycle stage and RFM scores are computed from (DESIGN.md "Segments"):
    /// the first purchase, the one before the last (a repeat purchase within 90 days), when a
    /// purchase last brought the member back from dormant or churned, and purchases (not fully
    /// refunded) per calendar month, kept like `spend`.
    /// Stored compactly (epoch seconds, short names): the member item must stay under 1 KB.
    #[serde(
        rename = "fb",
        alias = "first_buy",
        default,
        with = "chrono::serde::ts_seconds_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub first_purchase_at: Option<DateTime<Utc>>,
    #[serde(
        rename = "pb",
        alias = "prev_buy",
        default,
        with = "chrono::serde::ts_seconds_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub previous_purchase_at: Option<DateTime<Utc>>,
    #[serde(
        rename = "rb",
        alias = "back_at",
        default,
        with = "chrono::serde::ts_seconds_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub reactivated_at: Option<DateTime<Utc>>,
    #[serde(rename = "by", alias = "buys", default)]
    pub purchases: MonthCounts,
    /// Purchase days as the prediction models read them (DESIGN.md "The member's purchase
    /// summary"): kept by purchases and refunds, recounted by the nightly run when stale or
    /// missing.
    #[serde(
        rename = "ps",
        default,
        with = "super::predict::summary::stored",
        skip_serializing_if = "Option::is_none"
    )]
    pub purchase_days: Option<PurchaseDays>,
    /// Points spent on rewards, net of cancellations (the overview's 30-day flows).
    #[serde(
        rename = "rd",
        alias = "redeemed",
        default,
        skip_serializing_if = "is_zero"
    )]
    pub lifetime_redeemed: Points,
    /// Points that expired, ever (the overview's 30-day flow).
    #[serde(rename = "ex", default, skip_serializing_if = "is_zero")]
    pub lifetime_expired: Points,
    /// The segments as of the member's last write or segments run; the segment indexes follow.
    #[serde(
        rename = "seg",
        default,
        with = "crate::domain::segment::stored::segments",
        skip_serializing_if = "Option::is_none"
    )]
    pub segments: Option<Segments>,
    /// What the last segments run counted this member in (its entered/left flows start here).
    #[serde(
        rename = "cnt",
        alias = "counted",
        default,
        with = "crate::domain::segment::stored::counted",
        skip_serializing_if = "Option::is_none"
    )]
    pub counted: Option<Counted>,
    /// The table's segment sizes count this member (DESIGN.md "Segment sizes"): false only on
    /// members last written before sizes were kept, until their next write counts them in.
    #[serde(rename = "sz", default, skip_serializing_if = "std::ops::Not::not")]
    pub sized: bool,
    /// The `seq` of the member's last event (0: none yet).
    #[serde(rename = "seq", alias = "event_seq", default)]
    pub event_seq: u64,
    /// The `occurred_at` of the member's last event (epoch microseconds): the next commit's
    /// events are stamped after it, so one member's events order the same by seq, by id and by
    /// time whatever the clocks of concurrent writers (or a job's own `now`) say.
    #[serde(
        rename = "ev",
        default,
        with = "chrono::serde::ts_microseconds_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_event_at: Option<DateTime<Utc>>,
    /// Set when the member was erased: the item is then a tombstone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<DateTime<Utc>>,
    /// The balance given up at erasure (never negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forfeited_points: Option<Points>,
    /// A debt (negative balance, from points refunded after they were spent) written off at
    /// erasure: nobody is left to owe it.
    #[serde(rename = "wo", default, skip_serializing_if = "Option::is_none")]
    pub written_off_points: Option<Points>,
    /// Pending points and dated lots (DESIGN.md "Points lots"), compact; absent while the balance
    /// alone describes them (one undated lot, nothing pending), as under the default program.
    #[serde(
        rename = "l",
        default,
        with = "crate::domain::lots::stored::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub lots: Option<Lots>,
    /// The next day the points job has something to do for this member (GSI8 lists members by
    /// it); kept by every write that moves points or activity.
    #[serde(
        rename = "pd",
        default,
        with = "stored_day",
        skip_serializing_if = "Option::is_none"
    )]
    pub points_due: Option<NaiveDate>,
    /// The last expiring-soon notice sent.
    #[serde(rename = "pn", default, skip_serializing_if = "Option::is_none")]
    pub notified: Option<Notified>,
    /// Whether the member applied a referral code, and while a purchase may still qualify it,
    /// the last day one may: a purchase of a member never referred reads nothing more.
    #[serde(rename = "rf", default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<crate::domain::referral::ReferralMark>,
    /// Whether the member's own referral code exists (made at enrolment; for members enrolled
    /// before that, by the next nightly segments run), so no read ever has to write one.
    #[serde(rename = "rc", default, skip_serializing_if = "std::ops::Not::not")]
    pub has_referral_code: bool,
}

fn is_zero(p: &Points) -> bool {
    p.0 == 0
}

impl Member {
    pub fn new(id: MemberId, name: String, now: DateTime<Utc>) -> Self {
        Member {
            id,
            name,
            phone: None,
            email: None,
            birthday: None,
            birthday_set_on: None,
            timezone: None,
            enrolled_at: chrono::SubsecRound::trunc_subsecs(now, 0),
            tier: Tier::Silver,
            tier_expires_on: None,
            balance: Points::ZERO,
            lifetime_earned: Points::ZERO,
            spend: SpendBuckets::default(),
            last_purchase_at: None,
            last_activity_at: now,
            first_purchase_at: None,
            previous_purchase_at: None,
            reactivated_at: None,
            purchases: MonthCounts::default(),
            purchase_days: None,
            lifetime_redeemed: Points::ZERO,
            lifetime_expired: Points::ZERO,
            segments: None,
            counted: None,
            sized: false,
            event_seq: 0,
            last_event_at: None,
            erased_at: None,
            forfeited_points: None,
            written_off_points: None,
            lots: None,
            points_due: None,
            notified: None,
            referral: None,
            has_referral_code: false,
        }
    }

    /// The member's lots as stored (or all of the balance in one undated lot).
    pub fn lots(&self) -> Lots {
        self.lots
            .clone()
            .unwrap_or_else(|| Lots::from_balance(self.balance.0))
    }

    /// Keeps `lots`, and the balance they leave spendable.
    pub fn set_lots(&mut self, lots: Lots) {
        self.balance = Points(lots.spendable());
        self.lots = (!lots.is_plain()).then_some(lots);
    }

    /// Points not yet spendable.
    pub fn pending(&self) -> Points {
        Points(self.lots.as_ref().map_or(0, Lots::pending_total))
    }
}

impl Member {
    /// The tombstone erasure leaves: no name, contact, birthday or time zone, nothing in an
    /// index, the balance forfeited. Amounts, tier and dates stay for the books.
    pub fn erased(mut self, now: DateTime<Utc>) -> Member {
        // Pending points go too, so the ledger still sums to nothing left; a debt is written off.
        let total = self.balance.0 + self.pending().0;
        self.forfeited_points = Some(Points(total.max(0)));
        self.written_off_points = Some(Points((-total).max(0)));
        self.balance = Points::ZERO;
        self.lots = None;
        self.points_due = None;
        self.notified = None;
        self.name = String::new();
        self.phone = None;
        self.email = None;
        self.birthday = None;
        self.birthday_set_on = None;
        self.timezone = None;
        self.tier_expires_on = None;
        self.segments = None;
        self.erased_at = Some(now);
        self
    }
}

impl Member {
    /// The purchasing activity segments are computed from, judged on `today`.
    pub fn activity(&self, today: NaiveDate, window_months: u32) -> Activity {
        Activity::of(
            self.first_purchase_at.or(self.last_purchase_at),
            self.last_purchase_at,
            self.reactivated_at,
            &self.purchases,
            &self.spend,
            today,
            window_months,
        )
    }

    /// The profile fields that differ from `was` (their names only: events carry no personal
    /// data).
    pub fn changed_fields(&self, was: &Member) -> Vec<ProfileField> {
        [
            (ProfileField::Name, self.name != was.name),
            (ProfileField::Email, self.email != was.email),
            (ProfileField::Phone, self.phone != was.phone),
            (ProfileField::Timezone, self.timezone != was.timezone),
            (ProfileField::Birthday, self.birthday != was.birthday),
        ]
        .into_iter()
        .filter_map(|(f, c)| c.then_some(f))
        .collect()
    }

    /// A purchase of `amount` (minor units) on `day` (the program's date) in the purchase
    /// summary. Call before [`Member::note_purchase_at`]: a member who bought before summaries
    /// were kept starts one marked stale, for the nightly run to recount from their history.
    pub fn note_purchase_day(&mut self, day: NaiveDate, amount: i64) {
        let bought_before = self.first_purchase_at.or(self.last_purchase_at).is_some();
        let mut s = PurchaseDays::purchased(self.purchase_days.as_ref(), day, amount);
        s.stale |= self.purchase_days.is_none() && bought_before;
        self.purchase_days = Some(s);
    }

    /// A refund of `amount` of a purchase made on `day` in the purchase summary (`emptied`: it
    /// refunds that purchase in full). Without a summary there is nothing to correct: the
    /// nightly run counts it from the history.
    pub fn note_refund_day(&mut self, day: NaiveDate, amount: i64, emptied: bool) {
        if let Some(s) = &self.purchase_days {
            self.purchase_days = Some(s.refunded(day, amount, emptied));
        }
    }

    /// Whether the purchase summary needs a recount from the history: stale, or missing on a
    /// member who bought.
    pub fn purchase_days_need_recount(&self) -> bool {
        match &self.purchase_days {
            Some(s) => s.stale,
            None => self.last_purchase_at.is_some() && self.erased_at.is_none(),
        }
    }

    /// Records when a purchase happened. `before` is the member's stage just before it: a
    /// purchase by a dormant or churned member reactivates them.
    pub fn note_purchase_at(&mut self, at: DateTime<Utc>, before: Lifecycle) {
        if reactivates(before) {
            self.reactivated_at = Some(at);
        }
        let first = self.first_purchase_at.or(self.last_purchase_at);
        self.first_purchase_at = Some(first.map_or(at, |f| f.min(at)));
        match self.last_purchase_at {
            // A late-arriving earlier sale can still be the one before the last.
            Some(last) if at < last => {
                if self.previous_purchase_at.is_none_or(|p| at > p) {
                    self.previous_purchase_at = Some(at);
                }
            }
            last => {
                self.previous_purchase_at = last;
                self.last_purchase_at = Some(at);
            }
        }
    }

    /// The member's segments as of `now` (none for an erased member); the churn risk from
    /// `model`, when one is fitted and the member has bought.
    pub fn segments_at(
        &self,
        rules: &SegmentRules,
        standing: &Standing,
        now: DateTime<Utc>,
        today: NaiveDate,
        window_months: u32,
    ) -> Option<Segments> {
        if self.erased_at.is_some() {
            return None;
        }
        let mut s = segments(
            &self.activity(today, window_months),
            rules,
            &standing.cuts,
            now,
        );
        s.churn = self
            .scores(standing.model.as_ref(), today)
            .map(|s| s.churn_risk);
        Some(s)
    }

    /// The member's predicted scores on `today` (none before a fit or without a purchase).
    pub fn scores(&self, model: Option<&Model>, today: NaiveDate) -> Option<Scores> {
        Some(model?.score(self.purchase_days.as_ref()?, today))
    }

    /// The segments the member is in now, as the job counts them.
    pub fn membership(&self) -> Counted {
        if self.erased_at.is_some() {
            return Counted::default();
        }
        Counted {
            lifecycle: self.segments.map(|s| s.lifecycle),
            value: self.segments.and_then(|s| s.value),
            tier: Some(self.tier),
            churn: self.segments.and_then(|s| s.churn),
        }
    }
}

/// Where a member stands against the next tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TierProgress {
    pub qualifying_spend: i64,
    pub next_tier: Option<Tier>,
    pub spend_to_next_tier: Option<i64>,
}

pub fn tier_progress(
    tier: Tier,
    spend: &SpendBuckets,
    table: &TierTable,
    today: NaiveDate,
    window_months: u32,
) -> TierProgress {
    let qualifying_spend = spend.qualifying(today, window_months);
    let next_tier = tier.next();
    TierProgress {
        qualifying_spend,
        next_tier,
        spend_to_next_tier: next_tier.map(|t| {
            table
                .rule(t)
                .threshold
                .saturating_sub(qualifying_spend)
                .max(0)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::earning::Multiplier;
    use crate::domain::tier::TierRule;

    #[test]
    fn changed_fields_names_each_field_that_differs_and_only_those() {
        let at: DateTime<Utc> = "2026-11-22T10:00:00Z".parse().unwrap();
        let was = Member::new(MemberId::parse("m").unwrap(), "Ada".into(), at);
        type Edit = fn(&mut Member);
        let edits: [(ProfileField, Edit); 5] = [
            (ProfileField::Name, |m| m.name = "Bo".into()),
            (ProfileField::Email, |m| {
                m.email = Some(crate::domain::Email::parse("a@b.example").unwrap())
            }),
            (ProfileField::Phone, |m| {
                m.phone = Some(crate::domain::Phone::parse("+14155550111").unwrap())
            }),
            (ProfileField::Timezone, |m| {
                m.timezone = Some(crate::domain::TimeZoneName(chrono_tz::Asia::Shanghai))
            }),
            (ProfileField::Birthday, |m| {
                m.birthday = Some(crate::domain::Birthday::parse("1990-02-03").unwrap())
            }),
        ];
        assert!(was.changed_fields(&was).is_empty());
        let mut all = was.clone();
        for (field, edit) in edits {
            let mut m = was.clone();
            edit(&mut m);
            assert_eq!(m.changed_fields(&was), vec![field]);
            edit(&mut all);
        }
        assert_eq!(all.changed_fields(&was).len(), 5);
    }

    #[test]
    fn progress_table() {
        let r = |threshold| TierRule {
            threshold,
            multiplier: Multiplier::ONE,
            birthday_points: Points(0),
        };
        let table = TierTable {
            silver: r(0),
            gold: r(100_000),
            diamond: r(500_000),
        };
        let today: NaiveDate = "2026-11-22".parse().unwrap();
        for (tier, spent, next, to_next) in [
            (Tier::Silver, 42_000, Some(Tier::Gold), Some(58_000)),
            (Tier::Silver, 120_000, Some(Tier::Gold), Some(0)),
            (Tier::Gold, 120_000, Some(Tier::Diamond), Some(380_000)),
            (Tier::Diamond, 10, None, None),
        ] {
            let mut b = SpendBuckets::default();
            b.add(today, spent, today, 13).unwrap();
            let p = tier_progress(tier, &b, &table, today, 12);
            assert_eq!(
                (p.qualifying_spend, p.next_tier, p.spend_to_next_tier),
                (spent, next, to_next)
            );
        }
    }

    #[test]
    fn the_erasure_tombstone_keeps_no_personal_data_and_forfeits_the_balance() {
        let now: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
        let mut m = Member::new(MemberId::parse("m").unwrap(), "Ada Lovelace".into(), now);
        m.email = Some(Email::parse("ada@example.com").unwrap());
        m.phone = Some(Phone::parse("+8613800000000").unwrap());
        m.birthday = Some(Birthday::parse("1990-11-22").unwrap());
        m.timezone = Some(TimeZoneName::parse("Asia/Shanghai").unwrap());
        m.balance = Points(120);
        let t = m.erased(now);
        let text = serde_json::to_string(&t).unwrap();
        for secret in [
            "Ada",
            "ada@example.com",
            "8613800000000",
            "Asia/Shanghai",
            "11-22",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(
            (t.balance, t.forfeited_points),
            (Points(0), Some(Points(120)))
        );
    }
}

/// Instants on the member item as epoch seconds (6 bytes in DynamoDB, not 30), reading the RFC
/// 3339 strings older items hold too.
mod stored_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Seconds(i64),
        Text(DateTime<Utc>),
    }

    fn read(s: Stored) -> Result<DateTime<Utc>, String> {
        match s {
            Stored::Seconds(n) => {
                DateTime::from_timestamp(n, 0).ok_or_else(|| format!("{n} is not an instant"))
            }
            Stored::Text(t) => Ok(t),
        }
    }

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.timestamp())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        read(Stored::deserialize(d)?).map_err(serde::de::Error::custom)
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_some(&t.timestamp()),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            Option::<Stored>::deserialize(d)?
                .map(read)
                .transpose()
                .map_err(serde::de::Error::custom)
        }
    }
}

/// Days on the member item as whole days since 1970-01-01 (4 bytes, not 10); items written
/// before hold `YYYY-MM-DD`, which still reads.
mod stored_day {
    use chrono::NaiveDate;
    use serde::{Deserialize, Deserializer, Serializer};

    const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Days(i64),
        Text(NaiveDate),
    }

    pub fn serialize<S: Serializer>(d: &Option<NaiveDate>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(*d - EPOCH).num_days()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
        Option::<Stored>::deserialize(d)?
            .map(|s| match s {
                Stored::Days(n) => chrono::Duration::try_days(n)
                    .and_then(|n| EPOCH.checked_add_signed(n))
                    .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a day"))),
                Stored::Text(d) => Ok(d),
            })
            .transpose()
    }
}
