//! The HTTP edge: the axum `Router` for Discord interactions, GitHub webhooks and the
//! health check, and [`run`], which serves it with the in-process worker until the
//! shutdown signal.
//!
//! Handlers extract, call the use case, and map the result; an error in a command never
//! becomes a 5xx for Discord: a 5xx would only show the user a generic failure, so the
//! user reads a reply quoting the trace id instead.

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::util::MapResponseLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tracing::Instrument;

use crate::app::App;
use crate::commands::pipeline::{self, Decision};
use crate::discord::interaction::{self, Caller, Incoming, ReplyHandle};
use crate::discord::response::{self, Reply, callback};
use crate::github::webhook;
use crate::jobs::{self, Job};
use crate::runs::{self, Received};
use crate::secret::ExposeSecret;

mod request_id;

const DISCORD_BODY_LIMIT: usize = 1024 * 1024;
const GITHUB_BODY_LIMIT: usize = 25 * 1024 * 1024;
/// Discord waits 3 s; leave room for the network on both sides.
const INTERACTION_BUDGET: Duration = Duration::from_millis(2500);
/// GitHub waits 10 s for a webhook answer; the request path is only store work.
const WEBHOOK_BUDGET: Duration = Duration::from_secs(8);

/// A JSON error answer `{"error": "…"}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// What the user sees when answering failed (never a 5xx), quoting the trace id the error
/// was logged with.
fn something_went_wrong(trace_id: &str) -> Response {
    axum::Json(
        Reply::ephemeral(format!(
            "❌ Something went wrong (trace {})",
            crate::trace::short_id(trace_id)
        ))
        .to_response_json(callback::MESSAGE),
    )
    .into_response()
}

fn not_configured(var: &str) -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("{var} is not configured"),
    )
}

/// A body over the route's limit is refused by the limit layer (or the extractor) with a
/// plain-text 413; every other error here is JSON, so this one is too. A plain function
/// (`tower::util::MapResponseLayer`), not axum's async `map_response`: that one boxes a
/// future for every request.
fn json_payload_too_large(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    response
}

pub fn router(app: Arc<App>) -> Router {
    let discord = Router::new()
        .route("/discord/interactions", post(interactions))
        .route("/discord", post(interactions))
        .layer(RequestBodyLimitLayer::new(DISCORD_BODY_LIMIT))
        .layer(MapResponseLayer::new(json_payload_too_large))
        // Whatever goes wrong inside, Discord gets a message, not a 5xx.
        .layer(CatchPanicLayer::custom(|_| {
            let trace_id = crate::trace::new_trace_id();
            tracing::error!(trace_id = %trace_id, error.type = "panic", error.message = "interaction handler panicked", "handler panicked");
            something_went_wrong(&trace_id)
        }));
    let github = Router::new()
        .route("/github/webhook", post(github_webhook))
        .layer(RequestBodyLimitLayer::new(GITHUB_BODY_LIMIT))
        .layer(MapResponseLayer::new(json_payload_too_large))
        // The limit layer enforces 25 MiB; axum's own default for the `Bytes` extractor
        // (2 MiB) must not cut the webhook first. Only here: the interaction route reads
        // its body itself, and an extension set on every request costs an allocation.
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .merge(discord)
        .merge(github)
        .route("/healthz", get(healthz))
        .layer(SetSensitiveRequestHeadersLayer::new([
            axum::http::header::AUTHORIZATION,
            HeaderName::from_static("x-hub-signature-256"),
            HeaderName::from_static("x-signature-ed25519"),
        ]))
        .layer(request_id::RequestIdLayer)
        .with_state(app)
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let ping = app.store.ping().await;
    let store_ok = ping.is_ok();
    let mut body = json!({
        "status": if store_ok { "ok" } else { "error" },
        "version": crate::VERSION,
        "stage": app.config.stage,
        "store": if store_ok { "ok" } else { "error" },
    });
    // A store error's text names the operation and what to fix, never record contents,
    // so whoever watches the health check learns why without reading the logs.
    if let Err(e) = ping {
        body["reason"] = Value::String(e.to_string());
    }
    let status = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The answer to a PING, built once: a PING is Discord checking the endpoint, and
/// everything it costs besides the signature check is overhead (docs/design.md, "A slash
/// command").
fn pong() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        r#"{"type":1}"#,
    )
        .into_response()
}

