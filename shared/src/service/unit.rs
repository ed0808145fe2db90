//! The unit of work of a member's write. It holds the member as read (with its version), the
//! member as the decision leaves it, the journal of the ledger lines and events the decision
//! writes, and the batch of the other records; [`MemberWrite::commit`] is the one place that
//! closes the journal, saves the member under its version condition (or its absence, for an
//! enrolment) and commits, in one round trip. A use case opens one, decides into it, and commits
//! it (inside `retrying!`, which reads again and decides again when the version race is lost).

use super::Ctx;
use super::audit::Audited;
use super::error::ServiceError;
use super::events::Journal;
use super::idempotency::Idempotency;
use crate::domain::audit::Actor;
use crate::domain::member::Member;
use crate::table::{Answer, Batch, Versioned};
use chrono::{DateTime, Utc};
use serde::Serialize;

pub(crate) struct MemberWrite {
    /// The member as read: `None` for a member this write creates.
    prior: Option<Versioned<Member>>,
    /// What the member's save answers when its condition fails (an enrolment: "exists").
    taken: Option<Answer>,
    /// The member as the decision leaves it.
    pub m: Member,
    pub journal: Journal,
    pub batch: Batch,
    now: DateTime<Utc>,
}

/// What a committed write wrote: the member as saved.
pub(crate) struct Committed {
    pub member: Member,
}

impl MemberWrite {
    /// A write on the member as read, deciding as of `now`.
    pub fn on(svc: &Ctx, current: &Versioned<Member>, now: DateTime<Utc>) -> Self {
        MemberWrite {
            journal: Journal::new(svc, &current.value, now),
            m: current.value.clone(),
            prior: Some(current.clone()),
            taken: None,
            batch: Batch::new(),
            now,
        }
    }

    /// A write on the member as read, its points first settled as of `now` (pending points that
    /// are due released, lots past their expiry expired): where every write that moves points starts.
    pub fn settled(svc: &Ctx, current: &Versioned<Member>, now: DateTime<Utc>) -> Self {
        let mut w = MemberWrite::on(svc, current, now);
        svc.settle(&mut w.m, &mut w.journal, now);
        w
    }

    /// A write that creates the member: its save is conditioned on absence, and a member already
    /// there answers `taken`.
    pub fn create(svc: &Ctx, m: Member, now: DateTime<Utc>, taken: Answer) -> Self {
        MemberWrite {
            journal: Journal::new(svc, &m, now),
            m,
            prior: None,
            taken: Some(taken),
            batch: Batch::new(),
            now,
        }
    }

    /// The audit record of an operator's write, in the same commit (none without an actor).
    pub fn audit(
        &mut self,
        svc: &Ctx,
        actor: Option<&Actor>,
        what: Audited<'_>,
    ) -> Result<(), ServiceError> {
        svc.audit(&mut self.batch, actor, what, self.now)
    }

    /// The batch the write commits: the member first (saved after the journal has moved its
    /// event numbering on), then the decision's records, then the ledger lines and events. The
    /// member's condition comes first so that, when several conditions fail at once, the
    /// member's answer (a lost race, or "exists") is the one given.
    fn close(mut self, svc: &Ctx) -> Result<(Batch, Member), ServiceError> {
        let mut lines = Batch::new();
        self.journal.close(svc, &mut self.m, &mut lines)?;
        let mut batch = Batch::new();
        let saved = batch.save_member(self.prior.as_ref(), &mut self.m)?;
        if let Some(taken) = self.taken {
            saved.or_refuse(taken);
        }
        batch.append(self.batch).append(lines);
        Ok((batch, self.m))
    }

    /// Closes the write into `batch`: for a second member written in another's commit (a
    /// referrer paid or clawed back in the referee's purchase, refund or review).
    pub fn close_into(self, svc: &Ctx, batch: &mut Batch) -> Result<(), ServiceError> {
        batch.append(self.close(svc)?.0);
        Ok(())
    }

    /// `batch` with the member's write, or alone when there is none (a write about an erased
    /// member, who is not written again).
    pub async fn commit_beside(
        write: Option<MemberWrite>,
        batch: Batch,
        svc: &Ctx,
    ) -> Result<(), ServiceError> {
        match write {
            Some(mut w) => {
                w.batch.append(batch);
                w.commit(svc).await.map(|_| ())
            }
            None => svc.table.commit(batch).await,
        }
    }

    /// Closes the journal, saves the member and commits it all in one round trip.
    pub async fn commit(self, svc: &Ctx) -> Result<Committed, ServiceError> {
        self.commit_remembering::<()>(svc, None).await
    }

    /// [`Self::commit`], with the answer kept under the request's `Idempotency-Key` in the same
    /// commit (a concurrent duplicate fails that record's absence condition; its re-read replays).
    pub async fn commit_remembering<T: Serialize>(
        self,
        svc: &Ctx,
        remember: Option<(&Idempotency, &T)>,
    ) -> Result<Committed, ServiceError> {
        let now = self.now;
        let (effect, member) = self.close(svc)?;
        let mut batch = Batch::new();
        if let Some((idem, response)) = remember {
            idem.record(
                &mut batch,
                response,
                now,
                svc.program.idempotency_retention_hours,
            )?;
        }
        batch.append(effect);
        svc.table.commit(batch).await?;
        Ok(Committed { member })
    }
}
