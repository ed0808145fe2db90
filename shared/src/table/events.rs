//! What a commit leaves behind in the member's partition: ledger lines and event carriers, the
//! link from a commit to its events, and the day-sharded event feed that webhooks and analytics
//! read in order.

use super::keys::{EVENT, LEDGER, member_pk, sharded};
use super::{EVENT_SHARDS, IndexEntry, Listed, Record, SHARD_READS, Table, decode, shard_of};
use crate::domain::MemberId;
use crate::domain::event::Event;
use crate::domain::ledger::LedgerEntry;
use crate::error::ServiceError;
use crate::store::{Index, Key, PageRequest, SortKey, Store};
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

/// A ledger line as stored: the entry, keyed by the `seq` of the event it records, carrying
/// that event and the line-less events of its commit just before it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LedgerLine {
    #[serde(flatten)]
    pub entry: LedgerEntry,
    pub seq: u64,
    pub events: Vec<Event>,
    #[serde(flatten)]
    pub commit: CommitLink,
}

/// How the event index finds a commit's events with one entry per commit (DESIGN.md "Scale"):
/// the commit's indexed item (its last ledger line, or its carrier when it has no line) names
/// the commit's other items; the others are `quiet`, out of the index. Items stored before
/// this were each indexed, and read as such.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CommitLink {
    /// The seqs of the commit's other ledger lines.
    #[serde(default, rename = "cl", skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<u64>,
    /// The seq of the commit's event carrier.
    #[serde(default, rename = "cc", skip_serializing_if = "Option::is_none")]
    pub carrier: Option<u64>,
    #[serde(default, rename = "q", skip_serializing_if = "std::ops::Not::not")]
    pub quiet: bool,
}

impl CommitLink {
    /// The links of one commit's items: for each of its lines (`lines`, in order), then for
    /// its carrier (when it has one). The last line is indexed and names the rest; without a
    /// line the carrier is; everything else is quiet.
    pub fn of_commit(lines: &[u64], carrier: Option<u64>) -> (Vec<CommitLink>, CommitLink) {
        let quiet = CommitLink {
            quiet: true,
            ..CommitLink::default()
        };
        let mut out = vec![quiet.clone(); lines.len()];
        if let Some((_, rest)) = lines.split_last()
            && let Some(link) = out.last_mut()
        {
            *link = CommitLink {
                lines: rest.to_vec(),
                carrier,
                quiet: false,
            };
        }
        let carrier_link = if lines.is_empty() {
            CommitLink::default()
        } else {
            quiet
        };
        (out, carrier_link)
    }

    fn index(&self, events: &[Event], m: &MemberId) -> Vec<IndexEntry> {
        if self.quiet {
            Vec::new()
        } else {
            event_index(events, m)
        }
    }

    /// The keys of the commit's other items, for the event index's reader.
    pub(super) fn siblings(&self, m: &MemberId) -> Vec<Key> {
        self.lines
            .iter()
            .map(|s| LedgerLine::key(&(m.clone(), *s)))
            .chain(self.carrier.map(|s| EventCarrier::key(&(m.clone(), s))))
            .collect()
    }
}

fn seq_key(prefix: &str, seq: u64) -> String {
    format!("{prefix}{seq:012}")
}

impl Record for LedgerLine {
    type Id = (MemberId, u64);
    const KIND: &'static str = "ledger";
    fn key((m, seq): &(MemberId, u64)) -> Key {
        Key::new(member_pk(m), seq_key(LEDGER, *seq))
    }
    fn index_entries(&self, (m, _): &(MemberId, u64)) -> Vec<IndexEntry> {
        self.commit.index(&self.events, m)
    }
}

impl Listed for LedgerLine {
    type Owner = MemberId;
    fn range(m: &MemberId) -> (String, SortKey) {
        (member_pk(m), SortKey::Prefix(LEDGER.into()))
    }
}

/// Events of a commit that no ledger line carries (enrolment, a profile change, a voucher used),
/// keyed by the last one's `seq`. They expire with the event retention.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventCarrier {
    pub events: Vec<Event>,
    pub expires_at: i64,
    #[serde(flatten)]
    pub commit: CommitLink,
}

