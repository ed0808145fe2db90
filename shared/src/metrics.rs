//! What the service counts, through the `metrics` facade: replays, lost races and retries,
//! answers given up (503), points earned and redeemed, and what each scheduled run did. In
//! Lambda, [`crate::runtime`] installs a CloudWatch embedded-metric-format recorder and writes one
//! EMF document to stdout after every invocation; with no recorder (locally, in tests) the calls
//! cost nothing.

use metrics::counter;

/// The namespace the metrics appear under in CloudWatch.
pub const NAMESPACE: &str = "Loyalty";

/// A request answered from an earlier identical one.
pub fn replayed() {
    counter!("replays").increment(1);
}

/// A commit lost a race (a version or absence condition, or a throttle) and is retried.
pub fn retried() {
    counter!("retries").increment(1);
}

/// The retry budget ran out: the request answers 503.
pub fn gave_up() {
    counter!("unavailable").increment(1);
}

pub fn points_earned(points: i64) {
    counter!("points_earned").increment(points.max(0) as u64);
}

pub fn points_redeemed(points: i64) {
    counter!("points_redeemed").increment(points.max(0) as u64);
}

/// One figure of a scheduled run (`job` "birthday", `what` "issued" …).
pub fn job(job: &'static str, what: &'static str, n: u64) {
    counter!("job_members", "job" => job, "result" => what).increment(n);
}

/// Installs the EMF recorder (once per process) with the function's name as a dimension.
pub fn install_emf(
    function: &str,
) -> Result<&'static metrics_cloudwatch_embedded::Collector, String> {
    metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension("function", function.to_owned())
        .init()
        .map_err(|e| e.to_string())
}
