//! A refund of a purchase: the points it earned taken back in proportion (pending first), the
//! campaign bonuses and a referral it counted reversed, and a tier its purchase lifted reverted;
//! an erased member's refund touches only what others hold.

use crate::domain::audit::{Actor, AuditAction, Change};
use crate::domain::campaign::{Assignment, CampaignCredit};
use crate::domain::event::{EventData, LineRef, Moved, Reversal, Reversed, TierChangeReason};
use crate::domain::ledger::LedgerEntry;
use crate::domain::ledger::LedgerKind;
use crate::domain::member::Member;
use crate::domain::receipt::RefundReceipt;
use crate::domain::receipt::RefundRef;
use crate::domain::segment::Standing;
use crate::domain::spend::refund_reversal;
use crate::domain::tier::{Tier, revert_on_refund};
use crate::domain::{Money, Points, ReceiptId, RefundId, StoreId};
use crate::retrying;
use crate::service::Campaigns;
use crate::service::Outcome;
use crate::service::audit::Audited;
use crate::service::error::ServiceError;
use crate::service::events::Journal;
use crate::service::members::money;
use crate::service::referrals::ReferringSlots;
use crate::service::referrals::{Referring, RefundOf};
use crate::service::segments::SegmentState;
use crate::service::tiers::move_tier;
use crate::service::unit::MemberWrite;
use crate::table::{Batch, Fetched, PurchaseRecord, Reads, RefundRecord, Replica, Slot, Versioned};
use chrono::{DateTime, NaiveDate, Utc};

use super::*;

/// The refund's total refunded so far, once it is checked against the purchase: in the
/// currency that was paid, and never more than the purchase.
pub(super) fn refunded_total_after(
    pr: &PurchaseRecord,
    amount: Money,
) -> Result<i64, ServiceError> {
    if amount.currency != pr.amount.currency {
        return Err(ServiceError::CurrencyMismatch {
            expected: pr.amount.currency,
            got: amount.currency,
        });
    }
    let would_total = pr
        .refunded_total
        .checked_add(amount.value)
        .ok_or(crate::domain::Overflow)?;
    if would_total > pr.amount.value {
        return Err(ServiceError::RefundExceedsPurchase {
            purchase_amount: pr.amount.value,
            would_total,
        });
    }
    Ok(would_total)
}

/// What a refund took off the member's books.
pub(super) struct Unbooked {
    reversed: Points,
    from_pending: i64,
    refunded_before: i64,
    revert: Option<(Tier, Option<NaiveDate>)>,
}

impl Unbooked {
    /// `points.reversed` for the purchase's own points.
    pub(super) fn event(
        &self,
        of: &RefundRef,
        amount: Money,
        refunded_total: Money,
        moved: Moved,
        line: LineRef,
    ) -> EventData {
        // What came off pending points never was in the balance.
        let (moved, pending) = match self.from_pending {
            0 => (moved, None),
            p => (
                Moved {
                    points: Points(p - self.reversed.0),
                    ..moved
                },
                Some(Points(-p)),
            ),
        };
        EventData::PointsReversed(Reversed {
            moved,
            line,
            of: Reversal::Purchase {
                refund: of.clone(),
                amount,
                refunded_total,
                pending,
            },
        })
    }
}

/// What a refund's lines are drawn from.
/// What a refund reads after its purchase (`read_for_refund`).
pub(super) struct RefundRead {
    member: Versioned<Member>,
    standing: Standing,
    credits: Vec<(CampaignCredit, Slot<Assignment>)>,
    referral: Option<(
        Versioned<crate::domain::referral::Referral>,
        Option<Referring>,
    )>,
    found: Fetched,
}

pub(super) struct RefundLines<'a> {
    pr: &'a PurchaseRecord,
    req: &'a NewRefund,
    of: &'a RefundRef,
    unbooked: Unbooked,
    credits: Vec<(CampaignCredit, Slot<Assignment>)>,
    found: &'a Fetched,
}

/// The tier a refunded upgrade's purchase had lifted the member from, back with its expiry.
pub(super) fn revert_tier(
    m: &mut Member,
    journal: &mut Journal,
    (tier, expires_on): (Tier, Option<NaiveDate>),
    reference: String,
) {
    let note = format!("{} → {tier} (the upgrade's purchase was refunded)", m.tier);
    let to = (tier, expires_on, LedgerKind::TierDowngrade);
    let reason = Some(TierChangeReason::Refund);
    move_tier(m, journal, to, (reference, note), reason);
}

impl Purchases {
    #[tracing::instrument(skip_all, fields(%store, %receipt, refund = %req.refund_id))]
    pub async fn refund(
        &self,
        store: &StoreId,
        receipt: &ReceiptId,
        req: NewRefund,
        request_digest: &str,
        actor: Option<&Actor>,
    ) -> Result<Outcome<RefundReceipt>, ServiceError> {
        // The currency is checked against the purchase's own, once it is read: a refund is
        // always in the currency that was paid, whatever the program's currency is today.
        req.amount
            .positive_amount()
            .map_err(|e| ServiceError::invalid("amount.value", e))?;
        retrying!(
            self.ctx,
            self.try_refund(store, receipt, &req, request_digest, actor)
        )
    }

