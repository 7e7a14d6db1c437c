//! `/rollback`: re-running the last good deploy run (or a given one) through the
//! dispatch protocol, with an ephemeral preview and Confirm / Cancel, the one-deploy
//! rule, audit, following the run to a verified result, DRY_RUN, and the refusals that
//! change nothing.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use valine::app::WorkerSettings;
use valine::store::{AuditRecord, CorrelationKind, CorrelationRecord};

use crate::fakes::{FakeSite, healthy_sites, run_json};
use crate::helpers::{
    Options, TestApp, command, custom_ids, eventually, now_secs, post_run_event, press, send,
    spawn_app_with,
};

const DEPLOYER: &str = "42";
const OTHER_DEPLOYER: &str = "43";
const STRANGER: &str = "77";
const REPO: &str = "octo-org/octo-repo";
const WAIT: Duration = Duration::from_secs(20);
const SHA_NOW: &str = "cccccccccccccccccccccccccccccccccccccccc";
const SHA_GOOD: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const SHA_OLDER: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn quick(worker: &mut WorkerSettings) {
    worker.identify_timeout = Duration::from_secs(2);
    worker.identify_poll = Duration::from_secs(1);
    worker.dispatch_lock_wait = Duration::from_millis(300);
    worker.run_poll = Duration::from_secs(3600);
}

