//! Deployment verification end to end: `/verify-run`, `/verify-latest`, their buttons,
//! `/diagnose` and `/status-digest`, against fake GitHub and Discord APIs and a fake
//! frontend and API on loopback whose answers each test sets.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fakes::{FakeSite, Page, healthy_sites, job_json, page, run_json};
use crate::helpers::{APPLICATION_ID, GITHUB_TOKEN, Options, TestApp, command, spawn_app_with};
use valine::probe::Prober;
use valine::probe::target::TargetPolicy;

fn iso(offset_secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(offset_secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn spawn(frontend: &FakeSite, api: &FakeSite, extra: Vec<(&'static str, String)>) -> TestApp {
    let mut env = vec![
        ("SAFE_LOCAL", "true".to_owned()),
        ("FRONTEND_BASE_URL", frontend.url()),
        ("VITE_API_BASE", api.url()),
        ("DEPLOYER_USER_IDS", "7".to_owned()),
    ];
    env.extend(extra);
    let app = spawn_app_with(Options {
        env,
        ..Default::default()
    })
    .await;
    app.github
        .add_workflow(77, "Client deploy", "client-deploy.yml");
    app
}

const DEPLOY_STEPS: [(&str, &str, i64); 4] = [
    ("Checkout", "success", 2),
    ("npm run build", "success", 65),
    ("Sync to S3", "success", 20),
    ("Invalidate CloudFront", "success", 4),
];

fn add_run(app: &TestApp, id: u64, status: &str, conclusion: Option<&str>, age_secs: i64) {
    app.github.add_run(run_json(
        id,
        77,
        "main",
        status,
        conclusion,
        &iso(-age_secs),
        &iso(-age_secs + 90),
    ));
}

fn add_jobs(app: &TestApp, run_id: u64, jobs: Vec<Value>) {
    app.github.state.lock().unwrap().jobs.insert(run_id, jobs);
}

async fn slash(app: &TestApp, name: &str, options: Value, user: &str, token: &str) -> Value {
    let res = app
        .post_interaction(&command(name, options, user, &[], token))
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Runs a deferred command and returns the edit of its original response.
async fn deferred(app: &TestApp, name: &str, options: Value, token: &str) -> Value {
    let answer = slash(app, name, options, "42", token).await;
    assert_eq!(answer, json!({"type": 5}), "public deferred answer");
    app.discord.wait_for_edit(token).await
}

fn field<'a>(embed: &'a Value, starts_with: &str) -> &'a str {
    embed["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"].as_str().unwrap().starts_with(starts_with))
        .unwrap_or_else(|| panic!("no field {starts_with}: {embed:#}"))["value"]
        .as_str()
        .unwrap()
}

fn buttons(edit: &Value) -> Vec<(String, String)> {
    edit["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().unwrap().clone())
        .map(|b| {
            let target = b["custom_id"]
                .as_str()
                .or(b["url"].as_str())
                .unwrap()
                .to_owned();
            (b["label"].as_str().unwrap().to_owned(), target)
        })
        .collect()
}

fn run_id(id: &str) -> Value {
    json!([{"name": "run_id", "type": 3, "value": id}])
}

#[tokio::test]
async fn a_passing_verification_reports_every_check() {
    let (frontend, api) = healthy_sites().await;
    let app = spawn(&frontend, &api, vec![]).await;
    add_run(&app, 1001, "completed", Some("success"), 600);
    add_jobs(
        &app,
        1001,
        vec![job_json(5001, 1001, "deploy", "success", &DEPLOY_STEPS)],
    );

    let edit = deferred(&app, "verify-run", run_id("1001"), "tok-pass").await;
    assert_eq!(edit["allowed_mentions"], json!({"parse": []}));
    let embed = &edit["embeds"][0];
    assert_eq!(embed["title"], "✅ Deploy verified");
    assert_eq!(embed["color"], 0x2ECC71);
    let actions = field(embed, "Actions");
    assert!(actions.starts_with("✅ success"), "{actions}");
    assert!(actions.contains("Build: 1m 5s"), "{actions}");
    assert!(actions.contains("Upload: 20s"), "{actions}");
    assert!(actions.contains("Cache invalidation: 4s"), "{actions}");
    let front = field(embed, "Frontend");
    assert!(front.contains("✅ `/` 200 ·"), "{front}");
    assert!(front.contains("✅ `/index.html` 200 ·"), "{front}");
    assert!(front.contains(" ms"), "{front}");
    assert!(
        front.contains("Cache-Control (`/index.html`): `no-cache, max-age=0`"),
        "{front}"
    );
    let api_text = field(embed, "API");
    assert!(api_text.contains("✅ `/health` 200") && api_text.contains("✅ `/hello` 200"));
    assert!(
        !embed["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "Suggested fixes")
    );
    let footer = embed["footer"]["text"].as_str().unwrap();
    assert!(footer.starts_with("Run 1001 • trace "), "{footer}");
    assert_eq!(footer.len(), "Run 1001 • trace ".len() + 8);
    assert_eq!(
        buttons(&edit),
        vec![
            ("Re-verify".to_owned(), "valine:reverify:1001".to_owned()),
            (
                "View run".to_owned(),
                "https://github.com/octo-org/octo-repo/actions/runs/1001".to_owned()
            ),
        ]
    );
    assert_eq!(frontend.hits(), 2);
    assert_eq!(api.hits(), 2);
}

#[tokio::test]
async fn each_failure_category_suggests_its_fix() {
    let (frontend, api) = healthy_sites().await;
    let app = spawn(&frontend, &api, vec![]).await;

    // The workflow failed: the failing job and step, and a re-run button.
    add_run(&app, 2001, "completed", Some("failure"), 600);
    add_jobs(
        &app,
        2001,
        vec![job_json(
            6001,
            2001,
            "deploy",
            "failure",
            &[
                ("npm run build", "success", 30),
                ("Sync to S3", "failure", 3),
            ],
        )],
    );
    let edit = deferred(&app, "verify-run", run_id("2001"), "tok-wf").await;
    let embed = &edit["embeds"][0];
    assert_eq!(embed["title"], "❌ Deploy verification failed");
    assert_eq!(embed["color"], 0xE74C3C);
    assert!(field(embed, "Actions").contains("job **deploy**, step **Sync to S3**"));
    let fixes = field(embed, "Suggested fixes");
    assert!(fixes.contains("`deploy` at step `Sync to S3`"), "{fixes}");
    assert!(buttons(&edit).contains(&(
        "Re-run failed jobs".to_owned(),
        "valine:rerun-failed:2001".to_owned()
    )));

    // A successful run whose frontend answers 503: the deployment or the URL.
    add_run(&app, 2002, "completed", Some("success"), 500);
    frontend.set("/", page(503));
    let edit = deferred(&app, "verify-run", run_id("2002"), "tok-front").await;
    let embed = &edit["embeds"][0];
    assert_eq!(embed["title"], "❌ Deploy verification failed");
    assert!(field(embed, "Frontend").contains("❌ `/` 503"));
    let fixes = field(embed, "Suggested fixes");
    assert!(fixes.contains("Frontend failing (503 on `/`)"), "{fixes}");
    assert!(
        fixes.contains("deployment") && fixes.contains("/set-frontend"),
        "{fixes}"
    );
    assert!(!fixes.contains("Workflow"), "the workflow passed: {fixes}");
    frontend.set("/", page(200));

    // The API fails: the backend.
    api.set("/health", page(500));
    let edit = deferred(&app, "verify-run", run_id("2002"), "tok-api").await;
    let fixes = field(&edit["embeds"][0], "Suggested fixes");
    assert!(fixes.contains("API failing (500 on `/health`)"), "{fixes}");
    assert!(fixes.contains("backend"), "{fixes}");
    api.set("/health", page(200));

    // Wrong URLs: a name that does not resolve, an API answering 404 everywhere.
    let app = spawn(
        &frontend,
        &api,
        vec![
            (
                "FRONTEND_BASE_URL",
                "http://no-such-host.invalid".to_owned(),
            ),
            ("VITE_API_BASE", format!("{}/wrong", api.url())),
        ],
    )
    .await;
    add_run(&app, 2003, "completed", Some("success"), 400);
    let edit = deferred(&app, "verify-run", run_id("2003"), "tok-url").await;
    let embed = &edit["embeds"][0];
    assert!(field(embed, "Frontend").contains("DNS lookup failed"));
    let fixes = field(embed, "Suggested fixes");
    assert!(
        fixes.contains("wrong URL") && fixes.contains("/set-frontend"),
        "{fixes}"
    );
    assert!(fixes.contains("/set-api-base"), "{fixes}");
}

#[tokio::test]
async fn a_target_not_configured_is_reported_not_a_crash() {
    let (frontend, api) = healthy_sites().await;
    let app = spawn(&frontend, &api, vec![("FRONTEND_BASE_URL", String::new())]).await;
    add_run(&app, 2101, "completed", Some("success"), 400);
    let edit = deferred(&app, "verify-run", run_id("2101"), "tok-unset").await;
    let embed = &edit["embeds"][0];
    assert_eq!(embed["title"], "✅ Deploy verified");
    assert!(field(embed, "Frontend").contains("not configured"));
}

#[tokio::test]
async fn verify_latest_says_a_run_is_in_progress_and_verifies_the_newest_completed() {
    let (frontend, api) = healthy_sites().await;
    let app = spawn(&frontend, &api, vec![]).await;
    add_run(&app, 3001, "completed", Some("success"), 3600);
    add_run(&app, 3002, "completed", Some("success"), 1200);
    add_run(&app, 3003, "in_progress", None, 60);

    let edit = deferred(&app, "verify-latest", json!([]), "tok-latest").await;
    let embed = &edit["embeds"][0];
    let description = embed["description"].as_str().unwrap();
    assert!(description.contains("run 3003"), "{description}");
    assert!(description.contains("still in_progress"), "{description}");
    assert!(
        description.contains("verifying the newest completed run, 3002"),
        "{description}"
    );
    assert!(
        embed["footer"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Run 3002 • trace ")
    );

    // A run URL picks that run instead; diagnose:true appends the findings.
    let edit = deferred(
        &app,
        "verify-latest",
        json!([
            {"name": "run_url", "type": 3, "value": "https://github.com/octo-org/octo-repo/actions/runs/3001"},
            {"name": "diagnose", "type": 5, "value": true}
        ]),
        "tok-url",
    )
    .await;
    let embeds = edit["embeds"].as_array().unwrap();
    assert_eq!(embeds.len(), 2, "{edit:#}");
    assert!(
        embeds[0]["footer"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Run 3001 ")
    );
    assert_eq!(embeds[1]["title"], "🩺 Diagnosis");
}

#[tokio::test]
async fn invalid_run_ids_are_refused_at_once_and_unknown_runs_said() {
    let (frontend, api) = healthy_sites().await;
    let app = spawn(&frontend, &api, vec![]).await;
    for (bad, token) in [
        ("abc", "tok-bad1"),
        ("https://github.com/octo-org/octo-repo/pull/3", "tok-bad2"),
        ("https://github.com/someone/else/actions/runs/5", "tok-bad3"),
    ] {
        let answer = slash(&app, "verify-run", run_id(bad), "42", token).await;
        assert_eq!(answer["type"], 4, "{bad}: immediate");
        assert_eq!(answer["data"]["flags"], 64, "{bad}: ephemeral");
        let content = answer["data"]["content"].as_str().unwrap();
        assert!(content.starts_with("❌ Invalid run id"), "{content}");
    }
    let answer = slash(
        &app,
        "verify-latest",
        json!([{"name": "run_url", "type": 3, "value": "nope"}]),
        "42",
        "tok-bad4",
    )
    .await;
    assert!(
        answer["data"]["content"]
            .as_str()
            .unwrap()
            .starts_with("❌ Invalid run id")
    );
    assert!(app.github.log.all().is_empty(), "GitHub was never called");

    let edit = deferred(&app, "verify-run", run_id("999"), "tok-missing").await;
    assert!(
        edit["content"]
            .as_str()
            .unwrap()
            .starts_with("❌ Run 999 not found"),
        "{edit}"
    );
}

fn press(custom_id: &str, user: &str, token: &str) -> Value {
    let mut press = command("verify-run", json!([]), user, &[], token);
    press["type"] = 3.into();
    press["data"] = json!({"custom_id": custom_id, "component_type": 2});
    press["message"] = json!({
        "id": "1300000000000000001", "channel_id": "901", "content": "", "embeds": [],
        "attachments": [], "components": [], "mentions": [], "mention_roles": [],
        "mention_everyone": false, "pinned": false, "tts": false, "type": 0,
        "timestamp": "2024-01-01T00:00:00.000000+00:00", "edited_timestamp": null, "flags": 0,
        "author": {"id": APPLICATION_ID, "username": "valine", "discriminator": "0"}
    });
    press
}

#[tokio::test]
async fn buttons_re_verify_and_re_run_failed_jobs() {
    let (frontend, api) = healthy_sites().await;
    let app = spawn(&frontend, &api, vec![]).await;
    add_run(&app, 4001, "completed", Some("failure"), 600);

    // Re-verify: a public deferred message, edited with a fresh report.
    let res = app
        .post_interaction(&press("valine:reverify:4001", "42", "tok-reverify"))
        .await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"type": 5}));
    let edit = app.discord.wait_for_edit("tok-reverify").await;
    assert_eq!(edit["embeds"][0]["title"], "❌ Deploy verification failed");
    assert!(
        edit["embeds"][0]["footer"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Run 4001 • trace ")
    );

    // Re-run failed jobs is for deployers, checked on every press.
    let body: Value = app
        .post_interaction(&press("valine:rerun-failed:4001", "42", "tok-rerun-no"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["type"], 4);
    assert_eq!(body["data"]["flags"], 64);
    assert_eq!(
        body["data"]["content"],
        "⛔ Re-run failed jobs: deployers only"
    );
    assert!(
        app.github
            .log
            .matching("POST", "rerun-failed-jobs")
            .is_empty()
    );

    let res = app
        .post_interaction(&press("valine:rerun-failed:4001", "7", "tok-rerun"))
        .await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"type": 5}));
    let edit = app.discord.wait_for_edit("tok-rerun").await;
    assert!(
        edit["content"]
            .as_str()
            .unwrap()
            .starts_with("🔁 Re-running the failed jobs of run 4001"),
        "{edit}"
    );
    let rerun = app
        .github
        .log
        .matching("POST", "/actions/runs/4001/rerun-failed-jobs");
    assert_eq!(rerun.len(), 1);
    let audit = app.app.store.list_audit(Some("7"), 0, 0).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "rerun-failed-jobs run 4001")
    );
}

