//! Replays every sample event under `events/` through its function (the same router or handler
//! the Lambda binary runs), against a seeded store with the clock at the events' instant, and
//! checks the status its file name promises. Samples that stop matching the code fail here.

use loyalty::http::extract::parse_json;
use loyalty::service::Services;
use loyalty::store::EmbeddedStore;
use loyalty_accrual::PurchaseRequest;
use loyalty_members::{AdjustmentRequest, EnrolRequest};
use loyalty_redemption::RewardInput;
use loyalty_tests::services_on;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use tower::ServiceExt;

const NOW: &str = "2026-11-22T10:15:00Z";

fn parse<T: serde::de::DeserializeOwned + serde::Serialize>(v: Value) -> T {
    parse_json(v.to_string().as_bytes())
        .map(|b| b.value)
        .unwrap_or_else(|p| panic!("{p:?}"))
}

/// The state every sample assumes: Ada (1000 points, a purchase R-1001 at store-1, one coffee
/// voucher), Bob (no points), and the free-coffee reward.
async fn seeded() -> (Services, String) {
    let (svc, clock) = services_on(
        Arc::new(EmbeddedStore::in_memory().unwrap()),
        Default::default(),
    );
    clock.set(NOW.parse().unwrap());
    let id = |s: &str| loyalty::domain::MemberId::parse(s).unwrap();
    svc.members.enrol(id("member-ada"), parse::<EnrolRequest>(json!({"name": "Ada", "phone": "+8613800000000", "birthday": "1990-11-22", "timezone": "Asia/Shanghai"})).into(), None, None, "test").await.unwrap();
    svc.members
        .enrol(
            id("member-bob"),
            parse::<EnrolRequest>(json!({"name": "Bob"})).into(),
            None,
            None,
            "test",
        )
        .await
        .unwrap();
    svc.members
        .adjust(
            &id("member-ada"),
            parse::<AdjustmentRequest>(json!({"points": 1000, "reason": "seed"})).into(),
            None,
            &loyalty_tests::admin_actor(),
        )
        .await
        .unwrap();
    let coffee = loyalty::domain::RewardId::parse("free-coffee").unwrap();
    svc.redemptions
        .put_reward(
            &coffee,
            parse::<RewardInput>(json!({"name": "Free coffee", "cost_points": 100, "stock": 50}))
                .into(),
            &loyalty_tests::admin_actor(),
        )
        .await
        .unwrap();
    // No `occurred_at`: recorded now, as the samples' purchases are (so they never go stale).
    let purchase = json!({"member": {"id": "member-ada"}, "store_id": "store-1", "receipt_id": "R-1001",
        "amount": {"value": 1999, "currency": "USD"}});
    let body = parse_json::<PurchaseRequest>(purchase.to_string().as_bytes()).unwrap();
    let digest = body.digest();
    svc.purchases
        .purchase(body.value.into(), &digest, None)
        .await
        .unwrap();
    let voucher = svc
        .redemptions
        .redeem(&id("member-ada"), &coffee, None, None)
        .await
        .unwrap()
        .value
        .redemption
        .voucher_code;
    // A segments run, so the analytics samples have a day to report.
    svc.segments
        .segments_job(NOW.parse().unwrap(), 1)
        .await
        .unwrap();
    // A running campaign for every silver member, and a draft.
    for id in ["double-drinks", "spring-draft"] {
        let c = json!({"name": id, "audience": ["tier:silver"], "starts_at": "2026-11-20T00:00:00Z",
            "ends_at": "2026-12-20T00:00:00Z", "offer": {"kind": "multiplier", "multiplier": 2, "categories": ["drinks"]},
            "budget_points": 10000, "holdout_percent": 10});
        let id = loyalty::domain::CampaignId::parse(id).unwrap();
        svc.campaigns
            .put_campaign(
                &id,
                parse::<loyalty_campaigns::CampaignInput>(c).into(),
                &loyalty_tests::admin_actor(),
            )
            .await
            .unwrap();
    }
    svc.campaigns
        .launch_campaign(
            &loyalty::domain::CampaignId::parse("double-drinks").unwrap(),
            &loyalty_tests::admin_actor(),
        )
        .await
        .unwrap();
    (svc, voucher)
}

