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

/// A phone number in E.164, as libphonenumber (the `phonenumber` crate) parses and validates
/// it: `+44 (0)20 7946 0958` and `+442079460958` are one phone, and a number no network could
/// ring (a wrong length, an unassigned range) is refused. Built by [`Phone::parse`] or
/// [`Phone::parse_in`] from what a caller typed; read back from storage as it was written
/// (no validation on the read path, so reading a member never loads the numbering plan).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

/// What a number may be typed with: digits, `+`, and the spaces, dashes, dots and brackets
/// people write. Letters (vanity numbers) and anything else are refused before parsing.
fn phone_chars(s: &str) -> bool {
    s.len() <= 40
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '.' | '(' | ')'))
        && s.chars().any(|c| c.is_ascii_digit())
}

impl Phone {
    /// An international number (`+` and the country code first).
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        Phone::parse_in(s, None)
    }

    /// A number as typed: international, or national when `country` says whose (the program's
    /// `default_country`).
    pub fn parse_in(s: &str, country: Option<Country>) -> Result<Self, Invalid> {
        let s = s.trim();
        if !phone_chars(s) {
            return Err(Invalid::new(
                "phone may contain only digits, +, spaces, dashes, dots and brackets",
            ));
        }
        if !s.starts_with('+') && country.is_none() {
            return Err(Invalid::new(
                "phone must be in international form, starting with + and the country code \
                 (the program has no default_country for national numbers)",
            ));
        }
        let n = phonenumber::parse(country.map(|c| c.0), s)
            .map_err(|e| Invalid::new(format!("phone is not a phone number ({e})")))?;
        if !n.is_valid() {
            return Err(Invalid::new(
                "phone is not a valid number (wrong length or an unassigned range)",
            ));
        }
        Ok(Phone(n.format().mode(phonenumber::Mode::E164).to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for Phone {
    type Error = Invalid;
    /// As stored or answered: E.164 (`+` and 8 to 15 digits), trusted as written.
    fn try_from(s: String) -> Result<Self, Invalid> {
        let digits = s.strip_prefix('+').unwrap_or("");
        if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Phone(s))
        } else {
            Err(Invalid::new(
                "phone must be + followed by 8 to 15 digits (E.164)",
            ))
        }
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

/// A country (ISO 3166-1 alpha-2, `CN`, `GB`): whose national numbering a phone typed without
/// `+` follows (the program rule `default_country`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Country(phonenumber::country::Id);

impl Country {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.len() != 2 || !s.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Invalid::new(
                "a country is two capital letters (ISO 3166-1 alpha-2), such as CN or GB",
            ));
        }
        s.parse::<phonenumber::country::Id>()
            .map(Country)
            .map_err(|_| Invalid::new(format!("{s} is not a country phone numbers know")))
    }
}

/// A phone as a caller sent it: international numbers are parsed at once (so two spellings of
/// one number make one request digest); a national number waits for the program's
/// `default_country` ([`PhoneInput::resolve`]).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PhoneInput {
    International(Phone),
    /// The digits and separators as typed, trimmed.
    National(String),
}

impl PhoneInput {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        if s.starts_with('+') {
            return Phone::parse(s).map(PhoneInput::International);
        }
        if !phone_chars(s) {
            return Err(Invalid::new(
                "phone may contain only digits, +, spaces, dashes, dots and brackets",
            ));
        }
        let compact: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
        Ok(PhoneInput::National(compact))
    }

    /// The phone it names, a national number read as one of `country`.
    pub fn resolve(&self, country: Option<Country>) -> Result<Phone, Invalid> {
        match self {
            PhoneInput::International(p) => Ok(p.clone()),
            PhoneInput::National(s) => Phone::parse_in(s, country),
        }
    }
}
impl TryFrom<String> for PhoneInput {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        PhoneInput::parse(&s)
    }
}
impl From<PhoneInput> for String {
    fn from(v: PhoneInput) -> String {
        match v {
            PhoneInput::International(p) => p.0,
            PhoneInput::National(s) => s,
        }
    }
}

/// An e-mail address, parsed by RFC 5322 (the `email_address` crate) and kept in one form: a
/// quoted local part that needs no quotes loses them (`"ada"@x.com` is `ada@x.com`), the domain
/// in lower case. Refused besides what the RFC refuses: a display name, a domain literal, a
/// domain without a dot, and characters that hide or disguise what is shown (bidirectional
/// controls, zero-width characters, full-width forms). Deliverability is the mail system's
/// business.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

/// Format characters (bidi controls, zero-width joiners and spaces, the BOM) and full-width
/// forms: they make one address look like another.
fn disguising(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3000}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}' | '\u{FF00}'..='\u{FFEF}' | '\u{E0000}'..='\u{E007F}')
}

