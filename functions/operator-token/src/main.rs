//! Lambda entry point of the user pool's pre-token-generation trigger.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        loyalty_operator_token::respond(event.payload).map_err(Error::from)
    }))
    .await
}
