//! The catalog (rewards and its index), the stock shards and per-member counts a redemption
//! takes from, vouchers and redemptions.

use super::keys::{REDEMPTION, member_pk, sharded};
use super::{IndexEntry, Listed, Record, Slice, Table};
use crate::domain::reward::{Redemption, Reward};
use crate::domain::voucher::RedemptionStatus;
use crate::domain::{MemberId, RewardId, StoreId};
use crate::error::ServiceError;
use crate::store::{Index, Key, SortKey};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const CATALOG_PARTITION: &str = "CATALOG";

pub(super) const CATALOG_KIND: &str = "catalog";

fn catalog_sort(r: &Reward) -> String {
    let at = r.created_at.unwrap_or(r.updated_at);
    format!("{}#{}", at.format("%Y-%m-%dT%H:%M:%S%.6fZ"), r.id)
}

pub(super) fn catalog_range() -> (Index, String, SortKey) {
    (Index::Gsi1, CATALOG_PARTITION.to_owned(), SortKey::All)
}

impl Record for Redemption {
    type Id = (MemberId, Uuid);
    const KIND: &'static str = "redemption";
    fn key((m, id): &(MemberId, Uuid)) -> Key {
        Key::new(member_pk(m), format!("{REDEMPTION}{id}"))
    }
}

impl Listed for Redemption {
    type Owner = MemberId;
    fn range(m: &MemberId) -> (String, SortKey) {
        (member_pk(m), SortKey::Prefix(REDEMPTION.into()))
    }
}

impl Record for Reward {
    type Id = RewardId;
    const KIND: &'static str = "reward";
    fn key(id: &RewardId) -> Key {
        Key::new(format!("REWARD#{id}"), "REWARD")
    }
    /// Only active rewards are in the catalog index, so a catalog page never comes back empty
    /// with a cursor because inactive rewards were filtered out after the query.
    fn index_entries(&self, _: &RewardId) -> Vec<IndexEntry> {
        if !self.active {
            return Vec::new();
        }
        vec![IndexEntry {
            index: Index::Gsi1,
            pk: CATALOG_PARTITION.into(),
            sk: catalog_sort(self),
        }]
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Voucher {
    pub code: String,
    pub redemption_id: Uuid,
    pub member_id: MemberId,
    pub reward_id: RewardId,
    pub status: RedemptionStatus,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub used_store_id: Option<StoreId>,
}

impl Voucher {
    pub fn used(&self, now: DateTime<Utc>, store: &StoreId) -> Voucher {
        Voucher {
            status: RedemptionStatus::Used,
            used_at: Some(now),
            used_store_id: Some(store.clone()),
            ..self.clone()
        }
    }

    pub fn cancelled(&self) -> Voucher {
        Voucher {
            status: RedemptionStatus::Cancelled,
            ..self.clone()
        }
    }
}

impl Record for Voucher {
    /// The normalised code.
    type Id = str;
    const KIND: &'static str = "voucher";
    fn key(code: &str) -> Key {
        Key::new(format!("VOUCHER#{code}"), "VOUCHER")
    }
}

/// How many of one reward a member holds (for `per_member_limit`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RewardCount {
    pub count: u32,
}

impl Record for RewardCount {
    type Id = (MemberId, RewardId);
    const KIND: &'static str = "reward count";
    fn key((m, r): &(MemberId, RewardId)) -> Key {
        Key::new(member_pk(m), format!("REWARDCOUNT#{r}"))
    }
}

/// One of a reward's shards (DESIGN.md "Scale"): a copy of the reward's definition, which a
/// redemption reads instead of the reward's own item, and a slice of its stock (for a reward
/// with unlimited stock, an empty slice nobody takes from). Every reward has
/// [`REWARD_SHARDS`]; an edit rewrites them all with the reward.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RewardShard {
    pub reward: Reward,
    #[serde(flatten)]
    pub slice: Slice,
}

/// A reward's shards: a flash sale of 50,000 members in 10 seconds at one reward is 5,000
/// redemptions a second, each reading its member's shard (1 unit) and taking from its slice
/// (2 units inside the redemption's transaction); 32 shards keep each key near 160 reads and
/// 310 writes a second.
pub const REWARD_SHARDS: u32 = 32;

impl Record for RewardShard {
    type Id = (RewardId, u32);
    const KIND: &'static str = "reward shard";
    fn key((r, n): &(RewardId, u32)) -> Key {
        Key::new(sharded(&format!("REWARD#{r}"), *n), "SHARD")
    }
}

impl Table {
    /// One page of the active catalog, newest first, and its cursor.
    pub async fn catalog(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<crate::domain::reward::Reward>, Option<String>), ServiceError> {
        self.indexed_page(catalog_range(), CATALOG_KIND, limit, cursor)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Points, Tier};

    #[test]
    fn inactive_rewards_leave_the_catalog_index() {
        let mut r = Reward {
            id: RewardId::parse("r").unwrap(),
            name: "R".into(),
            description: None,
            cost_points: Points(1),
            min_tier: Tier::Silver,
            stock: None,
            issued: 0,
            per_member_limit: None,
            active: true,
            created_at: None,
            updated_at: Utc::now(),
        };
        assert_eq!(r.index_entries(&r.id.clone()).len(), 1);
        r.active = false;
        assert!(r.index_entries(&r.id.clone()).is_empty());
    }
}
