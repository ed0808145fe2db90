//! The `members` function: enrolment, profile, ledger, admin adjustments, erasure and the event
//! feeds. Handlers only parse, check who may ask, call the service and shape the reply.

use axum::extract::State;
use http::StatusCode;
use loyalty::domain::MemberId;
use loyalty::domain::ledger::LedgerEntry;
use loyalty::domain::{Birthday, Email, Name, Phone, PhoneInput, Points, TimeZoneName};
use loyalty::http::RequestId;
use loyalty::http::identity::Access;
use loyalty::http::problem::ProblemDocument;
use loyalty::http::{
    Caller, IdempotencyKey, JsonBody, ListResponse, Paging, PathId, Problem, Reply,
};
use loyalty::service::audit::{AuditPage, AuditQuery};
use loyalty::service::campaigns::MemberOffers;
use loyalty::service::custom_segments::{MemberTags, TagsRequest};
use loyalty::service::erasure::Erasure;
use loyalty::service::events::{EventPage, Reader};
use loyalty::service::members::{Adjustment, Enrolment, MemberView, ProfileEdit};
use loyalty::service::points::{PointsRun, PointsSchedule};
use loyalty::service::{
    Audit, Balances, Campaigns, Ctx, CustomSegments, Erasures, Events, Members,
};
use loyalty::service::{ServiceError, Services};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

mod referrals;

loyalty::handlers! {
    enrol, find_members;
    get_member, update_member, erase_member;
    ledger;
    points;
    offers;
    get_tags, set_tags;
    adjust;
    member_events;
    all_events;
    audit;
    referrals::get_referral;
    referrals::apply_referral;
    referrals::set_code;
    referrals::held_referrals;
    referrals::approve;
    referrals::reject;
}

/// `null` and "absent" differ in a PATCH: absent keeps, `null` clears.
fn patch_field<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A field that may be left out of a PATCH but never cleared: `null` is refused (400).
fn present_not_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d)?
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("may not be null: leave it out to keep it"))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Ada Lovelace", "phone": "+8613800000000", "email": "ada@example.com", "birthday": "1990-11-22", "timezone": "Asia/Shanghai"}))]
pub struct EnrolRequest {
    /// Only administrators and POS may choose the id; members enrol as their token's `sub`.
    pub id: Option<MemberId>,
    pub name: Name,
    /// International (`+…`), or national in the program's `default_country`.
    #[schema(value_type = Option<Phone>)]
    pub phone: Option<PhoneInput>,
    pub email: Option<Email>,
    pub birthday: Option<Birthday>,
    pub timezone: Option<TimeZoneName>,
    /// A friend's referral code (API.md "Referrals"): refused with its reason, and then nothing
    /// is enrolled.
    pub referral_code: Option<loyalty::domain::referral::ReferralCode>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "timezone": "Europe/London"}))]
pub struct ProfileChange {
    /// Required on every member: it may be changed, never cleared (`null` is 400).
    #[serde(default, deserialize_with = "present_not_null")]
    #[schema(value_type = Name)]
    pub name: Option<Name>,
    #[serde(default, deserialize_with = "patch_field")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<Email>>,
    #[serde(default, deserialize_with = "patch_field")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<PhoneInput>>,
    #[serde(default, deserialize_with = "patch_field")]
    #[schema(value_type = Option<String>)]
    pub timezone: Option<Option<TimeZoneName>>,
    #[serde(default, deserialize_with = "patch_field")]
    #[schema(value_type = Option<String>)]
    pub birthday: Option<Option<Birthday>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"points": 50, "reason": "service recovery"}))]
pub struct AdjustmentRequest {
    /// Signed, non-zero.
    pub points: Points,
    pub reason: String,
}

impl From<EnrolRequest> for Enrolment {
    fn from(r: EnrolRequest) -> Self {
        Enrolment {
            id: r.id,
            name: r.name,
            phone: r.phone,
            email: r.email,
            birthday: r.birthday,
            timezone: r.timezone,
            referral_code: r.referral_code,
        }
    }
}

