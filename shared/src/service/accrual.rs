//! Purchases and refunds. Idempotent by natural key: the purchase item (`store` + `receipt`) and
//! the refund item (`refund_id`) hold the request digest and the response, written in the same
//! commit as the points, so a replay returns the first answer and a different body is refused.

use super::Outcome;
use super::audit::Audited;
use super::campaigns::Play;
use super::error::ServiceError;
use super::error::live;
use super::events::Journal;
use super::members::money;
use super::referrals::{ReferralStep, ReferringSlots, payment_hash};
use super::referrals::{Referring, RefundOf};
use super::segments::SegmentState;
use super::tiers::move_tier;
use super::unit::MemberWrite;
use crate::domain::CampaignId;
use crate::domain::audit::{Actor, AuditAction, Change};
use crate::domain::campaign::PurchaseFacts;
use crate::domain::campaign::{Assignment, CampaignCredit};
use crate::domain::earning::earn;
use crate::domain::event::{
    Earned, EventData, LineRef, Moved, Pending, Reversal, Reversed, Sale, TierChangeReason,
};
use crate::domain::ledger::LedgerEntry;
use crate::domain::ledger::LedgerKind;
use crate::domain::lots::Origin;
use crate::domain::member::Member;
use crate::domain::money::MAX_AMOUNT_MINOR;
pub use crate::domain::receipt::{PurchaseLine, PurchaseReceipt, PurchaseView, RefundReceipt};
use crate::domain::receipt::{PurchaseRef, RefundRef};
use crate::domain::segment::{CutPoints, lifecycle};
use crate::domain::spend::{refund_reversal, spend_judged_on};
use crate::domain::tier::{Caused, Tier, revert_on_refund, upgrade_caused};
use crate::domain::{MemberId, Money, Phone, PhoneInput, Points, ReceiptId, RefundId, StoreId};
use crate::retrying;
use crate::service::Campaigns;
use crate::service::Ctx;
use crate::service::Referrals;
use crate::service::Segmentation;
use crate::table::{
    Batch, Fetched, PaymentMark, PhoneClaim, PurchaseRecord, Reads, RefundRecord, Replica, Slot,
    Versioned,
};
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;
use uuid::Uuid;

/// Purchases and refunds at the till: the points they earn and take back, the campaigns they play
/// and the referrals they qualify or claw back.
#[derive(Clone)]
pub struct Purchases {
    pub(crate) ctx: Ctx,
    pub(crate) campaigns: Campaigns,
    pub(crate) referrals: Referrals,
    pub(crate) segments: Segmentation,
}

/// What a purchase put on the member's books.
/// What a purchase decided, besides the member: the record it keeps and the answer it gives.
struct Decided {
    booked: Booked,
    credits: Vec<CampaignCredit>,
    caused: Option<Caused>,
    referred: Option<MemberId>,
    ledger_entry_id: Uuid,
}

impl Decided {
    fn record(
        self,
        req: &PurchaseRequest,
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
struct PurchaseRead<'a> {
    cuts: &'a CutPoints,
    plays: Vec<Play>,
    referral: Option<&'a ReferralStep>,
}

struct Booked {
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
    fn event(&self, req: &PurchaseRequest, tier: Tier, moved: Moved, line: LineRef) -> EventData {
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

/// The member a purchase belongs to: exactly one of `id` or `phone`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRef {
    pub id: Option<MemberId>,
    #[schema(value_type = Option<Phone>)]
    pub phone: Option<PhoneInput>,
}

/// Serialises an instant in UTC, so a request's digest does not depend on how its offset was
/// written (`Z`, `+00:00`, `+08:00` for the same instant).
fn as_utc<S: Serializer>(t: &Option<DateTime<FixedOffset>>, s: S) -> Result<S::Ok, S::Error> {
    t.map(|t| t.with_timezone(&Utc)).serialize(s)
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"member": {"id": "member-ada"}, "store_id": "store-1", "receipt_id": "R-1001", "amount": {"value": 1999, "currency": "USD"}, "occurred_at": "2026-11-22T09:30:00+08:00", "lines": [{"sku": "TEA-001", "category": "drinks", "quantity": 1, "amount": {"value": 1999, "currency": "USD"}}]}))]
pub struct PurchaseRequest {
    pub member: MemberRef,
    pub store_id: StoreId,
    pub receipt_id: ReceiptId,
    pub amount: Money,
    /// When the sale happened at the till (RFC 3339 with offset); absent, when the purchase is
    /// recorded (so a sample or a simple till never goes stale).
    #[serde(
        default,
        serialize_with = "as_utc",
        skip_serializing_if = "Option::is_none"
    )]
    pub occurred_at: Option<DateTime<FixedOffset>>,
    pub lines: Option<Vec<PurchaseLine>>,
    /// An opaque hash of the card or wallet token, when the POS has one: stored hashed again,
    /// never returned, compared with the referrer's for the self-referral rule.
    pub payment_fingerprint: Option<String>,
}

