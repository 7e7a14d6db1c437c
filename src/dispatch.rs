//! Dispatch once: the one protocol by which Valine starts a workflow run on GitHub
//! (`/deploy-client`, the `/diagnose` workflow) or re-runs one (`/rollback`). A dispatch
//! is the one request Valine must never send twice, while the job that sends it may run
//! more than once (it is at-least-once: a crash, a lost lease). So:
//!
//! 1. The correlation id is derived from the command's trace id ([`correlation_id_for`]),
//!    so every attempt of the job computes the same one. The workflow receives it as
//!    `inputs.correlation_id` and its `run-name` carries it into the run's title.
//! 2. A marker (the [`CorrelationRecord`]) is written before the request leaves. An
//!    attempt that finds the marker already there knows an earlier attempt may have
//!    dispatched: it looks the run up by correlation id and never sends again. When the
//!    run cannot be found the outcome is [`Dispatched::NotConfirmed`] ("dispatch not
//!    confirmed; not re-sent").
//! 3. A timeout or a 5xx from GitHub means the outcome is unknown: GitHub may have
//!    started the run. It is looked for, never re-sent; a definite refusal (4xx) means
//!    nothing started, and nothing is audited.
//! 4. The run is identified from GitHub's answer (`return_run_details`), or else by
//!    searching the workflow's runs created since the dispatch for one whose
//!    `display_title` carries the correlation id. An uncorrelated run is never guessed.
//! 5. The audit record is written only once GitHub accepted the dispatch (or, when the
//!    outcome was unknown, once its run was found). Its id comes from the correlation
//!    id, so a job that runs again records the dispatch once.
//! 6. Under DRY_RUN nothing is sent, so no marker is written (it would guard nothing,
//!    and would block the next deploy while it waited for a run that never comes); the
//!    would-be request comes back as a [`Mutation`] and the audit record is marked
//!    `dry_run`.
//!
//! A re-run ([`Action::Rerun`]) follows the same steps; its run is known before it is
//! sent, so it is identified by seeing that run's attempt move on.
//!
//! An `exclusive` request (a deploy; a rollback is one too) also holds the one-deploy
//! lock: a store lock taken from the "is another deploy running?" check until its run is
//! identified, so that check and the dispatch are one step no other process can
//! interleave. The running deploy is re-read from GitHub, never from the store, so a
//! missed webhook cannot block deploys.
//!
//! What to tell the user about each outcome is the command's business; this module
//! returns the outcome and never builds a reply.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::clock::duration_ms;
use crate::discord::interaction::ReplyHandle;
use crate::dryrun::{Mutated, Mutation};
use crate::error::CommandError;
use crate::github::api::{GitHubClient, GitHubError};
use crate::github::model::{DispatchOutcome, Workflow, WorkflowRun};
use crate::store::{
    AuditRecord, CorrelationKind, CorrelationRecord, StepStatus, StoreError, retention,
};
use crate::trace::{Step, Tracer};

/// Prefix of correlation ids: `vl-` and 16 lowercase hex digits.
const CORRELATION_PREFIX: &str = "vl-";
const CORRELATION_HEX: usize = 16;

/// The one-deploy lock, held from the "one deploy at a time" check until the dispatched
/// run is identified. The name predates rollbacks; processes of either version share it.
const EXCLUSIVE_LOCK: &str = "deploy:dispatch";
/// The lock outlives the identification wait by this much: the dispatch request itself
/// (10 s timeout) and the store writes around it.
const LOCK_MARGIN: Duration = Duration::from_secs(60);
/// How often a request waiting for the lock tries again.
const LOCK_RETRY: Duration = Duration::from_millis(200);
/// An exclusive marker whose run was never identified (a crash, a missed webhook) is
/// looked up on GitHub by its correlation id for this long; older ones no longer block.
const UNIDENTIFIED_LOOKUP: Duration = Duration::from_secs(60 * 60);

/// A fresh correlation id. Short, since it ends up in the run's title.
pub fn new_correlation_id() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{CORRELATION_PREFIX}{}", &hex[..CORRELATION_HEX])
}

