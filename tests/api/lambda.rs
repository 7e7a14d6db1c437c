//! `valine lambda` end to end: the real binary under the Lambda Runtime API double, with
//! its state in DynamoDB Local and its jobs and secrets on moto (SQS, SSM). The tests
//! play API Gateway (signed requests wrapped in HTTP API v2 events) and the SQS event
//! source (queue messages fed to the function as SQS events, deleting those not
//! reported as failures); `serve` with `VALINE_QUEUE_URL` consumes the same queue.

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use base64::Engine;
use serde_json::{Value, json};

use crate::binary::{Server, collect_stdout, dynamodb_vars, post_signed, valine};
use crate::fakes::{FakeDiscord, FakeGitHub, run_json};
use crate::helpers::{
    WEBHOOK_SECRET, base_env, command, eventually, github_signature, now_secs, sign,
};
use crate::runtime_api::{Outcome, RuntimeApi, trace_header};

fn moto_endpoint() -> String {
    valine::store::dynamodb_local::DynamoDbLocal::moto()
        .endpoint()
        .to_owned()
}

fn aws_config() -> aws_config::SdkConfig {
    valine::store::dynamodb_local::sdk_config_for(&moto_endpoint())
}

fn sqs_client() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&aws_config())
}

fn ssm_client() -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&aws_config())
}

