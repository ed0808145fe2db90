//! Lambda entry point for the daily requalification schedule: wiring only.

use lambda_http::{LambdaEvent, service_fn};
use loyalty_tiers::ScheduledInput;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let services = loyalty::runtime::lambda_services().await?;
    let services = &services;
    lambda_http::lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ScheduledInput>| async move {
            loyalty_tiers::run_requalification(services, event.payload)
                .await
                .map_err(lambda_http::Error::from)
        },
    ))
    .await
}
