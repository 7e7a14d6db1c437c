//! Follow-ups of workflow runs (SPEC §3.2.4), run by the worker after a webhook:
//! announcing a completed deploy in the status channel, and updating the message of the
//! command that follows a run (`/deploy-client wait:true`, a `/diagnose` dispatch).
//!
//! Both are at-least-once jobs with idempotent effects: edits repeat harmlessly, channel
//! posts carry a nonce per (run, attempt[, status]) with `enforce_nonce`, and an
//! announcement takes a store lock per (run, attempt) first, so two deliveries about the
//! same completion announce it once. Time comes in as `now_ms`, so the interaction
//! token's 15 minutes can be tested without waiting for them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::JobError;
use crate::app::App;
use crate::discord::api::{DiscordError, MAX_NONCE_LEN};
use crate::discord::response::{self, Button, Embed, Reply};
use crate::store::{
    CorrelationKind, CorrelationRecord, DeliveryEffects, FailedStepRecord, Outcome, RunRecord,
    StoreError, retention,
};
use crate::trace::Tracer;

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
/// interaction token lives (SPEC §4.2, `/deploy-client wait:true`).
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

    fn next(&self) -> PollRun {
        PollRun {
            seq: self.seq.saturating_add(1),
            ..self.clone()
        }
    }
}

/// Discord nonces hold 25 characters; anything longer is hashed down, stably.
fn nonce(text: String) -> String {
    if text.len() <= MAX_NONCE_LEN {
        return text;
    }
    let digest = hex::encode(Sha256::digest(text.as_bytes()));
    digest[..MAX_NONCE_LEN].to_owned()
}

/// The nonce of a deferred command's reply posted to its channel (token expired).
pub(crate) fn reply_nonce(trace_id: &str) -> String {
    nonce(format!("r{trace_id}"))
}

fn announce_nonce(run: &RunRecord) -> String {
    nonce(format!("a{}.{}", run.id, run.run_attempt))
}

fn follow_nonce(run: &RunRecord, status: &str) -> String {
    let stage = if status == "completed" { 'c' } else { 'p' };
    nonce(format!("f{}.{}.{stage}", run.id, run.run_attempt))
}

fn store_error(e: StoreError) -> JobError {
    JobError::Transient(e.to_string())
}

fn discord_error(e: DiscordError) -> JobError {
    if e.is_transient() {
        JobError::Transient(e.to_string())
    } else {
        JobError::Permanent(e.to_string())
    }
}

