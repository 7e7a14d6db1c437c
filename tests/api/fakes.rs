//! Fakes of the GitHub and Discord APIs: real HTTP servers on 127.0.0.1 that record
//! every request. GitHub's answers are built from the examples in the OpenAPI contract
//! (`tests/contracts/github-actions-openapi.json`), with only the fields a test cares
//! about changed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, patch, post};
use serde_json::{Value, json};
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Value,
}

/// Requests seen by a fake, shared with the test.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Recorded>>>);

impl Log {
    fn push(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) {
        let body = serde_json::from_slice(body).unwrap_or(Value::Null);
        self.0.lock().unwrap().push(Recorded {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers: headers.clone(),
            body,
        });
    }

    pub fn all(&self) -> Vec<Recorded> {
        self.0.lock().unwrap().clone()
    }

    pub fn matching(&self, method: &str, path_contains: &str) -> Vec<Recorded> {
        self.all()
            .into_iter()
            .filter(|r| r.method == method && r.path.contains(path_contains))
            .collect()
    }

    /// Polls until a request matching `method` and `path_contains` has arrived.
    pub async fn wait_for(&self, method: &str, path_contains: &str, timeout: Duration) -> Recorded {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(r) = self.matching(method, path_contains).pop() {
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {method} …{path_contains}… within {timeout:?}; saw {:?}",
                self.all()
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.path))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

fn contract() -> &'static Value {
    static CONTRACT: OnceLock<Value> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/contracts/github-actions-openapi.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    })
}

/// The example body of `GET path` in the contract.
pub fn contract_example(path: &str) -> Value {
    contract()["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["examples"]
        ["default"]["value"]
        .clone()
}

/// The JSON schema of `GET path`'s 200 answer.
pub fn contract_schema(path: &str) -> Value {
    contract()["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        .clone()
}

/// A workflow run shaped like the contract's example.
pub fn run_json(
    id: u64,
    workflow_id: u64,
    branch: &str,
    status: &str,
    conclusion: Option<&str>,
    created_at: &str,
    updated_at: &str,
) -> Value {
    let mut run = contract_example("/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs")
        ["workflow_runs"][0]
        .clone();
    run["id"] = id.into();
    run["workflow_id"] = workflow_id.into();
    run["head_branch"] = branch.into();
    run["status"] = status.into();
    run["conclusion"] = conclusion.map(Value::from).unwrap_or(Value::Null);
    run["created_at"] = created_at.into();
    run["run_started_at"] = created_at.into();
    run["updated_at"] = updated_at.into();
    run["html_url"] = format!("https://github.com/octo-org/octo-repo/actions/runs/{id}").into();
    run["display_title"] = format!("Deploy {id}").into();
    run
}

pub fn workflow_json(id: u64, name: &str, file: &str) -> Value {
    let mut workflow = contract_example("/repos/{owner}/{repo}/actions/workflows/{workflow_id}");
    workflow["id"] = id.into();
    workflow["name"] = name.into();
    workflow["path"] = format!(".github/workflows/{file}").into();
    workflow
}

#[derive(Default)]
pub struct GitHubState {
    pub workflows: Vec<Value>,
    pub runs: Vec<Value>,
    /// When set, run listings wait for this before answering (a slow GitHub).
    pub gate: Option<Arc<Notify>>,
    /// Actions variables by name.
    pub variables: std::collections::BTreeMap<String, String>,
    /// Actions secrets by name: the body of the last `PUT` (sealed value and key id).
    pub secrets: std::collections::BTreeMap<String, Value>,
    /// `(key_id, base64 X25519 public key)` served for sealing secrets.
    pub public_key: Option<(String, String)>,
    /// When set, every variable or secret write answers this status and message.
    pub write_failure: Option<(u16, String)>,
    /// How `POST …/dispatches` answers.
    pub dispatch_mode: DispatchMode,
    /// When set, a dispatch waits for this before (or after) starting its run: the
    /// process that sent it can die meanwhile.
    pub dispatch_hang: Option<(Hang, Arc<Notify>)>,
    /// Whether dispatched runs carry `inputs.correlation_id` in their title (the
    /// set-up contract's `run-name`).
    pub titles_without_correlation: bool,
    /// Id of the next run a dispatch starts.
    pub next_run_id: u64,
    /// Jobs of a run, by run id (`GET …/actions/runs/{id}/jobs`).
    pub jobs: std::collections::HashMap<u64, Vec<Value>>,
    /// Plain-text logs, by job id (`GET …/actions/jobs/{id}/logs`).
    pub logs: std::collections::HashMap<u64, String>,
    /// The `x-oauth-scopes` header of `GET /repos/{owner}/{repo}` (classic tokens).
    pub scopes: Option<String>,
    /// Files of the default branch by path (`GET …/contents/{path}`).
    pub files: std::collections::BTreeMap<String, String>,
    /// The repository's webhooks (`GET …/hooks`), shaped as GitHub's `hook`.
    pub hooks: Vec<Value>,
    /// `GET …/hooks` answers 403, as it does for a token without admin rights.
    pub hooks_forbidden: bool,
    /// When set, a request whose token is not this one gets GitHub's 401.
    pub accepted_token: Option<String>,
    /// GitHub App mode: the App endpoints answer, and every other request needs an
    /// installation token this fake granted.
    pub app: Option<FakeApp>,
    /// The next this many requests are answered 502 (GitHub having a bad moment).
    pub outage: usize,
}

/// A GitHub App as the fake knows it: JWTs must verify with the test key pair's public
/// half (`src/github/fixtures/`) and name `app_id`; installation tokens live `token_ttl`
/// of the wall clock unless revoked.
pub struct FakeApp {
    pub app_id: u64,
    pub installation_id: u64,
    pub token_ttl: chrono::Duration,
    /// Granted token → when it expires.
    pub tokens: std::collections::HashMap<String, chrono::DateTime<chrono::Utc>>,
}

/// The public half of the test-only App key (PKCS#1 DER).
const TEST_APP_PUBLIC_KEY: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/src/github/fixtures/test-app-key.pub.der"
));

