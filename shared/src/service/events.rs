//! Events in the effect's own commit. A use case opens a [`Journal`] on the member it read, adds
//! its ledger lines and events to it, and closes it into its batch: the lines carry the events
//! (no extra item for a purchase or a redemption), the member item takes the new `event_seq`
//! under its version condition, so a member's events have no gap and no repeat under any
//! interleaving, and a refused or replayed request writes none. Also the two event feeds.

use super::error::ServiceError;
use crate::domain::MemberId;
use crate::domain::event::{Event, EventData, LineRef, Moved, Numbering};
use crate::domain::ledger::LedgerEntry;
use crate::domain::member::Member;
use crate::service::Ctx;
use crate::table::{Batch, CommitLink, EventCarrier, LedgerLine};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Reading a member's events and the feed between two instants.
#[derive(Clone)]
pub struct Events {
    pub(crate) ctx: Ctx,
}

/// Event carriers without a ledger line expire after this many days (table TTL); ledger lines,
/// and the events on them, are kept.
pub const EVENT_RETENTION_DAYS: i64 = 30;

pub(crate) struct Journal {
    numbering: Numbering,
    lines: Vec<(u64, LedgerEntry)>,
    now: DateTime<Utc>,
    stamp: DateTime<Utc>,
}

impl Journal {
    /// A journal on the member as read, for a use case deciding as of `now`. Its events are
    /// stamped with the clock as it is after the read (a write that commits after another one
    /// read it stamps later), and never before the member's last event: for one member, seq order
    /// is id order is `occurred_at` order. A job deciding as of an earlier `now` still stamps its
    /// events with the time they are written, so a feed tailing by time never misses them.
    pub fn new(svc: &Ctx, m: &Member, now: DateTime<Utc>) -> Self {
        let stamp = event_stamp(now.max(svc.now()), m.last_event_at);
        Journal {
            numbering: Numbering::new(m.id.clone(), m.event_seq, stamp),
            lines: Vec::new(),
            now,
            stamp,
        }
    }

    /// The instant the use case decides at: every ledger line of the commit carries it.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// An event with no ledger line of its own.
    pub fn note(&mut self, data: EventData) {
        self.numbering.note(data);
    }

    /// A ledger line and the event that announces it: `data` builds the payload from what the
    /// line moved and the line itself (never its free-text note).
    pub fn line(
        &mut self,
        entry: LedgerEntry,
        data: impl FnOnce(Moved, LineRef) -> EventData,
    ) -> LedgerEntry {
        let seq = self
            .numbering
            .line(data(Moved::of(&entry), LineRef::of(&entry)));
        self.lines.push((seq, entry.clone()));
        entry
    }

    /// Adds the lines (each with the events it carries) and, for events after the last line, one
    /// carrier to `batch`, moves the member's `event_seq` on and sets the day the points job is
    /// next due for them (every write that moves points or activity has events, so closes
    /// here). Call before saving the member.
    pub fn close(
        self,
        svc: &Ctx,
        m: &mut Member,
        batch: &mut Batch,
    ) -> Result<Vec<Event>, ServiceError> {
        svc.schedule(m);
        let mut carried = self.numbering.lines.clone();
        let (rest, last) = self.numbering.finish();
        let mut all = Vec::new();
        // One event-index entry per commit: on its last line (kept as long as the ledger), or
        // on its carrier when it has no line; that item names the others (`CommitLink`).
        let line_seqs: Vec<u64> = self.lines.iter().map(|(seq, _)| *seq).collect();
        let (links, carrier_link) = CommitLink::of_commit(&line_seqs, rest.last().map(|e| e.seq));
        let items = self.lines.into_iter().zip(carried.drain(..)).zip(links);
        for (((seq, entry), (_, events)), commit) in items {
            all.extend(events.iter().cloned());
            let line = LedgerLine {
                entry,
                seq,
                events,
                commit,
            };
            batch.create(&(m.id.clone(), seq), &line)?;
        }
        if let Some(last_event) = rest.last() {
            let key = (m.id.clone(), last_event.seq);
            all.extend(rest.iter().cloned());
            let expires_at = (self.now + chrono::Duration::days(EVENT_RETENTION_DAYS)).timestamp();
            let carrier = EventCarrier {
                events: rest,
                expires_at,
                commit: carrier_link,
            };
            batch.create(&key, &carrier)?;
        }
        if last > m.event_seq {
            m.last_event_at = Some(self.stamp);
        }
        m.event_seq = last;
        Ok(all)
    }
}

/// The instant a commit's events carry: `now`, or just after the member's last event when that
/// is not earlier (a microsecond later: event ids order below the millisecond).
pub(crate) fn event_stamp(now: DateTime<Utc>, last: Option<DateTime<Utc>>) -> DateTime<Utc> {
    match last {
        Some(l) if l >= now => l + chrono::Duration::microseconds(1),
        _ => now,
    }
}

/// A page of events: oldest first (member feed) or in id order (global feed).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<Event>,
    pub next_cursor: Option<String>,
}

/// Who reads a member's events: the member sees all but what operators keep from them (a
/// holdout's `campaign.joined`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    TheMember,
    Operator,
}

impl Events {
    /// The member's events with `seq > after_seq`, oldest first. The next page continues after
    /// the last `seq` returned (the cursor is that number; `after_seq` works the same).
    #[tracing::instrument(skip_all, fields(member = %id))]
    pub async fn member_events(
        &self,
        id: &MemberId,
        after_seq: u64,
        limit: u32,
        reader: Reader,
    ) -> Result<EventPage, ServiceError> {
        self.ctx.load_member(id).await?;
        let (mut items, more) = self.ctx.table.member_events(id, after_seq, limit).await?;
        let next_cursor = if more {
            items.last().map(|e| e.seq.to_string())
        } else {
            None
        };
        // A holdout member never hears of the campaign that holds them out; its seq is
        // skipped in their own feed.
        if reader == Reader::TheMember {
            items.retain(
                |e| !matches!(&e.data, EventData::CampaignJoined(j) if j.is_hidden_from_member()),
            );
        }
        Ok(EventPage { items, next_cursor })
    }

    /// Every event with `from ≤ occurred_at < to` (at most 24 h), in id order; the cursor is the
    /// last id returned.
    #[tracing::instrument(skip_all)]
    pub async fn events_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<EventPage, ServiceError> {
        if to <= from || to - from > chrono::Duration::hours(24) {
            return Err(ServiceError::field(
                "to",
                "the window must be longer than zero and at most 24 hours",
            ));
        }
        let after = cursor
            .map(|c| {
                uuid::Uuid::try_parse(c)
                    .map_err(|_| ServiceError::Store(crate::store::StoreError::BadCursor))
            })
            .transpose()?;
        let (items, more) = self
            .ctx
            .table
            .events_between(from, to, after, limit)
            .await?;
        let next_cursor = if more {
            items.last().map(|e| e.id.to_string())
        } else {
            None
        };
        Ok(EventPage { items, next_cursor })
    }
}
