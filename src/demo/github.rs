//! The simulated GitHub repository: a small HTTP server with the REST endpoints Valine
//! calls (workflows, runs, jobs, logs, dispatch, cancel, repository, rate limit), a
//! deploy workflow with a history of runs (the one before last failed in its build,
//! with jobs, steps and a log), and dispatched runs that move queued → in_progress →
//! completed on a short timer, each change sent to Valine as a signed `workflow_run`
//! webhook, as GitHub would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::shapes::{Job, Place, Run, Step, Workflow};
use crate::clock::Clock;

/// The deploy workflow, under Valine's default `DEPLOY_WORKFLOW` file name.
pub const DEPLOY_WORKFLOW: Workflow = Workflow {
    id: 61_000_001,
    name: "Client deploy",
    file: "client-deploy.yml",
};

/// How long a dispatched run stays queued, then in progress.
const QUEUED_FOR: Duration = Duration::from_millis(700);
const RUNNING_FOR: Duration = Duration::from_millis(1500);

/// Where the simulation sends webhooks: Valine's `/github/webhook` and its secret.
#[derive(Clone)]
pub struct Webhook {
    pub url: String,
    pub secret: String,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

#[derive(Default)]
struct Data {
    runs: Vec<Run>,
    jobs: HashMap<u64, Vec<Job>>,
    logs: HashMap<u64, String>,
    next_id: u64,
    webhook: Option<Webhook>,
}

/// The simulation's state, shared by its handlers and run timers.
pub struct Sim {
    place: Place,
    token: String,
    clock: Clock,
    http: reqwest::Client,
    data: Mutex<Data>,
}

impl Sim {
    /// A repository `place.repo` whose API accepts `token`, with its history of runs.
    /// Fails only when no HTTP client can be built for its webhooks.
    pub fn new(place: Place, token: &str, clock: Clock) -> Result<Arc<Sim>, reqwest::Error> {
        crate::github::api::ensure_crypto_provider();
        // Webhooks go to Valine on loopback: never through a proxy.
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()?;
        let data = history(clock.now());
        Ok(Arc::new(Sim {
            place,
            token: token.to_owned(),
            clock,
            http,
            data: Mutex::new(data),
        }))
    }

    /// From now on, run changes are sent to `webhook`.
    pub fn send_webhooks_to(&self, webhook: Webhook) {
        self.data().webhook = Some(webhook);
    }

    fn data(&self) -> MutexGuard<'_, Data> {
        // Every write leaves the data whole; a panicked holder does not spoil it.
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The router of the REST API; every request must carry the token.
    pub fn router(self: &Arc<Sim>) -> Router {
        Router::new()
            .route("/rate_limit", get(rate_limit))
            .route("/repos/{owner}/{repo}", get(repository))
            .route("/repos/{owner}/{repo}/actions/workflows", get(workflows))
            .route(
                "/repos/{owner}/{repo}/actions/workflows/{workflow}",
                get(workflow),
            )
            .route(
                "/repos/{owner}/{repo}/actions/workflows/{workflow}/runs",
                get(runs),
            )
            .route(
                "/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches",
                post(dispatch),
            )
            .route("/repos/{owner}/{repo}/actions/runs/{id}", get(run))
            .route("/repos/{owner}/{repo}/actions/runs/{id}/jobs", get(jobs))
            .route(
                "/repos/{owner}/{repo}/actions/runs/{id}/cancel",
                post(cancel),
            )
            .route("/repos/{owner}/{repo}/actions/jobs/{id}/logs", get(logs))
            .fallback(|| async { not_found() })
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(self),
                require_token,
            ))
            .with_state(Arc::clone(self))
    }

    fn ours(&self, owner: &str, repo: &str) -> bool {
        self.place.repo == format!("{owner}/{repo}")
    }

    fn run_json(&self, run: &Run) -> Value {
        self.place.run(&DEPLOY_WORKFLOW, run)
    }

    /// Moves run `id` to `status`; `false` when it is gone or already completed (a
    /// cancel got there first).
    fn advance(&self, id: u64, status: &str, conclusion: Option<&'static str>) -> bool {
        let now = self.clock.now();
        let mut data = self.data();
        let Some(run) = data
            .runs
            .iter_mut()
            .find(|r| r.id == id && r.status != "completed")
        else {
            return false;
        };
        run.status = status.to_owned();
        run.conclusion = conclusion;
        run.updated_at = now;
        if status == "completed" {
            let started = run.created_at;
            let job = deploy_job(data.next_id, started, Plan::Quick);
            data.next_id += 1;
            data.jobs.insert(id, vec![job]);
        }
        true
    }

    /// Sends run `id` as a signed `workflow_run` delivery, when Valine listens. A
    /// delivery that fails is only logged: Valine's poll of a followed run covers it, as
    /// it covers a webhook GitHub loses.
    async fn deliver(&self, id: u64, action: &str) {
        let (webhook, run) = {
            let data = self.data();
            let run = data.runs.iter().find(|r| r.id == id).cloned();
            (data.webhook.clone(), run)
        };
        let (Some(webhook), Some(run)) = (webhook, run) else {
            return;
        };
        let run = self.run_json(&run);
        let body = json!({
            "action": action,
            "workflow_run": run,
            "workflow": self.place.workflow(&DEPLOY_WORKFLOW),
            "repository": run["repository"],
            "sender": run["triggering_actor"],
        })
        .to_string();
        let delivery = uuid::Uuid::new_v4().to_string();
        let sent = self
            .http
            .post(&webhook.url)
            .header("content-type", "application/json")
            .header("x-github-event", "workflow_run")
            .header("x-github-delivery", &delivery)
            .header(
                "x-hub-signature-256",
                signature(webhook.secret.as_bytes(), body.as_bytes()),
            )
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                tracing::warn!(
                    status = response.status().as_u16(),
                    "simulated webhook refused"
                )
            }
            Err(e) => tracing::warn!(error.message = %e, "simulated webhook not delivered"),
        }
    }

    /// What GitHub's runner does with a dispatched run, faster.
    async fn play(self: Arc<Sim>, id: u64) {
        self.deliver(id, "requested").await;
        tokio::time::sleep(QUEUED_FOR).await;
        if !self.advance(id, "in_progress", None) {
            return;
        }
        self.deliver(id, "in_progress").await;
        tokio::time::sleep(RUNNING_FOR).await;
        if self.advance(id, "completed", Some("success")) {
            self.deliver(id, "completed").await;
        }
    }
}