#[tokio::test]
async fn probes_run_concurrently() {
    let frontend = FakeSite::start().await;
    let api = FakeSite::start().await;
    let slow = Page {
        delay: Duration::from_secs(1),
        ..page(200)
    };
    frontend.set("/a", slow.clone()).set("/b", slow.clone());
    api.set("/c", slow);
    let app = spawn(
        &frontend,
        &api,
        vec![
            ("VERIFY_FRONTEND_PATHS", "/a,/b".to_owned()),
            ("VERIFY_API_PATHS", "/c".to_owned()),
        ],
    )
    .await;
    add_run(&app, 5001, "completed", Some("success"), 600);
    let started = Instant::now();
    let edit = deferred(&app, "verify-run", run_id("5001"), "tok-fast").await;
    let took = started.elapsed();
    assert_eq!(edit["embeds"][0]["title"], "✅ Deploy verified");
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(
        took < Duration::from_millis(1800),
        "three 1 s probes took {took:?}: not concurrent"
    );
}

#[tokio::test]
async fn a_redirect_to_a_forbidden_address_is_refused_at_connect_time() {
    let forbidden = FakeSite::start_on("127.0.0.2").await;
    forbidden.set("/latest/meta-data", page(200));
    let (frontend, api) = healthy_sites().await;
    frontend.set(
        "/",
        Page {
            location: Some(format!(
                "http://metadata.test:{}/latest/meta-data",
                forbidden.addr.port()
            )),
            ..page(302)
        },
    );
    // Only 127.0.0.1 is allowed; `metadata.test` resolves to 127.0.0.2.
    let allowed: IpAddr = "127.0.0.1".parse().unwrap();
    let prober = Prober::builder(TargetPolicy {
        safe_local: true,
        allowed_domains: Vec::new(),
    })
    .address_policy(move |ip| ip == allowed)
    .host("metadata.test", vec!["127.0.0.2".parse().unwrap()])
    .host("*", vec![])
    .build()
    .unwrap();
    let app = spawn_app_with(Options {
        env: vec![
            ("SAFE_LOCAL", "true".to_owned()),
            ("FRONTEND_BASE_URL", frontend.url()),
            ("VITE_API_BASE", api.url()),
        ],
        prober: Some(prober),
        ..Default::default()
    })
    .await;
    app.github
        .add_workflow(77, "Client deploy", "client-deploy.yml");
    add_run(&app, 6001, "completed", Some("success"), 600);

    let edit = deferred(&app, "verify-run", run_id("6001"), "tok-ssrf").await;
    let embed = &edit["embeds"][0];
    assert_eq!(embed["title"], "❌ Deploy verification failed");
    let front = field(embed, "Frontend");
    assert!(
        front.contains("❌ `/` refused: metadata.test resolves to 127.0.0.2"),
        "{front}"
    );
    assert!(field(embed, "Suggested fixes").contains("/set-frontend"));
    assert_eq!(forbidden.hits(), 0, "nothing reached the forbidden address");
}

