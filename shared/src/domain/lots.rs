//! Points lots (DESIGN.md "Points lots"), the pure part: pending points by the day they become
//! spendable, spendable points by the last day they may be spent, soonest first, and what is
//! owed when a refund takes back points already spent. Callers pass the program date and the
//! expiry policy; every change returns what it moved, so the caller can write its ledger lines
//! and events.
//!
//! The ledger identity this keeps, whatever the sequence: Σ ledger = available + pending − owed,
//! where making pending points available moves nothing in the ledger and expiry is a negative
//! entry.

use chrono::{Datelike, Duration, Months, NaiveDate};

/// How spendable points expire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    Never,
    /// At the end of the month that is `months` after the month they became available.
    Rolling {
        months: u32,
    },
    /// All of them, once no purchase or redemption happened for `days`.
    Inactivity {
        days: u32,
    },
}

impl Expiry {
    /// The last day points that become available on `on` may be spent, under a policy that dates
    /// each lot (`None` under the others).
    pub fn lot_expiry(self, on: NaiveDate) -> Option<NaiveDate> {
        match self {
            Expiry::Rolling { months } => on
                .with_day(1)?
                .checked_add_months(Months::new(months.checked_add(1)?))?
                .pred_opt(),
            Expiry::Never | Expiry::Inactivity { .. } => None,
        }
    }
}

/// Spendable points that expire together (`None`: not on a date of their own).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Lot {
    pub expires_on: Option<NaiveDate>,
    pub points: i64,
}

/// Where a refund's points came from: still pending (until that day), or already available (in
/// the lot that expires then).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Pending(NaiveDate),
    Available(Option<NaiveDate>),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lots {
    /// Points that become available on a day, ascending by day, none zero.
    pub pending: Vec<(NaiveDate, i64)>,
    /// Spendable points, soonest-expiring first, the undated lot last, none zero.
    pub available: Vec<Lot>,
    /// Points taken back after they were spent; the next points made available pay it first.
    /// Never positive while a lot holds points.
    pub owed: i64,
}

/// What a settlement moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Pending points that became available, by the day they did.
    pub made_available: Vec<(NaiveDate, i64)>,
    /// Lots that expired.
    pub expired: Vec<Lot>,
}

/// What taking points back moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Taken {
    pub from_pending: i64,
    pub from_available: Vec<Lot>,
    /// Taken beyond what there was: now owed.
    pub owed: i64,
}

impl Taken {
    pub fn total(&self) -> i64 {
        self.from_pending + self.from_available.iter().map(|l| l.points).sum::<i64>() + self.owed
    }
}

/// Not enough spendable points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Short {
    pub spendable: i64,
}

fn later(a: Option<NaiveDate>, b: Option<NaiveDate>) -> bool {
    match (a, b) {
        (None, None) => false,
        (None, Some(_)) => true,
        (Some(_), None) => false,
        (Some(x), Some(y)) => x > y,
    }
}

impl Lots {
    /// A balance kept before lots existed: one undated lot, or what is owed.
    pub fn from_balance(balance: i64) -> Lots {
        let mut l = Lots::default();
        if balance > 0 {
            l.available.push(Lot {
                expires_on: None,
                points: balance,
            });
        } else {
            l.owed = -balance;
        }
        l
    }

    /// Whether the spendable balance alone describes these lots.
    pub fn is_plain(&self) -> bool {
        self.pending.is_empty() && self.available.iter().all(|l| l.expires_on.is_none())
    }

    pub fn pending_total(&self) -> i64 {
        self.pending.iter().map(|(_, p)| p).sum()
    }

    pub fn available_total(&self) -> i64 {
        self.available.iter().map(|l| l.points).sum()
    }

    /// What the member may spend: available minus what is owed.
    pub fn spendable(&self) -> i64 {
        self.available_total() - self.owed
    }

