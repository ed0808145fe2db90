//! The nightly segments run: segment state replicas, size shards, per-day sizes and flows, the
//! parts of a run and the daily figures.

use super::keys::sharded;
use super::{Reads, Record, Replica, SIZE_SHARDS, Slot, Table, decode, shard_of};
use crate::domain::MemberId;
use crate::domain::daily::DailyFigures;
use crate::domain::predict::sample::{Chunk, Report, Snapshot};
use crate::domain::segment::{
    RunId, SegmentDay, SegmentFlow, SegmentId, SegmentPart, SegmentState,
};
use crate::error::ServiceError;
use crate::store::{Key, PageRequest, SortKey, Store};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

const SEGMENTS: &str = "SEGMENTS";

const DAY: &str = "DAY#";

fn day_key(d: NaiveDate) -> String {
    format!("{DAY}{}", d.format("%Y-%m-%d"))
}

impl Record for SegmentState {
    type Id = Replica;
    const KIND: &'static str = "segment state";
    fn key(r: &Replica) -> Key {
        Key::new(sharded("CUTPOINTS", r.0), "STATE")
    }
}

/// One shard of every segment's size (DESIGN.md "Segment sizes"): for each segment, what the
/// commits that moved this shard's members in and out of it added up to
/// ([`crate::store::Write::Add`], one attribute a segment), so sizes are read, not counted.
/// Sharded by member ([`SIZE_SHARDS`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SegmentSizes {
    #[serde(flatten)]
    attrs: std::collections::BTreeMap<String, Value>,
}

impl SegmentSizes {
    /// The attribute a segment's count is kept in.
    pub fn attr(s: SegmentId) -> String {
        format!("n:{s}")
    }
    pub fn get(&self, s: SegmentId) -> i64 {
        self.attrs
            .get(&Self::attr(s))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }
}

impl Record for SegmentSizes {
    type Id = u32;
    const KIND: &'static str = "segment sizes";
    fn key(shard: &u32) -> Key {
        Key::new(sharded("SEGSIZES", *shard), "SIZES")
    }
}

impl Record for SegmentDay {
    type Id = NaiveDate;
    const KIND: &'static str = "segment day";
    fn key(d: &NaiveDate) -> Key {
        Key::new(SEGMENTS, day_key(*d))
    }
}

/// The days `from..=to`, oldest first: the partition, the range and the position just before
/// `from` (positions are exclusive).
pub(super) fn days_range(from: NaiveDate, to: NaiveDate) -> (String, SortKey, String) {
    days_of(SEGMENTS, from, to)
}

fn days_of(pk: &str, from: NaiveDate, to: NaiveDate) -> (String, SortKey, String) {
    let before = to.succ_opt().unwrap_or(to);
    let start = from.pred_opt().unwrap_or(from);
    (pk.into(), SortKey::Before(day_key(before)), day_key(start))
}

/// The daily figures' rows `from..=to`, as [`days_range`].
pub(super) fn daily_range(from: NaiveDate, to: NaiveDate) -> (String, SortKey, String) {
    days_of(DAILY, from, to)
}

/// One program day's figures, in the one partition of the series: written once a night, read
/// by the dashboard.
impl Record for DailyFigures {
    type Id = NaiveDate;
    const KIND: &'static str = "daily figures";
    fn key(d: &NaiveDate) -> Key {
        Key::new(DAILY, day_key(*d))
    }
}

const DAILY: &str = "DAILY";

/// The days before `before`, for reading the newest of them.
pub(super) fn days_before(before: NaiveDate) -> (String, SortKey) {
    (SEGMENTS.into(), SortKey::Before(day_key(before)))
}

/// Every day row.
pub(super) fn all_days() -> (String, SortKey) {
    (SEGMENTS.into(), SortKey::Prefix(DAY.into()))
}

fn run_pk(run: &RunId) -> String {
    format!("SEGRUN#{run}")
}

const FLOW: &str = "FLOW#";

impl Record for SegmentPart {
    type Id = (RunId, u32);
    const KIND: &'static str = "segment part";
    fn key((run, part): &(RunId, u32)) -> Key {
        Key::new(run_pk(run), format!("PART#{part:02}"))
    }
}

/// A part's sample chunks, in the run's partition beside its part record.
impl Record for Chunk {
    type Id = (RunId, u32, u32);
    const KIND: &'static str = "fit sample";
    fn key((run, part, n): &(RunId, u32, u32)) -> Key {
        Key::new(run_pk(run), format!("FIT#{part:02}#{n:03}"))
    }
}

const PREDICTIONS: &str = "PREDICTIONS";

/// A night's merged sample, beside its report.
impl Record for Snapshot {
    type Id = (NaiveDate, u32);
    const KIND: &'static str = "prediction snapshot";
    fn key((d, n): &(NaiveDate, u32)) -> Key {
        Key::new(PREDICTIONS, format!("SNAP#{}#{n:03}", d.format("%Y-%m-%d")))
    }
}

