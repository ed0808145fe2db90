//! Ending a campaign, and its measured results: each group's outcomes, the uplift and its
//! interval, and the points awarded.

use super::{CampaignResults, CampaignView, GroupResult, Uplift};
use crate::domain::audit::{Actor, AuditAction, Change};
use crate::domain::campaign::{Campaign, CampaignStatus, RunningCampaigns};
use crate::domain::campaign::{Effect, MemberOutcome, effect, minor, rate4, tally};
use crate::domain::{CampaignId, Points};
use crate::retrying;
use crate::service::Campaigns;
use crate::service::audit::Audited;
use crate::service::error::ServiceError;
use crate::service::members::money;
use crate::table::{Batch, BudgetSlice, Reads, Slot};

impl Campaigns {
    /// Stops awarding now. Ending an ended campaign answers it again.
    #[tracing::instrument(skip_all, fields(campaign = %id))]
    pub async fn end_campaign(
        &self,
        id: &CampaignId,
        actor: &Actor,
    ) -> Result<CampaignView, ServiceError> {
        retrying!(self.ctx, self.try_end_campaign(id, actor))
    }

    pub(super) async fn try_end_campaign(
        &self,
        id: &CampaignId,
        actor: &Actor,
    ) -> Result<CampaignView, ServiceError> {
        let now = self.ctx.now();
        let (current, registry) = self.read_with_registry(id).await?;
        let mut c = current.value;
        match c.status {
            CampaignStatus::Draft | CampaignStatus::Launching => {
                return Err(ServiceError::CampaignNotRunning);
            }
            CampaignStatus::Ended => return Ok(self.with_awarded(vec![c]).await?[0].view(now)),
            CampaignStatus::Running => {}
        }
        c.status = CampaignStatus::Ended;
        c.ended_at = Some(now.min(c.ends_at));
        c.updated_at = now;
        let mut batch = Batch::new();
        batch.save(id, &c, Some(current.version))?;
        if let Some(r) = registry {
            let running: Vec<_> = r
                .value
                .running
                .into_iter()
                .filter(|e| &e.id != id)
                .collect();
            batch.save_replicas(&RunningCampaigns { running }, Some(r.version))?;
        }
        let audited = Audited {
            action: AuditAction::CampaignEnded,
            member: None,
            target: Some(id.to_string()),
            changes: vec![Change::new(
                "status",
                CampaignStatus::Running,
                CampaignStatus::Ended,
            )],
        };
        self.ctx.audit(&mut batch, Some(actor), audited, now)?;
        self.ctx.table.commit(batch).await?;
        Ok(self.with_awarded(vec![c]).await?[0].view(now))
    }

    /// The measured effect, from the assignments (one item per audience member).
    #[tracing::instrument(skip_all, fields(campaign = %id))]
    pub async fn campaign_results(&self, id: &CampaignId) -> Result<CampaignResults, ServiceError> {
        let now = self.ctx.now();
        let c = self
            .ctx
            .table
            .get::<Campaign>(id)
            .await?
            .ok_or(ServiceError::NotFound("campaign"))?
            .value;
        if matches!(c.status, CampaignStatus::Draft | CampaignStatus::Launching) {
            return Err(ServiceError::CampaignNotRunning);
        }
        let c = self.with_awarded(vec![c]).await?.remove(0);
        let outcomes: Vec<MemberOutcome> = self
            .ctx
            .table
            .assignments(id)
            .await?
            .iter()
            .map(|a| a.value.outcome())
            .collect();
        let (t, h) = tally(&outcomes);
        let e: Effect = effect(&t, &h);
        let cur = self.ctx.program.currency;
        let m = |x: f64| money(minor(x), cur);
        let group = |g: &crate::domain::campaign::GroupTally, points: Option<Points>| GroupResult {
            members: g.members,
            converted: g.converted,
            conversion_rate: g.conversion_rate().map(rate4),
            spend: money(i64::try_from(g.spend).unwrap_or(i64::MAX), cur),
            spend_per_member: g.mean_spend().map(m),
            points_awarded: points,
        };
        Ok(CampaignResults {
            campaign_id: c.id.clone(),
            status: c.status_at(now),
            as_of: now,
            treatment: group(&t, Some(Points(t.points))),
            holdout: group(&h, None),
            uplift: Uplift {
                conversion_rate: e.conversion_uplift.map(rate4),
                conversion_rate_ci95: e.conversion_ci95.map(|(a, b)| [rate4(a), rate4(b)]),
                spend_per_member: e.spend_uplift.map(m),
                spend_per_member_ci95: e.spend_ci95.map(|(a, b)| [m(a), m(b)]),
                incremental_spend: e.incremental_spend.map(m),
            },
            budget: c.budget(),
            verdict: e.verdict,
        })
    }

    // ---- the purchase path

    /// Every slice of each campaign's budget, in one read: the points awarded so far.
    pub(crate) async fn awarded(&self, cs: &[&Campaign]) -> Result<Vec<Points>, ServiceError> {
        let mut reads = Reads::new();
        let slots: Vec<Vec<Slot<BudgetSlice>>> = cs
            .iter()
            .map(|c| {
                (0..c.slices)
                    .map(|n| reads.add::<BudgetSlice>(&(c.id.clone(), n)))
                    .collect()
            })
            .collect();
        if slots.iter().all(Vec::is_empty) {
            return Ok(cs.iter().map(|c| c.awarded).collect());
        }
        let found = self.ctx.table.read(&reads).await?;
        cs.iter()
            .zip(slots)
            .map(|(c, slots)| {
                if slots.is_empty() {
                    return Ok(c.awarded);
                }
                let mut sum = 0i64;
                for slot in &slots {
                    sum += found.get(slot)?.map_or(0, |v| v.value.0.used);
                }
                Ok(Points(sum))
            })
            .collect()
    }

    /// The campaigns with what their budgets awarded filled in, for showing.
    pub(super) async fn with_awarded(
        &self,
        mut cs: Vec<Campaign>,
    ) -> Result<Vec<Campaign>, ServiceError> {
        let awarded = self.awarded(&cs.iter().collect::<Vec<_>>()).await?;
        for (c, a) in cs.iter_mut().zip(awarded) {
            c.awarded = a;
        }
        Ok(cs)
    }
}
