//! Cancelling an issued voucher: its points back to the lots they came from, the stock and the
//! member's count returned.

use super::*;
use crate::domain::audit::{Actor, AuditAction, Change};
use crate::domain::event::{EventData, Moved, Restored};
use crate::domain::ledger::LedgerEntry;
use crate::domain::ledger::LedgerKind;
use crate::domain::member::Member;
use crate::domain::reward::Redemption;
use crate::domain::voucher::RedemptionStatus;
use crate::domain::{MemberId, Points, RewardId};
use crate::retrying;
use crate::service::audit::Audited;
use crate::service::error::ServiceError;
use crate::service::error::live;
use crate::service::events::Journal;
use crate::service::unit::MemberWrite;
use crate::table::{
    Batch, REWARD_SHARDS, Reads, RewardCount, RewardShard, Versioned, Voucher, shard_of,
};
use uuid::Uuid;

/// A cancelled redemption's `points.restored`: a ledger line when it cost points; a gifted
/// voucher cost nothing, so its event says so and no line is needed.
pub(super) fn restored_line(journal: &mut Journal, m: &Member, r: &Redemption) {
    let restored = |moved, line| {
        EventData::PointsRestored(Restored {
            moved,
            line,
            redemption_id: r.id,
            reward_id: r.reward_id.clone(),
        })
    };
    if r.points_spent.0 != 0 {
        let now = journal.now();
        journal.line(
            LedgerEntry::new(
                LedgerKind::RedemptionCancelled,
                r.points_spent,
                m.balance,
                Some(format!("redemption:{}", r.id)),
                None,
                now,
            ),
            |moved, line| restored(moved, Some(line)),
        );
    } else {
        journal.note(restored(
            Moved {
                points: Points::ZERO,
                balance: m.balance,
            },
            None,
        ));
    }
}

/// A cancellation's second read: the voucher, the reward's stock shards, the member's count.
pub(super) type CancelRead = (
    Versioned<Voucher>,
    Vec<Versioned<RewardShard>>,
    Option<((MemberId, RewardId), Versioned<RewardCount>)>,
);

/// The reward's stock (when it has one) and the member's count of it, one fewer issued: the
/// unit goes back to the member's own shard when that one has some out, else to the first
/// that has.
pub(super) fn count_returned(
    batch: &mut Batch,
    reward: &RewardId,
    home: u32,
    shards: &[Versioned<RewardShard>],
    count: Option<((MemberId, RewardId), Versioned<RewardCount>)>,
) -> Result<(), ServiceError> {
    if shards
        .first()
        .is_some_and(|s| s.value.reward.stock.is_some())
    {
        let back = shards
            .get(home as usize)
            .filter(|s| s.value.slice.used > 0)
            .map(|_| home)
            .or_else(|| {
                shards
                    .iter()
                    .position(|s| s.value.slice.used > 0)
                    .map(|n| n as u32)
            });
        if let Some(n) = back {
            let cap = shards[n as usize].value.slice.cap;
            batch.take::<RewardShard>(&(reward.clone(), n), -1, cap);
        }
    }
    if let Some((key, c)) = count {
        let fewer = RewardCount {
            count: c.value.count.saturating_sub(1),
        };
        batch.save(&key, &fewer, Some(c.version))?;
    }
    Ok(())
}

impl Redemptions {
    #[tracing::instrument(skip_all, fields(member = %id, %redemption))]
    pub async fn cancel_redemption(
        &self,
        id: &MemberId,
        redemption: &Uuid,
        actor: Option<&Actor>,
    ) -> Result<Redemption, ServiceError> {
        retrying!(self.ctx, self.try_cancel(id, redemption, actor))
    }

