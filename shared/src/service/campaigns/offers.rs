//! A member's offers: the running campaigns in which they are in the treatment group, as their
//! app shows them. A holdout member sees none of the campaigns that hold them out, here or
//! anywhere else in the API.

use super::{Assignment, Campaign, CampaignStatus, Campaigns, RunningCampaigns};
use crate::domain::campaign::{Group, Offer};
use crate::domain::{CampaignId, MemberId};
use crate::service::error::ServiceError;
use crate::table::{Reads, Replica};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One offer the member may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"campaign_id": "spring-double", "name": "Double points on drinks",
    "offer": {"kind": "multiplier", "multiplier": 2.0, "categories": ["drinks"]},
    "starts_at": "2027-03-01T00:00:00Z", "ends_at": "2027-04-01T00:00:00Z", "awards_left": 2}))]
pub struct MemberOffer {
    pub campaign_id: CampaignId,
    pub name: String,
    pub offer: Offer,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Awards the member may still get (the campaign's per-member limit less those received);
    /// null without a limit.
    pub awards_left: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemberOffers {
    pub items: Vec<MemberOffer>,
}

impl Campaigns {
    /// The member's offers now: the registry (the member's replica), then each running
    /// campaign with the member's assignment in one batch (two round trips).
    #[tracing::instrument(skip_all, fields(member = %member))]
    pub async fn member_offers(&self, member: &MemberId) -> Result<MemberOffers, ServiceError> {
        self.ctx.load_member(member).await?;
        self.offers_of(member).await
    }

    /// [`Campaigns::member_offers`] of a member known to exist.
    pub(crate) async fn offers_of(&self, member: &MemberId) -> Result<MemberOffers, ServiceError> {
        let now = self.ctx.now();
        let registry = self
            .ctx
            .table
            .get::<RunningCampaigns>(&Replica::of(member))
            .await?
            .map(|v| v.value)
            .unwrap_or_default();
        let mut reads = Reads::new();
        let slots: Vec<_> = registry
            .running
            .iter()
            .filter(|e| now < e.ends_at)
            .map(|e| {
                (
                    reads.add::<Campaign>(&e.id),
                    reads.add::<Assignment>(&(e.id.clone(), member.clone())),
                )
            })
            .collect();
        let found = self.ctx.table.read(&reads).await?;
        let mut items = Vec::new();
        for (c, a) in slots {
            let (Some(c), Some(a)) = (found.get(&c)?, found.get(&a)?) else {
                continue;
            };
            let (c, a) = (c.value, a.value);
            if c.status_at(now) != CampaignStatus::Running || a.group != Group::Treatment {
                continue;
            }
            items.push(MemberOffer {
                awards_left: c.per_member_limit.map(|l| l.saturating_sub(a.awards)),
                campaign_id: c.id,
                name: c.name,
                offer: c.offer,
                starts_at: c.starts_at,
                ends_at: c.ends_at,
            });
        }
        items.sort_by_key(|o| (o.ends_at, o.campaign_id.to_string()));
        Ok(MemberOffers { items })
    }
}