impl PurchaseRequest {
    /// When the sale happened: as the till said, else `now` (when it is recorded).
    pub fn occurred(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.occurred_at.map_or(now, |t| t.with_timezone(&Utc))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refund_id": "RF-1", "amount": {"value": 999, "currency": "USD"}}))]
pub struct RefundRequest {
    pub refund_id: RefundId,
    pub amount: Money,
}

impl Purchases {
    fn check_amount(&self, field: &str, m: Money) -> Result<(), ServiceError> {
        if m.currency != self.ctx.program.currency {
            return Err(ServiceError::CurrencyMismatch {
                expected: self.ctx.program.currency,
                got: m.currency,
            });
        }
        m.positive_amount()
            .map(|_| ())
            .map_err(|e| ServiceError::invalid(&format!("{field}.value"), e))
    }

    /// One purchase line: its sku, category, quantity and amount (400 naming `lines[i]`).
    fn check_line(&self, i: usize, l: &PurchaseLine) -> Result<(), ServiceError> {
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

    fn check_purchase_shape(&self, req: &PurchaseRequest) -> Result<(), ServiceError> {
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

    fn check_purchase_time(
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
        req: PurchaseRequest,
        request_digest: &str,
        actor: Option<&Actor>,
    ) -> Result<Outcome<PurchaseReceipt>, ServiceError> {
        self.check_purchase_shape(&req)?;
        retrying!(self.ctx, self.try_purchase(&req, request_digest, actor))
    }

    async fn resolve_member(&self, r: &MemberRef) -> Result<MemberId, ServiceError> {
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
    async fn try_purchase(
        &self,
        req: &PurchaseRequest,
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
        let cuts = self.segments.cut_points(found.get(&state)?);
        let read = PurchaseRead {
            cuts: &cuts,
            plays,
            referral: referral.as_ref(),
        };
        let (mut w, record) = self
            .decide_in_budget(req, digest, &current, now, read)
            .await?;
        if let Some(p) = payment {
            let mark = PaymentMark {
                seen_on: self.ctx.program_date(now),
            };
            w.batch.put(&(payment_hash(p), member_id.clone()), &mark)?;
        }
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

    /// `decide_purchase` until the budget slices it read cover its awards: when the member's
    /// own slice of a campaign's budget could not, every slice of those budgets is read once
    /// and the same decision made again (it finds them complete).
    async fn decide_in_budget(
        &self,
        req: &PurchaseRequest,
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
    fn decide_purchase(
        &self,
        req: &PurchaseRequest,
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
            .resegment(&mut w.m, read.cuts, now, &mut w.journal);
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
    fn purchase_in_campaigns(
        &self,
        req: &PurchaseRequest,
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
    fn book_purchase(
        &self,
        m: &mut Member,
        req: &PurchaseRequest,
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
    fn upgrade_on_purchase(
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

    #[tracing::instrument(skip_all, fields(%store, %receipt, refund = %req.refund_id))]
    pub async fn refund(
        &self,
        store: &StoreId,
        receipt: &ReceiptId,
        req: RefundRequest,
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
    async fn try_refund(
        &self,
        store: &StoreId,
        receipt: &ReceiptId,
        req: &RefundRequest,
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
    async fn refunded_purchase(
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
    async fn read_for_refund(&self, pr: &PurchaseRecord) -> Result<RefundRead, ServiceError> {
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
            cuts: self.segments.cut_points(found.get(&state)?),
            credits,
            referral,
            found,
        })
    }

    /// The goods come back whatever we know of the buyer: nothing is credited to an erased
    /// member (their points were forfeited), but what the refund does to others stands — the
    /// referrer's reward, the campaigns' counts.
    fn refund_of_erased(
        &self,
        pr: &mut PurchaseRecord,
        req: &RefundRequest,
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
    fn refund_of_member(
        &self,
        pr: &mut PurchaseRecord,
        req: &RefundRequest,
        refund: RefundOf,
        read: RefundRead,
        batch: &mut Batch,
    ) -> Result<(Points, MemberWrite), ServiceError> {
        let now = refund.now;
        let mut w = MemberWrite::settled(&self.ctx, &read.member, now);
        let MemberWrite { m, journal, .. } = &mut w;
        let unbooked = self.book_refund(m, pr, req.amount.value, refund.refunded_total, now)?;
        self.segments.resegment(m, &read.cuts, now, journal);
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
    fn book_refund(
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
    fn refund_lines(
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

/// The refund's total refunded so far, once it is checked against the purchase: in the
/// currency that was paid, and never more than the purchase.
fn refunded_total_after(pr: &PurchaseRecord, amount: Money) -> Result<i64, ServiceError> {
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
struct Unbooked {
    reversed: Points,
    from_pending: i64,
    refunded_before: i64,
    revert: Option<(Tier, Option<NaiveDate>)>,
}

impl Unbooked {
    /// `points.reversed` for the purchase's own points.
    fn event(
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
struct RefundRead {
    member: Versioned<Member>,
    cuts: CutPoints,
    credits: Vec<(CampaignCredit, Slot<Assignment>)>,
    referral: Option<(
        Versioned<crate::domain::referral::Referral>,
        Option<Referring>,
    )>,
    found: Fetched,
}

struct RefundLines<'a> {
    pr: &'a PurchaseRecord,
    req: &'a RefundRequest,
    of: &'a RefundRef,
    unbooked: Unbooked,
    credits: Vec<(CampaignCredit, Slot<Assignment>)>,
    found: &'a Fetched,
}

/// A natural key (a receipt, a refund id) met again: the same request is replayed, another one
/// under the same key is refused (409).
fn same_receipt(recorded: &str, digest: &str) -> Result<(), ServiceError> {
    if recorded == digest {
        Ok(())
    } else {
        Err(ServiceError::ReceiptConflict)
    }
}

/// The tier a refunded upgrade's purchase had lifted the member from, back with its expiry.
fn revert_tier(
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
