//! The one loop every scheduled job's results go through: each member examined is counted, its
//! outcome folded into the job's report, a member's failure logged with its id (the run goes on,
//! the next run retries it), and at the end the report is logged and its counters emitted as
//! metrics. The jobs differ only in what they do to one member and what they count.

use super::error::ServiceError;
use crate::domain::MemberId;

/// What a job reports at its end: its name in logs and metrics, and the counters it emits.
pub(crate) trait JobReport: std::fmt::Debug {
    const JOB: &'static str;
    fn counters(&self) -> Vec<(&'static str, u64)>;
}

/// A report of a job that visits members one by one.
pub(crate) trait MemberTally: JobReport {
    type Outcome;
    fn add(&mut self, outcome: Self::Outcome);
    fn examined(&mut self) -> &mut u64;
    fn failed(&mut self) -> &mut u64;
}

/// Folds the members' outcomes into `report`.
pub(crate) fn tally<R: MemberTally>(
    report: &mut R,
    outcomes: Vec<(MemberId, Result<R::Outcome, ServiceError>)>,
) {
    for (id, outcome) in outcomes {
        *report.examined() += 1;
        match outcome {
            Ok(o) => report.add(o),
            Err(e) => {
                *report.failed() += 1;
                tracing::error!(job = R::JOB, member = %id, error = %e, "a member failed; the run goes on");
            }
        }
    }
}

/// Logs the report and emits its counters; returns it.
pub(crate) fn finish<R: JobReport>(report: R) -> R {
    tracing::info!(job = R::JOB, ?report, "job finished");
    for (what, n) in report.counters() {
        crate::metrics::job(R::JOB, what, n);
    }
    report
}
