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
