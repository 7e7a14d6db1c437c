//! The GitHub webhook: signature and headers, dedup, run records, failing steps, the
//! status-channel announcement and the follower's message updates.

use std::time::Duration;

use serde_json::{Value, json};

use valine::store::{CorrelationKind, CorrelationRecord, retention};

use crate::fakes::{Recorded, run_json};
use crate::helpers::{
    BOT_TOKEN, Backend, Options, TestApp, eventually, github_signature, on_each_store, spawn_app,
    spawn_app_with,
};

const REPO: &str = "octo-org/octo-repo";
const STATUS_CHANNEL: &str = "555000000000000001";
const COMMAND_CHANNEL: &str = "901";
const WAIT: Duration = Duration::from_secs(20);

/// A `workflow_run` delivery shaped like GitHub's: the run (as the REST API shows it),
/// its workflow, the repository and the sender.
pub(crate) fn run_event(action: &str, run: Value) -> Value {
    let repository = run["repository"].clone();
    json!({
        "action": action,
        "workflow_run": run,
        "workflow": {
            "id": run["workflow_id"],
            "name": run["name"],
            "path": run["path"],
            "state": "active",
        },
        "repository": repository,
        "sender": {"login": "octocat", "id": 1, "type": "User"},
    })
}

/// A run of the deploy workflow (`client-deploy.yml`, id 77).
pub(crate) fn deploy_run(id: u64, branch: &str, status: &str, conclusion: Option<&str>) -> Value {
    let mut run = run_json(
        id,
        77,
        branch,
        status,
        conclusion,
        "2026-11-01T10:00:00Z",
        "2026-11-01T10:02:15Z",
    );
    run["name"] = "Client deploy".into();
    run["path"] = ".github/workflows/client-deploy.yml@main".into();
    run["repository"]["full_name"] = REPO.into();
    run
}

fn job_event(run_id: u64, conclusion: &str) -> Value {
    json!({
        "action": "completed",
        "workflow_job": {
            "id": 399444496,
            "run_id": run_id,
            "run_attempt": 1,
            "workflow_name": "Client deploy",
            "head_branch": "main",
            "name": "build",
            "status": "completed",
            "conclusion": conclusion,
            "html_url": format!("https://github.com/{REPO}/actions/runs/{run_id}/job/399444496"),
            "steps": [
                {"name": "Set up job", "status": "completed", "conclusion": "success", "number": 1},
                {"name": "Run npm run build", "status": "completed", "conclusion": conclusion, "number": 2},
                {"name": "Sync to S3", "status": "completed", "conclusion": "skipped", "number": 3}
            ]
        },
        "repository": {"full_name": REPO},
    })
}

