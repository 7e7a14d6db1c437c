//! `/diagnose`: built-in diagnostics: for each target DNS, TLS certificate expiry, three
//! latency samples per endpoint with status and `Cache-Control`; GitHub token validity,
//! scopes and quota; whether the deploy workflow exists; the latest deploy run and where
//! the last failed one broke, with the tail of its log. Targets and GitHub are examined
//! concurrently. With `DIAGNOSE_WORKFLOW` set, that workflow is dispatched too, carrying
//! a correlation id the reply shows.

use async_trait::async_trait;
use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use serde_json::{Map, Value};

use super::{Answer, Call, Command, CommandError, CommandSpec, OptionSpec, Precheck};
use crate::app::App;
use crate::auth::{self, Access};
use crate::discord::response::{Embed, GREEN, RED, Reply, YELLOW};
use crate::dispatch::{self, Action, DispatchError, DispatchRequest, Dispatched};
use crate::github::api::GitHubClient;
use crate::github::model::{RateLimit, TokenInfo, Workflow, WorkflowRun};
use crate::probe::cert;
use crate::probe::target::ProbeTarget;
use crate::probe::{ProbeError, ProbeResponse};
use crate::store::{CorrelationKind, StepStatus};
use crate::trace::Tracer;
use crate::verify::checks::{self, FAILED_CONCLUSIONS, FailingStep, Side, TargetState};

/// `/diagnose`.
pub struct Diagnose;

#[async_trait]
impl Command for Diagnose {
    fn spec(&self) -> CommandSpec {
        CommandSpec {
            name: NAME,
            description: "Diagnose the deployment: DNS, TLS, latency, GitHub access, last failure",
            options: vec![
                OptionSpec::string(
                    "frontend_url",
                    "Check this frontend URL instead (deployers)",
                ),
                OptionSpec::string("api_base", "Check this API base instead (deployers)"),
            ],
            access: Access::Anyone,
            answer: Answer::Deferred { ephemeral: false },
        }
    }

    /// Overrides are for deployers and must pass the URL rules
    /// (`docs/design.md#ssrf-policy`); both are decided at once.
    fn precheck(&self, app: &App, call: &Call) -> Result<(), Precheck> {
        let wants_override =
            call.string("frontend_url").is_some() || call.string("api_base").is_some();
        if wants_override && !auth::is_deployer(&app.config, &call.caller) {
            return Err(Precheck::Denied(format!("/{NAME}: deployers only")));
        }
        Overrides::from_call(app, call)
            .map(drop)
            .map_err(Precheck::Invalid)
    }

    async fn run(
        &self,
        app: &App,
        call: &Call,
        tracer: &mut Tracer,
    ) -> Result<Reply, CommandError> {
        let overrides = Overrides::from_call(app, call).map_err(CommandError::Invalid)?;
        let mut diagnosis = diagnose(app, &overrides, tracer).await?;
        if let Some(workflow) = app.config.diagnose_workflow.clone() {
            diagnosis.dispatch = Some(dispatch(app, call, &workflow, &diagnosis, tracer).await);
        }
        let reply = Reply::embed(diagnosis.to_embed(tracer.short_id()));
        // Problems found make the answer a failure, as a failed verification is:
        // `valine invoke '/diagnose'` exits 1 and a script can act on it.
        Ok(if diagnosis.counts().0 > 0 {
            reply.failed()
        } else {
            reply
        })
    }
}

pub const NAME: &str = "diagnose";
/// Latency samples per endpoint.
const SAMPLES: usize = 3;
/// The log tail shown: at most this many lines and characters.
const LOG_LINES: usize = 20;
const LOG_CHARS: usize = 1000;
/// Deploy runs searched for the last failure.
const RECENT_RUNS: usize = 30;
/// A certificate expiring sooner than this is flagged.
const CERT_WARN_DAYS: i64 = 14;
/// Classic token scopes a deploy needs (`repo` + `workflow`).
const NEEDED_SCOPES: [&str; 2] = ["repo", "workflow"];

/// Targets for this run only, from the command's options.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub frontend: Option<ProbeTarget>,
    pub api: Option<ProbeTarget>,
}

