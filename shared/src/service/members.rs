//! Members: enrolment (with the phone claim that keeps phones unique), profile reads and changes
//! (the birthday is set once, then only by an administrator), the ledger, and admin adjustments.

use super::Outcome;
use super::audit::Audited;
use super::error::{ServiceError, live};
use super::idempotency::Idempotency;
use super::referrals::{CodeReads, Referring};
use super::unit::MemberWrite;
use crate::domain::audit::{Actor, AuditAction, Change, OperatorRole};
use crate::domain::event::{self, Adjusted, EventData, Updated};
use crate::domain::ledger::LedgerEntry;
use crate::domain::ledger::LedgerKind;
use crate::domain::member::{Member, tier_progress};
use crate::domain::segment::SegmentState;
use crate::domain::{
    Birthday, Currency, Email, MemberId, Money, Name, Phone, PhoneInput, Points, Tier, TimeZoneName,
};
use crate::retrying;
use crate::service::Ctx;
use crate::service::Referrals;
use crate::service::Segmentation;
use crate::table::{Batch, LedgerLine, PhoneClaim, Reads, Replica, Versioned};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Enrolment, profiles, the ledger and operators' adjustments; enrolment applies a referral code
/// and places the member in its segments.
#[derive(Clone)]
pub struct Members {
    pub(crate) ctx: Ctx,
    pub(crate) referrals: Referrals,
    pub(crate) segments: Segmentation,
    pub(crate) custom: super::CustomSegments,
}

/// An enrolment as the caller asks it (the HTTP edge parses `POST /v1/members` into it).
#[derive(Debug, Clone)]
pub struct Enrolment {
    /// Only administrators and POS may choose the id (the edge decides who asked).
    pub id: Option<MemberId>,
    pub name: Name,
    /// International, or national in the program's `default_country`.
    pub phone: Option<PhoneInput>,
    pub email: Option<Email>,
    pub birthday: Option<Birthday>,
    pub timezone: Option<TimeZoneName>,
    pub referral_code: Option<crate::domain::referral::ReferralCode>,
}

/// A profile edit: `None` keeps a field, `Some(None)` clears it (the name is never cleared).
#[derive(Debug, Clone, Default)]
pub struct ProfileEdit {
    pub name: Option<Name>,
    pub email: Option<Option<Email>>,
    pub phone: Option<Option<PhoneInput>>,
    pub timezone: Option<Option<TimeZoneName>>,
    pub birthday: Option<Option<Birthday>>,
}

impl ProfileEdit {
    /// The fields that need no claim or rule: name, email and time zone.
    fn apply_plain_fields(&self, m: &mut Member) {
        if let Some(name) = &self.name {
            m.name = String::from(name.clone());
        }
        if let Some(email) = &self.email {
            m.email = email.clone();
        }
        if let Some(tz) = self.timezone {
            m.timezone = tz;
        }
    }
}

/// An operator's adjustment: signed, non-zero points and the reason.
#[derive(Debug, Clone)]
pub struct Adjustment {
    pub points: Points,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PointsView {
    /// Spendable now.
    pub balance: Points,
    pub lifetime_earned: Points,
    /// Purchase points not spendable yet (the return window of `pending_days`).
    pub pending: Points,
    /// The points of the next expiry date, if it falls within 60 days.
    pub expiring_soon: Option<Expiring>,
}

/// Points that expire on a day (they may be spent up to and including it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Expiring {
    pub points: Points,
    pub on: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TierProgressView {
    pub qualifying_spend: Money,
    pub next_tier: Option<Tier>,
    pub spend_to_next_tier: Option<Money>,
}

/// The member object of API.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "member-ada", "name": "Ada Lovelace", "phone": "+8613800000000", "email": "ada@example.com", "birthday": "1990-11-22", "timezone": "Asia/Shanghai", "enrolled_at": "2026-11-22T10:15:00Z", "tier": "silver", "tier_expires_on": null, "points": {"balance": 120, "lifetime_earned": 300, "pending": 40, "expiring_soon": {"points": 30, "on": "2027-11-30"}}, "tier_progress": {"qualifying_spend": {"value": 42000, "currency": "USD"}, "next_tier": "gold", "spend_to_next_tier": {"value": 58000, "currency": "USD"}}, "status": "active", "segments": {"lifecycle": "active", "value": "potential", "rfm": {"r": 5, "f": 2, "m": 3}}}))]
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
    /// `active` (an erased member answers 410 instead).
    pub status: String,
    /// Lifecycle stage, value segment and RFM scores as of the member's last write or the last
    /// segments run (`value` and `rfm` are null without a purchase in the qualifying window).
    pub segments: Option<crate::domain::segment::Segments>,
    /// Operators only: the predicted scores under the model in force, as of today; null before
    /// the first fit, without a purchase, and always for the member themself and a till.
    #[serde(default)]
    pub predictions: Option<super::predictions::MemberPredictions>,
    /// Operators only: the custom segments (`custom:<slug>`) the member is in now, evaluated
    /// live (the listings are as of their last evaluation); null for the member and a till.
    #[serde(default)]
    pub custom_segments: Option<Vec<String>>,
}

