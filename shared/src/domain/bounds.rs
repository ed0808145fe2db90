//! The numeric bounds of request fields, in one place: the rules refuse a value outside them
//! (422 naming the field) and the OpenAPI document states them as `minimum` and `maximum`, so a
//! client or a fuzzer that keeps to the document is never refused for a number.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    pub min: i64,
    pub max: i64,
}

impl Bound {
    pub const fn new(min: i64, max: i64) -> Bound {
        Bound { min, max }
    }
    pub fn contains(self, v: i64) -> bool {
        (self.min..=self.max).contains(&v)
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "between {} and {}", self.min, self.max)
    }
}

pub const PAGE_LIMIT: Bound = Bound::new(1, 100);
pub const REWARD_COST_POINTS: Bound = Bound::new(0, 1_000_000_000);
pub const REWARD_STOCK: Bound = Bound::new(0, 1_000_000_000);
pub const REWARD_PER_MEMBER_LIMIT: Bound = Bound::new(1, 1_000_000);
pub const CAMPAIGN_PER_MEMBER_LIMIT: Bound = Bound::new(1, 1000);
pub const CAMPAIGN_BUDGET_POINTS: Bound = Bound::new(1, 1_000_000_000);
pub const RETENTION_MONTHS: Bound = Bound::new(1, 12);

/// Where the document states each bound: (component schema, property, bound).
pub const BODY_FIELDS: &[(&str, &str, Bound)] = &[
    ("RewardInput", "cost_points", REWARD_COST_POINTS),
    ("RewardInput", "stock", REWARD_STOCK),
    ("RewardInput", "per_member_limit", REWARD_PER_MEMBER_LIMIT),
    (
        "CampaignInput",
        "per_member_limit",
        CAMPAIGN_PER_MEMBER_LIMIT,
    ),
    ("CampaignInput", "budget_points", CAMPAIGN_BUDGET_POINTS),
];

/// Query parameters with bounds: (path, parameter, bound); `limit` is bounded on every list.
pub const QUERY_PARAMETERS: &[(&str, &str, Bound)] =
    &[("/v1/analytics/retention", "months", RETENTION_MONTHS)];

/// The instants and dates the API and the clock accept: years 1900 to 9999 (UTC). Date
/// arithmetic (windows, expiry, the audit's days) stays far inside chrono's range, so no
/// value a caller can send makes it overflow; outside, 422 naming the field.
pub const EARLIEST_YEAR: i32 = 1900;
pub const LATEST_YEAR: i32 = 9999;

/// Why an instant or a date is refused.
pub fn date_out_of_range() -> String {
    format!("must fall in the years {EARLIEST_YEAR} to {LATEST_YEAR} (UTC)")
}

/// Whether an instant is inside the accepted years (judged in UTC).
pub fn instant_in_range(t: chrono::DateTime<chrono::Utc>) -> bool {
    use chrono::Datelike;
    (EARLIEST_YEAR..=LATEST_YEAR).contains(&t.year())
}

/// Whether a date is inside the accepted years.
pub fn date_in_range(d: chrono::NaiveDate) -> bool {
    use chrono::Datelike;
    (EARLIEST_YEAR..=LATEST_YEAR).contains(&d.year())
}

#[cfg(test)]
mod range_tests {
    use super::*;

    #[test]
    fn instants_and_dates_are_accepted_from_1900_to_9999_inclusive() {
        let t = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let d = |s: &str| s.parse::<chrono::NaiveDate>().unwrap();
        for (s, ok) in [
            ("1899-12-31T23:59:59.999999Z", false),
            ("1900-01-01T00:00:00Z", true),
            ("9999-12-31T23:59:59.999999Z", true),
            ("+10000-01-01T00:00:00Z", false),
            ("-262143-01-02T00:00:00Z", false),
        ] {
            assert_eq!(instant_in_range(t(s)), ok, "{s}");
        }
        for (s, ok) in [
            ("1899-12-31", false),
            ("1900-01-01", true),
            ("9999-12-31", true),
            ("+10000-01-01", false),
        ] {
            assert_eq!(date_in_range(d(s)), ok, "{s}");
        }
    }
}
