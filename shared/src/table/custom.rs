//! Custom segments in the table: the definitions and their registry (one small partition), the
//! member's traits (beside the member), one listing item per member and rule number (sharded by
//! member), the kept sizes per rule number (sharded like the built-in ones) and the parts of an
//! evaluation run.

use super::keys::{member_pk, sharded};
use super::{
    Batch, Listed, Reads, Record, Slot, Table, decode, decode_cursor, encode_cursor, shard_of,
};
use crate::domain::MemberId;
use crate::domain::custom_segment::{Definition, Registry, Slug};
use crate::domain::segment::RunId;
use crate::domain::traits::MemberTraits;
use crate::error::ServiceError;
use crate::store::{Key, PageRequest, SortKey, Write};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const CUSTOM: &str = "CUSTOMSEGS";
const DEF: &str = "DEF#";

/// Listings are spread over this many partitions per rule number: a build writes a listing for
/// every member that matches (ten million in the worst case). With 32, `loyalty-bench --scenario
/// night` put the busiest at 1,000 units a second at the build's own pace, the whole limit; 64
/// halves it.
pub const LISTING_SHARDS: u32 = 64;
/// Shards of the kept custom sizes: a member's evaluation adds to its own shard's item (one add
/// however many listings it enters). With 32 the first night of 100 rules put the busiest at
/// 836 units a second; 64 halves it.
pub const CUSTOM_SIZE_SHARDS: u32 = 64;

impl Record for Definition {
    type Id = Slug;
    const KIND: &'static str = "custom segment";
    fn key(s: &Slug) -> Key {
        Key::new(CUSTOM, format!("{DEF}{}", s.as_str()))
    }
}

impl Listed for Definition {
    type Owner = ();
    fn range(_: &()) -> (String, SortKey) {
        (CUSTOM.into(), SortKey::Prefix(DEF.into()))
    }
}

impl Record for Registry {
    type Id = ();
    const KIND: &'static str = "custom segment registry";
    fn key(_: &()) -> Key {
        Key::new(CUSTOM, "REGISTRY")
    }
}

impl Record for MemberTraits {
    type Id = MemberId;
    const KIND: &'static str = "member traits";
    fn key(m: &MemberId) -> Key {
        Key::new(member_pk(m), "TRAITS")
    }
}

/// A member listed under a rule number (the item is its key; the member id is the sort key).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Listing {}

fn listing_pk(number: u32, shard: u32) -> String {
    sharded(&format!("CSEG#{number}"), shard)
}

impl Record for Listing {
    type Id = (u32, MemberId);
    const KIND: &'static str = "custom segment listing";
    fn key((n, m): &(u32, MemberId)) -> Key {
        Key::new(listing_pk(*n, shard_of(m, LISTING_SHARDS)), m.to_string())
    }
}

/// One shard of the custom segments' kept sizes: attribute `c<number>` per rule number.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CustomSizes {
    #[serde(flatten)]
    attrs: BTreeMap<String, Value>,
}

fn size_attr(n: u32) -> String {
    format!("c{n}")
}

impl Record for CustomSizes {
    type Id = u32;
    const KIND: &'static str = "custom segment sizes";
    fn key(shard: &u32) -> Key {
        Key::new(sharded("CSEGSIZES", *shard), "SIZES")
    }
}

/// What one part of an evaluation run covered: the rule numbers it evaluated every member of
/// its shards with, and its counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvaluationPart {
    pub numbers: BTreeSet<u32>,
    pub examined: u64,
    pub changed: u64,
    pub failed: u64,
    pub expires_at: i64,
}

/// The evaluation run under way (or the last one), for the progress of builds: every part puts
/// it as it finishes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurrentRun {
    pub run: RunId,
    pub parts: u32,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

impl Record for CurrentRun {
    type Id = ();
    const KIND: &'static str = "custom segment run";
    fn key(_: &()) -> Key {
        Key::new(CUSTOM, "RUN")
    }
}

fn run_pk(run: &RunId) -> String {
    format!("CSEGRUN#{run}")
}
const PART: &str = "PART#";