/// The test-only App private key Valine is configured with in App tests.
pub const TEST_APP_PRIVATE_KEY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/src/github/fixtures/test-app-key.pem"
));

impl FakeApp {
    /// Whether `authorization` carries a JWT GitHub would accept for this App now:
    /// an RS256 signature by the App's key, `iss` the App, `iat` not in the future
    /// (a minute of drift allowed), `exp` in the future and at most 10 minutes on.
    fn accepts_jwt(&self, authorization: &str) -> bool {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
        let check = || -> Option<bool> {
            let jwt = authorization.strip_prefix("Bearer ")?;
            let (signed, signature) = jwt.rsplit_once('.')?;
            let (header, claims) = signed.split_once('.')?;
            let header: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
            let claims: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()?;
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, TEST_APP_PUBLIC_KEY)
                .verify(signed.as_bytes(), &URL_SAFE_NO_PAD.decode(signature).ok()?)
                .ok()?;
            let now = chrono::Utc::now().timestamp();
            let (iat, exp) = (claims["iat"].as_i64()?, claims["exp"].as_i64()?);
            Some(
                header["alg"] == "RS256"
                    && claims["iss"] == self.app_id
                    && iat <= now + 60
                    && exp > now
                    && exp - iat <= 11 * 60,
            )
        };
        check().unwrap_or(false)
    }

    /// Whether `authorization` carries a granted, unexpired installation token.
    fn accepts_token(&self, authorization: &str) -> bool {
        authorization
            .strip_prefix("Bearer ")
            .and_then(|token| self.tokens.get(token))
            .is_some_and(|expires| *expires > chrono::Utc::now())
    }
}

/// A repository webhook as `GET /repos/{owner}/{repo}/hooks` lists it.
pub fn hook_json(id: u64, url: &str, events: &[&str], active: bool) -> Value {
    json!({
        "type": "Repository",
        "id": id,
        "name": "web",
        "active": active,
        "events": events,
        "config": {"content_type": "json", "insecure_ssl": "0", "url": url},
        "updated_at": "2026-01-01T00:00:00Z",
        "created_at": "2026-01-01T00:00:00Z",
        "url": format!("https://api.github.com/repos/octo-org/octo-repo/hooks/{id}"),
        "test_url": format!("https://api.github.com/repos/octo-org/octo-repo/hooks/{id}/test"),
        "ping_url": format!("https://api.github.com/repos/octo-org/octo-repo/hooks/{id}/pings"),
        "deliveries_url": format!("https://api.github.com/repos/octo-org/octo-repo/hooks/{id}/deliveries"),
        "last_response": {"code": 200, "status": "active", "message": "OK"}
    })
}

/// A deploy workflow file that declares what Valine sends and carries the correlation id
/// in its run name.
pub const DEPLOY_WORKFLOW_YAML: &str = r#"name: Client deploy
run-name: "Deploy ${{ github.ref_name }} [${{ inputs.correlation_id }}]"
on:
  workflow_dispatch:
    inputs:
      correlation_id: {required: false, type: string}
      requester: {required: false, type: string}
      VITE_API_BASE: {required: false, type: string}
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - run: npm run build
"#;

/// The diagnose workflow counterpart of [`DEPLOY_WORKFLOW_YAML`].
pub const DIAGNOSE_WORKFLOW_YAML: &str = r#"name: Diagnose
run-name: "Diagnose [${{ inputs.correlation_id }}]"
on:
  workflow_dispatch:
    inputs:
      correlation_id: {}
      requester: {}
      frontend_url: {}
      api_base: {}
jobs:
  check:
    runs-on: ubuntu-latest
    steps:
      - run: curl -fsS "${{ inputs.frontend_url }}"
"#;

/// A job of a run shaped like the contract's example; `steps` are (name, conclusion,
/// seconds), one after the other.
pub fn job_json(
    id: u64,
    run_id: u64,
    name: &str,
    conclusion: &str,
    steps: &[(&str, &str, i64)],
) -> Value {
    let mut job =
        contract_example("/repos/{owner}/{repo}/actions/runs/{run_id}/jobs")["jobs"][0].clone();
    job["id"] = id.into();
    job["run_id"] = run_id.into();
    job["name"] = name.into();
    job["conclusion"] = conclusion.into();
    job["html_url"] =
        format!("https://github.com/octo-org/octo-repo/actions/runs/{run_id}/job/{id}").into();
    let start = chrono::DateTime::parse_from_rfc3339("2024-01-01T12:00:00Z").unwrap();
    let mut at = start;
    job["steps"] = steps
        .iter()
        .enumerate()
        .map(|(i, (step, conclusion, secs))| {
            let end = at + chrono::Duration::seconds(*secs);
            let value = json!({
                "name": step, "status": "completed", "conclusion": conclusion, "number": i + 1,
                "started_at": at.to_rfc3339(), "completed_at": end.to_rfc3339(),
            });
            at = end;
            value
        })
        .collect();
    job
}

/// How the fake answers a workflow dispatch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DispatchMode {
    /// 200 with `workflow_run_id`, `run_url`, `html_url` (`return_run_details: true`).
    #[default]
    RunDetails,
    /// 422 naming `return_run_details` (servers without the field); 204 without it.
    RejectRunDetails,
    /// 204 and no body, whatever was asked.
    NoContent,
    /// This status without starting a run: a refusal, or a 5xx before GitHub acted.
    Fail(u16),
    /// Starts the run, then answers this status: a 5xx whose answer lost the run.
    FailAfterRun(u16),
}

fn dispatch_failure(status: u16) -> Response {
    if status >= 500 {
        gh_error(status, "Server Error")
    } else {
        gh_error(status, "Unexpected inputs provided: [\"frontend_url\"]")
    }
}

