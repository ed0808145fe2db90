//! Campaigns (DESIGN.md "Campaigns"): drafts, the launch (an audience snapshot from the segment
//! indexes, each member's group by the SHA-256 rule), the end, the measured results; and the part
//! of a purchase or refund that plays the running campaigns.
//!
//! A purchase finds the running campaigns in its member's copy of the registry, and each
//! campaign's budget slice and the member's assignment by key, all in the purchase's one batch
//! read: this process remembers the running campaigns' definitions (fixed once launched), and
//! reads a campaign's item only the first time it sees it in the registry. The budget is split
//! into slices (`domain::slices`, DESIGN.md "Scale"); an award takes from its member's slice in
//! place (`Write::Take`), borrowing from the others (one more read) only when that one is short,
//! so awards never exceed the budget under any concurrency and no one item takes every award.
//! Each member's outcome (purchases, net spend, points) lives on their assignment, so results
//! read one item per audience member, never the purchases.

use super::Services;
use super::audit::Audited;
use super::error::ServiceError;
use super::events::Journal;
use super::members::money;
use super::unit::MemberWrite;
use crate::domain::audit::{Actor, AuditAction, Change, changes};
pub use crate::domain::campaign::{
    Assignment, AudienceSize, Campaign, CampaignCredit, CampaignStatus, RunningCampaigns,
    RunningEntry,
};
use crate::domain::campaign::{
    Effect, Group, HoldoutShare, MemberOutcome, Offer, OfferInput, PurchaseFacts, Verdict, cut,
    effect, group_of, in_window, minor, offered, rate4, tally,
};
use crate::domain::event::{Awarded, EventData, Reversal, Reversed};
use crate::domain::ledger::LedgerEntry;
use crate::domain::ledger::LedgerKind;
use crate::domain::member::Member;
use crate::domain::receipt::{PurchaseRef, RefundRef};
use crate::domain::segment::SegmentId;
use crate::domain::slices;
use crate::domain::spend::refund_reversal;
use crate::domain::{CampaignId, MemberId, Money, Points};
use crate::retrying;
use crate::table::{
    BUDGET_SLICES, Batch, BudgetSlice, Fetched, MemberIndex, POINTS_PER_BUDGET_SLICE, Reads,
    Replica, Slice, Slot, Versioned, shard_of,
};
use chrono::{DateTime, FixedOffset, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;
use utoipa::ToSchema;

/// At most this many campaigns hold a place in the registry at once: a purchase reads two items
/// per campaign in its one batch read (at most 4 + 2 × 10 items).
pub const MAX_RUNNING: usize = 10;

/// How long a launch's claim keeps other launches out: far longer than a launch over the
/// largest segment takes (DESIGN.md "Scale": two million members in about two minutes).
const LAUNCH_LEASE: chrono::Duration = chrono::Duration::minutes(15);

/// Launch writes assignments in transactions of this many items (plus the campaign check), a
/// few at once.
const LAUNCH_CHUNK: usize = 99;
const LAUNCH_CONCURRENCY: usize = 4;

impl Campaign {
    /// A running campaign whose window has closed is over, whether or not anyone ended it.
    fn status_at(&self, now: DateTime<Utc>) -> CampaignStatus {
        match self.status {
            CampaignStatus::Running if now >= self.ends_at => CampaignStatus::Ended,
            s => s,
        }
    }

    /// The budget slice a member's awards take from first.
    fn home_of(&self, m: &MemberId) -> u32 {
        shard_of(m, self.slices.max(1))
    }

    fn budget(&self) -> Budget {
        Budget {
            points: self.budget_points,
            awarded: self.awarded,
            remaining: Points((self.budget_points.0 - self.awarded.0).max(0)),
        }
    }

    fn view(&self, now: DateTime<Utc>) -> CampaignView {
        CampaignView {
            id: self.id.clone(),
            name: self.name.clone(),
            audience: self.audience.iter().map(ToString::to_string).collect(),
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            offer: self.offer.clone(),
            per_member_limit: self.per_member_limit,
            budget_points: self.budget_points,
            holdout_percent: serde_json::Value::from(self.holdout_percent),
            status: self.status_at(now),
            audience_size: self.audience_size,
            budget: self.budget(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            launched_at: self.launched_at,
            ended_at: self
                .ended_at
                .or_else(|| (self.status_at(now) == CampaignStatus::Ended).then_some(self.ends_at)),
        }
    }
}

/// A draft, as `PUT /v1/campaigns/{id}` takes it.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Win back dormant members", "audience": ["lifecycle:dormant", "value:at_risk"],
    "starts_at": "2027-01-01T00:00:00Z", "ends_at": "2027-02-01T00:00:00Z",
    "offer": {"kind": "multiplier", "multiplier": 2.0, "categories": ["drinks"]},
    "per_member_limit": 1, "budget_points": 100000, "holdout_percent": 10}))]
