//! The user pool's Cognito pre-token-generation trigger (event version 2): a user's groups
//! become the `loyalty/*` scopes of their access token, the claim the HTTP API's JWT authorizer
//! and the functions authorize by (`domain::audit::grants_for_groups`): `admin`, `support`,
//! `analyst` for operators, and `store:<id>` for a store's till, which also gets the `store_id`
//! claim. A user in none of them is a member. Group membership is the one place a role is
//! granted: an app client cannot ask for a scope its user's groups do not give, and a user
//! cannot change their own groups (they can change their own attributes).

use loyalty::domain::audit::grants_for_groups;
use serde_json::{Value, json};

/// The event with its `response` filled in; everything else passes through untouched. An
/// error fails the sign-in (Cognito answers the app with it): a user whose groups name two
/// stores gets no token rather than one of them.
pub fn respond(mut event: Value) -> Result<Value, String> {
    let groups: Vec<String> = event["request"]["groupConfiguration"]["groupsToOverride"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let grants = grants_for_groups(groups.iter().map(String::as_str))?;
    let mut access = json!({"scopesToAdd": grants.scopes});
    if let Some(store) = &grants.store {
        access["claimsToAddOrOverride"] = json!({"store_id": store.as_str()});
    }
    event["response"] = json!({
        "claimsAndScopeOverrideDetails": {"accessTokenGeneration": access}
    });
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape Cognito sends (trimmed), for a user in `groups`.
    fn event(groups: &[&str]) -> Value {
        json!({
            "version": "2", "triggerSource": "TokenGeneration_Authentication", "region": "eu-west-1",
            "userPoolId": "eu-west-1_abc", "userName": "alice",
            "callerContext": {"awsSdkVersion": "x", "clientId": "client"},
            "request": {"userAttributes": {"sub": "1"}, "scopes": ["openid"],
                        "groupConfiguration": {"groupsToOverride": groups,
                                               "iamRolesToOverride": [], "preferredRole": null}},
            "response": {"claimsAndScopeOverrideDetails": null}
        })
    }

    fn access(out: &Value) -> &Value {
        &out["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]
    }

    #[test]
    fn a_support_operators_access_token_gets_the_support_scope_and_nothing_else() {
        let event = event(&["support", "newsletter"]);
        let out = respond(event.clone()).unwrap();
        assert_eq!(access(&out), &json!({"scopesToAdd": ["loyalty/support"]}));
        assert_eq!(out["request"], event["request"]);
        assert_eq!(out["userName"], "alice");
    }

    #[test]
    fn a_tills_access_token_gets_the_pos_scope_and_its_store() {
        let out = respond(event(&["store:store-042"])).unwrap();
        assert_eq!(
            access(&out),
            &json!({"scopesToAdd": ["loyalty/pos"],
                    "claimsToAddOrOverride": {"store_id": "store-042"}})
        );
    }

    #[test]
    fn a_member_in_no_role_group_gets_no_scope() {
        for e in [event(&[]), json!({"request": {}})] {
            let out = respond(e).unwrap();
            assert_eq!(access(&out), &json!({"scopesToAdd": []}));
        }
    }

    #[test]
    fn a_user_in_two_store_groups_gets_no_token() {
        let e = respond(event(&["store:a", "store:b"])).unwrap_err();
        assert!(e.contains("2 stores"), "{e}");
    }
}