/// An enrolment as every try of it reads it.
#[derive(Clone, Copy)]
struct Enrolling<'a> {
    id: &'a MemberId,
    req: &'a Enrolment,
    phone: Option<&'a Phone>,
    idem: Option<&'a Idempotency>,
    /// The caller's key for unknown referral codes, when a code is given.
    guesser: Option<&'a str>,
}

/// What an enrolment's `Idempotency-Key` remembers.
#[derive(Serialize, Deserialize)]
struct Enrolled {
    id: MemberId,
}

pub fn money(value: i64, currency: Currency) -> Money {
    Money::new(value, currency)
}

impl Members {
    #[tracing::instrument(skip_all, fields(member = %id))]
    pub async fn get_member(&self, id: &MemberId) -> Result<MemberView, ServiceError> {
        Ok(self.ctx.member_view(&self.ctx.load_member(id).await?.value))
    }

    /// The member object as operators see it: with the predicted scores (the member and the
    /// model in force read in one round trip).
    #[tracing::instrument(skip_all, fields(member = %id))]
    pub async fn get_member_for_operator(&self, id: &MemberId) -> Result<MemberView, ServiceError> {
        let mut reads = crate::table::Reads::new();
        let member = reads.add::<Member>(id);
        let state = reads.add::<SegmentState>(&Replica::of(id));
        let found = self.ctx.table.read(&reads).await?;
        let m = live(found.get(&member)?)?.value;
        let standing = self.segments.standing(found.get(&state)?);
        let mut view = self.ctx.member_view(&m);
        view.predictions = self.segments.member_predictions(&m, &standing);
        view.custom_segments = Some(
            self.custom
                .member_segments(&m, standing.model.as_ref())
                .await?,
        );
        Ok(view)
    }

