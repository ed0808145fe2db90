//! The catalog: rewards an operator defines (audited), their stock spread again over the
//! shards, and the list apps show.

use super::*;
use crate::domain::RewardId;
use crate::domain::audit::{Actor, AuditAction, changes};
use crate::domain::reward::Reward;
use crate::retrying;
use crate::service::audit::Audited;
use crate::service::error::ServiceError;
use crate::table::{Batch, REWARD_SHARDS, RewardShard, Slice, Versioned};

/// What a reward has issued: the sum of its shards' (a reward stored before shards kept its
/// count on its own item). It stays issued when the operator edits the reward.
pub(super) fn issued_so_far(
    existing: Option<&Versioned<Reward>>,
    shards: &[Versioned<RewardShard>],
) -> i64 {
    if shards.is_empty() {
        existing.map_or(0, |e| i64::try_from(e.value.issued).unwrap_or(i64::MAX))
    } else {
        shards.iter().map(|s| s.value.slice.used).sum()
    }
}

impl Redemptions {
    /// Creates or replaces a reward; `true` when it was created. Stock already issued stays
    /// issued: lowering `stock` below it leaves none remaining.
    #[tracing::instrument(skip_all, fields(reward = %id))]
    pub async fn put_reward(
        &self,
        id: &RewardId,
        input: RewardDefinition,
        actor: &Actor,
    ) -> Result<(RewardView, bool), ServiceError> {
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ServiceError::field(
                "name",
                "name must be 1 to 100 characters",
            ));
        }
        if input
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 1000)
        {
            return Err(ServiceError::field(
                "description",
                "description must be at most 1000 characters",
            ));
        }
        use crate::domain::bounds::{REWARD_COST_POINTS, REWARD_PER_MEMBER_LIMIT, REWARD_STOCK};
        if !REWARD_COST_POINTS.contains(input.cost_points.0) {
            return Err(ServiceError::field(
                "cost_points",
                format!("cost_points must be {REWARD_COST_POINTS}"),
            ));
        }
        if input
            .stock
            .is_some_and(|s| !REWARD_STOCK.contains(i64::try_from(s).unwrap_or(i64::MAX)))
        {
            return Err(ServiceError::field(
                "stock",
                format!("stock must be {REWARD_STOCK}, or null for unlimited"),
            ));
        }
        if input
            .per_member_limit
            .is_some_and(|l| !REWARD_PER_MEMBER_LIMIT.contains(i64::from(l)))
        {
            return Err(ServiceError::field(
                "per_member_limit",
                format!("per_member_limit must be {REWARD_PER_MEMBER_LIMIT}, or null"),
            ));
        }
        retrying!(self.ctx, self.try_put_reward(id, name, &input, actor))
    }

    pub(super) async fn try_put_reward(
        &self,
        id: &RewardId,
        name: &str,
        input: &RewardDefinition,
        actor: &Actor,
    ) -> Result<(RewardView, bool), ServiceError> {
        let now = self.ctx.now();
        let existing = self.ctx.table.get::<Reward>(id).await?;
        let shards = match existing {
            Some(_) => self.reward_shards(id).await?,
            None => Vec::new(),
        };
        let issued = issued_so_far(existing.as_ref(), &shards);
        let created_at = existing
            .as_ref()
            .map_or(now, |e| e.value.created_at.unwrap_or(e.value.updated_at));
        let reward = input.reward(id, name, created_at, now);
        let mut batch = Batch::new();
        batch.save(id, &reward, existing.as_ref().map(|e| e.version))?;
        let spread = crate::domain::reward::restock(reward.stock, issued, REWARD_SHARDS);
        for (n, (cap, used)) in spread.into_iter().enumerate() {
            let shard = RewardShard {
                reward: reward.clone(),
                slice: Slice { cap, used },
            };
            // Read at a version: a take meanwhile moves it on, and this edit reads again.
            batch.save(
                &(id.clone(), n as u32),
                &shard,
                shards.get(n).map(|s| s.version),
            )?;
        }
        let audited = Audited {
            action: match existing {
                None => AuditAction::RewardCreated,
                Some(_) => AuditAction::RewardChanged,
            },
            member: None,
            target: Some(id.to_string()),
            // What the operator set, not what bookkeeping moves.
            changes: changes(
                existing.as_ref().map(|e| &e.value),
                &reward,
                &["issued", "created_at", "updated_at"],
            ),
        };
        self.ctx.audit(&mut batch, Some(actor), audited, now)?;
        self.ctx.table.commit(batch).await?;
        let shown = Reward {
            issued: u64::try_from(issued).unwrap_or(0),
            ..reward
        };
        Ok((RewardView::from(&shown), existing.is_none()))
    }

    /// The active catalog, newest first. Only active rewards are in the catalog index, so
    /// every page is full until the last.
    #[tracing::instrument(skip_all)]
    pub async fn catalog(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<RewardView>, Option<String>), ServiceError> {
        let (rewards, next) = self.ctx.table.catalog(limit, cursor).await?;
        let rewards = self.with_issued(rewards).await?;
        Ok((rewards.iter().map(RewardView::from).collect(), next))
    }
}
