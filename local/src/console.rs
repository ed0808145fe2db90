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

/// Whether a `Host` header names this machine by a loopback name or address. A page on
/// another site that rebinds its own name to 127.0.0.1 still sends its own name as the Host:
/// refusing every other name keeps the dev token from it.
pub fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // [::1]:3000
        Some(rest) => match rest.split_once(']') {
            Some((addr, port)) if port.is_empty() || port.starts_with(':') => addr,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            Some(_) => return false,
            None => host,
        },
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn config(
    State(c): State<Console>,
    headers: http::HeaderMap,
    Query(q): Query<ConfigParams>,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if c.dev_sign_in && !loopback_host(host) {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            "the console's dev sign-in answers only to a loopback Host (localhost, 127.0.0.1, [::1])",
        )
        .into_response();
    }
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

#[cfg(test)]
mod tests {
    use super::loopback_host;

    #[test]
    fn only_loopback_hosts_get_the_dev_sign_in() {
        for (host, ok) in [
            ("127.0.0.1:3000", true),
            ("127.0.0.1", true),
            ("127.8.9.10:80", true),
            ("localhost:3000", true),
            ("LOCALHOST.:3000", true),
            ("console.localhost:3000", true),
            ("[::1]:3000", true),
            ("[::1]", true),
            ("attacker.example:3000", false),
            ("attacker.example", false),
            ("localhost.attacker.example:3000", false),
            ("127.0.0.1.attacker.example", false),
            ("10.0.0.1:3000", false),
            ("[::2]:3000", false),
            ("[::1]x", false),
            ("localhost:30a0", false),
            ("", false),
        ] {
            assert_eq!(loopback_host(host), ok, "{host:?}");
        }
    }
}
