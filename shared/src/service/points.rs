//! Points lots in the write paths (DESIGN.md "Points lots"): every write that moves a member's
//! points first settles their lots to today, writing in the same commit the `points_available`
//! and `points_expired` lines a late or missing job left unwritten, then credits or debits
//! through the lots, so the balance is always what the lots leave spendable. Also the daily
//! `points` job, which visits only the members GSI8 lists as due by today (every commit keeps a
//! member's due day), writes those lines and sends the expiring-soon notices, once each.

use super::error::ServiceError;
use super::events::Journal;
use super::jobs::{self, JobReport, MemberTally};
use super::members::Expiring;
use super::unit::MemberWrite;
use crate::domain::MemberId;
use crate::domain::Points;
use crate::domain::event::{Available, EventData, Expired, ExpiringSoon, Moved};
use crate::domain::ledger::LedgerEntry;
use crate::domain::ledger::LedgerKind;
use crate::domain::lots::{self, Expiry, Lot, Lots, Origin, Taken};
use crate::domain::member::Member;
use crate::retrying;
use crate::service::Ctx;
use crate::table::MemberIndex;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The points job (pending points released, lots expired) and the points schedule.
#[derive(Clone)]
pub struct Balances {
    pub(crate) ctx: Ctx,
}

/// One lot of the schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleLot {
    pub points: Points,
    /// `pending` (spendable from `available_on`) or `available`.
    pub status: String,
    pub available_on: Option<NaiveDate>,
    /// The last day the points may be spent; null when they do not expire on a date of their own.
    pub expires_on: Option<NaiveDate>,
}

/// `GET /v1/members/{id}/points`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"available": 120, "pending": 40,
    "lots": [{"points": 40, "status": "pending", "available_on": "2027-03-15", "expires_on": "2028-03-31"},
             {"points": 30, "status": "available", "available_on": null, "expires_on": "2027-11-30"},
             {"points": 90, "status": "available", "available_on": null, "expires_on": "2028-02-29"}],
    "expiring": [{"points": 30, "on": "2027-11-30"}, {"points": 90, "on": "2028-02-29"}]}))]
pub struct PointsSchedule {
    pub available: Points,
    pub pending: Points,
    /// Pending lots by the day they become spendable, then spendable lots soonest-expiring first.
    pub lots: Vec<ScheduleLot>,
    /// Every coming expiry, soonest first.
    pub expiring: Vec<Expiring>,
}

/// What one run of the `points` job did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"examined": 412, "made_available": 18650, "expired_points": 2300, "notified": 57, "failed": 0}))]
pub struct PointsRun {
    /// Members the index listed as due (a member already handled counts, and is left alone).
    pub examined: u64,
    /// Pending points that became available (ledger `points_available` lines written).
    pub made_available: i64,
    /// Points that expired (ledger `points_expired` lines written).
    pub expired_points: i64,
    /// `points.expiring_soon` events sent.
    pub notified: u64,
    /// Members the run could not handle (logged with the reason); the next run retries them.
    pub failed: u64,
}

/// What the job did for one member.
#[derive(Debug, Default)]
pub(crate) struct Handled {
    made_available: i64,
    expired: i64,
    notified: bool,
}

impl JobReport for PointsRun {
    const JOB: &'static str = "points";
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("examined", self.examined),
            ("notified", self.notified),
            ("failed", self.failed),
        ]
    }
}

impl MemberTally for PointsRun {
    type Outcome = Handled;
    fn add(&mut self, h: Handled) {
        self.made_available += h.made_available;
        self.expired_points += h.expired;
        self.notified += u64::from(h.notified);
    }
    fn examined(&mut self) -> &mut u64 {
        &mut self.examined
    }
    fn failed(&mut self) -> &mut u64 {
        &mut self.failed
    }
}

impl Balances {
    /// The daily job: every member due by `now`'s date gets the lines and events of their points
    /// made available and expired, and the expiring-soon notice due, in one commit under the
    /// member's version, so a second or concurrent run finds nothing left to do.
    #[tracing::instrument(skip_all)]
    pub async fn points_job(&self, now: DateTime<Utc>) -> Result<PointsRun, ServiceError> {
        let today = self.ctx.program_date(now);
        let mut run = PointsRun::default();
        let tomorrow = today.succ_opt().unwrap_or(NaiveDate::MAX);
        let outcomes = self
            .ctx
            .for_members_by_month(
                today,
                |month| MemberIndex::PointsDue {
                    month,
                    before: tomorrow,
                },
                |id| async move { retrying!(self.ctx, self.try_points(&id, today, now)) },
            )
            .await?;
        jobs::tally(&mut run, outcomes);
        Ok(jobs::finish(run))
    }

