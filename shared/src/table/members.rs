//! The member partition: the member record and its sparse indexes (the work lists the scheduled
//! jobs read, the segment and tier lists), phone claims, birthday gifts and idempotency records;
//! and the reads that page member lists, sharded or not.

use super::keys::{
    PROFILE, birthday_partition, date_sk, member_pk, points_due_day, points_due_partition,
    segment_index, segment_partition, shard_partition, tier_expiry_partition,
};
use super::{
    DUE_SHARDS, IndexEntry, Listed, Record, SEGMENT_SHARDS, SHARD_READS, Table, Versioned, decode,
    decode_cursor, encode_cursor, member_shard, shard_of,
};
use crate::domain::member::Member;
use crate::domain::segment::SegmentId;
use crate::domain::{MemberId, Phone, Points, Tier};
use crate::error::ServiceError;
use crate::store::{Index, Key, Page, PageRequest, SortKey, Store};
use chrono::{DateTime, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The member work lists the scheduled jobs read from the sparse indexes, and the segments.
#[derive(Clone, Debug)]
pub enum MemberIndex {
    /// Members whose birthday is this `MM-DD`.
    Birthday(String),
    /// Members whose tier expires in the month of `month`, on a day before `before`.
    TierExpiry { month: NaiveDate, before: NaiveDate },
    /// The members of a segment, by id.
    Segment(SegmentId),
    /// Every member of one shard (erased ones too, until the segments job has counted them out).
    Shard(u32),
    /// Members whose points are due (DESIGN.md "Points lots") in the month of `month`, on a
    /// day before `before`.
    PointsDue { month: NaiveDate, before: NaiveDate },
}

impl MemberIndex {
    /// The index partitions that together hold the list: one, or every shard of a sharded one.
    pub(super) fn ranges(&self) -> Vec<(Index, String, SortKey)> {
        match self {
            MemberIndex::Birthday(md) => vec![(Index::Gsi1, birthday_partition(md), SortKey::All)],
            MemberIndex::TierExpiry { month, before } => vec![(
                Index::Gsi2,
                tier_expiry_partition(*month),
                SortKey::Before(date_sk(*before)),
            )],
            MemberIndex::Segment(s) => (0..SEGMENT_SHARDS)
                .map(|n| (segment_index(*s), segment_partition(*s, n), SortKey::All))
                .collect(),
            MemberIndex::Shard(n) => vec![(Index::Gsi7, shard_partition(*n), SortKey::All)],
            // Within a month's partition the day alone sorts; a month wholly before `before`
            // is read whole.
            MemberIndex::PointsDue { month, before } => {
                let sort = if points_due_partition(*before, 0) == points_due_partition(*month, 0) {
                    SortKey::Before(points_due_day(*before))
                } else if before > month {
                    SortKey::All
                } else {
                    SortKey::Before(String::new())
                };
                (0..DUE_SHARDS)
                    .map(|n| (Index::Gsi8, points_due_partition(*month, n), sort.clone()))
                    .collect()
            }
        }
    }
}

// ---- records

impl Record for Member {
    type Id = MemberId;
    const KIND: &'static str = "member";
    fn key(id: &MemberId) -> Key {
        Key::new(member_pk(id), PROFILE)
    }
    /// GSI1 by birthday, GSI2 by tier expiry month, GSI4–6 by segment, GSI7 by shard, GSI8 by
    /// the day the points job is next due. Updates
    /// that change none of these keys (most balance updates) cost no index writes.
    fn index_entries(&self, id: &MemberId) -> Vec<IndexEntry> {
        let mut out = Vec::new();
        for s in self.membership().ids() {
            out.push(IndexEntry {
                index: segment_index(s),
                pk: segment_partition(s, shard_of(id, SEGMENT_SHARDS)),
                sk: id.to_string(),
            });
        }
        // A tombstone stays in its shard until the segments job has counted it out of its
        // segments, so the daily flows see it leave.
        if self.erased_at.is_none() || self.counted.is_some() {
            out.push(IndexEntry {
                index: Index::Gsi7,
                pk: shard_partition(member_shard(id)),
                sk: id.to_string(),
            });
        }
        if let Some(b) = self.birthday {
            out.push(IndexEntry {
                index: Index::Gsi1,
                pk: birthday_partition(&b.month_day()),
                sk: id.to_string(),
            });
        }
        // The day alone: index rows carry the table key, so equal days need no tie-breaker.
        if let Some(exp) = self.tier_expires_on {
            out.push(IndexEntry {
                index: Index::Gsi2,
                pk: tier_expiry_partition(exp),
                sk: date_sk(exp),
            });
        }
        if let Some(due) = self.points_due {
            out.push(IndexEntry {
                index: Index::Gsi8,
                pk: points_due_partition(due, shard_of(id, DUE_SHARDS)),
                sk: points_due_day(due),
            });
        }
        out
    }
}

/// Makes phones unique: enrolment and phone changes create it conditioned on absence.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PhoneClaim {
    pub member_id: MemberId,
}

