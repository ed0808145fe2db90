//! Partition keys shared by several record kinds: the member partition, the shard of a member id
//! (DESIGN.md "Scale"), the replicas of hot read-mostly records and the date-keyed work lists.

use crate::domain::MemberId;
use crate::domain::segment::SegmentId;
use crate::store::{Index, Key};
use chrono::NaiveDate;

pub(super) const MEMBER: &str = "MEMBER#";

pub(super) const PROFILE: &str = "PROFILE";

pub(super) const LEDGER: &str = "LEDGER#";

pub(super) const EVENT: &str = "EVENT#";

pub(super) const REDEMPTION: &str = "REDEMPTION#";

pub(super) fn member_pk(id: &MemberId) -> String {
    format!("{MEMBER}{id}")
}

/// The member a member-partition key belongs to (index rows carry table keys).
pub(super) fn member_of_key(k: &Key) -> Option<MemberId> {
    k.pk.strip_prefix(MEMBER)
        .and_then(|id| MemberId::parse(id).ok())
}

// ---- indexes: each partition and sort key is built by one function, used to write and to read.

pub(super) fn birthday_partition(month_day: &str) -> String {
    format!("BIRTHDAY#{month_day}")
}

pub(super) fn tier_expiry_partition(day: NaiveDate) -> String {
    format!("TIEREXPIRY#{}", day.format("%Y-%m"))
}

pub(super) fn date_sk(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

// GSI8 holds only members: the month alone (`2703` for March 2027), no prefix, then the shard;
// and the day of the month (every byte counts on the member item).
pub(super) fn points_due_partition(day: NaiveDate, shard: u32) -> String {
    member_sharded(&day.format("%y%m").to_string(), shard)
}

pub(super) fn points_due_day(day: NaiveDate) -> String {
    day.format("%d").to_string()
}

/// Members are spread over this many shards of GSI7, so the segments job can read them in up
/// to this many parallel parts.
pub const MEMBER_SHARDS: u32 = 16;

/// Shards of each segment's partition in GSI4–6 (DESIGN.md "Scale"): at 10,000 purchases a
/// second, segments at write time move up to one member per purchase between two keys of an
/// index (≈ 10,000 index writes a second on the busiest key); 32 shards keep each near 310.
pub const SEGMENT_SHARDS: u32 = 32;

/// Segment size items (`SegmentSizes`): every purchase that moves its member's segments adds to
/// one, inside its transaction (2 units), so they take twice the units of an index shard and
/// get twice the shards.
pub const SIZE_SHARDS: u32 = 64;

const _: () = assert!(
    SEGMENT_SHARDS <= 32 && DUE_SHARDS <= 32 && MEMBER_SHARDS <= 32,
    "one character names a shard"
);

/// Shards of each month's partition in GSI8: a purchase with pending days moves its member's
/// due day, so a peak writes up to one entry per purchase into the current month (≈ 10,000 a
/// second); 32 shards keep each key near 310.
pub const DUE_SHARDS: u32 = 32;

/// Shards of each day's partition in GSI3: one entry per commit that has events (its last item
/// names the others), about one per purchase or redemption, ≈ 10,500 a second at the peak; 32
/// shards keep each key near 330. Readers read a day's shards together, by id range.
pub const EVENT_SHARDS: u32 = 32;

/// FNV-1a of a member id: fixed for the member's life, even over ids.
pub(super) fn member_hash(id: &MemberId) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in id.as_str().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// A member's shard: FNV-1a of the id, so it never changes and spreads ids evenly.
pub fn member_shard(id: &MemberId) -> u32 {
    member_hash(id) % MEMBER_SHARDS
}

/// MurmurHash3's 32-bit finaliser: every input bit moves every output bit.
pub(super) fn mix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The member's place among `n` shards of any sharded key (indexes, slices, replicas).
pub fn shard_of(id: &MemberId, n: u32) -> u32 {
    // FNV-1a's high bits are weak on short ids (`m1`, `m2` …): mixed first (MurmurHash3's
    // finaliser), then scaled to `n`, so that shards are even and independent of
    // `member_shard`.
    ((u64::from(mix(member_hash(id))) * u64::from(n)) >> 32) as u32
}

/// Items that every purchase reads (the running campaigns, the cut points in force) are kept in
/// this many identical copies, each under its own partition key: a reader reads its member's
/// copy, a writer writes them all in one batch. At 10,000 purchases a second a copy takes 625
/// reads a second, a fifth of DynamoDB's 3,000 a key.
pub const REPLICAS: u32 = 16;

/// One copy of a replicated record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replica(pub(super) u32);

impl Replica {
    /// The copy writers read (copies are written together, so any one is all of them).
    pub const FIRST: Replica = Replica(0);
    /// The copy a request for this member reads.
    pub fn of(m: &MemberId) -> Self {
        Replica(shard_of(m, REPLICAS))
    }
    pub fn all() -> impl Iterator<Item = Replica> {
        (0..REPLICAS).map(Replica)
    }
}

/// A sharded partition key: the base and the shard, `#` between (one byte, then hex).
pub(super) fn sharded(base: &str, shard: u32) -> String {
    format!("{base}#{shard:x}")
}

/// A sharded partition key on the member item, where every byte counts: the base and one
/// character for the shard (`0`–`9`, `a`–`v`: at most 32 shards), nothing between.
pub(super) fn member_sharded(base: &str, shard: u32) -> String {
    const DIGITS: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut s = String::with_capacity(base.len() + 1);
    s.push_str(base);
    s.push(char::from(DIGITS[(shard % 32) as usize]));
    s
}

// GSI4–7 and 9 hold only members, each index one kind of segment, so their partition keys need no
// prefix: every byte counts on the member item.
pub(super) fn shard_partition(shard: u32) -> String {
    member_sharded("", shard)
}

pub(super) fn segment_partition(s: SegmentId, shard: u32) -> String {
    let base = match s {
        SegmentId::Lifecycle(l) => l.as_str(),
        SegmentId::Value(v) => v.as_str(),
        SegmentId::Tier(t) => t.as_str(),
        // A new index: its partitions could be short from the start (`l3`, `u0`).
        SegmentId::Churn(c) => &c.as_str()[..1],
    };
    member_sharded(base, shard)
}

pub(super) fn segment_index(s: SegmentId) -> Index {
    match s {
        SegmentId::Lifecycle(_) => Index::Gsi4,
        SegmentId::Value(_) => Index::Gsi5,
        SegmentId::Tier(_) => Index::Gsi6,
        SegmentId::Churn(_) => Index::Gsi9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_spread_ids_evenly_enough() {
        let mut counts = [0u32; MEMBER_SHARDS as usize];
        for i in 0..16_000 {
            counts[member_shard(&MemberId::parse(&format!("member-{i}")).unwrap()) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
    }
}