    /// Makes due pending points available and expires what is past its last day. `last_active`
    /// is the day of the last purchase or redemption (or enrolment), for the inactivity policy.
    /// Idempotent: settling twice on one day moves nothing the second time.
    pub fn settle(&mut self, today: NaiveDate, expiry: Expiry, last_active: NaiveDate) -> Settled {
        let mut out = Settled::default();
        while let Some(&(day, points)) = self.pending.first() {
            if day > today {
                break;
            }
            self.pending.remove(0);
            out.made_available.push((day, points));
            self.add(expiry.lot_expiry(day), points);
        }
        let dead = |l: &Lot| match expiry {
            Expiry::Rolling { .. } => l.expires_on.is_some_and(|e| e < today),
            Expiry::Inactivity { days } => last_active + Duration::days(i64::from(days)) < today,
            Expiry::Never => false,
        };
        let (gone, kept): (Vec<Lot>, Vec<Lot>) = self.available.iter().partition(|l| dead(l));
        self.available = kept;
        out.expired = gone;
        out
    }

    /// Adds spendable points to the lot that expires on `expires_on`, after paying what is owed.
    fn add(&mut self, expires_on: Option<NaiveDate>, points: i64) {
        let repaid = self.owed.min(points).max(0);
        self.owed -= repaid;
        let points = points - repaid;
        if points <= 0 {
            return;
        }
        if let Some(l) = self
            .available
            .iter_mut()
            .find(|l| l.expires_on == expires_on)
        {
            l.points += points;
            return;
        }
        let at = self
            .available
            .iter()
            .position(|l| later(l.expires_on, expires_on))
            .unwrap_or(self.available.len());
        self.available.insert(at, Lot { expires_on, points });
    }

    /// A purchase's points: pending until `occurred_on + pending_days`, or available at once when
    /// that day has come (a late receipt).
    pub fn earn(
        &mut self,
        points: i64,
        occurred_on: NaiveDate,
        pending_days: u32,
        today: NaiveDate,
        expiry: Expiry,
    ) -> Origin {
        let on = occurred_on + Duration::days(i64::from(pending_days));
        if on > today {
            match self.pending.iter_mut().find(|(d, _)| *d == on) {
                Some((_, p)) => *p += points,
                None => {
                    let at = self
                        .pending
                        .iter()
                        .position(|(d, _)| *d > on)
                        .unwrap_or(self.pending.len());
                    self.pending.insert(at, (on, points));
                }
            }
            Origin::Pending(on)
        } else {
            let e = expiry.lot_expiry(on);
            self.add(e, points);
            Origin::Available(e)
        }
    }

    /// Points available at once (gifts, campaign bonuses, positive adjustments).
    pub fn grant(&mut self, points: i64, today: NaiveDate, expiry: Expiry) {
        self.add(expiry.lot_expiry(today), points);
    }

    /// Spends `points` soonest-expiring first, or refuses when fewer are spendable.
    pub fn spend(&mut self, points: i64) -> Result<Vec<Lot>, Short> {
        if points > self.spendable() {
            return Err(Short {
                spendable: self.spendable(),
            });
        }
        Ok(self.take_available(points, None))
    }

    fn take_available(&mut self, mut points: i64, first: Option<Option<NaiveDate>>) -> Vec<Lot> {
        let mut taken = Vec::new();
        let mut order: Vec<usize> = (0..self.available.len()).collect();
        if let Some(f) = first
            && let Some(i) = self.available.iter().position(|l| l.expires_on == f)
        {
            order.retain(|j| *j != i);
            order.insert(0, i);
        }
        for i in order {
            if points == 0 {
                break;
            }
            let l = &mut self.available[i];
            let n = l.points.min(points);
            l.points -= n;
            points -= n;
            taken.push(Lot {
                expires_on: l.expires_on,
                points: n,
            });
        }
        self.available.retain(|l| l.points != 0);
        taken
    }

    /// Takes points back (a refund, a negative adjustment): from the purchase's own lot first,
    /// then soonest-expiring first, and what is missing becomes owed.
    pub fn take_back(&mut self, points: i64, origin: Option<Origin>) -> Taken {
        let mut left = points;
        let mut out = Taken::default();
        if let Some(Origin::Pending(day)) = origin
            && let Some(i) = self.pending.iter().position(|(d, _)| *d == day)
        {
            let n = self.pending[i].1.min(left);
            self.pending[i].1 -= n;
            if self.pending[i].1 == 0 {
                self.pending.remove(i);
            }
            left -= n;
            out.from_pending = n;
        }
        let first = match origin {
            Some(Origin::Available(e)) => Some(e),
            _ => None,
        };
        let available = self.available_total().min(left);
        out.from_available = self.take_available(available, first);
        left -= available;
        self.owed += left;
        out.owed = left;
        out
    }

