//! Every record kind of the single table (DESIGN.md "Single-table layout"): its key, its index
//! attributes and, for the records only the services persist, its stored shape.

use super::{IndexEntry, Listed, Record};
use crate::domain::event::Event;
use crate::domain::member::Member;
use crate::domain::reward::Reward;
use crate::domain::voucher::RedemptionStatus;
use crate::domain::{MemberId, Money, Phone, Points, ReceiptId, RefundId, RewardId, StoreId, Tier};
use crate::service::Idempotency;
use crate::service::accrual::{PurchaseLine, PurchaseReceipt, RefundReceipt};
use crate::service::members::LedgerEntry;
use crate::service::redemption::Redemption;
use crate::store::{Index, Key, SortKey};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

const MEMBER: &str = "MEMBER#";
const PROFILE: &str = "PROFILE";
const LEDGER: &str = "LEDGER#";
const EVENT: &str = "EVENT#";
const REDEMPTION: &str = "REDEMPTION#";

fn member_pk(id: &MemberId) -> String {
    format!("{MEMBER}{id}")
}

/// The member a member-partition key belongs to (index rows carry table keys).
pub(super) fn member_of_key(k: &Key) -> Option<MemberId> {
    k.pk.strip_prefix(MEMBER)
        .and_then(|id| MemberId::parse(id).ok())
}

// ---- indexes: each partition and sort key is built by one function, used to write and to read.

fn birthday_partition(month_day: &str) -> String {
    format!("BIRTHDAY#{month_day}")
}

fn tier_expiry_partition(day: NaiveDate) -> String {
    format!("TIEREXPIRY#{}", day.format("%Y-%m"))
}

fn tier_expiry_day(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

const CATALOG_PARTITION: &str = "CATALOG";
pub(super) const CATALOG_KIND: &str = "catalog";

fn catalog_sort(r: &Reward) -> String {
    let at = r.created_at.unwrap_or(r.updated_at);
    format!("{}#{}", at.format("%Y-%m-%dT%H:%M:%S%.6fZ"), r.id)
}

pub(super) fn catalog_range() -> (Index, String, SortKey) {
    (Index::Gsi1, CATALOG_PARTITION.to_owned(), SortKey::All)
}

/// The member work lists the scheduled jobs read from the sparse indexes.
#[derive(Clone, Debug)]
pub enum MemberIndex {
    /// Members whose birthday is this `MM-DD`.
    Birthday(String),
    /// Members whose tier expires in the month of `month`, on a day before `before`.
    TierExpiry { month: NaiveDate, before: NaiveDate },
}

impl MemberIndex {
    pub(super) fn range(&self) -> (Index, String, SortKey) {
        match self {
            MemberIndex::Birthday(md) => (Index::Gsi1, birthday_partition(md), SortKey::All),
            MemberIndex::TierExpiry { month, before } => (
                Index::Gsi2,
                tier_expiry_partition(*month),
                SortKey::Before(tier_expiry_day(*before)),
            ),
        }
    }
}

// ---- records

impl Record for Member {
    type Id = MemberId;
    const KIND: &'static str = "member";
    fn key(id: &MemberId) -> Key {
        Key::new(member_pk(id), PROFILE)
    }
    /// GSI1 by birthday, GSI2 by tier expiry month. Balance-only updates leave both unchanged,
    /// so they cost no index writes.
    fn index_entries(&self, id: &MemberId) -> Vec<IndexEntry> {
        let mut out = Vec::new();
        if let Some(b) = self.birthday {
            out.push(IndexEntry {
                index: Index::Gsi1,
                pk: birthday_partition(&b.month_day()),
                sk: member_pk(id),
            });
        }
        if let Some(exp) = self.tier_expires_on {
            out.push(IndexEntry {
                index: Index::Gsi2,
                pk: tier_expiry_partition(exp),
                sk: format!("{}#{id}", tier_expiry_day(exp)),
            });
        }
        out
    }
}

/// Makes phones unique: enrolment and phone changes create it conditioned on absence.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PhoneClaim {
    pub member_id: MemberId,
}

impl Record for PhoneClaim {
    type Id = Phone;
    const KIND: &'static str = "phone";
    fn key(p: &Phone) -> Key {
        Key::new(format!("PHONE#{}", p.as_str()), "PHONE")
    }
}

/// A ledger line as stored: the entry, keyed by the `seq` of the event it records, carrying
/// that event and the line-less events of its commit just before it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LedgerLine {
    #[serde(flatten)]
    pub entry: LedgerEntry,
    pub seq: u64,
    pub events: Vec<Event>,
}

fn seq_key(prefix: &str, seq: u64) -> String {
    format!("{prefix}{seq:012}")
}

impl Record for LedgerLine {
    type Id = (MemberId, u64);
    const KIND: &'static str = "ledger";
    fn key((m, seq): &(MemberId, u64)) -> Key {
        Key::new(member_pk(m), seq_key(LEDGER, *seq))
    }
    fn index_entries(&self, _: &(MemberId, u64)) -> Vec<IndexEntry> {
        event_index(&self.events)
    }
}