impl Overrides {
    fn from_call(app: &App, call: &Call) -> Result<Overrides, String> {
        let parse = |option: &str| -> Result<Option<ProbeTarget>, String> {
            call.string(option)
                .map(|value| {
                    ProbeTarget::parse(value, app.prober.target_policy())
                        .map_err(|e| format!("`{option}` cannot be checked: {e}"))
                })
                .transpose()
        };
        Ok(Overrides {
            frontend: parse("frontend_url")?,
            api: parse("api_base")?,
        })
    }
}

/// One endpoint's samples.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub path: String,
    pub samples: Vec<Result<ProbeResponse, ProbeError>>,
}

impl Endpoint {
    /// (min, median, max) latency of the samples that got an answer.
    pub fn latency(&self) -> Option<(u64, u64, u64)> {
        let mut ms: Vec<u64> = self
            .samples
            .iter()
            .filter_map(|s| s.as_ref().ok().map(|r| r.latency_ms))
            .collect();
        ms.sort_unstable();
        Some((*ms.first()?, ms[ms.len() / 2], *ms.last()?))
    }

    fn first_answer(&self) -> Option<&ProbeResponse> {
        self.samples.iter().find_map(|s| s.as_ref().ok())
    }

    fn passed(&self) -> bool {
        !self.samples.is_empty()
            && self
                .samples
                .iter()
                .all(|s| s.as_ref().is_ok_and(ProbeResponse::is_success))
    }
}

/// What one side (frontend or API) looks like from here.
#[derive(Debug, Clone)]
pub struct TargetReport {
    pub side: Side,
    pub state: TargetState,
    pub source: String,
    /// Resolved addresses, each with whether the probe policy allows it.
    pub dns: Option<Result<Vec<(IpAddr, bool)>, String>>,
    pub endpoints: Vec<Endpoint>,
    /// Days until the server certificate expires (https targets that answered), as of
    /// the examination.
    pub cert_days: Option<i64>,
}

/// Days from `now` until the certificate the first answering sample presented expires.
fn cert_days(endpoints: &[Endpoint], now: DateTime<Utc>) -> Option<i64> {
    let der = endpoints
        .iter()
        .flat_map(|e| e.samples.iter())
        .find_map(|s| s.as_ref().ok()?.peer_certificate.as_deref())?;
    Some(cert::days_until(cert::not_after(der)?, now))
}

impl TargetReport {
    fn problems(&self) -> usize {
        let invalid = usize::from(matches!(self.state, TargetState::Invalid { .. }));
        let dns = usize::from(matches!(&self.dns, Some(Err(_))))
            + self
                .dns
                .as_ref()
                .and_then(|d| d.as_ref().ok())
                .map_or(0, |ips| ips.iter().filter(|(_, ok)| !ok).count());
        invalid + dns + self.endpoints.iter().filter(|e| !e.passed()).count()
    }
}

/// What GitHub says about the token, the quota and the deploy workflow.
#[derive(Debug, Clone)]
pub struct GitHubReport {
    pub token: Result<TokenInfo, String>,
    pub rate: Result<RateLimit, String>,
    pub workflow: Result<Workflow, String>,
    pub latest_run: Option<WorkflowRun>,
    pub last_failure: Option<LastFailure>,
    /// Listing the runs failed (after the workflow was found).
    pub runs_error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LastFailure {
    pub run: WorkflowRun,
    pub failing: Option<FailingStep>,
    pub log: Option<Result<Vec<String>, String>>,
}

/// Everything `/diagnose` found.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub targets: Vec<TargetReport>,
    /// `Err` when GitHub is not configured.
    pub github: Result<GitHubReport, String>,
    /// The `DIAGNOSE_WORKFLOW` dispatch line, when one was made or attempted.
    pub dispatch: Option<String>,
}

