//! The operator's commands as an operator runs them: `valine doctor` against fake
//! Discord and GitHub APIs and fake sites, `valine smoke` against a running `valine
//! serve` and against broken endpoints, and `valine traces` / `valine cleanup` on both
//! store backends.

use std::collections::HashMap;
use std::process::Output;

use serde_json::{Value, json};

use crate::binary::{Server, free_port, valine};
use crate::fakes::{
    DEPLOY_WORKFLOW_YAML, DIAGNOSE_WORKFLOW_YAML, FakeDiscord, FakeGitHub, FakeSite, healthy_sites,
    hook_json, page,
};
use crate::helpers::{
    BOT_TOKEN, Backend, GITHUB_TOKEN, Options, WEBHOOK_SECRET, base_env, on_each_store,
    spawn_app_with,
};

use valine::store::{Outcome, TraceRecord};

/// A complete, healthy set-up: every check doctor makes has what it needs.
struct SetUp {
    github: FakeGitHub,
    discord: FakeDiscord,
    frontend: FakeSite,
    _api: FakeSite,
    dir: tempfile::TempDir,
    vars: HashMap<String, String>,
}

async fn healthy_set_up() -> SetUp {
    let github = FakeGitHub::start().await;
    let discord = FakeDiscord::start().await;
    let (frontend, api) = healthy_sites().await;
    let dir = tempfile::tempdir().unwrap();
    github.add_workflow(77, "Client deploy", "client-deploy.yml");
    github.add_workflow(78, "Diagnose", "diagnose.yml");
    github.add_file(".github/workflows/client-deploy.yml", DEPLOY_WORKFLOW_YAML);
    github.add_file(".github/workflows/diagnose.yml", DIAGNOSE_WORKFLOW_YAML);
    github.add_hook(hook_json(
        1,
        "https://valine.example.com/github/webhook",
        &["workflow_run", "workflow_job"],
        true,
    ));
    {
        let mut state = github.state.lock().unwrap();
        state.scopes = Some("repo, workflow".into());
        state.accepted_token = Some(GITHUB_TOKEN.into());
    }
    *discord.commands.lock().unwrap() = valine::commands::registration_set();
    let mut vars = base_env(&github, &discord, &dir.path().join("valine.db"));
    for (k, v) in [
        ("DISCORD_GUILD_ID", "900".to_owned()),
        ("DISCORD_STATUS_CHANNEL_ID", "901".to_owned()),
        ("DIAGNOSE_WORKFLOW", "diagnose.yml".to_owned()),
        ("SAFE_LOCAL", "true".to_owned()),
        ("FRONTEND_BASE_URL", frontend.url()),
        ("VITE_API_BASE", api.url()),
    ] {
        vars.insert(k.to_owned(), v);
    }
    let init = valine(&vars).arg("init").output().unwrap();
    assert_eq!(init.status.code(), Some(0), "{init:?}");
    SetUp {
        github,
        discord,
        frontend,
        _api: api,
        dir,
        vars,
    }
}

async fn run(vars: &HashMap<String, String>, args: &[&str]) -> Output {
    let mut command = valine(vars);
    command.args(args);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The line of check `name` (`✅ name: …`), failing the test when there is none.
fn line<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} line in:\n{text}"))
}

fn assert_no_secrets(output: &Output) {
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for secret in [GITHUB_TOKEN, BOT_TOKEN, WEBHOOK_SECRET] {
        assert!(!all.contains(secret), "a secret leaked:\n{all}");
    }
}

