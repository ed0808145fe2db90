//! The typed table layer between `service` and `store`. It owns the single-table layout: every
//! record kind states here, once, its key, its index attributes, its encoding and its cursor.
//! Services read typed, versioned records and write them through a typed batch; no key or index
//! string exists outside this module (CI greps for them). The writer and the reader of each
//! index call the same functions, so they cannot drift apart.

#[cfg(test)]
mod item_size;
mod records;

pub use records::{
    ASSIGNMENT_SHARDS, BUDGET_SLICES, BudgetSlice, CodeClaim, CodeGuesses, CommitLink, DUE_SHARDS,
    EVENT_SHARDS, EventCarrier, FLOW_SHARDS, Gift, IdempotencyId, IdempotencyRecord, LedgerLine,
    MEMBER_SHARDS, MemberIndex, POINTS_PER_BUDGET_SLICE, PaymentMark, PhoneClaim, PseudonymKey,
    PurchaseRecord, REFERRAL_SHARDS, REPLICAS, REWARD_SHARDS, RefereeMark, Referrer, RefundRecord,
    Replica, RetiredCode, RewardCount, RewardShard, SEGMENT_SHARDS, SIZE_SHARDS, SegmentSizes,
    Slice, Voucher, member_shard, shard_of,
};

use crate::domain::MemberId;
use crate::domain::event::Event;
use crate::domain::member::Member;
use crate::domain::segment::SegmentId;
use crate::error::ServiceError;
use crate::store::{
    Cond, EXPIRES_AT, Index, Item, Key, Page, PageRequest, SortKey, Store, VERSION, Write,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::marker::PhantomData;
use std::sync::Arc;

/// A kind of record in the table.
pub trait Record: Serialize + DeserializeOwned {
    /// What names one record of this kind (a member id, a store and receipt …).
    type Id: ?Sized;
    /// Names the kind in cursors and error messages.
    const KIND: &'static str;
    fn key(id: &Self::Id) -> Key;
    /// The sparse-index attributes this record carries (none by default).
    fn index_entries(&self, _id: &Self::Id) -> Vec<IndexEntry> {
        Vec::new()
    }
}

/// A record kind stored as a time-ordered collection inside its owner's partition.
pub trait Listed: Record {
    type Owner: ?Sized;
    fn range(owner: &Self::Owner) -> (String, SortKey);
}

/// One index attribute pair on an item.
pub struct IndexEntry {
    pub index: Index,
    pub pk: String,
    pub sk: String,
}

/// A record together with the version it was read at.
#[derive(Clone, Debug)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

fn encode<R: Record>(id: &R::Id, r: &R) -> Result<Item, ServiceError> {
    let mut item = match serde_json::to_value(r) {
        Ok(Value::Object(attrs)) => Item {
            key: R::key(id),
            attrs,
        },
        Ok(_) => {
            return Err(ServiceError::corrupt(format!(
                "{} is not an object",
                R::KIND
            )));
        }
        Err(e) => return Err(ServiceError::unreadable(R::KIND, e)),
    };
    for e in r.index_entries(id) {
        item.attrs
            .insert(e.index.pk_attr().into(), Value::from(e.pk));
        item.attrs
            .insert(e.index.sk_attr().into(), Value::from(e.sk));
    }
    Ok(item)
}

fn decode<R: Record>(item: &Item) -> Result<Versioned<R>, ServiceError> {
    let value = serde_json::from_value(Value::Object(item.attrs.clone())).map_err(|e| {
        ServiceError::unreadable(format!("{} {} {}", R::KIND, item.key.pk, item.key.sk), e)
    })?;
    Ok(Versioned {
        value,
        version: item.version().unwrap_or(0),
    })
}

/// Keys to read in one round trip; each `add` returns the typed slot to take the answer from.
#[derive(Default)]
pub struct Reads {
    keys: Vec<Key>,
}

pub struct Slot<R> {
    at: usize,
    kind: PhantomData<fn() -> R>,
}

impl Reads {
    pub fn new() -> Self {
        Reads::default()
    }
    pub fn add<R: Record>(&mut self, id: &R::Id) -> Slot<R> {
        self.keys.push(R::key(id));
        Slot {
            at: self.keys.len() - 1,
            kind: PhantomData,
        }
    }
}

pub struct Fetched {
    items: Vec<Option<Item>>,
}

impl Fetched {
    pub fn get<R: Record>(&self, slot: &Slot<R>) -> Result<Option<Versioned<R>>, ServiceError> {
        self.items
            .get(slot.at)
            .and_then(Option::as_ref)
            .map(decode)
            .transpose()
    }
    pub fn exists<R>(&self, slot: &Slot<R>) -> bool {
        self.items.get(slot.at).is_some_and(Option::is_some)
    }
}

/// What a failed condition means when the failure is a fact, not a race (the phone is someone
/// else's, the member exists): the commit answers it at once instead of retrying.
pub type Answer = fn() -> ServiceError;

/// An atomic batch of typed writes.
#[derive(Default)]
pub struct Batch {
    writes: Vec<Write>,
    answers: Vec<Option<Answer>>,
    /// What the members saved in this batch move each segment's size by, per size shard:
    /// written with them (one add per shard, however many members of it moved).
    sizes: std::collections::BTreeMap<u32, std::collections::BTreeMap<SegmentId, i64>>,
}

impl Batch {
    pub fn new() -> Self {
        Batch::default()
    }
    pub fn len(&self) -> usize {
        self.writes.len() + self.size_adds()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&mut self, w: Write) -> &mut Self {
        self.writes.push(w);
        self.answers.push(None);
        self
    }

    /// A record that must not exist yet (version 1).
    pub fn create<R: Record>(&mut self, id: &R::Id, r: &R) -> Result<&mut Self, ServiceError> {
        self.save(id, r, None)
    }

    /// The next version of a record read at `prior` (`None`: it must not exist yet). Members
    /// go through [`Batch::save_member`], which keeps the segment sizes.
    pub fn save<R: Record>(
        &mut self,
        id: &R::Id,
        r: &R,
        prior: Option<u64>,
    ) -> Result<&mut Self, ServiceError> {
        if R::KIND == Member::KIND {
            return Err(ServiceError::corrupt(
                "a member saved without its segment sizes (use save_member)",
            ));
        }
        self.save_any(id, r, prior)
    }

    /// A member's next version (`prior` as read; `None`: a new member), and the segment sizes
    /// its change of membership moves, in the same commit (DESIGN.md "Segment sizes"). A
    /// member written before sizes were kept is counted in whole now.
    pub fn save_member(
        &mut self,
        prior: Option<&Versioned<Member>>,
        m: &mut Member,
    ) -> Result<&mut Self, ServiceError> {
        let before = prior
            .filter(|p| p.value.sized)
            .map(|p| p.value.membership())
            .unwrap_or_default();
        let moves = self.sizes.entry(shard_of(&m.id, SIZE_SHARDS)).or_default();
        for s in before.ids() {
            *moves.entry(s).or_default() -= 1;
        }
        for s in m.membership().ids() {
            *moves.entry(s).or_default() += 1;
        }
        m.sized = true;
        self.save_any(&m.id.clone(), &*m, prior.map(|p| p.version))
    }

    fn save_any<R: Record>(
        &mut self,
        id: &R::Id,
        r: &R,
        prior: Option<u64>,
    ) -> Result<&mut Self, ServiceError> {
        let mut item = encode(id, r)?;
        let (next, cond) = match prior {
            Some(v) => (v + 1, Cond::Version(v)),
            None => (1, Cond::Absent),
        };
        item.attrs.insert(VERSION.into(), Value::from(next));
        Ok(self.push(Write::Put { item, cond }))
    }

    /// A record written whatever is there: for summaries a re-run recomputes in full.
    pub fn put<R: Record>(&mut self, id: &R::Id, r: &R) -> Result<&mut Self, ServiceError> {
        let mut item = encode(id, r)?;
        item.attrs.insert(VERSION.into(), Value::from(1));
        Ok(self.push(Write::Put {
            item,
            cond: Cond::Always,
        }))
    }

    /// A record that expires (table TTL on `expires_at`): it may replace an expired one that
    /// TTL has not swept yet.
    pub fn create_expiring<R: Record>(
        &mut self,
        id: &R::Id,
        r: &R,
        now_epoch: i64,
    ) -> Result<&mut Self, ServiceError> {
        let item = encode(id, r)?;
        if !item.attrs.contains_key(EXPIRES_AT) {
            return Err(ServiceError::corrupt(format!(
                "{} has no {EXPIRES_AT}",
                R::KIND
            )));
        }
        Ok(self.push(Write::Put {
            item,
            cond: Cond::AbsentOrExpiredBefore(now_epoch),
        }))
    }

    /// Every copy of a replicated record, as the next version of the copies read at `prior`
    /// (copies are only ever written together, so they share their versions).
    pub fn save_replicas<R: Record<Id = Replica>>(
        &mut self,
        r: &R,
        prior: Option<u64>,
    ) -> Result<&mut Self, ServiceError> {
        for c in Replica::all() {
            self.save(&c, r, prior)?;
        }
        Ok(self)
    }

    /// Every copy of a replicated record, whatever is there (see [`Batch::put`]).
    pub fn put_replicas<R: Record<Id = Replica>>(
        &mut self,
        r: &R,
    ) -> Result<&mut Self, ServiceError> {
        for c in Replica::all() {
            self.put(&c, r)?;
        }
        Ok(self)
    }

    /// Takes `amount` from a slice whose cap was read as `cap` ([`Write::Take`]): no version
    /// condition, so concurrent takes from one slice all land while it has room.
    pub fn take<R: Record>(&mut self, id: &R::Id, amount: i64, cap: i64) -> &mut Self {
        self.push(Write::Take {
            key: R::key(id),
            amount,
            cap,
        })
    }

    /// Deletes a record read at `version`.
    pub fn delete<R: Record>(&mut self, id: &R::Id, version: u64) -> &mut Self {
        self.push(Write::Delete {
            key: R::key(id),
            cond: Cond::Version(version),
        })
    }

    /// Deletes a record whatever its state (an unversioned one, such as an idempotency record;
    /// deleting what is already gone is no error).
    pub fn remove<R: Record>(&mut self, id: &R::Id) -> &mut Self {
        self.push(Write::Delete {
            key: R::key(id),
            cond: Cond::Always,
        })
    }

    /// Writes nothing, but fails the batch unless the record is still at `version`.
    pub fn check<R: Record>(&mut self, id: &R::Id, version: u64) -> &mut Self {
        self.push(Write::Check {
            key: R::key(id),
            cond: Cond::Version(version),
        })
    }

    /// If the last write's condition fails, the commit answers `answer` at once.
    pub fn or_refuse(&mut self, answer: Answer) -> &mut Self {
        if let Some(last) = self.answers.last_mut() {
            *last = Some(answer);
        }
        self
    }

    pub fn append(&mut self, other: Batch) -> &mut Self {
        self.writes.extend(other.writes);
        self.answers.extend(other.answers);
        for (shard, moves) in other.sizes {
            let mine = self.sizes.entry(shard).or_default();
            for (s, n) in moves {
                *mine.entry(s).or_default() += n;
            }
        }
        self
    }

    /// The writes to commit, the segment sizes' adds last, and what each failed condition
    /// answers.
    fn finish(self) -> (Vec<Write>, Vec<Option<Answer>>) {
        let Batch {
            mut writes,
            mut answers,
            sizes,
        } = self;
        for (shard, moves) in sizes {
            let amounts: Vec<(String, i64)> = moves
                .into_iter()
                .filter(|(_, n)| *n != 0)
                .map(|(s, n)| (SegmentSizes::attr(s), n))
                .collect();
            if !amounts.is_empty() {
                writes.push(Write::Add {
                    key: SegmentSizes::key(&shard),
                    amounts,
                });
                answers.push(None);
            }
        }
        (writes, answers)
    }

    /// The size shards this batch's members moved (a member who left a segment for another and
    /// came back moves nothing).
    fn size_adds(&self) -> usize {
        self.sizes
            .values()
            .filter(|moves| moves.values().any(|n| *n != 0))
            .count()
    }

    /// The raw writes, for the benchmark's bulk seeding only.
    pub fn into_writes(self) -> Vec<Write> {
        self.finish().0
    }
}

/// One shard's events of a window, and the millisecond it was cut short at (if it was).
type ShardEvents = (Vec<Event>, Option<i64>);

/// How many partitions of a sharded list are read at once.
const SHARD_READS: usize = 16;

/// The table: typed reads, lists and commits over any [`Store`].
#[derive(Clone)]
pub struct Table {
    store: Arc<dyn Store>,
}

/// A cursor is opaque to clients: the record kind, a digest of the list it pages (the index and
/// partition), and the store's position, base64url. A cursor of another list (another member's
/// ledger, another segment), or one this API never issued, is refused with 400; a position
/// outside the list's range is refused by the store, once for both backends.
fn encode_cursor(kind: &str, list: &str, position: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}\n{}\n{position}", list_digest(list)))
}

