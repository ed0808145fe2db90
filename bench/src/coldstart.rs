//! `loyalty-bench coldstart`: a release function binary started the way Lambda starts it. A local
//! Lambda Runtime API (the endpoints AWS's runtime interface serves: `invocation/next`,
//! `invocation/{id}/response`, the error routes) hands the process one sample event; the time from
//! spawn to its first `next` call is init, to its response init + first invoke. The function
//! talks to the DynamoDB emulator named by `AWS_ENDPOINT_URL_DYNAMODB`. Prints the medians over
//! the runs, the peak RSS, and the size of the binary zipped as Lambda takes it (`bootstrap`).
//!
//! The table is seeded with what the samples assume (members `member-ada` with 1,000 points and
//! `member-bob`, the reward `free-coffee`), each run gets a fresh receipt and refund id and an
//! `occurred_at` of now, so a purchase is a real first purchase every time, and every answer must
//! have the status the sample's file name states (`purchase-by-id.201.json`: 201).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use std::io::Write;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[derive(Default)]
struct Runtime {
    event: Vec<u8>,
    handed: Mutex<bool>,
}

/// What the runtime API saw, in order.
#[derive(Debug)]
enum Seen {
    Next(Instant),
    Response(Instant, u16, String),
}

type Shared = (Arc<Runtime>, mpsc::UnboundedSender<Seen>);

async fn next(State((rt, tx)): State<Shared>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let _ = tx.send(Seen::Next(Instant::now()));
    let first = {
        let mut handed = rt.handed.lock().unwrap();
        !std::mem::replace(&mut *handed, true)
    };
    if !first {
        // The runtime waits for the next event; this run has only one.
        std::future::pending::<()>().await;
    }
    let mut h = HeaderMap::new();
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 10_000;
    h.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_static("cold-1"),
    );
    h.insert(
        "lambda-runtime-deadline-ms",
        HeaderValue::from_str(&deadline.to_string()).unwrap(),
    );
    h.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:coldstart"),
    );
    h.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static("Root=1-00000000-000000000000000000000000"),
    );
    (StatusCode::OK, h, rt.event.clone())
}

async fn response(
    State((_, tx)): State<Shared>,
    Path(_id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let text = String::from_utf8_lossy(&body).into_owned();
    let status = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["statusCode"].as_u64())
        .unwrap_or(0) as u16;
    let _ = tx.send(Seen::Response(Instant::now(), status, text));
    StatusCode::ACCEPTED
}

async fn error(State((_, tx)): State<Shared>, body: Bytes) -> StatusCode {
    let _ = tx.send(Seen::Response(
        Instant::now(),
        0,
        format!("error: {}", String::from_utf8_lossy(&body)),
    ));
    StatusCode::ACCEPTED
}

/// The binary zipped as a Lambda deployment package (one `bootstrap` entry, deflated).
fn zipped_size(binary: &FsPath) -> usize {
    let bytes = std::fs::read(binary).expect("the function binary");
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    zip.start_file("bootstrap", opts).unwrap();
    zip.write_all(&bytes).unwrap();
    zip.finish().unwrap();
    out.into_inner().len()
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// What the samples under `events/` assume exists (as `tests/api/events.rs` seeds it), written
/// once; a second seeding finds it there.
async fn seed(store: loyalty::store::DynamoStore) {
    use loyalty::service::Services;
    use serde_json::json;
    let svc = Services::new(
        Arc::new(store),
        Default::default(),
        Arc::new(loyalty::clock::SystemClock),
    );
    let id = |s: &str| loyalty::domain::MemberId::parse(s).unwrap();
    fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).expect("a seed request")
    }
    // The seeds as the members function would pass them on, each field parsed as its type.
    let enrolment = |v: serde_json::Value| loyalty::service::members::Enrolment {
        id: None,
        name: parse(v["name"].clone()),
        phone: parse(v["phone"].clone()),
        email: None,
        birthday: parse(v["birthday"].clone()),
        timezone: parse(v["timezone"].clone()),
        referral_code: None,
    };
    for (member, body) in [
        (
            "member-ada",
            json!({"name": "Ada", "phone": "+8613800000000", "birthday": "1990-11-22", "timezone": "Asia/Shanghai"}),
        ),
        ("member-bob", json!({"name": "Bob"})),
    ] {
        match svc
            .members
            .enrol(id(member), enrolment(body), None, None, "coldstart")
            .await
        {
            Ok(_) | Err(loyalty::service::ServiceError::MemberExists) => {}
            Err(e) => panic!("seeding {member}: {e}"),
        }
    }
    if svc
        .members
        .get_member(&id("member-ada"))
        .await
        .expect("ada")
        .points
        .balance
        .0
        < 1000
    {
        svc.members
            .adjust(
                &id("member-ada"),
                loyalty::service::members::Adjustment {
                    points: loyalty::domain::Points(1000),
                    reason: "seed".into(),
                },
                None,
                &crate::operator(),
            )
            .await
            .expect("ada's points");
    }
    let coffee = loyalty::domain::RewardId::parse("free-coffee").unwrap();
    svc.redemptions
        .put_reward(
            &coffee,
            crate::reward("Free coffee", 100, 50, None),
            &crate::operator(),
        )
        .await
        .expect("the reward");
}

