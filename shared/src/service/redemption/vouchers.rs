//! A voucher used at the till: once, by the store that takes it, before it expires.

use super::*;
use crate::domain::StoreId;
use crate::domain::event::{EventData, VoucherUsed};
use crate::domain::member::Member;
use crate::domain::reward::Redemption;
use crate::domain::voucher::{RedemptionStatus, normalize_code};
use crate::retrying;
use crate::service::error::ServiceError;
use crate::service::error::live;
use crate::service::unit::MemberWrite;
use crate::table::{Reads, Voucher};

impl Redemptions {
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

    pub(super) async fn try_use_voucher(
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
