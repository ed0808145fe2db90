//! The `redemption` function: the reward catalog, redemptions, cancellations and vouchers at the
//! till.

use axum::extract::{Path, State};
use http::StatusCode;
use loyalty::domain::Points;
use loyalty::domain::tier::Tier;
use loyalty::domain::{MemberId, RewardId, StoreId};
use loyalty::http::RequestId;
use loyalty::http::identity::Access;
use loyalty::http::problem::ProblemDocument;
use loyalty::http::{
    Caller, IdempotencyKey, JsonBody, ListResponse, Paging, PathId, Problem, Reply,
};
use loyalty::service::Redemptions;
use loyalty::service::redemption::{
    Redemption, RedemptionReceipt, RewardDefinition, RewardView, VoucherUse,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

// `PUT /v1/rewards/{id}`: a reward as an operator defines it (no doc comment: it would become
// the schema's description).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Free coffee", "description": "Any size", "cost_points": 50, "min_tier": "silver", "stock": 100, "per_member_limit": 2, "active": true}))]
pub struct RewardInput {
    pub name: String,
    pub description: Option<String>,
    pub cost_points: Points,
    #[serde(default = "silver")]
    pub min_tier: Tier,
    /// Total stock; omit or null for unlimited.
    pub stock: Option<u64>,
    pub per_member_limit: Option<u32>,
    #[serde(default = "yes")]
    pub active: bool,
}

fn silver() -> Tier {
    Tier::Silver
}

fn yes() -> bool {
    true
}

impl From<RewardInput> for RewardDefinition {
    fn from(r: RewardInput) -> Self {
        RewardDefinition {
            name: r.name,
            description: r.description,
            cost_points: r.cost_points,
            min_tier: r.min_tier,
            stock: r.stock,
            per_member_limit: r.per_member_limit,
            active: r.active,
        }
    }
}

loyalty::handlers! {
    catalog;
    put_reward;
    redeem, list_redemptions;
    cancel;
    use_voucher;
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reward_id": "free-coffee"}))]
pub struct RedeemRequest {
    pub reward_id: RewardId,
}

#[derive(Deserialize, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"store_id": "store-1"}))]
pub struct UseVoucherRequest {
    pub store_id: StoreId,
}

fn member_id(raw: &str) -> Result<loyalty::domain::MemberId, Problem> {
    loyalty::domain::MemberId::parse(raw).map_err(|_| Problem::not_found("member not found"))
}

/// The active catalog.
#[utoipa::path(get, operation_id = "list_rewards", path = "/v1/rewards", tag = "rewards", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListResponse<RewardView>)))]
async fn catalog(
    State(redemptions): State<Redemptions>,
    _caller: Caller,
    paging: Paging,
) -> Result<Reply<ListResponse<RewardView>>, Problem> {
    let (items, next) = redemptions
        .catalog(paging.limit, paging.cursor.as_deref())
        .await?;
    Ok(Reply::ok(ListResponse::new(items, next)))
}

/// Create (201) or replace (200) a reward. Vouchers already issued keep counting against stock.
#[utoipa::path(put, path = "/v1/rewards/{id}", tag = "rewards", request_body = RewardInput,
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = RewardView), (status = 201, body = RewardView), (status = 403, body = ProblemDocument)))]
async fn put_reward(
    State(redemptions): State<Redemptions>,
    caller: Caller,
    Path(id): Path<String>,
    request: RequestId,
    body: JsonBody<RewardInput>,
) -> Result<Reply<RewardView>, Problem> {
    caller.require(Access::Admin)?;
    let actor = caller.operator(&request)?;
    let id = RewardId::parse(&id).map_err(|e| Problem::bad_field("id", e.0))?;
    let (view, created) = redemptions
        .put_reward(&id, body.value.into(), &actor)
        .await?;
    Ok(if created {
        Reply::created(view)
    } else {
        Reply::ok(view)
    })
}

