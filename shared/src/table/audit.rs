//! The audit trail: one record per operator change, listed by day.

use super::{Listed, Record};
use crate::domain::audit::AuditRecord;
use crate::store::{Key, SortKey};
use chrono::NaiveDate;
use uuid::Uuid;

/// An operator's write, in the partition of its day (program-wide, but written only by operator
/// writes: a few a second at most, far below a partition's limit), newest first by its UUID v7.
impl Record for AuditRecord {
    type Id = (NaiveDate, Uuid);
    const KIND: &'static str = "audit";
    fn key((day, id): &(NaiveDate, Uuid)) -> Key {
        Key::new(audit_pk(*day), format!("{AUDIT}{id}"))
    }
}

impl Listed for AuditRecord {
    type Owner = NaiveDate;
    fn range(day: &NaiveDate) -> (String, SortKey) {
        (audit_pk(*day), SortKey::Prefix(AUDIT.into()))
    }
}

const AUDIT: &str = "AUDIT#";

// ---- referrals (DESIGN.md "Referrals")

fn audit_pk(day: NaiveDate) -> String {
    format!("{AUDIT}{day}")
}