impl Listed for LedgerLine {
    type Owner = MemberId;
    fn range(m: &MemberId) -> (String, SortKey) {
        (member_pk(m), SortKey::Prefix(LEDGER.into()))
    }
}

/// Events of a commit that no ledger line carries (enrolment, a profile change, a voucher used),
/// keyed by the last one's `seq`. They expire with the event retention.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventCarrier {
    pub events: Vec<Event>,
    pub expires_at: i64,
}

impl Record for EventCarrier {
    type Id = (MemberId, u64);
    const KIND: &'static str = "events";
    fn key((m, seq): &(MemberId, u64)) -> Key {
        Key::new(member_pk(m), seq_key(EVENT, *seq))
    }
    fn index_entries(&self, _: &(MemberId, u64)) -> Vec<IndexEntry> {
        event_index(&self.events)
    }
}

impl Listed for EventCarrier {
    type Owner = MemberId;
    fn range(m: &MemberId) -> (String, SortKey) {
        (member_pk(m), SortKey::Prefix(EVENT.into()))
    }
}

/// The position just after `seq` in a seq-keyed collection of `R` (ledger lines, carriers).
pub(super) fn after_seq<R: Listed<Owner = MemberId>>(
    m: &MemberId,
    seq: u64,
) -> (String, SortKey, String) {
    let (pk, sort) = R::range(m);
    let prefix = match &sort {
        SortKey::Prefix(p) => p.clone(),
        _ => String::new(),
    };
    (pk, sort, seq_key(&prefix, seq))
}

/// Carriers of events, by the hour of their first event (GSI3): the global feed reads the hours
/// of its window, the webhook tailer the hours since its position.
fn events_hour(at: DateTime<Utc>) -> String {
    format!("EVENTS#{}", at.format("%Y-%m-%dT%H"))
}

fn event_index(events: &[Event]) -> Vec<IndexEntry> {
    match events.first() {
        Some(first) => vec![IndexEntry {
            index: Index::Gsi3,
            pk: events_hour(first.occurred_at),
            sk: first.id.to_string(),
        }],
        None => Vec::new(),
    }
}

/// What any carrier (ledger line or event carrier) holds, read from the event index.
#[derive(Deserialize, Serialize)]
pub(super) struct Carried {
    pub events: Vec<Event>,
}

impl Record for Carried {
    type Id = Key;
    const KIND: &'static str = "carrier";
    fn key(k: &Key) -> Key {
        k.clone()
    }
}

/// The carriers whose first event falls in the hour starting at `hour` and whose first event id
/// is at least `from_id` (a position, not a cursor: the caller filters exactly).
pub(super) fn events_hour_range(hour: DateTime<Utc>) -> (Index, String, SortKey) {
    (Index::Gsi3, events_hour(hour), SortKey::All)
}

impl Record for Redemption {
    type Id = (MemberId, Uuid);
    const KIND: &'static str = "redemption";
    fn key((m, id): &(MemberId, Uuid)) -> Key {
        Key::new(member_pk(m), format!("{REDEMPTION}{id}"))
    }
}

impl Listed for Redemption {
    type Owner = MemberId;
    fn range(m: &MemberId) -> (String, SortKey) {
        (member_pk(m), SortKey::Prefix(REDEMPTION.into()))
    }
}

/// A purchase, idempotent by store and receipt: the request digest and the response are kept
/// so a replay answers the same and a different body is refused.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PurchaseRecord {
    pub purchase_id: Uuid,
    pub member_id: MemberId,
    pub amount: Money,
    pub occurred_at: DateTime<Utc>,
    pub points_earned: Points,
    /// Minor units refunded so far, in the purchase's currency.
    pub refunded_total: i64,
    pub lines: Vec<PurchaseLine>,
    pub request_hash: String,
    pub response: PurchaseReceipt,
    pub created_at: DateTime<Utc>,
}

fn purchase_pk(store: &StoreId, receipt: &ReceiptId) -> String {
    format!("PURCHASE#{store}#{receipt}")
}