    async fn try_points(
        &self,
        id: &MemberId,
        today: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Handled, ServiceError> {
        let current = match self.ctx.load_member(id).await {
            Ok(m) => m,
            // The index is eventually consistent; an erased member has nothing due.
            Err(ServiceError::NotFound(_) | ServiceError::MemberErased) => {
                return Ok(Handled::default());
            }
            Err(e) => return Err(e),
        };
        // Handled already (by another run, or a write that moved the day on).
        if current.value.points_due.is_none_or(|d| d > today) {
            return Ok(Handled::default());
        }
        let mut w = MemberWrite::on(&self.ctx, &current, now);
        let MemberWrite { m, journal, .. } = &mut w;
        let (made_available, expired) = self.ctx.settle(m, journal, now);
        let lots = m.lots();
        let next = lots::next_expiry(
            &lots,
            self.ctx.program.points.expiry,
            self.ctx.program_date(m.last_activity_at),
        );
        let notice = lots::notice_due(next, m.notified, today);
        if let (Some(n), Some(lot)) = (notice, next) {
            journal.note(EventData::PointsExpiringSoon(ExpiringSoon {
                expiring_points: lot.points,
                expires_on: n.expires_on,
                days_ahead: n.days_ahead,
                balance: m.balance,
            }));
            m.notified = Some(n);
        }
        w.commit(&self.ctx).await?;
        Ok(Handled {
            made_available,
            expired,
            notified: notice.is_some(),
        })
    }

    /// The member's points schedule as of now.
    #[tracing::instrument(skip_all, fields(member = %id))]
    pub async fn points_schedule(&self, id: &MemberId) -> Result<PointsSchedule, ServiceError> {
        let m = self.ctx.load_member(id).await?.value;
        let now = self.ctx.now();
        let lots = self.ctx.settled_lots(&m, now);
        let expiry = self.ctx.program.points.expiry;
        let mut out: Vec<ScheduleLot> = lots
            .pending
            .iter()
            .map(|(on, p)| ScheduleLot {
                points: Points(*p),
                status: "pending".into(),
                available_on: Some(*on),
                expires_on: expiry.lot_expiry(*on),
            })
            .collect();
        out.extend(lots.available.iter().map(|l| ScheduleLot {
            points: Points(l.points),
            status: "available".into(),
            available_on: None,
            expires_on: l.expires_on,
        }));
        Ok(PointsSchedule {
            available: Points(lots.spendable()),
            pending: Points(lots.pending_total()),
            lots: out,
            expiring: self.ctx.expiring(&m, &lots, now, 366 * 20),
        })
    }
}

impl Ctx {
    /// Sets the day the points job is next due for the member (none while nothing is pending,
    /// dated or announced).
    pub(crate) fn schedule(&self, m: &mut Member) {
        m.points_due = lots::next_due(
            &m.lots(),
            self.program.points.expiry,
            self.program_date(m.last_activity_at),
            m.notified,
        );
    }

    /// The member's lots as of `now`, settled on a copy (reads write nothing).
    pub fn settled_lots(&self, m: &Member, now: DateTime<Utc>) -> Lots {
        let mut lots = m.lots();
        lots.settle(
            self.program_date(now),
            self.program.points.expiry,
            self.program_date(m.last_activity_at),
        );
        lots
    }

    /// The dated expiries within `horizon_days` of `now`, soonest first: each dated lot, or under
    /// the inactivity policy everything on the day inactivity would end.
    pub fn expiring(
        &self,
        m: &Member,
        lots: &Lots,
        now: DateTime<Utc>,
        horizon_days: i64,
    ) -> Vec<Expiring> {
        let today = self.program_date(now);
        let until = today + chrono::Duration::days(horizon_days);
        match self.program.points.expiry {
            Expiry::Inactivity { days } => {
                let on =
                    self.program_date(m.last_activity_at) + chrono::Duration::days(i64::from(days));
                (lots.available_total() > 0 && on <= until)
                    .then(|| Expiring {
                        points: Points(lots.available_total()),
                        on,
                    })
                    .into_iter()
                    .collect()
            }
            _ => lots
                .available
                .iter()
                .filter_map(|l| {
                    l.expires_on.filter(|e| *e <= until).map(|on| Expiring {
                        points: Points(l.points),
                        on,
                    })
                })
                .collect(),
        }
    }

