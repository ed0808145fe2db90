//! Referrals (DESIGN.md "Referrals"): codes (made on first ask, unique by a claim item; vanity
//! codes set by an administrator), applying a code at enrolment or within the window, what a
//! referee's qualifying purchase and a refund of it do (called by `accrual` inside their own
//! commits), the review queue, and the funnel. The rules are `domain::referral`'s.

mod analytics;
mod apply;
mod clawback;
mod codes;
mod qualify;
mod review;

pub use analytics::{ANALYTICS_MAX_DAYS, ReferralAnalytics, ReferredRetention, RepeatRate};

use crate::domain::event::{EventData, ReferralJudged, ReferralRole};
use crate::domain::member::Member;
use crate::domain::receipt::{PurchaseRef, RefundRef};
use crate::domain::referral::{self, Contact, FraudRule, Referral, ReferralCode, ReferralStatus};
use crate::domain::{MemberId, Points};
use crate::service::Ctx;
use crate::service::error::ServiceError;
use crate::service::error::live;
use crate::table::{CodeClaim, CodeGuesses, Fetched, Reads, Referrer, Slot, Versioned};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// Referral codes, applying them, qualification, clawback, review and analytics.
#[derive(Clone)]
pub struct Referrals {
    pub(crate) ctx: Ctx,
    /// The key of pseudonymous hashes (referee marks, retired codes), read once per process.
    pub(crate) pseudonym_key: Arc<tokio::sync::OnceCell<Vec<u8>>>,
}

/// What a referrer's codes did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReferralCounts {
    pub applied: u32,
    /// Held for review now.
    pub held: u32,
    /// Qualified and paid (the referee at least), ever.
    pub rewarded: u32,
    pub reversed: u32,
    pub rejected: u32,
    /// Rewarded and not reversed: what milestones count.
    pub qualified: u32,
}

/// A member's referral page: their code, what it did, and who referred them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"member_id": "member-ada", "code": "K7QM4ZPA",
    "counts": {"applied": 4, "held": 0, "rewarded": 3, "reversed": 1, "rejected": 0, "qualified": 2},
    "points_earned": 1000, "referred_by": null}))]
pub struct ReferralSummary {
    pub member_id: MemberId,
    /// Null only for a member enrolled before codes were made at enrolment, until the next
    /// nightly segments run makes theirs.
    pub code: Option<ReferralCode>,
    pub counts: ReferralCounts,
    /// Points paid to this member as a referrer (rewards and milestones), net of reversals.
    pub points_earned: Points,
    /// The referral this member is the referee of, if they applied a code.
    pub referred_by: Option<ReferralView>,
}

/// A referral as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"referee_id": "member-bob", "referrer_id": "member-ada", "code": "K7QM4ZPA",
    "status": "rewarded", "rule": null, "applied_at": "2027-01-02T10:00:00Z", "deadline": "2027-02-01",
    "purchase": {"store_id": "store-1", "receipt_id": "R-1"}, "amount": 2500,
    "qualified_at": "2027-01-05T12:00:00Z", "referee_points": 200, "referrer_points": 500,
    "milestone_points": 0, "capped": false, "reviewed_by": null}))]
pub struct ReferralView {
    pub referee_id: MemberId,
    pub referrer_id: MemberId,
    pub code: ReferralCode,
    pub status: ReferralStatus,
    /// The rule that held or rejected it.
    pub rule: Option<FraudRule>,
    pub applied_at: DateTime<Utc>,
    /// The last day a purchase qualifies.
    pub deadline: NaiveDate,
    pub purchase: Option<PurchaseRef>,
    /// The qualifying purchase's amount, in minor units.
    pub amount: Option<i64>,
    pub qualified_at: Option<DateTime<Utc>>,
    pub referee_points: Points,
    pub referrer_points: Points,
    pub milestone_points: Points,
    /// The referrer was past a cap: the referee was paid, the referrer not.
    pub capped: bool,
    pub reviewed_by: Option<String>,
}

/// The referrer of a code, as read for applying it or paying a referral.
pub(crate) struct Referring {
    pub member: Versioned<Member>,
    pub record: Versioned<Referrer>,
}

/// The reads a referral needs about its referrer (one round trip with the referral itself).
pub(crate) struct ReferringSlots {
    member: Slot<Member>,
    record: Slot<Referrer>,
}

