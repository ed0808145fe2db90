//! The OpenAPI 3.1 document, assembled from the routers' own annotations so it cannot drift from
//! the code: each function contributes its paths; this adds the title, servers, licence, the
//! bearer scheme, and what every operation shares because one edge answers for all of them
//! (401 for a missing or bad token, problem+json for every error, 400 for a malformed request,
//! 413 for a body over the limit, 503 with `Retry-After` when a write cannot commit in time,
//! 410 for an erased member, the bounds of `limit`, `Idempotent-Replayed` on replayable answers).

use serde_json::{Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder};

/// The document as JSON: the shapes generators need ([`super::generators`]) are ones utoipa's
/// types cannot hold (an empty schema for any value).
pub fn document(parts: impl IntoIterator<Item = OpenApi>) -> Value {
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Loyalty API")
                .version("1")
                .description(Some("Points (pending and expiring), tiers, rewards, vouchers, events, segments and campaigns for mobile apps, POS systems and operators. Errors are RFC 9457 application/problem+json."))
                .build(),
        )
        .build();
    for p in parts {
        doc.merge(p);
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    let mut v = serde_json::to_value(&doc).expect("the document serialises");
    complete(&mut v);
    state_bounds(&mut v);
    super::generators::shape(&mut v);
    v
}

const PROBLEM: &str = "application/problem+json";

fn problem(description: &str) -> Value {
    json!({"description": description,
           "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/ProblemDocument"}}}})
}

/// States the bounds the rules hold numbers to (`domain::bounds`) where the document names the
/// fields.
fn state_bounds(doc: &mut Value) {
    for (schema, field, b) in crate::domain::bounds::BODY_FIELDS {
        let prop = doc["components"]["schemas"][*schema]["properties"][*field].clone();
        assert!(prop.is_object(), "{schema}.{field} is not in the document");
        // A reference cannot carry bounds here: the referenced schema is written in its place.
        let mut bounded = match prop["$ref"].as_str() {
            Some(r) => {
                let mut inline =
                    doc["components"]["schemas"][r.rsplit('/').next().unwrap_or(r)].clone();
                if let Some(d) = prop.get("description") {
                    inline["description"] = d.clone();
                }
                inline
            }
            None => prop,
        };
        bounded["minimum"] = json!(b.min);
        bounded["maximum"] = json!(b.max);
        doc["components"]["schemas"][*schema]["properties"][*field] = bounded;
    }
}

/// Adds what the shared edge makes true of every operation.
fn complete(doc: &mut Value) {
    doc["info"]["license"] = json!({"name": "MIT", "identifier": "MIT"});
    // The deployed API first: generators make `servers[0]` a client's default base URL, and an
    // app must not default to a developer's machine.
    doc["servers"] = json!([
        {"url": "https://{api}.execute-api.{region}.amazonaws.com", "description": "the deployed HTTP API (stack output ApiUrl)",
         "variables": {"api": {"default": "your-api-id", "description": "the HTTP API's id (stack output ApiUrl)"},
                       "region": {"default": "us-east-1"}}},
        {"url": "http://127.0.0.1:3000", "description": "loyalty-local (cargo run -p loyalty-local)"}
    ]);
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, ops) in paths.iter_mut() {
        let Some(ops) = ops.as_object_mut() else {
            continue;
        };
        for (method, op) in ops.iter_mut() {
            complete_operation(path, method, op);
        }
    }
}

