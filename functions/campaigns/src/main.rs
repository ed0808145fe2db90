//! Lambda entry point (HTTP): wiring only.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let services = loyalty::runtime::lambda_services().await?;
    loyalty::runtime::run_http(loyalty::http::app(
        loyalty_campaigns::router(),
        services,
        None,
    ))
    .await
}
