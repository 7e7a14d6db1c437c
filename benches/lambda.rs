//! Lambda-style timings of the real release binary under the Runtime API double
//! (`tests/api/runtime_api.rs`), with DynamoDB Local for the store and moto for SQS and
//! SSM, all on 127.0.0.1:
//! - cold start: process start → first event (a signed PING) answered, with the
//!   configuration read and one `ssm:` value resolved at init;
//! - warm, per event: a signed PING, and a signed `/status` acknowledgement (rate-limit
//!   count, job record and the SQS send included);
//! - the size of the binary (what cargo-lambda ships as `bootstrap`).
//!
//! Run: `cargo bench --features conformance --bench lambda`. moto is a Python server and
//! DynamoDB Local a Java one: the warm `/status` figure is dominated by them, not by
//! Valine; the PING figure has no AWS call.

#[path = "../tests/api/runtime_api.rs"]
#[allow(dead_code)]
mod runtime_api;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};

use runtime_api::RuntimeApi;
use valine::store::dynamodb_local::DynamoDbLocal;

const BIN: &str = env!("CARGO_BIN_EXE_valine");
const COLD_STARTS: usize = 15;
const WARM_EVENTS: usize = 300;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn signed_event(body: &Value) -> Value {
    let raw = body.to_string();
    let ts = chrono::Utc::now().timestamp().to_string();
    let mut message = ts.as_bytes().to_vec();
    message.extend_from_slice(raw.as_bytes());
    let signature = hex::encode(key().sign(&message).to_bytes());
    json!({
        "version": "2.0",
        "routeKey": "POST /discord/interactions",
        "rawPath": "/discord/interactions",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "x-signature-ed25519": signature,
            "x-signature-timestamp": ts,
        },
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "bench.example",
            "domainPrefix": "bench", "requestId": "r", "routeKey": "POST /discord/interactions",
            "stage": "$default", "time": "30/Nov/2026:15:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "POST", "path": "/discord/interactions", "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "bench"}
        },
        "body": raw,
        "isBase64Encoded": false
    })
}

fn ping() -> Value {
    signed_event(
        &json!({"id": "1", "application_id": "4242", "type": 1, "token": "t", "version": 1}),
    )
}

fn status() -> Value {
    signed_event(&json!({
        "id": "1", "application_id": "4242", "type": 2, "token": "tok-bench", "version": 1,
        "guild_id": "900", "channel_id": "901",
        "member": {"user": {"id": "42", "username": "bench"}, "roles": []},
        "data": {"id": "2", "name": "status", "type": 1, "options": []}
    }))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<42} median {:>8.2} ms   p90 {:>8.2} ms   min {:>8.2} ms   (n={})",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.9).as_secs_f64() * 1e3,
        samples[0].as_secs_f64() * 1e3,
        samples.len()
    );
}

struct Function(Child);

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(vars: &HashMap<String, String>, runtime: &RuntimeApi) -> Function {
    Function(
        Command::new(BIN)
            .env_clear()
            .envs(vars)
            .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the valine binary starts"),
    )
}

async fn environment() -> HashMap<String, String> {
    let local = DynamoDbLocal::shared();
    let moto = DynamoDbLocal::moto();
    let table = DynamoDbLocal::unique_table("valine-bench-lambda");
    let mut vars: HashMap<String, String> = [
        ("STAGE", "bench".to_owned()),
        (
            "DISCORD_PUBLIC_KEY",
            hex::encode(key().verifying_key().as_bytes()),
        ),
        ("DISCORD_APPLICATION_ID", "4242".to_owned()),
        ("DISCORD_API_BASE", "http://127.0.0.1:9/api/v10".to_owned()),
        ("GITHUB_REPO", "octo-org/octo-repo".to_owned()),
        ("GITHUB_API_BASE", "http://127.0.0.1:9".to_owned()),
        ("RATE_LIMIT_PER_MINUTE", "1000000".to_owned()),
        ("VALINE_STORE", format!("dynamodb:{table}")),
        ("VALINE_LOG", "warn".to_owned()),
        ("AWS_ENDPOINT_URL_DYNAMODB", local.endpoint().to_owned()),
        ("AWS_ENDPOINT_URL_SQS", moto.endpoint().to_owned()),
        ("AWS_ENDPOINT_URL_SSM", moto.endpoint().to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "valinetest".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "valinetest".to_owned()),
        ("HOME", std::env::temp_dir().display().to_string()),
        (
            "AWS_LAMBDA_FUNCTION_NAME",
            "valine-orchestrator-discord-bench".to_owned(),
        ),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();

    let init = Command::new(BIN)
        .arg("init")
        .env_clear()
        .envs(&vars)
        .output()
        .expect("valine init runs");
    assert!(init.status.success(), "valine init: {init:?}");

    let config = valine::store::dynamodb_local::sdk_config_for(moto.endpoint());
    let queue = aws_sdk_sqs::Client::new(&config)
        .create_queue()
        .queue_name(format!("valine-bench-{}", uuid::Uuid::new_v4().simple()))
        .send()
        .await
        .expect("moto creates the queue")
        .queue_url
        .expect("a queue URL");
    vars.insert("VALINE_QUEUE_URL".into(), queue);
    let parameter = format!(
        "/valine/bench-{}/github-token",
        uuid::Uuid::new_v4().simple()
    );
    aws_sdk_ssm::Client::new(&config)
        .put_parameter()
        .name(&parameter)
        .value("ghp_benchtoken")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("moto stores the parameter");
    vars.insert("GITHUB_TOKEN".into(), format!("ssm:{parameter}"));
    vars
}

async fn answered(runtime: &RuntimeApi, event: Value) -> Duration {
    let started = Instant::now();
    let answer = runtime.invoke(event).await.response();
    assert_eq!(answer["statusCode"], 200, "{answer}");
    started.elapsed()
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(async {
        let vars = environment().await;
        let size = std::fs::metadata(BIN).map(|m| m.len()).unwrap_or(0);
        println!("binary {BIN}: {:.1} MB", size as f64 / (1024.0 * 1024.0));

        let mut cold = Vec::new();
        for _ in 0..COLD_STARTS {
            let runtime = RuntimeApi::start().await;
            let started = Instant::now();
            let _function = start(&vars, &runtime);
            let answer = runtime.invoke(ping()).await.response();
            assert_eq!(answer["statusCode"], 200, "{answer}");
            cold.push(started.elapsed());
        }
        report("cold start → first PING answered", cold);

        let runtime = RuntimeApi::start().await;
        let _function = start(&vars, &runtime);
        answered(&runtime, ping()).await;
        let mut pings = Vec::new();
        for _ in 0..WARM_EVENTS {
            pings.push(answered(&runtime, ping()).await);
        }
        report("warm signed PING (through the Runtime API)", pings);
        let mut statuses = Vec::new();
        for _ in 0..WARM_EVENTS {
            statuses.push(answered(&runtime, status()).await);
        }
        report("warm /status ack (store + SQS send)", statuses);
    });
}
