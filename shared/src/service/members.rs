//! Members: enrolment (with the phone claim that keeps phones unique), profile reads and changes
//! (the birthday is set once, then only by an administrator), the ledger, and admin adjustments.

use super::error::ServiceError;
use super::idempotency::Idempotency;
use super::records::{
    decode, decode_versioned, ledger_key, member_key, member_pk, phone_key, put_member, put_new,
};
use super::{Outcome, Services};
use crate::domain::member::{LedgerKind, Member, tier_progress};
use crate::domain::{
    Birthday, Currency, Email, MemberId, Money, Name, Phone, Points, Tier, TimeZoneName,
};
use crate::retrying;
use crate::store::{Cond, PageRequest, SortKey, Write};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `null` and "absent" differ in a PATCH: absent keeps, `null` clears.
fn patch_field<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// Only administrators and POS may choose the id; members enrol as their token's `sub`.
    pub id: Option<MemberId>,
    pub name: Name,
    pub phone: Option<Phone>,
    pub email: Option<Email>,
    pub birthday: Option<Birthday>,
    pub timezone: Option<TimeZoneName>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileChange {
    pub name: Option<Name>,
    #[serde(default, deserialize_with = "patch_field")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<Email>>,
    #[serde(default, deserialize_with = "patch_field")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<Phone>>,
    #[serde(default, deserialize_with = "patch_field")]
    #[schema(value_type = Option<String>)]
    pub timezone: Option<Option<TimeZoneName>>,
    #[serde(default, deserialize_with = "patch_field")]
    #[schema(value_type = Option<String>)]
    pub birthday: Option<Option<Birthday>>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    /// Signed, non-zero.
    pub points: Points,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PointsView {
    pub balance: Points,
    pub lifetime_earned: Points,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TierProgressView {
    pub qualifying_spend: Money,
    pub next_tier: Option<Tier>,
    pub spend_to_next_tier: Option<Money>,
}

/// The member object of API.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    pub id: MemberId,
    pub name: String,
    pub phone: Option<Phone>,
    pub email: Option<Email>,
    pub birthday: Option<Birthday>,
    pub timezone: Option<TimeZoneName>,
    pub enrolled_at: DateTime<Utc>,
    pub tier: Tier,
    pub tier_expires_on: Option<NaiveDate>,
    pub points: PointsView,
    pub tier_progress: TierProgressView,
}

/// One immutable line of a member's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LedgerEntry {
    pub id: Uuid,
    pub kind: LedgerKind,
    pub points: Points,
    pub balance_after: Points,
    /// What caused it: `purchase:<store>/<receipt>`, `redemption:<id>`, `gift:<year>` …
    pub reference: Option<String>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct PhoneClaim {
    member_id: MemberId,
}

impl LedgerEntry {
    /// A new entry and its absence-conditioned write.
    pub fn write(
        member: &MemberId,
        kind: LedgerKind,
        points: Points,
        balance_after: Points,
        reference: Option<String>,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(LedgerEntry, Write), ServiceError> {
        let e = LedgerEntry {
            id: Uuid::now_v7(),
            kind,
            points,
            balance_after,
            reference,
            note,
            created_at: now,
        };
        let w = put_new(ledger_key(member, &e.id), &e)?;
        Ok((e, w))
    }
}

pub fn money(value: i64, currency: Currency) -> Money {
    Money::new(value, currency)
}

impl Services {
    /// Where the member stands against the next tier today, in the program's currency: the
    /// one shaping of progress that the member object and the tier route share.
    pub fn progress_view(&self, m: &Member) -> TierProgressView {
        let p = &self.program;
        let progress = tier_progress(
            m.tier,
            &m.spend,
            &p.tiers,
            self.program_date(self.now()),
            p.qualifying_window_months,
        );
        TierProgressView {
            qualifying_spend: money(progress.qualifying_spend, p.currency),
            next_tier: progress.next_tier,
            spend_to_next_tier: progress.spend_to_next_tier.map(|v| money(v, p.currency)),
        }
    }

    pub fn member_view(&self, m: &Member) -> MemberView {
        MemberView {
            id: m.id.clone(),
            name: m.name.clone(),
            phone: m.phone.clone(),
            email: m.email.clone(),
            birthday: m.birthday,
            timezone: m.timezone,
            enrolled_at: m.enrolled_at,
            tier: m.tier,
            tier_expires_on: m.tier_expires_on,
            points: PointsView {
                balance: m.balance,
                lifetime_earned: m.lifetime_earned,
            },
            tier_progress: self.progress_view(m),
        }
    }

    /// The member's local calendar date at `at` (their time zone, else the program's).
    pub fn member_date(&self, m: &Member, at: DateTime<Utc>) -> NaiveDate {
        match m.timezone {
            Some(tz) => at.with_timezone(&tz.0).date_naive(),
            None => self.program_date(at),
        }
    }

    pub async fn load_member(
        &self,
        id: &MemberId,
    ) -> Result<super::records::Versioned<Member>, ServiceError> {
        let item = self
            .store
            .get(&member_key(id))
            .await?
            .ok_or(ServiceError::NotFound("member"))?;
        decode_versioned(&item)
    }

    pub async fn get_member(&self, id: &MemberId) -> Result<MemberView, ServiceError> {
        Ok(self.member_view(&self.load_member(id).await?.value))
    }

    pub async fn enrol(&self, id: MemberId, req: EnrolRequest) -> Result<MemberView, ServiceError> {
        retrying!(self, self.try_enrol(&id, &req))
    }

    async fn try_enrol(
        &self,
        id: &MemberId,
        req: &EnrolRequest,
    ) -> Result<MemberView, ServiceError> {
        let now = self.now();
        let mut keys = vec![member_key(id)];
        keys.extend(req.phone.as_ref().map(phone_key));
        let found = self.store.get_many(&keys).await?;
        if found[0].is_some() {
            return Err(ServiceError::MemberExists);
        }
        if found.get(1).is_some_and(Option::is_some) {
            return Err(ServiceError::PhoneTaken);
        }
        let mut m = Member::new(id.clone(), String::from(req.name.clone()), now);
        m.phone = req.phone.clone();
        m.email = req.email.clone();
        m.timezone = req.timezone;
        if let Some(b) = req.birthday {
            self.set_birthday(&mut m, b, now)?;
        }
        let mut writes = vec![put_member(&m, None)?];
        if let Some(p) = &m.phone {
            writes.push(put_new(
                phone_key(p),
                &PhoneClaim {
                    member_id: id.clone(),
                },
            )?);
        }
        self.store.commit(writes).await?;
        Ok(self.member_view(&m))
    }

    fn set_birthday(
        &self,
        m: &mut Member,
        b: Birthday,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let today = self.member_date(m, now);
        if b.is_after(today) {
            return Err(ServiceError::field(
                "birthday",
                "birthday cannot be in the future",
            ));
        }
        m.birthday = Some(b);
        m.birthday_set_on = Some(today);
        Ok(())
    }

    pub async fn update_profile(
        &self,
        id: &MemberId,
        change: ProfileChange,
        admin: bool,
    ) -> Result<MemberView, ServiceError> {
        retrying!(self, self.try_update_profile(id, &change, admin))
    }

    async fn try_update_profile(
        &self,
        id: &MemberId,
        change: &ProfileChange,
        admin: bool,
    ) -> Result<MemberView, ServiceError> {
        let now = self.now();
        let new_phone = change.phone.clone().flatten();
        let mut keys = vec![member_key(id)];
        keys.extend(new_phone.as_ref().map(phone_key));
        let found = self.store.get_many(&keys).await?;
        let current =
            decode_versioned::<Member>(found[0].as_ref().ok_or(ServiceError::NotFound("member"))?)?;
        let mut m = current.value.clone();
        let mut writes = Vec::new();

        if let Some(name) = &change.name {
            m.name = String::from(name.clone());
        }
        if let Some(email) = &change.email {
            m.email = email.clone();
        }
        if let Some(tz) = change.timezone {
            m.timezone = tz;
        }
        if let Some(phone) = &change.phone
            && *phone != m.phone
        {
            if let Some(p) = phone {
                if let Some(claim) = found.get(1).and_then(Option::as_ref) {
                    let claim: PhoneClaim = decode(claim)?;
                    if claim.member_id != m.id {
                        return Err(ServiceError::PhoneTaken);
                    }
                }
                writes.push(put_new(
                    phone_key(p),
                    &PhoneClaim {
                        member_id: m.id.clone(),
                    },
                )?);
            }
            if let Some(old) = &m.phone {
                writes.push(Write::Delete {
                    key: phone_key(old),
                    cond: Cond::Exists,
                });
            }
            m.phone = phone.clone();
        }
        if let Some(b) = change.birthday
            && b != m.birthday
        {
            if m.birthday.is_some() && !admin {
                return Err(ServiceError::BirthdayLocked);
            }
            match b {
                Some(b) => self.set_birthday(&mut m, b, now)?,
                None => {
                    m.birthday = None;
                    m.birthday_set_on = None;
                }
            }
        }
        if m != current.value {
            writes.push(put_member(&m, Some(current.version))?);
            self.store.commit(writes).await?;
        }
        Ok(self.member_view(&m))
    }

    pub async fn ledger(
        &self,
        id: &MemberId,
        limit: u32,
        cursor: Option<String>,
    ) -> Result<(Vec<LedgerEntry>, Option<String>), ServiceError> {
        self.load_member(id).await?;
        let page = self
            .store
            .query(
                &member_pk(id),
                &SortKey::Prefix("LEDGER#".into()),
                &PageRequest::newest_first(limit, cursor),
            )
            .await?;
        let items = page
            .items
            .iter()
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((items, page.next))
    }

    pub async fn adjust(
        &self,
        id: &MemberId,
        req: AdjustmentRequest,
        idem: Option<Idempotency>,
    ) -> Result<Outcome<LedgerEntry>, ServiceError> {
        if req.points.0 == 0 || req.points.0.unsigned_abs() > 1_000_000_000 {
            return Err(ServiceError::field(
                "points",
                "points must be non-zero and at most 1000000000 either way",
            ));
        }
        let reason = req.reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(ServiceError::field(
                "reason",
                "reason must be 1 to 500 characters",
            ));
        }
        retrying!(self, self.try_adjust(id, req.points, reason, idem.as_ref()))
    }

    async fn try_adjust(
        &self,
        id: &MemberId,
        points: Points,
        reason: &str,
        idem: Option<&Idempotency>,
    ) -> Result<Outcome<LedgerEntry>, ServiceError> {
        let now = self.now();
        let mut keys = vec![member_key(id)];
        keys.extend(idem.map(Idempotency::store_key));
        let found = self.store.get_many(&keys).await?;
        if let Some(idem) = idem
            && let Some(prior) = idem.prior::<LedgerEntry>(found[1].as_ref(), now)?
        {
            return Ok(Outcome::replay(prior));
        }
        let current =
            decode_versioned::<Member>(found[0].as_ref().ok_or(ServiceError::NotFound("member"))?)?;
        let mut m = current.value;
        m.balance = m.balance.checked_add(points)?;
        if points.0 > 0 {
            m.lifetime_earned = m.lifetime_earned.checked_add(points)?;
        }
        let (entry, ledger) = LedgerEntry::write(
            id,
            LedgerKind::Adjustment,
            points,
            m.balance,
            None,
            Some(reason.to_owned()),
            now,
        )?;
        let mut writes = vec![put_member(&m, Some(current.version))?, ledger];
        if let Some(idem) = idem {
            writes.push(idem.record(&entry, now, self.program.idempotency_retention_hours)?);
        }
        self.store.commit(writes).await?;
        Ok(Outcome::fresh(entry))
    }
}
