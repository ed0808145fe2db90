//! Points lots on both backends, through the HTTP API with the test clock: purchase points
//! pending for 14 days (unspendable until then, a refund on day 5 taking from them), and rolling
//! 12-month expiry (the January lot spent first, only the rest of February expiring, at the end
//! of February a year later). After every step the ledger sums to balance + pending and the
//! events account for the balance.

use loyalty::program::Program;
use loyalty_tests::at;
use loyalty_tests::{Api, Backend, both_backends};
use serde_json::{Value, json};

fn program(pending_days: u32) -> Program {
    Program::from_json(&format!(
        r#"{{"points": {{"pending_days": {pending_days}, "expiry": {{"policy": "rolling", "months": 12}}}}}}"#
    ))
    .unwrap()
}

/// A refund of `value` cents of a store-1 receipt; answers the refund (asserting 201).
async fn refund(api: &Api, receipt: &str, refund_id: &str, value: i64) -> Value {
    let r = api
        .post(
            &format!("/v1/purchases/store-1/{receipt}/refunds"),
            &api.pos("store-1"),
            json!({"refund_id": refund_id, "amount": {"value": value, "currency": "USD"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body
}

/// The `data` of the member's events of one type, oldest first.
async fn event_data(api: &Api, member: &str, kind: &str) -> Vec<Value> {
    api.events(member)
        .await
        .into_iter()
        .filter(|e| e["type"] == kind)
        .map(|e| e["data"].clone())
        .collect()
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

async fn purchase_points_stay_pending_for_14_days_and_a_refund_on_day_5_takes_from_them(
    b: Backend,
) {
    let api = Api::with_program(b, program(14)).await;
    api.clock.set(at("2027-03-01T10:00:00Z"));
    api.put_reward("coffee", json!({"name": "coffee", "cost_points": 50}))
        .await;
    api.enrol("m").await;
    let p = api.buy("m", "R1", 10_000).await;
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
    api.clock.set(at("2027-03-06T10:00:00Z"));
    let r = refund(&api, "R1", "RF1", 4000).await;
    assert_eq!(r["points_reversed"], 40);
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
    api.clock.set(at("2027-03-14T23:59:59Z"));
    assert_eq!(redeem(&api, "m", "coffee").await.0, 409);
    api.clock.set(at("2027-03-15T00:00:00Z"));
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
    let made = event_data(&api, "m", "points.available").await;
    assert_eq!(made.len(), 1);
    assert_eq!(made[0]["points"], 60);
    books_balance(&api, "m").await;
}
both_backends!(purchase_points_stay_pending_for_14_days_and_a_refund_on_day_5_takes_from_them);

async fn the_january_lot_goes_first_and_only_the_february_rest_expires_a_year_later(b: Backend) {
    let api = Api::with_program(b, program(0)).await;
    api.clock.set(at("2027-01-10T10:00:00Z"));
    api.put_reward("big", json!({"name": "big", "cost_points": 120}))
        .await;
    api.enrol("m").await;
    api.buy("m", "JAN", 10_000).await;
    api.clock.set(at("2027-02-10T10:00:00Z"));
    api.buy("m", "FEB", 5_000).await;
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
    api.clock.set(at("2028-01-15T10:00:00Z"));
    assert_eq!(
        points(&api, "m").await["expiring_soon"],
        json!({"points": 30, "on": "2028-02-29"})
    );
    api.clock.set(at("2028-02-29T23:59:59Z"));
    assert_eq!(points(&api, "m").await["balance"], 30);
    api.clock.set(at("2028-03-01T00:00:00Z"));
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
    api.clock.set(at("2027-01-10T10:00:00Z"));
    api.put_reward("r80", json!({"name": "r80", "cost_points": 80}))
        .await;
    api.enrol("m").await;
    api.buy("m", "JAN", 10_000).await;
    let (_, red) = redeem(&api, "m", "r80").await;
    let id = red["id"].as_str().unwrap();
    // Cancelled within the voucher's 90 days: the 80 go back to the January lot they left.
    api.clock.set(at("2027-03-01T10:00:00Z"));
    let r = api.cancel_redemption("m", id).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let schedule = api.get("/v1/members/m/points", &api.admin()).await.body;
    assert_eq!(
        schedule["lots"],
        json!([{"points": 100, "status": "available", "available_on": null, "expires_on": "2028-01-31"}])
    );
    books_balance(&api, "m").await;
}
both_backends!(a_cancelled_redemption_returns_its_points_to_their_lots);

/// The program overview after a segments run now.
async fn overview(api: &Api) -> Value {
    let r = api
        .post("/_local/jobs/segments", &api.admin(), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api.get("/v1/analytics/overview", &api.admin()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn kinds(ledger: &[Value], kind: &str) -> Vec<i64> {
    ledger
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["points"].as_i64().unwrap())
        .collect()
}

/// The "done when" walk of the points lots issue: pending for 14 days, made available by the
/// job with a `points_available` line, announced 30 and 7 days before the lot's last day, expired
/// by the job after it; each line and notice once although the job runs twice, and concurrently.
async fn the_points_job_writes_each_line_and_notice_once_however_often_it_runs(b: Backend) {
    let api = Api::with_program(b, program(14)).await;
    api.clock.set(at("2027-03-01T10:00:00Z"));
    api.put_reward("coffee", json!({"name": "coffee", "cost_points": 50}))
        .await;
    api.enrol("m").await;
    api.buy("m", "R1", 10_000).await;
    assert_eq!(redeem(&api, "m", "coffee").await.0, 409);
    let run = api.run_job("points").await;
    assert_eq!(
        (run["examined"].as_u64(), run["made_available"].as_i64()),
        (Some(0), Some(0)),
        "nothing due before day 14: {run}"
    );
    assert_eq!(overview(&api).await["points_pending"], 100);

    // Day 14: the job makes the 100 available, once; a second run finds the member handled.
    api.clock.set(at("2027-03-15T02:00:00Z"));
    let run = api.run_job("points").await;
    assert_eq!(
        (run["examined"].as_u64(), run["made_available"].as_i64()),
        (Some(1), Some(100)),
        "{run}"
    );
    let again = api.run_job("points").await;
    assert_eq!(again["made_available"], 0, "{again}");
    assert_eq!(kinds(&api.ledger("m").await, "points_available"), [0]);
    let p = points(&api, "m").await;
    assert_eq!(
        (p["balance"].as_i64(), p["pending"].as_i64()),
        (Some(100), Some(0))
    );
    books_balance(&api, "m").await;
    assert_eq!(redeem(&api, "m", "coffee").await.0, 201);

    // The 50 left became available on 15 March 2027: last day 31 March 2028. Thirty days
    // before, two concurrent runs send one notice between them.
    api.clock.set(at("2028-03-01T02:00:00Z"));
    let now = api.services.ctx.now();
    let (a, b2) = tokio::join!(
        api.services.balances.points_job(now),
        api.services.balances.points_job(now)
    );
    let (a, b2) = (a.unwrap(), b2.unwrap());
    assert_eq!(a.notified + b2.notified, 1, "{a:?} {b2:?}");
    assert_eq!(
        points(&api, "m").await["expiring_soon"],
        json!({"points": 50, "on": "2028-03-31"})
    );
    assert_eq!(api.run_job("points").await["notified"], 0);
    // Eight days before: nothing new. Seven days before: the second notice, once.
    api.clock.set(at("2028-03-23T02:00:00Z"));
    assert_eq!(api.run_job("points").await["notified"], 0);
    api.clock.set(at("2028-03-24T02:00:00Z"));
    assert_eq!(api.run_job("points").await["notified"], 1);
    assert_eq!(api.run_job("points").await["notified"], 0);
    let notices = event_data(&api, "m", "points.expiring_soon").await;
    assert_eq!(
        notices,
        [
            json!({"expiring_points": 50, "expires_on": "2028-03-31", "days_ahead": 30, "balance": 50}),
            json!({"expiring_points": 50, "expires_on": "2028-03-31", "days_ahead": 7, "balance": 50}),
        ]
    );

    // The last day: still spendable. The day after, the job expires the 50, once.
    api.clock.set(at("2028-03-31T23:00:00Z"));
    assert_eq!(api.run_job("points").await["expired_points"], 0);
    assert_eq!(points(&api, "m").await["balance"], 50);
    api.clock.set(at("2028-04-01T02:00:00Z"));
    let now = api.services.ctx.now();
    let (a, b2) = tokio::join!(
        api.services.balances.points_job(now),
        api.services.balances.points_job(now)
    );
    let (a, b2) = (a.unwrap(), b2.unwrap());
    assert_eq!(a.expired_points + b2.expired_points, 50, "{a:?} {b2:?}");
    assert_eq!(api.run_job("points").await["expired_points"], 0);
    let ledger = api.ledger("m").await;
    assert_eq!(kinds(&ledger, "points_expired"), [-50]);
    let p = points(&api, "m").await;
    assert_eq!(
        (p["balance"].as_i64(), p["pending"].as_i64()),
        (Some(0), Some(0))
    );
    let expired: Vec<Value> = event_data(&api, "m", "points.expired")
        .await
        .into_iter()
        .map(|d| d["points"].clone())
        .collect();
    assert_eq!(expired, [json!(-50)]);
    books_balance(&api, "m").await;
    let o = overview(&api).await;
    assert_eq!(
        (
            o["points_expired_30d"].as_i64(),
            o["points_pending"].as_i64(),
            o["points_outstanding"].as_i64()
        ),
        (Some(50), Some(0), Some(0)),
        "{o}"
    );
    // Nothing left: the member is off the job's list.
    api.clock.set(at("2029-01-01T02:00:00Z"));
    assert_eq!(api.run_job("points").await["examined"], 0);
}
both_backends!(the_points_job_writes_each_line_and_notice_once_however_often_it_runs);

/// The job's reads grow with the members due that day, not with the members: 300 members buy
/// on ten days (120 of them on the fourth day); each day's run reads the due members' index rows
/// and items only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_points_job_reads_only_the_members_due_that_day() {
    let (api, counts) = Api::counted(program(14));
    let day0 = at("2027-03-01T10:00:00Z");
    let per_day = |d: i64| if d == 3 { 120 } else { 20 };
    let mut n = 0;
    for d in 0..10i64 {
        api.clock.set(day0 + chrono::Duration::days(d));
        for _ in 0..per_day(d) {
            let id = format!("m{n}");
            api.enrol(&id).await;
            api.buy(&id, &format!("R{n}"), 1_000).await;
            n += 1;
        }
    }
    // The job runs daily; the first purchases fall due on day 14.
    for d in 0..10i64 {
        let now = day0 + chrono::Duration::days(d + 14);
        let before = counts.snapshot();
        let run = api.services.balances.points_job(now).await.unwrap();
        let after = counts.snapshot();
        let due = per_day(d) as u64;
        assert_eq!(
            (run.examined, run.made_available),
            (due, 10 * due as i64),
            "day {d}"
        );
        // Computed by hand: each due member is one index row plus one member item; the 25
        // monthly index queries (this month and 24 back) find nothing else.
        assert_eq!(after.2 - before.2, 2 * due, "items read on day {d}");
    }
}

async fn tier(api: &Api, member: &str) -> Value {
    let r = api
        .get(&format!("/v1/members/{member}"), &api.admin())
        .await;
    json!({"tier": r.body["tier"], "tier_expires_on": r.body["tier_expires_on"]})
}

/// A purchase that lifts a member to gold, refunded in part within the 14-day return window
/// below the threshold: the upgrade is reverted (a `tier_downgrade` line referencing the refund,
/// a `tier.downgraded` event). After the window, a refund leaves the tier to requalification.
async fn a_refund_in_the_return_window_reverts_the_upgrade_its_purchase_caused(b: Backend) {
    let api = Api::with_program(b, program(14)).await;
    api.clock.set(at("2027-03-01T10:00:00Z"));
    api.enrol("m").await;
    let p = api.buy("m", "BIG", 120_000).await;
    assert_eq!(
        (p["tier"].as_str(), p["tier_changed"].as_bool()),
        (Some("gold"), Some(true))
    );

    // Day 13: 30 % back leaves 840.00 of qualifying spend: silver again, with no expiry.
    api.clock.set(at("2027-03-14T10:00:00Z"));
    refund(&api, "BIG", "RF1", 36_000).await;
    assert_eq!(
        tier(&api, "m").await,
        json!({"tier": "silver", "tier_expires_on": null})
    );
    let ledger = api.ledger("m").await;
    let down: Vec<&Value> = ledger
        .iter()
        .filter(|e| e["kind"] == "tier_downgrade")
        .collect();
    assert_eq!(down.len(), 1);
    assert_eq!(down[0]["reference"], "refund:store-1/BIG/RF1");
    let downgraded = event_data(&api, "m", "tier.downgraded").await;
    assert_eq!(downgraded.len(), 1);
    assert_eq!(downgraded[0]["to"], "silver", "{}", downgraded[0]);
    books_balance(&api, "m").await;

    // Another member: upgraded, refunded below gold on day 14, when the window has closed.
    api.clock.set(at("2027-03-01T10:00:00Z"));
    api.enrol("n").await;
    api.buy("n", "BIG2", 120_000).await;
    api.clock.set(at("2027-03-15T10:00:00Z"));
    refund(&api, "BIG2", "RF1", 36_000).await;
    assert_eq!(tier(&api, "n").await["tier"], "gold");
    books_balance(&api, "n").await;
}
both_backends!(a_refund_in_the_return_window_reverts_the_upgrade_its_purchase_caused);

/// One step of a member's life, for the property test below.
#[derive(Clone, Debug)]
enum Step {
    Buy(i64),
    Redeem(usize),
    Cancel(usize),
    Refund {
        purchase: usize,
        percent: i64,
    },
    Adjust(i64),
    /// Days on, then the daily job.
    Advance(i64),
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        (100..30_000i64).prop_map(Step::Buy),
        (0..3usize).prop_map(Step::Redeem),
        (0..8usize).prop_map(Step::Cancel),
        (0..8usize, 1..=100i64).prop_map(|(purchase, percent)| Step::Refund { purchase, percent }),
        (-150..150i64).prop_map(Step::Adjust),
        (1..200i64).prop_map(Step::Advance),
    ]
}

/// Runs `steps` for one member through the HTTP API with 14 pending days and rolling 12-month
/// expiry, and after every step checks, as of the last commit: Σ ledger = balance + pending,
/// the schedule's lots sum to its available and pending points, its available points are the
/// balance, and the events account for the balance.
async fn books_hold_after_every_step(b: Backend, steps: Vec<Step>) {
    let api = Api::with_program(b, program(14)).await;
    api.clock.set(at("2027-01-10T10:00:00Z"));
    for (id, cost) in [("r30", 30), ("r80", 80), ("r150", 150)] {
        api.put_reward(id, json!({"name": id, "cost_points": cost}))
            .await;
    }
    api.enrol("m").await;
    let mut receipts: Vec<(String, i64, i64)> = Vec::new(); // receipt, amount, refunded
    let mut redemptions: Vec<String> = Vec::new();
    for (n, s) in steps.iter().enumerate() {
        match s {
            Step::Buy(amount) => {
                let receipt = format!("R{n}");
                api.buy("m", &receipt, *amount).await;
                receipts.push((receipt, *amount, 0));
            }
            Step::Redeem(i) => {
                let (status, body) = redeem(&api, "m", ["r30", "r80", "r150"][*i]).await;
                match status {
                    201 => redemptions.push(body["id"].as_str().unwrap().to_owned()),
                    409 => assert_eq!(body["type"], "/problems/insufficient-points", "{body}"),
                    other => panic!("redemption answered {other}: {body}"),
                }
            }
            Step::Cancel(i) => {
                if let Some(id) = redemptions.get(*i) {
                    let r = api.cancel_redemption("m", id).await;
                    assert!(r.status == 200 || r.status == 409, "{}", r.body);
                }
            }
            Step::Refund { purchase, percent } => {
                if let Some((receipt, amount, refunded)) = receipts.get_mut(*purchase) {
                    let value = ((*amount - *refunded) * percent / 100).max(1);
                    if *refunded + value <= *amount {
                        refund(&api, receipt, &format!("RF{n}"), value).await;
                        *refunded += value;
                    }
                }
            }
            Step::Adjust(p) if *p != 0 => {
                let r = api
                    .post(
                        "/v1/members/m/adjustments",
                        &api.admin(),
                        json!({"points": p, "reason": "prop"}),
                    )
                    .await;
                assert_eq!(r.status, 201, "{}", r.body);
            }
            Step::Adjust(_) => {}
            Step::Advance(days) => {
                api.clock
                    .set(api.services.ctx.now() + chrono::Duration::days(*days));
                api.run_job("points").await;
            }
        }
        books_balance(&api, "m").await;
        let p = points(&api, "m").await;
        let schedule = api.get("/v1/members/m/points", &api.admin()).await.body;
        let sum = |status: &str| -> i64 {
            schedule["lots"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|l| l["status"] == status)
                .map(|l| l["points"].as_i64().unwrap())
                .sum()
        };
        assert_eq!(
            sum("pending"),
            schedule["pending"].as_i64().unwrap(),
            "{schedule}"
        );
        assert_eq!(schedule["pending"], p["pending"], "after {s:?}");
        let available = schedule["available"].as_i64().unwrap();
        assert_eq!(available, p["balance"].as_i64().unwrap(), "after {s:?}");
        // Spendable = Σ lots, less what a refund took beyond them (owed, only with no lots).
        let lots = sum("available");
        assert!(
            available == lots || (lots == 0 && available < 0),
            "{schedule} after {s:?}"
        );
    }
}

fn prop_run(b: Backend, cases: u32) {
    use proptest::prelude::*;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(step(), 1..25), |steps| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(books_hold_after_every_step(b, steps));
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_books_hold_after_any_sequence_of_earn_redeem_cancel_refund_adjust_and_time_embedded() {
    prop_run(Backend::Embedded, 24);
}

#[test]
fn the_books_hold_after_any_sequence_of_earn_redeem_cancel_refund_adjust_and_time_dynamodb() {
    prop_run(Backend::Dynamo, 6);
}

/// Under `inactivity`, everything expires `days` after the last activity, announced 30 and 7
/// days ahead; a purchase in between moves the day, and the announcements with it.
async fn inactivity_expiry_follows_the_last_activity(b: Backend) {
    let program = Program::from_json(
        r#"{"points": {"pending_days": 0, "expiry": {"policy": "inactivity", "days": 100}}}"#,
    )
    .unwrap();
    let api = Api::with_program(b, program).await;
    api.clock.set(at("2027-01-10T10:00:00Z"));
    api.enrol("m").await;
    api.buy("m", "R1", 10_000).await;
    // Last day: 20 April (10 January + 100 days); the 30-day notice is due on 21 March.
    api.clock.set(at("2027-03-20T02:00:00Z"));
    assert_eq!(api.run_job("points").await["notified"], 0);
    api.clock.set(at("2027-03-21T02:00:00Z"));
    assert_eq!(api.run_job("points").await["notified"], 1);
    assert_eq!(
        points(&api, "m").await["expiring_soon"],
        json!({"points": 100, "on": "2027-04-20"})
    );
    // A purchase on 1 April: the last day moves to 10 July, nothing is due on 13 April.
    api.clock.set(at("2027-04-01T10:00:00Z"));
    api.buy("m", "R2", 5_000).await;
    api.clock.set(at("2027-04-13T02:00:00Z"));
    let run = api.run_job("points").await;
    assert_eq!(
        (run["examined"].as_u64(), run["notified"].as_u64()),
        (Some(0), Some(0)),
        "{run}"
    );
    api.clock.set(at("2027-06-10T02:00:00Z"));
    assert_eq!(
        api.run_job("points").await["notified"],
        1,
        "30 days before 10 July"
    );
    api.clock.set(at("2027-07-03T02:00:00Z"));
    assert_eq!(api.run_job("points").await["notified"], 1, "7 days before");
    api.clock.set(at("2027-07-10T23:00:00Z"));
    assert_eq!(
        api.run_job("points").await["expired_points"],
        0,
        "the last day"
    );
    api.clock.set(at("2027-07-11T02:00:00Z"));
    assert_eq!(api.run_job("points").await["expired_points"], 150);
    assert_eq!(kinds(&api.ledger("m").await, "points_expired"), [-150]);
    books_balance(&api, "m").await;
    let notices: Vec<Value> = event_data(&api, "m", "points.expiring_soon")
        .await
        .into_iter()
        .map(|d| json!([d["expires_on"], d["days_ahead"]]))
        .collect();
    assert_eq!(
        notices,
        [
            json!(["2027-04-20", 30]),
            json!(["2027-07-10", 30]),
            json!(["2027-07-10", 7])
        ]
    );
}
both_backends!(inactivity_expiry_follows_the_last_activity);

/// With points lots on, the writes that move them still cost one read and one write round trip:
/// a purchase that leaves points pending, and a redemption made after they became available
/// (whose commit also writes the `points_available` line the job had not).
#[tokio::test]
async fn with_points_lots_a_purchase_and_a_redemption_still_cost_one_read_and_one_write() {
    let (api, counts) = Api::counted(program(14));
    api.clock.set(at("2027-03-01T10:00:00Z"));
    api.put_reward("coffee", json!({"name": "coffee", "cost_points": 50}))
        .await;
    api.enrol("m").await;
    let before = counts.snapshot();
    api.buy("m", "R1", 10_000).await;
    let after = counts.snapshot();
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 1),
        "purchase: reads, writes"
    );
    api.clock.set(at("2027-03-15T10:00:00Z"));
    let before = counts.snapshot();
    assert_eq!(redeem(&api, "m", "coffee").await.0, 201);
    let after = counts.snapshot();
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 1),
        "redemption: reads, writes"
    );
    assert_eq!(kinds(&api.ledger("m").await, "points_available"), [0]);
}
