//! [`App`]: the configuration and the wired adapters (store, GitHub, Discord, signature
//! key), built once at start-up and shared by the server, `valine invoke` and the
//! worker.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::commands::CommandError;
use crate::config::{Config, ConfigError};
use crate::discord::api::DiscordClient;
use crate::discord::signature::SignatureVerifier;
use crate::github::api::GitHubClient;
use crate::store::{self, SharedStore, StoreError};
use crate::verify::probe::Prober;

/// Timings of the durable worker; tests shorten them.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How long a claimed job stays leased without renewal; a crashed worker's job is
    /// claimable again after this.
    pub lease: Duration,
    /// How often an idle worker looks for due jobs (a local enqueue wakes it at once).
    pub poll: Duration,
    /// First retry delay; doubled per attempt, with jitter.
    pub backoff_base: Duration,
    pub max_attempts: u32,
    /// How long a job may keep retrying (SPEC §5: 15 minutes).
    pub deadline: Duration,
    /// How long a stopping server lets running work finish.
    pub shutdown_grace: Duration,
    /// How often a `/deploy-client wait:true` message re-reads its run from GitHub, in
    /// case a webhook is missed (SPEC §4.2: every 15 s while the token lives).
    pub run_poll: Duration,
    /// How long a dispatch looks for its run by correlation id when GitHub did not
    /// return it (SPEC §4.2: up to 60 s), and how often it asks meanwhile.
    pub identify_timeout: Duration,
    pub identify_poll: Duration,
    /// How long an interaction token edits its message (Discord: 15 minutes).
    pub interaction_token_ttl: Duration,
    /// How long a `/deploy-client` waits for another one that is dispatching right now
    /// before answering that a deploy is already running.
    pub dispatch_lock_wait: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            backoff_base: Duration::from_secs(2),
            max_attempts: 5,
            deadline: Duration::from_secs(15 * 60),
            shutdown_grace: Duration::from_secs(10),
            run_poll: Duration::from_secs(15),
            identify_timeout: Duration::from_secs(60),
            identify_poll: Duration::from_secs(3),
            interaction_token_ttl: Duration::from_secs(15 * 60),
            dispatch_lock_wait: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
}

pub struct App {
    pub config: Arc<Config>,
    pub store: SharedStore,
    pub discord: DiscordClient,
    github: Option<GitHubClient>,
    /// `None` when `DISCORD_PUBLIC_KEY` is missing: the interactions endpoint answers 503.
    pub verifier: Option<SignatureVerifier>,
    /// Wakes the in-process worker when a job is enqueued.
    pub jobs_ready: Arc<Notify>,
    pub worker: WorkerSettings,
    /// The SSRF-safe client for deployment probes; tests may swap its address policy.
    pub prober: Prober,
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
        Self::with_store(config, store)
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
        let github = match (&config.github_token, &config.github_repo) {
            (Some(token), Some(repo)) => Some(
                GitHubClient::new(
                    config.github_api_base.clone(),
                    token.clone(),
                    repo.clone(),
                    crate::VERSION,
                )
                .map_err(|e| ConfigError {
                    var: "GITHUB_API_BASE".into(),
                    reason: e.to_string(),
                })?
                .with_dry_run(config.dry_run),
            ),
            _ => None,
        };
        let discord = DiscordClient::new(
            config.discord_api_base.clone(),
            config.discord_bot_token.clone(),
        )
        .with_dry_run(config.dry_run);
        let prober = Prober::from_config(&config).map_err(|e| ConfigError {
            var: "SAFE_LOCAL".into(),
            reason: e.to_string(),
        })?;
        Ok(App {
            config: Arc::new(config),
            store,
            discord,
            github,
            verifier,
            jobs_ready: Arc::new(Notify::new()),
            worker: WorkerSettings::default(),
            prober,
        })
    }

    /// The GitHub client, or the error a command shows when it cannot have one.
    pub fn github(&self) -> Result<&GitHubClient, CommandError> {
        self.github.as_ref().ok_or_else(|| {
            let missing: Vec<&str> = [
                ("GITHUB_TOKEN", self.config.github_token.is_none()),
                ("GITHUB_REPO", self.config.github_repo.is_none()),
            ]
            .into_iter()
            .filter_map(|(var, missing)| missing.then_some(var))
            .collect();
            CommandError::NotConfigured(format!(
                "GitHub is not configured: set {}",
                missing.join(" and ")
            ))
        })
    }
}
