//! The defects found by review and attack of the first foundation, each proven fixed (on both
//! store backends where the store is involved), and the typed table layer's retry rule: a failed
//! condition that is a fact answers at once, after one read and one commit.

use chrono::{DateTime, Duration, Utc};
use loyalty::domain::{MemberId, Phone};
use loyalty::program::Program;
use loyalty::service::{ServiceError, Services};
use loyalty::store::{Cond, CountingStore, Write};
use loyalty::table::{Batch, PhoneClaim, Record};
use loyalty_tests::at;
use loyalty_tests::{Api, Backend, RaceBeforeCommit, both_backends, services_on, store};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn purchase(member: &str, receipt: &str, value: i64, when: &str) -> Value {
    json!({"member": {"id": member}, "store_id": "store-1", "receipt_id": receipt,
           "amount": {"value": value, "currency": "USD"}, "occurred_at": when})
}

async fn raw_post(api: &Api, path: &str, token: &str, body: &str) -> loyalty_tests::Response {
    api.call_with(
        "POST",
        path,
        Some(token),
        Some(body.as_bytes().to_vec()),
        &[],
    )
    .await
}

/// The member's whole observable state: balance, ledger and tier.
async fn state(api: &Api, id: &str) -> (i64, usize, Value) {
    let m = api
        .get(&format!("/v1/members/{id}"), &api.admin())
        .await
        .body;
    (
        api.balance(id).await,
        api.ledger(id).await.len(),
        m["tier"].clone(),
    )
}

async fn a_purchase_crossing_gold_just_after_midnight_of_a_new_month_upgrades(b: Backend) {
    let api = Api::new(b).await;
    api.enrol("m").await;
    api.clock.set(at("2026-11-30T23:58:00Z"));
    let r = api
        .post(
            "/v1/purchases",
            &api.pos("store-1"),
            purchase("m", "R1", 90_000, "2026-11-30T23:57:00Z"),
        )
        .await;
    assert_eq!((r.status, r.body["tier"].clone()), (201, json!("silver")));
    // The till's clock is 4 minutes ahead (the +5 min rule allows it): the sale is dated in
    // December, and 900.00 + 150.00 crosses the 1,000.00 gold threshold.
    let r = api
        .post(
            "/v1/purchases",
            &api.pos("store-1"),
            purchase("m", "R2", 15_000, "2026-12-01T00:02:00Z"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        (r.body["tier"].clone(), r.body["tier_changed"].clone()),
        (json!("gold"), json!(true))
    );
    let m = api.get("/v1/members/m", &api.admin()).await.body;
    assert_eq!(m["tier_expires_on"], json!("2027-12-01"));
}
both_backends!(a_purchase_crossing_gold_just_after_midnight_of_a_new_month_upgrades);

async fn a_retried_enrolment_with_one_idempotency_key_creates_one_member(b: Backend) {
    let api = Api::new(b).await;
    let pos = api.pos("store-1");
    let body = json!({"name": "Ada", "phone": "+8613800000001"});
    let send = |key: &'static str| {
        let (api, pos, body) = (&api, pos.clone(), body.clone());
        async move {
            api.call_with(
                "POST",
                "/v1/members",
                Some(&pos),
                Some(body.to_string().into_bytes()),
                &[("idempotency-key", key)],
            )
            .await
        }
    };
    let first = send("enrol-1").await;
    assert_eq!(first.status, 201, "{}", first.body);
    // Retries, sequential and concurrent, all name the member the first one created.
    let retries = futures::future::join_all((0..8).map(|_| send("enrol-1"))).await;
    for r in &retries {
        assert_eq!((r.status, r.replayed()), (201, true), "{}", r.body);
        assert_eq!(r.body["id"], first.body["id"]);
    }
    // A different key is a different enrolment: the phone is taken.
    let other = send("enrol-2").await;
    assert_eq!(
        (other.status, other.problem_type()),
        (409, "/problems/phone-taken")
    );
    // The same key with another body is refused.
    let changed = api
        .call_with(
            "POST",
            "/v1/members",
            Some(&pos),
            Some(json!({"name": "Bob"}).to_string().into_bytes()),
            &[("idempotency-key", "enrol-1")],
        )
        .await;
    assert_eq!(
        (changed.status, changed.problem_type()),
        (422, "/problems/idempotency-key-reused")
    );
}
both_backends!(a_retried_enrolment_with_one_idempotency_key_creates_one_member);

