//! A redemption: the reward's rules (tier, stock, per-member limit), the points drawn from the
//! lots soonest-expiring first, and the voucher issued, in one write; and a member's list.

use super::*;
use crate::domain::audit::{Actor, AuditAction, Change};
use crate::domain::event::{EventData, Redeemed, VoucherIssued};
use crate::domain::ledger::LedgerEntry;
use crate::domain::ledger::LedgerKind;
use crate::domain::member::Member;
use crate::domain::reward::Redemption;
use crate::domain::reward::{Refusal, check_redemption};
use crate::domain::slices;
use crate::domain::voucher::{RedemptionStatus, generate_code};
use crate::domain::{MemberId, Points, RewardId};
use crate::retrying;
use crate::service::Ctx;
use crate::service::Outcome;
use crate::service::audit::Audited;
use crate::service::error::ServiceError;
use crate::service::error::live;
use crate::service::events::Journal;
use crate::service::idempotency::Idempotency;
use crate::service::unit::MemberWrite;
use crate::table::{Batch, REWARD_SHARDS, Reads, RewardCount, RewardShard, Versioned, Voucher};
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub(super) fn refusal(r: Refusal) -> ServiceError {
    match r {
        Refusal::Inactive => ServiceError::RewardInactive,
        Refusal::TierTooLow { required, held } => ServiceError::TierTooLow { required, held },
        Refusal::LimitReached { limit } => ServiceError::LimitReached { limit },
        Refusal::OutOfStock => ServiceError::OutOfStock,
        Refusal::InsufficientPoints { balance, cost } => ServiceError::InsufficientPoints {
            balance: balance.0,
            cost: cost.0,
        },
    }
}

/// The writes that issue one voucher for `reward` to `member` (whose balance this lowers when
/// `charge` is set); the caller adds the member item and commits.
pub(crate) struct Issue<'a> {
    pub stock: &'a Stock,
    pub count: Option<&'a Versioned<RewardCount>>,
    /// Points are charged (a redemption) or not (a gift).
    pub charge: bool,
    pub source: &'a str,
}

pub(crate) fn issue_voucher(
    svc: &Ctx,
    member: &mut Member,
    journal: &mut Journal,
    issue: Issue<'_>,
    now: DateTime<Utc>,
) -> Result<(Redemption, Batch), ServiceError> {
    let held = issue.count.map_or(0, |c| c.value.count);
    // Points that became spendable or expired by now count before the balance is judged.
    svc.settle(member, journal, now);
    let reward = issue.stock.reward();
    let r = &reward;
    check_redemption(member.tier, member.balance, r, held, issue.charge).map_err(refusal)?;
    let redemption = draw_redemption(svc, member, &issue, now)?;
    let voucher = Voucher {
        code: redemption.voucher_code.clone(),
        redemption_id: redemption.id,
        member_id: member.id.clone(),
        reward_id: r.id.clone(),
        status: RedemptionStatus::Issued,
        expires_at: redemption.expires_at,
        used_at: None,
        used_store_id: None,
    };
    let mut batch = Batch::new();
    journal.note(EventData::VoucherIssued(VoucherIssued {
        redemption_id: redemption.id,
        reward_id: r.id.clone(),
        voucher_code: redemption.voucher_code.clone(),
        expires_at: redemption.expires_at,
        source: issue.source.to_owned(),
    }));
    batch.create(&(member.id.clone(), redemption.id), &redemption)?;
    // A code collision fails this absence condition; the retry draws a new code.
    batch.create(voucher.code.as_str(), &voucher)?;
    count_issued(&mut batch, &member.id, &issue, held)?;
    if issue.charge {
        journal.line(
            LedgerEntry::new(
                LedgerKind::Redemption,
                redemption.points_spent.checked_neg()?,
                member.balance,
                Some(format!("redemption:{}", redemption.id)),
                Some(r.name.clone()),
                now,
            ),
            |moved, line| {
                EventData::PointsRedeemed(Redeemed {
                    moved,
                    line,
                    redemption_id: redemption.id,
                    reward_id: r.id.clone(),
                })
            },
        );
    }
    Ok((redemption, batch))
}

/// The redemption: its points spent from the member's lots (remembered when dated, so a
/// cancellation puts them back where they were) and a fresh voucher code.
pub(super) fn draw_redemption(
    svc: &Ctx,
    member: &mut Member,
    issue: &Issue<'_>,
    now: DateTime<Utc>,
) -> Result<Redemption, ServiceError> {
    let r = &issue.stock.home.value.reward;
    let points = if issue.charge {
        r.cost_points
    } else {
        Points::ZERO
    };
    let mut lots = if points.0 > 0 {
        svc.spend(member, points)?
    } else {
        Vec::new()
    };
    // Undated points come back undated whatever lot they left: nothing to remember.
    if lots.iter().all(|l| l.expires_on.is_none()) {
        lots.clear();
    }
    member.lifetime_redeemed = member.lifetime_redeemed.checked_add(points)?;
    member.last_activity_at = now;
    Ok(Redemption {
        id: Uuid::now_v7(),
        member_id: member.id.clone(),
        reward_id: r.id.clone(),
        points_spent: points,
        voucher_code: generate_code(),
        status: RedemptionStatus::Issued,
        created_at: now,
        expires_at: now + chrono::Duration::days(i64::from(svc.program.voucher_validity_days)),
        used_at: None,
        used_store_id: None,
        cancelled_at: None,
        source: issue.source.to_owned(),
        lots,
    })
}

