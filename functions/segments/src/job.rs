//! Lambda entry point for the nightly segments run (a step of the state machine, or the whole
//! run in one invocation): wiring only.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    loyalty::runtime::run_scheduled(|svc, input: loyalty_segments::JobInput| async move {
        loyalty_segments::run_job(&svc, input).await
    })
    .await
}