pub struct CampaignInput {
    /// 1 to 200 characters.
    pub name: String,
    /// 1 to 10 segment ids (`lifecycle:dormant`, `value:at_risk`, `tier:gold` …): the audience is
    /// every member in any of them at launch.
    pub audience: Vec<String>,
    pub starts_at: DateTime<FixedOffset>,
    /// After `starts_at`, at most 366 days later.
    pub ends_at: DateTime<FixedOffset>,
    pub offer: OfferInput,
    /// Awards per member, 1 to 1000; absent or null: no limit.
    pub per_member_limit: Option<u32>,
    /// 1 to 1,000,000,000: awards never exceed it in total.
    pub budget_points: Points,
    /// 0 to 50 (at most 2 decimals); default 10.
    #[schema(value_type = Option<f64>, example = 10)]
    pub holdout_percent: Option<serde_json::Number>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct Budget {
    pub points: Points,
    /// Points awarded so far (a refund's reversal does not return them).
    pub awarded: Points,
    pub remaining: Points,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": "win-back-dormant", "name": "Win back dormant members",
    "audience": ["lifecycle:dormant"], "starts_at": "2027-01-01T00:00:00Z", "ends_at": "2027-02-01T00:00:00Z",
    "offer": {"kind": "bonus", "points": 200, "min_spend": {"value": 2000, "currency": "USD"}},
    "per_member_limit": 1, "budget_points": 100000, "holdout_percent": 20, "status": "running",
    "audience_size": {"treatment": 802, "holdout": 198},
    "budget": {"points": 100000, "awarded": 3400, "remaining": 96600},
    "created_at": "2026-12-20T09:00:00Z", "updated_at": "2026-12-31T09:00:00Z",
    "launched_at": "2026-12-31T09:00:00Z", "ended_at": null}))]
pub struct CampaignView {
    pub id: CampaignId,
    pub name: String,
    pub audience: Vec<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub offer: Offer,
    pub per_member_limit: Option<u32>,
    pub budget_points: Points,
    #[schema(value_type = f64)]
    pub holdout_percent: serde_json::Value,
    /// `draft`, `launching` (a launch is writing the audience), `running` or `ended` (ended by
    /// `POST …/end`, or its window closed).
    pub status: CampaignStatus,
    /// Set at launch.
    pub audience_size: Option<AudienceSize>,
    pub budget: Budget,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub launched_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupResult {
    pub members: u64,
    /// Members with at least one purchase in the window that is not fully refunded.
    pub converted: u64,
    /// `null` for an empty group.
    pub conversion_rate: Option<f64>,
    /// Net spend in the window (refunds subtracted).
    pub spend: Money,
    pub spend_per_member: Option<Money>,
    /// Treatment only: points awarded, net of refund reversals.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points_awarded: Option<Points>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Uplift {
    pub conversion_rate: Option<f64>,
    /// Wald 95 % interval; `null` while a group is empty.
    pub conversion_rate_ci95: Option<[f64; 2]>,
    pub spend_per_member: Option<Money>,
    /// Welch 95 % interval; `null` while a group has fewer than 2 members.
    pub spend_per_member_ci95: Option<[Money; 2]>,
    pub incremental_spend: Option<Money>,
}

/// A member's assignment in one campaign (`GET /v1/members/{id}/campaigns`): operators only, so a
/// member never learns they are in a holdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"campaign_id": "winback", "name": "Win back dormant members", "status": "running",
    "group": "treatment", "purchases": 2, "spend": {"value": 4500, "currency": "USD"}, "awards": 1, "points_awarded": 45}))]
