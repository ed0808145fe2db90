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

mod drafts;
mod launch;
mod offers;
mod play;
mod results;

pub use offers::{MemberOffer, MemberOffers};

pub use crate::domain::campaign::{
    Assignment, AudienceSize, Campaign, CampaignCredit, CampaignStatus, RunningCampaigns,
    RunningEntry,
};
use crate::domain::campaign::{Group, MemberOutcome, Offer, OfferInput, Verdict};
use crate::domain::spend::refund_reversal;
use crate::domain::{CampaignId, MemberId, Money, Points};
use crate::service::Ctx;
use crate::service::error::ServiceError;
use crate::table::{BudgetSlice, Reads, Replica, Slice, Slot, Versioned, shard_of};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::RwLock;
use utoipa::ToSchema;

/// Campaign drafts, launches, plays at the till and results.
#[derive(Clone)]
pub struct Campaigns {
    pub(crate) ctx: Ctx,
    /// The campaigns this process last saw running.
    pub(crate) running: Arc<RunningCache>,
}

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

/// Audience members a launch announces at once (each its own small commit, DESIGN.md
/// "Campaigns": `campaign.joined`).
const ANNOUNCE_CONCURRENCY: usize = 128;

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

/// A campaign draft as an operator writes it (the HTTP edge parses `PUT /v1/campaigns/{id}`
/// into it); `drafts::check_campaign` holds it to the rules.
#[derive(Debug, Clone)]
pub struct CampaignDraft {
    pub name: String,
    /// Segment ids as typed: each is checked (400 naming `audience[i]`).
    pub audience: Vec<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub offer: OfferInput,
    pub per_member_limit: Option<u32>,
    pub budget_points: Points,
    /// As sent, so that a share with more than 2 decimals is refused, not rounded.
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

impl Campaigns {
    /// A campaign and the registry of running campaigns, in one read: what a launch or an end
    /// changes together. No such campaign is a 404.
    pub(super) async fn read_with_registry(
        &self,
        id: &CampaignId,
    ) -> Result<(Versioned<Campaign>, Option<Versioned<RunningCampaigns>>), ServiceError> {
        let mut reads = Reads::new();
        let campaign = reads.add::<Campaign>(id);
        let registry = reads.add::<RunningCampaigns>(&Replica::FIRST);
        let found = self.ctx.table.read(&reads).await?;
        let current = found
            .get(&campaign)?
            .ok_or(ServiceError::NotFound("campaign"))?;
        Ok((current, found.get(&registry)?))
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
        announced: false,
        purchases: 0,
        spend: 0,
        awards: 0,
        points: Points::ZERO,
    }
}
