//! Item sizes of the member as stored: one write unit is 1 KB, so the member item, written by
//! every purchase, must stay under it with every field and index attribute filled (tested
//! here, beside the layout that adds the keys and index attributes).

use crate::domain::lots::{Lots, Notified};
use crate::domain::member::Member;
use crate::domain::predict::summary::PurchaseDays;
use crate::domain::segment::{Lifecycle, Segments};
use crate::domain::{Birthday, Email, MemberId, Phone, Points, TimeZoneName};
use chrono::{DateTime, NaiveDate, Utc};

use crate::store::value_size as dynamodb_size;

#[test]
fn dynamodb_size_table() {
    use serde_json::json;
    for (v, size) in [
        (json!(null), 1),
        (json!("abc"), 3),
        (json!(12345), 4),
        (json!(-7), 2),
        (json!([1, "a"]), 3 + 3 + 2),
        (json!({"ab": 1}), 3 + 1 + 2 + 2),
    ] {
        assert_eq!(dynamodb_size(&v), size, "{v}");
    }
}

/// A member with every field filled, a UUID id and a long name, contact and time zone, 24
/// months of purchases at `monthly_spend` (13 kept), in every index.
fn full_member(monthly_spend: i64) -> Member {
    let now = Utc::now();
    let mut m = Member::new(MemberId::new_random(), "Ada Lovelace-Byron".into(), now);
    m.email = Some(Email::parse("ada.lovelace@example.com").unwrap());
    m.phone = Some(Phone::parse("+8613800000000").unwrap());
    m.birthday = Some(Birthday::parse("1990-11-22").unwrap());
    m.birthday_set_on = Some(now.date_naive());
    m.timezone = Some(TimeZoneName::parse("America/Los_Angeles").unwrap());
    m.tier_expires_on = Some(now.date_naive());
    m.last_purchase_at = Some(now);
    m.first_purchase_at = Some(now);
    m.previous_purchase_at = Some(now);
    m.reactivated_at = Some(now);
    m.lifetime_redeemed = Points(12_345_678);
    m.lifetime_earned = Points(12_345_678);
    m.segments = Some(Segments {
        lifecycle: Lifecycle::Reactivated,
        value: Some(crate::domain::segment::ValueSegment::HighValue),
        rfm: Some(crate::domain::segment::Rfm { r: 5, f: 5, m: 5 }),
        churn: Some(crate::domain::segment::ChurnRisk::Unlikely),
    });
    m.counted = Some(m.membership());
    m.event_seq = 123_456;
    m.last_event_at = Some(now);
    let mut day: NaiveDate = "2025-01-01".parse().unwrap();
    for _ in 0..24 {
        m.spend.add(day, monthly_spend, day, 13).unwrap();
        m.purchases.add(day, 99, day, 13);
        day = crate::domain::tier::add_months(day, 1);
    }
    // The purchase summary at its fullest: years of daily purchase days, four kept at the
    // month's whole spend each.
    let mut s = PurchaseDays::first_purchase("2020-01-01".parse().unwrap(), monthly_spend);
    for k in 0..4 {
        s = PurchaseDays::purchased(Some(&s), day + chrono::Duration::days(k), monthly_spend);
    }
    s.repeat_days = 99_999;
    s.repeat_spend = monthly_spend * 99_999;
    s.stale = true;
    m.purchase_days = Some(s);
    m
}

/// The item's size in DynamoDB: the member's own attributes, plus the keys, the version and
/// the index attributes the table layer adds.
fn stored_size(m: &Member) -> (usize, usize) {
    use crate::table::Record;
    let key = Member::key(&m.id);
    let store_attrs = "PK".len()
        + key.pk.len()
        + "SK".len()
        + key.sk.len()
        + "version".len()
        + 4
        + m.index_entries(&m.id)
            .iter()
            .map(|e| {
                // The member indexes sort by the member's own `id`: no bytes of their own.
                let sk = if e.index.sk_attr() == "id" {
                    0
                } else {
                    e.index.sk_attr().len() + e.sk.len()
                };
                e.index.pk_attr().len() + e.pk.len() + sk
            })
            .sum::<usize>();
    let own = dynamodb_size(&serde_json::to_value(m).unwrap()) - 3;
    (own + store_attrs, own)
}

