//! A referee's purchase: whether it qualifies (`domain::referral::qualify`), and the rewards paid
//! to both sides in the purchase's own commit.

use super::{
    ReferralOutcome, ReferralReads, ReferralStep, Referring, ReferringSlots, Side, contact,
    payment_hash,
};
use crate::domain::Points;
use crate::domain::event::{EventData, ReferralJudged, ReferralRewarded, ReferralRole};
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
        let today = self.ctx.program_date(now);
        let rules = &self.ctx.program.referral;
        let mut r = reads.referral.value.clone();
        if r.status != ReferralStatus::Applied {
            w.m.referral = Some(ReferralMark::Closed);
            return Ok(none);
        }
        let referrer = &reads.referring.member.value;
        let same = referral::same_person(&contact(&w.m), &contact(referrer))
            .or(reads.same_payment.then_some(FraudRule::SamePayment))
            .or(reads.repeat.then_some(FraudRule::RepeatReferee));
        let decision = referral::qualify(
            rules,
            r.deadline,
            r.first_only,
            &reads.referring.record.value.counts,
            &PurchaseFacts {
                amount,
                today,
                now,
                first,
                same_person: same,
            },
        );
        if decision == Qualification::NotYet {
            return Ok(none);
        }
        w.m.referral = Some(ReferralMark::Closed);
        r.updated_at = now;
        let mut record = reads.referring.record.value.clone();
        let outcome = match decision {
            Qualification::NotYet => unreachable!("returned above"),
            Qualification::Expired => {
                r.status = ReferralStatus::Expired;
                none
            }
            Qualification::Held(rule) | Qualification::Rejected(rule) => {
                let held = matches!(decision, Qualification::Held(_));
                r.status = if held {
                    ReferralStatus::Held
                } else {
                    ReferralStatus::Rejected
                };
                r.rule = Some(rule);
                r.purchase = Some(sale.clone());
                r.bought_on = Some(self.ctx.program_date(occurred_at));
                r.amount = Some(amount);
                if held {
                    record.counts.held += 1;
                } else {
                    record.counts.rejected += 1;
                }
                let judged = ReferralJudged {
                    referrer_id: r.referrer.clone(),
                    rule,
                    purchase: Some(sale.clone()),
                };
                w.journal.note(if held {
                    EventData::ReferralHeld(judged)
                } else {
                    EventData::ReferralRejected(judged)
                });
                ReferralOutcome {
                    referrer: Some(r.referrer.clone()),
                }
            }
            Qualification::Rewarded(p) => {
                r.purchase = Some(sale.clone());
                r.bought_on = Some(self.ctx.program_date(occurred_at));
                r.amount = Some(amount);
                self.pay(&mut r, &p, w, &reads.referring, &mut record, &reads.marks)?;
                ReferralOutcome {
                    referrer: Some(r.referrer.clone()),
                }
            }
        };
        w.batch
            .save(&r.referrer, &record, Some(reads.referring.record.version))?;
        w.batch.save(&w.m.id, &r, Some(reads.referral.version))?;
        Ok(outcome)
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
        let MemberWrite {
            m, journal, batch, ..
        } = w;
        let now = journal.now();
        let today = self.ctx.program_date(now);
        let bought_on = r.bought_on.unwrap_or(today);
        // The person is remembered as rewarded, through erasure, by keyed hashes only.
        for hash in marks {
            batch.put(hash, &RefereeMark { rewarded_on: today })?;
        }
        let sale = r.purchase.clone().unwrap_or(PurchaseRef {
            store_id: crate::domain::StoreId::parse("-").expect("a valid id"),
            receipt_id: crate::domain::ReceiptId::parse("-").expect("a valid id"),
        });
        r.status = ReferralStatus::Rewarded;
        r.qualified_at = Some(now);
        r.capped = p.capped;
        r.paid_month = (!p.capped).then(|| referral::month_of(today));
        r.referee_points = p.referee;
        r.referrer_points = p.referrer;
        r.milestone_points = p.milestone.unwrap_or(Points::ZERO);
        r.referee_origin = self.reward(
            m,
            journal,
            p.referee,
            Side {
                role: ReferralRole::Referee,
                referee: &r.referee,
            },
            bought_on,
            &sale,
        )?;
        // The referrer is a second member written in the same commit.
        let mut rw = MemberWrite::settled(&self.ctx, &referring.member, now);
        let MemberWrite {
            m: referrer,
            journal: rj,
            ..
        } = &mut rw;
        r.referrer_origin = self.reward(
            referrer,
            rj,
            p.referrer,
            Side {
                role: ReferralRole::Referrer,
                referee: &r.referee,
            },
            bought_on,
            &sale,
        )?;
        let milestone_origin = match p.milestone {
            Some(points) => self.reward(
                referrer,
                rj,
                points,
                Side {
                    role: ReferralRole::Milestone,
                    referee: &r.referee,
                },
                bought_on,
                &sale,
            )?,
            None => None,
        };
        record.counts.paid_out(
            p,
            now,
            today,
            self.ctx.program.referral.velocity_per_hour as usize + 1,
            milestone_origin,
        );
        rw.close_into(&self.ctx, batch)?;
        Ok(())
    }

    /// One side's reward: pending from the purchase day for the return window (`pending_days`),
    /// a `referral.rewarded` line; returns where the points went (none for 0 points).
    pub(super) fn reward(
        &self,
        m: &mut Member,
        journal: &mut Journal,
        points: Points,
        side: Side,
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
