//! Request extractors that fail as problem+json: a strict JSON body (64 KiB, unknown fields
//! refused, the failing field named), list paging, and the `Idempotency-Key` header.

use super::Problem;
use crate::domain::bounds::PAGE_LIMIT;
use crate::service::{FieldError, Idempotency, ServiceError, idempotency::sha256_hex};
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON body parsed into `T`. Its [`JsonBody::digest`] identifies the parsed, normalised
/// request for idempotency: other spacing, key order or an equivalent way of writing a value
/// (`Z` for `+00:00`) is the same request.
pub struct JsonBody<T> {
    pub value: T,
}

impl<T: serde::Serialize> JsonBody<T> {
    pub fn digest(&self) -> String {
        // serde_json's map is ordered by key, so this text is canonical.
        let canonical = serde_json::to_value(&self.value)
            .map(|v| v.to_string())
            .unwrap_or_default();
        sha256_hex(&[canonical.as_bytes()])
    }
}

impl<S: Send + Sync, T: DeserializeOwned + serde::Serialize> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, _: &S) -> Result<Self, Problem> {
        if !is_json(req.headers()) {
            return Err(Problem::unsupported_media_type());
        }
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

/// `application/json` (with any parameters, such as `charset=utf-8`) or a `+json` type.
fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(v) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = v
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn body_problem(detail: String) -> Problem {
    Problem::validation(
        format!("the body is not valid JSON: {detail}"),
        vec![FieldError {
            field: "body".into(),
            detail,
        }],
    )
}

/// Parses a request body: a JSON object, with no key repeated at any depth (serde_json alone
/// would keep the last of two `amount`s), into `T`, naming the failing field.
pub fn parse_json<T: DeserializeOwned + serde::Serialize>(
    bytes: &[u8],
) -> Result<JsonBody<T>, Problem> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let raw = strict::Strict::deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v.0))
        .map_err(|e| body_problem(e.to_string()))?;
    if !raw.is_object() {
        return Err(Problem::bad_field("body", "the body must be a JSON object"));
    }
    let value: T = serde_path_to_error::deserialize(&raw).map_err(|e| {
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
    // serde fills a struct from an array by position, at any depth (and through tagged enums):
    // where the parsed value is an object but the body had an array, the body meant something
    // by the order of its values. Refused, naming the field.
    let parsed = serde_json::to_value(&value).unwrap_or(Value::Null);
    if let Some(field) = positional(&raw, &parsed, String::new()) {
        return Err(Problem::bad_field(
            &field,
            "must be an object with named fields, not an array",
        ));
    }
    Ok(JsonBody { value })
}

/// The first path where `input` holds an array and `parsed` (the typed value written back) an
/// object.
fn positional(input: &Value, parsed: &Value, path: String) -> Option<String> {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    match (input, parsed) {
        (Value::Array(_), Value::Object(_)) => {
            Some(if path.is_empty() { "body".into() } else { path })
        }
        (Value::Array(a), Value::Array(b)) => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| positional(x, y, format!("{path}[{i}]"))),
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .find_map(|(k, x)| b.get(k).and_then(|y| positional(x, y, join(k)))),
        _ => None,
    }
}

/// A JSON value that refuses duplicate object keys.
mod strict {
    use serde::de::{Deserialize, Deserializer, Error, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};
    use std::fmt;

    pub struct Strict(pub Value);

    impl<'de> Deserialize<'de> for Strict {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(StrictVisitor).map(Strict)
        }
    }

    struct StrictVisitor;

    impl<'de> Visitor<'de> for StrictVisitor {
        type Value = Value;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E: Error>(self, v: f64) -> Result<Value, E> {
            // JSON Schema's integer is any number with no fraction: `14025.0` is the integer
            // 14025 (below 2^53, where every integer is exact as a float).
            if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
                return Ok(Value::from(v as i64));
            }
            serde_json::Number::from_f64(v)
                .map(Value::Number)
                .ok_or_else(|| E::custom("a number that is not finite"))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            Strict::deserialize(d).map(|s| s.0)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut out = Vec::new();
            while let Some(Strict(v)) = seq.next_element()? {
                out.push(v);
            }
            Ok(Value::Array(out))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let Strict(v) = map.next_value()?;
                if out.insert(key.clone(), v).is_some() {
                    return Err(A::Error::custom(format!("duplicate key {key:?}")));
                }
            }
            Ok(Value::Object(out))
        }
    }
}

