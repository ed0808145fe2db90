//! A reward's stock, kept in shards so that redemptions of one reward spread their writes; the
//! sold-out cache that spares a read of a reward known to be gone.

use super::*;
use crate::domain::reward::Reward;
use crate::domain::{MemberId, RewardId};
use crate::service::error::ServiceError;
use crate::table::{Fetched, REWARD_SHARDS, Reads, RewardShard, Slice, Slot, Versioned, shard_of};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::RwLock;

/// A reward's shards as a request read them: its member's own, and every shard when that one
/// had no stock left (`all`).
pub(crate) struct Stock {
    pub(super) home_n: u32,
    pub(super) home: Versioned<RewardShard>,
    all: Option<Vec<Versioned<RewardShard>>>,
}

/// The rewards this process found sold out in every shard, and when: for a second after, a
/// redemption whose own shard is empty is refused without reading the others.
#[derive(Default, Debug)]
pub struct SoldOut(RwLock<HashMap<RewardId, DateTime<Utc>>>);

pub(super) const SOLD_OUT_MEMORY: chrono::Duration = chrono::Duration::seconds(1);

impl SoldOut {
    pub(super) fn recently(&self, r: &RewardId, now: DateTime<Utc>) -> bool {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(r)
            .is_some_and(|at| now >= *at && now - *at < SOLD_OUT_MEMORY)
    }
    pub(super) fn seen(&self, r: &RewardId, now: DateTime<Utc>) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(r.clone(), now);
    }
}

impl Stock {
    pub(super) fn limited(&self) -> bool {
        self.home.value.reward.stock.is_some()
    }
    /// The slices known: every shard's, or the member's own.
    pub(super) fn slices(&self) -> Vec<(u32, Slice)> {
        match &self.all {
            Some(all) => all
                .iter()
                .enumerate()
                .map(|(n, s)| (n as u32, s.value.slice))
                .collect(),
            None => vec![(self.home_n, self.home.value.slice)],
        }
    }
    /// The definition, with `issued` as far as the shards read tell: none left when no shard
    /// read has room.
    pub(super) fn reward(&self) -> Reward {
        let mut r = self.home.value.reward.clone();
        if let Some(stock) = r.stock {
            let room: i64 = self.slices().iter().map(|(_, s)| s.room()).sum();
            r.issued = stock.saturating_sub(u64::try_from(room).unwrap_or(0));
        }
        r
    }
}

impl Redemptions {
    /// Adds a member's shard of a reward to a read.
    pub(crate) fn stock_read(
        reads: &mut Reads,
        reward: &RewardId,
        member: &MemberId,
    ) -> (u32, Slot<RewardShard>) {
        let n = shard_of(member, REWARD_SHARDS);
        (n, reads.add::<RewardShard>(&(reward.clone(), n)))
    }

    /// The reward's stock after the read: the member's shard, and every shard (one more read)
    /// when that one has none left, unless this process saw the reward sold out a moment ago.
    pub(crate) async fn stock(
        &self,
        (home_n, slot): (u32, Slot<RewardShard>),
        found: &Fetched,
        reward: &RewardId,
    ) -> Result<Stock, ServiceError> {
        let home = found.get(&slot)?.ok_or(ServiceError::NotFound("reward"))?;
        let mut stock = Stock {
            home_n,
            home,
            all: None,
        };
        let now = self.ctx.now();
        if stock.limited()
            && stock.home.value.slice.room() == 0
            && !self.sold_out.recently(reward, now)
        {
            let all = self.reward_shards(reward).await?;
            if all.iter().all(|s| s.value.slice.room() == 0) {
                self.sold_out.seen(reward, now);
            }
            stock.all = Some(all);
        }
        Ok(stock)
    }

    /// Every shard of a reward, in one read (empty when the reward does not exist).
    pub(super) async fn reward_shards(
        &self,
        reward: &RewardId,
    ) -> Result<Vec<Versioned<RewardShard>>, ServiceError> {
        let mut reads = Reads::new();
        let slots: Vec<_> = (0..REWARD_SHARDS)
            .map(|n| reads.add::<RewardShard>(&(reward.clone(), n)))
            .collect();
        let found = self.ctx.table.read(&reads).await?;
        let mut out = Vec::new();
        for slot in &slots {
            match found.get(slot)? {
                Some(s) => out.push(s),
                None => return Ok(Vec::new()),
            }
        }
        Ok(out)
    }

    /// The rewards with what is issued of their stock filled in from their shards, for showing.
    pub(super) async fn with_issued(
        &self,
        mut rewards: Vec<Reward>,
    ) -> Result<Vec<Reward>, ServiceError> {
        let mut reads = Reads::new();
        let slots: Vec<Vec<Slot<RewardShard>>> = rewards
            .iter()
            .map(|r| match r.stock {
                Some(_) => (0..REWARD_SHARDS)
                    .map(|n| reads.add::<RewardShard>(&(r.id.clone(), n)))
                    .collect(),
                None => Vec::new(),
            })
            .collect();
        if slots.iter().all(Vec::is_empty) {
            return Ok(rewards);
        }
        let found = self.ctx.table.read(&reads).await?;
        for (r, slots) in rewards.iter_mut().zip(slots) {
            if slots.is_empty() {
                continue;
            }
            let mut used = 0i64;
            for slot in &slots {
                used += found.get(slot)?.map_or(0, |s| s.value.slice.used);
            }
            r.issued = u64::try_from(used).unwrap_or(0);
        }
        Ok(rewards)
    }
}
