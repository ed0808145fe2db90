//! The audit trail. An operator's write puts its [`AuditRecord`] into the write's own batch, so
//! the record and the change commit together or not at all, with no extra round trip; the trail
//! lists them newest first, a day's partition at a time.

use super::error::ServiceError;
use crate::domain::MemberId;
use crate::domain::audit::{Actor, AuditAction, AuditRecord, Change};
use crate::service::Ctx;
use crate::table::Batch;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Reading the audit trail.
#[derive(Clone)]
pub struct Audit {
    pub(crate) ctx: Ctx,
}

/// The longest window one listing may span.
pub const AUDIT_WINDOW_DAYS: i64 = 31;

/// What an audited write is about.
pub struct Audited<'a> {
    pub action: AuditAction,
    pub member: Option<&'a MemberId>,
    pub target: Option<String>,
    pub changes: Vec<Change>,
}

/// `GET /v1/audit`: which records to list.
pub struct AuditQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub actor: Option<String>,
    pub member: Option<MemberId>,
    pub limit: u32,
    pub cursor: Option<String>,
}

/// A page of the trail, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditRecord>,
    pub next_cursor: Option<String>,
}

impl Audit {
    /// Records with `from ≤ at < to` (at most 31 days), newest first, of one operator (`actor`,
    /// their subject) and about one member if asked. The cursor names the day and the position
    /// in it where the next page starts.
    #[tracing::instrument(skip_all)]
    pub async fn audit_trail(&self, q: AuditQuery) -> Result<AuditPage, ServiceError> {
        if q.to <= q.from || q.to - q.from > chrono::Duration::days(AUDIT_WINDOW_DAYS) {
            return Err(ServiceError::field(
                "to",
                format!("to must be after from, at most {AUDIT_WINDOW_DAYS} days later"),
            ));
        }
        let first = q.from.date_naive();
        let last = (q.to - chrono::Duration::microseconds(1)).date_naive();
        let (mut day, mut inner) = match &q.cursor {
            None => (last, None),
            Some(c) => parse_cursor(c, first, last)?,
        };
        let wanted = |r: &AuditRecord| {
            r.at >= q.from
                && r.at < q.to
                && q.actor.as_ref().is_none_or(|a| *a == r.actor.sub)
                && q.member
                    .as_ref()
                    .is_none_or(|m| r.member_id.as_ref() == Some(m))
        };
        let mut items = Vec::new();
        while day >= first {
            let left = q.limit - items.len() as u32;
            let (page, next) = self
                .ctx
                .table
                .list::<AuditRecord>(&day, left, inner.as_deref())
                .await?;
            items.extend(page.into_iter().filter(|r| wanted(r)));
            // Each page asks for what is still missing, so a full answer ends on a page's end.
            let (next_day, next_inner) = match next {
                Some(n) => (day, Some(n)),
                None => match day.pred_opt() {
                    Some(d) => (d, None),
                    None => break,
                },
            };
            if items.len() as u32 == q.limit {
                let more = next_day >= first;
                let cursor = more.then(|| format!("{next_day}~{}", next_inner.unwrap_or_default()));
                return Ok(AuditPage {
                    items,
                    next_cursor: cursor,
                });
            }
            (day, inner) = (next_day, next_inner);
        }
        Ok(AuditPage {
            items,
            next_cursor: None,
        })
    }
}

fn parse_cursor(
    c: &str,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<(NaiveDate, Option<String>), ServiceError> {
    let bad = || ServiceError::Store(crate::store::StoreError::BadCursor);
    let (day, inner) = c.split_once('~').ok_or_else(bad)?;
    let day: NaiveDate = day.parse().map_err(|_| bad())?;
    if day < first || day > last {
        return Err(bad());
    }
    Ok((day, (!inner.is_empty()).then(|| inner.to_owned())))
}

impl Ctx {
    /// The write's audit record, into its batch, when an operator made it (`actor`); a member's
    /// own write has none.
    pub(crate) fn audit(
        &self,
        batch: &mut Batch,
        actor: Option<&Actor>,
        what: Audited,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        if let Some(actor) = actor {
            let r = AuditRecord::new(
                actor,
                what.action,
                now,
                what.member,
                what.target,
                what.changes,
            );
            batch.create(&(now.date_naive(), r.id), &r)?;
        }
        Ok(())
    }
}
