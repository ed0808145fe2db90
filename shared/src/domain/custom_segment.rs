//! Custom segments (DESIGN.md "Custom segments"): the definitions operators write, the registry
//! that numbers their rules, and the decisions about them — what a definition's write leaves,
//! and which listings a member enters and leaves when evaluated. Pure.
//!
//! Each version of a definition's rule gets a number of its own. A member's listing is kept
//! under the number it was evaluated with, so a changed rule is evaluated into a new listing
//! while the old one is still served; the evaluation that covered every member makes the new
//! number the one listed, with its size and the time it started.

use super::Invalid;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// At most this many definitions.
pub const MAX_DEFINITIONS: usize = 100;

/// A custom segment's slug: `custom:<slug>` is its id. 1–48 lower-case letters, digits and
/// `-`, starting with a letter or digit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Slug(String);

impl Slug {
    pub fn parse(s: &str) -> Result<Slug, Invalid> {
        let ok = (1..=48).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Slug(s.to_owned()))
        } else {
            Err(Invalid(format!(
                "a custom segment is custom:<slug>, the slug 1 to 48 lower-case letters, digits \
                 and '-' (got {s:?})"
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Slug {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Slug::parse(&s)
    }
}

impl From<Slug> for String {
    fn from(s: Slug) -> String {
        s.0
    }
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "custom:{}", self.0)
    }
}

/// A segment a path names: a built-in one (`lifecycle:dormant`) or `custom:<slug>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentRef {
    Builtin(super::segment::SegmentId),
    Custom(Slug),
}

impl SegmentRef {
    pub fn parse(s: &str) -> Option<SegmentRef> {
        match s.strip_prefix("custom:") {
            Some(slug) => Slug::parse(slug).ok().map(SegmentRef::Custom),
            None => super::segment::SegmentId::parse(s).map(SegmentRef::Builtin),
        }
    }
}

/// One definition as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub slug: Slug,
    pub name: String,
    pub description: Option<String>,
    /// The rule as [`super::rule::Rule::to_json`] writes it.
    pub rule: Value,
    /// The number of the rule in force.
    pub number: u32,
    /// The number whose evaluation covered every member: what the listing serves.
    pub listed: Option<u32>,
    /// When the evaluation of `listed` started (members are as of that time or later).
    pub evaluated_at: Option<DateTime<Utc>>,
    /// When `number` was given (an evaluation started before it does not count for it).
    pub numbered_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Definition {
    /// `building` until the rule in force has been evaluated over every member.
    pub fn building(&self) -> bool {
        self.listed != Some(self.number)
    }
}

/// The numbers of the definitions' rules: serialises their writes (each commits the registry at
/// the version it read) and gives every new rule a number never used before.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    pub next: u32,
    pub slugs: BTreeMap<Slug, u32>,
}

/// What a definition's write asked for (parsed).
pub struct Defining<'a> {
    pub slug: &'a Slug,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub rule: Value,
}

/// Why a definition's write is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    TooMany,
}

/// A definition's write: the new definition and registry, and whether it was created. A new
/// rule gets a new number (and is built); a rule unchanged keeps its number and listing.
pub fn define(
    prior: Option<&Definition>,
    registry: &Registry,
    req: Defining<'_>,
    now: DateTime<Utc>,
) -> Result<(Definition, Registry, bool), Refused> {
    let mut reg = registry.clone();
    if prior.is_none() && reg.slugs.len() >= MAX_DEFINITIONS {
        return Err(Refused::TooMany);
    }
    let same_rule = prior.filter(|p| p.rule == req.rule);
    let (number, numbered_at) = match same_rule {
        Some(p) => (p.number, p.numbered_at),
        None => {
            reg.next += 1;
            (reg.next, now)
        }
    };
    reg.slugs.insert(req.slug.clone(), number);
    let def = Definition {
        slug: req.slug.clone(),
        name: req.name.to_owned(),
        description: req.description.map(str::to_owned),
        rule: req.rule,
        number,
        listed: prior.and_then(|p| p.listed),
        evaluated_at: prior.and_then(|p| p.evaluated_at),
        numbered_at,
        created_at: prior.map_or(now, |p| p.created_at),
        updated_at: now,
    };
    Ok((def, reg, prior.is_none()))
}

/// The numbers an evaluation keeps listings under: every definition's rule in force and the
/// one it lists while a new rule is built. Listings under any other number are removed.
pub fn numbers_in_use(defs: &[Definition]) -> BTreeSet<u32> {
    defs.iter()
        .flat_map(|d| std::iter::once(d.number).chain(d.listed))
        .collect()
}