impl From<ProfileChange> for ProfileEdit {
    fn from(c: ProfileChange) -> Self {
        ProfileEdit {
            name: c.name,
            email: c.email,
            phone: c.phone,
            timezone: c.timezone,
            birthday: c.birthday,
        }
    }
}

impl From<AdjustmentRequest> for Adjustment {
    fn from(r: AdjustmentRequest) -> Self {
        Adjustment {
            points: r.points,
            reason: r.reason,
        }
    }
}

/// The whole API's OpenAPI document, assembled here and only here: the members function serves
/// it in AWS and `loyalty-local` serves the same value.
pub fn api_document() -> serde_json::Value {
    loyalty::http::openapi::document([
        routes().into_openapi(),
        loyalty_accrual::routes().into_openapi(),
        loyalty_tiers::routes().into_openapi(),
        loyalty_segments::routes().into_openapi(),
        loyalty_campaigns::routes().into_openapi(),
        loyalty_redemption::routes().into_openapi(),
    ])
}

/// Enrol a member. Members enrol themselves under their token's subject; an administrator may
/// choose any `id`, a POS only a UUID (so no till can take a future member's `sub`); otherwise a
/// UUID is generated. Send an `Idempotency-Key` so a retried enrolment creates one member.
#[utoipa::path(post, operation_id = "enrol_member", path = "/v1/members", tag = "members", request_body = EnrolRequest,
    security(("bearer" = [])), params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = MemberView),
              (status = 409, description = "member-exists or phone-taken", body = ProblemDocument),
              (status = 400, body = ProblemDocument),
              (status = 429, description = "too-many-unknown-codes: the caller tried too many unknown referral codes",
                  body = ProblemDocument, headers(("Retry-After" = u32, description = "Seconds to wait")))))]
async fn enrol(
    State(members): State<Members>,
    caller: Caller,
    key: IdempotencyKey,
    request: RequestId,
    body: JsonBody<EnrolRequest>,
) -> Result<Reply<MemberView>, Problem> {
    caller.require(Access::Enrol)?;
    let idem = key.for_request(&caller.principal(), "enrol", &body.digest());
    let req = body.value;
    let id = match (&caller, &req.id) {
        (Caller::Member { id }, None) => id.clone(),
        (Caller::Member { id }, Some(asked)) if asked == id => id.clone(),
        (Caller::Member { .. }, Some(_)) => {
            return Err(Problem::forbidden("members enrol under their own id"));
        }
        (Caller::Pos { .. }, Some(id)) if !id.is_uuid() => {
            return Err(ServiceError::field(
                "id",
                "a POS may only choose a UUID as member id (or omit it to get one)",
            )
            .into());
        }
        (_, Some(id)) => id.clone(),
        // A retry with the same key replays the first answer before this id is ever used.
        (_, None) => MemberId::new_random(),
    };
    let actor = caller.actor(&request);
    let outcome = members
        .enrol(id, req.into(), idem, actor.as_ref(), &caller.principal())
        .await?;
    Ok(Reply::from_outcome(StatusCode::CREATED, outcome))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FindParams {
    phone: String,
}

/// Find a member by phone (E.164; spaces, dashes, dots and brackets are ignored): a list of the
/// one member holding it, or an empty list. Operators only.
#[utoipa::path(get, path = "/v1/members", tag = "members", security(("bearer" = [])),
    params(("phone" = String, Query, example = "+14155550100")),
    responses((status = 200, body = ListResponse<MemberView>), (status = 400, body = ProblemDocument),
        (status = 403, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn find_members(
    State(members): State<Members>,
    State(ctx): State<Ctx>,
    caller: Caller,
    parts: http::request::Parts,
) -> Result<Reply<ListResponse<MemberView>>, Problem> {
    caller.require(Access::Lookup)?;
    let q: FindParams = loyalty::http::extract::query(&parts)?;
    let phone = loyalty::domain::PhoneInput::parse(&q.phone)
        .map_err(|e| Problem::bad_field("phone", e.0))?;
    let found = members.find_by_phone(&ctx.phone("phone", &phone)?).await?;
    Ok(Reply::ok(ListResponse::new(
        found.into_iter().collect(),
        None,
    )))
}

/// The member object: profile, points, tier progress and segments; for operators also the
/// predicted scores (`predictions`), which the member and a till never see.
#[utoipa::path(get, path = "/v1/members/{id}", tag = "members", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = MemberView), (status = 403, body = ProblemDocument), (status = 404, body = ProblemDocument)))]
async fn get_member(
    State(members): State<Members>,
    caller: Caller,
    PathId(id): PathId<MemberId>,
) -> Result<Reply<MemberView>, Problem> {
    caller.require(Access::MemberAtTill(&id))?;
    let view = match caller.role() {
        Some(_) => members.get_member_for_operator(&id).await?,
        None => members.get_member(&id).await?,
    };
    Ok(Reply::ok(view))
}

/// Change the profile. `null` clears a field. The birthday can be set once; after that only an
/// administrator can change it (409 `birthday-locked`).
#[utoipa::path(patch, path = "/v1/members/{id}", tag = "members", request_body = ProfileChange,
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = MemberView), (status = 409, body = ProblemDocument)))]
async fn update_member(
    State(members): State<Members>,
    caller: Caller,
    PathId(id): PathId<MemberId>,
    request: RequestId,
    JsonBody { value: change, .. }: JsonBody<ProfileChange>,
) -> Result<Reply<MemberView>, Problem> {
    caller.require(Access::MemberCare(&id))?;
    Ok(Reply::ok(
        members
            .update_profile(&id, change.into(), caller.actor(&request).as_ref())
            .await?,
    ))
}