#[tokio::test]
async fn doctor_on_a_healthy_set_up_is_all_ok_and_changes_nothing() {
    let set_up = healthy_set_up().await;
    let db = set_up.dir.path().join("valine.db");
    let before = std::fs::read(&db).unwrap();

    let output = run(&set_up.vars, &["doctor"]).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}\n{output:?}");
    for name in [
        "config",
        "config.missing",
        "discord.public_key",
        "discord.bot_token",
        "discord.application",
        "discord.commands",
        "discord.status_channel",
        "github.token",
        "github.rate_limit",
        "github.repository",
        "github.scopes",
        "github.deploy_workflow",
        "github.diagnose_workflow",
        "github.webhook",
        "store",
        "targets.frontend",
        "targets.api",
    ] {
        assert!(line(&text, name).starts_with("✅"), "{name}:\n{text}");
    }
    assert!(text.lines().all(|l| l.starts_with("✅")), "{text}");
    assert!(line(&text, "github.deploy_workflow").contains("client-deploy.yml"));
    assert!(line(&text, "store").contains("reachable"));
    assert_no_secrets(&output);

    // Read-only: GitHub and Discord only saw GETs, the database file is as it was.
    assert!(
        set_up.github.writes().is_empty(),
        "{:?}",
        set_up.github.writes()
    );
    let discord_writes: Vec<String> = set_up
        .discord
        .log
        .all()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(discord_writes.is_empty(), "{discord_writes:?}");
    assert!(
        !set_up
            .github
            .log
            .matching("GET", "/contents/.github/workflows/client-deploy.yml")
            .is_empty(),
        "doctor reads the workflow file"
    );
    assert_eq!(std::fs::read(&db).unwrap(), before);

    // --json: one object per line with name, status, found and fix.
    let output = run(&set_up.vars, &["doctor", "--json"]).await;
    assert_eq!(output.status.code(), Some(0));
    let checks: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert!(checks.len() >= 17);
    for check in &checks {
        assert_eq!(check["status"], "ok", "{check}");
        assert!(check["name"].is_string() && check["found"].is_string());
        assert!(check.get("fix").is_some());
    }
}

#[tokio::test]
async fn doctor_reports_github_app_authentication() {
    let mut set_up = healthy_set_up().await;
    set_up.github.state.lock().unwrap().accepted_token = None;
    set_up.github.enable_app(12345, 4242);
    set_up.vars.remove("GITHUB_TOKEN");
    set_up.vars.insert("GITHUB_APP_ID".into(), "12345".into());
    set_up.vars.insert(
        "GITHUB_APP_PRIVATE_KEY".into(),
        crate::fakes::TEST_APP_PRIVATE_KEY.into(),
    );
    let output = run(&set_up.vars, &["doctor"]).await;
    let text = stdout(&output);
    let token = line(&text, "github.token");
    assert!(
        token.starts_with(
            "✅ github.token: GitHub App 12345, installation 4242 (found from GITHUB_REPO): \
             installation token obtained, valid until"
        ),
        "{text}"
    );
    assert!(line(&text, "github.repository").starts_with("✅"), "{text}");
    let all = format!("{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        !all.contains("ghs_fake") && !all.contains("PRIVATE KEY"),
        "{all}"
    );
    assert_no_secrets(&output);
}

#[tokio::test]
async fn doctor_names_each_set_up_mistake_with_its_fix() {
    let set_up = healthy_set_up().await;
    // A workflow without the inputs or run-name, no webhook to Valine, a command set
    // registered by an older version, a bot that cannot see the status channel, and a
    // frontend that answers 500.
    set_up.github.add_file(
        ".github/workflows/client-deploy.yml",
        "name: Client deploy\non:\n  workflow_dispatch:\n    inputs:\n      ref: {}\njobs: {}\n",
    );
    {
        let mut state = set_up.github.state.lock().unwrap();
        state.hooks = vec![hook_json(2, "https://ci.example.com/hook", &["push"], true)];
    }
    set_up.discord.commands.lock().unwrap().pop();
    set_up.discord.account.lock().unwrap().channels.clear();
    set_up.frontend.set("/", page(500));

    let output = run(&set_up.vars, &["doctor"]).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");

    let workflow = line(&text, "github.deploy_workflow");
    assert!(workflow.starts_with("❌"), "{workflow}");
    assert!(
        workflow.contains("lacks the inputs correlation_id, requester, VITE_API_BASE"),
        "{workflow}"
    );
    assert!(workflow.contains("run-name"), "{workflow}");
    assert!(workflow.contains("fix:"), "{workflow}");

    let webhook = line(&text, "github.webhook");
    assert!(
        webhook.starts_with("❌") && webhook.contains("/github/webhook"),
        "{webhook}"
    );

    let commands = line(&text, "discord.commands");
    assert!(commands.starts_with("❌"), "{commands}");
    assert!(commands.contains("valine register-commands"), "{commands}");

    let channel = line(&text, "discord.status_channel");
    assert!(
        channel.starts_with("❌") && channel.contains("Missing Access"),
        "{channel}"
    );
    assert!(channel.contains("Send Messages"), "{channel}");

    let frontend = line(&text, "targets.frontend");
    assert!(
        frontend.starts_with("❌") && frontend.contains("/ 500"),
        "{frontend}"
    );
    assert!(frontend.contains("/set-frontend"), "{frontend}");

    // What is right stays right.
    assert!(line(&text, "github.diagnose_workflow").starts_with("✅"));
    assert!(line(&text, "targets.api").starts_with("✅"));
    assert!(
        !text.contains("panicked") && !String::from_utf8_lossy(&output.stderr).contains("panicked")
    );
    assert_no_secrets(&output);
}

