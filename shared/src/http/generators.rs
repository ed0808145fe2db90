//! What client generators need of the OpenAPI document (openapi-python-client, openapi-typescript,
//! openapi-generator for Kotlin and Swift). utoipa writes what serde does — an event as
//! `allOf[EventData, envelope]` around a 24-way `oneOf`, a payload as `allOf` of its flattened
//! parts, a tagged enum as anonymous branches, a list's items copied into each `ListResponse_*` —
//! and generators read those badly (a dropped response type, one merged struct whose `type`
//! allows one value). This pass, run once where the document is assembled, rewrites them into
//! shapes every generator types: named flat objects, `oneOf` with a `discriminator`, items by
//! `$ref`, an untyped value where a value may be anything, and every property an answer always
//! carries `required` (nullable where it may be null). The wire does not change.

use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

const SCHEMAS: &str = "#/components/schemas/";

pub fn shape(doc: &mut Value) {
    list_items_by_ref(doc);
    untyped_values(doc);
    flatten_compositions(doc);
    events(doc);
    name_tagged_variants(doc);
    always_present_required(doc);
    drop_unreferenced(doc);
}

fn schemas(doc: &mut Value) -> &mut Map<String, Value> {
    doc["components"]["schemas"]
        .as_object_mut()
        .expect("the document has component schemas")
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("{SCHEMAS}{name}")})
}

fn referenced(schema: &Value) -> Option<&str> {
    schema["$ref"].as_str()?.strip_prefix(SCHEMAS)
}

/// A `oneOf` of named schemas, `(tag value, schema name)` each, told apart by the `tag` property,
/// with `from`'s description and example.
fn told_apart(tag: &str, branches: &[(String, String)], from: &Value) -> Value {
    let one_of: Vec<Value> = branches.iter().map(|(_, name)| reference(name)).collect();
    let mapping: Map<String, Value> = branches
        .iter()
        .map(|(value, name)| (value.clone(), json!(format!("{SCHEMAS}{name}"))))
        .collect();
    let mut out =
        json!({"oneOf": one_of, "discriminator": {"propertyName": tag, "mapping": mapping}});
    for key in ["description", "example"] {
        if let Some(v) = from.get(key) {
            out[key] = v.clone();
        }
    }
    out
}

