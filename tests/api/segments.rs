//! Segments and analytics, on both backends, through the HTTP API with the test clock: a member
//! walked through every lifecycle stage, a fixture whose RFM scores, value segments, overview
//! and retention cohorts are computed by hand below, a run in 1 part against 4 parts, and the
//! daily history's sizes following its flows.

use chrono::Duration;
use loyalty::clock::Clock;
use loyalty::program::Program;
use loyalty_tests::at;
use loyalty_tests::{Api, Backend, both_backends};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub(crate) async fn enrol_at(api: &Api, id: &str, at: &str) {
    api.clock.set(loyalty_tests::at(at));
    api.enrol(id).await;
}

/// A purchase of `amount` minor units at `at` (the clock is moved there; the till's time is
/// the clock's).
pub(crate) async fn buy_at(api: &Api, id: &str, at: &str, amount: i64) -> Value {
    api.clock.set(loyalty_tests::at(at));
    let receipt = format!("{id}-{at}");
    let r = api
        .post(
            "/v1/purchases",
            &api.pos("store-1"),
            json!({"member": {"id": id}, "store_id": "store-1", "receipt_id": receipt,
                   "amount": {"value": amount, "currency": "USD"}, "occurred_at": at}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body
}

/// A segments run as of the clock's instant as set (the test clock then moves on in real time).
pub(crate) async fn run_job(api: &Api, parts: u32) -> Value {
    let now = api.clock.now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    run_job_at(api, parts, &now).await
}

async fn run_job_at(api: &Api, parts: u32, now: &str) -> Value {
    let r = api
        .post(
            "/_local/jobs/segments",
            &api.admin(),
            json!({"parts": parts, "now": now}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

async fn segments_of(api: &Api, id: &str) -> Value {
    let r = api.get(&format!("/v1/members/{id}"), &api.admin()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["segments"].clone()
}

/// Every member id a segment lists, following cursors.
pub(crate) async fn listing(api: &Api, segment: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = format!("/v1/segments/{segment}/members?limit=7");
    loop {
        let r = api.get(&path, &api.admin()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        for m in r.body["items"].as_array().unwrap() {
            out.push(m["id"].as_str().unwrap().to_owned());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/segments/{segment}/members?limit=7&cursor={c}"),
            None => return out,
        }
    }
}

/// One segment's size as `GET /v1/segments` answers it.
async fn size_of(api: &Api, segment: &str) -> u64 {
    let r = api.get("/v1/segments", &api.admin()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let items = r.body["items"].as_array().unwrap();
    let s = items.iter().find(|s| s["id"] == segment).unwrap();
    s["size"].as_u64().unwrap()
}

/// `GET /v1/segments` as id → size, after checking each size is what its listing returns.
pub(crate) async fn sizes_matching_listings(api: &Api) -> BTreeMap<String, u64> {
    let r = api.get("/v1/segments", &api.admin()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let items: Vec<&Value> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] != "custom")
        .collect();
    assert_eq!(
        items.len(),
        16,
        "every built-in segment, empty ones included"
    );
    let mut out = BTreeMap::new();
    for s in items {
        let id = s["id"].as_str().unwrap().to_owned();
        let size = s["size"].as_u64().unwrap();
        assert_eq!(
            listing(api, &id).await.len() as u64,
            size,
            "{id}: the size is what the listing returns"
        );
        assert_eq!(s["kind"], id.split(':').next().unwrap());
        out.insert(id, size);
    }
    out
}

async fn walk_from_prospect_through_every_stage_and_back_to_active(backend: Backend) {
    let api = Api::new(backend).await;
    let start = at("2027-01-01T10:00:00Z");
    enrol_at(&api, "w", "2027-01-01T10:00:00Z").await;
    assert_eq!(segments_of(&api, "w").await["lifecycle"], "prospect");
    assert_eq!(listing(&api, "lifecycle:prospect").await, vec!["w"]);
    buy_at(&api, "w", "2027-01-01T10:00:00Z", 5000).await;
    // At once, without the job: new; R 5 (0 days), F 1 → 1, M 5000 → 2: potential.
    assert_eq!(
        segments_of(&api, "w").await,
        json!({"lifecycle": "new", "value": "potential", "rfm": {"r": 5, "f": 1, "m": 2}})
    );
    assert_eq!(listing(&api, "lifecycle:new").await, vec!["w"]);
    assert!(listing(&api, "lifecycle:prospect").await.is_empty());

    // The job runs every day; the stage moves on the days the rules say.
    let expect = [
        (29, "new"),
        (30, "active"),
        (89, "active"),
        (90, "dormant"),
        (179, "dormant"),
        (180, "churned"),
    ];
    for day in 1..=199 {
        api.clock.set(start + Duration::days(day));
        run_job(&api, 1).await;
        if let Some((_, stage)) = expect.iter().find(|(d, _)| *d == day) {
            assert_eq!(
                segments_of(&api, "w").await["lifecycle"],
                *stage,
                "day {day}"
            );
            assert_eq!(
                listing(&api, &format!("lifecycle:{stage}")).await,
                vec!["w"],
                "day {day}"
            );
        }
    }
    // Day 200: a purchase by a churned member reactivates them at once, no job needed.
    buy_at(&api, "w", "2027-07-20T10:00:00Z", 2000).await;
    assert_eq!(segments_of(&api, "w").await["lifecycle"], "reactivated");
    assert_eq!(listing(&api, "lifecycle:reactivated").await, vec!["w"]);
    assert!(listing(&api, "lifecycle:churned").await.is_empty());
    for day in 201..=230 {
        api.clock.set(start + Duration::days(day));
        run_job(&api, 1).await;
        let want = if day < 230 { "reactivated" } else { "active" };
        assert_eq!(segments_of(&api, "w").await["lifecycle"], want, "day {day}");
    }
    // The daily history counts the moves, and only them: into dormant once on day 90, out
    // once on day 180, though the value segment moved on other days.
    let rows = history(&api, "lifecycle:dormant").await;
    let moves: Vec<(String, u64, u64)> = rows
        .iter()
        .filter(|r| r["entered"] != 0 || r["left"] != 0)
        .map(|r| {
            (
                r["date"].as_str().unwrap().to_owned(),
                r["entered"].as_u64().unwrap(),
                r["left"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        vec![
            ("2027-04-01".to_owned(), 1, 0),
            ("2027-06-30".to_owned(), 0, 1)
        ]
    );
    // The events tell the same story, each starting where the last ended.
    let events = api.assert_events_account_for_the_balance("w").await;
    let stages: Vec<(Value, Value)> = events
        .iter()
        .filter(|e| e["type"] == "segment.changed")
        .filter(|e| e["data"]["from"]["lifecycle"] != e["data"]["to"]["lifecycle"])
        .map(|e| {
            (
                e["data"]["from"]["lifecycle"].clone(),
                e["data"]["to"]["lifecycle"].clone(),
            )
        })
        .collect();
    let path = [
        "prospect",
        "new",
        "active",
        "dormant",
        "churned",
        "reactivated",
        "active",
    ];
    let mut want = vec![(Value::Null, json!("prospect"))];
    want.extend(path.windows(2).map(|w| (json!(w[0]), json!(w[1]))));
    assert_eq!(stages, want);
}
both_backends!(walk_from_prospect_through_every_stage_and_back_to_active);

async fn rfm_value_segments_overview_and_retention_match_numbers_computed_by_hand(
    backend: Backend,
) {
    let api = Api::new(backend).await;
    // hv: 8 purchases of 100.00 from April to June 2027.
    enrol_at(&api, "hv", "2026-11-05T09:00:00Z").await;
    // risk: 5 purchases of 60.00 in Nov–Dec 2026, none since.
    enrol_at(&api, "risk", "2026-11-20T09:00:00Z").await;
    for d in [
        "2026-11-25",
        "2026-12-01",
        "2026-12-03",
        "2026-12-05",
        "2026-12-10",
    ] {
        buy_at(&api, "risk", &format!("{d}T12:00:00Z"), 6000).await;
    }
    // reg: 2 purchases of 40.00 in February and March 2027.
    enrol_at(&api, "reg", "2027-01-10T09:00:00Z").await;
    buy_at(&api, "reg", "2027-02-01T12:00:00Z", 4000).await;
    buy_at(&api, "reg", "2027-03-01T12:00:00Z", 4000).await;
    for d in [
        "2027-04-01",
        "2027-04-08",
        "2027-04-15",
        "2027-04-22",
        "2027-05-01",
        "2027-05-08",
        "2027-05-15",
        "2027-06-10",
    ] {
        buy_at(&api, "hv", &format!("{d}T12:00:00Z"), 10000).await;
    }
    // pot: enrolled this month, one purchase of 30.00.
    enrol_at(&api, "pot", "2027-06-01T09:00:00Z").await;
    buy_at(&api, "pot", "2027-06-10T12:00:00Z", 3000).await;
    // pros: enrolled, never bought.
    enrol_at(&api, "pros", "2027-06-12T09:00:00Z").await;

    api.clock.set(at("2027-06-15T12:00:00Z"));
    let run = run_job(&api, 1).await;
    assert_eq!(run["examined"], 5);
    // Fewer than 100 purchasing members: the fixed cut points are in force.
    assert_eq!(
        run["cutpoints"],
        json!({"r": [180, 90, 60, 30], "f": [2, 3, 5, 8], "m": [5000, 10000, 25000, 50000]})
    );
    // By hand, on 15 June 2027 (window July 2026 – June 2027):
    // hv:   R 5 days → 5, F 8 → 5, M 80000 → 5: high_value; last purchase 5 days ago, first 75
    //       days ago: active.
    // risk: R 187 days (10 Dec → 15 Jun) → 1, F 5 → 4, M 30000 → 4: at_risk; ≥ 180 days: churned.
    // reg:  R 106 days → 2, F 2 → 2, M 8000 → 2: regular; 90 ≤ 106 < 180: dormant.
    // pot:  R 5 → 5, F 1 → 1, M 3000 → 1: potential; first purchase 5 days ago: new.
    // pros: no purchase: prospect, no value segment.
    for (id, lifecycle, value, rfm) in [
        (
            "hv",
            "active",
            json!("high_value"),
            json!({"r": 5, "f": 5, "m": 5}),
        ),
        (
            "risk",
            "churned",
            json!("at_risk"),
            json!({"r": 1, "f": 4, "m": 4}),
        ),
        (
            "reg",
            "dormant",
            json!("regular"),
            json!({"r": 2, "f": 2, "m": 2}),
        ),
        (
            "pot",
            "new",
            json!("potential"),
            json!({"r": 5, "f": 1, "m": 1}),
        ),
        ("pros", "prospect", Value::Null, Value::Null),
    ] {
        assert_eq!(
            segments_of(&api, id).await,
            json!({"lifecycle": lifecycle, "value": value, "rfm": rfm}),
            "{id}"
        );
    }
    let sizes = sizes_matching_listings(&api).await;
    for (segment, n) in [
        ("lifecycle:prospect", 1),
        ("lifecycle:new", 1),
        ("lifecycle:active", 1),
        ("lifecycle:dormant", 1),
        ("lifecycle:churned", 1),
        ("lifecycle:reactivated", 0),
        ("value:high_value", 1),
        ("value:potential", 1),
        ("value:at_risk", 1),
        ("value:regular", 1),
        ("tier:silver", 5),
        ("tier:gold", 0),
        ("tier:diamond", 0),
    ] {
        assert_eq!(sizes[segment], n, "{segment}");
    }
    // "Dormant but valuable" is a listing away.
    let r = api
        .get("/v1/segments/value:at_risk/members", &api.admin())
        .await;
    assert_eq!(
        r.body["items"][0],
        json!({"id": "risk", "tier": "silver", "lifecycle": "churned", "value": "at_risk",
               "last_purchase_at": "2026-12-10T12:00:00Z",
               "qualifying_spend": {"value": 30000, "currency": "USD"}})
    );

    // Overview by hand: 1 point per 1.00 at silver. Balances: hv 8 × 100 = 800, risk 5 × 60 =
    // 300, reg 2 × 40 = 80, pot 30: 1210 outstanding, all earned since this first run's
    // baseline (none). Active: hv and pot. Purchased in the last 90 days: hv and pot; of them
    // hv bought twice: 1 / 2.
    let r = api.get("/v1/analytics/overview", &api.admin()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"as_of": "2027-06-15T12:00:00Z", "members": 5, "active_members": 2,
               "points_outstanding": 1210, "points_pending": 0, "points_earned_30d": 1210,
               // At the default point value (100 points = 100 cents): $12.10.
               "points_outstanding_value": {"value": 1210, "currency": "USD"},
               "points_redeemed_30d": 0, "points_expired_30d": 0,
               "repeat_purchase_rate_90d": 0.5,
               "tiers": {"silver": 5, "gold": 0, "diamond": 0},
               "lifecycle": {"prospect": 1, "new": 1, "active": 1, "dormant": 1, "churned": 1,
                             "reactivated": 0}})
    );

    // Retention by hand (k = months after the enrolment month):
    // 2026-11: hv and risk. Nov: risk; Dec: risk; Jan–Mar: nobody; Apr, May, Jun: hv.
    // 2027-01: reg. Jan: no; Feb: yes; Mar: yes; Apr–Jun: no.
    // 2027-06: pot and pros. Jun: pot.
    let r = api
        .get("/v1/analytics/retention?months=12", &api.admin())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cohorts = r.body["cohorts"].as_array().unwrap();
    assert_eq!(cohorts.len(), 12);
    assert_eq!(cohorts[0]["month"], "2026-07");
    let by_month: BTreeMap<&str, &Value> = cohorts
        .iter()
        .map(|c| (c["month"].as_str().unwrap(), c))
        .collect();
    assert_eq!(
        *by_month["2026-11"],
        json!({"month": "2026-11", "members": 2, "retained": [1, 1, 0, 0, 0, 1, 1, 1]})
    );
    assert_eq!(
        *by_month["2027-01"],
        json!({"month": "2027-01", "members": 1, "retained": [0, 1, 1, 0, 0, 0]})
    );
    assert_eq!(
        *by_month["2027-06"],
        json!({"month": "2027-06", "members": 2, "retained": [1]})
    );
    assert_eq!(
        *by_month["2026-08"],
        json!({"month": "2026-08", "members": 0, "retained": vec![0; 11]})
    );
    let r = api
        .get("/v1/analytics/retention?months=2", &api.admin())
        .await;
    assert_eq!(r.body["cohorts"].as_array().unwrap().len(), 2);

    // A full refund takes the purchase back out of frequency and spend: pot has no purchase
    // left in the window, so no value segment, at once.
    let r = api
        .post(
            "/v1/purchases/store-1/pot-2027-06-10T12:00:00Z/refunds",
            &api.pos("store-1"),
            json!({"refund_id": "F1", "amount": {"value": 3000, "currency": "USD"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(segments_of(&api, "pot").await["value"], Value::Null);
    api.assert_events_account_for_the_balance("pot").await;
}
both_backends!(rfm_value_segments_overview_and_retention_match_numbers_computed_by_hand);

/// Forty members with varied histories, the same on two stores.
async fn fixture(api: &Api) {
    for i in 0..40 {
        let id = format!("m{i:02}");
        enrol_at(api, &id, "2027-01-02T08:00:00Z").await;
        // Purchases spread over the spring: count, amount and recency vary with i.
        for k in 0..(i % 6) {
            let day = 1 + (i * 7 + k * 13) % 140;
            let at = at("2027-01-03T12:00:00Z") + Duration::days(day as i64);
            buy_at(
                api,
                &id,
                &at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                500 + (i as i64 * 977 + k as i64 * 131) % 20_000,
            )
            .await;
        }
    }
}

fn quantile_program() -> Program {
    // Quintiles from 10 purchasing members up, so this fixture uses them.
    Program::from_json(r#"{"rfm": {"min_members_for_quantiles": 10}}"#).unwrap()
}

async fn history(api: &Api, segment: &str) -> Vec<Value> {
    let r = api
        .get(
            &format!("/v1/segments/{segment}/history?from=2027-01-01&to=2027-12-31"),
            &api.admin(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["items"].as_array().unwrap().clone()
}

async fn one_part_and_four_parts_give_the_same_result_and_history_follows_its_flows(
    backend: Backend,
) {
    let one = Api::with_program(backend, quantile_program()).await;
    let four = Api::with_program(backend, quantile_program()).await;
    fixture(&one).await;
    fixture(&four).await;
    let mut runs = Vec::new();
    for (step, at) in [
        "2027-06-01T02:00:00Z",
        "2027-06-02T02:00:00Z",
        "2027-07-15T02:00:00Z",
        "2027-09-01T02:00:00Z",
    ]
    .into_iter()
    .enumerate()
    {
        for api in [&one, &four] {
            api.clock.set(loyalty_tests::at(at));
            // Between runs, writes move members at once: a purchase, an erasure.
            if step == 2 {
                buy_at(api, "m07", at, 4000).await;
                let r = api
                    .call("DELETE", "/v1/members/m11", Some(&api.admin()), None)
                    .await;
                assert_eq!(r.status, 200, "{}", r.body);
            }
        }
        let a = run_job_at(&one, 1, at).await;
        let b = run_job_at(&four, 4, at).await;
        for k in ["examined", "changed", "failed", "cutpoints"] {
            assert_eq!(a[k], b[k], "run {step}: {k}");
        }
        assert_eq!(b["parts"], 4);
        assert_eq!(a["failed"], 0);
        runs.push(a);
        let (sa, sb) = (
            sizes_matching_listings(&one).await,
            sizes_matching_listings(&four).await,
        );
        assert_eq!(sa, sb, "run {step}: sizes");
        for i in 0..40 {
            let id = format!("m{i:02}");
            let path = format!("/v1/members/{id}");
            let (x, y) = (
                one.get(&path, &one.admin()).await,
                four.get(&path, &four.admin()).await,
            );
            assert_eq!(x.status, y.status);
            assert_eq!(x.body["segments"], y.body["segments"], "run {step}: {id}");
        }
        let (oa, ob) = (
            one.get("/v1/analytics/overview", &one.admin()).await,
            four.get("/v1/analytics/overview", &four.admin()).await,
        );
        assert_eq!(oa.body, ob.body, "run {step}: overview");
    }
    // The fixture has ≥ 10 purchasing members, so the cut points are quintiles, not the fixed.
    assert_ne!(
        runs[0]["cutpoints"],
        json!({"r": [180, 90, 60, 30], "f": [2, 3, 5, 8], "m": [5000, 10000, 25000, 50000]})
    );
    // The first run counted everyone in; a second the next day wrote only what time moved.
    assert_eq!(runs[0]["examined"], 40);
    assert!(runs[1]["changed"].as_u64().unwrap() < 40);

    // Daily history: each size is the previous plus entered minus left, for every segment.
    for api in [&one, &four] {
        let r = api.get("/v1/segments", &api.admin()).await;
        for s in r.body["items"].as_array().unwrap() {
            let id = s["id"].as_str().unwrap();
            let rows = history(api, id).await;
            assert_eq!(rows.len(), 4, "{id}: one row per day with a run");
            let mut size = 0i64;
            for row in &rows {
                let (n, e, l) = (
                    row["size"].as_i64().unwrap(),
                    row["entered"].as_i64().unwrap(),
                    row["left"].as_i64().unwrap(),
                );
                assert_eq!(n, size + e - l, "{id} {row}");
                size = n;
            }
            // The last row's size is the segment's size (no write since the last run).
            assert_eq!(size as u64, s["size"].as_u64().unwrap(), "{id}");
        }
    }
    // The erased member left its segments: 39 members, in the tiers.
    let o = one.get("/v1/analytics/overview", &one.admin()).await;
    assert_eq!(o.body["members"], 39);
    let tiers: u64 = ["silver", "gold", "diamond"]
        .iter()
        .map(|t| o.body["tiers"][t].as_u64().unwrap())
        .sum();
    assert_eq!(tiers, 39);
    // Members are scored with the cut points in force when a run starts, and a run puts the
    // quintiles of what it saw in force when it ends: run again at the same instant and the
    // members move to the new cut points once; a third run finds nothing to write.
    run_job_at(&four, 4, "2027-09-01T02:00:00Z").await;
    let again = run_job_at(&four, 4, "2027-09-01T02:00:00Z").await;
    assert_eq!(
        (again["examined"].clone(), again["changed"].clone()),
        (json!(39), json!(0))
    );
}
both_backends!(one_part_and_four_parts_give_the_same_result_and_history_follows_its_flows);

async fn bad_segment_requests_get_a_problem_and_write_nothing(backend: Backend) {
    let api = Api::new(backend).await;
    let admin = api.admin();
    api.enrol("m").await;
    let before = loyalty_tests::all_items(api.services.ctx.table.store().as_ref()).await;
    // No run yet: the analytics say so.
    let r = api.get("/v1/analytics/overview", &admin).await;
    assert_eq!((r.status, r.problem_type()), (404, "/problems/not-found"));
    for (path, status) in [
        ("/v1/segments/lifecycle:sleepy/members", 404),
        (
            "/v1/segments/nope/history?from=2027-01-01&to=2027-01-02",
            404,
        ),
        ("/v1/segments/lifecycle:new/history", 400),
        ("/v1/segments/lifecycle:new/history?from=2027-01-01", 400),
        (
            "/v1/segments/lifecycle:new/history?from=2027-13-01&to=2027-01-02",
            400,
        ),
        (
            "/v1/segments/lifecycle:new/history?from=2027-02-01&to=2027-01-02",
            422,
        ),
        (
            "/v1/segments/lifecycle:new/history?from=2026-01-01&to=2027-01-02",
            422,
        ),
        ("/v1/segments/lifecycle:new/members?limit=0", 422),
        ("/v1/segments/lifecycle:new/members?cursor=forged", 400),
        ("/v1/analytics/retention?months=13", 422),
        ("/v1/analytics/retention?months=x", 400),
    ] {
        let r = api.get(path, &admin).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        if status >= 400 {
            assert!(r.content_type().starts_with("application/problem+json"));
        }
    }
    for body in [
        json!({"parts": 0}),
        json!({"parts": 17}),
        json!({"part": 1}),
    ] {
        let r = api
            .post("/_local/jobs/segments", &admin, body.clone())
            .await;
        assert!(
            [400, 422].contains(&r.status),
            "{body}: {} {}",
            r.status,
            r.body
        );
    }
    // Nothing ran: still no day to report, and not one item written.
    let r = api.get("/v1/analytics/overview", &admin).await;
    assert_eq!(r.status, 404);
    let after = loyalty_tests::all_items(api.services.ctx.table.store().as_ref()).await;
    assert_eq!(after, before);
}
both_backends!(bad_segment_requests_get_a_problem_and_write_nothing);

async fn members_written_before_sizes_were_kept_are_counted_in_by_their_next_write_or_the_run(
    backend: Backend,
) {
    use loyalty::store::{Cond, Write};
    let api = Api::new(backend).await;
    for id in ["old-a", "old-b", "old-c"] {
        enrol_at(&api, id, "2027-01-01T10:00:00Z").await;
    }
    // Make the table as it was before sizes were kept: no size items, no member marked.
    let store = api.services.ctx.table.store();
    use loyalty::table::{Record, SIZE_SHARDS, SegmentSizes};
    let size_keys: Vec<_> = (0..SIZE_SHARDS).map(|n| SegmentSizes::key(&n)).collect();
    let (mut writes, mut unmarked) = (Vec::new(), 0);
    for mut item in loyalty_tests::all_items(store.as_ref()).await {
        if size_keys.contains(&item.key) {
            writes.push(Write::Delete {
                key: item.key,
                cond: Cond::Always,
            });
        } else if item.attrs.remove("sz").is_some() {
            unmarked += 1;
            writes.push(Write::Put {
                item,
                cond: Cond::Always,
            });
        }
    }
    assert_eq!(
        unmarked, 3,
        "every member enrolled now is marked as counted"
    );
    store.commit(writes).await.unwrap();
    let size = |sizes: &BTreeMap<String, u64>, s: &str| sizes[s];
    assert_eq!(size_of(&api, "tier:silver").await, 0, "nobody counted yet");
    // A member's next write counts them in whole; an unmarked member is not taken out twice.
    buy_at(&api, "old-a", "2027-01-02T10:00:00Z", 1000).await;
    assert_eq!(size_of(&api, "tier:silver").await, 1);
    assert_eq!(size_of(&api, "lifecycle:new").await, 1);
    assert_eq!(size_of(&api, "lifecycle:prospect").await, 0);
    // The nightly run writes every member not yet counted, once: then sizes are exact.
    api.clock.set(at("2027-01-03T02:00:00Z"));
    run_job(&api, 2).await;
    let sizes = sizes_matching_listings(&api).await;
    assert_eq!(size(&sizes, "tier:silver"), 3);
    assert_eq!(size(&sizes, "lifecycle:prospect"), 2);
    assert_eq!(size(&sizes, "lifecycle:new"), 1);
    let again = run_job(&api, 2).await;
    assert_eq!(
        again["changed"], 0,
        "a second run has nobody left to count in"
    );
}
both_backends!(
    members_written_before_sizes_were_kept_are_counted_in_by_their_next_write_or_the_run
);

#[tokio::test]
async fn segment_sizes_are_one_round_trip_whatever_the_membership() {
    let (api, counts) = Api::counted(Program::default());
    api.clock.set(at("2027-01-01T10:00:00Z"));
    for i in 0..40 {
        api.enrol(&format!("m{i}")).await;
    }
    let before = counts.snapshot();
    let r = api.get("/v1/segments", &api.admin()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let after = counts.snapshot();
    // The built-in sizes (one batch read) and, beside it, the custom segments' definitions
    // (one query; none here, so no read of their sizes).
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (2, 0),
        "two reads at once, no write"
    );
    assert_eq!(r.body["items"][10]["id"], "tier:silver");
    assert_eq!(r.body["items"][10]["size"], 40);
}
