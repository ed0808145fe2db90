//! `Idempotency-Key` requests. The record is written in the same commit as the effect it
//! remembers, so a duplicate either finds it (and replays the stored response) or loses the
//! commit race and then finds it. There is never a half-done state to report.

use super::error::ServiceError;
use crate::domain::MemberId;
use crate::table::{Batch, Fetched, IdempotencyId, IdempotencyRecord, Reads, Slot, Versioned};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A request that carries an `Idempotency-Key`.
#[derive(Clone, Debug)]
pub struct Idempotency {
    /// The operation and caller the key belongs to (keys of different callers never collide).
    pub scope: String,
    pub key: String,
    /// Digest of the operation and the parsed, normalised request; a different request under
    /// the same key is refused.
    pub request_hash: String,
    /// The member whose data the request touches: the record lives (and is erased) with them.
    pub owner: Option<MemberId>,
}

pub use crate::domain::digest::sha256_hex;

impl Idempotency {
    /// The record's name: hashed so that any key text (up to 255 characters, any separator)
    /// makes a safe, short key, and keys of different callers and operations never collide.
    pub fn id(&self) -> IdempotencyId {
        IdempotencyId {
            owner: self.owner.clone(),
            digest: sha256_hex(&[self.scope.as_bytes(), self.key.as_bytes()]),
        }
    }

    /// Adds this key's record to a read.
    pub fn read(&self, reads: &mut Reads) -> Slot<IdempotencyRecord> {
        reads.add::<IdempotencyRecord>(&self.id())
    }

    /// What an earlier request under this key left: its response to replay, or a refusal when
    /// the request differs. Expired records (not yet swept by TTL) count as absent.
    pub fn prior<T: DeserializeOwned>(
        &self,
        found: Option<Versioned<IdempotencyRecord>>,
        now: DateTime<Utc>,
    ) -> Result<Option<T>, ServiceError> {
        let Some(Versioned { value: rec, .. }) = found else {
            return Ok(None);
        };
        if rec.expires_at < now.timestamp() {
            return Ok(None);
        }
        if rec.request_hash != self.request_hash {
            return Err(ServiceError::IdempotencyKeyReused);
        }
        serde_json::from_value(rec.response)
            .map(Some)
            .map_err(|e| ServiceError::unreadable("stored answer", e))
    }

    /// The answer to replay, if the request carries a key (read into `slot`) that an earlier
    /// identical request used.
    pub fn replay<T: DeserializeOwned>(
        idem: Option<&Idempotency>,
        slot: &Option<Slot<IdempotencyRecord>>,
        found: &Fetched,
        now: DateTime<Utc>,
    ) -> Result<Option<T>, ServiceError> {
        match (idem, slot) {
            (Some(idem), Some(slot)) => idem.prior(found.get(slot)?, now),
            _ => Ok(None),
        }
    }

    /// Adds the record of `response` to the effect's batch.
    pub fn record<T: Serialize>(
        &self,
        batch: &mut Batch,
        response: &T,
        now: DateTime<Utc>,
        retention_hours: u32,
    ) -> Result<(), ServiceError> {
        let id = self.id();
        let rec = IdempotencyRecord {
            digest: id.owner.is_some().then(|| id.digest.clone()),
            request_hash: self.request_hash.clone(),
            response: serde_json::to_value(response)
                .map_err(|e| ServiceError::unreadable("answer to store", e))?,
            expires_at: (now + chrono::Duration::hours(i64::from(retention_hours))).timestamp(),
        };
        batch.create_expiring(&id, &rec, now.timestamp())?;
        Ok(())
    }
}
