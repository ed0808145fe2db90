//! `kill -9` of the real `loyalty-local` binary on its durable store, in the middle of a stream
//! of purchases and redemptions, several times over: every acknowledged write is there after the
//! restart, none twice; retrying the unacknowledged ones with the same receipt or key never
//! duplicates either; and the balance is the sum of the ledger.

use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_loyalty-local");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn token(data: &Path, role: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .arg("token")
        .args(role)
        .env_remove("LOYALTY_DEV_SECRET")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn start(data: &Path, port: u16, client: &reqwest::Client) -> Child {
    let mut child = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env_remove("LOYALTY_DEV_SECRET")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        let up = client
            .get(format!("http://127.0.0.1:{port}/v1/openapi.json"))
            .send()
            .await;
        if up.is_ok_and(|r| r.status().is_success()) {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("loyalty-local did not start");
}

async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> Value {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[derive(Clone)]
enum Op {
    /// Receipt and sale time: a retry must send the very same request.
    Purchase(String, String),
    Redeem(String),
}

async fn send(
    client: &reqwest::Client,
    base: &str,
    pos: &str,
    member: &str,
    op: &Op,
) -> Option<Value> {
    let req = match op {
        Op::Purchase(receipt, at) => client
            .post(format!("{base}/v1/purchases"))
            .bearer_auth(pos)
            .json(
                &json!({"member": {"id": "m"}, "store_id": "store-1", "receipt_id": receipt,
                "amount": {"value": 1500, "currency": "USD"}, "occurred_at": at}),
            ),
        Op::Redeem(key) => client
            .post(format!("{base}/v1/members/m/redemptions"))
            .bearer_auth(member)
            .header("idempotency-key", key)
            .json(&json!({"reward_id": "pen"})),
    };
    let res = req.timeout(Duration::from_secs(5)).send().await.ok()?;
    if res.status() != 201 {
        return None;
    }
    res.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_a_write_stream_loses_no_acknowledged_write_and_duplicates_none() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let client = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start(&data, port, &client).await;
    let (admin, pos, member) = (
        token(&data, &["admin"]),
        token(&data, &["pos", "store-1"]),
        token(&data, &["member", "m"]),
    );
    let ok = |r: reqwest::Response| assert!(r.status().is_success(), "{}", r.status());
    ok(client
        .post(format!("{base}/v1/members"))
        .bearer_auth(&admin)
        .json(&json!({"id": "m", "name": "M"}))
        .send()
        .await
        .unwrap());
    ok(client
        .put(format!("{base}/v1/rewards/pen"))
        .bearer_auth(&admin)
        .json(&json!({"name": "Pen", "cost_points": 1}))
        .send()
        .await
        .unwrap());
    ok(client
        .post(format!("{base}/v1/members/m/adjustments"))
        .bearer_auth(&admin)
        .json(&json!({"points": 100000, "reason": "seed"}))
        .send()
        .await
        .unwrap());

    let mut acked: HashMap<String, Value> = HashMap::new();
    let mut unacked: Vec<Op> = Vec::new();
    for round in 0..4 {
        let ops: Vec<Op> = (0..400)
            .map(|i| {
                if i % 3 == 0 {
                    Op::Redeem(format!("k{round}-{i}"))
                } else {
                    Op::Purchase(format!("R{round}-{i}"), chrono::Utc::now().to_rfc3339())
                }
            })
            .collect();
        let stream = {
            let (client, base, pos, member) =
                (client.clone(), base.clone(), pos.clone(), member.clone());
            tokio::spawn(async move {
                use futures::StreamExt;
                futures::stream::iter(ops)
                    .map(|op| {
                        let (client, base, pos, member) =
                            (client.clone(), base.clone(), pos.clone(), member.clone());
                        async move {
                            let r = send(&client, &base, &pos, &member, &op).await;
                            (op, r)
                        }
                    })
                    .buffer_unordered(8)
                    .collect::<Vec<_>>()
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(300 + 150 * round)).await;
        child.kill().unwrap(); // SIGKILL: no shutdown, no flush
        child.wait().unwrap();
        for (op, r) in stream.await.unwrap() {
            let name = match &op {
                Op::Purchase(r, _) | Op::Redeem(r) => r.clone(),
            };
            match r {
                Some(v) => {
                    acked.insert(name, v);
                }
                None => unacked.push(op),
            }
        }
        child = start(&data, port, &client).await;
    }
    assert!(
        acked.len() > 50,
        "the stream got going before each kill ({} acknowledged)",
        acked.len()
    );
    assert!(
        !unacked.is_empty(),
        "some requests were cut off by the kills"
    );

    // Retrying what was not acknowledged, with the same receipt or key, completes it once.
    for op in &unacked {
        let r = send(&client, &base, &pos, &member, op).await;
        assert!(r.is_some(), "a retry after the crash succeeds");
    }
    let mut ledger = Vec::new();
    let mut path = format!("{base}/v1/members/m/ledger?limit=100");
    loop {
        let page = get_json(&client, &path, &admin).await;
        ledger.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("{base}/v1/members/m/ledger?limit=100&cursor={c}"),
            None => break,
        }
    }
    let references: Vec<&str> = ledger
        .iter()
        .filter(|e| e["kind"] == "purchase" || e["kind"] == "redemption")
        .filter_map(|e| e["reference"].as_str())
        .collect();
    let unique: HashSet<&&str> = references.iter().collect();
    assert_eq!(unique.len(), references.len(), "no effect twice");
    for (name, answer) in &acked {
        let want = match answer.get("purchase_id") {
            Some(_) => format!("purchase:store-1/{name}"),
            None => format!("redemption:{}", answer["id"].as_str().unwrap()),
        };
        assert!(
            unique.contains(&want.as_str()),
            "acknowledged {name} is in the ledger"
        );
    }
    assert_eq!(
        references.len(),
        4 * 400,
        "every purchase and redemption exactly once"
    );
    let m = get_json(&client, &format!("{base}/v1/members/m"), &admin).await;
    let sum: i64 = ledger.iter().map(|e| e["points"].as_i64().unwrap()).sum();
    assert_eq!(
        m["points"]["balance"].as_i64().unwrap(),
        sum,
        "balance = Σ ledger"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