async fn interactions(State(app): State<Arc<App>>, request: Request) -> Response {
    // The request is taken apart rather than extracted as `HeaderMap` and `Bytes`: the
    // `HeaderMap` extractor copies every header of every request.
    let (parts, body) = request.into_parts();
    // Buffered under the route's limit, as the `Bytes` extractor does (same rejections).
    let body = match Bytes::from_request(Request::new(body), &()).await {
        Ok(body) => body,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(verifier) = app.verifier.as_ref() else {
        return not_configured("DISCORD_PUBLIC_KEY");
    };
    let headers = &parts.headers;
    if let Err(e) = verifier.verify(
        header(headers, "x-signature-ed25519"),
        header(headers, "x-signature-timestamp"),
        &body,
        app.clock.now_secs(),
    ) {
        tracing::info!(reason = %e, outcome = "denied", "interaction signature rejected");
        return error(StatusCode::UNAUTHORIZED, "invalid request signature");
    }
    let incoming = match interaction::parse(&body) {
        Ok(Incoming::Ping) => return pong(),
        Ok(incoming) => incoming,
        Err(e) => {
            tracing::info!(reason = %e, outcome = "invalid", "signed body is not an interaction");
            return error(StatusCode::BAD_REQUEST, "not a valid interaction");
        }
    };
    match tokio::time::timeout(INTERACTION_BUDGET, answer(&app, incoming)).await {
        Ok(value) => axum::Json(value).into_response(),
        Err(_) => {
            let trace_id = crate::trace::new_trace_id();
            tracing::error!(trace_id = %trace_id, error.type = "interaction_timeout", error.message = "answer not ready within budget", "interaction too slow");
            something_went_wrong(&trace_id)
        }
    }
}

/// Follow-ups edit the reply through the configured application
/// (`DISCORD_APPLICATION_ID`), not whichever id the payload names; the payload's id
/// serves only when none is configured.
fn answering_as(app: &App, handle: ReplyHandle) -> ReplyHandle {
    match &app.config.discord_application_id {
        Some(id) => ReplyHandle {
            application_id: id.clone(),
            ..handle
        },
        None => handle,
    }
}

async fn answer(app: &App, incoming: Incoming) -> Value {
    match incoming {
        // Answered by `interactions` before the budget is set up (see `pong`).
        Incoming::Ping => json!({ "type": callback::PONG }),
        Incoming::Command {
            caller,
            name,
            options,
            handle,
        } => {
            let handle = answering_as(app, handle);
            let decision =
                pipeline::decide_command(app, &caller, &name, options, Some(handle)).await;
            respond(app, decision, &caller, &name).await
        }
        Incoming::Component {
            caller,
            custom_id,
            handle,
        } => {
            let handle = answering_as(app, handle);
            let decision = pipeline::decide_component(app, &caller, &custom_id, Some(handle)).await;
            respond(app, decision, &caller, &custom_id).await
        }
        Incoming::Autocomplete {
            caller,
            name,
            focused,
        } => {
            let choices: Vec<Value> = crate::commands::autocomplete(app, &caller, &name, focused)
                .await
                .into_iter()
                .map(|(name, value)| json!({ "name": name, "value": value }))
                .collect();
            json!({ "type": callback::AUTOCOMPLETE_RESULT, "data": { "choices": choices } })
        }
        Incoming::Other => Reply::ephemeral("❌ This kind of interaction is not supported.")
            .to_response_json(callback::MESSAGE),
    }
}

/// Turns the pipeline's decision into the interaction response, enqueueing the job of
/// a deferred answer first.
async fn respond(app: &App, decision: Decision, caller: &Caller, name: &str) -> Value {
    match decision {
        Decision::Reply { reply, .. } => reply.to_response_json(callback::MESSAGE),
        Decision::Update { reply, .. } => reply.to_response_json(callback::UPDATE_MESSAGE),
        Decision::Defer { job, ephemeral } => {
            let trace_id = job.trace_id.clone();
            match app.enqueue(&Job::Command(job), Some(&trace_id)).await {
                Ok(_) => response::deferred(ephemeral),
                Err(e) => {
                    let span = tracing::info_span!("command", trace_id = %trace_id, user_id = %caller.user_id, command = %name);
                    crate::metrics::command(name, "error", Duration::ZERO);
                    span.in_scope(|| {
                        tracing::error!(error.type = "store_unavailable", error.message = %e, duration_ms = 0u64, outcome = "error", "job not enqueued");
                    });
                    Reply::ephemeral(format!(
                        "❌ Something went wrong (trace {})",
                        crate::trace::short_id(&trace_id)
                    ))
                    .to_response_json(callback::MESSAGE)
                }
            }
        }
    }
}

async fn github_webhook(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = app.config.github_webhook_secret.as_ref() else {
        return not_configured("GITHUB_WEBHOOK_SECRET");
    };
    if !webhook::signed_by_any(
        secret.expose_secret(),
        &body,
        header(&headers, "x-hub-signature-256"),
    ) {
        tracing::info!(outcome = "denied", "webhook signature rejected");
        return error(StatusCode::UNAUTHORIZED, "invalid signature");
    }
    let (Some(event), Some(delivery)) = (
        header(&headers, "x-github-event"),
        header(&headers, "x-github-delivery"),
    ) else {
        tracing::info!(outcome = "invalid", "webhook without event or delivery id");
        return error(
            StatusCode::BAD_REQUEST,
            "X-GitHub-Event and X-GitHub-Delivery are required",
        );
    };
    // A trace id of its own, so an operator follows a delivery like a command.
    let trace_id = crate::trace::new_trace_id();
    let span = tracing::info_span!("webhook", trace_id = %trace_id, event = %event, delivery_id = %delivery);
    async {
        let started = Instant::now();
        let received = runs::receive_within(
            WEBHOOK_BUDGET,
            &app,
            event,
            delivery,
            &body,
            app.clock.now_ms(),
        )
        .await;
        received.log_completion(event, started.elapsed());
        let (status, body) = match received {
            Received::Ping | Received::Accepted => (StatusCode::OK, json!({"status": "ok"})),
            Received::Duplicate => (StatusCode::OK, json!({"status": "duplicate"})),
            Received::Ignored(_) => (StatusCode::ACCEPTED, json!({"status": "ignored"})),
            Received::Invalid(why) => (StatusCode::BAD_REQUEST, json!({"error": why})),
            // Not accepted: GitHub marks the delivery failed and it can be redelivered.
            Received::Unavailable(_) | Received::TimedOut => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "the delivery could not be recorded; redeliver it"}),
            ),
        };
        (status, axum::Json(body)).into_response()
    }
    .instrument(span)
    .await
}

/// Serves `app` on `listener` with the worker in-process until `shutdown` resolves;
/// then stops accepting, lets the worker finish its job (up to the grace period) and
/// release its leases.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut stopping = stop_rx.clone();
    let grace = app.worker.shutdown_grace;
    let mut worker = jobs::AbortOnDrop(tokio::spawn(crate::work::consume(
        Arc::clone(&app),
        stop_rx,
    )));
    // Each answer is one write: Nagle's algorithm could only hold it back behind an
    // unacknowledged earlier one, adding a delayed-ACK wait to a keep-alive connection.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, router(app)).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: no new jobs will be claimed");
        let _ = stop_tx.send(true);
    });
    // Graceful shutdown waits for open connections; a client that never finishes its
    // request must not keep the process alive past the grace period.
    let result = tokio::select! {
        result = server.into_future() => result,
        _ = async {
            let _ = stopping.wait_for(|stop| *stop).await;
            tokio::time::sleep(grace + Duration::from_secs(1)).await;
        } => {
            tracing::warn!("connections still open after the grace period; closing them");
            Ok(())
        }
    };
    if let Err(e) = (&mut worker.0).await {
        tracing::error!(error.type = "worker_panic", error.message = %e, "worker ended abnormally");
    }
    result
}
