//! Predictions (DESIGN.md "Predictions") in the nightly segments run: a part recounts the
//! purchase summaries that are stale or missing from the member's ledger, scores each member
//! with the model in force and keeps its share of the sample; the finishing step merges the
//! parts' samples, fits both models and puts them in force for the next purchases and the next
//! run. Also the operators' reads: the fitted model and a member's scores.

use super::error::ServiceError;
use super::segments::Segmentation;
use crate::domain::Money;
use crate::domain::event::{EventData, Reversal};
use crate::domain::member::Member;
use crate::domain::predict::backtest::Backtest;
use crate::domain::predict::sample::{self, Chunk, Report, Sampler, Snapshot};
use crate::domain::predict::score::{ChurnRisk, Fitted, Scores};
use crate::domain::predict::summary::PurchaseDays;
use crate::domain::receipt::PurchaseRef;
use crate::domain::segment::{RunId, SegmentId, SegmentPart, SegmentState, Standing, Totals};
use crate::table::{Batch, LedgerLine, Reads, Versioned};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

impl Segmentation {
    /// Recounts `m`'s purchase summary from their ledger (one paged query of the member's
    /// partition) when it is stale, or missing on a member who bought. Returns whether it
    /// changed.
    pub(crate) async fn recount_purchase_days(&self, m: &mut Member) -> Result<bool, ServiceError> {
        if !m.purchase_days_need_recount() {
            return Ok(false);
        }
        let lines = self.ctx.table.list_all::<LedgerLine>(&m.id).await?;
        let history = purchase_history(
            lines.iter().flat_map(|l| &l.value.events).map(|e| &e.data),
            |at| self.ctx.program_date(at),
        );
        let recount = PurchaseDays::recount(history).or_else(|| self.estimate_purchase_days(m));
        let changed = recount != m.purchase_days;
        m.purchase_days = recount;
        Ok(changed)
    }

    /// A summary from the member's own counts when the ledger holds none of their purchases
    /// (members seeded in bulk): first and last purchase days, and each purchase counted as a
    /// repeat day after the first with its share of the kept spend.
    fn estimate_purchase_days(&self, m: &Member) -> Option<PurchaseDays> {
        let last = m.last_purchase_at?;
        let first = m.first_purchase_at.unwrap_or(last);
        let today = self.ctx.program_date(last);
        let window = self.ctx.program.purchase_months_kept();
        let a = m.activity(today, window);
        let repeats = a.purchases_in_window.saturating_sub(1);
        let mut s = PurchaseDays::first_purchase(self.ctx.program_date(first), 0);
        s.last = self.ctx.program_date(last);
        s.repeat_days = u32::try_from(repeats).unwrap_or(u32::MAX);
        s.repeat_spend = if a.purchases_in_window > 0 {
            a.spend_in_window * repeats / a.purchases_in_window
        } else {
            0
        };
        Some(s)
    }

    /// Adds `m` as the run leaves it to the part's prediction counts and sample: scored by the
    /// model in force (Σ CLV of those likely to churn), sampled by its key.
    pub(crate) fn count_prediction(
        &self,
        totals: &mut Totals,
        sampler: &mut Sampler,
        standing: &Standing,
        m: &Member,
        now: DateTime<Utc>,
    ) {
        let (Some(days), None) = (&m.purchase_days, m.erased_at) else {
            return;
        };
        let today = self.ctx.program_date(now);
        totals.purchasing += 1;
        sampler.offer(m.id.as_str(), days, today);
        if let Some(s) = m.scores(standing.model.as_ref(), today) {
            totals.scored += 1;
            if s.churn_risk == ChurnRisk::Likely {
                totals.clv_at_risk += s.clv.unwrap_or(0);
            }
        }
    }

    /// Stores a part's sample beside its part record: returns how many chunks.
    pub(crate) fn save_sample(
        &self,
        run: &RunId,
        part: u32,
        sampler: Sampler,
        expires_at: i64,
        batch: &mut Batch,
    ) -> Result<u32, ServiceError> {
        let chunks = sampler.into_chunks(expires_at);
        for (n, c) in chunks.iter().enumerate() {
            batch.put(&(run.clone(), part, n as u32), c)?;
        }
        Ok(chunks.len() as u32)
    }

