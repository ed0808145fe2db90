//! Request extractors that fail as problem+json: a strict JSON body (64 KiB, unknown fields
//! refused, the failing field named), list paging, and the `Idempotency-Key` header.

use super::Problem;
use crate::service::{FieldError, Idempotency, idempotency::sha256_hex};
use axum::extract::{FromRequest, FromRequestParts, Request};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::request::Parts;
use serde::de::DeserializeOwned;

pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON body parsed into `T`, plus a digest of its canonical form (keys sorted) for
/// idempotency: the same JSON with other spacing or key order is the same request.
pub struct JsonBody<T> {
    pub value: T,
    pub digest: String,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, _: &S) -> Result<Self, Problem> {
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > BODY_LIMIT) {
            return Err(Problem::payload_too_large(BODY_LIMIT));
        }
        let bytes = axum::body::to_bytes(req.into_body(), BODY_LIMIT)
            .await
            .map_err(|_| Problem::payload_too_large(BODY_LIMIT))?;
        parse_json(&bytes)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<JsonBody<T>, Problem> {
    let raw: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        Problem::validation(
            format!("the body is not valid JSON: {e}"),
            vec![FieldError {
                field: "body".into(),
                detail: e.to_string(),
            }],
        )
    })?;
    // serde_json's map is ordered by key, so this text is canonical.
    let digest = sha256_hex(&[raw.to_string().as_bytes()]);
    let value = serde_path_to_error::deserialize(raw).map_err(|e| {
        let field = match e.path().to_string() {
            p if p == "." => "body".to_owned(),
            p => p,
        };
        let detail = e.inner().to_string();
        Problem::validation(
            format!("{field}: {detail}"),
            vec![FieldError { field, detail }],
        )
    })?;
    Ok(JsonBody { value, digest })
}

/// `?limit=1..100` (default 20) and `?cursor=<opaque>`.
pub struct Paging {
    pub limit: u32,
    /// The store's position, decoded from the opaque cursor.
    pub after: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPaging {
    limit: Option<String>,
    cursor: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let raw: RawPaging = serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map_err(|e| Problem::bad_field("query", e.to_string()))?;
        let limit = match raw.limit {
            None => 20,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| {
                    Problem::bad_field("limit", "limit must be an integer from 1 to 100")
                })?,
        };
        let after = raw
            .cursor
            .map(|c| {
                decode_cursor(&c).ok_or_else(|| {
                    Problem::bad_field("cursor", "cursor is not one this API issued")
                })
            })
            .transpose()?;
        Ok(Paging { limit, after })
    }
}

pub fn encode_cursor(store_position: &str) -> String {
    URL_SAFE_NO_PAD.encode(store_position.as_bytes())
}

fn decode_cursor(c: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(c).ok()?).ok()
}

/// The optional `Idempotency-Key` header (1–255 visible ASCII characters).
pub struct IdempotencyKey(pub Option<String>);

impl IdempotencyKey {
    /// Binds the key to its caller and operation and to this exact request.
    pub fn for_request(
        self,
        principal: &str,
        operation: &str,
        request_digest: &str,
    ) -> Option<Idempotency> {
        self.0.map(|key| Idempotency {
            scope: format!("{operation}|{principal}"),
            key,
            request_hash: sha256_hex(&[operation.as_bytes(), request_digest.as_bytes()]),
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let Some(v) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let s = v
            .to_str()
            .ok()
            .filter(|s| {
                (1..=255).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
            })
            .ok_or_else(|| {
                Problem::bad_field(
                    "Idempotency-Key",
                    "must be 1 to 255 visible ASCII characters",
                )
            })?;
        Ok(IdempotencyKey(Some(s.to_owned())))
    }
}
