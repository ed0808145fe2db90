//! Voucher codes: 12 characters from an alphabet without look-alikes (no 0/O, 1/I/L, U), so a
//! cashier can type one from a phone screen. The alphabet has 30 characters: 30^12 ≈ 5.3 × 10^17
//! codes; uniqueness is still
//! enforced by an absence-conditioned write, never assumed.

use super::Invalid;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTVWXYZ";
pub const CODE_LEN: usize = 12;

pub fn generate_code() -> String {
    (0..CODE_LEN)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A code as typed at the till: case and separators are forgiven.
pub fn normalize_code(s: &str) -> Result<String, Invalid> {
    let code: String = s
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if code.len() == CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b)) {
        Ok(code)
    } else {
        Err(Invalid::new(
            "voucher code must be 12 characters from the voucher alphabet",
        ))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RedemptionStatus {
    Issued,
    Used,
    Cancelled,
    /// Shown, never stored: an issued voucher whose `expires_at` has passed.
    Expired,
}

impl RedemptionStatus {
    /// The status a reader sees at `now`: an issued voucher past its expiry is expired.
    pub fn as_of(
        self,
        expires_at: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        match self {
            RedemptionStatus::Issued if now > expires_at => RedemptionStatus::Expired,
            s => s,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            RedemptionStatus::Issued => "issued",
            RedemptionStatus::Used => "used",
            RedemptionStatus::Cancelled => "cancelled",
            RedemptionStatus::Expired => "expired",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_has_thirty_characters() {
        assert_eq!(ALPHABET.len(), 30);
    }

    #[test]
    fn an_issued_voucher_reads_expired_only_after_its_expiry() {
        use RedemptionStatus::*;
        let exp: chrono::DateTime<chrono::Utc> = "2027-01-01T00:00:00Z".parse().unwrap();
        let ms = chrono::Duration::milliseconds(1);
        for (stored, now, shown) in [
            (Issued, exp - ms, Issued),
            (Issued, exp, Issued),
            (Issued, exp + ms, Expired),
            (Used, exp + ms, Used),
            (Cancelled, exp + ms, Cancelled),
        ] {
            assert_eq!(stored.as_of(exp, now), shown, "{stored:?} at {now}");
        }
    }

    #[test]
    fn codes_use_only_the_unambiguous_alphabet() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let c = generate_code();
            assert_eq!(c.len(), CODE_LEN);
            assert!(!c.contains(['0', 'O', '1', 'I', 'L', 'U']));
            assert_eq!(normalize_code(&c).unwrap(), c);
            seen.insert(c);
        }
        assert_eq!(seen.len(), 2000);
    }

    #[test]
    fn normalize_table() {
        for (s, ok) in [
            ("ABCD-EFGH-JKMN", true),
            ("abcdefghjkmn", true),
            ("ABCDEFGHJKM0", false),
            ("ABCDEFGHJKM", false),
            ("", false),
        ] {
            assert_eq!(normalize_code(s).is_ok(), ok, "{s}");
        }
    }
}