    /// The finishing step's fit: the parts' samples merged (the lowest `sample_size` keys),
    /// both models fitted, and the report of it. None when there is too little to fit (the
    /// models in force stay).
    pub(crate) async fn fit_run(
        &self,
        run: &RunId,
        parts: &[SegmentPart],
        totals: &Totals,
        now: DateTime<Utc>,
    ) -> Result<Option<(Report, Option<u64>)>, ServiceError> {
        let mut reads = Reads::new();
        let slots: Vec<_> = parts
            .iter()
            .flat_map(|p| (0..p.sample_chunks).map(move |n| (p.part, n)))
            .map(|(part, n)| reads.add::<Chunk>(&(run.clone(), part, n)))
            .collect();
        let found = self.ctx.table.read(&reads).await?;
        let size = self.ctx.program.predictions.sample_size as usize;
        let mut lowest = sample::Lowest::new(size);
        for slot in &slots {
            let chunk = found.get(slot)?.ok_or_else(|| {
                ServiceError::corrupt(format!("run {run}: a sample chunk is missing"))
            })?;
            for r in chunk.value.rows {
                lowest.offer(r);
            }
        }
        let rows = lowest.into_rows();
        let started = std::time::Instant::now();
        let fitted = match sample::fit(&rows, self.ctx.program.currency.minor_units()) {
            Ok(f) => f,
            Err(e) => {
                tracing::info!(members = rows.len(), reason = %e, "predictions: no fit tonight");
                return Ok(None);
            }
        };
        let as_of = self.ctx.program_date(now);
        let snapshot_chunks = self.keep_snapshot(as_of, &rows, now).await?;
        let backtest = self.backtest(as_of, &rows).await?;
        let report = Report {
            fitted_at: now,
            as_of,
            purchasing_members: totals.purchasing,
            members_in_fit: rows.len() as u64,
            frequency: fitted.frequency.params,
            standard_errors: fitted.frequency.standard_errors,
            log_likelihood: fitted.frequency.log_likelihood,
            spend: fitted.spend.as_ref().map(|s| s.params),
            spend_members: fitted.spend.as_ref().map_or(0, |s| s.members as u64),
            fit_ms: started.elapsed().as_millis() as u64,
            snapshot_chunks,
            backtest,
        };
        tracing::info!(?report, "predictions fitted");
        Ok(Some((report, sample::next_bound(&rows, size))))
    }

    /// The models the finishing step puts in force, with the sample bound: tonight's fit (its
    /// report added to `batch`), else those in force (`state`) stay.
    pub(crate) fn models_in_force(
        &self,
        batch: &mut Batch,
        fit: Option<&(Report, Option<u64>)>,
        state: Option<Versioned<SegmentState>>,
    ) -> Result<(Option<Fitted>, Option<u64>), ServiceError> {
        Ok(match fit {
            Some((report, below)) => {
                batch.put(&report.as_of, report)?;
                (Some(report.fitted()), *below)
            }
            None => state
                .map(|s| (s.value.fitted, s.value.sample_below))
                .unwrap_or_default(),
        })
    }

    /// Keeps the night's merged sample until the night that backtests it (one put a chunk,
    /// outside the finishing transaction: a rerun writes the same).
    async fn keep_snapshot(
        &self,
        day: NaiveDate,
        rows: &[sample::Row],
        now: DateTime<Utc>,
    ) -> Result<u32, ServiceError> {
        let days = i64::from(self.ctx.program.predictions.horizon_days) + 7;
        let expires_at = (now + chrono::Duration::days(days)).timestamp();
        let chunks: Vec<&[sample::Row]> = rows.chunks(sample::CHUNK_ROWS).collect();
        for (n, c) in chunks.iter().enumerate() {
            let mut batch = Batch::new();
            let snapshot = Snapshot {
                rows: c.to_vec(),
                expires_at,
            };
            batch.put(&(day, n as u32), &snapshot)?;
            self.ctx.table.commit(batch).await?;
        }
        Ok(chunks.len() as u32)
    }

