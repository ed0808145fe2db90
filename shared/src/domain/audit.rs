//! Operators and the audit trail of what they change. An audit record says who (subject and
//! role), what (the action and the ids it touched), when, under which request, and a before →
//! after summary of the fields changed. It never holds personal data: a profile edit names the
//! fields, not their values, so erasing a member leaves nothing of them in the trail.

use super::MemberId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// An operator's role, granted by a scope of the operator's token (`loyalty/<role>`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OperatorRole {
    /// Everything.
    Admin,
    /// Members one at a time: see them, edit profiles, adjust points within the program's limit,
    /// cancel redemptions.
    Support,
    /// Read-only: analytics, segments, campaigns and results, members, events.
    Analyst,
}

impl OperatorRole {
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorRole::Admin => "admin",
            OperatorRole::Support => "support",
            OperatorRole::Analyst => "analyst",
        }
    }

    /// The OAuth scope an access token carries for this role (what the API authorizes by).
    pub fn scope(self) -> &'static str {
        match self {
            OperatorRole::Admin => "loyalty/admin",
            OperatorRole::Support => "loyalty/support",
            OperatorRole::Analyst => "loyalty/analyst",
        }
    }

    /// The role a Cognito group of operators stands for: groups are named after roles
    /// (`admin`, `support`, `analyst`); any other group grants nothing.
    pub fn from_group(group: &str) -> Option<OperatorRole> {
        [
            OperatorRole::Admin,
            OperatorRole::Support,
            OperatorRole::Analyst,
        ]
        .into_iter()
        .find(|r| r.as_str() == group)
    }
}

/// The scopes an operator's access token gets from their groups: one per role group, in the
/// order given, each once; unknown groups ignored.
pub fn scopes_for_groups<'a>(groups: impl IntoIterator<Item = &'a str>) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for scope in groups
        .into_iter()
        .filter_map(OperatorRole::from_group)
        .map(OperatorRole::scope)
    {
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    out
}

/// The scope a till's token carries; its store is the token's `store_id` claim.
pub const POS_SCOPE: &str = "loyalty/pos";

/// The Cognito group that makes a user a store's till: `store:<store id>`. Groups, unlike user
/// attributes, only an administrator can change, so a till cannot make itself another store.
pub const STORE_GROUP_PREFIX: &str = "store:";

/// What a user's groups put in their access token (DESIGN.md "Signing in").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grants {
    /// Operator scopes, then the POS scope when the user is a store's till.
    pub scopes: Vec<&'static str>,
    /// The store of a till (its `store_id` claim).
    pub store: Option<super::StoreId>,
}

/// The grants of a user's groups: a scope per operator role group, and for one `store:<id>`
/// group the POS scope with that store. A user in no such group is a member (no scope: their
/// `sub` is their member id). Two store groups, or one whose id does not parse, is an
/// administrator's mistake that must not pick a store: refused (the sign-in fails).
pub fn grants_for_groups<'a>(
    groups: impl IntoIterator<Item = &'a str> + Clone,
) -> Result<Grants, String> {
    let mut scopes = scopes_for_groups(groups.clone());
    let stores: Vec<&str> = groups
        .into_iter()
        .filter_map(|g| g.strip_prefix(STORE_GROUP_PREFIX))
        .collect();
    let store = match stores.as_slice() {
        [] => None,
        [one] => Some(super::StoreId::parse(one).map_err(|e| {
            format!("the group {STORE_GROUP_PREFIX}{one} names no valid store id: {e}")
        })?),
        many => {
            return Err(format!(
                "the user is a till of {} stores ({}); a till belongs to one",
                many.len(),
                many.join(", ")
            ));
        }
    };
    if store.is_some() {
        scopes.push(POS_SCOPE);
    }
    Ok(Grants { scopes, store })
}

#[cfg(test)]
mod group_tests {
    use super::{grants_for_groups, scopes_for_groups};

    #[test]
    fn operator_groups_map_to_exactly_their_scopes() {
        for (groups, want) in [
            (vec![], vec![]),
            (vec!["admin"], vec!["loyalty/admin"]),
            (vec!["support"], vec!["loyalty/support"]),
            (vec!["analyst"], vec!["loyalty/analyst"]),
            (
                vec!["analyst", "support"],
                vec!["loyalty/analyst", "loyalty/support"],
            ),
            (vec!["admin", "admin"], vec!["loyalty/admin"]),
            (vec!["Admin", "admins", "pos", "loyalty/admin", ""], vec![]),
        ] {
            assert_eq!(scopes_for_groups(groups.clone()), want, "{groups:?}");
        }
    }

