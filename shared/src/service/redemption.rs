//! The reward catalog, redemptions and vouchers. A redemption is one commit: member (points),
//! the reward's stock, the member's count for the reward, the redemption, the voucher (its code
//! absence-conditioned, so a collision is just a retry) and the ledger entry.
//!
//! A redemption never reads or writes the reward's own item: it reads its member's shard of the
//! reward (`RewardShard`: the definition and a slice of the stock) and takes one unit from that
//! slice in place (`Write::Take`), reading the other shards only when its own has none left.
//! This process remembers for a second a reward it found sold out everywhere, so the crowd
//! refused at the end of a flash sale costs one read each, not one of every shard
//! (DESIGN.md "Scale").

use super::Outcome;
use super::audit::Audited;
use super::error::ServiceError;
use super::error::live;
use super::events::Journal;
use super::idempotency::Idempotency;
use super::unit::MemberWrite;
use crate::domain::audit::{Actor, AuditAction, Change, changes};
use crate::domain::event::{EventData, Moved, Redeemed, Restored, VoucherIssued, VoucherUsed};
use crate::domain::ledger::LedgerEntry;
use crate::domain::ledger::LedgerKind;
use crate::domain::member::Member;
pub use crate::domain::reward::Redemption;
use crate::domain::reward::{Refusal, Reward, check_redemption};
use crate::domain::slices;
use crate::domain::voucher::{RedemptionStatus, generate_code, normalize_code};
use crate::domain::{MemberId, Points, RewardId, StoreId, Tier};
use crate::retrying;
use crate::service::Ctx;
use crate::table::{
    Batch, Fetched, REWARD_SHARDS, Reads, RewardCount, RewardShard, Slice, Slot, Versioned,
    Voucher, shard_of,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::RwLock;
use utoipa::ToSchema;
use uuid::Uuid;

/// Rewards, their stock, redemptions, cancellations and vouchers used at the till.
#[derive(Clone)]
pub struct Redemptions {
    pub(crate) ctx: Ctx,
    /// The rewards this process last saw sold out, and when.
    pub(crate) sold_out: Arc<SoldOut>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Free coffee", "description": "Any size", "cost_points": 50, "min_tier": "silver", "stock": 100, "per_member_limit": 2, "active": true}))]
pub struct RewardInput {
    pub name: String,
    pub description: Option<String>,
    pub cost_points: Points,
    #[serde(default = "silver")]
    pub min_tier: Tier,
    /// Total stock; omit or null for unlimited.
    pub stock: Option<u64>,
    pub per_member_limit: Option<u32>,
    #[serde(default = "yes")]
    pub active: bool,
}

impl RewardInput {
    /// The reward an operator set; its stock counts live in its shards (`issued` 0 here).
    fn reward(
        &self,
        id: &RewardId,
        name: &str,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Reward {
        Reward {
            id: id.clone(),
            name: name.to_owned(),
            description: self.description.clone(),
            cost_points: self.cost_points,
            min_tier: self.min_tier,
            stock: self.stock,
            issued: 0,
            per_member_limit: self.per_member_limit,
            active: self.active,
            created_at: Some(created_at),
            updated_at: now,
        }
    }
}

fn silver() -> Tier {
    Tier::Silver
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "free-coffee", "name": "Free coffee", "description": "Any size", "cost_points": 50, "min_tier": "silver", "stock": 100, "stock_remaining": 97, "per_member_limit": 2, "active": true}))]
pub struct RewardView {
    pub id: RewardId,
    pub name: String,
    pub description: Option<String>,
    pub cost_points: Points,
    pub min_tier: Tier,
    pub stock: Option<u64>,
    pub stock_remaining: Option<u64>,
    pub per_member_limit: Option<u32>,
    pub active: bool,
}

impl From<&Reward> for RewardView {
    fn from(r: &Reward) -> Self {
        RewardView {
            id: r.id.clone(),
            name: r.name.clone(),
            description: r.description.clone(),
            cost_points: r.cost_points,
            min_tier: r.min_tier,
            stock: r.stock,
            stock_remaining: r.stock_remaining(),
            per_member_limit: r.per_member_limit,
            active: r.active,
        }
    }
}