    /// The backtest of the night `horizon_days` before `day`, when it fitted and kept its
    /// sample; else the newest one so far.
    async fn backtest(
        &self,
        day: NaiveDate,
        rows: &[sample::Row],
    ) -> Result<Option<Backtest>, ServiceError> {
        let horizon = self.ctx.program.predictions.horizon_days;
        let then_day = day - chrono::Duration::days(i64::from(horizon));
        let Some(then) = self.ctx.table.get::<Report>(&then_day).await? else {
            let latest = self.ctx.table.latest_prediction_fit().await?;
            return Ok(latest.and_then(|r| r.backtest));
        };
        let mut reads = Reads::new();
        let slots: Vec<_> = (0..then.value.snapshot_chunks)
            .map(|n| reads.add::<Snapshot>(&(then_day, n)))
            .collect();
        let found = self.ctx.table.read(&reads).await?;
        let mut then_rows = Vec::new();
        for slot in &slots {
            let chunk = found.get(slot)?.ok_or_else(|| {
                ServiceError::corrupt(format!("the sample of {then_day} is missing a chunk"))
            })?;
            then_rows.extend(chunk.value.rows);
        }
        let b = crate::domain::predict::backtest::backtest(
            &then.value.frequency,
            &then_rows,
            rows,
            then_day,
            horizon,
        );
        Ok(Some(b))
    }

    /// The newest fit with the churn segments' sizes now and the value at risk as of the last
    /// run (404 before the first fit).
    #[tracing::instrument(skip_all)]
    pub async fn predictions(&self) -> Result<PredictionsView, ServiceError> {
        let report = self
            .ctx
            .table
            .latest_prediction_fit()
            .await?
            .ok_or(ServiceError::NotFound("prediction fit"))?;
        let sizes = self.ctx.table.segment_sizes().await?;
        let size = |c: ChurnRisk| {
            sizes
                .iter()
                .find(|(id, _)| *id == SegmentId::Churn(c))
                .map_or(0, |(_, n)| *n)
        };
        let day = self.ctx.table.latest_segment_day(None).await?;
        let p = &self.ctx.program;
        Ok(PredictionsView {
            model: "bg_nbd".into(),
            fitted_at: report.fitted_at,
            as_of: report.as_of,
            members_in_fit: report.members_in_fit,
            purchasing_members: report.purchasing_members,
            params: report.frequency,
            standard_errors: report.standard_errors,
            log_likelihood: report.log_likelihood,
            spend: report.spend,
            spend_members: report.spend_members,
            horizon_days: p.predictions.horizon_days,
            thresholds: ChurnCuts {
                likely: p.predictions.churn.likely,
                possible: p.predictions.churn.possible,
            },
            churn: ChurnSizes {
                likely: size(ChurnRisk::Likely),
                possible: size(ChurnRisk::Possible),
                unlikely: size(ChurnRisk::Unlikely),
            },
            clv_at_risk: Money::new(
                day.map_or(0, |d| d.totals.clv_at_risk),
                self.ctx.program.currency,
            ),
            fit_ms: report.fit_ms,
            backtest: report.backtest,
        })
    }

    /// `m`'s scores on the program's today under `standing`, as operators see them.
    pub(crate) fn member_predictions(
        &self,
        m: &Member,
        standing: &Standing,
    ) -> Option<MemberPredictions> {
        let today = self.ctx.program_date(self.ctx.now());
        let model = standing.model.as_ref()?;
        let s: Scores = m.scores(Some(model), today)?;
        let money = |v: i64| Money::new(v, self.ctx.program.currency);
        Some(MemberPredictions {
            p_alive: s.p_alive,
            expected_purchases: s.expected_purchases,
            churn_probability: s.churn_probability,
            expected_spend_per_purchase: s.expected_spend_per_purchase.map(money),
            clv: s.clv.map(money),
            churn_risk: s.churn_risk,
            horizon_days: model.horizon_days,
            as_of: today,
        })
    }
}

/// A member's predicted scores (`GET /v1/members/{id}` for operators).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"p_alive": 0.93, "expected_purchases": 1.42, "churn_probability": 0.31,
    "expected_spend_per_purchase": {"value": 3850, "currency": "USD"}, "clv": {"value": 21560, "currency": "USD"},
    "churn_risk": "unlikely", "horizon_days": 90, "as_of": "2027-03-01"}))]
