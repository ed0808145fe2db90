//! The reward catalog, redemptions and vouchers. A redemption is one commit: member (points),
//! the reward's stock, the member's count for the reward, the redemption, the voucher (its code
//! absence-conditioned, so a collision is just a retry) and the ledger entry.
//!
//! A redemption never reads or writes the reward's own item: it reads its member's shard of the
//! reward (`RewardShard`: the definition and a slice of the stock) and takes one unit from that
//! slice in place (`Write::Take`), reading the other shards only when its own has none left.
//! This process remembers for a second a reward it found sold out everywhere, so the crowd
//! refused at the end of a flash sale costs one read each, not one of every shard
//! (DESIGN.md "Scale").

pub use crate::domain::reward::Redemption;
use crate::domain::reward::Reward;
use crate::domain::voucher::RedemptionStatus;
use crate::domain::{MemberId, Points, RewardId, Tier};
use crate::service::Ctx;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;

mod cancel;
mod redeem;
mod rewards;
mod stock;
mod vouchers;

pub(crate) use redeem::{Issue, issue_voucher};
pub(crate) use stock::{SoldOut, Stock};

/// Rewards, their stock, redemptions, cancellations and vouchers used at the till.
#[derive(Clone)]
pub struct Redemptions {
    pub(crate) ctx: Ctx,
    /// The rewards this process last saw sold out, and when.
    pub(crate) sold_out: Arc<SoldOut>,
}

/// A reward as an operator defines it (the HTTP edge parses `PUT /v1/rewards/{id}` into it).
#[derive(Debug, Clone)]
pub struct RewardDefinition {
    pub name: String,
    pub description: Option<String>,
    pub cost_points: Points,
    pub min_tier: Tier,
    /// Total stock; `None` for unlimited.
    pub stock: Option<u64>,
    pub per_member_limit: Option<u32>,
    pub active: bool,
}

impl RewardDefinition {
    /// The reward an operator set; its stock counts live in its shards (`issued` 0 here).
    pub(super) fn reward(
        &self,
        id: &RewardId,
        name: &str,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Reward {
        Reward {
            id: id.clone(),
            name: name.to_owned(),
            description: self.description.clone(),
            cost_points: self.cost_points,
            min_tier: self.min_tier,
            stock: self.stock,
            issued: 0,
            per_member_limit: self.per_member_limit,
            active: self.active,
            created_at: Some(created_at),
            updated_at: now,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "free-coffee", "name": "Free coffee", "description": "Any size", "cost_points": 50, "min_tier": "silver", "stock": 100, "stock_remaining": 97, "per_member_limit": 2, "active": true}))]
pub struct RewardView {
    pub id: RewardId,
    pub name: String,
    pub description: Option<String>,
    pub cost_points: Points,
    pub min_tier: Tier,
    pub stock: Option<u64>,
    pub stock_remaining: Option<u64>,
    pub per_member_limit: Option<u32>,
    pub active: bool,
}

impl From<&Reward> for RewardView {
    fn from(r: &Reward) -> Self {
        RewardView {
            id: r.id.clone(),
            name: r.name.clone(),
            description: r.description.clone(),
            cost_points: r.cost_points,
            min_tier: r.min_tier,
            stock: r.stock,
            stock_remaining: r.stock_remaining(),
            per_member_limit: r.per_member_limit,
            active: r.active,
        }
    }
}

/// The answer to a new redemption: the redemption and the balance after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "01935b2e-6a00-7000-8000-0000000000cc", "member_id": "member-ada", "reward_id": "free-coffee", "points_spent": 50, "voucher_code": "K7QX4M2PZ9TA", "status": "issued", "created_at": "2026-11-22T10:15:00Z", "expires_at": "2027-02-20T10:15:00Z", "used_at": null, "used_store_id": null, "cancelled_at": null, "source": "redemption", "balance": 70}))]
pub struct RedemptionReceipt {
    #[serde(flatten)]
    pub redemption: Redemption,
    pub balance: Points,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"code": "K7QX4M2PZ9TA", "redemption_id": "01935b2e-6a00-7000-8000-0000000000cc", "member_id": "member-ada", "reward_id": "free-coffee", "status": "used", "used_at": "2026-11-22T11:00:00Z"}))]
pub struct VoucherUse {
    pub code: String,
    pub redemption_id: Uuid,
    pub member_id: MemberId,
    pub reward_id: RewardId,
    pub status: RedemptionStatus,
    pub used_at: DateTime<Utc>,
}

impl Redemption {
    /// As a reader sees it at `now`: an issued voucher past its expiry shows `expired`.
    pub(super) fn seen_at(mut self, now: DateTime<Utc>) -> Self {
        self.status = self.status.as_of(self.expires_at, now);
        self
    }
}
