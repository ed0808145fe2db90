//! The `segments` function: segment sizes, listings and history, the program overview and
//! retention cohorts (admin only), and (a second binary) the nightly segments run, which the
//! state machine calls once per part and once to finish.

use axum::extract::Path;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use loyalty::domain::custom_segment::{SegmentRef, Slug};
use loyalty::domain::daily::DailyFigures;
use loyalty::domain::segment::SegmentId;
use loyalty::http::RequestId;
use loyalty::http::extract::JsonBody;
use loyalty::http::identity::Access;
use loyalty::http::problem::ProblemDocument;
use loyalty::http::{Caller, Paging, PathId, Problem, Reply};
use loyalty::service::custom_segments::{CustomSegmentView, DefinitionRequest};
use loyalty::service::predictions::PredictionsView;
use loyalty::service::segments::{
    BuildRun, History, Overview, PartRun, Retention, RunId, SegmentMembers, SegmentRun, SegmentView,
};
use loyalty::service::{CustomSegments, Referrals, Segmentation};
use loyalty::service::{ServiceError, Services};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

loyalty::handlers! {
    segments;
    define_segment, get_segment, delete_segment;
    segment_members;
    segment_history;
    overview;
    retention;
    predictions;
    daily;
    referral_analytics;
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SegmentList {
    pub items: Vec<SegmentView>,
}

/// Every segment (lifecycle stages, value segments, tiers, churn risks), empty ones included,
/// with its size now: the number of members its listing returns; then the custom segments, each
/// with the size of its listing as of its last evaluation (`as_of`).
#[utoipa::path(get, operation_id = "list_segments", path = "/v1/segments", tag = "segments", security(("bearer" = [])),
    responses((status = 200, body = SegmentList), (status = 403, body = ProblemDocument)))]
async fn segments(
    State(segments): State<Segmentation>,
    State(custom): State<CustomSegments>,
    caller: Caller,
) -> Result<Reply<SegmentList>, Problem> {
    caller.require(Access::Insight)?;
    let (mut items, defined) = tokio::try_join!(segments.segments(), custom.list())?;
    items.extend(defined.into_iter().map(|d| SegmentView {
        id: d.id,
        kind: "custom".into(),
        size: d.size.unwrap_or(0),
        as_of: d.evaluated_at.unwrap_or(d.updated_at),
        name: Some(d.name),
        status: Some(d.status),
    }));
    Ok(Reply::ok(SegmentList { items }))
}

/// Defines (201) or changes (200) a custom segment: its name, description and rule. A new or
/// changed rule is evaluated over every member in the background (`status: building` until
/// done); an unchanged rule keeps its listing. A rule that does not parse is 422 naming the
/// path of the first mistake (`rule.all[2].any[0].value`); nothing is written. At most 100
/// definitions (409 `too-many-segments`).
#[utoipa::path(put, operation_id = "define_segment", path = "/v1/segments/{id}", tag = "segments", request_body = DefinitionRequest,
    security(("bearer" = [])), params(("id" = String, Path, example = "custom:gold-tea")),
    responses((status = 200, body = CustomSegmentView), (status = 201, body = CustomSegmentView),
        (status = 400, body = ProblemDocument), (status = 403, body = ProblemDocument),
        (status = 409, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn define_segment(
    State(custom): State<CustomSegments>,
    caller: Caller,
    Path(id): Path<String>,
    request: RequestId,
    body: JsonBody<DefinitionRequest>,
) -> Result<Reply<CustomSegmentView>, Problem> {
    caller.require(Access::Admin)?;
    let actor = caller.operator(&request)?;
    // Here the id is being chosen: say what is wrong with it.
    let slug = match id.strip_prefix("custom:") {
        Some(s) => Slug::parse(s).map_err(|e| Problem::bad_field("id", e.0))?,
        None => {
            return Err(Problem::bad_field(
                "id",
                "only custom segments (custom:<slug>) are defined; the built-in ones are the program's",
            ));
        }
    };
    let (view, created) = custom.define(&slug, body.value, &actor).await?;
    Ok(if created {
        Reply::created(view)
    } else {
        Reply::ok(view)
    })
}

/// A custom segment: its rule, `status` (`building` while a new rule is evaluated, with
/// `progress`), and the size of its listing as of `evaluated_at`.
#[utoipa::path(get, operation_id = "get_segment", path = "/v1/segments/{id}", tag = "segments", security(("bearer" = [])),
    params(("id" = String, Path, example = "custom:gold-tea")),
    responses((status = 200, body = CustomSegmentView), (status = 403, body = ProblemDocument), (status = 404, body = ProblemDocument)))]
