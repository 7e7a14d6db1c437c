//! A Lambda Runtime API double: the HTTP server a Lambda sandbox gives its runtime, on
//! 127.0.0.1, so the real `valine` binary runs as it does in a function. The test (or
//! benchmark) queues events with [`RuntimeApi::invoke`] and reads what the runtime
//! answered; an init error reported by the binary is kept for [`RuntimeApi::init_error`].
//!
//! Implements `GET /2018-06-01/runtime/invocation/next` (long-polled, with the
//! `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn` and
//! `-Trace-Id` headers), `POST …/invocation/{id}/response`, `POST …/invocation/{id}/error`
//! and `POST /2018-06-01/runtime/init/error`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::Notify;

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The function's result.
    Response(Value),
    /// The function's error (`errorType`, `errorMessage`).
    Error(Value),
}

impl Outcome {
    /// The result, or a panic naming the error.
    pub fn response(self) -> Value {
        match self {
            Outcome::Response(value) => value,
            Outcome::Error(error) => panic!("invocation failed: {error}"),
        }
    }
}

struct Pending {
    id: String,
    event: Value,
    trace: String,
    deadline_ms: u64,
}

#[derive(Default)]
struct Runtime {
    queued: Mutex<VecDeque<Pending>>,
    queued_changed: Notify,
    outcomes: Mutex<HashMap<String, Outcome>>,
    outcome_arrived: Notify,
    init_error: Mutex<Option<(Option<String>, Value)>>,
    init_error_arrived: Notify,
}

pub struct RuntimeApi {
    pub addr: SocketAddr,
    runtime: Arc<Runtime>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An X-Ray trace header as Lambda passes it, with a fresh root id.
pub fn trace_header() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let unique = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{:08x}-{};Parent={};Sampled=1",
        now.as_secs() as u32,
        &unique[..24],
        &unique[16..32]
    )
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let runtime = Arc::new(Runtime::default());
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(Arc::clone(&runtime));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        RuntimeApi {
            addr,
            runtime,
            server,
        }
    }

    /// `AWS_LAMBDA_RUNTIME_API` for the function.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Queues `event` under the X-Ray trace `trace` with `budget` until its deadline, and
    /// waits (up to `wait`) for the function to answer it.
    pub async fn invoke_traced(
        &self,
        event: Value,
        trace: &str,
        budget: Duration,
        wait: Duration,
    ) -> Outcome {
        let id = uuid::Uuid::new_v4().to_string();
        let deadline_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(budget)
            .as_millis() as u64;
        self.runtime.queued.lock().unwrap().push_back(Pending {
            id: id.clone(),
            event,
            trace: trace.to_owned(),
            deadline_ms,
        });
        self.runtime.queued_changed.notify_waiters();
        let waited = tokio::time::timeout(wait, async {
            loop {
                let arrived = self.runtime.outcome_arrived.notified();
                if let Some(outcome) = self.runtime.outcomes.lock().unwrap().remove(&id) {
                    return outcome;
                }
                arrived.await;
            }
        })
        .await;
        waited.unwrap_or_else(|_| panic!("no answer to invocation {id} within {wait:?}"))
    }

    /// [`RuntimeApi::invoke_traced`] with a fresh trace, 60 s of budget and 60 s of wait.
    pub async fn invoke(&self, event: Value) -> Outcome {
        self.invoke_traced(
            event,
            &trace_header(),
            Duration::from_secs(60),
            Duration::from_secs(60),
        )
        .await
    }

    /// The init error the function reported (its error-type header and body), waiting
    /// up to `wait` for it.
    pub async fn init_error(&self, wait: Duration) -> Option<(Option<String>, Value)> {
        tokio::time::timeout(wait, async {
            loop {
                let arrived = self.runtime.init_error_arrived.notified();
                if let Some(error) = self.runtime.init_error.lock().unwrap().clone() {
                    return error;
                }
                arrived.await;
            }
        })
        .await
        .ok()
    }
}

async fn next(State(runtime): State<Arc<Runtime>>) -> Response {
    let pending = loop {
        let changed = runtime.queued_changed.notified();
        if let Some(pending) = runtime.queued.lock().unwrap().pop_front() {
            break pending;
        }
        changed.await;
    };
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", pending.id.parse().unwrap());
    headers.insert(
        "lambda-runtime-deadline-ms",
        pending.deadline_ms.to_string().parse().unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:valine-test"
            .parse()
            .unwrap(),
    );
    headers.insert("lambda-runtime-trace-id", pending.trace.parse().unwrap());
    (headers, axum::Json(pending.event)).into_response()
}

fn record(runtime: &Runtime, id: String, outcome: Outcome) -> StatusCode {
    runtime.outcomes.lock().unwrap().insert(id, outcome);
    runtime.outcome_arrived.notify_waiters();
    StatusCode::ACCEPTED
}

async fn response(
    State(runtime): State<Arc<Runtime>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    record(&runtime, id, Outcome::Response(value))
}

async fn error(
    State(runtime): State<Arc<Runtime>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    record(&runtime, id, Outcome::Error(value))
}

async fn init_error(
    State(runtime): State<Arc<Runtime>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let kind = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    *runtime.init_error.lock().unwrap() = Some((kind, value));
    runtime.init_error_arrived.notify_waiters();
    StatusCode::ACCEPTED
}
