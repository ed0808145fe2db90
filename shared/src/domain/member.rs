//! The member as stored (one item, O(1) in size) and the rules that read it: tier progress,
//! ledger entry kinds, and the activity fields that segmentation (high-value, dormant, churned)
//! will be computed from.

use super::spend::SpendBuckets;
use super::tier::{Tier, TierTable};
use super::{Birthday, Email, MemberId, Phone, Points, TimeZoneName};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub id: MemberId,
    pub name: String,
    pub phone: Option<Phone>,
    pub email: Option<Email>,
    pub birthday: Option<Birthday>,
    /// The member's local date when the birthday was set (anti-gaming rule for gifts).
    pub birthday_set_on: Option<NaiveDate>,
    pub timezone: Option<TimeZoneName>,
    pub enrolled_at: DateTime<Utc>,
    pub tier: Tier,
    pub tier_expires_on: Option<NaiveDate>,
    pub balance: Points,
    pub lifetime_earned: Points,
    pub spend: SpendBuckets,
    /// Net lifetime spend in minor units, purchase count and last purchase: inputs for RFM
    /// segmentation, kept on the item so segments never need the purchase history.
    pub lifetime_spend: i64,
    pub purchase_count: u64,
    pub last_purchase_at: Option<DateTime<Utc>>,
    pub last_activity_at: DateTime<Utc>,
    /// The `seq` of the member's last event (0: none yet).
    #[serde(default)]
    pub event_seq: u64,
    /// Set when the member was erased: the item is then a tombstone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<DateTime<Utc>>,
    /// The balance given up at erasure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forfeited_points: Option<Points>,
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
            enrolled_at: now,
            tier: Tier::Silver,
            tier_expires_on: None,
            balance: Points::ZERO,
            lifetime_earned: Points::ZERO,
            spend: SpendBuckets::default(),
            lifetime_spend: 0,
            purchase_count: 0,
            last_purchase_at: None,
            last_activity_at: now,
            event_seq: 0,
            erased_at: None,
            forfeited_points: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    Adjustment,
    Purchase,
    Refund,
    Redemption,
    RedemptionCancelled,
    BirthdayGift,
    TierUpgrade,
    TierDowngrade,
    /// The balance given up when a member is erased.
    ErasureForfeit,
}

impl Member {
    /// The tombstone erasure leaves: no name, contact, birthday or time zone, nothing in an
    /// index, the balance forfeited. Amounts, tier and dates stay for the books.
    pub fn erased(mut self, now: DateTime<Utc>) -> Member {
        self.forfeited_points = Some(self.balance);
        self.balance = Points::ZERO;
        self.name = String::new();
        self.phone = None;
        self.email = None;
        self.birthday = None;
        self.birthday_set_on = None;
        self.timezone = None;
        self.tier_expires_on = None;
        self.erased_at = Some(now);
        self
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

    use crate::store::value_size as dynamodb_size;

    #[test]
    fn dynamodb_size_table() {
        use serde_json::json;
        for (v, size) in [
            (json!(null), 1),
            (json!("abc"), 3),
            (json!(12345), 4),
            (json!(-7), 2),
            (json!([1, "a"]), 3 + 3 + 2),
            (json!({"ab": 1}), 3 + 1 + 2 + 2),
        ] {
            assert_eq!(dynamodb_size(&v), size, "{v}");
        }
    }

    #[test]
    fn typical_member_with_full_history_stays_well_under_one_kilobyte() {
        // One write unit is 1 KB. The store adds the keys, the version and two indexes' attributes
        // for a UUID id (counted below), so a typical member item must fit under 1,024 bytes with
        // room to spare for growth.
        let now = Utc::now();
        let mut m = Member::new(MemberId::new_random(), "Ada Lovelace-Byron".into(), now);
        m.email = Some(Email::parse("ada.lovelace@example.com").unwrap());
        m.phone = Some(Phone::parse("+8613800000000").unwrap());
        m.birthday = Some(Birthday::parse("1990-11-22").unwrap());
        m.birthday_set_on = Some(now.date_naive());
        m.timezone = Some(TimeZoneName::parse("America/Los_Angeles").unwrap());
        m.tier_expires_on = Some(now.date_naive());
        m.last_purchase_at = Some(now);
        let mut day: NaiveDate = "2025-01-01".parse().unwrap();
        for _ in 0..24 {
            m.spend.add(day, 99_999_999, day, 13).unwrap();
            day = crate::domain::tier::add_months(day, 1);
        }
        // The store's own attributes, as the table layer builds them.
        use crate::table::Record;
        let key = Member::key(&m.id);
        let store_attrs = "PK".len()
            + key.pk.len()
            + "SK".len()
            + key.sk.len()
            + "version".len()
            + 4
            + m.index_entries(&m.id)
                .iter()
                .map(|e| {
                    e.index.pk_attr().len() + e.pk.len() + e.index.sk_attr().len() + e.sk.len()
                })
                .sum::<usize>();
        let own = dynamodb_size(&serde_json::to_value(&m).unwrap()) - 3;
        let size = own + store_attrs;
        assert!(
            size < 900,
            "the member item takes {size} bytes ({own} its own)"
        );
    }
}
