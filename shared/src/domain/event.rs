//! Domain events: what a commit tells the world. A member's events are numbered 1, 2, 3 … by
//! `seq`, with no gap and no repeat, because each commit takes the next numbers from the member
//! item it writes under a version condition. This module owns the envelope, the numbering of one
//! commit's events, and which stored item carries which event (pure rules, no I/O).

use super::campaign::{Group, Offer};
use super::ledger::{LedgerEntry, LedgerKind};
use super::lots::Lot;
use super::member::ProfileField;
use super::receipt::{PurchaseRef, RefundRef};
use super::segment::{Lifecycle, Rfm, Segments, ValueSegment};
use super::{CampaignId, MemberId, Money, Points, ReceiptId, RewardId, StoreId, Tier};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum EventType {
    #[serde(rename = "member.enrolled")]
    MemberEnrolled,
    #[serde(rename = "member.updated")]
    MemberUpdated,
    #[serde(rename = "member.erased")]
    MemberErased,
    #[serde(rename = "points.earned")]
    PointsEarned,
    #[serde(rename = "points.reversed")]
    PointsReversed,
    #[serde(rename = "points.adjusted")]
    PointsAdjusted,
    #[serde(rename = "points.redeemed")]
    PointsRedeemed,
    #[serde(rename = "points.restored")]
    PointsRestored,
    #[serde(rename = "points.gifted")]
    PointsGifted,
    #[serde(rename = "tier.upgraded")]
    TierUpgraded,
    #[serde(rename = "tier.downgraded")]
    TierDowngraded,
    #[serde(rename = "voucher.issued")]
    VoucherIssued,
    #[serde(rename = "voucher.used")]
    VoucherUsed,
    #[serde(rename = "segment.changed")]
    SegmentChanged,
    #[serde(rename = "campaign.awarded")]
    CampaignAwarded,
    #[serde(rename = "campaign.joined")]
    CampaignJoined,
    #[serde(rename = "points.pending")]
    PointsPending,
    #[serde(rename = "points.available")]
    PointsAvailable,
    #[serde(rename = "points.expired")]
    PointsExpired,
    #[serde(rename = "points.expiring_soon")]
    PointsExpiringSoon,
    #[serde(rename = "referral.applied")]
    ReferralApplied,
    #[serde(rename = "referral.held")]
    ReferralHeld,
    #[serde(rename = "referral.rejected")]
    ReferralRejected,
    #[serde(rename = "referral.rewarded")]
    ReferralRewarded,
    #[serde(rename = "referral.reversed")]
    ReferralReversed,
}

/// The envelope of API.md "Events": `type` and `data` come from [`EventData`], so a type can only
/// ever carry its own payload. `data` never holds a name, phone or email.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "01935b2e-6a00-7000-8000-000000000004", "type": "points.earned",
    "occurred_at": "2026-11-22T10:15:00Z", "member_id": "member-ada", "seq": 4,
    "data": {"points": 19, "balance": 119, "reference": "purchase:store-1/R-1001",
             "ledger_entry_id": "01935b2e-6a00-7000-8000-0000000000aa", "ledger_kind": "purchase",
             "store_id": "store-1", "receipt_id": "R-1001", "amount": {"value": 1999, "currency": "USD"},
             "occurred_at": "2026-11-22T09:30:00Z", "tier": "silver"}}))]
pub struct Event {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub member_id: Option<MemberId>,
    pub seq: u64,
    #[serde(flatten)]
    pub data: EventData,
}

impl Event {
    pub fn kind(&self) -> EventType {
        self.data.kind()
    }
}

