//! GitHub wire models: the parts of GitHub's REST answers that Valine reads.
//!
//! GitHub adds fields, drops them between versions (GitHub Enterprise Server lags
//! api.github.com) and sends `null` where the OpenAPI contract says "string". Every model
//! here therefore accepts a missing or `null` field: optional facts are `Option`, and the
//! few fields that are always meaningful (ids, names, lists) fall back to their default
//! instead of failing the whole answer. Unknown fields are ignored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// Reads `null` like a missing field: the type's default.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// A workflow file of the repository (`GET /repos/{owner}/{repo}/actions/workflows/{id}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Workflow {
    #[serde(deserialize_with = "null_as_default")]
    pub id: u64,
    /// Display name (`name:` in the file, else its path).
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    /// `.github/workflows/<file>`.
    #[serde(deserialize_with = "null_as_default")]
    pub path: String,
    /// `active`, `disabled_manually`, … (`None` when GitHub did not say).
    pub state: Option<String>,
}

impl Workflow {
    /// The file name (`client-deploy.yml`), which is what operators configure.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// One run of a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowRun {
    #[serde(deserialize_with = "null_as_default")]
    pub id: u64,
    pub name: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub workflow_id: u64,
    pub head_branch: Option<String>,
    pub head_sha: Option<String>,
    /// `queued`, `in_progress`, `completed`, … Kept as text: GitHub adds states.
    pub status: Option<String>,
    /// `success`, `failure`, … once completed.
    pub conclusion: Option<String>,
    /// Attempt number, from 1 (GitHub omits it on old Enterprise versions).
    #[serde(deserialize_with = "attempt_or_first")]
    pub run_attempt: u32,
    pub html_url: Option<String>,
    /// The run name as shown by GitHub: the workflow's `run-name`, which Valine's set-up
    /// contract makes carry the correlation id.
    #[serde(deserialize_with = "null_as_default")]
    pub display_title: String,
    pub event: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub run_started_at: Option<DateTime<Utc>>,
}

impl Default for WorkflowRun {
    fn default() -> Self {
        WorkflowRun {
            id: 0,
            name: None,
            workflow_id: 0,
            head_branch: None,
            head_sha: None,
            status: None,
            conclusion: None,
            run_attempt: 1,
            html_url: None,
            display_title: String::new(),
            event: None,
            created_at: None,
            updated_at: None,
            run_started_at: None,
        }
    }
}

fn attempt_or_first<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    Option::<u32>::deserialize(deserializer).map(|attempt| attempt.unwrap_or(1).max(1))
}

impl WorkflowRun {
    pub fn is_completed(&self) -> bool {
        self.status.as_deref() == Some("completed")
    }
}

/// One job of a run (`GET …/actions/runs/{run_id}/jobs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Job {
    #[serde(deserialize_with = "null_as_default")]
    pub id: u64,
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    pub status: Option<String>,
    pub conclusion: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub html_url: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub steps: Vec<Step>,
}

/// One step of a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Step {
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    pub status: Option<String>,
    pub conclusion: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub number: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// `GET …/actions/workflows`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowList {
    #[serde(deserialize_with = "null_as_default")]
    pub total_count: u64,
    #[serde(deserialize_with = "null_as_default")]
    pub workflows: Vec<Workflow>,
}

/// `GET …/actions/workflows/{id}/runs` and `GET …/actions/runs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowRunList {
    #[serde(deserialize_with = "null_as_default")]
    pub total_count: u64,
    #[serde(deserialize_with = "null_as_default")]
    pub workflow_runs: Vec<WorkflowRun>,
}

/// `GET …/actions/runs/{run_id}/jobs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobList {
    #[serde(deserialize_with = "null_as_default")]
    pub total_count: u64,
    #[serde(deserialize_with = "null_as_default")]
    pub jobs: Vec<Job>,
}

/// The core REST quota (`GET /rate_limit` → `resources.core`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimit {
    #[serde(deserialize_with = "null_as_default")]
    pub limit: u64,
    #[serde(deserialize_with = "null_as_default")]
    pub remaining: u64,
    #[serde(deserialize_with = "null_as_default")]
    pub used: u64,
    /// When the quota refills (GitHub sends epoch seconds).
    #[serde(with = "chrono::serde::ts_seconds_option")]
    pub reset: Option<DateTime<Utc>>,
}

/// The whole `GET /rate_limit` answer; only the core bucket matters to Valine.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RateLimitOverview {
    pub resources: Option<RateLimitResources>,
    /// Deprecated mirror of `resources.core`, still sent and all old servers have.
    pub rate: Option<RateLimit>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RateLimitResources {
    pub core: Option<RateLimit>,
}

impl RateLimitOverview {
    pub(crate) fn core(self) -> RateLimit {
        self.resources
            .and_then(|r| r.core)
            .or(self.rate)
            .unwrap_or_default()
    }
}

