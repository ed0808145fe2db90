//! Referral codes: made on first ask, unique by a claim item, vanity codes set by an
//! administrator, retired for ever at erasure; and the member summary of what their codes did.

use super::{ReferralSummary, counts_view, view};
use crate::domain::audit::{Actor, AuditAction, Change};
use crate::domain::member::Member;
use crate::domain::referral::{self, Referral, ReferralCode};
use crate::domain::{MemberId, Points};
use crate::retrying;
use crate::service::Referrals;
use crate::service::audit::Audited;
use crate::service::error::ServiceError;
use crate::service::error::live;
use crate::table::{Batch, CodeClaim, PseudonymKey, Reads, Referrer, RetiredCode};
use chrono::{DateTime, Utc};

impl Referrals {
    /// A member's referral page: a read only. The code was made at enrolment (members enrolled
    /// before that get theirs from the next nightly segments run; until then `code` is null).
    #[tracing::instrument(skip_all, fields(member = %id))]
    pub async fn referral(&self, id: &MemberId) -> Result<ReferralSummary, ServiceError> {
        let now = self.ctx.now();
        let mut reads = Reads::new();
        let member = reads.add::<Member>(id);
        let record = reads.add::<Referrer>(id);
        let own = reads.add::<Referral>(id);
        let found = self.ctx.table.read(&reads).await?;
        live(found.get(&member)?)?;
        let record = found.get(&record)?.map(|r| r.value);
        let today = self.ctx.program_date(now);
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
        if self.ctx.table.get::<Referrer>(&m.id).await?.is_some() {
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
                    if let Some(k) = self.ctx.table.get::<PseudonymKey>(&()).await? {
                        return hex::decode(&k.value.key)
                            .map_err(|_| ServiceError::corrupt("the pseudonym key is not hex"));
                    }
                    let key: [u8; 32] = rand::random();
                    let mut batch = Batch::new();
                    batch.create(
                        &(),
                        &PseudonymKey {
                            key: hex::encode(key),
                            created_at: self.ctx.now(),
                        },
                    )?;
                    match self.ctx.table.commit(batch).await {
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
    pub(super) async fn referee_marks(&self, m: &Member) -> Result<Vec<String>, ServiceError> {
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

    pub(super) fn new_referrer(&self, now: DateTime<Utc>) -> Referrer {
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
        retrying!(self.ctx, self.try_set_code(id, &code, actor))?;
        self.referral(id).await
    }

    pub(super) async fn try_set_code(
        &self,
        id: &MemberId,
        code: &ReferralCode,
        actor: &Actor,
    ) -> Result<(), ServiceError> {
        let now = self.ctx.now();
        let retired = self.retired_code(code).await?;
        let mut reads = Reads::new();
        let member = reads.add::<Member>(id);
        let record = reads.add::<Referrer>(id);
        let claim = reads.add::<CodeClaim>(code);
        let was_retired = reads.add::<RetiredCode>(&retired);
        let found = self.ctx.table.read(&reads).await?;
        live(found.get(&member)?)?;
        // An erased member's code is retired for ever: printed, it must not credit a stranger.
        if found.exists(&was_retired) {
            return Err(ServiceError::ReferralCodeTaken);
        }
        let mut batch = Batch::new();
        let claim_of = || CodeClaim {
            member_id: id.clone(),
        };
        let (mut r, version) = match found.get(&record)? {
            Some(r) => (r.value, Some(r.version)),
            None => {
                let r = self.new_referrer(now);
                batch.create(&r.code, &claim_of())?;
                (r, None)
            }
        };
        match found.get(&claim)? {
            Some(c) if c.value.member_id != *id => return Err(ServiceError::ReferralCodeTaken),
            Some(_) if r.code == *code => return Ok(()),
            Some(_) => {}
            None => {
                batch
                    .create(code, &claim_of())?
                    .or_refuse(|| ServiceError::ReferralCodeTaken);
            }
        }
        r.switch_code(code);
        match version {
            Some(v) => batch.save(id, &r, Some(v))?,
            None => batch.create(id, &r)?,
        };
        // A vanity code may be a name: the trail names the field, never the codes (an erasure
        // leaves nothing personal in it).
        let audited = Audited {
            action: AuditAction::ReferralCodeSet,
            member: Some(id),
            target: None,
            changes: vec![Change::named("code")],
        };
        self.ctx.audit(&mut batch, Some(actor), audited, now)?;
        self.ctx.table.commit(batch).await
    }
}
