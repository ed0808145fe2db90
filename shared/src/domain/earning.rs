//! Exact earning: `points = floor(amount_major × earn_rate × tier_multiplier)` in integers.
//! Multipliers are fixed-point thousandths parsed from their decimal text, never from a float.

use super::{Invalid, Overflow, Points};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A tier multiplier with at most three decimals, held as thousandths (`1.5` → 1500).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value", into = "serde_json::Value")]
pub struct Multiplier(u32);

impl Multiplier {
    pub const ONE: Multiplier = Multiplier(1000);
    pub const MAX_THOUSANDTHS: u32 = 100_000;

    pub fn from_thousandths(t: u32) -> Result<Self, Invalid> {
        if t > Self::MAX_THOUSANDTHS {
            return Err(Invalid::new("multiplier must be between 0 and 100"));
        }
        Ok(Multiplier(t))
    }

    pub fn thousandths(self) -> u32 {
        self.0
    }

    /// Parses decimal text such as `"1.5"` or `"2"` exactly.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let bad = || {
            Invalid::new(format!(
                "multiplier must be a decimal between 0 and 100 with at most 3 decimals, got {s}"
            ))
        };
        let t = super::parse_fixed(s, 3, 3).ok_or_else(bad)?;
        Self::from_thousandths(t).map_err(|_| bad())
    }
}

impl TryFrom<serde_json::Value> for Multiplier {
    type Error = Invalid;
    fn try_from(v: serde_json::Value) -> Result<Self, Invalid> {
        match v {
            // Without serde_json's arbitrary precision the number is held as the f64 nearest to
            // the literal; its shortest round-trip text is that literal again for anything with
            // at most 15 significant digits, so parsing the text is exact. No float arithmetic.
            serde_json::Value::Number(n) => Multiplier::parse(&n.to_string()),
            serde_json::Value::String(s) => Multiplier::parse(&s),
            other => Err(Invalid::new(format!(
                "multiplier must be a number, got {other}"
            ))),
        }
    }
}
impl From<Multiplier> for serde_json::Value {
    fn from(m: Multiplier) -> Self {
        serde_json::Value::String(m.to_string())
    }
}
impl fmt::Display for Multiplier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (i, r) = (self.0 / 1000, self.0 % 1000);
        if r == 0 {
            write!(f, "{i}")
        } else {
            let frac = format!("{r:03}");
            write!(f, "{i}.{}", frac.trim_end_matches('0'))
        }
    }
}

/// `points` points for every `per_minor_units` minor units spent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EarnRate {
    pub points: i64,
    pub per_minor_units: i64,
}

/// Points earned by a purchase of `amount_minor` (> 0) at `rate` and `multiplier`, rounded down.
pub fn earn(amount_minor: i64, rate: EarnRate, multiplier: Multiplier) -> Result<Points, Overflow> {
    let num = i128::from(amount_minor)
        .checked_mul(i128::from(rate.points))
        .and_then(|v| v.checked_mul(i128::from(multiplier.0)))
        .ok_or(Overflow)?;
    let den = i128::from(rate.per_minor_units) * 1000;
    if den <= 0 {
        return Err(Overflow);
    }
    let pts = num.div_euclid(den);
    i64::try_from(pts).map(Points).map_err(|_| Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplier_parse_table() {
        for (s, want) in [
            ("1", Some(1000)),
            ("1.0", Some(1000)),
            ("1.5", Some(1500)),
            ("2", Some(2000)),
            ("1.005", Some(1005)),
            ("0.001", Some(1)),
            ("0", Some(0)),
            ("100", Some(100_000)),
            ("100.001", None),
            ("1.0005", None),
            ("-1", None),
            ("1.", None),
            (".5", None),
            ("1e3", None),
            ("", None),
        ] {
            assert_eq!(Multiplier::parse(s).ok().map(|m| m.0), want, "{s}");
        }
    }

    #[test]
    fn multiplier_from_json_numbers_is_exact() {
        for (json, want) in [("1.5", 1500), ("1.005", 1005), ("2.0", 2000), ("1.1", 1100)] {
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(Multiplier::try_from(v).unwrap().0, want, "{json}");
        }
        assert!(Multiplier::try_from(serde_json::json!(true)).is_err());
        assert_eq!(Multiplier(1500).to_string(), "1.5");
        assert_eq!(Multiplier(1005).to_string(), "1.005");
        assert_eq!(Multiplier(2000).to_string(), "2");
    }

    #[test]
    fn earning_table() {
        let rate = EarnRate {
            points: 1,
            per_minor_units: 100,
        };
        for (amount, mult, want) in [
            (1999, 1000, 19),
            (1999, 1500, 29), // 29.985 rounds down
            (1999, 2000, 39),
            (100, 1000, 1),
            (99, 1000, 0),
            (1, 2000, 0),
            (100_000, 1500, 1500),
            (1_000_000_000_000, 100_000, 1_000_000_000_000),
        ] {
            assert_eq!(
                earn(amount, rate, Multiplier(mult)),
                Ok(Points(want)),
                "{amount} × {mult}"
            );
        }
        let generous = EarnRate {
            points: 3,
            per_minor_units: 50,
        };
        assert_eq!(earn(1999, generous, Multiplier(1500)), Ok(Points(179))); // 179.91
        let huge = EarnRate {
            points: i64::MAX,
            per_minor_units: 1,
        };
        assert_eq!(earn(i64::MAX, huge, Multiplier(100_000)), Err(Overflow));
    }
}
