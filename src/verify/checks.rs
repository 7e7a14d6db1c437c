//! The checks of a deploy run (see `docs/design.md#verification`): the run's conclusion
//! and step durations, `GET` of every frontend and API path, all at once, gathered into a
//! [`Verification`] that `report.rs` renders.
//!
//! [`verify_run`] is the one entry point: the verify commands, their `Re-verify` button,
//! the run-completion announcement (`AUTO_VERIFY`) and `/deploy-client wait:true` all
//! call it.

use futures_util::future::join_all;

use crate::app::App;
use crate::error::CommandError;
use crate::github::model::{Job, WorkflowRun};
use crate::probe::target::ProbeTarget;
use crate::probe::{ProbeError, ProbeResponse, Prober};
use crate::settings::{self, InUse};
use crate::store::StepStatus;
use crate::trace::Tracer;

/// Conclusions that mean the run failed (and that GitHub can re-run).
pub const FAILED_CONCLUSIONS: [&str; 4] = ["failure", "timed_out", "cancelled", "startup_failure"];

/// The deploy steps whose durations are reported, recognised by name: steps whose names
/// mention build, S3 sync / upload, or CloudFront invalidation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Build,
    Upload,
    Invalidation,
}

impl StepKind {
    /// Most specific first: "Build and sync to S3" is an upload, "Invalidate CloudFront
    /// after sync" an invalidation.
    pub fn of(step_name: &str) -> Option<StepKind> {
        let name = step_name.to_lowercase();
        if name.contains("cloudfront") || name.contains("invalidat") {
            Some(StepKind::Invalidation)
        } else if name.contains("s3") || name.contains("sync") || name.contains("upload") {
            Some(StepKind::Upload)
        } else if name.contains("build") {
            Some(StepKind::Build)
        } else {
            None
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            StepKind::Build => "Build",
            StepKind::Upload => "Upload",
            StepKind::Invalidation => "Cache invalidation",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepDuration {
    pub kind: StepKind,
    pub job: String,
    pub step: String,
    pub secs: i64,
}

/// Where a failed run broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailingStep {
    pub job: String,
    pub job_id: u64,
    /// `None` when the job failed outside any step (e.g. it could not start).
    pub step: Option<String>,
    pub job_url: Option<String>,
}

/// The Actions part of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionsCheck {
    pub status: Option<String>,
    pub conclusion: Option<String>,
    pub steps: Vec<StepDuration>,
    pub failing: Option<FailingStep>,
    /// The jobs could not be read; the conclusion still stands.
    pub jobs_error: Option<String>,
}

impl ActionsCheck {
    pub fn passed(&self) -> bool {
        self.conclusion.as_deref() == Some("success")
    }

    pub fn from_jobs(run: &WorkflowRun, jobs: Result<&[Job], String>) -> ActionsCheck {
        let (steps, failing, jobs_error) = match jobs {
            Ok(jobs) => (step_durations(jobs), failing_step(jobs), None),
            Err(e) => (Vec::new(), None, Some(e)),
        };
        ActionsCheck {
            status: run.status.clone(),
            conclusion: run.conclusion.clone(),
            steps,
            failing,
            jobs_error,
        }
    }
}

/// Durations of the build, upload and invalidation steps, in job and step order.
pub fn step_durations(jobs: &[Job]) -> Vec<StepDuration> {
    jobs.iter()
        .flat_map(|job| {
            job.steps.iter().filter_map(move |step| {
                let kind = StepKind::of(&step.name)?;
                let secs = (step.completed_at? - step.started_at?).num_seconds();
                Some(StepDuration {
                    kind,
                    job: job.name.clone(),
                    step: step.name.clone(),
                    secs,
                })
            })
        })
        .collect()
}

/// The first failed job and its first failed step.
pub fn failing_step(jobs: &[Job]) -> Option<FailingStep> {
    let failed = |c: &Option<String>| matches!(c.as_deref(), Some("failure" | "timed_out"));
    let job = jobs.iter().find(|j| failed(&j.conclusion))?;
    Some(FailingStep {
        job: job.name.clone(),
        job_id: job.id,
        step: job
            .steps
            .iter()
            .find(|s| failed(&s.conclusion))
            .map(|s| s.name.clone()),
        job_url: job.html_url.clone(),
    })
}

/// Which target a category probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetState {
    /// Neither a setting nor the environment names one.
    NotConfigured,
    /// The value in use breaks the URL rules (see `docs/design.md#ssrf-policy`); nothing
    /// was probed.
    Invalid {
        value: String,
        reason: String,
    },
    Ready(ProbeTarget),
}

impl TargetState {
    /// The value in use, judged by the prober's rules.
    pub fn of(in_use: &InUse, prober: &Prober) -> TargetState {
        match &in_use.value {
            None => TargetState::NotConfigured,
            Some(value) => match ProbeTarget::parse(value, prober.target_policy()) {
                Ok(target) => TargetState::Ready(target),
                Err(e) => TargetState::Invalid {
                    value: value.clone(),
                    reason: e.to_string(),
                },
            },
        }
    }
}

