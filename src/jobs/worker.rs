//! The worker: claims due jobs from the store under a lease, runs them, and records the
//! result, retrying transient failures with exponential backoff.
//!
//! [`Worker::run_once`] claims and runs exactly one job, so tests can step the worker;
//! [`Worker::run`] loops until shutdown, then lets the running job finish for the grace
//! period and releases its lease so another process can pick the work up at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Job, JobError};
use crate::app::App;
use crate::clock;
use crate::store::{JobRecord, StoreError, retention};

/// What `run_once` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Idle,
    Done { job_id: String },
    Retrying { job_id: String, attempts: u32 },
    Failed { job_id: String, attempts: u32 },
}

pub struct Worker {
    app: Arc<App>,
    owner: String,
}

impl Worker {
    pub fn new(app: Arc<App>) -> Self {
        Worker {
            app,
            owner: format!("worker-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Claims one due job and runs it to the end of this attempt.
    pub async fn run_once(&self) -> Result<Step, StoreError> {
        let settings = &self.app.worker;
        let now = clock::now_ms();
        let lease_ms = duration_ms(settings.lease);
        let Some(record) = self
            .app
            .store
            .claim_job(&self.owner, now, now + lease_ms)
            .await?
        else {
            return Ok(Step::Idle);
        };
        let job: Job = match serde_json::from_value(record.payload.clone()) {
            Ok(job) => job,
            Err(e) => {
                // A payload this version cannot read will not improve with retries.
                tracing::error!(job_id = %record.id, error.type = "job_decode", error.message = %e, "unreadable job");
                self.app
                    .store
                    .fail_job(
                        &record.id,
                        &self.owner,
                        "unreadable job payload",
                        failed_expiry(),
                    )
                    .await?;
                return Ok(Step::Failed {
                    job_id: record.id,
                    attempts: record.attempts,
                });
            }
        };
        // Checked at the claim too: a job whose attempts died with their process (a
        // crash, a panic) never reaches `settle`, and one left pending through an
        // outage must not act hours late.
        if record.attempts > settings.max_attempts {
            return self.give_up(record, &job, "too many attempts").await;
        }
        if now >= record.deadline_ms {
            return self.give_up(record, &job, "its deadline passed").await;
        }
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(u64::try_from(record.deadline_ms - now).unwrap_or(0));
        let result = crate::github::api::JOB_DEADLINE
            .scope(deadline, self.run_leased(&record, &job))
            .await;
        self.settle(record, &job, result).await
    }

    /// Runs the job while renewing its lease, so a long wait never loses it.
    async fn run_leased(&self, record: &JobRecord, job: &Job) -> Result<(), JobError> {
        let lease = self.app.worker.lease;
        let renew_every = lease / 3;
        let work = super::execute(&self.app, job);
        tokio::pin!(work);
        loop {
            tokio::select! {
                result = &mut work => return result,
                _ = tokio::time::sleep(renew_every) => {
                    let until = clock::now_ms() + duration_ms(lease);
                    match self.app.store.renew_job_lease(&record.id, &self.owner, until).await {
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
        let store = &self.app.store;
        let settings = &self.app.worker;
        let attempts = record.attempts;
        match result {
            Ok(()) => {
                store
                    .complete_job(&record.id, &self.owner, failed_expiry())
                    .await?;
                Ok(Step::Done { job_id: record.id })
            }
            Err(JobError::Transient(error)) => {
                let delay = backoff(settings.backoff_base, attempts);
                let next = clock::now_ms() + duration_ms(delay);
                if attempts < settings.max_attempts && next < record.deadline_ms {
                    tracing::warn!(job_id = %record.id, attempts, retry_in_ms = duration_ms(delay), error.type = "job_transient", error.message = %error, "job will be retried");
                    store
                        .retry_job(&record.id, &self.owner, next, &error)
                        .await?;
                    Ok(Step::Retrying {
                        job_id: record.id,
                        attempts,
                    })
                } else {
                    self.give_up(record, job, &error).await
                }
            }
            Err(JobError::Permanent(error)) => self.give_up(record, job, &error).await,
        }
    }

    async fn give_up(&self, record: JobRecord, job: &Job, error: &str) -> Result<Step, StoreError> {
        tracing::error!(job_id = %record.id, attempts = record.attempts, error.type = "job_failed", error.message = %error, "job gave up");
        super::report_gave_up(&self.app, job, record.attempts, error).await;
        self.app
            .store
            .fail_job(&record.id, &self.owner, error, failed_expiry())
            .await?;
        Ok(Step::Failed {
            job_id: record.id,
            attempts: record.attempts,
        })
    }

    /// Runs jobs until `shutdown` turns true, then stops claiming, gives the running
    /// job the grace period, and releases this worker's leases.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let this = Arc::new(self);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let worker = Arc::clone(&this);
            let mut attempt =
                super::AbortOnDrop(tokio::spawn(async move { worker.run_once().await }));
            let step = tokio::select! {
                step = &mut attempt.0 => step,
                _ = shutdown.changed() => {
                    let grace = this.app.worker.shutdown_grace;
                    match tokio::time::timeout(grace, &mut attempt.0).await {
                        Ok(_) => {}
                        Err(_) => {
                            tracing::warn!("running job did not finish within the grace period; releasing it");
                            attempt.0.abort();
                        }
                    }
                    break;
                }
            };
            match step {
                Ok(Ok(Step::Idle)) => {
                    let poll = this.app.worker.poll;
                    tokio::select! {
                        _ = this.app.jobs_ready.notified() => {}
                        _ = tokio::time::sleep(poll) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::error!(error.type = "store_unavailable", error.message = %e, "worker cannot reach the store");
                    tokio::time::sleep(this.app.worker.poll).await;
                }
                Err(e) => {
                    tracing::error!(error.type = "job_panic", error.message = %e, "job task failed");
                }
            }
        }
        match this.app.store.release_job_leases(&this.owner).await {
            Ok(n) if n > 0 => tracing::info!(released = n, "released job leases"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error.type = "store_unavailable", error.message = %e, "could not release job leases")
            }
        }
    }
}

fn failed_expiry() -> i64 {
    clock::now_secs() + retention::FAILED_JOB
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
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