/// Diagnoses the targets in use (or the overrides) and GitHub access, concurrently.
pub async fn diagnose(
    app: &App,
    overrides: &Overrides,
    tracer: &mut Tracer,
) -> Result<Diagnosis, CommandError> {
    let step = tracer.begin("store.settings");
    let in_use = checks::targets_in_use(app, overrides.api.as_ref()).await;
    tracer.end(step, &in_use);
    let mut targets = in_use?;
    if let Some(frontend) = &overrides.frontend {
        targets[0] = (
            Side::Frontend,
            TargetState::Ready(frontend.clone()),
            format!("{frontend} (override)"),
        );
    }

    let step = tracer.begin("diagnose.targets_and_github");
    let target_reports = join_all(
        targets
            .into_iter()
            .map(|(side, state, source)| examine_target(app, side, state, source)),
    );
    let github = async {
        match app.github() {
            Ok(github) => Ok(examine_github(app, github).await),
            Err(e) => Err(e.to_string()),
        }
    };
    let (targets, github) = tokio::join!(target_reports, github);
    tracer.end_with(step, StepStatus::Ok, None);

    for target in &targets {
        let problems = target.problems();
        let detail = format!("{} problem(s)", problems);
        let step = tracer.begin(&format!("diagnose.{}", target.side.label().to_lowercase()));
        let status = if problems == 0 {
            StepStatus::Ok
        } else {
            StepStatus::Error
        };
        tracer.end_with(step, status, Some(detail));
    }
    if let Ok(report) = &github
        && let Some(url) = report
            .last_failure
            .as_ref()
            .and_then(|f| f.run.html_url.clone())
    {
        tracer.link(url);
    }
    Ok(Diagnosis {
        targets,
        github,
        dispatch: None,
    })
}

async fn examine_target(app: &App, side: Side, state: TargetState, source: String) -> TargetReport {
    let TargetState::Ready(target) = &state else {
        return TargetReport {
            side,
            state,
            source,
            dns: None,
            endpoints: Vec::new(),
            cert_days: None,
        };
    };
    let prober = &app.prober;
    let dns = async {
        prober
            .resolve(&target.host())
            .await
            .map(|ips| ips.into_iter().map(|ip| (ip, prober.allows(ip))).collect())
            .map_err(|e| e.to_string())
    };
    let endpoints = join_all(side.paths(app).iter().map(|path| async move {
        let url = target.join(path);
        let mut samples = Vec::with_capacity(SAMPLES);
        // Sequential: concurrent samples of one endpoint would measure each other.
        for _ in 0..SAMPLES {
            samples.push(prober.get(&url).await);
        }
        Endpoint {
            path: path.clone(),
            samples,
        }
    }));
    let (dns, endpoints) = tokio::join!(dns, endpoints);
    TargetReport {
        side,
        state,
        source,
        dns: Some(dns),
        cert_days: cert_days(&endpoints, app.clock.now()),
        endpoints,
    }
}

async fn examine_github(app: &App, github: &GitHubClient) -> GitHubReport {
    let branch = app.config.deploy_branch.as_str();
    let runs = async {
        let workflow = github
            .resolve_workflow(&app.config.deploy_workflow)
            .await
            .map_err(|e| e.to_string())?;
        let runs = github
            .list_runs(workflow.id, Some(branch), None, RECENT_RUNS)
            .await
            .map_err(|e| e.to_string());
        Ok::<_, String>((workflow, runs))
    };
    let (token, rate, runs) = tokio::join!(github.token_info(), github.rate_limit(), runs);
    let (workflow, runs) = match runs {
        Ok((workflow, runs)) => (Ok(workflow), runs),
        Err(e) => (Err(e.clone()), Err(e)),
    };
    let (latest_run, failed_run, runs_error) = match runs {
        Ok(runs) => {
            let latest = runs.iter().find(|r| r.is_completed()).cloned();
            let failed = runs.into_iter().find(|r| {
                r.conclusion
                    .as_deref()
                    .is_some_and(|c| FAILED_CONCLUSIONS.contains(&c))
            });
            (latest, failed, None)
        }
        Err(e) => (None, None, workflow.is_ok().then_some(e)),
    };
    let last_failure = match failed_run {
        Some(run) => Some(examine_failure(github, run).await),
        None => None,
    };
    GitHubReport {
        token: token.map_err(|e| e.to_string()),
        rate: rate.map_err(|e| e.to_string()),
        workflow,
        latest_run,
        last_failure,
        runs_error,
    }
}

