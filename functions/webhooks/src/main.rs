//! Lambda entry point: the URLs (`WEBHOOK_URLS`, comma-separated) and the signing secret (the
//! SecureString parameter named by `WEBHOOK_SECRET_PARAMETER`) are read once per container.
//! Run locally (`cargo lambda invoke webhooks`), `LOYALTY_WEBHOOK_SECRET` gives the secret
//! itself instead, as it does for `loyalty-local`; the template never sets it.

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let urls: Vec<String> = std::env::var("WEBHOOK_URLS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    let secret = match std::env::var("LOYALTY_WEBHOOK_SECRET") {
        Ok(local) if !local.is_empty() => local.into_bytes(),
        _ => {
            let name = std::env::var("WEBHOOK_SECRET_PARAMETER").map_err(|_| {
                "set WEBHOOK_SECRET_PARAMETER (the SSM parameter; the template does) or, locally, LOYALTY_WEBHOOK_SECRET"
            })?;
            let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            aws_sdk_ssm::Client::new(&config)
                .get_parameter()
                .name(&name)
                .with_decryption(true)
                .send()
                .await?
                .parameter
                .and_then(|p| p.value)
                .ok_or("the webhook secret parameter has no value")?
                .into_bytes()
        }
    };
    let client = loyalty::webhook::client();
    let (urls, secret, client) = (&urls, &secret, &client);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::sqs::SqsEvent>| async move {
            Ok::<_, Error>(loyalty_webhooks::handle(client, urls, secret, event.payload).await)
        },
    ))
    .await
}
