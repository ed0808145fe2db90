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
