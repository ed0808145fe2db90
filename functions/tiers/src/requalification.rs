//! Lambda entry point for the daily requalification schedule: wiring only.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    loyalty::runtime::run_scheduled(|svc, input: loyalty_tiers::ScheduledInput| async move {
        loyalty_tiers::run_requalification(&svc, input).await
    })
    .await
}
