//! Purchases, refunds and tiers through the HTTP API, on both store backends.

use chrono::{DateTime, Duration, Utc};
use loyalty::program::Program;
use loyalty_tests::purchase_body;
use loyalty_tests::{Api, Backend, both_backends};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;

async fn earning_follows_the_tier_held_and_upgrades_at_once(b: Backend) {
    let api = Api::new(b).await;
    api.enrol("m").await;
    let r = api.buy("m", "R1", 1999).await;
    assert_eq!(
        (
            r["points_earned"].clone(),
            r["tier"].clone(),
            r["tier_changed"].clone()
        ),
        (json!(19), json!("silver"), json!(false))
    );
    // 19.99 + 980.01 = 1000.00: the crossing purchase earns at silver, then gold holds at once.
    let r = api.buy("m", "R2", 98_001).await;
    assert_eq!(
        (
            r["points_earned"].clone(),
            r["tier"].clone(),
            r["tier_changed"].clone()
        ),
        (json!(980), json!("gold"), json!(true))
    );
    let r = api.buy("m", "R3", 1999).await;
    assert_eq!(r["points_earned"], 29, "19.99 at gold ×1.5 = floor(29.985)");
    assert_eq!(api.balance("m").await, 19 + 980 + 29);
    let ledger = api.ledger("m").await;
    let kinds: Vec<&str> = ledger.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        vec!["purchase", "tier_upgrade", "purchase", "purchase"]
    );
    let m = api.get("/v1/members/m", &api.admin()).await.body;
    let expiry = (api.services.ctx.program_date(api.services.ctx.now()) + chrono::Months::new(12))
        .to_string();
    assert_eq!(m["tier_expires_on"], json!(expiry));
    assert_eq!(m["tier_progress"]["qualifying_spend"]["value"], 101_999);
    assert_eq!(m["tier_progress"]["next_tier"], "diamond");
    let t = api.get("/v1/members/m/tier", &api.member("m")).await;
    assert_eq!(t.status, 200);
    assert_eq!(
        (t.body["tier"].clone(), t.body["multiplier"].clone()),
        (json!("gold"), json!("1.5"))
    );
    assert_eq!(t.body["spend_to_next_tier"]["value"], 500_000 - 101_999);
    assert_eq!(t.body["tiers"][2]["threshold"]["value"], 500_000);

    // One purchase can jump two tiers.
    api.enrol("big").await;
    let r = api.buy("big", "R9", 600_000).await;
    assert_eq!(
        (r["points_earned"].clone(), r["tier"].clone()),
        (json!(6000), json!("diamond"))
    );
}
both_backends!(earning_follows_the_tier_held_and_upgrades_at_once);

async fn a_receipt_posted_three_times_earns_once(b: Backend) {
    let api = Api::new(b).await;
    api.enrol("m").await;
    let body = purchase_body("m", "R1", 1999, api.services.ctx.now());
    let first = api
        .post("/v1/purchases", &api.pos("store-1"), body.clone())
        .await;
    for _ in 0..2 {
        let again = api
            .post("/v1/purchases", &api.pos("store-1"), body.clone())
            .await;
        assert_eq!(again.status, 201);
        assert!(again.replayed());
        assert_eq!(again.body, first.body);
    }
    assert!(!first.replayed());
    let mut changed = body.clone();
    changed["amount"]["value"] = json!(2999);
    let conflict = api
        .post("/v1/purchases", &api.pos("store-1"), changed)
        .await;
    assert_eq!(
        (conflict.status, conflict.problem_type()),
        (409, "/problems/receipt-conflict")
    );
    assert_eq!(api.balance("m").await, 19);
    assert_eq!(api.ledger("m").await.len(), 1);
    // The same receipt number at another store is another receipt.
    let mut elsewhere = body.clone();
    elsewhere["store_id"] = json!("store-2");
    assert_eq!(
        api.post("/v1/purchases", &api.pos("store-2"), elsewhere)
            .await
            .status,
        201
    );
    // A POS posts only for its own store.
    let r = api
        .post(
            "/v1/purchases",
            &api.pos("store-2"),
            purchase_body("m", "R7", 100, api.services.ctx.now()),
        )
        .await;
    assert_eq!(r.status, 403);
}
both_backends!(a_receipt_posted_three_times_earns_once);

