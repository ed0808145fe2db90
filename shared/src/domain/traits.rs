//! A member's traits (DESIGN.md "Custom segments"): what rules ask that the member item has no
//! room for — operators' tags, the categories and stores of the last 12 months' purchases, the
//! redemptions by month — and the custom segments the member is listed in. Kept on a companion
//! item that a purchase reads with the member and writes only when it learns something new (a
//! category or store not yet seen that month), so most purchases write nothing more.

use super::spend::{MonthCounts, month_index};
use super::{Invalid, StoreId};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// At most this many tags on a member.
pub const MAX_TAGS: usize = 20;
/// Categories and stores beyond these are dropped oldest first (a member buying in more than
/// 200 categories in a year is a wholesale account; the rules still see the 200 newest).
pub const MAX_CATEGORIES: usize = 200;
pub const MAX_STORES: usize = 50;
/// Months the behaviour fields look back over: this month and the 11 before it.
pub const MONTHS: i32 = 12;

/// An operator's label on members: 1–40 letters (any script), digits, `-`, `_`, `.` or `:`,
/// compared in lower case (`VIP` is `vip`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

impl Tag {
    pub fn parse(s: &str) -> Result<Tag, Invalid> {
        let t = s.trim().to_lowercase();
        let ok = (1..=40).contains(&t.chars().count())
            && t.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
        if ok {
            Ok(Tag(t))
        } else {
            Err(Invalid(format!(
                "a tag is 1 to 40 letters, digits, '-', '_', '.' or ':' (got {s:?})"
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Tag {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Tag::parse(&s)
    }
}

impl From<Tag> for String {
    fn from(t: Tag) -> String {
        t.0
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The companion item. Months are [`month_index`] ordinals of program dates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberTraits {
    #[serde(rename = "t", default, skip_serializing_if = "BTreeSet::is_empty")]
    pub tags: BTreeSet<Tag>,
    /// Category → the last month it was bought in.
    #[serde(rename = "c", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub categories: BTreeMap<String, i32>,
    /// Store → the months (of the last 12) with a purchase there.
    #[serde(rename = "s", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stores: BTreeMap<String, BTreeSet<i32>>,
    /// The store of the first purchase (the home store of a member with none in 12 months).
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub first_store: Option<String>,
    /// Rewards redeemed (net of cancellations) per month.
    #[serde(rename = "r", default)]
    pub redemptions: MonthCounts,
    /// The custom segments' rule numbers the member is listed under.
    #[serde(rename = "g", default, skip_serializing_if = "BTreeSet::is_empty")]
    pub listed: BTreeSet<u32>,
}

impl MemberTraits {
    /// A purchase on `on` at `store` with lines in `categories`: true when it taught the traits
    /// something (and the item must be written).
    pub fn note_purchase<'a>(
        &mut self,
        store: &StoreId,
        categories: impl IntoIterator<Item = &'a str>,
        on: NaiveDate,
        today: NaiveDate,
    ) -> bool {
        let month = month_index(on);
        let before = self.clone();
        if self.first_store.is_none() {
            self.first_store = Some(store.to_string());
        }
        for c in categories {
            let last = self.categories.entry(c.to_owned()).or_insert(month);
            *last = (*last).max(month);
        }
        self.stores
            .entry(store.to_string())
            .or_default()
            .insert(month);
        self.prune(today);
        *self != before
    }

    /// A redemption (`delta` 1) or its cancellation (−1) on `on`.
    pub fn note_redemption(&mut self, on: NaiveDate, delta: i64, today: NaiveDate) {
        self.redemptions.add(on, delta, today, MONTHS as u32);
    }

    /// Drops what no longer counts on `today` (months before the 12) and what exceeds the caps.
    pub fn prune(&mut self, today: NaiveDate) {
        let oldest = month_index(today) - MONTHS + 1;
        self.categories.retain(|_, m| *m >= oldest);
        while self.categories.len() > MAX_CATEGORIES {
            let oldest = self
                .categories
                .iter()
                .min_by_key(|(c, m)| (**m, std::cmp::Reverse((*c).clone())))
                .map(|(c, _)| c.clone());
            if let Some(c) = oldest {
                self.categories.remove(&c);
            }
        }
        for months in self.stores.values_mut() {
            months.retain(|m| *m >= oldest);
        }
        self.stores.retain(|_, months| !months.is_empty());
        while self.stores.len() > MAX_STORES {
            let weakest = self
                .stores
                .iter()
                .min_by_key(|(_, ms)| (ms.len(), ms.last().copied()))
                .map(|(s, _)| s.clone());
            if let Some(s) = weakest {
                self.stores.remove(&s);
            }
        }
    }

    /// The categories bought in the 12 months to `today`.
    pub fn categories_12m(&self, today: NaiveDate) -> BTreeSet<String> {
        let oldest = month_index(today) - MONTHS + 1;
        self.categories
            .iter()
            .filter(|(_, m)| **m >= oldest)
            .map(|(c, _)| c.clone())
            .collect()
    }

    /// The store with purchases in the most of the 12 months to `today` (ties: the one bought
    /// at most recently, then the lowest id); without any, the store of the first purchase.
    pub fn home_store(&self, today: NaiveDate) -> Option<String> {
        let oldest = month_index(today) - MONTHS + 1;
        self.stores
            .iter()
            .map(|(s, ms)| {
                let recent: Vec<i32> = ms.iter().copied().filter(|m| *m >= oldest).collect();
                (s, recent.len(), recent.last().copied())
            })
            .filter(|(_, n, _)| *n > 0)
            .max_by(|a, b| (a.1, a.2).cmp(&(b.1, b.2)).then_with(|| b.0.cmp(a.0)))
            .map(|(s, _, _)| s.clone())
            .or_else(|| self.first_store.clone())
    }

    pub fn redemptions_12m(&self, today: NaiveDate) -> i64 {
        self.redemptions.qualifying(today, MONTHS as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }
    fn store(s: &str) -> StoreId {
        StoreId::parse(s).unwrap()
    }

    #[test]
    fn tags_are_lower_case_words_of_any_script_up_to_40_characters() {
        assert_eq!(Tag::parse(" VIP ").unwrap().as_str(), "vip");
        assert_eq!(
            Tag::parse("wechat-group-7").unwrap().as_str(),
            "wechat-group-7"
        );
        assert_eq!(Tag::parse("老客户").unwrap().as_str(), "老客户");
        assert!(Tag::parse(&"a".repeat(40)).is_ok());
        assert!(Tag::parse(&"a".repeat(41)).is_err());
        for bad in ["", " ", "a b", "a/b", "a,b"] {
            assert!(Tag::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_purchase_is_written_only_when_it_teaches_something_new() {
        let mut t = MemberTraits::default();
        let today = d(2027, 3, 10);
        assert!(t.note_purchase(&store("s1"), ["tea"], today, today));
        assert!(!t.note_purchase(&store("s1"), ["tea"], d(2027, 3, 20), today));
        assert!(t.note_purchase(&store("s1"), ["tea", "cake"], today, today));
        assert!(t.note_purchase(&store("s2"), [], today, today));
        assert_eq!(t.first_store.as_deref(), Some("s1"));
        // The next month: the same store and category are news again (their month moved).
        let april = d(2027, 4, 1);
        assert!(t.note_purchase(&store("s1"), ["tea"], april, april));
    }

    #[test]
    fn the_twelve_months_end_at_the_eleventh_month_before_this_one() {
        let mut t = MemberTraits::default();
        let bought = d(2026, 4, 30);
        t.note_purchase(&store("s1"), ["tea"], bought, bought);
        // March 2027 is 11 months on: April 2026 still counts; in April 2027 it does not.
        assert_eq!(t.categories_12m(d(2027, 3, 31)), ["tea".to_string()].into());
        assert_eq!(t.home_store(d(2027, 3, 31)).as_deref(), Some("s1"));
        assert!(t.categories_12m(d(2027, 4, 1)).is_empty());
        // Without a purchase in 12 months, the first store.
        assert_eq!(t.home_store(d(2027, 4, 1)).as_deref(), Some("s1"));
        t.note_redemption(bought, 1, bought);
        assert_eq!(t.redemptions_12m(d(2027, 3, 31)), 1);
        assert_eq!(t.redemptions_12m(d(2027, 4, 1)), 0);
    }

    #[test]
    fn the_home_store_has_the_most_months_then_the_latest_then_the_lowest_id() {
        let mut t = MemberTraits::default();
        let today = d(2027, 6, 15);
        for (s, m) in [("b", 1), ("b", 2), ("a", 3), ("c", 5)] {
            let on = d(2027, m, 1);
            t.note_purchase(&store(s), [], on, today);
        }
        assert_eq!(t.home_store(today).as_deref(), Some("b"));
        t.note_purchase(&store("a"), [], d(2027, 4, 1), today);
        // a and b both have two months; a's are later.
        assert_eq!(t.home_store(today).as_deref(), Some("a"));
        let mut u = MemberTraits::default();
        u.note_purchase(&store("z"), [], d(2027, 5, 1), today);
        u.note_purchase(&store("y"), [], d(2027, 5, 2), today);
        assert_eq!(u.home_store(today).as_deref(), Some("y"));
    }

    #[test]
    fn caps_drop_the_oldest_categories_and_the_weakest_stores() {
        let mut t = MemberTraits::default();
        let today = d(2027, 12, 1);
        for i in 0..=MAX_CATEGORIES {
            let on = d(2027, 1 + (i % 12) as u32, 1);
            t.note_purchase(&store("s"), [format!("c{i:03}").as_str()], on, today);
        }
        assert_eq!(t.categories.len(), MAX_CATEGORIES);
        // January's categories (c000, c012, … c192) are the oldest; of equals, the greatest
        // name goes first.
        assert!(t.categories.contains_key("c000"));
        assert!(!t.categories.contains_key("c192"));
        for i in 0..=MAX_STORES {
            t.note_purchase(&store(&format!("s{i:02}")), [], today, today);
        }
        assert_eq!(t.stores.len(), MAX_STORES);
        assert!(t.stores.contains_key("s"));
    }
}
