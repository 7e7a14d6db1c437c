//! `/status` end to end (deferred answer, job, GitHub, edit through Discord) and
//! `/debug-last` after it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fakes::run_json;
use crate::helpers::{GITHUB_TOKEN, Options, TestApp, command, spawn_app, spawn_app_with};

fn iso(offset_secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(offset_secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn seed_runs(app: &TestApp) {
    app.github
        .add_workflow(77, "Client deploy", "client-deploy.yml");
    app.github.add_run(run_json(
        1001,
        77,
        "main",
        "completed",
        Some("success"),
        &iso(-3600),
        &iso(-3465),
    ));
    app.github.add_run(run_json(
        1002,
        77,
        "main",
        "completed",
        Some("failure"),
        &iso(-600),
        &iso(-540),
    ));
    app.github.add_run(run_json(
        1003,
        77,
        "main",
        "in_progress",
        None,
        &iso(-120),
        &iso(-60),
    ));
    app.github.add_run(run_json(
        1004,
        77,
        "feature",
        "completed",
        Some("success"),
        &iso(-30),
        &iso(-10),
    ));
}

#[tokio::test]
async fn status_defers_then_edits_the_original_with_the_runs() {
    let app = spawn_app().await;
    seed_runs(&app);

    let res = app
        .post_interaction(&command(
            "status",
            json!([{"name": "count", "type": 4, "value": 2}]),
            "42",
            &[],
            "tok-status",
        ))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"type": 5}));

    let edit = app.discord.wait_for_edit("tok-status").await;
    assert_eq!(edit["allowed_mentions"], json!({"parse": []}));
    let embed = &edit["embeds"][0];
    assert_eq!(embed["title"], "Deploy runs on main");
    let description = embed["description"].as_str().unwrap();
    let lines: Vec<&str> = description.lines().collect();
    assert_eq!(lines.len(), 2, "{description}");
    assert!(
        lines[0].starts_with("🟡 in_progress · 2m ago · running 2m"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("actions/runs/1003"));
    assert!(
        lines[1].starts_with("🔴 failure · 10m ago · 1m"),
        "{}",
        lines[1]
    );
    assert!(
        !description.contains("1004"),
        "other branches are not deploy runs"
    );
    let footer = embed["footer"]["text"].as_str().unwrap();
    assert!(footer.contains("test"), "{footer}");
    assert!(footer.contains(env!("CARGO_PKG_VERSION")));
    assert!(
        footer.contains("https://app.example.com (environment)"),
        "{footer}"
    );
    assert!(
        footer.contains("https://api.example.com (environment)"),
        "{footer}"
    );

    // The GitHub calls carried the headers every GitHub call must carry
    // (`docs/design.md#github-calls`) and asked for the deploy branch.
    let listing = app
        .github
        .log
        .matching("GET", "/actions/workflows/77/runs")
        .pop()
        .unwrap();
    assert!(listing.query.as_deref().unwrap().contains("branch=main"));
    let h = &listing.headers;
    assert_eq!(
        h["authorization"],
        format!("Bearer {GITHUB_TOKEN}").as_str()
    );
    assert_eq!(h["accept"], "application/vnd.github+json");
    assert_eq!(h["x-github-api-version"], "2022-11-28");
    assert_eq!(
        h["user-agent"],
        format!("valine/{}", env!("CARGO_PKG_VERSION")).as_str()
    );
}

#[tokio::test]
async fn status_without_runs_says_so_and_resolves_display_names() {
    let app = spawn_app_with(Options {
        env: vec![
            ("DEPLOY_WORKFLOW", "Client deploy".into()),
            ("DEPLOY_BRANCH", "release".into()),
        ],
        ..Default::default()
    })
    .await;
    seed_runs(&app);
    app.post_interaction(&command("status", json!([]), "42", &[], "tok-empty"))
        .await;
    let edit = app.discord.wait_for_edit("tok-empty").await;
    assert_eq!(
        edit["embeds"][0]["description"],
        "No deploy runs on release yet."
    );
}

#[tokio::test]
async fn a_github_failure_edits_the_message_with_the_cause_and_trace() {
    let app = spawn_app_with(Options {
        env: vec![("DEPLOY_WORKFLOW", "missing.yml".into())],
        ..Default::default()
    })
    .await;
    let res = app
        .post_interaction(&command("status", json!([]), "42", &[], "tok-fail"))
        .await;
    assert_eq!(res.status(), 200);
    let edit = app.discord.wait_for_edit("tok-fail").await;
    let content = edit["content"].as_str().unwrap();
    assert!(
        content.starts_with("❌ Workflow missing.yml not found in octo-org/octo-repo"),
        "{content}"
    );
    assert!(content.contains("(trace "), "{content}");

    // /debug-last shows that failed command with its failing step.
    let body: Value = app
        .post_interaction(&command("debug-last", json!([]), "42", &[], "tok-debug"))
        .await
        .json()
        .await
        .unwrap();
    let text = body["data"]["content"].as_str().unwrap();
    assert!(text.contains("Command: `/status`"), "{text}");
    assert!(text.contains("Outcome: error"), "{text}");
    assert!(text.contains("❌ github.resolve_workflow"), "{text}");
    let short = content
        .split("(trace ")
        .nth(1)
        .unwrap()
        .trim_end_matches(')');
    assert!(
        text.contains(short),
        "debug-last shows the trace the reply quoted"
    );
}