/// `hours` ago, as GitHub writes times.
fn ago(hours: i64) -> String {
    (Utc::now() - chrono::Duration::hours(hours)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn deploy_run(id: u64, sha: &str, conclusion: &str, hours_ago: i64) -> Value {
    let mut run = run_json(
        id,
        77,
        "main",
        "completed",
        Some(conclusion),
        &ago(hours_ago),
        &ago(hours_ago),
    );
    run["head_sha"] = sha.into();
    run["name"] = "Client deploy".into();
    run
}

struct Rig {
    app: TestApp,
    _sites: (FakeSite, FakeSite),
}

/// A deployer, live sites to verify, the deploy workflow, and its history on `main`:
/// the newest run (3003) failed at `SHA_NOW`, 3002 succeeded at `SHA_GOOD`, 3001 at
/// `SHA_OLDER`.
async fn rig(extra: &[(&'static str, &str)]) -> Rig {
    let (frontend, api) = healthy_sites().await;
    let mut env = vec![
        ("DEPLOYER_USER_IDS", format!("{DEPLOYER},{OTHER_DEPLOYER}")),
        ("SAFE_LOCAL", "true".to_owned()),
        ("FRONTEND_BASE_URL", frontend.url()),
        ("VITE_API_BASE", api.url()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let app = spawn_app_with(Options {
        env,
        tune: Some(quick),
        ..Default::default()
    })
    .await;
    app.github
        .add_workflow(77, "Client deploy", "client-deploy.yml");
    app.github.add_workflow(88, "Lint", "lint.yml");
    app.github
        .add_run(deploy_run(3001, SHA_OLDER, "success", 5));
    app.github.add_run(deploy_run(3002, SHA_GOOD, "success", 3));
    app.github.add_run(deploy_run(3003, SHA_NOW, "failure", 1));
    Rig {
        app,
        _sites: (frontend, api),
    }
}

fn rollback(options: Value, user: &str, token: &str) -> Value {
    command("rollback", options, user, &[], token)
}

fn reruns(app: &TestApp) -> usize {
    app.github.log.matching("POST", "/rerun").len()
}

async fn audit(app: &TestApp) -> Vec<AuditRecord> {
    app.app
        .store
        .list_audit(None, 0, now_secs())
        .await
        .expect("audit")
}

/// The edit of `token`'s message that shows the followed run's successful result.
async fn result_edit(app: &TestApp, token: &str) -> Value {
    eventually(WAIT, || async {
        app.discord.edits_of(token).into_iter().find(|e| {
            e["embeds"][0]["title"]
                .as_str()
                .is_some_and(|t| t.contains("success"))
        })
    })
    .await
}

/// Asks for a preview and returns its message (the edit of the ephemeral deferral).
async fn preview(app: &TestApp, options: Value, token: &str) -> Value {
    let answer = send(app, &rollback(options, DEPLOYER, token)).await;
    assert_eq!(
        answer,
        json!({"type": 5, "data": {"flags": 64}}),
        "ephemeral, deferred"
    );
    app.discord.wait_for_edit(token).await
}

#[tokio::test]
async fn a_confirmed_preview_reruns_the_last_good_deploy_and_follows_it_to_a_verified_result() {
    let Rig { app, _sites } = rig(&[]).await;
    let shown = preview(&app, json!([]), "tok-preview").await;
    let text = shown["content"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "Would re-run deploy run [run 3002](https://github.com/{REPO}/actions/runs/3002) \
             (commit bbbbbbb, 3h ago) to roll back from ccccccc\n"
        )),
        "{text}"
    );
    let ids = custom_ids(&shown);
    assert_eq!(ids.len(), 2, "{shown}");
    assert!(ids[0].starts_with("valine:rollback-confirm:"));
    assert!(ids[1].starts_with("valine:rollback-cancel:"));
    assert_eq!(reruns(&app), 0, "a preview re-runs nothing");
    assert!(audit(&app).await.is_empty());

    // Only the deployer who asked may confirm.
    let other = send(
        &app,
        &press("rollback", &ids[0], OTHER_DEPLOYER, "tok-other"),
    )
    .await;
    assert_eq!(other, json!({"type": 5}));
    let refused = app.discord.wait_for_edit("tok-other").await;
    assert_eq!(
        refused["content"],
        "⛔ Only the deployer who asked for this rollback can confirm it."
    );

    // Confirm: a new public message, filled in by the job.
    let answer = send(&app, &press("rollback", &ids[0], DEPLOYER, "tok-confirm")).await;
    assert_eq!(answer, json!({"type": 5}), "public");
    let started = app.discord.wait_for_edit("tok-confirm").await;
    assert_eq!(
        started["embeds"][0]["title"], "⏪ Rollback started",
        "{started}"
    );
    assert_eq!(
        started["embeds"][0]["description"],
        format!(
            "[Run 3002](https://github.com/{REPO}/actions/runs/3002) re-runs commit `bbbbbbb`, \
             rolling back from `ccccccc`"
        )
    );
    assert_eq!(custom_ids(&started), ["valine:cancel-run:3002"]);
    assert_eq!(reruns(&app), 1);
    assert!(
        app.github
            .log
            .matching("POST", "/actions/runs/3002/rerun")
            .len()
            == 1
    );
    let records = audit(&app).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].user_id, DEPLOYER);
    assert!(
        records[0].action.starts_with(
            "re-run client-deploy.yml run 3002 (commit bbbbbbb) to roll back from ccccccc (vl-"
        ),
        "{}",
        records[0].action
    );
    assert!(!records[0].dry_run);

    // A second press finds the preview already handled and re-runs nothing.
    send(&app, &press("rollback", &ids[0], DEPLOYER, "tok-again")).await;
    let again = app.discord.wait_for_edit("tok-again").await;
    assert_eq!(again["content"], "❌ This change was already handled.");
    assert_eq!(reruns(&app), 1);

    // The message follows the new attempt to its verified result.
    app.github
        .set_run_status(3002, "completed", Some("success"));
    post_run_event(&app, 3002, "rb-1").await;
    let done = result_edit(&app, "tok-confirm").await;
    assert_eq!(done["embeds"][0]["title"], "🟢 Client deploy: success");
    assert_eq!(done["embeds"][1]["title"], "✅ Deploy verified", "{done}");
}

#[tokio::test]
async fn confirm_true_rolls_back_at_once_in_public_and_cancel_changes_nothing() {
    let Rig { app, _sites } = rig(&[]).await;
    // Cancel first: the preview is replaced and nothing runs.
    let shown = preview(&app, json!([]), "tok-p").await;
    let ids = custom_ids(&shown);
    let cancelled = send(&app, &press("rollback", &ids[1], DEPLOYER, "tok-cancel")).await;
    assert_eq!(cancelled["type"], 7, "{cancelled}");
    assert_eq!(
        cancelled["data"]["content"],
        "Cancelled: nothing was re-run."
    );
    assert_eq!(cancelled["data"]["components"], json!([]));
    assert_eq!(reruns(&app), 0);

    // `run_id` names the run, here as a URL; `confirm:true` skips the preview.
    let options = json!([
        {"name": "run_id", "type": 3, "value": format!("https://github.com/{REPO}/actions/runs/3001")},
        {"name": "confirm", "type": 5, "value": true},
    ]);
    let answer = send(&app, &rollback(options, DEPLOYER, "tok-now")).await;
    assert_eq!(answer, json!({"type": 5}), "public, deferred");
    let started = app.discord.wait_for_edit("tok-now").await;
    assert_eq!(
        started["embeds"][0]["title"], "⏪ Rollback started",
        "{started}"
    );
    assert_eq!(
        app.github
            .log
            .matching("POST", "/actions/runs/3001/rerun")
            .len(),
        1
    );

    // While that re-run is unfinished, another rollback is refused.
    let options = json!([{"name": "confirm", "type": 5, "value": true}]);
    send(&app, &rollback(options, DEPLOYER, "tok-busy")).await;
    let busy = app.discord.wait_for_edit("tok-busy").await;
    assert!(
        busy["content"]
            .as_str()
            .unwrap()
            .starts_with("A deploy is already running: "),
        "{busy}"
    );
    assert_eq!(reruns(&app), 1);
    assert_eq!(audit(&app).await.len(), 1);
}

#[tokio::test]
async fn dry_run_shows_the_rerun_request_instead_of_sending_it() {
    let Rig { app, _sites } = rig(&[("DRY_RUN", "true")]).await;
    let options = json!([{"name": "confirm", "type": 5, "value": true}]);
    send(&app, &rollback(options, DEPLOYER, "tok-dry")).await;
    let shown = app.discord.wait_for_edit("tok-dry").await;
    let text = shown["content"].as_str().unwrap();
    assert!(text.contains("🧪 dry run: would re-run run 3002"), "{text}");
    assert!(
        text.contains(&format!("POST /repos/{REPO}/actions/runs/3002/rerun")),
        "{text}"
    );
    assert_eq!(reruns(&app), 0);
    let records = audit(&app).await;
    assert_eq!(records.len(), 1);
    assert!(records[0].dry_run);
}

#[tokio::test]
async fn refusals_are_clear_and_change_nothing() {
    let Rig { app, _sites } = rig(&[]).await;
    let confirm = |run_id: Option<&str>| {
        let mut options = vec![json!({"name": "confirm", "type": 5, "value": true})];
        if let Some(id) = run_id {
            options.push(json!({"name": "run_id", "type": 3, "value": id}));
        }
        Value::from(options)
    };
    // A run of another workflow; one that failed; one GitHub will not re-run.
    let mut lint = run_json(
        4001,
        88,
        "main",
        "completed",
        Some("success"),
        &ago(2),
        &ago(2),
    );
    lint["head_sha"] = SHA_OLDER.into();
    app.github.add_run(lint);
    app.github
        .add_run(deploy_run(2001, SHA_OLDER, "success", 24 * 40));
    let cases = [
        (
            Some("4001"),
            "Run 4001 is not a run of client-deploy.yml: /rollback re-runs deploy runs only"
                .to_owned(),
        ),
        (
            Some("3003"),
            "Run 3003 did not succeed (failure): only a successful deploy can be rolled back to"
                .to_owned(),
        ),
        (Some("999"), "Run 999 not found".to_owned()),
        (
            Some("2001"),
            "❌ GitHub refused to re-run run 2001 (403): Unable to retry this workflow run \
             because it was created over a month ago"
                .to_owned(),
        ),
    ];
    for (i, (run_id, expected)) in cases.iter().enumerate() {
        let token = format!("tok-refused-{i}");
        send(&app, &rollback(confirm(*run_id), DEPLOYER, &token)).await;
        let edit = app.discord.wait_for_edit(&token).await;
        assert_eq!(edit["content"], expected.as_str(), "{run_id:?}");
    }
    // Only the refused 30-day re-run reached GitHub; nothing was audited.
    assert_eq!(reruns(&app), 1);
    assert!(audit(&app).await.is_empty());

    // Bad input and access are answered at once.
    let malformed = send(
        &app,
        &rollback(
            json!([{"name": "run_id", "type": 3, "value": "abc"}]),
            DEPLOYER,
            "tok-m",
        ),
    )
    .await;
    assert_eq!(malformed["type"], 4);
    assert!(
        malformed["data"]["content"]
            .as_str()
            .unwrap()
            .starts_with("❌ Invalid run id:"),
        "{malformed}"
    );
    let denied = send(&app, &rollback(json!([]), STRANGER, "tok-s")).await;
    assert_eq!(denied["data"]["content"], "⛔ /rollback: deployers only");

    // With nothing else deployed successfully, there is nothing to roll back to; while
    // a deploy runs, no rollback starts.
    app.github.add_run(deploy_run(3004, SHA_GOOD, "success", 0));
    app.github
        .state
        .lock()
        .unwrap()
        .runs
        .retain(|r| r["id"] != 3001 && r["id"] != 2001);
    send(&app, &rollback(confirm(None), DEPLOYER, "tok-none")).await;
    let none = app.discord.wait_for_edit("tok-none").await;
    assert_eq!(
        none["content"],
        "No earlier successful deploy to roll back to"
    );
    app.github.set_run_status(3004, "in_progress", None);
    send(&app, &rollback(confirm(None), DEPLOYER, "tok-running")).await;
    let running = app.discord.wait_for_edit("tok-running").await;
    assert_eq!(
        running["content"],
        format!(
            "A deploy is already running: [run 3004](https://github.com/{REPO}/actions/runs/3004)"
        )
    );
    assert_eq!(reruns(&app), 1);
    assert!(audit(&app).await.is_empty());
}

#[tokio::test]
async fn a_run_an_earlier_deploy_dispatched_is_followed_by_the_rollback_that_reruns_it() {
    let Rig { app, _sites } = rig(&[]).await;
    // Run 3002 was dispatched by an earlier `/deploy-client`, whose correlation holds it.
    let now_ms = crate::helpers::now_ms();
    let earlier = CorrelationRecord {
        id: "vl-00000000000000aa".into(),
        kind: CorrelationKind::Deploy,
        requester: DEPLOYER.into(),
        channel_id: None,
        application_id: None,
        interaction_token: None,
        token_expires_at_ms: now_ms - 3_600_000,
        wait: false,
        api_base: None,
        run_id: None,
        created_at_ms: now_ms - 3 * 3_600_000,
        expires_at: now_secs() + 3600,
    };
    let store = &app.app.store;
    assert!(store.put_correlation(&earlier, now_secs()).await.unwrap());
    assert!(
        store
            .attach_run(&earlier.id, 3002, now_secs())
            .await
            .unwrap()
    );

    let options = json!([{"name": "confirm", "type": 5, "value": true}]);
    send(&app, &rollback(options, DEPLOYER, "tok-held")).await;
    let started = app.discord.wait_for_edit("tok-held").await;
    assert_eq!(
        started["embeds"][0]["title"], "⏪ Rollback started",
        "{started}"
    );
    let holder = store
        .correlation_for_run(3002, now_secs())
        .await
        .unwrap()
        .expect("held");
    assert_ne!(holder.id, earlier.id, "the rollback took the run over");

    // The webhook's news of the new attempt reaches the rollback's message.
    app.github
        .set_run_status(3002, "completed", Some("success"));
    post_run_event(&app, 3002, "held-1").await;
    let done = result_edit(&app, "tok-held").await;
    assert_eq!(done["embeds"][0]["title"], "🟢 Client deploy: success");
}
