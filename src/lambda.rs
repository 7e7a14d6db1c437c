//! The Lambda edge: `valine lambda`, also what the binary runs when started with no
//! arguments while `AWS_LAMBDA_RUNTIME_API` is set (a `bootstrap` on `provided.al2023`).
//!
//! It adds only what Lambda has and `serve` has not:
//! - the event shapes: an API Gateway HTTP API (payload 2.0) or function URL event goes
//!   through the same axum `Router` as `serve` (`lambda_http` decodes a base64 body
//!   first, so the signature checks see the exact raw bytes); an SQS event runs each
//!   record as one job, answering `batchItemFailures` for those that are to come back;
//!   anything else is an error naming the event;
//! - the container's init: configuration (with `ssm:` values) read once, and an invalid
//!   one reported through the Runtime API's init error naming the variable;
//! - the X-Ray trace id of each invocation on every line it logs.
//!
//! No job runs inside an HTTP invocation: jobs go to SQS and the worker function runs
//! them. A job never outlives its invocation: a wait re-enqueues itself with a delay,
//! and work still running when the invocation's time is nearly up is given back to the
//! queue. See `docs/design.md#lambda`.

use std::sync::Arc;
use std::time::Duration;

use lambda_http::request::LambdaRequest;
use lambda_runtime::{Context, Diagnostic, LambdaEvent, service_fn};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::app::{App, AppError, Feed};
use crate::config::Config;
use crate::jobs::sqs::{Delivery, Handled, SqsQueue};
use crate::store::StoreLocation;
use crate::telemetry::{self, LogEdge};

/// Variables the Lambda runtime library reads at start; Lambda always sets them.
const RUNTIME_VARS: [&str; 3] = [
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// Time kept back from an invocation's deadline to settle its jobs and give back the
/// unfinished ones (at most a quarter of what is left).
const SETTLE_MARGIN: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    #[error(
        "valine lambda runs under AWS Lambda, which sets AWS_LAMBDA_RUNTIME_API; use `valine serve` elsewhere"
    )]
    NotInLambda,
    /// The container could not start; reported to the Runtime API as an init error.
    #[error("{0}")]
    Init(String),
    #[error("the Lambda runtime loop stopped: {0}")]
    Runtime(#[source] lambda_runtime::Error),
}

/// Runs the Lambda runtime loop until the runtime stops the container.
pub async fn run() -> Result<(), LambdaError> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").map_err(|_| LambdaError::NotInLambda)?;
    let edge = match Edge::init().await {
        Ok(edge) => Arc::new(edge),
        Err(message) => {
            tracing::error!(error.type = "init_error", error.message = %message, "container init failed");
            report_init_error(&api, &message).await;
            return Err(LambdaError::Init(message));
        }
    };
    tracing::info!(version = crate::VERSION, "valine lambda ready");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let edge = Arc::clone(&edge);
        async move { edge.handle(event).await }
    }))
    .await
    .map_err(LambdaError::Runtime)
}

/// What one container holds between invocations.
struct Edge {
    app: Arc<App>,
    router: axum::Router,
    queue: Arc<SqsQueue>,
}

impl Edge {
    /// Reads the configuration (and `ssm:` values) and opens the store and queue; the
    /// error is the init error's message, naming the variable to fix.
    async fn init() -> Result<Edge, String> {
        let config = match Config::load().await {
            Ok(config) => config,
            Err(e) => {
                let settings = telemetry::LogSettings {
                    filter: None,
                    format: None,
                    stage: "unknown",
                };
                telemetry::init(settings, Vec::new(), LogEdge::Lambda);
                return Err(e.to_string());
            }
        };
        telemetry::init(
            config.log_settings(),
            config.secret_values(),
            LogEdge::Lambda,
        );
        if let Some(var) = RUNTIME_VARS.iter().find(|v| std::env::var_os(v).is_none()) {
            return Err(format!(
                "{var} is not set: Lambda sets it for every function; outside Lambda use `valine serve`"
            ));
        }
        if !matches!(config.store, StoreLocation::DynamoDb(_)) {
            return Err(format!(
                "VALINE_STORE: a Lambda function needs dynamodb:<table> (a container's disk is \
                 neither shared nor kept), got {:?}",
                config.store
            ));
        }
        if config.queue_url.is_none() {
            return Err(
                "VALINE_QUEUE_URL is not set: under Lambda jobs travel over SQS to the \
                        worker function (the HTTP functions never run them)"
                    .into(),
            );
        }
        let app = App::new(config).await.map_err(|e| match e {
            AppError::Store(e) if e.needs_init() => {
                format!("{e}: run `valine init` to create it (VALINE_STORE names it)")
            }
            e => e.to_string(),
        })?;
        let app = Arc::new(app);
        let Feed::Sqs(queue) = app.feed.clone() else {
            return Err("VALINE_QUEUE_URL: the SQS queue was not set up".into());
        };
        Ok(Edge {
            router: crate::server::router(Arc::clone(&app)),
            app,
            queue,
        })
    }

