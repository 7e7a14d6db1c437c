//! The GitHub REST client Valine uses: workflows, runs, jobs and dispatches of one
//! repository, with the headers, retries and error wording of
//! `docs/design.md#github-calls`.
//!
//! One `reqwest::Client` is built per [`GitHubClient`] and shared by its clones (an `Arc`
//! inside), together with the cache of resolved workflows. Every request goes through
//! `GitHubClient::call`, which owns the retry loop: it repeats connection failures, 5xx
//! and rate limits at most three times, waits as GitHub asks (`retry.rs`), and gives up
//! at once when a wait would pass the deadline of a [`GitHubClient::with_deadline`] clone.
//! A dispatch is the exception: it is repeated only after a connection error, when it
//! certainly never reached GitHub, because a repeated dispatch is a second deploy.
//!
//! Each HTTP attempt logs one event with `github_status`, `github_endpoint` (method and
//! path template, no query) and `github_rate_remaining`. Before each retry the
//! task's retry observer, if any, is told (`retry.rs`, [`super::observe_retries`]).
//!
//! Authentication is a `GITHUB_TOKEN`, or a GitHub App ([`GitHubClient::new_app`]): an
//! installation token fetched with the App's JWT, shared by all clones, refreshed
//! before it expires and once more when GitHub refuses it (`app_auth.rs`).
//!
//! Failures name their cause: a request that got no answer says which base URL it
//! tried and why (refused, name not resolved, timed out, TLS), and a web page where
//! JSON was expected points at `GITHUB_API_BASE`.

use std::collections::HashMap;
use std::fmt;

use crate::http_client::LazyClient;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::time::Instant;
use url::Url;

use super::RepoSlug;
use super::app_auth::{AppCredentials, Installation, InstallationToken, TokenGrant, TokenState};
use super::error::Unreachable;
pub use super::error::{GitHubError, needs};
use super::model::{
    ContentFile, DispatchOutcome, ErrorBody, Hook, Job, JobList, RateLimit, RateLimitOverview,
    RepoAccess, RepoPublicKey, TokenInfo, Workflow, WorkflowList, WorkflowRun, WorkflowRunList,
};
use super::retry::{
    RetryNotice, RetryPolicy, RetryReason, header_u64, rate_limit_wait, retry_after,
};
use crate::clock::Clock;
use crate::dryrun::Mutation;

/// REST API version Valine pins, sent as `X-GitHub-Api-Version`.
const API_VERSION: &str = "2022-11-28";
/// Every outbound call has a 10 s timeout.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// GitHub's largest page.
const MAX_PER_PAGE: usize = 100;
/// Lists read to the end (workflows, a run's jobs) stop here: 1,000 items is far beyond
/// any real repository, and a bound keeps a misbehaving server from looping us.
const MAX_PAGES: u32 = 10;
/// How far before the dispatch a correlated run may claim to have been created: GitHub's
/// clock and ours differ by a little, and `created_at` has whole seconds.
pub const CORRELATION_SKEW: Duration = Duration::from_secs(5);
/// Runs examined by one correlation lookup: runs created since a dispatch moments ago.
const CORRELATION_SCAN: usize = 50;
/// Longest GitHub message quoted to users; Discord fields are small.
const MAX_MESSAGE_CHARS: usize = 300;

const WORKFLOWS: &str = "/repos/{owner}/{repo}/actions/workflows";
const WORKFLOW: &str = "/repos/{owner}/{repo}/actions/workflows/{workflow_id}";
const WORKFLOW_RUNS: &str = "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs";
const DISPATCHES: &str = "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches";
const RUN: &str = "/repos/{owner}/{repo}/actions/runs/{run_id}";
const RUN_JOBS: &str = "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs";
const RUN_CANCEL: &str = "/repos/{owner}/{repo}/actions/runs/{run_id}/cancel";
const RUN_RERUN_FAILED: &str = "/repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs";
const RUN_RERUN: &str = "/repos/{owner}/{repo}/actions/runs/{run_id}/rerun";
const RATE_LIMIT: &str = "/rate_limit";
const REPO: &str = "/repos/{owner}/{repo}";
const JOB_LOGS: &str = "/repos/{owner}/{repo}/actions/jobs/{job_id}/logs";
const VARIABLES: &str = "/repos/{owner}/{repo}/actions/variables";
const VARIABLE: &str = "/repos/{owner}/{repo}/actions/variables/{name}";
const SECRETS_PUBLIC_KEY: &str = "/repos/{owner}/{repo}/actions/secrets/public-key";
const SECRET: &str = "/repos/{owner}/{repo}/actions/secrets/{secret_name}";
/// `{path}` is a file path: its `/` separate segments (see `GitHubClient::url`).
const CONTENTS: &str = "/repos/{owner}/{repo}/contents/{path}";
const HOOKS: &str = "/repos/{owner}/{repo}/hooks";
/// GitHub App: the repository's installation, and a token for an installation.
const INSTALLATION: &str = "/repos/{owner}/{repo}/installation";
const ACCESS_TOKENS: &str = "/app/installations/{installation_id}/access_tokens";
/// Largest workflow file read (GitHub's contents API serves files up to 1 MB this way).
const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Bytes of a job log kept (its end): enough for any tail we show, and a bound on memory
/// for logs of many megabytes.
const LOG_TAIL_BYTES: usize = 512 * 1024;

/// Installs rustls' ring provider as the process default, once. reqwest is built with
/// `rustls-no-provider` and panics when it builds a client without one, even for plain
/// http; another component may already have installed a provider, which is fine.
pub fn ensure_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Client for one repository. Cheap to clone; clones share the HTTP connection pool and
/// the workflow cache.
#[derive(Clone)]
pub struct GitHubClient {
    inner: Arc<Inner>,
    /// Set by [`GitHubClient::with_deadline`]: waits that would end later fail at once.
    deadline: Option<Instant>,
    /// DRY_RUN backstop ([`GitHubClient::with_dry_run`]): mutating requests are refused.
    dry_run: bool,
    policy: RetryPolicy,
}

struct Inner {
    /// Built on first use: start-up does not load root certificates for it.
    http: LazyClient,
    base: Url,
    repo: RepoSlug,
    auth: Auth,
    /// Workflow spec → workflow, for the client's lifetime (a display name is resolved
    /// once).
    workflows: Mutex<HashMap<String, Workflow>>,
}

/// How requests are authenticated.
enum Auth {
    /// `GITHUB_TOKEN`: the same header on every request. The token is kept only to scrub
    /// it from text GitHub (or a proxy in front of it) sends back.
    Token {
        header: HeaderValue,
        token: SecretString,
    },
    /// A GitHub App: installation tokens, fetched with the App's JWT. Boxed: it holds
    /// the key and the token state, and is one per client anyway.
    App(Box<AppAuth>),
}

struct AppAuth {
    credentials: AppCredentials,
    /// Token expiry and JWT times read it (tests control it).
    clock: Clock,
    /// The installation and its current token. An async lock: one request refreshes,
    /// the others wait for its token rather than each fetching one.
    state: tokio::sync::Mutex<TokenState>,
    /// The current token again, readable without waiting, to scrub GitHub's messages.
    shown: Mutex<Option<SecretString>>,
}

/// What `valine doctor` reports of GitHub App authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppStatus {
    pub app_id: String,
    pub installation_id: u64,
    /// Whether the installation id came from `GET /repos/{owner}/{repo}/installation`.
    pub installation_found: bool,
    pub token_expires_at: DateTime<Utc>,
}

impl fmt::Debug for GitHubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.inner.auth {
            Auth::Token { .. } => "token",
            Auth::App(_) => "github_app",
        };
        f.debug_struct("GitHubClient")
            .field("api_base", &self.inner.base.as_str())
            .field("repo", &self.inner.repo.to_string())
            .field("auth", &auth)
            .field("deadline", &self.deadline)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// Transport settings that differ between production and the tests.
struct HttpSettings {
    timeout: Option<Duration>,
    /// Idle connections kept for reuse. Tests turn it off: the pool's idle timer would
    /// let paused tokio time jump while a request waits for the fake server.
    pool: bool,
}

impl GitHubClient {
    /// Builds the client. `api_base` is `https://api.github.com` or a GitHub Enterprise
    /// base with a path prefix (`https://host/api/v3`); `user_agent_version` ends up in
    /// `User-Agent: valine/<version>`.
    pub fn new(
        api_base: Url,
        token: SecretString,
        repo: RepoSlug,
        user_agent_version: &str,
    ) -> Result<Self, GitHubError> {
        Self::production(api_base, token_auth(token)?, repo, user_agent_version)
    }

    /// Builds a client that authenticates as a GitHub App installation. Nothing is sent
    /// yet: the first request fetches the installation token (and, without an
    /// installation id, finds the installation from the repository).
    pub fn new_app(
        api_base: Url,
        credentials: AppCredentials,
        repo: RepoSlug,
        user_agent_version: &str,
        clock: Clock,
    ) -> Result<Self, GitHubError> {
        let auth = app_auth(credentials, clock);
        Self::production(api_base, auth, repo, user_agent_version)
    }

    /// The production transport: timeouts, pooled connections, the default retries.
    fn production(
        api_base: Url,
        auth: Auth,
        repo: RepoSlug,
        user_agent_version: &str,
    ) -> Result<Self, GitHubError> {
        let settings = HttpSettings {
            timeout: Some(HTTP_TIMEOUT),
            pool: true,
        };
        Self::build(
            api_base,
            auth,
            repo,
            user_agent_version,
            settings,
            RetryPolicy::default(),
        )
    }

    fn build(
        mut api_base: Url,
        auth: Auth,
        repo: RepoSlug,
        user_agent_version: &str,
        settings: HttpSettings,
        policy: RetryPolicy,
    ) -> Result<Self, GitHubError> {
        if !matches!(api_base.scheme(), "http" | "https")
            || api_base.host_str().is_none()
            || api_base.cannot_be_a_base()
        {
            return Err(GitHubError::Config(format!(
                "GITHUB_API_BASE must be an http(s) URL, got {api_base}"
            )));
        }
        // The base names a prefix; paths are appended to it segment by segment.
        api_base.set_query(None);
        api_base.set_fragment(None);

        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            HeaderName::from_static("x-github-api-version"),
            HeaderValue::from_static(API_VERSION),
        );

        ensure_crypto_provider();
        let user_agent = format!("valine/{user_agent_version}");
        let http = LazyClient::new(move || {
            let mut builder = reqwest::Client::builder()
                .user_agent(user_agent.clone())
                .default_headers(headers.clone())
                // The GitHub base is configured explicitly; a stray HTTPS_PROXY in a
                // Lambda or CI environment must not reroute the token.
                .no_proxy();
            if let Some(timeout) = settings.timeout {
                builder = builder.timeout(timeout);
            }
            if !settings.pool {
                builder = builder.pool_max_idle_per_host(0).pool_idle_timeout(None);
            }
            builder
        });

