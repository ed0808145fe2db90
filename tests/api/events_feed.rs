//! Domain events on both store backends: the feeds, signed webhooks delivered to a real HTTP
//! receiver (failing at first, restarted midway), and erasure.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{KeyInit, Mac};
use loyalty::domain::MemberId;
use loyalty::table::LedgerLine;
use loyalty_local::webhooks::{Timing, Webhook};
use loyalty_tests::{Api, Backend, all_items, both_backends};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Receiver {
    calls: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    fail_first: usize,
    refusing: Arc<Mutex<bool>>,
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let mut calls = r.calls.lock().unwrap();
    calls.push((headers, body));
    if calls.len() <= r.fail_first || *r.refusing.lock().unwrap() {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

/// A plain HTTP receiver on 127.0.0.1 that answers 500 to its first `fail_first` calls.
async fn receiver(fail_first: usize) -> (String, Receiver) {
    let r = Receiver {
        fail_first,
        ..Default::default()
    };
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, r)
}

fn fast() -> Timing {
    Timing {
        poll: Duration::from_millis(30),
        // Longer than a commit takes on a loaded emulator: an event is listed only once every
        // commit stamped before it has landed (DESIGN.md "Events").
        settle: chrono::Duration::seconds(2),
        first_retry: Duration::from_millis(20),
        max_retry: Duration::from_millis(100),
        give_up_after: chrono::Duration::hours(24),
    }
}

const SECRET: &[u8] = b"whsec-test";

fn start(api: &Api, url: &str, dir: &std::path::Path) -> tokio::task::JoinHandle<()> {
    let hook = Webhook {
        url: url.to_owned(),
        secret: Arc::new(SECRET.to_vec()),
        state_dir: Some(dir.to_path_buf()),
        timing: fast(),
    };
    tokio::spawn(hook.run(api.services.clone()))
}

/// The signature the receiver would compute: HMAC-SHA256(secret, "<t>.<body>"), by hand.
fn signature_is_valid(headers: &HeaderMap, body: &str) -> bool {
    let sig = headers["loyalty-signature"].to_str().unwrap();
    let (t, v1) = sig
        .strip_prefix("t=")
        .and_then(|s| s.split_once(",v1="))
        .expect("t=…,v1=…");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes()) == v1
}