/// Every event's payload, by type: the webhook body is this type, serialised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", content = "data")]
pub enum EventData {
    #[serde(rename = "member.enrolled")]
    MemberEnrolled(Enrolled),
    #[serde(rename = "member.updated")]
    MemberUpdated(Updated),
    #[serde(rename = "member.erased")]
    MemberErased(Erased),
    #[serde(rename = "points.earned")]
    PointsEarned(Earned),
    #[serde(rename = "points.pending")]
    PointsPending(Pending),
    #[serde(rename = "points.available")]
    PointsAvailable(Available),
    #[serde(rename = "points.reversed")]
    PointsReversed(Reversed),
    #[serde(rename = "points.adjusted")]
    PointsAdjusted(Adjusted),
    #[serde(rename = "points.redeemed")]
    PointsRedeemed(Redeemed),
    #[serde(rename = "points.restored")]
    PointsRestored(Restored),
    #[serde(rename = "points.expired")]
    PointsExpired(Expired),
    #[serde(rename = "points.expiring_soon")]
    PointsExpiringSoon(ExpiringSoon),
    #[serde(rename = "points.gifted")]
    PointsGifted(Gifted),
    #[serde(rename = "tier.upgraded")]
    TierUpgraded(TierChanged),
    #[serde(rename = "tier.downgraded")]
    TierDowngraded(TierChanged),
    #[serde(rename = "voucher.issued")]
    VoucherIssued(VoucherIssued),
    #[serde(rename = "voucher.used")]
    VoucherUsed(VoucherUsed),
    #[serde(rename = "segment.changed")]
    SegmentChanged(SegmentChanged),
    #[serde(rename = "campaign.awarded")]
    CampaignAwarded(Awarded),
    #[serde(rename = "campaign.joined")]
    CampaignJoined(Joined),
    #[serde(rename = "referral.applied")]
    ReferralApplied(ReferralApplied),
    #[serde(rename = "referral.held")]
    ReferralHeld(ReferralJudged),
    #[serde(rename = "referral.rejected")]
    ReferralRejected(ReferralJudged),
    #[serde(rename = "referral.rewarded")]
    ReferralRewarded(ReferralRewarded),
    #[serde(rename = "referral.reversed")]
    ReferralReversed(ReferralReversed),
}

impl EventData {
    pub fn kind(&self) -> EventType {
        use EventData as D;
        use EventType as T;
        match self {
            D::MemberEnrolled(_) => T::MemberEnrolled,
            D::MemberUpdated(_) => T::MemberUpdated,
            D::MemberErased(_) => T::MemberErased,
            D::PointsEarned(_) => T::PointsEarned,
            D::PointsPending(_) => T::PointsPending,
            D::PointsAvailable(_) => T::PointsAvailable,
            D::PointsReversed(_) => T::PointsReversed,
            D::PointsAdjusted(_) => T::PointsAdjusted,
            D::PointsRedeemed(_) => T::PointsRedeemed,
            D::PointsRestored(_) => T::PointsRestored,
            D::PointsExpired(_) => T::PointsExpired,
            D::PointsExpiringSoon(_) => T::PointsExpiringSoon,
            D::PointsGifted(_) => T::PointsGifted,
            D::TierUpgraded(_) => T::TierUpgraded,
            D::TierDowngraded(_) => T::TierDowngraded,
            D::VoucherIssued(_) => T::VoucherIssued,
            D::VoucherUsed(_) => T::VoucherUsed,
            D::SegmentChanged(_) => T::SegmentChanged,
            D::CampaignJoined(_) => T::CampaignJoined,
            D::CampaignAwarded(_) => T::CampaignAwarded,
            D::ReferralApplied(_) => T::ReferralApplied,
            D::ReferralHeld(_) => T::ReferralHeld,
            D::ReferralRejected(_) => T::ReferralRejected,
            D::ReferralRewarded(_) => T::ReferralRewarded,
            D::ReferralReversed(_) => T::ReferralReversed,
        }
    }