/// A night's fit, one row a day in one partition (written once a night).
impl Record for Report {
    type Id = NaiveDate;
    const KIND: &'static str = "prediction fit";
    fn key(d: &NaiveDate) -> Key {
        Key::new(PREDICTIONS, day_key(*d))
    }
}

/// A run's flows live in this many partitions, by member: a night that moves half of ten
/// million members writes five million flows (2 units each, inside the member's commit); in 64
/// partitions that is ≈ 160,000 units a key, 160 s at DynamoDB's 1,000 a second, well inside
/// the run's own pace (`loyalty-bench --scenario night`).
pub const FLOW_SHARDS: u32 = 64;

impl Record for SegmentFlow {
    type Id = (RunId, MemberId);
    const KIND: &'static str = "segment flow";
    fn key((run, m): &(RunId, MemberId)) -> Key {
        Key::new(
            sharded(&run_pk(run), shard_of(m, FLOW_SHARDS)),
            format!("{FLOW}{m}"),
        )
    }
}

/// The partitions of a run's flows.
pub(super) fn flows_ranges(run: &RunId) -> Vec<(String, SortKey)> {
    (0..FLOW_SHARDS)
        .map(|n| (sharded(&run_pk(run), n), SortKey::Prefix(FLOW.into())))
        .collect()
}

pub(super) const SEGMENT_KIND: &str = "segment";

// ---- campaigns: the campaign (GSI1 lists them), the registry of running ones, and one
// assignment per audience member in the campaign's partition.

impl Table {
    /// Every segment's size now, in [`SegmentId::all`]'s order: the sum of its kept shards
    /// (DESIGN.md "Segment sizes"), read in one round trip.
    pub async fn segment_sizes(&self) -> Result<Vec<(SegmentId, u64)>, ServiceError> {
        let mut reads = Reads::new();
        let shards: Vec<Slot<SegmentSizes>> = (0..SIZE_SHARDS)
            .map(|n| reads.add::<SegmentSizes>(&n))
            .collect();
        let found = self.read(&reads).await?;
        let mut read = Vec::with_capacity(shards.len());
        for slot in &shards {
            read.push(found.get(slot)?.map(|v| v.value).unwrap_or_default());
        }
        SegmentId::all()
            .into_iter()
            .map(|s| {
                let total: i64 = read.iter().map(|shard| shard.get(s)).sum();
                // Every move out was a move in first, in the same shard: below zero is a bug.
                let size = u64::try_from(total)
                    .map_err(|_| ServiceError::corrupt(format!("segment {s} has size {total}")))?;
                Ok((s, size))
            })
            .collect()
    }

    /// The day rows `from..=to`, oldest first (at most 400).
    pub async fn segment_days(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<crate::domain::segment::SegmentDay>, ServiceError> {
        self.days(days_range(from, to)).await
    }

    /// The daily figures of `from..=to` (at most 400 days), oldest first.
    pub async fn daily_figures(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<crate::domain::daily::DailyFigures>, ServiceError> {
        self.days(daily_range(from, to)).await
    }

    async fn days<R: Record>(
        &self,
        (pk, sort, start): (String, SortKey, String),
    ) -> Result<Vec<R>, ServiceError> {
        let page = self
            .store
            .query(
                &pk,
                &sort,
                &PageRequest {
                    limit: 400,
                    after: Some(start),
                    descending: false,
                },
            )
            .await?;
        page.items
            .iter()
            .map(|i| decode(i).map(|v| v.value))
            .collect()
    }

    /// The newest day row before `before` (or the newest of all).
    pub async fn latest_segment_day(
        &self,
        before: Option<chrono::NaiveDate>,
    ) -> Result<Option<crate::domain::segment::SegmentDay>, ServiceError> {
        let (pk, sort) = match before {
            Some(b) => days_before(b),
            None => all_days(),
        };
        let page = self
            .store
            .query(&pk, &sort, &PageRequest::newest_first(1, None))
            .await?;
        page.items
            .first()
            .map(|i| decode(i).map(|v| v.value))
            .transpose()
    }

    /// The newest prediction fit.
    pub async fn latest_prediction_fit(&self) -> Result<Option<Report>, ServiceError> {
        let page = self
            .store
            .query(
                PREDICTIONS,
                &SortKey::Prefix(DAY.into()),
                &PageRequest::newest_first(1, None),
            )
            .await?;
        page.items
            .first()
            .map(|i| decode(i).map(|v| v.value))
            .transpose()
    }

    /// Every flow a segments run recorded.
    pub async fn segment_flows(
        &self,
        run: &crate::domain::segment::RunId,
    ) -> Result<Vec<crate::domain::segment::SegmentFlow>, ServiceError> {
        Ok(self
            .query_all_of(flows_ranges(run))
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }
}