/// The answer to a new redemption: the redemption and the balance after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "01935b2e-6a00-7000-8000-0000000000cc", "member_id": "member-ada", "reward_id": "free-coffee", "points_spent": 50, "voucher_code": "K7QX4M2PZ9TA", "status": "issued", "created_at": "2026-11-22T10:15:00Z", "expires_at": "2027-02-20T10:15:00Z", "used_at": null, "used_store_id": null, "cancelled_at": null, "source": "redemption", "balance": 70}))]
pub struct RedemptionReceipt {
    #[serde(flatten)]
    pub redemption: Redemption,
    pub balance: Points,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"code": "K7QX4M2PZ9TA", "redemption_id": "01935b2e-6a00-7000-8000-0000000000cc", "member_id": "member-ada", "reward_id": "free-coffee", "status": "used", "used_at": "2026-11-22T11:00:00Z"}))]
pub struct VoucherUse {
    pub code: String,
    pub redemption_id: Uuid,
    pub member_id: MemberId,
    pub reward_id: RewardId,
    pub status: RedemptionStatus,
    pub used_at: DateTime<Utc>,
}

fn refusal(r: Refusal) -> ServiceError {
    match r {
        Refusal::Inactive => ServiceError::RewardInactive,
        Refusal::TierTooLow { required, held } => ServiceError::TierTooLow { required, held },
        Refusal::LimitReached { limit } => ServiceError::LimitReached { limit },
        Refusal::OutOfStock => ServiceError::OutOfStock,
        Refusal::InsufficientPoints { balance, cost } => ServiceError::InsufficientPoints {
            balance: balance.0,
            cost: cost.0,
        },
    }
}

impl Redemption {
    /// As a reader sees it at `now`: an issued voucher past its expiry shows `expired`.
    fn seen_at(mut self, now: DateTime<Utc>) -> Self {
        self.status = self.status.as_of(self.expires_at, now);
        self
    }
}

/// The writes that issue one voucher for `reward` to `member` (whose balance this lowers when
/// `charge` is set); the caller adds the member item and commits.
pub(crate) struct Issue<'a> {
    pub stock: &'a Stock,
    pub count: Option<&'a Versioned<RewardCount>>,
    /// Points are charged (a redemption) or not (a gift).
    pub charge: bool,
    pub source: &'a str,
}

pub(crate) fn issue_voucher(
    svc: &Ctx,
    member: &mut Member,
    journal: &mut Journal,
    issue: Issue<'_>,
    now: DateTime<Utc>,
) -> Result<(Redemption, Batch), ServiceError> {
    let held = issue.count.map_or(0, |c| c.value.count);
    // Points that became spendable or expired by now count before the balance is judged.
    svc.settle(member, journal, now);
    let reward = issue.stock.reward();
    let r = &reward;
    check_redemption(member.tier, member.balance, r, held, issue.charge).map_err(refusal)?;
    let redemption = draw_redemption(svc, member, &issue, now)?;
    let voucher = Voucher {
        code: redemption.voucher_code.clone(),
        redemption_id: redemption.id,
        member_id: member.id.clone(),
        reward_id: r.id.clone(),
        status: RedemptionStatus::Issued,
        expires_at: redemption.expires_at,
        used_at: None,
        used_store_id: None,
    };
    let mut batch = Batch::new();
    journal.note(EventData::VoucherIssued(VoucherIssued {
        redemption_id: redemption.id,
        reward_id: r.id.clone(),
        voucher_code: redemption.voucher_code.clone(),
        expires_at: redemption.expires_at,
        source: issue.source.to_owned(),
    }));
    batch.create(&(member.id.clone(), redemption.id), &redemption)?;
    // A code collision fails this absence condition; the retry draws a new code.
    batch.create(voucher.code.as_str(), &voucher)?;
    count_issued(&mut batch, &member.id, &issue, held)?;
    if issue.charge {
        journal.line(
            LedgerEntry::new(
                LedgerKind::Redemption,
                redemption.points_spent.checked_neg()?,
                member.balance,
                Some(format!("redemption:{}", redemption.id)),
                Some(r.name.clone()),
                now,
            ),
            |moved, line| {
                EventData::PointsRedeemed(Redeemed {
                    moved,
                    line,
                    redemption_id: redemption.id,
                    reward_id: r.id.clone(),
                })
            },
        );
    }
    Ok((redemption, batch))
}

