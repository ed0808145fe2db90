//! A refund of the purchase a referral counted: the rewards taken back from both sides, the
//! counts reversed.

use super::{Referring, RefundOf, Side};
use crate::domain::Points;
use crate::domain::event::{EventData, ReferralJudged, ReferralReversed, ReferralRole};
use crate::domain::ledger::LedgerEntry;
use crate::domain::ledger::LedgerKind;
use crate::domain::lots::Origin;
use crate::domain::member::Member;
use crate::domain::receipt::RefundRef;
use crate::domain::referral::{self, FraudRule, Referral, ReferralStatus};
use crate::service::Referrals;
use crate::service::error::ServiceError;
use crate::service::events::Journal;
use crate::service::unit::MemberWrite;
use crate::table::{Batch, Versioned};

impl Referrals {
    /// A refund of a referee's qualifying purchase (decided by `referral::refund_reverses`):
    /// within the return window and below the minimum spend, both rewards come back out of the
    /// lots (pending first; spent points become owed), the referrer's counts and milestones are
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
        let today = self.ctx.program_date(now);
        let rules = &self.ctx.program.referral;
        let mut r = referral.value.clone();
        let bought_on = r.bought_on.unwrap_or(today);
        let ours = r
            .purchase
            .as_ref()
            .is_some_and(|p| p.store_id == of.store_id && p.receipt_id == of.receipt_id);
        if !ours
            || !matches!(r.status, ReferralStatus::Rewarded | ReferralStatus::Held)
            || !referral::refund_reverses(
                rules,
                purchase_amount,
                refunded_total,
                bought_on,
                today,
                self.ctx.program.points.pending_days,
            )
        {
            return Ok(Points::ZERO);
        }
        let mut record = referring.map(|g| g.record.value.clone());
        r.updated_at = now;
        let mut back_to_referee = Points::ZERO;
        if r.status == ReferralStatus::Held {
            r.status = ReferralStatus::Rejected;
            if let Some(record) = record.as_mut() {
                record.counts.held = record.counts.held.saturating_sub(1);
                record.counts.rejected += 1;
            }
            if let Some((_, journal)) = referee {
                journal.note(EventData::ReferralRejected(ReferralJudged {
                    referrer_id: r.referrer.clone(),
                    rule: r.rule.unwrap_or(FraudRule::Reviewer),
                    purchase: r.purchase.clone(),
                }));
            }
        } else {
            r.status = ReferralStatus::Reversed;
            if let Some((m, journal)) = referee {
                self.take_back(
                    m,
                    journal,
                    r.referee_points,
                    r.referee_origin,
                    Side {
                        role: ReferralRole::Referee,
                        referee: &r.referee,
                    },
                    of,
                )?;
                back_to_referee = r.referee_points;
            }
            if let (Some(referring), Some(record)) = (referring, record.as_mut()) {
                let mut rw = MemberWrite::settled(&self.ctx, &referring.member, now);
                let MemberWrite {
                    m: referrer,
                    journal: rj,
                    ..
                } = &mut rw;
                self.take_back(
                    referrer,
                    rj,
                    r.referrer_points,
                    r.referrer_origin,
                    Side {
                        role: ReferralRole::Referrer,
                        referee: &r.referee,
                    },
                    of,
                )?;
                let back = record.counts.reversed_out(
                    r.referrer_points,
                    r.capped,
                    r.paid_month.as_deref(),
                );
                r.milestones_reversed = Points(back.iter().map(|m| m.points.0).sum());
                for milestone in back {
                    self.take_back(
                        referrer,
                        rj,
                        milestone.points,
                        Some(milestone.origin),
                        Side {
                            role: ReferralRole::Milestone,
                            referee: &r.referee,
                        },
                        of,
                    )?;
                }
                rw.close_into(&self.ctx, batch)?;
            }
        }
        if let (Some(referring), Some(record)) = (referring, &record) {
            batch.save(&r.referrer, record, Some(referring.record.version))?;
        }
        batch.save(&r.referee, &r, Some(referral.version))?;
        Ok(back_to_referee)
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
