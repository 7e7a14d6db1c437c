//! The jobs that follow a workflow run: announcing a completed deploy in the status
//! channel, updating the message of the command that follows a run, and polling a
//! followed run in case a webhook is missed.
//!
//! All are at-least-once jobs with idempotent effects: edits repeat harmlessly, channel
//! posts carry a nonce per (run, attempt[, status]) with `enforce_nonce`, and an
//! announcement takes a store lock per (run, attempt) first, so two deliveries about
//! the same completion announce it once. Time comes in as `now_ms`, so the interaction
//! token's 15 minutes can be tested without waiting for them.

use super::record_polled;
use super::report::{Verify, cancel_button, completion_report, progress_reply};
use crate::app::App;
use crate::deliver::{nonce, post};
use crate::discord::api::DiscordError;
use crate::discord::response::Reply;
use crate::jobs::{AnnounceRun, FollowRun, Job, JobError, PollRun};
use crate::store::{CorrelationKind, CorrelationRecord, RunRecord, retention};

fn announce_nonce(run: &RunRecord) -> String {
    nonce(format!("a{}.{}", run.id, run.run_attempt))
}

fn follow_nonce(run: &RunRecord, status: &str) -> String {
    let stage = if status == "completed" { 'c' } else { 'p' };
    nonce(format!("f{}.{}.{stage}", run.id, run.run_attempt))
}

/// Runs an [`AnnounceRun`] job.
pub async fn announce(app: &App, job: &AnnounceRun, now_ms: i64) -> Result<(), JobError> {
    let Some(channel) = app.config.discord_status_channel_id.as_deref() else {
        return Ok(());
    };
    let now = now_ms.div_euclid(1000);
    let Some(run) = app.store.get_run(job.run_id, now).await? else {
        tracing::info!("run no longer stored; nothing to announce");
        return Ok(());
    };
    // A re-run has started since: its own completion will be announced.
    if run.run_attempt != job.run_attempt || run.status != "completed" {
        tracing::info!(
            stored_attempt = run.run_attempt,
            "run moved on; announcement skipped"
        );
        return Ok(());
    }
    if job.confirm_workflow && !is_deploy_run(app, &run).await? {
        return Ok(());
    }
    let lock = format!("announce:{}:{}", run.id, run.run_attempt);
    let mine = app
        .store
        .acquire_lock(&lock, &job.delivery_id, now + retention::RUN, now)
        .await?;
    if !mine {
        tracing::info!("already announced by another delivery");
        return Ok(());
    }
    let verify = if app.config.auto_verify {
        // A run Valine dispatched is verified against the API base it was deployed with.
        let correlation = app.store.correlation_for_run(run.id, now).await?;
        Verify::Against {
            api_base: correlation.and_then(|c| c.api_base),
        }
    } else {
        Verify::No
    };
    let reply = completion_report(app, &run, verify).await;
    post(app, channel, &reply, &announce_nonce(&run)).await?;
    tracing::info!(conclusion = run.conclusion.as_deref(), "run announced");
    Ok(())
}

/// Whether the run is of `DEPLOY_WORKFLOW`, asking GitHub (the webhook payload did not
/// say). Without a GitHub client the run cannot be confirmed, so it is not announced.
async fn is_deploy_run(app: &App, run: &RunRecord) -> Result<bool, JobError> {
    let github = match app.github() {
        Ok(github) => github,
        Err(e) => {
            tracing::warn!(error.type = "not_configured", error.message = %e, "cannot tell whether the run is a deploy");
            return Ok(false);
        }
    };
    match github.resolve_workflow(&app.config.deploy_workflow).await {
        Ok(workflow) => Ok(workflow.id == run.workflow_id),
        Err(e) => Err(e.into()),
    }
}

/// Runs a [`FollowRun`] job.
pub async fn follow(app: &App, job: &FollowRun, now_ms: i64) -> Result<(), JobError> {
    let now = now_ms.div_euclid(1000);
    let Some(correlation) = app.store.get_correlation(&job.correlation_id, now).await? else {
        tracing::info!("correlation expired; nobody to update");
        return Ok(());
    };
    if correlation.run_id.is_some_and(|id| id != job.run_id) {
        return Ok(());
    }
    let Some(run) = app.store.get_run(job.run_id, now).await? else {
        return Ok(());
    };
    // Jobs may run out of order (retries): never replace a result with progress, nor
    // a newer attempt's news with an older one's.
    let superseded = run.run_attempt > job.run_attempt
        || (job.status != "completed" && run.status == "completed");
    if superseded {
        tracing::info!(status = %job.status, "run moved on; update skipped");
        return Ok(());
    }
    if correlation.kind == CorrelationKind::Diagnose {
        // The /diagnose message keeps its findings; only the workflow's result is added.
        if job.status != "completed" {
            return Ok(());
        }
        let reply = completion_report(app, &run, Verify::No).await;
        return extend(
            app,
            &correlation,
            &reply,
            &follow_nonce(&run, &job.status),
            now_ms,
        )
        .await;
    }
    let reply = if job.status == "completed" {
        // `wait:true`: on success the report probes the API base that was dispatched.
        let verify = if correlation.wait && run.conclusion.as_deref() == Some("success") {
            Verify::Against {
                api_base: correlation.api_base.clone(),
            }
        } else {
            Verify::No
        };
        completion_report(app, &run, verify).await
    } else {
        // The dispatch reply carried `Cancel run`; progress must not take it away.
        progress_reply(&run).with_button(cancel_button(run.id))
    };
    deliver(
        app,
        &correlation,
        &reply,
        &follow_nonce(&run, &job.status),
        now_ms,
    )
    .await
}