async fn refunds_reverse_pro_rata_and_a_full_refund_restores_the_balance(b: Backend) {
    let api = Api::new(b).await;
    api.enrol("m").await;
    api.buy("m", "R0", 5000).await;
    let before = api.balance("m").await;
    api.buy("m", "R1", 1999).await;
    let refund = |id: &'static str, value: i64| api.refund("R1", id, value);
    let r = refund("F1", 1000).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body["points_reversed"], 9,
        "floor(19 × 1000 / 1999) = floor(9.505)"
    );
    assert_eq!(
        r.body["refunded_total"],
        json!({"value": 1000, "currency": "USD"})
    );
    let again = refund("F1", 1000).await;
    assert!(again.replayed());
    assert_eq!(again.body, r.body);
    assert_eq!(
        refund("F1", 999).await.status,
        409,
        "same refund id, other body"
    );
    let over = refund("F2", 1000).await;
    assert_eq!(
        (over.status, over.problem_type()),
        (422, "/problems/refund-exceeds-purchase")
    );
    let rest = refund("F3", 999).await;
    assert_eq!(
        rest.body["points_reversed"], 10,
        "the rest of the 19 points"
    );
    assert_eq!(
        api.balance("m").await,
        before,
        "a full refund reverses exactly what was earned"
    );
    let m = api.get("/v1/members/m", &api.admin()).await.body;
    assert_eq!(
        m["tier_progress"]["qualifying_spend"]["value"], 5000,
        "refunds reduce qualifying spend"
    );
    let unknown = api.refund("NOPE", "X", 1).await;
    assert_eq!(unknown.status, 404);
    let kinds: Vec<String> = api
        .ledger("m")
        .await
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, vec!["refund", "refund", "purchase", "purchase"]);
}
both_backends!(refunds_reverse_pro_rata_and_a_full_refund_restores_the_balance);

async fn a_refund_may_leave_a_negative_balance_that_blocks_redemption(b: Backend) {
    let api = Api::new(b).await;
    api.enrol("m").await;
    api.buy("m", "R1", 10_000).await;
    let r = api
        .post("/v1/rewards/free/redemptions", &api.admin(), json!({}))
        .await;
    assert_eq!(
        r.status, 404,
        "no such route: rewards are redeemed under the member"
    );
    api.call(
        "PUT",
        "/v1/rewards/r",
        Some(&api.admin()),
        Some(json!({"name": "R", "cost_points": 100})),
    )
    .await;
    let red = api
        .post(
            "/v1/members/m/redemptions",
            &api.member("m"),
            json!({"reward_id": "r"}),
        )
        .await;
    assert_eq!(red.status, 201, "{}", red.body);
    let r = api.refund("R1", "F", 10_000).await;
    assert_eq!(r.body["balance"], -100);
    let blocked = api
        .post(
            "/v1/members/m/redemptions",
            &api.member("m"),
            json!({"reward_id": "r"}),
        )
        .await;
    assert_eq!(
        (blocked.status, blocked.problem_type()),
        (409, "/problems/insufficient-points")
    );
}
both_backends!(a_refund_may_leave_a_negative_balance_that_blocks_redemption);

