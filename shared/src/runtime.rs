//! Start-up for Lambda functions: program rules from the environment (invalid rules stop the
//! container with the reason), the DynamoDB table from `LOYALTY_TABLE`, the system clock. Called
//! once per container in `main`, so clients and configuration are reused across invocations.

use crate::clock::SystemClock;
use crate::program::Program;
use crate::service::Services;
use crate::store::DynamoStore;
use std::sync::Arc;

/// A scheduled function's input: `{}`, or `{"now": "<RFC 3339>"}` to run as of another instant.
#[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledInput {
    pub now: Option<chrono::DateTime<chrono::Utc>>,
}

impl ScheduledInput {
    /// The instant the job runs as of: the input's (inside the years the API accepts, else
    /// 422 naming `now`) or the clock's.
    pub fn now(
        &self,
        clock: &dyn crate::clock::Clock,
    ) -> Result<chrono::DateTime<chrono::Utc>, crate::service::ServiceError> {
        match self.now {
            Some(t) => crate::service::ServiceError::bounded_instant("now", t),
            None => Ok(clock.now()),
        }
    }
}

/// The EMF recorder of this container, installed once.
fn metrics() -> Result<&'static metrics_cloudwatch_embedded::Collector, lambda_http::Error> {
    static COLLECTOR: std::sync::OnceLock<&'static metrics_cloudwatch_embedded::Collector> =
        std::sync::OnceLock::new();
    if let Some(c) = COLLECTOR.get() {
        return Ok(c);
    }
    let name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into());
    let c = crate::metrics::install_emf(&name)?;
    Ok(COLLECTOR.get_or_init(|| c))
}

/// Writes this invocation's metrics as one EMF document on stdout (CloudWatch Logs turns it
/// into metrics). A failed write loses metrics, never the answer.
fn flush_metrics() {
    if let Ok(c) = metrics() {
        let _ = c.flush(std::io::stdout().lock());
    }
}

/// Runs an HTTP function: the router behind Lambda's HTTP adapter, this invocation's metrics
/// written after each answer.
pub async fn run_http(app: axum::Router) -> Result<(), lambda_http::Error> {
    metrics()?;
    let app = app.layer(axum::middleware::map_response(
        |res: axum::response::Response| async move {
            flush_metrics();
            res
        },
    ));
    lambda_http::run(app).await
}

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
    metrics()?;
    let job = &job;
    let services = &services;
    lambda_http::lambda_runtime::run(lambda_http::service_fn(
        move |event: lambda_http::LambdaEvent<I>| async move {
            let out = job(services.clone(), event.payload)
                .await
                .map_err(lambda_http::Error::from);
            flush_metrics();
            out
        },
    ))
    .await
}