/// The redemption: its points spent from the member's lots (remembered when dated, so a
/// cancellation puts them back where they were) and a fresh voucher code.
fn draw_redemption(
    svc: &Ctx,
    member: &mut Member,
    issue: &Issue<'_>,
    now: DateTime<Utc>,
) -> Result<Redemption, ServiceError> {
    let r = &issue.stock.home.value.reward;
    let points = if issue.charge {
        r.cost_points
    } else {
        Points::ZERO
    };
    let mut lots = if points.0 > 0 {
        svc.spend(member, points)?
    } else {
        Vec::new()
    };
    // Undated points come back undated whatever lot they left: nothing to remember.
    if lots.iter().all(|l| l.expires_on.is_none()) {
        lots.clear();
    }
    member.lifetime_redeemed = member.lifetime_redeemed.checked_add(points)?;
    member.last_activity_at = now;
    Ok(Redemption {
        id: Uuid::now_v7(),
        member_id: member.id.clone(),
        reward_id: r.id.clone(),
        points_spent: points,
        voucher_code: generate_code(),
        status: RedemptionStatus::Issued,
        created_at: now,
        expires_at: now + chrono::Duration::days(i64::from(svc.program.voucher_validity_days)),
        used_at: None,
        used_store_id: None,
        cancelled_at: None,
        source: issue.source.to_owned(),
        lots,
    })
}

/// A cancelled redemption's `points.restored`: a ledger line when it cost points; a gifted
/// voucher cost nothing, so its event says so and no line is needed.
fn restored_line(journal: &mut Journal, m: &Member, r: &Redemption) {
    let restored = |moved, line| {
        EventData::PointsRestored(Restored {
            moved,
            line,
            redemption_id: r.id,
            reward_id: r.reward_id.clone(),
        })
    };
    if r.points_spent.0 != 0 {
        let now = journal.now();
        journal.line(
            LedgerEntry::new(
                LedgerKind::RedemptionCancelled,
                r.points_spent,
                m.balance,
                Some(format!("redemption:{}", r.id)),
                None,
                now,
            ),
            |moved, line| restored(moved, Some(line)),
        );
    } else {
        journal.note(restored(
            Moved {
                points: Points::ZERO,
                balance: m.balance,
            },
            None,
        ));
    }
}

/// A reward's shards as a request read them: its member's own, and every shard when that one
/// had no stock left (`all`).
pub(crate) struct Stock {
    home_n: u32,
    home: Versioned<RewardShard>,
    all: Option<Vec<Versioned<RewardShard>>>,
}

/// The rewards this process found sold out in every shard, and when: for a second after, a
/// redemption whose own shard is empty is refused without reading the others.
#[derive(Default, Debug)]
pub struct SoldOut(RwLock<HashMap<RewardId, DateTime<Utc>>>);

const SOLD_OUT_MEMORY: chrono::Duration = chrono::Duration::seconds(1);

impl SoldOut {
    fn recently(&self, r: &RewardId, now: DateTime<Utc>) -> bool {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(r)
            .is_some_and(|at| now >= *at && now - *at < SOLD_OUT_MEMORY)
    }
    fn seen(&self, r: &RewardId, now: DateTime<Utc>) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(r.clone(), now);
    }
}

impl Stock {
    fn limited(&self) -> bool {
        self.home.value.reward.stock.is_some()
    }
    /// The slices known: every shard's, or the member's own.
    fn slices(&self) -> Vec<(u32, Slice)> {
        match &self.all {
            Some(all) => all
                .iter()
                .enumerate()
                .map(|(n, s)| (n as u32, s.value.slice))
                .collect(),
            None => vec![(self.home_n, self.home.value.slice)],
        }
    }
    /// The definition, with `issued` as far as the shards read tell: none left when no shard
    /// read has room.
    fn reward(&self) -> Reward {
        let mut r = self.home.value.reward.clone();
        if let Some(stock) = r.stock {
            let room: i64 = self.slices().iter().map(|(_, s)| s.room()).sum();
            r.issued = stock.saturating_sub(u64::try_from(room).unwrap_or(0));
        }
        r
    }
}

