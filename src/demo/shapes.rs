//! The simulated repository's answers in GitHub's REST shapes. Each builder starts from
//! the example of the OpenAPI description Valine is tested against (the copies in
//! `src/github/fixtures/`) and changes only the fields the demo tells its story with, so
//! the simulation cannot drift into shapes GitHub never sends.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// Where the simulated repository lives: the base of its API, which also serves as its
/// web address (links in replies point at the simulation, never at github.com), and its
/// `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub base: String,
    pub repo: String,
}

/// The examples name these repositories and these hosts; [`Place::localise`] replaces
/// them.
const EXAMPLE_REPOS: [&str; 2] = ["octo-org/octo-repo", "octocat/Hello-World"];
const EXAMPLE_HOSTS: [&str; 3] = [
    "https://api.github.com",
    "http://api.github.com",
    "https://github.com",
];

fn example(text: &str) -> Value {
    // The fixtures are part of the source and checked by the tests: not input.
    serde_json::from_str(text).expect("the GitHub fixtures are valid JSON")
}

fn time(at: DateTime<Utc>) -> Value {
    at.to_rfc3339_opts(SecondsFormat::Secs, true).into()
}

impl Place {
    /// `value` with every URL of the example hosts and every mention of the example
    /// repository moved to this place.
    fn localise(&self, value: Value) -> Value {
        match value {
            Value::String(s) => {
                let mut s = s;
                for repo in EXAMPLE_REPOS {
                    s = s.replace(repo, &self.repo);
                }
                for host in EXAMPLE_HOSTS {
                    s = s.replace(host, &self.base);
                }
                Value::String(s)
            }
            Value::Array(items) => items.into_iter().map(|v| self.localise(v)).collect(),
            Value::Object(map) => map
                .into_iter()
                .map(|(k, v)| (k, self.localise(v)))
                .collect(),
            other => other,
        }
    }

    /// The web page of a run, as `html_url` names it.
    pub fn run_page(&self, id: u64) -> String {
        format!("{}/{}/actions/runs/{id}", self.base, self.repo)
    }

    /// Names a repository object (a `repository` answer, or one inside a run) after
    /// this place.
    fn name_repository(&self, repo: &mut Value) {
        let (owner, name) = self.repo.split_once('/').unwrap_or((&self.repo, ""));
        repo["name"] = name.into();
        repo["full_name"] = self.repo.as_str().into();
        repo["owner"]["login"] = owner.into();
        repo["html_url"] = format!("{}/{}", self.base, self.repo).into();
        repo["url"] = format!("{}/repos/{}", self.base, self.repo).into();
    }

    /// `GET /repos/{owner}/{repo}`, for a token that may push.
    pub fn repository(&self) -> Value {
        let mut repo = self.localise(example(include_str!("../github/fixtures/repository.json")));
        self.name_repository(&mut repo);
        // The example lacks `language`, which the schema requires (nullable).
        repo["language"] = "TypeScript".into();
        // Not a fork, nor made from a template.
        if let Value::Object(fields) = &mut repo {
            for key in ["parent", "source", "template_repository"] {
                fields.remove(key);
            }
        }
        repo["fork"] = false.into();
        repo["permissions"]["push"] = true.into();
        repo
    }

    /// `GET /repos/{owner}/{repo}/actions/workflows/{id}`.
    pub fn workflow(&self, workflow: &Workflow) -> Value {
        let mut value = self.localise(example(include_str!("../github/fixtures/workflow.json")));
        value["id"] = workflow.id.into();
        value["name"] = workflow.name.into();
        value["path"] = workflow.path().into();
        value["html_url"] =
            format!("{}/{}/blob/main/{}", self.base, self.repo, workflow.path()).into();
        value["url"] = format!(
            "{}/repos/{}/actions/workflows/{}",
            self.base, self.repo, workflow.id
        )
        .into();
        value
    }

