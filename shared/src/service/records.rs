//! How use cases lay their records into the single table: key builders, and JSON encoding of
//! typed records into store items (with the version and index attributes the store understands).

use super::error::ServiceError;
use crate::domain::member::Member;
use crate::domain::{MemberId, Phone, ReceiptId, RefundId, RewardId, StoreId};
use crate::store::{Cond, Item, Key, VERSION, Write};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub fn member_pk(id: &MemberId) -> String {
    format!("MEMBER#{id}")
}
pub fn member_key(id: &MemberId) -> Key {
    Key::new(member_pk(id), "PROFILE")
}
pub fn phone_key(p: &Phone) -> Key {
    Key::new(format!("PHONE#{}", p.as_str()), "PHONE")
}
pub fn ledger_key(m: &MemberId, entry: &uuid::Uuid) -> Key {
    Key::new(member_pk(m), format!("LEDGER#{entry}"))
}
pub fn purchase_pk(store: &StoreId, receipt: &ReceiptId) -> String {
    format!("PURCHASE#{store}#{receipt}")
}
pub fn purchase_key(store: &StoreId, receipt: &ReceiptId) -> Key {
    Key::new(purchase_pk(store, receipt), "PURCHASE")
}
pub fn refund_key(store: &StoreId, receipt: &ReceiptId, refund: &RefundId) -> Key {
    Key::new(purchase_pk(store, receipt), format!("REFUND#{refund}"))
}
pub fn reward_key(id: &RewardId) -> Key {
    Key::new(format!("REWARD#{id}"), "REWARD")
}
pub fn redemption_key(m: &MemberId, id: &uuid::Uuid) -> Key {
    Key::new(member_pk(m), format!("REDEMPTION#{id}"))
}
pub fn voucher_key(code: &str) -> Key {
    Key::new(format!("VOUCHER#{code}"), "VOUCHER")
}
pub fn reward_count_key(m: &MemberId, r: &RewardId) -> Key {
    Key::new(member_pk(m), format!("REWARDCOUNT#{r}"))
}
pub fn gift_key(m: &MemberId, year: i32) -> Key {
    Key::new(member_pk(m), format!("GIFT#{year:04}"))
}

/// The rewards catalog shares the overloaded, sparse GSI1 with birthdays.
pub const CATALOG_PARTITION: &str = "CATALOG";

pub fn encode<T: Serialize>(key: Key, value: &T) -> Result<Item, ServiceError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(attrs)) => Ok(Item { key, attrs }),
        Ok(_) => Err(ServiceError::Corrupt("record is not an object".into())),
        Err(e) => Err(ServiceError::Corrupt(e.to_string())),
    }
}

pub fn decode<T: DeserializeOwned>(item: &Item) -> Result<T, ServiceError> {
    serde_json::from_value(Value::Object(item.attrs.clone()))
        .map_err(|e| ServiceError::Corrupt(format!("{} {}: {e}", item.key.pk, item.key.sk)))
}

/// A record together with the version it was read at.
#[derive(Clone, Debug)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

pub fn decode_versioned<T: DeserializeOwned>(item: &Item) -> Result<Versioned<T>, ServiceError> {
    Ok(Versioned {
        value: decode(item)?,
        version: item.version().unwrap_or(0),
    })
}

/// Writes `value` as the next version of a record read at `prior` (`None`: it must not exist yet).
pub fn put_versioned<T: Serialize>(
    key: Key,
    value: &T,
    prior: Option<u64>,
    extra: Map<String, Value>,
) -> Result<Write, ServiceError> {
    let mut item = encode(key, value)?;
    item.attrs.extend(extra);
    let (next, cond) = match prior {
        Some(v) => (v + 1, Cond::Version(v)),
        None => (1, Cond::Absent),
    };
    item.attrs.insert(VERSION.into(), Value::from(next));
    Ok(Write::Put { item, cond })
}

/// An immutable record (ledger entry, gift, refund): written once, conditioned on absence.
pub fn put_new<T: Serialize>(key: Key, value: &T) -> Result<Write, ServiceError> {
    Ok(Write::Put {
        item: encode(key, value)?,
        cond: Cond::Absent,
    })
}

/// The member item with its index attributes: GSI1 by birthday (`MM-DD`), GSI2 by tier expiry
/// month. Balance-only updates leave both unchanged, so they cost no index writes.
pub fn put_member(m: &Member, prior: Option<u64>) -> Result<Write, ServiceError> {
    let mut extra = Map::new();
    if let Some(b) = m.birthday {
        extra.insert(
            "GSI1PK".into(),
            Value::from(format!("BIRTHDAY#{}", b.month_day())),
        );
        extra.insert("GSI1SK".into(), Value::from(member_pk(&m.id)));
    }
    if let Some(exp) = m.tier_expires_on {
        extra.insert(
            "GSI2PK".into(),
            Value::from(format!("TIEREXPIRY#{}", exp.format("%Y-%m"))),
        );
        extra.insert(
            "GSI2SK".into(),
            Value::from(format!("{}#{}", exp.format("%Y-%m-%d"), m.id)),
        );
    }
    put_versioned(member_key(&m.id), m, prior, extra)
}
