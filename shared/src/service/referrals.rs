//! Referrals (DESIGN.md "Referrals"): codes (made on first ask, unique by a claim item; vanity
//! codes set by an administrator), applying a code at enrolment or within the window, what a
//! referee's qualifying purchase and a refund of it do (called by `accrual` inside their own
//! commits), the review queue, and the funnel. The rules are `domain::referral`'s.

use super::audit::Audited;
use super::error::ServiceError;
use super::error::live;
use super::events::Journal;
use super::unit::MemberWrite;
use super::{Outcome, Services};
use crate::domain::audit::{Actor, AuditAction, Change};
use crate::domain::event::{
    EventData, ReferralApplied, ReferralJudged, ReferralReversed, ReferralRewarded, ReferralRole,
};
use crate::domain::ledger::LedgerEntry;
use crate::domain::ledger::LedgerKind;
use crate::domain::lots::Origin;
use crate::domain::member::Member;
use crate::domain::receipt::{PurchaseRef, RefundRef};
use crate::domain::referral::{
    self, Application, Contact, FraudRule, PurchaseFacts, Qualification, Referral, ReferralCode,
    ReferralMark, ReferralStatus, Refusal,
};
use crate::domain::{MemberId, Points, guesses};
use crate::retrying;
use crate::table::{
    Batch, CodeClaim, CodeGuesses, Fetched, PaymentMark, PseudonymKey, Reads, RefereeMark,
    Referrer, RetiredCode, Slot, Versioned,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a referrer's codes did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReferralCounts {
    pub applied: u32,
    /// Held for review now.
    pub held: u32,
    /// Qualified and paid (the referee at least), ever.
    pub rewarded: u32,
    pub reversed: u32,
    pub rejected: u32,
    /// Rewarded and not reversed: what milestones count.
    pub qualified: u32,
}

/// A member's referral page: their code, what it did, and who referred them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"member_id": "member-ada", "code": "K7QM4ZPA",
    "counts": {"applied": 4, "held": 0, "rewarded": 3, "reversed": 1, "rejected": 0, "qualified": 2},
    "points_earned": 1000, "referred_by": null}))]
pub struct ReferralSummary {
    pub member_id: MemberId,
    /// Null only for a member enrolled before codes were made at enrolment, until the next
    /// nightly segments run makes theirs.
    pub code: Option<ReferralCode>,
    pub counts: ReferralCounts,
    /// Points paid to this member as a referrer (rewards and milestones), net of reversals.
    pub points_earned: Points,
    /// The referral this member is the referee of, if they applied a code.
    pub referred_by: Option<ReferralView>,
}

/// A referral as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"referee_id": "member-bob", "referrer_id": "member-ada", "code": "K7QM4ZPA",
    "status": "rewarded", "rule": null, "applied_at": "2027-01-02T10:00:00Z", "deadline": "2027-02-01",
    "purchase": {"store_id": "store-1", "receipt_id": "R-1"}, "amount": 2500,
    "qualified_at": "2027-01-05T12:00:00Z", "referee_points": 200, "referrer_points": 500,
    "milestone_points": 0, "capped": false, "reviewed_by": null}))]
pub struct ReferralView {
    pub referee_id: MemberId,
    pub referrer_id: MemberId,
    pub code: ReferralCode,
    pub status: ReferralStatus,
    /// The rule that held or rejected it.
    pub rule: Option<FraudRule>,
    pub applied_at: DateTime<Utc>,
    /// The last day a purchase qualifies.
    pub deadline: NaiveDate,
    pub purchase: Option<PurchaseRef>,
    /// The qualifying purchase's amount, in minor units.
    pub amount: Option<i64>,
    pub qualified_at: Option<DateTime<Utc>>,
    pub referee_points: Points,
    pub referrer_points: Points,
    pub milestone_points: Points,
    /// The referrer was past a cap: the referee was paid, the referrer not.
    pub capped: bool,
    pub reviewed_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "K7QM4ZPA"}))]
pub struct ApplyRequest {
    pub code: ReferralCode,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "ADAPALS"}))]
pub struct CodeRequest {
    pub code: ReferralCode,
}

/// The referrer of a code, as read for applying it or paying a referral.
pub(crate) struct Referring {
    pub member: Versioned<Member>,
    pub record: Versioned<Referrer>,
}

/// The reads a referral needs about its referrer (one round trip with the referral itself).
pub(crate) struct ReferringSlots {
    member: Slot<Member>,
    record: Slot<Referrer>,
}

impl ReferringSlots {
    pub fn add(reads: &mut Reads, referrer: &MemberId) -> Self {
        ReferringSlots {
            member: reads.add::<Member>(referrer),
            record: reads.add::<Referrer>(referrer),
        }
    }
    pub fn get(&self, found: &Fetched) -> Result<Referring, ServiceError> {
        Ok(Referring {
            member: live(found.get(&self.member)?)?,
            record: found
                .get(&self.record)?
                .ok_or_else(|| ServiceError::corrupt("a referral's referrer has no code"))?,
        })
    }
}

/// What applying a code reads in its first round trip: the code's claim, and how many unknown
/// codes the caller has tried (DESIGN.md "Guessing codes").
pub(crate) struct CodeReads {
    pub code: ReferralCode,
    claim: Slot<CodeClaim>,
    guesser: String,
    guesses: Slot<CodeGuesses>,
}

impl CodeReads {
    /// `guesser` as [`Services::guesser`] made it.
    pub fn add(reads: &mut Reads, code: &ReferralCode, guesser: String) -> Self {
        CodeReads {
            code: code.clone(),
            claim: reads.add::<CodeClaim>(code),
            guesses: reads.add::<CodeGuesses>(&guesser),
            guesser,
        }
    }
}

