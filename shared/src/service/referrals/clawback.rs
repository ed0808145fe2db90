//! A refund of the purchase a referral counted: the rewards taken back from both sides, the
//! counts reversed.

use super::{Referring, RefundOf, Side, judged_event};
use crate::domain::Points;
use crate::domain::event::{EventData, ReferralReversed, ReferralRole};
use crate::domain::ledger::LedgerEntry;
use crate::domain::ledger::LedgerKind;
use crate::domain::lots::Origin;
use crate::domain::member::Member;
use crate::domain::receipt::RefundRef;
use crate::domain::referral::{Referral, ReferralStatus, RefundSeen, RefundVerdict};
use crate::service::Referrals;
use crate::service::error::ServiceError;
use crate::service::events::Journal;
use crate::service::unit::MemberWrite;
use crate::table::{Batch, Referrer, Versioned};
use chrono::{DateTime, Utc};

impl Referrals {
    /// A refund of a referee's qualifying purchase (decided by [`Referral::on_refund`]): within
    /// the return window and below the minimum spend, both rewards come back out of the lots
    /// (pending first; spent points become owed), the referrer's counts and milestones are
    /// recounted. A held referral is rejected instead. Returns the referee's points reversed.
    /// Either side may be gone: an erased referee (`referee` None) had their points forfeited,
    /// so only the referrer's come back; an erased referrer (`referring` None) has nothing left
    /// to take back or recount, so only the referee's do.
    pub(crate) fn refund_referral(
        &self,
        referral: &Versioned<Referral>,
        referring: Option<&Referring>,
        refund: RefundOf<'_>,
        referee: Option<(&mut Member, &mut Journal)>,
        batch: &mut Batch,
    ) -> Result<Points, ServiceError> {
        let RefundOf {
            of,
            purchase_amount,
            refunded_total,
            now,
        } = refund;
        let seen = RefundSeen {
            of: &of.purchase(),
            amount: purchase_amount,
            refunded_total,
            today: self.ctx.program_date(now),
        };
        let program = &self.ctx.program;
        let verdict =
            referral
                .value
                .on_refund(&seen, &program.referral, program.points.pending_days);
        let mut r = referral.value.clone();
        let mut record = referring.map(|g| g.record.value.clone());
        r.updated_at = now;
        let mut back_to_referee = Points::ZERO;
        match verdict {
            RefundVerdict::Untouched => return Ok(Points::ZERO),
            RefundVerdict::Reject => {
                r.reject_on_refund(record.as_mut().map(|r| &mut r.counts));
                if let Some((_, journal)) = referee {
                    journal.note(judged_event(&r));
                }
            }
            RefundVerdict::Reverse => {
                r.status = ReferralStatus::Reversed;
                if let Some((m, journal)) = referee {
                    let side = Side {
                        role: ReferralRole::Referee,
                        referee: &r.referee,
                    };
                    self.take_back(m, journal, r.referee_points, r.referee_origin, side, of)?;
                    back_to_referee = r.referee_points;
                }
                if let (Some(referring), Some(record)) = (referring, record.as_mut()) {
                    self.claw_back_referrer(&mut r, referring, record, of, now, batch)?;
                }
            }
        }
        if let (Some(referring), Some(record)) = (referring, &record) {
            batch.save(&r.referrer, record, Some(referring.record.version))?;
        }
        batch.save(&r.referee, &r, Some(referral.version))?;
        Ok(back_to_referee)
    }

    /// The referrer's side of a reversal, in its own member write in the same batch: the reward
    /// and the milestones the recount takes back.
    fn claw_back_referrer(
        &self,
        r: &mut Referral,
        referring: &Referring,
        record: &mut Referrer,
        of: &RefundRef,
        now: DateTime<Utc>,
        batch: &mut Batch,
    ) -> Result<(), ServiceError> {
        let mut rw = MemberWrite::settled(&self.ctx, &referring.member, now);
        let MemberWrite {
            m: referrer,
            journal: rj,
            ..
        } = &mut rw;
        let side = |role| Side {
            role,
            referee: &r.referee,
        };
        self.take_back(
            referrer,
            rj,
            r.referrer_points,
            r.referrer_origin,
            side(ReferralRole::Referrer),
            of,
        )?;
        let back = record
            .counts
            .reversed_out(r.referrer_points, r.capped, r.paid_month.as_deref());
        for milestone in &back {
            self.take_back(
                referrer,
                rj,
                milestone.points,
                Some(milestone.origin),
                side(ReferralRole::Milestone),
                of,
            )?;
        }
        r.milestones_reversed = Points(back.iter().map(|m| m.points.0).sum());
        rw.close_into(&self.ctx, batch)
    }

    /// One side's reward taken back: from its lot first (pending before it was released), then
    /// soonest-expiring first; beyond the spendable points it is owed. A `referral.reversed` line.
    pub(super) fn take_back(
        &self,
        m: &mut Member,
        journal: &mut Journal,
        points: Points,
        origin: Option<Origin>,
        side: Side,
        of: &RefundRef,
    ) -> Result<(), ServiceError> {
        let Side { role, referee } = side;
        if points.0 <= 0 {
            return Ok(());
        }
        let taken = self.ctx.debit(m, points, origin);
        m.lifetime_earned = m.lifetime_earned.checked_sub(points)?;
        let from_pending = taken.from_pending;
        journal.line(
            LedgerEntry::new(
                LedgerKind::Referral,
                points.checked_neg()?,
                m.balance,
                Some(format!("referral:{referee}")),
                None,
                journal.now(),
            ),
            |moved, line| {
                EventData::ReferralReversed(ReferralReversed {
                    moved: crate::domain::event::Moved {
                        points: Points(from_pending - points.0),
                        ..moved
                    },
                    line,
                    referee_id: referee.clone(),
                    role,
                    reversed: points,
                    pending: (from_pending > 0).then_some(Points(-from_pending)),
                    refund: of.clone(),
                })
            },
        );
        Ok(())
    }
}
