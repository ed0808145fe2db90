//! Purchases and refunds. Idempotent by natural key: the purchase item (`store` + `receipt`) and
//! the refund item (`refund_id`) hold the request digest and the response, written in the same
//! commit as the points, so a replay returns the first answer and a different body is refused.

use super::error::ServiceError;
pub use crate::domain::receipt::{PurchaseLine, PurchaseReceipt, PurchaseView, RefundReceipt};
use crate::domain::{MemberId, Money, PhoneInput, ReceiptId, RefundId, StoreId};
use crate::service::Campaigns;
use crate::service::Ctx;
use crate::service::Referrals;
use crate::service::Segmentation;
use chrono::{DateTime, Utc};

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

/// The member a purchase names: exactly one of `id` or `phone` (checked here, so every caller
/// gets the same 400).
#[derive(Debug, Clone)]
pub struct Buyer {
    pub id: Option<MemberId>,
    pub phone: Option<PhoneInput>,
}

/// A purchase as the till reports it (the HTTP edge parses `POST /v1/purchases` into it).
#[derive(Debug, Clone)]
pub struct NewPurchase {
    pub member: Buyer,
    pub store_id: StoreId,
    pub receipt_id: ReceiptId,
    pub amount: Money,
    /// When the sale happened at the till; absent, when the purchase is recorded.
    pub occurred_at: Option<DateTime<Utc>>,
    pub lines: Option<Vec<PurchaseLine>>,
    /// An opaque hash of the card or wallet token, compared with the referrer's.
    pub payment_fingerprint: Option<String>,
}

impl NewPurchase {
    /// When the sale happened: as the till said, else `now` (when it is recorded).
    pub fn occurred(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.occurred_at.unwrap_or(now)
    }
}

/// A refund of part or all of a purchase.
#[derive(Debug, Clone)]
pub struct NewRefund {
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
