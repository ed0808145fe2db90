//! Segments at write time and the nightly `segments` job (DESIGN.md "Segments").
//!
//! Writes that change what a member bought (enrolment, purchase, refund, erasure) re-evaluate
//! the member in their own commit ([`Segmentation::resegment`]). The job applies what only time
//! changes. It runs as parts, each over some of the 16 member shards; every member it moves
//! into or out of a segment is written together with a flow record of that move, so a part that
//! is re-run counts nothing twice and loses nothing. The finishing step adds up the parts and
//! the flows into the day's row (sizes, entered, left, overview totals, retention cohorts) and
//! the quintile cut points that writes and the next run use.

use super::error::ServiceError;
use super::events::Journal;
use super::unit::MemberWrite;
use crate::domain::event::{EventData, SegmentChanged, Stage};
use crate::domain::member::Member;
use crate::domain::predict::sample::Sampler;
use crate::domain::predict::score::Model;
use crate::domain::segment::{CutPoints, Moves, SegmentId, Segments, Standing, days_between};
pub use crate::domain::segment::{
    RunId, SegmentDay, SegmentFlow, SegmentPart, SegmentState, Tally, Totals,
};
use crate::domain::spend::month_index;
use crate::domain::{MemberId, Money, Points, Tier};
use crate::retrying;
use crate::service::Ctx;
use crate::service::Referrals;
use crate::service::custom_segments::{EvaluationTally, Evaluator};
use crate::table::{Batch, MEMBER_SHARDS, MemberIndex, Replica, Versioned};
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The nightly segments run, the daily series and the segment, overview and retention reads; the run
/// gives members their referral codes.
#[derive(Clone)]
pub struct Segmentation {
    pub(crate) ctx: Ctx,
    pub(crate) referrals: Referrals,
    pub(crate) custom: super::CustomSegments,
}

/// How many months of enrolment cohorts the retention report keeps.
pub const COHORT_MONTHS: i32 = crate::domain::bounds::RETENTION_MONTHS.max as i32;
/// Members handled at once within a part.
const JOB_CONCURRENCY: usize = 16;
/// Part and flow records of a run expire after this many days.
const RUN_RETENTION_DAYS: i64 = 7;

/// What one part did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PartRun {
    pub run: String,
    pub part: u32,
    pub parts: u32,
    pub examined: u64,
    pub changed: u64,
    pub failed: u64,
}

impl super::jobs::JobReport for PartRun {
    const JOB: &'static str = "segments";
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("examined", self.examined),
            ("changed", self.changed),
            ("failed", self.failed),
        ]
    }
}

/// What a whole run did (`POST /_local/jobs/segments`, the state machine's last step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"run": "0193…", "parts": 1, "examined": 1200, "changed": 37, "failed": 0,
    "cutpoints": {"r": [180, 90, 60, 30], "f": [2, 3, 5, 8], "m": [5000, 10000, 25000, 50000]}}))]
pub struct SegmentRun {
    pub run: String,
    pub parts: u32,
    /// Members read.
    pub examined: u64,
    /// Members written (their segments or what the last run counted changed).
    pub changed: u64,
    /// Members that could not be handled (logged); the next run retries them.
    pub failed: u64,
    /// The cut points in force from now on.
    pub cutpoints: CutPoints,
    /// Members the prediction models were fitted to (0: no fit this run; the models in force
    /// stay).
    #[serde(default)]
    pub members_in_fit: u64,
}

/// What a build run did (`POST /_local/jobs/segments` with `"build": true`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BuildRun {
    pub run: String,
    pub parts: u32,
    /// Members evaluated (none when no definition was building).
    pub examined: u64,
    /// Members whose listings changed.
    pub changed: u64,
    pub failed: u64,
    /// Definitions listed by this run.
    pub listed: u32,
}

/// `GET /v1/segments` items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "lifecycle:dormant", "kind": "lifecycle", "size": 42,
    "as_of": "2027-03-01T02:00:00Z"}))]
