//! What a workflow run event triggers, in one place for every way Valine learns of
//! one: a GitHub webhook delivery ([`receive`]) and a poll of a followed run
//! ([`follow::poll`]) both come here.
//!
//! A run event is recorded (the run upsert, the failing step of a failed job) and
//! planned ([`plan_run`]): the message of the command following the run is updated
//! (`/deploy-client wait:true`, a `/diagnose` dispatch), and a completed deploy is
//! announced in the status channel, verified first with `AUTO_VERIFY`. The facts and
//! the jobs they call for are written in one atomic store write together with the
//! delivery id, the dedup marker, so a redelivered webhook or a repeated poll takes
//! effect once. The request path stays free of GitHub and Discord calls; the slow work
//! runs in the jobs of [`follow`], whose messages [`report`] renders.

pub mod follow;
pub mod report;

use std::time::Duration;

use crate::app::App;
use crate::config::Config;
use crate::dispatch::correlation_ids_in;
use crate::github::webhook::{Event, JobEvent, NotJson, RunEvent, parse};
use crate::jobs::{AnnounceRun, FollowRun, Job, JobError};
use crate::store::{
    CorrelationRecord, DeliveryEffects, FailedStepRecord, NewJob, Outcome, RunAttachment,
    RunRecord, StoreResult, retention,
};

