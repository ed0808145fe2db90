//! The item store: a small transactional key–value engine with one sparse secondary index per
//! purpose, and nothing else. It knows keys, versions and conditions; it knows no program rule.
//! Two backends implement it with the same semantics: DynamoDB (one table) and an embedded,
//! durable redb file. The contract suite in `tests/` runs identical bodies against both.

mod counting;
mod dynamo;
#[cfg(feature = "embedded")]
mod embedded;
pub mod heat;

pub use counting::{CountingStore, RoundTrips};
pub use dynamo::DynamoStore;
#[cfg(feature = "embedded")]
pub use embedded::EmbeddedStore;
pub use heat::Heat;

use async_trait::async_trait;
use serde_json::{Map, Value};

/// Attributes with reserved meaning; everything else is the caller's.
pub const PK: &str = "PK";
pub const SK: &str = "SK";
pub const VERSION: &str = "version";
pub const EXPIRES_AT: &str = "expires_at";
/// The attributes of an item [`Write::Take`] draws on: its fixed share and what is used of it.
pub const CAP: &str = "cap";
pub const USED: &str = "used";

/// DynamoDB allows 100 actions per transaction; both backends refuse more, so code that works
/// locally works in AWS.
pub const MAX_BATCH: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Key {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

/// Secondary indexes. Both are sparse: only items carrying the attributes appear, and their
/// projection is the table and index keys only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Index {
    /// Overloaded: birthdays and the reward catalog (what goes in it: the table layer).
    Gsi1,
    /// Tier expiry dates.
    Gsi2,
    /// Event carriers by hour (the global event feed and the webhook tailer).
    Gsi3,
    /// Members by lifecycle stage.
    Gsi4,
    /// Members by value segment.
    Gsi5,
    /// Members by tier.
    Gsi6,
    /// Every member, in a fixed number of shards (the segments job's parallel parts).
    Gsi7,
    /// Members by the next day the points job has something to do for them.
    Gsi8,
    /// Members by predicted churn risk.
    Gsi9,
}

impl Index {
    pub fn name(self) -> &'static str {
        match self {
            Index::Gsi1 => "GSI1",
            Index::Gsi2 => "GSI2",
            Index::Gsi3 => "GSI3",
            Index::Gsi4 => "GSI4",
            Index::Gsi5 => "GSI5",
            Index::Gsi6 => "GSI6",
            Index::Gsi7 => "GSI7",
            Index::Gsi8 => "GSI8",
            Index::Gsi9 => "GSI9",
        }
    }
    pub fn pk_attr(self) -> &'static str {
        match self {
            Index::Gsi1 => "GSI1PK",
            Index::Gsi2 => "GSI2PK",
            Index::Gsi3 => "GSI3PK",
            Index::Gsi4 => "GSI4PK",
            Index::Gsi5 => "GSI5PK",
            Index::Gsi6 => "GSI6PK",
            Index::Gsi7 => "GSI7PK",
            Index::Gsi8 => "GSI8PK",
            Index::Gsi9 => "GSI9PK",
        }
    }
    pub fn sk_attr(self) -> &'static str {
        match self {
            Index::Gsi1 => "GSI1SK",
            Index::Gsi2 => "GSI2SK",
            Index::Gsi3 => "GSI3SK",
            Index::Gsi8 => "GSI8SK",
            // The member indexes sort by the member's own `id` attribute: no extra bytes on an
            // item that must stay under 1 KB. Any item that carries `id` must hold a string.
            Index::Gsi4 | Index::Gsi5 | Index::Gsi6 | Index::Gsi7 | Index::Gsi9 => "id",
        }
    }
    pub const ALL: [Index; 9] = [
        Index::Gsi1,
        Index::Gsi2,
        Index::Gsi3,
        Index::Gsi4,
        Index::Gsi5,
        Index::Gsi6,
        Index::Gsi7,
        Index::Gsi8,
        Index::Gsi9,
    ];
}

