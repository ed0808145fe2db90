//! Start-up for Lambda functions: program rules from the environment (invalid rules stop the
//! container with the reason), the DynamoDB table from `LOYALTY_TABLE`, the system clock. Called
//! once per container in `main`, so clients and configuration are reused across invocations.

use crate::clock::SystemClock;
use crate::program::Program;
use crate::service::Services;
use crate::store::DynamoStore;
use std::sync::Arc;

pub async fn lambda_services() -> Result<Services, lambda_http::Error> {
    let program = Program::from_env()?;
    let table = std::env::var("LOYALTY_TABLE").map_err(|_| "LOYALTY_TABLE is not set")?;
    let store = DynamoStore::from_env(table).await;
    Ok(Services::new(
        Arc::new(store),
        program,
        Arc::new(SystemClock),
    ))
}

/// Runs a scheduled function: the event is the schedule's JSON input, the result is the run's
/// counts. Start-up (client, configuration) happens once per container.
pub async fn run_scheduled<I, O, F, Fut>(job: F) -> Result<(), lambda_http::Error>
where
    I: serde::de::DeserializeOwned + Send,
    O: serde::Serialize,
    F: Fn(Services, I) -> Fut,
    Fut: Future<Output = Result<O, crate::service::ServiceError>> + Send,
{
    lambda_http::tracing::init_default_subscriber();
    let services = lambda_services().await?;
    let job = &job;
    let services = &services;
    lambda_http::lambda_runtime::run(lambda_http::service_fn(
        move |event: lambda_http::LambdaEvent<I>| async move {
            job(services.clone(), event.payload)
                .await
                .map_err(lambda_http::Error::from)
        },
    ))
    .await
}