async fn some_business(api: &Api, member: &str, receipt: &str) {
    let (admin, pos) = (api.admin(), api.pos("store-1"));
    let now = api.services.ctx.now().to_rfc3339();
    let r = api
        .post(
            &format!("/v1/members/{member}/adjustments"),
            &admin,
            json!({"points": 100, "reason": "welcome"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = api
        .post(
            "/v1/purchases",
            &pos,
            json!({"member": {"id": member}, "store_id": "store-1", "receipt_id": receipt,
            "amount": {"value": 5000, "currency": "USD"}, "occurred_at": now}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let red = api
        .post(
            &format!("/v1/members/{member}/redemptions"),
            &api.member(member),
            json!({"reward_id": "coffee"}),
        )
        .await;
    assert_eq!(red.status, 201, "{}", red.body);
    let code = red.body["voucher_code"].as_str().unwrap();
    let r = api
        .post(
            &format!("/v1/vouchers/{code}/use"),
            &pos,
            json!({"store_id": "store-1"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api
        .post(&format!("/v1/purchases/store-1/{receipt}/refunds"), &pos, json!({"refund_id": format!("F-{receipt}"), "amount": {"value": 1000, "currency": "USD"}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

async fn wait_for(r: &Receiver, ids: &HashSet<String>) {
    for _ in 0..400 {
        let got: HashSet<String> = r
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|(h, _)| h["loyalty-event-id"].to_str().unwrap().to_owned())
            .collect();
        if ids.is_subset(&got) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the receiver did not get every event in time");
}

/// A store with the reward `coffee` (30 points).
async fn with_coffee(b: Backend) -> Api {
    let api = Api::new(b).await;
    let r = api
        .call(
            "PUT",
            "/v1/rewards/coffee",
            Some(&api.admin()),
            Some(json!({"name": "Coffee", "cost_points": 30})),
        )
        .await;
    assert_eq!(r.status, 201);
    api
}

async fn webhooks_arrive_signed_in_seq_order_after_failures_and_a_restart(b: Backend) {
    let api = with_coffee(b).await;
    let (url, rx) = receiver(5).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = start(&api, &url, dir.path());
    for m in ["a", "b"] {
        api.enrol(m).await;
    }
    some_business(&api, "a", "R1").await;
    some_business(&api, "b", "R2").await;
    let mut feed: Vec<Value> = api.assert_events_account_for_the_balance("a").await;
    feed.extend(api.assert_events_account_for_the_balance("b").await);
    let ids: HashSet<String> = feed
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    wait_for(&rx, &ids).await;

    // The receiver goes down; the worker stops (loyalty-local restarted); more happens.
    *rx.refusing.lock().unwrap() = true;
    tokio::time::sleep(Duration::from_millis(200)).await;
    worker.abort();
    let acknowledged = rx.calls.lock().unwrap().len();
    some_business(&api, "a", "R3").await;
    *rx.refusing.lock().unwrap() = false;
    let _again = start(&api, &url, dir.path());
    let feed_a = api.assert_events_account_for_the_balance("a").await;
    let feed_b = api.events("b").await;
    let all: Vec<&Value> = feed_a.iter().chain(&feed_b).collect();
    let ids: HashSet<String> = all
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    wait_for(&rx, &ids).await;

    let calls = rx.calls.lock().unwrap().clone();
    assert!(
        calls.len() >= ids.len() + 5,
        "the first 5 calls failed and were retried"
    );
    let mut by_id: HashMap<String, String> = HashMap::new();
    let mut last_seq: HashMap<String, u64> = HashMap::new();
    for (headers, body) in &calls {
        assert!(signature_is_valid(headers, body), "signature of {body}");
        let e: Value = serde_json::from_str(body).unwrap();
        loyalty_tests::assert_matches_event_schema(&e);
        let id = headers["loyalty-event-id"].to_str().unwrap().to_owned();
        assert_eq!(e["id"], json!(id));
        // A duplicate is the same event, byte for byte.
        if let Some(prev) = by_id.insert(id.clone(), body.clone()) {
            assert_eq!(&prev, body);
        }
        let member = e["member_id"].as_str().unwrap().to_owned();
        let seq = e["seq"].as_u64().unwrap();
        let prev = last_seq.insert(member.clone(), seq).unwrap_or(0);
        assert!(
            seq >= prev,
            "{member}: seq {seq} after {prev}: per-member order kept"
        );
        assert!(
            seq <= prev + 1,
            "{member}: seq {seq} after {prev}: nothing skipped; delivered: {:?}",
            calls
                .iter()
                .map(|(_, b)| {
                    let e: Value = serde_json::from_str(b).unwrap();
                    format!("{}/{} {}", e["member_id"], e["seq"], e["id"])
                })
                .collect::<Vec<_>>()
        );
    }
    assert_eq!(
        by_id.len(),
        ids.len(),
        "every event, and only events of the feeds"
    );
    let first: HashSet<String> = feed
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let resent = calls[acknowledged..]
        .iter()
        .filter(|(h, _)| first.contains(h["loyalty-event-id"].to_str().unwrap()))
        .count();
    assert_eq!(
        resent, 0,
        "the restarted worker resumed from its saved position"
    );
    let types: HashSet<&str> = feed_a.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for t in [
        "member.enrolled",
        "points.adjusted",
        "points.earned",
        "points.redeemed",
        "voucher.issued",
        "voucher.used",
        "points.reversed",
    ] {
        assert!(types.contains(t), "{t} in {types:?}");
    }
}
both_backends!(webhooks_arrive_signed_in_seq_order_after_failures_and_a_restart);

async fn the_feeds_page_and_check_who_asks(b: Backend) {
    let api = Api::new(b).await;
    api.enrol("a").await;
    for i in 0..7 {
        api.post(
            "/v1/members/a/adjustments",
            &api.admin(),
            json!({"points": i + 1, "reason": "x"}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut path = "/v1/members/a/events?limit=3".to_owned();
    loop {
        let r = api.get(&path, &api.member("a")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        seen.extend(
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_u64().unwrap()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/members/a/events?limit=3&cursor={c}"),
            None => break,
        }
    }
    // Enrolment (member.enrolled, segment.changed) and seven adjustments.
    assert_eq!(seen, (1..=9).collect::<Vec<u64>>());
    let r = api
        .get("/v1/members/a/events?after_seq=7", &api.admin())
        .await;
    let seqs: Vec<u64> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![8, 9]);
    let r = api.get("/v1/members/a/events", &api.member("b")).await;
    assert_eq!((r.status, r.problem_type()), (403, "/problems/forbidden"));
    assert!(r.body.get("items").is_none(), "a 403 carries no data");
    assert_eq!(
        api.get("/v1/members/a/events?after_seq=x", &api.admin())
            .await
            .status,
        400
    );

    let now = api.services.ctx.now();
    let window = |from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>| {
        format!(
            "/v1/events?from={}&to={}&limit=3",
            from.format("%Y-%m-%dT%H:%M:%S%.fZ"),
            to.format("%Y-%m-%dT%H:%M:%S%.fZ")
        )
    };
    let mut ids = Vec::new();
    let mut path = window(
        now - chrono::Duration::hours(1),
        now + chrono::Duration::minutes(1),
    );
    loop {
        let r = api.get(&path, &api.admin()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        ids.extend(
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => {
                path = format!(
                    "{}&cursor={c}",
                    window(
                        now - chrono::Duration::hours(1),
                        now + chrono::Duration::minutes(1)
                    )
                )
            }
            None => break,
        }
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(
        (ids.len(), &ids),
        (9, &sorted),
        "every event once, in id order"
    );
    assert_eq!(
        api.get(
            &window(now, now + chrono::Duration::hours(25)),
            &api.admin()
        )
        .await
        .status,
        422
    );
    assert_eq!(
        api.get(
            &window(now, now + chrono::Duration::hours(1)),
            &api.member("a")
        )
        .await
        .status,
        403
    );
}
both_backends!(the_feeds_page_and_check_who_asks);

async fn erasure_leaves_no_personal_data_anywhere_and_keeps_the_books(b: Backend) {
    let api = with_coffee(b).await;
    let (name, phone, email) = ("Evelyn Quintessa", "+8613812345678", "evelyn.q@example.com");
    let r = api
        .call_with(
            "POST",
            "/v1/members",
            Some(&api.pos("store-1")),
            Some(json!({"id": "0193a0b4-7c1e-7d30-9a51-5b2f8f2c1e01", "name": name, "phone": phone, "email": email, "birthday": "1990-05-04", "timezone": "Asia/Shanghai"}).to_string().into_bytes()),
            &[("idempotency-key", "enrol-eve")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let eve = "0193a0b4-7c1e-7d30-9a51-5b2f8f2c1e01";
    let r = api
        .call(
            "PATCH",
            &format!("/v1/members/{eve}"),
            Some(&api.member(eve)),
            Some(json!({"name": name})),
        )
        .await;
    assert_eq!(r.status, 200);
    api.post(
        &format!("/v1/members/{eve}/adjustments"),
        &api.admin(),
        json!({"points": 100, "reason": format!("goodwill for {name}")}),
    )
    .await;
    let red = api
        .post(
            &format!("/v1/members/{eve}/redemptions"),
            &api.member(eve),
            json!({"reward_id": "coffee"}),
        )
        .await;
    assert_eq!(red.status, 201);
    let code = red.body["voucher_code"].as_str().unwrap().to_owned();

    let r = api
        .call(
            "DELETE",
            &format!("/v1/members/{eve}"),
            Some(&api.member(eve)),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["status"].clone(), r.body["forfeited_points"].clone()),
        (json!("erased"), json!(70))
    );
    let again = api
        .call(
            "DELETE",
            &format!("/v1/members/{eve}"),
            Some(&api.admin()),
            None,
        )
        .await;
    assert_eq!(
        (again.status, again.body["erased_at"].clone()),
        (200, r.body["erased_at"].clone()),
        "erasing twice is one erasure"
    );

    let everything = serde_json::to_string(
        &all_items(api.services.ctx.table.store().as_ref())
            .await
            .iter()
            .map(|i| json!([i.key.pk, i.key.sk, i.attrs]))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    for secret in [
        name,
        "Evelyn",
        "Quintessa",
        &phone[1..],
        email,
        "Asia/Shanghai",
        "05-04",
    ] {
        assert!(!everything.contains(secret), "{secret} is still stored");
    }
    let id = MemberId::parse(eve).unwrap();
    let (lines, _) = api
        .services
        .ctx
        .table
        .list::<LedgerLine>(&id, 100, None)
        .await
        .unwrap();
    assert_eq!(
        lines.iter().map(|l| l.entry.points.0).sum::<i64>(),
        0,
        "the ledger sums to the (zero) balance"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.entry.kind == loyalty::domain::ledger::LedgerKind::ErasureForfeit)
    );
    let (events, _) = api
        .services
        .ctx
        .table
        .member_events(&id, 0, 100)
        .await
        .unwrap();
    assert_eq!(
        events.last().unwrap().kind(),
        loyalty::domain::event::EventType::MemberErased
    );
    let pos = api.pos("store-1");
    for (method, path, body) in [
        ("GET", format!("/v1/members/{eve}"), None),
        (
            "PATCH",
            format!("/v1/members/{eve}"),
            Some(json!({"email": null})),
        ),
        ("GET", format!("/v1/members/{eve}/ledger"), None),
        ("GET", format!("/v1/members/{eve}/events"), None),
        ("GET", format!("/v1/members/{eve}/tier"), None),
        ("GET", format!("/v1/members/{eve}/redemptions"), None),
        (
            "POST",
            format!("/v1/members/{eve}/redemptions"),
            Some(json!({"reward_id": "coffee"})),
        ),
        (
            "POST",
            format!("/v1/members/{eve}/adjustments"),
            Some(json!({"points": 5, "reason": "x"})),
        ),
    ] {
        let r = api.call(method, &path, Some(&api.admin()), body).await;
        assert_eq!(
            (r.status, r.problem_type()),
            (410, "/problems/member-erased"),
            "{method} {path}"
        );
    }
    let r = api
        .post("/v1/purchases", &pos, json!({"member": {"id": eve}, "store_id": "store-1", "receipt_id": "E1",
            "amount": {"value": 100, "currency": "USD"}, "occurred_at": api.services.ctx.now().to_rfc3339()}))
        .await;
    assert_eq!(r.status, 410);
    let r = api
        .post(
            &format!("/v1/vouchers/{code}/use"),
            &pos,
            json!({"store_id": "store-1"}),
        )
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (409, "/problems/voucher-cancelled")
    );
    let r = api
        .post(
            "/v1/members",
            &api.admin(),
            json!({"id": "newcomer", "name": "N", "phone": phone}),
        )
        .await;
    assert_eq!(r.status, 201, "the phone enrols a new member: {}", r.body);
}
both_backends!(erasure_leaves_no_personal_data_anywhere_and_keeps_the_books);

/// The `webhooks` function, fed what the pipe makes of a real carrier item, delivers its events
/// signed, and reports the message as failed (for SQS to retry) when a receiver refuses.
#[tokio::test]
async fn the_webhooks_function_delivers_a_stream_record_and_reports_failures() {
    use loyalty::table::{EventCarrier, Record};
    let api = Api::new(Backend::Embedded).await;
    api.enrol("a").await;
    // Enrolment's carrier: member.enrolled and segment.changed, keyed by the last seq.
    let key = EventCarrier::key(&(MemberId::parse("a").unwrap(), 2));
    let item = api
        .services
        .ctx
        .table
        .store()
        .get(&key)
        .await
        .unwrap()
        .unwrap();
    let mut attrs = item.attrs.clone();
    attrs.insert("PK".into(), json!(key.pk));
    attrs.insert("SK".into(), json!(key.sk));
    let image: serde_dynamo::Item = serde_dynamo::to_item(attrs).unwrap();
    let body = json!({"detail-type": "Event from aws.dynamodb", "source": "loyalty.events",
        "detail": {"eventName": "INSERT", "dynamodb": {"NewImage": image}}});
    let batch = |id: &str| -> aws_lambda_events::sqs::SqsEvent {
        serde_json::from_value(json!({"Records": [{"messageId": id, "body": body.to_string()}]}))
            .unwrap()
    };
    let (ok_url, ok) = receiver(0).await;
    let client = loyalty::webhook::client();
    let res =
        loyalty_webhooks::handle(&client, std::slice::from_ref(&ok_url), SECRET, batch("m-1"))
            .await;
    assert!(res.batch_item_failures.is_empty());
    // The enrolment carrier holds member.enrolled and segment.changed: two deliveries.
    let calls = ok.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    let types: Vec<(Value, Value)> = calls
        .iter()
        .map(|(headers, body)| {
            assert!(signature_is_valid(headers, body));
            let e: Value = serde_json::from_str(body).unwrap();
            (e["type"].clone(), e["seq"].clone())
        })
        .collect();
    assert_eq!(
        types,
        vec![
            (json!("member.enrolled"), json!(1)),
            (json!("segment.changed"), json!(2))
        ]
    );
    let (bad_url, _bad) = receiver(usize::MAX).await;
    let res = loyalty_webhooks::handle(&client, &[ok_url, bad_url], SECRET, batch("m-2")).await;
    assert_eq!(res.batch_item_failures.len(), 1);
    assert_eq!(res.batch_item_failures[0].item_identifier, "m-2");
}

async fn an_erased_members_replays_answer_410_and_no_idempotency_record_keeps_a_note_or_a_code(
    b: Backend,
) {
    let api = with_coffee(b).await;
    api.enrol("gone").await;
    let note = "call back on +8613899990000";
    let (admin, member) = (api.admin(), api.member("gone"));
    let adjust = || {
        api.call_with(
            "POST",
            "/v1/members/gone/adjustments",
            Some(&admin),
            Some(
                json!({"points": 100, "reason": note})
                    .to_string()
                    .into_bytes(),
            ),
            &[("idempotency-key", "adj-1")],
        )
    };
    let redeem = || {
        api.call_with(
            "POST",
            "/v1/members/gone/redemptions",
            Some(&member),
            Some(json!({"reward_id": "coffee"}).to_string().into_bytes()),
            &[("idempotency-key", "red-1")],
        )
    };
    let first = adjust().await;
    assert_eq!(first.status, 201, "{}", first.body);
    let red = redeem().await;
    assert_eq!(red.status, 201, "{}", red.body);
    let code = red.body["voucher_code"].as_str().unwrap().to_owned();
    // Before erasure the replays answer the first responses.
    assert!(adjust().await.replayed());
    assert!(redeem().await.replayed());
    // Spend more than is left, then refund nothing: balance 100 - 30 = 70, so push it negative
    // with an adjustment to check the debt is written off, not reported as a negative forfeit.
    let r = api
        .post(
            "/v1/members/gone/adjustments",
            &api.admin(),
            json!({"points": -90, "reason": "clawback"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(api.balance("gone").await, -20);
    let r = api
        .call("DELETE", "/v1/members/gone", Some(&api.admin()), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            r.body["forfeited_points"].clone(),
            r.body["written_off_points"].clone()
        ),
        (json!(0), json!(20)),
        "a debt is written off, never a negative forfeit"
    );
    for replay in [adjust().await, redeem().await] {
        assert_eq!(
            (replay.status, replay.problem_type()),
            (410, "/problems/member-erased"),
            "{}",
            replay.body
        );
        assert!(!replay.body.to_string().contains(note));
        assert!(!replay.body.to_string().contains(&code));
    }
    let items = all_items(api.services.ctx.table.store().as_ref()).await;
    for i in items
        .iter()
        .filter(|i| i.key.sk.starts_with("IDEMPOTENCY") || i.key.pk.starts_with("IDEMPOTENCY"))
    {
        let text = serde_json::to_string(&i.attrs).unwrap();
        assert!(
            !text.contains(note),
            "an idempotency record keeps the note: {text}"
        );
        assert!(
            !text.contains(&code),
            "an idempotency record keeps the voucher code: {text}"
        );
    }
    let id = MemberId::parse("gone").unwrap();
    let (lines, _) = api
        .services
        .ctx
        .table
        .list::<LedgerLine>(&id, 100, None)
        .await
        .unwrap();
    assert_eq!(
        lines.iter().map(|l| l.entry.points.0).sum::<i64>(),
        0,
        "the ledger sums to zero"
    );
}
both_backends!(
    an_erased_members_replays_answer_410_and_no_idempotency_record_keeps_a_note_or_a_code
);

async fn one_members_events_order_the_same_by_seq_id_and_time_under_concurrent_writes(b: Backend) {
    let api = with_coffee(b).await;
    let (url, rx) = receiver(0).await;
    let dir = tempfile::tempdir().unwrap();
    api.enrol("busy").await;
    let worker = start(&api, &url, dir.path());
    // 24 writers at once on one member: adjustments, purchases and redemptions.
    let writes = (0..24).map(|i| {
        let api = &api;
        async move {
            let r = match i % 3 {
                0 => api.post("/v1/members/busy/adjustments", &api.admin(), json!({"points": 40, "reason": "r"})).await,
                1 => api.post("/v1/purchases", &api.pos("store-1"), json!({"member": {"id": "busy"}, "store_id": "store-1",
                        "receipt_id": format!("C-{i}"), "amount": {"value": 1000, "currency": "USD"},
                        "occurred_at": api.services.ctx.now().to_rfc3339()})).await,
                _ => api.post("/v1/members/busy/redemptions", &api.member("busy"), json!({"reward_id": "coffee"})).await,
            };
            assert!(r.status == 201 || r.status == 409, "{}: {}", r.status, r.body);
        }
    });
    futures::future::join_all(writes).await;
    let feed = api.events("busy").await;
    assert!(feed.len() >= 17, "{} events", feed.len());
    let in_order = |events: &[Value], what: &str| {
        for w in events.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            assert!(a["seq"].as_u64() < b["seq"].as_u64(), "{what}: seq order");
            assert!(
                a["id"].as_str() < b["id"].as_str(),
                "{what}: seq {} and {} ids out of order",
                a["seq"],
                b["seq"]
            );
            let (ta, tb): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) = (
                a["occurred_at"].as_str().unwrap().parse().unwrap(),
                b["occurred_at"].as_str().unwrap().parse().unwrap(),
            );
            assert!(
                ta <= tb,
                "{what}: seq {} at {ta} after seq {} at {tb}",
                a["seq"],
                b["seq"]
            );
        }
    };
    in_order(&feed, "member feed");
    // The global feed, in id order, lists this member's events in seq order.
    let now = api.services.ctx.now();
    let from =
        (now - chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to = (now + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let global: Vec<Value> = global_feed(&api, &from, &to, 100)
        .await
        .into_iter()
        .filter(|e| e["member_id"] == "busy")
        .collect();
    assert_eq!(
        global, feed,
        "the global feed lists the member's events in seq order"
    );
    // Webhooks deliver them in the same order.
    let ids: HashSet<String> = feed
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    wait_for(&rx, &ids).await;
    worker.abort();
    let mut delivered: Vec<Value> = Vec::new();
    for (_, body) in rx.calls.lock().unwrap().iter() {
        let e: Value = serde_json::from_str(body).unwrap();
        if e["member_id"] == "busy" && !delivered.iter().any(|d| d["id"] == e["id"]) {
            delivered.push(e);
        }
    }
    in_order(&delivered, "webhook deliveries");
    assert_eq!(delivered.len(), feed.len());
}
both_backends!(one_members_events_order_the_same_by_seq_id_and_time_under_concurrent_writes);

async fn a_job_run_as_of_an_earlier_instant_has_its_events_delivered_by_webhooks(b: Backend) {
    let program = loyalty::program::Program::from_json(
        r#"{"points": {"pending_days": 14, "expiry": {"policy": "rolling", "months": 12}}}"#,
    )
    .unwrap();
    let api = Api::with_program(b, program).await;
    let (url, rx) = receiver(0).await;
    let dir = tempfile::tempdir().unwrap();
    api.enrol("later").await;
    let t0 = api.services.ctx.now();
    let r = api
        .post("/v1/purchases", &api.pos("store-1"), json!({"member": {"id": "later"}, "store_id": "store-1",
            "receipt_id": "L-1", "amount": {"value": 5000, "currency": "USD"}, "occurred_at": t0.to_rfc3339()}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let worker = start(&api, &url, dir.path());
    let pending: HashSet<String> = api
        .events("later")
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    wait_for(&rx, &pending).await;
    // The worker has delivered up to a month ahead when the job runs as of day 15.
    api.clock.set(t0 + chrono::Duration::days(30));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let run = api
        .services
        .balances
        .points_job(t0 + chrono::Duration::days(15))
        .await
        .unwrap();
    let events = api.events("later").await;
    let released: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "points.available")
        .collect();
    assert_eq!(
        released.len(),
        1,
        "the job released the pending points: {run:?}"
    );
    let ids: HashSet<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    wait_for(&rx, &ids).await;
    worker.abort();
}
both_backends!(a_job_run_as_of_an_earlier_instant_has_its_events_delivered_by_webhooks);

async fn a_write_that_read_another_commit_stamps_its_events_after_that_commits(b: Backend) {
    use loyalty::service::members::Adjustment;
    use loyalty_members::{AdjustmentRequest, EnrolRequest};
    let (inner, _dir) = loyalty_tests::store(b).await;
    let (other, _) = loyalty_tests::services_on(inner.clone(), Default::default());
    let m = MemberId::parse("raced").unwrap();
    let enrol: EnrolRequest = serde_json::from_value(json!({"name": "R"})).unwrap();
    other
        .members
        .enrol(m.clone(), enrol.into(), None, None, "test")
        .await
        .unwrap();
    let adjustment = |p: i64| -> Adjustment {
        serde_json::from_value::<AdjustmentRequest>(json!({"points": p, "reason": "r"}))
            .unwrap()
            .into()
    };
    // The other writer commits after this one took its instant and before it reads.
    let (m2, req) = (m.clone(), adjustment(7));
    let racer = async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        other
            .members
            .adjust(&m2, req, None, &loyalty_tests::admin_actor())
            .await
            .unwrap();
    };
    let (svc, _) = loyalty_tests::services_on(
        Arc::new(loyalty_tests::RaceBeforeCommit::before_first_read(
            inner.clone(),
            racer,
        )),
        Default::default(),
    );
    svc.members
        .adjust(&m, adjustment(5), None, &loyalty_tests::admin_actor())
        .await
        .unwrap();
    let (events, _) = svc.ctx.table.member_events(&m, 0, 100).await.unwrap();
    // Enrolment (member.enrolled, segment.changed), the other writer's adjustment, this one's.
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(
        events[3].data.points(),
        loyalty::domain::Points(5),
        "this writer's adjustment came last"
    );
    for w in events.windows(2) {
        // Events of one commit share its instant; ids still order them.
        assert!(
            w[0].occurred_at <= w[1].occurred_at,
            "seq {} at {} is after seq {} at {}",
            w[0].seq,
            w[0].occurred_at,
            w[1].seq,
            w[1].occurred_at
        );
        assert!(
            w[0].id < w[1].id,
            "seq {} and {}: ids out of order",
            w[0].seq,
            w[1].seq
        );
    }
    assert!(
        events[2].occurred_at < events[3].occurred_at,
        "this writer took its instant before the other committed, yet stamps after it"
    );
}
both_backends!(a_write_that_read_another_commit_stamps_its_events_after_that_commits);

async fn the_global_feed_pages_every_event_once_in_id_order_across_its_shards(b: Backend) {
    let api = Api::new(b).await;
    api.clock.set(loyalty_tests::at("2027-05-04T10:00:00Z"));
    // Sixty members spread over the event index's 32 shards; a campaign makes each purchase a
    // commit of several items (the purchase line, the award line), one of them indexed.
    let ids: Vec<String> = (0..60).map(|i| format!("g{i:02}")).collect();
    for id in &ids {
        api.enrol(id).await;
    }
    let now = api.services.ctx.now();
    let r = api
        .call(
            "PUT",
            "/v1/campaigns/feed",
            Some(&api.admin()),
            Some(json!({"name": "Feed", "audience": ["tier:silver"],
                "starts_at": (now - chrono::Duration::hours(1)).to_rfc3339(),
                "ends_at": (now + chrono::Duration::days(1)).to_rfc3339(),
                "offer": {"kind": "bonus", "points": 7}, "budget_points": 100000,
                "per_member_limit": null, "holdout_percent": 0})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = api
        .post("/v1/campaigns/feed/launch", &api.admin(), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // One member first buys thirty times in a row: the earliest commits of the window crowd
    // into one shard, more than the feed reads of a shard at once, so a page of 100 must stop
    // where that shard was cut short. Then six purchases each.
    for k in 0..30 {
        api.clock
            .set(now - chrono::Duration::minutes(30) + chrono::Duration::milliseconds(k));
        api.buy("g00", &format!("feed-early-{k}"), 1000).await;
    }
    for round in 0..6 {
        for (k, id) in ids.iter().enumerate() {
            let step = (round * ids.len() + k) as i64;
            api.clock
                .set(now + chrono::Duration::milliseconds(250 * step));
            api.buy(id, &format!("feed-{round}-{k}"), 1000).await;
        }
    }
    // Every event each member's own feed holds, from the items themselves.
    let mut want = Vec::new();
    for id in &ids {
        let r = api
            .get(&format!("/v1/members/{id}/events?limit=100"), &api.admin())
            .await;
        want.extend(
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
    }
    want.sort();
    // The global feed in pages of 7 and of 100: pages end inside shards and inside commits.
    let from =
        (now - chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to = (now + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for limit in [7, 100] {
        let got: Vec<String> = global_feed(&api, &from, &to, limit)
            .await
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "strictly in id order, no repeat"
        );
        // 60 × (enrolment: member.enrolled, segment.changed) + 390 purchases with their awards,
        // all inside the window.
        let first_difference = got.iter().zip(&want).position(|(g, w)| g != w);
        assert!(
            got == want,
            "every event once, pages of {limit}: {} events, {} expected, first difference at {first_difference:?}",
            got.len(),
            want.len()
        );
        assert!(got.len() >= 60 * 2 + 390 * 2, "{}", got.len());
    }
}
both_backends!(the_global_feed_pages_every_event_once_in_id_order_across_its_shards);

/// Every event of the global feed in `from..to` (RFC 3339), read in pages of `limit` by cursor.
async fn global_feed(api: &Api, from: &str, to: &str, limit: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/events?from={from}&to={to}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = api.get(&path.replace('+', "%2B"), &api.admin()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        out.extend(r.body["items"].as_array().unwrap().iter().cloned());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}