/// `sha256=<hex>` of `body` under `secret`, as GitHub signs a delivery.
fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, axum::Json(Place::error("Not Found"))).into_response()
}

fn unprocessable(message: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(Place::error(message)),
    )
        .into_response()
}

/// GitHub's 401 for a request without the simulation's token.
async fn require_token(
    State(sim): State<Arc<Sim>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let expected = format!("Bearer {}", sim.token);
    let sent = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if sent != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(Place::error("Bad credentials")),
        )
            .into_response();
    }
    next.run(request).await
}

async fn rate_limit(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(sim.place.rate_limit()).into_response()
}

async fn repository(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    if !sim.ours(&owner, &repo) {
        return not_found();
    }
    let mut response = axum::Json(sim.place.repository()).into_response();
    let headers: &mut HeaderMap = response.headers_mut();
    headers.insert("x-ratelimit-remaining", 4999.into());
    headers.insert(
        "x-oauth-scopes",
        axum::http::HeaderValue::from_static("repo, workflow"),
    );
    response
}

async fn workflows(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    if !sim.ours(&owner, &repo) {
        return not_found();
    }
    axum::Json(json!({
        "total_count": 1,
        "workflows": [sim.place.workflow(&DEPLOY_WORKFLOW)],
    }))
    .into_response()
}

async fn workflow(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo, workflow)): Path<(String, String, String)>,
) -> Response {
    if !sim.ours(&owner, &repo) || !DEPLOY_WORKFLOW.is(&workflow) {
        return not_found();
    }
    axum::Json(sim.place.workflow(&DEPLOY_WORKFLOW)).into_response()
}

#[derive(serde::Deserialize)]
struct RunsQuery {
    branch: Option<String>,
    per_page: Option<usize>,
    page: Option<usize>,
}

async fn runs(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo, workflow)): Path<(String, String, String)>,
    Query(q): Query<RunsQuery>,
) -> Response {
    if !sim.ours(&owner, &repo) || !DEPLOY_WORKFLOW.is(&workflow) {
        return not_found();
    }
    let mut runs: Vec<Run> = sim
        .data()
        .runs
        .iter()
        .filter(|r| q.branch.as_deref().is_none_or(|b| r.branch == b))
        .cloned()
        .collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    let total = runs.len();
    let per_page = q.per_page.unwrap_or(30).clamp(1, 100);
    let page = q.page.unwrap_or(1).max(1);
    let page: Vec<Value> = runs
        .iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|r| sim.run_json(r))
        .collect();
    axum::Json(json!({"total_count": total, "workflow_runs": page})).into_response()
}