/// The one id in a route's path, parsed once: a segment that cannot be a `T` names nothing, so
/// it answers 404 (`<what> not found`), as API.md says of path ids.
pub struct PathId<T>(pub T);

/// An id that can stand in a path.
pub trait PathParam: Sized {
    /// What it names, for the 404 (`member`, `campaign` …).
    const WHAT: &'static str;
    fn from_path(raw: &str) -> Option<Self>;
}

impl PathParam for crate::domain::MemberId {
    const WHAT: &'static str = "member";
    fn from_path(raw: &str) -> Option<Self> {
        Self::parse(raw).ok()
    }
}

impl PathParam for crate::domain::CampaignId {
    const WHAT: &'static str = "campaign";
    fn from_path(raw: &str) -> Option<Self> {
        Self::parse(raw).ok()
    }
}

impl PathParam for crate::domain::segment::SegmentId {
    const WHAT: &'static str = "segment";
    fn from_path(raw: &str) -> Option<Self> {
        Self::parse(raw)
    }
}

impl PathParam for crate::domain::custom_segment::SegmentRef {
    const WHAT: &'static str = "segment";
    fn from_path(raw: &str) -> Option<Self> {
        Self::parse(raw)
    }
}

impl PathParam for crate::domain::custom_segment::Slug {
    const WHAT: &'static str = "custom segment";
    fn from_path(raw: &str) -> Option<Self> {
        Self::parse(raw.strip_prefix("custom:")?).ok()
    }
}

impl<S: Send + Sync, T: PathParam> FromRequestParts<S> for PathId<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| Problem::for_status(e.status(), e.body_text()))?;
        T::from_path(&raw)
            .map(PathId)
            .ok_or_else(|| Problem::not_found(format!("{} not found", T::WHAT)))
    }
}

/// `?limit=1..100` (default 20) and `?cursor=<opaque>`.
pub struct Paging {
    pub limit: u32,
    /// The opaque cursor; the table layer decodes it and checks it belongs to the list.
    pub cursor: Option<String>,
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
        let raw: RawPaging = query(parts)?;
        Paging::new(raw.limit, raw.cursor)
    }
}

/// The query string parsed into `T` (which lists its parameters and refuses others): 400 when
/// it does not fit.
pub fn query<T: DeserializeOwned>(parts: &Parts) -> Result<T, Problem> {
    serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
        .map_err(|e| Problem::bad_field("query", e.to_string()))
}

impl Paging {
    /// `limit` and `cursor` as given in a query string, checked the same way on every list.
    pub fn new(limit: Option<String>, cursor: Option<String>) -> Result<Paging, Problem> {
        // Not an integer: 400; an integer out of range: 422 (the API's one rule for both).
        let limit = match limit {
            None => 20,
            Some(l) => match l.parse::<i64>() {
                Err(_) => {
                    return Err(Problem::bad_field(
                        "limit",
                        "limit must be an integer from 1 to 100",
                    ));
                }
                Ok(n) if PAGE_LIMIT.contains(n) => n as u32,
                Ok(_) => {
                    return Err(ServiceError::field(
                        "limit",
                        format!("limit must be {PAGE_LIMIT}"),
                    )
                    .into());
                }
            },
        };
        if cursor
            .as_ref()
            .is_some_and(|c| c.is_empty() || c.len() > 4096)
        {
            return Err(Problem::bad_field(
                "cursor",
                "cursor is not one this list issued",
            ));
        }
        Ok(Paging { limit, cursor })
    }
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
            owner: None,
        })
    }

    /// [`IdempotencyKey::for_request`] for a request on one member's data: its record is kept
    /// with the member and goes when the member is erased.
    pub fn for_member_request(
        self,
        principal: &str,
        operation: &str,
        member: &crate::domain::MemberId,
        request_digest: &str,
    ) -> Option<Idempotency> {
        self.for_request(principal, operation, request_digest)
            .map(|i| Idempotency {
                owner: Some(member.clone()),
                ..i
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