fn events() -> Vec<(String, PathBuf, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).expect("events/ exists") {
        let dir = dir.unwrap().path();
        let function = dir.file_name().unwrap().to_string_lossy().to_string();
        if function == "payloads" {
            // Webhook bodies, not a function's input: checked against the schema below.
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let path = f.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let expected = name
                .trim_end_matches(".json")
                .rsplit('.')
                .next()
                .unwrap()
                .to_owned();
            out.push((function.clone(), path, expected));
        }
    }
    out.sort();
    out
}

fn routes(function: &str) -> axum::Router<Services> {
    match function {
        "members" => loyalty_members::router(),
        "accrual" => loyalty_accrual::router(),
        "tiers" => loyalty_tiers::router(),
        "redemption" => loyalty_redemption::router(),
        "segments" => loyalty_segments::router(),
        "campaigns" => loyalty_campaigns::router(),
        other => panic!("events/{other}/ belongs to no HTTP function"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_event_gets_the_status_its_name_promises() {
    let all = events();
    assert!(
        all.len() >= 40,
        "expected the full sample set, found {}",
        all.len()
    );
    for function in [
        "members",
        "accrual",
        "tiers",
        "redemption",
        "birthday",
        "tier-requalification",
        "points-job",
        "webhooks",
        "segments",
        "segments-job",
        "operator-token",
    ] {
        assert!(
            all.iter().any(|(f, _, _)| f == function),
            "no samples for {function}"
        );
    }
    let mut failures = Vec::new();
    for (function, path, expected) in all {
        let (svc, voucher) = seeded().await;
        let code = svc
            .referrals
            .referral(&loyalty::domain::MemberId::parse("member-ada").unwrap())
            .await
            .unwrap()
            .code
            .expect("made at enrolment")
            .to_string();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("{{voucher_code}}", &voucher)
            .replace("{{referral_code}}", &code);
        let shown = path
            .strip_prefix(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
            .unwrap_or(&path)
            .display()
            .to_string();
        match function.as_str() {
            "birthday" => {
                let input: loyalty_birthday::ScheduledInput = serde_json::from_str(&text).unwrap();
                let run = loyalty_birthday::run(&svc, input).await.unwrap();
                // Ada's birthday is today in Shanghai but was set today: in play, not yet eligible.
                if (run.examined, run.ineligible, run.issued) != (1, 1, 0) {
                    failures.push(format!("{shown}: {run:?}"));
                }
            }
            "webhooks" => {
                // The function's parsing of what SQS hands it; delivery is proven in
                // tests/events_feed.rs against a real receiver.
                let batch: aws_lambda_events::sqs::SqsEvent = serde_json::from_str(&text).unwrap();
                for m in &batch.records {
                    match loyalty_webhooks::events_in(m.body.as_deref().unwrap_or("")) {
                        Ok(events) if !events.is_empty() => {}
                        other => failures.push(format!("{shown}: {other:?}")),
                    }
                }
            }
            "operator-token" => {
                let event: Value = serde_json::from_str(&text).unwrap();
                let out = loyalty_operator_token::respond(event).unwrap();
                let access =
                    &out["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"];
                let want = if shown.ends_with("store-till.ok.json") {
                    json!({"scopesToAdd": ["loyalty/pos"], "claimsToAddOrOverride": {"store_id": "store-042"}})
                } else {
                    json!({"scopesToAdd": ["loyalty/support"]})
                };
                if *access != want {
                    failures.push(format!("{shown}: {access}"));
                }
            }
            "segments-job" => {
                let input: loyalty_segments::JobInput = serde_json::from_str(&text).unwrap();
                match loyalty_segments::run_job(&svc, input).await {
                    // Ada and Bob, each examined once by the whole run or their part.
                    Ok(out)
                        if serde_json::to_value(&out).unwrap()["examined"].as_u64() <= Some(2) => {}
                    other => failures.push(format!("{shown}: {other:?}")),
                }
            }
            "tier-requalification" => {
                let input: loyalty_tiers::ScheduledInput = serde_json::from_str(&text).unwrap();
                let run = loyalty_tiers::run_requalification(&svc, input)
                    .await
                    .unwrap();
                if run.examined != 0 {
                    failures.push(format!("{shown}: nobody's tier has expired, yet {run:?}"));
                }
            }
            "points-job" => {
                let input: loyalty_members::ScheduledInput = serde_json::from_str(&text).unwrap();
                let run = loyalty_members::run_points_job(&svc, input).await.unwrap();
                // The default rules: nothing pending, nothing expires, nobody is due.
                if run.examined != 0 {
                    failures.push(format!("{shown}: nobody's points are due, yet {run:?}"));
                }
            }
            _ => {
                let req = lambda_http::request::from_str(&text)
                    .unwrap_or_else(|e| panic!("{shown}: {e}"));
                let req = req.map(|b| axum::body::Body::from(b.to_vec()));
                // As the binaries serve them: the members function serves the document too.
                let doc = (function == "members")
                    .then_some(loyalty_members::api_document as loyalty::http::Document);
                let app = loyalty::http::app(routes(&function), svc.clone(), doc);
                let res = app.oneshot(req).await.unwrap();
                // In Lambda the request id is API Gateway's.
                let sent: serde_json::Value = serde_json::from_str(&text).unwrap();
                let want_id = sent["requestContext"]["requestId"]
                    .as_str()
                    .unwrap_or_default();
                if res
                    .headers()
                    .get("x-request-id")
                    .is_none_or(|v| v != want_id)
                {
                    failures.push(format!("{shown}: x-request-id is not {want_id}"));
                }
                let status = res.status().as_u16().to_string();
                let problem = res
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v == "application/problem+json");
                if status != expected {
                    use http_body_util::BodyExt;
                    let body = res.into_body().collect().await.unwrap().to_bytes();
                    failures.push(format!(
                        "{shown}: expected {expected}, got {status} {}",
                        String::from_utf8_lossy(&body)
                    ));
                } else if (status.starts_with('4') || status.starts_with('5')) != problem {
                    failures.push(format!(
                        "{shown}: errors must be problem+json and successes not"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "samples out of step with the code:\n{}",
        failures.join("\n")
    );
}

/// The event types the OpenAPI document names: `Event` is a `oneOf` of one named schema per
/// `EventData` variant (utoipa derives them from the enum itself), told apart by `type`.
fn documented_event_types(doc: &Value) -> BTreeSet<String> {
    let event = &doc["components"]["schemas"]["Event"];
    assert_eq!(event["discriminator"]["propertyName"], "type");
    let mapping = event["discriminator"]["mapping"]
        .as_object()
        .expect("Event maps each type to its schema");
    for (tag, schema) in mapping {
        let name = schema.as_str().unwrap().rsplit('/').next().unwrap();
        let named = &doc["components"]["schemas"][name];
        let kind = named["properties"]["type"]["$ref"].as_str().unwrap();
        let kind = &doc["components"]["schemas"][kind.rsplit('/').next().unwrap()];
        assert_eq!(kind["enum"], json!([tag]), "{name}");
        assert!(
            event["oneOf"]
                .as_array()
                .unwrap()
                .contains(&json!({"$ref": schema})),
            "{name} is one of Event's branches"
        );
    }
    assert_eq!(event["oneOf"].as_array().unwrap().len(), mapping.len());
    mapping.keys().cloned().collect()
}

#[test]
fn every_event_type_has_a_sample_payload_that_matches_its_schema_and_its_type() {
    let doc = loyalty_members::api_document();
    let types = documented_event_types(&doc);
    assert_eq!(types.len(), 25, "every event type of API.md: {types:?}");
    let schema = loyalty_tests::event_schema();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/payloads");
    let mut seen = BTreeSet::new();
    let mut failures = Vec::new();
    for f in std::fs::read_dir(&dir).expect("events/payloads/ exists") {
        let path = f.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        // `points.reversed+campaign.json`: a second shape of one type.
        let kind = name.split('+').next().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let sample: Value = serde_json::from_str(&text).unwrap();
        for e in schema.iter_errors(&sample) {
            failures.push(format!("{name}: {e} at {}", e.instance_path()));
        }
        match serde_json::from_value::<loyalty::domain::event::Event>(sample.clone()) {
            Ok(event) => {
                let back = serde_json::to_value(&event).unwrap();
                if back != sample {
                    failures.push(format!("{name}: reads back as {back}"));
                }
                if serde_json::to_value(event.kind()).unwrap() != json!(kind) {
                    failures.push(format!("{name}: is a {:?}", event.kind()));
                }
            }
            Err(e) => failures.push(format!("{name}: not an event: {e}")),
        }
        seen.insert(kind);
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(seen, types, "a sample per event type, and no other");
    // The schema refuses a payload of another type (a typed contract, not any object).
    let mut wrong: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("voucher.used.json")).unwrap())
            .unwrap();
    wrong["type"] = json!("points.earned");
    assert!(!schema.is_valid(&wrong));
}

/// Every HTTP sample is shaped as API Gateway's HTTP API (payload 2.0) sends it: `routeKey` is
/// the route's template from `template.yaml` (in both places), `pathParameters` holds what the
/// template's parameters matched in `rawPath`, and `queryStringParameters` the query. Every
/// route of the template has at least one sample, and no sample carries a date that a later
/// day would refuse (a purchase's `occurred_at` only where the sample promises that refusal).
#[test]
fn samples_are_shaped_as_api_gateway_sends_them_cover_every_route_and_never_go_stale() {
    let routes = loyalty_tests::template_routes();
    let mut covered = BTreeSet::new();
    let mut failures = Vec::new();
    for (function, path, expected) in events() {
        let text = std::fs::read_to_string(&path).unwrap();
        let d: Value = serde_json::from_str(&text).unwrap();
        let shown = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(key) = d["routeKey"].as_str() else {
            continue;
        };
        if d["requestContext"]["routeKey"] != d["routeKey"] {
            failures.push(format!(
                "{function}/{shown}: requestContext.routeKey differs"
            ));
        }
        let Some(known) = routes.get(&function) else {
            failures.push(format!(
                "{function}/{shown}: no such function in the template"
            ));
            continue;
        };
        if !known.contains(key) {
            failures.push(format!(
                "{function}/{shown}: {key} is no route of {function}"
            ));
            continue;
        }
        covered.insert((function.clone(), key.to_owned()));
        let (method, template) = key.split_once(' ').unwrap();
        if d["requestContext"]["http"]["method"] != method {
            failures.push(format!("{function}/{shown}: method differs from {key}"));
        }
        // The parameters the template's segments match in rawPath.
        let raw = d["rawPath"].as_str().unwrap();
        let (t, r): (Vec<&str>, Vec<&str>) =
            (template.split('/').collect(), raw.split('/').collect());
        let mut params = serde_json::Map::new();
        if t.len() != r.len() {
            failures.push(format!("{function}/{shown}: {raw} does not fit {template}"));
            continue;
        }
        for (ts, rs) in t.iter().zip(&r) {
            match ts.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
                Some(name) => {
                    params.insert(name.to_owned(), json!(rs));
                }
                None if ts != rs => {
                    failures.push(format!("{function}/{shown}: {raw} does not fit {template}"))
                }
                None => {}
            }
        }
        let given = d.get("pathParameters").cloned().unwrap_or(json!({}));
        if given != Value::Object(params.clone()) {
            failures.push(format!(
                "{function}/{shown}: pathParameters {given} (want {params:?})"
            ));
        }
        let query = d["rawQueryString"].as_str().unwrap_or("");
        let wanted: serde_json::Map<String, Value> =
            serde_urlencoded::from_str::<Vec<(String, String)>>(query)
                .unwrap()
                .into_iter()
                .map(|(k, v)| (k, json!(v)))
                .collect();
        let given = d.get("queryStringParameters").cloned().unwrap_or(json!({}));
        if given != Value::Object(wanted) {
            failures.push(format!(
                "{function}/{shown}: queryStringParameters {given} do not match {query:?}"
            ));
        }
        if let Some(body) = d["body"].as_str()
            && body.contains("occurred_at")
            && expected != "422"
        {
            failures.push(format!(
                "{function}/{shown}: a dated purchase goes stale; leave occurred_at out"
            ));
        }
    }
    for (function, keys) in &routes {
        for key in keys {
            if !covered.contains(&(function.clone(), key.clone())) {
                failures.push(format!("{function}: no sample for {key}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