    /// Brings the member's lots to today: pending points due become spendable (a 0-point
    /// `points_available` line: the ledger counted them when earned; its event moves them into
    /// the balance), lots past their last day expire (a `points_expired` line). Returns the
    /// points made available and expired.
    pub(crate) fn settle(
        &self,
        m: &mut Member,
        journal: &mut Journal,
        now: DateTime<Utc>,
    ) -> (i64, i64) {
        let mut lots = m.lots();
        let today = self.program_date(now);
        let last_active = self.program_date(m.last_activity_at);
        let s = lots.settle(today, self.program.points.expiry, last_active);
        m.set_lots(lots);
        let available: i64 = s.made_available.iter().map(|(_, p)| p).sum();
        let expired: i64 = s.expired.iter().map(|l| l.points).sum();
        m.lifetime_expired = Points(m.lifetime_expired.0 + expired);
        // The balance each line reports: before the expiry, it held what just became available.
        if available > 0 {
            let days = s.made_available.iter().map(|(d, _)| *d).collect();
            journal.line(
                LedgerEntry::new(
                    LedgerKind::PointsAvailable,
                    Points::ZERO,
                    Points(m.balance.0 + expired),
                    None,
                    Some(format!("{available} pending points became available")),
                    now,
                ),
                // The line moves none (counted when earned); the event moves them into the balance.
                |moved, line| {
                    EventData::PointsAvailable(Available {
                        moved: Moved {
                            points: Points(available),
                            ..moved
                        },
                        line,
                        days,
                    })
                },
            );
        }
        if expired > 0 {
            let lots = s.expired;
            journal.line(
                LedgerEntry::new(
                    LedgerKind::PointsExpired,
                    Points(-expired),
                    m.balance,
                    None,
                    None,
                    now,
                ),
                |moved, line| EventData::PointsExpired(Expired { moved, line, lots }),
            );
        }
        (available, expired)
    }

    /// Points spendable at once (gifts, campaign awards, positive adjustments).
    pub(crate) fn credit(&self, m: &mut Member, points: Points, now: DateTime<Utc>) {
        let mut lots = m.lots();
        lots.grant(points.0, self.program_date(now), self.program.points.expiry);
        m.set_lots(lots);
    }

    /// A purchase's points: pending for `pending_days`, then spendable.
    pub(crate) fn earn_lot(
        &self,
        m: &mut Member,
        points: Points,
        occurred_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Origin {
        let mut lots = m.lots();
        let origin = lots.earn(
            points.0,
            self.program_date(occurred_at),
            self.program.points.pending_days,
            self.program_date(now),
            self.program.points.expiry,
        );
        m.set_lots(lots);
        origin
    }

    /// Takes points back (refunds, negative adjustments): from `origin` first, then soonest-
    /// expiring first; beyond the spendable points the balance goes below zero.
    pub(crate) fn debit(&self, m: &mut Member, points: Points, origin: Option<Origin>) -> Taken {
        let mut lots = m.lots();
        let taken = lots.take_back(points.0, origin);
        m.set_lots(lots);
        taken
    }

    /// Spends points soonest-expiring first; the caller has checked the balance covers them.
    pub(crate) fn spend(&self, m: &mut Member, points: Points) -> Result<Vec<Lot>, ServiceError> {
        let mut lots = m.lots();
        let taken = lots
            .spend(points.0)
            .map_err(|s| ServiceError::InsufficientPoints {
                balance: s.spendable,
                cost: points.0,
            })?;
        m.set_lots(lots);
        Ok(taken)
    }

    /// Returns a cancelled redemption's points to their lots (redemptions made before lots came
    /// back as spendable at once).
    pub(crate) fn restore(
        &self,
        m: &mut Member,
        lots_taken: &[Lot],
        points: Points,
        now: DateTime<Utc>,
    ) {
        if lots_taken.is_empty() {
            return self.credit(m, points, now);
        }
        let mut lots = m.lots();
        lots.restore(lots_taken, self.program_date(now));
        m.set_lots(lots);
    }
}
