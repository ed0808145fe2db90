//! Campaign drafts: the checks a definition passes, saving one (audited), and reading one, the
//! list and a member's campaigns.

use super::{CampaignDraft, CampaignView, MemberCampaign};
use crate::domain::audit::{Actor, AuditAction, changes};
use crate::domain::campaign::{Assignment, Campaign, CampaignStatus};
use crate::domain::campaign::{HoldoutShare, Offer};
use crate::domain::member::Member;
use crate::domain::segment::SegmentId;
use crate::domain::{CampaignId, MemberId, Money, Points};
use crate::retrying;
use crate::service::Campaigns;
use crate::service::audit::Audited;
use crate::service::error::ServiceError;
use crate::table::{Batch, Reads, Slot};

impl Campaigns {
    pub(super) fn check_campaign(
        &self,
        input: &CampaignDraft,
    ) -> Result<(Vec<SegmentId>, HoldoutShare, Offer), ServiceError> {
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(ServiceError::field(
                "name",
                "name must be 1 to 200 characters",
            ));
        }
        let audience = audience_of(&input.audience)?;
        let starts = ServiceError::bounded_instant("starts_at", input.starts_at)?;
        let ends = ServiceError::bounded_instant("ends_at", input.ends_at)?;
        if ends <= starts {
            return Err(ServiceError::field(
                "ends_at",
                "ends_at must be after starts_at",
            ));
        }
        if ends - starts > chrono::Duration::days(366) {
            return Err(ServiceError::field(
                "ends_at",
                "a campaign lasts at most 366 days",
            ));
        }
        let offer = input
            .offer
            .decide(self.ctx.program.currency)
            .map_err(|(f, e)| ServiceError::invalid(&format!("offer.{f}"), e))?;
        use crate::domain::bounds::{CAMPAIGN_BUDGET_POINTS, CAMPAIGN_PER_MEMBER_LIMIT};
        if input
            .per_member_limit
            .is_some_and(|l| !CAMPAIGN_PER_MEMBER_LIMIT.contains(i64::from(l)))
        {
            return Err(ServiceError::field(
                "per_member_limit",
                format!(
                    "per_member_limit must be {CAMPAIGN_PER_MEMBER_LIMIT}, or null for no limit"
                ),
            ));
        }
        if !CAMPAIGN_BUDGET_POINTS.contains(input.budget_points.0) {
            return Err(ServiceError::field(
                "budget_points",
                format!("budget_points must be {CAMPAIGN_BUDGET_POINTS}"),
            ));
        }
        let holdout = match &input.holdout_percent {
            None => HoldoutShare::DEFAULT,
            Some(n) => HoldoutShare::try_from(serde_json::Value::Number(n.clone()))
                .map_err(|e| ServiceError::invalid("holdout_percent", e))?,
        };
        Ok((audience, holdout, offer))
    }

    /// Creates or replaces a draft; `true` when created. A launched campaign cannot change.
    #[tracing::instrument(skip_all, fields(campaign = %id))]
    pub async fn put_campaign(
        &self,
        id: &CampaignId,
        input: CampaignDraft,
        actor: &Actor,
    ) -> Result<(CampaignView, bool), ServiceError> {
        let (audience, holdout, offer) = self.check_campaign(&input)?;
        retrying!(
            self.ctx,
            self.try_put_campaign(id, &input, (&audience, holdout, &offer), actor)
        )
    }

    pub(super) async fn try_put_campaign(
        &self,
        id: &CampaignId,
        input: &CampaignDraft,
        (audience, holdout, offer): (&[SegmentId], HoldoutShare, &Offer),
        actor: &Actor,
    ) -> Result<(CampaignView, bool), ServiceError> {
        let now = self.ctx.now();
        let existing = self.ctx.table.get::<Campaign>(id).await?;
        if existing
            .as_ref()
            .is_some_and(|e| e.value.status != CampaignStatus::Draft)
        {
            return Err(ServiceError::CampaignLaunched);
        }
        let c = Campaign {
            id: id.clone(),
            name: input.name.trim().to_owned(),
            audience: audience.to_vec(),
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            offer: offer.clone(),
            per_member_limit: input.per_member_limit,
            budget_points: input.budget_points,
            holdout_percent: holdout,
            status: CampaignStatus::Draft,
            audience_size: None,
            awarded: Points::ZERO,
            slices: 0,
            created_at: existing.as_ref().map_or(now, |e| e.value.created_at),
            updated_at: now,
            launched_at: None,
            ended_at: None,
        };
        let mut batch = Batch::new();
        batch.save(id, &c, existing.as_ref().map(|e| e.version))?;
        let audited = Audited {
            action: AuditAction::CampaignDrafted,
            member: None,
            target: Some(id.to_string()),
            changes: changes(
                existing.as_ref().map(|e| &e.value),
                &c,
                &["created_at", "updated_at"],
            ),
        };
        self.ctx.audit(&mut batch, Some(actor), audited, now)?;
        self.ctx.table.commit(batch).await?;
        Ok((c.view(now), existing.is_none()))
    }

    #[tracing::instrument(skip_all, fields(campaign = %id))]
    pub async fn campaign(&self, id: &CampaignId) -> Result<CampaignView, ServiceError> {
        let c = self
            .ctx
            .table
            .get::<Campaign>(id)
            .await?
            .ok_or(ServiceError::NotFound("campaign"))?;
        let c = self.with_awarded(vec![c.value]).await?;
        Ok(c[0].view(self.ctx.now()))
    }

    /// Campaigns, newest first.
    #[tracing::instrument(skip_all)]
    pub async fn campaigns(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<CampaignView>, Option<String>), ServiceError> {
        let now = self.ctx.now();
        let (items, next) = self.ctx.table.campaigns(limit, cursor).await?;
        let items = self.with_awarded(items).await?;
        Ok((items.iter().map(|c| c.view(now)).collect(), next))
    }

    /// A member's part in campaigns, newest campaign first: one page of campaigns, then the
    /// member and their assignment in each launched one in one batched read (two round trips).
    /// A page holds only the campaigns the member is in, so it may be shorter than `limit` while
    /// `next` still points further.
    #[tracing::instrument(skip_all, fields(member = %member))]
    pub async fn member_campaigns(
        &self,
        member: &MemberId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<MemberCampaign>, Option<String>), ServiceError> {
        let now = self.ctx.now();
        let (campaigns, next) = self.ctx.table.campaigns(limit, cursor).await?;
        let mut reads = Reads::new();
        let member_slot = reads.add::<Member>(member);
        let launched: Vec<(&Campaign, Slot<Assignment>)> = campaigns
            .iter()
            .filter(|c| c.launched_at.is_some())
            .map(|c| (c, reads.add::<Assignment>(&(c.id.clone(), member.clone()))))
            .collect();
        let got = self.ctx.table.read(&reads).await?;
        if got.get(&member_slot)?.is_none() {
            return Err(ServiceError::NotFound("member"));
        }
        let mut out = Vec::new();
        for (c, slot) in launched {
            if let Some(a) = got.get(&slot)? {
                let a = a.value;
                out.push(MemberCampaign {
                    campaign_id: c.id.clone(),
                    name: c.name.clone(),
                    status: c.status_at(now),
                    group: a.group,
                    purchases: a.purchases,
                    spend: Money {
                        value: a.spend,
                        currency: self.ctx.program.currency,
                    },
                    awards: a.awards,
                    points_awarded: a.points,
                });
            }
        }
        Ok((out, next))
    }
}

/// A draft's audience: 1 to 10 known segments, each once.
fn audience_of(raw: &[String]) -> Result<Vec<SegmentId>, ServiceError> {
    if raw.is_empty() || raw.len() > 10 {
        return Err(ServiceError::field(
            "audience",
            "audience must list 1 to 10 segments",
        ));
    }
    let mut audience = Vec::new();
    for (i, id) in raw.iter().enumerate() {
        let s = SegmentId::parse(id).ok_or_else(|| {
            ServiceError::field(
                &format!("audience[{i}]"),
                format!(
                    "unknown segment {id:?}; GET /v1/segments lists them (lifecycle:dormant, value:at_risk, tier:gold …)"
                ),
            )
        })?;
        if !audience.contains(&s) {
            audience.push(s);
        }
    }
    Ok(audience)
}
