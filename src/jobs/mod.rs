//! Durable background work (SPEC §5): the [`Job`] kinds, how each runs, and the
//! [`worker`] loop that claims them from the store with a lease.
//!
//! A job is at-least-once: it may run again after a crash, so every effect is
//! idempotent (an edit of the original response repeats harmlessly).

pub mod runs;
pub mod worker;

use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::app::App;
use crate::commands::{Call, CommandName};
use crate::discord::interaction::{Caller, OptionMap};
use crate::discord::response::Reply;
use crate::store::Outcome;
use crate::trace::Tracer;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// The body of a deferred slash command; its reply edits the original response.
    Command(DeferredCommand),
    /// Announces a completed deploy run in the status channel (SPEC §3.2.4).
    AnnounceRun(runs::AnnounceRun),
    /// Updates the message of the command that follows a run.
    FollowRun(runs::FollowRun),
    /// Re-reads a followed run from GitHub, in case a webhook is missed.
    PollRun(runs::PollRun),
    /// Delivers a deferred command's finished reply whose first delivery failed, so a
    /// retry repeats the delivery and never the command.
    DeliverReply(PendingReply),
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

/// How a job attempt ended, for the worker's retry decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// Worth another attempt (Discord or the store briefly unavailable).
    Transient(String),
    /// Retrying cannot help.
    Permanent(String),
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::Transient(m) | JobError::Permanent(m) => f.write_str(m),
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

    fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "command",
            trace_id = %self.trace_id,
            user_id = %self.user_id,
            command = %self.command,
        )
    }
}

/// Runs a deferred command's body and returns its reply; the trace is completed and
/// stored, and the completion line logged. Shared by the worker and `valine invoke`.
pub async fn run_command_body(app: &App, job: &DeferredCommand) -> (Reply, Outcome) {
    let span = job.span();
    async {
        let now_ms = crate::clock::now_ms();
        let mut tracer = match job.trace.clone() {
            Some(record) => Tracer::resume(*record),
            None => {
                let options = job
                    .options
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect();
                let mut tracer = Tracer::start(&job.user_id, &job.command, &options, now_ms);
                tracer.set_id(&job.trace_id);
                tracer
            }
        };
        let call = Call {
            caller: job.caller(),
            options: job.options.clone(),
            reply_to: job.reply_to.clone(),
        };
        let (reply, outcome, error) = match CommandName::from_name(&job.command) {
            None => (
                Reply::text(format!("❌ Unknown command /{}", job.command)).failed(),
                Outcome::Invalid,
                Some("unknown command".to_owned()),
            ),
            Some(command) => {
                match run_body(app, command, job.button.as_ref(), &call, &mut tracer).await {
                    Ok(reply) => {
                        let outcome = if reply.failed {
                            Outcome::Error
                        } else {
                            Outcome::Ok
                        };
                        (reply, outcome, None)
                    }
                    Err(e) => {
                        tracing::error!(
                            error.type = e.error_type(),
                            error.message = %e,
                            "command failed"
                        );
                        let message = e.user_message(tracer.short_id());
                        let outcome = e.outcome();
                        (Reply::text(message).failed(), outcome, Some(e.to_string()))
                    }
                }
            }
        };
        let record = tracer.finish(outcome, error);
        if let Err(e) = app.store.put_trace(&record).await {
            tracing::warn!(error.type = "store_unavailable", error.message = %e, "trace not saved");
        }
        tracing::info!(
            duration_ms = record.duration_ms.unwrap_or(0),
            outcome = outcome.as_str(),
            "command finished"
        );
        (reply, outcome)
    }
    .instrument(span)
    .await
}

async fn run_body(
    app: &App,
    command: CommandName,
    button: Option<&ButtonPress>,
    call: &Call,
    tracer: &mut Tracer,
) -> Result<Reply, crate::commands::CommandError> {
    match button {
        Some(press) => {
            command
                .press(app, &press.action, &press.id, call, tracer)
                .await
        }
        None => command.run(app, call, tracer).await,
    }
}

/// One attempt at a job.
pub async fn execute(app: &App, job: &Job) -> Result<(), JobError> {
    match job {
        Job::Command(command) => {
            let (reply, _) = run_command_body(app, command).await;
            let Some(target) = &command.reply_to else {
                return Ok(());
            };
            let pending = PendingReply {
                trace_id: command.trace_id.clone(),
                reply_to: target.clone(),
                channel_id: command.channel_id.clone(),
                reply,
            };
            match deliver_reply(app, &pending)
                .instrument(command.span())
                .await
            {
                // The command's effects happened; only the delivery is retried.
                Err(JobError::Transient(_)) => {
                    enqueue(app, &Job::DeliverReply(pending), Some(&command.trace_id))
                        .await
                        .map_err(|e| JobError::Transient(e.to_string()))?;
                    Ok(())
                }
                other => other,
            }
        }
        Job::DeliverReply(pending) => {
            let span = tracing::info_span!("command", trace_id = %pending.trace_id);
            deliver_reply(app, pending).instrument(span).await
        }
        Job::AnnounceRun(announce) => {
            let span = tracing::info_span!(
                "run_job",
                job = "announce_run",
                run_id = announce.run_id,
                run_attempt = announce.run_attempt
            );
            runs::announce(app, announce, crate::clock::now_ms())
                .instrument(span)
                .await
        }
        Job::FollowRun(follow) => {
            let span = tracing::info_span!("run_job", job = "follow_run", run_id = follow.run_id, run_attempt = follow.run_attempt, correlation_id = %follow.correlation_id);
            runs::follow(app, follow, crate::clock::now_ms())
                .instrument(span)
                .await
        }
        Job::PollRun(poll) => {
            let span = tracing::info_span!("run_job", job = "poll_run", run_id = poll.run_id, correlation_id = %poll.correlation_id);
            runs::poll(app, poll, crate::clock::now_ms())
                .instrument(span)
                .await
        }
    }
}

