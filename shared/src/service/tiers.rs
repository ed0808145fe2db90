//! Tier progress for apps and the daily requalification job. The job finds the members whose
//! tier expired through the sparse GSI2 (`TIEREXPIRY#<YYYY-MM>`, sort key `<date>#<id>`), so it
//! reads only those members, never the table.

use super::error::ServiceError;
use super::events::Journal;
use super::jobs::{self, JobReport, MemberTally};
use super::members::money;
use super::unit::MemberWrite;
use crate::domain::event::{EventData, TierChangeReason, TierChanged};
use crate::domain::ledger::LedgerEntry;
use crate::domain::ledger::LedgerKind;
use crate::domain::member::Member;
use crate::domain::tier::{Requalification, TierAfter, requalify};
use crate::domain::{MemberId, Money, Points, Tier};
use crate::retrying;
use crate::service::Ctx;
use crate::table::MemberIndex;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Tier progress and the requalification job.
#[derive(Clone)]
pub struct Tiers {
    pub(crate) ctx: Ctx,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TierRuleView {
    pub tier: Tier,
    /// Qualifying spend needed.
    pub threshold: Money,
    /// Exact decimal, e.g. "1.5".
    pub multiplier: String,
    pub birthday_points: Points,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"member_id": "member-ada", "tier": "gold", "tier_expires_on": "2027-11-30", "qualifying_spend": {"value": 125000, "currency": "USD"}, "qualifying_window_months": 12, "next_tier": "diamond", "spend_to_next_tier": {"value": 375000, "currency": "USD"}, "multiplier": "1.5", "tiers": [{"tier": "silver", "threshold": {"value": 0, "currency": "USD"}, "multiplier": "1", "birthday_points": 100}, {"tier": "gold", "threshold": {"value": 100000, "currency": "USD"}, "multiplier": "1.5", "birthday_points": 300}, {"tier": "diamond", "threshold": {"value": 500000, "currency": "USD"}, "multiplier": "2", "birthday_points": 1000}]}))]
pub struct TierView {
    pub member_id: MemberId,
    pub tier: Tier,
    pub tier_expires_on: Option<NaiveDate>,
    pub qualifying_spend: Money,
    pub qualifying_window_months: u32,
    pub next_tier: Option<Tier>,
    pub spend_to_next_tier: Option<Money>,
    pub multiplier: String,
    pub tiers: Vec<TierRuleView>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RequalificationRun {
    pub examined: u64,
    pub upgraded: u64,
    pub kept: u64,
    pub downgraded: u64,
    /// Members the run could not requalify (logged with the reason); the next run retries them.
    pub failed: u64,
}

impl JobReport for RequalificationRun {
    const JOB: &'static str = "tier-requalification";
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("examined", self.examined),
            ("downgraded", self.downgraded),
            ("failed", self.failed),
        ]
    }
}

impl MemberTally for RequalificationRun {
    type Outcome = Requalification;
    fn add(&mut self, r: Requalification) {
        match r {
            Requalification::NotDue => {}
            Requalification::Upgraded { .. } => self.upgraded += 1,
            Requalification::Kept { .. } => self.kept += 1,
            Requalification::Downgraded { .. } => self.downgraded += 1,
        }
    }
    fn examined(&mut self) -> &mut u64 {
        &mut self.examined
    }
    fn failed(&mut self) -> &mut u64 {
        &mut self.failed
    }
}

impl Tiers {
    #[tracing::instrument(skip_all, fields(member = %id))]
    pub async fn tier_view(&self, id: &MemberId) -> Result<TierView, ServiceError> {
        let m = self.ctx.load_member(id).await?.value;
        let p = &self.ctx.program;
        let progress = self.ctx.progress_view(&m);
        Ok(TierView {
            member_id: m.id,
            tier: m.tier,
            tier_expires_on: m.tier_expires_on,
            qualifying_spend: progress.qualifying_spend,
            qualifying_window_months: p.qualifying_window_months,
            next_tier: progress.next_tier,
            spend_to_next_tier: progress.spend_to_next_tier,
            multiplier: p.tiers.rule(m.tier).multiplier.to_string(),
            tiers: Tier::ALL
                .iter()
                .map(|t| {
                    let r = p.tiers.rule(*t);
                    TierRuleView {
                        tier: *t,
                        threshold: money(r.threshold, p.currency),
                        multiplier: r.multiplier.to_string(),
                        birthday_points: r.birthday_points,
                    }
                })
                .collect(),
        })
    }

    /// The daily job: every member whose tier expired before `now`'s date is requalified once.
    #[tracing::instrument(skip_all)]
    pub async fn requalify_tiers(
        &self,
        now: DateTime<Utc>,
    ) -> Result<RequalificationRun, ServiceError> {
        let today = self.ctx.program_date(now);
        let mut run = RequalificationRun::default();
        let outcomes = self
            .ctx
            .for_members_by_month(
                today,
                |month| MemberIndex::TierExpiry {
                    month,
                    before: today,
                },
                |id| async move { retrying!(self.ctx, self.try_requalify(&id, today, now)) },
            )
            .await?;
        jobs::tally(&mut run, outcomes);
        Ok(jobs::finish(run))
    }

    async fn try_requalify(
        &self,
        id: &MemberId,
        today: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Requalification, ServiceError> {
        let current = match self.ctx.load_member(id).await {
            Ok(m) => m,
            // The index is eventually consistent; a vanished (or erased) member has nothing to
            // requalify.
            Err(ServiceError::NotFound(_) | ServiceError::MemberErased) => {
                return Ok(Requalification::NotDue);
            }
            Err(e) => return Err(e),
        };
        let mut w = MemberWrite::on(&self.ctx, &current, now);
        let m = &mut w.m;
        let p = &self.ctx.program;
        let spend = m.spend.qualifying(today, p.qualifying_window_months);
        let decision = requalify(
            m.tier,
            m.tier_expires_on,
            today,
            spend,
            &p.tiers,
            p.tier_validity_months,
        );
        let Some(TierAfter {
            tier,
            expires_on: expires,
            line: kind,
        }) = decision.applied_to(m.tier)
        else {
            return Ok(decision);
        };
        match kind {
            Some(kind) => {
                let note = format!("{} → {} (requalification)", m.tier, tier);
                let to = (tier, expires, kind);
                move_tier(
                    m,
                    &mut w.journal,
                    to,
                    ("requalification".into(), note),
                    None,
                );
            }
            None => m.tier_expires_on = expires,
        }
        w.commit(&self.ctx).await?;
        Ok(decision)
    }
}

/// A member moved to another tier: the tier and its expiry set, and a `tier_upgrade` or
/// `tier_downgrade` line (`kind`) with its reference and note, and the event that says why.
pub(crate) fn move_tier(
    m: &mut Member,
    journal: &mut Journal,
    (to, expires_on, kind): (Tier, Option<NaiveDate>, LedgerKind),
    (reference, note): (String, String),
    reason: Option<TierChangeReason>,
) {
    let from = m.tier;
    m.tier = to;
    m.tier_expires_on = expires_on;
    let entry = LedgerEntry::new(
        kind,
        Points::ZERO,
        m.balance,
        Some(reference),
        Some(note),
        journal.now(),
    );
    journal.line(entry, |moved, line| {
        let changed = TierChanged {
            moved,
            line,
            from,
            to,
            expires_on,
            reason,
        };
        match kind {
            LedgerKind::TierUpgrade => EventData::TierUpgraded(changed),
            _ => EventData::TierDowngraded(changed),
        }
    });
}