async fn get_segment(
    State(custom): State<CustomSegments>,
    caller: Caller,
    PathId(slug): PathId<Slug>,
) -> Result<Reply<CustomSegmentView>, Problem> {
    caller.require(Access::Insight)?;
    Ok(Reply::ok(custom.definition(&slug).await?))
}

/// Deletes a custom segment (audited). A campaign launched on it keeps the audience it launched
/// with; its listing is removed by the next evaluation.
#[utoipa::path(delete, operation_id = "delete_segment", path = "/v1/segments/{id}", tag = "segments", security(("bearer" = [])),
    params(("id" = String, Path, example = "custom:gold-tea")),
    responses((status = 204), (status = 403, body = ProblemDocument), (status = 404, body = ProblemDocument)))]
async fn delete_segment(
    State(custom): State<CustomSegments>,
    caller: Caller,
    PathId(slug): PathId<Slug>,
    request: RequestId,
) -> Result<http::StatusCode, Problem> {
    caller.require(Access::Admin)?;
    let actor = caller.operator(&request)?;
    custom.delete(&slug, &actor).await?;
    Ok(http::StatusCode::NO_CONTENT)
}

/// The members of a segment, by id. A custom segment's listing is as of its last evaluation
/// (`evaluated_at`; empty before the first).
#[utoipa::path(get, operation_id = "list_segment_members", path = "/v1/segments/{id}/members", tag = "segments", security(("bearer" = [])),
    params(("id" = String, Path, example = "lifecycle:dormant"), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = SegmentMembers), (status = 403, body = ProblemDocument), (status = 404, body = ProblemDocument)))]