pub(crate) async fn post(app: &TestApp, event: &str, delivery: &str, body: &Value) -> (u16, Value) {
    let res = app.post_webhook(event, delivery, body).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn with_status_channel() -> TestApp {
    with_status_channel_on(Backend::Sqlite).await
}

async fn with_status_channel_on(backend: Backend) -> TestApp {
    spawn_app_with(Options {
        env: vec![("DISCORD_STATUS_CHANNEL_ID", STATUS_CHANNEL.to_owned())],
        backend,
        // One job at a time, so that [`barrier`] holds.
        tune: Some(|w| w.concurrency = 1),
        ..Default::default()
    })
    .await
}

/// With one job at a time, run in the order they were recorded (these tests' worker
/// setting): once the announcement of a later run has been posted, every job recorded
/// before it is done.
async fn barrier(app: &TestApp, run_id: u64) {
    let body = run_event(
        "completed",
        deploy_run(run_id, "main", "completed", Some("success")),
    );
    let (status, _) = post(app, "workflow_run", &format!("barrier-{run_id}"), &body).await;
    assert_eq!(status, 200);
    eventually(WAIT, || async {
        app.discord
            .posts_to(STATUS_CHANNEL)
            .into_iter()
            .find(|p| p.body["nonce"] == format!("a{run_id}.1"))
    })
    .await;
}

fn posts_with_nonce(app: &TestApp, channel: &str, nonce: &str) -> Vec<Recorded> {
    app.discord
        .posts_to(channel)
        .into_iter()
        .filter(|p| p.body["nonce"] == nonce)
        .collect()
}

#[tokio::test]
async fn githubs_published_signature_vector_passes_the_endpoint() {
    // Mid-rotation: the old secret and the new one are both configured.
    let app = spawn_app_with(Options {
        env: vec![(
            "GITHUB_WEBHOOK_SECRET",
            "old-secret-being-rotated-out,It's a Secret to Everybody".to_owned(),
        )],
        ..Default::default()
    })
    .await;
    let vector = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let headers = |signature| {
        [
            ("X-GitHub-Event", "workflow_run"),
            ("X-GitHub-Delivery", "vector-1"),
            ("X-Hub-Signature-256", signature),
        ]
    };
    // The signature holds, so the body is read: `Hello, World!` is not JSON.
    let res = app
        .post_webhook_raw(&headers(vector), b"Hello, World!".to_vec())
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"error": "body is not JSON"})
    );

    let wrong = "sha256=857107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    for (signature, body) in [
        (wrong, "Hello, World!"),
        (vector, "Hello, World?"),
        (
            "sha1=757107ea0eb2509fc211221cce984b8a37570b6d",
            "Hello, World!",
        ),
    ] {
        let res = app
            .post_webhook_raw(&headers(signature), body.as_bytes().to_vec())
            .await;
        assert_eq!(res.status(), 401, "{signature} over {body}");
    }
    let unsigned = app
        .post_webhook_raw(
            &[
                ("X-GitHub-Event", "ping"),
                ("X-GitHub-Delivery", "vector-2"),
            ],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(unsigned.status(), 401);
}

#[tokio::test]
async fn missing_event_or_delivery_header_is_400() {
    let app = spawn_app().await;
    let body = json!({"zen": "Keep it logically awesome.", "hook_id": 1});
    let raw = body.to_string().into_bytes();
    let signature = github_signature(crate::helpers::WEBHOOK_SECRET, &raw);
    for headers in [
        vec![("X-GitHub-Delivery", "d1")],
        vec![("X-GitHub-Event", "ping")],
        vec![],
    ] {
        let mut headers = headers;
        headers.push(("X-Hub-Signature-256", &signature));
        let res = app.post_webhook_raw(&headers, raw.clone()).await;
        assert_eq!(res.status(), 400, "{headers:?}");
    }
    // Both present: the same body is fine.
    let (status, answer) = post(&app, "ping", "d1", &body).await;
    assert_eq!((status, answer), (200, json!({"status": "ok"})));
}

#[tokio::test]
async fn ping_is_ok_from_anywhere_and_other_repositories_are_ignored() {
    let app = spawn_app().await;
    let ping = json!({"zen": "Design for failure.", "hook_id": 7,
                      "repository": {"full_name": "someone/else"}});
    assert_eq!(
        post(&app, "ping", "p1", &ping).await,
        (200, json!({"status": "ok"}))
    );

    let mut foreign = deploy_run(7001, "main", "completed", Some("success"));
    foreign["repository"]["full_name"] = "someone/else".into();
    assert_eq!(
        post(&app, "workflow_run", "f1", &run_event("completed", foreign)).await,
        (202, json!({"status": "ignored"}))
    );
    let now = crate::helpers::now_secs();
    assert_eq!(app.app.store.get_run(7001, now).await.unwrap(), None);

    // GitHub's spelling of the name may differ in case from GITHUB_REPO.
    let mut shouting = deploy_run(7002, "main", "in_progress", None);
    shouting["repository"]["full_name"] = "Octo-Org/OCTO-REPO".into();
    assert_eq!(
        post(
            &app,
            "workflow_run",
            "f2",
            &run_event("in_progress", shouting)
        )
        .await,
        (200, json!({"status": "ok"}))
    );
    assert!(app.app.store.get_run(7002, now).await.unwrap().is_some());

    // A payload without a repository cannot be ours.
    let mut anonymous = run_event("completed", deploy_run(7003, "main", "completed", None));
    anonymous.as_object_mut().unwrap().remove("repository");
    assert_eq!(
        post(&app, "workflow_run", "f3", &anonymous).await,
        (202, json!({"status": "ignored"}))
    );
}

