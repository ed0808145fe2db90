//! The `birthday` function: the hourly scheduled gift run. Input `{}` or `{"now": "<RFC 3339>"}`.

pub use loyalty::runtime::ScheduledInput;
use loyalty::service::Services;
use loyalty::service::birthday::GiftRun;

pub async fn run(
    svc: &Services,
    input: ScheduledInput,
) -> Result<GiftRun, loyalty::service::ServiceError> {
    let now = input.now(svc.ctx.clock.as_ref())?;
    svc.birthdays.birthday_gifts(now).await
}
