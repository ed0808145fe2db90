//! Counts store round trips and items read, so tests and the benchmark can state "1 read + 1
//! write per purchase" and "the birthday job reads 1/365 of members" as measurements; with a
//! [`Heat`] model attached, also which partition keys each read and write touched.

use super::heat::{Heat, Target};
use super::{Index, IndexPosition, Item, Key, Range, Store, StoreResult, Write};
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default, Debug)]
pub struct RoundTrips {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub items_read: AtomicU64,
    /// Items put, deleted or checked by the commits.
    pub items_written: AtomicU64,
    /// Table write units the commits would cost in DynamoDB ([`super::write_units`]).
    pub write_units: AtomicU64,
}

impl RoundTrips {
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.reads.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
            self.items_read.load(Ordering::Relaxed),
        )
    }
}

pub struct CountingStore<S> {
    inner: S,
    pub counts: Arc<RoundTrips>,
    heat: Option<Arc<Heat>>,
}

impl<S> CountingStore<S> {
    pub fn new(inner: S) -> Self {
        CountingStore {
            inner,
            counts: Arc::default(),
            heat: None,
        }
    }

    /// Also records every partition key touched in `heat` (the benchmark's scenarios). A commit
    /// then reads the items it replaces first, outside the counts, to know which index entries
    /// change: a simulation's cost, never the service's.
    pub fn with_heat(inner: S, heat: Arc<Heat>) -> Self {
        CountingStore {
            heat: Some(heat),
            ..CountingStore::new(inner)
        }
    }
}

#[async_trait]
impl<S: Store> Store for CountingStore<S> {
    async fn get_many(&self, keys: &[Key]) -> StoreResult<Vec<Option<Item>>> {
        self.counts.reads.fetch_add(1, Ordering::Relaxed);
        let r = self.inner.get_many(keys).await?;
        if let Some(h) = &self.heat {
            h.got(keys, &r);
        }
        let n = r.iter().filter(|i| i.is_some()).count() as u64;
        self.counts.items_read.fetch_add(n, Ordering::Relaxed);
        Ok(r)
    }
    async fn query_range(
        &self,
        pk: &str,
        range: Range<'_>,
        after: Option<&str>,
    ) -> StoreResult<(Vec<Item>, bool)> {
        self.counts.reads.fetch_add(1, Ordering::Relaxed);
        let r = self.inner.query_range(pk, range, after).await?;
        if let Some(h) = &self.heat {
            h.queried(Target::Table, pk, r.0.iter().map(super::item_size).sum());
        }
        self.counts
            .items_read
            .fetch_add(r.0.len() as u64, Ordering::Relaxed);
        Ok(r)
    }
    async fn query_index_range(
        &self,
        index: Index,
        pk: &str,
        range: Range<'_>,
        after: Option<&IndexPosition>,
    ) -> StoreResult<(Vec<IndexPosition>, bool)> {
        self.counts.reads.fetch_add(1, Ordering::Relaxed);
        let r = self
            .inner
            .query_index_range(index, pk, range, after)
            .await?;
        if let Some(h) = &self.heat {
            // Keys-only entries: the index key, its sort key and the table key.
            let bytes =
                r.0.iter()
                    .map(|p| pk.len() + p.isk.len() + p.key.pk.len() + p.key.sk.len() + 16)
                    .sum();
            h.queried(Target::Index(index), pk, bytes);
        }
        self.counts
            .items_read
            .fetch_add(r.0.len() as u64, Ordering::Relaxed);
        Ok(r)
    }
    async fn scan(
        &self,
        segment: u32,
        total: u32,
        after: Option<&Key>,
        limit: u32,
    ) -> StoreResult<(Vec<Item>, Option<Key>)> {
        self.counts.reads.fetch_add(1, Ordering::Relaxed);
        let r = self.inner.scan(segment, total, after, limit).await?;
        self.counts
            .items_read
            .fetch_add(r.0.len() as u64, Ordering::Relaxed);
        Ok(r)
    }
    async fn commit(&self, writes: Vec<Write>) -> StoreResult<()> {
        self.counts.writes.fetch_add(1, Ordering::Relaxed);
        self.counts
            .items_written
            .fetch_add(writes.len() as u64, Ordering::Relaxed);
        self.counts
            .write_units
            .fetch_add(super::write_units(&writes), Ordering::Relaxed);
        let Some(h) = &self.heat else {
            return self.inner.commit(writes).await;
        };
        let keys: Vec<Key> = writes.iter().map(|w| w.key().clone()).collect();
        let before = self.inner.get_many(&keys).await?;
        let result = self.inner.commit(writes.clone()).await;
        h.committed(&writes, &before, result.is_ok());
        result
    }
}
