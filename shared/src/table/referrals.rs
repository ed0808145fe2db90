//! Referrals: codes and their owners, referrers' counts, the monthly and held referral lists,
//! and the pseudonymous marks that stop a referee or a card from being paid twice.

use super::keys::{member_pk, sharded};
use super::{IndexEntry, Record, Table, decode, shard_of};
use crate::domain::referral::{Counts, Referral, ReferralCode, ReferralStatus};
use crate::domain::{MemberId, referral};
use crate::error::ServiceError;
use crate::store::{Index, Key, SortKey, Store};
use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

/// A referral code, unique (created on its absence); it names its member for good, so a
/// vanity code set later leaves the old one resolving to the same member.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CodeClaim {
    pub member_id: MemberId,
}

impl Record for CodeClaim {
    type Id = ReferralCode;
    const KIND: &'static str = "referral code";
    fn key(c: &ReferralCode) -> Key {
        Key::new(format!("REFCODE#{c}"), "REFCODE")
    }
}

/// A referrer: the code they share now and what their codes did. Versioned: the referees of
/// one referrer qualifying at once take turns on it, so no cap is ever passed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Referrer {
    pub code: ReferralCode,
    /// Codes the member had before (they still resolve; erasure removes them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<ReferralCode>,
    #[serde(flatten)]
    pub counts: Counts,
    pub created_at: DateTime<Utc>,
}

impl Referrer {
    /// `code` becomes the one shared; the one before keeps resolving (it was printed).
    pub fn switch_code(&mut self, code: &ReferralCode) {
        let old = std::mem::replace(&mut self.code, code.clone());
        if !self.retired.contains(&old) {
            self.retired.push(old);
        }
        self.retired.retain(|c| c != code);
    }
}

impl Record for Referrer {
    type Id = MemberId;
    const KIND: &'static str = "referrer";
    fn key(id: &MemberId) -> Key {
        Key::new(member_pk(id), "REFERRER")
    }
}

/// Referrals are listed by the month they were applied in, in this many partitions (written at
/// the rate of enrolments with a code and of qualifying purchases, far below a key's limit even
/// at a national launch; spread anyway, so no month is one key).
pub const REFERRAL_SHARDS: u32 = 8;

const REFERRALS: &str = "REFERRALS#";

const HELD_REFERRALS: &str = "REFERRALS#HELD";

pub(super) const REFERRAL_KIND: &str = "referral";

fn referral_month_partition(month: &str, shard: u32) -> String {
    sharded(&format!("{REFERRALS}{month}"), shard)
}

/// The referee's referral, in their partition. GSI2 lists it by the month it was applied in
/// (the funnel); GSI1 lists it while it is held (the review queue, rare by design).
impl Record for Referral {
    type Id = MemberId;
    const KIND: &'static str = REFERRAL_KIND;
    fn key(id: &MemberId) -> Key {
        Key::new(member_pk(id), "REFERRAL")
    }
    fn index_entries(&self, id: &MemberId) -> Vec<IndexEntry> {
        let at = self.applied_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let mut out = vec![IndexEntry {
            index: Index::Gsi2,
            pk: referral_month_partition(
                &referral::month_of(self.applied_at.date_naive()),
                shard_of(id, REFERRAL_SHARDS),
            ),
            sk: at.clone(),
        }];
        if self.status == ReferralStatus::Held {
            out.push(IndexEntry {
                index: Index::Gsi1,
                pk: HELD_REFERRALS.into(),
                sk: format!("{at}#{id}"),
            });
        }
        out
    }
}

pub(super) fn held_referrals_range() -> (Index, String, SortKey) {
    (Index::Gsi1, HELD_REFERRALS.to_owned(), SortKey::All)
}

/// The partitions of the referrals applied in a month (`YYYY-MM`, UTC).
pub(super) fn referral_month_ranges(month: &str) -> Vec<(Index, String, SortKey)> {
    (0..REFERRAL_SHARDS)
        .map(|n| {
            (
                Index::Gsi2,
                referral_month_partition(month, n),
                SortKey::All,
            )
        })
        .collect()
}

