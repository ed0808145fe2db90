//! Birthday gifts, exactly once per member and year: the `GIFT#<yyyy>` item is written
//! (absence-conditioned) in the same commit as the points, so concurrent or repeated runs cannot
//! give twice. The job reads only GSI1 partitions of the dates in play (`BIRTHDAY#<MM-DD>`), so
//! its cost follows the day's birthdays, never the number of members.

use super::Services;
use super::error::ServiceError;
use super::events::Journal;
use super::jobs::{self, JobReport, MemberTally};
use super::members::LedgerEntry;
use super::redemption::{Issue, issue_voucher};
use crate::domain::MemberId;
use crate::domain::birthday::{GiftDue, gift_due, month_days_celebrated_on};
use crate::domain::event::{EventData, Gifted};
use crate::domain::member::{LedgerKind, Member};
use crate::domain::reward::Reward;
use crate::retrying;
use crate::table::{Batch, Gift, MemberIndex, Reads, RewardCount};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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

impl Services {
    /// The hourly job, as of `now`.
    pub async fn birthday_gifts(&self, now: DateTime<Utc>) -> Result<GiftRun, ServiceError> {
        let mut run = GiftRun::default();
        let reward = self.program.birthday.reward_id.clone();
        for md in partitions_in_play(now, self.program.birthday.catch_up_days) {
            let reward = &reward;
            let outcomes = self
                .for_members_in(&MemberIndex::Birthday(md), |id| async move {
                    retrying!(self, self.try_gift(&id, now, reward.as_ref()))
                })
                .await?;
            jobs::tally(&mut run, outcomes);
        }
        Ok(jobs::finish(run))
    }

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
        let found = self.table.read(&reads).await?;
        let current = match found.get(&member)? {
            Some(m) if m.value.erased_at.is_none() => m,
            _ => return Ok(GiftOutcome::Ineligible),
        };
        let mut m = current.value;
        let (Some(birthday), Some(set_on)) = (m.birthday, m.birthday_set_on) else {
            return Ok(GiftOutcome::Ineligible);
        };
        let rules = &self.program.birthday;
        let local_today = self.member_date(&m, now);
        let (year, on) = match gift_due(
            birthday,
            set_on,
            local_today,
            rules.catch_up_days,
            rules.min_days_on_file,
        ) {
            GiftDue::Due { year, on } => (year, on),
            GiftDue::NotInWindow | GiftDue::TooRecentlySet => return Ok(GiftOutcome::Ineligible),
        };
        let already = years
            .iter()
            .position(|yy| *yy == year)
            .is_some_and(|i| found.exists(&gifts[i]));
        if already {
            return Ok(GiftOutcome::AlreadyIssued);
        }

        let points = self.program.tiers.rule(m.tier).birthday_points;
        let mut journal = Journal::new(self, &m, now);
        self.settle(&mut m, &mut journal, now);
        self.credit(&mut m, points, now);
        m.lifetime_earned = m.lifetime_earned.checked_add(points)?;
        m.last_activity_at = now;
        let mut batch = Batch::new();
        let mut voucher_code = None;
        if let Some(rid) = reward_id {
            let mut reads = Reads::new();
            let reward = reads.add::<Reward>(rid);
            let count = reads.add::<RewardCount>(&(id.clone(), rid.clone()));
            let more = self.table.read(&reads).await?;
            let count = more.get(&count)?;
            match more.get(&reward)? {
                Some(reward) => match issue_voucher(
                    self,
                    &mut m,
                    &mut journal,
                    Issue {
                        reward: &reward,
                        count: count.as_ref(),
                        charge: false,
                        source: "birthday_gift",
                    },
                    now,
                ) {
                    Ok((r, b)) => {
                        voucher_code = Some(r.voucher_code);
                        batch.append(b);
                    }
                    // Out of stock or inactive: the points are still the member's.
                    Err(e) if !e.is_retryable() => {
                        tracing::warn!(member = %id, error = %e, "birthday voucher not issued")
                    }
                    Err(e) => return Err(e),
                },
                None => tracing::warn!(reward = %rid, "configured birthday reward does not exist"),
            }
        }
        let note = match &voucher_code {
            Some(c) => format!("happy birthday {year} (voucher {c})"),
            None => format!("happy birthday {year}"),
        };
        let tier = m.tier;
        journal.line(
            LedgerEntry::new(
                LedgerKind::BirthdayGift,
                points,
                m.balance,
                Some(format!("gift:{year}")),
                Some(note),
                now,
            ),
            |moved, line| {
                EventData::PointsGifted(Gifted {
                    moved,
                    line,
                    year,
                    tier,
                    voucher_code: voucher_code.clone(),
                })
            },
        );
        let gift = Gift {
            year,
            celebrated_on: on,
            tier: m.tier,
            points,
            voucher_code,
            given_at: now,
        };
        batch.create(&(id.clone(), year), &gift)?;
        journal.close(self, &mut m, &mut batch)?;
        batch.save(id, &m, Some(current.version))?;
        self.table.commit(batch).await?;
        Ok(GiftOutcome::Issued)
    }
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