impl ReferringSlots {
    pub fn add(reads: &mut Reads, referrer: &MemberId) -> Self {
        ReferringSlots {
            member: reads.add::<Member>(referrer),
            record: reads.add::<Referrer>(referrer),
        }
    }
    pub fn get(&self, found: &Fetched) -> Result<Referring, ServiceError> {
        Ok(Referring {
            member: live(found.get(&self.member)?)?,
            record: found
                .get(&self.record)?
                .ok_or_else(|| ServiceError::corrupt("a referral's referrer has no code"))?,
        })
    }
}

/// What applying a code reads in its first round trip: the code's claim, and how many unknown
/// codes the caller has tried (DESIGN.md "Guessing codes").
pub(crate) struct CodeReads {
    pub code: ReferralCode,
    claim: Slot<CodeClaim>,
    guesser: String,
    guesses: Slot<CodeGuesses>,
}

impl CodeReads {
    /// `guesser` as [`Referrals::guesser`] made it.
    pub fn add(reads: &mut Reads, code: &ReferralCode, guesser: String) -> Self {
        CodeReads {
            code: code.clone(),
            claim: reads.add::<CodeClaim>(code),
            guesses: reads.add::<CodeGuesses>(&guesser),
            guesser,
        }
    }
}

/// What a referee's purchase reads about their referral: nothing (no mark, or not a purchase
/// that could qualify), or — once — the referral, the referrer and whether the referrer paid
/// with the same card.
pub(crate) enum ReferralStep {
    /// The window is over: the mark is closed, nothing more is read.
    Close,
    Decide(Box<ReferralReads>),
}

pub(crate) struct ReferralReads {
    referral: Versioned<Referral>,
    referring: Referring,
    same_payment: bool,
    /// The referee's keyed contact hashes, and whether one was rewarded as a referee before.
    marks: Vec<String>,
    repeat: bool,
}

/// What a referee's purchase did to their referral, for the purchase's record.
pub(crate) struct ReferralOutcome {
    /// The referrer, when this purchase qualified or held the referral (a refund reads it).
    pub referrer: Option<MemberId>,
}

fn contact(m: &Member) -> Contact {
    Contact::of(
        m.phone.as_ref().map(|p| p.as_str()),
        m.email.as_ref().map(|e| String::from(e.clone())).as_deref(),
    )
}

/// The hash a payment fingerprint is stored and compared as.
pub fn payment_hash(fingerprint: &str) -> String {
    referral::fingerprint("payment", fingerprint.trim())
}

fn view(r: &Referral, today: NaiveDate) -> ReferralView {
    ReferralView {
        referee_id: r.referee.clone(),
        referrer_id: r.referrer.clone(),
        code: r.code.clone(),
        status: r.status_on(today),
        rule: r.rule,
        applied_at: r.applied_at,
        deadline: r.deadline,
        purchase: r.purchase.clone(),
        amount: r.amount,
        qualified_at: r.qualified_at,
        referee_points: r.referee_points,
        referrer_points: r.referrer_points,
        milestone_points: r.milestone_points,
        capped: r.capped,
        reviewed_by: r.reviewed_by.clone(),
    }
}

fn counts_view(r: &Referrer) -> ReferralCounts {
    let c = &r.counts;
    ReferralCounts {
        applied: c.applied,
        held: c.held,
        rewarded: c.rewarded,
        reversed: c.reversed,
        rejected: c.rejected,
        qualified: c.standing(),
    }
}

/// A refund as the referral it touches sees it: which refund, the purchase's amount, what has
/// been refunded of it with this one, and when.
#[derive(Clone, Copy)]
pub(crate) struct RefundOf<'a> {
    pub of: &'a RefundRef,
    pub purchase_amount: i64,
    pub refunded_total: i64,
    pub now: DateTime<Utc>,
}

/// Which side of which referral points go to or come back from: the role, and the referee the
/// referral is named by (its ledger reference).
#[derive(Clone, Copy)]
struct Side<'a> {
    role: ReferralRole,
    referee: &'a MemberId,
}

/// The referee's event for a referral a fraud rule or a reviewer held or rejected (a rejection
/// with no rule was a reviewer's).
pub(crate) fn judged_event(r: &Referral) -> EventData {
    let judged = ReferralJudged {
        referrer_id: r.referrer.clone(),
        rule: r.rule.unwrap_or(FraudRule::Reviewer),
        purchase: r.purchase.clone(),
    };
    match r.status {
        ReferralStatus::Held => EventData::ReferralHeld(judged),
        _ => EventData::ReferralRejected(judged),
    }
}