impl Redemptions {
    /// Adds a member's shard of a reward to a read.
    pub(crate) fn stock_read(
        reads: &mut Reads,
        reward: &RewardId,
        member: &MemberId,
    ) -> (u32, Slot<RewardShard>) {
        let n = shard_of(member, REWARD_SHARDS);
        (n, reads.add::<RewardShard>(&(reward.clone(), n)))
    }

    /// The reward's stock after the read: the member's shard, and every shard (one more read)
    /// when that one has none left, unless this process saw the reward sold out a moment ago.
    pub(crate) async fn stock(
        &self,
        (home_n, slot): (u32, Slot<RewardShard>),
        found: &Fetched,
        reward: &RewardId,
    ) -> Result<Stock, ServiceError> {
        let home = found.get(&slot)?.ok_or(ServiceError::NotFound("reward"))?;
        let mut stock = Stock {
            home_n,
            home,
            all: None,
        };
        let now = self.ctx.now();
        if stock.limited()
            && stock.home.value.slice.room() == 0
            && !self.sold_out.recently(reward, now)
        {
            let all = self.reward_shards(reward).await?;
            if all.iter().all(|s| s.value.slice.room() == 0) {
                self.sold_out.seen(reward, now);
            }
            stock.all = Some(all);
        }
        Ok(stock)
    }

    /// Every shard of a reward, in one read (empty when the reward does not exist).
    async fn reward_shards(
        &self,
        reward: &RewardId,
    ) -> Result<Vec<Versioned<RewardShard>>, ServiceError> {
        let mut reads = Reads::new();
        let slots: Vec<_> = (0..REWARD_SHARDS)
            .map(|n| reads.add::<RewardShard>(&(reward.clone(), n)))
            .collect();
        let found = self.ctx.table.read(&reads).await?;
        let mut out = Vec::new();
        for slot in &slots {
            match found.get(slot)? {
                Some(s) => out.push(s),
                None => return Ok(Vec::new()),
            }
        }
        Ok(out)
    }

    /// The rewards with what is issued of their stock filled in from their shards, for showing.
    async fn with_issued(&self, mut rewards: Vec<Reward>) -> Result<Vec<Reward>, ServiceError> {
        let mut reads = Reads::new();
        let slots: Vec<Vec<Slot<RewardShard>>> = rewards
            .iter()
            .map(|r| match r.stock {
                Some(_) => (0..REWARD_SHARDS)
                    .map(|n| reads.add::<RewardShard>(&(r.id.clone(), n)))
                    .collect(),
                None => Vec::new(),
            })
            .collect();
        if slots.iter().all(Vec::is_empty) {
            return Ok(rewards);
        }
        let found = self.ctx.table.read(&reads).await?;
        for (r, slots) in rewards.iter_mut().zip(slots) {
            if slots.is_empty() {
                continue;
            }
            let mut used = 0i64;
            for slot in &slots {
                used += found.get(slot)?.map_or(0, |s| s.value.slice.used);
            }
            r.issued = u64::try_from(used).unwrap_or(0);
        }
        Ok(rewards)
    }
}

/// What a reward has issued: the sum of its shards' (a reward stored before shards kept its
/// count on its own item). It stays issued when the operator edits the reward.
fn issued_so_far(existing: Option<&Versioned<Reward>>, shards: &[Versioned<RewardShard>]) -> i64 {
    if shards.is_empty() {
        existing.map_or(0, |e| i64::try_from(e.value.issued).unwrap_or(i64::MAX))
    } else {
        shards.iter().map(|s| s.value.slice.used).sum()
    }
}