impl Record for PhoneClaim {
    type Id = Phone;
    const KIND: &'static str = "phone";
    fn key(p: &Phone) -> Key {
        Key::new(format!("PHONE#{}", p.as_str()), "PHONE")
    }
}

/// One birthday gift per member and year.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gift {
    pub year: i32,
    pub celebrated_on: NaiveDate,
    pub tier: Tier,
    pub points: Points,
    pub voucher_code: Option<String>,
    pub given_at: DateTime<Utc>,
}

impl Record for Gift {
    type Id = (MemberId, i32);
    const KIND: &'static str = "gift";
    fn key((m, year): &(MemberId, i32)) -> Key {
        Key::new(member_pk(m), format!("GIFT#{year:04}"))
    }
}

/// What an `Idempotency-Key` request left: its digest and its response, until `expires_at`.
/// A key of a request on one member's data (`owner`) is stored in that member's partition, so
/// erasing the member finds and deletes it: a replay must not outlive the member's data (it may
/// hold an operator's note or a voucher code).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub request_hash: String,
    pub response: Value,
    pub expires_at: i64,
    /// The key's digest, on records in a member's partition (what erasure deletes them by).
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Names an idempotency record: the digest of the key's scope and text, and the member whose
/// data the request touched, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyId {
    pub owner: Option<MemberId>,
    pub digest: String,
}

const IDEMPOTENCY: &str = "IDEMPOTENCY#";

impl Record for IdempotencyRecord {
    type Id = IdempotencyId;
    const KIND: &'static str = "idempotency";
    fn key(i: &IdempotencyId) -> Key {
        match &i.owner {
            Some(m) => Key::new(member_pk(m), format!("{IDEMPOTENCY}{}", i.digest)),
            None => Key::new(format!("{IDEMPOTENCY}{}", i.digest), "IDEMPOTENCY"),
        }
    }
}

impl Listed for IdempotencyRecord {
    type Owner = MemberId;
    fn range(m: &MemberId) -> (String, SortKey) {
        (member_pk(m), SortKey::Prefix(IDEMPOTENCY.into()))
    }
}

// ---- segments: the cut points in force, one row per day, and each run's parts and flows.

#[cfg(test)]
impl MemberIndex {
    /// The partition of the list that holds this member's entry.
    fn range_for(&self, m: &MemberId) -> (Index, String, SortKey) {
        let shard = match self {
            MemberIndex::Segment(_) => shard_of(m, SEGMENT_SHARDS),
            MemberIndex::PointsDue { .. } => shard_of(m, DUE_SHARDS),
            _ => 0,
        };
        self.ranges().swap_remove(shard as usize)
    }
}

impl Table {
    /// One page of the members in an index list (a job's work list). `after` is the previous
    /// page's `next`, used inside one run only.
    pub async fn members_in(
        &self,
        which: &MemberIndex,
        after: Option<String>,
    ) -> Result<Page<MemberId>, ServiceError> {
        let page = self.member_keys_in(which, after).await?;
        Ok(Page {
            items: page
                .items
                .iter()
                .filter_map(super::keys::member_of_key)
                .collect(),
            next: page.next,
        })
    }

    /// How many members an index list holds: the same rows [`Table::member_page`] lists, so a
    /// segment's size is exactly what its listing returns. The shards are counted together.
    pub async fn count_members_in(&self, which: &MemberIndex) -> Result<u64, ServiceError> {
        let counts: Vec<Result<u64, ServiceError>> = futures::stream::iter(which.ranges())
            .map(|range| {
                self.index_pages(range)
                    .try_fold(0, |n, keys| async move { Ok(n + keys.len() as u64) })
            })
            .buffer_unordered(SHARD_READS)
            .collect()
            .await;
        counts.into_iter().sum()
    }

