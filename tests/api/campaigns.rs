//! Campaigns, on both backends, through the HTTP API with the test clock: dormant members won
//! back with a holdout group, the SHA-256 groups recomputed here, the budget and the per-member
//! limit under racing purchases, the window, `min_spend` and an early end, refunds reversing
//! awards pro rata, results against numbers computed by hand, and bad campaigns that write
//! nothing.

use chrono::{DateTime, Duration, Utc};
use loyalty::clock::Clock;
use loyalty::domain::CampaignId;
use loyalty::service::campaigns::Assignment;
use loyalty_tests::{Api, Backend, both_backends};
use loyalty_tests::{at, purchase_body};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The DESIGN.md rule, written out again here: holdout iff the first 8 bytes of
/// SHA-256("<campaign>:<member>") as a big-endian u64, modulo 10,000, are below percent × 100.
fn held_out(campaign: &str, member: &str, percent: u64) -> bool {
    let d = Sha256::digest(format!("{campaign}:{member}").as_bytes());
    let n = u64::from_be_bytes(d[..8].try_into().unwrap());
    n % 10_000 < percent * 100
}

async fn buy_lines(
    api: &Api,
    member: &str,
    receipt: &str,
    amount: i64,
    lines: Option<Value>,
) -> Value {
    let mut body = purchase_body(member, receipt, amount, api.clock.now());
    if let Some(l) = lines {
        body["lines"] = l;
    }
    let r = api.post("/v1/purchases", &api.pos("store-1"), body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body
}

async fn put_campaign(api: &Api, id: &str, body: Value) -> Value {
    let r = api
        .call(
            "PUT",
            &format!("/v1/campaigns/{id}"),
            Some(&api.admin()),
            Some(body),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body
}

async fn launch(api: &Api, id: &str) -> Value {
    let r = api
        .post(
            &format!("/v1/campaigns/{id}/launch"),
            &api.admin(),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "running");
    r.body
}

async fn results(api: &Api, id: &str) -> Value {
    let r = api
        .get(&format!("/v1/campaigns/{id}/results"), &api.admin())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// A campaign for every silver member (everyone enrolled), running from now for 30 days.
fn silver_campaign(api: &Api, offer: Value, extra: Value) -> Value {
    let now = api.clock.now();
    let mut body = json!({"name": "Silver push", "audience": ["tier:silver"],
        "starts_at": iso(now - Duration::hours(1)), "ends_at": iso(now + Duration::days(30)),
        "offer": offer, "budget_points": 1_000_000, "holdout_percent": 0});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// Σ of a member's `campaign_bonus` ledger entries.
async fn bonus_points(api: &Api, member: &str) -> i64 {
    api.ledger(member)
        .await
        .iter()
        .filter(|e| e["kind"] == "campaign_bonus")
        .map(|e| e["points"].as_i64().unwrap())
        .sum()
}

async fn groups(api: &Api, campaign: &str) -> BTreeMap<String, String> {
    api.services
        .ctx
        .table
        .assignments(&CampaignId::parse(campaign).unwrap())
        .await
        .unwrap()
        .into_iter()
        .map(|a| {
            let g = serde_json::to_value(a.value.group).unwrap();
            (
                a.value.member_id.to_string(),
                g.as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn dormant_members_in_treatment_get_the_bonus_and_offers_and_the_holdout_gets_none(
    b: Backend,
) {
    let api = Api::new(b).await;
    let admin = api.admin();
    // 30 members buy once on 1 March, then nothing for 100 days: the nightly run makes them
    // dormant. One more member keeps buying and stays active.
    api.clock.set(at("2027-03-01T10:00:00Z"));
    let ids: Vec<String> = (0..30).map(|i| format!("d{i:02}")).collect();
    for id in &ids {
        api.enrol(id).await;
        api.buy(id, &format!("{id}-first"), 1000).await;
    }
    api.enrol("busy").await;
    api.clock.set(at("2027-06-09T02:00:00Z"));
    api.buy("busy", "busy-1", 1000).await;
    let r = api
        .post(
            "/_local/jobs/segments",
            &admin,
            json!({"now": "2027-06-09T02:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seg = api
        .get("/v1/segments/lifecycle:dormant/members?limit=100", &admin)
        .await;
    assert_eq!(seg.body["items"].as_array().unwrap().len(), 30);

    api.clock.set(at("2027-06-10T09:00:00Z"));
    let draft = put_campaign(
        &api,
        "win-back",
        json!({"name": "Win back dormant members", "audience": ["lifecycle:dormant"],
               "starts_at": "2027-06-10T09:00:00Z", "ends_at": "2027-07-10T00:00:00Z",
               "offer": {"kind": "bonus", "points": 200, "min_spend": {"value": 1500, "currency": "USD"}},
               "per_member_limit": 1, "budget_points": 100000, "holdout_percent": 20}),
    )
    .await;
    assert_eq!(draft["status"], "draft");
    let running = launch(&api, "win-back").await;
    let holdout: Vec<&String> = ids.iter().filter(|m| held_out("win-back", m, 20)).collect();
    assert!(!holdout.is_empty() && holdout.len() < 30, "{holdout:?}");
    assert_eq!(
        running["audience_size"],
        json!({"treatment": 30 - holdout.len(), "holdout": holdout.len()})
    );
    // The stored groups are the rule's, member by member; the active member is not in it.
    let stored = groups(&api, "win-back").await;
    assert_eq!(stored.len(), 30);
    for id in &ids {
        let want = if holdout.contains(&id) {
            "holdout"
        } else {
            "treatment"
        };
        assert_eq!(stored[id], want, "{id}");
    }

    // The launch told each audience member's webhooks and operators which group they are in
    // (one `campaign.joined` each, the offer only for the treatment); the member's own feed
    // shows the treatment its offer and keeps the holdout's from them.
    for id in ids.iter().chain(["busy".to_string()].iter()) {
        let joined: Vec<Value> = api
            .events(id)
            .await
            .into_iter()
            .filter(|e| e["type"] == "campaign.joined")
            .collect();
        let own = api
            .get(
                &format!("/v1/members/{id}/events?limit=100"),
                &api.member(id),
            )
            .await;
        assert_eq!(own.status, 200, "{}", own.body);
        let own_joined = own.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "campaign.joined")
            .count();
        if !ids.contains(id) {
            assert!(joined.is_empty() && own_joined == 0, "{id}: {joined:?}");
            continue;
        }
        let held = holdout.contains(&id);
        assert_eq!(joined.len(), 1, "{id}: {joined:?}");
        let d = &joined[0]["data"];
        assert_eq!(d["campaign_id"], "win-back");
        assert_eq!(d["group"], if held { "holdout" } else { "treatment" });
        assert_eq!(d["ends_at"], "2027-07-10T00:00:00Z");
        assert_eq!(
            d["offer"]["points"],
            if held { Value::Null } else { json!(200) }
        );
        assert_eq!(own_joined, usize::from(!held), "{id}");
        api.assert_events_account_for_the_balance(id).await;
    }
    // Launching again changes nothing and announces nobody twice.
    let again = api
        .post("/v1/campaigns/win-back/launch", &admin, json!({}))
        .await;
    assert_eq!(again.status, 409, "{}", again.body);

    // Their offers, as each member's app reads them: the treatment sees the campaign, the
    // holdout and the member outside the audience see nothing.
    for id in ids.iter().chain(["busy".to_string()].iter()) {
        let items = offers(&api, id).await;
        if ids.contains(id) && !holdout.contains(&id) {
            assert_eq!(
                items,
                vec![
                    json!({"campaign_id": "win-back", "name": "Win back dormant members",
                    "offer": {"kind": "bonus", "points": 200, "min_spend": {"value": 1500, "currency": "USD"}},
                    "starts_at": "2027-06-10T09:00:00Z", "ends_at": "2027-07-10T00:00:00Z",
                    "awards_left": 1})
                ],
                "{id}"
            );
        } else {
            assert!(items.is_empty(), "{id}: {items:?}");
        }
    }

    // Everyone in the audience buys 20.00 once; the busy member too, and a newcomer.
    api.clock.set(at("2027-06-12T12:00:00Z"));
    api.enrol("newcomer").await;
    for id in ids
        .iter()
        .chain(["busy".to_string(), "newcomer".to_string()].iter())
    {
        let r = api.buy(id, &format!("{id}-back"), 2000).await;
        let want = if ids.contains(id) && !holdout.contains(&id) {
            200
        } else {
            0
        };
        assert_eq!(r["campaign_bonus"], want, "{id}: {r}");
        assert_eq!(bonus_points(&api, id).await, want, "{id}");
    }
    // A treatment member's award: a `campaign_bonus` line and a `campaign.awarded` event, and
    // the events still account for the balance.
    let treated = ids.iter().find(|m| !holdout.contains(m)).unwrap();
    let events = api.assert_events_account_for_the_balance(treated).await;
    let awarded: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "campaign.awarded")
        .collect();
    assert_eq!(awarded.len(), 1);
    assert_eq!(awarded[0]["data"]["points"], 200);
    assert_eq!(awarded[0]["data"]["campaign_id"], "win-back");
    assert_eq!(awarded[0]["data"]["reference"], "campaign:win-back");
    // The limit is one award: a second purchase earns no second bonus.
    let again = api.buy(treated, "again", 5000).await;
    assert_eq!(again["campaign_bonus"], 0);
    assert_eq!(offers(&api, treated).await[0]["awards_left"], 0);

    let res = results(&api, "win-back").await;
    let n_t = 30 - holdout.len() as i64;
    let n_h = holdout.len() as i64;
    assert_eq!(res["treatment"]["members"], n_t);
    assert_eq!(res["treatment"]["converted"], n_t);
    assert_eq!(res["treatment"]["conversion_rate"], 1.0);
    assert_eq!(res["treatment"]["spend"]["value"], 2000 * n_t + 5000);
    assert_eq!(res["treatment"]["points_awarded"], 200 * n_t);
    assert_eq!(res["holdout"]["members"], n_h);
    assert_eq!(res["holdout"]["converted"], n_h);
    assert_eq!(res["holdout"]["spend"]["value"], 2000 * n_h);
    assert!(res["holdout"].get("points_awarded").is_none());
    // Everyone converted in both groups: no difference, an interval of zero width at 0.
    assert_eq!(res["uplift"]["conversion_rate"], 0.0);
    assert_eq!(res["uplift"]["conversion_rate_ci95"], json!([0.0, 0.0]));
    assert_eq!(res["verdict"], "inconclusive");
    assert_eq!(
        res["budget"],
        json!({"points": 100000, "awarded": 200 * n_t, "remaining": 100000 - 200 * n_t})
    );
    // Ended: nothing more is awarded, and the results still read.
    let ended = api
        .post("/v1/campaigns/win-back/end", &admin, json!({}))
        .await;
    assert_eq!(
        (ended.status, &ended.body["status"]),
        (200, &json!("ended"))
    );
    let late = ids.iter().filter(|m| !holdout.contains(m)).nth(1).unwrap();
    assert_eq!(api.buy(late, "late", 9000).await["campaign_bonus"], 0);
    assert_eq!(results(&api, "win-back").await["status"], "ended");
    assert!(
        offers(&api, late).await.is_empty(),
        "an ended campaign offers nothing"
    );
}

/// `GET /v1/members/{id}/offers` as the member's app calls it.
async fn offers(api: &Api, id: &str) -> Vec<Value> {
    let r = api
        .get(&format!("/v1/members/{id}/offers"), &api.member(id))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["items"].as_array().unwrap().clone()
}
both_backends!(dormant_members_in_treatment_get_the_bonus_and_offers_and_the_holdout_gets_none);

async fn awards_never_exceed_the_budget_when_treatment_members_race(b: Backend) {
    let api = Arc::new(Api::new(b).await);
    api.clock.set(at("2027-01-10T10:00:00Z"));
    let ids: Vec<String> = (0..30).map(|i| format!("r{i:02}")).collect();
    for id in &ids {
        api.enrol(id).await;
    }
    // 100 points each: the budget covers 20 members and half of a 21st.
    let body = silver_campaign(
        &api,
        json!({"kind": "bonus", "points": 100}),
        json!({"budget_points": 2050}),
    );
    put_campaign(&api, "race", body).await;
    launch(&api, "race").await;
    let runs: Vec<_> = ids
        .iter()
        .map(|id| {
            let (api, id) = (api.clone(), id.clone());
            tokio::spawn(async move { api.buy(&id, &format!("{id}-race"), 1000).await })
        })
        .collect();
    let mut awards = Vec::new();
    for r in runs {
        awards.push(r.await.unwrap()["campaign_bonus"].as_i64().unwrap());
    }
    awards.sort();
    let mut want = vec![0; 9];
    want.push(50);
    want.extend([100; 20]);
    assert_eq!(awards, want, "the last award is cut to what remains");
    let mut ledger_total = 0;
    for id in &ids {
        ledger_total += bonus_points(&api, id).await;
    }
    assert_eq!(ledger_total, 2050, "no award lost or doubled");
    let c = api.get("/v1/campaigns/race", &api.admin()).await;
    assert_eq!(
        c.body["budget"],
        json!({"points": 2050, "awarded": 2050, "remaining": 0})
    );
    assert_eq!(
        results(&api, "race").await["treatment"]["points_awarded"],
        2050
    );
}
both_backends!(awards_never_exceed_the_budget_when_treatment_members_race);

async fn per_member_limit_holds_under_concurrent_purchases_of_one_member(b: Backend) {
    let api = Arc::new(Api::new(b).await);
    api.clock.set(at("2027-01-10T10:00:00Z"));
    api.enrol("solo").await;
    let body = silver_campaign(
        &api,
        json!({"kind": "bonus", "points": 10}),
        json!({"per_member_limit": 2}),
    );
    put_campaign(&api, "limit", body).await;
    launch(&api, "limit").await;
    let runs: Vec<_> = (0..10)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move { api.buy("solo", &format!("s{i}"), 1000).await })
        })
        .collect();
    let mut got = 0;
    for r in runs {
        got += r.await.unwrap()["campaign_bonus"].as_i64().unwrap();
    }
    assert_eq!(got, 20, "two awards of 10, whatever the interleaving");
    assert_eq!(bonus_points(&api, "solo").await, 20);
    let res = results(&api, "limit").await;
    assert_eq!(
        res["treatment"]["spend"]["value"], 10_000,
        "every purchase counts"
    );
    assert_eq!(res["treatment"]["points_awarded"], 20);
}
both_backends!(per_member_limit_holds_under_concurrent_purchases_of_one_member);

async fn purchases_outside_the_window_below_min_spend_or_off_category_earn_no_bonus(b: Backend) {
    let api = Api::new(b).await;
    api.clock.set(at("2027-01-01T10:00:00Z"));
    api.enrol("w").await;
    put_campaign(
        &api,
        "later",
        json!({"name": "Later", "audience": ["tier:silver"],
               "starts_at": "2027-01-05T00:00:00Z", "ends_at": "2027-01-06T00:00:00Z",
               "offer": {"kind": "bonus", "points": 50, "min_spend": {"value": 3000, "currency": "USD"}},
               "budget_points": 1000, "holdout_percent": 0}),
    )
    .await;
    put_campaign(
        &api,
        "drinks",
        json!({"name": "Double drinks", "audience": ["tier:silver"],
               "starts_at": "2027-01-01T00:00:00Z", "ends_at": "2027-02-01T00:00:00Z",
               "offer": {"kind": "multiplier", "multiplier": 2.0, "categories": ["drinks"]},
               "budget_points": 1000, "holdout_percent": 0}),
    )
    .await;
    launch(&api, "later").await;
    launch(&api, "drinks").await;
    // Before the window of `later`; no drinks line.
    let r = api.buy("w", "before", 5000).await;
    assert_eq!(r["campaign_bonus"], 0);
    // In the window, but below min_spend: nothing; at min_spend: 50.
    api.clock.set(at("2027-01-05T12:00:00Z"));
    assert_eq!(api.buy("w", "small", 2999).await["campaign_bonus"], 0);
    assert_eq!(api.buy("w", "enough", 3000).await["campaign_bonus"], 50);
    // The window's last second counts; its end does not.
    api.clock.set(at("2027-01-05T23:59:59Z"));
    assert_eq!(api.buy("w", "last", 3000).await["campaign_bonus"], 50);
    api.clock.set(at("2027-01-06T00:00:00Z"));
    assert_eq!(api.buy("w", "after", 3000).await["campaign_bonus"], 0);
    // Drinks lines only: 12.00 of drinks earn 12 points, doubled → 12 extra; food earns none.
    let r = buy_lines(
        &api,
        "w",
        "mixed",
        2000,
        Some(json!([
            {"sku": "TEA", "category": "drinks", "quantity": 1, "amount": {"value": 1200, "currency": "USD"}},
            {"sku": "BUN", "category": "food", "quantity": 1, "amount": {"value": 800, "currency": "USD"}}])),
    )
    .await;
    assert_eq!(
        (r["points_earned"].as_i64(), r["campaign_bonus"].as_i64()),
        (Some(20), Some(12))
    );
    let res = results(&api, "later").await;
    // Only the three purchases in its window count for `later`.
    assert_eq!(res["treatment"]["spend"]["value"], 2999 + 3000 + 3000);
    assert_eq!(res["treatment"]["points_awarded"], 100);
    assert_eq!(bonus_points(&api, "w").await, 112);
    api.assert_events_account_for_the_balance("w").await;
}
both_backends!(purchases_outside_the_window_below_min_spend_or_off_category_earn_no_bonus);

async fn refunds_reverse_awards_pro_rata_and_come_off_the_results(b: Backend) {
    // Over a real socket, as a POS and a back office would call it.
    let api = Api::new(b).await.over_socket().await;
    api.clock.set(at("2027-01-10T10:00:00Z"));
    api.enrol("r").await;
    let body = silver_campaign(
        &api,
        json!({"kind": "multiplier", "multiplier": 3}),
        json!({}),
    );
    put_campaign(&api, "triple", body).await;
    launch(&api, "triple").await;
    // 100.00 earns 100 points and 200 extra.
    let p = api.buy("r", "big", 10_000).await;
    assert_eq!(
        (p["points_earned"].as_i64(), p["campaign_bonus"].as_i64()),
        (Some(100), Some(200))
    );
    assert_eq!(api.balance("r").await, 300);
    let refund = |id: &'static str, value: i64| {
        let api = &api;
        async move {
            let r = api
                .post(
                    "/v1/purchases/store-1/big/refunds",
                    &api.pos("store-1"),
                    json!({"refund_id": id, "amount": {"value": value, "currency": "USD"}}),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.body);
            r.body
        }
    };
    // 33.33 back: floor(100 × 0.3333) = 33 and floor(200 × 0.3333) = 66.
    let r1 = refund("RF-1", 3333).await;
    assert_eq!(r1["points_reversed"], 33 + 66);
    let res = results(&api, "triple").await;
    assert_eq!(res["treatment"]["spend"]["value"], 6667);
    assert_eq!(res["treatment"]["converted"], 1);
    assert_eq!(res["treatment"]["points_awarded"], 134);
    // The rest back: exactly what was earned and awarded comes off, and the purchase no longer
    // converts anyone.
    let r2 = refund("RF-2", 6667).await;
    assert_eq!(r2["points_reversed"], 67 + 134);
    assert_eq!(api.balance("r").await, 0);
    assert_eq!(bonus_points(&api, "r").await, 0);
    let res = results(&api, "triple").await;
    assert_eq!(res["treatment"]["spend"]["value"], 0);
    assert_eq!(res["treatment"]["converted"], 0);
    assert_eq!(res["treatment"]["points_awarded"], 0);
    // The budget counts what was awarded: a reversal does not return it.
    assert_eq!(res["budget"]["awarded"], 200);
    api.assert_events_account_for_the_balance("r").await;
}
both_backends!(refunds_reverse_awards_pro_rata_and_come_off_the_results);

async fn results_match_numbers_computed_by_hand(b: Backend) {
    let api = Api::new(b).await;
    api.clock.set(at("2027-01-10T10:00:00Z"));
    // Four treatment and three holdout members of campaign `fixture` at 50 %, chosen by the
    // rule above; they are the only members, so the whole audience.
    let candidates: Vec<String> = (0..200).map(|i| format!("f{i:03}")).collect();
    let tr: Vec<&String> = candidates
        .iter()
        .filter(|m| !held_out("fixture", m, 50))
        .take(4)
        .collect();
    let ho: Vec<&String> = candidates
        .iter()
        .filter(|m| held_out("fixture", m, 50))
        .take(3)
        .collect();
    for id in tr.iter().chain(&ho) {
        api.enrol(id).await;
    }
    let body = silver_campaign(
        &api,
        json!({"kind": "bonus", "points": 10}),
        json!({"holdout_percent": 50, "per_member_limit": 1}),
    );
    put_campaign(&api, "fixture", body).await;
    let l = launch(&api, "fixture").await;
    assert_eq!(l["audience_size"], json!({"treatment": 4, "holdout": 3}));
    // Treatment spends 0, 10.00, 20.00 and 30.00 (in two purchases); holdout 0, 0 and 15.00
    // (25.00 with 10.00 refunded).
    api.buy(tr[1], "t1", 1000).await;
    api.buy(tr[2], "t2", 2000).await;
    api.buy(tr[3], "t3a", 1000).await;
    api.buy(tr[3], "t3b", 2000).await;
    api.buy(ho[2], "h2", 2500).await;
    let r = api.refund("h2", "h2-back", 1000).await;
    assert_eq!(r.status, 201);
    let res = results(&api, "fixture").await;
    let usd = |v: i64| json!({"value": v, "currency": "USD"});
    // Treatment: 3 of 4 converted (0.75); spend 6000, 1500 per member; 3 awards of 10.
    assert_eq!(
        res["treatment"],
        json!({"members": 4, "converted": 3, "conversion_rate": 0.75, "spend": usd(6000),
               "spend_per_member": usd(1500), "points_awarded": 30})
    );
    // Holdout: 1 of 3 (0.3333); spend 1500, 500 per member.
    assert_eq!(
        res["holdout"],
        json!({"members": 3, "converted": 1, "conversion_rate": 0.3333, "spend": usd(1500),
               "spend_per_member": usd(500)})
    );
    // Wald: 0.75 − 1/3 = 0.416667; se = √(0.75·0.25/4 + (1/3)(2/3)/3) = √(0.046875 + 0.074074)
    // = √0.120949 = 0.347777; 1.96 × se = 0.681644 → [−0.264977, 1.098310].
    // Welch: s₁² = (0 + 1000² + 2000² + 3000² − 4·1500²)/3 = 5,000,000/3 = 1,666,666.67;
    // s₀² = (0 + 0 + 1500² − 3·500²)/2 = 750,000; se = √(1,666,666.67/4 + 750,000/3)
    // = √666,666.67 = 816.4966; 1.96 × se = 1600.33 → 1000 ± 1600.33 = [−600.33, 2600.33].
    // Incremental spend: 1000 × 4 treatment members = 4000.
    assert_eq!(
        res["uplift"],
        json!({"conversion_rate": 0.4167, "conversion_rate_ci95": [-0.265, 1.0983],
               "spend_per_member": usd(1000), "spend_per_member_ci95": [usd(-600), usd(2600)],
               "incremental_spend": usd(4000)})
    );
    assert_eq!(res["verdict"], "inconclusive");
    assert_eq!(
        res["budget"],
        json!({"points": 1_000_000, "awarded": 30, "remaining": 999_970})
    );
    // The same figures, member by member, as the console's member 360 shows them.
    let mine = |m: &str| format!("/v1/members/{m}/campaigns");
    let name = put_campaign_name(&api, "fixture").await;
    let r = api.get(&mine(tr[3]), &api.support()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["items"],
        json!([{"campaign_id": "fixture", "name": name, "status": "running", "group": "treatment",
                "purchases": 2, "spend": usd(3000), "awards": 1, "points_awarded": 10}])
    );
    let r = api.get(&mine(ho[2]), &api.analyst()).await;
    assert_eq!(
        r.body["items"],
        json!([{"campaign_id": "fixture", "name": name, "status": "running", "group": "holdout",
                "purchases": 1, "spend": usd(1500), "awards": 0, "points_awarded": 0}])
    );
    // Enrolled after the launch: in no campaign. Unknown: 404. The member: refused (a member
    // never learns they are held out).
    api.enrol("late").await;
    assert_eq!(
        api.get(&mine("late"), &api.admin()).await.body["items"],
        json!([])
    );
    assert_eq!(api.get(&mine("nobody"), &api.admin()).await.status, 404);
    assert_eq!(api.get(&mine(ho[2]), &api.member(ho[2])).await.status, 403);
}
both_backends!(results_match_numbers_computed_by_hand);

async fn put_campaign_name(api: &Api, id: &str) -> Value {
    api.get(&format!("/v1/campaigns/{id}"), &api.admin())
        .await
        .body["name"]
        .clone()
}

async fn the_same_member_is_in_the_same_group_on_every_launch_of_an_identical_campaign_id(
    b: Backend,
) {
    let ids: Vec<String> = (0..40).map(|i| format!("g{i:02}")).collect();
    let mut seen = Vec::new();
    for _ in 0..2 {
        // A fresh store each time: nothing remembers the first launch.
        let api = Api::new(b).await;
        api.clock.set(at("2027-01-10T10:00:00Z"));
        for id in &ids {
            api.enrol(id).await;
        }
        let body = silver_campaign(
            &api,
            json!({"kind": "bonus", "points": 5}),
            json!({"holdout_percent": 25}),
        );
        put_campaign(&api, "same-id", body).await;
        launch(&api, "same-id").await;
        let g = groups(&api, "same-id").await;
        for id in &ids {
            let want = if held_out("same-id", id, 25) {
                "holdout"
            } else {
                "treatment"
            };
            assert_eq!(g[id], want, "{id}");
        }
        seen.push(g);
    }
    assert_eq!(seen[0], seen[1]);
}
both_backends!(the_same_member_is_in_the_same_group_on_every_launch_of_an_identical_campaign_id);

async fn bad_campaigns_get_a_problem_and_write_nothing(b: Backend) {
    let api = Api::new(b).await;
    let admin = api.admin();
    api.clock.set(at("2027-01-10T10:00:00Z"));
    api.enrol("m").await;
    let good = silver_campaign(&api, json!({"kind": "bonus", "points": 5}), json!({}));
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let before = loyalty_tests::all_items(api.services.ctx.table.store().as_ref()).await;
    for (body, status, field) in [
        (
            with("ends_at", json!("2027-01-09T00:00:00Z")),
            422,
            "ends_at",
        ),
        (
            with("ends_at", json!("2028-06-01T00:00:00Z")),
            422,
            "ends_at",
        ),
        (
            with("offer", json!({"kind": "multiplier", "multiplier": 1})),
            422,
            "offer.multiplier",
        ),
        (
            with("offer", json!({"kind": "multiplier", "multiplier": 0.5})),
            422,
            "offer.multiplier",
        ),
        (
            with("offer", json!({"kind": "bonus", "points": 0})),
            422,
            "offer.points",
        ),
        (
            with(
                "offer",
                json!({"kind": "bonus", "points": 5, "min_spend": {"value": 100, "currency": "EUR"}}),
            ),
            422,
            "offer.min_spend",
        ),
        (
            with("audience", json!(["lifecycle:sleepy"])),
            422,
            "audience[0]",
        ),
        (with("audience", json!([])), 422, "audience"),
        (with("holdout_percent", json!(50.5)), 422, "holdout_percent"),
        (with("holdout_percent", json!(-1)), 422, "holdout_percent"),
        (with("budget_points", json!(0)), 422, "budget_points"),
        (with("per_member_limit", json!(0)), 422, "per_member_limit"),
        (with("name", json!("  ")), 422, "name"),
        (with("offer", json!({"kind": "cashback"})), 400, "offer"),
        (with("surprise", json!(1)), 400, "surprise"),
    ] {
        let r = api
            .call("PUT", "/v1/campaigns/bad", Some(&admin), Some(body.clone()))
            .await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(r.content_type().starts_with("application/problem+json"));
        assert!(
            r.body.to_string().contains(field),
            "{field} named in {}",
            r.body
        );
    }
    for (method, path, status, kind) in [
        ("GET", "/v1/campaigns/nope", 404, "/problems/not-found"),
        (
            "POST",
            "/v1/campaigns/nope/launch",
            404,
            "/problems/not-found",
        ),
        ("POST", "/v1/campaigns/nope/end", 404, "/problems/not-found"),
        (
            "GET",
            "/v1/campaigns/nope/results",
            404,
            "/problems/not-found",
        ),
        ("GET", "/v1/campaigns?limit=0", 422, "/problems/validation"),
        (
            "GET",
            "/v1/campaigns?cursor=forged",
            400,
            "/problems/validation",
        ),
    ] {
        let body = (method == "POST").then(|| json!({}));
        let r = api.call(method, path, Some(&admin), body).await;
        assert_eq!(
            (r.status, r.problem_type()),
            (status, kind),
            "{path}: {}",
            r.body
        );
    }
    assert_eq!(
        loyalty_tests::all_items(api.services.ctx.table.store().as_ref()).await,
        before,
        "refused requests wrote nothing"
    );
    // A draft can be replaced, but not ended or measured; once launched it cannot change or
    // launch again.
    put_campaign(&api, "c", good.clone()).await;
    let r = api
        .call("PUT", "/v1/campaigns/c", Some(&admin), Some(good.clone()))
        .await;
    assert_eq!(r.status, 200);
    for (path, kind) in [
        ("/v1/campaigns/c/end", "/problems/campaign-not-running"),
        ("/v1/campaigns/c/results", "/problems/campaign-not-running"),
    ] {
        let r = if path.ends_with("end") {
            api.post(path, &admin, json!({})).await
        } else {
            api.get(path, &admin).await
        };
        assert_eq!((r.status, r.problem_type()), (409, kind), "{path}");
    }
    launch(&api, "c").await;
    let before = loyalty_tests::all_items(api.services.ctx.table.store().as_ref()).await;
    let r = api
        .call("PUT", "/v1/campaigns/c", Some(&admin), Some(good.clone()))
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (409, "/problems/campaign-launched")
    );
    let r = api.post("/v1/campaigns/c/launch", &admin, json!({})).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (409, "/problems/campaign-launched")
    );
    // A window that is over cannot launch.
    let past = with("ends_at", json!("2027-01-10T09:30:00Z"));
    let past = {
        let mut p = past;
        p["starts_at"] = json!("2027-01-01T00:00:00Z");
        p
    };
    let after_refusals = {
        put_campaign(&api, "past", past).await;
        let snapshot = loyalty_tests::all_items(api.services.ctx.table.store().as_ref()).await;
        let r = api
            .post("/v1/campaigns/past/launch", &admin, json!({}))
            .await;
        assert_eq!(
            (r.status, r.problem_type()),
            (422, "/problems/validation"),
            "{}",
            r.body
        );
        snapshot
    };
    assert_eq!(
        loyalty_tests::all_items(api.services.ctx.table.store().as_ref()).await,
        after_refusals
    );
    assert!(before.len() < after_refusals.len());
    // Listing: newest first, both campaigns.
    let list = api.get("/v1/campaigns", &admin).await;
    let names: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["past", "c"]);
}
both_backends!(bad_campaigns_get_a_problem_and_write_nothing);

#[tokio::test]
async fn a_purchase_costs_one_read_and_one_write_with_ten_campaigns_running() {
    let (api, counts) = Api::counted(Default::default());
    api.clock.set(at("2027-01-10T10:00:00Z"));
    api.enrol("m").await;
    let bought = |receipt: &'static str| {
        let (api, counts) = (&api, &counts);
        async move {
            let before = counts.snapshot();
            let r = api.buy("m", receipt, 1000).await;
            let after = counts.snapshot();
            (r, (after.0 - before.0, after.1 - before.1))
        }
    };
    // No campaign: one read, one write.
    assert_eq!(bought("none").await.1, (1, 1));
    for i in 0..10 {
        let body = silver_campaign(&api, json!({"kind": "bonus", "points": 1}), json!({}));
        put_campaign(&api, &format!("c{i}"), body).await;
        launch(&api, &format!("c{i}")).await;
    }
    let body = silver_campaign(&api, json!({"kind": "bonus", "points": 1}), json!({}));
    put_campaign(&api, "c10", body).await;
    let r = api
        .post("/v1/campaigns/c10/launch", &api.admin(), json!({}))
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (409, "/problems/too-many-campaigns")
    );
    // The first purchase after the launches learns the new campaigns (a second read: their
    // definitions and the member's assignments; a third: their budgets' slices); from then on
    // each purchase reads its copy of the registry, ten budget slices and ten assignments in
    // its one batch, and takes its awards from the slices in its one commit.
    let (r, cost) = bought("learn").await;
    assert_eq!((r["campaign_bonus"].as_i64(), cost), (Some(10), (3, 1)));
    let (r, cost) = bought("steady").await;
    assert_eq!((r["campaign_bonus"].as_i64(), cost), (Some(10), (1, 1)));
    // Ending one is seen by the next purchase in that same one read.
    let r = api
        .post("/v1/campaigns/c3/end", &api.admin(), json!({}))
        .await;
    assert_eq!(r.status, 200);
    let (r, cost) = bought("after-end").await;
    assert_eq!((r["campaign_bonus"].as_i64(), cost), (Some(9), (1, 1)));
}

