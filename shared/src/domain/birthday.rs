//! Birthdays (`MM-DD` or `YYYY-MM-DD`) and the calendar rules of birthday gifts: which stored
//! birthdays are celebrated on a given local date (29 February falls on 28 February in common
//! years), and whether a gift is due, given the catch-up window and the days-on-file rule.

use super::Invalid;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Birthday {
    year: Option<i32>,
    month: u32,
    day: u32,
}

fn is_leap(y: i32) -> bool {
    NaiveDate::from_ymd_opt(y, 2, 29).is_some()
}

impl Birthday {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let bad = || Invalid::new(format!("birthday must be MM-DD or YYYY-MM-DD, got {s:?}"));
        let num = |p: &str, len: usize| -> Result<u32, Invalid> {
            if p.len() == len && p.bytes().all(|b| b.is_ascii_digit()) {
                p.parse().map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        let parts: Vec<&str> = s.split('-').collect();
        let (year, month, day) = match parts.as_slice() {
            [m, d] => (None, num(m, 2)?, num(d, 2)?),
            [y, m, d] => (Some(num(y, 4)? as i32), num(m, 2)?, num(d, 2)?),
            _ => return Err(bad()),
        };
        // Without a year, 29 February is a real birthday; with one, the date must exist.
        let probe_year = year.unwrap_or(2000);
        if NaiveDate::from_ymd_opt(probe_year, month, day).is_none() {
            return Err(Invalid::new(format!(
                "birthday {s:?} is not a calendar date"
            )));
        }
        // A year out of range still parses: refusing it is a rule (422, `Birthday::check`).
        Ok(Birthday { year, month, day })
    }

    /// The rule a parsed birthday must meet: a year from 1900, and not after `today`.
    pub fn check(&self, today: NaiveDate) -> Result<(), Invalid> {
        if self.year.is_some_and(|y| y < 1900) {
            return Err(Invalid::new("birthday year must be 1900 or later"));
        }
        if self.is_after(today) {
            return Err(Invalid::new("birthday cannot be in the future"));
        }
        Ok(())
    }

    /// The birthday's year, when the member gave one.
    pub fn year(&self) -> Option<i32> {
        self.year
    }

    /// The secondary-index partition of this birthday: `MM-DD`.
    pub fn month(&self) -> u32 {
        self.month
    }
    pub fn month_day(&self) -> String {
        format!("{:02}-{:02}", self.month, self.day)
    }

    /// The date the birthday is celebrated in `year`.
    pub fn occurrence(&self, year: i32) -> NaiveDate {
        let (m, d) = if self.month == 2 && self.day == 29 && !is_leap(year) {
            (2, 28)
        } else {
            (self.month, self.day)
        };
        NaiveDate::from_ymd_opt(year, m, d).expect("validated at parse")
    }

    /// A dated birthday that lies after `today` is a typo, not a member.
    pub fn is_after(&self, today: NaiveDate) -> bool {
        self.year
            .and_then(|y| NaiveDate::from_ymd_opt(y, self.month, self.day))
            .is_some_and(|d| d > today)
    }
}

/// The `MM-DD` partitions whose members celebrate on `date`.
pub fn month_days_celebrated_on(date: NaiveDate) -> Vec<String> {
    let mut v = vec![format!("{:02}-{:02}", date.month(), date.day())];
    if date.month() == 2 && date.day() == 28 && !is_leap(date.year()) {
        v.push("02-29".to_owned());
    }
    v
}

/// Whether a birthday gift is due on `local_today`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiftDue {
    /// The birthday of `year` fell on `on`, within the catch-up window, and was on file in time.
    Due { year: i32, on: NaiveDate },
    /// No birthday in the window ending today (not yet, or too long ago).
    NotInWindow,
    /// The birthday is in the window but was set fewer than `min_days_on_file` days before it.
    TooRecentlySet,
}

pub fn gift_due(
    birthday: Birthday,
    set_on: NaiveDate,
    local_today: NaiveDate,
    catch_up_days: u32,
    min_days_on_file: u32,
) -> GiftDue {
    for year in [local_today.year(), local_today.year() - 1] {
        let on = birthday.occurrence(year);
        let age = (local_today - on).num_days();
        if (0..=i64::from(catch_up_days)).contains(&age) {
            let on_file = (on - set_on).num_days();
            return if on_file >= i64::from(min_days_on_file) {
                GiftDue::Due { year, on }
            } else {
                GiftDue::TooRecentlySet
            };
        }
    }
    GiftDue::NotInWindow
}