/// Point and tier history, newest first.
#[utoipa::path(get, operation_id = "list_ledger", path = "/v1/members/{id}/ledger", tag = "members", security(("bearer" = [])),
    params(("id" = String, Path), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListResponse<LedgerEntry>)))]
async fn ledger(
    State(members): State<Members>,
    caller: Caller,
    PathId(id): PathId<MemberId>,
    paging: Paging,
) -> Result<Reply<ListResponse<LedgerEntry>>, Problem> {
    caller.require(Access::MemberData(&id))?;
    let (items, next) = members
        .ledger(&id, paging.limit, paging.cursor.as_deref())
        .await?;
    Ok(Reply::ok(ListResponse::new(items, next)))
}

/// The member's points schedule: spendable and pending points, the lots they sit in and when
/// each expires.
#[utoipa::path(get, operation_id = "get_points", path = "/v1/members/{id}/points", tag = "members", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = PointsSchedule)))]
async fn points(
    State(balances): State<Balances>,
    caller: Caller,
    PathId(id): PathId<MemberId>,
) -> Result<Reply<PointsSchedule>, Problem> {
    caller.require(Access::MemberAtTill(&id))?;
    Ok(Reply::ok(balances.points_schedule(&id).await?))
}

/// The member's offers: the running campaigns in which they are in the treatment group (a
/// holdout member sees none of those that hold them out).
#[utoipa::path(get, operation_id = "get_member_offers", path = "/v1/members/{id}/offers", tag = "members", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = MemberOffers), (status = 403, body = ProblemDocument), (status = 404, body = ProblemDocument)))]
async fn offers(
    State(campaigns): State<Campaigns>,
    caller: Caller,
    PathId(id): PathId<MemberId>,
) -> Result<Reply<MemberOffers>, Problem> {
    caller.require(Access::MemberData(&id))?;
    Ok(Reply::ok(campaigns.member_offers(&id).await?))
}

/// The member's tags: operators' labels (`vip`, `staff`), which custom segments' rules can ask
/// for. Operators only.
#[utoipa::path(get, operation_id = "get_member_tags", path = "/v1/members/{id}/tags", tag = "members", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = MemberTags), (status = 403, body = ProblemDocument), (status = 404, body = ProblemDocument), (status = 410, body = ProblemDocument)))]
async fn get_tags(
    State(custom): State<CustomSegments>,
    caller: Caller,
    PathId(id): PathId<MemberId>,
) -> Result<Reply<MemberTags>, Problem> {
    caller.require(Access::Lookup)?;
    Ok(Reply::ok(custom.tags(&id).await?))
}

