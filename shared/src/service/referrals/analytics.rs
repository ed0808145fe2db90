//! The referral funnel: codes issued, applied, qualified and paid, and how referred members retain.

use crate::domain::referral_funnel;
use crate::service::Referrals;
use crate::service::error::ServiceError;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One group's 90-day repeat buyers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RepeatRate {
    pub members: u64,
    pub repeat_buyers: u64,
    /// `repeat_buyers / members` (4 decimals; null without members).
    pub rate: Option<f64>,
}

/// Referred members against organic ones enrolled in the same months.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReferredRetention {
    /// The segments run the counts are from.
    pub as_of: DateTime<Utc>,
    /// The enrolment months counted: those in the window whose three months are over.
    pub months: Vec<String>,
    pub referred: RepeatRate,
    pub organic: RepeatRate,
    /// Referred minus organic rate, and its 95 % interval (Wald, as campaign results).
    pub difference: Option<f64>,
    pub difference_ci95: Option<[f64; 2]>,
}

/// `GET /v1/analytics/referrals`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"from": "2027-01-01", "to": "2027-03-31",
    "funnel": {"applied": 40, "qualified": 25, "held": 2, "rewarded": 22, "rewarded_points": 16400,
        "reversed": 1, "reversed_points": 700, "rejected": 1, "expired": 9, "active_referrers": 12,
        "k_factor": 1.75},
    "top_referrers": [{"member_id": "member-ada", "qualified": 5, "applied": 6, "points": 3500}],
    "retention": {"as_of": "2027-05-01T02:00:00Z", "months": ["2027-01", "2027-02"],
        "referred": {"members": 30, "repeat_buyers": 15, "rate": 0.5},
        "organic": {"members": 400, "repeat_buyers": 120, "rate": 0.3},
        "difference": 0.2, "difference_ci95": [0.0181, 0.3819]}}))]
pub struct ReferralAnalytics {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub funnel: referral_funnel::Funnel,
    pub top_referrers: Vec<referral_funnel::TopReferrer>,
    /// Null until the nightly segments job has run.
    pub retention: Option<ReferredRetention>,
}

/// The longest window the funnel reads (it reads every referral applied in it).
pub const ANALYTICS_MAX_DAYS: i64 = 366;

pub(super) fn repeat_rate(members: u64, repeat: u64) -> RepeatRate {
    RepeatRate {
        members,
        repeat_buyers: repeat,
        rate: (members > 0).then(|| crate::domain::campaign::rate4(repeat as f64 / members as f64)),
    }
}

impl Referrals {
    /// The funnel of the referrals applied from `from` to `to` (UTC days, inclusive), the top
    /// referrers, and the repeat-purchase rate of referred against organic members enrolled in
    /// those months (from the latest segments run).
    #[tracing::instrument(skip_all)]
    pub async fn referral_analytics(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<ReferralAnalytics, ServiceError> {
        if to < from || (to - from).num_days() >= ANALYTICS_MAX_DAYS {
            return Err(ServiceError::field(
                "to",
                format!("to must be on or after from, at most {ANALYTICS_MAX_DAYS} days"),
            ));
        }
        let mut referrals = Vec::new();
        let (first, last) = (
            crate::domain::spend::month_index(from),
            crate::domain::spend::month_index(to),
        );
        for month in first..=last {
            let month = crate::service::segments::month_name(month);
            referrals.extend(
                self.ctx
                    .table
                    .referrals_applied_in(&month)
                    .await?
                    .into_iter()
                    .filter(|r| (from..=to).contains(&r.applied_at.date_naive())),
            );
        }
        let today = self.ctx.program_date(self.ctx.now());
        let (mut funnel, top_referrers) = referral_funnel::funnel(&referrals, today, 10);
        funnel.k_factor = funnel.k_factor.map(crate::domain::campaign::rate4);
        let retention = (self.ctx.table.latest_segment_day(None).await?)
            .map(|day| referred_retention(&day, first, last));
        Ok(ReferralAnalytics {
            from,
            to,
            funnel,
            top_referrers,
            retention,
        })
    }
}

/// Referred against organic members' repeat purchase rate over the enrolment months `first` to
/// `last` that the last segments day saw complete (two months after), with the difference's
/// 95 % interval.
fn referred_retention(
    day: &crate::domain::segment::SegmentDay,
    first: i32,
    last: i32,
) -> ReferredRetention {
    let complete = crate::domain::spend::month_index(day.date) - 2;
    let months: Vec<String> = (first..=last.min(complete - 1))
        .map(crate::service::segments::month_name)
        .collect();
    let mut sum = crate::domain::segment::RepeatCohort::default();
    for m in &months {
        if let Some(c) = day.referral_cohorts.get(m) {
            sum.merge(c);
        }
    }
    let group = |members, converted| crate::domain::campaign::GroupTally {
        members,
        converted,
        ..Default::default()
    };
    let e = crate::domain::campaign::effect(
        &group(sum.referred, sum.referred_repeat),
        &group(sum.organic, sum.organic_repeat),
    );
    let r4 = crate::domain::campaign::rate4;
    ReferredRetention {
        as_of: day.as_of,
        months,
        referred: repeat_rate(sum.referred, sum.referred_repeat),
        organic: repeat_rate(sum.organic, sum.organic_repeat),
        difference: e.conversion_uplift.map(r4),
        difference_ci95: e.conversion_ci95.map(|(lo, hi)| [r4(lo), r4(hi)]),
    }
}