/// The fakes, a fresh DynamoDB table and SQS queue, and the function's environment.
struct World {
    _github: FakeGitHub,
    discord: FakeDiscord,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    vars: HashMap<String, String>,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        let github = FakeGitHub::start().await;
        let discord = FakeDiscord::start().await;
        github.add_workflow(77, "Client deploy", "client-deploy.yml");
        github.add_run(run_json(
            3001,
            77,
            "main",
            "completed",
            Some("success"),
            "2026-11-01T10:00:00Z",
            "2026-11-01T10:02:15Z",
        ));
        let dir = tempfile::tempdir().unwrap();
        let mut vars = base_env(&github, &discord, &dir.path().join("unused.db"));
        let table = valine::store::dynamodb_local::DynamoDbLocal::unique_table("valine-lambda");
        vars.extend(dynamodb_vars(&table));
        let sqs = sqs_client();
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("valine-jobs-{}", uuid::Uuid::new_v4().simple()))
            .attributes(QueueAttributeName::VisibilityTimeout, "60")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        for (var, value) in [
            ("VALINE_QUEUE_URL", queue_url.clone()),
            ("AWS_ENDPOINT_URL_SQS", moto_endpoint()),
            ("AWS_ENDPOINT_URL_SSM", moto_endpoint()),
            (
                "AWS_LAMBDA_FUNCTION_NAME",
                "valine-orchestrator-test".into(),
            ),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ] {
            vars.insert(var.into(), value);
        }
        let init = valine(&vars).arg("init").output().unwrap();
        assert_eq!(init.status.code(), Some(0), "{init:?}");
        World {
            _github: github,
            discord,
            sqs,
            queue_url,
            vars,
            _dir: dir,
        }
    }

    /// Puts `value` as a SecureString parameter and points `var` at it.
    async fn secret_in_ssm(&mut self, var: &str, value: &str) {
        let parameter = format!("/valine/test-{}/{}", uuid::Uuid::new_v4().simple(), var);
        ssm_client()
            .put_parameter()
            .name(&parameter)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .unwrap();
        self.vars.insert(var.into(), format!("ssm:{parameter}"));
    }

    /// Messages now on the queue (waiting up to `wait` for the first), as the SQS event
    /// source hands them to a function.
    async fn receive(&self, wait: Duration) -> Vec<Value> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        out.messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let attributes: serde_json::Map<String, Value> = m
                    .attributes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.as_str().to_owned(), Value::String(v)))
                    .collect();
                let message_attributes: serde_json::Map<String, Value> = m
                    .message_attributes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            k,
                            json!({
                                "stringValue": v.string_value,
                                "dataType": v.data_type,
                                "stringListValues": [],
                                "binaryListValues": [],
                            }),
                        )
                    })
                    .collect();
                json!({
                    "messageId": m.message_id,
                    "receiptHandle": m.receipt_handle,
                    "body": m.body,
                    "attributes": attributes,
                    "messageAttributes": message_attributes,
                    "md5OfBody": m.md5_of_body,
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:valine-jobs-test",
                    "awsRegion": "us-east-1",
                })
            })
            .collect()
    }

    /// Starts the function with `var` set to `value` and returns the message of the init
    /// error it reports, which must name `var`.
    async fn init_error_with(&self, var: &str, value: &str) -> String {
        let mut vars = self.vars.clone();
        vars.insert(var.into(), value.into());
        let lambda = Lambda::start(&vars).await;
        let (_, error) = lambda
            .runtime
            .init_error(Duration::from_secs(30))
            .await
            .expect("init error reported");
        let message = error["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(var), "{message}");
        message
    }

    /// Waits (up to 20 s) for exactly one message and returns it.
    async fn one_message(&self) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut messages = self.receive(Duration::from_secs(1)).await;
            if !messages.is_empty() {
                assert_eq!(messages.len(), 1, "{messages:?}");
                return messages.remove(0);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no message on the queue within 20 s"
            );
        }
    }

    /// Feeds `records` to the function as one SQS event with `budget` to run, deletes
    /// those not reported as failures (as Lambda's event source does), and returns the
    /// failures' message ids.
    async fn deliver(&self, lambda: &Lambda, records: &[Value], budget: Duration) -> Vec<String> {
        let answer = lambda
            .runtime
            .invoke_traced(
                json!({ "Records": records }),
                &trace_header(),
                budget,
                Duration::from_secs(60),
            )
            .await
            .response();
        let failures: Vec<String> = answer["batchItemFailures"]
            .as_array()
            .unwrap_or_else(|| panic!("no batchItemFailures in {answer}"))
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
            .collect();
        for record in records {
            if !failures.iter().any(|id| record["messageId"] == *id) {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(record["receiptHandle"].as_str().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        failures
    }
}

/// The real binary started as Lambda starts a `bootstrap`: no arguments, under the
/// Runtime API double. Killed when dropped.
struct Lambda {
    runtime: RuntimeApi,
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Lambda {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Lambda {
    async fn start(vars: &HashMap<String, String>) -> Lambda {
        let runtime = RuntimeApi::start().await;
        let mut child = valine(vars)
            .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (lines, _reader) = collect_stdout(&mut child);
        Lambda {
            runtime,
            child: Some(child),
            lines,
        }
    }

    fn logs(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
            .collect()
    }

    /// Waits for the process to exit; its exit code.
    async fn exit_code(mut self) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        eventually(Duration::from_secs(20), || {
            let exited = child.try_wait().unwrap();
            async move { exited }
        })
        .await
        .code()
    }
}

/// A request as API Gateway's HTTP API (payload format 2.0) hands it to a function.
fn http_event(path: &str, headers: &[(&str, String)], body: &str, base64: bool) -> Value {
    let mut header_map = serde_json::Map::new();
    header_map.insert("content-type".into(), "application/json".into());
    header_map.insert(
        "host".into(),
        "abc123.execute-api.us-east-1.amazonaws.com".into(),
    );
    for (name, value) in headers {
        header_map.insert(name.to_ascii_lowercase(), Value::String(value.clone()));
    }
    let route = format!("POST {path}");
    json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": "",
        "headers": header_map,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "Discord-Interactions/1.0"
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": route,
            "stage": "$default",
            "time": "30/Nov/2026:15:00:00 +0000",
            "timeEpoch": now_secs() * 1000
        },
        "body": if base64 {
            base64::engine::general_purpose::STANDARD.encode(body)
        } else {
            body.to_owned()
        },
        "isBase64Encoded": base64
    })
}