async fn examine_failure(github: &GitHubClient, run: WorkflowRun) -> LastFailure {
    let failing = match github.list_run_jobs(run.id).await {
        Ok(jobs) => checks::failing_step(&jobs),
        Err(e) => {
            return LastFailure {
                run,
                failing: None,
                log: Some(Err(e.to_string())),
            };
        }
    };
    let log = match &failing {
        Some(f) => Some(
            github
                .job_log_tail(f.job_id, f.step.as_deref(), LOG_LINES)
                .await
                .map(|lines| fit_log(&lines))
                .map_err(|e| e.to_string()),
        ),
        None => None,
    };
    LastFailure { run, failing, log }
}

/// The last lines that fit in [`LOG_CHARS`], whole lines only, unable to close the code
/// block they are shown in.
fn fit_log(lines: &[String]) -> Vec<String> {
    let mut kept = Vec::new();
    let mut used = 0;
    for line in lines.iter().rev().take(LOG_LINES) {
        let line = line.replace("```", "'''");
        let line = crate::discord::response::truncate(&line, 200);
        let cost = line.chars().count() + 1;
        if used + cost > LOG_CHARS {
            break;
        }
        used += cost;
        kept.push(line);
    }
    kept.reverse();
    kept
}

/// Dispatches `DIAGNOSE_WORKFLOW` through [`crate::dispatch`], so a job that runs
/// again never sends it twice, and returns the line the reply shows. Its marker also
/// lets the run's completion (by webhook) update this message. The reply does not wait
/// for the run to be identified: the webhook attaches it by its title later.
async fn dispatch(
    app: &App,
    call: &Call,
    workflow_spec: &str,
    diagnosis: &Diagnosis,
    tracer: &mut Tracer,
) -> String {
    let correlation_id = dispatch::correlation_id_for(tracer.id());
    let github = match app.github() {
        Ok(github) => github,
        Err(e) => return format!("❌ not dispatched: {e} · correlation id `{correlation_id}`"),
    };
    let step = tracer.begin("github.resolve_diagnose_workflow");
    let workflow = github.resolve_workflow(workflow_spec).await;
    tracer.end(step, &workflow);
    let workflow = match workflow {
        Ok(w) => w,
        Err(e) => return format!("❌ not dispatched: {e} · correlation id `{correlation_id}`"),
    };

    let target_value = |side: Side| -> String {
        diagnosis
            .targets
            .iter()
            .find(|t| t.side == side)
            .and_then(|t| match &t.state {
                TargetState::Ready(target) => Some(target.as_str().to_owned()),
                _ => None,
            })
            .unwrap_or_default()
    };
    let mut inputs = Map::new();
    inputs.insert(
        "frontend_url".into(),
        Value::from(target_value(Side::Frontend)),
    );
    inputs.insert("api_base".into(), Value::from(target_value(Side::Api)));
    let file_name = workflow.file_name().to_owned();
    let request = DispatchRequest {
        kind: CorrelationKind::Diagnose,
        action: Action::Workflow {
            workflow,
            git_ref: app.config.deploy_branch.clone(),
            inputs,
        },
        exclusive: false,
        requester: call.caller.user_id.clone(),
        reply_to: call.reply_to.clone(),
        channel_id: call.caller.channel_id.clone(),
        wait: false,
        api_base: None,
        fingerprint: None,
        identify_timeout: Duration::ZERO,
    };
    match dispatch::dispatch_once(app, github, request, tracer).await {
        Ok(Dispatched::Identified { run, .. }) => {
            let run = match &run.html_url {
                Some(url) => format!("[run]({url})"),
                None => format!("run {}", run.id),
            };
            dispatched_line(&file_name, &correlation_id, &run)
        }
        Ok(Dispatched::Unidentified { .. }) => dispatched_line(
            &file_name,
            &correlation_id,
            "its run will appear on GitHub shortly",
        ),
        Ok(Dispatched::NotConfirmed { .. }) => {
            format!("⚠️ dispatch not confirmed; not re-sent · correlation id `{correlation_id}`")
        }
        Ok(Dispatched::DryRun { mutation, .. }) => format!(
            "{} · correlation id `{correlation_id}`",
            mutation.dry_run_line()
        ),
        // Only exclusive dispatches wait for one another.
        Ok(Dispatched::Busy(_)) => {
            format!(
                "⚠️ not dispatched: another dispatch is in progress · correlation id `{correlation_id}`"
            )
        }
        Err(DispatchError::Refused(e)) => {
            format!("❌ dispatch failed: {e} · correlation id `{correlation_id}`")
        }
        Err(DispatchError::Store(e)) => {
            format!("❌ not dispatched: cannot record it ({e}) · correlation id `{correlation_id}`")
        }
        Err(DispatchError::GitHub(e)) => {
            format!("❌ not dispatched: {e} · correlation id `{correlation_id}`")
        }
    }
}