#[test]
fn a_member_stored_before_the_short_names_reads_the_same() {
    let old = serde_json::json!({"id": "m-1", "name": "A", "phone": null, "email": null,
        "birthday": "11-22", "birthday_set_on": "2026-10-01", "timezone": "Asia/Shanghai",
        "enrolled_at": "2026-11-22T10:15:00.123Z", "tier": "gold", "tier_expires_on": "2027-11-30",
        "balance": 120, "lifetime_earned": 300, "spend": {"2026-11": 42000},
        "last_purchase_at": "2026-11-22T10:15:00Z", "last_activity_at": "2026-11-22T10:16:00Z",
        "first_buy": 1795300000, "prev_buy": 1795300001, "back_at": 1795300002,
        "buys": [24322, 1], "redeemed": 30, "event_seq": 7, "counted": "active/regular/gold"});
    let m: Member = serde_json::from_value(old).unwrap();
    let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    assert_eq!(m.enrolled_at, at("2026-11-22T10:15:00.123Z"));
    assert_eq!(
        (m.last_purchase_at, m.last_activity_at),
        (Some(at("2026-11-22T10:15:00Z")), at("2026-11-22T10:16:00Z"))
    );
    assert_eq!(
        (
            m.balance,
            m.lifetime_earned,
            m.lifetime_redeemed,
            m.event_seq
        ),
        (Points(120), Points(300), Points(30), 7)
    );
    assert_eq!(m.birthday_set_on, Some("2026-10-01".parse().unwrap()));
    assert_eq!(m.tier_expires_on, Some("2027-11-30".parse().unwrap()));
    assert_eq!(m.timezone.map(|t| t.0), Some(chrono_tz::Tz::Asia__Shanghai));
    assert_eq!(m.spend.qualifying("2026-11-30".parse().unwrap(), 12), 42000);
    assert_eq!(m.first_purchase_at.map(|t| t.timestamp()), Some(1795300000));
    assert_eq!(m.reactivated_at.map(|t| t.timestamp()), Some(1795300002));
    assert!(m.counted.is_some());
    // Written again in the short form, it reads back the same (to the second).
    let again: Member = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
    assert_eq!(again.last_activity_at, m.last_activity_at);
    assert_eq!(again.balance, m.balance);
}

#[test]
fn a_member_stored_under_the_first_short_names_reads_the_same() {
    // As written before days became numbers and segments letters (issue 32 made the room the
    // purchase summary and the churn risk take).
    let old = serde_json::json!({"id": "m-1", "name": "A", "phone": null, "email": null,
        "birthday": "11-22", "bday_set": "2026-10-01", "tz": "Asia/Shanghai",
        "enrolled": 1795300000, "tier": "gold", "tier_exp": "2027-11-30", "bal": 120,
        "earned": 300, "spend": [24322, 42000], "lp": 1795300000, "la": 1795300060,
        "buys": [24322, 1], "pd": "2027-01-05", "seg": "active/potential/523",
        "cnt": "active/potential/gold", "seq": 7});
    let m: Member = serde_json::from_value(old).unwrap();
    assert_eq!(m.birthday_set_on, Some("2026-10-01".parse().unwrap()));
    assert_eq!(m.tier_expires_on, Some("2027-11-30".parse().unwrap()));
    assert_eq!(m.points_due, Some("2027-01-05".parse().unwrap()));
    assert_eq!(
        (m.enrolled_at.timestamp(), m.lifetime_earned),
        (1795300000, Points(300))
    );
    assert_eq!(m.purchases.in_month(24322), 1);
    let s = m.segments.unwrap();
    assert_eq!((s.lifecycle, s.churn), (Lifecycle::Active, None));
    assert_eq!(m.counted.unwrap().tier, Some(crate::domain::Tier::Gold));
    // Written again: days as numbers (2027-11-30 is 20,819 + 333 days after 1970-01-01),
    // segments as letters; it reads back the same.
    let v = serde_json::to_value(&m).unwrap();
    assert_eq!(
        (v["te"].as_i64(), v["seg"].as_str()),
        (Some(21152), Some("a/p/523/-"))
    );
    let again: Member = serde_json::from_value(v).unwrap();
    assert_eq!(again, m);
}

