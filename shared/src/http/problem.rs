//! RFC 9457 problem+json, and the single place where service and store errors become HTTP.
//! A 500 never carries internal details: they go to the log with the request's trace.

use crate::service::{FieldError, ServiceError};
use crate::store::StoreError;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub retry_after_seconds: Option<u32>,
    /// What went wrong inside, for the log only (never in the body): the edge middleware logs it
    /// once, with the request id.
    pub cause: Option<String>,
}

/// The internal cause of an error response, handed from [`Problem`] to the edge middleware.
#[derive(Clone, Debug)]
pub struct Cause(pub String);

/// The wire shape, for the OpenAPI document.
#[derive(Serialize, ToSchema)]
pub struct ProblemDocument {
    /// `/problems/<slug>`
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// `/requests/<request id>`: quote it to find the request's log lines.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            slug,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after_seconds: None,
            cause: None,
        }
    }
    pub fn validation(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        Problem {
            errors,
            ..Problem::new(
                StatusCode::BAD_REQUEST,
                "validation",
                "Invalid request",
                detail,
            )
        }
    }
    pub fn bad_field(field: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Problem::validation(
            format!("{field}: {detail}"),
            vec![FieldError {
                field: field.into(),
                detail,
            }],
        )
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
            detail,
        )
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }
    pub fn method_not_allowed() -> Self {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "this route does not accept this method",
        )
    }
    pub fn unsupported_media_type() -> Self {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as JSON with Content-Type: application/json",
        )
    }
    pub fn payload_too_large(limit: usize) -> Self {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            format!("request bodies are limited to {limit} bytes"),
        )
    }
    /// A problem for a bare status (the framework's rejections), with the slug that status has
    /// everywhere else.
    pub fn for_status(status: StatusCode, detail: String) -> Self {
        match status {
            StatusCode::BAD_REQUEST => Problem::bad_field("request", detail),
            StatusCode::UNAUTHORIZED => Problem::unauthorized(detail),
            StatusCode::FORBIDDEN => Problem::forbidden(detail),
            StatusCode::NOT_FOUND => Problem::not_found(detail),
            StatusCode::METHOD_NOT_ALLOWED => Problem::method_not_allowed(),
            StatusCode::PAYLOAD_TOO_LARGE => Problem::payload_too_large(super::extract::BODY_LIMIT),
            s if s.is_server_error() => Problem {
                status: s,
                cause: Some(detail),
                ..Problem::internal()
            },
            s => Problem::new(s, "request", "Request refused", detail),
        }
    }

    pub fn internal() -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "something went wrong on our side; it has been logged",
        )
    }

    pub fn document(&self) -> ProblemDocument {
        ProblemDocument {
            kind: format!("/problems/{}", self.slug),
            title: self.title.into(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            errors: self.errors.clone(),
            instance: None,
        }
    }
}

/// Finishes an error response at the edge: one that is not problem+json (axum's own rejections
/// answer `text/plain`) becomes one, keeping its status and its text as the detail; every
/// problem gets `instance: /requests/<id>`; and a server error's cause is logged, once, here.
pub async fn finish_error(res: Response, request_id: &str) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    let cause = res.extensions().get::<Cause>().map(|c| c.0.clone());
    let (mut parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let mut doc: serde_json::Value = if is_problem {
        serde_json::from_slice(&bytes).unwrap_or_default()
    } else {
        let text = String::from_utf8_lossy(&bytes).trim().to_owned();
        let p = Problem::for_status(status, text);
        if let Some(c) = &p.cause {
            tracing::error!(status = %status, cause = %c, "error response");
        }
        serde_json::to_value(p.document()).unwrap_or_default()
    };
    if let Some(c) = cause {
        if status.is_server_error() {
            tracing::error!(status = %status, cause = %c, "error response");
        } else {
            tracing::warn!(status = %status, cause = %c, "refused");
        }
    }
    doc["instance"] = serde_json::Value::from(format!("/requests/{request_id}"));
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(doc.to_string()))
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(self.document())).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after_seconds {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if let Some(c) = self.cause {
            res.extensions_mut().insert(Cause(c));
        }
        res
    }
}

impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Self {
        use ServiceError as E;
        use StatusCode as S;
        let detail = e.to_string();
        match e {
            E::Validation(errors) => {
                let detail = errors
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.detail))
                    .collect::<Vec<_>>()
                    .join("; ");
                Problem {
                    errors,
                    ..Problem::new(
                        S::UNPROCESSABLE_ENTITY,
                        "validation",
                        "Invalid request",
                        detail,
                    )
                }
            }
            E::Malformed(errors) => Problem::validation(
                errors
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.detail))
                    .collect::<Vec<_>>()
                    .join("; "),
                errors,
            ),
            E::NotFound(_) => Problem::not_found(detail),
            E::MemberExists => Problem::new(S::CONFLICT, "member-exists", "Member exists", detail),
            E::MemberErased => Problem::new(S::GONE, "member-erased", "Member erased", detail),
            E::PhoneTaken => Problem::new(S::CONFLICT, "phone-taken", "Phone taken", detail),
            E::ReferralRefused(r) => {
                let (status, slug, title) = referral_refusal(r);
                Problem::new(status, slug, title, detail)
            }
            E::ReferralCodeTaken => Problem::new(
                S::CONFLICT,
                "referral-code-taken",
                "Referral code taken",
                detail,
            ),
            E::ReferralNotHeld(_) => Problem::new(
                S::CONFLICT,
                "referral-not-held",
                "Referral not held",
                detail,
            ),
            E::BirthdayLocked => {
                Problem::new(S::CONFLICT, "birthday-locked", "Birthday locked", detail)
            }
            E::InsufficientPoints { .. } => Problem::new(
                S::CONFLICT,
                "insufficient-points",
                "Insufficient points",
                detail,
            ),
            E::OutOfStock => Problem::new(S::CONFLICT, "out-of-stock", "Out of stock", detail),
            E::LimitReached { .. } => {
                Problem::new(S::CONFLICT, "limit-reached", "Limit reached", detail)
            }
            E::AdjustmentOverLimit { .. } => Problem::new(
                S::FORBIDDEN,
                "adjustment-over-limit",
                "Adjustment over the support limit",
                detail,
            ),
            E::TierTooLow { .. } => {
                Problem::new(S::FORBIDDEN, "tier-too-low", "Tier too low", detail)
            }
            E::RewardInactive => {
                Problem::new(S::CONFLICT, "reward-inactive", "Reward inactive", detail)
            }
            E::VoucherUsed => Problem::new(S::CONFLICT, "voucher-used", "Voucher used", detail),
            E::VoucherCancelled => Problem::new(
                S::CONFLICT,
                "voucher-cancelled",
                "Voucher cancelled",
                detail,
            ),
            E::VoucherExpired => {
                Problem::new(S::CONFLICT, "voucher-expired", "Voucher expired", detail)
            }
            E::RedemptionNotCancellable { .. } => Problem::new(
                S::CONFLICT,
                "redemption-not-cancellable",
                "Redemption not cancellable",
                detail,
            ),
            E::RefundExceedsPurchase { .. } => Problem::new(
                S::UNPROCESSABLE_ENTITY,
                "refund-exceeds-purchase",
                "Refund exceeds purchase",
                detail,
            ),
            E::CurrencyMismatch { .. } => Problem::new(
                S::UNPROCESSABLE_ENTITY,
                "currency-mismatch",
                "Currency mismatch",
                detail,
            ),
            E::StalePurchase(_) => Problem::new(
                S::UNPROCESSABLE_ENTITY,
                "stale-purchase",
                "Purchase time out of range",
                detail,
            ),
            E::IdempotencyKeyReused => Problem::new(
                S::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
                detail,
            ),
            E::ReceiptConflict => {
                Problem::new(S::CONFLICT, "receipt-conflict", "Receipt conflict", detail)
            }
            E::CampaignLaunched => Problem::new(
                S::CONFLICT,
                "campaign-launched",
                "Campaign launched",
                detail,
            ),
            E::CampaignNotRunning => Problem::new(
                S::CONFLICT,
                "campaign-not-running",
                "Campaign not running",
                detail,
            ),
            E::TooManyCampaigns { .. } => Problem::new(
                S::CONFLICT,
                "too-many-campaigns",
                "Too many campaigns",
                detail,
            ),
            E::TooManySegments { .. } => Problem::new(
                S::CONFLICT,
                "too-many-segments",
                "Too many custom segments",
                detail,
            ),
            E::TooManyUnknownCodes { retry_after } => Problem {
                retry_after_seconds: Some(retry_after),
                ..Problem::new(
                    S::TOO_MANY_REQUESTS,
                    "too-many-unknown-codes",
                    "Too many unknown codes",
                    detail,
                )
            },
            E::Contention => Problem {
                retry_after_seconds: Some(1),
                ..Problem::new(S::SERVICE_UNAVAILABLE, "unavailable", "Busy", detail)
            },
            E::Store(StoreError::BadCursor) => {
                Problem::bad_field("cursor", "cursor is not one this list issued")
            }
            E::Store(StoreError::Unavailable(reason)) => Problem {
                retry_after_seconds: Some(2),
                cause: Some(format!("store unavailable: {reason}")),
                ..Problem::new(
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Unavailable",
                    "the data store is unavailable; retry shortly",
                )
            },
            E::Store(err) => Problem {
                cause: Some(chain(&err)),
                ..Problem::internal()
            },
            e @ E::Corrupt { .. } => Problem {
                cause: Some(chain(&e)),
                ..Problem::internal()
            },
        }
    }
}