impl Record for EventCarrier {
    type Id = (MemberId, u64);
    const KIND: &'static str = "events";
    fn key((m, seq): &(MemberId, u64)) -> Key {
        Key::new(member_pk(m), seq_key(EVENT, *seq))
    }
    fn index_entries(&self, (m, _): &(MemberId, u64)) -> Vec<IndexEntry> {
        self.commit.index(&self.events, m)
    }
}

impl Listed for EventCarrier {
    type Owner = MemberId;
    fn range(m: &MemberId) -> (String, SortKey) {
        (member_pk(m), SortKey::Prefix(EVENT.into()))
    }
}

/// The position just after `seq` in a seq-keyed collection of `R` (ledger lines, carriers).
pub(super) fn after_seq<R: Listed<Owner = MemberId>>(
    m: &MemberId,
    seq: u64,
) -> (String, SortKey, String) {
    let (pk, sort) = R::range(m);
    let prefix = match &sort {
        SortKey::Prefix(p) => p.clone(),
        _ => String::new(),
    };
    (pk, sort, seq_key(&prefix, seq))
}

/// Carriers of events, by the UTC day of their first event (GSI3), sorted by its id (a UUID v7,
/// so in time order): a window of the global feed is an id range of a day's shards, and a job
/// folding a day reads each shard of it once.
fn events_day(day: NaiveDate, shard: u32) -> String {
    sharded(&format!("EVENTS#{}", day.format("%Y-%m-%d")), shard)
}

/// The smallest and the largest UUID v7 text of the millisecond `at` falls in.
fn id_bounds(at: DateTime<Utc>) -> (String, String) {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let (hi, lo) = (ms >> 16, ms & 0xffff);
    (
        format!("{hi:08x}-{lo:04x}-7000-8000-000000000000"),
        format!("{hi:08x}-{lo:04x}-7fff-bfff-ffffffffffff"),
    )
}

fn event_index(events: &[Event], member: &MemberId) -> Vec<IndexEntry> {
    match events.first() {
        Some(first) => vec![IndexEntry {
            index: Index::Gsi3,
            pk: events_day(
                first.occurred_at.date_naive(),
                shard_of(member, EVENT_SHARDS),
            ),
            sk: first.id.to_string(),
        }],
        None => Vec::new(),
    }
}

/// What any carrier (ledger line or event carrier) holds, read from the event index.
#[derive(Deserialize, Serialize)]
pub(super) struct Carried {
    pub events: Vec<Event>,
    #[serde(flatten)]
    pub commit: CommitLink,
}

impl Record for Carried {
    type Id = Key;
    const KIND: &'static str = "carrier";
    fn key(k: &Key) -> Key {
        k.clone()
    }
}