    /// The points this event moves into (or out of) the balance: Σ over a member's events is the
    /// balance. Events that move none (and `points.expiring_soon`, which announces) give 0.
    pub fn points(&self) -> Points {
        use EventData as D;
        match self {
            D::MemberErased(e) => e.moved.points,
            D::PointsEarned(e) => e.moved.points,
            D::PointsPending(e) => e.moved.points,
            D::PointsAvailable(e) => e.moved.points,
            D::PointsReversed(e) => e.moved.points,
            D::PointsAdjusted(e) => e.moved.points,
            D::PointsRedeemed(e) => e.moved.points,
            D::PointsRestored(e) => e.moved.points,
            D::PointsExpired(e) => e.moved.points,
            D::PointsGifted(e) => e.moved.points,
            D::TierUpgraded(e) | D::TierDowngraded(e) => e.moved.points,
            D::CampaignAwarded(e) => e.moved.points,
            D::ReferralRewarded(e) => e.moved.points,
            D::ReferralReversed(e) => e.moved.points,
            D::ReferralApplied(_) | D::ReferralHeld(_) | D::ReferralRejected(_) => Points::ZERO,
            D::MemberEnrolled(_)
            | D::MemberUpdated(_)
            | D::PointsExpiringSoon(_)
            | D::VoucherIssued(_)
            | D::VoucherUsed(_)
            | D::SegmentChanged(_)
            | D::CampaignJoined(_) => Points::ZERO,
        }
    }
}

/// What an event that may move points says about the balance: the signed points it moves and
/// the balance after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Moved {
    pub points: Points,
    pub balance: Points,
}

impl Moved {
    /// As the ledger line says (its points all moved the balance).
    pub fn of(e: &LedgerEntry) -> Self {
        Moved {
            points: e.points,
            balance: e.balance_after,
        }
    }
}

/// The ledger line an event announces (never its free-text note).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LineRef {
    pub reference: Option<String>,
    pub ledger_entry_id: Uuid,
    pub ledger_kind: LedgerKind,
}

impl LineRef {
    pub fn of(e: &LedgerEntry) -> Self {
        LineRef {
            reference: e.reference.clone(),
            ledger_entry_id: e.id,
            ledger_kind: e.kind,
        }
    }
}

/// The schema of a flattened `Option<LineRef>`: the line's fields when the event has a line, none
/// when it has not (a flattened `null` is no object, so the generated schema would refuse both).
/// Never `null`: the three come together (erasure's line always has its reference) or not at all.
#[derive(ToSchema)]
#[allow(dead_code)]
struct LineRefIfAny {
    #[schema(nullable = false)]
    reference: Option<String>,
    #[schema(nullable = false)]
    ledger_entry_id: Option<Uuid>,
    #[schema(nullable = false)]
    ledger_kind: Option<LedgerKind>,
}

/// `member.enrolled`: no personal data, not even the birthday or time zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Enrolled {
    pub tier: Tier,
    pub enrolled_at: DateTime<Utc>,
}

/// `member.updated`: which fields changed, never their values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Updated {
    pub changed: Vec<ProfileField>,
}

/// `member.erased`: the forfeit (or the debt written off) leaves on a ledger line when there is
/// one; pending points, never in the balance, come off `pending`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Erased {
    #[serde(flatten)]
    pub moved: Moved,
    #[serde(flatten)]
    #[schema(value_type = LineRefIfAny)]
    pub line: Option<LineRef>,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pending: Option<Points>,
    pub forfeited_points: Points,
}

/// The sale a purchase event is about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Sale {
    pub store_id: StoreId,
    pub receipt_id: ReceiptId,
    pub amount: Money,
    /// When the sale happened at the till.
    pub occurred_at: DateTime<Utc>,
    /// The tier the points were earned at (held before the purchase; an upgrade it causes
    /// follows as `tier.upgraded`).
    pub tier: Tier,
}

/// `points.earned`: a purchase's points, spendable at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Earned {
    #[serde(flatten)]
    pub moved: Moved,
    #[serde(flatten)]
    pub line: LineRef,
    #[serde(flatten)]
    pub sale: Sale,
}

/// `points.pending`: a purchase's points, in the ledger but not the balance until `available_on`
/// (`points` is 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Pending {
    #[serde(flatten)]
    pub moved: Moved,
    #[serde(flatten)]
    pub line: LineRef,
    #[serde(flatten)]
    pub sale: Sale,
    pub pending: Points,
    pub available_on: NaiveDate,
}