async fn segment_members(
    State(segments): State<Segmentation>,
    caller: Caller,
    PathId(id): PathId<SegmentRef>,
    paging: Paging,
) -> Result<Reply<SegmentMembers>, Problem> {
    caller.require(Access::Insight)?;
    let (limit, cursor) = (paging.limit, paging.cursor.as_deref());
    Ok(Reply::ok(match id {
        SegmentRef::Builtin(id) => segments.segment_members(id, limit, cursor).await?,
        SegmentRef::Custom(slug) => segments.custom_members(&slug, limit, cursor).await?,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    from: String,
    to: String,
}

fn date(field: &str, v: &str) -> Result<NaiveDate, Problem> {
    let d = v
        .parse()
        .map_err(|_| Problem::bad_field(field, "must be a date, YYYY-MM-DD"))?;
    Ok(ServiceError::bounded_date(field, d)?)
}

/// One row per day a segments run finished in `from..=to` (at most 366 days): the size after
/// the day's last run and the members who entered and left that day. Each row's size is the
/// previous row's plus entered minus left.
#[utoipa::path(get, operation_id = "get_segment_history", path = "/v1/segments/{id}/history", tag = "segments", security(("bearer" = [])),
    params(("id" = String, Path, example = "lifecycle:dormant"), ("from" = String, Query, format = Date, example = "2027-03-01"), ("to" = String, Query, format = Date, example = "2027-03-31")),
    responses((status = 200, body = History), (status = 403, body = ProblemDocument), (status = 404, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn segment_history(
    State(segments): State<Segmentation>,
    caller: Caller,
    PathId(id): PathId<SegmentId>,
    parts: http::request::Parts,
) -> Result<Reply<History>, Problem> {
    caller.require(Access::Insight)?;
    let q: HistoryQuery = loyalty::http::extract::query(&parts)?;
    let (from, to) = (date("from", &q.from)?, date("to", &q.to)?);
    Ok(Reply::ok(segments.segment_history(id, from, to).await?))
}

/// Program health as of the latest segments run; 404 until the first run.
#[utoipa::path(get, operation_id = "get_overview", path = "/v1/analytics/overview", tag = "analytics", security(("bearer" = [])),
    responses((status = 200, body = Overview), (status = 403, body = ProblemDocument), (status = 404, body = ProblemDocument)))]
async fn overview(
    State(segments): State<Segmentation>,
    caller: Caller,
) -> Result<Reply<Overview>, Problem> {
    caller.require(Access::Insight)?;
    Ok(Reply::ok(segments.overview().await?))
}

/// The prediction models fitted by the last segments run that could fit them, the churn
/// segments' sizes now and the value at risk; 404 before the first fit.
#[utoipa::path(get, operation_id = "get_predictions", path = "/v1/analytics/predictions", tag = "analytics", security(("bearer" = [])),
    responses((status = 200, body = PredictionsView), (status = 403, body = ProblemDocument), (status = 404, body = ProblemDocument)))]
async fn predictions(
    State(segments): State<Segmentation>,
    caller: Caller,
) -> Result<Reply<PredictionsView>, Problem> {
    caller.require(Access::Insight)?;
    Ok(Reply::ok(segments.predictions().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionQuery {
    months: Option<String>,
}

/// Monthly enrolment cohorts as of the latest segments run: `retained[k]` is the number of the
/// cohort's members with a purchase in the k-th month after the month they enrolled in.
#[utoipa::path(get, operation_id = "get_retention", path = "/v1/analytics/retention", tag = "analytics", security(("bearer" = [])),
    params(("months" = Option<u32>, Query, description = "1 to 12, default 12")),
    responses((status = 200, body = Retention), (status = 403, body = ProblemDocument), (status = 404, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn retention(
    State(segments): State<Segmentation>,
    caller: Caller,
    parts: http::request::Parts,
) -> Result<Reply<Retention>, Problem> {
    caller.require(Access::Insight)?;
    let q: RetentionQuery = loyalty::http::extract::query(&parts)?;
    // Not a whole number: 400; a whole number out of range: the rule's 422.
    let months = match q.months {
        None => 12,
        Some(m) => m
            .parse::<i64>()
            .map(|n| u32::try_from(n).unwrap_or(0))
            .map_err(|_| Problem::bad_field("months", "must be a whole number"))?,
    };
    Ok(Reply::ok(segments.retention(months).await?))
}

/// The job's input: `{}` (a whole run now, in one invocation), `{"now"}`, or a step of the
/// state machine: `{"run", "part", "parts", "now"}` for a part, `{"run", "parts", "now",
/// "finish": true}` to finish.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobInput {
    pub now: Option<DateTime<Utc>>,
    pub run: Option<String>,
    pub part: Option<u32>,
    pub parts: Option<u32>,
    #[serde(default)]
    pub finish: bool,
    /// A build run of custom segments' new rules (the five-minute schedule): its parts and its
    /// last step do nothing when no definition is building.
    #[serde(default)]
    pub build: bool,
}

/// What one invocation did.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum JobOutput {
    Part(PartRun),
    Run(SegmentRun),
    Build(BuildRun),
    BuildPart(loyalty::service::custom_segments::EvaluationTally),
    Listed { listed: u32 },
}

pub async fn run_job(svc: &Services, input: JobInput) -> Result<JobOutput, ServiceError> {
    let now = match input.now {
        Some(t) => ServiceError::bounded_instant("now", t)?,
        None => svc.ctx.now(),
    };
    let run_id = |run: &str| RunId::parse(run).map_err(|e| ServiceError::invalid("run", e));
    let parts = input.parts.unwrap_or(1);
    if input.build {
        return build_job(
            svc,
            input.run.as_deref().map(run_id).transpose()?,
            input.part,
            input.finish,
            (parts, now),
        )
        .await;
    }
    match (input.run, input.part, input.finish) {
        (None, None, false) => Ok(JobOutput::Run(svc.segments.segments_job(now, parts).await?)),
        (Some(run), Some(part), false) => Ok(JobOutput::Part(
            svc.segments
                .segments_part(&run_id(&run)?, part, parts, now)
                .await?,
        )),
        (Some(run), None, true) => Ok(JobOutput::Run(
            svc.segments
                .segments_finish(&run_id(&run)?, parts, now)
                .await?,
        )),
        _ => Err(ServiceError::field(
            "run",
            "give nothing (a whole run), run + part (a part) or run + finish (the last step)",
        )),
    }
}

async fn build_job(
    svc: &Services,
    run: Option<RunId>,
    part: Option<u32>,
    finish: bool,
    (parts, now): (u32, DateTime<Utc>),
) -> Result<JobOutput, ServiceError> {
    let s = &svc.segments;
    match (run, part, finish) {
        (None, None, false) => Ok(JobOutput::Build(s.build_job(now, parts).await?)),
        (Some(run), Some(part), false) => Ok(JobOutput::BuildPart(
            s.build_part(&run, part, parts, now).await?,
        )),
        (Some(run), None, true) => Ok(JobOutput::Listed {
            listed: s.build_finish(&run, parts, now).await?,
        }),
        _ => Err(ServiceError::field(
            "run",
            "give nothing (a whole run), run + part (a part) or run + finish (the last step)",
        )),
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({"items": [{"date": "2026-11-22", "enrolments": 12, "active_members": 340,
    "purchases": 410, "sales": 2051000, "refunds": 6, "points_earned": 21900, "points_reversed": 310,
    "points_redeemed": 5200, "points_expired": 800, "points_gifted": 300, "points_adjusted": -50,
    "redemptions": 61, "vouchers_used": 48, "erasures": 1}]}))]
struct DailySeries {
    items: Vec<DailyFigures>,
}

/// The dashboard's daily series: per program day in `from..=to` (at most 366 days), the figures
/// the nightly run folded from that day's events (enrolments, active members, purchases and
/// sales, refunds, points earned, reversed, redeemed, expired, gifted and adjusted, redemptions,
/// vouchers used, erasures), oldest first. A day the nightly run has not folded yet has no row.
#[utoipa::path(get, operation_id = "get_daily_series", path = "/v1/analytics/daily", tag = "analytics", security(("bearer" = [])),
    params(("from" = String, Query, format = Date, example = "2026-11-01"), ("to" = String, Query, format = Date, example = "2026-11-30")),
    responses((status = 200, body = DailySeries), (status = 400, body = ProblemDocument), (status = 403, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn daily(
    State(segments): State<Segmentation>,
    caller: Caller,
    parts: http::request::Parts,
) -> Result<Reply<DailySeries>, Problem> {
    caller.require(Access::Insight)?;
    let q: HistoryQuery = loyalty::http::extract::query(&parts)?;
    let (from, to) = (date("from", &q.from)?, date("to", &q.to)?);
    Ok(Reply::ok(DailySeries {
        items: segments.daily_series(from, to).await?,
    }))
}

/// The referral funnel of the codes applied from `from` to `to` (UTC days, inclusive, at most
/// 366): applied → qualified → held → rewarded → reversed with counts and points, the top 10
/// referrers, the K-factor (standing rewarded referees per active referrer), and the repeat
/// purchase rate of referred members against organic members enrolled in the same months (two
/// purchases in the enrolment month and the two after), with a 95 % interval for the difference.
#[utoipa::path(get, operation_id = "get_referral_analytics", path = "/v1/analytics/referrals", tag = "analytics", security(("bearer" = [])),
    params(("from" = String, Query, format = Date, example = "2027-01-01"), ("to" = String, Query, format = Date, example = "2027-03-31")),
    responses((status = 200, body = loyalty::service::referrals::ReferralAnalytics),
        (status = 400, body = ProblemDocument), (status = 403, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn referral_analytics(
    State(referrals): State<Referrals>,
    caller: Caller,
    parts: http::request::Parts,
) -> Result<Reply<loyalty::service::referrals::ReferralAnalytics>, Problem> {
    caller.require(Access::Insight)?;
    let q: HistoryQuery = loyalty::http::extract::query(&parts)?;
    let (from, to) = (date("from", &q.from)?, date("to", &q.to)?);
    Ok(Reply::ok(referrals.referral_analytics(from, to).await?))
}
