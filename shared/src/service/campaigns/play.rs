//! The part of a purchase or refund that plays the running campaigns: what the purchase reads,
//! the awards it takes from the budget slices, and what a refund reverses.

use super::{CampaignReads, Play, reference, refunded_assignment};
use crate::domain::campaign::{self, PlayDecision, PurchaseFacts};
use crate::domain::campaign::{
    Assignment, Campaign, CampaignCredit, CampaignStatus, RunningCampaigns,
};
use crate::domain::event::{Awarded, EventData, Reversal, Reversed};
use crate::domain::ledger::LedgerEntry;
use crate::domain::ledger::LedgerKind;
use crate::domain::member::Member;
use crate::domain::receipt::{PurchaseRef, RefundRef};
use crate::domain::slices;
use crate::domain::{CampaignId, MemberId, Points};
use crate::service::Campaigns;
use crate::service::error::ServiceError;
use crate::service::events::Journal;
use crate::service::unit::MemberWrite;
use crate::table::{Batch, BudgetSlice, Fetched, Reads, Replica, Slice, Slot, shard_of};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

impl Campaigns {
    /// Adds the member's copy of the registry, and for each campaign this process knows to be
    /// running the member's budget slice (unless the budget is known used up) and assignment,
    /// to a purchase's batch read.
    pub(crate) fn campaign_reads(&self, reads: &mut Reads, member: &MemberId) -> CampaignReads {
        let registry = reads.add::<RunningCampaigns>(&Replica::of(member));
        let slots = self
            .running
            .known()
            .into_values()
            .map(|k| {
                let slice = (!k.exhausted).then(|| {
                    let home = shard_of(member, k.campaign.slices.max(1));
                    reads.add::<BudgetSlice>(&(k.campaign.id.clone(), home))
                });
                let a = reads.add::<Assignment>(&(k.campaign.id.clone(), member.clone()));
                (k, slice, a)
            })
            .collect();
        CampaignReads {
            registry,
            member: member.clone(),
            slots,
        }
    }