/// Where a dispatch hangs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hang {
    /// Before the run exists: GitHub never acted on the request.
    BeforeRun,
    /// After the run started, before the answer: the answer is lost.
    AfterRun,
}

#[derive(Clone)]
pub struct FakeGitHub {
    pub addr: SocketAddr,
    pub log: Log,
    pub state: Arc<Mutex<GitHubState>>,
}

type GhState = (Log, Arc<Mutex<GitHubState>>);

impl FakeGitHub {
    pub async fn start() -> Self {
        let log = Log::default();
        let state = Arc::new(Mutex::new(GitHubState::default()));
        let router = Router::new()
            .route("/repos/{owner}/{repo}/actions/workflows", get(gh_workflows))
            .route(
                "/repos/{owner}/{repo}/actions/workflows/{id}",
                get(gh_workflow),
            )
            .route(
                "/repos/{owner}/{repo}/actions/workflows/{id}/runs",
                get(gh_runs),
            )
            .route(
                "/repos/{owner}/{repo}/actions/workflows/{id}/dispatches",
                post(gh_dispatch),
            )
            .route(
                "/repos/{owner}/{repo}/actions/runs/{id}/cancel",
                post(gh_cancel),
            )
            .route(
                "/repos/{owner}/{repo}/actions/variables",
                axum::routing::post(gh_create_variable),
            )
            .route(
                "/repos/{owner}/{repo}/actions/variables/{name}",
                patch(gh_update_variable),
            )
            .route(
                "/repos/{owner}/{repo}/actions/secrets/public-key",
                get(gh_public_key),
            )
            .route(
                "/repos/{owner}/{repo}/actions/secrets/{name}",
                axum::routing::put(gh_put_secret),
            )
            .route("/repos/{owner}/{repo}/actions/runs/{id}", get(gh_run))
            .route(
                "/repos/{owner}/{repo}/actions/runs/{id}/jobs",
                get(gh_run_jobs),
            )
            .route(
                "/repos/{owner}/{repo}/actions/runs/{id}/rerun-failed-jobs",
                axum::routing::post(gh_rerun_failed),
            )
            .route(
                "/repos/{owner}/{repo}/actions/runs/{id}/rerun",
                axum::routing::post(gh_rerun),
            )
            .route(
                "/repos/{owner}/{repo}/actions/jobs/{id}/logs",
                get(gh_job_logs),
            )
            .route("/repos/{owner}/{repo}", get(gh_repo))
            .route("/rate_limit", get(gh_rate_limit))
            .route("/repos/{owner}/{repo}/contents/{*path}", get(gh_contents))
            .route("/repos/{owner}/{repo}/hooks", get(gh_hooks))
            .route("/repos/{owner}/{repo}/installation", get(gh_installation))
            .route(
                "/app/installations/{id}/access_tokens",
                post(gh_access_tokens),
            )
            .fallback(any(gh_fallback))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                gh_check_token,
            ))
            .with_state((log.clone(), state.clone()));
        let addr = serve(router).await;
        FakeGitHub { addr, log, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add_workflow(&self, id: u64, name: &str, file: &str) {
        self.state
            .lock()
            .unwrap()
            .workflows
            .push(workflow_json(id, name, file));
    }

    pub fn add_run(&self, run: Value) {
        self.state.lock().unwrap().runs.push(run);
    }

    pub fn set_gate(&self, gate: Option<Arc<Notify>>) {
        self.state.lock().unwrap().gate = gate;
    }

    /// Serves `key_b64` (a base64 X25519 public key) as the repository's secrets key.
    pub fn set_public_key(&self, key_id: &str, key_b64: &str) {
        self.state.lock().unwrap().public_key = Some((key_id.to_owned(), key_b64.to_owned()));
    }

    pub fn fail_writes(&self, status: u16, message: &str) {
        self.state.lock().unwrap().write_failure = Some((status, message.to_owned()));
    }

    pub fn variable(&self, name: &str) -> Option<String> {
        self.state.lock().unwrap().variables.get(name).cloned()
    }

    pub fn secret(&self, name: &str) -> Option<Value> {
        self.state.lock().unwrap().secrets.get(name).cloned()
    }

    pub fn set_dispatch_mode(&self, mode: DispatchMode) {
        self.state.lock().unwrap().dispatch_mode = mode;
    }

    pub fn set_dispatch_hang(&self, hang: Option<(Hang, Arc<Notify>)>) {
        self.state.lock().unwrap().dispatch_hang = hang;
    }

    pub fn set_titles_without_correlation(&self, without: bool) {
        self.state.lock().unwrap().titles_without_correlation = without;
    }

    /// Serves `text` as the file at `path` of the default branch.
    pub fn add_file(&self, path: &str, text: &str) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(path.to_owned(), text.to_owned());
    }

    pub fn add_hook(&self, hook: Value) {
        self.state.lock().unwrap().hooks.push(hook);
    }

    /// A run as the fake holds it.
    pub fn run(&self, id: u64) -> Option<Value> {
        self.state
            .lock()
            .unwrap()
            .runs
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
    }

    /// Moves a run to `status` (and `conclusion`), as GitHub would while it runs.
    pub fn set_run_status(&self, id: u64, status: &str, conclusion: Option<&str>) {
        let mut state = self.state.lock().unwrap();
        let run = state
            .runs
            .iter_mut()
            .find(|r| r["id"] == id)
            .expect("run exists");
        run["status"] = status.into();
        run["conclusion"] = conclusion.map(Value::from).unwrap_or(Value::Null);
        run["updated_at"] = now_rfc3339().into();
    }

    /// The dispatches received, oldest first.
    pub fn dispatches(&self) -> Vec<Recorded> {
        self.log.matching("POST", "/dispatches")
    }

    /// Turns on GitHub App mode for App `app_id` installed as `installation_id`; tokens
    /// live an hour.
    pub fn enable_app(&self, app_id: u64, installation_id: u64) {
        self.state.lock().unwrap().app = Some(FakeApp {
            app_id,
            installation_id,
            token_ttl: chrono::Duration::hours(1),
            tokens: Default::default(),
        });
    }

    /// How long the installation tokens granted from now on live.
    pub fn set_app_token_ttl(&self, ttl: chrono::Duration) {
        if let Some(app) = self.state.lock().unwrap().app.as_mut() {
            app.token_ttl = ttl;
        }
    }

    /// Revokes every installation token granted so far (GitHub answers 401 to them).
    pub fn revoke_app_tokens(&self) {
        if let Some(app) = self.state.lock().unwrap().app.as_mut() {
            app.tokens.clear();
        }
    }

    /// Answers the next `requests` requests with 502.
    pub fn set_outage(&self, requests: usize) {
        self.state.lock().unwrap().outage = requests;
    }

    /// Installation tokens granted (`POST /app/installations/{id}/access_tokens`).
    pub fn token_grants(&self) -> usize {
        self.log.matching("POST", "/access_tokens").len()
    }

    /// Requests that would change something on GitHub.
    pub fn writes(&self) -> Vec<Recorded> {
        self.log
            .all()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }
}