    /// Returns spent points to the lots they came from (a cancelled redemption); a lot that has
    /// expired meanwhile comes back expiring 30 days from today.
    pub fn restore(&mut self, lots: &[Lot], today: NaiveDate) {
        for l in lots {
            let e = match l.expires_on {
                Some(e) if e < today => Some(today + Duration::days(30)),
                e => e,
            };
            self.add(e, l.points);
        }
    }
}

/// Expiring-soon notices go out this many days before the last day points may be spent, the
/// farther one first.
pub const NOTICE_DAYS: [i64; 2] = [30, 7];

/// The last expiring-soon notice a member was sent: for the expiry whose last day is
/// `expires_on`, `days_ahead` before it. Stored as `2028-03-31/30`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notified {
    pub expires_on: NaiveDate,
    pub days_ahead: i64,
}

impl std::fmt::Display for Notified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.expires_on, self.days_ahead)
    }
}

impl serde::Serialize for Notified {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Notified {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Notified {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (e, d) = s.split_once('/').ok_or("expected date/days")?;
        Ok(Notified {
            expires_on: e.parse().map_err(|e| format!("{e}"))?,
            days_ahead: d.parse().map_err(|e| format!("{e}"))?,
        })
    }
}

/// The member's next expiry of spendable points: its last day and the points it takes. Under
/// `rolling`, the soonest dated lot; under `inactivity`, everything available, on the last day
/// of the inactivity period; under `never`, none.
pub fn next_expiry(lots: &Lots, expiry: Expiry, last_active: NaiveDate) -> Option<Lot> {
    match expiry {
        Expiry::Never => None,
        Expiry::Rolling { .. } => lots
            .available
            .iter()
            .find(|l| l.expires_on.is_some())
            .copied(),
        Expiry::Inactivity { days } => (lots.available_total() > 0).then(|| Lot {
            expires_on: Some(last_active + Duration::days(i64::from(days))),
            points: lots.available_total(),
        }),
    }
}

/// Whether the notice `days_ahead` before `expires_on` has been sent (a nearer one sent
/// counts for the farther ones: a member told "7 days left" is not told "30 days left" after).
/// A notice for a later expiry counts for an earlier one: only a cancelled redemption brings
/// back points dated before an expiry already announced, and announcing them would have to
/// forget the later notice (the member item keeps one), which would then go out twice.
fn sent(notified: Option<Notified>, expires_on: NaiveDate, days_ahead: i64) -> bool {
    notified.is_some_and(|n| {
        n.expires_on > expires_on || (n.expires_on == expires_on && n.days_ahead <= days_ahead)
    })
}

/// The expiring-soon notice due on `today` for `next` (from [`next_expiry`]), if one is and has
/// not been sent: the nearest notice whose day has come, so a job that was late sends one notice,
/// not two.
pub fn notice_due(
    next: Option<Lot>,
    notified: Option<Notified>,
    today: NaiveDate,
) -> Option<Notified> {
    let expires_on = next?.expires_on?;
    let ahead = (expires_on - today).num_days();
    if ahead < 0 {
        return None;
    }
    let days_ahead = NOTICE_DAYS.iter().rev().copied().find(|d| ahead <= *d)?;
    (!sent(notified, expires_on, days_ahead)).then_some(Notified {
        expires_on,
        days_ahead,
    })
}

/// The next day the points job has something to do for a member: pending points become
/// available, the next expiry has passed (the day after its last day), or a notice is due. After
/// the job has handled a member on a day, this is a later day (or none).
pub fn next_due(
    lots: &Lots,
    expiry: Expiry,
    last_active: NaiveDate,
    notified: Option<Notified>,
) -> Option<NaiveDate> {
    let pending = lots.pending.first().map(|(d, _)| *d);
    let mut days: Vec<NaiveDate> = pending.into_iter().collect();
    if let Some(e) = next_expiry(lots, expiry, last_active).and_then(|l| l.expires_on) {
        days.push(e + Duration::days(1));
        days.extend(
            NOTICE_DAYS
                .iter()
                .filter(|d| !sent(notified, e, **d))
                .map(|d| e - Duration::days(*d)),
        );
    }
    days.into_iter().min()
}

/// The compact stored form (the member item must stay under 1 KB): `p` pending and `a` lots as
/// `day:points` pairs, `o` what is owed, parts separated by spaces. The first day of a list is
/// counted from 2000-01-01, each next one from the day before it (pending days and monthly expiries
/// are close together), and the undated lot is `-`: `p9935:60,5:5 a10257:100,-:40` (and ` o7` when 7 points are owed).
pub mod stored {
    use super::*;

