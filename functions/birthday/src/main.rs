//! Lambda entry point for the hourly schedule: wiring only.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    loyalty::runtime::run_scheduled(|svc, input: loyalty_birthday::ScheduledInput| async move {
        loyalty_birthday::run(&svc, input).await
    })
    .await
}