/// `points.available`: pending points became spendable on `days`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Available {
    #[serde(flatten)]
    pub moved: Moved,
    #[serde(flatten)]
    pub line: LineRef,
    pub days: Vec<NaiveDate>,
}

/// `points.reversed`: what a refund took back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reversed {
    #[serde(flatten)]
    pub moved: Moved,
    #[serde(flatten)]
    pub line: LineRef,
    #[serde(flatten)]
    pub of: Reversal,
}

/// Which points a refund reversed: the purchase's own, or a campaign's award on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Reversal {
    Purchase {
        #[serde(flatten)]
        refund: RefundRef,
        amount: Money,
        refunded_total: Money,
        /// Taken off pending points (negative), which never were in the balance.
        #[schema(nullable = false)]
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pending: Option<Points>,
    },
    Campaign {
        campaign_id: CampaignId,
        refund: RefundRef,
    },
}

/// `points.adjusted`: an operator's adjustment (its note stays in the ledger).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Adjusted {
    #[serde(flatten)]
    pub moved: Moved,
    #[serde(flatten)]
    pub line: LineRef,
}

/// `points.redeemed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Redeemed {
    #[serde(flatten)]
    pub moved: Moved,
    #[serde(flatten)]
    pub line: LineRef,
    pub redemption_id: Uuid,
    pub reward_id: RewardId,
}

/// `points.restored`: a cancelled redemption's points (no line when it cost nothing).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Restored {
    #[serde(flatten)]
    pub moved: Moved,
    #[serde(flatten)]
    #[schema(value_type = LineRefIfAny)]
    pub line: Option<LineRef>,
    pub redemption_id: Uuid,
    pub reward_id: RewardId,
}

/// `points.expired`: the lots past their last day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Expired {
    #[serde(flatten)]
    pub moved: Moved,
    #[serde(flatten)]
    pub line: LineRef,
    pub lots: Vec<Lot>,
}

/// `points.expiring_soon`: an announcement; it moves no points, so it has no `points`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExpiringSoon {
    pub expiring_points: i64,
    pub expires_on: NaiveDate,
    pub days_ahead: i64,
    pub balance: Points,
}

/// `points.gifted`: a birthday gift.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Gifted {
    #[serde(flatten)]
    pub moved: Moved,
    #[serde(flatten)]
    pub line: LineRef,
    pub year: i32,
    pub tier: Tier,
    pub voucher_code: Option<String>,
}

/// Why a tier went down outside requalification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TierChangeReason {
    /// A refund within the return window took back the upgrade its purchase caused.
    Refund,
}

/// `tier.upgraded` and `tier.downgraded`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TierChanged {
    #[serde(flatten)]
    pub moved: Moved,
    #[serde(flatten)]
    pub line: LineRef,
    pub from: Tier,
    pub to: Tier,
    pub expires_on: Option<NaiveDate>,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<TierChangeReason>,
}

/// `voucher.issued`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VoucherIssued {
    pub redemption_id: Uuid,
    pub reward_id: RewardId,
    pub voucher_code: String,
    pub expires_at: DateTime<Utc>,
    /// `redemption` or `birthday`.
    pub source: String,
}

/// `voucher.used`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VoucherUsed {
    pub voucher_code: String,
    pub redemption_id: Uuid,
    pub reward_id: RewardId,
    pub store_id: StoreId,
}

/// A member's stage and value segment (both null outside every segment).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Stage {
    pub lifecycle: Option<Lifecycle>,
    pub value: Option<ValueSegment>,
}

impl Stage {
    pub fn of(s: Option<Segments>) -> Self {
        Stage {
            lifecycle: s.map(|s| s.lifecycle),
            value: s.and_then(|s| s.value),
        }
    }
}

/// `segment.changed`: each one's `from` is the previous one's `to`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SegmentChanged {
    pub from: Stage,
    pub to: Stage,
    pub rfm: Option<Rfm>,
}