pub struct MemberPredictions {
    /// P(the member is still a customer).
    pub p_alive: f64,
    /// Purchase days expected in the next `horizon_days`.
    pub expected_purchases: f64,
    /// P(no purchase in the next `horizon_days`).
    pub churn_probability: f64,
    /// What the member's next purchase is expected to be worth (null without a spend model).
    pub expected_spend_per_purchase: Option<Money>,
    /// Expected purchases in the next 365 days × the expected spend, undiscounted.
    pub clv: Option<Money>,
    pub churn_risk: ChurnRisk,
    pub horizon_days: u32,
    /// The program day the scores are for.
    pub as_of: NaiveDate,
}

/// A member's purchases from their ledger's events: each purchase's program date, amount and
/// how much of it refunds took back (minor units).
fn purchase_history<'a>(
    events: impl Iterator<Item = &'a EventData>,
    date: impl Fn(DateTime<Utc>) -> NaiveDate,
) -> Vec<(NaiveDate, i64, i64)> {
    let key = |p: PurchaseRef| (p.store_id.to_string(), p.receipt_id.to_string());
    let mut bought: BTreeMap<(String, String), (NaiveDate, i64)> = BTreeMap::new();
    let mut refunded: BTreeMap<(String, String), i64> = BTreeMap::new();
    for e in events {
        let sale = match e {
            EventData::PointsEarned(e) => &e.sale,
            EventData::PointsPending(p) => &p.sale,
            EventData::PointsReversed(r) => {
                if let Reversal::Purchase { refund, amount, .. } = &r.of {
                    *refunded.entry(key(refund.purchase())).or_default() += amount.value;
                }
                continue;
            }
            _ => continue,
        };
        let sold = PurchaseRef {
            store_id: sale.store_id.clone(),
            receipt_id: sale.receipt_id.clone(),
        };
        bought.insert(key(sold), (date(sale.occurred_at), sale.amount.value));
    }
    bought
        .into_iter()
        .map(|(k, (day, amount))| {
            let back = refunded.get(&k).copied().unwrap_or(0).min(amount);
            (day, amount, back)
        })
        .collect()
}

/// `GET /v1/analytics/predictions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"model": "bg_nbd", "fitted_at": "2027-03-01T02:00:00Z", "as_of": "2027-03-01",
    "members_in_fit": 2357, "purchasing_members": 2357,
    "params": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
    "standard_errors": {"r": 0.013, "alpha": 0.378, "a": 0.186, "b": 0.701}, "log_likelihood": -9582.43,
    "spend": {"p": 6.25, "q": 3.74, "gamma": 15.44}, "spend_members": 946, "horizon_days": 90,
    "thresholds": {"likely": 0.7, "possible": 0.4}, "churn": {"likely": 1210, "possible": 402, "unlikely": 745},
    "clv_at_risk": {"value": 1250000, "currency": "USD"}, "fit_ms": 412}))]
pub struct PredictionsView {
    /// The purchase model: `bg_nbd` (Fader, Hardie & Lee 2005).
    pub model: String,
    pub fitted_at: DateTime<Utc>,
    /// The observation day of the fit (the run's program date).
    pub as_of: NaiveDate,
    /// Members the fit read (a fixed sample of at most `predictions.sample_size`), of the
    /// members with a purchase.
    pub members_in_fit: u64,
    pub purchasing_members: u64,
    /// BG/NBD's parameters, time in weeks.
    pub params: crate::domain::predict::bgnbd::Params,
    /// Their standard errors (null when the likelihood is flat at the optimum).
    pub standard_errors: Option<crate::domain::predict::bgnbd::Params>,
    pub log_likelihood: f64,
    /// Gamma-Gamma's parameters, spend in the currency's major units (null: too few repeat
    /// buyers).
    pub spend: Option<crate::domain::predict::spend::Params>,
    pub spend_members: u64,
    pub horizon_days: u32,
    pub thresholds: ChurnCuts,
    /// The churn segments' sizes now.
    pub churn: ChurnSizes,
    /// Σ CLV of the members likely to churn, as the last segments run scored them.
    pub clv_at_risk: Money,
    /// How long both fits took, milliseconds.
    pub fit_ms: u64,
    /// The newest backtest: a night's predictions for its sampled members checked
    /// `horizon_days` later, beside a naive baseline; null until a fit is that old.
    pub backtest: Option<Backtest>,
}

/// The program's churn probability thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChurnCuts {
    pub likely: f64,
    pub possible: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChurnSizes {
    pub likely: u64,
    pub possible: u64,
    pub unlikely: u64,
}