async fn run(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
) -> Response {
    let found = sim.data().runs.iter().find(|r| r.id == id).cloned();
    match found.filter(|_| sim.ours(&owner, &repo)) {
        Some(run) => axum::Json(sim.run_json(&run)).into_response(),
        None => not_found(),
    }
}

async fn jobs(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
) -> Response {
    if !sim.ours(&owner, &repo) {
        return not_found();
    }
    let jobs = sim.data().jobs.get(&id).cloned().unwrap_or_default();
    let jobs: Vec<Value> = jobs.iter().map(|j| sim.place.job(id, j)).collect();
    axum::Json(json!({"total_count": jobs.len(), "jobs": jobs})).into_response()
}

async fn logs(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
) -> Response {
    let text = sim.data().logs.get(&id).cloned();
    match text.filter(|_| sim.ours(&owner, &repo)) {
        Some(text) => ([("content-type", "text/plain")], text).into_response(),
        None => not_found(),
    }
}

/// `POST …/dispatches`: starts a queued run whose title carries the correlation id (as
/// the workflow's `run-name` would) and plays it.
async fn dispatch(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo, workflow)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    if !sim.ours(&owner, &repo) || !DEPLOY_WORKFLOW.is(&workflow) {
        return not_found();
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return unprocessable("Problems parsing JSON");
    };
    let Some(git_ref) = body["ref"].as_str().filter(|r| !r.is_empty()) else {
        return unprocessable("Invalid request.\n\n\"ref\" wasn't supplied.");
    };
    let branch = git_ref.strip_prefix("refs/heads/").unwrap_or(git_ref);
    let correlation = body["inputs"]["correlation_id"].as_str().unwrap_or("");
    let now = sim.clock.now();
    let id = {
        let mut data = sim.data();
        let id = data.next_id;
        data.next_id += 1;
        let number = data.runs.iter().map(|r| r.number).max().unwrap_or(0) + 1;
        data.runs.push(Run {
            id,
            number,
            event: "workflow_dispatch",
            branch: branch.to_owned(),
            sha: commit(number),
            title: format!("Deploy {branch} [{correlation}]"),
            status: "queued".into(),
            conclusion: None,
            created_at: now,
            updated_at: now,
        });
        id
    };
    tokio::spawn(Arc::clone(&sim).play(id));
    if body["return_run_details"] == true {
        axum::Json(sim.place.dispatched(id)).into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

/// `POST …/runs/{id}/cancel`: 202 for an unfinished run, which then completes as
/// cancelled; 409 for a completed one.
async fn cancel(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
) -> Response {
    let known = sim.ours(&owner, &repo) && sim.data().runs.iter().any(|r| r.id == id);
    if !known {
        return not_found();
    }
    if !sim.advance(id, "completed", Some("cancelled")) {
        return (
            StatusCode::CONFLICT,
            axum::Json(Place::error(
                "Cannot cancel a workflow run that is completed.",
            )),
        )
            .into_response();
    }
    let sim = Arc::clone(&sim);
    tokio::spawn(async move { sim.deliver(id, "completed").await });
    (StatusCode::ACCEPTED, axum::Json(json!({}))).into_response()
}

/// The commit a run number deploys: a sha that stays the same for the number.
fn commit(number: u64) -> String {
    use sha2::Digest;
    let digest = hex::encode(Sha256::digest(format!("{REPO_SEED}{number}")));
    digest[..40].to_owned()
}

/// Seeds the simulated commit shas.
const REPO_SEED: &str = "valine demo commit ";

/// How a deploy job goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// At a real runner's pace.
    Success,
    /// Breaks in its build step.
    BuildFails,
    /// A dispatched run, finished in the seconds the demo gives it.
    Quick,
}