    #[test]
    fn a_store_group_makes_a_till_of_exactly_that_store_and_nothing_else() {
        let store = |s: &str| Some(crate::domain::StoreId::parse(s).unwrap());
        for (groups, scopes, want_store) in [
            (vec![], vec![], None),
            (vec!["newsletter"], vec![], None),
            (
                vec!["store:store-042"],
                vec!["loyalty/pos"],
                store("store-042"),
            ),
            (vec!["pos"], vec![], None),
            (
                vec!["analyst", "store:s1"],
                vec!["loyalty/analyst", "loyalty/pos"],
                store("s1"),
            ),
            (vec!["Store:s1", "stores:s1"], vec![], None),
        ] {
            let g = grants_for_groups(groups.iter().copied()).unwrap();
            assert_eq!((g.scopes, g.store), (scopes, want_store), "{groups:?}");
        }
        for bad in [
            vec!["store:s1", "store:s2"],
            vec!["store:"],
            vec!["store:a b"],
            vec!["store:.."],
        ] {
            let e = grants_for_groups(bad.iter().copied()).unwrap_err();
            assert!(e.contains("store"), "{bad:?}: {e}");
        }
    }
}

/// The operator behind a write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Actor {
    /// The token's subject.
    pub sub: String,
    pub role: OperatorRole,
    /// API Gateway's request id (generated locally): the same as in the logs.
    pub request_id: String,
}

/// What an operator did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    PointsAdjusted,
    ProfileEdited,
    MemberErased,
    RedemptionCancelled,
    RewardCreated,
    RewardChanged,
    CampaignDrafted,
    CampaignLaunched,
    CampaignEnded,
    ReferralCodeSet,
    ReferralApproved,
    ReferralRejected,
    /// An operator enrolled a member (an administrator).
    MemberEnrolled,
    /// An operator applied a referral code for a member (support or an administrator).
    ReferralApplied,
    /// An administrator redeemed a reward for a member.
    RewardRedeemed,
    /// A purchase or a refund posted with an operator's token rather than a till's.
    PurchaseRecorded,
    RefundRecorded,
    /// An administrator defined or changed a custom segment.
    SegmentDefined,
    SegmentDeleted,
    /// An operator set a member's tags.
    MemberTagged,
}

impl AuditAction {
    /// The route the action is taken through (the OpenAPI path template).
    pub fn route(self) -> &'static str {
        match self {
            AuditAction::PointsAdjusted => "POST /v1/members/{id}/adjustments",
            AuditAction::ProfileEdited => "PATCH /v1/members/{id}",
            AuditAction::MemberErased => "DELETE /v1/members/{id}",
            AuditAction::RedemptionCancelled => {
                "POST /v1/members/{id}/redemptions/{redemption_id}/cancel"
            }
            AuditAction::RewardCreated | AuditAction::RewardChanged => "PUT /v1/rewards/{id}",
            AuditAction::CampaignDrafted => "PUT /v1/campaigns/{id}",
            AuditAction::CampaignLaunched => "POST /v1/campaigns/{id}/launch",
            AuditAction::CampaignEnded => "POST /v1/campaigns/{id}/end",
            AuditAction::ReferralCodeSet => "PUT /v1/members/{id}/referral/code",
            AuditAction::ReferralApproved => "POST /v1/referrals/{referee_id}/approve",
            AuditAction::ReferralRejected => "POST /v1/referrals/{referee_id}/reject",
            AuditAction::MemberEnrolled => "POST /v1/members",
            AuditAction::ReferralApplied => "POST /v1/members/{id}/referral/apply",
            AuditAction::RewardRedeemed => "POST /v1/members/{id}/redemptions",
            AuditAction::PurchaseRecorded => "POST /v1/purchases",
            AuditAction::RefundRecorded => "POST /v1/purchases/{store_id}/{receipt_id}/refunds",
            AuditAction::SegmentDefined => "PUT /v1/segments/{id}",
            AuditAction::SegmentDeleted => "DELETE /v1/segments/{id}",
            AuditAction::MemberTagged => "PUT /v1/members/{id}/tags",
        }
    }
}

/// The schema of any JSON value (every type named: utoipa cannot read back an empty schema).
fn any_value() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([
            Type::String,
            Type::Number,
            Type::Boolean,
            Type::Object,
            Type::Array,
            Type::Null,
        ]))
        .build()
}

