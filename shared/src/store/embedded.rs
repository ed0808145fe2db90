//! The embedded backend: one redb file (or redb's in-memory backend for throwaway stores).
//! redb gives ACID write transactions that commit durably; there is one writer at a time, so a
//! batch checks every condition and applies every write inside one transaction.
//!
//! Layout: table `items` maps `pk \0 sk` to the attributes as JSON; table `index` holds
//! `<index byte> \0 ipk \0 isk \0 pk \0 sk` for each item carrying an index's attributes. Keys
//! order by bytes, which is how DynamoDB orders string keys too.

use super::{
    Index, IndexPosition, Item, Key, Range, SortKey, Store, StoreError, StoreResult, USED, VERSION,
    Write, validate_batch,
};
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::{Map, Value};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

const ITEMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("items");
const INDEX: TableDefinition<&[u8], &[u8]> = TableDefinition::new("index");

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::backend(e)
}

fn item_key(pk: &str, sk: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(pk.len() + sk.len() + 1);
    k.extend_from_slice(pk.as_bytes());
    k.push(0);
    k.extend_from_slice(sk.as_bytes());
    k
}

fn split_item_key(k: &[u8]) -> StoreResult<Key> {
    let s = std::str::from_utf8(k).map_err(backend)?;
    let (pk, sk) = s
        .split_once('\0')
        .ok_or_else(|| StoreError::broken("malformed item key"))?;
    Ok(Key::new(pk, sk))
}

fn index_tag(index: Index) -> u8 {
    match index {
        Index::Gsi1 => b'1',
        Index::Gsi2 => b'2',
        Index::Gsi3 => b'3',
        Index::Gsi4 => b'4',
        Index::Gsi5 => b'5',
        Index::Gsi6 => b'6',
        Index::Gsi7 => b'7',
        Index::Gsi8 => b'8',
        Index::Gsi9 => b'9',
    }
}

fn index_prefix(index: Index, ipk: &str) -> Vec<u8> {
    let mut k = vec![index_tag(index), 0];
    k.extend_from_slice(ipk.as_bytes());
    k.push(0);
    k
}

fn index_entry(index: Index, ipk: &str, isk: &str, key: &Key) -> Vec<u8> {
    let mut k = index_prefix(index, ipk);
    k.extend_from_slice(isk.as_bytes());
    k.push(0);
    k.extend_from_slice(&item_key(&key.pk, &key.sk));
    k
}

/// The smallest byte string greater than every string starting with `p` (`None`: no bound).
fn successor(p: &[u8]) -> Option<Vec<u8>> {
    let mut v = p.to_vec();
    while let Some(last) = v.pop() {
        if last < 0xff {
            v.push(last + 1);
            return Some(v);
        }
    }
    None
}

/// The byte range of a partition (`prefix` already ends in the `\0` separator) narrowed by the
/// sort-key condition and the page position (`after` is a raw sort-key suffix).
fn bounds(
    prefix: &[u8],
    sort: &SortKey,
    after: Option<&[u8]>,
    descending: bool,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let with = |s: &[u8]| [prefix, s].concat();
    let mut lo = Bound::Included(prefix.to_vec());
    let mut hi = match successor(prefix) {
        Some(s) => Bound::Excluded(s),
        None => Bound::Unbounded,
    };
    match sort {
        SortKey::All => {}
        SortKey::Prefix(p) => {
            lo = Bound::Included(with(p.as_bytes()));
            if let Some(s) = successor(&with(p.as_bytes())) {
                hi = Bound::Excluded(s);
            }
        }
        SortKey::Before(b) => hi = Bound::Excluded(with(b.as_bytes())),
        SortKey::Between(from, to) => {
            lo = Bound::Included(with(from.as_bytes()));
            // Past every key whose sort key is `to`: an index entry continues with a 0 byte.
            hi = Bound::Excluded([with(to.as_bytes()).as_slice(), &[1]].concat());
        }
    }
    if let Some(a) = after {
        if descending {
            hi = Bound::Excluded(with(a));
        } else {
            lo = Bound::Excluded(with(a));
        }
    }
    (lo, hi)
}

/// Which scan segment a partition belongs to (FNV-1a of the partition key): a partition's items
/// stay together, as in DynamoDB.
fn segment_of(pk: &str, total: u32) -> u32 {
    let h = pk.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h % u64::from(total)) as u32
}

fn decode(key: Key, bytes: &[u8]) -> StoreResult<Item> {
    let attrs: Map<String, Value> = serde_json::from_slice(bytes).map_err(backend)?;
    Ok(Item { key, attrs })
}