/// Replaces the member's tags (admin, support; audited): at most 20, each 1–40 letters (any
/// script), digits, `-`, `_`, `.` or `:`, compared in lower case. Setting the same tags again
/// changes nothing but the audit trail. An erasure removes them.
#[utoipa::path(put, operation_id = "set_member_tags", path = "/v1/members/{id}/tags", tag = "members", request_body = TagsRequest,
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = MemberTags), (status = 403, body = ProblemDocument), (status = 404, body = ProblemDocument),
        (status = 410, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn set_tags(
    State(custom): State<CustomSegments>,
    caller: Caller,
    PathId(id): PathId<MemberId>,
    request: RequestId,
    body: JsonBody<TagsRequest>,
) -> Result<Reply<MemberTags>, Problem> {
    caller.require(Access::Tagging)?;
    let actor = caller.operator(&request)?;
    Ok(Reply::ok(custom.set_tags(&id, body.value, &actor).await?))
}

/// An operator's point adjustment (signed): admin, or support within the program's
/// `support_adjustment_limit` (403 `adjustment-over-limit` above it). Send an `Idempotency-Key` so a retry cannot apply it twice.
#[utoipa::path(post, operation_id = "adjust_points", path = "/v1/members/{id}/adjustments", tag = "members", request_body = AdjustmentRequest,
    security(("bearer" = [])),
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = LedgerEntry), (status = 403, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn adjust(
    State(members): State<Members>,
    caller: Caller,
    PathId(id): PathId<MemberId>,
    key: IdempotencyKey,
    request: RequestId,
    body: JsonBody<AdjustmentRequest>,
) -> Result<Reply<LedgerEntry>, Problem> {
    caller.require(Access::Adjust)?;
    let actor = caller.operator(&request)?;
    let idem = key.for_member_request(
        &caller.principal(),
        &format!("adjust:{id}"),
        &id,
        &body.digest(),
    );
    let outcome = members.adjust(&id, body.value.into(), idem, &actor).await?;
    Ok(Reply::from_outcome(StatusCode::CREATED, outcome))
}

/// Erase the member's personal data (GDPR, PIPL). The balance is forfeited; the ledger keeps
/// amounts, kinds, dates and references without free text; every route on the member then
/// answers 410 `member-erased`; the phone may enrol again. Erasing again answers the same.
#[utoipa::path(delete, path = "/v1/members/{id}", tag = "members", security(("bearer" = [])),
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Erasure), (status = 403, body = ProblemDocument), (status = 404, body = ProblemDocument)))]
async fn erase_member(
    State(erasures): State<Erasures>,
    caller: Caller,
    PathId(id): PathId<MemberId>,
    key: IdempotencyKey,
    request: RequestId,
) -> Result<Reply<Erasure>, Problem> {
    caller.require(Access::MemberOwn(&id))?;
    let idem = key.for_request(&caller.principal(), &format!("erase:{id}"), "");
    Ok(Reply::from_outcome(
        StatusCode::OK,
        erasures
            .erase(&id, idem, caller.actor(&request).as_ref())
            .await?,
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberEventsQuery {
    after_seq: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// The member's events with `seq > after_seq` (default 0), oldest first. `next_cursor` is the
/// last `seq` returned; pass it as `cursor` (or `after_seq`) for the next page.
#[utoipa::path(get, operation_id = "list_member_events", path = "/v1/members/{id}/events", tag = "events", security(("bearer" = [])),
    params(("id" = String, Path), ("after_seq" = Option<u64>, Query), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = EventPage), (status = 403, body = ProblemDocument)))]
async fn member_events(
    State(events): State<Events>,
    caller: Caller,
    PathId(id): PathId<MemberId>,
    parts: http::request::Parts,
) -> Result<Reply<EventPage>, Problem> {
    caller.require(Access::MemberData(&id))?;
    let q: MemberEventsQuery = loyalty::http::extract::query(&parts)?;
    let paging = Paging::new(q.limit, q.cursor)?;
    // Within i64, as the document's int64 says.
    let seq = |field: &str, v: &str| {
        v.parse::<i64>()
            .ok()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| Problem::bad_field(field, "must be a whole number from 0 to 2^63 − 1"))
    };
    // Both are checked when given, though the cursor wins.
    let after_seq = q
        .after_seq
        .as_deref()
        .map(|a| seq("after_seq", a))
        .transpose()?;
    let after = match &paging.cursor {
        Some(c) => seq("cursor", c)?,
        None => after_seq.unwrap_or(0),
    };
    let reader = match caller.role() {
        Some(_) => Reader::Operator,
        None => Reader::TheMember,
    };
    Ok(Reply::ok(
        events
            .member_events(&id, after, paging.limit, reader)
            .await?,
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    from: chrono::DateTime<chrono::FixedOffset>,
    to: chrono::DateTime<chrono::FixedOffset>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Every event with `from ≤ occurred_at < to` (a window of at most 24 hours), in id order.
#[utoipa::path(get, operation_id = "list_events", path = "/v1/events", tag = "events", security(("bearer" = [])),
    params(("from" = String, Query, format = DateTime, example = "2026-11-22T00:00:00Z"), ("to" = String, Query, format = DateTime, example = "2026-11-23T00:00:00Z"), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = EventPage), (status = 403, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn all_events(
    State(events): State<Events>,
    caller: Caller,
    parts: http::request::Parts,
) -> Result<Reply<EventPage>, Problem> {
    caller.require(Access::Insight)?;
    let q: EventsQuery = loyalty::http::extract::query(&parts)?;
    let paging = Paging::new(q.limit, q.cursor)?;
    let from = ServiceError::bounded_instant("from", q.from.to_utc())?;
    let to = ServiceError::bounded_instant("to", q.to.to_utc())?;
    let page = events
        .events_between(from, to, paging.cursor.as_deref(), paging.limit)
        .await?;
    Ok(Reply::ok(page))
}

pub use loyalty::runtime::ScheduledInput;

/// One run of the daily `points` job (its own binary, `points-job`).
pub async fn run_points_job(
    svc: &Services,
    input: ScheduledInput,
) -> Result<PointsRun, ServiceError> {
    let now = input.now(svc.ctx.clock.as_ref())?;
    svc.balances.points_job(now).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    from: Option<chrono::DateTime<chrono::FixedOffset>>,
    to: Option<chrono::DateTime<chrono::FixedOffset>>,
    actor: Option<String>,
    member: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// The audit trail: every operator write with `from ≤ at < to` (default: the 7 days before
/// now; at most 31 days), newest first, optionally of one operator (`actor`, their token's
/// subject) or about one member.
#[utoipa::path(get, operation_id = "list_audit_records", path = "/v1/audit", tag = "audit", security(("bearer" = [])),
    params(("from" = Option<String>, Query, format = DateTime, example = "2026-11-15T00:00:00Z"),
        ("to" = Option<String>, Query, format = DateTime, example = "2026-11-22T00:00:00Z"),
        ("actor" = Option<String>, Query, example = "alice"), ("member" = Option<String>, Query, example = "member-ada"),
        ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = AuditPage), (status = 400, body = ProblemDocument),
        (status = 403, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn audit(
    State(ctx): State<Ctx>,
    State(audit): State<Audit>,
    caller: Caller,
    parts: http::request::Parts,
) -> Result<Reply<AuditPage>, Problem> {
    caller.require(Access::Admin)?;
    let q: AuditParams = loyalty::http::extract::query(&parts)?;
    let paging = Paging::new(q.limit, q.cursor)?;
    // Bounded before any arithmetic: a year such as -262143 would overflow it.
    let to = match q.to {
        Some(t) => ServiceError::bounded_instant("to", t.to_utc())?,
        None => ctx.now(),
    };
    let from = match q.from {
        Some(t) => ServiceError::bounded_instant("from", t.to_utc())?,
        None => to - chrono::Duration::days(7),
    };
    let member = q
        .member
        .map(|m| MemberId::parse(&m).map_err(|e| Problem::bad_field("member", e.0)))
        .transpose()?;
    let page = audit
        .audit_trail(AuditQuery {
            from,
            to,
            actor: q.actor,
            member,
            limit: paging.limit,
            cursor: paging.cursor,
        })
        .await?;
    Ok(Reply::ok(page))
}