#[tokio::test]
async fn diagnose_reports_targets_token_scopes_and_the_last_failure() {
    let (frontend, api) = healthy_sites().await;
    let app = spawn(
        &frontend,
        &api,
        vec![
            ("DIAGNOSE_WORKFLOW", "diagnose.yml".to_owned()),
            ("DRY_RUN", "true".to_owned()),
        ],
    )
    .await;
    app.github.add_workflow(88, "Diagnose", "diagnose.yml");
    app.github.state.lock().unwrap().scopes = Some("repo, read:org".to_owned());
    add_run(&app, 7001, "completed", Some("failure"), 900);
    add_run(&app, 7002, "completed", Some("success"), 300);
    add_jobs(
        &app,
        7001,
        vec![job_json(
            8001,
            7001,
            "deploy",
            "failure",
            &[("npm run build", "failure", 12)],
        )],
    );
    let log = "2024-01-01T12:00:00.0000000Z ##[group]Run npm run build\n\
               2024-01-01T12:00:01.0000000Z token ghp_abcdefghijklmnopqrstuvwxyz0123456789 leaked\n\
               2024-01-01T12:00:02.0000000Z src/App.tsx(3,1): error TS2304\n\
               2024-01-01T12:00:03.0000000Z ##[error]Process completed with exit code 2.\n";
    app.github
        .state
        .lock()
        .unwrap()
        .logs
        .insert(8001, log.to_owned());

    let edit = deferred(&app, "diagnose", json!([]), "tok-diag").await;
    let embed = &edit["embeds"][0];
    assert_eq!(embed["title"], "🩺 Diagnosis");
    let front = field(embed, "Frontend");
    assert!(front.contains("✅ DNS: 127.0.0.1"), "{front}");
    assert!(front.contains("TLS: plain http"), "{front}");
    assert!(front.contains("(min/median/max)"), "{front}");
    assert!(front.contains("Cache-Control (`/index.html`)"), "{front}");
    let github = field(embed, "GitHub");
    assert!(github.contains("✅ token valid"), "{github}");
    assert!(github.contains("missing workflow"), "{github}");
    assert!(
        github.contains("rate limit: 4999/5000 remaining"),
        "{github}"
    );
    assert!(
        github.contains("deploy workflow `client-deploy.yml` found"),
        "{github}"
    );
    let runs = field(embed, "Deploy runs");
    assert!(runs.contains("latest completed: [run 7002]"), "{runs}");
    assert!(runs.contains("Last failure: [run 7001]"), "{runs}");
    assert!(
        runs.contains("job `deploy`, step `npm run build`"),
        "{runs}"
    );
    let tail = field(embed, "Log tail");
    assert!(tail.contains("error TS2304"), "{tail}");
    assert!(
        !tail.contains("ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
        "{tail}"
    );
    let dispatch = field(embed, "Diagnose workflow");
    assert!(dispatch.starts_with("🧪 dry run: would dispatch workflow 88 at main: `POST /repos/octo-org/octo-repo/actions/workflows/88/dispatches"), "{dispatch}");
    assert!(dispatch.contains("correlation id `vl-"), "{dispatch}");
    assert!(dispatch.contains("\"requester\":\"42\""), "{dispatch}");
    assert!(app.github.log.matching("POST", "/dispatches").is_empty());
    // The GitHub token itself never appears.
    assert!(!edit.to_string().contains(GITHUB_TOKEN));
}

#[tokio::test]
async fn diagnose_overrides_are_for_deployers_and_must_be_valid_targets() {
    let (frontend, api) = healthy_sites().await;
    let app = spawn(&frontend, &api, vec![]).await;
    let other = FakeSite::start().await;
    other.set("/", page(200)).set("/index.html", page(200));
    let options = json!([{"name": "frontend_url", "type": 3, "value": other.url()}]);

    let answer = slash(&app, "diagnose", options.clone(), "42", "tok-d1").await;
    assert_eq!(answer["type"], 4);
    assert_eq!(answer["data"]["flags"], 64);
    assert_eq!(answer["data"]["content"], "⛔ /diagnose: deployers only");

    let bad = json!([{"name": "api_base", "type": 3, "value": "ftp://x.example.com"}]);
    let answer = slash(&app, "diagnose", bad, "7", "tok-d2").await;
    assert_eq!(answer["type"], 4);
    let content = answer["data"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("❌ `api_base` cannot be checked"),
        "{content}"
    );

    let answer = slash(&app, "diagnose", options, "7", "tok-d3").await;
    assert_eq!(answer["type"], 5);
    let edit = app.discord.wait_for_edit("tok-d3").await;
    let title = edit["embeds"][0]["fields"][0]["name"].as_str().unwrap();
    assert_eq!(title, format!("Frontend · {}", other.url()));
    assert!(
        other.hits() >= 3,
        "three samples per endpoint on the override"
    );
    assert_eq!(frontend.hits(), 0, "the configured frontend was not probed");
}

#[tokio::test]
async fn status_digest_figures_on_a_known_set_of_runs() {
    let (frontend, api) = healthy_sites().await;
    api.set("/hello", page(500));
    let app = spawn(&frontend, &api, vec![]).await;
    // Durations 60, 90, 120, 150 s (success), 30 s (failure); one running; one older
    // than a day.
    let completed = [
        (9001, "success", 60),
        (9002, "success", 90),
        (9003, "failure", 30),
        (9004, "success", 120),
        (9005, "success", 150),
    ];
    for (i, (id, conclusion, secs)) in completed.iter().enumerate() {
        let start = -(7200 - 600 * i as i64);
        app.github.add_run(run_json(
            *id,
            77,
            "main",
            "completed",
            Some(conclusion),
            &iso(start),
            &iso(start + secs),
        ));
    }
    add_run(&app, 9006, "in_progress", None, 60);
    app.github.add_run(run_json(
        9000,
        77,
        "main",
        "completed",
        Some("failure"),
        &iso(-3 * 86_400),
        &iso(-3 * 86_400 + 45),
    ));

    let edit = deferred(&app, "status-digest", json!([]), "tok-digest").await;
    let embed = &edit["embeds"][0];
    assert_eq!(embed["title"], "Deploy digest · main · last 24h");
    let description = embed["description"].as_str().unwrap();
    assert!(
        description.contains("Runs: **6** (5 completed, 1 not finished)"),
        "{description}"
    );
    assert!(
        description.contains("Success rate: **80%** (4/5)"),
        "{description}"
    );
    // Nearest rank over [30, 60, 90, 120, 150]: p50 = 3rd, p95 = 5th.
    assert!(
        description.contains("p50 **1m 30s** · p95 **2m 30s**"),
        "{description}"
    );
    let failures = field(embed, "Failures");
    assert!(
        failures.contains("[run 9003](https://github.com/octo-org/octo-repo/actions/runs/9003)")
    );
    assert!(
        !failures.contains("9000"),
        "older than the period: {failures}"
    );
    let health = field(embed, "Health");
    assert!(health.starts_with("🟡 degraded"), "{health}");
    assert!(health.contains("API: 1/2 ok"), "{health}");

    let edit = deferred(
        &app,
        "status-digest",
        json!([{"name": "period", "type": 3, "value": "7d"}]),
        "tok-digest-7d",
    )
    .await;
    let description = edit["embeds"][0]["description"].as_str().unwrap();
    assert!(description.contains("Runs: **7**"), "{description}");
    assert!(description.contains("(4/6)"), "{description}");
}

#[tokio::test]
async fn invoke_exits_1_on_a_failed_verification_and_prints_the_report() {
    let (frontend, api) = healthy_sites().await;
    let app = spawn(&frontend, &api, vec![]).await;
    add_run(&app, 9101, "completed", Some("failure"), 600);
    let mut vars = crate::helpers::base_env(
        &app.github,
        &app.discord,
        &app.shared().dir.path().join("invoke.db"),
    );
    vars.insert("SAFE_LOCAL".into(), "true".into());
    vars.insert("FRONTEND_BASE_URL".into(), frontend.url());
    vars.insert("VITE_API_BASE".into(), api.url());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_valine"))
            .env_clear()
            .envs(&vars)
            .args(["invoke", "/verify-run run_id:9101"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("== ❌ Deploy verification failed =="),
        "{stdout}"
    );
    assert!(stdout.contains("Suggested fixes:"), "{stdout}");
    assert!(stdout.contains("[Re-run failed jobs]"), "{stdout}");
}

#[tokio::test]
async fn a_confirmed_set_frontend_is_what_the_next_verification_probes() {
    let (old_frontend, api) = healthy_sites().await;
    let (new_frontend, _) = healthy_sites().await;
    let app = spawn(
        &old_frontend,
        &api,
        vec![("ADMIN_USER_IDS", "42".to_owned())],
    )
    .await;
    add_run(&app, 9301, "completed", Some("success"), 600);
    add_jobs(
        &app,
        9301,
        vec![job_json(1, 9301, "deploy", "success", &DEPLOY_STEPS)],
    );

    let set = slash(
        &app,
        "set-frontend",
        json!([
            {"name": "url", "type": 3, "value": new_frontend.url()},
            {"name": "confirm", "type": 5, "value": true}
        ]),
        "42",
        "tok-set",
    )
    .await;
    let text = set["data"]["content"].as_str().unwrap();
    assert!(text.starts_with("✅ Updated FRONTEND_BASE_URL"), "{text}");

    let edit = deferred(&app, "verify-run", run_id("9301"), "tok-after-set").await;
    assert_eq!(edit["embeds"][0]["title"], "✅ Deploy verified");
    assert_eq!(new_frontend.hits(), 2, "the stored setting is probed");
    assert_eq!(old_frontend.hits(), 0, "the environment value is not");
}
