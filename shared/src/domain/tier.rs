//! Tiers: which tier a qualifying spend supports, the immediate upgrade when a purchase crosses a
//! threshold, and the yearly requalification (at most one level down, extension when still
//! qualified). Dates are calendar dates in the program time zone.

use super::Points;
use super::earning::Multiplier;
use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Silver,
    Gold,
    Diamond,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Silver, Tier::Gold, Tier::Diamond];

    pub fn next(self) -> Option<Tier> {
        match self {
            Tier::Silver => Some(Tier::Gold),
            Tier::Gold => Some(Tier::Diamond),
            Tier::Diamond => None,
        }
    }
    pub fn one_below(self) -> Tier {
        match self {
            Tier::Silver | Tier::Gold => Tier::Silver,
            Tier::Diamond => Tier::Gold,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Silver => "silver",
            Tier::Gold => "gold",
            Tier::Diamond => "diamond",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TierRule {
    /// Qualifying spend, in minor units, needed to hold the tier.
    pub threshold: i64,
    pub multiplier: Multiplier,
    pub birthday_points: Points,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TierTable {
    pub silver: TierRule,
    pub gold: TierRule,
    pub diamond: TierRule,
}

impl TierTable {
    pub fn rule(&self, t: Tier) -> &TierRule {
        match t {
            Tier::Silver => &self.silver,
            Tier::Gold => &self.gold,
            Tier::Diamond => &self.diamond,
        }
    }

    /// The highest tier whose threshold `spend` reaches (silver for anything below gold).
    pub fn supported_by(&self, spend: i64) -> Tier {
        Tier::ALL
            .into_iter()
            .rev()
            .find(|t| spend >= self.rule(*t).threshold)
            .unwrap_or(Tier::Silver)
    }
}

/// What an upgrade check decided.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Upgrade {
    pub tier: Tier,
    pub expires_on: NaiveDate,
}

/// After a purchase lifts qualifying spend to `spend` on `today`: the upgrade, if any. A member
/// never drops here (that is requalification's job) and may jump two tiers at once.
pub fn upgrade_on_spend(
    current: Tier,
    spend: i64,
    table: &TierTable,
    today: NaiveDate,
    validity_months: u32,
) -> Option<Upgrade> {
    let supported = table.supported_by(spend);
    (supported > current).then(|| Upgrade {
        tier: supported,
        expires_on: add_months(today, validity_months),
    })
}

/// The upgrade a purchase lifting qualifying `spend` causes for a member holding `from` (until
/// `from_expires_on`), judged on `judged_on`, on program date `on`: as the purchase keeps it, so a
/// refund can take it back.
pub fn upgrade_caused(
    from: Tier,
    from_expires_on: Option<NaiveDate>,
    spend: i64,
    table: &TierTable,
    judged_on: NaiveDate,
    validity_months: u32,
    on: NaiveDate,
) -> Option<Caused> {
    let up = upgrade_on_spend(from, spend, table, judged_on, validity_months)?;
    Some(Caused {
        from,
        from_expires_on,
        to: up.tier,
        expires_on: up.expires_on,
        on,
    })
}

/// The upgrade a purchase caused, kept on the purchase so a refund within the return window can
/// take it back (DESIGN.md "Points lots").
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Caused {
    pub from: Tier,
    pub from_expires_on: Option<NaiveDate>,
    pub to: Tier,
    pub expires_on: NaiveDate,
    /// The program date of the upgrade.
    pub on: NaiveDate,
}

/// A refund on `today` that leaves qualifying `spend` below the tier a purchase's upgrade gave,
/// fewer than `pending_days` after it (the return window: with 0, never), reverts it: to the
/// tier the member had (and its expiry), or to the tier the spend still supports when that is
/// higher. `None` when the member's tier has moved since (requalification did its own judging)
/// or the spend still holds the tier.
pub fn revert_on_refund(
    current: Tier,
    caused: Option<&Caused>,
    today: NaiveDate,
    pending_days: u32,
    spend: i64,
    table: &TierTable,
) -> Option<(Tier, Option<NaiveDate>)> {
    let c = caused?;
    let within = (today - c.on).num_days() < i64::from(pending_days);
    let supported = table.supported_by(spend);
    if current != c.to || !within || supported >= c.to {
        return None;
    }
    Some(if supported > c.from {
        (supported, Some(c.expires_on))
    } else {
        (c.from, c.from_expires_on)
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Requalification {
    /// Tier not expired (or silver): nothing to do.
    NotDue,
    Upgraded {
        tier: Tier,
        expires_on: NaiveDate,
    },
    Kept {
        expires_on: NaiveDate,
    },
    Downgraded {
        tier: Tier,
        expires_on: Option<NaiveDate>,
    },
}

/// Where a requalification leaves a member: the tier, its expiry, and the ledger line it writes
/// when the tier moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TierAfter {
    pub tier: Tier,
    pub expires_on: Option<NaiveDate>,
    pub line: Option<super::ledger::LedgerKind>,
}

impl Requalification {
    /// What it does to a member at `tier` (nothing when not due).
    pub fn applied_to(self, tier: Tier) -> Option<TierAfter> {
        use super::ledger::LedgerKind;
        let (tier, expires_on, line) = match self {
            Requalification::NotDue => return None,
            Requalification::Kept { expires_on } => (tier, Some(expires_on), None),
            Requalification::Upgraded { tier, expires_on } => {
                (tier, Some(expires_on), Some(LedgerKind::TierUpgrade))
            }
            Requalification::Downgraded { tier, expires_on } => {
                (tier, expires_on, Some(LedgerKind::TierDowngrade))
            }
        };
        Some(TierAfter {
            tier,
            expires_on,
            line,
        })
    }
}

/// Requalification on `today` for a member holding `current` until `expires_on` (inclusive).
/// The new tier is what the spend supports, but never more than one level below `current`; a
/// tier that is kept or entered here runs `validity_months` on from the old expiry, so a job that
/// runs late does not shift anniversaries.
pub fn requalify(
    current: Tier,
    expires_on: Option<NaiveDate>,
    today: NaiveDate,
    spend: i64,
    table: &TierTable,
    validity_months: u32,
) -> Requalification {
    let Some(expiry) = expires_on else {
        return Requalification::NotDue;
    };
    if current == Tier::Silver || today <= expiry {
        return Requalification::NotDue;
    }
    let next_expiry = add_months(expiry, validity_months);
    let supported = table.supported_by(spend);
    if supported > current {
        Requalification::Upgraded {
            tier: supported,
            expires_on: next_expiry,
        }
    } else if supported == current {
        Requalification::Kept {
            expires_on: next_expiry,
        }
    } else {
        let tier = supported.max(current.one_below());
        Requalification::Downgraded {
            tier,
            expires_on: (tier != Tier::Silver).then_some(next_expiry),
        }
    }
}

/// Calendar months later, clamped to the month's end (31 Jan + 1 month = 28/29 Feb).
pub fn add_months(d: NaiveDate, months: u32) -> NaiveDate {
    d.checked_add_months(Months::new(months))
        .unwrap_or(NaiveDate::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_requalification_moves_the_tier_and_writes_a_line_only_when_the_tier_moves() {
        use super::super::ledger::LedgerKind;
        let on: NaiveDate = "2027-06-30".parse().unwrap();
        let after = |tier, expires_on, line| {
            Some(TierAfter {
                tier,
                expires_on,
                line,
            })
        };
        for (r, want) in [
            (Requalification::NotDue, None),
            (
                Requalification::Kept { expires_on: on },
                after(Tier::Gold, Some(on), None),
            ),
            (
                Requalification::Upgraded {
                    tier: Tier::Diamond,
                    expires_on: on,
                },
                after(Tier::Diamond, Some(on), Some(LedgerKind::TierUpgrade)),
            ),
            (
                Requalification::Downgraded {
                    tier: Tier::Silver,
                    expires_on: None,
                },
                after(Tier::Silver, None, Some(LedgerKind::TierDowngrade)),
            ),
        ] {
            assert_eq!(r.applied_to(Tier::Gold), want, "{r:?}");
        }
    }

    use super::*;

    pub(crate) fn table() -> TierTable {
        let r = |threshold, m, b| TierRule {
            threshold,
            multiplier: Multiplier::from_thousandths(m).unwrap(),
            birthday_points: Points(b),
        };
        TierTable {
            silver: r(0, 1000, 100),
            gold: r(100_000, 1500, 300),
            diamond: r(500_000, 2000, 1000),
        }
    }
    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_refund_within_the_return_window_reverts_the_upgrade_it_undoes() {
        let t = table();
        let gold = Caused {
            from: Tier::Silver,
            from_expires_on: None,
            to: Tier::Gold,
            expires_on: d("2028-03-01"),
            on: d("2027-03-01"),
        };
        let diamond = Caused {
            from: Tier::Silver,
            to: Tier::Diamond,
            ..gold
        };
        let was_gold = Caused {
            from: Tier::Gold,
            from_expires_on: Some(d("2027-06-30")),
            to: Tier::Diamond,
            ..gold
        };
        for (current, caused, today, pending, spend, want) in [
            // Below gold again on day 13 of 14: back to silver.
            (
                Tier::Gold,
                Some(gold),
                "2027-03-14",
                14,
                99_999,
                Some((Tier::Silver, None)),
            ),
            // Day 14: the return window has closed.
            (Tier::Gold, Some(gold), "2027-03-15", 14, 99_999, None),
            // Still at the threshold.
            (Tier::Gold, Some(gold), "2027-03-05", 14, 100_000, None),
            // No pending days: today's behaviour, no revert even the same day.
            (Tier::Gold, Some(gold), "2027-03-01", 0, 0, None),
            // The tier moved since (a requalification or another upgrade).
            (Tier::Diamond, Some(gold), "2027-03-05", 14, 0, None),
            // No upgrade on that purchase.
            (Tier::Gold, None, "2027-03-05", 14, 0, None),
            // Two tiers at once, one of them still held: gold, with the upgrade's expiry.
            (
                Tier::Diamond,
                Some(diamond),
                "2027-03-05",
                14,
                200_000,
                Some((Tier::Gold, Some(d("2028-03-01")))),
            ),
            // Back to the gold the member had, with its own expiry.
            (
                Tier::Diamond,
                Some(was_gold),
                "2027-03-05",
                14,
                200_000,
                Some((Tier::Gold, Some(d("2027-06-30")))),
            ),
            (
                Tier::Diamond,
                Some(was_gold),
                "2027-03-05",
                14,
                0,
                Some((Tier::Gold, Some(d("2027-06-30")))),
            ),
        ] {
            assert_eq!(
                revert_on_refund(current, caused.as_ref(), d(today), pending, spend, &t),
                want,
                "{current} {caused:?} {today} {pending} {spend}"
            );
        }
    }

    #[test]
    fn supported_tier_table() {
        let t = table();
        for (spend, want) in [
            (-5, Tier::Silver),
            (0, Tier::Silver),
            (99_999, Tier::Silver),
            (100_000, Tier::Gold),
            (499_999, Tier::Gold),
            (500_000, Tier::Diamond),
            (i64::MAX, Tier::Diamond),
        ] {
            assert_eq!(t.supported_by(spend), want, "{spend}");
        }
    }

    #[test]
    fn upgrade_table() {
        let t = table();
        let today = d("2026-11-22");
        for (current, spend, want) in [
            (Tier::Silver, 99_999, None),
            (Tier::Silver, 100_000, Some(Tier::Gold)),
            (Tier::Silver, 600_000, Some(Tier::Diamond)),
            (Tier::Gold, 200_000, None),
            (Tier::Gold, 500_000, Some(Tier::Diamond)),
            (Tier::Diamond, 0, None),
            (Tier::Gold, 0, None),
        ] {
            let got = upgrade_on_spend(current, spend, &t, today, 12);
            assert_eq!(got.map(|u| u.tier), want, "{current} {spend}");
            if let Some(u) = got {
                assert_eq!(u.expires_on, d("2027-11-22"));
            }
        }
        let leap = upgrade_on_spend(Tier::Silver, 100_000, &t, d("2028-02-29"), 12).unwrap();
        assert_eq!(leap.expires_on, d("2029-02-28"));
    }

    #[test]
    fn requalification_table() {
        use Requalification::*;
        let t = table();
        let exp = Some(d("2027-11-22"));
        for (current, expires, today, spend, want) in [
            (Tier::Silver, None, "2027-12-01", 0, NotDue),
            (Tier::Gold, exp, "2027-11-22", 0, NotDue), // held through the expiry date
            (
                Tier::Gold,
                exp,
                "2027-11-23",
                0,
                Downgraded {
                    tier: Tier::Silver,
                    expires_on: None,
                },
            ),
            (
                Tier::Gold,
                exp,
                "2027-11-23",
                100_000,
                Kept {
                    expires_on: d("2028-11-22"),
                },
            ),
            (
                Tier::Gold,
                exp,
                "2027-11-23",
                500_000,
                Upgraded {
                    tier: Tier::Diamond,
                    expires_on: d("2028-11-22"),
                },
            ),
            (
                Tier::Diamond,
                exp,
                "2027-11-23",
                0,
                Downgraded {
                    tier: Tier::Gold,
                    expires_on: Some(d("2028-11-22")),
                },
            ),
            (
                Tier::Diamond,
                exp,
                "2027-11-23",
                150_000,
                Downgraded {
                    tier: Tier::Gold,
                    expires_on: Some(d("2028-11-22")),
                },
            ),
            (
                Tier::Diamond,
                exp,
                "2027-11-23",
                500_000,
                Kept {
                    expires_on: d("2028-11-22"),
                },
            ),
            // A late job still anchors on the old expiry.
            (
                Tier::Gold,
                exp,
                "2028-01-15",
                100_000,
                Kept {
                    expires_on: d("2028-11-22"),
                },
            ),
        ] {
            assert_eq!(
                requalify(current, expires, d(today), spend, &t, 12),
                want,
                "{current} {today} {spend}"
            );
        }
    }

    #[test]
    fn tier_order_and_neighbours() {
        assert!(Tier::Silver < Tier::Gold && Tier::Gold < Tier::Diamond);
        assert_eq!(Tier::Silver.next(), Some(Tier::Gold));
        assert_eq!(Tier::Diamond.next(), None);
        assert_eq!(Tier::Diamond.one_below(), Tier::Gold);
        assert_eq!(Tier::Silver.one_below(), Tier::Silver);
        assert_eq!(
            serde_json::to_string(&Tier::Diamond).unwrap(),
            "\"diamond\""
        );
    }
}
