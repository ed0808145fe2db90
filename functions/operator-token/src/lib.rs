//! The operators' Cognito pre-token-generation trigger (event version 2): an operator's groups
//! (`admin`, `support`, `analyst`) become the `loyalty/*` scopes of their access token, the claim
//! the HTTP API's JWT authorizer and the functions authorize by. Group membership is the one
//! place a role is granted; an app client cannot ask for a scope its user's groups do not give.

use loyalty::domain::audit::scopes_for_groups;
use serde_json::{Value, json};

/// The event with its `response` filled in; everything else passes through untouched.
pub fn respond(mut event: Value) -> Value {
    let groups: Vec<String> = event["request"]["groupConfiguration"]["groupsToOverride"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let scopes = scopes_for_groups(groups.iter().map(String::as_str));
    event["response"] = json!({
        "claimsAndScopeOverrideDetails": {
            "accessTokenGeneration": {"scopesToAdd": scopes},
        }
    });
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape Cognito sends (trimmed), with a support operator in one more, unrelated group.
    #[test]
    fn a_support_operators_access_token_gets_the_support_scope_and_nothing_else() {
        let event = json!({
            "version": "2", "triggerSource": "TokenGeneration_HostedAuth", "region": "eu-west-1",
            "userPoolId": "eu-west-1_abc", "userName": "alice",
            "callerContext": {"awsSdkVersion": "x", "clientId": "client"},
            "request": {"userAttributes": {"sub": "1"}, "scopes": ["openid"],
                        "groupConfiguration": {"groupsToOverride": ["support", "newsletter"],
                                               "iamRolesToOverride": [], "preferredRole": null}},
            "response": {"claimsAndScopeOverrideDetails": null}
        });
        let out = respond(event.clone());
        assert_eq!(
            out["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]["scopesToAdd"],
            json!(["loyalty/support"])
        );
        assert_eq!(out["request"], event["request"]);
        assert_eq!(out["userName"], "alice");
    }

    #[test]
    fn a_user_in_no_operator_group_gets_no_scope() {
        let out = respond(json!({"request": {"groupConfiguration": {"groupsToOverride": []}}}));
        assert_eq!(
            out["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]["scopesToAdd"],
            json!([])
        );
        let out = respond(json!({"request": {}}));
        assert_eq!(
            out["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]["scopesToAdd"],
            json!([])
        );
    }
}