/// The partitions and id range of the carriers whose first event falls in `from..=to`, both
/// in one UTC day: one per shard. The range is whole milliseconds; callers filter exactly.
pub(super) fn events_ranges(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(Index, String, SortKey)> {
    let (lo, _) = id_bounds(from);
    let (_, hi) = id_bounds(to);
    (0..EVENT_SHARDS)
        .map(|n| {
            (
                Index::Gsi3,
                events_day(from.date_naive(), n),
                SortKey::Between(lo.clone(), hi.clone()),
            )
        })
        .collect()
}

/// One shard's events of a window, and the millisecond it was cut short at (if it was).
type ShardEvents = (Vec<Event>, Option<i64>);

impl Table {
    /// A member's events with `seq > after`, oldest first, at most `limit`, and whether more may
    /// follow. Events live on ledger lines and event carriers, each keyed by the seq of the last
    /// event it carries, so both collections are read from just after `after` and merged; events
    /// are returned only up to where both reads are complete.
    pub async fn member_events(
        &self,
        m: &MemberId,
        after: u64,
        limit: u32,
    ) -> Result<(Vec<Event>, bool), ServiceError> {
        let (lines, lines_more) = self.seq_page::<LedgerLine>(m, after, limit).await?;
        let (carriers, carriers_more) = self.seq_page::<EventCarrier>(m, after, limit).await?;
        let mut bound = u64::MAX;
        if lines_more {
            bound = bound.min(lines.last().map_or(after, |l| l.seq));
        }
        if carriers_more {
            bound = bound.min(
                carriers
                    .iter()
                    .flat_map(|c| &c.events)
                    .map(|e| e.seq)
                    .max()
                    .unwrap_or(after),
            );
        }
        let mut events: Vec<Event> = lines
            .into_iter()
            .flat_map(|l| l.events)
            .chain(carriers.into_iter().flat_map(|c| c.events))
            .filter(|e| e.seq > after && e.seq <= bound)
            .collect();
        events.sort_by_key(|e| e.seq);
        let more = lines_more || carriers_more || events.len() > limit as usize;
        events.truncate(limit as usize);
        Ok((events, more))
    }

    async fn seq_page<R: Listed<Owner = MemberId>>(
        &self,
        m: &MemberId,
        after: u64,
        limit: u32,
    ) -> Result<(Vec<R>, bool), ServiceError> {
        let (pk, sort, position) = after_seq::<R>(m, after);
        let page = self
            .store
            .query(
                &pk,
                &sort,
                &PageRequest {
                    limit,
                    after: Some(position),
                    descending: false,
                },
            )
            .await?;
        let items = page
            .items
            .iter()
            .map(|i| decode::<R>(i).map(|v| v.value))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((items, page.next.is_some()))
    }

    /// Every event with `from ≤ occurred_at < to` and an id after `after`, in id order, at most
    /// `limit`, and whether more may follow. Commits are indexed by their UTC day and first
    /// event id (all events of one commit share an instant), so each day of the window is one
    /// id range per shard: the first few entries of every shard are read at once, and events
    /// are returned up to the earliest millisecond a shard was cut short at (a later page
    /// starts from the last id returned, re-reading that millisecond and skipping what it sent).
    pub async fn events_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<uuid::Uuid>,
        limit: u32,
    ) -> Result<(Vec<Event>, bool), ServiceError> {
        let mut out = Vec::new();
        let start = after
            .and_then(|id| id.get_timestamp())
            .map(|t| {
                let (s, n) = t.to_unix();
                DateTime::from_timestamp(s as i64, n).unwrap_or(from)
            })
            .map_or(from, |t| t.max(from));
        let mut day = start;
        let mut per_shard = (2 * limit).div_ceil(super::keys::EVENT_SHARDS).max(10);
        while day < to {
            let next_day = day
                .date_naive()
                .succ_opt()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map_or(to, |d| d.and_utc());
            let last = next_day.min(to) - chrono::Duration::nanoseconds(1);
            let shards: Vec<Result<ShardEvents, ServiceError>> =
                futures::stream::iter(events_ranges(day, last))
                    .map(|(index, pk, sort)| async move {
                        let page = PageRequest {
                            limit: per_shard,
                            after: None,
                            descending: false,
                        };
                        let page = self.store.query_index(index, &pk, &sort, &page).await?;
                        let (events, firsts) = self.commit_events(&page.items).await?;
                        // Cut short: its commits after the last one read are unknown, so
                        // only what lies before that commit's millisecond is complete.
                        let frontier = page
                            .next
                            .and(firsts.iter().max().copied())
                            .map(|ms| ms.max(0));
                        Ok((events, frontier))
                    })
                    .buffer_unordered(SHARD_READS)
                    .collect()
                    .await;
            let mut events = Vec::new();
            let mut frontier: Option<i64> = None;
            for s in shards {
                let (e, f) = s?;
                events.extend(e);
                if let Some(f) = f {
                    frontier = Some(frontier.map_or(f, |x| x.min(f)));
                }
            }
            let complete =
                |e: &Event| frontier.is_none_or(|f| e.occurred_at.timestamp_millis() < f);
            events.retain(|e| {
                e.occurred_at >= from
                    && e.occurred_at < to
                    && after.is_none_or(|a| e.id > a)
                    && complete(e)
            });
            events.sort_by_key(|e| e.id);
            for e in events {
                if out.len() == limit as usize {
                    return Ok((out, true));
                }
                out.push(e);
            }
            match frontier {
                // The rest of this day on a later page, from the last id returned.
                Some(_) if !out.is_empty() => return Ok((out, true)),
                // Nothing complete yet (a millisecond crowded in one shard): read deeper.
                Some(_) if per_shard < 1000 => per_shard = (per_shard * 4).min(1000),
                Some(f) => {
                    return Err(ServiceError::corrupt(format!(
                        "more than 1000 commits of one event-index shard in millisecond {f}"
                    )));
                }
                None => day = next_day,
            }
        }
        Ok((out, false))
    }

    /// The events of these indexed items and of the other items of their commits (one more
    /// read), and the millisecond of each indexed commit.
    async fn commit_events(&self, keys: &[Key]) -> Result<(Vec<Event>, Vec<i64>), ServiceError> {
        let mut events = Vec::new();
        let mut firsts = Vec::new();
        if keys.is_empty() {
            return Ok((events, firsts));
        }
        let mut siblings = Vec::new();
        for item in self.store.get_many(keys).await?.iter().flatten() {
            // Both carrier kinds store their events under `events`.
            let c = decode::<Carried>(item)?;
            if let Some(m) = super::keys::member_of_key(&item.key) {
                siblings.extend(c.value.commit.siblings(&m));
            }
            if let Some(first) = c.value.events.first() {
                firsts.push(first.occurred_at.timestamp_millis());
            }
            events.extend(c.value.events);
        }
        // A carrier past its retention is gone, as its events are.
        if !siblings.is_empty() {
            for item in self.store.get_many(&siblings).await?.iter().flatten() {
                events.extend(decode::<Carried>(item)?.value.events);
            }
        }
        Ok((events, firsts))
    }

    /// Every event with `from ≤ occurred_at < to`, handed to `each` a page at a time in no
    /// order: each UTC day's shards are read once, one after another (a page in memory at a
    /// time), for a job folding a whole day.
    pub async fn for_events_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        mut each: impl FnMut(&Event),
    ) -> Result<(), ServiceError> {
        let mut start = from;
        while start < to {
            let next_day = start
                .date_naive()
                .succ_opt()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map_or(to, |d| d.and_utc());
            let last = next_day.min(to) - chrono::Duration::nanoseconds(1);
            for range in events_ranges(start, last) {
                self.events_of_range(range, |events| {
                    for e in events {
                        if e.occurred_at >= from && e.occurred_at < to {
                            each(&e);
                        }
                    }
                })
                .await?;
            }
            start = next_day;
        }
        Ok(())
    }

    /// The events of one range of the event index, a page at a time.
    async fn events_of_range(
        &self,
        range: (Index, String, SortKey),
        mut each: impl FnMut(Vec<Event>),
    ) -> Result<(), ServiceError> {
        let mut after = None;
        loop {
            let page = self.index_page(range.clone(), after).await?;
            let (events, _) = self.commit_events(&page.items).await?;
            if !events.is_empty() {
                each(events);
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_is_indexed_once_on_its_last_line_or_else_on_its_carrier() {
        let quiet = CommitLink {
            quiet: true,
            ..CommitLink::default()
        };
        let named = |lines: Vec<u64>, carrier| CommitLink {
            lines,
            carrier,
            quiet: false,
        };
        let (lines, carrier) = CommitLink::of_commit(&[4, 5, 6], Some(7));
        assert_eq!(
            lines,
            vec![quiet.clone(), quiet.clone(), named(vec![4, 5], Some(7))]
        );
        assert_eq!(carrier, quiet);
        let (lines, carrier) = CommitLink::of_commit(&[4], None);
        assert_eq!((lines, carrier), (vec![named(vec![], None)], quiet.clone()));
        let (lines, carrier) = CommitLink::of_commit(&[], Some(9));
        assert_eq!((lines, carrier), (vec![], CommitLink::default()));
    }
}
