//! The members API over HTTP (in-process and over a real socket), on both store backends.

use loyalty::program::Program;
use loyalty_tests::{Api, Backend, all_items, both_backends};
use serde_json::{Value, json};

/// The walkthrough of the foundation issue: enrol, read back, idempotent adjustment, access
/// rules, and bad input that is refused with problem+json and writes nothing.
async fn walkthrough(api: &Api) {
    let me = api.member("ada");
    let admin = api.admin();

    let r = api.post("/v1/members", &me, json!({"name": "Ada", "phone": "+86 138 0000 0000", "birthday": "11-22", "timezone": "Asia/Shanghai"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["id"], "ada");
    assert_eq!(r.body["phone"], "+8613800000000");
    assert_eq!(r.body["tier"], "silver");
    assert_eq!(
        r.body["tier_progress"]["spend_to_next_tier"],
        json!({"value": 100000, "currency": "USD"})
    );
    let read = api.get("/v1/members/ada", &me).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, r.body);

    let adj = |body| {
        api.call_with(
            "POST",
            "/v1/members/ada/adjustments",
            Some(&admin),
            Some(body),
            &[("Idempotency-Key", "welcome-ada")],
        )
    };
    let first = adj(br#"{"points": 100, "reason": "welcome"}"#.to_vec()).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert!(!first.replayed());
    assert_eq!(first.body["balance_after"], 100);
    assert_eq!(api.balance("ada").await, 100);
    assert_eq!(api.ledger("ada").await.len(), 1);

    // Same key, same body (other key order and spacing): the first response, marked replayed.
    let again = adj(br#"{ "reason":"welcome","points":100 }"#.to_vec()).await;
    assert_eq!(again.status, 201);
    assert!(again.replayed());
    assert_eq!(again.body, first.body);
    assert_eq!(api.balance("ada").await, 100);
    assert_eq!(api.ledger("ada").await.len(), 1);

    // Same key, other body: refused, nothing applied.
    let other = adj(br#"{"points": 5, "reason": "welcome"}"#.to_vec()).await;
    assert_eq!(other.status, 422);
    assert_eq!(other.problem_type(), "/problems/idempotency-key-reused");
    assert_eq!(other.content_type(), "application/problem+json");

    // Another member's data: 403 and never the data.
    api.enrol("bob").await;
    let peek = api.get("/v1/members/bob", &me).await;
    assert_eq!(peek.status, 403);
    assert!(peek.body.get("points").is_none());
    assert_eq!(api.get("/v1/members/bob/ledger", &me).await.status, 403);

    // Forged, foreign and missing tokens: 401.
    let forged = format!("{}x", me);
    assert_eq!(api.get("/v1/members/ada", &forged).await.status, 401);
    let foreign = loyalty_local::auth::DevAuth::from_secret(b"someone else")
        .mint(&loyalty_local::auth::Role::Admin);
    assert_eq!(api.get("/v1/members/ada", &foreign).await.status, 401);
    let none = api.call("GET", "/v1/members/ada", None, None).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.problem_type(), "/problems/unauthorized");

    // Bad input: a clear problem, and nothing written.
    let bad: Vec<(&[u8], u16, &str)> = vec![
        (br#"{"name": "Cy", "id": "cy""#, 400, "body"),
        (
            br#"{"name": "Cy", "id": "cy", "nickname": "c"}"#,
            400,
            "nickname",
        ),
        (
            br#"{"name": "Cy", "id": "cy", "phone": "12345"}"#,
            400,
            "phone",
        ),
        (
            br#"{"name": "Cy", "id": "cy", "birthday": "02-30"}"#,
            400,
            "birthday",
        ),
        (
            br#"{"name": "Cy", "id": "cy", "timezone": "Mars/Base"}"#,
            400,
            "timezone",
        ),
        (br#"{"name": "", "id": "cy"}"#, 400, "name"),
        (
            br#"{"name": "Cy", "id": "cy", "birthday": "2099-01-01"}"#,
            422,
            "birthday",
        ),
    ];
    for (body, status, field) in bad {
        let r = api
            .call_with(
                "POST",
                "/v1/members",
                Some(&admin),
                Some(body.to_vec()),
                &[],
            )
            .await;
        assert_eq!(
            r.status,
            status,
            "{}: {}",
            String::from_utf8_lossy(body),
            r.body
        );
        assert_eq!(r.problem_type(), "/problems/validation");
        assert_eq!(r.content_type(), "application/problem+json");
        assert_eq!(r.body["errors"][0]["field"], field, "{}", r.body);
    }
    assert_eq!(
        api.get("/v1/members/cy", &admin).await.status,
        404,
        "no bad request wrote a member"
    );
    let bad_adj = api
        .post(
            "/v1/members/ada/adjustments",
            &admin,
            json!({"points": 0, "reason": "x"}),
        )
        .await;
    assert_eq!(bad_adj.status, 422);
    let bad_adj = api
        .post(
            "/v1/members/ada/adjustments",
            &admin,
            json!({"points": 1.5, "reason": "x"}),
        )
        .await;
    assert_eq!(bad_adj.status, 400);
    assert_eq!(api.balance("ada").await, 100);
    assert_eq!(api.ledger("ada").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn walkthrough_in_process_on_embedded_store() {
    walkthrough(&Api::new(Backend::Embedded).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn walkthrough_over_a_real_socket_on_embedded_store() {
    walkthrough(&Api::new(Backend::Embedded).await.over_socket().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn walkthrough_over_a_real_socket_on_dynamodb() {
    walkthrough(&Api::new(Backend::Dynamo).await.over_socket().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_and_balances_survive_a_restart_of_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loyalty.redb");
    {
        let store = loyalty::store::EmbeddedStore::open(&path).unwrap();
        let api = Api::on_store(std::sync::Arc::new(store), Program::default(), None);
        api.enrol("ada").await;
        let r = api
            .post(
                "/v1/members/ada/adjustments",
                &api.admin(),
                json!({"points": 100, "reason": "x"}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let store = loyalty::store::EmbeddedStore::open(&path).unwrap();
    let api = Api::on_store(std::sync::Arc::new(store), Program::default(), None);
    assert_eq!(api.balance("ada").await, 100);
    assert_eq!(api.ledger("ada").await.len(), 1);
}

async fn phones_are_unique_and_released_on_change(b: Backend) {
    let api = Api::new(b).await;
    let admin = api.admin();
    let r = api
        .post(
            "/v1/members",
            &admin,
            json!({"id": "a", "name": "A", "phone": "+14155550100"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = api
        .post(
            "/v1/members",
            &admin,
            json!({"id": "b", "name": "B", "phone": "+1 415 555 0100"}),
        )
        .await;
    assert_eq!((r.status, r.problem_type()), (409, "/problems/phone-taken"));
    assert_eq!(
        api.get("/v1/members/b", &admin).await.status,
        404,
        "refused enrolment wrote nothing"
    );
    api.enrol("b").await;
    let r = api
        .call(
            "PATCH",
            "/v1/members/b",
            Some(&admin),
            Some(json!({"phone": "+14155550100"})),
        )
        .await;
    assert_eq!(r.status, 409);
    // A moves to another number; the old one is free for B.
    let r = api
        .call(
            "PATCH",
            "/v1/members/a",
            Some(&api.member("a")),
            Some(json!({"phone": "+14155550101"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api
        .call(
            "PATCH",
            "/v1/members/b",
            Some(&admin),
            Some(json!({"phone": "+14155550100"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api.post("/v1/purchases", &admin, json!({"member": {"phone": "+14155550101"}, "store_id": "s", "receipt_id": "r1",
        "amount": {"value": 100, "currency": "USD"}, "occurred_at": chrono::Utc::now().to_rfc3339()})).await;
    assert_eq!(r.body["member_id"], "a", "{}", r.body);
}
both_backends!(phones_are_unique_and_released_on_change);

async fn birthday_is_set_once_then_only_by_an_admin(b: Backend) {
    let api = Api::new(b).await;
    api.enrol("m").await;
    let me = api.member("m");
    let r = api
        .call(
            "PATCH",
            "/v1/members/m",
            Some(&me),
            Some(json!({"birthday": "1990-07-14", "email": "m@example.com"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["birthday"], "1990-07-14");
    let r = api
        .call(
            "PATCH",
            "/v1/members/m",
            Some(&me),
            Some(json!({"birthday": "07-15"})),
        )
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (409, "/problems/birthday-locked")
    );
    let r = api
        .call(
            "PATCH",
            "/v1/members/m",
            Some(&me),
            Some(json!({"email": null, "name": "Em"})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (
            r.body["email"].clone(),
            r.body["birthday"].clone(),
            r.body["name"].clone()
        ),
        (json!(null), json!("1990-07-14"), json!("Em"))
    );
    let r = api
        .call(
            "PATCH",
            "/v1/members/m",
            Some(&api.admin()),
            Some(json!({"birthday": "07-15"})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["birthday"], "07-15");
    let r = api
        .call(
            "PATCH",
            "/v1/members/m",
            Some(&api.pos("s1")),
            Some(json!({"name": "X"})),
        )
        .await;
    assert_eq!(r.status, 403, "a POS may read a member but not change one");
}
both_backends!(birthday_is_set_once_then_only_by_an_admin);

async fn enrolment_rules_by_role(b: Backend) {
    let api = Api::new(b).await;
    let r = api
        .post(
            "/v1/members",
            &api.member("me"),
            json!({"id": "someone-else", "name": "X"}),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = api
        .post("/v1/members", &api.member("me"), json!({"name": "Me"}))
        .await;
    assert_eq!(r.status, 201);
    let r = api
        .post(
            "/v1/members",
            &api.member("me"),
            json!({"name": "Me again"}),
        )
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (409, "/problems/member-exists")
    );
    let r = api
        .post("/v1/members", &api.pos("s1"), json!({"name": "Walk-in"}))
        .await;
    assert_eq!(r.status, 201);
    let id = r.body["id"].as_str().unwrap();
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "POS enrolment without id gets a UUID: {id}"
    );
}
both_backends!(enrolment_rules_by_role);

async fn concurrent_replays_of_one_idempotency_key_apply_once(b: Backend) {
    let api = std::sync::Arc::new(Api::new(b).await);
    api.enrol("m").await;
    let admin = api.admin();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let api = api.clone();
            let admin = admin.clone();
            tokio::spawn(async move {
                api.call_with(
                    "POST",
                    "/v1/members/m/adjustments",
                    Some(&admin),
                    Some(br#"{"points": 100, "reason": "promo"}"#.to_vec()),
                    &[("Idempotency-Key", "promo-1")],
                )
                .await
            })
        })
        .collect();
    let mut fresh = 0;
    let mut bodies = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 201, "{}", r.body);
        if !r.replayed() {
            fresh += 1;
        }
        bodies.insert(r.body.to_string());
    }
    assert_eq!(fresh, 1, "exactly one request did the work");
    assert_eq!(bodies.len(), 1, "every replay answered the same body");
    assert_eq!(api.balance("m").await, 100);
    assert_eq!(api.ledger("m").await.len(), 1);
}
both_backends!(concurrent_replays_of_one_idempotency_key_apply_once);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_pages_newest_first_without_gaps_or_duplicates() {
    let api = Api::new(Backend::Embedded).await;
    api.enrol("m").await;
    for i in 1..=25 {
        let r = api
            .post(
                "/v1/members/m/adjustments",
                &api.admin(),
                json!({"points": i, "reason": format!("n{i}")}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/members/m/ledger?limit=10".to_owned();
    loop {
        let r = api.get(&path, &api.member("m")).await;
        assert_eq!(r.status, 200);
        seen.extend(
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["points"].as_i64().unwrap()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/members/m/ledger?limit=10&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, (1..=25).rev().collect::<Vec<i64>>());
    for (bad, status) in [
        ("?limit=0", 422),
        ("?limit=101", 422),
        ("?limit=x", 400),
        ("?cursor=%%%", 400),
        ("?cursor=bm90LWEtY3Vyc29y", 400),
        ("?sort=asc", 400),
    ] {
        let r = api
            .get(&format!("/v1/members/m/ledger{bad}"), &api.admin())
            .await;
        assert_eq!(r.status, status, "{bad}: {}", r.body);
    }
}

#[tokio::test]
async fn bodies_over_64_kib_are_refused_with_413_and_write_nothing() {
    let api = Api::new(Backend::Embedded).await;
    let big = format!(r#"{{"id": "big", "name": "{}"}}"#, "x".repeat(70 * 1024));
    let r = api
        .call_with(
            "POST",
            "/v1/members",
            Some(&api.admin()),
            Some(big.into_bytes()),
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (413, "/problems/payload-too-large")
    );
    assert_eq!(api.get("/v1/members/big", &api.admin()).await.status, 404);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_problem_json() {
    let api = Api::new(Backend::Embedded).await;
    let r = api.get("/v1/nothing", &api.admin()).await;
    assert_eq!((r.status, r.problem_type()), (404, "/problems/not-found"));
    let r = api
        .call("PUT", "/v1/members/x", Some(&api.admin()), None)
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.content_type(), "application/problem+json");
}

#[tokio::test]
async fn openapi_document_lists_every_route_of_the_contract() {
    let api = Api::new(Backend::Embedded).await;
    let r = api.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(r.status, 200);
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = r.body["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/members", "post"),
        ("/v1/members/{id}", "get"),
        ("/v1/members/{id}", "patch"),
        ("/v1/members/{id}/ledger", "get"),
        ("/v1/members/{id}/adjustments", "post"),
        ("/v1/purchases", "post"),
        ("/v1/purchases/{store_id}/{receipt_id}/refunds", "post"),
        ("/v1/rewards", "get"),
        ("/v1/rewards/{id}", "put"),
        ("/v1/members/{id}/redemptions", "post"),
        ("/v1/members/{id}/redemptions", "get"),
        (
            "/v1/members/{id}/redemptions/{redemption_id}/cancel",
            "post",
        ),
        ("/v1/vouchers/{code}/use", "post"),
        ("/v1/members/{id}/tier", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from the document"
        );
    }
    assert!(r.body["components"]["schemas"]["MemberView"].is_object());
    assert!(r.body["components"]["securitySchemes"]["bearer"].is_object());
}

/// What client generators need of the document (issue 36): no `allOf` left for them to merge,
/// every `oneOf` of objects named and told apart by a discriminator whose mapping names each
/// branch, list items by reference, unique operationIds that name their object, and a first
/// server that is not a developer's machine.
#[test]
fn the_document_gives_generators_named_told_apart_shapes_and_no_local_default() {
    let doc = loyalty_members::api_document();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    fn walk(v: &Value, at: &str, schemas: &serde_json::Map<String, Value>, bad: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if m.contains_key("allOf") {
                    bad.push(format!("{at}: allOf"));
                }
                if let Some(branches) = m.get("oneOf").and_then(Value::as_array) {
                    let objects: Vec<&str> =
                        branches.iter().filter_map(|b| b["$ref"].as_str()).collect();
                    let inline_objects = branches.iter().any(|b| b["type"] == "object");
                    if inline_objects {
                        bad.push(format!("{at}: an anonymous object branch"));
                    }
                    if objects.len() > 1 {
                        let mapping = m["discriminator"]["mapping"].as_object();
                        let mapped: Vec<&str> = mapping
                            .map(|mp| mp.values().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        if objects.iter().any(|o| !mapped.contains(o)) {
                            bad.push(format!(
                                "{at}: oneOf without a discriminator for each branch"
                            ));
                        }
                        let tag = m["discriminator"]["propertyName"].as_str().unwrap_or("");
                        for o in &objects {
                            let s = &schemas[o.rsplit('/').next().unwrap()];
                            if !s["required"]
                                .as_array()
                                .is_some_and(|r| r.iter().any(|x| x == tag))
                            {
                                bad.push(format!("{at}: {o} does not require its tag {tag}"));
                            }
                        }
                    }
                }
                for (k, x) in m {
                    walk(x, &format!("{at}/{k}"), schemas, bad);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, at, schemas, bad)),
            _ => {}
        }
    }
    let mut bad = Vec::new();
    walk(&doc, "", schemas, &mut bad);
    assert!(bad.is_empty(), "{bad:#?}");
    for (name, s) in schemas {
        if let Some(item) = name.strip_prefix("ListResponse_") {
            assert_eq!(
                s["properties"]["items"]["items"]["$ref"],
                format!("#/components/schemas/{item}"),
                "{name}"
            );
            assert!(
                s["required"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("next_cursor")),
                "{name}: next_cursor is always sent"
            );
        }
    }
    let mut ids = std::collections::BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "{id} twice");
            assert!(
                id.contains('_'),
                "{method} {path}: {id} does not name its object"
            );
        }
    }
    for id in [
        "cancel_redemption",
        "launch_campaign",
        "list_ledger",
        "enrol_member",
    ] {
        assert!(ids.contains(id), "{id}");
    }
    let first = doc["servers"][0]["url"].as_str().unwrap();
    assert!(first.starts_with("https://"), "{first}");
    assert!(!first.contains("127.0.0.1") && !first.contains("localhost"));
    let enrol = &doc["paths"]["/v1/members"]["post"];
    assert!(
        enrol["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
    );
    assert!(enrol["responses"]["201"]["headers"]["Idempotent-Replayed"].is_object());
    assert_eq!(
        schemas["Change"]["properties"]["after"],
        json!({}),
        "any JSON value"
    );
}

/// Answers `status` naming `field`, and the store holds exactly what it held before.
async fn refused_writing_nothing(
    api: &Api,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
    status: u16,
    field: &str,
) {
    let before = all_items(api.services.ctx.table.store().as_ref()).await;
    let r = api
        .call(method, path, Some(token), Some(body.clone()))
        .await;
    assert_eq!(r.status, status, "{method} {path} {body}: {}", r.body);
    assert_eq!(r.content_type(), "application/problem+json");
    assert_eq!(r.body["errors"][0]["field"], field, "{body}: {}", r.body);
    let after = all_items(api.services.ctx.table.store().as_ref()).await;
    assert_eq!(before.len(), after.len(), "{body} wrote something");
}

async fn no_body_fills_an_object_by_position_at_any_depth(b: Backend) {
    let api = Api::new(b).await;
    api.enrol("ada").await;
    let (admin, pos) = (api.admin(), api.pos("store-1"));
    let now = api.services.ctx.now().to_rfc3339();
    let purchase = |patch: Value| {
        let mut p = json!({"member": {"id": "ada"}, "store_id": "store-1", "receipt_id": "P-1",
            "amount": {"value": 2500, "currency": "USD"}, "occurred_at": now});
        for (k, v) in patch.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    };
    for (body, field) in [
        (purchase(json!({"amount": [2500, "USD"]})), "amount"),
        (purchase(json!({"member": ["ada", null]})), "member"),
        (
            purchase(
                json!({"lines": [["sku-1", "drinks", 1, {"value": 2500, "currency": "USD"}]]}),
            ),
            "lines[0]",
        ),
        (
            purchase(json!({"lines": [{"sku": "sku-1", "quantity": 1, "amount": [2500, "USD"]}]})),
            "lines[0].amount",
        ),
    ] {
        refused_writing_nothing(&api, "POST", "/v1/purchases", &pos, body, 400, field).await;
    }
    let campaign = json!({"name": "Bonus", "audience": ["tier:silver"],
        "starts_at": "2027-01-01T00:00:00Z", "ends_at": "2027-02-01T00:00:00Z",
        "offer": {"kind": "bonus", "points": 100, "min_spend": [100, "USD"]}, "budget_points": 1000});
    refused_writing_nothing(
        &api,
        "PUT",
        "/v1/campaigns/bonus",
        &admin,
        campaign,
        400,
        "offer.min_spend",
    )
    .await;
    // The same bodies with named fields are accepted.
    let r = api.post("/v1/purchases", &pos, purchase(json!({"lines": [{"sku": "sku-1", "quantity": 1, "amount": {"value": 2500, "currency": "USD"}}]}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
}
both_backends!(no_body_fills_an_object_by_position_at_any_depth);

async fn a_well_formed_value_out_of_range_is_422_and_a_malformed_one_400(b: Backend) {
    let api = Api::new(b).await;
    api.enrol("ada").await;
    let admin = api.admin();
    for (birthday, status) in [
        ("2101-01-01", 422),
        ("1899-12-31", 422),
        ("2999-12-25", 422),
        ("2101-13-01", 400),
        ("soon", 400),
    ] {
        refused_writing_nothing(
            &api,
            "PATCH",
            "/v1/members/ada",
            &admin,
            json!({"birthday": birthday}),
            status,
            "birthday",
        )
        .await;
    }
    for (limit, status) in [
        ("101", 422),
        ("0", 422),
        ("-1", 422),
        ("abc", 400),
        ("1.5", 400),
    ] {
        let r = api
            .get(&format!("/v1/members/ada/ledger?limit={limit}"), &admin)
            .await;
        assert_eq!(
            r.refused(),
            (status, json!("limit")),
            "limit={limit}: {}",
            r.body
        );
    }
    for (multiplier, status, field) in [
        (json!(2.0001), 422, "offer.multiplier"),
        (json!(100.5), 422, "offer.multiplier"),
        (json!(10.5), 422, "offer.multiplier"),
        (json!(1), 422, "offer.multiplier"),
        (json!("2"), 400, "offer"),
    ] {
        let campaign = json!({"name": "Double", "audience": ["tier:silver"],
            "starts_at": "2027-01-01T00:00:00Z", "ends_at": "2027-02-01T00:00:00Z",
            "offer": {"kind": "multiplier", "multiplier": multiplier}, "budget_points": 1000});
        refused_writing_nothing(
            &api,
            "PUT",
            "/v1/campaigns/double",
            &admin,
            campaign,
            status,
            field,
        )
        .await;
    }
    let campaign = json!({"name": "Double", "audience": ["tier:silver"],
        "starts_at": "2027-01-01T00:00:00Z", "ends_at": "2027-02-01T00:00:00Z",
        "offer": {"kind": "multiplier", "multiplier": 2.125}, "budget_points": 1000});
    let r = api
        .call("PUT", "/v1/campaigns/double", Some(&admin), Some(campaign))
        .await;
    assert_eq!(
        (r.status, r.body["offer"]["multiplier"].clone()),
        (201, json!(2.125)),
        "{}",
        r.body
    );
    // A name of invisible characters names nothing.
    refused_writing_nothing(
        &api,
        "PATCH",
        "/v1/members/ada",
        &admin,
        json!({"name": "\u{200B}\u{200D}"}),
        400,
        "name",
    )
    .await;
}
both_backends!(a_well_formed_value_out_of_range_is_422_and_a_malformed_one_400);

async fn a_cursor_pages_only_the_list_it_came_from(b: Backend) {
    let api = Api::new(b).await;
    let admin = api.admin();
    for m in ["a", "b"] {
        api.enrol(m).await;
        for i in 0..3 {
            let r = api
                .post(
                    &format!("/v1/members/{m}/adjustments"),
                    &admin,
                    json!({"points": 1 + i, "reason": "r"}),
                )
                .await;
            assert_eq!(r.status, 201);
        }
    }
    let page = api.get("/v1/members/a/ledger?limit=1", &admin).await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(
        api.get(
            &format!("/v1/members/a/ledger?limit=1&cursor={cursor}"),
            &admin
        )
        .await
        .status,
        200
    );
    let r = api
        .get(
            &format!("/v1/members/b/ledger?limit=1&cursor={cursor}"),
            &admin,
        )
        .await;
    assert_eq!(r.refused(), (400, json!("cursor")), "{}", r.body);
    // Segment lists: a cursor of one segment on another.
    let r = api.post("/_local/jobs/segments", &admin, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let page = api
        .get("/v1/segments/tier:silver/members?limit=1", &admin)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let cursor = page.body["next_cursor"]
        .as_str()
        .expect("two silver members, one a page")
        .to_owned();
    let r = api
        .get(
            &format!("/v1/segments/lifecycle:prospect/members?limit=1&cursor={cursor}"),
            &admin,
        )
        .await;
    assert_eq!(r.refused(), (400, json!("cursor")), "{}", r.body);
}
both_backends!(a_cursor_pages_only_the_list_it_came_from);

async fn a_write_not_sent_as_json_is_415_and_writes_nothing(b: Backend) {
    let api = Api::new(b).await;
    let before = all_items(api.services.ctx.table.store().as_ref()).await;
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
    ] {
        let r = api
            .call_with(
                "POST",
                "/v1/members",
                Some(&api.admin()),
                Some(br#"{"id": "t", "name": "T"}"#.to_vec()),
                &[("content-type", ct)],
            )
            .await;
        assert_eq!(
            (r.status, r.problem_type()),
            (415, "/problems/unsupported-media-type"),
            "{ct}"
        );
    }
    assert_eq!(
        before.len(),
        all_items(api.services.ctx.table.store().as_ref())
            .await
            .len()
    );
    let r = api
        .call_with(
            "POST",
            "/v1/members",
            Some(&api.admin()),
            Some(br#"{"id": "t", "name": "T"}"#.to_vec()),
            &[("content-type", "application/json; charset=utf-8")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}
both_backends!(a_write_not_sent_as_json_is_415_and_writes_nothing);

async fn the_documented_numeric_bounds_are_the_ones_the_rules_hold(b: Backend) {
    use loyalty::domain::bounds;
    let doc = loyalty_members::api_document();
    for (schema, field, b) in bounds::BODY_FIELDS {
        let p = &doc["components"]["schemas"][*schema]["properties"][*field];
        assert_eq!(
            (p["minimum"].as_i64(), p["maximum"].as_i64()),
            (Some(b.min), Some(b.max)),
            "{schema}.{field}"
        );
    }
    let months = doc["paths"]["/v1/analytics/retention"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "months")
        .unwrap()["schema"]
        .clone();
    assert_eq!(
        (months["minimum"].as_i64(), months["maximum"].as_i64()),
        (Some(1), Some(12))
    );

    let api = Api::new(b).await;
    let admin = api.admin();
    // At the bounds: accepted; one past: 422 naming the field; an integral float is an integer.
    let reward = |stock: Value, limit: Value| json!({"name": "Mug", "cost_points": 10, "stock": stock, "per_member_limit": limit});
    let r = api
        .call(
            "PUT",
            "/v1/rewards/mug",
            Some(&admin),
            Some(reward(json!(14025.0), json!(1))),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["stock"], 14025);
    let r = api
        .call(
            "PUT",
            "/v1/rewards/mug",
            Some(&admin),
            Some(reward(
                json!(bounds::REWARD_STOCK.max),
                json!(bounds::REWARD_PER_MEMBER_LIMIT.max),
            )),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    refused_writing_nothing(
        &api,
        "PUT",
        "/v1/rewards/mug",
        &admin,
        reward(json!(bounds::REWARD_STOCK.max + 1), json!(1)),
        422,
        "stock",
    )
    .await;
    refused_writing_nothing(
        &api,
        "PUT",
        "/v1/rewards/mug",
        &admin,
        reward(json!(5), json!(0)),
        422,
        "per_member_limit",
    )
    .await;
    let campaign = json!({"name": "Bonus", "audience": ["tier:silver"],
        "starts_at": "2027-01-01T00:00:00Z", "ends_at": "2027-02-01T00:00:00Z",
        "offer": {"kind": "bonus", "points": 100}, "budget_points": 1000, "per_member_limit": 0});
    refused_writing_nothing(
        &api,
        "PUT",
        "/v1/campaigns/bonus",
        &admin,
        campaign,
        422,
        "per_member_limit",
    )
    .await;
    for (months, status) in [("0", 422), ("13", 422), ("-1", 422), ("x", 400)] {
        let r = api
            .get(&format!("/v1/analytics/retention?months={months}"), &admin)
            .await;
        assert_eq!(
            r.refused(),
            (status, json!("months")),
            "months={months}: {}",
            r.body
        );
    }
}
both_backends!(the_documented_numeric_bounds_are_the_ones_the_rules_hold);

async fn dates_and_instants_outside_1900_to_9999_are_422_and_nothing_panics(b: Backend) {
    let api = Api::new(b).await;
    api.enrol("ada").await;
    let admin = api.admin();
    let far = [
        "-262143-01-02T00:00:00Z",
        "+10000-01-01T00:00:00Z",
        "1899-12-31T23:59:59Z",
    ];
    for t in far {
        for (path, field) in [
            (format!("/v1/audit?to={t}"), "to"),
            (
                format!("/v1/audit?from={t}&to=2027-01-01T00:00:00Z"),
                "from",
            ),
            (
                format!("/v1/events?from={t}&to=2027-01-01T00:00:00Z"),
                "from",
            ),
        ] {
            let r = api.get(&path.replace('+', "%2B"), &admin).await;
            assert!(
                matches!(r.status, 400 | 422),
                "{path}: {} {}",
                r.status,
                r.body
            );
            if r.status == 422 {
                assert_eq!(r.body["errors"][0]["field"], field, "{path}: {}", r.body);
            }
            assert!(
                r.body["instance"]
                    .as_str()
                    .unwrap()
                    .starts_with("/requests/")
            );
        }
        for path in [
            "/_local/jobs/segments",
            "/_local/jobs/points",
            "/_local/jobs/tier-requalification",
            "/_local/jobs/birthday-gifts",
        ] {
            refused_writing_nothing(&api, "POST", path, &admin, json!({"now": t}), 422, "now")
                .await;
        }
        refused_writing_nothing(
            &api,
            "PUT",
            "/_local/clock",
            &admin,
            json!({"now": t}),
            422,
            "now",
        )
        .await;
        let mut sale = loyalty_tests::purchase_body("ada", "FAR", 1000, api.services.ctx.now());
        sale["occurred_at"] = json!(t);
        refused_writing_nothing(
            &api,
            "POST",
            "/v1/purchases",
            &admin,
            sale,
            422,
            "occurred_at",
        )
        .await;
    }
    for d in ["1899-12-31", "%2B10000-01-01"] {
        for path in [
            format!("/v1/segments/tier:gold/history?from={d}&to=2027-01-01"),
            format!("/v1/analytics/daily?from={d}&to=2027-01-01"),
            format!("/v1/analytics/referrals?from={d}&to=2027-01-01"),
        ] {
            let r = api.get(&path, &admin).await;
            assert_eq!(
                (r.status, &r.body["errors"][0]["field"]),
                (422, &json!("from")),
                "{path}: {}",
                r.body
            );
        }
    }
    // The last instants inside the range are accepted where they make sense.
    let r = api
        .get(
            "/v1/audit?from=9999-12-31T00:00:00Z&to=9999-12-31T23:59:59Z",
            &admin,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(api.get("/_local/clock", &admin).await.status, 200);
}
both_backends!(dates_and_instants_outside_1900_to_9999_are_422_and_nothing_panics);

async fn a_members_name_can_be_changed_but_never_cleared(b: Backend) {
    let api = Api::new(b).await;
    api.enrol("ada").await;
    refused_writing_nothing(
        &api,
        "PATCH",
        "/v1/members/ada",
        &api.admin(),
        json!({"name": null}),
        400,
        "name",
    )
    .await;
    let r = api.get("/v1/members/ada", &api.admin()).await;
    assert_eq!(r.body["name"], "Member ada");
    let r = api
        .call(
            "PATCH",
            "/v1/members/ada",
            Some(&api.admin()),
            Some(json!({"name": "Ada"})),
        )
        .await;
    assert_eq!((r.status, &r.body["name"]), (200, &json!("Ada")));
}
both_backends!(a_members_name_can_be_changed_but_never_cleared);

#[tokio::test]
async fn a_panic_in_a_handler_is_a_500_problem_with_the_request_id_not_a_dropped_connection() {
    use tower::ServiceExt;
    let api = Api::new(Backend::Embedded).await;
    // The one fault no input can cause any more: a handler that panics.
    let routes = axum::Router::new().route(
        "/boom",
        axum::routing::get(|| async {
            let v: Vec<u8> = Vec::new();
            format!("{}", v[1])
        }),
    );
    let app = loyalty::http::app(routes, api.services.clone(), None);
    let res = app
        .oneshot(
            http::Request::get("/boom")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .unwrap();
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["type"], "/problems/internal");
    assert_eq!(problem["instance"], format!("/requests/{id}"));
    assert!(
        !problem.to_string().contains("index out of bounds"),
        "no internal detail"
    );
}

async fn refusals_are_400_when_a_value_does_not_parse_and_422_when_a_rule_refuses_it(b: Backend) {
    let api = Api::new(b).await;
    let admin = api.admin();
    for (path, status) in [
        ("/v1/members?phone=abc", 400),
        ("/v1/referrals?status=applied", 422),
        ("/v1/referrals?status=rewarded", 422),
        ("/v1/referrals?status=bogus", 400),
        ("/v1/referrals?status=held", 200),
    ] {
        let r = api.get(path, &admin).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        if status != 200 {
            let field = if path.contains("phone") {
                "phone"
            } else {
                "status"
            };
            assert_eq!(r.body["errors"][0]["field"], field, "{path}");
        }
    }
}
both_backends!(refusals_are_400_when_a_value_does_not_parse_and_422_when_a_rule_refuses_it);

async fn phones_are_one_number_however_typed_and_national_ones_follow_the_default_country(
    b: Backend,
) {
    let api = Api::new(b).await;
    let admin = api.admin();
    let r = api
        .post(
            "/v1/members",
            &admin,
            json!({"id": "uk", "name": "UK", "phone": "+44 (0)20 7946 0958"}),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["phone"]),
        (201, &json!("+442079460958")),
        "{}",
        r.body
    );
    let r = api
        .post(
            "/v1/members",
            &admin,
            json!({"id": "uk2", "name": "UK", "phone": "+442079460958"}),
        )
        .await;
    assert_eq!(
        r.problem_type(),
        "/problems/phone-taken",
        "the same line: {}",
        r.body
    );
    for (phone, status) in [
        ("020 7946 0958", 400),
        ("+1 555 123 4567", 400),
        ("+44 20 79AB", 400),
    ] {
        refused_writing_nothing(
            &api,
            "POST",
            "/v1/members",
            &admin,
            json!({"id": "n", "name": "N", "phone": phone}),
            status,
            "phone",
        )
        .await;
    }
    let found = api
        .get("/v1/members?phone=%2B44%20(0)20%207946%200958", &admin)
        .await;
    assert_eq!(found.body["items"][0]["id"], "uk", "{}", found.body);

    // With a default country, national numbers are read as that country's.
    let (store, guard) = loyalty_tests::store(b).await;
    let cn = Api::on_store(
        store,
        loyalty::program::Program::from_json(r#"{"default_country": "CN"}"#).unwrap(),
        guard,
    );
    let admin = cn.admin();
    let r = cn
        .post(
            "/v1/members",
            &admin,
            json!({"id": "li", "name": "Li", "phone": "138 0000 0027"}),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["phone"]),
        (201, &json!("+8613800000027")),
        "{}",
        r.body
    );
    let r = cn
        .post(
            "/v1/members",
            &admin,
            json!({"id": "li2", "name": "Li", "phone": "+86 138-0000-0027"}),
        )
        .await;
    assert_eq!(r.problem_type(), "/problems/phone-taken");
    let found = cn.get("/v1/members?phone=138%200000%200027", &admin).await;
    assert_eq!(found.body["items"][0]["id"], "li", "{}", found.body);
    let mut sale = loyalty_tests::purchase_body("li", "P1", 1000, cn.services.ctx.now());
    sale["member"] = json!({"phone": "13800000027"});
    let r = cn.post("/v1/purchases", &cn.pos("store-1"), sale).await;
    assert_eq!(
        (r.status, &r.body["member_id"]),
        (201, &json!("li")),
        "{}",
        r.body
    );
    assert!(loyalty::program::Program::from_json(r#"{"default_country": "XX"}"#).is_err());
}
both_backends!(phones_are_one_number_however_typed_and_national_ones_follow_the_default_country);

async fn e_mail_addresses_are_parsed_by_the_rfc_and_kept_in_one_form(b: Backend) {
    let api = Api::new(b).await;
    let admin = api.admin();
    let r = api
        .post(
            "/v1/members",
            &admin,
            json!({"id": "j", "name": "J", "email": "\"johndoe\"@GMAIL.com"}),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["email"]),
        (201, &json!("johndoe@gmail.com")),
        "{}",
        r.body
    );
    for email in [
        "a\u{202E}b@x.com",
        "a\u{200B}b@x.com",
        "ａｄａ@example.com",
        "a@b..c",
        "<script>@x.com",
        "Ada <ada@x.com>",
    ] {
        refused_writing_nothing(
            &api,
            "POST",
            "/v1/members",
            &admin,
            json!({"id": "e", "name": "E", "email": email}),
            400,
            "email",
        )
        .await;
        refused_writing_nothing(
            &api,
            "PATCH",
            "/v1/members/j",
            &admin,
            json!({"email": email}),
            400,
            "email",
        )
        .await;
    }
}
both_backends!(e_mail_addresses_are_parsed_by_the_rfc_and_kept_in_one_form);