async fn a_pos_may_choose_only_a_uuid_as_member_id(b: Backend) {
    let api = Api::new(b).await;
    let pos = api.pos("store-1");
    let squat = api
        .post(
            "/v1/members",
            &pos,
            json!({"id": "auth0|future-member", "name": "X"}),
        )
        .await;
    assert_eq!(
        (squat.status, squat.problem_type()),
        (422, "/problems/validation")
    );
    assert_eq!(squat.body["errors"][0]["field"], "id");
    assert_eq!(
        api.get("/v1/members/auth0|future-member", &api.admin())
            .await
            .status,
        404
    );
    // The member whose sub that is can still enrol.
    let own = api
        .post(
            "/v1/members",
            &api.member("auth0|future-member"),
            json!({"name": "Fay"}),
        )
        .await;
    assert_eq!(own.status, 201, "{}", own.body);
    let uuid = "0193a0b4-7c1e-7d30-9a51-5b2f8f2c1d10";
    let r = api
        .post("/v1/members", &pos, json!({"id": uuid, "name": "U"}))
        .await;
    assert_eq!((r.status, r.body["id"].clone()), (201, json!(uuid)));
    let r = api
        .post(
            "/v1/members",
            &api.admin(),
            json!({"id": "legacy-42", "name": "L"}),
        )
        .await;
    assert_eq!(
        r.status, 201,
        "an administrator may choose any id: {}",
        r.body
    );
}
both_backends!(a_pos_may_choose_only_a_uuid_as_member_id);

