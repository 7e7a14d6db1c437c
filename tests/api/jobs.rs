//! SPEC §5: a deferred command's job survives the crash of its process and completes
//! in the next one, with its edit arriving once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::fakes::run_json;
use crate::helpers::{Options, command, eventually, spawn_app_with};

#[tokio::test]
async fn a_job_survives_its_process_and_completes_after_restart() {
    let lease = Duration::from_millis(800);
    let first = spawn_app_with(Options {
        lease,
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
    assert!(first_edit_count(&shared.1, "tok-crash") == 0);

    // GitHub recovers; a new process on the same database takes the job over once
    // the dead worker's lease runs out.
    shared.0.set_gate(None);
    gate.notify_waiters();
    let second = spawn_app_with(Options {
        lease,
        reuse: Some(shared),
        ..Default::default()
    })
    .await;
    let edit = second.discord.wait_for_edit("tok-crash").await;
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
