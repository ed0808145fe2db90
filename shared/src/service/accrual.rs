//! Purchases and refunds. Idempotent by natural key: the purchase item (`store` + `receipt`) and
//! the refund item (`refund_id`) hold the request digest and the response, written in the same
//! commit as the points, so a replay returns the first answer and a different body is refused.

use super::error::ServiceError;
use super::events::Journal;
use super::members::{LedgerEntry, live, money};
use super::segments::SegmentState;
use super::{Outcome, Services};
use crate::domain::campaign::PurchaseFacts;
use crate::domain::earning::earn;
use crate::domain::event::{
    Earned, EventData, Moved, Pending, PurchaseRef, RefundRef, Reversal, Reversed, Sale,
    TierChangeReason, TierChanged,
};
use crate::domain::lots::Origin;
use crate::domain::member::{LedgerKind, Member};
use crate::domain::money::MAX_AMOUNT_MINOR;
pub use crate::domain::receipt::{PurchaseLine, PurchaseReceipt, RefundReceipt};
use crate::domain::segment::lifecycle;
use crate::domain::spend::{refund_reversal, spend_judged_on};
use crate::domain::tier::{Caused, revert_on_refund, upgrade_on_spend};
use crate::domain::{MemberId, Money, Phone, Points, ReceiptId, RefundId, StoreId};
use crate::retrying;
use crate::table::{Batch, PhoneClaim, PurchaseRecord, Reads, RefundRecord};
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;
use uuid::Uuid;

/// The member a purchase belongs to: exactly one of `id` or `phone`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRef {
    pub id: Option<MemberId>,
    pub phone: Option<Phone>,
}

/// Serialises an instant in UTC, so a request's digest does not depend on how its offset was
/// written (`Z`, `+00:00`, `+08:00` for the same instant).
fn as_utc<S: Serializer>(t: &DateTime<FixedOffset>, s: S) -> Result<S::Ok, S::Error> {
    t.with_timezone(&Utc).serialize(s)
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"member": {"id": "member-ada"}, "store_id": "store-1", "receipt_id": "R-1001", "amount": {"value": 1999, "currency": "USD"}, "occurred_at": "2026-11-22T09:30:00+08:00", "lines": [{"sku": "TEA-001", "category": "drinks", "quantity": 1, "amount": {"value": 1999, "currency": "USD"}}]}))]
pub struct PurchaseRequest {
    pub member: MemberRef,
    pub store_id: StoreId,
    pub receipt_id: ReceiptId,
    pub amount: Money,
    /// When the sale happened at the till (RFC 3339 with offset).
    #[serde(serialize_with = "as_utc")]
    pub occurred_at: DateTime<FixedOffset>,
    pub lines: Option<Vec<PurchaseLine>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refund_id": "RF-1", "amount": {"value": 999, "currency": "USD"}}))]
pub struct RefundRequest {
    pub refund_id: RefundId,
    pub amount: Money,
}

impl Services {
    fn check_amount(&self, field: &str, m: Money) -> Result<(), ServiceError> {
        if m.currency != self.program.currency {
            return Err(ServiceError::CurrencyMismatch {
                expected: self.program.currency,
                got: m.currency,
            });
        }
        m.positive_amount()
            .map(|_| ())
            .map_err(|e| ServiceError::invalid(&format!("{field}.value"), e))
    }