async fn an_interrupted_launch_is_finished_by_the_next_and_leaves_exactly_the_audience(b: Backend) {
    use loyalty::service::campaigns::{Campaign, CampaignStatus};
    use loyalty::table::Batch;
    let api = Api::new(b).await;
    api.clock.set(at("2027-01-10T10:00:00Z"));
    for id in ["a", "b", "c"] {
        api.enrol(id).await;
    }
    let body = silver_campaign(
        &api,
        json!({"kind": "bonus", "points": 5}),
        json!({"holdout_percent": 30}),
    );
    put_campaign(&api, "resume", body).await;
    // What a launch cut off half-way leaves: the campaign claimed, and an assignment written for
    // someone who is not (or no longer) in the audience.
    let id = CampaignId::parse("resume").unwrap();
    let table = &api.services.ctx.table;
    let c = table.get::<Campaign>(&id).await.unwrap().unwrap();
    let mut claimed = c.value.clone();
    claimed.status = CampaignStatus::Launching;
    let ghost = loyalty::domain::MemberId::parse("ghost").unwrap();
    let stray: Assignment =
        serde_json::from_value(json!({"member_id": "ghost", "group": "treatment",
        "purchases": 0, "spend": 0, "awards": 0, "points": 0}))
        .unwrap();
    let mut batch = Batch::new();
    batch.save(&id, &claimed, Some(c.version)).unwrap();
    batch.create(&(id.clone(), ghost), &stray).unwrap();
    table.commit(batch).await.unwrap();
    let shown = api.get("/v1/campaigns/resume", &api.admin()).await;
    assert_eq!(shown.body["status"], "launching");
    // A purchase meanwhile plays no part in it.
    assert_eq!(api.buy("a", "during", 1000).await["campaign_bonus"], 0);
    // While the claim is fresh, the launch holding it may still be running: no second launch.
    let early = api
        .post("/v1/campaigns/resume/launch", &api.admin(), json!({}))
        .await;
    assert_eq!(early.status, 409, "{}", early.body);
    // Past the lease (15 minutes), the claim is taken over and the launch finished.
    api.clock.set(at("2027-01-10T10:16:00Z"));
    let done = launch(&api, "resume").await;
    let g = groups(&api, "resume").await;
    assert_eq!(
        g.keys().collect::<Vec<_>>(),
        ["a", "b", "c"],
        "the stray is gone"
    );
    let held = ["a", "b", "c"]
        .iter()
        .filter(|m| held_out("resume", m, 30))
        .count();
    assert_eq!(
        done["audience_size"],
        json!({"treatment": 3 - held, "holdout": held})
    );
    for (m, group) in &g {
        let want = if held_out("resume", m, 30) {
            "holdout"
        } else {
            "treatment"
        };
        assert_eq!(group, want, "{m}");
    }
}
both_backends!(an_interrupted_launch_is_finished_by_the_next_and_leaves_exactly_the_audience);