/// An error and every cause under it, for the log: `outer: middle: root`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let shown = cause.to_string();
        if !text.ends_with(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        next = cause.source();
    }
    text
}

/// Each refusal to apply a code is its own problem type (API.md "Referrals").
fn referral_refusal(
    r: crate::domain::referral::Refusal,
) -> (http::StatusCode, &'static str, &'static str) {
    use crate::domain::referral::Refusal as R;
    use http::StatusCode as S;
    match r {
        R::Disabled => (S::CONFLICT, "referrals-disabled", "Referrals disabled"),
        R::UnknownCode => (
            S::UNPROCESSABLE_ENTITY,
            "referral-code-unknown",
            "Unknown referral code",
        ),
        R::WindowClosed => (
            S::CONFLICT,
            "referral-window-closed",
            "Referral window closed",
        ),
        R::AlreadyReferred => (S::CONFLICT, "already-referred", "Already referred"),
        R::OwnCode => (S::CONFLICT, "referral-own-code", "Own referral code"),
        R::CapReached => (S::CONFLICT, "referral-cap-reached", "Referral cap reached"),
        R::AlreadyPurchased => (
            S::CONFLICT,
            "referral-after-first-purchase",
            "Referral after the first purchase",
        ),
        R::SelfReferral(_) => (S::CONFLICT, "self-referral", "Self-referral"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_failure_logs_its_cause_chain_and_answers_nothing_of_it() {
        let io = std::io::Error::other("disk on fire");
        let e = StoreError::backend(io);
        assert!(
            std::error::Error::source(&e).is_some(),
            "the backend's error is kept"
        );
        let p = Problem::from(ServiceError::Store(e));
        assert_eq!(p.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(p.cause.as_deref().unwrap().contains("disk on fire"));
        assert!(!p.detail.contains("disk on fire"), "{}", p.detail);
        let broken = StoreError::broken("item without PK/SK");
        assert!(std::error::Error::source(&broken).is_none());
    }
}