impl Record for PurchaseRecord {
    type Id = (StoreId, ReceiptId);
    const KIND: &'static str = "purchase";
    fn key((s, r): &(StoreId, ReceiptId)) -> Key {
        Key::new(purchase_pk(s, r), "PURCHASE")
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefundRecord {
    pub amount: Money,
    pub points_reversed: Points,
    pub request_hash: String,
    pub response: RefundReceipt,
    pub created_at: DateTime<Utc>,
}

impl Record for RefundRecord {
    type Id = (StoreId, ReceiptId, RefundId);
    const KIND: &'static str = "refund";
    fn key((s, r, id): &(StoreId, ReceiptId, RefundId)) -> Key {
        Key::new(purchase_pk(s, r), format!("REFUND#{id}"))
    }
}

impl Record for Reward {
    type Id = RewardId;
    const KIND: &'static str = "reward";
    fn key(id: &RewardId) -> Key {
        Key::new(format!("REWARD#{id}"), "REWARD")
    }
    /// Only active rewards are in the catalog index, so a catalog page never comes back empty
    /// with a cursor because inactive rewards were filtered out after the query.
    fn index_entries(&self, _: &RewardId) -> Vec<IndexEntry> {
        if !self.active {
            return Vec::new();
        }
        vec![IndexEntry {
            index: Index::Gsi1,
            pk: CATALOG_PARTITION.into(),
            sk: catalog_sort(self),
        }]
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Voucher {
    pub code: String,
    pub redemption_id: Uuid,
    pub member_id: MemberId,
    pub reward_id: RewardId,
    pub status: RedemptionStatus,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub used_store_id: Option<StoreId>,
}

impl Record for Voucher {
    /// The normalised code.
    type Id = str;
    const KIND: &'static str = "voucher";
    fn key(code: &str) -> Key {
        Key::new(format!("VOUCHER#{code}"), "VOUCHER")
    }
}

/// How many of one reward a member holds (for `per_member_limit`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RewardCount {
    pub count: u32,
}

impl Record for RewardCount {
    type Id = (MemberId, RewardId);
    const KIND: &'static str = "reward count";
    fn key((m, r): &(MemberId, RewardId)) -> Key {
        Key::new(member_pk(m), format!("REWARDCOUNT#{r}"))
    }
}

/// One birthday gift per member and year.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gift {
    pub year: i32,
    pub celebrated_on: NaiveDate,
    pub tier: Tier,
    pub points: Points,
    pub voucher_code: Option<String>,
    pub given_at: DateTime<Utc>,
}

impl Record for Gift {
    type Id = (MemberId, i32);
    const KIND: &'static str = "gift";
    fn key((m, year): &(MemberId, i32)) -> Key {
        Key::new(member_pk(m), format!("GIFT#{year:04}"))
    }
}

/// What an `Idempotency-Key` request left: its digest and its response, until `expires_at`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub request_hash: String,
    pub response: Value,
    pub expires_at: i64,
}

impl Record for IdempotencyRecord {
    type Id = Idempotency;
    const KIND: &'static str = "idempotency";
    fn key(i: &Idempotency) -> Key {
        // Hashed so that any key text (up to 255 characters, any separator) makes a safe, short
        // key, and keys of different callers and operations never collide.
        let digest =
            crate::service::idempotency::sha256_hex(&[i.scope.as_bytes(), i.key.as_bytes()]);
        Key::new(format!("IDEMPOTENCY#{digest}"), "IDEMPOTENCY")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_expiry_index_is_written_and_read_with_the_same_partition() {
        let mut m = Member::new(MemberId::parse("m-1").unwrap(), "A".into(), Utc::now());
        let exp: NaiveDate = "2027-03-10".parse().unwrap();
        m.tier_expires_on = Some(exp);
        let written = m.index_entries(&m.id.clone());
        let (ix, pk, sort) = MemberIndex::TierExpiry {
            month: "2027-03-01".parse().unwrap(),
            before: "2027-03-11".parse().unwrap(),
        }
        .range();
        let w = written.iter().find(|e| e.index == ix).unwrap();
        assert_eq!(w.pk, pk);
        assert!(
            sort.matches(&w.sk),
            "expired on 10 March is before 11 March"
        );
        let (_, _, not_yet) = MemberIndex::TierExpiry {
            month: "2027-03-31".parse().unwrap(),
            before: exp,
        }
        .range();
        assert!(!not_yet.matches(&w.sk), "not before its own day");
    }

    #[test]
    fn birthday_index_is_written_and_read_with_the_same_partition() {
        let mut m = Member::new(MemberId::parse("m-1").unwrap(), "A".into(), Utc::now());
        m.birthday = Some(crate::domain::Birthday::parse("02-29").unwrap());
        let w = m.index_entries(&m.id.clone()).remove(0);
        let (ix, pk, _) = MemberIndex::Birthday("02-29".into()).range();
        assert_eq!((w.index, w.pk.as_str()), (ix, pk.as_str()));
        assert_eq!(member_of_key(&Key::new(w.sk.clone(), PROFILE)), Some(m.id));
    }

    #[test]
    fn inactive_rewards_leave_the_catalog_index() {
        let mut r = Reward {
            id: RewardId::parse("r").unwrap(),
            name: "R".into(),
            description: None,
            cost_points: Points(1),
            min_tier: Tier::Silver,
            stock: None,
            issued: 0,
            per_member_limit: None,
            active: true,
            created_at: None,
            updated_at: Utc::now(),
        };
        assert_eq!(r.index_entries(&r.id.clone()).len(), 1);
        r.active = false;
        assert!(r.index_entries(&r.id.clone()).is_empty());
    }
}
