//! Erasure on request (GDPR, PIPL): the member item becomes a tombstone, the phone claim is
//! released, the balance is forfeited with an `erasure_forfeit` line, and `member.erased` is
//! emitted, all in one commit. Then the free text of the member's ledger lines is scrubbed page
//! by page; every call (a replay included) finishes the scrub, so a crash in between loses
//! nothing a retry cannot finish.

use super::Outcome;
use super::audit::Audited;
use super::error::ServiceError;
use super::events::Journal;
use super::idempotency::Idempotency;
use super::unit::MemberWrite;
use crate::domain::audit::{Actor, AuditAction, Change};
use crate::domain::event::{Erased, EventData, Moved};
use crate::domain::ledger::LedgerEntry;
use crate::domain::ledger::LedgerKind;
use crate::domain::member::Member;
use crate::domain::traits::MemberTraits;
use crate::domain::{MemberId, Points};
use crate::retrying;
use crate::service::Ctx;
use crate::service::Referrals;
use crate::service::Segmentation;
use crate::table::{
    Batch, CodeClaim, IdempotencyId, IdempotencyRecord, LedgerLine, PhoneClaim, Reads, Referrer,
    RetiredCode, Versioned,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Erasing a member: the personal data scrubbed, the referral code retired, the segments left.
#[derive(Clone)]
pub struct Erasures {
    pub(crate) ctx: Ctx,
    pub(crate) referrals: Referrals,
    pub(crate) segments: Segmentation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "member-ada", "status": "erased",
    "erased_at": "2026-11-22T10:15:00Z", "forfeited_points": 120, "written_off_points": 0}))]
pub struct Erasure {
    pub id: MemberId,
    /// Always `erased`.
    pub status: String,
    pub erased_at: DateTime<Utc>,
    /// The balance (and pending points) given up; never negative.
    pub forfeited_points: Points,
    /// What the member owed (a negative balance, from points refunded after they were spent),
    /// written off: the erasure line brings the ledger to zero either way.
    #[serde(default)]
    #[schema(required = true)]
    pub written_off_points: Points,
}

impl Erasure {
    /// What the erasure of `m` (erased) did.
    fn of(m: &Member) -> Self {
        Erasure {
            id: m.id.clone(),
            status: "erased".into(),
            erased_at: m.erased_at.unwrap_or(m.last_activity_at),
            forfeited_points: m.forfeited_points.unwrap_or(Points::ZERO),
            written_off_points: m.written_off_points.unwrap_or(Points::ZERO),
        }
    }
}

/// `member.erased`: the forfeit, or the debt written off (a credit), leaves on an
/// `erasure_forfeit` line when there is one; pending points (never in the balance the events add
/// up to) come off `pending`.
fn erasure_line(journal: &mut Journal, was: &Member, m: &Member) {
    let forfeited = m.forfeited_points.unwrap_or(Points::ZERO);
    let written_off = m.written_off_points.unwrap_or(Points::ZERO);
    let line_points = Points(written_off.0 - forfeited.0);
    let pending = was.pending();
    let pending = (pending.0 != 0).then(|| Points(-pending.0));
    let erased = |moved: Moved, line| {
        EventData::MemberErased(Erased {
            moved: Moved {
                points: Points(moved.points.0 - pending.map_or(0, |p| p.0)),
                ..moved
            },
            line,
            pending,
            forfeited_points: forfeited,
        })
    };
    if line_points.0 != 0 {
        let now = journal.now();
        journal.line(
            LedgerEntry::new(
                LedgerKind::ErasureForfeit,
                line_points,
                Points::ZERO,
                Some(format!("erasure:{}", m.id)),
                None,
                now,
            ),
            |moved, line| erased(moved, Some(line)),
        );
    } else {
        journal.note(erased(
            Moved {
                points: Points::ZERO,
                balance: Points::ZERO,
            },
            None,
        ));
    }
}

impl Erasures {
    #[tracing::instrument(skip_all, fields(member = %id))]
    pub async fn erase(
        &self,
        id: &MemberId,
        idem: Option<Idempotency>,
        actor: Option<&Actor>,
    ) -> Result<Outcome<Erasure>, ServiceError> {
        // Out of the custom listings first, a transaction's worth at a time; the erasure's own
        // commit then takes out any an evaluation put back in between.
        retrying!(self.ctx, self.ctx.unlist(id))?;
        let outcome = retrying!(self.ctx, self.try_erase(id, idem.as_ref(), actor))?;
        self.scrub_ledger(id).await?;
        Ok(outcome)
    }

    /// Tags and what was bought where go, and the member leaves every custom listing still
    /// held, in the erasure's commit.
    async fn forget_traits(
        &self,
        id: &MemberId,
        traits: Option<crate::table::Versioned<MemberTraits>>,
        batch: &mut Batch,
    ) -> Result<(), ServiceError> {
        let Some(t) = traits else {
            return Ok(());
        };
        // More than a few listed again since the unlisting: unlist again, then read again (a
        // lost race).
        if t.value.listed.len() > 10 {
            self.ctx.unlist(id).await?;
            return Err(ServiceError::Store(crate::store::StoreError::Conflict));
        }
        batch.delete::<MemberTraits>(id, t.version);
        batch.move_listings(id, &Default::default(), &t.value.listed)?;
        Ok(())
    }

