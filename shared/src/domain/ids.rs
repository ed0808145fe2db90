//! Identifier and contact types. Each is validated once when built, so keys built from them
//! (`MEMBER#<id>`, `PURCHASE#<store>#<receipt>`) can never smuggle a separator or be empty.

use super::Invalid;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Characters allowed in ids that become part of store keys: no `#` (the key separator), no `/`,
/// whitespace or control characters, so ids survive URLs and keys unchanged.
fn id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@' | '|' | '+' | '=')
}

fn parse_id(kind: &str, s: &str, max: usize) -> Result<String, Invalid> {
    if s.is_empty() || s.len() > max {
        return Err(Invalid::new(format!(
            "{kind} must be 1 to {max} characters"
        )));
    }
    // `.` and `..` are path segments a URL cannot address: such an id could never be read back.
    if s.chars().all(|c| c == '.') {
        return Err(Invalid::new(format!(
            "{kind} cannot be made of dots only (it could not appear in a URL)"
        )));
    }
    if let Some(bad) = s.chars().find(|c| !id_char(*c)) {
        return Err(Invalid::new(format!(
            "{kind} may contain only letters, digits and - _ . : @ | + =, found {bad:?}"
        )));
    }
    Ok(s.to_owned())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal, $example:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);
        super::id_schema!($name, $example, $kind, $max);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, Invalid> {
                parse_id($kind, s, $max).map($name)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = Invalid;
            fn try_from(s: String) -> Result<Self, Invalid> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl FromStr for $name {
            type Err = Invalid;
            fn from_str(s: &str) -> Result<Self, Invalid> {
                Self::parse(s)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

string_id!(
    /// A member: the identity provider's `sub` for self-enrolment, otherwise a UUID.
    MemberId, "member id", 128, "0193a0b4-7c1e-7d30-9a51-5b2f8f2c1d10");
string_id!(
    /// A store, as bound into POS tokens (`store_id` claim).
    StoreId, "store_id", 64, "store-042");
string_id!(
    /// A receipt number, unique within its store.
    ReceiptId, "receipt_id", 64, "R-2026-000123");
string_id!(
    /// A refund's id, chosen by the POS; makes refunds idempotent.
    RefundId, "refund_id", 64, "0193a0b4-7c1e-7d30-9a51-5b2f8f2c1d11");
string_id!(
    /// A campaign, chosen by the operator.
    CampaignId, "campaign id", 64, "win-back-dormant");
string_id!(
    /// A catalog reward.
    RewardId, "reward id", 64, "free-coffee");

impl MemberId {
    pub fn new_random() -> Self {
        MemberId(uuid::Uuid::now_v7().to_string())
    }

    /// Whether the id is a UUID in its canonical hyphenated lowercase form: the only ids a POS
    /// may choose, so that no till can take a future self-enrolling member's `sub`.
    pub fn is_uuid(&self) -> bool {
        uuid::Uuid::try_parse(&self.0).is_ok_and(|u| u.hyphenated().to_string() == self.0)
    }
}

/// A phone number in E.164 (`+` and 8 to 15 digits). Spaces, dashes, dots and parentheses that
/// people type are removed first, so `+86 138-0000-0000` and `+8613800000000` are one phone.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let compact: String = s
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let digits = compact.strip_prefix('+').ok_or_else(|| {
            Invalid::new("phone must be in international E.164 form, starting with +")
        })?;
        let ok = (8..=15).contains(&digits.len())
            && digits.chars().all(|c| c.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(Phone(compact))
        } else {
            Err(Invalid::new(
                "phone must be + followed by 8 to 15 digits (E.164), country code first",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for Phone {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Phone::parse(&s)
    }
}
impl From<Phone> for String {
    fn from(v: Phone) -> String {
        v.0
    }
}
impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.0)
    }
}

/// An e-mail address, checked for shape only (one `@`, a dotted domain); deliverability is the
/// mail system's business.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        let bad = || Invalid::new("email must look like name@example.com");
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(bad());
        }
        Ok(Email(s.to_owned()))
    }
}
impl TryFrom<String> for Email {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Email::parse(&s)
    }
}
impl From<Email> for String {
    fn from(v: Email) -> String {
        v.0
    }
}

/// An IANA time zone (`Asia/Shanghai`). The zone database is compiled into the binary by
/// chrono-tz, because `provided.al2023` ships no zoneinfo.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZoneName(pub chrono_tz::Tz);

impl TimeZoneName {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        s.parse::<chrono_tz::Tz>().map(TimeZoneName).map_err(|_| {
            Invalid::new(format!(
                "{s:?} is not an IANA time zone such as Europe/Paris"
            ))
        })
    }
}
impl TryFrom<String> for TimeZoneName {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        TimeZoneName::parse(&s)
    }
}
impl From<TimeZoneName> for String {
    fn from(v: TimeZoneName) -> String {
        v.0.name().to_owned()
    }
}
impl fmt::Debug for TimeZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

