//! The `campaigns` function (admin writes; analysts read): drafts, launch, end and the measured results of
//! campaigns aimed at segments. The purchase path that plays running campaigns lives with the
//! purchases (`accrual`), in the purchase's own commit.

use axum::extract::{Path, State};
use chrono::{DateTime, FixedOffset};
use loyalty::domain::Points;
use loyalty::domain::campaign::OfferInput;
use loyalty::domain::{CampaignId, MemberId};
use loyalty::http::RequestId;
use loyalty::http::identity::Access;
use loyalty::http::problem::ProblemDocument;
use loyalty::http::{Caller, JsonBody, ListResponse, Paging, PathId, Problem, Reply};
use loyalty::service::Campaigns;
use loyalty::service::campaigns::{CampaignDraft, CampaignResults, CampaignView, MemberCampaign};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A draft, as `PUT /v1/campaigns/{id}` takes it.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Win back dormant members", "audience": ["lifecycle:dormant", "value:at_risk"],
    "starts_at": "2027-01-01T00:00:00Z", "ends_at": "2027-02-01T00:00:00Z",
    "offer": {"kind": "multiplier", "multiplier": 2.0, "categories": ["drinks"]},
    "per_member_limit": 1, "budget_points": 100000, "holdout_percent": 10}))]
pub struct CampaignInput {
    /// 1 to 200 characters.
    pub name: String,
    /// 1 to 10 segment ids (`lifecycle:dormant`, `value:at_risk`, `tier:gold` …): the audience is
    /// every member in any of them at launch.
    pub audience: Vec<String>,
    pub starts_at: DateTime<FixedOffset>,
    /// After `starts_at`, at most 366 days later.
    pub ends_at: DateTime<FixedOffset>,
    pub offer: OfferInput,
    /// Awards per member, 1 to 1000; absent or null: no limit.
    pub per_member_limit: Option<u32>,
    /// 1 to 1,000,000,000: awards never exceed it in total.
    pub budget_points: Points,
    /// 0 to 50 (at most 2 decimals); default 10.
    #[schema(value_type = Option<f64>, example = 10)]
    pub holdout_percent: Option<serde_json::Number>,
}

impl From<CampaignInput> for CampaignDraft {
    fn from(c: CampaignInput) -> Self {
        CampaignDraft {
            name: c.name,
            audience: c.audience,
            starts_at: c.starts_at.to_utc(),
            ends_at: c.ends_at.to_utc(),
            offer: c.offer,
            per_member_limit: c.per_member_limit,
            budget_points: c.budget_points,
            holdout_percent: c.holdout_percent,
        }
    }
}

loyalty::handlers! {
    list_campaigns;
    put_campaign, get_campaign;
    launch;
    end;
    results;
    member_campaigns;
}

/// A path id that cannot be a campaign id names nothing: 404.
/// Campaigns, newest first.
#[utoipa::path(get, path = "/v1/campaigns", tag = "campaigns", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListResponse<CampaignView>), (status = 403, body = ProblemDocument)))]
async fn list_campaigns(
    State(campaigns): State<Campaigns>,
    caller: Caller,
    paging: Paging,
) -> Result<Reply<ListResponse<CampaignView>>, Problem> {
    caller.require(Access::Insight)?;
    let (items, next) = campaigns
        .campaigns(paging.limit, paging.cursor.as_deref())
        .await?;
    Ok(Reply::ok(ListResponse::new(items, next)))
}

/// Create (201) or replace (200) a draft. A launched campaign cannot change (409
/// `campaign-launched`).
#[utoipa::path(put, path = "/v1/campaigns/{id}", tag = "campaigns", request_body = CampaignInput,
    security(("bearer" = [])), params(("id" = String, Path, example = "win-back-dormant")),
    responses((status = 200, body = CampaignView), (status = 201, body = CampaignView),
        (status = 403, body = ProblemDocument), (status = 409, body = ProblemDocument)))]
async fn put_campaign(
    State(campaigns): State<Campaigns>,
    caller: Caller,
    Path(id): Path<String>,
    request: RequestId,
    body: JsonBody<CampaignInput>,
) -> Result<Reply<CampaignView>, Problem> {
    caller.require(Access::Admin)?;
    let actor = caller.operator(&request)?;
    // Here the id is being chosen: say what is wrong with it.
    let id = CampaignId::parse(&id).map_err(|e| Problem::bad_field("id", e.0))?;
    let (view, created) = campaigns
        .put_campaign(&id, body.value.into(), &actor)
        .await?;
    Ok(if created {
        Reply::created(view)
    } else {
        Reply::ok(view)
    })
}

