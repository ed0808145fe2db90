//! Purchases and refunds. Idempotent by natural key: the purchase item (`store` + `receipt`) and
//! the refund item (`refund_id`) hold the request digest and the response, written in the same
//! commit as the points, so a replay returns the first answer and a different body is refused.

use super::error::ServiceError;
pub use crate::domain::receipt::{PurchaseLine, PurchaseReceipt, PurchaseView, RefundReceipt};
use crate::domain::{MemberId, Money, Phone, PhoneInput, ReceiptId, RefundId, StoreId};
use crate::service::Campaigns;
use crate::service::Ctx;
use crate::service::Referrals;
use crate::service::Segmentation;
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

mod purchase;
mod refund;

/// Purchases and refunds at the till: the points they earn and take back, the campaigns they play
/// and the referrals they qualify or claw back.
#[derive(Clone)]
pub struct Purchases {
    pub(crate) ctx: Ctx,
    pub(crate) campaigns: Campaigns,
    pub(crate) referrals: Referrals,
    pub(crate) segments: Segmentation,
}

/// The member a purchase belongs to: exactly one of `id` or `phone`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRef {
    pub id: Option<MemberId>,
    #[schema(value_type = Option<Phone>)]
    pub phone: Option<PhoneInput>,
}

/// Serialises an instant in UTC, so a request's digest does not depend on how its offset was
/// written (`Z`, `+00:00`, `+08:00` for the same instant).
pub(super) fn as_utc<S: Serializer>(
    t: &Option<DateTime<FixedOffset>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    t.map(|t| t.with_timezone(&Utc)).serialize(s)
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"member": {"id": "member-ada"}, "store_id": "store-1", "receipt_id": "R-1001", "amount": {"value": 1999, "currency": "USD"}, "occurred_at": "2026-11-22T09:30:00+08:00", "lines": [{"sku": "TEA-001", "category": "drinks", "quantity": 1, "amount": {"value": 1999, "currency": "USD"}}]}))]
pub struct PurchaseRequest {
    pub member: MemberRef,
    pub store_id: StoreId,
    pub receipt_id: ReceiptId,
    pub amount: Money,
    /// When the sale happened at the till (RFC 3339 with offset); absent, when the purchase is
    /// recorded (so a sample or a simple till never goes stale).
    #[serde(
        default,
        serialize_with = "as_utc",
        skip_serializing_if = "Option::is_none"
    )]
    pub occurred_at: Option<DateTime<FixedOffset>>,
    pub lines: Option<Vec<PurchaseLine>>,
    /// An opaque hash of the card or wallet token, when the POS has one: stored hashed again,
    /// never returned, compared with the referrer's for the self-referral rule.
    pub payment_fingerprint: Option<String>,
}

impl PurchaseRequest {
    /// When the sale happened: as the till said, else `now` (when it is recorded).
    pub fn occurred(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.occurred_at.map_or(now, |t| t.with_timezone(&Utc))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refund_id": "RF-1", "amount": {"value": 999, "currency": "USD"}}))]
pub struct RefundRequest {
    pub refund_id: RefundId,
    pub amount: Money,
}

/// A natural key (a receipt, a refund id) met again: the same request is replayed, another one
/// under the same key is refused (409).
pub(super) fn same_receipt(recorded: &str, digest: &str) -> Result<(), ServiceError> {
    if recorded == digest {
        Ok(())
    } else {
        Err(ServiceError::ReceiptConflict)
    }
}

impl Purchases {
    pub(super) fn check_amount(&self, field: &str, m: Money) -> Result<(), ServiceError> {
        if m.currency != self.ctx.program.currency {
            return Err(ServiceError::CurrencyMismatch {
                expected: self.ctx.program.currency,
                got: m.currency,
            });
        }
        m.positive_amount()
            .map(|_| ())
            .map_err(|e| ServiceError::invalid(&format!("{field}.value"), e))
    }
}
