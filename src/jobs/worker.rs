//! The worker loop: a thin wrapper that claims due jobs from a [`JobQueue`] and hands
//! each to the [`Runner`], several side by side (`WorkerSettings::concurrency`), so a
//! slow job never holds up the others. It claims at once when it starts and whenever a
//! job finishes or a local submit wakes it; otherwise it looks again every `poll`.
//!
//! [`Worker::run_once`] and [`Worker::run_until_idle`] step it, so a test can run
//! exactly one job or drain the queue. [`Worker::run`] loops until shutdown, then gives
//! the running jobs the grace period and releases its leases so another process can
//! pick the work up at once.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::JobQueue;
use super::runner::{Runner, Step};
use crate::store::{SharedStore, StoreError};

pub struct Worker {
    queue: Arc<dyn JobQueue>,
    store: SharedStore,
    runner: Arc<Runner>,
}

impl Worker {
    pub fn new(queue: Arc<dyn JobQueue>, store: SharedStore, runner: Runner) -> Self {
        Worker {
            queue,
            store,
            runner: Arc::new(runner),
        }
    }

    pub fn owner(&self) -> &str {
        self.runner.owner()
    }

    /// Claims one due job and runs it to the end of this attempt.
    pub async fn run_once(&self) -> Result<Step, super::QueueError> {
        match self.claim().await? {
            None => Ok(Step::Idle),
            Some(record) => Ok(self.runner.run(record).await?),
        }
    }

    /// Runs due jobs one after another until none is due; returns what each did.
    pub async fn run_until_idle(&self) -> Result<Vec<Step>, super::QueueError> {
        let mut steps = Vec::new();
        loop {
            match self.run_once().await? {
                Step::Idle => return Ok(steps),
                step => steps.push(step),
            }
        }
    }

    async fn claim(&self) -> Result<Option<crate::store::JobRecord>, super::QueueError> {
        let now = self.runner.clock().now_ms();
        self.queue
            .claim(self.owner(), now, self.runner.lease_until_ms())
            .await
    }

    /// Runs jobs until `shutdown` turns true, then stops claiming, gives the running
    /// jobs the grace period, and releases this worker's leases.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let settings = self.runner.settings().clone();
        let limit = settings.concurrency.max(1);
        let mut running: JoinSet<Result<Step, StoreError>> = JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let mut store_down = false;
            while running.len() < limit {
                match self.claim().await {
                    Ok(Some(record)) => {
                        let runner = Arc::clone(&self.runner);
                        running.spawn(async move { runner.run(record).await });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error.type = "store_unavailable", error.message = %e, "worker cannot reach the queue");
                        store_down = true;
                        break;
                    }
                }
            }
            let can_claim = running.len() < limit && !store_down;
            tokio::select! {
                Some(done) = running.join_next(), if !running.is_empty() => log_attempt(done),
                _ = self.queue.wait_for_work(settings.poll), if can_claim => {}
                _ = tokio::time::sleep(settings.poll), if store_down => {}
                _ = shutdown.changed() => break,
            }
        }
        let finish = async {
            while let Some(done) = running.join_next().await {
                log_attempt(done);
            }
        };
        if tokio::time::timeout(settings.shutdown_grace, finish)
            .await
            .is_err()
        {
            tracing::warn!("running jobs did not finish within the grace period; releasing them");
            running.shutdown().await;
        }
        match self.store.release_job_leases(self.owner()).await {
            Ok(n) if n > 0 => tracing::info!(released = n, "released job leases"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error.type = "store_unavailable", error.message = %e, "could not release job leases")
            }
        }
    }
}

fn log_attempt(done: Result<Result<Step, StoreError>, tokio::task::JoinError>) {
    match done {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::error!(error.type = "store_unavailable", error.message = %e, "job result not recorded")
        }
        // The job stays leased; another claim takes it over once the lease runs out.
        Err(e) => tracing::error!(error.type = "job_panic", error.message = %e, "job task failed"),
    }
}