        Ok(GitHubClient {
            inner: Arc::new(Inner {
                http,
                base: api_base,
                repo,
                auth,
                workflows: Mutex::new(HashMap::new()),
            }),
            deadline: None,
            dry_run: false,
            policy,
        })
    }

    /// A clone whose waits (backoff, rate limits) must end before `deadline`; a wait
    /// that would not fails at once, a rate limit with [`GitHubError::RateLimited`].
    pub fn with_deadline(&self, deadline: Instant) -> GitHubClient {
        GitHubClient {
            inner: Arc::clone(&self.inner),
            deadline: Some(deadline),
            dry_run: self.dry_run,
            policy: self.policy,
        }
    }

    /// A client that refuses to send any request but a `GET` when `dry_run` is on: the
    /// backstop behind [`crate::dryrun`], so a mutating call that skipped the gate fails
    /// loudly instead of reaching GitHub.
    pub fn with_dry_run(mut self, dry_run: bool) -> GitHubClient {
        self.dry_run = dry_run;
        self
    }

    pub fn repo(&self) -> &RepoSlug {
        &self.inner.repo
    }

    /// The same client with another first backoff delay (tests, which must not wait
    /// seconds for a retry).
    pub fn with_retry_delay(mut self, base_delay: Duration) -> GitHubClient {
        self.policy.base_delay = base_delay;
        self
    }

    /// GitHub App authentication as it stands, fetching the installation token if
    /// there is none yet; `None` with `GITHUB_TOKEN` authentication. For `valine doctor`.
    pub async fn app_status(&self) -> Option<Result<AppStatus, GitHubError>> {
        let Auth::App(app) = &self.inner.auth else {
            return None;
        };
        Some(self.installation_token(app, None).await.map(|token| {
            let installation_id = token.installation_id;
            AppStatus {
                app_id: app.credentials.app_id.clone(),
                installation_id,
                installation_found: app.credentials.installation_id.is_none(),
                token_expires_at: token.expires_at,
            }
        }))
    }

    /// Finds the workflow named by `spec`: a numeric id, a file name (`deploy.yml`,
    /// `.github/workflows/deploy.yaml`), or a display name that exactly one workflow has.
    /// Successful answers are cached for the client's lifetime.
    pub async fn resolve_workflow(&self, spec: &str) -> Result<Workflow, GitHubError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(self.workflow_not_found("(empty)"));
        }
        if let Some(hit) = self.cached_workflow(spec) {
            return Ok(hit);
        }
        let file = spec.rsplit('/').next().unwrap_or(spec);
        let lower = file.to_ascii_lowercase();
        let workflow = if spec.bytes().all(|b| b.is_ascii_digit()) {
            self.get_workflow(spec, spec).await?
        } else if lower.ends_with(".yml") || lower.ends_with(".yaml") {
            self.get_workflow(file, spec).await?
        } else {
            self.find_workflow_by_name(spec).await?
        };
        self.workflow_cache()
            .insert(spec.to_owned(), workflow.clone());
        Ok(workflow)
    }

    fn cached_workflow(&self, spec: &str) -> Option<Workflow> {
        self.workflow_cache().get(spec).cloned()
    }

    fn workflow_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Workflow>> {
        // A poisoned lock only means another task panicked while holding it; every
        // entry is still a complete answer from GitHub.
        self.inner
            .workflows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    async fn get_workflow(&self, id_or_file: &str, spec: &str) -> Result<Workflow, GitHubError> {
        let reply = self.call(&Call::get(WORKFLOW, &[id_or_file])).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(self.workflow_not_found(spec));
        }
        self.success(reply, needs::ACTIONS_READ)?.json()
    }

    async fn find_workflow_by_name(&self, name: &str) -> Result<Workflow, GitHubError> {
        let all: Vec<Workflow> = self
            .collect_pages(WORKFLOWS, &[], Vec::new(), |list: WorkflowList| {
                (list.total_count, list.workflows)
            })
            .await?;
        let mut matches: Vec<Workflow> = all.into_iter().filter(|w| w.name == name).collect();
        match matches.len() {
            0 => Err(self.workflow_not_found(name)),
            1 => Ok(matches.remove(0)),
            _ => Err(GitHubError::AmbiguousWorkflow {
                name: name.to_owned(),
                repo: self.inner.repo.to_string(),
                paths: matches.into_iter().map(|w| w.path).collect(),
            }),
        }
    }

    fn workflow_not_found(&self, spec: &str) -> GitHubError {
        GitHubError::WorkflowNotFound {
            workflow: spec.to_owned(),
            repo: self.inner.repo.to_string(),
        }
    }

    /// Up to `limit` runs of a workflow, newest first, optionally on one branch and
    /// created at or after `created_after`. Paging stops at the first run older than
    /// `created_after`, at `limit`, or at a short page: nothing older is ever needed.
    pub async fn list_runs(
        &self,
        workflow_id: u64,
        branch: Option<&str>,
        created_after: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<WorkflowRun>, GitHubError> {
        let mut runs = Vec::new();
        if limit == 0 {
            return Ok(runs);
        }
        let id = workflow_id.to_string();
        let per_page = limit.min(MAX_PER_PAGE);
        let mut base_query = vec![("per_page", per_page.to_string())];
        if let Some(branch) = branch {
            base_query.push(("branch", branch.to_owned()));
        }
        if let Some(after) = created_after {
            // GitHub's search syntax; the filter is also applied below, because older
            // Enterprise servers ignore it.
            let since = after.to_rfc3339_opts(SecondsFormat::Secs, true);
            base_query.push(("created", format!(">={since}")));
        }
        for page in 1.. {
            let mut query = base_query.clone();
            query.push(("page", page.to_string()));
            let reply = self
                .call(&Call::get(WORKFLOW_RUNS, &[&id]).query(&query))
                .await?;
            if reply.status == StatusCode::NOT_FOUND {
                return Err(self.workflow_not_found(&id));
            }
            let list: WorkflowRunList = self.success(reply, needs::ACTIONS_READ)?.json()?;
            let short = list.workflow_runs.len() < per_page;
            for run in list.workflow_runs {
                let too_old = matches!((created_after, run.created_at), (Some(after), Some(at)) if at < after);
                if too_old {
                    return Ok(runs);
                }
                runs.push(run);
                if runs.len() >= limit {
                    return Ok(runs);
                }
            }
            if short || runs.len() as u64 >= list.total_count {
                break;
            }
        }
        Ok(runs)
    }

    /// One run, or `None` when GitHub does not know it.
    pub async fn get_run(&self, run_id: u64) -> Result<Option<WorkflowRun>, GitHubError> {
        let id = run_id.to_string();
        let reply = self.call(&Call::get(RUN, &[&id])).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.success(reply, needs::ACTIONS_READ)?.json().map(Some)
    }

    /// The jobs of a run's latest attempt, with their steps.
    pub async fn list_run_jobs(&self, run_id: u64) -> Result<Vec<Job>, GitHubError> {
        let id = run_id.to_string();
        let filter = vec![("filter", "latest".to_owned())];
        self.collect_pages(RUN_JOBS, &[&id], filter, |list: JobList| {
            (list.total_count, list.jobs)
        })
        .await
    }

    /// The core REST quota of the token. (This call does not count against it.)
    pub async fn rate_limit(&self) -> Result<RateLimit, GitHubError> {
        let reply = self.call(&Call::get(RATE_LIMIT, &[])).await?;
        let overview: RateLimitOverview = self.success(reply, needs::ACTIONS_READ)?.json()?;
        Ok(overview.core())
    }

    /// Asks GitHub to cancel a run (202). Repeating a cancel is harmless, so it is
    /// retried like a read.
    pub async fn cancel_run(&self, run_id: u64) -> Result<(), GitHubError> {
        let id = run_id.to_string();
        let reply = self.call(&Call::post(RUN_CANCEL, &[&id])).await?;
        self.success(reply, needs::ACTIONS_WRITE).map(drop)
    }

    /// Re-runs the failed jobs of a run (201). Sent again only when it certainly did not
    /// reach GitHub: a repeat could start a second attempt.
    pub async fn rerun_failed_jobs(&self, run_id: u64) -> Result<(), GitHubError> {
        let id = run_id.to_string();
        let reply = self
            .call(&Call::post(RUN_RERUN_FAILED, &[&id]).once())
            .await?;
        self.success(reply, needs::ACTIONS_WRITE).map(drop)
    }

    /// Re-runs a whole run (201): a new attempt of the same run, at the same commit with
    /// the same inputs. Sent again only when it certainly did not reach GitHub: a repeat
    /// could start another attempt. A 403 that names another reason than permissions
    /// (GitHub refuses runs created over 30 days ago) is quoted as GitHub said it.
    pub async fn rerun_run(&self, run_id: u64) -> Result<(), GitHubError> {
        let id = run_id.to_string();
        let reply = self.call(&Call::post(RUN_RERUN, &[&id]).once()).await?;
        if reply.status == StatusCode::FORBIDDEN {
            let message = self.message(&reply);
            if !names_permissions(&message) {
                return Err(GitHubError::Api {
                    status: 403,
                    message,
                });
            }
        }
        self.success(reply, needs::ACTIONS_WRITE).map(drop)
    }

    /// Dispatches a workflow at `git_ref` with `inputs`, asking GitHub for the new run
    /// (`return_run_details`). A server that rejects that field (a 422 naming it) gets the
    /// dispatch again without it; that answer, like a 204, carries no run, and the caller
    /// finds the run with [`GitHubClient::wait_for_correlated_run`].
    ///
    /// Never repeated after a timeout or a 5xx: GitHub may have started the run. Such an
    /// error is transient, and the caller must look the run up before dispatching again.
    pub async fn dispatch_workflow(
        &self,
        workflow_id: u64,
        git_ref: &str,
        inputs: &Map<String, Value>,
    ) -> Result<DispatchOutcome, GitHubError> {
        let id = workflow_id.to_string();
        let mut body = Map::new();
        body.insert("ref".into(), Value::String(git_ref.to_owned()));
        body.insert("inputs".into(), Value::Object(inputs.clone()));
        body.insert("return_run_details".into(), Value::Bool(true));
        let mut body = Value::Object(body);

        let mut reply = self
            .call(&Call::post(DISPATCHES, &[&id]).body(&body).once())
            .await?;
        if reply.status == StatusCode::UNPROCESSABLE_ENTITY
            && String::from_utf8_lossy(&reply.body).contains("return_run_details")
        {
            // A validation error means nothing was dispatched; sending again is safe.
            if let Value::Object(fields) = &mut body {
                fields.remove("return_run_details");
            }
            reply = self
                .call(&Call::post(DISPATCHES, &[&id]).body(&body).once())
                .await?;
        }
        match reply.status {
            StatusCode::OK => Ok(serde_json::from_slice(&reply.body).unwrap_or_else(|e| {
                // The run was dispatched; failing now would invite a second dispatch.
                // Without the details the caller correlates by title instead.
                tracing::warn!(error = %e, "dispatch answer without readable run details");
                DispatchOutcome::default()
            })),
            status if status.is_success() => Ok(DispatchOutcome::default()),
            StatusCode::NOT_FOUND => Err(self.workflow_not_found(&id)),
            _ => Err(self.failure(&reply, needs::ACTIONS_WRITE)),
        }
    }

    /// One lookup for the run a dispatch started: among the runs created since
    /// `dispatched_after` (less [`CORRELATION_SKEW`]), the newest whose `display_title`
    /// contains `correlation_id`. Never returns a run without that id in its title.
    pub async fn find_correlated_run(
        &self,
        workflow_id: u64,
        correlation_id: &str,
        dispatched_after: DateTime<Utc>,
    ) -> Result<Option<WorkflowRun>, GitHubError> {
        // An empty id is contained in every title.
        if correlation_id.trim().is_empty() {
            return Ok(None);
        }
        let since = dispatched_after - chrono::Duration::seconds(CORRELATION_SKEW.as_secs() as i64);
        let runs = self
            .list_runs(workflow_id, None, Some(since), CORRELATION_SCAN)
            .await?;
        Ok(runs.into_iter().find(|run| {
            run.display_title.contains(correlation_id)
                && run.created_at.is_none_or(|created| created >= since)
        }))
    }

    /// Repeats [`GitHubClient::find_correlated_run`] every `poll` until it finds the run
    /// or `timeout` (or the client's deadline) passes; then `Ok(None)`, or the last error
    /// when the last lookup failed. Transient errors in between are tolerated.
    pub async fn wait_for_correlated_run(
        &self,
        workflow_id: u64,
        correlation_id: &str,
        dispatched_after: DateTime<Utc>,
        timeout: Duration,
        poll: Duration,
    ) -> Result<Option<WorkflowRun>, GitHubError> {
        // A zero poll would hammer GitHub until the timeout.
        let poll = poll.max(Duration::from_secs(1));
        let mut give_up = Instant::now() + timeout;
        if let Some(deadline) = self.effective_deadline() {
            give_up = give_up.min(deadline);
        }
        loop {
            let last_error = match self
                .find_correlated_run(workflow_id, correlation_id, dispatched_after)
                .await
            {
                Ok(Some(run)) => return Ok(Some(run)),
                Ok(None) => None,
                Err(e) if e.is_transient() => Some(e),
                Err(e) => return Err(e),
            };
            if Instant::now() + poll > give_up {
                return match last_error {
                    Some(e) => Err(e),
                    None => Ok(None),
                };
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// The last `max_lines` lines of a job's log that explain its failure: of the step
    /// `step_name` when its section can be found, ending at the last `##[error]` line,
    /// timestamps and colour codes removed, token-like strings redacted. GitHub answers
    /// with a redirect to short-lived blob storage; the token is not sent there.
    pub async fn job_log_tail(
        &self,
        job_id: u64,
        step_name: Option<&str>,
        max_lines: usize,
    ) -> Result<Vec<String>, GitHubError> {
        let id = job_id.to_string();
        let args = [id.as_str()];
        let call = Call::get(JOB_LOGS, &args).keep_tail(LOG_TAIL_BYTES);
        let reply = self.success(self.call(&call).await?, needs::ACTIONS_READ)?;
        let text = String::from_utf8_lossy(&reply.body);
        Ok(super::logs::tail(
            &text,
            step_name,
            max_lines,
            reply.truncated,
        ))
    }

    /// The token's scopes, write access to the repository, and remaining quota.
    pub async fn token_info(&self) -> Result<TokenInfo, GitHubError> {
        let reply = self.call(&Call::get(REPO, &[])).await?;
        let reply = self.success(reply, needs::ACTIONS_READ)?;
        let scopes = reply
            .headers
            .get("x-oauth-scopes")
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            });
        let access: RepoAccess = reply.json()?;
        Ok(TokenInfo {
            scopes,
            can_push: access.permissions.and_then(|p| p.push),
            rate_remaining: header_u64(&reply.headers, "x-ratelimit-remaining"),
        })
    }

    /// The text of the file at `path` on the default branch, or `None` when there is no
    /// such file (a directory or a submodule counts as none).
    pub async fn file_text(&self, path: &str) -> Result<Option<String>, GitHubError> {
        let reply = self.call(&Call::get(CONTENTS, &[path])).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let file: ContentFile = self.success(reply, needs::CONTENTS_READ)?.json()?;
        if file.kind.as_deref() != Some("file") {
            return Ok(None);
        }
        let undecodable = |detail: String| GitHubError::Decode { detail };
        match file.encoding.as_deref() {
            Some("base64") => {
                use base64::Engine;
                let packed: String = file
                    .content
                    .unwrap_or_default()
                    .split_whitespace()
                    .collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(packed)
                    .map_err(|e| undecodable(format!("{path}: {e}")))?;
                if bytes.len() > MAX_FILE_BYTES {
                    return Err(undecodable(format!("{path} is larger than 1 MB")));
                }
                String::from_utf8(bytes)
                    .map(Some)
                    .map_err(|e| undecodable(format!("{path} is not UTF-8 text: {e}")))
            }
            other => Err(undecodable(format!(
                "{path} came with encoding {}",
                other.unwrap_or("(none)")
            ))),
        }
    }

    /// The repository's webhooks (first 100: a repository has at most 20).
    pub async fn list_hooks(&self) -> Result<Vec<Hook>, GitHubError> {
        let query = [("per_page", MAX_PER_PAGE.to_string())];
        let reply = self.call(&Call::get(HOOKS, &[]).query(&query)).await?;
        self.success(reply, needs::HOOKS_READ)?.json()
    }

    /// Sets the Actions variable `name` (updates it, or creates it when it is missing).
    pub async fn set_repo_variable(&self, name: &str, value: &str) -> Result<(), GitHubError> {
        let body = serde_json::json!({"name": name, "value": value});
        let args = [name];
        let update = Call::new(Method::PATCH, VARIABLE, &args).body(&body);
        let reply = self.call(&update).await?;
        if reply.status != StatusCode::NOT_FOUND {
            return self.success(reply, needs::VARIABLES_WRITE).map(drop);
        }
        let reply = self.call(&Call::post(VARIABLES, &[]).body(&body)).await?;
        if reply.status == StatusCode::CONFLICT {
            // Created meanwhile (by another worker, or by a create whose answer was
            // lost and retried): update it after all.
            let reply = self.call(&update).await?;
            return self.success(reply, needs::VARIABLES_WRITE).map(drop);
        }
        self.success(reply, needs::VARIABLES_WRITE).map(drop)
    }

    /// Sets the Actions secret `name`, sealed with the repository's public key; the
    /// value leaves this process only in sealed form.
    pub async fn set_repo_secret(
        &self,
        name: &str,
        value: &SecretString,
    ) -> Result<(), GitHubError> {
        let key = self.repo_public_key().await?;
        self.put_repo_secret(name, &key, value).await
    }

    /// The public key secrets are sealed with (a read).
    pub async fn repo_public_key(&self) -> Result<RepoPublicKey, GitHubError> {
        let reply = self.call(&Call::get(SECRETS_PUBLIC_KEY, &[])).await?;
        self.success(reply, needs::SECRETS_WRITE)?.json()
    }

    /// Writes the secret `name` sealed with `key` (from [`GitHubClient::repo_public_key`]).
    pub async fn put_repo_secret(
        &self,
        name: &str,
        key: &RepoPublicKey,
        value: &SecretString,
    ) -> Result<(), GitHubError> {
        let sealed = super::seal::seal(&key.key, value.expose_secret().as_bytes())?;
        let body = serde_json::json!({"encrypted_value": sealed, "key_id": key.key_id});
        let reply = self
            .call(&Call::new(Method::PUT, SECRET, &[name]).body(&body))
            .await?;
        self.success(reply, needs::SECRETS_WRITE).map(drop)
    }

    /// The path a request to `template` goes to, for DRY_RUN descriptions.
    fn path_of(&self, template: &str, args: &[&str]) -> String {
        self.url(template, args)
            .map(|u| u.path().to_owned())
            .unwrap_or_else(|_| template.to_owned())
    }

    /// DRY_RUN description of [`GitHubClient::dispatch_workflow`] (its first request).
    pub fn dispatch_mutation(
        &self,
        workflow_id: u64,
        git_ref: &str,
        inputs: &Map<String, Value>,
    ) -> Mutation {
        let id = workflow_id.to_string();
        Mutation::new(
            format!("dispatch workflow {workflow_id} at {git_ref}"),
            "POST",
            self.path_of(DISPATCHES, &[&id]),
        )
        .with_body(serde_json::json!({
            "ref": git_ref,
            "inputs": inputs,
            "return_run_details": true,
        }))
    }

    /// DRY_RUN description of [`GitHubClient::cancel_run`].
    pub fn cancel_run_mutation(&self, run_id: u64) -> Mutation {
        let id = run_id.to_string();
        Mutation::new(
            format!("cancel run {run_id}"),
            "POST",
            self.path_of(RUN_CANCEL, &[&id]),
        )
    }

    /// DRY_RUN description of [`GitHubClient::rerun_failed_jobs`].
    pub fn rerun_failed_jobs_mutation(&self, run_id: u64) -> Mutation {
        let id = run_id.to_string();
        Mutation::new(
            format!("re-run the failed jobs of run {run_id}"),
            "POST",
            self.path_of(RUN_RERUN_FAILED, &[&id]),
        )
    }

    /// DRY_RUN description of [`GitHubClient::rerun_run`].
    pub fn rerun_run_mutation(&self, run_id: u64) -> Mutation {
        let id = run_id.to_string();
        Mutation::new(
            format!("re-run run {run_id}"),
            "POST",
            self.path_of(RUN_RERUN, &[&id]),
        )
    }

    /// DRY_RUN description of [`GitHubClient::set_repo_variable`] (the update it tries
    /// first; a missing variable is then created with `POST …/variables`).
    pub fn set_repo_variable_mutation(&self, name: &str, value: &str) -> Mutation {
        Mutation::new(
            format!("set repo variable {name}"),
            "PATCH",
            self.path_of(VARIABLE, &[name]),
        )
        .with_body(serde_json::json!({"name": name, "value": value}))
    }

    /// DRY_RUN description of [`GitHubClient::put_repo_secret`]; the sealed value is
    /// never part of it.
    pub fn put_repo_secret_mutation(&self, name: &str, key: &RepoPublicKey) -> Mutation {
        Mutation::new(
            format!("set repo secret {name}"),
            "PUT",
            self.path_of(SECRET, &[name]),
        )
        .with_body(serde_json::json!({"encrypted_value": "[REDACTED]", "key_id": key.key_id}))
    }

    /// Reads a list endpoint to its end (short page, `total_count`, or [`MAX_PAGES`]).
    async fn collect_pages<L, T>(
        &self,
        template: &'static str,
        args: &[&str],
        mut query: Vec<(&'static str, String)>,
        split: impl Fn(L) -> (u64, Vec<T>),
    ) -> Result<Vec<T>, GitHubError>
    where
        L: DeserializeOwned,
    {
        query.push(("per_page", MAX_PER_PAGE.to_string()));
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut paged = query.clone();
            paged.push(("page", page.to_string()));
            let reply = self.call(&Call::get(template, args).query(&paged)).await?;
            let (total, batch) = split(self.success(reply, needs::ACTIONS_READ)?.json()?);
            let short = batch.len() < MAX_PER_PAGE;
            items.extend(batch);
            if short || items.len() as u64 >= total {
                break;
            }
        }
        Ok(items)
    }

    /// The reply if it is a success, else the user-facing error for its status.
    fn success(&self, reply: Reply, needs: &'static str) -> Result<Reply, GitHubError> {
        if reply.status.is_success() {
            Ok(reply)
        } else {
            Err(self.failure(&reply, needs))
        }
    }

    /// The error for a final (not retried) failure answer.
    fn failure(&self, reply: &Reply, needs: &'static str) -> GitHubError {
        match reply.status {
            // With an App, `call` already fetched a new token once.
            StatusCode::UNAUTHORIZED => match self.inner.auth {
                Auth::Token { .. } => GitHubError::Unauthorized,
                Auth::App(_) => GitHubError::AppCredentialsRefused,
            },
            StatusCode::FORBIDDEN => GitHubError::Permission { needs },
            StatusCode::NOT_FOUND => GitHubError::NotFound {
                message: self.message(reply),
            },
            status => GitHubError::Api {
                status: status.as_u16(),
                message: self.message(reply),
            },
        }
    }

    /// GitHub's `message`, else the status reason; scrubbed of the token and shortened.
    fn message(&self, reply: &Reply) -> String {
        let quoted = serde_json::from_slice::<ErrorBody>(&reply.body)
            .ok()
            .and_then(|body| body.message)
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| {
                reply
                    .status
                    .canonical_reason()
                    .unwrap_or("error")
                    .to_owned()
            });
        let scrubbed = match &self.inner.auth {
            Auth::Token { token, .. } => {
                crate::secret::scrub(quoted.trim(), &[token.expose_secret()])
            }
            Auth::App(app) => {
                let shown = app.shown.lock().unwrap_or_else(|e| e.into_inner());
                let secrets: Vec<&str> = shown.iter().map(|t| t.expose_secret()).collect();
                crate::secret::scrub(quoted.trim(), &secrets)
            }
        };
        truncate(&scrubbed, MAX_MESSAGE_CHARS)
    }

    /// The API base as configured, for messages (`https://api.github.com`,
    /// `https://ghe.example.com/api/v3`).
    fn base_text(&self) -> String {
        self.inner.base.as_str().trim_end_matches('/').to_owned()
    }

    /// The URL of `template` under the API base, `{owner}`/`{repo}` filled from the
    /// repository and other placeholders from `args` in order. Segments are
    /// percent-encoded, so a workflow file name cannot escape its path.
    fn url(&self, template: &str, args: &[&str]) -> Result<Url, GitHubError> {
        let mut url = self.inner.base.clone();
        let mut args = args.iter();
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| GitHubError::Config("GITHUB_API_BASE cannot take a path".into()))?;
            segments.pop_if_empty();
            for part in template.trim_start_matches('/').split('/') {
                let value = match part {
                    "{owner}" => self.inner.repo.owner(),
                    "{repo}" => self.inner.repo.name(),
                    // A file path keeps its directories; each part is still encoded.
                    "{path}" => {
                        let path = args.next().copied().unwrap_or_default();
                        segments.extend(path.split('/').filter(|p| !p.is_empty()));
                        continue;
                    }
                    p if p.starts_with('{') => args.next().copied().unwrap_or_default(),
                    p => p,
                };
                segments.push(value);
            }
        }
        debug_assert!(
            args.next().is_none(),
            "more arguments than placeholders in {template}"
        );
        Ok(url)
    }

    /// Sends `call` authenticated, retrying as `docs/design.md#github-calls` allows.
    /// Returns every answer that is not retried (successes and final 4xx alike) for the
    /// caller to interpret; errors are the retries' end: rate limits, unavailability,
    /// transport failures. With an App, a 401 fetches a new installation token and
    /// sends once more (GitHub may revoke a token before its hour is up); a 401 that
    /// persists is returned like any other.
    async fn call(&self, call: &Call<'_>) -> Result<Reply, GitHubError> {
        let app = match &self.inner.auth {
            Auth::Token { header, .. } => return self.send(call, header).await,
            Auth::App(app) => app,
        };
        let token = self.installation_token(app, None).await?;
        let reply = self.send(call, &bearer(&token.token)?).await?;
        if reply.status != StatusCode::UNAUTHORIZED {
            return Ok(reply);
        }
        tracing::info!(
            github_endpoint = format!("{} {}", call.method, call.template),
            "installation token refused; fetching a new one and sending once more"
        );
        let token = self.installation_token(app, Some(token.grant)).await?;
        self.send(call, &bearer(&token.token)?).await
    }

    /// The installation token to send: the current one while it is fresh and not the
    /// grant `refused`, else a new one (finding the installation first if needed).
    /// Concurrent callers wait for one refresh.
    async fn installation_token(
        &self,
        app: &AppAuth,
        refused: Option<u64>,
    ) -> Result<InstallationToken, GitHubError> {
        let mut state = app.state.lock().await;
        if let Some(token) = state.usable(app.clock.now(), refused) {
            return Ok(token);
        }
        let jwt = app
            .credentials
            .key
            .jwt(&app.credentials.app_id, app.clock.now())
            .map_err(|e| GitHubError::Config(e.to_string()))?;
        let jwt = bearer(&jwt)?;
        let not_installed = || GitHubError::AppNotInstalled {
            repo: self.inner.repo.to_string(),
        };
        let installation_id = match state.installation_id.or(app.credentials.installation_id) {
            Some(id) => id,
            None => {
                let reply = self.send(&Call::get(INSTALLATION, &[]), &jwt).await?;
                let found: Installation = match reply.status {
                    StatusCode::UNAUTHORIZED => return Err(GitHubError::AppCredentialsRefused),
                    StatusCode::NOT_FOUND => return Err(not_installed()),
                    _ => self.success(reply, needs::ACTIONS_READ)?.json()?,
                };
                state.installation_id = Some(found.id);
                found.id
            }
        };
        let id = installation_id.to_string();
        let args = [id.as_str()];
        let exchange = Call::post(ACCESS_TOKENS, &args).not_a_change();
        let reply = self.send(&exchange, &jwt).await?;
        let grant: TokenGrant = match reply.status {
            StatusCode::UNAUTHORIZED => return Err(GitHubError::AppCredentialsRefused),
            StatusCode::NOT_FOUND => return Err(not_installed()),
            status if status.is_success() => reply.json()?,
            // A suspended App, an installation without access: GitHub says which.
            status => {
                return Err(GitHubError::Api {
                    status: status.as_u16(),
                    message: self.message(&reply),
                });
            }
        };
        let token = state.replace(grant, installation_id);
        *app.shown.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.token.clone());
        tracing::info!(
            installation_id,
            expires_at = %token.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "GitHub App installation token obtained"
        );
        Ok(token)
    }

    /// Sends `call` with the `Authorization` header `auth`, retrying as allowed.
    async fn send(&self, call: &Call<'_>, auth: &HeaderValue) -> Result<Reply, GitHubError> {
        let url = self.url(call.template, call.args)?;
        let endpoint = format!("{} {}", call.method, call.template);
        if self.dry_run && call.method != Method::GET && call.changes {
            tracing::error!(
                github_endpoint = endpoint,
                error.type = "dry_run_bypassed",
                error.message = "a mutating request skipped the DRY_RUN gate",
                "GitHub call refused: DRY_RUN is on"
            );
            return Err(GitHubError::DryRun { endpoint });
        }
        let http = self
            .inner
            .http
            .get()
            .map_err(|e| GitHubError::Config(format!("cannot build the HTTP client: {e}")))?;
        let mut backoff = self.policy.backoff();
        let mut retry = 0;
        loop {
            let outcome = self.attempt(http, call, &url, &endpoint, auth).await;
            let (error, wait) = match self.judge(outcome, call.resend) {
                Verdict::Done(reply) => return Ok(reply),
                Verdict::Fail(error) => return Err(error),
                Verdict::Retry { error, wait } => (error, wait),
            };
            let Some(backoff_delay) = backoff.next() else {
                return Err(error);
            };
            let wait = wait.unwrap_or(backoff_delay);
            if !self.may_wait(wait) {
                return Err(error);
            }
            retry += 1;
            let reason = match &error {
                GitHubError::RateLimited { retry_at } => RetryReason::RateLimited {
                    retry_at: *retry_at,
                },
                _ => RetryReason::NotAnswering,
            };
            super::retry::notify(&RetryNotice {
                retry,
                of: self.policy.max_retries,
                reason,
            });
            tokio::time::sleep(wait).await;
        }
    }

    /// Whether a wait fits before the deadline and under the policy's longest wait.
    fn may_wait(&self, wait: Duration) -> bool {
        wait <= self.policy.max_wait
            && self
                .effective_deadline()
                .is_none_or(|deadline| Instant::now() + wait <= deadline)
    }

    /// This clone's deadline, else the deadline of the job the call runs in (set by the
    /// job runner: a wait longer than the time left for the job fails at once with the
    /// retry-after message instead of outliving the job).
    fn effective_deadline(&self) -> Option<Instant> {
        self.deadline.or_else(crate::clock::deadline)
    }

    /// One HTTP exchange, logged.
    async fn attempt(
        &self,
        http: &reqwest::Client,
        call: &Call<'_>,
        url: &Url,
        endpoint: &str,
        auth: &HeaderValue,
    ) -> Result<Reply, reqwest::Error> {
        let started = Instant::now();
        let mut request = http
            .request(call.method.clone(), url.clone())
            .header(AUTHORIZATION, auth.clone());
        if !call.query.is_empty() {
            request = request.query(call.query);
        }
        if let Some(body) = call.body {
            request = request.json(body);
        }
        let outcome: Result<Reply, reqwest::Error> = async {
            let mut response = request.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let Some(keep) = call.keep_tail else {
                let body = response.bytes().await?;
                return Ok(Reply {
                    status,
                    headers,
                    body,
                    truncated: false,
                });
            };
            let mut body = Vec::new();
            let mut truncated = false;
            while let Some(chunk) = response.chunk().await? {
                body.extend_from_slice(&chunk);
                // Trim in batches, not per chunk, to keep the copying linear.
                if body.len() > 2 * keep {
                    body.drain(..body.len() - keep);
                    truncated = true;
                }
            }
            if body.len() > keep {
                body.drain(..body.len() - keep);
                truncated = true;
            }
            Ok(Reply {
                status,
                headers,
                body: body.into(),
                truncated,
            })
        }
        .await
        // The URL holds no secret, but the query is not part of the log contract.
        .map_err(reqwest::Error::without_url);
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &outcome {
            Ok(reply) => {
                let remaining = header_u64(&reply.headers, "x-ratelimit-remaining");
                let status = reply.status.as_u16();
                crate::metrics::github_request(Some(status), remaining);
                if reply.status.is_success() {
                    // INFO: operators follow a command's GitHub calls by trace id.
                    tracing::info!(
                        github_status = status,
                        github_endpoint = endpoint,
                        github_rate_remaining = remaining,
                        github_duration_ms = elapsed_ms,
                        "GitHub call"
                    );
                } else {
                    tracing::warn!(
                        github_status = status,
                        github_endpoint = endpoint,
                        github_rate_remaining = remaining,
                        github_duration_ms = elapsed_ms,
                        "GitHub call failed"
                    );
                }
            }
            Err(e) => {
                crate::metrics::github_request(None, None);
                // reqwest's own text ("error sending request") hides the cause.
                tracing::warn!(
                    github_endpoint = endpoint,
                    github_duration_ms = elapsed_ms,
                    error.type = "github_unavailable",
                    error.message = %format_args!("{}: {e}", unreachable_cause(e)),
                    "GitHub call failed"
                )
            }
        }
        outcome
    }

    /// Whether an attempt's outcome is final, or worth another attempt after a wait.
    fn judge(&self, outcome: Result<Reply, reqwest::Error>, resend: Resend) -> Verdict {
        let reply = match outcome {
            Ok(reply) => reply,
            Err(e) if e.is_builder() => {
                return Verdict::Fail(GitHubError::Config(format!("invalid request: {e}")));
            }
            Err(e) => {
                let cause = unreachable_cause(&e);
                // A failed connect never sent the request; a timeout or a broken
                // connection may have.
                let reached = !e.is_connect();
                let error = GitHubError::Unreachable {
                    base: self.base_text(),
                    cause,
                    source: e,
                };
                return if reached && resend == Resend::IfNotSent {
                    Verdict::Fail(error)
                } else {
                    Verdict::Retry { error, wait: None }
                };
            }
        };
        let now = Utc::now();
        if matches!(
            reply.status,
            StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
        ) {
            let message = self.message(&reply);
            if let Some(limit) = rate_limit_wait(reply.status, &reply.headers, &message, now) {
                let error = GitHubError::RateLimited {
                    retry_at: limit.retry_at,
                };
                return match resend {
                    Resend::Always => Verdict::Retry {
                        error,
                        wait: Some(limit.wait),
                    },
                    Resend::IfNotSent => Verdict::Fail(error),
                };
            }
        }
        if reply.status.is_server_error() {
            let error = GitHubError::Unavailable {
                status: Some(reply.status.as_u16()),
                detail: format!("HTTP {}: {}", reply.status.as_u16(), self.message(&reply)),
            };
            return match resend {
                Resend::Always => Verdict::Retry {
                    error,
                    wait: retry_after(&reply.headers, now),
                },
                Resend::IfNotSent => Verdict::Fail(error),
            };
        }
        if is_html(&reply) {
            return Verdict::Fail(GitHubError::NotJson {
                status: reply.status.as_u16(),
                base: self.base_text(),
            });
        }
        Verdict::Done(reply)
    }
}