pub struct SegmentView {
    pub id: String,
    /// `lifecycle`, `value`, `tier`, `churn` or `custom`.
    pub kind: String,
    pub size: u64,
    /// Built-in segments: now (their sizes move with every write). Custom segments: when the
    /// evaluation their listing is of started (before the first, when they were last changed,
    /// with size 0 and status `building`).
    pub as_of: DateTime<Utc>,
    /// Custom segments only: the name operators gave it.
    #[serde(default)]
    pub name: Option<String>,
    /// Custom segments only.
    #[serde(default)]
    pub status: Option<super::custom_segments::BuildStatus>,
}

/// A member in a segment listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "member-ada", "tier": "gold", "lifecycle": "dormant",
    "value": "at_risk", "last_purchase_at": "2026-11-20T10:00:00Z",
    "qualifying_spend": {"value": 125000, "currency": "USD"}}))]
pub struct SegmentMember {
    pub id: MemberId,
    pub tier: Tier,
    pub lifecycle: Option<crate::domain::segment::Lifecycle>,
    pub value: Option<crate::domain::segment::ValueSegment>,
    pub last_purchase_at: Option<DateTime<Utc>>,
    pub qualifying_spend: Money,
}

/// A page of a segment's members, by member id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SegmentMembers {
    pub items: Vec<SegmentMember>,
    pub next_cursor: Option<String>,
    /// A custom segment's listing: when the evaluation it is of started (built-in segments
    /// move with every write: null).
    #[serde(default)]
    pub evaluated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"date": "2027-03-01", "size": 42, "entered": 5, "left": 2}))]
pub struct HistoryRow {
    pub date: NaiveDate,
    pub size: u64,
    pub entered: u64,
    pub left: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct History {
    pub items: Vec<HistoryRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"as_of": "2027-03-01T02:00:00Z", "members": 1200, "active_members": 800,
    "points_outstanding_value": {"value": 154000, "currency": "USD"}, "points_outstanding": 154000, "points_pending": 0, "points_earned_30d": 41000,
    "points_redeemed_30d": 12000, "points_expired_30d": 0, "repeat_purchase_rate_90d": 0.42,
    "tiers": {"silver": 1000, "gold": 180, "diamond": 20},
    "lifecycle": {"prospect": 100, "new": 50, "active": 700, "dormant": 200, "churned": 100, "reactivated": 50}}))]
pub struct Overview {
    pub as_of: DateTime<Utc>,
    pub members: u64,
    pub active_members: u64,
    pub points_outstanding: Points,
    /// `points_outstanding` at the program's `point_value_per_100`, rounded half away from zero.
    pub points_outstanding_value: Money,
    /// Points not yet spendable (0 until points lots are on).
    pub points_pending: Points,
    /// Net of refunds, since the run 30 days before `as_of` (or since the first run).
    pub points_earned_30d: Points,
    pub points_redeemed_30d: Points,
    pub points_expired_30d: Points,
    /// Of the members with a purchase in the last 90 days, the share with two or more.
    pub repeat_purchase_rate_90d: f64,
    pub tiers: BTreeMap<String, u64>,
    pub lifecycle: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"month": "2026-01", "members": 120, "retained": [80, 41, 38]}))]
pub struct Cohort {
    pub month: String,
    pub members: u64,
    /// `retained[k]`: members of the cohort with a purchase in the k-th month after the month
    /// they enrolled in (k = 0 is that month), up to the current month.
    pub retained: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"as_of": "2027-05-01T02:00:00Z", "cohorts": [
    {"month": "2027-03", "members": 120, "retained": [80, 41, 38]},
    {"month": "2027-04", "members": 95, "retained": [60, 30]},
    {"month": "2027-05", "members": 12, "retained": [9]}]}))]
pub struct Retention {
    pub as_of: DateTime<Utc>,
    pub cohorts: Vec<Cohort>,
}

pub(crate) fn month_name(idx: i32) -> String {
    format!("{:04}-{:02}", idx.div_euclid(12), idx.rem_euclid(12) + 1)
}

/// What one member's handling in a run gave.
struct Handled {
    after: Member,
    written: bool,
}

impl Segmentation {
    /// The cut points and the prediction model in force (`state` read in the caller's
    /// batch), else the fixed cut points and no model.
    pub(crate) fn standing(&self, state: Option<Versioned<SegmentState>>) -> Standing {
        let p = &self.ctx.program;
        let state = state.map(|s| s.value);
        Standing {
            cuts: state.as_ref().map_or(p.segments.rfm.fixed, |s| s.cutpoints),
            model: state.and_then(|s| s.fitted).map(|f| {
                let r = &p.predictions;
                Model::of(&f, r.horizon_days, r.churn, p.currency.minor_units())
            }),
        }
    }

