//! Birthday gifts on both store backends: local dates, 29 February, the days-on-file rule,
//! catch-up, exactly-once under concurrent runs, and cost that follows birthdays, not members.

use loyalty::program::Program;
use loyalty_tests::at;
use loyalty_tests::{Api, Backend, both_backends};
use serde_json::{Value, json};
use std::sync::Arc;

fn no_waiting() -> Program {
    Program::from_json(r#"{"birthday": {"min_days_on_file": 0}}"#).unwrap()
}

async fn enrol(api: &Api, id: &str, birthday: &str, tz: Option<&str>) {
    let mut body = json!({"id": id, "name": id, "birthday": birthday});
    if let Some(tz) = tz {
        body["timezone"] = json!(tz);
    }
    let r = api.post("/v1/members", &api.admin(), body).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

async fn run(api: &Api, now: &str) -> Value {
    let r = api
        .post(
            "/_local/jobs/birthday-gifts",
            &api.admin(),
            json!({"now": now}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

async fn gifts_arrive_on_the_local_birthday_and_not_before(b: Backend) {
    let api = Api::with_program(b, no_waiting()).await;
    api.clock.set(at("2026-11-01T00:00:00Z"));
    enrol(&api, "utc", "11-22", None).await;
    enrol(&api, "shanghai", "1990-11-22", Some("Asia/Shanghai")).await;
    enrol(&api, "la", "11-22", Some("America/Los_Angeles")).await;
    // LA holds gold by the time of its birthday: 300 points instead of 100.
    let p = json!({"member": {"id": "la"}, "store_id": "s", "receipt_id": "big", "amount": {"value": 100_000, "currency": "USD"}, "occurred_at": "2026-11-01T00:00:00Z"});
    assert_eq!(
        api.post("/v1/purchases", &api.pos("s"), p).await.body["tier"],
        "gold"
    );

    // 21 Nov 15:00 UTC: 23:00 in Shanghai, still the 21st everywhere.
    let r = run(&api, "2026-11-21T15:00:00Z").await;
    assert_eq!(
        (r["examined"].clone(), r["issued"].clone()),
        (json!(3), json!(0))
    );
    // 16:30 UTC: 00:30 on the 22nd in Shanghai only.
    let r = run(&api, "2026-11-21T16:30:00Z").await;
    assert_eq!(r["issued"], 1);
    assert_eq!(api.balance("shanghai").await, 100);
    assert_eq!(api.balance("utc").await, 0);
    // 22 Nov 00:30 UTC: UTC's birthday; Los Angeles is still on the 21st.
    let r = run(&api, "2026-11-22T00:30:00Z").await;
    assert_eq!(
        (r["issued"].clone(), r["already_issued"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(api.balance("utc").await, 100);
    assert_eq!(api.balance("la").await, 1000);
    // 08:30 UTC: 00:30 in Los Angeles.
    let r = run(&api, "2026-11-22T08:30:00Z").await;
    assert_eq!(
        r,
        json!({"examined": 3, "issued": 1, "already_issued": 2, "ineligible": 0, "failed": 0})
    );
    assert_eq!(api.balance("la").await, 1000 + 300);
    // Running again gives nothing more.
    let r = run(&api, "2026-11-22T09:30:00Z").await;
    assert_eq!(
        (r["issued"].clone(), r["already_issued"].clone()),
        (json!(0), json!(3))
    );
    let gift = &api.ledger("la").await[0];
    assert_eq!(
        (
            gift["kind"].clone(),
            gift["points"].clone(),
            gift["reference"].clone()
        ),
        (json!("birthday_gift"), json!(300), json!("gift:2026"))
    );
}
both_backends!(gifts_arrive_on_the_local_birthday_and_not_before);

async fn a_29_february_birthday_is_celebrated_on_28_february_in_common_years(b: Backend) {
    let api = Api::with_program(b, no_waiting()).await;
    api.clock.set(at("2027-01-01T00:00:00Z"));
    enrol(&api, "leap", "2000-02-29", None).await;
    let r = run(&api, "2027-02-27T12:00:00Z").await;
    assert_eq!(r["issued"], 0);
    let r = run(&api, "2027-02-28T12:00:00Z").await;
    assert_eq!(r["issued"], 1);
    let r = run(&api, "2027-03-01T12:00:00Z").await;
    assert_eq!(
        (r["issued"].clone(), r["already_issued"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(api.balance("leap").await, 100);
}
both_backends!(a_29_february_birthday_is_celebrated_on_28_february_in_common_years);

async fn a_birthday_set_today_waits_thirty_days_on_file(b: Backend) {
    let api = Api::new(b).await; // default rule: 30 days on file
    api.clock.set(at("2026-11-22T09:00:00Z"));
    enrol(&api, "fresh", "11-22", None).await;
    let r = run(&api, "2026-11-22T10:00:00Z").await;
    assert_eq!(
        r,
        json!({"examined": 1, "issued": 0, "already_issued": 0, "ineligible": 1, "failed": 0})
    );
    assert_eq!(api.balance("fresh").await, 0);
    // Set well ahead of the day: gifted, including by catch-up after missed runs.
    api.clock.set(at("2026-10-01T00:00:00Z"));
    enrol(&api, "planned", "11-19", None).await;
    let r = run(&api, "2026-11-22T10:00:00Z").await;
    assert_eq!(r["issued"], 1, "three days of catch-up: {r}");
    assert_eq!(api.balance("planned").await, 100);
    let r = run(&api, "2026-11-23T10:00:00Z").await;
    assert_eq!(r["issued"], 0);
}
both_backends!(a_birthday_set_today_waits_thirty_days_on_file);

async fn five_concurrent_runs_over_500_birthdays_give_500_gifts(b: Backend) {
    let api = Arc::new(Api::with_program(b, no_waiting()).await);
    api.clock.set(at("2026-11-01T00:00:00Z"));
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move { enrol(&api, &format!("b{i:03}"), "11-22", None).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let now = at("2026-11-22T12:00:00Z");
    let runs: Vec<_> = (0..5)
        .map(|_| {
            let svc = api.services.clone();
            tokio::spawn(async move { svc.birthdays.birthday_gifts(now).await.unwrap() })
        })
        .collect();
    let mut issued = 0;
    for r in runs {
        let r = r.await.unwrap();
        assert_eq!(r.examined, 500);
        assert_eq!(r.issued + r.already_issued, 500);
        issued += r.issued;
    }
    assert_eq!(issued, 500, "exactly one gift per member across all runs");
    for i in (0..500).step_by(25) {
        let id = format!("b{i:03}");
        assert_eq!(api.balance(&id).await, 100);
        assert_eq!(api.ledger(&id).await.len(), 1);
    }
}
both_backends!(five_concurrent_runs_over_500_birthdays_give_500_gifts);

async fn a_configured_birthday_voucher_respects_stock(b: Backend) {
    let program =
        Program::from_json(r#"{"birthday": {"min_days_on_file": 0, "reward_id": "cake"}}"#)
            .unwrap();
    let api = Api::with_program(b, program).await;
    api.clock.set(at("2026-11-01T00:00:00Z"));
    let r = api
        .call(
            "PUT",
            "/v1/rewards/cake",
            Some(&api.admin()),
            Some(json!({"name": "Cake", "cost_points": 500, "stock": 1})),
        )
        .await;
    assert_eq!(r.status, 201);
    enrol(&api, "a", "11-22", None).await;
    enrol(&api, "b", "11-22", None).await;
    let r = run(&api, "2026-11-22T12:00:00Z").await;
    assert_eq!(r["issued"], 2);
    let mut vouchers = 0;
    for id in ["a", "b"] {
        assert_eq!(
            api.balance(id).await,
            100,
            "no points charged for a gifted voucher"
        );
        let list = api
            .get(&format!("/v1/members/{id}/redemptions"), &api.member(id))
            .await
            .body;
        vouchers += list["items"].as_array().unwrap().len();
    }
    assert_eq!(
        vouchers, 1,
        "stock of one: one voucher, and the other member still gets the points"
    );
}
both_backends!(a_configured_birthday_voucher_respects_stock);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_job_reads_only_the_birthdays_in_play() {
    let (api, counts) = Api::counted(no_waiting());
    api.clock.set(at("2026-01-01T00:00:00Z"));
    let members = 3650;
    let day0: chrono::NaiveDate = "2026-01-01".parse().unwrap();
    for i in 0..members {
        let d = day0 + chrono::Duration::days(i64::from(i % 365));
        let r = api
            .services
            .members
            .enrol(
                loyalty::domain::MemberId::parse(&format!("m{i}")).unwrap(),
                serde_json::from_value::<loyalty_members::EnrolRequest>(
                    json!({"name": "M", "birthday": d.format("%m-%d").to_string()}),
                )
                .unwrap()
                .into(),
                None,
                None,
                "test",
            )
            .await;
        r.unwrap();
    }
    let before = counts.snapshot();
    let run = api
        .services
        .birthdays
        .birthday_gifts(at("2026-07-01T12:00:00Z"))
        .await
        .unwrap();
    let after = counts.snapshot();
    let items_read = after.2 - before.2;
    // Six dates in play (27 Jun to 2 Jul), ten members each.
    assert_eq!(run.examined, 60);
    // Due: 28 Jun to 1 Jul (three days of catch-up); 27 Jun is past the window, 2 Jul is tomorrow.
    assert_eq!(run.issued, 40);
    assert!(
        items_read <= 3 * 60,
        "read {items_read} items for {members} members"
    );
}