/// The correlation id of one command execution, in the format of
/// [`new_correlation_id`], derived from `key` (the command's trace id). A job that runs
/// again after a crash computes the same id and so finds the marker its first attempt
/// wrote.
pub fn correlation_id_for(key: &str) -> String {
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    format!("{CORRELATION_PREFIX}{}", &digest[..CORRELATION_HEX])
}

/// The correlation ids a run title contains (the set-up contract puts
/// `inputs.correlation_id` in the workflow's `run-name`).
pub fn correlation_ids_in(title: &str) -> impl Iterator<Item = &str> {
    title
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|word| {
            word.strip_prefix(CORRELATION_PREFIX).is_some_and(|hex| {
                hex.len() == CORRELATION_HEX
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
        })
}

/// What is sent to GitHub.
#[derive(Debug, Clone)]
pub enum Action {
    /// `POST …/actions/workflows/{id}/dispatches` at `git_ref`. The protocol adds the
    /// `correlation_id` and `requester` inputs to `inputs`.
    Workflow {
        workflow: Workflow,
        git_ref: String,
        inputs: Map<String, Value>,
    },
    /// `POST …/actions/runs/{id}/rerun` (`/rollback`): a new attempt of `run`, at its
    /// commit with its inputs. Its run is known before it is sent, so identifying it is
    /// seeing that run's attempt move past the one it had; its title (and so the
    /// correlation id in it) is the original run's.
    Rerun {
        workflow: Workflow,
        run: Box<WorkflowRun>,
        /// The commit deployed now, which the re-run rolls back from.
        from_sha: Option<String>,
    },
}

impl Action {
    /// The workflow whose runs are searched for the correlation id.
    pub fn workflow_id(&self) -> u64 {
        match self {
            Action::Workflow { workflow, .. } | Action::Rerun { workflow, .. } => workflow.id,
        }
    }

    /// What the audit record says was done, before the correlation id.
    pub fn describe(&self) -> String {
        match self {
            Action::Workflow {
                workflow, git_ref, ..
            } => format!("dispatch {} at {git_ref}", workflow.file_name()),
            Action::Rerun {
                workflow,
                run,
                from_sha,
            } => format!(
                "re-run {} run {} (commit {}) to roll back from {}",
                workflow.file_name(),
                run.id,
                short_sha(run.head_sha.as_deref()),
                short_sha(from_sha.as_deref()),
            ),
        }
    }

    /// The trace step of sending it.
    fn step_name(&self) -> &'static str {
        match self {
            Action::Workflow { .. } => "github.dispatch_workflow",
            Action::Rerun { .. } => "github.rerun_run",
        }
    }
}

/// The first 7 characters of a commit sha, as GitHub shows them (`unknown` without one).
pub fn short_sha(sha: Option<&str>) -> String {
    match sha {
        Some(sha) if !sha.is_empty() => sha.chars().take(7).collect(),
        _ => "unknown".to_owned(),
    }
}

/// One dispatch as a command asks for it.
#[derive(Debug, Clone)]
pub struct DispatchRequest {
    /// What the marker records it as (the webhook follower reads it).
    pub kind: CorrelationKind,
    pub action: Action,
    /// One at a time: holds the one-deploy lock and refuses while another exclusive
    /// dispatch's run is unfinished. Exclusive requests are of kind
    /// [`CorrelationKind::Deploy`], the kind that check reads back.
    pub exclusive: bool,
    /// The Discord user id (a snowflake), sent as the `requester` input and audited.
    pub requester: String,
    /// The interaction whose reply later news edits (`None` for `valine invoke`).
    pub reply_to: Option<ReplyHandle>,
    /// Where later news goes once the interaction token has expired.
    pub channel_id: Option<String>,
    /// The command's message follows the run (`/deploy-client wait:true`).
    pub wait: bool,
    /// The API base the dispatch carries, kept with the marker for verification.
    pub api_base: Option<String>,
    /// The audit record's new-value fingerprint (of the API base a deploy builds with).
    pub fingerprint: Option<String>,
    /// How long to search for the run of an accepted dispatch that GitHub did not name.
    /// An unknown outcome is always searched for `WorkerSettings::identify_timeout`, since
    /// giving up there tells the user to check GitHub by hand.
    pub identify_timeout: Duration,
}

