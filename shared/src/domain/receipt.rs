//! What a purchase or refund answers, kept with the purchase so a replay answers the same: the
//! stored shapes of accrual (the use cases are in `service::accrual`).

use super::{MemberId, Money, Points, ReceiptId, RefundId, StoreId, Tier};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseLine {
    pub sku: String,
    pub category: Option<String>,
    pub quantity: u32,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"purchase_id": "01935b2e-6a00-7000-8000-0000000000bb", "member_id": "member-ada", "points_earned": 19, "campaign_bonus": 19, "balance": 138, "tier": "silver", "tier_changed": false, "ledger_entry_id": "01935b2e-6a00-7000-8000-0000000000aa"}))]
pub struct PurchaseReceipt {
    pub purchase_id: Uuid,
    pub member_id: MemberId,
    pub points_earned: Points,
    /// Points the running campaigns awarded on this purchase (`campaign_bonus` ledger entries),
    /// on top of `points_earned`. Always sent; the default reads receipts stored before it.
    #[serde(default)]
    #[schema(required = true)]
    pub campaign_bonus: Points,
    pub balance: Points,
    pub tier: Tier,
    pub tier_changed: bool,
    pub ledger_entry_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"refund_id": "RF-1", "points_reversed": 9, "balance": 110, "refunded_total": {"value": 999, "currency": "USD"}}))]
pub struct RefundReceipt {
    pub refund_id: RefundId,
    /// The purchase's points and its campaign awards reversed, pro rata.
    pub points_reversed: Points,
    pub balance: Points,
    pub refunded_total: Money,
}

/// A purchase as an operator finds it by its receipt (`GET /v1/purchases/{store_id}/{receipt_id}`):
/// what was bought, by whom, what it earned and what has been refunded.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"purchase_id": "01935b2e-6a00-7000-8000-0000000000bb", "member_id": "member-ada", "store_id": "store-1", "receipt_id": "R-1001", "amount": {"value": 1999, "currency": "USD"}, "occurred_at": "2026-11-20T10:00:00Z", "points_earned": 19, "campaign_bonus": 0, "refunded_total": {"value": 0, "currency": "USD"}, "lines": []}))]
pub struct PurchaseView {
    pub purchase_id: Uuid,
    pub member_id: MemberId,
    pub store_id: crate::domain::StoreId,
    pub receipt_id: crate::domain::ReceiptId,
    pub amount: Money,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub points_earned: Points,
    pub campaign_bonus: Points,
    /// In the purchase's currency.
    pub refunded_total: Money,
    pub lines: Vec<PurchaseLine>,
}

/// A purchase by its natural key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PurchaseRef {
    pub store_id: StoreId,
    pub receipt_id: ReceiptId,
}

/// A refund by its natural key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefundRef {
    pub store_id: StoreId,
    pub receipt_id: ReceiptId,
    pub refund_id: RefundId,
}

impl RefundRef {
    /// The purchase refunded.
    pub fn purchase(&self) -> PurchaseRef {
        PurchaseRef {
            store_id: self.store_id.clone(),
            receipt_id: self.receipt_id.clone(),
        }
    }

    pub fn new(store: &StoreId, receipt: &ReceiptId, refund: &RefundId) -> Self {
        RefundRef {
            store_id: store.clone(),
            receipt_id: receipt.clone(),
            refund_id: refund.clone(),
        }
    }
}
