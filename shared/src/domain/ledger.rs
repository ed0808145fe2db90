//! The ledger: one immutable line per change of a member's points, and what kind of change it
//! was. A member's history, the event feed and the books are all read from these lines.

use super::Points;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    /// Pending purchase points became spendable (0 points in the ledger: they were counted when
    /// earned; the event moves them into the balance).
    PointsAvailable,
    /// Spendable points past their last day.
    PointsExpired,
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
    /// A campaign's award on a purchase (positive), or its reversal by a refund (negative).
    CampaignBonus,
    /// A referral's reward (either side, or a milestone bonus), or its reversal (negative).
    Referral,
}

/// One immutable line of a member's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "01935b2e-6a00-7000-8000-0000000000aa", "kind": "purchase", "points": 19, "balance_after": 119, "reference": "purchase:store-1/R-1001", "note": null, "created_at": "2026-11-22T10:15:00Z"}))]
pub struct LedgerEntry {
    pub id: Uuid,
    pub kind: LedgerKind,
    pub points: Points,
    pub balance_after: Points,
    /// What caused it: `purchase:<store>/<receipt>`, `redemption:<id>`, `gift:<year>` …
    pub reference: Option<String>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl LedgerEntry {
    /// A new entry, dated `now`, with a fresh time-ordered id.
    pub fn new(
        kind: LedgerKind,
        points: Points,
        balance_after: Points,
        reference: Option<String>,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Self {
        LedgerEntry {
            id: Uuid::now_v7(),
            kind,
            points,
            balance_after,
            reference,
            note,
            created_at: now,
        }
    }
}