fn gh_error(status: u16, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(
            json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
        ),
    )
        .into_response()
}

fn write_failure(state: &Mutex<GitHubState>) -> Option<Response> {
    state
        .lock()
        .unwrap()
        .write_failure
        .as_ref()
        .map(|(status, message)| gh_error(*status, message))
}

async fn gh_create_variable(
    State((log, state)): State<GhState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    log.push(&method, &uri, &headers, &body);
    if let Some(failure) = write_failure(&state) {
        return failure;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (Some(name), Some(value)) = (body["name"].as_str(), body["value"].as_str()) else {
        return gh_error(422, "Invalid request.");
    };
    let mut state = state.lock().unwrap();
    if state.variables.contains_key(name) {
        return gh_error(409, "Already exists");
    }
    state.variables.insert(name.to_owned(), value.to_owned());
    (StatusCode::CREATED, axum::Json(json!({}))).into_response()
}

async fn gh_update_variable(
    State((log, state)): State<GhState>,
    Path((_, _, name)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    log.push(&method, &uri, &headers, &body);
    if let Some(failure) = write_failure(&state) {
        return failure;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut state = state.lock().unwrap();
    match (state.variables.get_mut(&name), body["value"].as_str()) {
        (Some(stored), Some(value)) => {
            *stored = value.to_owned();
            StatusCode::NO_CONTENT.into_response()
        }
        (None, _) => gh_error(404, "Not Found"),
        (_, None) => gh_error(422, "Invalid request."),
    }
}

async fn gh_public_key(
    State((log, state)): State<GhState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    log.push(&method, &uri, &headers, b"");
    match state.lock().unwrap().public_key.clone() {
        Some((key_id, key)) => axum::Json(json!({"key_id": key_id, "key": key})).into_response(),
        None => gh_error(404, "Not Found"),
    }
}

async fn gh_put_secret(
    State((log, state)): State<GhState>,
    Path((_, _, name)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    log.push(&method, &uri, &headers, &body);
    if let Some(failure) = write_failure(&state) {
        return failure;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut state = state.lock().unwrap();
    let known_key = state.public_key.as_ref().map(|(id, _)| id.as_str());
    if body["encrypted_value"].as_str().is_none() || body["key_id"].as_str() != known_key {
        return gh_error(422, "Invalid request.");
    }
    let created = state.secrets.insert(name, body).is_none();
    if created {
        (StatusCode::CREATED, axum::Json(json!({}))).into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `POST …/workflows/{id}/dispatches`: starts a `queued` run on the ref whose title
/// carries the correlation id (unless told otherwise), answering as `dispatch_mode` says.
async fn gh_dispatch(
    State((log, state)): State<GhState>,
    Path((_, _, workflow)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    log.push(&method, &uri, &headers, &body);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (mode, hang) = {
        let state = state.lock().unwrap();
        (state.dispatch_mode, state.dispatch_hang.clone())
    };
    if mode == DispatchMode::RejectRunDetails && body.get("return_run_details").is_some() {
        return gh_error(
            422,
            "Invalid request.\n\n\"return_run_details\" is not a permitted key.",
        );
    }
    let Some(git_ref) = body["ref"].as_str() else {
        return gh_error(422, "Invalid request.\n\n\"ref\" wasn't supplied.");
    };
    if let DispatchMode::Fail(status) = mode {
        return dispatch_failure(status);
    }
    if let Some((Hang::BeforeRun, gate)) = &hang {
        gate.notified().await;
        return gh_error(502, "Server Error");
    }
    let (id, html_url) = {
        let mut state = state.lock().unwrap();
        let id = 9000 + state.next_run_id;
        state.next_run_id += 1;
        let workflow_id = workflow.parse::<u64>().unwrap_or(0);
        let now = now_rfc3339();
        let mut run = run_json(id, workflow_id, git_ref, "queued", None, &now, &now);
        run["name"] = "Client deploy".into();
        run["event"] = "workflow_dispatch".into();
        let correlation = body["inputs"]["correlation_id"].as_str().unwrap_or("");
        run["display_title"] = if state.titles_without_correlation {
            format!("Deploy {git_ref}").into()
        } else {
            format!("Deploy {git_ref} [{correlation}]").into()
        };
        let html_url = run["html_url"].clone();
        state.runs.push(run);
        (id, html_url)
    };
    if let Some((Hang::AfterRun, gate)) = &hang {
        gate.notified().await;
        return gh_error(502, "Server Error");
    }
    if let DispatchMode::FailAfterRun(status) = mode {
        return dispatch_failure(status);
    }
    let asked = body["return_run_details"] == true;
    match mode {
        DispatchMode::RunDetails if asked => axum::Json(json!({
            "workflow_run_id": id,
            "run_url": format!("https://api.github.com/repos/octo-org/octo-repo/actions/runs/{id}"),
            "html_url": html_url,
        }))
        .into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

/// `POST …/runs/{id}/cancel`: 202 for a run in progress, 409 for a completed one.
async fn gh_cancel(
    State((log, state)): State<GhState>,
    Path((_, _, id)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    log.push(&method, &uri, &headers, &body);
    let state = state.lock().unwrap();
    match state
        .runs
        .iter()
        .find(|r| Some(r["id"].as_u64().unwrap_or(0)) == id.parse::<u64>().ok())
    {
        None => gh_error(404, "Not Found"),
        Some(run) if run["status"] == "completed" => {
            gh_error(409, "Cannot cancel a workflow run that is completed.")
        }
        Some(_) => (StatusCode::ACCEPTED, axum::Json(json!({}))).into_response(),
    }
}

async fn gh_workflows(
    State((log, state)): State<GhState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    log.push(&method, &uri, &headers, b"");
    let workflows = state.lock().unwrap().workflows.clone();
    axum::Json(json!({"total_count": workflows.len(), "workflows": workflows})).into_response()
}

async fn gh_workflow(
    State((log, state)): State<GhState>,
    Path((_, _, id)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    log.push(&method, &uri, &headers, b"");
    let found = state
        .lock()
        .unwrap()
        .workflows
        .iter()
        .find(|w| {
            id.parse::<u64>().ok() == w["id"].as_u64()
                || w["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(&format!("/{id}")))
        })
        .cloned();
    match found {
        Some(w) => axum::Json(w).into_response(),
        None => (StatusCode::NOT_FOUND, axum::Json(json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}))).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct RunsQuery {
    branch: Option<String>,
    per_page: Option<usize>,
    page: Option<usize>,
}

async fn gh_runs(
    State((log, state)): State<GhState>,
    Path((_, _, id)): Path<(String, String, String)>,
    Query(q): Query<RunsQuery>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    log.push(&method, &uri, &headers, b"");
    let gate = state.lock().unwrap().gate.clone();
    if let Some(gate) = gate {
        gate.notified().await;
    }
    let mut runs: Vec<Value> = state
        .lock()
        .unwrap()
        .runs
        .iter()
        .filter(|r| {
            id.parse::<u64>().ok() == r["workflow_id"].as_u64()
                && q.branch.as_deref().is_none_or(|b| r["head_branch"] == b)
        })
        .cloned()
        .collect();
    runs.sort_by(|a, b| b["created_at"].as_str().cmp(&a["created_at"].as_str()));
    let total = runs.len();
    let per_page = q.per_page.unwrap_or(30).max(1);
    let page = q.page.unwrap_or(1).max(1);
    let page_runs: Vec<Value> = runs
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    axum::Json(json!({"total_count": total, "workflow_runs": page_runs})).into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(
            json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}),
        ),
    )
        .into_response()
}

async fn gh_run(
    State((log, state)): State<GhState>,
    Path((_, _, id)): Path<(String, String, u64)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    log.push(&method, &uri, &headers, b"");
    let found = state
        .lock()
        .unwrap()
        .runs
        .iter()
        .find(|r| r["id"] == id)
        .cloned();
    found.map_or_else(not_found, |run| axum::Json(run).into_response())
}

async fn gh_run_jobs(
    State((log, state)): State<GhState>,
    Path((_, _, id)): Path<(String, String, u64)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    log.push(&method, &uri, &headers, b"");
    let jobs = state
        .lock()
        .unwrap()
        .jobs
        .get(&id)
        .cloned()
        .unwrap_or_default();
    axum::Json(json!({"total_count": jobs.len(), "jobs": jobs})).into_response()
}

async fn gh_rerun_failed(
    State((log, _)): State<GhState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    log.push(&method, &uri, &headers, b"");
    (StatusCode::CREATED, axum::Json(json!({}))).into_response()
}

/// `POST …/runs/{id}/rerun`: 201 `{}` and a new attempt of the run (queued, no
/// conclusion); 404 for an unknown run; GitHub's 403 for a run created over 30 days ago.
async fn gh_rerun(
    State((log, state)): State<GhState>,
    Path((_, _, id)): Path<(String, String, u64)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    log.push(&method, &uri, &headers, &body);
    let mut state = state.lock().unwrap();
    let Some(run) = state.runs.iter_mut().find(|r| r["id"] == id) else {
        return not_found();
    };
    let created = run["created_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    if created.is_some_and(|at| chrono::Utc::now() - at.to_utc() > chrono::Duration::days(30)) {
        return gh_error(
            403,
            "Unable to retry this workflow run because it was created over a month ago",
        );
    }
    let attempt = run["run_attempt"].as_u64().unwrap_or(1) + 1;
    run["run_attempt"] = attempt.into();
    run["status"] = "queued".into();
    run["conclusion"] = Value::Null;
    run["updated_at"] = chrono::Utc::now()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        .into();
    (StatusCode::CREATED, axum::Json(json!({}))).into_response()
}

async fn gh_job_logs(
    State((log, state)): State<GhState>,
    Path((_, _, id)): Path<(String, String, u64)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    log.push(&method, &uri, &headers, b"");
    let text = state.lock().unwrap().logs.get(&id).cloned();
    text.map_or_else(not_found, |t| {
        ([("content-type", "text/plain")], t).into_response()
    })
}

async fn gh_repo(
    State((log, state)): State<GhState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    log.push(&method, &uri, &headers, b"");
    let mut repo = contract()["paths"]["/repos/{owner}/{repo}"]["get"]["responses"]["200"]["content"]
        ["application/json"]["examples"]["default-response"]["value"]
        .clone();
    repo["permissions"]["push"] = true.into();
    let mut response = axum::Json(repo).into_response();
    response
        .headers_mut()
        .insert("x-ratelimit-remaining", "4999".parse().unwrap());
    if let Some(scopes) = state.lock().unwrap().scopes.clone() {
        response
            .headers_mut()
            .insert("x-oauth-scopes", scopes.parse().unwrap());
    }
    response
}

async fn gh_rate_limit(
    State((log, _)): State<GhState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    log.push(&method, &uri, &headers, b"");
    axum::Json(contract_example("/rate_limit")).into_response()
}

/// GitHub's 401 for a token it does not know, when the test set one.
async fn gh_check_token(
    State(state): State<Arc<Mutex<GitHubState>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let sent = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    {
        let mut state = state.lock().unwrap();
        if state.outage > 0 {
            state.outage -= 1;
            return gh_error(502, "Server Error");
        }
        if let Some(app) = &state.app {
            let path = request.uri().path();
            let app_endpoint = path.starts_with("/app/") || path.ends_with("/installation");
            let accepted = if app_endpoint {
                app.accepts_jwt(&sent)
            } else {
                app.accepts_token(&sent)
            };
            if !accepted {
                let message = if app_endpoint {
                    "A JSON web token could not be decoded"
                } else {
                    "Bad credentials"
                };
                return gh_error(401, message);
            }
        }
    }
    let accepted = state.lock().unwrap().accepted_token.clone();
    if accepted.is_some_and(|token| sent != format!("Bearer {token}")) {
        return gh_error(401, "Bad credentials");
    }
    next.run(request).await
}

/// `GET /repos/{owner}/{repo}/installation` (App JWT checked by `gh_check_token`).
async fn gh_installation(
    State((log, state)): State<GhState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    log.push(&method, &uri, &headers, b"");
    match &state.lock().unwrap().app {
        Some(app) => axum::Json(json!({
            "id": app.installation_id,
            "app_id": app.app_id,
            "target_type": "Organization",
            "account": {"login": "octo-org"},
        }))
        .into_response(),
        None => not_found(),
    }
}

/// `POST /app/installations/{id}/access_tokens` (App JWT checked by `gh_check_token`):
/// a new token, `ghs_` and a number, living `token_ttl`.
async fn gh_access_tokens(
    State((log, state)): State<GhState>,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    log.push(&method, &uri, &headers, b"");
    let mut state = state.lock().unwrap();
    let Some(app) = state.app.as_mut().filter(|app| app.installation_id == id) else {
        return not_found();
    };
    let token = format!("ghs_fake{:036}", next_token_number());
    let expires_at = chrono::Utc::now() + app.token_ttl;
    app.tokens.insert(token.clone(), expires_at);
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "token": token,
            "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "permissions": {"actions": "write", "metadata": "read"},
            "repository_selection": "selected",
        })),
    )
        .into_response()
}

/// A number unique within the test process, for fake tokens.
fn next_token_number() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// `GET …/contents/{path}`: a `content-file`, base64 in lines of 60 as GitHub sends it.
async fn gh_contents(
    State((log, state)): State<GhState>,
    Path((_, _, path)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    use base64::Engine;
    log.push(&method, &uri, &headers, b"");
    let Some(text) = state.lock().unwrap().files.get(&path).cloned() else {
        return not_found();
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    let wrapped: Vec<String> = encoded
        .as_bytes()
        .chunks(60)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let name = path.rsplit('/').next().unwrap_or(&path).to_owned();
    let api = format!("https://api.github.com/repos/octo-org/octo-repo/contents/{path}");
    axum::Json(json!({
        "type": "file",
        "encoding": "base64",
        "size": text.len(),
        "name": name,
        "path": path,
        "content": wrapped.join("\n") + "\n",
        "sha": "3d21ec53a331a6f037a91c368710b99387d012c1",
        "url": api,
        "git_url": "https://api.github.com/repos/octo-org/octo-repo/git/blobs/3d21ec53a331a6f037a91c368710b99387d012c1",
        "html_url": format!("https://github.com/octo-org/octo-repo/blob/main/{path}"),
        "download_url": format!("https://raw.githubusercontent.com/octo-org/octo-repo/main/{path}"),
        "_links": {"self": api, "git": null, "html": null}
    }))
    .into_response()
}

async fn gh_hooks(
    State((log, state)): State<GhState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    log.push(&method, &uri, &headers, b"");
    let state = state.lock().unwrap();
    if state.hooks_forbidden {
        return gh_error(403, "Must have admin rights to Repository.");
    }
    axum::Json(state.hooks.clone()).into_response()
}

async fn gh_fallback(
    State((log, _)): State<GhState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    log.push(&method, &uri, &headers, &body);
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"message": "Not Found"})),
    )
        .into_response()
}

/// A fake Discord REST API: accepts edits of original responses and records them.
#[derive(Clone)]
pub struct FakeDiscord {
    pub addr: SocketAddr,
    pub log: Log,
    /// The application's registered commands, as `GET …/commands` returns them.
    pub commands: Arc<Mutex<Vec<Value>>>,
    /// Who the bot token belongs to and what the bot can see (`valine doctor`).
    pub account: Arc<Mutex<DiscordAccount>>,
}

/// The bot's account as the fake Discord knows it.
#[derive(Debug, Clone)]
pub struct DiscordAccount {
    /// The token the fake accepts (`Authorization: Bot <token>`).
    pub bot_token: String,
    pub bot_id: String,
    /// `false`: the token is a user account's.
    pub is_bot: bool,
    pub application_id: String,
    /// Channels the bot may view; any other answers 403 Missing Access.
    pub channels: Vec<String>,
    /// Guilds the bot is a member of.
    pub guilds: Vec<String>,
}

impl Default for DiscordAccount {
    fn default() -> Self {
        DiscordAccount {
            bot_token: crate::helpers::BOT_TOKEN.to_owned(),
            bot_id: "4243".to_owned(),
            is_bot: true,
            application_id: crate::helpers::APPLICATION_ID.to_owned(),
            channels: vec!["901".to_owned()],
            guilds: vec!["900".to_owned()],
        }
    }
}

type AccountState = (Log, Arc<Mutex<DiscordAccount>>);

fn discord_error(status: u16, message: &str, code: u64) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"message": message, "code": code})),
    )
        .into_response()
}

