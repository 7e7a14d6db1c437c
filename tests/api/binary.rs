//! The `valine` binary as an operator runs it: `serve` logs, partial configuration, exit
//! codes, `invoke` and `register-commands`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::fakes::{FakeDiscord, FakeGitHub, run_json};
use crate::helpers::{
    BOT_TOKEN, GITHUB_TOKEN, WEBHOOK_SECRET, base_env, command, eventually, now_secs, sign,
};

const BIN: &str = env!("CARGO_BIN_EXE_valine");

struct Env {
    _github: FakeGitHub,
    discord: FakeDiscord,
    vars: HashMap<String, String>,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    let github = FakeGitHub::start().await;
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let vars = base_env(&github, &discord, &dir.path().join("valine.db"));
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
    github.add_run(run_json(
        3002,
        77,
        "main",
        "completed",
        Some("cancelled"),
        "2026-11-02T10:00:00Z",
        "2026-11-02T10:00:40Z",
    ));
    Env {
        _github: github,
        discord,
        vars,
        _dir: dir,
    }
}

pub(crate) fn valine(vars: &HashMap<String, String>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .envs(vars)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    cmd
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Collects the lines `child` writes on its (piped) stdout as they come; the reader
/// ends when the process closes it.
pub(crate) fn collect_stdout(
    child: &mut Child,
) -> (Arc<Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
    let stdout = child.stdout.take().expect("stdout is piped");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    (lines, reader)
}

/// A running `valine serve` whose stdout lines are collected. Dropped without `stop`
/// (a failed assertion), it kills the process so no server outlives its test.
pub(crate) struct Server {
    child: Option<Child>,
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Server {
    pub(crate) async fn start(vars: &HashMap<String, String>) -> Server {
        let port = free_port();
        let mut child = valine(vars)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (lines, reader) = collect_stdout(&mut child);
        let server = Server {
            child: Some(child),
            port,
            lines,
            reader: Some(reader),
        };
        let http = crate::helpers::http();
        eventually(Duration::from_secs(20), || async {
            http.get(server.url("/healthz"))
                .send()
                .await
                .ok()
                .filter(|r| r.status() == 200)
        })
        .await;
        server
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// SIGTERM, then wait for exit; returns the exit code and every stdout line.
    pub(crate) async fn stop(mut self) -> (i32, Vec<String>) {
        let mut child = self.child.take().unwrap();
        let reader = self.reader.take().unwrap();
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = tokio::task::spawn_blocking(move || {
            let status = child.wait().unwrap();
            // The pipe closed with the process: the reader ends once it has every line.
            reader.join().unwrap();
            status
        })
        .await
        .unwrap();
        let lines = self.lines.lock().unwrap().clone();
        (status.code().unwrap_or(-1), lines)
    }
}

pub(crate) async fn post_signed(url: &str, body: &Value) -> reqwest::Response {
    let raw = body.to_string();
    let ts = now_secs().to_string();
    crate::helpers::http()
        .post(url)
        .header("X-Signature-Ed25519", sign(&ts, raw.as_bytes()))
        .header("X-Signature-Timestamp", ts)
        .body(raw)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn serve_logs_one_flat_json_object_per_line_without_secrets() {
    let env = env().await;
    let server = Server::start(&env.vars).await;
    let token = "aW50ZXJhY3Rpb24tdG9rZW4tc2VjcmV0";
    let res = post_signed(
        &server.url("/discord/interactions"),
        &command("status", json!([]), "42", &[], token),
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"type": 5}));
    env.discord.wait_for_edit(token).await;
    // A rejected request and a webhook are logged too.
    let res = crate::helpers::http()
        .post(server.url("/discord/interactions"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let hook = json!({"zen": "Approachable is better than simple.", "hook_id": 1}).to_string();
    let res = crate::helpers::http()
        .post(server.url("/github/webhook"))
        .header("X-GitHub-Event", "ping")
        .header("X-GitHub-Delivery", "log-delivery-1")
        .header(
            "X-Hub-Signature-256",
            crate::helpers::github_signature(WEBHOOK_SECRET, hook.as_bytes()),
        )
        .body(hook)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let completion = eventually(Duration::from_secs(10), || async {
        let lines = server.lines.lock().unwrap().clone();
        lines
            .into_iter()
            .find(|l| l.contains("\"command finished\"") && l.contains("\"status\""))
    })
    .await;
    let (code, lines) = server.stop().await;
    assert_eq!(code, 0, "SIGTERM is a clean exit");

    for line in &lines {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for field in ["timestamp", "level", "message", "target", "stage"] {
            assert!(v.get(field).is_some(), "{field} missing: {line}");
        }
        assert!(
            v.get("fields").is_none() && v.get("span").is_none(),
            "nested: {line}"
        );
        assert!(["ERROR", "WARN", "INFO", "DEBUG"].contains(&v["level"].as_str().unwrap()));
        let ts = v["timestamp"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.ends_with('Z'),
            "{ts}"
        );
        assert_eq!(v["stage"], "test");
        for secret in [GITHUB_TOKEN, BOT_TOKEN, WEBHOOK_SECRET, token] {
            assert!(!line.contains(secret), "secret in log line: {line}");
        }
    }
    let done: Value = serde_json::from_str(&completion).unwrap();
    assert!(done["duration_ms"].is_u64(), "{done}");
    assert_eq!(done["outcome"], "ok");
    assert_eq!(done["command"], "status");
    assert_eq!(done["user_id"], "42");
    let trace_id = done["trace_id"].as_str().unwrap();
    assert_eq!(trace_id.len(), 32);
    // Every line inside that command carries its trace id, user and command.
    let in_command: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["trace_id"] == trace_id)
        .collect();
    assert!(
        in_command.len() >= 2,
        "the request and the job both log: {in_command:?}"
    );
    assert!(
        in_command
            .iter()
            .all(|v| v["user_id"] == "42" && v["command"] == "status")
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("github_status") && l.contains("github_endpoint")),
        "GitHub calls are logged"
    );
    let webhook: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["delivery_id"] == "log-delivery-1")
        .collect();
    assert_eq!(webhook.len(), 1, "one completion line: {webhook:?}");
    assert_eq!(webhook[0]["event"], "ping");
    assert_eq!(webhook[0]["outcome"], "ok");
    assert!(webhook[0]["duration_ms"].is_u64(), "{}", webhook[0]);
}

#[tokio::test]
async fn serve_starts_with_partial_configuration_and_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let vars: HashMap<String, String> = [
        (
            "VALINE_STORE".to_owned(),
            format!("sqlite:{}", dir.path().join("v.db").display()),
        ),
        ("STAGE".to_owned(), "test".to_owned()),
    ]
    .into();
    let server = Server::start(&vars).await;
    let http = crate::helpers::http();
    let res = http
        .post(server.url("/github/webhook"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"error": "GITHUB_WEBHOOK_SECRET is not configured"})
    );
    let res = http
        .post(server.url("/discord/interactions"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"error": "DISCORD_PUBLIC_KEY is not configured"})
    );
    // `valine healthcheck` (the container HEALTHCHECK) asks the same listener; an
    // unspecified address is asked on loopback, and nothing listening is a failure.
    let check = |listen: String| {
        let vars = vars.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                valine(&vars)
                    .args(["healthcheck", "--listen", &listen, "--timeout", "2s"])
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let healthy = check(format!("0.0.0.0:{}", server.port)).await;
    assert_eq!(healthy.status.code(), Some(0), "{healthy:?}");
    assert!(String::from_utf8_lossy(&healthy.stdout).contains("✅"));
    let closed = check(format!("127.0.0.1:{}", free_port())).await;
    assert_eq!(closed.status.code(), Some(1), "{closed:?}");
    assert!(String::from_utf8_lossy(&closed.stdout).contains("❌"));
    let (code, lines) = server.stop().await;
    assert_eq!(code, 0);
    let opened = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["message"] == "store opened")
        .unwrap_or_else(|| panic!("no store opened line: {lines:?}"));
    assert_eq!(
        opened["path"],
        dir.path().join("v.db").display().to_string()
    );
    for var in [
        "DISCORD_PUBLIC_KEY",
        "GITHUB_TOKEN",
        "GITHUB_WEBHOOK_SECRET",
        "GITHUB_REPO",
    ] {
        let warned = lines
            .iter()
            .filter(|l| l.contains("\"WARN\"") && l.contains(var))
            .count();
        assert_eq!(warned, 1, "one WARN for {var}");
    }
}