/// What one member's evaluation changes: the listings it enters and leaves.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Moves {
    pub enter: BTreeSet<u32>,
    pub leave: BTreeSet<u32>,
}

impl Moves {
    pub fn is_empty(&self) -> bool {
        self.enter.is_empty() && self.leave.is_empty()
    }
}

/// A member listed under `before`, whose rules in force (`evaluated`: number → matches) were
/// evaluated now, with `in_use` the numbers still in use: enters what matches and it is not in,
/// leaves what no longer matches and what is no longer in use; a listing under a number in use
/// but not evaluated (an old rule still served while its successor builds) stays as it is.
pub fn moves(
    before: &BTreeSet<u32>,
    evaluated: &BTreeMap<u32, bool>,
    in_use: &BTreeSet<u32>,
) -> Moves {
    let mut out = Moves::default();
    for (n, matches) in evaluated {
        match (*matches, before.contains(n)) {
            (true, false) => {
                out.enter.insert(*n);
            }
            (false, true) => {
                out.leave.insert(*n);
            }
            _ => {}
        }
    }
    for n in before {
        if !in_use.contains(n) {
            out.leave.insert(*n);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }
    fn slug(s: &str) -> Slug {
        Slug::parse(s).unwrap()
    }
    fn req<'a>(s: &'a Slug, rule: Value) -> Defining<'a> {
        Defining {
            slug: s,
            name: "Gold tea lovers",
            description: None,
            rule,
        }
    }

    #[test]
    fn slugs_are_lower_case_letters_digits_and_dashes() {
        assert!(Slug::parse("gold-tea-lovers").is_ok());
        assert!(Slug::parse("7-day").is_ok());
        assert!(Slug::parse(&"a".repeat(48)).is_ok());
        for bad in ["", "-x", "Gold", "a_b", "a b", "中文", &"a".repeat(49)] {
            assert!(Slug::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(slug("vip").to_string(), "custom:vip");
    }

    #[test]
    fn a_new_rule_gets_a_new_number_and_an_unchanged_one_keeps_its_listing() {
        let s = slug("tea");
        let (d1, r1, created) =
            define(None, &Registry::default(), req(&s, json!(1)), at(10)).unwrap();
        assert!(created);
        assert_eq!((d1.number, d1.listed, r1.next), (1, None, 1));
        assert!(d1.building());
        let mut built = d1.clone();
        built.listed = Some(1);
        built.evaluated_at = Some(at(20));
        // The name changed, the rule did not: same number, still listed.
        let (d2, r2, created) = define(Some(&built), &r1, req(&s, json!(1)), at(30)).unwrap();
        assert!(!created);
        assert_eq!(
            (d2.number, d2.listed, d2.numbered_at, r2.next),
            (1, Some(1), at(10), 1)
        );
        assert!(!d2.building());
        // A new rule: a new number, built while the old listing is served.
        let (d3, r3, _) = define(Some(&d2), &r2, req(&s, json!(2)), at(40)).unwrap();
        assert_eq!(
            (d3.number, d3.listed, d3.numbered_at, r3.next),
            (2, Some(1), at(40), 2)
        );
        assert!(d3.building());
        assert_eq!(d3.created_at, at(10));
        assert_eq!(numbers_in_use(&[d3]), [1, 2].into());
    }

    #[test]
    fn at_most_one_hundred_definitions_but_each_may_change() {
        let mut reg = Registry::default();
        for i in 0..MAX_DEFINITIONS {
            reg.slugs.insert(slug(&format!("s{i}")), i as u32);
        }
        let s = slug("one-more");
        assert_eq!(
            define(None, &reg, req(&s, json!(1)), at(1)).unwrap_err(),
            Refused::TooMany
        );
        let existing = slug("s3");
        let (prior, _, _) =
            define(None, &Registry::default(), req(&existing, json!(1)), at(1)).unwrap();
        assert!(define(Some(&prior), &reg, req(&existing, json!(2)), at(2)).is_ok());
    }

    #[test]
    fn moves_enter_leave_and_drop_numbers_no_longer_in_use() {
        let before: BTreeSet<u32> = [1, 2, 3, 9].into();
        // 1 still matches, 2 no longer, 4 newly; 3 is listed and in use but not evaluated
        // (an old rule still served); 9 is no longer in use.
        let evaluated: BTreeMap<u32, bool> = [(1, true), (2, false), (4, true), (5, false)].into();
        let in_use: BTreeSet<u32> = [1, 2, 3, 4, 5].into();
        let m = moves(&before, &evaluated, &in_use);
        assert_eq!(m.enter, [4].into());
        assert_eq!(m.leave, [2, 9].into());
        assert!(moves(&[1].into(), &[(1, true)].into(), &[1].into()).is_empty());
    }
}