#[tokio::test]
async fn doctor_reports_refused_tokens_a_missing_workflow_and_an_unreachable_store() {
    let set_up = healthy_set_up().await;
    set_up.github.state.lock().unwrap().accepted_token = Some("ghp_another".into());
    set_up.discord.account.lock().unwrap().bot_token = "another-bot-token".into();
    let closed = free_port();
    let mut vars = set_up.vars.clone();
    for (k, v) in [
        (
            "VALINE_STORE",
            "dynamodb:valine-orchestrator-runs-test".to_owned(),
        ),
        (
            "AWS_ENDPOINT_URL_DYNAMODB",
            format!("http://127.0.0.1:{closed}"),
        ),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "valinetest".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "valinetest".to_owned()),
        ("HOME", std::env::temp_dir().display().to_string()),
    ] {
        vars.insert(k.to_owned(), v);
    }

    let output = run(&vars, &["doctor"]).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let github = line(&text, "github.token");
    assert!(
        github.starts_with("❌") && github.contains("regenerate GITHUB_TOKEN"),
        "{github}"
    );
    assert!(line(&text, "github.deploy_workflow").starts_with("⚠️"));
    let discord = line(&text, "discord.bot_token");
    assert!(
        discord.starts_with("❌") && discord.contains("401"),
        "{discord}"
    );
    assert!(discord.contains("Reset Token"), "{discord}");
    let store = line(&text, "store");
    assert!(store.starts_with("❌"), "{store}");
    assert!(store.contains("valine-orchestrator-runs-test"), "{store}");
    // The targets fall back to the environment's values and are still checked.
    assert!(line(&text, "targets.frontend").starts_with("✅"), "{text}");
    assert_no_secrets(&output);

    // A deploy workflow that does not exist, with a token that works again but may not
    // list webhooks.
    {
        let mut state = set_up.github.state.lock().unwrap();
        state.accepted_token = None;
        state.hooks_forbidden = true;
    }
    let mut vars = set_up.vars.clone();
    vars.insert("DEPLOY_WORKFLOW".into(), "nope.yml".into());
    let output = run(&vars, &["doctor"]).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let workflow = line(&text, "github.deploy_workflow");
    assert!(
        workflow.starts_with("❌") && workflow.contains("nope.yml not found"),
        "{workflow}"
    );
    assert!(workflow.contains(".github/workflows/"), "{workflow}");
    let webhook = line(&text, "github.webhook");
    assert!(
        webhook.starts_with("⚠️") && webhook.contains("may not list"),
        "{webhook}"
    );
    assert!(
        line(&text, "github.diagnose_workflow").starts_with("✅"),
        "{text}"
    );
}

#[tokio::test]
async fn doctor_with_an_invalid_variable_says_which_and_exits_1() {
    let set_up = healthy_set_up().await;
    let mut vars = set_up.vars.clone();
    vars.insert("DISCORD_PUBLIC_KEY".into(), "not-hex".into());
    let output = run(&vars, &["doctor", "--json"]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let check: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(check["name"], "config");
    assert_eq!(check["status"], "fail");
    assert!(
        check["found"]
            .as_str()
            .unwrap()
            .contains("DISCORD_PUBLIC_KEY")
    );
}

// ---------------------------------------------------------------------------------------
// smoke
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn smoke_passes_against_a_running_valine_serve() {
    let set_up = healthy_set_up().await;
    let server = Server::start(&set_up.vars).await;
    let output = run(&set_up.vars, &["smoke", &server.url(""), "--timeout", "5s"]).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}\n{output:?}");
    assert!(line(&text, "smoke.healthz").starts_with("✅"), "{text}");
    assert!(
        line(&text, "smoke.healthz").contains("stage test"),
        "{text}"
    );
    for name in [
        "smoke.unsigned_ping",
        "smoke.forged_ping",
        "smoke.forged_webhook",
    ] {
        let l = line(&text, name);
        assert!(l.starts_with("✅") && l.contains("401"), "{l}");
    }
    // Plain http: a warning, not a failure.
    assert!(line(&text, "smoke.certificate").starts_with("⚠️"), "{text}");
    let (code, _) = server.stop().await;
    assert_eq!(code, 0);
}