/// A member's display name: trimmed, 1 to 100 characters, no control characters, and at least
/// one visible character (a name of zero-width spaces shows as nothing on a receipt or a screen).
pub fn parse_name(s: &str) -> Result<String, Invalid> {
    let t = s.trim();
    let n = t.chars().count();
    if n == 0 || n > 100 || t.chars().any(char::is_control) {
        return Err(Invalid::new("name must be 1 to 100 printable characters"));
    }
    if !t.chars().any(|c| !c.is_whitespace() && !invisible(c)) {
        return Err(Invalid::new(
            "name must have at least one visible character",
        ));
    }
    Ok(t.to_owned())
}

/// Unicode's default-ignorable code points (DerivedCoreProperties.txt): rendered as nothing.
fn invisible(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8 | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_id_table() {
        for (s, ok) in [
            ("abc", true),
            ("auth0|5f1c", true),
            ("0193a0b4-7c1e-7d30-9a51-5b2f8f2c1d10", true),
            ("", false),
            (".", false),
            ("..", false),
            ("...", false),
            ("a.b", true),
            (".a", true),
            ("a#b", false),
            ("a/b", false),
            ("a b", false),
            ("é", false),
            (&"x".repeat(128), true),
            (&"x".repeat(129), false),
        ] {
            assert_eq!(MemberId::parse(s).is_ok(), ok, "{s}");
        }
    }

    #[test]
    fn uuid_member_ids_table() {
        for (s, uuid) in [
            ("0193a0b4-7c1e-7d30-9a51-5b2f8f2c1d10", true),
            ("0193A0B4-7C1E-7D30-9A51-5B2F8F2C1D10", false),
            ("0193a0b47c1e7d309a515b2f8f2c1d10", false),
            ("auth0|5f1c", false),
        ] {
            assert_eq!(MemberId::parse(s).unwrap().is_uuid(), uuid, "{s}");
        }
    }

    #[test]
    fn phone_table() {
        for (s, want) in [
            ("+8613800000000", Some("+8613800000000")),
            ("+86 138-0000-0000", Some("+8613800000000")),
            ("+1 (415) 555.0100", Some("+14155550100")),
            ("8613800000000", None),
            ("+0613800000000", None),
            ("+1234567", None),
            ("+1234567890123456", None),
            ("+12345678a", None),
            ("", None),
        ] {
            assert_eq!(
                Phone::parse(s).ok().map(|p| p.0),
                want.map(str::to_owned),
                "{s}"
            );
        }
    }

    #[test]
    fn email_table() {
        for (s, ok) in [
            ("ada@example.com", true),
            ("a@b.co", true),
            ("ada", false),
            ("@example.com", false),
            ("ada@example", false),
            ("ada@@example.com", false),
            ("a da@example.com", false),
            ("ada@.com", false),
        ] {
            assert_eq!(Email::parse(s).is_ok(), ok, "{s}");
        }
    }

    #[test]
    fn timezone_and_name() {
        assert!(TimeZoneName::parse("Asia/Shanghai").is_ok());
        assert!(TimeZoneName::parse("America/Los_Angeles").is_ok());
        assert!(TimeZoneName::parse("Mars/Olympus").is_err());
        assert_eq!(parse_name("  Ada  ").unwrap(), "Ada");
        assert!(parse_name("   ").is_err());
        assert!(parse_name(&"x".repeat(101)).is_err());
        assert!(parse_name("a\nb").is_err());
    }

    #[test]
    fn a_name_needs_at_least_one_visible_character() {
        for invisible in [
            "\u{200B}",
            "\u{200B}\u{200D}\u{FEFF}",
            "\u{00AD}",
            " \u{2060} ",
            "\u{3000}\u{200C}",
        ] {
            assert!(parse_name(invisible).is_err(), "{invisible:?}");
        }
        for visible in ["A\u{200B}", "李雷", "\u{200D}😀", "é"] {
            assert!(parse_name(visible).is_ok(), "{visible:?}");
        }
    }
}

super::string_schema!(Phone, "+8613800000000", "Phone number in E.164");

super::string_schema!(Email, "ada@example.com", "E-mail address");

super::string_schema!(TimeZoneName, "Asia/Shanghai", "IANA time zone");

/// A member's display name: trimmed, 1 to 100 characters, no control characters.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl TryFrom<String> for Name {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        parse_name(&s).map(Name)
    }
}
impl From<Name> for String {
    fn from(v: Name) -> String {
        v.0
    }
}
super::string_schema!(Name, "Ada", "Display name, 1 to 100 characters");
