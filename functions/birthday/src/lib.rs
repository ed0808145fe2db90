//! The `birthday` function: the hourly scheduled gift run. Input `{}` or `{"now": "<RFC 3339>"}`.

use chrono::{DateTime, Utc};
use loyalty::service::Services;
use loyalty::service::birthday::GiftRun;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledInput {
    pub now: Option<DateTime<Utc>>,
}

pub async fn run(
    svc: &Services,
    input: ScheduledInput,
) -> Result<GiftRun, loyalty::service::ServiceError> {
    let now = input.now.unwrap_or_else(|| svc.now());
    svc.birthday_gifts(now).await
}