#[tokio::test]
async fn smoke_fails_on_a_deployment_that_accepts_forgeries_or_is_not_valine() {
    // Accepts everything: a deployment whose signature checks are off.
    let open = axum::Router::new().fallback(|| async { axum::Json(json!({"type": 1})) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, open).await });

    let vars = HashMap::new();
    let output = run(&vars, &["smoke", &open_url, "--json"]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let checks: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let forged = checks
        .iter()
        .find(|c| c["name"] == "smoke.forged_ping")
        .unwrap();
    assert_eq!(forged["status"], "fail");
    assert!(
        forged["found"].as_str().unwrap().contains("accepted"),
        "{forged}"
    );

    // A site that is not Valine: every path 404.
    let site = FakeSite::start().await;
    let output = run(&vars, &["smoke", &site.url()]).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        line(&text, "smoke.unsigned_ping").contains("not a Valine endpoint"),
        "{text}"
    );

    // Nothing answers in time.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let output = run(&vars, &["smoke", &silent_url, "--timeout", "1s"]).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        line(&text, "smoke.healthz").contains("no answer within 1 s"),
        "{text}"
    );
    drop(silent);

    let output = run(&vars, &["smoke", "ftp://example.com"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("http(s)"));
}

// ---------------------------------------------------------------------------------------
// traces and cleanup
// ---------------------------------------------------------------------------------------

const DAY_MS: i64 = 24 * 3600 * 1000;

fn trace(id: &str, user: &str, command: &str, started_at_ms: i64, expires_at: i64) -> TraceRecord {
    TraceRecord {
        id: id.into(),
        user_id: user.into(),
        command: command.into(),
        options: json!({"count": 2}).as_object().unwrap().clone(),
        started_at_ms,
        steps: vec![],
        duration_ms: Some(42),
        outcome: Some(Outcome::Error),
        error: Some("GitHub is unavailable".into()),
        links: vec![],
        expires_at,
    }
}