/// Redeem a reward: points are deducted and a single-use voucher issued, atomically. Send an
/// `Idempotency-Key` so a double tap redeems once.
#[utoipa::path(post, operation_id = "redeem_reward", path = "/v1/members/{id}/redemptions", tag = "rewards", request_body = RedeemRequest,
    security(("bearer" = [])), params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = RedemptionReceipt),
              (status = 409, description = "insufficient-points, out-of-stock, limit-reached, reward-inactive", body = ProblemDocument),
              (status = 403, description = "tier-too-low, forbidden", body = ProblemDocument)))]
async fn redeem(
    State(redemptions): State<Redemptions>,
    caller: Caller,
    PathId(id): PathId<MemberId>,
    key: IdempotencyKey,
    request: RequestId,
    body: JsonBody<RedeemRequest>,
) -> Result<Reply<RedemptionReceipt>, Problem> {
    caller.require(Access::MemberOwn(&id))?;
    let idem = key.for_member_request(
        &caller.principal(),
        &format!("redeem:{id}"),
        &id,
        &body.digest(),
    );
    let actor = caller.actor(&request);
    let outcome = redemptions
        .redeem(&id, &body.value.reward_id, idem, actor.as_ref())
        .await?;
    Ok(Reply::from_outcome(StatusCode::CREATED, outcome))
}

/// The member's redemptions, newest first.
#[utoipa::path(get, path = "/v1/members/{id}/redemptions", tag = "rewards", security(("bearer" = [])),
    params(("id" = String, Path), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListResponse<Redemption>)))]
async fn list_redemptions(
    State(redemptions): State<Redemptions>,
    caller: Caller,
    PathId(id): PathId<MemberId>,
    paging: Paging,
) -> Result<Reply<ListResponse<Redemption>>, Problem> {
    caller.require(Access::MemberData(&id))?;
    let (items, next) = redemptions
        .redemptions(&id, paging.limit, paging.cursor.as_deref())
        .await?;
    Ok(Reply::ok(ListResponse::new(items, next)))
}

/// Cancel a redemption whose voucher is unused: points, stock and the per-member count return.
#[utoipa::path(post, operation_id = "cancel_redemption", path = "/v1/members/{id}/redemptions/{redemption_id}/cancel", tag = "rewards",
    security(("bearer" = [])), params(("id" = String, Path), ("redemption_id" = String, Path)),
    responses((status = 200, body = Redemption), (status = 409, description = "redemption-not-cancellable", body = ProblemDocument)))]
async fn cancel(
    State(redemptions): State<Redemptions>,
    caller: Caller,
    Path((id, redemption)): Path<(String, String)>,
    request: RequestId,
) -> Result<Reply<Redemption>, Problem> {
    let id = member_id(&id)?;
    caller.require(Access::MemberCare(&id))?;
    let redemption = uuid::Uuid::parse_str(&redemption)
        .map_err(|_| Problem::not_found("redemption not found"))?;
    let actor = caller.actor(&request);
    Ok(Reply::ok(
        redemptions
            .cancel_redemption(&id, &redemption, actor.as_ref())
            .await?,
    ))
}

/// Accept a voucher at the till (once).
#[utoipa::path(post, path = "/v1/vouchers/{code}/use", tag = "rewards", request_body = UseVoucherRequest,
    security(("bearer" = [])), params(("code" = String, Path)),
    responses((status = 200, body = VoucherUse),
              (status = 409, description = "voucher-used, voucher-expired, voucher-cancelled", body = ProblemDocument),
              (status = 404, body = ProblemDocument)))]
async fn use_voucher(
    State(redemptions): State<Redemptions>,
    caller: Caller,
    Path(code): Path<String>,
    body: JsonBody<UseVoucherRequest>,
) -> Result<Reply<VoucherUse>, Problem> {
    caller.require(Access::Store(&body.value.store_id))?;
    Ok(Reply::ok(
        redemptions.use_voucher(&code, &body.value.store_id).await?,
    ))
}
