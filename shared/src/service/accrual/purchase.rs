//! A purchase at the till: its checks, the member it names, the points it earns (pending for
//! the return window), the campaigns it plays, the referral it may qualify and the tier it may
//! lift, decided and committed in one write; and the purchase read back by its receipt.

use crate::domain::CampaignId;
use crate::domain::audit::{Actor, AuditAction, Change};
use crate::domain::campaign::CampaignCredit;
use crate::domain::campaign::PurchaseFacts;
use crate::domain::earning::earn;
use crate::domain::event::{Earned, EventData, LineRef, Moved, Pending, Sale};
use crate::domain::ledger::LedgerEntry;
use crate::domain::ledger::LedgerKind;
use crate::domain::lots::Origin;
use crate::domain::member::Member;
use crate::domain::money::MAX_AMOUNT_MINOR;
use crate::domain::receipt::PurchaseRef;
use crate::domain::receipt::{PurchaseLine, PurchaseReceipt, PurchaseView};
use crate::domain::segment::{Standing, lifecycle};
use crate::domain::spend::spend_judged_on;
use crate::domain::tier::{Caused, Tier, upgrade_caused};
use crate::domain::traits::MemberTraits;
use crate::domain::{MemberId, Money, Points, ReceiptId, StoreId};
use crate::retrying;
use crate::service::Outcome;
use crate::service::audit::Audited;
use crate::service::campaigns::Play;
use crate::service::error::ServiceError;
use crate::service::error::live;
use crate::service::events::Journal;
use crate::service::referrals::{ReferralStep, payment_hash};
use crate::service::segments::SegmentState;
use crate::service::tiers::move_tier;
use crate::service::unit::MemberWrite;
use crate::table::{PaymentMark, PhoneClaim, PurchaseRecord, Reads, Replica, Versioned};
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::*;

/// What a purchase decided, besides the member: the record it keeps and the answer it gives.
pub(super) struct Decided {
    booked: Booked,
    credits: Vec<CampaignCredit>,
    caused: Option<Caused>,
    referred: Option<MemberId>,
    ledger_entry_id: Uuid,
}

impl Decided {
    pub(super) fn record(
        self,
        req: &NewPurchase,
        digest: &str,
        m: &Member,
        now: DateTime<Utc>,
    ) -> Result<PurchaseRecord, ServiceError> {
        let bonus = self
            .credits
            .iter()
            .try_fold(Points::ZERO, |a, c| a.checked_add(c.points))?;
        let receipt = PurchaseReceipt {
            purchase_id: Uuid::now_v7(),
            member_id: m.id.clone(),
            points_earned: self.booked.earned,
            campaign_bonus: bonus,
            balance: m.balance,
            tier: m.tier,
            tier_changed: self.caused.is_some(),
            ledger_entry_id: self.ledger_entry_id,
        };
        Ok(PurchaseRecord {
            purchase_id: receipt.purchase_id,
            member_id: m.id.clone(),
            amount: req.amount,
            occurred_at: self.booked.occurred_at,
            points_earned: self.booked.earned,
            refunded_total: 0,
            lines: req.lines.clone().unwrap_or_default(),
            request_hash: digest.to_owned(),
            response: receipt,
            created_at: now,
            campaigns: self.credits,
            origin: Some(self.booked.origin),
            upgrade: self.caused,
            referral: self.referred,
        })
    }
}

/// What a purchase decides from besides the request and the member, read once per attempt: the
/// segment cut points, the campaigns it plays in, and the referral step it may take.
pub(super) struct PurchaseRead<'a> {
    standing: &'a Standing,
    plays: Vec<Play>,
    referral: Option<&'a ReferralStep>,
}

pub(super) struct Booked {
    earned: Points,
    origin: Origin,
    /// The program date its spend is judged on.
    judged_on: NaiveDate,
    occurred_at: DateTime<Utc>,
    reference: String,
}