fn dispatched_line(file_name: &str, correlation_id: &str, run: &str) -> String {
    format!("✅ `{file_name}` dispatched · correlation id `{correlation_id}` · {run}")
}

impl Diagnosis {
    /// How many things look wrong, and how many deserve a look.
    fn counts(&self) -> (usize, usize) {
        let mut problems: usize = self.targets.iter().map(TargetReport::problems).sum();
        let mut warnings = self
            .targets
            .iter()
            .filter(|t| t.cert_days.is_some_and(|d| d < CERT_WARN_DAYS))
            .count();
        match &self.github {
            Err(_) => problems += 1,
            Ok(g) => {
                problems += usize::from(g.token.is_err()) + usize::from(g.workflow.is_err());
                if let Ok(info) = &g.token {
                    warnings += missing_scopes(info).len().min(1);
                }
                if g.latest_run
                    .as_ref()
                    .is_some_and(|r| r.conclusion.as_deref() != Some("success"))
                {
                    warnings += 1;
                }
            }
        }
        (problems, warnings)
    }

    pub fn to_embed(&self, trace_short: &str) -> Embed {
        let (problems, warnings) = self.counts();
        let (colour, summary) = match (problems, warnings) {
            (0, 0) => (GREEN, "No problems found.".to_owned()),
            (0, w) => (YELLOW, format!("{w} thing(s) to look at.")),
            (p, _) => (RED, format!("{p} problem(s) found.")),
        };
        let mut embed = Embed::new("🩺 Diagnosis")
            .color(colour)
            .description(summary);
        for target in &self.targets {
            embed = embed.field(target_title(target), target_text(target));
        }
        match &self.github {
            Err(e) => embed = embed.field("GitHub", format!("❌ {e}")),
            Ok(g) => {
                embed = embed.field("GitHub", github_text(g));
                embed = embed.field("Deploy runs", runs_text(g));
                if let Some(log) = g.last_failure.as_ref().and_then(log_text) {
                    embed = embed.field("Log tail", log);
                }
            }
        }
        if let Some(line) = &self.dispatch {
            embed = embed.field("Diagnose workflow", line.clone());
        }
        embed.footer(format!("trace {trace_short}"))
    }
}

fn missing_scopes(info: &TokenInfo) -> Vec<&'static str> {
    match &info.scopes {
        Some(scopes) => NEEDED_SCOPES
            .into_iter()
            .filter(|needed| !scopes.iter().any(|s| s == needed))
            .collect(),
        None => Vec::new(),
    }
}

fn target_title(target: &TargetReport) -> String {
    match &target.state {
        TargetState::Ready(url) => format!("{} · {url}", target.side.label()),
        _ => target.side.label().to_owned(),
    }
}