/// One field's change. For personal fields only the name is kept (`before`/`after` absent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Change {
    pub field: String,
    /// Any JSON value (absent for a personal field, or where there was none).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(schema_with = any_value)]
    pub before: Option<Value>,
    /// Any JSON value (absent for a personal field).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(schema_with = any_value)]
    pub after: Option<Value>,
}

impl Change {
    pub fn new(field: &str, before: impl Serialize, after: impl Serialize) -> Self {
        Change {
            field: field.to_owned(),
            before: serde_json::to_value(before).ok(),
            after: serde_json::to_value(after).ok(),
        }
    }
    /// A field with no value before (what a write added).
    pub fn to(field: &str, after: impl Serialize) -> Self {
        Change {
            field: field.to_owned(),
            before: None,
            after: serde_json::to_value(after).ok(),
        }
    }
    /// A personal field: named, its values not kept.
    pub fn named(field: &str) -> Self {
        Change {
            field: field.to_owned(),
            before: None,
            after: None,
        }
    }
}

/// The changes between two values of one record, field by field (top-level JSON fields), minus
/// those that only bookkeeping moves (`skip`).
pub fn changes<T: Serialize>(before: Option<&T>, after: &T, skip: &[&str]) -> Vec<Change> {
    let obj = |v: Option<Value>| match v {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let b = obj(before.and_then(|b| serde_json::to_value(b).ok()));
    let a = obj(serde_json::to_value(after).ok());
    let mut out = Vec::new();
    for (k, v) in &a {
        if skip.contains(&k.as_str()) || b.get(k) == Some(v) {
            continue;
        }
        out.push(Change {
            field: k.clone(),
            before: b.get(k).cloned(),
            after: Some(v.clone()),
        });
    }
    out
}

/// One operator write, kept in the commit that made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "01935b2e-6a00-7000-8000-0000000000ee", "at": "2026-11-22T10:15:00Z",
    "actor": {"sub": "alice", "role": "support", "request_id": "c0ffee00-0000-4000-8000-000000000001"},
    "action": "points_adjusted", "route": "POST /v1/members/{id}/adjustments",
    "member_id": "member-ada", "target": "01935b2e-6a00-7000-8000-0000000000aa",
    "changes": [{"field": "balance", "before": 120, "after": 620}, {"field": "points", "after": 500}]}))]
pub struct AuditRecord {
    /// UUID v7 from `at`.
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: AuditAction,
    /// The route, as in the OpenAPI document.
    pub route: String,
    /// The member the write was about, if any.
    pub member_id: Option<MemberId>,
    /// The id of what else it touched: a reward, a campaign, a redemption, a ledger line.
    pub target: Option<String>,
    pub changes: Vec<Change>,
}

impl AuditRecord {
    pub fn new(
        actor: &Actor,
        action: AuditAction,
        at: DateTime<Utc>,
        member_id: Option<&MemberId>,
        target: Option<String>,
        changes: Vec<Change>,
    ) -> Self {
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            at.timestamp().max(0) as u64,
            at.timestamp_subsec_nanos(),
        );
        AuditRecord {
            id: Uuid::new_v7(ts),
            at,
            actor: actor.clone(),
            action,
            route: action.route().to_owned(),
            member_id: member_id.cloned(),
            target,
            changes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_name_every_field_that_moved_with_its_values_and_skip_bookkeeping() {
        let before = json!({"name": "Coffee", "cost_points": 50, "stock": 10, "issued": 3});
        let after = json!({"name": "Coffee", "cost_points": 40, "stock": null, "issued": 4, "active": false});
        let c = changes(Some(&before), &after, &["issued"]);
        assert_eq!(
            c,
            vec![
                Change::new("active", Value::Null, false),
                Change::new("cost_points", 50, 40),
                Change::new("stock", 10, Value::Null),
            ]
            .into_iter()
            .map(|mut ch| {
                if ch.field == "active" {
                    ch.before = None;
                }
                ch
            })
            .collect::<Vec<_>>()
        );
        let created = changes(None, &json!({"name": "Cake"}), &[]);
        assert_eq!(
            created,
            vec![Change {
                field: "name".into(),
                before: None,
                after: Some(json!("Cake"))
            }]
        );
        assert!(changes(Some(&after), &after, &[]).is_empty());
    }
}