    fn check_purchase_shape(&self, req: &PurchaseRequest) -> Result<(), ServiceError> {
        if req.member.id.is_some() == req.member.phone.is_some() {
            return Err(ServiceError::malformed(
                "member",
                "give exactly one of member.id or member.phone",
            ));
        }
        self.check_amount("amount", req.amount)?;
        let lines = req.lines.as_deref().unwrap_or_default();
        if lines.len() > 200 {
            return Err(ServiceError::field("lines", "at most 200 lines"));
        }
        for (i, l) in lines.iter().enumerate() {
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
            if l.amount.currency != self.program.currency {
                return Err(ServiceError::CurrencyMismatch {
                    expected: self.program.currency,
                    got: l.amount.currency,
                });
            }
            if !(0..=MAX_AMOUNT_MINOR).contains(&l.amount.value) {
                return Err(ServiceError::field(
                    &f("amount.value"),
                    "line amounts must be between 0 and 10^12 minor units",
                ));
            }
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
        let p = &self.program;
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
    pub async fn purchase(
        &self,
        req: PurchaseRequest,
        request_digest: &str,
    ) -> Result<Outcome<PurchaseReceipt>, ServiceError> {
        self.check_purchase_shape(&req)?;
        retrying!(self, self.try_purchase(&req, request_digest))
    }

    async fn resolve_member(&self, r: &MemberRef) -> Result<MemberId, ServiceError> {
        if let Some(id) = &r.id {
            return Ok(id.clone());
        }
        let phone = r.phone.as_ref().ok_or(ServiceError::NotFound("member"))?;
        let claim = self
            .table
            .get::<PhoneClaim>(phone)
            .await?
            .ok_or(ServiceError::NotFound("member with this phone"))?;
        Ok(claim.value.member_id)
    }

    async fn try_purchase(
        &self,
        req: &PurchaseRequest,
        digest: &str,
    ) -> Result<Outcome<PurchaseReceipt>, ServiceError> {
        let now = self.now();
        let member_id = self.resolve_member(&req.member).await?;
        let pid = (req.store_id.clone(), req.receipt_id.clone());
        let mut reads = Reads::new();
        let member = reads.add::<Member>(&member_id);
        let purchase = reads.add::<PurchaseRecord>(&pid);
        let state = reads.add::<SegmentState>(&());
        let campaigns = self.campaign_reads(&mut reads, &member_id);
        let found = self.table.read(&reads).await?;
        if let Some(prior) = found.get(&purchase)? {
            return if prior.value.request_hash == digest {
                Ok(Outcome::replay(prior.value.response))
            } else {
                Err(ServiceError::ReceiptConflict)
            };
        }
        let occurred_at = req.occurred_at.with_timezone(&Utc);
        self.check_purchase_time(occurred_at, now)?;
        let current = live(found.get(&member)?)?;
        let plays = self.campaign_plays(&found, campaigns).await?;
        let p = &self.program;
        let mut m: Member = current.value;
        let today = self.program_date(now);
        let occurred_on = self.program_date(occurred_at);
        // A purchase a few minutes ahead of the clock may fall in the next month: its tier is
        // judged on its own date, so the bucket it lands in counts.
        let judged_on = spend_judged_on(today, occurred_on);
        let cuts = self.cut_points(found.get(&state)?);
        // The stage just before this purchase: a dormant or churned member is reactivated.
        let before = lifecycle(
            &m.activity(today, p.qualifying_window_months),
            &p.segments.lifecycle,
            now,
        );

        let mut journal = Journal::new(self, &m, now);
        self.settle(&mut m, &mut journal, now);
        // The crossing purchase earns at the tier held before it.
        let earned = earn(req.amount.value, p.earn, p.tiers.rule(m.tier).multiplier)?;
        let origin = self.earn_lot(&mut m, earned, occurred_at, now);
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

        let reference = format!("purchase:{}/{}", req.store_id, req.receipt_id);
        let mut batch = Batch::new();
        self.resegment(&mut m, &cuts, now, &mut journal);
        let sale = Sale {
            store_id: req.store_id.clone(),
            receipt_id: req.receipt_id.clone(),
            amount: req.amount,
            occurred_at,
            tier: m.tier,
        };
        let entry = journal.line(
            LedgerEntry::new(
                LedgerKind::Purchase,
                earned,
                m.balance,
                Some(reference.clone()),
                None,
                now,
            ),
            |moved, line| match origin {
                // Pending points are in the ledger but not yet in the balance: their event moves
                // none.
                Origin::Pending(available_on) => EventData::PointsPending(Pending {
                    moved: Moved {
                        points: Points::ZERO,
                        ..moved
                    },
                    line,
                    sale,
                    pending: earned,
                    available_on,
                }),
                Origin::Available(_) => EventData::PointsEarned(Earned { moved, line, sale }),
            },
        );
        let lines: Vec<(Option<&str>, i64)> = req
            .lines
            .iter()
            .flatten()
            .map(|l| (l.category.as_deref(), l.amount.value))
            .collect();
        let facts = PurchaseFacts {
            amount: req.amount.value,
            lines: &lines,
            points: earned,
            rate: p.earn,
            tier_multiplier: p.tiers.rule(m.tier).multiplier,
        };
        let credits = self.play_purchase(
            plays,
            &facts,
            occurred_at,
            &PurchaseRef {
                store_id: req.store_id.clone(),
                receipt_id: req.receipt_id.clone(),
            },
            &mut m,
            &mut journal,
            &mut batch,
        )?;
        let bonus = credits
            .iter()
            .try_fold(Points::ZERO, |a, c| a.checked_add(c.points))?;
        let qualifying = m.spend.qualifying(judged_on, p.qualifying_window_months);
        let upgrade = upgrade_on_spend(
            m.tier,
            qualifying,
            &p.tiers,
            judged_on,
            p.tier_validity_months,
        );
        let mut caused = None;
        if let Some(up) = upgrade {
            let note = format!("{} → {}", m.tier, up.tier);
            let from = m.tier;
            caused = Some(Caused {
                from,
                from_expires_on: m.tier_expires_on,
                to: up.tier,
                expires_on: up.expires_on,
                on: self.program_date(now),
            });
            m.tier = up.tier;
            m.tier_expires_on = Some(up.expires_on);
            journal.line(
                LedgerEntry::new(
                    LedgerKind::TierUpgrade,
                    Points::ZERO,
                    m.balance,
                    Some(reference),
                    Some(note),
                    now,
                ),
                |moved, line| {
                    EventData::TierUpgraded(TierChanged {
                        moved,
                        line,
                        from,
                        to: up.tier,
                        expires_on: Some(up.expires_on),
                        reason: None,
                    })
                },
            );
        }
        let receipt = PurchaseReceipt {
            purchase_id: Uuid::now_v7(),
            member_id: m.id.clone(),
            points_earned: earned,
            campaign_bonus: bonus,
            balance: m.balance,
            tier: m.tier,
            tier_changed: upgrade.is_some(),
            ledger_entry_id: entry.id,
        };
        let record = PurchaseRecord {
            purchase_id: receipt.purchase_id,
            member_id: m.id.clone(),
            amount: req.amount,
            occurred_at,
            points_earned: earned,
            refunded_total: 0,
            lines: req.lines.clone().unwrap_or_default(),
            request_hash: digest.to_owned(),
            response: receipt.clone(),
            created_at: now,
            campaigns: credits,
            origin: Some(origin),
            upgrade: caused,
        };
        // A concurrent duplicate fails this absence condition; the re-read replays it.
        batch.create(&pid, &record)?;
        journal.close(self, &mut m, &mut batch)?;
        batch.save(&m.id, &m, Some(current.version))?;
        self.table.commit(batch).await?;
        crate::metrics::points_earned(earned.0 + bonus.0);
        Ok(Outcome::fresh(receipt))
    }

    pub async fn refund(
        &self,
        store: &StoreId,
        receipt: &ReceiptId,
        req: RefundRequest,
        request_digest: &str,
    ) -> Result<Outcome<RefundReceipt>, ServiceError> {
        // The currency is checked against the purchase's own, once it is read: a refund is
        // always in the currency that was paid, whatever the program's currency is today.
        req.amount
            .positive_amount()
            .map_err(|e| ServiceError::invalid("amount.value", e))?;
        retrying!(self, self.try_refund(store, receipt, &req, request_digest))
    }

    async fn try_refund(
        &self,
        store: &StoreId,
        receipt: &ReceiptId,
        req: &RefundRequest,
        digest: &str,
    ) -> Result<Outcome<RefundReceipt>, ServiceError> {
        let now = self.now();
        let pid = (store.clone(), receipt.clone());
        let mut reads = Reads::new();
        let purchase = reads.add::<PurchaseRecord>(&pid);
        let refund =
            reads.add::<RefundRecord>(&(store.clone(), receipt.clone(), req.refund_id.clone()));
        let found = self.table.read(&reads).await?;
        if let Some(prior) = found.get(&refund)? {
            return if prior.value.request_hash == digest {
                Ok(Outcome::replay(prior.value.response))
            } else {
                Err(ServiceError::ReceiptConflict)
            };
        }
        let purchase = found
            .get(&purchase)?
            .ok_or(ServiceError::NotFound("purchase"))?;
        let mut pr = purchase.value;
        if req.amount.currency != pr.amount.currency {
            return Err(ServiceError::CurrencyMismatch {
                expected: pr.amount.currency,
                got: req.amount.currency,
            });
        }
        let would_total = pr
            .refunded_total
            .checked_add(req.amount.value)
            .ok_or(crate::domain::Overflow)?;
        if would_total > pr.amount.value {
            return Err(ServiceError::RefundExceedsPurchase {
                purchase_amount: pr.amount.value,
                would_total,
            });
        }
        let mut reads = Reads::new();
        let member = reads.add::<Member>(&pr.member_id);
        let state = reads.add::<SegmentState>(&());
        let credits = Services::refund_reads(&mut reads, &pr.member_id, &pr.campaigns);
        let found = self.table.read(&reads).await?;
        let current = live(found.get(&member)?)?;
        let cuts = self.cut_points(found.get(&state)?);
        let mut m = current.value;
        let p = &self.program;
        let mut journal = Journal::new(self, &m, now);
        self.settle(&mut m, &mut journal, now);
        let reversed = refund_reversal(
            pr.points_earned,
            pr.refunded_total,
            req.amount.value,
            pr.amount.value,
        )?;
        // While the purchase's points are pending, the refund takes them from there.
        let taken = self.debit(&mut m, reversed, pr.origin);
        m.lifetime_earned = m.lifetime_earned.checked_sub(reversed)?;
        m.spend.add(
            self.program_date(pr.occurred_at),
            -req.amount.value,
            self.program_date(now),
            p.spend_months_kept(),
        )?;
        if would_total == pr.amount.value {
            // A fully refunded purchase no longer counts as one (frequency, retention).
            m.purchases.add(
                self.program_date(pr.occurred_at),
                -1,
                self.program_date(now),
                p.purchase_months_kept(),
            );
        }
        m.last_activity_at = now;
        let refunded_before = pr.refunded_total;
        pr.refunded_total = would_total;
        let today = self.program_date(now);
        let revert = revert_on_refund(
            m.tier,
            pr.upgrade.as_ref(),
            today,
            p.points.pending_days,
            m.spend.qualifying(today, p.qualifying_window_months),
            &p.tiers,
        );

        let reference = format!("refund:{store}/{receipt}/{}", req.refund_id);
        let mut batch = Batch::new();
        self.resegment(&mut m, &cuts, now, &mut journal);
        let refund = RefundRef {
            store_id: store.clone(),
            receipt_id: receipt.clone(),
            refund_id: req.refund_id.clone(),
        };
        journal.line(
            LedgerEntry::new(
                LedgerKind::Refund,
                reversed.checked_neg()?,
                m.balance,
                Some(reference.clone()),
                None,
                now,
            ),
            |moved, line| {
                // What came off pending points never was in the balance.
                let (moved, pending) = match taken.from_pending {
                    0 => (moved, None),
                    p => (
                        Moved {
                            points: Points(p - reversed.0),
                            ..moved
                        },
                        Some(Points(-p)),
                    ),
                };
                EventData::PointsReversed(Reversed {
                    moved,
                    line,
                    of: Reversal::Purchase {
                        refund: refund.clone(),
                        amount: req.amount,
                        refunded_total: money(would_total, pr.amount.currency),
                        pending,
                    },
                })
            },
        );
        let bonus_reversed = self.play_refund(
            credits,
            &found,
            refunded_before,
            req.amount.value,
            pr.amount.value,
            &refund,
            &mut m,
            &mut journal,
            &mut batch,
        )?;
        let reversed = reversed.checked_add(bonus_reversed)?;
        if let Some((tier, expires_on)) = revert {
            let from = m.tier;
            m.tier = tier;
            m.tier_expires_on = expires_on;
            journal.line(
                LedgerEntry::new(
                    LedgerKind::TierDowngrade,
                    Points::ZERO,
                    m.balance,
                    Some(reference),
                    Some(format!(
                        "{from} → {tier} (the upgrade's purchase was refunded)"
                    )),
                    now,
                ),
                |moved, line| {
                    EventData::TierDowngraded(TierChanged {
                        moved,
                        line,
                        from,
                        to: tier,
                        expires_on,
                        reason: Some(TierChangeReason::Refund),
                    })
                },
            );
        }
        let response = RefundReceipt {
            refund_id: req.refund_id.clone(),
            points_reversed: reversed,
            balance: m.balance,
            refunded_total: money(would_total, pr.amount.currency),
        };
        let record = RefundRecord {
            amount: req.amount,
            points_reversed: reversed,
            request_hash: digest.to_owned(),
            response: response.clone(),
            created_at: now,
        };
        journal.close(self, &mut m, &mut batch)?;
        batch.save(&m.id, &m, Some(current.version))?;
        batch.save(&pid, &pr, Some(purchase.version))?;
        batch.create(
            &(store.clone(), receipt.clone(), req.refund_id.clone()),
            &record,
        )?;
        self.table.commit(batch).await?;
        Ok(Outcome::fresh(response))
    }
}