impl Email {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        let bad =
            |why: &str| Invalid::new(format!("email must look like name@example.com ({why})"));
        if s.len() > 254 {
            return Err(bad("at most 254 characters"));
        }
        if s.chars()
            .any(|c| c.is_control() || c.is_whitespace() || disguising(c))
        {
            return Err(bad(
                "no spaces, control, zero-width, bidirectional or full-width characters",
            ));
        }
        let options = email_address::Options::default()
            .without_display_text()
            .without_domain_literal();
        let a = email_address::EmailAddress::parse_with_options(s, options)
            .map_err(|e| bad(&e.to_string()))?;
        let domain = a.domain().to_lowercase();
        if !domain.contains('.') {
            return Err(bad("the domain needs a dot"));
        }
        let local = a.local_part();
        // A quoted local part whose content is a plain dot-atom means the same mailbox without
        // the quotes.
        let local = match local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
            Some(inner)
                if !inner.is_empty()
                    && email_address::EmailAddress::is_valid(&format!("{inner}@{domain}")) =>
            {
                inner.to_owned()
            }
            _ => local.to_owned(),
        };
        Ok(Email(format!("{local}@{domain}")))
    }

    /// As stored by an earlier version, trusted as written (the read path never refuses a
    /// member it wrote).
    pub fn stored(s: String) -> Self {
        Email(s)
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

/// Deserialises a stored e-mail address without checking it again.
pub fn stored_email<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Email>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(Email::stored))
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
        let cn = Some(Country::parse("CN").unwrap());
        let gb = Some(Country::parse("GB").unwrap());
        for (s, country, want) in [
            ("+8613800000000", None, Some("+8613800000000")),
            ("+86 138-0000-0000", None, Some("+8613800000000")),
            ("+1 (415) 555.0100", None, Some("+14155550100")),
            // The "(0)" a UK number is often written with is the trunk prefix, not a digit.
            ("+44 (0)20 7946 0958", None, Some("+442079460958")),
            ("+442079460958", None, Some("+442079460958")),
            ("020 7946 0958", gb, Some("+442079460958")),
            ("138 0000 0027", cn, Some("+8613800000027")),
            ("+8613800000027", gb, Some("+8613800000027")),
            ("138 0000 0027", None, None),
            ("8613800000000", None, None),
            ("+0613800000000", None, None),
            ("+1234567", None, None),
            ("+1234567890123456", None, None),
            ("+12345678a", None, None),
            ("+1 800 FLOWERS", None, None),
            ("+15551234567", None, None),
            ("", None, None),
            ("+", None, None),
        ] {
            assert_eq!(
                Phone::parse_in(s, country).ok().map(|p| p.0),
                want.map(str::to_owned),
                "{s} in {country:?}"
            );
        }
        assert_eq!(
            PhoneInput::parse("138 0000-0027").unwrap(),
            PhoneInput::National("13800000027".into())
        );
        assert_eq!(
            PhoneInput::parse("+44 (0)20 7946 0958").unwrap(),
            PhoneInput::parse("+442079460958").unwrap(),
            "one number, one input"
        );
        assert!(Country::parse("cn").is_err());
        assert!(Country::parse("XX").is_err());
        assert!(Country::parse("CHN").is_err());
    }

    #[test]
    fn email_table() {
        for (s, want) in [
            ("ada@example.com", Some("ada@example.com")),
            ("a@b.co", Some("a@b.co")),
            ("Ada@Example.COM", Some("Ada@example.com")),
            ("\"johndoe\"@gmail.com", Some("johndoe@gmail.com")),
            ("\"john doe\"@gmail.com", None),
            ("用户@例子.中国", Some("用户@例子.中国")),
            ("ada", None),
            ("@example.com", None),
            ("ada@example", None),
            ("ada@@example.com", None),
            ("a da@example.com", None),
            ("ada@.com", None),
            ("a@b..c", None),
            ("<script>@x.com", None),
            ("Ada <ada@x.com>", None),
            ("ada@[127.0.0.1]", None),
            ("a\u{202E}b@x.com", None),
            ("a\u{200B}b@x.com", None),
            ("ａｄａ@example.com", None),
            ("ada＠example.com", None),
        ] {
            assert_eq!(
                Email::parse(s).ok().map(String::from),
                want.map(str::to_owned),
                "{s:?}"
            );
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

super::string_schema!(
    Phone,
    "+8613800000000",
    "Phone number: E.164 in answers; in requests also as people write it (`+44 (0)20 7946 0958`), \
     or a national number when the program sets `default_country`"
);

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