impl Record for EvaluationPart {
    type Id = (RunId, u32);
    const KIND: &'static str = "custom segment part";
    fn key((run, part): &(RunId, u32)) -> Key {
        Key::new(run_pk(run), format!("{PART}{part:02}"))
    }
}

impl Batch {
    /// The listings a member enters and leaves, and the sizes they move, in the member's commit.
    pub fn move_listings(
        &mut self,
        m: &MemberId,
        enter: &BTreeSet<u32>,
        leave: &BTreeSet<u32>,
    ) -> Result<&mut Self, ServiceError> {
        for n in enter {
            self.put(&(*n, m.clone()), &Listing {})?;
        }
        for n in leave {
            self.remove::<Listing>(&(*n, m.clone()));
        }
        let amounts: Vec<(String, i64)> = enter
            .iter()
            .map(|n| (size_attr(*n), 1))
            .chain(leave.iter().map(|n| (size_attr(*n), -1)))
            .collect();
        if !amounts.is_empty() {
            self.push_write(Write::Add {
                key: CustomSizes::key(&shard_of(m, CUSTOM_SIZE_SHARDS)),
                amounts,
            });
        }
        Ok(self)
    }
}

impl Table {
    /// The kept size of each rule number asked for: the sum of its shards, one round trip.
    pub async fn custom_sizes(
        &self,
        numbers: &BTreeSet<u32>,
    ) -> Result<BTreeMap<u32, u64>, ServiceError> {
        if numbers.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut reads = Reads::new();
        let slots: Vec<Slot<CustomSizes>> = (0..CUSTOM_SIZE_SHARDS)
            .map(|n| reads.add::<CustomSizes>(&n))
            .collect();
        let found = self.read(&reads).await?;
        let mut out: BTreeMap<u32, i64> = numbers.iter().map(|n| (*n, 0)).collect();
        for slot in &slots {
            if let Some(shard) = found.get(slot)? {
                for (n, total) in out.iter_mut() {
                    *total += shard
                        .value
                        .attrs
                        .get(&size_attr(*n))
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                }
            }
        }
        out.into_iter()
            .map(|(n, total)| {
                let size = u64::try_from(total).map_err(|_| {
                    ServiceError::corrupt(format!("custom rule {n} has size {total}"))
                })?;
                Ok((n, size))
            })
            .collect()
    }

    /// One page of the members listed under rule number `n`, shard after shard, and its cursor
    /// (bound to the listing).
    pub async fn listing_page(
        &self,
        n: u32,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<MemberId>, Option<String>), ServiceError> {
        let list = listing_pk(n, 0);
        let kind = Listing::KIND;
        let after = cursor.map(|c| decode_cursor(kind, &list, c)).transpose()?;
        let page = self
            .sharded_page(LISTING_SHARDS as usize, limit, after, |shard, req| {
                let pk = listing_pk(n, shard as u32);
                async move {
                    let page = self.store.query(&pk, &SortKey::All, &req).await?;
                    Ok(crate::store::Page {
                        items: page.items.into_iter().map(|i| i.key).collect(),
                        next: page.next,
                    })
                }
            })
            .await?;
        let ids = page
            .items
            .iter()
            .map(|k| MemberId::parse(k.sk.as_str()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ServiceError::corrupt(format!("a listing's key: {e}")))?;
        Ok((ids, page.next.map(|n| encode_cursor(kind, &list, &n))))
    }

    /// Every definition (at most 100: one query).
    pub async fn definitions(&self) -> Result<Vec<Definition>, ServiceError> {
        Ok(self
            .list_all::<Definition>(&())
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }

    /// The parts an evaluation run has finished.
    pub async fn evaluation_parts(&self, run: &RunId) -> Result<Vec<EvaluationPart>, ServiceError> {
        let page = self
            .store
            .query(
                &run_pk(run),
                &SortKey::Prefix(PART.into()),
                &PageRequest {
                    limit: 100,
                    after: None,
                    descending: false,
                },
            )
            .await?;
        page.items
            .iter()
            .map(|i| decode(i).map(|v| v.value))
            .collect()
    }
}
