//! `/deploy-client` (see `docs/design.md#dispatch-once`): dispatching the deploy workflow
//! end to end against the fake GitHub and Discord: the request GitHub receives, refusals,
//! finding the run without run details, one deploy at a time, `Cancel run`, `wait:true`
//! following the run, a job repeated after a crash, and DRY_RUN.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use valine::app::WorkerSettings;
use valine::store::{AuditRecord, JobState};

use crate::fakes::{DispatchMode, FakeSite, Hang, healthy_sites, job_json, page, run_json};
use crate::helpers::{
    Backend, Options, TestApp, command, custom_ids, eventually, on_each_store, post_run_event,
    press, send, spawn_app_with,
};

const DEPLOYER: &str = "42";
const STRANGER: &str = "77";
const REPO: &str = "octo-org/octo-repo";
const WAIT: Duration = Duration::from_secs(20);
const ENV_API: &str = "https://api.example.com";
const STATUS_CHANNEL: &str = "555000000000000001";
const DEPLOY_STEPS: [(&str, &str, i64); 3] = [
    ("npm run build", "success", 65),
    ("Sync to S3", "success", 20),
    ("Invalidate CloudFront", "success", 4),
];

/// Live sites to verify against: the frontend and API base in use, and a second API a
/// deploy dispatches with `api_base:`.
struct Sites {
    frontend: FakeSite,
    api_in_use: FakeSite,
    api_dispatched: FakeSite,
}

/// An app whose deploys can be verified (SAFE_LOCAL for the loopback sites), announcing
/// in the status channel with `AUTO_VERIFY`.
async fn spawn_verifying(tune: fn(&mut WorkerSettings)) -> (TestApp, Sites) {
    let (frontend, api_in_use) = healthy_sites().await;
    let api_dispatched = FakeSite::start().await;
    api_dispatched
        .set("/health", page(200))
        .set("/hello", page(200));
    let (front_url, api_url) = (frontend.url(), api_in_use.url());
    let app = spawn_with(
        &[
            ("SAFE_LOCAL", "true"),
            ("AUTO_VERIFY", "true"),
            ("FRONTEND_BASE_URL", &front_url),
            ("VITE_API_BASE", &api_url),
            ("DISCORD_STATUS_CHANNEL_ID", STATUS_CHANNEL),
        ],
        tune,
    )
    .await;
    // The jobs of the run the first dispatch starts, for the Actions check.
    app.github.state.lock().unwrap().jobs.insert(
        9000,
        vec![job_json(5001, 9000, "deploy", "success", &DEPLOY_STEPS)],
    );
    let sites = Sites {
        frontend,
        api_in_use,
        api_dispatched,
    };
    (app, sites)
}

fn wait_with_api(api: &FakeSite) -> Value {
    json!([
        {"name": "wait", "type": 5, "value": true},
        {"name": "api_base", "type": 3, "value": api.url()},
    ])
}

/// Shorter identification and polling than production, so waits end in moments.
fn quick(worker: &mut WorkerSettings) {
    worker.identify_timeout = Duration::from_secs(2);
    worker.identify_poll = Duration::from_secs(1);
    worker.dispatch_lock_wait = Duration::from_millis(300);
    // Webhooks drive the tests that follow a run; the poll has a test of its own.
    worker.run_poll = Duration::from_secs(3600);
}