/// Runs an [`AnnounceRun`] job.
pub async fn announce(app: &App, job: &AnnounceRun, now_ms: i64) -> Result<(), JobError> {
    let Some(channel) = app.config.discord_status_channel_id.as_deref() else {
        return Ok(());
    };
    let now = now_ms.div_euclid(1000);
    let Some(run) = app
        .store
        .get_run(job.run_id, now)
        .await
        .map_err(store_error)?
    else {
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
        .await
        .map_err(store_error)?;
    if !mine {
        tracing::info!("already announced by another delivery");
        return Ok(());
    }
    let verify = if app.config.auto_verify {
        // A run Valine dispatched is verified against the API base it was deployed with.
        let correlation = app
            .store
            .correlation_for_run(run.id, now)
            .await
            .map_err(store_error)?;
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
        Err(e) if e.is_transient() => Err(JobError::Transient(e.to_string())),
        Err(e) => Err(JobError::Permanent(e.to_string())),
    }
}

/// Runs a [`FollowRun`] job.
pub async fn follow(app: &App, job: &FollowRun, now_ms: i64) -> Result<(), JobError> {
    let now = now_ms.div_euclid(1000);
    let Some(correlation) = app
        .store
        .get_correlation(&job.correlation_id, now)
        .await
        .map_err(store_error)?
    else {
        tracing::info!("correlation expired; nobody to update");
        return Ok(());
    };
    if correlation.run_id.is_some_and(|id| id != job.run_id) {
        return Ok(());
    }
    let Some(run) = app
        .store
        .get_run(job.run_id, now)
        .await
        .map_err(store_error)?
    else {
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
        progress_reply(&run).with_button(crate::commands::deploy_client::cancel_button(run.id))
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
pub async fn schedule_poll(app: &App, poll: &PollRun) -> Result<(), StoreError> {
    let interval = i64::try_from(app.worker.run_poll.as_millis()).unwrap_or(i64::MAX / 4);
    let at = crate::clock::now_ms().saturating_add(interval);
    super::enqueue_scheduled(app, &super::Job::PollRun(poll.clone()), poll.job_id(), at).await
}

/// Runs a [`PollRun`] job: reads the run from GitHub and, when GitHub knows more than
/// the store (a webhook was missed or is late), records it the way a delivery would, so
/// the follower's message and the announcement follow as usual. Polls again until the
/// run completes or the interaction token expires (after that, webhooks post to the
/// channel; a poll has no message left to keep fresh).
pub async fn poll(app: &App, job: &PollRun, now_ms: i64) -> Result<(), JobError> {
    let now = now_ms.div_euclid(1000);
    let Some(correlation) = app
        .store
        .get_correlation(&job.correlation_id, now)
        .await
        .map_err(store_error)?
    else {
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
            tracing::warn!(error.type = e.error_type(), error.message = %e, "polling the run failed");
            None
        }
    };
    if let Some(run) = &observed {
        record_polled(app, &correlation, run, now_ms).await?;
        if run.is_completed() {
            return Ok(());
        }
    }
    schedule_poll(app, &job.next()).await.map_err(store_error)
}

/// Records what a poll saw when it is news to the store: the run upsert and the jobs a
/// delivery with the same facts would plan, under a delivery id per (run, attempt,
/// status), so repeated polls of one state act once.
async fn record_polled(
    app: &App,
    correlation: &CorrelationRecord,
    run: &crate::github::model::WorkflowRun,
    now_ms: i64,
) -> Result<(), JobError> {
    use crate::github::webhook::{RunEvent, plan_run};
    let now = now_ms.div_euclid(1000);
    let event = RunEvent::from_rest(run);
    let stored = app.store.get_run(run.id, now).await.map_err(store_error)?;
    let news = stored.is_none_or(|s| {
        s.run_attempt < event.run_attempt
            || (s.run_attempt == event.run_attempt
                && s.status != event.status
                && s.status != "completed")
    });
    if !news {
        return Ok(());
    }
    let delivery_id = format!("poll:{}:{}:{}", run.id, run.run_attempt, event.status);
    let mut effects = DeliveryEffects {
        delivery_id: delivery_id.clone(),
        expires_at: now + retention::DELIVERY,
        run: Some(event.to_record(now + retention::RUN)),
        ..Default::default()
    };
    for job in plan_run(&app.config, &event, Some(correlation), &delivery_id) {
        effects
            .jobs
            .push(super::job_record(app, &job, None, now_ms).map_err(store_error)?);
    }
    let accepted = app
        .store
        .accept_delivery(&effects, now)
        .await
        .map_err(store_error)?;
    if accepted {
        tracing::info!(status = %event.status, "poll saw news of the run");
        app.jobs_ready.notify_one();
    }
    Ok(())
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

/// The original message while the interaction token lives (SPEC §4.1 "Answering"),
/// the channel afterwards.
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
                Err(e) => return Err(discord_error(e)),
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
            Err(e) => return Err(discord_error(e)),
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

/// Whether a completion report carries a verification (SPEC §3.2.4 `AUTO_VERIFY`,
/// §4.2 `wait:true`), and the API base to probe when it is not the one in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verify {
    No,
    Against { api_base: Option<String> },
}

/// A channel post, unless `DRY_RUN` suppresses it (SPEC §4.3: a post with no reply to
/// show it in is logged only, which `App::mutate` does).
pub(crate) async fn post(
    app: &App,
    channel: &str,
    reply: &Reply,
    nonce: &str,
) -> Result<(), JobError> {
    let body = reply.to_message_json();
    app.mutate(
        app.discord.create_message_mutation(channel, &body, nonce),
        app.discord.create_message(channel, &body, nonce),
    )
    .await
    .map(|_| ())
    .map_err(discord_error)
}

/// The message for a completed run: the status-channel announcement and a follower's
/// result. The single place that decides what a completion report says, so that
/// verification (`AUTO_VERIFY`) extends it once for both.
pub async fn completion_report(app: &App, run: &RunRecord, verify: Verify) -> Reply {
    let failed = if run.conclusion.as_deref() == Some("success") {
        None
    } else {
        match app
            .store
            .failed_step(run.id, crate::clock::now_secs())
            .await
        {
            Ok(step) => step.filter(|s| s.run_attempt == run.run_attempt),
            Err(e) => {
                // The report is still worth sending without the failing step.
                tracing::warn!(error.type = "store_unavailable", error.message = %e, "failing step not read");
                None
            }
        }
    };
    let mut reply = completion_reply(run, failed.as_ref());
    if let Verify::Against { api_base } = verify {
        append_verification(app, run, api_base.as_deref(), &mut reply).await;
    }
    reply
}

/// Verifies the run attempt once (shared with any other asker) and appends the report's
/// embed and buttons. The verification keeps a trace of its own, quoted in its footer.
async fn append_verification(
    app: &App,
    run: &RunRecord,
    api_base: Option<&str>,
    reply: &mut Reply,
) {
    let mut options = serde_json::Map::new();
    options.insert("run_id".into(), run.id.into());
    let mut tracer = Tracer::start("github", "auto-verify", &options, crate::clock::now_ms());
    let span = tracing::info_span!("command", trace_id = %tracer.id(), user_id = "github", command = "auto-verify");
    let result = {
        use tracing::Instrument;
        crate::verify::verify_once(app, run.id, run.run_attempt, api_base, &mut tracer)
            .instrument(span.clone())
            .await
    };
    let (outcome, error) = match result {
        Ok((report, passed)) => {
            reply.embeds.extend(report.embeds);
            for button in report.buttons {
                if !reply.buttons.iter().any(|b| b.target == button.target) {
                    reply.buttons.push(button);
                }
            }
            reply.failed |= !passed;
            (Outcome::Ok, None)
        }
        Err(e) => {
            span.in_scope(|| tracing::warn!(error.type = e.error_type(), error.message = %e, "verification failed to run"));
            reply.embeds.push(
                Embed::new("❌ Verification could not run")
                    .color(response::RED)
                    .description(e.user_message(tracer.short_id())),
            );
            (Outcome::Error, Some(e.to_string()))
        }
    };
    let record = tracer.finish(outcome, error);
    if let Err(e) = app.store.put_trace(&record).await {
        tracing::warn!(error.type = "store_unavailable", error.message = %e, "trace not saved");
    }
}

fn run_name(run: &RunRecord) -> &str {
    run.workflow_name.as_deref().unwrap_or("Workflow run")
}

fn with_run_link(reply: Reply, run: &RunRecord) -> Reply {
    match &run.html_url {
        Some(url) => reply.with_button(Button::link("View run", url.clone())),
        None => reply,
    }
}

/// Seconds from creation to the last update of a first attempt. A re-run keeps the
/// run's creation time, so its duration is not known from the record.
fn duration_secs(run: &RunRecord) -> Option<i64> {
    if run.run_attempt != 1 {
        return None;
    }
    let parse = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let secs = (parse(&run.updated_at)? - parse(&run.created_at)?).num_seconds();
    (secs >= 0).then_some(secs)
}

/// Pure part of [`completion_report`].
pub fn completion_reply(run: &RunRecord, failed: Option<&FailedStepRecord>) -> Reply {
    let conclusion = run.conclusion.as_deref().unwrap_or("completed");
    let (icon, colour) = match conclusion {
        "success" => ("🟢", response::GREEN),
        "failure" | "timed_out" | "cancelled" | "startup_failure" => ("🔴", response::RED),
        _ => ("⚪", response::GREY),
    };
    let mut link = match &run.html_url {
        Some(url) => format!("[Run {}]({url})", run.id),
        None => format!("Run {}", run.id),
    };
    if run.run_attempt > 1 {
        link.push_str(&format!(" (attempt {})", run.run_attempt));
    }
    let mut embed = Embed::new(format!("{icon} {}: {conclusion}", run_name(run)))
        .color(colour)
        .description(link);
    if let Some(branch) = &run.branch {
        embed = embed.field("Branch", format!("`{branch}`"));
    }
    if let Some(sha) = &run.head_sha {
        embed = embed.field("Commit", format!("`{}`", sha.get(..7).unwrap_or(sha)));
    }
    if let Some(secs) = duration_secs(run) {
        embed = embed.field("Duration", crate::format::duration(secs));
    }
    if let Some(step) = failed {
        let what = match &step.step_name {
            Some(name) => format!("{} › {name}", step.job_name),
            None => step.job_name.clone(),
        };
        let value = match &step.html_url {
            Some(url) => format!("[{what}]({url})"),
            None => what,
        };
        embed = embed.field("Failing step", value);
    }
    with_run_link(Reply::embed(embed.footer(format!("Run {}", run.id))), run)
}

/// The message while a followed run is in progress.
pub fn progress_reply(run: &RunRecord) -> Reply {
    let mut text = format!("🟡 {} run {} is in progress", run_name(run), run.id);
    if run.run_attempt > 1 {
        text.push_str(&format!(" (attempt {})", run.run_attempt));
    }
    if let Some(branch) = &run.branch {
        text.push_str(&format!(" on `{branch}`"));
    }
    with_run_link(Reply::text(text), run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CorrelationKind;

    fn run(conclusion: Option<&str>, attempt: u32) -> RunRecord {
        RunRecord {
            id: 30433642,
            workflow_id: 77,
            workflow_name: Some("Client deploy".into()),
            status: "completed".into(),
            conclusion: conclusion.map(Into::into),
            branch: Some("main".into()),
            head_sha: Some("acb5820ced9479c074f688cc328bf03f341a511d".into()),
            run_attempt: attempt,
            html_url: Some("https://github.com/o/r/actions/runs/30433642".into()),
            display_title: None,
            created_at: Some("2026-01-01T10:00:00Z".into()),
            updated_at: Some("2026-01-01T10:02:15Z".into()),
            expires_at: 0,
        }
    }

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

    #[test]
    fn completion_reply_shows_result_duration_and_failing_step() {
        let ok = completion_reply(&run(Some("success"), 1), None);
        let embed = &ok.embeds[0];
        assert_eq!(embed.title, "🟢 Client deploy: success");
        assert_eq!(embed.color, Some(response::GREEN));
        let fields: Vec<(&str, &str)> = embed
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.value.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("Branch", "`main`"),
                ("Commit", "`acb5820`"),
                ("Duration", "2m 15s")
            ]
        );
        assert_eq!(ok.buttons.len(), 1);

        let step = FailedStepRecord {
            run_id: 30433642,
            run_attempt: 2,
            job_id: 1,
            job_name: "build".into(),
            step_name: Some("npm run build".into()),
            html_url: Some("https://github.com/o/r/actions/runs/30433642/job/1".into()),
            expires_at: 0,
        };
        let failed = completion_reply(&run(Some("failure"), 2), Some(&step));
        let embed = &failed.embeds[0];
        assert_eq!(embed.title, "🔴 Client deploy: failure");
        assert_eq!(embed.color, Some(response::RED));
        assert!(
            embed
                .description
                .as_deref()
                .unwrap()
                .contains("(attempt 2)")
        );
        assert!(embed.fields.iter().all(|f| f.name != "Duration"));
        let failing = embed
            .fields
            .iter()
            .find(|f| f.name == "Failing step")
            .unwrap();
        assert_eq!(
            failing.value,
            "[build › npm run build](https://github.com/o/r/actions/runs/30433642/job/1)"
        );
    }

    #[test]
    fn progress_reply_names_the_run() {
        let mut r = run(None, 1);
        r.status = "in_progress".into();
        let reply = progress_reply(&r);
        assert_eq!(
            reply.content.as_deref(),
            Some("🟡 Client deploy run 30433642 is in progress on `main`")
        );
    }
}