    /// One invocation, inside its X-Ray trace.
    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
        let (payload, context) = event.into_parts();
        let header = context.xray_trace_id.clone().unwrap_or_default();
        telemetry::with_xray_trace_id(&header, self.route(payload, context)).await
    }

    async fn route(&self, payload: Value, context: Context) -> Result<Value, Diagnostic> {
        match Shape::of(&payload) {
            Shape::Http => self.http(payload, context).await,
            Shape::Sqs => self.jobs(payload, context).await,
            Shape::Other(what) => {
                let message = format!("valine cannot handle this event: {what}");
                tracing::error!(error.type = "unsupported_event", error.message = %message, "event not handled");
                Err(diagnostic("UnsupportedEvent", message))
            }
        }
    }

    /// An HTTP API v2 or function URL event, through the Router.
    async fn http(&self, payload: Value, context: Context) -> Result<Value, Diagnostic> {
        let request: LambdaRequest = serde_json::from_value(payload).map_err(|e| {
            tracing::error!(error.type = "unsupported_event", error.message = %e, "HTTP event not readable");
            diagnostic("UnsupportedEvent", format!("not an HTTP API v2 event: {e}"))
        })?;
        let adapter = lambda_http::Adapter::from(self.router.clone());
        let response = match adapter.oneshot(LambdaEvent::new(request, context)).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        serde_json::to_value(response)
            .map_err(|e| diagnostic("ResponseEncoding", format!("response not encodable: {e}")))
    }

    /// An SQS batch: each record one job, run side by side within the invocation's time.
    async fn jobs(&self, payload: Value, context: Context) -> Result<Value, Diagnostic> {
        let event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(payload)
            .map_err(|e| {
                tracing::error!(error.type = "unsupported_event", error.message = %e, "SQS event not readable");
                diagnostic("UnsupportedEvent", format!("not an SQS event: {e}"))
            })?;
        let deliveries: Vec<Delivery> = event
            .records
            .into_iter()
            .filter_map(|record| {
                let Some(message_id) = record.message_id else {
                    // Without an id it cannot be reported; Lambda deletes it with the batch.
                    tracing::error!(error.type = "job_decode", error.message = "record without a messageId", "malformed SQS record dropped");
                    return None;
                };
                let mut attributes = record.attributes;
                Some(Delivery {
                    message_id,
                    receipt_handle: record.receipt_handle,
                    body: record.body.unwrap_or_default(),
                    trace_header: attributes.remove("AWSTraceHeader"),
                })
            })
            .collect();
        let owner = format!("lambda-{}", context.request_id);
        let runner = crate::work::runner(&self.app, owner.clone());
        let budget = time_for_work(context.deadline, self.app.clock.now_ms());
        let results = futures_util::future::join_all(deliveries.iter().map(|delivery| {
            let work = self.queue.handle(&runner, delivery);
            async move { (delivery, tokio::time::timeout(budget, work).await) }
        }))
        .await;
        let mut failures = Vec::new();
        let mut interrupted = 0;
        for (delivery, result) in results {
            match result {
                Ok(Handled::Delete) => {}
                Ok(Handled::Keep) => failures.push(delivery.message_id.clone()),
                Err(_) => {
                    interrupted += 1;
                    self.queue.show_again_in(delivery, Duration::ZERO).await;
                    failures.push(delivery.message_id.clone());
                }
            }
        }
        if interrupted > 0 {
            // The interrupted attempts are given back, not counted: they did not fail.
            if let Err(e) = self.app.store.release_job_leases(&owner).await {
                tracing::warn!(error.type = e.error_type(), error.message = %e, "could not release job leases");
            }
            tracing::warn!(
                interrupted,
                "the invocation's time ran out; unfinished jobs go back to the queue"
            );
        }
        Ok(json!({
            "batchItemFailures": failures
                .into_iter()
                .map(|id| json!({ "itemIdentifier": id }))
                .collect::<Vec<_>>(),
        }))
    }
}