/// What a referee's purchase reads about their referral: nothing (no mark, or not a purchase
/// that could qualify), or — once — the referral, the referrer and whether the referrer paid
/// with the same card.
pub(crate) enum ReferralStep {
    /// The window is over: the mark is closed, nothing more is read.
    Close,
    Decide(Box<ReferralReads>),
}

pub(crate) struct ReferralReads {
    referral: Versioned<Referral>,
    referring: Referring,
    same_payment: bool,
    /// The referee's keyed contact hashes, and whether one was rewarded as a referee before.
    marks: Vec<String>,
    repeat: bool,
}

/// What a referee's purchase did to their referral, for the purchase's record.
pub(crate) struct ReferralOutcome {
    /// The referrer, when this purchase qualified or held the referral (a refund reads it).
    pub referrer: Option<MemberId>,
}

fn contact(m: &Member) -> Contact {
    Contact::of(
        m.phone.as_ref().map(|p| p.as_str()),
        m.email.as_ref().map(|e| String::from(e.clone())).as_deref(),
    )
}

/// The hash a payment fingerprint is stored and compared as.
pub fn payment_hash(fingerprint: &str) -> String {
    referral::fingerprint("payment", fingerprint.trim())
}

fn view(r: &Referral, today: NaiveDate) -> ReferralView {
    ReferralView {
        referee_id: r.referee.clone(),
        referrer_id: r.referrer.clone(),
        code: r.code.clone(),
        status: r.status_on(today),
        rule: r.rule,
        applied_at: r.applied_at,
        deadline: r.deadline,
        purchase: r.purchase.clone(),
        amount: r.amount,
        qualified_at: r.qualified_at,
        referee_points: r.referee_points,
        referrer_points: r.referrer_points,
        milestone_points: r.milestone_points,
        capped: r.capped,
        reviewed_by: r.reviewed_by.clone(),
    }
}

fn counts_view(r: &Referrer) -> ReferralCounts {
    let c = &r.counts;
    ReferralCounts {
        applied: c.applied,
        held: c.held,
        rewarded: c.rewarded,
        reversed: c.reversed,
        rejected: c.rejected,
        qualified: c.standing(),
    }
}

/// One group's 90-day repeat buyers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RepeatRate {
    pub members: u64,
    pub repeat_buyers: u64,
    /// `repeat_buyers / members` (4 decimals; null without members).
    pub rate: Option<f64>,
}

/// Referred members against organic ones enrolled in the same months.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReferredRetention {
    /// The segments run the counts are from.
    pub as_of: DateTime<Utc>,
    /// The enrolment months counted: those in the window whose three months are over.
    pub months: Vec<String>,
    pub referred: RepeatRate,
    pub organic: RepeatRate,
    /// Referred minus organic rate, and its 95 % interval (Wald, as campaign results).
    pub difference: Option<f64>,
    pub difference_ci95: Option<[f64; 2]>,
}

/// `GET /v1/analytics/referrals`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"from": "2027-01-01", "to": "2027-03-31",
    "funnel": {"applied": 40, "qualified": 25, "held": 2, "rewarded": 22, "rewarded_points": 16400,
        "reversed": 1, "reversed_points": 700, "rejected": 1, "expired": 9, "active_referrers": 12,
        "k_factor": 1.75},
    "top_referrers": [{"member_id": "member-ada", "qualified": 5, "applied": 6, "points": 3500}],
    "retention": {"as_of": "2027-05-01T02:00:00Z", "months": ["2027-01", "2027-02"],
        "referred": {"members": 30, "repeat_buyers": 15, "rate": 0.5},
        "organic": {"members": 400, "repeat_buyers": 120, "rate": 0.3},
        "difference": 0.2, "difference_ci95": [0.0181, 0.3819]}}))]
pub struct ReferralAnalytics {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub funnel: referral::Funnel,
    pub top_referrers: Vec<referral::TopReferrer>,
    /// Null until the nightly segments job has run.
    pub retention: Option<ReferredRetention>,
}

/// The longest window the funnel reads (it reads every referral applied in it).
pub const ANALYTICS_MAX_DAYS: i64 = 366;

fn repeat_rate(members: u64, repeat: u64) -> RepeatRate {
    RepeatRate {
        members,
        repeat_buyers: repeat,
        rate: (members > 0).then(|| crate::domain::campaign::rate4(repeat as f64 / members as f64)),
    }
}

/// A refund as the referral it touches sees it: which refund, the purchase's amount, what has
/// been refunded of it with this one, and when.
#[derive(Clone, Copy)]
pub(crate) struct RefundOf<'a> {
    pub of: &'a RefundRef,
    pub purchase_amount: i64,
    pub refunded_total: i64,
    pub now: DateTime<Utc>,
}

/// Which side of which referral points go to or come back from: the role, and the referee the
/// referral is named by (its ledger reference).
#[derive(Clone, Copy)]
struct Side<'a> {
    role: ReferralRole,
    referee: &'a MemberId,
}