/// Records the request and returns the account, or Discord's 401 unless the request
/// carries the bot token the account accepts.
fn bot_request(
    (log, account): &AccountState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<DiscordAccount, Box<Response>> {
    log.push(method, uri, headers, b"");
    let account = account.lock().unwrap().clone();
    let sent = headers.get("authorization").and_then(|v| v.to_str().ok());
    if sent != Some(&format!("Bot {}", account.bot_token)) {
        return Err(Box::new(discord_error(401, "401: Unauthorized", 0)));
    }
    Ok(account)
}

async fn discord_me(
    State(state): State<AccountState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let account = match bot_request(&state, &method, &uri, &headers) {
        Ok(account) => account,
        Err(refused) => return *refused,
    };
    let mut user = json!({
        "id": account.bot_id, "username": "valine", "discriminator": "0", "global_name": null,
        "avatar": null, "mfa_enabled": true, "locale": "en-US", "flags": 0,
        "premium_type": 0, "public_flags": 0, "verified": true, "email": null
    });
    if account.is_bot {
        user["bot"] = true.into();
    }
    axum::Json(user).into_response()
}

async fn discord_application(
    State(state): State<AccountState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let account = match bot_request(&state, &method, &uri, &headers) {
        Ok(account) => account,
        Err(refused) => return *refused,
    };
    axum::Json(json!({
        "id": account.application_id, "name": "Valine", "icon": null, "description": "",
        "bot_public": false, "bot_require_code_grant": false, "verify_key": "0".repeat(64),
        "flags": 0, "bot": {"id": account.bot_id, "username": "valine", "bot": true}
    }))
    .into_response()
}

async fn discord_channel(
    State(state): State<AccountState>,
    Path(channel): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let account = match bot_request(&state, &method, &uri, &headers) {
        Ok(account) => account,
        Err(refused) => return *refused,
    };
    if !account.channels.contains(&channel) {
        return discord_error(403, "Missing Access", 50001);
    }
    axum::Json(json!({
        "id": channel, "type": 0, "guild_id": account.guilds.first(), "name": "deploys",
        "position": 0, "permission_overwrites": [], "nsfw": false, "topic": null,
        "last_message_id": null, "parent_id": null, "rate_limit_per_user": 0
    }))
    .into_response()
}

async fn discord_member(
    State(state): State<AccountState>,
    Path((guild, user)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let account = match bot_request(&state, &method, &uri, &headers) {
        Ok(account) => account,
        Err(refused) => return *refused,
    };
    if !account.guilds.contains(&guild) {
        return discord_error(404, "Unknown Guild", 10004);
    }
    if user != account.bot_id {
        return discord_error(404, "Unknown Member", 10007);
    }
    axum::Json(json!({
        "user": {"id": user, "username": "valine", "bot": true}, "nick": null, "roles": [],
        "joined_at": "2026-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false,
        "flags": 0
    }))
    .into_response()
}

type DcState = (Log, Arc<Mutex<Vec<Value>>>);

impl FakeDiscord {
    pub async fn start() -> Self {
        let log = Log::default();
        let commands = Arc::new(Mutex::new(Vec::new()));
        let router = Router::new()
            .route(
                "/api/v10/webhooks/{app}/{token}/messages/@original",
                patch(discord_edit).get(discord_get_original),
            )
            .route(
                "/api/v10/channels/{channel}/messages",
                post(discord_channel_post),
            )
            .route(
                "/api/v10/applications/{app}/commands",
                get(discord_commands).put(discord_commands),
            )
            .route(
                "/api/v10/applications/{app}/guilds/{guild}/commands",
                get(discord_commands).put(discord_commands),
            )
            .fallback(any(discord_fallback))
            .with_state((log.clone(), commands.clone()));
        let account = Arc::new(Mutex::new(DiscordAccount::default()));
        let account_routes = Router::new()
            .route("/api/v10/users/@me", get(discord_me))
            .route("/api/v10/applications/@me", get(discord_application))
            .route("/api/v10/channels/{channel}", get(discord_channel))
            .route(
                "/api/v10/guilds/{guild}/members/{user}",
                get(discord_member),
            )
            .with_state((log.clone(), account.clone()));
        let addr = serve(router.merge(account_routes)).await;
        FakeDiscord {
            addr,
            log,
            commands,
            account,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/api/v10", self.addr)
    }

    /// Waits for the edit of the original response of interaction `token`.
    pub async fn wait_for_edit(&self, token: &str) -> Value {
        self.log
            .wait_for(
                "PATCH",
                &format!("/{token}/messages/@original"),
                Duration::from_secs(20),
            )
            .await
            .body
    }

    /// Messages posted to `channel` with the bot token.
    pub fn posts_to(&self, channel: &str) -> Vec<Recorded> {
        self.log
            .matching("POST", &format!("/channels/{channel}/messages"))
    }

    pub fn edits_of(&self, token: &str) -> Vec<Value> {
        self.log
            .matching("PATCH", &format!("/{token}/messages/@original"))
            .into_iter()
            .map(|r| r.body)
            .collect()
    }
}

async fn discord_commands(
    State((log, commands)): State<DcState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    log.push(&method, &uri, &headers, &body);
    if method == Method::PUT {
        let sent: Vec<Value> = serde_json::from_slice(&body).unwrap_or_default();
        let stored: Vec<Value> = sent
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                c["id"] = format!("{}", 1300000000000000000u64 + i as u64).into();
                c["application_id"] = "4242".into();
                c["version"] = "1".into();
                c
            })
            .collect();
        *commands.lock().unwrap() = stored;
    }
    axum::Json(commands.lock().unwrap().clone()).into_response()
}

/// Interaction tokens named `expired-…` are refused the way Discord refuses a token
/// past its 15 minutes.
const EXPIRED_TOKEN_PREFIX: &str = "expired-";
/// Edits with such a token fail with 502 for their first four attempts (one Discord
/// client call with its retries), then succeed.
const FLAKY_TOKEN_PREFIX: &str = "flaky-";
/// Edits with such a token fail with 502 every time (a job that keeps failing), except
/// a give-up notice, so a test sees the notice land.
const DOWN_TOKEN_PREFIX: &str = "down-";
/// Edits with such a token fail with 502 for their first 8 calls (the command's own
/// delivery, then one attempt of the delivery job), then succeed.
const BLIP_TOKEN_PREFIX: &str = "blip-";

async fn discord_edit(
    State((log, _)): State<DcState>,
    Path((_, token)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    log.push(&method, &uri, &headers, &body);
    let failing = match token {
        _ if token.starts_with(FLAKY_TOKEN_PREFIX) => 4,
        _ if token.starts_with(DOWN_TOKEN_PREFIX) => {
            let notice = String::from_utf8_lossy(&body).contains("Gave up");
            if notice { 0 } else { usize::MAX }
        }
        _ if token.starts_with(BLIP_TOKEN_PREFIX) => 8,
        _ => 0,
    };
    if log
        .matching("PATCH", &format!("/{token}/messages/@original"))
        .len()
        <= failing
    {
        return (
            StatusCode::BAD_GATEWAY,
            axum::Json(json!({"message": "upstream hiccup"})),
        )
            .into_response();
    }
    if token.starts_with(EXPIRED_TOKEN_PREFIX) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "Invalid Webhook Token", "code": 50027})),
        )
            .into_response();
    }
    let mut message: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
    message["id"] = "1".into();
    axum::Json(message).into_response()
}