/// The run a dispatch started, as far as it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRef {
    pub id: u64,
    pub html_url: Option<String>,
}

impl From<&WorkflowRun> for RunRef {
    fn from(run: &WorkflowRun) -> Self {
        RunRef {
            id: run.id,
            html_url: run.html_url.clone(),
        }
    }
}

impl RunRef {
    /// `[run 9000](url)`, or `run 9000` without a URL.
    pub fn link(&self) -> String {
        match &self.html_url {
            Some(url) => format!("[run {}]({url})", self.id),
            None => format!("run {}", self.id),
        }
    }
}

/// What holds up an exclusive request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Running {
    /// An exclusive dispatch's run that GitHub says is unfinished.
    Run(RunRef),
    /// Another dispatch holds the lock; its run is being identified.
    Identifying { correlation_id: String },
    /// Another dispatch holds the lock and has not written its marker yet.
    Unknown,
}

/// How a dispatch ended.
#[derive(Debug)]
pub enum Dispatched {
    /// GitHub started the run, and it is known. `marker` is the correlation as stored
    /// (an earlier attempt's, when this one recovered), with the run attached.
    Identified {
        marker: CorrelationRecord,
        run: RunRef,
    },
    /// GitHub accepted the dispatch, but its run was not found in time (with the error of
    /// the last lookup, if it failed). The webhook attaches it when its title carries
    /// the correlation id.
    Unidentified {
        correlation_id: String,
        lookup_error: Option<GitHubError>,
    },
    /// The outcome is unknown (a timeout or 5xx, or an earlier attempt's marker) and no
    /// run carries the correlation id: nothing was sent again.
    NotConfirmed { correlation_id: String },
    /// DRY_RUN: nothing was sent, no marker written; this is what would have been sent.
    DryRun {
        correlation_id: String,
        mutation: Mutation,
    },
    /// An exclusive request while another deploy runs: nothing was sent.
    Busy(Running),
}

