//! Who may call what: every route of the OpenAPI document × {no token, the member, another
//! member, POS of the store, POS of another store, admin, support, analyst} → the status it must answer, each cell
//! on a freshly seeded store. A route added without a row fails the test; a 403 carries no data.

use loyalty_tests::{Api, Backend};
use serde_json::{Value, json};
use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug)]
enum Who {
    Nobody,
    Member,
    OtherMember,
    Pos,
    OtherPos,
    Admin,
    Support,
    Analyst,
}

const WHO: [Who; 8] = [
    Who::Nobody,
    Who::Member,
    Who::OtherMember,
    Who::Pos,
    Who::OtherPos,
    Who::Admin,
    Who::Support,
    Who::Analyst,
];

struct Seeded {
    api: Api,
    redemption: String,
    voucher: String,
}

/// Member `m` (500 points, a purchase R1 at store-1, one redemption of `coffee`), reward
/// `coffee`, and one segments run.
async fn seeded() -> Seeded {
    let api = Api::new(Backend::Embedded).await;
    let admin = api.admin();
    api.enrol("m").await;
    let r = api
        .call(
            "PUT",
            "/v1/rewards/coffee",
            Some(&admin),
            Some(json!({"name": "Coffee", "cost_points": 10})),
        )
        .await;
    assert_eq!(r.status, 201);
    api.post(
        "/v1/members/m/adjustments",
        &admin,
        json!({"points": 500, "reason": "seed"}),
    )
    .await;
    let now = api.services.ctx.now().to_rfc3339();
    let r = api
        .post(
            "/v1/purchases",
            &api.pos("store-1"),
            json!({"member": {"id": "m"}, "store_id": "store-1",
            "receipt_id": "R1", "amount": {"value": 5000, "currency": "USD"}, "occurred_at": now}),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = api
        .post(
            "/v1/members/m/redemptions",
            &api.member("m"),
            json!({"reward_id": "coffee"}),
        )
        .await;
    assert_eq!(r.status, 201);
    // A referrer `r` with the code PALS2222, and `h`, referred by it with r's e-mail: h's
    // purchase is held for review (same e-mail).
    for body in [
        json!({"id": "r", "name": "R", "email": "r@example.com"}),
        json!({"id": "h", "name": "H", "email": "R@example.com", "referral_code": "PALS2222"}),
    ] {
        if body["id"] == "h" {
            let c = api
                .call(
                    "PUT",
                    "/v1/members/r/referral/code",
                    Some(&admin),
                    Some(json!({"code": "PALS2222"})),
                )
                .await;
            assert_eq!(c.status, 200, "{}", c.body);
        }
        let e = api.post("/v1/members", &admin, body).await;
        assert_eq!(e.status, 201, "{}", e.body);
    }
    let held = api
        .post(
            "/v1/purchases",
            &api.pos("store-1"),
            json!({"member": {"id": "h"}, "store_id": "store-1", "receipt_id": "H1",
            "amount": {"value": 5000, "currency": "USD"}, "occurred_at": now}),
        )
        .await;
    assert_eq!(held.status, 201, "{}", held.body);
    let d = api
        .call(
            "PUT",
            "/v1/segments/custom:seeded",
            Some(&admin),
            Some(
                json!({"name": "Silver", "rule": {"field": "tier", "op": "eq", "value": "silver"}}),
            ),
        )
        .await;
    assert_eq!(d.status, 201, "{}", d.body);
    // A segments run, so the analytics have a day to report.
    let run = api.post("/_local/jobs/segments", &admin, json!({})).await;
    assert_eq!(run.status, 200, "{}", run.body);
    // A running campaign (`live`) and a draft (`ready`).
    for id in ["live", "ready"] {
        let c = api
            .call(
                "PUT",
                &format!("/v1/campaigns/{id}"),
                Some(&admin),
                Some(campaign(&api)),
            )
            .await;
        assert_eq!(c.status, 201, "{}", c.body);
    }
    let c = api
        .post("/v1/campaigns/live/launch", &admin, json!({}))
        .await;
    assert_eq!(c.status, 200, "{}", c.body);
    Seeded {
        redemption: r.body["id"].as_str().unwrap().to_owned(),
        voucher: r.body["voucher_code"].as_str().unwrap().to_owned(),
        api,
    }
}

fn campaign(api: &Api) -> Value {
    let now = api.services.ctx.now();
    let at = |d: chrono::Duration| (now + d).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    json!({"name": "Bonus", "audience": ["tier:silver"], "starts_at": at(chrono::Duration::hours(-1)),
           "ends_at": at(chrono::Duration::days(30)), "offer": {"kind": "bonus", "points": 5},
           "budget_points": 1000})
}

fn token(api: &Api, who: Who) -> Option<String> {
    match who {
        Who::Nobody => None,
        Who::Member => Some(api.member("m")),
        Who::OtherMember => Some(api.member("o")),
        Who::Pos => Some(api.pos("store-1")),
        Who::OtherPos => Some(api.pos("store-2")),
        Who::Admin => Some(api.admin()),
        Who::Support => Some(api.support()),
        Who::Analyst => Some(api.analyst()),
    }
}

/// (method, path template, request, expected status for each of WHO in order)
fn table() -> Vec<(&'static str, &'static str, Value, [u16; 8])> {
    vec![
        (
            "GET",
            "/v1/members",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 200, 200],
        ),
        (
            "GET",
            "/v1/purchases/{store_id}/{receipt_id}",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 200, 200],
        ),
        (
            "GET",
            "/v1/members/{id}/campaigns",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 200, 200],
        ),
        (
            "POST",
            "/v1/members",
            json!({"name": "X"}),
            [401, 409, 201, 201, 201, 201, 403, 403],
        ),
        (
            "GET",
            "/v1/members/{id}",
            Value::Null,
            [401, 200, 403, 200, 200, 200, 200, 200],
        ),
        (
            "PATCH",
            "/v1/members/{id}",
            json!({"email": "m@example.com"}),
            [401, 200, 403, 403, 403, 200, 200, 403],
        ),
        (
            "DELETE",
            "/v1/members/{id}",
            Value::Null,
            [401, 200, 403, 403, 403, 200, 403, 403],
        ),
        (
            "GET",
            "/v1/members/{id}/ledger",
            Value::Null,
            [401, 200, 403, 403, 403, 200, 200, 200],
        ),
        (
            "POST",
            "/v1/members/{id}/adjustments",
            json!({"points": 5, "reason": "x"}),
            [401, 403, 403, 403, 403, 201, 201, 403],
        ),
        (
            "GET",
            "/v1/members/{id}/points",
            Value::Null,
            [401, 200, 403, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/v1/members/{id}/offers",
            Value::Null,
            [401, 200, 403, 403, 403, 200, 200, 200],
        ),
        (
            "GET",
            "/v1/members/{id}/events",
            Value::Null,
            [401, 200, 403, 403, 403, 200, 200, 200],
        ),
        (
            "GET",
            "/v1/events",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 403, 200],
        ),
        (
            "POST",
            "/v1/purchases",
            json!("purchase"),
            [401, 403, 403, 201, 403, 201, 403, 403],
        ),
        (
            "POST",
            "/v1/purchases/{store_id}/{receipt_id}/refunds",
            json!({"refund_id": "F1", "amount": {"value": 100, "currency": "USD"}}),
            [401, 403, 403, 201, 403, 201, 403, 403],
        ),
        (
            "GET",
            "/v1/members/{id}/tier",
            Value::Null,
            [401, 200, 403, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/v1/rewards",
            Value::Null,
            [401, 200, 200, 200, 200, 200, 200, 200],
        ),
        (
            "PUT",
            "/v1/rewards/{id}",
            json!({"name": "Cake", "cost_points": 5}),
            [401, 403, 403, 403, 403, 201, 403, 403],
        ),
        (
            "POST",
            "/v1/members/{id}/redemptions",
            json!({"reward_id": "coffee"}),
            [401, 201, 403, 403, 403, 201, 403, 403],
        ),
        (
            "GET",
            "/v1/members/{id}/redemptions",
            Value::Null,
            [401, 200, 403, 403, 403, 200, 200, 200],
        ),
        (
            "POST",
            "/v1/members/{id}/redemptions/{redemption_id}/cancel",
            Value::Null,
            [401, 200, 403, 403, 403, 200, 200, 403],
        ),
        (
            "POST",
            "/v1/vouchers/{code}/use",
            json!({"store_id": "store-1"}),
            [401, 403, 403, 200, 403, 200, 403, 403],
        ),
        (
            "GET",
            "/v1/segments",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 403, 200],
        ),
        (
            "PUT",
            "/v1/segments/{id}",
            json!({"name": "Fresh", "rule": {"field": "tags", "op": "contains", "value": "vip"}}),
            [401, 403, 403, 403, 403, 201, 403, 403],
        ),
        (
            "GET",
            "/v1/segments/{id}",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 403, 200],
        ),
        (
            "DELETE",
            "/v1/segments/{id}",
            Value::Null,
            [401, 403, 403, 403, 403, 204, 403, 403],
        ),
        (
            "GET",
            "/v1/members/{id}/tags",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 200, 200],
        ),
        (
            "PUT",
            "/v1/members/{id}/tags",
            json!({"tags": ["vip"]}),
            [401, 403, 403, 403, 403, 200, 200, 403],
        ),
        (
            "GET",
            "/v1/segments/{id}/members",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 403, 200],
        ),
        (
            "GET",
            "/v1/segments/{id}/history",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 403, 200],
        ),
        (
            "GET",
            "/v1/analytics/overview",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 403, 200],
        ),
        (
            "GET",
            "/v1/analytics/retention",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 403, 200],
        ),
        // Too few purchasing members in the seed for a fit: the readers get the 404 of "before
        // the first fit", everyone else 403 (tests/api/predictions.rs reads a fit).
        (
            "GET",
            "/v1/analytics/predictions",
            Value::Null,
            [401, 403, 403, 403, 403, 404, 403, 404],
        ),
        (
            "GET",
            "/v1/campaigns",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 403, 200],
        ),
        (
            "PUT",
            "/v1/campaigns/{id}",
            json!("campaign"),
            [401, 403, 403, 403, 403, 201, 403, 403],
        ),
        (
            "GET",
            "/v1/campaigns/{id}",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 403, 200],
        ),
        (
            "POST",
            "/v1/campaigns/{id}/launch",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 403, 403],
        ),
        (
            "POST",
            "/v1/campaigns/{id}/end",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 403, 403],
        ),
        (
            "GET",
            "/v1/analytics/daily",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 403, 200],
        ),
        (
            "GET",
            "/v1/audit",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 403, 403],
        ),
        (
            "GET",
            "/v1/members/{id}/referral",
            Value::Null,
            [401, 200, 403, 403, 403, 200, 200, 200],
        ),
        (
            "POST",
            "/v1/members/{id}/referral/apply",
            json!({"code": "PALS2222"}),
            [401, 201, 403, 403, 403, 201, 201, 403],
        ),
        (
            "PUT",
            "/v1/members/{id}/referral/code",
            json!({"code": "MVANTY22"}),
            [401, 403, 403, 403, 403, 200, 403, 403],
        ),
        (
            "GET",
            "/v1/referrals",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 200, 200],
        ),
        (
            "POST",
            "/v1/referrals/{referee_id}/approve",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 403, 403],
        ),
        (
            "POST",
            "/v1/referrals/{referee_id}/reject",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 403, 403],
        ),
        (
            "GET",
            "/v1/analytics/referrals",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 403, 200],
        ),
        (
            "GET",
            "/v1/campaigns/{id}/results",
            Value::Null,
            [401, 403, 403, 403, 403, 200, 403, 200],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_role_as_the_contract_says() {
    // Completeness: the rows are exactly the document's operations.
    let doc = loyalty_members::api_document();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(|m| (m.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let rows: BTreeSet<(String, String)> = table()
        .iter()
        .map(|(m, p, _, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        rows, documented,
        "a route without a row (or a row without a route)"
    );
    // Every request body and success response has an example (on its schema, or on the items
    // of its list).
    let schemas = &doc["components"]["schemas"];
    fn has_example(s: &Value, schemas: &Value) -> bool {
        if s.get("example").is_some() || s.get("examples").is_some() {
            return true;
        }
        if let Some(r) = s["$ref"].as_str() {
            return has_example(&schemas[r.rsplit('/').next().unwrap()], schemas);
        }
        s["properties"]["items"]
            .get("items")
            .is_some_and(|i| has_example(i, schemas))
    }
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let body = &op["requestBody"]["content"]["application/json"]["schema"];
            assert!(
                body.is_null() || has_example(body, schemas),
                "{method} {path}: request without an example"
            );
            for (status, r) in op["responses"].as_object().unwrap() {
                let s = &r["content"]["application/json"]["schema"];
                assert!(
                    !status.starts_with('2') || s.is_null() || has_example(s, schemas),
                    "{method} {path} {status}: response without an example"
                );
            }
        }
    }
    // Each operation's description says who may call it.
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let text = op["description"].as_str().unwrap_or_default();
            assert!(
                text.contains("Who may call: "),
                "{method} {path}: the description does not say who may call it"
            );
        }
    }

    let mut failures = Vec::new();
    for (method, template, body, expected) in table() {
        for (who, want) in WHO.iter().zip(expected) {
            let s = seeded().await;
            let path = template
                .replace(
                    "{id}",
                    if template.starts_with("/v1/rewards") {
                        "cake"
                    } else if template == "/v1/segments/{id}" && method == "PUT" {
                        "custom:fresh"
                    } else if template == "/v1/segments/{id}" {
                        "custom:seeded"
                    } else if template.starts_with("/v1/segments") {
                        "lifecycle:new"
                    } else if method == "PUT" && template.starts_with("/v1/campaigns") {
                        "fresh"
                    } else if template.ends_with("/launch") {
                        "ready"
                    } else if template.starts_with("/v1/campaigns") {
                        "live"
                    } else {
                        "m"
                    },
                )
                .replace("{referee_id}", "h")
                .replace("{store_id}", "store-1")
                .replace("{receipt_id}", "R1")
                .replace("{redemption_id}", &s.redemption)
                .replace("{code}", &s.voucher);
            let path = if path == "/v1/members" && method == "GET" {
                // m enrolled without a phone: an operator finds nobody (200, empty list).
                "/v1/members?phone=%2B14155550111".to_owned()
            } else if path == "/v1/events" {
                let now = s.api.services.ctx.now();
                format!(
                    "/v1/events?from={}&to={}",
                    (now - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ"),
                    (now + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ")
                )
            } else if path == "/v1/referrals" {
                "/v1/referrals?status=held".to_owned()
            } else if path.ends_with("/history")
                || path.ends_with("/daily")
                || path.ends_with("/analytics/referrals")
            {
                let today = s.api.services.ctx.now().date_naive();
                format!("{path}?from={today}&to={today}")
            } else {
                path
            };
            let body = if body == json!("purchase") {
                Some(
                    json!({"member": {"id": "m"}, "store_id": "store-1", "receipt_id": "R2",
                    "amount": {"value": 100, "currency": "USD"}, "occurred_at": s.api.services.ctx.now().to_rfc3339()}),
                )
            } else if body == json!("campaign") {
                Some(campaign(&s.api))
            } else if body.is_null() && method == "POST" {
                Some(json!({}))
            } else if body.is_null() {
                None
            } else {
                Some(body.clone())
            };
            let t = token(&s.api, *who);
            let r = s.api.call(method, &path, t.as_deref(), body).await;
            if r.status != want {
                failures.push(format!(
                    "{method} {template} as {who:?}: {} (want {want}) {}",
                    r.status, r.body
                ));
            }
            if r.status == 403 {
                let keys: BTreeSet<&str> = r
                    .body
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                let allowed: BTreeSet<&str> =
                    ["type", "title", "status", "detail", "instance"].into();
                if !keys.is_subset(&allowed) {
                    failures.push(format!(
                        "{method} {template} as {who:?}: 403 with data {}",
                        r.body
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The operations one function's router serves, as (METHOD, path).
fn operations(doc: Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(|m| (m.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_documented_operation_has_its_route_on_the_function_that_serves_it_in_the_template() {
    let template = loyalty_tests::template();
    // The binary each HTTP function deploys, and the router that binary serves.
    type Routes = fn() -> utoipa_axum::router::OpenApiRouter<loyalty::service::Services>;
    let served: [(&str, Routes); 6] = [
        ("members", loyalty_members::routes),
        ("accrual", loyalty_accrual::routes),
        ("tiers", loyalty_tiers::routes),
        ("redemption", loyalty_redemption::routes),
        ("segments", loyalty_segments::routes),
        ("campaigns", loyalty_campaigns::routes),
    ];
    let mut routed_anywhere = BTreeSet::new();
    let mut checked = BTreeSet::new();
    for (name, res) in template["Resources"].as_mapping().unwrap() {
        if res["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = res["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{name:?} names no binary"));
        let mut routes = BTreeSet::new();
        if let Some(events) = res["Properties"]["Events"].as_mapping() {
            for (key, ev) in events {
                let key = key.as_str().unwrap();
                // CloudFormation logical ids are alphanumeric, and SAM prefixes event keys.
                assert!(
                    key.chars().all(|c| c.is_ascii_alphanumeric()),
                    "event key {key} of {name:?} would make a logical id CloudFormation refuses"
                );
                if ev["Type"].as_str() == Some("HttpApi") {
                    let p = &ev["Properties"];
                    routes.insert((
                        p["Method"].as_str().unwrap().to_uppercase(),
                        p["Path"].as_str().unwrap().to_owned(),
                    ));
                }
            }
        }
        routed_anywhere.extend(routes.iter().cloned());
        let Some((_, router)) = served.iter().find(|(b, _)| *b == binary) else {
            assert!(
                routes.is_empty(),
                "{binary} has routes but serves no router"
            );
            continue;
        };
        let mut expected = operations(serde_json::to_value(router().into_openapi()).unwrap());
        if binary == "members" {
            // The deployed function that serves the whole document.
            expected.insert(("GET".into(), "/v1/openapi.json".into()));
        }
        assert_eq!(
            routes, expected,
            "the template's routes of {binary} differ from the operations its router serves"
        );
        checked.insert(binary);
    }
    assert_eq!(
        checked.len(),
        served.len(),
        "an HTTP function missing from the template"
    );
    let mut documented = operations(loyalty_members::api_document());
    documented.insert(("GET".into(), "/v1/openapi.json".into()));
    assert_eq!(
        routed_anywhere, documented,
        "an operation of the OpenAPI document with no route in the template (or the reverse)"
    );
}

/// The gateway's `AuthorizationScopes` of each route say what the role × route table says: a
/// route no member may call lists exactly the scopes of the callers the table lets through
/// (POS, admin, support, analyst); a route a member may call lists none (a member's token
/// carries no scope of ours).
#[test]
fn the_templates_route_scopes_grant_exactly_the_callers_the_role_matrix_lets_through() {
    let template = loyalty_tests::template();
    let mut scopes_of = std::collections::BTreeMap::new();
    for (_, res) in template["Resources"].as_mapping().unwrap() {
        for (_, ev) in res["Properties"]["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
        {
            if ev["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let p = &ev["Properties"];
            let scopes: BTreeSet<String> = p["Auth"]["AuthorizationScopes"]
                .as_sequence()
                .into_iter()
                .flatten()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect();
            scopes_of.insert(
                (
                    p["Method"].as_str().unwrap().to_uppercase(),
                    p["Path"].as_str().unwrap().to_owned(),
                ),
                scopes,
            );
        }
    }
    let passes = |status: u16| status != 401 && status != 403;
    let mut failures = Vec::new();
    for (method, path, _, s) in table() {
        let [_, member, other_member, pos, _, admin, support, analyst] = s;
        let expected: BTreeSet<String> = if passes(member) || passes(other_member) {
            BTreeSet::new()
        } else {
            [
                (pos, "loyalty/pos"),
                (admin, "loyalty/admin"),
                (support, "loyalty/support"),
                (analyst, "loyalty/analyst"),
            ]
            .into_iter()
            .filter(|(st, _)| passes(*st))
            .map(|(_, scope)| scope.to_owned())
            .collect()
        };
        match scopes_of.get(&(method.to_owned(), path.to_owned())) {
            Some(got) if *got == expected => {}
            got => failures.push(format!("{method} {path}: {got:?}, want {expected:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