/// Schedules `poll` one `run_poll` interval from now.
pub async fn schedule_poll(app: &App, poll: &PollRun) -> Result<(), crate::jobs::QueueError> {
    let at = app.clock.ms_after(app.worker.run_poll);
    app.enqueue_at(&Job::PollRun(poll.clone()), poll.job_id(), at)
        .await
}

/// Runs a [`PollRun`] job: reads the run from GitHub and, when GitHub knows more than
/// the store (a webhook was missed or is late), records it the way a delivery would, so
/// the follower's message and the announcement follow as usual. Polls again until the
/// run completes or the interaction token expires (after that, webhooks post to the
/// channel; a poll has no message left to keep fresh).
pub async fn poll(app: &App, job: &PollRun, now_ms: i64) -> Result<(), JobError> {
    let now = now_ms.div_euclid(1000);
    let Some(correlation) = app.store.get_correlation(&job.correlation_id, now).await? else {
        return Ok(());
    };
    if !correlation.token_live(now_ms) {
        tracing::info!("interaction token expired; polling stops");
        return Ok(());
    }
    let github = match app.github() {
        Ok(github) => github,
        Err(e) => {
            tracing::warn!(error.type = "not_configured", error.message = %e, "cannot poll the run");
            return Ok(());
        }
    };
    let observed = match github.get_run(job.run_id).await {
        Ok(Some(run)) => Some(run),
        Ok(None) => {
            tracing::warn!("run not found on GitHub; polling stops");
            return Ok(());
        }
        // A failed read is no reason to stop following: the next tick asks again.
        Err(e) => {
            tracing::warn!(error.type = e.error_type(), error.message = %crate::error::chain(&e), "polling the run failed");
            None
        }
    };
    if let Some(run) = &observed {
        record_polled(app, &correlation, run, now_ms).await?;
        if run.is_completed() {
            return Ok(());
        }
    }
    Ok(schedule_poll(app, &job.next()).await?)
}

/// Where news for a correlation goes at `now_ms`.
#[derive(Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// Edit the command's original message (the interaction token still lives).
    Edit {
        application_id: &'a str,
        token: &'a str,
    },
    /// Post to the command's channel with the bot token.
    Channel(&'a str),
    Nowhere,
}

impl std::fmt::Debug for Route<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::Edit { application_id, .. } => f
                .debug_struct("Edit")
                .field("application_id", application_id)
                .field("token", &"[REDACTED]")
                .finish(),
            Route::Channel(id) => f.debug_tuple("Channel").field(id).finish(),
            Route::Nowhere => f.write_str("Nowhere"),
        }
    }
}

/// The original message while the interaction token lives (Discord accepts edits for
/// 15 minutes after the interaction), the channel afterwards.
pub fn route(correlation: &CorrelationRecord, now_ms: i64) -> Route<'_> {
    match (
        &correlation.application_id,
        &correlation.interaction_token,
        correlation.token_live(now_ms),
    ) {
        (Some(application_id), Some(token), true) => Route::Edit {
            application_id,
            token,
        },
        _ => channel_route(correlation),
    }
}

fn channel_route(correlation: &CorrelationRecord) -> Route<'_> {
    correlation
        .channel_id
        .as_deref()
        .map_or(Route::Nowhere, Route::Channel)
}

/// Sends `reply` where [`route`] says; a token Discord no longer accepts (401, 404)
/// falls back to the channel.
async fn deliver(
    app: &App,
    correlation: &CorrelationRecord,
    reply: &Reply,
    nonce: &str,
    now_ms: i64,
) -> Result<(), JobError> {
    let route = match route(correlation, now_ms) {
        Route::Edit {
            application_id,
            token,
        } => {
            match app
                .discord
                .edit_original(application_id, token, &reply.to_message_json())
                .await
            {
                Ok(()) => return Ok(()),
                Err(DiscordError::Unauthorized { .. } | DiscordError::NotFound { .. }) => {
                    tracing::info!("interaction token no longer accepted; posting to the channel");
                    channel_route(correlation)
                }
                Err(e) => return Err(e.into()),
            }
        }
        other => other,
    };
    match route {
        Route::Channel(channel) => post(app, channel, reply, nonce).await,
        _ => {
            tracing::warn!("correlation has no channel; run update dropped");
            Ok(())
        }
    }
}

