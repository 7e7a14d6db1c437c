//! GitHub webhooks (SPEC §3.2): the signature check, the parts of `workflow_run` and
//! `workflow_job` payloads Valine reads, and what a delivery does to the store.
//!
//! The request path stays fast and free of GitHub or Discord calls: a delivery becomes a
//! run upsert, a failing-step record and follow-up jobs, written in one atomic store
//! write together with the delivery id (the dedup marker). Everything slow happens in
//! the jobs of [`crate::jobs::runs`].
//!
//! Payloads are read field by field from JSON rather than into strict structs: GitHub
//! versions differ, fields go missing or `null`, and `action` need not match `status`.
//! A payload Valine cannot make sense of is ignored, never an error.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::app::App;
use crate::config::Config;
use crate::dispatch::correlation_ids_in;
use crate::jobs::runs::{AnnounceRun, FollowRun};
use crate::jobs::{self, Job};
use crate::store::{
    CorrelationRecord, DeliveryEffects, FailedStepRecord, Outcome, RunAttachment, RunRecord,
    StoreError, StoreResult, retention,
};

/// `true` when `header` is `sha256=<hex>` of `body` under `secret`.
pub fn signature_valid(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected).is_ok()
}

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
    Unavailable(StoreError),
    /// Not recorded within the answer's budget; GitHub may redeliver.
    TimedOut,
}

impl Received {
    /// The `outcome` of the webhook's completion line (SPEC §8).
    pub fn outcome(&self) -> Outcome {
        match self {
            Received::Ping | Received::Accepted => Outcome::Ok,
            Received::Duplicate => Outcome::Duplicate,
            Received::Ignored(_) => Outcome::Ignored,
            Received::Invalid(_) => Outcome::Invalid,
            Received::Unavailable(_) | Received::TimedOut => Outcome::Error,
        }
    }

    /// The webhook's completion line (SPEC §8), inside its `event`/`delivery_id` span.
    pub fn log_completion(&self, elapsed: Duration) {
        let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let outcome = self.outcome().as_str();
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

/// The run facts of a `workflow_run` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEvent {
    pub id: u64,
    /// 0 when the payload does not say.
    pub workflow_id: u64,
    pub workflow_name: Option<String>,
    /// `.github/workflows/<file>` (GitHub may append `@<ref>`).
    pub workflow_path: Option<String>,
    /// Taken from `status`, or from `action` when `status` is missing.
    pub status: String,
    /// Only kept for a completed run: a conclusion beside another status is noise.
    pub conclusion: Option<String>,
    pub branch: Option<String>,
    pub head_sha: Option<String>,
    pub run_attempt: u32,
    pub html_url: Option<String>,
    pub display_title: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

impl RunEvent {
    pub fn is_completed(&self) -> bool {
        self.status == "completed"
    }

    /// The same facts read from the REST API (a poll of a followed run), so a run seen
    /// there goes through the same planning and upsert as a delivery.
    pub fn from_rest(run: &crate::github::model::WorkflowRun) -> RunEvent {
        let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        };
        let status = run.status.clone().unwrap_or_else(|| "unknown".to_owned());
        let completed = status == "completed";
        RunEvent {
            id: run.id,
            workflow_id: run.workflow_id,
            workflow_name: run.name.clone(),
            workflow_path: None,
            status,
            conclusion: run.conclusion.clone().filter(|_| completed),
            branch: run.head_branch.clone(),
            head_sha: run.head_sha.clone(),
            run_attempt: run.run_attempt,
            html_url: run.html_url.clone(),
            display_title: Some(run.display_title.clone()).filter(|t| !t.is_empty()),
            created_at: time(run.created_at),
            updated_at: time(run.updated_at),
        }
    }

    pub fn to_record(&self, expires_at: i64) -> RunRecord {
        RunRecord {
            id: self.id,
            workflow_id: self.workflow_id,
            workflow_name: self.workflow_name.clone(),
            status: self.status.clone(),
            conclusion: self.conclusion.clone(),
            branch: self.branch.clone(),
            head_sha: self.head_sha.clone(),
            run_attempt: self.run_attempt,
            html_url: self.html_url.clone(),
            display_title: self.display_title.clone(),
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
            expires_at,
        }
    }
}

/// The job facts of a `workflow_job` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    pub run_id: u64,
    pub run_attempt: u32,
    pub job_id: u64,
    pub job_name: String,
    pub conclusion: Option<String>,
    /// The first step whose conclusion is `failure`.
    pub failed_step: Option<String>,
    pub html_url: Option<String>,
}

