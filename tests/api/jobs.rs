//! A deferred command's job survives the crash of its process and completes in the next
//! one, with its edit arriving once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::fakes::run_json;
use crate::helpers::{Backend, Options, command, eventually, spawn_app_with};

/// In paused time with the production lease (15 s): the new process takes the job over
/// once the dead worker's lease runs out, without the test waiting for it.
#[tokio::test(start_paused = true)]
async fn a_job_survives_its_process_and_completes_after_restart() {
    survives_a_crash(
        Backend::Sqlite,
        valine::app::WorkerSettings::default().lease,
    )
    .await;
}

/// The same on one DynamoDB table, in real time (DynamoDB Local is another process, so
/// tokio's clock cannot be paused across it) with a two-second lease.
#[cfg(feature = "conformance")]
#[tokio::test]
async fn a_job_survives_its_process_on_dynamodb() {
    survives_a_crash(Backend::DynamoDb, Duration::from_secs(2)).await;
}

async fn survives_a_crash(backend: Backend, lease: Duration) {
    let first = spawn_app_with(Options {
        lease,
        backend,
        ..Default::default()
    })
    .await;
    first
        .github
        .add_workflow(77, "Client deploy", "client-deploy.yml");
    first.github.add_run(run_json(
        2001,
        77,
        "main",
        "completed",
        Some("success"),
        "2026-11-01T10:00:00Z",
        "2026-11-01T10:02:00Z",
    ));
    // GitHub hangs on the run listing: the first process is mid-job when it dies.
    let gate = Arc::new(Notify::new());
    first.github.set_gate(Some(gate.clone()));

    let posted = tokio::time::Instant::now();
    let res = first
        .post_interaction(&command("status", json!([]), "42", &[], "tok-crash"))
        .await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"type": 5}));
    first
        .github
        .log
        .wait_for("GET", "/runs", Duration::from_secs(10))
        .await;
    let shared = first.shared();
    first.crash();
    assert!(first_edit_count(&shared.discord, "tok-crash") == 0);

    // GitHub recovers; a new process on the same database takes the job over once
    // the dead worker's lease runs out.
    shared.github.set_gate(None);
    gate.notify_waiters();
    let second = spawn_app_with(Options {
        lease,
        reuse: Some(shared),
        ..Default::default()
    })
    .await;
    let edit = second.discord.wait_for_edit("tok-crash").await;
    // Taken over once the lease ran out (it was claimed after the post), and at most a
    // few polls later: interrupted work resumes within the lease.
    let took_over = posted.elapsed();
    assert!(
        took_over >= lease && took_over < lease + Duration::from_secs(2),
        "{took_over:?}"
    );
    assert!(
        edit["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .contains("🟢 success"),
        "{edit}"
    );

    // Exactly one edit; the job is done after two claims.
    let job_done = eventually(Duration::from_secs(5), || async {
        let jobs = second.app.store.failed_jobs(0).await.unwrap();
        assert!(jobs.is_empty(), "no job failed");
        let runs = second.github.log.matching("GET", "/runs").len();
        (runs >= 2).then_some(runs)
    })
    .await;
    assert!(
        job_done >= 2,
        "the listing was asked again by the new process"
    );
    assert_eq!(second.discord.edits_of("tok-crash").len(), 1);
    second.stop().await;
}

fn first_edit_count(discord: &crate::fakes::FakeDiscord, token: &str) -> usize {
    discord.edits_of(token).len()
}

#[tokio::test]
async fn graceful_stop_finishes_cleanly() {
    let app = spawn_app_with(Options::default()).await;
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    tokio::time::timeout(Duration::from_secs(15), app.stop())
        .await
        .expect("stops within the grace period");
}

#[tokio::test]
async fn a_failed_delivery_is_retried_without_running_the_command_again() {
    let app = spawn_app_with(Options::default()).await;
    app.github
        .add_workflow(77, "Client deploy", "client-deploy.yml");
    app.github.add_run(run_json(
        2101,
        77,
        "main",
        "completed",
        Some("success"),
        "2026-11-01T10:00:00Z",
        "2026-11-01T10:02:00Z",
    ));
    let token = "flaky-2101";
    app.post_interaction(&command("status", json!([]), "42", &[], token))
        .await;
    // Four refused edits (one client call and its retries), then the retry job's edit.
    let delivered = eventually(Duration::from_secs(20), || async {
        let edits = app.discord.edits_of(token);
        (edits.len() >= 5).then(|| edits[4].clone())
    })
    .await;
    assert!(
        delivered["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .contains("🟢 success")
    );
    assert_eq!(
        app.github.log.matching("GET", "/runs").len(),
        1,
        "the command ran once; only its delivery was repeated"
    );
}

#[tokio::test]
async fn a_reply_whose_token_expired_goes_to_the_channel() {
    let app = spawn_app_with(Options::default()).await;
    app.github
        .add_workflow(77, "Client deploy", "client-deploy.yml");
    app.github.add_run(run_json(
        2201,
        77,
        "main",
        "completed",
        Some("failure"),
        "2026-11-01T10:00:00Z",
        "2026-11-01T10:02:00Z",
    ));
    app.post_interaction(&command("status", json!([]), "42", &[], "expired-2201"))
        .await;
    let post = eventually(Duration::from_secs(20), || async {
        app.discord.posts_to("901").pop()
    })
    .await;
    assert!(
        post.body["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .contains("🔴 failure")
    );
    assert_eq!(post.body["enforce_nonce"], true);
    assert_eq!(post.body["allowed_mentions"], json!({"parse": []}));
}

#[tokio::test]
async fn a_job_past_its_deadline_gives_up_instead_of_acting_late() {
    let app = spawn_app_with(Options::default()).await;
    let now = crate::helpers::now_ms();
    let job = valine::jobs::Job::Command(valine::jobs::DeferredCommand {
        trace_id: "0123456789abcdef0123456789abcdef".into(),
        command: "status".into(),
        options: Default::default(),
        user_id: "42".into(),
        roles: vec![],
        guild_id: None,
        channel_id: Some("901".into()),
        reply_to: Some(valine::jobs::ReplyTarget {
            application_id: crate::helpers::APPLICATION_ID.into(),
            token: "tok-late".into(),
        }),
        button: None,
        trace: None,
    });
    let record = valine::store::NewJob {
        id: "late-job".into(),
        payload: serde_json::to_value(&job).unwrap(),
        run_after_ms: now - 60_000,
        deadline_ms: now - 1,
        trace_id: None,
    };
    app.app.store.enqueue_job(&record, now).await.unwrap();
    app.app
        .queue
        .submitted_elsewhere(std::slice::from_ref(&record), now)
        .await
        .unwrap();
    let edit = app.discord.wait_for_edit("tok-late").await;
    let content = edit["content"].as_str().unwrap();
    assert!(
        content.contains("Gave up") && content.contains("deadline"),
        "{content}"
    );
    assert!(
        app.github.log.all().is_empty(),
        "the late command did not run"
    );
    let failed = app
        .app
        .store
        .failed_jobs(crate::helpers::now_secs())
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
}
