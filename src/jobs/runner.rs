//! The job runner: executes one claimed job record to the end of this attempt and
//! settles it in the store. It does not care how the record arrived (the worker loop
//! claimed it from the store queue, or a message service delivered it), so one job
//! runs the same everywhere.
//!
//! An attempt:
//! 1. decodes the payload (an unreadable one fails at once);
//! 2. gives up without running when the job is past its attempts or its deadline: a
//!    job whose attempts died with their process (a crash, a panic) never reached
//!    step 4, and one left pending through an outage must not act hours late;
//! 3. runs the handler while renewing the lease every third of its length, inside the
//!    job's deadline ([`crate::clock::with_deadline`]), which the GitHub client reads so
//!    that no wait inside a job outlives it;
//! 4. settles: done; a retryable failure goes back to pending after an exponential
//!    backoff with jitter while attempts and the deadline allow; anything else gives
//!    up, tells the user through the handler, and keeps the job as failed for 7 days.

use std::sync::Arc;
use std::time::Duration;

use super::{Job, JobError, JobHandler, WorkerSettings};
use crate::clock::{self, Clock};
use crate::store::{JobRecord, SharedStore, StoreError, retention};

/// What one attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Idle,
    Done {
        job_id: String,
    },
    /// Back to pending until `run_after_ms` (the backoff).
    Retrying {
        job_id: String,
        attempts: u32,
        run_after_ms: i64,
    },
    Failed {
        job_id: String,
        attempts: u32,
    },
}

pub struct Runner {
    store: SharedStore,
    handler: Arc<dyn JobHandler>,
    settings: WorkerSettings,
    clock: Clock,
    owner: String,
}

