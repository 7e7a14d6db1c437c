//! The job queue port: where use cases submit jobs, and how due jobs come back to be
//! run. [`StoreQueue`] is the adapter every deployment has today: jobs are store
//! records (so they survive a crash), claimed with a lease, and an in-process
//! notification wakes the local worker at once. A queue over a message service (SQS)
//! implements the same port: it carries the job to a runner, and the runner settles the
//! job's record in the store just the same.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::store::{JobRecord, NewJob, SharedStore, StoreError};

/// Why the queue could not take or hand out a job.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A job that does not serialize is a bug in this version; retrying cannot help.
    #[error("job does not serialize")]
    Encode(#[source] serde_json::Error),
}

impl QueueError {
    pub fn is_retryable(&self) -> bool {
        match self {
            QueueError::Store(e) => e.is_retryable(),
            QueueError::Encode(_) => false,
        }
    }
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Persists `job` so that a runner gets it once `run_after_ms` has passed.
    /// Submitting an id that exists keeps the first job, so work that schedules its
    /// own next step cannot fork into two chains when it is repeated after a crash.
    async fn submit(&self, job: &NewJob, now_ms: i64) -> Result<(), QueueError>;

    /// Jobs were written by another atomic write (a webhook delivery with its
    /// effects): wake the local consumers as [`JobQueue::submit`] would.
    fn submitted_elsewhere(&self);

    /// The oldest due job, leased to `owner` until `lease_until_ms` (a job whose lease
    /// expired counts as due: its worker died). `None` when nothing is due.
    async fn claim(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Option<JobRecord>, QueueError>;

    /// Returns when a job may have become due here (a local submit), or after `idle`.
    async fn wait_for_work(&self, idle: Duration);
}

/// The store's own queue: a job is a store record, claimed with a lease.
pub struct StoreQueue {
    store: SharedStore,
    ready: Notify,
}

impl StoreQueue {
    pub fn new(store: SharedStore) -> Arc<StoreQueue> {
        Arc::new(StoreQueue {
            store,
            ready: Notify::new(),
        })
    }
}

#[async_trait]
impl JobQueue for StoreQueue {
    async fn submit(&self, job: &NewJob, now_ms: i64) -> Result<(), QueueError> {
        self.store.enqueue_job(job, now_ms).await?;
        crate::metrics::jobs_submitted(1);
        self.ready.notify_one();
        Ok(())
    }

    fn submitted_elsewhere(&self) {
        self.ready.notify_one();
    }

    async fn claim(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Option<JobRecord>, QueueError> {
        Ok(self.store.claim_job(owner, now_ms, lease_until_ms).await?)
    }

    async fn wait_for_work(&self, idle: Duration) {
        // `notify_one` keeps a permit when nobody waits, so a submit between the last
        // claim and this wait is not lost.
        let _ = tokio::time::timeout(idle, self.ready.notified()).await;
    }
}
