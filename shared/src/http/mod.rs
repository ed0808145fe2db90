//! The HTTP edge shared by every function and `loyalty-local`: who is calling (from the API
//! Gateway v2 request context), strict JSON bodies, paging, `Idempotency-Key`, and the one
//! mapping of errors to RFC 9457 problem+json. Handlers stay thin: parse → service → reply.

pub mod extract;
pub mod identity;
pub mod openapi;
pub mod problem;
pub mod reply;

pub use extract::{IdempotencyKey, JsonBody, Paging};
pub use identity::Caller;
pub use problem::Problem;
pub use reply::{ListResponse, Reply};

use crate::service::Services;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;

/// A function's routes made into a service: fallbacks answer problem+json, every error the
/// framework itself produces (a path or query it cannot parse) is turned into problem+json too,
/// and `GET /v1/openapi.json` serves `doc` (the whole API's document, not just this function's).
pub fn app(
    routes: OpenApiRouter<Services>,
    services: Services,
    doc: utoipa::openapi::OpenApi,
) -> Router {
    let (router, _) = routes.split_for_parts();
    let doc = std::sync::Arc::new(doc);
    router
        .route(
            "/v1/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { Problem::not_found("no such route") })
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
        .with_state(services)
        .layer(axum::middleware::map_response(
            problem::plain_errors_as_problems,
        ))
}
