//! Lambda entry point: wiring only.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let services = loyalty::runtime::lambda_services().await?;
    loyalty::runtime::run_http(loyalty::http::app(
        loyalty_members::router(),
        services,
        // This function serves GET /v1/openapi.json, the whole API's document.
        Some(loyalty_members::api_document),
    ))
    .await
}