/// That a member paid with a card or wallet, by the fingerprint's hash (never the fingerprint):
/// written by every purchase that carries one, read when a referee's purchase qualifies.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PaymentMark {
    pub seen_on: NaiveDate,
}

impl Record for PaymentMark {
    type Id = (String, MemberId);
    const KIND: &'static str = "payment mark";
    fn key((hash, m): &(String, MemberId)) -> Key {
        Key::new(format!("PAYMENT#{hash}"), member_pk(m))
    }
}

/// That a person (a phone or an e-mail address, as a keyed hash: never the value) has been
/// rewarded as a referee. Kept through erasure — a keyed hash of a contact is no personal data
/// without the key — so a person erased and enrolled again cannot be referred again for money.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefereeMark {
    pub rewarded_on: NaiveDate,
}

impl Record for RefereeMark {
    type Id = String;
    const KIND: &'static str = "referee mark";
    fn key(hash: &String) -> Key {
        Key::new(format!("REFEREE#{hash}"), "REFEREE")
    }
}

/// A code an erased member held, retired for ever by its keyed hash (the code may have been a
/// name): a vanity code is refused while this exists, so a printed code never credits a
/// stranger.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RetiredCode {
    pub retired_on: NaiveDate,
}

impl Record for RetiredCode {
    type Id = String;
    const KIND: &'static str = "retired code";
    fn key(hash: &String) -> Key {
        Key::new(format!("REFCODE#~{hash}"), "RETIRED")
    }
}

/// The key the pseudonymous hashes above are made with: 32 random bytes, made on first need
/// (created on its absence, so every process agrees) and read once per process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PseudonymKey {
    pub key: String,
    pub created_at: DateTime<Utc>,
}

impl Record for PseudonymKey {
    type Id = ();
    const KIND: &'static str = "pseudonym key";
    fn key(_: &()) -> Key {
        Key::new("SECRET#PSEUDONYM", "SECRET")
    }
}

/// How many unknown referral codes one caller has tried (`domain::guesses`), kept by the keyed
/// hash of the caller's principal (so the record names nobody) and gone by TTL an hour after
/// its instant, when it would mean nothing spent anyway.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CodeGuesses {
    #[serde(flatten)]
    pub spent: crate::domain::guesses::Spent,
    pub expires_at: i64,
}

impl Record for CodeGuesses {
    type Id = String;
    const KIND: &'static str = "code guesses";
    fn key(hash: &String) -> Key {
        Key::new(format!("GUESSES#{hash}"), "GUESSES")
    }
}

impl Table {
    /// One page of the referrals held for review, newest first, and its cursor.
    pub async fn held_referrals(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<crate::domain::referral::Referral>, Option<String>), ServiceError> {
        self.indexed_page(held_referrals_range(), REFERRAL_KIND, limit, cursor)
            .await
    }

    /// Every referral applied in a month (`YYYY-MM`, UTC), from all its partitions: the keys a
    /// thousand at a time, the referrals a hundred per batch read.
    pub async fn referrals_applied_in(
        &self,
        month: &str,
    ) -> Result<Vec<crate::domain::referral::Referral>, ServiceError> {
        let mut keys = Vec::new();
        for range in referral_month_ranges(month) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switched_code_keeps_the_old_one_resolving_and_never_lists_the_current_one() {
        let code = |c| ReferralCode::parse(c).unwrap();
        let mut r = Referrer {
            code: code("AAAA2222"),
            retired: vec![],
            counts: Counts::default(),
            created_at: chrono::Utc::now(),
        };
        r.switch_code(&code("BBBB3333"));
        r.switch_code(&code("AAAA2222"));
        r.switch_code(&code("BBBB3333"));
        assert_eq!(r.code, code("BBBB3333"));
        assert_eq!(r.retired, vec![code("AAAA2222")]);
    }
}