/// The deploy job of a run, as `plan` says it went.
fn deploy_job(id: u64, started_at: DateTime<Utc>, plan: Plan) -> Job {
    let ok = |name, secs| Step {
        name,
        conclusion: "success",
        secs,
    };
    if plan == Plan::Quick {
        return Job {
            id,
            name: "deploy",
            conclusion: "success",
            started_at,
            steps: vec![
                ok("Set up job", 0),
                ok("Checkout", 0),
                ok("Install dependencies", 1),
                ok("Build", 1),
                ok("Sync to S3", 0),
                ok("Invalidate CloudFront", 1),
            ],
        };
    }
    let mut steps = vec![
        ok("Set up job", 2),
        ok("Checkout", 1),
        ok("Install dependencies", 14),
    ];
    let conclusion = if plan == Plan::BuildFails {
        steps.push(Step {
            name: "Build",
            conclusion: "failure",
            secs: 23,
        });
        steps.push(Step {
            name: "Sync to S3",
            conclusion: "skipped",
            secs: 0,
        });
        steps.push(Step {
            name: "Invalidate CloudFront",
            conclusion: "skipped",
            secs: 0,
        });
        "failure"
    } else {
        steps.push(ok("Build", 41));
        steps.push(ok("Sync to S3", 9));
        steps.push(ok("Invalidate CloudFront", 27));
        "success"
    };
    Job {
        id,
        name: "deploy",
        conclusion,
        started_at,
        steps,
    }
}

/// The failed build's log, as GitHub serves it: a timestamp on every line, a group per
/// step, the failure marked `##[error]`.
fn failed_build_log(started_at: DateTime<Utc>) -> String {
    let lines = [
        "##[group]Run actions/checkout@v4",
        "Syncing repository: demo/shop",
        "##[endgroup]",
        "##[group]Run npm ci",
        "added 812 packages, and audited 813 packages in 14s",
        "##[endgroup]",
        "##[group]Run npm run build",
        "> shop@1.4.0 build",
        "> tsc -b && vite build",
        "src/pages/Checkout.tsx(42,7): error TS2322: Type 'string' is not assignable to type 'number'.",
        "src/pages/Checkout.tsx(58,19): error TS2339: Property 'totl' does not exist on type 'Cart'.",
        "Found 2 errors.",
        "##[error]Process completed with exit code 2.",
        "##[group]Post job cleanup.",
        "##[endgroup]",
    ];
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let at = started_at + chrono::Duration::seconds(i as i64);
            format!(
                "{} {line}\n",
                at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            )
        })
        .collect()
}

/// The deploy workflow's history on `main`, newest first: a success minutes ago, the
/// failed build before it, and two older successes.
fn history(now: DateTime<Utc>) -> Data {
    let ago = |minutes: i64| now - chrono::Duration::minutes(minutes);
    let past = [
        (45, 25, "Checkout: show the order total", Plan::Success),
        (44, 130, "Checkout: totals in cents", Plan::BuildFails),
        (43, 60 * 26, "Product page: lazy images", Plan::Success),
        (42, 60 * 50, "Bump vite to 6.2", Plan::Success),
    ];
    let mut data = Data {
        next_id: 14_000_000_001,
        ..Data::default()
    };
    for (number, minutes, message, plan) in past {
        let id = data.next_id;
        let job_id = data.next_id + 1;
        data.next_id += 2;
        let created_at = ago(minutes);
        let job = deploy_job(job_id, created_at, plan);
        let duration = job.steps.iter().map(|s| s.secs).sum::<i64>();
        if plan == Plan::BuildFails {
            data.logs.insert(job_id, failed_build_log(created_at));
        }
        data.runs.push(Run {
            id,
            number,
            event: "push",
            branch: "main".into(),
            sha: commit(number),
            title: message.into(),
            status: "completed".into(),
            conclusion: Some(job.conclusion),
            created_at,
            updated_at: created_at + chrono::Duration::seconds(duration),
        });
        data.jobs.insert(id, vec![job]);
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_what_valines_webhook_check_accepts() {
        let body = br#"{"action":"completed"}"#;
        let header = signature(b"s3cret", body);
        assert!(crate::github::webhook::signature_valid(
            b"s3cret",
            body,
            Some(&header)
        ));
        assert!(!crate::github::webhook::signature_valid(
            b"other",
            body,
            Some(&header)
        ));
    }

    #[test]
    fn the_history_has_one_failed_build_with_its_log() {
        let data = history(Utc::now());
        let failed: Vec<&Run> = data
            .runs
            .iter()
            .filter(|r| r.conclusion == Some("failure"))
            .collect();
        assert_eq!(failed.len(), 1);
        let job = &data.jobs[&failed[0].id][0];
        assert_eq!(job.conclusion, "failure");
        let log = &data.logs[&job.id];
        // Every line stamped, the failing step's group named after its command.
        assert!(log.lines().all(|l| l.contains("Z ")));
        let build = log.find("##[group]Run npm run build").unwrap();
        let error = log.find("##[error]").unwrap();
        assert!(build < log.find("TS2322").unwrap() && log.find("TS2322").unwrap() < error);
    }
}