impl Services {
    /// The funnel of the referrals applied from `from` to `to` (UTC days, inclusive), the top
    /// referrers, and the repeat-purchase rate of referred against organic members enrolled in
    /// those months (from the latest segments run).
    #[tracing::instrument(skip_all)]
    pub async fn referral_analytics(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<ReferralAnalytics, ServiceError> {
        if to < from || (to - from).num_days() >= ANALYTICS_MAX_DAYS {
            return Err(ServiceError::field(
                "to",
                format!("to must be on or after from, at most {ANALYTICS_MAX_DAYS} days"),
            ));
        }
        let mut referrals = Vec::new();
        let (first, last) = (
            crate::domain::spend::month_index(from),
            crate::domain::spend::month_index(to),
        );
        for month in first..=last {
            let month = super::segments::month_name(month);
            referrals.extend(
                self.table
                    .referrals_applied_in(&month)
                    .await?
                    .into_iter()
                    .filter(|r| (from..=to).contains(&r.applied_at.date_naive())),
            );
        }
        let today = self.program_date(self.now());
        let (mut funnel, top_referrers) = referral::funnel(&referrals, today, 10);
        funnel.k_factor = funnel.k_factor.map(crate::domain::campaign::rate4);
        let retention = match self.table.latest_segment_day(None).await? {
            None => None,
            Some(day) => {
                let complete = crate::domain::spend::month_index(day.date) - 2;
                let months: Vec<String> = (first..=last.min(complete - 1))
                    .map(super::segments::month_name)
                    .collect();
                let mut sum = crate::domain::segment::RepeatCohort::default();
                for m in &months {
                    if let Some(c) = day.referral_cohorts.get(m) {
                        sum.merge(c);
                    }
                }
                let group = |members, converted| crate::domain::campaign::GroupTally {
                    members,
                    converted,
                    ..Default::default()
                };
                let e = crate::domain::campaign::effect(
                    &group(sum.referred, sum.referred_repeat),
                    &group(sum.organic, sum.organic_repeat),
                );
                let r4 = crate::domain::campaign::rate4;
                Some(ReferredRetention {
                    as_of: day.as_of,
                    months,
                    referred: repeat_rate(sum.referred, sum.referred_repeat),
                    organic: repeat_rate(sum.organic, sum.organic_repeat),
                    difference: e.conversion_uplift.map(r4),
                    difference_ci95: e.conversion_ci95.map(|(lo, hi)| [r4(lo), r4(hi)]),
                })
            }
        };
        Ok(ReferralAnalytics {
            from,
            to,
            funnel,
            top_referrers,
            retention,
        })
    }

    /// A member's referral page: a read only. The code was made at enrolment (members enrolled
    /// before that get theirs from the next nightly segments run; until then `code` is null).
    #[tracing::instrument(skip_all, fields(member = %id))]
    pub async fn referral(&self, id: &MemberId) -> Result<ReferralSummary, ServiceError> {
        let now = self.now();
        let mut reads = Reads::new();
        let member = reads.add::<Member>(id);
        let record = reads.add::<Referrer>(id);
        let own = reads.add::<Referral>(id);
        let found = self.table.read(&reads).await?;
        live(found.get(&member)?)?;
        let record = found.get(&record)?.map(|r| r.value);
        let today = self.program_date(now);
        Ok(ReferralSummary {
            member_id: id.clone(),
            code: record.as_ref().map(|r| r.code.clone()),
            counts: record.as_ref().map(counts_view).unwrap_or_default(),
            points_earned: Points(record.as_ref().map_or(0, |r| r.counts.points)),
            referred_by: found.get(&own)?.map(|r| view(&r.value, today)),
        })
    }

    /// A new member's code, drawn at random, into `batch`: its claim and the member's referrer
    /// record. A code drawn twice fails the claim's absence condition, and the retry of the
    /// whole write draws another.
    pub(crate) fn make_code(
        &self,
        m: &mut Member,
        now: DateTime<Utc>,
        batch: &mut Batch,
    ) -> Result<(), ServiceError> {
        let r = self.new_referrer(now);
        batch.create(
            &r.code,
            &CodeClaim {
                member_id: m.id.clone(),
            },
        )?;
        batch.create(&m.id, &r)?;
        m.has_referral_code = true;
        Ok(())
    }

    /// For the nightly run: a member enrolled before codes were made at enrolment gets one now
    /// (or, if an earlier read already made one, the member item learns it). Returns whether
    /// the member must be written.
    pub(crate) async fn ensure_code(
        &self,
        m: &mut Member,
        now: DateTime<Utc>,
        batch: &mut Batch,
    ) -> Result<bool, ServiceError> {
        if m.has_referral_code || m.erased_at.is_some() {
            return Ok(false);
        }
        if self.table.get::<Referrer>(&m.id).await?.is_some() {
            m.has_referral_code = true;
        } else {
            self.make_code(m, now, batch)?;
        }
        Ok(true)
    }

    /// The key of pseudonymous hashes: made once for the table (created on its absence: of
    /// processes racing to make it, one wins and the rest read the winner's), then kept for the
    /// life of the process.
    pub(crate) async fn pseudonym_key(&self) -> Result<&[u8], ServiceError> {
        self.pseudonym_key
            .get_or_try_init(|| async {
                for _ in 0..2 {
                    if let Some(k) = self.table.get::<PseudonymKey>(&()).await? {
                        return hex::decode(&k.value.key)
                            .map_err(|_| ServiceError::corrupt("the pseudonym key is not hex"));
                    }
                    let key: [u8; 32] = rand::random();
                    let mut batch = Batch::new();
                    batch.create(
                        &(),
                        &PseudonymKey {
                            key: hex::encode(key),
                            created_at: self.now(),
                        },
                    )?;
                    match self.table.commit(batch).await {
                        Ok(()) => return Ok(key.to_vec()),
                        // Another process made it first: read theirs.
                        Err(e) if e.is_retryable() => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(ServiceError::corrupt(
                    "the pseudonym key could not be made or read",
                ))
            })
            .await
            .map(Vec::as_slice)
    }

    /// A member's keyed contact hashes, as a rewarded referee is remembered by.
    async fn referee_marks(&self, m: &Member) -> Result<Vec<String>, ServiceError> {
        if m.phone.is_none() && m.email.is_none() {
            return Ok(Vec::new());
        }
        let key = self.pseudonym_key().await?;
        Ok(referral::referee_marks(
            key,
            m.phone.as_ref().map(|p| p.as_str()),
            m.email.as_ref().map(|e| String::from(e.clone())).as_deref(),
        ))
    }

    /// The keyed hash a retired code is kept by.
    pub(crate) async fn retired_code(&self, code: &ReferralCode) -> Result<String, ServiceError> {
        Ok(referral::keyed(
            self.pseudonym_key().await?,
            "code",
            code.as_str(),
        ))
    }

    fn new_referrer(&self, now: DateTime<Utc>) -> Referrer {
        let draws: Vec<u8> = (0..referral::GENERATED_CODE_LEN)
            .map(|_| rand::random_range(0..32u8))
            .collect();
        Referrer {
            code: ReferralCode::from_draws(draws),
            retired: Vec::new(),
            counts: Default::default(),
            created_at: now,
        }
    }

    /// An administrator gives a member a vanity code. The old code keeps resolving to the same
    /// member (its claim stays); the counts carry over (they are the member's, not the code's).
    #[tracing::instrument(skip_all, fields(member = %id))]
    pub async fn set_referral_code(
        &self,
        id: &MemberId,
        code: ReferralCode,
        actor: &Actor,
    ) -> Result<ReferralSummary, ServiceError> {
        retrying!(self, self.try_set_code(id, &code, actor))?;
        self.referral(id).await
    }

    async fn try_set_code(
        &self,
        id: &MemberId,
        code: &ReferralCode,
        actor: &Actor,
    ) -> Result<(), ServiceError> {
        let now = self.now();
        let retired = self.retired_code(code).await?;
        let mut reads = Reads::new();
        let member = reads.add::<Member>(id);
        let record = reads.add::<Referrer>(id);
        let claim = reads.add::<CodeClaim>(code);
        let was_retired = reads.add::<RetiredCode>(&retired);
        let found = self.table.read(&reads).await?;
        live(found.get(&member)?)?;
        // An erased member's code is retired for ever: printed, it must not credit a stranger.
        if found.exists(&was_retired) {
            return Err(ServiceError::ReferralCodeTaken);
        }
        let mut batch = Batch::new();
        let (mut r, version) = match found.get(&record)? {
            Some(r) => (r.value, Some(r.version)),
            None => {
                let r = self.new_referrer(now);
                batch.create(
                    &r.code,
                    &CodeClaim {
                        member_id: id.clone(),
                    },
                )?;
                (r, None)
            }
        };
        match found.get(&claim)? {
            Some(c) if c.value.member_id != *id => return Err(ServiceError::ReferralCodeTaken),
            Some(_) if r.code == *code => return Ok(()),
            Some(_) => {}
            None => {
                batch
                    .create(
                        code,
                        &CodeClaim {
                            member_id: id.clone(),
                        },
                    )?
                    .or_refuse(|| ServiceError::ReferralCodeTaken);
            }
        }
        let old = std::mem::replace(&mut r.code, code.clone());
        if !r.retired.contains(&old) {
            r.retired.push(old.clone());
        }
        r.retired.retain(|c| c != code);
        match version {
            Some(v) => batch.save(id, &r, Some(v))?,
            None => batch.create(id, &r)?,
        };
        self.audit(
            &mut batch,
            Some(actor),
            // A vanity code may be a name: the trail names the field, never the codes (an
            // erasure leaves nothing personal in it).
            Audited {
                action: AuditAction::ReferralCodeSet,
                member: Some(id),
                target: None,
                changes: vec![Change::named("code")],
            },
            now,
        )?;
        self.table.commit(batch).await
    }

    /// Applies a code to a member after enrolment (within `apply_within_days`).
    #[tracing::instrument(skip_all, fields(member = %id))]
    pub async fn apply_referral(
        &self,
        id: &MemberId,
        code: &ReferralCode,
        actor: Option<&Actor>,
        principal: &str,
    ) -> Result<Outcome<ReferralView>, ServiceError> {
        let guesser = self.guesser(principal).await?;
        retrying!(self, self.try_apply(id, code, actor, &guesser))
    }

    async fn try_apply(
        &self,
        id: &MemberId,
        code: &ReferralCode,
        actor: Option<&Actor>,
        guesser: &str,
    ) -> Result<Outcome<ReferralView>, ServiceError> {
        let now = self.now();
        let mut reads = Reads::new();
        let member = reads.add::<Member>(id);
        let existing = reads.add::<Referral>(id);
        let applying = CodeReads::add(&mut reads, code, guesser.to_owned());
        let found = self.table.read(&reads).await?;
        let current = live(found.get(&member)?)?;
        if let Some(prior) = found.get(&existing)? {
            // The same code applied again is the same request: answered as it stands.
            return if prior.value.code == *code {
                Ok(Outcome::replay(view(&prior.value, self.program_date(now))))
            } else {
                Err(ServiceError::ReferralRefused(Refusal::AlreadyReferred))
            };
        }
        if current.value.referral.is_some() {
            // The member carries a mark but its referral was not read: a multi-item read can
            // see half of a concurrent apply's commit (DynamoDB's isolation of BatchGetItem).
            // The same as a lost race: read again, and the whole commit is there.
            return Err(crate::store::StoreError::Conflict.into());
        }
        let referring = self.referring_of(&found, &applying, now).await?;
        let mut w = MemberWrite::on(self, &current, now);
        let MemberWrite {
            m, journal, batch, ..
        } = &mut w;
        let r = self.apply_code(m, code, &referring, false, journal, batch)?;
        let audited = Audited {
            action: AuditAction::ReferralApplied,
            member: Some(id),
            target: Some(r.referrer.to_string()),
            changes: vec![Change::to("referral_code", code.as_str())],
        };
        w.audit(self, actor, audited)?;
        w.commit(self).await?;
        Ok(Outcome::fresh(view(&r, self.program_date(now))))
    }

    /// The key a caller's unknown codes are counted under: the keyed hash of their principal
    /// (`Caller::principal`), so the record names nobody.
    pub(crate) async fn guesser(&self, principal: &str) -> Result<String, ServiceError> {
        Ok(referral::keyed(
            self.pseudonym_key().await?,
            "caller",
            principal,
        ))
    }

    /// The referrer a code's claim names, read (the one more round trip of applying a code).
    /// A caller past `unknown_codes_per_hour` is refused any code, known or not, without a
    /// look (else a 429 against a success would still tell codes apart); an unknown code is
    /// counted against the caller in its own write before it is refused.
    pub(crate) async fn referring_of(
        &self,
        found: &Fetched,
        reads: &CodeReads,
        now: DateTime<Utc>,
    ) -> Result<Referring, ServiceError> {
        let rules = &self.program.referral;
        if !rules.enabled {
            return Err(ServiceError::ReferralRefused(Refusal::Disabled));
        }
        let counted = found.get(&reads.guesses)?;
        let spent = guesses::allow(
            counted.as_ref().map(|c| c.value.spent),
            now,
            rules.unknown_codes_per_hour,
        )
        .map_err(|retry_after| ServiceError::TooManyUnknownCodes { retry_after })?;
        let referring = match found.get(&reads.claim)? {
            Some(claim) => {
                let mut more = Reads::new();
                let slots = ReferringSlots::add(&mut more, &claim.value.member_id);
                slots.get(&self.table.read(&more).await?)
            }
            None => Err(ServiceError::NotFound("referral code")),
        };
        match referring {
            // A code whose member left is a code nobody holds any more.
            Err(ServiceError::NotFound(_) | ServiceError::MemberErased) => {
                let mut batch = Batch::new();
                let record = CodeGuesses {
                    spent,
                    expires_at: (spent.tat + chrono::Duration::hours(1)).timestamp(),
                };
                batch.save(&reads.guesser, &record, counted.map(|c| c.version))?;
                // A lost race with the caller's other guess is retried: both are counted.
                self.table.commit(batch).await?;
                Err(ServiceError::ReferralRefused(Refusal::UnknownCode))
            }
            other => other,
        }
    }

    /// Applies `code` to the referee `m` (decided by `referral::may_apply`): the referral, the
    /// referrer's count and the mark on the member, into `batch`; `referral.applied` into the
    /// referee's journal. The caller saves the member.
    pub(crate) fn apply_code(
        &self,
        m: &mut Member,
        code: &ReferralCode,
        referring: &Referring,
        at_enrolment: bool,
        journal: &mut Journal,
        batch: &mut Batch,
    ) -> Result<Referral, ServiceError> {
        let now = journal.now();
        let rules = &self.program.referral;
        let referrer = &referring.member.value;
        let today = self.program_date(now);
        let (deadline, first_only, _) = referral::may_apply(&Application {
            rules,
            enrolled_on: self.program_date(m.enrolled_at),
            today,
            at_enrolment,
            already_referred: m.referral.is_some(),
            has_purchased: m.first_purchase_at.is_some(),
            own_code: referrer.id == m.id,
            referrer_paid_total: referring.record.value.counts.paid,
            contacts: referral::same_person(&contact(m), &contact(referrer)),
        })
        .map_err(ServiceError::ReferralRefused)?;
        m.referral = Some(ReferralMark::Open {
            deadline,
            referrer: referrer.id.clone(),
        });
        let r = Referral {
            referee: m.id.clone(),
            referrer: referrer.id.clone(),
            code: code.clone(),
            applied_at: now,
            deadline,
            first_only,
            status: ReferralStatus::Applied,
            rule: None,
            purchase: None,
            bought_on: None,
            amount: None,
            qualified_at: None,
            referee_points: Points::ZERO,
            referrer_points: Points::ZERO,
            milestone_points: Points::ZERO,
            milestones_reversed: Points::ZERO,
            capped: false,
            paid_month: None,
            referee_origin: None,
            referrer_origin: None,
            reviewed_by: None,
            updated_at: now,
        };
        // A lost race to create it is retried, not refused: the retry reads the referral the
        // winner made, and the same code applied again answers 200 as it stands.
        batch.create(&m.id, &r)?;
        let mut record = referring.record.value.clone();
        record.counts.applied += 1;
        batch.save(&referrer.id, &record, Some(referring.record.version))?;
        journal.note(EventData::ReferralApplied(ReferralApplied {
            referrer_id: referrer.id.clone(),
            code: code.clone(),
            deadline,
        }));
        Ok(r)
    }

    /// What a referee's purchase must read about their referral (DESIGN.md "Referrals"):
    /// nothing unless the member carries an open mark and the purchase could change the
    /// referral; then one round trip for the referral, the referrer and the payment mark.
    pub(crate) async fn referral_step(
        &self,
        m: &Member,
        amount: i64,
        payment: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<ReferralStep>, ServiceError> {
        let Some(ReferralMark::Open { deadline, referrer }) = &m.referral else {
            return Ok(None);
        };
        let rules = &self.program.referral;
        if self.program_date(now) > *deadline {
            return Ok(Some(ReferralStep::Close));
        }
        let first_only = rules.qualify_within_days == 0;
        if amount < rules.min_spend && !(first_only && m.first_purchase_at.is_none()) {
            return Ok(None);
        }
        let marks = self.referee_marks(m).await?;
        let mut reads = Reads::new();
        let referral = reads.add::<Referral>(&m.id);
        let slots = ReferringSlots::add(&mut reads, referrer);
        let mark = payment.map(|p| reads.add::<PaymentMark>(&(payment_hash(p), referrer.clone())));
        let seen: Vec<_> = marks.iter().map(|h| reads.add::<RefereeMark>(h)).collect();
        let found = self.table.read(&reads).await?;
        let Some(referral) = found.get(&referral)? else {
            return Err(ServiceError::corrupt(
                "a referral mark without its referral",
            ));
        };
        let referring = match slots.get(&found) {
            Ok(r) => r,
            // The referrer left: the referral can pay nobody's code any more.
            Err(ServiceError::NotFound(_) | ServiceError::MemberErased) => {
                return Ok(Some(ReferralStep::Close));
            }
            Err(e) => return Err(e),
        };
        Ok(Some(ReferralStep::Decide(Box::new(ReferralReads {
            referral,
            referring,
            same_payment: mark.is_some_and(|s| found.exists(&s)),
            repeat: seen.iter().any(|s| found.exists(s)),
            marks,
        }))))
    }

    /// A referee's purchase and their referral (decided by `referral::qualify`): the mark, the
    /// referral, and — when it qualifies — both sides' pending points, the referrer's counts and
    /// any milestone, into `batch`; the referee's lines into `journal` (the caller closes it and
    /// saves the referee), the referrer's into their own journal, closed here.
    pub(crate) fn purchase_referral(
        &self,
        step: &ReferralStep,
        w: &mut MemberWrite,
        sale: &PurchaseRef,
        (amount, occurred_at, first): (i64, DateTime<Utc>, bool),
    ) -> Result<ReferralOutcome, ServiceError> {
        let none = ReferralOutcome { referrer: None };
        let ReferralStep::Decide(reads) = step else {
            w.m.referral = Some(ReferralMark::Closed);
            return Ok(none);
        };
        let now = w.journal.now();
        let today = self.program_date(now);
        let rules = &self.program.referral;
        let mut r = reads.referral.value.clone();
        if r.status != ReferralStatus::Applied {
            w.m.referral = Some(ReferralMark::Closed);
            return Ok(none);
        }
        let referrer = &reads.referring.member.value;
        let same = referral::same_person(&contact(&w.m), &contact(referrer))
            .or(reads.same_payment.then_some(FraudRule::SamePayment))
            .or(reads.repeat.then_some(FraudRule::RepeatReferee));
        let decision = referral::qualify(
            rules,
            r.deadline,
            r.first_only,
            &reads.referring.record.value.counts,
            &PurchaseFacts {
                amount,
                today,
                now,
                first,
                same_person: same,
            },
        );
        if decision == Qualification::NotYet {
            return Ok(none);
        }
        w.m.referral = Some(ReferralMark::Closed);
        r.updated_at = now;
        let mut record = reads.referring.record.value.clone();
        let outcome = match decision {
            Qualification::NotYet => unreachable!("returned above"),
            Qualification::Expired => {
                r.status = ReferralStatus::Expired;
                none
            }
            Qualification::Held(rule) | Qualification::Rejected(rule) => {
                let held = matches!(decision, Qualification::Held(_));
                r.status = if held {
                    ReferralStatus::Held
                } else {
                    ReferralStatus::Rejected
                };
                r.rule = Some(rule);
                r.purchase = Some(sale.clone());
                r.bought_on = Some(self.program_date(occurred_at));
                r.amount = Some(amount);
                if held {
                    record.counts.held += 1;
                } else {
                    record.counts.rejected += 1;
                }
                let judged = ReferralJudged {
                    referrer_id: r.referrer.clone(),
                    rule,
                    purchase: Some(sale.clone()),
                };
                w.journal.note(if held {
                    EventData::ReferralHeld(judged)
                } else {
                    EventData::ReferralRejected(judged)
                });
                ReferralOutcome {
                    referrer: Some(r.referrer.clone()),
                }
            }
            Qualification::Rewarded(p) => {
                r.purchase = Some(sale.clone());
                r.bought_on = Some(self.program_date(occurred_at));
                r.amount = Some(amount);
                self.pay(&mut r, &p, w, &reads.referring, &mut record, &reads.marks)?;
                ReferralOutcome {
                    referrer: Some(r.referrer.clone()),
                }
            }
        };
        w.batch
            .save(&r.referrer, &record, Some(reads.referring.record.version))?;
        w.batch.save(&w.m.id, &r, Some(reads.referral.version))?;
        Ok(outcome)
    }

    /// Pays a qualified referral (`p`): the referee's points into `m` and `journal`, the
    /// referrer's and a milestone's into the referrer (saved here, with their own journal),
    /// the counts into `record`, what was paid into `r`.
    fn pay(
        &self,
        r: &mut Referral,
        p: &referral::Payout,
        w: &mut MemberWrite,
        referring: &Referring,
        record: &mut Referrer,
        marks: &[String],
    ) -> Result<(), ServiceError> {
        let MemberWrite {
            m, journal, batch, ..
        } = w;
        let now = journal.now();
        let today = self.program_date(now);
        let bought_on = r.bought_on.unwrap_or(today);
        // The person is remembered as rewarded, through erasure, by keyed hashes only.
        for hash in marks {
            batch.put(hash, &RefereeMark { rewarded_on: today })?;
        }
        let sale = r.purchase.clone().unwrap_or(PurchaseRef {
            store_id: crate::domain::StoreId::parse("-").expect("a valid id"),
            receipt_id: crate::domain::ReceiptId::parse("-").expect("a valid id"),
        });
        r.status = ReferralStatus::Rewarded;
        r.qualified_at = Some(now);
        r.capped = p.capped;
        r.paid_month = (!p.capped).then(|| referral::month_of(today));
        r.referee_points = p.referee;
        r.referrer_points = p.referrer;
        r.milestone_points = p.milestone.unwrap_or(Points::ZERO);
        r.referee_origin = self.reward(
            m,
            journal,
            p.referee,
            Side {
                role: ReferralRole::Referee,
                referee: &r.referee,
            },
            bought_on,
            &sale,
        )?;
        // The referrer is a second member written in the same commit.
        let mut rw = MemberWrite::on(self, &referring.member, now);
        let MemberWrite {
            m: referrer,
            journal: rj,
            ..
        } = &mut rw;
        self.settle(referrer, rj, now);
        r.referrer_origin = self.reward(
            referrer,
            rj,
            p.referrer,
            Side {
                role: ReferralRole::Referrer,
                referee: &r.referee,
            },
            bought_on,
            &sale,
        )?;
        let milestone_origin = match p.milestone {
            Some(points) => self.reward(
                referrer,
                rj,
                points,
                Side {
                    role: ReferralRole::Milestone,
                    referee: &r.referee,
                },
                bought_on,
                &sale,
            )?,
            None => None,
        };
        record.counts.paid_out(
            p,
            now,
            today,
            self.program.referral.velocity_per_hour as usize + 1,
            milestone_origin,
        );
        rw.close_into(self, batch)?;
        Ok(())
    }

    /// One side's reward: pending from the purchase day for the return window (`pending_days`),
    /// a `referral.rewarded` line; returns where the points went (none for 0 points).
    fn reward(
        &self,
        m: &mut Member,
        journal: &mut Journal,
        points: Points,
        side: Side,
        bought_on: NaiveDate,
        sale: &PurchaseRef,
    ) -> Result<Option<Origin>, ServiceError> {
        let Side { role, referee } = side;
        if points.0 <= 0 {
            return Ok(None);
        }
        let now = journal.now();
        let mut lots = m.lots();
        let origin = lots.earn(
            points.0,
            bought_on,
            self.program.points.pending_days,
            self.program_date(now),
            self.program.points.expiry,
        );
        m.set_lots(lots);
        m.lifetime_earned = m.lifetime_earned.checked_add(points)?;
        let available_on = match origin {
            Origin::Pending(on) => Some(on),
            Origin::Available(_) => None,
        };
        journal.line(
            LedgerEntry::new(
                LedgerKind::Referral,
                points,
                m.balance,
                Some(format!("referral:{referee}")),
                None,
                now,
            ),
            |moved, line| {
                EventData::ReferralRewarded(ReferralRewarded {
                    moved: crate::domain::event::Moved {
                        points: if available_on.is_some() {
                            Points::ZERO
                        } else {
                            moved.points
                        },
                        ..moved
                    },
                    line,
                    referee_id: referee.clone(),
                    role,
                    rewarded: points,
                    available_on,
                    purchase: sale.clone(),
                })
            },
        );
        Ok(Some(origin))
    }

    /// A refund of a referee's qualifying purchase (decided by `referral::refund_reverses`):
    /// within the return window and below the minimum spend, both rewards come back out of the
    /// lots (pending first; spent points become owed), the referrer's counts and milestones are
    /// recounted. A held referral is rejected instead. Returns the referee's points reversed.
    /// Either side may be gone: an erased referee (`referee` None) had their points forfeited,
    /// so only the referrer's come back; an erased referrer (`referring` None) has nothing left
    /// to take back or recount, so only the referee's do.
    pub(crate) fn refund_referral(
        &self,
        referral: &Versioned<Referral>,
        referring: Option<&Referring>,
        refund: RefundOf<'_>,
        referee: Option<(&mut Member, &mut Journal)>,
        batch: &mut Batch,
    ) -> Result<Points, ServiceError> {
        let RefundOf {
            of,
            purchase_amount,
            refunded_total,
            now,
        } = refund;
        let today = self.program_date(now);
        let rules = &self.program.referral;
        let mut r = referral.value.clone();
        let bought_on = r.bought_on.unwrap_or(today);
        let ours = r
            .purchase
            .as_ref()
            .is_some_and(|p| p.store_id == of.store_id && p.receipt_id == of.receipt_id);
        if !ours
            || !matches!(r.status, ReferralStatus::Rewarded | ReferralStatus::Held)
            || !referral::refund_reverses(
                rules,
                purchase_amount,
                refunded_total,
                bought_on,
                today,
                self.program.points.pending_days,
            )
        {
            return Ok(Points::ZERO);
        }
        let mut record = referring.map(|g| g.record.value.clone());
        r.updated_at = now;
        let mut back_to_referee = Points::ZERO;
        if r.status == ReferralStatus::Held {
            r.status = ReferralStatus::Rejected;
            if let Some(record) = record.as_mut() {
                record.counts.held = record.counts.held.saturating_sub(1);
                record.counts.rejected += 1;
            }
            if let Some((_, journal)) = referee {
                journal.note(EventData::ReferralRejected(ReferralJudged {
                    referrer_id: r.referrer.clone(),
                    rule: r.rule.unwrap_or(FraudRule::Reviewer),
                    purchase: r.purchase.clone(),
                }));
            }
        } else {
            r.status = ReferralStatus::Reversed;
            if let Some((m, journal)) = referee {
                self.take_back(
                    m,
                    journal,
                    r.referee_points,
                    r.referee_origin,
                    Side {
                        role: ReferralRole::Referee,
                        referee: &r.referee,
                    },
                    of,
                )?;
                back_to_referee = r.referee_points;
            }
            if let (Some(referring), Some(record)) = (referring, record.as_mut()) {
                let mut rw = MemberWrite::on(self, &referring.member, now);
                let MemberWrite {
                    m: referrer,
                    journal: rj,
                    ..
                } = &mut rw;
                self.settle(referrer, rj, now);
                self.take_back(
                    referrer,
                    rj,
                    r.referrer_points,
                    r.referrer_origin,
                    Side {
                        role: ReferralRole::Referrer,
                        referee: &r.referee,
                    },
                    of,
                )?;
                let back = record.counts.reversed_out(
                    r.referrer_points,
                    r.capped,
                    r.paid_month.as_deref(),
                );
                r.milestones_reversed = Points(back.iter().map(|m| m.points.0).sum());
                for milestone in back {
                    self.take_back(
                        referrer,
                        rj,
                        milestone.points,
                        Some(milestone.origin),
                        Side {
                            role: ReferralRole::Milestone,
                            referee: &r.referee,
                        },
                        of,
                    )?;
                }
                rw.close_into(self, batch)?;
            }
        }
        if let (Some(referring), Some(record)) = (referring, &record) {
            batch.save(&r.referrer, record, Some(referring.record.version))?;
        }
        batch.save(&r.referee, &r, Some(referral.version))?;
        Ok(back_to_referee)
    }

    /// One side's reward taken back: from its lot first (pending before it was released), then
    /// soonest-expiring first; beyond the spendable points it is owed. A `referral.reversed` line.
    fn take_back(
        &self,
        m: &mut Member,
        journal: &mut Journal,
        points: Points,
        origin: Option<Origin>,
        side: Side,
        of: &RefundRef,
    ) -> Result<(), ServiceError> {
        let Side { role, referee } = side;
        if points.0 <= 0 {
            return Ok(());
        }
        let taken = self.debit(m, points, origin);
        m.lifetime_earned = m.lifetime_earned.checked_sub(points)?;
        let from_pending = taken.from_pending;
        journal.line(
            LedgerEntry::new(
                LedgerKind::Referral,
                points.checked_neg()?,
                m.balance,
                Some(format!("referral:{referee}")),
                None,
                journal.now(),
            ),
            |moved, line| {
                EventData::ReferralReversed(ReferralReversed {
                    moved: crate::domain::event::Moved {
                        points: Points(from_pending - points.0),
                        ..moved
                    },
                    line,
                    referee_id: referee.clone(),
                    role,
                    reversed: points,
                    pending: (from_pending > 0).then_some(Points(-from_pending)),
                    refund: of.clone(),
                })
            },
        );
        Ok(())
    }

    /// One page of the referrals held for review, newest first.
    #[tracing::instrument(skip_all)]
    pub async fn held_referrals(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<ReferralView>, Option<String>), ServiceError> {
        let today = self.program_date(self.now());
        let (items, next) = self.table.held_referrals(limit, cursor).await?;
        Ok((items.iter().map(|r| view(r, today)).collect(), next))
    }

    /// An administrator approves a held referral (it pays as a qualification would today, caps
    /// included) or rejects it (nobody is paid). Both are audited and evented.
    #[tracing::instrument(skip_all, fields(referee = %referee))]
    pub async fn review_referral(
        &self,
        referee: &MemberId,
        approve: bool,
        actor: &Actor,
    ) -> Result<ReferralView, ServiceError> {
        retrying!(self, self.try_review(referee, approve, actor))
    }

    async fn try_review(
        &self,
        referee: &MemberId,
        approve: bool,
        actor: &Actor,
    ) -> Result<ReferralView, ServiceError> {
        let now = self.now();
        let today = self.program_date(now);
        let held = self
            .table
            .get::<Referral>(referee)
            .await?
            .ok_or(ServiceError::NotFound("referral"))?;
        if held.value.status != ReferralStatus::Held {
            return Err(ServiceError::ReferralNotHeld(held.value.status.as_str()));
        }
        let mut reads = Reads::new();
        let member = reads.add::<Member>(referee);
        let referral = reads.add::<Referral>(referee);
        let slots = ReferringSlots::add(&mut reads, &held.value.referrer);
        let found = self.table.read(&reads).await?;
        let current = live(found.get(&member)?)?;
        let referral = found
            .get(&referral)?
            .ok_or(ServiceError::NotFound("referral"))?;
        if referral.value.status != ReferralStatus::Held {
            return Err(ServiceError::ReferralNotHeld(
                referral.value.status.as_str(),
            ));
        }
        let referring = slots.get(&found)?;
        let mut r = referral.value.clone();
        let mut record = referring.record.value.clone();
        let mut w = MemberWrite::on(self, &current, now);
        self.settle(&mut w.m, &mut w.journal, now);
        record.counts.held = record.counts.held.saturating_sub(1);
        r.reviewed_by = Some(actor.sub.clone());
        r.updated_at = now;
        if approve {
            let p = referral::payout(&self.program.referral, &record.counts, today);
            let marks = self.referee_marks(&w.m).await?;
            self.pay(&mut r, &p, &mut w, &referring, &mut record, &marks)?;
        } else {
            r.status = ReferralStatus::Rejected;
            r.rule = Some(FraudRule::Reviewer);
            record.counts.rejected += 1;
            w.journal.note(EventData::ReferralRejected(ReferralJudged {
                referrer_id: r.referrer.clone(),
                rule: FraudRule::Reviewer,
                purchase: r.purchase.clone(),
            }));
        }
        w.batch
            .save(&r.referrer, &record, Some(referring.record.version))?;
        w.batch.save(referee, &r, Some(referral.version))?;
        w.audit(
            self,
            Some(actor),
            Audited {
                action: if approve {
                    AuditAction::ReferralApproved
                } else {
                    AuditAction::ReferralRejected
                },
                member: Some(referee),
                target: Some(r.referrer.to_string()),
                changes: vec![Change {
                    field: "status".into(),
                    before: Some("held".into()),
                    after: Some(r.status.as_str().into()),
                }],
            },
        )?;
        w.commit(self).await?;
        Ok(view(&r, today))
    }
}