/// An `Authorization: Bearer` header, marked sensitive: hidden from `Debug`, and dropped
/// by reqwest on cross-host redirects (job logs redirect to blob storage).
fn bearer(token: &SecretString) -> Result<HeaderValue, GitHubError> {
    let mut header = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret().trim()))
        .map_err(|_| {
            GitHubError::Config(
                "the GitHub token contains characters not allowed in a header".into(),
            )
        })?;
    header.set_sensitive(true);
    Ok(header)
}

fn token_auth(token: SecretString) -> Result<Auth, GitHubError> {
    if token.expose_secret().trim().is_empty() {
        return Err(GitHubError::Config("GITHUB_TOKEN is empty".into()));
    }
    Ok(Auth::Token {
        header: bearer(&token)?,
        token,
    })
}

fn app_auth(credentials: AppCredentials, clock: Clock) -> Auth {
    Auth::App(Box::new(AppAuth {
        credentials,
        clock,
        state: tokio::sync::Mutex::new(TokenState::default()),
        shown: Mutex::new(None),
    }))
}

/// Why a request got no answer, read from the error and its causes: reqwest's own
/// text ("error sending request") names none of them.
fn unreachable_cause(error: &reqwest::Error) -> Unreachable {
    if error.is_timeout() {
        return Unreachable::Timeout;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current.downcast_ref::<rustls::Error>().is_some() {
            return Unreachable::Tls;
        }
        // hyper-util's resolver error has no type of its own to match on.
        let text = current.to_string().to_ascii_lowercase();
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return Unreachable::NameNotResolved;
        }
        cause = match current.downcast_ref::<std::io::Error>() {
            Some(io) => {
                match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => return Unreachable::Refused,
                    std::io::ErrorKind::TimedOut => return Unreachable::Timeout,
                    _ => {}
                }
                // An io::Error's `source()` skips the error it wraps (rustls wraps its
                // own, sometimes twice): step into it instead.
                match io.get_ref() {
                    Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                    None => current.source(),
                }
            }
            None => current.source(),
        };
    }
    Unreachable::Other
}

