//! Use cases. Each state change reads what it needs (one round trip where it can), decides with
//! pure `domain` rules, and commits one atomic batch: the member item conditioned on its version,
//! new items conditioned on absence. Losing a race means "read again and decide again", with
//! exponential backoff and full jitter inside the request's time budget; a natural key or
//! idempotency record found on the re-read turns a duplicate into a replay.

pub mod accrual;
pub mod audit;
pub mod birthday;
pub mod campaigns;
pub mod custom_segments;
pub mod daily;
pub mod erasure;
pub mod error;
pub mod events;
pub mod idempotency;
pub(crate) mod jobs;
pub mod members;
pub mod points;
pub mod predictions;
pub mod redemption;
pub mod referrals;
pub mod segments;
pub mod tiers;
pub(crate) mod unit;

pub use error::{FieldError, ServiceError};
pub use idempotency::Idempotency;

pub use accrual::Purchases;
pub use audit::Audit;
pub use birthday::Birthdays;
pub use campaigns::Campaigns;
pub use custom_segments::CustomSegments;
pub use erasure::Erasures;
pub use events::Events;
pub use members::Members;
pub use points::Balances;
pub use redemption::Redemptions;
pub use referrals::Referrals;
pub use segments::Segmentation;
pub use tiers::Tiers;

use crate::clock::Clock;
use crate::domain::MemberId;
use crate::program::Program;
use crate::store::Store;
use crate::table::{MemberIndex, Table};
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// How far back the date-keyed jobs look for days they have not handled.
pub(crate) const LOOKBACK_MONTHS: u32 = 24;

#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Total time a request may spend retrying before it answers 503.
    pub budget: Duration,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    /// The budget plus one store call (2 s SDK timeout) stays under the functions' 10 s timeout.
    fn default() -> Self {
        RetryPolicy {
            budget: Duration::from_secs(6),
            base: Duration::from_millis(4),
            cap: Duration::from_millis(250),
        }
    }
}

/// Exponential backoff with full jitter (sleep a random time up to base × 2^attempt, capped).
pub struct Backoff {
    policy: RetryPolicy,
    deadline: tokio::time::Instant,
    attempt: u32,
}

impl Backoff {
    pub fn new(policy: RetryPolicy) -> Self {
        Backoff {
            policy,
            deadline: tokio::time::Instant::now() + policy.budget,
            attempt: 0,
        }
    }

    /// Waits before the next attempt, or gives up with `Contention` once the budget is spent.
    pub async fn wait(&mut self) -> Result<(), ServiceError> {
        let now = tokio::time::Instant::now();
        if now >= self.deadline {
            crate::metrics::gave_up();
            return Err(ServiceError::Contention);
        }
        crate::metrics::retried();
        let ceiling = self
            .policy
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.policy.cap);
        self.attempt += 1;
        let jitter = Duration::from_micros(rand::random_range(0..=ceiling.as_micros() as u64));
        tokio::time::sleep(jitter.min(self.deadline - now)).await;
        Ok(())
    }
}

/// Runs `$attempt` (an expression yielding a future of `Result<T, ServiceError>`) until it
/// succeeds, fails for a reason other than a lost race or a throttle, or the retry budget runs
/// out. This is the one retry loop: the SDK does not retry, and nothing else loops.
#[macro_export]
macro_rules! retrying {
    ($svc:expr, $attempt:expr) => {{
        let mut backoff = $crate::service::Backoff::new($svc.retry);
        loop {
            match $attempt.await {
                Err(e) if e.is_retryable() => backoff.wait().await?,
                other => break other,
            }
        }
    }};
}

/// What every use case reads: the table, the program's rules, the clock and the retry budget.
/// Cheap to clone (handles to shared state), so each use case holds its own copy.
#[derive(Clone)]
pub struct Ctx {
    pub table: Table,
    pub program: Arc<Program>,
    pub clock: Arc<dyn Clock>,
    pub retry: RetryPolicy,
}

/// The use cases, composed in this one place, once per process (per Lambda container), never
/// per request. A handler takes the one it calls (`State<Purchases>`), so reading it, or going
/// to its definition, lands in that feature's file.
#[derive(Clone)]
pub struct Services {
    pub ctx: Ctx,
    pub members: Members,
    pub purchases: Purchases,
    pub redemptions: Redemptions,
    pub referrals: Referrals,
    pub campaigns: Campaigns,
    pub segments: Segmentation,
    pub custom: CustomSegments,
    pub tiers: Tiers,
    pub balances: Balances,
    pub birthdays: Birthdays,
    pub erasures: Erasures,
    pub events: Events,
    pub audit: Audit,
}

impl Services {
    pub fn new(store: Arc<dyn Store>, program: Program, clock: Arc<dyn Clock>) -> Self {
        Services::of(Ctx {
            table: Table::new(store),
            program: Arc::new(program),
            clock,
            retry: RetryPolicy::default(),
        })
    }

