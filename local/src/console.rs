//! The operator console (`console/` at the top of the repository), served at `/console/` from
//! assets compiled into the binary, with the security headers every console response carries,
//! and the development sign-in: `/console/config.json` hands the browser a dev operator token
//! (`?role=admin|support|analyst`), only while the server listens on a loopback address. In AWS
//! the same file is a static object written by `scripts/deploy-console` that names Cognito.

use crate::auth::{DevAuth, Role};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use loyalty::http::Problem;
use std::sync::Arc;

#[derive(rust_embed::Embed)]
#[folder = "../console"]
struct Assets;

/// The Content-Security-Policy of every console response: scripts, styles and data from this
/// origin only, no inline script, never framed.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

#[derive(Clone)]
pub struct Console {
    auth: Arc<DevAuth>,
    /// The dev sign-in answers only when the server is reachable from this machine alone.
    dev_sign_in: bool,
}

pub fn routes(auth: Arc<DevAuth>, dev_sign_in: bool) -> Router {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(|| async { asset("index.html") }))
        .route("/console/config.json", get(config))
        .route(
            "/console/{*path}",
            get(|Path(path): Path<String>| async move { asset(&path) }),
        )
        .with_state(Console { auth, dev_sign_in })
        .layer(axum::middleware::map_response(secure))
}

async fn secure(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Development: a rebuilt binary's assets show at the next reload.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

fn asset(path: &str) -> Response {
    match Assets::get(path) {
        Some(file) => {
            let mime = file.metadata.mimetype();
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_str(mime)
                        .unwrap_or(HeaderValue::from_static("application/octet-stream")),
                )],
                file.data.into_owned(),
            )
                .into_response()
        }
        None => Problem::not_found("no such console file").into_response(),
    }
}

#[derive(serde::Deserialize)]
struct ConfigParams {
    role: Option<String>,
}

async fn config(State(c): State<Console>, Query(q): Query<ConfigParams>) -> Response {
    if !c.dev_sign_in {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            "the console's dev sign-in answers only on a loopback address (--listen 127.0.0.1:…)",
        )
        .into_response();
    }
    let role = match q.role.as_deref().unwrap_or("admin") {
        "admin" => Role::Admin,
        "support" => Role::Support("console-support".into()),
        "analyst" => Role::Analyst("console-analyst".into()),
        other => {
            return Problem::bad_field(
                "role",
                format!("{other:?} is not admin, support or analyst"),
            )
            .into_response();
        }
    };
    axum::Json(serde_json::json!({
        "api": "",
        "auth": {"kind": "dev", "token": c.auth.mint(&role)},
    }))
    .into_response()
}
