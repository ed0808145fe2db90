//! The daily series: the nightly run folds the previous program day's events (the GSI3 hour
//! partitions of the global feed, each carrier read once) into one row per day, so the dashboard reads a row per day and the
//! purchase path writes nothing more (no counter item any purchase would make hot).

use super::error::ServiceError;
use crate::domain::daily::{DailyFigures, DayFold};
use crate::service::Segmentation;
use crate::table::Batch;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};

/// The longest series one request may ask for.
pub const DAILY_MAX_DAYS: i64 = 366;

/// What folding one day read and wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyRun {
    pub figures: DailyFigures,
    pub events_read: u64,
}

impl Segmentation {
    /// Folds program day `date`'s events into its figures and stores the row (a rerun recounts
    /// and replaces it: the events are the truth).
    #[tracing::instrument(skip_all, fields(%date))]
    pub async fn daily_run(&self, date: NaiveDate) -> Result<DailyRun, ServiceError> {
        let (from, to) = self.program_day(date);
        let mut fold = DayFold::new(date);
        let mut events_read = 0;
        self.ctx
            .table
            .for_events_between(from, to, |e| {
                events_read += 1;
                fold.add(e);
            })
            .await?;
        let figures = fold.finish();
        let mut batch = Batch::new();
        batch.put(&date, &figures)?;
        self.ctx.table.commit(batch).await?;
        Ok(DailyRun {
            figures,
            events_read,
        })
    }

    /// The stored rows of `from..=to` (at most 366 days), oldest first; a day not yet folded
    /// has no row.
    #[tracing::instrument(skip_all)]
    pub async fn daily_series(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyFigures>, ServiceError> {
        if to < from || (to - from).num_days() >= DAILY_MAX_DAYS {
            return Err(ServiceError::field(
                "to",
                format!("to must not be before from, and the range at most {DAILY_MAX_DAYS} days"),
            ));
        }
        self.ctx.table.daily_figures(from, to).await
    }

    /// The instants a program day spans (its local midnights, in UTC).
    fn program_day(&self, date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        let midnight = |d: NaiveDate| {
            let local = d.and_hms_opt(0, 0, 0).unwrap_or_default();
            self.ctx
                .program
                .timezone
                .from_local_datetime(&local)
                .earliest()
                .map_or_else(|| local.and_utc(), |t| t.with_timezone(&Utc))
        };
        (midnight(date), midnight(date.succ_opt().unwrap_or(date)))
    }
}
