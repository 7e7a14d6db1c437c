//! The job queue port: where use cases submit jobs ([`JobQueue`]), and how due jobs
//! come back to be run. Either way a job is a store record (so it survives a crash and
//! failed jobs stay visible), and the runner settles that record the same way.
//!
//! - [`StoreQueue`]: the store is the queue. Due jobs are claimed with a lease by the
//!   worker loop ([`JobSource`]), and an in-process notification wakes the local worker
//!   at once.
//! - `SqsQueue` (`jobs::sqs`, feature `aws`): each job also travels as an SQS message
//!   that carries it to a runner (a Lambda invocation, or `valine serve`'s consumer),
//!   which claims that one record by id.

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
    /// The message service refused or did not answer; `retryable` unless it refused
    /// the request itself (a bad queue URL, a denied action).
    #[error("the job queue {queue} could not {op}: {detail}")]
    Service {
        op: &'static str,
        queue: String,
        /// What went wrong, in words an operator can act on.
        detail: String,
        retryable: bool,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl QueueError {
    pub fn is_retryable(&self) -> bool {
        match self {
            QueueError::Store(e) => e.is_retryable(),
            QueueError::Encode(_) => false,
            QueueError::Service { retryable, .. } => *retryable,
        }
    }

    /// The stable class logged as `error.type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueueError::Store(e) => e.error_type(),
            QueueError::Encode(_) => "job_encode",
            QueueError::Service { .. } => "queue_unavailable",
        }
    }
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Persists `job` so that a runner gets it once `run_after_ms` has passed.
    /// Submitting an id that exists keeps the first job, so work that schedules its
    /// own next step cannot fork into two chains when it is repeated after a crash.
    async fn submit(&self, job: &NewJob, now_ms: i64) -> Result<(), QueueError>;

    /// `jobs` were written to the store by another atomic write (a webhook delivery
    /// with its effects): hand them to their consumers as [`JobQueue::submit`] would.
    async fn submitted_elsewhere(&self, jobs: &[NewJob], now_ms: i64) -> Result<(), QueueError>;
}

/// Where a worker loop claims due jobs: the store's own queue.
#[async_trait]
pub trait JobSource: Send + Sync {
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

    async fn submitted_elsewhere(&self, _jobs: &[NewJob], _now_ms: i64) -> Result<(), QueueError> {
        self.ready.notify_one();
        Ok(())
    }
}

#[async_trait]
impl JobSource for StoreQueue {
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