async fn bad_purchases_get_their_problem_and_write_nothing(b: Backend) {
    let api = Api::new(b).await;
    api.enrol("m").await;
    api.buy("m", "R0", 1999).await;
    let now = api.services.ctx.now();
    let events_before = api.events("m").await;
    let base = purchase_body("m", "BAD", 1999, now);
    let with = |path: &[&str], v: Value| {
        let mut b = base.clone();
        let mut cur = &mut b;
        for p in &path[..path.len() - 1] {
            cur = &mut cur[*p];
        }
        cur[path[path.len() - 1]] = v;
        b
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            with(&["amount", "currency"], json!("EUR")),
            422,
            "currency-mismatch",
        ),
        (with(&["amount", "value"], json!(0)), 422, "validation"),
        (with(&["amount", "value"], json!(-5)), 422, "validation"),
        (
            with(&["amount", "value"], json!(1_000_000_000_001i64)),
            422,
            "validation",
        ),
        (
            with(&["amount", "value"], json!(9_223_372_036_854_775_807i64)),
            422,
            "validation",
        ),
        (with(&["amount", "value"], json!(19.99)), 400, "validation"),
        (
            with(
                &["occurred_at"],
                json!((now + Duration::minutes(6)).to_rfc3339()),
            ),
            422,
            "stale-purchase",
        ),
        (
            with(
                &["occurred_at"],
                json!((now - Duration::days(91)).to_rfc3339()),
            ),
            422,
            "stale-purchase",
        ),
        (
            with(&["occurred_at"], json!("yesterday")),
            400,
            "validation",
        ),
        (with(&["member"], json!({"id": "nobody"})), 404, "not-found"),
        (
            with(&["member"], json!({"phone": "+14155550111"})),
            404,
            "not-found",
        ),
        (
            with(&["member"], json!({"id": "m", "phone": "+14155550111"})),
            400,
            "validation",
        ),
        (with(&["member"], json!({})), 400, "validation"),
        (
            with(
                &["lines"],
                json!([{"sku": "A", "quantity": 0, "amount": {"value": 1, "currency": "USD"}}]),
            ),
            422,
            "validation",
        ),
        (
            with(&["lines"], json!([{"sku": "A", "quantity": 1}])),
            400,
            "validation",
        ),
        (
            with(
                &["lines"],
                json!([{"sku": "A", "quantity": 1, "amount": {"value": 1, "currency": "USD"}, "colour": "red"}]),
            ),
            400,
            "validation",
        ),
        (with(&["receipt_id"], json!("has#hash")), 400, "validation"),
    ];
    for (body, status, slug) in cases {
        let r = api
            .post("/v1/purchases", &api.pos("store-1"), body.clone())
            .await;
        assert_eq!(
            (r.status, r.problem_type()),
            (status, format!("/problems/{slug}").as_str()),
            "{body}: {}",
            r.body
        );
        assert_eq!(r.content_type(), "application/problem+json");
    }
    assert_eq!(api.balance("m").await, 19);
    assert_eq!(api.ledger("m").await.len(), 1);
    assert_eq!(
        api.events("m").await,
        events_before,
        "refusals emit no event"
    );
    let ok = api.post("/v1/purchases", &api.pos("store-1"), base).await;
    assert_eq!(
        ok.status, 201,
        "the receipt number was not consumed by refused attempts"
    );
}
both_backends!(bad_purchases_get_their_problem_and_write_nothing);

/// The year of a tier, walked with the test clock: upgrade, expiry, requalification.
async fn requalification_drops_one_level_or_extends_a_year(b: Backend) {
    let api = Api::new(b).await;
    let admin = api.admin();
    let start: DateTime<Utc> = "2026-03-10T12:00:00Z".parse().unwrap();
    let r = api
        .call(
            "PUT",
            "/_local/clock",
            Some(&admin),
            Some(json!({"now": start.to_rfc3339()})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for id in ["gold-lapsed", "diamond-lapsed", "gold-kept"] {
        api.enrol(id).await;
    }
    api.buy("gold-lapsed", "G1", 100_000).await;
    api.buy("diamond-lapsed", "D1", 500_000).await;
    api.buy("gold-kept", "K1", 100_000).await;
    let job = |at: DateTime<Utc>| {
        api.post(
            "/_local/jobs/tier-requalification",
            &admin,
            json!({"now": at.to_rfc3339()}),
        )
    };

    // Before expiry nobody is touched.
    let r = job(start + Duration::days(200)).await;
    assert_eq!(
        r.body,
        json!({"examined": 0, "upgraded": 0, "kept": 0, "downgraded": 0, "failed": 0})
    );

    // gold-kept spends again eleven months in, inside the next window.
    api.call(
        "PUT",
        "/_local/clock",
        Some(&admin),
        Some(json!({"now": (start + Duration::days(330)).to_rfc3339()})),
    )
    .await;
    api.buy("gold-kept", "K2", 100_000).await;

    // The day after expiry (2027-03-10), moved there with the test clock.
    let after = "2027-03-11T08:00:00Z".parse::<DateTime<Utc>>().unwrap();
    api.call(
        "PUT",
        "/_local/clock",
        Some(&admin),
        Some(json!({"now": after.to_rfc3339()})),
    )
    .await;
    let r = api
        .post("/_local/jobs/tier-requalification", &admin, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"examined": 3, "upgraded": 0, "kept": 1, "downgraded": 2, "failed": 0})
    );
    let tier = |id: &'static str| {
        let api = &api;
        async move {
            api.get(&format!("/v1/members/{id}"), &api.admin())
                .await
                .body
        }
    };
    let g = tier("gold-lapsed").await;
    assert_eq!(
        (g["tier"].clone(), g["tier_expires_on"].clone()),
        (json!("silver"), json!(null))
    );
    let d = tier("diamond-lapsed").await;
    assert_eq!(
        (d["tier"].clone(), d["tier_expires_on"].clone()),
        (json!("gold"), json!("2028-03-10")),
        "one level down only"
    );
    let k = tier("gold-kept").await;
    assert_eq!(
        (k["tier"].clone(), k["tier_expires_on"].clone()),
        (json!("gold"), json!("2028-03-10")),
        "extended a year"
    );
    assert_eq!(
        api.ledger("diamond-lapsed").await[0]["kind"],
        "tier_downgrade"
    );

    // Running again the same day changes nothing.
    let r = job(after).await;
    assert_eq!(r.body["examined"], 0);
    let r = api
        .call("DELETE", "/_local/clock", Some(&admin), None)
        .await;
    assert_eq!(r.body["set"], false);
    assert_eq!(
        api.call(
            "PUT",
            "/_local/clock",
            Some(&api.member("x")),
            Some(json!({"now": after.to_rfc3339()}))
        )
        .await
        .status,
        403
    );
}
both_backends!(requalification_drops_one_level_or_extends_a_year);