    /// One workflow run.
    pub fn run(&self, workflow: &Workflow, run: &Run) -> Value {
        let mut value = self.localise(example(include_str!(
            "../github/fixtures/workflow_run.json"
        )));
        let id = run.id;
        value["id"] = id.into();
        value["name"] = workflow.name.into();
        value["path"] = format!("{}@{}", workflow.path(), run.branch).into();
        value["workflow_id"] = workflow.id.into();
        value["run_number"] = run.number.into();
        value["event"] = run.event.into();
        value["head_branch"] = run.branch.as_str().into();
        value["head_sha"] = run.sha.as_str().into();
        value["head_commit"]["id"] = run.sha.as_str().into();
        value["head_commit"]["message"] = run.title.as_str().into();
        value["head_commit"]["timestamp"] = time(run.created_at);
        value["display_title"] = run.title.as_str().into();
        value["status"] = run.status.as_str().into();
        value["conclusion"] = run.conclusion.map_or(Value::Null, Value::from);
        value["created_at"] = time(run.created_at);
        value["run_started_at"] = time(run.created_at);
        value["updated_at"] = time(run.updated_at);
        value["run_attempt"] = 1.into();
        value["previous_attempt_url"] = Value::Null;
        value["html_url"] = self.run_page(id).into();
        let api = format!("{}/repos/{}/actions/runs/{id}", self.base, self.repo);
        for (key, tail) in [
            ("url", ""),
            ("jobs_url", "/jobs"),
            ("logs_url", "/logs"),
            ("artifacts_url", "/artifacts"),
            ("cancel_url", "/cancel"),
            ("rerun_url", "/rerun"),
        ] {
            value[key] = format!("{api}{tail}").into();
        }
        for key in ["repository", "head_repository"] {
            self.name_repository(&mut value[key]);
        }
        value["workflow_url"] = format!(
            "{}/repos/{}/actions/workflows/{}",
            self.base, self.repo, workflow.id
        )
        .into();
        value
    }

    /// One job of a run, its steps one after the other from `started_at`.
    pub fn job(&self, run_id: u64, job: &Job) -> Value {
        let mut value =
            self.localise(example(include_str!("../github/fixtures/jobs.json"))["jobs"][0].clone());
        value["id"] = job.id.into();
        value["run_id"] = run_id.into();
        value["name"] = job.name.into();
        value["status"] = "completed".into();
        value["conclusion"] = job.conclusion.into();
        value["html_url"] = format!("{}/job/{}", self.run_page(run_id), job.id).into();
        value["url"] = format!("{}/repos/{}/actions/jobs/{}", self.base, self.repo, job.id).into();
        value["run_url"] =
            format!("{}/repos/{}/actions/runs/{run_id}", self.base, self.repo).into();
        // The example lacks `created_at`, which the schema requires.
        value["created_at"] = time(job.started_at);
        value["started_at"] = time(job.started_at);
        let mut at = job.started_at;
        value["steps"] = job
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let end = at + chrono::Duration::seconds(step.secs);
                let value = json!({
                    "name": step.name,
                    "status": "completed",
                    "conclusion": step.conclusion,
                    "number": i + 1,
                    "started_at": time(at),
                    "completed_at": time(end),
                });
                at = end;
                value
            })
            .collect();
        value["completed_at"] = time(at);
        value
    }

    /// `GET /rate_limit`: the example's quota, nearly untouched.
    pub fn rate_limit(&self) -> Value {
        example(include_str!("../github/fixtures/rate_limit.json"))
    }

    /// `POST …/dispatches` with `return_run_details`: the run GitHub started.
    pub fn dispatched(&self, run_id: u64) -> Value {
        json!({
            "workflow_run_id": run_id,
            "run_url": format!("{}/repos/{}/actions/runs/{run_id}", self.base, self.repo),
            "html_url": self.run_page(run_id),
        })
    }

    /// GitHub's error body.
    pub fn error(message: &str) -> Value {
        json!({"message": message, "documentation_url": "https://docs.github.com/rest"})
    }
}

/// A workflow of the simulated repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    pub id: u64,
    pub name: &'static str,
    /// The file name under `.github/workflows/`.
    pub file: &'static str,
}

impl Workflow {
    pub fn path(&self) -> String {
        format!(".github/workflows/{}", self.file)
    }

    /// Whether `spec` (an id or a file name, as a URL names the workflow) is this one.
    pub fn is(&self, spec: &str) -> bool {
        spec == self.id.to_string() || spec == self.file || spec == self.path()
    }
}

/// A run as the simulation keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub id: u64,
    pub number: u64,
    pub event: &'static str,
    pub branch: String,
    pub sha: String,
    pub title: String,
    pub status: String,
    pub conclusion: Option<&'static str>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A job of a finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
    pub name: &'static str,
    pub conclusion: &'static str,
    pub started_at: DateTime<Utc>,
    pub steps: Vec<Step>,
}

/// A step of a job and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: &'static str,
    pub conclusion: &'static str,
    pub secs: i64,
}