/// Why a dispatch was not made. In each case nothing started on GitHub.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// GitHub refused the dispatch (a 4xx, a rate limit): certainly not started.
    #[error("GitHub refused the dispatch: {0}")]
    Refused(#[source] GitHubError),
    /// Reading GitHub before sending failed (the one-deploy check).
    #[error("GitHub could not be read before dispatching: {0}")]
    GitHub(#[source] GitHubError),
    /// The marker could not be read or written, so the request was not sent.
    #[error("the dispatch marker could not be stored: {0}")]
    Store(#[source] StoreError),
}

impl From<StoreError> for DispatchError {
    fn from(e: StoreError) -> Self {
        DispatchError::Store(e)
    }
}

/// A dispatch that was not made fails the command with the cause's own message.
impl From<DispatchError> for CommandError {
    fn from(e: DispatchError) -> Self {
        match e {
            DispatchError::Refused(e) | DispatchError::GitHub(e) => CommandError::GitHub(e),
            DispatchError::Store(e) => CommandError::Store(e),
        }
    }
}

/// Runs the protocol for `request`; see the module documentation.
pub async fn dispatch_once(
    app: &App,
    github: &GitHubClient,
    request: DispatchRequest,
    tracer: &mut Tracer,
) -> Result<Dispatched, DispatchError> {
    let correlation_id = correlation_id_for(tracer.id());
    let step = tracer.begin("store.get_marker");
    let marker = app
        .store
        .get_correlation(&correlation_id, app.clock.now_secs())
        .await;
    tracer.end(step, &marker);
    if let Some(marker) = marker? {
        return Ok(recover(app, github, &request, marker, tracer).await);
    }
    if !request.exclusive {
        return dispatch_unmarked(app, github, &request, correlation_id, tracer).await;
    }
    let step = tracer.begin("store.deploy_lock");
    let claimed = claim_lock(app, &correlation_id).await;
    tracer.end(step, &claimed);
    if !claimed? {
        return Ok(Dispatched::Busy(lock_holder(app, github).await));
    }
    let result = dispatch_unmarked(app, github, &request, correlation_id.clone(), tracer).await;
    release_lock(app, &correlation_id).await;
    result
}

/// A dispatch no attempt has marked yet, once an exclusive request holds the lock:
/// refuse while another deploy runs, write the marker, dispatch, audit, identify.
async fn dispatch_unmarked(
    app: &App,
    github: &GitHubClient,
    request: &DispatchRequest,
    correlation_id: String,
    tracer: &mut Tracer,
) -> Result<Dispatched, DispatchError> {
    if request.exclusive {
        let step = tracer.begin("deploy.one_at_a_time");
        let running = running_exclusive(app, github, request.action.workflow_id()).await;
        tracer.end(step, &running);
        if let Some(run) = running? {
            return Ok(Dispatched::Busy(Running::Run(run)));
        }
    }

    let mut marker = marker_record(app, request, &correlation_id, tracer);
    if !app.dry_run().is_enabled() {
        let step = tracer.begin("store.put_marker");
        let written = app
            .store
            .put_correlation(&marker, app.clock.now_secs())
            .await;
        tracer.end(step, &written);
        if !written? {
            // Another attempt of this very job (its lease lost) got there first: it is
            // the one that dispatches.
            let theirs = app
                .store
                .get_correlation(&correlation_id, app.clock.now_secs())
                .await?
                .unwrap_or(marker);
            return Ok(recover(app, github, request, theirs, tracer).await);
        }
    }

    let dispatched_after = app.clock.now();
    let step = tracer.begin(request.action.step_name());
    let outcome = send(app, github, request, &correlation_id).await;
    end_mutation_step(tracer, step, &outcome);
    let accepted = match outcome {
        Ok(Mutated::Suppressed(mutation)) => {
            audit(app, request, &correlation_id, tracer, true).await;
            return Ok(Dispatched::DryRun {
                correlation_id,
                mutation,
            });
        }
        Ok(Mutated::Performed(details)) => Some(details),
        Err(e) if outcome_unknown(&e) => {
            tracing::warn!(error.type = e.error_type(), error.message = %crate::error::chain(&e), "dispatch outcome unknown; looking for its run");
            None
        }
        Err(e) => return Err(DispatchError::Refused(e)),
    };
    if accepted.is_some() {
        audit(app, request, &correlation_id, tracer, false).await;
    }

    let returned = accepted.as_ref().and_then(|d| {
        d.run_id.map(|id| RunRef {
            id,
            html_url: d.html_url.clone(),
        })
    });
    let timeout = if accepted.is_some() {
        request.identify_timeout
    } else {
        app.worker.identify_timeout
    };
    let found = match returned {
        Some(run) => Ok(Some(run)),
        None => {
            identify(
                app,
                github,
                &request.action,
                &correlation_id,
                dispatched_after,
                timeout,
                tracer,
            )
            .await
        }
    };
    Ok(match (found, accepted.is_some()) {
        (Ok(Some(run)), accepted) => {
            if !accepted {
                audit(app, request, &correlation_id, tracer, false).await;
            }
            attach(app, &mut marker, &run, tracer).await;
            Dispatched::Identified { marker, run }
        }
        (Ok(None), true) => Dispatched::Unidentified {
            correlation_id,
            lookup_error: None,
        },
        (Err(e), true) => Dispatched::Unidentified {
            correlation_id,
            lookup_error: Some(e),
        },
        (_, false) => Dispatched::NotConfirmed { correlation_id },
    })
}

/// A timeout, a broken connection or a 5xx: the request may have reached GitHub and
/// started the run.
fn outcome_unknown(e: &GitHubError) -> bool {
    matches!(
        e,
        GitHubError::Unavailable { .. } | GitHubError::Unreachable { .. }
    )
}

/// Sends the action through the DRY_RUN gate, with the protocol's inputs added.
async fn send(
    app: &App,
    github: &GitHubClient,
    request: &DispatchRequest,
    correlation_id: &str,
) -> Result<Mutated<DispatchOutcome>, GitHubError> {
    match &request.action {
        Action::Workflow {
            workflow,
            git_ref,
            inputs,
        } => {
            let inputs = with_protocol_inputs(inputs, correlation_id, &request.requester);
            app.mutate(
                github.dispatch_mutation(workflow.id, git_ref, &inputs),
                github.dispatch_workflow(workflow.id, git_ref, &inputs),
            )
            .await
        }
        // A re-run takes no inputs: it repeats the run's own.
        Action::Rerun { run, .. } => {
            let sent = app
                .mutate(github.rerun_run_mutation(run.id), github.rerun_run(run.id))
                .await?;
            Ok(match sent {
                Mutated::Performed(()) => Mutated::Performed(DispatchOutcome {
                    run_id: Some(run.id),
                    run_url: None,
                    html_url: run.html_url.clone(),
                }),
                Mutated::Suppressed(mutation) => Mutated::Suppressed(mutation),
            })
        }
    }
}

/// The set-up contract's inputs every dispatched workflow takes, over the command's own.
fn with_protocol_inputs(
    inputs: &Map<String, Value>,
    correlation_id: &str,
    requester: &str,
) -> Map<String, Value> {
    let mut all = inputs.clone();
    all.insert("correlation_id".into(), correlation_id.into());
    all.insert("requester".into(), requester.into());
    all
}

/// The marker, with everything a follower needs to reach the requester.
fn marker_record(
    app: &App,
    request: &DispatchRequest,
    correlation_id: &str,
    tracer: &Tracer,
) -> CorrelationRecord {
    let now_ms = app.clock.now_ms();
    CorrelationRecord {
        id: correlation_id.to_owned(),
        kind: request.kind,
        requester: request.requester.clone(),
        channel_id: request.channel_id.clone(),
        application_id: request.reply_to.as_ref().map(|t| t.application_id.clone()),
        interaction_token: request.reply_to.as_ref().map(|t| t.token.clone()),
        // The token's lifetime runs from the interaction, which the trace started with.
        token_expires_at_ms: token_expiry(
            tracer.record().started_at_ms,
            app.worker.interaction_token_ttl,
        ),
        wait: request.wait,
        api_base: request.api_base.clone(),
        run_id: None,
        created_at_ms: now_ms,
        expires_at: now_ms.div_euclid(1000) + retention::CORRELATION,
    }
}

fn token_expiry(started_at_ms: i64, ttl: Duration) -> i64 {
    started_at_ms.saturating_add(duration_ms(ttl))
}

/// How long an identification that began `elapsed_ms` ago still has out of `timeout`.
fn time_left(timeout: Duration, elapsed_ms: i64) -> Duration {
    let left = duration_ms(timeout).saturating_sub(elapsed_ms.max(0));
    Duration::from_millis(u64::try_from(left).unwrap_or(0))
}

/// When the marker was written: runs created before it cannot be its dispatch's.
fn marker_time(app: &App, marker: &CorrelationRecord) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(marker.created_at_ms).unwrap_or_else(|| app.clock.now())
}

/// An earlier attempt of this job wrote the marker, so it may have dispatched: find the
/// run by correlation id, and never dispatch again.
async fn recover(
    app: &App,
    github: &GitHubClient,
    request: &DispatchRequest,
    mut marker: CorrelationRecord,
    tracer: &mut Tracer,
) -> Dispatched {
    tracing::warn!(correlation_id = %marker.id, "an earlier attempt wrote the dispatch marker; looking its run up instead of dispatching");
    if request.exclusive {
        // The earlier attempt may still hold the lock: keep it while looking, then let go.
        let now = app.clock.now_secs();
        if let Err(e) = app
            .store
            .acquire_lock(EXCLUSIVE_LOCK, &marker.id, now + lock_hold_secs(app), now)
            .await
        {
            tracing::warn!(error.type = "store_unavailable", error.message = %e, "deploy lock not taken for the lookup");
        }
    }
    let run = match marker.run_id {
        Some(id) => {
            let step = tracer.begin("github.get_run");
            let run = github.get_run(id).await;
            tracer.end(step, &run);
            Some(match run {
                Ok(Some(run)) => RunRef::from(&run),
                _ => RunRef { id, html_url: None },
            })
        }
        None => {
            let elapsed = app.clock.now_ms().saturating_sub(marker.created_at_ms);
            identify(
                app,
                github,
                &request.action,
                &marker.id,
                marker_time(app, &marker),
                time_left(app.worker.identify_timeout, elapsed),
                tracer,
            )
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error.type = e.error_type(), error.message = %crate::error::chain(&e), "run lookup failed");
                None
            })
        }
    };
    if request.exclusive {
        release_lock(app, &marker.id).await;
    }
    let Some(run) = run else {
        return Dispatched::NotConfirmed {
            correlation_id: marker.id,
        };
    };
    // Idempotent: the record id is the correlation's, so this repeats nothing.
    audit(app, request, &marker.id, tracer, false).await;
    attach(app, &mut marker, &run, tracer).await;
    Dispatched::Identified { marker, run }
}

