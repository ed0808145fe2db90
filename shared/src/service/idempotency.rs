//! `Idempotency-Key` records. The record is written in the same commit as the effect it
//! remembers, so a duplicate either finds it (and replays the stored response) or loses the
//! commit race and then finds it. There is never a half-done state to report.

use super::error::ServiceError;
use super::records::encode;
use crate::store::{Cond, EXPIRES_AT, Item, Key, Write};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A request that carries an `Idempotency-Key`.
#[derive(Clone, Debug)]
pub struct Idempotency {
    /// The operation and caller the key belongs to (keys of different callers never collide).
    pub scope: String,
    pub key: String,
    /// Digest of the method, path and canonical body; a different request under the same key is
    /// refused.
    pub request_hash: String,
}

pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

#[derive(Serialize, serde::Deserialize)]
struct Record {
    request_hash: String,
    response: Value,
    expires_at: i64,
}

impl Idempotency {
    pub fn store_key(&self) -> Key {
        // Hashed so that any key text (up to 255 characters, any separator) makes a safe, short key.
        let digest = sha256_hex(&[self.scope.as_bytes(), self.key.as_bytes()]);
        Key::new(format!("IDEMPOTENCY#{digest}"), "IDEMPOTENCY")
    }

    /// What an earlier request under this key left: its response to replay, or a refusal when
    /// the request differs. Expired records (not yet swept by TTL) count as absent.
    pub fn prior<T: DeserializeOwned>(
        &self,
        item: Option<&Item>,
        now: DateTime<Utc>,
    ) -> Result<Option<T>, ServiceError> {
        let Some(item) = item else { return Ok(None) };
        let rec: Record = super::records::decode(item)?;
        if rec.expires_at < now.timestamp() {
            return Ok(None);
        }
        if rec.request_hash != self.request_hash {
            return Err(ServiceError::IdempotencyKeyReused);
        }
        serde_json::from_value(rec.response)
            .map(Some)
            .map_err(|e| ServiceError::Corrupt(e.to_string()))
    }

    pub fn record<T: Serialize>(
        &self,
        response: &T,
        now: DateTime<Utc>,
        retention_hours: u32,
    ) -> Result<Write, ServiceError> {
        let rec = Record {
            request_hash: self.request_hash.clone(),
            response: serde_json::to_value(response)
                .map_err(|e| ServiceError::Corrupt(e.to_string()))?,
            expires_at: (now + chrono::Duration::hours(i64::from(retention_hours))).timestamp(),
        };
        let item = encode(self.store_key(), &rec)?;
        debug_assert!(item.attrs.contains_key(EXPIRES_AT));
        Ok(Write::Put {
            item,
            cond: Cond::AbsentOrExpiredBefore(now.timestamp()),
        })
    }
}