/// Who may call each operation (the role × route matrix test holds the statuses).
const WHO: &[(&str, &str, &str)] = &[
    (
        "get",
        "/v1/members",
        "every operator (admin, support, analyst)",
    ),
    (
        "get",
        "/v1/purchases/{store_id}/{receipt_id}",
        "every operator (admin, support, analyst)",
    ),
    (
        "get",
        "/v1/members/{id}/campaigns",
        "every operator (admin, support, analyst); never the member",
    ),
    (
        "post",
        "/v1/members",
        "a member (enrolling themselves), a POS (UUID ids only), an administrator",
    ),
    (
        "get",
        "/v1/members/{id}",
        "the member, a POS, every operator (admin, support, analyst)",
    ),
    (
        "patch",
        "/v1/members/{id}",
        "the member, an administrator, support (the birthday once set: operators only)",
    ),
    ("delete", "/v1/members/{id}", "the member, an administrator"),
    (
        "get",
        "/v1/members/{id}/ledger",
        "the member, every operator (admin, support, analyst)",
    ),
    (
        "post",
        "/v1/members/{id}/adjustments",
        "an administrator, support (at most the program's support_adjustment_limit points either way)",
    ),
    (
        "get",
        "/v1/members/{id}/events",
        "the member, every operator (admin, support, analyst)",
    ),
    ("get", "/v1/events", "an administrator, an analyst"),
    (
        "get",
        "/v1/members/{id}/tags",
        "every operator (admin, support, analyst)",
    ),
    ("put", "/v1/members/{id}/tags", "an administrator, support"),
    ("put", "/v1/segments/{id}", "an administrator"),
    ("get", "/v1/segments/{id}", "an administrator, an analyst"),
    ("delete", "/v1/segments/{id}", "an administrator"),
    ("get", "/v1/audit", "an administrator"),
    (
        "post",
        "/v1/purchases",
        "a POS of the purchase's store, an administrator",
    ),
    (
        "post",
        "/v1/purchases/{store_id}/{receipt_id}/refunds",
        "a POS of the store, an administrator",
    ),
    (
        "get",
        "/v1/members/{id}/tier",
        "the member, a POS, every operator (admin, support, analyst)",
    ),
    ("get", "/v1/rewards", "anyone with a valid token"),
    ("put", "/v1/rewards/{id}", "an administrator"),
    (
        "post",
        "/v1/members/{id}/redemptions",
        "the member, an administrator",
    ),
    (
        "get",
        "/v1/members/{id}/redemptions",
        "the member, every operator (admin, support, analyst)",
    ),
    (
        "post",
        "/v1/members/{id}/redemptions/{redemption_id}/cancel",
        "the member, an administrator, support",
    ),
    (
        "post",
        "/v1/vouchers/{code}/use",
        "a POS of the store named in the body, an administrator",
    ),
    ("get", "/v1/segments", "an administrator, an analyst"),
    (
        "get",
        "/v1/segments/{id}/members",
        "an administrator, an analyst",
    ),
    (
        "get",
        "/v1/segments/{id}/history",
        "an administrator, an analyst",
    ),
    (
        "get",
        "/v1/analytics/overview",
        "an administrator, an analyst",
    ),
    (
        "get",
        "/v1/analytics/retention",
        "an administrator, an analyst",
    ),
    ("get", "/v1/analytics/daily", "an administrator, an analyst"),
    (
        "get",
        "/v1/analytics/predictions",
        "an administrator, an analyst",
    ),
    (
        "get",
        "/v1/analytics/referrals",
        "an administrator, an analyst",
    ),
    (
        "get",
        "/v1/members/{id}/referral",
        "the member, every operator (admin, support, analyst)",
    ),
    (
        "post",
        "/v1/members/{id}/referral/apply",
        "the member, an administrator, support",
    ),
    ("put", "/v1/members/{id}/referral/code", "an administrator"),
    (
        "get",
        "/v1/referrals",
        "every operator (admin, support, analyst)",
    ),
    (
        "post",
        "/v1/referrals/{referee_id}/approve",
        "an administrator",
    ),
    (
        "post",
        "/v1/referrals/{referee_id}/reject",
        "an administrator",
    ),
    (
        "get",
        "/v1/members/{id}/points",
        "the member, a POS, every operator (admin, support, analyst)",
    ),
    (
        "get",
        "/v1/members/{id}/offers",
        "the member, every operator (admin, support, analyst)",
    ),
    ("get", "/v1/campaigns", "an administrator, an analyst"),
    ("put", "/v1/campaigns/{id}", "an administrator"),
    ("get", "/v1/campaigns/{id}", "an administrator, an analyst"),
    ("post", "/v1/campaigns/{id}/launch", "an administrator"),
    ("post", "/v1/campaigns/{id}/end", "an administrator"),
    (
        "get",
        "/v1/campaigns/{id}/results",
        "an administrator, an analyst",
    ),
];