/// An item: its key and its other attributes (JSON values; numbers are integers).
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub key: Key,
    pub attrs: Map<String, Value>,
}

impl Item {
    pub fn version(&self) -> Option<u64> {
        self.attrs.get(VERSION).and_then(Value::as_u64)
    }
    pub fn expires_at(&self) -> Option<i64> {
        self.attrs.get(EXPIRES_AT).and_then(Value::as_i64)
    }
    #[cfg(feature = "embedded")]
    fn index_key(&self, index: Index) -> Option<(String, String)> {
        let pk = self.attrs.get(index.pk_attr())?.as_str()?;
        let sk = self.attrs.get(index.sk_attr())?.as_str()?;
        Some((pk.to_owned(), sk.to_owned()))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    /// No condition.
    Always,
    /// The item must not exist.
    Absent,
    /// The item must exist.
    Exists,
    /// The item must exist with `version == n`.
    Version(u64),
    /// The item must not exist, or its `expires_at` (epoch seconds) must be before this instant:
    /// an expired idempotency record that TTL has not swept yet counts as gone.
    AbsentOrExpiredBefore(i64),
}

impl Cond {
    /// Evaluated by the embedded backend; DynamoDB evaluates the same rule server-side.
    pub fn holds(&self, current: Option<&Item>) -> bool {
        match (self, current) {
            (Cond::Always, _) => true,
            (Cond::Absent, c) => c.is_none(),
            (Cond::Exists, c) => c.is_some(),
            (Cond::Version(n), Some(c)) => c.version() == Some(*n),
            (Cond::Version(_), None) => false,
            (Cond::AbsentOrExpiredBefore(_), None) => true,
            (Cond::AbsentOrExpiredBefore(t), Some(c)) => c.expires_at().is_some_and(|e| e < *t),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    Put {
        item: Item,
        cond: Cond,
    },
    Delete {
        key: Key,
        cond: Cond,
    },
    /// Writes nothing; fails the batch unless the condition holds.
    Check {
        key: Key,
        cond: Cond,
    },
    /// Adds `amount` (negative: gives back) to the [`USED`] attribute of an existing item and 1
    /// to its version, provided its [`CAP`] is still `cap` and `0 ≤ used + amount ≤ cap`. An
    /// update in place, conditioned on the counter rather than the version: concurrent takes
    /// from one item all succeed while there is room (DESIGN.md "Scale"), and a rewrite of the
    /// item read at a version notices them.
    Take {
        key: Key,
        amount: i64,
        cap: i64,
    },
    /// Adds each amount to its numeric attribute of an item (an absent attribute, or item,
    /// counts as 0), and 1 to its version; no condition. For counters that many commits move at
    /// once and none reads first (segment sizes, DESIGN.md "Segment sizes").
    Add {
        key: Key,
        amounts: Vec<(String, i64)>,
    },
}

impl Write {
    pub fn key(&self) -> &Key {
        match self {
            Write::Put { item, .. } => &item.key,
            Write::Delete { key, .. }
            | Write::Check { key, .. }
            | Write::Take { key, .. }
            | Write::Add { key, .. } => key,
        }
    }

    /// Whether the write may apply to the item as it is (both backends keep this rule; the
    /// embedded one evaluates it here).
    pub fn holds(&self, current: Option<&Item>) -> bool {
        match self {
            Write::Put { cond, .. } | Write::Delete { cond, .. } | Write::Check { cond, .. } => {
                cond.holds(current)
            }
            Write::Take { amount, cap, .. } => current.is_some_and(|c| {
                let int = |a: &str| c.attrs.get(a).and_then(Value::as_i64);
                let used = int(USED).unwrap_or(0);
                int(CAP) == Some(*cap) && (0..=*cap).contains(&(used + amount))
            }),
            Write::Add { .. } => true,
        }
    }

    /// The bounds [`Write::Take`] puts on the counter before it adds: `used` must lie in
    /// `lo..=hi`.
    pub fn take_bounds(amount: i64, cap: i64) -> (i64, i64) {
        (amount.min(0).saturating_neg(), cap - amount.max(0))
    }
}

/// How a query bounds the sort key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SortKey {
    All,
    Prefix(String),
    /// Strictly less than.
    Before(String),
    /// From the first to the second, both included.
    Between(String, String),
}

impl SortKey {
    pub fn matches(&self, sk: &str) -> bool {
        match self {
            SortKey::All => true,
            SortKey::Prefix(p) => sk.starts_with(p.as_str()),
            SortKey::Before(b) => sk < b.as_str(),
            SortKey::Between(lo, hi) => lo.as_str() <= sk && sk <= hi.as_str(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// 1..=1000 items.
    pub limit: u32,
    /// The `next` of the previous page.
    pub after: Option<String>,
    /// Sort keys descending (newest first for time-ordered keys).
    pub descending: bool,
}

impl PageRequest {
    pub fn first(limit: u32) -> Self {
        PageRequest {
            limit,
            after: None,
            descending: false,
        }
    }
    pub fn newest_first(limit: u32, after: Option<String>) -> Self {
        PageRequest {
            limit,
            after,
            descending: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque position after the last item; `None` when there is nothing more.
    pub next: Option<String>,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum StoreError {
    /// A condition did not hold; nothing was written. `index` is the failing write's position
    /// when the backend reports it.
    #[error("condition failed")]
    ConditionFailed { index: Option<usize> },
    /// Another transaction touched the same items, or the backend throttled: retry.
    #[error("write conflict, retry")]
    Conflict,
    #[error("invalid request to the store: {0}")]
    Invalid(String),
    /// A page position that this partition and sort condition never produced.
    #[error("the cursor does not belong to this list")]
    BadCursor,
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend failed in a way no retry changes; `cause` keeps the backend's own error (its
    /// source chain) for the log.
    #[error("store failure: {what}")]
    Backend {
        what: String,
        #[source]
        cause: Option<Cause>,
    },
}

/// The error under a store failure, shared so that `StoreError` stays cheap to clone. Two causes
/// are equal when they read the same.
#[derive(Clone, Debug)]
pub struct Cause(pub std::sync::Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Cause(std::sync::Arc::new(e))
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl StoreError {
    /// A backend failure that keeps `e` as its cause.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend {
            what: e.to_string(),
            cause: Some(Cause::new(e)),
        }
    }
    /// A backend failure found by this code (an item without its keys): nothing under it.
    pub fn broken(what: impl Into<String>) -> Self {
        StoreError::Backend {
            what: what.into(),
            cause: None,
        }
    }
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::ConditionFailed { .. } | StoreError::Conflict
        )
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Where an index page continues: the last entry's index sort key and table key. Both backends
/// read and write this one form, so a position is checked once for both (see [`Store`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexPosition {
    pub isk: String,
    pub key: Key,
}

impl IndexPosition {
    pub fn encode(&self) -> String {
        serde_json::json!([self.isk, self.key.pk, self.key.sk]).to_string()
    }
    fn decode(s: &str) -> StoreResult<Self> {
        let [isk, pk, sk]: [String; 3] =
            serde_json::from_str(s).map_err(|_| StoreError::BadCursor)?;
        Ok(IndexPosition {
            isk,
            key: Key::new(pk, sk),
        })
    }
}

/// One page of a partition or index range, as a backend answers it: up to `limit` rows, plus
/// whether more follow.
#[derive(Clone, Copy, Debug)]
pub struct Range<'a> {
    pub sort: &'a SortKey,
    pub limit: u32,
    pub descending: bool,
}

/// A shared store is a store: wrappers (counting, heat) then stand over either backend.
#[async_trait]
impl Store for std::sync::Arc<dyn Store> {
    async fn get_many(&self, keys: &[Key]) -> StoreResult<Vec<Option<Item>>> {
        (**self).get_many(keys).await
    }
    async fn query_range(
        &self,
        pk: &str,
        range: Range<'_>,
        after: Option<&str>,
    ) -> StoreResult<(Vec<Item>, bool)> {
        (**self).query_range(pk, range, after).await
    }
    async fn query_index_range(
        &self,
        index: Index,
        pk: &str,
        range: Range<'_>,
        after: Option<&IndexPosition>,
    ) -> StoreResult<(Vec<IndexPosition>, bool)> {
        (**self).query_index_range(index, pk, range, after).await
    }
    async fn commit(&self, writes: Vec<Write>) -> StoreResult<()> {
        (**self).commit(writes).await
    }
    async fn scan(
        &self,
        segment: u32,
        total: u32,
        after: Option<&Key>,
        limit: u32,
    ) -> StoreResult<(Vec<Item>, Option<Key>)> {
        (**self).scan(segment, total, after, limit).await
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Consistent reads of several items in one round trip, in the order asked.
    async fn get_many(&self, keys: &[Key]) -> StoreResult<Vec<Option<Item>>>;

    /// Backend part of [`Store::query`]: `after` is a sort key already checked to lie in range.
    /// Returns at most `limit` items and whether more follow.
    async fn query_range(
        &self,
        pk: &str,
        range: Range<'_>,
        after: Option<&str>,
    ) -> StoreResult<(Vec<Item>, bool)>;

    /// Backend part of [`Store::query_index`]: `after` is a checked position. Returns at most
    /// `limit` entries (table key and index sort key) and whether more follow.
    async fn query_index_range(
        &self,
        index: Index,
        pk: &str,
        range: Range<'_>,
        after: Option<&IndexPosition>,
    ) -> StoreResult<(Vec<IndexPosition>, bool)>;

    /// All writes or none. At most [`MAX_BATCH`] writes, each key at most once.
    async fn commit(&self, writes: Vec<Write>) -> StoreResult<()>;

    /// Every item of segment `segment` of `total` disjoint segments (DynamoDB's parallel scan),
    /// up to `limit` from just after `after`, and where the next page starts. For jobs that must
    /// see every item and for tests that must read it all; never on a request's path.
    async fn scan(
        &self,
        segment: u32,
        total: u32,
        after: Option<&Key>,
        limit: u32,
    ) -> StoreResult<(Vec<Item>, Option<Key>)>;

    async fn get(&self, key: &Key) -> StoreResult<Option<Item>> {
        Ok(self
            .get_many(std::slice::from_ref(key))
            .await?
            .pop()
            .flatten())
    }

    /// Items of one partition whose sort key satisfies `sort`, in sort-key order. The page
    /// position is checked here, once for every backend: a position this range never produced
    /// is [`StoreError::BadCursor`], never a backend failure.
    async fn query(&self, pk: &str, sort: &SortKey, page: &PageRequest) -> StoreResult<Page<Item>> {
        if let Some(a) = &page.after {
            check_after(sort, a)?;
        }
        let range = Range {
            sort,
            limit: page.limit,
            descending: page.descending,
        };
        let (items, more) = self.query_range(pk, range, page.after.as_deref()).await?;
        let next = if more {
            items.last().map(|i| i.key.sk.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// Keys of items in one partition of a secondary index (eventually consistent in DynamoDB).
    /// The position is checked here, as in [`Store::query`].
    async fn query_index(
        &self,
        index: Index,
        pk: &str,
        sort: &SortKey,
        page: &PageRequest,
    ) -> StoreResult<Page<Key>> {
        let after = page
            .after
            .as_deref()
            .map(IndexPosition::decode)
            .transpose()?;
        if let Some(a) = &after {
            check_after(sort, &a.isk)?;
            check_key_text(&a.key)?;
        }
        let range = Range {
            sort,
            limit: page.limit,
            descending: page.descending,
        };
        let (rows, more) = self
            .query_index_range(index, pk, range, after.as_ref())
            .await?;
        let next = if more {
            rows.last().map(IndexPosition::encode)
        } else {
            None
        };
        Ok(Page {
            items: rows.into_iter().map(|r| r.key).collect(),
            next,
        })
    }
}

/// A value's size as DynamoDB bills it: strings by their UTF-8 length, numbers 1 byte per two
/// significant digits plus 1, null and booleans 1, lists and maps 3 bytes plus 1 per element
/// (and, in maps, the names).
pub fn value_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 1,
        Value::Number(n) => {
            let digits = n.to_string().trim_start_matches('-').replace('.', "").len();
            digits.div_ceil(2) + 1
        }
        Value::String(s) => s.len(),
        Value::Array(a) => 3 + a.iter().map(|x| 1 + value_size(x)).sum::<usize>(),
        Value::Object(o) => {
            3 + o
                .iter()
                .map(|(k, x)| 1 + k.len() + value_size(x))
                .sum::<usize>()
        }
    }
}

/// An item's size as DynamoDB bills it: names plus values, keys included.
pub fn item_size(item: &Item) -> usize {
    PK.len()
        + item.key.pk.len()
        + SK.len()
        + item.key.sk.len()
        + item
            .attrs
            .iter()
            .map(|(k, v)| k.len() + value_size(v))
            .sum::<usize>()
}

/// The table write units a commit costs in DynamoDB: 1 per started KB of each item written
/// (the key alone for a delete or a check), twice that inside a transaction. Index writes come
/// on top, 1 per index entry an item adds, changes or removes.
pub fn write_units(writes: &[Write]) -> u64 {
    let factor = if writes.len() > 1 { 2 } else { 1 };
    writes
        .iter()
        .map(|w| {
            let size = match w {
                Write::Put { item, .. } => item_size(item),
                // A take or an add rewrites an item of a few dozen bytes: one unit, as the key.
                Write::Delete { key, .. }
                | Write::Check { key, .. }
                | Write::Take { key, .. }
                | Write::Add { key, .. } => PK.len() + key.pk.len() + SK.len() + key.sk.len(),
            };
            factor * (size.div_ceil(1024).max(1) as u64)
        })
        .sum()
}

/// A sort-key position is only valid inside the range it continues.
pub(crate) fn check_after(sort: &SortKey, after: &str) -> StoreResult<()> {
    if sort.matches(after) && !after.is_empty() && !after.contains('\0') {
        Ok(())
    } else {
        Err(StoreError::BadCursor)
    }
}

/// A table key inside a position must be one a table could hold (DynamoDB refuses empty keys).
fn check_key_text(k: &Key) -> StoreResult<()> {
    let ok = |s: &str| !s.is_empty() && s.len() <= 1024 && !s.contains('\0');
    if ok(&k.pk) && ok(&k.sk) {
        Ok(())
    } else {
        Err(StoreError::BadCursor)
    }
}

/// Checks a batch for what both backends refuse, before either sees it.
pub(crate) fn validate_batch(writes: &[Write]) -> StoreResult<()> {
    if writes.is_empty() || writes.len() > MAX_BATCH {
        return Err(StoreError::Invalid(format!(
            "a batch holds 1 to {MAX_BATCH} writes, got {}",
            writes.len()
        )));
    }
    let mut keys: Vec<&Key> = writes.iter().map(Write::key).collect();
    keys.sort();
    if keys.windows(2).any(|w| w[0] == w[1]) {
        return Err(StoreError::Invalid(
            "a batch may touch each item once".into(),
        ));
    }
    for w in writes {
        if let Write::Put { item, .. } = w {
            for reserved in [PK, SK] {
                if item.attrs.contains_key(reserved) {
                    return Err(StoreError::Invalid(format!("{reserved} is set by the key")));
                }
            }
        }
    }
    Ok(())
}