impl TryFrom<String> for Birthday {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Birthday::parse(&s)
    }
}
impl fmt::Display for Birthday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.year {
            Some(y) => write!(f, "{y:04}-{:02}-{:02}", self.month, self.day),
            None => write!(f, "{:02}-{:02}", self.month, self.day),
        }
    }
}
impl fmt::Debug for Birthday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Birthday({self})")
    }
}
impl From<Birthday> for String {
    fn from(b: Birthday) -> String {
        b.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn check_table_refuses_years_before_1900_and_days_after_today() {
        let today: NaiveDate = "2026-11-22".parse().unwrap();
        for (s, ok) in [
            ("1899-12-31", false),
            ("1900-01-01", true),
            ("2026-11-22", true),
            ("2026-11-23", false),
            ("2101-01-01", false),
            ("11-23", true),
            ("02-29", true),
        ] {
            assert_eq!(Birthday::parse(s).unwrap().check(today).is_ok(), ok, "{s}");
        }
    }

    #[test]
    fn parse_table() {
        for (s, ok) in [
            ("11-22", true),
            ("02-29", true),
            ("1990-11-22", true),
            ("2000-02-29", true),
            ("1999-02-29", false),
            ("02-30", false),
            ("13-01", false),
            ("00-10", false),
            ("11-31", false),
            ("1-2", false),
            ("11/22", false),
            // Well-formed: it parses; the rule (`check`) refuses it, as a 422.
            ("1800-01-01", true),
            ("2101-01-01", true),
            ("", false),
            ("+1-11-22", false),
        ] {
            assert_eq!(Birthday::parse(s).is_ok(), ok, "{s}");
        }
        assert_eq!(
            Birthday::parse("1990-11-22").unwrap().to_string(),
            "1990-11-22"
        );
        assert_eq!(Birthday::parse("11-22").unwrap().month_day(), "11-22");
    }

    #[test]
    fn leap_day_occurrence_table() {
        let b = Birthday::parse("02-29").unwrap();
        for (year, want) in [
            (2024, "2024-02-29"),
            (2025, "2025-02-28"),
            (2027, "2027-02-28"),
            (2028, "2028-02-29"),
            (2100, "2100-02-28"),
        ] {
            assert_eq!(b.occurrence(year), d(want), "{year}");
        }
    }

    #[test]
    fn partitions_celebrated_table() {
        for (date, want) in [
            ("2027-02-28", vec!["02-28", "02-29"]),
            ("2028-02-28", vec!["02-28"]),
            ("2028-02-29", vec!["02-29"]),
            ("2026-11-22", vec!["11-22"]),
        ] {
            assert_eq!(month_days_celebrated_on(d(date)), want, "{date}");
        }
    }

    #[test]
    fn gift_due_table() {
        let bd = |s| Birthday::parse(s).unwrap();
        use GiftDue::*;
        let long_ago = d("2020-01-01");
        for (birthday, set_on, today, catch_up, min_days, want) in [
            (
                "11-22",
                long_ago,
                "2026-11-22",
                3,
                30,
                Due {
                    year: 2026,
                    on: d("2026-11-22"),
                },
            ),
            ("11-22", long_ago, "2026-11-21", 3, 30, NotInWindow),
            (
                "11-22",
                long_ago,
                "2026-11-25",
                3,
                30,
                Due {
                    year: 2026,
                    on: d("2026-11-22"),
                },
            ),
            ("11-22", long_ago, "2026-11-26", 3, 30, NotInWindow),
            (
                "12-31",
                long_ago,
                "2027-01-02",
                3,
                30,
                Due {
                    year: 2026,
                    on: d("2026-12-31"),
                },
            ),
            (
                "02-29",
                long_ago,
                "2027-02-28",
                3,
                30,
                Due {
                    year: 2027,
                    on: d("2027-02-28"),
                },
            ),
            ("02-29", long_ago, "2027-03-01", 0, 30, NotInWindow),
            ("02-29", long_ago, "2028-02-28", 0, 30, NotInWindow),
            (
                "02-29",
                long_ago,
                "2028-02-29",
                0,
                30,
                Due {
                    year: 2028,
                    on: d("2028-02-29"),
                },
            ),
            // Set on the birthday itself: nothing unless the rule is 0.
            (
                "11-22",
                d("2026-11-22"),
                "2026-11-22",
                3,
                30,
                TooRecentlySet,
            ),
            (
                "11-22",
                d("2026-11-22"),
                "2026-11-22",
                3,
                0,
                Due {
                    year: 2026,
                    on: d("2026-11-22"),
                },
            ),
            // Exactly 30 days on file qualifies; 29 does not.
            (
                "11-22",
                d("2026-10-23"),
                "2026-11-22",
                3,
                30,
                Due {
                    year: 2026,
                    on: d("2026-11-22"),
                },
            ),
            (
                "11-22",
                d("2026-10-24"),
                "2026-11-22",
                3,
                30,
                TooRecentlySet,
            ),
        ] {
            assert_eq!(
                gift_due(bd(birthday), set_on, d(today), catch_up, min_days),
                want,
                "{birthday} set {set_on} today {today}"
            );
        }
    }
}

super::string_schema!(Birthday, "11-22", "Birthday as MM-DD or YYYY-MM-DD");