#[test]
fn bad_configuration_exits_2_naming_the_variable() {
    let vars: HashMap<String, String> =
        [("GITHUB_REPO".to_owned(), "not/a/repo".to_owned())].into();
    let out = valine(&vars).args(["serve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("GITHUB_REPO"));

    let out = valine(&HashMap::new())
        .args(["serve", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = valine(&HashMap::new()).args(["--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for sub in ["serve", "invoke", "register-commands", "audit"] {
        assert!(help.contains(sub), "{sub} in --help");
    }
}

#[tokio::test]
async fn invoke_prints_the_same_reply_in_the_terminal() {
    let env = env().await;
    let vars = env.vars.clone();
    let out = tokio::task::spawn_blocking(move || {
        valine(&vars)
            .args(["invoke", "/status count:2"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("== Deploy runs on main =="), "{stdout}");
    assert!(stdout.contains("🔴 cancelled"), "{stdout}");
    assert!(stdout.contains("🟢 success"), "{stdout}");
    assert!(stdout.contains("2m 15s"), "{stdout}");
    assert!(
        !env.discord.log.all().iter().any(|r| r.method == "PATCH"),
        "invoke edits nothing on Discord"
    );

    let vars = env.vars.clone();
    let out = tokio::task::spawn_blocking(move || {
        valine(&vars)
            .args(["invoke", "/status count:0", "--json"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "invalid input");
    let vars = env.vars.clone();
    let out = tokio::task::spawn_blocking(move || {
        valine(&vars)
            .args(["invoke", "/deploy-client"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "denied");
    assert!(String::from_utf8_lossy(&out.stdout).contains("⛔ /deploy-client: deployers only"));
}

#[tokio::test]
async fn register_commands_overwrites_once_and_reports_the_diff() {
    let env = env().await;
    *env.discord.commands.lock().unwrap() = vec![
        json!({"id": "1", "application_id": "4242", "version": "1", "type": 1, "name": "debug-last",
               "description": "Show your most recent command's trace", "options": []}),
        json!({"id": "2", "application_id": "4242", "version": "1", "type": 1, "name": "status",
               "description": "old text", "options": []}),
        json!({"id": "3", "application_id": "4242", "version": "1", "type": 1, "name": "retired",
               "description": "gone", "options": []}),
    ];
    let vars = env.vars.clone();
    let out = tokio::task::spawn_blocking(move || {
        valine(&vars).args(["register-commands"]).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("removed: retired"), "{stdout}");
    assert!(stdout.contains("changed: status"), "{stdout}");
    assert!(stdout.contains("unchanged: debug-last"), "{stdout}");
    assert!(stdout.contains("added: "), "{stdout}");
    let puts = env
        .discord
        .log
        .matching("PUT", "/applications/4242/commands");
    assert_eq!(puts.len(), 1);
    // The whole registry, the newest commands included.
    assert_eq!(
        puts[0].body.as_array().unwrap().len(),
        valine::commands::COMMANDS.len()
    );
    for name in ["block", "unblock", "rollback"] {
        assert!(
            puts[0]
                .body
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["name"] == name),
            "{name}"
        );
    }
    assert_eq!(
        puts[0].headers["authorization"],
        format!("Bot {BOT_TOKEN}").as_str()
    );

    // Now in sync: a dry run sends nothing and reports no change.
    let vars = env.vars.clone();
    let out = tokio::task::spawn_blocking(move || {
        valine(&vars)
            .args(["register-commands", "--dry-run", "--guild", "900"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        env.discord.log.matching("PUT", "/commands").len(),
        1,
        "dry run sends nothing"
    );
}

#[test]
fn init_prepares_a_sqlite_store_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.db");
    let vars: HashMap<String, String> = [(
        "VALINE_STORE".to_owned(),
        format!("sqlite:{}", path.display()),
    )]
    .into();
    let first = valine(&vars).arg("init").output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    let said = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(said.contains(&path.display().to_string()), "{said}");
    assert!(path.is_file());
    let again = valine(&vars).arg("init").output().unwrap();
    assert_eq!(again.status.code(), Some(0), "{again:?}");
    assert!(!String::from_utf8_lossy(&again.stdout).is_empty());
}

/// The binary reaches DynamoDB Local through the standard AWS variables, as an operator
/// points it at any endpoint.
#[cfg(feature = "conformance")]
pub(crate) fn dynamodb_vars(table: &str) -> HashMap<String, String> {
    let local = valine::store::dynamodb_local::DynamoDbLocal::shared();
    [
        ("VALINE_STORE", format!("dynamodb:{table}")),
        ("AWS_ENDPOINT_URL_DYNAMODB", local.endpoint().to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        // DynamoDB Local takes any credentials with an alphanumeric access key.
        ("AWS_ACCESS_KEY_ID", "valinetest".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "valinetest".to_owned()),
        ("HOME", std::env::temp_dir().display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[cfg(feature = "conformance")]
#[test]
fn serve_on_a_missing_table_exits_2_and_init_creates_it_once() {
    let table = valine::store::dynamodb_local::DynamoDbLocal::unique_table("valine-init");
    let vars = dynamodb_vars(&table);
    let mut serve_vars = vars.clone();
    serve_vars.insert("VALINE_LISTEN".into(), format!("127.0.0.1:{}", free_port()));
    let refused = valine(&serve_vars).arg("serve").output().unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("valine init") && stderr.contains(&table),
        "{stderr}"
    );

    let created = valine(&vars).arg("init").output().unwrap();
    assert_eq!(created.status.code(), Some(0), "{created:?}");
    let first = String::from_utf8_lossy(&created.stdout).to_string();
    assert!(
        first.contains(&table) && first.contains("created"),
        "{first}"
    );
    let found = valine(&vars).arg("init").output().unwrap();
    assert_eq!(found.status.code(), Some(0), "{found:?}");
    let second = String::from_utf8_lossy(&found.stdout).to_string();
    assert!(
        second.contains(&table) && !second.contains("created"),
        "{second}"
    );
}

/// Two `valine serve` processes on one DynamoDB table, as two hosts or Lambda instances
/// run: the per-user rate limit counts across both, and a job enqueued through one is
/// run (once) by one of them.
#[cfg(feature = "conformance")]
#[tokio::test]
async fn two_serve_processes_share_one_dynamodb_table() {
    let table = valine::store::dynamodb_local::DynamoDbLocal::unique_table("valine-two");
    let mut env = env().await;
    env.vars.extend(dynamodb_vars(&table));
    env.vars
        .insert("RATE_LIMIT_PER_MINUTE".into(), "3".to_owned());
    let init = valine(&env.vars).arg("init").output().unwrap();
    assert_eq!(init.status.code(), Some(0), "{init:?}");
    let (a, b) = (
        Server::start(&env.vars).await,
        Server::start(&env.vars).await,
    );

    // Three commands in the window, spread over both processes, then a fourth refused.
    eventually(Duration::from_secs(15), || async {
        (now_secs() % 60 < 45).then_some(())
    })
    .await;
    let mut answers = Vec::new();
    for (i, server) in [&a, &b, &a, &b].into_iter().enumerate() {
        let body = command("status", json!([]), "42", &[], &format!("tok-two-{i}"));
        let res = post_signed(&server.url("/discord/interactions"), &body).await;
        answers.push(res.json::<Value>().await.unwrap());
    }
    for answer in &answers[..3] {
        assert_eq!(answer, &json!({"type": 5}), "{answers:?}");
    }
    let refused = answers[3]["data"]["content"].as_str().unwrap_or_default();
    assert!(refused.starts_with("⏳ Rate limited"), "{answers:?}");

    // Each deferred /status is run by exactly one of the two workers: one edit each.
    for i in 0..3 {
        let token = format!("tok-two-{i}");
        env.discord.wait_for_edit(&token).await;
    }
    eventually(Duration::from_secs(10), || async {
        (0..3)
            .all(|i| env.discord.edits_of(&format!("tok-two-{i}")).len() == 1)
            .then_some(())
    })
    .await;
    let (code_a, _) = a.stop().await;
    let (code_b, _) = b.stop().await;
    assert_eq!((code_a, code_b), (0, 0));
    for i in 0..3 {
        assert_eq!(env.discord.edits_of(&format!("tok-two-{i}")).len(), 1);
    }
}

/// The binary reaches moto's SSM through the standard AWS variables, with a SQLite store.
#[cfg(feature = "conformance")]
fn ssm_vars(dir: &std::path::Path, bot_token: &str) -> HashMap<String, String> {
    let moto = valine::store::dynamodb_local::DynamoDbLocal::moto();
    [
        ("STAGE", "test".to_owned()),
        (
            "VALINE_STORE",
            format!("sqlite:{}", dir.join("v.db").display()),
        ),
        ("DISCORD_BOT_TOKEN", bot_token.to_owned()),
        ("AWS_ENDPOINT_URL_SSM", moto.endpoint().to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "valinetest".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "valinetest".to_owned()),
        ("HOME", std::env::temp_dir().display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[cfg(feature = "conformance")]
#[tokio::test]
async fn serve_reads_ssm_values_and_a_missing_parameter_exits_2_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let parameter = format!("/valine/test/bot-{}", uuid::Uuid::new_v4().simple());

    // Not there yet: exit 2 naming the variable and the parameter.
    let mut vars = ssm_vars(dir.path(), &format!("ssm:{parameter}"));
    vars.insert("VALINE_LISTEN".into(), format!("127.0.0.1:{}", free_port()));
    let refused = valine(&vars).arg("serve").output().unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("DISCORD_BOT_TOKEN") && stderr.contains(&parameter),
        "{stderr}"
    );

    // Put as a SecureString: `serve` starts, and the value never shows.
    let secret = format!("valine-ssm-bot-secret-{}", uuid::Uuid::new_v4().simple());
    let moto = valine::store::dynamodb_local::DynamoDbLocal::moto();
    let client = aws_sdk_ssm::Client::new(&valine::store::dynamodb_local::sdk_config_for(
        moto.endpoint(),
    ));
    client
        .put_parameter()
        .name(&parameter)
        .value(&secret)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    // `valine config` says where the value came from, never what it is.
    let shown = valine(&ssm_vars(dir.path(), &format!("ssm:{parameter}")))
        .args(["config", "--json"])
        .output()
        .unwrap();
    assert_eq!(shown.status.code(), Some(0), "{shown:?}");
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(!shown.contains(&secret), "{shown}");
    let token: Value = shown
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["variable"] == "DISCORD_BOT_TOKEN")
        .unwrap();
    assert_eq!(
        token,
        json!({"variable": "DISCORD_BOT_TOKEN", "value": "(set)", "source": "ssm",
               "secret": true, "parameter": parameter})
    );
    let server = Server::start(&ssm_vars(dir.path(), &format!("ssm:{parameter}"))).await;
    let (code, lines) = server.stop().await;
    assert_eq!(code, 0);
    assert!(
        lines.iter().any(|l| l.contains("valine serving")),
        "{lines:?}"
    );
    // The token is set: no warning that it is missing.
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("\"WARN\"") && l.contains("DISCORD_BOT_TOKEN")),
        "{lines:?}"
    );
    for line in &lines {
        assert!(!line.contains(&secret), "secret in log line: {line}");
    }
}