    fn epoch() -> NaiveDate {
        NaiveDate::from_ymd_opt(2000, 1, 1).expect("a valid date")
    }
    fn pairs(s: &str) -> Result<Vec<(&str, i64)>, String> {
        if s.is_empty() {
            return Ok(Vec::new());
        }
        s.split(',')
            .map(|p| {
                let (k, v) = p.split_once(':').ok_or_else(|| format!("bad pair {p}"))?;
                let v: i64 = v.parse().map_err(|_| format!("bad points {p}"))?;
                Ok((k, v))
            })
            .collect()
    }

    /// Each day as the distance from the one before (the first from the epoch).
    fn days(list: impl Iterator<Item = (Option<NaiveDate>, i64)>) -> String {
        let mut prev = epoch();
        list.map(|(d, n)| match d {
            Some(d) => {
                let text = format!("{}:{n}", (d - prev).num_days());
                prev = d;
                text
            }
            None => format!("-:{n}"),
        })
        .collect::<Vec<_>>()
        .join(",")
    }

    fn parse_days(s: &str) -> Result<Vec<(Option<NaiveDate>, i64)>, String> {
        let mut prev = epoch();
        pairs(s)?
            .into_iter()
            .map(|(k, v)| {
                if k == "-" {
                    return Ok((None, v));
                }
                let n: i64 = k.parse().map_err(|_| format!("bad day {k}"))?;
                prev = prev
                    .checked_add_signed(Duration::days(n))
                    .ok_or_else(|| format!("bad day {k}"))?;
                Ok((Some(prev), v))
            })
            .collect()
    }

    pub fn encode(l: &Lots) -> String {
        let p = days(l.pending.iter().map(|(d, n)| (Some(*d), *n)));
        let a = days(l.available.iter().map(|x| (x.expires_on, x.points)));
        // Nothing owed, the usual case, is left out.
        match l.owed {
            0 => format!("p{p} a{a}"),
            o => format!("p{p} a{a} o{o}"),
        }
    }