    /// Standing with the fixed cut points and no model (a member with no purchase yet).
    pub(crate) fn fixed_standing(&self) -> Standing {
        Standing {
            cuts: self.ctx.program.segments.rfm.fixed,
            model: None,
        }
    }

    /// Re-evaluates `m`'s segments as of `now` and, when its stage or value segment moved, notes
    /// `segment.changed`. Call right after opening the journal, so the event rides on the
    /// commit's first line. Returns whether anything about the segments changed.
    pub(crate) fn resegment(
        &self,
        m: &mut Member,
        standing: &Standing,
        now: DateTime<Utc>,
        journal: &mut Journal,
    ) -> bool {
        let new = m.segments_at(
            &self.ctx.program.segments,
            standing,
            now,
            self.ctx.program_date(now),
            self.ctx.program.qualifying_window_months,
        );
        self.set_segments(m, new, journal)
    }

    /// Stores `new` on the member, noting `segment.changed` if the stage or value moved.
    pub(crate) fn set_segments(
        &self,
        m: &mut Member,
        new: Option<Segments>,
        journal: &mut Journal,
    ) -> bool {
        let old = m.segments;
        if old == new {
            return false;
        }
        let key = |s: Option<Segments>| s.map(|s| (s.lifecycle, s.value));
        if key(old) != key(new) {
            journal.note(EventData::SegmentChanged(SegmentChanged {
                from: Stage::of(old),
                to: Stage::of(new),
                rfm: new.and_then(|s| s.rfm),
            }));
        }
        m.segments = new;
        true
    }

    /// A whole run, locally: every part (concurrently), then the finishing step.
    #[tracing::instrument(skip_all)]
    pub async fn segments_job(
        &self,
        now: DateTime<Utc>,
        parts: u32,
    ) -> Result<SegmentRun, ServiceError> {
        let run = RunId::new_random();
        let results = futures::future::join_all(
            (0..parts).map(|part| self.segments_part(&run, part, parts, now)),
        )
        .await;
        for r in results {
            r?;
        }
        self.segments_finish(&run, parts, now).await
    }

    /// One part of run `run`: the members of the shards `s` with `s % parts == part`.
    #[tracing::instrument(skip_all, fields(%run))]
    pub async fn segments_part(
        &self,
        run: &RunId,
        part: u32,
        parts: u32,
        now: DateTime<Utc>,
    ) -> Result<PartRun, ServiceError> {
        check_parts(part, parts)?;
        let state = self.ctx.table.get::<SegmentState>(&Replica::FIRST).await?;
        let below = state.as_ref().and_then(|s| s.value.sample_below);
        let standing = self.standing(state);
        let mut tally = Tally::default();
        let size = self.ctx.program.predictions.sample_size as usize;
        let mut sampler = Sampler::new(size, below);
        let expires_at = (now + chrono::Duration::days(RUN_RETENTION_DAYS)).timestamp();
        let custom = self.custom.evaluator().await?;
        let mut evaluated = EvaluationTally::default();
        for shard in (part..MEMBER_SHARDS).step_by(parts as usize) {
            let at = (run, now, expires_at);
            let into = (&mut tally, &mut sampler, &mut evaluated);
            self.segment_shard(shard, (&standing, &custom), at, into)
                .await?;
        }
        self.custom
            .part_done(run, (part, parts), &custom, evaluated, now)
            .await?;
        let out = PartRun {
            run: run.to_string(),
            part,
            parts,
            examined: tally.examined,
            changed: tally.changed,
            failed: tally.failed,
        };
        let mut batch = Batch::new();
        let sample_chunks = self.save_sample(run, part, sampler, expires_at, &mut batch)?;
        batch.put(
            &(run.clone(), part),
            &SegmentPart {
                part,
                parts,
                sample_chunks,
                now,
                tally,
                expires_at,
            },
        )?;
        self.ctx.table.commit(batch).await?;
        Ok(super::jobs::finish(out))
    }