fn complete_operation(path: &str, method: &str, op: &mut Value) {
    if let Some((_, _, who)) = WHO.iter().find(|(m, p, _)| *m == method && *p == path) {
        let text = op["description"].as_str().unwrap_or_default();
        let text = if text.is_empty() {
            format!("Who may call: {who}.")
        } else {
            format!("{text}\n\nWho may call: {who}.")
        };
        op["description"] = json!(text);
    }
    let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
    let has_body = op.get("requestBody").is_some();
    let params: Vec<String> = op["parameters"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let has_query = op["parameters"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
    // A key, or the request's own content (a receipt, a refund id, the code applied), makes a
    // retry answer the first response.
    let idempotent = params.iter().any(|p| p == "Idempotency-Key")
        || path == "/v1/purchases"
        || path.ends_with("/refunds")
        || path.ends_with("/referral/apply");
    let write = method != "get";
    // Routes on a member answer 410 once it was erased; enrolling an erased id too.
    let on_member = path.starts_with("/v1/members") || path.starts_with("/v1/purchases");
    // A path naming something, or a purchase naming its member in the body.
    let names_something = path.contains('{') || path == "/v1/purchases";

    if let Some(ps) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in ps {
            if p["name"] == "limit" {
                let b = crate::domain::bounds::PAGE_LIMIT;
                p["schema"] =
                    json!({"type": "integer", "minimum": b.min, "maximum": b.max, "default": 20});
                p["description"] = json!(format!("Items per page, {b} (default 20)."));
            }
            for (at, name, b) in crate::domain::bounds::QUERY_PARAMETERS {
                if *at == path && p["name"] == *name {
                    p["schema"]["minimum"] = json!(b.min);
                    p["schema"]["maximum"] = json!(b.max);
                }
            }
            if p["name"] == "cursor" {
                p["description"] = json!("The `next_cursor` of the previous page, as it was.");
            }
            if p["name"] == "Idempotency-Key" {
                p["schema"] = json!({"type": "string", "minLength": 1, "maxLength": 255});
                p["description"] = json!(
                    "Makes a retry answer the first response instead of acting twice (kept 24 h)."
                );
            }
        }
    }
    let responses = op["responses"]
        .as_object_mut()
        .expect("every operation has responses");
    for (status, r) in responses.iter_mut() {
        let code: u16 = status.parse().unwrap_or(0);
        if code >= 400 {
            let description = r["description"]
                .as_str()
                .filter(|d| !d.is_empty())
                .map(str::to_owned)
                .unwrap_or_else(|| default_description(code).to_owned());
            *r = problem(&description);
        } else if r["description"].as_str().is_none_or(str::is_empty) {
            r["description"] = json!(default_description(code));
        }
        if (200..300).contains(&code) && idempotent {
            r["headers"]["Idempotent-Replayed"] = json!({
                "description": "`true` when this answer replays an earlier identical request",
                "schema": {"type": "string", "enum": ["true"]}});
        }
    }
    let mut add = |code: &str, r: Value| {
        responses.entry(code.to_owned()).or_insert(r);
    };
    if secured {
        add(
            "401",
            problem("No bearer token, or one that is invalid or expired (the detail says which)"),
        );
        add("403", problem("The token's role may not do this"));
    }
    // A path parameter that is not UTF-8 is malformed too.
    if has_body || has_query || write || names_something {
        add(
            "400",
            problem("Malformed: not JSON, wrong shape, an unknown field or parameter"),
        );
    }
    if has_body {
        add("413", problem("The body is over 64 KiB"));
        add(
            "415",
            problem("unsupported-media-type: the body was not sent as application/json"),
        );
    }
    if has_body || has_query {
        add(
            "422",
            problem("Refused by a rule (the problem names the field)"),
        );
    }
    if names_something {
        add(
            "404",
            problem("Not found: what the path names does not exist"),
        );
    }
    if on_member {
        add("410", problem("member-erased: the member was erased"));
    }
    add(
        "500",
        problem("internal: a fault on our side, logged under the request id of `instance`"),
    );
    if write {
        let mut r = problem(
            "unavailable: contention or throttling outlasted the retry budget; retry after the delay",
        );
        r["headers"] = json!({"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}});
        add("503", r);
    }
}

fn default_description(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        204 => "No content",
        400 => "Malformed request",
        401 => "Unauthenticated",
        403 => "Forbidden",
        404 => "Not found",
        409 => "Conflict with the current state (the problem type says which)",
        410 => "Gone",
        413 => "Body too large",
        415 => "Unsupported media type",
        422 => "Refused by a rule (the problem names the field)",
        503 => "Unavailable; retry after the delay",
        _ => "See the problem type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_completed_by_the_edge() {
        let mut doc = json!({"info": {}, "paths": {"/v1/members/{id}": {
            "get": {"security": [{"bearer": []}], "parameters": [{"name": "limit", "in": "query"}],
                    "responses": {"200": {"description": ""},
                                  "404": {"content": {"application/json": {}}}}},
            "post": {"requestBody": {}, "responses": {"201": {"description": "made"}}}}}});
        complete(&mut doc);
        let get = &doc["paths"]["/v1/members/{id}"]["get"];
        assert_eq!(get["responses"]["200"]["description"], "OK");
        assert!(get["responses"]["404"]["content"][PROBLEM].is_object());
        assert!(get["responses"]["404"]["content"]["application/json"].is_null());
        for code in ["400", "401", "403", "410"] {
            assert!(
                get["responses"][code]["content"][PROBLEM].is_object(),
                "{code}"
            );
        }
        assert!(
            get["responses"]["503"].is_null(),
            "a read does not answer 503"
        );
        assert_eq!(get["parameters"][0]["schema"]["maximum"], 100);
        let post = &doc["paths"]["/v1/members/{id}"]["post"];
        assert!(post["responses"]["401"].is_null(), "unsecured");
        for code in ["400", "413", "415", "503"] {
            assert!(post["responses"][code].is_object(), "{code}");
        }
        assert!(post["responses"]["503"]["headers"]["Retry-After"].is_object());
        assert_eq!(doc["info"]["license"]["identifier"], "MIT");
    }
}
