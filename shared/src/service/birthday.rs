//! Birthday gifts, exactly once per member and year: the `GIFT#<yyyy>` item is written
//! (absence-conditioned) in the same commit as the points, so concurrent or repeated runs cannot
//! give twice. The job reads only GSI1 partitions of the dates in play (`BIRTHDAY#<MM-DD>`), so
//! its cost follows the day's birthdays, never the number of members.

use super::error::ServiceError;
use super::events::Journal;
use super::jobs::{self, JobReport, MemberTally};
use super::redemption::{Issue, issue_voucher};
use super::unit::MemberWrite;
use crate::domain::MemberId;
use crate::domain::birthday::{GiftDue, gift_due, month_days_celebrated_on};
use crate::domain::event::{EventData, Gifted};
use crate::domain::ledger::LedgerEntry;
use crate::domain::ledger::LedgerKind;
use crate::domain::member::Member;
use crate::retrying;
use crate::service::Ctx;
use crate::service::Redemptions;
use crate::table::{Batch, Gift, MemberIndex, Reads, RewardCount};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The birthday job: a gift of points or a voucher (from the rewards' stock) once a year.
#[derive(Clone)]
pub struct Birthdays {
    pub(crate) ctx: Ctx,
    pub(crate) redemptions: Redemptions,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GiftRun {
    pub examined: u64,
    pub issued: u64,
    pub already_issued: u64,
    pub ineligible: u64,
    /// Members the run could not gift (logged with the reason); the next run catches them up.
    pub failed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiftOutcome {
    Issued,
    AlreadyIssued,
    Ineligible,
}

/// The `MM-DD` partitions whose members may be due a gift at `now`: every member's local date is
/// within a day of the UTC date, and the catch-up window reaches `catch_up_days` further back.
pub fn partitions_in_play(now: DateTime<Utc>, catch_up_days: u32) -> Vec<String> {
    let utc = now.date_naive();
    let mut out: Vec<String> = Vec::new();
    let first = utc - chrono::Duration::days(1 + i64::from(catch_up_days));
    let mut d = first;
    while d <= utc + chrono::Duration::days(1) {
        for p in month_days_celebrated_on(d) {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        d = d.succ_opt().unwrap_or(d);
        if d == NaiveDate::MAX {
            break;
        }
    }
    out
}

impl JobReport for GiftRun {
    const JOB: &'static str = "birthday";
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("examined", self.examined),
            ("issued", self.issued),
            ("failed", self.failed),
        ]
    }
}

impl MemberTally for GiftRun {
    type Outcome = GiftOutcome;
    fn add(&mut self, o: GiftOutcome) {
        match o {
            GiftOutcome::Issued => self.issued += 1,
            GiftOutcome::AlreadyIssued => self.already_issued += 1,
            GiftOutcome::Ineligible => self.ineligible += 1,
        }
    }
    fn examined(&mut self) -> &mut u64 {
        &mut self.examined
    }
    fn failed(&mut self) -> &mut u64 {
        &mut self.failed
    }
}

impl Birthdays {
    /// The hourly job, as of `now`.
    #[tracing::instrument(skip_all)]
    pub async fn birthday_gifts(&self, now: DateTime<Utc>) -> Result<GiftRun, ServiceError> {
        let mut run = GiftRun::default();
        let reward = self.ctx.program.birthday.reward_id.clone();
        for md in partitions_in_play(now, self.ctx.program.birthday.catch_up_days) {
            let reward = &reward;
            let outcomes = self
                .ctx
                .for_members_in(&MemberIndex::Birthday(md), |id| async move {
                    retrying!(self.ctx, self.try_gift(&id, now, reward.as_ref()))
                })
                .await?;
            jobs::tally(&mut run, outcomes);
        }
        Ok(jobs::finish(run))
    }

    /// Read the member and the gifts of the candidate years (one round trip; the reward and
    /// the member's count of it in a second, only when a gift is due with a voucher), decide,
    /// write one batch.
    #[tracing::instrument(skip_all, fields(member = %id))]
    async fn try_gift(
        &self,
        id: &MemberId,
        now: DateTime<Utc>,
        reward_id: Option<&crate::domain::RewardId>,
    ) -> Result<GiftOutcome, ServiceError> {
        let y = now.year();
        // The gift year is the member's local year or the one before: read all candidates with the
        // member in one round trip.
        let years = [y - 2, y - 1, y, y + 1];
        let mut reads = Reads::new();
        let member = reads.add::<Member>(id);
        let gifts = years.map(|yy| reads.add::<Gift>(&(id.clone(), yy)));
        let found = self.ctx.table.read(&reads).await?;
        let current = match found.get(&member)? {
            Some(m) if m.value.erased_at.is_none() => m,
            _ => return Ok(GiftOutcome::Ineligible),
        };
        let (year, on) = match self.gift_due_to(&current.value, now) {
            Some(due) => due,
            None => return Ok(GiftOutcome::Ineligible),
        };
        let already = years
            .iter()
            .position(|yy| *yy == year)
            .is_some_and(|i| found.exists(&gifts[i]));
        if already {
            return Ok(GiftOutcome::AlreadyIssued);
        }
        let mut w = MemberWrite::settled(&self.ctx, &current, now);
        let points = self.ctx.program.tiers.rule(w.m.tier).birthday_points;
        self.ctx.credit(&mut w.m, points, now);
        w.m.lifetime_earned = w.m.lifetime_earned.checked_add(points)?;
        w.m.last_activity_at = now;
        let voucher_code = match reward_id {
            Some(rid) => {
                self.birthday_voucher(&mut w.m, rid, &mut w.journal, &mut w.batch, now)
                    .await?
            }
            None => None,
        };
        let gift = Gift {
            year,
            celebrated_on: on,
            tier: w.m.tier,
            points,
            voucher_code,
            given_at: now,
        };
        gift_line(&mut w.journal, &w.m, &gift);
        w.batch.create(&(id.clone(), year), &gift)?;
        w.commit(&self.ctx).await?;
        Ok(GiftOutcome::Issued)
    }

    /// The gift year and the day it is celebrated on, when a gift is due to `m` as of `now`.
    fn gift_due_to(&self, m: &Member, now: DateTime<Utc>) -> Option<(i32, NaiveDate)> {
        let (Some(birthday), Some(set_on)) = (m.birthday, m.birthday_set_on) else {
            return None;
        };
        let rules = &self.ctx.program.birthday;
        match gift_due(
            birthday,
            set_on,
            self.ctx.member_date(m, now),
            rules.catch_up_days,
            rules.min_days_on_file,
        ) {
            GiftDue::Due { year, on } => Some((year, on)),
            GiftDue::NotInWindow | GiftDue::TooRecentlySet => None,
        }
    }

    /// The birthday reward's voucher, free, into `batch`; its code. Out of stock, inactive or
    /// missing: logged, and the gift's points are still the member's.
    async fn birthday_voucher(
        &self,
        m: &mut Member,
        rid: &crate::domain::RewardId,
        journal: &mut Journal,
        batch: &mut Batch,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, ServiceError> {
        let mut reads = Reads::new();
        let shard = Redemptions::stock_read(&mut reads, rid, &m.id);
        let count = reads.add::<RewardCount>(&(m.id.clone(), rid.clone()));
        let more = self.ctx.table.read(&reads).await?;
        let count = more.get(&count)?;
        let stock = match self.redemptions.stock(shard, &more, rid).await {
            Err(ServiceError::NotFound(_)) => {
                tracing::warn!(reward = %rid, "configured birthday reward does not exist");
                return Ok(None);
            }
            other => other?,
        };
        let issue = Issue {
            stock: &stock,
            count: count.as_ref(),
            charge: false,
            source: "birthday_gift",
        };
        match issue_voucher(&self.ctx, m, journal, issue, now) {
            Ok((r, b)) => {
                batch.append(b);
                Ok(Some(r.voucher_code))
            }
            Err(e) if !e.is_retryable() => {
                tracing::warn!(member = %m.id, error = %e, "birthday voucher not issued");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// The gift's `points.gifted` line (its points already credited to `m`).
fn gift_line(journal: &mut Journal, m: &Member, gift: &Gift) {
    let note = match &gift.voucher_code {
        Some(c) => format!("happy birthday {} (voucher {c})", gift.year),
        None => format!("happy birthday {}", gift.year),
    };
    let now = journal.now();
    journal.line(
        LedgerEntry::new(
            LedgerKind::BirthdayGift,
            gift.points,
            m.balance,
            Some(format!("gift:{}", gift.year)),
            Some(note),
            now,
        ),
        |moved, line| {
            EventData::PointsGifted(Gifted {
                moved,
                line,
                year: gift.year,
                tier: gift.tier,
                voucher_code: gift.voucher_code.clone(),
            })
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_in_play_table() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            partitions_in_play(at("2026-11-22T12:00:00Z"), 3),
            vec!["11-18", "11-19", "11-20", "11-21", "11-22", "11-23"]
        );
        assert_eq!(
            partitions_in_play(at("2026-11-22T12:00:00Z"), 0),
            vec!["11-21", "11-22", "11-23"]
        );
        // 28 February 2027 (common year) brings 29 February birthdays into play.
        assert!(partitions_in_play(at("2027-02-28T12:00:00Z"), 0).contains(&"02-29".to_owned()));
        assert_eq!(
            partitions_in_play(at("2027-01-01T00:00:00Z"), 0),
            vec!["12-31", "01-01", "01-02"]
        );
    }
}
