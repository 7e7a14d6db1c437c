//! Durable background work: what a job is ([`Job`], plain data serialized into the
//! queue), where jobs go and come from ([`queue`]: the [`JobQueue`] port and its
//! store-backed adapter), how one job record runs ([`runner`]: decode, attempt and
//! deadline limits, lease renewal, retry with backoff or give up), and the [`worker`]
//! loop that claims due jobs and runs several side by side.
//!
//! This module does not know what a job does: a [`JobHandler`] given to the runner
//! does (`crate::work`). A job is at-least-once: it may run again after a crash, so
//! every effect is idempotent (an edit of the original response repeats harmlessly;
//! channel posts carry a nonce). See `docs/design.md#jobs`.

pub mod queue;
pub mod runner;
#[cfg(feature = "aws")]
pub mod sqs;
pub mod worker;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::discord::api::DiscordError;
use crate::discord::interaction::{Caller, OptionMap};
use crate::discord::response::Reply;
use crate::github::api::GitHubError;
use crate::store::{NewJob, StoreError};

pub use queue::{JobQueue, JobSource, QueueError, StoreQueue};

/// Timings and limits of the job machinery; tests shorten them.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How long a claimed job stays leased without renewal: a crashed worker's job is
    /// claimable again after this, so work resumes within it. Renewed every third of
    /// it while the job runs.
    pub lease: Duration,
    /// How often an idle worker looks for due jobs (a local submit wakes it at once;
    /// another process's does not).
    pub poll: Duration,
    /// How many jobs one worker runs side by side: a slow job (a probe waiting on a
    /// slow site) must not hold up every other user's reply.
    pub concurrency: usize,
    /// First retry delay; doubled per attempt, with jitter.
    pub backoff_base: Duration,
    pub max_attempts: u32,
    /// How long a job may keep retrying after it was submitted (15 minutes; a job that
    /// schedules itself later, such as a poll, gets at least its start time).
    pub deadline: Duration,
    /// How long a stopping server lets running work finish.
    pub shutdown_grace: Duration,
    /// How often a `/deploy-client wait:true` message re-reads its run from GitHub, in
    /// case a webhook is missed (every 15 s while the interaction token lives).
    pub run_poll: Duration,
    /// How long a dispatch looks for its run by correlation id when GitHub did not
    /// return it (up to 60 s), and how often it asks meanwhile.
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
            lease: Duration::from_secs(15),
            poll: Duration::from_secs(1),
            concurrency: 8,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// The body of a deferred slash command; its reply edits the original response.
    Command(DeferredCommand),
    /// Announces a completed deploy run in the status channel.
    AnnounceRun(AnnounceRun),
    /// Updates the message of the command that follows a run.
    FollowRun(FollowRun),
    /// Re-reads a followed run from GitHub, in case a webhook is missed.
    PollRun(PollRun),
    /// Delivers a deferred command's finished reply whose first delivery failed, so a
    /// retry repeats the delivery and never the command.
    DeliverReply(PendingReply),
}

impl Job {
    /// The job's kind as its payload spells it (`kind`), for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Job::Command(_) => "command",
            Job::AnnounceRun(_) => "announce_run",
            Job::FollowRun(_) => "follow_run",
            Job::PollRun(_) => "poll_run",
            Job::DeliverReply(_) => "deliver_reply",
        }
    }
}

/// A finished reply still to be delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingReply {
    pub trace_id: String,
    pub reply_to: ReplyTarget,
    /// Where the reply goes once the interaction token no longer works.
    pub channel_id: Option<String>,
    pub reply: Reply,
}

/// Everything the worker needs to finish a command that was answered with type 5.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct DeferredCommand {
    pub trace_id: String,
    pub command: String,
    pub options: OptionMap,
    pub user_id: String,
    pub roles: Vec<String>,
    pub guild_id: Option<String>,
    pub channel_id: Option<String>,
    /// `None` for `valine invoke`, which prints the reply instead.
    pub reply_to: Option<ReplyTarget>,
    /// Set when the work is a button press of this command rather than the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button: Option<ButtonPress>,
    /// The trace so far (authorization, validation), carried with the job rather than
    /// written separately: the request path keeps to its two store writes (rate-limit
    /// count, enqueue). The job stores the finished trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<Box<crate::store::TraceRecord>>,
}

/// A pressed button: `valine:<action>:<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ButtonPress {
    pub action: String,
    pub id: String,
}

/// The interaction webhook to edit, stored with the job; its `Debug` hides the token.
pub use crate::discord::interaction::ReplyHandle as ReplyTarget;