/// The message as the last edit left it (a deferred response starts empty).
async fn discord_get_original(
    State((log, _)): State<DcState>,
    Path((_, token)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    log.push(&method, &uri, &headers, b"");
    let last = log
        .matching("PATCH", &format!("/{token}/messages/@original"))
        .pop()
        .map(|r| r.body);
    let mut message = last.unwrap_or(json!({"content": "", "embeds": [], "components": []}));
    message["id"] = "1".into();
    axum::Json(message).into_response()
}

async fn discord_channel_post(
    State((log, _)): State<DcState>,
    Path(channel): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    log.push(&method, &uri, &headers, &body);
    let mut message: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
    message["id"] = "1400000000000000001".into();
    message["channel_id"] = channel.into();
    axum::Json(message).into_response()
}

async fn discord_fallback(
    State((log, _)): State<DcState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    log.push(&method, &uri, &headers, &body);
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"message": "Unknown", "code": 0})),
    )
        .into_response()
}

/// How a fake site answers one path.
#[derive(Clone)]
pub struct Page {
    pub status: u16,
    pub delay: Duration,
    pub cache_control: Option<&'static str>,
    pub location: Option<String>,
}

pub fn page(status: u16) -> Page {
    Page {
        status,
        delay: Duration::ZERO,
        cache_control: None,
        location: None,
    }
}

