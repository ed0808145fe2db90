//! The launch: a lease on the campaign, the audience snapshot from the segment indexes written
//! in chunks (each member's group by the SHA-256 rule), a `campaign.joined` event for each
//! audience member, and the campaign marked running.

use super::{
    ANNOUNCE_CONCURRENCY, AssignmentWrite, CampaignView, LAUNCH_CHUNK, LAUNCH_CONCURRENCY,
    LAUNCH_LEASE, MAX_RUNNING, fresh, pruned,
};
use crate::domain::audit::{Actor, AuditAction, Change};
use crate::domain::campaign::{
    Assignment, AudienceSize, Campaign, CampaignStatus, RunningCampaigns, RunningEntry,
};
use crate::domain::campaign::{Group, group_of};
use crate::domain::event::{EventData, Joined};
use crate::domain::member::Member;
use crate::domain::slices;
use crate::domain::{CampaignId, MemberId};
use crate::retrying;
use crate::service::Campaigns;
use crate::service::audit::Audited;
use crate::service::error::ServiceError;
use crate::service::unit::MemberWrite;
use crate::table::{
    BUDGET_SLICES, Batch, BudgetSlice, MemberIndex, POINTS_PER_BUDGET_SLICE, Reads, Slice,
};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};

impl Campaigns {
    /// Snapshots the audience, assigns the groups and starts awarding. Resumable: a launch that
    /// died half-way is finished by the next launch call, which also corrects what it wrote.
    #[tracing::instrument(skip_all, fields(campaign = %id))]
    pub async fn launch_campaign(
        &self,
        id: &CampaignId,
        actor: &Actor,
    ) -> Result<CampaignView, ServiceError> {
        let (campaign, version) = retrying!(self.ctx, self.try_claim_launch(id))?;
        let mut members = BTreeSet::new();
        for s in &campaign.audience {
            let mut after = None;
            loop {
                let page = self
                    .ctx
                    .table
                    .members_in(&MemberIndex::Segment(*s), after)
                    .await?;
                members.extend(page.items);
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
        let groups: BTreeMap<MemberId, Group> = members
            .into_iter()
            .map(|m| {
                let g = group_of(id, &m, campaign.holdout_percent);
                (m, g)
            })
            .collect();
        self.write_assignments(id, version, &groups).await?;
        self.announce(&campaign, groups.keys().cloned().collect())
            .await?;
        let size = AudienceSize {
            treatment: groups.values().filter(|g| **g == Group::Treatment).count() as u64,
            holdout: groups.values().filter(|g| **g == Group::Holdout).count() as u64,
        };
        retrying!(self.ctx, self.try_finish_launch(id, version, size, actor))
    }

    pub(super) fn check_room(
        &self,
        registry: &RunningCampaigns,
        now: DateTime<Utc>,
    ) -> Result<Vec<RunningEntry>, ServiceError> {
        let kept = pruned(registry, now, self.ctx.program.purchase_max_age_days);
        if kept.len() >= MAX_RUNNING {
            return Err(ServiceError::TooManyCampaigns { max: MAX_RUNNING });
        }
        Ok(kept)
    }

    pub(super) async fn try_claim_launch(
        &self,
        id: &CampaignId,
    ) -> Result<(Campaign, u64), ServiceError> {
        let now = self.ctx.now();
        let (current, registry) = self.read_with_registry(id).await?;
        let mut c = current.value;
        if matches!(c.status, CampaignStatus::Running | CampaignStatus::Ended) {
            return Err(ServiceError::CampaignLaunched);
        }
        // Another launch holds it: only one launches at a time. One cut off (its process
        // gone) is taken over once its claim is older than the lease.
        if c.status == CampaignStatus::Launching && now < c.updated_at + LAUNCH_LEASE {
            return Err(ServiceError::CampaignLaunched);
        }
        if now >= c.ends_at {
            return Err(ServiceError::field(
                "ends_at",
                "the campaign's window is over; move ends_at to launch it",
            ));
        }
        self.check_room(&registry.map(|r| r.value).unwrap_or_default(), now)?;
        c.status = CampaignStatus::Launching;
        c.updated_at = now;
        let mut batch = Batch::new();
        batch.save(id, &c, Some(current.version))?;
        self.ctx.table.commit(batch).await?;
        Ok((c, current.version + 1))
    }

    /// Makes the stored assignments exactly `groups`: adds the missing, removes what an earlier,
    /// interrupted launch left that is no longer in the audience. Every transaction checks the
    /// campaign is still at the claimed version, so a launch that was taken over writes nothing.
    pub(super) async fn write_assignments(
        &self,
        id: &CampaignId,
        version: u64,
        groups: &BTreeMap<MemberId, Group>,
    ) -> Result<(), ServiceError> {
        let existing = self.ctx.table.assignments(id).await?;
        let mut writes: Vec<AssignmentWrite> = Vec::new();
        let mut seen = BTreeSet::new();
        for a in existing {
            let member = a.value.member_id.clone();
            match groups.get(&member) {
                Some(g) if *g == a.value.group => {}
                Some(g) => writes.push((member.clone(), Some(fresh(&member, *g)), Some(a.version))),
                None => writes.push((member.clone(), None, Some(a.version))),
            }
            seen.insert(member);
        }
        for (member, g) in groups {
            if !seen.contains(member) {
                writes.push((member.clone(), Some(fresh(member, *g)), None));
            }
        }
        let chunks: Vec<Vec<AssignmentWrite>> =
            writes.chunks(LAUNCH_CHUNK).map(<[_]>::to_vec).collect();
        let results: Vec<Result<(), ServiceError>> = futures::stream::iter(chunks)
            .map(|chunk| self.commit_assignments(id, version, chunk))
            .buffer_unordered(LAUNCH_CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// One `campaign.joined` event per audience member, each in the member's own commit with
    /// their assignment marked announced, so a resumed launch announces only the rest.
    pub(super) async fn announce(
        &self,
        campaign: &Campaign,
        members: Vec<MemberId>,
    ) -> Result<(), ServiceError> {
        let results: Vec<Result<(), ServiceError>> = futures::stream::iter(members)
            .map(|m| async move { retrying!(self.ctx, self.try_announce(campaign, &m)) })
            .buffer_unordered(ANNOUNCE_CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn try_announce(&self, c: &Campaign, member: &MemberId) -> Result<(), ServiceError> {
        let mut reads = Reads::new();
        let m = reads.add::<Member>(member);
        let key = (c.id.clone(), member.clone());
        let a = reads.add::<Assignment>(&key);
        let found = self.ctx.table.read(&reads).await?;
        // Erased since the snapshot, or announced by an earlier try: nothing to tell.
        let (Some(m), Some(a)) = (found.get(&m)?, found.get(&a)?) else {
            return Ok(());
        };
        if a.value.announced || m.value.erased_at.is_some() {
            return Ok(());
        }
        let mut w = MemberWrite::on(&self.ctx, &m, self.ctx.now());
        let group = a.value.group;
        w.journal.note(EventData::CampaignJoined(Joined {
            campaign_id: c.id.clone(),
            group,
            offer: (group == Group::Treatment).then(|| c.offer.clone()),
            starts_at: c.starts_at,
            ends_at: c.ends_at,
        }));
        let announced = Assignment {
            announced: true,
            ..a.value
        };
        w.batch.save(&key, &announced, Some(a.version))?;
        w.commit(&self.ctx).await?;
        Ok(())
    }

    pub(super) async fn commit_assignments(
        &self,
        id: &CampaignId,
        version: u64,
        chunk: Vec<AssignmentWrite>,
    ) -> Result<(), ServiceError> {
        retrying!(self.ctx, async {
            let mut batch = Batch::new();
            batch
                .check::<Campaign>(id, version)
                .or_refuse(|| ServiceError::CampaignLaunched);
            for (member, a, prior) in &chunk {
                let key = (id.clone(), member.clone());
                match (a, prior) {
                    (Some(a), prior) => {
                        batch.save(&key, a, *prior)?;
                    }
                    (None, Some(v)) => {
                        batch.delete::<Assignment>(&key, *v);
                    }
                    (None, None) => {}
                }
            }
            self.ctx.table.commit(batch).await
        })
    }

    pub(super) async fn try_finish_launch(
        &self,
        id: &CampaignId,
        version: u64,
        size: AudienceSize,
        actor: &Actor,
    ) -> Result<CampaignView, ServiceError> {
        let now = self.ctx.now();
        let (current, registry) = self.read_with_registry(id).await?;
        if current.version != version {
            return Err(ServiceError::CampaignLaunched);
        }
        let mut running = self.check_room(
            registry
                .as_ref()
                .map(|r| &r.value)
                .unwrap_or(&RunningCampaigns::default()),
            now,
        )?;
        let mut c = current.value;
        c.launched(size, now, POINTS_PER_BUDGET_SLICE, BUDGET_SLICES);
        running.push(RunningEntry {
            id: id.clone(),
            ends_at: c.ends_at,
        });
        let mut batch = Batch::new();
        batch.save(id, &c, Some(version))?;
        batch.save_replicas(
            &RunningCampaigns { running },
            registry.as_ref().map(|r| r.version),
        )?;
        for (n, cap) in slices::caps(c.budget_points.0, c.slices)
            .into_iter()
            .enumerate()
        {
            let slice = BudgetSlice(Slice { cap, used: 0 });
            batch.put(&(id.clone(), n as u32), &slice)?;
        }
        // Recorded by the call that finishes the launch (a resumed launch names its resumer).
        let audited = Audited {
            action: AuditAction::CampaignLaunched,
            member: None,
            target: Some(id.to_string()),
            changes: vec![
                Change::new("status", CampaignStatus::Launching, CampaignStatus::Running),
                Change::to("audience_size", size),
            ],
        };
        self.ctx.audit(&mut batch, Some(actor), audited, now)?;
        self.ctx.table.commit(batch).await?;
        Ok(c.view(now))
    }
}
