//! The dashboard's daily series: the nightly run folds the day before from its events, and the
//! figures match a day worked out by hand, on both backends.

use loyalty_tests::{Api, Backend, at, both_backends};
use serde_json::json;

async fn the_daily_series_counts_a_day_as_worked_out_by_hand(b: Backend) {
    let api = Api::new(b).await;
    api.clock.set(at("2027-03-01T10:00:00Z"));
    for m in ["a", "b", "c"] {
        api.enrol(m).await;
    }
    api.adjust("a", 100).await;
    api.buy("a", "R1", 2000).await; // 20 points
    api.buy("b", "R2", 1000).await; // 10 points
    api.buy("a", "R3", 500).await; // 5 points
    let refund = api.refund("R2", "F1", 1000).await; // all 10 back
    assert_eq!(refund.status, 201, "{}", refund.body);
    api.put_reward("coffee", json!({"name": "Coffee", "cost_points": 50}))
        .await;
    let red = api.redeem("a", "coffee").await;
    assert_eq!(red.status, 201, "{}", red.body);
    let code = red.body["voucher_code"].as_str().unwrap();
    let used = api.use_voucher(code).await;
    assert_eq!(used.status, 200, "{}", used.body);
    let erased = api
        .call("DELETE", "/v1/members/c", Some(&api.admin()), None)
        .await;
    assert_eq!(erased.status, 200);
    // The next day: a purchase before the nightly run belongs to that day, not this one.
    api.clock.set(at("2027-03-02T01:00:00Z"));
    api.buy("b", "R4", 9900).await;
    api.clock.set(at("2027-03-02T02:00:00Z"));
    api.run_job("segments").await;

    let r = api
        .get(
            "/v1/analytics/daily?from=2027-02-28&to=2027-03-02",
            &api.analyst(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["items"],
        json!([{"date": "2027-03-01", "enrolments": 3, "active_members": 2, "purchases": 3,
            "sales": 3500, "refunds": 1, "points_earned": 35, "points_reversed": 10,
            "points_redeemed": 50, "points_expired": 0, "points_gifted": 0, "points_adjusted": 100,
            "redemptions": 1, "vouchers_used": 1, "erasures": 1}]),
        "one row, for the day the nightly run folded"
    );
    // Rerunning recounts the same day to the same row.
    api.run_job("segments").await;
    let again = api
        .get(
            "/v1/analytics/daily?from=2027-03-01&to=2027-03-01",
            &api.admin(),
        )
        .await;
    assert_eq!(again.body["items"], r.body["items"]);
    let too_long = api
        .get(
            "/v1/analytics/daily?from=2026-01-01&to=2027-03-01",
            &api.admin(),
        )
        .await;
    assert_eq!(too_long.status, 422, "{}", too_long.body);
    let not_a_date = api
        .get("/v1/analytics/daily?from=march&to=2027-03-01", &api.admin())
        .await;
    assert_eq!(not_a_date.status, 400, "{}", not_a_date.body);
}
both_backends!(the_daily_series_counts_a_day_as_worked_out_by_hand);
