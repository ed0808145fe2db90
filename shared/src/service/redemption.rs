//! The reward catalog, redemptions and vouchers. A redemption is one commit: member (points),
//! reward (stock), the member's count for the reward, the redemption, the voucher (its code
//! absence-conditioned, so a collision is just a retry) and the ledger entry.

use super::error::ServiceError;
use super::idempotency::Idempotency;
use super::members::LedgerEntry;
use super::records::{
    CATALOG_PARTITION, Versioned, decode, decode_versioned, member_key, member_pk, put_member,
    put_versioned, redemption_key, reward_count_key, reward_key, voucher_key,
};
use super::{Outcome, Services};
use crate::domain::member::{LedgerKind, Member};
use crate::domain::reward::{Refusal, Reward, check_redemption};
use crate::domain::voucher::{RedemptionStatus, generate_code, normalize_code};
use crate::domain::{MemberId, Points, RewardId, StoreId, Tier};
use crate::retrying;
use crate::store::{Cond, Index, Item, PageRequest, SortKey, Write};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
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

fn silver() -> Tier {
    Tier::Silver
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Redemption {
    pub id: Uuid,
    pub member_id: MemberId,
    pub reward_id: RewardId,
    pub points_spent: Points,
    pub voucher_code: String,
    pub status: RedemptionStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub used_store_id: Option<StoreId>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// `redemption` (points spent) or `birthday_gift`.
    pub source: String,
}

/// The answer to a new redemption: the redemption and the balance after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RedemptionReceipt {
    #[serde(flatten)]
    pub redemption: Redemption,
    pub balance: Points,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VoucherUse {
    pub code: String,
    pub redemption_id: Uuid,
    pub member_id: MemberId,
    pub reward_id: RewardId,
    pub status: RedemptionStatus,
    pub used_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Voucher {
    code: String,
    redemption_id: Uuid,
    member_id: MemberId,
    reward_id: RewardId,
    status: RedemptionStatus,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    used_store_id: Option<StoreId>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RewardCount {
    count: u32,
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

fn catalog_attrs(id: &RewardId) -> Map<String, Value> {
    Map::from_iter([
        ("GSI1PK".to_owned(), Value::from(CATALOG_PARTITION)),
        ("GSI1SK".to_owned(), Value::from(format!("REWARD#{id}"))),
    ])
}

/// The writes that issue one voucher for `reward` to `member` (whose balance this lowers when
/// `charge` is set); the caller adds the member item and commits.
pub(crate) fn issue_voucher(
    svc: &Services,
    member: &mut Member,
    reward: &Versioned<Reward>,
    count: Option<&Versioned<RewardCount>>,
    charge: bool,
    source: &str,
    now: DateTime<Utc>,
) -> Result<(Redemption, Vec<Write>), ServiceError> {
    let held = count.map_or(0, |c| c.value.count);
    check_redemption(member.tier, member.balance, &reward.value, held, charge).map_err(refusal)?;
    let r = &reward.value;
    let points = if charge { r.cost_points } else { Points::ZERO };
    member.balance = member.balance.checked_sub(points)?;
    member.last_activity_at = now;
    let redemption = Redemption {
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
        source: source.to_owned(),
    };
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
    let mut writes = vec![
        put_versioned(
            redemption_key(&member.id, &redemption.id),
            &redemption,
            None,
            Map::new(),
        )?,
        // A code collision fails this absence condition; the retry draws a new code.
        put_versioned(voucher_key(&voucher.code), &voucher, None, Map::new())?,
        put_versioned(
            reward_count_key(&member.id, &r.id),
            &RewardCount { count: held + 1 },
            count.map(|c| c.version),
            Map::new(),
        )?,
    ];
    if r.stock.is_some() {
        let next = Reward {
            issued: r.issued + 1,
            ..r.clone()
        };
        writes.push(put_versioned(
            reward_key(&r.id),
            &next,
            Some(reward.version),
            catalog_attrs(&r.id),
        )?);
    } else {
        // Unlimited stock: no hot item to write, but a concurrent edit (deactivation) still wins.
        writes.push(Write::Check {
            key: reward_key(&r.id),
            cond: Cond::Version(reward.version),
        });
    }
    if charge {
        let (_, w) = LedgerEntry::write(
            &member.id,
            LedgerKind::Redemption,
            points.checked_neg()?,
            member.balance,
            Some(format!("redemption:{}", redemption.id)),
            Some(r.name.clone()),
            now,
        )?;
        writes.push(w);
    }
    Ok((redemption, writes))
}

fn versioned_opt<T: serde::de::DeserializeOwned>(
    i: &Option<Item>,
) -> Result<Option<Versioned<T>>, ServiceError> {
    i.as_ref().map(decode_versioned).transpose()
}

impl Services {
    /// Creates or replaces a reward; `true` when it was created. Stock already issued stays
    /// issued: lowering `stock` below it leaves none remaining.
    pub async fn put_reward(
        &self,
        id: &RewardId,
        input: RewardInput,
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
        if input.cost_points.0 < 0 || input.cost_points.0 > 1_000_000_000 {
            return Err(ServiceError::field(
                "cost_points",
                "cost_points must be between 0 and 1000000000",
            ));
        }
        if input.per_member_limit == Some(0) {
            return Err(ServiceError::field(
                "per_member_limit",
                "per_member_limit must be at least 1, or null",
            ));
        }
        retrying!(self, self.try_put_reward(id, name, &input))
    }

    async fn try_put_reward(
        &self,
        id: &RewardId,
        name: &str,
        input: &RewardInput,
    ) -> Result<(RewardView, bool), ServiceError> {
        let existing = versioned_opt::<Reward>(&self.store.get(&reward_key(id)).await?)?;
        let reward = Reward {
            id: id.clone(),
            name: name.to_owned(),
            description: input.description.clone(),
            cost_points: input.cost_points,
            min_tier: input.min_tier,
            stock: input.stock,
            issued: existing.as_ref().map_or(0, |e| e.value.issued),
            per_member_limit: input.per_member_limit,
            active: input.active,
            updated_at: self.now(),
        };
        let w = put_versioned(
            reward_key(id),
            &reward,
            existing.as_ref().map(|e| e.version),
            catalog_attrs(id),
        )?;
        self.store.commit(vec![w]).await?;
        Ok((RewardView::from(&reward), existing.is_none()))
    }

    /// The active catalog, by reward id.
    pub async fn catalog(
        &self,
        limit: u32,
        after: Option<String>,
    ) -> Result<(Vec<RewardView>, Option<String>), ServiceError> {
        let page = self
            .store
            .query_index(
                Index::Gsi1,
                CATALOG_PARTITION,
                &SortKey::All,
                &PageRequest {
                    limit,
                    after,
                    descending: false,
                },
            )
            .await?;
        let items = if page.items.is_empty() {
            Vec::new()
        } else {
            self.store.get_many(&page.items).await?
        };
        let mut out = Vec::new();
        for item in items.iter().flatten() {
            let r: Reward = decode(item)?;
            if r.active {
                out.push(RewardView::from(&r));
            }
        }
        Ok((out, page.next))
    }

    pub async fn redeem(
        &self,
        member: &MemberId,
        reward: &RewardId,
        idem: Option<Idempotency>,
    ) -> Result<Outcome<RedemptionReceipt>, ServiceError> {
        retrying!(self, self.try_redeem(member, reward, idem.as_ref()))
    }

    async fn try_redeem(
        &self,
        id: &MemberId,
        reward_id: &RewardId,
        idem: Option<&Idempotency>,
    ) -> Result<Outcome<RedemptionReceipt>, ServiceError> {
        let now = self.now();
        let mut keys = vec![
            member_key(id),
            reward_key(reward_id),
            reward_count_key(id, reward_id),
        ];
        keys.extend(idem.map(Idempotency::store_key));
        let found = self.store.get_many(&keys).await?;
        if let Some(idem) = idem
            && let Some(prior) = idem.prior::<RedemptionReceipt>(found[3].as_ref(), now)?
        {
            return Ok(Outcome::replay(prior));
        }
        let current =
            versioned_opt::<Member>(&found[0])?.ok_or(ServiceError::NotFound("member"))?;
        let reward = versioned_opt::<Reward>(&found[1])?.ok_or(ServiceError::NotFound("reward"))?;
        let count = versioned_opt::<RewardCount>(&found[2])?;
        let mut m = current.value;
        let (redemption, mut writes) = issue_voucher(
            self,
            &mut m,
            &reward,
            count.as_ref(),
            true,
            "redemption",
            now,
        )?;
        let receipt = RedemptionReceipt {
            redemption,
            balance: m.balance,
        };
        writes.push(put_member(&m, Some(current.version))?);
        if let Some(idem) = idem {
            writes.push(idem.record(&receipt, now, self.program.idempotency_retention_hours)?);
        }
        self.store.commit(writes).await?;
        Ok(Outcome::fresh(receipt))
    }

    pub async fn redemptions(
        &self,
        id: &MemberId,
        limit: u32,
        after: Option<String>,
    ) -> Result<(Vec<Redemption>, Option<String>), ServiceError> {
        self.load_member(id).await?;
        let page = self
            .store
            .query(
                &member_pk(id),
                &SortKey::Prefix("REDEMPTION#".into()),
                &PageRequest::newest_first(limit, after),
            )
            .await?;
        let items = page
            .items
            .iter()
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((items, page.next))
    }

    pub async fn cancel_redemption(
        &self,
        id: &MemberId,
        redemption: &Uuid,
    ) -> Result<Redemption, ServiceError> {
        retrying!(self, self.try_cancel(id, redemption))
    }

    async fn try_cancel(
        &self,
        id: &MemberId,
        redemption_id: &Uuid,
    ) -> Result<Redemption, ServiceError> {
        let now = self.now();
        let found = self
            .store
            .get_many(&[member_key(id), redemption_key(id, redemption_id)])
            .await?;
        let current =
            versioned_opt::<Member>(&found[0])?.ok_or(ServiceError::NotFound("member"))?;
        let red =
            versioned_opt::<Redemption>(&found[1])?.ok_or(ServiceError::NotFound("redemption"))?;
        let not_cancellable = |s: RedemptionStatus| ServiceError::RedemptionNotCancellable {
            status: match s {
                RedemptionStatus::Issued => "issued",
                RedemptionStatus::Used => "used",
                RedemptionStatus::Cancelled => "cancelled",
            },
        };
        if red.value.status != RedemptionStatus::Issued {
            return Err(not_cancellable(red.value.status));
        }
        let r = &red.value;
        let more = self
            .store
            .get_many(&[
                voucher_key(&r.voucher_code),
                reward_key(&r.reward_id),
                reward_count_key(id, &r.reward_id),
            ])
            .await?;
        let voucher = versioned_opt::<Voucher>(&more[0])?
            .ok_or_else(|| ServiceError::Corrupt("redemption without voucher".into()))?;
        if voucher.value.status != RedemptionStatus::Issued {
            return Err(not_cancellable(voucher.value.status));
        }
        let reward = versioned_opt::<Reward>(&more[1])?;
        let count = versioned_opt::<RewardCount>(&more[2])?;

        let mut m = current.value;
        m.balance = m.balance.checked_add(r.points_spent)?;
        m.last_activity_at = now;
        let cancelled = Redemption {
            status: RedemptionStatus::Cancelled,
            cancelled_at: Some(now),
            ..r.clone()
        };
        let v = Voucher {
            status: RedemptionStatus::Cancelled,
            ..voucher.value.clone()
        };
        let mut writes = vec![
            put_member(&m, Some(current.version))?,
            put_versioned(
                redemption_key(id, redemption_id),
                &cancelled,
                Some(red.version),
                Map::new(),
            )?,
            put_versioned(voucher_key(&v.code), &v, Some(voucher.version), Map::new())?,
        ];
        if let Some(reward) = reward.filter(|rw| rw.value.stock.is_some()) {
            let back = Reward {
                issued: reward.value.issued.saturating_sub(1),
                ..reward.value.clone()
            };
            writes.push(put_versioned(
                reward_key(&back.id),
                &back,
                Some(reward.version),
                catalog_attrs(&back.id),
            )?);
        }
        if let Some(c) = count {
            let fewer = RewardCount {
                count: c.value.count.saturating_sub(1),
            };
            writes.push(put_versioned(
                reward_count_key(id, &r.reward_id),
                &fewer,
                Some(c.version),
                Map::new(),
            )?);
        }
        if r.points_spent.0 != 0 {
            let (_, w) = LedgerEntry::write(
                id,
                LedgerKind::RedemptionCancelled,
                r.points_spent,
                m.balance,
                Some(format!("redemption:{redemption_id}")),
                None,
                now,
            )?;
            writes.push(w);
        }
        self.store.commit(writes).await?;
        Ok(cancelled)
    }

    /// Marks a voucher used at `store` (once). `code` as typed at the till.
    pub async fn use_voucher(
        &self,
        code: &str,
        store: &StoreId,
    ) -> Result<VoucherUse, ServiceError> {
        let code = normalize_code(code).map_err(|_| ServiceError::NotFound("voucher"))?;
        retrying!(self, self.try_use_voucher(&code, store))
    }

    async fn try_use_voucher(
        &self,
        code: &str,
        store: &StoreId,
    ) -> Result<VoucherUse, ServiceError> {
        let now = self.now();
        let voucher = versioned_opt::<Voucher>(&self.store.get(&voucher_key(code)).await?)?
            .ok_or(ServiceError::NotFound("voucher"))?;
        let v = &voucher.value;
        match v.status {
            RedemptionStatus::Used => return Err(ServiceError::VoucherUsed),
            RedemptionStatus::Cancelled => return Err(ServiceError::VoucherCancelled),
            RedemptionStatus::Issued => {}
        }
        if now > v.expires_at {
            return Err(ServiceError::VoucherExpired);
        }
        let rkey = redemption_key(&v.member_id, &v.redemption_id);
        let red = versioned_opt::<Redemption>(&self.store.get(&rkey).await?)?
            .ok_or_else(|| ServiceError::Corrupt("voucher without redemption".into()))?;
        let used_v = Voucher {
            status: RedemptionStatus::Used,
            used_at: Some(now),
            used_store_id: Some(store.clone()),
            ..v.clone()
        };
        let used_r = Redemption {
            status: RedemptionStatus::Used,
            used_at: Some(now),
            used_store_id: Some(store.clone()),
            ..red.value
        };
        self.store
            .commit(vec![
                put_versioned(
                    voucher_key(code),
                    &used_v,
                    Some(voucher.version),
                    Map::new(),
                )?,
                put_versioned(rkey, &used_r, Some(red.version), Map::new())?,
            ])
            .await?;
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