/// Whether an answer is a web page: a proxy's error or login page, or a base URL that
/// names a website instead of the API. Job logs are plain text, never HTML.
fn is_html(reply: &Reply) -> bool {
    let declared = reply
        .headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("html"));
    let start: Vec<u8> = reply
        .body
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take(9)
        .map(u8::to_ascii_lowercase)
        .collect();
    declared || start.starts_with(b"<!doctype") || start.starts_with(b"<html")
}

/// When a request may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// Reads and idempotent writes: after any retryable failure.
    Always,
    /// Dispatches and re-runs: only after a connection error, when the request certainly
    /// never reached GitHub.
    IfNotSent,
}

/// One request, described once for the retry loop and the log line.
struct Call<'a> {
    method: Method,
    /// Path template, as in GitHub's OpenAPI description; logged as `github_endpoint`.
    template: &'static str,
    args: &'a [&'a str],
    query: &'a [(&'static str, String)],
    body: Option<&'a Value>,
    resend: Resend,
    /// Whether the request changes the repository; DRY_RUN refuses those that do. An
    /// App's token exchange is a `POST` that changes nothing.
    changes: bool,
    /// Keep only the last bytes of the body (job logs can be many megabytes).
    keep_tail: Option<usize>,
}

impl<'a> Call<'a> {
    fn new(method: Method, template: &'static str, args: &'a [&'a str]) -> Self {
        Call {
            method,
            template,
            args,
            query: &[],
            body: None,
            resend: Resend::Always,
            changes: true,
            keep_tail: None,
        }
    }

    fn get(template: &'static str, args: &'a [&'a str]) -> Self {
        Call::new(Method::GET, template, args)
    }

    fn post(template: &'static str, args: &'a [&'a str]) -> Self {
        Call::new(Method::POST, template, args)
    }

    fn keep_tail(self, bytes: usize) -> Self {
        Call {
            keep_tail: Some(bytes),
            ..self
        }
    }

    fn query(self, query: &'a [(&'static str, String)]) -> Self {
        Call { query, ..self }
    }

    fn body(self, body: &'a Value) -> Self {
        Call {
            body: Some(body),
            ..self
        }
    }

    fn not_a_change(self) -> Self {
        Call {
            changes: false,
            ..self
        }
    }

    fn once(self) -> Self {
        Call {
            resend: Resend::IfNotSent,
            ..self
        }
    }
}

/// An answer read to the end.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    /// Only the end of the body was kept ([`Call::keep_tail`]).
    truncated: bool,
}

