//! What happens when a run completes, across the webhook, verification and the commands
//! that follow runs: `AUTO_VERIFY` posts the report with the announcement, one
//! verification per run attempt is shared with a `wait:true` follower, and a `/diagnose`
//! message gains the diagnose workflow's result.

use std::time::Duration;

use serde_json::{Value, json};

use valine::store::CorrelationKind;

use crate::fakes::{healthy_sites, job_json, run_json};
use crate::helpers::{APPLICATION_ID, Options, TestApp, eventually, spawn_app_with};
use crate::webhook::{deploy_run, follower, post, put, run_event};

const STATUS_CHANNEL: &str = "555000000000000002";
const WAIT: Duration = Duration::from_secs(20);

fn titles(message: &Value) -> Vec<String> {
    message["embeds"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| e["title"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn app_with_sites(frontend: String, api: String) -> TestApp {
    spawn_app_with(Options {
        env: vec![
            ("SAFE_LOCAL", "true".into()),
            ("AUTO_VERIFY", "true".into()),
            ("DISCORD_STATUS_CHANNEL_ID", STATUS_CHANNEL.into()),
            ("FRONTEND_BASE_URL", frontend),
            ("VITE_API_BASE", api),
        ],
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn a_completed_deploy_is_verified_once_for_the_announcement_and_the_follower() {
    let (frontend, api) = healthy_sites().await;
    let app = app_with_sites(frontend.url(), "https://unused.invalid".into()).await;
    app.github
        .add_workflow(77, "Client deploy", "client-deploy.yml");
    app.github
        .add_run(deploy_run(8100, "main", "completed", Some("success")));
    app.github.state.lock().unwrap().jobs.insert(
        8100,
        vec![job_json(
            1,
            8100,
            "deploy",
            "success",
            &[("npm run build", "success", 30)],
        )],
    );
    // The run was dispatched with `wait:true` and an API base of its own.
    let token = "tok-wait-8100";
    let mut correlation = follower(
        "vl-0000000000008100",
        token,
        crate::helpers::now_ms() + 600_000,
        Some(8100),
    );
    correlation.api_base = Some(api.url());
    put(&app, &correlation).await;

    let event = run_event(
        "completed",
        deploy_run(8100, "main", "completed", Some("success")),
    );
    let (status, _) = post(&app, "workflow_run", "auto-1", &event).await;
    assert_eq!(status, 200);

    let announcement = eventually(WAIT, || async {
        app.discord.posts_to(STATUS_CHANNEL).pop()
    })
    .await;
    let edit = eventually(WAIT, || async {
        app.discord
            .edits_of(token)
            .into_iter()
            .find(|e| titles(e).iter().any(|t| t.contains("Deploy verified")))
    })
    .await;
    for message in [&announcement.body, &edit] {
        let titles = titles(message);
        assert!(titles[0].contains("Client deploy: success"), "{titles:?}");
        assert_eq!(titles[1], "✅ Deploy verified", "{titles:?}");
    }
    // One verification: each path of each site was probed once, and the API probed was
    // the one the run was dispatched with.
    assert_eq!(frontend.hits(), 2);
    assert_eq!(api.hits(), 2);
    let verified = app
        .app
        .store
        .get_verification(8100, 1, crate::helpers::now_secs())
        .await
        .unwrap()
        .unwrap();
    assert!(verified.passed);
}

#[tokio::test]
async fn without_auto_verify_the_announcement_carries_no_report() {
    let (frontend, api) = healthy_sites().await;
    let app = spawn_app_with(Options {
        env: vec![
            ("SAFE_LOCAL", "true".into()),
            ("AUTO_VERIFY", "false".into()),
            ("DISCORD_STATUS_CHANNEL_ID", STATUS_CHANNEL.into()),
            ("FRONTEND_BASE_URL", frontend.url()),
            ("VITE_API_BASE", api.url()),
        ],
        ..Default::default()
    })
    .await;
    app.github
        .add_workflow(77, "Client deploy", "client-deploy.yml");
    app.github
        .add_run(deploy_run(8150, "main", "completed", Some("failure")));
    let event = run_event(
        "completed",
        deploy_run(8150, "main", "completed", Some("failure")),
    );
    post(&app, "workflow_run", "noauto-1", &event).await;
    let announcement = eventually(WAIT, || async {
        app.discord.posts_to(STATUS_CHANNEL).pop()
    })
    .await;
    assert_eq!(titles(&announcement.body).len(), 1);
    assert_eq!(frontend.hits() + api.hits(), 0);
}

#[tokio::test]
async fn a_diagnose_run_completing_extends_the_diagnose_message() {
    let app = app_with_sites(
        "https://unused.invalid".into(),
        "https://unused.invalid".into(),
    )
    .await;
    let token = "tok-diag-8200";
    // The /diagnose message as the command left it.
    app.app
        .discord
        .edit_original(
            APPLICATION_ID,
            token,
            &json!({"content": "", "embeds": [{"title": "🩺 Diagnosis"}]}),
        )
        .await
        .unwrap();
    let mut correlation = follower(
        "vl-0000000000008200",
        token,
        crate::helpers::now_ms() + 600_000,
        Some(8200),
    );
    correlation.kind = CorrelationKind::Diagnose;
    correlation.wait = false;
    put(&app, &correlation).await;

    let mut run = run_json(
        8200,
        88,
        "main",
        "in_progress",
        None,
        "2026-11-01T10:00:00Z",
        "2026-11-01T10:00:30Z",
    );
    run["name"] = "Diagnose".into();
    run["path"] = ".github/workflows/diagnose.yml@main".into();
    run["repository"]["full_name"] = "octo-org/octo-repo".into();
    post(
        &app,
        "workflow_run",
        "diag-1",
        &run_event("in_progress", run.clone()),
    )
    .await;
    run["status"] = "completed".into();
    run["conclusion"] = "success".into();
    post(&app, "workflow_run", "diag-2", &run_event("completed", run)).await;

    let edit = eventually(WAIT, || async {
        app.discord
            .edits_of(token)
            .into_iter()
            .find(|e| titles(e).len() == 2)
    })
    .await;
    let titles = titles(&edit);
    assert_eq!(titles[0], "🩺 Diagnosis", "the findings stay");
    assert!(titles[1].contains("Diagnose: success"), "{titles:?}");
    // Progress did not touch the findings: the seed edit and the result only.
    assert_eq!(app.discord.edits_of(token).len(), 2);
}

#[tokio::test]
async fn run_id_autocomplete_offers_recent_runs_valine_has_seen() {
    let app = spawn_app_with(Options::default()).await;
    for (id, delivery) in [(8801, "ac-1"), (8802, "ac-2"), (9901, "ac-3")] {
        let event = run_event(
            "completed",
            deploy_run(id, "main", "completed", Some("success")),
        );
        let (status, _) = post(&app, "workflow_run", delivery, &event).await;
        assert_eq!(status, 200);
    }
    let autocomplete = |typed: &str| {
        let mut body = crate::helpers::command(
            "verify-run",
            json!([{"name": "run_id", "type": 3, "value": typed, "focused": true}]),
            "42",
            &[],
            "tok-ac",
        );
        body["type"] = 4.into();
        body
    };
    let answer: Value = app
        .post_interaction(&autocomplete("88"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["type"], 8);
    let values: Vec<&str> = answer["data"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["8802", "8801"], "matching runs, newest first");
    let name = answer["data"]["choices"][0]["name"].as_str().unwrap();
    assert!(name.starts_with("8802 · success · main"), "{name}");

    let none: Value = app
        .post_interaction(&autocomplete("12"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none, json!({"type": 8, "data": {"choices": []}}));
}
