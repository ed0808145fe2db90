//! Custom segments' builds in the background, as the five-minute schedule does in AWS
//! (DESIGN.md "Custom segments"): every few seconds, when some definition waits for its build, a
//! whole build run in this process.

use loyalty::service::Services;
use std::time::Duration;

/// Checks every `every` (one query when nothing waits) until the process ends.
pub async fn run(services: Services, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match services.custom.building().await {
            Ok(false) => {}
            Ok(true) => {
                let now = services.ctx.now();
                match services.segments.build_job(now, 1).await {
                    Ok(run) => tracing::info!(?run, "custom segments built"),
                    Err(e) => tracing::error!(error = %e, "custom segments' build failed"),
                }
            }
            Err(e) => tracing::error!(error = %e, "custom segments: cannot read the definitions"),
        }
    }
}
