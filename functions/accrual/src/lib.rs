//! The `accrual` function: purchases and refunds from POS systems, idempotent by receipt and
//! refund id.

use axum::extract::{Path, State};
use http::StatusCode;
use loyalty::domain::{ReceiptId, StoreId};
use loyalty::http::identity::Access;
use loyalty::http::problem::ProblemDocument;
use loyalty::http::{Caller, JsonBody, Problem, Reply, RequestId};
use loyalty::service::Purchases;
use loyalty::service::accrual::{
    PurchaseReceipt, PurchaseRequest, PurchaseView, RefundReceipt, RefundRequest,
};

loyalty::handlers! {
    purchase;
    refund;
    find_purchase;
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
        .purchase(body.value, &digest, actor.as_ref())
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
        .refund(&store, &receipt, body.value, &digest, actor.as_ref())
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