/// Frontend or API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Frontend,
    Api,
}

impl Side {
    pub fn label(self) -> &'static str {
        match self {
            Side::Frontend => "Frontend",
            Side::Api => "API",
        }
    }

    /// The setting key (and environment variable) of this side's target.
    pub fn key(self) -> &'static str {
        match self {
            Side::Frontend => settings::FRONTEND_KEY,
            Side::Api => settings::API_BASE_KEY,
        }
    }

    /// The command that changes this side's target.
    pub fn set_command(self) -> &'static str {
        match self {
            Side::Frontend => "/set-frontend",
            Side::Api => "/set-api-base",
        }
    }

    pub fn paths(self, app: &App) -> &[String] {
        match self {
            Side::Frontend => &app.config.verify_frontend_paths,
            Side::Api => &app.config.verify_api_paths,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathProbe {
    pub path: String,
    pub result: Result<ProbeResponse, ProbeError>,
}

impl PathProbe {
    pub fn passed(&self) -> bool {
        self.result.as_ref().is_ok_and(ProbeResponse::is_success)
    }
}

/// One side's target and what its paths answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub side: Side,
    pub target: TargetState,
    /// Where the target came from: `…(setting)`, `…(environment)`, `…(override)`.
    pub source: String,
    pub probes: Vec<PathProbe>,
}

impl Category {
    /// Not configured counts as passing (nothing to check, and the report says so);
    /// an unusable target or any non-2xx probe fails.
    pub fn passed(&self) -> bool {
        match self.target {
            TargetState::NotConfigured => true,
            TargetState::Invalid { .. } => false,
            TargetState::Ready(_) => self.probes.iter().all(PathProbe::passed),
        }
    }

    /// The `Cache-Control` of `index.html`, else of `/`: the path and the header (`None`
    /// when the answer had none).
    pub fn cache_control(&self) -> Option<(&str, Option<&str>)> {
        let find = |wanted: &str| {
            self.probes
                .iter()
                .find(|p| p.path.trim_end_matches('/').ends_with(wanted))
        };
        let probe = find("/index.html").or_else(|| self.probes.iter().find(|p| p.path == "/"))?;
        let response = probe.result.as_ref().ok()?;
        Some((probe.path.as_str(), response.cache_control.as_deref()))
    }
}

/// `GET` of every path under `target`, all at once.
pub async fn probe_paths(
    prober: &Prober,
    target: &ProbeTarget,
    paths: &[String],
) -> Vec<PathProbe> {
    join_all(paths.iter().map(|path| async move {
        PathProbe {
            path: path.clone(),
            result: prober.get(&target.join(path)).await,
        }
    }))
    .await
}

async fn probe_state(prober: &Prober, state: &TargetState, paths: &[String]) -> Vec<PathProbe> {
    match state {
        TargetState::Ready(target) => probe_paths(prober, target, paths).await,
        _ => Vec::new(),
    }
}

/// The outcome of verifying one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub run: WorkflowRun,
    pub actions: ActionsCheck,
    pub frontend: Category,
    pub api: Category,
    /// Said above the checks, e.g. that the newest run is still in progress.
    pub note: Option<String>,
}

