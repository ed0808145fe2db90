//! A referee's purchase: whether it qualifies (`domain::referral::qualify`), and the rewards paid
//! to both sides in the purchase's own commit.

use super::{
    ReferralOutcome, ReferralReads, ReferralStep, Referring, ReferringSlots, Side, contact,
    judged_event, payment_hash,
};
use crate::domain::Points;
use crate::domain::event::{EventData, ReferralRewarded, ReferralRole};
use crate::domain::ledger::LedgerEntry;
use crate::domain::ledger::LedgerKind;
use crate::domain::lots::Origin;
use crate::domain::member::Member;
use crate::domain::receipt::PurchaseRef;
use crate::domain::referral::{
    self, FraudRule, PurchaseFacts, Qualification, Referral, ReferralMark, ReferralStatus,
};
use crate::service::Referrals;
use crate::service::error::ServiceError;
use crate::service::events::Journal;
use crate::service::unit::MemberWrite;
use crate::table::{PaymentMark, Reads, RefereeMark, Referrer};
use chrono::{DateTime, NaiveDate, Utc};

impl Referrals {
    /// What a referee's purchase must read about their referral (DESIGN.md "Referrals"):
    /// nothing unless the member carries an open mark and the purchase could change the
    /// referral; then one round trip for the referral, the referrer and the payment mark.
    pub(crate) async fn referral_step(
        &self,
        m: &Member,
        amount: i64,
        payment: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<ReferralStep>, ServiceError> {
        let Some(ReferralMark::Open { deadline, referrer }) = &m.referral else {
            return Ok(None);
        };
        let rules = &self.ctx.program.referral;
        if self.ctx.program_date(now) > *deadline {
            return Ok(Some(ReferralStep::Close));
        }
        let first_only = rules.qualify_within_days == 0;
        if amount < rules.min_spend && !(first_only && m.first_purchase_at.is_none()) {
            return Ok(None);
        }
        let marks = self.referee_marks(m).await?;
        let mut reads = Reads::new();
        let referral = reads.add::<Referral>(&m.id);
        let slots = ReferringSlots::add(&mut reads, referrer);
        let mark = payment.map(|p| reads.add::<PaymentMark>(&(payment_hash(p), referrer.clone())));
        let seen: Vec<_> = marks.iter().map(|h| reads.add::<RefereeMark>(h)).collect();
        let found = self.ctx.table.read(&reads).await?;
        let Some(referral) = found.get(&referral)? else {
            return Err(ServiceError::corrupt(
                "a referral mark without its referral",
            ));
        };
        let referring = match slots.get(&found) {
            Ok(r) => r,
            // The referrer left: the referral can pay nobody's code any more.
            Err(ServiceError::NotFound(_) | ServiceError::MemberErased) => {
                return Ok(Some(ReferralStep::Close));
            }
            Err(e) => return Err(e),
        };
        Ok(Some(ReferralStep::Decide(Box::new(ReferralReads {
            referral,
            referring,
            same_payment: mark.is_some_and(|s| found.exists(&s)),
            repeat: seen.iter().any(|s| found.exists(s)),
            marks,
        }))))
    }

    /// A referee's purchase and their referral (decided by `referral::qualify`): the mark, the
    /// referral, and — when it qualifies — both sides' pending points, the referrer's counts and
    /// any milestone, into `batch`; the referee's lines into `journal` (the caller closes it and
    /// saves the referee), the referrer's into their own journal, closed here.
    pub(crate) fn purchase_referral(
        &self,
        step: &ReferralStep,
        w: &mut MemberWrite,
        sale: &PurchaseRef,
        (amount, occurred_at, first): (i64, DateTime<Utc>, bool),
    ) -> Result<ReferralOutcome, ServiceError> {
        let none = ReferralOutcome { referrer: None };
        let ReferralStep::Decide(reads) = step else {
            w.m.referral = Some(ReferralMark::Closed);
            return Ok(none);
        };
        let now = w.journal.now();
        let mut r = reads.referral.value.clone();
        if r.status != ReferralStatus::Applied {
            w.m.referral = Some(ReferralMark::Closed);
            return Ok(none);
        }
        let decision = self.qualification(reads, &w.m, amount, first, now);
        if decision == Qualification::NotYet {
            return Ok(none);
        }
        w.m.referral = Some(ReferralMark::Closed);
        r.updated_at = now;
        let expired = decision == Qualification::Expired;
        if !expired {
            r.purchase = Some(sale.clone());
            r.bought_on = Some(self.ctx.program_date(occurred_at));
            r.amount = Some(amount);
        }
        let mut record = reads.referring.record.value.clone();
        match decision {
            Qualification::NotYet | Qualification::Expired => r.status = ReferralStatus::Expired,
            Qualification::Held(rule) | Qualification::Rejected(rule) => {
                let held = matches!(decision, Qualification::Held(_));
                r.judge(rule, held, &mut record.counts);
                w.journal.note(judged_event(&r));
            }
            Qualification::Rewarded(p) => {
                self.pay(&mut r, &p, w, &reads.referring, &mut record, &reads.marks)?
            }
        }
        w.batch
            .save(&r.referrer, &record, Some(reads.referring.record.version))?;
        w.batch.save(&w.m.id, &r, Some(reads.referral.version))?;
        Ok(ReferralOutcome {
            referrer: (!expired).then(|| r.referrer.clone()),
        })
    }

    /// `referral::qualify` over what the step read: the fraud signals (the same person, the
    /// same payment, a referee rewarded before) and the referrer's counts.
    fn qualification(
        &self,
        reads: &ReferralReads,
        m: &Member,
        amount: i64,
        first: bool,
        now: DateTime<Utc>,
    ) -> Qualification {
        let referrer = &reads.referring.member.value;
        let same = referral::same_person(&contact(m), &contact(referrer))
            .or(reads.same_payment.then_some(FraudRule::SamePayment))
            .or(reads.repeat.then_some(FraudRule::RepeatReferee));
        let r = &reads.referral.value;
        referral::qualify(
            &self.ctx.program.referral,
            r.deadline,
            r.first_only,
            &reads.referring.record.value.counts,
            &PurchaseFacts {
                amount,
                today: self.ctx.program_date(now),
                now,
                first,
                same_person: same,
            },
        )
    }

    /// Pays a qualified referral (`p`): the referee's points into `m` and `journal`, the
    /// referrer's and a milestone's into the referrer (saved here, with their own journal),
    /// the counts into `record`, what was paid into `r`.
    pub(super) fn pay(
        &self,
        r: &mut Referral,
        p: &referral::Payout,
        w: &mut MemberWrite,
        referring: &Referring,
        record: &mut Referrer,
        marks: &[String],
    ) -> Result<(), ServiceError> {
        let now = w.journal.now();
        let today = self.ctx.program_date(now);
        // The person is remembered as rewarded, through erasure, by keyed hashes only.
        for hash in marks {
            w.batch.put(hash, &RefereeMark { rewarded_on: today })?;
        }
        r.paid(p, now, today);
        let bought_on = r.bought_on.unwrap_or(today);
        let sale = r.purchase.clone().unwrap_or(PurchaseRef {
            store_id: crate::domain::StoreId::parse("-").expect("a valid id"),
            receipt_id: crate::domain::ReceiptId::parse("-").expect("a valid id"),
        });
        let side = |role| Side {
            role,
            referee: &r.referee,
        };
        let to_referee = (p.referee, side(ReferralRole::Referee));
        let referee_origin = self.reward(&mut w.m, &mut w.journal, to_referee, bought_on, &sale)?;
        // The referrer is a second member written in the same commit.
        let mut rw = MemberWrite::settled(&self.ctx, &referring.member, now);
        let (referrer, rj) = (&mut rw.m, &mut rw.journal);
        let to_referrer = (p.referrer, side(ReferralRole::Referrer));
        let referrer_origin = self.reward(referrer, rj, to_referrer, bought_on, &sale)?;
        let milestone_origin = match p.milestone {
            Some(points) => {
                let to_milestone = (points, side(ReferralRole::Milestone));
                self.reward(referrer, rj, to_milestone, bought_on, &sale)?
            }
            None => None,
        };
        let at_once = self.ctx.program.referral.velocity_per_hour as usize + 1;
        record
            .counts
            .paid_out(p, now, today, at_once, milestone_origin);
        rw.close_into(&self.ctx, &mut w.batch)?;
        (r.referee_origin, r.referrer_origin) = (referee_origin, referrer_origin);
        Ok(())
    }

    /// One side's reward: pending from the purchase day for the return window (`pending_days`),
    /// a `referral.rewarded` line; returns where the points went (none for 0 points).
    pub(super) fn reward(
        &self,
        m: &mut Member,
        journal: &mut Journal,
        (points, side): (Points, Side),
        bought_on: NaiveDate,
        sale: &PurchaseRef,
    ) -> Result<Option<Origin>, ServiceError> {
        let Side { role, referee } = side;
        if points.0 <= 0 {
            return Ok(None);
        }
        let now = journal.now();
        let mut lots = m.lots();
        let origin = lots.earn(
            points.0,
            bought_on,
            self.ctx.program.points.pending_days,
            self.ctx.program_date(now),
            self.ctx.program.points.expiry,
        );
        m.set_lots(lots);
        m.lifetime_earned = m.lifetime_earned.checked_add(points)?;
        let available_on = match origin {
            Origin::Pending(on) => Some(on),
            Origin::Available(_) => None,
        };
        journal.line(
            LedgerEntry::new(
                LedgerKind::Referral,
                points,
                m.balance,
                Some(format!("referral:{referee}")),
                None,
                now,
            ),
            |moved, line| {
                EventData::ReferralRewarded(ReferralRewarded {
                    moved: crate::domain::event::Moved {
                        points: if available_on.is_some() {
                            Points::ZERO
                        } else {
                            moved.points
                        },
                        ..moved
                    },
                    line,
                    referee_id: referee.clone(),
                    role,
                    rewarded: points,
                    available_on,
                    purchase: sale.clone(),
                })
            },
        );
        Ok(Some(origin))
    }
}
