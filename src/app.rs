//! [`App`]: the configuration and the wired adapters (store, GitHub, Discord, signature
//! key), built once at start-up and shared by the server, `valine invoke` and the
//! worker.

use std::sync::Arc;

pub use crate::jobs::WorkerSettings;

use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::discord::api::DiscordClient;
use crate::discord::signature::SignatureVerifier;
use crate::dryrun::{DryRun, Mutated, Mutation};
use crate::error::GitHubNotConfigured;
use crate::github::api::GitHubClient;
#[cfg(feature = "aws")]
use crate::jobs::sqs::SqsQueue;
use crate::jobs::{Job, JobQueue, QueueError, StoreQueue};
use crate::probe::Prober;
use crate::store::{self, NewJob, SharedStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("VALINE_QUEUE_URL: {0}")]
    Queue(#[from] QueueError),
}

pub struct App {
    pub config: Arc<Config>,
    pub store: SharedStore,
    pub discord: DiscordClient,
    github: Option<GitHubClient>,
    /// `None` when `DISCORD_PUBLIC_KEY` is missing: the interactions endpoint answers 503.
    pub verifier: Option<SignatureVerifier>,
    /// Where jobs go: the store's own queue, or SQS.
    pub queue: Arc<dyn JobQueue>,
    /// Where this process's runners get jobs from (the same queue).
    pub feed: Feed,
    pub worker: WorkerSettings,
    /// Every lease, poll, window and expiry reads this clock; tests pause it.
    pub clock: Clock,
    /// The SSRF-safe client for deployment probes; tests may swap its address policy.
    pub prober: Prober,
}

/// How jobs reach a runner: claimed from the store by the worker loop, or delivered as
/// SQS messages (to `serve`'s consumer or a Lambda invocation).
#[derive(Clone)]
pub enum Feed {
    Store(Arc<StoreQueue>),
    #[cfg(feature = "aws")]
    Sqs(Arc<SqsQueue>),
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("stage", &self.config.stage)
            .field("github", &self.github.is_some())
            .field("verifier", &self.verifier.is_some())
            .finish_non_exhaustive()
    }
}

impl App {
    /// Opens the store the configuration names and builds every client once.
    pub async fn new(config: Config) -> Result<App, AppError> {
        let store = store::open(&config.store).await?;
        #[cfg(feature = "aws")]
        let queue_url = config.queue_url.clone();
        #[cfg_attr(not(feature = "aws"), allow(unused_mut))]
        let mut app = Self::with_store(config, store)?;
        #[cfg(feature = "aws")]
        if let Some(url) = queue_url {
            let sqs = SqsQueue::from_env(url, Arc::clone(&app.store), app.clock.clone()).await;
            sqs.check().await?;
            app.queue = Arc::clone(&sqs) as Arc<dyn JobQueue>;
            app.feed = Feed::Sqs(sqs);
        }
        Ok(app)
    }

    pub fn with_store(config: Config, store: SharedStore) -> Result<App, AppError> {
        let verifier = config
            .discord_public_key
            .as_deref()
            .map(|key| {
                SignatureVerifier::from_hex(key).map_err(|e| ConfigError {
                    var: "DISCORD_PUBLIC_KEY".into(),
                    reason: e.to_string(),
                })
            })
            .transpose()?;
        let clock = Clock::system();
        let github = match (
            &config.github_token,
            config.github_app(),
            &config.github_repo,
        ) {
            (Some(token), _, Some(repo)) => Some(GitHubClient::new(
                config.github_api_base.clone(),
                token.clone(),
                repo.clone(),
                crate::VERSION,
            )),
            (None, Some(app), Some(repo)) => Some(GitHubClient::new_app(
                config.github_api_base.clone(),
                app,
                repo.clone(),
                crate::VERSION,
                clock.clone(),
            )),
            _ => None,
        }
        .transpose()
        .map_err(|e| ConfigError {
            var: "GITHUB_API_BASE".into(),
            reason: e.to_string(),
        })?
        .map(|github| github.with_dry_run(config.dry_run));
        let discord = DiscordClient::new(
            config.discord_api_base.clone(),
            config.discord_bot_token.clone(),
        )
        .with_dry_run(config.dry_run);
        let prober = Prober::from_config(&config).map_err(|e| ConfigError {
            var: "SAFE_LOCAL".into(),
            reason: e.to_string(),
        })?;
        let concurrency = config.worker_concurrency;
        let backoff_base = config.job_backoff;
        let store_queue = StoreQueue::new(Arc::clone(&store));
        Ok(App {
            config: Arc::new(config),
            store: Arc::clone(&store),
            discord,
            github,
            verifier,
            queue: Arc::clone(&store_queue) as Arc<dyn JobQueue>,
            feed: Feed::Store(store_queue),
            worker: WorkerSettings {
                concurrency,
                backoff_base,
                ..WorkerSettings::default()
            },
            clock,
            prober,
        })
    }

    /// Shortens the GitHub client's first retry delay (tests, which must not wait
    /// seconds for GitHub's retries).
    pub fn set_github_retry_delay(&mut self, delay: std::time::Duration) {
        self.github = self.github.take().map(|g| g.with_retry_delay(delay));
    }

    /// The GitHub client, or the error a command shows when it cannot have one.
    pub fn github(&self) -> Result<&GitHubClient, GitHubNotConfigured> {
        self.github.as_ref().ok_or_else(|| GitHubNotConfigured {
            missing: [
                ("GITHUB_TOKEN", self.config.github_token.is_none()),
                ("GITHUB_REPO", self.config.github_repo.is_none()),
            ]
            .into_iter()
            .filter_map(|(var, missing)| missing.then_some(var))
            .collect(),
        })
    }

    /// The record that persists `job`, due at `now_ms`, given up after the configured
    /// job deadline; for a write that carries jobs with other effects (a webhook
    /// delivery).
    pub fn new_job(
        &self,
        job: &Job,
        trace_id: Option<&str>,
        now_ms: i64,
    ) -> Result<NewJob, QueueError> {
        crate::jobs::new_job(job, trace_id, now_ms, self.worker.deadline)
    }

    /// Submits `job`, due now; returns its id.
    pub async fn enqueue(&self, job: &Job, trace_id: Option<&str>) -> Result<String, QueueError> {
        let now = self.clock.now_ms();
        let record = self.new_job(job, trace_id, now)?;
        self.queue.submit(&record, now).await?;
        Ok(record.id)
    }

    /// Submits `job` under a caller-chosen id, due at `run_after_ms`. Submitting the
    /// same id again keeps the first job, so work that schedules its own next step (a
    /// poll) cannot fork into two chains when it is repeated after a crash.
    pub async fn enqueue_at(
        &self,
        job: &Job,
        id: String,
        run_after_ms: i64,
    ) -> Result<(), QueueError> {
        let now = self.clock.now_ms();
        let mut record = self.new_job(job, None, now)?;
        record.id = id;
        record.run_after_ms = run_after_ms;
        record.deadline_ms = record.deadline_ms.max(run_after_ms);
        self.queue.submit(&record, now).await
    }

    /// The DRY_RUN setting of this process.
    pub fn dry_run(&self) -> DryRun {
        DryRun::new(self.config.dry_run)
    }

    /// [`DryRun::run`] with this App's setting: every mutating request goes through here.
    pub async fn mutate<T, E, F>(&self, mutation: Mutation, perform: F) -> Result<Mutated<T>, E>
    where
        F: std::future::Future<Output = Result<T, E>>,
    {
        self.dry_run().run(mutation, perform).await
    }
}