/// A cancellation's second read: the voucher, the reward's stock shards, the member's count.
type CancelRead = (
    Versioned<Voucher>,
    Vec<Versioned<RewardShard>>,
    Option<((MemberId, RewardId), Versioned<RewardCount>)>,
);

/// The reward's stock (when it has one) and the member's count of it, one fewer issued: the
/// unit goes back to the member's own shard when that one has some out, else to the first
/// that has.
fn count_returned(
    batch: &mut Batch,
    reward: &RewardId,
    home: u32,
    shards: &[Versioned<RewardShard>],
    count: Option<((MemberId, RewardId), Versioned<RewardCount>)>,
) -> Result<(), ServiceError> {
    if shards
        .first()
        .is_some_and(|s| s.value.reward.stock.is_some())
    {
        let back = shards
            .get(home as usize)
            .filter(|s| s.value.slice.used > 0)
            .map(|_| home)
            .or_else(|| {
                shards
                    .iter()
                    .position(|s| s.value.slice.used > 0)
                    .map(|n| n as u32)
            });
        if let Some(n) = back {
            let cap = shards[n as usize].value.slice.cap;
            batch.take::<RewardShard>(&(reward.clone(), n), -1, cap);
        }
    }
    if let Some((key, c)) = count {
        let fewer = RewardCount {
            count: c.value.count.saturating_sub(1),
        };
        batch.save(&key, &fewer, Some(c.version))?;
    }
    Ok(())
}

/// The member's count of this reward, and one unit of the reward's stock when it has one,
/// taken from the member's shard or (when it has none left) another.
fn count_issued(
    batch: &mut Batch,
    member: &MemberId,
    issue: &Issue<'_>,
    held: u32,
) -> Result<(), ServiceError> {
    let stock = issue.stock;
    let id = &stock.home.value.reward.id;
    batch.save(
        &(member.clone(), id.clone()),
        &RewardCount { count: held + 1 },
        issue.count.map(|c| c.version),
    )?;
    if stock.limited() {
        let known = stock.slices();
        let mut rooms = vec![0; REWARD_SHARDS as usize];
        for (n, s) in &known {
            rooms[*n as usize] = s.room();
        }
        let (n, _) = slices::plan(1, stock.home_n, &rooms)
            .into_iter()
            .next()
            .ok_or(ServiceError::OutOfStock)?;
        let cap = known
            .iter()
            .find(|(k, _)| *k == n)
            .map_or(0, |(_, s)| s.cap);
        batch.take::<RewardShard>(&(id.clone(), n), 1, cap);
    } else {
        // Unlimited stock: no stock to take, but a concurrent edit (deactivation) still wins.
        batch.check::<RewardShard>(&(id.clone(), stock.home_n), stock.home.version);
    }
    Ok(())
}