fn decode_cursor(kind: &str, list: &str, cursor: &str) -> Result<String, ServiceError> {
    let bad = || ServiceError::Store(crate::store::StoreError::BadCursor);
    let text =
        String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?).map_err(|_| bad())?;
    let mut parts = text.splitn(3, '\n');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(k), Some(l), Some(position)) if k == kind && l == list_digest(list) => {
            Ok(position.to_owned())
        }
        _ => Err(bad()),
    }
}

/// A short digest naming a list (the partition key a cursor pages, with its index): a cursor
/// carries it rather than the key itself.
fn list_digest(list: &str) -> String {
    crate::domain::digest::sha256_hex(&[list.as_bytes()])[..16].to_owned()
}

impl Table {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Table { store }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub async fn get<R: Record>(&self, id: &R::Id) -> Result<Option<Versioned<R>>, ServiceError> {
        self.store
            .get(&R::key(id))
            .await?
            .as_ref()
            .map(decode)
            .transpose()
    }

    /// Every key of `reads` in one round trip.
    pub async fn read(&self, reads: &Reads) -> Result<Fetched, ServiceError> {
        Ok(Fetched {
            items: self.store.get_many(&reads.keys).await?,
        })
    }

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

    /// One page of a collection, newest first.
    pub async fn list<R: Listed>(
        &self,
        owner: &R::Owner,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<R>, Option<String>), ServiceError> {
        let (items, next) = self.list_versioned::<R>(owner, limit, cursor).await?;
        Ok((items.into_iter().map(|v| v.value).collect(), next))
    }

