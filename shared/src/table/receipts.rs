//! Purchases and refunds, keyed by their store and receipt: the natural keys that make a POS
//! retry a replay.

use super::Record;
use crate::domain::campaign::CampaignCredit;
use crate::domain::receipt::{PurchaseLine, PurchaseReceipt, RefundReceipt};
use crate::domain::{MemberId, Money, Points, ReceiptId, RefundId, StoreId};
use crate::store::Key;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