/// The sample with what must differ from run to run made fresh: receipt and refund ids, and
/// `occurred_at` now (purchases older than the program allows are refused).
fn fresh(sample: &serde_json::Value, run: usize) -> Vec<u8> {
    let mut event = sample.clone();
    if let Some(text) = sample["body"].as_str()
        && let Ok(mut body) = serde_json::from_str::<serde_json::Value>(text)
    {
        let tag = format!("cold-{}-{run}", std::process::id());
        if body.get("receipt_id").is_some() {
            body["receipt_id"] = tag.clone().into();
        }
        if body.get("refund_id").is_some() {
            body["refund_id"] = tag.into();
        }
        if body.get("occurred_at").is_some() {
            body["occurred_at"] = chrono::Utc::now().to_rfc3339().into();
        }
        event["body"] = body.to_string().into();
    }
    serde_json::to_vec(&event).unwrap()
}

/// The status a sample's file name states: `name.<status>.json`.
fn expected_status(event: &FsPath) -> u16 {
    event
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.rsplit('.').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{}: name it <what>.<status>.json", event.display()))
}

pub async fn run(binary: &FsPath, event: &FsPath, runs: usize, table: &str) {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .expect("coldstart needs the DynamoDB emulator: set AWS_ENDPOINT_URL_DYNAMODB (scripts/test starts one)");
    let store = loyalty::store::DynamoStore::from_env(table).await;
    store
        .ensure_table()
        .await
        .expect("the table on the emulator");
    seed(store).await;
    let sample: serde_json::Value =
        serde_json::from_slice(&std::fs::read(event).expect("the sample event"))
            .expect("the sample event is JSON");
    let expected = expected_status(event);
    let (mut inits, mut firsts, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    let mut last_status = 0;
    for run in 0..runs {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let rt = Arc::new(Runtime {
            event: fresh(&sample, run),
            handed: Mutex::new(false),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(error))
            .with_state((rt, tx));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let start = Instant::now();
        let mut child = tokio::process::Command::new(binary)
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "coldstart")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/coldstart")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env("LOYALTY_TABLE", table)
            .env("AWS_ENDPOINT_URL_DYNAMODB", &endpoint)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the function binary starts");
        let pid = child.id().unwrap_or(0);
        let mut init = None;
        let deadline = tokio::time::sleep(Duration::from_secs(20));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                seen = rx.recv() => match seen {
                    Some(Seen::Next(t)) if init.is_none() => init = Some(t - start),
                    Some(Seen::Next(_)) => {}
                    Some(Seen::Response(t, status, body)) => {
                        assert!(status != 0, "the function failed: {body}");
                        assert_eq!(status, expected, "{} answered {status}, not the {expected} its name states: {body}", event.display());
                        last_status = status;
                        inits.push(init.expect("next before response").as_secs_f64() * 1000.0);
                        firsts.push((t - start).as_secs_f64() * 1000.0);
                        // Let it ask for the next event, so the peak includes the whole invoke.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        rss.push(peak_rss_kib(pid).unwrap_or(0) as f64 / 1024.0);
                        break;
                    }
                    None => panic!("the runtime API closed"),
                },
                _ = &mut deadline => panic!("no response within 20 s"),
            }
        }
        let _ = child.kill().await;
        server.abort();
    }
    println!(
        "coldstart    {}: {} runs, init median {:.1} ms, init + first invoke median {:.1} ms (answered {}), peak RSS {:.1} MiB, zipped {:.2} MB",
        binary.display(),
        runs,
        median(inits),
        median(firsts),
        last_status,
        rss.iter().cloned().fold(0.0, f64::max),
        zipped_size(binary) as f64 / 1_000_000.0
    );
}
