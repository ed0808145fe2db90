//! Money (integer minor units + ISO 4217 code) and points. No floating point anywhere.

use super::{Invalid, Overflow};
use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// Largest amount a single purchase or refund may carry: 10^12 minor units (10 billion in a
/// two-decimal currency). Anything larger is a client bug, and the bound keeps every product of
/// amount × rate × multiplier far inside i64/i128.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub const USD: Currency = Currency(*b"USD");

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let b = s.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_uppercase) {
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(Invalid::new(format!(
                "currency must be a three-letter ISO 4217 code such as USD, got {s:?}"
            )))
        }
    }

    /// Minor units in one major unit, by ISO 4217's exponent: 1 for the currencies without
    /// decimals (yen, won …), 1,000 for those with three (dinars), 100 for the rest.
    pub fn minor_units(&self) -> u32 {
        const NONE: [&str; 16] = [
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
            "VND", "VUV", "XAF", "XOF",
        ];
        const THREE: [&str; 7] = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
        if NONE.contains(&self.as_str()) {
            1
        } else if THREE.contains(&self.as_str()) {
            1000
        } else {
            100
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from three ASCII uppercase letters.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl TryFrom<String> for Currency {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Currency::parse(&s)
    }
}
impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}
impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount in integer minor units of one currency (`{"value": 1999, "currency": "USD"}`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Money {
    /// Integer minor units (cents for USD).
    pub value: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(value: i64, currency: Currency) -> Self {
        Money { value, currency }
    }

    /// A purchase or refund amount: strictly positive and not absurd.
    pub fn positive_amount(self) -> Result<Self, Invalid> {
        if self.value <= 0 {
            return Err(Invalid::new("amount must be greater than zero"));
        }
        if self.value > MAX_AMOUNT_MINOR {
            return Err(Invalid::new(format!(
                "amount must be at most {MAX_AMOUNT_MINOR} minor units"
            )));
        }
        Ok(self)
    }
}

/// A signed number of points. Balances may go negative after refunds (DESIGN.md).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default, Serialize, Deserialize, ToSchema,
)]
#[serde(transparent)]
pub struct Points(pub i64);

impl Points {
    pub const ZERO: Points = Points(0);

    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }

    pub fn checked_add(self, other: Points) -> Result<Points, Overflow> {
        self.0.checked_add(other.0).map(Points).ok_or(Overflow)
    }
    pub fn checked_sub(self, other: Points) -> Result<Points, Overflow> {
        self.0.checked_sub(other.0).map(Points).ok_or(Overflow)
    }
    pub fn checked_neg(self) -> Result<Points, Overflow> {
        self.0.checked_neg().map(Points).ok_or(Overflow)
    }
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }
}

impl fmt::Display for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_parsing_table() {
        for (input, ok) in [
            ("USD", true),
            ("EUR", true),
            ("usd", false),
            ("US", false),
            ("USDX", false),
            ("U$D", false),
            ("", false),
        ] {
            assert_eq!(Currency::parse(input).is_ok(), ok, "{input}");
        }
    }

    #[test]
    fn money_json_rejects_fractions_and_unknown_fields() {
        let ok: Money = serde_json::from_str(r#"{"value": 1999, "currency": "USD"}"#).unwrap();
        assert_eq!(ok, Money::new(1999, Currency::USD));
        assert!(serde_json::from_str::<Money>(r#"{"value": 19.99, "currency": "USD"}"#).is_err());
        assert!(
            serde_json::from_str::<Money>(r#"{"value": 1, "currency": "USD", "x": 1}"#).is_err()
        );
        assert!(serde_json::from_str::<Money>(r#"{"value": 1, "currency": "usd"}"#).is_err());
    }

    #[test]
    fn positive_amount_bounds() {
        for (v, ok) in [
            (i64::MIN, false),
            (-1, false),
            (0, false),
            (1, true),
            (MAX_AMOUNT_MINOR, true),
            (MAX_AMOUNT_MINOR + 1, false),
            (i64::MAX, false),
        ] {
            assert_eq!(
                Money::new(v, Currency::USD).positive_amount().is_ok(),
                ok,
                "{v}"
            );
        }
    }

    #[test]
    fn points_arithmetic_is_checked() {
        assert_eq!(Points(5).checked_add(Points(-7)), Ok(Points(-2)));
        assert_eq!(Points(i64::MAX).checked_add(Points(1)), Err(Overflow));
        assert_eq!(Points(i64::MIN).checked_sub(Points(1)), Err(Overflow));
        assert_eq!(Points(i64::MIN).checked_neg(), Err(Overflow));
    }
}

super::string_schema!(Currency, "USD", "ISO 4217 currency code");

#[cfg(test)]
mod currency_tests {
    use super::Currency;

    #[test]
    fn minor_units_follow_the_iso_4217_exponent() {
        for (code, units) in [
            ("USD", 100),
            ("CNY", 100),
            ("EUR", 100),
            ("JPY", 1),
            ("KRW", 1),
        ]
        .into_iter()
        .chain([("KWD", 1000), ("BHD", 1000), ("XOF", 1)])
        {
            assert_eq!(
                Currency::parse(code).unwrap().minor_units(),
                units,
                "{code}"
            );
        }
    }
}
