//! Prometheus metrics for `serve`: the series behind `GET /metrics`, recorded through
//! the `metrics` facade and rendered by `metrics-exporter-prometheus`.
//!
//! Every series is recorded here, by functions the completion points call next to the
//! line they log (the command and webhook completion lines, the job runner's
//! settlement, the GitHub client's one event per call), so a name or a label is spelt
//! in one place. They are not derived from the log events: a `VALINE_LOG=warn` filter
//! drops the INFO completion lines, and metrics must not depend on how chatty the
//! logs are.
//!
//! Until [`install`] runs (only `serve` with `VALINE_METRICS_LISTEN` calls it) the
//! facade has no recorder and each call is a cheap no-op, so the CLI sub-commands and
//! the Lambda entry pay nothing.
//!
//! `valine_jobs_pending` has no store count behind it (the store has no cheap count of
//! pending jobs on DynamoDB): it is a gauge kept by this process, up when it submits a
//! job (directly, with a webhook's or a poll's effects, or as a retry) and down when its
//! runner takes one. It is exact for one `serve` process that started on an empty
//! queue; jobs left pending by an earlier process make it read low (even negative) until
//! they are run, and several processes sharing a store each count only their own.
//!
//! Series:
//! - `valine_commands_total{command,outcome}` and `valine_command_duration_seconds{command}`
//!   (histogram), once per completed command (a deferred one when its job ends);
//! - `valine_webhooks_total{event,outcome}`;
//! - `valine_jobs_total{job,outcome}` per job attempt (`ok`, `retry`, `error`);
//! - `valine_jobs_pending`;
//! - `valine_github_requests_total{status}` (the HTTP status, or `error` when no answer
//!   came) and `valine_github_rate_remaining`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

const COMMANDS: &str = "valine_commands_total";
const COMMAND_DURATION: &str = "valine_command_duration_seconds";
const WEBHOOKS: &str = "valine_webhooks_total";
const JOBS: &str = "valine_jobs_total";
const JOBS_PENDING: &str = "valine_jobs_pending";
const GITHUB_REQUESTS: &str = "valine_github_requests_total";
const GITHUB_RATE_REMAINING: &str = "valine_github_rate_remaining";

/// Command latency buckets in seconds: an immediate answer takes milliseconds, and a
/// deferred command (a dispatch followed to its run) can take minutes.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// How often histograms are drained when nobody scrapes: without it their samples
/// pile up in memory between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls return the same
/// handle) and starts its upkeep task, so that the series recorded from now on can be
/// rendered by [`serve`]. Needs a Tokio runtime.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(COMMAND_DURATION.to_owned()),
            &DURATION_BUCKETS,
        )?
        .build_recorder();
    let handle = recorder.handle();
    // Two callers racing here (parallel tests) must not both install: the loser's
    // recorder is dropped and it uses the winner's handle.
    if HANDLE.set(handle.clone()).is_err() {
        return Ok(HANDLE.get().expect("handle was set").clone());
    }
    metrics::set_global_recorder(recorder).map_err(BuildError::FailedToSetGlobalRecorder)?;
    describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// The HELP lines of every series.
fn describe() {
    describe_counter!(
        COMMANDS,
        Unit::Count,
        "Completed commands by command and outcome."
    );
    describe_histogram!(
        COMMAND_DURATION,
        Unit::Seconds,
        "Command duration by command."
    );
    describe_counter!(
        WEBHOOKS,
        Unit::Count,
        "GitHub webhook deliveries by event and outcome."
    );
    describe_counter!(
        JOBS,
        Unit::Count,
        "Job attempts by job kind and outcome (ok, retry, error)."
    );
    describe_gauge!(
        JOBS_PENDING,
        Unit::Count,
        "Jobs submitted by this process and not yet taken by its runner."
    );
    describe_counter!(
        GITHUB_REQUESTS,
        Unit::Count,
        "GitHub API requests by HTTP status (error: no answer)."
    );
    describe_gauge!(
        GITHUB_RATE_REMAINING,
        Unit::Count,
        "GitHub's x-ratelimit-remaining on the last answer."
    );
}

/// The metrics router: `GET /metrics` only. It is served on its own listener, never
/// merged into the public router, so the public address does not expose it.
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .with_state(Arc::new(handle))
}

async fn render(State(handle): State<Arc<PrometheusHandle>>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        handle.render(),
    )
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(handle))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A command completed (for a deferred one, when its job ended).
pub fn command(command: &str, outcome: &'static str, duration: Duration) {
    let name = command.to_owned();
    counter!(COMMANDS, "command" => name.clone(), "outcome" => outcome).increment(1);
    histogram!(COMMAND_DURATION, "command" => name).record(duration.as_secs_f64());
}

/// A webhook delivery that passed the signature check was answered.
pub fn webhook(event: &str, outcome: &'static str) {
    counter!(WEBHOOKS, "event" => event.to_owned(), "outcome" => outcome).increment(1);
}

/// A job attempt ended: `ok`, `retry` or `error`.
pub fn job(kind: &'static str, outcome: &'static str) {
    counter!(JOBS, "job" => kind, "outcome" => outcome).increment(1);
}

/// `count` jobs were submitted to the queue by this process.
pub fn jobs_submitted(count: usize) {
    gauge!(JOBS_PENDING).increment(count as f64);
}

/// This process's runner took a job off the queue.
pub fn job_taken() {
    gauge!(JOBS_PENDING).decrement(1.0);
}

/// One GitHub HTTP attempt ended: its status (`None` when no answer came) and the rate
/// limit left, when GitHub said.
pub fn github_request(status: Option<u16>, rate_remaining: Option<u64>) {
    let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
    counter!(GITHUB_REQUESTS, "status" => status).increment(1);
    if let Some(remaining) = rate_remaining {
        gauge!(GITHUB_RATE_REMAINING).set(remaining as f64);
    }
}
