//! Campaigns, the replicated list of running ones, assignments (sharded per campaign) and the
//! budget slices awards take from.

use super::keys::{MEMBER, member_pk, sharded};
use super::{IndexEntry, Record, Replica, Table, Versioned, shard_of};
use crate::domain::campaign::{Assignment, Campaign, RunningCampaigns};
use crate::domain::{CampaignId, MemberId};
use crate::error::ServiceError;
use crate::store::{Index, Key, SortKey};
use serde::{Deserialize, Serialize};

const CAMPAIGN: &str = "CAMPAIGN#";

const CAMPAIGNS_PARTITION: &str = "CAMPAIGNS";

pub(super) const CAMPAIGN_KIND: &str = "campaign";

fn campaign_pk(id: &CampaignId) -> String {
    format!("{CAMPAIGN}{id}")
}

pub(super) fn campaigns_range() -> (Index, String, SortKey) {
    (Index::Gsi1, CAMPAIGNS_PARTITION.to_owned(), SortKey::All)
}

impl Record for Campaign {
    type Id = CampaignId;
    const KIND: &'static str = CAMPAIGN_KIND;
    fn key(id: &CampaignId) -> Key {
        Key::new(campaign_pk(id), "CAMPAIGN")
    }
    fn index_entries(&self, id: &CampaignId) -> Vec<IndexEntry> {
        vec![IndexEntry {
            index: Index::Gsi1,
            pk: CAMPAIGNS_PARTITION.into(),
            sk: format!("{}#{id}", self.created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ")),
        }]
    }
}

impl Record for RunningCampaigns {
    type Id = Replica;
    const KIND: &'static str = "running campaigns";
    fn key(r: &Replica) -> Key {
        Key::new(sharded(CAMPAIGNS_PARTITION, r.0), "RUNNING")
    }
}

/// A campaign's assignments live in this many partitions, by member: every purchase of an
/// audience member rewrites their assignment (2 units inside the purchase's transaction), so a
/// campaign over everyone at 10,000 purchases a second takes 20,000 units a second; 64 shards
/// keep each key near 310.
pub const ASSIGNMENT_SHARDS: u32 = 64;

fn assignment_pk(c: &CampaignId, shard: u32) -> String {
    sharded(&campaign_pk(c), shard)
}

impl Record for Assignment {
    type Id = (CampaignId, MemberId);
    const KIND: &'static str = "campaign assignment";
    fn key((c, m): &(CampaignId, MemberId)) -> Key {
        Key::new(
            assignment_pk(c, shard_of(m, ASSIGNMENT_SHARDS)),
            member_pk(m),
        )
    }
}

/// The partitions of a campaign's assignments.
pub(super) fn assignment_ranges(c: &CampaignId) -> Vec<(String, SortKey)> {
    (0..ASSIGNMENT_SHARDS)
        .map(|n| (assignment_pk(c, n), SortKey::Prefix(MEMBER.into())))
        .collect()
}

/// One slice of a fixed total (`domain::slices`): its fixed share and what is used of it. The
/// attribute names are the store's [`crate::store::CAP`] and [`crate::store::USED`], which
/// [`crate::store::Write::Take`] updates in place.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slice {
    pub cap: i64,
    pub used: i64,
}

impl Slice {
    pub fn room(&self) -> i64 {
        (self.cap - self.used).max(0)
    }
}

/// A slice of a running campaign's budget, in points. At most [`BUDGET_SLICES`]; a purchase
/// takes from its member's slice and borrows from the others only when that one is dry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BudgetSlice(pub Slice);

/// At most this many slices of a budget: ten campaigns awarding on every purchase at 10,000
/// purchases a second take 10,000 a second from each budget, 2 units each inside the
/// purchase's transaction; 64 slices keep each key near 310 units.
pub const BUDGET_SLICES: u32 = 64;

/// A budget gets one slice per this many points (up to [`BUDGET_SLICES`]), so that an award
/// rarely needs more than its own slice.
pub const POINTS_PER_BUDGET_SLICE: i64 = 1000;

impl Record for BudgetSlice {
    type Id = (CampaignId, u32);
    const KIND: &'static str = "budget slice";
    fn key((c, n): &(CampaignId, u32)) -> Key {
        Key::new(sharded(&format!("{}#BUDGET", campaign_pk(c)), *n), "SLICE")
    }
}

impl Table {
    /// One page of the campaigns, newest first, and its cursor.
    pub async fn campaigns(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<crate::domain::campaign::Campaign>, Option<String>), ServiceError> {
        self.indexed_page(campaigns_range(), CAMPAIGN_KIND, limit, cursor)
            .await
    }

    /// Every assignment of a campaign, from all its partitions (read a few at once).
    pub async fn assignments(
        &self,
        c: &crate::domain::CampaignId,
    ) -> Result<Vec<Versioned<crate::domain::campaign::Assignment>>, ServiceError> {
        self.query_all_of(assignment_ranges(c)).await
    }
}
