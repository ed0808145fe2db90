//! The `tiers` function: tier progress for apps, and (a second binary) the daily requalification
//! run by EventBridge Scheduler.

use axum::extract::State;
use loyalty::http::identity::Access;
use loyalty::http::problem::ProblemDocument;
use loyalty::http::{Caller, PathId, Problem, Reply};
use loyalty::service::Services;
use loyalty::service::Tiers;
use loyalty::service::tiers::{RequalificationRun, TierView};

loyalty::handlers! {
    tier;
}

/// Tier, expiry, qualifying spend, what the next tier needs, and the program's tier table.
#[utoipa::path(get, operation_id = "get_tier", path = "/v1/members/{id}/tier", tag = "tiers", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = TierView), (status = 403, body = ProblemDocument), (status = 404, body = ProblemDocument)))]
async fn tier(
    State(tiers): State<Tiers>,
    caller: Caller,
    PathId(id): PathId<loyalty::domain::MemberId>,
) -> Result<Reply<TierView>, Problem> {
    caller.require(Access::MemberAtTill(&id))?;
    Ok(Reply::ok(tiers.tier_view(&id).await?))
}

pub use loyalty::runtime::ScheduledInput;

/// One scheduled requalification run.
pub async fn run_requalification(
    svc: &Services,
    input: ScheduledInput,
) -> Result<RequalificationRun, loyalty::service::ServiceError> {
    let now = input.now(svc.ctx.clock.as_ref())?;
    svc.tiers.requalify_tiers(now).await
}