/// Adds `reply`'s embeds to the command's original message (keeping what it showed),
/// or posts `reply` to the channel once the token is gone.
async fn extend(
    app: &App,
    correlation: &CorrelationRecord,
    reply: &Reply,
    nonce: &str,
    now_ms: i64,
) -> Result<(), JobError> {
    if let Route::Edit {
        application_id,
        token,
    } = route(correlation, now_ms)
    {
        let original = app.discord.get_original(application_id, token).await;
        let result = match original {
            Ok(message) => {
                let body = extended_message(&message, reply);
                app.discord
                    .edit_original(application_id, token, &body)
                    .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => return Ok(()),
            Err(DiscordError::Unauthorized { .. } | DiscordError::NotFound { .. }) => {
                tracing::info!("interaction token no longer accepted; posting to the channel");
            }
            Err(e) => return Err(e.into()),
        }
    }
    match channel_route(correlation) {
        Route::Channel(channel) => post(app, channel, reply, nonce).await,
        _ => {
            tracing::warn!("correlation has no channel; run update dropped");
            Ok(())
        }
    }
}

/// The original message with `reply`'s embeds appended (an earlier copy of the same
/// embed replaced, so a repeated job changes nothing) and its components kept.
fn extended_message(original: &serde_json::Value, reply: &Reply) -> serde_json::Value {
    let addition = reply.to_message_json();
    let added: Vec<serde_json::Value> = addition["embeds"].as_array().cloned().unwrap_or_default();
    let titles: Vec<&serde_json::Value> = added.iter().map(|e| &e["title"]).collect();
    let mut embeds: Vec<serde_json::Value> = original["embeds"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| !titles.contains(&&e["title"]))
        .collect();
    embeds.extend(added);
    embeds.truncate(10);
    serde_json::json!({
        "content": original["content"].clone(),
        "embeds": embeds,
        "components": original.get("components").cloned().unwrap_or(serde_json::json!([])),
        "allowed_mentions": {"parse": []},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discord::api::MAX_NONCE_LEN;
    use crate::runs::report::tests::run;

    fn correlation(token_expires_at_ms: i64) -> CorrelationRecord {
        CorrelationRecord {
            id: "vl-0123456789abcdef".into(),
            kind: CorrelationKind::Deploy,
            requester: "42".into(),
            channel_id: Some("901".into()),
            application_id: Some("4242".into()),
            interaction_token: Some("secret-token".into()),
            token_expires_at_ms,
            wait: true,
            api_base: None,
            run_id: None,
            created_at_ms: 0,
            expires_at: i64::MAX,
        }
    }

    #[test]
    fn poll_ids_name_the_step_so_a_repeat_schedules_the_same_next_poll() {
        let first = PollRun {
            correlation_id: "vl-0123456789abcdef".into(),
            run_id: 7,
            seq: 1,
        };
        assert_eq!(first.next().job_id(), first.next().job_id());
        assert_ne!(first.job_id(), first.next().job_id());
        assert_eq!(first.next().seq, 2);
    }

    #[test]
    fn nonces_fit_discord_and_differ_per_attempt_and_status() {
        let r = run(Some("success"), 1);
        assert_eq!(announce_nonce(&r), "a30433642.1");
        assert_ne!(
            follow_nonce(&r, "in_progress"),
            follow_nonce(&r, "completed")
        );
        assert_ne!(announce_nonce(&r), announce_nonce(&run(Some("success"), 2)));
        let huge = RunRecord {
            id: u64::MAX,
            run_attempt: u32::MAX,
            ..r
        };
        let n = announce_nonce(&huge);
        assert_eq!(n.len(), MAX_NONCE_LEN);
        assert_eq!(n, announce_nonce(&huge), "stable");
    }

    #[test]
    fn route_follows_the_token_lifetime() {
        let live = correlation(1_000);
        assert_eq!(
            route(&live, 999),
            Route::Edit {
                application_id: "4242",
                token: "secret-token"
            }
        );
        assert_eq!(route(&live, 1_000), Route::Channel("901"));
        let no_channel = CorrelationRecord {
            channel_id: None,
            ..correlation(0)
        };
        assert_eq!(route(&no_channel, 1), Route::Nowhere);
        let no_token = CorrelationRecord {
            interaction_token: None,
            ..correlation(i64::MAX)
        };
        assert_eq!(route(&no_token, 1), Route::Channel("901"));
        assert!(!format!("{:?}", route(&live, 0)).contains("secret-token"));
        assert!(!format!("{live:?}").contains("secret-token"));
    }
}
