//! Rewards and the redemption decision: every refusal is a pure function of the member, the
//! reward and the member's count for it, so the service commits only what this allows.

use super::lots::Lot;
use super::tier::Tier;
use super::voucher::RedemptionStatus;
use super::{MemberId, StoreId};
use super::{Points, RewardId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reward {
    pub id: RewardId,
    pub name: String,
    pub description: Option<String>,
    pub cost_points: Points,
    pub min_tier: Tier,
    /// Total stock ever available; `None` is unlimited.
    pub stock: Option<u64>,
    /// Vouchers currently issued against the stock (cancellations give stock back).
    pub issued: u64,
    pub per_member_limit: Option<u32>,
    pub active: bool,
    /// Orders the catalog, newest first (absent on rewards stored before it existed).
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl Reward {
    pub fn stock_remaining(&self) -> Option<u64> {
        self.stock.map(|s| s.saturating_sub(self.issued))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    Inactive,
    TierTooLow { required: Tier, held: Tier },
    LimitReached { limit: u32 },
    OutOfStock,
    InsufficientPoints { balance: Points, cost: Points },
}

/// Whether a member may redeem `reward` now. `charge_points` is false for gifted vouchers
/// (birthday rewards), which skip the balance and tier checks but never the stock.
pub fn check_redemption(
    tier: Tier,
    balance: Points,
    reward: &Reward,
    already_held: u32,
    charge_points: bool,
) -> Result<(), Refusal> {
    if !reward.active {
        return Err(Refusal::Inactive);
    }
    if charge_points && tier < reward.min_tier {
        return Err(Refusal::TierTooLow {
            required: reward.min_tier,
            held: tier,
        });
    }
    if let Some(limit) = reward.per_member_limit
        && already_held >= limit
    {
        return Err(Refusal::LimitReached { limit });
    }
    if reward.stock_remaining() == Some(0) {
        return Err(Refusal::OutOfStock);
    }
    if charge_points && (balance.is_negative() || balance < reward.cost_points) {
        return Err(Refusal::InsufficientPoints {
            balance,
            cost: reward.cost_points,
        });
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "01935b2e-6a00-7000-8000-0000000000cc", "member_id": "member-ada", "reward_id": "free-coffee", "points_spent": 50, "voucher_code": "K7QX4M2PZ9TA", "status": "cancelled", "created_at": "2026-11-22T10:15:00Z", "expires_at": "2027-02-20T10:15:00Z", "used_at": null, "used_store_id": null, "cancelled_at": "2026-11-22T10:20:00Z", "source": "redemption"}))]
pub struct Redemption {
    pub id: Uuid,
    pub member_id: MemberId,
    pub reward_id: RewardId,
    pub points_spent: Points,
    pub voucher_code: String,
    pub status: RedemptionStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub used_store_id: Option<StoreId>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// `redemption` (points spent) or `birthday_gift`.
    pub source: String,
    /// The dated lots the points came from (`expires_on` their last day), so a cancellation
    /// returns them there; absent when the points never expire.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lots: Vec<Lot>,
}

/// A reward's stock spread over `shards` when an operator sets it: what is issued stays issued
/// (spread evenly), what is left of `stock` is spread evenly on top; `(cap, used)` per shard. An
/// unlimited reward (`stock` None) keeps no stock in its shards, only what they issued.
pub fn restock(stock: Option<u64>, issued: i64, shards: u32) -> Vec<(i64, i64)> {
    let used = super::slices::caps(issued, shards);
    let left = stock.map_or(0, |s| i64::try_from(s).unwrap_or(i64::MAX) - issued);
    let left = super::slices::caps(left.max(0), shards);
    used.into_iter()
        .zip(left)
        .map(|(used, left)| (used + left, used))
        .collect()
}

impl Redemption {
    /// Used at the till of `store` at `now`.
    pub fn used(&self, now: DateTime<Utc>, store: &StoreId) -> Redemption {
        Redemption {
            status: RedemptionStatus::Used,
            used_at: Some(now),
            used_store_id: Some(store.clone()),
            ..self.clone()
        }
    }

    /// Cancelled at `now`: the voucher is void and its points go back.
    pub fn cancelled(&self, now: DateTime<Utc>) -> Redemption {
        Redemption {
            status: RedemptionStatus::Cancelled,
            cancelled_at: Some(now),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reward() -> Reward {
        Reward {
            id: RewardId::parse("r").unwrap(),
            name: "Coffee".into(),
            description: None,
            cost_points: Points(30),
            min_tier: Tier::Gold,
            stock: Some(10),
            issued: 3,
            per_member_limit: Some(2),
            active: true,
            created_at: None,
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn a_used_or_cancelled_redemption_says_when_and_where_and_keeps_the_rest() {
        let at = Utc::now();
        let r = Redemption {
            id: Uuid::nil(),
            member_id: MemberId::parse("ada").unwrap(),
            reward_id: RewardId::parse("r").unwrap(),
            points_spent: Points(30),
            voucher_code: "K7QX4M2PZ9TA".into(),
            status: RedemptionStatus::Issued,
            created_at: at,
            expires_at: at,
            used_at: None,
            used_store_id: None,
            cancelled_at: None,
            source: "redemption".into(),
            lots: Vec::new(),
        };
        let store = StoreId::parse("store-1").unwrap();
        let used = r.used(at, &store);
        assert_eq!(
            (used.status, used.used_at, used.used_store_id.as_ref()),
            (RedemptionStatus::Used, Some(at), Some(&store))
        );
        let cancelled = r.cancelled(at);
        assert_eq!(
            (cancelled.status, cancelled.cancelled_at, cancelled.used_at),
            (RedemptionStatus::Cancelled, Some(at), None)
        );
        assert_eq!(
            (used.points_spent, cancelled.voucher_code),
            (r.points_spent, r.voucher_code)
        );
    }

    #[test]
    fn a_restock_keeps_what_was_issued_and_spreads_what_is_left_evenly() {
        for (stock, issued, want) in [
            (Some(10), 3, vec![(3, 1), (3, 1), (3, 1), (1, 0)]),
            (Some(10), 0, vec![(3, 0), (3, 0), (2, 0), (2, 0)]),
            // Lowered below what was issued: nothing left to issue, nothing taken back.
            (Some(2), 5, vec![(2, 2), (1, 1), (1, 1), (1, 1)]),
            (None, 5, vec![(2, 2), (1, 1), (1, 1), (1, 1)]),
            (Some(0), 0, vec![(0, 0); 4]),
        ] {
            assert_eq!(restock(stock, issued, 4), want, "{stock:?} {issued}");
        }
    }

    #[test]
    fn redemption_decision_table() {
        use Refusal::*;
        let base = reward();
        let inactive = Reward {
            active: false,
            ..base.clone()
        };
        let sold_out = Reward {
            issued: 10,
            ..base.clone()
        };
        let unlimited = Reward {
            stock: None,
            per_member_limit: None,
            ..base.clone()
        };
        for (r, tier, balance, held, charge, want) in [
            (&base, Tier::Gold, 30, 0, true, Ok(())),
            (&base, Tier::Diamond, 100, 1, true, Ok(())),
            (
                &base,
                Tier::Gold,
                29,
                0,
                true,
                Err(InsufficientPoints {
                    balance: Points(29),
                    cost: Points(30),
                }),
            ),
            (
                &base,
                Tier::Gold,
                -5,
                0,
                true,
                Err(InsufficientPoints {
                    balance: Points(-5),
                    cost: Points(30),
                }),
            ),
            (
                &base,
                Tier::Silver,
                100,
                0,
                true,
                Err(TierTooLow {
                    required: Tier::Gold,
                    held: Tier::Silver,
                }),
            ),
            (
                &base,
                Tier::Gold,
                100,
                2,
                true,
                Err(LimitReached { limit: 2 }),
            ),
            (&inactive, Tier::Gold, 100, 0, true, Err(Inactive)),
            (&sold_out, Tier::Gold, 100, 0, true, Err(OutOfStock)),
            (&unlimited, Tier::Gold, 1000, 50, true, Ok(())),
            // A gifted voucher needs no points and no tier, but stock still counts.
            (&base, Tier::Silver, -100, 0, false, Ok(())),
            (&sold_out, Tier::Silver, 0, 0, false, Err(OutOfStock)),
        ] {
            assert_eq!(
                check_redemption(tier, Points(balance), r, held, charge),
                want
            );
        }
        assert_eq!(sold_out.stock_remaining(), Some(0));
        assert_eq!(Reward { issued: 12, ..base }.stock_remaining(), Some(0));
    }
}