fn as_ref_bound(x: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match x {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn as_ref_bounds(b: &(Bound<Vec<u8>>, Bound<Vec<u8>>)) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (as_ref_bound(&b.0), as_ref_bound(&b.1))
}

impl EmbeddedStore {
    /// Opens (or creates) the store at `path`; parent directories are created.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(backend)?;
        }
        let db = Database::create(path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        Self::init(db)
    }

    /// A store that lives only as long as the process.
    pub fn in_memory() -> StoreResult<Self> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(backend)?;
        Self::init(db)
    }

    fn init(db: Database) -> StoreResult<Self> {
        let tx = db.begin_write().map_err(backend)?;
        tx.open_table(ITEMS).map_err(backend)?;
        tx.open_table(INDEX).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(EmbeddedStore { db: Arc::new(db) })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(backend)?
    }

    /// A page of `table` within `b`, in `range`'s order and up to its limit (one more is read
    /// to tell whether there are more), each entry made into a `T` by `read`.
    async fn scan<T: Send + 'static>(
        &self,
        table: TableDefinition<'static, &'static [u8], &'static [u8]>,
        b: (Bound<Vec<u8>>, Bound<Vec<u8>>),
        range: Range<'_>,
        read: impl Fn(&[u8], &[u8]) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<(Vec<T>, bool)> {
        let (limit, desc) = (range.limit as usize, range.descending);
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(backend)?;
            let entries = tx.open_table(table).map_err(backend)?;
            let range = entries.range::<&[u8]>(as_ref_bounds(&b)).map_err(backend)?;
            let iter: Box<dyn Iterator<Item = _>> = if desc {
                Box::new(range.rev())
            } else {
                Box::new(range)
            };
            let mut out = Vec::new();
            for entry in iter.take(limit + 1) {
                let (k, v) = entry.map_err(backend)?;
                out.push(read(k.value(), v.value())?);
            }
            let more = out.len() > limit;
            out.truncate(limit);
            Ok((out, more))
        })
        .await
    }
}