/// What became of a delivery that passed the signature check.
#[derive(Debug)]
pub enum Received {
    Ping,
    /// Recorded with its effects.
    Accepted,
    /// Accepted before: nothing was done again.
    Duplicate,
    /// Not for Valine: another repository, another event, an unreadable shape.
    Ignored(&'static str),
    /// Not a webhook delivery at all (body not JSON).
    Invalid(&'static str),
    /// The store could not record it; GitHub may redeliver.
    Unavailable(crate::jobs::QueueError),
    /// Not recorded within the answer's budget; GitHub may redeliver.
    TimedOut,
}

impl Received {
    /// The `outcome` of the webhook's completion line.
    pub fn outcome(&self) -> Outcome {
        match self {
            Received::Ping | Received::Accepted => Outcome::Ok,
            Received::Duplicate => Outcome::Duplicate,
            Received::Ignored(_) => Outcome::Ignored,
            Received::Invalid(_) => Outcome::Invalid,
            Received::Unavailable(_) | Received::TimedOut => Outcome::Error,
        }
    }

    /// The webhook's completion line, inside its `event`/`delivery_id` span, and its
    /// count in the metrics.
    pub fn log_completion(&self, event: &str, elapsed: Duration) {
        let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let outcome = self.outcome().as_str();
        crate::metrics::webhook(event, outcome);
        match self {
            Received::Unavailable(e) => {
                tracing::error!(duration_ms, outcome, error.type = "store_unavailable", error.message = %e, "webhook finished")
            }
            Received::TimedOut => {
                tracing::error!(duration_ms, outcome, error.type = "webhook_timeout", error.message = "delivery not recorded within budget", "webhook finished")
            }
            Received::Ignored(reason) | Received::Invalid(reason) => {
                tracing::info!(duration_ms, outcome, reason, "webhook finished")
            }
            Received::Ping | Received::Accepted | Received::Duplicate => {
                tracing::info!(duration_ms, outcome, "webhook finished")
            }
        }
    }
}

/// The store's view of a run event.
pub fn run_record(run: &RunEvent, expires_at: i64) -> RunRecord {
    RunRecord {
        id: run.id,
        workflow_id: run.workflow_id,
        workflow_name: run.workflow_name.clone(),
        status: run.status.clone(),
        conclusion: run.conclusion.clone(),
        branch: run.branch.clone(),
        head_sha: run.head_sha.clone(),
        run_attempt: run.run_attempt,
        html_url: run.html_url.clone(),
        display_title: run.display_title.clone(),
        created_at: run.created_at.clone(),
        updated_at: run.updated_at.clone(),
        expires_at,
    }
}

/// The failing job and step a failed `workflow_job` event reports.
fn failed_step_record(job: &JobEvent, expires_at: i64) -> FailedStepRecord {
    FailedStepRecord {
        run_id: job.run_id,
        run_attempt: job.run_attempt,
        job_id: job.job_id,
        job_name: job.job_name.clone(),
        step_name: job.failed_step.clone(),
        html_url: job.html_url.clone(),
        expires_at,
    }
}

/// Whether the run is of the configured deploy workflow, judged from the payload alone:
/// `DEPLOY_WORKFLOW` is an id, a file name or a display name. `None` when the payload
/// lacks the field to compare; the announcement job then asks GitHub.
pub fn is_deploy_workflow(spec: &str, run: &RunEvent) -> Option<bool> {
    let spec = spec.trim();
    if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()) {
        return (run.workflow_id != 0).then(|| spec.parse::<u64>().ok() == Some(run.workflow_id));
    }
    let file = spec.rsplit('/').next().unwrap_or(spec);
    let lower = file.to_ascii_lowercase();
    if lower.ends_with(".yml") || lower.ends_with(".yaml") {
        return run.workflow_path.as_deref().map(|path| {
            let path = path.split('@').next().unwrap_or(path);
            path.rsplit('/').next().unwrap_or(path) == file
        });
    }
    run.workflow_name.as_deref().map(|name| name == spec)
}

/// The jobs a `workflow_run` event calls for: the follower's message update, and the
/// status-channel announcement of a completed deploy: a run Valine dispatched as a
/// deploy at any ref, any other run of `DEPLOY_WORKFLOW` only on `DEPLOY_BRANCH`.
pub fn plan_run(
    config: &Config,
    run: &RunEvent,
    correlation: Option<&CorrelationRecord>,
    delivery_id: &str,
) -> Vec<Job> {
    let mut planned = Vec::new();
    if let Some(c) = correlation.filter(|c| c.follows())
        && (run.status == "in_progress" || run.is_completed())
    {
        planned.push(Job::FollowRun(FollowRun {
            correlation_id: c.id.clone(),
            run_id: run.id,
            run_attempt: run.run_attempt,
            status: run.status.clone(),
        }));
    }
    if run.is_completed() && config.discord_status_channel_id.is_some() {
        let dispatched_deploy =
            correlation.is_some_and(|c| c.kind == crate::store::CorrelationKind::Deploy);
        let confirm_workflow = if dispatched_deploy {
            Some(false)
        } else if run.branch.as_deref() == Some(config.deploy_branch.as_str()) {
            match is_deploy_workflow(&config.deploy_workflow, run) {
                Some(true) => Some(false),
                None => Some(true),
                Some(false) => None,
            }
        } else {
            None
        };
        if let Some(confirm_workflow) = confirm_workflow {
            planned.push(Job::AnnounceRun(AnnounceRun {
                run_id: run.id,
                run_attempt: run.run_attempt,
                delivery_id: delivery_id.to_owned(),
                confirm_workflow,
            }));
        }
    }
    planned
}

/// [`receive`], or [`Received::TimedOut`] once `budget` has passed (GitHub gives up
/// after 10 s). A write cut short this way either committed or did not; a redelivery
/// then finds it a duplicate or records it.
pub async fn receive_within(
    budget: Duration,
    app: &App,
    event: &str,
    delivery_id: &str,
    body: &[u8],
    now_ms: i64,
) -> Received {
    tokio::time::timeout(budget, receive(app, event, delivery_id, body, now_ms))
        .await
        .unwrap_or(Received::TimedOut)
}

/// Handles a signed delivery: decides, and records the delivery with its effects in one
/// atomic write. `now_ms` is the caller's clock.
pub async fn receive(
    app: &App,
    event: &str,
    delivery_id: &str,
    body: &[u8],
    now_ms: i64,
) -> Received {
    let payload = match parse(event, body) {
        Ok(payload) => payload,
        Err(NotJson) => return Received::Invalid("body is not JSON"),
    };
    if payload.event == Event::Ping {
        return Received::Ping;
    }
    let Some(repo) = app.config.github_repo.as_ref() else {
        return Received::Ignored("GITHUB_REPO is not configured");
    };
    if !payload
        .repository
        .as_deref()
        .is_some_and(|r| repo.matches(r))
    {
        return Received::Ignored("another repository");
    }
    let now = now_ms.div_euclid(1000);
    let mut effects = DeliveryEffects {
        delivery_id: delivery_id.to_owned(),
        expires_at: now + retention::DELIVERY,
        ..Default::default()
    };
    let mut planned = Vec::new();
    match payload.event {
        Event::WorkflowRun(run) => {
            let (correlation, attach) = match find_correlation(app, &run, now).await {
                Ok(found) => found,
                Err(e) => return Received::Unavailable(e.into()),
            };
            planned = plan_run(&app.config, &run, correlation.as_ref(), delivery_id);
            effects.run = Some(run_record(&run, now + retention::RUN));
            effects.attach = attach;
        }
        Event::WorkflowJob(job) if job.failed() => {
            effects.failed_step = Some(failed_step_record(&job, now + retention::FAILED_STEP));
        }
        Event::WorkflowJob(_) => return Received::Ignored("workflow_job that did not fail"),
        Event::Unreadable(why) => return Received::Ignored(why),
        Event::Ping | Event::Other => return Received::Ignored("event not handled"),
    }
    for job in &planned {
        match app.new_job(job, None, now_ms) {
            Ok(record) => effects.jobs.push(record),
            Err(e) => return Received::Unavailable(e),
        }
    }
    match app.store.accept_delivery(&effects, now).await {
        Ok(true) => {
            if !effects.jobs.is_empty() {
                crate::metrics::jobs_submitted(effects.jobs.len());
                hand_over(app, &effects.jobs, now_ms).await;
            }
            Received::Accepted
        }
        Ok(false) => Received::Duplicate,
        Err(e) => Received::Unavailable(e.into()),
    }
}

/// The correlation of the run: attached already, or named in the run's title (the
/// dispatching command may still be looking for its run), in which case it is attached
/// by the delivery's write.
async fn find_correlation(
    app: &App,
    run: &RunEvent,
    now: i64,
) -> StoreResult<(Option<CorrelationRecord>, Option<RunAttachment>)> {
    if let Some(found) = app.store.correlation_for_run(run.id, now).await? {
        return Ok((Some(found), None));
    }
    // Titles are free text; a few candidates bound the lookups a payload can cause.
    let title = run.display_title.as_deref().unwrap_or("");
    for id in correlation_ids_in(title).take(3) {
        if let Some(mut found) = app.store.get_correlation(id, now).await?
            && found.run_id.is_none()
        {
            found.run_id = Some(run.id);
            let attach = RunAttachment {
                correlation_id: found.id.clone(),
                run_id: run.id,
            };
            return Ok((Some(found), Some(attach)));
        }
    }
    Ok((None, None))
}

/// Records what a poll saw when it is news to the store: the run upsert and the jobs a
/// delivery with the same facts would plan, under a delivery id per (run, attempt,
/// status), so repeated polls of one state act once.
pub(crate) async fn record_polled(
    app: &App,
    correlation: &CorrelationRecord,
    run: &crate::github::model::WorkflowRun,
    now_ms: i64,
) -> Result<(), JobError> {
    let now = now_ms.div_euclid(1000);
    let event = RunEvent::from_rest(run);
    let stored = app.store.get_run(run.id, now).await?;
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
        run: Some(run_record(&event, now + retention::RUN)),
        ..Default::default()
    };
    for job in plan_run(&app.config, &event, Some(correlation), &delivery_id) {
        effects.jobs.push(app.new_job(&job, None, now_ms)?);
    }
    let accepted = app.store.accept_delivery(&effects, now).await?;
    if accepted {
        tracing::info!(status = %event.status, "poll saw news of the run");
        crate::metrics::jobs_submitted(effects.jobs.len());
        hand_over(app, &effects.jobs, now_ms).await;
    }
    Ok(())
}