fn target_text(target: &TargetReport) -> String {
    let side = target.side;
    match &target.state {
        TargetState::NotConfigured => {
            return format!(
                "⚪ not configured: set {} or use {}",
                side.key(),
                side.set_command()
            );
        }
        TargetState::Invalid { value, reason } => {
            return format!(
                "❌ `{value}` cannot be checked: {reason} (fix with {})",
                side.set_command()
            );
        }
        TargetState::Ready(_) => {}
    }
    let mut lines = Vec::new();
    if target.source.ends_with("(override)") {
        lines.push("(override for this run)".to_owned());
    }
    match &target.dns {
        Some(Ok(ips)) => {
            let list: Vec<String> = ips
                .iter()
                .map(|(ip, ok)| {
                    if *ok {
                        ip.to_string()
                    } else {
                        format!("{ip} ⛔ forbidden")
                    }
                })
                .collect();
            let icon = if ips.iter().all(|(_, ok)| *ok) {
                "✅"
            } else {
                "❌"
            };
            lines.push(format!("{icon} DNS: {}", list.join(", ")));
        }
        Some(Err(e)) => lines.push(format!("❌ {e}")),
        None => {}
    }
    let https = matches!(&target.state, TargetState::Ready(t) if t.url().scheme() == "https");
    match target.cert_days {
        Some(days) if days < 0 => {
            lines.push(format!("❌ TLS: certificate expired {} days ago", -days))
        }
        Some(days) if days < CERT_WARN_DAYS => {
            lines.push(format!("⚠️ TLS: certificate expires in {days} days"))
        }
        Some(days) => lines.push(format!("✅ TLS: certificate expires in {days} days")),
        None if https => lines.push("⚪ TLS: certificate not read (no answer)".to_owned()),
        None => lines.push("⚪ TLS: plain http".to_owned()),
    }
    for endpoint in &target.endpoints {
        let icon = if endpoint.passed() { "✅" } else { "❌" };
        let status = match endpoint.first_answer() {
            Some(r) => r.status.to_string(),
            None => endpoint
                .samples
                .iter()
                .find_map(|s| s.as_ref().err())
                .map(|e| e.to_string())
                .unwrap_or_default(),
        };
        let latency = endpoint
            .latency()
            .map(|(min, med, max)| format!(" · {min}/{med}/{max} ms (min/median/max)"))
            .unwrap_or_default();
        lines.push(format!("{icon} `{}` {status}{latency}", endpoint.path));
    }
    if side == Side::Frontend {
        let cache = target
            .endpoints
            .iter()
            .find(|e| e.path.ends_with("/index.html"))
            .or_else(|| target.endpoints.iter().find(|e| e.path == "/"))
            .and_then(|e| Some((e.path.as_str(), e.first_answer()?)));
        if let Some((path, answer)) = cache {
            lines.push(format!(
                "Cache-Control (`{path}`): {}",
                answer
                    .cache_control
                    .as_deref()
                    .map(|c| format!("`{c}`"))
                    .unwrap_or_else(|| "none".into())
            ));
        }
    }
    lines.join("\n")
}

fn github_text(g: &GitHubReport) -> String {
    let mut lines = Vec::new();
    match &g.token {
        Ok(info) => {
            lines.push("✅ token valid".to_owned());
            match &info.scopes {
                Some(scopes) => {
                    let missing = missing_scopes(info);
                    let listed = if scopes.is_empty() {
                        "none".to_owned()
                    } else {
                        scopes.join(", ")
                    };
                    if missing.is_empty() {
                        lines.push(format!("✅ scopes: {listed}"));
                    } else {
                        lines.push(format!(
                            "⚠️ scopes: {listed} — missing {} (deploys need repo + workflow)",
                            missing.join(", ")
                        ));
                    }
                }
                None => lines.push(
                    "⚪ scopes not listed (fine-grained or app token: needs Actions read/write)"
                        .to_owned(),
                ),
            }
            if let Some(push) = info.can_push {
                lines.push(format!(
                    "{} write access to the repository",
                    if push { "✅" } else { "⚠️ no" }
                ));
            }
        }
        Err(e) => lines.push(format!("❌ {e}")),
    }
    match &g.rate {
        Ok(rate) => {
            let reset = rate
                .reset
                .map(|t| format!(", resets {} UTC", t.format("%H:%M")))
                .unwrap_or_default();
            let icon = if rate.remaining == 0 { "❌" } else { "✅" };
            lines.push(format!(
                "{icon} rate limit: {}/{} remaining{reset}",
                rate.remaining, rate.limit
            ));
        }
        Err(e) => lines.push(format!("⚠️ rate limit unknown: {e}")),
    }
    match &g.workflow {
        Ok(w) => lines.push(format!(
            "✅ deploy workflow `{}` found ({})",
            w.file_name(),
            w.state.as_deref().unwrap_or("state unknown")
        )),
        Err(e) => lines.push(format!("❌ {e}")),
    }
    lines.join("\n")
}