async fn traces_and_cleanup_work(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        ..Options::default()
    })
    .await;
    let store = app.app.store.clone();
    // Everything below looks at the store from 200 s ahead: the trace that has expired
    // by then is still live by the wall clock, so DynamoDB Local's own TTL sweep (the
    // test table has TTL on) cannot delete it before housekeeping is asked to.
    let written_ms = app.app.clock.now_ms();
    let now_ms = written_ms + 200_000;
    let now = now_ms / 1000;
    let live = now + 3600;
    for t in [
        trace(
            "aaaa1111000000000000000000000001",
            "42",
            "status",
            now_ms - 3000,
            live,
        ),
        trace(
            "aaaa1111000000000000000000000002",
            "43",
            "deploy-client",
            now_ms - 2000,
            live,
        ),
        trace(
            "bbbb2222000000000000000000000003",
            "42",
            "deploy-client",
            now_ms - 1000,
            live,
        ),
        trace(
            "cccc3333000000000000000000000004",
            "42",
            "status",
            now_ms - 2 * DAY_MS,
            live,
        ),
        trace(
            "dddd4444000000000000000000000005",
            "42",
            "status",
            now_ms - 500,
            written_ms / 1000 + 100,
        ),
    ] {
        store.put_trace(&t).await.unwrap();
    }
    let request = |id: Option<&str>, user: Option<&str>, command: Option<&str>, since: &str| {
        valine::ops::traces::Request::new(
            id.map(str::to_owned),
            user.map(str::to_owned),
            command.map(str::to_owned),
            valine::cli::parse_since(since).unwrap(),
            50,
        )
        .unwrap()
    };
    let list = |r| {
        let store = store.clone();
        async move {
            valine::ops::traces::run(store.as_ref(), &r, false, now_ms)
                .await
                .unwrap()
        }
    };
    let ids = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split_whitespace().next().unwrap().to_owned())
            .collect()
    };

    // Newest first, the expired one and those older than --since left out.
    let all = list(request(None, None, None, "24h")).await;
    assert_eq!(ids(&all), ["bbbb2222", "aaaa1111", "aaaa1111"], "{all}");
    assert!(
        all.contains("user 43  /deploy-client  error  42 ms"),
        "{all}"
    );
    let mine = list(request(None, Some("42"), Some("/status"), "7d")).await;
    assert_eq!(ids(&mine), ["aaaa1111", "cccc3333"], "{mine}");
    assert_eq!(
        list(request(None, Some("99"), None, "7d")).await,
        "No traces.\n"
    );

    // One trace whole by its first 8+ characters; an ambiguous prefix names the matches.
    let whole = list(request(Some("BBBB2222"), None, None, "24h")).await;
    assert!(
        whole.contains("bbbb2222000000000000000000000003"),
        "{whole}"
    );
    assert!(whole.contains("/deploy-client count:2"), "{whole}");
    assert!(whole.contains("Error: GitHub is unavailable") && whole.contains("User: 42"));
    let ambiguous = valine::ops::traces::run(
        store.as_ref(),
        &request(Some("aaaa1111"), None, None, "24h"),
        false,
        now_ms,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        ambiguous.contains("aaaa1111000000000000000000000001"),
        "{ambiguous}"
    );
    assert!(
        ambiguous.contains("aaaa1111000000000000000000000002"),
        "{ambiguous}"
    );
    let missing = valine::ops::traces::run(
        store.as_ref(),
        &request(Some("dddd4444"), None, None, "24h"),
        false,
        now_ms,
    )
    .await
    .unwrap_err();
    assert!(
        missing.to_string().contains("no trace dddd4444"),
        "{missing}"
    );

    // Cleanup: a dry run counts and keeps; the real one deletes the expired trace only.
    let dry = valine::ops::cleanup::run(store.as_ref(), true, now)
        .await
        .unwrap();
    assert!(dry.contains("would delete 1 traces"), "{dry}");
    let census = store.census(now).await.unwrap();
    assert_eq!(census.expired.total(), 1);
    let done = valine::ops::cleanup::run(store.as_ref(), false, now)
        .await
        .unwrap();
    assert!(done.contains("deleted 1 traces"), "{done}");
    assert!(
        done.ends_with("deleted 1 expired records in total\n"),
        "{done}"
    );
    assert!(
        store
            .get_trace("dddd4444000000000000000000000005", 0)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .census(now)
            .await
            .unwrap()
            .live
            .get(valine::store::RecordKind::Trace),
        4
    );
    let again = valine::ops::cleanup::run(store.as_ref(), false, now)
        .await
        .unwrap();
    assert_eq!(again, "deleted 0 expired records in total\n");
    app.stop().await;
}
on_each_store!(traces_and_cleanup_work);

