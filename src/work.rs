//! The job handler: what each kind of [`Job`] does, mapped to the use case that
//! performs it. The job machinery (`jobs/`) runs jobs without knowing any of this, and
//! the same handler serves the worker of `valine serve`, `valine invoke` and Lambda.

use std::sync::Arc;

use async_trait::async_trait;
use tracing::Instrument;

use tokio::sync::watch;

use crate::app::{App, Feed};
use crate::commands::pipeline;
use crate::deliver::{deliver_reply, with_retry_progress};
use crate::discord::response::Reply;
use crate::jobs::runner::Runner;
use crate::jobs::worker::Worker;
use crate::jobs::{Job, JobError, JobHandler, PendingReply};
use crate::runs::follow;

/// Runs jobs against one App.
pub struct Work {
    app: Arc<App>,
}

impl Work {
    pub fn new(app: Arc<App>) -> Work {
        Work { app }
    }
}

/// A runner of `app`'s jobs with this handler, claiming and settling as `owner`.
pub fn runner(app: &Arc<App>, owner: String) -> Runner {
    Runner::new(
        Arc::clone(&app.store),
        Arc::new(Work::new(Arc::clone(app))),
        app.worker.clone(),
        app.clock.clone(),
        owner,
    )
}

fn worker_owner() -> String {
    format!("worker-{}", uuid::Uuid::new_v4().simple())
}

/// A worker loop over the store's own queue: a runner with this handler and a fresh
/// owner id.
pub fn worker(app: &Arc<App>, queue: Arc<crate::jobs::StoreQueue>) -> Worker {
    Worker::new(queue, Arc::clone(&app.store), runner(app, worker_owner()))
}

/// Runs `app`'s jobs as they come, from whichever queue it uses, until `shutdown` turns
/// true: the worker loop over the store, or the SQS consumer.
pub async fn consume(app: Arc<App>, shutdown: watch::Receiver<bool>) {
    match app.feed.clone() {
        Feed::Store(queue) => worker(&app, queue).run(shutdown).await,
        #[cfg(feature = "aws")]
        Feed::Sqs(queue) => {
            let runner = runner(&app, worker_owner());
            queue.consume(runner, shutdown).await
        }
    }
}

#[async_trait]
impl JobHandler for Work {
    async fn execute(&self, job: &Job) -> Result<(), JobError> {
        let app = self.app.as_ref();
        match job {
            Job::Command(command) => {
                let (reply, _) = with_retry_progress(
                    app,
                    command.reply_to.as_ref(),
                    pipeline::run_deferred(app, command),
                )
                .await;
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
                    // The command's effects happened; only the delivery is retried, as
                    // a job of its own, so the command never runs twice.
                    Err(e) if e.is_retryable() => {
                        app.enqueue(&Job::DeliverReply(pending), Some(&command.trace_id))
                            .await?;
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
                follow::announce(app, announce, app.clock.now_ms())
                    .instrument(span)
                    .await
            }
            Job::FollowRun(run) => {
                let span = tracing::info_span!("run_job", job = "follow_run", run_id = run.run_id, run_attempt = run.run_attempt, correlation_id = %run.correlation_id);
                follow::follow(app, run, app.clock.now_ms())
                    .instrument(span)
                    .await
            }
            Job::PollRun(poll) => {
                let span = tracing::info_span!("run_job", job = "poll_run", run_id = poll.run_id, correlation_id = %poll.correlation_id);
                follow::poll(app, poll, app.clock.now_ms())
                    .instrument(span)
                    .await
            }
        }
    }

    async fn gave_up(&self, job: &Job, attempts: u32, error: &str) {
        let notice = |trace_id: &str, what: &str| {
            Reply::text(format!(
                "❌ Gave up {what}after {attempts} attempts: {error} (trace {})",
                crate::trace::short_id(trace_id)
            ))
            .failed()
        };
        let pending = match job {
            Job::Command(command) => command.reply_to.as_ref().map(|target| PendingReply {
                trace_id: command.trace_id.clone(),
                reply_to: target.clone(),
                channel_id: command.channel_id.clone(),
                reply: notice(&command.trace_id, ""),
            }),
            // The reply itself could not be delivered: one last, short try says why, in
            // case Discord is back.
            Job::DeliverReply(undelivered) => Some(PendingReply {
                reply: notice(&undelivered.trace_id, "delivering the reply "),
                ..undelivered.clone()
            }),
            // What failed was talking to Discord or GitHub; the log line is the report.
            Job::AnnounceRun(_) | Job::FollowRun(_) | Job::PollRun(_) => None,
        };
        if let Some(pending) = pending {
            // Best effort: the failure that exhausted the retries may still stand.
            let _ = deliver_reply(&self.app, &pending).await;
        }
    }
}
