//! Pure program rules: value types parsed once at the edge, and the arithmetic of earning, tiers,
//! refunds, birthdays and rewards. Nothing here does I/O, awaits, or reads the clock: callers pass
//! "now" and the program in, so every rule is a table-testable function.

/// Implements the OpenAPI schema of a type that travels as a JSON string (ids, codes, dates), so
/// the document says "string" with an example instead of exposing the Rust newtype.
macro_rules! string_schema {
    ($t:ty, $example:expr, $desc:expr) => {
        impl utoipa::PartialSchema for $t {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some($desc))
                    .examples([serde_json::json!($example)])
                    .into()
            }
        }
        impl utoipa::ToSchema for $t {}
    };
}
pub(crate) use string_schema;

/// The schema of an id: its characters (`ids::id_char`) and length, so clients and fuzzers
/// know what parses.
macro_rules! id_schema {
    ($t:ty, $example:expr, $desc:expr, $max:expr) => {
        impl utoipa::PartialSchema for $t {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some($desc))
                    .min_length(Some(1))
                    .max_length(Some($max))
                    .pattern(Some("^[A-Za-z0-9_.:@|+=-]+$"))
                    .examples([serde_json::json!($example)])
                    .into()
            }
        }
        impl utoipa::ToSchema for $t {}
    };
}
pub(crate) use id_schema;

pub mod audit;
pub mod birthday;
pub mod bounds;
pub mod campaign;
pub mod custom_segment;
pub mod daily;
pub mod digest;
pub mod earning;
pub mod event;
pub mod guesses;
pub mod ids;
pub mod ledger;
pub mod lots;
pub mod member;
pub mod money;
pub mod predict;
#[cfg(test)]
mod properties;
pub mod receipt;
pub mod referral;
pub mod referral_funnel;
pub mod reward;
pub mod rule;
pub mod segment;
pub mod slices;
pub mod spend;
pub mod tier;
pub mod traits;
pub mod voucher;

pub use birthday::Birthday;
pub use ids::{
    CampaignId, Country, Email, MemberId, Name, Phone, PhoneInput, ReceiptId, RefundId, RewardId,
    StoreId, TimeZoneName,
};
pub use money::{Currency, Money, Points};
pub use tier::Tier;

/// A value that failed to parse at the edge; the HTTP layer reports it as a field problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(msg: impl Into<String>) -> Self {
        Invalid(msg.into())
    }
}

/// Parses unsigned decimal text with at most `int_digits` digits before the point and `decimals`
/// after it into an integer count of 10^-`decimals` (`"1.5"`, 3 → 1500), exactly, never via a
/// float. `None` for anything else (signs, exponents, a bare or trailing point).
pub(crate) fn parse_fixed(s: &str, int_digits: usize, decimals: usize) -> Option<u32> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty()
        || int.len() > int_digits
        || !digits(int)
        || frac.len() > decimals
        || !digits(frac)
        || s.ends_with('.')
    {
        return None;
    }
    let int: u32 = int.parse().ok()?;
    let frac: u32 = format!("{frac:0<decimals$}").parse().ok()?;
    int.checked_mul(10u32.pow(decimals as u32))?
        .checked_add(frac)
}

/// Arithmetic that would leave i64: reported rather than wrapped, so no balance is ever corrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("arithmetic overflow")]
pub struct Overflow;