    /// Read the purchase and the refund, then the member, cut points and the purchase's
    /// campaigns (two round trips: the purchase names the member), decide, write one batch.
    pub(super) async fn try_refund(
        &self,
        store: &StoreId,
        receipt: &ReceiptId,
        req: &NewRefund,
        digest: &str,
        actor: Option<&Actor>,
    ) -> Result<Outcome<RefundReceipt>, ServiceError> {
        let now = self.ctx.now();
        let pid = (store.clone(), receipt.clone());
        let rid = (store.clone(), receipt.clone(), req.refund_id.clone());
        let purchase = match self.refunded_purchase(&pid, &rid, digest).await? {
            Ok(purchase) => purchase,
            Err(replay) => return Ok(Outcome::replay(replay)),
        };
        let mut pr = purchase.value;
        let would_total = refunded_total_after(&pr, req.amount)?;
        let read = self.read_for_refund(&pr).await?;
        let of = RefundRef::new(store, receipt, &req.refund_id);
        let refund = RefundOf {
            of: &of,
            purchase_amount: pr.amount.value,
            refunded_total: would_total,
            now,
        };
        let mut batch = Batch::new();
        let audited = Audited {
            action: AuditAction::RefundRecorded,
            member: Some(&pr.member_id),
            target: Some(format!("{store}/{receipt}/{}", req.refund_id)),
            changes: vec![Change::to("amount", req.amount.value)],
        };
        self.ctx.audit(&mut batch, actor, audited, now)?;
        let (reversed, balance, write) = if read.member.value.erased_at.is_some() {
            self.refund_of_erased(&mut pr, req, refund, read, &mut batch)?;
            (Points::ZERO, Points::ZERO, None)
        } else {
            let (reversed, w) = self.refund_of_member(&mut pr, req, refund, read, &mut batch)?;
            (reversed, w.m.balance, Some(w))
        };
        let response = RefundReceipt {
            refund_id: req.refund_id.clone(),
            points_reversed: reversed,
            balance,
            refunded_total: money(would_total, pr.amount.currency),
        };
        let record = RefundRecord {
            amount: req.amount,
            points_reversed: response.points_reversed,
            request_hash: digest.to_owned(),
            response: response.clone(),
            created_at: now,
        };
        batch.save(&pid, &pr, Some(purchase.version))?;
        batch.create(&rid, &record)?;
        // An erased member is not written: what the refund does to others commits alone.
        MemberWrite::commit_beside(write, batch, &self.ctx).await?;
        Ok(Outcome::fresh(response))
    }

    /// The purchase a refund is of (404 without one), or the answer of the same refund recorded
    /// before (409 when it was a different request under the same refund id).
    pub(super) async fn refunded_purchase(
        &self,
        pid: &(StoreId, ReceiptId),
        rid: &(StoreId, ReceiptId, RefundId),
        digest: &str,
    ) -> Result<Result<Versioned<PurchaseRecord>, RefundReceipt>, ServiceError> {
        let mut reads = Reads::new();
        let purchase = reads.add::<PurchaseRecord>(pid);
        let refund = reads.add::<RefundRecord>(rid);
        let found = self.ctx.table.read(&reads).await?;
        if let Some(prior) = found.get(&refund)? {
            return same_receipt(&prior.value.request_hash, digest)
                .map(|()| Err(prior.value.response));
        }
        found
            .get(&purchase)?
            .map(Ok)
            .ok_or(ServiceError::NotFound("purchase"))
    }

    /// What a refund reads once its purchase names the member, in one round trip: the member,
    /// the segment cut points, the campaigns' assignments it was credited in, and the referral
    /// (with its referrer) the purchase counted for.
    pub(super) async fn read_for_refund(
        &self,
        pr: &PurchaseRecord,
    ) -> Result<RefundRead, ServiceError> {
        let mut reads = Reads::new();
        let member = reads.add::<Member>(&pr.member_id);
        let state = reads.add::<SegmentState>(&Replica::of(&pr.member_id));
        let credits = Campaigns::refund_reads(&mut reads, &pr.member_id, &pr.campaigns);
        let referral = pr.referral.as_ref().map(|referrer| {
            (
                reads.add::<crate::domain::referral::Referral>(&pr.member_id),
                ReferringSlots::add(&mut reads, referrer),
            )
        });
        let found = self.ctx.table.read(&reads).await?;
        let member = found
            .get(&member)?
            .ok_or(ServiceError::NotFound("member"))?;
        let referral = match &referral {
            Some((slot, slots)) => found.get(slot)?.map(|r| (r, slots.get(&found).ok())),
            None => None,
        };
        Ok(RefundRead {
            member,
            standing: self.segments.standing(found.get(&state)?),
            credits,
            referral,
            found,
        })
    }

