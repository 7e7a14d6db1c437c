//! GitHub webhooks on the wire: the `X-Hub-Signature-256` check, and the parts of
//! `workflow_run` and `workflow_job` payloads Valine reads. What a delivery does is
//! decided elsewhere ([`crate::runs`]); this module knows only GitHub's shapes.
//!
//! Payloads are read field by field from JSON rather than into strict structs: GitHub
//! versions differ, fields go missing or `null`, and `action` need not match `status`.
//! A payload Valine cannot make sense of is `Unreadable` or `Other`, never an error.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

/// `true` when `header` is signed with one of `secrets`, a comma-separated list: during
/// a rotation the webhook is configured with the old and the new secret, and GitHub
/// signs with whichever it has.
pub fn signed_by_any(secrets: &str, body: &[u8], header: Option<&str>) -> bool {
    secrets
        .split(',')
        .map(str::trim)
        .filter(|secret| !secret.is_empty())
        .any(|secret| signature_valid(secret.as_bytes(), body, header))
}

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

/// The body was not JSON: the delivery is answered 400.
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
    // `status` is what GitHub says the run is; `action` names the event and may lag or
    // differ (a `requested` action with a `completed` status), so it only fills in a
    // missing status.
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

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(
            (job.run_id, job.run_attempt, job.job_id),
            (29679449, 2, 399444496)
        );
        assert_eq!(job.job_name, "build");

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
        // Rotation: either of two configured secrets signs; blanks never do.
        let both = "old-secret, It's a Secret to Everybody";
        assert!(signed_by_any(both, b"Hello, World!", Some(header)));
        // Either place: GitHub may still sign with the old one while the new one is added.
        let old_first = "It's a Secret to Everybody,new-secret";
        assert!(signed_by_any(old_first, b"Hello, World!", Some(header)));
        assert!(!signed_by_any(old_first, b"Hello, World?", Some(header)));
        assert!(!signed_by_any(
            "old-secret,",
            b"Hello, World!",
            Some(header)
        ));
        assert!(!signed_by_any(" , ", b"Hello, World!", Some(header)));
    }
}
