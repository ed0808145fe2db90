//! The typed read of many keys in one round trip (`Reads` → `Fetched`) and the typed atomic
//! write (`Batch`): every record's conditions (absent, at this version, capped) and the answer a
//! failed condition gives.

use super::{Record, Replica, SIZE_SHARDS, SegmentSizes, Versioned, decode, encode, shard_of};
use crate::domain::member::Member;
use crate::domain::segment::SegmentId;
use crate::error::ServiceError;
use crate::store::{Cond, EXPIRES_AT, Item, Key, VERSION, Write};
use serde_json::Value;
use std::marker::PhantomData;

/// Keys to read in one round trip; each `add` returns the typed slot to take the answer from.
#[derive(Default)]
pub struct Reads {
    pub(super) keys: Vec<Key>,
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
    pub(super) items: Vec<Option<Item>>,
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

    /// A raw write of the table layer's own (the custom sizes' adds).
    pub(super) fn push_write(&mut self, w: Write) -> &mut Self {
        self.push(w)
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
    pub(super) fn finish(self) -> (Vec<Write>, Vec<Option<Answer>>) {
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
