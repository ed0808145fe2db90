//! Lambda entry point: wiring only.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let services = loyalty::runtime::lambda_services().await?;
    // This function also serves GET /v1/openapi.json, so it carries the whole API's document.
    let doc = loyalty_members::api_document();
    loyalty::runtime::run_http(loyalty::http::app(loyalty_members::routes(), services, doc)).await
}