    /// The member holding a phone number, if any: its claim, then the member (two reads; an
    /// operator's search, not a till's hot path).
    #[tracing::instrument(skip_all)]
    pub async fn find_by_phone(&self, phone: &Phone) -> Result<Option<MemberView>, ServiceError> {
        let Some(claim) = self.ctx.table.get::<PhoneClaim>(phone).await? else {
            return Ok(None);
        };
        match self.ctx.load_member(&claim.value.member_id).await {
            Ok(m) => Ok(Some(self.ctx.member_view(&m.value))),
            Err(ServiceError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    #[tracing::instrument(skip_all, fields(member = %id))]
    pub async fn enrol(
        &self,
        id: MemberId,
        req: Enrolment,
        idem: Option<Idempotency>,
        actor: Option<&Actor>,
        principal: &str,
    ) -> Result<Outcome<MemberView>, ServiceError> {
        let phone = req
            .phone
            .as_ref()
            .map(|p| self.ctx.phone("phone", p))
            .transpose()?;
        // Only a code is counted against its caller; without one nothing more is read.
        let guesser = match &req.referral_code {
            Some(_) => Some(self.referrals.guesser(principal).await?),
            None => None,
        };
        let enrolling = Enrolling {
            id: &id,
            req: &req,
            phone: phone.as_ref(),
            idem: idem.as_ref(),
            guesser: guesser.as_deref(),
        };
        retrying!(self.ctx, self.try_enrol(&enrolling, actor))
    }

    async fn try_enrol(
        &self,
        e: &Enrolling<'_>,
        actor: Option<&Actor>,
    ) -> Result<Outcome<MemberView>, ServiceError> {
        let Enrolling {
            id,
            req,
            phone,
            idem,
            guesser,
        } = *e;
        let now = self.ctx.now();
        let mut reads = Reads::new();
        let member = reads.add::<Member>(id);
        let claim = phone.map(|p| reads.add::<PhoneClaim>(p));
        let prior = idem.map(|i| i.read(&mut reads));
        let code = match (&req.referral_code, guesser) {
            (Some(c), Some(g)) => Some(CodeReads::add(&mut reads, c, g.to_owned())),
            _ => None,
        };
        let found = self.ctx.table.read(&reads).await?;
        // The key remembers only which member it created (no personal data kept beside the
        // member, so erasure finds it all); a replay answers that member as it is now.
        if let Some(first) = Idempotency::replay::<Enrolled>(idem, &prior, &found, now)? {
            return Ok(Outcome::replay(self.get_member(&first.id).await?));
        }
        match found.get(&member)? {
            Some(m) if m.value.erased_at.is_some() => return Err(ServiceError::MemberErased),
            Some(_) => return Err(ServiceError::MemberExists),
            None => {}
        }
        if claim.as_ref().is_some_and(|c| found.exists(c)) {
            return Err(ServiceError::PhoneTaken);
        }
        let referring = match &code {
            Some(c) => Some(self.referrals.referring_of(&found, c, now).await?),
            None => None,
        };
        let code = code.as_ref().zip(referring.as_ref());
        let w = self.enrolment(e, code, now, actor)?;
        let enrolled = Enrolled { id: id.clone() };
        let saved = w
            .commit_remembering(&self.ctx, idem.map(|i| (i, &enrolled)))
            .await?;
        let view = self.ctx.member_view(&saved.member);
        Ok(Outcome::fresh(view))
    }

    /// The new member's write: the member (a prospect, perhaps referred), its code, its phone
    /// claim and the audit record.
    fn enrolment(
        &self,
        e: &Enrolling<'_>,
        code: Option<(&CodeReads, &Referring)>,
        now: DateTime<Utc>,
        actor: Option<&Actor>,
    ) -> Result<MemberWrite, ServiceError> {
        let Enrolling { id, req, phone, .. } = *e;
        let mut m = Member::new(id.clone(), String::from(req.name.clone()), now);
        m.phone = phone.cloned();
        m.email = req.email.clone();
        m.timezone = req.timezone;
        if let Some(b) = req.birthday {
            self.set_birthday(&mut m, b, now)?;
        }
        let mut w = MemberWrite::create(&self.ctx, m, now, || ServiceError::MemberExists);
        let MemberWrite {
            m, journal, batch, ..
        } = &mut w;
        journal.note(EventData::MemberEnrolled(event::Enrolled {
            tier: m.tier,
            enrolled_at: m.enrolled_at,
        }));
        // A new member is a prospect (no purchase, so no cut point is read).
        let fixed = self.segments.fixed_standing();
        self.segments.resegment(m, &fixed, now, journal);
        if let Some((c, referring)) = code {
            self.referrals
                .apply_code(m, &c.code, referring, true, journal, batch)?;
        }
        self.referrals.make_code(m, now, batch)?;
        if let Some(p) = &m.phone {
            batch
                .create(
                    p,
                    &PhoneClaim {
                        member_id: id.clone(),
                    },
                )?
                .or_refuse(|| ServiceError::PhoneTaken);
        }
        let mut changes = vec![Change::to("status", "active")];
        if let Some((c, _)) = code {
            changes.push(Change::to("referral_code", c.code.as_str()));
        }
        let audited = Audited {
            action: AuditAction::MemberEnrolled,
            member: Some(id),
            target: None,
            changes,
        };
        w.audit(&self.ctx, actor, audited)?;
        Ok(w)
    }

    fn set_birthday(
        &self,
        m: &mut Member,
        b: Birthday,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let today = self.ctx.member_date(m, now);
        b.check(today)
            .map_err(|e| ServiceError::field("birthday", e.0))?;
        m.birthday = Some(b);
        m.birthday_set_on = Some(today);
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(member = %id))]
    pub async fn update_profile(
        &self,
        id: &MemberId,
        change: ProfileEdit,
        actor: Option<&Actor>,
    ) -> Result<MemberView, ServiceError> {
        let phone = match &change.phone {
            Some(Some(p)) => Some(Some(self.ctx.phone("phone", p)?)),
            Some(None) => Some(None),
            None => None,
        };
        retrying!(
            self.ctx,
            self.try_update_profile(id, &change, &phone, actor)
        )
    }

    async fn try_update_profile(
        &self,
        id: &MemberId,
        change: &ProfileEdit,
        phone: &Option<Option<Phone>>,
        actor: Option<&Actor>,
    ) -> Result<MemberView, ServiceError> {
        let now = self.ctx.now();
        let new_phone = phone.clone().flatten();
        let mut reads = Reads::new();
        let member = reads.add::<Member>(id);
        let new_claim = new_phone.as_ref().map(|p| reads.add::<PhoneClaim>(p));
        let found = self.ctx.table.read(&reads).await?;
        let current = live(found.get(&member)?)?;
        let old_claim = match &current.value.phone {
            Some(old) if phone.as_ref().is_some_and(|p| p.as_ref() != Some(old)) => {
                self.ctx.table.get::<PhoneClaim>(old).await?
            }
            _ => None,
        };
        let mut m = current.value.clone();
        let mut batch = Batch::new();
        change.apply_plain_fields(&mut m);
        if let Some(phone) = phone
            && *phone != m.phone
        {
            let new_claim = new_claim.as_ref().map(|c| found.get(c)).transpose()?;
            move_phone_claim(&mut m, phone, new_claim.flatten(), old_claim, &mut batch)?;
        }
        if let Some(b) = change.birthday
            && b != m.birthday
        {
            // An operator may correct a birthday; a member sets theirs once.
            self.change_birthday(&mut m, b, actor.is_some(), now)?;
        }
        if m != current.value {
            // Which fields changed, never their values: events carry no personal data.
            let changed = m.changed_fields(&current.value);
            let audited = Audited {
                action: AuditAction::ProfileEdited,
                member: Some(id),
                target: None,
                changes: changed.iter().map(|f| Change::named(f.as_str())).collect(),
            };
            let mut w = MemberWrite::on(&self.ctx, &current, now);
            w.m = m;
            w.batch = batch;
            w.audit(&self.ctx, actor, audited)?;
            w.journal
                .note(EventData::MemberUpdated(Updated { changed }));
            return Ok(self.ctx.member_view(&w.commit(&self.ctx).await?.member));
        }
        Ok(self.ctx.member_view(&m))
    }

    /// A birthday set (or, by an operator, changed or removed). Members set theirs once.
    fn change_birthday(
        &self,
        m: &mut Member,
        b: Option<Birthday>,
        admin: bool,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        if m.birthday.is_some() && !admin {
            return Err(ServiceError::BirthdayLocked);
        }
        match b {
            Some(b) => self.set_birthday(m, b, now)?,
            None => {
                m.birthday = None;
                m.birthday_set_on = None;
            }
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(member = %id))]
    pub async fn ledger(
        &self,
        id: &MemberId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<LedgerEntry>, Option<String>), ServiceError> {
        self.ctx.load_member(id).await?;
        let (lines, next) = self.ctx.table.list::<LedgerLine>(id, limit, cursor).await?;
        Ok((lines.into_iter().map(|l| l.entry).collect(), next))
    }

    #[tracing::instrument(skip_all, fields(member = %id))]
    pub async fn adjust(
        &self,
        id: &MemberId,
        req: Adjustment,
        idem: Option<Idempotency>,
        actor: &Actor,
    ) -> Result<Outcome<LedgerEntry>, ServiceError> {
        let limit = self.ctx.program.support_adjustment_limit;
        if actor.role == OperatorRole::Support && req.points.0.unsigned_abs() > u64::from(limit) {
            return Err(ServiceError::AdjustmentOverLimit { limit });
        }
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
        retrying!(
            self.ctx,
            self.try_adjust(id, req.points, reason, idem.as_ref(), actor)
        )
    }

    async fn try_adjust(
        &self,
        id: &MemberId,
        points: Points,
        reason: &str,
        idem: Option<&Idempotency>,
        actor: &Actor,
    ) -> Result<Outcome<LedgerEntry>, ServiceError> {
        let now = self.ctx.now();
        let mut reads = Reads::new();
        let member = reads.add::<Member>(id);
        let prior = idem.map(|i| i.read(&mut reads));
        let found = self.ctx.table.read(&reads).await?;
        // An erased member's replays answer 410 like every other request on the member.
        let current = live(found.get(&member)?)?;
        if let Some(replay) = Idempotency::replay::<LedgerEntry>(idem, &prior, &found, now)? {
            return Ok(Outcome::replay(replay));
        }
        let mut w = MemberWrite::settled(&self.ctx, &current, now);
        let MemberWrite { m, journal, .. } = &mut w;
        let before = m.balance;
        if points.0 > 0 {
            self.ctx.credit(m, points, now);
            m.lifetime_earned = m.lifetime_earned.checked_add(points)?;
        } else {
            self.ctx.debit(m, points.checked_neg()?, None);
        }
        let entry = journal.line(
            LedgerEntry::new(
                LedgerKind::Adjustment,
                points,
                m.balance,
                None,
                Some(reason.to_owned()),
                now,
            ),
            |moved, line| EventData::PointsAdjusted(Adjusted { moved, line }),
        );
        let audited = Audited {
            action: AuditAction::PointsAdjusted,
            member: Some(id),
            target: Some(entry.id.to_string()),
            changes: vec![
                Change::new("balance", before, m.balance),
                Change::to("points", points),
            ],
        };
        w.audit(&self.ctx, Some(actor), audited)?;
        w.commit_remembering(&self.ctx, idem.map(|i| (i, &entry)))
            .await?;
        Ok(Outcome::fresh(entry))
    }
}

/// The member's phone moves to `phone`: the new number claimed (refused when another member holds
/// it), the old claim released.
fn move_phone_claim(
    m: &mut Member,
    phone: &Option<Phone>,
    new_claim: Option<Versioned<PhoneClaim>>,
    old_claim: Option<Versioned<PhoneClaim>>,
    batch: &mut Batch,
) -> Result<(), ServiceError> {
    if let Some(p) = phone {
        if let Some(claim) = new_claim
            && claim.value.member_id != m.id
        {
            return Err(ServiceError::PhoneTaken);
        }
        batch
            .create(
                p,
                &PhoneClaim {
                    member_id: m.id.clone(),
                },
            )?
            .or_refuse(|| ServiceError::PhoneTaken);
    }
    // Release the old claim only if it is this member's: a claim that is missing (or, after some
    // repair, another's) is not ours to delete, and must not block the change.
    if let (Some(old), Some(claim)) = (&m.phone, &old_claim)
        && claim.value.member_id == m.id
    {
        batch.delete::<PhoneClaim>(old, claim.version);
    }
    m.phone = phone.clone();
    Ok(())
}

impl Ctx {
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
        // As of now, whether or not a write or the points job has settled the lots yet.
        let now = self.now();
        let lots = self.settled_lots(m, now);
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
                balance: Points(lots.spendable()),
                lifetime_earned: m.lifetime_earned,
                pending: Points(lots.pending_total()),
                expiring_soon: self.expiring(m, &lots, now, 60).into_iter().next(),
            },
            tier_progress: self.progress_view(m),
            status: "active".into(),
            segments: m.segments,
            predictions: None,
            custom_segments: None,
        }
    }

    /// The member's local calendar date at `at` (their time zone, else the program's).
    pub fn member_date(&self, m: &Member, at: DateTime<Utc>) -> NaiveDate {
        match m.timezone {
            Some(tz) => at.with_timezone(&tz.0).date_naive(),
            None => self.program_date(at),
        }
    }

    #[tracing::instrument(skip_all, fields(member = %id))]
    pub async fn load_member(&self, id: &MemberId) -> Result<Versioned<Member>, ServiceError> {
        live(self.table.get::<Member>(id).await?)
    }
}
