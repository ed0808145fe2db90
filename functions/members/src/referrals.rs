//! The referral routes (API.md "Referrals"): a member's code and counts, applying a code after
//! enrolment, an administrator's vanity code, and the review queue. Parse, check who may ask,
//! call the service, reply.

use axum::extract::State;
use http::StatusCode;
use loyalty::domain::MemberId;
use loyalty::domain::referral::ReferralStatus;
use loyalty::http::RequestId;
use loyalty::http::identity::Access;
use loyalty::http::problem::ProblemDocument;
use loyalty::http::{Caller, JsonBody, ListResponse, Paging, PathId, Problem, Reply};
use loyalty::service::Referrals;
use loyalty::service::{ServiceError, Services};

use loyalty::domain::referral::ReferralCode;
use loyalty::service::referrals::{ReferralSummary, ReferralView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "K7QM4ZPA"}))]
pub struct ApplyRequest {
    pub code: ReferralCode,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "ADAPALS"}))]
pub struct CodeRequest {
    pub code: ReferralCode,
}

/// The member's referral code (made on the first ask), what it did (counts by stage, points
/// earned as a referrer) and the referral they are the referee of, if any.
#[utoipa::path(get, path = "/v1/members/{id}/referral", tag = "referrals", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ReferralSummary), (status = 403, body = ProblemDocument),
        (status = 404, body = ProblemDocument)))]
pub(crate) async fn get_referral(
    State(referrals): State<Referrals>,
    caller: Caller,
    PathId(id): PathId<MemberId>,
) -> Result<Reply<ReferralSummary>, Problem> {
    caller.require(Access::MemberData(&id))?;
    Ok(Reply::ok(referrals.referral(&id).await?))
}

/// Apply a friend's code after enrolment, within the program's `apply_within_days`. Each
/// refusal is its own problem type (`referral-code-unknown`, `referral-window-closed`,
/// `already-referred`, `referral-own-code`, `referral-cap-reached`,
/// `referral-after-first-purchase`, `self-referral`, `referrals-disabled`). Applying the same
/// code again answers the referral as it stands (200). A caller past the program's
/// `unknown_codes_per_hour` gets 429 `too-many-unknown-codes` with `Retry-After`.
#[utoipa::path(post, path = "/v1/members/{id}/referral/apply", tag = "referrals",
    request_body = ApplyRequest, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 201, body = ReferralView), (status = 200, body = ReferralView),
        (status = 403, body = ProblemDocument), (status = 404, body = ProblemDocument),
        (status = 409, body = ProblemDocument), (status = 422, body = ProblemDocument),
        (status = 429, description = "too-many-unknown-codes: the caller tried too many unknown codes",
            body = ProblemDocument, headers(("Retry-After" = u32, description = "Seconds to wait")))))]
pub(crate) async fn apply_referral(
    State(referrals): State<Referrals>,
    caller: Caller,
    PathId(id): PathId<MemberId>,
    request: RequestId,
    JsonBody { value, .. }: JsonBody<ApplyRequest>,
) -> Result<Reply<ReferralView>, Problem> {
    caller.require(Access::MemberCare(&id))?;
    let actor = caller.actor(&request);
    let outcome = referrals
        .apply_referral(&id, &value.code, actor.as_ref(), &caller.principal())
        .await?;
    let status = if outcome.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(Reply::from_outcome(status, outcome))
}

/// An administrator gives the member a vanity code (409 `referral-code-taken` if another
/// member has it). The old code keeps resolving to the member; the counts carry over.
#[utoipa::path(put, operation_id = "set_referral_code", path = "/v1/members/{id}/referral/code", tag = "referrals",
    request_body = CodeRequest, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = ReferralSummary), (status = 403, body = ProblemDocument),
        (status = 404, body = ProblemDocument), (status = 409, body = ProblemDocument)))]