/// Hands jobs a delivery's write stored to the queue's consumers. The delivery is
/// recorded by then, so a redelivery would be a duplicate: a failure here cannot be
/// undone by refusing it, and is logged with the job ids for an operator to find.
async fn hand_over(app: &App, jobs: &[NewJob], now_ms: i64) {
    if let Err(e) = app.queue.submitted_elsewhere(jobs, now_ms).await {
        let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        tracing::error!(error.type = e.error_type(), error.message = %e, job_ids = ?ids, "stored jobs not handed to the queue");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CorrelationKind;

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut vars: std::collections::HashMap<String, String> = [
            ("GITHUB_REPO", "octo-org/octo-repo"),
            ("DISCORD_STATUS_CHANNEL_ID", "555"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        vars.retain(|_, v| !v.is_empty());
        Config::from_vars(vars).expect("valid test config")
    }

    fn correlation(kind: CorrelationKind, wait: bool) -> CorrelationRecord {
        CorrelationRecord {
            id: "vl-0123456789abcdef".into(),
            kind,
            requester: "42".into(),
            channel_id: Some("901".into()),
            application_id: Some("4242".into()),
            interaction_token: Some("t".into()),
            token_expires_at_ms: 0,
            wait,
            api_base: None,
            run_id: Some(5),
            created_at_ms: 0,
            expires_at: i64::MAX,
        }
    }

    #[test]
    fn deploy_workflow_is_matched_by_id_file_or_name() {
        let run = completed_run(
            "main",
            Some(".github/workflows/client-deploy.yml@refs/heads/main"),
        );
        assert_eq!(is_deploy_workflow("77", &run), Some(true));
        assert_eq!(is_deploy_workflow("78", &run), Some(false));
        assert_eq!(is_deploy_workflow("client-deploy.yml", &run), Some(true));
        assert_eq!(
            is_deploy_workflow(".github/workflows/client-deploy.yml", &run),
            Some(true)
        );
        assert_eq!(is_deploy_workflow("ci.yml", &run), Some(false));
        assert_eq!(is_deploy_workflow("Client deploy", &run), Some(true));
        assert_eq!(is_deploy_workflow("CI", &run), Some(false));

        let bare = RunEvent {
            workflow_id: 0,
            workflow_name: None,
            workflow_path: None,
            ..run
        };
        for spec in ["77", "client-deploy.yml", "Client deploy"] {
            assert_eq!(is_deploy_workflow(spec, &bare), None, "{spec}");
        }
    }

    fn completed_run(branch: &str, path: Option<&str>) -> RunEvent {
        RunEvent {
            id: 5,
            workflow_id: 77,
            workflow_name: Some("Client deploy".into()),
            workflow_path: path.map(Into::into),
            status: "completed".into(),
            conclusion: Some("success".into()),
            branch: Some(branch.into()),
            head_sha: None,
            run_attempt: 1,
            html_url: None,
            display_title: None,
            created_at: None,
            updated_at: None,
        }
    }

    fn kinds(jobs: &[Job]) -> Vec<String> {
        jobs.iter()
            .map(|job| match job {
                Job::AnnounceRun(a) => format!("announce(confirm={})", a.confirm_workflow),
                Job::FollowRun(f) => format!("follow({})", f.status),
                Job::Command(_) => "command".into(),
                Job::PollRun(_) => "poll".into(),
                Job::DeliverReply(_) => "deliver".into(),
            })
            .collect()
    }

    #[test]
    fn completed_deploys_on_the_deploy_branch_are_announced() {
        let deploy_path = Some(".github/workflows/client-deploy.yml");
        let cfg = config(&[]);
        let plan =
            |run: &RunEvent, c: Option<&CorrelationRecord>| kinds(&plan_run(&cfg, run, c, "d1"));
        assert_eq!(
            plan(&completed_run("main", deploy_path), None),
            ["announce(confirm=false)"]
        );
        assert!(plan(&completed_run("feature", deploy_path), None).is_empty());
        assert!(
            plan(
                &completed_run("main", Some(".github/workflows/ci.yml")),
                None
            )
            .is_empty()
        );
        // Without the workflow's path in the payload, the job asks GitHub.
        assert_eq!(
            plan(&completed_run("main", None), None),
            ["announce(confirm=true)"]
        );
        // A dispatched deploy is announced at any ref.
        let dispatched = correlation(CorrelationKind::Deploy, false);
        assert_eq!(
            plan(&completed_run("feature", None), Some(&dispatched)),
            ["announce(confirm=false)"]
        );
        let in_progress = RunEvent {
            status: "in_progress".into(),
            conclusion: None,
            ..completed_run("main", deploy_path)
        };
        assert!(plan(&in_progress, Some(&dispatched)).is_empty());

        let quiet = config(&[("DISCORD_STATUS_CHANNEL_ID", "")]);
        assert!(plan_run(&quiet, &completed_run("main", deploy_path), None, "d1").is_empty());
    }

    #[test]
    fn followers_get_progress_and_result() {
        let cfg = config(&[("DISCORD_STATUS_CHANNEL_ID", "")]);
        let follower = correlation(CorrelationKind::Deploy, true);
        let diagnose = correlation(CorrelationKind::Diagnose, false);
        let not_waiting = correlation(CorrelationKind::Deploy, false);
        let with_status = |status: &str| RunEvent {
            status: status.into(),
            ..completed_run("main", None)
        };
        let plan =
            |run: &RunEvent, c: &CorrelationRecord| kinds(&plan_run(&cfg, run, Some(c), "d1"));
        assert_eq!(
            plan(&with_status("in_progress"), &follower),
            ["follow(in_progress)"]
        );
        assert_eq!(
            plan(&with_status("completed"), &follower),
            ["follow(completed)"]
        );
        assert_eq!(
            plan(&with_status("completed"), &diagnose),
            ["follow(completed)"]
        );
        assert!(plan(&with_status("queued"), &follower).is_empty());
        assert!(plan(&with_status("in_progress"), &not_waiting).is_empty());
    }
}