impl Booked {
    /// `points.earned`, or `points.pending` (pending points are in the ledger but not yet in the
    /// balance: that event moves none).
    pub(super) fn event(
        &self,
        req: &NewPurchase,
        tier: Tier,
        moved: Moved,
        line: LineRef,
    ) -> EventData {
        let sale = Sale {
            store_id: req.store_id.clone(),
            receipt_id: req.receipt_id.clone(),
            amount: req.amount,
            occurred_at: self.occurred_at,
            tier,
        };
        match self.origin {
            Origin::Pending(available_on) => EventData::PointsPending(Pending {
                moved: Moved {
                    points: Points::ZERO,
                    ..moved
                },
                line,
                sale,
                pending: self.earned,
                available_on,
            }),
            Origin::Available(_) => EventData::PointsEarned(Earned { moved, line, sale }),
        }
    }
}

impl Purchases {
    /// One purchase line: its sku, category, quantity and amount (400 naming `lines[i]`).
    pub(super) fn check_line(&self, i: usize, l: &PurchaseLine) -> Result<(), ServiceError> {
        let f = |name: &str| format!("lines[{i}].{name}");
        if l.sku.trim().is_empty() || l.sku.len() > 64 {
            return Err(ServiceError::field(
                &f("sku"),
                "sku must be 1 to 64 characters",
            ));
        }
        if l.category
            .as_ref()
            .is_some_and(|c| c.trim().is_empty() || c.len() > 64)
        {
            return Err(ServiceError::field(
                &f("category"),
                "category must be 1 to 64 characters",
            ));
        }
        if l.quantity == 0 || l.quantity > 1_000_000 {
            return Err(ServiceError::field(
                &f("quantity"),
                "quantity must be 1 to 1000000",
            ));
        }
        if l.amount.currency != self.ctx.program.currency {
            return Err(ServiceError::CurrencyMismatch {
                expected: self.ctx.program.currency,
                got: l.amount.currency,
            });
        }
        if !(0..=MAX_AMOUNT_MINOR).contains(&l.amount.value) {
            return Err(ServiceError::field(
                &f("amount.value"),
                "line amounts must be between 0 and 10^12 minor units",
            ));
        }
        Ok(())
    }