fn apply(
    items: &mut redb::Table<&[u8], &[u8]>,
    index: &mut redb::Table<&[u8], &[u8]>,
    write: &Write,
    current: Option<&Item>,
) -> StoreResult<()> {
    // Index entries of the old version go first; the new version adds its own.
    if !matches!(write, Write::Check { .. })
        && let Some(old) = current
    {
        for ix in Index::ALL {
            if let Some((ipk, isk)) = old.index_key(ix) {
                index
                    .remove(index_entry(ix, &ipk, &isk, &old.key).as_slice())
                    .map_err(backend)?;
            }
        }
    }
    match write {
        Write::Put { item, .. } => {
            let bytes = serde_json::to_vec(&item.attrs).map_err(backend)?;
            items
                .insert(
                    item_key(&item.key.pk, &item.key.sk).as_slice(),
                    bytes.as_slice(),
                )
                .map_err(backend)?;
            for ix in Index::ALL {
                if let Some((ipk, isk)) = item.index_key(ix) {
                    index
                        .insert(
                            index_entry(ix, &ipk, &isk, &item.key).as_slice(),
                            [].as_slice(),
                        )
                        .map_err(backend)?;
                }
            }
        }
        Write::Delete { key, .. } => {
            items
                .remove(item_key(&key.pk, &key.sk).as_slice())
                .map_err(backend)?;
        }
        Write::Check { .. } => {}
        Write::Take { key, .. } | Write::Add { key, .. } => {
            // `holds` found the item a take needs; an add starts one from nothing. Neither
            // changes index attributes.
            let empty = Item {
                key: key.clone(),
                attrs: Default::default(),
            };
            let amounts = match write {
                Write::Take { amount, .. } => vec![(USED.to_owned(), *amount)],
                Write::Add { amounts, .. } => amounts.clone(),
                _ => Vec::new(),
            };
            let cur = match current {
                Some(cur) => cur,
                None if matches!(write, Write::Add { .. }) => &empty,
                None => return Err(StoreError::broken("a take of a missing item")),
            };
            let mut attrs = cur.attrs.clone();
            for (attr, amount) in amounts {
                let was = attrs.get(&attr).and_then(Value::as_i64).unwrap_or(0);
                attrs.insert(attr, Value::from(was + amount));
            }
            attrs.insert(VERSION.into(), Value::from(cur.version().unwrap_or(0) + 1));
            let bytes = serde_json::to_vec(&attrs).map_err(backend)?;
            items
                .insert(item_key(&key.pk, &key.sk).as_slice(), bytes.as_slice())
                .map_err(backend)?;
            for ix in Index::ALL {
                if let Some((ipk, isk)) = cur.index_key(ix) {
                    index
                        .insert(index_entry(ix, &ipk, &isk, key).as_slice(), [].as_slice())
                        .map_err(backend)?;
                }
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get_many(&self, keys: &[Key]) -> StoreResult<Vec<Option<Item>>> {
        let keys = keys.to_vec();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(backend)?;
            let items = tx.open_table(ITEMS).map_err(backend)?;
            keys.into_iter()
                .map(|k| {
                    let raw = items
                        .get(item_key(&k.pk, &k.sk).as_slice())
                        .map_err(backend)?;
                    raw.map(|v| decode(k, v.value())).transpose()
                })
                .collect()
        })
        .await
    }

    async fn query_range(
        &self,
        pk: &str,
        range: Range<'_>,
        after: Option<&str>,
    ) -> StoreResult<(Vec<Item>, bool)> {
        let prefix = item_key(pk, "");
        let b = bounds(
            &prefix,
            range.sort,
            after.map(str::as_bytes),
            range.descending,
        );
        self.scan(ITEMS, b, range, |k, v| decode(split_item_key(k)?, v))
            .await
    }

    async fn query_index_range(
        &self,
        index: Index,
        pk: &str,
        range: Range<'_>,
        after: Option<&IndexPosition>,
    ) -> StoreResult<(Vec<IndexPosition>, bool)> {
        let prefix = index_prefix(index, pk);
        // An entry is `prefix isk \0 pk \0 sk`; a position is the same suffix.
        let after = after.map(|a| index_entry(index, pk, &a.isk, &a.key)[prefix.len()..].to_vec());
        let b = bounds(&prefix, range.sort, after.as_deref(), range.descending);
        self.scan(INDEX, b, range, move |k, _| {
            let s = std::str::from_utf8(&k[prefix.len()..]).map_err(backend)?;
            let mut parts = s.splitn(3, '\0');
            let (Some(isk), Some(pk), Some(sk)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(StoreError::broken("malformed index entry"));
            };
            Ok(IndexPosition {
                isk: isk.to_owned(),
                key: Key::new(pk, sk),
            })
        })
        .await
    }

    async fn scan(
        &self,
        segment: u32,
        total: u32,
        after: Option<&Key>,
        limit: u32,
    ) -> StoreResult<(Vec<Item>, Option<Key>)> {
        if total == 0 || segment >= total {
            return Err(StoreError::Invalid(format!("segment {segment} of {total}")));
        }
        let lo = match after {
            Some(k) => Bound::Excluded(item_key(&k.pk, &k.sk)),
            None => Bound::Unbounded,
        };
        let limit = limit as usize;
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(backend)?;
            let items = tx.open_table(ITEMS).map_err(backend)?;
            let range = items
                .range::<&[u8]>((as_ref_bound(&lo), Bound::Unbounded))
                .map_err(backend)?;
            let mut out = Vec::new();
            for entry in range {
                let (k, v) = entry.map_err(backend)?;
                let key = split_item_key(k.value())?;
                if segment_of(&key.pk, total) == segment {
                    out.push(decode(key.clone(), v.value())?);
                    if out.len() == limit {
                        return Ok((out, Some(key)));
                    }
                }
            }
            Ok((out, None))
        })
        .await
    }

    async fn commit(&self, writes: Vec<Write>) -> StoreResult<()> {
        validate_batch(&writes)?;
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend)?;
            {
                let mut items = tx.open_table(ITEMS).map_err(backend)?;
                let mut index = tx.open_table(INDEX).map_err(backend)?;
                let mut current = Vec::with_capacity(writes.len());
                for (i, w) in writes.iter().enumerate() {
                    let k = w.key();
                    let raw = items
                        .get(item_key(&k.pk, &k.sk).as_slice())
                        .map_err(backend)?;
                    let cur = raw.map(|v| decode(k.clone(), v.value())).transpose()?;
                    if !w.holds(cur.as_ref()) {
                        // Dropping the transaction without commit aborts it: nothing is written.
                        return Err(StoreError::ConditionFailed { index: Some(i) });
                    }
                    current.push(cur);
                }
                for (w, cur) in writes.iter().zip(&current) {
                    apply(&mut items, &mut index, w, cur.as_ref())?;
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Cond;

    #[test]
    fn successor_table() {
        assert_eq!(successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(successor(b"\xff\xff"), None);
        assert_eq!(successor(b""), None);
    }

    #[test]
    fn conditions_table() {
        let item = |attrs: Value| Item {
            key: Key::new("p", "s"),
            attrs: attrs.as_object().unwrap().clone(),
        };
        let v3 = item(serde_json::json!({"version": 3, "expires_at": 100}));
        for (cond, cur, want) in [
            (Cond::Absent, None, true),
            (Cond::Absent, Some(&v3), false),
            (Cond::Exists, Some(&v3), true),
            (Cond::Exists, None, false),
            (Cond::Version(3), Some(&v3), true),
            (Cond::Version(2), Some(&v3), false),
            (Cond::Version(0), None, false),
            (Cond::AbsentOrExpiredBefore(101), Some(&v3), true),
            (Cond::AbsentOrExpiredBefore(100), Some(&v3), false),
            (Cond::AbsentOrExpiredBefore(0), None, true),
        ] {
            assert_eq!(cond.holds(cur), want, "{cond:?}");
        }
    }
}
