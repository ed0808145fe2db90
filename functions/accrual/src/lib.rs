//! The `accrual` function: purchases and refunds from POS systems, idempotent by receipt and
//! refund id.

use axum::extract::{Path, State};
use chrono::{DateTime, FixedOffset, Utc};
use http::StatusCode;
use loyalty::domain::{MemberId, Money, Phone, PhoneInput, RefundId};
use loyalty::domain::{ReceiptId, StoreId};
use loyalty::http::identity::Access;
use loyalty::http::problem::ProblemDocument;
use loyalty::http::{Caller, JsonBody, Problem, Reply, RequestId};
use loyalty::service::Purchases;
use loyalty::service::accrual::{
    Buyer, NewPurchase, NewRefund, PurchaseLine, PurchaseReceipt, PurchaseView, RefundReceipt,
};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

loyalty::handlers! {
    purchase;
    refund;
    find_purchase;
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
fn as_utc<S: Serializer>(t: &Option<DateTime<FixedOffset>>, s: S) -> Result<S::Ok, S::Error> {
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

impl From<PurchaseRequest> for NewPurchase {
    fn from(r: PurchaseRequest) -> Self {
        NewPurchase {
            member: Buyer {
                id: r.member.id,
                phone: r.member.phone,
            },
            store_id: r.store_id,
            receipt_id: r.receipt_id,
            amount: r.amount,
            occurred_at: r.occurred_at.map(|t| t.with_timezone(&Utc)),
            lines: r.lines,
            payment_fingerprint: r.payment_fingerprint,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refund_id": "RF-1", "amount": {"value": 999, "currency": "USD"}}))]
pub struct RefundRequest {
    pub refund_id: RefundId,
    pub amount: Money,
}

impl From<RefundRequest> for NewRefund {
    fn from(r: RefundRequest) -> Self {
        NewRefund {
            refund_id: r.refund_id,
            amount: r.amount,
        }
    }
}

/// Post a purchase. Idempotent by `store_id` + `receipt_id`: a replay answers the first response
/// with `Idempotent-Replayed: true`; the same receipt with another body is 409 `receipt-conflict`.
#[utoipa::path(post, operation_id = "record_purchase", path = "/v1/purchases", tag = "accrual", request_body = PurchaseRequest,
    security(("bearer" = [])),
    responses((status = 201, body = PurchaseReceipt),
              (status = 409, description = "receipt-conflict", body = ProblemDocument),
              (status = 422, description = "currency-mismatch, stale-purchase, validation", body = ProblemDocument)))]
async fn purchase(
    State(purchases): State<Purchases>,
    caller: Caller,
    request: RequestId,
    body: JsonBody<PurchaseRequest>,
) -> Result<Reply<PurchaseReceipt>, Problem> {
    caller.require(Access::Store(&body.value.store_id))?;
    let digest = body.digest();
    let actor = caller.actor(&request);
    let outcome = purchases
        .purchase(body.value.into(), &digest, actor.as_ref())
        .await?;
    Ok(Reply::from_outcome(StatusCode::CREATED, outcome))
}

/// Refund part or all of a purchase. Idempotent by `refund_id`.
#[utoipa::path(post, operation_id = "refund_purchase", path = "/v1/purchases/{store_id}/{receipt_id}/refunds", tag = "accrual",
    request_body = RefundRequest, security(("bearer" = [])),
    params(("store_id" = String, Path), ("receipt_id" = String, Path)),
    responses((status = 201, body = RefundReceipt),
              (status = 404, body = ProblemDocument),
              (status = 409, description = "receipt-conflict: this refund id was posted with different content", body = ProblemDocument),
              (status = 422, description = "refund-exceeds-purchase, currency-mismatch", body = ProblemDocument)))]
async fn refund(
    State(purchases): State<Purchases>,
    caller: Caller,
    Path((store, receipt)): Path<(String, String)>,
    request: RequestId,
    body: JsonBody<RefundRequest>,
) -> Result<Reply<RefundReceipt>, Problem> {
    let store = StoreId::parse(&store).map_err(|_| Problem::not_found("purchase not found"))?;
    let receipt =
        ReceiptId::parse(&receipt).map_err(|_| Problem::not_found("purchase not found"))?;
    caller.require(Access::Store(&store))?;
    let digest = body.digest();
    let actor = caller.actor(&request);
    let outcome = purchases
        .refund(&store, &receipt, body.value.into(), &digest, actor.as_ref())
        .await?;
    Ok(Reply::from_outcome(StatusCode::CREATED, outcome))
}

/// The purchase a receipt recorded: its member, amount, lines, points and refunds so far. For
/// operators holding a receipt (the member 360's "find by receipt").
#[utoipa::path(get, operation_id = "get_purchase", path = "/v1/purchases/{store_id}/{receipt_id}", tag = "accrual",
    security(("bearer" = [])),
    params(("store_id" = String, Path), ("receipt_id" = String, Path)),
    responses((status = 200, body = PurchaseView), (status = 403, body = ProblemDocument),
              (status = 404, body = ProblemDocument)))]
async fn find_purchase(
    State(purchases): State<Purchases>,
    caller: Caller,
    Path((store, receipt)): Path<(String, String)>,
) -> Result<Reply<PurchaseView>, Problem> {
    caller.require(Access::Lookup)?;
    let store = StoreId::parse(&store).map_err(|_| Problem::not_found("purchase not found"))?;
    let receipt =
        ReceiptId::parse(&receipt).map_err(|_| Problem::not_found("purchase not found"))?;
    Ok(Reply::ok(
        purchases.purchase_by_receipt(&store, &receipt).await?,
    ))
}
