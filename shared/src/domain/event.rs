//! Domain events: what a commit tells the world. A member's events are numbered 1, 2, 3 … by
//! `seq`, with no gap and no repeat, because each commit takes the next numbers from the member
//! item it writes under a version condition. This module owns the envelope, the numbering of one
//! commit's events, and which stored item carries which event (pure rules, no I/O).

use super::MemberId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
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
    #[serde(rename = "points.pending")]
    PointsPending,
    #[serde(rename = "points.available")]
    PointsAvailable,
    #[serde(rename = "points.expired")]
    PointsExpired,
    #[serde(rename = "points.expiring_soon")]
    PointsExpiringSoon,
}

/// The envelope of API.md "Events". `data` never holds a name, phone or email.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "01935b2e-6a00-7000-8000-000000000004", "type": "points.earned",
    "occurred_at": "2026-11-22T10:15:00Z", "member_id": "member-ada", "seq": 4,
    "data": {"points": 19, "balance": 119, "reference": "purchase:store-1/R-1001",
             "ledger_entry_id": "01935b2e-6a00-7000-8000-0000000000aa", "ledger_kind": "purchase",
             "store_id": "store-1", "receipt_id": "R-1001", "amount": {"value": 1999, "currency": "USD"},
             "occurred_at": "2026-11-22T09:30:00Z", "tier": "silver"}}))]
pub struct Event {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub occurred_at: DateTime<Utc>,
    pub member_id: Option<MemberId>,
    pub seq: u64,
    #[schema(value_type = Object)]
    pub data: Value,
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

    fn make(&mut self, kind: EventType, data: Value) -> Event {
        let e = Event {
            id: event_id(&self.ids, self.at),
            kind,
            occurred_at: self.at,
            member_id: Some(self.member.clone()),
            seq: self.next,
            data,
        };
        self.next += 1;
        e
    }

    /// An event without a ledger line of its own.
    pub fn note(&mut self, kind: EventType, data: Value) {
        let e = self.make(kind, data);
        self.pending.push(e);
    }

    /// An event recorded by a ledger line; returns the line's seq (its key).
    pub fn line(&mut self, kind: EventType, data: Value) -> u64 {
        let e = self.make(kind, data);
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

    #[test]
    fn a_commit_numbers_its_events_after_the_members_last_seq_without_gaps() {
        let m = MemberId::parse("m").unwrap();
        let mut n = Numbering::new(m, 4, at());
        n.note(EventType::VoucherIssued, json!({}));
        let s = n.line(EventType::PointsRedeemed, json!({"points": -30}));
        n.note(EventType::MemberUpdated, json!({}));
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
        n.note(EventType::MemberEnrolled, json!({}));
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