/// One campaign, with its status, audience sizes and budget.
#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "campaigns", security(("bearer" = [])),
    params(("id" = String, Path, example = "win-back-dormant")),
    responses((status = 200, body = CampaignView), (status = 403, body = ProblemDocument), (status = 404, body = ProblemDocument)))]
async fn get_campaign(
    State(campaigns): State<Campaigns>,
    caller: Caller,
    PathId(id): PathId<CampaignId>,
) -> Result<Reply<CampaignView>, Problem> {
    caller.require(Access::Insight)?;
    Ok(Reply::ok(campaigns.campaign(&id).await?))
}

/// Snapshots the audience (every member in any of its segments now), assigns each to treatment
/// or holdout by the SHA-256 rule, and starts awarding. 409 `campaign-launched` once launched,
/// 409 `too-many-campaigns` while 10 hold a place, 422 when the window is over.
#[utoipa::path(post, operation_id = "launch_campaign", path = "/v1/campaigns/{id}/launch", tag = "campaigns", security(("bearer" = [])),
    params(("id" = String, Path, example = "win-back-dormant")),
    responses((status = 200, body = CampaignView), (status = 403, body = ProblemDocument),
        (status = 404, body = ProblemDocument), (status = 409, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn launch(
    State(campaigns): State<Campaigns>,
    caller: Caller,
    PathId(id): PathId<CampaignId>,
    request: RequestId,
) -> Result<Reply<CampaignView>, Problem> {
    caller.require(Access::Admin)?;
    let actor = caller.operator(&request)?;
    Ok(Reply::ok(campaigns.launch_campaign(&id, &actor).await?))
}

/// Stops awarding now (an ended campaign answers as it is). 409 `campaign-not-running` for a
/// draft.
#[utoipa::path(post, operation_id = "end_campaign", path = "/v1/campaigns/{id}/end", tag = "campaigns", security(("bearer" = [])),
    params(("id" = String, Path, example = "win-back-dormant")),
    responses((status = 200, body = CampaignView), (status = 403, body = ProblemDocument),
        (status = 404, body = ProblemDocument), (status = 409, body = ProblemDocument)))]
async fn end(
    State(campaigns): State<Campaigns>,
    caller: Caller,
    PathId(id): PathId<CampaignId>,
    request: RequestId,
) -> Result<Reply<CampaignView>, Problem> {
    caller.require(Access::Admin)?;
    let actor = caller.operator(&request)?;
    Ok(Reply::ok(campaigns.end_campaign(&id, &actor).await?))
}

/// The measured effect: both groups' conversion and net spend in the window, the uplift with
/// its Wald and Welch 95 % intervals, incremental spend, the budget and a verdict. Correct at
/// any moment; 409 `campaign-not-running` for a draft.
#[utoipa::path(get, operation_id = "get_campaign_results", path = "/v1/campaigns/{id}/results", tag = "campaigns", security(("bearer" = [])),
    params(("id" = String, Path, example = "win-back-dormant")),
    responses((status = 200, body = CampaignResults), (status = 403, body = ProblemDocument),
        (status = 404, body = ProblemDocument), (status = 409, body = ProblemDocument)))]
async fn results(
    State(campaigns): State<Campaigns>,
    caller: Caller,
    PathId(id): PathId<CampaignId>,
) -> Result<Reply<CampaignResults>, Problem> {
    caller.require(Access::Insight)?;
    Ok(Reply::ok(campaigns.campaign_results(&id).await?))
}

/// The campaigns a member is in, newest campaign first: group (treatment or holdout), purchases
/// and spend in the window, awards and points. A page may hold fewer than `limit` items while
/// `next_cursor` still points further (it pages over campaigns). Operators only: a member never
/// learns they are in a holdout.
#[utoipa::path(get, operation_id = "list_member_campaigns", path = "/v1/members/{id}/campaigns", tag = "campaigns", security(("bearer" = [])),
    params(("id" = String, Path), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListResponse<MemberCampaign>), (status = 403, body = ProblemDocument),
        (status = 404, body = ProblemDocument)))]
async fn member_campaigns(
    State(campaigns): State<Campaigns>,
    caller: Caller,
    PathId(id): PathId<MemberId>,
    paging: Paging,
) -> Result<Reply<ListResponse<MemberCampaign>>, Problem> {
    caller.require(Access::Lookup)?;
    let (items, next) = campaigns
        .member_campaigns(&id, paging.limit, paging.cursor.as_deref())
        .await?;
    Ok(Reply::ok(ListResponse::new(items, next)))
}