/// 100 distinct purchases, 50 replays of some of them and 20 partial refunds of earlier
/// purchases, all at once on one member: nothing lost, nothing doubled, no server error.
async fn concurrent_purchases_replays_and_refunds_lose_and_duplicate_nothing(b: Backend) {
    concurrent_purchases_on(b, Program::default()).await
}
both_backends!(concurrent_purchases_replays_and_refunds_lose_and_duplicate_nothing);

/// The same race with 14 pending days and rolling expiry: every point is pending, and the
/// refunds come off the pending lots.
async fn concurrent_purchases_and_refunds_lose_nothing_with_pending_days_and_rolling_expiry(
    b: Backend,
) {
    let p = Program::from_json(
        r#"{"points": {"pending_days": 14, "expiry": {"policy": "rolling", "months": 12}}}"#,
    )
    .unwrap();
    concurrent_purchases_on(b, p).await
}
both_backends!(concurrent_purchases_and_refunds_lose_nothing_with_pending_days_and_rolling_expiry);

async fn concurrent_purchases_on(b: Backend, program: Program) {
    let pending_days = program.points.pending_days;
    let api = Arc::new(Api::with_program(b, program).await);
    api.enrol("hot").await;
    let now = api.services.ctx.now();
    // Amounts stay under the gold threshold so every purchase earns at silver whatever the order.
    for i in 0..20 {
        api.buy("hot", &format!("EARLY-{i}"), 1000).await;
    }
    let pos = api.pos("store-1");
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (api, pos) = (api.clone(), pos.clone());
        tasks.push(tokio::spawn(async move {
            (
                "purchase",
                api.post(
                    "/v1/purchases",
                    &pos,
                    purchase_body("hot", &format!("C-{i}"), 500 + i, now),
                )
                .await,
            )
        }));
    }
    for i in 0..50 {
        let (api, pos) = (api.clone(), pos.clone());
        let i = i * 2;
        tasks.push(tokio::spawn(async move {
            (
                "purchase",
                api.post(
                    "/v1/purchases",
                    &pos,
                    purchase_body("hot", &format!("C-{i}"), 500 + i, now),
                )
                .await,
            )
        }));
    }
    for i in 0..20 {
        let (api, pos) = (api.clone(), pos.clone());
        tasks.push(tokio::spawn(async move {
            let body =
                json!({"refund_id": format!("F-{i}"), "amount": {"value": 500, "currency": "USD"}});
            (
                "refund",
                api.post(
                    &format!("/v1/purchases/store-1/EARLY-{i}/refunds"),
                    &pos,
                    body,
                )
                .await,
            )
        }));
    }
    let mut replayed = 0;
    for t in tasks {
        let (kind, r) = t.await.unwrap();
        assert_eq!(r.status, 201, "{kind}: {}", r.body);
        replayed += usize::from(r.replayed());
    }
    assert_eq!(
        replayed, 50,
        "each replay answered as a replay, each original as new"
    );

    // By hand: 20 × floor(1000/100) + Σ floor((500+i)/100) for i < 100 − 20 × floor(10 × 500/1000).
    let expected: i64 = 20 * 10 + (0..100).map(|i| (500 + i) / 100).sum::<i64>() - 20 * 5;
    let ledger = api.ledger("hot").await;
    let sum: i64 = ledger.iter().map(|e| e["points"].as_i64().unwrap()).sum();
    let points = &api.get("/v1/members/hot", &api.admin()).await.body["points"];
    let (balance, pending) = (
        points["balance"].as_i64().unwrap(),
        points["pending"].as_i64().unwrap(),
    );
    assert_eq!(balance + pending, expected);
    assert_eq!(pending == 0, pending_days == 0, "{points}");
    assert_eq!(sum, expected, "balance + pending = Σ ledger");
    let refs: Vec<&str> = ledger
        .iter()
        .map(|e| e["reference"].as_str().unwrap())
        .collect();
    let unique: HashSet<&&str> = refs.iter().collect();
    assert_eq!(
        refs.len(),
        20 + 100 + 20,
        "one entry per receipt and per refund"
    );
    assert_eq!(unique.len(), refs.len());
    // The newest entry's balance_after is the balance: entries were committed in order.
    assert_eq!(ledger[0]["balance_after"].as_i64().unwrap(), balance);
    // Events: enrolled, then one per effect (a replay emits nothing), seq 1..n with no gap or
    // repeat, and the points they move sum to the balance.
    let events = api.assert_events_account_for_the_balance("hot").await;
    let count = |t: &str| events.iter().filter(|e| e["type"] == t).count();
    assert_eq!(
        (
            count("member.enrolled"),
            count("points.earned") + count("points.pending"),
            count("points.reversed")
        ),
        (1, 120, 20)
    );
    assert_eq!(count("points.pending") == 120, pending_days > 0);
    // Prospect at enrolment, new at the first purchase; the value segment moves as spend grows.
    assert!(count("segment.changed") >= 2);
    assert_eq!(
        events.len(),
        1 + 120 + 20 + count("tier.upgraded") + count("segment.changed")
    );
}

