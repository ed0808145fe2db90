//! The daily series of the operator's dashboard: one program day's figures, folded from that
//! day's events (pure; the nightly run reads the events and stores the row).

use super::event::{Event, EventData, Reversal};
use super::{MemberId, Points};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use utoipa::ToSchema;

/// One program day. Points are positive amounts except `points_adjusted`, which is signed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"date": "2026-11-22", "enrolments": 12, "active_members": 340,
    "purchases": 410, "sales": 2051000, "refunds": 6, "points_earned": 21900, "points_reversed": 310,
    "points_redeemed": 5200, "points_expired": 800, "points_gifted": 300, "points_adjusted": -50,
    "redemptions": 61, "vouchers_used": 48, "erasures": 1}))]
pub struct DailyFigures {
    pub date: NaiveDate,
    pub enrolments: u64,
    /// Members with a purchase or a redemption that day.
    pub active_members: u64,
    pub purchases: u64,
    /// Sales in minor units of the program currency (before refunds).
    pub sales: i64,
    pub refunds: u64,
    /// Points earned by purchases (pending ones included) and awarded by campaigns and
    /// referrals.
    pub points_earned: i64,
    /// Points refunds took back (a purchase's, its campaign awards' and a referral's).
    pub points_reversed: i64,
    pub points_redeemed: i64,
    pub points_expired: i64,
    pub points_gifted: i64,
    /// Operators' adjustments, signed.
    pub points_adjusted: i64,
    pub redemptions: u64,
    pub vouchers_used: u64,
    pub erasures: u64,
}

/// A day's figures being folded, one page of events at a time.
#[derive(Debug)]
pub struct DayFold {
    figures: DailyFigures,
    active: BTreeSet<MemberId>,
}

impl DayFold {
    pub fn new(date: NaiveDate) -> Self {
        DayFold {
            figures: DailyFigures {
                date,
                ..Default::default()
            },
            active: BTreeSet::new(),
        }
    }

    pub fn add(&mut self, e: &Event) {
        let d = &mut self.figures;
        let mut active = true;
        match &e.data {
            EventData::PointsEarned(x) => {
                d.purchases += 1;
                d.sales += x.sale.amount.value;
                d.points_earned += x.moved.points.0;
            }
            EventData::PointsPending(x) => {
                d.purchases += 1;
                d.sales += x.sale.amount.value;
                d.points_earned += x.pending.0;
            }
            EventData::PointsRedeemed(x) => {
                d.redemptions += 1;
                d.points_redeemed -= x.moved.points.0;
            }
            other => {
                active = false;
                match other {
                    EventData::MemberEnrolled(_) => d.enrolments += 1,
                    EventData::MemberErased(_) => d.erasures += 1,
                    EventData::CampaignAwarded(x) => d.points_earned += x.moved.points.0,
                    // Referral rewards count when paid, pending or not, as purchase points do.
                    EventData::ReferralRewarded(x) => d.points_earned += x.rewarded.0,
                    EventData::ReferralReversed(x) => d.points_reversed += x.reversed.0,
                    EventData::PointsReversed(x) => {
                        if matches!(x.of, Reversal::Purchase { .. }) {
                            d.refunds += 1;
                        }
                        // A reversal from pending points moves less of the balance than it takes.
                        let taken = match &x.of {
                            Reversal::Purchase {
                                pending: Some(p), ..
                            } => x.moved.points.0 + p.0,
                            _ => x.moved.points.0,
                        };
                        d.points_reversed -= taken;
                    }
                    EventData::PointsExpired(x) => d.points_expired -= x.moved.points.0,
                    EventData::PointsGifted(x) => d.points_gifted += x.moved.points.0,
                    EventData::PointsAdjusted(x) => d.points_adjusted += x.moved.points.0,
                    EventData::VoucherUsed(_) => d.vouchers_used += 1,
                    _ => {}
                }
            }
        }
        if active && let Some(m) = &e.member_id {
            self.active.insert(m.clone());
        }
    }

    pub fn finish(self) -> DailyFigures {
        DailyFigures {
            active_members: self.active.len() as u64,
            ..self.figures
        }
    }
}

impl DailyFigures {
    /// The day's figures from its events (each event once).
    pub fn of<'a>(date: NaiveDate, events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut f = DayFold::new(date);
        for e in events {
            f.add(e);
        }
        f.finish()
    }

    /// Points moved in the balance that day by what the figures count (for cross-checks).
    pub fn net_points(&self) -> Points {
        Points(
            self.points_earned - self.points_reversed - self.points_redeemed - self.points_expired
                + self.points_gifted
                + self.points_adjusted,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The samples of `events/payloads/`, each as one event of the day.
    fn sample(name: &str, member: &str) -> Event {
        let path = format!(
            "{}/../events/payloads/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        v["member_id"] = json!(member);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_days_figures_match_the_counts_worked_out_by_hand() {
        let day: NaiveDate = "2026-11-22".parse().unwrap();
        let events = [
            sample("member.enrolled", "a"),
            sample("member.enrolled", "b"),
            sample("points.earned", "a"),    // 1999 sale, 19 points
            sample("points.earned", "a"),    // again: a counts once as active
            sample("points.pending", "b"),   // 1999 sale, 19 pending
            sample("campaign.awarded", "b"), // 200
            sample("points.reversed", "a"),  // refund, 9 points back
            sample("points.reversed+from-pending", "b"), // refund, 9 pending back
            sample("points.reversed+campaign", "b"), // not a refund of its own; 100 back
            sample("points.redeemed", "c"),  // 50
            sample("voucher.used", "c"),
            sample("points.expired", "d"),  // 30
            sample("points.gifted", "d"),   // 100
            sample("points.adjusted", "d"), // +500
            sample("member.erased", "e"),
            sample("segment.changed", "f"),
            sample("points.expiring_soon", "f"),
            sample("referral.applied", "g"),
            sample("referral.rewarded", "g"),       // 500, pending
            sample("referral.reversed+spent", "g"), // 200 back
            sample("referral.held", "g"),
        ];
        let d = DailyFigures::of(day, &events);
        assert_eq!(
            d,
            DailyFigures {
                date: day,
                enrolments: 2,
                active_members: 3, // a, b (purchases), c (redemption)
                purchases: 3,
                sales: 3 * 1999,
                refunds: 2,
                points_earned: 19 + 19 + 19 + 200 + 500,
                points_reversed: 9 + 9 + 100 + 200,
                points_redeemed: 50,
                points_expired: 30,
                points_gifted: 100,
                points_adjusted: 500,
                redemptions: 1,
                vouchers_used: 1,
                erasures: 1,
            }
        );
        assert_eq!(DailyFigures::of(day, &[]).active_members, 0);
    }
}