    /// Serde for an optional stored form.
    pub mod option {
        use super::{Lots, decode, encode};
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &Option<Lots>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(l) => s.serialize_str(&encode(l)),
                None => s.serialize_none(),
            }
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Lots>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|t| decode(&t).map_err(serde::de::Error::custom))
                .transpose()
        }
    }

    pub fn decode(s: &str) -> Result<Lots, String> {
        let mut parts = s.split(' ');
        let mut next = |tag: char| {
            parts
                .next()
                .and_then(|p| p.strip_prefix(tag))
                .ok_or_else(|| format!("no {tag} part in {s:?}"))
        };
        let pending = parse_days(next('p')?)?
            .into_iter()
            .map(|(d, v)| {
                d.map(|d| (d, v))
                    .ok_or_else(|| "an undated pending lot".to_owned())
            })
            .collect::<Result<_, String>>()?;
        let available = parse_days(next('a')?)?
            .into_iter()
            .map(|(expires_on, points)| Lot { expires_on, points })
            .collect();
        let owed = match parts.next() {
            None => 0,
            Some(o) => o
                .strip_prefix('o')
                .and_then(|o| o.parse().ok())
                .filter(|o| *o > 0)
                .ok_or_else(|| format!("bad owed in {s:?}"))?,
        };
        if parts.next().is_some() {
            return Err(format!("more than p, a and o parts in {s:?}"));
        }
        Ok(Lots {
            pending,
            available,
            owed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_stored_form_is_short_and_reads_back() {
        let mut lots = Lots::default();
        assert_eq!(stored::encode(&lots), "p a");
        lots.earn(60, d("2027-03-01"), 14, d("2027-03-01"), ROLLING_12);
        lots.grant(100, d("2027-01-10"), ROLLING_12);
        lots.grant(40, d("2027-01-10"), Expiry::Never);
        let text = stored::encode(&lots);
        // 2027-03-15 is day 27·365 + 7 leap days + 59 + 14 = 9935; 2028-01-31 is 28·365 + 7 + 30 = 10257.
        assert_eq!(text, "p9935:60 a10257:100,-:40");
        assert_eq!(stored::decode(&text).unwrap(), lots);
        lots.earn(5, d("2027-03-06"), 14, d("2027-03-06"), ROLLING_12);
        let text = stored::encode(&lots);
        assert_eq!(text, "p9935:60,5:5 a10257:100,-:40");
        assert_eq!(stored::decode(&text).unwrap(), lots);
        // Thirteen monthly lots and fourteen pending days, of large numbers, stay under 250 bytes.
        let mut full = Lots::default();
        for m in 0..13 {
            full.grant(99_999, d("2027-01-15") + Duration::days(31 * m), ROLLING_12);
        }
        for k in 0..14 {
            full.earn(
                9_999,
                d("2028-02-01") + Duration::days(k),
                14,
                d("2028-02-01"),
                ROLLING_12,
            );
        }
        let text = stored::encode(&full);
        assert!(text.len() < 250, "{} bytes: {text}", text.len());
        assert_eq!(stored::decode(&text).unwrap(), full);
        for bad in [
            "",
            "p",
            "px:1 a o0",
            "p a1:x o0",
            "p a o",
            "p a o0",
            "p a o5 x",
            "a p o0",
            "p-:5 a o0",
        ] {
            assert!(stored::decode(bad).is_err(), "{bad:?}");
        }
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    const ROLLING_12: Expiry = Expiry::Rolling { months: 12 };

    #[test]
    fn a_notice_goes_30_and_7_days_ahead_once_each_and_a_late_job_sends_only_the_nearer() {
        let lot = |e: &str| {
            Some(Lot {
                expires_on: Some(d(e)),
                points: 30,
            })
        };
        let n = |e: &str, days_ahead| {
            Some(Notified {
                expires_on: d(e),
                days_ahead,
            })
        };
        let e = "2028-02-29";
        for (today, notified, want) in [
            ("2028-01-29", None, None),                   // 31 days ahead
            ("2028-01-30", None, n(e, 30)),               // 30
            ("2028-01-30", n(e, 30), None),               // sent already
            ("2028-02-21", n(e, 30), None),               // 8
            ("2028-02-22", n(e, 30), n(e, 7)),            // 7
            ("2028-02-22", None, n(e, 7)),                // late: the nearer only
            ("2028-02-22", n(e, 7), None),                // sent already
            ("2028-02-10", n(e, 7), None),                // a nearer one counts for the farther
            ("2028-02-29", None, n(e, 7)),                // the last day
            ("2028-03-01", None, None),                   // past: expired, nothing to announce
            ("2028-01-30", n("2027-02-28", 7), n(e, 30)), // an older expiry's notice
            // Points a cancellation restored, dated before an expiry already announced: the
            // later notice counts (announcing them would make the later one go out twice).
            ("2028-02-22", n("2028-03-31", 30), None),
        ] {
            assert_eq!(
                notice_due(lot(e), notified, d(today)),
                want,
                "{today} {notified:?}"
            );
        }
        assert_eq!(notice_due(None, None, d(e)), None);
        assert_eq!(
            notice_due(
                Some(Lot {
                    expires_on: None,
                    points: 5
                }),
                None,
                d(e)
            ),
            None
        );
    }

    #[test]
    fn the_next_due_day_is_the_soonest_of_pending_notices_and_the_day_after_expiry() {
        let mut lots = Lots::default();
        let today = d("2027-01-10");
        assert_eq!(next_due(&lots, ROLLING_12, today, None), None);
        lots.earn(100, today, 14, today, ROLLING_12);
        assert_eq!(
            next_due(&lots, ROLLING_12, today, None),
            Some(d("2027-01-24"))
        );
        lots.settle(d("2027-01-24"), ROLLING_12, today);
        // January's lot: last day 2028-01-31; notices on 01-01 and 01-24, gone on 02-01.
        assert_eq!(
            next_due(&lots, ROLLING_12, today, None),
            Some(d("2028-01-01"))
        );
        let thirty = Some(Notified {
            expires_on: d("2028-01-31"),
            days_ahead: 30,
        });
        assert_eq!(
            next_due(&lots, ROLLING_12, today, thirty),
            Some(d("2028-01-24"))
        );
        let seven = Some(Notified {
            expires_on: d("2028-01-31"),
            days_ahead: 7,
        });
        assert_eq!(
            next_due(&lots, ROLLING_12, today, seven),
            Some(d("2028-02-01"))
        );
        assert_eq!(next_due(&lots, Expiry::Never, today, None), None);
        // Inactivity: everything, on the last day of the period counted from the last activity.
        let inactive = Expiry::Inactivity { days: 365 };
        let plain = Lots::from_balance(40);
        assert_eq!(
            next_expiry(&plain, inactive, today),
            Some(Lot {
                expires_on: Some(d("2028-01-10")),
                points: 40
            })
        );
        assert_eq!(
            next_due(&plain, inactive, today, None),
            Some(d("2027-12-11"))
        );
        assert_eq!(
            next_due(&Lots::from_balance(-5), inactive, today, None),
            None
        );
        assert_eq!(
            next_expiry(&plain, ROLLING_12, today),
            None,
            "the undated lot never expires"
        );
    }

    #[test]
    fn rolling_expiry_is_the_end_of_the_month_months_later() {
        for (on, months, want) in [
            ("2027-01-10", 12, "2028-01-31"),
            ("2027-01-31", 12, "2028-01-31"),
            ("2027-02-10", 12, "2028-02-29"),
            ("2027-12-01", 1, "2028-01-31"),
            ("2027-11-30", 0, "2027-11-30"),
        ] {
            assert_eq!(
                Expiry::Rolling { months }.lot_expiry(d(on)),
                Some(d(want)),
                "{on} + {months}"
            );
        }
        assert_eq!(Expiry::Never.lot_expiry(d("2027-01-10")), None);
        assert_eq!(
            Expiry::Inactivity { days: 365 }.lot_expiry(d("2027-01-10")),
            None
        );
    }

    #[test]
    fn the_january_lot_goes_first_and_only_the_february_rest_expires_a_year_later() {
        let mut lots = Lots::default();
        lots.earn(100, d("2027-01-10"), 0, d("2027-01-10"), ROLLING_12);
        lots.earn(50, d("2027-02-10"), 0, d("2027-02-10"), ROLLING_12);
        let taken = lots.spend(120).unwrap();
        assert_eq!(
            taken,
            vec![
                Lot {
                    expires_on: Some(d("2028-01-31")),
                    points: 100
                },
                Lot {
                    expires_on: Some(d("2028-02-29")),
                    points: 20
                }
            ]
        );
        // Nothing expires on its last day; the 30 left expire the day after.
        assert!(
            lots.settle(d("2028-02-29"), ROLLING_12, d("2027-02-10"))
                .expired
                .is_empty()
        );
        let s = lots.settle(d("2028-03-01"), ROLLING_12, d("2027-02-10"));
        assert_eq!(
            s.expired,
            vec![Lot {
                expires_on: Some(d("2028-02-29")),
                points: 30
            }]
        );
        assert_eq!(lots.spendable(), 0);
    }

    #[test]
    fn pending_points_cannot_be_spent_until_their_day_and_a_refund_on_day_5_leaves_the_rest_pending()
     {
        let mut lots = Lots::default();
        let origin = lots.earn(100, d("2027-03-01"), 14, d("2027-03-01"), ROLLING_12);
        assert_eq!(origin, Origin::Pending(d("2027-03-15")));
        assert_eq!(lots.spend(1), Err(Short { spendable: 0 }));
        // Day 5: 40 % refunded comes off the pending lot.
        lots.settle(d("2027-03-06"), ROLLING_12, d("2027-03-01"));
        let t = lots.take_back(40, Some(origin));
        assert_eq!((t.from_pending, t.owed), (40, 0));
        assert_eq!((lots.pending_total(), lots.spendable()), (60, 0));
        // Day 13 still pending; day 14 spendable.
        assert!(
            lots.settle(d("2027-03-14"), ROLLING_12, d("2027-03-01"))
                .made_available
                .is_empty()
        );
        assert_eq!(lots.spend(60), Err(Short { spendable: 0 }));
        let s = lots.settle(d("2027-03-15"), ROLLING_12, d("2027-03-01"));
        assert_eq!(s.made_available, vec![(d("2027-03-15"), 60)]);
        assert_eq!(lots.spend(60).map(|t| t.len()), Ok(1));
    }

    #[test]
    fn inactivity_expires_everything_the_day_after_the_last_active_day_plus_days() {
        let policy = Expiry::Inactivity { days: 365 };
        let mut lots = Lots::default();
        lots.grant(70, d("2027-01-01"), policy);
        assert!(
            lots.settle(d("2028-01-01"), policy, d("2027-01-01"))
                .expired
                .is_empty()
        );
        let s = lots.settle(d("2028-01-02"), policy, d("2027-01-01"));
        assert_eq!(s.expired.iter().map(|l| l.points).sum::<i64>(), 70);
    }

    #[test]
    fn a_refund_after_spending_is_owed_and_paid_by_the_next_points() {
        let mut lots = Lots::default();
        let o = lots.earn(100, d("2027-01-10"), 0, d("2027-01-10"), ROLLING_12);
        lots.spend(90).unwrap();
        let t = lots.take_back(100, Some(o));
        assert_eq!(
            (
                t.from_available.iter().map(|l| l.points).sum::<i64>(),
                t.owed
            ),
            (10, 90)
        );
        assert_eq!(lots.spendable(), -90);
        lots.grant(120, d("2027-01-20"), ROLLING_12);
        assert_eq!((lots.owed, lots.spendable()), (0, 30));
    }

    #[test]
    fn a_cancelled_redemption_returns_to_its_lots_and_an_expired_one_comes_back_for_30_days() {
        let mut lots = Lots::default();
        lots.earn(100, d("2027-01-10"), 0, d("2027-01-10"), ROLLING_12);
        let taken = lots.spend(100).unwrap();
        lots.restore(&taken, d("2027-06-01"));
        assert_eq!(lots.available, taken);
        let taken = lots.spend(100).unwrap();
        lots.restore(&taken, d("2028-02-10"));
        assert_eq!(
            lots.available,
            vec![Lot {
                expires_on: Some(d("2028-03-11")),
                points: 100
            }]
        );
    }

    #[derive(Clone, Debug)]
    enum Op {
        Earn {
            points: i64,
            back_days: u32,
        },
        Grant(i64),
        Spend(i64),
        /// Refund a share (in %) of a purchase made earlier (by index).
        Refund {
            purchase: usize,
            percent: i64,
        },
        Adjust(i64),
        /// Cancel a redemption made earlier (by index).
        Cancel(usize),
        Advance(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1..500i64, 0..20u32).prop_map(|(points, back_days)| Op::Earn { points, back_days }),
            (1..200i64).prop_map(Op::Grant),
            (1..300i64).prop_map(Op::Spend),
            (0..20usize, 1..=100i64)
                .prop_map(|(purchase, percent)| Op::Refund { purchase, percent }),
            (-200..200i64).prop_map(Op::Adjust),
            (0..20usize).prop_map(Op::Cancel),
            (0..120u32).prop_map(Op::Advance),
        ]
    }

    fn policy() -> impl Strategy<Value = (u32, Expiry)> {
        (
            0..30u32,
            prop_oneof![
                Just(Expiry::Never),
                // The program accepts 1 to 120 months (`program::Program::from_json`); a
                // zero-month policy never reaches these rules.
                (1..24u32).prop_map(|months| Expiry::Rolling { months }),
                (1..400u32).prop_map(|days| Expiry::Inactivity { days }),
            ],
        )
    }

    proptest! {
        /// After every step, settled: Σ ledger = available + pending − owed; lots ordered, none
        /// empty, none past its day; nothing owed while a lot holds points; pending only ahead.
        #[test]
        fn the_ledger_always_sums_to_available_plus_pending(
            (pending_days, expiry) in policy(),
            ops in proptest::collection::vec(op(), 1..60),
        ) {
            let mut lots = Lots::default();
            let mut today = d("2027-01-01");
            let mut last_active = today;
            let mut ledger = 0i64;
            // (origin, points still reversible) per purchase; the lots of each redemption.
            let mut purchases: Vec<(Origin, i64)> = Vec::new();
            let mut redemptions: Vec<Option<Vec<Lot>>> = Vec::new();
            let mut notified: Option<Notified> = None;
            let mut sent_notices = std::collections::HashSet::new();
            for op in ops {
                let s = lots.settle(today, expiry, last_active);
                ledger -= s.expired.iter().map(|l| l.points).sum::<i64>();
                match op {
                    Op::Earn { points, back_days } => {
                        let on = today - Duration::days(i64::from(back_days));
                        let o = lots.earn(points, on, pending_days, today, expiry);
                        ledger += points;
                        purchases.push((o, points));
                        last_active = today;
                    }
                    Op::Grant(p) => { lots.grant(p, today, expiry); ledger += p; }
                    Op::Spend(p) => {
                        let before = lots.pending.clone();
                        match lots.spend(p) {
                            Ok(taken) => {
                                prop_assert_eq!(taken.iter().map(|l| l.points).sum::<i64>(), p);
                                // Soonest first: every lot left expires no sooner than the
                                // last one taken from.
                                if let Some(last) = taken.last() {
                                    for l in &lots.available {
                                        prop_assert!(!later(last.expires_on, l.expires_on));
                                    }
                                }
                                ledger -= p;
                                redemptions.push(Some(taken));
                                last_active = today;
                            }
                            Err(Short { spendable }) => prop_assert!(spendable < p),
                        }
                        prop_assert_eq!(before, lots.pending.clone(), "spending never touches pending points");
                    }
                    Op::Refund { purchase, percent } => {
                        if let Some((origin, left)) = purchases.get_mut(purchase) {
                            let n = (*left * percent / 100).min(*left);
                            let t = lots.take_back(n, Some(*origin));
                            prop_assert_eq!(t.total(), n);
                            *left -= n;
                            ledger -= n;
                        }
                    }
                    Op::Adjust(p) if p >= 0 => { lots.grant(p, today, expiry); ledger += p; }
                    Op::Adjust(p) => {
                        let t = lots.take_back(-p, None);
                        prop_assert_eq!(t.total(), -p);
                        ledger += p;
                    }
                    Op::Cancel(i) => {
                        if let Some(slot) = redemptions.get_mut(i)
                            && let Some(taken) = slot.take()
                        {
                            lots.restore(&taken, today);
                            ledger += taken.iter().map(|l| l.points).sum::<i64>();
                        }
                    }
                    Op::Advance(days) => today += Duration::days(i64::from(days)),
                }
                let s = lots.settle(today, expiry, last_active);
                ledger -= s.expired.iter().map(|l| l.points).sum::<i64>();
                prop_assert_eq!(ledger, lots.available_total() + lots.pending_total() - lots.owed);
                prop_assert!(lots.owed >= 0);
                prop_assert!(lots.owed == 0 || lots.available.is_empty());
                prop_assert!(lots.available.iter().all(|l| l.points > 0));
                prop_assert!(lots.pending.iter().all(|(day, p)| *p > 0 && *day > today));
                prop_assert!(lots.pending.windows(2).all(|w| w[0].0 < w[1].0));
                prop_assert!(lots.available.windows(2).all(|w| later(w[1].expires_on, w[0].expires_on)));
                if let Expiry::Rolling { .. } = expiry {
                    prop_assert!(lots.available.iter().all(|l| l.expires_on.is_some_and(|e| e >= today)));
                }
                prop_assert_eq!(stored::decode(&stored::encode(&lots)).unwrap(), lots.clone());
                let settled_again = lots.settle(today, expiry, last_active);
                prop_assert_eq!(settled_again, Settled::default(), "settling twice moves nothing");
                // The job on this day: at most one notice, never one sent before, and then
                // nothing left due until a later day.
                if let Some(n) = notice_due(next_expiry(&lots, expiry, last_active), notified, today) {
                    prop_assert!(sent_notices.insert((n.expires_on, n.days_ahead)), "{:?} sent twice", n);
                    prop_assert!(n.expires_on >= today && n.expires_on - today <= Duration::days(n.days_ahead));
                    notified = Some(n);
                }
                prop_assert_eq!(notice_due(next_expiry(&lots, expiry, last_active), notified, today), None);
                let due = next_due(&lots, expiry, last_active, notified);
                prop_assert!(due.is_none_or(|d| d > today), "due {:?} on {}", due, today);
            }
        }
    }
}
