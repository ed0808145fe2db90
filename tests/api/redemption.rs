//! Catalog, redemptions and vouchers through the HTTP API, on both store backends.

use loyalty_tests::{Api, Backend, both_backends};
use serde_json::{Value, json};
use std::sync::Arc;

async fn stock_remaining(api: &Api, id: &str) -> Value {
    let r = api
        .get("/v1/rewards?limit=100", &api.member("anyone"))
        .await;
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id)
        .map(|x| x["stock_remaining"].clone())
        .unwrap_or(Value::Null)
}

async fn redeem_use_and_cancel_walkthrough(b: Backend) {
    let api = Api::new(b).await;
    let admin = api.admin();
    let r = api
        .call(
            "PUT",
            "/v1/rewards/coffee",
            Some(&admin),
            Some(json!({"name": "Coffee", "cost_points": 30, "stock": 5})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = api.call("PUT", "/v1/rewards/coffee", Some(&admin), Some(json!({"name": "Free coffee", "description": "Any size", "cost_points": 30, "stock": 5}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["stock_remaining"], 5);
    assert_eq!(
        api.call(
            "PUT",
            "/v1/rewards/coffee",
            Some(&api.member("m")),
            Some(json!({"name": "x", "cost_points": 1}))
        )
        .await
        .status,
        403
    );
    api.enrol("m").await;
    api.adjust("m", 100).await;
    let me = api.member("m");

    let red = api.redeem("m", "coffee").await;
    assert_eq!(red.status, 201, "{}", red.body);
    let code = red.body["voucher_code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 12);
    assert_eq!(
        (
            red.body["status"].clone(),
            red.body["points_spent"].clone(),
            red.body["balance"].clone()
        ),
        (json!("issued"), json!(30), json!(70))
    );
    let expires: chrono::DateTime<chrono::Utc> =
        red.body["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        (expires - api.services.ctx.now()).num_days(),
        89,
        "valid 90 days"
    );
    assert_eq!(stock_remaining(&api, "coffee").await, 4);

    // The till, with the code typed in lower case and grouped.
    let typed = format!("{}-{}", &code[..6], &code[6..]).to_lowercase();
    let used = api.use_voucher_at(typed, "s1").await;
    assert_eq!(used.status, 200, "{}", used.body);
    assert_eq!(
        (
            used.body["status"].clone(),
            used.body["member_id"].clone(),
            used.body["code"].clone()
        ),
        (json!("used"), json!("m"), json!(code))
    );
    let again = api.use_voucher_at(code, "s1").await;
    assert_eq!(
        (again.status, again.problem_type()),
        (409, "/problems/voucher-used")
    );
    let rid = red.body["id"].as_str().unwrap();
    let c = api.cancel_redemption("m", rid).await;
    assert_eq!(
        (c.status, c.problem_type()),
        (409, "/problems/redemption-not-cancellable")
    );

    // A cancelled, unused redemption gives points and stock back.
    let second = api.redeem("m", "coffee").await;
    assert_eq!(second.body["balance"], 40);
    let sid = second.body["id"].as_str().unwrap();
    let c = api.cancel_redemption("m", sid).await;
    assert_eq!(c.status, 200, "{}", c.body);
    assert_eq!(c.body["status"], "cancelled");
    assert_eq!(api.balance("m").await, 70);
    assert_eq!(stock_remaining(&api, "coffee").await, 4);
    let c = api.cancel_redemption("m", sid).await;
    assert_eq!(c.status, 409);
    let scode = second.body["voucher_code"].as_str().unwrap();
    let u = api.use_voucher_at(scode, "s1").await;
    assert_eq!(
        (u.status, u.problem_type()),
        (409, "/problems/voucher-cancelled")
    );

    let list = api.get("/v1/members/m/redemptions", &me).await;
    let statuses: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["cancelled", "used"], "newest first");
    let kinds: Vec<String> = api
        .ledger("m")
        .await
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "redemption_cancelled",
            "redemption",
            "redemption",
            "adjustment"
        ]
    );

    // Another member's redemptions are not yours to see, make or cancel.
    api.enrol("x").await;
    let other = api.member("x");
    assert_eq!(
        api.get("/v1/members/m/redemptions", &other).await.status,
        403
    );
    assert_eq!(
        api.post(
            "/v1/members/m/redemptions",
            &other,
            json!({"reward_id": "coffee"})
        )
        .await
        .status,
        403
    );
    assert_eq!(
        api.post(
            &format!("/v1/members/m/redemptions/{sid}/cancel"),
            &other,
            json!({})
        )
        .await
        .status,
        403
    );
    // A POS uses vouchers only for its own store; a member cannot use one at all.
    let third = api.redeem("m", "coffee").await;
    let tcode = third.body["voucher_code"].as_str().unwrap();
    assert_eq!(
        api.post(
            &format!("/v1/vouchers/{tcode}/use"),
            &api.pos("s1"),
            json!({"store_id": "s2"})
        )
        .await
        .status,
        403
    );
    assert_eq!(
        api.post(
            &format!("/v1/vouchers/{tcode}/use"),
            &me,
            json!({"store_id": "s1"})
        )
        .await
        .status,
        403
    );
    assert_eq!(
        api.post(
            "/v1/vouchers/ZZZZZZZZZZZZ/use",
            &api.pos("s1"),
            json!({"store_id": "s1"})
        )
        .await
        .status,
        404
    );
}
both_backends!(redeem_use_and_cancel_walkthrough);

async fn every_refusal_has_its_slug_and_changes_nothing(b: Backend) {
    let api = Api::new(b).await;
    api.put_reward(
        "cheap",
        json!({"name": "Cheap", "cost_points": 10, "per_member_limit": 1}),
    )
    .await;
    api.put_reward("dear", json!({"name": "Dear", "cost_points": 1000}))
        .await;
    api.put_reward(
        "gone",
        json!({"name": "Gone", "cost_points": 1, "stock": 0}),
    )
    .await;
    api.put_reward(
        "vip",
        json!({"name": "VIP", "cost_points": 1, "min_tier": "gold"}),
    )
    .await;
    api.put_reward(
        "off",
        json!({"name": "Off", "cost_points": 1, "active": false}),
    )
    .await;
    api.enrol("m").await;
    api.adjust("m", 100).await;
    let me = api.member("m");
    assert_eq!(api.redeem("m", "cheap").await.status, 201);
    let ledger_before = api.ledger("m").await.len();
    let events_before = api.events("m").await;
    for (reward, status, slug) in [
        ("dear", 409, "insufficient-points"),
        ("gone", 409, "out-of-stock"),
        ("cheap", 409, "limit-reached"),
        ("vip", 403, "tier-too-low"),
        ("off", 409, "reward-inactive"),
        ("missing", 404, "not-found"),
    ] {
        let r = api.redeem("m", reward).await;
        assert_eq!(
            (r.status, r.problem_type()),
            (status, format!("/problems/{slug}").as_str()),
            "{reward}: {}",
            r.body
        );
    }
    let r = api
        .post(
            "/v1/members/m/redemptions",
            &me,
            json!({"reward_id": "cheap", "extra": 1}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(api.balance("m").await, 90);
    assert_eq!(api.ledger("m").await.len(), ledger_before);
    assert_eq!(
        api.events("m").await,
        events_before,
        "refusals emit no event"
    );
    assert_eq!(
        api.get("/v1/members/m/redemptions", &me).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        stock_remaining(&api, "gone").await,
        0,
        "a sold-out reward stays listed, showing 0 left"
    );
    let catalog = api.get("/v1/rewards", &me).await.body;
    let ids: Vec<&str> = catalog["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(
        !ids.contains(&"off"),
        "inactive rewards are not in the catalog"
    );
    let bad = api
        .call(
            "PUT",
            "/v1/rewards/bad",
            Some(&api.admin()),
            Some(json!({"name": "", "cost_points": 1})),
        )
        .await;
    assert_eq!(bad.status, 422);
    let bad = api
        .call(
            "PUT",
            "/v1/rewards/bad",
            Some(&api.admin()),
            Some(json!({"name": "B", "cost_points": -1})),
        )
        .await;
    assert_eq!(bad.status, 422);
}
both_backends!(every_refusal_has_its_slug_and_changes_nothing);

async fn ten_concurrent_redemptions_never_overspend(b: Backend) {
    concurrent_redemptions_on(b, loyalty::program::Program::default()).await
}
both_backends!(ten_concurrent_redemptions_never_overspend);

/// The same race with 14 pending days and rolling expiry: the given points are spendable at
/// once, in a dated lot.
async fn ten_concurrent_redemptions_never_overspend_with_pending_days_and_rolling_expiry(
    b: Backend,
) {
    let p = loyalty::program::Program::from_json(
        r#"{"points": {"pending_days": 14, "expiry": {"policy": "rolling", "months": 12}}}"#,
    )
    .unwrap();
    concurrent_redemptions_on(b, p).await
}
both_backends!(ten_concurrent_redemptions_never_overspend_with_pending_days_and_rolling_expiry);

async fn concurrent_redemptions_on(b: Backend, program: loyalty::program::Program) {
    let api = Arc::new(Api::with_program(b, program).await);
    api.put_reward("r30", json!({"name": "Thirty", "cost_points": 30}))
        .await;
    api.enrol("m").await;
    api.adjust("m", 100).await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.redeem("m", "r30").await })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        if r.status == 409 {
            assert_eq!(r.problem_type(), "/problems/insufficient-points");
        }
        statuses.push(r.status);
    }
    statuses.sort();
    assert_eq!(statuses, [201, 201, 201, 409, 409, 409, 409, 409, 409, 409]);
    assert_eq!(api.balance("m").await, 10);
    let ledger = api.ledger("m").await;
    assert_eq!(
        ledger
            .iter()
            .map(|e| e["points"].as_i64().unwrap())
            .sum::<i64>(),
        10,
        "Σ ledger = balance"
    );
}

/// `members` members, each with points for one, race for `stock` units of one reward: exactly
/// `stock` win, the rest are refused out of stock, nobody holds two, and the catalog agrees.
async fn race_for_stock(b: Backend, members: usize, stock: u64) -> Arc<Api> {
    let api = Arc::new(Api::new(b).await);
    api.put_reward(
        "flash",
        json!({"name": "Flash sale", "cost_points": 5, "stock": stock, "per_member_limit": 1}),
    )
    .await;
    for i in 0..members {
        api.enrol(&format!("m{i}")).await;
        api.adjust(&format!("m{i}"), 5).await;
    }
    let tasks: Vec<_> = (0..members)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                api.post(
                    &format!("/v1/members/m{i}/redemptions"),
                    &api.member(&format!("m{i}")),
                    json!({"reward_id": "flash"}),
                )
                .await
            })
        })
        .collect();
    let (mut won, mut sold_out) = (0, 0);
    let mut codes = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            201 => {
                won += 1;
                codes.insert(r.body["voucher_code"].as_str().unwrap().to_owned());
            }
            409 => {
                assert_eq!(r.problem_type(), "/problems/out-of-stock");
                sold_out += 1;
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert_eq!(
        (won, sold_out, codes.len()),
        (stock as usize, members - stock as usize, stock as usize)
    );
    assert_eq!(stock_remaining(&api, "flash").await, 0);
    api
}

