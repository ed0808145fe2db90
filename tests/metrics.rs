//! The functions' CloudWatch metrics: the embedded-metric-format recorder the Lambda runtime
//! installs, fed by a purchase, its replay and a redemption, writes one EMF document whose
//! figures are those requests' (this test binary owns the process-wide recorder).

use loyalty_tests::{Api, Backend};
use serde_json::{Value, json};

#[tokio::test]
async fn emf_documents_count_replays_points_and_job_results() {
    let collector = loyalty::metrics::install_emf("test-function").unwrap();
    let api = Api::new(Backend::Embedded).await;
    api.enrol("m").await;
    let purchase = json!({"member": {"id": "m"}, "store_id": "store-1", "receipt_id": "R1",
        "amount": {"value": 25000, "currency": "USD"},
        "occurred_at": api.services.ctx.now().to_rfc3339()});
    for _ in 0..2 {
        let r = api
            .post("/v1/purchases", &api.pos("store-1"), purchase.clone())
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = api
        .call(
            "PUT",
            "/v1/rewards/coffee",
            Some(&api.admin()),
            Some(json!({"name": "Coffee", "cost_points": 100})),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = api
        .post(
            "/v1/members/m/redemptions",
            &api.member("m"),
            json!({"reward_id": "coffee"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = api
        .post("/_local/jobs/segments", &api.admin(), json!({}))
        .await;
    assert_eq!(r.status, 200);

    let mut out = Vec::new();
    collector.flush(&mut out).unwrap();
    let docs: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!docs.is_empty());
    for d in &docs {
        let ns = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(ns["Namespace"], "Loyalty", "{d}");
        assert_eq!(d["function"], "test-function", "{d}");
    }
    let figure = |name: &str, label: Option<(&str, &str)>| -> f64 {
        docs.iter()
            .filter(|d| label.is_none_or(|(k, v)| d[k] == v))
            .filter_map(|d| d[name].as_f64())
            .sum()
    };
    // 250.00 earns 250 points; the replay earns nothing more and is counted as a replay.
    assert_eq!(figure("points_earned", None), 250.0);
    assert_eq!(figure("replays", None), 1.0);
    assert_eq!(figure("points_redeemed", None), 100.0);
    assert_eq!(
        figure("job_members", Some(("result", "examined"))),
        1.0,
        "the segments run examined the one member"
    );
}