impl Verification {
    /// Pass: conclusion `success` and every probe 2xx.
    pub fn passed(&self) -> bool {
        self.actions.passed() && self.frontend.passed() && self.api.passed()
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// The targets in use: stored settings over the environment, an override first.
pub async fn targets_in_use(
    app: &App,
    api_base_override: Option<&ProbeTarget>,
) -> Result<[(Side, TargetState, String); 2], CommandError> {
    let frontend = settings::in_use(app, settings::FRONTEND_KEY).await?;
    let api = settings::in_use(app, settings::API_BASE_KEY).await?;
    let api_state = match api_base_override {
        Some(target) => (
            Side::Api,
            TargetState::Ready(target.clone()),
            format!("{target} (override)"),
        ),
        None => (
            Side::Api,
            TargetState::of(&api, &app.prober),
            api.describe(),
        ),
    };
    Ok([
        (
            Side::Frontend,
            TargetState::of(&frontend, &app.prober),
            frontend.describe(),
        ),
        api_state,
    ])
}

/// Verifies `run`: its jobs and every probe run concurrently. A target that is not
/// configured is reported as such; the API base can be overridden (the value a
/// `/deploy-client` dispatched).
pub async fn verify_run(
    app: &App,
    run: &WorkflowRun,
    api_base_override: Option<&ProbeTarget>,
    tracer: &mut Tracer,
) -> Result<Verification, CommandError> {
    let github = app.github()?;
    if let Some(url) = &run.html_url {
        tracer.link(url.clone());
    }

    let step = tracer.begin("store.settings");
    let targets = targets_in_use(app, api_base_override).await;
    tracer.end(step, &targets);
    let [
        (_, frontend_state, frontend_source),
        (_, api_state, api_source),
    ] = targets?;

    let frontend_paths = Side::Frontend.paths(app);
    let api_paths = Side::Api.paths(app);
    let step = tracer.begin("verify.checks");
    let (jobs, frontend_probes, api_probes) = tokio::join!(
        github.list_run_jobs(run.id),
        probe_state(&app.prober, &frontend_state, frontend_paths),
        probe_state(&app.prober, &api_state, api_paths),
    );
    tracer.end_with(
        step,
        StepStatus::Ok,
        Some("jobs and probes, concurrently".into()),
    );

    match &jobs {
        Ok(jobs) => tracer.record_ok("github.list_run_jobs", format!("{} jobs", jobs.len())),
        Err(e) => tracer.record_err("github.list_run_jobs", e.to_string()),
    }
    let frontend = Category {
        side: Side::Frontend,
        target: frontend_state,
        source: frontend_source,
        probes: frontend_probes,
    };
    let api = Category {
        side: Side::Api,
        target: api_state,
        source: api_source,
        probes: api_probes,
    };
    for category in [&frontend, &api] {
        trace_category(tracer, category);
    }
    let actions = ActionsCheck::from_jobs(run, jobs.as_deref().map_err(|e| e.to_string()));
    Ok(Verification {
        run: run.clone(),
        actions,
        frontend,
        api,
        note: None,
    })
}

/// One trace step per side with each path's result, so `/debug-last` shows them.
fn trace_category(tracer: &mut Tracer, category: &Category) {
    let name = format!("probe.{}", category.side.label().to_lowercase());
    let detail = match &category.target {
        TargetState::NotConfigured => "not configured".to_owned(),
        TargetState::Invalid { reason, .. } => reason.clone(),
        TargetState::Ready(_) => category
            .probes
            .iter()
            .map(|p| match &p.result {
                Ok(r) => format!("{} {} {} ms", p.path, r.status, r.latency_ms),
                Err(e) => format!("{} {e}", p.path),
            })
            .collect::<Vec<_>>()
            .join("; "),
    };
    if category.passed() {
        tracer.record_ok(&name, detail);
    } else {
        tracer.record_err(&name, detail);
    }
}

/// Recording steps whose work already happened concurrently under `verify.checks`.
trait RecordStep {
    fn record_ok(&mut self, name: &str, detail: String);
    fn record_err(&mut self, name: &str, detail: String);
}

impl RecordStep for Tracer {
    fn record_ok(&mut self, name: &str, detail: String) {
        let step = self.begin(name);
        self.end_with(step, StepStatus::Ok, Some(detail));
    }

    fn record_err(&mut self, name: &str, detail: String) {
        let step = self.begin(name);
        self.end_with(step, StepStatus::Error, Some(detail));
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::github::model::Step;

    fn step(name: &str, conclusion: &str, secs: i64) -> Step {
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap();
        Step {
            name: name.into(),
            status: Some("completed".into()),
            conclusion: Some(conclusion.into()),
            number: 1,
            started_at: Some(start),
            completed_at: Some(start + chrono::Duration::seconds(secs)),
        }
    }

    fn job(name: &str, conclusion: &str, steps: Vec<Step>) -> Job {
        Job {
            id: 7,
            name: name.into(),
            conclusion: Some(conclusion.into()),
            steps,
            ..Default::default()
        }
    }

    #[test]
    fn steps_are_recognised_by_name() {
        assert_eq!(StepKind::of("npm run build"), Some(StepKind::Build));
        assert_eq!(StepKind::of("Sync to S3"), Some(StepKind::Upload));
        assert_eq!(StepKind::of("Build and upload"), Some(StepKind::Upload));
        assert_eq!(
            StepKind::of("aws s3 sync dist s3://b"),
            Some(StepKind::Upload)
        );
        assert_eq!(
            StepKind::of("Invalidate CloudFront"),
            Some(StepKind::Invalidation)
        );
        assert_eq!(
            StepKind::of("CloudFront after sync"),
            Some(StepKind::Invalidation)
        );
        assert_eq!(StepKind::of("Checkout"), None);
    }

    #[test]
    fn durations_and_the_failing_step_come_from_the_jobs() {
        let jobs = vec![
            job(
                "build",
                "success",
                vec![step("Checkout", "success", 3), step("Build", "success", 65)],
            ),
            job(
                "deploy",
                "failure",
                vec![
                    step("Sync to S3", "success", 20),
                    step("Invalidate CloudFront", "failure", 4),
                    step("Notify", "skipped", 0),
                ],
            ),
        ];
        let durations = step_durations(&jobs);
        let summary: Vec<(StepKind, i64)> = durations.iter().map(|d| (d.kind, d.secs)).collect();
        assert_eq!(
            summary,
            vec![
                (StepKind::Build, 65),
                (StepKind::Upload, 20),
                (StepKind::Invalidation, 4)
            ]
        );
        let failing = failing_step(&jobs).unwrap();
        assert_eq!(failing.job, "deploy");
        assert_eq!(failing.step.as_deref(), Some("Invalidate CloudFront"));
        assert_eq!(failing_step(&jobs[..1]), None);
    }
}
