//! `loyalty-local`: the whole API in one process for development. It merges the same routers the
//! Lambda functions run, plays API Gateway's JWT authorizer with its own HS256 dev tokens (putting
//! the same claims into the same v2 request context), and adds what only development needs: the
//! scheduled jobs as admin routes and a settable test clock.

pub mod auth;
pub mod builds;
pub mod console;
pub mod jobs;
pub mod serve;
pub mod webhooks;

use auth::DevAuth;
use axum::Router;
use loyalty::clock::TestClock;
use loyalty::service::Services;
use std::sync::Arc;
/// Every function's routes, merged, as each function serves them.
pub fn api_routes() -> Router<Services> {
    Router::new()
        .merge(loyalty_members::router())
        .merge(loyalty_accrual::router())
        .merge(loyalty_tiers::router())
        .merge(loyalty_segments::router())
        .merge(loyalty_campaigns::router())
        .merge(loyalty_redemption::router())
}

/// The local server's router: the API, the local-only routes, and the dev authorizer in front.
pub fn app(services: Services, clock: Arc<TestClock>, auth: Arc<DevAuth>) -> Router {
    app_with_console(services, clock, auth, false)
}

/// [`app`] with the operator console at `/console/`; `dev_sign_in` lets the console's
/// `config.json` hand out dev operator tokens (only for a loopback listener).
pub fn app_with_console(
    services: Services,
    clock: Arc<TestClock>,
    auth: Arc<DevAuth>,
    dev_sign_in: bool,
) -> Router {
    let routes = api_routes().merge(jobs::routes(clock));
    let api = loyalty::http::app(routes, services, Some(loyalty_members::api_document)).layer(
        axum::middleware::from_fn_with_state(auth.clone(), auth::authorizer),
    );
    console::routes(auth, dev_sign_in).merge(api)
}