/// How long the jobs of an invocation may run: until its deadline (epoch ms), less the
/// margin to settle them.
fn time_for_work(deadline_ms: u64, now_ms: i64) -> Duration {
    let left = Duration::from_millis(
        u64::try_from(now_ms).map_or(0, |now| deadline_ms.saturating_sub(now)),
    );
    left.saturating_sub(SETTLE_MARGIN.min(left / 4))
}

/// Which handler an event is for, by its shape.
#[derive(Debug, PartialEq, Eq)]
enum Shape {
    Http,
    Sqs,
    /// What the event looked like, for the error.
    Other(String),
}

impl Shape {
    fn of(event: &Value) -> Shape {
        if let Some(records) = event.get("Records").and_then(Value::as_array) {
            let source = records
                .first()
                .and_then(|r| r.get("eventSource").or_else(|| r.get("EventSource")))
                .and_then(Value::as_str);
            return match source {
                Some("aws:sqs") => Shape::Sqs,
                Some(other) => Shape::Other(format!("records from {other}")),
                None if records.is_empty() => Shape::Sqs,
                None => Shape::Other("records without an eventSource".into()),
            };
        }
        if event.pointer("/requestContext/http").is_some() {
            return Shape::Http;
        }
        match event.as_object() {
            Some(object) => {
                let keys: Vec<&str> = object.keys().map(String::as_str).take(8).collect();
                Shape::Other(format!("an object with keys {keys:?}"))
            }
            None => Shape::Other("not a JSON object".into()),
        }
    }
}

fn diagnostic(error_type: &str, message: String) -> Diagnostic {
    Diagnostic {
        error_type: error_type.to_owned(),
        error_message: message,
    }
}

/// Tells the Runtime API why the container could not start, so the invocation fails
/// with that message instead of a timeout. Best effort: the process exits either way.
async fn report_init_error(api: &str, message: &str) {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    let url = format!("http://{api}/2018-06-01/runtime/init/error");
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error.type = "init_error", error.message = %e, "init error not reported");
            return;
        }
    };
    let sent = client
        .post(url)
        .header(
            "Lambda-Runtime-Function-Error-Type",
            "Runtime.InvalidConfiguration",
        )
        .json(&json!({
            "errorType": "Runtime.InvalidConfiguration",
            "errorMessage": message,
            "stackTrace": [],
        }))
        .send()
        .await;
    if let Err(e) = sent {
        tracing::error!(error.type = "init_error", error.message = %e, "init error not reported");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_told_apart_by_shape() {
        let http = json!({"version": "2.0", "routeKey": "POST /discord", "requestContext": {"http": {"method": "POST"}}});
        assert_eq!(Shape::of(&http), Shape::Http);
        let sqs = json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m"}]});
        assert_eq!(Shape::of(&sqs), Shape::Sqs);
        let s3 = json!({"Records": [{"eventSource": "aws:s3"}]});
        assert_eq!(Shape::of(&s3), Shape::Other("records from aws:s3".into()));
        let scheduled = json!({"source": "aws.events", "detail-type": "Scheduled Event"});
        assert!(
            matches!(Shape::of(&scheduled), Shape::Other(what) if what.contains("detail-type"))
        );
        assert_eq!(
            Shape::of(&json!(3)),
            Shape::Other("not a JSON object".into())
        );
    }

    #[test]
    fn work_stops_before_the_deadline() {
        let now = 1_000_000;
        assert_eq!(
            time_for_work(1_060_000, now),
            Duration::from_secs(58),
            "a 2 s margin"
        );
        assert_eq!(
            time_for_work(1_004_000, now),
            Duration::from_secs(3),
            "a quarter of a short budget"
        );
        assert_eq!(time_for_work(900_000, now), Duration::ZERO, "already past");
    }
}
