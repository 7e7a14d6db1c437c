//! The worker loop: a thin wrapper that claims due jobs from a [`JobSource`] (the store's own queue) and hands
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

use super::JobSource;
use super::runner::{Runner, Step};
use crate::store::{SharedStore, StoreError};

pub struct Worker {
    queue: Arc<dyn JobSource>,
    store: SharedStore,
    runner: Arc<Runner>,
}

impl Worker {
    pub fn new(queue: Arc<dyn JobSource>, store: SharedStore, runner: Runner) -> Self {
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

#[cfg(test)]
mod tests {
    //! The worker on a real (in-memory SQLite) store, with tokio's clock paused: leases,
    //! retries, deadlines and concurrency are checked in virtual time, so these tests
    //! take milliseconds and do not depend on the machine's load.

    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::clock::Clock;
    use crate::jobs::{
        Job, JobError, JobHandler, JobQueue, JobSource, PollRun, StoreQueue, WorkerSettings,
        new_job,
    };
    use crate::store::sqlite::SqliteStore;
    use crate::store::{JobState, StoreError};

    /// Runs jobs by their key (`PollRun::correlation_id`): `slow-…` takes five seconds,
    /// `flaky-…` fails its first attempt with a retryable error, `broken-…` fails with
    /// one that retrying cannot help; anything else succeeds at once.
    struct Scripted {
        clock: Clock,
        finished: Mutex<Vec<(String, i64)>>,
        attempts: Mutex<Vec<String>>,
        gave_up: Mutex<Vec<String>>,
    }

    fn key(job: &Job) -> String {
        match job {
            Job::PollRun(poll) => poll.correlation_id.clone(),
            other => panic!("unexpected job {other:?}"),
        }
    }

    #[async_trait]
    impl JobHandler for Scripted {
        async fn execute(&self, job: &Job) -> Result<(), JobError> {
            let key = key(job);
            let tries = {
                let mut attempts = self.attempts.lock().unwrap();
                attempts.push(key.clone());
                attempts.iter().filter(|k| **k == key).count()
            };
            if key.starts_with("slow") {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            if key.starts_with("flaky") && tries == 1 {
                return Err(StoreError::unavailable("claim_job", "briefly down").into());
            }
            if key.starts_with("broken") {
                return Err(JobError::Decode(
                    serde_json::from_str::<u8>("x").unwrap_err(),
                ));
            }
            self.finished
                .lock()
                .unwrap()
                .push((key, self.clock.now_ms()));
            Ok(())
        }

        async fn gave_up(&self, job: &Job, _attempts: u32, _error: &str) {
            self.gave_up.lock().unwrap().push(key(job));
        }
    }

    struct Setup {
        store: SharedStore,
        queue: Arc<StoreQueue>,
        handler: Arc<Scripted>,
        clock: Clock,
        settings: WorkerSettings,
    }

    async fn setup() -> Setup {
        let store: SharedStore = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let clock = Clock::tokio_at(1_800_000_000_000);
        let settings = WorkerSettings {
            lease: Duration::from_secs(15),
            poll: Duration::from_secs(1),
            concurrency: 8,
            backoff_base: Duration::from_secs(2),
            ..WorkerSettings::default()
        };
        Setup {
            queue: StoreQueue::new(Arc::clone(&store)),
            handler: Arc::new(Scripted {
                clock: clock.clone(),
                finished: Mutex::default(),
                attempts: Mutex::default(),
                gave_up: Mutex::default(),
            }),
            store,
            clock,
            settings,
        }
    }

    impl Setup {
        fn worker(&self, owner: &str) -> Worker {
            let runner = Runner::new(
                Arc::clone(&self.store),
                self.handler.clone(),
                self.settings.clone(),
                self.clock.clone(),
                owner.to_owned(),
            );
            Worker::new(self.queue.clone(), Arc::clone(&self.store), runner)
        }

        async fn submit(&self, key: &str) -> String {
            let job = Job::PollRun(PollRun {
                correlation_id: key.to_owned(),
                run_id: 1,
                seq: 1,
            });
            let now = self.clock.now_ms();
            let record = new_job(&job, None, now, self.settings.deadline).unwrap();
            self.queue.submit(&record, now).await.unwrap();
            record.id
        }

        async fn state(&self, id: &str) -> (JobState, u32) {
            let job = self.store.get_job(id).await.unwrap().unwrap();
            (job.state, job.attempts)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn slow_jobs_run_side_by_side_and_start_at_once() {
        let setup = setup().await;
        for i in 0..6 {
            setup.submit(&format!("slow-{i}")).await;
        }
        let started = setup.clock.now_ms();
        let (stop, stopped) = watch::channel(false);
        let worker = tokio::spawn(setup.worker("w1").run(stopped));
        let finished = loop {
            let finished = setup.handler.finished.lock().unwrap().clone();
            if finished.len() == 6 {
                break finished;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // Six five-second jobs end together, five seconds in: none waited for another.
        for (key, at) in finished {
            let took = at - started;
            assert!(
                (5_000..5_200).contains(&took),
                "{key} ended after {took} ms"
            );
        }
        stop.send(true).unwrap();
        worker.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_the_configured_number_run_at_once() {
        let mut setup = setup().await;
        setup.settings.concurrency = 2;
        for i in 0..4 {
            setup.submit(&format!("slow-{i}")).await;
        }
        let started = setup.clock.now_ms();
        let (stop, stopped) = watch::channel(false);
        let worker = tokio::spawn(setup.worker("w1").run(stopped));
        while setup.handler.finished.lock().unwrap().len() < 4 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut ends: Vec<i64> = setup
            .handler
            .finished
            .lock()
            .unwrap()
            .iter()
            .map(|(_, at)| (at - started) / 1000)
            .collect();
        ends.sort_unstable();
        assert_eq!(ends, [5, 5, 10, 10], "two at a time");
        stop.send(true).unwrap();
        worker.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_crashed_workers_job_is_taken_over_when_its_lease_runs_out() {
        let setup = setup().await;
        let id = setup.submit("quick").await;
        // A worker claims the job and dies before settling it.
        let now = setup.clock.now_ms();
        let lease = setup.clock.ms_after(setup.settings.lease);
        let claimed = setup.queue.claim("dead", now, lease).await.unwrap();
        assert_eq!(claimed.map(|j| j.id), Some(id.clone()));

        let survivor = setup.worker("alive");
        tokio::time::advance(Duration::from_secs(14)).await;
        assert_eq!(
            survivor.run_once().await.unwrap(),
            Step::Idle,
            "still leased"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            survivor.run_once().await.unwrap(),
            Step::Done { job_id: id.clone() }
        );
        assert_eq!(setup.state(&id).await, (JobState::Done, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_job_keeps_its_lease_past_the_lease_length() {
        let mut setup = setup().await;
        setup.settings.lease = Duration::from_secs(3);
        let id = setup.submit("slow").await;
        let first = setup.worker("first");
        let running = tokio::spawn(async move { first.run_once().await });
        // Five seconds of work under a three-second lease: renewed every second.
        tokio::time::sleep(Duration::from_millis(4_500)).await;
        let other = setup.worker("other");
        assert_eq!(other.run_once().await.unwrap(), Step::Idle);
        assert_eq!(
            running.await.unwrap().unwrap(),
            Step::Done { job_id: id.clone() }
        );
        assert_eq!(setup.state(&id).await, (JobState::Done, 1));
        assert_eq!(setup.handler.attempts.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retryable_failure_is_retried_after_its_backoff() {
        let setup = setup().await;
        let id = setup.submit("flaky").await;
        let worker = setup.worker("w1");
        let step = worker.run_once().await.unwrap();
        assert!(
            matches!(&step, Step::Retrying { job_id, attempts: 1, .. } if *job_id == id),
            "{step:?}"
        );
        // The first backoff is 2 s ± 25 %: not due after 1.4 s, due after 2.6 s.
        tokio::time::advance(Duration::from_millis(1_400)).await;
        assert_eq!(worker.run_once().await.unwrap(), Step::Idle);
        tokio::time::advance(Duration::from_millis(1_200)).await;
        assert_eq!(
            worker.run_once().await.unwrap(),
            Step::Done { job_id: id.clone() }
        );
        assert_eq!(setup.state(&id).await, (JobState::Done, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_gives_up_at_once_and_says_so() {
        let setup = setup().await;
        let id = setup.submit("broken").await;
        let steps = setup.worker("w1").run_until_idle().await.unwrap();
        assert_eq!(
            steps,
            [Step::Failed {
                job_id: id.clone(),
                attempts: 1
            }]
        );
        assert_eq!(*setup.handler.gave_up.lock().unwrap(), ["broken"]);
        let failed = setup
            .store
            .failed_jobs(setup.clock.now_secs())
            .await
            .unwrap();
        assert_eq!(failed.len(), 1, "kept for inspection");
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_past_its_deadline_gives_up_without_running() {
        let setup = setup().await;
        let id = setup.submit("late").await;
        tokio::time::advance(setup.settings.deadline + Duration::from_secs(1)).await;
        let steps = setup.worker("w1").run_until_idle().await.unwrap();
        assert_eq!(
            steps,
            [Step::Failed {
                job_id: id,
                attempts: 1
            }]
        );
        assert!(setup.handler.attempts.lock().unwrap().is_empty());
        assert_eq!(*setup.handler.gave_up.lock().unwrap(), ["late"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopping_worker_gives_back_the_interrupted_job() {
        let mut setup = setup().await;
        setup.settings.shutdown_grace = Duration::from_secs(1);
        let id = setup.submit("slow").await;
        let (stop, stopped) = watch::channel(false);
        let worker = tokio::spawn(setup.worker("w1").run(stopped));
        while setup.handler.attempts.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(true).unwrap();
        worker.await.unwrap();
        // Released with the attempt given back: claimable at once, by anyone.
        let next = setup.worker("w2");
        assert_eq!(
            next.run_once().await.unwrap(),
            Step::Done { job_id: id.clone() }
        );
        assert_eq!(setup.state(&id).await, (JobState::Done, 1));
    }
}