impl JobEvent {
    pub fn failed(&self) -> bool {
        self.conclusion.as_deref() == Some("failure")
    }

    pub fn to_record(&self, expires_at: i64) -> FailedStepRecord {
        FailedStepRecord {
            run_id: self.run_id,
            run_attempt: self.run_attempt,
            job_id: self.job_id,
            job_name: self.job_name.clone(),
            step_name: self.failed_step.clone(),
            html_url: self.html_url.clone(),
            expires_at,
        }
    }
}

/// A delivery's body as far as Valine reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Ping,
    WorkflowRun(RunEvent),
    WorkflowJob(JobEvent),
    /// A handled event whose payload lacks what Valine needs.
    Unreadable(&'static str),
    /// An event Valine does not handle.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// `repository.full_name`.
    pub repository: Option<String>,
    pub event: Event,
}

/// The body was not JSON (SPEC §3.2.5: 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("body is not JSON")]
pub struct NotJson;

/// Parses the body of an `X-GitHub-Event: event` delivery.
pub fn parse(event: &str, body: &[u8]) -> Result<Payload, NotJson> {
    let value: Value = serde_json::from_slice(body).map_err(|_| NotJson)?;
    let repository = value
        .get("repository")
        .and_then(|r| text(r, "full_name"))
        .map(str::to_owned);
    let event = match event {
        "ping" => Event::Ping,
        "workflow_run" => parse_run(&value).map_or(
            Event::Unreadable("workflow_run without a run id"),
            Event::WorkflowRun,
        ),
        "workflow_job" => parse_job(&value).map_or(
            Event::Unreadable("workflow_job without a job or run id"),
            Event::WorkflowJob,
        ),
        _ => Event::Other,
    };
    Ok(Payload { repository, event })
}

/// A non-empty string field.
fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn owned(value: &Value, key: &str) -> Option<String> {
    text(value, key).map(str::to_owned)
}

/// A positive id that the store can hold (GitHub ids fit in a signed 64-bit integer;
/// anything larger is an unreadable payload, not a store failure).
fn positive(value: &Value, key: &str) -> Option<u64> {
    value
        .get(key)
        .and_then(Value::as_u64)
        .filter(|&n| n > 0 && i64::try_from(n).is_ok())
}

fn attempt(value: &Value) -> u32 {
    positive(value, "run_attempt")
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1)
}

/// `action` values that are also run statuses, for payloads without `status`.
const STATUS_ACTIONS: [&str; 3] = ["requested", "in_progress", "completed"];

fn parse_run(payload: &Value) -> Option<RunEvent> {
    let run = payload.get("workflow_run").filter(|r| r.is_object())?;
    let id = positive(run, "id")?;
    // Trust `status` (SPEC §3.2.5); `action` only fills in when it is missing.
    let status = text(run, "status")
        .or_else(|| text(payload, "action").filter(|a| STATUS_ACTIONS.contains(a)))?
        .to_owned();
    let workflow = payload.get("workflow").unwrap_or(&Value::Null);
    let conclusion = if status == "completed" {
        owned(run, "conclusion")
    } else {
        None
    };
    Some(RunEvent {
        id,
        workflow_id: positive(run, "workflow_id")
            .or_else(|| positive(workflow, "id"))
            .unwrap_or(0),
        workflow_name: owned(run, "name").or_else(|| owned(workflow, "name")),
        workflow_path: owned(run, "path").or_else(|| owned(workflow, "path")),
        status,
        conclusion,
        branch: owned(run, "head_branch"),
        head_sha: owned(run, "head_sha"),
        run_attempt: attempt(run),
        html_url: owned(run, "html_url"),
        display_title: owned(run, "display_title"),
        created_at: owned(run, "created_at"),
        updated_at: owned(run, "updated_at"),
    })
}

