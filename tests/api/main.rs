//! Every integration test of the workspace in one binary, a module per area (as zero2prod
//! does): the API over HTTP in-process and over real sockets, the store contract on both
//! backends, the concurrency proofs, the sample events, the layout and role matrices, the
//! customer-base models against the literature. Helpers
//! shared between modules live in the support library (`tests/support/lib.rs`). `TEST_LOG=1`
//! prints the services' logs (`RUST_LOG` filters them).

mod accrual;
mod audit;
mod birthday;
mod campaigns;
mod custom_segments;
mod daily;
mod events;
mod events_feed;
mod foundation;
mod layout;
mod local_server;
mod members_http;
mod models;
mod points;
mod predictions;
mod redemption;
mod referrals;
mod role_matrix;
mod segments;
mod signing_in;
mod store_contract;