/// A Discord interaction signed with the application key, as an HTTP API event.
fn signed_interaction(body: &Value, base64: bool) -> Value {
    let raw = body.to_string();
    let ts = now_secs().to_string();
    let signature = sign(&ts, raw.as_bytes());
    http_event(
        "/discord/interactions",
        &[
            ("X-Signature-Ed25519", signature),
            ("X-Signature-Timestamp", ts),
        ],
        &raw,
        base64,
    )
}

/// A GitHub `ping` delivery of `raw`, signed with `secret`, as an HTTP API event.
fn ping_webhook(raw: &str, secret: &str) -> Value {
    http_event(
        "/github/webhook",
        &[
            ("X-GitHub-Event", "ping".into()),
            ("X-GitHub-Delivery", uuid::Uuid::new_v4().to_string()),
            (
                "X-Hub-Signature-256",
                github_signature(secret, raw.as_bytes()),
            ),
        ],
        raw,
        false,
    )
}

/// The HTTP response inside a function result: status and JSON body.
fn http_answer(answer: &Value) -> (u64, Value) {
    let status = answer["statusCode"].as_u64().expect("statusCode");
    let body = answer["body"].as_str().unwrap_or_default();
    let body = if answer["isBase64Encoded"] == true {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap(),
        )
        .unwrap()
    } else {
        body.to_owned()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// The bare root id of a trace header, as log lines carry it.
fn root(header: &str) -> String {
    header
        .split(';')
        .find_map(|p| p.strip_prefix("Root="))
        .unwrap()
        .to_owned()
}

/// Checks `line` is an EMF record CloudWatch would accept for the dimension `key`.
fn assert_emf(line: &Value, key: &str) {
    let aws = &line["_aws"];
    assert!(aws["Timestamp"].as_i64().is_some_and(|t| t > 0), "{line}");
    let directive = &aws["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "Valine", "{line}");
    assert_eq!(directive["Dimensions"], json!([["stage", key]]), "{line}");
    let metrics = directive["Metrics"].as_array().unwrap();
    assert!(
        metrics.contains(&json!({"Name": "duration_ms", "Unit": "Milliseconds"})),
        "{line}"
    );
    assert!(
        metrics.contains(&json!({"Name": "error", "Unit": "Count"})),
        "{line}"
    );
    // Every dimension and metric value sits at the top level.
    for name in ["stage", key] {
        assert!(line[name].is_string(), "{name} missing: {line}");
    }
    assert!(line["duration_ms"].is_u64(), "{line}");
    assert!(
        line["error"] == 0 || line["error"] == 1,
        "error must be 0 or 1: {line}"
    );
}

#[tokio::test]
async fn lambda_answers_http_api_events_and_runs_jobs_from_sqs() {
    let mut world = World::new().await;
    world
        .secret_in_ssm("GITHUB_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .await;
    let lambda = Lambda::start(&world.vars).await;

    // A signed PING with a base64 body (function URLs send binary bodies so): PONG.
    let ping_trace = trace_header();
    let ping = lambda
        .runtime
        .invoke_traced(
            signed_interaction(&json!({"type": 1, "id": "1", "application_id": "4242", "token": "t", "version": 1}), true),
            &ping_trace,
            Duration::from_secs(30),
            Duration::from_secs(60),
        )
        .await
        .response();
    assert_eq!(http_answer(&ping), (200, json!({"type": 1})), "{ping}");

    // Signed over other bytes: refused, as `serve` refuses it.
    let mut forged = signed_interaction(&json!({"type": 1}), false);
    forged["body"] = json!({"type": 1, "extra": true}).to_string().into();
    let forged_trace = trace_header();
    let refused = lambda
        .runtime
        .invoke_traced(
            forged,
            &forged_trace,
            Duration::from_secs(30),
            Duration::from_secs(60),
        )
        .await
        .response();
    assert_eq!(http_answer(&refused).0, 401, "{refused}");

    // /status: deferred at once, its job sent to SQS with the trace on it.
    let status_trace = trace_header();
    let deferred = lambda
        .runtime
        .invoke_traced(
            signed_interaction(
                &command("status", json!([]), "42", &[], "tok-lambda-status"),
                false,
            ),
            &status_trace,
            Duration::from_secs(30),
            Duration::from_secs(60),
        )
        .await
        .response();
    assert_eq!(
        http_answer(&deferred),
        (200, json!({"type": 5})),
        "{deferred}"
    );
    assert!(
        world.discord.edits_of("tok-lambda-status").is_empty(),
        "the HTTP invocation runs no job"
    );
    let message = world.one_message().await;
    assert_eq!(
        message["attributes"]["AWSTraceHeader"],
        status_trace.as_str()
    );
    let trace_id = message["messageAttributes"]["trace_id"]["stringValue"]
        .as_str()
        .expect("trace_id attribute")
        .to_owned();
    let body: Value = serde_json::from_str(message["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body["job"]["kind"], "command",
        "the body is the job: {body}"
    );

    // The worker invocation runs it and edits the original response; a malformed
    // record in the same batch is dropped, not retried.
    let mut malformed = message.clone();
    malformed["messageId"] = "not-a-job".into();
    malformed["body"] = "not json".into();
    let failures = world
        .deliver(&lambda, &[message, malformed], Duration::from_secs(60))
        .await;
    assert!(failures.is_empty(), "{failures:?}");
    let edit = world.discord.wait_for_edit("tok-lambda-status").await;
    assert!(edit.to_string().contains("Deploy runs on main"), "{edit}");
    assert!(world.receive(Duration::from_secs(1)).await.is_empty());

    // A signed webhook, its secret read from SSM at init.
    let delivery = json!({"zen": "Keep it logically awesome.", "hook_id": 1});
    let raw = delivery.to_string();
    let hook = lambda
        .runtime
        .invoke(ping_webhook(&raw, WEBHOOK_SECRET))
        .await
        .response();
    assert_eq!(http_answer(&hook), (200, json!({"status": "ok"})), "{hook}");
    let forged_hook = lambda
        .runtime
        .invoke(ping_webhook(&raw, "wrong"))
        .await
        .response();
    assert_eq!(http_answer(&forged_hook).0, 401);

    // Anything else is an error naming the event.
    match lambda
        .runtime
        .invoke(json!({"source": "aws.events", "detail-type": "Scheduled Event"}))
        .await
    {
        Outcome::Error(error) => assert!(
            error["errorMessage"]
                .as_str()
                .unwrap_or_default()
                .contains("cannot handle this event"),
            "{error}"
        ),
        other => panic!("expected an error: {other:?}"),
    }

    // The logs: one JSON object per line; the invocation's X-Ray id on its lines, passed
    // on through SQS to the job's; completion lines as EMF records; no secret anywhere.
    let logs = eventually(Duration::from_secs(10), || {
        let logs = lambda.logs();
        async move {
            logs.iter()
                .any(|l| l["command"] == "status" && l["outcome"] == "ok" && l["_aws"].is_object())
                .then_some(logs)
        }
    })
    .await;
    let raw_lines = lambda.lines.lock().unwrap().join("\n");
    assert!(
        !raw_lines.contains(WEBHOOK_SECRET),
        "webhook secret in the logs"
    );
    assert!(raw_lines.contains("\"xray_trace_id\""));
    let forged_root = root(&forged_trace);
    let refusal = logs
        .iter()
        .find(|l| l["message"] == "interaction signature rejected")
        .expect("the refusal is logged");
    assert_eq!(refusal["xray_trace_id"], forged_root.as_str(), "{refusal}");
    let status_root = root(&status_trace);
    let job_lines: Vec<&Value> = logs
        .iter()
        .filter(|l| l["trace_id"] == trace_id.as_str())
        .collect();
    assert!(!job_lines.is_empty(), "no line of the /status job");
    for line in &job_lines {
        assert_eq!(line["xray_trace_id"], status_root.as_str(), "{line}");
    }
    let completion = logs
        .iter()
        .find(|l| l["command"] == "status" && l["outcome"] == "ok" && l["_aws"].is_object())
        .unwrap();
    assert_emf(completion, "command");
    let webhook_line = logs
        .iter()
        .find(|l| l["event"] == "ping" && l["duration_ms"].is_u64())
        .expect("webhook completion line");
    assert_emf(webhook_line, "event");
    assert!(
        logs.iter()
            .any(|l| l["message"] == "malformed job message dropped"),
        "the malformed record is logged"
    );
}

/// A job failing transiently is reported in `batchItemFailures` and comes back after its
/// backoff; one that keeps failing gives up with a message in Discord, and the queue
/// ends empty. Work cut off by the invocation's end goes back to the queue without
/// using up an attempt.
#[tokio::test]
async fn lambda_job_retries_through_batch_item_failures_and_gives_up() {
    let mut world = World::new().await;
    // Backoffs of 0.2 s, 0.4 s, 0.8 s, 1.6 s (visibility rounds them up to whole
    // seconds): the same policy, shorter, so the retries come back within the test.
    world
        .vars
        .insert("VALINE_JOB_BACKOFF_MS".into(), "200".into());
    let lambda = Lambda::start(&world.vars).await;

    // Fails once, then succeeds on redelivery.
    let deferred = lambda
        .runtime
        .invoke(signed_interaction(
            &command("status", json!([]), "42", &[], "blip-lambda"),
            false,
        ))
        .await
        .response();
    assert_eq!(
        http_answer(&deferred).1,
        json!({"type": 5}),
        "{:#?}",
        lambda.lines.lock().unwrap()
    );
    // The command runs; its reply's delivery fails, so the delivery becomes a job.
    let command_job = world.one_message().await;
    let failures = world
        .deliver(&lambda, &[command_job], Duration::from_secs(60))
        .await;
    assert!(failures.is_empty(), "{failures:?}");
    let delivery_job = world.one_message().await;
    let failures = world
        .deliver(
            &lambda,
            std::slice::from_ref(&delivery_job),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(
        failures,
        vec![delivery_job["messageId"].as_str().unwrap().to_owned()]
    );
    // Hidden until its backoff ends: not handed out again at once.
    assert!(world.receive(Duration::ZERO).await.is_empty());
    let again = world.one_message().await;
    assert_eq!(again["messageId"], delivery_job["messageId"]);
    let failures = world
        .deliver(&lambda, &[again], Duration::from_secs(60))
        .await;
    assert!(failures.is_empty(), "{failures:?}");
    let edits = world.discord.edits_of("blip-lambda");
    assert_eq!(
        edits.len(),
        9,
        "4 + 4 failed calls, then the delivery: {edits:?}"
    );
    assert!(
        edits
            .last()
            .unwrap()
            .to_string()
            .contains("Deploy runs on main"),
        "{edits:?}"
    );

    // Keeps failing: five attempts, then the give-up message.
    lambda
        .runtime
        .invoke(signed_interaction(
            &command("status", json!([]), "42", &[], "down-lambda"),
            false,
        ))
        .await
        .response();
    let command_job = world.one_message().await;
    assert!(
        world
            .deliver(&lambda, &[command_job], Duration::from_secs(60))
            .await
            .is_empty()
    );
    let mut message = world.one_message().await;
    // First, an invocation too short for the attempt: given back, not counted.
    let failures = world
        .deliver(
            &lambda,
            std::slice::from_ref(&message),
            Duration::from_millis(400),
        )
        .await;
    assert_eq!(failures.len(), 1, "cut off by the invocation's end");
    message = world.one_message().await;
    for attempt in 1..=5 {
        let failures = world
            .deliver(
                &lambda,
                std::slice::from_ref(&message),
                Duration::from_secs(60),
            )
            .await;
        if attempt < 5 {
            assert_eq!(failures.len(), 1, "attempt {attempt}");
            message = world.one_message().await;
        } else {
            assert!(failures.is_empty(), "the give-up settles the job");
        }
    }
    let edits = world.discord.edits_of("down-lambda");
    let last = edits.last().unwrap().to_string();
    assert!(
        last.contains("Gave up delivering the reply after 5 attempts"),
        "{last}"
    );
    assert!(
        world.receive(Duration::from_secs(1)).await.is_empty(),
        "no loop"
    );

    // Each attempt of the delivery job wrote a completion line, an EMF record with the
    // `job` dimension: retries, then the give-up.
    let logs = lambda.logs();
    let attempts: Vec<&Value> = logs
        .iter()
        .filter(|l| l["job"] == "deliver_reply" && l["message"] == "job finished")
        .collect();
    assert!(
        attempts
            .iter()
            .any(|l| l["outcome"] == "retry" && l["error"] == 0),
        "{attempts:?}"
    );
    let gave_up = attempts
        .iter()
        .find(|l| l["outcome"] == "error")
        .expect("the give-up's completion line");
    assert_emf(gave_up, "job");
    assert_eq!(gave_up["error"], 1);
}

#[tokio::test]
async fn lambda_reports_an_invalid_configuration_as_an_init_error() {
    let world = World::new().await;

    // A local store cannot serve a function.
    let mut vars = world.vars.clone();
    vars.insert("VALINE_STORE".into(), "sqlite:/tmp/valine-lambda.db".into());
    let lambda = Lambda::start(&vars).await;
    let (kind, error) = lambda
        .runtime
        .init_error(Duration::from_secs(20))
        .await
        .expect("init error reported");
    assert!(kind.is_some_and(|k| k.starts_with("Runtime.")));
    let message = error["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains("VALINE_STORE"), "{message}");
    assert_eq!(lambda.exit_code().await, Some(2));

    // An `ssm:` parameter that does not exist: the variable and the parameter named.
    let parameter = format!(
        "/valine/test-{}/github-token",
        uuid::Uuid::new_v4().simple()
    );
    let message = world
        .init_error_with("GITHUB_TOKEN", &format!("ssm:{parameter}"))
        .await;
    assert!(message.contains(&parameter), "{message}");

    // A queue that does not exist.
    let missing_queue = world.queue_url.replace("valine-jobs-", "valine-missing-");
    let message = world
        .init_error_with("VALINE_QUEUE_URL", &missing_queue)
        .await;
    assert!(message.contains(&missing_queue), "{message}");

    // A value that does not parse.
    world.init_error_with("DISCORD_PUBLIC_KEY", "not-hex").await;
}

/// `serve` with `VALINE_QUEUE_URL` hands its jobs to SQS and consumes them from there.
#[tokio::test]
async fn serve_with_a_queue_url_runs_jobs_over_sqs() {
    let world = World::new().await;
    let mut vars = world.vars.clone();
    for var in [
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
    ] {
        vars.remove(var);
    }
    let server = Server::start(&vars).await;
    let body = command("status", json!([]), "42", &[], "tok-serve-sqs");
    let answer: Value = post_signed(&server.url("/discord/interactions"), &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer, json!({"type": 5}));
    let edit = world.discord.wait_for_edit("tok-serve-sqs").await;
    assert!(edit.to_string().contains("Deploy runs on main"), "{edit}");
    // Consumed and deleted: nothing left on the queue once the edit is done.
    eventually(Duration::from_secs(10), || async {
        let out = world
            .sqs
            .get_queue_attributes()
            .queue_url(&world.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        let attributes = out.attributes.unwrap_or_default();
        let count = |name: QueueAttributeName| {
            attributes
                .get(&name)
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        };
        (count(QueueAttributeName::ApproximateNumberOfMessages) == 0
            && count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible) == 0)
            .then_some(())
    })
    .await;
    let (code, lines) = server.stop().await;
    assert_eq!(code, 0, "{lines:?}");
}