fn parse_job(payload: &Value) -> Option<JobEvent> {
    let job = payload.get("workflow_job").filter(|j| j.is_object())?;
    let failed_step = job
        .get("steps")
        .and_then(Value::as_array)
        .and_then(|steps| {
            steps
                .iter()
                .find(|s| text(s, "conclusion") == Some("failure"))
        })
        .and_then(|s| owned(s, "name"));
    Some(JobEvent {
        run_id: positive(job, "run_id")?,
        run_attempt: attempt(job),
        job_id: positive(job, "id")?,
        job_name: owned(job, "name").unwrap_or_else(|| "(unnamed job)".to_owned()),
        conclusion: owned(job, "conclusion"),
        failed_step,
        html_url: owned(job, "html_url"),
    })
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
/// status-channel announcement of a completed deploy (SPEC §3.2.4).
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
                Err(e) => return Received::Unavailable(e),
            };
            planned = plan_run(&app.config, &run, correlation.as_ref(), delivery_id);
            effects.run = Some(run.to_record(now + retention::RUN));
            effects.attach = attach;
        }
        Event::WorkflowJob(job) if job.failed() => {
            effects.failed_step = Some(job.to_record(now + retention::FAILED_STEP));
        }
        Event::WorkflowJob(_) => return Received::Ignored("workflow_job that did not fail"),
        Event::Unreadable(why) => return Received::Ignored(why),
        Event::Ping | Event::Other => return Received::Ignored("event not handled"),
    }
    for job in &planned {
        match jobs::job_record(app, job, None, now_ms) {
            Ok(record) => effects.jobs.push(record),
            Err(e) => return Received::Unavailable(e),
        }
    }
    match app.store.accept_delivery(&effects, now).await {
        Ok(true) => {
            if !effects.jobs.is_empty() {
                app.jobs_ready.notify_one();
            }
            Received::Accepted
        }
        Ok(false) => Received::Duplicate,
        Err(e) => Received::Unavailable(e),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CorrelationKind;
    use serde_json::json;

    fn run_payload(action: &str, run: Value) -> Vec<u8> {
        json!({
            "action": action,
            "workflow_run": run,
            "workflow": {"id": 77, "name": "Client deploy", "path": ".github/workflows/client-deploy.yml"},
            "repository": {"full_name": "Octo-Org/Octo-Repo"},
        })
        .to_string()
        .into_bytes()
    }

    fn parse_run_event(action: &str, run: Value) -> RunEvent {
        match parse("workflow_run", &run_payload(action, run))
            .unwrap()
            .event
        {
            Event::WorkflowRun(run) => run,
            other => panic!("not a run: {other:?}"),
        }
    }

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
    fn a_github_run_payload_is_read_whole() {
        let fixture: Value =
            serde_json::from_str(include_str!("fixtures/workflow_run.json")).unwrap();
        let payload = parse("workflow_run", &run_payload("completed", fixture.clone())).unwrap();
        assert_eq!(payload.repository.as_deref(), Some("Octo-Org/Octo-Repo"));
        let Event::WorkflowRun(run) = payload.event else {
            panic!("not a run")
        };
        assert_eq!(run.id, fixture["id"].as_u64().unwrap());
        assert_eq!(run.workflow_id, fixture["workflow_id"].as_u64().unwrap());
        assert_eq!(run.status, fixture["status"].as_str().unwrap());
        assert_eq!(run.head_sha.as_deref(), fixture["head_sha"].as_str());
        assert_eq!(run.created_at.as_deref(), fixture["created_at"].as_str());
    }

    #[test]
    fn status_is_trusted_over_action_and_nulls_are_tolerated() {
        let run = parse_run_event(
            "requested",
            json!({"id": 5, "status": "completed", "conclusion": "success", "name": null,
                   "workflow_id": null, "run_attempt": null, "head_branch": null,
                   "display_title": null, "path": null}),
        );
        assert_eq!(run.status, "completed");
        assert_eq!(run.conclusion.as_deref(), Some("success"));
        assert_eq!(run.run_attempt, 1);
        assert_eq!(run.branch, None);
        // The top-level `workflow` object fills what the run leaves out.
        assert_eq!(run.workflow_id, 77);
        assert_eq!(run.workflow_name.as_deref(), Some("Client deploy"));
        assert_eq!(
            run.workflow_path.as_deref(),
            Some(".github/workflows/client-deploy.yml")
        );

        let progress = parse_run_event(
            "completed",
            json!({"id": 5, "status": "in_progress", "conclusion": "failure", "run_attempt": 2}),
        );
        assert_eq!(progress.status, "in_progress");
        assert_eq!(
            progress.conclusion, None,
            "a conclusion needs a completed status"
        );
        assert_eq!(progress.run_attempt, 2);

        let no_status = parse_run_event("in_progress", json!({"id": 5}));
        assert_eq!(no_status.status, "in_progress");
    }

    #[test]
    fn unusable_payloads_are_unreadable_or_other() {
        for (event, body) in [
            ("workflow_run", json!({"action": "completed"})),
            ("workflow_run", json!({"workflow_run": null})),
            (
                "workflow_run",
                json!({"workflow_run": {"id": "5", "status": "completed"}}),
            ),
            (
                "workflow_run",
                json!({"action": "edited", "workflow_run": {"id": 5}}),
            ),
            (
                "workflow_job",
                json!({"workflow_job": {"id": 1, "run_id": null}}),
            ),
            ("workflow_job", json!({"workflow_job": []})),
        ] {
            let parsed = parse(event, body.to_string().as_bytes()).unwrap();
            assert!(matches!(parsed.event, Event::Unreadable(_)), "{body}");
        }
        let other = parse("push", b"[1, 2]").unwrap();
        assert_eq!(other.event, Event::Other);
        assert_eq!(other.repository, None);
        assert_eq!(parse("workflow_run", b"Hello, World!"), Err(NotJson));
    }

    #[test]
    fn a_failed_job_names_its_first_failed_step() {
        let body = json!({
            "action": "completed",
            "workflow_job": {
                "id": 399444496, "run_id": 29679449, "run_attempt": 2, "name": "build",
                "status": "completed", "conclusion": "failure",
                "html_url": "https://github.com/o/r/runs/399444496",
                "steps": [
                    {"name": "Set up job", "status": "completed", "conclusion": "success", "number": 1},
                    {"name": "npm run build", "status": "completed", "conclusion": "failure", "number": 2},
                    {"name": "Upload", "status": "completed", "conclusion": "failure", "number": 3},
                    {"name": null, "conclusion": null}
                ]
            },
            "repository": {"full_name": "octo-org/octo-repo"}
        });
        let Event::WorkflowJob(job) = parse("workflow_job", body.to_string().as_bytes())
            .unwrap()
            .event
        else {
            panic!("not a job")
        };
        assert!(job.failed());
        assert_eq!(job.failed_step.as_deref(), Some("npm run build"));
        let record = job.to_record(99);
        assert_eq!(
            (record.run_id, record.run_attempt, record.job_id),
            (29679449, 2, 399444496)
        );
        assert_eq!(record.job_name, "build");

        let bare = json!({"workflow_job": {"id": 1, "run_id": 2, "conclusion": "failure",
                          "steps": null, "name": null}});
        let Event::WorkflowJob(job) = parse("workflow_job", bare.to_string().as_bytes())
            .unwrap()
            .event
        else {
            panic!("not a job")
        };
        assert_eq!(job.failed_step, None);
        assert_eq!(job.job_name, "(unnamed job)");
        assert_eq!(job.run_attempt, 1);
    }

    #[test]
    fn deploy_workflow_is_matched_by_id_file_or_name() {
        let run = parse_run_event(
            "completed",
            json!({"id": 5, "status": "completed", "workflow_id": 77, "name": "Client deploy",
                   "path": ".github/workflows/client-deploy.yml@refs/heads/main"}),
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

    #[test]
    fn githubs_published_vector() {
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signature_valid(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            Some(header)
        ));
        assert!(!signature_valid(
            b"It's a Secret to Everybody",
            b"Hello, World?",
            Some(header)
        ));
        assert!(!signature_valid(b"other", b"Hello, World!", Some(header)));
        assert!(!signature_valid(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            None
        ));
        assert!(!signature_valid(b"x", b"y", Some("sha1=abc")));
        assert!(!signature_valid(b"x", b"y", Some("sha256=zz")));
    }
}
