//! The typed table layer between `service` and `store`. It owns the single-table layout: every
//! record kind states here, once, its key, its index attributes, its encoding and its cursor.
//! Services read typed, versioned records and write them through a typed batch; no key or index
//! string exists outside this module (CI greps for them). The writer and the reader of each
//! index call the same functions, so they cannot drift apart.

mod audit;
mod batch;
mod campaigns;
mod custom;
mod events;
#[cfg(test)]
mod item_size;
mod keys;
mod members;
mod receipts;
mod referrals;
mod rewards;
mod segments;

pub use batch::{Answer, Batch, Fetched, Reads, Slot};
pub use campaigns::{
    ASSIGNMENT_SHARDS, BUDGET_SLICES, BudgetSlice, POINTS_PER_BUDGET_SLICE, Slice,
};
pub use custom::{CUSTOM_SIZE_SHARDS, CurrentRun, EvaluationPart, LISTING_SHARDS, Listing};
pub use events::{CommitLink, EventCarrier, LedgerLine};
pub use keys::{
    DUE_SHARDS, EVENT_SHARDS, MEMBER_SHARDS, REPLICAS, Replica, SEGMENT_SHARDS, SIZE_SHARDS,
    member_shard, shard_of,
};
pub use members::{Gift, IdempotencyId, IdempotencyRecord, MemberIndex, PhoneClaim};
pub use receipts::{PurchaseRecord, RefundRecord};
pub use referrals::{
    CodeClaim, CodeGuesses, PaymentMark, PseudonymKey, REFERRAL_SHARDS, RefereeMark, Referrer,
    RetiredCode,
};
pub use rewards::{REWARD_SHARDS, RewardCount, RewardShard, Voucher};
pub use segments::{FLOW_SHARDS, SegmentSizes};

use crate::error::ServiceError;
use crate::store::{Index, Item, Key, Page, PageRequest, SortKey, Store};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
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

    /// Every record of a collection, oldest key first, a thousand per round trip.
    pub async fn list_all<R: Listed>(
        &self,
        owner: &R::Owner,
    ) -> Result<Vec<Versioned<R>>, ServiceError> {
        let (pk, sort) = R::range(owner);
        self.query_all(&pk, &sort).await
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
