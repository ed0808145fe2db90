//! The HTTP edge shared by every function and `loyalty-local`: who is calling (from the API
//! Gateway v2 request context), strict JSON bodies, paging, `Idempotency-Key`, and the one
//! mapping of errors to RFC 9457 problem+json. Handlers stay thin: parse → service → reply.

pub mod extract;
pub mod generators;
pub mod identity;
pub mod openapi;
pub mod problem;
pub mod reply;

pub use extract::{IdempotencyKey, JsonBody, Paging, PathId};
pub use identity::Caller;
pub use problem::Problem;
pub use reply::{ListResponse, Reply};

use crate::service::Services;
use axum::Router;
use axum::extract::FromRef;

/// A handler takes the one use case it calls (`State(purchases): State<Purchases>`), taken from
/// the composed [`Services`]: what it may touch is in its signature.
macro_rules! use_cases {
    ($($field:ident: $ty:ident),+ $(,)?) => {
        $(impl FromRef<Services> for crate::service::$ty {
            fn from_ref(s: &Services) -> Self {
                s.$field.clone()
            }
        })+
    };
}

use_cases!(
    ctx: Ctx,
    members: Members,
    purchases: Purchases,
    redemptions: Redemptions,
    referrals: Referrals,
    campaigns: Campaigns,
    segments: Segmentation,
    custom: CustomSegments,
    tiers: Tiers,
    balances: Balances,
    birthdays: Birthdays,
    erasures: Erasures,
    events: Events,
    audit: Audit,
);

#[doc(hidden)]
pub mod __handlers {
    pub use utoipa_axum::{PathItemExt, router::OpenApiRouter, routes};
}

/// A function's handlers, listed once, as its two routers: `routes()`, the `OpenApiRouter` its
/// part of the API's document is built from (and tests read), and `router()`, what Lambda and
/// `loyalty-local` serve. Each `;`-separated group shares one path. `router()` takes only each
/// handler's path and methods from its `#[utoipa::path]`: `utoipa_axum::routes!` also builds
/// every operation and collects every schema it names as a route is added, which cost the
/// members function 4 ms of its cold start (most of it the 24-variant event schema).
#[macro_export]
macro_rules! handlers {
    ($($($($seg:ident)::+),+);+ $(;)?) => {
        /// This function's part of the API's OpenAPI document (and its routes, for tests).
        pub fn routes() -> $crate::http::__handlers::OpenApiRouter<$crate::service::Services> {
            $crate::http::__handlers::OpenApiRouter::new()
                $(.routes($crate::http::__handlers::routes!($($($seg)::+),+)))+
        }

        /// What this function serves: each handler at its documented path and methods.
        pub fn router() -> axum::Router<$crate::service::Services> {
            #[allow(unused_imports)]
            use $crate::http::__handlers::PathItemExt;
            let mut router = axum::Router::new();
            $(
                let mut methods = axum::routing::MethodRouter::new();
                let mut path = String::new();
                $(
                    path = $crate::http::__handlers::routes!(@path [path()] of $($seg)::+);
                    let kinds = $crate::http::__handlers::routes!(@path [methods()] of $($seg)::+);
                    for kind in kinds {
                        methods = methods.on(kind.to_method_filter(), $($seg)::+);
                    }
                )+
                router = router.route(&path, methods);
            )+
            router
        }
    };
}

/// Builds the whole API's OpenAPI document (`loyalty_members::api_document`).
pub type Document = fn() -> serde_json::Value;

/// A function's routes made into a service: fallbacks answer problem+json, every error the
/// framework itself produces (a path or query it cannot parse) is turned into problem+json too,
/// and, given `doc`, `GET /v1/openapi.json` serves the whole API's document (only the members
/// function and `loyalty-local` do). The document is built and serialised on the first request
/// for it, never at start-up: a cold start does not pay for it.
pub fn app(router: Router<Services>, services: Services, doc: Option<Document>) -> Router {
    let router = match doc {
        Some(build) => {
            let served = std::sync::Arc::new(std::sync::OnceLock::<axum::body::Bytes>::new());
            router.route(
                "/v1/openapi.json",
                axum::routing::get(move || {
                    let served = served.clone();
                    async move {
                        let body = served.get_or_init(|| {
                            serde_json::to_vec(&build()).unwrap_or_default().into()
                        });
                        (
                            [(http::header::CONTENT_TYPE, "application/json")],
                            body.clone(),
                        )
                    }
                }),
            )
        }
        None => router,
    };
    router
        .fallback(|| async { Problem::not_found("no such route") })
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
        .with_state(services)
        // Inside the edge, so the 500 it makes is finished like any problem: request id,
        // `instance`, the cause logged once on the request's span.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(axum::middleware::from_fn(edge))
}

/// A handler panicked (a bug: every input is meant to be refused before it can): the client
/// gets a 500 problem, never a dropped connection, and the log says where.
fn panicked(cause: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let what = cause
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| cause.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    tracing::error!(panic = %what, "handler panicked");
    Problem::internal().into_response()
}

/// Every request, in Lambda and locally: its id (API Gateway's `requestContext.requestId`, else
/// a fresh UUID v7) on a tracing span around everything the request logs, in `x-request-id`,
/// and in every problem's `instance`; errors finished and logged once ([`problem::finish_error`]).
async fn edge(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument;
    let id = request_id(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    async move { finish(next.run(req).await, &id).await }
        .instrument(span)
        .await
}

/// The last step of every response: errors finished as problem+json with their `instance`,
/// and `x-request-id`. Also used by `loyalty-local`'s authorizer for the 401s it answers itself.
pub async fn finish(res: axum::response::Response, request_id: &str) -> axum::response::Response {
    let mut res = problem::finish_error(res, request_id).await;
    if let Ok(v) = http::HeaderValue::from_str(request_id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}

/// The request's id, as the edge found or made it: audit records name it, so an operator's write
/// can be found in the logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(uuid::Uuid::now_v7().to_string())))
    }
}

fn request_id(req: &axum::extract::Request) -> String {
    use lambda_http::request::RequestContext;
    match req.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.request_id.clone(),
        _ => None,
    }
    .filter(|id| !id.is_empty())
    .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}
