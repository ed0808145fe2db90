//! How each kind of caller gets a token in AWS (DESIGN.md "Signing in"): the template's one
//! user pool, its three app clients and the authorizer that accepts them, the pre-token trigger
//! that grants scopes by group, and `scripts/add-store`, which makes a store's till.

use loyalty::domain::StoreId;
use loyalty::domain::audit::STORE_GROUP_PREFIX;
use serde_norway::Value;

fn resource(template: &Value, name: &str) -> Value {
    template["Resources"][name]["Properties"].clone()
}

/// The ids of the app clients `!Ref`ed in `v`, in order.
fn refs(v: &Value) -> Vec<String> {
    let text = format!("{v:?}");
    ["ConsoleClient", "MembersClient", "TillsClient"]
        .into_iter()
        .filter(|c| text.contains(&format!("\"{c}\"")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_authorizer_accepts_the_console_members_and_tills_clients_whatever_else_is_given() {
    let t = loyalty_tests::template();
    let jwt = &resource(&t, "HttpApi")["Auth"]["Authorizers"]["Jwt"]["JwtConfiguration"];
    let Value::Tagged(choice) = &jwt["audience"] else {
        panic!(
            "the audience is an !If on JwtAudience: {:?}",
            jwt["audience"]
        );
    };
    let branches = choice.value.as_sequence().unwrap();
    assert_eq!(branches[0].as_str(), Some("NoOtherAudience"));
    for branch in &branches[1..] {
        assert_eq!(
            refs(branch),
            ["ConsoleClient", "MembersClient", "TillsClient"],
            "{branch:?}"
        );
    }
}

#[test]
fn tills_sign_in_with_a_password_and_members_with_pkce_or_srp_and_neither_holds_a_secret() {
    let t = loyalty_tests::template();
    let tills = resource(&t, "TillsClient");
    let flows: Vec<&str> = tills["ExplicitAuthFlows"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(
        flows,
        ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    );
    assert!(
        tills["AllowedOAuthFlows"].is_null(),
        "no browser sign-in for a till"
    );
    let members = resource(&t, "MembersClient");
    assert_eq!(members["AllowedOAuthFlows"].as_sequence().unwrap().len(), 1);
    assert_eq!(members["AllowedOAuthFlows"][0].as_str(), Some("code"));
    for c in [&tills, &members] {
        assert_eq!(
            c["GenerateSecret"].as_bool(),
            Some(false),
            "an app holds no secret"
        );
    }
    // Every user's token passes through the trigger that grants by group.
    let pool = resource(&t, "OperatorPool");
    let trigger = &pool["LambdaConfig"]["PreTokenGenerationConfig"];
    assert_eq!(trigger["LambdaVersion"].as_str(), Some("V2_0"));
    assert!(format!("{:?}", trigger["LambdaArn"]).contains("OperatorTokenFunction"));
}

fn add_store(store: &str) -> std::process::Output {
    std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/add-store"))
        .arg(store)
        // No AWS CLI on this PATH: a refused id must be refused before anything is asked of it.
        .env("PATH", "/usr/bin:/bin")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap()
}

#[test]
fn add_store_refuses_an_id_that_is_no_store_id_before_it_touches_aws() {
    for bad in ["", "a b", "..", "store/1", "s:1", &"x".repeat(65)] {
        let out = add_store(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage: scripts/add-store"));
    }
    // What it takes is a store id the API takes (its pattern, a subset of StoreId's), and its
    // group is the one the trigger reads. (A good id is not run: it would reach AWS.)
    for good in ["store-042", "S_1.a", &"x".repeat(64)] {
        assert!(StoreId::parse(good).is_ok(), "{good}");
    }
    let script =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/add-store"))
            .unwrap();
    assert!(script.contains(&format!("group=\"{STORE_GROUP_PREFIX}$store\"")));
    assert!(script.contains("^[A-Za-z0-9._-]{1,64}$"));
}