/// `points.expiring_soon` → `PointsExpiringSoon`.
fn pascal(tag: &str) -> String {
    tag.split(['.', '_', '-'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// `ListResponse_X` lists `X`: its items refer to `X` rather than carry a copy of it.
fn list_items_by_ref(doc: &mut Value) {
    let names: Vec<String> = schemas(doc).keys().cloned().collect();
    for name in &names {
        let Some(item) = name.strip_prefix("ListResponse_") else {
            continue;
        };
        if names.iter().any(|n| n == item) {
            schemas(doc)[name]["properties"]["items"]["items"] = reference(item);
        }
    }
}

/// A value that may be anything (an audit change's `before` and `after`) as the empty schema:
/// a list of every JSON type is read as a union no generator can type.
fn untyped_values(doc: &mut Value) {
    let all = json!(["string", "number", "boolean", "object", "array", "null"]);
    visit(doc, &mut |s| {
        if s.get("type") == Some(&all) {
            let mut any = Map::new();
            if let Some(d) = s.get("description") {
                any.insert("description".into(), d.clone());
            }
            *s = Value::Object(any);
        }
    });
}

fn visit(v: &mut Value, f: &mut impl FnMut(&mut Value)) {
    match v {
        Value::Object(m) => {
            for x in m.values_mut() {
                visit(x, f);
            }
            f(v);
        }
        Value::Array(a) => a.iter_mut().for_each(|x| visit(x, f)),
        _ => {}
    }
}

/// The object a schema stands for with every `allOf` part merged into one: the flattened parts
/// of a serde struct. `None` when a part is not an object (a `oneOf`: see [`flatten_compositions`]).
fn merged(doc: &Value, schema: &Value) -> Option<Value> {
    let schema = match referenced(schema) {
        Some(name) => &doc["components"]["schemas"][name],
        None => schema,
    };
    let Some(parts) = schema["allOf"].as_array() else {
        return (schema.get("properties").is_some() || schema["type"] == "object")
            .then(|| schema.clone());
    };
    let mut out = json!({"type": "object", "properties": {}});
    let mut required = Vec::<Value>::new();
    for part in parts {
        let part = merged(doc, part)?;
        if let Some(props) = part["properties"].as_object() {
            for (k, v) in props {
                out["properties"][k] = v.clone();
            }
        }
        for r in part["required"].as_array().into_iter().flatten() {
            if !required.contains(r) {
                required.push(r.clone());
            }
        }
    }
    if !required.is_empty() {
        out["required"] = Value::Array(required);
    }
    for key in ["description", "example"] {
        if let Some(d) = schema.get(key) {
            out[key] = d.clone();
        }
    }
    Some(out)
}

/// A payload whose `oneOf` part (a serde untagged enum) has no tag of its own: each branch is
/// told apart by the value another property always takes in it.
struct ToldApart {
    schema: &'static str,
    by: &'static str,
    /// The value and the branch's name, in the Rust enum's order.
    branches: &'static [(&'static str, &'static str)],
}

/// `points.reversed`: a purchase's own points come back on a `refund` line, a campaign's award
/// on a `campaign_bonus` line.
const TOLD_APART: &[ToldApart] = &[ToldApart {
    schema: "Reversed",
    by: "ledger_kind",
    branches: &[
        ("refund", "PurchaseReversed"),
        ("campaign_bonus", "CampaignAwardReversed"),
    ],
}];

/// Every `allOf` schema becomes one flat object; one with a `oneOf` part becomes a `oneOf` of
/// named flat objects with a discriminator.
fn flatten_compositions(doc: &mut Value) {
    let names: Vec<String> = schemas(doc).keys().cloned().collect();
    for name in names {
        let schema = doc["components"]["schemas"][&name].clone();
        let Some(parts) = schema["allOf"].as_array() else {
            continue;
        };
        if name == "Event" {
            continue; // the envelope: see `events`
        }
        if let Some(flat) = merged(doc, &schema) {
            schemas(doc)[&name] = flat;
            continue;
        }
        let (tag, branches) = TOLD_APART
            .iter()
            .find(|t| t.schema == name)
            .map(|t| (t.by, t.branches))
            .unwrap_or_else(|| panic!("{name}: a oneOf inside allOf needs its tag here"));
        let (variants, common): (Vec<&Value>, Vec<&Value>) = parts.iter().partition(|p| {
            let target = referenced(p)
                .map(|n| &doc["components"]["schemas"][n])
                .unwrap_or(p);
            target.get("oneOf").is_some()
        });
        let [variants] = variants.as_slice() else {
            panic!("{name}: one oneOf part");
        };
        let variants = match referenced(variants) {
            Some(n) => doc["components"]["schemas"][n]["oneOf"].clone(),
            None => variants["oneOf"].clone(),
        };
        let variants = variants.as_array().expect("oneOf is a list");
        assert_eq!(variants.len(), branches.len(), "{name}: a name per branch");
        let mut named = Vec::new();
        for (variant, (value, branch)) in variants.iter().zip(branches) {
            let mut parts: Vec<Value> = common.iter().map(|p| (*p).clone()).collect();
            parts.push(variant.clone());
            let mut flat = merged(doc, &json!({"allOf": parts}))
                .unwrap_or_else(|| panic!("{name}: a branch of objects"));
            flat["properties"][tag] = json!({"type": "string", "enum": [value]});
            flat["description"] = json!(format!(
                "{} (`{tag}` `{value}`)",
                schema["description"].as_str().unwrap_or(&name)
            ));
            schemas(doc).insert((*branch).to_owned(), flat);
            named.push(((*value).to_owned(), (*branch).to_owned()));
        }
        schemas(doc)[&name] = told_apart(tag, &named, &schema);
    }
}

/// `Event` (`allOf[EventData, envelope]`) becomes a `oneOf` of one named flat schema per type
/// (`PointsEarnedEvent`: the envelope, `type` with its one value (`PointsEarnedEventType`), its
/// own `data`), told apart by
/// `type`. `EventData` goes: each event schema holds its own payload.
fn events(doc: &mut Value) {
    let event = doc["components"]["schemas"]["Event"].clone();
    let data = doc["components"]["schemas"]["EventData"].clone();
    let Some(parts) = event["allOf"].as_array() else {
        return;
    };
    let envelope = parts
        .iter()
        .find(|p| p.get("properties").is_some())
        .expect("the envelope part");
    let mut named = Vec::new();
    for variant in data["oneOf"].as_array().expect("EventData is a oneOf") {
        let tag = variant["properties"]["type"]["enum"][0]
            .as_str()
            .expect("each variant names its type");
        let name = format!("{}Event", pascal(tag));
        let mut flat = envelope.clone();
        for (k, v) in variant["properties"].as_object().expect("type and data") {
            flat["properties"][k] = v.clone();
        }
        // The type's one value as a named enum: Swift cannot name an inline one `Type`.
        let type_name = format!("{name}Type");
        schemas(doc).insert(type_name.clone(), variant["properties"]["type"].clone());
        flat["properties"]["type"] = reference(&type_name);
        let mut required: Vec<Value> = envelope["required"].as_array().cloned().unwrap_or_default();
        required.extend(["type", "data"].map(Value::from));
        flat["required"] = Value::Array(required);
        let what = referenced(&variant["properties"]["data"])
            .and_then(|n| doc["components"]["schemas"][n]["description"].as_str())
            .unwrap_or("");
        flat["description"] = json!(format!("A `{tag}` event. {what}").trim_end().to_owned());
        schemas(doc).insert(name.clone(), flat);
        named.push((tag.to_owned(), name));
    }
    let out = told_apart("type", &named, &event);
    schemas(doc).insert("Event".into(), out);
    schemas(doc).remove("EventData");
}

/// A `oneOf` of anonymous objects that all carry one tag property with one value each (serde's
/// internally tagged enums, e.g. an offer by `kind`) becomes a `oneOf` of named schemas
/// (`MultiplierOffer`, `BonusOffer`) with a discriminator.
fn name_tagged_variants(doc: &mut Value) {
    let names: Vec<String> = schemas(doc).keys().cloned().collect();
    for name in names {
        let schema = doc["components"]["schemas"][&name].clone();
        let Some(variants) = schema["oneOf"].as_array() else {
            continue;
        };
        if schema.get("discriminator").is_some() || variants.iter().any(|v| v.get("$ref").is_some())
        {
            continue;
        }
        let tag_of = |v: &Value| -> Option<(String, String)> {
            v["properties"].as_object()?.iter().find_map(|(k, p)| {
                let one = p["enum"].as_array().filter(|e| e.len() == 1)?;
                let required = v["required"].as_array()?.iter().any(|r| r == k);
                required.then(|| (k.clone(), one[0].as_str().unwrap_or_default().to_owned()))
            })
        };
        let Some(tags) = variants.iter().map(tag_of).collect::<Option<Vec<_>>>() else {
            continue;
        };
        let property = tags[0].0.clone();
        if variants.len() < 2 || tags.iter().any(|(p, _)| *p != property) {
            continue;
        }
        let mut named = Vec::new();
        for (variant, (_, value)) in variants.iter().zip(&tags) {
            let branch = format!("{}{name}", pascal(value));
            schemas(doc).insert(branch.clone(), variant.clone());
            named.push((value.clone(), branch));
        }
        schemas(doc)[&name] = told_apart(&property, &named, &schema);
    }
}

/// Whether a property's schema admits `null`.
fn nullable(p: &Value) -> bool {
    let t = &p["type"];
    t == "null"
        || t.as_array()
            .is_some_and(|ts| ts.iter().any(|t| t == "null"))
        || p["oneOf"]
            .as_array()
            .is_some_and(|bs| bs.iter().any(|b| b["type"] == "null"))
}

/// The schemas `of` refers to, transitively.
fn reachable(doc: &Value, of: &Value, seen: &mut BTreeSet<String>) {
    match of {
        Value::Object(m) => {
            if let Some(name) = referenced(of)
                && seen.insert(name.to_owned())
            {
                reachable(doc, &doc["components"]["schemas"][name], seen);
            }
            m.values().for_each(|v| reachable(doc, v, seen));
        }
        Value::Array(a) => a.iter().for_each(|v| reachable(doc, v, seen)),
        _ => {}
    }
}

/// In what the server only sends, an `Option` serde always writes (`null` when empty) is
/// required and nullable, so a client has two states, not three. A field left out when empty is
/// declared not nullable in the code (`#[schema(nullable = false)]`), and stays optional.
fn always_present_required(doc: &mut Value) {
    let (mut answers, mut requests) = (BTreeSet::new(), BTreeSet::new());
    let mut inline_answers = Vec::new();
    for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in ops.as_object().into_iter().flatten() {
            reachable(doc, &op["requestBody"], &mut requests);
            reachable(doc, &op["parameters"], &mut requests);
            for (status, r) in op["responses"].as_object().into_iter().flatten() {
                reachable(doc, r, &mut answers);
                inline_answers.push((path.clone(), method.clone(), status.clone()));
            }
        }
    }
    fn require(s: &mut Value) {
        visit(s, &mut |o| {
            let Some(props) = o.get("properties").and_then(Value::as_object) else {
                return;
            };
            let add: Vec<Value> = props
                .iter()
                .filter(|(_, p)| nullable(p))
                .map(|(k, _)| Value::from(k.as_str()))
                .collect();
            let required = o["required"].as_array().cloned().unwrap_or_default();
            let mut all = required.clone();
            all.extend(add.into_iter().filter(|k| !required.contains(k)));
            if !all.is_empty() {
                o["required"] = Value::Array(all);
            }
        });
    }
    for name in answers.difference(&requests) {
        require(&mut schemas(doc)[name]);
    }
    for (path, method, status) in inline_answers {
        let r = &mut doc["paths"][&path][&method]["responses"][&status];
        let content = r.get_mut("content").and_then(Value::as_object_mut);
        for (_, media) in content.into_iter().flatten() {
            if referenced(&media["schema"]).is_none() {
                require(&mut media["schema"]);
            }
        }
    }
}

/// Schemas nothing refers to any more (the parts merged into flat objects).
fn drop_unreferenced(doc: &mut Value) {
    let mut used = BTreeSet::new();
    reachable(doc, &doc["paths"], &mut used);
    // Webhooks carry events though no operation answers with the bare type.
    used.insert("Event".into());
    let event = doc["components"]["schemas"]["Event"].clone();
    reachable(doc, &event, &mut used);
    schemas(doc).retain(|name, _| used.contains(name));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(schemas: Value) -> Value {
        json!({"paths": {"/x": {"get": {"responses": {"200": {"content": {"application/json":
            {"schema": {"$ref": "#/components/schemas/Page"}}}}}},
            "post": {"requestBody": {"content": {"application/json":
            {"schema": {"$ref": "#/components/schemas/Input"}}}}, "responses": {}}}},
            "components": {"schemas": schemas}})
    }

    #[test]
    fn names_are_pascal_case_of_the_tag() {
        assert_eq!(pascal("points.expiring_soon"), "PointsExpiringSoon");
        assert_eq!(pascal("campaign_bonus"), "CampaignBonus");
        assert_eq!(pascal("bonus"), "Bonus");
    }

    #[test]
    fn an_answer_always_carrying_a_nullable_field_requires_it_and_a_request_does_not() {
        let mut d = doc(json!({
            "Page": {"type": "object", "required": ["items"], "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Shared"}},
                "next_cursor": {"type": ["string", "null"]},
                "skipped": {"type": "string"}}},
            "Shared": {"type": "object", "properties": {"a": {"oneOf": [{"type": "integer"}, {"type": "null"}]}}},
            "Input": {"type": "object", "properties": {"n": {"type": ["string", "null"]},
                                                       "s": {"$ref": "#/components/schemas/Shared"}}}}));
        always_present_required(&mut d);
        let s = &d["components"]["schemas"];
        assert_eq!(s["Page"]["required"], json!(["items", "next_cursor"]));
        assert!(
            s["Shared"]["required"].is_null(),
            "shared with a request body"
        );
        assert!(s["Input"]["required"].is_null());
    }

    #[test]
    fn list_items_refer_to_their_schema() {
        let mut d = doc(json!({"LedgerEntry": {"type": "object"},
            "ListResponse_LedgerEntry": {"type": "object", "properties": {"items": {"type": "array",
                "items": {"type": "object", "properties": {"copied": {}}}}}}}));
        list_items_by_ref(&mut d);
        assert_eq!(
            d["components"]["schemas"]["ListResponse_LedgerEntry"]["properties"]["items"]["items"],
            json!({"$ref": "#/components/schemas/LedgerEntry"})
        );
    }

    #[test]
    fn a_value_of_any_type_is_the_empty_schema() {
        let mut d = doc(json!({"Change": {"type": "object", "properties": {
            "after": {"type": ["string", "number", "boolean", "object", "array", "null"], "description": "d"},
            "field": {"type": "string"}}}}));
        untyped_values(&mut d);
        let p = &d["components"]["schemas"]["Change"]["properties"];
        assert_eq!(p["after"], json!({"description": "d"}));
        assert_eq!(p["field"], json!({"type": "string"}));
    }

    #[test]
    fn flattened_parts_merge_into_one_object_and_an_untagged_part_branches_on_its_tag() {
        let mut d = doc(json!({
            "Moved": {"type": "object", "required": ["points"], "properties": {"points": {"type": "integer"}}},
            "Line": {"type": "object", "required": ["ledger_kind"], "properties": {"ledger_kind": {"type": "string"}}},
            "Earned": {"allOf": [{"$ref": "#/components/schemas/Moved"}, {"$ref": "#/components/schemas/Line"},
                                 {"type": "object", "required": ["tier"], "properties": {"tier": {"type": "string"}}}],
                       "description": "earned"},
            "Reversal": {"oneOf": [{"type": "object", "required": ["amount"], "properties": {"amount": {"type": "integer"}}},
                                   {"type": "object", "required": ["campaign_id"], "properties": {"campaign_id": {"type": "string"}}}]},
            "Reversed": {"allOf": [{"$ref": "#/components/schemas/Moved"}, {"$ref": "#/components/schemas/Line"},
                                   {"$ref": "#/components/schemas/Reversal"}], "description": "reversed"}}));
        flatten_compositions(&mut d);
        let s = &d["components"]["schemas"];
        assert_eq!(
            s["Earned"]["required"],
            json!(["points", "ledger_kind", "tier"])
        );
        assert_eq!(s["Earned"]["description"], "earned");
        assert!(s["Earned"].get("allOf").is_none());
        assert_eq!(
            s["Reversed"]["discriminator"],
            json!({"propertyName": "ledger_kind", "mapping": {
                "refund": "#/components/schemas/PurchaseReversed",
                "campaign_bonus": "#/components/schemas/CampaignAwardReversed"}})
        );
        assert_eq!(
            s["PurchaseReversed"]["required"],
            json!(["points", "ledger_kind", "amount"])
        );
        assert_eq!(
            s["CampaignAwardReversed"]["properties"]["ledger_kind"],
            json!({"type": "string", "enum": ["campaign_bonus"]})
        );
    }

    #[test]
    fn tagged_variants_get_names_and_a_discriminator() {
        let mut d = doc(json!({"Offer": {"description": "o", "oneOf": [
            {"type": "object", "required": ["kind", "multiplier"], "properties": {
                "kind": {"type": "string", "enum": ["multiplier"]}, "multiplier": {"type": "number"}}},
            {"type": "object", "required": ["kind"], "properties": {
                "kind": {"type": "string", "enum": ["bonus"]}}}]},
            "Untagged": {"oneOf": [{"type": "object", "properties": {"a": {}}}, {"type": "object"}]}}));
        name_tagged_variants(&mut d);
        let s = &d["components"]["schemas"];
        assert_eq!(
            s["Offer"]["oneOf"],
            json!([{"$ref": "#/components/schemas/MultiplierOffer"}, {"$ref": "#/components/schemas/BonusOffer"}])
        );
        assert_eq!(s["Offer"]["discriminator"]["propertyName"], "kind");
        assert_eq!(
            s["BonusOffer"]["properties"]["kind"]["enum"],
            json!(["bonus"])
        );
        assert!(s["Untagged"].get("discriminator").is_none());
    }

    #[test]
    fn each_event_type_is_a_named_flat_schema_told_apart_by_type() {
        let mut d = doc(json!({
            "Earned": {"type": "object", "description": "Points earned.", "properties": {"points": {}}},
            "EventData": {"oneOf": [{"type": "object", "required": ["data", "type"], "properties": {
                "data": {"$ref": "#/components/schemas/Earned"},
                "type": {"type": "string", "enum": ["points.earned"]}}}]},
            "Event": {"allOf": [{"$ref": "#/components/schemas/EventData"},
                                {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}],
                      "example": {"id": "e"}}}));
        events(&mut d);
        let s = &d["components"]["schemas"];
        assert!(s["EventData"].is_null());
        assert_eq!(s["Event"]["example"], json!({"id": "e"}));
        assert_eq!(
            s["Event"]["discriminator"]["mapping"]["points.earned"],
            "#/components/schemas/PointsEarnedEvent"
        );
        let e = &s["PointsEarnedEvent"];
        assert_eq!(e["required"], json!(["id", "type", "data"]));
        assert_eq!(
            e["properties"]["type"],
            json!({"$ref": "#/components/schemas/PointsEarnedEventType"})
        );
        assert_eq!(s["PointsEarnedEventType"]["enum"], json!(["points.earned"]));
        assert_eq!(e["description"], "A `points.earned` event. Points earned.");
    }
}
