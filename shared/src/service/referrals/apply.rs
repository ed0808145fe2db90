//! Applying a code at enrolment or within the window: who refers (the code resolved), the
//! guesses counted, the referee marked.

use super::{CodeReads, ReferralView, Referring, ReferringSlots, contact, view};
use crate::domain::audit::{Actor, AuditAction, Change};
use crate::domain::event::{EventData, ReferralApplied};
use crate::domain::member::Member;
use crate::domain::referral::{self, Application, Referral, ReferralCode, ReferralMark, Refusal};
use crate::domain::{MemberId, guesses};
use crate::retrying;
use crate::service::Outcome;
use crate::service::Referrals;
use crate::service::audit::Audited;
use crate::service::error::ServiceError;
use crate::service::error::live;
use crate::service::events::Journal;
use crate::service::unit::MemberWrite;
use crate::table::{Batch, CodeGuesses, Fetched, Reads};
use chrono::{DateTime, Utc};

impl Referrals {
    /// Applies a code to a member after enrolment (within `apply_within_days`).
    #[tracing::instrument(skip_all, fields(member = %id))]
    pub async fn apply_referral(
        &self,
        id: &MemberId,
        code: &ReferralCode,
        actor: Option<&Actor>,
        principal: &str,
    ) -> Result<Outcome<ReferralView>, ServiceError> {
        let guesser = self.guesser(principal).await?;
        retrying!(self.ctx, self.try_apply(id, code, actor, &guesser))
    }

    pub(super) async fn try_apply(
        &self,
        id: &MemberId,
        code: &ReferralCode,
        actor: Option<&Actor>,
        guesser: &str,
    ) -> Result<Outcome<ReferralView>, ServiceError> {
        let now = self.ctx.now();
        let mut reads = Reads::new();
        let member = reads.add::<Member>(id);
        let existing = reads.add::<Referral>(id);
        let applying = CodeReads::add(&mut reads, code, guesser.to_owned());
        let found = self.ctx.table.read(&reads).await?;
        let current = live(found.get(&member)?)?;
        if let Some(prior) = found.get(&existing)? {
            // The same code applied again is the same request: answered as it stands.
            return if prior.value.code == *code {
                Ok(Outcome::replay(view(
                    &prior.value,
                    self.ctx.program_date(now),
                )))
            } else {
                Err(ServiceError::ReferralRefused(Refusal::AlreadyReferred))
            };
        }
        if current.value.referral.is_some() {
            // The member carries a mark but its referral was not read: a multi-item read can
            // see half of a concurrent apply's commit (DynamoDB's isolation of BatchGetItem).
            // The same as a lost race: read again, and the whole commit is there.
            return Err(crate::store::StoreError::Conflict.into());
        }
        let referring = self.referring_of(&found, &applying, now).await?;
        let mut w = MemberWrite::on(&self.ctx, &current, now);
        let MemberWrite {
            m, journal, batch, ..
        } = &mut w;
        let r = self.apply_code(m, code, &referring, false, journal, batch)?;
        let audited = Audited {
            action: AuditAction::ReferralApplied,
            member: Some(id),
            target: Some(r.referrer.to_string()),
            changes: vec![Change::to("referral_code", code.as_str())],
        };
        w.audit(&self.ctx, actor, audited)?;
        w.commit(&self.ctx).await?;
        Ok(Outcome::fresh(view(&r, self.ctx.program_date(now))))
    }

    /// The key a caller's unknown codes are counted under: the keyed hash of their principal
    /// (`Caller::principal`), so the record names nobody.
    pub(crate) async fn guesser(&self, principal: &str) -> Result<String, ServiceError> {
        Ok(referral::keyed(
            self.pseudonym_key().await?,
            "caller",
            principal,
        ))
    }

    /// The referrer a code's claim names, read (the one more round trip of applying a code).
    /// A caller past `unknown_codes_per_hour` is refused any code, known or not, without a
    /// look (else a 429 against a success would still tell codes apart); an unknown code is
    /// counted against the caller in its own write before it is refused.
    pub(crate) async fn referring_of(
        &self,
        found: &Fetched,
        reads: &CodeReads,
        now: DateTime<Utc>,
    ) -> Result<Referring, ServiceError> {
        let rules = &self.ctx.program.referral;
        if !rules.enabled {
            return Err(ServiceError::ReferralRefused(Refusal::Disabled));
        }
        let counted = found.get(&reads.guesses)?;
        let spent = guesses::allow(
            counted.as_ref().map(|c| c.value.spent),
            now,
            rules.unknown_codes_per_hour,
        )
        .map_err(|retry_after| ServiceError::TooManyUnknownCodes { retry_after })?;
        let referring = match found.get(&reads.claim)? {
            Some(claim) => {
                let mut more = Reads::new();
                let slots = ReferringSlots::add(&mut more, &claim.value.member_id);
                slots.get(&self.ctx.table.read(&more).await?)
            }
            None => Err(ServiceError::NotFound("referral code")),
        };
        match referring {
            // A code whose member left is a code nobody holds any more.
            Err(ServiceError::NotFound(_) | ServiceError::MemberErased) => {
                let mut batch = Batch::new();
                let record = CodeGuesses {
                    spent,
                    expires_at: (spent.tat + chrono::Duration::hours(1)).timestamp(),
                };
                batch.save(&reads.guesser, &record, counted.map(|c| c.version))?;
                // A lost race with the caller's other guess is retried: both are counted.
                self.ctx.table.commit(batch).await?;
                Err(ServiceError::ReferralRefused(Refusal::UnknownCode))
            }
            other => other,
        }
    }

    /// Applies `code` to the referee `m` (decided by `referral::may_apply`): the referral, the
    /// referrer's count and the mark on the member, into `batch`; `referral.applied` into the
    /// referee's journal. The caller saves the member.
    pub(crate) fn apply_code(
        &self,
        m: &mut Member,
        code: &ReferralCode,
        referring: &Referring,
        at_enrolment: bool,
        journal: &mut Journal,
        batch: &mut Batch,
    ) -> Result<Referral, ServiceError> {
        let now = journal.now();
        let rules = &self.ctx.program.referral;
        let referrer = &referring.member.value;
        let today = self.ctx.program_date(now);
        let (deadline, first_only, _) = referral::may_apply(&Application {
            rules,
            enrolled_on: self.ctx.program_date(m.enrolled_at),
            today,
            at_enrolment,
            already_referred: m.referral.is_some(),
            has_purchased: m.first_purchase_at.is_some(),
            own_code: referrer.id == m.id,
            referrer_paid_total: referring.record.value.counts.paid,
            contacts: referral::same_person(&contact(m), &contact(referrer)),
        })
        .map_err(ServiceError::ReferralRefused)?;
        m.referral = Some(ReferralMark::Open {
            deadline,
            referrer: referrer.id.clone(),
        });
        let r = Referral::applied(&m.id, &referrer.id, code, (now, deadline, first_only));
        // A lost race to create it is retried, not refused: the retry reads the referral the
        // winner made, and the same code applied again answers 200 as it stands.
        batch.create(&m.id, &r)?;
        let mut record = referring.record.value.clone();
        record.counts.applied += 1;
        batch.save(&referrer.id, &record, Some(referring.record.version))?;
        journal.note(EventData::ReferralApplied(ReferralApplied {
            referrer_id: referrer.id.clone(),
            code: code.clone(),
            deadline,
        }));
        Ok(r)
    }
}
