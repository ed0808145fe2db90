//! `loyalty`: everything but wiring. `domain` holds the pure rules, `store` the item store and its
//! two backends, `table` the typed single-table layout over it, `service` the use cases (read, decide, commit, retry), `http` the HTTP edge that
//! every function crate and `loyalty-local` share.

pub mod clock;
pub mod domain;
pub mod error;
pub mod http;
pub mod metrics;
pub mod program;
pub mod runtime;
pub mod service;
pub mod store;
pub mod table;
#[cfg(feature = "webhooks")]
pub mod webhook;