    pub(super) fn check_purchase_shape(&self, req: &NewPurchase) -> Result<(), ServiceError> {
        if req.member.id.is_some() == req.member.phone.is_some() {
            return Err(ServiceError::malformed(
                "member",
                "give exactly one of member.id or member.phone",
            ));
        }
        self.check_amount("amount", req.amount)?;
        if req
            .payment_fingerprint
            .as_ref()
            .is_some_and(|f| f.trim().is_empty() || f.len() > 256)
        {
            return Err(ServiceError::field(
                "payment_fingerprint",
                "payment_fingerprint must be 1 to 256 characters",
            ));
        }
        let lines = req.lines.as_deref().unwrap_or_default();
        if lines.len() > 200 {
            return Err(ServiceError::field("lines", "at most 200 lines"));
        }
        for (i, l) in lines.iter().enumerate() {
            self.check_line(i, l)?;
        }
        if let Some(lines) = &req.lines {
            let sum = lines.iter().map(|l| l.amount.value).sum::<i64>();
            if sum != req.amount.value {
                return Err(ServiceError::field(
                    "lines",
                    format!(
                        "the lines sum to {sum} minor units, but amount is {}",
                        req.amount.value
                    ),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn check_purchase_time(
        &self,
        occurred_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let p = &self.ctx.program;
        if occurred_at > now + chrono::Duration::seconds(i64::from(p.purchase_max_future_seconds)) {
            return Err(ServiceError::StalePurchase(format!(
                "occurred_at is more than {} seconds in the future",
                p.purchase_max_future_seconds
            )));
        }
        if occurred_at < now - chrono::Duration::days(i64::from(p.purchase_max_age_days)) {
            return Err(ServiceError::StalePurchase(format!(
                "occurred_at is more than {} days ago",
                p.purchase_max_age_days
            )));
        }
        Ok(())
    }

    /// Records a purchase and its points. `request_digest` identifies the body for replays.
    #[tracing::instrument(skip_all, fields(store = %req.store_id, receipt = %req.receipt_id))]
    pub async fn purchase(
        &self,
        req: NewPurchase,
        request_digest: &str,
        actor: Option<&Actor>,
    ) -> Result<Outcome<PurchaseReceipt>, ServiceError> {
        self.check_purchase_shape(&req)?;
        retrying!(self.ctx, self.try_purchase(&req, request_digest, actor))
    }

    pub(super) async fn resolve_member(&self, r: &Buyer) -> Result<MemberId, ServiceError> {
        if let Some(id) = &r.id {
            return Ok(id.clone());
        }
        let phone = r.phone.as_ref().ok_or(ServiceError::NotFound("member"))?;
        let phone = self.ctx.phone("member.phone", phone)?;
        let claim = self
            .ctx
            .table
            .get::<PhoneClaim>(&phone)
            .await?
            .ok_or(ServiceError::NotFound("member with this phone"))?;
        Ok(claim.value.member_id)
    }

    /// Read (member, purchase, cut points and campaigns in one round trip), decide, write one
    /// batch.
    pub(super) async fn try_purchase(
        &self,
        req: &NewPurchase,
        digest: &str,
        actor: Option<&Actor>,
    ) -> Result<Outcome<PurchaseReceipt>, ServiceError> {
        let now = self.ctx.now();
        let member_id = self.resolve_member(&req.member).await?;
        let pid = (req.store_id.clone(), req.receipt_id.clone());
        let mut reads = Reads::new();
        let member = reads.add::<Member>(&member_id);
        let purchase = reads.add::<PurchaseRecord>(&pid);
        let state = reads.add::<SegmentState>(&Replica::of(&member_id));
        let traits = reads.add::<MemberTraits>(&member_id);
        let campaigns = self.campaigns.campaign_reads(&mut reads, &member_id);
        let found = self.ctx.table.read(&reads).await?;
        if let Some(prior) = found.get(&purchase)? {
            return same_receipt(&prior.value.request_hash, digest)
                .map(|()| Outcome::replay(prior.value.response));
        }
        let occurred_at = ServiceError::bounded_instant("occurred_at", req.occurred(now))?;
        self.check_purchase_time(occurred_at, now)?;
        let current = live(found.get(&member)?)?;
        let payment = req.payment_fingerprint.as_deref();
        let referral = self
            .referrals
            .referral_step(&current.value, req.amount.value, payment, now)
            .await?;
        let plays = self.campaigns.campaign_plays(&found, campaigns).await?;
        let standing = self.segments.standing(found.get(&state)?);
        let read = PurchaseRead {
            standing: &standing,
            plays,
            referral: referral.as_ref(),
        };
        let (mut w, record) = self
            .decide_in_budget(req, digest, &current, now, read)
            .await?;
        let traits = found.get(&traits)?;
        self.beside(req, (payment, traits), (occurred_at, now), &mut w)?;
        // A concurrent duplicate fails this absence condition; the re-read replays it.
        w.batch.create(&pid, &record)?;
        let audited = Audited {
            action: AuditAction::PurchaseRecorded,
            member: Some(&member_id),
            target: Some(format!("{}/{}", req.store_id, req.receipt_id)),
            changes: vec![
                Change::to("amount", req.amount.value),
                Change::to("points_earned", record.response.points_earned.0),
            ],
        };
        w.audit(&self.ctx, actor, audited)?;
        w.commit(&self.ctx).await?;
        crate::metrics::points_earned(record.points_earned.0 + record.response.campaign_bonus.0);
        Ok(Outcome::fresh(record.response))
    }

    /// What a purchase leaves beside the member: the payment's mark (for referral review) and
    /// the store and categories on the member's traits (DESIGN.md "Custom segments"), these
    /// written only when they teach something new (most purchases write nothing).
    pub(super) fn beside(
        &self,
        req: &NewPurchase,
        (payment, prior): (Option<&str>, Option<Versioned<MemberTraits>>),
        (occurred_at, now): (DateTime<Utc>, DateTime<Utc>),
        w: &mut MemberWrite,
    ) -> Result<(), ServiceError> {
        if let Some(p) = payment {
            let mark = PaymentMark {
                seen_on: self.ctx.program_date(now),
            };
            w.batch.put(&(payment_hash(p), w.m.id.clone()), &mark)?;
        }
        let mut t = prior.as_ref().map(|v| v.value.clone()).unwrap_or_default();
        let categories = req
            .lines
            .iter()
            .flatten()
            .filter_map(|l| l.category.as_deref());
        let on = self.ctx.program_date(occurred_at);
        let today = self.ctx.program_date(now);
        if t.note_purchase(&req.store_id, categories, on, today) {
            w.batch
                .save(&w.m.id.clone(), &t, prior.map(|v| v.version))?;
        }
        Ok(())
    }

    /// `decide_purchase` until the budget slices it read cover its awards: when the member's
    /// own slice of a campaign's budget could not, every slice of those budgets is read once
    /// and the same decision made again (it finds them complete).
    pub(super) async fn decide_in_budget(
        &self,
        req: &NewPurchase,
        digest: &str,
        current: &Versioned<Member>,
        now: DateTime<Utc>,
        mut read: PurchaseRead<'_>,
    ) -> Result<(MemberWrite, PurchaseRecord), ServiceError> {
        loop {
            let mut w = MemberWrite::settled(&self.ctx, current, now);
            let mut short = Vec::new();
            let attempt = PurchaseRead {
                plays: read.plays.clone(),
                ..read
            };
            let record = self.decide_purchase(req, digest, &mut w, attempt, &mut short)?;
            if short.is_empty() {
                return Ok((w, record));
            }
            let (wide, rest): (Vec<_>, Vec<_>) = read
                .plays
                .into_iter()
                .partition(|p| short.contains(p.campaign_id()));
            read.plays = rest;
            read.plays
                .extend(self.campaigns.with_every_slice(wide).await?);
        }
    }

    /// What a purchase does to the member as read: its points (and campaigns' bonuses), lines,
    /// events and tier change, into the write; returns the purchase's record.
    pub(super) fn decide_purchase(
        &self,
        req: &NewPurchase,
        digest: &str,
        w: &mut MemberWrite,
        read: PurchaseRead,
        short: &mut Vec<CampaignId>,
    ) -> Result<PurchaseRecord, ServiceError> {
        let now = w.journal.now();
        let occurred_at = req.occurred(now);
        let first = w.m.first_purchase_at.is_none();
        let booked = self.book_purchase(&mut w.m, req, occurred_at, now)?;
        self.segments
            .resegment(&mut w.m, read.standing, now, &mut w.journal);
        let (balance, tier) = (w.m.balance, w.m.tier);
        let entry = w.journal.line(
            LedgerEntry::new(
                LedgerKind::Purchase,
                booked.earned,
                balance,
                Some(booked.reference.clone()),
                None,
                now,
            ),
            |moved, line| booked.event(req, tier, moved, line),
        );
        let credits = self.purchase_in_campaigns(req, &booked, read.plays, w, short)?;
        let caused = self.upgrade_on_purchase(&mut w.m, &booked, now, &mut w.journal);
        let referred = match read.referral {
            Some(step) => {
                let sale = PurchaseRef {
                    store_id: req.store_id.clone(),
                    receipt_id: req.receipt_id.clone(),
                };
                let bought = (req.amount.value, occurred_at, first);
                self.referrals
                    .purchase_referral(step, w, &sale, bought)?
                    .referrer
            }
            None => None,
        };
        let decided = Decided {
            booked,
            credits,
            caused,
            referred,
            ledger_entry_id: entry.id,
        };
        decided.record(req, digest, &w.m, now)
    }

    /// The purchase played in each campaign the member is in (`play_purchase`): its outcome
    /// counted, and what a treatment member is awarded.
    pub(super) fn purchase_in_campaigns(
        &self,
        req: &NewPurchase,
        booked: &Booked,
        plays: Vec<Play>,
        w: &mut MemberWrite,
        short: &mut Vec<CampaignId>,
    ) -> Result<Vec<CampaignCredit>, ServiceError> {
        let lines: Vec<(Option<&str>, i64)> = req
            .lines
            .iter()
            .flatten()
            .map(|l| (l.category.as_deref(), l.amount.value))
            .collect();
        let facts = PurchaseFacts {
            amount: req.amount.value,
            lines: &lines,
            points: booked.earned,
            rate: self.ctx.program.earn,
            tier_multiplier: self.ctx.program.tiers.rule(w.m.tier).multiplier,
        };
        let sale = PurchaseRef {
            store_id: req.store_id.clone(),
            receipt_id: req.receipt_id.clone(),
        };
        self.campaigns
            .play_purchase(plays, &facts, booked.occurred_at, &sale, w, short)
    }

    /// The purchase on the member's books: its points (pending or spendable, at the tier held
    /// before it), spend and purchase counts, and the reactivation it may be.
    pub(super) fn book_purchase(
        &self,
        m: &mut Member,
        req: &NewPurchase,
        occurred_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Booked, ServiceError> {
        let p = &self.ctx.program;
        let today = self.ctx.program_date(now);
        let occurred_on = self.ctx.program_date(occurred_at);
        // A purchase a few minutes ahead of the clock may fall in the next month: its tier is
        // judged on its own date, so the bucket it lands in counts.
        let judged_on = spend_judged_on(today, occurred_on);
        // The stage just before this purchase: a dormant or churned member is reactivated.
        let before = lifecycle(
            &m.activity(today, p.qualifying_window_months),
            &p.segments.lifecycle,
            now,
        );
        let earned = earn(req.amount.value, p.earn, p.tiers.rule(m.tier).multiplier)?;
        let origin = self.ctx.earn_lot(m, earned, occurred_at, now);
        m.lifetime_earned = m.lifetime_earned.checked_add(earned)?;
        m.spend.add(
            occurred_on,
            req.amount.value,
            judged_on,
            p.spend_months_kept(),
        )?;
        m.purchases
            .add(occurred_on, 1, judged_on, p.purchase_months_kept());
        m.note_purchase_day(occurred_on, req.amount.value);
        m.note_purchase_at(occurred_at, before);
        m.last_activity_at = now;
        Ok(Booked {
            earned,
            origin,
            judged_on,
            occurred_at,
            reference: format!("purchase:{}/{}", req.store_id, req.receipt_id),
        })
    }

    /// The upgrade the purchase's spend earns (decided by `tier::upgrade_caused`), on the member
    /// and as a `tier.upgraded` line; kept on the purchase so a refund can take it back.
    pub(super) fn upgrade_on_purchase(
        &self,
        m: &mut Member,
        booked: &Booked,
        now: DateTime<Utc>,
        journal: &mut Journal,
    ) -> Option<Caused> {
        let p = &self.ctx.program;
        let caused = upgrade_caused(
            m.tier,
            m.tier_expires_on,
            m.spend
                .qualifying(booked.judged_on, p.qualifying_window_months),
            &p.tiers,
            booked.judged_on,
            p.tier_validity_months,
            self.ctx.program_date(now),
        )?;
        let to = (caused.to, Some(caused.expires_on), LedgerKind::TierUpgrade);
        let note = format!("{} → {}", caused.from, caused.to);
        move_tier(m, journal, to, (booked.reference.clone(), note), None);
        Some(caused)
    }

    /// The purchase a receipt recorded, for an operator who holds the paper receipt.
    #[tracing::instrument(skip_all, fields(%store, %receipt))]
    pub async fn purchase_by_receipt(
        &self,
        store: &StoreId,
        receipt: &ReceiptId,
    ) -> Result<PurchaseView, ServiceError> {
        let p = self
            .ctx
            .table
            .get::<PurchaseRecord>(&(store.clone(), receipt.clone()))
            .await?
            .ok_or(ServiceError::NotFound("purchase"))?
            .value;
        Ok(PurchaseView {
            purchase_id: p.purchase_id,
            member_id: p.member_id,
            store_id: store.clone(),
            receipt_id: receipt.clone(),
            refunded_total: Money {
                value: p.refunded_total,
                currency: p.amount.currency,
            },
            amount: p.amount,
            occurred_at: p.occurred_at,
            points_earned: p.points_earned,
            campaign_bonus: Points(p.campaigns.iter().map(|c| c.points.0).sum()),
            lines: p.lines,
        })
    }
}