/// The member's count of this reward, and one unit of the reward's stock when it has one,
/// taken from the member's shard or (when it has none left) another.
pub(super) fn count_issued(
    batch: &mut Batch,
    member: &MemberId,
    issue: &Issue<'_>,
    held: u32,
) -> Result<(), ServiceError> {
    let stock = issue.stock;
    let id = &stock.home.value.reward.id;
    batch.save(
        &(member.clone(), id.clone()),
        &RewardCount { count: held + 1 },
        issue.count.map(|c| c.version),
    )?;
    if stock.limited() {
        let known = stock.slices();
        let mut rooms = vec![0; REWARD_SHARDS as usize];
        for (n, s) in &known {
            rooms[*n as usize] = s.room();
        }
        let (n, _) = slices::plan(1, stock.home_n, &rooms)
            .into_iter()
            .next()
            .ok_or(ServiceError::OutOfStock)?;
        let cap = known
            .iter()
            .find(|(k, _)| *k == n)
            .map_or(0, |(_, s)| s.cap);
        batch.take::<RewardShard>(&(id.clone(), n), 1, cap);
    } else {
        // Unlimited stock: no stock to take, but a concurrent edit (deactivation) still wins.
        batch.check::<RewardShard>(&(id.clone(), stock.home_n), stock.home.version);
    }
    Ok(())
}

impl Redemptions {
    #[tracing::instrument(skip_all, fields(%member, %reward))]
    pub async fn redeem(
        &self,
        member: &MemberId,
        reward: &RewardId,
        idem: Option<Idempotency>,
        actor: Option<&Actor>,
    ) -> Result<Outcome<RedemptionReceipt>, ServiceError> {
        retrying!(
            self.ctx,
            self.try_redeem(member, reward, idem.as_ref(), actor)
        )
    }

    pub(super) async fn try_redeem(
        &self,
        id: &MemberId,
        reward_id: &RewardId,
        idem: Option<&Idempotency>,
        actor: Option<&Actor>,
    ) -> Result<Outcome<RedemptionReceipt>, ServiceError> {
        let now = self.ctx.now();
        let mut reads = Reads::new();
        let member = reads.add::<Member>(id);
        let shard = Redemptions::stock_read(&mut reads, reward_id, id);
        let count = reads.add::<RewardCount>(&(id.clone(), reward_id.clone()));
        let traits = reads.add::<crate::domain::traits::MemberTraits>(id);
        let prior = idem.map(|i| i.read(&mut reads));
        let found = self.ctx.table.read(&reads).await?;
        // An erased member's replays answer 410 like every other request on the member.
        let current = live(found.get(&member)?)?;
        if let Some(replay) = Idempotency::replay::<RedemptionReceipt>(idem, &prior, &found, now)? {
            return Ok(Outcome::replay(replay));
        }
        let stock = self.stock(shard, &found, reward_id).await?;
        let count = found.get(&count)?;
        let mut w = MemberWrite::on(&self.ctx, &current, now);
        let (redemption, batch) = issue_voucher(
            &self.ctx,
            &mut w.m,
            &mut w.journal,
            Issue {
                stock: &stock,
                count: count.as_ref(),
                charge: true,
                source: "redemption",
            },
            now,
        )?;
        w.batch = batch;
        let made = (now, 1);
        let traits = found.get(&traits)?;
        self.ctx
            .note_redemption(&mut w.batch, id, traits, made, now)?;
        let receipt = RedemptionReceipt {
            redemption,
            balance: w.m.balance,
        };
        let audited = Audited {
            action: AuditAction::RewardRedeemed,
            member: Some(id),
            target: Some(reward_id.to_string()),
            changes: vec![
                Change::to("redemption_id", receipt.redemption.id.to_string()),
                Change::to("points_spent", receipt.redemption.points_spent.0),
            ],
        };
        w.audit(&self.ctx, actor, audited)?;
        w.commit_remembering(&self.ctx, idem.map(|i| (i, &receipt)))
            .await?;
        crate::metrics::points_redeemed(receipt.redemption.points_spent.0);
        Ok(Outcome::fresh(receipt))
    }

    /// The member's redemptions, newest first, each with the status it has now.
    #[tracing::instrument(skip_all, fields(member = %id))]
    pub async fn redemptions(
        &self,
        id: &MemberId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<Redemption>, Option<String>), ServiceError> {
        self.ctx.load_member(id).await?;
        let now = self.ctx.now();
        let (items, next) = self.ctx.table.list::<Redemption>(id, limit, cursor).await?;
        Ok((items.into_iter().map(|r| r.seen_at(now)).collect(), next))
    }
}
