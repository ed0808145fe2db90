//! Routes that exist only in `loyalty-local`: the scheduled jobs, run on demand by an
//! administrator, and the test clock every "now" in the API reads.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{post, put};
use chrono::{DateTime, Utc};
use loyalty::clock::{Clock, TestClock};
use loyalty::http::identity::Access;
use loyalty::http::{Caller, JsonBody, Problem};
use loyalty::runtime::ScheduledInput;
use loyalty::service::{ServiceError, Services};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

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

pub fn routes(clock: Arc<TestClock>) -> Router<Services> {
    let c1 = clock.clone();
    let c2 = clock.clone();
    Router::new()
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
                    caller.require(Access::Admin)?;
                    c1.set(ServiceError::bounded_instant("now", body.value.now)?);
                    Ok::<_, Problem>(Json(view(&c1)))
                },
            )
            .delete(move |caller: Caller| async move {
                caller.require(Access::Admin)?;
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

// Each job route runs exactly what the job's Lambda runs, with the same input.

async fn birthday_gifts(
    State(svc): State<Services>,
    caller: Caller,
    body: JsonBody<ScheduledInput>,
) -> Result<Json<loyalty::service::birthday::GiftRun>, Problem> {
    caller.require(Access::Admin)?;
    Ok(Json(loyalty_birthday::run(&svc, body.value).await?))
}

async fn tier_requalification(
    State(svc): State<Services>,
    caller: Caller,
    body: JsonBody<ScheduledInput>,
) -> Result<Json<loyalty::service::tiers::RequalificationRun>, Problem> {
    caller.require(Access::Admin)?;
    Ok(Json(
        loyalty_tiers::run_requalification(&svc, body.value).await?,
    ))
}

async fn points(
    State(svc): State<Services>,
    caller: Caller,
    body: JsonBody<ScheduledInput>,
) -> Result<Json<loyalty::service::points::PointsRun>, Problem> {
    caller.require(Access::Admin)?;
    Ok(Json(
        loyalty_members::run_points_job(&svc, body.value).await?,
    ))
}

/// `{}`, `{"now"}`, `{"parts"}` for a whole run, or a step as the state machine sends it.
async fn segments(
    State(svc): State<Services>,
    caller: Caller,
    body: JsonBody<loyalty_segments::JobInput>,
) -> Result<Json<loyalty_segments::JobOutput>, Problem> {
    caller.require(Access::Admin)?;
    Ok(Json(loyalty_segments::run_job(&svc, body.value).await?))
}