/// An in-process Valine on the set-up's SQLite file, to write records the binary reads.
async fn app_on_the_same_store(set_up: &SetUp) -> crate::helpers::TestApp {
    spawn_app_with(Options {
        env: vec![(
            "VALINE_STORE",
            format!("sqlite:{}", set_up.dir.path().join("valine.db").display()),
        )],
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn traces_and_cleanup_from_the_command_line() {
    let set_up = healthy_set_up().await;
    let app = app_on_the_same_store(&set_up).await;
    let now_ms = app.app.clock.now_ms();
    app.app
        .store
        .put_trace(&trace(
            "0f0f0f0f000000000000000000000009",
            "42",
            "verify-run",
            now_ms - 1000,
            now_ms / 1000 + 3600,
        ))
        .await
        .unwrap();

    let output = run(&set_up.vars, &["traces", "--user", "42"]).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(stdout(&output).starts_with("0f0f0f0f  "), "{output:?}");
    let output = run(&set_up.vars, &["traces", "0f0f0f0f", "--json"]).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let whole: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(whole["id"], "0f0f0f0f000000000000000000000009");
    assert_eq!(whole["command"], "verify-run");

    let output = run(&set_up.vars, &["traces", "0f0f"]).await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 8"));
    let output = run(&set_up.vars, &["traces", "ffffffff"]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("no trace ffffffff"));

    let output = run(&set_up.vars, &["cleanup", "--dry-run"]).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(stdout(&output), "would delete 0 expired records in total\n");
    app.stop().await;
}

#[cfg(feature = "conformance")]
#[tokio::test]
async fn doctor_reads_a_dynamodb_store_without_writing_to_it() {
    use valine::store::dynamodb_local::DynamoDbLocal;

    let set_up = healthy_set_up().await;
    let table = DynamoDbLocal::unique_table("valine-doctor");
    let mut vars = set_up.vars.clone();
    vars.extend(crate::binary::dynamodb_vars(&table));

    let output = run(&vars, &["doctor"]).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let store = line(&text, "store");
    assert!(store.starts_with("❌") && store.contains(&table), "{store}");
    assert!(store.contains("valine init"), "{store}");

    let init = run(&vars, &["init"]).await;
    assert_eq!(init.status.code(), Some(0), "{init:?}");
    let output = run(&vars, &["doctor"]).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let store = line(&text, "store");
    assert!(store.starts_with("✅") && store.contains(&table), "{store}");
    assert!(store.contains("no records yet"), "{store}");
    // Not even the health heartbeat: doctor never writes to the store.
    let items = DynamoDbLocal::shared()
        .client()
        .scan()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .count();
    assert_eq!(items, 0);
}

#[tokio::test]
async fn traces_into_a_closed_pipe_end_quietly() {
    let set_up = healthy_set_up().await;
    let app = app_on_the_same_store(&set_up).await;
    let now_ms = app.app.clock.now_ms();
    // Far more than a pipe holds (64 KiB), so the writer meets the closed end.
    for i in 0..1000 {
        app.app
            .store
            .put_trace(&trace(
                &format!("{i:032x}"),
                "42",
                "status",
                now_ms - i,
                now_ms / 1000 + 3600,
            ))
            .await
            .unwrap();
    }
    let vars = set_up.vars.clone();
    let output = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut child = valine(&vars)
            .args(["traces", "--since", "1h", "--limit", "1000", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        // The reader is dropped here: the rest of the output meets a closed pipe.
        (first, child.wait_with_output().unwrap())
    })
    .await
    .unwrap();
    let (first, rest) = output;
    assert!(first.starts_with('{'), "{first}");
    let stderr = String::from_utf8_lossy(&rest.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(rest.status.code(), Some(0), "{stderr}");
    app.stop().await;
}

/// The jobs queue on moto with a dead-letter queue that holds a job that gave up.
#[cfg(feature = "conformance")]
#[tokio::test]
async fn doctor_fails_when_the_dead_letter_queue_holds_jobs() {
    use aws_sdk_sqs::types::QueueAttributeName;

    let moto = valine::store::dynamodb_local::DynamoDbLocal::moto()
        .endpoint()
        .to_owned();
    let sqs = aws_sdk_sqs::Client::new(&valine::store::dynamodb_local::sdk_config_for(&moto));
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("valine-jobs-dlq-{suffix}"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("valine-jobs-{suffix}"))
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}).to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    let set_up = healthy_set_up().await;
    let mut vars = set_up.vars.clone();
    for (k, v) in [
        ("VALINE_QUEUE_URL", queue_url),
        ("AWS_ENDPOINT_URL_SQS", moto),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "valinetest".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "valinetest".to_owned()),
        ("HOME", std::env::temp_dir().display().to_string()),
    ] {
        vars.insert(k.to_owned(), v);
    }
    let output = run(&vars, &["doctor"]).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let queue = line(&text, "store.queue");
    assert!(
        queue.starts_with("✅") && queue.contains("empty"),
        "{queue}"
    );

    sqs.send_message()
        .queue_url(&dlq_url)
        .message_body(r#"{"kind":"command"}"#)
        .send()
        .await
        .unwrap();
    let output = run(&vars, &["doctor"]).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let queue = line(&text, "store.queue");
    assert!(
        queue.starts_with("❌") && queue.contains("holds 1 messages"),
        "{queue}"
    );
    assert!(queue.contains("redrive"), "{queue}");
}
