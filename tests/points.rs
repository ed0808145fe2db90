//! Points lots on both backends, through the HTTP API with the test clock: purchase points
//! pending for 14 days (unspendable until then, a refund on day 5 taking from them), and rolling
//! 12-month expiry (the January lot spent first, only the rest of February expiring, at the end
//! of February a year later). After every step the ledger sums to balance + pending and the
//! events account for the balance.

use chrono::{DateTime, Utc};
use loyalty::program::Program;
use loyalty_tests::{Api, Backend, both_backends};
use serde_json::{Value, json};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn program(pending_days: u32) -> Program {
    Program::from_json(&format!(
        r#"{{"points": {{"pending_days": {pending_days}, "expiry": {{"policy": "rolling", "months": 12}}}}}}"#
    ))
    .unwrap()
}

async fn buy(api: &Api, member: &str, receipt: &str, amount: i64) -> Value {
    let r = api
        .post(
            "/v1/purchases",
            &api.pos("store-1"),
            json!({"member": {"id": member}, "store_id": "store-1", "receipt_id": receipt,
                   "amount": {"value": amount, "currency": "USD"},
                   "occurred_at": api.services.now().to_rfc3339()}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body
}

async fn points(api: &Api, member: &str) -> Value {
    let r = api
        .get(&format!("/v1/members/{member}"), &api.admin())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["points"].clone()
}

/// Σ ledger = balance + pending, and the events add up to the balance.
async fn books_balance(api: &Api, member: &str) {
    let p = points(api, member).await;
    let sum: i64 = api
        .ledger(member)
        .await
        .iter()
        .map(|e| e["points"].as_i64().unwrap())
        .sum();
    assert_eq!(
        sum,
        p["balance"].as_i64().unwrap() + p["pending"].as_i64().unwrap(),
        "{p}"
    );
    api.assert_events_account_for_the_balance(member).await;
}

async fn redeem(api: &Api, member: &str, reward: &str) -> (u16, Value) {
    let r = api
        .post(
            &format!("/v1/members/{member}/redemptions"),
            &api.member(member),
            json!({"reward_id": reward}),
        )
        .await;
    (r.status, r.body)
}

async fn reward(api: &Api, id: &str, cost: i64) {
    let r = api
        .call(
            "PUT",
            &format!("/v1/rewards/{id}"),
            Some(&api.admin()),
            Some(json!({"name": id, "cost_points": cost})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

async fn purchase_points_stay_pending_for_14_days_and_a_refund_on_day_5_takes_from_them(
    b: Backend,
) {
    let api = Api::with_program(b, program(14)).await;
    api.clock.set(t("2027-03-01T10:00:00Z"));
    reward(&api, "coffee", 50).await;
    api.enrol("m").await;
    let p = buy(&api, "m", "R1", 10_000).await;
    assert_eq!(
        (p["points_earned"].as_i64(), p["balance"].as_i64()),
        (Some(100), Some(0))
    );
    assert_eq!(points(&api, "m").await["pending"], 100);
    let (status, body) = redeem(&api, "m", "coffee").await;
    assert_eq!(
        (status, body["type"].as_str()),
        (409, Some("/problems/insufficient-points"))
    );
    books_balance(&api, "m").await;

    // Day 5: 40 % back. The points come off the pending lot; 60 stay pending.
    api.clock.set(t("2027-03-06T10:00:00Z"));
    let r = api
        .post(
            "/v1/purchases/store-1/R1/refunds",
            &api.pos("store-1"),
            json!({"refund_id": "RF1", "amount": {"value": 4000, "currency": "USD"}}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["points_reversed"].as_i64()),
        (201, Some(40))
    );
    let p = points(&api, "m").await;
    assert_eq!(
        (p["balance"].as_i64(), p["pending"].as_i64()),
        (Some(0), Some(60))
    );
    let schedule = api.get("/v1/members/m/points", &api.member("m")).await;
    assert_eq!(schedule.status, 200);
    assert_eq!(
        schedule.body["lots"],
        json!([{"points": 60, "status": "pending", "available_on": "2027-03-15", "expires_on": "2028-03-31"}])
    );
    books_balance(&api, "m").await;

    // The last second of day 13: still pending. Day 14: spendable, whether or not a job ran.
    api.clock.set(t("2027-03-14T23:59:59Z"));
    assert_eq!(redeem(&api, "m", "coffee").await.0, 409);
    api.clock.set(t("2027-03-15T00:00:00Z"));
    let p = points(&api, "m").await;
    assert_eq!(
        (p["balance"].as_i64(), p["pending"].as_i64()),
        (Some(60), Some(0))
    );
    let (status, body) = redeem(&api, "m", "coffee").await;
    assert_eq!(
        (status, body["balance"].as_i64()),
        (201, Some(10)),
        "{body}"
    );
    // The redemption's commit wrote the `points_available` line the job had not.
    let ledger = api.ledger("m").await;
    let available: Vec<&Value> = ledger
        .iter()
        .filter(|e| e["kind"] == "points_available")
        .collect();
    assert_eq!(available.len(), 1);
    assert_eq!(available[0]["points"], 0);
    let events = api.events("m").await;
    let made: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "points.available")
        .collect();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0]["data"]["points"], 60);
    books_balance(&api, "m").await;
}
both_backends!(purchase_points_stay_pending_for_14_days_and_a_refund_on_day_5_takes_from_them);

async fn the_january_lot_goes_first_and_only_the_february_rest_expires_a_year_later(b: Backend) {
    let api = Api::with_program(b, program(0)).await;
    api.clock.set(t("2027-01-10T10:00:00Z"));
    reward(&api, "big", 120).await;
    api.enrol("m").await;
    buy(&api, "m", "JAN", 10_000).await;
    api.clock.set(t("2027-02-10T10:00:00Z"));
    buy(&api, "m", "FEB", 5_000).await;
    let (status, body) = redeem(&api, "m", "big").await;
    assert_eq!(
        (status, body["balance"].as_i64()),
        (201, Some(30)),
        "{body}"
    );
    let schedule = api.get("/v1/members/m/points", &api.admin()).await.body;
    assert_eq!(
        schedule["lots"],
        json!([{"points": 30, "status": "available", "available_on": null, "expires_on": "2028-02-29"}]),
        "the January lot went first"
    );
    assert_eq!(points(&api, "m").await["expiring_soon"], Value::Null);
    books_balance(&api, "m").await;

    // Within 60 days of its last day the member sees it coming.
    api.clock.set(t("2028-01-15T10:00:00Z"));
    assert_eq!(
        points(&api, "m").await["expiring_soon"],
        json!({"points": 30, "on": "2028-02-29"})
    );
    api.clock.set(t("2028-02-29T23:59:59Z"));
    assert_eq!(points(&api, "m").await["balance"], 30);
    api.clock.set(t("2028-03-01T00:00:00Z"));
    let p = points(&api, "m").await;
    assert_eq!(
        (p["balance"].as_i64(), p["expiring_soon"].clone()),
        (Some(0), Value::Null)
    );
    // The next write records the expiry in the ledger, once.
    let r = api
        .post(
            "/v1/members/m/adjustments",
            &api.admin(),
            json!({"points": 5, "reason": "goodwill"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let expired: Vec<i64> = api
        .ledger("m")
        .await
        .iter()
        .filter(|e| e["kind"] == "points_expired")
        .map(|e| e["points"].as_i64().unwrap())
        .collect();
    assert_eq!(expired, [-30]);
    assert_eq!(points(&api, "m").await["balance"], 5);
    books_balance(&api, "m").await;
}
both_backends!(the_january_lot_goes_first_and_only_the_february_rest_expires_a_year_later);

async fn a_cancelled_redemption_returns_its_points_to_their_lots(b: Backend) {
    let api = Api::with_program(b, program(0)).await;
    api.clock.set(t("2027-01-10T10:00:00Z"));
    reward(&api, "r80", 80).await;
    api.enrol("m").await;
    buy(&api, "m", "JAN", 10_000).await;
    let (_, red) = redeem(&api, "m", "r80").await;
    let id = red["id"].as_str().unwrap();
    // Cancelled within the voucher's 90 days: the 80 go back to the January lot they left.
    api.clock.set(t("2027-03-01T10:00:00Z"));
    let r = api
        .post(
            &format!("/v1/members/m/redemptions/{id}/cancel"),
            &api.member("m"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let schedule = api.get("/v1/members/m/points", &api.admin()).await.body;
    assert_eq!(
        schedule["lots"],
        json!([{"points": 100, "status": "available", "available_on": null, "expires_on": "2028-01-31"}])
    );
    books_balance(&api, "m").await;
}
both_backends!(a_cancelled_redemption_returns_its_points_to_their_lots);
