//! Lambda entry point for the daily points job (EventBridge Scheduler): wiring only.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    loyalty::runtime::run_scheduled(|svc, input: loyalty_members::ScheduledInput| async move {
        loyalty_members::run_points_job(&svc, input).await
    })
    .await
}