/// What a workflow dispatch told us. GitHub returns the run only when asked with
/// `return_run_details` and when it supports that field; otherwise every field is `None`
/// and the caller correlates the run by its `display_title`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DispatchOutcome {
    #[serde(rename = "workflow_run_id")]
    pub run_id: Option<u64>,
    /// API URL of the run.
    pub run_url: Option<String>,
    /// Browser URL of the run.
    pub html_url: Option<String>,
}

/// The repository's public key for sealing Actions secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RepoPublicKey {
    #[serde(deserialize_with = "null_as_default")]
    pub key_id: String,
    /// Base64 of a Curve25519 public key.
    #[serde(deserialize_with = "null_as_default")]
    pub key: String,
}

/// What the token can do, for `/diagnose`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Classic and OAuth tokens list their scopes (`x-oauth-scopes`); fine-grained and
    /// installation tokens send no such header, hence `None`.
    pub scopes: Option<Vec<String>>,
    /// Whether the token may write to the repository (`permissions.push`), when GitHub
    /// says.
    pub can_push: Option<bool>,
    /// Core requests left (`x-ratelimit-remaining`).
    pub rate_remaining: Option<u64>,
}

/// `GET /repos/{owner}/{repo}`, the part that tells the token's access.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RepoAccess {
    pub permissions: Option<RepoPermissions>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RepoPermissions {
    pub push: Option<bool>,
}

/// A repository webhook (`GET /repos/{owner}/{repo}/hooks`), the parts that tell
/// whether it reaches Valine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hook {
    #[serde(deserialize_with = "null_as_default")]
    pub id: u64,
    #[serde(deserialize_with = "null_as_default")]
    pub active: bool,
    /// Event names; `*` stands for every event.
    #[serde(deserialize_with = "null_as_default")]
    pub events: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub config: HookConfig,
}

/// Where a webhook delivers and how. GitHub never returns the secret here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HookConfig {
    pub url: Option<String>,
    /// `json` or `form`.
    pub content_type: Option<String>,
}

/// A file's contents (`GET /repos/{owner}/{repo}/contents/{path}`, a `content-file`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ContentFile {
    /// `file` for a file; `dir`, `symlink`, `submodule` otherwise.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub encoding: Option<String>,
    /// Base64 with line breaks, when `encoding` is `base64`.
    pub content: Option<String>,
}

/// GitHub's error body (`basic-error`, `validation-error`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ErrorBody {
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_accepts_nulls_and_missing_fields() {
        let run: WorkflowRun = serde_json::from_str(
            r#"{"id": 7, "name": null, "workflow_id": null, "display_title": null,
                "run_attempt": null, "created_at": "2020-01-22T19:33:08Z",
                "updated_at": null, "something_new": {"x": 1}}"#,
        )
        .unwrap();
        assert_eq!(run.id, 7);
        assert_eq!(run.workflow_id, 0);
        assert_eq!(run.display_title, "");
        assert_eq!(run.run_attempt, 1);
        assert_eq!(
            run.created_at.unwrap().to_rfc3339(),
            "2020-01-22T19:33:08+00:00"
        );
        assert!(run.updated_at.is_none() && run.run_started_at.is_none());
        assert!(!run.is_completed());

        let empty: WorkflowRun = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, WorkflowRun::default());
    }

    #[test]
    fn job_steps_convert_offsets_to_utc_and_tolerate_null_steps() {
        let job: Job = serde_json::from_str(
            r#"{"id": 1, "name": "build", "steps": [{"name": "Set up job", "number": 1,
                "started_at": "2020-01-20T09:42:40.000-08:00", "completed_at": null}]}"#,
        )
        .unwrap();
        let started = job.steps[0].started_at.unwrap();
        assert_eq!(started.to_rfc3339(), "2020-01-20T17:42:40+00:00");
        let no_steps: Job = serde_json::from_str(r#"{"id": 2, "steps": null}"#).unwrap();
        assert!(no_steps.steps.is_empty());
    }

    #[test]
    fn rate_limit_reads_core_bucket_or_legacy_rate() {
        let both: RateLimitOverview = serde_json::from_str(
            r#"{"resources": {"core": {"limit": 5000, "used": 1, "remaining": 4999,
                "reset": 1691591363}}, "rate": {"limit": 1, "remaining": 1, "reset": 1}}"#,
        )
        .unwrap();
        let core = both.core();
        assert_eq!((core.limit, core.remaining, core.used), (5000, 4999, 1));
        assert_eq!(core.reset.unwrap().timestamp(), 1691591363);

        let legacy: RateLimitOverview =
            serde_json::from_str(r#"{"rate": {"limit": 60, "remaining": 0, "reset": null}}"#)
                .unwrap();
        let core = legacy.core();
        assert_eq!((core.limit, core.remaining, core.reset), (60, 0, None));
    }

    #[test]
    fn workflow_file_name_is_the_last_path_segment() {
        let wf: Workflow = serde_json::from_str(
            r#"{"id": 1, "name": "CI", "path": ".github/workflows/blank.yaml", "state": null}"#,
        )
        .unwrap();
        assert_eq!(wf.file_name(), "blank.yaml");
        assert_eq!(wf.state, None);
    }
}
