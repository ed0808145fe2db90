//! Every record kind of the single table (DESIGN.md "Single-table layout"): its key, its index
//! attributes and, for the records only the services persist, its stored shape.

use super::{IndexEntry, Listed, Record};
use crate::domain::audit::AuditRecord;
use crate::domain::campaign::{Assignment, Campaign, CampaignCredit, RunningCampaigns};
use crate::domain::daily::DailyFigures;
use crate::domain::event::Event;
use crate::domain::ledger::LedgerEntry;
use crate::domain::member::Member;
use crate::domain::receipt::{PurchaseLine, PurchaseReceipt, RefundReceipt};
use crate::domain::referral::Referral;
use crate::domain::referral::{self, Counts, ReferralCode, ReferralStatus};
use crate::domain::reward::Redemption;
use crate::domain::reward::Reward;
use crate::domain::segment::SegmentId;
use crate::domain::segment::{RunId, SegmentDay, SegmentFlow, SegmentPart, SegmentState};
use crate::domain::voucher::RedemptionStatus;
use crate::domain::{
    CampaignId, MemberId, Money, Phone, Points, ReceiptId, RefundId, RewardId, StoreId, Tier,
};
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

fn date_sk(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

// GSI8 holds only members: the month alone (`2703` for March 2027), no prefix, then the shard;
// and the day of the month (every byte counts on the member item).
fn points_due_partition(day: NaiveDate, shard: u32) -> String {
    member_sharded(&day.format("%y%m").to_string(), shard)
}

fn points_due_day(day: NaiveDate) -> String {
    day.format("%d").to_string()
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

/// Members are spread over this many shards of GSI7, so the segments job can read them in up
/// to this many parallel parts.
pub const MEMBER_SHARDS: u32 = 16;

/// Shards of each segment's partition in GSI4–6 (DESIGN.md "Scale"): at 10,000 purchases a
/// second, segments at write time move up to one member per purchase between two keys of an
/// index (≈ 10,000 index writes a second on the busiest key); 32 shards keep each near 310.
pub const SEGMENT_SHARDS: u32 = 32;
/// Segment size items (`SegmentSizes`): every purchase that moves its member's segments adds to
/// one, inside its transaction (2 units), so they take twice the units of an index shard and
/// get twice the shards.
pub const SIZE_SHARDS: u32 = 64;
const _: () = assert!(
    SEGMENT_SHARDS <= 32 && DUE_SHARDS <= 32 && MEMBER_SHARDS <= 32,
    "one character names a shard"
);

/// Shards of each month's partition in GSI8: a purchase with pending days moves its member's
/// due day, so a peak writes up to one entry per purchase into the current month (≈ 10,000 a
/// second); 32 shards keep each key near 310.
pub const DUE_SHARDS: u32 = 32;

/// Shards of each day's partition in GSI3: one entry per commit that has events (its last item
/// names the others), about one per purchase or redemption, ≈ 10,500 a second at the peak; 32
/// shards keep each key near 330. Readers read a day's shards together, by id range.
pub const EVENT_SHARDS: u32 = 32;

/// FNV-1a of a member id: fixed for the member's life, even over ids.
fn member_hash(id: &MemberId) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in id.as_str().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// A member's shard: FNV-1a of the id, so it never changes and spreads ids evenly.
pub fn member_shard(id: &MemberId) -> u32 {
    member_hash(id) % MEMBER_SHARDS
}

/// MurmurHash3's 32-bit finaliser: every input bit moves every output bit.
fn mix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The member's place among `n` shards of any sharded key (indexes, slices, replicas).
pub fn shard_of(id: &MemberId, n: u32) -> u32 {
    // FNV-1a's high bits are weak on short ids (`m1`, `m2` …): mixed first (MurmurHash3's
    // finaliser), then scaled to `n`, so that shards are even and independent of
    // `member_shard`.
    ((u64::from(mix(member_hash(id))) * u64::from(n)) >> 32) as u32
}

/// Items that every purchase reads (the running campaigns, the cut points in force) are kept in
/// this many identical copies, each under its own partition key: a reader reads its member's
/// copy, a writer writes them all in one batch. At 10,000 purchases a second a copy takes 625
/// reads a second, a fifth of DynamoDB's 3,000 a key.
pub const REPLICAS: u32 = 16;

/// One copy of a replicated record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replica(u32);

impl Replica {
    /// The copy writers read (copies are written together, so any one is all of them).
    pub const FIRST: Replica = Replica(0);
    /// The copy a request for this member reads.
    pub fn of(m: &MemberId) -> Self {
        Replica(shard_of(m, REPLICAS))
    }
    pub fn all() -> impl Iterator<Item = Replica> {
        (0..REPLICAS).map(Replica)
    }
}

/// A sharded partition key: the base and the shard, `#` between (one byte, then hex).
fn sharded(base: &str, shard: u32) -> String {
    format!("{base}#{shard:x}")
}

/// A sharded partition key on the member item, where every byte counts: the base and one
/// character for the shard (`0`–`9`, `a`–`v`: at most 32 shards), nothing between.
fn member_sharded(base: &str, shard: u32) -> String {
    const DIGITS: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut s = String::with_capacity(base.len() + 1);
    s.push_str(base);
    s.push(char::from(DIGITS[(shard % 32) as usize]));
    s
}

// GSI4–7 hold only members, each index one kind of segment, so their partition keys need no
// prefix: every byte counts on the member item.
fn shard_partition(shard: u32) -> String {
    member_sharded("", shard)
}

fn segment_partition(s: SegmentId, shard: u32) -> String {
    let base = match s {
        SegmentId::Lifecycle(l) => l.as_str(),
        SegmentId::Value(v) => v.as_str(),
        SegmentId::Tier(t) => t.as_str(),
    };
    member_sharded(base, shard)
}

fn segment_index(s: SegmentId) -> Index {
    match s {
        SegmentId::Lifecycle(_) => Index::Gsi4,
        SegmentId::Value(_) => Index::Gsi5,
        SegmentId::Tier(_) => Index::Gsi6,
    }
}

/// The member work lists the scheduled jobs read from the sparse indexes, and the segments.
#[derive(Clone, Debug)]
pub enum MemberIndex {
    /// Members whose birthday is this `MM-DD`.
    Birthday(String),
    /// Members whose tier expires in the month of `month`, on a day before `before`.
    TierExpiry { month: NaiveDate, before: NaiveDate },
    /// The members of a segment, by id.
    Segment(SegmentId),
    /// Every member of one shard (erased ones too, until the segments job has counted them out).
    Shard(u32),
    /// Members whose points are due (DESIGN.md "Points lots") in the month of `month`, on a
    /// day before `before`.
    PointsDue { month: NaiveDate, before: NaiveDate },
}

impl MemberIndex {
    /// The index partitions that together hold the list: one, or every shard of a sharded one.
    pub(super) fn ranges(&self) -> Vec<(Index, String, SortKey)> {
        match self {
            MemberIndex::Birthday(md) => vec![(Index::Gsi1, birthday_partition(md), SortKey::All)],
            MemberIndex::TierExpiry { month, before } => vec![(
                Index::Gsi2,
                tier_expiry_partition(*month),
                SortKey::Before(date_sk(*before)),
            )],
            MemberIndex::Segment(s) => (0..SEGMENT_SHARDS)
                .map(|n| (segment_index(*s), segment_partition(*s, n), SortKey::All))
                .collect(),
            MemberIndex::Shard(n) => vec![(Index::Gsi7, shard_partition(*n), SortKey::All)],
            // Within a month's partition the day alone sorts; a month wholly before `before`
            // is read whole.
            MemberIndex::PointsDue { month, before } => {
                let sort = if points_due_partition(*before, 0) == points_due_partition(*month, 0) {
                    SortKey::Before(points_due_day(*before))
                } else if before > month {
                    SortKey::All
                } else {
                    SortKey::Before(String::new())
                };
                (0..DUE_SHARDS)
                    .map(|n| (Index::Gsi8, points_due_partition(*month, n), sort.clone()))
                    .collect()
            }
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
    /// GSI1 by birthday, GSI2 by tier expiry month, GSI4–6 by segment, GSI7 by shard, GSI8 by
    /// the day the points job is next due. Updates
    /// that change none of these keys (most balance updates) cost no index writes.
    fn index_entries(&self, id: &MemberId) -> Vec<IndexEntry> {
        let mut out = Vec::new();
        for s in self.membership().ids() {
            out.push(IndexEntry {
                index: segment_index(s),
                pk: segment_partition(s, shard_of(id, SEGMENT_SHARDS)),
                sk: id.to_string(),
            });
        }
        // A tombstone stays in its shard until the segments job has counted it out of its
        // segments, so the daily flows see it leave.
        if self.erased_at.is_none() || self.counted.is_some() {
            out.push(IndexEntry {
                index: Index::Gsi7,
                pk: shard_partition(member_shard(id)),
                sk: id.to_string(),
            });
        }
        if let Some(b) = self.birthday {
            out.push(IndexEntry {
                index: Index::Gsi1,
                pk: birthday_partition(&b.month_day()),
                sk: id.to_string(),
            });
        }
        // The day alone: index rows carry the table key, so equal days need no tie-breaker.
        if let Some(exp) = self.tier_expires_on {
            out.push(IndexEntry {
                index: Index::Gsi2,
                pk: tier_expiry_partition(exp),
                sk: date_sk(exp),
            });
        }
        if let Some(due) = self.points_due {
            out.push(IndexEntry {
                index: Index::Gsi8,
                pk: points_due_partition(due, shard_of(id, DUE_SHARDS)),
                sk: points_due_day(due),
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
    #[serde(flatten)]
    pub commit: CommitLink,
}

/// How the event index finds a commit's events with one entry per commit (DESIGN.md "Scale"):
/// the commit's indexed item (its last ledger line, or its carrier when it has no line) names
/// the commit's other items; the others are `quiet`, out of the index. Items stored before
/// this were each indexed, and read as such.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CommitLink {
    /// The seqs of the commit's other ledger lines.
    #[serde(default, rename = "cl", skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<u64>,
    /// The seq of the commit's event carrier.
    #[serde(default, rename = "cc", skip_serializing_if = "Option::is_none")]
    pub carrier: Option<u64>,
    #[serde(default, rename = "q", skip_serializing_if = "std::ops::Not::not")]
    pub quiet: bool,
}

impl CommitLink {
    fn index(&self, events: &[Event], m: &MemberId) -> Vec<IndexEntry> {
        if self.quiet {
            Vec::new()
        } else {
            event_index(events, m)
        }
    }

    /// The keys of the commit's other items, for the event index's reader.
    pub(super) fn siblings(&self, m: &MemberId) -> Vec<Key> {
        self.lines
            .iter()
            .map(|s| LedgerLine::key(&(m.clone(), *s)))
            .chain(self.carrier.map(|s| EventCarrier::key(&(m.clone(), s))))
            .collect()
    }
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
    fn index_entries(&self, (m, _): &(MemberId, u64)) -> Vec<IndexEntry> {
        self.commit.index(&self.events, m)
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
    #[serde(flatten)]
    pub commit: CommitLink,
}

impl Record for EventCarrier {
    type Id = (MemberId, u64);
    const KIND: &'static str = "events";
    fn key((m, seq): &(MemberId, u64)) -> Key {
        Key::new(member_pk(m), seq_key(EVENT, *seq))
    }
    fn index_entries(&self, (m, _): &(MemberId, u64)) -> Vec<IndexEntry> {
        self.commit.index(&self.events, m)
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

/// Carriers of events, by the UTC day of their first event (GSI3), sorted by its id (a UUID v7,
/// so in time order): a window of the global feed is an id range of a day's shards, and a job
/// folding a day reads each shard of it once.
fn events_day(day: NaiveDate, shard: u32) -> String {
    sharded(&format!("EVENTS#{}", day.format("%Y-%m-%d")), shard)
}

/// The smallest and the largest UUID v7 text of the millisecond `at` falls in.
fn id_bounds(at: DateTime<Utc>) -> (String, String) {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let (hi, lo) = (ms >> 16, ms & 0xffff);
    (
        format!("{hi:08x}-{lo:04x}-7000-8000-000000000000"),
        format!("{hi:08x}-{lo:04x}-7fff-bfff-ffffffffffff"),
    )
}

fn event_index(events: &[Event], member: &MemberId) -> Vec<IndexEntry> {
    match events.first() {
        Some(first) => vec![IndexEntry {
            index: Index::Gsi3,
            pk: events_day(
                first.occurred_at.date_naive(),
                shard_of(member, EVENT_SHARDS),
            ),
            sk: first.id.to_string(),
        }],
        None => Vec::new(),
    }
}

/// What any carrier (ledger line or event carrier) holds, read from the event index.
#[derive(Deserialize, Serialize)]
pub(super) struct Carried {
    pub events: Vec<Event>,
    #[serde(flatten)]
    pub commit: CommitLink,
}

impl Record for Carried {
    type Id = Key;
    const KIND: &'static str = "carrier";
    fn key(k: &Key) -> Key {
        k.clone()
    }
}

/// The partitions and id range of the carriers whose first event falls in `from..=to`, both
/// in one UTC day: one per shard. The range is whole milliseconds; callers filter exactly.
pub(super) fn events_ranges(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(Index, String, SortKey)> {
    let (lo, _) = id_bounds(from);
    let (_, hi) = id_bounds(to);
    (0..EVENT_SHARDS)
        .map(|n| {
            (
                Index::Gsi3,
                events_day(from.date_naive(), n),
                SortKey::Between(lo.clone(), hi.clone()),
            )
        })
        .collect()
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
    /// The campaigns this purchase counted in, and what each awarded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub campaigns: Vec<CampaignCredit>,
    /// Where its points went: pending until a day, or into a lot (absent: before lots existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<crate::domain::lots::Origin>,
    /// The upgrade this purchase caused, which a refund in the return window takes back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<crate::domain::tier::Caused>,
    /// The referrer, when this purchase qualified (or held) its member's referral: a refund
    /// reads the referral and the referrer with the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<MemberId>,
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
/// A key of a request on one member's data (`owner`) is stored in that member's partition, so
/// erasing the member finds and deletes it: a replay must not outlive the member's data (it may
/// hold an operator's note or a voucher code).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub request_hash: String,
    pub response: Value,
    pub expires_at: i64,
    /// The key's digest, on records in a member's partition (what erasure deletes them by).
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Names an idempotency record: the digest of the key's scope and text, and the member whose
/// data the request touched, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyId {
    pub owner: Option<MemberId>,
    pub digest: String,
}

const IDEMPOTENCY: &str = "IDEMPOTENCY#";

impl Record for IdempotencyRecord {
    type Id = IdempotencyId;
    const KIND: &'static str = "idempotency";
    fn key(i: &IdempotencyId) -> Key {
        match &i.owner {
            Some(m) => Key::new(member_pk(m), format!("{IDEMPOTENCY}{}", i.digest)),
            None => Key::new(format!("{IDEMPOTENCY}{}", i.digest), "IDEMPOTENCY"),
        }
    }
}

impl Listed for IdempotencyRecord {
    type Owner = MemberId;
    fn range(m: &MemberId) -> (String, SortKey) {
        (member_pk(m), SortKey::Prefix(IDEMPOTENCY.into()))
    }
}

// ---- segments: the cut points in force, one row per day, and each run's parts and flows.

const SEGMENTS: &str = "SEGMENTS";
const DAY: &str = "DAY#";

fn day_key(d: NaiveDate) -> String {
    format!("{DAY}{}", d.format("%Y-%m-%d"))
}

impl Record for SegmentState {
    type Id = Replica;
    const KIND: &'static str = "segment state";
    fn key(r: &Replica) -> Key {
        Key::new(sharded("CUTPOINTS", r.0), "STATE")
    }
}

/// One shard of every segment's size (DESIGN.md "Segment sizes"): for each segment, what the
/// commits that moved this shard's members in and out of it added up to
/// ([`crate::store::Write::Add`], one attribute a segment), so sizes are read, not counted.
/// Sharded by member ([`SIZE_SHARDS`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SegmentSizes {
    #[serde(flatten)]
    attrs: std::collections::BTreeMap<String, Value>,
}

impl SegmentSizes {
    /// The attribute a segment's count is kept in.
    pub fn attr(s: SegmentId) -> String {
        format!("n:{s}")
    }
    pub fn get(&self, s: SegmentId) -> i64 {
        self.attrs
            .get(&Self::attr(s))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }
}

impl Record for SegmentSizes {
    type Id = u32;
    const KIND: &'static str = "segment sizes";
    fn key(shard: &u32) -> Key {
        Key::new(sharded("SEGSIZES", *shard), "SIZES")
    }
}

impl Record for SegmentDay {
    type Id = NaiveDate;
    const KIND: &'static str = "segment day";
    fn key(d: &NaiveDate) -> Key {
        Key::new(SEGMENTS, day_key(*d))
    }
}

/// The days `from..=to`, oldest first: the partition, the range and the position just before
/// `from` (positions are exclusive).
pub(super) fn days_range(from: NaiveDate, to: NaiveDate) -> (String, SortKey, String) {
    days_of(SEGMENTS, from, to)
}

fn days_of(pk: &str, from: NaiveDate, to: NaiveDate) -> (String, SortKey, String) {
    let before = to.succ_opt().unwrap_or(to);
    let start = from.pred_opt().unwrap_or(from);
    (pk.into(), SortKey::Before(day_key(before)), day_key(start))
}

/// The daily figures' rows `from..=to`, as [`days_range`].
pub(super) fn daily_range(from: NaiveDate, to: NaiveDate) -> (String, SortKey, String) {
    days_of(DAILY, from, to)
}

/// One program day's figures, in the one partition of the series: written once a night, read
/// by the dashboard.
impl Record for DailyFigures {
    type Id = NaiveDate;
    const KIND: &'static str = "daily figures";
    fn key(d: &NaiveDate) -> Key {
        Key::new(DAILY, day_key(*d))
    }
}

const DAILY: &str = "DAILY";

/// The days before `before`, for reading the newest of them.
pub(super) fn days_before(before: NaiveDate) -> (String, SortKey) {
    (SEGMENTS.into(), SortKey::Before(day_key(before)))
}

/// Every day row.
pub(super) fn all_days() -> (String, SortKey) {
    (SEGMENTS.into(), SortKey::Prefix(DAY.into()))
}

fn run_pk(run: &RunId) -> String {
    format!("SEGRUN#{run}")
}

const FLOW: &str = "FLOW#";

impl Record for SegmentPart {
    type Id = (RunId, u32);
    const KIND: &'static str = "segment part";
    fn key((run, part): &(RunId, u32)) -> Key {
        Key::new(run_pk(run), format!("PART#{part:02}"))
    }
}

/// A run's flows live in this many partitions, by member: a night that moves half of ten
/// million members writes five million flows (2 units each, inside the member's commit); in 64
/// partitions that is ≈ 160,000 units a key, 160 s at DynamoDB's 1,000 a second, well inside
/// the run's own pace (`loyalty-bench --scenario night`).
pub const FLOW_SHARDS: u32 = 64;

impl Record for SegmentFlow {
    type Id = (RunId, MemberId);
    const KIND: &'static str = "segment flow";
    fn key((run, m): &(RunId, MemberId)) -> Key {
        Key::new(
            sharded(&run_pk(run), shard_of(m, FLOW_SHARDS)),
            format!("{FLOW}{m}"),
        )
    }
}

/// The partitions of a run's flows.
pub(super) fn flows_ranges(run: &RunId) -> Vec<(String, SortKey)> {
    (0..FLOW_SHARDS)
        .map(|n| (sharded(&run_pk(run), n), SortKey::Prefix(FLOW.into())))
        .collect()
}

pub(super) const SEGMENT_KIND: &str = "segment";

// ---- campaigns: the campaign (GSI1 lists them), the registry of running ones, and one
// assignment per audience member in the campaign's partition.

const CAMPAIGN: &str = "CAMPAIGN#";
const CAMPAIGNS_PARTITION: &str = "CAMPAIGNS";
pub(super) const CAMPAIGN_KIND: &str = "campaign";

fn campaign_pk(id: &CampaignId) -> String {
    format!("{CAMPAIGN}{id}")
}

pub(super) fn campaigns_range() -> (Index, String, SortKey) {
    (Index::Gsi1, CAMPAIGNS_PARTITION.to_owned(), SortKey::All)
}

impl Record for Campaign {
    type Id = CampaignId;
    const KIND: &'static str = CAMPAIGN_KIND;
    fn key(id: &CampaignId) -> Key {
        Key::new(campaign_pk(id), "CAMPAIGN")
    }
    fn index_entries(&self, id: &CampaignId) -> Vec<IndexEntry> {
        vec![IndexEntry {
            index: Index::Gsi1,
            pk: CAMPAIGNS_PARTITION.into(),
            sk: format!("{}#{id}", self.created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ")),
        }]
    }
}

impl Record for RunningCampaigns {
    type Id = Replica;
    const KIND: &'static str = "running campaigns";
    fn key(r: &Replica) -> Key {
        Key::new(sharded(CAMPAIGNS_PARTITION, r.0), "RUNNING")
    }
}

/// A campaign's assignments live in this many partitions, by member: every purchase of an
/// audience member rewrites their assignment (2 units inside the purchase's transaction), so a
/// campaign over everyone at 10,000 purchases a second takes 20,000 units a second; 64 shards
/// keep each key near 310.
pub const ASSIGNMENT_SHARDS: u32 = 64;

fn assignment_pk(c: &CampaignId, shard: u32) -> String {
    sharded(&campaign_pk(c), shard)
}

impl Record for Assignment {
    type Id = (CampaignId, MemberId);
    const KIND: &'static str = "campaign assignment";
    fn key((c, m): &(CampaignId, MemberId)) -> Key {
        Key::new(
            assignment_pk(c, shard_of(m, ASSIGNMENT_SHARDS)),
            member_pk(m),
        )
    }
}

/// The partitions of a campaign's assignments.
pub(super) fn assignment_ranges(c: &CampaignId) -> Vec<(String, SortKey)> {
    (0..ASSIGNMENT_SHARDS)
        .map(|n| (assignment_pk(c, n), SortKey::Prefix(MEMBER.into())))
        .collect()
}

/// One slice of a fixed total (`domain::slices`): its fixed share and what is used of it. The
/// attribute names are the store's [`crate::store::CAP`] and [`crate::store::USED`], which
/// [`crate::store::Write::Take`] updates in place.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slice {
    pub cap: i64,
    pub used: i64,
}

impl Slice {
    pub fn room(&self) -> i64 {
        (self.cap - self.used).max(0)
    }
}

/// A slice of a running campaign's budget, in points. At most [`BUDGET_SLICES`]; a purchase
/// takes from its member's slice and borrows from the others only when that one is dry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BudgetSlice(pub Slice);

/// At most this many slices of a budget: ten campaigns awarding on every purchase at 10,000
/// purchases a second take 10,000 a second from each budget, 2 units each inside the
/// purchase's transaction; 64 slices keep each key near 310 units.
pub const BUDGET_SLICES: u32 = 64;

/// A budget gets one slice per this many points (up to [`BUDGET_SLICES`]), so that an award
/// rarely needs more than its own slice.
pub const POINTS_PER_BUDGET_SLICE: i64 = 1000;

impl Record for BudgetSlice {
    type Id = (CampaignId, u32);
    const KIND: &'static str = "budget slice";
    fn key((c, n): &(CampaignId, u32)) -> Key {
        Key::new(sharded(&format!("{}#BUDGET", campaign_pk(c)), *n), "SLICE")
    }
}

/// One of a reward's shards (DESIGN.md "Scale"): a copy of the reward's definition, which a
/// redemption reads instead of the reward's own item, and a slice of its stock (for a reward
/// with unlimited stock, an empty slice nobody takes from). Every reward has
/// [`REWARD_SHARDS`]; an edit rewrites them all with the reward.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RewardShard {
    pub reward: Reward,
    #[serde(flatten)]
    pub slice: Slice,
}

/// A reward's shards: a flash sale of 50,000 members in 10 seconds at one reward is 5,000
/// redemptions a second, each reading its member's shard (1 unit) and taking from its slice
/// (2 units inside the redemption's transaction); 32 shards keep each key near 160 reads and
/// 310 writes a second.
pub const REWARD_SHARDS: u32 = 32;

impl Record for RewardShard {
    type Id = (RewardId, u32);
    const KIND: &'static str = "reward shard";
    fn key((r, n): &(RewardId, u32)) -> Key {
        Key::new(sharded(&format!("REWARD#{r}"), *n), "SHARD")
    }
}

/// An operator's write, in the partition of its day (program-wide, but written only by operator
/// writes: a few a second at most, far below a partition's limit), newest first by its UUID v7.
impl Record for AuditRecord {
    type Id = (NaiveDate, Uuid);
    const KIND: &'static str = "audit";
    fn key((day, id): &(NaiveDate, Uuid)) -> Key {
        Key::new(audit_pk(*day), format!("{AUDIT}{id}"))
    }
}

impl Listed for AuditRecord {
    type Owner = NaiveDate;
    fn range(day: &NaiveDate) -> (String, SortKey) {
        (audit_pk(*day), SortKey::Prefix(AUDIT.into()))
    }
}

const AUDIT: &str = "AUDIT#";

// ---- referrals (DESIGN.md "Referrals")

/// A referral code, unique (created on its absence); it names its member for good, so a
/// vanity code set later leaves the old one resolving to the same member.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CodeClaim {
    pub member_id: MemberId,
}

impl Record for CodeClaim {
    type Id = ReferralCode;
    const KIND: &'static str = "referral code";
    fn key(c: &ReferralCode) -> Key {
        Key::new(format!("REFCODE#{c}"), "REFCODE")
    }
}

/// A referrer: the code they share now and what their codes did. Versioned: the referees of
/// one referrer qualifying at once take turns on it, so no cap is ever passed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Referrer {
    pub code: ReferralCode,
    /// Codes the member had before (they still resolve; erasure removes them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<ReferralCode>,
    #[serde(flatten)]
    pub counts: Counts,
    pub created_at: DateTime<Utc>,
}

impl Record for Referrer {
    type Id = MemberId;
    const KIND: &'static str = "referrer";
    fn key(id: &MemberId) -> Key {
        Key::new(member_pk(id), "REFERRER")
    }
}

/// Referrals are listed by the month they were applied in, in this many partitions (written at
/// the rate of enrolments with a code and of qualifying purchases, far below a key's limit even
/// at a national launch; spread anyway, so no month is one key).
pub const REFERRAL_SHARDS: u32 = 8;
const REFERRALS: &str = "REFERRALS#";
const HELD_REFERRALS: &str = "REFERRALS#HELD";
pub(super) const REFERRAL_KIND: &str = "referral";

fn referral_month_partition(month: &str, shard: u32) -> String {
    sharded(&format!("{REFERRALS}{month}"), shard)
}

/// The referee's referral, in their partition. GSI2 lists it by the month it was applied in
/// (the funnel); GSI1 lists it while it is held (the review queue, rare by design).
impl Record for Referral {
    type Id = MemberId;
    const KIND: &'static str = REFERRAL_KIND;
    fn key(id: &MemberId) -> Key {
        Key::new(member_pk(id), "REFERRAL")
    }
    fn index_entries(&self, id: &MemberId) -> Vec<IndexEntry> {
        let at = self.applied_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let mut out = vec![IndexEntry {
            index: Index::Gsi2,
            pk: referral_month_partition(
                &referral::month_of(self.applied_at.date_naive()),
                shard_of(id, REFERRAL_SHARDS),
            ),
            sk: at.clone(),
        }];
        if self.status == ReferralStatus::Held {
            out.push(IndexEntry {
                index: Index::Gsi1,
                pk: HELD_REFERRALS.into(),
                sk: format!("{at}#{id}"),
            });
        }
        out
    }
}

pub(super) fn held_referrals_range() -> (Index, String, SortKey) {
    (Index::Gsi1, HELD_REFERRALS.to_owned(), SortKey::All)
}

/// The partitions of the referrals applied in a month (`YYYY-MM`, UTC).
pub(super) fn referral_month_ranges(month: &str) -> Vec<(Index, String, SortKey)> {
    (0..REFERRAL_SHARDS)
        .map(|n| {
            (
                Index::Gsi2,
                referral_month_partition(month, n),
                SortKey::All,
            )
        })
        .collect()
}

/// That a member paid with a card or wallet, by the fingerprint's hash (never the fingerprint):
/// written by every purchase that carries one, read when a referee's purchase qualifies.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PaymentMark {
    pub seen_on: NaiveDate,
}

impl Record for PaymentMark {
    type Id = (String, MemberId);
    const KIND: &'static str = "payment mark";
    fn key((hash, m): &(String, MemberId)) -> Key {
        Key::new(format!("PAYMENT#{hash}"), member_pk(m))
    }
}

/// That a person (a phone or an e-mail address, as a keyed hash: never the value) has been
/// rewarded as a referee. Kept through erasure — a keyed hash of a contact is no personal data
/// without the key — so a person erased and enrolled again cannot be referred again for money.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefereeMark {
    pub rewarded_on: NaiveDate,
}

impl Record for RefereeMark {
    type Id = String;
    const KIND: &'static str = "referee mark";
    fn key(hash: &String) -> Key {
        Key::new(format!("REFEREE#{hash}"), "REFEREE")
    }
}

/// A code an erased member held, retired for ever by its keyed hash (the code may have been a
/// name): a vanity code is refused while this exists, so a printed code never credits a
/// stranger.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RetiredCode {
    pub retired_on: NaiveDate,
}

impl Record for RetiredCode {
    type Id = String;
    const KIND: &'static str = "retired code";
    fn key(hash: &String) -> Key {
        Key::new(format!("REFCODE#~{hash}"), "RETIRED")
    }
}

/// The key the pseudonymous hashes above are made with: 32 random bytes, made on first need
/// (created on its absence, so every process agrees) and read once per process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PseudonymKey {
    pub key: String,
    pub created_at: DateTime<Utc>,
}

impl Record for PseudonymKey {
    type Id = ();
    const KIND: &'static str = "pseudonym key";
    fn key(_: &()) -> Key {
        Key::new("SECRET#PSEUDONYM", "SECRET")
    }
}

/// How many unknown referral codes one caller has tried (`domain::guesses`), kept by the keyed
/// hash of the caller's principal (so the record names nobody) and gone by TTL an hour after
/// its instant, when it would mean nothing spent anyway.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CodeGuesses {
    #[serde(flatten)]
    pub spent: crate::domain::guesses::Spent,
    pub expires_at: i64,
}

impl Record for CodeGuesses {
    type Id = String;
    const KIND: &'static str = "code guesses";
    fn key(hash: &String) -> Key {
        Key::new(format!("GUESSES#{hash}"), "GUESSES")
    }
}

fn audit_pk(day: NaiveDate) -> String {
    format!("{AUDIT}{day}")
}

#[cfg(test)]
impl MemberIndex {
    /// The partition of the list that holds this member's entry.
    fn range_for(&self, m: &MemberId) -> (Index, String, SortKey) {
        let shard = match self {
            MemberIndex::Segment(_) => shard_of(m, SEGMENT_SHARDS),
            MemberIndex::PointsDue { .. } => shard_of(m, DUE_SHARDS),
            _ => 0,
        };
        self.ranges().swap_remove(shard as usize)
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
        .range_for(&m.id);
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
        .range_for(&m.id);
        assert!(!not_yet.matches(&w.sk), "not before its own day");
    }

    #[test]
    fn points_due_index_is_written_and_read_with_the_same_partition() {
        let mut m = Member::new(MemberId::parse("m-1").unwrap(), "A".into(), Utc::now());
        let due: NaiveDate = "2027-03-10".parse().unwrap();
        m.points_due = Some(due);
        let written = m.index_entries(&m.id.clone());
        let w = written.iter().find(|e| e.index == Index::Gsi8).unwrap();
        let on_the_day = MemberIndex::PointsDue {
            month: "2027-03-01".parse().unwrap(),
            before: due.succ_opt().unwrap(),
        };
        let (ix, pk, sort) = on_the_day.range_for(&m.id);
        assert_eq!((ix, pk.as_str()), (Index::Gsi8, w.pk.as_str()));
        assert!(sort.matches(&w.sk), "due on 10 March: listed on 10 March");
        let (_, _, day_before) = MemberIndex::PointsDue {
            month: due,
            before: due,
        }
        .range_for(&m.id);
        assert!(!day_before.matches(&w.sk), "not listed the day before");
        // Run on the last day of a month: `before` is the first of the next; the whole month.
        let (_, pk, all) = MemberIndex::PointsDue {
            month: due,
            before: "2027-04-01".parse().unwrap(),
        }
        .range_for(&m.id);
        assert!(pk == w.pk && all.matches(&w.sk), "listed on 31 March");
        let (_, _, older) = MemberIndex::PointsDue {
            month: due,
            before: "2027-06-02".parse().unwrap(),
        }
        .range_for(&m.id);
        assert!(older.matches(&w.sk), "a month before today's is read whole");
        m.points_due = None;
        assert!(
            m.index_entries(&m.id.clone())
                .iter()
                .all(|e| e.index != Index::Gsi8)
        );
    }

    #[test]
    fn birthday_index_is_written_and_read_with_the_same_partition() {
        let mut m = Member::new(MemberId::parse("m-1").unwrap(), "A".into(), Utc::now());
        m.birthday = Some(crate::domain::Birthday::parse("02-29").unwrap());
        let (ix, pk, _) = MemberIndex::Birthday("02-29".into()).range_for(&m.id);
        let w = m
            .index_entries(&m.id.clone())
            .into_iter()
            .find(|e| e.index == ix)
            .unwrap();
        assert_eq!(w.pk, pk);
        assert_eq!(w.sk, m.id.to_string());
    }

    #[test]
    fn segment_indexes_are_written_and_read_with_the_same_partitions() {
        use crate::domain::segment::{Lifecycle, Segments, ValueSegment};
        let mut m = Member::new(MemberId::parse("m-1").unwrap(), "A".into(), Utc::now());
        m.segments = Some(Segments {
            lifecycle: Lifecycle::Dormant,
            value: Some(ValueSegment::AtRisk),
            rfm: None,
        });
        let written = m.index_entries(&m.id.clone());
        for s in m.membership().ids() {
            let (ix, pk, _) = MemberIndex::Segment(s).range_for(&m.id);
            assert!(
                written.iter().any(|e| e.index == ix && e.pk == pk),
                "{s} not written where it is read"
            );
        }
        let (ix, pk, _) = MemberIndex::Shard(member_shard(&m.id)).range_for(&m.id);
        assert!(written.iter().any(|e| e.index == ix && e.pk == pk));
        // Erased: out of every segment, in its shard until the job counted it out.
        m.counted = Some(m.membership());
        let t = m.clone().erased(Utc::now());
        let left = t.index_entries(&t.id.clone());
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].index, Index::Gsi7);
        let mut gone = t;
        gone.counted = None;
        assert!(gone.index_entries(&gone.id.clone()).is_empty());
    }

    #[test]
    fn shards_spread_ids_evenly_enough() {
        let mut counts = [0u32; MEMBER_SHARDS as usize];
        for i in 0..16_000 {
            counts[member_shard(&MemberId::parse(&format!("member-{i}")).unwrap()) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
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