/// A frontend or API on a loopback address; answers 404 for unknown paths and counts
/// every request.
#[derive(Clone)]
pub struct FakeSite {
    pub addr: SocketAddr,
    pages: Arc<Mutex<std::collections::HashMap<String, Page>>>,
    hits: Arc<Mutex<Vec<String>>>,
}

impl FakeSite {
    pub async fn start_on(ip: &str) -> FakeSite {
        let pages: Arc<Mutex<std::collections::HashMap<String, Page>>> = Arc::default();
        let hits: Arc<Mutex<Vec<String>>> = Arc::default();
        let (p, h) = (pages.clone(), hits.clone());
        let router = Router::new().fallback(move |uri: Uri| {
            let (pages, hits) = (p.clone(), h.clone());
            async move {
                hits.lock().unwrap().push(uri.path().to_owned());
                let found = pages.lock().unwrap().get(uri.path()).cloned();
                let Some(page) = found else {
                    return StatusCode::NOT_FOUND.into_response();
                };
                tokio::time::sleep(page.delay).await;
                let mut response: Response = (
                    StatusCode::from_u16(page.status).unwrap(),
                    "<html>ok</html>",
                )
                    .into_response();
                if let Some(cache) = page.cache_control {
                    response
                        .headers_mut()
                        .insert(axum::http::header::CACHE_CONTROL, cache.parse().unwrap());
                }
                if let Some(location) = page.location {
                    response
                        .headers_mut()
                        .insert(axum::http::header::LOCATION, location.parse().unwrap());
                }
                response
            }
        });
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeSite { addr, pages, hits }
    }

    pub async fn start() -> FakeSite {
        FakeSite::start_on("127.0.0.1").await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, path: &str, page: Page) -> &Self {
        self.pages.lock().unwrap().insert(path.to_owned(), page);
        self
    }

    pub fn hits(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
}

/// A healthy frontend (`/`, `/index.html` with `Cache-Control`) and API (`/health`,
/// `/hello`).
pub async fn healthy_sites() -> (FakeSite, FakeSite) {
    let frontend = FakeSite::start().await;
    frontend.set("/", page(200)).set(
        "/index.html",
        Page {
            cache_control: Some("no-cache, max-age=0"),
            ..page(200)
        },
    );
    let api = FakeSite::start().await;
    api.set("/health", page(200)).set("/hello", page(200));
    (frontend, api)
}