#[tokio::test]
async fn a_purchase_by_id_costs_one_read_and_one_write() {
    let (api, counts) = Api::counted(Default::default());
    api.enrol("m").await;
    let body = purchase_body("m", "R1", 1999, api.services.ctx.now());
    let before = counts.snapshot();
    let units = || {
        counts
            .write_units
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let units_before = units();
    assert_eq!(
        api.post("/v1/purchases", &api.pos("store-1"), body.clone())
            .await
            .status,
        201
    );
    let after = counts.snapshot();
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 1),
        "reads, writes"
    );
    // Ledger line (carrying points.earned), purchase, member: three items under 1 KB in one
    // transaction, as before events existed; the first purchase also moves the member from
    // prospect to new and into a value segment: one add to the member's segment size shard
    // (DESIGN.md "Segment sizes"), a unit, twice in a transaction; and the member's traits
    // learn their first store (DESIGN.md "Custom segments"), 2 units more.
    assert_eq!(
        units() - units_before,
        6 + 2 + 2,
        "table write units of a first purchase"
    );
    // A purchase that moves no segment, at a store already seen this month, writes the three
    // items alone.
    let units_before = units();
    let again = purchase_body("m", "R2", 1, api.services.ctx.now());
    let r = api.post("/v1/purchases", &api.pos("store-1"), again).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(units() - units_before, 6, "table write units of a purchase");
    let before = counts.snapshot();
    let r = api.post("/v1/purchases", &api.pos("store-1"), body).await;
    assert!(r.replayed());
    let after = counts.snapshot();
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 0),
        "a replay reads once and writes nothing"
    );
}