async fn spawn_with(extra: &[(&'static str, &str)], tune: fn(&mut WorkerSettings)) -> TestApp {
    spawn_on(Backend::Sqlite, extra, tune).await
}

async fn spawn_on(
    backend: Backend,
    extra: &[(&'static str, &str)],
    tune: fn(&mut WorkerSettings),
) -> TestApp {
    let mut env = vec![("DEPLOYER_USER_IDS", DEPLOYER.to_owned())];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let app = spawn_app_with(Options {
        env,
        backend,
        tune: Some(tune),
        ..Default::default()
    })
    .await;
    app.github
        .add_workflow(77, "Client deploy", "client-deploy.yml");
    app
}

async fn spawn(extra: &[(&'static str, &str)]) -> TestApp {
    spawn_with(extra, quick).await
}

fn deploy(options: Value, user: &str, token: &str) -> Value {
    command("deploy-client", options, user, &[], token)
}

/// Sends a deploy and returns the edit of its deferred answer.
async fn deploy_and_wait(app: &TestApp, options: Value, token: &str) -> Value {
    let answer = send(app, &deploy(options, DEPLOYER, token)).await;
    assert_eq!(answer, json!({"type": 5}), "public, deferred");
    app.discord.wait_for_edit(token).await
}

fn link_buttons(message: &Value) -> Vec<String> {
    message["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["url"].as_str().map(str::to_owned))
        .collect()
}

fn field<'a>(message: &'a Value, name: &str) -> &'a str {
    message["embeds"][0]["fields"]
        .as_array()
        .and_then(|fields| fields.iter().find(|f| f["name"] == name))
        .and_then(|f| f["value"].as_str())
        .unwrap_or_else(|| panic!("no field {name} in {message}"))
}

fn run_url(id: u64) -> String {
    format!("https://github.com/{REPO}/actions/runs/{id}")
}

async fn audit(app: &TestApp) -> Vec<AuditRecord> {
    app.app
        .store
        .list_audit(None, 0, crate::helpers::now_secs())
        .await
        .unwrap()
}

/// Requests to GitHub other than reads.
fn github_writes(app: &TestApp) -> Vec<String> {
    app.github
        .writes()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// `GET …/actions/runs/{id}` requests (the run itself, not its jobs).
fn run_reads(app: &TestApp, id: u64) -> usize {
    let path = format!("/repos/{REPO}/actions/runs/{id}");
    app.github
        .log
        .matching("GET", &path)
        .iter()
        .filter(|r| r.path == path)
        .count()
}

/// Waits until the poll chain of the first deploy (run 9000) has ended: its last job is
/// done and scheduled no successor. Returns how many polls ran.
async fn poll_chain_ended(app: &TestApp) -> usize {
    let correlation = app.github.dispatches()[0].body["inputs"]["correlation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually(WAIT, || async {
        let mut last = None;
        for seq in 1.. {
            let id = format!("poll-{correlation}-9000-{seq}");
            match app.app.store.get_job(&id).await.unwrap() {
                Some(job) => last = Some((seq, job.state)),
                None => break,
            }
        }
        match last {
            Some((seq, JobState::Done)) => Some(seq),
            _ => None,
        }
    })
    .await
}

#[tokio::test]
async fn a_deployer_dispatches_and_the_reply_links_the_run_with_a_cancel_button() {
    let app = spawn(&[]).await;
    let edit = deploy_and_wait(
        &app,
        json!([
            {"name": "ref", "type": 3, "value": "release/v2"},
            {"name": "api_base", "type": 3, "value": "https://API2.example.com/"},
        ]),
        "tok-d1",
    )
    .await;

    // GitHub got one dispatch with the ref, the three inputs and the run-details ask.
    let dispatches = app.github.dispatches();
    assert_eq!(dispatches.len(), 1);
    assert_eq!(
        dispatches[0].path,
        "/repos/octo-org/octo-repo/actions/workflows/77/dispatches"
    );
    let body = &dispatches[0].body;
    let correlation = body["inputs"]["correlation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        correlation.len() == 19
            && correlation.starts_with("vl-")
            && correlation[3..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{correlation}"
    );
    assert_eq!(
        body,
        &json!({
            "ref": "release/v2",
            "inputs": {
                "correlation_id": correlation,
                "requester": DEPLOYER,
                "VITE_API_BASE": "https://api2.example.com",
            },
            "return_run_details": true,
        })
    );

    // The reply links the run and carries Cancel run.
    assert_eq!(edit["embeds"][0]["title"], "🚀 Deploy dispatched");
    assert!(
        edit["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .starts_with(&format!(
                "[Run 9000]({}) of `client-deploy.yml`",
                run_url(9000)
            )),
        "{edit}"
    );
    assert_eq!(field(&edit, "Ref"), "`release/v2`");
    assert_eq!(field(&edit, "API base"), "https://api2.example.com");
    assert_eq!(field(&edit, "Correlation id"), format!("`{correlation}`"));
    assert_eq!(custom_ids(&edit), ["valine:cancel-run:9000"]);
    assert_eq!(link_buttons(&edit), [run_url(9000)]);
    assert_eq!(edit["allowed_mentions"], json!({"parse": []}));

    // The marker knows the run, the requester and where to reach them.
    let marker = app
        .app
        .store
        .get_correlation(&correlation, crate::helpers::now_secs())
        .await
        .unwrap()
        .expect("marker written");
    assert_eq!(marker.run_id, Some(9000));
    assert_eq!(marker.requester, DEPLOYER);
    assert_eq!(marker.channel_id.as_deref(), Some("901"));
    assert_eq!(marker.interaction_token.as_deref(), Some("tok-d1"));
    assert!(!marker.wait);
    assert_eq!(marker.api_base.as_deref(), Some("https://api2.example.com"));
    let ttl = marker.token_expires_at_ms - marker.created_at_ms;
    assert!(
        ttl > 14 * 60 * 1000 && ttl <= 15 * 60 * 1000,
        "token lives 15 minutes from the interaction: {ttl}"
    );

    // One audit record, by the deployer, fingerprinting the API base it dispatched.
    let records = audit(&app).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(
        record.action,
        format!("dispatch client-deploy.yml at release/v2 ({correlation})")
    );
    assert_eq!(record.user_id, DEPLOYER);
    assert!(!record.dry_run);
    let digest = hex::encode(Sha256::digest(b"https://api2.example.com"));
    assert_eq!(record.new_fingerprint.as_deref(), Some(&digest[60..]));
    assert!(record.trace_id.is_some());

    // Without options: the deploy branch and the API base in use.
    app.github
        .set_run_status(9000, "completed", Some("success"));
    deploy_and_wait(&app, json!([]), "tok-d2").await;
    let second = &app.github.dispatches()[1].body;
    assert_eq!(second["ref"], "main");
    assert_eq!(second["inputs"]["VITE_API_BASE"], ENV_API);
    assert_ne!(second["inputs"]["correlation_id"], correlation.as_str());
}

#[tokio::test]
async fn non_deployers_are_refused_before_anything_is_sent() {
    let app = spawn(&[]).await;
    let answer = send(&app, &deploy(json!([]), STRANGER, "tok-s")).await;
    assert_eq!(answer["type"], 4);
    assert_eq!(answer["data"]["flags"], 64);
    assert_eq!(
        answer["data"]["content"],
        "⛔ /deploy-client: deployers only"
    );
    // Roles count too.
    let app_roles = spawn(&[("DEPLOYER_ROLE_IDS", "555")]).await;
    let answer = send(
        &app_roles,
        &command("deploy-client", json!([]), STRANGER, &["555"], "tok-r"),
    )
    .await;
    assert_eq!(answer, json!({"type": 5}));
    app_roles.discord.wait_for_edit("tok-r").await;
    assert_eq!(app_roles.github.dispatches().len(), 1);

    assert!(app.github.log.all().is_empty(), "no GitHub call at all");
    assert!(app.discord.log.all().is_empty());
}

#[tokio::test]
async fn an_invalid_ref_or_api_base_is_refused_at_once() {
    let app = spawn(&[]).await;
    let cases = [
        (
            json!([{"name": "ref", "type": 3, "value": "feature..x"}]),
            "❌ `feature..x` is not a valid git ref: it must not contain `..`",
        ),
        (
            json!([{"name": "ref", "type": 3, "value": "-x"}]),
            "❌ `-x` is not a valid git ref: it must not start with `-`",
        ),
        (
            json!([{"name": "ref", "type": 3, "value": "main.lock"}]),
            "❌ `main.lock` is not a valid git ref: no part between `/` may end with `.lock`",
        ),
        (
            json!([{"name": "api_base", "type": 3, "value": "http://api.example.com"}]),
            "❌ `api_base`: only https URLs can be checked (plain http only with SAFE_LOCAL), got http:",
        ),
        (
            json!([{"name": "api_base", "type": 3, "value": "https://169.254.169.254"}]),
            "❌ `api_base`: 169.254.169.254 is a loopback, private, link-local or reserved address",
        ),
        (
            json!([{"name": "api_base", "type": 3, "value": "https://2130706433/api"}]),
            "❌ `api_base`: 127.0.0.1 is a loopback, private, link-local or reserved address",
        ),
    ];
    for (i, (options, expected)) in cases.into_iter().enumerate() {
        let answer = send(&app, &deploy(options, DEPLOYER, &format!("tok-i{i}"))).await;
        assert_eq!(answer["type"], 4, "{answer}");
        assert_eq!(answer["data"]["flags"], 64);
        assert_eq!(answer["data"]["content"], expected);
    }
    assert!(app.github.log.all().is_empty(), "no GitHub call at all");
    assert!(app.discord.log.all().is_empty(), "nothing to edit later");
}

#[tokio::test]
async fn without_run_details_the_run_is_found_by_its_correlation_id_never_guessed() {
    let app = spawn(&[]).await;
    app.github.set_dispatch_mode(DispatchMode::RejectRunDetails);
    // Runs that are not ours: an older one, and one created after the dispatch whose
    // title carries no correlation id.
    app.github.add_run(run_json(
        8000,
        77,
        "main",
        "in_progress",
        None,
        "2026-11-01T10:00:00Z",
        "2026-11-01T10:00:00Z",
    ));
    let later = (chrono::Utc::now() + chrono::Duration::seconds(30))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    app.github
        .add_run(run_json(8001, 77, "main", "queued", None, &later, &later));

    let edit = deploy_and_wait(&app, json!([]), "tok-f1").await;
    assert_eq!(custom_ids(&edit), ["valine:cancel-run:9000"], "{edit}");

    // The first request asked for run details, the repeat did not.
    let dispatches = app.github.dispatches();
    assert_eq!(dispatches.len(), 2);
    assert_eq!(dispatches[0].body["return_run_details"], true);
    assert!(dispatches[1].body.get("return_run_details").is_none());
    assert_eq!(dispatches[0].body["inputs"], dispatches[1].body["inputs"]);
    // Looked up among the workflow's runs created since the dispatch.
    let listing = app
        .github
        .log
        .matching("GET", "/actions/workflows/77/runs")
        .pop()
        .expect("runs listed");
    assert!(
        listing
            .query
            .as_deref()
            .unwrap_or("")
            .contains("created=%3E%3D"),
        "{:?}",
        listing.query
    );
    let correlation = dispatches[0].body["inputs"]["correlation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let marker = app
        .app
        .store
        .get_correlation(&correlation, crate::helpers::now_secs())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(marker.run_id, Some(9000));

    // A workflow whose run-name lacks the id: the run is not guessed.
    app.github
        .set_run_status(9000, "completed", Some("success"));
    app.github
        .set_run_status(8000, "completed", Some("success"));
    app.github.set_titles_without_correlation(true);
    let edit = deploy_and_wait(&app, json!([]), "tok-f2").await;
    let text = edit["content"].as_str().unwrap();
    assert!(
        text.ends_with(
            "Run not identified: make the workflow's run-name include inputs.correlation_id"
        ),
        "{text}"
    );
    assert!(custom_ids(&edit).is_empty(), "no run, no Cancel: {edit}");
    // The dispatch happened, so it is audited.
    assert_eq!(audit(&app).await.len(), 2);

    // A 204 without details (a server that ignores the field): found the same way.
    app.github
        .set_run_status(9001, "completed", Some("success"));
    app.github.set_titles_without_correlation(false);
    app.github.set_dispatch_mode(DispatchMode::NoContent);
    let edit = deploy_and_wait(&app, json!([]), "tok-f3").await;
    assert_eq!(custom_ids(&edit), ["valine:cancel-run:9002"], "{edit}");
    assert_eq!(
        app.github.dispatches().len(),
        5,
        "two per 422, one for the 204"
    );
}

on_each_store!(one_deploy_at_a_time_until_github_says_the_run_finished);
async fn one_deploy_at_a_time_until_github_says_the_run_finished(backend: Backend) {
    let app = spawn_on(backend, &[], quick).await;
    deploy_and_wait(&app, json!([]), "tok-a").await;
    assert_eq!(app.github.dispatches().len(), 1);

    let refused = deploy_and_wait(&app, json!([]), "tok-b").await;
    assert_eq!(
        refused["content"],
        format!("A deploy is already running: [run 9000]({})", run_url(9000))
    );
    assert_eq!(app.github.dispatches().len(), 1, "no second dispatch");
    // No marker for the refused command: it cannot block anyone.
    assert_eq!(audit(&app).await.len(), 1);

    // GitHub finishes the run; no webhook ever arrives. The next deploy re-reads the
    // run from GitHub and goes ahead.
    let reads_before = run_reads(&app, 9000);
    app.github
        .set_run_status(9000, "completed", Some("success"));
    let edit = deploy_and_wait(&app, json!([]), "tok-c").await;
    assert_eq!(custom_ids(&edit), ["valine:cancel-run:9001"], "{edit}");
    assert!(run_reads(&app, 9000) > reads_before);
    assert_eq!(app.github.dispatches().len(), 2);
}

on_each_store!(two_processes_deploying_at_once_dispatch_once);
async fn two_processes_deploying_at_once_dispatch_once(backend: Backend) {
    let first = spawn_on(backend, &[], quick).await;
    let second = spawn_app_with(Options {
        env: vec![("DEPLOYER_USER_IDS", DEPLOYER.to_owned())],
        reuse: Some(first.shared()),
        tune: Some(|w: &mut WorkerSettings| {
            quick(w);
            // Long enough to outwait the other's dispatch, so the refusal can link it.
            w.dispatch_lock_wait = Duration::from_secs(5);
        }),
        ..Default::default()
    })
    .await;
    let (p1, p2) = (
        deploy(json!([]), DEPLOYER, "tok-p1"),
        deploy(json!([]), DEPLOYER, "tok-p2"),
    );
    let (a, b) = tokio::join!(send(&first, &p1), send(&second, &p2));
    assert_eq!((a["type"].as_u64(), b["type"].as_u64()), (Some(5), Some(5)));
    let (a, b) = tokio::join!(
        first.discord.wait_for_edit("tok-p1"),
        first.discord.wait_for_edit("tok-p2"),
    );
    assert_eq!(first.github.dispatches().len(), 1, "{a}\n{b}");
    let refusals: Vec<&Value> = [&a, &b]
        .into_iter()
        .filter(|m| {
            m["content"]
                .as_str()
                .is_some_and(|c| c.starts_with("A deploy is already running: "))
        })
        .collect();
    assert_eq!(refusals.len(), 1, "{a}\n{b}");
}

#[tokio::test]
async fn cancel_run_asks_github_to_cancel_and_is_audited() {
    let app = spawn(&[]).await;
    let edit = deploy_and_wait(&app, json!([]), "tok-x").await;
    let cancel = custom_ids(&edit).pop().expect("cancel button");

    // Not for everyone, checked again on the press.
    let denied = send(&app, &press("deploy-client", &cancel, STRANGER, "tok-x1")).await;
    assert_eq!(denied["data"]["content"], "⛔ Cancel run: deployers only");
    assert!(app.github.log.matching("POST", "/cancel").is_empty());

    let answer = send(&app, &press("deploy-client", &cancel, DEPLOYER, "tok-x2")).await;
    assert_eq!(answer, json!({"type": 5}));
    let outcome = app.discord.wait_for_edit("tok-x2").await;
    assert_eq!(
        outcome["content"],
        format!(
            "🛑 Cancel requested for [run 9000]({}) by <@{DEPLOYER}>",
            run_url(9000)
        )
    );
    let cancels = app.github.log.matching("POST", "/cancel");
    assert_eq!(cancels.len(), 1);
    assert_eq!(
        cancels[0].path,
        "/repos/octo-org/octo-repo/actions/runs/9000/cancel"
    );
    let records = audit(&app).await;
    assert_eq!(records[0].action, "cancel run 9000");
    assert_eq!(records[0].user_id, DEPLOYER);
    assert!(!records[0].dry_run);

    // A finished run is not cancelled again; a run Valine did not dispatch is refused.
    app.github
        .set_run_status(9000, "completed", Some("cancelled"));
    send(&app, &press("deploy-client", &cancel, DEPLOYER, "tok-x3")).await;
    let edit = app.discord.wait_for_edit("tok-x3").await;
    assert!(
        edit["content"]
            .as_str()
            .unwrap()
            .ends_with("already completed (cancelled); nothing to cancel."),
        "{edit}"
    );
    send(
        &app,
        &press(
            "deploy-client",
            "valine:cancel-run:8000",
            DEPLOYER,
            "tok-x4",
        ),
    )
    .await;
    let edit = app.discord.wait_for_edit("tok-x4").await;
    assert_eq!(
        edit["content"],
        "❌ Run 8000 was not dispatched by /deploy-client"
    );
    assert_eq!(app.github.log.matching("POST", "/cancel").len(), 1);
}

#[tokio::test]
async fn wait_true_follows_the_run_through_webhooks_to_a_verified_result() {
    let (app, sites) = spawn_verifying(quick).await;
    let edit = deploy_and_wait(&app, wait_with_api(&sites.api_dispatched), "tok-w").await;
    assert_eq!(
        edit["embeds"][0]["footer"]["text"],
        "This message follows the run."
    );

    app.github.set_run_status(9000, "in_progress", None);
    post_run_event(&app, 9000, "w-1").await;
    let progress = eventually(WAIT, || async {
        app.discord.edits_of("tok-w").into_iter().find(|e| {
            e["content"]
                .as_str()
                .is_some_and(|c| c.contains("in progress"))
        })
    })
    .await;
    assert_eq!(
        progress["content"],
        "🟡 Client deploy run 9000 is in progress on `main`"
    );
    // Cancel stays available while it runs.
    assert_eq!(custom_ids(&progress), ["valine:cancel-run:9000"]);

    app.github
        .set_run_status(9000, "completed", Some("success"));
    post_run_event(&app, 9000, "w-2").await;
    let done = eventually(WAIT, || async {
        app.discord.edits_of("tok-w").into_iter().find(|e| {
            e["embeds"][0]["title"]
                .as_str()
                .is_some_and(|t| t.contains("success"))
        })
    })
    .await;
    assert_eq!(done["embeds"][0]["title"], "🟢 Client deploy: success");
    // The verification report follows the result; it probed the API base that was
    // dispatched, not the one in use.
    let report = &done["embeds"][1];
    assert_eq!(report["title"], "✅ Deploy verified", "{done}");
    let api_field = report["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"].as_str().unwrap().starts_with("API"))
        .unwrap();
    assert!(
        api_field["name"]
            .as_str()
            .unwrap()
            .contains(&sites.api_dispatched.url())
            || api_field["value"]
                .as_str()
                .unwrap()
                .contains(&sites.api_dispatched.url()),
        "{api_field}"
    );
    assert_eq!(sites.api_dispatched.hits(), 2, "/health and /hello, once");
    assert_eq!(sites.api_in_use.hits(), 0);
    assert_eq!(sites.frontend.hits(), 2);
    assert_eq!(
        custom_ids(&done),
        ["valine:reverify:9000"],
        "nothing to cancel"
    );

    // The announcement shows the same verification: made once for (run, attempt).
    let post = app
        .discord
        .log
        .wait_for(
            "POST",
            &format!("/channels/{STATUS_CHANNEL}/messages"),
            WAIT,
        )
        .await;
    assert_eq!(post.body["embeds"][0]["title"], "🟢 Client deploy: success");
    assert_eq!(post.body["embeds"][1], done["embeds"][1]);
    assert_eq!(sites.api_dispatched.hits(), 2, "not probed again");
    // The follower edits; only the announcement goes to a channel.
    assert!(app.discord.posts_to("901").is_empty());
}

/// In paused time with the production poll interval (15 s): the clock and every
/// sleep advance together, so the test waits for nothing.
#[tokio::test(start_paused = true)]
async fn polling_follows_the_run_when_webhooks_are_missed() {
    let app = spawn_with(&[], |w| {
        quick(w);
        w.run_poll = WorkerSettings::default().run_poll;
    })
    .await;
    deploy_and_wait(
        &app,
        json!([{"name": "wait", "type": 5, "value": true}]),
        "tok-poll",
    )
    .await;
    app.github.set_run_status(9000, "in_progress", None);
    eventually(WAIT, || async {
        app.discord.edits_of("tok-poll").into_iter().find(|e| {
            e["content"]
                .as_str()
                .is_some_and(|c| c.contains("in progress"))
        })
    })
    .await;
    app.github
        .set_run_status(9000, "completed", Some("failure"));
    let done = eventually(WAIT, || async {
        app.discord.edits_of("tok-poll").into_iter().find(|e| {
            e["embeds"][0]["title"]
                .as_str()
                .is_some_and(|t| t.contains("failure"))
        })
    })
    .await;
    assert_eq!(done["embeds"][0]["title"], "🔴 Client deploy: failure");
    // The run is recorded as a delivery would record it.
    let stored = app
        .app
        .store
        .get_run(9000, crate::helpers::now_secs())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, "completed");
    // Polling stopped with the completed run: every poll read the run once, and the
    // last one scheduled no successor.
    let polls = poll_chain_ended(&app).await;
    assert!(polls >= 2, "{polls}");
    assert_eq!(run_reads(&app, 9000), polls);
}

/// In paused time with Discord's real 15-minute token lifetime and the production
/// poll interval.
#[tokio::test(start_paused = true)]
async fn after_the_token_expires_the_result_goes_to_the_channel() {
    let (app, sites) = spawn_verifying(|w| {
        quick(w);
        w.interaction_token_ttl = WorkerSettings::default().interaction_token_ttl;
        w.run_poll = WorkerSettings::default().run_poll;
    })
    .await;
    deploy_and_wait(&app, wait_with_api(&sites.api_dispatched), "tok-late").await;
    let correlation = app.github.dispatches()[0].body["inputs"]["correlation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let clock = &app.app.clock;
    let marker = app
        .app
        .store
        .get_correlation(&correlation, clock.now_secs())
        .await
        .unwrap()
        .unwrap();
    assert!(marker.token_expires_at_ms - clock.now_ms() > 14 * 60 * 1000);
    // Fifteen minutes of virtual time, in which the poll chain runs and then stops.
    eventually(Duration::from_secs(16 * 60), || async {
        (clock.now_ms() > marker.token_expires_at_ms).then_some(())
    })
    .await;

    app.github
        .set_run_status(9000, "completed", Some("success"));
    post_run_event(&app, 9000, "late-1").await;
    let post = app
        .discord
        .log
        .wait_for("POST", "/channels/901/messages", WAIT)
        .await;
    assert_eq!(post.body["embeds"][0]["title"], "🟢 Client deploy: success");
    assert_eq!(post.body["embeds"][1]["title"], "✅ Deploy verified");
    assert_eq!(post.body["allowed_mentions"], json!({"parse": []}));
    assert!(post.body["nonce"].as_str().is_some());
    assert_eq!(sites.api_dispatched.hits(), 2);
    // The expired token is not used again after the dispatch reply.
    assert_eq!(app.discord.edits_of("tok-late").len(), 1);
    // The poll stopped with the token: its last step read nothing and scheduled nothing
    // (the other read of the run is the verification's).
    let polls = poll_chain_ended(&app).await;
    assert_eq!(run_reads(&app, 9000), (polls - 1) + 1);
}

/// A process that dies while GitHub holds its dispatch: the job runs again in the next
/// process after the lease, finds the marker, and never dispatches a second time. The
/// callers run in paused time, so the production lease (15 s) costs no waiting.
async fn crash_during_dispatch(hang: Hang) -> (TestApp, Value, Arc<Notify>) {
    let lease = WorkerSettings::default().lease;
    let first = spawn_app_with(Options {
        env: vec![("DEPLOYER_USER_IDS", DEPLOYER.to_owned())],
        lease,
        tune: Some(quick),
        ..Default::default()
    })
    .await;
    first
        .github
        .add_workflow(77, "Client deploy", "client-deploy.yml");
    let gate = Arc::new(Notify::new());
    first.github.set_dispatch_hang(Some((hang, gate.clone())));
    send(&first, &deploy(json!([]), DEPLOYER, "tok-crash")).await;
    first.github.log.wait_for("POST", "/dispatches", WAIT).await;
    let shared = first.shared();
    first.crash();

    let second = spawn_app_with(Options {
        env: vec![("DEPLOYER_USER_IDS", DEPLOYER.to_owned())],
        lease,
        reuse: Some(shared),
        tune: Some(quick),
        ..Default::default()
    })
    .await;
    let edit = second.discord.wait_for_edit("tok-crash").await;
    (second, edit, gate)
}

#[tokio::test(start_paused = true)]
async fn a_job_repeated_after_its_dispatch_finds_the_run_instead_of_dispatching_again() {
    let (app, edit, gate) = crash_during_dispatch(Hang::AfterRun).await;
    assert_eq!(app.github.dispatches().len(), 1, "never sent twice");
    assert_eq!(edit["embeds"][0]["title"], "🚀 Deploy dispatched", "{edit}");
    assert_eq!(custom_ids(&edit), ["valine:cancel-run:9000"]);
    // Found by its correlation id, and audited once.
    let records = audit(&app).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(
        records[0]
            .action
            .starts_with("dispatch client-deploy.yml at main")
    );
    gate.notify_waiters();
}

#[tokio::test(start_paused = true)]
async fn a_job_repeated_after_an_unconfirmed_dispatch_says_so_and_does_not_resend() {
    let (app, edit, gate) = crash_during_dispatch(Hang::BeforeRun).await;
    let text = edit["content"].as_str().unwrap();
    assert!(
        text.starts_with("⚠️ dispatch not confirmed; not re-sent"),
        "{text}"
    );
    assert_eq!(app.github.dispatches().len(), 1, "never sent twice");
    assert!(audit(&app).await.is_empty(), "nothing confirmed to audit");
    gate.notify_waiters();
}

#[tokio::test]
async fn dry_run_shows_the_dispatch_and_sends_nothing() {
    let app = spawn(&[
        ("DRY_RUN", "true"),
        ("DISCORD_STATUS_CHANNEL_ID", "555000000000000001"),
    ])
    .await;
    let edit = deploy_and_wait(
        &app,
        json!([{"name": "wait", "type": 5, "value": true}]),
        "tok-dry",
    )
    .await;
    let text = edit["content"].as_str().unwrap();
    let prefix = "🧪 dry run: would dispatch workflow 77 at main: `POST \
                  /repos/octo-org/octo-repo/actions/workflows/77/dispatches {";
    assert!(text.starts_with(prefix), "{text}");
    let body_start = text.find('{').unwrap();
    let body_end = text.rfind("}`").unwrap() + 1;
    let body: Value = serde_json::from_str(&text[body_start..body_end]).unwrap();
    assert_eq!(body["ref"], "main");
    assert_eq!(body["return_run_details"], true);
    assert_eq!(body["inputs"]["requester"], DEPLOYER);
    assert_eq!(body["inputs"]["VITE_API_BASE"], ENV_API);
    let correlation = body["inputs"]["correlation_id"].as_str().unwrap();
    assert!(correlation.starts_with("vl-"));

    // Zero mutating requests to GitHub, no channel post; reads still happen.
    assert!(github_writes(&app).is_empty(), "{:?}", github_writes(&app));
    assert!(
        !app.github.log.all().is_empty(),
        "the workflow was resolved"
    );
    assert!(app.discord.log.matching("POST", "/channels/").is_empty());
    // Audited as a dry run; no marker that could block the next deploy.
    let records = audit(&app).await;
    assert_eq!(records.len(), 1);
    assert!(records[0].dry_run);
    assert!(
        app.app
            .store
            .latest_deploy_correlation(crate::helpers::now_secs())
            .await
            .unwrap()
            .is_none()
    );
    let again = deploy_and_wait(&app, json!([]), "tok-dry2").await;
    assert!(
        again["content"]
            .as_str()
            .unwrap()
            .starts_with("🧪 dry run: would dispatch"),
        "{again}"
    );
}