#[tokio::test]
async fn unhandled_events_and_odd_shapes_are_ignored_never_5xx() {
    let app = spawn_app().await;
    let repo = json!({"full_name": REPO});
    let cases = [
        (
            "push",
            json!({"ref": "refs/heads/main", "repository": repo}),
        ),
        ("workflow_job", job_event(7100, "success")),
        (
            "workflow_job",
            json!({"action": "queued", "workflow_job": null, "repository": repo}),
        ),
        (
            "workflow_run",
            json!({"action": "completed", "repository": repo}),
        ),
        (
            "workflow_run",
            json!({"action": "completed", "workflow_run": {"id": null}, "repository": repo}),
        ),
        (
            "workflow_run",
            json!({"action": "completed", "workflow_run": "7101", "repository": repo}),
        ),
        (
            "workflow_run",
            json!({"action": "edited", "workflow_run": {"id": 7102}, "repository": repo}),
        ),
        ("workflow_run", json!({"repository": {"full_name": null}})),
        ("workflow_run", json!([1, 2, 3])),
        // Ids beyond what GitHub issues (and the store holds) are unreadable, not a 503.
        (
            "workflow_run",
            json!({"action": "completed", "workflow_run": {"id": u64::MAX, "workflow_id": 77,
                   "status": "completed", "run_attempt": 1}, "repository": repo}),
        ),
        ("workflow_run", json!(null)),
        ("workflow_run", json!("a string")),
    ];
    for (i, (event, body)) in cases.iter().enumerate() {
        let (status, answer) = post(&app, event, &format!("odd-{i}"), body).await;
        assert_eq!(
            (status, answer),
            (202, json!({"status": "ignored"})),
            "{event}: {body}"
        );
    }
    assert_eq!(
        app.app
            .store
            .get_run(7102, crate::helpers::now_secs())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn workflow_run_events_upsert_the_run_trusting_status() {
    let app = spawn_app().await;
    let now = crate::helpers::now_secs;

    let queued = deploy_run(7200, "main", "queued", None);
    assert_eq!(
        post(&app, "workflow_run", "r1", &run_event("requested", queued)).await,
        (200, json!({"status": "ok"}))
    );
    let stored = app.app.store.get_run(7200, now()).await.unwrap().unwrap();
    assert_eq!(stored.status, "queued");
    assert_eq!(stored.workflow_id, 77);
    assert_eq!(stored.workflow_name.as_deref(), Some("Client deploy"));
    assert_eq!(stored.branch.as_deref(), Some("main"));
    assert_eq!(
        stored.head_sha.as_deref(),
        Some("acb5820ced9479c074f688cc328bf03f341a511d")
    );
    assert_eq!(stored.run_attempt, 1);
    assert_eq!(
        stored.html_url.as_deref(),
        Some("https://github.com/octo-org/octo-repo/actions/runs/7200")
    );
    assert_eq!(stored.display_title.as_deref(), Some("Deploy 7200"));
    assert_eq!(stored.created_at.as_deref(), Some("2026-11-01T10:00:00Z"));
    assert_eq!(stored.updated_at.as_deref(), Some("2026-11-01T10:02:15Z"));
    assert!(stored.expires_at >= now() + retention::RUN - 60);

    // Fields missing or null in a later event keep what is known.
    let mut sparse = deploy_run(7200, "main", "in_progress", None);
    for field in ["head_branch", "display_title", "html_url"] {
        sparse[field] = Value::Null;
    }
    sparse.as_object_mut().unwrap().remove("head_sha");
    post(
        &app,
        "workflow_run",
        "r2",
        &run_event("in_progress", sparse),
    )
    .await;
    let stored = app.app.store.get_run(7200, now()).await.unwrap().unwrap();
    assert_eq!(stored.status, "in_progress");
    assert_eq!(stored.branch.as_deref(), Some("main"));
    assert_eq!(stored.display_title.as_deref(), Some("Deploy 7200"));

    // `action` says requested, `status` says completed: status wins.
    let done = deploy_run(7200, "main", "completed", Some("failure"));
    post(&app, "workflow_run", "r3", &run_event("requested", done)).await;
    let stored = app.app.store.get_run(7200, now()).await.unwrap().unwrap();
    assert_eq!(stored.status, "completed");
    assert_eq!(stored.conclusion.as_deref(), Some("failure"));

    // A late in_progress event never moves the completed attempt back.
    let late = deploy_run(7200, "main", "in_progress", None);
    assert_eq!(
        post(&app, "workflow_run", "r4", &run_event("in_progress", late)).await,
        (200, json!({"status": "ok"}))
    );
    let stored = app.app.store.get_run(7200, now()).await.unwrap().unwrap();
    assert_eq!(
        (stored.status.as_str(), stored.conclusion.as_deref()),
        ("completed", Some("failure"))
    );
}

#[tokio::test]
async fn an_older_attempt_arriving_late_does_not_move_the_run_back() {
    let app = spawn_app().await;
    let mut rerun = deploy_run(7300, "main", "in_progress", None);
    rerun["run_attempt"] = 2.into();
    post(&app, "workflow_run", "a2", &run_event("in_progress", rerun)).await;
    let first = deploy_run(7300, "main", "completed", Some("failure"));
    assert_eq!(
        post(&app, "workflow_run", "a1", &run_event("completed", first)).await,
        (200, json!({"status": "ok"}))
    );
    let stored = app
        .app
        .store
        .get_run(7300, crate::helpers::now_secs())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.run_attempt, 2);
    assert_eq!(stored.status, "in_progress");
    assert_eq!(stored.conclusion, None);
}

on_each_store!(a_completed_deploy_on_the_deploy_branch_is_announced_once);
async fn a_completed_deploy_on_the_deploy_branch_is_announced_once(backend: Backend) {
    let app = with_status_channel_on(backend).await;
    let done = run_event(
        "completed",
        deploy_run(7400, "main", "completed", Some("success")),
    );
    assert_eq!(
        post(&app, "workflow_run", "ann-1", &done).await,
        (200, json!({"status": "ok"}))
    );
    let posted = app
        .discord
        .log
        .wait_for(
            "POST",
            &format!("/channels/{STATUS_CHANNEL}/messages"),
            WAIT,
        )
        .await;
    assert_eq!(
        posted.headers["authorization"].to_str().unwrap(),
        format!("Bot {BOT_TOKEN}")
    );
    assert_eq!(posted.body["nonce"], "a7400.1");
    assert_eq!(posted.body["enforce_nonce"], true);
    assert_eq!(posted.body["allowed_mentions"], json!({"parse": []}));
    let embed = &posted.body["embeds"][0];
    assert_eq!(embed["title"], "🟢 Client deploy: success");
    assert!(
        embed["description"]
            .as_str()
            .unwrap()
            .contains("https://github.com/octo-org/octo-repo/actions/runs/7400"),
        "{embed}"
    );
    let fields = embed["fields"].to_string();
    assert!(
        fields.contains("`main`") && fields.contains("2m 15s"),
        "{fields}"
    );

    // The same delivery again: a duplicate, with no second job.
    assert_eq!(
        post(&app, "workflow_run", "ann-1", &done).await,
        (200, json!({"status": "duplicate"}))
    );
    // A second delivery about the same completion is recorded, but the announcement
    // per (run, attempt) is already taken.
    assert_eq!(
        post(&app, "workflow_run", "ann-2", &done).await,
        (200, json!({"status": "ok"}))
    );
    // Runs of other branches or workflows, and unfinished deploys, are not announced.
    let feature = deploy_run(7401, "feature/x", "completed", Some("success"));
    post(
        &app,
        "workflow_run",
        "ann-3",
        &run_event("completed", feature),
    )
    .await;
    let mut ci = deploy_run(7402, "main", "completed", Some("success"));
    ci["path"] = ".github/workflows/ci.yml".into();
    ci["workflow_id"] = 78.into();
    post(&app, "workflow_run", "ann-4", &run_event("completed", ci)).await;
    let running = deploy_run(7403, "main", "in_progress", None);
    post(
        &app,
        "workflow_run",
        "ann-5",
        &run_event("in_progress", running),
    )
    .await;

    barrier(&app, 7499).await;
    assert_eq!(posts_with_nonce(&app, STATUS_CHANNEL, "a7400.1").len(), 1);
    let nonces: Vec<Value> = app
        .discord
        .posts_to(STATUS_CHANNEL)
        .into_iter()
        .map(|p| p.body["nonce"].clone())
        .collect();
    assert_eq!(nonces, [json!("a7400.1"), json!("a7499.1")]);
    assert!(app.app.store.failed_jobs(0).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_job_is_recorded_and_named_in_the_announcement() {
    let app = with_status_channel().await;
    assert_eq!(
        post(&app, "workflow_job", "job-1", &job_event(7500, "failure")).await,
        (200, json!({"status": "ok"}))
    );
    let step = app
        .app
        .store
        .failed_step(7500, crate::helpers::now_secs())
        .await
        .unwrap()
        .expect("failing step recorded");
    assert_eq!(step.job_id, 399444496);
    assert_eq!(step.job_name, "build");
    assert_eq!(step.step_name.as_deref(), Some("Run npm run build"));
    assert_eq!(step.run_attempt, 1);
    assert!(step.html_url.unwrap().ends_with("/job/399444496"));

    let failed = deploy_run(7500, "main", "completed", Some("failure"));
    post(
        &app,
        "workflow_run",
        "job-2",
        &run_event("completed", failed),
    )
    .await;
    let posted = app
        .discord
        .log
        .wait_for(
            "POST",
            &format!("/channels/{STATUS_CHANNEL}/messages"),
            WAIT,
        )
        .await;
    let embed = &posted.body["embeds"][0];
    assert_eq!(embed["title"], "🔴 Client deploy: failure");
    assert_eq!(embed["color"], 0xE74C3C);
    let failing = embed["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Failing step")
        .expect("failing step field");
    assert!(
        failing["value"]
            .as_str()
            .unwrap()
            .starts_with("[build › Run npm run build]("),
        "{failing}"
    );
}

pub(crate) fn follower(
    id: &str,
    token: &str,
    token_expires_at_ms: i64,
    run_id: Option<u64>,
) -> CorrelationRecord {
    let now_ms = crate::helpers::now_ms();
    CorrelationRecord {
        id: id.into(),
        kind: CorrelationKind::Deploy,
        requester: "42".into(),
        channel_id: Some(COMMAND_CHANNEL.into()),
        application_id: Some(crate::helpers::APPLICATION_ID.into()),
        interaction_token: Some(token.into()),
        token_expires_at_ms,
        wait: true,
        api_base: Some("https://api.example.com".into()),
        run_id,
        created_at_ms: now_ms,
        expires_at: now_ms / 1000 + retention::CORRELATION,
    }
}

pub(crate) async fn put(app: &TestApp, correlation: &CorrelationRecord) {
    assert!(
        app.app
            .store
            .put_correlation(correlation, crate::helpers::now_secs())
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_followed_run_edits_the_commands_message() {
    let app = spawn_app().await;
    let token = "tok-follow-7600";
    let live = crate::helpers::now_ms() + 15 * 60 * 1000;
    put(
        &app,
        &follower("vl-00000000000076aa", token, live, Some(7600)),
    )
    .await;

    // Queued: nothing to say yet.
    post(
        &app,
        "workflow_run",
        "fw-0",
        &run_event("requested", deploy_run(7600, "release", "queued", None)),
    )
    .await;
    post(
        &app,
        "workflow_run",
        "fw-1",
        &run_event(
            "in_progress",
            deploy_run(7600, "release", "in_progress", None),
        ),
    )
    .await;
    let progress = app.discord.wait_for_edit(token).await;
    assert!(
        progress["content"]
            .as_str()
            .unwrap()
            .contains("run 7600 is in progress"),
        "{progress}"
    );
    assert_eq!(progress["allowed_mentions"], json!({"parse": []}));

    post(
        &app,
        "workflow_run",
        "fw-2",
        &run_event(
            "completed",
            deploy_run(7600, "release", "completed", Some("success")),
        ),
    )
    .await;
    let result = eventually(WAIT, || async {
        app.discord
            .edits_of(token)
            .into_iter()
            .find(|e| e["embeds"][0]["title"] == "🟢 Client deploy: success")
    })
    .await;
    assert!(
        result["embeds"][0]["fields"]
            .to_string()
            .contains("`release`")
    );
    assert_eq!(app.discord.edits_of(token).len(), 2);
    assert!(app.discord.posts_to(COMMAND_CHANNEL).is_empty());
}

#[tokio::test]
async fn a_run_is_recognised_by_the_correlation_id_in_its_title() {
    let app = spawn_app().await;
    let token = "tok-title-7650";
    let correlation_id = "vl-0123456789abcdef";
    put(
        &app,
        &follower(
            correlation_id,
            token,
            crate::helpers::now_ms() + 900_000,
            None,
        ),
    )
    .await;
    let mut run = deploy_run(7650, "main", "in_progress", None);
    run["display_title"] = format!("Deploy main ({correlation_id})").into();
    post(&app, "workflow_run", "t-1", &run_event("in_progress", run)).await;
    app.discord.wait_for_edit(token).await;
    let attached = app
        .app
        .store
        .correlation_for_run(7650, crate::helpers::now_secs())
        .await
        .unwrap()
        .expect("the delivery attached the run");
    assert_eq!(attached.id, correlation_id);
}

#[tokio::test]
async fn after_the_token_expires_updates_go_to_the_channel() {
    let app = spawn_app().await;
    let token = "tok-stale-7700";
    let expired = crate::helpers::now_ms() - 1;
    put(
        &app,
        &follower("vl-0000000000007700", token, expired, Some(7700)),
    )
    .await;

    post(
        &app,
        "workflow_run",
        "ex-1",
        &run_event("in_progress", deploy_run(7700, "main", "in_progress", None)),
    )
    .await;
    // The progress post lands before the run completes; a later one would be stale.
    eventually(WAIT, || async {
        posts_with_nonce(&app, COMMAND_CHANNEL, "f7700.1.p").pop()
    })
    .await;
    post(
        &app,
        "workflow_run",
        "ex-2",
        &run_event(
            "completed",
            deploy_run(7700, "main", "completed", Some("success")),
        ),
    )
    .await;
    let result = eventually(WAIT, || async {
        posts_with_nonce(&app, COMMAND_CHANNEL, "f7700.1.c").pop()
    })
    .await;
    assert_eq!(result.body["enforce_nonce"], true);
    assert_eq!(result.body["allowed_mentions"], json!({"parse": []}));
    assert_eq!(
        result.headers["authorization"].to_str().unwrap(),
        format!("Bot {BOT_TOKEN}")
    );
    assert_eq!(
        posts_with_nonce(&app, COMMAND_CHANNEL, "f7700.1.p").len(),
        1
    );
    assert!(
        app.discord.edits_of(token).is_empty(),
        "no edit with a dead token"
    );
}

#[tokio::test]
async fn a_token_discord_refuses_falls_back_to_the_channel() {
    let app = spawn_app().await;
    // Our clock says it lives; Discord says 401.
    let token = "expired-by-discord-7800";
    let live = crate::helpers::now_ms() + 900_000;
    put(
        &app,
        &follower("vl-0000000000007800", token, live, Some(7800)),
    )
    .await;
    post(
        &app,
        "workflow_run",
        "rf-1",
        &run_event(
            "completed",
            deploy_run(7800, "main", "completed", Some("failure")),
        ),
    )
    .await;
    let posted = eventually(WAIT, || async {
        posts_with_nonce(&app, COMMAND_CHANNEL, "f7800.1.c").pop()
    })
    .await;
    assert_eq!(
        posted.body["embeds"][0]["title"],
        "🔴 Client deploy: failure"
    );
    assert_eq!(app.discord.edits_of(token).len(), 1, "tried the edit first");
}

on_each_store!(a_dispatched_deploy_is_announced_at_any_ref_and_a_duplicate_has_one_effect);
async fn a_dispatched_deploy_is_announced_at_any_ref_and_a_duplicate_has_one_effect(
    backend: Backend,
) {
    let app = with_status_channel_on(backend).await;
    let mut quiet = follower("vl-0000000000007900", "tok-7900", 0, Some(7900));
    quiet.wait = false;
    put(&app, &quiet).await;
    let done = run_event(
        "completed",
        deploy_run(7900, "hotfix/1", "completed", Some("success")),
    );
    assert_eq!(
        post(&app, "workflow_run", "dup-1", &done).await,
        (200, json!({"status": "ok"}))
    );
    for _ in 0..2 {
        assert_eq!(
            post(&app, "workflow_run", "dup-1", &done).await,
            (200, json!({"status": "duplicate"}))
        );
    }
    barrier(&app, 7999).await;
    assert_eq!(posts_with_nonce(&app, STATUS_CHANNEL, "a7900.1").len(), 1);
    // Without wait:true the command's own message is left alone.
    assert!(app.discord.edits_of("tok-7900").is_empty());
    assert!(app.discord.posts_to(COMMAND_CHANNEL).is_empty());
}

#[tokio::test]
async fn without_the_workflow_path_the_job_asks_github_which_runs_are_deploys() {
    let app = with_status_channel().await;
    app.github
        .add_workflow(77, "Client deploy", "client-deploy.yml");
    // An older GitHub Enterprise sends neither the run's path nor a workflow object.
    let bare = |id: u64, workflow_id: u64| {
        let mut run = deploy_run(id, "main", "completed", Some("success"));
        run["workflow_id"] = workflow_id.into();
        let run = run.as_object_mut().unwrap();
        run.remove("path");
        run.remove("name");
        let mut event = run_event("completed", Value::Object(run.clone()));
        event.as_object_mut().unwrap().remove("workflow");
        event
    };
    post(&app, "workflow_run", "gh-1", &bare(8000, 78)).await;
    post(&app, "workflow_run", "gh-2", &bare(8001, 77)).await;
    barrier(&app, 8099).await;
    let nonces: Vec<Value> = app
        .discord
        .posts_to(STATUS_CHANNEL)
        .into_iter()
        .map(|p| p.body["nonce"].clone())
        .collect();
    assert_eq!(nonces, [json!("a8001.1"), json!("a8099.1")]);
    assert!(
        !app.github
            .log
            .matching("GET", "/actions/workflows/client-deploy.yml")
            .is_empty(),
        "the workflow was resolved through GitHub"
    );
}
