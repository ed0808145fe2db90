//! Custom segments through the HTTP API on both backends: tags, three definitions whose members
//! are counted by hand, a build that lists them with sizes equal to the listings, a purchase
//! seen live on the member and in the listing after the nightly run, a day passing that moves
//! another member, a changed rule rebuilt while the old listing is served, erasure, deletion,
//! the limit of 100, and every refusal with its path, writing nothing.

use super::segments::{listing, run_job};
use loyalty::clock::Clock;
use loyalty_tests::{Api, Backend, at, both_backends};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// A purchase at `store` now with one line per (category, amount).
async fn buy_lines(api: &Api, member: &str, receipt: &str, store: &str, lines: &[(&str, i64)]) {
    let now = api.clock.now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let total: i64 = lines.iter().map(|(_, a)| a).sum();
    let lines: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, (c, a))| {
            json!({"sku": format!("sku-{i}"), "category": c, "quantity": 1,
                   "amount": {"value": a, "currency": "USD"}})
        })
        .collect();
    let r = api
        .post(
            "/v1/purchases",
            &api.pos(store),
            json!({"member": {"id": member}, "store_id": store, "receipt_id": receipt,
                   "amount": {"value": total, "currency": "USD"}, "occurred_at": now, "lines": lines}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// `PUT /v1/segments/{id}` by an administrator.
async fn put_segment(api: &Api, id: &str, body: Value) -> loyalty_tests::Response {
    let path = format!("/v1/segments/{id}");
    api.call("PUT", &path, Some(&api.admin()), Some(body)).await
}

async fn define(api: &Api, slug: &str, rule: Value) -> loyalty_tests::Response {
    put_segment(
        api,
        &format!("custom:{slug}"),
        json!({"name": slug, "rule": rule}),
    )
    .await
}

async fn set_tags(api: &Api, member: &str, tags: Value, token: &str) -> loyalty_tests::Response {
    api.call(
        "PUT",
        &format!("/v1/members/{member}/tags"),
        Some(token),
        Some(json!({"tags": tags})),
    )
    .await
}

/// A build run now (what the five-minute schedule and `loyalty-local`'s builder do); the run's
/// `now` is in its answer's `"now"`.
async fn build(api: &Api) -> Value {
    let now = api.clock.now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let r = api
        .post(
            "/_local/jobs/segments",
            &api.admin(),
            json!({"build": true, "parts": 2, "now": now}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut out = r.body;
    out["now"] = Value::from(now);
    out
}

async fn segment(api: &Api, slug: &str) -> Value {
    let r = api
        .get(&format!("/v1/segments/custom:{slug}"), &api.analyst())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// The listing as a set, after checking that the size `GET /v1/segments` and `GET` of the
/// segment give is its length.
async fn members_of(api: &Api, slug: &str) -> BTreeSet<String> {
    let id = format!("custom:{slug}");
    let listed: BTreeSet<String> = listing(api, &id).await.into_iter().collect();
    let r = api.get("/v1/segments", &api.admin()).await;
    let all = r.body["items"].as_array().unwrap();
    let row = all
        .iter()
        .find(|s| s["id"] == id)
        .expect("listed in /v1/segments");
    assert_eq!(row["kind"], "custom");
    assert_eq!(row["size"].as_u64().unwrap(), listed.len() as u64, "{id}");
    assert_eq!(
        segment(api, slug).await["size"].as_u64(),
        Some(listed.len() as u64)
    );
    listed
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

async fn custom_of(api: &Api, member: &str) -> Value {
    let r = api
        .get(&format!("/v1/members/{member}"), &api.support())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["custom_segments"].clone()
}

fn tea() -> Value {
    json!({"field": "categories_bought_12m", "op": "contains", "value": "tea"})
}
fn vip() -> Value {
    json!({"field": "tags", "op": "contains", "value": "vip"})
}

async fn definitions_list_exactly_the_members_counted_by_hand_and_move_with_purchases_time_and_changes(
    backend: Backend,
) {
    let api = Api::new(backend).await;
    api.clock.set(at("2027-03-01T10:00:00Z"));
    for id in ["a", "b", "c", "d", "e"] {
        api.enrol(id).await;
    }
    buy_lines(&api, "a", "A1", "store-1", &[("tea", 500)]).await;
    buy_lines(&api, "a", "A2", "store-1", &[("tea", 300), ("cake", 200)]).await;
    buy_lines(&api, "b", "B1", "store-2", &[("coffee", 400)]).await;
    buy_lines(&api, "c", "C1", "store-1", &[("tea", 100), ("coffee", 100)]).await;
    buy_lines(&api, "e", "E1", "store-2", &[("tea", 900)]).await;

    // Tags: support may set them; in lower case; the member may not.
    let r = set_tags(&api, "a", json!(["VIP", "wechat-group-7"]), &api.support()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["tags"], json!(["vip", "wechat-group-7"]));
    assert_eq!(
        set_tags(&api, "b", json!(["vip"]), &api.admin())
            .await
            .status,
        200
    );
    assert_eq!(
        set_tags(&api, "c", json!(["vip"]), &api.member("c"))
            .await
            .status,
        403
    );
    let r = api.get("/v1/members/c/tags", &api.analyst()).await;
    assert_eq!(r.body["tags"], json!([]), "a refused write wrote nothing");

    // Three definitions, counted by hand: tea buyers a, c, e; VIPs a, b; tea buyers who are
    // not VIPs and shop mostly at store-2: e.
    let r = define(&api, "tea-lovers", tea()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"], "building");
    assert_eq!(r.body["size"], Value::Null);
    assert_eq!(define(&api, "vips", vip()).await.status, 201);
    let third = json!({"all": [tea(), {"not": vip()},
        {"field": "home_store", "op": "eq", "value": "store-2"}]});
    assert_eq!(define(&api, "tea-not-vip", third).await.status, 201);
    let recent = json!({"field": "days_since_last_purchase", "op": "lte", "value": 30});
    assert_eq!(define(&api, "recent", recent).await.status, 201);
    // Before its build a listing is empty, and says it was never evaluated.
    let r = api
        .get("/v1/segments/custom:vips/members", &api.admin())
        .await;
    assert_eq!((r.status, r.body["items"].clone()), (200, json!([])));
    assert_eq!(r.body["evaluated_at"], Value::Null);

    let run = build(&api).await;
    let built_at = chrono::DateTime::parse_from_rfc3339(run["now"].as_str().unwrap()).unwrap();
    assert_eq!(run["listed"], 4, "{run}");
    assert_eq!(run["examined"], 5, "{run}");
    assert_eq!(members_of(&api, "tea-lovers").await, set(&["a", "c", "e"]));
    assert_eq!(members_of(&api, "vips").await, set(&["a", "b"]));
    assert_eq!(members_of(&api, "tea-not-vip").await, set(&["e"]));
    assert_eq!(members_of(&api, "recent").await, set(&["a", "b", "c", "e"]));
    let s = segment(&api, "vips").await;
    assert_eq!(s["status"], "ready");
    let evaluated = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v["evaluated_at"].as_str().unwrap()).unwrap()
    };
    assert_eq!(evaluated(&s), built_at);
    let r = api
        .get("/v1/segments/custom:vips/members", &api.admin())
        .await;
    assert_eq!(
        evaluated(&r.body),
        built_at,
        "the listing states its evaluation"
    );
    // A second build finds nothing to do.
    assert_eq!(build(&api).await["examined"], 0);

    // Operators see a member's custom segments live; the member does not.
    assert_eq!(
        custom_of(&api, "a").await,
        json!(["custom:recent", "custom:tea-lovers", "custom:vips"])
    );
    let own = api.get("/v1/members/a", &api.member("a")).await;
    assert_eq!(own.body["custom_segments"], Value::Null);

    // A purchase moves its member at once in the live view, and in the listing with the
    // nightly run.
    api.clock.set(at("2027-03-21T10:00:00Z"));
    buy_lines(&api, "d", "D1", "store-2", &[("tea", 250)]).await;
    assert_eq!(
        custom_of(&api, "d").await,
        json!(["custom:recent", "custom:tea-lovers", "custom:tea-not-vip"])
    );
    assert_eq!(members_of(&api, "tea-lovers").await, set(&["a", "c", "e"]));
    run_job(&api, 2).await;
    assert_eq!(
        members_of(&api, "tea-lovers").await,
        set(&["a", "c", "d", "e"])
    );
    assert_eq!(members_of(&api, "tea-not-vip").await, set(&["d", "e"]));

    // Days passing move members out of "recent" (the nightly run): by 5 April, a, b, c and e
    // bought 35 days ago, d 15.
    api.clock.set(at("2027-04-05T02:00:00Z"));
    run_job(&api, 2).await;
    assert_eq!(members_of(&api, "recent").await, set(&["d"]));

    // A changed rule: building, the old listing served until its build is done.
    let r = define(
        &api,
        "vips",
        json!({"field": "tags", "op": "contains", "value": "wechat-group-7"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "building");
    // The runs so far started before this rule was given: none of them is building it.
    assert_eq!(r.body["progress"], Value::Null, "{}", r.body);
    assert_eq!(members_of(&api, "vips").await, set(&["a", "b"]));
    build(&api).await;
    assert_eq!(segment(&api, "vips").await["status"], "ready");
    assert_eq!(members_of(&api, "vips").await, set(&["a"]));
    // The name alone changed: no build.
    let rule = json!({"field": "tags", "op": "contains", "value": "wechat-group-7"});
    let r = put_segment(
        &api,
        "custom:vips",
        json!({"name": "WeChat group 7", "rule": rule}),
    )
    .await;
    assert_eq!((r.status, r.body["status"].clone()), (200, json!("ready")));

    // Erasure: the member leaves every listing in the same commit; the sizes follow.
    let r = api
        .call("DELETE", "/v1/members/e", Some(&api.admin()), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(members_of(&api, "tea-lovers").await, set(&["a", "c", "d"]));
    assert_eq!(
        api.get("/v1/members/e/tags", &api.admin()).await.status,
        410
    );

    // Deleted: gone from reads; its listing's members leave it with the next evaluation.
    let r = api
        .call(
            "DELETE",
            "/v1/segments/custom:tea-not-vip",
            Some(&api.admin()),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        api.get("/v1/segments/custom:tea-not-vip", &api.admin())
            .await
            .status,
        404
    );
    assert_eq!(
        api.get("/v1/segments/custom:tea-not-vip/members", &api.admin())
            .await
            .status,
        404
    );
    let r = api.get("/v1/segments", &api.admin()).await;
    let custom: Vec<&Value> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "custom")
        .collect();
    assert_eq!(custom.len(), 3);
    let r = api
        .call(
            "DELETE",
            "/v1/segments/custom:tea-not-vip",
            Some(&api.admin()),
            None,
        )
        .await;
    assert_eq!(r.status, 404);

    // The audit trail has each write.
    // The trail is read a month at a time.
    let mut actions = Vec::new();
    for (from, to) in [
        ("2027-02-28T00:00:00Z", "2027-03-30T00:00:00Z"),
        ("2027-03-30T00:00:00Z", "2027-04-06T00:00:00Z"),
    ] {
        let path = format!("/v1/audit?from={from}&to={to}&limit=100");
        let r = api.get(&path, &api.admin()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        for i in r.body["items"].as_array().unwrap() {
            actions.push(i["action"].as_str().unwrap().to_owned());
        }
    }
    for (action, n) in [
        ("segment_defined", 6),
        ("segment_deleted", 1),
        ("member_tagged", 2),
    ] {
        assert_eq!(
            actions.iter().filter(|a| **a == action).count(),
            n,
            "{action}: {actions:?}"
        );
    }
}
both_backends!(
    definitions_list_exactly_the_members_counted_by_hand_and_move_with_purchases_time_and_changes
);

async fn refusals_name_the_path_of_the_mistake_and_write_nothing(backend: Backend) {
    let api = Api::new(backend).await;
    api.enrol("m").await;
    let cases = [
        (
            json!({"all": [tea(), {"field": "nope", "op": "eq", "value": 1}]}),
            "rule.all[1].field",
        ),
        (
            json!({"all": [tea(), tea(), {"any": [{"field": "balance", "op": "gt", "value": "many"}]}]}),
            "rule.all[2].any[0].value",
        ),
        (json!({"field": "tags", "op": "gt", "value": 1}), "rule.op"),
        (
            json!({"not": {"not": {"not": {"not": {"not": tea()}}}}}),
            "rule.not.not.not.not",
        ),
        (
            json!({"field": "spend_12m", "op": "gt", "value": {"value": 1, "currency": "EUR"}}),
            "rule.value",
        ),
    ];
    for (rule, path) in cases {
        let r = define(&api, "bad", rule.clone()).await;
        assert_eq!(r.status, 422, "{rule}: {}", r.body);
        assert_eq!(r.body["errors"][0]["field"], path, "{}", r.body);
        assert_eq!(r.content_type(), "application/problem+json");
    }
    assert_eq!(
        api.get("/v1/segments/custom:bad", &api.admin())
            .await
            .status,
        404,
        "nothing written"
    );
    let r = put_segment(&api, "custom:Bad_Slug", json!({"name": "x", "rule": tea()})).await;
    assert_eq!(
        (r.status, r.body["errors"][0]["field"].clone()),
        (400, json!("id")),
        "{}",
        r.body
    );
    let r = put_segment(&api, "lifecycle:new", json!({"name": "x", "rule": tea()})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = put_segment(&api, "custom:x", json!({"name": " ", "rule": tea()})).await;
    assert_eq!(
        (r.status, r.body["errors"][0]["field"].clone()),
        (422, json!("name"))
    );
    let r = put_segment(
        &api,
        "custom:x",
        json!({"name": "x", "rule": tea(), "extra": 1}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Tags: each checked, with its index; too many; an unknown member.
    let r = set_tags(&api, "m", json!(["ok", "not ok"]), &api.admin()).await;
    assert_eq!(
        (r.status, r.body["errors"][0]["field"].clone()),
        (422, json!("tags[1]"))
    );
    let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    let r = set_tags(&api, "m", json!(many), &api.admin()).await;
    assert_eq!(
        (r.status, r.body["errors"][0]["field"].clone()),
        (422, json!("tags"))
    );
    assert_eq!(
        set_tags(&api, "ghost", json!(["vip"]), &api.admin())
            .await
            .status,
        404
    );
    assert_eq!(
        api.get("/v1/members/m/tags", &api.admin()).await.body["tags"],
        json!([])
    );

    // At most 100 definitions; a definition may still change at the limit.
    for i in 0..100 {
        let r = define(&api, &format!("s{i}"), tea()).await;
        assert_eq!(r.status, 201, "{i}: {}", r.body);
    }
    let r = define(&api, "one-more", tea()).await;
    assert_eq!(
        (r.status, r.problem_type().to_owned()),
        (409, "/problems/too-many-segments".to_owned()),
        "{}",
        r.body
    );
    assert_eq!(
        api.get("/v1/segments/custom:one-more", &api.admin())
            .await
            .status,
        404
    );
    assert_eq!(define(&api, "s7", vip()).await.status, 200);

    // One member entering 99 listings at once: more than a transaction holds with its traits
    // and size add, so in several commits; an erasure takes them all back out.
    buy_lines(&api, "m", "M1", "store-1", &[("tea", 100)]).await;
    let run = build(&api).await;
    assert_eq!(
        (run["listed"].clone(), run["failed"].clone()),
        (json!(100), json!(0)),
        "{run}"
    );
    let custom_sizes = |body: &Value| -> Vec<u64> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["kind"] == "custom")
            .map(|s| s["size"].as_u64().unwrap())
            .collect()
    };
    let r = api.get("/v1/segments", &api.admin()).await;
    let sizes = custom_sizes(&r.body);
    assert_eq!((sizes.len(), sizes.iter().sum::<u64>()), (100, 99));
    assert_eq!(members_of(&api, "s99").await, set(&["m"]));
    let r = api
        .call("DELETE", "/v1/members/m", Some(&api.admin()), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api.get("/v1/segments", &api.admin()).await;
    assert_eq!(custom_sizes(&r.body).iter().sum::<u64>(), 0);
    assert!(members_of(&api, "s99").await.is_empty());
}
both_backends!(refusals_name_the_path_of_the_mistake_and_write_nothing);

async fn loyalty_locals_builder_lists_a_new_rule_in_the_background_over_a_socket(backend: Backend) {
    let api = Api::new(backend).await.over_socket().await;
    api.enrol("a").await;
    api.enrol("b").await;
    assert_eq!(
        set_tags(&api, "a", json!(["vip"]), &api.admin())
            .await
            .status,
        200
    );
    tokio::spawn(loyalty_local::builds::run(
        api.services.clone(),
        std::time::Duration::from_millis(50),
    ));
    let r = define(&api, "vips", vip()).await;
    assert_eq!(r.body["status"], "building", "{}", r.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while segment(&api, "vips").await["status"] != "ready" {
        assert!(
            std::time::Instant::now() < deadline,
            "not built in the background within 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(members_of(&api, "vips").await, set(&["a"]));
}
both_backends!(loyalty_locals_builder_lists_a_new_rule_in_the_background_over_a_socket);
