//! Routes that exist only in `loyalty-local`: the scheduled jobs, run on demand by an
//! administrator, and the test clock every "now" in the API reads.

use axum::Json;
use axum::extract::State;
use axum::routing::{post, put};
use chrono::{DateTime, Utc};
use loyalty::clock::{Clock, TestClock};
use loyalty::http::{Caller, JsonBody, Problem};
use loyalty::service::Services;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobInput {
    pub now: Option<DateTime<Utc>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ClockInput {
    now: DateTime<Utc>,
}

#[derive(Serialize)]
struct ClockView {
    now: DateTime<Utc>,
    /// Whether the clock was set (true) or follows real time (false).
    set: bool,
}

pub fn routes(clock: Arc<TestClock>) -> OpenApiRouter<Services> {
    let c1 = clock.clone();
    let c2 = clock.clone();
    OpenApiRouter::new()
        .route("/_local/jobs/birthday-gifts", post(birthday_gifts))
        .route(
            "/_local/jobs/tier-requalification",
            post(tier_requalification),
        )
        .route("/_local/jobs/segments", post(segments))
        .route("/_local/jobs/points", post(points))
        .route(
            "/_local/clock",
            put(
                move |caller: Caller, body: JsonBody<ClockInput>| async move {
                    caller.require_admin()?;
                    c1.set(body.value.now);
                    Ok::<_, Problem>(Json(view(&c1)))
                },
            )
            .delete(move |caller: Caller| async move {
                caller.require_admin()?;
                c2.reset();
                Ok::<_, Problem>(Json(view(&c2)))
            })
            .get(move || async move { Json(view(&clock)) }),
        )
}

fn view(c: &TestClock) -> ClockView {
    ClockView {
        now: c.now(),
        set: c.is_set(),
    }
}

async fn birthday_gifts(
    State(svc): State<Services>,
    caller: Caller,
    body: JsonBody<JobInput>,
) -> Result<Json<loyalty::service::birthday::GiftRun>, Problem> {
    caller.require_admin()?;
    let now = body.value.now.unwrap_or_else(|| svc.now());
    Ok(Json(svc.birthday_gifts(now).await?))
}

async fn tier_requalification(
    State(svc): State<Services>,
    caller: Caller,
    body: JsonBody<JobInput>,
) -> Result<Json<loyalty::service::tiers::RequalificationRun>, Problem> {
    caller.require_admin()?;
    let now = body.value.now.unwrap_or_else(|| svc.now());
    Ok(Json(svc.requalify_tiers(now).await?))
}

async fn points(
    State(svc): State<Services>,
    caller: Caller,
    body: JsonBody<JobInput>,
) -> Result<Json<loyalty::service::points::PointsRun>, Problem> {
    caller.require_admin()?;
    let now = body.value.now.unwrap_or_else(|| svc.now());
    Ok(Json(svc.points_job(now).await?))
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentsInput {
    pub now: Option<DateTime<Utc>>,
    /// Parts to run it in (1–16, default 1): any number gives the same result.
    pub parts: Option<u32>,
}

async fn segments(
    State(svc): State<Services>,
    caller: Caller,
    body: JsonBody<SegmentsInput>,
) -> Result<Json<loyalty::service::segments::SegmentRun>, Problem> {
    caller.require_admin()?;
    let now = body.value.now.unwrap_or_else(|| svc.now());
    Ok(Json(
        svc.segments_job(now, body.value.parts.unwrap_or(1)).await?,
    ))
}