pub struct MemberCampaign {
    pub campaign_id: CampaignId,
    pub name: String,
    pub status: CampaignStatus,
    pub group: Group,
    /// Purchases in the campaign's window, not fully refunded.
    pub purchases: u32,
    /// Net spend in the window.
    pub spend: Money,
    pub awards: u32,
    /// Net of refund reversals.
    pub points_awarded: Points,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"campaign_id": "win-back-dormant", "status": "running", "as_of": "2027-01-20T12:00:00Z",
    "treatment": {"members": 900, "converted": 180, "conversion_rate": 0.2,
                  "spend": {"value": 1800000, "currency": "USD"}, "spend_per_member": {"value": 2000, "currency": "USD"}, "points_awarded": 36000},
    "holdout": {"members": 100, "converted": 12, "conversion_rate": 0.12,
                "spend": {"value": 120000, "currency": "USD"}, "spend_per_member": {"value": 1200, "currency": "USD"}},
    "uplift": {"conversion_rate": 0.08, "conversion_rate_ci95": [0.012, 0.148],
               "spend_per_member": {"value": 800, "currency": "USD"},
               "spend_per_member_ci95": [{"value": 10, "currency": "USD"}, {"value": 1590, "currency": "USD"}],
               "incremental_spend": {"value": 720000, "currency": "USD"}},
    "budget": {"points": 100000, "awarded": 36000, "remaining": 64000},
    "verdict": "effective"}))]
pub struct CampaignResults {
    pub campaign_id: CampaignId,
    pub status: CampaignStatus,
    pub as_of: DateTime<Utc>,
    pub treatment: GroupResult,
    pub holdout: GroupResult,
    pub uplift: Uplift,
    pub budget: Budget,
    /// `effective` if the conversion interval's lower bound is above 0, `ineffective` if its upper
    /// bound is below 0, else `inconclusive`.
    pub verdict: Verdict,
}

impl Assignment {
    fn outcome(&self) -> MemberOutcome {
        MemberOutcome {
            group: self.group,
            purchases: self.purchases,
            spend: self.spend,
            points: self.points.0,
        }
    }
}

/// What this process knows of the running campaigns: their definitions (fixed while running)
/// and which budgets it has seen used up (a running budget never grows).
#[derive(Default, Debug)]
pub struct RunningCache(RwLock<BTreeMap<CampaignId, Known>>);

#[derive(Clone, Debug)]
struct Known {
    campaign: Campaign,
    exhausted: bool,
}

impl RunningCache {
    fn known(&self) -> BTreeMap<CampaignId, Known> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn keep_only(&self, running: &[CampaignId]) {
        // Every purchase calls this; the write lock only when a campaign has stopped running.
        let stale = self
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .any(|id| !running.contains(id));
        if stale {
            self.0
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|id, _| running.contains(id));
        }
    }
    fn learn(&self, c: &Campaign) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(c.id.clone())
            .or_insert_with(|| Known {
                campaign: c.clone(),
                exhausted: false,
            });
    }
    fn exhausted(&self, id: &CampaignId) {
        if let Some(k) = self
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id)
        {
            k.exhausted = true;
        }
    }
}

/// The slots a purchase added to its batch read.
pub(crate) struct CampaignReads {
    registry: Slot<RunningCampaigns>,
    member: MemberId,
    slots: Vec<(Known, Option<Slot<BudgetSlice>>, Slot<Assignment>)>,
}

/// An assignment to put (`Some`) or delete (`None`), and the version it was read at.
type AssignmentWrite = (MemberId, Option<Assignment>, Option<u64>);

/// A running campaign the member is in.
#[derive(Clone)]
pub(crate) struct Play {
    campaign: Campaign,
    /// The budget slices read, with their number: the member's own, or all of them after a
    /// purchase found its own short.
    slices: Vec<(u32, Slice)>,
    /// Whether `slices` is every slice (or the budget is known used up: no slice at all).
    complete: bool,
    assignment: Versioned<Assignment>,
}

impl Play {
    pub(crate) fn campaign_id(&self) -> &CampaignId {
        &self.campaign.id
    }
    fn home(&self) -> u32 {
        shard_of(
            &self.assignment.value.member_id,
            self.campaign.slices.max(1),
        )
    }
}

fn reference(id: &CampaignId) -> String {
    format!("campaign:{id}")
}

