//! The review queue: held referrals approved (paid) or rejected by an operator.

use super::{ReferralView, Referring, ReferringSlots, judged_event, view};
use crate::domain::MemberId;
use crate::domain::audit::{Actor, AuditAction, Change};
use crate::domain::member::Member;
use crate::domain::referral::{self, FraudRule, Referral, ReferralStatus};
use crate::retrying;
use crate::service::Referrals;
use crate::service::audit::Audited;
use crate::service::error::ServiceError;
use crate::service::error::live;
use crate::service::unit::MemberWrite;
use crate::table::{Reads, Versioned};

impl Referrals {
    /// One page of the referrals held for review, newest first.
    #[tracing::instrument(skip_all)]
    pub async fn held_referrals(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<ReferralView>, Option<String>), ServiceError> {
        let today = self.ctx.program_date(self.ctx.now());
        let (items, next) = self.ctx.table.held_referrals(limit, cursor).await?;
        Ok((items.iter().map(|r| view(r, today)).collect(), next))
    }

    /// An administrator approves a held referral (it pays as a qualification would today, caps
    /// included) or rejects it (nobody is paid). Both are audited and evented.
    #[tracing::instrument(skip_all, fields(referee = %referee))]
    pub async fn review_referral(
        &self,
        referee: &MemberId,
        approve: bool,
        actor: &Actor,
    ) -> Result<ReferralView, ServiceError> {
        retrying!(self.ctx, self.try_review(referee, approve, actor))
    }

    /// A held referral, its referee and its referrer, read in one round trip once the referral
    /// names its referrer (409 unless it is held).
    async fn read_held(
        &self,
        referee: &MemberId,
    ) -> Result<(Versioned<Member>, Versioned<Referral>, Referring), ServiceError> {
        let held = self
            .ctx
            .table
            .get::<Referral>(referee)
            .await?
            .ok_or(ServiceError::NotFound("referral"))?;
        if held.value.status != ReferralStatus::Held {
            return Err(ServiceError::ReferralNotHeld(held.value.status.as_str()));
        }
        let mut reads = Reads::new();
        let member = reads.add::<Member>(referee);
        let referral = reads.add::<Referral>(referee);
        let slots = ReferringSlots::add(&mut reads, &held.value.referrer);
        let found = self.ctx.table.read(&reads).await?;
        let current = live(found.get(&member)?)?;
        let referral = found
            .get(&referral)?
            .ok_or(ServiceError::NotFound("referral"))?;
        if referral.value.status != ReferralStatus::Held {
            return Err(ServiceError::ReferralNotHeld(
                referral.value.status.as_str(),
            ));
        }
        Ok((current, referral, slots.get(&found)?))
    }

    pub(super) async fn try_review(
        &self,
        referee: &MemberId,
        approve: bool,
        actor: &Actor,
    ) -> Result<ReferralView, ServiceError> {
        let now = self.ctx.now();
        let today = self.ctx.program_date(now);
        let (current, referral, referring) = self.read_held(referee).await?;
        let mut r = referral.value.clone();
        let mut record = referring.record.value.clone();
        let mut w = MemberWrite::settled(&self.ctx, &current, now);
        record.counts.held = record.counts.held.saturating_sub(1);
        r.reviewed_by = Some(actor.sub.clone());
        r.updated_at = now;
        if approve {
            let p = referral::payout(&self.ctx.program.referral, &record.counts, today);
            let marks = self.referee_marks(&w.m).await?;
            self.pay(&mut r, &p, &mut w, &referring, &mut record, &marks)?;
        } else {
            r.judge(FraudRule::Reviewer, false, &mut record.counts);
            w.journal.note(judged_event(&r));
        }
        w.batch
            .save(&r.referrer, &record, Some(referring.record.version))?;
        w.batch.save(referee, &r, Some(referral.version))?;
        w.audit(
            &self.ctx,
            Some(actor),
            Audited {
                action: if approve {
                    AuditAction::ReferralApproved
                } else {
                    AuditAction::ReferralRejected
                },
                member: Some(referee),
                target: Some(r.referrer.to_string()),
                changes: vec![Change {
                    field: "status".into(),
                    before: Some("held".into()),
                    after: Some(r.status.as_str().into()),
                }],
            },
        )?;
        w.commit(&self.ctx).await?;
        Ok(view(&r, today))
    }
}