    /// The goods come back whatever we know of the buyer: nothing is credited to an erased
    /// member (their points were forfeited), but what the refund does to others stands — the
    /// referrer's reward, the campaigns' counts.
    pub(super) fn refund_of_erased(
        &self,
        pr: &mut PurchaseRecord,
        req: &NewRefund,
        refund: RefundOf,
        read: RefundRead,
        batch: &mut Batch,
    ) -> Result<(), ServiceError> {
        self.campaigns.unplay_refund(
            read.credits,
            &read.found,
            pr.refunded_total,
            req.amount.value,
            pr.amount.value,
            batch,
        )?;
        pr.refunded_total = refund.refunded_total;
        if let Some((r, referring)) = &read.referral {
            self.referrals
                .refund_referral(r, referring.as_ref(), refund, None, batch)?;
        }
        Ok(())
    }

    /// The refund on a live member's books (`book_refund`, `refund_lines`) and the referral
    /// rewards it takes back; returns the points reversed and the member's write.
    pub(super) fn refund_of_member(
        &self,
        pr: &mut PurchaseRecord,
        req: &NewRefund,
        refund: RefundOf,
        read: RefundRead,
        batch: &mut Batch,
    ) -> Result<(Points, MemberWrite), ServiceError> {
        let now = refund.now;
        let mut w = MemberWrite::settled(&self.ctx, &read.member, now);
        let MemberWrite { m, journal, .. } = &mut w;
        let unbooked = self.book_refund(m, pr, req.amount.value, refund.refunded_total, now)?;
        self.segments.resegment(m, &read.standing, now, journal);
        let lines = RefundLines {
            pr,
            req,
            of: refund.of,
            unbooked,
            credits: read.credits,
            found: &read.found,
        };
        let mut reversed = self.refund_lines(m, lines, journal, batch)?;
        if let Some((r, referring)) = &read.referral {
            // A referrer who has since left keeps nothing to take back (their counts went
            // with them); the referee's reward comes back all the same.
            let referee = Some((&mut *m, &mut *journal));
            let back =
                self.referrals
                    .refund_referral(r, referring.as_ref(), refund, referee, batch)?;
            reversed = reversed.checked_add(back)?;
        }
        Ok((reversed, w))
    }

    /// The refund on the member's books: the purchase's points back out (pending ones first),
    /// its spend (and, refunded in full, the purchase itself) no longer counted, and the upgrade
    /// it reverts, if any (decided by `tier::revert_on_refund`).
    pub(super) fn book_refund(
        &self,
        m: &mut Member,
        pr: &mut PurchaseRecord,
        amount: i64,
        would_total: i64,
        now: DateTime<Utc>,
    ) -> Result<Unbooked, ServiceError> {
        let p = &self.ctx.program;
        let today = self.ctx.program_date(now);
        let bought_on = self.ctx.program_date(pr.occurred_at);
        let reversed =
            refund_reversal(pr.points_earned, pr.refunded_total, amount, pr.amount.value)?;
        // While the purchase's points are pending, the refund takes them from there.
        let taken = self.ctx.debit(m, reversed, pr.origin);
        m.lifetime_earned = m.lifetime_earned.checked_sub(reversed)?;
        m.spend
            .add(bought_on, -amount, today, p.spend_months_kept())?;
        m.note_refund_day(bought_on, amount, would_total == pr.amount.value);
        if would_total == pr.amount.value {
            // A fully refunded purchase no longer counts as one (frequency, retention).
            m.purchases
                .add(bought_on, -1, today, p.purchase_months_kept());
        }
        m.last_activity_at = now;
        let refunded_before = pr.refunded_total;
        pr.refunded_total = would_total;
        let revert = revert_on_refund(
            m.tier,
            pr.upgrade.as_ref(),
            today,
            p.points.pending_days,
            m.spend.qualifying(today, p.qualifying_window_months),
            &p.tiers,
        );
        Ok(Unbooked {
            reversed,
            from_pending: taken.from_pending,
            refunded_before,
            revert,
        })
    }

    /// The refund's `points.reversed` line, the campaigns' bonuses it takes back, and the
    /// upgrade it reverts; returns every point reversed.
    pub(super) fn refund_lines(
        &self,
        m: &mut Member,
        l: RefundLines,
        journal: &mut Journal,
        batch: &mut Batch,
    ) -> Result<Points, ServiceError> {
        let now = journal.now();
        let u = l.unbooked;
        let reference = format!(
            "refund:{}/{}/{}",
            l.of.store_id, l.of.receipt_id, l.of.refund_id
        );
        let refunded_total = money(l.pr.refunded_total, l.pr.amount.currency);
        journal.line(
            LedgerEntry::new(
                LedgerKind::Refund,
                u.reversed.checked_neg()?,
                m.balance,
                Some(reference.clone()),
                None,
                now,
            ),
            |moved, line| u.event(l.of, l.req.amount, refunded_total, moved, line),
        );
        let reversals = self.campaigns.unplay_refund(
            l.credits,
            l.found,
            u.refunded_before,
            l.req.amount.value,
            l.pr.amount.value,
            batch,
        )?;
        let bonus_reversed = self
            .campaigns
            .reverse_bonuses(reversals, l.of, m, journal)?;
        if let Some((tier, expires_on)) = u.revert {
            revert_tier(m, journal, (tier, expires_on), reference);
        }
        Ok(u.reversed.checked_add(bonus_reversed)?)
    }
}