fn pruned(r: &RunningCampaigns, now: DateTime<Utc>, late_days: u32) -> Vec<RunningEntry> {
    r.running
        .iter()
        .filter(|e| e.ends_at + chrono::Duration::days(i64::from(late_days)) > now)
        .cloned()
        .collect()
}

impl Services {
    fn check_campaign(
        &self,
        input: &CampaignInput,
    ) -> Result<(Vec<SegmentId>, HoldoutShare, Offer), ServiceError> {
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(ServiceError::field(
                "name",
                "name must be 1 to 200 characters",
            ));
        }
        if input.audience.is_empty() || input.audience.len() > 10 {
            return Err(ServiceError::field(
                "audience",
                "audience must list 1 to 10 segments",
            ));
        }
        let mut audience = Vec::new();
        for (i, raw) in input.audience.iter().enumerate() {
            let s = SegmentId::parse(raw).ok_or_else(|| {
                ServiceError::field(
                    &format!("audience[{i}]"),
                    format!(
                        "unknown segment {raw:?}; GET /v1/segments lists them (lifecycle:dormant, value:at_risk, tier:gold …)"
                    ),
                )
            })?;
            if !audience.contains(&s) {
                audience.push(s);
            }
        }
        let starts = ServiceError::bounded_instant("starts_at", input.starts_at.to_utc())?;
        let ends = ServiceError::bounded_instant("ends_at", input.ends_at.to_utc())?;
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
            .decide(self.program.currency)
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
        input: CampaignInput,
        actor: &Actor,
    ) -> Result<(CampaignView, bool), ServiceError> {
        let (audience, holdout, offer) = self.check_campaign(&input)?;
        retrying!(
            self,
            self.try_put_campaign(id, &input, (&audience, holdout, &offer), actor)
        )
    }

    async fn try_put_campaign(
        &self,
        id: &CampaignId,
        input: &CampaignInput,
        (audience, holdout, offer): (&[SegmentId], HoldoutShare, &Offer),
        actor: &Actor,
    ) -> Result<(CampaignView, bool), ServiceError> {
        let now = self.now();
        let existing = self.table.get::<Campaign>(id).await?;
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
            starts_at: input.starts_at.to_utc(),
            ends_at: input.ends_at.to_utc(),
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
        self.audit(&mut batch, Some(actor), audited, now)?;
        self.table.commit(batch).await?;
        Ok((c.view(now), existing.is_none()))
    }

    #[tracing::instrument(skip_all, fields(campaign = %id))]
    pub async fn campaign(&self, id: &CampaignId) -> Result<CampaignView, ServiceError> {
        let c = self
            .table
            .get::<Campaign>(id)
            .await?
            .ok_or(ServiceError::NotFound("campaign"))?;
        let c = self.with_awarded(vec![c.value]).await?;
        Ok(c[0].view(self.now()))
    }

    /// Campaigns, newest first.
    #[tracing::instrument(skip_all)]
    pub async fn campaigns(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<CampaignView>, Option<String>), ServiceError> {
        let now = self.now();
        let (items, next) = self.table.campaigns(limit, cursor).await?;
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
        let now = self.now();
        let (campaigns, next) = self.table.campaigns(limit, cursor).await?;
        let mut reads = Reads::new();
        let member_slot = reads.add::<Member>(member);
        let launched: Vec<(&Campaign, Slot<Assignment>)> = campaigns
            .iter()
            .filter(|c| c.launched_at.is_some())
            .map(|c| (c, reads.add::<Assignment>(&(c.id.clone(), member.clone()))))
            .collect();
        let got = self.table.read(&reads).await?;
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
                        currency: self.program.currency,
                    },
                    awards: a.awards,
                    points_awarded: a.points,
                });
            }
        }
        Ok((out, next))
    }

    /// Snapshots the audience, assigns the groups and starts awarding. Resumable: a launch that
    /// died half-way is finished by the next launch call, which also corrects what it wrote.
    #[tracing::instrument(skip_all, fields(campaign = %id))]
    pub async fn launch_campaign(
        &self,
        id: &CampaignId,
        actor: &Actor,
    ) -> Result<CampaignView, ServiceError> {
        let (campaign, version) = retrying!(self, self.try_claim_launch(id))?;
        let mut members = BTreeSet::new();
        for s in &campaign.audience {
            let mut after = None;
            loop {
                let page = self
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
        let size = AudienceSize {
            treatment: groups.values().filter(|g| **g == Group::Treatment).count() as u64,
            holdout: groups.values().filter(|g| **g == Group::Holdout).count() as u64,
        };
        retrying!(self, self.try_finish_launch(id, version, size, actor))
    }

    fn check_room(
        &self,
        registry: &RunningCampaigns,
        now: DateTime<Utc>,
    ) -> Result<Vec<RunningEntry>, ServiceError> {
        let kept = pruned(registry, now, self.program.purchase_max_age_days);
        if kept.len() >= MAX_RUNNING {
            return Err(ServiceError::TooManyCampaigns { max: MAX_RUNNING });
        }
        Ok(kept)
    }

    async fn try_claim_launch(&self, id: &CampaignId) -> Result<(Campaign, u64), ServiceError> {
        let now = self.now();
        let mut reads = Reads::new();
        let campaign = reads.add::<Campaign>(id);
        let registry = reads.add::<RunningCampaigns>(&Replica::FIRST);
        let found = self.table.read(&reads).await?;
        let current = found
            .get(&campaign)?
            .ok_or(ServiceError::NotFound("campaign"))?;
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
        self.check_room(
            &found.get(&registry)?.map(|r| r.value).unwrap_or_default(),
            now,
        )?;
        c.status = CampaignStatus::Launching;
        c.updated_at = now;
        let mut batch = Batch::new();
        batch.save(id, &c, Some(current.version))?;
        self.table.commit(batch).await?;
        Ok((c, current.version + 1))
    }

    /// Makes the stored assignments exactly `groups`: adds the missing, removes what an earlier,
    /// interrupted launch left that is no longer in the audience. Every transaction checks the
    /// campaign is still at the claimed version, so a launch that was taken over writes nothing.
    async fn write_assignments(
        &self,
        id: &CampaignId,
        version: u64,
        groups: &BTreeMap<MemberId, Group>,
    ) -> Result<(), ServiceError> {
        let existing = self.table.assignments(id).await?;
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

    async fn commit_assignments(
        &self,
        id: &CampaignId,
        version: u64,
        chunk: Vec<AssignmentWrite>,
    ) -> Result<(), ServiceError> {
        retrying!(self, async {
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
            self.table.commit(batch).await
        })
    }

    async fn try_finish_launch(
        &self,
        id: &CampaignId,
        version: u64,
        size: AudienceSize,
        actor: &Actor,
    ) -> Result<CampaignView, ServiceError> {
        let now = self.now();
        let mut reads = Reads::new();
        let campaign = reads.add::<Campaign>(id);
        let registry = reads.add::<RunningCampaigns>(&Replica::FIRST);
        let found = self.table.read(&reads).await?;
        let current = found
            .get(&campaign)?
            .ok_or(ServiceError::NotFound("campaign"))?;
        if current.version != version {
            return Err(ServiceError::CampaignLaunched);
        }
        let registry = found.get(&registry)?;
        let mut running = self.check_room(
            registry
                .as_ref()
                .map(|r| &r.value)
                .unwrap_or(&RunningCampaigns::default()),
            now,
        )?;
        let mut c = current.value;
        c.status = CampaignStatus::Running;
        c.audience_size = Some(size);
        c.launched_at = Some(now);
        c.updated_at = now;
        running.push(RunningEntry {
            id: id.clone(),
            ends_at: c.ends_at,
        });
        c.slices = slices::count(c.budget_points.0, POINTS_PER_BUDGET_SLICE, BUDGET_SLICES);
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
        self.audit(&mut batch, Some(actor), audited, now)?;
        self.table.commit(batch).await?;
        Ok(c.view(now))
    }

    /// Stops awarding now. Ending an ended campaign answers it again.
    #[tracing::instrument(skip_all, fields(campaign = %id))]
    pub async fn end_campaign(
        &self,
        id: &CampaignId,
        actor: &Actor,
    ) -> Result<CampaignView, ServiceError> {
        retrying!(self, self.try_end_campaign(id, actor))
    }

    async fn try_end_campaign(
        &self,
        id: &CampaignId,
        actor: &Actor,
    ) -> Result<CampaignView, ServiceError> {
        let now = self.now();
        let mut reads = Reads::new();
        let campaign = reads.add::<Campaign>(id);
        let registry = reads.add::<RunningCampaigns>(&Replica::FIRST);
        let found = self.table.read(&reads).await?;
        let current = found
            .get(&campaign)?
            .ok_or(ServiceError::NotFound("campaign"))?;
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
        if let Some(r) = found.get(&registry)? {
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
        self.audit(&mut batch, Some(actor), audited, now)?;
        self.table.commit(batch).await?;
        Ok(self.with_awarded(vec![c]).await?[0].view(now))
    }

    /// The measured effect, from the assignments (one item per audience member).
    #[tracing::instrument(skip_all, fields(campaign = %id))]
    pub async fn campaign_results(&self, id: &CampaignId) -> Result<CampaignResults, ServiceError> {
        let now = self.now();
        let c = self
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
            .table
            .assignments(id)
            .await?
            .iter()
            .map(|a| a.value.outcome())
            .collect();
        let (t, h) = tally(&outcomes);
        let e: Effect = effect(&t, &h);
        let cur = self.program.currency;
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

    /// Adds the member's copy of the registry, and for each campaign this process knows to be
    /// running the member's budget slice (unless the budget is known used up) and assignment,
    /// to a purchase's batch read.
    pub(crate) fn campaign_reads(&self, reads: &mut Reads, member: &MemberId) -> CampaignReads {
        let registry = reads.add::<RunningCampaigns>(&Replica::of(member));
        let slots = self
            .campaigns
            .known()
            .into_values()
            .map(|k| {
                let slice = (!k.exhausted).then(|| {
                    let home = shard_of(member, k.campaign.slices.max(1));
                    reads.add::<BudgetSlice>(&(k.campaign.id.clone(), home))
                });
                let a = reads.add::<Assignment>(&(k.campaign.id.clone(), member.clone()));
                (k, slice, a)
            })
            .collect();
        CampaignReads {
            registry,
            member: member.clone(),
            slots,
        }
    }

    /// The running campaigns this member is in. Reads again only for campaigns this process did
    /// not know were running (the first purchase after a launch or a cold start).
    pub(crate) async fn campaign_plays(
        &self,
        found: &Fetched,
        r: CampaignReads,
    ) -> Result<Vec<Play>, ServiceError> {
        let running: Vec<CampaignId> = found
            .get(&r.registry)?
            .map(|v| v.value.running.into_iter().map(|e| e.id).collect())
            .unwrap_or_default();
        self.campaigns.keep_only(&running);
        let mut plays = Vec::new();
        let mut seen = BTreeSet::new();
        for (k, slice, a) in r.slots {
            if !running.contains(&k.campaign.id) {
                continue;
            }
            seen.insert(k.campaign.id.clone());
            let slices = match &slice {
                Some(slot) => found
                    .get(slot)?
                    .map(|v| vec![(k.campaign.home_of(&r.member), v.value.0)])
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            if let Some(assignment) = found.get(&a)? {
                plays.push(Play {
                    complete: k.exhausted,
                    campaign: k.campaign,
                    slices,
                    assignment,
                });
            }
        }
        let missing: Vec<&CampaignId> = running.iter().filter(|id| !seen.contains(*id)).collect();
        if !missing.is_empty() {
            let mut reads = Reads::new();
            let slots: Vec<_> = missing
                .iter()
                .map(|id| {
                    (
                        reads.add::<Campaign>(id),
                        reads.add::<Assignment>(&((*id).clone(), r.member.clone())),
                    )
                })
                .collect();
            let again = self.table.read(&reads).await?;
            let mut learned = Vec::new();
            for (c, a) in slots {
                let Some(c) = again.get(&c)?.map(|v| v.value) else {
                    continue;
                };
                if c.status != CampaignStatus::Running || c.slices == 0 {
                    continue;
                }
                self.campaigns.learn(&c);
                if let Some(assignment) = again.get(&a)? {
                    learned.push(Play {
                        campaign: c,
                        slices: Vec::new(),
                        complete: false,
                        assignment,
                    });
                }
            }
            // Their slices are read whole: this is already the rare path.
            plays.extend(self.with_every_slice(learned).await?);
        }
        Ok(plays)
    }

    /// The plays with every slice of their budgets read (one round trip for all): for a
    /// purchase whose own slice was short, and for campaigns first seen. A budget found used
    /// up is remembered, so later purchases read no slice of it.
    pub(crate) async fn with_every_slice(
        &self,
        plays: Vec<Play>,
    ) -> Result<Vec<Play>, ServiceError> {
        let mut reads = Reads::new();
        let slots: Vec<Vec<(u32, Slot<BudgetSlice>)>> = plays
            .iter()
            .map(|p| {
                (0..p.campaign.slices)
                    .map(|n| (n, reads.add::<BudgetSlice>(&(p.campaign.id.clone(), n))))
                    .collect()
            })
            .collect();
        let found = self.table.read(&reads).await?;
        let mut out = Vec::new();
        for (mut p, slots) in plays.into_iter().zip(slots) {
            p.slices = Vec::new();
            for (n, slot) in slots {
                if let Some(v) = found.get(&slot)? {
                    p.slices.push((n, v.value.0));
                }
            }
            p.complete = true;
            if p.slices.iter().all(|(_, s)| s.room() == 0) {
                self.campaigns.exhausted(&p.campaign.id);
            }
            out.push(p);
        }
        Ok(out)
    }

    /// Plays a purchase in each campaign the member is in: counts it in their outcome when it
    /// falls in the window, and awards a treatment member what the offer, their limit and the
    /// budget allow, taken from the budget's slices. Everything goes into the purchase's batch.
    /// A campaign whose award the member's own slice cannot cover, while the other slices are
    /// unread, goes into `short` and earns nothing here: the caller reads every slice of it
    /// ([`Services::with_every_slice`]) and decides again.
    pub(crate) fn play_purchase(
        &self,
        plays: Vec<Play>,
        facts: &PurchaseFacts,
        occurred_at: DateTime<Utc>,
        purchase_ref: &PurchaseRef,
        w: &mut MemberWrite,
        short: &mut Vec<CampaignId>,
    ) -> Result<Vec<CampaignCredit>, ServiceError> {
        let MemberWrite {
            m, journal, batch, ..
        } = w;
        let now = journal.now();
        let mut credits = Vec::new();
        for play in plays {
            let home = play.home();
            let Play {
                campaign: c,
                slices: read,
                complete,
                assignment,
            } = play;
            let mut a = assignment.value;
            if !in_window(occurred_at, c.starts_at, c.ends_at, c.ended_at) {
                continue;
            }
            a.purchases += 1;
            a.spend = a.spend.saturating_add(facts.amount);
            let mut points = Points::ZERO;
            if a.group == Group::Treatment {
                let room: i64 = read.iter().map(|(_, s)| s.room()).sum();
                let offered = offered(&c.offer, facts)?;
                let unbounded = Points(offered.0.max(0));
                let wanted = cut(
                    offered,
                    a.awards,
                    c.per_member_limit,
                    if complete { Points(room) } else { unbounded },
                );
                if !complete && wanted.0 > room {
                    short.push(c.id.clone());
                    continue;
                }
                points = wanted;
            }
            if points.0 > 0 {
                let mut rooms = vec![0; c.slices as usize];
                for (n, s) in &read {
                    if let Some(r) = rooms.get_mut(*n as usize) {
                        *r = s.room();
                    }
                }
                for (n, take) in slices::plan(points.0, home, &rooms) {
                    let cap = read.iter().find(|(k, _)| *k == n).map_or(0, |(_, s)| s.cap);
                    batch.take::<BudgetSlice>(&(c.id.clone(), n), take, cap);
                }
                a.awards += 1;
                a.points = a.points.checked_add(points)?;
                self.credit(m, points, now);
                m.lifetime_earned = m.lifetime_earned.checked_add(points)?;
                journal.line(
                    LedgerEntry::new(
                        LedgerKind::CampaignBonus,
                        points,
                        m.balance,
                        Some(reference(&c.id)),
                        Some(c.name.clone()),
                        now,
                    ),
                    |moved, line| {
                        EventData::CampaignAwarded(Awarded {
                            moved,
                            line,
                            campaign_id: c.id.clone(),
                            purchase: purchase_ref.clone(),
                        })
                    },
                );
            }
            batch.save(&(c.id.clone(), m.id.clone()), &a, Some(assignment.version))?;
            credits.push(CampaignCredit {
                campaign_id: c.id,
                points,
            });
        }
        Ok(credits)
    }

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
        let found = self.table.read(&reads).await?;
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
    async fn with_awarded(&self, mut cs: Vec<Campaign>) -> Result<Vec<Campaign>, ServiceError> {
        let awarded = self.awarded(&cs.iter().collect::<Vec<_>>()).await?;
        for (c, a) in cs.iter_mut().zip(awarded) {
            c.awarded = a;
        }
        Ok(cs)
    }

    /// Adds the assignments a purchase counted in to a refund's read.
    pub(crate) fn refund_reads(
        reads: &mut Reads,
        member: &MemberId,
        credits: &[CampaignCredit],
    ) -> Vec<(CampaignCredit, Slot<Assignment>)> {
        credits
            .iter()
            .map(|c| {
                (
                    c.clone(),
                    reads.add::<Assignment>(&(c.campaign_id.clone(), member.clone())),
                )
            })
            .collect()
    }

    /// Takes a refund out of the outcomes it counted in, and reverses the awards pro rata:
    /// summed over any split of a full refund, exactly what was awarded. Returns the points
    /// reversed.
    pub(crate) fn reverse_bonuses(
        &self,
        reversals: Vec<(CampaignId, Points)>,
        refund_ref: &RefundRef,
        m: &mut Member,
        journal: &mut Journal,
    ) -> Result<Points, ServiceError> {
        let now = journal.now();
        let mut total = Points::ZERO;
        for (campaign_id, reversed) in reversals {
            if reversed.0 <= 0 {
                continue;
            }
            self.debit(m, reversed, None);
            m.lifetime_earned = m.lifetime_earned.checked_sub(reversed)?;
            total = total.checked_add(reversed)?;
            journal.line(
                LedgerEntry::new(
                    LedgerKind::CampaignBonus,
                    reversed.checked_neg()?,
                    m.balance,
                    Some(reference(&campaign_id)),
                    None,
                    now,
                ),
                |moved, line| {
                    EventData::PointsReversed(Reversed {
                        moved,
                        line,
                        of: Reversal::Campaign {
                            campaign_id: campaign_id.clone(),
                            refund: refund_ref.clone(),
                        },
                    })
                },
            );
        }
        Ok(total)
    }

    /// What a refund does to the campaigns that counted its purchase, into `batch`: each
    /// assignment counts it as a refund (spend, purchases, the award no longer standing).
    /// Returns each campaign's award reversed; the caller takes it from the member (an erased
    /// member's refund takes nothing: their points were forfeited).
    pub(crate) fn unplay_refund(
        &self,
        slots: Vec<(CampaignCredit, Slot<Assignment>)>,
        found: &Fetched,
        refunded_before: i64,
        refund: i64,
        purchase_amount: i64,
        batch: &mut Batch,
    ) -> Result<Vec<(CampaignId, Points)>, ServiceError> {
        let mut reversals = Vec::new();
        for (credit, slot) in slots {
            let Some(current) = found.get(&slot)? else {
                continue;
            };
            let member_id = current.value.member_id.clone();
            let (a, reversed) = refunded_assignment(
                current.value,
                &credit,
                refunded_before,
                refund,
                purchase_amount,
            )?;
            batch.save(
                &(credit.campaign_id.clone(), member_id),
                &a,
                Some(current.version),
            )?;
            reversals.push((credit.campaign_id, reversed));
        }
        Ok(reversals)
    }
}

/// A campaign assignment after a refund of a purchase it counted, and the award points the
/// refund reverses.
fn refunded_assignment(
    mut a: Assignment,
    credit: &CampaignCredit,
    refunded_before: i64,
    refund: i64,
    purchase_amount: i64,
) -> Result<(Assignment, Points), ServiceError> {
    a.spend = a.spend.saturating_sub(refund);
    if refunded_before + refund == purchase_amount {
        a.purchases = a.purchases.saturating_sub(1);
    }
    let reversed = refund_reversal(credit.points, refunded_before, refund, purchase_amount)?;
    a.points = a.points.checked_sub(reversed)?;
    Ok((a, reversed))
}

fn fresh(member_id: &MemberId, group: Group) -> Assignment {
    Assignment {
        member_id: member_id.clone(),
        group,
        purchases: 0,
        spend: 0,
        awards: 0,
        points: Points::ZERO,
    }
}