impl std::fmt::Debug for DeferredCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredCommand")
            .field("trace_id", &self.trace_id)
            .field("command", &self.command)
            .field("user_id", &self.user_id)
            .field("reply_to", &self.reply_to)
            .finish_non_exhaustive()
    }
}

/// Announce a completed run in `DISCORD_STATUS_CHANNEL_ID`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnounceRun {
    pub run_id: u64,
    pub run_attempt: u32,
    /// The delivery that asked for it: owner of the per-(run, attempt) lock, so a retry
    /// of this job gets the lock again and another delivery's job does not.
    pub delivery_id: String,
    /// The payload could not tell whether the run is of `DEPLOY_WORKFLOW`: resolve it
    /// through GitHub before announcing.
    #[serde(default)]
    pub confirm_workflow: bool,
}

/// Update the message of the command whose correlation the run carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowRun {
    pub correlation_id: String,
    pub run_id: u64,
    pub run_attempt: u32,
    /// The status the event reported: `in_progress` or `completed`.
    pub status: String,
}

/// Re-read a followed run from GitHub: the fallback for a missed webhook while the
/// interaction token lives (`/deploy-client wait:true`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollRun {
    pub correlation_id: String,
    pub run_id: u64,
    /// Which poll of the chain this is. It is part of the job id, so a poll that runs
    /// twice (after a crash) schedules the same next poll instead of a second chain.
    pub seq: u32,
}

impl PollRun {
    pub fn job_id(&self) -> String {
        format!("poll-{}-{}-{}", self.correlation_id, self.run_id, self.seq)
    }

    /// The poll after this one.
    pub fn next(&self) -> PollRun {
        PollRun {
            seq: self.seq.saturating_add(1),
            ..self.clone()
        }
    }
}

impl DeferredCommand {
    pub fn caller(&self) -> Caller {
        Caller {
            user_id: self.user_id.clone(),
            roles: self.roles.clone(),
            guild_id: self.guild_id.clone(),
            channel_id: self.channel_id.clone(),
        }
    }

    /// The command's log span: every line of its job carries its trace id.
    pub fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "command",
            trace_id = %self.trace_id,
            user_id = %self.user_id,
            command = %self.command,
        )
    }
}

/// Why a job attempt failed, with its cause; [`JobError::is_retryable`] tells the
/// runner whether another attempt can help.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Queue(#[from] QueueError),
    #[error("{0}")]
    Discord(#[from] DiscordError),
    #[error("{0}")]
    GitHub(#[from] GitHubError),
    /// A payload this version cannot read will not improve with retries.
    #[error("unreadable job payload")]
    Decode(#[source] serde_json::Error),
}

impl JobError {
    /// Whether another attempt may succeed: an outage, a timeout, a rate limit. A
    /// refusal (401, 403, 404, a bad payload) stays a refusal.
    pub fn is_retryable(&self) -> bool {
        match self {
            JobError::Store(e) => e.is_retryable(),
            JobError::Queue(e) => e.is_retryable(),
            JobError::Discord(e) => e.is_transient(),
            JobError::GitHub(e) => e.is_transient(),
            JobError::Decode(_) => false,
        }
    }

    /// The stable class logged as `error.type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            JobError::Store(e) => e.error_type(),
            JobError::Queue(e) => e.error_type(),
            JobError::Discord(e) => e.error_type(),
            JobError::GitHub(e) => e.error_type(),
            JobError::Decode(_) => "job_decode",
        }
    }
}

/// What each kind of job does; the runner calls it and never looks inside a job.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// One attempt at the job.
    async fn execute(&self, job: &Job) -> Result<(), JobError>;
    /// Tells the user the job gave up, where it has anywhere to say it. Best effort:
    /// the failure that ended the job may still stand.
    async fn gave_up(&self, job: &Job, attempts: u32, error: &str);
}

/// The record that persists `job`, due at `now_ms` and given up after `deadline`.
pub fn new_job(
    job: &Job,
    trace_id: Option<&str>,
    now_ms: i64,
    deadline: Duration,
) -> Result<NewJob, QueueError> {
    let payload = serde_json::to_value(job).map_err(QueueError::Encode)?;
    Ok(NewJob {
        id: uuid::Uuid::now_v7().simple().to_string(),
        payload,
        run_after_ms: now_ms,
        deadline_ms: now_ms.saturating_add(crate::clock::duration_ms(deadline)),
        trace_id: trace_id.map(str::to_owned),
    })
}

/// A task that ends with its owner: when the server or worker loop is dropped (the
/// process is going away), work it spawned must not carry on unsupervised.
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