#[test]
fn typical_member_with_full_history_stays_under_one_kilobyte() {
    // One write unit is 1 KB: a member item must fit under 1,024 bytes with room to spare,
    // even spending 999,999.99 a month.
    let (size, own) = stored_size(&full_member(99_999_999));
    println!("typical member item: {size} bytes ({own} its own)");
    assert!(
        size < 900,
        "the member item takes {size} bytes ({own} its own)"
    );
}

/// Points lots at their fullest under rolling 12-month expiry over `months` months from
/// 15 January 2027: a lot a month and 14 days of pending purchases, the next due day and the
/// last notice. Returns the last of those days.
fn with_full_lots(m: &mut Member, months: u32) -> NaiveDate {
    let rolling = crate::domain::lots::Expiry::Rolling { months: 12 };
    let mut lots = Lots::default();
    let start: NaiveDate = "2027-01-15".parse().unwrap();
    for k in 0..months {
        lots.grant(99_999, crate::domain::tier::add_months(start, k), rolling);
    }
    let today = crate::domain::tier::add_months(start, months - 1);
    for k in 0..14 {
        lots.earn(
            9_999,
            today + chrono::Duration::days(k - 13),
            14,
            today,
            rolling,
        );
    }
    assert_eq!(
        (lots.available.len(), lots.pending.len()),
        (months as usize, 14)
    );
    m.set_lots(lots);
    m.points_due = Some(today);
    m.notified = Some(Notified {
        expires_on: today,
        days_ahead: 30,
    });
    m.lifetime_expired = Points(12_345_678);
    today
}

#[test]
fn a_frequent_buyer_with_full_points_lots_stays_under_one_kilobyte() {
    // 13 monthly lots (one a month for a year and the month in progress), for a member
    // spending up to 99,999.99 a month.
    let mut m = full_member(9_999_999);
    with_full_lots(&mut m, 13);
    let (size, own) = stored_size(&m);
    println!("fullest member item: {size} bytes ({own} its own)");
    assert!(
        size < 1024,
        "the member item takes {size} bytes ({own} its own)"
    );
}

#[test]
fn a_referred_member_with_an_open_referral_stays_under_one_kilobyte() {
    // A referral is open at most 90 + 90 days after enrolment (the rules' bounds): 7 months of
    // history at most, a lot for each of them and 14 pending days, the mark naming a UUID
    // referrer.
    let mut m = full_member(9_999_999);
    m.spend = Default::default();
    m.purchases = Default::default();
    let start: NaiveDate = "2027-01-15".parse().unwrap();
    for k in 0..7 {
        let day = crate::domain::tier::add_months(start, k);
        m.spend.add(day, 9_999_999, day, 13).unwrap();
        m.purchases.add(day, 99, day, 13);
    }
    let today = with_full_lots(&mut m, 7);
    m.referral = Some(crate::domain::referral::ReferralMark::Open {
        deadline: today,
        referrer: MemberId::new_random(),
    });
    let (size, own) = stored_size(&m);
    println!("referred member item: {size} bytes ({own} its own)");
    assert!(
        size < 1024,
        "the member item takes {size} bytes ({own} its own)"
    );
}