async fn thirty_two_clients_buying_into_one_campaign_get_no_503_and_the_budget_stays_exact(
    b: Backend,
) {
    use futures::StreamExt;
    let api = Arc::new(Api::new(b).await);
    api.clock.set(at("2027-01-10T10:00:00Z"));
    let ids: Vec<String> = (0..60).map(|i| format!("c{i:02}")).collect();
    for id in &ids {
        api.enrol(id).await;
    }
    // 240 purchases wanting 500 points each (120,000) against 100,050: the budget runs dry in
    // 64 slices, so the last awards borrow across slices and are cut to what remains.
    let body = silver_campaign(
        &api,
        json!({"kind": "bonus", "points": 500}),
        json!({"budget_points": 100_050, "per_member_limit": null}),
    );
    put_campaign(&api, "crowd", body).await;
    launch(&api, "crowd").await;
    let purchases: Vec<(String, String)> = (0..240)
        .map(|n| (ids[n % 60].clone(), format!("crowd-{n}")))
        .collect();
    let statuses: Vec<(u16, i64)> = futures::stream::iter(purchases)
        .map(|(member, receipt)| {
            let api = api.clone();
            async move {
                tokio::spawn(async move {
                    let body = purchase_body(&member, &receipt, 1000, api.services.ctx.now());
                    let r = api.post("/v1/purchases", &api.pos("store-1"), body).await;
                    (r.status, r.body["campaign_bonus"].as_i64().unwrap_or(0))
                })
                .await
                .unwrap()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let unavailable = statuses.iter().filter(|(s, _)| *s == 503).count();
    assert_eq!(unavailable, 0, "no purchase gave up on contention");
    assert!(statuses.iter().all(|(s, _)| *s == 201), "{statuses:?}");
    let awarded: i64 = statuses.iter().map(|(_, p)| p).sum();
    assert_eq!(awarded, 100_050, "the budget, exactly");
    let mut ledger_total = 0;
    for id in &ids {
        ledger_total += bonus_points(&api, id).await;
    }
    assert_eq!(ledger_total, 100_050, "no award lost or doubled");
    let c = api.get("/v1/campaigns/crowd", &api.admin()).await;
    assert_eq!(
        c.body["budget"],
        json!({"points": 100_050, "awarded": 100_050, "remaining": 0})
    );
    assert_eq!(
        results(&api, "crowd").await["treatment"]["points_awarded"],
        100_050
    );
}
both_backends!(thirty_two_clients_buying_into_one_campaign_get_no_503_and_the_budget_stays_exact);

async fn concurrent_launches_of_one_campaign_end_in_one_launch_and_no_503(b: Backend) {
    let api = Arc::new(Api::new(b).await);
    api.clock.set(at("2027-01-10T10:00:00Z"));
    for i in 0..40 {
        api.enrol(&format!("l{i:02}")).await;
    }
    let body = silver_campaign(
        &api,
        json!({"kind": "bonus", "points": 5}),
        json!({"holdout_percent": 20}),
    );
    put_campaign(&api, "twice", body).await;
    let runs: Vec<_> = (0..10)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move {
                let r = api
                    .post("/v1/campaigns/twice/launch", &api.admin(), json!({}))
                    .await;
                (r.status, r.body)
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for r in runs {
        statuses.push(r.await.unwrap());
    }
    let launched = statuses.iter().filter(|(s, _)| *s == 200).count();
    let refused = statuses.iter().filter(|(s, _)| *s == 409).count();
    assert_eq!((launched, refused), (1, 9), "{statuses:?}");
    let shown = api.get("/v1/campaigns/twice", &api.admin()).await;
    assert_eq!(shown.body["status"], "running");
    let size = &shown.body["audience_size"];
    assert_eq!(
        size["treatment"].as_u64().unwrap() + size["holdout"].as_u64().unwrap(),
        40
    );
    assert_eq!(groups(&api, "twice").await.len(), 40, "each member once");
    // It runs once: a purchase is counted once.
    api.buy("l00", "after-launch", 1000).await;
    let r = results(&api, "twice").await;
    let counted =
        r["treatment"]["converted"].as_u64().unwrap() + r["holdout"]["converted"].as_u64().unwrap();
    assert_eq!(counted, 1);
}
both_backends!(concurrent_launches_of_one_campaign_end_in_one_launch_and_no_503);
