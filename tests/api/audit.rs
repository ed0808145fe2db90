//! Operator roles at work and the audit trail they leave: every operator write has one record,
//! in the write's own commit, naming who, what, when and the request; members' own writes have
//! none; records keep no personal data; support's adjustments stop at the program's limit.

use loyalty_tests::{Api, Backend, RaceBeforeCommit, Response, both_backends};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Every record of the trail as an administrator lists it (newest first), `limit` at a time;
/// the query string narrows it.
async fn trail(api: &Api, query: &str, limit: u32) -> Vec<Value> {
    api.all_pages(&format!("/v1/audit?limit={limit}{query}"), &api.admin())
        .await
}

fn request_id(r: &Response) -> String {
    r.headers["x-request-id"].to_str().unwrap().to_owned()
}

async fn every_operator_write_leaves_one_audit_record_naming_who_what_and_the_request(b: Backend) {
    let api = Api::new(b).await;
    let (admin, support) = (api.admin(), api.support());
    let mut ids = Vec::new();
    let m = api
        .post(
            "/v1/members",
            &admin,
            json!({"id": "m", "name": "Member m"}),
        )
        .await;
    assert_eq!(m.status, 201, "{}", m.body);
    ids.push(request_id(&m));
    let x = api
        .post(
            "/v1/members",
            &admin,
            json!({"id": "x", "name": "Xavier Secret", "email": "xavier@example.com"}),
        )
        .await;
    assert_eq!(x.status, 201, "{}", x.body);
    ids.push(request_id(&x));
    let adjust = api
        .post(
            "/v1/members/m/adjustments",
            &support,
            json!({"points": 500, "reason": "goodwill"}),
        )
        .await;
    assert_eq!(adjust.status, 201, "{}", adjust.body);
    ids.push(request_id(&adjust));
    let patch = api
        .call(
            "PATCH",
            "/v1/members/m",
            Some(&support),
            Some(json!({"email": "m.secret@example.com"})),
        )
        .await;
    assert_eq!(patch.status, 200, "{}", patch.body);
    ids.push(request_id(&patch));
    // The member's own edit and cancellation leave no record.
    let own = api
        .call(
            "PATCH",
            "/v1/members/m",
            Some(&api.member("m")),
            Some(json!({"name": "Em"})),
        )
        .await;
    assert_eq!(own.status, 200);
    let reward = api
        .call(
            "PUT",
            "/v1/rewards/coffee",
            Some(&admin),
            Some(json!({"name": "Coffee", "cost_points": 50, "stock": 10})),
        )
        .await;
    assert_eq!(reward.status, 201, "{}", reward.body);
    ids.push(request_id(&reward));
    let changed = api
        .call(
            "PUT",
            "/v1/rewards/coffee",
            Some(&admin),
            Some(json!({"name": "Coffee", "cost_points": 40, "stock": 10})),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    ids.push(request_id(&changed));
    let red = api.redeem("m", "coffee").await;
    assert_eq!(red.status, 201, "{}", red.body);
    let rid = red.body["id"].as_str().unwrap().to_owned();
    let cancel = api
        .post(
            &format!("/v1/members/m/redemptions/{rid}/cancel"),
            &support,
            json!({}),
        )
        .await;
    assert_eq!(cancel.status, 200, "{}", cancel.body);
    ids.push(request_id(&cancel));
    let own_red = api.redeem("m", "coffee").await;
    let own_cancel = api
        .post(
            &format!(
                "/v1/members/m/redemptions/{}/cancel",
                own_red.body["id"].as_str().unwrap()
            ),
            &api.member("m"),
            json!({}),
        )
        .await;
    assert_eq!(own_cancel.status, 200);
    let now = api.services.ctx.now();
    let at = |h: i64| (now + chrono::Duration::hours(h)).format("%Y-%m-%dT%H:%M:%SZ");
    let draft = api
        .call(
            "PUT",
            "/v1/campaigns/bonus",
            Some(&admin),
            Some(json!({"name": "Bonus", "audience": ["tier:silver"], "starts_at": at(-1).to_string(),
                "ends_at": at(240).to_string(), "offer": {"kind": "bonus", "points": 5}, "budget_points": 1000})),
        )
        .await;
    assert_eq!(draft.status, 201, "{}", draft.body);
    ids.push(request_id(&draft));
    for step in ["launch", "end"] {
        let r = api
            .post(&format!("/v1/campaigns/bonus/{step}"), &admin, json!({}))
            .await;
        assert_eq!(r.status, 200, "{step}: {}", r.body);
        ids.push(request_id(&r));
    }
    let erase = api
        .call("DELETE", "/v1/members/x", Some(&admin), None)
        .await;
    assert_eq!(erase.status, 200, "{}", erase.body);
    ids.push(request_id(&erase));

    let all = trail(&api, "", 100).await;
    let actions: Vec<&str> = all.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "member_erased",
            "campaign_ended",
            "campaign_launched",
            "campaign_drafted",
            "redemption_cancelled",
            "reward_changed",
            "reward_created",
            "profile_edited",
            "points_adjusted",
            "member_enrolled",
            "member_enrolled",
        ],
        "one record per operator write, newest first, none for the member's own"
    );
    let mut seen: Vec<String> = all
        .iter()
        .map(|r| r["actor"]["request_id"].as_str().unwrap().to_owned())
        .collect();
    seen.reverse();
    // Each record names the request that made it (the `x-request-id` its answer carried).
    assert_eq!(seen, ids);
    let adjusted = &all[8];
    assert_eq!(adjusted["actor"]["sub"], "alice");
    assert_eq!(adjusted["actor"]["role"], "support");
    assert_eq!(adjusted["member_id"], "m");
    assert_eq!(adjusted["route"], "POST /v1/members/{id}/adjustments");
    assert_eq!(adjusted["target"], adjust.body["id"]);
    assert_eq!(
        adjusted["changes"],
        json!([{"field": "balance", "before": 0, "after": 500}, {"field": "points", "after": 500}])
    );
    assert_eq!(
        all[7]["changes"],
        json!([{"field": "email"}]),
        "a profile edit names the field, never its value"
    );
    assert_eq!(
        all[5]["changes"],
        json!([{"field": "cost_points", "before": 50, "after": 40}])
    );
    assert_eq!(all[0]["actor"]["role"], "admin");
    // Nothing personal anywhere in the trail, the erased member's included.
    let text = serde_json::to_string(&all).unwrap();
    for secret in [
        "xavier@example.com",
        "Xavier Secret",
        "m.secret@example.com",
        "goodwill",
    ] {
        assert!(!text.contains(secret), "{secret} in the audit trail");
    }
    // Filters and pages.
    let alice: Vec<Value> = trail(&api, "&actor=alice", 100).await;
    assert_eq!(alice.len(), 3);
    let about_m = trail(&api, "&member=m", 100).await;
    assert_eq!(
        about_m
            .iter()
            .map(|r| r["action"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [
            "redemption_cancelled",
            "profile_edited",
            "points_adjusted",
            "member_enrolled"
        ]
    );
    assert_eq!(
        all[10]["changes"],
        json!([{"field": "status", "after": "active"}]),
        "an enrolment keeps no personal field"
    );
    assert_eq!(
        trail(&api, "", 2).await,
        all,
        "pages of 2 walk the same trail"
    );
    assert_eq!(trail(&api, "&actor=alice&member=x", 1).await.len(), 0);
}
both_backends!(every_operator_write_leaves_one_audit_record_naming_who_what_and_the_request);

async fn a_support_adjustment_over_the_limit_is_refused_with_its_reason_and_writes_nothing(
    b: Backend,
) {
    let api = Api::new(b).await;
    api.enrol("m").await;
    let over = api
        .post(
            "/v1/members/m/adjustments",
            &api.support(),
            json!({"points": -1001, "reason": "too much"}),
        )
        .await;
    assert_eq!(over.status, 403, "{}", over.body);
    assert_eq!(over.problem_type(), "/problems/adjustment-over-limit");
    assert!(
        over.body["detail"].as_str().unwrap().contains("1000"),
        "{}",
        over.body
    );
    assert_eq!(api.balance("m").await, 0);
    let actions: Vec<Value> = trail(&api, "", 10)
        .await
        .iter()
        .map(|r| r["action"].clone())
        .collect();
    assert_eq!(actions, ["member_enrolled"], "only the enrolment");
    let at_limit = api
        .post(
            "/v1/members/m/adjustments",
            &api.support(),
            json!({"points": 1000, "reason": "at the limit"}),
        )
        .await;
    assert_eq!(at_limit.status, 201, "{}", at_limit.body);
    let admin = api
        .post(
            "/v1/members/m/adjustments",
            &api.admin(),
            json!({"points": 50_000, "reason": "no limit for admins"}),
        )
        .await;
    assert_eq!(admin.status, 201, "{}", admin.body);
    assert_eq!(api.balance("m").await, 51_000);
}
both_backends!(a_support_adjustment_over_the_limit_is_refused_with_its_reason_and_writes_nothing);

async fn an_operator_write_that_fails_at_commit_leaves_neither_the_change_nor_its_audit_record(
    b: Backend,
) {
    let (inner, guard) = loyalty_tests::store(b).await;
    let store = Arc::new(RaceBeforeCommit::failing(inner));
    store.fail_commits.store(false, Ordering::SeqCst);
    let api = Api::on_store(store.clone(), Default::default(), guard);
    api.enrol("m").await;
    api.put_reward("coffee", json!({"name": "Coffee", "cost_points": 50}))
        .await;
    let before = trail(&api, "", 100).await;
    assert_eq!(before.len(), 2, "the enrolment and the reward's creation");
    store.fail_commits.store(true, Ordering::SeqCst);
    let adjust = api
        .post(
            "/v1/members/m/adjustments",
            &api.support(),
            json!({"points": 500, "reason": "goodwill"}),
        )
        .await;
    assert_eq!(adjust.status, 500, "{}", adjust.body);
    let reward = api
        .call(
            "PUT",
            "/v1/rewards/coffee",
            Some(&api.admin()),
            Some(json!({"name": "Coffee", "cost_points": 10})),
        )
        .await;
    assert_eq!(reward.status, 500, "{}", reward.body);
    store.fail_commits.store(false, Ordering::SeqCst);
    assert_eq!(api.balance("m").await, 0, "no adjustment");
    assert_eq!(api.ledger("m").await.len(), 0, "no ledger line");
    let catalog = api.get("/v1/rewards", &api.member("m")).await;
    assert_eq!(
        catalog.body["items"][0]["cost_points"], 50,
        "no reward change"
    );
    assert_eq!(trail(&api, "", 100).await, before, "and no audit record");
}
both_backends!(
    an_operator_write_that_fails_at_commit_leaves_neither_the_change_nor_its_audit_record
);

async fn operator_enrolments_redemptions_purchases_refunds_and_applied_codes_are_audited(
    b: Backend,
) {
    let api = Api::new(b).await;
    let admin = api.admin();
    api.enrol("ada").await;
    // The member's own and the till's writes leave no record.
    let own = api
        .post("/v1/members", &api.member("bob"), json!({"name": "Bob"}))
        .await;
    assert_eq!(own.status, 201, "{}", own.body);
    api.buy("bob", "T1", 5000).await;
    assert_eq!(api.refund("T1", "TF1", 1000).await.status, 201);
    let code = api.get("/v1/members/ada/referral", &admin).await.body["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = trail(&api, "", 100).await;
    assert_eq!(before.len(), 1, "ada's enrolment only: {before:?}");

    let applied = api
        .post(
            "/v1/members/bob/referral/apply",
            &api.support(),
            json!({"code": code}),
        )
        .await;
    assert_eq!(applied.status, 201, "{}", applied.body);
    api.adjust("bob", 500).await;
    api.put_reward("tea", json!({"name": "Tea", "cost_points": 100}))
        .await;
    let redeemed = api
        .post(
            "/v1/members/bob/redemptions",
            &admin,
            json!({"reward_id": "tea"}),
        )
        .await;
    assert_eq!(redeemed.status, 201, "{}", redeemed.body);
    let sale = loyalty_tests::purchase_body("bob", "A1", 4000, api.services.ctx.now());
    let bought = api.post("/v1/purchases", &admin, sale.clone()).await;
    assert_eq!(bought.status, 201, "{}", bought.body);
    let refunded = api
        .post(
            "/v1/purchases/store-1/A1/refunds",
            &admin,
            json!({"refund_id": "AF1", "amount": {"value": 1500, "currency": "USD"}}),
        )
        .await;
    assert_eq!(refunded.status, 201, "{}", refunded.body);
    // A replay writes nothing, so it records nothing.
    let replay = api.post("/v1/purchases", &admin, sale).await;
    assert!(replay.replayed(), "{}", replay.body);

    let all = trail(&api, "&member=bob", 100).await;
    let rows: Vec<(String, String, String)> = all
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["route"].as_str().unwrap().to_owned(),
                r["actor"]["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let row = |a: &str, route: &str, role: &str| (a.to_owned(), route.to_owned(), role.to_owned());
    assert_eq!(
        rows,
        [
            row(
                "refund_recorded",
                "POST /v1/purchases/{store_id}/{receipt_id}/refunds",
                "admin"
            ),
            row("purchase_recorded", "POST /v1/purchases", "admin"),
            row(
                "reward_redeemed",
                "POST /v1/members/{id}/redemptions",
                "admin"
            ),
            row(
                "points_adjusted",
                "POST /v1/members/{id}/adjustments",
                "admin"
            ),
            row(
                "referral_applied",
                "POST /v1/members/{id}/referral/apply",
                "support"
            ),
        ]
    );
    assert_eq!(all[0]["target"], "store-1/A1/AF1");
    assert_eq!(
        all[0]["changes"],
        json!([{"field": "amount", "after": 1500}])
    );
    assert_eq!(all[1]["target"], "store-1/A1");
    assert_eq!(all[2]["target"], "tea");
    assert_eq!(
        all[2]["changes"][0]["after"], redeemed.body["id"],
        "the redemption it made"
    );
    assert_eq!(all[4]["target"], "ada", "the referrer");
    assert_eq!(all[4]["actor"]["request_id"], request_id(&applied));
}
both_backends!(operator_enrolments_redemptions_purchases_refunds_and_applied_codes_are_audited);