    /// Every key of an index range, a page (a thousand keys, one round trip) at a time.
    pub(super) fn index_pages(
        &self,
        (index, pk, sort): (Index, String, SortKey),
    ) -> impl futures::Stream<Item = Result<Vec<Key>, ServiceError>> + '_ {
        // The state is the next page's position; `None` once the last page was read.
        futures::stream::try_unfold(Some(None), move |state: Option<Option<String>>| {
            let (pk, sort) = (pk.clone(), sort.clone());
            async move {
                let Some(after) = state else {
                    return Ok(None);
                };
                let page = PageRequest {
                    limit: 1000,
                    after,
                    descending: false,
                };
                let page = self.store.query_index(index, &pk, &sort, &page).await?;
                Ok(Some((page.items, page.next.map(Some))))
            }
        })
    }

    /// One page of the members in an index list, read in one batch, and its cursor. A sharded
    /// list pages through its shards in turn (its order is by shard, then id).
    pub async fn member_page(
        &self,
        which: &MemberIndex,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<
        (
            Vec<Versioned<crate::domain::member::Member>>,
            Option<String>,
        ),
        ServiceError,
    > {
        let ranges = which.ranges();
        let (index, pk, _) = &ranges[0];
        let list = format!("{index:?}|{pk}");
        let after = cursor
            .map(|c| decode_cursor(super::segments::SEGMENT_KIND, &list, c))
            .transpose()?;
        let page = self.sharded_index_page(&ranges, limit, after).await?;
        let members = self.members_at(&page.items).await?;
        Ok((
            members,
            page.next
                .map(|n| encode_cursor(super::segments::SEGMENT_KIND, &list, &n)),
        ))
    }

    /// The members at these table keys, in one batch read (keys that no longer exist are
    /// skipped: an index row may outlive its item for a moment in DynamoDB).
    /// The members at these table keys, in one batch read (keys that no longer exist are
    /// skipped: an index row may outlive its item for a moment in DynamoDB).
    pub async fn members_at(
        &self,
        keys: &[Key],
    ) -> Result<Vec<Versioned<crate::domain::member::Member>>, ServiceError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.store
            .get_many(keys)
            .await?
            .iter()
            .flatten()
            .map(decode)
            .collect()
    }

    /// One page of raw index keys (for the jobs, which read the members in one batch).
    pub async fn member_keys_in(
        &self,
        which: &MemberIndex,
        after: Option<String>,
    ) -> Result<Page<Key>, ServiceError> {
        self.sharded_index_page(&which.ranges(), 100, after).await
    }

    /// The member an index row's table key belongs to.
    pub fn member_of_key(k: &Key) -> Option<MemberId> {
        super::keys::member_of_key(k)
    }

    /// How many partitions a member list spans: a job may read them in parallel parts
    /// ([`Table::member_keys_in_part`]).
    pub fn member_list_parts(which: &MemberIndex) -> usize {
        which.ranges().len()
    }

    /// One page of one partition of a member list (see [`Table::member_list_parts`]).
    pub async fn member_keys_in_part(
        &self,
        which: &MemberIndex,
        part: usize,
        after: Option<String>,
    ) -> Result<Page<Key>, ServiceError> {
        let ranges = which.ranges();
        let range = ranges
            .into_iter()
            .nth(part)
            .ok_or_else(|| ServiceError::corrupt(format!("no part {part} of {which:?}")))?;
        self.index_page(range, after).await
    }

    /// One page of keys across the partitions of a sharded index list ([`Table::sharded_page`]).
    async fn sharded_index_page(
        &self,
        ranges: &[(Index, String, SortKey)],
        limit: u32,
        after: Option<String>,
    ) -> Result<Page<Key>, ServiceError> {
        self.sharded_page(ranges.len(), limit, after, |shard, req| {
            let (index, pk, sort) = &ranges[shard];
            async move { Ok(self.store.query_index(*index, pk, sort, &req).await?) }
        })
        .await
    }

    /// One page across `shards` partitions, shard after shard (`fetch` reads one page of one):
    /// the position is the shard's number and the store's position inside it. A page is filled
    /// from the next shards when one runs out, so it is short only at the end.
    pub(super) async fn sharded_page<T, F, Fut>(
        &self,
        shards: usize,
        limit: u32,
        after: Option<String>,
        fetch: F,
    ) -> Result<Page<T>, ServiceError>
    where
        F: Fn(usize, PageRequest) -> Fut,
        Fut: std::future::Future<Output = Result<Page<T>, ServiceError>>,
    {
        let bad = || ServiceError::Store(crate::store::StoreError::BadCursor);
        let (mut shard, mut inner) = match after {
            None => (0, None),
            Some(a) => {
                let (n, rest) = a.split_once('|').ok_or_else(bad)?;
                let n: usize = n.parse().map_err(|_| bad())?;
                if n >= shards {
                    return Err(bad());
                }
                (n, (!rest.is_empty()).then(|| rest.to_owned()))
            }
        };
        let mut items = Vec::new();
        loop {
            let req = PageRequest {
                limit: limit - items.len() as u32,
                after: inner.take(),
                descending: false,
            };
            let page = fetch(shard, req).await?;
            items.extend(page.items);
            let next = match page.next {
                Some(n) => Some(format!("{shard}|{n}")),
                None if shard + 1 < shards => Some(format!("{}|", shard + 1)),
                None => None,
            };
            match next {
                Some(n) if items.len() < limit as usize && n.ends_with('|') => {
                    shard += 1;
                }
                next => return Ok(Page { items, next }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_expiry_index_is_written_and_read_with_the_same_partition() {
        let mut m = Member::new(MemberId::parse("m-1").unwrap(), "A".into(), Utc::now());
        let exp: NaiveDate = "2027-03-10".parse().unwrap();
        m.tier_expires_on = Some(exp);
        let written = m.index_entries(&m.id.clone());
        let (ix, pk, sort) = MemberIndex::TierExpiry {
            month: "2027-03-01".parse().unwrap(),
            before: "2027-03-11".parse().unwrap(),
        }
        .range_for(&m.id);
        let w = written.iter().find(|e| e.index == ix).unwrap();
        assert_eq!(w.pk, pk);
        assert!(
            sort.matches(&w.sk),
            "expired on 10 March is before 11 March"
        );
        let (_, _, not_yet) = MemberIndex::TierExpiry {
            month: "2027-03-31".parse().unwrap(),
            before: exp,
        }
        .range_for(&m.id);
        assert!(!not_yet.matches(&w.sk), "not before its own day");
    }

    #[test]
    fn points_due_index_is_written_and_read_with_the_same_partition() {
        let mut m = Member::new(MemberId::parse("m-1").unwrap(), "A".into(), Utc::now());
        let due: NaiveDate = "2027-03-10".parse().unwrap();
        m.points_due = Some(due);
        let written = m.index_entries(&m.id.clone());
        let w = written.iter().find(|e| e.index == Index::Gsi8).unwrap();
        let on_the_day = MemberIndex::PointsDue {
            month: "2027-03-01".parse().unwrap(),
            before: due.succ_opt().unwrap(),
        };
        let (ix, pk, sort) = on_the_day.range_for(&m.id);
        assert_eq!((ix, pk.as_str()), (Index::Gsi8, w.pk.as_str()));
        assert!(sort.matches(&w.sk), "due on 10 March: listed on 10 March");
        let (_, _, day_before) = MemberIndex::PointsDue {
            month: due,
            before: due,
        }
        .range_for(&m.id);
        assert!(!day_before.matches(&w.sk), "not listed the day before");
        // Run on the last day of a month: `before` is the first of the next; the whole month.
        let (_, pk, all) = MemberIndex::PointsDue {
            month: due,
            before: "2027-04-01".parse().unwrap(),
        }
        .range_for(&m.id);
        assert!(pk == w.pk && all.matches(&w.sk), "listed on 31 March");
        let (_, _, older) = MemberIndex::PointsDue {
            month: due,
            before: "2027-06-02".parse().unwrap(),
        }
        .range_for(&m.id);
        assert!(older.matches(&w.sk), "a month before today's is read whole");
        m.points_due = None;
        assert!(
            m.index_entries(&m.id.clone())
                .iter()
                .all(|e| e.index != Index::Gsi8)
        );
    }

    #[test]
    fn birthday_index_is_written_and_read_with_the_same_partition() {
        let mut m = Member::new(MemberId::parse("m-1").unwrap(), "A".into(), Utc::now());
        m.birthday = Some(crate::domain::Birthday::parse("02-29").unwrap());
        let (ix, pk, _) = MemberIndex::Birthday("02-29".into()).range_for(&m.id);
        let w = m
            .index_entries(&m.id.clone())
            .into_iter()
            .find(|e| e.index == ix)
            .unwrap();
        assert_eq!(w.pk, pk);
        assert_eq!(w.sk, m.id.to_string());
    }

    #[test]
    fn segment_indexes_are_written_and_read_with_the_same_partitions() {
        use crate::domain::segment::{Lifecycle, Segments, ValueSegment};
        let mut m = Member::new(MemberId::parse("m-1").unwrap(), "A".into(), Utc::now());
        m.segments = Some(Segments {
            lifecycle: Lifecycle::Dormant,
            value: Some(ValueSegment::AtRisk),
            rfm: None,
            churn: Some(crate::domain::segment::ChurnRisk::Possible),
        });
        let written = m.index_entries(&m.id.clone());
        for s in m.membership().ids() {
            let (ix, pk, _) = MemberIndex::Segment(s).range_for(&m.id);
            assert!(
                written.iter().any(|e| e.index == ix && e.pk == pk),
                "{s} not written where it is read"
            );
        }
        let (ix, pk, _) = MemberIndex::Shard(member_shard(&m.id)).range_for(&m.id);
        assert!(written.iter().any(|e| e.index == ix && e.pk == pk));
        // Erased: out of every segment, in its shard until the job counted it out.
        m.counted = Some(m.membership());
        let t = m.clone().erased(Utc::now());
        let left = t.index_entries(&t.id.clone());
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].index, Index::Gsi7);
        let mut gone = t;
        gone.counted = None;
        assert!(gone.index_entries(&gone.id.clone()).is_empty());
    }
}
