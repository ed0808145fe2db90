//! The referral funnel (DESIGN.md "Referrals": funnel and retention): referrals applied in a
//! window counted stage by stage, and the top referrers by the referrals that still stand.

use super::referral::{Referral, ReferralStatus};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Referrals applied in a window, stage by stage (DESIGN.md "Referrals": the funnel).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Funnel {
    pub applied: u64,
    /// With a qualifying purchase (whatever came of it).
    pub qualified: u64,
    /// Waiting for review now.
    pub held: u64,
    /// Paid (and perhaps since reversed), and the points paid: both sides and milestones.
    pub rewarded: u64,
    pub rewarded_points: i64,
    /// Taken back by a refund, and the points taken back (both sides).
    pub reversed: u64,
    pub reversed_points: i64,
    pub rejected: u64,
    pub expired: u64,
    /// Members whose code was applied at least once in the window.
    pub active_referrers: u64,
    /// Rewarded referees still standing per active referrer (null without one).
    pub k_factor: Option<f64>,
}

/// A referrer's part of the window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TopReferrer {
    pub member_id: super::MemberId,
    /// Rewarded and not reversed.
    pub qualified: u64,
    pub applied: u64,
    pub points: i64,
}

/// The funnel of these referrals as of `today`, and the `top` referrers by standing qualified
/// referees (ties: more applied, then id).
pub fn funnel(referrals: &[Referral], today: NaiveDate, top: usize) -> (Funnel, Vec<TopReferrer>) {
    let mut f = Funnel::default();
    let mut by: std::collections::BTreeMap<&super::MemberId, TopReferrer> = Default::default();
    for r in referrals {
        f.applied += 1;
        let t = by.entry(&r.referrer).or_insert_with(|| TopReferrer {
            member_id: r.referrer.clone(),
            qualified: 0,
            applied: 0,
            points: 0,
        });
        t.applied += 1;
        f.qualified += u64::from(r.purchase.is_some());
        let paid = r.referee_points.0 + r.referrer_points.0 + r.milestone_points.0;
        match r.status_on(today) {
            ReferralStatus::Held => f.held += 1,
            ReferralStatus::Rewarded => {
                f.rewarded += 1;
                f.rewarded_points += paid;
                t.qualified += 1;
                t.points += r.referrer_points.0 + r.milestone_points.0;
            }
            ReferralStatus::Reversed => {
                f.rewarded += 1;
                f.rewarded_points += paid;
                f.reversed += 1;
                f.reversed_points +=
                    r.referee_points.0 + r.referrer_points.0 + r.milestones_reversed.0;
                // Its own reward came back, and the milestones the recount took back, whichever
                // referral had crossed them.
                t.points += r.milestone_points.0 - r.milestones_reversed.0;
            }
            ReferralStatus::Rejected => f.rejected += 1,
            ReferralStatus::Expired => f.expired += 1,
            ReferralStatus::Applied => {}
        }
    }
    f.active_referrers = by.len() as u64;
    let standing: u64 = by.values().map(|t| t.qualified).sum();
    f.k_factor = (f.active_referrers > 0).then(|| standing as f64 / f.active_referrers as f64);
    let mut tops: Vec<TopReferrer> = by.into_values().collect();
    tops.sort_by(|a, b| {
        (b.qualified, b.applied)
            .cmp(&(a.qualified, a.applied))
            .then_with(|| a.member_id.cmp(&b.member_id))
    });
    tops.truncate(top);
    (f, tops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::referral::fixtures::{day, referral};

    #[test]
    fn the_funnel_nets_a_milestone_the_recount_took_back_from_another_referral() {
        // b, c, d paid 500 each; d crossed the milestone (1,000) at 3. b's reversal took the
        // milestone back (3 → 2 standing), so ada stands at 2 × 500 = 1,000, not 2,000.
        use ReferralStatus::*;
        let rs = [
            referral("b", Reversed, (200, 500, 0, 1000)),
            referral("c", Rewarded, (200, 500, 0, 0)),
            referral("d", Rewarded, (200, 500, 1000, 0)),
        ];
        let (f, top) = funnel(&rs, day("2027-01-20"), 10);
        assert_eq!(top.len(), 1);
        assert_eq!((top[0].qualified, top[0].points), (2, 1000));
        assert_eq!(f.rewarded_points, 3 * 700 + 1000);
        assert_eq!(f.reversed_points, 700 + 1000);
        assert_eq!((f.rewarded, f.reversed), (3, 1));
    }
}