/// Looks for the run whose title carries `correlation_id` among the workflow's runs
/// created since the dispatch, for up to `timeout` (one look when it is zero). A re-run
/// is found by reading its run: it is the action's when its attempt moved on.
async fn identify(
    app: &App,
    github: &GitHubClient,
    action: &Action,
    correlation_id: &str,
    dispatched_after: DateTime<Utc>,
    timeout: Duration,
    tracer: &mut Tracer,
) -> Result<Option<RunRef>, GitHubError> {
    if let Action::Rerun { run, .. } = action {
        let step = tracer.begin("github.get_run");
        let now = github.get_run(run.id).await;
        tracer.end(step, &now);
        return Ok(now?
            .filter(|now| now.run_attempt > run.run_attempt)
            .as_ref()
            .map(RunRef::from));
    }
    let workflow_id = action.workflow_id();
    let step = tracer.begin("github.find_correlated_run");
    let found = github
        .wait_for_correlated_run(
            workflow_id,
            correlation_id,
            dispatched_after,
            timeout,
            app.worker.identify_poll,
        )
        .await;
    match &found {
        Ok(None) => tracer.end_with(
            step,
            StepStatus::Error,
            Some("no run carries the id".into()),
        ),
        other => tracer.end(step, other),
    }
    found.map(|run| run.as_ref().map(RunRef::from))
}

