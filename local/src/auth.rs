//! Development tokens (HS256) and the authorizer that checks them. The secret comes from
//! `LOYALTY_DEV_SECRET` or a file in the data directory created on first use, so tokens survive
//! restarts of the same data directory. Any other token is refused with 401, as API Gateway would.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequestContext,
};
use lambda_http::request::RequestContext;
use loyalty::http::Problem;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub const ISSUER: &str = "loyalty-local";
pub const AUDIENCE: &str = "loyalty-api";
const TOKEN_DAYS: i64 = 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Member(String),
    Pos(String),
    Admin,
    /// An operator with the support role; the subject names them in the audit trail.
    Support(String),
    /// An operator with the analyst role.
    Analyst(String),
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    store_id: Option<String>,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
}

pub struct DevAuth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Where the secret came from, so `token` can say which server its tokens will work with.
    pub source: String,
}

impl DevAuth {
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        DevAuth {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            source: "a secret given in code".into(),
        }
    }

    /// `LOYALTY_DEV_SECRET`, else `<data>/dev-secret` (created with 256 random bits), else (no
    /// data directory: `--memory`) a secret for this process only.
    pub fn load(data_dir: Option<&Path>) -> std::io::Result<Self> {
        if let Ok(s) = std::env::var("LOYALTY_DEV_SECRET") {
            return Ok(DevAuth {
                source: "LOYALTY_DEV_SECRET".into(),
                ..DevAuth::from_secret(s.as_bytes())
            });
        }
        let fresh = || {
            let bytes: [u8; 32] = rand::random();
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        let Some(dir) = data_dir else {
            return Ok(DevAuth {
                source: "a secret for this process only (--memory)".into(),
                ..DevAuth::from_secret(fresh().as_bytes())
            });
        };
        let path = dir.join("dev-secret");
        let secret = match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                let s = fresh();
                write_private(&path, &s)?;
                s
            }
            Err(e) => return Err(e),
        };
        let shown = std::fs::canonicalize(&path).unwrap_or(path);
        Ok(DevAuth {
            source: shown.display().to_string(),
            ..DevAuth::from_secret(secret.as_bytes())
        })
    }

    pub fn mint(&self, role: &Role) -> String {
        let now = chrono::Utc::now().timestamp();
        let (sub, scope, store_id) = match role {
            Role::Member(id) => (id.clone(), "openid".to_owned(), None),
            Role::Pos(store) => (
                format!("pos-{store}"),
                "loyalty/pos".to_owned(),
                Some(store.clone()),
            ),
            Role::Admin => ("admin".to_owned(), "loyalty/admin".to_owned(), None),
            Role::Support(sub) => (sub.clone(), "loyalty/support".to_owned(), None),
            Role::Analyst(sub) => (sub.clone(), "loyalty/analyst".to_owned(), None),
        };
        let claims = Claims {
            sub,
            scope,
            store_id,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + TOKEN_DAYS * 86_400,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// The claims as API Gateway passes them to functions: a map of strings; or why the token
    /// is refused, in words a developer can act on.
    pub fn verify(&self, token: &str) -> Result<HashMap<String, String>, String> {
        use jsonwebtoken::errors::ErrorKind as K;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &self.decoding,
            &self.validation,
        )
        .map_err(|e| match e.kind() {
            K::InvalidSignature => {
                "the token's signature does not match this server's dev secret: \
                 it was minted for another data directory (mint it with \
                 `loyalty-local --data <this server's dir> token …`) or another LOYALTY_DEV_SECRET"
                    .to_owned()
            }
            K::ExpiredSignature => "the token has expired: mint a new one".to_owned(),
            K::ImmatureSignature => "the token is not valid yet (nbf is in the future)".to_owned(),
            K::InvalidIssuer => format!("the token's issuer is not {ISSUER}"),
            K::InvalidAudience => format!("the token's audience is not {AUDIENCE}"),
            K::MissingRequiredClaim(c) => format!("the token has no {c} claim"),
            K::InvalidAlgorithm => "the token is not signed with HS256".to_owned(),
            _ => format!("the token cannot be read: {e}"),
        })?;
        Ok(data
            .claims
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, s)
            })
            .collect())
    }
}

pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(contents.as_bytes())
}

/// The request context API Gateway builds for a request: its id, and for one that passed the JWT
/// authorizer, the token's claims.
pub fn request_context(
    request_id: &str,
    claims: Option<HashMap<String, String>>,
) -> RequestContext {
    let mut ctx = ApiGatewayV2httpRequestContext::default();
    ctx.request_id = Some(request_id.to_owned());
    if let Some(claims) = claims {
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims = claims;
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        ctx.authorizer = Some(authorizer);
    }
    RequestContext::ApiGatewayV2(ctx)
}

/// Plays the authorizer: a valid bearer token becomes a request context; an invalid one is
/// refused here; no token passes through without identity (routes that need one answer 401).
pub async fn authorizer(
    State(auth): State<Arc<DevAuth>>,
    mut req: Request,
    next: Next,
) -> Response {
    // Whatever a client sent, only this layer may describe the caller. Like API Gateway, it
    // gives every request an id.
    req.extensions_mut().remove::<RequestContext>();
    let id = uuid::Uuid::now_v7().to_string();
    req.extensions_mut().insert(request_context(&id, None));
    if let Some(value) = req.headers().get(http::header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let verified = token
            .ok_or_else(|| "the Authorization header must be `Bearer <token>`".to_owned())
            .and_then(|t| auth.verify(t));
        match verified {
            Ok(claims) => {
                req.extensions_mut()
                    .insert(request_context(&id, Some(claims)));
            }
            Err(why) => {
                return loyalty::http::finish(Problem::unauthorized(why).into_response(), &id)
                    .await;
            }
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_and_others_do_not() {
        let a = DevAuth::from_secret(b"one");
        let b = DevAuth::from_secret(b"two");
        let t = a.mint(&Role::Pos("store-1".into()));
        let claims = a.verify(&t).expect("valid");
        assert_eq!(claims["scope"], "loyalty/pos");
        assert_eq!(claims["store_id"], "store-1");
        let why = b.verify(&t).unwrap_err();
        assert!(why.contains("another data directory"), "{why}");
        assert!(a.verify("not.a.token").is_err());
        let mut forged = t.clone();
        forged.push('x');
        assert!(a.verify(&forged).is_err());
    }

    #[test]
    fn a_token_before_its_nbf_is_refused_with_the_reason() {
        let a = DevAuth::from_secret(b"one");
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({"sub": "m", "scope": "openid", "iss": ISSUER,
            "aud": AUDIENCE, "iat": now, "nbf": now + 3600, "exp": now + 7200});
        let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &a.encoding).unwrap();
        let why = a.verify(&t).unwrap_err();
        assert!(why.contains("nbf"), "{why}");
    }

    #[test]
    fn secret_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = DevAuth::load(Some(dir.path())).unwrap();
        let b = DevAuth::load(Some(dir.path())).unwrap();
        assert!(b.verify(&a.mint(&Role::Admin)).is_ok());
    }
}