async fn fifty_members_racing_for_ten_in_stock_get_exactly_ten(b: Backend) {
    race_for_stock(b, 50, 10).await;
}
both_backends!(fifty_members_racing_for_ten_in_stock_get_exactly_ten);

async fn two_hundred_redeemers_on_fifty_units_never_oversell_and_a_cancel_gives_one_back(
    b: Backend,
) {
    let api = race_for_stock(b, 200, 50).await;
    // The stock is spread over shards; a cancelled voucher's unit goes back to one of them and
    // the next redeemer, whichever shard is theirs, finds it.
    let mut held = None;
    for i in 0..200 {
        let r = api
            .get(
                &format!("/v1/members/m{i}/redemptions"),
                &api.member(&format!("m{i}")),
            )
            .await;
        if let Some(first) = r.body["items"].as_array().and_then(|a| a.first()) {
            held = Some((i, first["id"].as_str().unwrap().to_owned()));
            break;
        }
    }
    let (i, redemption) = held.expect("someone holds a voucher");
    let r = api
        .post(
            &format!("/v1/members/m{i}/redemptions/{redemption}/cancel"),
            &api.member(&format!("m{i}")),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(stock_remaining(&api, "flash").await, 1);
    let mut got = 0;
    for j in (0..200).filter(|j| *j != i) {
        let r = api
            .post(
                &format!("/v1/members/m{j}/redemptions"),
                &api.member(&format!("m{j}")),
                json!({"reward_id": "flash"}),
            )
            .await;
        if r.status == 201 {
            got += 1;
        }
    }
    assert_eq!(got, 1, "exactly the unit given back");
    assert_eq!(stock_remaining(&api, "flash").await, 0);
}
both_backends!(two_hundred_redeemers_on_fifty_units_never_oversell_and_a_cancel_gives_one_back);

async fn twenty_concurrent_uses_of_one_voucher_accept_exactly_one(b: Backend) {
    let api = Arc::new(Api::new(b).await);
    api.put_reward("r", json!({"name": "R", "cost_points": 1}))
        .await;
    api.enrol("m").await;
    api.adjust("m", 1).await;
    let code = api.redeem("m", "r").await.body["voucher_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (api, code) = (api.clone(), code.clone());
            let store = format!("s{}", i % 3);
            tokio::spawn(async move { api.use_voucher_at(code, &store).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        if r.status == 409 {
            assert_eq!(r.problem_type(), "/problems/voucher-used");
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1);
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 19);
}
both_backends!(twenty_concurrent_uses_of_one_voucher_accept_exactly_one);

async fn replays_of_one_idempotency_key_make_one_redemption(b: Backend) {
    let api = Arc::new(Api::new(b).await);
    api.put_reward("r", json!({"name": "R", "cost_points": 10}))
        .await;
    api.enrol("m").await;
    api.adjust("m", 100).await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move {
                api.call_with(
                    "POST",
                    "/v1/members/m/redemptions",
                    Some(&api.member("m")),
                    Some(br#"{"reward_id":"r"}"#.to_vec()),
                    &[("Idempotency-Key", "double-tap")],
                )
                .await
            })
        })
        .collect();
    let mut bodies = std::collections::HashSet::new();
    let mut fresh = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 201, "{}", r.body);
        fresh += usize::from(!r.replayed());
        bodies.insert(r.body.to_string());
    }
    assert_eq!((fresh, bodies.len()), (1, 1));
    assert_eq!(api.balance("m").await, 90);
    assert_eq!(
        api.get("/v1/members/m/redemptions", &api.member("m"))
            .await
            .body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
both_backends!(replays_of_one_idempotency_key_make_one_redemption);

#[tokio::test]
async fn vouchers_expire_after_ninety_days_and_limits_return_on_cancel() {
    let api = Api::new(Backend::Embedded).await;
    api.put_reward(
        "once",
        json!({"name": "Once", "cost_points": 1, "per_member_limit": 1, "stock": 1}),
    )
    .await;
    api.enrol("m").await;
    api.adjust("m", 10).await;
    let first = api.redeem("m", "once").await;
    let id = first.body["id"].as_str().unwrap();
    assert_eq!(api.cancel_redemption("m", id).await.status, 200);
    let second = api.redeem("m", "once").await;
    assert_eq!(
        second.status, 201,
        "limit and stock came back: {}",
        second.body
    );
    let code = second.body["voucher_code"].as_str().unwrap();
    api.clock
        .set(api.services.ctx.now() + chrono::Duration::days(91));
    let r = api.use_voucher_at(code, "s").await;
    assert_eq!(
        (r.status, r.problem_type()),
        (409, "/problems/voucher-expired")
    );
}

#[tokio::test]
async fn a_redemption_costs_one_read_and_one_write() {
    let (api, counts) = Api::counted(Default::default());
    api.put_reward("r", json!({"name": "R", "cost_points": 1, "stock": 100}))
        .await;
    api.enrol("m").await;
    api.adjust("m", 10).await;
    let before = counts.snapshot();
    let units = || {
        counts
            .write_units
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let units_before = units();
    let r = api
        .call_with(
            "POST",
            "/v1/members/m/redemptions",
            Some(&api.member("m")),
            Some(br#"{"reward_id":"r"}"#.to_vec()),
            &[("Idempotency-Key", "k")],
        )
        .await;
    assert_eq!(r.status, 201);
    let after = counts.snapshot();
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 1),
        "reads, writes"
    );
    // Redemption, voucher, reward count, reward (stock), ledger line (carrying voucher.issued and
    // points.redeemed), member, idempotency record: seven items under 1 KB in one transaction,
    // as before events existed; and the member's traits, counting redemptions by month for
    // custom segments (DESIGN.md "Custom segments"): eight.
    assert_eq!(
        units() - units_before,
        16,
        "table write units of a redemption"
    );
}