    /// Every use case over one context.
    pub fn of(ctx: Ctx) -> Self {
        let referrals = Referrals {
            ctx: ctx.clone(),
            pseudonym_key: Arc::default(),
        };
        let campaigns = Campaigns {
            ctx: ctx.clone(),
            running: Arc::default(),
        };
        let custom = CustomSegments {
            ctx: ctx.clone(),
            campaigns: campaigns.clone(),
        };
        let segments = Segmentation {
            ctx: ctx.clone(),
            referrals: referrals.clone(),
            custom: custom.clone(),
        };
        let redemptions = Redemptions {
            ctx: ctx.clone(),
            sold_out: Arc::default(),
        };
        Services {
            members: Members {
                ctx: ctx.clone(),
                referrals: referrals.clone(),
                segments: segments.clone(),
                custom: custom.clone(),
            },
            purchases: Purchases {
                ctx: ctx.clone(),
                campaigns: campaigns.clone(),
                referrals: referrals.clone(),
                segments: segments.clone(),
            },
            birthdays: Birthdays {
                ctx: ctx.clone(),
                redemptions: redemptions.clone(),
            },
            erasures: Erasures {
                ctx: ctx.clone(),
                referrals: referrals.clone(),
                segments: segments.clone(),
            },
            tiers: Tiers { ctx: ctx.clone() },
            balances: Balances { ctx: ctx.clone() },
            events: Events { ctx: ctx.clone() },
            audit: Audit { ctx: ctx.clone() },
            redemptions,
            referrals,
            campaigns,
            segments,
            custom,
            ctx,
        }
    }
}

/// A use case's answer, and whether it was replayed from an earlier identical request.
#[derive(Debug, Clone)]
pub struct Outcome<T> {
    pub value: T,
    pub replayed: bool,
}

impl<T> Outcome<T> {
    pub fn fresh(value: T) -> Self {
        Outcome {
            value,
            replayed: false,
        }
    }
    pub fn replay(value: T) -> Self {
        Outcome {
            value,
            replayed: true,
        }
    }
}

impl Ctx {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Runs `each` for every member of an index work list, a page at a time and a few members
    /// at once: the scheduled jobs' way of touching only the members in play. One member's
    /// failure is that member's result; the run goes on (a failed index read stops it).
    pub(crate) async fn for_members_in<T, Fut>(
        &self,
        which: &MemberIndex,
        each: impl Fn(MemberId) -> Fut,
    ) -> Result<Vec<(MemberId, Result<T, ServiceError>)>, ServiceError>
    where
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        const JOB_CONCURRENCY: usize = 8;
        // The partitions of a sharded list (DESIGN.md "Scale") are read a few at once; a
        // page's members are handled a few at once within each.
        const PARTS_AT_ONCE: usize = 4;
        let each = &each;
        let parts: Vec<Result<Vec<_>, ServiceError>> =
            futures::stream::iter(0..Table::member_list_parts(which))
                .map(|part| async move {
                    let mut out = Vec::new();
                    let mut after = None;
                    loop {
                        let page = self.table.member_keys_in_part(which, part, after).await?;
                        let ids = page.items.iter().filter_map(Table::member_of_key);
                        let results: Vec<_> = futures::stream::iter(ids)
                            .map(|id| {
                                let fut = each(id.clone());
                                async move { (id, fut.await) }
                            })
                            .buffer_unordered(JOB_CONCURRENCY)
                            .collect()
                            .await;
                        out.extend(results);
                        match page.next {
                            Some(n) => after = Some(n),
                            None => return Ok(out),
                        }
                    }
                })
                .buffer_unordered(PARTS_AT_ONCE)
                .collect()
                .await;
        let mut out = Vec::new();
        for p in parts {
            out.extend(p?);
        }
        Ok(out)
    }

    /// [`Services::for_members_in`] over the month partitions of a date-keyed work list (tier
    /// expiries, points due), from [`LOOKBACK_MONTHS`] months back to `today`'s month: a job
    /// stopped for up to two years still catches everyone up.
    pub(crate) async fn for_members_by_month<T, Fut>(
        &self,
        today: NaiveDate,
        which: impl Fn(NaiveDate) -> MemberIndex,
        each: impl Fn(MemberId) -> Fut,
    ) -> Result<Vec<(MemberId, Result<T, ServiceError>)>, ServiceError>
    where
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        let mut out = Vec::new();
        for back in 0..=LOOKBACK_MONTHS {
            let month = today
                .checked_sub_months(chrono::Months::new(back))
                .unwrap_or(NaiveDate::MIN);
            out.extend(self.for_members_in(&which(month), &each).await?);
        }
        Ok(out)
    }

    /// The phone a caller typed, national numbers read in the program's `default_country`
    /// (400 naming `field` when it is no phone).
    pub fn phone(
        &self,
        field: &str,
        p: &crate::domain::PhoneInput,
    ) -> Result<crate::domain::Phone, ServiceError> {
        p.resolve(self.program.default_country)
            .map_err(|e| ServiceError::malformed(field, e.0))
    }

    /// The calendar date in the program's time zone: tiers, spend months and expiries use it.
    pub fn program_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.program.timezone).date_naive()
    }
}