impl Runner {
    /// A runner whose claims and settlements are made as `owner`.
    pub fn new(
        store: SharedStore,
        handler: Arc<dyn JobHandler>,
        settings: WorkerSettings,
        clock: Clock,
        owner: String,
    ) -> Runner {
        Runner {
            store,
            handler,
            settings,
            clock,
            owner,
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn settings(&self) -> &WorkerSettings {
        &self.settings
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The lease a claim made now should carry.
    pub fn lease_until_ms(&self) -> i64 {
        self.clock.ms_after(self.settings.lease)
    }

    /// Runs one attempt of a job claimed by this runner's owner and records the result.
    pub async fn run(&self, record: JobRecord) -> Result<Step, StoreError> {
        crate::metrics::job_taken();
        let job: Job = match serde_json::from_value(record.payload.clone()) {
            Ok(job) => job,
            Err(e) => {
                let error = JobError::Decode(e);
                tracing::error!(job_id = %record.id, error.type = error.error_type(), error.message = %error, "unreadable job");
                crate::metrics::job("unreadable", "error");
                self.store
                    .fail_job(
                        &record.id,
                        &self.owner,
                        &error.to_string(),
                        self.failed_expiry(),
                    )
                    .await?;
                return Ok(Step::Failed {
                    job_id: record.id,
                    attempts: record.attempts,
                });
            }
        };
        let now = self.clock.now_ms();
        if record.attempts > self.settings.max_attempts {
            return self.give_up(record, &job, "too many attempts").await;
        }
        if now >= record.deadline_ms {
            return self.give_up(record, &job, "its deadline passed").await;
        }
        let left = Duration::from_millis(u64::try_from(record.deadline_ms - now).unwrap_or(0));
        let started = tokio::time::Instant::now();
        let result = clock::with_deadline(started + left, self.run_leased(&record, &job)).await;
        let step = self.settle(record, &job, result).await;
        log_completion(&job, &step, started.elapsed());
        step
    }

    /// Runs the job while renewing its lease, so a long wait never loses it.
    async fn run_leased(&self, record: &JobRecord, job: &Job) -> Result<(), JobError> {
        let renew_every = self.settings.lease / 3;
        let work = self.handler.execute(job);
        tokio::pin!(work);
        loop {
            tokio::select! {
                result = &mut work => return result,
                _ = tokio::time::sleep(renew_every) => {
                    let until = self.lease_until_ms();
                    match self.store.renew_job_lease(&record.id, &self.owner, until).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(job_id = %record.id, "job lease lost; another worker may repeat it"),
                        Err(e) => tracing::warn!(job_id = %record.id, error.type = "store_unavailable", error.message = %e, "lease renewal failed"),
                    }
                }
            }
        }
    }

    async fn settle(
        &self,
        record: JobRecord,
        job: &Job,
        result: Result<(), JobError>,
    ) -> Result<Step, StoreError> {
        let attempts = record.attempts;
        let error = match result {
            Ok(()) => {
                self.store
                    .complete_job(&record.id, &self.owner, self.failed_expiry())
                    .await?;
                crate::metrics::job(job.kind(), "ok");
                return Ok(Step::Done { job_id: record.id });
            }
            Err(error) => error,
        };
        if !error.is_retryable() {
            return self.give_up(record, job, &error.to_string()).await;
        }
        let delay = backoff(self.settings.backoff_base, attempts);
        let next = self.clock.ms_after(delay);
        if attempts < self.settings.max_attempts && next < record.deadline_ms {
            tracing::warn!(job_id = %record.id, attempts, retry_in_ms = clock::duration_ms(delay), error.type = error.error_type(), error.message = %error, "job will be retried");
            self.store
                .retry_job(&record.id, &self.owner, next, &error.to_string())
                .await?;
            crate::metrics::job(job.kind(), "retry");
            crate::metrics::jobs_submitted(1);
            Ok(Step::Retrying {
                job_id: record.id,
                attempts,
                run_after_ms: next,
            })
        } else {
            self.give_up(record, job, &error.to_string()).await
        }
    }

    async fn give_up(&self, record: JobRecord, job: &Job, error: &str) -> Result<Step, StoreError> {
        tracing::error!(job_id = %record.id, attempts = record.attempts, error.type = "job_failed", error.message = %error, "job gave up");
        self.handler.gave_up(job, record.attempts, error).await;
        self.store
            .fail_job(&record.id, &self.owner, error, self.failed_expiry())
            .await?;
        crate::metrics::job(job.kind(), "error");
        Ok(Step::Failed {
            job_id: record.id,
            attempts: record.attempts,
        })
    }

    /// Finished and failed jobs stay visible for a week.
    fn failed_expiry(&self) -> i64 {
        self.clock.now_secs() + retention::FAILED_JOB
    }
}

/// The completion line of a job attempt (`job`, `duration_ms`, `outcome`), from which
/// metrics are read (under Lambda it is an EMF record with the `job` dimension). A
/// command's job is reported by the command's own completion line instead, so each
/// command counts once.
fn log_completion(job: &Job, step: &Result<Step, StoreError>, elapsed: Duration) {
    if matches!(job, Job::Command(_)) {
        return;
    }
    let outcome = match step {
        Ok(Step::Done { .. }) => "ok",
        Ok(Step::Retrying { .. }) => "retry",
        Ok(Step::Failed { .. }) | Err(_) => "error",
        Ok(Step::Idle) => return,
    };
    let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    tracing::info!(job = job.kind(), duration_ms, outcome, "job finished");
}

/// `base * 2^(attempt-1)`, ±25 % jitter so retries of many jobs spread out.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
    let jitter = rand::random_range(0.75..1.25);
    exp.mul_f64(jitter).min(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let base = Duration::from_secs(2);
        for attempt in 1..=5 {
            let expected = 2.0 * 2f64.powi(attempt as i32 - 1);
            let got = backoff(base, attempt).as_secs_f64();
            assert!(
                got >= expected * 0.75 && got <= expected * 1.25,
                "{attempt}: {got}"
            );
        }
        assert!(backoff(base, 30) <= Duration::from_secs(300));
    }
}