impl Redemptions {
    /// Creates or replaces a reward; `true` when it was created. Stock already issued stays
    /// issued: lowering `stock` below it leaves none remaining.
    #[tracing::instrument(skip_all, fields(reward = %id))]
    pub async fn put_reward(
        &self,
        id: &RewardId,
        input: RewardInput,
        actor: &Actor,
    ) -> Result<(RewardView, bool), ServiceError> {
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ServiceError::field(
                "name",
                "name must be 1 to 100 characters",
            ));
        }
        if input
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 1000)
        {
            return Err(ServiceError::field(
                "description",
                "description must be at most 1000 characters",
            ));
        }
        use crate::domain::bounds::{REWARD_COST_POINTS, REWARD_PER_MEMBER_LIMIT, REWARD_STOCK};
        if !REWARD_COST_POINTS.contains(input.cost_points.0) {
            return Err(ServiceError::field(
                "cost_points",
                format!("cost_points must be {REWARD_COST_POINTS}"),
            ));
        }
        if input
            .stock
            .is_some_and(|s| !REWARD_STOCK.contains(i64::try_from(s).unwrap_or(i64::MAX)))
        {
            return Err(ServiceError::field(
                "stock",
                format!("stock must be {REWARD_STOCK}, or null for unlimited"),
            ));
        }
        if input
            .per_member_limit
            .is_some_and(|l| !REWARD_PER_MEMBER_LIMIT.contains(i64::from(l)))
        {
            return Err(ServiceError::field(
                "per_member_limit",
                format!("per_member_limit must be {REWARD_PER_MEMBER_LIMIT}, or null"),
            ));
        }
        retrying!(self.ctx, self.try_put_reward(id, name, &input, actor))
    }

    async fn try_put_reward(
        &self,
        id: &RewardId,
        name: &str,
        input: &RewardInput,
        actor: &Actor,
    ) -> Result<(RewardView, bool), ServiceError> {
        let now = self.ctx.now();
        let existing = self.ctx.table.get::<Reward>(id).await?;
        let shards = match existing {
            Some(_) => self.reward_shards(id).await?,
            None => Vec::new(),
        };
        let issued = issued_so_far(existing.as_ref(), &shards);
        let created_at = existing
            .as_ref()
            .map_or(now, |e| e.value.created_at.unwrap_or(e.value.updated_at));
        let reward = input.reward(id, name, created_at, now);
        let mut batch = Batch::new();
        batch.save(id, &reward, existing.as_ref().map(|e| e.version))?;
        let spread = crate::domain::reward::restock(reward.stock, issued, REWARD_SHARDS);
        for (n, (cap, used)) in spread.into_iter().enumerate() {
            let shard = RewardShard {
                reward: reward.clone(),
                slice: Slice { cap, used },
            };
            // Read at a version: a take meanwhile moves it on, and this edit reads again.
            batch.save(
                &(id.clone(), n as u32),
                &shard,
                shards.get(n).map(|s| s.version),
            )?;
        }
        let audited = Audited {
            action: match existing {
                None => AuditAction::RewardCreated,
                Some(_) => AuditAction::RewardChanged,
            },
            member: None,
            target: Some(id.to_string()),
            // What the operator set, not what bookkeeping moves.
            changes: changes(
                existing.as_ref().map(|e| &e.value),
                &reward,
                &["issued", "created_at", "updated_at"],
            ),
        };
        self.ctx.audit(&mut batch, Some(actor), audited, now)?;
        self.ctx.table.commit(batch).await?;
        let shown = Reward {
            issued: u64::try_from(issued).unwrap_or(0),
            ..reward
        };
        Ok((RewardView::from(&shown), existing.is_none()))
    }

    /// The active catalog, newest first. Only active rewards are in the catalog index, so
    /// every page is full until the last.
    #[tracing::instrument(skip_all)]
    pub async fn catalog(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<RewardView>, Option<String>), ServiceError> {
        let (rewards, next) = self.ctx.table.catalog(limit, cursor).await?;
        let rewards = self.with_issued(rewards).await?;
        Ok((rewards.iter().map(RewardView::from).collect(), next))
    }

    #[tracing::instrument(skip_all, fields(%member, %reward))]
    pub async fn redeem(
        &self,
        member: &MemberId,
        reward: &RewardId,
        idem: Option<Idempotency>,
        actor: Option<&Actor>,
    ) -> Result<Outcome<RedemptionReceipt>, ServiceError> {
        retrying!(
            self.ctx,
            self.try_redeem(member, reward, idem.as_ref(), actor)
        )
    }

    async fn try_redeem(
        &self,
        id: &MemberId,
        reward_id: &RewardId,
        idem: Option<&Idempotency>,
        actor: Option<&Actor>,
    ) -> Result<Outcome<RedemptionReceipt>, ServiceError> {
        let now = self.ctx.now();
        let mut reads = Reads::new();
        let member = reads.add::<Member>(id);
        let shard = Redemptions::stock_read(&mut reads, reward_id, id);
        let count = reads.add::<RewardCount>(&(id.clone(), reward_id.clone()));
        let prior = idem.map(|i| i.read(&mut reads));
        let found = self.ctx.table.read(&reads).await?;
        // An erased member's replays answer 410 like every other request on the member.
        let current = live(found.get(&member)?)?;
        if let Some(replay) = Idempotency::replay::<RedemptionReceipt>(idem, &prior, &found, now)? {
            return Ok(Outcome::replay(replay));
        }
        let stock = self.stock(shard, &found, reward_id).await?;
        let count = found.get(&count)?;
        let mut w = MemberWrite::on(&self.ctx, &current, now);
        let (redemption, batch) = issue_voucher(
            &self.ctx,
            &mut w.m,
            &mut w.journal,
            Issue {
                stock: &stock,
                count: count.as_ref(),
                charge: true,
                source: "redemption",
            },
            now,
        )?;
        w.batch = batch;
        let receipt = RedemptionReceipt {
            redemption,
            balance: w.m.balance,
        };
        let audited = Audited {
            action: AuditAction::RewardRedeemed,
            member: Some(id),
            target: Some(reward_id.to_string()),
            changes: vec![
                Change::to("redemption_id", receipt.redemption.id.to_string()),
                Change::to("points_spent", receipt.redemption.points_spent.0),
            ],
        };
        w.audit(&self.ctx, actor, audited)?;
        w.commit_remembering(&self.ctx, idem.map(|i| (i, &receipt)))
            .await?;
        crate::metrics::points_redeemed(receipt.redemption.points_spent.0);
        Ok(Outcome::fresh(receipt))
    }

    /// The member's redemptions, newest first, each with the status it has now.
    #[tracing::instrument(skip_all, fields(member = %id))]
    pub async fn redemptions(
        &self,
        id: &MemberId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<Redemption>, Option<String>), ServiceError> {
        self.ctx.load_member(id).await?;
        let now = self.ctx.now();
        let (items, next) = self.ctx.table.list::<Redemption>(id, limit, cursor).await?;
        Ok((items.into_iter().map(|r| r.seen_at(now)).collect(), next))
    }

    #[tracing::instrument(skip_all, fields(member = %id, %redemption))]
    pub async fn cancel_redemption(
        &self,
        id: &MemberId,
        redemption: &Uuid,
        actor: Option<&Actor>,
    ) -> Result<Redemption, ServiceError> {
        retrying!(self.ctx, self.try_cancel(id, redemption, actor))
    }

    /// What a cancellation reads besides the member and the redemption (a second round trip,
    /// as it needs the redemption's reward and code): the voucher, which must still be issued,
    /// the reward's stock shards and the member's count of it.
    async fn read_for_cancel(
        &self,
        id: &MemberId,
        r: &Redemption,
    ) -> Result<CancelRead, ServiceError> {
        let mut reads = Reads::new();
        let voucher = reads.add::<Voucher>(r.voucher_code.as_str());
        let shards: Vec<_> = (0..REWARD_SHARDS)
            .map(|n| reads.add::<RewardShard>(&(r.reward_id.clone(), n)))
            .collect();
        let count_id = (id.clone(), r.reward_id.clone());
        let count = reads.add::<RewardCount>(&count_id);
        let more = self.ctx.table.read(&reads).await?;
        let voucher = more
            .get(&voucher)?
            .ok_or_else(|| ServiceError::corrupt("redemption without voucher"))?;
        if voucher.value.status != RedemptionStatus::Issued {
            return Err(ServiceError::RedemptionNotCancellable {
                status: voucher.value.status,
            });
        }
        let mut stock = Vec::new();
        for slot in &shards {
            stock.extend(more.get(slot)?);
        }
        let count = more.get(&count)?.map(|c| (count_id, c));
        Ok((voucher, stock, count))
    }

    async fn try_cancel(
        &self,
        id: &MemberId,
        redemption_id: &Uuid,
        actor: Option<&Actor>,
    ) -> Result<Redemption, ServiceError> {
        let now = self.ctx.now();
        let rid = (id.clone(), *redemption_id);
        let mut reads = Reads::new();
        let member = reads.add::<Member>(id);
        let red = reads.add::<Redemption>(&rid);
        let found = self.ctx.table.read(&reads).await?;
        let current = live(found.get(&member)?)?;
        let red = found
            .get(&red)?
            .ok_or(ServiceError::NotFound("redemption"))?;
        // An expired voucher is worth nothing at the till, so it cannot be traded back for
        // points either.
        let shown = red.value.status.as_of(red.value.expires_at, now);
        if shown != RedemptionStatus::Issued {
            return Err(ServiceError::RedemptionNotCancellable { status: shown });
        }
        let r = &red.value;
        let (voucher, stock, count) = self.read_for_cancel(id, r).await?;
        let balance_before = current.value.balance;
        let mut w = MemberWrite::settled(&self.ctx, &current, now);
        let MemberWrite {
            m, journal, batch, ..
        } = &mut w;
        self.ctx.restore(m, &r.lots, r.points_spent, now);
        m.lifetime_redeemed = m.lifetime_redeemed.checked_sub(r.points_spent)?;
        m.last_activity_at = now;
        restored_line(journal, m, r);
        let cancelled = r.cancelled(now);
        let v = voucher.value.cancelled();
        batch.save(&rid, &cancelled, Some(red.version))?;
        batch.save(v.code.as_str(), &v, Some(voucher.version))?;
        count_returned(
            batch,
            &r.reward_id,
            shard_of(id, REWARD_SHARDS),
            &stock,
            count,
        )?;
        let status = (RedemptionStatus::Issued, RedemptionStatus::Cancelled);
        let audited = Audited {
            action: AuditAction::RedemptionCancelled,
            member: Some(id),
            target: Some(redemption_id.to_string()),
            changes: vec![
                Change::new("status", status.0, status.1),
                Change::new("balance", balance_before, m.balance),
            ],
        };
        w.audit(&self.ctx, actor, audited)?;
        w.commit(&self.ctx).await?;
        Ok(cancelled)
    }

    /// Marks a voucher used at `store` (once). `code` as typed at the till.
    #[tracing::instrument(skip_all, fields(%store))]
    pub async fn use_voucher(
        &self,
        code: &str,
        store: &StoreId,
    ) -> Result<VoucherUse, ServiceError> {
        let code = normalize_code(code).map_err(|_| ServiceError::NotFound("voucher"))?;
        retrying!(self.ctx, self.try_use_voucher(&code, store))
    }

    async fn try_use_voucher(
        &self,
        code: &str,
        store: &StoreId,
    ) -> Result<VoucherUse, ServiceError> {
        let now = self.ctx.now();
        let voucher = self
            .ctx
            .table
            .get::<Voucher>(code)
            .await?
            .ok_or(ServiceError::NotFound("voucher"))?;
        let v = &voucher.value;
        match v.status.as_of(v.expires_at, now) {
            RedemptionStatus::Used => return Err(ServiceError::VoucherUsed),
            RedemptionStatus::Cancelled => return Err(ServiceError::VoucherCancelled),
            RedemptionStatus::Expired => return Err(ServiceError::VoucherExpired),
            RedemptionStatus::Issued => {}
        }
        let rid = (v.member_id.clone(), v.redemption_id);
        let mut reads = Reads::new();
        let red = reads.add::<Redemption>(&rid);
        let member = reads.add::<Member>(&v.member_id);
        let found = self.ctx.table.read(&reads).await?;
        let red = found
            .get(&red)?
            .ok_or_else(|| ServiceError::corrupt("voucher without redemption"))?;
        // An erased member's vouchers are void.
        let current = match live(found.get(&member)?) {
            Err(ServiceError::MemberErased) => return Err(ServiceError::VoucherCancelled),
            other => other?,
        };
        let (used_v, used_r) = (v.used(now, store), red.value.used(now, store));
        let mut w = MemberWrite::on(&self.ctx, &current, now);
        w.journal.note(EventData::VoucherUsed(VoucherUsed {
            voucher_code: code.to_owned(),
            redemption_id: v.redemption_id,
            reward_id: v.reward_id.clone(),
            store_id: store.clone(),
        }));
        w.batch.save(code, &used_v, Some(voucher.version))?;
        w.batch.save(&rid, &used_r, Some(red.version))?;
        w.commit(&self.ctx).await?;
        Ok(VoucherUse {
            code: code.to_owned(),
            redemption_id: v.redemption_id,
            member_id: v.member_id.clone(),
            reward_id: v.reward_id.clone(),
            status: RedemptionStatus::Used,
            used_at: now,
        })
    }
}