    /// As [`Table::list`], with each record's version, for rewriting a collection in place.
    pub async fn list_versioned<R: Listed>(
        &self,
        owner: &R::Owner,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<Versioned<R>>, Option<String>), ServiceError> {
        let (pk, sort) = R::range(owner);
        let after = cursor.map(|c| decode_cursor(R::KIND, &pk, c)).transpose()?;
        let page = self
            .store
            .query(&pk, &sort, &PageRequest::newest_first(limit, after))
            .await?;
        let items = page
            .items
            .iter()
            .map(decode::<R>)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((items, page.next.map(|n| encode_cursor(R::KIND, &pk, &n))))
    }

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
                .filter_map(records::member_of_key)
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
    fn index_pages(
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
            .map(|c| decode_cursor(records::SEGMENT_KIND, &list, c))
            .transpose()?;
        let page = self.sharded_index_page(&ranges, limit, after).await?;
        let members = self.members_at(&page.items).await?;
        Ok((
            members,
            page.next
                .map(|n| encode_cursor(records::SEGMENT_KIND, &list, &n)),
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
        records::member_of_key(k)
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

    /// One page of keys across the partitions of a sharded list, shard after shard: the
    /// position is the shard's number and the store's position inside it. A page is filled
    /// from the next shards when one runs out, so it is short only at the end.
    async fn sharded_index_page(
        &self,
        ranges: &[(Index, String, SortKey)],
        limit: u32,
        after: Option<String>,
    ) -> Result<Page<Key>, ServiceError> {
        let bad = || ServiceError::Store(crate::store::StoreError::BadCursor);
        let (mut shard, mut inner) = match after {
            None => (0, None),
            Some(a) => {
                let (n, rest) = a.split_once('|').ok_or_else(bad)?;
                let n: usize = n.parse().map_err(|_| bad())?;
                if n >= ranges.len() {
                    return Err(bad());
                }
                (n, (!rest.is_empty()).then(|| rest.to_owned()))
            }
        };
        let mut items = Vec::new();
        loop {
            let (index, pk, sort) = &ranges[shard];
            let page = PageRequest {
                limit: limit - items.len() as u32,
                after: inner.take(),
                descending: false,
            };
            let page = self.store.query_index(*index, pk, sort, &page).await?;
            items.extend(page.items);
            let next = match page.next {
                Some(n) => Some(format!("{shard}|{n}")),
                None if shard + 1 < ranges.len() => Some(format!("{}|", shard + 1)),
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

    /// The day rows `from..=to`, oldest first (at most 400).
    pub async fn segment_days(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<crate::domain::segment::SegmentDay>, ServiceError> {
        self.days(records::days_range(from, to)).await
    }

    /// The daily figures of `from..=to` (at most 400 days), oldest first.
    pub async fn daily_figures(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<crate::domain::daily::DailyFigures>, ServiceError> {
        self.days(records::daily_range(from, to)).await
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
            Some(b) => records::days_before(b),
            None => records::all_days(),
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

    /// Every flow a segments run recorded.
    pub async fn segment_flows(
        &self,
        run: &crate::domain::segment::RunId,
    ) -> Result<Vec<crate::domain::segment::SegmentFlow>, ServiceError> {
        Ok(self
            .query_all_of(records::flows_ranges(run))
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }

    /// Every record of several partition ranges (the shards of one collection), a few read at
    /// once, in no order across them.
    async fn query_all_of<R: Record>(
        &self,
        ranges: Vec<(String, SortKey)>,
    ) -> Result<Vec<Versioned<R>>, ServiceError> {
        let parts: Vec<Result<Vec<Versioned<R>>, ServiceError>> = futures::stream::iter(ranges)
            .map(|(pk, sort)| async move { self.query_all::<R>(&pk, &sort).await })
            .buffer_unordered(SHARD_READS)
            .collect()
            .await;
        let mut out = Vec::new();
        for p in parts {
            out.extend(p?);
        }
        Ok(out)
    }

    /// Every record of a partition range, oldest key first, a thousand per round trip.
    async fn query_all<R: Record>(
        &self,
        pk: &str,
        sort: &SortKey,
    ) -> Result<Vec<Versioned<R>>, ServiceError> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .query(
                    pk,
                    sort,
                    &PageRequest {
                        limit: 1000,
                        after,
                        descending: false,
                    },
                )
                .await?;
            for i in &page.items {
                out.push(decode(i)?);
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// One page (100 keys) of an index range, in index order.
    async fn index_page(
        &self,
        (index, pk, sort): (Index, String, SortKey),
        after: Option<String>,
    ) -> Result<Page<Key>, ServiceError> {
        let page = PageRequest {
            limit: 100,
            after,
            descending: false,
        };
        Ok(self.store.query_index(index, &pk, &sort, &page).await?)
    }

    /// One page of the active catalog, newest first, and its cursor.
    pub async fn catalog(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<crate::domain::reward::Reward>, Option<String>), ServiceError> {
        self.indexed_page(
            records::catalog_range(),
            records::CATALOG_KIND,
            limit,
            cursor,
        )
        .await
    }

    /// One page of the campaigns, newest first, and its cursor.
    pub async fn campaigns(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<crate::domain::campaign::Campaign>, Option<String>), ServiceError> {
        self.indexed_page(
            records::campaigns_range(),
            records::CAMPAIGN_KIND,
            limit,
            cursor,
        )
        .await
    }

    /// One page of the referrals held for review, newest first, and its cursor.
    pub async fn held_referrals(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<crate::domain::referral::Referral>, Option<String>), ServiceError> {
        self.indexed_page(
            records::held_referrals_range(),
            records::REFERRAL_KIND,
            limit,
            cursor,
        )
        .await
    }

    /// Every referral applied in a month (`YYYY-MM`, UTC), from all its partitions: the keys a
    /// thousand at a time, the referrals a hundred per batch read.
    pub async fn referrals_applied_in(
        &self,
        month: &str,
    ) -> Result<Vec<crate::domain::referral::Referral>, ServiceError> {
        let mut keys = Vec::new();
        for range in records::referral_month_ranges(month) {
            let mut pages = std::pin::pin!(self.index_pages(range));
            while let Some(page) = pages.try_next().await? {
                keys.extend(page);
            }
        }
        let mut out = Vec::new();
        for chunk in keys.chunks(100) {
            for item in self.store.get_many(chunk).await?.iter().flatten() {
                out.push(decode(item)?.value);
            }
        }
        Ok(out)
    }

    /// One page of the records an index range lists, newest first, read in one batch.
    async fn indexed_page<R: Record>(
        &self,
        (index, pk, sort): (Index, String, SortKey),
        kind: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<R>, Option<String>), ServiceError> {
        let list = format!("{index:?}|{pk}");
        let after = cursor.map(|c| decode_cursor(kind, &list, c)).transpose()?;
        let page = self
            .store
            .query_index(index, &pk, &sort, &PageRequest::newest_first(limit, after))
            .await?;
        let items = if page.items.is_empty() {
            Vec::new()
        } else {
            self.store.get_many(&page.items).await?
        };
        let records = items
            .iter()
            .flatten()
            .map(|i| decode::<R>(i).map(|v| v.value))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((records, page.next.map(|n| encode_cursor(kind, &list, &n))))
    }

    /// Every assignment of a campaign, from all its partitions (read a few at once).
    pub async fn assignments(
        &self,
        c: &crate::domain::CampaignId,
    ) -> Result<Vec<Versioned<crate::domain::campaign::Assignment>>, ServiceError> {
        self.query_all_of(records::assignment_ranges(c)).await
    }

    /// Every record of a collection, oldest key first, a thousand per round trip.
    pub async fn list_all<R: Listed>(
        &self,
        owner: &R::Owner,
    ) -> Result<Vec<Versioned<R>>, ServiceError> {
        let (pk, sort) = R::range(owner);
        self.query_all(&pk, &sort).await
    }

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
        let (pk, sort, position) = records::after_seq::<R>(m, after);
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
        let mut per_shard = (2 * limit).div_ceil(records::EVENT_SHARDS).max(10);
        while day < to {
            let next_day = day
                .date_naive()
                .succ_opt()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map_or(to, |d| d.and_utc());
            let last = next_day.min(to) - chrono::Duration::nanoseconds(1);
            let shards: Vec<Result<ShardEvents, ServiceError>> =
                futures::stream::iter(records::events_ranges(day, last))
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
            let c = decode::<records::Carried>(item)?;
            if let Some(m) = records::member_of_key(&item.key) {
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
                events.extend(decode::<records::Carried>(item)?.value.events);
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
            for range in records::events_ranges(start, last) {
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

    /// Commits the batch (one round trip). A failed condition that the batch declared a fact
    /// answers with its domain error at once; any other failed condition is a lost race, and
    /// comes back retryable so the caller reads again and decides again.
    pub async fn commit(&self, batch: Batch) -> Result<(), ServiceError> {
        let (writes, answers) = batch.finish();
        match self.store.commit(writes).await {
            Ok(()) => Ok(()),
            Err(crate::store::StoreError::ConditionFailed { index: Some(i) })
                if answers.get(i).copied().flatten().is_some() =>
            {
                Err(answers[i].expect("checked above")())
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_belong_to_their_kind_and_their_list() {
        let c = encode_cursor("ledger", "MEMBER#a", "LEDGER#x");
        assert_eq!(decode_cursor("ledger", "MEMBER#a", &c).unwrap(), "LEDGER#x");
        assert!(decode_cursor("redemption", "MEMBER#a", &c).is_err());
        assert!(decode_cursor("ledger", "MEMBER#b", &c).is_err());
        assert!(decode_cursor("ledger", "MEMBER#a", "!!!").is_err());
        assert!(
            decode_cursor("ledger", "MEMBER#a", &URL_SAFE_NO_PAD.encode("no newline")).is_err()
        );
        // The old form (kind and position only) names no list.
        assert!(
            decode_cursor(
                "ledger",
                "MEMBER#a",
                &URL_SAFE_NO_PAD.encode("ledger\nLEDGER#x")
            )
            .is_err()
        );
    }
}