/// `campaign.joined`: a launch put the member in a campaign's audience, in `group`. The
/// treatment's event carries the offer (a messaging platform tells them of it); the holdout's
/// carries none, and the member never sees it in their own events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Joined {
    pub campaign_id: CampaignId,
    pub group: Group,
    pub offer: Option<Offer>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

impl Joined {
    /// Whether only operators (and webhooks) may see it: the holdout's.
    pub fn is_hidden_from_member(&self) -> bool {
        self.group == Group::Holdout
    }
}

/// `campaign.awarded`: a campaign's bonus on a purchase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Awarded {
    #[serde(flatten)]
    pub moved: Moved,
    #[serde(flatten)]
    pub line: LineRef,
    pub campaign_id: CampaignId,
    pub purchase: PurchaseRef,
}

/// Which side of a referral a line pays or takes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReferralRole {
    /// The new member who applied the code.
    Referee,
    /// The member whose code it was.
    Referrer,
    /// The referrer's bonus for a milestone of qualified referrals.
    Milestone,
}

/// `referral.applied` (on the referee): a code was applied; a purchase of at least the
/// program's minimum spend on or before `deadline` qualifies it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReferralApplied {
    pub referrer_id: MemberId,
    pub code: crate::domain::referral::ReferralCode,
    pub deadline: NaiveDate,
}

/// `referral.held` and `referral.rejected` (on the referee): a fraud rule (or, for a rejection,
/// a reviewer) stopped the referral; nobody is paid unless an administrator approves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReferralJudged {
    pub referrer_id: MemberId,
    pub rule: crate::domain::referral::FraudRule,
    pub purchase: Option<PurchaseRef>,
}

/// `referral.rewarded` (on each side paid): the points are pending until `available_on` (they
/// move no balance yet; `points` is 0), or spendable at once (`available_on` null).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReferralRewarded {
    #[serde(flatten)]
    pub moved: Moved,
    #[serde(flatten)]
    pub line: LineRef,
    pub referee_id: MemberId,
    pub role: ReferralRole,
    pub rewarded: Points,
    pub available_on: Option<NaiveDate>,
    pub purchase: PurchaseRef,
}

/// `referral.reversed` (on each side that was paid): a refund in the return window took the
/// qualifying purchase below the minimum spend; `pending` is what came off pending points
/// (never in the balance), the rest came off the balance (below zero: owed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReferralReversed {
    #[serde(flatten)]
    pub moved: Moved,
    #[serde(flatten)]
    pub line: LineRef,
    pub referee_id: MemberId,
    pub role: ReferralRole,
    pub reversed: Points,
    pub pending: Option<Points>,
    pub refund: RefundRef,
}

/// A time-ordered (UUID v7) id stamped from the given instant, so ids order as `occurred_at` does
/// even under the test clock; ids drawn from one context increase strictly.
pub fn event_id(ctx: &uuid::ContextV7, at: DateTime<Utc>) -> Uuid {
    let ts = uuid::Timestamp::from_unix(
        ctx,
        at.timestamp().max(0) as u64,
        at.timestamp_subsec_nanos(),
    );
    Uuid::new_v7(ts)
}

/// One commit's events, numbered from the member's next `seq`, and how they are carried: every
/// ledger line carries its own event and the line-less events just before it; events after the
/// last line go on one carrier item. A carrier is keyed by the `seq` of the last event it carries,
/// so "events after N" are exactly those on carriers keyed above N, minus the ≤ N ones a carrier
/// may hold.
#[derive(Debug)]
pub struct Numbering {
    next: u64,
    pending: Vec<Event>,
    /// Per ledger line (in order): its seq and the events it carries.
    pub lines: Vec<(u64, Vec<Event>)>,
    member: MemberId,
    at: DateTime<Utc>,
    ids: uuid::ContextV7,
}