    /// What a cancellation reads besides the member and the redemption (a second round trip,
    /// as it needs the redemption's reward and code): the voucher, which must still be issued,
    /// the reward's stock shards and the member's count of it.
    pub(super) async fn read_for_cancel(
        &self,
        id: &MemberId,
        r: &Redemption,
    ) -> Result<CancelRead, ServiceError> {
        let mut reads = Reads::new();
        let voucher = reads.add::<Voucher>(r.voucher_code.as_str());
        let shards: Vec<_> = (0..REWARD_SHARDS)
            .map(|n| reads.add::<RewardShard>(&(r.reward_id.clone(), n)))
            .collect();
        let count_id = (id.clone(), r.reward_id.clone());
        let count = reads.add::<RewardCount>(&count_id);
        let more = self.ctx.table.read(&reads).await?;
        let voucher = more
            .get(&voucher)?
            .ok_or_else(|| ServiceError::corrupt("redemption without voucher"))?;
        if voucher.value.status != RedemptionStatus::Issued {
            return Err(ServiceError::RedemptionNotCancellable {
                status: voucher.value.status,
            });
        }
        let mut stock = Vec::new();
        for slot in &shards {
            stock.extend(more.get(slot)?);
        }
        let count = more.get(&count)?.map(|c| (count_id, c));
        Ok((voucher, stock, count))
    }

    pub(super) async fn try_cancel(
        &self,
        id: &MemberId,
        redemption_id: &Uuid,
        actor: Option<&Actor>,
    ) -> Result<Redemption, ServiceError> {
        let now = self.ctx.now();
        let rid = (id.clone(), *redemption_id);
        let mut reads = Reads::new();
        let member = reads.add::<Member>(id);
        let red = reads.add::<Redemption>(&rid);
        let traits = reads.add::<crate::domain::traits::MemberTraits>(id);
        let found = self.ctx.table.read(&reads).await?;
        let current = live(found.get(&member)?)?;
        let red = found
            .get(&red)?
            .ok_or(ServiceError::NotFound("redemption"))?;
        // An expired voucher is worth nothing at the till, so it cannot be traded back for
        // points either.
        let shown = red.value.status.as_of(red.value.expires_at, now);
        if shown != RedemptionStatus::Issued {
            return Err(ServiceError::RedemptionNotCancellable { status: shown });
        }
        let r = &red.value;
        let (voucher, stock, count) = self.read_for_cancel(id, r).await?;
        let balance_before = current.value.balance;
        let mut w = MemberWrite::settled(&self.ctx, &current, now);
        let MemberWrite {
            m, journal, batch, ..
        } = &mut w;
        self.ctx.restore(m, &r.lots, r.points_spent, now);
        m.lifetime_redeemed = m.lifetime_redeemed.checked_sub(r.points_spent)?;
        m.last_activity_at = now;
        restored_line(journal, m, r);
        let cancelled = r.cancelled(now);
        let v = voucher.value.cancelled();
        batch.save(&rid, &cancelled, Some(red.version))?;
        batch.save(v.code.as_str(), &v, Some(voucher.version))?;
        count_returned(
            batch,
            &r.reward_id,
            shard_of(id, REWARD_SHARDS),
            &stock,
            count,
        )?;
        let traits = found.get(&traits)?;
        self.ctx
            .note_redemption(batch, id, traits, (r.created_at, -1), now)?;
        let audited = cancel_audited(id, redemption_id, (balance_before, m.balance));
        w.audit(&self.ctx, actor, audited)?;
        w.commit(&self.ctx).await?;
        Ok(cancelled)
    }
}

/// The audit record of a cancellation: the status and the balance it moved.
fn cancel_audited<'a>(
    id: &'a MemberId,
    redemption_id: &Uuid,
    (before, after): (Points, Points),
) -> Audited<'a> {
    let status = (RedemptionStatus::Issued, RedemptionStatus::Cancelled);
    Audited {
        action: AuditAction::RedemptionCancelled,
        member: Some(id),
        target: Some(redemption_id.to_string()),
        changes: vec![
            Change::new("status", status.0, status.1),
            Change::new("balance", before, after),
        ],
    }
}