    /// Every code the member held, retired for ever by its keyed hash (a vanity code may be a
    /// name): printed codes then resolve to nobody and can never be given to someone else. The
    /// referrer item that lists them goes; referrals it counted keep their own records.
    async fn retire_codes(
        &self,
        id: &MemberId,
        r: &Versioned<Referrer>,
        now: DateTime<Utc>,
        batch: &mut Batch,
    ) -> Result<(), ServiceError> {
        let retired_on = self.ctx.program_date(now);
        for code in std::iter::once(&r.value.code).chain(&r.value.retired) {
            batch.remove::<CodeClaim>(code);
            let hash = self.referrals.retired_code(code).await?;
            batch.put(&hash, &RetiredCode { retired_on })?;
        }
        batch.delete::<Referrer>(id, r.version);
        Ok(())
    }

    async fn try_erase(
        &self,
        id: &MemberId,
        idem: Option<&Idempotency>,
        actor: Option<&Actor>,
    ) -> Result<Outcome<Erasure>, ServiceError> {
        let now = self.ctx.now();
        let mut reads = Reads::new();
        let member = reads.add::<Member>(id);
        let referrer = reads.add::<Referrer>(id);
        let traits = reads.add::<MemberTraits>(id);
        let prior = idem.map(|i| i.read(&mut reads));
        let found = self.ctx.table.read(&reads).await?;
        if let Some(replay) = Idempotency::replay::<Erasure>(idem, &prior, &found, now)? {
            return Ok(Outcome::replay(replay));
        }
        let current = found
            .get(&member)?
            .ok_or(ServiceError::NotFound("member"))?;
        // Erasing twice is the same erasure: answer what the first one did.
        if current.value.erased_at.is_some() {
            return Ok(Outcome::replay(Erasure::of(&current.value)));
        }
        let claim = match &current.value.phone {
            Some(p) => self.ctx.table.get::<PhoneClaim>(p).await?,
            None => None,
        };
        let mut w = MemberWrite::on(&self.ctx, &current, now);
        w.m = current.value.clone().erased(now);
        let MemberWrite {
            m, journal, batch, ..
        } = &mut w;
        // The member leaves every segment in this same commit.
        m.segments = current.value.segments;
        self.segments.set_segments(m, None, journal);
        erasure_line(journal, &current.value, m);
        if let (Some(phone), Some(c)) = (&current.value.phone, &claim)
            && c.value.member_id == *id
        {
            batch.delete::<PhoneClaim>(phone, c.version);
        }
        if let Some(r) = found.get(&referrer)? {
            self.retire_codes(id, &r, now, batch).await?;
        }
        self.forget_traits(id, found.get(&traits)?, batch).await?;
        // The record keeps the member's id (a pseudonym) and no personal data.
        let audited = Audited {
            action: AuditAction::MemberErased,
            member: Some(id),
            target: None,
            changes: vec![Change::new("status", "active", "erased")],
        };
        let answer = Erasure::of(m);
        w.audit(&self.ctx, actor, audited)?;
        w.commit_remembering(&self.ctx, idem.map(|i| (i, &answer)))
            .await?;
        Ok(Outcome::fresh(answer))
    }

    /// Deletes the idempotency records of requests on an erased member's data (their stored
    /// answers may hold an operator's note or a voucher code), then removes the free text
    /// (notes) from every ledger line; amounts, kinds, dates and references stay, so the ledger
    /// still sums to the (zero) balance.
    async fn scrub_ledger(&self, id: &MemberId) -> Result<(), ServiceError> {
        loop {
            let (records, next) = self
                .ctx
                .table
                .list_versioned::<IdempotencyRecord>(id, 90, None)
                .await?;
            let mut batch = Batch::new();
            for r in &records {
                if let Some(digest) = &r.value.digest {
                    let rid = IdempotencyId {
                        owner: Some(id.clone()),
                        digest: digest.clone(),
                    };
                    batch.remove::<IdempotencyRecord>(&rid);
                }
            }
            // Deleted records leave the listing, so the next pass starts again from the top.
            if batch.is_empty() {
                break;
            }
            self.ctx.table.commit(batch).await?;
            if next.is_none() {
                break;
            }
        }
        let mut cursor: Option<String> = None;
        loop {
            let (lines, next) = self
                .ctx
                .table
                .list_versioned::<LedgerLine>(id, 90, cursor.as_deref())
                .await?;
            let mut batch = Batch::new();
            for line in lines.into_iter().filter(|l| l.value.entry.note.is_some()) {
                let mut clean = line.value.clone();
                clean.entry.note = None;
                batch.save(&(id.clone(), clean.seq), &clean, Some(line.version))?;
            }
            if !batch.is_empty() {
                // A concurrent scrub (another replay) may have won: its result is the same.
                match self.ctx.table.commit(batch).await {
                    Err(e) if e.is_retryable() => {}
                    other => other?,
                }
            }
            match next {
                Some(n) => cursor = Some(n),
                None => return Ok(()),
            }
        }
    }
}