impl Numbering {
    /// `last_seq` is the member's `event_seq` as read.
    pub fn new(member: MemberId, last_seq: u64, at: DateTime<Utc>) -> Self {
        Numbering {
            next: last_seq + 1,
            pending: Vec::new(),
            lines: Vec::new(),
            member,
            at,
            // Sub-millisecond precision: two commits of one member within the same millisecond
            // (each from its own context) must still order their ids as their seqs.
            ids: uuid::ContextV7::new().with_additional_precision(),
        }
    }

    fn make(&mut self, data: EventData) -> Event {
        let e = Event {
            id: event_id(&self.ids, self.at),
            occurred_at: self.at,
            member_id: Some(self.member.clone()),
            seq: self.next,
            data,
        };
        self.next += 1;
        e
    }

    /// An event without a ledger line of its own.
    pub fn note(&mut self, data: EventData) {
        let e = self.make(data);
        self.pending.push(e);
    }

    /// An event recorded by a ledger line; returns the line's seq (its key).
    pub fn line(&mut self, data: EventData) -> u64 {
        let e = self.make(data);
        let seq = e.seq;
        let mut carried = std::mem::take(&mut self.pending);
        carried.push(e);
        self.lines.push((seq, carried));
        seq
    }

    /// The events left for a carrier item of their own (keyed by the last one's seq), and the
    /// member's new `event_seq`.
    pub fn finish(self) -> (Vec<Event>, u64) {
        (self.pending, self.next - 1)
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.lines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at() -> DateTime<Utc> {
        "2026-11-22T10:00:00Z".parse().unwrap()
    }

    fn updated() -> EventData {
        EventData::MemberUpdated(Updated { changed: vec![] })
    }

    #[test]
    fn a_commit_numbers_its_events_after_the_members_last_seq_without_gaps() {
        let m = MemberId::parse("m").unwrap();
        let mut n = Numbering::new(m, 4, at());
        n.note(updated());
        let s = n.line(updated());
        n.note(updated());
        assert_eq!(s, 6);
        assert_eq!(n.lines.len(), 1);
        let seqs: Vec<u64> = n.lines[0].1.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            vec![5, 6],
            "the line carries the line-less event before it"
        );
        let (rest, last) = n.finish();
        assert_eq!((rest.len(), rest[0].seq, last), (1, 7, 7));
    }

    #[test]
    fn a_commit_without_lines_leaves_every_event_to_one_carrier() {
        let mut n = Numbering::new(MemberId::parse("m").unwrap(), 0, at());
        n.note(updated());
        let (rest, last) = n.finish();
        assert_eq!((rest.len(), rest[0].seq, last), (1, 1, 1));
    }

    #[test]
    fn event_ids_order_as_their_instants_and_increase_within_a_commit() {
        let ctx = uuid::ContextV7::new();
        let c = event_id(&ctx, at() - chrono::Duration::days(400));
        let a = event_id(&ctx, at());
        let b = event_id(&ctx, at() + chrono::Duration::milliseconds(1));
        assert!(c < a && a < b);
        let same: Vec<Uuid> = (0..100).map(|_| event_id(&ctx, at())).collect();
        assert!(same.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn ids_of_two_commits_within_one_millisecond_order_as_their_instants() {
        let m = MemberId::parse("m").unwrap();
        for micros in [5, 100, 400, 999] {
            let first = Numbering::new(m.clone(), 0, at());
            let later = at() + chrono::Duration::microseconds(micros);
            let second = Numbering::new(m.clone(), 1, later);
            let a = event_id(&first.ids, at());
            let b = event_id(&second.ids, later);
            assert!(a < b, "{micros} µs apart: {a} !< {b}");
        }
    }

    #[test]
    fn types_serialise_as_api_names() {
        assert_eq!(
            serde_json::to_value(EventType::PointsEarned).unwrap(),
            json!("points.earned")
        );
        assert_eq!(
            serde_json::to_value(EventType::TierDowngraded).unwrap(),
            json!("tier.downgraded")
        );
    }
}
