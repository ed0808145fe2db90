//! `loyalty-local`'s connection handling over real sockets: idle and slow connections are
//! closed, so a thousand of them cannot lock other clients out.

use loyalty_local::serve::{Timeouts, serve};
use loyalty_tests::{Api, Backend};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server(timeouts: Timeouts) -> (String, Api) {
    let api = Api::new(Backend::Embedded).await;
    let router = loyalty_local::app(api.services.clone(), api.clock.clone(), api.auth.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(listener, router, timeouts, std::future::pending()));
    (addr, api)
}

/// Reads until the peer closes; `None` if it is still open after `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(within.saturating_sub(started.elapsed()), s.read(&mut buf)).await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

async fn get_openapi(addr: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /v1/openapi.json HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out[..12])
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_idle_sockets_neither_lock_others_out_nor_stay_open() {
    let (addr, _api) = server(Timeouts {
        headers: Duration::from_millis(500),
        idle: Duration::from_millis(800),
        ..Timeouts::default()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    assert_eq!(
        get_openapi(&addr).await,
        200,
        "served while 1,000 sockets idle"
    );
    let mut closed = 0;
    for s in idle.iter_mut() {
        if closed_within(s, Duration::from_secs(5)).await.is_some() {
            closed += 1;
        }
    }
    assert_eq!(closed, 1000, "every idle socket is closed by the server");
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_cut_off() {
    let (addr, _api) = server(Timeouts {
        headers: Duration::from_millis(500),
        idle: Duration::from_secs(30),
        ..Timeouts::default()
    })
    .await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /v1/openapi.json HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // A byte now and then keeps the idle timer happy, but the headers never end.
    let trickle = async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if s.write_all(b"x-slow: 1\r\n").await.is_err() {
                return;
            }
        }
    };
    trickle.await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(
        buf.is_empty() || text.starts_with("HTTP/1.1 408"),
        "the connection was closed (or answered 408), not served: {text}"
    );
    assert_eq!(get_openapi(&addr).await, 200);
}

#[tokio::test]
async fn a_body_that_stalls_is_cut_off_and_writes_nothing() {
    let (addr, api) = server(Timeouts {
        headers: Duration::from_secs(5),
        idle: Duration::from_millis(500),
        ..Timeouts::default()
    })
    .await;
    let token = api.admin();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/members HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"id\": \"slow\","
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let took = closed_within(&mut s, Duration::from_secs(5)).await;
    assert!(took.is_some(), "a stalled body closes the connection");
    let r = api.get("/v1/members/slow", &api.admin()).await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodies_dripped_a_byte_at_a_time_get_408_at_their_deadline_and_others_are_served() {
    let (addr, api) = server(Timeouts {
        headers: Duration::from_secs(2),
        body: Duration::from_secs(1),
        idle: Duration::from_secs(30),
        max_connections: 64,
    })
    .await;
    let token = api.admin();
    // 200 senders (three times the connection cap), each a byte every 200 ms: the idle timer
    // never fires, only the body's own deadline can end them.
    let mut drippers = Vec::new();
    for i in 0..200 {
        let addr = addr.clone();
        let token = token.clone();
        drippers.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            let head = format!(
                "POST /v1/members HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"id\": \"drip-{i}\","
            );
            s.write_all(head.as_bytes()).await.unwrap();
            let started = Instant::now();
            let mut buf = Vec::new();
            loop {
                tokio::select! {
                    r = s.read_buf(&mut buf) => match r {
                        Ok(0) | Err(_) => break,
                        Ok(_) => continue,
                    },
                    () = tokio::time::sleep(Duration::from_millis(200)) => {
                        if s.write_all(b" ").await.is_err() { break; }
                    }
                }
                assert!(started.elapsed() < Duration::from_secs(30), "a dripping body held its connection for 30 s");
            }
            String::from_utf8_lossy(&buf).into_owned()
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(15), get_openapi(&addr))
        .await
        .expect("an ordinary request is served while slow senders hold the cap");
    assert_eq!(status, 200);
    assert!(asked.elapsed() < Duration::from_secs(15));
    let mut timed_out = 0;
    for d in drippers {
        let answer = d.await.unwrap();
        if answer.starts_with("HTTP/1.1 408") {
            assert!(answer.contains("application/problem+json"), "{answer}");
            timed_out += 1;
        }
    }
    assert_eq!(timed_out, 200, "every dripped body was answered 408");
    let r = api.get("/v1/members/drip-0", &api.admin()).await;
    assert_eq!(r.status, 404, "a body cut off writes nothing");
}

/// Sends raw bytes and reads the whole answer (the server closes after it).
async fn raw(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn requests_hyper_refuses_itself_are_answered_with_problem_json_too() {
    let (addr, _api) = server(Timeouts::default()).await;
    let mut flood = String::from("GET /v1/rewards HTTP/1.1\r\nhost: x\r\n");
    for i in 0..500 {
        flood.push_str(&format!("x-h{i}: {i}\r\n"));
    }
    flood.push_str("\r\n");
    for (request, status) in [
        (flood.into_bytes(), "431"),
        (
            b"POST /v1/members HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: -1\r\n\r\n{}".to_vec(),
            "400",
        ),
    ] {
        let answer = raw(&addr, &request).await;
        let (head, body) = answer.split_once("\r\n\r\n").expect("a whole answer");
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(head.to_ascii_lowercase().contains("content-type: application/problem+json"), "{head}");
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"].as_u64().unwrap().to_string(), status);
        assert_eq!(problem["type"], "/problems/request");
    }
    assert_eq!(get_openapi(&addr).await, 200, "the server still serves");
}

/// The answer's `x-request-id` header and its problem's `instance`, which must name it.
fn request_id_and_instance(answer: &str) -> (String, String) {
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole answer");
    let id = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("x-request-id")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no x-request-id: {head}"));
    let problem: serde_json::Value = serde_json::from_str(body).expect("a problem body");
    (id, problem["instance"].as_str().unwrap_or("").to_owned())
}

#[tokio::test]
async fn the_servers_own_413_and_408_carry_a_request_id_and_its_instance() {
    let (addr, api) = server(Timeouts {
        body: Duration::from_millis(500),
        ..Timeouts::default()
    })
    .await;
    let token = api.admin();
    let big = format!(r#"{{"id": "big", "name": "{}"}}"#, "x".repeat(70 * 1024));
    let request = format!(
        "POST /v1/members HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{big}",
        big.len()
    );
    let answer = raw(&addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer:.200}");
    let (id, instance) = request_id_and_instance(&answer);
    assert_eq!(instance, format!("/requests/{id}"));
    // A body that never finishes: 408 at its deadline, with the same two.
    let slow = format!(
        "POST /v1/members HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"id\": \"slow\","
    );
    let answer = raw(&addr, slow.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:.200}");
    let (id, instance) = request_id_and_instance(&answer);
    assert_eq!(instance, format!("/requests/{id}"));
    assert_eq!(api.get("/v1/members/big", &api.admin()).await.status, 404);
    assert_eq!(api.get("/v1/members/slow", &api.admin()).await.status, 404);
}

#[tokio::test]
async fn the_consoles_dev_sign_in_answers_only_to_a_loopback_host() {
    let api = Api::new(Backend::Embedded).await;
    let router = loyalty_local::app_with_console(
        api.services.clone(),
        api.clock.clone(),
        api.auth.clone(),
        true,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(
        listener,
        router,
        Timeouts::default(),
        std::future::pending(),
    ));
    let port = addr.rsplit_once(':').unwrap().1;
    for (host, status) in [
        (format!("127.0.0.1:{port}"), "200"),
        (format!("localhost:{port}"), "200"),
        (format!("attacker.example:{port}"), "403"),
        ("attacker.example".to_owned(), "403"),
    ] {
        let answer = raw(
            &addr,
            format!(
                "GET /console/config.json HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{host}: {answer:.300}"
        );
        assert_eq!(
            answer.contains("\"token\""),
            status == "200",
            "{host}: a token only for a loopback Host"
        );
    }
}