    /// The running campaigns this member is in. Reads again only for campaigns this process did
    /// not know were running (the first purchase after a launch or a cold start).
    pub(crate) async fn campaign_plays(
        &self,
        found: &Fetched,
        r: CampaignReads,
    ) -> Result<Vec<Play>, ServiceError> {
        let running: Vec<CampaignId> = found
            .get(&r.registry)?
            .map(|v| v.value.running.into_iter().map(|e| e.id).collect())
            .unwrap_or_default();
        self.running.keep_only(&running);
        let mut plays = Vec::new();
        let mut seen = BTreeSet::new();
        for (k, slice, a) in r.slots {
            if !running.contains(&k.campaign.id) {
                continue;
            }
            seen.insert(k.campaign.id.clone());
            let slices = match &slice {
                Some(slot) => found
                    .get(slot)?
                    .map(|v| vec![(k.campaign.home_of(&r.member), v.value.0)])
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            if let Some(assignment) = found.get(&a)? {
                plays.push(Play {
                    complete: k.exhausted,
                    campaign: k.campaign,
                    slices,
                    assignment,
                });
            }
        }
        let missing: Vec<&CampaignId> = running.iter().filter(|id| !seen.contains(*id)).collect();
        if !missing.is_empty() {
            plays.extend(self.first_seen(&missing, &r.member).await?);
        }
        Ok(plays)
    }

    /// Campaigns running that this process did not know of: each read with the member's
    /// assignment (one round trip), learned, and played with every slice of its budget.
    async fn first_seen(
        &self,
        missing: &[&CampaignId],
        member: &MemberId,
    ) -> Result<Vec<Play>, ServiceError> {
        let mut reads = Reads::new();
        let slots: Vec<_> = missing
            .iter()
            .map(|id| {
                (
                    reads.add::<Campaign>(id),
                    reads.add::<Assignment>(&((*id).clone(), member.clone())),
                )
            })
            .collect();
        let again = self.ctx.table.read(&reads).await?;
        let mut learned = Vec::new();
        for (c, a) in slots {
            let Some(c) = again.get(&c)?.map(|v| v.value) else {
                continue;
            };
            if c.status != CampaignStatus::Running || c.slices == 0 {
                continue;
            }
            self.running.learn(&c);
            if let Some(assignment) = again.get(&a)? {
                learned.push(Play {
                    campaign: c,
                    slices: Vec::new(),
                    complete: false,
                    assignment,
                });
            }
        }
        // Their slices are read whole: this is already the rare path.
        self.with_every_slice(learned).await
    }

    /// The plays with every slice of their budgets read (one round trip for all): for a
    /// purchase whose own slice was short, and for campaigns first seen. A budget found used
    /// up is remembered, so later purchases read no slice of it.
    pub(crate) async fn with_every_slice(
        &self,
        plays: Vec<Play>,
    ) -> Result<Vec<Play>, ServiceError> {
        let mut reads = Reads::new();
        let slots: Vec<Vec<(u32, Slot<BudgetSlice>)>> = plays
            .iter()
            .map(|p| {
                (0..p.campaign.slices)
                    .map(|n| (n, reads.add::<BudgetSlice>(&(p.campaign.id.clone(), n))))
                    .collect()
            })
            .collect();
        let found = self.ctx.table.read(&reads).await?;
        let mut out = Vec::new();
        for (mut p, slots) in plays.into_iter().zip(slots) {
            p.slices = Vec::new();
            for (n, slot) in slots {
                if let Some(v) = found.get(&slot)? {
                    p.slices.push((n, v.value.0));
                }
            }
            p.complete = true;
            if p.slices.iter().all(|(_, s)| s.room() == 0) {
                self.running.exhausted(&p.campaign.id);
            }
            out.push(p);
        }
        Ok(out)
    }

    /// Plays a purchase in each campaign the member is in: counts it in their outcome when it
    /// falls in the window, and awards a treatment member what the offer, their limit and the
    /// budget allow, taken from the budget's slices. Everything goes into the purchase's batch.
    /// A campaign whose award the member's own slice cannot cover, while the other slices are
    /// unread, goes into `short` and earns nothing here: the caller reads every slice of it
    /// ([`Campaigns::with_every_slice`]) and decides again.
    pub(crate) fn play_purchase(
        &self,
        plays: Vec<Play>,
        facts: &PurchaseFacts,
        occurred_at: DateTime<Utc>,
        purchase_ref: &PurchaseRef,
        w: &mut MemberWrite,
        short: &mut Vec<CampaignId>,
    ) -> Result<Vec<CampaignCredit>, ServiceError> {
        let mut credits = Vec::new();
        for play in plays {
            let home = play.home();
            let Play {
                campaign: c,
                slices: read,
                complete,
                assignment,
            } = play;
            let room: i64 = read.iter().map(|(_, s)| s.room()).sum();
            let decided = campaign::play(&c, &assignment.value, facts, occurred_at, room, complete);
            let points = match decided? {
                PlayDecision::OutOfWindow => continue,
                PlayDecision::Short => {
                    short.push(c.id.clone());
                    continue;
                }
                PlayDecision::Counted { points } => points,
            };
            let mut a = assignment.value;
            a.count(facts.amount, points)?;
            if points.0 > 0 {
                take_budget(&mut w.batch, &c, &read, home, points);
                self.award(w, &c, points, purchase_ref)?;
            }
            let key = (c.id.clone(), w.m.id.clone());
            w.batch.save(&key, &a, Some(assignment.version))?;
            credits.push(CampaignCredit {
                campaign_id: c.id,
                points,
            });
        }
        Ok(credits)
    }

    /// A campaign's bonus on the member's books: a `campaign.awarded` line.
    fn award(
        &self,
        w: &mut MemberWrite,
        c: &Campaign,
        points: Points,
        purchase_ref: &PurchaseRef,
    ) -> Result<(), ServiceError> {
        let MemberWrite { m, journal, .. } = w;
        let now = journal.now();
        self.ctx.credit(m, points, now);
        m.lifetime_earned = m.lifetime_earned.checked_add(points)?;
        journal.line(
            LedgerEntry::new(
                LedgerKind::CampaignBonus,
                points,
                m.balance,
                Some(reference(&c.id)),
                Some(c.name.clone()),
                now,
            ),
            |moved, line| {
                EventData::CampaignAwarded(Awarded {
                    moved,
                    line,
                    campaign_id: c.id.clone(),
                    purchase: purchase_ref.clone(),
                })
            },
        );
        Ok(())
    }

    /// Adds the assignments a purchase counted in to a refund's read.
    pub(crate) fn refund_reads(
        reads: &mut Reads,
        member: &MemberId,
        credits: &[CampaignCredit],
    ) -> Vec<(CampaignCredit, Slot<Assignment>)> {
        credits
            .iter()
            .map(|c| {
                (
                    c.clone(),
                    reads.add::<Assignment>(&(c.campaign_id.clone(), member.clone())),
                )
            })
            .collect()
    }

    /// Takes a refund out of the outcomes it counted in, and reverses the awards pro rata:
    /// summed over any split of a full refund, exactly what was awarded. Returns the points
    /// reversed.
    pub(crate) fn reverse_bonuses(
        &self,
        reversals: Vec<(CampaignId, Points)>,
        refund_ref: &RefundRef,
        m: &mut Member,
        journal: &mut Journal,
    ) -> Result<Points, ServiceError> {
        let now = journal.now();
        let mut total = Points::ZERO;
        for (campaign_id, reversed) in reversals {
            if reversed.0 <= 0 {
                continue;
            }
            self.ctx.debit(m, reversed, None);
            m.lifetime_earned = m.lifetime_earned.checked_sub(reversed)?;
            total = total.checked_add(reversed)?;
            journal.line(
                LedgerEntry::new(
                    LedgerKind::CampaignBonus,
                    reversed.checked_neg()?,
                    m.balance,
                    Some(reference(&campaign_id)),
                    None,
                    now,
                ),
                |moved, line| {
                    EventData::PointsReversed(Reversed {
                        moved,
                        line,
                        of: Reversal::Campaign {
                            campaign_id: campaign_id.clone(),
                            refund: refund_ref.clone(),
                        },
                    })
                },
            );
        }
        Ok(total)
    }

    /// What a refund does to the campaigns that counted its purchase, into `batch`: each
    /// assignment counts it as a refund (spend, purchases, the award no longer standing).
    /// Returns each campaign's award reversed; the caller takes it from the member (an erased
    /// member's refund takes nothing: their points were forfeited).
    pub(crate) fn unplay_refund(
        &self,
        slots: Vec<(CampaignCredit, Slot<Assignment>)>,
        found: &Fetched,
        refunded_before: i64,
        refund: i64,
        purchase_amount: i64,
        batch: &mut Batch,
    ) -> Result<Vec<(CampaignId, Points)>, ServiceError> {
        let mut reversals = Vec::new();
        for (credit, slot) in slots {
            let Some(current) = found.get(&slot)? else {
                continue;
            };
            let member_id = current.value.member_id.clone();
            let (a, reversed) = refunded_assignment(
                current.value,
                &credit,
                refunded_before,
                refund,
                purchase_amount,
            )?;
            batch.save(
                &(credit.campaign_id.clone(), member_id),
                &a,
                Some(current.version),
            )?;
            reversals.push((credit.campaign_id, reversed));
        }
        Ok(reversals)
    }
}

/// An award's points taken from the campaign's budget slices, the member's home slice first
/// (`slices::plan`), each take conditioned on the slice's cap.
fn take_budget(batch: &mut Batch, c: &Campaign, read: &[(u32, Slice)], home: u32, points: Points) {
    let mut rooms = vec![0; c.slices as usize];
    for (n, s) in read {
        if let Some(r) = rooms.get_mut(*n as usize) {
            *r = s.room();
        }
    }
    for (n, take) in slices::plan(points.0, home, &rooms) {
        let cap = read.iter().find(|(k, _)| *k == n).map_or(0, |(_, s)| s.cap);
        batch.take::<BudgetSlice>(&(c.id.clone(), n), take, cap);
    }
}