/// Ties the run to its marker, so webhooks and `Cancel run` find the command by it.
async fn attach(app: &App, marker: &mut CorrelationRecord, run: &RunRef, tracer: &mut Tracer) {
    if let Some(url) = &run.html_url {
        tracer.link(url.clone());
    }
    if marker.run_id == Some(run.id) {
        return;
    }
    let step = tracer.begin("store.attach_run");
    let attached = app
        .store
        .attach_run(&marker.id, run.id, app.clock.now_secs())
        .await;
    tracer.end(step, &attached);
    match attached {
        Ok(true) => marker.run_id = Some(run.id),
        Ok(false) => {
            tracing::warn!(
                run_id = run.id,
                "run already belongs to another correlation"
            )
        }
        Err(e) => {
            // A webhook carrying the id in the run's title attaches it as well.
            tracing::warn!(error.type = "store_unavailable", error.message = %e, "run not attached to its marker")
        }
    }
}

/// Takes the one-deploy lock for `owner`, waiting up to `dispatch_lock_wait` for
/// another request that holds it.
async fn claim_lock(app: &App, owner: &str) -> Result<bool, StoreError> {
    let give_up = tokio::time::Instant::now() + app.worker.dispatch_lock_wait;
    loop {
        let now = app.clock.now_secs();
        if app
            .store
            .acquire_lock(EXCLUSIVE_LOCK, owner, now + lock_hold_secs(app), now)
            .await?
        {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= give_up {
            return Ok(false);
        }
        tokio::time::sleep(LOCK_RETRY).await;
    }
}

/// Long enough for the longest identification an exclusive request may make.
fn lock_hold_secs(app: &App) -> i64 {
    let hold = app.worker.identify_timeout + LOCK_MARGIN;
    i64::try_from(hold.as_secs()).unwrap_or(i64::MAX / 4)
}

async fn release_lock(app: &App, owner: &str) {
    if let Err(e) = app.store.release_lock(EXCLUSIVE_LOCK, owner).await {
        // It expires on its own; until then other deploys wait for it.
        tracing::warn!(error.type = "store_unavailable", error.message = %e, "deploy lock not released");
    }
}

/// The newest exclusive dispatch, if GitHub says its run is still unfinished. Its run
/// is read from GitHub, never from the store, so a missed webhook cannot block.
async fn running_exclusive(
    app: &App,
    github: &GitHubClient,
    workflow_id: u64,
) -> Result<Option<RunRef>, DispatchError> {
    let now_ms = app.clock.now_ms();
    let now = now_ms.div_euclid(1000);
    let latest = app.store.latest_deploy_correlation(now).await?;
    let Some(latest) = latest else {
        return Ok(None);
    };
    let run = match latest.run_id {
        Some(id) => github.get_run(id).await.map_err(DispatchError::GitHub)?,
        None if now_ms.saturating_sub(latest.created_at_ms) > duration_ms(UNIDENTIFIED_LOOKUP) => {
            None
        }
        None => {
            // Dispatched but never identified (a crash, a missed webhook): GitHub may
            // know the run by its title.
            let found = github
                .find_correlated_run(workflow_id, &latest.id, marker_time(app, &latest))
                .await
                .map_err(DispatchError::GitHub)?;
            if let Some(run) = &found
                && let Err(e) = app.store.attach_run(&latest.id, run.id, now).await
            {
                tracing::warn!(error.type = "store_unavailable", error.message = %e, "run not attached to its marker");
            }
            found
        }
    };
    Ok(run.filter(|r| !r.is_completed()).as_ref().map(RunRef::from))
}

/// Who holds the lock past `dispatch_lock_wait`: a request dispatching or identifying
/// its run right now.
async fn lock_holder(app: &App, github: &GitHubClient) -> Running {
    let latest = app
        .store
        .latest_deploy_correlation(app.clock.now_secs())
        .await
        .ok()
        .flatten();
    match latest {
        Some(CorrelationRecord {
            run_id: Some(id), ..
        }) => Running::Run(match github.get_run(id).await {
            Ok(Some(run)) => RunRef::from(&run),
            _ => RunRef { id, html_url: None },
        }),
        Some(marker) => Running::Identifying {
            correlation_id: marker.id,
        },
        None => Running::Unknown,
    }
}

/// The audit record of a dispatch. A real one's id comes from the correlation, so it
/// is recorded once however often the job runs; a suppressed one (DRY_RUN) may be tried
/// again and is then a new record. A failure is logged: the dispatch it records has
/// happened, and failing the reply now would invite doing it again.
async fn audit(
    app: &App,
    request: &DispatchRequest,
    correlation_id: &str,
    tracer: &mut Tracer,
    dry_run: bool,
) {
    let now_ms = app.clock.now_ms();
    let record = AuditRecord {
        id: if dry_run {
            uuid::Uuid::now_v7().simple().to_string()
        } else {
            audit_id(correlation_id)
        },
        at_ms: now_ms,
        user_id: request.requester.clone(),
        action: format!("{} ({correlation_id})", request.action.describe()),
        old_fingerprint: None,
        new_fingerprint: request.fingerprint.clone(),
        trace_id: Some(tracer.id().to_owned()),
        dry_run,
        expires_at: now_ms.div_euclid(1000) + retention::AUDIT,
    };
    let step = tracer.begin("store.audit");
    let written = app.store.append_audit(&record).await;
    tracer.end(step, &written);
    if let Err(e) = written {
        tracing::warn!(error.type = "store_unavailable", error.message = %e, "audit record not saved");
    }
}

fn audit_id(correlation_id: &str) -> String {
    format!("dispatch-{correlation_id}")
}

/// Ends the trace step of a request that went through the DRY_RUN gate: skipped (with
/// the would-be request) when it was suppressed.
pub fn end_mutation_step<T, E: std::fmt::Display>(
    tracer: &mut Tracer,
    step: Step,
    outcome: &Result<Mutated<T>, E>,
) {
    match outcome {
        Ok(Mutated::Suppressed(m)) => {
            tracer.end_with(step, StepStatus::Skipped, Some(m.dry_run_line()))
        }
        Ok(Mutated::Performed(_)) => tracer.end::<(), String>(step, &Ok(())),
        Err(e) => tracer.end_with(step, StepStatus::Error, Some(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_ids_are_found_in_titles() {
        let id = new_correlation_id();
        assert_eq!(id.len(), 3 + 16);
        let title = format!("Deploy main ({id}) by 42");
        assert_eq!(
            correlation_ids_in(&title).collect::<Vec<_>>(),
            [id.as_str()]
        );
        for title in [
            "Deploy vl-0123",
            "vl-0123456789ABCDEF",
            "vl-0123456789abcdef0",
            "xvl-0123456789abcdef",
            "",
        ] {
            assert_eq!(correlation_ids_in(title).count(), 0, "{title}");
        }
    }

    #[test]
    fn derived_correlation_ids_are_stable_and_found_in_titles() {
        let id = correlation_id_for("0123456789abcdef0123456789abcdef");
        assert_eq!(id, correlation_id_for("0123456789abcdef0123456789abcdef"));
        assert_ne!(id, correlation_id_for("fedcba9876543210fedcba9876543210"));
        let title = format!("Deploy main [{id}]");
        assert_eq!(
            correlation_ids_in(&title).collect::<Vec<_>>(),
            [id.as_str()]
        );
    }

    #[test]
    fn only_a_timeout_or_5xx_leaves_the_outcome_unknown() {
        let unknown = GitHubError::Unavailable {
            status: Some(502),
            detail: "Server Error".into(),
        };
        assert!(outcome_unknown(&unknown));
        let timeout = GitHubError::Unavailable {
            status: None,
            detail: "timed out".into(),
        };
        assert!(outcome_unknown(&timeout));
        for refused in [
            GitHubError::Unauthorized,
            GitHubError::Api {
                status: 422,
                message: "Unexpected inputs provided".into(),
            },
            GitHubError::RateLimited {
                retry_at: Utc::now(),
            },
            GitHubError::WorkflowNotFound {
                workflow: "x.yml".into(),
                repo: "o/r".into(),
            },
        ] {
            assert!(!outcome_unknown(&refused), "{refused}");
        }
    }

    #[test]
    fn the_protocol_inputs_override_the_commands_own() {
        let mut inputs = Map::new();
        inputs.insert("VITE_API_BASE".into(), "https://api.example.com".into());
        inputs.insert("requester".into(), "someone else".into());
        let all = with_protocol_inputs(&inputs, "vl-0123456789abcdef", "42");
        assert_eq!(all["correlation_id"], "vl-0123456789abcdef");
        assert_eq!(all["requester"], "42");
        assert_eq!(all["VITE_API_BASE"], "https://api.example.com");
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn the_token_expires_a_ttl_after_the_interaction() {
        assert_eq!(token_expiry(1_000, Duration::from_secs(90)), 91_000);
        assert_eq!(
            token_expiry(i64::MAX - 5, Duration::from_secs(1)),
            i64::MAX,
            "saturates"
        );
    }

    #[test]
    fn a_recovery_searches_only_what_is_left_of_the_identification() {
        let timeout = Duration::from_secs(60);
        assert_eq!(time_left(timeout, 0), timeout);
        assert_eq!(time_left(timeout, 45_000), Duration::from_secs(15));
        assert_eq!(time_left(timeout, 90_000), Duration::ZERO);
        assert_eq!(time_left(timeout, -5_000), timeout, "a clock step back");
    }

    #[test]
    fn a_dispatch_is_audited_under_its_correlation() {
        assert_eq!(
            audit_id("vl-0123456789abcdef"),
            "dispatch-vl-0123456789abcdef"
        );
        let run = RunRef {
            id: 9000,
            html_url: Some("https://github.com/o/r/actions/runs/9000".into()),
        };
        assert_eq!(
            run.link(),
            "[run 9000](https://github.com/o/r/actions/runs/9000)"
        );
        assert_eq!(
            RunRef {
                id: 9000,
                html_url: None
            }
            .link(),
            "run 9000"
        );
    }
}