pub(crate) async fn set_code(
    State(referrals): State<Referrals>,
    caller: Caller,
    PathId(id): PathId<MemberId>,
    request: RequestId,
    JsonBody { value, .. }: JsonBody<CodeRequest>,
) -> Result<Reply<ReferralSummary>, Problem> {
    caller.require(Access::Admin)?;
    let actor = caller.operator(&request)?;
    Ok(Reply::ok(
        referrals.set_referral_code(&id, value.code, &actor).await?,
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HeldQuery {
    status: String,
    limit: Option<String>,
    cursor: Option<String>,
}

/// The review queue: referrals a fraud rule held (`status=held`, the only status listed),
/// newest first, each with the rule that held it.
#[utoipa::path(get, operation_id = "list_held_referrals", path = "/v1/referrals", tag = "referrals", security(("bearer" = [])),
    params(("status" = String, Query, example = "held"), ("limit" = Option<u32>, Query),
        ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListResponse<ReferralView>), (status = 400, body = ProblemDocument),
        (status = 403, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
pub(crate) async fn held_referrals(
    State(referrals): State<Referrals>,
    caller: Caller,
    parts: http::request::Parts,
) -> Result<Reply<ListResponse<ReferralView>>, Problem> {
    caller.require(Access::Lookup)?;
    let q: HeldQuery = loyalty::http::extract::query(&parts)?;
    // A status that is none (400) and one that is, but is not listed (422): API.md's rule.
    let status: ReferralStatus = serde_json::from_value(serde_json::Value::String(q.status))
        .map_err(|_| {
            Problem::bad_field(
                "status",
                "not a referral status (applied, held, rewarded, reversed, rejected, expired)",
            )
        })?;
    if status != ReferralStatus::Held {
        return Err(
            ServiceError::field("status", "only held referrals are listed (status=held)").into(),
        );
    }
    let paging = Paging::new(q.limit, q.cursor)?;
    let (items, next) = referrals
        .held_referrals(paging.limit, paging.cursor.as_deref())
        .await?;
    Ok(Reply::ok(ListResponse::new(items, next)))
}

/// Approve a held referral: it pays as a qualification would today (caps included). Audited;
/// `referral.rewarded` on both sides. 409 `referral-not-held` if it is not held.
#[utoipa::path(post, operation_id = "approve_referral", path = "/v1/referrals/{referee_id}/approve", tag = "referrals",
    security(("bearer" = [])), params(("referee_id" = String, Path)),
    responses((status = 200, body = ReferralView), (status = 403, body = ProblemDocument),
        (status = 404, body = ProblemDocument), (status = 409, body = ProblemDocument)))]
pub(crate) async fn approve(
    State(svc): State<Services>,
    caller: Caller,
    PathId(referee): PathId<MemberId>,
    request: RequestId,
) -> Result<Reply<ReferralView>, Problem> {
    review(svc, caller, referee, request, true).await
}

/// Reject a held referral: nobody is paid. Audited; `referral.rejected` on the referee.
#[utoipa::path(post, operation_id = "reject_referral", path = "/v1/referrals/{referee_id}/reject", tag = "referrals",
    security(("bearer" = [])), params(("referee_id" = String, Path)),
    responses((status = 200, body = ReferralView), (status = 403, body = ProblemDocument),
        (status = 404, body = ProblemDocument), (status = 409, body = ProblemDocument)))]
pub(crate) async fn reject(
    State(svc): State<Services>,
    caller: Caller,
    PathId(referee): PathId<MemberId>,
    request: RequestId,
) -> Result<Reply<ReferralView>, Problem> {
    review(svc, caller, referee, request, false).await
}

async fn review(
    svc: Services,
    caller: Caller,
    referee: MemberId,
    request: RequestId,
    approve: bool,
) -> Result<Reply<ReferralView>, Problem> {
    caller.require(Access::Admin)?;
    let actor = caller.operator(&request)?;
    Ok(Reply::ok(
        svc.referrals
            .review_referral(&referee, approve, &actor)
            .await?,
    ))
}