async fn forged_cursors_answer_400_on_every_list(b: Backend) {
    use base64::Engine;
    let api = Api::new(b).await;
    api.enrol("m").await;
    let admin = api.admin();
    for i in 0..3 {
        let r = api
            .post(
                "/v1/members/m/adjustments",
                &admin,
                json!({"points": 1 + i, "reason": "seed"}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let page = api.get("/v1/members/m/ledger?limit=1", &admin).await;
    let ledger_cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let forged = [
        b64("ledger\nPROFILE"),            // outside the ledger's range
        b64("ledger\nREDEMPTION#x"),       // another list's range
        b64("ledger\n"),                   // empty position
        b64("redemption\nLEDGER#x"),       // another list's kind
        b64("catalog\n[\"a\",\"\",\"\"]"), // an index position with empty keys
        "bm90LWEtY3Vyc29y".to_owned(),
    ];
    for path in [
        "/v1/members/m/ledger",
        "/v1/members/m/redemptions",
        "/v1/rewards",
    ] {
        for c in &forged {
            let r = api.get(&format!("{path}?cursor={c}"), &admin).await;
            assert_eq!(
                (r.status, r.problem_type()),
                (400, "/problems/validation"),
                "{path} {c}: {}",
                r.body
            );
        }
    }
    let r = api
        .get(
            &format!("/v1/members/m/redemptions?cursor={ledger_cursor}"),
            &admin,
        )
        .await;
    assert_eq!(r.status, 400, "a ledger cursor on the redemptions list");
    let r = api
        .get(
            &format!("/v1/members/m/ledger?limit=1&cursor={ledger_cursor}"),
            &admin,
        )
        .await;
    assert_eq!(r.status, 200, "the real cursor still works");
}
both_backends!(forged_cursors_answer_400_on_every_list);

async fn a_purchase_written_another_way_replays_instead_of_conflicting(b: Backend) {
    let api = Api::new(b).await;
    api.enrol("m").await;
    api.clock.set(at("2026-11-22T10:00:00Z"));
    let pos = api.pos("store-1");
    let first = raw_post(&api, "/v1/purchases", &pos, r#"{"member": {"id": "m"}, "store_id": "store-1", "receipt_id": "R1", "amount": {"value": 1999, "currency": "USD"}, "occurred_at": "2026-11-22T09:30:00Z"}"#).await;
    assert_eq!(first.status, 201, "{}", first.body);
    for same in [
        // +00:00 for Z, other order, no spaces
        r#"{"occurred_at":"2026-11-22T09:30:00+00:00","amount":{"currency":"USD","value":1999},"receipt_id":"R1","store_id":"store-1","member":{"id":"m"}}"#,
        // the same instant written in another offset
        r#"{"member":{"id":"m"},"store_id":"store-1","receipt_id":"R1","amount":{"value":1999,"currency":"USD"},"occurred_at":"2026-11-22T17:30:00+08:00"}"#,
        // an explicit null for the optional lines
        r#"{"member":{"id":"m"},"store_id":"store-1","receipt_id":"R1","amount":{"value":1999,"currency":"USD"},"occurred_at":"2026-11-22T09:30:00Z","lines":null}"#,
    ] {
        let r = raw_post(&api, "/v1/purchases", &pos, same).await;
        assert_eq!((r.status, r.replayed()), (201, true), "{same}: {}", r.body);
        assert_eq!(r.body, first.body);
    }
    let changed = raw_post(&api, "/v1/purchases", &pos, r#"{"member":{"id":"m"},"store_id":"store-1","receipt_id":"R1","amount":{"value":2999,"currency":"USD"},"occurred_at":"2026-11-22T09:30:00Z"}"#).await;
    assert_eq!(
        (changed.status, changed.problem_type()),
        (409, "/problems/receipt-conflict")
    );
    assert_eq!(api.balance("m").await, 19);
}
both_backends!(a_purchase_written_another_way_replays_instead_of_conflicting);

async fn arrays_duplicate_keys_and_unsummed_lines_are_refused_and_write_nothing(b: Backend) {
    let api = Api::new(b).await;
    api.enrol("m").await;
    api.clock.set(at("2026-11-22T10:00:00Z"));
    let pos = api.pos("store-1");
    let cases: [(&str, &str, u16); 4] = [
        (
            "/v1/purchases",
            r#"[{"id": "m"}, "store-1", "R1", {"value": 100, "currency": "USD"}, "2026-11-22T09:30:00Z"]"#,
            400,
        ),
        (
            "/v1/purchases",
            r#"{"member": {"id": "m"}, "store_id": "store-1", "receipt_id": "R1", "amount": {"value": 100, "currency": "USD"}, "amount": {"value": 9999900, "currency": "USD"}, "occurred_at": "2026-11-22T09:30:00Z"}"#,
            400,
        ),
        (
            "/v1/purchases",
            r#"{"member": {"id": "m", "id": "other"}, "store_id": "store-1", "receipt_id": "R1", "amount": {"value": 100, "currency": "USD"}, "occurred_at": "2026-11-22T09:30:00Z"}"#,
            400,
        ),
        (
            "/v1/purchases",
            r#"{"member": {"id": "m"}, "store_id": "store-1", "receipt_id": "R1", "amount": {"value": 1000, "currency": "USD"}, "occurred_at": "2026-11-22T09:30:00Z",
                "lines": [{"sku": "a", "quantity": 1, "amount": {"value": 600, "currency": "USD"}}, {"sku": "b", "quantity": 1, "amount": {"value": 300, "currency": "USD"}}]}"#,
            422,
        ),
    ];
    for (path, body, status) in cases {
        let r = raw_post(&api, path, &pos, body).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert_eq!(r.content_type(), "application/problem+json");
    }
    let r = raw_post(
        &api,
        "/v1/members",
        &api.admin(),
        r#"[{"id": "arr"}, "Ada"]"#,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(state(&api, "m").await, (0, 0, json!("silver")));
    // The receipt is still free: the right body is accepted once.
    let ok = r#"{"member": {"id": "m"}, "store_id": "store-1", "receipt_id": "R1", "amount": {"value": 1000, "currency": "USD"}, "occurred_at": "2026-11-22T09:30:00Z",
                "lines": [{"sku": "a", "quantity": 1, "amount": {"value": 700, "currency": "USD"}}, {"sku": "b", "quantity": 1, "amount": {"value": 300, "currency": "USD"}}]}"#;
    assert_eq!(raw_post(&api, "/v1/purchases", &pos, ok).await.status, 201);
}
both_backends!(arrays_duplicate_keys_and_unsummed_lines_are_refused_and_write_nothing);

#[tokio::test]
async fn framework_rejections_and_dot_ids_answer_problem_json() {
    let api = Api::new(Backend::Embedded).await;
    let admin = api.admin();
    for path in [
        "/v1/members/%FF",
        "/v1/members/%FF/ledger",
        "/v1/purchases/%C3%28/R1/refunds",
    ] {
        let method = if path.ends_with("refunds") {
            "POST"
        } else {
            "GET"
        };
        let body = (method == "POST")
            .then(|| json!({"refund_id": "x", "amount": {"value": 1, "currency": "USD"}}));
        let r = api.call(method, path, Some(&admin), body).await;
        assert!(r.status == 400 || r.status == 404, "{path}: {}", r.status);
        assert_eq!(r.content_type(), "application/problem+json", "{path}");
        assert!(
            r.body["type"].as_str().unwrap().starts_with("/problems/"),
            "{path}: {}",
            r.body
        );
    }
    // Every problem names its request: `instance` is /requests/<the x-request-id header>, also
    // on the 401s the authorizer answers itself.
    for r in [
        api.call("GET", "/v1/members/%FF", Some(&admin), None).await,
        api.call("GET", "/v1/members/nobody", Some(&admin), None)
            .await,
        api.call("GET", "/v1/members/nobody", Some("not-a-token"), None)
            .await,
    ] {
        let id = r.headers["x-request-id"].to_str().unwrap().to_owned();
        assert!(!id.is_empty());
        assert_eq!(
            r.body["instance"],
            json!(format!("/requests/{id}")),
            "{}",
            r.body
        );
    }
    let ok = api.call("GET", "/v1/rewards", Some(&admin), None).await;
    assert!(
        ok.headers.contains_key("x-request-id"),
        "successes carry the id too"
    );
    for id in [".", ".."] {
        let r = api
            .post("/v1/members", &admin, json!({"id": id, "name": "Dot"}))
            .await;
        assert_eq!(
            (r.status, r.problem_type()),
            (400, "/problems/validation"),
            "{id}: {}",
            r.body
        );
    }
}

/// Syntax and shape → 400; meaning → 422. Nothing refused writes anything.
async fn syntax_is_400_and_meaning_is_422_on_every_route(b: Backend) {
    let api = Api::new(b).await;
    api.enrol("m").await;
    api.clock.set(at("2026-11-22T10:00:00Z"));
    let (pos, admin) = (api.pos("store-1"), api.admin());
    let p = |v: Value| v.to_string();
    let good = purchase("m", "R9", 1000, "2026-11-22T09:30:00Z");
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let v = "validation";
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        ("/v1/purchases", "pos", "{".into(), 400, v),
        (
            "/v1/purchases",
            "pos",
            p(with("amount", json!({"value": "ten", "currency": "USD"}))),
            400,
            v,
        ),
        (
            "/v1/purchases",
            "pos",
            p(with("surprise", json!(1))),
            400,
            v,
        ),
        (
            "/v1/purchases",
            "pos",
            p(with(
                "member",
                json!({"id": "m", "phone": "+8613800000009"}),
            )),
            400,
            v,
        ),
        ("/v1/purchases", "pos", p(with("member", json!({}))), 400, v),
        (
            "/v1/purchases",
            "pos",
            p(with("occurred_at", json!("yesterday"))),
            400,
            v,
        ),
        (
            "/v1/purchases",
            "pos",
            p(with("amount", json!({"value": 0, "currency": "USD"}))),
            422,
            v,
        ),
        (
            "/v1/purchases",
            "pos",
            p(with("amount", json!({"value": 100, "currency": "EUR"}))),
            422,
            "currency-mismatch",
        ),
        (
            "/v1/purchases",
            "pos",
            p(with("occurred_at", json!("2026-06-01T00:00:00Z"))),
            422,
            "stale-purchase",
        ),
        ("/v1/members", "admin", p(json!({"id": "n1"})), 400, v),
        (
            "/v1/members",
            "admin",
            p(json!({"id": "n1", "name": "N", "phone": "123"})),
            400,
            v,
        ),
        (
            "/v1/members",
            "admin",
            p(json!({"id": "n1", "name": "N", "birthday": "2027-01-01"})),
            422,
            v,
        ),
        (
            "/v1/members/m/adjustments",
            "admin",
            p(json!({"points": "many", "reason": "x"})),
            400,
            v,
        ),
        (
            "/v1/members/m/adjustments",
            "admin",
            p(json!({"points": 0, "reason": "x"})),
            422,
            v,
        ),
        (
            "/v1/members/m/adjustments",
            "admin",
            p(json!({"points": 5, "reason": " "})),
            422,
            v,
        ),
    ];
    for (path, who, body, status, slug) in cases {
        let token = if who == "pos" { &pos } else { &admin };
        let r = raw_post(&api, path, token, &body).await;
        assert_eq!(r.status, status, "{path} {body}: {}", r.body);
        assert_eq!(
            r.problem_type(),
            format!("/problems/{slug}"),
            "{path} {body}"
        );
    }
    let r = api
        .call(
            "PUT",
            "/v1/rewards/r1",
            Some(&admin),
            Some(json!({"name": "R", "cost_points": -1})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(state(&api, "m").await, (0, 0, json!("silver")));
    assert_eq!(api.get("/v1/members/n1", &admin).await.status, 404);
    assert_eq!(
        api.get("/v1/rewards", &admin).await.body["items"],
        json!([])
    );
}
both_backends!(syntax_is_400_and_meaning_is_422_on_every_route);

async fn an_expired_voucher_shows_expired_and_cannot_be_cancelled_for_points(b: Backend) {
    let api = Api::new(b).await;
    api.enrol("m").await;
    let admin = api.admin();
    api.clock.set(at("2026-11-22T10:00:00Z"));
    let r = api
        .call(
            "PUT",
            "/v1/rewards/coffee",
            Some(&admin),
            Some(json!({"name": "Coffee", "cost_points": 30})),
        )
        .await;
    assert_eq!(r.status, 201);
    api.post(
        "/v1/members/m/adjustments",
        &admin,
        json!({"points": 100, "reason": "seed"}),
    )
    .await;
    let red = api
        .post(
            "/v1/members/m/redemptions",
            &api.member("m"),
            json!({"reward_id": "coffee"}),
        )
        .await;
    assert_eq!(red.status, 201, "{}", red.body);
    let (rid, code) = (
        red.body["id"].as_str().unwrap().to_owned(),
        red.body["voucher_code"].as_str().unwrap().to_owned(),
    );
    // Still issued a second before `expires_at`, expired a second after. The test clock
    // ticks from the instant set, so the margin is read from the voucher, not assumed.
    let expires = at(red.body["expires_at"].as_str().unwrap());
    assert!(
        expires >= at("2027-02-20T10:00:00Z") && expires < at("2027-02-20T10:00:05Z"),
        "ninety days after the redemption: {expires}"
    );
    api.clock.set(expires - chrono::Duration::seconds(1));
    let list = api.get("/v1/members/m/redemptions", &admin).await;
    assert_eq!(list.body["items"][0]["status"], "issued");
    api.clock.set(expires + chrono::Duration::seconds(1));
    let list = api.get("/v1/members/m/redemptions", &admin).await;
    assert_eq!(list.body["items"][0]["status"], "expired");
    let cancel = api.cancel_redemption("m", rid).await;
    assert_eq!(
        (cancel.status, cancel.problem_type()),
        (409, "/problems/redemption-not-cancellable")
    );
    let used = api.use_voucher(code).await;
    assert_eq!(
        (used.status, used.problem_type()),
        (409, "/problems/voucher-expired")
    );
    assert_eq!(api.balance("m").await, 70, "the points stay spent");
}
both_backends!(an_expired_voucher_shows_expired_and_cannot_be_cancelled_for_points);

async fn one_unreadable_member_does_not_abort_a_scheduled_run(b: Backend) {
    let api = Api::with_program(
        b,
        Program::from_json(r#"{"birthday": {"min_days_on_file": 0}}"#).unwrap(),
    )
    .await;
    for id in ["a", "b", "c"] {
        let r = api
            .post(
                "/v1/members",
                &api.admin(),
                json!({"id": id, "name": id, "birthday": "01-15"}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    // Damage b's item in place (its birthday index entry stays): its balance is no number.
    let store = api.services.ctx.table.store().clone();
    let key = <loyalty::domain::member::Member as Record>::key(&MemberId::parse("b").unwrap());
    let mut item = store.get(&key).await.unwrap().unwrap();
    item.attrs.insert("balance".into(), json!("lots"));
    store
        .commit(vec![Write::Put {
            item,
            cond: Cond::Always,
        }])
        .await
        .unwrap();
    let r = api
        .post(
            "/_local/jobs/birthday-gifts",
            &api.admin(),
            json!({"now": "2027-01-15T12:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            r.body["examined"].clone(),
            r.body["issued"].clone(),
            r.body["failed"].clone()
        ),
        (json!(3), json!(2), json!(1))
    );
    assert_eq!(api.balance("a").await, 100);
    assert_eq!(api.balance("c").await, 100);
}
both_backends!(one_unreadable_member_does_not_abort_a_scheduled_run);

/// The typed layer answers a failed condition that is a fact at once: a phone claimed by a
/// racing enrolment between our read and our commit is `phone-taken` after one read and one
/// commit, not a retry loop.
async fn a_phone_taken_in_a_race_answers_after_one_read_and_one_commit(b: Backend) {
    let (inner, _guard) = store(b).await;
    let phone = Phone::parse("+8613800000077").unwrap();
    let mut racer = Batch::new();
    racer
        .create(
            &phone,
            &PhoneClaim {
                member_id: MemberId::parse("racer").unwrap(),
            },
        )
        .unwrap();
    let store = Arc::new(CountingStore::new(RaceBeforeCommit::new(
        inner,
        racer.into_writes(),
    )));
    let (svc, _clock): (Services, _) = services_on(store.clone(), Program::default());
    let req: loyalty_members::EnrolRequest =
        serde_json::from_value(json!({"name": "Ada", "phone": "+8613800000077"})).unwrap();
    let r = svc
        .members
        .enrol(
            MemberId::parse("ada").unwrap(),
            req.into(),
            None,
            None,
            "test",
        )
        .await;
    assert!(matches!(r, Err(ServiceError::PhoneTaken)), "{r:?}");
    assert_eq!(store.counts.reads.load(Ordering::SeqCst), 1);
    assert_eq!(store.counts.writes.load(Ordering::SeqCst), 1);
    assert!(
        svc.members
            .get_member(&MemberId::parse("ada").unwrap())
            .await
            .is_err(),
        "nothing written"
    );
}
both_backends!(a_phone_taken_in_a_race_answers_after_one_read_and_one_commit);

/// A member whose old phone claim is missing (damaged data) can still change phone: the change
/// does not depend on deleting a claim that is not there, so it neither spins nor fails.
async fn a_missing_phone_claim_does_not_block_a_phone_change(b: Backend) {
    let api = Api::new(b).await;
    let r = api
        .post(
            "/v1/members",
            &api.admin(),
            json!({"id": "m", "name": "M", "phone": "+8613800000011"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let old = <PhoneClaim as Record>::key(&Phone::parse("+8613800000011").unwrap());
    let store = api.services.ctx.table.store().clone();
    store
        .commit(vec![Write::Delete {
            key: old,
            cond: Cond::Exists,
        }])
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let r = api
        .call(
            "PATCH",
            "/v1/members/m",
            Some(&api.admin()),
            Some(json!({"phone": "+8613800000012"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "answered without retrying"
    );
    let taken = api
        .post(
            "/v1/members",
            &api.admin(),
            json!({"id": "n", "name": "N", "phone": "+8613800000012"}),
        )
        .await;
    assert_eq!(taken.problem_type(), "/problems/phone-taken");
}
both_backends!(a_missing_phone_claim_does_not_block_a_phone_change);

async fn refunds_report_the_purchase_currency_whatever_the_program_currency(b: Backend) {
    let (s, guard) = store(b).await;
    let usd = Api::on_store(s.clone(), Program::default(), None);
    usd.enrol("m").await;
    let now = usd.services.ctx.now().to_rfc3339();
    let r = usd
        .post(
            "/v1/purchases",
            &usd.pos("store-1"),
            purchase("m", "R1", 5000, &now),
        )
        .await;
    assert_eq!(r.status, 201);
    // The program moves to EUR; the refund of a USD sale is still in USD.
    let eur = Api::on_store(
        s,
        Program::from_json(r#"{"currency": "EUR"}"#).unwrap(),
        guard,
    );
    let r = eur
        .post(
            "/v1/purchases/store-1/R1/refunds",
            &eur.pos("store-1"),
            json!({"refund_id": "F1", "amount": {"value": 1000, "currency": "USD"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body["refunded_total"],
        json!({"value": 1000, "currency": "USD"})
    );
    let r = eur
        .post(
            "/v1/purchases/store-1/R1/refunds",
            &eur.pos("store-1"),
            json!({"refund_id": "F2", "amount": {"value": 1000, "currency": "EUR"}}),
        )
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (422, "/problems/currency-mismatch")
    );
}
both_backends!(refunds_report_the_purchase_currency_whatever_the_program_currency);

async fn the_catalog_lists_active_rewards_newest_first_with_no_empty_pages(b: Backend) {
    let api = Api::new(b).await;
    let admin = api.admin();
    for (i, (id, active)) in [
        ("r1", true),
        ("r2", true),
        ("r3", true),
        ("r4", false),
        ("r5", true),
    ]
    .iter()
    .enumerate()
    {
        api.clock
            .set(at("2026-11-01T00:00:00Z") + Duration::hours(i as i64));
        let r = api
            .call(
                "PUT",
                &format!("/v1/rewards/{id}"),
                Some(&admin),
                Some(json!({"name": id, "cost_points": 10, "active": active})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // Deactivating takes a reward out; editing another keeps its place.
    api.call(
        "PUT",
        "/v1/rewards/r2",
        Some(&admin),
        Some(json!({"name": "r2", "cost_points": 10, "active": false})),
    )
    .await;
    api.call(
        "PUT",
        "/v1/rewards/r1",
        Some(&admin),
        Some(json!({"name": "r1 renamed", "cost_points": 12})),
    )
    .await;
    let mut seen = Vec::new();
    let mut path = "/v1/rewards?limit=1".to_owned();
    loop {
        let r = api.get(&path, &api.member("m")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let items = r.body["items"].as_array().unwrap();
        match r.body["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(items.len(), 1, "a page with a cursor is never empty");
                path = format!("/v1/rewards?limit=1&cursor={c}");
            }
            None => {
                seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
                break;
            }
        }
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(seen, vec!["r5", "r3", "r1"]);
}
both_backends!(the_catalog_lists_active_rewards_newest_first_with_no_empty_pages);

#[tokio::test]
async fn the_test_clock_reads_the_instant_set_over_http() {
    let api = Api::new(Backend::Embedded).await;
    for t in ["2027-03-01T00:00:00Z", "2026-11-30T23:59:59.999Z"] {
        let r = api
            .call(
                "PUT",
                "/_local/clock",
                Some(&api.admin()),
                Some(json!({"now": t})),
            )
            .await;
        assert_eq!(r.status, 200);
        let now: DateTime<Utc> = r.body["now"].as_str().unwrap().parse().unwrap();
        assert!(
            now >= at(t) && now - at(t) < Duration::seconds(1),
            "{t} read as {now}"
        );
    }
}

#[tokio::test]
async fn a_token_of_another_data_directory_is_refused_with_the_reason() {
    let api = Api::new(Backend::Embedded).await;
    let other = loyalty_local::auth::DevAuth::from_secret(b"another directory's secret");
    let token = other.mint(&loyalty_local::auth::Role::Admin);
    let r = api.get("/v1/members/m", &token).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (401, "/problems/unauthorized")
    );
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("data directory"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn the_openapi_document_is_the_one_the_members_function_serves() {
    let api = Api::new(Backend::Embedded).await;
    let served = api.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.body, loyalty_members::api_document());
}