    /// The members of one shard, a page at a time and a few at once, into the part's tally.
    async fn segment_shard(
        &self,
        shard: u32,
        (standing, custom): (&Standing, &Evaluator),
        (run, now, expires_at): (&RunId, DateTime<Utc>, i64),
        (tally, sampler, evaluated): (&mut Tally, &mut Sampler, &mut EvaluationTally),
    ) -> Result<(), ServiceError> {
        let which = MemberIndex::Shard(shard);
        let mut position = None;
        loop {
            let page = self.ctx.table.member_keys_in(&which, position).await?;
            let members = self.ctx.table.members_at(&page.items).await?;
            let handled = futures::stream::iter(members.into_iter().map(|v| {
                let id = v.value.id.clone();
                let was = v.value.counted;
                async move {
                    let r = self.handle(v, standing, run, now, expires_at).await;
                    (id, was, r)
                }
            }))
            .buffer_unordered(JOB_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
            let mut after = Vec::with_capacity(handled.len());
            for (id, was, r) in handled {
                tally.examined += 1;
                match r {
                    Ok(h) => {
                        tally.changed += u64::from(h.written);
                        self.count(tally, &h.after, now);
                        let t = &mut tally.totals;
                        self.count_prediction(t, sampler, standing, &h.after, now);
                        after.push(h.after);
                    }
                    Err(e) => {
                        // Still counted where the last run left it, so the day's sizes
                        // and flows agree; the next run moves it.
                        tally.failed += 1;
                        for s in was.unwrap_or_default().ids() {
                            *tally.sizes.entry(s).or_default() += 1;
                        }
                        tracing::error!(member = %id, error = %e, "segments: member failed");
                    }
                }
            }
            // Each member as the run leaves it, against the custom segments' rules.
            let model = standing.model.as_ref();
            let e = self
                .custom
                .evaluate_members(after, custom, model, now)
                .await?;
            evaluated.add(e);
            match page.next {
                Some(n) => position = Some(n),
                None => break,
            }
        }
        Ok(())
    }

    /// One member of a part: the page's copy first, a fresh read after a lost race.
    async fn handle(
        &self,
        read: Versioned<Member>,
        standing: &Standing,
        run: &RunId,
        now: DateTime<Utc>,
        expires_at: i64,
    ) -> Result<Handled, ServiceError> {
        let id = read.value.id.clone();
        let mut first = Some(read);
        retrying!(
            self.ctx,
            self.try_handle(&id, first.take(), standing, run, now, expires_at)
        )
    }

    /// Reads the member (unless the page read it), moves it to the segments `now` gives, and
    /// writes it with the flow of that move, if anything changed.
    async fn try_handle(
        &self,
        id: &MemberId,
        first: Option<Versioned<Member>>,
        standing: &Standing,
        run: &RunId,
        now: DateTime<Utc>,
        expires_at: i64,
    ) -> Result<Handled, ServiceError> {
        let current = match first {
            Some(v) => v,
            None => self
                .ctx
                .table
                .get::<Member>(id)
                .await?
                .ok_or(ServiceError::NotFound("member"))?,
        };
        let mut w = MemberWrite::on(&self.ctx, &current, now);
        let recounted = self.recount_purchase_days(&mut w.m).await?;
        let moved = self.resegment(&mut w.m, standing, now, &mut w.journal);
        let counted = (w.m.erased_at.is_none()).then(|| w.m.membership());
        let recount = w.m.counted != counted;
        // Once per member enrolled before codes were made at enrolment: one read, and the
        // code in this same write.
        let coded = self
            .referrals
            .ensure_code(&mut w.m, now, &mut w.batch)
            .await?;
        // A member last written before segment sizes were kept is written once to count
        // them in (DESIGN.md "Segment sizes").
        if !moved && !recount && !coded && !recounted && w.m.sized {
            return Ok(Handled {
                after: w.m,
                written: false,
            });
        }
        if recount {
            w.batch.create(
                &(run.clone(), id.clone()),
                &SegmentFlow {
                    from: w.m.counted,
                    to: counted,
                    expires_at,
                },
            )?;
            w.m.counted = counted;
        }
        let saved = w.commit(&self.ctx).await?;
        Ok(Handled {
            after: saved.member,
            written: true,
        })
    }

    /// Adds one member, as it stands after the run, to the part's tally.
    fn count(&self, tally: &mut Tally, m: &Member, now: DateTime<Utc>) {
        let t = &mut tally.totals;
        t.lifetime_earned += m.lifetime_earned.0;
        t.lifetime_redeemed += m.lifetime_redeemed.0;
        t.lifetime_expired += m.lifetime_expired.0;
        for id in m.counted.unwrap_or_default().ids() {
            *tally.sizes.entry(id).or_default() += 1;
        }
        if m.erased_at.is_some() {
            return;
        }
        t.members += 1;
        t.points_outstanding += m.balance.0;
        t.points_pending += m.pending().0;
        if m.segments.is_some_and(|s| s.lifecycle.is_active()) {
            t.active_members += 1;
        }
        let recent = |at: Option<DateTime<Utc>>| at.is_some_and(|a| days_between(a, now) < 90);
        t.purchasers_90d += u64::from(recent(m.last_purchase_at));
        t.repeaters_90d += u64::from(recent(m.previous_purchase_at));
        let today = self.ctx.program_date(now);
        let window = self.ctx.program.qualifying_window_months;
        let a = m.activity(today, window);
        if let (Some(last), true) = (a.last_purchase_at, a.purchases_in_window > 0) {
            tally.distribution.add(
                days_between(last, now),
                a.purchases_in_window,
                a.spend_in_window,
            );
        }
        let this_month = month_index(today);
        let cohort = month_index(self.ctx.program_date(m.enrolled_at));
        if this_month - cohort < COHORT_MONTHS && cohort <= this_month {
            let row = tally.cohorts.entry(month_name(cohort)).or_default();
            let span = (this_month - cohort + 1) as usize;
            if row.len() < span + 1 {
                row.resize(span + 1, 0);
            }
            row[0] += 1;
            for k in 0..span {
                if m.purchases.in_month(cohort + k as i32) > 0 {
                    row[k + 1] += 1;
                }
            }
            let bought: i64 = (0..3).map(|k| m.purchases.in_month(cohort + k)).sum();
            let c = tally
                .referral_cohorts
                .entry(month_name(cohort))
                .or_default();
            if m.referral.is_some() {
                c.referred += 1;
                c.referred_repeat += u64::from(bought >= 2);
            } else {
                c.organic += 1;
                c.organic_repeat += u64::from(bought >= 2);
            }
        }
    }

    /// The tallies of every part of run `run`, merged (400 naming a part that has not finished).
    async fn parts_tally(
        &self,
        run: &RunId,
        parts: u32,
    ) -> Result<(Tally, Vec<SegmentPart>), ServiceError> {
        let mut reads = crate::table::Reads::new();
        let slots: Vec<_> = (0..parts)
            .map(|p| reads.add::<SegmentPart>(&(run.clone(), p)))
            .collect();
        let found = self.ctx.table.read(&reads).await?;
        let mut tally = Tally::default();
        let mut read = Vec::with_capacity(slots.len());
        for (p, slot) in slots.iter().enumerate() {
            let part = found.get(slot)?.ok_or_else(|| {
                ServiceError::field("parts", format!("part {p} of run {run} has not finished"))
            })?;
            tally.merge(&part.value.tally);
            read.push(part.value);
        }
        Ok((tally, read))
    }

    /// Adds up the parts and the flows of run `run` into the day's row and sets the cut points
    /// in force. Finishing the same run again answers the same and changes nothing.
    #[tracing::instrument(skip_all, fields(%run))]
    pub async fn segments_finish(
        &self,
        run: &RunId,
        parts: u32,
        now: DateTime<Utc>,
    ) -> Result<SegmentRun, ServiceError> {
        check_parts(0, parts)?;
        let (tally, part_records) = self.parts_tally(run, parts).await?;
        let fit = self.fit_run(run, &part_records, &tally.totals, now).await?;
        let moves = Moves::of(&self.ctx.table.segment_flows(run).await?);
        let cutpoints = tally
            .distribution
            .cut_points(&self.ctx.program.segments.rfm);
        let quantiles =
            tally.distribution.members() >= self.ctx.program.segments.rfm.min_members_for_quantiles;
        let date = self.ctx.program_date(now);
        let result = SegmentRun {
            run: run.to_string(),
            parts,
            examined: tally.examined,
            changed: tally.changed,
            failed: tally.failed,
            cutpoints,
            members_in_fit: fit.as_ref().map_or(0, |(r, _)| r.members_in_fit),
        };
        retrying!(self.ctx, async {
            let existing = self.ctx.table.get::<SegmentDay>(&date).await?;
            let state = self.ctx.table.get::<SegmentState>(&Replica::FIRST).await?;
            let Some(day) = SegmentDay::with_run(
                existing.as_ref().map(|d| &d.value),
                run,
                date,
                now,
                &tally,
                &moves,
                cutpoints,
            ) else {
                return Ok(());
            };
            let mut batch = Batch::new();
            batch.save(&date, &day, existing.as_ref().map(|d| d.version))?;
            let (fitted, sample_below) = self.models_in_force(&mut batch, fit.as_ref(), state)?;
            batch.put_replicas(&SegmentState {
                cutpoints,
                quantiles,
                computed_at: now,
                fitted,
                sample_below,
            })?;
            self.ctx.table.commit(batch).await
        })?;
        self.after_run(run, parts, date, now).await?;
        tracing::info!(?result, "segments run");
        Ok(result)
    }

    /// What follows a run: the custom segments it evaluated listed as of its start, and the
    /// day before folded into the daily series.
    async fn after_run(
        &self,
        run: &RunId,
        parts: u32,
        date: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let listed = self.custom.finish(run, parts, now).await?;
        tracing::info!(listed, "custom segments listed");
        if let Some(yesterday) = date.pred_opt() {
            let daily = self.daily_run(yesterday).await?;
            tracing::info!(date = %yesterday, events = daily.events_read, "daily figures");
        }
        Ok(())
    }

    /// One part of a build run (DESIGN.md "Custom segments"): the members of the part's
    /// shards against the rules in force, when some definition waits for its build; nothing
    /// otherwise (the five-minute schedule finds nothing to do most of the time).
    #[tracing::instrument(skip_all, fields(%run))]
    pub async fn build_part(
        &self,
        run: &RunId,
        part: u32,
        parts: u32,
        now: DateTime<Utc>,
    ) -> Result<EvaluationTally, ServiceError> {
        check_parts(part, parts)?;
        let mut tally = EvaluationTally::default();
        if !self.custom.building().await? {
            return Ok(tally);
        }
        let custom = self.custom.evaluator().await?;
        let state = self.ctx.table.get::<SegmentState>(&Replica::FIRST).await?;
        let standing = self.standing(state);
        for shard in (part..MEMBER_SHARDS).step_by(parts as usize) {
            let which = MemberIndex::Shard(shard);
            let mut position = None;
            loop {
                let page = self.ctx.table.member_keys_in(&which, position).await?;
                let members = self.ctx.table.members_at(&page.items).await?;
                let members = members.into_iter().map(|v| v.value).collect();
                let model = standing.model.as_ref();
                tally.add(
                    self.custom
                        .evaluate_members(members, &custom, model, now)
                        .await?,
                );
                match page.next {
                    Some(n) => position = Some(n),
                    None => break,
                }
            }
        }
        self.custom
            .part_done(run, (part, parts), &custom, tally, now)
            .await?;
        Ok(tally)
    }

    /// The last step of a build run: the rules every part evaluated are listed.
    pub async fn build_finish(
        &self,
        run: &RunId,
        parts: u32,
        now: DateTime<Utc>,
    ) -> Result<u32, ServiceError> {
        check_parts(0, parts)?;
        self.custom.finish(run, parts, now).await
    }

    /// A whole build run, locally: every part (concurrently), then the last step.
    pub async fn build_job(
        &self,
        now: DateTime<Utc>,
        parts: u32,
    ) -> Result<BuildRun, ServiceError> {
        let run = RunId::new_random();
        let results = futures::future::join_all(
            (0..parts).map(|part| self.build_part(&run, part, parts, now)),
        )
        .await;
        let mut tally = EvaluationTally::default();
        for r in results {
            tally.add(r?);
        }
        let listed = self.build_finish(&run, parts, now).await?;
        Ok(BuildRun {
            run: run.to_string(),
            parts,
            examined: tally.examined,
            changed: tally.changed,
            failed: tally.failed,
            listed,
        })
    }

    /// Every segment and its size now, read from the sizes every member write keeps
    /// (DESIGN.md "Segment sizes"): equal to what its listing pages through.
    #[tracing::instrument(skip_all)]
    pub async fn segments(&self) -> Result<Vec<SegmentView>, ServiceError> {
        let now = self.ctx.now();
        Ok(self
            .ctx
            .table
            .segment_sizes()
            .await?
            .into_iter()
            .map(|(id, size)| SegmentView {
                id: id.to_string(),
                kind: id.kind().into(),
                size,
                as_of: now,
                name: None,
                status: None,
            })
            .collect())
    }

    #[tracing::instrument(skip_all, fields(segment = %id))]
    pub async fn segment_members(
        &self,
        id: SegmentId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<SegmentMembers, ServiceError> {
        let (members, next) = self
            .ctx
            .table
            .member_page(&MemberIndex::Segment(id), limit, cursor)
            .await?;
        let items = members
            .into_iter()
            .map(|v| self.member_row(v.value))
            .collect();
        Ok(SegmentMembers {
            items,
            next_cursor: next,
            evaluated_at: None,
        })
    }

    /// A page of a custom segment's listing, as segment listings show it.
    pub async fn custom_members(
        &self,
        slug: &crate::domain::custom_segment::Slug,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<SegmentMembers, ServiceError> {
        let page = self.custom.members(slug, limit, cursor).await?;
        Ok(SegmentMembers {
            items: page
                .members
                .into_iter()
                .map(|m| self.member_row(m))
                .collect(),
            next_cursor: page.next_cursor,
            evaluated_at: page.evaluated_at,
        })
    }

    /// A member as segment listings show it.
    fn member_row(&self, m: Member) -> SegmentMember {
        SegmentMember {
            tier: m.tier,
            lifecycle: m.segments.map(|s| s.lifecycle),
            value: m.segments.and_then(|s| s.value),
            last_purchase_at: m.last_purchase_at,
            qualifying_spend: self.ctx.progress_view(&m).qualifying_spend,
            id: m.id,
        }
    }

    /// One row per day a run finished in `from..=to` (at most 366 days).
    #[tracing::instrument(skip_all, fields(segment = %id))]
    pub async fn segment_history(
        &self,
        id: SegmentId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<History, ServiceError> {
        if to < from || (to - from).num_days() > 365 {
            return Err(ServiceError::field(
                "to",
                "to must not be before from, and the range at most 366 days",
            ));
        }
        let get = |m: &BTreeMap<SegmentId, u64>| m.get(&id).copied().unwrap_or(0);
        let items = self
            .ctx
            .table
            .segment_days(from, to)
            .await?
            .into_iter()
            .map(|d| HistoryRow {
                date: d.date,
                size: get(&d.sizes),
                entered: get(&d.entered),
                left: get(&d.left),
            })
            .collect();
        Ok(History { items })
    }

    async fn latest_day(&self) -> Result<SegmentDay, ServiceError> {
        self.ctx
            .table
            .latest_segment_day(None)
            .await?
            .ok_or(ServiceError::NotFound(
                "segments run (the nightly segments job has not run yet)",
            ))
    }

    #[tracing::instrument(skip_all)]
    pub async fn overview(&self) -> Result<Overview, ServiceError> {
        let day = self.latest_day().await?;
        let since = day.date - chrono::Duration::days(29);
        let base = self.ctx.table.latest_segment_day(Some(since)).await?;
        let (earned0, redeemed0, expired0) = base.map_or((0, 0, 0), |b| {
            (
                b.totals.lifetime_earned,
                b.totals.lifetime_redeemed,
                b.totals.lifetime_expired,
            )
        });
        let t = &day.totals;
        let pick = |kind: &str| -> BTreeMap<String, u64> {
            day.sizes
                .iter()
                .filter(|(k, _)| k.kind() == kind)
                .map(|(k, n)| (k.name().to_owned(), *n))
                .collect()
        };
        Ok(Overview {
            as_of: day.as_of,
            members: t.members,
            active_members: t.active_members,
            points_outstanding: Points(t.points_outstanding),
            points_outstanding_value: points_value(t.points_outstanding, &self.ctx.program),
            points_pending: Points(t.points_pending),
            points_earned_30d: Points(t.lifetime_earned - earned0),
            points_redeemed_30d: Points(t.lifetime_redeemed - redeemed0),
            points_expired_30d: Points(t.lifetime_expired - expired0),
            repeat_purchase_rate_90d: if t.purchasers_90d == 0 {
                0.0
            } else {
                t.repeaters_90d as f64 / t.purchasers_90d as f64
            },
            tiers: pick("tier"),
            lifecycle: pick("lifecycle"),
        })
    }

    /// The last `months` enrolment cohorts (1–12) of the latest run, oldest first.
    #[tracing::instrument(skip_all)]
    pub async fn retention(&self, months: u32) -> Result<Retention, ServiceError> {
        if !crate::domain::bounds::RETENTION_MONTHS.contains(i64::from(months)) {
            return Err(ServiceError::field(
                "months",
                format!("months must be {}", crate::domain::bounds::RETENTION_MONTHS),
            ));
        }
        let day = self.latest_day().await?;
        let this_month = month_index(day.date);
        let cohorts = (this_month - months as i32 + 1..=this_month)
            .map(|m| {
                let row = day.cohorts.get(&month_name(m)).cloned().unwrap_or_default();
                let span = (this_month - m + 1) as usize;
                let mut retained: Vec<u64> = row.iter().skip(1).copied().collect();
                retained.resize(span, 0);
                Cohort {
                    month: month_name(m),
                    members: row.first().copied().unwrap_or(0),
                    retained,
                }
            })
            .collect();
        Ok(Retention {
            as_of: day.as_of,
            cohorts,
        })
    }
}

fn check_parts(part: u32, parts: u32) -> Result<(), ServiceError> {
    if !(1..=MEMBER_SHARDS).contains(&parts) {
        return Err(ServiceError::field(
            "parts",
            format!("parts must be between 1 and {MEMBER_SHARDS}"),
        ));
    }
    if part >= parts {
        return Err(ServiceError::field("part", "part must be below parts"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_parse() {
        for ok in ["a", "0193-abc_def.1:2", &"x".repeat(80)] {
            assert!(RunId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a#b", "a/b", &"x".repeat(81)] {
            assert!(RunId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parts_are_checked() {
        assert!(check_parts(0, 1).is_ok());
        assert!(check_parts(15, 16).is_ok());
        assert!(check_parts(1, 1).is_err());
        assert!(check_parts(0, 0).is_err());
        assert!(check_parts(0, 17).is_err());
    }

    #[test]
    fn tallies_merge_by_adding() {
        let mut a = Tally::default();
        let gold = SegmentId::Tier(Tier::Gold);
        a.sizes.insert(gold, 2);
        a.cohorts.insert("2026-01".into(), vec![3, 1]);
        a.totals.members = 3;
        let mut b = Tally::default();
        b.sizes.insert(gold, 5);
        b.cohorts.insert("2026-01".into(), vec![1, 1, 1]);
        b.totals.members = 4;
        a.merge(&b);
        assert_eq!(a.sizes[&gold], 7);
        assert_eq!(a.cohorts["2026-01"], vec![4, 2, 1]);
        assert_eq!(a.totals.members, 7);
    }
}

/// Points in money at the program's point value: minor units, half away from zero.
fn points_value(points: i64, program: &crate::program::Program) -> Money {
    let v = i128::from(points) * i128::from(program.point_value_per_100);
    let rounded = (v + v.signum() * 50) / 100;
    Money {
        value: i64::try_from(rounded).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX }),
        currency: program.currency,
    }
}

#[cfg(test)]
mod value_tests {
    use super::points_value;
    use crate::program::Program;

    #[test]
    fn points_value_rounds_half_away_from_zero_at_every_boundary() {
        let p = |per_100| Program {
            point_value_per_100: per_100,
            ..Program::default()
        };
        for (points, per_100, want) in [
            (0, 100, 0),
            (1, 100, 1),
            (4_200_000, 100, 4_200_000),
            (1, 50, 1),   // 0.5 → 1
            (1, 49, 0),   // 0.49 → 0
            (-1, 50, -1), // −0.5 → −1
            (3, 33, 1),   // 0.99 → 1
            (1_000, 0, 0),
            (i64::MAX, 1_000_000, i64::MAX),
        ] {
            assert_eq!(
                points_value(points, &p(per_100)).value,
                want,
                "{points} × {per_100}/100"
            );
        }
    }
}