fn run_link(run: &WorkflowRun) -> String {
    match &run.html_url {
        Some(url) => format!("[run {}]({url})", run.id),
        None => format!("run {}", run.id),
    }
}

fn runs_text(g: &GitHubReport) -> String {
    let mut lines = Vec::new();
    if let Some(e) = &g.runs_error {
        lines.push(format!("❌ {e}"));
    }
    match &g.latest_run {
        Some(run) => {
            let conclusion = run.conclusion.as_deref().unwrap_or("unknown");
            let icon = if conclusion == "success" {
                "✅"
            } else {
                "❌"
            };
            lines.push(format!(
                "{icon} latest completed: {} · {conclusion}",
                run_link(run)
            ));
        }
        None if g.workflow.is_ok() && g.runs_error.is_none() => {
            lines.push("⚪ no completed deploy run yet".to_owned())
        }
        None => {}
    }
    match &g.last_failure {
        Some(failure) => {
            let at = match &failure.failing {
                Some(f) => format!(
                    "job `{}`, step `{}`",
                    f.job,
                    f.step.as_deref().unwrap_or("(before any step)")
                ),
                None => "failing job not identified".to_owned(),
            };
            lines.push(format!(
                "Last failure: {} · {} · {at}",
                run_link(&failure.run),
                failure.run.conclusion.as_deref().unwrap_or("failed")
            ));
        }
        None if g.workflow.is_ok() && g.runs_error.is_none() => {
            lines.push("No failed deploy run among the recent ones.".to_owned())
        }
        None => {}
    }
    lines.join("\n")
}

fn log_text(failure: &LastFailure) -> Option<String> {
    match failure.log.as_ref()? {
        Ok(lines) if lines.is_empty() => None,
        Ok(lines) => Some(format!("```\n{}\n```", lines.join("\n"))),
        Err(e) => Some(format!("⚠️ log unavailable: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tails_fit_the_limits_and_cannot_close_the_block() {
        let lines: Vec<String> = (0..40)
            .map(|i| format!("line {i} {}", "x".repeat(80)))
            .collect();
        let fitted = fit_log(&lines);
        assert!(fitted.len() <= LOG_LINES);
        let total: usize = fitted.iter().map(|l| l.chars().count() + 1).sum();
        assert!(total <= LOG_CHARS, "{total}");
        assert!(
            fitted.last().unwrap().starts_with("line 39"),
            "keeps the end"
        );
        let sneaky = fit_log(&["```\n@everyone".to_owned()]);
        assert!(!sneaky[0].contains("```"));
    }

    #[test]
    fn latency_is_min_median_max_of_answered_samples() {
        let answer = |ms| {
            Ok(ProbeResponse {
                status: 200,
                latency_ms: ms,
                cache_control: None,
                final_url: url::Url::parse("https://x.example.com").unwrap(),
                body_bytes: 0,
                body_truncated: false,
                peer_certificate: None,
            })
        };
        let endpoint = Endpoint {
            path: "/".into(),
            samples: vec![answer(30), answer(10), answer(20)],
        };
        assert_eq!(endpoint.latency(), Some((10, 20, 30)));
        assert!(endpoint.passed());
        let flaky = Endpoint {
            path: "/".into(),
            samples: vec![
                answer(30),
                Err(ProbeError::Timeout(crate::probe::ATTEMPT_TIMEOUT)),
            ],
        };
        assert_eq!(flaky.latency(), Some((30, 30, 30)));
        assert!(!flaky.passed());
    }

    #[test]
    fn missing_classic_scopes_are_named() {
        let info = TokenInfo {
            scopes: Some(vec!["repo".into(), "read:org".into()]),
            can_push: Some(true),
            rate_remaining: Some(10),
        };
        assert_eq!(missing_scopes(&info), vec!["workflow"]);
        let fine_grained = TokenInfo {
            scopes: None,
            ..info
        };
        assert!(missing_scopes(&fine_grained).is_empty());
    }
}
