//! Success responses: JSON with a status, and `Idempotent-Replayed: true` on replays.

use crate::service::Outcome;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

pub struct Reply<T> {
    pub status: StatusCode,
    pub body: T,
    pub replayed: bool,
}

impl<T> Reply<T> {
    pub fn ok(body: T) -> Self {
        Reply {
            status: StatusCode::OK,
            body,
            replayed: false,
        }
    }
    pub fn created(body: T) -> Self {
        Reply {
            status: StatusCode::CREATED,
            body,
            replayed: false,
        }
    }
    pub fn from_outcome(status: StatusCode, o: Outcome<T>) -> Self {
        if o.replayed {
            crate::metrics::replayed();
        }
        Reply {
            status,
            body: o.value,
            replayed: o.replayed,
        }
    }
}

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(self.body)).into_response();
        if self.replayed {
            res.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        res
    }
}

/// `{"items": [...], "next_cursor": "…" | null}`, newest first.
#[derive(Serialize, ToSchema)]
pub struct ListResponse<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> ListResponse<T> {
    pub fn new(items: Vec<T>, next_cursor: Option<String>) -> Self {
        ListResponse { items, next_cursor }
    }
}