#[tokio::test]
async fn debug_last_shows_the_callers_last_status_trace() {
    let app = spawn_app().await;
    seed_runs(&app);

    let body: Value = app
        .post_interaction(&command("debug-last", json!([]), "42", &[], "tok-none"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["type"], 4);
    assert_eq!(body["data"]["flags"], 64);
    assert_eq!(body["data"]["content"], "No recent command found for you.");

    app.post_interaction(&command(
        "status",
        json!([{"name": "count", "type": 4, "value": 3}]),
        "42",
        &[],
        "tok-s",
    ))
    .await;
    app.discord.wait_for_edit("tok-s").await;

    // The job stores the finished trace after the edit; poll until it is complete.
    let text = crate::helpers::eventually(Duration::from_secs(10), || async {
        let body: Value = app
            .post_interaction(&command("debug-last", json!([]), "42", &[], "tok-d"))
            .await
            .json()
            .await
            .unwrap();
        let text = body["data"]["content"].as_str().unwrap().to_owned();
        text.contains("Outcome: ok").then_some(text)
    })
    .await;
    assert!(text.contains("Command: `/status count:3`"), "{text}");
    assert!(text.contains("✅ authorize"), "{text}");
    assert!(text.contains("✅ github.resolve_workflow"), "{text}");
    assert!(text.contains("✅ github.list_runs"), "{text}");
    assert!(
        text.contains("https://github.com/octo-org/octo-repo/actions/runs/1003"),
        "{text}"
    );
    assert!(!text.contains("debug-last"), "its own traces are skipped");

    // Another user's history is not shown.
    let body: Value = app
        .post_interaction(&command("debug-last", json!([]), "43", &[], "tok-other"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["content"], "No recent command found for you.");
}

/// Checks that `value` has every property `schema` requires, recursively through
/// objects and arrays (the part of the contract our fakes must honour).
pub(crate) fn assert_required(schema: &Value, value: &Value, at: &str) {
    if let Some(required) = schema["required"].as_array() {
        for key in required {
            let key = key.as_str().unwrap();
            assert!(
                value.get(key).is_some(),
                "{at}.{key} is required by the contract"
            );
        }
    }
    if let (Some(props), Some(obj)) = (schema["properties"].as_object(), value.as_object()) {
        for (key, sub) in props {
            if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
                assert_required(sub, v, &format!("{at}.{key}"));
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, v) in array.iter().enumerate() {
            assert_required(items, v, &format!("{at}[{i}]"));
        }
    }
}

#[tokio::test]
async fn the_fake_github_answers_in_the_contracts_shapes() {
    let app = spawn_app().await;
    seed_runs(&app);
    let http = crate::helpers::http();
    let base = app.github.url();
    let cases = [
        (
            "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs",
            "/repos/octo-org/octo-repo/actions/workflows/77/runs?branch=main",
        ),
        (
            "/repos/{owner}/{repo}/actions/workflows/{workflow_id}",
            "/repos/octo-org/octo-repo/actions/workflows/client-deploy.yml",
        ),
        (
            "/repos/{owner}/{repo}/actions/workflows",
            "/repos/octo-org/octo-repo/actions/workflows",
        ),
    ];
    for (template, path) in cases {
        let body: Value = http
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_required(&crate::fakes::contract_schema(template), &body, template);
    }
}

#[tokio::test]
async fn status_lists_diagnose_runs_in_a_section_of_their_own() {
    let app = spawn_app_with(Options {
        env: vec![("DIAGNOSE_WORKFLOW", "diagnose.yml".into())],
        ..Default::default()
    })
    .await;
    seed_runs(&app);
    app.github.add_workflow(88, "Diagnose", "diagnose.yml");
    app.github.add_run(run_json(
        5001,
        88,
        "main",
        "completed",
        Some("timed_out"),
        &iso(-7200),
        &iso(-7000),
    ));
    app.post_interaction(&command("status", json!([]), "42", &[], "tok-diag"))
        .await;
    let edit = app.discord.wait_for_edit("tok-diag").await;
    let field = &edit["embeds"][0]["fields"][0];
    assert_eq!(field["name"], "Diagnose runs (diagnose.yml)");
    let value = field["value"].as_str().unwrap();
    assert!(
        value.starts_with("🔴 timed_out · 2h ago · 3m 20s"),
        "{value}"
    );
    assert!(value.contains("actions/runs/5001"));
}