/// Edits the deferred response; once the interaction token no longer works (Discord
/// accepts it for 15 minutes), the reply goes to the channel with the bot token.
async fn deliver_reply(app: &App, pending: &PendingReply) -> Result<(), JobError> {
    let target = &pending.reply_to;
    let body = pending.reply.to_message_json();
    match app
        .discord
        .edit_original(&target.application_id, &target.token, &body)
        .await
    {
        Ok(()) => Ok(()),
        Err(
            crate::discord::api::DiscordError::Unauthorized { .. }
            | crate::discord::api::DiscordError::NotFound { .. },
        ) if pending.channel_id.is_some() => {
            let channel = pending.channel_id.as_deref().unwrap_or_default();
            tracing::info!(
                "interaction token no longer accepted; posting the reply to the channel"
            );
            runs::post(
                app,
                channel,
                &pending.reply,
                &runs::reply_nonce(&pending.trace_id),
            )
            .await
        }
        Err(e) => {
            tracing::warn!(error.type = e.error_type(), error.message = %e, "editing the reply failed");
            if e.is_transient() {
                Err(JobError::Transient(e.to_string()))
            } else {
                Err(JobError::Permanent(e.to_string()))
            }
        }
    }
}

/// Tells the user a job gave up, if it has anywhere to say it.
pub async fn report_gave_up(app: &App, job: &Job, attempts: u32, error: &str) {
    match job {
        Job::Command(command) => {
            if let Some(target) = &command.reply_to {
                let pending = PendingReply {
                    trace_id: command.trace_id.clone(),
                    reply_to: target.clone(),
                    channel_id: command.channel_id.clone(),
                    reply: Reply::text(format!(
                        "❌ Gave up after {attempts} attempts: {error} (trace {})",
                        crate::trace::short_id(&command.trace_id)
                    ))
                    .failed(),
                };
                // Best effort: the failure that exhausted the retries may still stand.
                let _ = deliver_reply(app, &pending).await;
            }
        }
        // The reply could not be delivered; the worker's log line is the report.
        Job::DeliverReply(_) => {}
        // What failed was talking to Discord itself; the worker's log line is the report.
        Job::AnnounceRun(_) | Job::FollowRun(_) | Job::PollRun(_) => {}
    }
}

/// The store record of `job`, due at `now_ms`, for [`enqueue`] or a write that carries
/// jobs with other effects (a webhook delivery).
pub fn job_record(
    app: &App,
    job: &Job,
    trace_id: Option<&str>,
    now_ms: i64,
) -> Result<crate::store::NewJob, crate::store::StoreError> {
    let deadline_ms =
        now_ms + i64::try_from(app.worker.deadline.as_millis()).unwrap_or(i64::MAX / 2);
    let payload = serde_json::to_value(job)
        .map_err(|e| crate::store::StoreError::encode("enqueue_job", "job payload", e))?;
    Ok(crate::store::NewJob {
        id: uuid::Uuid::now_v7().simple().to_string(),
        payload,
        run_after_ms: now_ms,
        deadline_ms,
        trace_id: trace_id.map(str::to_owned),
    })
}

/// Persists a job for the worker and wakes the in-process worker.
pub async fn enqueue(
    app: &App,
    job: &Job,
    trace_id: Option<&str>,
) -> Result<String, crate::store::StoreError> {
    let now = crate::clock::now_ms();
    let record = job_record(app, job, trace_id, now)?;
    app.store.enqueue_job(&record, now).await?;
    app.jobs_ready.notify_one();
    Ok(record.id)
}

/// Persists a job with a caller-chosen id, due at `run_after_ms`. Writing the same id
/// again keeps the first job, so work that schedules its own next step (a poll) cannot
/// fork into two chains when it is repeated after a crash.
pub async fn enqueue_scheduled(
    app: &App,
    job: &Job,
    id: String,
    run_after_ms: i64,
) -> Result<(), crate::store::StoreError> {
    let now = crate::clock::now_ms();
    let mut record = job_record(app, job, None, now)?;
    record.id = id;
    record.run_after_ms = run_after_ms;
    record.deadline_ms = record.deadline_ms.max(run_after_ms);
    app.store.enqueue_job(&record, now).await?;
    app.jobs_ready.notify_one();
    Ok(())
}

/// A task that ends with its owner: when the server or worker loop is dropped (the
/// process is going away), work it spawned must not carry on unsupervised.
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