impl Reply {
    fn json<T: DeserializeOwned>(&self) -> Result<T, GitHubError> {
        serde_json::from_slice(&self.body).map_err(|e| GitHubError::Decode {
            detail: e.to_string(),
        })
    }
}

enum Verdict {
    Done(Reply),
    Fail(GitHubError),
    Retry {
        error: GitHubError,
        wait: Option<Duration>,
    },
}

/// Whether a 403's message is about the token's permissions (then the token needs
/// more), rather than a refusal of this request for its own reason.
fn names_permissions(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "permission",
        "not accessible",
        "rights",
        "forbidden",
        "scope",
    ]
    .iter()
    .any(|word| message.contains(word))
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    //! Against a fake GitHub: a real HTTP server (axum) on 127.0.0.1:0, answering with the
    //! example bodies of GitHub's OpenAPI contract (`fixtures/`, copied from
    //! `contracts/github-actions-openapi.json`). The server runs on its own thread and
    //! runtime, so tests that pause tokio time only pause the client's clock.

    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::extract::State;
    use axum::http::{
        HeaderMap as AxumHeaders, Method as AxumMethod, StatusCode as AxumStatus, Uri,
    };
    use axum::response::{IntoResponse, Response};
    use serde_json::json;
    use tokio::sync::oneshot;

    use super::*;

    const TOKEN: &str = "ghp_FakeTokenThatMustNeverLeak1234";
    const REPO_PREFIX: &str = "/api/v3/repos/octo-org/octo-repo";

    /// A request as the fake saw it. `route` is the path below the repository
    /// (`/actions/runs/1`), or the full path for other endpoints.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        route: String,
        query: HashMap<String, String>,
        headers: AxumHeaders,
        body: Value,
    }

    struct Answer {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Option<Value>,
    }

    impl Answer {
        fn json(status: u16, body: Value) -> Self {
            Answer {
                status,
                headers: Vec::new(),
                body: Some(body),
            }
        }
        fn text(status: u16, body: &str) -> Self {
            Answer {
                status,
                headers: Vec::new(),
                body: Some(Value::String(body.to_owned())),
            }
        }
        fn empty(status: u16) -> Self {
            Answer {
                status,
                headers: Vec::new(),
                body: None,
            }
        }
        fn error(status: u16, message: &str) -> Self {
            Answer::json(
                status,
                json!({"message": message, "documentation_url": "https://docs.github.com/rest",
                       "status": status.to_string()}),
            )
        }
        fn header(mut self, name: &'static str, value: impl ToString) -> Self {
            self.headers.push((name, value.to_string()));
            self
        }
    }

    type Responder = dyn Fn(&Seen, usize) -> Answer + Send + Sync;

    struct FakeState {
        seen: Mutex<Vec<Seen>>,
        responder: Box<Responder>,
    }

    struct FakeGitHub {
        addr: SocketAddr,
        state: Arc<FakeState>,
        shutdown: Option<oneshot::Sender<()>>,
    }

    impl FakeGitHub {
        /// Starts the fake; `respond(request, n)` answers the `n`-th request (from 0).
        fn start(respond: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static) -> Self {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let addr = listener.local_addr().unwrap();
            let state = Arc::new(FakeState {
                seen: Mutex::new(Vec::new()),
                responder: Box::new(respond),
            });
            let app = Router::new()
                .fallback(handle)
                .with_state(Arc::clone(&state));
            let (tx, rx) = oneshot::channel::<()>();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = rx.await;
                        })
                        .await;
                });
            });
            FakeGitHub {
                addr,
                state,
                shutdown: Some(tx),
            }
        }

        /// A client of `octo-org/octo-repo` behind an Enterprise-style `/api/v3` prefix.
        fn client(&self) -> GitHubClient {
            client_at(&format!("http://{}/api/v3", self.addr))
        }

        fn seen(&self) -> Vec<Seen> {
            self.state.seen.lock().unwrap().clone()
        }
    }

    impl Drop for FakeGitHub {
        fn drop(&mut self) {
            if let Some(tx) = self.shutdown.take() {
                let _ = tx.send(());
            }
        }
    }

    async fn handle(
        State(state): State<Arc<FakeState>>,
        method: AxumMethod,
        uri: Uri,
        headers: AxumHeaders,
        body: axum::body::Bytes,
    ) -> Response {
        let path = uri.path().to_owned();
        let query = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        let seen = Seen {
            method: method.to_string(),
            route: path.strip_prefix(REPO_PREFIX).unwrap_or(&path).to_owned(),
            path,
            query,
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        };
        let n = {
            let mut all = state.seen.lock().unwrap();
            all.push(seen.clone());
            all.len() - 1
        };
        let answer = (state.responder)(&seen, n);
        let status = AxumStatus::from_u16(answer.status).unwrap();
        let mut response = match answer.body {
            Some(Value::String(text)) => (status, text).into_response(),
            Some(body) => (status, axum::Json(body)).into_response(),
            None => status.into_response(),
        };
        for (name, value) in answer.headers {
            response.headers_mut().insert(name, value.parse().unwrap());
        }
        response
    }

    fn fixture(name: &str) -> Value {
        let text = match name {
            "workflow" => include_str!("fixtures/workflow.json"),
            "workflows" => include_str!("fixtures/workflows.json"),
            "workflow_run" => include_str!("fixtures/workflow_run.json"),
            "jobs" => include_str!("fixtures/jobs.json"),
            "rate_limit" => include_str!("fixtures/rate_limit.json"),
            "dispatch" => include_str!("fixtures/dispatch.json"),
            "repository" => include_str!("fixtures/repository.json"),
            "public_key" => include_str!("fixtures/public_key.json"),
            other => panic!("no fixture {other}"),
        };
        serde_json::from_str(text).unwrap()
    }

    /// The contract's run example with our id, creation time and title.
    fn run(id: u64, created_at: DateTime<Utc>, title: &str) -> Value {
        let mut run = fixture("workflow_run");
        run["id"] = json!(id);
        run["created_at"] = json!(created_at.to_rfc3339_opts(SecondsFormat::Secs, true));
        run["display_title"] = json!(title);
        run
    }

    fn runs_page(runs: Vec<Value>, total: usize) -> Value {
        json!({"total_count": total, "workflow_runs": runs})
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn minutes(n: i64) -> chrono::Duration {
        chrono::Duration::minutes(n)
    }

    fn inputs() -> Map<String, Value> {
        let Value::Object(map) = json!({"correlation_id": "c0ffee", "requester": "42"}) else {
            unreachable!()
        };
        map
    }

    #[tokio::test]
    async fn every_request_carries_github_headers_under_the_enterprise_prefix() {
        let fake = FakeGitHub::start(|_, _| Answer::json(200, fixture("rate_limit")));
        let core = fake.client().rate_limit().await.unwrap();
        assert_eq!((core.limit, core.remaining), (5000, 4999));
        assert_eq!(core.reset.unwrap().timestamp(), 1691591363);

        let seen = fake.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            (seen[0].method.as_str(), seen[0].path.as_str()),
            ("GET", "/api/v3/rate_limit")
        );
        let header = |name: &str| {
            seen[0]
                .headers
                .get(name)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(header("authorization"), format!("Bearer {TOKEN}"));
        assert_eq!(header("accept"), "application/vnd.github+json");
        assert_eq!(header("x-github-api-version"), "2022-11-28");
        assert_eq!(header("user-agent"), "valine/1.2.3");
    }

    #[tokio::test]
    async fn debug_output_and_errors_never_show_the_token() {
        let fake =
            FakeGitHub::start(|_, _| Answer::error(401, &format!("Bad credentials for {TOKEN}")));
        let client = fake.client();
        assert!(!format!("{client:?}").contains(TOKEN));
        let err = client.get_run(1).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "GitHub token is invalid or expired — regenerate GITHUB_TOKEN"
        );
        assert_eq!(err.error_type(), "github_unauthorized");
        assert!(!format!("{err:?}").contains(TOKEN));

        let fake = FakeGitHub::start(|_, _| Answer::error(422, &format!("echo {TOKEN}")));
        let err = fake.client().cancel_run(1).await.unwrap_err();
        assert_eq!(err.to_string(), "GitHub API error 422: echo [REDACTED]");
    }

    #[tokio::test]
    async fn resolves_a_file_name_once_for_all_clones() {
        let fake = FakeGitHub::start(|seen, _| match seen.route.as_str() {
            "/actions/workflows/client-deploy.yml" => Answer::json(200, fixture("workflow")),
            _ => Answer::error(404, "Not Found"),
        });
        let client = fake.client();
        let wf = client.resolve_workflow("client-deploy.yml").await.unwrap();
        assert_eq!((wf.id, wf.name.as_str()), (161335, "CI"));
        assert_eq!(wf.path, ".github/workflows/blank.yaml");
        let again = client
            .clone()
            .resolve_workflow("client-deploy.yml")
            .await
            .unwrap();
        assert_eq!(again, wf);
        assert_eq!(
            fake.seen().len(),
            1,
            "the second resolution comes from the cache"
        );

        // A path resolves by its file name.
        client
            .resolve_workflow(".github/workflows/client-deploy.yml")
            .await
            .unwrap();
        assert_eq!(fake.seen()[1].route, "/actions/workflows/client-deploy.yml");
    }

    #[tokio::test]
    async fn resolves_a_numeric_id() {
        let fake = FakeGitHub::start(|seen, _| match seen.route.as_str() {
            "/actions/workflows/161335" => Answer::json(200, fixture("workflow")),
            _ => Answer::error(404, "Not Found"),
        });
        assert_eq!(
            fake.client().resolve_workflow("161335").await.unwrap().id,
            161335
        );
    }

    #[tokio::test]
    async fn resolves_a_display_name_across_pages() {
        let fake = FakeGitHub::start(|seen, _| {
            assert_eq!(seen.route, "/actions/workflows");
            assert_eq!(seen.query["per_page"], "100");
            let workflows: Vec<Value> = match seen.query["page"].as_str() {
                "1" => (0..100)
                    .map(|i| json!({"id": i, "name": format!("wf {i}"), "path": format!(".github/workflows/{i}.yml"), "state": "active"}))
                    .collect(),
                _ => fixture("workflows")["workflows"].as_array().unwrap().clone(),
            };
            Answer::json(200, json!({"total_count": 102, "workflows": workflows}))
        });
        let wf = fake.client().resolve_workflow("Linter").await.unwrap();
        assert_eq!(
            (wf.id, wf.path.as_str()),
            (269289, ".github/workflows/linter.yaml")
        );
        assert_eq!(fake.seen().len(), 2);
    }

    #[tokio::test]
    async fn a_display_name_two_workflows_share_is_ambiguous() {
        let fake = FakeGitHub::start(|_, _| {
            let mut list = fixture("workflows");
            list["workflows"][1]["name"] = json!("CI");
            Answer::json(200, list)
        });
        let err = fake.client().resolve_workflow("CI").await.unwrap_err();
        assert_eq!(err.error_type(), "github_ambiguous_workflow");
        let text = err.to_string();
        assert!(text.contains(".github/workflows/blank.yaml"), "{text}");
        assert!(text.contains(".github/workflows/linter.yaml"), "{text}");
    }

    #[tokio::test]
    async fn an_unknown_workflow_says_where_to_look() {
        let fake = FakeGitHub::start(|seen, _| match seen.route.as_str() {
            "/actions/workflows" => Answer::json(200, fixture("workflows")),
            _ => Answer::error(404, "Not Found"),
        });
        let client = fake.client();
        let err = client.resolve_workflow("nope.yml").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "Workflow nope.yml not found in octo-org/octo-repo — check .github/workflows/"
        );
        assert_eq!(err.error_type(), "github_workflow_not_found");
        let err = client.resolve_workflow("Deploy client").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "Workflow Deploy client not found in octo-org/octo-repo — check .github/workflows/"
        );
        // Failures are not cached: a fixed repository is seen at the next try.
        client.resolve_workflow("nope.yml").await.unwrap_err();
        assert_eq!(fake.seen().len(), 3);
    }

    #[tokio::test]
    async fn list_runs_stops_paging_at_the_first_run_older_than_asked() {
        // `per_page` runs a page, one a minute apart, newest first; 1,000 in all.
        let fake = FakeGitHub::start(|seen, _| {
            let page: i64 = seen.query["page"].parse().unwrap();
            let per_page: i64 = seen.query["per_page"].parse().unwrap();
            let runs = (0..per_page)
                .map(|i| {
                    let n = (page - 1) * per_page + i;
                    run(10_000 - n as u64, t0() - minutes(n), &format!("run {n}"))
                })
                .collect();
            Answer::json(200, runs_page(runs, 1000))
        });
        let client = fake.client();
        let runs = client
            .list_runs(159038, Some("main"), None, 10)
            .await
            .unwrap();
        assert_eq!(runs.len(), 10, "the limit ends the list");
        assert_eq!(fake.seen().len(), 1);
        assert_eq!(fake.seen()[0].query["per_page"], "10");

        let after = t0() - minutes(130);
        let runs = client
            .list_runs(159038, Some("main"), Some(after), 500)
            .await
            .unwrap();
        assert_eq!(runs.len(), 131, "runs 0..=130 are at or after the bound");
        assert!(runs.iter().all(|r| r.created_at.unwrap() >= after));
        let seen = fake.seen();
        assert_eq!(
            seen.len(),
            3,
            "exactly 2 pages for the second call, of 10 available"
        );
        assert_eq!(seen[1].route, "/actions/workflows/159038/runs");
        assert_eq!(seen[1].query["branch"], "main");
        assert_eq!(seen[1].query["per_page"], "100");
        assert_eq!(seen[1].query["created"], ">=2026-03-01T09:50:00Z");
        assert_eq!(
            (
                seen[1].query["page"].as_str(),
                seen[2].query["page"].as_str()
            ),
            ("1", "2")
        );
    }

    #[tokio::test]
    async fn list_runs_stops_at_a_short_page() {
        let fake = FakeGitHub::start(|_, _| {
            Answer::json(
                200,
                runs_page(vec![run(2, t0(), "b"), run(1, t0() - minutes(1), "a")], 2),
            )
        });
        let runs = fake.client().list_runs(1, None, None, 30).await.unwrap();
        assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(fake.seen().len(), 1);
        assert!(!fake.seen()[0].query.contains_key("branch"));
        assert!(!fake.seen()[0].query.contains_key("created"));
        assert!(
            fake.client()
                .list_runs(1, None, None, 0)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(fake.seen().len(), 1, "a zero limit asks nothing");
    }

    #[tokio::test]
    async fn get_run_reads_the_contract_example_and_404_is_none() {
        let fake = FakeGitHub::start(|seen, _| match seen.route.as_str() {
            "/actions/runs/30433642" => Answer::json(200, fixture("workflow_run")),
            _ => Answer::error(404, "Not Found"),
        });
        let client = fake.client();
        let run = client.get_run(30433642).await.unwrap().unwrap();
        assert_eq!(run.workflow_id, 159038);
        assert_eq!(run.status.as_deref(), Some("queued"));
        assert_eq!(run.conclusion, None);
        assert_eq!(run.display_title, "Update README.md");
        assert_eq!(run.run_attempt, 1);
        assert!(run.run_started_at.is_some());
        assert_eq!(client.get_run(1).await.unwrap(), None);
    }

    #[tokio::test]
    async fn list_run_jobs_asks_for_the_latest_attempt() {
        let fake = FakeGitHub::start(|_, _| Answer::json(200, fixture("jobs")));
        let jobs = fake.client().list_run_jobs(29679449).await.unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].name, "build");
        assert_eq!(jobs[0].steps.len(), 10);
        assert_eq!(jobs[0].steps[7].name, "Deploy to Heroku");
        let seen = fake.seen();
        assert_eq!(seen.len(), 1, "total_count 1 ends the paging");
        assert_eq!(seen[0].route, "/actions/runs/29679449/jobs");
        assert_eq!(seen[0].query["filter"], "latest");
    }

    #[test]
    fn a_403_is_a_permission_problem_only_when_it_says_so() {
        assert!(names_permissions("Resource not accessible by integration"));
        assert!(names_permissions("Must have admin rights to Repository."));
        assert!(!names_permissions(
            "Unable to retry this workflow run because it was created over a month ago"
        ));
    }

    #[tokio::test]
    async fn cancel_and_rerun_post_to_their_endpoints() {
        let fake = FakeGitHub::start(|seen, _| match seen.route.as_str() {
            "/actions/runs/7/cancel" => Answer::json(202, json!({})),
            "/actions/runs/7/rerun-failed-jobs" => Answer::json(201, json!({})),
            _ => Answer::error(409, "Cannot cancel a workflow run that is completed."),
        });
        let client = fake.client();
        client.cancel_run(7).await.unwrap();
        client.rerun_failed_jobs(7).await.unwrap();
        let err = client.cancel_run(8).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "GitHub API error 409: Cannot cancel a workflow run that is completed."
        );
        assert!(fake.seen().iter().all(|s| s.method == "POST"));
    }

    #[tokio::test]
    async fn dispatch_returns_the_run_github_reports() {
        let fake = FakeGitHub::start(|_, _| Answer::json(200, fixture("dispatch")));
        let outcome = fake
            .client()
            .dispatch_workflow(161335, "main", &inputs())
            .await
            .unwrap();
        assert_eq!(outcome.run_id, Some(1));
        assert_eq!(
            outcome.html_url.as_deref(),
            Some("https://github.com/octo-org/octo-repo/actions/runs/1")
        );
        let seen = fake.seen();
        assert_eq!(seen[0].route, "/actions/workflows/161335/dispatches");
        assert_eq!(
            seen[0].body,
            json!({"ref": "main", "inputs": {"correlation_id": "c0ffee", "requester": "42"},
                   "return_run_details": true})
        );
    }

    #[tokio::test]
    async fn dispatch_drops_return_run_details_when_github_rejects_it() {
        let fake = FakeGitHub::start(|seen, _| {
            if seen.body.get("return_run_details").is_some() {
                Answer::error(
                    422,
                    "Invalid request.\n\n\"return_run_details\" is not a permitted key.",
                )
            } else {
                Answer::empty(204)
            }
        });
        let outcome = fake
            .client()
            .dispatch_workflow(161335, "main", &inputs())
            .await
            .unwrap();
        assert_eq!(outcome, DispatchOutcome::default());
        let seen = fake.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].body["return_run_details"], json!(true));
        assert_eq!(seen[1].body, json!({"ref": "main", "inputs": inputs()}));
    }

    #[tokio::test]
    async fn dispatch_answered_204_has_no_run() {
        let fake = FakeGitHub::start(|_, _| Answer::empty(204));
        let outcome = fake
            .client()
            .dispatch_workflow(161335, "main", &inputs())
            .await
            .unwrap();
        assert_eq!(outcome.run_id, None);
        assert_eq!(fake.seen().len(), 1);
    }

    #[tokio::test]
    async fn other_dispatch_refusals_quote_github_once() {
        let fake = FakeGitHub::start(|_, _| Answer::error(422, "No ref found for: nope"));
        let err = fake
            .client()
            .dispatch_workflow(1, "nope", &inputs())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "GitHub API error 422: No ref found for: nope"
        );
        assert_eq!(fake.seen().len(), 1);
    }

    #[tokio::test]
    async fn a_forbidden_dispatch_names_the_missing_permission() {
        let fake = FakeGitHub::start(|_, _| {
            Answer::error(403, "Resource not accessible by personal access token")
                .header("x-ratelimit-remaining", 4999)
        });
        let err = fake
            .client()
            .dispatch_workflow(1, "main", &inputs())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "GitHub token lacks permission (needs repo + workflow scopes, or Actions: write)"
        );
        assert_eq!(err.error_type(), "github_forbidden");
        assert_eq!(fake.seen().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dispatch_answered_502_is_not_sent_again() {
        let fake = FakeGitHub::start(|_, _| Answer::error(502, "Server Error"));
        let err = fake
            .client()
            .dispatch_workflow(1, "main", &inputs())
            .await
            .unwrap_err();
        assert!(err.is_transient());
        assert_eq!(err.error_type(), "github_unavailable");
        assert_eq!(fake.seen().len(), 1, "GitHub may have started the run");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dispatch_that_never_connected_is_retried() {
        // A port nobody listens on: the dispatch certainly did not reach GitHub.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let retries = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&retries);
        let observer: super::super::RetryObserver = Arc::new(move |_: &RetryNotice| {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let client = client_at(&format!("http://{addr}/api/v3"));
        let err =
            super::super::observe_retries(observer, client.dispatch_workflow(1, "main", &inputs()))
                .await
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot reach GitHub at http://{addr}/api/v3: connection refused")
        );
        assert_eq!(err.error_type(), "github_unavailable");
        assert!(err.is_transient());
        // The cause is kept for the log line.
        assert!(std::error::Error::source(&err).is_some());
        // Counted by the retry observer: log capture is per thread, and other tests
        // share this log line's callsite.
        assert_eq!(
            retries.load(Ordering::SeqCst),
            3,
            "the first attempt and 3 retries"
        );
    }

    /// A token client of `octo-org/octo-repo` at `base`, where nothing may listen.
    fn client_at(base: &str) -> GitHubClient {
        client_with(base, token_auth(SecretString::from(TOKEN)).unwrap())
    }

    /// A client of `octo-org/octo-repo` at `base`, without timeouts or pooled
    /// connections (see [`HttpSettings`]).
    fn client_with(base: &str, auth: Auth) -> GitHubClient {
        GitHubClient::build(
            Url::parse(base).unwrap(),
            auth,
            "octo-org/octo-repo".parse().unwrap(),
            "1.2.3",
            HttpSettings {
                timeout: None,
                pool: false,
            },
            RetryPolicy::default(),
        )
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_name_that_does_not_resolve_is_named_as_such() {
        // `.invalid` never resolves (RFC 6761), and resolvers answer so locally.
        let err = client_at("https://github.invalid/api/v3")
            .get_run(1)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot reach GitHub at https://github.invalid/api/v3: name not resolved"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_tls_failure_and_a_silent_server_are_named() {
        // HTTPS to a plain-HTTP server: the handshake fails.
        let fake = FakeGitHub::start(|_, _| Answer::json(200, fixture("workflow_run")));
        let base = format!("https://{}/api/v3", fake.addr);
        let err = client_at(&base).get_run(1).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot reach GitHub at {base}: TLS handshake failed")
        );

        // A server that takes the connection and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", silent.local_addr().unwrap());
        let client = GitHubClient::build(
            Url::parse(&base).unwrap(),
            token_auth(SecretString::from(TOKEN)).unwrap(),
            "octo-org/octo-repo".parse().unwrap(),
            "1.2.3",
            HttpSettings {
                timeout: Some(Duration::from_secs(10)),
                pool: false,
            },
            RetryPolicy::default(),
        )
        .unwrap();
        let err = client.get_run(1).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot reach GitHub at {base}: timed out")
        );
    }

    #[tokio::test]
    async fn an_html_page_points_at_the_api_base() {
        let fake = FakeGitHub::start(|_, _| {
            Answer::text(200, "<!DOCTYPE html><html><body>Sign in</body></html>")
                .header("content-type", "text/html; charset=utf-8")
        });
        let err = fake.client().get_run(1).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "GitHub answered HTML, not JSON (status 200) — check GITHUB_API_BASE (now http://{}/api/v3)",
                fake.addr
            )
        );
        assert_eq!(err.error_type(), "github_not_json");
        assert_eq!(fake.seen().len(), 1, "a web page is not retried");
        // A 404 page from a website is the same mistake, not a missing workflow.
        let fake = FakeGitHub::start(|_, _| Answer::text(404, "<html><h1>Not Found</h1></html>"));
        let err = fake
            .client()
            .resolve_workflow("deploy.yml")
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "github_not_json", "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn each_retry_is_told_to_the_observer() {
        let fake = FakeGitHub::start(|_, n| match n {
            0 | 1 => Answer::error(502, "Server Error"),
            _ => Answer::json(200, fixture("workflow_run")),
        });
        let notices = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&notices);
        let observer: super::super::RetryObserver = Arc::new(move |n: &RetryNotice| {
            seen.lock().unwrap().push(n.to_string());
        });
        let client = fake.client();
        super::super::observe_retries(observer, client.get_run(30433642))
            .await
            .unwrap();
        assert_eq!(
            *notices.lock().unwrap(),
            [
                "GitHub is not answering — retrying (1/3)…",
                "GitHub is not answering — retrying (2/3)…"
            ]
        );
        // Outside the observed task nobody is told, and nothing fails.
        client.get_run(30433642).await.unwrap();
        assert_eq!(notices.lock().unwrap().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn reads_survive_two_502s() {
        let fake = FakeGitHub::start(|_, n| match n {
            0 | 1 => Answer::error(502, "Server Error"),
            _ => Answer::json(200, fixture("workflow_run")),
        });
        let run = fake.client().get_run(30433642).await.unwrap();
        assert_eq!(run.unwrap().id, 30433642);
        assert_eq!(fake.seen().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn reads_give_up_after_three_retries() {
        let fake = FakeGitHub::start(|_, _| Answer::error(503, "Service Unavailable"));
        let err = fake.client().get_run(1).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "GitHub is unavailable: HTTP 503: Service Unavailable"
        );
        assert_eq!(fake.seen().len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_quota_waits_until_the_reset() {
        let reset = Utc::now().timestamp() + 120;
        let fake = FakeGitHub::start(move |_, n| match n {
            0 => Answer::error(403, "API rate limit exceeded for user ID 1.")
                .header("x-ratelimit-remaining", 0)
                .header("x-ratelimit-reset", reset),
            _ => Answer::json(200, fixture("workflow_run")),
        });
        let started = Instant::now();
        fake.client().get_run(30433642).await.unwrap();
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(119), "{waited:?}");
        assert!(waited <= Duration::from_secs(125), "{waited:?}");
        assert_eq!(fake.seen().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_secondary_limit_without_headers_waits_a_minute() {
        let fake = FakeGitHub::start(|_, n| match n {
            0 => Answer::error(
                403,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            ),
            _ => Answer::json(200, fixture("workflow_run")),
        });
        let started = Instant::now();
        fake.client().get_run(30433642).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_secs(60),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(fake.seen().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured() {
        let fake = FakeGitHub::start(|_, n| match n {
            0 => Answer::error(429, "Too Many Requests").header("retry-after", 7),
            _ => Answer::json(200, fixture("workflow_run")),
        });
        let started = Instant::now();
        fake.client().get_run(30433642).await.unwrap();
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(7) && waited < Duration::from_secs(8),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_deadline_fails_at_once() {
        let reset = Utc::now().timestamp() + 600;
        let fake = FakeGitHub::start(move |_, _| {
            Answer::error(403, "API rate limit exceeded for user ID 1.")
                .header("x-ratelimit-remaining", 0)
                .header("x-ratelimit-reset", reset)
        });
        let started = Instant::now();
        let client = fake
            .client()
            .with_deadline(started + Duration::from_secs(30));
        let err = client.get_run(1).await.unwrap_err();
        let hh_mm = DateTime::from_timestamp(reset, 0).unwrap().format("%H:%M");
        assert_eq!(
            err.to_string(),
            format!("GitHub rate limit: retry after {hh_mm} UTC")
        );
        assert_eq!(err.error_type(), "github_rate_limited");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(fake.seen().len(), 1);
    }

    #[tokio::test]
    async fn correlation_never_takes_an_older_or_uncorrelated_run() {
        let dispatched = t0();
        let fake = FakeGitHub::start(move |_, n| {
            let mut runs = vec![
                run(30, dispatched + minutes(1), "Deploy main by someone else"),
                run(20, dispatched - minutes(2), "Deploy c0ffee"), // before the dispatch
            ];
            if n > 0 {
                runs.insert(
                    1,
                    run(
                        25,
                        dispatched + chrono::Duration::seconds(3),
                        "Deploy c0ffee",
                    ),
                );
            }
            Answer::json(200, runs_page(runs, 3))
        });
        let client = fake.client();
        assert_eq!(
            client
                .find_correlated_run(159038, "c0ffee", dispatched)
                .await
                .unwrap(),
            None
        );
        let found = client
            .find_correlated_run(159038, "c0ffee", dispatched)
            .await
            .unwrap();
        assert_eq!(found.unwrap().id, 25);
        let seen = fake.seen();
        assert_eq!(
            seen.len(),
            2,
            "one request a lookup: the older run ends the paging"
        );
        assert_eq!(
            seen[0].query["created"], ">=2026-03-01T11:59:55Z",
            "5 s of clock skew"
        );
        assert_eq!(
            client
                .find_correlated_run(159038, " ", dispatched)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            fake.seen().len(),
            2,
            "an empty correlation id matches nothing"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_a_correlated_run_polls_until_it_appears_or_time_is_up() {
        let dispatched = t0();
        let lookups = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&lookups);
        let fake = FakeGitHub::start(move |seen, _| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let runs = if n >= 2 && seen.route.ends_with("/1/runs") {
                vec![run(9, dispatched + minutes(1), "deploy c0ffee")]
            } else {
                Vec::new()
            };
            Answer::json(200, runs_page(runs, 1))
        });
        let client = fake.client();
        let poll = Duration::from_secs(5);
        let started = Instant::now();
        let found = client
            .wait_for_correlated_run(1, "c0ffee", dispatched, Duration::from_secs(60), poll)
            .await
            .unwrap();
        assert_eq!(found.unwrap().id, 9);
        assert_eq!(started.elapsed(), Duration::from_secs(10));

        let started = Instant::now();
        let none = client
            .wait_for_correlated_run(2, "c0ffee", dispatched, Duration::from_secs(60), poll)
            .await
            .unwrap();
        assert_eq!(none, None);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        assert_eq!(
            lookups.load(Ordering::SeqCst),
            3 + 13,
            "polls at 0, 5, …, 60 s"
        );
    }

    #[tokio::test]
    async fn each_attempt_logs_status_endpoint_and_quota() {
        let fake = FakeGitHub::start(|seen, _| {
            match seen.route.as_str() {
                "/actions/runs/1" => Answer::json(200, fixture("workflow_run")),
                _ => Answer::error(404, "Not Found"),
            }
            .header("x-ratelimit-remaining", 4998)
        });
        let (logs, _guard) = capture_logs();
        let client = fake.client();
        client.get_run(1).await.unwrap();
        client.get_run(2).await.unwrap();
        let logs = logs.lock().unwrap();
        let calls: Vec<&Captured> = logs
            .iter()
            .filter(|e| e.fields.contains_key("github_endpoint"))
            .collect();
        assert_eq!(
            calls.len(),
            2,
            "{:?}",
            logs.iter()
                .map(|e| (&e.level, &e.fields))
                .collect::<Vec<_>>()
        );
        assert_eq!(calls[0].level, tracing::Level::INFO);
        assert_eq!(calls[0].fields["github_status"], "200");
        assert_eq!(
            calls[0].fields["github_endpoint"],
            "GET /repos/{owner}/{repo}/actions/runs/{run_id}"
        );
        assert_eq!(calls[0].fields["github_rate_remaining"], "4998");
        assert_eq!(calls[1].level, tracing::Level::WARN);
        assert_eq!(calls[1].fields["github_status"], "404");
    }

    #[tokio::test]
    async fn job_log_tail_follows_the_redirect_without_the_token() {
        let fake = FakeGitHub::start(|seen, _| match seen.route.as_str() {
            "/actions/jobs/399444496/logs" => {
                // Blob storage is another host: `localhost` instead of `127.0.0.1`.
                let host = seen.headers["host"].to_str().unwrap();
                let port = host.rsplit(':').next().unwrap();
                let location = format!("http://localhost:{port}/signedlogcontent?sig=abc");
                Answer::empty(302).header("location", location)
            }
            "/signedlogcontent" => Answer::text(
                200,
                "2020-01-20T17:42:43.0000000Z ##[group]Run npm run build\n\
                 2020-01-20T17:42:44.0000000Z npm ERR! token ghp_abcdefghijklmnopqrstuvwxyz0123456789\n\
                 2020-01-20T17:42:45.0000000Z ##[error]Process completed with exit code 1.\n\
                 2020-01-20T17:42:46.0000000Z Cleaning up orphan processes\n",
            ),
            _ => Answer::error(404, "Not Found"),
        });
        let lines = fake
            .client()
            .job_log_tail(399444496, Some("npm run build"), 20)
            .await;
        assert_eq!(
            lines.unwrap(),
            [
                "##[group]Run npm run build",
                "npm ERR! token [REDACTED]",
                "##[error]Process completed with exit code 1."
            ]
        );
        let seen = fake.seen();
        assert_eq!(seen.len(), 2);
        assert!(seen[0].headers.contains_key("authorization"));
        assert!(
            seen[1].headers["host"]
                .to_str()
                .unwrap()
                .starts_with("localhost:")
        );
        assert!(
            !seen[1].headers.contains_key("authorization"),
            "token sent to blob storage"
        );
    }

    #[tokio::test]
    async fn token_info_reports_scopes_access_and_quota() {
        let fake = FakeGitHub::start(|seen, _| {
            assert_eq!(seen.path, "/api/v3/repos/octo-org/octo-repo");
            Answer::json(200, fixture("repository"))
                .header("x-oauth-scopes", "repo, workflow")
                .header("x-ratelimit-remaining", 4321)
        });
        let info = fake.client().token_info().await.unwrap();
        assert_eq!(
            info.scopes,
            Some(vec!["repo".to_owned(), "workflow".to_owned()])
        );
        assert_eq!(info.can_push, Some(false));
        assert_eq!(info.rate_remaining, Some(4321));

        // Fine-grained tokens send no scopes header.
        let fake = FakeGitHub::start(|_, _| Answer::json(200, json!({"id": 1})));
        let info = fake.client().token_info().await.unwrap();
        assert_eq!((info.scopes, info.can_push), (None, None));
    }

    #[tokio::test]
    async fn set_repo_variable_updates_or_creates() {
        let fake = FakeGitHub::start(
            |seen, _| match (seen.method.as_str(), seen.route.as_str()) {
                ("PATCH", "/actions/variables/EXISTING") => Answer::empty(204),
                ("PATCH", _) => Answer::error(404, "Not Found"),
                ("POST", "/actions/variables") => Answer::json(201, json!({})),
                _ => Answer::error(400, "unexpected"),
            },
        );
        let client = fake.client();
        client
            .set_repo_variable("EXISTING", "https://a.example")
            .await
            .unwrap();
        client
            .set_repo_variable("FRONTEND_BASE_URL", "https://b.example")
            .await
            .unwrap();
        let seen = fake.seen();
        let calls: Vec<(&str, &str)> = seen
            .iter()
            .map(|s| (s.method.as_str(), s.route.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                ("PATCH", "/actions/variables/EXISTING"),
                ("PATCH", "/actions/variables/FRONTEND_BASE_URL"),
                ("POST", "/actions/variables"),
            ]
        );
        assert_eq!(
            seen[2].body,
            json!({"name": "FRONTEND_BASE_URL", "value": "https://b.example"})
        );

        let fake = FakeGitHub::start(|_, _| {
            Answer::error(403, "Resource not accessible by personal access token")
        });
        let err = fake.client().set_repo_variable("X", "y").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "GitHub token lacks permission (needs repo + workflow scopes, or Variables: write)"
        );
    }

    #[tokio::test]
    async fn set_repo_secret_sends_only_a_sealed_value() {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;

        let repo_key = [42u8; 32];
        let public = STANDARD.encode(crate::github::seal::public_key(&repo_key));
        let fake =
            FakeGitHub::start(
                move |seen, _| match (seen.method.as_str(), seen.route.as_str()) {
                    ("GET", "/actions/secrets/public-key") => {
                        let mut key = fixture("public_key");
                        key["key"] = json!(public);
                        Answer::json(200, key)
                    }
                    ("PUT", "/actions/secrets/VITE_API_BASE") => Answer::json(201, json!({})),
                    _ => Answer::error(403, "Resource not accessible by personal access token"),
                },
            );
        let value = SecretString::from("https://api.example.com");
        fake.client()
            .set_repo_secret("VITE_API_BASE", &value)
            .await
            .unwrap();
        let seen = fake.seen();
        let put = &seen[1];
        assert_eq!(put.body["key_id"], "012345678912345678");
        assert!(!put.body.to_string().contains("api.example.com"));
        let sealed = STANDARD
            .decode(put.body["encrypted_value"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            crate::github::seal::open(&repo_key, &sealed).unwrap(),
            b"https://api.example.com"
        );

        let err = fake
            .client()
            .set_repo_secret("OTHER", &value)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "GitHub token lacks permission (needs repo + workflow scopes, or Secrets: write)"
        );
    }

    #[tokio::test]
    async fn a_dry_run_client_sends_reads_but_refuses_every_write() {
        let fake = FakeGitHub::start(|seen, _| match seen.method.as_str() {
            "GET" => Answer::json(200, fixture("public_key")),
            _ => Answer::empty(204),
        });
        let client = fake.client().with_dry_run(true);
        let key = client.repo_public_key().await.unwrap();
        assert_eq!(key.key_id, "012345678912345678");
        let err = client.set_repo_variable("X", "y").await.unwrap_err();
        assert_eq!(err.error_type(), "dry_run_bypassed");
        assert!(client.cancel_run(1).await.is_err());
        let value = SecretString::from("https://api.example.com");
        assert!(client.put_repo_secret("S", &key, &value).await.is_err());
        let inputs = Map::new();
        assert!(client.dispatch_workflow(7, "main", &inputs).await.is_err());
        // The deadline clone keeps the setting.
        let later = client.with_deadline(Instant::now() + Duration::from_secs(60));
        assert!(later.rerun_failed_jobs(1).await.is_err());
        let methods: Vec<String> = fake.seen().into_iter().map(|s| s.method).collect();
        assert_eq!(methods, ["GET"]);
    }

    #[test]
    fn mutation_descriptions_name_the_exact_request_without_secrets() {
        let fake = FakeGitHub::start(|_, _| Answer::empty(204));
        let client = fake.client();
        let m = client.set_repo_variable_mutation("FRONTEND_BASE_URL", "https://a.example");
        assert_eq!(
            m.to_string(),
            format!(
                "PATCH {REPO_PREFIX}/actions/variables/FRONTEND_BASE_URL \
                 {{\"name\":\"FRONTEND_BASE_URL\",\"value\":\"https://a.example\"}}"
            )
        );
        let key = RepoPublicKey {
            key_id: "k1".into(),
            key: "c2VjcmV0".into(),
        };
        let m = client.put_repo_secret_mutation("VITE_API_BASE", &key);
        assert_eq!(m.method(), "PUT");
        assert_eq!(
            m.path(),
            format!("{REPO_PREFIX}/actions/secrets/VITE_API_BASE")
        );
        assert_eq!(
            m.body(),
            Some(&json!({"encrypted_value": "[REDACTED]", "key_id": "k1"}))
        );
        let mut inputs = Map::new();
        inputs.insert("correlation_id".into(), json!("c-1"));
        let m = client.dispatch_mutation(77, "main", &inputs);
        assert_eq!(
            m.path(),
            format!("{REPO_PREFIX}/actions/workflows/77/dispatches")
        );
        assert_eq!(m.body().unwrap()["inputs"]["correlation_id"], "c-1");
        assert_eq!(m.body().unwrap()["return_run_details"], true);
        assert_eq!(
            client.cancel_run_mutation(5).path(),
            format!("{REPO_PREFIX}/actions/runs/5/cancel")
        );
        assert!(
            client
                .rerun_failed_jobs_mutation(5)
                .path()
                .ends_with("/actions/runs/5/rerun-failed-jobs")
        );
    }

    /// One captured log event.
    struct Captured {
        level: tracing::Level,
        fields: HashMap<String, String>,
    }

    type Logs = Arc<Mutex<Vec<Captured>>>;

    /// Captures this thread's events (the client's; the fake logs on its own thread).
    fn capture_logs() -> (Logs, tracing::subscriber::DefaultGuard) {
        use tracing_subscriber::layer::SubscriberExt;

        struct Capture(Logs);
        struct Fields(HashMap<String, String>);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
                self.0.insert(field.name().to_owned(), format!("{value:?}"));
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.insert(field.name().to_owned(), value.to_owned());
            }
        }
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
            fn on_event(
                &self,
                event: &tracing::Event<'_>,
                _ctx: tracing_subscriber::layer::Context<'_, S>,
            ) {
                let mut fields = Fields(HashMap::new());
                event.record(&mut fields);
                let level = *event.metadata().level();
                self.0.lock().unwrap().push(Captured {
                    level,
                    fields: fields.0,
                });
            }
        }

        let logs = Logs::default();
        // A subscriber that wants every event, alive for the whole test process: without
        // one, a log line first reached on a thread with no subscriber (another test's)
        // is cached as wanted by nobody, and this thread's capture would miss it.
        static EVERYTHING: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
        EVERYTHING.get_or_init(|| tracing::Dispatch::new(tracing_subscriber::registry()));
        tracing::callsite::rebuild_interest_cache();
        let subscriber = tracing_subscriber::registry().with(Capture(Arc::clone(&logs)));
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// GitHub App authentication against a fake that checks the JWTs as GitHub does.
    mod app {
        use super::*;
        use crate::github::app_auth::{AppCredentials, AppKey};
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

        /// The test-only key pair of `fixtures/` (see its README).
        const KEY: &str = include_str!("fixtures/test-app-key.pem");
        const PUBLIC_DER: &[u8] = include_bytes!("fixtures/test-app-key.pub.der");
        const INSTALLATION_PATH: &str = "/api/v3/repos/octo-org/octo-repo/installation";
        const TOKENS_PATH: &str = "/api/v3/app/installations/77/access_tokens";

        /// The claims of a JWT whose RS256 signature verifies with the App's public key,
        /// whose issuer is the App and whose lifetime GitHub accepts; else `None`.
        fn verified_claims(authorization: &str) -> Option<Value> {
            let jwt = authorization.strip_prefix("Bearer ")?;
            let (signed, signature) = jwt.rsplit_once('.')?;
            let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, PUBLIC_DER)
                .verify(signed.as_bytes(), &signature)
                .ok()?;
            let claims = URL_SAFE_NO_PAD.decode(signed.split_once('.')?.1).ok()?;
            let claims: Value = serde_json::from_slice(&claims).ok()?;
            let lifetime = claims["exp"].as_i64()? - claims["iat"].as_i64()?;
            (claims["iss"] == 12345 && lifetime > 0 && lifetime <= 660).then_some(claims)
        }

        fn authorization(seen: &Seen) -> &str {
            seen.headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        }

        /// How the fake's API (not the App endpoints) treats installation tokens.
        #[derive(Clone, Copy)]
        enum Api {
            Accepts,
            /// `ghs_1` was revoked early: refused.
            RevokedFirst,
            /// Every token refused.
            RefusesAll,
        }

        /// The fake: the installation is 77; the n-th token granted is `ghs_n` and
        /// expires n hours after `t0()`.
        fn fake(api: Api) -> FakeGitHub {
            let grants = Arc::new(AtomicUsize::new(0));
            FakeGitHub::start(move |seen, _| {
                let auth = authorization(seen);
                match (seen.method.as_str(), seen.path.as_str()) {
                    ("GET", INSTALLATION_PATH) | ("POST", TOKENS_PATH)
                        if verified_claims(auth).is_none() =>
                    {
                        Answer::error(401, "A JSON web token could not be decoded")
                    }
                    ("GET", INSTALLATION_PATH) => {
                        Answer::json(200, json!({"id": 77, "app_id": 12345}))
                    }
                    ("POST", TOKENS_PATH) => {
                        let n = grants.fetch_add(1, Ordering::SeqCst) as i64 + 1;
                        let expires = t0() + chrono::Duration::hours(n);
                        Answer::json(
                            201,
                            json!({"token": format!("ghs_{n}"),
                                   "expires_at": expires.to_rfc3339_opts(SecondsFormat::Secs, true)}),
                        )
                    }
                    _ => {
                        let refused = match api {
                            Api::Accepts => false,
                            Api::RevokedFirst => auth == "Bearer ghs_1",
                            Api::RefusesAll => true,
                        };
                        if refused || !auth.starts_with("Bearer ghs_") {
                            Answer::error(401, "Bad credentials")
                        } else {
                            Answer::json(200, fixture("workflow_run"))
                        }
                    }
                }
            })
        }

        fn client(fake: &FakeGitHub, installation_id: Option<u64>) -> GitHubClient {
            let credentials = AppCredentials {
                app_id: "12345".into(),
                key: AppKey::from_pem(KEY).unwrap(),
                installation_id,
            };
            client_with(
                &format!("http://{}/api/v3", fake.addr),
                app_auth(credentials, Clock::tokio_at(t0().timestamp_millis())),
            )
        }

        /// `(method path, Authorization)` of each request, in order.
        fn requests(fake: &FakeGitHub) -> Vec<(String, String)> {
            fake.seen()
                .iter()
                .map(|s| {
                    (
                        format!("{} {}", s.method, s.path),
                        authorization(s).to_owned(),
                    )
                })
                .collect()
        }

        fn exchanges(fake: &FakeGitHub) -> usize {
            fake.seen().iter().filter(|s| s.path == TOKENS_PATH).count()
        }

        #[tokio::test(start_paused = true)]
        async fn finds_the_installation_and_sends_its_token() {
            let fake = fake(Api::Accepts);
            let client = client(&fake, None);
            client.get_run(30433642).await.unwrap().unwrap();
            let seen = requests(&fake);
            assert_eq!(seen.len(), 3, "{seen:?}");
            assert_eq!(seen[0].0, format!("GET {INSTALLATION_PATH}"));
            assert_eq!(seen[1].0, format!("POST {TOKENS_PATH}"));
            let claims = verified_claims(&seen[1].1).expect("the fake verified the JWT");
            assert_eq!(claims["iat"], t0().timestamp() - 60);
            assert_eq!(claims["exp"], t0().timestamp() + 540);
            assert_eq!(
                seen[2],
                (
                    format!("GET {REPO_PREFIX}/actions/runs/30433642"),
                    "Bearer ghs_1".into()
                )
            );
            // Secrets stay out of Debug.
            let shown = format!("{client:?}");
            assert!(
                !shown.contains("ghs_") && !shown.contains("PRIVATE"),
                "{shown}"
            );
        }

        #[tokio::test(start_paused = true)]
        async fn a_configured_installation_is_not_looked_up() {
            let fake = fake(Api::Accepts);
            client(&fake, Some(77)).get_run(1).await.unwrap();
            assert_eq!(fake.seen()[0].path, TOKENS_PATH);
        }

        #[tokio::test(start_paused = true)]
        async fn reuses_the_token_while_fresh_and_replaces_it_five_minutes_early() {
            let fake = fake(Api::Accepts);
            let client = client(&fake, Some(77));
            client.get_run(1).await.unwrap();
            client.clone().get_run(1).await.unwrap();
            tokio::time::advance(Duration::from_secs(54 * 60)).await;
            client.get_run(1).await.unwrap();
            assert_eq!(exchanges(&fake), 1, "one token for all three");

            // 56 minutes in: the token's hour ends within 5 minutes.
            tokio::time::advance(Duration::from_secs(2 * 60)).await;
            client.get_run(1).await.unwrap();
            assert_eq!(exchanges(&fake), 2);
            let last = requests(&fake).pop().unwrap();
            assert_eq!(last.1, "Bearer ghs_2");
            let exchange = requests(&fake)
                .into_iter()
                .rfind(|(what, _)| what.ends_with("access_tokens"))
                .unwrap();
            let claims = verified_claims(&exchange.1).unwrap();
            assert_eq!(
                claims["iat"],
                t0().timestamp() + 56 * 60 - 60,
                "JWT times follow the clock"
            );
        }

        #[tokio::test(start_paused = true)]
        async fn concurrent_requests_share_one_refresh() {
            let fake = fake(Api::Accepts);
            let client = client(&fake, Some(77));
            let calls = (0..5).map(|_| {
                let client = client.clone();
                async move { client.get_run(1).await }
            });
            for result in futures_util::future::join_all(calls).await {
                result.unwrap();
            }
            assert_eq!(exchanges(&fake), 1);
        }

        #[tokio::test(start_paused = true)]
        async fn a_refused_token_is_replaced_once_and_the_request_sent_again() {
            let fake = fake(Api::RevokedFirst);
            let run = client(&fake, Some(77)).get_run(30433642).await.unwrap();
            assert_eq!(run.unwrap().id, 30433642);
            let auths: Vec<String> = requests(&fake)
                .into_iter()
                .filter(|(what, _)| what.starts_with("GET"))
                .map(|(_, auth)| auth)
                .collect();
            assert_eq!(auths, ["Bearer ghs_1", "Bearer ghs_2"]);
        }

        #[tokio::test(start_paused = true)]
        async fn credentials_refused_after_a_refresh_name_the_app_settings() {
            let fake = fake(Api::RefusesAll);
            let err = client(&fake, Some(77)).cancel_run(1).await.unwrap_err();
            assert_eq!(
                err.to_string(),
                "GitHub App credentials were refused — check GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY"
            );
            assert_eq!(exchanges(&fake), 2, "one refresh, no more");
            assert!(!format!("{err:?}").contains("ghs_"));

            // A key GitHub does not know: the JWT itself is refused.
            let fake = FakeGitHub::start(|_, _| {
                Answer::error(401, "A JSON web token could not be decoded")
            });
            let err = client(&fake, None).get_run(1).await.unwrap_err();
            assert_eq!(err.error_type(), "github_unauthorized");
            assert!(err.to_string().contains("GITHUB_APP_PRIVATE_KEY"));
        }

        #[tokio::test]
        async fn an_app_not_installed_on_the_repository_says_so() {
            let fake = FakeGitHub::start(|seen, _| {
                assert!(verified_claims(authorization(seen)).is_some());
                Answer::error(404, "Not Found")
            });
            let err = client(&fake, None).get_run(1).await.unwrap_err();
            assert_eq!(
                err.to_string(),
                "the GitHub App is not installed on octo-org/octo-repo — install it there, or set GITHUB_APP_INSTALLATION_ID"
            );
        }
    }
}
